"""docker-compose.yml: parses with Debian's docker-compose (no engine needed), keeps secrets
out, and agrees with the local launcher (`nzc services`) on service names, ports, NZC_*
variables, Kafka topics and the Mosquitto settings; its one-shot `mqtt-auth`, run with the
compose environment, writes the password file and ACL where the broker's config reads them,
with the passwords of .env; the Alertmanager config it mounts passes amtool."""

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

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
PROJECT_IMAGE = "nzc-monitor:local"
# launcher service -> compose service
SERVICE_NAMES = {"mosquitto": "mosquitto", "kafka": "kafka", "postgres": "timescaledb",
                 "alertmanager": "alertmanager", "alert-receiver": "alert-receiver"}
MOSQUITTO_CONF = REPO / "deploy" / "mosquitto.conf"
# NZC_* variables compose passes to the project's image that no code reads yet (none)
PENDING_VARIABLES: set[str] = set()
# Mosquitto directives that differ on purpose: docker's log driver stamps every line itself
MOSQUITTO_DIFFERENCES = {"log_timestamp", "log_timestamp_format"}
# ... and those that name places, users or addresses of one host or the other (compared
# below by what they point to, not by their text)
MOSQUITTO_PATHS = {"listener", "user", "pid_file", "persistence_location", "password_file",
                   "acl_file", "certfile", "keyfile", "cafile", "log_dest"}


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
    for folder in ("core", "nzc", "api", "db", "dashboards", "ingest", "stream", "simulators",
                   "analytics", "carbon", "alerts", "reports"):
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
    one_shot = {"migrate", "kafka-init", "mqtt-auth"}
    for name, svc in config["services"].items():
        if name in one_shot:
            assert svc.get("restart") in (None, "no"), name
            continue
        assert svc.get("restart") == "unless-stopped", name
        if name != "simulator":
            assert "test" in svc.get("healthcheck", {}), f"{name}: no health check"
    declared = set(config["volumes"])
    # generated, never committed (.gitignore): the deployment's certificates
    ignored = [line.rstrip("/") for line in (REPO / ".gitignore").read_text().split()]
    for name, svc in config["services"].items():
        for source, _target, bind in _mounts(svc):
            if not bind:
                assert source in declared, f"{name}: volume {source} not declared"
            else:
                rel = Path(source).relative_to(REPO)
                assert (REPO / rel).exists() or any(
                    str(rel) == g or str(rel).startswith(g + "/") for g in ignored), \
                    f"{name}: {rel} missing"
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
    from api.server import api_port as launcher_api_port

    api_port = launcher_api_port()  # NZC_API_PORT's default (unset here)
    assert _published(svcs["api"]) == {api_port: api_port}
    assert svcs["api"]["command"] == ["api", "--port", str(api_port)]  # API + web view
    assert svcs["api"]["environment"]["NZC_API_PORT"] == str(api_port)
    assert _published(svcs["alertmanager"]) == {19011: 19011}
    # across containers: the evaluator finds Alertmanager by its service name, and the
    # receiver listens where Alertmanager's webhooks (deploy/alertmanager.yml) reach it
    from alerts.config import AlertSettings

    am_port = AlertSettings.from_env().alertmanager_port
    assert f"--web.listen-address=:{am_port}" in svcs["alertmanager"]["command"]
    assert svcs["alerts"]["environment"]["NZC_ALERTMANAGER_HOST"] == "alertmanager"
    receiver = svcs["alert-receiver"]
    assert receiver["environment"]["NZC_ALERT_RECEIVER_HOST"] == "0.0.0.0"
    port = receiver["command"][receiver["command"].index("--port") + 1]
    am_conf = (REPO / "deploy" / "alertmanager.yml").read_text(encoding="utf-8")
    assert f"http://alert-receiver:{port}/am/" in am_conf
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


