"""SQL of the reviewers' close (issue 12): the inputs of a site-month, bills, denominators,
the state of each month, frozen snapshots, restatements, API users and the append-only audit
log with its hash chain.

Every function takes an open psycopg connection (``dict_row`` rows) so that the API and the
CLI decide the transaction; nothing here commits. Months are the first day of the site's
local month; instants are UTC ``timestamptz``.

Audit hash chain: entry ``n`` stores ``prev_hash`` = hash of entry ``n - 1`` (64 zeros for the
first) and ``hash`` = SHA-256 over ``prev_hash`` + ``"\\n"`` + the canonical JSON of
``{seq, at, actor, action, site_id, month, details}`` (:func:`canonical_json`). Appends take a
transaction-level advisory lock, so ``seq`` has no gaps and the chain no forks.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[DictRow]
GENESIS_HASH = "0" * 64
_AUDIT_LOCK = 7_012_012  # advisory lock key of the audit chain


def connect(url: str) -> Conn:
    """A connection returning rows as dicts."""
    return psycopg.connect(url, row_factory=dict_row)


# --- canonical form and hashes ------------------------------------------------------------


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        # 6 decimals: far below any figure's precision, and stable through jsonb numeric
        return round(value, 6) + 0.0
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def normalise(value: Any) -> Any:
    """JSON-ready copy: floats rounded to 6 decimals, instants as ISO UTC, dates ISO."""
    return _normalise(value)


def canonical_json(value: Any) -> str:
    """The canonical text of a JSON value: normalised, keys sorted, no spaces, UTF-8
    characters kept (what snapshot and audit hashes are computed over)."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes of ``text``, lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def audit_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    """Hash of one audit entry chained to its predecessor's hash."""
    return sha256_hex(prev_hash + "\n" + canonical_json(entry))


# --- inputs of a site-month ---------------------------------------------------------------


def month_bounds(month: date, timezone: str) -> tuple[datetime, datetime]:
    """UTC start and end of the local calendar month that ``month`` falls in."""
    tz = ZoneInfo(timezone)
    start = datetime(month.year, month.month, 1, tzinfo=tz)
    nxt = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), nxt.astimezone(UTC)


@dataclass(frozen=True)
class MonthInputs:
    """Rows the close of one site-month is computed from (see :mod:`analytics.monthly`)."""

    site: dict[str, Any]
    month: date
    start: datetime
    end: datetime
    until: datetime
    expected_intervals_per_meter: int
    energy: list[dict[str, Any]]
    emissions: list[dict[str, Any]]
    meters: list[dict[str, Any]]
    instruments: list[dict[str, Any]]
    denominators: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    quarantined: list[dict[str, Any]]
    remainders: list[dict[str, Any]]
    newest_update: datetime | None


def get_site(conn: Conn, site_id: str) -> dict[str, Any] | None:
    """One site's row, or None."""
    return conn.execute(
        "SELECT site_id, name, site_type, province, city, baseline_year, timezone, boundary,"
        " factor_overrides FROM sites WHERE site_id = %s", (site_id,)).fetchone()


