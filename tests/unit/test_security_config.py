"""MQTT identities, ACL rules, password hashes, secret files and settings (no services)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from carbon.registry import parse_registry
from core.mqtt_identities import (
    INGEST_USER,
    IdentityError,
    Store,
    all_identities,
    gateway_identities,
    mosquitto_hash,
    render_acl,
    render_password_file,
    sync_store,
    verify_mosquitto_hash,
)
from core.secret_store import (
    pgpass_lookup,
    redact_url,
    url_with_password,
    write_pgpass,
    write_private,
)
from core.settings import Settings
from simulators.publisher import GatewayRoutes, PublishError


def _meter(mid: str, gw: str, source: dict[str, str] | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"id": mid, "carrier": "grid_import", "unit": "kWh", "gateway": gw,
                         "register_max": 1e6, "max_rate_per_h": 1e3}
    if source:
        m["source"] = source
    return m


def _registry(*meters: dict[str, Any], site: str = "p1") -> Any:
    return parse_registry({"sites": [{"id": site, "name": "P", "type": "park",
                                      "province": "sichuan", "city": "Chengdu",
                                      "baseline_year": 2022, "meters": list(meters)}]})


REG = _registry(
    _meter("m-own", "gw-a"),
    _meter("m-tas", "gw-a", {"format": "tasmota", "device": "tasmota_5A3F21"}),
    _meter("m-sh1", "gw-b", {"format": "shelly_gen1", "device": "shellyem3-AB",
                             "channel": "emeter/0/total"}),
    _meter("m-sh2", "gw-b", {"format": "shelly_gen2", "device": "shellypro3em-cd",
                             "channel": "emdata:0/total_act"}),
    _meter("m-z2m", "gw-c", {"format": "zigbee2mqtt", "device": "pump room/meter"}),
    _meter("m-neu", "gw-c", {"format": "neuron", "device": "bus1/energy/2301",
                             "channel": "00-00-00-00"}),
    _meter("m-spb", "gw-d", {"format": "sparkplug", "device": "g1/edge-1/meter-1",
                             "channel": "Energy"}),
)


def test_each_gateway_gets_exactly_its_devices_topics() -> None:
    by_user = {i.username: i for i in gateway_identities(REG)}
    assert set(by_user) == {"p1/gw-a", "p1/gw-b", "p1/gw-c", "p1/gw-d"}
    assert by_user["p1/gw-a"].publish == ("nzc/v1/p1/gw-a/readings",
                                          "tele/tasmota_5A3F21/SENSOR")
    assert by_user["p1/gw-b"].publish == ("shellies/shellyem3-AB/emeter/#",
                                          "shellypro3em-cd/events/rpc")
    assert by_user["p1/gw-c"].publish == ("zigbee2mqtt/pump room/meter", "/neuron/+/bus1/#")
    assert by_user["p1/gw-d"].publish == ("spBv1.0/g1/+/edge-1/#",)
    assert by_user["p1/gw-d"].subscribe == ("spBv1.0/g1/NCMD/edge-1",
                                            "spBv1.0/g1/DCMD/edge-1/#", "spBv1.0/STATE/+")
    # a vendor-format gateway with no meter of our own format gets no nzc topic
    assert not any(t.startswith("nzc/") for t in by_user["p1/gw-b"].publish)
    for name in ("p1/gw-a", "p1/gw-b", "p1/gw-c"):
        assert by_user[name].subscribe == ()


def test_acl_file_text() -> None:
    acl = render_acl(all_identities(REG, INGEST_USER, ["nzc/v1/+/+/readings", "tele/+/SENSOR"]))
    blocks = {b.splitlines()[1]: b.splitlines()[2:]
              for b in acl.split("\n\n")[1:]}
    assert blocks["user nzc-ingest"] == ["topic read nzc/v1/+/+/readings",
                                         "topic read tele/+/SENSOR"]
    assert blocks["user nzc-health"] == ["topic readwrite nzc/health/#"]
    assert blocks["user nzc-alerts"] == ["topic readwrite nzc/v1/alerts",
                                         "topic readwrite nzc/v1/alerts/#"]
    assert blocks["user p1/gw-a"] == ["topic write nzc/v1/p1/gw-a/readings",
                                      "topic write tele/tasmota_5A3F21/SENSOR"]
    assert "topic read spBv1.0/STATE/+" in blocks["user p1/gw-d"]
    assert not any(line.startswith("topic") for line in acl.split("\n\n")[0].splitlines())


@pytest.mark.parametrize("device", ["a+b", "a/#", "bad\nline"])
def test_wildcards_in_device_ids_are_refused(device: str) -> None:
    reg = _registry(_meter("m", "gw", {"format": "tasmota", "device": device}))
    with pytest.raises(IdentityError, match="cannot be used in an MQTT topic rule"):
        gateway_identities(reg)


def test_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    """Our hash verifies like Mosquitto's, and a hash made by mosquitto_passwd verifies with
    the same password and not with another."""
    h = mosquitto_hash("s3cret-pass")
    assert h.startswith("$7$101$") and verify_mosquitto_hash("s3cret-pass", h)
    assert not verify_mosquitto_hash("s3cret-pasS", h)
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "gw", "s3cret-pass"], check=True,
                   capture_output=True)
    user, theirs = pw.read_text().strip().split(":", 1)
    assert user == "gw" and theirs.startswith("$7$")
    assert verify_mosquitto_hash("s3cret-pass", theirs)
    assert not verify_mosquitto_hash("wrong", theirs)
    text = render_password_file({"b/x": "p1", "a/y": "p2"})
    assert [line.split(":")[0] for line in text.splitlines()] == ["a/y", "b/x"]
    assert "p1" not in text.replace("$", " ").split() and ":p1" not in text


def test_store_creates_rotates_and_removes() -> None:
    store = Store()
    idents = gateway_identities(REG)
    first = sync_store(store, idents)
    assert set(first.new_passwords) == {i.username for i in idents} and first.changed
    kept = dict(first.new_passwords)
    again = sync_store(store, idents)
    assert again.new_passwords == {} and not again.changed
    rot = sync_store(store, idents, rotate=["p1/gw-b"])
    assert set(rot.new_passwords) == {"p1/gw-b"}
    assert rot.new_passwords["p1/gw-b"] != kept["p1/gw-b"]
    assert store.password("p1/gw-a") == kept["p1/gw-a"]
    fewer = sync_store(store, [i for i in idents if i.username != "p1/gw-d"])
    assert fewer.removed == ["p1/gw-d"] and "p1/gw-d" not in store.users
    with pytest.raises(IdentityError, match="no MQTT user 'p1/nope'"):
        sync_store(store, idents, rotate=["p1/nope"])
    assert len({store.password(i.username) for i in idents[:3]}) == 3


def test_publisher_routes_each_topic_to_its_gateway() -> None:
    store = Store()
    sync_store(store, gateway_identities(REG))
    routes = GatewayRoutes(store.users, "<test>")
    assert routes.route("tele/tasmota_5A3F21/SENSOR")[0] == "p1/gw-a"
    assert routes.route("shellies/shellyem3-AB/emeter/0/total")[0] == "p1/gw-b"
    assert routes.route("/neuron/north/bus1/energy")[0] == "p1/gw-c"
    assert routes.route("spBv1.0/g1/NBIRTH/edge-1")[0] == "p1/gw-d"
    assert routes.route("spBv1.0/g1/DDATA/edge-1/meter-1") == ("p1/gw-d",
                                                              store.password("p1/gw-d"))
    with pytest.raises(PublishError, match="no gateway in <test> may publish to 'tele/x/SENSOR'"):
        routes.route("tele/x/SENSOR")


def test_private_files_and_pgpass(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "pgpass"
    write_pgpass(path, {"nzc_reader": "r:1\\x", "postgres": "p"})
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert pgpass_lookup(path, "nzc_reader") == "r:1\\x"
    assert pgpass_lookup(path, "nobody") is None
    url = url_with_password("postgresql://nzc_reader@127.0.0.1:15432/nzc", path)
    assert url == "postgresql://nzc_reader:r%3A1%5Cx@127.0.0.1:15432/nzc"
    assert redact_url(url) == "postgresql://nzc_reader:***@127.0.0.1:15432/nzc"
    given = "postgresql://nzc_reader:from-env@db:5432/nzc"
    assert url_with_password(given, path) == given
    write_private(tmp_path / "x" / "f", "text")
    assert (tmp_path / "x" / "f").stat().st_mode & 0o777 == 0o600


def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    for k in [k for k in os.environ if k.startswith("NZC_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("NZC_STATE_DIR", str(tmp_path))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Settings.from_env()


def test_settings_add_stored_passwords_and_never_show_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = _settings(monkeypatch, tmp_path)
    assert s.database_url == "postgresql://nzc_writer@127.0.0.1:15432/nzc"  # nothing stored
    write_pgpass(s.pg_passfile, {"nzc_writer": "w-secret", "postgres": "a-secret",
                                 "nzc_reader": "r-secret"})
    assert s.database_url == "postgresql://nzc_writer:w-secret@127.0.0.1:15432/nzc"
    assert s.database_admin_url == "postgresql://postgres:a-secret@127.0.0.1:15432/nzc"
    assert ":r-secret@" in s.database_reader_url
    write_private(s.mqtt_credentials_path,
                  '{"users": {"nzc-ingest": {"password": "m-secret", "role": "ingest"}}}')
    assert s.mqtt_password == "m-secret"
    assert not any(x in repr(s) for x in ("w-secret", "a-secret", "m-secret"))
    env = _settings(monkeypatch, tmp_path, NZC_DATABASE_URL="postgresql://u:env@db/nzc",
                    NZC_MQTT_PASSWORD="env-mqtt")
    assert env.database_url == "postgresql://u:env@db/nzc" and env.mqtt_password == "env-mqtt"


def test_broker_config_plaintext_off_when_tls_on(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    from nzc.services.mosquitto import Mosquitto

    both = Mosquitto(_settings(monkeypatch, tmp_path)).render_config()
    listeners = [line for line in both.splitlines() if line.startswith("listener")]
    assert listeners == ["listener 18831 127.0.0.1", "listener 18832 127.0.0.1"]
    for line in ("allow_anonymous false", "message_size_limit 1048576",
                 "max_queued_bytes 268435456", "tls_version tlsv1.2"):
        assert line in both.splitlines()
    assert "allow_anonymous true" not in both
    tls = Mosquitto(_settings(monkeypatch, tmp_path, NZC_MQTT_TLS="1",
                              NZC_MQTT_MESSAGE_SIZE_LIMIT="65536")).render_config()
    lines = tls.splitlines()
    assert [line for line in lines if line.startswith("listener")] == ["listener 18831 127.0.0.1"]
    assert lines[lines.index("listener 18831 127.0.0.1") + 1].startswith("certfile ")
    assert "message_size_limit 65536" in lines
