"""Micro-benchmark of the counters (carbon.counters): CPU per reading and state size per meter.

One meter with 1-minute register readings, 15-min intervals and the default lateness bound
(2 h). Measured in the same run:

* ``in-order, fast path``: readings in time order (the in-order fast path);
* ``in-order, full path``: the same readings with the fast path off (every reading rescans
  and recomputes the kept window): the baseline;
* ``out-of-order``: every second pair of readings swapped (the late one takes the full path);
* ``fast path + flush``: in order, with the state serialised and read back every 50 readings
  (what a stream worker does once per flush).

Prints µs per reading (best of ``--repeat`` runs, ``time.process_time``), the ratio to the
baseline, and the state size per meter: serialised bytes (``MeterState.to_bytes``) and the
in-memory size (the object, its arrays and containers, ``sys.getsizeof``), at steady state.

Usage: ``.venv/bin/python benchmarks/counters_bench.py [--readings 4320] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from carbon import counters
from carbon.counters import MeterSpec, MeterState, apply_register

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
SPEC = MeterSpec("bench", register_max=1e9, max_rate_per_h=1000.0)
KW = {"interval_s": 900, "lateness_s": 7200}


def series(n: int) -> list[tuple[int, float]]:
    """``n`` 1-minute registers of a meter drawing 100-400 kW (a deterministic pattern)."""
    out, v = [], 50_000.0
    for k in range(n):
        v += (100.0 + 300.0 * ((k * 7919) % 101) / 100.0) / 60.0
        out.append((T0 + k * MIN, round(v, 3)))
    return out


def swapped(readings: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Every second pair of consecutive readings swapped (one late reading in four)."""
    out = readings[:]
    for i in range(0, len(out) - 1, 4):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def run(readings: list[tuple[int, float]], flush_every: int = 0) -> MeterState:
    state = MeterState()
    for i, (ts, v) in enumerate(readings):
        apply_register(SPEC, state, ts, v, **KW)
        if flush_every and i % flush_every == flush_every - 1:
            state = MeterState.from_bytes(state.to_bytes())
    return state


def timed(fn: Callable[[], Any], n: int, repeat: int) -> float:
    """Best CPU time per call of ``fn`` over ``repeat`` runs, in µs per reading."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best / n * 1e6


def memory_bytes(state: MeterState) -> int:
    """In-memory size of a state: the object (slots) and every field value (arrays,
    bytearrays, dicts and the lists in them)."""
    total = sys.getsizeof(state)
    for f in fields(state):
        value = getattr(state, f.name)
        total += sys.getsizeof(value)
        if isinstance(value, dict):
            for k, v in value.items():
                total += sys.getsizeof(k) + sys.getsizeof(v)
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--readings", type=int, default=4320, help="readings (default 3 days)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    rs = series(args.readings)
    late = swapped(rs)
    n = len(rs)
    counters.FAST_PATH = True
    fast = timed(lambda: run(rs), n, args.repeat)
    ooo = timed(lambda: run(late), n, args.repeat)
    flushed = timed(lambda: run(rs, flush_every=50), n, args.repeat)
    counters.FAST_PATH = False
    try:
        full = timed(lambda: run(rs), n, args.repeat)
        ooo_full = timed(lambda: run(late), n, args.repeat)
    finally:
        counters.FAST_PATH = True
    state = MeterState()
    peak_mem = peak_ser = 0
    for i, (ts, v) in enumerate(rs):
        apply_register(SPEC, state, ts, v, **KW)
        if i >= len(rs) // 2:  # steady state: the window is full
            peak_mem = max(peak_mem, memory_bytes(state))
            peak_ser = max(peak_ser, len(state.to_bytes()))
    ser = len(state.to_bytes())
    mem = memory_bytes(state)
    print(f"counters micro-benchmark: {n} readings of one meter, 1-min registers, 15-min "
          f"intervals, lateness 7200 s, best of {args.repeat}")
    print(f"  in-order, full path (baseline) {full:8.1f} µs/reading  1.00x")
    print(f"  in-order, fast path            {fast:8.1f} µs/reading  {full / fast:.2f}x faster")
    print(f"  fast path + flush every 50     {flushed:8.1f} µs/reading  "
          f"{full / flushed:.2f}x faster")
    print(f"  one in four late, fast path on {ooo:8.1f} µs/reading  {full / ooo:.2f}x faster")
    print(f"  one in four late, full path    {ooo_full:8.1f} µs/reading")
    print(f"  state per meter: {ser} bytes serialised, {mem} bytes in memory "
          f"({len(state.ts)} kept readings, {len(state.pts)} remembered dropped ones); "
          f"largest at steady state {peak_ser} bytes serialised, {peak_mem} in memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
