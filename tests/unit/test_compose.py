"""docker-compose.yml: parses with Debian's docker-compose (no engine needed), keeps secrets
out, and agrees with the local launcher (`nzc services`) on service names, ports, NZC_*
variables, Kafka topics and the Mosquitto settings; the Alertmanager config it mounts passes
amtool."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import ALL_TOPICS, Settings
from nzc.cli_dashboards import add_parsers

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
PROJECT_IMAGE = "nzc-monitor:local"
# launcher service -> compose service
SERVICE_NAMES = {"mosquitto": "mosquitto", "kafka": "kafka", "postgres": "timescaledb",
                 "alertmanager": "alertmanager", "alert-receiver": "alert-receiver"}
# NZC_* variables compose passes to the project's image that the code reads only once the
# security (issue 9: MQTT users) and alerts (issue 13) work is merged
PENDING_VARIABLES = {"NZC_MQTT_USERNAME", "NZC_MQTT_PASSWORD", "NZC_MQTT_GATEWAY_CREDENTIALS",
                     "NZC_ALERTMANAGER_PORT", "NZC_ALERT_RECEIVER_PORT"}
# Mosquitto directives that differ on purpose: the launcher's loopback broker allowed
# anonymous clients before issue 9; compose never does.
MOSQUITTO_DIFFERENCES = {"allow_anonymous", "max_queued_bytes"}
MOSQUITTO_PATHS = {"listener", "user", "pid_file", "persistence_location", "password_file",
                   "acl_file", "log_dest", "log_type", "log_timestamp", "log_timestamp_format",
                   "message_size_limit"}


def _clean_env() -> dict[str, str]:
    """The environment without NZC_* (the test session sets its own ports)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NZC_")}


def _config(*extra: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker-compose", "--project-directory", str(REPO), "-f", str(COMPOSE),
         "--env-file", str(REPO / ".env.example"), *extra, "config"],
        capture_output=True, text=True, env=_clean_env(), timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = yaml.safe_load(out.stdout)
    return doc


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return _config("--profile", "demo")


@pytest.fixture(scope="module")
def launcher(monkeypatch_module: pytest.MonkeyPatch) -> Settings:
    for k in list(os.environ):
        if k.startswith("NZC_"):
            monkeypatch_module.delenv(k)
    return Settings.from_env()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> published host port (``127.0.0.1:HOST:CONTAINER/tcp``)."""
    out = {}
    for p in service.get("ports", []):
        host, _, target = str(p).split("/")[0].rpartition(":")
        assert host.startswith("127.0.0.1:"), f"{p}: published beyond loopback"
        out[int(target)] = int(host.rsplit(":", 1)[-1])
    return out


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, is a bind mount of a repository path) per volume."""
    out = []
    for v in service.get("volumes", []):
        source, target = str(v).split(":")[:2]
        out.append((source, target, source.startswith("/")))
    return out


def _repo_text(source: str) -> str:
    """A bind-mounted file's text, or a folder's YAML files' texts."""
    path = Path(source)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return "".join(p.read_text(encoding="utf-8") for p in sorted(path.rglob("*.yaml")))


