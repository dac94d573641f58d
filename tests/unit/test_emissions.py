"""Interval emissions (Scope 1/2, location/market) and period market-based Scope 2, by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon.emissions import (
    NO_EMISSION_CARRIERS,
    EmissionError,
    EmissionRow,
    interval_emissions,
    market_based_scope2,
)
from carbon.factors import FactorLibrary
from carbon.units import Carrier

LIB = FactorLibrary()


def _by_method(rows: list[EmissionRow]) -> dict[str, EmissionRow]:
    assert [r.method for r in rows] == ["location", "market"]
    return {r.method: r for r in rows}


def test_a_month_of_grid_import_in_sichuan_location_vs_market() -> None:
    # March 2025, Chengdu park: 120 000 kWh imported.
    # location: Sichuan 2023 data (newest <= 2025) 0.1564 kgCO2/kWh -> 18 768 kgCO2
    # market:   national excl. market-traded non-fossil, 2023 data, 0.6096 -> 73 152 kgCO2
    rows = _by_method(interval_emissions(Carrier.GRID_IMPORT, 120_000.0, "sichuan", 2025, LIB))
    loc, mkt = rows["location"], rows["market"]
    assert loc.scope == mkt.scope == "scope2"
    assert loc.emissions_kgco2 == pytest.approx(18_768.0)
    assert mkt.emissions_kgco2 == pytest.approx(73_152.0)
    assert (loc.factor_id, loc.factor_version, loc.factor_value, loc.factor_unit) == (
        "grid.avg.sichuan",
        "mee-2025-47",
        0.1564,
        "kgCO2/kWh",
    )
    assert (mkt.factor_id, mkt.factor_version, mkt.factor_value) == (
        "grid.excl_market.national",
        "mee-2025-47",
        0.6096,
    )


def test_grid_import_in_2022_uses_2022_data_and_national_fallback() -> None:
    # Guangdong 2022: 10 000 kWh x 0.4403 = 4 403 kg; Hubei has no default -> national 0.5366
    gd = _by_method(interval_emissions(Carrier.GRID_IMPORT, 10_000.0, "guangdong", 2022, LIB))
    assert gd["location"].emissions_kgco2 == pytest.approx(4_403.0)
    assert gd["market"].emissions_kgco2 == pytest.approx(5_856.0)  # 0.5856 (2022 data)
    hb = _by_method(interval_emissions(Carrier.GRID_IMPORT, 10_000.0, "hubei", 2022, LIB))
    assert hb["location"].factor_id == "grid.avg.national"
    assert hb["location"].emissions_kgco2 == pytest.approx(5_366.0)


def test_restatement_with_explicit_data_year() -> None:
    rows = _by_method(
        interval_emissions(Carrier.GRID_IMPORT, 1000.0, "guangxi", 2025, LIB, data_year=2022)
    )
    assert rows["location"].emissions_kgco2 == pytest.approx(404.4)  # 1000 x 0.4044
    assert rows["market"].factor_version == "mee-2024-33"


def test_grid_overrides_per_kind() -> None:
    rows = _by_method(
        interval_emissions(
            Carrier.GRID_IMPORT,
            1000.0,
            "sichuan",
            2025,
            LIB,
            grid_overrides={"grid_average": {"data_year": 2021}},
        )
    )
    assert rows["location"].emissions_kgco2 == pytest.approx(125.5)  # 0.1255
    assert rows["market"].emissions_kgco2 == pytest.approx(609.6)  # not overridden


def test_natural_gas_is_scope1_same_for_both_methods() -> None:
    # 10 000 Nm3: 389.31 GJ x 15.3 tC/TJ x 0.99 x 44/12 = 21.62 tCO2
    expected_kg = 389.31 * 15.3 / 1000 * 0.99 * 44 / 12 * 1000
    rows = _by_method(interval_emissions(Carrier.NATURAL_GAS, 10_000.0, "sichuan", 2025, LIB))
    for r in rows.values():
        assert r.scope == "scope1"
        assert r.emissions_kgco2 == pytest.approx(expected_kg, rel=1e-12)
        assert r.emissions_kgco2 / 1000 == pytest.approx(21.62, abs=0.005)
        assert (r.factor_id, r.factor_version, r.factor_unit) == (
            "fuel.natural_gas",
            "gbt32150-2015",
            "kgCO2/m3",
        )


def test_diesel_generator_one_tonne() -> None:
    # 1000 kg diesel: 42.652 GJ/t x 20.2 tC/TJ / 1000 x 0.98 x 44/12 = 3.096 tCO2
    expected_kg = 42.652 * 20.2 / 1000 * 0.98 * 44 / 12 * 1000
    rows = interval_emissions(Carrier.DIESEL, 1000.0, "guangxi", 2024, LIB)
    assert [r.scope for r in rows] == ["scope1", "scope1"]
    assert rows[0].emissions_kgco2 == pytest.approx(expected_kg, rel=1e-12)
    assert rows[0].emissions_kgco2 == pytest.approx(3096.0, abs=0.5)


def test_purchased_heat_is_scope2_at_0_11_tco2_per_gj() -> None:
    rows = _by_method(interval_emissions(Carrier.HEAT, 250.0, "sichuan", 2025, LIB))
    for r in rows.values():
        assert r.scope == "scope2"
        assert r.emissions_kgco2 == pytest.approx(250 * 0.11 * 1000)  # 27.5 tCO2
        assert r.factor_id == "heat.purchased"


@pytest.mark.parametrize("carrier", sorted(NO_EMISSION_CARRIERS))
def test_carriers_without_emissions(carrier: Carrier) -> None:
    assert interval_emissions(carrier, 500.0, "sichuan", 2025, LIB) == []


def test_sub_meters_and_renewables_are_the_documented_set() -> None:
    assert {
        Carrier.ONSITE_RENEWABLE,
        Carrier.GRID_EXPORT,
        Carrier.WATER,
        Carrier.WASTE_HEAT,
        Carrier.EV_CHARGING,
        Carrier.IT_LOAD,
    } == NO_EMISSION_CARRIERS


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_invalid_quantity_is_rejected_with_its_unit(bad: float) -> None:
    with pytest.raises(EmissionError, match=r"quantity of natural_gas must be .* \[m3\]"):
        interval_emissions(Carrier.NATURAL_GAS, bad, "sichuan", 2025, LIB)


def test_user_supplied_factor_flows_into_rows() -> None:
    lib = FactorLibrary.from_records(
        [
            {
                "factor_id": "heat.purchased",
                "version": "supplier-2025",
                "value": 0.095,
                "unit": "tCO2/GJ",
                "kind": "heat",
                "source": "heat supplier statement",
            }
        ]
    )
    rows = interval_emissions(Carrier.HEAT, 10.0, "sichuan", 2025, lib)
    assert rows[0].factor_version == "supplier-2025"
    assert rows[0].emissions_kgco2 == pytest.approx(950.0)


def test_unknown_region_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a known province"):
        interval_emissions(Carrier.GRID_IMPORT, 1.0, "atlantis", 2025, LIB)


quantities = st.floats(0.0, 1e6, allow_nan=False)


@given(a=quantities, b=quantities)
def test_interval_emissions_add_up(a: float, b: float) -> None:
    for carrier in (Carrier.GRID_IMPORT, Carrier.NATURAL_GAS, Carrier.HEAT):
        ra = interval_emissions(carrier, a, "guangdong", 2024, LIB)
        rb = interval_emissions(carrier, b, "guangdong", 2024, LIB)
        rab = interval_emissions(carrier, a + b, "guangdong", 2024, LIB)
        for x, y, xy in zip(ra, rb, rab, strict=True):
            assert x.emissions_kgco2 + y.emissions_kgco2 == pytest.approx(
                xy.emissions_kgco2, rel=1e-9, abs=1e-9
            )


# --- period market-based Scope 2 --------------------------------------------------------------


def test_market_based_with_green_power_and_certificates() -> None:
    # 100 000 kWh; 30 000 green power; 20 000 certificates; rest x 0.6096 = 30 480 kgCO2
    factor = LIB.grid_factor("sichuan", 2025, kind="grid_excl_market")
    assert market_based_scope2(100_000.0, 30_000.0, 20_000.0, factor) == pytest.approx(30_480.0)
    assert market_based_scope2(100_000.0, 30_000.0, 20_000.0, 0.6096) == pytest.approx(30_480.0)


def test_without_coverage_market_equals_interval_market_rows() -> None:
    kwh = [120.0, 95.5, 0.0, 310.25]
    rows = [interval_emissions(Carrier.GRID_IMPORT, q, "sichuan", 2025, LIB)[1] for q in kwh]
    factor = LIB.grid_factor("sichuan", 2025, kind="grid_excl_market")
    assert market_based_scope2(sum(kwh), 0.0, 0.0, factor) == pytest.approx(
        sum(r.emissions_kgco2 for r in rows)
    )


def test_fully_covered_is_zero() -> None:
    assert market_based_scope2(5_000.0, 3_000.0, 2_000.0, 0.6096) == 0.0


def test_over_coverage_is_an_error_naming_the_figures() -> None:
    with pytest.raises(
        EmissionError,
        match=r"covered electricity 6000 kWh \(green power 4000 \+ certificates 2000\) exceeds "
        r"grid consumption 5000 kWh",
    ):
        market_based_scope2(5_000.0, 4_000.0, 2_000.0, 0.6096)


def test_market_based_rejects_negative_and_wrong_unit() -> None:
    with pytest.raises(EmissionError, match=r"certificate_kwh must be a finite number >= 0"):
        market_based_scope2(5_000.0, 0.0, -1.0, 0.6096)
    with pytest.raises(EmissionError, match="is in kgCO2/GJ; market-based Scope 2 needs"):
        market_based_scope2(5_000.0, 0.0, 0.0, LIB.heat_factor())


@given(
    grid=st.floats(0.0, 1e8, allow_nan=False),
    green_share=st.floats(0.0, 1.0),
    cert_share=st.floats(0.0, 1.0),
)
def test_market_based_is_between_zero_and_uncovered(
    grid: float, green_share: float, cert_share: float
) -> None:
    green = grid * green_share
    cert = (grid - green) * cert_share
    e = market_based_scope2(grid, green, cert, 0.6096)
    assert 0.0 <= e <= grid * 0.6096 * (1 + 1e-12)
    assert e == pytest.approx(max(grid - green - cert, 0.0) * 0.6096, rel=1e-9, abs=1e-6)
