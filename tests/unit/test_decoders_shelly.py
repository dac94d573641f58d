"""Shelly decoders: Gen1 per-value topics and Gen2+ NotifyStatus notifications, in the shapes
of the Shelly API documentation (Gen1 "Shelly 3EM MQTT", Gen2 "EMData" / "EM1Data")."""

from __future__ import annotations

import json

import pytest

from ingest.decoders import DecodeError, shelly

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DEV2 = "shellypro3em-c8f09e8a1b2c"


def test_gen1_total_and_total_returned_in_wh() -> None:
    (r,) = shelly.decode_gen1("shellies/shellyem3-ECFABC0A1B2C/emeter/1/total", b"123456.7",
                              NOW).readings
    assert (r.format, r.device, r.channel) == ("shelly_gen1", "shellyem3-ECFABC0A1B2C",
                                               "emeter/1/total")
    assert r.value == 123456.7 and r.unit == "Wh" and r.kind == "register"
    assert r.ts_ms is None and r.local_time is None  # Gen1 has no time: receive time
    (r,) = shelly.decode_gen1("shellies/shellyem3-ECFABC0A1B2C/emeter/2/total_returned",
                              b" 42 ", NOW).readings
    assert r.channel == "emeter/2/total_returned" and r.value == 42.0


@pytest.mark.parametrize("field", ["power", "voltage", "current", "pf", "energy",
                                   "returned_energy", "reactive_power"])
def test_gen1_other_emeter_values_are_ignored(field: str) -> None:
    res = shelly.decode_gen1(f"shellies/shellyem3-X/emeter/0/{field}", b"230.1", NOW)
    assert res.readings == () and res.events == ()


@pytest.mark.parametrize(
    ("topic", "payload", "code", "fragment"),
    [
        ("shellies/shellyem3-X/emeter/0/total", b"n/a", "schema", "is not a number"),
        ("shellies/shellyem3-X/emeter/0/total", b"-5", "schema", "negative"),
        ("shellies/shellyem3-X/emeter/0/total", b"nan", "schema", "finite"),
        ("shellies/shellyem3-X/emeter/x/total", b"5", "topic", "emeter index"),
        ("shellies//emeter/0/total", b"5", "topic", "shellies/<id>/emeter"),
    ],
)
def test_gen1_malformed(topic: str, payload: bytes, code: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as err:
        shelly.decode_gen1(topic, payload, NOW)
    assert err.value.code == code and fragment in str(err.value)


def _notify(params: dict[str, object], method: str = "NotifyStatus",
            src: str | None = DEV2) -> bytes:
    doc: dict[str, object] = {"dst": f"{DEV2}/events", "method": method, "params": params}
    if src is not None:
        doc["src"] = src
    return json.dumps(doc).encode()


def test_gen2_emdata_and_em1data() -> None:
    params = {"ts": 1767225540.25,
              "emdata:0": {"id": 0, "a_total_act_energy": 100.0, "a_total_act_ret_energy": 0.0,
                           "b_total_act_energy": 200.0, "b_total_act_ret_energy": 1.0,
                           "c_total_act_energy": 300.0, "c_total_act_ret_energy": 2.0,
                           "total_act": 600.0, "total_act_ret": 3.0},
              "em1data:1": {"id": 1, "total_act_energy": 6644.9, "total_act_ret_energy": 2595.26},
              "switch:0": {"id": 0, "output": True}}
    res = shelly.decode_gen2(f"{DEV2}/events/rpc", _notify(params), NOW)
    got = {r.channel: r.value for r in res.readings}
    assert got == {"emdata:0/total_act": 600.0, "emdata:0/total_act_ret": 3.0,
                   "emdata:0/a_total_act_energy": 100.0, "emdata:0/b_total_act_energy": 200.0,
                   "emdata:0/c_total_act_energy": 300.0,
                   "emdata:0/a_total_act_ret_energy": 0.0,
                   "emdata:0/b_total_act_ret_energy": 1.0,
                   "emdata:0/c_total_act_ret_energy": 2.0,
                   "em1data:1/total_act_energy": 6644.9,
                   "em1data:1/total_act_ret_energy": 2595.26}
    assert {(r.format, r.device, r.unit, r.ts_ms) for r in res.readings} == {
        ("shelly_gen2", DEV2, "Wh", NOW - 59_750)}


def test_gen2_device_is_src_else_topic_prefix() -> None:
    params = {"emdata:0": {"id": 0, "total_act": 1.0}}
    (r,) = shelly.decode_gen2("site/a/custom-prefix/events/rpc", _notify(params), NOW).readings
    assert r.device == DEV2 and r.ts_ms is None
    (r,) = shelly.decode_gen2("site/a/custom-prefix/events/rpc", _notify(params, src=None),
                              NOW).readings
    assert r.device == "site/a/custom-prefix"


@pytest.mark.parametrize(
    "payload",
    [_notify({"emdata:0": {"total_act": 5}}, method="NotifyEvent"),
     _notify({"ts": 1.0, "switch:0": {"output": False}}),
     _notify({"ts": 1.0, "emdata:0": {"id": 0}})],
)
def test_gen2_notifications_without_energy_are_ignored(payload: bytes) -> None:
    assert shelly.decode_gen2(f"{DEV2}/events/rpc", payload, NOW).readings == ()


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        (b"\xff", "malformed_json", "not UTF-8 JSON"),
        (_notify({"ts": "now", "emdata:0": {"total_act": 1}}), "schema", "params.ts"),
        (_notify({"emdata:0": {"total_act": "1"}}), "schema", "params.emdata:0.total_act"),
        (_notify({"emdata:0": [1]}), "schema", "emdata status object"),
        (json.dumps({"method": "NotifyStatus", "params": 5}).encode(), "schema", "params"),
        (_notify({"emdata:0": {"total_act": 1}}, src=""), "schema", "src"),
    ],
)
def test_gen2_malformed(payload: bytes, code: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as err:
        shelly.decode_gen2(f"{DEV2}/events/rpc", payload, NOW)
    assert err.value.code == code and fragment in str(err.value)


def test_field_table_is_documented() -> None:
    assert shelly.__doc__ is not None
    for spec in shelly.FIELDS:
        assert spec.path.split(".")[-1].split("/")[-1] in shelly.__doc__
