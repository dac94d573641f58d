"""Fuzzing ingest: hypothesis strategies per gateway format, the invariants every decoded
message must satisfy, and the long run behind ``scripts/fuzz``.

The strategies build messages shaped like each format (so that inputs reach the decoders'
inner code, not only the JSON parser) whose leaves are drawn from hostile values: NaN and
infinities, 1e308 (infinite once multiplied by 1000 or summed), 2^64 - 1, integers of
hundreds of digits, ``-0``, epoch seconds where milliseconds belong, years 1 and 9999 with
extreme offsets, NUL, lone surrogates, control characters, empty and very long strings, deep
nesting; plus raw bytes and byte-level mutations of valid messages. ``tests/unit/
test_ingest_fuzz.py`` runs them with a bounded number of examples; ``scripts/fuzz`` runs
many more and prints the inputs tried, the rejections by code and the crashes (must be 0).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from carbon.registry import Registry
from core.records import sanitize_text
from core.registry_yaml import load_registry
from ingest.decoders import MAX_TS_MS, MIN_TS_MS
from ingest.decoders.sparkplug import SparkplugState
from ingest.decoders.sparkplug_proto import payload_class
from ingest.schema import DeadLetter, ReadingRecord
from ingest.validate import decode_message

REGISTRY_PATH = Path(__file__).resolve().parent / "data" / "registry.yaml"
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the receive time of every fuzzed message
SKEW_S = 300

# Every code ingest may give a dead letter (README "Ingest: rejection codes"); decoder_error
# is deliberately absent: it means a decoder bug.
KNOWN_CODES = frozenset({
    "malformed_json", "malformed_protobuf", "schema", "topic", "message_too_large",
    "too_many_readings", "impossible_timestamp", "clock_skew", "unit", "out_of_range",
    "unknown_meter", "site_mismatch", "gateway_mismatch", "device_not_on_gateway",
    "unmapped_device", "device_offline", "sequence_gap", "unknown_alias", "unknown_metric",
    "device_read_error", "data_before_birth", "too_many_devices",
})

Message = tuple[str, bytes]
SHANGHAI = timezone(timedelta(hours=8))

# ------------------------------------------------------------------ hostile leaves

HOSTILE_NUMBERS: list[Any] = [
    0, -0.0, 1, 12.5, -1, -1e-9, 1e308, -1e308, 1.7e308, float("inf"), float("-inf"),
    float("nan"), 5e-324, 2**53 + 1, 2**63 - 1, 2**64 - 1, 2**64, 10**30, 10**400,
    1_767_225_500, 1_767_225_500.5, 1_767_225_500_000, 1_767_225_500_000.7, 946_684_799_999,
    MAX_TS_MS, MAX_TS_MS + 1, 1e300,
]
HOSTILE_TEXT: list[str] = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e", "\n", "kWh", "MWh", "Wh", "m3",
    "NaN", "1e308", "12.5", "true", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1767225500", "1767225500000",
    "x" * 300, "/", "#", "+",
]


def numbers() -> st.SearchStrategy[Any]:
    """Numbers, mostly hostile ones."""
    return st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.integers(), st.floats(),
                     st.integers(min_value=MIN_TS_MS - 10, max_value=NOW + 10**9))


def texts() -> st.SearchStrategy[str]:
    """Strings, mostly hostile ones (surrogates included: json.dumps escapes them)."""
    return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=12))


def hostile_leaves() -> st.SearchStrategy[Any]:
    """Any JSON leaf a hostile gateway might send where a number or a time belongs."""
    return st.one_of(numbers(), texts(), st.booleans(), st.none(),
                     st.lists(numbers(), max_size=10), st.dictionaries(texts(), numbers(),
                                                                       max_size=3))


def _plausible_number() -> st.SearchStrategy[Any]:
    return st.one_of(st.floats(0, 2e6), st.integers(0, 2_000_000))


def leaves() -> st.SearchStrategy[Any]:
    """A register value: half plausible (so that inputs reach the registry checks), half
    hostile."""
    return st.one_of(_plausible_number(), hostile_leaves())


def times(seconds: bool = False) -> st.SearchStrategy[Any]:
    """A reading time: plausible epoch ms (or s) and ISO 8601 texts, or hostile leaves."""
    scale = 1000 if seconds else 1
    plausible = st.integers(NOW - 10**8, NOW + 10**6)
    return st.one_of(
        plausible.map(lambda ms: ms // (1000 // scale) if seconds else ms),
        plausible.map(lambda ms: ms / 1000 if seconds else float(ms)),
        st.datetimes(min_value=_dt(NOW - 10**8), max_value=_dt(NOW + 10**6),
                     timezones=st.sampled_from([UTC, SHANGHAI])).map(lambda t: t.isoformat()),
        hostile_leaves())


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()  # NaN/Infinity tokens and \ud800 escapes on purpose


def _maybe(d: st.DrawFn, key: str, strategy: st.SearchStrategy[Any], out: dict[str, Any],
           p_present: bool = True) -> None:
    if d(st.booleans()) or p_present:
        out[key] = d(strategy)


# ------------------------------------------------------------------ per-format messages


@st.composite
def nzc_messages(draw: st.DrawFn) -> list[Message]:
    """Our JSON format: single readings and batches on good and wrong gateway topics."""
    def reading() -> dict[str, Any]:
        r: dict[str, Any] = {}
        _maybe(draw, "meter", st.one_of(st.sampled_from(
            ["e2e-el", "e2e-sub", "e2e-gas", "pub-el", "probe", "nope"]), texts()), r)
        _maybe(draw, "ts", times(), r)
        _maybe(draw, "register" if draw(st.booleans()) else "value", leaves(), r)
        if draw(st.booleans()):
            r["period_s"] = draw(leaves())
        _maybe(draw, "unit", st.one_of(st.sampled_from(["kWh", "Wh", "MWh", "m3"]), texts()), r)
        if draw(st.integers(0, 9)) == 0:
            r[draw(texts())] = draw(leaves())
        return r

    doc: Any = ({"readings": [reading() for _ in range(draw(st.integers(0, 4)))]}
                if draw(st.booleans()) else reading())
    gw = draw(st.sampled_from(["gw1", "gw3", "gw-x", "\x00"]))
    site = draw(st.sampled_from(["test-site", "fmt-site", "other"]))
    return [(f"nzc/v1/{site}/{gw}/readings", _dumps(doc))]


@st.composite
def tasmota_messages(draw: st.DrawFn) -> list[Message]:
    """Tasmota ``tele/<device>/SENSOR``: Total as a number or an array of phases."""
    energy: dict[str, Any] = {}
    _maybe(draw, "Total", st.one_of(leaves(), st.lists(numbers(), min_size=1, max_size=9)),
           energy)
    if draw(st.booleans()):
        energy["ExportActive"] = draw(st.one_of(leaves(), st.lists(numbers(), max_size=9)))
    doc: dict[str, Any] = {"ENERGY": energy if draw(st.integers(0, 9)) else draw(leaves())}
    _maybe(draw, "Time", st.one_of(times().map(str), st.datetimes(
        min_value=datetime(1990, 1, 1)).map(lambda t: t.isoformat()), texts(), leaves()), doc,
        p_present=False)
    device = draw(st.one_of(st.sampled_from(["tasmota-pump", "tasmota-3ph"]), texts()))
    return [(f"tele/{device}/SENSOR", _dumps(doc))]


@st.composite
def shelly_gen1_messages(draw: st.DrawFn) -> list[Message]:
    """Shelly Gen1: a bare number as text on ``shellies/<id>/emeter/<n>/total``."""
    device = draw(st.one_of(st.just("shellyem3-ECFABC0A1B2C"), texts()))
    n = draw(st.sampled_from(["0", "1", "x", "٣"]))
    field_ = draw(st.sampled_from(["total", "total_returned", "power"]))
    payload = draw(st.one_of(numbers().map(lambda v: repr(v).encode()),
                             texts().map(lambda t: t.encode("utf-8", "surrogatepass")),
                             st.binary(max_size=16)))
    return [(f"shellies/{device}/emeter/{n}/{field_}", payload)]


@st.composite
def shelly_gen2_messages(draw: st.DrawFn) -> list[Message]:
    """Shelly Gen2 ``<prefix>/events/rpc`` NotifyStatus with emdata/em1data components."""
    params: dict[str, Any] = {}
    _maybe(draw, "ts", times(seconds=True), params)
    for _ in range(draw(st.integers(0, 3))):
        comp = draw(st.sampled_from(["emdata:0", "em1data:1", "emdata:x", "em1data:",
                                     "switch:0"]))
        params[comp] = {f: draw(leaves()) for f in draw(st.lists(st.sampled_from(
            ["total_act", "total_act_ret", "a_total_act_energy", "total_act_energy"]),
            max_size=3))} if draw(st.integers(0, 9)) else draw(leaves())
    doc: dict[str, Any] = {"method": draw(st.sampled_from(["NotifyStatus", "NotifyFullStatus",
                                                           "NotifyEvent"])),
                           "params": params if draw(st.integers(0, 9)) else draw(leaves())}
    known = "shellypro3em-c8f09e8a1b2c"
    _maybe(draw, "src", st.one_of(st.just(known), texts(), leaves()), doc)
    prefix = draw(st.one_of(st.sampled_from([known, "attacker", "site/a/b"]), texts()))
    return [(f"{prefix}/events/rpc", _dumps(doc))]


@st.composite
def zigbee2mqtt_messages(draw: st.DrawFn) -> list[Message]:
    """Zigbee2MQTT state with energy, produced_energy and last_seen."""
    doc: dict[str, Any] = {}
    _maybe(draw, "energy", leaves(), doc)
    _maybe(draw, "produced_energy", leaves(), doc, p_present=False)
    _maybe(draw, "last_seen", times(), doc, p_present=False)
    name = draw(st.one_of(st.just("pump-room-meter"), texts()))
    return [(f"zigbee2mqtt/{name}", _dumps(doc))]


@st.composite
def neuron_messages(draw: st.DrawFn) -> list[Message]:
    """Neuron uploads (values and tags formats) on good, foreign and custom topics."""
    tag = st.one_of(st.sampled_from(["230100004521#00-00-00-00", "230100004521#00-01-00-00",
                                     "230100004599#00-00-00-00", "a#00-00-00-00"]), texts())
    doc: dict[str, Any] = {}
    _maybe(draw, "node", st.one_of(st.just("dlt645-bus1"), texts(), leaves()), doc)
    _maybe(draw, "group", st.one_of(st.just("energy"), texts()), doc)
    _maybe(draw, "timestamp", times(), doc)
    if draw(st.booleans()):
        doc["values"] = draw(st.dictionaries(tag, leaves(), max_size=4))
        _maybe(draw, "errors", st.dictionaries(tag, leaves(), max_size=2), doc, False)
    else:
        doc["tags"] = draw(st.lists(st.fixed_dictionaries(
            {"name": st.one_of(tag, leaves())},
            optional={"value": leaves(), "error": leaves()}), max_size=4))
    topic = draw(st.sampled_from(["/neuron/north-1/dlt645-bus1/energy", "/neuron/north-1/upload",
                                  "/neuron/north-1/other/energy", "plant/gw-7/upload"]))
    return [(topic, _dumps(doc))]


_UTF8_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@st.composite
def sparkplug_messages(draw: st.DrawFn) -> list[Message]:
    """A short Sparkplug B session: births, data, deaths, with hostile seq, aliases, names,
    data types, values, timestamps and units, and byte-level mutations."""
    out: list[Message] = []
    cls = payload_class()
    for _ in range(draw(st.integers(1, 6))):
        mtype = draw(st.sampled_from(["NBIRTH", "DBIRTH", "NDATA", "DDATA", "NDEATH", "DDEATH"]))
        node = draw(st.one_of(st.just("edge-1"), _UTF8_TEXT.filter(lambda t: "/" not in t)))
        topic = f"spBv1.0/nzc-test/{mtype}/{node}"
        if mtype.startswith("D"):
            topic += "/" + draw(st.sampled_from(["meter-1", "meter-2", "x"]))
        p = cls()
        seq = draw(st.one_of(st.none(), st.integers(0, 300), st.just(2**64 - 1)))
        if seq is not None:
            p.seq = seq
        if draw(st.booleans()):
            p.timestamp = draw(st.one_of(st.integers(0, 2**64 - 1), st.just(NOW - 1000)))
        for _ in range(draw(st.integers(0, 4))):
            m = p.metrics.add()
            name = draw(st.one_of(st.none(), st.sampled_from(
                ["Energy/Import", "bdSeq", "a\x00b", "Device Control/Rebirth"]), _UTF8_TEXT))
            if name is not None:
                m.name = name
            if draw(st.booleans()):
                m.alias = draw(st.one_of(st.integers(0, 10), st.just(2**64 - 1)))
            m.datatype = draw(st.integers(0, 20))
            kind = draw(st.sampled_from(["int", "long", "float", "double", "bool", "str",
                                         "null"]))
            if kind == "int":
                m.int_value = draw(st.integers(0, 2**32 - 1))
            elif kind == "long":
                m.long_value = draw(st.one_of(st.integers(0, 2**64 - 1), st.just(2**64 - 1)))
            elif kind == "float":
                m.float_value = draw(st.floats(width=32))
            elif kind == "double":
                m.double_value = draw(st.one_of(st.floats(), st.just(1e308)))
            elif kind == "bool":
                m.boolean_value = draw(st.booleans())
            elif kind == "str":
                m.string_value = draw(_UTF8_TEXT)
            else:
                m.is_null = True
            if draw(st.booleans()):
                m.timestamp = draw(st.one_of(st.integers(0, 2**64 - 1), st.just(NOW - 500)))
            unit = draw(st.one_of(st.none(), st.sampled_from(["kWh", "MWh", "Wh", "\x00",
                                                              "J"])))
            if unit is not None:
                m.properties.keys.append("engUnit")
                pv = m.properties.values.add()
                pv.type = 12
                pv.string_value = unit
        data = bytes(p.SerializeToString())
        if draw(st.integers(0, 5)) == 0:  # byte-level mutations of the valid encoding
            buf = bytearray(data)
            for pos, byte in draw(st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)),
                                           min_size=1, max_size=4)):
                if buf and draw(st.booleans()):
                    buf[pos % len(buf)] = byte
                else:
                    buf.insert(pos % (len(buf) + 1), byte)
            data = bytes(buf)
        out.append((topic, data))
    return out


@st.composite
def raw_messages(draw: st.DrawFn) -> list[Message]:
    """Any topic of a format with raw bytes, deep nesting or huge numbers as payload."""
    topic = draw(st.sampled_from(["nzc/v1/test-site/gw1/readings", "tele/tasmota-pump/SENSOR",
                                  "shellies/shellyem3-ECFABC0A1B2C/emeter/0/total",
                                  "shellypro3em-c8f09e8a1b2c/events/rpc",
                                  "zigbee2mqtt/pump-room-meter",
                                  "/neuron/north-1/dlt645-bus1/energy",
                                  "spBv1.0/nzc-test/NDATA/edge-1", "x/y"]))
    depth = draw(st.integers(1, 20_000))
    payload = draw(st.one_of(
        st.binary(max_size=64),
        st.just(b"[" * depth), st.just(b'{"a":' * depth),
        st.integers(1, 6000).map(lambda n: b'{"ENERGY":{"Total":' + b"9" * n + b"}}"),
        st.just(b"\x00"), st.just(b'{"\\u0000":1}'), st.just(b'"\\ud800"'),
    ))
    return [(topic, payload)]


# ------------------------------------------------------------------ plausible messages
# Valid-looking messages (one in two examples), so that inputs and their mutants reach the
# registry mapping, gateway binding, unit conversion and range checks.

_TS = st.integers(NOW - 10**7, NOW + 10**6)
_VAL = st.one_of(st.floats(0, 2e6), st.integers(0, 2_000_000), st.sampled_from(HOSTILE_NUMBERS))
_ISO = _TS.map(lambda ms: datetime.fromtimestamp(ms / 1000, UTC).isoformat())


@st.composite
def tame_nzc(draw: st.DrawFn) -> list[Message]:
    """Our format: known meters, plausible times and values, the right or a wrong gateway."""
    batch = [{"meter": draw(st.sampled_from(["e2e-el", "e2e-sub", "probe", "pub-el"])),
              "ts": draw(st.one_of(_TS, _ISO)), "register": draw(_VAL),
              "unit": draw(st.sampled_from(["kWh", "Wh", "MWh"]))}
             for _ in range(draw(st.integers(1, 4)))]
    gw = draw(st.sampled_from(["gw1", "gw1", "gw3"]))
    return [(f"nzc/v1/test-site/{gw}/readings", _dumps({"readings": batch}))]


@st.composite
def tame_tasmota(draw: st.DrawFn) -> list[Message]:
    """Tasmota: a mapped device, Total as a number or three phases."""
    total = draw(st.one_of(_VAL, st.lists(_VAL, min_size=2, max_size=3)))
    doc = {"Time": draw(_ISO), "ENERGY": {"Total": total}}
    device = draw(st.sampled_from(["tasmota-pump", "tasmota-3ph"]))
    return [(f"tele/{device}/SENSOR", _dumps(doc))]


@st.composite
def tame_shelly_gen1(draw: st.DrawFn) -> list[Message]:
    """Shelly Gen1: the mapped emeter total."""
    return [("shellies/shellyem3-ECFABC0A1B2C/emeter/0/total", repr(draw(_VAL)).encode())]


@st.composite
def tame_shelly_gen2(draw: st.DrawFn) -> list[Message]:
    """Shelly Gen2: the mapped device, on its own or a foreign topic prefix."""
    known = "shellypro3em-c8f09e8a1b2c"
    doc = {"src": known, "method": "NotifyStatus",
           "params": {"ts": draw(_TS) / 1000,
                      "emdata:0": {"total_act": draw(_VAL), "total_act_ret": draw(_VAL)}}}
    prefix = draw(st.sampled_from([known, known, "attacker"]))
    return [(f"{prefix}/events/rpc", _dumps(doc))]


@st.composite
def tame_zigbee2mqtt(draw: st.DrawFn) -> list[Message]:
    """Zigbee2MQTT: the mapped plug."""
    doc = {"energy": draw(_VAL), "last_seen": draw(st.one_of(_TS, _ISO))}
    return [("zigbee2mqtt/pump-room-meter", _dumps(doc))]


@st.composite
def tame_neuron(draw: st.DrawFn) -> list[Message]:
    """Neuron: the mapped DL/T 645 tag, on its own, a foreign or a custom topic."""
    doc = {"timestamp": draw(_TS), "node": "dlt645-bus1", "group": "energy",
           "values": {"230100004521#00-00-00-00": draw(_VAL),
                      "2301000045" + draw(st.sampled_from(["21", "99"])) + "#00-01-00-00":
                      draw(_VAL)}}
    topic = draw(st.sampled_from(["/neuron/north-1/dlt645-bus1/energy"] * 3
                                 + ["/neuron/north-1/other/energy", "plant/gw-7/upload"]))
    return [(topic, _dumps(doc))]


@st.composite
def tame_sparkplug(draw: st.DrawFn) -> list[Message]:
    """Sparkplug B: NBIRTH, DBIRTH of a mapped device with a unit, DDATA by alias."""
    cls = payload_class()

    def msg(seq: int, metrics: list[tuple[str | None, int | None, int, Any, str | None]]) -> bytes:
        p = cls()
        p.seq, p.timestamp = seq, NOW - 1000
        for name, alias, dtype, value, unit in metrics:
            m = p.metrics.add()
            if name is not None:
                m.name = name
            if alias is not None:
                m.alias = alias
            m.datatype = dtype
            if dtype == 8:
                m.long_value = value
            else:
                m.double_value = value
            if unit is not None:
                m.properties.keys.append("engUnit")
                pv = m.properties.values.add()
                pv.type, pv.string_value = 12, unit
        return bytes(p.SerializeToString())

    unit = draw(st.sampled_from(["Wh", "kWh", "MWh", None]))
    dtype = draw(st.sampled_from([10, 8]))

    def value() -> Any:
        if dtype == 8:
            return draw(st.one_of(st.integers(0, 2_000_000), st.just(2**64 - 1)))
        return draw(st.one_of(st.floats(0, 2e6), st.sampled_from([1e308, float("nan"),
                                                                  float("inf"), -0.0])))

    node = "spBv1.0/nzc-test/{}/edge-1"
    out = [(node.format("NBIRTH"), msg(0, [("bdSeq", None, 8, 1, None)])),
           (node.format("DBIRTH") + "/meter-1",
            msg(1, [("Energy/Import", 7, dtype, value(), unit)]))]
    for i in range(draw(st.integers(1, 4))):
        out.append((node.format("DDATA") + "/meter-1", msg(2 + i, [(None, 7, dtype, value(),
                                                                    None)])))
    return out


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[list[Message]]]] = {
    "nzc": lambda: st.one_of(tame_nzc(), nzc_messages()),
    "tasmota": lambda: st.one_of(tame_tasmota(), tasmota_messages()),
    "shelly_gen1": lambda: st.one_of(tame_shelly_gen1(), shelly_gen1_messages()),
    "shelly_gen2": lambda: st.one_of(tame_shelly_gen2(), shelly_gen2_messages()),
    "zigbee2mqtt": lambda: st.one_of(tame_zigbee2mqtt(), zigbee2mqtt_messages()),
    "neuron": lambda: st.one_of(tame_neuron(), neuron_messages()),
    "sparkplug": lambda: st.one_of(tame_sparkplug(), sparkplug_messages()),
    "raw": raw_messages,
}

# ------------------------------------------------------------------ invariants


def registry() -> Registry:
    """The test registry (tests/data/registry.yaml): meters mapped for every format."""
    return load_registry(REGISTRY_PATH)


def check_outputs(reg: Registry, topic: str, ok: list[ReadingRecord],
                  bad: list[DeadLetter]) -> None:
    """What decode_message returned obeys the promises (raises AssertionError otherwise)."""
    for r in ok:
        meter = reg.meters[r.meter_id]
        limit = meter.register_max * meter.to_canonical
        assert math.isfinite(r.value) and 0.0 <= r.value <= limit * (1 + 1e-9), r
        assert math.copysign(1.0, r.value) == 1.0, r  # no -0
        assert MIN_TS_MS <= r.ts_ms <= NOW + SKEW_S * 1000, r
        json.dumps(r.to_dict(), allow_nan=False).encode("utf-8")
    for d in bad:
        assert d.code in KNOWN_CODES, (d.code, d.reason)
        assert d.reason and d.reason.isprintable(), d.reason
        # the topic is kept, its control characters and lone surrogates escaped
        assert d.mqtt_topic == sanitize_text(topic, 512) and "\x00" not in d.mqtt_topic
        json.dumps(d.to_dict(), allow_nan=False)


@dataclass
class Tally:
    """What a fuzz run saw."""

    examples: int = 0
    inputs: int = 0
    accepted: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)


_NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
HOSTILE_NUMBER_TOKENS = [b"1e308", b"-1e308", b"1.7e308", b"-0", b"-0.0", b"NaN", b"Infinity",
                         b"-Infinity", b"1e400", b"18446744073709551615", b"9" * 400,
                         b"9" * 5000, b"true", b'"12.5"', b"null", b"1767225500",
                         b"1767225500.5", b'"1767225500"', b"[]", b"{}", b"-1"]
HOSTILE_STRING_TOKENS = [rb'"\u0000"', rb'"a\u0000b"', rb'"\ud800"', b'""', b"1",
                         b'"0001-01-01T00:00:00+14:00"', b'"9999-12-31T23:59:59-14:00"',
                         b'"2026-01-01T00:00:00"', b'"' + b"x" * 300 + b'"', rb'"\/"']


def mutants(payload: bytes, rng: random.Random, k: int) -> list[bytes]:
    """``k`` cheap variants of a payload: a number or string token replaced by a hostile one,
    truncation, byte flips and inserts, a duplicated slice, extra nesting."""
    out: list[bytes] = []
    numbers_ = [m.span() for m in _NUMBER.finditer(payload)]
    strings = [m.span() for m in _STRING.finditer(payload)]
    for _ in range(k):
        op = rng.randrange(7)
        if op == 0 and numbers_:
            a, b = rng.choice(numbers_)
            out.append(payload[:a] + rng.choice(HOSTILE_NUMBER_TOKENS) + payload[b:])
        elif op == 1 and strings:
            a, b = rng.choice(strings)
            out.append(payload[:a] + rng.choice(HOSTILE_STRING_TOKENS) + payload[b:])
        elif op == 2 and payload:
            out.append(payload[: rng.randrange(len(payload))])
        elif op == 3 and payload:
            buf = bytearray(payload)
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            out.append(bytes(buf))
        elif op == 4:
            buf = bytearray(payload)
            buf.insert(rng.randint(0, len(buf)), rng.choice(b'\x00[{"\\\xff\xc0:,-09e'))
            out.append(bytes(buf))
        elif op == 5 and payload:
            a = rng.randrange(len(payload))
            b = rng.randint(a, min(len(payload), a + 64))
            out.append(payload[:b] + payload[a:b] * rng.randint(1, 50) + payload[b:])
        else:
            depth = rng.choice([1, 63, 64, 65, 1000])
            out.append(b"[" * depth + payload + b"]" * depth)
    return out


def run_one(reg: Registry, messages: list[Message], tally: Tally, extra: int = 0) -> None:
    """Feed one generated session (one Sparkplug state) to decode_message, then ``extra``
    mutants of each of its messages, recording outcomes and any exception or broken
    invariant as a crash."""
    state = SparkplugState()
    rng = random.Random(hash(tuple(messages)))
    inputs = list(messages)
    for topic, payload in messages:
        inputs += [(topic, m) for m in mutants(payload, rng, extra)]
    for topic, payload in inputs:
        tally.inputs += 1
        try:
            ok, bad = decode_message(reg, topic, payload, received_ms=NOW,
                                     max_clock_skew_s=SKEW_S, sparkplug=state)
            check_outputs(reg, topic, ok, bad)
        except Exception as exc:
            tally.crashes.append(f"{topic!r} {payload[:200]!r}: {type(exc).__name__}: {exc}\n"
                                 + traceback.format_exc(limit=4))
            continue
        tally.accepted += len(ok)
        tally.codes.update(d.code for d in bad)


def fuzz(fmt: str, examples: int, reg: Registry, seed: int | None = None,
         extra: int = 0) -> Tally:
    """Run ``examples`` generated examples of format ``fmt``, each followed by ``extra``
    mutants of its messages (no shrinking: a crash is recorded with its input and the run
    goes on)."""
    tally = Tally()

    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(messages=STRATEGIES[fmt]())
    def body(messages: list[Message]) -> None:
        tally.examples += 1
        run_one(reg, messages, tally, extra)

    if seed is not None:
        body = hypothesis_seed(seed)(body)
    body()
    return tally


def main(argv: list[str] | None = None) -> int:
    """``scripts/fuzz``: the long run; exit status 1 when anything crashed."""
    ap = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--inputs", type=int, default=100_000,
                    help="inputs per decoder (default 100000): generated examples plus their "
                         "mutants")
    ap.add_argument("--mutants", type=int, default=9,
                    help="mutants run after each generated message (default 9)")
    ap.add_argument("--formats", default=",".join(STRATEGIES),
                    help=f"comma-separated, of: {', '.join(STRATEGIES)}")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (default random)")
    args = ap.parse_args(argv)
    reg = registry()
    total_crashes = 0
    examples = max(1, args.inputs // (1 + args.mutants))
    print(f"fuzzing ingest.validate.decode_message: {examples} generated examples per decoder, "
          f"each message followed by {args.mutants} mutants (target {args.inputs} inputs)")
    print(f"{'decoder':<12} {'examples':>9} {'inputs':>9} {'accepted':>9} {'crashes':>8} "
          f"{'s':>7}  rejections by code")
    for fmt in args.formats.split(","):
        t0 = time.perf_counter()
        tally = fuzz(fmt, examples, reg, args.seed, args.mutants)
        dt = time.perf_counter() - t0
        codes = ", ".join(f"{c} {k}" for c, k in sorted(tally.codes.items(),
                                                          key=lambda x: (-x[1], x[0])))
        print(f"{fmt:<12} {tally.examples:>9} {tally.inputs:>9} {tally.accepted:>9} "
              f"{len(tally.crashes):>8} {dt:>7.1f}  {codes}", flush=True)
        for c in tally.crashes[:5]:
            print("  CRASH " + c, file=sys.stderr)
        total_crashes += len(tally.crashes)
    print(f"crashes: {total_crashes}")
    return 1 if total_crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
