"""Hostile and careless input at ingest (issue 8 items 1, 2, 5, 6, 8; issue 9 gateway
binding): decode_message never raises, every rejection has a specific code and a printable
reason, and nothing infinite, out of range or from the wrong gateway is accepted."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import topic_matches_sub

from carbon.registry import parse_registry
from core.registry_yaml import load_registry
from ingest.decoders import MAX_MESSAGE_BYTES, MAX_READINGS_PER_MESSAGE, device_topics
from ingest.decoders.sparkplug import SparkplugState
from ingest.schema import DeadLetter, ReadingRecord
from ingest.validate import decode_message
from simulators.scale import SITES_DIR
from simulators.scenario import Scenario
from tests.unit.test_decoders_sparkplug import DOUBLE, UINT64, encode, metric

REG = load_registry(Path(__file__).resolve().parents[1] / "data" / "registry.yaml")
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TOPIC = "nzc/v1/test-site/gw1/readings"
SHELLY2 = "shellypro3em-c8f09e8a1b2c"
NEURON_TOPIC = "/neuron/north-1/dlt645-bus1/energy"


def run(topic: str, payload: bytes | dict[str, Any], sparkplug: SparkplugState | None = None,
        registry: Any = REG) -> tuple[list[ReadingRecord], list[DeadLetter]]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    ok, bad = decode_message(registry, topic, raw, received_ms=NOW, max_clock_skew_s=300,
                             sparkplug=sparkplug)
    for d in bad:  # every dead letter is storable text with a specific reason
        assert d.code != "decoder_error", d.reason
        assert d.reason.isprintable() and "\x00" not in d.reason
        json.dumps(d.to_dict(), allow_nan=False).encode("utf-8")
    for r in ok:
        assert math.isfinite(r.value) and r.value >= 0
        json.dumps(r.to_dict(), allow_nan=False)
    return ok, bad


def one_code(topic: str, payload: bytes | dict[str, Any],
             sparkplug: SparkplugState | None = None) -> DeadLetter:
    ok, bad = run(topic, payload, sparkplug)
    assert ok == []
    assert len(bad) == 1, [(d.code, d.reason) for d in bad]
    return bad[0]


def reading(**kw: Any) -> dict[str, Any]:
    return {"meter": "e2e-el", "ts": NOW - 1000, "register": 12.5, "unit": "kWh", **kw}


def spb_session() -> SparkplugState:
    st = SparkplugState()
    run("spBv1.0/nzc-test/NBIRTH/edge-1",
        encode(0, [metric("bdSeq", datatype=UINT64, value=1)]), st)
    return st


# ------------------------------------------------------------ item 5: never raises


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"[" * 10_000, "malformed_json"),
        (b'{"meter":"e2e-el","ts":' + b"9" * 5000 + b',"register":1,"unit":"kWh"}',
         "malformed_json"),
        (b'{"meter":"e2e-el","ts":1767225599000,"register":' + b"9" * 4000
         + b',"unit":"kWh"}', "schema"),
        (json.dumps(reading(ts=10**400)).encode(), "impossible_timestamp"),
        (json.dumps(reading(ts="0001-01-01T00:00:00+14:00")).encode(), "impossible_timestamp"),
        (json.dumps(reading(ts="9999-12-31T23:59:59-14:00")).encode(), "impossible_timestamp"),
        (b'{"meter":"e2e-el","ts":1e400,"register":1,"unit":"kWh"}', "impossible_timestamp"),
        (b'{"meter":"e2e-el","ts":1767225599000,"register":NaN,"unit":"kWh"}', "malformed_json"),
    ],
)
def test_our_format_never_raises_and_names_the_code(payload: bytes, code: str) -> None:
    assert one_code(TOPIC, payload).code == code


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        (f"{SHELLY2}/events/rpc", b'{"src":"%s","method":"NotifyStatus","params":{"ts":1e308,'
         b'"emdata:0":{"total_act":1}}}' % SHELLY2.encode(), "impossible_timestamp"),
        (f"{SHELLY2}/events/rpc", b'{"src":"%s","method":"NotifyStatus","params":{"ts":NaN,'
         b'"emdata:0":{"total_act":1}}}' % SHELLY2.encode(), "malformed_json"),
        (f"{SHELLY2}/events/rpc", b'{"src":"%s","method":"NotifyStatus","params":{"ts":'
         b'1e300,"emdata:0":{"total_act":1}}}' % SHELLY2.encode(), "impossible_timestamp"),
        ("tele/tasmota-pump/SENSOR", b"[" * 10_000, "malformed_json"),
        ("tele/tasmota-pump/SENSOR", b'{"ENERGY":{"Total":' + b"9" * 5000 + b"}}",
         "malformed_json"),
        ("tele/tasmota-pump/SENSOR", b'{"ENERGY":{"Total":' + b"9" * 4000 + b"}}", "schema"),
        ("tele/tasmota-pump/SENSOR",
         b'{"Time":"0001-01-01T00:00:00+14:00","ENERGY":{"Total":1}}', "impossible_timestamp"),
        ("zigbee2mqtt/pump-room-meter", json.dumps({"energy": 1, "last_seen": 10**400}).encode(),
         "impossible_timestamp"),
        (NEURON_TOPIC, json.dumps({"node": "dlt645-bus1", "group": "energy",
                                   "timestamp": 10**400,
                                   "values": {"230100004521#00-00-00-00": 1.0}}).encode(),
         "impossible_timestamp"),
    ],
)
def test_vendor_formats_give_specific_codes_not_decoder_error(
        topic: str, payload: bytes, code: str) -> None:
    assert one_code(topic, payload).code == code


def test_tasmota_local_time_at_the_end_of_time_is_impossible_not_a_crash() -> None:
    d = one_code("tele/tasmota-pump/SENSOR",
                 {"Time": "9999-12-31T23:59:59", "ENERGY": {"Total": 1.0}})
    assert d.code in ("impossible_timestamp", "clock_skew")


# ------------------------------------------------------------ item 2: no infinity


def test_infinity_after_conversion_is_out_of_range() -> None:
    d = one_code(TOPIC, reading(register=1e308, unit="MWh"))
    assert d.code == "out_of_range" and "finite" in d.reason and d.meter_id == "e2e-el"


def test_tasmota_sum_of_phases_that_overflows_is_out_of_range() -> None:
    d = one_code("tele/tasmota-pump/SENSOR",
                 {"Time": "2026-01-01T00:00:00Z", "ENERGY": {"Total": [1.7e308, 1.7e308]}})
    assert (d.code, d.meter_id) == ("out_of_range", "fmt-tas")


@pytest.mark.parametrize(
    ("datatype", "value", "unit"),
    [(DOUBLE, 1e308, "MWh"), (UINT64, 2**64 - 1, None), (DOUBLE, 1_000_001.0, "kWh")],
)
def test_sparkplug_values_beyond_infinity_or_register_max_are_rejected(
        datatype: int, value: float, unit: str | None) -> None:
    st = spb_session()
    ok, bad = run("spBv1.0/nzc-test/DBIRTH/edge-1/meter-1", encode(1, [
        metric("Energy/Import", 7, datatype, value, NOW - 1000, unit=unit)]), st)
    assert ok == [] and [(d.code, d.meter_id) for d in bad] == [("out_of_range", "fmt-spb")]


def test_register_above_register_max_is_rejected_and_at_it_accepted() -> None:
    # e2e-el: register_max 1,000,000 kWh; e2e-sub: 1e9 Wh = 1e6 kWh
    assert one_code(TOPIC, reading(register=1_000_000.5)).code == "out_of_range"
    ok, bad = run(TOPIC, {"readings": [reading(register=1_000_000),
                                       reading(meter="e2e-sub", register=1e9, unit="Wh")]})
    assert bad == [] and [r.value for r in ok] == [1_000_000.0, 1_000_000.0]
    d = one_code(TOPIC, reading(value=2e6, period_s=60, register=None))
    assert d.code in ("out_of_range", "schema")


# ------------------------------------------------------------ item 8: strict types


@pytest.mark.parametrize("bad_value", [True, False, "12.5", [1], {"v": 1}])
def test_register_must_be_a_json_number(bad_value: object) -> None:
    d = one_code(TOPIC, reading(register=bad_value))
    assert d.code == "schema" and d.reason.startswith("register")


def test_period_s_must_be_an_integer() -> None:
    d = one_code(TOPIC, {"meter": "e2e-el", "ts": NOW, "value": 1.0, "period_s": True,
                         "unit": "kWh"})
    assert d.code == "schema" and "period_s" in d.reason


def test_one_epoch_rule_for_int_float_and_string() -> None:
    ms = NOW - 60_000
    ok, bad = run(TOPIC, {"readings": [reading(ts=ms), reading(ts=float(ms) + 0.7),
                                       reading(ts=str(ms))]})
    assert bad == [] and [r.ts_ms for r in ok] == [ms, ms, ms]
    seconds = (NOW - 60_000) // 1000
    ok, bad = run(TOPIC, {"readings": [reading(ts=seconds), reading(ts=seconds + 0.5),
                                       reading(ts=str(seconds))]})
    assert ok == [] and len(bad) == 3
    assert all(d.code == "impossible_timestamp" and "epoch seconds" in d.reason for d in bad)


def test_negative_zero_is_stored_as_zero() -> None:
    ok, bad = run(TOPIC, reading(register=-0.0))
    assert bad == [] and math.copysign(1.0, ok[0].value) == 1.0
    ok, _ = run("zigbee2mqtt/pump-room-meter", b'{"energy": -0.0}')
    assert math.copysign(1.0, ok[0].value) == 1.0


# ------------------------------------------------------------ item 6: limits


def test_message_size_limit() -> None:
    big = {"readings": [reading()] * 20_000}
    raw = json.dumps(big).encode()
    assert len(raw) > MAX_MESSAGE_BYTES
    d = one_code(TOPIC, raw)
    assert d.code == "message_too_large" and str(MAX_MESSAGE_BYTES) in d.reason
    assert d.payload_truncated
    tags = {f"{100000000000 + i}#00-00-00-00": 1.0 for i in range(100_000)}
    upload = json.dumps({"node": "n", "group": "g", "timestamp": NOW, "values": tags}).encode()
    assert len(upload) > 3_000_000
    assert one_code(NEURON_TOPIC, upload).code == "message_too_large"


def test_reading_count_limit() -> None:
    n = MAX_READINGS_PER_MESSAGE + 1
    small = {"meter": "e2e-el", "ts": NOW, "register": 1, "unit": "kWh"}
    assert one_code(TOPIC, {"readings": [small] * n}).code == "too_many_readings"
    tags = {f"{100000000000 + i}#00-00-00-00": 1 for i in range(n)}
    d = one_code(NEURON_TOPIC, {"node": "dlt645-bus1", "group": "energy", "timestamp": NOW,
                                "values": tags})
    assert d.code == "too_many_readings"


def test_unmapped_devices_give_one_summarising_dead_letter_per_message() -> None:
    tags = {f"{100000000000 + i}#00-00-00-00": 1.0 for i in range(5_000)}
    d = one_code(NEURON_TOPIC, {"node": "dlt645-bus1", "group": "energy", "timestamp": NOW,
                                "values": tags})
    assert d.code == "unmapped_device" and "5000 neuron devices" in d.reason
    assert len(d.reason) <= 2000 and len(d.payload) <= 8192


def test_unknown_meters_of_a_batch_are_summarised_beyond_ten() -> None:
    few = [reading(meter=f"nope-{i}") for i in range(10)]
    ok, bad = run(TOPIC, {"readings": [*few, reading()]})
    assert len(ok) == 1 and [d.code for d in bad] == ["unknown_meter"] * 10
    many = [reading(meter=f"nope-{i}") for i in range(MAX_READINGS_PER_MESSAGE - 1)]
    ok, bad = run(TOPIC, {"readings": [*many, reading()]})
    assert len(ok) == 1 and len(bad) == 1
    d = bad[0]
    assert d.code == "unknown_meter" and d.reason.startswith("9999 readings of 9999 meters")
    assert len(json.loads(d.payload)["readings"]) == 20
    ok, bad = run("nzc/v1/test-site/gw3/readings", {"readings": [reading()] * 11})
    assert ok == [] and [d.code for d in bad] == ["gateway_mismatch"]


def test_sparkplug_data_before_birth_unknown_metric_and_seq() -> None:
    ddata = encode(1, [metric("Energy/Import", value=1.0)])
    assert one_code("spBv1.0/nzc-test/DDATA/edge-1/meter-1", ddata,
                    SparkplugState()).code == "data_before_birth"
    st = spb_session()
    run("spBv1.0/nzc-test/DBIRTH/edge-1/meter-1",
        encode(1, [metric("Energy/Import", 7, DOUBLE, 5.0, NOW - 1000)]), st)
    ok, bad = run("spBv1.0/nzc-test/DDATA/edge-1/meter-1",
                  encode(2, [metric("Energy/Import", value=6.0), metric("Never/Announced",
                                                                        value=1.0)]), st)
    assert [r.value for r in ok] == [6.0]
    assert [d.code for d in bad] == ["unknown_metric"]
    for seq in (None, 999):
        d = one_code("spBv1.0/nzc-test/DDATA/edge-1/meter-1",
                     encode(seq, [metric(alias=7, value=7.0)]), st)
        assert d.code == "schema" and "seq" in d.reason


def test_sparkplug_state_stays_bounded_under_a_flood_of_nodes() -> None:
    st = SparkplugState(max_nodes=100)
    for i in range(2_000):
        run(f"spBv1.0/g/NDATA/n{i}", encode(1, []), st)  # never born: no state kept
        run(f"spBv1.0/g/NBIRTH/b{i}", encode(0, []), st)
    assert len(st) == 100


# ------------------------------------------------------------ item 1: NUL and surrogates


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        (TOPIC, b"\x00", "malformed_json"),
        (TOPIC, json.dumps({**reading(), "a\x00b": 1}).encode(), "schema"),
        (TOPIC, json.dumps(reading(meter="e2e\x00el")).encode(), "schema"),
        (TOPIC, json.dumps(reading(meter="\ud800")).encode(), "schema"),
        (TOPIC, json.dumps(reading(unit="kWh\ud800")).encode(), "schema"),
        (f"{SHELLY2}/events/rpc", json.dumps({
            "src": "shelly\x00x", "method": "NotifyStatus",
            "params": {"ts": NOW / 1000, "emdata:0": {"total_act": 1}}}).encode(), "schema"),
        (f"{SHELLY2}/events/rpc", json.dumps({
            "src": "\udfff", "method": "NotifyStatus",
            "params": {"ts": NOW / 1000, "emdata:0": {"total_act": 1}}}).encode(), "schema"),
        (NEURON_TOPIC, json.dumps({"node": "dlt645\x00bus1", "group": "energy",
                                   "timestamp": NOW, "values": {}}).encode(), "schema"),
        (NEURON_TOPIC, json.dumps({"node": "dlt645-bus1", "group": "\ud800",
                                   "timestamp": NOW, "values": {}}).encode(), "schema"),
    ],
)
def test_nul_and_lone_surrogates_are_rejected_with_printable_reasons(
        topic: str, payload: bytes, code: str) -> None:
    d = one_code(topic, payload)
    assert d.code == code


def test_nul_in_a_sparkplug_metric_name_is_an_item_error() -> None:
    st = spb_session()
    ok, bad = run("spBv1.0/nzc-test/DBIRTH/edge-1/meter-1", encode(1, [
        metric("Energy\x00Import", 7, DOUBLE, 5.0, NOW - 1000),
        metric("Energy/Import", 8, DOUBLE, 6.0, NOW - 1000)]), st)
    assert [r.value for r in ok] == [6.0]
    assert [d.code for d in bad] == ["schema"] and "\\x00" in bad[0].reason


def test_control_characters_in_a_sparkplug_topic_are_a_topic_error() -> None:
    assert one_code("spBv1.0/nzc-test/NBIRTH/edge\x00", encode(0, [])).code == "topic"


# ------------------------------------------------------------ issue 9: gateway binding

TWO_GATEWAYS = parse_registry({"sites": [{
    "id": "s1", "name": "two gateways", "type": "park", "province": "sichuan",
    "city": "Chengdu", "baseline_year": 2022, "meters": [
        {"id": "a-el", "carrier": "grid_import", "unit": "Wh", "gateway": "gw-a",
         "register_max": 1e12, "max_rate_per_h": 1e6,
         "source": {"format": "shelly_gen2", "device": "shellypro3em-aaaa",
                    "channel": "emdata:0/total_act"}},
        {"id": "b-el", "carrier": "grid_import", "unit": "Wh", "gateway": "gw-b",
         "register_max": 1e12, "max_rate_per_h": 1e6,
         "source": {"format": "shelly_gen2", "device": "shellypro3em-bbbb",
                    "channel": "emdata:0/total_act"}},
        {"id": "a-neu", "carrier": "grid_import", "unit": "kWh", "gateway": "gw-a",
         "register_max": 1e6, "max_rate_per_h": 1e4,
         "source": {"format": "neuron", "device": "bus-a/energy/000000000001",
                    "channel": "00-00-00-00"}},
        {"id": "b-neu", "carrier": "grid_import", "unit": "kWh", "gateway": "gw-b",
         "register_max": 1e6, "max_rate_per_h": 1e4,
         "source": {"format": "neuron", "device": "bus-b/energy/000000000002",
                    "channel": "00-00-00-00"}},
    ]}]})


def _shelly(src: str) -> dict[str, Any]:
    return {"src": src, "method": "NotifyStatus",
            "params": {"ts": (NOW - 1000) / 1000, "emdata:0": {"total_act": 5000.0}}}


def test_our_format_rejects_a_meter_of_another_gateway() -> None:
    d = one_code("nzc/v1/test-site/gw3/readings", reading())  # e2e-el is on gw1
    assert (d.code, d.meter_id) == ("gateway_mismatch", "e2e-el")
    assert "'gw1'" in d.reason and "'gw3'" in d.reason
    ok, _ = run("nzc/v1/test-site/gw3/readings", reading(meter="pub-el"))
    assert [r.meter_id for r in ok] == ["pub-el"]


def test_shelly_payload_naming_a_device_of_another_gateway_is_rejected() -> None:
    ok, bad = run("shellypro3em-aaaa/events/rpc", _shelly("shellypro3em-aaaa"),
                  registry=TWO_GATEWAYS)
    assert [r.meter_id for r in ok] == ["a-el"] and bad == []
    ok, bad = run("shellypro3em-aaaa/events/rpc", _shelly("shellypro3em-bbbb"),
                  registry=TWO_GATEWAYS)
    assert ok == [] and [(d.code, d.meter_id) for d in bad] == [("device_not_on_gateway",
                                                                   "b-el")]
    ok, bad = run("attacker/events/rpc", _shelly("shellypro3em-aaaa"), registry=TWO_GATEWAYS)
    assert ok == [] and [d.code for d in bad] == ["device_not_on_gateway"]
    assert "'attacker'" in bad[0].reason


def test_neuron_upload_is_bound_to_the_node_and_group_of_its_topic() -> None:
    upload = {"timestamp": NOW - 1000, "node": "bus-b", "group": "energy",
              "values": {"000000000002#00-00-00-00": 12.0}}
    ok, _ = run("/neuron/app/bus-b/energy", upload, registry=TWO_GATEWAYS)
    assert [r.meter_id for r in ok] == ["b-neu"]
    for topic in ("/neuron/app/bus-a/energy", "/neuron/app/upload", "anything/else"):
        ok, bad = run(topic, upload, registry=TWO_GATEWAYS)
        assert ok == [] and [(d.code, d.meter_id) for d in bad] == [
            ("device_not_on_gateway", "b-neu")], topic


# ------------------------------------------------------------ issue 9: ACL topics


@pytest.mark.parametrize("name", ["campus.yaml", "commercial.yaml", "industrial_park.yaml"])
def test_device_topics_cover_every_simulated_message_of_the_device(name: str) -> None:
    """The topic filters the ACL generator gets for a device (device_topics) match the
    topics the simulator publishes that device's readings on, and on nothing of another
    gateway's devices."""
    reg = load_registry(SITES_DIR / name)
    sc = Scenario(reg, start=datetime(2026, 5, 4, 1, 0, tzinfo=UTC), interval_s=60, seed=3)
    checked = 0
    for o in sc.step() + sc.step():
        for r in o.message.carried:
            src = r.meter.source
            if src is None or src.format == "nzc":
                continue
            filters = device_topics(src.format, src.device)
            assert any(topic_matches_sub(f, o.topic) for f in filters), (o.topic, filters)
            others = [m for m in reg.meters.values() if m.source is not None
                      and m.gateway_id != r.meter.gateway_id]
            for m in others:
                assert m.source is not None
                assert not any(topic_matches_sub(f, o.topic)
                               for f in device_topics(m.source.format, m.source.device))
            checked += 1
    assert checked > 10
