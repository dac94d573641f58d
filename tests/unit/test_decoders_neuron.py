"""Neuron decoder: uploads in Neuron's documented ``values`` and ``tags`` formats, with
DL/T 645-2007 tags named after their addresses."""

from __future__ import annotations

import json

import pytest

from ingest.decoders import DecodeError, neuron

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TOPIC = "/neuron/north-1/dlt645-bus1/energy"


def _values(values: dict[str, object], errors: dict[str, object] | None = None) -> bytes:
    return json.dumps({"timestamp": NOW - 1000, "node": "dlt645-bus1", "group": "energy",
                       "values": values, "errors": errors or {}}).encode()


def test_values_format_energy_tags_only() -> None:
    res = neuron.decode(TOPIC, _values({
        "230100004521#00-00-00-00": 10452.31,   # combined active, total
        "230100004521#00-01-00-00": 10400.0,    # forward active
        "230100004521#00-02-00-00": 52.31,      # reverse active
        "230100004521#00-00-01-00": 4000.5,     # combined active, tariff 1
        "230100004521#00-15-00-00": 3500.0,     # phase A forward active
        "230100004521#00-00-00-01": 10000.0,    # last settlement day: history, not current
        "230100004521#00-03-00-00": 77.0,       # combined reactive 1 [kvarh]: not kWh
        "230100004521#02-01-01-00": 229.9,      # phase A voltage
        "pump-power": 12.0,                     # a tag not named after its address
        "230100004522#00-00-00-00": 88.5,
    }), NOW)
    got = {(r.device, r.channel): r.value for r in res.readings}
    assert got == {
        ("dlt645-bus1/energy/230100004521", "00-00-00-00"): 10452.31,
        ("dlt645-bus1/energy/230100004521", "00-01-00-00"): 10400.0,
        ("dlt645-bus1/energy/230100004521", "00-02-00-00"): 52.31,
        ("dlt645-bus1/energy/230100004521", "00-00-01-00"): 4000.5,
        ("dlt645-bus1/energy/230100004521", "00-15-00-00"): 3500.0,
        ("dlt645-bus1/energy/230100004522", "00-00-00-00"): 88.5,
    }
    assert {(r.unit, r.ts_ms, r.kind) for r in res.readings} == {("kWh", NOW - 1000,
                                                                  "register")}
    assert res.events == ()


def test_tags_format_with_read_errors_and_lower_case_hex() -> None:
    payload = json.dumps({"node": "dlt645-bus1", "group": "energy", "timestamp": NOW,
                          "tags": [{"name": "230100004521#00-00-00-00", "value": 5.5},
                                   {"name": "230100004523#00-3d-00-00", "value": 1.25},
                                   {"name": "230100004522#00-00-00-00", "error": 3002},
                                   {"name": "230100004522#02-01-01-00", "error": 3002}]})
    res = neuron.decode("/neuron/north-1/upload", payload.encode(), NOW)
    assert [(r.device, r.channel, r.value) for r in res.readings] == [
        ("dlt645-bus1/energy/230100004521", "00-00-00-00", 5.5),
        ("dlt645-bus1/energy/230100004523", "00-3D-00-00", 1.25)]
    (e,) = res.events  # only the energy tag's error matters
    assert (e.code, e.device, e.channel) == ("device_read_error",
                                             "dlt645-bus1/energy/230100004522", "00-00-00-00")
    assert "3002" in e.reason


def test_a_bad_value_is_an_item_event_not_a_lost_message() -> None:
    res = neuron.decode(TOPIC, _values({"230100004521#00-00-00-00": "n/a",
                                        "230100004522#00-00-00-00": 3.0}), NOW)
    assert [r.value for r in res.readings] == [3.0]
    (e,) = res.events
    assert e.code == "schema" and "230100004521#00-00-00-00" in e.reason


@pytest.mark.parametrize(
    ("topic", "payload"),
    [("/neuron/north-1/heartbeat", b'{"version":"2.4.0","timestamp":1,"states":[]}'),
     ("/neuron/north-1/read/resp", b'{"uuid":"x","tags":[]}'),
     ("custom/topic", b'{"uuid":"x","tags":[]}')],
)
def test_non_upload_messages_are_ignored(topic: str, payload: bytes) -> None:
    res = neuron.decode(topic, payload, NOW)
    assert res.readings == () and res.events == ()


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        (b"[", "malformed_json", "not UTF-8 JSON"),
        (b'{"group":"g","timestamp":1,"values":{}}', "schema", "node is required"),
        (b'{"node":"n","group":"g","timestamp":"now","values":{}}', "schema", "timestamp"),
        (b'{"node":"n","group":"g","timestamp":1,"tags":{}}', "schema", "tags must be a list"),
        (b'{"node":"n","group":"g","timestamp":1,"tags":[{"value":1}]}', "schema", "tags[0]"),
        (b'{"node":"n","group":"g","timestamp":1,"values":[]}', "schema", "values and errors"),
    ],
)
def test_malformed(payload: bytes, code: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as err:
        neuron.decode(TOPIC, payload, NOW)
    assert err.value.code == code and fragment in str(err.value)


def test_upload_detection_for_custom_topics() -> None:
    assert neuron.is_upload(json.loads(_values({})))
    assert not neuron.is_upload({"node": "n", "group": "g", "timestamp": 1})
    assert not neuron.is_upload([1])
