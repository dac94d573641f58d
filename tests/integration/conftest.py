"""Shared fixtures for the tests against real services.

The tests run their own Mosquitto, Kafka and PostgreSQL, on ports and in a state folder of
their own (``.state/test``), so they never touch the demo's data: the session starts from a
clean slate (``reset`` then ``up``), applies the migrations, and starts one ingest bridge and
one stream worker that the tests share (the crash test kills and restarts them). A service
that cannot be started fails the session; nothing is skipped.

Authentication is on for every test, as in the demo: the broker refuses anonymous clients and
lets each gateway publish only to its own topics (ACL from the test registry); PostgreSQL
asks for SCRAM passwords. Every MQTT publish goes through :func:`publish_payloads` or
:func:`gateway_auth` / :func:`mosquitto_pub_auth` here, which take the gateways' passwords
from the state folder's credential store: credentials live in this one place.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
# NZC_TEST_PORT_OFFSET lets several checkouts or developers run the suite side by side.
_OFF = int(os.environ.get("NZC_TEST_PORT_OFFSET", "0"))
TEST_ENV = {
    "NZC_STATE_DIR": str(REPO / ".state" / (f"test{_OFF}" if _OFF else "test")),
    "NZC_MQTT_PORT": str(18841 + _OFF),
    "NZC_MQTT_TLS_PORT": str(18842 + _OFF),
    # the broker logs every packet, so that ACL denials ("Denied PUBLISH") can be checked
    "NZC_MQTT_LOG_DEBUG": "1",
    "NZC_KAFKA_BOOTSTRAP": f"127.0.0.1:{19102 + _OFF}",
    "NZC_KAFKA_CONTROLLER_PORT": str(19103 + _OFF),
    "NZC_PG_PORT": str(15442 + _OFF),
    "NZC_REGISTRY": str(REPO / "tests" / "data" / "registry.yaml"),
    "NZC_INTERVAL_S": "900",
    "NZC_LATENESS_S": "21600",
    "NZC_MAX_CLOCK_SKEW_S": "300",
    "NZC_KAFKA_SESSION_TIMEOUT_S": "10",
    # alerts (issue 13)
    "NZC_ALERTMANAGER_PORT": str(19021 + _OFF),
    "NZC_ALERT_RECEIVER_PORT": str(19022 + _OFF),
}
for _k, _v in TEST_ENV.items():
    os.environ[_k] = _v
# The database URLs derive from the port unless given: drop inherited ones.
for _k in ("NZC_DATABASE_URL", "NZC_DATABASE_ADMIN_URL", "NZC_DATABASE_READER_URL",
           # and credentials or TLS options of another environment: the tests use the
           # launcher's generated ones (plaintext port with passwords, TLS on NZC_MQTT_TLS_PORT)
           "NZC_MQTT_TLS", "NZC_MQTT_USERNAME", "NZC_MQTT_PASSWORD", "NZC_MQTT_CA_FILE",
           "NZC_MQTT_CERT_FILE", "NZC_MQTT_KEY_FILE", "NZC_MQTT_GATEWAY_CREDENTIALS",
           "NZC_PG_PASSFILE"):
    os.environ.pop(_k, None)

from core.settings import Settings  # noqa: E402


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str,
             interval_s: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def services(settings: Settings) -> Iterator[Settings]:
    from db.migrate import apply_migrations
    from nzc.services import manager

    manager.reset(settings)
    manager.up(settings)
    apply_migrations(settings.database_admin_url)
    yield settings
    if os.environ.get("NZC_KEEP_TEST_SERVICES") != "1":
        manager.down(settings)


def publish_payloads(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    """Publish raw payloads at QoS 1 through the real broker and wait for every PUBACK, each
    as the gateway whose ACL allows its topic (passwords from the credential store)."""
    from simulators.publisher import MqttPublisher

    with MqttPublisher(settings.mqtt_host, settings.mqtt_port, settings=settings) as pub:
        for topic, payload in messages:
            pub.publish(topic, payload)


def gateway_auth(settings: Settings, username: str) -> Any:
    """The :class:`core.mqtt_client.MqttClientAuth` of MQTT user ``username`` (a gateway
    ``<site>/<gateway>``, ``nzc-health`` or ``nzc-ingest``) from the credential store."""
    from core.mqtt_client import stored_auth

    return stored_auth(settings, username)


def mosquitto_pub_auth(settings: Settings, username: str) -> list[str]:
    """``mosquitto_pub``/``mosquitto_sub`` options to log in as ``username``."""
    auth = gateway_auth(settings, username)
    return ["-u", auth.username, "-P", auth.password]


def query(settings: Settings, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run a read query as the read-only role."""
    with psycopg.connect(settings.database_reader_url) as conn:
        return list(conn.execute(sql, params).fetchall())


