"""Nothing lost, nothing doubled: faults of the real services in the middle of a stream.

One fault per test, each on meters of its own (``fault-site`` in ``tests/data/registry.yaml``):
SIGKILL of the Kafka broker, SIGKILL of PostgreSQL, a Mosquitto restart with QoS 1 messages
queued for the ingest bridge's persistent session, PostgreSQL unresponsive for 60 s. Each test
publishes part of a stream, injects the fault, publishes the rest, and waits until every
interval equals the value computed independently (boundary interpolation in ``expected.py``)
from the readings it published; then every reading must be in the readings table exactly once
(revision 1) and no dead letter may name its meters. Each test leaves every service running
and answering, as later tests of the session share them. The figures (fault duration, time
to recover) are printed (``pytest -s``) and appended to ``<state>/fault_figures.jsonl``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from nzc.services import ManagedService, process_alive
from nzc.services import kafka as kafka_mod
from nzc.services import mosquitto as mosquitto_mod
from nzc.services import postgres as postgres_mod

from .conftest import Pipeline, publish_payloads, query, wait_for
from .expected import interval_quantities

pytestmark = pytest.mark.services
MIN = 60_000
INTERVAL = 900_000
ROUNDS = 120  # one reading a minute per meter: 2 h, 8 intervals
TOPIC = "nzc/v1/fault-site/gw-fault/readings"
#: per meter: (first register, rate per minute); the second meter of each test is gas in m3
SHAPE = ((5000.0, 1.25), (300.0, 0.125))


class Stream:
    """The readings of one test's two meters, published in two halves around a fault."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.meters = [f"{prefix}-1", f"{prefix}-2"]
        now = int(time.time() * 1000)
        t0 = now - now % INTERVAL - 4 * 3600_000 + 30_000
        self.readings = {
            meter: [(t0 + k * MIN, start + rate * k + (k % (3 + i)) * 0.01)
                    for k in range(ROUNDS)]
            for i, (meter, (start, rate)) in enumerate(zip(self.meters, SHAPE, strict=True))
        }

    def messages(self) -> list[tuple[str, bytes]]:
        out = []
        for k in range(ROUNDS):
            batch = [{"meter": m, "ts": series[k][0], "register": series[k][1],
                      "unit": "m3" if m.endswith("-2") else "kWh"}
                     for m, series in self.readings.items()]
            out.append((TOPIC, json.dumps({"readings": batch}).encode()))
        return out

    def count(self, settings: Settings) -> int:
        return int(query(settings, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)",
                         (self.meters,))[0][0])

    def rows(self, settings: Settings, meter: str) -> dict[int, float]:
        got = query(settings, "SELECT (extract(epoch FROM interval_start) * 1000)::bigint,"
                    " quantity FROM energy_intervals WHERE meter_id = %s", (meter,))
        return {int(t): q for t, q in got}

    def expected(self) -> dict[str, dict[int, float]]:
        return {m: interval_quantities(series, INTERVAL) for m, series in self.readings.items()}

    def settled(self, pipeline: Pipeline) -> bool:
        pipeline.assert_alive()
        for meter, exp in self.expected().items():
            got = self.rows(pipeline.settings, meter)
            if set(got) != set(exp) or any(abs(got[k] - v) > 1e-6 for k, v in exp.items()):
                return False
        return True

    def assert_exact(self, settings: Settings) -> None:
        """Every interval exact, every reading stored once at revision 1, no dead letter."""
        for meter, exp in self.expected().items():
            got = self.rows(settings, meter)
            assert set(got) == set(exp), meter
            for start, qty in exp.items():
                assert got[start] == pytest.approx(qty, rel=1e-9, abs=1e-9), (meter, start)
            series = self.readings[meter]
            assert sum(got.values()) == pytest.approx(series[-1][1] - series[0][1], rel=1e-9)
        stored = query(settings, "SELECT meter_id, count(*), count(DISTINCT ts), max(revision)"
                       " FROM readings WHERE meter_id = ANY(%s) GROUP BY meter_id",
                       (self.meters,))
        assert sorted(stored) == [(m, ROUNDS, ROUNDS, 1) for m in self.meters]
        revisions = query(settings, "SELECT max(revision) FROM energy_intervals WHERE"
                          " meter_id = ANY(%s)", (self.meters,))
        assert revisions == [(1,)]
        dead = query(settings, "SELECT code, count(*) FROM dead_letters WHERE meter_id ="
                     " ANY(%s) OR payload LIKE %s GROUP BY code",
                     (self.meters, f'%"{self.prefix}-%'))
        assert dead == []


def _record(settings: Settings, figures: dict[str, object]) -> None:
    line = json.dumps(figures)
    print(f"\nfault figures: {line}")
    with (settings.state_dir / "fault_figures.jsonl").open("a") as fh:
        fh.write(line + "\n")


