"""The local launcher brings up Mosquitto, Kafka and PostgreSQL, and each of them answers.

``up`` is idempotent and fast when the services already run, so this module calls it itself
(with the settings from the environment: ``tests/integration/conftest.py`` points them at
``.state/test`` and the test ports); it leaves the services running.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

import pytest

from core.settings import ALL_TOPICS, Settings
from nzc.services.manager import status, up

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def launched() -> Settings:
    """Settings of the services, after ``up`` (a no-op when they already run)."""
    s = Settings.from_env()
    up(s)
    return s


def test_status_reports_all_three_up(launched: Settings) -> None:
    report = status(launched)
    assert set(report) == {"mosquitto", "kafka", "postgres", "alertmanager", "alert-receiver"}
    for name, st in report.items():
        assert st["running"], f"{name} not running: {st}"
        assert st["answering"], f"{name} not answering: {st}"
        assert isinstance(st["pid"], int)
    assert report["mosquitto"]["port"] == launched.mqtt_port
    assert report["postgres"]["port"] == launched.pg_port
    assert report["alertmanager"]["port"] == int(os.environ["NZC_ALERTMANAGER_PORT"])


def test_mqtt_connect_and_qos1_round_trip(launched: Settings) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from core.mqtt_client import stored_auth

    topic = f"nzc/health/services/{uuid.uuid4().hex}"
    connected = threading.Event()
    subscribed = threading.Event()
    received: list[bytes] = []
    got = threading.Event()

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, rc: object, props: object
    ) -> None:
        if not getattr(rc, "is_failure", True):
            connected.set()

    def on_subscribe(
        client: mqtt.Client, userdata: object, mid: int, rcs: object, props: object
    ) -> None:
        subscribed.set()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        received.append(bytes(msg.payload))
        got.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"nzc-test-{uuid.uuid4().hex[:8]}")
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    stored_auth(launched, "nzc-health").apply(client)  # the health probe's identity
    client.connect(launched.mqtt_host, launched.mqtt_port, keepalive=10)
    client.loop_start()
    try:
        assert connected.wait(10), "no CONNACK from Mosquitto"
        client.subscribe(topic, qos=1)
        assert subscribed.wait(10), "no SUBACK from Mosquitto"
        info = client.publish(topic, b"hello", qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        info.wait_for_publish(10)
        assert got.wait(10), "published message not delivered back"
        assert received == [b"hello"]
    finally:
        client.disconnect()
        client.loop_stop()


def test_kafka_metadata_lists_our_topics(launched: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    async def describe() -> list[dict[str, object]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=launched.kafka_bootstrap)
        await admin.start()
        try:
            names = set(await admin.list_topics())
            assert set(ALL_TOPICS) <= names
            return list(await admin.describe_topics(list(ALL_TOPICS)))
        finally:
            await admin.close()

    described = asyncio.run(asyncio.wait_for(describe(), 30))
    assert {t["topic"] for t in described} == set(ALL_TOPICS)
    for topic in described:
        assert topic["error_code"] == 0, topic
        partitions = topic["partitions"]
        assert isinstance(partitions, list)
        assert len(partitions) >= launched.topic_partitions, topic
        assert all(p["leader"] >= 0 for p in partitions), topic


def test_postgres_select_1_in_project_database(launched: Settings) -> None:
    import psycopg

    with psycopg.connect(launched.database_admin_url, connect_timeout=10) as conn:
        row = conn.execute("select 1, current_database()").fetchone()
    assert row == (1, "nzc")
