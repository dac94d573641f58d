"""SQL of the alert evaluator, the acknowledgement CLI and the robot receiver (issue 13).

Tables (migration 011): ``alert_rules``, ``alerts`` (one row per rule and subject with its
current state), ``alert_events`` (every state change), ``alert_cursors`` and
``alert_deliveries``. Reads of the stream's rows (``energy_intervals``, ``readings``) for the
rules are here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb


def sync_rules(conn: psycopg.Connection[Any], rules: Iterable[Mapping[str, Any]]) -> int:
    """Replace the stored rules with ``rules`` (dicts with id, kind and the definition);
    rules no longer in the file are kept but disabled. Returns how many are enabled."""
    ids = []
    for r in rules:
        ids.append(r["id"])
        conn.execute(
            "INSERT INTO alert_rules (rule_id, kind, definition, enabled, loaded_at) "
            "VALUES (%s, %s, %s, true, now()) ON CONFLICT (rule_id) DO UPDATE SET "
            "kind = excluded.kind, definition = excluded.definition, enabled = true, "
            "loaded_at = now()",
            (r["id"], r["kind"], Jsonb(dict(r))))
    conn.execute("UPDATE alert_rules SET enabled = false WHERE NOT (rule_id = ANY(%s))", (ids,))
    return len(ids)


def load_states(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Every alert instance by fingerprint."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM alerts").fetchall()
    return {r["fingerprint"]: r for r in rows}


UPSERT_ALERT = """
INSERT INTO alerts AS a (fingerprint, rule_id, kind, site_id, subject, labels, state, severity,
    pending_since, firing_since, last_true_at, resolved_at, observed_at, value, threshold,
    typical, deadline, evidence, updated_at)
VALUES (%(fingerprint)s, %(rule_id)s, %(kind)s, %(site_id)s, %(subject)s, %(labels)s, %(state)s,
    %(severity)s, %(pending_since)s, %(firing_since)s, %(last_true_at)s, %(resolved_at)s,
    %(observed_at)s, %(value)s, %(threshold)s, %(typical)s, %(deadline)s, %(evidence)s, now())
ON CONFLICT (fingerprint) DO UPDATE SET labels = excluded.labels, state = excluded.state,
    severity = excluded.severity, pending_since = excluded.pending_since,
    firing_since = excluded.firing_since, last_true_at = excluded.last_true_at,
    resolved_at = excluded.resolved_at, observed_at = excluded.observed_at,
    value = excluded.value, threshold = excluded.threshold, typical = excluded.typical,
    deadline = excluded.deadline, evidence = excluded.evidence,
    -- a new episode (pending again after resolved) starts unacknowledged; its old silence
    -- (silence_id kept) is expired by the evaluator, see acked_resolved()
    acked_by = CASE WHEN excluded.state = 'pending' THEN NULL ELSE a.acked_by END,
    acked_at = CASE WHEN excluded.state = 'pending' THEN NULL ELSE a.acked_at END,
    updated_at = now()
RETURNING alert_id
"""


def save_state(conn: psycopg.Connection[Any], row: Mapping[str, Any],
               events: Sequence[str]) -> int:
    """Upsert one alert instance and append its events; returns its ``alert_id``."""
    params = {**row, "labels": Jsonb(dict(row["labels"])),
              "evidence": Jsonb(dict(row.get("evidence") or {}))}
    found = conn.execute(UPSERT_ALERT, params).fetchone()
    assert found is not None
    alert_id = int(found[0])
    for ev in events:
        conn.execute(
            "INSERT INTO alert_events (alert_id, event, data_time, value, threshold, typical, "
            "evidence) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (alert_id, ev, row.get("observed_at"), row.get("value"), row.get("threshold"),
             row.get("typical"), params["evidence"]))
    return alert_id


def add_event(conn: psycopg.Connection[Any], alert_id: int, event: str, actor: str | None,
              evidence: Mapping[str, Any] | None = None) -> None:
    """Append an event made by a person or by the evaluator (acknowledged, silenced,
    escalated)."""
    conn.execute("INSERT INTO alert_events (alert_id, event, actor, evidence) "
                 "VALUES (%s, %s, %s, %s)", (alert_id, event, actor, Jsonb(dict(evidence or {}))))


def to_sync(conn: psycopg.Connection[Any], now: datetime, resend_s: float) -> list[dict[str, Any]]:
    """Alerts Alertmanager must be told about: firing ones not posted for ``resend_s`` [s]
    (or never), and resolved ones whose resolution it has not accepted yet."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM alerts WHERE (state = 'firing' AND (am_state IS DISTINCT FROM "
            "'firing' OR am_synced_at < %s::timestamptz - make_interval(secs => %s))) "
            "OR (state = 'resolved' AND am_state = 'firing') ORDER BY alert_id",
            (now, resend_s)).fetchall()


