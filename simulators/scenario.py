"""A simulated pilot zone, round by round: profiles -> faults -> device formats -> messages.

:class:`Scenario` is pure: it reads no clock and does no I/O. Each :meth:`Scenario.step`
computes one *round* (every ``interval_s`` seconds of simulated time from ``start``): every
meter's register from :class:`~simulators.profiles.SiteSimulation`, the faults of
:class:`~simulators.faults.FaultConfig` for that round, and the MQTT messages every gateway
sends in it (:mod:`simulators.formats`), each tagged with the faults that touched it.
:meth:`Scenario.finish` sends what is still held back (late messages, a gateway backlog) and
the gateways' goodbyes (Sparkplug B NDEATH). :attr:`Scenario.report` counts everything that
was produced, per gateway, per format and per fault, so tests and benchmarks can compare it
with what landed.

Readings whose format carries no time (Shelly Gen1) are stamped by ingest on receipt, so
delay faults (``late``, ``out_of_order``, ``burst``) and ``clock_skew`` do not apply to them;
``burst`` applies only to gateways that buffer while their uplink is down (our JSON, EMQ
Neuron, Sparkplug B store and forward). Every other fault applies to every format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from carbon.registry import Meter, Registry
from simulators.faults import FAULTS, FaultConfig
from simulators.formats import GatewayEncoder, Message, MeterReading, corrupt, encoder_for
from simulators.profiles import SiteSimulation, register_resolution, seeded_uniform

__all__ = [
    "BUFFERING_FORMATS",
    "TIMELESS_FORMATS",
    "FaultCount",
    "GatewayTally",
    "Outgoing",
    "RunReport",
    "Scenario",
    "Tally",
    "local_days",
    "period_start",
]

#: Formats whose messages carry no reading time (ingest uses the receive time).
TIMELESS_FORMATS: Final = frozenset({"shelly_gen1"})
#: Formats whose gateways keep a backlog while their uplink is down (``burst`` applies).
BUFFERING_FORMATS: Final = frozenset({"nzc", "neuron", "sparkplug"})
_DELAY_FAULTS: Final = ("late", "out_of_order")


# --------------------------------------------------------------------------- report


@dataclass
class Tally:
    """Messages and the meter readings in them."""

    messages: int = 0
    readings: int = 0


@dataclass
class GatewayTally:
    """What one gateway published."""

    site_id: str
    gateway_id: str
    format: str
    messages: int = 0
    readings: int = 0


@dataclass
class FaultCount:
    """What one fault did: ``events`` occurrences (outages started, resets, holds, wraps
    seen), ``messages`` MQTT or gateway messages touched, ``readings`` meter readings touched
    (for ``offline``: readings not sent); ``planned`` meters set up to roll over."""

    events: int = 0
    messages: int = 0
    readings: int = 0
    planned: int = 0


@dataclass
class RunReport:
    """What a run produced.

    ``messages``/``readings``: MQTT messages handed to the publisher and the meter registers
    in them, duplicates and malformed ones included. ``clean_readings``: distinct readings
    published once at least with their true value and time in a well-formed message (what
    ingest should store; late ones beyond ``NZC_LATENESS_S`` are still counted here, see
    ``faults["late"]``). ``per_kind``: messages by kind (``data``, ``birth``, ``death``,
    ``extra``). ``visitors``: per scenic site, visitors per local day [persons]. ``wall_s``,
    ``acknowledged`` and ``broker`` are filled in by the publisher loop.
    """

    seed: int
    interval_s: int
    sites: int
    meters: int
    gateways: int
    fault_rates: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    messages: int = 0
    readings: int = 0
    clean_readings: int = 0
    per_gateway: dict[str, GatewayTally] = field(default_factory=dict)
    per_format: dict[str, Tally] = field(default_factory=dict)
    per_kind: dict[str, int] = field(default_factory=dict)
    faults: dict[str, FaultCount] = field(
        default_factory=lambda: {f: FaultCount() for f in FAULTS}
    )
    visitors: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    acknowledged: bool = False
    broker: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (times as ISO 8601 UTC)."""
        d = asdict(self)
        for k in ("first_ts", "last_ts"):
            v = getattr(self, k)
            d[k] = None if v is None else v.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return d

    def lines(self) -> list[str]:
        """A human summary, one line per gateway, format and fault."""
        span = "-"
        if self.first_ts is not None and self.last_ts is not None:
            span = f"{_iso(self.first_ts)} .. {_iso(self.last_ts)}"
        out = [
            f"simulated {self.meters} meters on {self.gateways} gateways of {self.sites} sites, "
            f"seed {self.seed}: {self.rounds} rounds every {self.interval_s} s, {span}"
        ]
        for g in self.per_gateway.values():
            out.append(f"  {g.site_id}/{g.gateway_id}: {g.messages} messages, "
                       f"{g.readings} readings ({g.format})")
        if len(self.per_format) > 1:
            out.append("  by format: " + ", ".join(
                f"{f} {t.messages} msg/{t.readings} rd" for f, t in self.per_format.items()))
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.per_kind.items()))
        out.append(f"  {self.clean_readings} clean readings (distinct, well-formed, true value "
                   f"and time); messages by kind: {kinds or '-'}")
        for name, c in self.faults.items():
            if c.events or c.messages or c.readings or c.planned:
                extra = f", {c.planned} meters planned" if c.planned else ""
                out.append(f"  fault {name}: {c.events} events, {c.messages} messages, "
                           f"{c.readings} readings{extra}")
        for site, days in self.visitors.items():
            out.append(f"  visitors {site}: " + ", ".join(f"{d} {n}" for d, n in days.items()))
        out.extend(f"  warning: {w}" for w in self.warnings)
        return out


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Outgoing:
    """One MQTT message to publish, with where it comes from and the faults that touched it
    (``duplicate`` marks the second copy)."""

    message: Message
    site_id: str
    gateway_id: str
    format: str
    faults: frozenset[str] = frozenset()

    @property
    def topic(self) -> str:
        """MQTT topic."""
        return self.message.topic

    @property
    def payload(self) -> bytes:
        """MQTT payload."""
        return self.message.payload

    @property
    def readings(self) -> int:
        """Meter registers carried."""
        return self.message.readings


