"""The monthly close: the figures a reviewer verifies for one site and one local month.

Pure (polars in, a :class:`MonthlyClose` out); :mod:`analytics.close` reads the database.

Rules (DOMAIN.md section 4, seeds 000 and 003):

* Only *boundary* meters (no parent) are summed: a sub-meter's energy is already in its
  parent's.
* Scope 1 = fuels burned inside the boundary; Scope 2 = purchased electricity (and heat).
  Location-based Scope 2 is the sum of the interval rows (grid kWh x provincial average).
  Market-based Scope 2 is computed for the month: green-power kWh and retired green-certificate
  kWh count as zero, the rest x the factor excluding market-traded non-fossil power
  (:func:`carbon.emissions.market_based_scope2`). Covered kWh above the month's grid kWh are
  reported as unused, not carried over.
* A contract or certificate covering several months is spread evenly over them, so that each
  MWh counts once; a certificate counts only when retired.
* On-site renewable generation consumed on site (generation - export) has no emissions and
  counts toward the renewable share; export is not subtracted from emissions.
* Net emissions (Guangdong guide, seed 003): boundary emissions - carbon sinks - purchased
  voluntary reductions (CCER, PHCER, Chengdu reductions), both with the location- and the
  market-based Scope 2.
* Completeness: a meter's share of its expected intervals that are fully measured; the month
  is *complete* when every meter reaches 90 % (the online-monitoring rule of thumb). The
  estimated share is the estimated quantity over the total, per carrier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from carbon.emissions import market_based_scope2
from carbon.units import ELECTRIC_CARRIERS, Carrier

COMPLETE_SHARE = 0.9

# Instruments that reduce the market-based Scope 2 [MWh] and those subtracted for net
# emissions [tCO2].
GREEN_POWER = "green_power"
GREEN_CERTIFICATE = "green_certificate"
OFFSET_KINDS = ("carbon_sink", "ccer", "phcer", "chengdu_reduction")


@dataclass(frozen=True)
class MonthlyClose:
    """One site-month. Quantities in canonical units (kWh, m3, GJ, kg), energy in tce,
    emissions in kgCO2 unless the name says tCO2."""

    site_id: str
    month: date
    expected_intervals_per_meter: int
    carriers: list[dict[str, Any]]
    meters: list[dict[str, Any]]
    complete: bool
    completeness: float
    scope1_kgco2: float
    scope2_location_kgco2: float
    scope2_market_kgco2: float
    grid_kwh: float
    green_power_kwh: float
    certificate_kwh: float
    unused_covered_kwh: float
    onsite_generation_kwh: float
    export_kwh: float
    renewable_share: float
    energy_tce: float
    location_tco2_per_tce: float | None
    sinks_tco2: float
    reductions_tco2: float
    net_location_tco2: float
    net_market_tco2: float
    factors: list[dict[str, Any]]
    intensities: dict[str, float] = field(default_factory=dict)
    corrections: int = 0

    @property
    def total_location_kgco2(self) -> float:
        """Scope 1 + location-based Scope 2 [kgCO2]."""
        return self.scope1_kgco2 + self.scope2_location_kgco2

    @property
    def total_market_kgco2(self) -> float:
        """Scope 1 + market-based Scope 2 [kgCO2]."""
        return self.scope1_kgco2 + self.scope2_market_kgco2


def months_in(start: date, end: date) -> int:
    """Number of months from ``start`` to ``end`` inclusive (first days of months)."""
    return (end.year - start.year) * 12 + end.month - start.month + 1


def month_share(instruments: pl.DataFrame, month: date, kinds: tuple[str, ...]) -> float:
    """Sum of the instruments of ``kinds`` allocated to ``month`` (even spread over their
    months; certificates only when retired), in the instruments' unit."""
    total = 0.0
    for row in instruments.iter_rows(named=True):
        if row["kind"] not in kinds or not row["retired"]:
            continue
        if row["period_start"] <= month <= row["period_end"]:
            total += row["quantity"] / months_in(row["period_start"], row["period_end"])
    return total


