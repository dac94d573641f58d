"""Our own JSON wire format and the normalised reading record that goes to Kafka.

MQTT topic: ``nzc/v1/<site>/<gateway>/readings``. Payload, UTF-8 JSON, either one reading or a
batch ``{"readings": [...]}`` (gateways batch many meters per message). A reading:

=============  ====================================================================
field          meaning
=============  ====================================================================
``meter``      meter id from the site registry
``ts``         UTC time of the reading: ISO 8601 with offset (``2026-11-21T02:00:00Z``)
               or epoch milliseconds (integer)
``register``   cumulative register value in ``unit`` (only grows, may roll over)
``value``      alternatively an interval value in ``unit`` for the ``period_s``
               seconds ending at ``ts``
``period_s``   length of the interval value's period [s]; required with ``value``
``unit``       unit of ``register``/``value`` (``kWh``, ``Wh``, ``m3``, ``GJ``, ...)
=============  ====================================================================

Example: ``{"readings": [{"meter": "p1-e-main", "ts": "2026-11-21T02:00:00Z",
"register": 10452.31, "unit": "kWh"}]}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.records import MAX_DEAD_LETTER_PAYLOAD, DeadLetter, ReadingRecord, make_dead_letter

MAX_READINGS_PER_MESSAGE = 10_000
# Earliest accepted reading time: 2000-01-01T00:00:00Z [epoch ms]. Anything older is a clock fault.
MIN_TS_MS = 946_684_800_000


class WireReading(BaseModel):
    """One reading as published by a gateway (validated, not yet checked against the registry)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    meter: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
    ts: datetime | int
    register_value: float | None = Field(default=None, alias="register")
    value: float | None = None
    period_s: Annotated[int, Field(gt=0, le=86_400)] | None = None
    unit: Annotated[str, Field(min_length=1, max_length=16)]

    @field_validator("ts")
    @classmethod
    def _ts_aware(cls, v: datetime | int) -> datetime | int:
        if isinstance(v, datetime) and v.tzinfo is None:
            raise ValueError("timestamp has no UTC offset; send ...Z or epoch milliseconds")
        return v

    @model_validator(mode="after")
    def _one_value(self) -> WireReading:
        if (self.register_value is None) == (self.value is None):
            raise ValueError("exactly one of 'register' or 'value' is required")
        if self.value is not None and self.period_s is None:
            raise ValueError("'value' (an interval value) needs 'period_s'")
        v = self.register_value if self.register_value is not None else self.value
        assert v is not None
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("value is not a finite number")
        if v < 0:
            raise ValueError(f"negative reading {v}: registers and interval values are >= 0")
        return self

    @property
    def ts_ms(self) -> int:
        """Reading time as epoch milliseconds (UTC)."""
        if isinstance(self.ts, int):
            return self.ts
        return int(self.ts.astimezone(UTC).timestamp() * 1000)


class WireBatch(BaseModel):
    """A gateway batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    readings: Annotated[list[WireReading], Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)]


class PayloadError(ValueError):
    """A payload that cannot be decoded; ``code`` is a stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_payload(payload: bytes) -> list[WireReading]:
    """Decode one MQTT payload of our JSON format into readings.

    Raises :class:`PayloadError` with code ``malformed_json`` or ``schema`` and a message that
    names the offending field.
    """
    import json

    try:
        doc: Any = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError("malformed_json", f"payload is not UTF-8 JSON: {exc}") from None
    try:
        if isinstance(doc, dict) and "readings" in doc:
            return list(WireBatch.model_validate(doc).readings)
        return [WireReading.model_validate(doc)]
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err["loc"]) or "payload"
            parts.append(f"{loc}: {err['msg']}")
        raise PayloadError("schema", "; ".join(parts)) from None


# The records themselves are defined once, in core.records (typed, one codec); re-exported here
# under their historical names.
__all__ = ["MAX_DEAD_LETTER_PAYLOAD", "DeadLetter", "PayloadError", "ReadingRecord",
           "WireBatch", "WireReading", "make_dead_letter", "parse_payload"]
