"""Fault injection settings: which faults, at which rate, with which parameters.

Every fault is off unless given a rate > 0 (``--faults offline=0.01,spike=0.002``). Decisions
are drawn from a counter-based hash of ``(seed, fault, meter or gateway, round)``
(:func:`simulators.profiles.seeded_uniform`), so the same seed injects the same faults
whatever else is switched on, and a test can recompute them.

================  =========================  ================================================
fault             rate is the probability    effect
================  =========================  ================================================
``offline``       per meter and round that   the meter stops answering for ``offline_rounds``
                  an outage starts           rounds (uniform in the range): no reading; a
                                             Neuron gateway reports a read error, a Sparkplug
                                             device whose meters are all down sends DDEATH
``reset``         per meter reading          the register restarted from 0 at the previous
                                             reading: it shows the energy since then
``replacement``   per meter reading          a new meter was fitted at the previous reading,
                                             starting from a small register (< 0.1 % of the
                                             old one)
``rollover``      per meter, once per run    the initial register is set so that the register
                                             passes ``register_max`` (and wraps to ~0) at a
                                             seeded round of the run (within ``horizon``)
``spike``         per meter reading          the published value jumps by 3-10 x what the
                                             meter's ``max_rate_per_h`` allows in one interval
                                             (one reading; the next is normal again)
``duplicate``     per MQTT data message      the message is published twice
``out_of_order``  per gateway message        delivered one round late, after the next round's
                                             message
``late``          per gateway message        delivered ``late_rounds`` rounds late
``clock_skew``    per gateway message        the gateway's clock is ``clock_skew_s`` ahead:
                                             every time in the message is shifted (formats
                                             without a time, Shelly Gen1, are not affected)
``malformed``     per MQTT data message      the payload is corrupted (cut JSON, a non-number,
                                             invalid protobuf)
``burst``         per gateway and round that the gateway's uplink is down for
                  a hold starts              ``burst_rounds`` rounds; it then sends the backlog
                                             at once (one big batch in our JSON, historical
                                             values in Sparkplug B)
================  =========================  ================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["FAULTS", "FaultConfig", "FaultError", "parse_faults"]

#: Every fault name, in report order.
FAULTS: Final = (
    "offline", "reset", "replacement", "rollover", "spike", "duplicate", "out_of_order",
    "late", "clock_skew", "malformed", "burst",
)


class FaultError(ValueError):
    """An invalid fault specification; the message names the offending part."""


@dataclass(frozen=True)
class FaultConfig:
    """Fault rates and parameters.

    ``rates``: fault name -> rate in [0, 1] (see the module table for what the rate counts);
    ``offline_rounds`` and ``burst_rounds`` [rounds] are inclusive ranges of the outage and
    hold lengths; ``late_rounds`` [rounds] the delay of a late message; ``clock_skew_s`` [s]
    how far ahead a skewed clock runs (ingest rejects readings more than
    ``NZC_MAX_CLOCK_SKEW_S`` ahead of its own clock); ``rollover_horizon_rounds`` bounds the
    round of a planned rollover when the run has no count or duration.
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    offline_rounds: tuple[int, int] = (2, 10)
    burst_rounds: tuple[int, int] = (3, 8)
    late_rounds: int = 30
    clock_skew_s: float = 86_400.0
    rollover_horizon_rounds: int = 1440

    def __post_init__(self) -> None:
        for name, rate in self.rates.items():
            if name not in FAULTS:
                raise FaultError(f"unknown fault {name!r}; accepted: {', '.join(FAULTS)}")
            if not 0.0 <= rate <= 1.0:
                raise FaultError(f"fault {name}: rate {rate} is outside [0, 1]")
        for what, (lo, hi) in (("offline_rounds", self.offline_rounds),
                               ("burst_rounds", self.burst_rounds)):
            if not 1 <= lo <= hi:
                raise FaultError(f"{what} {lo}-{hi}: need 1 <= min <= max")
        if self.late_rounds < 2:
            raise FaultError(
                f"late_rounds must be >= 2 (1 is out_of_order), got {self.late_rounds}"
            )
        if self.rollover_horizon_rounds < 1:
            raise FaultError("rollover_horizon_rounds must be >= 1")

    def rate(self, name: str) -> float:
        """The rate of fault ``name`` (0 when off)."""
        return float(self.rates.get(name, 0.0))

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the faults with a rate > 0, in :data:`FAULTS` order."""
        return tuple(f for f in FAULTS if self.rate(f) > 0.0)


def parse_faults(text: str) -> dict[str, float]:
    """Parse ``name=rate,name=rate`` (``name`` alone means rate 0.01); ``""`` is no fault.

    >>> parse_faults("offline=0.02,spike")
    {'offline': 0.02, 'spike': 0.01}
    """
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip().replace("-", "_")
        if name not in FAULTS:
            raise FaultError(f"unknown fault {name!r} in {text!r}; accepted: {', '.join(FAULTS)}")
        try:
            rate = float(raw) if sep else 0.01
        except ValueError:
            raise FaultError(f"fault {name}: rate {raw!r} is not a number") from None
        if not 0.0 <= rate <= 1.0:
            raise FaultError(f"fault {name}: rate {rate} is outside [0, 1]")
        out[name] = rate
    return out
