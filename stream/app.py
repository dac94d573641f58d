"""The faust-streaming application: agents named verb_object in pipeline order.

``readings.valid.v1`` --compute_energy--> ``energy.interval.v1`` --apply_factors-->
``emissions.interval.v1`` --write_intervals--> PostgreSQL. Also ``store_readings`` (audit of
accepted readings) and ``store_dead_letters`` (every rejection with its reason).

Each agent is a thin wrapper around a plain function in :mod:`stream.logic`. Offsets are
committed by faust only after an event is acknowledged; the sink agents acknowledge an event
only after the database committed the batch holding it (:class:`SinkBatcher`). faust flushes
the producer (including table changelog writes) before it commits offsets, so outputs and
state are never behind committed offsets; a replay after a crash re-sends the same interval
totals, which the sink upserts to the same rows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from db.sink import Sink
from nzc.registry import load_registry, registry_text
from nzc.settings import (
    TOPIC_DEAD_LETTERS,
    TOPIC_EMISSIONS,
    TOPIC_ENERGY,
    TOPIC_READINGS,
    Settings,
)
from stream import logic

log = logging.getLogger(__name__)

SINK_BATCH = 2000
SINK_WITHIN_S = 0.5


class SinkBatcher:
    """Collects events for one sink and writes them as one batch when ``SINK_BATCH`` are
    waiting or when the timer fires (every ``SINK_WITHIN_S``), then acknowledges them.

    The agents iterate with ``noack()``: an event is acknowledged (its offset may be committed)
    only after the batch holding it was committed by the database. A failing database makes
    :meth:`add` wait (the flush retries), so the agent stops pulling events: back-pressure,
    never a dropped batch. (faust's own ``take()`` acknowledges a batch even when the agent
    raised, and stalled here for minutes under load.)
    """

    def __init__(self, what: str, sink: Sink, write: Any) -> None:
        self.what, self.sink, self.write = what, sink, write
        self.events: list[Any] = []
        self.lock = asyncio.Lock()

    async def add(self, event: Any) -> None:
        """Queue ``event``; flush when the batch is full."""
        self.events.append(event)
        if len(self.events) >= SINK_BATCH:
            await self.flush()

    async def flush(self) -> None:
        """Write what is queued, then acknowledge it."""
        async with self.lock:
            if not self.events:
                return
            batch, self.events = self.events, []
            await self.sink.with_retry(self.what, self.write, [e.value for e in batch])
            for event in batch:
                event.ack()


def _key(raw: Any) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def create_app(settings: Settings, ctx: logic.StreamContext) -> faust.App:
    """Build the faust app with its topics, table and agents."""
    app = faust.App(
        "nzc-stream",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        # table keys (meter ids) and values (MeterState dicts) round-trip through JSON
        key_serializer="json",
        value_serializer="json",
        topic_partitions=settings.topic_partitions,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        # a worker killed without leaving the group holds its partitions this long
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=max(settings.kafka_session_timeout_s / 10, 0.5),
    )
    readings_t = app.topic(TOPIC_READINGS, key_serializer="raw", value_serializer="json")
    energy_t = app.topic(TOPIC_ENERGY, key_serializer="raw", value_serializer="json")
    emissions_t = app.topic(TOPIC_EMISSIONS, key_serializer="raw", value_serializer="json")
    dead_t = app.topic(TOPIC_DEAD_LETTERS, key_serializer="raw", value_serializer="json")
    meter_state = app.Table(
        "meter_state",
        default=None,
        partitions=settings.topic_partitions,
        # every update writes the whole meter state: roll segments often so that compaction
        # keeps the changelog (and a restarting worker's recovery) short
        extra_topic_configs={
            "segment.ms": 600_000,
            "min.cleanable.dirty.ratio": 0.1,
            "delete.retention.ms": 3_600_000,
        },
    )
    sink = Sink(settings.database_url)

    @app.agent(readings_t, name="compute_energy")
    async def compute_energy(stream: Any) -> None:
        async for event in stream.events():
            key = _key(event.key)
            try:
                state, records, dead = logic.compute_energy(ctx, meter_state.get(key),
                                                            event.value)
            except Exception as exc:  # one bad record must not stop the agent
                log.exception("compute_energy failed on %r", event.value)
                await dead_t.send(key=event.key, value=logic.processing_error(
                    event.value, "compute_energy", exc))
                continue
            meter_state[key] = state
            for rec in records:
                await energy_t.send(key=event.key, value=rec)
            for d in dead:
                await dead_t.send(key=event.key, value=d)

    @app.agent(energy_t, name="apply_factors")
    async def apply_factors(stream: Any) -> None:
        async for event in stream.events():
            try:
                record = logic.apply_factors(ctx, event.value)
            except Exception as exc:  # keep the energy, say why the emissions are missing
                log.exception("apply_factors failed on %r", event.value)
                await dead_t.send(key=event.key, value=logic.processing_error(
                    event.value, "apply_factors", exc))
                record = {**event.value, "energy_tce": None, "emissions": []}
            await emissions_t.send(key=event.key, value=record)

    intervals = SinkBatcher("write intervals", sink, sink.write_intervals)
    readings = SinkBatcher("write readings", sink, sink.write_readings)
    dead = SinkBatcher("write dead letters", sink, sink.write_dead_letters)

    @app.agent(emissions_t, name="write_intervals")
    async def write_intervals(stream: Any) -> None:
        async for event in stream.noack().events():
            await intervals.add(event)

    @app.agent(readings_t, name="store_readings")
    async def store_readings(stream: Any) -> None:
        async for event in stream.noack().events():
            await readings.add(event)

    @app.agent(dead_t, name="store_dead_letters")
    async def store_dead_letters(stream: Any) -> None:
        async for event in stream.noack().events():
            await dead.add(event)

    @app.timer(interval=SINK_WITHIN_S)  # type: ignore[untyped-decorator]
    async def flush_sinks() -> None:
        for batcher in (intervals, readings, dead):
            await batcher.flush()

    return app


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Start one stream worker in the foreground (blocks until stopped)."""
    from db.registry_store import ensure_registry_stored
    from nzc.factors_io import load_factor_library

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
    app = create_app(settings, ctx)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
