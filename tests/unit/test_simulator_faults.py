"""Fault injection and the run report (simulators.faults, simulators.scenario).

The sample park speaks our JSON, so every effect is recounted here from the payloads
themselves (parsed with ingest's own schema), independently of the scenario's bookkeeping.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carbon.registry import Registry
from core.registry_yaml import load_registry
from ingest.schema import PayloadError, parse_payload
from simulators.faults import FAULTS, FaultConfig, FaultError, parse_faults
from simulators.scale import profile_path
from simulators.scenario import Outgoing, Scenario

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
ROUNDS = 300
INTERVAL_S = 60


@pytest.fixture(scope="module")
def park() -> Registry:
    return load_registry(profile_path("sample_park"))


def run(reg: Registry, rounds: int = ROUNDS, seed: int = 11, **kw: Any) -> tuple[
        Scenario, list[tuple[int, Outgoing]]]:
    """Run ``rounds`` rounds (+ finish); return the scenario and (round, message) pairs."""
    faults = FaultConfig(**kw)
    sc = Scenario(reg, start=START, interval_s=INTERVAL_S, seed=seed, faults=faults,
                  horizon_rounds=rounds)
    out: list[tuple[int, Outgoing]] = []
    for k in range(rounds):
        out.extend((k, o) for o in sc.step())
    out.extend((rounds, o) for o in sc.finish())
    return sc, out


def readings(msgs: Iterable[tuple[int, Outgoing]]) -> list[tuple[int, str, int, float]]:
    """(round sent, meter, ts_ms, value) of every well-formed reading, in publish order."""
    rows = []
    for k, o in msgs:
        try:
            parsed = parse_payload(o.payload)
        except PayloadError:
            continue
        rows.extend((k, r.meter, r.ts_ms, float(r.register_value or 0.0)) for r in parsed)
    return rows


def within(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    """``count`` is a plausible binomial(n, p) draw."""
    sd = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= sigmas * sd + 1


def reference(reg: Registry) -> dict[tuple[str, int], float]:
    """(meter, ts_ms) -> register of a fault-free run."""
    _, msgs = run(reg)
    return {(m, ts): v for _, m, ts, v in readings(msgs)}


def test_parse_faults() -> None:
    assert parse_faults("offline=0.02, spike ,out-of-order=0") == {
        "offline": 0.02, "spike": 0.01, "out_of_order": 0.0}
    assert parse_faults("") == {}
    with pytest.raises(FaultError, match="unknown fault 'flood'"):
        parse_faults("flood=0.1")
    with pytest.raises(FaultError, match="outside"):
        parse_faults("spike=2")
    with pytest.raises(FaultError, match="not a number"):
        parse_faults("spike=x")
    with pytest.raises(FaultError, match="late_rounds"):
        FaultConfig(late_rounds=1)
    with pytest.raises(FaultError, match="min <= max"):
        FaultConfig(offline_rounds=(5, 2))


def test_no_faults_one_batch_per_gateway_per_round(park: Registry) -> None:
    sc, msgs = run(park, rounds=50)
    assert len(msgs) == 50 * 4
    rows = readings(msgs)
    assert len(rows) == 50 * 14 == sc.report.readings == sc.report.clean_readings
    assert all(k == (ts - int(START.timestamp() * 1000)) // 60_000 for k, _, ts, _ in rows)
    assert {n for n, c in sc.report.faults.items() if c.events or c.readings} == set()


def test_spikes_at_rate_and_above_the_physical_maximum(park: Registry) -> None:
    ref = reference(park)
    sc, msgs = run(park, rates={"spike": 0.05})
    spiked = [(m, ts, v) for _, m, ts, v in readings(msgs) if v != ref[(m, ts)]]
    assert len(spiked) == sc.report.faults["spike"].readings == sc.report.faults["spike"].events
    assert within(len(spiked), ROUNDS * 14, 0.05)
    for m, ts, v in spiked:
        meter = park.meters[m]
        jump = (v - ref[(m, ts)]) / (INTERVAL_S / 3600)  # [unit per hour]
        assert jump > 3 * meter.max_rate_per_h
    assert sc.report.clean_readings == ROUNDS * 14 - len(spiked)


def test_resets_and_replacements_drop_to_small_values(park: Registry) -> None:
    sc, msgs = run(park, rates={"reset": 0.01, "replacement": 0.01})
    last: dict[str, float] = {}
    drops = 0
    for _, m, _, v in readings(msgs):
        meter = park.meters[m]
        if m in last and v < last[m]:
            drops += 1
            # a drop to at most one interval of the meter's maximum plus a fresh meter's start
            assert v <= 0.001 * last[m] + meter.max_rate_per_h * INTERVAL_S / 3600
        last[m] = v
    f = sc.report.faults
    events = f["reset"].events + f["replacement"].events
    # a reset of a meter that stood still since its last reading (PV at night, export) shows
    # no drop: nothing to drop from
    assert events - 6 <= drops <= events
    assert within(f["reset"].events, ROUNDS * 14, 0.01)
    assert within(f["replacement"].events, ROUNDS * 14, 0.01)


def test_rollovers_wrap_at_register_max(park: Registry) -> None:
    sc, msgs = run(park, rates={"rollover": 0.5})
    last: dict[str, float] = {}
    wraps = []
    for _, m, _, v in readings(msgs):
        if m in last and v < last[m]:
            assert last[m] > 0.9 * park.meters[m].register_max
            wraps.append(m)
        last[m] = v
    f = sc.report.faults["rollover"]
    assert len(wraps) == len(set(wraps)) == f.events == f.planned
    assert 3 <= f.planned <= 11  # 14 meters at 0.5, minus meters without flow (export)


def test_offline_meters_stop_reporting_for_a_while(park: Registry) -> None:
    sc, msgs = run(park, rates={"offline": 0.01}, offline_rounds=(3, 6))
    seen = Counter(m for _, m, _, _ in readings(msgs))
    missing = sum(ROUNDS - seen[m] for m in park.meters)
    f = sc.report.faults["offline"]
    assert missing == f.readings > 0
    assert 3 * f.events <= missing <= 6 * f.events
    assert within(f.events, ROUNDS * 14 - missing, 0.01)


def test_duplicates_are_consecutive_copies(park: Registry) -> None:
    sc, msgs = run(park, rates={"duplicate": 0.05})
    payloads = [o.payload for _, o in msgs]
    dup = sum(1 for x, y in itertools.pairwise(payloads) if x == y)
    assert dup == sc.report.faults["duplicate"].messages
    assert sum(1 for _, o in msgs if "duplicate" in o.faults) == dup
    assert within(dup, ROUNDS * 4, 0.05)
    assert sc.report.readings == ROUNDS * 14 + sc.report.faults["duplicate"].readings
    assert sc.report.clean_readings == ROUNDS * 14


def test_out_of_order_and_late_messages(park: Registry) -> None:
    sc, msgs = run(park, rates={"out_of_order": 0.05, "late": 0.02}, late_rounds=7)
    f = sc.report.faults
    start_ms = int(START.timestamp() * 1000)
    rows = readings(msgs)
    delays = Counter(k - (ts - start_ms) // 60_000 for k, _, ts, _ in rows if k < ROUNDS)
    flushed = [r for r in rows if r[0] == ROUNDS]  # still held at the end: sent by finish()
    assert set(delays) == {0, 1, 7}
    assert delays[1] == f["out_of_order"].readings > 0
    assert delays[7] + len(flushed) == f["late"].readings > 0
    assert all((ts - start_ms) // 60_000 > ROUNDS - 7 for _, _, ts, _ in flushed)
    assert within(f["out_of_order"].messages, ROUNDS * 4, 0.05 * 0.98)
    assert within(f["late"].messages, ROUNDS * 4, 0.02)
    # an out-of-order batch follows the on-time batch of its gateway in the same round
    order: dict[tuple[int, str], list[int]] = {}
    for k, o in msgs:
        ts = parse_payload(o.payload)[0].ts_ms
        order.setdefault((k, o.gateway_id), []).append(k - (ts - start_ms) // 60_000)
    for delays_in_round in order.values():
        assert delays_in_round == sorted(delays_in_round)


def test_clock_skew_malformed_and_clean_readings(park: Registry) -> None:
    ref = reference(park)
    sc, msgs = run(park, rates={"clock_skew": 0.03, "malformed": 0.03, "spike": 0.01},
                   clock_skew_s=7.0)
    f = sc.report.faults
    bad = 0
    for _, o in msgs:
        try:
            parse_payload(o.payload)
        except PayloadError:
            bad += 1
            assert "malformed" in o.faults
    assert bad == f["malformed"].messages
    assert within(bad, ROUNDS * 4, 0.03)
    rows = readings(msgs)
    skewed = [r for r in rows if r[2] % 60_000 == 7_000]
    lost = sum(o.readings for _, o in msgs if {"clock_skew", "malformed"} <= o.faults)
    assert len(skewed) + lost == f["clock_skew"].readings > 0
    assert within(f["clock_skew"].messages, ROUNDS * 4, 0.03)
    clean = {(m, ts) for _, m, ts, v in rows if ts % 60_000 == 0 and ref[(m, ts)] == v}
    assert len(clean) == sc.report.clean_readings


def test_bursts_send_the_backlog_in_one_batch(park: Registry) -> None:
    sc, msgs = run(park, rates={"burst": 0.02}, burst_rounds=(3, 5))
    f = sc.report.faults["burst"]
    sizes = []
    for _, o in msgs:
        times = {r.ts_ms for r in parse_payload(o.payload)}
        if len(times) > 1:
            sizes.append(len(times))
    assert len(sizes) == f.events > 0
    assert all(4 <= s <= 6 for s in sizes)  # 3-5 held rounds plus the release round
    assert len(readings(msgs)) == ROUNDS * 14  # nothing lost: every reading goes out once
    assert sc.report.clean_readings == ROUNDS * 14


def test_report_counts_what_was_published(park: Registry) -> None:
    sc, msgs = run(park, rates={f: 0.02 for f in FAULTS})
    r = sc.report
    assert r.messages == len(msgs)
    assert r.readings == sum(o.readings for _, o in msgs)
    per_gw = Counter(f"{o.site_id}/{o.gateway_id}" for _, o in msgs)
    assert {k: g.messages for k, g in r.per_gateway.items()} == dict(per_gw)
    assert r.per_format["nzc"].messages == len(msgs)
    assert r.rounds == ROUNDS and r.first_ts == START
    assert r.last_ts == START + timedelta(minutes=ROUNDS - 1)
    d = r.to_dict()
    assert json.loads(json.dumps(d))["faults"]["spike"]["events"] == r.faults["spike"].events
    assert d["first_ts"] == "2026-03-02T00:00:00Z"
    text = "\n".join(r.lines())
    assert "fault spike:" in text and "cd-park/gw-a:" in text


def test_same_seed_same_faults_and_faults_do_not_move_each_other(park: Registry) -> None:
    _, a = run(park, rates={"spike": 0.03, "offline": 0.01})
    _, b = run(park, rates={"spike": 0.03, "offline": 0.01})
    assert [o.payload for _, o in a] == [o.payload for _, o in b]
    # switching another fault on does not move these: the same readings, values and gaps
    _, c = run(park, rates={"spike": 0.03, "offline": 0.01, "duplicate": 0.1})
    assert {r[1:] for r in readings(c)} == {r[1:] for r in readings(a)}
    assert len(readings(c)) > len(readings(a))
    _, d = run(park, seed=12, rates={"spike": 0.03, "offline": 0.01})
    assert {r[1:] for r in readings(d)} != {r[1:] for r in readings(a)}
