"""The MQTT -> Kafka bridge: validate, normalise, produce, then acknowledge.

For each MQTT message, in arrival order: decode and validate (:mod:`ingest.validate`), produce
every accepted reading to ``readings.valid.v1`` keyed by meter id (so one meter's readings stay
ordered on one partition) and every rejection to ``readings.deadletter.v1``, wait until Kafka
acknowledged all of them (``acks=all``, idempotent producer), and only then PUBACK the message.
Acknowledgements go out in the order the messages arrived. A Kafka failure is retried with
back-off and nothing is acknowledged meanwhile: the broker stops sending once
``ReceiveMaximum`` messages are unacknowledged (back-pressure), and keeps them for us.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from carbon.registry import Registry
from ingest.mqtt import InboundMessage, MqttSource
from ingest.validate import decode_message
from nzc.registry import load_registry
from nzc.settings import MQTT_SUBSCRIPTION, TOPIC_DEAD_LETTERS, TOPIC_READINGS, Settings

log = logging.getLogger(__name__)


@dataclass
class BridgeStats:
    """Counters since start."""

    messages: int = 0
    readings: int = 0
    rejected: int = 0
    acked: int = 0
    kafka_retries: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        """One human-readable status line."""
        dt = max(time.monotonic() - self.started, 1e-9)
        return (f"messages={self.messages} readings={self.readings} rejected={self.rejected} "
                f"acked={self.acked} kafka_retries={self.kafka_retries} "
                f"readings/s={self.readings / dt:.0f}")


def _encode(d: dict[str, Any]) -> bytes:
    return json.dumps(d, separators=(",", ":")).encode()


class Bridge:
    """Runs the bridge until stopped."""

    def __init__(
        self, settings: Settings, registry: Registry, client_id: str = "nzc-ingest"
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.client_id = client_id
        self.stats = BridgeStats()
        self._stop = asyncio.Event()

    async def _produce(
        self, producer: AIOKafkaProducer, msg: InboundMessage, count: bool = True
    ) -> list[Awaitable[Any]]:
        readings, dead = decode_message(
            self.registry, msg.topic, msg.payload, received_ms=msg.received_ms,
            max_clock_skew_s=self.settings.max_clock_skew_s,
        )
        if count:
            self.stats.messages += 1
            self.stats.readings += len(readings)
            self.stats.rejected += len(dead)
        futures = []
        for r in readings:
            futures.append(await producer.send(
                TOPIC_READINGS, key=r.meter_id.encode(), value=_encode(r.to_dict())))
        for d in dead:
            key = (d.meter_id or msg.topic).encode()
            futures.append(await producer.send(TOPIC_DEAD_LETTERS, key=key,
                                               value=_encode(d.to_dict())))
        return futures

    async def _deliver(self, producer: AIOKafkaProducer, msg: InboundMessage) -> None:
        """Produce everything from ``msg`` until Kafka acknowledged all of it."""
        delay = 0.2
        while True:
            try:
                futures = await self._produce(producer, msg, count=False)
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
                            MQTT_SUBSCRIPTION, queue, loop)
        source.start()
        # Records are handed to the producer in arrival order (so one meter's readings keep
        # their order); the waits for Kafka's acks overlap; PUBACKs follow arrival order.
        pending: asyncio.Queue[tuple[InboundMessage, list[Awaitable[Any]]]] = asyncio.Queue(
            maxsize=2000)

        async def read() -> None:
            while True:
                msg = await queue.get()
                await pending.put((msg, await self._produce(producer, msg)))

        async def acknowledge() -> None:
            while True:
                msg, futures = await pending.get()
                try:
                    await asyncio.gather(*futures)
                except KafkaError as exc:
                    log.warning("Kafka did not acknowledge a message (%s); producing again", exc)
                    self.stats.kafka_retries += 1
                    await self._deliver(producer, msg)
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
