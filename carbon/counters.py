"""From meter readings to energy per fixed interval.

A meter's readings are either *cumulative registers* (a counter that only grows, rolling over
to zero at its register width) or *interval values* (the quantity consumed in the ``period_s``
seconds ending at the reading time). This module turns them into the quantity consumed in each
fixed interval ``[start, start + interval_s)`` aligned to the Unix epoch (UTC), in the
carrier's canonical unit.

Rules (DOMAIN.md section 2):

* The first reading of a meter yields nothing: there is nothing to subtract from.
* A *segment* is the span between two consecutive accepted register readings. Its quantity is
  the register difference, apportioned to the intervals it overlaps in proportion to time (a
  straight line between the two readings, i.e. constant rate inside the segment).
* A drop of the register is a *rollover* when the previous value was within the top
  :data:`ROLLOVER_BAND` of the register width and the implied quantity
  ``width - previous + current`` is physically possible. Any other drop is a *reset*: when
  the new value could have been reached from zero within the segment (``new <= max rate x
  segment duration``) it is the energy since the register restarted and is counted for the
  segment, flagged *estimated* (its timing inside the segment is not known); otherwise the
  segment's quantity is unknown and it is counted as uncovered time (never negative, never a
  spike).
* A rise implying a rate above the meter's physical maximum is a *spike*: the reading is
  quarantined (not used) and reported with its reason. When at least
  :data:`REPLACEMENT_CONFIRMATIONS` such readings in a row agree with each other (possible
  rates between them) and span at least :data:`REPLACEMENT_MIN_SPAN_MS`, they are a *meter
  replacement* by a register that started higher: they are accepted, and the span from the
  last good reading to the first of them counts as uncovered.
* A duplicate (same time, same value) changes nothing. A value at an already known time that
  was never seen there before is a correction and replaces the current one (it is checked
  for spikes like any reading); a value seen there before (a redelivery of a superseded
  reading) changes nothing.
* Readings may arrive out of order. A meter keeps its readings back to ``cut = floor(newest -
  lateness_s)`` (floored to the interval); a reading older than the cut is rejected as too
  late, unless it is remembered as already seen (then it is a duplicate).
* Register values must be finite and within ``[0, register_max]``; ``-0`` is read as ``0``.

**Replay-stable by construction.** The classification of the kept readings (accepted, spike,
pending replacement) is a function of the *set* of distinct readings, computed by one scan in
time order; every interval total is a fold, in one canonical order (by contribution end time,
register segments before interval values), of the contributions of the accepted readings,
starting from a frozen ``base`` that is itself the fold of the contributions already dropped
behind the cut. So any delivery of a set of readings, with any duplicates and redeliveries of
readings already seen (including those already dropped or quarantined), gives bit-for-bit the
same interval totals; and so does any order of arrival in which no reading falls behind the
cut.

**In-order fast path.** A register reading (or interval value) that comes after everything
kept and is not a spike extends the fold by one contribution: the cached totals are updated
in place, which is the same sequence of float additions as the full recompute. Everything
else (out of order, corrections, spikes, replacements) rescans and recomputes the kept
window. Setting :data:`FAST_PATH` to ``False`` forces the full path (tests, benchmarks).

:class:`MeterState` keeps its readings in typed arrays (16 bytes a register reading) and
serialises to a compact binary form (:meth:`MeterState.to_bytes`) or to JSON
(:meth:`MeterState.to_json`).
"""

from __future__ import annotations

import bisect
import json
import math
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any, Literal

#: Fraction of the register width below the top in which a drop counts as a rollover.
ROLLOVER_BAND = 0.1

#: Consecutive, mutually consistent "spikes" after which they are taken for a meter
#: replacement (a new register that started higher) instead of a fault.
REPLACEMENT_CONFIRMATIONS = 3

#: Minimum time [ms] between the first and the last of the confirming readings: a burst of
#: equal values within milliseconds (one corrupted message repeated) is not a new meter.
REPLACEMENT_MIN_SPAN_MS = 60_000

MS_PER_HOUR = 3_600_000

#: Use the in-order fast path (``False``: always the full recompute; same results bit for bit).
FAST_PATH = True

# Classification of a kept register reading.
_ACC = 0  #: accepted
_BRK = 1  #: accepted, first reading of a replacement: the segment before it is unknown
_SPK = 2  #: quarantined spike, final
_PEND = 3  #: quarantined spike that may still be confirmed as a replacement

#: Cells of the per-interval accumulators: quantity, measured seconds, estimated quantity,
#: estimated seconds, touched (1.0 when any segment or interval value overlaps the interval).
_Q, _MS, _EQ, _ES, _T = 0, 1, 2, 3, 4
_NC = 5


@dataclass(frozen=True)
class MeterSpec:
    """What the counter rules need to know about a meter, in canonical units.

    ``register_max`` [canonical unit]: register width; ``max_rate_per_h`` [canonical unit / h]:
    physical maximum rate; ``max_gap_s`` [s]: a segment longer than this is an estimate.
    """

    meter_id: str
    register_max: float
    max_rate_per_h: float
    max_gap_s: float = 1800.0


