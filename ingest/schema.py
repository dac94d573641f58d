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

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


@dataclass(frozen=True)
class ReadingRecord:
    """A validated reading as it travels on Kafka topic ``readings.valid.v1``, keyed by meter.

    ``value`` is in the carrier's canonical unit (kWh, m3, GJ, kg): ingest converts.
    ``register_max`` is also canonical so the stream can tell a rollover from a reset.
    """

    meter_id: str
    site_id: str
    ts_ms: int
    kind: Literal["register", "interval"]
    value: float
    unit: str
    period_s: int | None
    received_ms: int
    mqtt_topic: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReadingRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


@dataclass(frozen=True)
class DeadLetter:
    """A rejected input, kept with its reason (topic ``readings.deadletter.v1`` and table
    ``dead_letters``). ``payload`` is the raw bytes decoded as UTF-8 with replacement, cut to
    :data:`MAX_DEAD_LETTER_PAYLOAD` characters (``payload_truncated`` says so)."""

    stage: str
    code: str
    reason: str
    mqtt_topic: str
    payload: str
    payload_truncated: bool
    meter_id: str | None
    received_ms: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


MAX_DEAD_LETTER_PAYLOAD = 8192


def make_dead_letter(
    *, stage: str, code: str, reason: str, mqtt_topic: str, payload: bytes,
    received_ms: int, meter_id: str | None = None,
) -> DeadLetter:
    """Build a :class:`DeadLetter`, bounding the kept payload size."""
    text = payload[: MAX_DEAD_LETTER_PAYLOAD * 4].decode("utf-8", errors="replace")
    truncated = len(text) > MAX_DEAD_LETTER_PAYLOAD or len(payload) > MAX_DEAD_LETTER_PAYLOAD * 4
    return DeadLetter(
        stage=stage, code=code, reason=reason[:2000], mqtt_topic=mqtt_topic[:512],
        payload=text[:MAX_DEAD_LETTER_PAYLOAD], payload_truncated=truncated,
        meter_id=meter_id, received_ms=received_ms,
    )
