"""Monthly close: a campus month with grid, PV, gas, green power and a green certificate,
worked by hand (DOMAIN.md section 4)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from analytics.monthly import close_month

MARCH = date(2026, 3, 1)
SICHUAN_2023 = 0.1564  # kgCO2/kWh, MEE 2025 No. 47
EXCL_MARKET_2023 = 0.6096  # kgCO2/kWh, national excluding market-traded non-fossil
GAS = 389.31 / 10_000 * 15.3 / 1000 * 0.99 * 44 / 12 * 1000  # kgCO2/m3 = 2.1622


def frames() -> tuple[pl.DataFrame, ...]:
    meters = pl.DataFrame({
        "meter_id": ["main", "sub", "pv", "export", "gas"],
        "carrier": ["grid_import", "grid_import", "onsite_renewable", "grid_export",
                    "natural_gas"],
        "parent_id": [None, "main", None, None, None],
    })
    per = {"main": [1000.0, 2000.0, 3000.0, 4000.0], "sub": [500.0] * 4,
           "pv": [300.0] * 4, "export": [50.0] * 4, "gas": [250.0] * 4}
    carrier = dict(zip(meters["meter_id"], meters["carrier"], strict=True))
    tce_per = {"grid_import": 0.1229e-3, "onsite_renewable": 0.1229e-3,
               "grid_export": 0.1229e-3, "natural_gas": 1.33e-3}
    rows = []
    for m, values in per.items():
        for k, q in enumerate(values):
            rows.append({"meter_id": m, "carrier": carrier[m], "quantity": q,
                         "estimated_quantity": 100.0 if (m == "main" and k == 3) else 0.0,
                         "energy_tce": q * tce_per[carrier[m]],
                         "quality": "estimated" if (m == "main" and k == 3) else "measured",
                         "revision": 2 if (m == "gas" and k == 0) else 1})
    energy = pl.DataFrame(rows)
    em = []
    for r in rows:
        if r["carrier"] == "grid_import":
            em += [{"meter_id": r["meter_id"], "method": "location", "scope": "scope2",
                    "emissions_kgco2": r["quantity"] * SICHUAN_2023,
                    "factor_id": "grid.avg.sichuan", "factor_version": "mee-2025-47",
                    "factor_value": SICHUAN_2023, "factor_unit": "kgCO2/kWh"},
                   {"meter_id": r["meter_id"], "method": "market", "scope": "scope2",
                    "emissions_kgco2": r["quantity"] * EXCL_MARKET_2023,
                    "factor_id": "grid.excl_market.national", "factor_version": "mee-2025-47",
                    "factor_value": EXCL_MARKET_2023, "factor_unit": "kgCO2/kWh"}]
        if r["carrier"] == "natural_gas":
            em += [{"meter_id": "gas", "method": m, "scope": "scope1",
                    "emissions_kgco2": r["quantity"] * GAS, "factor_id": "fuel.natural_gas",
                    "factor_version": "gbt32150-2015", "factor_value": GAS,
                    "factor_unit": "kgCO2/m3"} for m in ("location", "market")]
    instruments = pl.DataFrame({
        "kind": ["green_certificate", "green_power", "carbon_sink", "ccer", "green_certificate"],
        "quantity": [3.0, 12.0, 2.0, 1.5, 99.0],
        "period_start": [MARCH, date(2026, 1, 1), MARCH, MARCH, MARCH],
        "period_end": [MARCH, MARCH, MARCH, MARCH, MARCH],
        "retired": [True, True, True, True, False],  # the unretired certificate never counts
    })
    denominators = pl.DataFrame({"kind": ["population"], "value": [4000.0],
                                 "unit": ["person"]})
    return energy, pl.DataFrame(em), meters, instruments, denominators


def test_campus_month_location_vs_market() -> None:
    energy, em, meters, instruments, dens = frames()
    c = close_month("campus", MARCH, energy, em, meters, instruments, dens,
                    expected_intervals_per_meter=4)
    grid = 10_000.0  # main only: the sub-meter is inside it
    assert c.grid_kwh == pytest.approx(grid)
    assert c.scope2_location_kgco2 == pytest.approx(grid * 0.1564)  # 1564 kg
    # green power 12 MWh over Jan-Mar = 4 MWh in March; certificate 3 MWh retired
    assert c.green_power_kwh == pytest.approx(4000.0) and c.certificate_kwh == 3000.0
    assert c.scope2_market_kgco2 == pytest.approx((grid - 4000 - 3000) * 0.6096)  # 1828.8 kg
    assert c.scope1_kgco2 == pytest.approx(1000 * 2.16217, rel=1e-4)  # 2162.2 kg
    # PV 1200 kWh generated, 200 exported: 1000 used on site out of 11000 consumed
    assert c.renewable_share == pytest.approx(1000 / 11_000)
    # tce: gas 1000 m3 x 1.33 kgce/m3 + electricity used 11000 kWh x 0.1229 kgce/kWh
    assert c.energy_tce == pytest.approx(1.33 + 1.3519)
    total_loc_t = (1000 * GAS + grid * 0.1564) / 1000
    assert c.location_tco2_per_tce == pytest.approx(total_loc_t / 2.6819)
    assert c.sinks_tco2 == 2.0 and c.reductions_tco2 == 1.5
    assert c.net_location_tco2 == pytest.approx(total_loc_t - 3.5)
    assert c.net_market_tco2 == pytest.approx((1000 * GAS + 1828.8) / 1000 - 3.5)
    assert c.intensities["tco2_location_per_population"] == pytest.approx(total_loc_t / 4000)
    main = {r["carrier"]: r for r in c.carriers}["grid_import"]
    assert main["estimated_share"] == pytest.approx(100 / grid)
    assert c.corrections == 1
    assert {(f["factor_id"], f["method"]) for f in c.factors} >= {
        ("grid.avg.sichuan", "location"), ("grid.excl_market.national", "market")}


def test_completeness_needs_ninety_percent_of_every_meter() -> None:
    energy, em, meters, instruments, dens = frames()
    c = close_month("campus", MARCH, energy, em, meters, instruments, dens,
                    expected_intervals_per_meter=4)
    # main has 3 of 4 intervals fully measured (one estimated): 75 % < 90 %
    assert not c.complete and c.completeness == pytest.approx(0.75)
    c2 = close_month("campus", MARCH, energy.with_columns(pl.lit("measured").alias("quality")),
                     em, meters, instruments, dens, expected_intervals_per_meter=4)
    assert c2.complete and c2.completeness == 1.0
    c3 = close_month("campus", MARCH, energy.with_columns(pl.lit("measured").alias("quality")),
                     em, meters, instruments, dens, expected_intervals_per_meter=5)
    assert not c3.complete  # 4 of 5 expected intervals = 80 %


def test_certificates_above_consumption_are_unused_not_negative() -> None:
    energy, em, meters, instruments, dens = frames()
    big = instruments.with_columns(pl.lit(True).alias("retired"))  # now 99 MWh counts too
    c = close_month("campus", MARCH, energy, em, meters, big, dens,
                    expected_intervals_per_meter=4)
    assert c.scope2_market_kgco2 == 0.0
    assert c.unused_covered_kwh == pytest.approx(4000 + 3000 + 99_000 - 10_000)
