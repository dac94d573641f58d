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

Hostile input. Every decoder turns any bytes into a result or a :class:`DecodeError` with a
specific code, never another exception: JSON goes through :func:`load_json` (``NaN`` /
``Infinity`` refused, nesting deeper than :data:`MAX_JSON_DEPTH` and numbers longer than
Python's 4,300 digits are ``malformed_json``), numbers through :func:`energy_value` (no
booleans or strings, finite, >= 0), times through :func:`epoch_ms` / :func:`iso_to_ms`
(a time outside 2000-01-01 .. 9999-12-31 is ``impossible_timestamp``), and device ids or
names taken from a payload through :func:`text_id` (control characters such as NUL and lone
surrogates are ``schema``). Whether a value fits the meter (``register_max``) is checked by
:mod:`ingest.validate` after unit conversion.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

# Limits per MQTT message (ingest.validate applies them before any decoder runs):
MAX_MESSAGE_BYTES: Final = 1_048_576  # payload size [bytes]; the broker's message_size_limit
MAX_READINGS_PER_MESSAGE: Final = 10_000  # readings (or Neuron tags, Sparkplug metrics)
MAX_JSON_DEPTH: Final = 64  # nesting of JSON arrays/objects; our formats need at most 5
# Accepted reading times [epoch ms, UTC]: 2000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z.
# Earlier is a clock that was never set; later cannot be a datetime.
MIN_TS_MS: Final = 946_684_800_000
MAX_TS_MS: Final = 253_402_300_799_999


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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_depth_exceeds(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON document nests arrays/objects deeper than ``limit`` (an
    iterative walk, linear in the number of containers; :func:`json.loads` itself stops
    recursing near Python's recursion limit with a ``RecursionError``)."""
    if not isinstance(doc, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def load_json(payload: bytes) -> Any:
    """Parse UTF-8 JSON; raise :class:`DecodeError` ``malformed_json`` otherwise (also for
    ``NaN``/``Infinity``, nesting deeper than :data:`MAX_JSON_DEPTH` and integers longer than
    Python's digit limit)."""
    too_deep = DecodeError("malformed_json",
                           f"payload nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        doc = json.loads(payload, parse_constant=_refuse_constant)
    except RecursionError:
        raise too_deep from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError("malformed_json",
                          f"payload is not UTF-8 JSON: {printable(str(exc))[:200]}") from None
    if json_depth_exceeds(doc):
        raise too_deep
    return doc


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    """Parse a payload that must be a JSON object (``what`` names it in the error)."""
    doc = load_json(payload)
    if not isinstance(doc, dict):
        raise DecodeError("schema", f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def printable(text: str) -> str:
    """``text`` with control characters (NUL, ...) and lone surrogates escaped (``\\x00``,
    ``\\ud800``), for messages that quote input."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def short(raw: Any, limit: int = 80) -> str:
    """A bounded, printable rendering of an input value for an error message."""
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) >= 10**30:
        return f"<integer of {len(str(abs(raw)))} digits>"
    text = printable(repr(raw))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(raw: Any, where: str) -> float:
    """A JSON number (not a bool, not a string) as a float, -0 as 0; raises ``schema`` when it
    is no number or not finite (``1e400`` parses as infinity; a 400-digit integer overflows)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise DecodeError("schema", f"{where} must be a number, got {short(raw)}")
    try:
        value = float(raw)
    except OverflowError:
        raise DecodeError("schema", f"{where} is too large: {short(raw)}") from None
    if not math.isfinite(value):
        raise DecodeError("schema", f"{where} is not a finite number: {short(raw)}")
    return value + 0.0  # -0.0 -> 0.0


def energy_value(raw: Any, where: str) -> float:
    """A register or energy value: a finite number >= 0 (not a bool, not a string), ``-0``
    normalised to 0; raises ``schema``."""
    value = number(raw, where)
    if value < 0:
        raise DecodeError("schema",
                          f"{where} is negative ({short(raw)}); energy registers are >= 0")
    return value


def check_ts_ms(ts_ms: int, where: str) -> int:
    """``ts_ms`` [epoch ms] when it lies in :data:`MIN_TS_MS` .. :data:`MAX_TS_MS`, else
    ``impossible_timestamp`` (with a hint when the value looks like epoch seconds)."""
    if MIN_TS_MS <= ts_ms <= MAX_TS_MS:
        return ts_ms
    hint = ""
    if MIN_TS_MS <= ts_ms * 1000 <= MAX_TS_MS:
        hint = " (it looks like epoch seconds; this field takes epoch milliseconds)"
    side = "before 2000-01-01" if ts_ms < MIN_TS_MS else "after 9999-12-31"
    raise DecodeError("impossible_timestamp", f"{where} {short(ts_ms)} ms is {side}{hint}")


def epoch_ms(raw: Any, where: str, *, seconds: bool = False) -> int:
    """An epoch time given as a JSON number -> integer epoch ms (sub-millisecond parts cut).

    ``seconds`` says the vendor documents the field in seconds (Shelly Gen2 ``params.ts``),
    otherwise milliseconds. Raises ``schema`` for a non-number, ``impossible_timestamp`` for
    a time outside :data:`MIN_TS_MS` .. :data:`MAX_TS_MS` (``1e308``, ``NaN``, ``10**400``).
    """
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise DecodeError("schema", f"{where} must be an epoch number, got {short(raw)}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise DecodeError("impossible_timestamp", f"{where} is not a finite time: {raw!r}")
    if isinstance(raw, int):
        ms = raw * 1000 if seconds else raw
    else:
        scaled = raw * 1000.0 if seconds else raw
        if not math.isfinite(scaled):  # 1e308 s is infinite in ms
            raise DecodeError("impossible_timestamp", f"{where} {raw!r} is after 9999-12-31")
        ms = math.floor(scaled)
    return check_ts_ms(ms, where)


_EPOCH = datetime(1970, 1, 1)


def iso_to_ms(text: str, where: str, *, check_range: bool = True) -> int:
    """ISO 8601 time with a UTC offset -> epoch ms; raises ``schema`` naming ``where`` for a
    text that is no such time, ``impossible_timestamp`` outside the accepted range (the
    arithmetic is done without converting to UTC, so year 1 at +14:00 cannot overflow)."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError("schema", f"{where} {short(text)} is not an ISO 8601 time") from None
    offset = dt.utcoffset()
    if offset is None:
        raise DecodeError("schema", f"{where} {short(text)} has no UTC offset")
    ms = (dt.replace(tzinfo=None) - _EPOCH - offset) // timedelta(milliseconds=1)
    return check_ts_ms(ms, where) if check_range else ms


def text_id(raw: Any, where: str) -> str:
    """A device id or name from a payload: a non-empty string of at most 256 characters
    without control characters (NUL, ...) or lone surrogates; raises ``schema``."""
    if not isinstance(raw, str) or not raw:
        raise DecodeError("schema", f"{where} is required as a non-empty string, got "
                                    f"{short(raw)}")
    if len(raw) > 256:
        raise DecodeError("schema", f"{where} is longer than 256 characters")
    if not raw.isprintable() or any("\ud800" <= c <= "\udfff" for c in raw):
        raise DecodeError("schema", f"{where} {short(raw)} contains control characters or "
                                    "lone surrogates")
    return raw


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


def topic_device(fmt: str, topic: str) -> tuple[str, bool] | None:
    """The device a vendor topic names, as ``(key, is_prefix)``, or ``None`` when the topic
    names none (a Neuron upload on a custom or pre-2.4 ``/neuron/<app>/upload`` topic).

    ``is_prefix``: the topic covers every device id that starts with ``key + "/"`` (a Neuron
    ``<node>/<group>`` carries many meter addresses, a Sparkplug edge node its devices).
    :mod:`ingest.validate` binds a reading to a gateway through this key: the broker ACL lets
    a gateway publish only on the topics of its own devices (:func:`device_topics`), so the
    device a payload names must belong to the gateway that owns the topic.
    """
    parts = topic.split("/")
    if fmt in ("tasmota", "shelly_gen1") and len(parts) >= 2 and parts[1]:
        return parts[1], False
    if fmt == "shelly_gen2" and len(parts) >= 3:
        return "/".join(parts[:-2]), False
    if fmt == "zigbee2mqtt" and len(parts) >= 2:
        return "/".join(parts[1:]), False
    if fmt == "neuron":
        rest = parts[1:] if parts[0] == "" else parts
        if len(rest) == 4 and rest[0] == "neuron" and rest[2] and rest[3]:
            return f"{rest[2]}/{rest[3]}", True
        return None
    if fmt == "sparkplug" and len(parts) >= 4:
        if len(parts) == 4:
            return f"{parts[1]}/{parts[3]}", True
        return "/".join((parts[1], parts[3], *parts[4:])), False
    return None


def device_topics(fmt: str, device: str) -> tuple[str, ...]:
    """MQTT topic filters on which the gateway of ``device`` (format ``fmt``) publishes, for
    the broker ACL generated from the registry; ``()`` for our own format (its topic is per
    gateway: ``nzc/v1/<site>/<gateway>/readings``)."""
    if fmt == "tasmota":
        return (f"tele/{device}/SENSOR",)
    if fmt == "shelly_gen1":
        return (f"shellies/{device}/#",)
    if fmt == "shelly_gen2":
        return (f"{device}/events/rpc",)
    if fmt == "zigbee2mqtt":
        return (f"zigbee2mqtt/{device}",)
    if fmt == "neuron":
        node, _, rest = device.partition("/")
        group = rest.partition("/")[0]
        return (f"/neuron/+/{node}/{group}",)
    if fmt == "sparkplug":
        group, _, rest = device.partition("/")
        node, _, dev = rest.partition("/")
        topics = [f"spBv1.0/{group}/+/{node}"]
        if dev:
            topics.append(f"spBv1.0/{group}/+/{node}/{dev}")
        return tuple(topics)
    return ()
