"""End to end through real Mosquitto, Kafka, faust workers and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime

import pytest

from core.settings import Settings

from .conftest import Pipeline, mosquitto_pub_auth, publish_payloads, query, wait_for
from .expected import (
    GAS_KG_PER_M3,
    NATIONAL_EXCL_MARKET_2023_KG_PER_KWH,
    SICHUAN_GRID_2023_KG_PER_KWH,
    interval_quantities,
)

pytestmark = pytest.mark.services
MIN = 60_000
INTERVAL = 900_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _base_ms() -> int:
    now = int(time.time() * 1000)
    return now - now % INTERVAL - 4 * 3600_000


def energy_rows(settings: Settings, meter: str) -> dict[int, tuple[float, float, str]]:
    rows = query(settings, "SELECT (extract(epoch FROM interval_start) * 1000)::bigint,"
                 " quantity, covered_s, quality FROM energy_intervals WHERE meter_id = %s",
                 (meter,))
    return {int(r[0]): (r[1], r[2], r[3]) for r in rows}


def emission_rows(settings: Settings, meter: str) -> dict[tuple[int, str], tuple[float, str]]:
    rows = query(settings, "SELECT (extract(epoch FROM interval_start) * 1000)::bigint, method,"
                 " emissions_kgco2, factor_id FROM emission_intervals WHERE meter_id = %s",
                 (meter,))
    return {(int(r[0]), r[1]): (r[2], r[3]) for r in rows}


def test_end_to_end_energy_and_emissions(pipeline: Pipeline) -> None:
    s = pipeline.settings
    t0 = _base_ms()
    # e2e-el [kWh], not aligned to interval boundaries; varying rates
    el = [(t0 + 7 * MIN + k * 10 * MIN, 5000.0 + 12.5 * k + (3.0 if k % 3 == 0 else 0.0))
          for k in range(12)]
    # e2e-sub [Wh] registers of a sub-meter of e2e-el
    sub = [(t0 + 7 * MIN + k * 10 * MIN, 2_000_000.0 + 4_100.0 * k) for k in range(12)]
    # e2e-gas [m3]
    gas = [(t0 + k * 20 * MIN + 3 * MIN, 800.0 + 6.5 * k) for k in range(6)]

    def reading(meter: str, ts: int, reg: float, unit: str) -> dict[str, object]:
        return {"meter": meter, "ts": _iso(ts) if ts % 2 == 0 else ts, "register": reg,
                "unit": unit}

    messages: list[tuple[str, bytes]] = []
    for i in range(12):
        batch = [reading("e2e-el", *el[i], "kWh"), reading("e2e-sub", *sub[i], "Wh")]
        if i < len(gas):
            batch.append(reading("e2e-gas", *gas[i], "m3"))
        messages.append(("nzc/v1/test-site/gw1/readings", json.dumps({"readings": batch}).encode()))
    # one out-of-order reading: message 5 goes after message 7
    messages[5], messages[7] = messages[7], messages[5]
    # duplicates: messages 2 and 9 again, and one single-reading duplicate
    messages += [messages[2], messages[9],
                 ("nzc/v1/test-site/gw1/readings",
                  json.dumps(reading("e2e-el", *el[4], "kWh")).encode())]
    # a malformed message and a batch with an unknown meter
    messages.insert(3, ("nzc/v1/test-site/gw1/readings", b'{"readings": [{"meter": "e2e-el",'))
    messages.append(("nzc/v1/test-site/gw1/readings", json.dumps(
        {"readings": [reading("no-such-meter", t0, 1.0, "kWh")]}).encode()))

    publish_payloads(s, messages)

    exp_el = interval_quantities(el, INTERVAL)
    exp_sub = {k: v / 1000.0 for k, v in interval_quantities(sub, INTERVAL).items()}  # Wh->kWh
    exp_gas = interval_quantities(gas, INTERVAL)

    def settled() -> bool:
        pipeline.assert_alive()
        got = energy_rows(s, "e2e-el")
        return (set(got) == set(exp_el)
                and all(abs(got[k][0] - exp_el[k]) < 1e-6 for k in exp_el)
                and set(energy_rows(s, "e2e-gas")) == set(exp_gas)
                and len(emission_rows(s, "e2e-gas")) == 2 * len(exp_gas)
                and set(energy_rows(s, "e2e-sub")) == set(exp_sub))

    wait_for(settled, 120, "all intervals of the e2e meters")
    time.sleep(2)  # anything still in flight would show up as a difference below

    for meter, expected in (("e2e-el", exp_el), ("e2e-sub", exp_sub), ("e2e-gas", exp_gas)):
        got = energy_rows(s, meter)
        assert set(got) == set(expected), meter
        for start, qty in expected.items():
            assert got[start][0] == pytest.approx(qty, rel=1e-9, abs=1e-9), (meter, start)

    # interior intervals are fully covered and measured; the first one is partial
    el_rows = energy_rows(s, "e2e-el")
    assert el_rows[t0 + INTERVAL][2] == "measured"
    assert el_rows[t0][2] == "partial"
    assert el_rows[t0][1] == pytest.approx(8 * 60)  # covered from 00:07 to 00:15

    # emissions per interval: grid kWh x Sichuan 2023 (location), x national excl. market
    # (market); gas m3 x 2.162 kg/m3 (scope 1, both methods)
    em = emission_rows(s, "e2e-el")
    for start, qty in exp_el.items():
        assert em[(start, "location")][0] == pytest.approx(qty * SICHUAN_GRID_2023_KG_PER_KWH)
        assert em[(start, "market")][0] == pytest.approx(qty * NATIONAL_EXCL_MARKET_2023_KG_PER_KWH)
    em_gas = emission_rows(s, "e2e-gas")
    for start, qty in exp_gas.items():
        assert em_gas[(start, "location")][0] == pytest.approx(qty * GAS_KG_PER_M3)
    total_gas_kg = sum(v[0] for (_, m), v in em_gas.items() if m == "location")
    assert total_gas_kg == pytest.approx((gas[-1][1] - gas[0][1]) * GAS_KG_PER_M3)

    # no duplicate rows anywhere; the readings audit holds each reading once
    for table, key in (("energy_intervals", "meter_id, interval_start"),
                       ("emission_intervals", "meter_id, interval_start, method"),
                       ("readings", "meter_id, ts")):
        dupes = query(s, f"SELECT {key}, count(*) FROM {table} GROUP BY {key} HAVING count(*) > 1")
        assert dupes == [], table
    n = query(s, "SELECT count(*) FROM readings WHERE meter_id = 'e2e-el'")[0][0]
    assert n == len(el)

    # the malformed message and the unknown meter are kept with their reasons
    dead = query(s, "SELECT code, reason, payload, mqtt_topic FROM dead_letters"
                 " WHERE stage = 'ingest' ORDER BY id")
    codes = {d[0]: d for d in dead}
    assert "malformed_json" in codes
    assert codes["malformed_json"][2] == '{"readings": [{"meter": "e2e-el",'
    assert codes["malformed_json"][3] == "nzc/v1/test-site/gw1/readings"
    assert "unknown_meter" in codes and "no-such-meter" in codes["unknown_meter"][1]


def test_mosquitto_pub_feeds_the_pipeline(pipeline: Pipeline) -> None:
    """A client nobody here wrote: Mosquitto's own mosquitto_pub."""
    s = pipeline.settings
    t0 = _base_ms()
    for ts, reg in ((t0, 100.0), (t0 + INTERVAL, 142.5)):
        payload = json.dumps({"meter": "pub-el", "ts": _iso(ts), "register": reg, "unit": "kWh"})
        subprocess.run(["mosquitto_pub", "-h", s.mqtt_host, "-p", str(s.mqtt_port), "-q", "1",
                        *mosquitto_pub_auth(s, "test-site/gw3"),
                        "-t", "nzc/v1/test-site/gw3/readings", "-m", payload],
                       check=True, timeout=30)
    got = wait_for(lambda: energy_rows(s, "pub-el"), 60, "the pub-el interval")
    assert got == {t0: (pytest.approx(42.5), pytest.approx(900.0), "measured")}
    em = wait_for(lambda: emission_rows(s, "pub-el"), 30, "the pub-el emissions")
    assert em[(t0, "location")][0] == pytest.approx(42.5 * SICHUAN_GRID_2023_KG_PER_KWH)
