"""Nothing lost, nothing doubled with two stream workers: one is SIGKILLed mid-stream (its
partitions move to the other, which recovers their meter states from the changelog), then a
new one joins mid-stream (partitions move back)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from core.settings import Settings
from nzc.procs import log_path, start_worker, stop_worker, wait_for_log_line

from .conftest import Pipeline, publish_payloads, query, wait_for
from .expected import interval_quantities

pytestmark = pytest.mark.services
MIN = 60_000
INTERVAL = 900_000
# eight meters on eight gateways: their records spread over the partitions of both workers
METERS = {f"rebal-{i}": (100.0 * i, 0.5 + 0.25 * i) for i in range(1, 9)}
ROUNDS = 240


def _readings() -> dict[str, list[tuple[int, float]]]:
    now = int(time.time() * 1000)
    t0 = now - now % INTERVAL - 5 * 3600_000 + 20_000
    return {m: [(t0 + k * MIN, start + rate * k + (k % 3) * 0.01) for k in range(ROUNDS)]
            for m, (start, rate) in METERS.items()}


def _messages(readings: dict[str, list[tuple[int, float]]]) -> list[list[tuple[str, bytes]]]:
    """Per round, one message per meter, each published by the meter's own gateway
    (``rebal-i`` is on ``gw1i``: the ingest rejects a meter published by another gateway)."""
    return [[(f"nzc/v1/test-site/gw1{m.split('-')[1]}/readings", json.dumps({"readings": [
        {"meter": m, "ts": series[k][0], "register": series[k][1], "unit": "kWh"}]}).encode())
        for m, series in readings.items()] for k in range(ROUNDS)]


def _flat(rounds: list[list[tuple[str, bytes]]]) -> list[tuple[str, bytes]]:
    return [msg for r in rounds for msg in r]


def _log_size(s: Settings, name: str) -> int:
    path = log_path(s, name)
    return path.stat().st_size if path.exists() else 0


def _count(pipeline: Pipeline) -> int:
    return int(query(pipeline.settings, "SELECT count(*) FROM readings WHERE meter_id LIKE"
                     " 'rebal-%%'")[0][0])


def test_two_workers_sigkill_and_rebalance_lose_and_double_nothing(pipeline: Pipeline) -> None:
    s = pipeline.settings
    readings = _readings()
    msgs = _messages(readings)
    extra: list[subprocess.Popen[bytes]] = []
    try:
        offset = _log_size(s, "stream-rebal-1")
        extra.append(start_worker("stream", s, log_name="stream-rebal-1",
                                  extra_args=["--loglevel", "info"]))
        # joined the group, got its share of the partitions, recovered their state
        wait_for_log_line(extra[0], log_path(s, "stream-rebal-1"), "[^Worker]: Ready", 180,
                          offset)
        publish_payloads(s, _flat(msgs[:80]))
        wait_for(lambda: _count(pipeline) >= 8 * 20, 180, "both workers to process chunk A")
        extra[0].kill()  # SIGKILL: its partitions move to the first worker after the session
        extra[0].wait(timeout=30)
        publish_payloads(s, _flat(msgs[80:160]))
        wait_for(lambda: _count(pipeline) >= 8 * 120, 240,
                 "the surviving worker to take over the partitions")
        extra.append(start_worker("stream", s, log_name="stream-rebal-2"))  # rebalance again
        publish_payloads(s, _flat(msgs[160:]))

        expected = {m: interval_quantities(series, INTERVAL) for m, series in readings.items()}

        def rows(meter: str) -> dict[int, float]:
            got = query(s, "SELECT (extract(epoch FROM interval_start) * 1000)::bigint, quantity"
                        " FROM energy_intervals WHERE meter_id = %s", (meter,))
            return {int(t): q for t, q in got}

        def settled() -> bool:
            pipeline.assert_alive()
            return all(set(rows(m)) == set(exp)
                       and all(abs(rows(m)[k] - v) < 1e-6 for k, v in exp.items())
                       for m, exp in expected.items())

        wait_for(settled, 300, "the final totals after the kill and the rebalances",
                 interval_s=1.0)
        for meter, exp in expected.items():
            got = rows(meter)
            for start, qty in exp.items():
                assert got[start] == pytest.approx(qty, rel=1e-9, abs=1e-9), (meter, start)
            series = readings[meter]
            assert sum(got.values()) == pytest.approx(series[-1][1] - series[0][1], rel=1e-9)
        per_meter = dict(query(s, "SELECT meter_id, count(*) FROM readings WHERE meter_id LIKE"
                                 " 'rebal-%%' GROUP BY meter_id"))
        assert per_meter == dict.fromkeys(METERS, ROUNDS)
        assert query(s, "SELECT code, count(*) FROM dead_letters WHERE meter_id LIKE 'rebal-%%'"
                     " GROUP BY code") == []
    finally:
        for proc in extra:
            stop_worker(proc)
