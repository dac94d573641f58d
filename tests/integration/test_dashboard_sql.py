"""Every Grafana panel's and variable's SQL, with the macros and variables expanded by
``dashboards.macros``, runs against the real PostgreSQL (as the read-only role the Grafana
data source uses) and against TimescaleDB (pglite build), both holding the storage tests'
data, and returns the columns its panel type needs: time series a ``time`` column sorted
ascending and numeric values (or one string metric column), stats one row of numbers, tables
rows. The SQL functions of migration 012 give what ``db.queries`` gives."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from core.settings import Settings
from dashboards import build
from dashboards.macros import Variable, expand, parse_duration
from db import queries
from db.migrate import apply_migrations
from nzc.services import pglite
from tests.integration.test_timescale import NOW, Db, _load, _recreate, _with_db, generate

pytestmark = pytest.mark.services

SPECS = build.all_dashboards()
PANELS = [(s.uid, p) for s in SPECS for p in s.to_dict()["panels"]]
INTERVAL_S = 3600.0
# views over tables of other parts (alerts, the reviewers' close) that this data set leaves
# empty: their panels must run and have the columns, rows are not required
OPTIONAL_SOURCES = ("dash_active_alerts", "dash_close_status")


def _prepare(db: Db) -> None:
    """The storage tests' intervals, plus groups, and a restatement record."""
    _load(db, generate())
    with psycopg.connect(db.admin) as conn, conn.transaction():
        conn.execute("UPDATE meters SET group_name = 'enterprise-a'"
                     " WHERE meter_id IN ('tsq-ent', 'tsq-ent-line')")
        conn.execute("UPDATE meters SET group_name = 'school-main'"
                     " WHERE meter_id = 'tsq-school-grid'")
        conn.execute(
            "INSERT INTO recompute_audit (done_at, site_id, period_start, period_end,"
            " parameters, rows_changed, before_kgco2, after_kgco2) VALUES"
            " (%s, 'tsq-park', %s, %s, '{\"data_year\": 2022}', 96,"
            " '{\"location\": 1000.0}', '{\"location\": 900.0}')",
            (NOW - timedelta(days=1), NOW - timedelta(days=3), NOW - timedelta(days=2)))


@pytest.fixture(scope="module")
def plain(services: Settings) -> Db:
    admin = _with_db(services.database_admin_url, "nzc_dash_test")
    _recreate(admin)
    apply_migrations(admin)
    db = Db("plain", admin, _with_db(services.database_url, "nzc_dash_test"),
            _with_db(services.database_reader_url, "nzc_dash_test"), timescale=False)
    _prepare(db)
    return db


@pytest.fixture(scope="module")
def tsdb(services: Settings) -> Iterator[Db]:
    pglite.install(services)
    server = pglite.start(services.state_dir / "logs" / "pglite-dashboards.log")
    try:
        apply_migrations(server.url)
        db = Db("pglite", server.url, server.url, server.url, timescale=True)
        _prepare(db)
        with psycopg.connect(server.url, autocommit=True) as conn:
            for view in ("energy_hourly", "emissions_hourly", "energy_daily",
                         "emissions_daily", "energy_monthly", "emissions_monthly"):
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
        yield db
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["plain", "tsdb"])
def database(request: pytest.FixtureRequest) -> Db:
    db: Db = request.getfixturevalue(request.param)
    return db


