"""A small, strict MQTT publisher for the simulators (the only simulator module that imports paho).

paho-mqtt 2.x ``publish()`` at QoS 1 does not raise when it cannot queue a message: it returns
``MQTT_ERR_QUEUE_SIZE`` (for instance once ~65k messages are unacknowledged and message ids
collide), and a message published while disconnected returns ``MQTT_ERR_NO_CONN``. This wrapper

* bounds the number of unacknowledged messages with a semaphore acquired before each
  ``publish()`` and released in ``on_publish`` (PUBACK received for QoS 1), default 500;
* checks every return code and raises :class:`PublishError` on anything but
  ``MQTT_ERR_SUCCESS``, and on any PUBACK whose MQTT v5 reason code is a failure
  (e.g. 0x87 not authorised);
* waits for every acknowledgement in :meth:`MqttPublisher.flush` with a bounded timeout;
* counts messages and readings, per topic.

MQTT v5, ``CallbackAPIVersion.VERSION2``, clean start, network loop in paho's thread.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["DEFAULT_MAX_INFLIGHT", "MqttPublisher", "PublishError", "PublishStats", "TopicStats"]

DEFAULT_MAX_INFLIGHT = 500


class PublishError(RuntimeError):
    """Publishing failed: no connection, a refused or unacknowledged message, a timeout."""


@dataclass
class TopicStats:
    """Counts for one topic: messages handed to the client and readings they carried."""

    messages: int = 0
    readings: int = 0


@dataclass
class PublishStats:
    """A snapshot of the publisher's counters.

    ``messages``/``readings`` were handed to paho with ``MQTT_ERR_SUCCESS``; ``acked`` messages
    got their PUBACK (QoS 1) or were written to the socket (QoS 0); ``failed`` of those carried a
    failure reason code; ``max_inflight_seen`` is the largest number of unacknowledged messages
    observed.
    """

    messages: int = 0
    readings: int = 0
    acked: int = 0
    failed: int = 0
    max_inflight_seen: int = 0
    per_topic: dict[str, TopicStats] = field(default_factory=dict)


class MqttPublisher:
    """Publish to ``host:port`` with at most ``max_inflight`` unacknowledged messages.

    ``ack_timeout_s`` [s] bounds how long :meth:`publish` waits for a free in-flight slot (a
    broker that stops acknowledging makes it raise instead of hanging). Use as a context
    manager: entering connects, a clean exit flushes, every exit disconnects.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None = None,
        qos: int = 1,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        keepalive_s: int = 30,
        ack_timeout_s: float = 30.0,
    ) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if not 1 <= max_inflight <= 60_000:
            raise ValueError(f"max_inflight must be between 1 and 60000, got {max_inflight}")
        if ack_timeout_s <= 0:
            raise ValueError(f"ack_timeout_s must be > 0 s, got {ack_timeout_s}")
        self.host = host
        self.port = port
        self.qos = qos
        self.max_inflight = max_inflight
        self.keepalive_s = keepalive_s
        self.ack_timeout_s = ack_timeout_s
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"nzc-sim-{os.getpid()}-{time.monotonic_ns() % 1_000_000}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        # paho's own window equals ours, so nothing waits in paho's internal queue; the queue
        # limit is a tripwire: if our bound ever failed, publish() would return QUEUE_SIZE and
        # we would raise instead of losing the message.
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(max_inflight + 16)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._slots = threading.Semaphore(max_inflight)
        self._lock = threading.Condition()
        self._connected = threading.Event()
        self._connect_reason: ReasonCode | None = None
        self._disconnect_reason: str | None = None
        self._failures: list[str] = []
        self._stats = PublishStats()
        self._loop_started = False

    # ----------------------------------------------------------------- paho callbacks

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connect_reason = reason_code
        if not reason_code.is_failure:
            self._disconnect_reason = None
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._disconnect_reason = str(reason_code)
        with self._lock:
            self._lock.notify_all()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._stats.acked += 1
            if reason_code.is_failure:
                self._stats.failed += 1
                if len(self._failures) < 10:
                    self._failures.append(f"message {mid} refused by the broker: {reason_code}")
            self._lock.notify_all()
        self._slots.release()

    # ----------------------------------------------------------------- public API

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect and wait up to ``timeout_s`` [s] for the broker's CONNACK."""
        try:
            self._client.connect(self.host, self.port, keepalive=self.keepalive_s, clean_start=True)
        except OSError as exc:
            raise PublishError(
                f"cannot connect to MQTT broker {self.host}:{self.port}: {exc}"
            ) from exc
        self._client.loop_start()
        self._loop_started = True
        if not self._connected.wait(timeout_s):
            self.close()
            raise PublishError(
                f"no CONNACK from MQTT broker {self.host}:{self.port} within {timeout_s} s"
            )
        rc = self._connect_reason
        if rc is None or rc.is_failure:
            self.close()
            raise PublishError(f"MQTT broker {self.host}:{self.port} refused the connection: {rc}")

    def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        """Publish ``payload`` on ``topic``, counting ``readings`` readings in it.

        Blocks while ``max_inflight`` messages are unacknowledged (at most ``ack_timeout_s``);
        raises :class:`PublishError` on a refused earlier message, a timeout or any return code
        other than ``MQTT_ERR_SUCCESS``.
        """
        if self._failures:
            raise PublishError(self._failures[0])
        if not self._slots.acquire(timeout=self.ack_timeout_s):
            raise PublishError(
                f"no acknowledgement from {self.host}:{self.port} within {self.ack_timeout_s} s "
                f"with {self.max_inflight} messages in flight"
                + (f" (disconnected: {self._disconnect_reason})" if self._disconnect_reason else "")
            )
        try:
            info = self._client.publish(topic, payload, qos=self.qos)
        except (ValueError, TypeError) as exc:
            self._slots.release()
            raise PublishError(f"cannot publish to {topic!r}: {exc}") from exc
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # The slot is not released: a message paho kept (NO_CONN) may still be acknowledged.
            raise PublishError(
                f"publish to {topic!r} failed: rc={int(info.rc)} ({mqtt.error_string(info.rc)})"
            )
        with self._lock:
            s = self._stats
            s.messages += 1
            s.readings += readings
            t = s.per_topic.get(topic)
            if t is None:
                t = s.per_topic[topic] = TopicStats()
            t.messages += 1
            t.readings += readings
            s.max_inflight_seen = max(s.max_inflight_seen, s.messages - s.acked)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait up to ``timeout_s`` [s] until every published message is acknowledged; raise
        :class:`PublishError` on a timeout or when the broker refused any message."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._stats.acked < self._stats.messages:
                left = deadline - time.monotonic()
                if left <= 0:
                    pending = self._stats.messages - self._stats.acked
                    raise PublishError(
                        f"{pending} of {self._stats.messages} messages still unacknowledged by "
                        f"{self.host}:{self.port} after {timeout_s} s"
                    )
                self._lock.wait(min(left, 0.5))
        if self._failures:
            raise PublishError(
                f"{self._stats.failed} messages refused by the broker; first: {self._failures[0]}"
            )

    @property
    def in_flight(self) -> int:
        """Messages published but not yet acknowledged."""
        with self._lock:
            return self._stats.messages - self._stats.acked

    def stats(self) -> PublishStats:
        """A copy of the counters."""
        with self._lock:
            s = self._stats
            return PublishStats(
                messages=s.messages, readings=s.readings, acked=s.acked, failed=s.failed,
                max_inflight_seen=s.max_inflight_seen,
                per_topic={k: TopicStats(v.messages, v.readings) for k, v in s.per_topic.items()},
            )

    def close(self) -> None:
        """Disconnect and stop the network thread (does not wait for acknowledgements)."""
        try:
            self._client.disconnect()
        finally:
            if self._loop_started:
                self._client.loop_stop()
                self._loop_started = False

    def __enter__(self) -> MqttPublisher:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.flush(self.ack_timeout_s)
        finally:
            self.close()
