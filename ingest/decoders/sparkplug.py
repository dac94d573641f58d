"""Sparkplug B edge nodes and devices (format ``sparkplug``).

Source: Eclipse Sparkplug Specification 3.0.0 (chapter 4 topics, chapter 5 operational
behaviour: birth/death, ``bdSeq``, ``seq``, aliases; chapter 6.4 the protobuf payload, in
``sparkplug_b.proto`` beside this module). Topics::

    spBv1.0/<group>/NBIRTH|NDATA|NDEATH/<edge node>
    spBv1.0/<group>/DBIRTH|DDATA|DDEATH/<edge node>/<device>

======================  ================  ========  =============  =============================
field                   unit              kind      channel        note
======================  ================  ========  =============  =============================
``metrics[].name``      --                --        the name       announced in BIRTH
``metrics[].alias``     --                --        (its name)     resolved from the BIRTH
numeric metric value    ``engUnit`` or    register  metric name    Int*/UInt*/Float/Double;
                        meter's unit                               signed ints two's complement
``metrics[].timestamp`` ms                --        --             reading time (UTC); else
                                                                   ``Payload.timestamp``
``seq``                 --                --        --             0-255 per edge node
``bdSeq`` metric        --                --        --             pairs NDEATH with its NBIRTH
======================  ================  ========  =============  =============================

Device identity: ``<group>/<edge node>`` for node metrics (N* messages),
``<group>/<edge node>/<device>`` for device metrics (D* messages); channel = metric name.
Sparkplug metrics carry no standard unit: a metric property ``engUnit`` (the name Ignition and
Tahu-based nodes use; ``engUnits``, ``unit`` and ``units`` are accepted too) gives it, else
the meter's registry ``unit`` applies. Boolean, string, bytes, DataSet and Template metrics,
``bdSeq`` and ``Node Control/*`` / ``Device Control/*`` metrics carry no energy and are
skipped. Historical metrics (``is_historical``, store-and-forward) are readings like any
other, at their own timestamps.

State (:class:`SparkplugState`, owned by the ingest bridge, one per process):

* only a BIRTH creates state. NDATA/DDATA (and DDEATH) from an edge node that has sent no
  NBIRTH since ingest started or since its NDEATH, or from a device without a DBIRTH, is
  rejected as a whole: ``data_before_birth`` (after an ingest restart until the node's next
  BIRTH: ingest only listens and does not send the Rebirth command a Sparkplug host
  application would send; the dead letters keep the values);
* metric names and aliases learned from NBIRTH/DBIRTH, per edge node and device; a DATA
  metric with an alias never announced is ``unknown_alias``, a name never announced
  ``unknown_metric`` (events; the other metrics of the message count);
* ``seq`` per edge node: every message but NDEATH must carry one in 0-255 (missing or out of
  range: the message is rejected, ``schema``); NBIRTH restarts it; any other value than the
  next one modulo 256 is reported as ``sequence_gap`` with the number of messages lost and
  counted in :attr:`SparkplugState.lost_messages`. A redelivered copy of the previous message
  (same ``seq``, same bytes) is not a gap;
* NDEATH (whose ``bdSeq`` matches the node's NBIRTH; a stale one is ignored as the
  specification says) and DDEATH are reported as ``device_offline`` events; a node's death
  takes its devices with it (``includes_children``);
* bounded: :data:`MAX_NODES` edge nodes (least recently heard evicted, counted in
  :attr:`SparkplugState.evicted_nodes`), :data:`MAX_DEVICES_PER_NODE` devices per node
  (``too_many_devices``), :data:`MAX_METRICS_PER_DEVICE` names per device, at most
  ``MAX_READINGS_PER_MESSAGE`` metrics per message (``too_many_readings``).

STATE (host application) messages and NCMD/DCMD commands are ignored.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf.message import DecodeError as ProtobufDecodeError

from ingest.decoders import (
    EMPTY,
    MAX_READINGS_PER_MESSAGE,
    DecodeError,
    DecodeResult,
    DeviceEvent,
    DeviceReading,
    FieldSpec,
    printable,
    short,
)
from ingest.decoders.sparkplug_proto import payload_class

FORMAT: Final = "sparkplug"
NAMESPACE: Final = "spBv1.0"

FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("metrics[].name", "-", "-", "the metric name", "announced in BIRTH"),
    FieldSpec("metrics[].alias", "-", "-", "(its name)", "resolved from the BIRTH"),
    FieldSpec("metrics[].<numeric value>", "engUnit or the meter's unit", "register",
              "metric name", "Int8-64, UInt8-64, Float, Double"),
    FieldSpec("metrics[].timestamp", "ms", "-", "-", "reading time; else Payload.timestamp"),
    FieldSpec("seq", "-", "-", "-", "0-255 per edge node, gap detection"),
    FieldSpec("bdSeq", "-", "-", "-", "pairs NDEATH with its NBIRTH"),
)

NODE_TYPES: Final = frozenset({"NBIRTH", "NDATA", "NDEATH"})
DEVICE_TYPES: Final = frozenset({"DBIRTH", "DDATA", "DDEATH"})
IGNORED_TYPES: Final = frozenset({"NCMD", "DCMD"})
UNIT_PROPERTIES: Final = ("engUnit", "engUnits", "unit", "units")
# Sparkplug data types (spec 6.4.16) that are numbers we can take as a register value
SIGNED_INT_TYPES: Final = {1: 8, 2: 16, 3: 32, 4: 64}  # Int8, Int16, Int32, Int64 -> bits
NUMERIC_TYPES: Final = frozenset(range(1, 11))  # Int8 .. Double
SEQ_MODULUS: Final = 256
MAX_NODES: Final = 10_000  # edge nodes whose state is kept (least recently heard evicted)
MAX_DEVICES_PER_NODE: Final = 1_000
MAX_METRICS_PER_DEVICE: Final = 1_000  # metric names kept per device (and for the node)


@dataclass(frozen=True)
class Metric:
    """One decoded metric (``value`` already sign-corrected; ``None`` when null or of a
    non-scalar type)."""

    name: str | None
    alias: int | None
    timestamp: int | None
    datatype: int | None
    is_null: bool
    is_historical: bool
    value: int | float | bool | str | bytes | None
    properties: dict[str, int | float | bool | str | None]


@dataclass(frozen=True)
class Payload:
    """One decoded Sparkplug B payload."""

    timestamp: int | None
    seq: int | None
    metrics: tuple[Metric, ...]


def _signed(value: int, bits: int) -> int:
    """Two's complement of an unsigned wire value (spec 6.4.16: signed ints are sent as
    their two's complement in ``int_value`` (uint32) or ``long_value`` (uint64))."""
    width = 32 if bits <= 32 else 64
    value &= (1 << width) - 1
    return value - (1 << width) if value >= 1 << (width - 1) else value


