"""Apache Kafka (KRaft, single node) from Maven Central jars, run by Java 17 on 127.0.0.1.

Layout below ``<state>/kafka/``:

- ``build/pom.xml``: copy of ``kafka-pom.xml``; ``libs/``: the resolved jars, with a marker
  file holding the pom's SHA-256 (a changed pom triggers a fresh download);
- ``server.properties``, ``log4j.properties``: generated on every start from the settings;
- ``cluster.id``: generated once; ``data/``: the KRaft metadata and topic logs (formatted once);
- ``logs/server.log``: the broker's log4j log; ``kafka.out``: JVM stdout/stderr.

Topics named in :data:`core.settings.ALL_TOPICS` are created with ``settings.topic_partitions``
partitions (replication factor 1) once the broker answers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import signal
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.settings import ALL_TOPICS, Settings
from nzc.services import LOOPBACK, ManagedService, ServiceError, log, port_open, run, spawn

KAFKA_VERSION = "3.9.1"
POM_TEMPLATE = Path(__file__).with_name("kafka-pom.xml")
MARKER_NAME = ".nzc-pom.sha256"
#: Programs the broker needs and the Debian package that provides each.
REQUIRED_PROGRAMS = {"java": "openjdk-17-jre-headless", "mvn": "maven"}
JVM_HEAP = ("-Xms256m", "-Xmx768m")
NODE_ID = 1
MAVEN_TIMEOUT_S = 900.0
FORMAT_TIMEOUT_S = 120.0
TOPICS_TIMEOUT_S = 60.0
ERR_TOPIC_ALREADY_EXISTS = 36


def bootstrap_port(settings: Settings) -> int:
    """The port of the first ``host:port`` in ``settings.kafka_bootstrap``."""
    first = settings.kafka_bootstrap.split(",")[0].strip()
    _host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise ServiceError(
            f"NZC_KAFKA_BOOTSTRAP={settings.kafka_bootstrap!r}: expected host:port, "
            f"e.g. 127.0.0.1:19092"
        )
    return int(port)


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding (22 chars)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):  # Kafka avoids ids that look like command-line options
            return cid


def pom_digest() -> str:
    """SHA-256 of the pom that defines the broker's jars."""
    return hashlib.sha256(POM_TEMPLATE.read_bytes()).hexdigest()


