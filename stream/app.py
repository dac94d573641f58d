"""The faust-streaming application: one agent computes energy and emissions, in batches.

``readings.valid.v1`` (one :class:`~core.records.ReadingBatch` per MQTT message and gateway,
keyed by the registered gateway) --compute_intervals--> PostgreSQL (energy and emission
intervals, the readings audit, the stream's rejections); ``readings.deadletter.v1`` (ingest's
rejections) --store_dead_letters--> PostgreSQL.

:class:`IntervalBatcher` keeps the guarantees with batches:

* per-meter order: a meter belongs to one gateway, so its readings are on one partition, and
  one agent instance applies them in order to the meter's state (faust table ``meter_state``,
  changelogged, keyed by meter, on the partition of the readings that changed it; the value
  is :meth:`MeterState.to_bytes`);
* a flush happens when ``FLUSH_READINGS`` readings are waiting or every ``FLUSH_WITHIN_S``;
  it writes, in this order: (1) the database, one transaction (newest total of every interval
  touched, its emission rows, the readings, the rejections); (2) the changelog of the meters
  touched (their state serialised once, at the moment the batch was cut, and written to the
  local store in the same step); (3) the
  acknowledgement of the batch's Kafka records. faust commits offsets only for acknowledged
  records and flushes the producer (changelog included) before it commits; so committed
  offsets <= changelog <= database, and a crash anywhere replays readings onto a state that
  already has them: duplicates, which rewrite the same totals (at-least-once + idempotent
  upserts);
* the database failing makes the flush retry with back-off and the agent wait (back-pressure);
  a record the database refuses is quarantined by the sink, never retried forever.

Where the states live (:class:`StateStore`): by default faust's RocksDB store (rocksdict), in
``NZC_STREAM_STATE_DIR`` (``<state>/stream-state``), one database per partition that records
the newest changelog offset it holds; a restarted worker then reads only the changelog written
since (Kafka Streams' local state with its checkpoint), not the whole changelog as the memory
store does. The workers of one machine share the folder: a partition's database is locked by
the worker that has it open, and a partition that moves to another worker of the machine at a
rebalance is opened there with its offset (faust retries a locked database for 30 s). The
local files may be ahead of the changelog (a crash between the two writes) but never ahead of
the database, and readings not yet committed are replayed by the next owner, which then
writes the changelog: so readings replayed onto them are duplicates as above. They belong to
one Kafka cluster: a worker that finds them written against another cluster (``nzc services
reset``, a new broker) deletes them and recovers from the changelog.

(faust's own ``take()`` acknowledges a batch even when the agent raised, and stalled here for
minutes under load, hence the explicit ``noack()`` + acknowledge after the flush.)

The intermediate topics ``energy.interval.v1`` and ``emissions.interval.v1`` are no longer
produced (nothing consumed them but the sink).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import orjson
import rocksdict
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.drivers import aiokafka as faust_aiokafka

from carbon.counters import IntervalEnergy, MeterState
from core.readiness import signal_ready
from core.records import (
    DeadLetter,
    IntervalRow,
    ReadingBatch,
    ReadingRecord,
    RecordError,
    decode,
    make_dead_letter,
)
from core.registry_yaml import load_registry, registry_text
from core.settings import TOPIC_DEAD_LETTERS, TOPIC_READINGS, Settings
from db.sink import Sink
from stream import logic

log = logging.getLogger(__name__)

#: Flush when this many readings wait [readings] ...
FLUSH_READINGS = 5000
#: ... or this often [s].
FLUSH_WITHIN_S = 0.5
#: Under load, plain-PostgreSQL rollups are refreshed at most this often [s].
ROLLUP_REFRESH_S = 3.0
#: A record missing at the head of a partition's acknowledged offsets for this long [s] makes
#: the consumer read the partition again from it (see :class:`_Consumer`).
HOLE_RESEEK_S = 2.0
#: Dead letters from ingest: batch size [records].
DEAD_BATCH = 2000


def _key(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def decode_readings(raw: bytes) -> list[ReadingRecord]:
    """The readings of one Kafka record: a :class:`ReadingBatch`, or (records written before
    batches) one reading as a JSON object."""
    try:
        return decode(raw, ReadingBatch).readings
    except RecordError:
        doc = json.loads(raw)
        if isinstance(doc, dict) and "meter_id" in doc:
            return [ReadingRecord.from_dict(doc)]
        raise


class StateStore:
    """The meter states between flushes: faust's storage of table ``meter_state``, read and
    written by partition.

    faust's own ``table[key] = value`` takes the partition from the current event, but a flush
    runs from a timer or on behalf of many partitions; so the flush writes each partition's
    database (RocksDB) or the dict (memory store) itself, then the changelog record
    (``send_changelog``, whose acknowledgement records the persisted offset)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, partition: int, meter: str) -> MeterState:
        """The stored state of ``meter`` (a fresh state when none is stored)."""
        store = self.table.data
        if isinstance(store, RocksDBStore):
            blob = store._db_for_partition(partition).get(store._encode_key(meter))
        else:
            blob = store.get(meter)
        return decode_state(blob)

    def put_many(self, states: Mapping[str, tuple[int, bytes]]) -> None:
        """Store ``meter -> (partition, blob)`` locally, then send them to the changelog."""
        store = self.table.data
        if isinstance(store, RocksDBStore):
            batches: dict[int, Any] = {}
            for meter, (partition, blob) in states.items():
                key = store._encode_key(meter)
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
                batch.put(key, blob)
                store._key_index[key] = partition
            for partition, batch in batches.items():
                store._db_for_partition(partition).write(batch)
        else:
            for meter, (_, blob) in states.items():
                store[meter] = blob
        for meter, (partition, blob) in states.items():
            self.table.send_changelog(partition, meter, blob, value_serializer="raw")