def _scalar(msg: Any) -> int | float | bool | str | bytes | None:
    kind = msg.WhichOneof("value")
    if kind in ("int_value", "long_value", "float_value", "double_value", "boolean_value",
                "string_value", "bytes_value"):
        v: int | float | bool | str | bytes = getattr(msg, kind)
        return v
    return None


def _properties(pset: Any) -> dict[str, int | float | bool | str | None]:
    out: dict[str, int | float | bool | str | None] = {}
    for key, pv in zip(pset.keys, pset.values, strict=False):
        v = _scalar(pv)
        out[str(key)] = None if isinstance(v, bytes) or pv.is_null else v
    return out


def parse_payload(data: bytes) -> Payload:
    """Decode Sparkplug B protobuf bytes; raises :class:`DecodeError` ``malformed_protobuf``."""
    try:
        msg = payload_class().FromString(data)
    except ProtobufDecodeError as exc:
        raise DecodeError("malformed_protobuf",
                          f"payload is not a Sparkplug B protobuf message: {exc}") from None
    metrics = []
    for m in msg.metrics:
        datatype = int(m.datatype) if m.HasField("datatype") else None
        value = _scalar(m)
        if isinstance(value, int) and not isinstance(value, bool) and datatype in SIGNED_INT_TYPES:
            value = _signed(value, SIGNED_INT_TYPES[datatype])
        metrics.append(Metric(
            name=str(m.name) if m.HasField("name") else None,
            alias=int(m.alias) if m.HasField("alias") else None,
            timestamp=int(m.timestamp) if m.HasField("timestamp") else None,
            datatype=datatype,
            is_null=bool(m.is_null),
            is_historical=bool(m.is_historical),
            value=None if m.is_null else value,
            properties=_properties(m.properties) if m.HasField("properties") else {},
        ))
    return Payload(
        timestamp=int(msg.timestamp) if msg.HasField("timestamp") else None,
        seq=int(msg.seq) if msg.HasField("seq") else None,
        metrics=tuple(metrics),
    )


