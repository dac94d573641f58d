"""Our small receiver for Alertmanager's webhook notifications, forwarding them to WeCom group
robots, DingTalk custom robots, Feishu/Lark custom bots and an MQTT topic.

Alertmanager posts its webhook JSON (version 4) to ``/am/<channel>`` (``alerts/routing.yaml``);
each channel in ``alerts/channels.yaml`` has a kind, and its webhook URL and secret in
environment variables. Per channel a sender thread keeps the robot's documented rate limit
(sliding 60 s window), cuts the message to the robot's byte limit at a UTF-8 boundary, signs it,
and retries failures with exponential backoff; every attempt is stored in
``alert_deliveries``. ``/webhook/log`` is a generic webhook sink that only counts and logs.

Signing (from the robots' documentation):

- DingTalk: ``sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))``
  with ``timestamp`` in milliseconds, both as query parameters;
- Feishu/Lark: ``sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))`` with
  ``timestamp`` in seconds, both in the JSON body;
- WeCom group robots are authenticated by the key in their URL only.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

log = logging.getLogger("nzc.alerts.channels")
SHANGHAI = ZoneInfo("Asia/Shanghai")
TRUNCATION_MARK = "\n…(已截断 truncated)"


@dataclass(frozen=True)
class ChannelKind:
    """A robot's documented limits: message bytes and messages per minute."""

    max_bytes: int
    per_minute: int


KINDS: dict[str, ChannelKind] = {
    "wecom": ChannelKind(4096, 20),      # markdown.content at most 4096 bytes, 20 msg/min
    "dingtalk": ChannelKind(20000, 20),  # markdown text, 20 msg/min per robot
    "feishu": ChannelKind(20000, 100),   # request body at most 20 KB, 100 msg/min
    "mqtt": ChannelKind(256 * 1024, 600),
}
MAX_ATTEMPTS = 5
BACKOFF_S = 1.0


