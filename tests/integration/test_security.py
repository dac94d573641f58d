"""Authentication and authorisation against the real Mosquitto and PostgreSQL (issue 9).

A gateway publishes only for its own site and gateway; nobody connects without a password;
TLS works with the launcher's CA and a plaintext client cannot use the TLS listener; the
writer cannot touch the registry, the reader cannot write; no password ever shows in what
``nzc`` prints or in a log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from core.mqtt_client import MqttClientAuth, stored_auth, tls_options
from core.secret_store import read_json_secret, read_pgpass_users
from core.settings import Settings
from simulators.publisher import MqttPublisher, PublishError

from .conftest import REPO, Pipeline, gateway_auth, mosquitto_pub_auth, query, wait_for

INTERVAL_MS = 900_000


def _ts_ms() -> int:
    """A reading time inside the accepted lateness, on a 15-minute boundary [epoch ms]."""
    now = int(time.time() * 1000) - 2 * 3600 * 1000
    return now - now % INTERVAL_MS


def _payload(meter: str, ts_ms: int, register: float) -> bytes:
    return json.dumps({"meter": meter, "ts": ts_ms, "register": register,
                       "unit": "kWh"}).encode()


def _publish_as(s: Settings, auth: MqttClientAuth, msgs: list[tuple[str, bytes]],
                client_id: str | None = None) -> None:
    with MqttPublisher(s.mqtt_host, s.mqtt_port, auth=auth, client_id=client_id) as pub:
        for topic, payload in msgs:
            pub.publish(topic, payload)


def _readings(s: Settings, meter: str) -> int:
    return int(query(s, "SELECT count(*) FROM readings WHERE meter_id = %s", (meter,))[0][0])


def _broker_log(s: Settings) -> str:
    return (s.state_dir / "mosquitto" / "mosquitto.log").read_text(errors="replace")


def _accepted(s: Settings, auth: MqttClientAuth, topic: str) -> bool:
    """Whether the broker lets ``auth`` in and acknowledges its message on ``topic``."""
    try:
        _publish_as(s, auth, [(topic, b"{}")])
    except PublishError:
        return False
    return True


def _refused_login(s: Settings, auth: MqttClientAuth) -> bool:
    try:
        _publish_as(s, auth, [])
    except PublishError as exc:
        return "refused the connection" in str(exc)
    return False


def _nzc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nzc.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env={**os.environ, **(env or {})},
                          check=False)


def _all_passwords(s: Settings) -> list[str]:
    mqtt = read_json_secret(s.mqtt_credentials_path)["users"]
    out = [str(u["password"]) for u in mqtt.values()]
    out += list(read_pgpass_users(s.pg_passfile).values())
    assert len(out) >= 5 and all(len(p) >= 24 for p in out)
    return out


# --- MQTT -----------------------------------------------------------------------------------


def test_anonymous_connect_refused(services: Settings) -> None:
    with pytest.raises(PublishError, match=r"refused the connection.*Not authorized"):
        _publish_as(services, tls_options(services), [])


def test_wrong_password_refused(services: Settings) -> None:
    bad = MqttClientAuth("sec-site/gw-a", "not-the-password")
    with pytest.raises(PublishError, match=r"refused the connection.*Not authorized"):
        _publish_as(services, bad, [])
    unknown = MqttClientAuth("sec-site/gw-none", gateway_auth(services, "sec-site/gw-a").password)
    with pytest.raises(PublishError, match="refused the connection"):
        _publish_as(services, unknown, [])


def test_gateway_publishes_only_its_own_topics(pipeline: Pipeline) -> None:
    """gw-a may write nzc/v1/sec-site/gw-a/readings only: the broker refuses (PUBACK 0x87) and
    logs its messages to another gateway's and another site's topic, and ingest never sees
    them; the same gateway's own message, published after them, lands."""
    s = pipeline.settings
    gw_a = gateway_auth(s, "sec-site/gw-a")
    ts = _ts_ms()
    before_b = _readings(s, "sec-b")
    client = f"sec-test-{uuid.uuid4().hex[:8]}"
    intruding = [("nzc/v1/sec-site/gw-b/readings", _payload("sec-b", ts, 10.0)),  # other gateway
                 ("nzc/v1/test-site/gw1/readings", _payload("sec-b", ts + 1000, 11.0)),  # site
                 ("tele/tasmota-pump/SENSOR", b'{"ENERGY": {"Total": 1.0}}')]  # vendor topic
    for topic, payload in intruding:
        with pytest.raises(PublishError, match=r"refused by the broker.*Not authorized"):
            _publish_as(s, gw_a, [(topic, payload)], client_id=client)
    _publish_as(s, gw_a, [("nzc/v1/sec-site/gw-a/readings", _payload("sec-a", ts, 5.0)),
                          ("nzc/v1/sec-site/gw-a/readings",
                           _payload("sec-a", ts + INTERVAL_MS, 6.5))], client_id=client)
    wait_for(lambda: _readings(s, "sec-a") >= 2, 60, "gw-a's own readings in the database")
    # ingest handles messages in order: the refused ones, sent first, would be there by now
    assert _readings(s, "sec-b") == before_b
    leaked = query(s, "SELECT count(*) FROM dead_letters WHERE payload LIKE '%%sec-b%%'"
                      " OR (mqtt_topic = 'tele/tasmota-pump/SENSOR'"
                      "     AND payload LIKE '%%\"Total\": 1.0}%%')")
    assert leaked == [(0,)]
    log = wait_for(lambda: (t := _broker_log(s)).count(f"Denied PUBLISH from {client}") >= 3
                   and t, 30, "the broker's denial log lines")
    for topic, _ in intruding:
        assert f"Denied PUBLISH from {client} (d0, q1, r0, m1, '{topic}'" in log


