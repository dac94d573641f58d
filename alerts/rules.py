"""Alert rules as data: parsing ``alerts/rules.yaml`` and choosing the meters a rule covers.

A rule file holds ``rules:``, a list of mappings with

- ``id`` (unique), ``kind`` (one of :data:`KINDS`), ``severity`` (info / warning / critical);
- ``match``: which part of the registry it covers: ``site`` / ``sites``, ``site_type``
  (pilot type), ``group`` / ``groups`` (meter group), ``meters``, ``carriers``, ``gateways``;
  empty = everything;
- ``for`` (how long the condition must hold before firing, default 0), ``keep_firing_for``
  (how long it keeps firing after the condition cleared, against flapping, default 0);
- ``labels`` (owner, route ... passed to Alertmanager for routing);
- ``allow_estimated`` (whether estimated data may trigger the rule; default false);
- ``params``: what the kind needs (see :data:`DEFAULT_PARAMS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from alerts.config import parse_duration
from carbon.registry import Meter, Registry

KINDS = ("night_load", "offline", "gateway_offline", "imbalance", "indicator",
         "completeness", "estimated_share")
LIVE_KINDS = frozenset({"night_load", "offline", "gateway_offline"})
SEVERITIES = ("info", "warning", "critical")
#: Alertmanager ``alertname`` per kind.
ALERTNAMES = {
    "night_load": "NightBaseLoad",
    "offline": "MeterOffline",
    "gateway_offline": "GatewayOffline",
    "imbalance": "SubmeterImbalance",
    "indicator": "IndicatorThreshold",
    "completeness": "DataCompleteness",
    "estimated_share": "EstimatedShare",
}
OVERDUE_ALERTNAME = "RepairOverdue"

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    # night window in site local time; typical = median of the same weekday's nights over
    # `weeks` weeks (mean power per night, measured intervals only, at least `min_nights`);
    # fires when the power exceeds typical x (1 + ratio) and typical + min_margin_kw.
    "night_load": {"window_start": "23:00", "window_end": "05:00", "weeks": 4, "ratio": 0.3,
                   "min_margin_kw": 2.0, "min_nights": 2, "hysteresis_kw": 0.0},
    # no reading for after_min minutes; repair deadline in Chinese working days
    "offline": {"after_min": 30, "repair_working_days": 3},
    "gateway_offline": {"after_min": 30, "repair_working_days": 3},
    # |parent - (sum of children [- on-site PV if the parent is net])| / parent > tolerance
    # over `window` of complete, measured intervals
    "imbalance": {"tolerance": 0.1, "window": "1h", "net_pv": False, "pv_meters": []},
    # an indicator from analytics.scorecard compared with a threshold
    "indicator": {"indicator": "", "op": ">", "threshold": 0.0},
    # month-to-date covered share of each meter below `min`, after `min_elapsed`
    "completeness": {"min": 0.9, "min_elapsed": "1d"},
    # month-to-date estimated share of a site's quantity above `max`
    "estimated_share": {"max": 0.1, "min_elapsed": "1d"},
}


class RuleError(ValueError):
    """A rule file that cannot be used as written."""


@dataclass(frozen=True)
class Rule:
    """One alert rule (see the module docstring)."""

    rule_id: str
    kind: str
    severity: str
    match: Mapping[str, Any]
    for_: timedelta
    keep_firing_for: timedelta
    labels: Mapping[str, str]
    allow_estimated: bool
    params: Mapping[str, Any]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def alertname(self) -> str:
        """The ``alertname`` label in Alertmanager."""
        return ALERTNAMES[self.kind]

    @property
    def live(self) -> bool:
        """Evaluated every few seconds (else on the periodic schedule)."""
        return self.kind in LIVE_KINDS

    def to_json(self) -> dict[str, Any]:
        """The rule as stored in ``alert_rules.definition``."""
        return {"id": self.rule_id, "kind": self.kind, "severity": self.severity,
                "match": dict(self.match), "for_s": self.for_.total_seconds(),
                "keep_firing_for_s": self.keep_firing_for.total_seconds(),
                "labels": dict(self.labels), "allow_estimated": self.allow_estimated,
                "params": json.loads(json.dumps(dict(self.params), default=str))}

    def _listed(self, key: str, value: str | None) -> bool:
        one = self.match.get(key)
        many = self.match.get(key + "s")
        wanted: list[str] = ([str(one)] if one is not None else []) + [str(x) for x in many or []]
        return not wanted or (value is not None and value in wanted)

    def covers_site(self, registry: Registry, site_id: str) -> bool:
        """Whether the rule applies to site ``site_id``."""
        site = registry.sites.get(site_id)
        return (site is not None and self._listed("site", site_id)
                and self._listed("site_type", site.site_type))

    def covers(self, registry: Registry, meter: Meter) -> bool:
        """Whether the rule applies to ``meter``."""
        return (self.covers_site(registry, meter.site_id)
                and self._listed("group", meter.group)
                and self._listed("meter", meter.meter_id)
                and self._listed("carrier", str(meter.carrier))
                and self._listed("gateway", meter.gateway_id))

    def meters(self, registry: Registry) -> list[Meter]:
        """The registry's meters the rule applies to, sorted by id."""
        return sorted((m for m in registry.meters.values() if self.covers(registry, m)),
                      key=lambda m: m.meter_id)


