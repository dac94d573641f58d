"""Storage benchmark: ingest rate through the sink's upsert path, and query times of the
rolling windows, on both storage paths, with ratios against baselines measured in the same run.

- plain PostgreSQL 15 (the project's local server, ``nzc services``): rollup tables kept by
  statement triggers inside the sink's transaction;
- TimescaleDB: PostgreSQL 17 + TimescaleDB 2.23 compiled to WASM (pglite, ``db/pglite``), data
  on disk below the state dir: continuous aggregates, refreshed by their policies.

Data: ``--meters`` meters on ``--sites`` sites (per site one boundary grid meter with the rest
of the grid meters below it, one PV, one export and three gas meters), 15-minute intervals with
location- and market-based emission rows for grid and gas meters. Both paths get the same
``--days`` (default 36: the typical profile needs 4 weeks, month-to-date up to 31 days); plain
PostgreSQL is then extended to ``--plain-days`` (default 365) and measured again. pglite
stays at ``--days``: a year of 500 meters is about 52 million rows (15 GB on plain
PostgreSQL), which WASM PostgreSQL would fill through its file system for another quarter of an
hour; not tried.

Steps and figures:

1. fill all days but the last server-side (``INSERT ... SELECT``, statement per day; plain
   PostgreSQL with its rollup triggers on), then materialize the continuous aggregates;
2. ingest the last day through ``db.sink.Sink.write_intervals`` in batches of 2,000 records
   (the stream's SINK_BATCH): baseline = plain PostgreSQL with the rollup triggers disabled,
   then plain PostgreSQL with them, then TimescaleDB; rows/s count energy plus emission rows;
3. one run of the six refresh policies after that day (TimescaleDB's deferred rollup cost);
4. every query of ``db.queries`` at the end of the data after ``ANALYZE`` (median of
   ``--repeat`` runs), and baselines that compute the same hourly site sums, month-to-date
   and monthly totals straight from the raw intervals; ratio = query / raw baseline and
   TimescaleDB / plain.

Plain PostgreSQL is the ``nzc services`` server at ``NZC_PG_PORT`` (started if it is not
running) with a database of its own, dropped at the end; give it a state dir and port of its
own so that the demo's server is not loaded::

    NZC_STATE_DIR=.state/bench NZC_PG_PORT=15652 .venv/bin/python benchmarks/timescale_rollups.py
    .venv/bin/python benchmarks/timescale_rollups.py --quick   # 50 meters, 36/60 days

No assertions: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.settings import Settings
from db import queries
from db.migrate import apply_migrations, refresh_rollups
from db.sink import Sink
from nzc.services import manager, pglite
from nzc.services.postgres import Postgres

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 10, 28, 10, 40, tzinfo=TZ)  # a Wednesday: the end of the data
STEP = timedelta(minutes=15)
SINK_BATCH = 2000  # stream.app.SINK_BATCH (not imported: that pulls in faust)
BENCH_DB = "nzc_bench_storage"
LOC, MKT, GAS = 0.1564, 0.6096, 2.162  # kgCO2/kWh (Sichuan 2023, national excl. market), /m3


@dataclass
class Target:
    """One storage path under test."""

    name: str
    url: str  # admin; pglite ignores roles
    writer: str
    reader: str


def meters(n_meters: int, n_sites: int) -> list[tuple[str, str, str, str, str | None, float]]:
    """(meter, site, carrier, unit, parent, base quantity per interval)."""
    out: list[tuple[str, str, str, str, str | None, float]] = []
    per_site = max(n_meters // n_sites, 7)
    for s in range(n_sites):
        site = f"bench-s{s}"
        main = f"{site}-grid"
        out += [(main, site, "grid_import", "kWh", None, 400.0),
                (f"{site}-pv", site, "onsite_renewable", "kWh", None, 40.0),
                (f"{site}-export", site, "grid_export", "kWh", None, 8.0)]
        out += [(f"{site}-gas{k}", site, "natural_gas", "m3", None, 5.0) for k in range(3)]
        out += [(f"{site}-sub{k}", site, "grid_import", "kWh", main, 8.0)
                for k in range(per_site - 6)]
    return out[:n_meters] if len(out) > n_meters else out


def setup_schema(p: Target, ms: list[tuple[str, str, str, str, str | None, float]]) -> None:
    """Migrations, sites and meters."""
    apply_migrations(p.url)
    sites = sorted({m[1] for m in ms})
    with psycopg.connect(p.url) as conn, conn.transaction():
        conn.cursor().executemany(
            "INSERT INTO sites (site_id, name, site_type, province, city, baseline_year)"
            " VALUES (%s, %s, 'park', 'sichuan', 'Chengdu', 2022)", [(s, s) for s in sites])
        conn.cursor().executemany(
            "INSERT INTO meters (meter_id, site_id, carrier, unit, canonical_unit, gateway_id,"
            " parent_id, register_max, max_rate_per_h) VALUES (%s, %s, %s, %s, %s, 'gw', %s,"
            " 1e9, %s)", [(m, s, c, u, u, p, b * 8) for m, s, c, u, p, b in ms])
        conn.cursor().executemany(
            "INSERT INTO site_targets (site_id, year, method, annual_emissions_kgco2)"
            " VALUES (%s, 2026, 'location', 5e6)", [(s,) for s in sites])


# Server-side fill of one period: deterministic quantities from the meter's base load (the
# rate limit / 8), a daily shape and a per-meter phase; emissions from the quantities.
FILL_ENERGY = """
INSERT INTO energy_intervals (meter_id, interval_start, interval_s, site_id, carrier, quantity,
    quantity_unit, energy_tce, covered_s, quality)
