"""Storage on both paths, with the same data through the sink's upsert path:

- TimescaleDB: the real TimescaleDB C code (PostgreSQL 17 + TimescaleDB 2.23 with TSL, WASM)
  served by ``db/pglite/server.js``, or a TimescaleDB server named by
  ``NZC_TEST_TIMESCALE_URL`` (an admin URL whose database name contains "test": the tests drop
  and re-create that database);
- plain PostgreSQL 15: a database of its own on the test session's server.

The migrations build hypertables, continuous aggregates, policies, compression and retention
on one and trigger-maintained rollup tables on the other; every query of ``db.queries`` must
give the same result on both, and the values computed independently here from the generated
rows. Expected values never come from SQL: they are summed in Python from the same records
the sink wrote.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.settings import Settings
from db import queries
from db.migrate import apply_migrations, refresh_rollups
from db.sink import Sink
from nzc.services import pglite

pytestmark = pytest.mark.services

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 18, 10, 37, tzinfo=TZ)  # a Wednesday, local time
DATA_START = datetime(2026, 2, 14, 0, 0, tzinfo=TZ)  # covers the 4 previous Wednesdays
STEP = timedelta(minutes=15)
LOC = {"grid_import": 0.1564}  # Sichuan 2023 [kgCO2/kWh]
MKT = {"grid_import": 0.6096}  # national excluding market-traded non-fossil 2023
GAS = 2.162  # kgCO2/m3
TCE = {"grid_import": 0.1229e-3, "onsite_renewable": 0.1229e-3, "natural_gas": 1.2143e-3}
ELECTRIC = {"grid_import", "grid_export", "onsite_renewable"}

SITES = [
    ("tsq-park", "Park (test)", "park"),
    ("tsq-school", "School (test)", "campus"),
    ("tsq-empty", "Site without data (test)", "building"),
]
# meter, site, carrier, unit, parent, base load per interval [unit]
METERS = [
    ("tsq-grid", "tsq-park", "grid_import", "kWh", None, 200.0),
    ("tsq-export", "tsq-park", "grid_export", "kWh", None, 12.0),
    ("tsq-pv", "tsq-park", "onsite_renewable", "kWh", None, 30.0),
    ("tsq-ent", "tsq-park", "grid_import", "kWh", "tsq-grid", 120.0),
    ("tsq-ent-line", "tsq-park", "grid_import", "kWh", "tsq-ent", 50.0),
    ("tsq-gas", "tsq-park", "natural_gas", "m3", None, 8.0),
    ("tsq-school-grid", "tsq-school", "grid_import", "kWh", None, 60.0),
    ("tsq-school-gas", "tsq-school", "natural_gas", "m3", None, 3.0),
    ("tsq-empty-grid", "tsq-empty", "grid_import", "kWh", None, 0.0),
]
TARGETS = [("tsq-park", 2026, "location", 1_200_000.0), ("tsq-park", 2026, "market", 3.0e6),
           ("tsq-school", 2026, "location", 150_000.0)]
ROLLUP_VIEWS = [f"{kind}_{level}" for kind in ("energy", "emissions", "site_energy",
                                               "site_emissions", "carrier_emissions")
                for level in ("hourly", "daily", "monthly")]


# --- the data set, and what every query must return, computed here ------------------------


@dataclass
class Interval:
    """One energy interval as the sink receives it, with its emission rows."""

    meter_id: str
    start: datetime  # UTC
    quantity: float
    covered_s: float
    quality: str
    estimated: float
    emissions: dict[str, float] = field(default_factory=dict)  # method -> kgCO2

    def record(self) -> dict[str, Any]:
        m = METER[self.meter_id]
        carrier, unit = m[2], m[3]
        tce = TCE.get(carrier)
        rows = []
        for method, kg in self.emissions.items():
            scope = "scope1" if carrier == "natural_gas" else "scope2"
            factor = kg / self.quantity if self.quantity else 0.0
            rows.append({"method": method, "scope": scope, "emissions_kgco2": kg,
                         "factor_id": f"test-{carrier}-{method}", "factor_version": "t1",
                         "factor_value": factor, "factor_unit": f"kgCO2/{unit}"})
        return {"meter_id": self.meter_id, "interval_start_ms": int(self.start.timestamp() * 1000),
                "interval_s": 900, "site_id": m[1], "carrier": carrier, "quantity": self.quantity,
                "quantity_unit": unit, "energy_tce": None if tce is None else self.quantity * tce,
                "covered_s": self.covered_s, "quality": self.quality,
                "estimated_quantity": self.estimated,
                "estimated_s": 900.0 if self.estimated else 0.0,
                "emissions": rows}


METER = {m[0]: m for m in METERS}
BOUNDARY = {m[0] for m in METERS if m[4] is None}


def _emissions(meter_id: str, quantity: float) -> dict[str, float]:
    carrier = METER[meter_id][2]
    if carrier == "grid_import":
        return {"location": quantity * LOC[carrier], "market": quantity * MKT[carrier]}
    if carrier == "natural_gas":
        return {"location": quantity * GAS, "market": quantity * GAS}
    return {}


def generate() -> list[Interval]:
    """Deterministic 15-min intervals from DATA_START to the last one starting before NOW:
    daily load shapes with noise, a 4-hour gap on one typical Wednesday, a day of estimated
    intervals, a day without gas, partly covered intervals."""
    rnd = random.Random(20260318)
    out: list[Interval] = []
    t = DATA_START.astimezone(UTC)
    while t < NOW:
        local = t.astimezone(TZ)
        shape = 0.5 + 0.5 * math.sin(math.pi * (local.hour + local.minute / 60 - 6) / 12) ** 2
        for meter_id, _site, _carrier, _unit, _parent, base in METERS:
            if base == 0.0:
                continue
            if meter_id == "tsq-school-grid" and local.date() == date(2026, 3, 4) and \
                    8 <= local.hour < 12:
                continue  # meter offline: a gap, not zeros
            if meter_id == "tsq-gas" and local.date() == date(2026, 2, 25):
                continue
            q = round(base * shape * (0.8 + 0.4 * rnd.random()), 3)
            estimated = q if (meter_id == "tsq-school-grid" and
                              local.date() == date(2026, 3, 10)) else 0.0
            quality = "estimated" if estimated else "measured"
            covered = 900.0
            if meter_id == "tsq-pv" and local.minute == 45:
                covered, quality = 600.0, "partial"
            out.append(Interval(meter_id, t, q, covered, quality, estimated,
                                _emissions(meter_id, q)))
        t += STEP
    return out


def _sum(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) if present else None


class Expect:
    """What the rollups and queries must return, summed in Python from the records."""

    def __init__(self, rows: list[Interval]) -> None:
        self.rows = rows

    def boundary(self) -> list[Interval]:
        return [r for r in self.rows if r.meter_id in BOUNDARY]

    def energy_rollup(self, level: str) -> dict[tuple[str, datetime], dict[str, Any]]:
        groups: dict[tuple[str, datetime], list[Interval]] = defaultdict(list)
        for r in self.rows:
            groups[(r.meter_id, bucket(r.start, level))].append(r)
        out = {}
        for key, rs in groups.items():
            tce = TCE.get(METER[key[0]][2])
            out[key] = {"quantity": math.fsum(r.quantity for r in rs),
                        "estimated_quantity": math.fsum(r.estimated for r in rs),
                        "energy_tce": None if tce is None else
                        math.fsum(r.quantity * tce for r in rs),
                        "covered_s": math.fsum(r.covered_s for r in rs), "intervals": len(rs)}
        return out

    def emission_rollup(self, level: str) -> dict[tuple[str, datetime, str], dict[str, Any]]:
        groups: dict[tuple[str, datetime, str], list[float]] = defaultdict(list)
        for r in self.rows:
            for method, kg in r.emissions.items():
                groups[(r.meter_id, bucket(r.start, level), method)].append(kg)
        return {k: {"emissions_kgco2": math.fsum(v), "intervals": len(v)}
                for k, v in groups.items()}

    def site_emissions(self, lo: datetime, hi: datetime, method: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for r in self.boundary():
            if lo <= r.start < hi and method in r.emissions:
                out[METER[r.meter_id][1]] += r.emissions[method]
        return dict(out)

    def site_electricity(self, lo: datetime, hi: datetime) -> dict[str, tuple[float, float,
                                                                             float]]:
        """Per site: (use = import + PV - export, grid import, covered seconds)."""
        out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for r in self.boundary():
            carrier = METER[r.meter_id][2]
            if lo <= r.start < hi and carrier in ELECTRIC:
                acc = out[METER[r.meter_id][1]]
                acc[0] += -r.quantity if carrier == "grid_export" else r.quantity
                acc[1] += r.quantity if carrier == "grid_import" else 0.0
                acc[2] += r.covered_s
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def bucket(t: datetime, level: str) -> datetime:
    """The rollup bucket of instant ``t``: UTC hour, local day, local month (as UTC instant)."""
    if level == "hourly":
        return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    local = t.astimezone(TZ)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    start = day if level == "daily" else day.replace(day=1)
    return start.astimezone(UTC)


# --- the two databases ---------------------------------------------------------------------


@dataclass
class Db:
    """One storage path: URLs for migrations (admin), the sink (writer) and readers."""

    name: str
    admin: str
    writer: str
    reader: str
    timescale: bool


def _with_db(url: str, dbname: str, **extra: str) -> str:
    return make_conninfo(url, dbname=dbname, **extra)


def _recreate(admin_url: str) -> None:
    name = conninfo_to_dict(admin_url).get("dbname")
    if not name or "test" not in str(name):
        raise AssertionError(f"{admin_url!r}: the tests drop this database; its name must "
                             f"contain 'test'")
    with psycopg.connect(_with_db(admin_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="module")
def plain(services: Settings) -> Db:
    admin = _with_db(services.database_admin_url, "nzc_storage_test")
    _recreate(admin)
    apply_migrations(admin)
    return Db("plain", admin,
              _with_db(services.database_url, "nzc_storage_test"),
              _with_db(services.database_reader_url, "nzc_storage_test"), timescale=False)


@pytest.fixture(scope="module")
def tsdb(services: Settings) -> Iterator[Db]:
    url = os.environ.get("NZC_TEST_TIMESCALE_URL")
    if url:
        _recreate(url)
        apply_migrations(url)
        yield Db("timescaledb", url,
                 make_conninfo(url, user="nzc_writer", password="nzc_writer"),
                 make_conninfo(url, user="nzc_reader", password="nzc_reader"), timescale=True)
        return
    pglite.install(services)
    server = pglite.start(services.state_dir / "logs" / "pglite.log")
    try:
        apply_migrations(server.url)
        # pglite runs every session as the superuser: role checks use has_table_privilege
        yield Db("pglite", server.url, server.url, server.url, timescale=True)
    finally:
        server.stop()


def fetch(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


def _load(db: Db, rows: list[Interval]) -> None:
    with psycopg.connect(db.admin) as conn, conn.transaction():
        conn.cursor().executemany(
            "INSERT INTO sites (site_id, name, site_type, province, city, baseline_year)"
            " VALUES (%s, %s, %s, 'sichuan', 'Chengdu', 2022)", SITES)
        conn.cursor().executemany(
            "INSERT INTO meters (meter_id, site_id, carrier, unit, canonical_unit, gateway_id,"
            " parent_id, register_max, max_rate_per_h) VALUES (%s, %s, %s, %s, %s, 'gw', %s,"
            " 1e9, 1e6)", [(m, s, c, u, u, p) for m, s, c, u, p, _b in METERS])
        conn.cursor().executemany(
            "INSERT INTO site_targets (site_id, year, method, annual_emissions_kgco2)"
            " VALUES (%s, %s, %s, %s)", TARGETS)
    write_intervals(db, rows)

    async def other_tables() -> None:
        sink = Sink(db.writer)
        try:
            await sink.write_readings([
                {"meter_id": "tsq-grid", "ts_ms": int(NOW.timestamp() * 1000) - k * 60_000,
                 "kind": "register", "value": 1000.0 + k, "unit": "kWh", "period_s": None,
                 "received_ms": int(NOW.timestamp() * 1000), "mqtt_topic": "t"}
                for k in range(5)])
            await sink.write_dead_letters([
                {"stage": "ingest", "code": code, "reason": f"test {code}", "mqtt_topic": "t",
                 "payload": f"p{k}", "received_ms": int(NOW.timestamp() * 1000) + k}
                for k, code in enumerate(["schema", "schema", "unit"])])
        finally:
            await sink.close()

    asyncio.run(other_tables())


def write_intervals(db: Db, rows: list[Interval], batch: int = 2000) -> None:
    """Write through the sink's upsert path (as the writer role), in batches."""
    async def run() -> None:
        sink = Sink(db.writer)
        try:
            for i in range(0, len(rows), batch):
                await sink.write_intervals([r.record() for r in rows[i:i + batch]])
        finally:
            await sink.close()

    asyncio.run(run())


