"""Tasmota energy telemetry: ``tele/<device>/SENSOR`` JSON (format ``tasmota``).

Source: Tasmota firmware ``xdrv_03_energy.ino`` (``EnergyShow``), documented at
tasmota.github.io (Commands: ``TelePeriod``, ``SetOption52``, ``SetOption129``). Example::

    tele/plug-7/SENSOR {"Time":"2026-11-21T10:00:00","ENERGY":{"TotalStartTime":
    "2026-01-01T00:00:00","Total":1234.567,"Yesterday":3.2,"Today":1.1,"Power":120, ...}}

=====================  ======  ========  =================  ==================================
field                  unit    kind      channel            note
=====================  ======  ========  =================  ==================================
``ENERGY.Total``       kWh     register  ``None``           import register; with several
                                                            phases the sum of the array
                                                            (a sum that overflows to infinity
                                                            is rejected by ingest.validate)
``ENERGY.Total[i]``    kWh     register  ``Total/<i+1>``    per phase when ``SetOption129 1``
``ENERGY.ExportActive`` kWh    register  ``ExportActive``   export register (sum of phases)
``ENERGY.ExportActive[i]`` kWh register  ``ExportActive/<i+1>``  per phase
``ENERGY.Today``       kWh     --        --                 not used: resets at device-local
                                                            midnight; ``Total`` carries it
``ENERGY.Yesterday``   kWh     --        --                 not used
``ENERGY.Power``       W       --        --                 not used: instantaneous power
``Time``               local   --        --                 reading time, see below
=====================  ======  ========  =================  ==================================

Reading time. Tasmota writes ``Time`` as the device's *local* time without an offset (its
``Timezone`` setting), unless ``SetOption52 1`` appends the offset. We take:

1. ``Time`` with an offset: exact (recommended: ``SetOption52 1`` on every device);
2. ``Time`` without an offset: the device's wall-clock time in the *site's* time zone from the
   registry (``timezone``, default Asia/Shanghai); the installer sets ``Timezone 8`` on the
   device. A device in another zone shows up as ``clock_skew`` (ahead) or ``too_late``
   (behind) dead letters rather than as silently shifted energy;
3. no ``Time``, or a clock that was never set (before 2000-01-01, i.e. no NTP yet): the
   receive time. Tasmota does not buffer telemetry while offline, so the receive time is late
   only by the time a message waits in the broker while ingest is down.

A ``SENSOR`` message without ``ENERGY`` (a temperature sensor, say) carries no energy and is
ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from ingest.decoders import (
    EMPTY,
    DecodeError,
    DecodeResult,
    DeviceReading,
    FieldSpec,
    energy_value,
    iso_to_ms,
    json_object,
    short,
)

FORMAT: Final = "tasmota"
MAX_PHASES: Final = 8  # ESP32 builds support up to 8 channels; ESP8266 builds 3

FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("ENERGY.Total", "kWh", "register", "None",
              "import register; sum of the phases when the device reports an array"),
    FieldSpec("ENERGY.Total[i]", "kWh", "register", "Total/<i+1>", "per phase (SetOption129 1)"),
    FieldSpec("ENERGY.ExportActive", "kWh", "register", "ExportActive",
              "export register, sum of the phases"),
    FieldSpec("ENERGY.ExportActive[i]", "kWh", "register", "ExportActive/<i+1>", "per phase"),
    FieldSpec("ENERGY.Today", "kWh", "-", "-", "not used (resets at device-local midnight)"),
    FieldSpec("ENERGY.Yesterday", "kWh", "-", "-", "not used"),
    FieldSpec("ENERGY.Power", "W", "-", "-", "not used (instantaneous)"),
    FieldSpec("Time", "local", "-", "-",
              "local time unless SetOption52 adds the offset; see the module docstring"),
)

_CLOCK_NOT_SET_BEFORE = datetime(2000, 1, 1)


def device_of(topic: str) -> str:
    """The Tasmota device topic (``%topic%``) from ``tele/<device>/SENSOR``."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "tele" or parts[2] != "SENSOR" or not parts[1]:
        raise DecodeError("topic", f"topic {topic!r} is not tele/<device>/SENSOR")
    return parts[1]


def reading_time(raw: Any) -> tuple[int | None, datetime | None]:
    """``(ts_ms, local_time)`` from Tasmota's ``Time`` (see the module docstring)."""
    if raw is None:
        return None, None
    if not isinstance(raw, str):
        raise DecodeError("schema", f"Time must be a string, got {short(raw)}")
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise DecodeError("schema", f"Time {short(raw)} is not an ISO 8601 time") from None
    if dt.tzinfo is not None:
        return iso_to_ms(raw, "Time"), None
    if dt < _CLOCK_NOT_SET_BEFORE:
        return None, None  # device clock never set: receive time
    return None, dt


def _registers(energy: dict[str, Any], key: str, base_channel: str | None,
               phase_prefix: str) -> list[tuple[str | None, float]]:
    raw = energy[key]
    if isinstance(raw, list):
        if not 1 <= len(raw) <= MAX_PHASES:
            raise DecodeError("schema", f"ENERGY.{key} has {len(raw)} phases; 1-{MAX_PHASES} "
                                        "are accepted")
        values = [energy_value(v, f"ENERGY.{key}[{i}]") for i, v in enumerate(raw)]
        out: list[tuple[str | None, float]] = [(base_channel, sum(values))]
        out += [(f"{phase_prefix}/{i + 1}", v) for i, v in enumerate(values)]
        return out
    return [(base_channel, energy_value(raw, f"ENERGY.{key}"))]


def decode(topic: str, payload: bytes, received_ms: int) -> DecodeResult:
    """Decode one ``tele/<device>/SENSOR`` message (``received_ms`` is not needed: the
    validator falls back to it when the result carries no time)."""
    device = device_of(topic)
    doc = json_object(payload, "Tasmota SENSOR payload")
    energy = doc.get("ENERGY")
    if energy is None:
        return EMPTY
    if not isinstance(energy, dict):
        raise DecodeError("schema", f"ENERGY must be an object, got {short(energy)}")
    if "Total" not in energy:
        raise DecodeError("schema", "ENERGY.Total is required (the import register [kWh])")
    ts_ms, local = reading_time(doc.get("Time"))
    values = _registers(energy, "Total", None, "Total")
    if energy.get("ExportActive") is not None:
        values += _registers(energy, "ExportActive", "ExportActive", "ExportActive")
    return DecodeResult(readings=tuple(
        DeviceReading(format=FORMAT, device=device, channel=channel, kind="register",
                      value=value, unit="kWh", ts_ms=ts_ms, local_time=local)
        for channel, value in values
    ))
