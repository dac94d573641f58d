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
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from carbon.registry import Registry
from core.records import (
    DeadLetter,
    IntervalRow,
    ReadingRecord,
    convert,
    make_dead_letter,
    sanitize_text,
)

log = logging.getLogger(__name__)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# Each upsert is a head (INSERT ... (columns)), a source (unnest arrays, or a staging table
# filled by COPY) and a conflict clause; the same clause decides what a replay changes.
_ENERGY_COLS = ("meter_id", "interval_start", "interval_s", "site_id", "carrier", "quantity",
                "quantity_unit", "energy_tce", "covered_s", "quality", "estimated_quantity",
                "estimated_s")
_ENERGY_TYPES = ("text", "timestamptz", "int", "text", "text", "float8", "text", "float8",
                 "float8", "text", "float8", "float8")
_ENERGY_CONFLICT = """
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

_EMISSION_COLS = ("meter_id", "interval_start", "method", "scope", "site_id", "emissions_kgco2",
                  "factor_id", "factor_version", "factor_value", "factor_unit")
_EMISSION_TYPES = ("text", "timestamptz", "text", "text", "text", "float8", "text", "text",
                   "float8", "text")
_EMISSION_CONFLICT = """
ON CONFLICT (meter_id, interval_start, method) DO UPDATE SET
    scope = excluded.scope, emissions_kgco2 = excluded.emissions_kgco2,
    factor_id = excluded.factor_id, factor_version = excluded.factor_version,
    factor_value = excluded.factor_value, factor_unit = excluded.factor_unit,
    revision = t.revision + 1, updated_at = now()
WHERE (t.emissions_kgco2, t.factor_id, t.factor_version, t.scope)
    IS DISTINCT FROM (excluded.emissions_kgco2, excluded.factor_id, excluded.factor_version,
                      excluded.scope)
"""

_READING_COLS = ("meter_id", "ts", "kind", "value", "value_unit", "period_s", "received_at",
                 "mqtt_topic")
_READING_TYPES = ("text", "timestamptz", "text", "float8", "text", "int", "timestamptz", "text")
_READING_CONFLICT = """
ON CONFLICT (meter_id, ts) DO UPDATE SET
    value = excluded.value, kind = excluded.kind, period_s = excluded.period_s,
    received_at = excluded.received_at, revision = t.revision + 1
WHERE (t.value, t.kind, t.period_s) IS DISTINCT FROM (excluded.value, excluded.kind,
    excluded.period_s)
