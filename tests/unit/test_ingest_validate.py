"""Ingest validation: every bad input is rejected with a specific, stable reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.schema import MAX_DEAD_LETTER_PAYLOAD
from ingest.validate import decode_message
from nzc.registry import load_registry

REG = load_registry(Path(__file__).resolve().parents[1] / "data" / "registry.yaml")
TOPIC = "nzc/v1/test-site/gw1/readings"
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def decode(payload: object, topic: str = TOPIC) -> tuple[list, list]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return decode_message(REG, topic, raw, received_ms=NOW, max_clock_skew_s=300)


def test_single_and_batch_accepted_and_converted() -> None:
    ok, bad = decode({"meter": "e2e-el", "ts": "2025-12-31T23:00:00Z", "register": 12.5,
                      "unit": "kWh"})
    assert bad == [] and ok[0].ts_ms == NOW - 3_600_000 and ok[0].value == 12.5
    ok, bad = decode({"readings": [
        {"meter": "e2e-sub", "ts": NOW - 1000, "register": 2500.0, "unit": "Wh"},
        {"meter": "e2e-gas", "ts": "2026-01-01T07:59:00+08:00", "register": 3.0, "unit": "m3"},
    ]})
    assert bad == []
    assert ok[0].value == pytest.approx(2.5) and ok[0].unit == "kWh"  # Wh -> kWh
    assert ok[1].ts_ms == NOW - 60_000  # offset honoured


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        (b"{not json", "malformed_json", "not UTF-8 JSON"),
        (b"\xff\xfe", "malformed_json", "not UTF-8 JSON"),
        ({"meter": "e2e-el", "ts": "2026-01-01T00:00:00", "register": 1, "unit": "kWh"},
         "schema", "no UTC offset"),
        ({"meter": "e2e-el", "ts": NOW, "unit": "kWh"}, "schema", "exactly one of"),
        ({"meter": "e2e-el", "ts": NOW, "register": -4, "unit": "kWh"}, "schema", "negative"),
        ({"meter": "e2e-el", "ts": NOW, "value": 3, "unit": "kWh"}, "schema", "period_s"),
        ({"meter": "e2e-el", "ts": NOW, "register": 1, "unit": "kWh", "x": 1}, "schema",
         "Extra inputs"),
        ({"readings": []}, "schema", "readings"),
    ],
)
def test_malformed_payloads(payload: object, code: str, fragment: str) -> None:
    ok, bad = decode(payload)
    assert ok == [] and len(bad) == 1
    assert bad[0].code == code and fragment in bad[0].reason
    assert bad[0].mqtt_topic == TOPIC and bad[0].stage == "ingest"


@pytest.mark.parametrize(
    ("reading", "code", "fragment"),
    [
        ({"meter": "nope", "ts": NOW, "register": 1, "unit": "kWh"}, "unknown_meter", "'nope'"),
        ({"meter": "e2e-el", "ts": NOW, "register": 1, "unit": "m3"}, "unit", "accepted: MWh"),
        ({"meter": "e2e-el", "ts": NOW + 3_600_000, "register": 1, "unit": "kWh"},
         "clock_skew", "3600 s ahead"),
        ({"meter": "e2e-el", "ts": 1000, "register": 1, "unit": "kWh"}, "impossible_timestamp",
         "before 2000"),
    ],
)
def test_bad_readings_in_a_batch_are_rejected_one_by_one(
    reading: dict, code: str, fragment: str
) -> None:
    good = {"meter": "e2e-el", "ts": NOW - 5000, "register": 7.0, "unit": "kWh"}
    ok, bad = decode({"readings": [good, reading]})
    assert [r.meter_id for r in ok] == ["e2e-el"]
    assert len(bad) == 1 and bad[0].code == code and fragment in bad[0].reason
    assert json.loads(bad[0].payload)["meter"] == reading["meter"]


def test_site_mismatch_and_bad_topic() -> None:
    reading = {"meter": "e2e-el", "ts": NOW, "register": 1, "unit": "kWh"}
    _, bad = decode(reading, topic="nzc/v1/other-site/gw1/readings")
    assert bad[0].code == "site_mismatch"
    _, bad = decode(reading, topic="somewhere/else")
    assert bad[0].code == "topic"


def test_dead_letter_payload_is_bounded() -> None:
    _, bad = decode(b"x" * (MAX_DEAD_LETTER_PAYLOAD * 10))
    assert bad[0].payload_truncated and len(bad[0].payload) == MAX_DEAD_LETTER_PAYLOAD
