"""The alert evaluator: a worker (``nzc alerts run``) that reads the rows the stream writes to
PostgreSQL, evaluates the rules, keeps every alert's lifecycle in the database and posts the
active alerts to Alertmanager.

Why from the database and not inside the stream: the stream is a set of faust workers being
rewritten for throughput; the database rows (``energy_intervals``, ``readings``) are the
stream's stable output, committed within seconds of the data arriving. Reading them
incrementally (by ``updated_at``, a cursor stored in ``alert_cursors``) every
``NZC_ALERT_EVAL_S`` seconds keeps live rules within seconds of the data, works the same
after a stream rewrite or a replay, and makes the evaluator restartable on its own: its state
lives in ``alerts`` and Alertmanager de-duplicates what is posted again, so a restart neither
loses nor repeats a notification.
"""

from __future__ import annotations

import importlib
import logging
import re
import statistics
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import yaml

from alerts.am import Alertmanager, AlertmanagerError
from alerts.config import AlertSettings, parse_duration
from alerts.engine import AlertState, Observation, step
from alerts.rules import ALERTNAMES, OVERDUE_ALERTNAME, Rule
from alerts.workdays import repair_deadline
from carbon.registry import Meter, Registry
from carbon.units import Carrier
from db import alerts as q

log = logging.getLogger("nzc.alerts")

#: Interval rows starting before now - LOOKBACK are not re-read by the live rules [s].
LOOKBACK = timedelta(days=3)
#: Rows written up to this long before the newest seen are read again (a transaction that
#: started earlier may commit later; re-reading a row is harmless) [s].
CURSOR_MARGIN = timedelta(seconds=60)
#: Firing alerts are posted again this often, with endsAt this far ahead (Prometheus does
#: the same: Alertmanager resolves an alert that is no longer re-posted).
RESEND = timedelta(seconds=60)
FIRING_TTL = timedelta(minutes=15)
OFFLINE_KINDS = ("offline", "gateway_offline")


@dataclass
class CycleReport:
    """What one evaluation cycle did."""

    observations: int = 0
    events: list[tuple[str, str]] = field(default_factory=list)
    posted: int = 0
    post_error: str | None = None