SELECT m.meter_id, t, 900, m.site_id, m.carrier, q.v, m.canonical_unit,
       q.v * CASE WHEN m.carrier = 'natural_gas' THEN 1.2143e-3 ELSE 0.1229e-3 END,
       900, 'measured'
FROM meters m
CROSS JOIN generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '15 minutes',
                           interval '15 minutes') AS t
CROSS JOIN LATERAL (SELECT round((m.max_rate_per_h / 8 * (0.6 + 0.4 * sin(
    (extract(epoch FROM t) / 3600 + abs(hashtext(m.meter_id)) %% 24) * pi() / 12)))::numeric,
    3)::float8 AS v) q
WHERE m.meter_id LIKE 'bench-%%'
"""
FILL_EMISSIONS = """
INSERT INTO emission_intervals (meter_id, interval_start, method, scope, site_id,
    emissions_kgco2, factor_id, factor_version, factor_value, factor_unit)
SELECT e.meter_id, e.interval_start, f.method, f.scope, e.site_id, e.quantity * f.value,
       f.id, 'bench', f.value, f.unit
FROM energy_intervals e
JOIN (VALUES ('grid_import', 'location', 'scope2', %(loc)s::float8, 'grid-loc', 'kgCO2/kWh'),
             ('grid_import', 'market', 'scope2', %(mkt)s::float8, 'grid-mkt', 'kgCO2/kWh'),
             ('natural_gas', 'location', 'scope1', %(gas)s::float8, 'gas', 'kgCO2/m3'),
             ('natural_gas', 'market', 'scope1', %(gas)s::float8, 'gas', 'kgCO2/m3'))
     AS f (carrier, method, scope, value, id, unit) ON f.carrier = e.carrier
