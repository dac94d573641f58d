"""The scorecard on the running pipeline (real Mosquitto, Kafka, PostgreSQL).

One hour of a test park's registers goes through ingest and the stream worker into the
database; denominators and baselines go through ``nzc denominators|baselines import``. The
scorecard (read from the monthly rollups) must equal figures computed by another route: the
raw interval tables and ``db.queries.monthly_totals``, and the values worked by hand from the
registers and the published factors.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from analytics.scorecard import scorecard_for_site, store
from core.settings import Settings
from db.queries import monthly_totals
from nzc.cli import main as nzc

from .conftest import Pipeline, publish_payloads, query, wait_for

pytestmark = pytest.mark.services
T0 = int(datetime(2026, 2, 10, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000
NOW = datetime(2026, 3, 15, tzinfo=UTC)  # February 2026 is a closed month
GAS = 389.31 / 10_000 * 15.3 / 1000 * 0.99 * 44 / 12 * 1000  # kgCO2/m3
SICHUAN_2023, EXCL_MARKET_2023 = 0.1564, 0.6096  # kgCO2/kWh, MEE 2025 No. 47

# register per 5 minutes: 13 readings = one hour of four 15-minute intervals per meter
STEP = {"ind-grid": 300.0, "ind-dc": 60.0, "ind-it": 50.0, "ind-pv": 40.0,
        "ind-export": 10.0, "ind-gas": 5.0, "ind-heat": 0.5, "ind-water": 2.0}
UNIT = {"ind-gas": "m3", "ind-heat": "GJ", "ind-water": "m3"}


def _messages() -> list[tuple[str, bytes]]:
    msgs = []
    for k in range(13):
        batch = [{"meter": m, "ts": T0 + k * 5 * MIN, "register": 1000 + step * k,
                  "unit": UNIT.get(m, "kWh")} for m, step in STEP.items()]
        msgs.append(("nzc/v1/ind-park/gw1/readings", json.dumps({"readings": batch}).encode()))
    return msgs


@pytest.fixture(scope="module")
def landed(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    publish_payloads(pipeline.settings, _messages())
    wait_for(lambda: query(pipeline.settings, "SELECT count(*) FROM energy_intervals WHERE"
                           " site_id = 'ind-park' AND quality = 'measured'")[0][0] >= 32
             and query(pipeline.settings, "SELECT count(*) FROM emission_intervals WHERE"
                       " site_id = 'ind-park'")[0][0] >= 4 * 2 * 3,
             120, "the scorecard test's intervals")
    d = tmp_path_factory.mktemp("entries")
    (d / "den.csv").write_text(
        "site_id,kind,month,value,unit,source\n"
        "ind-park,value_added,2026-02,100,CNY 10^4,park statistics Feb\n"
        "ind-park,population,2026-01,500,person,HR register\n"
        "ind-park,waste_heat_resource,2026-02,20,GJ,energy audit 2025\n"
        "ind-park,water_reused,2026-02,276,m3,reuse plant log\n", encoding="utf-8")
    (d / "base.csv").write_text(
        "site_id,kind,year,value,unit,source\n"
        "ind-park,emissions_tco2,2022,10,tCO2,2022 inventory by a verifier\n"
        "ind-park,value_added,2022,2000,CNY 10^4,2022 statistical yearbook\n", encoding="utf-8")
    assert nzc(["denominators", "import", str(d / "den.csv"), "--by", "tester"]) == 0
    assert nzc(["baselines", "import", str(d / "base.csv"), "--by", "tester"]) == 0
    return pipeline


def _raw(settings: Settings, sql: str) -> float:
    return float(query(settings, sql)[0][0] or 0.0)


def test_scorecard_equals_raw_intervals_and_hand_values(landed: Pipeline) -> None:
    s = landed.settings
    card = scorecard_for_site(s.database_reader_url, "ind-park", "2026-02", NOW)
    rows = {r["id"]: r for r in card["indicators"]}
    # route 1: by hand from the registers (the first reading of a meter yields nothing)
    grid, pv, export, gas = 3600.0, 480.0, 120.0, 60.0
    e_loc = (grid * SICHUAN_2023 + gas * GAS) / 1000
    e_mkt = (grid * EXCL_MARKET_2023 + gas * GAS) / 1000
    # route 2: the raw interval tables, boundary meters only
    boundary = ("JOIN meters m ON m.meter_id = x.meter_id AND m.parent_id IS NULL"
                " WHERE x.site_id = 'ind-park'")
    raw_loc = _raw(s, f"SELECT sum(emissions_kgco2) FROM emission_intervals x {boundary}"
                      " AND method = 'location'") / 1000
    raw_mkt = _raw(s, f"SELECT sum(emissions_kgco2) FROM emission_intervals x {boundary}"
                      " AND method = 'market'") / 1000
    # route 3: the live monthly totals query of db/queries.py
    tot = [r for r in monthly_totals(s.database_reader_url, datetime(2026, 1, 31, 16,
                                                                     tzinfo=UTC),
                                     datetime(2026, 2, 28, 16, tzinfo=UTC))
           if r["site_id"] == "ind-park"]
    assert len(tot) == 1 and tot[0]["month"] == date(2026, 2, 1)
    for e in (raw_loc, tot[0]["location_kgco2"] / 1000):
        assert e == pytest.approx(e_loc)
    assert raw_mkt == pytest.approx(e_mkt)

    red = rows["emissions_reduction_40"]
    assert red["value"] == pytest.approx((1 - e_loc * 365 / 28 / 10) * 100)
    assert red["value_by_method"]["market"] == pytest.approx((1 - e_mkt * 365 / 28 / 10) * 100)
    assert red["status"] == "not met"  # one hour of data annualised is far from -40 %
    assert red["trace"]["emissions"]["location"]["total_tco2"] == pytest.approx(raw_loc)
    assert {f["factor_id"] for f in red["trace"]["factors"]} >= {"grid.avg.sichuan",
                                                                 "fuel.natural_gas"}
    assert red["trace"]["baseline"]["location"]["source"] == "2022 inventory by a verifier"
    inten = rows["intensity_value_added_reduction_40"]
    assert inten["value"] == pytest.approx((1 - (e_loc / 100) / (10 / 2000)) * 100)
    assert inten["trace"]["denominators"][0]["entries"][0]["source"] == "park statistics Feb"

    el_tce = (grid + pv - export) * 0.1229 / 1000
    total_tce = el_tce + gas * 1.33 / 1000
    raw_pv = _raw(s, "SELECT sum(quantity) FROM energy_intervals x " + boundary
                  + " AND x.carrier = 'onsite_renewable'")
    assert raw_pv == pytest.approx(pv)
    assert rows["renewable_share_10"]["value"] == pytest.approx(
        (pv - export) * 0.1229 / 1000 / total_tce * 100)
    assert rows["clean_energy_95"]["value"] == pytest.approx(100.0)
    assert rows["emissions_per_energy"]["value"] == pytest.approx(e_loc / total_tce)
    assert rows["waste_heat_recovery_30"]["value"] == pytest.approx(6 / 20 * 100)
    assert rows["industrial_water_reuse_92"]["value"] == pytest.approx(276 / (276 + 24) * 100)
    # PUE from the data centre's main meter (a sub-meter) over its IT load meter
    raw_dc = _raw(s, "SELECT sum(quantity) FROM energy_intervals WHERE meter_id = 'ind-dc'")
    raw_it = _raw(s, "SELECT sum(quantity) FROM energy_intervals WHERE meter_id = 'ind-it'")
    assert rows["data_centre_pue"]["value"] == pytest.approx(raw_dc / raw_it)
    assert rows["data_centre_pue"]["value"] == pytest.approx(720 / 600)
    # completeness: one measured hour of a 28-day month on every boundary meter
    assert red["completeness"] == pytest.approx(1 / (28 * 24))
    assert not card["readiness"]["ready"]
    assert card["readiness"]["stable_months"] == 0


def test_import_refuses_a_silent_overwrite_and_keeps_history(landed: Pipeline,
                                                             tmp_path: Path) -> None:
    s = landed.settings
    changed = tmp_path / "changed.csv"
    changed.write_text("site_id,kind,month,value,unit,source\n"
                       "ind-park,value_added,2026-02,125,CNY 10^4,park statistics revised\n",
                       encoding="utf-8")
    assert nzc(["denominators", "import", str(changed), "--by", "tester"]) == 1
    assert query(s, "SELECT value FROM denominators WHERE site_id = 'ind-park'"
                    " AND kind = 'value_added'") == [(100.0,)]
    assert nzc(["denominators", "import", str(changed), "--replace", "--by", "reviewer"]) == 0
    hist = query(s, "SELECT action, old_value, new_value, replace_flag, changed_by, new_source"
                    " FROM denominator_changes WHERE site_id = 'ind-park'"
                    " AND kind = 'value_added' ORDER BY change_id")
    assert hist == [("insert", None, 100.0, False, "tester", "park statistics Feb"),
                    ("replace", 100.0, 125.0, True, "reviewer", "park statistics revised")]
    # a bad file writes nothing and names the line
    bad = tmp_path / "bad.csv"
    bad.write_text("site_id,kind,month,value,unit,source\n"
                   "ind-park,visitors,2026-02,10,person,x\nnowhere,population,2026-02,1,,x\n",
                   encoding="utf-8")
    assert nzc(["denominators", "import", str(bad)]) == 1
    assert query(s, "SELECT count(*) FROM denominators WHERE site_id = 'ind-park'"
                    " AND kind = 'visitors'") == [(0,)]
    # put it back for the other tests of this module
    back = tmp_path / "back.csv"
    back.write_text(changed.read_text().replace("125", "100").replace("revised", "Feb"),
                    encoding="utf-8")
    assert nzc(["denominators", "import", str(back), "--replace", "--by", "tester"]) == 0
    # the baseline cannot be computed from one hour of 2022 data (there is none)
    assert nzc(["baselines", "compute", "--site", "ind-park", "--year", "2022"]) == 1


def test_declared_is_marked_and_the_scorecard_is_stored_per_day(landed: Pipeline) -> None:
    s = landed.settings
    assert nzc(["declare", "--site", "ind-park", "--indicator", "park_leading_body",
                "--value", "是", "--evidence", "文件 2026-3 (leading group decree)",
                "--by", "office"]) == 0
    # a metered indicator cannot be declared
    assert nzc(["declare", "--site", "ind-park", "--indicator", "renewable_share_10",
                "--value", "50", "--evidence", "x"]) == 1
    assert nzc(["declare", "--site", "ind-park", "--indicator", "no_such_indicator",
                "--value", "1", "--evidence", "x"]) == 1
    assert nzc(["declare", "--site", "ind-park", "--indicator", "park_green_coverage",
                "--value", "lots", "--evidence", "x"]) == 1  # a number is required
    card = scorecard_for_site(s.database_reader_url, "ind-park", "2026-02", NOW)
    rows = {r["id"]: r for r in card["indicators"]}
    assert rows["park_leading_body"]["kind"] == "declared"
    assert rows["park_leading_body"]["status"] == "met"
    assert rows["park_leading_body"]["trace"]["declared"]["declared_by"] == "office"
    assert rows["renewable_share_10"]["kind"] == "metered"
    store(s.database_url, card)
    store(s.database_url, card)  # the day's last computation wins: still one row each
    got = query(s, "SELECT day, count(*), count(*) FILTER (WHERE kind = 'declared')"
                   " FROM scorecard_daily WHERE site_id = 'ind-park' AND period = 'month'"
                   " GROUP BY day")
    assert got == [(date(2026, 3, 15), len(card["indicators"]),
                    sum(1 for r in card["indicators"] if r["kind"] == "declared"))]
    assert query(s, "SELECT ready, stable_months FROM scorecard_readiness_daily"
                    " WHERE site_id = 'ind-park'") == [(False, 0)]
    with psycopg.connect(s.database_reader_url) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM scorecard_daily")


def test_cli_prints_chinese_with_english(landed: Pipeline,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert nzc(["scorecard", "--site", "ind-park", "--period", "2026-02"]) == 0
    out = capsys.readouterr().out
    assert "可再生能源消费比重 renewable share" in out
    assert "验收准备 acceptance readiness" in out
