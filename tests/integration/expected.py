"""Expected values computed by a route independent of ``carbon.counters``.

The counters apportion each segment between two readings over the intervals it overlaps.
Here, instead, the register is interpolated linearly at every interval boundary and the
interval's quantity is the difference of the interpolated registers at its two ends; the two
agree only if the implementation is right. Factors are the published values from
``../shared/design/DOMAIN.md``, typed in here, not read from ``carbon.factors``.
"""

from __future__ import annotations

import itertools

# MEE notice 2025 No. 47 (data year 2023), the newest published for accounting years >= 2023.
SICHUAN_GRID_2023_KG_PER_KWH = 0.1564
NATIONAL_EXCL_MARKET_2023_KG_PER_KWH = 0.6096
# Natural gas: 389.31 GJ/10^4 Nm3 x 15.3 tC/TJ x 99 % x 44/12, per m3 in kg:
GAS_KG_PER_M3 = 389.31 / 10_000 * 15.3 / 1000 * 0.99 * 44 / 12 * 1000


def register_at(points: list[tuple[int, float]], t: int) -> float:
    """Linear interpolation of the register at ``t`` (``points`` sorted, t inside them)."""
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    raise ValueError(f"{t} outside {points[0][0]}..{points[-1][0]}")


def interval_quantities(readings: list[tuple[int, float]], interval_ms: int) -> dict[int, float]:
    """Quantity per interval start [ms] from register readings (duplicates allowed, any
    order), by boundary interpolation."""
    points = sorted(set(readings))
    first, last = points[0][0], points[-1][0]
    out: dict[int, float] = {}
    start = first - first % interval_ms
    while start < last:
        lo, hi = max(start, first), min(start + interval_ms, last)
        out[start] = register_at(points, hi) - register_at(points, lo)
        start += interval_ms
    return out