class Pipeline:
    """The ingest bridge and stream worker processes under test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts = {"ingest": 0, "stream": 0}

    def start(self, kind: str, env: dict[str, str] | None = None) -> None:
        """Start a worker of ``kind`` (``env``: extra environment of a stream worker)."""
        from nzc.procs import start_ingest_ready, start_worker

        self.starts[kind] += 1
        name = f"{kind}-{self.starts[kind]}"
        if kind == "ingest":
            self.procs[kind] = start_ingest_ready(self.settings, log_name=name)
        else:
            self.procs[kind] = start_worker(kind, self.settings, log_name=name, env=env)

    def kill(self, kind: str) -> None:
        """SIGKILL: no clean shutdown, no flush, no commit."""
        proc = self.procs[kind]
        proc.kill()
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        from nzc.procs import stop_worker

        for proc in self.procs.values():
            stop_worker(proc)

    def assert_alive(self) -> None:
        for kind, proc in self.procs.items():
            log = self.settings.state_dir / "logs" / f"{kind}-{self.starts[kind]}.log"
            assert proc.poll() is None, f"{kind} worker exited; see {log}"


@pytest.fixture(scope="session")
def pipeline(services: Settings) -> Iterator[Pipeline]:
    p = Pipeline(services)
    try:
        p.start("stream")
        p.start("ingest")
        # Ready when a probe reading has gone all the way into the readings audit table.
        ts = int(time.time() * 1000) - 60_000
        payload = (b'{"meter": "probe", "ts": %d, "register": 1.0, "unit": "kWh"}' % ts)
        publish_payloads(services, [("nzc/v1/test-site/gw1/readings", payload)])
        wait_for(lambda: (p.assert_alive(), query(services, "SELECT 1 FROM readings WHERE "
                                                   "meter_id = 'probe'"))[1],
                 180, "the probe reading to reach the database")
        yield p
    finally:
        # also when start-up failed: a leftover ingest with the same MQTT client id would
        # take the session over from the next run's ingest, back and forth
        p.stop_all()


def nzc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``nzc`` command of this checkout (the test session's environment)."""
    return subprocess.run([str(REPO / ".venv" / "bin" / "nzc"), *args], capture_output=True,
                          text=True, timeout=120, env=env or {**os.environ}, check=False)


def add_users(users: Sequence[tuple[str, str, Sequence[str]]]) -> dict[str, str]:
    """``nzc users add`` each (name, role, sites); name -> bearer token (printed once)."""
    tokens = {}
    for name, role, sites in users:
        out = nzc("users", "add", name, "--role", role,
                  *[a for x in sites for a in ("--site", x)])
        assert out.returncode == 0, out.stderr
        tokens[name] = out.stdout.strip().splitlines()[-1]
    return tokens


@contextmanager
def running_api(settings: Settings, port: int, log_name: str) -> Iterator[str]:
    """``nzc api`` on loopback ``port`` (restatement scan off) until the block ends; yields
    its base URL once ``/openapi.json`` answers."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NZC_API_PORT": str(port), "NZC_RESTATEMENT_SCAN_S": "0"}
    with open(settings.state_dir / log_name, "w") as log:
        proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "nzc"), "api"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            def up() -> bool:
                assert proc.poll() is None, f"nzc api exited; see {log.name}"
                try:
                    return httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False
            wait_for(up, 60, "the API to answer")
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)
