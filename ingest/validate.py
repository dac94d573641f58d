"""Turn one MQTT message into accepted readings and rejections (pure; no I/O, no clock).

A router by topic (:func:`ingest.decoders.detect_format`): our own ``nzc/v1/...`` JSON is
validated as before; every other supported gateway format goes through its decoder in
:mod:`ingest.decoders`, then each device reading is mapped to our meter through the registry
(``source: {format, device, channel}`` on a meter), converted to the carrier's canonical unit
and checked against the clock exactly like our own format.

Rejections (dead letters, stage ``ingest``), besides those of our format:

* the decoder's message-level codes: ``malformed_json``, ``malformed_protobuf``, ``schema``,
  ``topic`` (no decoder claims the topic);
* ``unmapped_device``: no meter has ``source`` with this format and device id. One dead letter
  per device and message, naming the device and the channels it reported, so an installer can
  map it. Channels of a *mapped* device that no meter claims are ignored silently: devices
  report more than we meter (per-phase values beside the total, export beside import);
* per reading as for our format: ``unit``, ``clock_skew``, ``impossible_timestamp``;
* device events: ``device_offline`` (one per affected meter, ``meter_id`` set, or one without a
  meter when none is mapped), ``sequence_gap``, ``unknown_alias``, ``device_read_error`` and
  item-level ``schema``;
* ``decoder_error``: a decoder failed unexpectedly (a bug); the message is kept, ingest goes on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Literal
from zoneinfo import ZoneInfo

from carbon.registry import Meter, Registry
from carbon.units import UnitError, to_canonical_factor
from ingest.decoders import (
    DecodeError,
    DecodeResult,
    DeviceEvent,
    DeviceReading,
    detect_format,
    load_json,
    neuron,
    shelly,
    tasmota,
    zigbee2mqtt,
)
from ingest.decoders.sparkplug import SparkplugState
from ingest.schema import (
    MIN_TS_MS,
    DeadLetter,
    PayloadError,
    ReadingRecord,
    make_dead_letter,
    parse_payload,
)
from nzc.settings import MQTT_TOPIC_PREFIX

Decoder = Callable[[str, bytes, int], DecodeResult]
_STATELESS: dict[str, Decoder] = {
    "tasmota": tasmota.decode,
    "shelly_gen1": shelly.decode_gen1,
    "shelly_gen2": shelly.decode_gen2,
    "zigbee2mqtt": zigbee2mqtt.decode,
    "neuron": neuron.decode,
}
BINARY_FORMATS = frozenset({"sparkplug"})


def _site_of(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 5 and "/".join(parts[:2]) == MQTT_TOPIC_PREFIX and parts[4] == "readings":
        return parts[2]
    return None


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
        if ts_ms < MIN_TS_MS:
            return "impossible_timestamp", f"reading time {ts_ms} ms is before 2000-01-01"
        if ts_ms > self.received_ms + self.max_skew_s * 1000:
            return ("clock_skew",
                    f"reading time {ts_ms} ms is {(ts_ms - self.received_ms) / 1000:.0f} s ahead "
                    f"of the receive time; at most {self.max_skew_s} s is accepted")
        return ReadingRecord(
            meter_id=meter.meter_id, site_id=meter.site_id, ts_ms=ts_ms, kind=kind,
            value=value * k, unit=meter.canonical_unit, period_s=period_s,
            received_ms=self.received_ms, mqtt_topic=self.topic,
        )


def _decode_nzc(
    registry: Registry, topic: str, payload: bytes, check: _Checker,
    dead: Callable[..., DeadLetter],
) -> tuple[list[ReadingRecord], list[DeadLetter]]:
    site = _site_of(topic)
    if site is None:
        return [], [dead("topic", f"topic {topic!r} is not nzc/v1/<site>/<gateway>/readings",
                         payload)]
    try:
        wire = parse_payload(payload)
    except PayloadError as exc:
        return [], [dead(exc.code, str(exc), payload)]
    accepted: list[ReadingRecord] = []
    rejected: list[DeadLetter] = []
    for r in wire:
        raw = json.dumps(r.model_dump(mode="json", by_alias=True, exclude_none=True)).encode()
        meter = registry.meter(r.meter)
        if meter is None:
            rejected.append(dead("unknown_meter", f"meter {r.meter!r} is not in the registry",
                                 raw, r.meter))
            continue
        if meter.site_id != site:
            rejected.append(dead(
                "site_mismatch",
                f"meter {r.meter!r} belongs to site {meter.site_id!r}, published under {site!r}",
                raw, r.meter))
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
    return accepted, rejected


# (format, device) -> meters whose source names that device, built once per registry
_INDEX_CACHE: dict[int, tuple[Registry, dict[tuple[str, str], list[Meter]]]] = {}


def _device_index(registry: Registry) -> dict[tuple[str, str], list[Meter]]:
    cached = _INDEX_CACHE.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    index: dict[tuple[str, str], list[Meter]] = {}
    for m in registry.meters.values():
        if m.source is not None:
            index.setdefault((m.source.format, m.source.device), []).append(m)
    if len(_INDEX_CACHE) > 16:
        _INDEX_CACHE.clear()
    _INDEX_CACHE[id(registry)] = (registry, index)
    return index


def _reading_ts(registry: Registry, meter: Meter, r: DeviceReading, received_ms: int) -> int:
    if r.ts_ms is not None:
        return r.ts_ms
    if r.local_time is not None:
        site = registry.sites.get(meter.site_id)
        tz = ZoneInfo(site.timezone if site is not None else "Asia/Shanghai")
        return int(r.local_time.replace(tzinfo=tz).timestamp() * 1000)
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


def _map_result(
    registry: Registry, fmt: str, result: DecodeResult, check: _Checker,
    dead: Callable[..., DeadLetter],
) -> tuple[list[ReadingRecord], list[DeadLetter]]:
    accepted: list[ReadingRecord] = []
    rejected: list[DeadLetter] = []
    index = _device_index(registry)
    by_device: dict[str, list[DeviceReading]] = {}
    for r in result.readings:
        by_device.setdefault(r.device, []).append(r)
    for device, readings in by_device.items():
        if (fmt, device) not in index:
            channels = sorted({"(main)" if r.channel is None else r.channel for r in readings})
            rejected.append(dead(
                "unmapped_device",
                f"{fmt} device {device!r} is not mapped to a meter (channels: "
                f"{', '.join(channels)}); map it with source: {{format: {fmt}, device: "
                f"{device}, channel: <one of the channels, or none for (main)>}} on a meter "
                "in the registry",
                _describe({"format": fmt, "device": device,
                           "readings": [r.describe() for r in readings]})))
            continue
        for r in readings:
            meter = registry.meter_for_device(fmt, device, r.channel)
            if meter is None:
                continue  # a channel of a mapped device that no meter claims
            out = check.accept(meter, _reading_ts(registry, meter, r, check.received_ms),
                               r.kind, r.value, r.unit or meter.unit, r.period_s)
            if isinstance(out, ReadingRecord):
                accepted.append(out)
            else:
                rejected.append(dead(out[0], out[1], _describe(r.describe()), meter.meter_id))
    for e in result.events:
        meters = _meters_of_event(registry, fmt, e)
        if not meters:
            rejected.append(dead(e.code, e.reason, _describe(e.describe())))
        for m in meters:
            rejected.append(dead(e.code, e.reason, _describe({**e.describe(),
                                                              "meter": m.meter_id}),
                                 m.meter_id))
    return accepted, rejected


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
            stage="ingest", code=code, reason=reason, mqtt_topic=topic, payload=raw,
            received_ms=received_ms, meter_id=meter,
        )

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
        return [], [dead("topic", f"topic {topic!r} matches none of the supported formats "
                                  "(nzc/v1/..., tele/<device>/SENSOR, shellies/..., "
                                  "<prefix>/events/rpc, zigbee2mqtt/..., /neuron/..., "
                                  "spBv1.0/...)", payload)]
    try:
        if fmt == "sparkplug":
            state = sparkplug if sparkplug is not None else SparkplugState()
            result = state.decode(topic, payload, received_ms)
        else:
            result = _STATELESS[fmt](topic, payload, received_ms)
        return _map_result(registry, fmt, result, check, dead)
    except DecodeError as exc:
        return [], [dead(exc.code, f"{fmt}: {exc}", _raw(fmt, payload))]
    except Exception as exc:  # a decoder bug must not stop ingest: keep the message
        return [], [dead("decoder_error", f"{fmt} decoder failed: {type(exc).__name__}: {exc}",
                         _raw(fmt, payload))]

