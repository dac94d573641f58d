"""The batched database sink: multi-row upserts keyed by natural keys, so a replay changes
nothing.

Contract (after quix-streams' sinks): the stream hands a batch of records; :meth:`Sink.write`
writes the whole batch in one transaction or raises; the caller acknowledges the batch's
offsets only after it returned. Rows are upserted with ``unnest`` arrays (one statement per
table, no ``COPY FROM STDIN``, so it also runs on pglite), and a row whose values did not change
is not touched (its ``revision`` stays). Within a batch the last record of a key wins: records of
one meter arrive in order on one partition.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from carbon.registry import Registry

log = logging.getLogger(__name__)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


_UPSERT_ENERGY = """
INSERT INTO energy_intervals AS t (meter_id, interval_start, interval_s, site_id, carrier,
    quantity, quantity_unit, energy_tce, covered_s, quality, estimated_quantity, estimated_s)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::int[], %s::text[], %s::text[],
    %s::float8[], %s::text[], %s::float8[], %s::float8[], %s::text[], %s::float8[],
    %s::float8[])
ON CONFLICT (meter_id, interval_start) DO UPDATE SET
    interval_s = excluded.interval_s, quantity = excluded.quantity,
    energy_tce = excluded.energy_tce, covered_s = excluded.covered_s,
    quality = excluded.quality, estimated_quantity = excluded.estimated_quantity,
    estimated_s = excluded.estimated_s, updated_at = now(),
    -- revision counts corrections: changes to an interval that was already complete (an
    -- interval still filling up with the newest readings is not being corrected)
    revision = t.revision + CASE WHEN t.quality IN ('measured', 'estimated') THEN 1 ELSE 0 END
WHERE (t.quantity, t.covered_s, t.quality, t.interval_s, t.estimated_quantity)
    IS DISTINCT FROM (excluded.quantity, excluded.covered_s, excluded.quality,
                      excluded.interval_s, excluded.estimated_quantity)
"""

# shared with analytics.recompute: one statement decides what an emission row upsert does
UPSERT_EMISSIONS = """
INSERT INTO emission_intervals AS t (meter_id, interval_start, method, scope, site_id,
    emissions_kgco2, factor_id, factor_version, factor_value, factor_unit)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
    %s::float8[], %s::text[], %s::text[], %s::float8[], %s::text[])
ON CONFLICT (meter_id, interval_start, method) DO UPDATE SET
    scope = excluded.scope, emissions_kgco2 = excluded.emissions_kgco2,
    factor_id = excluded.factor_id, factor_version = excluded.factor_version,
    factor_value = excluded.factor_value, factor_unit = excluded.factor_unit,
    revision = t.revision + 1, updated_at = now()
WHERE (t.emissions_kgco2, t.factor_id, t.factor_version, t.scope)
    IS DISTINCT FROM (excluded.emissions_kgco2, excluded.factor_id, excluded.factor_version,
                      excluded.scope)
"""

_UPSERT_READINGS = """
INSERT INTO readings AS t (meter_id, ts, kind, value, value_unit, period_s, received_at,
    mqtt_topic)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::float8[], %s::text[],
    %s::int[], %s::timestamptz[], %s::text[])
ON CONFLICT (meter_id, ts) DO UPDATE SET
    value = excluded.value, kind = excluded.kind, period_s = excluded.period_s,
    received_at = excluded.received_at, revision = t.revision + 1
WHERE (t.value, t.kind, t.period_s) IS DISTINCT FROM (excluded.value, excluded.kind,
    excluded.period_s)
"""

_INSERT_DEAD = """
INSERT INTO dead_letters (dedup_key, stage, code, reason, mqtt_topic, payload,
    payload_truncated, meter_id, received_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::bool[], %s::text[], %s::timestamptz[])
