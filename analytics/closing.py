"""The reviewers' close as actions on the database: compute a month with its checks, submit,
return, verify (freeze), scan frozen months for restatements, accept or reject them, enter
bills, assemble the annual disclosure. Each action runs in one transaction with its audit
entry (:func:`db.review.append_audit`), so an action without its entry cannot happen.

Who may do what is decided by the caller (the API's single authorisation dependency, or the
operator at the CLI); these functions take the actor's name for the record.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from analytics.close import close_inputs
from analytics.review import (
    ReviewConfig,
    TransitionError,
    annual_disclosure,
    compare_figures,
    month_document,
    next_state,
    restatement_reason,
    run_checks,
    self_evaluation,
    snapshot_document,
)
from db import review as dbr
from db.review import Conn, canonical_json, sha256_hex


class ChecksFailed(ValueError):
    """Submission refused: the failed checks, in words."""

    def __init__(self, checks: list[dict[str, Any]]) -> None:
        self.checks = checks
        failed = [c for c in checks if not c["passed"]]
        super().__init__("检查未通过，不能提交 / checks failed, cannot submit: "
                         + " | ".join(f"{c['check']}: {c['message']}" for c in failed))


@dataclass(frozen=True)
class MonthView:
    """What a reader sees of a month: live figures and checks for an open month, the
    snapshot for a frozen one."""

    state: dict[str, Any]
    document: dict[str, Any]
    checks: list[dict[str, Any]]
    frozen: bool
    sha256: str | None
    open_restatement: int | None


def parse_month(text: str) -> date:
    """``YYYY-MM`` -> first day of that month."""
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError as exc:
        raise ValueError(f"month {text!r}: expected YYYY-MM") from exc


def compute(conn: Conn, site_id: str, month: date, interval_s: int,
            config: ReviewConfig, now: datetime | None = None
            ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Live figures document and checks of a site-month."""
    inputs = dbr.load_month_inputs(conn, site_id, month, interval_s, now)
    doc = month_document(inputs, close_inputs(inputs))
    bills = dbr.list_bills(conn, site_id, inputs.month)
    checks = run_checks(inputs, doc, bills, dbr.open_alerts(conn, site_id, inputs.start),
                        config)
    return doc, checks


def _current_snapshot(conn: Conn, site_id: str, month: date, version: int
                      ) -> dict[str, Any] | None:
    for s in dbr.list_snapshots(conn, site_id, month):
        if s["version"] == version:
            return s
    return None


def view_month(conn: Conn, site_id: str, month: date, interval_s: int,
               config: ReviewConfig) -> MonthView:
    """A month as a reader sees it (frozen months only from their snapshot)."""
    state = dbr.peek_close(conn, site_id, month) or {
        "site_id": site_id, "month": month, "state": "draft", "version": 0}
    if state["state"] == "verified":
        snap = _current_snapshot(conn, site_id, month, state["version"])
        assert snap is not None, "a verified month always has its snapshot"
        body = json.loads(snap["canonical"])
        open_r = [r for r in dbr.list_restatements(conn, site_id, month)
                  if r["state"] == "open"]
        return MonthView(state, body["close"], body["checks"], True, snap["sha256"],
                         open_r[0]["restatement_id"] if open_r else None)
    doc, checks = compute(conn, site_id, month, interval_s, config)
    return MonthView(state, doc, checks, False, None, None)


def submit(conn: Conn, site_id: str, month: date, actor: str, interval_s: int,
           config: ReviewConfig) -> dict[str, Any]:
    """Submit a draft or returned month; refused with reasons when a check fails."""
    state = dbr.get_close(conn, site_id, month, for_update=True)
    target = next_state("submit", state["state"])
    doc, checks = compute(conn, site_id, month, interval_s, config)
    if not all(c["passed"] for c in checks):
        raise ChecksFailed(checks)
    now = datetime.now(UTC)
    dbr.update_close(conn, site_id, month, state=target, submitted_by=actor,
                     submitted_at=now, comment=None)
    digest = sha256_hex(canonical_json(snapshot_document(doc, checks)))
    dbr.append_audit(conn, actor, "close.submit", site_id, month,
                     {"figures_sha256": digest,
                      "checks": {c["check"]: c["passed"] for c in checks}})
    return dbr.get_close(conn, site_id, month)