@dataclass
class _Logical:
    """One gateway's readings of one round, on their way to delivery."""

    generated: int
    due: int
    readings: list[MeterReading]
    faults: set[str]
    spiked: set[str]
    delayed: bool


@dataclass
class _Gateway:
    site_id: str
    gateway_id: str
    format: str
    meters: list[Meter]
    encoder: GatewayEncoder
    hold_until: int = -1
    queue: list[_Logical] = field(default_factory=list)
    offline_now: frozenset[str] = frozenset()


@dataclass
class _MeterState:
    offset: float = 0.0  # device register - simulated register [meter unit]
    last_true: float | None = None
    last_device: float | None = None
    offline_until: int = -1


# --------------------------------------------------------------------------- scenario


class Scenario:
    """Rounds of a simulated pilot zone (see the module docstring).

    ``start`` (aware) is the time of round 0; ``interval_s`` [s] the reporting period;
    ``horizon_rounds`` the number of rounds the run is expected to last (rollover planning;
    ``None``: :attr:`FaultConfig.rollover_horizon_rounds`). ``extras`` makes vendor formats
    send their instantaneous values too; ``neuron_variant`` is ``values`` or ``tags``;
    ``slot_s`` [s] the rate resolution of the load model; gateways speaking a format in
    ``muted_formats`` are simulated (their meters stay in the tree) but send nothing.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        start: datetime,
        interval_s: int,
        seed: int = 1,
        faults: FaultConfig | None = None,
        horizon_rounds: int | None = None,
        extras: bool = False,
        neuron_variant: str = "values",
        slot_s: int = 60,
        muted_formats: frozenset[str] = frozenset(),
        register_period_s: int | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0 s, got {interval_s}")
        if start.tzinfo is None:
            raise ValueError(f"start {start.isoformat()} has no UTC offset")
        self.registry = registry
        self.start = start.astimezone(UTC)
        self.interval_s = interval_s
        self.seed = seed
        self.faults = faults or FaultConfig()
        self.horizon_rounds = horizon_rounds or self.faults.rollover_horizon_rounds
        self._k = 0
        self._finished = False
        groups: dict[tuple[str, str], list[Meter]] = {}
        for m in registry.meters.values():
            groups.setdefault((m.site_id, m.gateway_id), []).append(m)
        self._gateways: list[_Gateway] = []
        for (site_id, gw_id), ms in groups.items():
            enc = encoder_for(registry.sites[site_id], gw_id, ms, extras=extras,
                              neuron_variant=neuron_variant)
            self._gateways.append(_Gateway(site_id, gw_id, enc.format, ms, enc))
        muted = sorted(f"{g.site_id}/{g.gateway_id}" for g in self._gateways
                       if g.format in muted_formats)
        self._gateways = [g for g in self._gateways if g.format not in muted_formats]
        self._need_rates = extras or any(
            g.format in ("tasmota", "zigbee2mqtt") for g in self._gateways
        )
        self._state = {mid: _MeterState() for mid in registry.meters}
        self.report = RunReport(
            seed=seed, interval_s=interval_s, sites=len(registry.sites),
            meters=len(registry.meters), gateways=len(self._gateways) + len(muted),
            fault_rates={f: self.faults.rate(f) for f in self.faults.enabled},
        )
        for g in self._gateways:
            self.report.per_gateway[f"{g.site_id}/{g.gateway_id}"] = GatewayTally(
                g.site_id, g.gateway_id, g.format)
        if muted:
            self.report.warnings.append(
                f"gateways {', '.join(muted)} ({', '.join(sorted(muted_formats))}) are "
                "simulated but send nothing")
        if register_period_s is not None and register_period_s <= 0:
            raise ValueError(f"register_period_s must be > 0 s, got {register_period_s}")
        self.register_period_s = register_period_s
        self._slot_s = slot_s
        anchor = (self.start if register_period_s is None
                  else period_start(self.start, register_period_s))
        initial = self._plan_rollovers(slot_s, anchor)
        if register_period_s is not None:
            initial = {mid: initial.get(mid, 0.0) for mid in registry.meters}
        self.sim = SiteSimulation(registry, seed, anchor, slot_s=slot_s,
                                  initial_registers=initial)
        self._reg_sim = self.sim

    # ----------------------------------------------------------------- planning

    def _u(self, fault: str, key: str, n: int) -> float:
        return seeded_uniform(self.seed, n, "fault", fault, key)

    def _hit(self, fault: str, key: str, n: int) -> bool:
        rate = self.faults.rate(fault)
        return rate > 0.0 and self._u(fault, key, n) < rate

    def _plan_rollovers(self, slot_s: int, anchor: datetime) -> dict[str, float]:
        """Initial registers (at ``anchor``) that make the chosen meters pass
        ``register_max`` halfway between two rounds inside the horizon."""
        if self.faults.rate("rollover") <= 0.0:
            return {}
        chosen = [m for m in self.registry.meters.values()
                  if self._hit("rollover", m.meter_id, 0)]
        if not chosen:
            return {}
        probe = SiteSimulation(self.registry, self.seed, anchor, slot_s=slot_s)
        when: dict[str, int] = {
            m.meter_id: 1 + min(int(self._u("rollover-round", m.meter_id, 0)
                                    * self.horizon_rounds), self.horizon_rounds - 1)
            for m in chosen
        }
        initial: dict[str, float] = {}
        for k in sorted(set(when.values())):
            t = self.start + timedelta(seconds=(k - 0.5) * self.interval_s)
            energy = probe.energy_since_start(t)
            for m in chosen:
                if when[m.meter_id] != k:
                    continue
                e = energy[m.meter_id]
                if 0.0 < e < m.register_max:
                    initial[m.meter_id] = m.register_max - e
        self.report.faults["rollover"].planned = len(initial)
        return initial

    # ----------------------------------------------------------------- a round

    def time_of(self, k: int) -> datetime:
        """UTC time of round ``k``."""
        return self.start + timedelta(seconds=k * self.interval_s)

    @property
    def rounds_done(self) -> int:
        """Rounds computed so far."""
        return self._k

    def readings_at(self, t: datetime) -> list[tuple[str, float]]:
        """``(meter_id, register)`` of every meter at ``t`` before faults [meter unit].

        With ``register_period_s`` the registers are a pure function of (seed, meter, time):
        each meter's register counts the energy since the start of the period (a multiple of
        ``register_period_s`` since the Unix epoch) that contains ``t`` (a period is
        ``(start, start + period]``): it restarts from zero once a period, a reset to a value
        reachable in one reading interval, which the counters count exactly (flagged
        estimated). Without it, registers start from seeded values at the run's start.
        """
        if self.register_period_s is None:
            return self.sim.readings_at(t)
        anchor = period_start(t, self.register_period_s)
        if anchor != self._reg_sim.start_utc:
            self._reg_sim = SiteSimulation(
                self.registry, self.seed, anchor, slot_s=self._slot_s,
                initial_registers={mid: 0.0 for mid in self.registry.meters})
        return self._reg_sim.readings_at(t)

    def _device_value(self, m: Meter, st: _MeterState, true: float, k: int) -> float:
        """The meter's own register [meter unit]: the simulated one moved by resets and
        replacements so far (both happen at the previous reading)."""
        res = register_resolution(m.unit)
        prev = st.last_true if st.last_true is not None else true
        if self._hit("reset", m.meter_id, k):
            st.offset = -prev
            c = self.report.faults["reset"]
            c.events += 1
            c.readings += 1
        elif self._hit("replacement", m.meter_id, k):
            old = prev + st.offset
            fresh = math.floor(0.001 * self._u("replacement-start", m.meter_id, k)
                               * max(old, 0.0) / res) * res
            st.offset = fresh - prev
            c = self.report.faults["replacement"]
            c.events += 1
            c.readings += 1
        v = true + st.offset
        if v < 0.0:
            v = 0.0 if v > -res else v % m.register_max
        digits = max(0, -math.floor(math.log10(res) + 1e-9))
        return round(round(v / res) * res, digits) % m.register_max

    def _spike(self, m: Meter, device: float, k: int) -> float | None:
        """A spiked value [meter unit], or ``None`` when no spike fits below the register
        width."""
        jump = m.max_rate_per_h * self.interval_s / 3600.0 * (
            3.0 + 7.0 * self._u("spike-size", m.meter_id, k))
        v = device + jump
        if v >= m.register_max:
            return None
        res = register_resolution(m.unit)
        return round(math.floor(v / res) * res, max(0, -math.floor(math.log10(res) + 1e-9)))

    def step(self) -> list[Outgoing]:
        """Compute the next round; return the messages to publish at its time, in order."""
        if self._finished:
            raise RuntimeError("the scenario is finished")
        k = self._k
        t = self.time_of(k)
        faults = self.report.faults
        values = dict(self.readings_at(t))
        rates = self.sim.rates_at(t) if self._need_rates else None
        for g in self._gateways:
            readings: list[MeterReading] = []
            spiked: set[str] = set()
            offline: set[str] = set()
            for m in g.meters:
                st = self._state[m.meter_id]
                if k < st.offline_until:
                    offline.add(m.meter_id)
                elif self._hit("offline", m.meter_id, k):
                    lo, hi = self.faults.offline_rounds
                    st.offline_until = k + lo + int(
                        self._u("offline-length", m.meter_id, k) * (hi - lo + 1))
                    faults["offline"].events += 1
                    offline.add(m.meter_id)
                if m.meter_id in offline:
                    faults["offline"].readings += 1
                    continue
                true = values[m.meter_id]
                device = self._device_value(m, st, true, k)
                st.last_true = true
                if (st.last_device is not None and device < st.last_device
                        and st.last_device >= 0.9 * m.register_max):
                    faults["rollover"].events += 1
                    faults["rollover"].readings += 1
                st.last_device = device
                published = device
                if self._hit("spike", m.meter_id, k):
                    s = self._spike(m, device, k)
                    if s is not None:
                        published = s
                        spiked.add(m.meter_id)
                        faults["spike"].events += 1
                        faults["spike"].readings += 1
                rate = None if rates is None else rates[m.meter_id]
                readings.append(MeterReading(m, t, published, rate))
            g.offline_now = frozenset(offline)
            if readings:
                g.queue.append(self._schedule(g, k, readings, spiked))
        out: list[Outgoing] = []
        for g in self._gateways:
            if g.hold_until > k:
                continue
            out.extend(self._deliver(g, k, t, g.offline_now))
        self._k += 1
        r = self.report
        r.rounds = self._k
        r.first_ts = r.first_ts or t
        r.last_ts = t
        return out

    def _schedule(self, g: _Gateway, k: int, readings: list[MeterReading],
                  spiked: set[str]) -> _Logical:
        """Decide a gateway message's clock skew and delivery round."""
        faults = self.report.faults
        key = f"{g.site_id}/{g.gateway_id}"
        tags: set[str] = set()
        if spiked:
            tags.add("spike")
        timed = g.format not in TIMELESS_FORMATS
        if timed and self._hit("clock_skew", key, k):
            shift = timedelta(seconds=self.faults.clock_skew_s)
            readings = [replace(r, ts=r.ts + shift) for r in readings]
            tags.add("clock_skew")
            faults["clock_skew"].events += 1
            faults["clock_skew"].messages += 1
            faults["clock_skew"].readings += len(readings)
        delay = 0
        if timed and self._hit("late", key, k):
            delay = self.faults.late_rounds
            tags.add("late")
        elif timed and self._hit("out_of_order", key, k):
            delay = 1
            tags.add("out_of_order")
        for name in _DELAY_FAULTS:
            if name in tags:
                faults[name].events += 1
                faults[name].messages += 1
                faults[name].readings += len(readings)
        due = k + delay
        if g.format in BUFFERING_FORMATS:
            if g.hold_until <= k and self._hit("burst", key, k):
                lo, hi = self.faults.burst_rounds
                g.hold_until = k + lo + int(self._u("burst-length", key, k) * (hi - lo + 1))
                faults["burst"].events += 1
            if g.hold_until > k:
                due = max(due, g.hold_until)
                tags.add("burst")
                faults["burst"].messages += 1
                faults["burst"].readings += len(readings)
        return _Logical(k, due, readings, tags, spiked, delay > 0)

    def _deliver(self, g: _Gateway, k: int, now: datetime,
                 offline: frozenset[str], flush: bool = False) -> list[Outgoing]:
        """Encode and fault what gateway ``g`` sends in round ``k`` at ``now``: on-time (and
        backlog) messages first, then delayed ones (so an out-of-order message follows the
        next round's)."""
        due = [lm for lm in g.queue if flush or lm.due <= k]
        g.queue = [lm for lm in g.queue if not (flush or lm.due <= k)]
        fresh = [lm for lm in due if not lm.delayed]
        late = [lm for lm in due if lm.delayed]
        out: list[Outgoing] = []
        for part, off in ((fresh, offline), (late, frozenset[str]())):
            if not part and part is late:
                continue
            part.sort(key=lambda lm: lm.generated)
            readings: list[MeterReading] = []
            tags: dict[tuple[str, datetime], set[str]] = {}
            for lm in part:
                for r in lm.readings:
                    rr = replace(r, historical=True) if lm.generated < k else r
                    readings.append(rr)
                    t = set(lm.faults)
                    if r.meter.meter_id not in lm.spiked:
                        t.discard("spike")
                    tags[(r.meter.meter_id, r.ts)] = t
            for i, msg in enumerate(g.encoder.encode(readings, now, off)):
                out.extend(self._publishable(g, k, i + (1000 if part is late else 0), msg,
                                             tags))
        return out

    def _publishable(self, g: _Gateway, k: int, i: int, msg: Message,
                     tags: Mapping[tuple[str, datetime], set[str]]) -> list[Outgoing]:
        """Apply the message-level faults (malformed, duplicate) and count what goes out."""
        faults = self.report.faults
        key = f"{g.site_id}/{g.gateway_id}#{i}"
        msg_faults: set[str] = set()
        for r in msg.carried:
            msg_faults |= tags.get((r.meter.meter_id, r.ts), set())
        data = msg.kind == "data" and msg.readings > 0  # births stay intact: they set state
        if data and self._hit("malformed", key, k):
            msg = replace(msg, payload=corrupt(g.format, msg.payload))
            msg_faults.add("malformed")
            faults["malformed"].events += 1
            faults["malformed"].messages += 1
            faults["malformed"].readings += msg.readings
        else:
            for r in msg.carried:
                rf = tags.get((r.meter.meter_id, r.ts), set())
                if "spike" not in rf and "clock_skew" not in rf:
                    self.report.clean_readings += 1
        first = Outgoing(msg, g.site_id, g.gateway_id, g.format, frozenset(msg_faults))
        out = [first]
        if data and self._hit("duplicate", key, k):
            out.append(Outgoing(msg, g.site_id, g.gateway_id, g.format,
                                frozenset(msg_faults | {"duplicate"})))
            faults["duplicate"].events += 1
            faults["duplicate"].messages += 1
            faults["duplicate"].readings += msg.readings
        for o in out:
            self._count(g, o)
        return out

    def _count(self, g: _Gateway, o: Outgoing) -> None:
        r = self.report
        r.messages += 1
        r.readings += o.readings
        gt = r.per_gateway[f"{g.site_id}/{g.gateway_id}"]
        gt.messages += 1
        gt.readings += o.readings
        ft = r.per_format.setdefault(g.format, Tally())
        ft.messages += 1
        ft.readings += o.readings
        r.per_kind[o.message.kind] = r.per_kind.get(o.message.kind, 0) + 1

    def finish(self) -> list[Outgoing]:
        """End of the run: every gateway sends what it still holds (late messages, a burst
        backlog) at the time of the last round, then its goodbye (Sparkplug B NDEATH).
        Also fills :attr:`RunReport.visitors`."""
        if self._finished:
            return []
        self._finished = True
        k = max(self._k - 1, 0)
        now = self.time_of(k)
        out: list[Outgoing] = []
        for g in self._gateways:
            if g.queue:
                g.hold_until = -1
                out.extend(self._deliver(g, self._k, now, frozenset(), flush=True))
            for i, msg in enumerate(g.encoder.close(now)):
                out.extend(self._publishable(g, self._k, 2000 + i, msg, {}))
        self._fill_visitors()
        return out

    def _fill_visitors(self) -> None:
        r = self.report
        if r.first_ts is None or r.last_ts is None:
            return
        for site in self.registry.sites.values():
            if site.site_type == "scenic_area":
                r.visitors[site.site_id] = {
                    d.isoformat(): self.sim.daily_visitors(site.site_id, d)
                    for d in local_days(r.first_ts, r.last_ts, site.timezone)
                }

    def gateways(self) -> list[tuple[str, str, str, Sequence[Meter]]]:
        """``(site_id, gateway_id, format, meters)`` of every gateway, in registry order."""
        return [(g.site_id, g.gateway_id, g.format, tuple(g.meters)) for g in self._gateways]


def period_start(t: datetime, period_s: int) -> datetime:
    """Start (UTC) of the register period ``(start, start + period_s]`` containing ``t``:
    periods are multiples of ``period_s`` [s] since the Unix epoch."""
    ms = round(t.timestamp() * 1000)
    step = period_s * 1000
    start = (ms - 1) // step * step
    return datetime.fromtimestamp(start / 1000, UTC)


def local_days(first: datetime, last: datetime, tz_name: str) -> list[date]:
    """Local dates from ``first`` to ``last`` (inclusive) in time zone ``tz_name``."""
    tz = ZoneInfo(tz_name)
    d, end = first.astimezone(tz).date(), last.astimezone(tz).date()
    out = []
    while d <= end:
        out.append(d)
        d += timedelta(days=1)
    return out