Quality = Literal["measured", "estimated", "partial", "missing"]


@dataclass(frozen=True)
class IntervalEnergy:
    """The quantity of one meter in one interval, as far as it is known now.

    ``quantity`` [canonical unit] is the total; ``estimated_quantity`` [canonical unit] is the
    part of it that was placed by estimate: a segment longer than the meter's ``max_gap_s``
    (a gap between readings) is spread linearly over the gap, its total being known from the
    registers but not its timing; a reset segment counts the new register value the same way.
    ``covered_s`` [s] is the measured time in the interval, ``estimated_s`` [s] the estimated
    time. ``quality``:

    * ``measured``: the whole interval is covered by measured segments;
    * ``estimated``: the whole interval is covered, partly or wholly by estimate;
    * ``partial``: part of the interval is not covered (an unknown segment, the newest
      interval still filling, the first reading falling inside it);
    * ``missing``: nothing covers the interval (it is touched only by an unknown segment).

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


RejectionCode = Literal[
    "too_late", "spike", "interval_too_late", "above_register_max", "negative_value",
    "not_finite",
]


@dataclass(frozen=True)
class Rejection:
    """A reading the counter rules refused, with a stable ``code`` and a readable reason."""

    meter_id: str
    ts_ms: int
    code: RejectionCode
    reason: str


def _f64() -> array[float]:
    return array("d")


def _i64() -> array[int]:
    return array("q")




def _digest(value: float, period_s: float | None = None) -> int:
    """32-bit digest of a register value, or of an interval value and its period."""
    if period_s is None:
        return zlib.crc32(struct.pack("<d", value))
    return zlib.crc32(struct.pack("<dd", period_s, value)) ^ 0x5A5A5A5A


_I32 = 2**31 - 1


def _remembered(st: MeterState, ts_ms: int, digest: int) -> bool:
    """Whether a dropped reading with this time and digest is remembered."""
    key = (ts_ms - st.pbase) * 2**32 + digest
    p = bisect.bisect_left(st.pts, key)
    return p < len(st.pts) and st.pts[p] == key


def _remember(st: MeterState, ts_ms: int, digest: int) -> None:
    """Remember a dropped reading: its time [ms after ``pbase``] and the digest of its value
    packed in one 64-bit key (time in the high 32 bits, so the keys sort by time)."""
    if not st.pts:
        st.pbase = ts_ms
    off = ts_ms - st.pbase
    if -_I32 <= off <= _I32:  # else (a lateness bound over 24 days) it is not remembered
        key = off * 2**32 + digest
        p = bisect.bisect_left(st.pts, key)
        if p == len(st.pts) or st.pts[p] != key:
            st.pts.insert(p, key)


def _forget(st: MeterState, before_ms: int) -> None:
    """Forget dropped readings older than ``before_ms`` and keep the offsets small."""
    f = bisect.bisect_left(st.pts, max(before_ms - st.pbase, -_I32) * 2**32)
    if f:
        del st.pts[:f]
    if st.pts and st.pts[0] >> 32 > _I32 // 2:
        shift = st.pts[0] >> 32
        st.pts = array("q", [x - shift * 2**32 for x in st.pts])
        st.pbase += shift


@dataclass(slots=True)
class MeterState:
    """Per-meter state of the counters.

    Register readings kept (times ``>=`` the cut, plus the *anchor*, the newest accepted
    reading before the cut, and pending replacement candidates before it): ``ts`` [epoch ms],
    ``val`` [canonical unit], ``flag`` (classification), sorted by time, one value per time.
    ``alt``: values seen before at a kept time and superseded by a correction.
    Interval values kept: ``iend`` [epoch ms] and ``iv`` (period [s], value [canonical unit]
    of each, interleaved), sorted
    by end; ``ialt``: superseded ``[period_s, value]`` per end.
    ``base``: the frozen fold of what dropped readings contributed to intervals that can
    still change, ``_NC`` cells per interval from ``base_lo`` [epoch ms].
    ``tot``: current totals (``_NC`` cells per interval from ``tot_lo``), kept up to date.
    ``horizon_ms``: intervals starting before it are final. ``max_ts_ms``: the watermark.
    ``pts``: time [ms after ``pbase``] and a 32-bit digest of the value of the readings
    (registers and interval values) dropped during the last ``lateness_s``, so that a replay
    of them is recognised as a duplicate (a digest collision could only report a late
    correction as a duplicate instead of too late; totals are the same either way).
    """

    ts: array[int] = field(default_factory=_i64)
    val: array[float] = field(default_factory=_f64)
    flag: bytearray = field(default_factory=bytearray)
    alt: dict[int, list[float]] | None = None
    iend: array[int] = field(default_factory=_i64)
    iv: array[float] = field(default_factory=_f64)
    ialt: dict[int, list[list[float]]] | None = None
    base_lo: int = 0
    base: array[float] = field(default_factory=_f64)
    tot_lo: int = 0
    tot: array[float] = field(default_factory=_f64)
    horizon_ms: int | None = None
    max_ts_ms: int | None = None
    pbase: int = 0
    pts: array[int] = field(default_factory=_i64)
    legacy_base: dict[int, list[float]] | None = None

    # ---- serialisation -------------------------------------------------------------------

    _ARRAYS = ("ts", "val", "iend", "iv", "base", "tot", "pts")
    _MAGIC = b"NZM3"

    def to_bytes(self) -> bytes:
        """Compact binary form: a header, the arrays' raw bytes, the (rare) correction
        histories as JSON. Inverse: :meth:`from_bytes`."""
        none_mask = (self.horizon_ms is None) | ((self.max_ts_ms is None) << 1)
        parts = [
            self._MAGIC,
            struct.pack("<BqqqqqI", none_mask, self.horizon_ms or 0, self.max_ts_ms or 0,
                        self.base_lo, self.tot_lo, self.pbase, len(self.flag)),
            bytes(self.flag),
        ]
        for name in self._ARRAYS:
            arr: array[Any] = getattr(self, name)
            parts.append(struct.pack("<I", len(arr)))
            parts.append(arr.tobytes())
        extra = (json.dumps([[[k, v] for k, v in (self.alt or {}).items()],
                             [[k, v] for k, v in (self.ialt or {}).items()]],
                            separators=(",", ":")).encode()
                 if self.alt or self.ialt else b"")
        parts.append(extra)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes | None) -> MeterState:
        """Inverse of :meth:`to_bytes`; empty or ``None`` gives a fresh state."""
        if not data:
            return cls()
        if data[:4] != cls._MAGIC:
            raise ValueError("not a serialised MeterState")
        head = struct.Struct("<BqqqqqI")
        none_mask, horizon, max_ts, base_lo, tot_lo, pbase, nflag = head.unpack_from(data, 4)
        pos = 4 + head.size
        st = cls(base_lo=base_lo, tot_lo=tot_lo, pbase=pbase,
                 horizon_ms=None if none_mask & 1 else horizon,
                 max_ts_ms=None if none_mask & 2 else max_ts)
        st.flag = bytearray(data[pos:pos + nflag])
        pos += nflag
        for name in cls._ARRAYS:
            (n,) = struct.unpack_from("<I", data, pos)
            pos += 4
            arr: array[Any] = getattr(st, name)
            arr.frombytes(data[pos:pos + n * arr.itemsize])
            pos += n * arr.itemsize
        if pos < len(data):
            alt, ialt = json.loads(data[pos:])
            st.alt = {int(k): v for k, v in alt} or None
            st.ialt = {int(k): v for k, v in ialt} or None
        return st

    def to_json(self) -> dict[str, Any]:
        """JSON-ready representation (the same content as :meth:`to_bytes`)."""
        d: dict[str, Any] = {name: getattr(self, name).tolist() for name in self._ARRAYS}
        d.update(flag=list(self.flag), alt=[[k, v] for k, v in (self.alt or {}).items()],
                 ialt=[[k, v] for k, v in (self.ialt or {}).items()], base_lo=self.base_lo,
                 tot_lo=self.tot_lo, pbase=self.pbase, horizon_ms=self.horizon_ms,
                 max_ts_ms=self.max_ts_ms, v=2)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> MeterState:
        """Inverse of :meth:`to_json`; ``None`` gives a fresh state. A state written by the
        previous version (``regs`` lists) is converted: its kept readings are rescanned."""
        if not d:
            return cls()
        if d.get("v") != 2:
            return _from_legacy_json(d)
        st = cls(base_lo=int(d["base_lo"]), tot_lo=int(d["tot_lo"]), pbase=int(d["pbase"]),
                 horizon_ms=d.get("horizon_ms"), max_ts_ms=d.get("max_ts_ms"),
                 flag=bytearray(d["flag"]),
                 alt={int(k): [float(x) for x in v] for k, v in d.get("alt", [])} or None,
                 ialt={int(k): [[float(p), float(x)] for p, x in v]
                       for k, v in d.get("ialt", [])} or None)
        for name in cls._ARRAYS:
            arr: array[Any] = getattr(st, name)
            arr.extend(d.get(name, []))
        return st


def _from_legacy_json(d: dict[str, Any]) -> MeterState:
    st = MeterState(horizon_ms=d.get("horizon_ms"), max_ts_ms=d.get("max_ts_ms"))
    breaks = set(int(b) for b in d.get("breaks", []))
    for t, v in d.get("regs", []):
        st.ts.append(int(t))
        st.val.append(float(v))
        st.flag.append(_BRK if int(t) in breaks else _ACC)
    for end, (p, v) in sorted((int(k), pv) for k, pv in d.get("ivals", {}).items()):
        st.iend.append(end)
        st.iv.extend((float(p), float(v)))
    base = {int(k): [*map(float, v), 0.0, 0.0, 0.0, 0.0][:4]
            for k, v in d.get("base", {}).items()}
    st.legacy_base = base or None  # laid out at the first use, when interval_s is known
    for t, v in d.get("pruned", []):
        _remember(st, int(t), _digest(float(v)))
    st.tot = array("d")  # recomputed at the first use (interval length not known here)
    st.tot_lo = -1
    return st


def interval_floor(ts_ms: int, interval_s: int) -> int:
    """Start [epoch ms] of the interval of length ``interval_s`` [s] that contains ``ts_ms``."""
    step = interval_s * 1000
    return ts_ms - ts_ms % step


def segment_quantity(
    spec: MeterSpec, t0_ms: int, v0: float, t1_ms: int, v1: float
) -> tuple[float | None, str]:
    """Quantity [canonical unit] consumed between two register readings, and its kind.

    Returns ``(quantity, "normal" | "rollover")`` for a usable segment; ``(v1, "reset")`` for
    a reset whose new value ``v1`` could have been reached from zero at the maximum rate
    within the segment (``v1 <= max_rate_per_h x hours``): the energy since the register
    restarted, an estimate; ``(None, "reset")`` for any other drop (a replacement or a reset
    whose energy is not known); ``(None, "spike")`` when the implied rate exceeds
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
    return (v1, "reset") if v1 <= limit else (None, "reset")


