"""Sparkplug B decoder: protobuf payloads, aliases, sequence numbers, births and deaths."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from ingest.decoders import DecodeError
from ingest.decoders import sparkplug_proto as sp_proto
from ingest.decoders.sparkplug import SparkplugState, parse_payload
from ingest.decoders.sparkplug_proto import payload_class

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
G, N, D = "nzc-test", "edge-1", "meter-1"
DOUBLE, FLOAT, INT8, INT32, INT64, UINT32, UINT64, BOOLEAN, STRING = 10, 9, 1, 3, 4, 7, 8, 11, 12

# Encoded by Eclipse Tahu's sparkplug-payload 1.0.3 (tests/node/encode_sparkplug.js) from
# {timestamp: NOW, seq: 2, metrics: [{name: "Energy", alias: 5, type: "Double", value: 12.5,
#  timestamp: NOW, properties: {engUnit: {type: "String", value: "kWh"}}},
#  {alias: 6, type: "Int32", value: -3}]}
TAHU_DDATA = base64.b64decode(
    "CIDQ6ra3MxIwCgZFbmVyZ3kQBRiA0Oq2tzMgCkoSCgdlbmdVbml0EgcIDEIDa1doaQAAAAAAAClAEgoQBiADUP3///8PGAI=")


def metric(name: str | None = None, alias: int | None = None, datatype: int = DOUBLE,
           value: Any = None, ts: int | None = None, unit: str | None = None,
           is_null: bool = False) -> dict[str, Any]:
    return {"name": name, "alias": alias, "datatype": datatype, "value": value, "ts": ts,
            "unit": unit, "is_null": is_null}


def encode(seq: int | None, metrics: list[dict[str, Any]], ts: int | None = NOW) -> bytes:
    """Build a payload with the protobuf runtime (the library, not our decoder)."""
    p = payload_class()()
    if ts is not None:
        p.timestamp = ts
    if seq is not None:
        p.seq = seq
    for m in metrics:
        pm = p.metrics.add()
        if m["name"] is not None:
            pm.name = m["name"]
        if m["alias"] is not None:
            pm.alias = m["alias"]
        if m["ts"] is not None:
            pm.timestamp = m["ts"]
        pm.datatype = m["datatype"]
        if m["is_null"]:
            pm.is_null = True
        elif m["datatype"] in (1, 2, 3, 5, 6):
            pm.int_value = m["value"] & 0xFFFFFFFF
        elif m["datatype"] in (4, 7, 8, 13):
            pm.long_value = m["value"] & 0xFFFFFFFFFFFFFFFF
        elif m["datatype"] == FLOAT:
            pm.float_value = m["value"]
        elif m["datatype"] == DOUBLE:
            pm.double_value = m["value"]
        elif m["datatype"] == BOOLEAN:
            pm.boolean_value = m["value"]
        elif m["datatype"] == STRING:
            pm.string_value = m["value"]
        if m["unit"] is not None:
            pm.properties.keys.append("engUnit")
            pv = pm.properties.values.add()
            pv.type = STRING
            pv.string_value = m["unit"]
    return bytes(p.SerializeToString())


def nbirth(bd: int = 3) -> tuple[str, bytes]:
    return (f"spBv1.0/{G}/NBIRTH/{N}",
            encode(0, [metric("bdSeq", datatype=UINT64, value=bd),
                       metric("Node Control/Rebirth", datatype=BOOLEAN, value=False)]))


def dbirth(seq: int = 1) -> tuple[str, bytes]:
    return (f"spBv1.0/{G}/DBIRTH/{N}/{D}",
            encode(seq, [metric("Energy/Import", 1, DOUBLE, 1000.0, NOW - 5000, unit="Wh"),
                         metric("Voltage", 2, FLOAT, 229.5, NOW - 5000),
                         metric("Serial", 3, STRING, "A-17", NOW - 5000),
                         metric("Device Control/Rebirth", 4, BOOLEAN, False)]))


def ddata(seq: int, metrics: list[dict[str, Any]]) -> tuple[str, bytes]:
    return f"spBv1.0/{G}/DDATA/{N}/{D}", encode(seq, metrics)


def test_payload_encoded_by_eclipse_tahu_decodes() -> None:
    p = parse_payload(TAHU_DDATA)
    assert (p.timestamp, p.seq) == (NOW, 2)
    energy, signed = p.metrics
    assert (energy.name, energy.alias, energy.timestamp, energy.datatype, energy.value) == (
        "Energy", 5, NOW, DOUBLE, 12.5)
    assert energy.properties == {"engUnit": "kWh"}
    assert (signed.name, signed.alias, signed.value) == (None, 6, -3)  # Int32 two's complement


def test_birth_then_alias_only_data() -> None:
    st = SparkplugState()
    res = st.decode(*nbirth(), NOW)
    assert res.readings == () and res.events == ()  # bdSeq and Node Control are not readings
    assert st.node_online(G, N)
    res = st.decode(*dbirth(), NOW)
    got = {r.channel: (r.value, r.unit, r.ts_ms) for r in res.readings}
    assert got == {"Energy/Import": (1000.0, "Wh", NOW - 5000),
                   "Voltage": (229.5, None, NOW - 5000)}
    assert {r.device for r in res.readings} == {f"{G}/{N}/{D}"}
    res = st.decode(*ddata(2, [metric(alias=1, value=1250.0, ts=NOW - 1000)]), NOW)
    (r,) = res.readings
    assert (r.channel, r.value, r.unit, r.ts_ms, r.format) == (
        "Energy/Import", 1250.0, "Wh", NOW - 1000, "sparkplug")
    assert res.events == ()
    # no metric timestamp: the payload's
    (r,) = st.decode(*ddata(3, [metric(alias=1, value=1300.0)]), NOW).readings
    assert r.ts_ms == NOW


def test_sequence_gap_duplicate_and_wraparound() -> None:
    st = SparkplugState()
    st.decode(*nbirth(), NOW)
    st.decode(*dbirth(), NOW)
    msg = ddata(5, [metric(alias=1, value=1.0)])  # 2, 3, 4 lost
    (e,) = st.decode(*msg, NOW).events
    assert e.code == "sequence_gap" and e.device == f"{G}/{N}"
    assert "seq 5, expected 2: 3 message(s)" in e.reason
    assert (st.lost_messages, st.gaps) == (3, 1)
    res = st.decode(*msg, NOW)  # the same message redelivered: not a gap
    assert res.events == () and len(res.readings) == 1
    seq = 5
    for _ in range(255):  # 6, 7, ..., 255, 0, 1, ... 4: wraps without a gap
        seq = (seq + 1) % 256
        assert st.decode(*ddata(seq, [metric(alias=1, value=2.0)]), NOW).events == ()
    assert seq == 4 and st.lost_messages == 3
    (e,) = st.decode(*ddata(4, [metric(alias=1, value=3.0)]), NOW).events  # repeat, new bytes
    assert e.code == "sequence_gap" and "255 message(s)" in e.reason


def test_data_before_birth_is_rejected_and_unknown_aliases_and_names_reported() -> None:
    st = SparkplugState()  # ingest started after the births (issue 8 item 6)
    with pytest.raises(DecodeError) as err:
        st.decode(*ddata(7, [metric(alias=1, value=5.0)]), NOW)
    assert err.value.code == "data_before_birth" and "NBIRTH" in str(err.value)
    with pytest.raises(DecodeError) as err:
        st.decode(f"spBv1.0/{G}/NDATA/{N}", encode(1, []), NOW)
    assert err.value.code == "data_before_birth"
    assert len(st) == 0  # DATA does not create node state
    st.decode(*nbirth(), NOW)
    with pytest.raises(DecodeError) as err:  # the node was born, the device was not
        st.decode(*ddata(1, [metric(alias=1, value=5.0)]), NOW)
    assert err.value.code == "data_before_birth" and "DBIRTH" in str(err.value)
    st.decode(*dbirth(seq=1), NOW)
    res = st.decode(*ddata(2, [metric(alias=1, value=5.0), metric(alias=9, value=1.0),
                               metric(alias=8, value=1.0), metric("Energy/Export", value=6.0)]),
                    NOW)
    assert [(r.channel, r.value) for r in res.readings] == [("Energy/Import", 5.0)]
    codes = {e.code: e.reason for e in res.events}
    assert set(codes) == {"unknown_alias", "unknown_metric"}
    assert "[9, 8]" in codes["unknown_alias"] and "'Energy/Export'" in codes["unknown_metric"]
    assert st.unknown_aliases == 2


def test_seq_missing_or_out_of_range_rejects_the_message() -> None:
    st = SparkplugState()
    st.decode(*nbirth(), NOW)
    for seq in (None, 256, 2**40):
        with pytest.raises(DecodeError) as err:
            st.decode(f"spBv1.0/{G}/NDATA/{N}", encode(seq, [metric("a", value=1.0)]), NOW)
        assert err.value.code == "schema" and "seq" in str(err.value)
    with pytest.raises(DecodeError):  # an NBIRTH must carry seq too
        st.decode(f"spBv1.0/{G}/NBIRTH/{N}", encode(None, []), NOW)


def test_node_state_is_bounded() -> None:
    st = SparkplugState(max_nodes=50)
    for i in range(200):
        st.decode(f"spBv1.0/{G}/NBIRTH/n{i}", encode(0, []), NOW)
        with pytest.raises(DecodeError):  # empty NDATA of nodes never born: no state
            st.decode(f"spBv1.0/{G}/NDATA/x{i}", encode(1, []), NOW)
    assert len(st) == 50 and st.evicted_nodes == 150
    assert st.node_online(G, "n199") and not st.node_online(G, "n0")
    with pytest.raises(DecodeError) as err:  # an evicted node must be born again
        st.decode(f"spBv1.0/{G}/NDATA/n0", encode(1, []), NOW)
    assert err.value.code == "data_before_birth"


def test_deaths() -> None:
    st = SparkplugState()
    st.decode(*nbirth(bd=3), NOW)
    st.decode(*dbirth(), NOW)
    (e,) = st.decode(f"spBv1.0/{G}/DDEATH/{N}/{D}", encode(2, []), NOW).events
    assert (e.code, e.device, e.includes_children) == ("device_offline", f"{G}/{N}/{D}", False)
    # a dead device must be born again before its data counts
    with pytest.raises(DecodeError) as err:
        st.decode(*ddata(3, [metric(alias=1, value=1.0)]), NOW)
    assert err.value.code == "data_before_birth"
    st.decode(*dbirth(seq=3), NOW)
    stale = encode(None, [metric("bdSeq", datatype=UINT64, value=2)])
    assert st.decode(f"spBv1.0/{G}/NDEATH/{N}", stale, NOW).events == ()
    assert st.node_online(G, N)
    death = encode(None, [metric("bdSeq", datatype=UINT64, value=3)])
    (e,) = st.decode(f"spBv1.0/{G}/NDEATH/{N}", death, NOW).events
    assert (e.code, e.device, e.includes_children) == ("device_offline", f"{G}/{N}", True)
    assert D in e.reason and not st.node_online(G, N)


def test_number_types_nulls_and_negative_values() -> None:
    st = SparkplugState()
    names = [("a", INT8), ("b", UINT32), ("c", INT64), ("d", FLOAT), ("e", DOUBLE),
             ("f", BOOLEAN), ("g", STRING), ("h", INT32)]
    st.decode(f"spBv1.0/{G}/NBIRTH/{N}", encode(0, [
        metric(n, datatype=t, is_null=True) for n, t in names]), NOW)
    res = st.decode(f"spBv1.0/{G}/NDATA/{N}", encode(1, [
        metric("a", datatype=INT8, value=7), metric("b", datatype=UINT32, value=4_000_000_000),
        metric("c", datatype=INT64, value=2**40), metric("d", datatype=FLOAT, value=1.5),
        metric("e", datatype=DOUBLE, is_null=True), metric("f", datatype=BOOLEAN, value=True),
        metric("g", datatype=STRING, value="x"), metric("h", datatype=INT32, value=-4),
    ]), NOW)
    assert {r.channel: r.value for r in res.readings} == {
        "a": 7.0, "b": 4e9, "c": float(2**40), "d": 1.5}
    assert {r.device for r in res.readings} == {f"{G}/{N}"}
    (e,) = res.events
    assert e.code == "schema" and e.channel == "h" and "-4" in e.reason


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        (f"spBv1.0/{G}/DDATA/{N}/{D}", b"\x12\x05ab", "malformed_protobuf"),
        (f"spBv1.0/{G}/DDATA/{N}", encode(1, []), "topic"),
        (f"spBv1.0/{G}/NDATA/{N}/{D}", encode(1, []), "topic"),
        (f"spBv1.0/{G}/XDATA/{N}", encode(1, []), "topic"),
        (f"spBv1.0/{G}", b"", "topic"),
        (f"spBv1.0//NDATA/{N}", encode(1, []), "topic"),
    ],
)
def test_malformed(topic: str, payload: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as err:
        SparkplugState().decode(topic, payload, NOW)
    assert err.value.code == code


def test_state_and_commands_are_ignored() -> None:
    st = SparkplugState()
    assert st.decode("spBv1.0/STATE/scada-1", b'{"online":true,"timestamp":1}', NOW).events == ()
    assert st.decode(f"spBv1.0/{G}/NCMD/{N}", encode(None, []), NOW).readings == ()


def _proto_fields(text: str) -> set[tuple[str, str, str, str, int]]:
    """(message path, label, type, name, number) of every field in a .proto file."""
    out: set[tuple[str, str, str, str, int]] = set()
    stack: list[str] = []
    field_re = re.compile(r"^(optional|repeated)?\s*([\w.]+)\s+(\w+)\s*=\s*(\d+);")
    for raw in text.splitlines():
        line = raw.split("//")[0].strip()
        if m := re.match(r"^message\s+(\w+)\s*\{", line):
            stack.append(m.group(1))
        elif re.match(r"^oneof\s+\w+\s*\{", line):
            stack.append("")  # oneof members are fields of the enclosing message
        elif line.startswith("}"):
            stack.pop()
        elif (m := field_re.match(line)) and not line.startswith("extensions"):
            path = ".".join(s for s in stack if s)
            out.add((path, m.group(1) or "optional", m.group(2), m.group(3), int(m.group(4))))
    return out


def test_runtime_schema_matches_the_proto_file() -> None:
    proto = Path(sp_proto.__file__).with_name("sparkplug_b.proto").read_text()
    from_file = _proto_fields(proto)
    desc = payload_class().DESCRIPTOR
    built: set[tuple[str, str, str, str, int]] = set()

    def walk(d: Any, path: str) -> None:
        for f in d.fields:
            label = "repeated" if f.is_repeated else "optional"
            if f.message_type is not None:
                ftype = f.message_type.name
            else:
                ftype = next(k for k, v in sp_proto.SCALAR_TYPES.items() if v == f.type)
            built.add((path, label, ftype, f.name, f.number))
        for n in d.nested_types:
            walk(n, f"{path}.{n.name}")

    walk(desc, "Payload")
    # the .proto names nested types relative to their scope; compare on the last component
    assert {(p, lab, t.split(".")[-1], n, num) for p, lab, t, n, num in from_file} == built
    assert len(built) == 72  # every field of the 15 messages, extensions aside
    assert {p for p, *_ in built} >= {"Payload", "Payload.Metric", "Payload.PropertyValue",
                                      "Payload.DataSet.DataSetValue", "Payload.Template.Parameter"}
