"""SQL of the indicators and the scorecard (issue 11): the monthly rollups a scorecard is
computed from, people-entered denominators and baselines with their change history,
configured reference values, declared indicators, and the stored daily scorecard.

Every figure comes from the rollup views of migrations 004-006 and 009 (the same names on
TimescaleDB and plain PostgreSQL), boundary meters only for site totals; months are local
(Asia/Shanghai) months, ``bucket_start`` the UTC instant they begin.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from carbon.indicators import EntryRow


class ConflictError(ValueError):
    """An import would overwrite existing values without the explicit replace flag."""


def site_info(url: str, site_id: str) -> dict[str, Any] | None:
    """The site's registry row, or None."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT site_id, name, site_type, province, city, baseline_year, timezone,"
            " construction_start, construction_end FROM sites WHERE site_id = %s",
            (site_id,)).fetchone()


def site_ids(url: str) -> list[str]:
    """Every registered site id, sorted."""
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT site_id FROM sites ORDER BY 1").fetchall()]


def scorecard_inputs(url: str, site_id: str, start: datetime, end: datetime,
                     tz: str = "Asia/Shanghai") -> dict[str, list[dict[str, Any]]]:
    """The monthly rollup rows of one site for the local months beginning in [start, end)
    (``month`` = local first day), and the people-entered data of the site.

    Keys: ``energy`` (month, carrier, quantity, estimated_quantity, energy_tce, covered_s),
    ``carrier_emissions`` (month, carrier, method, emissions_kgco2), ``scopes`` (month,
    method, scope1_kgco2, scope2_kgco2), ``data_centre`` (month, it_load_kwh, it_covered_s,
    it_meters, data_centre_kwh), ``meters`` (carrier, boundary, total), ``denominators``
    (kind, month, value, source), ``instruments``, ``baselines``, ``targets`` (site_targets),
    ``indicator_targets``, ``declared`` (newest per indicator).
    """
    p = {"site": site_id, "start": start, "end": end, "tz": tz}
    month = "(bucket_start AT TIME ZONE %(tz)s)::date AS month"
    with psycopg.connect(url, row_factory=dict_row) as conn:
        q = conn.execute
        out: dict[str, list[dict[str, Any]]] = {
            "energy": q(f"SELECT {month}, carrier, quantity, estimated_quantity,"
                        " coalesce(energy_tce, 0) AS energy_tce, covered_s"
                        " FROM site_energy_monthly WHERE site_id = %(site)s"
                        " AND bucket_start >= %(start)s AND bucket_start < %(end)s", p).fetchall(),
            "carrier_emissions": q(
                f"SELECT {month}, carrier, method, emissions_kgco2 FROM carrier_emissions_monthly"
                " WHERE site_id = %(site)s AND bucket_start >= %(start)s"
                " AND bucket_start < %(end)s", p).fetchall(),
            "scopes": q(f"SELECT {month}, method, scope1_kgco2, scope2_kgco2"
                        " FROM site_emissions_monthly WHERE site_id = %(site)s"
                        " AND bucket_start >= %(start)s AND bucket_start < %(end)s",
                        p).fetchall(),
            "data_centre": q(f"SELECT {month}, it_load_kwh, it_covered_s, it_meters,"
                             " data_centre_kwh FROM data_centre_energy_monthly"
                             " WHERE site_id = %(site)s AND bucket_start >= %(start)s"
                             " AND bucket_start < %(end)s", p).fetchall(),
            "meters": q("SELECT carrier, count(*) FILTER (WHERE parent_id IS NULL) AS boundary,"
                        " count(*) AS total FROM meters WHERE site_id = %(site)s"
                        " GROUP BY carrier", p).fetchall(),
            "denominators": q("SELECT kind, month, value, source FROM denominators"
                              " WHERE site_id = %(site)s ORDER BY kind, month", p).fetchall(),
            "instruments": q("SELECT instrument_id, kind, quantity, unit, period_start,"
                             " period_end, vintage, retired, registry FROM instruments"
                             " WHERE site_id = %(site)s ORDER BY instrument_id", p).fetchall(),
            "baselines": q("SELECT year, kind, value, unit, source, method FROM baselines"
                           " WHERE site_id = %(site)s", p).fetchall(),
            "targets": q("SELECT year, method, annual_emissions_kgco2, source FROM site_targets"
                         " WHERE site_id = %(site)s", p).fetchall(),
            "indicator_targets": q("SELECT indicator_id, reference_value, source"
                                   " FROM indicator_targets WHERE site_id = %(site)s",
                                   p).fetchall(),
            "declared": q("SELECT DISTINCT ON (indicator_id) indicator_id, value, evidence,"
                          " declared_by, declared_at FROM declared_values"
                          " WHERE site_id = %(site)s"
                          " ORDER BY indicator_id, declared_at DESC, entry_id DESC",
                          p).fetchall(),
        }
    return out


