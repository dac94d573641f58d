"""Alerts against the real services: PostgreSQL (rows written as the sink writes them),
Prometheus Alertmanager (started by the project's launcher, small group timings), our robot
receiver (a process started by the launcher), an aiosmtpd SMTP server, a local HTTP server
standing in for the WeCom/DingTalk/Feishu endpoints that checks their signatures, and
Mosquitto for the MQTT channel.

Each test starts Alertmanager and the receiver afresh (no state carried between tests) and
waits for deliveries with bounded polls; nothing asserts on elapsed time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import psycopg
import pytest
import yaml
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion

from alerts.am import Alertmanager
from alerts.channels import Channel
from alerts.config import AlertSettings
from alerts.evaluate import Evaluator
from alerts.rules import Rule, parse_rules
from alerts.workdays import repair_deadline
from core.settings import Settings
from db.alerts import inject_intervals, inject_reading
from nzc.alerts_demo import RobotSink, last_night, night_rows, robot_env
from tests.integration.conftest import _OFF, REPO, gateway_auth, wait_for

CAMPUS = REPO / "simulators" / "sites" / "campus.yaml"
SECRET = "SECtest-secret-0123456789"
ROBOT_PATHS = ("/wecom", "/dingtalk", "/feishu")


class SmtpSink:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 Message accepted for delivery"


@dataclass
class Stack:
    settings: Settings
    asettings: AlertSettings
    sink: RobotSink
    smtp: SmtpSink
    mqtt_messages: list[dict[str, Any]] = field(default_factory=list)

    def evaluator(self, rules: list[Rule], with_am: bool = True) -> Evaluator:
        from core.registry_yaml import load_registry

        return Evaluator(self.settings.database_url, load_registry(CAMPUS), rules,
                         self.asettings, Alertmanager(self.asettings.alertmanager_url)
                         if with_am else None)

    def robot(self, path: str, status: str) -> list[dict[str, Any]]:
        """Messages of ``status`` (firing/resolved) the robot at ``path`` received."""
        word = "告警 FIRING" if status == "firing" else "已恢复 RESOLVED"
        out = []
        for r in self.sink.snapshot():
            if r["path"] != path:
                continue
            text = json.dumps(r["body"], ensure_ascii=False)
            if word in text:
                out.append(r)
        return out

    def generic(self, status: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.sink.snapshot()
                if r["path"] == "/generic" and r["body"].get("status") == status]

    def emails(self, status: str) -> list[str]:
        with self.smtp.lock:
            return [m for m in self.smtp.messages if f"[nzc {status}]" in m]

    def mqtt(self, status: str) -> list[dict[str, Any]]:
        return [m for m in list(self.mqtt_messages) if m.get("status") == status]

    def counts(self, status: str) -> dict[str, int]:
        out = {p: len(self.robot(p, status)) for p in ROBOT_PATHS}
        out["email"] = len(self.emails(status))
        out["webhook"] = len(self.generic(status))
        out["mqtt"] = len(self.mqtt(status))
        return out


def rules_from(text: str) -> list[Rule]:
    return parse_rules(yaml.safe_load(text), "<test>")


NIGHT_RULE = """
rules:
  - id: night
    kind: night_load
    match: {meters: [hc-dorm-1]}
    severity: warning
    for: 30m
    labels: {owner: campus-facilities}
    params: {ratio: 0.3, min_margin_kw: 2.0, weeks: 4, min_nights: 2}
"""

OFFLINE_RULES = """
rules:
  - id: offline
    kind: offline
    match: {gateways: [gw-util]}
    params: {after_min: 5}
  - id: gw-offline
    kind: gateway_offline
    match: {gateways: [gw-util]}
    severity: critical
    params: {after_min: 5}
