"""Turn one MQTT message into accepted readings and rejections (pure; no I/O, no clock).

A router by topic (:func:`ingest.decoders.detect_format`): our own ``nzc/v1/...`` JSON is
validated as before; every other supported gateway format goes through its decoder in
:mod:`ingest.decoders`, then each device reading is mapped to our meter through the registry
(``source: {format, device, channel}`` on a meter), converted to the carrier's canonical unit
and checked against the clock exactly like our own format.

Rejections (dead letters, stage ``ingest``), besides those of our format:

* limits per message, checked first: ``message_too_large`` (payload over
  :data:`~ingest.decoders.MAX_MESSAGE_BYTES`), ``too_many_readings`` (more than
  :data:`~ingest.decoders.MAX_READINGS_PER_MESSAGE` readings, tags or metrics);
* the decoder's message-level codes: ``malformed_json`` (also NaN/Infinity, nesting deeper
  than 64, integers over 4,300 digits), ``malformed_protobuf``, ``schema`` (names the field),
  ``impossible_timestamp``, ``topic`` (no decoder claims the topic), and for Sparkplug B
  ``data_before_birth`` and ``too_many_devices``;
* ``unmapped_device``: no meter has ``source`` with this format and device id. One dead letter
  per message, naming the device and the channels it reported (or, when a message names
  several unmapped devices, the first 20 of them and their number), so an installer can map
  it. Channels of a *mapped* device that no meter claims are ignored silently: devices report
  more than we meter (per-phase values beside the total, export beside import);
* in our format more than 10 ``unknown_meter``, ``site_mismatch`` or ``gateway_mismatch``
  readings of one code in one message become one summarising dead letter (the count, the
  first 20 meters and readings);
* gateway binding (issue 9, defence in depth behind the broker ACL): ``gateway_mismatch``
  (our format: the meter's ``gateway`` is not the topic's ``<gateway>``) and
  ``device_not_on_gateway`` (vendor formats: the device the payload names is not bound, in the
  registry, to the gateway that owns the topic's device: :func:`ingest.decoders.topic_device`.
  A Shelly Gen2 ``src`` must be the topic prefix's device or one on the same gateway; a Neuron
  upload must come on ``/neuron/<app>/<node>/<group>`` naming its own node and group);
* per reading as for our format: ``unit``, ``clock_skew``, ``impossible_timestamp``,
  ``out_of_range`` (after conversion to the canonical unit the value must be finite and in
  ``[0, register_max]`` of the meter, also for interval values; a Tasmota sum of phases or a
  Sparkplug UInt64 of 2^64-1 lands here);
* device events: ``device_offline`` (one per affected meter, ``meter_id`` set, or one without a
  meter when none is mapped), ``sequence_gap``, ``unknown_alias``, ``unknown_metric``,
  ``device_read_error`` and item-level ``schema``; more than 10 events of one code for
  unmapped devices in one message become one summarising dead letter;
* ``decoder_error``: a decoder failed unexpectedly (a bug); the message is kept, ingest goes on.
  ``scripts/fuzz`` and the hypothesis tests assert it never happens.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from carbon.registry import Meter, Registry
from carbon.units import UnitError, to_canonical_factor
from core.settings import MQTT_TOPIC_PREFIX
from ingest.decoders import (
    MAX_MESSAGE_BYTES,
    MAX_READINGS_PER_MESSAGE,
    DecodeError,
    DecodeResult,
    DeviceEvent,
    DeviceReading,
    check_ts_ms,
    detect_format,
    load_json,
    neuron,
    printable,
    shelly,
    tasmota,
    topic_device,
    zigbee2mqtt,
)
from ingest.decoders.sparkplug import SparkplugState
from ingest.schema import (
    DeadLetter,
    PayloadError,
    ReadingRecord,
    make_dead_letter,
    parse_payload,
)

Decoder = Callable[[str, bytes, int], DecodeResult]
_STATELESS: dict[str, Decoder] = {
    "tasmota": tasmota.decode,
    "shelly_gen1": shelly.decode_gen1,
    "shelly_gen2": shelly.decode_gen2,
    "zigbee2mqtt": zigbee2mqtt.decode,
    "neuron": neuron.decode,
}
BINARY_FORMATS = frozenset({"sparkplug"})


def _site_of(topic: str) -> tuple[str, str] | None:
    """``(site, gateway)`` of ``nzc/v1/<site>/<gateway>/readings``."""
    parts = topic.split("/")
    if len(parts) == 5 and "/".join(parts[:2]) == MQTT_TOPIC_PREFIX and parts[4] == "readings":
        return parts[2], parts[3]
    return None


MAX_LISTED = 20  # devices / meters / events named in one summarising dead letter
# More rejections than this of one code in one message that are about the registry or the
# topic rather than a meter's data (unknown_meter, site_mismatch, gateway_mismatch, events of
# unmapped devices) become one summarising dead letter.
_SUMMARY_FROM = 10

# Relative tolerance of the register_max comparison after unit conversion (Wh -> kWh etc.
# multiply by factors such as 0.001 that are not exact in binary floating point).
_RANGE_TOLERANCE = 1e-9


class _Checker:
    """Unit conversion and clock checks shared by every format."""

    def __init__(self, topic: str, received_ms: int, max_clock_skew_s: int) -> None:
        self.topic, self.received_ms, self.max_skew_s = topic, received_ms, max_clock_skew_s

    def accept(self, meter: Meter, ts_ms: int, kind: Literal["register", "interval"],
               value: float, unit: str, period_s: int | None,
               ) -> ReadingRecord | tuple[str, str]:
        """The reading record, or ``(code, reason)`` of its rejection."""
        try:
            k = to_canonical_factor(meter.carrier, unit)
        except UnitError as exc:
            return "unit", f"meter {meter.meter_id!r}: {exc}"
        try:
            check_ts_ms(ts_ms, "reading time")
        except DecodeError as exc:
            return "impossible_timestamp", str(exc)
        if ts_ms > self.received_ms + self.max_skew_s * 1000:
            return ("clock_skew",
                    f"reading time {ts_ms} ms is {(ts_ms - self.received_ms) / 1000:.0f} s ahead "
                    f"of the receive time; at most {self.max_skew_s} s is accepted")
        canonical = value * k + 0.0  # + 0.0 turns -0.0 into 0.0
        limit = meter.register_max * meter.to_canonical
        if not (math.isfinite(canonical) and 0.0 <= canonical <= limit * (1 + _RANGE_TOLERANCE)):
            return ("out_of_range",
                    f"meter {meter.meter_id!r}: {kind} value {value!r} {printable(unit)} is "
                    f"{canonical!r} {meter.canonical_unit}; it must be finite and within "
                    f"[0, {limit!r}] (register_max {meter.register_max!r} {meter.unit})")
        canonical = min(canonical, limit)  # within the conversion's rounding of register_max
        return ReadingRecord(
            meter_id=meter.meter_id, site_id=meter.site_id, ts_ms=ts_ms, kind=kind,
            value=canonical, unit=meter.canonical_unit, period_s=period_s,
            received_ms=self.received_ms, mqtt_topic=self.topic,
        )


def _decode_nzc(
    registry: Registry, topic: str, payload: bytes, check: _Checker,
    dead: Callable[..., DeadLetter],
) -> tuple[list[ReadingRecord], list[DeadLetter]]:
    where = _site_of(topic)
    if where is None:
        return [], [dead("topic", f"topic {printable(topic)!r} is not "
                                  "nzc/v1/<site>/<gateway>/readings", payload)]
    site, gateway = where
    try:
        wire = parse_payload(payload)
    except PayloadError as exc:
        return [], [dead(exc.code, str(exc), payload)]
    accepted: list[ReadingRecord] = []
    rejected: list[DeadLetter] = []
    # registry/topic mismatches: (reason, raw reading, meter id) by code, summarised below
    mismatches: dict[str, list[tuple[str, bytes, str]]] = {}
    for r in wire:
        raw = json.dumps(r.model_dump(mode="json", by_alias=True, exclude_none=True)).encode()
        meter = registry.meter(r.meter)
        if meter is None:
            mismatches.setdefault("unknown_meter", []).append(
                (f"meter {r.meter!r} is not in the registry", raw, r.meter))
            continue
        if meter.site_id != site:
            mismatches.setdefault("site_mismatch", []).append((
                f"meter {r.meter!r} belongs to site {meter.site_id!r}, published under "
                f"{printable(site)!r}", raw, r.meter))
            continue
        if meter.gateway_id != gateway:
            mismatches.setdefault("gateway_mismatch", []).append((
                f"meter {r.meter!r} is on gateway {meter.gateway_id!r} of site {site!r}, "
                f"published by gateway {printable(gateway)!r}", raw, r.meter))
            continue
        is_register = r.register_value is not None
        value = r.register_value if is_register else r.value
        assert value is not None
        out = check.accept(meter, r.ts_ms, "register" if is_register else "interval", value,
                           r.unit, r.period_s)
        if isinstance(out, ReadingRecord):
            accepted.append(out)
        else:
            rejected.append(dead(out[0], out[1], raw, r.meter))
    for code, items in mismatches.items():
        if len(items) <= _SUMMARY_FROM:
            rejected += [dead(code, reason, raw, meter_id) for reason, raw, meter_id in items]
            continue
        meters = sorted({m for _, _, m in items})
        rejected.append(dead(
            code, f"{len(items)} readings of {len(meters)} meters in one message: {code}; "
                  f"the first: {items[0][0]}; meters (first {min(len(meters), MAX_LISTED)}): "
                  + ", ".join(meters[:MAX_LISTED]),
            b'{"readings":[' + b",".join(raw for _, raw, _ in items[:MAX_LISTED]) + b"]}"))
    return accepted, rejected


@dataclass(frozen=True)
class _Index:
    """Registry lookups of the vendor formats, built once per registry."""

    # (format, device) -> meters whose source names that device
    devices: dict[tuple[str, str], list[Meter]]
    # (format, topic key) -> (site, gateway) of the meters of the devices the key covers
    topic_gateways: dict[tuple[str, str], frozenset[tuple[str, str]]]


_INDEX_CACHE: dict[int, tuple[Registry, _Index]] = {}


def _topic_keys(fmt: str, device: str) -> list[str]:
    """Topic keys (:func:`ingest.decoders.topic_device`) that cover ``device``: the device id
    itself, and for Neuron ``<node>/<group>`` / Sparkplug ``<group>/<node>`` its parent."""
    keys = [device]
    if fmt == "neuron":
        keys.append(device.rsplit("/", 1)[0])
    elif fmt == "sparkplug" and device.count("/") >= 2:
        keys.append("/".join(device.split("/")[:2]))
    return keys


def _index(registry: Registry) -> _Index:
    cached = _INDEX_CACHE.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    devices: dict[tuple[str, str], list[Meter]] = {}
    gateways: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for m in registry.meters.values():
        if m.source is not None:
            devices.setdefault((m.source.format, m.source.device), []).append(m)
            for key in _topic_keys(m.source.format, m.source.device):
                gateways.setdefault((m.source.format, key), set()).add((m.site_id, m.gateway_id))
    index = _Index(devices, {k: frozenset(v) for k, v in gateways.items()})
    if len(_INDEX_CACHE) > 16:
        _INDEX_CACHE.clear()
    _INDEX_CACHE[id(registry)] = (registry, index)
    return index


def _device_index(registry: Registry) -> dict[tuple[str, str], list[Meter]]:
    return _index(registry).devices


def _reading_ts(registry: Registry, meter: Meter, r: DeviceReading, received_ms: int) -> int:
    if r.ts_ms is not None:
        return r.ts_ms
    if r.local_time is not None:
        site = registry.sites.get(meter.site_id)
        tz = ZoneInfo(site.timezone if site is not None else "Asia/Shanghai")
        try:
            return int(r.local_time.replace(tzinfo=tz).timestamp() * 1000)
        except (OverflowError, ValueError, OSError):
            return -1  # not representable in UTC: impossible_timestamp
    return received_ms


def _meters_of_event(registry: Registry, fmt: str, e: DeviceEvent) -> list[Meter]:
    index = _device_index(registry)
    if e.code == "device_offline":
        meters = list(index.get((fmt, e.device), []))
        if e.includes_children:
            prefix = e.device + "/"
            meters += [m for (f, d), ms in index.items() if f == fmt and d.startswith(prefix)
                       for m in ms]
        return meters
    meter = registry.meter_for_device(fmt, e.device, e.channel)
    return [meter] if meter is not None else []




def _unmapped(fmt: str, by_device: dict[str, list[DeviceReading]],
              dead: Callable[..., DeadLetter]) -> DeadLetter:
    """One dead letter for every unmapped device of a message."""
    def channels(readings: list[DeviceReading]) -> str:
        return ", ".join(sorted({"(main)" if r.channel is None else printable(r.channel)
                                 for r in readings})[:MAX_LISTED])

    if len(by_device) == 1:
        ((device, readings),) = by_device.items()
        return dead(
            "unmapped_device",
            f"{fmt} device {device!r} is not mapped to a meter (channels: "
            f"{channels(readings)}); map it with source: {{format: {fmt}, device: "
            f"{printable(device)}, channel: <one of the channels, or none for (main)>}} on a "
            "meter in the registry",
            _describe({"format": fmt, "device": device,
                       "readings": [r.describe() for r in readings[:MAX_LISTED]]}))
    listed = list(by_device.items())[:MAX_LISTED]
    return dead(
        "unmapped_device",
        f"{len(by_device)} {fmt} devices of this message are not mapped to a meter "
        f"(first {len(listed)}: "
        + "; ".join(f"{d!r} ({channels(rs)})" for d, rs in listed)
        + f"); map them with source: {{format: {fmt}, device: ..., channel: ...}} on meters "
        "in the registry",
        _describe({"format": fmt, "unmapped_devices": len(by_device),
                   "readings": sum(len(rs) for rs in by_device.values()),
                   "devices": {d: [r.describe() for r in rs[:MAX_LISTED]] for d, rs in listed}}))


def _map_result(
    registry: Registry, fmt: str, topic: str, result: DecodeResult, check: _Checker,
    dead: Callable[..., DeadLetter],
) -> tuple[list[ReadingRecord], list[DeadLetter]]:
    accepted: list[ReadingRecord] = []
    rejected: list[DeadLetter] = []
    index = _index(registry)
    if len(result.readings) + len(result.events) > MAX_READINGS_PER_MESSAGE:
        raise DecodeError("too_many_readings",
                          f"message carries {len(result.readings)} readings and "
                          f"{len(result.events)} events; at most {MAX_READINGS_PER_MESSAGE} "
                          "per message are accepted")
    tkey = topic_device(fmt, topic)
    topic_gateways = (frozenset() if tkey is None
                      else index.topic_gateways.get((fmt, tkey[0]), frozenset()))
    by_device: dict[str, list[DeviceReading]] = {}
    for r in result.readings:
        by_device.setdefault(r.device, []).append(r)
    unmapped: dict[str, list[DeviceReading]] = {}
    for device, readings in by_device.items():
        if (fmt, device) not in index.devices:
            unmapped[device] = readings
            continue
        for r in readings:
            meter = registry.meter_for_device(fmt, device, r.channel)
            if meter is None:
                continue  # a channel of a mapped device that no meter claims
            if (meter.site_id, meter.gateway_id) not in topic_gateways:
                rejected.append(dead("device_not_on_gateway",
                                     _not_on_gateway(fmt, topic, tkey, device, meter),
                                     _describe(r.describe()), meter.meter_id))
                continue
            out = check.accept(meter, _reading_ts(registry, meter, r, check.received_ms),
                               r.kind, r.value, r.unit or meter.unit, r.period_s)
            if isinstance(out, ReadingRecord):
                accepted.append(out)
            else:
                rejected.append(dead(out[0], out[1], _describe(r.describe()), meter.meter_id))
    if unmapped:
        rejected.append(_unmapped(fmt, unmapped, dead))
    orphans: dict[str, list[DeviceEvent]] = {}
    for e in result.events:
        meters = _meters_of_event(registry, fmt, e)
        if not meters:
            orphans.setdefault(e.code, []).append(e)
        for m in meters:
            rejected.append(dead(e.code, e.reason, _describe({**e.describe(),
                                                              "meter": m.meter_id}),
                                 m.meter_id))
    for code, events in orphans.items():
        if len(events) <= _SUMMARY_FROM:
            rejected += [dead(code, e.reason, _describe(e.describe())) for e in events]
            continue
        rejected.append(dead(
            code, f"{len(events)} {code} events of unmapped {fmt} devices in one message; "
                  f"the first: {events[0].reason}",
            _describe({"format": fmt, "event": code, "events": len(events),
                       "first": [e.describe() for e in events[:MAX_LISTED]]})))
    return accepted, rejected


def _not_on_gateway(fmt: str, topic: str, tkey: tuple[str, bool] | None, device: str,
                    meter: Meter) -> str:
    if tkey is None:
        where = (f"topic {printable(topic)!r} names no {fmt} device, so no gateway owns it"
                 + ("; configure the Neuron north app's upload topic as "
                    "/neuron/<app>/<node>/<group> (the default since Neuron 2.4)"
                    if fmt == "neuron" else ""))
    else:
        where = (f"topic {printable(topic)!r} belongs to {fmt} device {printable(tkey[0])!r}, "
                 "which is not on that gateway in the registry")
    return (f"{fmt} device {printable(device)!r} (meter {meter.meter_id!r}) is on gateway "
            f"{meter.gateway_id!r} of site {meter.site_id!r}; {where}")


def _describe(d: dict[str, Any]) -> bytes:
    return json.dumps(d, separators=(",", ":"), sort_keys=True, default=str).encode()


def _raw(fmt: str | None, payload: bytes) -> bytes:
    """Payload kept in a message-level dead letter: binary formats as base64 text."""
    if fmt in BINARY_FORMATS:
        return b"base64:" + base64.b64encode(payload)
    return payload


def decode_message(
    registry: Registry, topic: str, payload: bytes, *, received_ms: int, max_clock_skew_s: int,
    sparkplug: SparkplugState | None = None,
) -> tuple[list[ReadingRecord], list[DeadLetter]]:
    """Validate one MQTT message of any supported format against the registry.

    ``sparkplug`` is the Sparkplug B decoder state (aliases, sequence numbers) the caller
    keeps across messages; without it a fresh state is used (aliases of earlier BIRTHs are
    then unknown). A malformed message is one dead letter; each bad reading in a valid message
    is rejected alone (see the module docstring for the codes). Never raises on input.
    """
    check = _Checker(topic, received_ms, max_clock_skew_s)

    def dead(code: str, reason: str, raw: bytes, meter: str | None = None) -> DeadLetter:
        return make_dead_letter(
            stage="ingest", code=code, reason=printable(reason), mqtt_topic=topic, payload=raw,
            received_ms=received_ms, meter_id=meter,
        )

    if len(payload) > MAX_MESSAGE_BYTES:
        return [], [dead("message_too_large",
                         f"payload of {len(payload)} bytes; at most {MAX_MESSAGE_BYTES} bytes "
                         "per message are accepted", payload)]
    fmt: str | None = None
    try:
        fmt = detect_format(topic)
        if fmt == "nzc":
            return _decode_nzc(registry, topic, payload, check, dead)
        if fmt is None:
            try:
                if neuron.is_upload(load_json(payload)):
                    fmt = "neuron"  # a Neuron upload on a custom topic
            except DecodeError:
                pass
        if fmt is None:
            return [], [dead("topic", f"topic {printable(topic)!r} matches none of the "
                                      "supported formats (nzc/v1/..., tele/<device>/SENSOR, "
                                      "shellies/..., <prefix>/events/rpc, zigbee2mqtt/..., "
                                      "/neuron/..., spBv1.0/...)", payload)]
        if fmt == "sparkplug":
            state = sparkplug if sparkplug is not None else SparkplugState()
            result = state.decode(topic, payload, received_ms)
        else:
            result = _STATELESS[fmt](topic, payload, received_ms)
        return _map_result(registry, fmt, topic, result, check, dead)
    except DecodeError as exc:
        return [], [dead(exc.code, f"{fmt}: {exc}", _raw(fmt, payload))]
    except RecursionError:
        return [], [dead("malformed_json", f"{fmt}: payload nests too deeply",
                         _raw(fmt, payload))]
    except Exception as exc:  # a decoder bug must not stop ingest: keep the message
        return [], [dead("decoder_error",
                         f"{fmt} decoder failed: {type(exc).__name__}: {printable(str(exc))}",
                         _raw(fmt, payload))]
