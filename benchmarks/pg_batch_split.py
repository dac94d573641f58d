"""Where PostgreSQL's time goes in one stream flush that touches N different meters.

With 1-minute readings every reading in a flush belongs to a different meter, so PostgreSQL's
cost per reading is the cost per meter of: the interval row and its two emission rows (COPY
into staging tables, one upsert), the readings audit row, and the plain-PostgreSQL rollup
refresh of the meter's (hour, local day, local month) buckets (migration 007's queue and 004's
recompute). This script writes ``--batches`` such flushes through the real sink
(:class:`db.sink.Sink`) for ``--meters`` synthetic meters and times each part separately
(wall time on an otherwise quiet machine), printing µs per meter and the ratio of each part to
the interval upsert (the baseline, measured in the same run). It deletes its rows afterwards.

Uses the services of the current settings (``nzc services up``; plain PostgreSQL path):

    .venv/bin/python benchmarks/pg_batch_split.py --meters 10000 --batches 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import psycopg
from psycopg import sql

from core.records import EmissionRow, IntervalRow, ReadingRecord
from core.settings import Settings
from db.sink import Sink

INTERVAL_MS = 900_000


def _rows(prefix: str, meters: int, start_ms: int, k: int) -> list[IntervalRow]:
    """One interval row (with location and market emission rows) per meter [kWh, kgCO2]."""
    em = (EmissionRow("location", "scope2", 0.5 * (k + 1), "bench", "v1", 0.5, "kgCO2/kWh"),
          EmissionRow("market", "scope2", 0.5 * (k + 1), "bench", "v1", 0.5, "kgCO2/kWh"))
    t = start_ms + k * INTERVAL_MS
    return [IntervalRow(f"{prefix}-m{i}", prefix, "electricity", t, 900, 1.0 + k, "kWh", 60.0,
                        "partial", energy_tce=0.0001229 * (1.0 + k), emissions=em)
            for i in range(meters)]


def _readings(prefix: str, meters: int, start_ms: int, k: int) -> list[ReadingRecord]:
    t = start_ms + k * INTERVAL_MS + 60_000
    return [ReadingRecord(f"{prefix}-m{i}", prefix, t, "register", 1000.0 + k, "kWh", None,
                          t, "bench") for i in range(meters)]


async def _run(s: Settings, prefix: str, meters: int, batches: int) -> list[tuple[float, ...]]:
    sink = Sink(s.database_url)
    now = int(time.time() * 1000)
    start = now - now % INTERVAL_MS - 2 * 86_400_000  # two days ago, on an interval boundary
    out: list[tuple[float, ...]] = []
    for k in range(batches):
        rows, readings = _rows(prefix, meters, start, k), _readings(prefix, meters, start, k)
        t = time.perf_counter()
        await sink.write_batch(intervals=rows, refresh_within_s=1e9)  # no refresh here
        upsert = time.perf_counter() - t
        t = time.perf_counter()
        await sink.write_batch(readings=readings, refresh_within_s=1e9)
        audit = time.perf_counter() - t
        t = time.perf_counter()
        await sink.refresh_rollups()
        refresh = time.perf_counter() - t
        out.append((upsert, audit, refresh))
    return out


def _cleanup(s: Settings, prefix: str) -> None:
    tables = ("energy_intervals", "emission_intervals", "readings", "energy_hourly",
              "energy_daily", "energy_monthly", "emissions_hourly", "emissions_daily",
              "emissions_monthly", "rollup_dirty")
    with psycopg.connect(s.database_admin_url, autocommit=True) as conn:
        for table in tables:
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
                conn.execute(sql.SQL("DELETE FROM {} WHERE meter_id LIKE %s").format(
                    sql.Identifier(table)), (prefix + "-%",))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meters", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=4)
    a = ap.parse_args()
    s = Settings.from_env()
    prefix = f"pgsplit-{uuid.uuid4().hex[:6]}"
    print(f"{a.batches} flushes of {a.meters} different meters each (one interval row with two "
          f"emission rows and one reading per meter); load average {os.getloadavg()[0]:.2f}")
    try:
        results = asyncio.run(_run(s, prefix, a.meters, a.batches))
    finally:
        _cleanup(s, prefix)
    for k, (upsert, audit, refresh) in enumerate(results):
        us = [x * 1e6 / a.meters for x in (upsert, audit, refresh)]
        print(f"flush {k}: interval+emission upsert {us[0]:6.1f} µs/meter   readings audit "
              f"{us[1]:6.1f}   rollup refresh {us[2]:6.1f}")
    med = [statistics.median(r[i] for r in results) * 1e6 / a.meters for i in range(3)]
    print(f"median: interval+emission upsert {med[0]:.1f} µs/meter (baseline), readings audit "
          f"{med[1]:.1f} ({med[1] / med[0]:.2f}x), rollup refresh {med[2]:.1f} "
          f"({med[2] / med[0]:.2f}x); load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