"""


@pytest.fixture
def stack(services: Settings, tmp_path: Path) -> Iterator[Stack]:
    from core.registry_yaml import load_registry, registry_text
    from db.sink import sync_registry
    from nzc.services.alertmanager import AlertmanagerService, AlertReceiverService

    smtp_port, sink_port = 18025 + _OFF, 18070 + _OFF
    smtp = SmtpSink()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    sink = RobotSink(sink_port, SECRET)
    env = {**robot_env(sink.url, SECRET),
           "NZC_ALERTMANAGER_GROUP_WAIT": "1s", "NZC_ALERTMANAGER_GROUP_INTERVAL": "2s",
           "NZC_ALERTMANAGER_REPEAT_INTERVAL": "4h",
           "NZC_SMTP_SMARTHOST": f"127.0.0.1:{smtp_port}",
           "NZC_ALERT_EMAIL_TO": "facilities@campus.test",
           "NZC_ALERT_WEBHOOK_URL": f"{sink.url}/generic"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    am_svc, recv_svc = AlertmanagerService(services), AlertReceiverService(services)
    for svc in (am_svc, recv_svc):
        svc.down()
    shutil.rmtree(am_svc.home / "data", ignore_errors=True)
    am_svc.up()
    recv_svc.up()
    with psycopg.connect(services.database_admin_url) as conn:
        conn.execute("TRUNCATE alert_events, alerts, alert_cursors, alert_deliveries, "
                     "alert_rules RESTART IDENTITY CASCADE")
        conn.execute("DELETE FROM energy_intervals WHERE site_id = 'hc-campus'")
        conn.execute("DELETE FROM readings WHERE meter_id LIKE 'hc-%' OR meter_id = 'alert-el'")
    sync_registry(services.database_admin_url, load_registry(CAMPUS), str(CAMPUS),
                  registry_text(CAMPUS))
    st = Stack(services, AlertSettings.from_env(), sink, smtp)

    def on_message(client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        st.mqtt_messages.append(json.loads(msg.payload))

    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                      client_id=f"alerts-test-{os.getpid()}")
    sub.on_message = on_message
    auth = gateway_auth(services, "nzc-alerts")
    sub.username_pw_set(auth.username, auth.password)
    sub.connect(services.mqtt_host, services.mqtt_port)
    sub.subscribe("nzc/v1/alerts/#", qos=1)
    sub.loop_start()
    try:
        yield st
    finally:
        sub.loop_stop()
        sub.disconnect()
        controller.stop()
        sink.close()
        recv_svc.down()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        # the session's receiver again, with the session's settings: later tests expect every
        # service of `nzc services up` to run
        wait_for(lambda: _port_free(recv_svc.port), 30, "the receiver's port to be free")
        recv_svc.up()


def _port_free(port: int) -> bool:
    """Whether a server can listen on ``port`` (as the receiver does: SO_REUSEADDR, so the
    connections in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def write_normal_nights(settings: Settings, night: datetime) -> None:
    with psycopg.connect(settings.database_url) as conn:
        for k in range(1, 5):
            inject_intervals(conn, night_rows("hc-dorm-1", "hc-campus",
                                              night - timedelta(days=7 * k), [5.0] * 24))


def write_night(settings: Settings, night: datetime, first: int, kw: list[float],
                quality: str = "measured") -> None:
    rows = night_rows("hc-dorm-1", "hc-campus", night, [0.0] * first + kw, quality)[first:]
    with psycopg.connect(settings.database_url) as conn:
        inject_intervals(conn, rows)


def cycle_until(ev: Evaluator, predicate: Any, what: str, timeout_s: float = 90) -> Any:
    return wait_for(lambda: (ev.cycle(), predicate())[1], timeout_s, what, interval_s=0.5)


def all_channels(st: Stack, status: str, n: int) -> bool:
    return all(v >= n for v in st.counts(status).values())


def events(settings: Settings) -> list[tuple[str, str]]:
    with psycopg.connect(settings.database_reader_url) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT a.fingerprint, e.event FROM alert_events e JOIN alerts a USING (alert_id) "
            "ORDER BY e.event_id").fetchall()]


