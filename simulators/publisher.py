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

Credentials (issue 9): the broker accepts no anonymous client and each gateway may publish
only to its own topics. Unless given ``auth`` (one identity for every message), the publisher
takes the gateways' identities from the credential store of the settings
(``NZC_MQTT_GATEWAY_CREDENTIALS``, written by ``nzc services up`` / ``nzc gateways
credentials``) and publishes each message over the connection of the gateway whose rules
allow its topic (one MQTT connection per gateway, opened on first use; the in-flight bound is
shared). A topic no gateway may publish to raises :class:`PublishError` before anything is
sent. TLS options come from the same settings (``NZC_MQTT_TLS`` and the ``NZC_MQTT_*_FILE``
variables).
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

from core.mqtt_client import MqttAuthError, MqttClientAuth, tls_options
from core.settings import Settings

__all__ = ["DEFAULT_MAX_INFLIGHT", "GatewayRoutes", "MqttPublisher", "PublishError", "PublishStats",
           "TopicStats"]

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


class GatewayRoutes:
    """Which gateway identity may publish a topic: the ``publish`` filters of each gateway in
    the credential store (:mod:`core.mqtt_identities`), matched as the broker's ACL does."""

    def __init__(self, users: dict[str, dict[str, Any]], source: str) -> None:
        self._rules = [(name, [str(t) for t in entry.get("publish", [])],
                        str(entry["password"]))
                       for name, entry in sorted(users.items()) if entry.get("role") == "gateway"]
        self._source = source
        self._cache: dict[str, tuple[str, str]] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def route(self, topic: str) -> tuple[str, str]:
        """(user, password) of the first gateway allowed to publish ``topic``."""
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        for name, filters, password in self._rules:
            if any(mqtt.topic_matches_sub(f, topic) for f in filters):
                self._cache[topic] = (name, password)
                return name, password
        raise PublishError(f"no gateway in {self._source} may publish to {topic!r}: map the "
                           "device to a gateway in the registry, then run `nzc gateways "
                           "credentials`")

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayRoutes:
        """The gateways of the credential store named by ``settings`` (none if missing)."""
        from core.mqtt_identities import load_store

        path = settings.mqtt_credentials_path
        return cls(load_store(path).users, str(path))


@dataclass
class _Link:
    """One MQTT connection (one identity)."""

    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    connect_reason: ReasonCode | None = None
    disconnect_reason: str | None = None
    loop_started: bool = False


