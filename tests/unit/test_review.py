"""Pure parts of the reviewers' close: canonical form and hashes, the audit chain, states,
checks in words with numbers, restatement differences, the annual disclosure and the
self-evaluation. Expected numbers worked by hand."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from analytics.close import close_inputs
from analytics.review import (
    ReviewConfig,
    TransitionError,
    annual_disclosure,
    compare_figures,
    format_month,
    month_document,
    next_state,
    run_checks,
    self_evaluation,
)
from api.auth import PERMISSIONS, new_token, split_token
from db.review import GENESIS_HASH, MonthInputs, audit_hash, canonical_json, sha256_hex


def test_canonical_json_is_order_free_and_rounded() -> None:
    a = canonical_json({"b": 1.0000001, "a": [date(2026, 10, 1), "碳"]})
    b = canonical_json({"a": [date(2026, 10, 1), "碳"], "b": 1.0})
    assert a == b == '{"a":["2026-10-01","碳"],"b":1.0}'
    assert sha256_hex(a) == hashlib.sha256(a.encode("utf-8")).hexdigest()


def test_audit_hash_chains() -> None:
    e1 = {"seq": 1, "at": datetime(2026, 11, 1, tzinfo=UTC), "actor": "a", "action": "x",
          "site_id": None, "month": None, "details": {}}
    h1 = audit_hash(GENESIS_HASH, e1)
    expected = hashlib.sha256((GENESIS_HASH + "\n" + '{"action":"x","actor":"a",'
                               '"at":"2026-11-01T00:00:00+00:00","details":{},"month":null,'
                               '"seq":1,"site_id":null}').encode()).hexdigest()
    assert h1 == expected
    assert audit_hash(GENESIS_HASH, {**e1, "actor": "b"}) != h1
    assert audit_hash("f" * 64, e1) != h1


def test_states() -> None:
    assert next_state("submit", "draft") == "submitted"
    assert next_state("return", "submitted") == "returned"
    assert next_state("submit", "returned") == "submitted"
    assert next_state("verify", "submitted") == "verified"
    for action, state in (("verify", "draft"), ("submit", "verified"), ("return", "verified"),
                          ("verify", "returned")):
        with pytest.raises(TransitionError, match=f"cannot {action}"):
            next_state(action, state)


def test_roles() -> None:
    assert PERMISSIONS["verify"] == {"reviewer"}
    assert "facility_staff" not in PERMISSIONS["submit"]
    token, key, digest = new_token()
    assert split_token(token) is not None and split_token(token)[0] == key  # type: ignore[index]
    assert digest.startswith("$argon2id$") and token.split("_", 2)[2] not in digest
    assert split_token("Bearer x") is None


def _inputs(gas_rows: int = 96, bills: bool = False) -> MonthInputs:
    """One day (96 intervals) of a two-meter site: grid 10 kWh and gas 1 m3 per interval."""
    energy: list[dict[str, Any]] = []
    emissions: list[dict[str, Any]] = []
    for k in range(96):
        energy.append({"meter_id": "g", "carrier": "grid_import", "quantity": 10.0,
                       "estimated_quantity": 2.0 if k < 10 else 0.0, "energy_tce": 0.001229,
                       "quality": "estimated" if k < 10 else "measured", "revision": 1})
        emissions.append({"meter_id": "g", "method": "location", "scope": "scope2",
                          "emissions_kgco2": 1.564, "factor_id": "grid.avg.sichuan",
                          "factor_version": "2023", "factor_value": 0.1564,
                          "factor_unit": "kgCO2/kWh"})
        emissions.append({"meter_id": "g", "method": "market", "scope": "scope2",
                          "emissions_kgco2": 6.096, "factor_id": "grid.excl_market.national",
                          "factor_version": "2023", "factor_value": 0.6096,
                          "factor_unit": "kgCO2/kWh"})
    for _ in range(gas_rows):
        energy.append({"meter_id": "n", "carrier": "natural_gas", "quantity": 1.0,
                       "estimated_quantity": 0.0, "energy_tce": 0.00133, "quality": "measured",
                       "revision": 1})
        for m in ("location", "market"):
            emissions.append({"meter_id": "n", "method": m, "scope": "scope1",
                              "emissions_kgco2": 2.162, "factor_id": "fuel.natural_gas",
                              "factor_version": "v1", "factor_value": 2.162,
                              "factor_unit": "kgCO2/m3"})
    start = datetime(2026, 9, 30, 16, tzinfo=UTC)
    return MonthInputs(
        site={"site_id": "s", "name": "S", "province": "guangdong", "timezone": "Asia/Shanghai"},
        month=date(2026, 10, 1), start=start, end=start, until=start,
        expected_intervals_per_meter=96, energy=energy, emissions=emissions,
        meters=[{"meter_id": "g", "carrier": "grid_import", "parent_id": None},
                {"meter_id": "n", "carrier": "natural_gas", "parent_id": None}],
        instruments=[], denominators=[{"kind": "population", "value": 100.0,
                                       "unit": "person"}],
        daily=[{"day": date(2026, 10, 1), "carrier": "grid_import", "quantity": 960.0},
               {"day": date(2026, 10, 1), "carrier": "natural_gas",
                "quantity": float(gas_rows)}],
        quarantined=[{"meter_id": "g", "code": "spike", "n": 3}], remainders=[],
        newest_update=None)


def test_figures_carry_units_and_quality() -> None:
    inp = _inputs()
    doc = month_document(inp, close_inputs(inp))
    f = doc["figures"]
    assert f["energy.grid_import"]["value"] == pytest.approx(960.0)
    assert f["energy.grid_import"]["unit"] == "kWh"
    q = f["energy.grid_import"]["quality"]
    # 86 of 96 intervals measured; 20 of 960 kWh estimated; 3 spikes quarantined
    assert q["completeness"] == pytest.approx(86 / 96, abs=1e-6)
    assert q["estimated_share"] == pytest.approx(20 / 960, abs=1e-6)
    assert q["quarantined_readings"] == 3
    assert f["scope1"] == {"value": pytest.approx(96 * 2.162 / 1000), "unit": "tCO2",
                           "quality": {"meters": 1, "completeness": 1.0,
                                       "estimated_share": 0.0, "quarantined_readings": 0,
                                       "factor_versions": ["fuel.natural_gas v1"]}}
    assert f["scope2_location"]["value"] == pytest.approx(96 * 1.564 / 1000)
    assert f["scope2_market"]["value"] == pytest.approx(96 * 6.096 / 1000)
    total = 96 * (1.564 + 2.162) / 1000
    assert f["net_location"]["value"] == pytest.approx(total)  # Guangdong; no sinks
    assert f["intensity.population"] == {
        "value": pytest.approx(total / 100, abs=1e-6), "unit": "tCO2/person",
        "quality": pytest.approx(f["intensity.population"]["quality"])}
    text = format_month(doc)
    for line in text.splitlines()[1:]:
        assert any(u in line for u in ("kWh", "m3", "tCO2", "tce", "%")), line


def test_checks_state_failures_with_numbers() -> None:
    inp = _inputs(gas_rows=80)
    doc = month_document(inp, close_inputs(inp))
    bills = [{"bill_id": 1, "carrier": "grid_import", "quantity": 1.0, "unit": "MWh",
              "current": True}]
    checks = {c["check"]: c for c in run_checks(inp, doc, bills, 2, ReviewConfig())}
    # grid: 86/96 = 89.6 % < 90 %; gas 80/96 = 83.3 %
    assert not checks["completeness"]["passed"]
    assert "g 89.6% (86 of 96 intervals)" in checks["completeness"]["message"]
    assert "n 83.3% (80 of 96 intervals)" in checks["completeness"]["message"]
    assert checks["daily_vs_monthly"]["passed"]
    # billed 1000 kWh vs metered 960 kWh: 4.0 % > 2 %
    assert not checks["bills"]["passed"]
    assert "billed 1000.00 vs metered 960.00 kWh (4.0%)" in checks["bills"]["message"]
    assert not checks["open_alerts"]["passed"]
    assert "2 open data-quality alerts" in checks["open_alerts"]["message"]
    relaxed = ReviewConfig(min_completeness=0.8, bill_tolerance=0.05)
    ok = {c["check"]: c["passed"] for c in run_checks(inp, doc, bills, None, relaxed)}
    assert ok == {"month_ended": True, "completeness": True, "daily_vs_monthly": True,
                  "bills": True, "open_alerts": True}
    running = MonthInputs(**{**inp.__dict__, "until": inp.end - timedelta(days=3)})
    c = {x["check"]: x for x in run_checks(running, doc, [], None, relaxed)}
    assert not c["month_ended"]["passed"]
    assert "runs until 2026-09-30 16:00 UTC" in c["month_ended"]["message"]


def test_daily_sums_disagreeing_fail() -> None:
    inp = _inputs()
    bad = MonthInputs(**{**inp.__dict__, "daily": [
        {"day": date(2026, 10, 1), "carrier": "grid_import", "quantity": 900.0},
        {"day": date(2026, 10, 1), "carrier": "natural_gas", "quantity": 96.0}]})
    doc = month_document(bad, close_inputs(bad))
    c = {x["check"]: x for x in run_checks(bad, doc, [], None, ReviewConfig())}
    assert not c["daily_vs_monthly"]["passed"]
    assert "grid_import days 900.00 vs month 960.00 kWh (6.2%)" in c["daily_vs_monthly"][
        "message"]


def test_compare_and_disclosure() -> None:
    old = {"figures": {"scope1": {"value": 1.0, "unit": "tCO2"},
                       "energy.grid_import": {"value": 10.0, "unit": "kWh"}}}
    new = {"figures": {"scope1": {"value": 1.5, "unit": "tCO2"},
                       "energy.grid_import": {"value": 10.0, "unit": "kWh"}}}
    assert compare_figures(old, new) == [{"figure": "scope1", "unit": "tCO2", "old": 1.0,
                                          "new": 1.5, "change": 0.5}]

    def month(m: int, t: float, pop: float) -> dict[str, Any]:
        return {"month": date(2025, m, 1), "version": 1, "sha256": "x", "doc": {"close": {
            "figures": {"total_location": {"value": t, "unit": "tCO2"},
                        "energy.grid_import": {"value": 100.0, "unit": "kWh"},
                        "renewable_share": {"value": 5.0, "unit": "%"}},
            "denominators": [{"kind": "population", "value": pop, "unit": "person"}]}}}

    site = {"site_id": "s", "name": "S"}
    base = annual_disclosure(site, 2025, [month(1, 10.0, 100.0), month(2, 20.0, 300.0)])
    assert base["totals"]["total_location"]["value"] == pytest.approx(30.0)
    assert "renewable_share" not in base["totals"]  # a share does not add up
    assert base["missing_months"][0] == "2025-03" and len(base["missing_months"]) == 10
    # population is a stock: averaged (200 persons) -> 30 / 200
    assert base["intensities"]["intensity.population"]["value"] == pytest.approx(0.15)
    cur = {**base, "year": 2026, "totals": {"total_location": {"value": 24.0, "unit": "tCO2",
                                                               "months": 2}},
           "intensities": {}}
    ev = self_evaluation(site, base, cur)
    assert ev["indicators"] == [{"indicator": "total_location", "unit": "tCO2",
                                 "baseline": 30.0, "current": 24.0, "change": -0.2}]