def mark_synced(conn: psycopg.Connection[Any], alert_ids: Sequence[int], am_state: str,
                now: datetime) -> None:
    """Record that Alertmanager accepted ``am_state`` for these alerts."""
    conn.execute("UPDATE alerts SET am_state = %s, am_synced_at = %s WHERE alert_id = ANY(%s)",
                 (am_state, now, list(alert_ids)))


def get_cursor(conn: psycopg.Connection[Any], name: str) -> datetime | None:
    """A stored evaluator cursor."""
    row = conn.execute("SELECT position FROM alert_cursors WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None


def set_cursor(conn: psycopg.Connection[Any], name: str, position: datetime) -> None:
    """Store an evaluator cursor."""
    conn.execute("INSERT INTO alert_cursors (name, position) VALUES (%s, %s) ON CONFLICT (name) "
                 "DO UPDATE SET position = excluded.position, updated_at = now()",
                 (name, position))


def new_intervals(conn: psycopg.Connection[Any], meter_ids: Sequence[str], since: datetime,
                  updated_after: datetime | None) -> list[dict[str, Any]]:
    """Interval rows of ``meter_ids`` starting at or after ``since`` and written after
    ``updated_after`` (all of them when None), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT meter_id, interval_start, interval_s, quantity, quantity_unit, covered_s, "
            "quality, estimated_quantity, updated_at FROM energy_intervals "
            "WHERE meter_id = ANY(%s) AND interval_start >= %s "
            "AND (%s::timestamptz IS NULL OR updated_at > %s::timestamptz) "
            "ORDER BY interval_start, meter_id",
            (list(meter_ids), since, updated_after, updated_after)).fetchall()


def night_mean_kw(conn: psycopg.Connection[Any], meter_id: str, start: datetime,
                  end: datetime) -> tuple[float | None, int]:
    """Mean power [kW] of ``meter_id``'s measured, not estimated intervals in [start, end)
    (quantity in kWh x 3600 / interval seconds), and how many intervals it averages."""
    row = conn.execute(
        "SELECT avg(quantity * 3600.0 / interval_s), count(*) FROM energy_intervals "
        "WHERE meter_id = %s AND interval_start >= %s AND interval_start < %s "
        "AND quality = 'measured' AND estimated_quantity = 0",
        (meter_id, start, end)).fetchone()
    assert row is not None
    return (float(row[0]) if row[0] is not None else None), int(row[1])


def last_readings(conn: psycopg.Connection[Any], meter_ids: Sequence[str]) -> dict[str, datetime]:
    """Newest reading time per meter (meters never seen are absent); one index probe each."""
    rows = conn.execute(
        "SELECT m.id, (SELECT max(r.ts) FROM readings r WHERE r.meter_id = m.id) "
        "FROM unnest(%s::text[]) AS m(id)", (list(meter_ids),)).fetchall()
    return {r[0]: r[1] for r in rows if r[1] is not None}


def window_intervals(conn: psycopg.Connection[Any], meter_ids: Sequence[str], start: datetime,
                     end: datetime) -> list[dict[str, Any]]:
    """Interval rows of ``meter_ids`` in [start, end)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT meter_id, interval_start, interval_s, quantity, quality, estimated_quantity "
            "FROM energy_intervals WHERE meter_id = ANY(%s) AND interval_start >= %s "
            "AND interval_start < %s", (list(meter_ids), start, end)).fetchall()


def newest_interval(conn: psycopg.Connection[Any], meter_id: str) -> datetime | None:
    """Start of the newest interval of ``meter_id``."""
    row = conn.execute("SELECT max(interval_start) FROM energy_intervals WHERE meter_id = %s",
                       (meter_id,)).fetchone()
    return row[0] if row else None


def month_quality(conn: psycopg.Connection[Any], meter_ids: Sequence[str], start: datetime,
                  end: datetime) -> dict[str, dict[str, float]]:
    """Per meter in [start, end): covered seconds, quantity and estimated quantity."""
    rows = conn.execute(
        "SELECT meter_id, sum(covered_s), sum(quantity), sum(estimated_quantity) "
        "FROM energy_intervals WHERE meter_id = ANY(%s) AND interval_start >= %s "
        "AND interval_start < %s GROUP BY meter_id", (list(meter_ids), start, end)).fetchall()
    return {r[0]: {"covered_s": float(r[1] or 0), "quantity": float(r[2] or 0),
                   "estimated": float(r[3] or 0)} for r in rows}