def test_vendor_topics_bound_to_their_gateway(services: Settings) -> None:
    """A Tasmota gateway cannot publish a Zigbee2MQTT device's topic; a topic of no gateway
    has no identity to publish with at all."""
    tas = gateway_auth(services, "fmt-site/tasmota")
    with pytest.raises(PublishError, match="Not authorized"):
        _publish_as(services, tas, [("zigbee2mqtt/pump-room-meter", b'{"energy": 1.0}')])
    with (pytest.raises(PublishError, match=r"no gateway .* may publish to 'tele/tasmota-unk"),
          MqttPublisher(services.mqtt_host, services.mqtt_port, settings=services) as pub):
        pub.publish("tele/tasmota-unknown/SENSOR", b"{}")


def test_ingest_identity_cannot_publish(services: Settings) -> None:
    ingest = stored_auth(services, services.mqtt_username)
    with pytest.raises(PublishError, match="Not authorized"):
        _publish_as(services, ingest, [("nzc/v1/sec-site/gw-a/readings", b"{}")])


def test_mosquitto_pub_over_tls_lands(pipeline: Pipeline) -> None:
    s = pipeline.settings
    ca = s.mqtt_ca_path
    assert ca is not None and ca.exists()
    ts = _ts_ms()
    for k in range(2):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(s.mqtt_tls_port),
                        "--cafile", str(ca), *mosquitto_pub_auth(s, "sec-site/gw-a"), "-q", "1",
                        "-t", "nzc/v1/sec-site/gw-a/readings",
                        "-m", _payload("sec-tls", ts + k * INTERVAL_MS, 1.0 + k).decode()],
                       check=True, timeout=30, capture_output=True)
    wait_for(lambda: _readings(s, "sec-tls") >= 2, 60, "the readings sent over TLS")


def test_plaintext_client_cannot_use_tls_listener(services: Settings) -> None:
    plain = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(services.mqtt_tls_port),
                            *mosquitto_pub_auth(services, "sec-site/gw-a"), "-q", "1",
                            "-t", "nzc/v1/sec-site/gw-a/readings", "-m", "{}"],
                           capture_output=True, text=True, timeout=30, check=False)
    assert plain.returncode != 0
    # and the paho client of ours without TLS options
    pub = MqttPublisher(services.mqtt_host, services.mqtt_tls_port,
                        auth=gateway_auth(services, "sec-site/gw-a"))
    try:
        with pytest.raises(PublishError, match=r"CONNACK|refused|cannot connect"):
            pub.connect(timeout_s=5)
    finally:
        pub.close()


