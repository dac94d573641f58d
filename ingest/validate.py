"""Turn one MQTT message into accepted readings and rejections (pure; no I/O, no clock)."""

from __future__ import annotations

import json

from carbon.registry import Registry
from carbon.units import UnitError, to_canonical_factor
from ingest.schema import (
    MIN_TS_MS,
    DeadLetter,
    PayloadError,
    ReadingRecord,
    make_dead_letter,
    parse_payload,
)
from nzc.settings import MQTT_TOPIC_PREFIX


def _site_of(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 5 and "/".join(parts[:2]) == MQTT_TOPIC_PREFIX and parts[4] == "readings":
        return parts[2]
    return None


def decode_message(
    registry: Registry, topic: str, payload: bytes, *, received_ms: int, max_clock_skew_s: int
) -> tuple[list[ReadingRecord], list[DeadLetter]]:
    """Validate one message of our JSON format against the schema and the registry.

    A malformed payload is one dead letter. In a valid batch each reading stands alone: good
    ones are accepted (value converted to the carrier's canonical unit), each bad one becomes
    a dead letter naming the meter and the reason (``unknown_meter``, ``site_mismatch``,
    ``unit``, ``clock_skew``, ``impossible_timestamp``).
    """

    def dead(code: str, reason: str, raw: bytes, meter: str | None = None) -> DeadLetter:
        return make_dead_letter(
            stage="ingest", code=code, reason=reason, mqtt_topic=topic, payload=raw,
            received_ms=received_ms, meter_id=meter,
        )

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
        try:
            k = to_canonical_factor(meter.carrier, r.unit)
        except UnitError as exc:
            rejected.append(dead("unit", f"meter {r.meter!r}: {exc}", raw, r.meter))
            continue
        ts_ms = r.ts_ms
        if ts_ms < MIN_TS_MS:
            rejected.append(dead("impossible_timestamp",
                                 f"reading time {ts_ms} ms is before 2000-01-01", raw, r.meter))
            continue
        if ts_ms > received_ms + max_clock_skew_s * 1000:
            rejected.append(dead(
                "clock_skew",
                f"reading time {ts_ms} ms is {(ts_ms - received_ms) / 1000:.0f} s ahead of the "
                f"receive time; at most {max_clock_skew_s} s is accepted",
                raw, r.meter))
            continue
        is_register = r.register_value is not None
        value = r.register_value if is_register else r.value
        assert value is not None
        accepted.append(ReadingRecord(
            meter_id=meter.meter_id, site_id=meter.site_id, ts_ms=ts_ms,
            kind="register" if is_register else "interval", value=value * k,
            unit=meter.canonical_unit, period_s=r.period_s, received_ms=received_ms,
            mqtt_topic=topic,
        ))
    return accepted, rejected
