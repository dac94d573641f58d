"""Emission factors: hand-computed fuel factors, the default tables, selection rules, records."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from carbon.factors import (
    FUEL_PARAMETERS,
    HISTORICAL_NATIONAL_ID,
    EmissionFactor,
    FactorError,
    FactorLibrary,
    FuelParameters,
    default_factors,
    factor_from_record,
    fuel_factor_kgco2_per_unit,
)
from carbon.units import Carrier

LIB = FactorLibrary()


# --- fuel factors, worked by hand from GB/T 32150-2015 Appendix B ------------------------------


def test_natural_gas_factor_by_hand() -> None:
    # 389.31 GJ/10^4 Nm3 -> GJ per m3; 15.3 tC/TJ -> tC per GJ -> kgC per GJ x 1000
    gj_per_m3 = 389.31 / 10_000
    kgc_per_gj = 15.3 / 1000 * 1000
    expected = gj_per_m3 * kgc_per_gj * 0.99 * 44 / 12
    assert expected == pytest.approx(2.1622, abs=5e-5)
    assert fuel_factor_kgco2_per_unit(FUEL_PARAMETERS[Carrier.NATURAL_GAS]) == pytest.approx(
        expected, rel=1e-12
    )
    assert LIB.fuel_factor(Carrier.NATURAL_GAS).value == pytest.approx(expected, rel=1e-12)


def test_10000_nm3_gas_is_21_62_tco2() -> None:
    # 10^4 Nm3 burn 389.31 GJ; x 15.3 tC/TJ = 15.3/1000 tC/GJ; x 99 %; x 44/12
    tco2 = 389.31 * 15.3 / 1000 * 0.99 * 44 / 12
    assert tco2 == pytest.approx(21.62, abs=0.005)
    factor = LIB.fuel_factor(Carrier.NATURAL_GAS)
    assert 10_000 * factor.value / 1000 == pytest.approx(tco2, rel=1e-12)
    assert factor.unit == "kgCO2/m3"


@pytest.mark.parametrize(
    ("carrier", "lhv_gj_per_t", "tc_per_tj", "oxidation", "domain_tco2_per_t"),
    [
        (Carrier.GASOLINE, 43.070, 18.9, 0.98, 2.925),
        (Carrier.DIESEL, 42.652, 20.2, 0.98, 3.096),
        (Carrier.LPG, 50.179, 17.2, 0.98, 3.101),
    ],
)
def test_liquid_fuel_factors_by_hand(
    carrier: Carrier,
    lhv_gj_per_t: float,
    tc_per_tj: float,
    oxidation: float,
    domain_tco2_per_t: float,
) -> None:
    # per tonne: GJ/t x tC/TJ / 1000 = tC/t; x oxidation x 44/12 = tCO2/t = kgCO2/kg
    expected = lhv_gj_per_t * tc_per_tj / 1000 * oxidation * 44 / 12
    assert expected == pytest.approx(domain_tco2_per_t, abs=5e-4)  # the DOMAIN.md table
    factor = LIB.fuel_factor(carrier)
    assert factor.value == pytest.approx(expected, rel=1e-12)
    assert factor.unit == "kgCO2/kg"
    assert factor.fuel_parameters == FUEL_PARAMETERS[carrier]
    assert "GB/T 32150-2015" in factor.source


def test_heat_default_is_0_11_tco2_per_gj_and_flagged() -> None:
    heat = LIB.heat_factor()
    assert heat.value == pytest.approx(110.0)  # 0.11 tCO2/GJ = 110 kgCO2/GJ
    assert heat.unit == "kgCO2/GJ"
    assert heat.check


@given(
    lhv=st.floats(1.0, 1000.0),
    cc=st.floats(1.0, 40.0),
    ox=st.floats(0.5, 1.0),
    k=st.floats(0.1, 10.0),
)
def test_fuel_factor_is_proportional_to_each_parameter(
    lhv: float, cc: float, ox: float, k: float
) -> None:
    p = FuelParameters(lhv, "GJ/t", cc, ox, "test")
    scaled = dataclasses.replace(p, lhv=lhv * k)
    assert fuel_factor_kgco2_per_unit(scaled) == pytest.approx(
        k * fuel_factor_kgco2_per_unit(p), rel=1e-9
    )
    assert fuel_factor_kgco2_per_unit(p) == pytest.approx(lhv / 1000 * cc * ox * 44 / 12)


def test_fuel_parameters_validate() -> None:
    with pytest.raises(FactorError, match="oxidation_fraction must be in"):
        FuelParameters(389.31, "GJ/10^4Nm3", 15.3, 99, "x")  # percent instead of fraction
    with pytest.raises(FactorError, match="lhv_unit 'MJ/m3' is unknown; accepted: GJ/10"):
        FuelParameters(38.931, "MJ/m3", 15.3, 0.99, "x")


# --- default grid table (DOMAIN.md section 3) --------------------------------------------------

GRID_DOMAIN = [
    # (factor id, data year, value, check)
    ("grid.avg.national", 2021, 0.5568, False),
    ("grid.avg.national", 2022, 0.5366, False),
    ("grid.avg.national", 2023, 0.5306, False),
    ("grid.excl_market.national", 2021, 0.5942, False),
    ("grid.excl_market.national", 2022, 0.5856, False),
    ("grid.excl_market.national", 2023, 0.6096, False),
    ("grid.fossil.national", 2021, 0.8426, False),
    ("grid.fossil.national", 2022, 0.8325, False),
    ("grid.fossil.national", 2023, 0.8273, False),
    ("grid.avg.sichuan", 2021, 0.1255, True),
    ("grid.avg.sichuan", 2022, 0.1404, False),
    ("grid.avg.sichuan", 2023, 0.1564, False),
    ("grid.avg.guangxi", 2021, 0.5154, True),
    ("grid.avg.guangxi", 2022, 0.4044, False),
    ("grid.avg.guangxi", 2023, 0.4476, True),
    ("grid.avg.guangdong", 2021, 0.4715, True),
    ("grid.avg.guangdong", 2022, 0.4403, False),
    ("grid.avg.guangdong", 2023, 0.4419, False),
]
NOTICE = {2021: "2024 No. 12", 2022: "2024 No. 33", 2023: "2025 No. 47"}


@pytest.mark.parametrize(("factor_id", "year", "value", "check"), GRID_DOMAIN)
def test_grid_defaults_match_domain_table(
    factor_id: str, year: int, value: float, check: bool
) -> None:
    [f] = [f for f in LIB.versions(factor_id) if f.data_year == year]
    assert f.value == value
    assert f.unit == "kgCO2/kWh"
    assert f.check is check
    assert NOTICE[year] in f.source


def test_historical_0_5703_is_kept_but_never_chosen_by_the_rule() -> None:
    old = LIB.get(HISTORICAL_NATIONAL_ID, "mee-2023")
    assert old.value == 0.5703
    assert old.check
    for year in range(2021, 2030):
        assert LIB.grid_factor("national", year).factor_id == "grid.avg.national"


def test_every_default_is_valid_and_unique() -> None:
    keys = [(f.factor_id, f.version) for f in default_factors()]
    assert len(keys) == len(set(keys))
    assert all(f.source for f in default_factors())


# --- selection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accounting_year", "data_year", "value"),
    [(2021, 2021, 0.1255), (2022, 2022, 0.1404), (2023, 2023, 0.1564), (2025, 2023, 0.1564)],
)
def test_newest_data_year_not_after_accounting_year(
    accounting_year: int, data_year: int, value: float
) -> None:
    f = LIB.grid_factor("sichuan", accounting_year)
    assert (f.factor_id, f.data_year, f.value) == ("grid.avg.sichuan", data_year, value)


def test_accounting_year_before_oldest_data_year_is_an_error_naming_the_way_out() -> None:
    with pytest.raises(FactorError) as exc:
        LIB.grid_factor("sichuan", 2020)
    msg = str(exc.value)
    assert "region 'sichuan', accounting year 2020" in msg
    assert "oldest published data year 2021" in msg
    assert "pass data_year explicitly" in msg
    assert "mee-2024-12 (data year 2021)" in msg  # lists what is available
    # the documented way out: choose the data year on purpose
    assert LIB.grid_factor("sichuan", 2020, data_year=2021).value == 0.1255


def test_explicit_data_year_is_a_restatement() -> None:
    assert LIB.grid_factor("guangdong", 2025, data_year=2022).value == 0.4403
    with pytest.raises(FactorError, match="no factor for data year 2024; available: mee-2024-12"):
        LIB.grid_factor("guangdong", 2025, data_year=2024)


@given(st.integers(2021, 2100))
def test_selected_data_year_is_never_after_the_accounting_year(year: int) -> None:
    for region in ("national", "sichuan", "guangxi", "guangdong", "hubei"):
        f = LIB.grid_factor(region, year)
        assert f.data_year is not None
        assert f.data_year <= year
        assert f.data_year == min(year, 2023)


def test_province_without_factor_falls_back_to_national_and_says_so() -> None:
    f = LIB.grid_factor("hubei", 2025)
    assert (f.factor_id, f.region, f.value) == ("grid.avg.national", "national", 0.5306)


def test_excl_market_exists_only_nationally() -> None:
    f = LIB.grid_factor("sichuan", 2025, kind="grid_excl_market")
    assert (f.factor_id, f.value) == ("grid.excl_market.national", 0.6096)
    assert LIB.grid_factor("guangxi", 2022, kind="grid_fossil").value == 0.8325


def test_region_names_are_normalised_and_typos_rejected() -> None:
    assert LIB.grid_factor(" Sichuan ", 2025).factor_id == "grid.avg.sichuan"
    assert LIB.grid_factor("Inner Mongolia", 2025).factor_id == "grid.avg.national"
    with pytest.raises(FactorError, match="region 'sichaun' is not a known province; accepted"):
        LIB.grid_factor("sichaun", 2025)
    with pytest.raises(FactorError, match="kind 'grid_avg' is unknown; accepted: grid_average"):
        LIB.grid_factor("sichuan", 2025, kind="grid_avg")


def _factor(**changes: object) -> EmissionFactor:
    base = LIB.get("grid.avg.sichuan", "mee-2025-47")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_user_factor_with_same_id_and_version_replaces_the_default() -> None:
    lib = FactorLibrary([_factor(value=0.15, source="deployment correction")])
    f = lib.grid_factor("sichuan", 2025)
    assert (f.version, f.value) == ("mee-2025-47", 0.15)
    assert lib.is_user_supplied(f)
    assert len(lib.versions("grid.avg.sichuan")) == 3


def test_user_restatement_of_the_same_data_year_beats_the_default() -> None:
    lib = FactorLibrary([_factor(version="2023-restated", value=0.1600, source="restatement")])
    f = lib.grid_factor("sichuan", 2025)
    assert (f.version, f.value) == ("2023-restated", 0.16)
    assert lib.get("grid.avg.sichuan", "mee-2025-47").value == 0.1564  # default still there


def test_newer_user_data_year_is_used_from_its_year_on() -> None:
    lib = FactorLibrary([_factor(version="mee-2026-x", value=0.1700, data_year=2024, source="s")])
    assert lib.grid_factor("sichuan", 2025).value == 0.17
    assert lib.grid_factor("sichuan", 2023).value == 0.1564


def test_old_user_factor_fills_a_gap_but_does_not_displace_newer_defaults() -> None:
    lib = FactorLibrary([_factor(version="baseline-2020", value=0.11, data_year=2020, source="s")])
    assert lib.grid_factor("sichuan", 2020).value == 0.11
    assert lib.grid_factor("sichuan", 2025).value == 0.1564


def test_effective_window_limits_a_factor_to_accounting_years() -> None:
    lib = FactorLibrary(
        [_factor(version="contract", value=0.05, effective_from=date(2026, 1, 1), source="s")]
    )
    assert lib.grid_factor("sichuan", 2025).value == 0.1564
    assert lib.grid_factor("sichuan", 2026).value == 0.05


def test_user_provincial_factor_for_a_province_without_default() -> None:
    lib = FactorLibrary(
        [_factor(factor_id="grid.avg.hubei", region="hubei", version="v1", value=0.4, source="s")]
    )
    assert lib.grid_factor("hubei", 2025).factor_id == "grid.avg.hubei"


def test_duplicate_user_factor_is_an_error() -> None:
    with pytest.raises(FactorError, match=r"supplied twice \(also factors\[0\]\)"):
        FactorLibrary([_factor(version="a"), _factor(version="a")])


def test_override_by_id_and_version() -> None:
    f = LIB.grid_factor(
        "sichuan", 2025, override={"factor_id": HISTORICAL_NATIONAL_ID, "version": "mee-2023"}
    )
    assert f.value == 0.5703


def test_override_by_data_year_keeps_province_fallback() -> None:
    assert LIB.grid_factor("sichuan", 2025, override={"data_year": 2022}).value == 0.1404
    assert LIB.grid_factor("hubei", 2025, override={"data_year": 2022}).value == 0.5366


def test_override_with_inline_record() -> None:
    record = {
        "factor_id": "grid.avg.sichuan",
        "version": "site-contract",
        "value": 0.2,
        "unit": "tCO2/MWh",
        "kind": "grid_average",
        "region": "sichuan",
        "source": "site agreement",
    }
    f = LIB.grid_factor("sichuan", 2025, override=record)
    assert (f.version, f.value, f.unit) == ("site-contract", 0.2, "kgCO2/kWh")
    with pytest.raises(FactorError, match="is of kind 'grid_average', requested 'grid_fossil'"):
        LIB.grid_factor("sichuan", 2025, kind="grid_fossil", override=record)


def test_override_rejects_unknown_keys() -> None:
    with pytest.raises(FactorError, match="unknown key\\(s\\) 'year'; accepted: data_year"):
        LIB.grid_factor("sichuan", 2025, override={"year": 2022})


def test_get_names_available_versions() -> None:
    assert LIB.get("grid.avg.guangxi", "mee-2024-33").value == 0.4044
    with pytest.raises(FactorError, match="versions: mee-2024-12, mee-2024-33, mee-2025-47"):
        LIB.get("grid.avg.guangxi", "2022")
    with pytest.raises(FactorError, match=r"no factor 'grid.avg.mars'; known ids"):
        LIB.get("grid.avg.mars", "1")


def test_fuel_factor_rejects_non_fuel() -> None:
    with pytest.raises(FactorError, match="'grid_import' is not a fuel; fuels: diesel"):
        LIB.fuel_factor(Carrier.GRID_IMPORT)


def test_flagged_lists_the_defaults_to_check() -> None:
    flagged = {(f.factor_id, f.data_year) for f in LIB.flagged()}
    assert flagged == {
        ("grid.avg.sichuan", 2021),
        ("grid.avg.guangxi", 2021),
        ("grid.avg.guangxi", 2023),
        ("grid.avg.guangdong", 2021),
        (HISTORICAL_NATIONAL_ID, None),
        ("heat.purchased", None),
    }


# --- factor validation and records -------------------------------------------------------------


def test_factor_validation_names_the_problem() -> None:
    with pytest.raises(FactorError, match=r"value must be a finite number >= 0, got -0.1"):
        _factor(value=-0.1)
    with pytest.raises(FactorError, match="unit 'kgCO2/kg' does not fit kind 'grid_average'"):
        _factor(unit="kgCO2/kg")
    with pytest.raises(FactorError, match="id says kind 'grid_average' region 'sichuan'"):
        _factor(region="guangxi")
    with pytest.raises(FactorError, match="effective_from 2025-01-01 is after effective_to"):
        _factor(effective_from=date(2025, 1, 1), effective_to=date(2024, 1, 1))


def test_fuel_value_must_agree_with_its_parameters() -> None:
    gas = LIB.fuel_factor(Carrier.NATURAL_GAS)
    assert dataclasses.replace(gas, value=2.162).value == 2.162  # published rounding is fine
    with pytest.raises(FactorError, match=r"disagrees with 2.1622 derived"):
        dataclasses.replace(gas, value=2.262)


FACTORS_YAML = """
- factor_id: grid.avg.sichuan
  version: 2024
  value: 0.1321
  unit: tCO2/MWh
  kind: grid_average
  region: Sichuan
  data_year: 2024
  effective_from: 2026-01-01
  source: MEE/NBS announcement (2024 data)
