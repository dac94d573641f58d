"""Emissions of energy quantities: Scope 1 and Scope 2, location- and market-based.

Accounting rules of DOMAIN.md section 4 (GHG Protocol Scope 2 Guidance, dual reporting; fuel
combustion per GB/T 32150-2015):

===================  =======  ==========================================================
carrier              scope    factor (location-based / market-based)
===================  =======  ==========================================================
grid_import          scope2   provincial (else national) grid average / national grid
                              factor excluding market-traded non-fossil power
natural_gas, diesel, scope1   fuel factor, the same for both methods
gasoline, lpg
heat                 scope2   purchased-heat factor, the same for both methods
onsite_renewable     -        generated on site: no emissions (counts toward the renewable
                              share)
grid_export          -        exported power is not subtracted from emissions
water, waste_heat    -        not an emission source here
ev_charging,         -        sub-meters: their energy is already inside the parent grid
it_load                       import meter; counting them again would double count
===================  =======  ==========================================================

Per interval the market-based Scope 2 of grid electricity is quantity x the excluding-market
factor; green power (绿电) and green certificates (绿证) are applied later, per period, with
:func:`market_based_scope2`, because contracts and certificates cover a period's kWh, not an
interval's.

Callers apply :func:`interval_emissions` to the meters at the site boundary only: a
``grid_import`` meter whose parent is also a ``grid_import`` meter is a sub-meter whose energy
is already counted by its parent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from carbon.factors import FUEL_CARRIERS, EmissionFactor, FactorLibrary
from carbon.units import CANONICAL_UNIT, Carrier

Scope = Literal["scope1", "scope2"]
Method = Literal["location", "market"]


class EmissionError(ValueError):
    """An invalid quantity or a coverage that exceeds consumption; the message names both."""


#: Carriers that never produce an emission row (see the module docstring for why).
NO_EMISSION_CARRIERS = frozenset(
    {
        Carrier.ONSITE_RENEWABLE,
        Carrier.GRID_EXPORT,
        Carrier.WATER,
        Carrier.WASTE_HEAT,
        Carrier.EV_CHARGING,
        Carrier.IT_LOAD,
    }
)


@dataclass(frozen=True)
class EmissionRow:
    """Emissions of one quantity by one method, with the factor that produced them.

    ``emissions_kgco2`` [kgCO2] = quantity [canonical unit] x ``factor_value``
    [``factor_unit``]; ``factor_id`` and ``factor_version`` identify the factor in the
    :class:`~carbon.factors.FactorLibrary` so the figure can be audited and restated.
    """

    scope: Scope
    method: Method
    emissions_kgco2: float
    factor_id: str
    factor_version: str
    factor_value: float
    factor_unit: str

    @classmethod
    def of(
        cls, scope: Scope, method: Method, quantity_canonical: float, factor: EmissionFactor
    ) -> EmissionRow:
        """Row for ``quantity_canonical`` [canonical unit] times ``factor``."""
        return cls(
            scope=scope,
            method=method,
            emissions_kgco2=quantity_canonical * factor.value,
            factor_id=factor.factor_id,
            factor_version=factor.version,
            factor_value=factor.value,
            factor_unit=factor.unit,
        )


def _check_quantity(name: str, value: float, unit: str) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise EmissionError(f"{name} must be a finite number >= 0 [{unit}], got {value!r}")


def interval_emissions(
    carrier: Carrier,
    quantity_canonical: float,
    region: str,
    accounting_year: int,
    library: FactorLibrary,
    *,
    data_year: int | None = None,
    grid_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[EmissionRow]:
    """Emission rows of one interval's energy of one carrier.

    ``quantity_canonical`` is in the carrier's canonical unit (kWh, m3, GJ, kg; see
    :mod:`carbon.units`); ``region`` is the site's province (selects the grid factor, national
    when the province has none); ``accounting_year`` is the calendar year of the interval (local
    time). Returns a location-based and a market-based row for emitting carriers, ``[]`` for the
    others (rules in the module docstring). ``data_year`` pins the grid factors' data year (a
    restatement); ``grid_overrides`` maps a grid kind (``"grid_average"``,
    ``"grid_excl_market"``) to an override for :meth:`FactorLibrary.grid_factor`.

    Example: 1000 kWh imported in Sichuan in 2025 -> location 1000 x 0.1564 = 156.4 kgCO2
    (data year 2023), market 1000 x 0.6096 = 609.6 kgCO2.
    """
    _check_quantity(f"quantity of {carrier.value}", quantity_canonical, CANONICAL_UNIT[carrier])
    if carrier is Carrier.GRID_IMPORT:
        overrides = grid_overrides or {}
        location = library.grid_factor(
            region,
            accounting_year,
            kind="grid_average",
            data_year=data_year,
            override=overrides.get("grid_average"),
        )
        market = library.grid_factor(
            region,
            accounting_year,
            kind="grid_excl_market",
            data_year=data_year,
            override=overrides.get("grid_excl_market"),
        )
        return [
            EmissionRow.of("scope2", "location", quantity_canonical, location),
            EmissionRow.of("scope2", "market", quantity_canonical, market),
        ]
    if carrier in FUEL_CARRIERS:
        fuel = library.fuel_factor(carrier, accounting_year)
        return [
            EmissionRow.of("scope1", "location", quantity_canonical, fuel),
            EmissionRow.of("scope1", "market", quantity_canonical, fuel),
        ]
    if carrier is Carrier.HEAT:
        heat = library.heat_factor(accounting_year)
        return [
            EmissionRow.of("scope2", "location", quantity_canonical, heat),
            EmissionRow.of("scope2", "market", quantity_canonical, heat),
        ]
    if carrier in NO_EMISSION_CARRIERS:
        return []
    raise EmissionError(f"carrier {carrier.value!r} has no emission rule")  # pragma: no cover


#: Relative tolerance for covered kWh vs consumption (float sums of many intervals).
COVERAGE_TOLERANCE = 1e-9


def market_based_scope2(
    grid_kwh: float,
    green_power_kwh: float,
    certificate_kwh: float,
    excl_market_factor: EmissionFactor | float,
) -> float:
    """Market-based Scope 2 of a period's grid electricity [kgCO2].

    DOMAIN.md section 4 (GHG Protocol Scope 2 Guidance, market-based method): kWh covered by
    green power trading (绿电) and by retired green certificates (绿证) emit 0; the rest is
    multiplied by the national factor excluding market-traded non-fossil power [kgCO2/kWh]::

        emissions = (grid_kwh - green_power_kwh - certificate_kwh) x factor

    Example: 100 000 kWh, 30 000 kWh green power, 20 000 kWh certificates, 0.6096 kgCO2/kWh ->
    50 000 x 0.6096 = 30 480 kgCO2. Certificate bookkeeping (id, vintage, retirement, never
    counted twice) belongs to the caller. Raises :class:`EmissionError` when a quantity is
    negative or the covered kWh exceed ``grid_kwh``.
    """
    for name, v in (
        ("grid_kwh", grid_kwh),
        ("green_power_kwh", green_power_kwh),
        ("certificate_kwh", certificate_kwh),
    ):
        _check_quantity(name, v, "kWh")
    if isinstance(excl_market_factor, EmissionFactor):
        if excl_market_factor.unit != "kgCO2/kWh":
            raise EmissionError(
                f"factor {excl_market_factor.factor_id!r} is in {excl_market_factor.unit}; "
                "market-based Scope 2 needs a grid factor in kgCO2/kWh"
            )
        factor_value = excl_market_factor.value
    else:
        factor_value = excl_market_factor
        _check_quantity("excl_market_factor", factor_value, "kgCO2/kWh")
    covered = green_power_kwh + certificate_kwh
    if covered > grid_kwh * (1.0 + COVERAGE_TOLERANCE):
        raise EmissionError(
            f"covered electricity {covered:g} kWh (green power {green_power_kwh:g} + "
            f"certificates {certificate_kwh:g}) exceeds grid consumption {grid_kwh:g} kWh; "
            "covered kWh must be <= consumption"
        )
    residual_kwh = max(grid_kwh - covered, 0.0)
    return residual_kwh * factor_value
