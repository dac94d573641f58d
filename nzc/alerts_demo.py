"""The alerts demo: inject a night-load anomaly and an offline meter into the campus sample
site (``hc-campus``) and show both alerts delivered, through Alertmanager and our robot
receiver, to a local stand-in for the WeCom/DingTalk/Feishu robots whose address it prints.

Injected (and said so on screen): four ordinary Tuesday-style nights (same weekday as last
night) of ``hc-dorm-1`` at 5 kW and last night at 5 kW until 00:00 then 15 kW; readings of
``hc-canteen-gas`` removed after two hours ago (the meter "went quiet"), while the other
meters on its gateway keep reporting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

from alerts.config import AlertSettings
from core.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
NIGHT_METER = "hc-dorm-1"
OFFLINE_METER = "hc-canteen-gas"
GATEWAY_PEERS = ("hc-dorm-boiler-gas", "hc-water")
DEMO_SECRET = "SECdemo-only-secret"


class RobotSink:
    """A local HTTP server standing in for the robots' endpoints: it checks DingTalk and
    Feishu signatures made with ``secret`` and keeps what it received, per path."""

    def __init__(self, port: int, secret: str = DEMO_SECRET) -> None:
        self.received: list[dict[str, Any]] = []
        self.secret = secret
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urllib.parse.urlsplit(self.path)
                body = json.loads(raw)
                ok = sink.verify(url.path, urllib.parse.parse_qs(url.query), body)
                with sink.lock:
                    sink.received.append({"path": url.path, "body": body, "signed_ok": ok,
                                          "bytes": len(raw)})
                answer = {"errcode": 0, "code": 0} if ok else {"errcode": 310000,
                                                                 "code": 19021}
                out = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verify(self, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> bool:
        """Check the signature the way DingTalk and Feishu document it (WeCom: none)."""
        if path.endswith("/dingtalk"):
            ts, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
            if not ts or abs(time.time() * 1000 - int(ts)) > 3600_000:
                return False
            digest = hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(),
                              hashlib.sha256).digest()
            # parse_qs already URL-decoded the sign
            return hmac.compare_digest(base64.b64encode(digest).decode(), sign)
        if path.endswith("/feishu"):
            ts, sign = str(body.get("timestamp", "")), str(body.get("sign", ""))
            if not ts or abs(time.time() - int(ts)) > 3600:
                return False
            digest = hmac.new(f"{ts}\n{self.secret}".encode(), b"", hashlib.sha256).digest()
            return hmac.compare_digest(base64.b64encode(digest).decode(), sign)
        return True

    @property
    def url(self) -> str:
        """Base address."""
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[dict[str, Any]]:
        """What arrived so far."""
        with self.lock:
            return list(self.received)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def robot_env(sink_url: str, secret: str = DEMO_SECRET) -> dict[str, str]:
    """Environment pointing the receiver's channels at ``sink_url``."""
    return {"NZC_WECOM_WEBHOOK": f"{sink_url}/wecom?key=demo",
            "NZC_DINGTALK_WEBHOOK": f"{sink_url}/dingtalk?access_token=demo",
            "NZC_DINGTALK_SECRET": secret,
            "NZC_FEISHU_WEBHOOK": f"{sink_url}/feishu", "NZC_FEISHU_SECRET": secret}


def night_rows(meter_id: str, site_id: str, night_start_local: datetime, kw: list[float],
               quality: str = "measured") -> list[dict[str, Any]]:
    """15-minute interval rows from ``night_start_local`` on, one per value in ``kw`` [kW]
    (quantity = kW x 0.25 h)."""
    out = []
    for i, p in enumerate(kw):
        start = (night_start_local + timedelta(minutes=15 * i)).astimezone(UTC)
        est = quality == "estimated"
        out.append({"meter_id": meter_id, "interval_start": start, "interval_s": 900,
                    "site_id": site_id, "carrier": "grid_import", "quantity": p * 0.25,
                    "unit": "kWh", "covered_s": 0.0 if est else 900.0, "quality": quality,
                    "estimated_quantity": p * 0.25 if est else 0.0,
                    "estimated_s": 900.0 if est else 0.0})
    return out


def last_night(now: datetime) -> datetime:
    """23:00 local of the newest night whose window (to 05:00) has ended before ``now``."""
    local = now.astimezone(SHANGHAI)
    day = local.date() - timedelta(days=1 if local.hour >= 5 else 2)
    return datetime(day.year, day.month, day.day, 23, tzinfo=SHANGHAI)


