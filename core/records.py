"""The records that travel between the pipeline's stages, defined once, with one codec.

=====================  ==============================================  ====================
record                 where                                            key
=====================  ==============================================  ====================
:class:`ReadingBatch`  Kafka ``readings.valid.v1``: the accepted         registered gateway
                       readings of one MQTT message (ingest -> stream)  (``site/gateway``)
:class:`IntervalRow`   energy of one meter in one interval with its     meter, interval
                       standard coal and emission rows (stream -> sink,
                       ``analytics.recompute``)
:class:`DeadLetter`    every rejected input, ingest and stream alike    meter or MQTT topic
                       (Kafka ``readings.deadletter.v1``, table
                       ``dead_letters``)
=====================  ==============================================  ====================

They are ``msgspec`` Structs: typed (mypy sees a renamed field), validated on decode, and
encoded to JSON by :func:`encode`. Non-finite numbers (NaN, +-Infinity) are refused when a
record is built or decoded (JSON has no such numbers; a value that overflows to infinity after a
unit conversion or a sum is a data error, not a reading). Text that came from outside
(payloads, topics, reasons quoting input) goes through :func:`sanitize_text` before it is kept,
so that PostgreSQL (no NUL in ``text``) and every JSON codec (no lone surrogates) accept it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import msgspec

__all__ = [
    "MAX_DEAD_LETTER_PAYLOAD",
    "DeadLetter",
    "EmissionRow",
    "IntervalRow",
    "ReadingBatch",
    "ReadingRecord",
    "RecordError",
    "convert",
    "decode",
    "encode",
    "make_dead_letter",
    "sanitize_text",
]

#: Largest payload kept in a dead letter [characters]; longer ones are cut and flagged.
MAX_DEAD_LETTER_PAYLOAD = 8192

# C0 controls except TAB, LF, CR; DEL; C1 controls; UTF-16 surrogates (only lone ones can occur
# in a Python str).
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def sanitize_text(text: str, limit: int | None = None) -> str:
    """``text`` safe to store anywhere: NUL, other control characters and lone surrogates are
    replaced by their ``\\uXXXX`` escape (visible, never silently dropped); cut to ``limit``
    characters when given."""
    if limit is not None and len(text) > limit:
        text = text[:limit]
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


class RecordError(ValueError):
    """A record that cannot be built or decoded (e.g. a non-finite number)."""


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise RecordError(f"{name} is not a finite number: {value!r}")


class ReadingRecord(msgspec.Struct, frozen=True, array_like=True):
    """One accepted reading. ``value`` [canonical unit of the meter's carrier: kWh, m3, GJ, kg]
    is a cumulative register (``kind="register"``) or the quantity of the ``period_s`` [s]
    ending at ``ts_ms`` (``kind="interval"``); times are epoch milliseconds (UTC)."""

    meter_id: str
    site_id: str
    ts_ms: int
    kind: Literal["register", "interval"]
    value: float
    unit: str
    period_s: int | None
    received_ms: int
    mqtt_topic: str

    def __post_init__(self) -> None:
        _finite("value", self.value)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields."""
        return {f: getattr(self, f) for f in self.__struct_fields__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReadingRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


class ReadingBatch(msgspec.Struct, frozen=True):
    """The accepted readings of one MQTT message whose meters are registered on one gateway;
    the Kafka key is ``key`` (``<site>/<gateway>``), so one meter's readings keep their order
    (a meter belongs to one gateway)."""

    key: str
    readings: list[ReadingRecord]


class EmissionRow(msgspec.Struct, frozen=True):
    """One emission row of an interval: ``emissions_kgco2`` [kgCO2] = quantity x
    ``factor_value`` [``factor_unit``], with the factor's id and version."""

    method: str
    scope: str
    emissions_kgco2: float
    factor_id: str
    factor_version: str
    factor_value: float
    factor_unit: str

    def __post_init__(self) -> None:
        _finite("emissions_kgco2", self.emissions_kgco2)
        _finite("factor_value", self.factor_value)


class IntervalRow(msgspec.Struct, frozen=True):
    """Energy of one meter in one interval ``[interval_start_ms, + interval_s)``:
    ``quantity`` [``quantity_unit``] (of which ``estimated_quantity`` placed by estimate),
    ``covered_s`` / ``estimated_s`` [s] measured / estimated time, ``quality``,
    ``energy_tce`` [tce] (``None`` for water) and the emission rows."""

    meter_id: str
    site_id: str
    carrier: str
    interval_start_ms: int
    interval_s: int
    quantity: float
    quantity_unit: str
    covered_s: float
    quality: str
    estimated_quantity: float = 0.0
    estimated_s: float = 0.0
    energy_tce: float | None = None
    emissions: tuple[EmissionRow, ...] = ()

    def __post_init__(self) -> None:
        for name in ("quantity", "covered_s", "estimated_quantity", "estimated_s",
                     "energy_tce"):
            _finite(name, getattr(self, name))


class DeadLetter(msgspec.Struct, frozen=True):
    """A rejected input, kept with its reason (topic ``readings.deadletter.v1`` and table
    ``dead_letters``), the same shape for ingest and stream. ``payload`` is the input as text,
    sanitised and cut to :data:`MAX_DEAD_LETTER_PAYLOAD` characters (``payload_truncated`` says
    so); ``ts_ms`` is the reading time when the rejection is about one reading."""

    stage: str
    code: str
    reason: str
    mqtt_topic: str
    payload: str
    payload_truncated: bool
    meter_id: str | None
    received_ms: int
    ts_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields."""
        return {f: getattr(self, f) for f in self.__struct_fields__}


def make_dead_letter(
    *, stage: str, code: str, reason: str, mqtt_topic: str, payload: bytes | str,
    received_ms: int, meter_id: str | None = None, ts_ms: int | None = None,
) -> DeadLetter:
    """Build a :class:`DeadLetter` from outside input: bytes are decoded as UTF-8 with
    replacement, every text field is sanitised (:func:`sanitize_text`) and bounded."""
    if isinstance(payload, bytes):
        text = payload[: MAX_DEAD_LETTER_PAYLOAD * 4].decode("utf-8", errors="replace")
        cut = len(payload) > MAX_DEAD_LETTER_PAYLOAD * 4
    else:
        text, cut = payload, False
    truncated = cut or len(text) > MAX_DEAD_LETTER_PAYLOAD
    return DeadLetter(
        stage=sanitize_text(stage, 64), code=sanitize_text(code, 64),
        reason=sanitize_text(reason, 2000), mqtt_topic=sanitize_text(mqtt_topic, 512),
        payload=sanitize_text(text, MAX_DEAD_LETTER_PAYLOAD), payload_truncated=truncated,
        meter_id=None if meter_id is None else sanitize_text(meter_id, 256),
        received_ms=received_ms, ts_ms=ts_ms,
    )


# --- the codec -------------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()
T = TypeVar("T")
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def encode(record: msgspec.Struct) -> bytes:
    """JSON bytes of ``record`` (its numbers are finite by construction)."""
    return _ENCODER.encode(record)


def decode(data: bytes | str, kind: type[T]) -> T:
    """Decode and validate JSON ``data`` as ``kind``; raises :class:`RecordError` with the
    field at fault (``Infinity``/``NaN`` literals and overflowing numbers are refused)."""
    dec = _DECODERS.get(kind)
    if dec is None:
        dec = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        return dec.decode(data)  # type: ignore[no-any-return]
    except (msgspec.DecodeError, RecordError) as exc:
        raise RecordError(f"{kind.__name__}: {exc}") from None


def convert(obj: Any, kind: type[T]) -> T:
    """``obj`` (a record of ``kind`` or a mapping of its fields) as a validated ``kind``."""
    if isinstance(obj, kind):
        return obj
    try:
        return msgspec.convert(obj, kind)
    except (msgspec.ValidationError, RecordError) as exc:
        raise RecordError(f"{kind.__name__}: {exc}") from None
