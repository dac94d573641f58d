"""The typed records of every hop and their one codec (core.records)."""

from __future__ import annotations

import json

import pytest

from core.records import (
    DeadLetter,
    EmissionRow,
    IntervalRow,
    ReadingBatch,
    ReadingRecord,
    RecordError,
    decode,
    encode,
    make_dead_letter,
    sanitize_text,
)


def _reading(value: float = 12.5) -> ReadingRecord:
    return ReadingRecord(meter_id="m1", site_id="s", ts_ms=1_767_225_600_000, kind="register",
                         value=value, unit="kWh", period_s=None, received_ms=1_767_225_601_000,
                         mqtt_topic="nzc/v1/s/g/readings")


def test_batch_round_trips_and_stays_typed() -> None:
    batch = ReadingBatch(key="s/g", readings=[_reading(), _reading(13.0)])
    again = decode(encode(batch), ReadingBatch)
    assert again == batch
    assert isinstance(again.readings[1], ReadingRecord) and again.readings[1].value == 13.0


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_refused_when_built(bad: float) -> None:
    with pytest.raises(RecordError, match="finite"):
        _reading(bad)
    with pytest.raises(RecordError, match="finite"):
        EmissionRow("location", "scope2", bad, "f", "v", 1.0, "kgCO2/kWh")
    with pytest.raises(RecordError, match="finite"):
        IntervalRow("m", "s", "grid_import", 0, 900, bad, "kWh", 900.0, "measured")


@pytest.mark.parametrize("literal", [b"Infinity", b"-Infinity", b"NaN", b"1e400"])
def test_non_finite_numbers_are_refused_when_decoded(literal: bytes) -> None:
    raw = encode(ReadingBatch(key="s/g", readings=[_reading(7.0)])).replace(b"7.0", literal)
    with pytest.raises(RecordError):
        decode(raw, ReadingBatch)


def test_sanitize_escapes_nul_controls_and_lone_surrogates() -> None:
    assert sanitize_text("a\x00b") == "a\\u0000b"
    assert sanitize_text("x\ud800y") == "x\\ud800y"
    assert sanitize_text("bell\x07 del\x7f") == "bell\\u0007 del\\u007f"
    assert sanitize_text("tab\tnew\nline 中文") == "tab\tnew\nline 中文"  # kept as they are
    assert sanitize_text("abcdef", limit=3) == "abc"


def test_dead_letter_from_hostile_input_is_storable_text() -> None:
    d = make_dead_letter(stage="ingest", code="schema", reason='key "\ud800" \x00',
                         mqtt_topic="nzc/v1/s/\x00/readings", payload=b"\x00\xff",
                         received_ms=1, meter_id="m\ud801")
    for text in (d.reason, d.mqtt_topic, d.payload, d.meter_id or ""):
        text.encode("utf-8")  # no lone surrogate left
        assert "\x00" not in text
    assert d.payload == "\\u0000\ufffd"
    assert decode(encode(d), DeadLetter) == d
    assert json.loads(encode(d))["ts_ms"] is None


def test_dead_letter_payload_is_bounded_and_flagged() -> None:
    d = make_dead_letter(stage="ingest", code="schema", reason="r", mqtt_topic="t",
                         payload=b"x" * 100_000, received_ms=1)
    assert d.payload_truncated and len(d.payload) == 8192


def test_ingest_schema_names_are_the_core_records() -> None:
    from ingest import schema

    assert schema.ReadingRecord is ReadingRecord and schema.DeadLetter is DeadLetter
    assert schema.make_dead_letter is make_dead_letter
    assert ReadingRecord.from_dict(_reading().to_dict()) == _reading()
