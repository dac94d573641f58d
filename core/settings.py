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


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean (use 1 or 0)")


def _env_path(name: str) -> Path | None:
    raw = _env(name, "")
    return Path(raw) if raw else None


def _with_password(url: str, passfile: Path) -> str:
    """``url`` with the password of its user from ``passfile`` (pgpass format) inserted when
    the URL names a user but no password; unchanged otherwise (deployments pass complete
    URLs in environment variables)."""
    from core.secret_store import url_with_password

    return url_with_password(url, passfile)


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
    # The database URLs as configured (NZC_DATABASE_*_URL or the local default, usually
    # without a password); read them through the properties database_url, database_admin_url
    # and database_reader_url, which add the password from the state folder
    # (core.secret_store).
    database_url_config: str = field(repr=False)
    database_admin_url_config: str = field(repr=False)
    database_reader_url_config: str = field(repr=False)
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
    #: where a stream worker keeps the meter states: "rocksdb" (local files, a restart reads
    #: only the changelog written since) or "memory" (a restart replays the whole changelog)
    stream_store: str = "rocksdb"
    #: the stream workers' local state (RocksDB files, one database per partition), shared by
    #: the workers of one machine (NZC_STREAM_STATE_DIR; default <state>/stream-state)
    stream_state_dir: Path | None = None
    # --- MQTT credentials and TLS (issue 9; core.secret_store, core.mqtt_identities) ---
    # NZC_MQTT_TLS=1: clients connect with TLS to NZC_MQTT_PORT and the broker has no
    # plaintext listener; 0 (local default): NZC_MQTT_PORT is plaintext (with passwords and
    # ACLs) and the launcher adds a TLS listener on NZC_MQTT_TLS_PORT.
    mqtt_tls: bool = False
    mqtt_tls_port: int = 18832
    # the ingest bridge's MQTT identity (NZC_MQTT_USERNAME / NZC_MQTT_PASSWORD; without a
    # password variable, the one the launcher stored in <state>/secrets/mqtt.json)
    mqtt_username: str = "nzc-ingest"
    mqtt_password_config: str | None = field(default=None, repr=False)
    # the health probe's and the alert receiver's MQTT passwords (NZC_MQTT_HEALTH_PASSWORD,
    # NZC_MQTT_ALERTS_PASSWORD): deployments (docker compose) set them from .env; without
    # them the launcher generates and stores them like every other password
    mqtt_health_password_config: str | None = field(default=None, repr=False)
    mqtt_alerts_password_config: str | None = field(default=None, repr=False)
    mqtt_ca_file: Path | None = None  # NZC_MQTT_CA_FILE (default: the launcher's local CA)
    mqtt_cert_file: Path | None = None  # NZC_MQTT_CERT_FILE, client certificate (optional)
    mqtt_key_file: Path | None = None  # NZC_MQTT_KEY_FILE, its private key
    # the gateways' MQTT passwords, for the simulator (NZC_MQTT_GATEWAY_CREDENTIALS)
    mqtt_credentials_path: Path = Path(".state/secrets/mqtt.json")
    mqtt_message_size_limit: int = 1024 * 1024  # NZC_MQTT_MESSAGE_SIZE_LIMIT [bytes]
    mqtt_max_queued_bytes: int = 256 * 1024 * 1024  # NZC_MQTT_MAX_QUEUED_BYTES [bytes/client]
    mqtt_log_debug: bool = False  # NZC_MQTT_LOG_DEBUG=1: broker logs every packet and denial
    pg_passfile: Path = Path(".state/secrets/pgpass")  # NZC_PG_PASSFILE (pgpass format)

    @property
    def database_url(self) -> str:
        """The writer's URL (sink), with its password from the state folder if needed."""
        return _with_password(self.database_url_config, self.pg_passfile)

    @property
    def database_admin_url(self) -> str:
        """The owner's URL (migrations, registry), with its password if needed."""
        return _with_password(self.database_admin_url_config, self.pg_passfile)

    @property
    def database_reader_url(self) -> str:
        """The read-only role's URL, with its password if needed."""
        return _with_password(self.database_reader_url_config, self.pg_passfile)

    @property
    def mqtt_password(self) -> str | None:
        """The ingest identity's MQTT password: NZC_MQTT_PASSWORD, else the stored one."""
        if self.mqtt_password_config is not None:
            return self.mqtt_password_config
        from core.secret_store import stored_mqtt_password

        return stored_mqtt_password(self.mqtt_credentials_path, self.mqtt_username)

    def mqtt_service_passwords_config(self) -> dict[str, str]:
        """``{user: password}`` of the service users whose password the environment sets
        (ingest bridge, health probe, alert receiver); empty for the local launcher."""
        from core.mqtt_identities import ALERTS_USER, HEALTH_USER

        pairs = ((self.mqtt_username, self.mqtt_password_config),
                 (HEALTH_USER, self.mqtt_health_password_config),
                 (ALERTS_USER, self.mqtt_alerts_password_config))
        return {user: pw for user, pw in pairs if pw is not None}

    @property
    def stream_state_root(self) -> Path:
        """The stream workers' local state folder (:attr:`stream_state_dir`)."""
        return self.stream_state_dir or self.state_dir / "stream-state"

    @property
    def mqtt_ca_path(self) -> Path | None:
        """The CA clients verify the broker with: NZC_MQTT_CA_FILE, else the launcher's."""
        if self.mqtt_ca_file is not None:
            return self.mqtt_ca_file
        return self.state_dir / "mosquitto" / "tls" / "ca.crt"

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
            database_url_config=_env(
                "NZC_DATABASE_URL",
                f"postgresql://nzc_writer@127.0.0.1:{pg_port}/{db}",
            ),
            database_admin_url_config=_env(
                "NZC_DATABASE_ADMIN_URL", f"postgresql://postgres@127.0.0.1:{pg_port}/{db}"
            ),
            database_reader_url_config=_env(
                "NZC_DATABASE_READER_URL",
                f"postgresql://nzc_reader@127.0.0.1:{pg_port}/{db}",
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
            stream_store=_env("NZC_STREAM_STORE", "rocksdb"),
            stream_state_dir=Path(d) if (d := _env("NZC_STREAM_STATE_DIR", "")) else None,
            max_gap_s=float(_env_int("NZC_MAX_GAP_S", 1800)),
            factors_path=Path(p) if (p := _env("NZC_FACTORS", "")) else None,
            mqtt_subscriptions=tuple(
                t.strip()
                for t in _env("NZC_MQTT_SUBSCRIPTIONS", ",".join(DEFAULT_MQTT_SUBSCRIPTIONS))
                .split(",")
                if t.strip()
            ),
            mqtt_tls=_env_bool("NZC_MQTT_TLS", False),
            mqtt_tls_port=_env_int("NZC_MQTT_TLS_PORT", 18832),
            mqtt_username=_env("NZC_MQTT_USERNAME", "nzc-ingest"),
            mqtt_password_config=os.environ.get("NZC_MQTT_PASSWORD") or None,
            mqtt_health_password_config=os.environ.get("NZC_MQTT_HEALTH_PASSWORD") or None,
            mqtt_alerts_password_config=os.environ.get("NZC_MQTT_ALERTS_PASSWORD") or None,
            mqtt_ca_file=_env_path("NZC_MQTT_CA_FILE"),
            mqtt_cert_file=_env_path("NZC_MQTT_CERT_FILE"),
            mqtt_key_file=_env_path("NZC_MQTT_KEY_FILE"),
            mqtt_credentials_path=Path(_env("NZC_MQTT_GATEWAY_CREDENTIALS",
                                            str(state_dir / "secrets" / "mqtt.json"))),
            mqtt_message_size_limit=_env_int("NZC_MQTT_MESSAGE_SIZE_LIMIT", 1024 * 1024),
            mqtt_max_queued_bytes=_env_int("NZC_MQTT_MAX_QUEUED_BYTES", 256 * 1024 * 1024),
            mqtt_log_debug=_env_bool("NZC_MQTT_LOG_DEBUG", False),
            pg_passfile=Path(_env("NZC_PG_PASSFILE", str(state_dir / "secrets" / "pgpass"))),
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
