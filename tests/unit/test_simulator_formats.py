"""Device-format encoders (simulators.formats): each message has the shape its vendor
documents (topics, field names, units, time conventions, Sparkplug B session rules)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carbon.registry import Meter, Registry, parse_registry
from ingest.decoders.sparkplug_proto import payload_class
from simulators.formats import (
    NEURON_READ_ERROR,
    Message,
    MeterReading,
    NeuronEncoder,
    NzcEncoder,
    ShellyGen1Encoder,
    ShellyGen2Encoder,
    SparkplugEncoder,
    TasmotaEncoder,
    Zigbee2MqttEncoder,
    corrupt,
    encoder_for,
    gateway_format,
    in_unit,
)

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


def _m(mid: str, carrier: str, unit: str, gw: str, fmt: str | None = None,
       device: str | None = None, channel: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"id": mid, "carrier": carrier, "unit": unit, "gateway": gw,
                         "register_max": 1e9, "max_rate_per_h": 1e6}
    if fmt is not None:
        d["source"] = {"format": fmt, "device": device}
        if channel is not None:
            d["source"]["channel"] = channel
    return d


REG: Registry = parse_registry({"sites": [{
    "id": "s1", "name": "s1", "type": "campus", "province": "guangxi", "city": "Hechi",
    "baseline_year": 2022, "timezone": "Asia/Shanghai",
    "meters": [
        _m("j-el", "grid_import", "kWh", "gw-j"),
        _m("j-gas", "natural_gas", "m3", "gw-j"),
        _m("t-el", "grid_import", "Wh", "gw-t", "tasmota", "tasmota_5A3F21"),
        _m("g1-in", "grid_import", "Wh", "gw-g1", "shelly_gen1", "shellyem-B9F2A1C3D401",
           "emeter/0/total"),
        _m("g1-out", "grid_export", "kWh", "gw-g1", "shelly_gen1", "shellyem-B9F2A1C3D401",
           "emeter/0/total_returned"),
        _m("g2-in", "grid_import", "Wh", "gw-g2", "shelly_gen2", "shellypro3em-0cb815fc1a01",
           "emdata:0/total_act"),
        _m("g2-out", "grid_export", "Wh", "gw-g2", "shelly_gen2", "shellypro3em-0cb815fc1a01",
           "emdata:0/total_act_ret"),
        _m("g2-ch1", "grid_import", "kWh", "gw-g2", "shelly_gen2", "shellyproem50-08f9e0e60a11",
           "em1data:1/total_act_energy"),
        _m("z-el", "grid_import", "kWh", "gw-z", "zigbee2mqtt", "pump_room_meter"),
        _m("z-pv", "onsite_renewable", "kWh", "gw-z", "zigbee2mqtt", "roof_pv",
           "produced_energy"),
        _m("n-a", "grid_import", "kWh", "gw-n", "neuron", "bus1/energy/451200300001",
           "00-00-00-00"),
        _m("n-b", "grid_export", "kWh", "gw-n", "neuron", "bus1/energy/451200300001",
           "00-02-00-00"),
        _m("n-c", "grid_import", "kWh", "gw-n", "neuron", "bus1/energy/451200300002",
           "00-00-00-00"),
        _m("sp-a", "grid_import", "kWh", "gw-s", "sparkplug", "plant/edge1/meter-a",
           "Energy/Import/Total"),
        _m("sp-b", "grid_export", "kWh", "gw-s", "sparkplug", "plant/edge1/meter-a",
           "Energy/Export/Total"),
        _m("sp-c", "natural_gas", "m3", "gw-s", "sparkplug", "plant/edge1/gas"),
    ],
}]})
M: dict[str, Meter] = dict(REG.meters)


def rd(mid: str, register: float, ts: datetime = T0, rate: float | None = None,
       historical: bool = False) -> MeterReading:
    return MeterReading(M[mid], ts, register, rate, historical)


def doc(msg: Message) -> Any:
    return json.loads(msg.payload)


def test_our_json_batch() -> None:
    (msg,) = NzcEncoder("s1", "gw-j").encode([rd("j-el", 10452.31), rd("j-gas", 3310.2)], T0)
    assert msg.topic == "nzc/v1/s1/gw-j/readings"
    assert doc(msg) == {"readings": [
        {"meter": "j-el", "ts": "2026-03-02T02:00:00Z", "register": 10452.31, "unit": "kWh"},
        {"meter": "j-gas", "ts": "2026-03-02T02:00:00Z", "register": 3310.2, "unit": "m3"},
    ]}
    assert msg.readings == 2 and msg.meter_ids == ("j-el", "j-gas")


def test_tasmota_sensor_local_time_and_kwh() -> None:
    from zoneinfo import ZoneInfo

    enc = TasmotaEncoder(ZoneInfo("Asia/Shanghai"))
    # Wh meter: 1,234,567.8 Wh -> 1234.567 kWh (floored to Tasmota's 3 decimals)
    (m1,) = enc.encode([rd("t-el", 1_234_567.8, rate=2500.0)], T0)
    assert m1.topic == "tele/tasmota_5A3F21/SENSOR"
    d = doc(m1)
    assert d["Time"] == "2026-03-02T10:00:00"  # local time, no offset
    e = d["ENERGY"]
    assert e["Total"] == 1234.567 and e["Power"] == 2500 and e["Today"] == 0.0
    assert set(e) >= {"TotalStartTime", "Total", "Yesterday", "Today", "Period", "Power",
                      "ApparentPower", "ReactivePower", "Factor", "Voltage", "Current"}
    (m2,) = enc.encode([rd("t-el", 1_236_567.8, T0 + timedelta(minutes=15))], T0)
    assert doc(m2)["ENERGY"]["Today"] == 2.0 and doc(m2)["ENERGY"]["Period"] == 2000
    # next local day: Today restarts, Yesterday is the day's total
    (m3,) = enc.encode([rd("t-el", 1_240_567.8, T0 + timedelta(hours=15))], T0)
    assert doc(m3)["ENERGY"]["Yesterday"] == 2.0 and doc(m3)["ENERGY"]["Today"] == 0.0
    assert doc(m3)["Time"] == "2026-03-03T01:00:00"


def test_shelly_gen1_per_value_topics_in_wh() -> None:
    msgs = ShellyGen1Encoder().encode([rd("g1-in", 123456.0), rd("g1-out", 12.3456)], T0)
    assert [(m.topic, m.payload) for m in msgs] == [
        ("shellies/shellyem-B9F2A1C3D401/emeter/0/total", b"123456.0"),
        ("shellies/shellyem-B9F2A1C3D401/emeter/0/total_returned", b"12345.6"),  # kWh -> Wh
    ]
    extras = ShellyGen1Encoder(extras=True).encode([rd("g1-in", 1.0, rate=500.0)], T0)
    assert [m.topic.rsplit("/", 1)[1] for m in extras] == ["total", "power", "voltage"]
    assert [m.readings for m in extras] == [1, 0, 0] and extras[1].payload == b"500.00"


def test_shelly_gen2_notify_status() -> None:
    msgs = ShellyGen2Encoder().encode(
        [rd("g2-in", 5_000_000.0), rd("g2-out", 250.0), rd("g2-ch1", 6644.9)], T0)
    assert [m.topic for m in msgs] == ["shellypro3em-0cb815fc1a01/events/rpc",
                                       "shellyproem50-08f9e0e60a11/events/rpc"]
    d = doc(msgs[0])
    assert d == {"src": "shellypro3em-0cb815fc1a01", "dst": "shellypro3em-0cb815fc1a01/events",
                 "method": "NotifyStatus",
                 "params": {"ts": T0.timestamp(),
                            "emdata:0": {"id": 0, "total_act": 5_000_000.0,
                                         "total_act_ret": 250.0}}}
    assert msgs[0].readings == 2
    assert doc(msgs[1])["params"]["em1data:1"] == {"id": 1, "total_act_energy": 6644900.0}


def test_zigbee2mqtt_state_with_last_seen() -> None:
    msgs = Zigbee2MqttEncoder().encode(
        [rd("z-el", 1523.4299, rate=0.82), rd("z-pv", 77.777)], T0 + timedelta(seconds=1))
    assert [m.topic for m in msgs] == ["zigbee2mqtt/pump_room_meter", "zigbee2mqtt/roof_pv"]
    d = doc(msgs[0])
    assert d["energy"] == 1523.42 and d["power"] == 820.0  # rate 0.82 kWh/h
    assert d["last_seen"] == "2026-03-02T02:00:00.000Z"  # the reading time, not the send time
    assert "energy" not in doc(msgs[1]) and doc(msgs[1])["produced_energy"] == 77.77


@pytest.mark.parametrize("variant", ["values", "tags"])
def test_neuron_upload_with_dlt645_tags_and_read_errors(variant: str) -> None:
    enc = NeuronEncoder("north", {k: M[k] for k in ("n-a", "n-b", "n-c")}, variant=variant)
    (msg,) = enc.encode([rd("n-a", 10452.319), rd("n-b", 3.0)], T0, offline=frozenset({"n-c"}))
    assert msg.topic == "/neuron/north/bus1/energy"
    d = doc(msg)
    assert (d["timestamp"], d["node"], d["group"]) == (int(T0.timestamp() * 1000), "bus1",
                                                       "energy")
    if variant == "values":
        assert d["values"] == {"451200300001#00-00-00-00": 10452.31,  # 0.01 kWh steps
                               "451200300001#00-02-00-00": 3.0}
        assert d["errors"] == {"451200300002#00-00-00-00": NEURON_READ_ERROR}
    else:
        assert d["tags"] == [
            {"name": "451200300001#00-00-00-00", "value": 10452.31},
            {"name": "451200300001#00-02-00-00", "value": 3.0},
            {"name": "451200300002#00-00-00-00", "error": NEURON_READ_ERROR},
        ]
    # a group whose only meter is down still reports the error
    (only,) = enc.encode([], T0, offline=frozenset({"n-c"}))
    assert only.readings == 0 and only.topic == "/neuron/north/bus1/energy"
    with pytest.raises(ValueError, match="values, tags"):
        NeuronEncoder("north", variant="json")


def sp(msg: Message) -> Any:
    p = payload_class()()
    p.ParseFromString(msg.payload)
    return p


def test_sparkplug_session() -> None:
    meters = [M["sp-a"], M["sp-b"], M["sp-c"]]
    enc = SparkplugEncoder(meters, bd_seq=3)
    first = enc.encode([rd("sp-a", 10.0), rd("sp-b", 1.0), rd("sp-c", 5.0)], T0)
    assert [m.topic for m in first] == ["spBv1.0/plant/NBIRTH/edge1",
                                        "spBv1.0/plant/DBIRTH/edge1/meter-a",
                                        "spBv1.0/plant/DBIRTH/edge1/gas"]
    nb = sp(first[0])
    assert nb.seq == 0
    names = {m.name: m for m in nb.metrics}
    assert names["bdSeq"].long_value == 3 and names["bdSeq"].datatype == 4  # Int64
    assert names["Node Control/Rebirth"].datatype == 11
    assert names["Node Control/Rebirth"].boolean_value is False
    db = sp(first[1])
    assert db.seq == 1
    assert [(m.name, m.alias, m.datatype, m.double_value) for m in db.metrics] == [
        ("Energy/Import/Total", 1, 10, 10.0), ("Energy/Export/Total", 2, 10, 1.0)]
    assert db.metrics[0].timestamp == int(T0.timestamp() * 1000)
    assert list(db.metrics[0].properties.keys) == ["engUnit"]
    assert db.metrics[0].properties.values[0].string_value == "kWh"
    gas = sp(first[2])
    assert gas.metrics[0].name == "Energy/Total"  # no channel: default metric name
    assert gas.metrics[0].properties.values[0].string_value == "m3"
    # data by alias only, seq going on and wrapping at 256
    t1 = T0 + timedelta(minutes=1)
    data = enc.encode([rd("sp-a", 11.0, t1), rd("sp-c", 6.0, t1, historical=True)], t1)
    assert [m.topic for m in data] == ["spBv1.0/plant/DDATA/edge1/meter-a",
                                       "spBv1.0/plant/DDATA/edge1/gas"]
    dd = sp(data[0])
    assert dd.seq == 3 and dd.metrics[0].alias == 1 and not dd.metrics[0].HasField("name")
    assert dd.metrics[0].double_value == 11.0 and not dd.metrics[0].is_historical
    assert sp(data[1]).metrics[0].is_historical
    seqs = [dd.seq, sp(data[1]).seq]
    for k in range(300):
        t = T0 + timedelta(minutes=2 + k)
        seqs.extend(sp(m).seq for m in enc.encode([rd("sp-a", 12.0 + k, t)], t))
    assert seqs == [(3 + i) % 256 for i in range(len(seqs))]
    # a device whose meters are all down dies, and is born again with its values
    t2 = T0 + timedelta(hours=6)
    down = enc.encode([rd("sp-a", 400.0, t2)], t2, offline=frozenset({"sp-c"}))
    assert [m.topic for m in down] == ["spBv1.0/plant/DDATA/edge1/meter-a",
                                       "spBv1.0/plant/DDEATH/edge1/gas"]
    assert not sp(down[1]).metrics and down[1].kind == "death"
    back = enc.encode([rd("sp-c", 9.0, t2)], t2)
    assert back[0].topic == "spBv1.0/plant/DBIRTH/edge1/gas" and back[0].readings == 1
    assert sp(back[0]).metrics[0].name == "Energy/Total"
    (death,) = enc.close(t2)
    assert death.topic == "spBv1.0/plant/NDEATH/edge1"
    nd = sp(death)
    assert not nd.HasField("seq") and nd.metrics[0].name == "bdSeq"
    assert nd.metrics[0].long_value == 3
    assert enc.close(t2) == []


def test_corrupt_payloads_do_not_parse() -> None:
    js = b'{"readings": [{"meter": "a", "ts": 1, "register": 1, "unit": "kWh"}]}'
    with pytest.raises(json.JSONDecodeError):
        json.loads(corrupt("nzc", js))
    with pytest.raises(ValueError):
        float(corrupt("shelly_gen1", b"123.4"))
    enc = SparkplugEncoder([M["sp-a"]])
    (_, dbirth) = enc.encode([rd("sp-a", 1.0)], T0)
    from google.protobuf.message import DecodeError

    with pytest.raises(DecodeError):
        payload_class()().ParseFromString(corrupt("sparkplug", dbirth.payload))


def test_gateway_format_and_factory_checks() -> None:
    assert gateway_format([M["j-el"], M["j-gas"]]) == "nzc"
    with pytest.raises(ValueError, match="mixes formats"):
        gateway_format([M["j-el"], M["t-el"]])
    site = REG.sites["s1"]
    gas_on_tasmota = parse_registry({"sites": [{
        "id": "s2", "name": "s2", "type": "park", "province": "sichuan", "city": "Chengdu",
        "baseline_year": 2022, "meters": [
            _m("g", "natural_gas", "m3", "gw", "tasmota", "tasmota_000001")]}]})
    with pytest.raises(ValueError, match="electric energy only"):
        encoder_for(gas_on_tasmota.sites["s2"], "gw", list(gas_on_tasmota.meters.values()))
    assert encoder_for(site, "gw-n", [M["n-a"]]).format == "neuron"
    assert in_unit(M["t-el"], 2500.0, "kWh") == 2.5