def test_night_load_fires_once_per_channel_resolves_and_fires_again(stack: Stack) -> None:
    st = stack
    night = last_night(datetime.now(UTC))
    write_normal_nights(st.settings, night)
    write_night(st.settings, night, 0, [5.0] * 8)  # 23:00-01:00 ordinary
    ev = st.evaluator(rules_from(NIGHT_RULE))
    ev.cycle()
    write_night(st.settings, night, 8, [15.0] * 4)  # 01:00-02:00 at 15 kW
    cycle_until(ev, lambda: all_channels(st, "firing", 1), "one firing message per channel")
    write_night(st.settings, night, 12, [5.0] * 2)  # 02:00-02:30 back to 5 kW
    cycle_until(ev, lambda: all_channels(st, "resolved", 1), "one resolved message per channel")
    assert st.counts("firing") == {p: 1 for p in st.counts("firing")}
    assert st.counts("resolved") == {p: 1 for p in st.counts("resolved")}
    # the message says what, where, how much against what, since when (Beijing time)
    wecom = st.robot("/wecom", "firing")[0]["body"]["markdown"]["content"]
    # typical = median of four 5 kW nights = 5 kW; threshold = max(5 x 1.3, 5 + 2) = 7 kW;
    # pending from the end of the first high interval (01:15), firing 30 min later (01:45)
    for part in ("hc-dorm-1 / dormitory", "15.00 kW", "7.00 kW", "典型 typical 5.00 kW",
                 f"{night + timedelta(hours=2, minutes=45):%Y-%m-%d %H:%M}"):
        assert part in wecom, (part, wecom)
    assert all(r["signed_ok"] for r in st.sink.snapshot())
    # it fires again when the load rises again
    write_night(st.settings, night, 14, [15.0] * 4)
    cycle_until(ev, lambda: all_channels(st, "firing", 2), "a second firing message")
    assert st.counts("resolved") == {p: 1 for p in st.counts("resolved")}
    assert [e for _, e in events(st.settings)] == ["pending", "firing", "resolved", "pending",
                                                  "firing"]


def test_night_load_does_not_fire_on_estimated_data(stack: Stack) -> None:
    st = stack
    night = last_night(datetime.now(UTC))
    write_normal_nights(st.settings, night)
    write_night(st.settings, night, 0, [15.0] * 12, quality="estimated")
    ev = st.evaluator(rules_from(NIGHT_RULE))
    report = ev.cycle()
    assert report.observations == 12 and report.events == []
    assert events(st.settings) == []
    assert Alertmanager(st.asettings.alertmanager_url).alerts() == []
    # the same values measured do fire (the test above could fail)
    write_night(st.settings, night, 0, [15.0] * 12)
    assert ("night|hc-dorm-1", "firing") in ev.cycle().events


def test_meter_offline_fires_after_n_minutes_with_deadline_then_clears(stack: Stack) -> None:
    st = stack
    now = datetime.now(UTC)
    last = now - timedelta(minutes=4)
    with psycopg.connect(st.settings.database_url) as conn:
        inject_reading(conn, "hc-canteen-gas", last, 10.0, "m3")
        for peer in ("hc-water", "hc-dorm-boiler-gas"):
            inject_reading(conn, peer, now, 10.0, "m3")
    ev = st.evaluator(rules_from(OFFLINE_RULES))
    assert ev.cycle(now=now).events == []  # 4 min < 5 min
    later = now + timedelta(minutes=1, seconds=1)
    assert ev.cycle(now=later).events == [("offline|hc-canteen-gas", "pending"),
                                          ("offline|hc-canteen-gas", "firing")]
    with psycopg.connect(st.settings.database_reader_url) as conn:
        row = conn.execute("SELECT deadline, firing_since FROM alerts WHERE subject = "
                           "'hc-canteen-gas'").fetchone()
    assert row == (repair_deadline(last), last + timedelta(minutes=5))
    cycle_until(ev, lambda: all_channels(st, "firing", 1), "the offline message")
    wecom = st.robot("/wecom", "firing")[0]["body"]["markdown"]["content"]
    assert "表计离线" in wecom and "修复期限" in wecom
    # acknowledged: who/when stored, a silence in Alertmanager until it resolves
    from nzc.cli_alerts import _ack

    with psycopg.connect(st.settings.database_reader_url) as conn:
        found = conn.execute("SELECT alert_id FROM alerts WHERE fingerprint = "
                             "'offline|hc-canteen-gas'").fetchone()
    assert found is not None
    alert_id = found[0]
    assert _ack(st.settings, alert_id, "王工", "") == 0
    am = Alertmanager(st.asettings.alertmanager_url)
    silenced = [a for a in am.alerts() if a["status"]["silencedBy"]]
    assert [a["labels"]["meter"] for a in silenced] == ["hc-canteen-gas"]
    # data returns: resolved, and the silence expires
    with psycopg.connect(st.settings.database_url) as conn:
        inject_reading(conn, "hc-canteen-gas", datetime.now(UTC), 11.0, "m3")
    cycle_until(ev, lambda: all_channels(st, "resolved", 1), "the resolved message")
    ev.cycle()
    with psycopg.connect(st.settings.database_reader_url) as conn:
        acked = conn.execute("SELECT acked_by, silence_id FROM alerts WHERE alert_id = %s",
                             (alert_id,)).fetchone()
    assert acked == ("王工", None)
    assert [e for _, e in events(st.settings)] == ["pending", "firing", "acknowledged",
                                                  "silenced", "resolved"]