class Kafka(ManagedService):
    """The Kafka broker (combined broker and controller)."""

    name = "kafka"
    start_timeout_s = 90.0
    stop_signals = ((signal.SIGTERM, 60.0), (signal.SIGKILL, 5.0))

    @property
    def port(self) -> int:
        """Client port (from ``NZC_KAFKA_BOOTSTRAP``)."""
        return bootstrap_port(self.settings)

    @property
    def controller_port(self) -> int:
        """KRaft controller port (``NZC_KAFKA_CONTROLLER_PORT``)."""
        return self.settings.kafka_controller_port

    @property
    def libs_dir(self) -> Path:
        """The broker's jars."""
        return self.home / "libs"

    @property
    def data_dir(self) -> Path:
        """``log.dirs``: metadata log and topic partitions."""
        return self.home / "data"

    @property
    def properties_path(self) -> Path:
        """The generated ``server.properties``."""
        return self.home / "server.properties"

    @property
    def log4j_path(self) -> Path:
        """The generated log4j (reload4j) config."""
        return self.home / "log4j.properties"

    @property
    def log_paths(self) -> list[Path]:
        """The broker's log4j log, then JVM stdout/stderr."""
        return [self.home / "logs" / "server.log", self.home / "kafka.out"]

    def owns_process(self, argv: list[str]) -> bool:
        """Our broker runs ``java ... kafka.Kafka <state>/kafka/server.properties``."""
        return "kafka.Kafka" in argv and str(self.properties_path) in argv

    def reset_paths(self) -> list[Path]:
        """Everything but the downloaded jars (and the pom they came from)."""
        if not self.home.exists():
            return []
        keep = {self.libs_dir.name, "build"}
        return [p for p in sorted(self.home.iterdir()) if p.name not in keep]

    # --- install -----------------------------------------------------------------------

    def jars_installed(self) -> bool:
        """Whether ``libs/`` holds the jars of the current pom."""
        marker = self.libs_dir / MARKER_NAME
        try:
            recorded = marker.read_text().strip()
        except OSError:
            return False
        return recorded == pom_digest() and any(self.libs_dir.glob("kafka_2.13-*.jar"))

    def install(self) -> None:
        """Resolve the broker's jars with Maven into ``libs/`` unless already there."""
        if self.jars_installed():
            return
        if self.pid() is not None:
            raise ServiceError(
                f"kafka: the jars in {self.libs_dir} are outdated but the broker is running; "
                f"run `down` first"
            )
        for program, package in REQUIRED_PROGRAMS.items():
            if shutil.which(program) is None:
                raise ServiceError(
                    f"kafka: `{program}` not found: install the Debian package {package}"
                )
        build = self.home / "build"
        build.mkdir(parents=True, exist_ok=True)
        (build / "pom.xml").write_bytes(POM_TEMPLATE.read_bytes())
        staging = self.home / "libs.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        log.info(
            "kafka: resolving broker jars (Kafka %s) with Maven into %s",
            KAFKA_VERSION,
            self.libs_dir,
        )
        started = time.monotonic()
        run(
            [
                "mvn",
                "-B",
                "-q",
                "-f",
                str(build / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            what="kafka: mvn dependency:copy-dependencies",
            timeout_s=MAVEN_TIMEOUT_S,
            cwd=build,
        )
        if not any(staging.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise ServiceError(f"kafka: Maven finished but {staging} has no kafka_2.13 jar")
        (staging / MARKER_NAME).write_text(pom_digest() + "\n")
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        staging.rename(self.libs_dir)
        log.info("kafka: jars ready in %.1f s", time.monotonic() - started)

    # --- start -------------------------------------------------------------------------

    def server_properties(self) -> str:
        """``server.properties`` for a single KRaft node on loopback."""
        props = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@{LOOPBACK}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.settings.topic_partitions),
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            # workers (re)started together join one generation, not one rebalance each
            "group.initial.rebalance.delay.ms": "1000",
        }
        lines = ["# Generated by nzc/services/kafka.py on every start; edits are overwritten."]
        lines += [f"{key}={value}" for key, value in props.items()]
        return "\n".join(lines) + "\n"

    def log4j_properties(self) -> str:
        """reload4j config: INFO to a size-capped file in the state dir, noisy loggers WARN."""
        return "\n".join(
            [
                "# Generated by nzc/services/kafka.py on every start.",
                "log4j.rootLogger=INFO, file",
                "log4j.appender.file=org.apache.log4j.RollingFileAppender",
                f"log4j.appender.file.File={self.log_paths[0]}",
                "log4j.appender.file.MaxFileSize=10MB",
                "log4j.appender.file.MaxBackupIndex=5",
                "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
                "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
                "log4j.logger.kafka.request.logger=WARN",
                "log4j.logger.state.change.logger=WARN",
                "log4j.logger.kafka.log.LogCleaner=WARN",
                "log4j.logger.org.apache.kafka.storage.internals.log=WARN",
                "log4j.logger.org.apache.zookeeper=WARN",
                "",
            ]
        )

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            *JVM_HEAP,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.log4j_path}",
            f"-Dkafka.logs.dir={self.log_paths[0].parent}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def cluster_id(self) -> str:
        """The cluster id, generated on first use and kept in ``cluster.id``."""
        path = self.home / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        cid = new_cluster_id()
        path.write_text(cid + "\n")
        return cid

    def launch(self) -> int:
        """Write configs, format the storage once, start ``kafka.Kafka``."""
        if not self.jars_installed():
            raise ServiceError(f"kafka: no broker jars in {self.libs_dir}: run `install` first")
        if port_open(self.controller_port):
            raise ServiceError(
                f"kafka: controller port 127.0.0.1:{self.controller_port} is already in use by "
                f"another process; stop it or set NZC_KAFKA_CONTROLLER_PORT"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_paths[0].parent.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(self.server_properties())
        self.log4j_path.write_text(self.log4j_properties())
        if not (self.data_dir / "meta.properties").exists():
            log.info("kafka: formatting %s", self.data_dir)
            run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    self.cluster_id(),
                    "-c",
                    str(self.properties_path),
                    "--ignore-formatted",
                ),
                what="kafka: storage format",
                timeout_s=FORMAT_TIMEOUT_S,
                cwd=self.home,
                log_hint=self.log_paths[0],
            )
        return spawn(
            self._java("kafka.Kafka", str(self.properties_path)), self.log_paths[1], self.home
        )

    def after_ready(self) -> None:
        """Create our topics (idempotently) and wait until every partition has a leader."""
        try:
            asyncio.run(
                ensure_topics(
                    f"{LOOPBACK}:{self.port}",
                    ALL_TOPICS,
                    self.settings.topic_partitions,
                    TOPICS_TIMEOUT_S,
                )
            )
        except ServiceError as exc:
            raise ServiceError(f"{exc}\n{self.log_tails()}") from exc