def load_month_inputs(conn: Conn, site_id: str, month: date, interval_s: int = 900,
                      now: datetime | None = None) -> MonthInputs:
    """Everything the close of ``site_id`` for the local month of ``month`` needs; a month
    still running is read up to ``now`` (its expected interval count is month-to-date)."""
    site = get_site(conn, site_id)
    if site is None:
        raise LookupError(f"unknown site {site_id!r}")
    first = date(month.year, month.month, 1)
    start, end = month_bounds(first, site["timezone"])
    until = min(end, now or datetime.now(UTC))
    expected = max(int((until - start).total_seconds() // interval_s), 0)
    period = {"site": site_id, "start": start, "end": until, "tz": site["timezone"]}
    energy = conn.execute(
        "SELECT meter_id, carrier, quantity, estimated_quantity, energy_tce, quality,"
        " revision FROM energy_intervals WHERE site_id = %(site)s"
        " AND interval_start >= %(start)s AND interval_start < %(end)s", period).fetchall()
    emissions = conn.execute(
        "SELECT meter_id, method, scope, emissions_kgco2, factor_id, factor_version,"
        " factor_value, factor_unit FROM emission_intervals WHERE site_id = %(site)s"
        " AND interval_start >= %(start)s AND interval_start < %(end)s", period).fetchall()
    meters = conn.execute(
        "SELECT meter_id, carrier, parent_id, canonical_unit FROM meters WHERE site_id = %s"
        " ORDER BY meter_id", (site_id,)).fetchall()
    instruments = conn.execute(
        "SELECT kind, quantity, period_start, period_end, retired FROM instruments"
        " WHERE site_id = %s", (site_id,)).fetchall()
    denominators = conn.execute(
        "SELECT kind, value, unit FROM denominators WHERE site_id = %s AND month = %s",
        (site_id, first)).fetchall()
    # daily sums of the boundary meters per local day, from raw intervals grouped in SQL
    # (a different route than the monthly polars sum: the check compares the two)
    daily = conn.execute(
        "SELECT (e.interval_start AT TIME ZONE %(tz)s)::date AS day, e.carrier,"
        " sum(e.quantity) AS quantity FROM energy_intervals e"
        " JOIN meters m ON m.meter_id = e.meter_id AND m.parent_id IS NULL"
        " WHERE e.site_id = %(site)s AND e.interval_start >= %(start)s"
        " AND e.interval_start < %(end)s GROUP BY 1, 2 ORDER BY 1, 2", period).fetchall()
    # readings of this site's meters kept out of the figures (spikes, too late, ...):
    # dead letters naming one of the site's meters, received during the month
    quarantined = conn.execute(
        "SELECT d.meter_id, d.code, count(*) AS n FROM dead_letters d"
        " JOIN meters m ON m.meter_id = d.meter_id AND m.site_id = %(site)s"
        " WHERE d.received_at >= %(start)s AND d.received_at < %(end)s"
        " GROUP BY d.meter_id, d.code ORDER BY 1, 2", period).fetchall()
    remainders = conn.execute(
        "SELECT parent_id, carrier, quantity_unit, sum(parent_quantity) AS parent_quantity,"
        " sum(children_quantity) AS children_quantity,"
        " sum(unmetered_quantity) AS unmetered_quantity FROM submeter_reconciliation"
        " WHERE site_id = %(site)s AND interval_start >= %(start)s"
        " AND interval_start < %(end)s GROUP BY 1, 2, 3 ORDER BY 1", period).fetchall()
    newest = conn.execute(
        "SELECT greatest((SELECT max(updated_at) FROM energy_intervals WHERE site_id = %(site)s"
        " AND interval_start >= %(start)s AND interval_start < %(end)s),"
        " (SELECT max(updated_at) FROM emission_intervals WHERE site_id = %(site)s"
        " AND interval_start >= %(start)s AND interval_start < %(end)s)) AS t",
        period).fetchone()
    return MonthInputs(
        site=dict(site), month=first, start=start, end=end, until=until,
        expected_intervals_per_meter=expected, energy=energy, emissions=emissions,
        meters=meters, instruments=instruments, denominators=denominators, daily=daily,
        quarantined=quarantined, remainders=remainders,
        newest_update=newest["t"] if newest else None)


def changed_since(conn: Conn, site_id: str, start: datetime, end: datetime,
                  since: datetime) -> dict[str, Any]:
    """How many energy and emission interval rows of the period were written after
    ``since``, and which recomputes (``recompute_audit`` ids) touched it since (the reason a
    frozen month's live figures moved)."""
    p = {"site": site_id, "start": start, "end": end, "since": since}
    row = conn.execute(
        "SELECT (SELECT count(*) FROM energy_intervals WHERE site_id = %(site)s"
        " AND interval_start >= %(start)s AND interval_start < %(end)s"
        " AND updated_at > %(since)s) AS energy_rows,"
        " (SELECT count(*) FROM emission_intervals WHERE site_id = %(site)s"
        " AND interval_start >= %(start)s AND interval_start < %(end)s"
        " AND updated_at > %(since)s) AS emission_rows,"
        " (SELECT coalesce(array_agg(audit_id ORDER BY audit_id), '{}') FROM recompute_audit"
        " WHERE site_id = %(site)s AND period_start < %(end)s AND period_end > %(start)s"
        " AND done_at > %(since)s) AS recomputes", p).fetchone()
    if row is None:
        return {"energy_rows": 0, "emission_rows": 0, "recomputes": []}
    return {"energy_rows": int(row["energy_rows"]), "emission_rows": int(row["emission_rows"]),
            "recomputes": [int(x) for x in row["recomputes"]]}


# alert kinds that speak of the data's quality (alerts/rules.yaml); the others (night load,
# offline, imbalance, indicators) are for the facility staff, not a reason to hold a month
DATA_QUALITY_KINDS = ("completeness", "estimated_share")


def open_alerts(conn: Conn, site_id: str, month_start: datetime | None = None) -> int | None:
    """Firing data-quality alerts of a site (:data:`DATA_QUALITY_KINDS`; about the month
    starting at ``month_start`` [UTC] when given), or None when there is no ``alerts`` table
    (migration 011 not applied)."""
    exists = conn.execute("SELECT to_regclass('alerts') IS NOT NULL AS ok").fetchone()
    if exists is None or exists["ok"] is not True:
        return None
    sql = ("SELECT count(*) AS n FROM alerts WHERE site_id = %s AND state = 'firing'"
           " AND kind = ANY(%s)")
    params: list[Any] = [site_id, list(DATA_QUALITY_KINDS)]
    if month_start is not None:
        sql += " AND (evidence->>'month_start')::timestamptz = %s"
        params.append(month_start)
    row = conn.execute(sql, params).fetchone()
    return int(row["n"]) if row else 0


def list_open_alerts(conn: Conn, site_id: str) -> list[dict[str, Any]] | None:
    """The alerts rows of a site (newest first, at most 200), or None without the table."""
    if open_alerts(conn, site_id) is None:
        return None
    return list(conn.execute("SELECT * FROM alerts WHERE site_id = %s LIMIT 200",
                             (site_id,)).fetchall())


# --- sites, meters, denominators ----------------------------------------------------------


def list_sites(conn: Conn, sites: list[str] | None) -> list[dict[str, Any]]:
    """Sites in scope (``None`` = every site)."""
    return list(conn.execute(
        "SELECT site_id, name, site_type, province, city, baseline_year, timezone FROM sites"
        " WHERE %(all)s OR site_id = ANY(%(sites)s) ORDER BY site_id",
        {"all": sites is None, "sites": sites or []}).fetchall())


def list_meters(conn: Conn, site_id: str) -> list[dict[str, Any]]:
    """The meters of a site."""
    return list(conn.execute(
        "SELECT meter_id, carrier, unit, canonical_unit, gateway_id, parent_id, group_name"
        " FROM meters WHERE site_id = %s ORDER BY meter_id", (site_id,)).fetchall())


def list_denominators(conn: Conn, site_id: str) -> list[dict[str, Any]]:
    """A site's monthly denominators (population, floor area, GDP, ...)."""
    return list(conn.execute(
        "SELECT kind, month, value, unit, source FROM denominators WHERE site_id = %s"
        " ORDER BY month, kind", (site_id,)).fetchall())


def set_denominator(conn: Conn, site_id: str, kind: str, month: date, value: float,
                    unit: str, source: str) -> None:
    """Insert or replace a denominator of a month."""
    conn.execute(
        "INSERT INTO denominators (site_id, kind, month, value, unit, source)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (site_id, kind, month) DO UPDATE SET"
        " value = excluded.value, unit = excluded.unit, source = excluded.source",
        (site_id, kind, month, value, unit, source))


# --- bills --------------------------------------------------------------------------------


def add_bill(conn: Conn, site_id: str, month: date, carrier: str, quantity: float,
             unit: str, entered_by: str, amount_cny: float | None = None,
             reference: str | None = None) -> int:
    """Store a bill (a correction is a new row; history kept). Returns its id."""
    row = conn.execute(
        "INSERT INTO utility_bills (site_id, month, carrier, quantity, unit, amount_cny,"
        " reference, entered_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING bill_id",
        (site_id, month, carrier, quantity, unit, amount_cny, reference, entered_by)
    ).fetchone()
    assert row is not None
    return int(row["bill_id"])


def list_bills(conn: Conn, site_id: str, month: date | None = None) -> list[dict[str, Any]]:
    """Every bill row of a site (or of one month), with ``current`` = the newest of its
    (month, carrier)."""
    return list(conn.execute(
        "SELECT bill_id, site_id, month, carrier, quantity, unit, amount_cny, reference,"
        " entered_by, entered_at, bill_id = max(bill_id) OVER (PARTITION BY month, carrier)"
        " AS current FROM utility_bills WHERE site_id = %(site)s"
        " AND (%(month)s::date IS NULL OR month = %(month)s::date)"
        " ORDER BY month, carrier, bill_id", {"site": site_id, "month": month}).fetchall())


# --- month state, snapshots, restatements -------------------------------------------------


def get_close(conn: Conn, site_id: str, month: date, *, for_update: bool = False
              ) -> dict[str, Any]:
    """The state row of a site-month (a draft row is created on first use)."""
    conn.execute("INSERT INTO month_closes (site_id, month) VALUES (%s, %s)"
                 " ON CONFLICT DO NOTHING", (site_id, month))
    row = conn.execute(
        "SELECT * FROM month_closes WHERE site_id = %s AND month = %s"
        + (" FOR UPDATE" if for_update else ""), (site_id, month)).fetchone()
    assert row is not None
    return dict(row)


def peek_close(conn: Conn, site_id: str, month: date) -> dict[str, Any] | None:
    """The state row of a site-month without creating it."""
    row = conn.execute("SELECT * FROM month_closes WHERE site_id = %s AND month = %s",
                       (site_id, month)).fetchone()
    return dict(row) if row else None


def list_closes(conn: Conn, sites: list[str] | None, site_id: str | None = None
                ) -> list[dict[str, Any]]:
    """State rows in scope (``None`` = every site), optionally of one site."""
    return list(conn.execute(
        "SELECT site_id, month, state, version, submitted_by, submitted_at, returned_by,"
        " returned_at, comment, verified_by, verified_at FROM month_closes"
        " WHERE (%(all)s OR site_id = ANY(%(sites)s))"
        " AND (%(site)s::text IS NULL OR site_id = %(site)s::text) ORDER BY site_id, month",
        {"all": sites is None, "sites": sites or [], "site": site_id}).fetchall())


def update_close(conn: Conn, site_id: str, month: date, **values: Any) -> None:
    """Set columns of a month's state row (and ``updated_at``)."""
    allowed = {"state", "version", "submitted_by", "submitted_at", "returned_by",
               "returned_at", "comment", "verified_by", "verified_at"}
    bad = set(values) - allowed
    if bad:
        raise ValueError(f"not a month_closes column: {sorted(bad)}")
    sets = ", ".join(f"{k} = %({k})s" for k in values)
    conn.execute(f"UPDATE month_closes SET {sets}, updated_at = now()"
                 " WHERE site_id = %(site_id_)s AND month = %(month_)s",
                 {**values, "site_id_": site_id, "month_": month})


def add_snapshot(conn: Conn, site_id: str, month: date, version: int, canonical: str,
                 verified_by: str, verified_at: datetime, reason: str,
                 audit_seq: int | None) -> str:
    """Freeze a version of a month's figures; returns its SHA-256."""
    digest = sha256_hex(canonical)
    conn.execute(
        "INSERT INTO close_snapshots (site_id, month, version, canonical, sha256, verified_by,"
        " verified_at, reason, audit_seq) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (site_id, month, version, canonical, digest, verified_by, verified_at, reason,
         audit_seq))
    return digest


def list_snapshots(conn: Conn, site_id: str, month: date | None = None
                   ) -> list[dict[str, Any]]:
    """Frozen versions of a site (or of one month), oldest first."""
    return list(conn.execute(
        "SELECT site_id, month, version, canonical, sha256, verified_by, verified_at, reason,"
        " audit_seq FROM close_snapshots WHERE site_id = %(site)s"
        " AND (%(month)s::date IS NULL OR month = %(month)s::date) ORDER BY month, version",
        {"site": site_id, "month": month}).fetchall())


def all_snapshots(conn: Conn) -> list[dict[str, Any]]:
    """Every snapshot (for ``nzc audit verify``)."""
    return list(conn.execute(
        "SELECT site_id, month, version, canonical, sha256, audit_seq FROM close_snapshots"
        " ORDER BY site_id, month, version").fetchall())


def verified_months(conn: Conn, site_id: str, year: int) -> list[dict[str, Any]]:
    """The current snapshot of every verified month of a site's local year."""
    return list(conn.execute(
        "SELECT s.month, s.version, s.canonical, s.sha256, s.verified_by, s.verified_at"
        " FROM month_closes c JOIN close_snapshots s ON s.site_id = c.site_id"
        " AND s.month = c.month AND s.version = c.version"
        " WHERE c.site_id = %s AND c.state = 'verified'"
        " AND c.month >= make_date(%s, 1, 1) AND c.month < make_date(%s + 1, 1, 1)"
        " ORDER BY s.month", (site_id, year, year)).fetchall())


def get_restatement(conn: Conn, restatement_id: int, *, for_update: bool = False
                    ) -> dict[str, Any] | None:
    """One restatement."""
    row = conn.execute("SELECT * FROM restatements WHERE restatement_id = %s"
                       + (" FOR UPDATE" if for_update else ""), (restatement_id,)).fetchone()
    return dict(row) if row else None


def restatement_site(conn: Conn, restatement_id: int) -> str | None:
    """The site of a restatement (for scoping), or None."""
    row = conn.execute("SELECT site_id FROM restatements WHERE restatement_id = %s",
                       (restatement_id,)).fetchone()
    return str(row["site_id"]) if row else None


def list_restatements(conn: Conn, site_id: str, month: date | None = None
                      ) -> list[dict[str, Any]]:
    """Restatements of a site (or month), newest first."""
    return list(conn.execute(
        "SELECT restatement_id, site_id, month, from_version, state, old_figures,"
        " new_figures, differences, reason, new_sha256, opened_at, decided_by, decided_at,"
        " comment FROM restatements WHERE site_id = %(site)s"
        " AND (%(month)s::date IS NULL OR month = %(month)s::date)"
        " ORDER BY restatement_id DESC", {"site": site_id, "month": month}).fetchall())


def upsert_open_restatement(conn: Conn, site_id: str, month: date, from_version: int,
                            old: Any, new: Any, differences: Any, reason: str,
                            new_canonical: str) -> tuple[int, bool]:
    """Open a restatement of a frozen month, or refresh the open one with the newest live
    figures. Returns (id, created)."""
    digest = sha256_hex(new_canonical)
    row = conn.execute(
        "SELECT restatement_id FROM restatements WHERE site_id = %s AND month = %s"
        " AND state = 'open' FOR UPDATE", (site_id, month)).fetchone()
    if row:
        conn.execute(
            "UPDATE restatements SET new_figures = %s, differences = %s, reason = %s,"
            " new_canonical = %s, new_sha256 = %s, from_version = %s"
            " WHERE restatement_id = %s",
            (Jsonb(normalise(new)), Jsonb(normalise(differences)), reason, new_canonical,
             digest, from_version, row["restatement_id"]))
        return int(row["restatement_id"]), False
    got = conn.execute(
        "INSERT INTO restatements (site_id, month, from_version, old_figures, new_figures,"
        " differences, reason, new_canonical, new_sha256) VALUES (%s, %s, %s, %s, %s, %s,"
        " %s, %s, %s) RETURNING restatement_id",
        (site_id, month, from_version, Jsonb(normalise(old)), Jsonb(normalise(new)),
         Jsonb(normalise(differences)), reason, new_canonical, digest)).fetchone()
    assert got is not None
    return int(got["restatement_id"]), True


def rejected_before(conn: Conn, site_id: str, month: date, new_sha256: str) -> bool:
    """Whether exactly these new figures were already rejected for this month."""
    return conn.execute(
        "SELECT 1 FROM restatements WHERE site_id = %s AND month = %s AND state = 'rejected'"
        " AND new_sha256 = %s", (site_id, month, new_sha256)).fetchone() is not None


def decide_restatement(conn: Conn, restatement_id: int, state: str, by: str,
                       comment: str | None) -> None:
    """Close a restatement as accepted or rejected."""
    conn.execute(
        "UPDATE restatements SET state = %s, decided_by = %s, decided_at = now(),"
        " comment = %s WHERE restatement_id = %s AND state = 'open'",
        (state, by, comment, restatement_id))


# --- users --------------------------------------------------------------------------------


def add_user(conn: Conn, name: str, role: str, sites: list[str], token_key: str,
             token_hash: str) -> int:
    """Create an API user (or give a deleted name a new life with a new token)."""
    row = conn.execute(
        "INSERT INTO api_users (name, role, sites, token_key, token_hash)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
        " sites = excluded.sites, token_key = excluded.token_key,"
        " token_hash = excluded.token_hash, deleted_at = NULL, created_at = now()"
        " RETURNING user_id", (name, role, sites, token_key, token_hash)).fetchone()
    assert row is not None
    return int(row["user_id"])


def delete_user(conn: Conn, name: str) -> bool:
    """Mark a user deleted (its token stops working at once). False if none was active."""
    cur = conn.execute("UPDATE api_users SET deleted_at = now() WHERE name = %s"
                       " AND deleted_at IS NULL", (name,))
    return cur.rowcount > 0


def user_by_key(conn: Conn, token_key: str) -> dict[str, Any] | None:
    """The active user owning a token key, or None."""
    row = conn.execute("SELECT user_id, name, role, sites, token_hash FROM api_users"
                       " WHERE token_key = %s AND deleted_at IS NULL", (token_key,)).fetchone()
    return dict(row) if row else None


def list_users(conn: Conn) -> list[dict[str, Any]]:
    """Every user (no hashes)."""
    return list(conn.execute("SELECT user_id, name, role, sites, created_at, deleted_at"
                             " FROM api_users ORDER BY name").fetchall())


# --- audit log ----------------------------------------------------------------------------


def append_audit(conn: Conn, actor: str, action: str, site_id: str | None = None,
                 month: date | None = None, details: dict[str, Any] | None = None) -> int:
    """Append an entry to the audit log, chained to the previous one; returns its seq.
    Runs inside the caller's transaction (the entry lands with the action or not at all)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_AUDIT_LOCK,))
    last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq = int(last["seq"]) + 1 if last else 1
    prev = str(last["hash"]) if last else GENESIS_HASH
    at = datetime.now(UTC)
    det = normalise(details or {})
    entry = {"seq": seq, "at": at, "actor": actor, "action": action, "site_id": site_id,
             "month": month, "details": det}
    digest = audit_hash(prev, entry)
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, site_id, month, details, prev_hash,"
        " hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (seq, at, actor, action, site_id, month, Jsonb(det), prev, digest))
    return seq


def read_audit(conn: Conn, sites: list[str] | None = None, site_id: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
    """Audit entries, newest first: all (``sites`` None) or those of the given sites."""
    return list(conn.execute(
        "SELECT seq, at, actor, action, site_id, month, details, hash FROM audit_log"
        " WHERE (%(all)s OR site_id = ANY(%(sites)s))"
        " AND (%(site)s::text IS NULL OR site_id = %(site)s::text)"
        " ORDER BY seq DESC LIMIT %(limit)s",
        {"all": sites is None, "sites": sites or [], "site": site_id, "limit": limit}
    ).fetchall())


def last_audit(conn: Conn, site_id: str, month: date, action: str) -> dict[str, Any] | None:
    """The newest audit entry of an action for a site-month."""
    row = conn.execute(
        "SELECT seq, at, actor, details FROM audit_log WHERE site_id = %s AND month = %s"
        " AND action = %s ORDER BY seq DESC LIMIT 1", (site_id, month, action)).fetchone()
    return dict(row) if row else None


def audit_chain(conn: Conn) -> list[dict[str, Any]]:
    """The whole audit log in order (for verification)."""
    return list(conn.execute(
        "SELECT seq, at, actor, action, site_id, month, details, prev_hash, hash"
        " FROM audit_log ORDER BY seq").fetchall())


def verify_audit(conn: Conn) -> list[str]:
    """Problems found in the audit log and in the snapshots' anchors (empty = intact):
    a missing sequence number (a removed entry), a hash that does not match the entry (an
    altered entry), a broken link, a snapshot whose text no longer matches its hash, or a
    snapshot whose anchoring audit entry is gone (a cut-off tail)."""
    problems: list[str] = []
    prev_hash, expected_seq = GENESIS_HASH, 1
    by_seq: dict[int, str] = {}
    for row in audit_chain(conn):
        seq = int(row["seq"])
        if seq != expected_seq:
            problems.append(f"entries {expected_seq}..{seq - 1} are missing (removed)")
        if row["prev_hash"] != prev_hash:
            problems.append(f"entry {seq}: prev_hash does not match the previous entry")
        entry = {"seq": seq, "at": row["at"], "actor": row["actor"], "action": row["action"],
                 "site_id": row["site_id"], "month": row["month"], "details": row["details"]}
        if audit_hash(row["prev_hash"], entry) != row["hash"]:
            problems.append(f"entry {seq} ({row['action']}): content does not match its hash"
                            " (altered)")
        by_seq[seq] = row["hash"]
        prev_hash, expected_seq = row["hash"], seq + 1
    for s in all_snapshots(conn):
        label = f"snapshot {s['site_id']} {s['month']:%Y-%m} v{s['version']}"
        if sha256_hex(s["canonical"]) != s["sha256"]:
            problems.append(f"{label}: text does not match its SHA-256 (altered)")
        if s["audit_seq"] is not None and int(s["audit_seq"]) not in by_seq:
            problems.append(f"{label}: its audit entry {s['audit_seq']} is gone")
    return problems
