"""Re-running the simulator sends the same register for the same meter and time (issue 8
item 9): with ``register_period_s`` a register is a pure function of (seed, meter, time), so
two runs over overlapping windows, started at different times, agree on every shared
timestamp, and the daily restart of the registers is a reset the counters count exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carbon.counters import MeterSpec, MeterState, apply_register, interval_totals
from carbon.registry import Registry
from core.registry_yaml import load_registry
from simulators.profiles import SiteSimulation, register_resolution
from simulators.scale import SITES_DIR
from simulators.scenario import Scenario, period_start

DAY = 86_400


def _registry() -> Registry:
    return load_registry(SITES_DIR / "sample_park.yaml")


def _run(reg: Registry, start: datetime, rounds: int, period: int | None,
         interval_s: int = 300) -> dict[tuple[str, datetime], float]:
    """Every register the scenario publishes, by (meter, time)."""
    sc = Scenario(reg, start=start, interval_s=interval_s, seed=4, register_period_s=period)
    out: dict[tuple[str, datetime], float] = {}
    for _ in range(rounds):
        for o in sc.step():
            for r in o.message.carried:
                out[(r.meter.meter_id, r.ts)] = r.register
    return out


def test_two_runs_over_overlapping_windows_send_identical_registers() -> None:
    reg = _registry()
    first = _run(reg, datetime(2026, 6, 1, 20, 0, tzinfo=UTC), 48, DAY)  # 20:00 .. 23:55
    second = _run(reg, datetime(2026, 6, 1, 22, 5, tzinfo=UTC), 48, DAY)  # 22:05 .. 02:00
    shared = first.keys() & second.keys()
    assert len(shared) == 23 * len(reg.meters)  # 22:05 .. 23:55 every 5 min
    assert all(first[k] == second[k] for k in shared)
    # without a register period the registers depend on the run's start (the old behaviour)
    a = _run(reg, datetime(2026, 6, 1, 20, 0, tzinfo=UTC), 30, None)
    b = _run(reg, datetime(2026, 6, 1, 22, 5, tzinfo=UTC), 5, None)
    assert any(a[k] != b[k] for k in a.keys() & b.keys())


def test_the_daily_restart_is_a_reset_the_counters_count_exactly() -> None:
    reg = _registry()
    midnight = datetime(2026, 6, 2, tzinfo=UTC)
    assert period_start(midnight, DAY) == midnight - timedelta(days=1)  # (start, start + day]
    regs = _run(reg, midnight - timedelta(minutes=30), 13, DAY)  # 23:30 .. 00:30
    # the true energy of each meter over the hour, from the simulation itself
    sim = SiteSimulation(reg, 4, midnight - timedelta(minutes=30),
                         initial_registers=dict.fromkeys(reg.meters, 0.0))
    true = sim.energy_since_start(midnight + timedelta(minutes=30))
    starts = [int((midnight + timedelta(minutes=15 * k - 30)).timestamp() * 1000)
              for k in range(4)]
    restarted = 0
    for m in reg.meters.values():
        before = regs[(m.meter_id, midnight)]
        after = regs[(m.meter_id, midnight + timedelta(minutes=5))]
        spec = MeterSpec(m.meter_id, m.register_max, m.max_rate_per_h, 1800.0)
        state = MeterState()
        events = []
        for k in range(13):
            t = midnight + timedelta(minutes=5 * k - 30)
            res = apply_register(spec, state, int(t.timestamp() * 1000),
                                 regs[(m.meter_id, t)], interval_s=900, lateness_s=7200)
            assert res.rejection is None
            events.append(res.event)
        if before > 0:  # the register restarted after midnight: one reset, counted
            restarted += 1
            assert after < before and events.count("reset") == 1
            assert interval_totals(spec, state, starts[2:3], 900)[0].quality == "estimated"
        total = sum(iv.quantity for iv in interval_totals(spec, state, starts, 900))
        # registers are floored to the meter's resolution: within two steps of the truth
        res_step = register_resolution(m.unit)
        assert abs(total - true[m.meter_id]) <= 2 * res_step + 1e-9, (m.meter_id, total)
    assert restarted >= len(reg.meters) // 2
