"""The MQTT -> Kafka bridge: validate, normalise, produce, then acknowledge.

For each MQTT message, in arrival order: decode and validate (:mod:`ingest.validate`; every
supported gateway format, see :mod:`ingest.decoders`; the Sparkplug B decoder state of aliases
and sequence numbers lives here, one per process), produce its accepted readings as ONE
:class:`~core.records.ReadingBatch` per registered gateway (usually one per message) to
``readings.valid.v1`` keyed ``<site>/<gateway>`` (a meter belongs to one gateway, so one
meter's readings stay ordered on one partition) and every rejection
(:class:`~core.records.DeadLetter`) to ``readings.deadletter.v1``, wait until Kafka
acknowledged all of them (``acks=all``, idempotent producer), and only then PUBACK the message.
Acknowledgements go out in the order the messages arrived. A Kafka failure is retried with
back-off and nothing is acknowledged meanwhile: the broker stops sending once
``ReceiveMaximum`` messages are unacknowledged (back-pressure), and keeps them for us.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from carbon.registry import Registry
from core.mqtt_client import ingest_auth
from core.records import DeadLetter, ReadingBatch, ReadingRecord, encode, make_dead_letter
from core.registry_yaml import load_registry
from core.settings import (
    DEFAULT_MQTT_SUBSCRIPTIONS,
    TOPIC_DEAD_LETTERS,
    TOPIC_READINGS,
    Settings,
)
from ingest.decoders.sparkplug import SparkplugState
from ingest.mqtt import InboundMessage, MqttSource
from ingest.validate import decode_message

log = logging.getLogger(__name__)


@dataclass
class BridgeStats:
    """Counters since start."""

    messages: int = 0
    readings: int = 0
    rejected: int = 0
    acked: int = 0
    kafka_retries: int = 0
    sparkplug_lost: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        """One human-readable status line."""
        dt = max(time.monotonic() - self.started, 1e-9)
        return (f"messages={self.messages} readings={self.readings} rejected={self.rejected} "
                f"acked={self.acked} kafka_retries={self.kafka_retries} "
                f"sparkplug_lost={self.sparkplug_lost} readings/s={self.readings / dt:.0f}")


def batches(registry: Registry, readings: list[ReadingRecord]) -> list[ReadingBatch]:
    """The readings of one message grouped by their meter's registered gateway, in order."""
    groups: dict[str, list[ReadingRecord]] = {}
    for r in readings:
        meter = registry.meter(r.meter_id)
        key = f"{r.site_id}/{meter.gateway_id}" if meter is not None else r.meter_id
        groups.setdefault(key, []).append(r)
    return [ReadingBatch(key=k, readings=v) for k, v in groups.items()]


class Bridge:
    """Runs the bridge until stopped."""

    def __init__(
        self, settings: Settings, registry: Registry, client_id: str = "nzc-ingest"
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.client_id = client_id
        self.stats = BridgeStats()
        self.sparkplug = SparkplugState()
        self._stop = asyncio.Event()

    def _decode(self, msg: InboundMessage) -> tuple[list[ReadingRecord], list[DeadLetter]]:
        """Decode ``msg`` once (the Sparkplug B state must see each message once, so a Kafka
        retry re-sends these records instead of decoding again)."""
        try:
            readings, dead = decode_message(
                self.registry, msg.topic, msg.payload, received_ms=msg.received_ms,
                max_clock_skew_s=self.settings.max_clock_skew_s, sparkplug=self.sparkplug,
            )
        except Exception as exc:  # never crash on input; keep the message as a rejection
            log.exception("decoding a message on %s failed", msg.topic)
            readings, dead = [], [make_dead_letter(
                stage="ingest", code="decoder_error", reason=f"{type(exc).__name__}: {exc}",
                mqtt_topic=msg.topic, payload=msg.payload, received_ms=msg.received_ms)]
        self.stats.messages += 1
        self.stats.readings += len(readings)
        self.stats.rejected += len(dead)
        self.stats.sparkplug_lost = self.sparkplug.lost_messages
        return readings, dead

    async def _produce(
        self, producer: AIOKafkaProducer, topic: str, readings: list[ReadingRecord],
        dead: list[DeadLetter],
    ) -> list[Awaitable[Any]]:
        futures = []
        for batch in batches(self.registry, readings):
            futures.append(await producer.send(
                TOPIC_READINGS, key=batch.key.encode(), value=encode(batch)))
        for d in dead:
            key = (d.meter_id or topic).encode()
            futures.append(await producer.send(TOPIC_DEAD_LETTERS, key=key, value=encode(d)))
        return futures

    async def _deliver(self, producer: AIOKafkaProducer, msg: InboundMessage,
                       readings: list[ReadingRecord], dead: list[DeadLetter]) -> None:
        """Produce everything from ``msg`` until Kafka acknowledged all of it."""
        delay = 0.2
        while True:
            try:
                futures = await self._produce(producer, msg.topic, readings, dead)
                await asyncio.gather(*futures)
                return
            except KafkaError as exc:
                self.stats.kafka_retries += 1
                log.warning("Kafka produce failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def run(self) -> None:
        """Connect to Kafka and MQTT and bridge until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[InboundMessage] = asyncio.Queue()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            compression_type=None,
        )
        await producer.start()
        source = MqttSource(self.settings.mqtt_host, self.settings.mqtt_port, self.client_id,
                            self.settings.mqtt_subscriptions or DEFAULT_MQTT_SUBSCRIPTIONS,
                            queue, loop, auth=ingest_auth(self.settings))
        source.start()
        # Records are handed to the producer in arrival order (so one meter's readings keep
        # their order); the waits for Kafka's acks overlap; PUBACKs follow arrival order.
        Records = tuple[list[ReadingRecord], list[DeadLetter]]
        pending: asyncio.Queue[tuple[InboundMessage, Records, list[Awaitable[Any]]]] = (
            asyncio.Queue(maxsize=2000))

        async def read() -> None:
            while True:
                msg = await queue.get()
                records = self._decode(msg)
                try:
                    futures = await self._produce(producer, msg.topic, *records)
                except KafkaError as exc:
                    log.warning("Kafka refused a record (%s); producing again", exc)
                    self.stats.kafka_retries += 1
                    await self._deliver(producer, msg, *records)
                    futures = []
                await pending.put((msg, records, futures))

        async def acknowledge() -> None:
            while True:
                msg, records, futures = await pending.get()
                try:
                    await asyncio.gather(*futures)
                except KafkaError as exc:
                    log.warning("Kafka did not acknowledge a message (%s); producing again", exc)
                    self.stats.kafka_retries += 1
                    await self._deliver(producer, msg, *records)
                source.ack(msg)
                self.stats.acked += 1

        async def report() -> None:
            while True:
                await asyncio.sleep(10)
                log.info("ingest: %s", self.stats.line())

        tasks = [asyncio.create_task(c) for c in (read(), acknowledge(), report())]
        try:
            await self._stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            source.stop()
            await producer.stop()

    def stop(self) -> None:
        """Ask :meth:`run` to return (unacknowledged messages stay with the broker)."""
        self._stop.set()


def run_ingest(settings: Settings, client_id: str = "nzc-ingest") -> None:
    """Run the bridge in the foreground until SIGINT/SIGTERM."""
    bridge = Bridge(settings, load_registry(settings.registry_path), client_id)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, bridge.stop)
        await bridge.run()
        print(f"ingest stopped: {bridge.stats.line()}", flush=True)

    asyncio.run(main())
