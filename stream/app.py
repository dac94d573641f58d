"""The faust-streaming application: agents named verb_object in pipeline order.

``readings.valid.v1`` --compute_energy--> ``energy.interval.v1`` --apply_factors-->
``emissions.interval.v1`` --write_intervals--> PostgreSQL. Also ``store_readings`` (audit of
accepted readings) and ``store_dead_letters`` (every rejection with its reason).

Each agent is a thin wrapper around a plain function in :mod:`stream.logic`. Offsets are
committed by faust only after an event is acknowledged; the sink agents acknowledge a batch
only after the database committed it (faust's ``take`` acks when the loop asks for the next
batch, and the sink retries a failed write until it succeeds, so a failed write never
acknowledges). faust flushes the producer (including table changelog writes) before it
commits offsets, so outputs and state are never behind committed offsets; a replay after a
crash re-sends the same interval totals, which the sink upserts to the same rows.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from db.sink import Sink
from nzc.registry import load_registry
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
    )
    sink = Sink(settings.database_url)

    @app.agent(readings_t, name="compute_energy")
    async def compute_energy(stream: Any) -> None:
        async for event in stream.events():
            key = _key(event.key)
            state, records, dead = logic.compute_energy(ctx, meter_state.get(key), event.value)
            meter_state[key] = state
            for rec in records:
                await energy_t.send(key=event.key, value=rec)
            for d in dead:
                await dead_t.send(key=event.key, value=d)

    @app.agent(energy_t, name="apply_factors")
    async def apply_factors(stream: Any) -> None:
        async for event in stream.events():
            await emissions_t.send(key=event.key, value=logic.apply_factors(ctx, event.value))

    @app.agent(emissions_t, name="write_intervals")
    async def write_intervals(stream: Any) -> None:
        async for batch in stream.take(SINK_BATCH, within=SINK_WITHIN_S):
            await sink.with_retry("write intervals", sink.write_intervals, batch)

    @app.agent(readings_t, name="store_readings")
    async def store_readings(stream: Any) -> None:
        async for batch in stream.take(SINK_BATCH, within=SINK_WITHIN_S):
            await sink.with_retry("write readings", sink.write_readings, batch)

    @app.agent(dead_t, name="store_dead_letters")
    async def store_dead_letters(stream: Any) -> None:
        async for batch in stream.take(SINK_BATCH, within=SINK_WITHIN_S):
            await sink.with_retry("write dead letters", sink.write_dead_letters, batch)

    return app


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Start one stream worker in the foreground (blocks until stopped)."""
    from carbon.factors import FactorLibrary
    from db.sink import sync_registry

    registry = load_registry(settings.registry_path)
    sync_registry(settings.database_url, registry)
    ctx = logic.StreamContext(
        registry=registry,
        factors=FactorLibrary(),
        interval_s=settings.interval_s,
        lateness_s=settings.lateness_s,
    )
    app = create_app(settings, ctx)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
