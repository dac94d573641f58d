"""Unit tests of the alerting parts without services: working-day deadlines, the lifecycle,
rule parsing, message cutting and robot signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.channels import cut_utf8, dingtalk_sign, feishu_sign, format_markdown
from alerts.config import parse_duration
from alerts.engine import AlertState, Observation, step
from alerts.evaluate import night_of
from alerts.rules import RuleError, load_rules, parse_rules
from alerts.workdays import repair_deadline

SH = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[2]


def test_deadline_skips_national_day_and_counts_adjusted_saturday() -> None:
    # 2025: National Day + Mid-Autumn holiday 1-8 Oct; Saturday 11 Oct is an adjusted
    # working day (State Council notice of Nov 2024). Outage Tue 30 Sept 10:00: the working
    # days after it are Thu 9, Fri 10 and Sat 11 Oct -> deadline end of 11 Oct local.
    since = datetime(2025, 9, 30, 10, 0, tzinfo=SH)
    assert repair_deadline(since) == datetime(2025, 10, 12, 0, 0, tzinfo=SH)


def test_deadline_ordinary_week_skips_weekend() -> None:
    # Thu 13 Nov 2025 -> Fri 14, Mon 17, Tue 18 -> end of Tue 18 Nov (Sat/Sun skipped)
    since = datetime(2025, 11, 13, 23, 30, tzinfo=SH)
    assert repair_deadline(since) == datetime(2025, 11, 19, 0, 0, tzinfo=SH)


def test_deadline_local_day_of_utc_time() -> None:
    # 2025-11-13T17:00Z is already Friday 14 Nov 01:00 in Shanghai: counts Mon 17, Tue 18,
    # Wed 19 Nov
    since = datetime(2025, 11, 13, 17, 0, tzinfo=UTC)
    assert repair_deadline(since) == datetime(2025, 11, 20, 0, 0, tzinfo=SH)


T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def obs(cond: bool | None, minutes: int, value: float = 1.0) -> Observation:
    return Observation("r|m", "r", "night_load", "s", "m", {}, cond,
                       T0 + timedelta(minutes=minutes), value=value)


def run(seq: list[tuple[bool | None, int]], for_min: int,
        keep_min: int) -> tuple[AlertState, list[str]]:
    s, events = AlertState("r|m"), []
    for cond, minute in seq:
        s, ev = step(s, obs(cond, minute), timedelta(minutes=for_min),
                     timedelta(minutes=keep_min))
        events += ev
    return s, events


def test_lifecycle_pending_then_firing_after_for() -> None:
    s, ev = run([(True, 0), (True, 15), (True, 30)], for_min=30, keep_min=0)
    assert ev == ["pending", "firing"]
    assert s.firing_since == T0 + timedelta(minutes=30)


def test_lifecycle_short_blip_is_cancelled() -> None:
    _, ev = run([(True, 0), (False, 15)], for_min=30, keep_min=0)
    assert ev == ["pending", "cancelled"]


def test_lifecycle_keep_firing_for_bridges_a_dip() -> None:
    s, ev = run([(True, 0), (False, 15), (True, 30), (False, 45), (False, 75)],
                for_min=0, keep_min=30)
    # the dip at 15 is within 30 min of the last true (0); at 75, 45 min after 30: resolved
    assert ev == ["pending", "firing", "resolved"]
    assert s.resolved_at == T0 + timedelta(minutes=75)


def test_lifecycle_unknown_and_late_observations_change_nothing() -> None:
    s, ev = run([(True, 0), (None, 15), (True, 5)], for_min=10, keep_min=0)
    assert ev == ["pending"]  # neither the gap nor the late row at minute 5 fires it
    assert s.state == "pending"


def test_lifecycle_fires_again_after_resolving() -> None:
    _, ev = run([(True, 0), (False, 15), (True, 30)], for_min=0, keep_min=0)
    assert ev == ["pending", "firing", "resolved", "pending", "firing"]


def test_night_window_crossing_midnight() -> None:
    start, end = datetime.strptime("23:00", "%H:%M").time(), \
        datetime.strptime("05:00", "%H:%M").time()
    tue_2330 = datetime(2026, 11, 24, 23, 30, tzinfo=SH)
    wed_0445 = datetime(2026, 11, 25, 4, 45, tzinfo=SH)
    wed_0500 = datetime(2026, 11, 25, 5, 0, tzinfo=SH)
    assert night_of(tue_2330, start, end, SH) == tue_2330.date()
    assert night_of(wed_0445, start, end, SH) == tue_2330.date()
    assert night_of(wed_0500, start, end, SH) is None


def test_project_rules_parse_and_errors_are_specific() -> None:
    rules = load_rules(REPO / "alerts" / "rules.yaml")
    night = next(r for r in rules if r.kind == "night_load")
    assert not night.allow_estimated and night.for_ == timedelta(minutes=30)
    with pytest.raises(RuleError, match="unknown params"):
        parse_rules({"rules": [{"id": "x", "kind": "offline", "params": {"after": 3}}]})
    with pytest.raises(RuleError, match="duplicate id"):
        parse_rules({"rules": [{"id": "x", "kind": "offline"}, {"id": "x", "kind": "offline"}]})
    with pytest.raises(RuleError, match="not a duration"):
        parse_rules({"rules": [{"id": "x", "kind": "offline", "for": "soon"}]})
    assert parse_duration("1h30m") == timedelta(minutes=90)


def test_cut_utf8_never_splits_a_character() -> None:
    text = "夜间负荷" * 2000  # 3 bytes per character
    for limit in range(60, 80):
        out, cut = cut_utf8(text, limit)
        raw = out.encode("utf-8")
        assert cut and len(raw) <= limit
        raw.decode("utf-8")  # valid UTF-8
        assert out.endswith("truncated)")
    assert cut_utf8("short", 4096) == ("short", False)


def test_wecom_message_cut_to_4096_bytes() -> None:
    alerts = [{"status": "firing", "labels": {"alertname": "MeterOffline", "site": "hc-campus",
                                              "meter": f"hc-meter-{i}"},
               "annotations": {"title_zh": "表计离线 meter offline", "value": "31.0 min"},
               "startsAt": "2026-11-24T15:00:00Z"} for i in range(200)]
    _, text = format_markdown({"status": "firing", "groupLabels": {"site": "hc-campus"},
                               "alerts": alerts})
    assert len(text.encode()) > 4096
    out, cut = cut_utf8(text, 4096)
    assert cut and 4096 - 8 <= len(out.encode()) <= 4096


def test_dingtalk_signature_matches_documented_algorithm() -> None:
    # computed independently here: HMAC-SHA256(key=secret, msg=f"{ts}\n{secret}"), base64,
    # URL-encoded
    ts, secret = 1700000000000, "secret"
    want = base64.b64encode(hmac.new(b"secret", b"1700000000000\nsecret",
                                     hashlib.sha256).digest()).decode()
    assert urllib.parse.unquote_plus(dingtalk_sign(secret, ts)) == want
    assert "+" not in dingtalk_sign(secret, ts) and "/" not in dingtalk_sign(secret, ts)


def test_feishu_signature_matches_documented_algorithm() -> None:
    # HMAC-SHA256 keyed with f"{ts}\n{secret}" over an empty message, base64
    want = base64.b64encode(hmac.new(b"1700000000\nsecret", b"",
                                     hashlib.sha256).digest()).decode()
    assert feishu_sign("secret", 1700000000) == want
    assert feishu_sign("secret", 1700000001) != want


def test_message_in_chinese_names_site_meter_value_threshold_since() -> None:
    n = {"status": "resolved", "groupLabels": {"site": "hc-campus"}, "alerts": [{
        "status": "resolved",
        "labels": {"alertname": "NightBaseLoad", "site": "hc-campus", "meter": "hc-dorm-1",
                   "building": "dormitory", "rule": "campus-night-load", "severity": "warning"},
        "annotations": {"title_zh": "夜间基础负荷偏高", "value": "15.00 kW",
                        "threshold": "7.00 kW", "typical": "5.00 kW",
                        "since": "2026-11-25 00:30 (北京时间)", "link": "http://x/alerts/1"},
        "startsAt": "2026-11-24T16:30:00Z", "endsAt": "2026-11-24T21:00:00Z"}]}
    title, text = format_markdown(n)
    assert "已恢复" in title and "hc-campus" in title
    for part in ("hc-dorm-1 / dormitory", "15.00 kW", "7.00 kW", "典型 typical 5.00 kW",
                 "2026-11-25 00:30", "2026-11-25 05:00", "http://x/alerts/1"):
        assert part in text


def test_deadline_beyond_the_calendar_data_falls_back_to_weekdays() -> None:
    # chinesecalendar 1.11.0 holds data up to 2026: Thu 30 Dec 2027 -> Fri 31, Mon 3 Jan,
    # Tue 4 Jan 2028 (weekdays only; no holiday data)
    since = datetime(2027, 12, 30, 9, 0, tzinfo=SH)
    assert repair_deadline(since) == datetime(2028, 1, 5, 0, 0, tzinfo=SH)


def test_indicator_rule_skipped_with_a_log_line_without_scorecard(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import sys

    from alerts.config import AlertSettings
    from alerts.evaluate import Evaluator
    from core.registry_yaml import load_registry

    monkeypatch.setitem(sys.modules, "analytics.scorecard", None)  # import -> ImportError
    rules = parse_rules({"rules": [{"id": "pue", "kind": "indicator",
                                    "params": {"indicator": "pue", "threshold": 1.25}}]})
    ev = Evaluator("postgresql://unused", load_registry(REPO / "simulators" / "sites"), rules,
                   AlertSettings.from_env(), None)
    with caplog.at_level("INFO", logger="nzc.alerts"):
        assert ev._indicator(None, rules[0], T0) == []  # type: ignore[arg-type]
        assert ev._indicator(None, rules[0], T0) == []  # type: ignore[arg-type]
    skipped = [r for r in caplog.records if "rule pue skipped" in r.getMessage()]
    assert len(skipped) == 1 and "analytics.scorecard" in skipped[0].getMessage()


def test_inhibiting_alerts_rank_before_the_alerts_they_inhibit(tmp_path: Path) -> None:
    from alerts.evaluate import inhibition_ranks

    rank = inhibition_ranks(Path(__file__).resolve().parents[2] / "alerts" / "routing.yaml")
    # routing.yaml: GatewayOffline inhibits MeterOffline and RepairOverdue, MeterOffline
    # inhibits SubmeterImbalance; an alert no rule inhibits ranks with the sources
    assert rank("GatewayOffline") < rank("MeterOffline") < rank("SubmeterImbalance")
    assert rank("GatewayOffline") < rank("RepairOverdue")
    assert rank("NightBaseLoadHigh") == rank("GatewayOffline") == 0
    cyclic = tmp_path / "routing.yaml"
    cyclic.write_text("inhibit_rules:\n"
                      "  - source_matchers: ['alertname=\"A\"']\n"
                      "    target_matchers: ['alertname=~\"B|C\"']\n"
                      "  - source_matchers: ['alertname=\"B\"']\n"
                      "    target_matchers: ['alertname=\"A\"']\n", encoding="utf-8")
    bounded = inhibition_ranks(cyclic)  # a cycle of rules terminates
    assert bounded("C") >= 1 and bounded("X") == 0
    assert inhibition_ranks(tmp_path / "missing.yaml")("GatewayOffline") == 0
