"""MQTT client credentials and TLS options, from settings, applied to a paho client.

One place for every client of ours: the ingest bridge (``NZC_MQTT_USERNAME`` /
``NZC_MQTT_PASSWORD``, default user ``nzc-ingest`` with the password the launcher stored),
the simulator publishing as each gateway (passwords from ``NZC_MQTT_GATEWAY_CREDENTIALS``,
default ``<state>/secrets/mqtt.json``), and tests. TLS when ``NZC_MQTT_TLS=1``: the broker is
verified with ``NZC_MQTT_CA_FILE`` (default the launcher's local CA), and a client certificate
(``NZC_MQTT_CERT_FILE`` + ``NZC_MQTT_KEY_FILE``) is presented when given.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path

import paho.mqtt.client as mqtt

from core.settings import Settings


class MqttAuthError(RuntimeError):
    """Credentials or TLS files that are missing or unusable."""


@dataclass(frozen=True)
class MqttClientAuth:
    """Who a client is and how it protects the connection. ``repr`` never shows the
    password."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def apply(self, client: mqtt.Client) -> None:
        """Set user name, password and TLS on ``client`` (before ``connect``)."""
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            for what, path in (("CA", self.ca_file), ("client certificate", self.cert_file),
                               ("client key", self.key_file)):
                if path is not None and not path.exists():
                    raise MqttAuthError(f"MQTT TLS {what} file {path} does not exist")
            if (self.cert_file is None) != (self.key_file is None):
                raise MqttAuthError("MQTT TLS: a client certificate needs its key and the "
                                    "other way round (NZC_MQTT_CERT_FILE, NZC_MQTT_KEY_FILE)")
            client.tls_set(
                ca_certs=str(self.ca_file) if self.ca_file else None,
                certfile=str(self.cert_file) if self.cert_file else None,
                keyfile=str(self.key_file) if self.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )

    def as_user(self, username: str, password: str | None) -> MqttClientAuth:
        """The same TLS options for another user."""
        return replace(self, username=username, password=password)


def tls_options(settings: Settings) -> MqttClientAuth:
    """No user, the TLS options of ``settings``."""
    if not settings.mqtt_tls:
        return MqttClientAuth()
    return MqttClientAuth(tls=True, ca_file=settings.mqtt_ca_path,
                          cert_file=settings.mqtt_cert_file, key_file=settings.mqtt_key_file)


def ingest_auth(settings: Settings) -> MqttClientAuth:
    """The ingest bridge's identity (read-only on the ingest topics)."""
    return tls_options(settings).as_user(settings.mqtt_username, settings.mqtt_password)


def stored_auth(settings: Settings, username: str) -> MqttClientAuth:
    """The identity ``username`` with its password from the environment (service users of a
    deployment: :meth:`Settings.mqtt_service_passwords_config`), else from the credential
    store; raises :class:`MqttAuthError` when it has none (run ``nzc gateways
    credentials``)."""
    from core.secret_store import stored_mqtt_password

    password = settings.mqtt_service_passwords_config().get(username) \
        or stored_mqtt_password(settings.mqtt_credentials_path, username)
    if password is None:
        raise MqttAuthError(
            f"no MQTT password for {username!r} in {settings.mqtt_credentials_path}: run "
            f"`nzc gateways credentials` (NZC_REGISTRY={settings.registry_path})")
    return tls_options(settings).as_user(username, password)