def decode_state(blob: Any) -> MeterState:
    """A stored meter state: :meth:`MeterState.to_bytes`, or the JSON of earlier versions."""
    if not blob:
        return MeterState()
    if isinstance(blob, dict):
        return MeterState.from_json(blob)
    if bytes(blob[:1]) == b"{":
        return MeterState.from_json(orjson.loads(blob))
    return MeterState.from_bytes(bytes(blob))


@dataclass
class _Cut:
    """What one flush writes: the batch cut from the batcher at one instant."""

    events: list[Any]
    intervals: list[IntervalRow]
    readings: list[ReadingRecord]
    dead: list[DeadLetter]
    states: dict[str, tuple[int, bytes]]  # meter -> (partition, MeterState.to_bytes())


@dataclass
class IntervalBatcher:
    """Applies readings to meter states and flushes batches (see the module docstring)."""

    ctx: logic.StreamContext
    store: StateStore
    sink: Sink
    flush_readings: int = FLUSH_READINGS
    states: dict[str, MeterState] = field(default_factory=dict)
    dirty: dict[str, int] = field(default_factory=dict)
    intervals: dict[tuple[str, int], IntervalEnergy] = field(default_factory=dict)
    readings: list[ReadingRecord] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flushed_readings: int = 0
    flush_seconds: float = 0.0

    def state_of(self, meter_id: str, partition: int) -> MeterState:
        """The live state of ``meter_id`` (from the store on first use)."""
        st = self.states.get(meter_id)
        if st is None:
            st = self.states[meter_id] = self.store.get(partition, meter_id)
        return st

    def apply(self, event: Any) -> None:
        """Apply every reading of one Kafka record; keep the record for acknowledgement."""
        partition = event.message.partition
        try:
            batch = decode_readings(event.value)
        except Exception as exc:  # a record we cannot read is kept, not retried
            self.dead.append(make_dead_letter(
                stage="stream", code="processing_error",
                reason=f"decode: {type(exc).__name__}: {exc}", mqtt_topic="",
                payload=bytes(event.value or b""), received_ms=int(time.time() * 1000)))
            self.events.append(event)
            return
        registry = self.ctx.registry
        for reading in batch:
            if registry.meter(reading.meter_id) is None:  # the registry changed since ingest
                self.dead.extend(logic.apply_reading(self.ctx, MeterState(), reading)[1])
                continue
            try:
                state = self.state_of(reading.meter_id, partition)
                changed, dead = logic.apply_reading(self.ctx, state, reading)
            except Exception as exc:  # one bad reading must not stop the agent
                log.exception("compute_intervals failed on %r", reading)
                self.dead.append(logic.processing_error(reading, "compute_intervals", exc))
                continue
            self.dirty[reading.meter_id] = partition
            for iv in changed:
                self.intervals[(iv.meter_id, iv.interval_start_ms)] = iv
            self.dead.extend(dead)
            # the readings audit holds only what the stream used (issue 8, item 9)
            if not any(d.code in logic.NOT_USED for d in dead):
                self.readings.append(reading)
        self.events.append(event)

    def pending(self) -> int:
        """Readings waiting for the next flush."""
        return len(self.readings)

    def _cut(self) -> _Cut:
        """Take the batch (synchronously: the agent may go on applying readings meanwhile)."""
        rows = []
        dead = self.dead
        for iv in self.intervals.values():
            try:
                rows.append(logic.interval_row(self.ctx, iv))
            except Exception as exc:  # keep the energy, say why the emissions are missing
                log.exception("emission rows failed for %r", iv)
                dead.append(logic.processing_error(
                    {"meter_id": iv.meter_id, "interval_start_ms": iv.interval_start_ms},
                    "emission_rows", exc))
        states = {meter: (partition, self.states[meter].to_bytes())
                  for meter, partition in self.dirty.items()}
        cut = _Cut(self.events, rows, self.readings, dead, states)
        self.events, self.readings, self.dead = [], [], []
        self.intervals, self.dirty = {}, {}
        return cut

    async def flush(self) -> None:
        """Write the batch: database, then changelog, then acknowledge."""
        async with self.lock:
            if not self.events:
                if self.sink.refresh_pending:  # the load stopped: bring the rollups up to date
                    await self.sink.with_retry("refresh rollups", self.sink.refresh_rollups)
                return
            t = time.perf_counter()
            cut = self._cut()
            # under load (a full batch), rollups at most every ROLLUP_REFRESH_S; a flush by the
            # timer (light load) refreshes them in its own transaction
            full = len(cut.readings) >= self.flush_readings
            await self.sink.with_retry("write intervals", self.sink.write_batch,
                                       intervals=cut.intervals, readings=cut.readings,
                                       dead=cut.dead,
                                       refresh_within_s=ROLLUP_REFRESH_S if full else 0.0)
            self.store.put_many(cut.states)
            for meter in cut.states:
                if meter not in self.dirty:
                    # not touched since the cut: the table holds it; drop the live copy
                    self.states.pop(meter, None)
            for event in cut.events:
                event.ack()
            self.flushed_readings += len(cut.readings)
            self.flush_seconds += time.perf_counter() - t

    def forget(self) -> None:
        """Drop the live copies of states (after a rebalance: the table is the truth)."""
        for meter in list(self.states):
            if meter not in self.dirty:
                del self.states[meter]