async def ensure_topics(
    bootstrap: str, topics: Sequence[str], partitions: int, timeout_s: float
) -> dict[str, int]:
    """Create missing ``topics`` with ``partitions`` partitions (replication 1), grow topics
    that have fewer, and wait until all their partitions have a leader.

    Returns the partition count of each topic.  Raises :class:`ServiceError` when the broker
    does not get there within ``timeout_s``.
    """
    # aiokafka is imported here so that importing the launcher stays cheap.
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

    deadline = time.monotonic() + timeout_s
    last_error: str = "no attempt made"
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=10_000, client_id="nzc-services"
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                response = await admin.create_topics(
                    [NewTopic(t, partitions, 1) for t in missing], timeout_ms=10_000
                )
                errors = [
                    f"{entry[0]}: error code {entry[1]}"
                    for entry in response.topic_errors
                    if entry[1] not in (0, ERR_TOPIC_ALREADY_EXISTS)
                ]
                if errors:
                    raise _Retry("create_topics: " + "; ".join(errors))
            counts = await _leader_counts(admin, topics)
            grow = {t: NewPartitions(partitions) for t, n in counts.items() if 0 < n < partitions}
            if grow:
                await admin.create_partitions(grow, timeout_ms=10_000)
                raise _Retry("partitions added: " + ", ".join(sorted(grow)))
            return counts
        except _Retry as exc:
            last_error = str(exc)
        except Exception as exc:  # aiokafka raises many kinds while the broker starts
            last_error = f"{type(exc).__name__}: {exc}"
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
    raise ServiceError(
        f"kafka: topics {', '.join(topics)} not ready on {bootstrap} within {timeout_s:.0f} s "
        f"(last: {last_error})"
    )


class _Retry(Exception):
    """Not there yet: try again until the deadline."""


async def _leader_counts(admin: Any, topics: Sequence[str]) -> dict[str, int]:
    """Partition count per topic; raises :class:`_Retry` until every partition has a leader."""
    described = await admin.describe_topics(list(topics))
    counts: dict[str, int] = {}
    for entry in described:
        name = entry["topic"]
        if entry["error_code"] != 0:
            raise _Retry(f"{name}: metadata error code {entry['error_code']}")
        parts = entry["partitions"]
        leaderless = [p["partition"] for p in parts if p["leader"] < 0 or p["error_code"] != 0]
        if not parts or leaderless:
            raise _Retry(f"{name}: partitions without leader: {leaderless or 'all'}")
        counts[name] = len(parts)
    absent = [t for t in topics if t not in counts]
    if absent:
        raise _Retry(f"not in metadata yet: {', '.join(absent)}")
    return counts