def _directives(text: str) -> dict[str, list[str]]:
    """directive -> its values, in order (``log_type`` and ``listener`` repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value.strip())
    return out


def _launcher_tls_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The config the launcher writes for a TLS-only broker (NZC_MQTT_TLS=1, as compose)."""
    from nzc.services.mosquitto import Mosquitto

    for k in list(os.environ):
        if k.startswith("NZC_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("NZC_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("NZC_MQTT_TLS", "1")
    return Mosquitto(Settings.from_env()).render_config()


def test_mosquitto_settings_agree_with_the_launcher(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    launcher = _directives(_launcher_tls_broker(monkeypatch, tmp_path))
    compose = _directives(MOSQUITTO_CONF.read_text(encoding="utf-8"))
    assert compose["allow_anonymous"] == ["false"]
    # one listener, TLS, on the launcher's port (all addresses inside the container)
    assert [v.split()[0] for v in compose["listener"]] == \
        [v.split()[0] for v in launcher["listener"]] == ["18831"]
    for key in ("certfile", "keyfile", "cafile", "password_file", "acl_file"):
        assert len(compose.get(key, [])) == 1, f"mosquitto {key} missing in compose"
    for key, values in launcher.items():
        if key in MOSQUITTO_PATHS or key in MOSQUITTO_DIFFERENCES:
            continue
        assert compose.get(key) == values, f"mosquitto {key}: launcher {values}, compose " \
                                           f"{compose.get(key)}"
    extra = set(compose) - set(launcher) - MOSQUITTO_PATHS
    assert not extra, f"mosquitto: compose only {sorted(extra)}"


def _in_container(service: dict[str, Any], path: str) -> tuple[str, str]:
    """(volume or host path, path inside it) of the container path ``path``."""
    best = None
    for source, target, _bind in _mounts(service):
        if (path == target or path.startswith(target.rstrip("/") + "/")) and \
                (best is None or len(target) > len(best[1])):
            best = (source, target)
    assert best is not None, f"{path} is on no volume of the service"
    return best[0], path[len(best[1]):].lstrip("/")


def test_mqtt_auth_writes_what_the_broker_reads(config: dict[str, Any], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`mqtt-auth`'s command with its compose environment (state folder and registry moved
    to this machine): the broker's password file and ACL land where deploy/mosquitto.conf
    reads them on the shared volume; the service users have .env's passwords; every
    gateway of the registry has a user; the broker's health check and the clients use
    those users over TLS with the mounted CA."""
    from core.mqtt_identities import (
        ALERTS_USER,
        HEALTH_USER,
        INGEST_USER,
        gateway_identities,
        verify_mosquitto_hash,
    )
    from core.registry_yaml import load_registry

    svcs = config["services"]
    auth, broker = svcs["mqtt-auth"], svcs["mosquitto"]
    env = {k: str(v) for k, v in auth["environment"].items()}
    state = env["NZC_STATE_DIR"]
    assert auth["command"] == [
        f"nzc gateways credentials && chown -R nzc:nzc {state}/secrets"]
    assert auth["user"] == "root" and env["NZC_MQTT_FILE_OWNER"] == "1883:1883"
    conf = _directives(MOSQUITTO_CONF.read_text(encoding="utf-8"))
    written = {}
    assert _in_container(auth, state) == ("nzc-state", "")  # mqtt-auth's state folder
    for key in ("password_file", "acl_file"):
        volume, rel = _in_container(broker, conf[key][0])
        assert volume == "nzc-state", key
        written[key] = tmp_path / rel  # the same file, if mqtt-auth writes it there (below)
    for key in ("certfile", "keyfile", "cafile"):
        source, rel = _in_container(broker, conf[key][0])
        assert source == str(REPO / "deploy" / "certs"), key
    for name in ("ingest", "alert-receiver", "simulator"):
        mounts = {t: s for s, t, _b in _mounts(svcs[name])}
        assert mounts[svcs[name]["environment"]["NZC_MQTT_CA_FILE"]] == \
            str(REPO / "deploy" / "certs" / "ca.crt"), name
        assert svcs[name]["environment"]["NZC_MQTT_TLS"] == "1", name
    assert "-u nzc-health" in broker["healthcheck"]["test"][-1]
    assert "--cafile /mosquitto/certs/ca.crt" in broker["healthcheck"]["test"][-1]

    for k in list(os.environ):
        if k.startswith("NZC_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("NZC_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("NZC_REGISTRY", str(REPO / env["NZC_REGISTRY"].removeprefix("/app/")))
    monkeypatch.setenv("NZC_MQTT_FILE_OWNER", f"{os.geteuid()}:{os.getegid()}")
    from nzc.cli_gateways import dispatch

    settings = Settings.from_env()
    assert dispatch(argparse.Namespace(cmd="gateways", action="credentials", rotate=[],
                                       rotate_all=False), settings) == 0
    hashes = dict(line.split(":", 1) for line in
                  written["password_file"].read_text(encoding="utf-8").splitlines())
    dotenv = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$",
                             (REPO / ".env.example").read_text(encoding="utf-8"), re.M))
    for user, var, service in ((INGEST_USER, "NZC_MQTT_INGEST_PASSWORD", "ingest"),
                               (HEALTH_USER, "NZC_MQTT_HEALTH_PASSWORD", "mosquitto"),
                               (ALERTS_USER, "NZC_MQTT_ALERTS_PASSWORD", "alert-receiver")):
        assert verify_mosquitto_hash(dotenv[var], hashes[user]), user
        # the service that logs in as that user gets the same .env value
        given = {str(v) for v in svcs[service]["environment"].values()}
        assert dotenv[var] in given, f"{service} lacks {var}"
    from core.mqtt_client import stored_auth

    alerts = Settings.from_env()
    monkeypatch.delenv("NZC_MQTT_PASSWORD")
    assert stored_auth(alerts, ALERTS_USER).password == dotenv["NZC_MQTT_ALERTS_PASSWORD"]
    gateways = {i.username for i in gateway_identities(load_registry(settings.registry_path))}
    assert gateways and gateways <= set(hashes)
    acl = written["acl_file"].read_text(encoding="utf-8")
    assert all(f"user {u}" in acl for u in gateways | {INGEST_USER, HEALTH_USER, ALERTS_USER})
    for gw in gateways:  # the demo's simulator publishes as each gateway from the store
        assert stored_auth(settings, gw).password


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
