"""The lifecycle of one alert instance (pure; no I/O).

An *observation* is one evaluation of a rule on one subject at one time (the data's time
for rules on interval rows, the wall clock for offline rules): the condition is true, false
or unknown (no usable data: a gap or only estimated data is never read as zero load, and
leaves the state unchanged). The lifecycle follows Prometheus' alerting rules:

- inactive/resolved --true--> pending (``for`` > 0) or firing (``for`` = 0);
- pending --true for ``for``--> firing; pending --false--> inactive (cancelled);
- firing --false for ``keep_firing_for`` since the last true--> resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Observation:
    """One evaluation of a rule on one subject."""

    fingerprint: str
    rule_id: str
    kind: str
    site_id: str
    subject: str
    labels: Mapping[str, str]
    condition: bool | None
    at: datetime
    value: float | None = None
    threshold: float | None = None
    typical: float | None = None
    deadline: datetime | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    #: when the condition began, if known better than ``at`` (offline: the last reading)
    since: datetime | None = None


@dataclass(frozen=True)
class AlertState:
    """What the ``alerts`` table keeps of one instance."""

    fingerprint: str
    state: str = "inactive"
    pending_since: datetime | None = None
    firing_since: datetime | None = None
    last_true_at: datetime | None = None
    resolved_at: datetime | None = None
    observed_at: datetime | None = None


def step(prev: AlertState, obs: Observation, for_: timedelta,
         keep_firing_for: timedelta) -> tuple[AlertState, list[str]]:
    """The next state after ``obs`` and the events it produces (``pending``, ``firing``,
    ``cancelled``, ``resolved``). Observations older than the last one are ignored (late
    rows cannot move an alert backwards)."""
    if obs.condition is None or (prev.observed_at is not None and obs.at < prev.observed_at):
        return prev, []
    s = replace(prev, observed_at=obs.at)
    events: list[str] = []
    if obs.condition:
        s = replace(s, last_true_at=obs.at)
        if s.state in ("inactive", "resolved"):
            start = obs.since or obs.at
            s = replace(s, state="pending", pending_since=start, firing_since=None,
                        resolved_at=None)
            events.append("pending")
        if s.state == "pending" and s.pending_since is not None \
                and obs.at - s.pending_since >= for_:
            s = replace(s, state="firing", firing_since=s.pending_since + for_)
            events.append("firing")
    else:
        if s.state == "pending":
            s = replace(s, state="inactive", pending_since=None)
            events.append("cancelled")
        elif s.state == "firing" and (s.last_true_at is None
                                      or obs.at - s.last_true_at >= keep_firing_for):
            s = replace(s, state="resolved", resolved_at=obs.at)
            events.append("resolved")
    return s, events
