"""Close one site-month read from the database (:mod:`analytics.monthly`); the SQL is in
:mod:`db.review`.

Month boundaries are the site's local month (Asia/Shanghai for every sample site), as
reviewers read them: ``[local first day 00:00, next month's first day 00:00)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

import polars as pl

from analytics.monthly import MonthlyClose, close_month
from carbon.units import CANONICAL_UNIT, Carrier
from db.review import MonthInputs, connect, load_month_inputs, month_bounds

__all__ = ["close_as_json", "close_inputs", "format_close", "load_and_close", "month_bounds"]


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    rows = [{k: r.get(k) for k in schema} for r in rows]
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(
        schema=schema)


def close_inputs(inputs: MonthInputs) -> MonthlyClose:
    """Close a site-month from the rows :func:`db.review.load_month_inputs` read."""
    return close_month(
        inputs.site["site_id"], inputs.month,
        _frame(inputs.energy, {"meter_id": pl.String, "carrier": pl.String,
                               "quantity": pl.Float64, "estimated_quantity": pl.Float64,
                               "energy_tce": pl.Float64, "quality": pl.String,
                               "revision": pl.Int64}),
        _frame(inputs.emissions, {"meter_id": pl.String, "method": pl.String,
                                  "scope": pl.String, "emissions_kgco2": pl.Float64,
                                  "factor_id": pl.String, "factor_version": pl.String,
                                  "factor_value": pl.Float64, "factor_unit": pl.String}),
        _frame(inputs.meters, {"meter_id": pl.String, "carrier": pl.String,
                               "parent_id": pl.String}),
        _frame(inputs.instruments, {"kind": pl.String, "quantity": pl.Float64,
                                    "period_start": pl.Date, "period_end": pl.Date,
                                    "retired": pl.Boolean}),
        _frame(inputs.denominators, {"kind": pl.String, "value": pl.Float64,
                                     "unit": pl.String}),
        expected_intervals_per_meter=inputs.expected_intervals_per_meter,
    )


def load_and_close(database_url: str, site_id: str, month: date, interval_s: int = 900,
                   now: datetime | None = None) -> MonthlyClose:
    """Close ``site_id`` for the local month of ``month``; a month still running is closed up
    to ``now`` (its expected interval count is month-to-date)."""
    with connect(database_url) as conn:
        try:
            inputs = load_month_inputs(conn, site_id, month, interval_s, now)
        except LookupError as exc:
            raise ValueError(str(exc)) from exc
    return close_inputs(inputs)


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
        unit = _unit(r["carrier"])
        lines.append(f"    {r['carrier']:<18} {r['quantity']:>14.2f} {unit:<4} "
                     f"{r['energy_tce']:>9.3f} tce  estimated {r['estimated_share']:.1%}"
                     f"  ({r['intervals']} intervals)")
    lines.append("  factors used:")
    for f in c.factors:
        lines.append(f"    {f['method']:<8} {f['factor_id']} {f['factor_version']} = "
                     f"{f['factor_value']} {f['factor_unit']}")
    for k, v in c.intensities.items():
        lines.append(f"  {k}: {v:.6f} tCO2 per {k.removeprefix('tco2_location_per_')} unit")
    return "\n".join(lines)


def _unit(carrier: str) -> str:
    try:
        return CANONICAL_UNIT[Carrier(carrier)]
    except ValueError:
        return "?"


def close_as_json(c: MonthlyClose) -> str:
    """The close as JSON (dates as ISO strings)."""
    return json.dumps(asdict(c), default=str, indent=2)