@dataclass(frozen=True)
class ApplyResult:
    """What one reading did: the intervals whose current totals must be (re)written, and a
    rejection if the reading was refused."""

    intervals: list[IntervalEnergy]
    rejection: Rejection | None = None
    duplicate: bool = False
    event: str | None = None


# ---- classification ---------------------------------------------------------------------


def _scan(spec: MeterSpec, ts: array[int], val: array[float], n: int) -> bytearray:
    """Classify the first ``n`` kept register readings by one scan in time order.

    The first kept reading is accepted (the anchor, or the first reading ever). A reading is
    accepted when the segment from the last accepted reading is not a spike; otherwise it is
    a candidate: candidates that follow each other at possible rates form a chain, which is
    accepted as a replacement once it holds REPLACEMENT_CONFIRMATIONS readings spanning
    REPLACEMENT_MIN_SPAN_MS; an accepted reading ends the chain (its readings were faults).
    The flag of a reading depends only on the readings up to it, except that of a pending
    candidate (``_PEND``), which a later reading may confirm.
    """
    flag = bytearray(n)
    if n == 0:
        return flag
    last = 0
    chain: list[int] = []
    for i in range(1, n):
        _q, kind = segment_quantity(spec, ts[last], val[last], ts[i], val[i])
        if kind != "spike":
            for c in chain:
                flag[c] = _SPK
            chain = []
            last = i
            continue
        if chain:
            _q, ckind = segment_quantity(spec, ts[chain[-1]], val[chain[-1]], ts[i], val[i])
            if ckind != "normal":
                for c in chain:
                    flag[c] = _SPK
                chain = []
        chain.append(i)
        flag[i] = _PEND
        if (len(chain) >= REPLACEMENT_CONFIRMATIONS
                and ts[chain[-1]] - ts[chain[0]] >= REPLACEMENT_MIN_SPAN_MS):
            flag[chain[0]] = _BRK
            for c in chain[1:]:
                flag[c] = _ACC
            last = chain[-1]
            chain = []
    return flag


