"""Our own JSON wire format and the normalised reading record that goes to Kafka.

MQTT topic: ``nzc/v1/<site>/<gateway>/readings``. Payload, UTF-8 JSON, either one reading or a
batch ``{"readings": [...]}`` (gateways batch many meters per message). A reading:

=============  ====================================================================
field          meaning
=============  ====================================================================
``meter``      meter id from the site registry
``ts``         UTC time of the reading: ISO 8601 with offset (``2026-11-21T02:00:00Z``)
               or epoch **milliseconds** (see the epoch rule below)
``register``   cumulative register value in ``unit`` (only grows, may roll over)
``value``      alternatively an interval value in ``unit`` for the ``period_s``
               seconds ending at ``ts``
``period_s``   length of the interval value's period [s]; required with ``value``
``unit``       unit of ``register``/``value`` (``kWh``, ``Wh``, ``m3``, ``GJ``, ...)
=============  ====================================================================

Example: ``{"readings": [{"meter": "p1-e-main", "ts": "2026-11-21T02:00:00Z",
"register": 10452.31, "unit": "kWh"}]}``.

Strict types: ``register`` and ``value`` are JSON numbers (``true`` or ``"12.5"`` is a
``schema`` error naming the field), finite, >= 0, ``-0`` is stored as 0; ``period_s`` is a
JSON integer; ``NaN``/``Infinity`` are not JSON. **Epoch rule**: a numeric ``ts`` is epoch
milliseconds, whatever its JSON type: an integer, a float (the fraction of a millisecond is
cut) and a string of digits (``"1772416800000"``) are read alike. A value in seconds is
therefore about 1970-01-21 and is rejected as ``impossible_timestamp`` with a hint, never
silently read as seconds. Times must lie within 2000-01-01 .. 9999-12-31 (``ts`` 10**400 or
``0001-01-01T00:00:00+14:00`` is ``impossible_timestamp``), and at most the clock skew ahead
of the receive time (``clock_skew``). At most ``MAX_READINGS_PER_MESSAGE`` readings per
message (``too_many_readings``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# The records are defined once, in core.records (typed, one codec); re-exported here under
# their historical names.
from core.records import MAX_DEAD_LETTER_PAYLOAD, DeadLetter, ReadingRecord, make_dead_letter
from ingest.decoders import (
    MAX_READINGS_PER_MESSAGE,
    MIN_TS_MS,
    DecodeError,
    iso_to_ms,
    load_json,
    number,
    printable,
    short,
)

__all__ = [
    "MAX_DEAD_LETTER_PAYLOAD",
    "MAX_READINGS_PER_MESSAGE",
    "MIN_TS_MS",
    "DeadLetter",
    "PayloadError",
    "ReadingRecord",
    "WireBatch",
    "WireReading",
    "make_dead_letter",
    "parse_payload",
]

_DIGITS = re.compile(r"^-?[0-9]{1,40}(\.[0-9]{1,40})?$")
# A non-finite float ts (1e400 parses as infinity) becomes one of these, so that
# ingest.validate reports it as impossible_timestamp rather than as a schema error.
_BEFORE_2000 = -1
_AFTER_9999 = 10**20


def _epoch_ms_of(v: Any) -> int:
    """``ts`` -> epoch ms by the epoch rule of the module docstring; raises ``ValueError``."""
    if isinstance(v, bool):
        raise ValueError(f"ts must be an ISO 8601 time or epoch milliseconds, got {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return _AFTER_9999 if v > 0 else _BEFORE_2000
        return int(v // 1)
    if isinstance(v, str):
        if _DIGITS.match(v):
            try:
                return int(Decimal(v) // 1)
            except InvalidOperation:  # pragma: no cover - the pattern admits decimals only
                raise ValueError(f"ts {short(v)} is not a number") from None
        try:
            return iso_to_ms(v, "ts", check_range=False)
        except DecodeError as exc:
            if "no UTC offset" in str(exc):
                raise ValueError("timestamp has no UTC offset; send ...Z or epoch "
                                 "milliseconds") from None
            raise ValueError(str(exc)) from None
    raise ValueError(f"ts must be an ISO 8601 time or epoch milliseconds, got {short(v)}")


def _strict_number(v: Any, field: str) -> float | None:
    if v is None:
        return None
    try:
        return number(v, field)
    except DecodeError as exc:
        raise ValueError(str(exc)) from None


class WireReading(BaseModel):
    """One reading as published by a gateway (validated, not yet checked against the registry).

    ``ts`` is held as epoch milliseconds (UTC) after validation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)

    meter: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
    ts: int
    register_value: float | None = Field(default=None, alias="register")
    value: float | None = None
    period_s: Annotated[int, Field(gt=0, le=86_400)] | None = None
    unit: Annotated[str, Field(min_length=1, max_length=16)]

    @field_validator("ts", mode="before")
    @classmethod
    def _ts_ms(cls, v: Any) -> int:
        return _epoch_ms_of(v)

    @field_validator("register_value", mode="before")
    @classmethod
    def _register(cls, v: Any) -> float | None:
        return _strict_number(v, "register")

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, v: Any) -> float | None:
        return _strict_number(v, "value")

    @model_validator(mode="after")
    def _one_value(self) -> WireReading:
        if (self.register_value is None) == (self.value is None):
            raise ValueError("exactly one of 'register' or 'value' is required")
        if self.value is not None and self.period_s is None:
            raise ValueError("'value' (an interval value) needs 'period_s'")
        v = self.register_value if self.register_value is not None else self.value
        assert v is not None
        if v < 0:
            raise ValueError(f"negative reading {v}: registers and interval values are >= 0")
        return self

    @property
    def ts_ms(self) -> int:
        """Reading time as epoch milliseconds (UTC)."""
        return self.ts


class WireBatch(BaseModel):
    """A gateway batch."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    readings: Annotated[list[WireReading], Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)]


class PayloadError(ValueError):
    """A payload that cannot be decoded; ``code`` is a stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_payload(payload: bytes) -> list[WireReading]:
    """Decode one MQTT payload of our JSON format into readings.

    Raises :class:`PayloadError` with code ``malformed_json``, ``too_many_readings`` or
    ``schema`` and a message that names the offending field. Never raises anything else.
    """
    try:
        doc: Any = load_json(payload)
    except DecodeError as exc:
        raise PayloadError(exc.code, str(exc)) from None
    batch = isinstance(doc, dict) and "readings" in doc
    if batch and isinstance(doc["readings"], list) and (
            len(doc["readings"]) > MAX_READINGS_PER_MESSAGE):
        raise PayloadError("too_many_readings",
                           f"batch of {len(doc['readings'])} readings; at most "
                           f"{MAX_READINGS_PER_MESSAGE} per message are accepted")
    try:
        if batch:
            return list(WireBatch.model_validate(doc).readings)
        return [WireReading.model_validate(doc)]
    except ValidationError as exc:
        parts = []
        for err in exc.errors(include_url=False, include_input=False)[:5]:
            loc = ".".join(short(p, 40) if not isinstance(p, str) else printable(p)[:40]
                           for p in err["loc"]) or "payload"
            parts.append(f"{loc}: {printable(err['msg'])[:300]}")
        raise PayloadError("schema", "; ".join(parts)) from None
    except RecursionError:
        raise PayloadError("malformed_json", "payload nests too deeply") from None
