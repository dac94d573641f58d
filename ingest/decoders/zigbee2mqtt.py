"""Zigbee2MQTT device state: ``zigbee2mqtt/<friendly name>`` JSON (format ``zigbee2mqtt``).

Source: Zigbee2MQTT documentation, "MQTT topics and messages" (``zigbee2mqtt/FRIENDLY_NAME``
carries the device state as one JSON object) and the device pages of metering plugs and DIN
rail meters (exposes ``energy`` [kWh], ``produced_energy`` [kWh], ``power`` [W]);
``advanced.last_seen`` adds ``last_seen`` (``ISO_8601``, ``ISO_8601_local`` or ``epoch`` [ms]).
Example::

    zigbee2mqtt/pump-room-meter {"energy":1523.42,"power":820,"voltage":229.8,
    "last_seen":"2026-11-21T02:00:00Z"}

=====================  ====  ========  ===================  ==================================
field                  unit  kind      channel              note
=====================  ====  ========  ===================  ==================================
``energy``             kWh   register  ``None``             consumed energy
``produced_energy``    kWh   register  ``produced_energy``  produced (exported) energy
``power``              W     --        --                   not used: instantaneous
``last_seen``          --    --        --                   reading time when configured
=====================  ====  ========  ===================  ==================================

Reading time: ``last_seen`` when the bridge is configured to send it (ISO 8601 with offset,
or epoch ms), otherwise the receive time (Zigbee2MQTT publishes a state as soon as the device
reports). A friendly name may contain ``/``; the bridge's own topics (``zigbee2mqtt/bridge/...``)
and the ``/set``, ``/get`` and ``/availability`` sub-topics are ignored, as are states without
an energy field (sensors, switches) and ``null`` values (not yet known to the bridge).
"""

from __future__ import annotations

from typing import Any, Final

from ingest.decoders import (
    EMPTY,
    DecodeError,
    DecodeResult,
    DeviceReading,
    FieldSpec,
    check_ts_ms,
    energy_value,
    iso_to_ms,
    json_object,
    short,
)

FORMAT: Final = "zigbee2mqtt"

FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("energy", "kWh", "register", "None", "consumed energy"),
    FieldSpec("produced_energy", "kWh", "register", "produced_energy", "produced energy"),
    FieldSpec("power", "W", "-", "-", "not used (instantaneous)"),
    FieldSpec("last_seen", "-", "-", "-", "ISO 8601 with offset or epoch ms; optional"),
)

_CHANNELS: Final = (("energy", None), ("produced_energy", "produced_energy"))
_IGNORED_SUFFIXES: Final = frozenset({"set", "get", "availability"})


def _last_seen(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return iso_to_ms(raw, "last_seen")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return check_ts_ms(raw, "last_seen")
    raise DecodeError("schema", f"last_seen must be ISO 8601 or epoch ms, got {short(raw)}")


def decode(topic: str, payload: bytes, received_ms: int) -> DecodeResult:
    """Decode one ``zigbee2mqtt/<friendly name>`` state message."""
    parts = topic.split("/")
    if len(parts) < 2 or parts[0] != "zigbee2mqtt" or not parts[1]:
        raise DecodeError("topic", f"topic {topic!r} is not zigbee2mqtt/<friendly name>")
    if parts[1] == "bridge" or (len(parts) > 2 and parts[-1] in _IGNORED_SUFFIXES):
        return EMPTY
    device = "/".join(parts[1:])
    doc = json_object(payload, "Zigbee2MQTT state")
    present = [(k, ch) for k, ch in _CHANNELS if doc.get(k) is not None]
    if not present:
        return EMPTY
    ts_ms = _last_seen(doc.get("last_seen"))
    return DecodeResult(readings=tuple(
        DeviceReading(format=FORMAT, device=device, channel=ch, kind="register",
                      value=energy_value(doc[k], k), unit="kWh", ts_ms=ts_ms)
        for k, ch in present
    ))
