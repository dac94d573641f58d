"""Prometheus Alertmanager: rendering its config from ``alerts/routing.yaml`` and its v2 API
(post alerts, create and expire silences). Standard library HTTP only, loopback only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

import yaml

from alerts.config import AlertSettings

TIMEOUT_S = 10.0


class AlertmanagerError(RuntimeError):
    """Alertmanager refused a request or could not be reached."""


def render_config(settings: AlertSettings, routing_path: Path | None = None) -> str:
    """The ``alertmanager.yml`` text: the routing file with ``${...}`` filled from
    ``settings``; a placeholder without a value is an error (``string.Template``)."""
    path = routing_path or settings.routing_path
    text = path.read_text(encoding="utf-8")
    values = {
        "smtp_smarthost": settings.smtp_smarthost,
        "email_to": settings.email_to,
        "webhook_url": settings.webhook_url,
        "receiver_url": settings.receiver_url,
        "group_wait": settings.group_wait,
        "group_interval": settings.group_interval,
        "repeat_interval": settings.repeat_interval,
    }
    try:
        out = Template(text).substitute(values)
    except (KeyError, ValueError) as exc:
        raise AlertmanagerError(f"{path}: unknown or malformed placeholder {exc}") from exc
    yaml.safe_load(out)  # a syntax error here names the line, before Alertmanager sees it
    return out


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Alertmanager:
    """A client of one Alertmanager's v2 API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise AlertmanagerError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        except OSError as exc:
            raise AlertmanagerError(f"{method} {path}: {self.base_url} unreachable: {exc}") \
                from exc
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw.decode("utf-8", "replace")

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """``POST /api/v2/alerts``: each with labels, annotations, startsAt, endsAt,
        generatorURL (datetimes are converted to RFC 3339 UTC)."""
        if not alerts:
            return
        body = []
        for a in alerts:
            item = dict(a)
            for key in ("startsAt", "endsAt"):
                if isinstance(item.get(key), datetime):
                    item[key] = _iso(item[key])
            body.append(item)
        self._call("POST", "/api/v2/alerts", body)

    def alerts(self, active: bool = True, silenced: bool = True,
               inhibited: bool = True) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``."""
        q = (f"?active={str(active).lower()}&silenced={str(silenced).lower()}"
             f"&inhibited={str(inhibited).lower()}")
        result = self._call("GET", "/api/v2/alerts" + q)
        return list(result or [])

    def create_silence(self, matchers: Mapping[str, str], ends_at: datetime, created_by: str,
                       comment: str) -> str:
        """``POST /api/v2/silences`` with equality matchers; returns the silence id."""
        body = {"matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True}
                             for k, v in sorted(matchers.items())],
                "startsAt": _iso(datetime.now(UTC)), "endsAt": _iso(ends_at),
                "createdBy": created_by, "comment": comment}
        result = self._call("POST", "/api/v2/silences", body)
        return str(result["silenceID"])

    def expire_silence(self, silence_id: str) -> None:
        """``DELETE /api/v2/silence/{id}``; an already expired or unknown one is fine."""
        try:
            self._call("DELETE", f"/api/v2/silence/{silence_id}")
        except AlertmanagerError as exc:
            if "HTTP 404" not in str(exc) and "HTTP 500" not in str(exc):
                raise

    def ready(self) -> bool:
        """``GET /-/ready`` answers 200."""
        try:
            self._call("GET", "/-/ready")
        except AlertmanagerError:
            return False
        return True
