"""Typed, frozen settings for every service, read from environment variables.

One place names every ``NZC_*`` variable; ``docker-compose.yml`` and the local launcher
(``nzc services``) use the same names and default ports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not an integer") from exc


@dataclass(frozen=True)
class Settings:
    """Connection and pipeline settings.

    Ports are non-default on purpose so that the project never collides with a system
    Mosquitto (1883), Kafka (9092) or PostgreSQL (5432).
    """

    state_dir: Path
    mqtt_host: str
    mqtt_port: int
    kafka_bootstrap: str
    kafka_controller_port: int
    pg_port: int
    database_url: str = field(repr=False)
    database_admin_url: str = field(repr=False)
    database_reader_url: str = field(repr=False)
    registry_path: Path
    interval_s: int
    lateness_s: int
    max_clock_skew_s: int
    topic_partitions: int
    processing_guarantee: str
    kafka_session_timeout_s: float
    max_gap_s: float
    factors_path: Path | None
    # MQTT topic filters the ingest bridge subscribes to (NZC_MQTT_SUBSCRIPTIONS, comma-separated;
    # default DEFAULT_MQTT_SUBSCRIPTIONS: our format and every supported gateway format)
    mqtt_subscriptions: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from ``NZC_*`` environment variables with local defaults."""
        state_dir = Path(_env("NZC_STATE_DIR", str(REPO_ROOT / ".state")))
        pg_port = _env_int("NZC_PG_PORT", 15432)
        db = "nzc"
        return cls(
            state_dir=state_dir,
            mqtt_host=_env("NZC_MQTT_HOST", "127.0.0.1"),
            mqtt_port=_env_int("NZC_MQTT_PORT", 18831),
            kafka_bootstrap=_env("NZC_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            kafka_controller_port=_env_int("NZC_KAFKA_CONTROLLER_PORT", 19093),
            pg_port=pg_port,
            database_url=_env(
                "NZC_DATABASE_URL",
                f"postgresql://nzc_writer:nzc_writer@127.0.0.1:{pg_port}/{db}",
            ),
            database_admin_url=_env(
                "NZC_DATABASE_ADMIN_URL", f"postgresql://postgres@127.0.0.1:{pg_port}/{db}"
            ),
            database_reader_url=_env(
                "NZC_DATABASE_READER_URL",
                f"postgresql://nzc_reader:nzc_reader@127.0.0.1:{pg_port}/{db}",
            ),
            registry_path=Path(
                _env("NZC_REGISTRY", str(REPO_ROOT / "simulators" / "sites"))
            ),
            interval_s=_env_int("NZC_INTERVAL_S", 900),
            lateness_s=_env_int("NZC_LATENESS_S", 2 * 3600),
            max_clock_skew_s=_env_int("NZC_MAX_CLOCK_SKEW_S", 300),
            topic_partitions=_env_int("NZC_TOPIC_PARTITIONS", 12),
            processing_guarantee=_env("NZC_PROCESSING_GUARANTEE", "at_least_once"),
            kafka_session_timeout_s=float(_env_int("NZC_KAFKA_SESSION_TIMEOUT_S", 30)),
            max_gap_s=float(_env_int("NZC_MAX_GAP_S", 1800)),
            factors_path=Path(p) if (p := _env("NZC_FACTORS", "")) else None,
            mqtt_subscriptions=tuple(
                t.strip()
                for t in _env("NZC_MQTT_SUBSCRIPTIONS", ",".join(DEFAULT_MQTT_SUBSCRIPTIONS))
                .split(",")
                if t.strip()
            ),
        )


# Kafka topic names: noun.stage.v1 (STYLE.md).
TOPIC_READINGS = "readings.valid.v1"
TOPIC_DEAD_LETTERS = "readings.deadletter.v1"
TOPIC_ENERGY = "energy.interval.v1"
TOPIC_EMISSIONS = "emissions.interval.v1"
ALL_TOPICS = (TOPIC_READINGS, TOPIC_DEAD_LETTERS, TOPIC_ENERGY, TOPIC_EMISSIONS)

# MQTT topic scheme of our own JSON format: nzc/v1/<site>/<gateway>/readings
MQTT_TOPIC_PREFIX = "nzc/v1"
MQTT_SUBSCRIPTION = "nzc/v1/+/+/readings"
# Every format ingest decodes (ingest/decoders): ours, Tasmota, Shelly Gen1 and Gen2+,
# Zigbee2MQTT (friendly names may contain '/'), EMQ Neuron (default upload topics
# /neuron/<app>/upload before 2.4, /neuron/<app>/<driver>/<group> since), Sparkplug B.
DEFAULT_MQTT_SUBSCRIPTIONS = (
    MQTT_SUBSCRIPTION,
    "tele/+/SENSOR",
    "shellies/+/emeter/+/+",
    "+/events/rpc",
    "zigbee2mqtt/#",
    "/neuron/#",
    "spBv1.0/#",
)


def mqtt_topic(site_id: str, gateway_id: str) -> str:
    """The MQTT topic on which gateway ``gateway_id`` of ``site_id`` publishes readings."""
    return f"{MQTT_TOPIC_PREFIX}/{site_id}/{gateway_id}/readings"