def factors_used(url: str, site_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The emission factors behind a site's boundary emissions in [start, end): id, version,
    value, unit, method and the kgCO2 they produced (raw intervals: the rollups do not keep
    factor ids)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute(
            "SELECT x.factor_id, x.factor_version, x.factor_value, x.factor_unit, x.method,"
            " sum(x.emissions_kgco2) AS emissions_kgco2 FROM emission_intervals x"
            " JOIN meters m ON m.meter_id = x.meter_id AND m.parent_id IS NULL"
            " WHERE x.site_id = %s AND x.interval_start >= %s AND x.interval_start < %s"
            " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 5, 2", (site_id, start, end)).fetchall())


def baseline_from_data(url: str, site_id: str, start: datetime, end: datetime,
                       tz: str = "Asia/Shanghai") -> dict[str, Any]:
    """Totals of the local year [start, end) from the monthly rollups: emissions per method
    [kgCO2], energy [tce] and the number of months with data."""
    p = {"site": site_id, "start": start, "end": end, "tz": tz}
    with psycopg.connect(url, row_factory=dict_row) as conn:
        em = conn.execute(
            "SELECT method, sum(emissions_kgco2) AS kgco2, count(DISTINCT bucket_start) AS months"
            " FROM site_emissions_monthly WHERE site_id = %(site)s AND bucket_start >= %(start)s"
            " AND bucket_start < %(end)s GROUP BY method", p).fetchall()
        en = conn.execute(
            "SELECT sum(energy_tce) AS tce, count(DISTINCT bucket_start) AS months"
            " FROM site_energy_monthly WHERE site_id = %(site)s AND bucket_start >= %(start)s"
            " AND bucket_start < %(end)s", p).fetchone()
    return {"emissions_kgco2": {r["method"]: r["kgco2"] for r in em},
            "months": max([int(r["months"]) for r in em] + [int(en["months"]) if en else 0]),
            "energy_tce": en["tce"] if en else None}


def _apply(conn: psycopg.Connection[Any], rows: Sequence[EntryRow], *, baseline: bool,
           by: str, file: str | None, replace: bool, method: str = "entered") -> dict[str, int]:
    table = "baselines" if baseline else "denominators"
    when = "year" if baseline else "month"
    counts = {"inserted": 0, "replaced": 0, "unchanged": 0}
    conflicts: list[str] = []
    plan: list[tuple[EntryRow, dict[str, Any] | None]] = []
    for r in rows:
        key = r.period.year if baseline else r.period
        old = conn.execute(
            f"SELECT value, source FROM {table} WHERE site_id = %s AND kind = %s"
            f" AND {when} = %s FOR UPDATE", (r.site_id, r.kind, key)).fetchone()
        if old is not None and (old["value"], old["source"]) == (r.value, r.source):
            counts["unchanged"] += 1
            continue
        if old is not None and not replace:
            conflicts.append(f"line {r.line}: {r.site_id}/{r.kind}/{key} is {old['value']} "
                             f"(source {old['source']!r}); the file says {r.value} "
                             f"(source {r.source!r})")
        plan.append((r, old))
    if conflicts:
        raise ConflictError(
            "拒绝静默覆盖 refusing to overwrite existing values without --replace:\n  "
            + "\n  ".join(conflicts))
    for r, old in plan:
        action = "insert" if old is None else "replace"
        counts["inserted" if old is None else "replaced"] += 1
        if baseline:
            conn.execute(
                "INSERT INTO baselines (site_id, year, kind, value, unit, source, method,"
                " entered_by) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (site_id, year, kind)"
                " DO UPDATE SET value = excluded.value, unit = excluded.unit,"
                " source = excluded.source, method = excluded.method,"
                " entered_by = excluded.entered_by, entered_at = now()",
                (r.site_id, r.period.year, r.kind, r.value, r.unit, r.source, method, by))
            conn.execute(
                "INSERT INTO baseline_changes (site_id, year, kind, action, old_value, new_value,"
                " old_source, new_source, method, replace_flag, file, changed_by)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (r.site_id, r.period.year, r.kind, action, old and old["value"], r.value,
                 old and old["source"], r.source, method, replace, file, by))
        else:
            conn.execute(
                "INSERT INTO denominators (site_id, kind, month, value, unit, source)"
                " VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (site_id, kind, month) DO UPDATE SET"
                " value = excluded.value, unit = excluded.unit, source = excluded.source",
                (r.site_id, r.kind, r.period, r.value, r.unit, r.source))
            conn.execute(
                "INSERT INTO denominator_changes (site_id, kind, month, action, old_value,"
                " new_value, unit, old_source, new_source, replace_flag, file, changed_by)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (r.site_id, r.kind, r.period, action, old and old["value"], r.value, r.unit,
                 old and old["source"], r.source, replace, file, by))
    return counts