@dataclass
class Both:
    plain: Db
    tsdb: Db
    expect: Expect

    def each(self) -> list[Db]:
        return [self.plain, self.tsdb]


@pytest.fixture(scope="module")
def both(plain: Db, tsdb: Db) -> Both:
    rows = generate()
    _load(plain, rows)
    _load(tsdb, rows)
    # materialize the continuous aggregates over the data (the refresh policies only look at
    # the last weeks before the real clock)
    assert refresh_rollups(tsdb.admin, DATA_START, NOW) == "timescaledb"
    return Both(plain, tsdb, Expect(rows))


# --- comparing results -----------------------------------------------------------------------


def _norm(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.astimezone(UTC)
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_norm(x) for x in v]
    return v


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats to 1e-9 relative (sums in another order), instants as UTC."""
    a, b = _norm(a), _norm(b)
    if isinstance(a, float) and isinstance(b, float | int):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)} rows"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def all_query_results(url: str) -> dict[str, Any]:
    """Every query of db.queries, on one database (one connection at a time)."""
    return {
        "site_summaries": queries.site_summaries(url, NOW),
        "pipeline_counts": queries.pipeline_counts(url),
        "dead_letter_reasons": queries.dead_letter_reasons(url),
        "rolling_windows": queries.rolling_windows(url, NOW),
        "today_vs_typical": queries.today_vs_typical(url, NOW),
        "month_to_date_location": queries.month_to_date(url, NOW, "location"),
        "month_to_date_market": queries.month_to_date(url, NOW, "market"),
        "monthly_totals": queries.monthly_totals(url, DATA_START - timedelta(days=60),
                                                 NOW + timedelta(days=60)),
    }


def view_rows(url: str, view: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
            " AND table_schema = 'public' ORDER BY ordinal_position", (view,))]
        keys = [c for c in cols if c in ("bucket_start", "meter_id", "site_id", "carrier",
                                         "method", "quantity_unit", "scope")]
        sql = f"SELECT * FROM {view} ORDER BY {', '.join(keys)}"
        return [tuple(r) for r in conn.execute(sql.encode())]


# --- tests -----------------------------------------------------------------------------------


def test_migrations_take_the_timescaledb_path_only_where_it_exists(both: Both) -> None:
    notes = {db.name: dict(fetch(db.admin, "SELECT version, note FROM schema_migrations"))
             for db in both.each()}
    assert notes["plain"]["004_rollups_plain"] is None
    assert notes["plain"]["005_rollups_timescaledb"] == \
        "skipped: extension timescaledb not installed"
    ts = notes[both.tsdb.name]
    assert ts["004_rollups_plain"] == "skipped: extension timescaledb installed"
    assert ts["005_rollups_timescaledb"] == "no-transaction"
    assert ts["006_site_rollups"] is None


def test_timescaledb_objects(both: Both) -> None:
    url = both.tsdb.admin
    dims = dict(fetch(url, "SELECT hypertable_name, time_interval FROM"
                      " timescaledb_information.dimensions"
                      " WHERE hypertable_schema = 'public'"))
    assert dims == {"readings": timedelta(days=7), "energy_intervals": timedelta(days=30),
                    "emission_intervals": timedelta(days=30)}
    caggs = dict(fetch(url, "SELECT view_name, materialized_only FROM"
                       " timescaledb_information.continuous_aggregates"))
    assert caggs == {v: False for v in ROLLUP_VIEWS[:6]}
    # hierarchical: daily from hourly, monthly from daily
    defs = dict(fetch(url, "SELECT view_name, view_definition FROM"
                      " timescaledb_information.continuous_aggregates"))
    assert "FROM energy_hourly" in defs["energy_daily"]
    assert "FROM emissions_daily" in defs["emissions_monthly"]
    jobs = {(r[0], r[1]): r[2] for r in fetch(
        url, "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs"
        " WHERE hypertable_name IS NOT NULL")}
    assert jobs[("policy_refresh_continuous_aggregate", "energy_hourly")]["start_offset"] \
        == "35 days"
    assert jobs[("policy_refresh_continuous_aggregate", "emissions_monthly")]["start_offset"] \
        == "3 mons"
    assert jobs[("policy_compression", "energy_intervals")]["compress_after"] == "45 days"
    assert jobs[("policy_retention", "emission_intervals")]["drop_after"] == "1095 days"
    assert jobs[("policy_retention", "readings")]["drop_after"] == "400 days"
    seg = fetch(url, "SELECT hypertable_name, attname FROM"
                " timescaledb_information.compression_settings"
                " WHERE segmentby_column_index IS NOT NULL"
                " ORDER BY hypertable_name, segmentby_column_index")
    assert seg == [("emission_intervals", "site_id"), ("emission_intervals", "meter_id"),
                   ("emission_intervals", "method"), ("energy_intervals", "site_id"),
                   ("energy_intervals", "meter_id"), ("readings", "meter_id")]


def test_same_relations_and_columns_on_both_paths(both: Both) -> None:
    sql = ("SELECT column_name, data_type FROM information_schema.columns"
           " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position")
    for view in [*ROLLUP_VIEWS, "site_targets"]:
        a = fetch(both.plain.admin, sql, (view,))
        b = fetch(both.tsdb.admin, sql, (view,))
        assert a, f"{view} missing on plain PostgreSQL"
        assert a == b, view


def test_rollups_equal_independent_sums(both: Both) -> None:
    for level in ("hourly", "daily", "monthly"):
        energy = both.expect.energy_rollup(level)
        emissions = both.expect.emission_rollup(level)
        for db in both.each():
            got = {(r[1], r[0]): r for r in view_rows(db.reader, f"energy_{level}")}
            assert got.keys() == energy.keys(), (db.name, level)
            for key, exp in energy.items():
                r = got[key]
                assert_same(dict(zip(("quantity", "estimated_quantity", "energy_tce",
                                      "covered_s", "intervals"), r[5:10], strict=True)),
                            exp, f"{db.name} energy_{level} {key}")
            gotx = {(r[1], r[0], r[3]): r for r in view_rows(db.reader, f"emissions_{level}")}
            assert gotx.keys() == emissions.keys(), (db.name, level)
            for key, exp in emissions.items():
                r = gotx[key]
                assert_same({"emissions_kgco2": r[5], "intervals": r[6]}, exp,
                            f"{db.name} emissions_{level} {key}")
    # site views: boundary meters only (tsq-ent and tsq-ent-line are inside tsq-grid)
    march = bucket(datetime(2026, 3, 1, tzinfo=TZ), "monthly")
    exp_loc = both.expect.site_emissions(march, NOW, "location")
    for db in both.each():
        got = dict(fetch(db.reader, "SELECT site_id, emissions_kgco2 FROM site_emissions_monthly"
                         " WHERE method = 'location' AND bucket_start = %s", (march,)))
        assert_same(got, exp_loc, f"{db.name} site_emissions_monthly")


def test_every_query_is_the_same_on_both_paths(both: Both) -> None:
    a = all_query_results(both.plain.reader)  # the read-only role runs them all
    b = all_query_results(both.tsdb.reader)
    for name in a:
        assert a[name], f"{name} returned nothing: the comparison would prove nothing"
        assert_same(a[name], b[name], name)
    # and every rollup view, row by row
    for view in ROLLUP_VIEWS:
        assert_same(view_rows(both.plain.reader, view), view_rows(both.tsdb.reader, view), view)


def test_rolling_windows_by_hand(both: Both) -> None:
    end = datetime(2026, 3, 18, 10, 30, tzinfo=TZ)  # NOW 10:37 floored to 15 min
    for db in both.each():
        rows = queries.rolling_windows(db.reader, NOW)
        assert [(r["site_id"], r["window_s"]) for r in rows] == [
            (s, w) for s, _n, _t in sorted(SITES) for w in (900, 3600, 86400)]
        for r in rows:
            lo = end - timedelta(seconds=r["window_s"])
            assert r["window_start"] == lo and r["window_end"] == end
            site = r["site_id"]
            use, grid, covered = both.expect.site_electricity(lo, end).get(site, (0.0, 0.0, 0.0))
            hours = r["window_s"] / 3600
            assert r["location_kgco2"] == pytest.approx(
                both.expect.site_emissions(lo, end, "location").get(site, 0.0), rel=1e-9)
            assert r["market_kgco2"] == pytest.approx(
                both.expect.site_emissions(lo, end, "market").get(site, 0.0), rel=1e-9)
            assert r["electricity_kwh"] == pytest.approx(use, rel=1e-9)
            assert r["power_kw"] == pytest.approx(use / hours, rel=1e-9)
            assert r["grid_import_kw"] == pytest.approx(grid / hours, rel=1e-9)
            n_el = sum(1 for m in METERS if m[1] == site and m[4] is None and m[2] in ELECTRIC)
            assert r["electricity_coverage"] == pytest.approx(covered / (n_el * r["window_s"]))
    park = {r["window_s"]: r for r in queries.rolling_windows(both.plain.reader, NOW)
            if r["site_id"] == "tsq-park"}
    assert park[900]["power_kw"] > 0 and park[86400]["location_kgco2"] > 0
    # the 1-h window: 4 intervals of 3 boundary electric meters, PV 09:45 covered 600 s of 900
    assert park[3600]["electricity_coverage"] == pytest.approx((4 * 3 * 900 - 300) / (3 * 3600))


def test_today_vs_typical_by_hand(both: Both) -> None:
    today = NOW.replace(hour=0, minute=0)
    past_days = [today - timedelta(days=7 * k) for k in range(1, 5)]
    # per site and hour: (location kgCO2 or None, electricity use kWh or None)
    loc: dict[tuple[str, datetime], float] = defaultdict(float)
    use: dict[tuple[str, datetime], float] = defaultdict(float)
    for r in both.expect.boundary():
        key = (METER[r.meter_id][1], bucket(r.start, "hourly"))
        if "location" in r.emissions:
            loc[key] += r.emissions["location"]
        carrier = METER[r.meter_id][2]
        if carrier in ELECTRIC:
            use[key] += -r.quantity if carrier == "grid_export" else r.quantity
    hourly = {k: (loc.get(k), use.get(k)) for k in loc.keys() | use.keys()}
    for db in both.each():
        rows = queries.today_vs_typical(db.reader, NOW)
        assert len(rows) == 3 * 24
        for r in rows:
            site, h = r["site_id"], r["hour"]
            start = today + timedelta(hours=h)
            assert r["hour_start"] == start

            def one(day: datetime, site: str = site, h: int = h) -> tuple[Any, Any]:
                return hourly.get((site, day + timedelta(hours=h)), (None, None))

            today_loc, today_use = one(today) if start < NOW else (None, None)
            assert_same(r["today_location_kgco2"], today_loc, f"{site} {h} today")
            assert_same(r["today_electricity_kwh"], today_use, f"{site} {h} today")
            past = [v for v in (one(d) for d in past_days) if v != (None, None)]
            assert r["typical_days"] == len(past)
            if past:
                assert r["typical_location_kgco2"] == pytest.approx(
                    statistics.median(v[0] or 0.0 for v in past), rel=1e-9)
                assert r["typical_electricity_kwh"] == pytest.approx(
                    statistics.median(v[1] or 0.0 for v in past), rel=1e-9)
            else:
                assert r["typical_location_kgco2"] is None
    rows = queries.today_vs_typical(both.plain.reader, NOW)
    school = {r["hour"]: r for r in rows if r["site_id"] == "tsq-school"}
    # the school's grid meter was offline on 4 March 08:00-12:00: that day's 0 kWh there is
    # one of the 4 samples (its gas meter reported), so the median moves but stays positive
    assert school[9]["typical_days"] == 4 and school[9]["typical_electricity_kwh"] > 0
    assert school[10]["today_location_kgco2"] is not None  # 10:00-10:37 has begun
    assert school[11]["today_location_kgco2"] is None  # not yet


def test_month_to_date_by_hand(both: Both) -> None:
    month_start = datetime(2026, 3, 1, tzinfo=TZ)
    elapsed = (NOW - month_start) / timedelta(days=31)
    for method in ("location", "market"):
        mtd = both.expect.site_emissions(month_start, NOW, method)
        for db in both.each():
            rows = {r["site_id"]: r for r in queries.month_to_date(db.reader, NOW, method)}
            assert rows.keys() == {s for s, _n, _t in SITES}
            for site, r in rows.items():
                assert r["month_start"] == month_start
                assert r["month_end"] == datetime(2026, 4, 1, tzinfo=TZ)
                assert r["elapsed_share"] == pytest.approx(elapsed, rel=1e-12)
                assert r["mtd_kgco2"] == pytest.approx(mtd.get(site, 0.0), rel=1e-9)
                target = {(s, m): v for s, _y, m, v in TARGETS}.get((site, method))
                if target is None:
                    assert r["annual_target_kgco2"] is None
                    assert r["target_to_date_kgco2"] is None
                    continue
                month_target = target * 31 / 365
                assert r["month_target_kgco2"] == pytest.approx(month_target, rel=1e-12)
                assert r["target_to_date_kgco2"] == pytest.approx(month_target * elapsed,
                                                                  rel=1e-12)
                assert r["mtd_vs_target"] == pytest.approx(
                    mtd[site] / (month_target * elapsed), rel=1e-9)
                assert r["projected_month_kgco2"] == pytest.approx(mtd[site] / elapsed,
                                                                   rel=1e-9)


def test_monthly_totals_by_hand(both: Both) -> None:
    feb, mar = datetime(2026, 2, 1, tzinfo=TZ), datetime(2026, 3, 1, tzinfo=TZ)
    for db in both.each():
        rows = queries.monthly_totals(db.reader, feb, datetime(2026, 4, 1, tzinfo=TZ))
        got = {(r["site_id"], r["month"]): r for r in rows}
        assert got.keys() == {(s, m.date()) for s in ("tsq-park", "tsq-school")
                              for m in (feb, mar)}
        for (site, month), r in got.items():
            lo = datetime(month.year, month.month, 1, tzinfo=TZ)
            hi = mar if lo == feb else NOW
            assert r["month_start"] == lo
            assert r["location_kgco2"] == pytest.approx(
                both.expect.site_emissions(lo, hi, "location")[site], rel=1e-9)
            assert r["market_kgco2"] == pytest.approx(
                both.expect.site_emissions(lo, hi, "market")[site], rel=1e-9)
            grid = [x for x in both.expect.boundary() if METER[x.meter_id][1] == site and
                    METER[x.meter_id][2] == "grid_import" and lo <= x.start < hi]
            assert r["grid_import_kwh"] == pytest.approx(math.fsum(x.quantity for x in grid))
            assert r["grid_import_estimated_kwh"] == pytest.approx(
                math.fsum(x.estimated for x in grid))
    school_mar = {r["month"]: r for r in queries.monthly_totals(
        both.plain.reader, feb, datetime(2026, 4, 1, tzinfo=TZ)) if r["site_id"] == "tsq-school"}
    assert school_mar[date(2026, 3, 1)]["grid_import_estimated_kwh"] > 0  # 10 March estimated


def _rollup_value(url: str, view: str, meter: str, start: datetime,
                  column: str, method: str | None = None) -> float:
    sql = f"SELECT {column} FROM {view} WHERE meter_id = %s AND bucket_start = %s"
    params: list[Any] = [meter, start]
    if method:
        sql += " AND method = %s"
        params.append(method)
    rows = fetch(url, sql.encode(), params)
    assert len(rows) == 1, (view, meter, start, rows)
    return float(rows[0][0])


def _correct(both: Both, when: datetime, meter: str, add: float) -> Interval:
    old = next(r for r in both.expect.rows if r.meter_id == meter and r.start == when)
    new = Interval(meter, when, old.quantity + add, old.covered_s, old.quality, old.estimated,
                   _emissions(meter, old.quantity + add))
    both.expect.rows[both.expect.rows.index(old)] = new
    return new


def test_late_correction_updates_rollups_on_both_paths(both: Both) -> None:
    when = datetime(2026, 3, 2, 9, 15, tzinfo=TZ).astimezone(UTC)  # rolled up long ago
    levels = [("hourly", bucket(when, "hourly")), ("daily", bucket(when, "daily")),
              ("monthly", bucket(when, "monthly"))]

    def snapshot(url: str) -> list[float]:
        out = []
        for level, start in levels:
            out.append(_rollup_value(url, f"energy_{level}", "tsq-grid", start, "quantity"))
            out.append(_rollup_value(url, f"emissions_{level}", "tsq-grid", start,
                                     "emissions_kgco2", "location"))
        return out

    before = {db.name: snapshot(db.reader) for db in both.each()}
    fixed = _correct(both, when, "tsq-grid", 100.0)
    for db in both.each():
        write_intervals(db, [fixed])
    delta = [100.0, 100.0 * LOC["grid_import"]] * 3
    # plain PostgreSQL: the triggers updated every level inside the sink's transaction
    assert_same(snapshot(both.plain.reader), [b + d for b, d in zip(before["plain"], delta,
                                                                     strict=True)])
    # TimescaleDB: the materialized buckets still hold the old value until a refresh ...
    assert_same(snapshot(both.tsdb.reader), before[both.tsdb.name])
    refresh_rollups(both.tsdb.admin, when, when + STEP)
    # ... after which both paths agree again, on every query
    assert_same(snapshot(both.tsdb.reader), snapshot(both.plain.reader))
    assert_same(all_query_results(both.tsdb.reader), all_query_results(both.plain.reader))


def _job(url: str, proc: str, relation: str) -> int:
    rows = fetch(url, "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s"
                 " AND hypertable_name = %s", (proc, relation))
    assert len(rows) == 1, (proc, relation, rows)
    return int(rows[0][0])


def run_jobs(url: str, proc: str, relations: list[str]) -> None:
    """Background jobs never run by themselves in pglite: run them as the scheduler would."""
    ids = [_job(url, proc, r) for r in relations]
    with psycopg.connect(url, autocommit=True) as conn:
        for job in ids:
            conn.execute("CALL run_job(%s)", (job,))


def test_refresh_policies_pick_up_recent_corrections(both: Both) -> None:
    # an hour of recent data (the policies refresh relative to the real clock)
    real_now = datetime.now(UTC)
    hour = real_now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    recent = [Interval("tsq-school-grid", hour + k * STEP, 10.0, 900.0, "measured", 0.0,
                       _emissions("tsq-school-grid", 10.0)) for k in range(4)]
    url = both.tsdb.admin
    write_intervals(both.tsdb, recent)
    policies = ["energy_hourly", "emissions_hourly", "energy_daily", "emissions_daily",
                "energy_monthly", "emissions_monthly"]
    run_jobs(url, "policy_refresh_continuous_aggregate", policies)
    assert _rollup_value(url, "energy_hourly", "tsq-school-grid", hour, "quantity") == 40.0
    fixed = Interval("tsq-school-grid", hour, 25.0, 900.0, "measured", 0.0,
                     _emissions("tsq-school-grid", 25.0))
    write_intervals(both.tsdb, [fixed])
    assert _rollup_value(url, "energy_hourly", "tsq-school-grid", hour, "quantity") == 40.0
    run_jobs(url, "policy_refresh_continuous_aggregate", policies)
    assert _rollup_value(url, "energy_hourly", "tsq-school-grid", hour, "quantity") == 55.0
    day = bucket(hour, "daily")
    daily = fetch(url, "SELECT sum(quantity) FROM energy_intervals WHERE meter_id = %s"
                  " AND interval_start >= %s AND interval_start < %s",
                  ("tsq-school-grid", day, day + timedelta(hours=24)))[0][0]
    assert _rollup_value(url, "energy_daily", "tsq-school-grid", day, "quantity") == \
        pytest.approx(daily)
    # leave the plain path holding the same rows
    write_intervals(both.plain, [fixed, *recent[1:]])


def test_compressed_chunks_answer_the_same_and_take_corrections(both: Both) -> None:
    url = both.tsdb.admin
    run_jobs(url, "policy_compression", ["energy_intervals", "emission_intervals", "readings"])
    compressed = dict(fetch(url, "SELECT hypertable_name, count(*) FILTER (WHERE is_compressed)"
                            " FROM timescaledb_information.chunks GROUP BY 1"))
    # the data set is months older than compress_after (45 days) by the real clock
    assert compressed["energy_intervals"] >= 2 and compressed["emission_intervals"] >= 2
    assert_same(all_query_results(both.tsdb.reader), all_query_results(both.plain.reader))
    # an upsert into a compressed chunk (TimescaleDB decompresses the segment)
    when = datetime(2026, 2, 20, 14, 0, tzinfo=TZ).astimezone(UTC)
    fixed = _correct(both, when, "tsq-gas", 5.0)
    for db in both.each():
        write_intervals(db, [fixed])
    refresh_rollups(url, when, when + STEP)
    exp = both.expect.energy_rollup("daily")[("tsq-gas", bucket(when, "daily"))]["quantity"]
    for db in both.each():
        assert _rollup_value(db.reader, "energy_daily", "tsq-gas", bucket(when, "daily"),
                             "quantity") == pytest.approx(exp, rel=1e-9)
    assert_same(all_query_results(both.tsdb.reader), all_query_results(both.plain.reader))


def test_retention_drops_raw_chunks_and_keeps_rollups(both: Both) -> None:
    url = both.tsdb.admin
    for compress, drop, why in (("45 days", "40 days", "longer than compress_after"),
                                ("7 days", "30 days", "refresh window")):
        with psycopg.connect(url, autocommit=True) as conn, pytest.raises(
            psycopg.errors.RaiseException, match=why
        ):
            conn.execute("UPDATE storage_policies SET compress_after = %s, drop_after = %s"
                         " WHERE hypertable = 'energy_intervals'", (compress, drop))
            conn.execute("SELECT * FROM apply_storage_policies()")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE storage_policies SET compress_after = '45 days'"
                     " WHERE hypertable = 'energy_intervals'")
    age_days = (datetime.now(UTC) - NOW).days
    horizon = age_days - 31  # the newest chunk holding the data set (30-day chunks) is older
    assert horizon > 40, "the data set is too recent for this test"
    before = {v: view_rows(url, v) for v in ROLLUP_VIEWS}
    totals = queries.monthly_totals(url, DATA_START - timedelta(days=31), NOW)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE storage_policies SET drop_after = make_interval(days => %s)"
                     " WHERE hypertable IN ('energy_intervals', 'emission_intervals')",
                     (horizon,))
        conn.execute("SELECT * FROM apply_storage_policies()")
    run_jobs(url, "policy_retention", ["energy_intervals", "emission_intervals"])
    left = fetch(url, "SELECT (SELECT count(*) FROM energy_intervals WHERE interval_start < %s),"
                 " (SELECT count(*) FROM emission_intervals WHERE interval_start < %s)",
                 (NOW, NOW))[0]
    assert left == (0, 0)  # the raw data set is gone ...
    for view in ROLLUP_VIEWS:  # ... its rollups are kept
        assert_same(view_rows(url, view), before[view], view)
    assert_same(queries.monthly_totals(url, DATA_START - timedelta(days=31), NOW), totals)
    # even after the refresh policies ran: the data set is older than their windows
    run_jobs(url, "policy_refresh_continuous_aggregate", ["energy_hourly", "emissions_hourly"])
    assert_same(view_rows(url, "energy_hourly"), before["energy_hourly"])


def test_roles_on_both_paths(both: Both) -> None:
    checks: list[tuple[str, str, str, bool]] = []
    for view in [*ROLLUP_VIEWS, "site_targets"]:
        checks += [("nzc_reader", view, "SELECT", True), ("nzc_reader", view, "INSERT", False),
                   ("nzc_writer", view, "SELECT", True)]
    for view in ROLLUP_VIEWS[6:]:
        checks.append(("nzc_writer", view, "INSERT", False))
    checks.append(("nzc_writer", "site_targets", "INSERT", False))
    sql = "SELECT has_table_privilege(%s, %s, %s)"
    for db in both.each():
        for role, rel, priv, want in checks:
            assert fetch(db.admin, sql, (role, rel, priv))[0][0] is want, (db.name, role, rel,
                                                                            priv)
    ts_views = ROLLUP_VIEWS[:6]
    for view in ts_views:  # TimescaleDB maintains these; the sink does not write them
        assert fetch(both.tsdb.admin, sql, ("nzc_writer", view, "INSERT"))[0][0] is False
        # on plain PostgreSQL the sink's triggers maintain them as the writer
        assert fetch(both.plain.admin, sql, ("nzc_writer", view, "DELETE"))[0][0] is True
    with psycopg.connect(both.plain.reader) as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege
    ):
        conn.execute("INSERT INTO site_targets VALUES ('tsq-park', 2027, 'location', 1)")
    with psycopg.connect(both.plain.writer) as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege
    ):
        conn.execute("SELECT nzc_rebuild_rollups('2026-01-01', '2026-02-01')")