def test_whole_gateway_offline_sends_one_gateway_alert(stack: Stack) -> None:
    st = stack
    now = datetime.now(UTC)
    with psycopg.connect(st.settings.database_url) as conn:
        for m in ("hc-canteen-gas", "hc-water", "hc-dorm-boiler-gas"):
            inject_reading(conn, m, now - timedelta(minutes=10), 10.0, "m3")
    ev = st.evaluator(rules_from(OFFLINE_RULES))
    fired = [fp for fp, e in ev.cycle().events if e == "firing"]
    assert len(fired) == 4  # the gateway and its three meters, all stored
    cycle_until(ev, lambda: all_channels(st, "firing", 1), "the gateway message")
    for body in st.generic("firing"):
        assert [a["labels"]["alertname"] for a in body["alerts"]] == ["GatewayOffline"]
    am = Alertmanager(st.asettings.alertmanager_url)
    held = am.alerts()
    inhibited = sorted(a["labels"]["meter"] for a in held if a["status"]["inhibitedBy"])
    assert inhibited == ["hc-canteen-gas", "hc-dorm-boiler-gas", "hc-water"]
    # the meters went offline 5 minutes ago by the data, but Alertmanager was told they
    # start when posted: a backdated startsAt makes it flush the group at once, skipping
    # group_wait, racing its inhibitor (the gateway alert would not mute its meters)
    starts = [datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) for a in held]
    assert all(t >= now - timedelta(seconds=1) for t in starts), starts
    assert st.counts("firing") == {p: 1 for p in st.counts("firing")}


def test_crash_between_commit_and_post_loses_nothing(stack: Stack) -> None:
    st = stack
    night = last_night(datetime.now(UTC))
    write_normal_nights(st.settings, night)
    write_night(st.settings, night, 0, [15.0] * 4)
    # the state change is committed but Alertmanager never hears of it (crash)
    assert ("night|hc-dorm-1", "firing") in st.evaluator(
        rules_from(NIGHT_RULE), with_am=False).cycle().events
    ev = st.evaluator(rules_from(NIGHT_RULE))  # the restarted worker
    cycle_until(ev, lambda: all_channels(st, "firing", 1), "the firing message after restart")
    assert [e for _, e in events(st.settings)] == ["pending", "firing"]


def test_worker_killed_and_restarted_neither_duplicates_nor_loses(stack: Stack,
                                                                   tmp_path: Path) -> None:
    st = stack
    rules = tmp_path / "rules.yaml"
    rules.write_text(NIGHT_RULE, encoding="utf-8")
    env = {**os.environ, "NZC_ALERT_RULES": str(rules), "NZC_ALERT_EVAL_S": "0.5",
           "NZC_REGISTRY": str(CAMPUS)}
    logs = st.settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def start(n: int) -> subprocess.Popen[bytes]:
        with (logs / f"alerts-{n}.log").open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", "nzc.cli", "alerts", "run"],
                                    env=env, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=REPO, start_new_session=True)

    night = last_night(datetime.now(UTC))
    write_normal_nights(st.settings, night)
    worker = start(1)
    try:
        write_night(st.settings, night, 0, [15.0] * 4)
        wait_for(lambda: all_channels(st, "firing", 1), 90, "the firing message")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        worker = start(2)
        write_night(st.settings, night, 4, [5.0] * 2)
        wait_for(lambda: all_channels(st, "resolved", 1), 90, "the resolved message")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert st.counts("firing") == {p: 1 for p in st.counts("firing")}
    assert st.counts("resolved") == {p: 1 for p in st.counts("resolved")}
    assert [e for _, e in events(st.settings)] == ["pending", "firing", "resolved"]


