"""Energy carriers, their canonical units and unit conversion.

Every quantity inside the pipeline is carried in the canonical unit of its carrier:

==================  ==========  =====================================================
carrier             canonical   accepted on the wire (factor to canonical)
==================  ==========  =====================================================
electricity kinds   kWh         Wh (0.001), kWh (1), MWh (1000)
natural gas, water  m3          m3 (1), Nm3 (1), 10^4 m3 (10000), L (0.001, water)
heat, waste heat    GJ          MJ (0.001), GJ (1), kWh (0.0036), MWh (3.6)
diesel/gasoline/LPG kg          kg (1), t (1000)
==================  ==========  =====================================================

Gas volumes are taken as normal cubic metres (Nm3, 0 degC, 101.325 kPa) as in the MEE
default parameters; a deployment whose gas meters report uncorrected volumes must correct
them upstream (check).
"""

from __future__ import annotations

from enum import StrEnum


class Carrier(StrEnum):
    """What a meter measures (DOMAIN.md section 1)."""

    GRID_IMPORT = "grid_import"
    GRID_EXPORT = "grid_export"
    ONSITE_RENEWABLE = "onsite_renewable"
    NATURAL_GAS = "natural_gas"
    HEAT = "heat"
    DIESEL = "diesel"
    GASOLINE = "gasoline"
    LPG = "lpg"
    WATER = "water"
    WASTE_HEAT = "waste_heat"
    EV_CHARGING = "ev_charging"
    IT_LOAD = "it_load"


ELECTRIC_CARRIERS = frozenset(
    {
        Carrier.GRID_IMPORT,
        Carrier.GRID_EXPORT,
        Carrier.ONSITE_RENEWABLE,
        Carrier.EV_CHARGING,
        Carrier.IT_LOAD,
    }
)

CANONICAL_UNIT: dict[Carrier, str] = {
    **{c: "kWh" for c in ELECTRIC_CARRIERS},
    Carrier.NATURAL_GAS: "m3",
    Carrier.WATER: "m3",
    Carrier.HEAT: "GJ",
    Carrier.WASTE_HEAT: "GJ",
    Carrier.DIESEL: "kg",
    Carrier.GASOLINE: "kg",
    Carrier.LPG: "kg",
}

_ELECTRIC = {"Wh": 0.001, "kWh": 1.0, "MWh": 1000.0}
_VOLUME = {"m3": 1.0, "Nm3": 1.0, "1e4m3": 10_000.0}
_HEAT = {"MJ": 0.001, "GJ": 1.0, "kWh": 0.0036, "MWh": 3.6}
_MASS = {"kg": 1.0, "t": 1000.0}

_TO_CANONICAL: dict[Carrier, dict[str, float]] = {
    **{c: _ELECTRIC for c in ELECTRIC_CARRIERS},
    Carrier.NATURAL_GAS: _VOLUME,
    Carrier.WATER: {**_VOLUME, "L": 0.001},
    Carrier.HEAT: _HEAT,
    Carrier.WASTE_HEAT: _HEAT,
    Carrier.DIESEL: _MASS,
    Carrier.GASOLINE: _MASS,
    Carrier.LPG: _MASS,
}


class UnitError(ValueError):
    """A unit that cannot measure the given carrier."""


def to_canonical_factor(carrier: Carrier, unit: str) -> float:
    """Multiplier that converts a value in ``unit`` to the canonical unit of ``carrier``.

    Raises :class:`UnitError` naming the accepted units when ``unit`` does not fit.
    """
    table = _TO_CANONICAL[carrier]
    try:
        return table[unit]
    except KeyError:
        accepted = ", ".join(sorted(table))
        raise UnitError(
            f"unit {unit!r} cannot measure {carrier.value}; accepted: {accepted}"
        ) from None