@dataclass
class _Known:
    name: str
    datatype: int | None
    unit: str | None


@dataclass
class _Node:
    bd_seq: int | None = None
    last_seq: int | None = None
    last_digest: bytes = b""
    online: bool = False
    # (device or None for the node itself, alias) -> metric
    aliases: dict[tuple[str | None, int], _Known] = field(default_factory=dict)
    # (device or None, name) -> metric, for DATA that names metrics without aliases
    names: dict[tuple[str | None, str], _Known] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)


def _unit_of(props: dict[str, int | float | bool | str | None]) -> str | None:
    for key in UNIT_PROPERTIES:
        v = props.get(key)
        if isinstance(v, str) and v:
            return v
    return None


def _skipped_name(name: str) -> bool:
    return name == "bdSeq" or name.startswith(("Node Control/", "Device Control/"))


class SparkplugState:
    """Aliases, sequence numbers and liveness of the Sparkplug B edge nodes seen so far.

    One instance per ingest process, fed every Sparkplug message in arrival order.
    :meth:`decode` is the decoder; the counters are for the bridge's status line. Bounded:
    at most :data:`MAX_NODES` edge nodes (the least recently heard is forgotten first, and
    must send a BIRTH again), :data:`MAX_DEVICES_PER_NODE` devices per node and
    :data:`MAX_METRICS_PER_DEVICE` metric names per device; only a BIRTH creates state.
    """

    def __init__(self, max_nodes: int = MAX_NODES) -> None:
        self._nodes: OrderedDict[tuple[str, str], _Node] = OrderedDict()
        self.max_nodes = max_nodes
        self.lost_messages = 0
        self.gaps = 0
        self.unknown_aliases = 0
        self.evicted_nodes = 0

    def node_online(self, group: str, node: str) -> bool:
        """Whether the edge node's last word was a BIRTH (not a DEATH)."""
        n = self._nodes.get((group, node))
        return n is not None and n.online

    def __len__(self) -> int:
        """Number of edge nodes whose state is kept."""
        return len(self._nodes)

    def _born(self, key: tuple[str, str], node: _Node) -> _Node:
        self._nodes[key] = node
        self._nodes.move_to_end(key)
        while len(self._nodes) > self.max_nodes:
            self._nodes.popitem(last=False)
            self.evicted_nodes += 1
        return node

    def decode(self, topic: str, payload: bytes, received_ms: int) -> DecodeResult:
        """Decode one ``spBv1.0/...`` message, updating the state (see the module docstring)."""
        parts = topic.split("/")
        if len(parts) < 2 or parts[0] != NAMESPACE:
            raise DecodeError("topic", f"topic {printable(topic)!r} is not {NAMESPACE}/<group>/...")
        if parts[1] == "STATE":
            return EMPTY
        if len(parts) < 4:
            raise DecodeError("topic", f"topic {printable(topic)!r} is not {NAMESPACE}/<group>/"
                                       "<type>/<edge node>[/<device>]")
        group, mtype, node = parts[1], parts[2], parts[3]
        if mtype in IGNORED_TYPES:
            return EMPTY
        if mtype in NODE_TYPES and len(parts) == 4:
            device: str | None = None
        elif mtype in DEVICE_TYPES and len(parts) == 5 and parts[4]:
            device = parts[4]
        else:
            raise DecodeError("topic", f"topic {printable(topic)!r}: message type "
                                       f"{printable(mtype)!r} with {len(parts) - 3} id levels "
                                       "is not a Sparkplug B topic")
        if not group or not node:
            raise DecodeError("topic", f"topic {printable(topic)!r} has an empty group or edge "
                                       "node id")
        if not all(level.isprintable() for level in parts[1:]):
            raise DecodeError("topic", f"topic {printable(topic)!r}: group, edge node and "
                                       "device ids must not contain control characters")
        p = parse_payload(payload)
        if len(p.metrics) > MAX_READINGS_PER_MESSAGE:
            raise DecodeError("too_many_readings",
                              f"{mtype} carries {len(p.metrics)} metrics; at most "
                              f"{MAX_READINGS_PER_MESSAGE} per message are accepted")
        ts = p.timestamp if p.timestamp is not None else received_ms
        node_id = f"{group}/{node}"
        device_id = node_id if device is None else f"{node_id}/{device}"
        key = (group, node)
        known_state = self._nodes.get(key)

        if mtype == "NDEATH":
            bd = next((m.value for m in p.metrics if m.name == "bdSeq"), None)
            if known_state is None:
                return DecodeResult(events=(DeviceEvent(
                    FORMAT, node_id, "device_offline",
                    f"edge node {node_id} died (NDEATH, bdSeq {bd!r}; no BIRTH seen)", ts,
                    includes_children=True),))
            if (known_state.bd_seq is not None and isinstance(bd, int)
                    and bd != known_state.bd_seq):
                return EMPTY  # a stale will message of an earlier session (spec 5.x)
            children = sorted(known_state.devices)
            self._nodes[key] = _Node(bd_seq=known_state.bd_seq)
            return DecodeResult(events=(DeviceEvent(
                FORMAT, node_id, "device_offline",
                f"edge node {node_id} died (NDEATH, bdSeq {bd!r})"
                + (f"; its devices {', '.join(children)} are offline too" if children else ""),
                ts, includes_children=True),))

        if p.seq is None:
            raise DecodeError("schema", f"{mtype} from {device_id} has no seq (every message "
                                        "but NDEATH carries one, 0-255)")
        if not 0 <= p.seq < SEQ_MODULUS:
            raise DecodeError("schema", f"{mtype} from {device_id} has seq {p.seq}, outside "
                                        "0-255")
        if mtype != "NBIRTH" and (known_state is None or not known_state.online):
            raise DecodeError("data_before_birth",
                              f"{mtype} from {device_id}: edge node {node_id} has sent no "
                              "NBIRTH since ingest started or since its NDEATH, so its metrics "
                              "are unknown; values are dropped until its next NBIRTH")
        if (mtype in ("DDATA", "DDEATH") and known_state is not None
                and device not in known_state.devices):
            raise DecodeError("data_before_birth",
                              f"{mtype} from {device_id}: device {device!r} has sent no DBIRTH "
                              "since its node's NBIRTH; values are dropped until its DBIRTH")
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        events: list[DeviceEvent] = []
        if mtype == "NBIRTH":
            bd = next((m.value for m in p.metrics if m.name == "bdSeq"), None)
            state = self._born(key, _Node(
                bd_seq=bd if isinstance(bd, int) and not isinstance(bd, bool) else None,
                online=True))
            state.last_seq, state.last_digest = p.seq, digest
        else:
            assert known_state is not None
            state = known_state
            self._nodes.move_to_end(key)
            events += self._check_seq(state, p.seq, digest, node_id, device_id, mtype, ts)

        if mtype == "DDEATH":
            assert device is not None
            state.devices.discard(device)
            for akey in [k for k in state.aliases if k[0] == device]:
                del state.aliases[akey]
            for nkey in [k for k in state.names if k[0] == device]:
                del state.names[nkey]
            events.append(DeviceEvent(FORMAT, device_id, "device_offline",
                                      f"device {device_id} died (DDEATH)", ts))
            return DecodeResult(events=tuple(events))

        if mtype == "DBIRTH":
            assert device is not None
            if device not in state.devices and len(state.devices) >= MAX_DEVICES_PER_NODE:
                raise DecodeError("too_many_devices",
                                  f"DBIRTH of {device_id}: edge node {node_id} already has "
                                  f"{MAX_DEVICES_PER_NODE} devices")
            state.devices.add(device)
            for akey in [k for k in state.aliases if k[0] == device]:
                del state.aliases[akey]
            for nkey in [k for k in state.names if k[0] == device]:
                del state.names[nkey]
        birth = mtype in ("NBIRTH", "DBIRTH")
        readings: list[DeviceReading] = []
        unknown: list[int] = []
        unannounced: list[str] = []
        for m in p.metrics:
            known: _Known | None = None
            if m.name is not None:
                if not m.name.isprintable() or len(m.name) > 256:
                    events.append(DeviceEvent(
                        FORMAT, device_id, "schema",
                        f"{mtype} metric name {short(m.name)} contains control characters "
                        "or is longer than 256 characters", ts))
                    continue
                known = state.names.get((device, m.name))
                if birth:
                    if known is None and len(state.names) >= MAX_METRICS_PER_DEVICE * (
                            1 + len(state.devices)):
                        events.append(DeviceEvent(
                            FORMAT, device_id, "schema",
                            f"{mtype} announces more metrics than kept per device "
                            f"({MAX_METRICS_PER_DEVICE}); {short(m.name)} ignored", ts))
                        continue
                    known = _Known(m.name, m.datatype, _unit_of(m.properties))
                    state.names[(device, m.name)] = known
                    if m.alias is not None:
                        state.aliases[(device, m.alias)] = known
                elif known is None:
                    unannounced.append(m.name)
                    continue
            elif m.alias is not None:
                known = state.aliases.get((device, m.alias))
                if known is None:
                    unknown.append(m.alias)
                    continue
            if known is None or _skipped_name(known.name):
                continue
            reading = self._reading(m, known, device_id, p.timestamp, ts, events)
            if reading is not None:
                readings.append(reading)
        if unknown:
            self.unknown_aliases += len(unknown)
            events.append(DeviceEvent(
                FORMAT, device_id, "unknown_alias",
                f"{mtype} from {device_id} uses metric aliases {unknown[:20]} never announced "
                "in a BIRTH (the node does not follow the specification); these values are "
                "dropped", ts))
        if unannounced:
            events.append(DeviceEvent(
                FORMAT, device_id, "unknown_metric",
                f"{mtype} from {device_id} names metrics "
                f"{', '.join(short(n) for n in unannounced[:20])} never announced in its "
                "BIRTH; these values are dropped until a BIRTH announces them", ts))
        return DecodeResult(readings=tuple(readings), events=tuple(events))

    def _check_seq(self, state: _Node, seq: int | None, digest: bytes, node_id: str,
                   device_id: str, mtype: str, ts: int) -> list[DeviceEvent]:
        if seq is None:
            return [DeviceEvent(FORMAT, device_id, "schema", f"{mtype} without seq", ts)]
        if not 0 <= seq < SEQ_MODULUS:
            return [DeviceEvent(FORMAT, device_id, "schema",
                                f"{mtype} seq {seq} is outside 0-255", ts)]
        last = state.last_seq
        events: list[DeviceEvent] = []
        if last is not None and seq != (last + 1) % SEQ_MODULUS:
            if seq == last and digest == state.last_digest:
                return []  # the same message delivered again (MQTT QoS 1 redelivery)
            expected = (last + 1) % SEQ_MODULUS
            lost = (seq - expected) % SEQ_MODULUS
            self.gaps += 1
            self.lost_messages += lost
            events.append(DeviceEvent(
                FORMAT, node_id, "sequence_gap",
                f"{mtype} from {device_id} has seq {seq}, expected {expected}: {lost} "
                f"message(s) of edge node {node_id} lost or out of order", ts))
        state.last_seq, state.last_digest = seq, digest
        return events

    @staticmethod
    def _reading(m: Metric, known: _Known, device_id: str, payload_ts: int | None, ts: int,
                 events: list[DeviceEvent]) -> DeviceReading | None:
        datatype = m.datatype if m.datatype is not None else known.datatype
        value = m.value
        if value is None or isinstance(value, bool | str | bytes):
            return None
        if datatype is not None and datatype not in NUMERIC_TYPES:
            return None
        fvalue = float(value)
        if not math.isfinite(fvalue) or fvalue < 0:
            events.append(DeviceEvent(
                FORMAT, device_id, "schema",
                f"metric {known.name!r} value {value!r}: registers are finite and >= 0",
                ts, channel=known.name))
            return None
        unit = _unit_of(m.properties) or known.unit
        return DeviceReading(
            format=FORMAT, device=device_id, channel=known.name, kind="register",
            value=fvalue, unit=unit,
            ts_ms=m.timestamp if m.timestamp is not None else payload_ts)