def _local_window(night: date, start: time, end: time, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC bounds of the night window that begins on local date ``night``."""
    crosses = end <= start
    a = datetime.combine(night, start, tzinfo=tz)
    b = datetime.combine(night + timedelta(days=1 if crosses else 0), end, tzinfo=tz)
    return a.astimezone(UTC), b.astimezone(UTC)


def night_of(t: datetime, start: time, end: time, tz: ZoneInfo) -> date | None:
    """The local date on which the night window holding the interval starting at ``t``
    began, or None when ``t`` lies outside every night window."""
    local = t.astimezone(tz)
    tod = local.time()
    if end <= start:  # crosses midnight
        if tod >= start:
            return local.date()
        if tod < end:
            return local.date() - timedelta(days=1)
        return None
    return local.date() if start <= tod < end else None


def _hhmm(raw: Any) -> time:
    return time.fromisoformat(str(raw))


class Evaluator:
    """Evaluates ``rules`` against the database at ``database_url`` (writer role)."""

    def __init__(self, database_url: str, registry: Registry, rules: list[Rule],
                 settings: AlertSettings, alertmanager: Alertmanager | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.database_url = database_url
        self.registry = registry
        self.rules = {r.rule_id: r for r in rules}
        self.settings = settings
        self.am = alertmanager
        self.clock = clock
        self._typical: dict[tuple[str, str, date], tuple[float | None, list[float]]] = {}
        self._skipped_logged: set[str] = set()
        self._inhibition_rank = inhibition_ranks(settings.routing_path)

    # --- labels and messages --------------------------------------------------------

    def _labels(self, rule: Rule, site_id: str, meter: Meter | None = None,
                gateway: str | None = None) -> dict[str, str]:
        labels = {"alertname": rule.alertname, "rule": rule.rule_id, "site": site_id,
                  "severity": rule.severity}
        if meter is not None:
            labels["meter"] = meter.meter_id
            labels["gateway"] = meter.gateway_id
            if meter.group:
                labels["building"] = meter.group
        if gateway is not None:
            labels["gateway"] = gateway
        labels.update(rule.labels)
        return labels

    def _obs(self, rule: Rule, subject: str, labels: Mapping[str, str], site_id: str,
             condition: bool | None, at: datetime, **kw: Any) -> Observation:
        return Observation(fingerprint=f"{rule.rule_id}|{subject}", rule_id=rule.rule_id,
                           kind=rule.kind, site_id=site_id, subject=subject, labels=labels,
                           condition=condition, at=at, **kw)

    # --- live rules -----------------------------------------------------------------

    def _night_load(self, conn: psycopg.Connection[Any], rule: Rule,
                    now: datetime) -> list[Observation]:
        meters = {m.meter_id: m for m in rule.meters(self.registry)
                  if m.carrier in (Carrier.GRID_IMPORT,) or "carrier" in rule.match
                  or "carriers" in rule.match}
        if not meters:
            return []
        cursor_name = f"night_load:{rule.rule_id}"
        cursor = q.get_cursor(conn, cursor_name)
        rows = q.new_intervals(conn, list(meters), now - LOOKBACK,
                               cursor - CURSOR_MARGIN if cursor else None)
        p = rule.params
        start, end = _hhmm(p["window_start"]), _hhmm(p["window_end"])
        out = []
        newest = cursor
        for r in rows:
            newest = r["updated_at"] if newest is None else max(newest, r["updated_at"])
            m = meters[r["meter_id"]]
            tz = ZoneInfo(self.registry.sites[m.site_id].timezone)
            at = r["interval_start"] + timedelta(seconds=r["interval_s"])
            labels = self._labels(rule, m.site_id, m)
            night = night_of(r["interval_start"], start, end, tz)
            if night is None:  # the night is over: the rule no longer holds
                out.append(self._obs(rule, m.meter_id, labels, m.site_id, False, at))
                continue
            estimated = r["quality"] == "estimated" or r["estimated_quantity"] > 0
            if r["quality"] not in ("measured", "estimated") or (
                    estimated and not rule.allow_estimated):
                # a gap, a partial or estimated interval: unknown, never zero load
                out.append(self._obs(rule, m.meter_id, labels, m.site_id, None, at,
                                     evidence={"skipped": r["quality"]}))
                continue
            kw = r["quantity"] * 3600.0 / r["interval_s"]
            typical, nights = self._typical_kw(conn, rule, m, night, tz)
            if typical is None:
                self._log_once(f"{rule.rule_id}:{m.meter_id}:{night}",
                               "rule %s: meter %s has only %d usable same-weekday nights before "
                               "%s (need %s): night load not evaluated", rule.rule_id,
                               m.meter_id, len(nights), night, p["min_nights"])
                continue
            threshold = max(typical * (1 + float(p["ratio"])),
                            typical + float(p["min_margin_kw"]))
            out.append(self._obs(
                rule, m.meter_id, labels, m.site_id, kw > threshold, at, value=kw,
                threshold=threshold, typical=typical,
                evidence={"interval_start": r["interval_start"].isoformat(),
                          "quantity_kwh": r["quantity"], "quality": r["quality"],
                          "night": night.isoformat(), "nights_kw": nights,
                          "unit": "kW", "hysteresis_kw": float(p["hysteresis_kw"])}))
        if newest is not None and newest != cursor:
            q.set_cursor(conn, cursor_name, newest)
        return out

    def _typical_kw(self, conn: psycopg.Connection[Any], rule: Rule, m: Meter, night: date,
                    tz: ZoneInfo) -> tuple[float | None, list[float]]:
        """Median over the same weekday's previous nights (``weeks`` of them) of each
        night's mean power [kW]; a night counts when at least half of its intervals are
        measured."""
        key = (rule.rule_id, m.meter_id, night)
        if key in self._typical:
            return self._typical[key]
        p = rule.params
        start, end = _hhmm(p["window_start"]), _hhmm(p["window_end"])
        nights: list[float] = []
        for k in range(1, int(p["weeks"]) + 1):
            a, b = _local_window(night - timedelta(days=7 * k), start, end, tz)
            mean, n = q.night_mean_kw(conn, m.meter_id, a, b)
            expected = (b - a).total_seconds() / 900.0
            if mean is not None and n >= expected / 2:
                nights.append(round(mean, 6))
        typical = statistics.median(nights) if len(nights) >= int(p["min_nights"]) else None
        self._typical[key] = (typical, nights)
        return typical, nights

    def _offline(self, conn: psycopg.Connection[Any], rule: Rule,
                 now: datetime) -> list[Observation]:
        meters = rule.meters(self.registry)
        last = q.last_readings(conn, [m.meter_id for m in meters])
        after = timedelta(minutes=float(rule.params["after_min"]))
        days = int(rule.params["repair_working_days"])
        out = []
        if rule.kind == "offline":
            for m in meters:
                seen = last.get(m.meter_id)
                labels = self._labels(rule, m.site_id, m)
                if seen is None:  # never reported: nothing to compare with
                    continue
                down = now - seen >= after
                out.append(self._obs(
                    rule, m.meter_id, labels, m.site_id, down, now,
                    value=(now - seen).total_seconds() / 60, threshold=after.total_seconds() / 60,
                    deadline=repair_deadline(seen, days) if down else None, since=seen + after,
                    evidence={"last_reading": seen.isoformat(), "unit": "min"}))
            return out
        by_gw: dict[tuple[str, str], list[Meter]] = defaultdict(list)
        for m in meters:
            by_gw[(m.site_id, m.gateway_id)].append(m)
        for (site_id, gw), members in sorted(by_gw.items()):
            seen_all = [last[m.meter_id] for m in members if m.meter_id in last]
            if not seen_all:
                continue
            newest = max(seen_all)
            down = now - newest >= after
            out.append(self._obs(
                rule, f"{site_id}/{gw}", self._labels(rule, site_id, gateway=gw), site_id, down,
                now, value=(now - newest).total_seconds() / 60,
                threshold=after.total_seconds() / 60,
                deadline=repair_deadline(newest, days) if down else None, since=newest + after,
                evidence={"last_reading": newest.isoformat(), "meters": len(members),
                          "unit": "min"}))
        return out

    # --- periodic rules -------------------------------------------------------------

    def _imbalance(self, conn: psycopg.Connection[Any], rule: Rule,
                   now: datetime) -> list[Observation]:
        out = []
        window = parse_duration(rule.params["window"])
        pv_listed = set(rule.params["pv_meters"] or [])
        for parent in rule.meters(self.registry):
            children = [m for m in self.registry.meters.values()
                        if m.parent_id == parent.meter_id]
            if not children:
                continue
            newest = q.newest_interval(conn, parent.meter_id)
            if newest is None:
                continue
            end = newest + timedelta(seconds=900)
            start = end - window
            pv = [m for m in self.registry.meters.values() if m.meter_id in pv_listed
                  or (m.parent_id == parent.meter_id and m.carrier == Carrier.ONSITE_RENEWABLE)]
            same = [m for m in children if m.carrier == parent.carrier]
            ids = [parent.meter_id, *(m.meter_id for m in same),
                   *(m.meter_id for m in pv if rule.params["net_pv"])]
            rows = q.window_intervals(conn, ids, start, end)
            n_expected = int(window.total_seconds() // 900)
            per: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                per[r["meter_id"]].append(r)
            usable = all(
                len(per[i]) >= n_expected and all(
                    r["quality"] == "measured" or (rule.allow_estimated
                                                   and r["quality"] == "estimated")
                    for r in per[i]) for i in ids)
            labels = self._labels(rule, parent.site_id, parent)
            if not usable:
                out.append(self._obs(rule, parent.meter_id, labels, parent.site_id, None, end))
                continue
            p_sum = sum(r["quantity"] for r in per[parent.meter_id])
            c_sum = sum(r["quantity"] for m in same for r in per[m.meter_id])
            pv_sum = sum(r["quantity"] for m in pv for r in per[m.meter_id]) \
                if rule.params["net_pv"] else 0.0
            expected = c_sum - pv_sum
            ratio = abs(p_sum - expected) / p_sum if p_sum > 0 else (1.0 if expected else 0.0)
            out.append(self._obs(
                rule, parent.meter_id, labels, parent.site_id,
                ratio > float(rule.params["tolerance"]), end, value=ratio,
                threshold=float(rule.params["tolerance"]),
                evidence={"parent_kwh": p_sum, "children_kwh": c_sum, "pv_kwh": pv_sum,
                          "window_start": start.isoformat(), "unit": "ratio"}))
        return out

    def _month(self, conn: psycopg.Connection[Any], rule: Rule,
               now: datetime) -> list[Observation]:
        out = []
        min_elapsed = parse_duration(rule.params["min_elapsed"])
        epoch = datetime.fromtimestamp(0, UTC)
        end = epoch + (now - epoch) // timedelta(seconds=900) * timedelta(seconds=900)
        by_site: dict[str, list[Meter]] = defaultdict(list)
        for m in rule.meters(self.registry):
            by_site[m.site_id].append(m)
        for site_id, meters in sorted(by_site.items()):
            tz = ZoneInfo(self.registry.sites[site_id].timezone)
            local = now.astimezone(tz)
            start = datetime(local.year, local.month, 1, tzinfo=tz).astimezone(UTC)
            elapsed = (end - start).total_seconds()
            if end - start < min_elapsed:
                continue
            stats = q.month_quality(conn, [m.meter_id for m in meters], start, end)
            if rule.kind == "completeness":
                for m in meters:
                    s = stats.get(m.meter_id, {"covered_s": 0.0})
                    share = s["covered_s"] / elapsed
                    out.append(self._obs(
                        rule, m.meter_id, self._labels(rule, site_id, m), site_id,
                        share < float(rule.params["min"]), now, value=share,
                        threshold=float(rule.params["min"]),
                        evidence={"month_start": start.isoformat(), "unit": "share"}))
            else:
                total = sum(s["quantity"] for s in stats.values())
                est = sum(s["estimated"] for s in stats.values())
                if total <= 0:
                    continue
                share = est / total
                out.append(self._obs(
                    rule, site_id, self._labels(rule, site_id), site_id,
                    share > float(rule.params["max"]), now, value=share,
                    threshold=float(rule.params["max"]),
                    evidence={"month_start": start.isoformat(), "unit": "share"}))
        return out

    def _indicator(self, conn: psycopg.Connection[Any], rule: Rule,
                   now: datetime) -> list[Observation]:
        """Indicator thresholds read ``analytics.scorecard.current_indicators(database_url,
        site_id, now) -> Mapping[str, float | None]``; skipped with a log line while that
        module or function is absent."""
        try:
            mod = importlib.import_module("analytics.scorecard")
        except ImportError:
            self._log_once(f"indicator:{rule.rule_id}", "rule %s skipped: analytics.scorecard "
                           "is not installed (indicators, issue 11)", rule.rule_id)
            return []
        fn = getattr(mod, "current_indicators", None)
        if fn is None:
            self._log_once(f"indicator:{rule.rule_id}", "rule %s skipped: analytics.scorecard "
                           "has no current_indicators()", rule.rule_id)
            return []
        out = []
        name, op, limit = (str(rule.params["indicator"]), str(rule.params["op"]),
                           float(rule.params["threshold"]))
        for site_id in sorted(self.registry.sites):
            if not rule.covers_site(self.registry, site_id):
                continue
            value = fn(self.database_url, site_id, now).get(name)
            cond = None if value is None else (value > limit if op == ">" else value < limit)
            out.append(self._obs(rule, f"{site_id}/{name}", {**self._labels(rule, site_id),
                                                            "indicator": name},
                                 site_id, cond, now, value=value, threshold=limit,
                                 evidence={"indicator": name, "op": op}))
        return out

    def _log_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._skipped_logged:
            self._skipped_logged.add(key)
            log.info(msg, *args)

    # --- the cycle --------------------------------------------------------------------

    def observe(self, conn: psycopg.Connection[Any], now: datetime,
                periodic: bool) -> list[Observation]:
        """Every rule's observations (live rules always, the others when ``periodic``)."""
        out: list[Observation] = []
        for rule in self.rules.values():
            if not rule.live and not periodic:
                continue
            if rule.kind == "night_load":
                out += self._night_load(conn, rule, now)
            elif rule.kind in OFFLINE_KINDS:
                out += self._offline(conn, rule, now)
            elif rule.kind == "imbalance":
                out += self._imbalance(conn, rule, now)
            elif rule.kind in ("completeness", "estimated_share"):
                out += self._month(conn, rule, now)
            elif rule.kind == "indicator":
                out += self._indicator(conn, rule, now)
        return out

    def _apply(self, conn: psycopg.Connection[Any], states: dict[str, dict[str, Any]],
               obs: Observation, report: CycleReport, severity: str,
               for_: timedelta, keep: timedelta, hysteresis: float = 0.0) -> None:
        row = states.get(obs.fingerprint)
        prev = AlertState(obs.fingerprint, **{k: row[k] for k in (
            "state", "pending_since", "firing_since", "last_true_at", "resolved_at",
            "observed_at")}) if row else AlertState(obs.fingerprint)
        if (hysteresis and prev.state == "firing" and obs.condition is False
                and obs.value is not None and obs.threshold is not None
                and obs.value > obs.threshold - hysteresis):
            obs = replace(obs, condition=True)
        new, events = step(prev, obs, for_, keep)
        if not events and (new == prev or new.state in ("inactive", "resolved")):
            return
        firing_or_pending = new.state in ("pending", "firing")
        saved = {
            "fingerprint": obs.fingerprint, "rule_id": obs.rule_id, "kind": obs.kind,
            "site_id": obs.site_id, "subject": obs.subject, "labels": obs.labels,
            "state": new.state, "severity": severity, "pending_since": new.pending_since,
            "firing_since": new.firing_since, "last_true_at": new.last_true_at,
            "resolved_at": new.resolved_at, "observed_at": new.observed_at,
            # while active, keep the latest values; once resolved, the clearing values
            "value": obs.value, "threshold": obs.threshold, "typical": obs.typical,
            "deadline": obs.deadline if (firing_or_pending and obs.deadline)
            else (row or {}).get("deadline"),
            "evidence": {k: v for k, v in obs.evidence.items()},
        }
        alert_id = q.save_state(conn, saved, events)
        states[obs.fingerprint] = {**(row or {}), **saved, "alert_id": alert_id}
        report.events += [(obs.fingerprint, e) for e in events]

    def cycle(self, periodic: bool = True, now: datetime | None = None) -> CycleReport:
        """One evaluation: observe, update states (one transaction), then sync Alertmanager."""
        now = now or self.clock()
        report = CycleReport()
        with psycopg.connect(self.database_url) as conn:
            states = q.load_states(conn)
            observations = sorted(self.observe(conn, now, periodic), key=lambda o: o.at)
            report.observations = len(observations)
            for obs in observations:
                rule = self.rules[obs.rule_id]
                hyst = float(rule.params.get("hysteresis_kw", 0.0))
                self._apply(conn, states, obs, report, rule.severity, rule.for_,
                            rule.keep_firing_for, hyst)
            # escalation: an offline alert still firing past its repair deadline
            for fp, row in list(states.items()):
                if row["kind"] not in OFFLINE_KINDS or fp.endswith("|overdue"):
                    continue
                over = row["state"] == "firing" and row["deadline"] is not None \
                    and now >= row["deadline"]
                ofp = fp + "|overdue"
                if not over and states.get(ofp, {}).get("state") not in ("pending", "firing"):
                    continue
                labels = {**row["labels"], "alertname": OVERDUE_ALERTNAME,
                          "severity": "critical"}
                self._apply(conn, states, Observation(
                    ofp, row["rule_id"], row["kind"], row["site_id"], row["subject"], labels,
                    over, now, value=row["value"], threshold=row["threshold"],
                    deadline=row["deadline"], evidence={"escalated": True}), report,
                    "critical", timedelta(0), timedelta(0))
            conn.commit()
            self._sync(conn, now, report)
        return report

    def _payload(self, row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """One alert for Alertmanager's ``POST /api/v2/alerts``. A firing alert starts
        ``now``, when it is posted, not when the data says it began (that is the ``since``
        annotation people read): Alertmanager flushes a new group at once, skipping
        ``group_wait``, when an alert's startsAt + group_wait is already past
        (dispatch.go, ``aggrGroup.insert``), and ``group_wait`` is what gives an inhibiting
        alert (a gateway down) time to reach the inhibitor before its targets (the
        gateway's meters) are notified. Alertmanager keeps the earliest startsAt of an
        alert it already holds, so re-posting does not move it."""
        labels = dict(row["labels"])
        ann = alert_annotations(row, self.settings.link_base)
        if row["state"] == "firing":
            starts = now
            ends = now + FIRING_TTL
        else:
            starts = row["firing_since"] or row["pending_since"] or now
            ends = max(row["resolved_at"] or now, starts + timedelta(seconds=1))
        return {"labels": labels, "annotations": ann, "startsAt": starts, "endsAt": ends,
                "generatorURL": ann["link"]}

    def _sync(self, conn: psycopg.Connection[Any], now: datetime, report: CycleReport) -> None:
        if self.am is None:
            return
        rows = q.to_sync(conn, now, RESEND.total_seconds())
        try:
            # silences of acknowledged alerts that resolved go first: Alertmanager would
            # otherwise drop the resolved notification of a still-silenced alert
            for s in q.acked_resolved(conn):
                self.am.expire_silence(s["silence_id"])
                q.clear_silence(conn, s["alert_id"])
            # one request, inhibiting alerts before the alerts they inhibit (routing.yaml's
            # inhibit_rules), so that the inhibitor's stream holds a source before its target
            ordered = sorted(rows, key=lambda r: self._inhibition_rank(
                str(r["labels"].get("alertname", ""))))
            self.am.post_alerts([self._payload(r, now) for r in ordered])
        except AlertmanagerError as exc:
            report.post_error = str(exc)
            log.warning("Alertmanager not updated (retried next cycle): %s", exc)
            conn.commit()
            return
        for state in ("firing", "resolved"):
            ids = [r["alert_id"] for r in rows if r["state"] == state]
            if ids:
                q.mark_synced(conn, ids, state, now)
        conn.commit()
        report.posted = len(rows)

    def run(self, stop: threading.Event | None = None, max_cycles: int | None = None) -> None:
        """Evaluate live rules every ``eval_s`` seconds and every rule every ``periodic_s``
        seconds until ``stop`` is set (or ``max_cycles`` cycles ran)."""
        stop = stop or threading.Event()
        last_periodic: datetime | None = None
        n = 0
        while not stop.is_set() and (max_cycles is None or n < max_cycles):
            now = self.clock()
            periodic = last_periodic is None or (now - last_periodic).total_seconds() \
                >= self.settings.periodic_s
            try:
                report = self.cycle(periodic=periodic, now=now)
            except psycopg.OperationalError as exc:
                log.warning("database unavailable, retrying: %s", exc)
            except Exception:  # a bad rule or row must not stop every other rule for good
                log.exception("evaluation cycle failed; retrying in %.0f s",
                              self.settings.eval_s)
            else:
                if periodic:
                    last_periodic = now
                for fp, ev in report.events:
                    log.info("%s: %s", fp, ev)
            n += 1
            stop.wait(self.settings.eval_s)


def inhibition_ranks(routing_path: Path) -> Callable[[str], int]:
    """alertname -> its depth in the inhibit rules of the routing file: 0 for an alert no
    rule inhibits, else one more than the deepest alertname that can inhibit it
    (``GatewayOffline`` 0, ``MeterOffline`` 1, ``SubmeterImbalance`` 2 with ours). Only the
    ``alertname`` matchers (``="X"``, ``=~"X|Y"``) of ``source_matchers`` and
    ``target_matchers`` are read; a routing file without them ranks everything 0."""
    try:
        doc = yaml.safe_load(routing_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return lambda name: 0

    def names(matchers: Any) -> list[str]:
        out: list[str] = []
        for m in matchers or []:
            found = re.fullmatch(r'\s*alertname\s*=~?\s*"([^"]*)"\s*', str(m))
            if found:
                out += [n for n in found.group(1).split("|") if re.fullmatch(r"\w+", n)]
        return out

    inhibited_by: dict[str, set[str]] = defaultdict(set)
    for rule in doc.get("inhibit_rules") or []:
        for target in names(rule.get("target_matchers")):
            inhibited_by[target].update(names(rule.get("source_matchers")))
    depth: dict[str, int] = {}
    for _ in range(len(inhibited_by) + 1):  # bounded: a cycle of rules stops growing here
        depth = {t: 1 + max((depth.get(src, 0) for src in srcs if src != t), default=-1)
                 for t, srcs in inhibited_by.items()}
    return lambda name: depth.get(name, 0)


SHANGHAI = ZoneInfo("Asia/Shanghai")
KIND_ZH = {
    "night_load": "夜间基础负荷偏高 night base load above typical",
    "offline": "表计离线 meter offline",
    "gateway_offline": "网关离线 gateway offline",
    "imbalance": "分项计量与总表不平衡 sub-meters do not add up",
    "indicator": "指标越限 indicator threshold",
    "completeness": "本月数据完整率不足 month completeness low",
    "estimated_share": "估算数据占比过高 estimated share high",
}


def _fmt(v: Any, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "share" or unit == "ratio":
        return f"{float(v) * 100:.1f} %"
    return f"{float(v):.2f} {unit}"


def alert_annotations(row: Mapping[str, Any], link_base: str) -> dict[str, str]:
    """Chinese (with English) annotations of one alert: what Alertmanager forwards to the
    e-mail, webhook and robot channels."""
    ev = row.get("evidence") or {}
    unit = str(ev.get("unit", ""))
    since = row.get("firing_since") or row.get("pending_since")
    overdue = row["labels"].get("alertname") == OVERDUE_ALERTNAME
    title = ("超过修复期限 repair deadline passed: " if overdue else "") + KIND_ZH.get(
        row["kind"], ALERTNAMES.get(row["kind"], row["kind"]))
    out = {
        "summary": f"{row['site_id']} {row['subject']}: {title}",
        "title_zh": title,
        "value": _fmt(row.get("value"), unit),
        "threshold": _fmt(row.get("threshold"), unit),
        "typical": _fmt(row.get("typical"), unit) if row.get("typical") is not None else "",
        "since": since.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") + " (北京时间)"
        if since else "",
        "deadline": row["deadline"].astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") +
        " (北京时间)" if row.get("deadline") else "",
        # the site's page of the web view (its alerts, live chart and sub-meter tree)
        "link": f"{link_base.rstrip('/')}/web/site/{row.get('site_id', '')}",
        "alert_id": str(row.get("alert_id", "")),
    }
    return out


def load_evaluator(database_url: str, registry: Registry, rules: Iterable[Rule],
                   settings: AlertSettings) -> Evaluator:
    """An evaluator posting to the configured Alertmanager."""
    return Evaluator(database_url, registry, list(rules), settings,
                     Alertmanager(settings.alertmanager_url))
