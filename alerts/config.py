"""Alert settings from ``NZC_*`` environment variables, and duration parsing.

Variables (defaults in brackets): ``NZC_ALERTMANAGER_PORT`` [19011],
``NZC_ALERT_RECEIVER_PORT`` [19012], ``NZC_ALERTMANAGER_HOST`` [127.0.0.1] where the
evaluator finds Alertmanager, ``NZC_ALERT_RECEIVER_HOST`` [127.0.0.1] the address our receiver
listens on (docker compose: ``alertmanager`` and ``0.0.0.0``, one container each),
``NZC_ALERT_RULES`` [alerts/rules.yaml],
``NZC_ALERT_ROUTING`` [alerts/routing.yaml], ``NZC_ALERT_CHANNELS`` [alerts/channels.yaml],
``NZC_ALERT_EVAL_S`` [5] seconds between live evaluations, ``NZC_ALERT_PERIODIC_S`` [300]
seconds between periodic ones, ``NZC_ALERT_LINK`` [http://127.0.0.1:18080] base of the
"look here" link, ``NZC_SMTP_SMARTHOST`` [127.0.0.1:25], ``NZC_ALERT_EMAIL_TO``
[facilities@example.invalid], ``NZC_ALERT_WEBHOOK_URL`` [the receiver's /webhook/log],
``NZC_ALERTMANAGER_GROUP_WAIT`` [30s], ``NZC_ALERTMANAGER_GROUP_INTERVAL`` [5m],
``NZC_ALERTMANAGER_REPEAT_INTERVAL`` [4h].
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")


def parse_duration(raw: object, where: str = "duration") -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"`` or a number of seconds -> timedelta."""
    if isinstance(raw, bool):
        raise ValueError(f"{where}: {raw!r} is not a duration")
    if isinstance(raw, int | float):
        if raw < 0:
            raise ValueError(f"{where}: {raw!r} is negative")
        return timedelta(seconds=float(raw))
    m = _DURATION.match(str(raw))
    if not m or not any(m.groups()):
        raise ValueError(f"{where}: {raw!r} is not a duration such as 90s, 15m, 1h30m, 2d")
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


@dataclass(frozen=True)
class AlertSettings:
    """Where Alertmanager and our receiver listen, which files configure them, how often
    the evaluator runs."""

    alertmanager_port: int
    receiver_port: int
    rules_path: Path
    routing_path: Path
    channels_path: Path
    eval_s: float
    periodic_s: float
    link_base: str
    smtp_smarthost: str
    email_to: str
    webhook_url: str
    group_wait: str
    group_interval: str
    repeat_interval: str
    alertmanager_host: str = "127.0.0.1"
    receiver_host: str = "127.0.0.1"  # the receiver's listen address

    @property
    def alertmanager_url(self) -> str:
        """Base URL of the Alertmanager (local unless ``NZC_ALERTMANAGER_HOST``)."""
        return f"http://{self.alertmanager_host}:{self.alertmanager_port}"

    @property
    def receiver_url(self) -> str:
        """Base URL of our robot receiver."""
        return f"http://127.0.0.1:{self.receiver_port}"

    @classmethod
    def from_env(cls) -> AlertSettings:
        """Read the ``NZC_*`` variables (see the module docstring)."""
        receiver_port = int(_env("NZC_ALERT_RECEIVER_PORT", "19012"))
        return cls(
            alertmanager_port=int(_env("NZC_ALERTMANAGER_PORT", "19011")),
            receiver_port=receiver_port,
            rules_path=Path(_env("NZC_ALERT_RULES", str(PACKAGE_DIR / "rules.yaml"))),
            routing_path=Path(_env("NZC_ALERT_ROUTING", str(PACKAGE_DIR / "routing.yaml"))),
            channels_path=Path(_env("NZC_ALERT_CHANNELS", str(PACKAGE_DIR / "channels.yaml"))),
            eval_s=float(_env("NZC_ALERT_EVAL_S", "5")),
            periodic_s=float(_env("NZC_ALERT_PERIODIC_S", "300")),
            link_base=_env("NZC_ALERT_LINK", f"http://127.0.0.1:{_env('NZC_API_PORT', '18080')}"),
            smtp_smarthost=_env("NZC_SMTP_SMARTHOST", "127.0.0.1:25"),
            email_to=_env("NZC_ALERT_EMAIL_TO", "facilities@example.invalid"),
            webhook_url=_env("NZC_ALERT_WEBHOOK_URL",
                             f"http://127.0.0.1:{receiver_port}/webhook/log"),
            group_wait=_env("NZC_ALERTMANAGER_GROUP_WAIT", "30s"),
            group_interval=_env("NZC_ALERTMANAGER_GROUP_INTERVAL", "5m"),
            repeat_interval=_env("NZC_ALERTMANAGER_REPEAT_INTERVAL", "4h"),
            alertmanager_host=_env("NZC_ALERTMANAGER_HOST", "127.0.0.1"),
            receiver_host=_env("NZC_ALERT_RECEIVER_HOST", "127.0.0.1"),
        )