- factor_id: heat.purchased
  version: supplier-2025
  value: 0.095
  unit: tCO2/GJ
  kind: heat
  source: heat supplier statement 2025
- factor_id: fuel.natural_gas
  version: measured-2025
  kind: fuel
  data_year: 2025
  source: supplier gas quality report
  fuel_parameters:
    lhv: 360.0
    lhv_unit: GJ/10^4Nm3
    carbon_content_tc_per_tj: 15.3
    oxidation_fraction: 0.99
    source: supplier gas quality report
"""


def test_from_records_parses_yaml_converts_units_and_derives_fuel_values() -> None:
    lib = FactorLibrary.from_records(yaml.safe_load(FACTORS_YAML))
    sc = lib.grid_factor("sichuan", 2026)
    assert (sc.version, sc.value, sc.unit, sc.region) == ("2024", 0.1321, "kgCO2/kWh", "sichuan")
    assert sc.effective_from == date(2026, 1, 1)
    assert lib.grid_factor("sichuan", 2025).version == "mee-2025-47"
    heat = lib.heat_factor()
    assert heat.value == pytest.approx(95.0)
    assert heat.unit == "kgCO2/GJ"
    gas = lib.fuel_factor(Carrier.NATURAL_GAS, 2025)
    assert gas.value == pytest.approx(360.0 / 10_000 * 15.3 * 0.99 * 44 / 12)
    assert lib.fuel_factor(Carrier.NATURAL_GAS, 2024).version == "gbt32150-2015"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"version": "1"}, r"factors\[1\]: field 'factor_id' is required"),
        (
            {"factor_id": "heat.purchased", "version": "1", "value": "x"},
            r"factors\[1\] \('heat.purchased'\): field 'value' must be number, got 'x'",
        ),
        (
            {"factor_id": "heat.purchased", "version": "1", "value": 1, "unit": "kg/GJ"},
            r"field 'unit' is 'kg/GJ'; accepted: kgCO2/kWh",
        ),
        (
            {"factor_id": "heat.purchased", "valeu": 1},
            r"factors\[1\]: unknown field\(s\) 'valeu'; accepted: check",
        ),
        (
            {
                "factor_id": "heat.purchased",
                "version": "1",
                "value": 100,
                "unit": "kgCO2/GJ",
                "kind": "heat",
                "source": "s",
                "effective_to": "31/12/2025",
            },
            r"field 'effective_to' must be a date YYYY-MM-DD, got '31/12/2025'",
        ),
        (
            {
                "factor_id": "heat.purchased",
                "version": "1",
                "value": 100,
                "unit": "kgCO2/GJ",
                "kind": "heat",
            },
            r"factors\[1\] \('heat.purchased'\): field 'source' is required",
        ),
        (
            {
                "factor_id": "grid.avg.sichuan",
                "version": "1",
                "value": 0.1,
                "unit": "kgCO2/kWh",
                "kind": "grid_average",
                "source": "s",
            },
            r"factors\[1\] \('grid.avg.sichuan'\): .*region 'national'",
        ),
    ],
)
def test_from_records_errors_name_index_and_field(record: dict[str, object], message: str) -> None:
    good = {
        "factor_id": "grid.avg.national",
        "version": "x",
        "value": 0.5,
        "unit": "kgCO2/kWh",
        "kind": "grid_average",
        "source": "s",
    }
    with pytest.raises(FactorError, match=message):
        FactorLibrary.from_records([good, record])


def test_from_records_duplicate_is_named() -> None:
    rec = factor_from_record(yaml.safe_load(FACTORS_YAML)[1])
    assert rec.version == "supplier-2025"
    with pytest.raises(FactorError, match=r"factors: factors\[1\]: .* supplied twice"):
        FactorLibrary.from_records([yaml.safe_load(FACTORS_YAML)[1]] * 2)


def test_from_records_without_defaults() -> None:
    lib = FactorLibrary.from_records(yaml.safe_load(FACTORS_YAML), include_defaults=False)
    with pytest.raises(FactorError, match=r"no factor 'grid.avg.national'"):
        lib.grid_factor("hubei", 2025)