def _rows(url: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(sql.encode())
        assert cur.description is not None
        return [c.name for c in cur.description], list(cur.fetchall())


def _variables(db: Db, dashboard: dict[str, Any], t0: datetime) -> dict[str, Variable]:
    """Each variable set to 'All' (every value its query returns), in declaration order."""
    out: dict[str, Variable] = {}
    for v in dashboard["templating"]["list"]:
        if v["type"] == "custom":
            out[v["name"]] = Variable((v["current"]["value"],), multi=False)
            continue
        sql = expand(v["query"], t0, NOW, INTERVAL_S, out)
        cols, rows = _rows(db.reader, sql)
        idx = cols.index("__value") if "__value" in cols else 0
        values = tuple(str(r[idx]) for r in rows)
        assert values, f"variable {v['name']} has no values: {sql}"
        out[v["name"]] = Variable(values, multi=bool(v.get("multi") or v.get("includeAll")))
    return out


def _is_number(x: Any) -> bool:
    return x is None or (isinstance(x, int | float | Decimal) and not isinstance(x, bool))


@pytest.mark.parametrize(("uid", "panel"), PANELS,
                         ids=[f"{u}-{p['id']}" for u, p in PANELS])
def test_panel_sql_runs_and_fits_its_panel(database: Db, uid: str,
                                           panel: dict[str, Any]) -> None:
    dashboard = next(s.to_dict() for s in SPECS if s.uid == uid)
    t0 = NOW - timedelta(seconds=parse_duration(dashboard["time"]["from"].removeprefix("now-")))
    variables = _variables(database, dashboard, t0)
    for target in panel["targets"]:
        sql = expand(target["rawSql"], t0, NOW, INTERVAL_S, variables)
        cols, rows = _rows(database.reader, sql)
        where = f"{database.name} {uid} panel {panel['id']} {panel['title']!r}"
        if not any(src in sql for src in OPTIONAL_SOURCES):
            assert rows, f"{where}: no rows\n{sql}"
        if panel["type"] == "timeseries":
            assert target["format"] == "time_series"
            assert cols[0] == "time", where
            times = [r[0] for r in rows]
            assert all(isinstance(t, datetime | int | float | Decimal) for t in times), where
            assert times == sorted(times), f"{where}: time not ascending"
            text_cols = [c for i, c in enumerate(cols[1:], 1)
                         if not all(_is_number(r[i]) for r in rows)]
            assert text_cols in ([], ["metric"]), f"{where}: non-numeric {text_cols}"
            assert len(cols) - 1 - len(text_cols) >= 1, where
            assert any(r[i] is not None for r in rows for i in range(1, len(cols))
                       if cols[i] != "metric"), f"{where}: only nulls"
        elif panel["type"] == "stat":
            assert len(rows) == 1, where
            assert all(_is_number(x) for x in rows[0]), where
            assert any(x is not None for x in rows[0]), f"{where}: only nulls"
        else:
            assert panel["type"] == "table", where
            assert len(cols) >= 2 and len(set(cols)) == len(cols), where


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, int | float | Decimal):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def test_sql_functions_match_db_queries(database: Db) -> None:
    with psycopg.connect(database.reader) as conn:
        cur = conn.execute("SELECT * FROM nzc_today_vs_typical(%s, 4)", (NOW,))
        assert cur.description is not None
        names = [c.name for c in cur.description]
        got = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    want = queries.today_vs_typical(database.reader, NOW, weeks=4)
    assert len(got) == len(want) > 0
    assert any(w["typical_location_kgco2"] for w in want)
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w)
        assert all(_close(g[k], w[k]) for k in w), (g, w)
    for method in ("location", "market"):
        with psycopg.connect(database.reader) as conn:
            cur = conn.execute("SELECT * FROM nzc_month_to_date(%s, %s)", (NOW, method))
            assert cur.description is not None
            names = [c.name for c in cur.description]
            got = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        want = queries.month_to_date(database.reader, NOW, method)
        assert len(got) == len(want) > 0 and any(w["mtd_kgco2"] for w in want)
        for g, w in zip(got, want, strict=True):
            assert all(_close(g[k], w[k]) for k in w), (g, w)


def test_optional_views_follow_the_alert_and_close_tables(services: Settings) -> None:
    """Without the alerts (011) and close (010) tables the views are empty; once the tables
    exist, ``nzc_dash_optional_views()`` points the views at them (the columns are those of
    migrations 010 and 011; IF NOT EXISTS: after the merge the migrations made them)."""
    admin = _with_db(services.database_admin_url, "nzc_dash_opt_test")
    _recreate(admin)
    apply_migrations(admin)
    reader = _with_db(services.database_reader_url, "nzc_dash_opt_test")
    with psycopg.connect(admin) as conn, conn.transaction():
        conn.execute("INSERT INTO sites (site_id, name, site_type, province, city,"
                     " baseline_year) VALUES ('opt-site', 'Opt', 'park', 'sichuan', 'Chengdu',"
                     " 2022)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS alerts (alert_id bigserial PRIMARY KEY,"
            " fingerprint text NOT NULL UNIQUE, rule_id text NOT NULL, kind text NOT NULL,"
            " site_id text NOT NULL, subject text NOT NULL, labels jsonb NOT NULL,"
            " state text NOT NULL, severity text NOT NULL, pending_since timestamptz,"
            " firing_since timestamptz, value double precision,"
            " threshold double precision, typical double precision, deadline timestamptz,"
            " acked_by text)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS month_closes (site_id text NOT NULL, month date NOT"
            " NULL, state text NOT NULL DEFAULT 'draft', version integer NOT NULL DEFAULT 0,"
            " submitted_at timestamptz, returned_at timestamptz, verified_at timestamptz,"
            " comment text, PRIMARY KEY (site_id, month))")
        conn.execute(
            "INSERT INTO alerts (fingerprint, rule_id, kind, site_id, subject, labels, state,"
            " severity, firing_since) VALUES ('f1', 'meter-offline', 'meter_offline',"
            " 'opt-site', 'm1', '{}', 'firing', 'warning', now()), ('f2', 'meter-offline',"
            " 'meter_offline', 'opt-site', 'm2', '{}', 'resolved', 'warning', now())")
        conn.execute("INSERT INTO month_closes (site_id, month, state) VALUES"
                     " ('opt-site', '2026-10-01', 'verified')")
    assert _rows(reader, "SELECT subject FROM dash_active_alerts")[1] in ([], [("m1",)])
    with psycopg.connect(admin) as conn:
        conn.execute("SELECT nzc_dash_optional_views()")
    assert _rows(reader, "SELECT subject, state FROM dash_active_alerts")[1] == \
        [("m1", "firing")]
    assert _rows(reader, "SELECT site_id, state FROM dash_close_status")[1] == \
        [("opt-site", "verified")]
