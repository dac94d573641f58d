"""The park simulator (simulators.profiles, simulators.run) without a broker.

Expected register differences are recomputed here from the published rates, slot by slot, so the
tests check the integration and not just its own output.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from carbon.registry import Registry, parse_registry
from carbon.units import Carrier
from core.registry_yaml import load_registry
from core.settings import mqtt_topic
from ingest.schema import parse_payload
from simulators.profiles import MAX_RATE_FRACTION, ParkSimulation, register_resolution
from simulators.run import build_batches, format_ts, main

SAMPLE = Path(__file__).resolve().parents[2] / "simulators" / "sites" / "sample_park.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Monday 2026-03-02 00:00 local (Asia/Shanghai) = 2026-03-01T16:00:00Z
MONDAY = datetime(2026, 3, 2, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(SAMPLE)


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    """A local (Asia/Shanghai) wall time as an aware UTC datetime."""
    return datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).astimezone(UTC)


def children_of(registry: Registry) -> dict[str, list[str]]:
    kids: dict[str, list[str]] = {}
    for m in registry.meters.values():
        if m.parent_id is not None:
            kids.setdefault(m.parent_id, []).append(m.meter_id)
    return kids


def canonical(registry: Registry, rates: dict[str, float]) -> dict[str, float]:
    return {k: v * registry.meters[k].to_canonical for k, v in rates.items()}


def test_sample_park_has_the_expected_tree(registry: Registry) -> None:
    kids = children_of(registry)
    assert sorted(kids["cdp-grid-main"]) == ["ent-a-main", "ent-b-main", "svc-main"]
    assert sorted(kids["ent-a-main"]) == ["ent-a-hvac", "ent-a-line1", "ent-a-line2"]


def test_registers_grow_or_roll_over_at_register_max(registry: Registry) -> None:
    forced = {"ent-a-line1": 1_000_000.0 - 50.0, "svc-canteen-gas": 1_000_000.0 - 0.5}
    sim = ParkSimulation(registry, 7, MONDAY, initial_registers=forced)
    prev = dict(sim.readings_at(MONDAY))
    prev_energy = sim.energy_since_start(MONDAY)
    rollovers = {mid: 0 for mid in registry.meters}
    for k in range(1, 3 * 288 + 1):  # three days every 5 minutes
        t = MONDAY + timedelta(seconds=300 * k)
        cur = dict(sim.readings_at(t))
        energy = sim.energy_since_start(t)
        for mid, v in cur.items():
            m = registry.meters[mid]
            assert 0.0 <= v < m.register_max
            if v < prev[mid]:
                assert prev[mid] - v > m.register_max / 2, f"{mid} decreased at {t}"
                rollovers[mid] += 1
            delta = (v - prev[mid]) % m.register_max
            expected = energy[mid] - prev_energy[mid]
            assert delta == pytest.approx(expected, abs=register_resolution(m.unit) * 1.01)
        prev, prev_energy = cur, energy
    assert rollovers["ent-a-line1"] == 1
    assert rollovers["svc-canteen-gas"] == 1
    assert sum(rollovers.values()) == 2


def test_parent_is_at_least_the_sum_of_its_children(registry: Registry) -> None:
    sim = ParkSimulation(registry, 3, MONDAY)
    kids = children_of(registry)
    for k in range(7 * 1440):  # every slot of a week
        r = canonical(registry, sim.rates_at(MONDAY + timedelta(seconds=60 * k)))
        for parent, cs in kids.items():
            total = sum(r[c] for c in cs)
            if parent == "cdp-grid-main":
                # Site connection: PV behind the meter, surplus on the export meter.
                seen = r[parent] + r["cdp-pv"] - r["cdp-grid-export"]
                assert not (r[parent] > 0 and r["cdp-grid-export"] > 0)
            else:
                seen = r[parent]
            assert seen >= 1.05 * total - 1e-9, (parent, k)  # losses are at least 5 %


def test_parent_registers_cover_children_over_each_hour(registry: Registry) -> None:
    sim = ParkSimulation(registry, 11, MONDAY)
    kids = children_of(registry)
    prev = sim.energy_since_start(MONDAY)
    for h in range(1, 49):
        e = sim.energy_since_start(MONDAY + timedelta(hours=h))
        d = canonical(registry, {k: e[k] - prev[k] for k in e})
        for parent, cs in kids.items():
            balance = d[parent]
            if parent == "cdp-grid-main":
                balance += d["cdp-pv"] - d["cdp-grid-export"]
            assert balance >= sum(d[c] for c in cs)
        prev = e


@pytest.mark.parametrize("seed", [1, 2])
def test_rates_stay_below_max_rate(registry: Registry, seed: int) -> None:
    sim = ParkSimulation(registry, seed, datetime(2026, 1, 1, tzinfo=UTC))
    t = sim.start_utc
    for _ in range(365 * 24 * 60 // 37):  # a year, every 37 minutes
        for mid, rate in sim.rates_at(t).items():
            m = registry.meters[mid]
            assert 0.0 <= rate <= MAX_RATE_FRACTION * m.max_rate_per_h, (mid, t, rate)
        t += timedelta(minutes=37)


def test_subtree_is_scaled_to_fit_a_small_parent() -> None:
    doc = {
        "sites": [{
            "id": "s", "name": "s", "type": "park", "province": "sichuan", "city": "Chengdu",
            "baseline_year": 2022,
            "meters": [
                {"id": "main", "carrier": "grid_import", "unit": "kWh", "gateway": "g",
                 "register_max": 1e6, "max_rate_per_h": 100},
                *[
                    {"id": f"l{i}", "carrier": "grid_import", "unit": "kWh", "gateway": "g",
                     "parent": "main", "group": "enterprise-a", "register_max": 1e6,
                     "max_rate_per_h": 100}
                    for i in range(5)
                ],
            ],
        }]
    }
    reg = parse_registry(doc)
    sim = ParkSimulation(reg, 1, MONDAY)
    peak = 0.0
    for k in range(0, 7 * 1440, 7):
        r = sim.rates_at(MONDAY + timedelta(minutes=k))
        assert r["main"] <= MAX_RATE_FRACTION * 100
        assert r["main"] >= sum(r[f"l{i}"] for i in range(5))
        peak = max(peak, r["main"])
    assert peak > 50  # scaled, not flattened


def test_pv_is_zero_at_night_and_positive_at_noon(registry: Registry) -> None:
    sim = ParkSimulation(registry, 5, datetime(2026, 1, 1, tzinfo=UTC))
    for day in range(365):
        d = datetime(2026, 1, 1) + timedelta(days=day)
        for h, mi in [(20, 30), (21, 0), (23, 30), (0, 0), (2, 15), (4, 45)]:
            t = local(d.year, d.month, d.day, h, mi)
            r = sim.rates_at(t)
            assert r["cdp-pv"] == 0.0, (t, h)
            assert r["cdp-grid-export"] == 0.0
        assert sim.rates_at(local(d.year, d.month, d.day, 13))["cdp-pv"] > 0.0


def test_same_seed_same_readings_whatever_the_stepping(registry: Registry) -> None:
    start = datetime(2026, 5, 4, 0, 0, 30, tzinfo=UTC)  # not on a slot boundary
    end = start + timedelta(hours=7, seconds=17)
    a = ParkSimulation(registry, 42, start)
    b = ParkSimulation(registry, 42, start)
    c = ParkSimulation(registry, 43, start)
    t = start
    while t < end:
        a.readings_at(t)
        t += timedelta(seconds=45)
    assert a.readings_at(end) == b.readings_at(end)  # stepped vs one jump: bit for bit
    assert a.readings_at(start + timedelta(hours=1)) == b.readings_at(start + timedelta(hours=1))
    assert a.initial_registers == b.initial_registers
    assert c.readings_at(end) != b.readings_at(end)
    assert c.initial_registers != b.initial_registers


def expected_energy(sim: ParkSimulation, t0: datetime, t1: datetime) -> dict[str, float]:
    """Integral of :meth:`ParkSimulation.rates_at` from t0 to t1 [meter unit], slot by slot."""
    out = dict.fromkeys(sim.rates_at(t0), 0.0)
    t = t0
    while t < t1:
        _, slot_end = sim.slot_bounds(t)
        seg_end = min(slot_end, t1)
        hours = (seg_end - t).total_seconds() / 3600.0
        for mid, rate in sim.rates_at(t).items():
            out[mid] += rate * hours
        t = seg_end
    return out


def test_register_difference_is_the_integral_of_the_rate(registry: Registry) -> None:
    start = datetime(2026, 7, 14, 16, 0, 30, tzinfo=UTC)
    sim = ParkSimulation(registry, 9, start)
    t0 = start + timedelta(minutes=10, seconds=5)
    t1 = t0 + timedelta(days=1, seconds=13)
    r0, r1 = sim.registers_at(t0), sim.registers_at(t1)
    expected = expected_energy(sim, t0, t1)
    for mid, e in expected.items():
        m = registry.meters[mid]
        got = (r1[mid] - r0[mid]) % m.register_max
        assert got == pytest.approx(e, rel=1e-9, abs=1e-6), mid
        if m.carrier is not Carrier.GRID_EXPORT:
            assert e > 0, mid
    # and the published (floored) readings agree within one register step
    q0, q1 = dict(sim.readings_at(t0)), dict(sim.readings_at(t1))
    for mid, e in expected.items():
        m = registry.meters[mid]
        got = (q1[mid] - q0[mid]) % m.register_max
        assert got == pytest.approx(e, abs=register_resolution(m.unit) * 1.01), mid


def test_energy_since_start_is_zero_at_start_and_rejects_earlier_times(
    registry: Registry,
) -> None:
    sim = ParkSimulation(registry, 1, MONDAY)
    assert set(sim.energy_since_start(MONDAY).values()) == {0.0}
    with pytest.raises(ValueError, match="before the simulation start"):
        sim.energy_since_start(MONDAY - timedelta(seconds=1))
    with pytest.raises(ValueError, match="no UTC offset"):
        sim.rates_at(datetime(2026, 3, 2))


def test_initial_registers_are_seeded_and_validated(registry: Registry) -> None:
    sim = ParkSimulation(registry, 1, MONDAY)
    for mid, v in sim.initial_registers.items():
        assert 0.0 <= v < registry.meters[mid].register_max
    with pytest.raises(ValueError, match="register_max"):
        ParkSimulation(registry, 1, MONDAY, initial_registers={"svc-ev": 1_000_000.0})
    with pytest.raises(ValueError, match="unknown meters"):
        ParkSimulation(registry, 1, MONDAY, initial_registers={"nope": 1.0})


def daily_totals(sim: ParkSimulation, day: datetime) -> dict[str, float]:
    """Energy through every meter during the 24 h from ``day`` [meter unit]."""
    e0 = sim.energy_since_start(day)
    e1 = sim.energy_since_start(day + timedelta(days=1))
    return {k: e1[k] - e0[k] for k in e0}


def test_profiles_have_the_described_shapes(registry: Registry) -> None:
    sim = ParkSimulation(registry, 1, local(2026, 6, 1, 0))  # Monday 1 June 2026
    wed = sim.rates_at(local(2026, 6, 3, 14))
    wed_night = sim.rates_at(local(2026, 6, 3, 3))
    sun = sim.rates_at(local(2026, 6, 7, 14))
    # enterprise A: two shifts, off on Sunday
    assert wed["ent-a-line1"] > 5 * sun["ent-a-line1"]
    assert sim.rates_at(local(2026, 6, 3, 22))["ent-a-line1"] > 5 * wed_night["ent-a-line1"]
    # enterprise B: day shift with boiler; cold store runs day and night
    assert wed["ent-b-boiler-gas"] > 10 * wed_night["ent-b-boiler-gas"]
    assert sim.rates_at(local(2026, 6, 3, 21))["ent-b-boiler-gas"] < 0.1 * wed["ent-b-boiler-gas"]
    assert wed_night["ent-b-cold"] > 0.3 * wed["ent-b-cold"]
    # service centre: office day, EV in the evening, canteen gas at lunch
    assert sim.rates_at(local(2026, 6, 3, 19, 30))["svc-ev"] > 5 * wed_night["svc-ev"]
    lunch = sim.rates_at(local(2026, 6, 3, 11, 50))["svc-canteen-gas"]
    assert lunch > 5 * sim.rates_at(local(2026, 6, 3, 15))["svc-canteen-gas"]
    # weekends are lower
    weekday = daily_totals(sim, local(2026, 6, 3, 0))
    sunday = daily_totals(sim, local(2026, 6, 7, 0))
    for meter in ("ent-a-main", "ent-b-main", "svc-main", "ent-a-gas", "ent-b-boiler-gas"):
        assert sunday[meter] < 0.7 * weekday[meter], meter
    # PV surplus is exported on some weekend middays of a summer month
    exported = [
        sim.rates_at(local(2026, 6, d, 13))["cdp-grid-export"] for d in (6, 7, 13, 14, 20, 21)
    ]
    assert max(exported) > 0


def test_batches_match_the_wire_schema(registry: Registry) -> None:
    sim = ParkSimulation(registry, 1, MONDAY)
    t = MONDAY + timedelta(minutes=5)
    readings = sim.readings_at(t)
    batches = build_batches(readings, t, registry.meters)
    gateways = {(m.site_id, m.gateway_id) for m in registry.meters.values()}
    assert {(b.site_id, b.gateway_id) for b in batches} == gateways
    assert len(batches) == len(gateways)
    seen: dict[str, float] = {}
    for b in batches:
        assert b.topic == mqtt_topic(b.site_id, b.gateway_id)
        parsed = parse_payload(b.payload)
        assert len(parsed) == b.readings
        for r in parsed:
            m = registry.meters[r.meter]
            assert m.gateway_id == b.gateway_id
            assert r.unit == m.unit
            assert r.ts_ms == int(t.timestamp() * 1000)
            assert r.register_value is not None
            seen[r.meter] = r.register_value
    assert seen == dict(readings)
    assert format_ts(t) == "2026-03-01T16:05:00Z"


class FakePublisher:
    """Records what :func:`main` publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []
        self.connected = False
        self.flushed = False
        self.closed = False

    def connect(self, timeout_s: float = 10.0) -> None:
        self.connected = True

    def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        assert self.connected
        self.sent.append((topic, payload, readings))

    def flush(self, timeout_s: float = 30.0) -> None:
        self.flushed = True

    def close(self) -> None:
        self.closed = True