def cut_utf8(text: str, limit: int, mark: str = TRUNCATION_MARK) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character, with
    ``mark`` appended when cut; returns the text and whether it was cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text, False
    room = limit - len(mark.encode("utf-8"))
    if room < 0:
        raise ValueError(f"limit {limit} bytes is smaller than the truncation mark")
    # decoding with "ignore" drops only the incomplete character at the cut
    return raw[:room].decode("utf-8", errors="ignore") + mark, True


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk custom robot signature (URL-encoded base64 HMAC-SHA256)."""
    msg = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu/Lark custom bot signature (base64 HMAC-SHA256 of an empty message, keyed with
    timestamp + newline + secret)."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def _local(raw: str) -> str:
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return raw
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def format_markdown(notification: Mapping[str, Any]) -> tuple[str, str]:
    """Title and markdown body (Chinese with English) of one Alertmanager notification."""
    status = notification.get("status", "firing")
    group = notification.get("groupLabels") or {}
    site = group.get("site") or (notification.get("commonLabels") or {}).get("site", "?")
    head = "告警 FIRING" if status == "firing" else "已恢复 RESOLVED"
    alerts = notification.get("alerts") or []
    title = f"【{head}】{site}: {len(alerts)} 条 alert(s)"
    lines = [f"## {title}"]
    for a in alerts:
        lab, ann = a.get("labels") or {}, a.get("annotations") or {}
        state = "告警中 firing" if a.get("status") == "firing" else "已恢复 resolved"
        lines.append(f"**{ann.get('title_zh', lab.get('alertname', ''))}** ({state}, "
                     f"{lab.get('severity', '')})")
        lines.append(f"- 站点 site: {lab.get('site', '')}")
        where = lab.get("meter") or lab.get("gateway") or lab.get("indicator") or ""
        if lab.get("building"):
            where += f" / {lab['building']}"
        lines.append(f"- 表计/楼栋 meter/building: {where}")
        lines.append(f"- 规则 rule: {lab.get('rule', '')}")
        lines.append(f"- 当前值 value: {ann.get('value', '-')}")
        thr = ann.get("threshold", "-")
        if ann.get("typical"):
            thr += f" / 典型 typical {ann['typical']}"
        lines.append(f"- 阈值 threshold: {thr}")
        lines.append(f"- 开始 since: {ann.get('since') or _local(a.get('startsAt', ''))}")
        if a.get("status") != "firing" and a.get("endsAt"):
            lines.append(f"- 恢复 resolved: {_local(a['endsAt'])} (北京时间)")
        if ann.get("deadline"):
            lines.append(f"- 修复期限 repair deadline: {ann['deadline']}")
        if ann.get("link"):
            lines.append(f"- [查看 details]({ann['link']})")
    return title, "\n".join(lines)


class Channel:
    """One configured destination with its rate limit, queue and sender thread."""

    def __init__(self, name: str, kind: str, url: str | None, secret: str | None,
                 topic: str | None, record: Callable[[Mapping[str, Any]], None],
                 mqtt_publish: Callable[[str, bytes], None] | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"channel {name}: kind {kind!r} is not one of {sorted(KINDS)}")
        self.name, self.kind, self.url, self.secret, self.topic = name, kind, url, secret, topic
        self.limits = KINDS[kind]
        self.record = record
        self.mqtt_publish = mqtt_publish
        self.sent: collections.deque[float] = collections.deque()
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"channel-{name}", daemon=True)
        self.thread.start()

    @property
    def configured(self) -> bool:
        """Whether the channel has somewhere to send to."""
        return bool(self.topic if self.kind == "mqtt" else self.url)

    def build(self, notification: Mapping[str, Any], now: float) -> tuple[str, bytes, bool]:
        """URL, body and whether the text was cut, for one notification."""
        title, text = format_markdown(notification)
        if self.kind == "wecom":
            text, cut = cut_utf8(text, self.limits.max_bytes)
            body: dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": text}}
            return str(self.url), json.dumps(body, ensure_ascii=False).encode(), cut
        if self.kind == "dingtalk":
            text, cut = cut_utf8(text, self.limits.max_bytes)
            body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
            url = str(self.url)
            if self.secret:
                ts = int(now * 1000)
                url += ("&" if "?" in url else "?") + \
                    f"timestamp={ts}&sign={dingtalk_sign(self.secret, ts)}"
            return url, json.dumps(body, ensure_ascii=False).encode(), cut
        if self.kind == "feishu":
            text, cut = cut_utf8(text, self.limits.max_bytes - 2000)  # room for the card
            firing = notification.get("status") == "firing"
            body = {"msg_type": "interactive", "card": {
                "header": {"title": {"tag": "plain_text", "content": title},
                           "template": "red" if firing else "green"},
                "elements": [{"tag": "markdown", "content": text}]}}
            if self.secret:
                ts = int(now)
                body = {"timestamp": str(ts), "sign": feishu_sign(self.secret, ts), **body}
            return str(self.url), json.dumps(body, ensure_ascii=False).encode(), cut
        site = (notification.get("groupLabels") or {}).get("site", "unknown")
        payload = {"status": notification.get("status"), "title": title, "text": text,
                   "alerts": notification.get("alerts")}
        return f"{self.topic}/{site}", json.dumps(payload, ensure_ascii=False).encode(), False

    def _wait_rate(self) -> None:
        while True:
            now = time.monotonic()
            while self.sent and now - self.sent[0] >= 60.0:
                self.sent.popleft()
            if len(self.sent) < self.limits.per_minute:
                self.sent.append(now)
                return
            time.sleep(min(60.0 - (now - self.sent[0]) + 0.01, 60.0))

    def _send_once(self, target: str, body: bytes) -> tuple[bool, int | None, str | None]:
        if self.kind == "mqtt":
            if self.mqtt_publish is None:
                return False, None, "no MQTT connection"
            try:
                self.mqtt_publish(target, body)
            except Exception as exc:
                return False, None, str(exc)
            return True, None, None
        req = urllib.request.Request(target, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return False, exc.code, exc.read().decode("utf-8", "replace")[:300]
        except OSError as exc:
            return False, None, str(exc)
        try:
            answer = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return False, status, f"not JSON: {raw[:200]!r}"
        code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
        if code not in (0, None):
            return False, status, f"robot answered code {code}: {answer}"
        return True, status, None

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            self._deliver(item)

    def _deliver(self, notification: Mapping[str, Any]) -> None:
        group_key = str(notification.get("groupKey", ""))[:200]
        status = str(notification.get("status", ""))
        if not self.configured:
            log.warning("channel %s (%s) not configured: notification dropped", self.name,
                        self.kind)
            self._record(group_key, status, 1, False, None, "not configured", 0, False)
            return
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._wait_rate()
            target, body, cut = self.build(notification, time.time())
            ok, http_status, error = self._send_once(target, body)
            self._record(group_key, status, attempt, ok, http_status, error, len(body), cut)
            if ok:
                return
            log.warning("channel %s attempt %d failed: %s", self.name, attempt, error)
            if attempt < MAX_ATTEMPTS:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        log.error("channel %s: gave up after %d attempts", self.name, MAX_ATTEMPTS)

    def _record(self, group_key: str, status: str, attempt: int, ok: bool,
                http_status: int | None, error: str | None, size: int, cut: bool) -> None:
        try:
            self.record({"channel": self.name, "group_key": group_key, "status": status,
                         "attempt": attempt, "ok": ok, "http_status": http_status,
                         "error": error, "bytes": size, "truncated": cut})
        except Exception as exc:
            log.error("could not store the delivery of %s: %s", self.name, exc)


def load_channels(path: Path, record: Callable[[Mapping[str, Any]], None],
                  mqtt_publish: Callable[[str, bytes], None] | None = None,
                  env: Mapping[str, str] | None = None) -> dict[str, Channel]:
    """The channels of ``path`` with URLs and secrets from ``env`` (default os.environ)."""
    env = os.environ if env is None else env
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = {}
    for name, c in (doc.get("channels") or {}).items():
        out[name] = Channel(name, str(c["kind"]), env.get(str(c.get("url_env", ""))) or None,
                            env.get(str(c.get("secret_env", ""))) or None, c.get("topic"),
                            record, mqtt_publish)
    return out


class Receiver:
    """The HTTP server Alertmanager posts to."""

    def __init__(self, port: int, channels: Mapping[str, Channel],
                 host: str = "127.0.0.1") -> None:
        self.channels = channels
        self.generic: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt, *args)

            def do_GET(self) -> None:
                self._answer(200, {"ok": True, "channels": sorted(receiver.channels)})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    notification = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError as exc:
                    self._answer(400, {"error": f"not JSON: {exc}"})
                    return
                path = self.path.rstrip("/")
                if path == "/webhook/log":
                    receiver.generic.append(notification)
                    log.info("generic webhook: %s %s", notification.get("status"),
                             notification.get("groupKey"))
                    self._answer(200, {"ok": True})
                    return
                name = path.removeprefix("/am/")
                channel = receiver.channels.get(name)
                if not path.startswith("/am/") or channel is None:
                    self._answer(404, {"error": f"no channel {name!r}"})
                    return
                channel.queue.put(notification)
                self._answer(200, {"ok": True, "queued": channel.queue.qsize()})

            def _answer(self, code: int, body: Mapping[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer((host, port), Handler)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown`."""
        self.server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving and stop the sender threads after their queues."""
        self.server.shutdown()
        self.server.server_close()
        for c in self.channels.values():
            c.queue.put(None)


def main(argv: list[str] | None = None) -> int:
    """``python -m alerts.channels serve [--port N]``."""
    from alerts.config import AlertSettings
    from core.settings import Settings
    from db.alerts import record_delivery

    parser = argparse.ArgumentParser(prog="python -m alerts.channels")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, asettings = Settings.from_env(), AlertSettings.from_env()
    lock = threading.Lock()
    publisher: Any = None

    def mqtt_publish(topic: str, body: bytes) -> None:
        nonlocal publisher
        from core.mqtt_client import stored_auth
        from core.mqtt_identities import ALERTS_USER
        from simulators.publisher import MqttPublisher

        with lock:
            if publisher is None:
                publisher = MqttPublisher(settings.mqtt_host, settings.mqtt_port,
                                          client_id=f"nzc-alert-receiver-{os.getpid()}",
                                          auth=stored_auth(settings, ALERTS_USER))
                publisher.__enter__()
            try:
                publisher.publish(topic, body)
                publisher.flush()
            except Exception:
                publisher = None
                raise

    channels = load_channels(asettings.channels_path,
                             lambda row: record_delivery(settings.database_url, row),
                             mqtt_publish)
    port = args.port or asettings.receiver_port
    receiver = Receiver(port, channels, asettings.receiver_host)
    log.info("alert receiver on %s:%d, channels: %s", asettings.receiver_host, port,
             ", ".join(f"{n} ({c.kind}{'' if c.configured else ', not configured'})"
                       for n, c in channels.items()))
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
