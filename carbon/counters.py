"""From meter readings to energy per fixed interval.

A meter's readings are either *cumulative registers* (a counter that only grows, rolling over
to zero at its register width) or *interval values* (the quantity consumed in the ``period_s``
seconds ending at the reading time). This module turns them into the quantity consumed in each
fixed interval ``[start, start + interval_s)`` aligned to the Unix epoch (UTC), in the
carrier's canonical unit.

Rules (DOMAIN.md section 2):

* The first reading of a meter yields nothing: there is nothing to subtract from.
* A *segment* is the span between two consecutive register readings. Its quantity is the
  register difference, apportioned to the intervals it overlaps in proportion to time (a
  straight line between the two readings, i.e. constant rate inside the segment).
* A drop of the register is a *rollover* when the previous value was within the top
  :data:`ROLLOVER_BAND` of the register width and the implied quantity
  ``width - previous + current`` is physically possible; any other drop is a *reset or meter
  replacement*: the segment's quantity is unknown, so it is counted as uncovered time (never
  negative, never a spike), and the interval shows less than full coverage.
* A rise implying a rate above the meter's physical maximum is a *spike*: the reading is
  quarantined (not used) and reported with its reason. When :data:`REPLACEMENT_CONFIRMATIONS`
  such readings in a row agree with each other (possible rates between them), they are a
  *meter replacement* by a register that started higher: they are accepted, and the span from
  the last good reading to the first of them counts as uncovered, like a reset.
* A duplicate (same time, same value) changes nothing. A different value at an already known
  time replaces the old one: it is a correction, and every interval it touches is recomputed.
* Readings may arrive out of order. A meter keeps its readings for ``lateness_s`` behind the
  newest one; a reading older than what is kept is rejected as too late.

The state of one meter, :class:`MeterState`, is a plain JSON-ready value so that a stream
processor can keep it in a changelogged table. Every interval total is *recomputed* from the
kept readings in time order (plus a frozen base for readings already dropped), never updated
by increments: the same set of readings always gives bit-for-bit the same totals, whatever
the arrival order or the number of duplicates.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Literal

#: Fraction of the register width below the top in which a drop counts as a rollover.
ROLLOVER_BAND = 0.1

#: Consecutive, mutually consistent "spikes" after which they are taken for a meter
#: replacement (a new register that started higher) instead of a fault.
REPLACEMENT_CONFIRMATIONS = 3

MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class MeterSpec:
    """What the counter rules need to know about a meter, in canonical units.

    ``register_max`` [canonical unit]: register width; ``max_rate_per_h`` [canonical unit / h]:
    physical maximum rate.
    """

    meter_id: str
    register_max: float
    max_rate_per_h: float
    max_gap_s: float = 1800.0


Quality = Literal["measured", "estimated", "partial", "missing"]

#: Cells of the per-interval accumulators: quantity, measured seconds, estimated quantity,
#: estimated seconds.
_Q, _MS, _EQ, _ES = 0, 1, 2, 3


@dataclass(frozen=True)
class IntervalEnergy:
    """The quantity of one meter in one interval, as far as it is known now.

    ``quantity`` [canonical unit] is the total; ``estimated_quantity`` [canonical unit] is the
    part of it that was placed by estimate: a segment longer than the meter's ``max_gap_s``
    (a gap between readings) is spread linearly over the gap, its total being known from the
    registers but not its timing. ``covered_s`` [s] is the measured time in the interval,
    ``estimated_s`` [s] the estimated time. ``quality``:

    * ``measured``: the whole interval is covered by measured segments;
    * ``estimated``: the whole interval is covered, partly or wholly by estimate;
    * ``partial``: part of the interval is not covered (a reset, the newest interval still
      filling, the first reading falling inside it);
    * ``missing``: nothing covers the interval (it is touched only by a reset segment).

    An offline meter produces no rows at all for the intervals it missed until it reports
    again: aggregates count those as missing against the expected number of intervals.
    """

    meter_id: str
    interval_start_ms: int
    interval_s: int
    quantity: float
    covered_s: float
    quality: Quality
    estimated_quantity: float = 0.0
    estimated_s: float = 0.0


@dataclass(frozen=True)
class Rejection:
    """A reading the counter rules refused, with a stable ``code`` and a readable reason."""

    meter_id: str
    ts_ms: int
    code: Literal["too_late", "spike", "interval_too_late"]
    reason: str


@dataclass
class MeterState:
    """Per-meter state (JSON-ready through :meth:`to_json` / :meth:`from_json`).

    ``regs``: kept register readings ``[ts_ms, value]`` sorted by time. The first one is the
    *anchor*: nothing at or before it can be accepted any more.
    ``ivals``: kept interval values ``{end_ts_ms: [period_s, value]}``.
    ``base``: per interval start, ``[quantity, measured_s, estimated_quantity, estimated_s]``
    contributed by readings that were
    dropped from ``regs``/``ivals`` but whose interval can still change.
    ``horizon_ms``: intervals starting before it are final.
    ``pruned``: register readings dropped during the last ``lateness_s`` before the anchor,
    ``{ts_ms: value}``, so that a replay of them (after a crash) is recognised as a duplicate
    instead of being rejected as too late.
    ``max_ts_ms``: newest reading time seen (the meter's watermark).
    """

    regs: list[list[float]] = field(default_factory=list)
    ivals: dict[int, list[float]] = field(default_factory=dict)
    base: dict[int, list[float]] = field(default_factory=dict)
    horizon_ms: int | None = None
    max_ts_ms: int | None = None
    pruned: list[list[float]] = field(default_factory=list)
    suspects: list[list[float]] = field(default_factory=list)
    breaks: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready representation (dict keys become strings)."""
        return {
            "regs": self.regs,
            "ivals": {str(k): v for k, v in self.ivals.items()},
            "base": {str(k): v for k, v in self.base.items()},
            "horizon_ms": self.horizon_ms,
            "max_ts_ms": self.max_ts_ms,
            "pruned": self.pruned,
            "suspects": self.suspects,
            "breaks": self.breaks,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> MeterState:
        """Inverse of :meth:`to_json`; ``None`` gives a fresh state."""
        if not d:
            return cls()
        # lists of [ts_ms, value] come back from JSON as they went in: no per-item copy
        return cls(
            regs=d.get("regs", []),
            ivals={int(k): [float(p), float(v)] for k, (p, v) in d.get("ivals", {}).items()},
            # older states kept [quantity, measured_s]: pad to the four cells
            base={int(k): [*map(float, v), 0.0, 0.0, 0.0, 0.0][:4]
                  for k, v in d.get("base", {}).items()},
            horizon_ms=d.get("horizon_ms"),
            max_ts_ms=d.get("max_ts_ms"),
            pruned=d.get("pruned", []),
            suspects=d.get("suspects", []),
            breaks=d.get("breaks", []),
        )


def _ts(reading: list[float]) -> int:
    return int(reading[0])


def _around(pairs: list[list[float]], ts_ms: int) -> list[list[float]]:
    """The entries of the time-sorted ``pairs`` whose time is ``ts_ms``."""
    i = bisect.bisect_left(pairs, ts_ms, key=_ts)
    j = bisect.bisect_right(pairs, ts_ms, key=_ts)
    return pairs[i:j]


def interval_floor(ts_ms: int, interval_s: int) -> int:
    """Start [epoch ms] of the interval of length ``interval_s`` [s] that contains ``ts_ms``."""
    step = interval_s * 1000
    return ts_ms - ts_ms % step


def segment_quantity(
    spec: MeterSpec, t0_ms: int, v0: float, t1_ms: int, v1: float
) -> tuple[float | None, str]:
    """Quantity [canonical unit] consumed between two register readings, and its kind.

    Returns ``(quantity, "normal" | "rollover")`` for a usable segment, ``(None, "reset")`` for a
    reset or replacement and ``(None, "spike")`` when the implied rate exceeds
    ``spec.max_rate_per_h``. A zero-length segment is never passed here.
    """
    hours = (t1_ms - t0_ms) / MS_PER_HOUR
    limit = spec.max_rate_per_h * hours
    if v1 >= v0:
        delta = v1 - v0
        return (delta, "normal") if delta <= limit else (None, "spike")
    wrapped = spec.register_max - v0 + v1
    if v0 >= spec.register_max * (1.0 - ROLLOVER_BAND) and 0.0 <= wrapped <= limit:
        return wrapped, "rollover"
    return None, "reset"


def _overlaps(t0_ms: int, t1_ms: int, interval_s: int) -> list[tuple[int, int]]:
    """``[(interval_start_ms, overlap_ms)]`` of the span ``[t0, t1)`` with each interval."""
    step = interval_s * 1000
    out: list[tuple[int, int]] = []
    start = interval_floor(t0_ms, interval_s)
    while start < t1_ms:
        lo = max(start, t0_ms)
        hi = min(start + step, t1_ms)
        if hi > lo:
            out.append((start, hi - lo))
        start += step
    return out


def _spread(acc: dict[int, list[float]], t0_ms: int, t1_ms: int, qty: float | None, lo: int,
            hi: int, interval_s: int, estimated: bool = False) -> None:
    """Add ``qty`` over ``[t0, t1)`` to ``acc`` (``{start: [quantity, measured_s,
    estimated_quantity, estimated_s]}``) in proportion to time, for the interval starts in
    ``[lo, hi]``. ``qty=None`` (a reset) adds an empty cell: the interval is touched but
    not covered."""
    span = t1_ms - t0_ms
    for start, overlap in _overlaps(t0_ms, t1_ms, interval_s):
        if lo <= start <= hi:
            cell = acc.setdefault(start, [0.0, 0.0, 0.0, 0.0])
            if qty is None:
                continue
            part = qty * overlap / span
            cell[_Q] += part
            if estimated:
                cell[_EQ] += part
                cell[_ES] += overlap / 1000.0
            else:
                cell[_MS] += overlap / 1000.0


def _add(into: dict[int, list[float]], start: int, cell: list[float]) -> None:
    acc = into.setdefault(start, [0.0, 0.0, 0.0, 0.0])
    for i, v in enumerate(cell):
        acc[i] += v


def _contributions(
    spec: MeterSpec, regs: list[list[float]], lo: int, hi: int, interval_s: int,
    breaks: frozenset[int] = frozenset(),
) -> dict[int, list[float]]:
    """Quantity and covered seconds per interval from the register segments in ``regs``
    that overlap the interval starts ``[lo, hi]`` (segments summed in time order)."""
    acc: dict[int, list[float]] = {}
    step = interval_s * 1000
    first = max(bisect.bisect_right(regs, lo, key=_ts), 1)
    last = bisect.bisect_left(regs, hi + step, key=_ts)
    for i in range(first, min(last + 1, len(regs))):
        t0, v0 = int(regs[i - 1][0]), regs[i - 1][1]
        t1, v1 = int(regs[i][0]), regs[i][1]
        if t1 <= lo or t0 >= hi + step:
            continue
        qty, _kind = segment_quantity(spec, t0, v0, t1, v1)
        if t1 in breaks:  # a replaced meter: what happened in between is unknown
            qty = None
        gap = (t1 - t0) > spec.max_gap_s * 1000
        _spread(acc, t0, t1, qty, lo, hi, interval_s, estimated=gap)
    return acc


def _ival_contributions(
    ivals: dict[int, list[float]], lo: int, hi: int, interval_s: int
) -> dict[int, list[float]]:
    acc: dict[int, list[float]] = {}
    for end in sorted(ivals):
        period_s, value = ivals[end]
        _spread(acc, end - int(period_s * 1000), end, value, lo, hi, interval_s)
    return acc


@dataclass(frozen=True)
class ApplyResult:
    """What one reading did: the intervals whose current totals must be (re)written, and a
    rejection if the reading was refused."""

    intervals: list[IntervalEnergy]
    rejection: Rejection | None = None
    duplicate: bool = False
    event: str | None = None


def interval_totals(
    spec: MeterSpec, state: MeterState, starts: list[int], interval_s: int
) -> list[IntervalEnergy]:
    """Current totals of ``starts`` (interval starts, epoch ms), recomputed from ``state``."""
    if not starts:
        return []
    lo, hi = min(starts), max(starts)
    regs = _contributions(spec, state.regs, lo, hi, interval_s, frozenset(state.breaks))
    ivals = _ival_contributions(state.ivals, lo, hi, interval_s)
    out = []
    for start in sorted(set(starts)):
        total = [0.0, 0.0, 0.0, 0.0]
        for part in (state.base.get(start), regs.get(start), ivals.get(start)):
            if part:
                for i, v in enumerate(part):
                    total[i] += v
        measured_s = min(total[_MS], float(interval_s))
        estimated_s = min(total[_ES], float(interval_s) - measured_s)
        full = interval_s - 1e-6
        quality: Quality
        if measured_s >= full:
            quality = "measured"
        elif measured_s + estimated_s >= full:
            quality = "estimated"
        elif measured_s + estimated_s > 0:
            quality = "partial"
        else:
            quality = "missing"
        out.append(
            IntervalEnergy(
                meter_id=spec.meter_id,
                interval_start_ms=start,
                interval_s=interval_s,
                quantity=total[_Q],
                covered_s=measured_s,
                quality=quality,
                estimated_quantity=total[_EQ],
                estimated_s=estimated_s,
            )
        )
    return out


def apply_register(
    spec: MeterSpec,
    state: MeterState,
    ts_ms: int,
    value: float,
    *,
    interval_s: int,
    lateness_s: int,
) -> ApplyResult:
    """Add one register reading [canonical unit] at ``ts_ms`` to ``state`` (mutated in place).

    Returns the intervals whose totals changed (or might have: a duplicate re-emits the same
    totals, which makes a replay after a crash rewrite rather than lose its output).
    """
    regs = state.regs
    cut = (
        interval_floor(state.max_ts_ms - lateness_s * 1000, interval_s)
        if state.max_ts_ms is not None
        else None
    )
    anchored = state.horizon_ms is not None and regs and ts_ms <= regs[0][0]
    if anchored or (cut is not None and ts_ms < cut):
        if [ts_ms, value] in _around(state.pruned, ts_ms) or (regs and regs[0] == [ts_ms, value]):
            return ApplyResult([], None, duplicate=True)
        return ApplyResult(
            [],
            Rejection(
                spec.meter_id,
                ts_ms,
                "too_late",
                f"reading at {ts_ms} ms is older than the lateness bound of {lateness_s} s "
                f"behind the newest reading ({state.max_ts_ms} ms)",
            ),
        )
    pos = bisect.bisect_left(regs, ts_ms, key=_ts)
    duplicate = False
    event = None
    if pos < len(regs) and regs[pos][0] == ts_ms:
        if regs[pos][1] == value:
            duplicate = True
        else:
            event = "correction"
            regs[pos][1] = value
    else:
        # Spike check against the neighbours the reading would sit between.
        prev = regs[pos - 1] if pos > 0 else None
        if prev is not None:
            _qty, kind = segment_quantity(spec, int(prev[0]), prev[1], ts_ms, value)
            if kind == "spike" and pos == len(regs) and _confirms_replacement(
                    spec, state, ts_ms, value):
                # the last few "spikes" agree with each other: a new meter started higher
                first = int(state.suspects[0][0])
                state.breaks.append(first)
                regs.extend(state.suspects)
                state.suspects = []
                starts = _starts_between(int(prev[0]), max(int(prev[0]), ts_ms - 1), interval_s)
                _advance(spec, state, ts_ms, interval_s=interval_s, lateness_s=lateness_s)
                starts = [s for s in starts if state.horizon_ms is None or s >= state.horizon_ms]
                return ApplyResult(interval_totals(spec, state, starts, interval_s), None,
                                   False, "replacement")
            if kind == "spike":
                rate = (value - prev[1]) / ((ts_ms - prev[0]) / MS_PER_HOUR)
                return ApplyResult(
                    [],
                    Rejection(
                        spec.meter_id,
                        ts_ms,
                        "spike",
                        f"register {value} after {prev[1]} at {int(prev[0])} ms implies "
                        f"{rate:.3f} per hour, above the meter's maximum "
                        f"{spec.max_rate_per_h} per hour",
                    ),
                )
            if kind in ("rollover", "reset"):
                event = kind
        if pos == len(regs):
            state.suspects = []  # a good reading after a lone spike: it was a fault
        regs.insert(pos, [ts_ms, value])
    lo_t = int(regs[pos - 1][0]) if pos > 0 else ts_ms
    hi_t = int(regs[pos + 1][0]) if pos + 1 < len(regs) else ts_ms
    # intervals overlapping [lo_t, hi_t): a reading on a boundary touches nothing after it
    starts = _starts_between(lo_t, max(lo_t, hi_t - 1), interval_s)
    _advance(spec, state, ts_ms, interval_s=interval_s, lateness_s=lateness_s)
    starts = [s for s in starts if state.horizon_ms is None or s >= state.horizon_ms]
    if len(regs) == 1 and not state.ivals and not state.base:
        return ApplyResult([], None, duplicate, event or "first_reading")
    return ApplyResult(interval_totals(spec, state, starts, interval_s), None, duplicate, event)


def _confirms_replacement(spec: MeterSpec, state: MeterState, ts_ms: int, value: float) -> bool:
    """Record a spike at the tail; true when it is the REPLACEMENT_CONFIRMATIONS-th in a row
    and each follows the previous one at a possible rate (they are a new register)."""
    if state.suspects:
        t0, v0 = state.suspects[-1]
        _qty, kind = segment_quantity(spec, int(t0), v0, ts_ms, value) if ts_ms > t0 else (
            None, "order")
        if kind != "normal":
            state.suspects = []
    state.suspects.append([ts_ms, value])
    return len(state.suspects) >= REPLACEMENT_CONFIRMATIONS


def apply_interval_value(
    spec: MeterSpec,
    state: MeterState,
    end_ms: int,
    period_s: int,
    value: float,
    *,
    interval_s: int,
    lateness_s: int,
) -> ApplyResult:
    """Add an interval value [canonical unit] for ``(end_ms - period_s, end_ms]``."""
    start_ms = end_ms - period_s * 1000
    if state.horizon_ms is not None and start_ms < state.horizon_ms:
        return ApplyResult(
            [],
            Rejection(
                spec.meter_id,
                end_ms,
                "interval_too_late",
                f"interval value for {start_ms}..{end_ms} ms starts before the oldest open "
                f"interval ({state.horizon_ms} ms); the lateness bound is {lateness_s} s",
            ),
        )
    rate_limit = spec.max_rate_per_h * period_s / 3600.0
    if value > rate_limit:
        return ApplyResult(
            [],
            Rejection(
                spec.meter_id,
                end_ms,
                "spike",
                f"interval value {value} over {period_s} s exceeds the meter's maximum "
                f"{rate_limit:.3f} for that period",
            ),
        )
    old = state.ivals.get(end_ms)
    duplicate = old is not None and old == [float(period_s), value]
    state.ivals[end_ms] = [float(period_s), value]
    starts = _starts_between(start_ms, end_ms - 1, interval_s)
    _advance(spec, state, end_ms, interval_s=interval_s, lateness_s=lateness_s)
    starts = [s for s in starts if state.horizon_ms is None or s >= state.horizon_ms]
    return ApplyResult(interval_totals(spec, state, starts, interval_s), None, duplicate)


def _starts_between(t0_ms: int, t1_ms: int, interval_s: int) -> list[int]:
    step = interval_s * 1000
    first = interval_floor(t0_ms, interval_s)
    last = interval_floor(t1_ms, interval_s)
    return list(range(first, last + step, step))


def _advance(
    spec: MeterSpec, state: MeterState, ts_ms: int, *, interval_s: int, lateness_s: int
) -> None:
    """Move the watermark and drop what is older than the lateness bound.

    Register readings before ``cut = floor(watermark - lateness)`` are dropped except the
    newest of them, which stays as the anchor; what the dropped segments contributed to
    intervals that can still change (those from the anchor's interval on) is frozen into
    ``state.base``. Intervals before the anchor's interval become final (``horizon_ms``).
    """
    if state.max_ts_ms is None or ts_ms > state.max_ts_ms:
        state.max_ts_ms = ts_ms
    cut = interval_floor(state.max_ts_ms - lateness_s * 1000, interval_s)
    regs = state.regs
    # index of the newest reading strictly before cut: it becomes (or stays) the anchor
    k = bisect.bisect_left(regs, cut, key=_ts) - 1
    ival_drop = [end for end in state.ivals if end < cut]
    if k <= 0 and not ival_drop:
        return
    anchor_t = int(regs[max(k, 0)][0]) if regs and regs[max(k, 0)][0] < cut else None
    horizon = interval_floor(anchor_t, interval_s) if anchor_t is not None else cut
    # freeze what the dropped readings contributed to the intervals that stay open
    far = cut + interval_s * 1000
    frozen = _contributions(spec, regs[: k + 1] if k > 0 else [], horizon, far, interval_s,
                            frozenset(state.breaks))
    dropped_ivals = {end: state.ivals.pop(end) for end in ival_drop}
    for start, cell in _ival_contributions(dropped_ivals, horizon, far, interval_s).items():
        _add(frozen, start, cell)
    base = {s: v for s, v in state.base.items() if s >= horizon}
    for start, cell in frozen.items():
        _add(base, start, cell)
    state.base = base
    if k > 0:
        state.pruned.extend(regs[:k])
        del regs[:k]
        state.breaks = [b for b in state.breaks if b > regs[0][0]]
    forget = cut - lateness_s * 1000
    del state.pruned[: bisect.bisect_left(state.pruned, forget, key=_ts)]
    state.horizon_ms = horizon
