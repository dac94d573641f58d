"""Ingest validation: every bad input is rejected with a specific, stable reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.registry_yaml import load_registry
from ingest.schema import MAX_DEAD_LETTER_PAYLOAD
from ingest.validate import decode_message

REG = load_registry(Path(__file__).resolve().parents[1] / "data" / "registry.yaml")
TOPIC = "nzc/v1/test-site/gw1/readings"
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def decode(payload: object, topic: str = TOPIC) -> tuple[list, list]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return decode_message(REG, topic, raw, received_ms=NOW, max_clock_skew_s=300)


def test_single_and_batch_accepted_and_converted() -> None:
    ok, bad = decode({"meter": "e2e-el", "ts": "2025-12-31T23:00:00Z", "register": 12.5,
                      "unit": "kWh"})
    assert bad == [] and ok[0].ts_ms == NOW - 3_600_000 and ok[0].value == 12.5
    ok, bad = decode({"readings": [
        {"meter": "e2e-sub", "ts": NOW - 1000, "register": 2500.0, "unit": "Wh"},
        {"meter": "e2e-gas", "ts": "2026-01-01T07:59:00+08:00", "register": 3.0, "unit": "m3"},
    ]})
    assert bad == []
    assert ok[0].value == pytest.approx(2.5) and ok[0].unit == "kWh"  # Wh -> kWh
    assert ok[1].ts_ms == NOW - 60_000  # offset honoured


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        (b"{not json", "malformed_json", "not UTF-8 JSON"),
        (b"\xff\xfe", "malformed_json", "not UTF-8 JSON"),
        ({"meter": "e2e-el", "ts": "2026-01-01T00:00:00", "register": 1, "unit": "kWh"},
         "schema", "no UTC offset"),
        ({"meter": "e2e-el", "ts": NOW, "unit": "kWh"}, "schema", "exactly one of"),
        ({"meter": "e2e-el", "ts": NOW, "register": -4, "unit": "kWh"}, "schema", "negative"),
        ({"meter": "e2e-el", "ts": NOW, "value": 3, "unit": "kWh"}, "schema", "period_s"),
        ({"meter": "e2e-el", "ts": NOW, "register": 1, "unit": "kWh", "x": 1}, "schema",
         "Extra inputs"),
        ({"readings": []}, "schema", "readings"),
    ],
)
def test_malformed_payloads(payload: object, code: str, fragment: str) -> None:
    ok, bad = decode(payload)
    assert ok == [] and len(bad) == 1
    assert bad[0].code == code and fragment in bad[0].reason
    assert bad[0].mqtt_topic == TOPIC and bad[0].stage == "ingest"


@pytest.mark.parametrize(
    ("reading", "code", "fragment"),
    [
        ({"meter": "nope", "ts": NOW, "register": 1, "unit": "kWh"}, "unknown_meter", "'nope'"),
        ({"meter": "e2e-el", "ts": NOW, "register": 1, "unit": "m3"}, "unit", "accepted: MWh"),
        ({"meter": "e2e-el", "ts": NOW + 3_600_000, "register": 1, "unit": "kWh"},
         "clock_skew", "3600 s ahead"),
        ({"meter": "e2e-el", "ts": 1000, "register": 1, "unit": "kWh"}, "impossible_timestamp",
         "before 2000"),
    ],
)
def test_bad_readings_in_a_batch_are_rejected_one_by_one(
    reading: dict, code: str, fragment: str
) -> None:
    good = {"meter": "e2e-el", "ts": NOW - 5000, "register": 7.0, "unit": "kWh"}
    ok, bad = decode({"readings": [good, reading]})
    assert [r.meter_id for r in ok] == ["e2e-el"]
    assert len(bad) == 1 and bad[0].code == code and fragment in bad[0].reason
    assert json.loads(bad[0].payload)["meter"] == reading["meter"]


def test_site_mismatch_and_bad_topic() -> None:
    reading = {"meter": "e2e-el", "ts": NOW, "register": 1, "unit": "kWh"}
    _, bad = decode(reading, topic="nzc/v1/other-site/gw1/readings")
    assert bad[0].code == "site_mismatch"
    _, bad = decode(reading, topic="somewhere/else")
    assert bad[0].code == "topic"


def test_dead_letter_payload_is_bounded() -> None:
    _, bad = decode(b"x" * (MAX_DEAD_LETTER_PAYLOAD * 10))
    assert bad[0].payload_truncated and len(bad[0].payload) == MAX_DEAD_LETTER_PAYLOAD


# ---------------------------------------------------------------- gateway formats (issue 5)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ingest.decoders.sparkplug import SparkplugState  # noqa: E402
from tests.unit.test_decoders_sparkplug import (  # noqa: E402
    BOOLEAN,
    DOUBLE,
    UINT64,
    encode,
    metric,
)

SHELLY2 = "shellypro3em-c8f09e8a1b2c"


def dev(topic: str, payload: bytes | dict, sparkplug: SparkplugState | None = None,
        received_ms: int = NOW) -> tuple[list, list]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return decode_message(REG, topic, raw, received_ms=received_ms, max_clock_skew_s=300,
                          sparkplug=sparkplug)


def test_tasmota_local_time_is_read_in_the_site_time_zone() -> None:
    ok, bad = dev("tele/tasmota-pump/SENSOR",
                  {"Time": "2026-01-01T07:59:00", "ENERGY": {"Total": 12.5, "Power": 3}})
    assert bad == []
    (r,) = ok
    assert (r.meter_id, r.site_id, r.kind, r.value, r.unit) == ("fmt-tas", "fmt-site",
                                                                "register", 12.5, "kWh")
    assert r.ts_ms == NOW - 60_000  # 07:59 in Asia/Shanghai is 23:59Z the day before
    assert r.mqtt_topic == "tele/tasmota-pump/SENSOR" and r.received_ms == NOW


def test_channels_no_meter_claims_are_ignored_but_unmapped_devices_are_reported() -> None:
    ok, bad = dev("tele/tasmota-3ph/SENSOR",
                  {"Time": "2026-01-01T00:00:00Z", "ENERGY": {"Total": [1.0, 2.0, 3.0]}})
    assert [(r.meter_id, r.value) for r in ok] == [("fmt-tas-l2", 2.0)] and bad == []
    ok, bad = dev("tele/tasmota-new/SENSOR",
                  {"Time": "2026-01-01T00:00:00Z", "ENERGY": {"Total": [1.0, 2.0]}})
    assert ok == []
    (d,) = bad
    assert d.code == "unmapped_device" and d.meter_id is None
    assert "tasmota device 'tasmota-new'" in d.reason
    assert "(main), Total/1, Total/2" in d.reason
    assert json.loads(d.payload)["device"] == "tasmota-new"


def test_shelly_gen2_wh_converted_and_import_export_meters() -> None:
    ok, bad = dev(f"{SHELLY2}/events/rpc", {
        "src": SHELLY2, "method": "NotifyStatus",
        "params": {"ts": (NOW - 30_000) / 1000,
                   "emdata:0": {"id": 0, "total_act": 123_456.0, "total_act_ret": 789.0,
                                "a_total_act_energy": 40_000.0}}})
    assert bad == []
    got = {r.meter_id: (r.value, r.unit, r.ts_ms) for r in ok}
    assert got == {"fmt-sh2": (pytest.approx(123.456), "kWh", NOW - 30_000),
                   "fmt-sh2-ret": (pytest.approx(0.789), "kWh", NOW - 30_000)}


def test_shelly_gen1_uses_the_receive_time() -> None:
    ok, bad = dev("shellies/shellyem3-ECFABC0A1B2C/emeter/0/total", b"2500", received_ms=NOW - 7)
    assert bad == [] and [(r.meter_id, r.value, r.ts_ms) for r in ok] == [
        ("fmt-sh1", 2.5, NOW - 7)]


def test_device_clock_checks_apply() -> None:
    params = {"ts": (NOW + 3_600_000) / 1000, "emdata:0": {"total_act": 1.0}}
    ok, bad = dev(f"{SHELLY2}/events/rpc", {"src": SHELLY2, "method": "NotifyStatus",
                                            "params": params})
    assert ok == [] and [(d.code, d.meter_id) for d in bad] == [("clock_skew", "fmt-sh2")]
    assert "3600 s ahead" in bad[0].reason


def test_zigbee2mqtt_mapped() -> None:
    ok, bad = dev("zigbee2mqtt/pump-room-meter",
                  {"energy": 77.25, "power": 5, "last_seen": "2026-01-01T00:00:00Z"})
    assert bad == [] and [(r.meter_id, r.value, r.ts_ms) for r in ok] == [("fmt-z2m", 77.25,
                                                                           NOW)]


def test_neuron_mapping_errors_and_distinct_dead_letter_payloads() -> None:
    payload = {"timestamp": NOW - 500, "node": "dlt645-bus1", "group": "energy",
               "values": {"230100004521#00-00-00-00": 10452.31,
                          "230100004588#00-00-00-00": 1.0, "230100004589#00-00-00-00": 2.0},
               "errors": {"230100004521#00-01-00-00": 3002}}
    ok, bad = dev("/neuron/north-1/dlt645-bus1/energy", payload)
    assert [(r.meter_id, r.value, r.ts_ms) for r in ok] == [("fmt-neu", 10452.31, NOW - 500)]
    codes = sorted((d.code, d.meter_id) for d in bad)
    # one summarising dead letter for both unmapped meter addresses (issue 8 item 6)
    assert codes == [("device_read_error", None), ("unmapped_device", None)]
    (summary,) = [d for d in bad if d.code == "unmapped_device"]
    assert "2 neuron devices" in summary.reason and "230100004589" in summary.reason
    # the database keeps one row per (topic, receive time, payload): payloads must differ
    assert len({d.payload for d in bad}) == len(bad)
    # the same upload on a custom topic is recognised by its shape, but no gateway owns that
    # topic: the mapped reading is not accepted (issue 9)
    ok2, bad2 = dev("plant/gateway-7/upload", payload)
    assert ok2 == [] and ("device_not_on_gateway", "fmt-neu") in [(d.code, d.meter_id)
                                                                   for d in bad2]


def test_read_error_of_a_mapped_channel_names_the_meter() -> None:
    payload = {"timestamp": NOW, "node": "dlt645-bus1", "group": "energy",
               "values": {}, "errors": {"230100004521#00-00-00-00": 3002}}
    _, bad = dev("/neuron/north-1/upload", payload)
    assert [(d.code, d.meter_id) for d in bad] == [("device_read_error", "fmt-neu")]


def test_sparkplug_units_offline_meters_and_malformed() -> None:
    spb = SparkplugState()
    node = "spBv1.0/nzc-test/{}/edge-1"
    ok, bad = dev(node.format("NBIRTH"), encode(0, [metric("bdSeq", datatype=UINT64, value=1)]),
                  spb)
    assert ok == [] and bad == []
    ok, bad = dev(node.format("DBIRTH") + "/meter-1", encode(1, [
        metric("Energy/Import", 7, DOUBLE, 250_000.0, NOW - 1000, unit="Wh"),
        metric("Device Control/Rebirth", 8, BOOLEAN, False)]), spb)
    assert bad == [] and [(r.meter_id, r.value) for r in ok] == [("fmt-spb", 250.0)]
    ok, bad = dev(node.format("DBIRTH") + "/meter-2",  # no engUnit: the meter's unit (kWh)
                  encode(2, [metric("Energy/Import", 9, DOUBLE, 42.0, NOW - 1000)]), spb)
    assert bad == [] and [(r.meter_id, r.value) for r in ok] == [("fmt-spb2", 42.0)]
    ok, bad = dev(node.format("DDATA") + "/meter-1", encode(3, [metric(alias=7, value=251_000.0)]),
                  spb)
    assert bad == [] and [(r.meter_id, r.value) for r in ok] == [("fmt-spb", 251.0)]
    ok, bad = dev(node.format("DDATA") + "/meter-1", encode(9, [metric(alias=7, value=252_000.0)]),
                  spb)
    assert [r.value for r in ok] == [252.0]
    assert [(d.code, d.meter_id) for d in bad] == [("sequence_gap", None)]
    _, bad = dev(node.format("DDEATH") + "/meter-1", encode(10, []), spb)
    assert [(d.code, d.meter_id) for d in bad] == [("device_offline", "fmt-spb")]
    _, bad = dev(node.format("NDEATH"), encode(None, [metric("bdSeq", datatype=UINT64,
                                                             value=1)]), spb)
    assert sorted((d.code, d.meter_id) for d in bad) == [("device_offline", "fmt-spb"),
                                                         ("device_offline", "fmt-spb2")]
    _, bad = dev(node.format("NDATA"), b"\x12\x05ab", spb)
    (d,) = bad
    assert d.code == "malformed_protobuf" and d.payload == "base64:EgVhYg=="


def test_unknown_topic() -> None:
    _, bad = dev("home/kitchen/temperature", b'{"t": 21}')
    assert bad[0].code == "topic" and "supported formats" in bad[0].reason


TOPICS = ["tele/dev/SENSOR", "shellies/dev/emeter/0/total", f"{SHELLY2}/events/rpc",
          "zigbee2mqtt/pump-room-meter", "/neuron/app/upload", "spBv1.0/g/DDATA/n/d",
          "spBv1.0/g/NBIRTH/n", "nzc/v1/test-site/gw1/readings", "x"]


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(TOPICS),
       payload=st.one_of(st.binary(max_size=64),
                         st.recursive(st.none() | st.booleans() | st.floats() | st.integers()
                                      | st.text(max_size=8),
                                      lambda c: st.lists(c, max_size=3)
                                      | st.dictionaries(st.sampled_from(
                                          ["ENERGY", "Total", "Time", "params", "emdata:0",
                                           "total_act", "energy", "node", "group", "timestamp",
                                           "values", "tags", "method", "src"]), c, max_size=4),
                                      max_leaves=12).map(lambda d: json.dumps(d).encode())))
def test_no_input_crashes_ingest(topic: str, payload: bytes) -> None:
    ok, bad = dev(topic, payload, SparkplugState())
    for d in bad:
        assert d.code and d.reason and d.mqtt_topic == topic
    assert all(r.meter_id in REG.meters for r in ok)
    assert all(d.code != "decoder_error" for d in bad), [d.reason for d in bad]