def return_month(conn: Conn, site_id: str, month: date, actor: str, comment: str
                 ) -> dict[str, Any]:
    """Return a submitted month to the site with the reviewer's comments."""
    if not comment.strip():
        raise ValueError("退回需要意见 / a return needs a comment")
    state = dbr.get_close(conn, site_id, month, for_update=True)
    target = next_state("return", state["state"])
    dbr.update_close(conn, site_id, month, state=target, returned_by=actor,
                     returned_at=datetime.now(UTC), comment=comment)
    dbr.append_audit(conn, actor, "close.return", site_id, month, {"comment": comment})
    return dbr.get_close(conn, site_id, month)


def verify(conn: Conn, site_id: str, month: date, actor: str, interval_s: int,
           config: ReviewConfig) -> dict[str, Any]:
    """Verify a submitted month: freeze its figures as snapshot version 1 (SHA-256 over the
    canonical text), with the reviewer and the time."""
    state = dbr.get_close(conn, site_id, month, for_update=True)
    target = next_state("verify", state["state"])
    doc, checks = compute(conn, site_id, month, interval_s, config)
    canonical = canonical_json(snapshot_document(doc, checks))
    submitted = dbr.last_audit(conn, site_id, month, "close.submit")
    if submitted and submitted["details"].get("figures_sha256") != sha256_hex(canonical):
        raise TransitionError(
            "提交后数据已变化，请退回后重新提交 / the figures changed since they were "
            f"submitted by {submitted['actor']} (new data or factors): return the month so "
            "that it is checked and submitted again")
    now = datetime.now(UTC)
    version = int(state["version"]) + 1
    seq = dbr.append_audit(conn, actor, "close.verify", site_id, month,
                           {"version": version, "sha256": sha256_hex(canonical)})
    digest = dbr.add_snapshot(conn, site_id, month, version, canonical, actor, now,
                              "verified", seq)
    dbr.update_close(conn, site_id, month, state=target, version=version, verified_by=actor,
                     verified_at=now)
    return {**dbr.get_close(conn, site_id, month), "sha256": digest}


def scan_restatements(conn: Conn, site_id: str, interval_s: int, config: ReviewConfig,
                      actor: str = "system") -> list[dict[str, Any]]:
    """Compare every frozen month of a site with its live figures; where they differ, open
    (or refresh) a restatement with old vs new figures and the reason. The snapshot is never
    touched."""
    out = []
    for c in dbr.list_closes(conn, [site_id]):
        if c["state"] != "verified":
            continue
        snap = _current_snapshot(conn, site_id, c["month"], c["version"])
        assert snap is not None
        old = json.loads(snap["canonical"])
        doc, checks = compute(conn, site_id, c["month"], interval_s, config)
        new = snapshot_document(doc, checks)
        diffs = compare_figures(old["close"], doc)
        if not diffs:
            continue
        canonical = canonical_json(new)
        if dbr.rejected_before(conn, site_id, c["month"], sha256_hex(canonical)):
            continue
        changed = dbr.changed_since(conn, site_id, *dbr.month_bounds(
            c["month"], old["close"]["timezone"]), since=snap["verified_at"])
        reason = restatement_reason(old["close"], doc, changed)
        rid, created = dbr.upsert_open_restatement(
            conn, site_id, c["month"], c["version"], old["close"]["figures"], doc["figures"],
            diffs, reason, canonical)
        dbr.append_audit(conn, actor, "restatement.open" if created else "restatement.refresh",
                         site_id, c["month"], {"restatement_id": rid,
                                               "figures_changed": len(diffs)})
        out.append({"restatement_id": rid, "month": c["month"], "created": created,
                    "differences": diffs, "reason": reason})
    return out


def scan_all(conn: Conn, interval_s: int, config: ReviewConfig, actor: str = "system"
             ) -> list[dict[str, Any]]:
    """:func:`scan_restatements` for every site that has a verified month."""
    sites = sorted({c["site_id"] for c in dbr.list_closes(conn, None)
                    if c["state"] == "verified"})
    return [r for site_id in sites
            for r in scan_restatements(conn, site_id, interval_s, config, actor)]


