"""The agents' plain functions, chained in pipeline order without Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbon.counters import IntervalEnergy, MeterState
from carbon.factors import FactorLibrary
from core.records import IntervalRow, ReadingRecord
from core.registry_yaml import load_registry
from stream.logic import StreamContext, accounting_year, apply_reading, interval_row

REG = load_registry(Path(__file__).resolve().parents[1] / "data" / "registry.yaml")
CTX = StreamContext(registry=REG, factors=FactorLibrary(), interval_s=900, lateness_s=3600)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z (08:00 in Chengdu)
MIN = 60_000


def reading(meter: str, ts: int, value: float, unit: str = "kWh") -> ReadingRecord:
    return ReadingRecord(meter_id=meter, site_id="test-site", ts_ms=ts, kind="register",
                         value=value, unit=unit, period_s=None, received_ms=ts,
                         mqtt_topic="nzc/v1/test-site/gw1/readings")


def run(readings: list[ReadingRecord]) -> tuple[dict[tuple[str, int], dict], list[dict]]:
    """Apply readings in order; the newest total of each interval, as a plain dict."""
    import msgspec

    states: dict[str, MeterState] = {}
    last: dict[tuple[str, int], IntervalEnergy] = {}
    dead: list[dict] = []
    for r in readings:
        changed, rejected = apply_reading(CTX, states.setdefault(r.meter_id, MeterState()), r)
        dead += [d.to_dict() for d in rejected]
        for iv in changed:
            last[(iv.meter_id, iv.interval_start_ms)] = iv
    out = {k: msgspec.to_builtins(interval_row(CTX, iv)) for k, iv in last.items()}
    return out, dead


def test_boundary_apportioning_and_factors() -> None:
    out, dead = run([reading("e2e-el", T0 + 10 * MIN, 100.0),
                     reading("e2e-el", T0 + 25 * MIN, 160.0)])
    assert dead == []
    first = out[("e2e-el", T0)]
    second = out[("e2e-el", T0 + 15 * MIN)]
    # 60 kWh over 15 min: 5 min (20 kWh) before the 00:15 boundary, 10 min (40 kWh) after
    assert first["quantity"] == pytest.approx(20.0) and second["quantity"] == pytest.approx(40.0)
    assert first["quality"] == "partial" and first["covered_s"] == pytest.approx(300.0)
    loc = {e["method"]: e for e in second["emissions"]}
    # Sichuan 2023 average (MEE 2025 No. 47) for accounting year 2026; market: national
    # excluding market-traded non-fossil 2023
    assert loc["location"]["emissions_kgco2"] == pytest.approx(40.0 * 0.1564)
    assert loc["location"]["factor_id"] == "grid.avg.sichuan"
    assert loc["market"]["emissions_kgco2"] == pytest.approx(40.0 * 0.6096)
    assert second["energy_tce"] == pytest.approx(40.0 * 0.1229 / 1000)  # GB/T 2589-2020


def test_gas_is_scope1_and_unknown_meter_is_dead_lettered() -> None:
    out, dead = run([reading("e2e-gas", T0, 10.0, "m3"), reading("e2e-gas", T0 + 15 * MIN, 110.0),
                     reading("ghost", T0, 1.0)])
    rows = out[("e2e-gas", T0)]["emissions"]
    assert {r["scope"] for r in rows} == {"scope1"}
    assert rows[0]["emissions_kgco2"] == pytest.approx(
        100.0 * 389.31 / 10_000 * 15.3 / 1000 * 0.99 * 44 / 12 * 1000)
    assert [d["code"] for d in dead] == ["unknown_meter"]


def test_too_late_reading_is_kept_with_reason() -> None:
    readings = [reading("e2e-el", T0 + k * 15 * MIN, 10.0 * k) for k in range(12)]
    _, dead = run([*readings, reading("e2e-el", T0 + 2 * MIN, 0.2)])
    assert [d["code"] for d in dead] == ["too_late"]
    assert "lateness bound" in dead[0]["reason"] and dead[0]["stage"] == "stream"


def test_accounting_year_is_local() -> None:
    # 2025-12-31T17:00Z is 2026-01-01 01:00 in Chengdu
    assert accounting_year(T0 - 7 * 3600_000, "Asia/Shanghai") == 2026
    assert accounting_year(T0 - 9 * 3600_000, "Asia/Shanghai") == 2025


def test_data_older_than_every_factor_uses_the_oldest_and_says_so() -> None:
    t2007 = 1_167_609_600_000  # 2007-01-01T00:00:00Z
    out, dead = run([reading("e2e-el", t2007, 0.0), reading("e2e-el", t2007 + 15 * MIN, 10.0)])
    rows = {e["method"]: e for e in out[("e2e-el", t2007)]["emissions"]}
    assert dead == []
    assert rows["location"]["factor_version"] == "mee-2024-12"  # data year 2021
    assert rows["location"]["emissions_kgco2"] == pytest.approx(10.0 * 0.1255)


def test_water_has_no_tce_and_no_emissions() -> None:
    from carbon.registry import parse_registry

    reg = parse_registry({"sites": [{"id": "w", "name": "w", "type": "campus",
                                     "province": "sichuan", "city": "Chengdu",
                                     "baseline_year": 2022, "meters": [
        {"id": "w1", "carrier": "water", "unit": "m3", "gateway": "g",
         "register_max": 1e6, "max_rate_per_h": 100}]}]})
    ctx = StreamContext(registry=reg, factors=FactorLibrary())
    rec = interval_row(ctx, IntervalEnergy("w1", T0, 900, 3.0, 900.0, "measured"))
    assert isinstance(rec, IntervalRow)
    assert rec.energy_tce is None and rec.emissions == ()


def test_processing_error_keeps_the_record_and_the_reason() -> None:
    from stream.logic import processing_error

    d = processing_error({"meter_id": "m", "interval_start_ms": T0}, "emission_rows",
                         ValueError("no factor"))
    assert d.code == "processing_error" and "emission_rows: ValueError: no factor" in d.reason
    assert d.ts_ms == T0 and d.meter_id == "m" and d.stage == "stream"
