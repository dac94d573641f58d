"""Nothing lost, nothing doubled: SIGKILL the stream worker and the ingest bridge mid-stream."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from .conftest import Pipeline, publish_payloads, query, wait_for
from .expected import interval_quantities

pytestmark = pytest.mark.services
MIN = 60_000
INTERVAL = 900_000
METERS = {"crash-1": (1000.0, 2.5), "crash-2": (54_321.0, 0.75), "crash-3": (10.0, 0.2),
          "crash-4": (999.0, 7.0)}
ROUNDS = 480


def _readings() -> dict[str, list[tuple[int, float]]]:
    now = int(time.time() * 1000)
    t0 = now - now % INTERVAL - 10 * 3600_000 + 30_000
    out: dict[str, list[tuple[int, float]]] = {}
    for i, (meter, (start, rate)) in enumerate(METERS.items()):
        out[meter] = [(t0 + k * MIN, start + rate * k + (k % (5 + i)) * 0.01)
                      for k in range(ROUNDS)]
    return out


def _messages(readings: dict[str, list[tuple[int, float]]]) -> list[tuple[str, bytes]]:
    msgs = []
    for k in range(ROUNDS):
        batch = [{"meter": m, "ts": series[k][0], "register": series[k][1],
                  "unit": "m3" if m == "crash-3" else "kWh"} for m, series in readings.items()]
        msgs.append(("nzc/v1/test-site/gw4/readings", json.dumps({"readings": batch}).encode()))
    return msgs


def _count(pipeline: Pipeline) -> int:
    return int(query(pipeline.settings, "SELECT count(*) FROM readings WHERE meter_id LIKE"
                     " 'crash-%%'")[0][0])


def _local_offsets(folder: Path) -> dict[int, int]:
    """partition -> the newest changelog offset that the local state in ``folder`` holds
    (faust's RocksDB store records it in each partition's database)."""
    import rocksdict

    tables = folder / "v1" / "tables"
    out = {}
    for path in sorted(tables.glob("meter_state-*.db")):
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True),
                             access_type=rocksdict.AccessType.read_only())
        try:
            value = db.get(b"__faust\x00offset__")
        finally:
            db.close()
        if value is not None:
            out[int(path.name.split("-")[1].split(".")[0])] = int(value)
    return out


def test_sigkill_stream_and_ingest_lose_and_double_nothing(pipeline: Pipeline) -> None:
    s = pipeline.settings
    readings = _readings()
    msgs = _messages(readings)
    a, b, c = msgs[:160], msgs[160:320], msgs[320:]

    publish_payloads(s, a)
    wait_for(lambda: _count(pipeline) >= 40, 120, "the stream to be half-way through chunk A")
    pipeline.kill("stream")  # mid-stream: uncommitted offsets, unflushed batches

    # ingest is killed while chunk B is arriving: some messages produced but not yet acked
    publisher = threading.Thread(target=publish_payloads, args=(s, b))
    publisher.start()
    time.sleep(0.3)
    pipeline.kill("ingest")
    publisher.join(timeout=120)
    assert not publisher.is_alive()
    pipeline.start("ingest")
    # as on another machine: an empty local state folder, the whole changelog to recover
    elsewhere = s.state_dir / "stream-state-elsewhere"
    shutil.rmtree(elsewhere, ignore_errors=True)
    pipeline.start("stream", env={"NZC_STREAM_STATE_DIR": str(elsewhere)})

    before = _count(pipeline)
    publish_payloads(s, c)
    wait_for(lambda: _count(pipeline) >= before + 200, 120, "the restarted pipeline to move")
    pipeline.kill("stream")  # and once more, while it catches up; this time it comes back on
    # the machine's local state (RocksDB), left by the first worker: behind the changelog
    # that the second one wrote, so it recovers from the offsets recorded there
    offsets = _local_offsets(s.stream_state_root)
    assert offsets, "the first worker recorded no changelog offset in its local state"
    pipeline.start("stream")

    expected = {m: interval_quantities(series, INTERVAL) for m, series in readings.items()}

    def rows(meter: str) -> dict[int, float]:
        got = query(s, "SELECT (extract(epoch FROM interval_start) * 1000)::bigint, quantity"
                    " FROM energy_intervals WHERE meter_id = %s", (meter,))
        return {int(t): q for t, q in got}

    def settled() -> bool:
        pipeline.assert_alive()
        return all(
            set(rows(m)) == set(exp) and all(abs(rows(m)[k] - v) < 1e-6 for k, v in exp.items())
            for m, exp in expected.items()
        )

    wait_for(settled, 240, "the final totals after the crashes", interval_s=1.0)
    time.sleep(3)
    for meter, exp in expected.items():
        got = rows(meter)
        assert set(got) == set(exp)
        for start, qty in exp.items():
            assert got[start] == pytest.approx(qty, rel=1e-9, abs=1e-9), (meter, start)
        total = sum(got.values())
        series = readings[meter]
        assert total == pytest.approx(series[-1][1] - series[0][1], rel=1e-9)
    # every reading landed exactly once in the audit; no stream rejection came of the replays
    per_meter = dict(query(s, "SELECT meter_id, count(*) FROM readings WHERE meter_id LIKE"
                             " 'crash-%%' GROUP BY meter_id"))
    assert per_meter == dict.fromkeys(METERS, ROUNDS)
    rejected = query(s, "SELECT code, count(*) FROM dead_letters WHERE meter_id LIKE 'crash-%%'"
                     " GROUP BY code")
    assert rejected == []