WHERE e.interval_start >= %(lo)s AND e.interval_start < %(hi)s AND e.meter_id LIKE 'bench-%%'
"""


def fill(p: Target, lo: datetime, hi: datetime) -> tuple[int, float]:
    """Fill [lo, hi) day by day; return (rows, seconds)."""
    rows = 0
    t0 = time.perf_counter()
    day = lo
    with psycopg.connect(p.url, autocommit=True) as conn:
        while day < hi:
            nxt = min(day + timedelta(days=1), hi)
            params = {"lo": day, "hi": nxt, "loc": LOC, "mkt": MKT, "gas": GAS}
            rows += conn.execute(FILL_ENERGY, params).rowcount
            rows += conn.execute(FILL_EMISSIONS, params).rowcount
            day = nxt
    return rows, time.perf_counter() - t0


def records(ms: list[tuple[str, str, str, str, str | None, float]], lo: datetime,
            hi: datetime) -> list[dict[str, Any]]:
    """The sink's interval records (with emission rows) for [lo, hi), all meters per interval,
    in time order (as the stream emits them)."""
    out = []
    t = lo
    k = 0
    while t < hi:
        for meter, site, carrier, unit, _parent, base in ms:
            v = round(base * (0.7 + 0.3 * ((k * 7 + len(meter)) % 11) / 10), 3)
            factors = {"grid_import": (("location", "scope2", LOC), ("market", "scope2", MKT)),
                       "natural_gas": (("location", "scope1", GAS), ("market", "scope1", GAS))}
            em = [{"method": m, "scope": s, "emissions_kgco2": v * f, "factor_id": "bench",
                   "factor_version": "bench", "factor_value": f, "factor_unit": f"kgCO2/{unit}"}
                  for m, s, f in factors.get(carrier, ())]
            out.append({"meter_id": meter, "interval_start_ms": int(t.timestamp() * 1000),
                        "interval_s": 900, "site_id": site, "carrier": carrier, "quantity": v,
                        "quantity_unit": unit, "energy_tce": v * 0.1229e-3, "covered_s": 900.0,
                        "quality": "measured", "estimated_quantity": 0.0, "estimated_s": 0.0,
                        "emissions": em})
        t += STEP
        k += 1
    return out


def ingest(url: str, recs: list[dict[str, Any]]) -> tuple[int, float]:
    """Write ``recs`` through Sink.write_intervals in SINK_BATCH batches; (rows, seconds)."""
    async def run() -> tuple[int, float]:
        sink = Sink(url)
        n = 0
        try:
            t0 = time.perf_counter()
            for i in range(0, len(recs), SINK_BATCH):
                e, x = await sink.write_intervals(recs[i:i + SINK_BATCH])
                n += e + x
            return n, time.perf_counter() - t0
        finally:
            await sink.close()

    return asyncio.run(run())


def set_triggers(url: str, enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("energy_intervals", "emission_intervals"):
            conn.execute(f"ALTER TABLE {table} {verb} TRIGGER USER".encode())


def delete_period(url: str, lo: datetime, hi: datetime) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("emission_intervals", "energy_intervals"):
            conn.execute(f"DELETE FROM {table} WHERE interval_start >= %s"
                         f" AND interval_start < %s".encode(), (lo, hi))


# Baselines: the same answers straight from the raw intervals (no rollups).
_RAW_DAYS = """
      AND {t} >= date_trunc('day', %(now)s::timestamptz, 'Asia/Shanghai') - interval '672 hours'
      AND {t} < date_trunc('day', %(now)s::timestamptz, 'Asia/Shanghai') + interval '24 hours'
      AND extract(dow FROM {t} AT TIME ZONE 'Asia/Shanghai')
          = extract(dow FROM %(now)s::timestamptz AT TIME ZONE 'Asia/Shanghai')"""
RAW_TYPICAL = """
WITH em AS (
    SELECT x.site_id, date_trunc('hour', x.interval_start, 'UTC') AS h,
           sum(x.emissions_kgco2) FILTER (WHERE x.method = 'location') AS location_kgco2,
           sum(x.emissions_kgco2) FILTER (WHERE x.method = 'market') AS market_kgco2
    FROM emission_intervals x JOIN meters m ON m.meter_id = x.meter_id AND m.parent_id IS NULL
    WHERE true""" + _RAW_DAYS.format(t="x.interval_start") + """
    GROUP BY 1, 2
),
el AS (
    SELECT e.site_id, date_trunc('hour', e.interval_start, 'UTC') AS h,
           sum(CASE WHEN e.carrier = 'grid_export' THEN -e.quantity ELSE e.quantity END) AS kwh
    FROM energy_intervals e JOIN meters m ON m.meter_id = e.meter_id AND m.parent_id IS NULL
    WHERE e.carrier IN ('grid_import', 'grid_export', 'onsite_renewable')""" + \
    _RAW_DAYS.format(t="e.interval_start") + """
    GROUP BY 1, 2
)
SELECT * FROM em FULL JOIN el USING (site_id, h)
"""
RAW_MTD = """
SELECT x.site_id, sum(x.emissions_kgco2)
FROM emission_intervals x JOIN meters m ON m.meter_id = x.meter_id AND m.parent_id IS NULL
WHERE x.method = 'location'
  AND x.interval_start >= date_trunc('month', %(now)s::timestamptz, 'Asia/Shanghai')
  AND x.interval_start < %(now)s
GROUP BY 1
"""
RAW_MONTHLY = """
SELECT x.site_id, date_trunc('month', x.interval_start, 'Asia/Shanghai'), x.method,
       sum(x.emissions_kgco2)
FROM emission_intervals x JOIN meters m ON m.meter_id = x.meter_id AND m.parent_id IS NULL
WHERE x.interval_start >= %(lo)s AND x.interval_start < %(now)s
GROUP BY 1, 2, 3
"""


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` [ms] over ``repeat`` runs after one warm-up run."""
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs)