def close_month(
    site_id: str,
    month: date,
    energy: pl.DataFrame,
    emissions: pl.DataFrame,
    meters: pl.DataFrame,
    instruments: pl.DataFrame,
    denominators: pl.DataFrame,
    *,
    expected_intervals_per_meter: int,
) -> MonthlyClose:
    """Close one site-month.

    ``energy``: meter_id, carrier, quantity, estimated_quantity, energy_tce, quality,
    revision (one row per meter and interval of the month); ``emissions``: meter_id, method,
    scope, emissions_kgco2, factor_id, factor_version, factor_value, factor_unit;
    ``meters``: meter_id, carrier, parent_id; ``instruments``: kind, quantity, period_start,
    period_end, retired; ``denominators``: kind, value, unit (of this month).
    """
    boundary = meters.filter(pl.col("parent_id").is_null())
    boundary_ids = boundary["meter_id"].to_list()
    e = energy.filter(pl.col("meter_id").is_in(boundary_ids))
    by_carrier = (
        e.group_by("carrier")
        .agg(
            pl.col("quantity").sum().alias("quantity"),
            pl.col("estimated_quantity").sum().alias("estimated_quantity"),
            pl.col("energy_tce").fill_null(0.0).sum().alias("energy_tce"),
            pl.len().alias("intervals"),
        )
        .with_columns(
            pl.when(pl.col("quantity") > 0)
            .then(pl.col("estimated_quantity") / pl.col("quantity"))
            .otherwise(0.0)
            .alias("estimated_share")
        )
        .sort("carrier")
    )
    qty = {r["carrier"]: r["quantity"] for r in by_carrier.iter_rows(named=True)}

    # completeness per meter: fully measured intervals over the expected number
    per_meter = (
        meters.select("meter_id", "carrier", "parent_id")
        .join(
            energy.group_by("meter_id").agg(
                (pl.col("quality") == "measured").sum().alias("measured"),
                (pl.col("quality") == "estimated").sum().alias("estimated"),
                pl.len().alias("rows"),
            ),
            on="meter_id",
            how="left",
        )
        .with_columns(pl.col("measured", "estimated", "rows").fill_null(0))
        .with_columns(
            (pl.col("measured") / expected_intervals_per_meter).alias("completeness")
        )
        .sort("meter_id")
    )
    shares = per_meter["completeness"].to_list()
    completeness = float(min(shares)) if shares else 0.0

    x = emissions.filter(pl.col("meter_id").is_in(boundary_ids))
    scope1 = float(x.filter((pl.col("scope") == "scope1") & (pl.col("method") == "location"))
                   ["emissions_kgco2"].sum())
    s2_loc = float(x.filter((pl.col("scope") == "scope2") & (pl.col("method") == "location"))
                   ["emissions_kgco2"].sum())
    market2 = x.filter((pl.col("scope") == "scope2") & (pl.col("method") == "market"))
    grid_mkt_rows = float(market2.filter(pl.col("factor_id").str.starts_with("grid."))
                          ["emissions_kgco2"].sum())
    # purchased heat: no market instrument applies, the same figure in both methods
    heat_kgco2 = float(market2.filter(~pl.col("factor_id").str.starts_with("grid."))
                       ["emissions_kgco2"].sum())

    grid_kwh = qty.get(Carrier.GRID_IMPORT.value, 0.0)
    green_kwh = month_share(instruments, month, (GREEN_POWER,)) * 1000.0
    cert_kwh = month_share(instruments, month, (GREEN_CERTIFICATE,)) * 1000.0
    unused = max(0.0, green_kwh + cert_kwh - grid_kwh)
    s2_mkt = heat_kgco2
    if grid_kwh > 0:
        excl_factor = grid_mkt_rows / grid_kwh  # kWh-weighted factor of the interval rows
        green_used = min(green_kwh, grid_kwh)
        cert_used = min(cert_kwh, grid_kwh - green_used)
        s2_mkt += market_based_scope2(grid_kwh, green_used, cert_used, excl_factor)

    generation = qty.get(Carrier.ONSITE_RENEWABLE.value, 0.0)
    export = qty.get(Carrier.GRID_EXPORT.value, 0.0)
    self_consumed = max(0.0, generation - export)
    consumed_electricity = grid_kwh + self_consumed
    renewable_share = self_consumed / consumed_electricity if consumed_electricity > 0 else 0.0

    # energy consumed: fuels and purchased electricity/heat plus own renewables used; export
    # and the (sub-metered) electric sub-carriers are not added again
    consumed_carriers = [c for c in qty if Carrier(c) not in ELECTRIC_CARRIERS
                         and c not in (Carrier.WATER.value, Carrier.WASTE_HEAT.value)]
    tce_rows = {r["carrier"]: r["energy_tce"] for r in by_carrier.iter_rows(named=True)}
    electricity_tce_per_kwh = (tce_rows.get(Carrier.GRID_IMPORT.value, 0.0) / grid_kwh
                               if grid_kwh > 0 else 0.0)
    energy_tce = (sum(tce_rows.get(c, 0.0) for c in consumed_carriers)
                  + consumed_electricity * electricity_tce_per_kwh)

    sinks = month_share(instruments, month, ("carbon_sink",))
    reductions = month_share(instruments, month, OFFSET_KINDS[1:])
    total_loc_t = (scope1 + s2_loc) / 1000.0
    total_mkt_t = (scope1 + s2_mkt) / 1000.0

    factors = (
        x.group_by("factor_id", "factor_version", "factor_value", "factor_unit", "method")
        .agg(pl.col("emissions_kgco2").sum().alias("emissions_kgco2"))
        .sort("factor_id", "method", "factor_version")
        .to_dicts()
    )
    intensities: dict[str, float] = {}
    for row in denominators.iter_rows(named=True):
        if row["value"] > 0:
            intensities[f"tco2_location_per_{row['kind']}"] = total_loc_t / row["value"]
    corrections = int((e["revision"] - 1).clip(lower_bound=0).sum()) if "revision" in e else 0

    return MonthlyClose(
        site_id=site_id,
        month=month,
        expected_intervals_per_meter=expected_intervals_per_meter,
        carriers=by_carrier.to_dicts(),
        meters=per_meter.to_dicts(),
        complete=bool(len(per_meter)) and completeness >= COMPLETE_SHARE,
        completeness=completeness,
        scope1_kgco2=scope1,
        scope2_location_kgco2=s2_loc,
        scope2_market_kgco2=s2_mkt,
        grid_kwh=grid_kwh,
        green_power_kwh=green_kwh,
        certificate_kwh=cert_kwh,
        unused_covered_kwh=unused,
        onsite_generation_kwh=generation,
        export_kwh=export,
        renewable_share=renewable_share,
        energy_tce=energy_tce,
        location_tco2_per_tce=total_loc_t / energy_tce if energy_tce > 0 else None,
        sinks_tco2=sinks,
        reductions_tco2=reductions,
        net_location_tco2=total_loc_t - sinks - reductions,
        net_market_tco2=total_mkt_t - sinks - reductions,
        factors=factors,
        intensities=intensities,
        corrections=corrections,
    )