class DeadLetterBatcher:
    """Collects ingest's dead letters and writes them in batches, then acknowledges them."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.events: list[Any] = []
        self.lock = asyncio.Lock()

    async def add(self, event: Any) -> None:
        """Queue ``event``; flush when the batch is full."""
        self.events.append(event)
        if len(self.events) >= DEAD_BATCH:
            await self.flush()

    async def flush(self) -> None:
        """Write what is queued, then acknowledge it."""
        async with self.lock:
            if not self.events:
                return
            batch, self.events = self.events, []
            letters = []
            for e in batch:
                try:
                    letters.append(decode(e.value, DeadLetter))
                except Exception as exc:  # keep what could not be read, as text
                    letters.append(make_dead_letter(
                        stage="stream", code="processing_error",
                        reason=f"dead letter decode: {exc}", mqtt_topic="",
                        payload=bytes(e.value or b""), received_ms=int(time.time() * 1000)))
            await self.sink.with_retry("write dead letters", self.sink.write_batch, dead=letters)
            for event in batch:
                event.ack()


#: The topics our agents consume (their offsets are ours; the changelog's are faust's).
AGENT_TOPICS = frozenset({TOPIC_READINGS, TOPIC_DEAD_LETTERS})


def head_is_missing(acked_min: int, floor: int, floor_in_gap: bool) -> bool:
    """Whether the record at offset ``floor`` (the next offset to commit: the committed offset,
    or the log start of a partition never committed) is still unacknowledged while later ones
    are, so that nothing may be committed yet. ``floor_in_gap``: faust knows ``floor`` is no
    record (a transaction marker), which its gap bookkeeping fills in."""
    return acked_min > floor and not floor_in_gap


class _Consumer(faust_aiokafka.Consumer):
    """faust's consumer with two fixes for :data:`AGENT_TOPICS` (found at issue 10):

    * seek: a partition with no committed offset (or 0) goes back to its start when faust
      seeks to the committed offsets. faust drops the records it fetches while a rebalance or a
      recovery holds the flow, and counts on seeking back to the committed offsets afterwards
      to read them again; but aiokafka's ``seek_to_committed`` only seeks to an offset > 0, so
      on a partition that never had a commit the position stays past the dropped records (the
      rebalance test lost the first reading of five of eight meters).
    * commit: faust's check for a gap at the head of the acknowledged offsets is off by one (it
      refuses to commit only when ``min(acked) - committed > 1``, and not at all when nothing
      was committed), so when the record at the committed offset itself was dropped as above
      and the next one acknowledged, faust committed past it: one whole record (a gateway's
      message of 50 readings) lost, seen once in the 10,000-meter benchmark. Here nothing is
      committed while the record at the committed offset (or at the log start) is not
      acknowledged. A hole that lasts :data:`HOLE_RESEEK_S` makes the consumer seek the
      partition back to it: the record is read again (the later ones too: duplicates, which
      the counters and the upserts absorb), so a live stream is not held up until the next
      rebalance."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._floor: dict[Any, int] = {}  # tp -> committed offset or log start, at the seek
        self._hole_since: dict[tuple[Any, int], float] = {}  # (tp, offset) -> monotonic [s]
        self._reread_tasks: set[asyncio.Future[None]] = set()

    async def seek_to_committed(self) -> Mapping[Any, int]:
        committed = dict(await super().seek_to_committed())
        ours = [tp for tp in committed if tp.topic in AGENT_TOPICS]
        earliest = await self.earliest_offsets(*ours) if ours else {}
        for tp in ours:
            start = int(earliest.get(tp) or 0)
            offset = committed[tp]
            if not offset:
                # 0: the start of the log; past retention, auto_offset_reset=earliest applies
                await self.seek(tp, 0)
            self._floor[tp] = max(int(offset or 0), start)
        return committed

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        if acked and tp.topic in AGENT_TOPICS:
            floor = max(self._committed_offset[tp] or 0, self._floor.get(tp, 0))
            if head_is_missing(min(acked), floor, self._gap[tp].overlaps(floor)):
                self._maybe_reread(tp, floor, len(acked))
                return None
        new: int | None = super()._new_offset(tp)
        return new

    def _maybe_reread(self, tp: Any, floor: int, waiting: int) -> None:
        """Seek ``tp`` back to ``floor`` once the hole there has lasted HOLE_RESEEK_S."""
        since = self._hole_since
        now = time.monotonic()
        first = since.setdefault((tp, floor), now)
        if now - first < HOLE_RESEEK_S:
            return
        since[(tp, floor)] = now  # the next attempt, if still needed, HOLE_RESEEK_S later
        log.warning("重新读取 re-reading %s from offset %d: that record was not processed while "
                    "%d later ones were (commits held meanwhile)", tp, floor, waiting)

        async def reread() -> None:
            try:
                await self.seek(tp, floor)
            except Exception as exc:  # e.g. the partition was revoked meanwhile
                log.warning("re-read of %s from %d not done: %r", tp, floor, exc)

        task = asyncio.ensure_future(reread())
        self._reread_tasks.add(task)  # kept until done (a weakly referenced task may be lost)
        task.add_done_callback(self._reread_tasks.discard)