def raw(url: str, sql: str, params: dict[str, Any]) -> Callable[[], object]:
    def run() -> object:
        with psycopg.connect(url) as conn:
            return conn.execute(sql.encode(), params).fetchall()
    return run


def query_times(p: Target, repeat: int, year_lo: datetime) -> dict[str, float]:
    """Median [ms] of every query of db.queries and of the raw baselines, at NOW."""
    u = p.reader
    return {
        "rolling_windows (15 min/1 h/24 h)": timed(lambda: queries.rolling_windows(u, NOW),
                                                    repeat),
        "today_vs_typical (4 weeks)": timed(lambda: queries.today_vs_typical(u, NOW), repeat),
        "month_to_date": timed(lambda: queries.month_to_date(u, NOW), repeat),
        "monthly_totals (data period)": timed(
            lambda: queries.monthly_totals(u, year_lo, NOW), repeat),
        "site_summaries (today)": timed(lambda: queries.site_summaries(u, NOW), repeat),
        "raw: the 5 days' hourly site sums": timed(raw(u, RAW_TYPICAL, {"now": NOW}),
                                                      repeat),
        "raw: month-to-date": timed(raw(u, RAW_MTD, {"now": NOW}), repeat),
        "raw: monthly totals (data period)": timed(
            raw(u, RAW_MONTHLY, {"now": NOW, "lo": year_lo}), repeat),
    }


def vs_raw(t: dict[str, float]) -> str:
    """Ratios of the rollup-based queries to their raw baselines."""
    pairs = (("typical profile", "today_vs_typical (4 weeks)",
              "raw: the 5 days' hourly site sums"),
             ("month-to-date", "month_to_date", "raw: month-to-date"),
             ("monthly totals", "monthly_totals (data period)",
              "raw: monthly totals (data period)"))
    return ", ".join(f"{name} {t[q] / t[r]:.3f}" for name, q, r in pairs)


@dataclass
class Report:
    lines: list[str]

    def add(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)


