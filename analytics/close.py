"""Read one site-month from the database and close it (:mod:`analytics.monthly`).

Month boundaries are the site's local month (Asia/Shanghai for every sample site), as
reviewers read them: ``[local first day 00:00, next month's first day 00:00)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import psycopg
from psycopg.rows import dict_row

from analytics.monthly import MonthlyClose, close_month


def month_bounds(month: date, timezone: str) -> tuple[datetime, datetime]:
    """UTC start and end of the local calendar month that ``month`` falls in."""
    tz = ZoneInfo(timezone)
    start = datetime(month.year, month.month, 1, tzinfo=tz)
    nxt = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), nxt.astimezone(UTC)


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(
        schema=schema)


def load_and_close(database_url: str, site_id: str, month: date, interval_s: int = 900,
                   now: datetime | None = None) -> MonthlyClose:
    """Close ``site_id`` for the local month of ``month``; a month still running is closed up
    to ``now`` (its expected interval count is month-to-date)."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        site = conn.execute("SELECT timezone FROM sites WHERE site_id = %s",
                            (site_id,)).fetchone()
        if site is None:
            raise ValueError(f"unknown site {site_id!r}")
        start, end = month_bounds(month, site["timezone"])
        until = min(end, now or datetime.now(UTC))
        expected = max(int((until - start).total_seconds() // interval_s), 0)
        period = {"site": site_id, "start": start, "end": until}
        energy = conn.execute(
            "SELECT meter_id, carrier, quantity, estimated_quantity, energy_tce, quality,"
            " revision FROM energy_intervals WHERE site_id = %(site)s"
            " AND interval_start >= %(start)s AND interval_start < %(end)s", period).fetchall()
        emissions = conn.execute(
            "SELECT meter_id, method, scope, emissions_kgco2, factor_id, factor_version,"
            " factor_value, factor_unit FROM emission_intervals WHERE site_id = %(site)s"
            " AND interval_start >= %(start)s AND interval_start < %(end)s", period).fetchall()
        meters = conn.execute("SELECT meter_id, carrier, parent_id FROM meters"
                              " WHERE site_id = %s", (site_id,)).fetchall()
        instruments = conn.execute(
            "SELECT kind, quantity, period_start, period_end, retired FROM instruments"
            " WHERE site_id = %s", (site_id,)).fetchall()
        denominators = conn.execute(
            "SELECT kind, value, unit FROM denominators WHERE site_id = %s AND month = %s",
            (site_id, date(month.year, month.month, 1))).fetchall()
    return close_month(
        site_id, date(month.year, month.month, 1),
        _frame(energy, {"meter_id": pl.String, "carrier": pl.String, "quantity": pl.Float64,
                        "estimated_quantity": pl.Float64, "energy_tce": pl.Float64,
                        "quality": pl.String, "revision": pl.Int64}),
        _frame(emissions, {"meter_id": pl.String, "method": pl.String, "scope": pl.String,
                           "emissions_kgco2": pl.Float64, "factor_id": pl.String,
                           "factor_version": pl.String, "factor_value": pl.Float64,
                           "factor_unit": pl.String}),
        _frame(meters, {"meter_id": pl.String, "carrier": pl.String, "parent_id": pl.String}),
        _frame(instruments, {"kind": pl.String, "quantity": pl.Float64,
                             "period_start": pl.Date, "period_end": pl.Date,
                             "retired": pl.Boolean}),
        _frame(denominators, {"kind": pl.String, "value": pl.Float64, "unit": pl.String}),
        expected_intervals_per_meter=expected,
    )


def format_close(c: MonthlyClose) -> str:
    """A reviewer's one-page text of the close."""
    lines = [
        f"Monthly close: site {c.site_id}, {c.month:%Y-%m} (local month)",
        f"  data: {'COMPLETE' if c.complete else 'INCOMPLETE'} - lowest meter completeness "
        f"{c.completeness:.1%} of {c.expected_intervals_per_meter} expected intervals "
        f"(needs 90 %); corrections recorded: {c.corrections}",
        f"  Scope 1: {c.scope1_kgco2 / 1000:.3f} tCO2",
        f"  Scope 2 location-based: {c.scope2_location_kgco2 / 1000:.3f} tCO2; market-based: "
        f"{c.scope2_market_kgco2 / 1000:.3f} tCO2 (grid {c.grid_kwh:.0f} kWh, green power "
        f"{c.green_power_kwh:.0f} kWh, certificates {c.certificate_kwh:.0f} kWh, unused "
        f"{c.unused_covered_kwh:.0f} kWh)",
        f"  total: location {c.total_location_kgco2 / 1000:.3f} tCO2, market "
        f"{c.total_market_kgco2 / 1000:.3f} tCO2; net (Guangdong: - sinks {c.sinks_tco2:.3f}"
        f" - reductions {c.reductions_tco2:.3f}): location {c.net_location_tco2:.3f}, market "
        f"{c.net_market_tco2:.3f} tCO2",
        f"  energy {c.energy_tce:.3f} tce; {c.location_tco2_per_tce or 0:.3f} tCO2/tce; "
        f"renewable share {c.renewable_share:.1%} (PV {c.onsite_generation_kwh:.0f} kWh, "
        f"export {c.export_kwh:.0f} kWh)",
        "  carriers (boundary meters):",
    ]
    for r in c.carriers:
        lines.append(f"    {r['carrier']:<18} {r['quantity']:>14.2f}  {r['energy_tce']:>9.3f} tce"
                     f"  estimated {r['estimated_share']:.1%}  ({r['intervals']} intervals)")
    lines.append("  factors used:")
    for f in c.factors:
        lines.append(f"    {f['method']:<8} {f['factor_id']} {f['factor_version']} = "
                     f"{f['factor_value']} {f['factor_unit']}")
    for k, v in c.intensities.items():
        lines.append(f"  {k}: {v:.6f}")
    return "\n".join(lines)


def close_as_json(c: MonthlyClose) -> str:
    """The close as JSON (dates as ISO strings)."""
    return json.dumps(asdict(c), default=str, indent=2)