def _code_variables() -> set[str]:
    names: set[str] = set()
    for folder in ("nzc", "api", "db", "dashboards", "ingest", "stream", "simulators",
                   "analytics", "carbon", "alerts"):
        for path in (REPO / folder).rglob("*.py"):
            names.update(re.findall(r"NZC_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
    return names


def test_compose_parses_with_docker_compose(config: dict[str, Any]) -> None:
    services = config["services"]
    assert {"mosquitto", "kafka", "timescaledb", "grafana", "alertmanager", "ingest",
            "stream-1", "stream-2", "api", "simulator", "migrate"} <= set(services)
    assert services["simulator"]["profiles"] == ["demo"]


def test_services_have_health_checks_restart_policies_and_named_volumes(
        config: dict[str, Any]) -> None:
    one_shot = {"migrate", "kafka-init"}
    for name, svc in config["services"].items():
        if name in one_shot:
            assert svc.get("restart") in (None, "no"), name
            continue
        assert svc.get("restart") == "unless-stopped", name
        if name != "simulator":
            assert "test" in svc.get("healthcheck", {}), f"{name}: no health check"
    declared = set(config["volumes"])
    ignored = (REPO / "deploy" / "mosquitto" / ".gitignore").read_text().split()
    for name, svc in config["services"].items():
        for source, _target, bind in _mounts(svc):
            if not bind:
                assert source in declared, f"{name}: volume {source} not declared"
            else:
                rel = Path(source).relative_to(REPO)
                assert (REPO / rel).exists() or rel.name in ignored, f"{name}: {rel} missing"
    assert {"pg-data", "kafka-data", "mosquitto-data", "grafana-data"} <= declared


def test_no_secrets_in_the_compose_file() -> None:
    raw = COMPOSE.read_text(encoding="utf-8")
    doc = yaml.safe_load(raw)
    secret = re.compile(r"PASSWORD|SECRET|TOKEN", re.I)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if secret.search(str(k)) and isinstance(v, str):
                    assert v.startswith("${") and ":?" in v, f"{path}.{k}: literal secret"
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, str) and "://" in node and "@" in node:
            assert re.search(r"://[^:/]+:\$\{[A-Z_]+:\?[^}]*\}@", node), f"{path}: {node}"

    walk(doc, "")
    env_example = (REPO / ".env.example").read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", raw))
    given = set(re.findall(r"^([A-Z0-9_]+)=", env_example, re.M))
    assert required <= given, f".env.example lacks {sorted(required - given)}"
    assert all(v.startswith("change-me") for k, v in
               re.findall(r"^([A-Z0-9_]+)=(.*)$", env_example, re.M) if "PASSWORD" in k)


def test_compose_agrees_with_the_launcher(config: dict[str, Any], launcher: Settings) -> None:
    from nzc.services.manager import services as launcher_services

    svcs = config["services"]
    ports = {s.name: s.port for s in launcher_services(launcher)}
    assert set(ports) <= set(SERVICE_NAMES), "a launcher service has no compose service"
    for compose_name in SERVICE_NAMES.values():
        assert compose_name in svcs
    assert _published(svcs["mosquitto"]) == {launcher.mqtt_port: launcher.mqtt_port}
    assert _published(svcs["timescaledb"]) == {5432: launcher.pg_port}
    kafka_env = svcs["kafka"]["environment"]
    assert kafka_env["KAFKA_LISTENERS"] == (
        f"PLAINTEXT://:{ports['kafka']},CONTROLLER://:{launcher.kafka_controller_port}")
    assert str(kafka_env["KAFKA_NUM_PARTITIONS"]) == str(launcher.topic_partitions)
    topics = re.search(r"for t in ([^;]+); do", " ".join(svcs["kafka-init"]["command"]))
    assert topics is not None and topics.group(1).split() == list(ALL_TOPICS)
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="cmd"))
    api_port = parser.parse_args(["web"]).port  # NZC_API_PORT's default (unset here)
    assert _published(svcs["api"]) == {api_port: api_port}
    assert svcs["api"]["command"][-1] == str(api_port)
    assert _published(svcs["alertmanager"]) == {19011: 19011}
    # the project's workers: the launcher's variables, with the compose host names
    env = svcs["ingest"]["environment"]
    assert env["NZC_MQTT_PORT"] == str(launcher.mqtt_port)
    assert env["NZC_KAFKA_BOOTSTRAP"] == f"kafka:{ports['kafka']}"
    for url in ("NZC_DATABASE_URL", "NZC_DATABASE_ADMIN_URL", "NZC_DATABASE_READER_URL"):
        assert env[url].endswith("@timescaledb:5432/nzc"), url
    code = _code_variables()
    for name, svc in svcs.items():
        names = {k for k in svc.get("environment", {}) if k.startswith("NZC_")}
        if svc.get("image") == PROJECT_IMAGE:
            unknown = names - code - PENDING_VARIABLES
            assert not unknown, f"{name}: {sorted(unknown)} read by no code"
        else:
            text = yaml.safe_dump(svc.get("healthcheck", {})) + "".join(
                _repo_text(source) for source, _t, bind in _mounts(svc)
                if bind and Path(source).exists())
            for n in names:
                assert n in text, f"{name}: {n} is used by nothing it mounts or runs"


def _directives(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.startswith("$"):
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


def test_mosquitto_settings_agree_with_the_launcher() -> None:
    launcher = _directives(REPO / "nzc" / "services" / "mosquitto.conf")
    compose = _directives(REPO / "deploy" / "mosquitto" / "mosquitto.conf")
    assert compose["allow_anonymous"] == "false"
    assert compose["password_file"] and compose["acl_file"]
    for key, value in launcher.items():
        if key in MOSQUITTO_PATHS or key in MOSQUITTO_DIFFERENCES or "$" in value:
            continue
        assert compose.get(key) == value, f"mosquitto {key}: launcher {value}, compose " \
                                          f"{compose.get(key)}"


def test_alertmanager_config_passes_amtool() -> None:
    out = subprocess.run(["amtool", "check-config", str(REPO / "deploy" / "alertmanager.yml")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_grafana_provisioning_is_mounted_where_the_providers_look(
        config: dict[str, Any]) -> None:
    from dashboards.lint import provisioned_folders

    mounts = {t: Path(s) for s, t, bind in _mounts(config["services"]["grafana"]) if bind}
    assert mounts["/etc/grafana/provisioning"] == REPO / "dashboards" / "provisioning"
    json_root = mounts["/var/lib/grafana/dashboards"]
    for folder, path in provisioned_folders().items():
        local = json_root / Path(path).relative_to("/var/lib/grafana/dashboards")
        assert local.name == folder and any(local.glob("*.json")), folder
