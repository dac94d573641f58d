"""Zigbee2MQTT decoder: device state messages as Zigbee2MQTT publishes them."""

from __future__ import annotations

import pytest

from ingest.decoders import DecodeError, zigbee2mqtt

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_energy_and_produced_energy() -> None:
    payload = (b'{"energy":1523.42,"produced_energy":12.5,"power":820,"voltage":229.8,'
               b'"current":3.6,"linkquality":120,"last_seen":"2026-01-01T07:58:00+08:00"}')
    res = zigbee2mqtt.decode("zigbee2mqtt/pump-room-meter", payload, NOW)
    got = {r.channel: (r.value, r.unit, r.ts_ms) for r in res.readings}
    assert got == {None: (1523.42, "kWh", NOW - 120_000),
                   "produced_energy": (12.5, "kWh", NOW - 120_000)}
    assert {r.device for r in res.readings} == {"pump-room-meter"}


def test_epoch_last_seen_slash_names_and_no_time() -> None:
    (r,) = zigbee2mqtt.decode("zigbee2mqtt/floor 2/plug", b'{"energy":3,"last_seen":1767225000000}',
                              NOW).readings
    assert r.device == "floor 2/plug" and r.ts_ms == 1_767_225_000_000
    (r,) = zigbee2mqtt.decode("zigbee2mqtt/plug", b'{"energy":3}', NOW).readings
    assert r.ts_ms is None


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("zigbee2mqtt/bridge", b'{"state":"online"}'),
        ("zigbee2mqtt/bridge/devices", b"[]"),
        ("zigbee2mqtt/plug/set", b'{"state":"ON"}'),
        ("zigbee2mqtt/plug/availability", b'{"state":"offline"}'),
        ("zigbee2mqtt/thermometer", b'{"temperature":21.3,"humidity":40}'),
        ("zigbee2mqtt/plug", b'{"energy":null,"power":null}'),
    ],
)
def test_ignored(topic: str, payload: bytes) -> None:
    res = zigbee2mqtt.decode(topic, payload, NOW)
    assert res.readings == () and res.events == ()


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        (b"ON", "malformed_json", "not UTF-8 JSON"),
        (b'"ON"', "schema", "JSON object"),
        (b'{"energy":"12"}', "schema", "energy must be a number"),
        (b'{"produced_energy":-2}', "schema", "negative"),
        (b'{"energy":1,"last_seen":"2026-01-01 08:00"}', "schema", "no UTC offset"),
        (b'{"energy":1,"last_seen":true}', "schema", "last_seen"),
    ],
)
def test_malformed(payload: bytes, code: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as err:
        zigbee2mqtt.decode("zigbee2mqtt/plug", payload, NOW)
    assert err.value.code == code and fragment in str(err.value)
