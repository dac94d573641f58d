"""Real data through the running pipeline: three days of the UCI "Individual household
electric power consumption" data set (Sceaux, France; G. Hebrail and A. Berard, CC BY 4.0;
../shared/data/uci-household-power-2007h1.zip), one reading per minute, replayed as a main
meter (Global_active_power, kW minute averages) and three sub-meters (Sub_metering_1..3, Wh
per minute), integrated into cumulative registers.

Expected daily totals are summed straight from the file (kW / 60 per minute, Wh / 1000), a
different route from the pipeline's register differences apportioned over intervals. The
file's times are taken as UTC. A minute with any missing value is skipped on both sides (its
energy is unknown); 9 June 2007 has a 38-minute gap, which the pipeline fills by estimate.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from .conftest import Pipeline, publish_payloads, query, wait_for

pytestmark = pytest.mark.services
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "uci-household-power-2007h1.zip"
DAYS = ("2007-06-08", "2007-06-09", "2007-06-10")
SUBS = {"uci-kitchen": "Sub_metering_1", "uci-laundry": "Sub_metering_2",
        "uci-heater": "Sub_metering_3"}


def _minutes() -> pl.DataFrame:
    assert DATA.exists(), f"the shared data set is missing: {DATA}"
    with zipfile.ZipFile(DATA) as z, z.open("household_power_consumption.csv") as f:
        raw = pl.read_csv(f.read(), infer_schema_length=0)
    cols = ["Global_active_power", *SUBS.values()]
    df = raw.with_columns(
        # the file mixes d/m/yy and d/m/yyyy
        pl.col("Date").str.replace(r"/(\d{2})$", "/20$1").str.strptime(pl.Date, "%d/%m/%Y")
        .alias("day"),
        *[pl.col(c).cast(pl.Float64, strict=False) for c in cols],
    ).filter(pl.col("day").cast(pl.String).is_in(DAYS))
    df = df.with_columns(
        (pl.col("day").cast(pl.Datetime("ms", "UTC"))
         + pl.col("Time").str.strptime(pl.Time, "%H:%M:%S").cast(pl.Duration("ms"))
         ).alias("start")
    ).sort("start")
    assert df.height == 3 * 1440
    return df.filter(pl.all_horizontal([pl.col(c).is_not_null() for c in cols]))


def test_uci_daily_totals_and_reconciliation(pipeline: Pipeline) -> None:
    s = pipeline.settings
    df = _minutes()
    assert df.height < 3 * 1440  # the gap is there
    df = df.with_columns(
        (pl.col("Global_active_power") / 60).cum_sum().alias("uci-main"),
        *[pl.col(c).cum_sum().alias(m) for m, c in SUBS.items()],
        ((pl.col("start").dt.epoch("ms")) + 60_000).alias("end_ms"),
    )
    t0 = int(datetime(2007, 6, 8, tzinfo=UTC).timestamp() * 1000)
    meters = {"uci-main": "kWh", **dict.fromkeys(SUBS, "Wh")}
    msgs = [("nzc/v1/uci-home/gw1/readings", json.dumps({"readings": [
        {"meter": m, "ts": t0, "register": 0.0, "unit": u} for m, u in meters.items()]}).encode())]
    for row in df.select("end_ms", *meters).iter_rows(named=True):
        msgs.append(("nzc/v1/uci-home/gw1/readings", json.dumps({"readings": [
            {"meter": m, "ts": row["end_ms"], "register": row[m], "unit": u}
            for m, u in meters.items()]}).encode()))
    publish_payloads(s, msgs)

    daily = df.group_by(pl.col("start").dt.date().alias("day")).agg(
        (pl.col("Global_active_power") / 60).sum().alias("main_kwh"),
        (pl.sum_horizontal(*SUBS.values()) / 1000).sum().alias("subs_kwh"),
    ).sort("day")
    expected = {str(r["day"]): r for r in daily.iter_rows(named=True)}
    n_readings = len(meters) * (df.height + 1)

    def landed() -> bool:
        pipeline.assert_alive()
        return bool(query(s, "SELECT count(*) FROM readings WHERE meter_id LIKE 'uci-%%'")
                    [0][0] >= n_readings)

    wait_for(landed, 300, "three days of UCI readings", interval_s=1.0)
    # the intervals trail the readings audit (another agent on the same topic): wait until
    # every meter has its 3 x 96 intervals and nothing has moved for three polls
    seen: list[object] = []

    def settled() -> bool:
        pipeline.assert_alive()
        now = query(s, "SELECT min(n), sum(q), max(u) FROM (SELECT meter_id, count(*) AS n,"
                    " sum(quantity) AS q, max(updated_at) AS u FROM energy_intervals"
                    " WHERE meter_id LIKE 'uci-%%' GROUP BY meter_id HAVING count(*) > 0) m")[0]
        seen.append(now)
        return bool(now[0] is not None and now[0] >= 3 * 96 and len(seen) >= 3
                    and seen[-1] == seen[-2] == seen[-3])

    wait_for(settled, 240, "the UCI intervals to settle", interval_s=2.0)
    rows = query(s, "SELECT (interval_start AT TIME ZONE 'UTC')::date::text, sum(quantity),"
                 " sum(estimated_quantity) FROM energy_intervals WHERE meter_id = 'uci-main'"
                 " GROUP BY 1 ORDER BY 1")
    assert [r[0] for r in rows] == list(DAYS)
    for day, total, estimated in rows:
        assert total == pytest.approx(expected[day]["main_kwh"], rel=1e-9), day
        # only the day with the gap carries an estimate
        assert (estimated > 0) == (day == "2007-06-09"), (day, estimated)
    recon = query(s, "SELECT (interval_start AT TIME ZONE 'UTC')::date::text,"
                  " sum(unmetered_quantity), min(children_reporting)"
                  " FROM submeter_reconciliation WHERE parent_id = 'uci-main' GROUP BY 1"
                  " ORDER BY 1")
    for day, unmetered, children in recon:
        exp = expected[day]["main_kwh"] - expected[day]["subs_kwh"]
        assert unmetered == pytest.approx(exp, rel=1e-9), day
        assert unmetered > 0 and children == 3  # the main meter sees more than the three