"""

_DEAD_COLS = ("dedup_key", "stage", "code", "reason", "mqtt_topic", "payload",
              "payload_truncated", "meter_id", "received_at")
_DEAD_TYPES = ("text", "text", "text", "text", "text", "text", "bool", "text", "timestamptz")
_DEAD_CONFLICT = "ON CONFLICT (dedup_key) DO NOTHING"


def _unnest_upsert(table: str, cols: Sequence[str], types: Sequence[str], conflict: str) -> str:
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    return (f"INSERT INTO {table} AS t ({', '.join(cols)})\nSELECT * FROM unnest({arrays})\n"
            f"{conflict}")


_UPSERT_ENERGY = _unnest_upsert("energy_intervals", _ENERGY_COLS, _ENERGY_TYPES,
                                _ENERGY_CONFLICT)
# shared with analytics.recompute: one statement decides what an emission row upsert does
UPSERT_EMISSIONS = _unnest_upsert("emission_intervals", _EMISSION_COLS, _EMISSION_TYPES,
                                  _EMISSION_CONFLICT)
_UPSERT_READINGS = _unnest_upsert("readings", _READING_COLS, _READING_TYPES, _READING_CONFLICT)
_INSERT_DEAD = _unnest_upsert("dead_letters", _DEAD_COLS, _DEAD_TYPES, _DEAD_CONFLICT)


@dataclass(frozen=True)
class _Table:
    """One target table: its unnest upsert, and the COPY path (staging table + upsert)."""

    name: str
    cols: tuple[str, ...]
    types: tuple[str, ...]
    conflict: str

    @property
    def stage(self) -> str:
        return f"nzc_stage_{self.name}"

    @property
    def unnest_sql(self) -> str:
        return _unnest_upsert(self.name, self.cols, self.types, self.conflict)

    @property
    def create_stage_sql(self) -> str:
        cols = ", ".join(f"{c} {t}" for c, t in zip(self.cols, self.types, strict=True))
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ({cols}) ON COMMIT DELETE ROWS"

    @property
    def copy_sql(self) -> str:
        return f"COPY {self.stage} ({', '.join(self.cols)}) FROM STDIN"

    @property
    def merge_sql(self) -> str:
        cols = ", ".join(self.cols)
        return (f"INSERT INTO {self.name} AS t ({cols}) SELECT {cols} FROM {self.stage}\n"
                f"{self.conflict}")


ENERGY = _Table("energy_intervals", _ENERGY_COLS, _ENERGY_TYPES, _ENERGY_CONFLICT)
EMISSIONS = _Table("emission_intervals", _EMISSION_COLS, _EMISSION_TYPES, _EMISSION_CONFLICT)
READINGS = _Table("readings", _READING_COLS, _READING_TYPES, _READING_CONFLICT)
DEAD = _Table("dead_letters", _DEAD_COLS, _DEAD_TYPES, _DEAD_CONFLICT)

#: Errors that are about the data of a record (PostgreSQL SQLSTATE classes 22 and 23, and a
#: value psycopg cannot even send): the batch is split until the record is found, which is
#: quarantined; every other record is written.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError, psycopg.IntegrityError, psycopg.errors.CardinalityViolation,
    UnicodeError, ValueError, OverflowError)

#: How many rows at most one COPY path statement handles before the unnest path is cheaper.
COPY_MIN_ROWS = 64


def _columns(rows: Sequence[Sequence[Any]], n: int) -> list[list[Any]]:
    return [[r[i] for r in rows] for i in range(n)]


def dead_letter_key(d: DeadLetter | Mapping[str, Any]) -> str:
    """Natural key of a rejection: the same input rejected twice (a replay) is stored once.

    Ingest rejections are keyed by topic, payload and receive time (paho's redelivery after an
    ingest crash keeps the payload; the receive time of a redelivery differs, so it keeps a
    row of its own, flagged by the same payload); stream rejections by meter, reading time and
    reason code.
    """
    g = d.get if isinstance(d, Mapping) else lambda k: getattr(d, k, None)
    if g("stage") == "stream":
        raw = f"stream|{g('meter_id')}|{g('ts_ms')}|{g('code')}"
    else:
        raw = f"{g('stage')}|{g('mqtt_topic')}|{g('received_ms')}|{g('payload')}"
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


def _energy_rows(rows: Iterable[IntervalRow]) -> list[tuple[Any, ...]]:
    return [(r.meter_id, _ts(r.interval_start_ms), r.interval_s, r.site_id, r.carrier,
             r.quantity, r.quantity_unit, r.energy_tce, r.covered_s, r.quality,
             r.estimated_quantity, r.estimated_s) for r in rows]


def _emission_rows(rows: Iterable[IntervalRow]) -> list[tuple[Any, ...]]:
    return [(r.meter_id, _ts(r.interval_start_ms), e.method, e.scope, r.site_id,
             e.emissions_kgco2, e.factor_id, e.factor_version, e.factor_value, e.factor_unit)
            for r in rows for e in r.emissions]


def _reading_rows(rows: Iterable[ReadingRecord]) -> list[tuple[Any, ...]]:
    return [(r.meter_id, _ts(r.ts_ms), r.kind, r.value, r.unit, r.period_s, _ts(r.received_ms),
             sanitize_text(r.mqtt_topic)) for r in rows]


def _dead_rows(rows: Iterable[DeadLetter]) -> list[tuple[Any, ...]]:
    return [(dead_letter_key(d), sanitize_text(d.stage), sanitize_text(d.code),
             sanitize_text(d.reason), sanitize_text(d.mqtt_topic), sanitize_text(d.payload),
             d.payload_truncated, None if d.meter_id is None else sanitize_text(d.meter_id),
             _ts(d.received_ms)) for d in rows]


def _last_intervals(records: Iterable[IntervalRow | Mapping[str, Any]]) -> list[IntervalRow]:
    """Typed interval rows, the last one of each (meter, interval) winning."""
    last: dict[tuple[str, int], IntervalRow] = {}
    for rec in records:
        r = convert(rec, IntervalRow)
        last[(r.meter_id, r.interval_start_ms)] = r
    return list(last.values())


def _last_readings(records: Iterable[ReadingRecord | Mapping[str, Any]]) -> list[ReadingRecord]:
    last: dict[tuple[str, int], ReadingRecord] = {}
    for rec in records:
        # a mapping needs only the stored columns (the readings table has no site_id)
        r = rec if isinstance(rec, ReadingRecord) else ReadingRecord.from_dict(
            {"site_id": "", **rec})
        last[(r.meter_id, r.ts_ms)] = r
    return list(last.values())


def _dead_letters(records: Iterable[DeadLetter | Mapping[str, Any]]) -> list[DeadLetter]:
    out = []
    for d in records:
        if isinstance(d, DeadLetter):
            out.append(d)
        else:
            out.append(DeadLetter(
                stage=str(d["stage"]), code=str(d["code"]), reason=str(d["reason"]),
                mqtt_topic=str(d.get("mqtt_topic", "")), payload=str(d.get("payload", "")),
                payload_truncated=bool(d.get("payload_truncated", False)),
                meter_id=d.get("meter_id"), received_ms=int(d["received_ms"]),
                ts_ms=d.get("ts_ms")))
    return out


@dataclass
class SinkStats:
    """Counters since start: batches written, records quarantined by the database, retries."""

    batches: int = 0
    quarantined: int = 0
    retries: int = 0


@dataclass
class _Part:
    """One table's share of a batch: the records and how to turn them into rows."""

    table: _Table
    records: list[Any]
    to_rows: Any
    what: str
    quarantined: list[tuple[Any, str]] = field(default_factory=list)