def decide(conn: Conn, restatement_id: int, accept: bool, actor: str,
           comment: str | None) -> dict[str, Any]:
    """Accept (a new snapshot version; the old kept) or reject an open restatement."""
    r = dbr.get_restatement(conn, restatement_id, for_update=True)
    if r is None:
        raise LookupError(f"no restatement {restatement_id}")
    if r["state"] != "open":
        raise TransitionError(f"重述已{r['state']} / restatement {restatement_id} is already "
                              f"{r['state']}")
    state = dbr.get_close(conn, r["site_id"], r["month"], for_update=True)
    if accept:
        version = int(state["version"]) + 1
        now = datetime.now(UTC)
        seq = dbr.append_audit(conn, actor, "restatement.accept", r["site_id"], r["month"],
                               {"restatement_id": restatement_id, "version": version,
                                "sha256": r["new_sha256"], "comment": comment})
        dbr.add_snapshot(conn, r["site_id"], r["month"], version, r["new_canonical"], actor,
                         now, f"restatement {restatement_id}: {r['reason']}", seq)
        dbr.update_close(conn, r["site_id"], r["month"], version=version, verified_by=actor,
                         verified_at=now)
    else:
        dbr.append_audit(conn, actor, "restatement.reject", r["site_id"], r["month"],
                         {"restatement_id": restatement_id, "comment": comment})
    dbr.decide_restatement(conn, restatement_id, "accepted" if accept else "rejected", actor,
                           comment)
    got = dbr.get_restatement(conn, restatement_id)
    assert got is not None
    return got


def enter_bill(conn: Conn, site_id: str, month: date, carrier: str, quantity: float,
               unit: str, actor: str, amount_cny: float | None = None,
               reference: str | None = None, via: str = "api") -> int:
    """Store a bill with its audit entry."""
    if quantity < 0:
        raise ValueError(f"bill quantity {quantity} < 0")
    bill_id = dbr.add_bill(conn, site_id, month, carrier, quantity, unit, actor, amount_cny,
                           reference)
    dbr.append_audit(conn, actor, "bill.enter", site_id, month,
                     {"bill_id": bill_id, "carrier": carrier, "quantity": quantity,
                      "unit": unit, "via": via})
    return bill_id


BILL_COLUMNS = ("site_id", "month", "carrier", "quantity", "unit")


def import_bills(conn: Conn, path: Path, actor: str) -> list[int]:
    """Import a CSV of bills (columns site_id, month YYYY-MM, carrier, quantity, unit and
    optionally amount_cny, reference). All rows or none; a bad row names its line."""
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in BILL_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (need {list(BILL_COLUMNS)})")
    ids = []
    for line, row in enumerate(reader, start=2):
        try:
            month = parse_month(row["month"].strip())
            qty = float(row["quantity"])
            amount = float(row["amount_cny"]) if row.get("amount_cny") else None
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from exc
        if dbr.get_site(conn, row["site_id"]) is None:
            raise ValueError(f"{path}:{line}: unknown site {row['site_id']!r}")
        ids.append(enter_bill(conn, row["site_id"].strip(), month, row["carrier"].strip(), qty,
                              row["unit"].strip(), actor, amount, row.get("reference") or None,
                              via=f"import {path.name}"))
    return ids


def disclosure(conn: Conn, site_id: str, year: int) -> dict[str, Any]:
    """The annual disclosure of a site from its verified months."""
    site = dbr.get_site(conn, site_id)
    if site is None:
        raise LookupError(f"unknown site {site_id!r}")
    months = [{**m, "doc": json.loads(m["canonical"])}
              for m in dbr.verified_months(conn, site_id, year)]
    return annual_disclosure(site, year, months)


def evaluation(conn: Conn, site_id: str, year: int) -> dict[str, Any]:
    """Self-evaluation figures: the site's baseline year vs ``year``."""
    site = dbr.get_site(conn, site_id)
    if site is None:
        raise LookupError(f"unknown site {site_id!r}")
    return self_evaluation(site, disclosure(conn, site_id, int(site["baseline_year"])),
                           disclosure(conn, site_id, year))


def monthly_rows(conn: Conn, site_id: str, year: int, interval_s: int,
                 config: ReviewConfig, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per figure and month of a year (months up to now), with quality columns:
    frozen months from their snapshot, the others live."""
    rows = []
    current = now or datetime.now(UTC)
    for k in range(1, 13):
        month = date(year, k, 1)
        if month > current.date():
            break
        v = view_month(conn, site_id, month, interval_s, config)
        for name, fig in v.document["figures"].items():
            q = fig.get("quality", {})
            rows.append({
                "site_id": site_id, "month": f"{month:%Y-%m}", "state": v.state["state"],
                "version": v.state.get("version", 0), "figure": name, "value": fig["value"],
                "unit": fig["unit"], "completeness": q.get("completeness"),
                "estimated_share": q.get("estimated_share"),
                "quarantined_readings": q.get("quarantined_readings"),
                "factor_versions": "; ".join(q.get("factor_versions", [])),
                "snapshot_sha256": v.sha256 or "",
            })
    return rows


EXPORT_COLUMNS = ("site_id", "month", "state", "version", "figure", "value", "unit",
                  "completeness", "estimated_share", "quarantined_readings",
                  "factor_versions", "snapshot_sha256")