def _classify(spec: MeterSpec, st: MeterState) -> None:
    """Set the flags of all kept register readings (the anchor keeps a replacement mark)."""
    first = st.flag[0] if st.flag else _ACC
    st.flag = _scan(spec, st.ts, st.val, len(st.ts))
    if st.flag and first == _BRK:
        st.flag[0] = _BRK


# ---- contributions and totals -------------------------------------------------------------

#: One contribution: (end_ms, kind order, t0_ms, t1_ms, quantity or None, estimated)
_Contribution = tuple[int, int, int, int, float | None, bool]


def _segment_contribution(spec: MeterSpec, t0: int, v0: float, t1: int, v1: float,
                          brk: bool) -> _Contribution:
    if brk:  # a replaced meter: what happened in between is unknown
        return (t1, 0, t0, t1, None, False)
    qty, kind = segment_quantity(spec, t0, v0, t1, v1)
    estimated = kind == "reset" or (t1 - t0) > spec.max_gap_s * 1000
    return (t1, 0, t0, t1, qty, estimated)


def _contributions(spec: MeterSpec, st: MeterState, upto_ts: int | None = None,
                   ival_before: int | None = None) -> list[_Contribution]:
    """The contributions of the accepted kept readings in canonical order: register segments
    ending at or before ``upto_ts`` and interval values ending before ``ival_before`` (all
    when ``None``)."""
    out: list[_Contribution] = []
    ts, val, flag = st.ts, st.val, st.flag
    last = -1
    for i in range(len(ts)):
        f = flag[i]
        if f > _BRK:
            continue
        if upto_ts is not None and ts[i] > upto_ts:
            break
        if last >= 0:
            out.append(_segment_contribution(spec, ts[last], val[last], ts[i], val[i],
                                             f == _BRK))
        last = i
    for k in range(len(st.iend)):
        end = st.iend[k]
        if ival_before is not None and end >= ival_before:
            break
        out.append((end, 1, end - int(st.iv[2 * k] * 1000), end, st.iv[2 * k + 1], False))
    out.sort(key=lambda c: (c[0], c[1]))
    return out


