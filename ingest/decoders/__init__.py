"""Decoders for the gateway formats that pilot zones run, one module per format.

Each decoder turns one MQTT message (topic, payload bytes, receive time [epoch ms]) into a
:class:`DecodeResult`: device readings (which device and channel, when, which value in which
unit) and device events (offline, lost messages, read errors), or raises :class:`DecodeError`
with a stable ``code`` when the message as a whole cannot be read. Decoders know nothing of
the site registry: :mod:`ingest.validate` maps ``(format, device, channel)`` to our meter ids
(``source:`` on a meter in the registry YAML), converts units and checks clocks.

=================  ===============================  =========================================
format             topic                            module
=================  ===============================  =========================================
``tasmota``        ``tele/<device>/SENSOR``         :mod:`ingest.decoders.tasmota`
``shelly_gen1``    ``shellies/<id>/emeter/<n>/..``  :mod:`ingest.decoders.shelly`
``shelly_gen2``    ``<prefix>/events/rpc``          :mod:`ingest.decoders.shelly`
``zigbee2mqtt``    ``zigbee2mqtt/<friendly name>``  :mod:`ingest.decoders.zigbee2mqtt`
``neuron``         ``/neuron/<app>/<driver>/<grp>`` :mod:`ingest.decoders.neuron`
``sparkplug``      ``spBv1.0/<group>/<type>/..``    :mod:`ingest.decoders.sparkplug`
=================  ===============================  =========================================

Channel names are the vendor's own field path so that an installer can copy them from an
``unmapped_device`` dead letter into the registry: ``None`` for a device's one main register
(Tasmota ``ENERGY.Total``, Zigbee2MQTT ``energy``), otherwise e.g. ``Total/2`` (Tasmota phase
L2), ``emeter/0/total`` (Shelly Gen1), ``emdata:0/total_act`` (Shelly Gen2),
``00-00-00-00`` (DL/T 645 data identifier via Neuron), the metric name (Sparkplug B).

Reading times: ``ts_ms`` [epoch ms, UTC] when the device says when; ``local_time`` (naive
wall-clock time) when the device only gives its local time (Tasmota), resolved by
:mod:`ingest.validate` in the site's time zone; neither when the device gives no time at all
(Shelly Gen1), and then the receive time is used.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple


class DecodeError(ValueError):
    """A message that cannot be decoded as a whole.

    ``code`` is stable and machine-readable: ``malformed_json`` (not UTF-8 JSON),
    ``malformed_protobuf`` (Sparkplug B bytes that do not parse), ``schema`` (a required field
    is missing or has the wrong type; the message names it), ``topic`` (the topic does not
    have the format's shape).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FieldSpec(NamedTuple):
    """One row of a decoder's field table: where a value sits in the vendor's message, its
    unit, whether it is a cumulative register, the channel name it gets, and a note."""

    path: str
    unit: str
    kind: str
    channel: str
    note: str


@dataclass(frozen=True)
class DeviceReading:
    """One value a device reported, before registry mapping.

    ``unit`` is the unit the vendor documents for the field (``kWh``, ``Wh``), or ``None``
    when the format carries no unit (Sparkplug B metrics without an ``engUnit`` property):
    the meter's registry ``unit`` applies then. ``ts_ms`` [epoch ms, UTC] or ``local_time``
    (naive device wall-clock time) or neither (use the receive time).
    """

    format: str
    device: str
    channel: str | None
    kind: Literal["register", "interval"]
    value: float
    unit: str | None
    ts_ms: int | None = None
    local_time: datetime | None = None
    period_s: int | None = None

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary, kept as the payload of a dead letter about this reading."""
        d = asdict(self)
        d["local_time"] = None if self.local_time is None else self.local_time.isoformat()
        return {k: v for k, v in d.items() if v is not None or k == "channel"}


@dataclass(frozen=True)
class DeviceEvent:
    """Something a device or gateway told us that is not a reading.

    ``code``: ``device_offline`` (Sparkplug B DEATH; ``includes_children`` when a node's
    death takes its devices with it), ``sequence_gap`` (Sparkplug B messages lost),
    ``unknown_alias`` (a Sparkplug B metric alias never announced in a BIRTH),
    ``device_read_error`` (the gateway could not read a meter), ``schema`` (one item of an
    otherwise valid message is malformed). ``ts_ms`` [epoch ms, UTC].
    """

    format: str
    device: str
    code: str
    reason: str
    ts_ms: int
    channel: str | None = None
    includes_children: bool = False

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary, kept as the payload of the dead letter for this event."""
        return {"event": self.code, **{k: v for k, v in asdict(self).items() if k != "code"}}


@dataclass(frozen=True)
class DecodeResult:
    """What one message said: readings and events (both may be empty: a message the format
    defines but that carries no energy, such as a Tasmota temperature sensor or a Neuron
    heartbeat, is ignored without a dead letter)."""

    readings: tuple[DeviceReading, ...] = ()
    events: tuple[DeviceEvent, ...] = ()


EMPTY = DecodeResult()


def load_json(payload: bytes) -> Any:
    """Parse UTF-8 JSON; raise :class:`DecodeError` ``malformed_json`` otherwise."""
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError("malformed_json", f"payload is not UTF-8 JSON: {exc}") from None


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    """Parse a payload that must be a JSON object (``what`` names it in the error)."""
    doc = load_json(payload)
    if not isinstance(doc, dict):
        raise DecodeError("schema", f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def energy_value(raw: Any, where: str) -> float:
    """A register or energy value: a finite number >= 0 (not a bool); raises ``schema``."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise DecodeError("schema", f"{where} must be a number, got {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise DecodeError("schema", f"{where} is not a finite number: {raw!r}")
    if value < 0:
        raise DecodeError("schema", f"{where} is negative ({raw!r}); energy registers are >= 0")
    return value


def iso_to_ms(text: str, where: str) -> int:
    """ISO 8601 time with a UTC offset -> epoch ms; raises ``schema`` naming ``where``."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError("schema", f"{where} {text!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        raise DecodeError("schema", f"{where} {text!r} has no UTC offset")
    return int(dt.astimezone(UTC).timestamp() * 1000)


# Topic shapes -> format. Neuron's upload topic is configurable: a JSON payload with Neuron's
# keys on any other topic is recognised as well (see detect_format).
def detect_format(topic: str) -> str | None:
    """The gateway format a topic belongs to, or ``None`` when no decoder claims it."""
    parts = topic.split("/")
    head = parts[0]
    if head == "nzc":
        return "nzc"
    if head == "tele" and len(parts) == 3 and parts[2] == "SENSOR":
        return "tasmota"
    if head == "shellies":
        return "shelly_gen1"
    if head == "zigbee2mqtt":
        return "zigbee2mqtt"
    if head == "spBv1.0":
        return "sparkplug"
    if head == "neuron" or (head == "" and len(parts) > 1 and parts[1] == "neuron"):
        return "neuron"
    if len(parts) >= 3 and parts[-2] == "events" and parts[-1] == "rpc":
        return "shelly_gen2"
    return None
