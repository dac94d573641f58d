"""Accounting on the running pipeline: estimates flagged, sub-meter reconciliation, the monthly
close with certificates and offsets, and a recompute with its audit record. Expected values
are worked by hand from DOMAIN.md's factors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import psycopg
import pytest

from analytics.close import load_and_close
from analytics.recompute import recompute
from carbon.factors import FactorLibrary

from .conftest import Pipeline, publish_payloads, query, wait_for

pytestmark = pytest.mark.services
T0 = int(datetime(2026, 1, 15, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000
GAS = 389.31 / 10_000 * 15.3 / 1000 * 0.99 * 44 / 12 * 1000  # kgCO2/m3


def _messages() -> list[tuple[str, bytes]]:
    series: dict[str, list[tuple[int, float]]] = {
        "acc-grid": [(k, 100 + 30.0 * k) for k in range(13)],
        "acc-sub1": [(k, 10.0 * k) for k in range(13)],
        "acc-sub2": [(k, 12.0 * k) for k in range(13)],
        "acc-pv": [(k, 5.0 * k) for k in (0, 1, 2, 9, 10, 11, 12)],  # 10 -> 45 min: a gap
        "acc-export": [(k, 1.0 * k) for k in range(13)],
        "acc-gas": [(k, 2.0 * k) for k in range(13)],
    }
    msgs = []
    for k in range(13):
        batch = [{"meter": m, "ts": T0 + k * 5 * MIN, "register": v,
                  "unit": "m3" if m == "acc-gas" else "kWh"}
                 for m, s in series.items() for kk, v in s if kk == k]
        msgs.append(("nzc/v1/acc-campus/gw1/readings", json.dumps({"readings": batch}).encode()))
    return msgs


@pytest.fixture(scope="module")
def landed(pipeline: Pipeline) -> Pipeline:
    publish_payloads(pipeline.settings, _messages())
    wait_for(lambda: query(pipeline.settings, "SELECT count(*) FROM emission_intervals WHERE"
                           " site_id = 'acc-campus' AND method = 'location'")[0][0] >= 16
             and query(pipeline.settings, "SELECT count(*) FROM energy_intervals WHERE"
                       " site_id = 'acc-campus'")[0][0] >= 24,
             120, "the accounting test's intervals")
    return pipeline


def test_gap_is_estimated_and_flagged(landed: Pipeline) -> None:
    rows = query(landed.settings, "SELECT (extract(epoch FROM interval_start) * 1000)::bigint,"
                 " quantity, estimated_quantity, quality FROM energy_intervals"
                 " WHERE meter_id = 'acc-pv' ORDER BY 1")
    got = {int(t) - T0: (q, e, qual) for t, q, e, qual in rows}
    # PV register 10 at 0:10, 45 at 0:45: 35 kWh over 35 min, 1 kWh/min, all estimated
    assert got[0] == (pytest.approx(15.0), pytest.approx(5.0), "estimated")
    assert got[15 * MIN] == (pytest.approx(15.0), pytest.approx(15.0), "estimated")
    assert got[30 * MIN] == (pytest.approx(15.0), pytest.approx(15.0), "estimated")
    assert got[45 * MIN] == (pytest.approx(15.0), 0.0, "measured")


def test_submeter_reconciliation_shows_the_remainder(landed: Pipeline) -> None:
    rows = query(landed.settings, "SELECT parent_quantity, children_quantity, unmetered_quantity,"
                 " children_reporting FROM submeter_reconciliation WHERE parent_id = 'acc-grid'"
                 " ORDER BY interval_start")
    assert len(rows) == 4
    for parent, children, rest, n in rows:
        # per 15 min: main 90 kWh, sub-meters 30 + 36 kWh -> 24 kWh unmetered
        assert (parent, children, rest, n) == (pytest.approx(90.0), pytest.approx(66.0),
                                               pytest.approx(24.0), 2)


def test_monthly_close_by_hand(landed: Pipeline) -> None:
    s = landed.settings
    c = load_and_close(s.database_reader_url, "acc-campus", date(2026, 1, 1))
    assert c.grid_kwh == pytest.approx(360.0)  # the sub-meters are inside it
    assert c.scope2_location_kgco2 == pytest.approx(360 * 0.1564)
    # 0.5 MWh green power + 1 MWh retired certificate cover all 360 kWh: market Scope 2 is 0
    assert c.scope2_market_kgco2 == 0.0
    assert c.unused_covered_kwh == pytest.approx(1500 - 360)
    assert c.scope1_kgco2 == pytest.approx(24 * GAS)
    assert c.renewable_share == pytest.approx((60 - 12) / (360 + 48))
    pv = {r["carrier"]: r for r in c.carriers}["onsite_renewable"]
    assert pv["estimated_share"] == pytest.approx(35 / 60)
    total_t = (24 * GAS + 360 * 0.1564) / 1000
    assert c.net_location_tco2 == pytest.approx(total_t - 0.2 - 0.1)
    assert c.intensities["tco2_location_per_population"] == pytest.approx(total_t / 2000)
    # one hour of a 31-day month: far from the 90 % rule
    assert not c.complete
    assert c.completeness == pytest.approx(1 / (31 * 96))  # PV: one fully measured interval
    assert {f["factor_id"] for f in c.factors} >= {"grid.avg.sichuan", "fuel.natural_gas"}


def test_registry_is_stored_with_history(landed: Pipeline) -> None:
    s = landed.settings
    assert query(s, "SELECT count(*) FROM registry_versions")[0][0] >= 1
    rows = query(s, "SELECT instrument_id, kind, quantity, retired FROM instruments"
                 " WHERE site_id = 'acc-campus' ORDER BY 1")
    assert ("GEC-TEST-0001", "green_certificate", 1.0, True) in rows
    assert query(s, "SELECT value FROM denominators WHERE site_id = 'acc-campus'") == [(2000.0,)]


def test_recompute_with_another_data_year_is_audited(landed: Pipeline) -> None:
    s = landed.settings
    start = datetime.fromtimestamp(T0 / 1000, UTC)
    end = datetime.fromtimestamp((T0 + 3600_000) / 1000, UTC)
    audit = recompute(s.database_url, "acc-campus", start, end, FactorLibrary(), data_year=2022)
    grid_kwh = 360 + 120 + 144  # the main meter and both sub-meters carry emission rows
    delta = audit["after_kgco2"]["location"] - audit["before_kgco2"]["location"]
    assert delta == pytest.approx(grid_kwh * (0.1404 - 0.1564))  # Sichuan 2022 vs 2023
    assert audit["rows_changed"] > 0 and audit["parameters"] == {"data_year": 2022,
                                                                  "grid_overrides": None}
    row = query(s, "SELECT factor_version, emissions_kgco2 FROM emission_intervals WHERE"
                " meter_id = 'acc-grid' AND method = 'location' ORDER BY interval_start LIMIT 1")
    assert row == [("mee-2024-33", pytest.approx(90 * 0.1404))]
    # the reader may read the audit but not write it
    with psycopg.connect(s.database_reader_url) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM recompute_audit")