def inject(settings: Settings, now: datetime) -> datetime:
    """Write the two faults (see the module docstring); returns the anomalous night's start."""
    import psycopg

    from db.alerts import drop_readings_after, inject_intervals, inject_reading

    night = last_night(now)
    with psycopg.connect(settings.database_url) as conn:
        for k in range(1, 5):  # four ordinary same-weekday nights, 5 kW all night (24 x 15 min)
            inject_intervals(conn, night_rows(NIGHT_METER, "hc-campus",
                                              night - timedelta(days=7 * k), [5.0] * 24))
        inject_intervals(conn, night_rows(NIGHT_METER, "hc-campus", night,
                                          [5.0] * 4 + [15.0] * 20))
        for peer in GATEWAY_PEERS:
            inject_reading(conn, peer, now - timedelta(minutes=1), 1.0, "m3")
    with psycopg.connect(settings.database_admin_url) as conn:
        drop_readings_after(conn, OFFLINE_METER, now - timedelta(hours=2))
        inject_reading(conn, OFFLINE_METER, now - timedelta(hours=2), 1.0, "m3")
    return night


def run_demo(settings: Settings, asettings: AlertSettings, timeout_s: float = 120.0) -> int:
    """Migrate, point the receiver's robots at a local sink, inject both faults, evaluate
    until both alerts arrived at the sink (or ``timeout_s``), print them."""
    from alerts.evaluate import load_evaluator
    from alerts.rules import load_rules
    from core.registry_yaml import load_registry, registry_text
    from db.migrate import apply_migrations
    from db.sink import sync_registry
    from nzc.services.alertmanager import AlertmanagerService, AlertReceiverService

    apply_migrations(settings.database_admin_url)
    registry = load_registry(settings.registry_path)
    if "hc-campus" not in registry.sites:
        print(f"the registry {settings.registry_path} has no campus site hc-campus")
        return 1
    from db.alerts import list_alerts

    already = {(a["rule_id"], a["subject"]): a for a in
               list_alerts(settings.database_url, ["firing"]) if a["site_id"] == "hc-campus"}
    demo_keys = {("campus-night-load", NIGHT_METER), ("meter-offline", OFFLINE_METER)}
    if demo_keys <= set(already):
        since = ", ".join(f"{k[1]} since {already[k]['firing_since']:%Y-%m-%d %H:%M} UTC"
                          for k in sorted(demo_keys))
        print(f"the demo's two alerts are still firing from an earlier run ({since}); they "
              "were delivered then, and Alertmanager sends one message per problem, not one "
              "per run (see nzc alerts list / nzc alerts deliveries)")
        return 0
    sync_registry(settings.database_admin_url, registry, str(settings.registry_path),
                  registry_text(settings.registry_path))
    sink = RobotSink(int(os.environ.get("NZC_ALERT_DEMO_PORT", "19013")))
    os.environ.update(robot_env(sink.url))
    print(f"local robot endpoint (stands in for WeCom/DingTalk/Feishu): {sink.url}")
    receiver = AlertReceiverService(settings)
    receiver.down()
    receiver.up()  # restarted so that it reads the robot addresses above
    AlertmanagerService(settings).up()
    now = datetime.now(UTC)
    night = inject(settings, now)
    print(f"injected: {NIGHT_METER} at 15 kW from {night + timedelta(hours=1):%Y-%m-%d %H:%M} "
          f"(typical 5 kW); {OFFLINE_METER} silent since {now - timedelta(hours=2):%H:%M} UTC")
    rules = [r for r in load_rules(asettings.rules_path)
             if r.rule_id in ("campus-night-load", "meter-offline")]
    ev = load_evaluator(settings.database_url, registry, rules, asettings)
    deadline = time.monotonic() + timeout_s
    wanted = {"NightBaseLoad", "MeterOffline"}
    seen: set[str] = set()
    while time.monotonic() < deadline and not wanted <= seen:
        ev.cycle(periodic=True)
        for r in sink.snapshot():
            text = json.dumps(r["body"], ensure_ascii=False)
            seen |= {w for w in wanted if w in text or
                     ("夜间" in text and w == "NightBaseLoad") or
                     ("表计离线" in text and w == "MeterOffline")}
        time.sleep(2)
    for r in sink.snapshot():
        body = r["body"]
        text = (body.get("markdown", {}).get("content") or body.get("markdown", {}).get("text")
                or json.dumps(body.get("card", {}), ensure_ascii=False))
        print(f"\n--- {r['path']} ({r['bytes']} bytes, signature "
              f"{'verified' if r['signed_ok'] else 'WRONG'}) ---\n{text}")
    sink.close()
    ok = wanted <= seen
    print("\nboth alerts delivered" if ok else f"\nmissing after {timeout_s:.0f} s: "
          f"{sorted(wanted - seen)}; see nzc alerts list / nzc alerts deliveries")
    return 0 if ok else 1