class Sink:
    """Writes batches of stream records to PostgreSQL/TimescaleDB.

    Failure rule (issue 8): a *data error* (a record PostgreSQL refuses: :data:`DATA_ERRORS`)
    never blocks the batch: the batch is split in halves, recursively inside savepoints, until
    the refused record is found; it is stored as a dead letter (stage ``sink``, code
    ``sink_rejected``, the database's message as reason) and every other record is written.
    Any other failure (connection lost, database down, a missing privilege) is retried with
    back-off, holding the batch: the caller stops consuming (back-pressure) and nothing is
    acknowledged meanwhile.

    Large batches go through ``COPY`` into a temporary staging table and one upsert per table;
    where ``COPY`` is unavailable (pglite) the ``unnest`` upsert is used.
    """

    def __init__(self, database_url: str, *, use_copy: bool = True) -> None:
        self._url = database_url
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._copy: bool | None = None if use_copy else False
        # plain PostgreSQL (migration 007): rollups refreshed per batch, see write_batch
        self._rollups = False
        self._last_refresh = 0.0
        #: a batch was written without refreshing the rollups (see :meth:`refresh_rollups`)
        self.refresh_pending = False
        self.stats = SinkStats()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=False)
            if self._copy is None:
                try:
                    self._copy = await self._probe_copy(self._conn)
                except psycopg.OperationalError as exc:
                    # pglite's socket server drops the connection on COPY FROM STDIN
                    log.info("COPY closed the connection (%s); using unnest upserts", exc)
                    self._copy = False
                    await self._conn.close()
                    self._conn = await psycopg.AsyncConnection.connect(self._url,
                                                                       autocommit=False)
            row = await (await self._conn.execute(
                "SELECT to_regprocedure('nzc_refresh_rollups()') IS NOT NULL")).fetchone()
            self._rollups = bool(row and row[0])
            await self._conn.rollback()
        return self._conn

    async def _probe_copy(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """Whether this server takes ``COPY FROM STDIN`` into temporary tables (pglite, a
        PostgreSQL compiled with Emscripten, does not: its socket server drops the client)."""
        row = await (await conn.execute("SELECT version()")).fetchone()
        await conn.rollback()
        if row is None or "emscripten" in str(row[0]).lower():
            log.info("no COPY FROM STDIN on this server (pglite); using unnest upserts")
            return False
        try:
            async with conn.transaction():
                for t in (ENERGY, EMISSIONS, READINGS, DEAD):
                    await conn.execute(t.create_stage_sql)
                async with conn.cursor().copy(DEAD.copy_sql) as cp:
                    await cp.write_row(("k", "s", "c", "r", "t", "p", False, None, _ts(0)))
                await conn.execute(f"DELETE FROM {DEAD.stage}")
            return True
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:  # e.g. no TEMP privilege
            log.info("COPY is unavailable here (%s); using unnest upserts", exc)
            await conn.rollback()
            return False

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    # --- the public writers (each one transaction; data errors quarantined) ----------------

    async def write_intervals(
        self, records: Iterable[IntervalRow | Mapping[str, Any]]
    ) -> tuple[int, int]:
        """Upsert interval rows (energy plus their emission rows) in one transaction.

        Records are :class:`~core.records.IntervalRow` (or mappings of its fields). Returns the
        number of energy and emission rows written or changed.
        """
        n = await self.write_batch(intervals=records)
        return n["energy_intervals"], n["emission_intervals"]

    async def write_readings(self, records: Iterable[ReadingRecord | Mapping[str, Any]]) -> int:
        """Upsert accepted readings into the ``readings`` audit table."""
        return (await self.write_batch(readings=records))["readings"]

    async def write_dead_letters(self, records: Iterable[DeadLetter | Mapping[str, Any]]) -> int:
        """Insert rejections; a replayed rejection is stored once (see :func:`dead_letter_key`)."""
        return (await self.write_batch(dead=records))["dead_letters"]

    async def write_batch(
        self, *, intervals: Iterable[IntervalRow | Mapping[str, Any]] = (),
        readings: Iterable[ReadingRecord | Mapping[str, Any]] = (),
        dead: Iterable[DeadLetter | Mapping[str, Any]] = (),
        refresh_within_s: float = 0.0,
    ) -> dict[str, int]:
        """Write interval rows, readings and dead letters in ONE transaction; a record the
        database refuses is quarantined (see the class docstring). Raises only for failures
        that are not about the data (the caller retries: :meth:`with_retry`). Returns the
        rows written or changed per table.

        On plain PostgreSQL the rollups of the touched buckets are refreshed in the same
        transaction unless one was refreshed less than ``refresh_within_s`` [s] ago (0: always,
        the rollups are current when this returns; the stream passes a few seconds under load,
        so a meter's buckets are recomputed once per period instead of once per batch)."""
        rows = _last_intervals(intervals)
        parts = [
            _Part(ENERGY, rows, _energy_rows, "energy interval"),
            _Part(EMISSIONS, [r for r in rows if r.emissions], _emission_rows,
                  "emission rows"),
            _Part(READINGS, _last_readings(readings), _reading_rows, "reading"),
            _Part(DEAD, _dead_letters(dead), _dead_rows, "dead letter"),
        ]
        conn = await self._connection()
        counts = {p.table.name: 0 for p in parts}
        async with conn.transaction():
            for p in parts:
                if p.records:
                    counts[p.table.name] = await self._write_split(conn, p, p.records)
            quarantine = [
                _quarantine_letter(p, rec, msg) for p in parts for rec, msg in p.quarantined]
            if quarantine:
                self.stats.quarantined += len(quarantine)
                part = _Part(DEAD, quarantine, _dead_rows, "quarantine dead letter")
                counts["dead_letters"] += await self._write_split(conn, part, quarantine)
                for rec, msg in part.quarantined:  # even its own dead letter was refused
                    log.error("dropping a record the database refuses twice: %s (%r)", msg, rec)
            now = time.monotonic()
            if self._rollups and now - self._last_refresh >= refresh_within_s:
                await conn.execute("SELECT nzc_refresh_rollups()")
                self._last_refresh, self.refresh_pending = now, False
            elif self._rollups:
                self.refresh_pending = True
        self.stats.batches += 1
        return counts

    async def refresh_rollups(self) -> None:
        """Refresh the plain-PostgreSQL rollups of every queued bucket (migration 007)."""
        conn = await self._connection()
        async with conn.transaction():
            if self._rollups:
                await conn.execute("SELECT nzc_refresh_rollups()")
        self._last_refresh, self.refresh_pending = time.monotonic(), False

    async def _write_split(self, conn: psycopg.AsyncConnection[Any], part: _Part,
                           records: list[Any]) -> int:
        """Write ``records`` inside a savepoint; on a data error split in halves until the
        refused records are isolated (``part.quarantined``). Returns rows written."""
        try:
            async with conn.transaction():
                return await self._write(conn, part.table, part.to_rows(records))
        except DATA_ERRORS as exc:
            if len(records) == 1:
                msg = _db_message(exc)
                log.warning("the database refused a %s: %s", part.what, msg)
                part.quarantined.append((records[0], msg))
                return 0
            mid = len(records) // 2
            return (await self._write_split(conn, part, records[:mid])
                    + await self._write_split(conn, part, records[mid:]))

    async def _write(self, conn: psycopg.AsyncConnection[Any], table: _Table,
                     rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        if self._copy and len(rows) >= COPY_MIN_ROWS:
            await conn.execute(table.create_stage_sql)
            async with conn.cursor().copy(table.copy_sql) as cp:
                for row in rows:
                    await cp.write_row(row)
            cur = await conn.execute(table.merge_sql)
            await conn.execute(f"DELETE FROM {table.stage}")
            return cur.rowcount
        cur = await conn.execute(table.unnest_sql, _columns(rows, len(table.cols)))
        return cur.rowcount

    async def with_retry(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``await fn(*args, **kwargs)`` until it succeeds: a failed database means
        back-pressure and retry, never a dropped batch (data errors never get here: they are
        quarantined inside the write). Backs off from 0.2 s to 10 s."""
        delay = 0.2
        while True:
            try:
                return await fn(*args, **kwargs)
            except psycopg.Error as exc:
                transient = isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
                level = logging.WARNING if transient else logging.ERROR
                log.log(level, "%s failed (%s); retrying in %.1f s", what,
                        _db_message(exc), delay)
                self.stats.retries += 1
                await self.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _db_message(exc: BaseException) -> str:
    """The database's own message (first line, SQLSTATE when known), sanitised."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    code = getattr(getattr(exc, "diag", None), "sqlstate", None) or getattr(exc, "sqlstate",
                                                                              None)
    return sanitize_text(f"{type(exc).__name__}: {text}" + (f" (SQLSTATE {code})" if code
                                                              else ""), 2000)


def _quarantine_letter(part: _Part, record: Any, message: str) -> DeadLetter:
    """A dead letter (stage ``sink``, code ``sink_rejected``) for a record the database
    refused, with the record as ASCII-only JSON (so that the dead letter itself is storable)."""
    if isinstance(record, DeadLetter):
        body: Any = record.to_dict()
    elif isinstance(record, ReadingRecord):
        body = record.to_dict()
    elif isinstance(record, IntervalRow):
        body = msgspec.to_builtins(record)
    else:
        body = repr(record)
    payload = json.dumps(body, ensure_ascii=True, sort_keys=True, default=repr)
    meter = body.get("meter_id") if isinstance(body, dict) else None
    ts = None
    if isinstance(body, dict):
        ts = body.get("ts_ms", body.get("interval_start_ms"))
    return make_dead_letter(
        stage="sink", code="sink_rejected",
        reason=f"{part.table.name}: {message}",
        mqtt_topic=str(body.get("mqtt_topic", "")) if isinstance(body, dict) else "",
        payload=payload, received_ms=int(time.time() * 1000),
        meter_id=None if meter is None else str(meter),
        ts_ms=ts if isinstance(ts, int) else None,
    )


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