class MqttPublisher:
    """Publish to ``host:port`` with at most ``max_inflight`` unacknowledged messages.

    ``ack_timeout_s`` [s] bounds how long :meth:`publish` waits for a free in-flight slot (a
    broker that stops acknowledging makes it raise instead of hanging). Use as a context
    manager: entering connects, a clean exit flushes, every exit disconnects.

    ``auth``: publish everything as this identity. Without it: as the gateway whose rules
    allow each topic (``routes``, default from the credential store of ``settings``, default
    ``Settings.from_env()``), or anonymously when the store has no gateway.
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
        auth: MqttClientAuth | None = None,
        routes: GatewayRoutes | None = None,
        settings: Settings | None = None,
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
        self._client_id = client_id or f"nzc-sim-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
        if auth is None:
            settings = settings or Settings.from_env()
            routes = GatewayRoutes.from_settings(settings) if routes is None else routes
            auth = tls_options(settings)
        self._auth = auth
        self._routes = routes if routes else None
        self._links: dict[str | None, _Link] = {}
        self._slots = threading.Semaphore(max_inflight)
        self._lock = threading.Condition()
        self._failures: list[str] = []
        self._stats = PublishStats()
        self._started = False

    # ----------------------------------------------------------------- paho callbacks

    def _on_connect(
        self,
        client: mqtt.Client,
        link: _Link,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        link.connect_reason = reason_code
        if not reason_code.is_failure:
            link.disconnect_reason = None
        link.connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        link: _Link,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        link.disconnect_reason = str(reason_code)
        with self._lock:
            self._lock.notify_all()

    def _on_publish(
        self,
        client: mqtt.Client,
        link: _Link,
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

    # ----------------------------------------------------------------- connections

    def _open(self, username: str | None, auth: MqttClientAuth, timeout_s: float) -> _Link:
        suffix = "" if username is None else f"-{len(self._links)}"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{self._client_id}{suffix}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        link = _Link(client)
        client.user_data_set(link)
        # paho's own window equals ours, so nothing waits in paho's internal queue; the queue
        # limit is a tripwire: if our bound ever failed, publish() would return QUEUE_SIZE and
        # we would raise instead of losing the message.
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(self.max_inflight + 16)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        who = f" as {username!r}" if username else ""
        try:
            auth.apply(client)
            client.connect(self.host, self.port, keepalive=self.keepalive_s, clean_start=True)
        except (OSError, MqttAuthError, ValueError) as exc:
            raise PublishError(
                f"cannot connect to MQTT broker {self.host}:{self.port}{who}: {exc}"
            ) from exc
        client.loop_start()
        link.loop_started = True
        self._links[username] = link
        if not link.connected.wait(timeout_s):
            raise PublishError(
                f"no CONNACK from MQTT broker {self.host}:{self.port}{who} within {timeout_s} s"
            )
        rc = link.connect_reason
        if rc is None or rc.is_failure:
            hint = "" if username or auth.username else (
                " (no credentials: the broker refuses anonymous clients; `nzc services up` or "
                "`nzc gateways credentials` stores the gateways' passwords)")
            raise PublishError(
                f"MQTT broker {self.host}:{self.port} refused the connection{who}: {rc}{hint}")
        return link

    def _link_for(self, topic: str) -> _Link:
        if self._routes is None:
            link = self._links.get(None)
            return link if link is not None else self._open(None, self._auth, 10.0)
        username, password = self._routes.route(topic)
        link = self._links.get(username)
        if link is None:
            link = self._open(username, self._auth.as_user(username, password), 10.0)
        return link

    # ----------------------------------------------------------------- public API

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect and wait up to ``timeout_s`` [s] for the broker's CONNACK (with gateway
        routes, each gateway's connection opens on its first message instead)."""
        self._started = True
        if self._routes is None and None not in self._links:
            try:
                self._open(None, self._auth, timeout_s)
            except PublishError:
                self.close()
                raise

    def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        """Publish ``payload`` on ``topic``, counting ``readings`` readings in it.

        Blocks while ``max_inflight`` messages are unacknowledged (at most ``ack_timeout_s``);
        raises :class:`PublishError` on a refused earlier message, a timeout, a topic no
        identity may publish to, or any return code other than ``MQTT_ERR_SUCCESS``.
        """
        if self._failures:
            raise PublishError(self._failures[0])
        link = self._link_for(topic)
        if not self._slots.acquire(timeout=self.ack_timeout_s):
            reasons = [f"{k or 'anonymous'}: {v.disconnect_reason}"
                       for k, v in self._links.items() if v.disconnect_reason]
            raise PublishError(
                f"no acknowledgement from {self.host}:{self.port} within {self.ack_timeout_s} s "
                f"with {self.max_inflight} messages in flight"
                + (f" (disconnected: {'; '.join(reasons)})" if reasons else "")
            )
        try:
            info = link.client.publish(topic, payload, qos=self.qos)
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

    @property
    def identities(self) -> list[str]:
        """The MQTT users connected so far (``anonymous`` for a connection without one)."""
        return [k or "anonymous" for k in self._links]

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
        """Disconnect and stop the network threads (does not wait for acknowledgements)."""
        links, self._links = list(self._links.values()), {}
        for link in links:
            try:
                link.client.disconnect()
            finally:
                if link.loop_started:
                    link.client.loop_stop()
                    link.loop_started = False

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