def import_entries(url: str, rows: Sequence[EntryRow], *, baseline: bool, by: str,
                   file: str | None = None, replace: bool = False,
                   method: str = "entered") -> dict[str, int]:
    """Write validated denominator (or baseline) rows in one transaction, with a history row
    per change. An existing value that differs is a conflict: :class:`ConflictError` lists
    every one and nothing is written, unless ``replace`` (recorded in the history).
    Identical rows are left alone. Returns the counts inserted / replaced / unchanged."""
    with psycopg.connect(url, row_factory=dict_row) as conn, conn.transaction():
        return _apply(conn, rows, baseline=baseline, by=by, file=file, replace=replace,
                      method=method)


def declare(url: str, site_id: str, indicator_id: str, value: str, evidence: str,
            by: str) -> int:
    """Record a declaration (every one is kept; the newest counts). Returns its id."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO declared_values (site_id, indicator_id, value, evidence, declared_by)"
            " VALUES (%s,%s,%s,%s,%s) RETURNING entry_id",
            (site_id, indicator_id, value, evidence, by)).fetchone()
        return int(row[0]) if row else 0


def set_indicator_target(url: str, site_id: str, indicator_id: str, value: float,
                         source: str, by: str) -> None:
    """Configure a site's reference value for an indicator (quota, tCO2/tce)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO indicator_targets (site_id, indicator_id, reference_value, source,"
            " entered_by) VALUES (%s,%s,%s,%s,%s) ON CONFLICT (site_id, indicator_id) DO UPDATE"
            " SET reference_value = excluded.reference_value, source = excluded.source,"
            " entered_by = excluded.entered_by, entered_at = now()",
            (site_id, indicator_id, value, source, by))


def store_scorecard(url: str, site_id: str, day: date, period: str,
                    rows: Sequence[dict[str, Any]], readiness: dict[str, Any],
                    computed_at: datetime) -> None:
    """Upsert one day's scorecard of a site and period kind (the day's last one wins)."""
    with psycopg.connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO scorecard_daily (site_id, day, period, indicator_id, kind,"
            " indicator_type, method, value, value_location, value_market, reference, unit,"
            " status, completeness, estimated_share, trace, computed_at)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (site_id, day, period, indicator_id) DO UPDATE SET"
            " kind = excluded.kind, indicator_type = excluded.indicator_type,"
            " method = excluded.method, value = excluded.value,"
            " value_location = excluded.value_location, value_market = excluded.value_market,"
            " reference = excluded.reference, unit = excluded.unit, status = excluded.status,"
            " completeness = excluded.completeness, estimated_share = excluded.estimated_share,"
            " trace = excluded.trace, computed_at = excluded.computed_at",
            [(site_id, day, period, r["id"], r["kind"], r["type"], r["method"], r["value"],
              r["value_by_method"].get("location"), r["value_by_method"].get("market"),
              r["reference"] if isinstance(r["reference"], (int, float)) else None, r["unit"],
              r["status"], r["completeness"], r["estimated_share"],
              Jsonb({"trace": r["trace"], "notes": r["notes"], "projection": r["projection"]}),
              computed_at) for r in rows])
        cur.execute(
            "INSERT INTO scorecard_readiness_daily (site_id, day, period, ready, core_total,"
            " core_met, stable_months, stable_months_required, detail, computed_at)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (site_id, day, period)"
            " DO UPDATE SET ready = excluded.ready, core_total = excluded.core_total,"
            " core_met = excluded.core_met, stable_months = excluded.stable_months,"
            " stable_months_required = excluded.stable_months_required,"
            " detail = excluded.detail, computed_at = excluded.computed_at",
            (site_id, day, period, readiness["ready"], readiness["core_total"],
             readiness["core_met"], readiness["stable_months"],
             readiness["stable_months_required"], Jsonb(readiness), computed_at))


def scorecard_history(url: str, site_id: str, period: str = "ytd") -> list[dict[str, Any]]:
    """The stored daily scorecards of a site (for plots): day, indicator, value, status."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute(
            "SELECT day, indicator_id, kind, value, reference, status, completeness"
            " FROM scorecard_daily WHERE site_id = %s AND period = %s ORDER BY day, indicator_id",
            (site_id, period)).fetchall())