def test_robot_failures_retried_visible_and_long_messages_cut(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import alerts.channels as ch

    monkeypatch.setattr(ch, "BACKOFF_S", 0.01)
    sink = RobotSink(18071 + _OFF, SECRET)
    rows: list[Mapping[str, Any]] = []
    try:
        wrong = Channel("feishu", "feishu", f"{sink.url}/feishu", "SECwrong", None, rows.append)
        wecom = Channel("wecom", "wecom", f"{sink.url}/wecom?key=k", None, None, rows.append)
        alerts = [{"status": "firing", "labels": {"alertname": "MeterOffline",
                                                  "site": "hc-campus", "meter": f"表计-{i}"},
                   "annotations": {"title_zh": "表计离线 meter offline"},
                   "startsAt": "2026-11-24T15:00:00Z"} for i in range(300)]
        note = {"status": "firing", "groupKey": "g", "groupLabels": {"site": "hc-campus"},
                "alerts": alerts}
        wrong.queue.put(note)
        wecom.queue.put(note)
        wait_for(lambda: len([r for r in rows if r["channel"] == "feishu"]) >= ch.MAX_ATTEMPTS
                 and any(r["channel"] == "wecom" for r in rows), 60, "the deliveries")
    finally:
        sink.close()
    feishu = [r for r in rows if r["channel"] == "feishu"]
    assert [r["attempt"] for r in feishu] == list(range(1, ch.MAX_ATTEMPTS + 1))
    assert not any(r["ok"] for r in feishu) and "19021" in str(feishu[-1]["error"])
    sent = [r for r in sink.snapshot() if r["path"] == "/wecom"]
    content = sent[0]["body"]["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096 and content.endswith("truncated)")
    assert [r["truncated"] for r in rows if r["channel"] == "wecom"] == [True]


def interval_rows(meter: str, start: datetime, kwh: list[float]) -> list[dict[str, Any]]:
    return [{"meter_id": meter, "interval_start": start + timedelta(minutes=15 * i),
             "interval_s": 900, "site_id": "hc-campus", "carrier": "grid_import",
             "quantity": q, "unit": "kWh", "covered_s": 900.0, "quality": "measured",
             "estimated_quantity": 0.0, "estimated_s": 0.0} for i, q in enumerate(kwh)]


def test_submeter_imbalance_with_pv_netting_and_gaps(stack: Stack) -> None:
    st = stack
    start = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    rules = rules_from("""
rules:
  - id: imb
    kind: imbalance
    match: {meters: [hc-teach-main]}
    params: {tolerance: 0.1, window: 1h}
  - id: imb-net
    kind: imbalance
    match: {meters: [hc-teach-main]}
    params: {tolerance: 0.1, window: 1h, net_pv: true, pv_meters: [hc-pv]}
""")
    with psycopg.connect(st.settings.database_url) as conn:
        # the parent is net of 2 kWh of PV per interval: 7 = (4 + 4 + 1) - 2
        inject_intervals(conn, interval_rows("hc-teach-main", start, [7.0] * 4))
        inject_intervals(conn, interval_rows("hc-library", start, [1.0] * 4))
        inject_intervals(conn, interval_rows("hc-teach-a", start, [4.0] * 4))
        inject_intervals(conn, interval_rows("hc-teach-b", start, [4.0] * 4))
        inject_intervals(conn, [{**r, "carrier": "onsite_renewable"}
                                for r in interval_rows("hc-pv", start, [2.0] * 4)])
    ev = st.evaluator(rules, with_am=False)
    fired = {fp for fp, e in ev.cycle().events if e == "firing"}
    # gross: |28 - 36| / 28 = 0.29 > 0.1 fires; netted: |28 - (36 - 8)| / 28 = 0 does not
    assert fired == {"imb|hc-teach-main"}
    with psycopg.connect(st.settings.database_reader_url) as conn:
        value = conn.execute("SELECT value FROM alerts WHERE fingerprint = "
                             "'imb|hc-teach-main'").fetchone()
    assert value is not None and value[0] == pytest.approx(8 / 28)
    # a gap in a child: unknown, never read as zero (the alert neither resolves nor moves)
    with psycopg.connect(st.settings.database_admin_url) as conn:
        conn.execute("DELETE FROM energy_intervals WHERE meter_id = 'hc-teach-b' "
                     "AND interval_start = %s", (start + timedelta(minutes=30),))
    assert ev.cycle().events == []


def test_end_to_end_through_mqtt_and_the_stream(stack: Stack, pipeline: Any) -> None:
    """A meter's readings published over MQTT, through ingest, Kafka and the stream into the
    readings table: silent for 10 min it fires; its next reading clears it."""
    from core.registry_yaml import load_registry
    from tests.integration.conftest import publish_payloads, query

    st = stack
    registry = load_registry(REPO / "tests" / "data" / "registry.yaml")
    ev = Evaluator(st.settings.database_url, registry, rules_from("""
rules:
  - id: e2e-offline
    kind: offline
    match: {meters: [alert-el]}
    params: {after_min: 5}
"""), st.asettings, Alertmanager(st.asettings.alertmanager_url))
    topic = "nzc/v1/alert-site/gw-alert/readings"

    def publish(ts: datetime, register: float) -> None:
        ms = int(ts.timestamp() * 1000)
        publish_payloads(st.settings, [(topic, json.dumps(
            {"meter": "alert-el", "ts": ms, "register": register, "unit": "kWh"}).encode())])
        wait_for(lambda: query(st.settings, "SELECT 1 FROM readings WHERE meter_id = "
                               "'alert-el' AND ts = %s", (ts.replace(microsecond=ms % 1000
                                                                     * 1000),)),
                 120, "the reading in the database")

    now = datetime.now(UTC).replace(microsecond=0)
    publish(now - timedelta(minutes=10), 100.0)
    assert ("e2e-offline|alert-el", "firing") in ev.cycle().events
    cycle_until(ev, lambda: len(st.robot("/wecom", "firing")) == 1, "the firing message")
    publish(datetime.now(UTC).replace(microsecond=0), 101.0)
    cycle_until(ev, lambda: len(st.robot("/wecom", "resolved")) == 1, "the resolved message")
    assert [e for _, e in events(st.settings)] == ["pending", "firing", "resolved"]


def test_offline_past_the_repair_deadline_escalates(stack: Stack) -> None:
    st = stack
    sh = ZoneInfo("Asia/Shanghai")
    last = datetime(2025, 9, 30, 10, 0, tzinfo=sh)  # deadline 2025-10-12 00:00 (unit test)
    with psycopg.connect(st.settings.database_url) as conn:
        inject_reading(conn, "hc-canteen-gas", last, 1.0, "m3")
    ev = st.evaluator(rules_from("""
rules:
  - id: offline
    kind: offline
    match: {meters: [hc-canteen-gas]}
    params: {after_min: 30}
"""), with_am=False)
    before = ev.cycle(now=datetime(2025, 10, 11, 23, 59, tzinfo=sh)).events
    assert ("offline|hc-canteen-gas", "firing") in before
    assert not any(fp.endswith("|overdue") for fp, _ in before)
    after = ev.cycle(now=datetime(2025, 10, 12, 0, 1, tzinfo=sh)).events
    assert after == [("offline|hc-canteen-gas|overdue", "pending"),
                     ("offline|hc-canteen-gas|overdue", "firing")]
    with psycopg.connect(st.settings.database_reader_url) as conn:
        labels = conn.execute("SELECT labels FROM alerts WHERE fingerprint = "
                              "'offline|hc-canteen-gas|overdue'").fetchone()
    assert labels is not None
    assert labels[0]["alertname"] == "RepairOverdue" and labels[0]["severity"] == "critical"


def test_routing_file_inhibits_imbalance_of_an_offline_parent(stack: Stack) -> None:
    """The project's routing file as Alertmanager runs it: a parent meter offline inhibits
    its sub-meter imbalance alert; another parent's imbalance stays active."""
    am = Alertmanager(stack.asettings.alertmanager_url)
    now = datetime.now(UTC)

    def alert(name: str, meter: str) -> dict[str, Any]:
        return {"labels": {"alertname": name, "site": "hc-campus", "meter": meter,
                           "severity": "warning"}, "annotations": {},
                "startsAt": now, "endsAt": now + timedelta(minutes=5)}

    am.post_alerts([alert("MeterOffline", "hc-teach-main"),
                    alert("SubmeterImbalance", "hc-teach-main"),
                    alert("SubmeterImbalance", "hc-dorm-main")])
    state = wait_for(lambda: {(a["labels"]["alertname"], a["labels"]["meter"]):
                              bool(a["status"]["inhibitedBy"]) for a in am.alerts()}
                     if len(am.alerts()) == 3 else None, 30, "the three alerts")
    assert state == {("MeterOffline", "hc-teach-main"): False,
                     ("SubmeterImbalance", "hc-teach-main"): True,
                     ("SubmeterImbalance", "hc-dorm-main"): False}