def test_rotation_prints_once_and_reloads_the_broker(services: Settings) -> None:
    old = gateway_auth(services, "sec-site/gw-rot")
    first = _nzc("gateways", "credentials", "--rotate", "sec-site/gw-rot")
    assert first.returncode == 0, first.stderr
    new = gateway_auth(services, "sec-site/gw-rot")
    assert new.password != old.password
    assert f"sec-site/gw-rot  {new.password}" in first.stdout
    again = _nzc("gateways", "credentials")
    assert again.returncode == 0 and new.password not in again.stdout + again.stderr
    # the running broker reloads its password file (SIGHUP, handled asynchronously): the new
    # password is accepted, the old one refused
    wait_for(lambda: _accepted(services, new, "nzc/v1/sec-site/gw-rot/readings"), 30,
             "the new password to be accepted")
    assert _refused_login(services, old)


def test_new_gateway_in_the_registry_gets_its_own_topic(services: Settings,
                                                        tmp_path: Path) -> None:
    """A user adds a gateway to the registry and runs `nzc gateways credentials`: it gets a
    password (shown once) and may publish to its topic, not to another's."""
    extra = tmp_path / "registry.yaml"
    base = (REPO / "tests" / "data" / "registry.yaml").read_text(encoding="utf-8")
    extra.write_text(base + (
        "  - id: sec-new\n    name: Added later\n    type: park\n    province: sichuan\n"
        "    city: Chengdu\n    baseline_year: 2022\n    meters:\n"
        "      - {id: sec-new-1, carrier: grid_import, unit: kWh, gateway: gw-new, "
        "register_max: 1000000, max_rate_per_h: 5000}\n"), encoding="utf-8")
    try:
        out = _nzc("gateways", "credentials", env={"NZC_REGISTRY": str(extra)})
        assert out.returncode == 0, out.stderr
        auth = gateway_auth(services, "sec-new/gw-new")
        assert f"sec-new/gw-new  {auth.password}" in out.stdout
        wait_for(lambda: _accepted(services, auth, "nzc/v1/sec-new/gw-new/readings"), 30,
                 "the new gateway's first message to be accepted")
        with pytest.raises(PublishError, match="Not authorized"):
            _publish_as(services, auth, [("nzc/v1/sec-site/gw-a/readings", b"{}")])
    finally:
        back = _nzc("gateways", "credentials")  # the session's registry again
        assert back.returncode == 0, back.stderr
    wait_for(lambda: _refused_login(services, auth), 30, "the removed gateway to be refused")


# --- PostgreSQL -----------------------------------------------------------------------------


def test_passwords_are_scram_and_required(services: Settings) -> None:
    with psycopg.connect(services.database_admin_url) as conn:
        rows = conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN"
                            " ('postgres', 'nzc_writer', 'nzc_reader')").fetchall()
        hba = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules"
                           " WHERE type = 'host'").fetchall()
    assert len(rows) == 3 and all(str(p).startswith("SCRAM-SHA-256$4096:") for _, p in rows)
    assert hba == [("scram-sha-256",)]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(services.database_reader_url_config.replace(
            "nzc_reader@", "nzc_reader:wrong@")).close()
    for path in (services.pg_passfile, services.mqtt_credentials_path):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert services.pg_passfile.parent.stat().st_mode & 0o777 == 0o700


def test_writer_cannot_alter_the_registry(services: Settings) -> None:
    statements = ["UPDATE sites SET name = 'x' WHERE site_id = 'sec-site'",
                  "DELETE FROM meters WHERE meter_id = 'sec-a'",
                  "INSERT INTO registry_versions (source, sha256, document)"
                  " VALUES ('x', 'x', '{}')",
                  "UPDATE instruments SET quantity = 0",
                  "DELETE FROM schema_migrations",
                  "CREATE TABLE writer_table (x int)"]
    for statement in statements:
        with (psycopg.connect(services.database_url) as conn,
              pytest.raises(errors.InsufficientPrivilege)):
            conn.execute(statement)


def test_reader_cannot_write(services: Settings) -> None:
    statements = ["INSERT INTO dead_letters (dedup_key, stage, code, reason, mqtt_topic,"
                  " payload, received_at) VALUES ('x', 'ingest', 'x', 'x', 'x', 'x', now())",
                  "UPDATE energy_intervals SET quantity = 0",
                  "DELETE FROM readings", "UPDATE sites SET name = 'x'",
                  "CREATE TABLE reader_table (x int)"]
    for statement in statements:
        with (psycopg.connect(services.database_reader_url) as conn,
              pytest.raises(errors.InsufficientPrivilege)):
            conn.execute(statement)