class _Transport(faust_aiokafka.Transport):
    """faust's Kafka transport with :class:`_Consumer`."""

    Consumer = _Consumer


class _StreamApp(faust.App):
    """The faust app with :class:`_Transport` for its consumer."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


#: RocksDB options of each partition's database (faust's defaults are sized for big tables:
#: 64 MiB write buffers per partition; ours hold a few KiB per meter).
ROCKSDB_OPTIONS = {"driver": "rocksdict", "write_buffer_size": 8 * 1024 * 1024,
                   "max_write_buffer_number": 2, "block_cache_size": 16 * 1024 * 1024,
                   "target_file_size_base": 16 * 1024 * 1024}


def create_app(settings: Settings, ctx: logic.StreamContext) -> faust.App:
    """Build the faust app with its topics, table and agents."""
    if settings.stream_store not in ("rocksdb", "memory"):
        raise ValueError(f"NZC_STREAM_STORE must be rocksdb or memory, not "
                         f"{settings.stream_store!r}")
    app = _StreamApp(
        "nzc-stream",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=f"{settings.stream_store}://",
        datadir=str(settings.stream_state_root),
        key_serializer="json",
        value_serializer="json",
        topic_partitions=settings.topic_partitions,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        # changelog values are a few KiB: let the producer fill real batches
        producer_linger=0.02,
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=4 * 1024 * 1024,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        # a worker killed without leaving the group holds its partitions this long
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=max(settings.kafka_session_timeout_s / 10, 0.5),
    )
    readings_t = app.topic(TOPIC_READINGS, key_serializer="raw", value_serializer="raw")
    dead_t = app.topic(TOPIC_DEAD_LETTERS, key_serializer="raw", value_serializer="raw")
    meter_state = app.Table(
        "meter_state",
        default=None,
        partitions=settings.topic_partitions,
        key_type=str,
        value_type=bytes,
        options=dict(ROCKSDB_OPTIONS) if settings.stream_store == "rocksdb" else None,
        # a meter's whole state is written once per flush: roll segments often so that
        # compaction keeps the changelog short (what a worker without local state recovers)
        extra_topic_configs={
            "segment.ms": 60_000,
            "min.cleanable.dirty.ratio": 0.1,
            "delete.retention.ms": 3_600_000,
        },
    )
    # values are MeterState.to_bytes() (decode_state); faust would pick JSON for any type that
    # is not a model, and builds the store and the changelog topic on first use, after this
    meter_state.value_serializer = "raw"  # type: ignore[attr-defined]
    sink = Sink(settings.database_url)
    batcher = IntervalBatcher(ctx, StateStore(meter_state), sink)
    dead = DeadLetterBatcher(sink)

    @app.agent(readings_t, name="compute_intervals")
    async def compute_intervals(stream: Any) -> None:
        async for event in stream.noack().events():
            batcher.apply(event)
            if batcher.pending() >= batcher.flush_readings:
                await batcher.flush()

    @app.agent(dead_t, name="store_dead_letters")
    async def store_dead_letters(stream: Any) -> None:
        async for event in stream.noack().events():
            await dead.add(event)

    @app.timer(interval=FLUSH_WITHIN_S)  # type: ignore[untyped-decorator]
    async def flush_sinks() -> None:
        await batcher.flush()
        await dead.flush()

    async def on_revoked(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # faust waited for every record to be acknowledged (our flushes) before this signal
        batcher.forget()

    async def on_assigned(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        signal_ready("stream partitions assigned")  # explicit readiness (core.readiness)

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)
    return app


async def _kafka_cluster_id(settings: Settings) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                request_timeout_ms=30_000)
    await admin.start()
    try:
        return str((await admin.describe_cluster()).get("cluster_id") or "")
    finally:
        await admin.close()


def check_local_state(datadir: Path, cluster_id: str) -> bool:
    """Keep the workers' local state only if it was written against Kafka cluster
    ``cluster_id``; otherwise delete it (its recorded changelog offsets mean nothing there).
    Returns whether it was kept. Workers starting together check one at a time (a lock file
    beside the folder), before any of them opens a database."""
    datadir.parent.mkdir(parents=True, exist_ok=True)
    with open(datadir.parent / f".{datadir.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _check_local_state(datadir, cluster_id)


def _check_local_state(datadir: Path, cluster_id: str) -> bool:
    marker = datadir / "kafka-cluster-id"
    kept = True
    if datadir.exists():
        seen = marker.read_text(encoding="utf-8").strip() if marker.exists() else ""
        if seen != cluster_id or not cluster_id:
            log.warning("本地状态属于另一个 Kafka 集群，已删除 local meter states in %s were "
                        "written against Kafka cluster %r, not %r: deleted, recovering from "
                        "the changelog", datadir, seen, cluster_id)
            shutil.rmtree(datadir)
            kept = False
    datadir.mkdir(parents=True, exist_ok=True)
    if cluster_id:
        marker.write_text(cluster_id + "\n", encoding="utf-8")
    return kept


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Start one stream worker in the foreground (blocks until stopped)."""
    from core.factors_io import load_factor_library
    from db.registry_store import ensure_registry_stored

    registry = load_registry(settings.registry_path)
    # the writer role may not write the registry: check it, store it as the owner if changed
    ensure_registry_stored(settings, registry, str(settings.registry_path),
                           registry_text(settings.registry_path))
    ctx = logic.StreamContext(
        registry=registry,
        factors=load_factor_library(settings.factors_path),
        interval_s=settings.interval_s,
        lateness_s=settings.lateness_s,
        max_gap_s=settings.max_gap_s,
    )
    if settings.stream_store == "rocksdb":
        check_local_state(settings.stream_state_root, asyncio.run(_kafka_cluster_id(settings)))
    app = create_app(settings, ctx)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # faust's progress spinner sets the root logger to DEBUG, so that every debug call of
    # faust and aiokafka builds a record only to drop it (~7 % of a busy worker)
    worker.spinner = None
    worker.execute_from_commandline()