def list_alerts(database_url: str, states: Sequence[str]) -> list[dict[str, Any]]:
    """Alerts in ``states``, newest first."""
    with psycopg.connect(database_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM alerts WHERE state = ANY(%s) ORDER BY alert_id DESC",
                           (list(states),)).fetchall()


def get_alert(conn: psycopg.Connection[Any], alert_id: int) -> dict[str, Any] | None:
    """One alert by id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM alerts WHERE alert_id = %s", (alert_id,)).fetchone()


def record_ack(conn: psycopg.Connection[Any], alert_id: int, by: str, at: datetime,
               silence_id: str) -> None:
    """Store who acknowledged an alert, when, and the Alertmanager silence created."""
    conn.execute("UPDATE alerts SET acked_by = %s, acked_at = %s, silence_id = %s "
                 "WHERE alert_id = %s", (by, at, silence_id, alert_id))
    add_event(conn, alert_id, "acknowledged", by, {"silence_id": silence_id})
    add_event(conn, alert_id, "silenced", by, {"silence_id": silence_id})


def acked_resolved(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Alerts holding a silence that must go: resolved, or a new episode (acknowledgement
    reset) whose silence from the previous episode was not expired yet."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT alert_id, silence_id FROM alerts WHERE silence_id IS NOT "
                           "NULL AND (state IN ('resolved', 'inactive') OR acked_at IS NULL)")\
            .fetchall()


def clear_silence(conn: psycopg.Connection[Any], alert_id: int) -> None:
    """Forget an expired silence."""
    conn.execute("UPDATE alerts SET silence_id = NULL WHERE alert_id = %s", (alert_id,))


def record_delivery(database_url: str, row: Mapping[str, Any]) -> None:
    """Store one delivery attempt of the robot receiver."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO alert_deliveries (channel, group_key, status, attempt, ok, http_status, "
            "error, bytes, truncated) VALUES (%(channel)s, %(group_key)s, %(status)s, "
            "%(attempt)s, %(ok)s, %(http_status)s, %(error)s, %(bytes)s, %(truncated)s)",
            dict(row))


def list_deliveries(database_url: str, limit: int = 50) -> list[dict[str, Any]]:
    """The newest delivery attempts."""
    with psycopg.connect(database_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM alert_deliveries ORDER BY delivery_id DESC LIMIT %s",
                           (limit,)).fetchall()


INJECT_INTERVAL = """
INSERT INTO energy_intervals (meter_id, interval_start, interval_s, site_id, carrier, quantity,
    quantity_unit, covered_s, quality, estimated_quantity, estimated_s)
VALUES (%(meter_id)s, %(interval_start)s, %(interval_s)s, %(site_id)s, %(carrier)s,
    %(quantity)s, %(unit)s, %(covered_s)s, %(quality)s, %(estimated_quantity)s,
    %(estimated_s)s)
ON CONFLICT (meter_id, interval_start) DO UPDATE SET quantity = excluded.quantity,
    covered_s = excluded.covered_s, quality = excluded.quality,
    estimated_quantity = excluded.estimated_quantity, estimated_s = excluded.estimated_s,
    updated_at = now()
"""


def inject_intervals(conn: psycopg.Connection[Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write interval rows as the sink would (demo and tests: fault injection)."""
    with conn.cursor() as cur:
        cur.executemany(INJECT_INTERVAL, [dict(r) for r in rows])


def inject_reading(conn: psycopg.Connection[Any], meter_id: str, ts: datetime,
                   value: float, unit: str = "kWh") -> None:
    """Write one register reading into the audit table as the sink would."""
    conn.execute(
        "INSERT INTO readings (meter_id, ts, kind, value, value_unit, received_at, mqtt_topic) "
        "VALUES (%s, %s, 'register', %s, %s, now(), 'injected') "
        "ON CONFLICT (meter_id, ts) DO NOTHING", (meter_id, ts, value, unit))


def drop_readings_after(conn: psycopg.Connection[Any], meter_id: str, after: datetime) -> int:
    """Delete a meter's readings after ``after`` (demo fault injection; admin role)."""
    cur = conn.execute("DELETE FROM readings WHERE meter_id = %s AND ts > %s", (meter_id, after))
    return cur.rowcount