def _fold(cells: array[float], lo: int, c: _Contribution, interval_s: int) -> None:
    """Add one contribution to the dense accumulator ``cells`` (``_NC`` cells per interval
    from ``lo`` [epoch ms], long enough), in proportion to time, for intervals ``>= lo``."""
    _end, _k, t0, t1, qty, estimated = c
    step = interval_s * 1000
    span = t1 - t0
    start = max(interval_floor(t0, interval_s), lo)
    while start < t1:
        a = max(start, t0)
        b = min(start + step, t1)
        if b > a:
            j = (start - lo) // step * _NC
            cells[j + _T] = 1.0
            if qty is not None:
                overlap = b - a
                part = qty * overlap / span
                cells[j + _Q] += part
                if estimated:
                    cells[j + _EQ] += part
                    cells[j + _ES] += overlap / 1000.0
                else:
                    cells[j + _MS] += overlap / 1000.0
        start += step


def _grow(cells: array[float], lo: int, upto_start: int, interval_s: int) -> None:
    """Extend ``cells`` with zero cells so that it holds the interval starting ``upto_start``."""
    need = ((upto_start - lo) // (interval_s * 1000) + 1) * _NC
    if len(cells) < need:
        cells.frombytes(bytes(8 * (need - len(cells))))


def _recompute(spec: MeterSpec, st: MeterState, interval_s: int) -> None:
    """Full path: rescan the kept readings and recompute every open interval total."""
    _classify(spec, st)
    contribs = _contributions(spec, st)
    step = interval_s * 1000
    if st.horizon_ms is not None:
        lo = st.horizon_ms
    else:
        starts = [interval_floor(c[2], interval_s) for c in contribs]
        lo = min(starts) if starts else (interval_floor(st.ts[0], interval_s) if st.ts else 0)
        if st.base:
            lo = min(lo, st.base_lo)
    cells: array[float] = array("d")
    if st.base and st.base_lo + len(st.base) // _NC * step > lo:
        skip = max(0, (lo - st.base_lo) // step) * _NC
        if st.base_lo >= lo:
            cells.extend(array("d", [0.0]) * ((st.base_lo - lo) // step * _NC))
            cells.extend(st.base)
        else:
            cells.extend(st.base[skip:])
    for c in contribs:
        if c[3] > lo:
            _grow(cells, lo, interval_floor(c[3] - 1, interval_s), interval_s)
            _fold(cells, lo, c, interval_s)
    st.tot_lo = lo
    st.tot = cells


def _cells_at(st: MeterState, start: int, interval_s: int) -> list[float] | None:
    step = interval_s * 1000
    if start < st.tot_lo or (start - st.tot_lo) % step:
        return None
    j = (start - st.tot_lo) // step * _NC
    if j + _NC > len(st.tot):
        return None
    return list(st.tot[j:j + _NC])


def _energy(spec: MeterSpec, start: int, interval_s: int, total: list[float] | None
            ) -> IntervalEnergy:
    total = total or [0.0] * _NC
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
    return IntervalEnergy(
        meter_id=spec.meter_id, interval_start_ms=start, interval_s=interval_s,
        quantity=total[_Q], covered_s=measured_s, quality=quality,
        estimated_quantity=total[_EQ], estimated_s=estimated_s,
    )


def _ensure_totals(spec: MeterSpec, st: MeterState, interval_s: int) -> None:
    """Totals of a state converted from the previous JSON layout are computed at first use."""
    if st.tot_lo == -1:
        if st.legacy_base:
            step = interval_s * 1000
            lo, hi = min(st.legacy_base), max(st.legacy_base)
            st.base_lo = st.horizon_ms if st.horizon_ms is not None else lo
            st.base = array("d")
            for start in range(st.base_lo, hi + step, step):
                cell = st.legacy_base.get(start)
                st.base.extend([*cell, 1.0] if cell else [0.0] * _NC)
            st.legacy_base = None
        _recompute(spec, st, interval_s)


def interval_totals(
    spec: MeterSpec, state: MeterState, starts: list[int], interval_s: int
) -> list[IntervalEnergy]:
    """Current totals of ``starts`` (interval starts, epoch ms), from ``state``."""
    _ensure_totals(spec, state, interval_s)
    return [_energy(spec, s, interval_s, _cells_at(state, s, interval_s))
            for s in sorted(set(starts))]


def _snapshot(st: MeterState) -> tuple[int, array[float]]:
    return st.tot_lo, array("d", st.tot)


def _changed(spec: MeterSpec, st: MeterState, before: tuple[int, array[float]],
             touched: list[int], interval_s: int) -> list[IntervalEnergy]:
    """Intervals to (re)write: the open ones whose cells differ from ``before``, plus the
    ``touched`` ones that hold something (a replay rewrites rather than loses its output)."""
    step = interval_s * 1000
    old_lo, old = before
    horizon = st.horizon_ms
    keys: set[int] = set()
    n_new = len(st.tot) // _NC
    n_old = len(old) // _NC
    for k in range(n_new):
        s = st.tot_lo + k * step
        if horizon is not None and s < horizon:
            continue
        j = (s - old_lo) // step
        if s < old_lo or j >= n_old or (s - old_lo) % step:
            if st.tot[k * _NC + _T]:
                keys.add(s)
        elif st.tot[k * _NC:k * _NC + _NC] != old[j * _NC:j * _NC + _NC]:
            keys.add(s)
    for k in range(n_old):  # intervals that were written before and now hold nothing
        s = old_lo + k * step
        if (horizon is None or s >= horizon) and old[k * _NC + _T] and (
                s < st.tot_lo or s >= st.tot_lo + n_new * step):
            keys.add(s)
    for s in touched:
        if horizon is not None and s < horizon:
            continue
        cells = _cells_at(st, s, interval_s)
        if cells is not None and cells[_T]:
            keys.add(s)
    return [_energy(spec, s, interval_s, _cells_at(st, s, interval_s)) for s in sorted(keys)]


def _starts_between(t0_ms: int, t1_ms: int, interval_s: int) -> list[int]:
    step = interval_s * 1000
    first = interval_floor(t0_ms, interval_s)
    last = interval_floor(t1_ms, interval_s)
    return list(range(first, last + step, step))


def _cut(st: MeterState, lateness_s: int, interval_s: int) -> int | None:
    if st.max_ts_ms is None:
        return None
    return interval_floor(st.max_ts_ms - lateness_s * 1000, interval_s)


def _bad_value(spec: MeterSpec, ts_ms: int, value: float, register: bool) -> Rejection | None:
    if not math.isfinite(value):
        return Rejection(spec.meter_id, ts_ms, "not_finite",
                         f"value {value!r} is not a finite number")
    if value < 0:
        return Rejection(spec.meter_id, ts_ms, "negative_value",
                         f"value {value} is negative; registers and interval values are >= 0")
    if register and value > spec.register_max:
        return Rejection(spec.meter_id, ts_ms, "above_register_max",
                         f"register {value} is above the meter's register width "
                         f"{spec.register_max}")
    return None


def _last_accepted(st: MeterState) -> int:
    for i in range(len(st.flag) - 1, -1, -1):
        if st.flag[i] <= _BRK:
            return i
    return -1


# ---- applying readings ---------------------------------------------------------------------


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
    value = float(value) + 0.0  # -0.0 -> 0.0
    bad = _bad_value(spec, ts_ms, value, register=True)
    if bad is not None:
        return ApplyResult([], bad)
    st = state
    _ensure_totals(spec, st, interval_s)
    ts = st.ts
    cut = _cut(st, lateness_s, interval_s)
    pos = bisect.bisect_left(ts, ts_ms)
    known = pos < len(ts) and ts[pos] == ts_ms
    if cut is not None and ts_ms < cut:
        seen = (known and (st.val[pos] == value or value in (st.alt or {}).get(ts_ms, ())))
        if not seen:
            seen = _remembered(st, ts_ms, _digest(value))
        if seen:
            return ApplyResult([], None, duplicate=True)
        return ApplyResult([], Rejection(
            spec.meter_id, ts_ms, "too_late",
            f"reading at {ts_ms} ms is older than the lateness bound of {lateness_s} s "
            f"behind the newest reading ({st.max_ts_ms} ms)"))
    first = len(ts) == 0 and not st.iend and not st.base
    if known:
        if st.val[pos] == value or value in (st.alt or {}).get(ts_ms, ()):
            touched = _touched_register(st, pos, interval_s)
            res = _changed(spec, st, (st.tot_lo, st.tot), touched, interval_s)
            return ApplyResult(res, None, duplicate=True)
        brk_before = st.flag.count(_BRK)
        if st.alt is None:
            st.alt = {}
        st.alt.setdefault(ts_ms, []).append(st.val[pos])
        st.val[pos] = value
        before = _snapshot(st)
        _recompute(spec, st, interval_s)
        return _after(spec, st, pos, before, interval_s, lateness_s, "correction", brk_before)
    n = len(ts)
    if FAST_PATH and n and pos == n and st.flag[n - 1] <= _BRK and (
            not st.iend or st.iend[-1] < ts_ms):
        _qty, kind = segment_quantity(spec, ts[n - 1], st.val[n - 1], ts_ms, value)
        if not st.tot and st.horizon_ms is None and not st.base:
            st.tot_lo = interval_floor(ts[n - 1], interval_s)
        if kind != "spike" and interval_floor(ts[n - 1], interval_s) >= st.tot_lo:
            c = _segment_contribution(spec, ts[n - 1], st.val[n - 1], ts_ms, value, False)
            ts.append(ts_ms)
            st.val.append(value)
            st.flag.append(_ACC)
            lo = st.tot_lo
            touched = _starts_between(c[2], max(c[2], ts_ms - 1), interval_s)
            _grow(st.tot, lo, interval_floor(ts_ms - 1, interval_s), interval_s)
            _fold(st.tot, lo, c, interval_s)
            _advance(spec, st, ts_ms, interval_s=interval_s, lateness_s=lateness_s)
            event = kind if kind in ("rollover", "reset") else None
            return ApplyResult(
                [_energy(spec, s, interval_s, _cells_at(st, s, interval_s))
                 for s in touched if st.horizon_ms is None or s >= st.horizon_ms],
                None, False, event)
    brk_before = st.flag.count(_BRK)
    ts.insert(pos, ts_ms)
    st.val.insert(pos, value)
    st.flag.insert(pos, _PEND)
    before = _snapshot(st)
    _recompute(spec, st, interval_s)
    if first:
        _advance(spec, st, ts_ms, interval_s=interval_s, lateness_s=lateness_s)
        return ApplyResult([], None, False, "first_reading")
    return _after(spec, st, pos, before, interval_s, lateness_s, None, brk_before)


def _touched_register(st: MeterState, pos: int, interval_s: int) -> list[int]:
    ts = st.ts
    lo_t = ts[pos - 1] if pos > 0 else ts[pos]
    hi_t = ts[pos + 1] if pos + 1 < len(ts) else ts[pos]
    return _starts_between(lo_t, max(lo_t, hi_t - 1), interval_s)


def _after(spec: MeterSpec, st: MeterState, pos: int, before: tuple[int, array[float]],
           interval_s: int, lateness_s: int, event: str | None,
           brk_before: int) -> ApplyResult:
    """Outcome of a reading applied by the full path at index ``pos``."""
    ts_ms, value = st.ts[pos], st.val[pos]
    touched = _touched_register(st, pos, interval_s)
    f = st.flag[pos]
    rejection = None
    if f in (_SPK, _PEND):
        prev = max((i for i in range(pos) if st.flag[i] <= _BRK), default=None)
        if prev is not None:
            rate = (value - st.val[prev]) / ((ts_ms - st.ts[prev]) / MS_PER_HOUR)
            rejection = Rejection(
                spec.meter_id, ts_ms, "spike",
                f"register {value} after {st.val[prev]} at {st.ts[prev]} ms implies "
                f"{rate:.3f} per hour, above the meter's maximum {spec.max_rate_per_h} per hour")
    elif st.flag.count(_BRK) > brk_before:
        event = "replacement"
    elif event is None:
        prev = max((i for i in range(pos) if st.flag[i] <= _BRK), default=None)
        if prev is not None:
            _q, kind = segment_quantity(spec, st.ts[prev], st.val[prev], ts_ms, value)
            if kind in ("rollover", "reset"):
                event = kind
    _advance(spec, st, ts_ms, interval_s=interval_s, lateness_s=lateness_s)
    out = _changed(spec, st, before, touched if rejection is None else [], interval_s)
    return ApplyResult(out, rejection, False, event)


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
    value = float(value) + 0.0
    bad = _bad_value(spec, end_ms, value, register=False)
    if bad is not None:
        return ApplyResult([], bad)
    st = state
    _ensure_totals(spec, st, interval_s)
    start_ms = end_ms - period_s * 1000
    entry = [float(period_s), value]
    k = bisect.bisect_left(st.iend, end_ms)
    known = k < len(st.iend) and st.iend[k] == end_ms
    seen = known and ([st.iv[2 * k], st.iv[2 * k + 1]] == entry
                      or entry in (st.ialt or {}).get(end_ms, []))
    cut = _cut(st, lateness_s, interval_s)
    if not seen and cut is not None and end_ms < cut:
        seen = _remembered(st, end_ms, _digest(value, float(period_s)))
    if seen and cut is not None and end_ms < cut:
        return ApplyResult([], None, duplicate=True)
    if (cut is not None and end_ms < cut) or (
            st.horizon_ms is not None and start_ms < st.horizon_ms):
        return ApplyResult([], Rejection(
            spec.meter_id, end_ms, "interval_too_late",
            f"interval value for {start_ms}..{end_ms} ms ends before the lateness bound of "
            f"{lateness_s} s behind the newest reading or starts before the oldest open "
            f"interval ({st.horizon_ms} ms)"))
    rate_limit = spec.max_rate_per_h * period_s / 3600.0
    if value > rate_limit:
        return ApplyResult([], Rejection(
            spec.meter_id, end_ms, "spike",
            f"interval value {value} over {period_s} s exceeds the meter's maximum "
            f"{rate_limit:.3f} for that period"))
    touched = _starts_between(start_ms, end_ms - 1, interval_s)
    if seen:
        res = _changed(spec, st, (st.tot_lo, st.tot), touched, interval_s)
        return ApplyResult(res, None, duplicate=True)
    last_acc = _last_accepted(st)
    if (FAST_PATH and not known and k == len(st.iend)
            and (last_acc < 0 or st.ts[last_acc] <= end_ms) and (st.tot or not st.base)):
        st.iend.append(end_ms)
        st.iv.extend((float(period_s), value))
        c: _Contribution = (end_ms, 1, start_ms, end_ms, value, False)
        if not st.tot and st.horizon_ms is None:
            st.tot_lo = interval_floor(start_ms, interval_s)
        lo = st.tot_lo
        if start_ms < lo and st.horizon_ms is None:
            before = _snapshot(st)
            _recompute(spec, st, interval_s)
        else:
            before = None
            _grow(st.tot, lo, interval_floor(end_ms - 1, interval_s), interval_s)
            _fold(st.tot, lo, c, interval_s)
        _advance(spec, st, end_ms, interval_s=interval_s, lateness_s=lateness_s)
        if before is not None:
            return ApplyResult(_changed(spec, st, before, touched, interval_s))
        return ApplyResult([_energy(spec, s, interval_s, _cells_at(st, s, interval_s))
                            for s in touched if st.horizon_ms is None or s >= st.horizon_ms])
    if known:
        if st.ialt is None:
            st.ialt = {}
        st.ialt.setdefault(end_ms, []).append([st.iv[2 * k], st.iv[2 * k + 1]])
        st.iv[2 * k] = float(period_s)
        st.iv[2 * k + 1] = value
    else:
        st.iend.insert(k, end_ms)
        st.iv[2 * k:2 * k] = array("d", (float(period_s), value))
    before = _snapshot(st)
    _recompute(spec, st, interval_s)
    _advance(spec, st, end_ms, interval_s=interval_s, lateness_s=lateness_s)
    return ApplyResult(_changed(spec, st, before, touched, interval_s), None, False,
                       "correction" if known else None)


def _advance(
    spec: MeterSpec, st: MeterState, ts_ms: int, *, interval_s: int, lateness_s: int
) -> None:
    """Move the watermark and drop what is older than the lateness bound.

    With ``cut = floor(watermark - lateness)``: the newest accepted register reading before
    the cut stays as the anchor, with the pending replacement candidates after it; the
    readings before them and the final spikes before the cut are dropped, and so are the
    interval values ending before the cut. What the dropped contributions gave to intervals
    that can still change (from the anchor's interval on) is folded into ``base`` in the
    canonical order. Intervals before the anchor's interval become final (``horizon_ms``).
    """
    if st.max_ts_ms is None or ts_ms > st.max_ts_ms:
        st.max_ts_ms = ts_ms
    cut = interval_floor(st.max_ts_ms - lateness_s * 1000, interval_s)
    ts, flag = st.ts, st.flag
    j = bisect.bisect_left(ts, cut)  # readings [0, j) are before the cut
    # classify the readings before the cut by themselves: what is dropped or frozen must not
    # depend on readings that can still arrive or change
    pre = _scan(spec, ts, st.val, j)
    if j and flag[0] == _BRK:
        pre[0] = _BRK
    a = -1
    for i in range(j - 1, -1, -1):
        if pre[i] <= _BRK:
            a = i
            break
    n_iv = bisect.bisect_left(st.iend, cut)
    drop_spk = any(pre[i] == _SPK for i in range(max(a, 0), j))
    if a <= 0 and n_iv == 0 and not drop_spk:
        return
    anchor_t = ts[a] if a >= 0 else None
    horizon = interval_floor(anchor_t, interval_s) if anchor_t is not None else cut
    step = interval_s * 1000
    if st.horizon_ms is not None:
        horizon = max(horizon, st.horizon_ms)
    # the frozen prefix, folded onto the old base in canonical order
    frozen = _contributions(spec, st, upto_ts=anchor_t if a > 0 else -1 << 62,
                            ival_before=cut) if (a > 0 or n_iv) else []
    base: array[float] = array("d")
    if st.base:
        skip = (horizon - st.base_lo) // step * _NC
        if skip >= 0:
            base.extend(st.base[skip:])
        else:
            base.extend(array("d", [0.0]) * (-skip))
            base.extend(st.base)
    for c in frozen:
        if c[3] > horizon:
            _grow(base, horizon, interval_floor(c[3] - 1, interval_s), interval_s)
            _fold(base, horizon, c, interval_s)
    st.base = base
    st.base_lo = horizon
    # drop readings: before the anchor, and final spikes before the cut
    keep = [i for i in range(len(ts)) if i >= j or i == a or (i > a and pre[i] == _PEND)]
    if len(keep) < len(ts):
        kept = set(keep)
        dropped = [(ts[i], v) for i in range(len(ts)) if i not in kept
                   for v in (st.val[i], *(st.alt or {}).get(ts[i], ()))]
        for t, v in dropped:
            _remember(st, t, _digest(v))
            if st.alt:
                st.alt.pop(t, None)
        st.ts = array("q", [ts[i] for i in keep])
        st.val = array("d", [st.val[i] for i in keep])
        st.flag = bytearray(flag[i] for i in keep)
    if n_iv:
        for k in range(n_iv):
            end = st.iend[k]
            _remember(st, end, _digest(st.iv[2 * k + 1], st.iv[2 * k]))
            for per, v in (st.ialt or {}).pop(end, ()):
                _remember(st, end, _digest(v, per))
        del st.iend[:n_iv]
        del st.iv[:2 * n_iv]
    forget = cut - lateness_s * 1000
    _forget(st, forget)
    # totals before the horizon are final: drop them
    if st.tot and horizon > st.tot_lo:
        skip = (horizon - st.tot_lo) // step * _NC
        del st.tot[:skip]
        st.tot_lo = horizon
    elif not st.tot:
        st.tot_lo = horizon
    st.horizon_ms = horizon