# --- secrets never printed or logged ---------------------------------------------------------


def test_no_password_in_nzc_output_or_logs(pipeline: Pipeline) -> None:
    s = pipeline.settings
    secrets = _all_passwords(s)
    outputs = [_nzc("services", "status"), _nzc("gateways", "list"),
               _nzc("gateways", "credentials"), _nzc("db", "migrate"), _nzc("summary"),
               _nzc("registry", "load")]
    for proc in outputs:
        assert proc.returncode == 0, proc.args
    text = "\n".join(p.stdout + p.stderr for p in outputs)
    text += repr(s) + repr(gateway_auth(s, "sec-site/gw-a"))
    logs = [*(s.state_dir / "logs").glob("*.log"), s.state_dir / "mosquitto" / "mosquitto.log",
            s.state_dir / "mosquitto" / "mosquitto.out", s.state_dir / "postgres" / "postgres.log",
            *(s.state_dir / "kafka" / "logs").glob("*.log")]
    for path in logs:
        if path.exists():
            text += path.read_text(errors="replace")
    assert len(text) > 10_000
    leaked = [p[:4] + "..." for p in secrets if p in text]
    assert leaked == []


def test_ingest_and_simulator_clients_over_tls(services: Settings) -> None:
    """With NZC_MQTT_TLS=1 our own clients, built from settings only, talk TLS: the
    simulator's publisher (as the gateway) and the ingest bridge's subscriber (as nzc-ingest,
    verifying the broker with the launcher's CA)."""
    import asyncio
    import dataclasses

    from core.mqtt_client import ingest_auth
    from ingest.mqtt import InboundMessage, MqttSource

    tls = dataclasses.replace(services, mqtt_tls=True, mqtt_port=services.mqtt_tls_port)
    topic = "nzc/v1/sec-site/gw-b/readings"
    body = b'{"tls": "%s"}' % uuid.uuid4().hex.encode()

    async def scenario() -> InboundMessage:
        queue: asyncio.Queue[InboundMessage] = asyncio.Queue()
        source = MqttSource(tls.mqtt_host, tls.mqtt_port, f"sec-tls-{uuid.uuid4().hex[:8]}",
                            [topic], queue, asyncio.get_running_loop(), auth=ingest_auth(tls))
        source.start()
        try:
            await asyncio.wait_for(source.connected.wait(), 30)
            await asyncio.to_thread(_publish_via_settings, tls, topic, body)
            msg = await asyncio.wait_for(queue.get(), 30)
            source.ack(msg)
            return msg
        finally:
            source.stop()

    got = asyncio.run(scenario())
    assert (got.topic, got.payload) == (topic, body)


def _publish_via_settings(s: Settings, topic: str, body: bytes) -> None:
    with MqttPublisher(s.mqtt_host, s.mqtt_port, settings=s) as pub:
        pub.publish(topic, body)
        assert pub.identities == ["sec-site/gw-b"]


def test_oversized_message_refused(services: Settings) -> None:
    """message_size_limit (1 MiB): the broker drops a bigger publish and logs it (Mosquitto
    2.0.11 sends no PUBACK for it, so the publisher reports it unacknowledged); a small one
    from the same gateway goes through."""
    assert services.mqtt_message_size_limit == 1024 * 1024
    gw_a = gateway_auth(services, "sec-site/gw-a")
    client = f"sec-big-{uuid.uuid4().hex[:8]}"
    big = b'{"readings": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    with (pytest.raises(PublishError, match=r"unacknowledged|refused by the broker"),
          MqttPublisher(services.mqtt_host, services.mqtt_port, auth=gw_a, client_id=client,
                        ack_timeout_s=3) as pub):
        pub.publish("nzc/v1/sec-site/gw-a/readings", big)
    wait_for(lambda: f"Dropped too large PUBLISH from {client}" in _broker_log(services), 30,
             "the broker's log line for the oversized message")
    _publish_as(services, gw_a, [("nzc/v1/sec-site/gw-a/readings", big[:1000])])
