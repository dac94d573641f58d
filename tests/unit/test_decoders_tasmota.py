"""Tasmota decoder: payloads in the shape Tasmota's energy driver (xdrv_03_energy) writes."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from ingest.decoders import DecodeError, tasmota

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TOPIC = "tele/tasmota-pump/SENSOR"

# A Sonoff POW R2 telemetry message as Tasmota 13 publishes it (TelePeriod)
POW = (b'{"Time":"2026-01-01T07:59:00","ENERGY":{"TotalStartTime":"2025-03-01T10:00:00",'
       b'"Total":1234.567,"Yesterday":3.210,"Today":1.100,"Period":12,"Power":120,'
       b'"ApparentPower":130,"ReactivePower":50,"Factor":0.92,"Voltage":229,"Current":0.567}}')


def test_single_phase_total_is_the_main_register_in_local_time() -> None:
    res = tasmota.decode(TOPIC, POW, NOW)
    assert res.events == ()
    (r,) = res.readings
    assert (r.format, r.device, r.channel, r.kind) == ("tasmota", "tasmota-pump", None, "register")
    assert r.value == 1234.567 and r.unit == "kWh"
    # no offset in Time: kept as wall-clock time for the site's zone, not as UTC
    assert r.ts_ms is None and r.local_time == datetime(2026, 1, 1, 7, 59)


def test_three_phase_arrays_give_per_phase_channels_and_their_sum() -> None:
    doc = {"Time": "2026-01-01T08:00:00+08:00",  # SetOption52 1: offset included
           "ENERGY": {"Total": [100.5, 200.25, 300.125], "Today": [1, 2, 3],
                      "ExportActive": [0.5, 0.0, 1.5], "Power": [10, 20, 30]}}
    res = tasmota.decode("tele/tasmota-3ph/SENSOR", json.dumps(doc).encode(), NOW)
    got = {r.channel: r.value for r in res.readings}
    assert got == {None: pytest.approx(600.875), "Total/1": 100.5, "Total/2": 200.25,
                   "Total/3": 300.125, "ExportActive": 2.0, "ExportActive/1": 0.5,
                   "ExportActive/2": 0.0, "ExportActive/3": 1.5}
    assert {r.ts_ms for r in res.readings} == {NOW}  # 08:00+08:00 is 00:00Z
    assert all(r.local_time is None for r in res.readings)


@pytest.mark.parametrize("time", [None, "1970-01-01T00:04:12"])
def test_missing_time_or_unset_clock_means_receive_time(time: str | None) -> None:
    doc: dict[str, object] = {"ENERGY": {"Total": 5.0}}
    if time is not None:
        doc["Time"] = time
    (r,) = tasmota.decode(TOPIC, json.dumps(doc).encode(), NOW).readings
    assert r.ts_ms is None and r.local_time is None


def test_sensor_without_energy_is_ignored() -> None:
    res = tasmota.decode(TOPIC, b'{"Time":"2026-01-01T08:00:00","DS18B20":{"Temperature":21.5}}',
                         NOW)
    assert res.readings == () and res.events == ()


@pytest.mark.parametrize(
    ("topic", "payload", "code", "fragment"),
    [
        (TOPIC, b"{not json", "malformed_json", "not UTF-8 JSON"),
        (TOPIC, b"[1, 2]", "schema", "JSON object"),
        (TOPIC, b'{"ENERGY": 5}', "schema", "ENERGY must be an object"),
        (TOPIC, b'{"ENERGY": {"Today": 1.0}}', "schema", "ENERGY.Total is required"),
        (TOPIC, b'{"ENERGY": {"Total": "12.5"}}', "schema", "ENERGY.Total must be a number"),
        (TOPIC, b'{"ENERGY": {"Total": -1.0}}', "schema", "negative"),
        (TOPIC, b'{"ENERGY": {"Total": true}}', "schema", "must be a number"),
        (TOPIC, b'{"ENERGY": {"Total": []}}', "schema", "0 phases"),
        (TOPIC, b'{"ENERGY": {"Total": [1, null]}}', "schema", "ENERGY.Total[1]"),
        (TOPIC, b'{"Time": "yesterday", "ENERGY": {"Total": 1}}', "schema", "ISO 8601"),
        (TOPIC, b'{"Time": 17, "ENERGY": {"Total": 1}}', "schema", "Time must be a string"),
        ("tele//SENSOR", b'{"ENERGY": {"Total": 1}}', "topic", "tele/<device>/SENSOR"),
    ],
)
def test_malformed(topic: str, payload: bytes, code: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as err:
        tasmota.decode(topic, payload, NOW)
    assert err.value.code == code and fragment in str(err.value)


def test_field_table_is_documented() -> None:
    assert tasmota.__doc__ is not None
    for spec in tasmota.FIELDS:
        assert spec.path.split("[")[0] in tasmota.__doc__