ON CONFLICT (dedup_key) DO NOTHING
"""


def _columns(rows: Sequence[Sequence[Any]], n: int) -> list[list[Any]]:
    return [[r[i] for r in rows] for i in range(n)]


def dead_letter_key(d: Mapping[str, Any]) -> str:
    """Natural key of a rejection: the same input rejected twice (a replay) is stored once.

    Ingest rejections are keyed by topic, payload and receive time (paho's redelivery after an
    ingest crash keeps the payload; the receive time of a redelivery differs, so it keeps a
    row of its own, flagged by the same payload); stream rejections by meter, reading time and
    reason code.
    """
    if d.get("stage") == "stream":
        raw = f"stream|{d.get('meter_id')}|{d.get('ts_ms')}|{d.get('code')}"
    else:
        raw = f"{d.get('stage')}|{d.get('mqtt_topic')}|{d.get('received_ms')}|{d.get('payload')}"
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


class Sink:
    """Writes batches of stream records to PostgreSQL/TimescaleDB."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=False)
        return self._conn

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def write_intervals(self, records: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
        """Upsert interval records (energy plus their emission rows) in one transaction.

        A record is ``{"meter_id", "interval_start_ms", "interval_s", "site_id", "carrier",
        "quantity", "quantity_unit", "energy_tce", "covered_s", "quality", "emissions": [
        {"method", "scope", "emissions_kgco2", "factor_id", "factor_version", "factor_value",
        "factor_unit"}]}``. Returns the number of energy and emission rows written or changed.
        """
        last: dict[tuple[str, int], Mapping[str, Any]] = {}
        for r in records:
            last[(r["meter_id"], r["interval_start_ms"])] = r
        energy = [
            (r["meter_id"], _ts(r["interval_start_ms"]), r["interval_s"], r["site_id"],
             r["carrier"], r["quantity"], r["quantity_unit"], r.get("energy_tce"),
             r["covered_s"], r["quality"], r.get("estimated_quantity", 0.0),
             r.get("estimated_s", 0.0))
            for r in last.values()
        ]
        emissions = [
            (r["meter_id"], _ts(r["interval_start_ms"]), e["method"], e["scope"], r["site_id"],
             e["emissions_kgco2"], e["factor_id"], e["factor_version"], e["factor_value"],
             e["factor_unit"])
            for r in last.values()
            for e in r.get("emissions", [])
        ]
        conn = await self._connection()
        async with conn.transaction():
            n_e = n_x = 0
            if energy:
                cur = await conn.execute(_UPSERT_ENERGY, _columns(energy, 12))
                n_e = cur.rowcount
            if emissions:
                cur = await conn.execute(UPSERT_EMISSIONS, _columns(emissions, 10))
                n_x = cur.rowcount
        return n_e, n_x

    async def write_readings(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Upsert accepted readings into the ``readings`` audit table."""
        last: dict[tuple[str, int], Mapping[str, Any]] = {}
        for r in records:
            last[(r["meter_id"], r["ts_ms"])] = r
        rows = [
            (r["meter_id"], _ts(r["ts_ms"]), r["kind"], r["value"], r["unit"], r.get("period_s"),
             _ts(r["received_ms"]), r["mqtt_topic"])
            for r in last.values()
        ]
        if not rows:
            return 0
        conn = await self._connection()
        async with conn.transaction():
            cur = await conn.execute(_UPSERT_READINGS, _columns(rows, 8))
        return cur.rowcount

    async def write_dead_letters(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Insert rejections; a replayed rejection is stored once (see :func:`dead_letter_key`)."""
        rows = [
            (dead_letter_key(d), d["stage"], d["code"], d["reason"], d.get("mqtt_topic", ""),
             d.get("payload", ""), bool(d.get("payload_truncated", False)), d.get("meter_id"),
             _ts(d["received_ms"]))
            for d in records
        ]
        if not rows:
            return 0
        conn = await self._connection()
        async with conn.transaction():
            cur = await conn.execute(_INSERT_DEAD, _columns(rows, 9))
        return cur.rowcount

    async def with_retry(self, what: str, fn: Any, *args: Any) -> Any:
        """Run ``await fn(*args)`` until it succeeds: a failed database means back-pressure
        and retry, never a dropped batch. Backs off from 0.2 s to 10 s."""
        delay = 0.2
        while True:
            try:
                return await fn(*args)
            except psycopg.Error as exc:
                # Connection faults heal; a data error retries too (and is logged as an error)
                # because acknowledging the batch would lose it: the stall is the alarm.
                transient = isinstance(exc, psycopg.OperationalError)
                level = logging.WARNING if transient else logging.ERROR
                log.log(level, "%s failed (%s); retrying in %.1f s", what, exc, delay)
                await self.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def sync_registry(database_url: str, registry: Registry, source: str = "<registry>",
                  text: str | None = None) -> int | None:
    """Store the registry: upsert sites, meters, denominators and instruments, and keep the
    document in ``registry_versions`` (a new version only when its content changed).

    Returns the new version id, or ``None`` when the database already had this document.
    The YAML file stays the source of truth; the database copy lets dashboards and reviewers
    join on it and see its history.
    """
    version_id: int | None = None
    with psycopg.connect(database_url) as conn, conn.transaction():
        if text is not None:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            row = conn.execute("SELECT sha256 FROM registry_versions WHERE source = %s"
                               " ORDER BY version_id DESC LIMIT 1", (source,)).fetchone()
            if row is None or row[0] != digest:
                doc = {"text": text}
                got = conn.execute(
                    "INSERT INTO registry_versions (source, sha256, document)"
                    " VALUES (%s, %s, %s) RETURNING version_id",
                    (source, digest, Jsonb(doc))).fetchone()
                version_id = int(got[0]) if got else None
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO sites (site_id, name, site_type, province, city, baseline_year,"
                " timezone, construction_start, construction_end, boundary, factor_overrides)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (site_id) DO UPDATE SET"
                " name=excluded.name, site_type=excluded.site_type, province=excluded.province,"
                " city=excluded.city, baseline_year=excluded.baseline_year,"
                " timezone=excluded.timezone, construction_start=excluded.construction_start,"
                " construction_end=excluded.construction_end, boundary=excluded.boundary,"
                " factor_overrides=excluded.factor_overrides, updated_at=now()",
                [
                    (s.site_id, s.name, s.site_type, s.province, s.city, s.baseline_year,
                     s.timezone, s.construction_start, s.construction_end, s.boundary,
                     Jsonb(dict(s.factor_overrides)))
                    for s in registry.sites.values()
                ],
            )
            cur.executemany(
                "INSERT INTO meters (meter_id, site_id, carrier, unit, canonical_unit,"
                " gateway_id, parent_id, group_name, register_max, max_rate_per_h, max_gap_s)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (meter_id) DO UPDATE SET"
                " site_id=excluded.site_id, carrier=excluded.carrier, unit=excluded.unit,"
                " canonical_unit=excluded.canonical_unit, gateway_id=excluded.gateway_id,"
                " parent_id=excluded.parent_id, group_name=excluded.group_name,"
                " register_max=excluded.register_max, max_rate_per_h=excluded.max_rate_per_h,"
                " max_gap_s=excluded.max_gap_s, updated_at=now()",
                [
                    (m.meter_id, m.site_id, m.carrier.value, m.unit, m.canonical_unit,
                     m.gateway_id, m.parent_id, m.group, m.register_max, m.max_rate_per_h,
                     m.max_gap_s)
                    for m in registry.meters.values()
                ],
            )
            cur.executemany(
                "INSERT INTO denominators (site_id, kind, month, value, unit, source, version_id)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (site_id, kind, month) DO UPDATE SET"
                " value=excluded.value, unit=excluded.unit, source=excluded.source,"
                " version_id=coalesce(excluded.version_id, denominators.version_id)"
                " WHERE (denominators.value, denominators.unit, denominators.source)"
                " IS DISTINCT FROM (excluded.value, excluded.unit, excluded.source)",
                [(d.site_id, d.kind, d.month, d.value, d.unit, d.source, version_id)
                 for d in registry.denominators],
            )
            cur.executemany(
                "INSERT INTO instruments (instrument_id, site_id, kind, quantity, unit,"
                " period_start, period_end, vintage, retired, registry, version_id)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (instrument_id) DO UPDATE"
                " SET site_id=excluded.site_id, kind=excluded.kind, quantity=excluded.quantity,"
                " unit=excluded.unit, period_start=excluded.period_start,"
                " period_end=excluded.period_end, vintage=excluded.vintage,"
                " retired=excluded.retired, registry=excluded.registry,"
                " version_id=coalesce(excluded.version_id, instruments.version_id)",
                [(i.instrument_id, i.site_id, i.kind, i.quantity, i.unit, i.period_start,
                  i.period_end, i.vintage, i.retired, i.registry, version_id)
                 for i in registry.instruments],
            )
    return version_id


def latest_registry_text(database_url: str, source: str) -> str | None:
    """The newest stored registry document of ``source``, or ``None``."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT document->>'text' FROM registry_versions WHERE source = %s"
                           " ORDER BY version_id DESC LIMIT 1", (source,)).fetchone()
    return None if row is None else str(row[0])