_ALLOWED = {"id", "kind", "severity", "match", "for", "keep_firing_for", "labels",
            "allow_estimated", "params", "annotations", "enabled"}
_MATCH_KEYS = {"site", "sites", "site_type", "site_types", "group", "groups", "meter", "meters",
               "carrier", "carriers", "gateway", "gateways"}


def parse_rules(doc: Any, source: str = "<rules>") -> list[Rule]:
    """Rules from a parsed YAML document; :class:`RuleError` names the first problem."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("rules"), Sequence):
        raise RuleError(f"{source}: expected a mapping with a list 'rules'")
    out: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["rules"]):
        where = f"{source}: rules[{i}]"
        if not isinstance(raw, Mapping):
            raise RuleError(f"{where}: expected a mapping")
        unknown = set(raw) - _ALLOWED
        if unknown:
            raise RuleError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(_ALLOWED)}")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            raise RuleError(f"{where}: 'id' must be a non-empty string")
        where = f"{source}: rule {rule_id!r}"
        if rule_id in seen:
            raise RuleError(f"{where}: duplicate id")
        seen.add(rule_id)
        if raw.get("enabled", True) is False:
            continue
        kind = raw.get("kind")
        if kind not in KINDS:
            raise RuleError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        severity = raw.get("severity", "warning")
        if severity not in SEVERITIES:
            raise RuleError(f"{where}: severity {severity!r} is not one of {SEVERITIES}")
        match = raw.get("match") or {}
        if not isinstance(match, Mapping) or set(match) - _MATCH_KEYS:
            raise RuleError(f"{where}: 'match' keys must be among {sorted(_MATCH_KEYS)}")
        params_raw = raw.get("params") or {}
        if not isinstance(params_raw, Mapping):
            raise RuleError(f"{where}: 'params' must be a mapping")
        unknown_p = set(params_raw) - set(DEFAULT_PARAMS[kind])
        if unknown_p:
            raise RuleError(f"{where}: unknown params {sorted(unknown_p)} for kind {kind}; "
                            f"known: {sorted(DEFAULT_PARAMS[kind])}")
        params = {**DEFAULT_PARAMS[kind], **params_raw}
        labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
        try:
            for_ = parse_duration(raw.get("for", 0), f"{where}: for")
            keep = parse_duration(raw.get("keep_firing_for", 0), f"{where}: keep_firing_for")
            for key in ("window", "min_elapsed"):
                if key in params:
                    parse_duration(params[key], f"{where}: params.{key}")
        except ValueError as exc:
            raise RuleError(str(exc)) from exc
        out.append(Rule(rule_id, kind, severity, dict(match), for_, keep, labels,
                        bool(raw.get("allow_estimated", False)), params,
                        {str(k): str(v) for k, v in (raw.get("annotations") or {}).items()}))
    return out


def load_rules(path: Path) -> list[Rule]:
    """Parse the rule file at ``path``."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read rules: {exc}") from exc
    return parse_rules(doc, str(path))
