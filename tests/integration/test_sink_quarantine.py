"""Data errors are quarantined, never retried forever (issue 8, item 1), on real PostgreSQL.

A record PostgreSQL refuses is isolated by splitting the batch, stored as a ``sink_rejected``
dead letter with the database's message, and every other record of the batch is written; text
from outside (NUL, lone surrogates) is escaped before it is written.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from core.records import DeadLetter, IntervalRow, ReadingRecord
from core.settings import Settings
from db.sink import Sink

from .conftest import Pipeline, publish_payloads, query, wait_for

pytestmark = pytest.mark.services
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _reading(meter: str, k: int, period_s: int | None = None) -> ReadingRecord:
    return ReadingRecord(meter_id=meter, site_id="test-site", ts_ms=T0 + k * 60_000,
                         kind="register" if period_s is None else "interval", value=1.0 + k,
                         unit="kWh", period_s=period_s, received_ms=T0 + k * 60_000 + 5,
                         mqtt_topic="nzc/v1/test-site/gw1/readings")


def _write(settings: Settings, **batch: Any) -> dict[str, int]:
    async def run() -> dict[str, int]:
        sink = Sink(settings.database_url)
        try:
            # bounded: a stall (the old behaviour) fails the test instead of hanging it
            return await asyncio.wait_for(sink.with_retry("test", sink.write_batch, **batch),
                                          timeout=120)
        finally:
            await sink.close()

    return asyncio.run(run())


def _rejected(settings: Settings, meter: str) -> list[tuple[str, str, str]]:
    return [(r[0], r[1], r[2]) for r in query(
        settings, "SELECT code, reason, payload FROM dead_letters WHERE stage = 'sink'"
        " AND meter_id = %s", (meter,))]


@pytest.mark.parametrize("n", [5, 200])  # the unnest path and the COPY path
def test_a_refused_reading_is_quarantined_and_the_rest_written(services: Settings,
                                                               n: int) -> None:
    meter = f"sinkq-r{n}"
    bad = n // 2
    # period_s beyond PostgreSQL's integer: "integer out of range" (SQLSTATE 22003)
    readings = [_reading(meter, k, 2**40 if k == bad else None) for k in range(n)]
    _write(services, readings=readings)
    stored = {int(r[0]) for r in query(
        services, "SELECT (extract(epoch FROM ts) * 1000)::bigint FROM readings"
        " WHERE meter_id = %s", (meter,))}
    assert stored == {T0 + k * 60_000 for k in range(n) if k != bad}
    [(code, reason, payload)] = _rejected(services, meter)
    assert code == "sink_rejected"
    assert reason.startswith("readings: ") and "out of range" in reason
    assert str(2**40) in payload


def test_a_refused_interval_keeps_the_others(services: Settings) -> None:
    meter = "sinkq-iv"

    def row(k: int, interval_s: int = 900) -> IntervalRow:
        return IntervalRow(meter_id=meter, site_id="test-site", carrier="grid_import",
                           interval_start_ms=T0 + k * 900_000, interval_s=interval_s,
                           quantity=float(k), quantity_unit="kWh", covered_s=900.0,
                           quality="measured")

    _write(services, intervals=[row(0), row(1, 2**40), row(2)])
    got = query(services, "SELECT quantity FROM energy_intervals WHERE meter_id = %s"
                " ORDER BY interval_start", (meter,))
    assert [q for (q,) in got] == [0.0, 2.0]
    [(code, reason, _payload)] = _rejected(services, meter)
    assert code == "sink_rejected" and reason.startswith("energy_intervals: ")


def test_nul_and_lone_surrogates_are_escaped_not_refused(services: Settings) -> None:
    letter = DeadLetter(stage="ingest", code="malformed_json", reason="bad key '\ud800'",
                        mqtt_topic="nzc/v1/x\x00/gw/readings", payload="\x00",
                        payload_truncated=False, meter_id="sinkq-\ud801",
                        received_ms=int(time.time() * 1000))
    assert _write(services, dead=[letter])["dead_letters"] == 1
    [(reason, topic, payload)] = query(
        services, "SELECT reason, mqtt_topic, payload FROM dead_letters WHERE meter_id = %s",
        ("sinkq-\\ud801",))
    assert (reason, topic, payload) == ("bad key '\\ud800'", "nzc/v1/x\\u0000/gw/readings",
                                        "\\u0000")


def test_a_nul_payload_through_the_pipeline_stalls_nothing(pipeline: Pipeline) -> None:
    s = pipeline.settings
    ts = int(time.time() * 1000) - 120_000
    good = (b'{"meter": "probe", "ts": %d, "register": 2.0, "unit": "kWh"}' % ts)
    publish_payloads(s, [("nzc/v1/test-site/gw1/readings", b"\x00"),
                         ("nzc/v1/test-site/gw1/readings", b'{"meter": "\\ud800", "ts": 1}'),
                         ("nzc/v1/test-site/gw1/readings", good)])
    wait_for(lambda: query(s, "SELECT 1 FROM readings WHERE meter_id = 'probe' AND ts ="
                           " to_timestamp(%s / 1000.0)", (ts,)), 120,
             "the good reading after the hostile ones")
    wait_for(lambda: query(s, "SELECT 1 FROM dead_letters WHERE payload = '\\u0000'"), 120,
             "the NUL payload's dead letter")
    wait_for(lambda: query(s, "SELECT 1 FROM dead_letters WHERE payload LIKE '%%ud800%%'"),
             120, "the lone surrogate's dead letter")