def run_main(argv: Sequence[str]) -> tuple[int, FakePublisher]:
    fake = FakePublisher()
    rc = main(list(argv), publisher_factory=lambda host, port, inflight: fake)
    return rc, fake


def test_main_publishes_one_batch_per_gateway_per_round(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, fake = run_main(
        ["--registry", str(SAMPLE), "--fast", "--count", "5", "--start", "2026-03-01T16:00:00Z"]
    )
    assert rc == 0
    assert fake.flushed and fake.closed
    assert len(fake.sent) == 5 * 4
    assert sum(n for _, _, n in fake.sent) == 5 * len(registry.meters)
    out = capsys.readouterr().out
    assert "20 messages" in out and "70 readings" in out
    assert "cd-park/gw-a: 5 messages, 25 readings" in out
    # what main publishes is what the simulation computes: by default every register counts
    # the energy since the start of its UTC day (a pure function of seed, meter and time)
    day = datetime(2026, 3, 1, tzinfo=UTC)
    sim = ParkSimulation(registry, 1, day, initial_registers=dict.fromkeys(registry.meters, 0.0))
    last = MONDAY + timedelta(minutes=4)
    expected = build_batches(sim.readings_at(last), last, registry.meters)
    assert [(b.topic, b.payload) for b in expected] == [(t, p) for t, p, _ in fake.sent[-4:]]
    # --register-period-s 0: registers start from seeded values at --start
    rc, fake = run_main(["--registry", str(SAMPLE), "--fast", "--count", "5", "--start",
                         "2026-03-01T16:00:00Z", "--register-period-s", "0"])
    sim = ParkSimulation(registry, 1, MONDAY)
    expected = build_batches(sim.readings_at(last), last, registry.meters)
    assert [(b.topic, b.payload) for b in expected] == [(t, p) for t, p, _ in fake.sent[-4:]]


def test_main_duration_bound_includes_the_end(registry: Registry) -> None:
    rc, fake = run_main(
        ["--registry", str(SAMPLE), "--speed", "0", "--duration-s", "600", "--interval-s", "300",
         "--start", "2026-03-01T16:00:00Z"]
    )
    assert rc == 0
    assert len(fake.sent) == 3 * 4  # 0, 300, 600 s
    ts = {parse_payload(p)[0].ts_ms for _, p, _ in fake.sent}
    assert max(ts) - min(ts) == 600_000


@pytest.mark.parametrize(
    "argv",
    [
        ["--fast"],
        ["--fast", "--count", "0"],
        ["--speed", "-1", "--count", "1"],
        ["--forever", "--count", "1"],
        ["--start", "yesterday", "--count", "1"],
    ],
)
def test_main_rejects_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_main(["--registry", str(SAMPLE), *argv])
    assert exc.value.code == 2


def test_main_reports_a_missing_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, fake = run_main(["--registry", str(tmp_path / "none.yaml"), "--fast", "--count", "1"])
    assert rc == 1
    assert fake.sent == []
    assert "cannot load registry" in capsys.readouterr().err


def test_register_resolution() -> None:
    assert register_resolution("Wh") == 1.0
    assert register_resolution("kWh") == 0.001
