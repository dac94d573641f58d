"""Standard coal equivalent (tce) of energy quantities, GB/T 2589-2020.

GB/T 2589-2020 *General principles for calculation of the comprehensive energy consumption*
defines 1 kgce as 29 307 kJ of low heating value; its Appendix A reference coefficients are
the average low heating values divided by 29 271 kJ/kgce (e.g. diesel 42 652 kJ/kg / 29 271 =
1.4571 kgce/kg). Each coefficient here is data with its source and unit; :func:`tce` converts a
quantity in its carrier's canonical unit (:mod:`carbon.units`) to tonnes of standard coal.

Natural gas (check)
-------------------
GB/T 2589-2020 gives a range, 1.1000-1.3300 kgce/m3 (32 238-39 300 kJ/m3). The default here is
**1.3300 kgce/m3**, because it is the coefficient of the very heating value the emission factor
uses: the MEE / GB/T 32150-2015 default LHV of natural gas is 389.31 GJ/10^4 Nm3 = 38 931 kJ/m3,
and 38 931 / 29 271 = 1.3300, exactly as the liquid-fuel coefficients below are the MEE LHVs
divided by 29 271 (gasoline 43 070 -> 1.4714, diesel 42 652 -> 1.4571, LPG 50 179 -> 1.7143).
With it, gas emits 2.1622 / 1.3300 = 1.626 tCO2/tce, which is 15.3 tC/TJ x 0.99 x 44/12 x
29.271 GJ/tce, so the indicator "emissions per unit energy" [tCO2/tce] stays consistent with the
emission factor. The other common choice, 1.2143 kgce/m3 (35 544 kJ/m3, "gas-field gas" in
GB/T 2589-2008), is available as :data:`NATURAL_GAS_GAS_FIELD`. A deployment whose gas supplier
states the heating value should use that value / 29 271 kJ/kgce (pass ``coefficients``).

Electricity uses the *equivalent value* (当量值) 0.1229 kgce/kWh (the heat content of
3 600 kJ/kWh, as published); an indicator that asks for the *equal value* (等价值, coal
consumed per kWh supplied) needs its own coefficient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from carbon.units import CANONICAL_UNIT, ELECTRIC_CARRIERS, Carrier


class TceError(ValueError):
    """A carrier without a coefficient, a wrong unit or an invalid quantity."""


#: Coefficient units and the multiplier to kgce per canonical unit of the carrier, keyed by the
#: canonical unit they apply to.
_TO_CANONICAL: Mapping[str, Mapping[str, float]] = {
    "kWh": {"kgce/kWh": 1.0},
    "m3": {"kgce/m3": 1.0},
    "GJ": {"kgce/MJ": 1000.0, "kgce/GJ": 1.0},
    "kg": {"kgce/kg": 1.0, "kgce/t": 0.001},
}

KGCE_PER_TCE = 1000.0


@dataclass(frozen=True)
class TceCoefficient:
    """Standard-coal coefficient of one carrier: ``value`` [``unit``], e.g. 1.4571 kgce/kg.

    ``canonical_unit`` is the carrier's canonical unit the coefficient converts from; ``check``
    marks a default that a deployment must confirm.
    """

    value: float
    unit: str
    canonical_unit: str
    source: str
    check: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        accepted = _TO_CANONICAL.get(self.canonical_unit)
        if accepted is None:
            raise TceError(
                f"canonical unit {self.canonical_unit!r} is unknown; accepted: "
                f"{', '.join(_TO_CANONICAL)}"
            )
        if self.unit not in accepted:
            raise TceError(
                f"coefficient unit {self.unit!r} does not convert {self.canonical_unit}; "
                f"accepted: {', '.join(accepted)}"
            )
        if isinstance(self.value, bool) or not math.isfinite(self.value) or self.value <= 0:
            raise TceError(f"coefficient value must be a finite number > 0, got {self.value!r}")

    @property
    def kgce_per_canonical(self) -> float:
        """The coefficient in kgce per canonical unit (kgce/MJ x 1000 -> kgce/GJ)."""
        return self.value * _TO_CANONICAL[self.canonical_unit][self.unit]


_GBT2589 = "GB/T 2589-2020 Appendix A"

ELECTRICITY = TceCoefficient(
    0.1229, "kgce/kWh", "kWh", _GBT2589, note="equivalent value (当量值), 3600 kJ/kWh"
)
NATURAL_GAS = TceCoefficient(
    1.3300,
    "kgce/m3",
    "m3",
    _GBT2589 + " (range 1.1000-1.3300); 38931 kJ/m3 = MEE default LHV 389.31 GJ/10^4 Nm3",
    check=True,
    note="upper end of the range: consistent with the emission factor's LHV (module docstring)",
)
NATURAL_GAS_GAS_FIELD = TceCoefficient(
    1.2143,
    "kgce/m3",
    "m3",
    "GB/T 2589-2008 Appendix A, gas-field natural gas 35544 kJ/m3",
    check=True,
    note="alternative to the default for supplies of lower heating value",
)
HEAT = TceCoefficient(0.03412, "kgce/MJ", "GJ", _GBT2589, note="1 MJ / 29.3076 MJ/kgce")
DIESEL = TceCoefficient(1.4571, "kgce/kg", "kg", _GBT2589, note="42652 kJ/kg")
GASOLINE = TceCoefficient(1.4714, "kgce/kg", "kg", _GBT2589, note="43070 kJ/kg")
LPG = TceCoefficient(1.7143, "kgce/kg", "kg", _GBT2589, note="50179 kJ/kg")

#: Default coefficients. Every electric carrier (import, export, on-site renewable, EV
#: charging, IT load) uses the electricity equivalent value; recovered waste heat uses the heat
#: coefficient. Water has none: it is an energy-consuming medium (耗能工质) whose coefficient
#: depends on the supplier.
TCE_COEFFICIENTS: Mapping[Carrier, TceCoefficient] = {
    **{c: ELECTRICITY for c in ELECTRIC_CARRIERS},
    Carrier.NATURAL_GAS: NATURAL_GAS,
    Carrier.HEAT: HEAT,
    Carrier.WASTE_HEAT: HEAT,
    Carrier.DIESEL: DIESEL,
    Carrier.GASOLINE: GASOLINE,
    Carrier.LPG: LPG,
}


def tce(
    carrier: Carrier,
    quantity_canonical: float,
    coefficients: Mapping[Carrier, TceCoefficient] | None = None,
) -> float:
    """Standard coal equivalent [tce] of ``quantity_canonical`` [canonical unit of ``carrier``].

    ``tce = quantity x coefficient [kgce per canonical unit] / 1000``, coefficients of
    GB/T 2589-2020 (:data:`TCE_COEFFICIENTS`, or ``coefficients`` to override some or all).
    Heat is canonical in GJ while its coefficient is per MJ: 1 GJ = 1000 MJ x 0.03412 kgce/MJ =
    34.12 kgce. Raises :class:`TceError` for a carrier without a coefficient or a negative or
    non-finite quantity.
    """
    table = TCE_COEFFICIENTS if coefficients is None else {**TCE_COEFFICIENTS, **coefficients}
    coefficient = table.get(carrier)
    if coefficient is None:
        accepted = ", ".join(sorted(c.value for c in table))
        raise TceError(f"carrier {carrier.value!r} has no tce coefficient; accepted: {accepted}")
    if coefficient.canonical_unit != CANONICAL_UNIT[carrier]:
        raise TceError(
            f"coefficient for {carrier.value} converts {coefficient.canonical_unit}, but the "
            f"carrier is measured in {CANONICAL_UNIT[carrier]}"
        )
    if (
        isinstance(quantity_canonical, bool)
        or not math.isfinite(quantity_canonical)
        or quantity_canonical < 0
    ):
        raise TceError(
            f"quantity of {carrier.value} must be a finite number >= 0 "
            f"[{CANONICAL_UNIT[carrier]}], got {quantity_canonical!r}"
        )
    return quantity_canonical * coefficient.kgce_per_canonical / KGCE_PER_TCE