def recreate_plain(settings: Settings) -> Target:
    pg = Postgres(settings)
    manager.install(settings)
    pg.up()
    admin = make_conninfo(settings.database_admin_url, dbname=BENCH_DB)
    with psycopg.connect(make_conninfo(admin, dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'.encode())
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"'.encode())
    return Target("plain PostgreSQL 15", admin,
                 make_conninfo(settings.database_url, dbname=BENCH_DB),
                 make_conninfo(settings.database_reader_url, dbname=BENCH_DB))


@dataclass
class Pglite:
    server: pglite.PgliteServer
    path: Target


@contextlib.contextmanager
def started_pglite(settings: Settings) -> Iterator[Pglite]:
    pglite.install(settings)
    data = settings.state_dir / "bench" / "pglite-data"
    if data.exists():
        shutil.rmtree(data)
    server = pglite.start(settings.state_dir / "logs" / "pglite-bench.log", data_dir=data)
    try:
        yield Pglite(server, Target("TimescaleDB 2.23 (pglite, WASM)", server.url, server.url,
                                   server.url))
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def analyze(p: Target) -> float:
    """ANALYZE the database [s]: a server's autovacuum would, pglite has none, and the plans
    of the site views depend on the statistics of ``meters``."""
    t0 = time.perf_counter()
    with psycopg.connect(p.url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return time.perf_counter() - t0


def run_policies(url: str, views: list[str]) -> float:
    """Run the refresh policy jobs of ``views`` once (as the scheduler would) [s]."""
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for v in views:
            row = conn.execute("SELECT job_id FROM timescaledb_information.jobs"
                               " WHERE hypertable_name = %s"
                               " AND proc_name = 'policy_refresh_continuous_aggregate'",
                               (v,)).fetchone()
            assert row is not None, v
            conn.execute("CALL run_job(%s)", (row[0],))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=500)
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--days", type=int, default=36, help="data days on both paths")
    ap.add_argument("--plain-days", type=int, default=365,
                    help="plain PostgreSQL is extended to this many days (0: skip)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="50 meters, 36 / 60 days, 3 runs")
    ap.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DB} database")
    a = ap.parse_args(argv)
    if a.quick:
        a.meters, a.sites, a.days, a.plain_days, a.repeat = 50, 5, 36, 60, 3
    if a.days < 30 or (a.plain_days and a.plain_days < a.days):
        ap.error("--days >= 30 and --plain-days >= --days (or 0)")
    settings = Settings.from_env()
    ms = meters(a.meters, a.sites)
    end = (NOW.astimezone(UTC) - timedelta(minutes=NOW.minute % 15)).replace(second=0)
    last_day = end - timedelta(days=1)
    start = end - timedelta(days=a.days)
    rep = Report([])
    rep.add(f"# storage benchmark: {len(ms)} meters on {a.sites} sites, 15-min intervals,"
            f" {a.days} days on both paths, NOW = {NOW.isoformat()}")
    plain = recreate_plain(settings)
    port = conninfo_to_dict(plain.url).get("port")
    rep.add(f"plain PostgreSQL 15 on port {port}, database {BENCH_DB}; pglite with its own"
            f" settings (enable_seqscan = off, work_mem = 4MB, one connection), data on disk")
    try:
        with started_pglite(settings) as pg:
            ts = pg.path
            for p in (plain, ts):
                setup_schema(p, ms)
            rep.add("\n## 1. server-side fill (INSERT ... SELECT per day), all days but the last")
            for p in (plain, ts):
                rows, s = fill(p, start, last_day)
                rep.add(f"{p.name}: {rows:,} rows in {s:.1f} s = {rows / s:,.0f} rows/s"
                        + (" (rollup triggers on)" if p is plain else ""))
            t0 = time.perf_counter()
            refresh_rollups(ts.url, start, last_day)
            rep.add(f"{ts.name}: materializing the 6 continuous aggregates: "
                    f"{time.perf_counter() - t0:.1f} s")

            rep.add(f"\n## 2. ingest of the last day through Sink.write_intervals "
                    f"(batches of {SINK_BATCH} records)")
            recs = records(ms, last_day, end)
            set_triggers(plain.url, False)
            n, s = ingest(plain.writer, recs)
            base = n / s
            rep.add(f"baseline, plain PostgreSQL without rollup triggers: {n:,} rows in"
                    f" {s:.1f} s = {base:,.0f} rows/s (ratio 1.00)")
            delete_period(plain.url, last_day, end)
            set_triggers(plain.url, True)
            for p in (plain, ts):
                n, s = ingest(p.writer, recs)
                rep.add(f"{p.name}: {n:,} rows in {s:.1f} s = {n / s:,.0f} rows/s"
                        f" (ratio {n / s / base:.2f})")
            s = run_policies(ts.url, ["energy_hourly", "emissions_hourly", "energy_daily",
                                      "emissions_daily", "energy_monthly",
                                      "emissions_monthly"])
            rep.add(f"{ts.name}: one run of the 6 refresh policies after that day: {s:.1f} s")
            refresh_rollups(ts.url, last_day, end)  # the policies' windows follow the clock

            rep.add(f"\n## 3. query times at NOW, median of {a.repeat} [ms]"
                    f" (ratio TimescaleDB / plain), after ANALYZE")
            for p in (plain, ts):
                rep.add(f"{p.name}: ANALYZE {analyze(p):.1f} s")
            times = {p.name: query_times(p, a.repeat, start) for p in (plain, ts)}
            for q in times[plain.name]:
                x, y = times[plain.name][q], times[ts.name][q]
                rep.add(f"{q:40s} plain {x:9.1f}   timescaledb {y:9.1f}   ({y / x:.2f})")
            for p in (plain, ts):
                rep.add(f"{p.name}: rollups vs raw: {vs_raw(times[p.name])}")
        if a.plain_days:
            lo = end - timedelta(days=a.plain_days)
            rep.add(f"\n## 4. plain PostgreSQL extended to {a.plain_days} days")
            rows, s = fill(plain, lo, start)
            rep.add(f"fill: {rows:,} rows in {s:.1f} s = {rows / s:,.0f} rows/s"
                    f" (rollup triggers on)")
            with psycopg.connect(plain.url) as conn:
                size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))"
                                    ).fetchone()
            rep.add(f"database size: {size[0] if size else '?'}; ANALYZE {analyze(plain):.1f} s")
            t_year = query_times(plain, a.repeat, lo)
            for q, v in t_year.items():
                before = times[plain.name][q]
                rep.add(f"{q:40s} {v:9.1f} ms   (ratio to {a.days} days: {v / before:.2f})")
            rep.add(f"rollups vs raw at {a.plain_days} days: {vs_raw(t_year)}")
    finally:
        if not a.keep:
            with psycopg.connect(make_conninfo(plain.url, dbname="postgres"),
                                 autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
