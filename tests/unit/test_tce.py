"""Standard coal equivalent, GB/T 2589-2020, checked by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon.factors import FactorLibrary
from carbon.tce import (
    NATURAL_GAS,
    NATURAL_GAS_GAS_FIELD,
    TCE_COEFFICIENTS,
    TceCoefficient,
    TceError,
    tce,
)
from carbon.units import Carrier

KJ_PER_KGCE_TABLE = 29_271  # the divisor of GB/T 2589 Appendix A's coefficients


@pytest.mark.parametrize(
    ("carrier", "quantity", "expected_tce"),
    [
        (Carrier.GRID_IMPORT, 10_000.0, 10_000 * 0.1229 / 1000),  # 1.229 tce
        (Carrier.ONSITE_RENEWABLE, 10_000.0, 10_000 * 0.1229 / 1000),
        (Carrier.NATURAL_GAS, 1_000.0, 1_000 * 1.3300 / 1000),  # 1.33 tce
        (Carrier.HEAT, 1.0, 1 * 1000 * 0.03412 / 1000),  # 1 GJ = 1000 MJ -> 0.03412 tce
        (Carrier.WASTE_HEAT, 100.0, 100 * 1000 * 0.03412 / 1000),
        (Carrier.DIESEL, 1_000.0, 1.4571),
        (Carrier.GASOLINE, 1_000.0, 1.4714),
        (Carrier.LPG, 1_000.0, 1.7143),
    ],
)
def test_tce_by_hand(carrier: Carrier, quantity: float, expected_tce: float) -> None:
    assert tce(carrier, quantity) == pytest.approx(expected_tce, rel=1e-12)


@pytest.mark.parametrize(
    ("carrier", "lhv_kj"),
    [
        (Carrier.NATURAL_GAS, 38_931),  # kJ/m3, = MEE LHV 389.31 GJ/10^4 Nm3
        (Carrier.DIESEL, 42_652),  # kJ/kg, = MEE LHV 42.652 GJ/t
        (Carrier.GASOLINE, 43_070),
        (Carrier.LPG, 50_179),
    ],
)
def test_fuel_coefficients_are_the_emission_lhv_over_29271(carrier: Carrier, lhv_kj: int) -> None:
    coefficient = TCE_COEFFICIENTS[carrier].value
    assert round(lhv_kj / KJ_PER_KGCE_TABLE, 4) == pytest.approx(coefficient, abs=1e-4)


def test_natural_gas_default_keeps_tco2_per_tce_consistent() -> None:
    # default 1.3300 is the top of GB/T 2589-2020's 1.1000-1.3300 range and matches the LHV of
    # the emission factor: 15.3 tC/TJ x 0.99 x 44/12 x 29.271 GJ/tce = 1.626 tCO2/tce
    assert NATURAL_GAS.check
    assert 1.1 <= NATURAL_GAS.value <= 1.33
    physical = 15.3 * 0.99 * 44 / 12 * 29.271 / 1000
    gas_kgco2_per_m3 = FactorLibrary().fuel_factor(Carrier.NATURAL_GAS).value
    assert gas_kgco2_per_m3 / NATURAL_GAS.value == pytest.approx(physical, rel=1e-3)


def test_coefficients_can_be_overridden() -> None:
    alt = {Carrier.NATURAL_GAS: NATURAL_GAS_GAS_FIELD}
    assert tce(Carrier.NATURAL_GAS, 1_000.0, alt) == pytest.approx(1.2143)
    assert tce(Carrier.DIESEL, 1_000.0, alt) == pytest.approx(1.4571)  # others keep defaults
    per_t = TceCoefficient(1457.1, "kgce/t", "kg", "test")
    assert tce(Carrier.DIESEL, 1_000.0, {Carrier.DIESEL: per_t}) == pytest.approx(1.4571)


def test_errors_name_carrier_and_unit() -> None:
    with pytest.raises(TceError, match="'water' has no tce coefficient; accepted: diesel"):
        tce(Carrier.WATER, 1.0)
    with pytest.raises(TceError, match=r"must be a finite number >= 0 \[GJ\], got -1.0"):
        tce(Carrier.HEAT, -1.0)
    with pytest.raises(TceError, match=r"got nan"):
        tce(Carrier.HEAT, math.nan)
    with pytest.raises(TceError, match="converts kg, but the carrier is measured in m3"):
        tce(Carrier.NATURAL_GAS, 1.0, {Carrier.NATURAL_GAS: TCE_COEFFICIENTS[Carrier.DIESEL]})
    with pytest.raises(TceError, match="unit 'kgce/m3' does not convert kg; accepted"):
        TceCoefficient(1.0, "kgce/m3", "kg", "test")


@given(q=st.floats(0.0, 1e9, allow_nan=False), carrier=st.sampled_from(sorted(TCE_COEFFICIENTS)))
def test_tce_is_linear(q: float, carrier: Carrier) -> None:
    assert tce(carrier, 2 * q) == pytest.approx(2 * tce(carrier, q), rel=1e-12)