def _service(settings: Settings, cls: type[ManagedService]) -> ManagedService:
    service = cls(settings)
    assert service.pid() is not None, f"{service.name} is not running before the fault"
    return service


def _sigkill(service: ManagedService) -> None:
    pid = service.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # the thread group leader of a JVM is a zombie (dead to process_alive) while its other
    # threads still exit and hold the listening socket: wait for the port to close as well
    wait_for(lambda: not process_alive(pid) and not service.answering(), 60,
             f"{service.name} pid {pid} to die and its port to close")


def _healthy(settings: Settings, pipeline: Pipeline) -> None:
    """Every service answers and both workers live (the next tests share them)."""
    pipeline.assert_alive()
    for cls in (mosquitto_mod.Mosquitto, kafka_mod.Kafka, postgres_mod.Postgres):
        service = cls(settings)
        assert service.pid() is not None and service.answering(), service.name


def _run(pipeline: Pipeline, prefix: str, fault: Callable[[], Iterator[None]]) -> float:
    """Publish the first half, wait until the stream has stored part of it, enter ``fault``
    (a generator: the fault before its ``yield``, the publishing of the second half during
    it, the repair after it), then wait until the totals are exact. Returns the seconds from
    the repair to exact totals."""
    s = pipeline.settings
    stream = Stream(prefix)
    msgs = stream.messages()
    publish_payloads(s, msgs[: ROUNDS // 2])
    wait_for(lambda: stream.count(s) >= ROUNDS // 4, 120, "the stream to be under way")
    steps = fault()
    next(steps)  # the fault
    publish_payloads(s, msgs[ROUNDS // 2:])
    with contextlib.suppress(StopIteration):
        next(steps)  # the repair
    repaired = time.monotonic()
    wait_for(lambda: stream.settled(pipeline), 300, f"exact totals of {prefix}-*",
             interval_s=1.0)
    recovered_s = time.monotonic() - repaired
    time.sleep(3)  # anything late or doubled would show now
    stream.assert_exact(s)
    _healthy(s, pipeline)
    return recovered_s


def test_kafka_sigkill_mid_stream(pipeline: Pipeline) -> None:
    s = pipeline.settings
    kafka = _service(s, kafka_mod.Kafka)
    times: dict[str, float] = {}

    def fault() -> Iterator[None]:
        _sigkill(kafka)
        t = time.monotonic()
        yield  # the second half goes to Mosquitto while the broker is dead
        kafka.up()  # waits until it answers and the topics are there
        times["down_s"] = time.monotonic() - t

    recovered = _run(pipeline, "fk", fault)
    _record(s, {"fault": "kafka SIGKILL", "readings": 2 * ROUNDS,
                "broker_down_s": round(times["down_s"], 1),
                "exact_after_restart_s": round(recovered, 1)})


def test_postgres_sigkill_mid_stream(pipeline: Pipeline) -> None:
    s = pipeline.settings
    pg = _service(s, postgres_mod.Postgres)
    times: dict[str, float] = {}

    def fault() -> Iterator[None]:
        _sigkill(pg)
        t = time.monotonic()
        yield
        pg.up()  # clears the dead postmaster's lock, crash recovery, waits until it accepts
        times["down_s"] = time.monotonic() - t

    recovered = _run(pipeline, "fp", fault)
    _record(s, {"fault": "postgres SIGKILL", "readings": 2 * ROUNDS,
                "db_down_s": round(times["down_s"], 1),
                "exact_after_restart_s": round(recovered, 1)})


def test_mosquitto_restart_keeps_queued_messages(pipeline: Pipeline) -> None:
    """The ingest bridge is frozen (SIGSTOP) while the second half is published, so those
    messages are queued in the broker for its persistent session; the broker restarts
    (clean stop: the persistence file is written), then the bridge thaws, reconnects and
    must receive them all."""
    s = pipeline.settings
    mq = _service(s, mosquitto_mod.Mosquitto)
    ingest_pid = pipeline.procs["ingest"].pid
    times: dict[str, float] = {}

    def fault() -> Iterator[None]:
        os.kill(ingest_pid, signal.SIGSTOP)
        try:
            yield  # published now: queued for the frozen bridge
            t = time.monotonic()
            assert mq.down()
            mq.up()
            times["restart_s"] = time.monotonic() - t
        finally:
            os.kill(ingest_pid, signal.SIGCONT)

    recovered = _run(pipeline, "fm", fault)
    _record(s, {"fault": "mosquitto restart, bridge's messages queued", "readings": 2 * ROUNDS,
                "broker_restart_s": round(times["restart_s"], 1),
                "exact_after_restart_s": round(recovered, 1)})


def _postgres_pids(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, checkpointer, walwriter, ...)."""
    children = []
    for task in Path(f"/proc/{postmaster}/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(p) for p in (task / "children").read_text().split()]
    return [postmaster, *children]


def test_postgres_unresponsive_60s_mid_stream(pipeline: Pipeline) -> None:
    """Every PostgreSQL process frozen (SIGSTOP) for 60 s: connections hang, nothing is
    refused; the pipeline must hold the readings (back-pressure) and catch up by itself
    after SIGCONT."""
    s = pipeline.settings
    pg = _service(s, postgres_mod.Postgres)
    postmaster = pg.pid()
    assert postmaster is not None
    times: dict[str, float] = {}

    def fault() -> Iterator[None]:
        pids = _postgres_pids(postmaster)
        t = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
            time.sleep(max(0.0, 60.0 - (time.monotonic() - t)))
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            times["frozen_s"] = time.monotonic() - t

    recovered = _run(pipeline, "fs", fault)
    _record(s, {"fault": "postgres frozen 60 s", "readings": 2 * ROUNDS,
                "db_frozen_s": round(times["frozen_s"], 1),
                "exact_after_thaw_s": round(recovered, 1)})


REPLAY_METERS = ["rp-grid", "rp-office", "rp-gas"]


def test_same_simulated_window_twice_changes_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    """A second ``scripts/demo`` run publishes the same simulated times again: the
    simulator over ``replay-site`` alone, seed 1, twice over windows that overlap by an
    hour. No correction (every reading and interval at revision 1), no dead letter (so no
    ``too_late``), and per meter the raw register differences equal the sum of its intervals
    (a drop is the simulator's once-per-UTC-day register restart: the energy since the
    restart is the new value, as the counters count it)."""
    import yaml

    from simulators.run import run_cli

    s = pipeline.settings
    doc = yaml.safe_load((Path(__file__).parents[1] / "data" / "registry.yaml").read_text())
    doc["sites"] = [site for site in doc["sites"] if site["id"] == "replay-site"]
    registry = tmp_path / "replay-site.yaml"
    registry.write_text(yaml.safe_dump(doc))
    now = int(time.time())
    start = now - now % 3600 - 5 * 3600  # runs [start, start + 2 h] and [start + 1 h, + 3 h]

    def simulate(offset_s: int) -> int:
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + offset_s))
        code, report = run_cli(["--registry", str(registry), "--seed", "1", "--fast",
                                "--start", iso, "--duration-s", "7200"])
        assert code == 0 and report is not None
        return report.readings

    def count() -> int:
        return int(query(s, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)",
                         (REPLAY_METERS,))[0][0])

    def interval_sums() -> dict[str, float]:
        return dict(query(s, "SELECT meter_id, sum(quantity) FROM energy_intervals WHERE"
                          " meter_id = ANY(%s) GROUP BY meter_id", (REPLAY_METERS,)))

    first = simulate(0)
    assert first == 3 * 121
    wait_for(lambda: count() == first, 120, "the first run's readings")
    second = simulate(3600)
    assert second == 3 * 121
    distinct = 3 * 181  # one reading a minute per meter over the 3 h both runs cover
    wait_for(lambda: count() == distinct, 120, "the second run's new readings")

    def raw_energy() -> dict[str, float]:
        out = {}
        for meter in REPLAY_METERS:
            values = [v for (v,) in query(s, "SELECT value FROM readings WHERE meter_id = %s"
                                          " ORDER BY ts", (meter,))]
            out[meter] = sum(b - a if b >= a else b for a, b in itertools.pairwise(values))
        return out

    def agree() -> bool:
        sums, raw = interval_sums(), raw_energy()
        return set(sums) == set(REPLAY_METERS) and all(
            abs(sums[m] - raw[m]) <= 1e-6 * max(1.0, raw[m]) for m in REPLAY_METERS)

    wait_for(agree, 120, "the intervals to agree with the raw registers", interval_s=1.0)
    time.sleep(3)  # a late correction would show now
    sums, raw = interval_sums(), raw_energy()
    for meter in REPLAY_METERS:
        assert raw[meter] > 0, meter
        assert sums[meter] == pytest.approx(raw[meter], rel=1e-9, abs=1e-9), meter
    assert count() == distinct
    assert query(s, "SELECT max(revision), count(DISTINCT (meter_id, ts)) FROM readings WHERE"
                 " meter_id = ANY(%s)", (REPLAY_METERS,)) == [(1, distinct)]
    assert query(s, "SELECT max(revision) FROM energy_intervals WHERE meter_id = ANY(%s)",
                 (REPLAY_METERS,)) == [(1,)]
    dead = query(s, "SELECT code, count(*) FROM dead_letters WHERE meter_id = ANY(%s) OR"
                 " mqtt_topic LIKE 'nzc/v1/replay-site/%%' GROUP BY code", (REPLAY_METERS,))
    assert dead == []
    _healthy(s, pipeline)
    _record(s, {"fault": "same window published twice", "readings": first + second,
                "stored": distinct})
