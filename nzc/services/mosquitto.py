"""Mosquitto (Debian ``/usr/sbin/mosquitto``) as a foreground child on 127.0.0.1.

Config, persistence, log and mosquitto's own pid file live in ``<state>/mosquitto/``.  Run as
root, mosquitto drops to the ``mosquitto`` user after binding its port, so that folder is
given to that user (``mosquitto -d`` exits silently when it cannot write its pid file; we run
it in the foreground under the launcher instead, with stdout/stderr in ``mosquitto.out``).

Authentication (issue 9): ``passwd`` and ``acl`` in the same folder are generated from the
site registry (:mod:`core.mqtt_identities`) on every start and by :meth:`Mosquitto.sync_auth`
(``nzc gateways credentials``, ``nzc registry load``), which reloads a running broker with
SIGHUP. TLS: a listener with the launcher's private CA (:mod:`nzc.services.tls`) on
``NZC_MQTT_TLS_PORT``, or on ``NZC_MQTT_PORT`` alone when ``NZC_MQTT_TLS=1``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from pathlib import Path
from string import Template

from core.mqtt_identities import SyncResult
from nzc.services import ManagedService, ServiceError, chown_tree, log, read_pid, spawn

MOSQUITTO_BIN = Path("/usr/sbin/mosquitto")
APT_PACKAGES = ("mosquitto", "mosquitto-clients", "openssl")
TEMPLATE = Path(__file__).with_name("mosquitto.conf")
DROP_TO_USER = "mosquitto"


class Mosquitto(ManagedService):
    """The MQTT broker."""

    name = "mosquitto"
    start_timeout_s = 15.0

    @property
    def port(self) -> int:
        """MQTT port (``NZC_MQTT_PORT``)."""
        return self.settings.mqtt_port

    @property
    def conf_path(self) -> Path:
        """The config file generated from the template."""
        return self.home / "mosquitto.conf"

    @property
    def data_dir(self) -> Path:
        """Persistence folder (``mosquitto.db``)."""
        return self.home / "data"

    @property
    def log_paths(self) -> list[Path]:
        """Mosquitto's own log, then its captured stdout/stderr."""
        return [self.home / "mosquitto.log", self.home / "mosquitto.out"]

    @property
    def own_pid_path(self) -> Path:
        """The pid file mosquitto writes itself (``pid_file``)."""
        return self.home / "mosquitto.pid"

    def owns_process(self, argv: list[str]) -> bool:
        """Our broker runs ``mosquitto -c <state>/mosquitto/mosquitto.conf``."""
        return bool(argv) and argv[0].endswith("mosquitto") and str(self.conf_path) in argv

    def discover_pid(self) -> int | None:
        """Mosquitto's own pid file, else a search of the process table."""
        own = read_pid(self.own_pid_path)
        return own if self._is_ours(own) else super().discover_pid()

    def install(self) -> None:
        """Nothing beyond the Debian packages."""
        if not MOSQUITTO_BIN.exists():
            raise ServiceError(f"{MOSQUITTO_BIN} is missing: install the Debian package mosquitto")

    @property
    def password_file(self) -> Path:
        """Mosquitto ``password_file`` (hashes only)."""
        return self.home / "passwd"

    @property
    def acl_file(self) -> Path:
        """Mosquitto ``acl_file``."""
        return self.home / "acl"

    @property
    def tls_dir(self) -> Path:
        """Server certificate, key and the CA certificate of the TLS listener."""
        return self.home / "tls"

    @property
    def ca_dir(self) -> Path:
        """The private CA (its key never goes to the broker's folder)."""
        return self.state_dir / "secrets" / "ca"

    def _tls_block(self, port: int) -> list[str]:
        return [f"listener {port} 127.0.0.1",
                f"certfile {self.tls_dir / 'server.crt'}",
                f"keyfile {self.tls_dir / 'server.key'}",
                f"cafile {self.tls_dir / 'ca.crt'}",
                "tls_version tlsv1.2"]

    def render_config(self) -> str:
        """The config text for this state dir and port."""
        s = self.settings
        if s.mqtt_tls:
            listeners = self._tls_block(self.port)
        else:
            listeners = [f"listener {self.port} 127.0.0.1", "", *self._tls_block(s.mqtt_tls_port)]
        return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
            listeners="\n".join(listeners),
            password_file=self.password_file,
            acl_file=self.acl_file,
            max_queued_bytes=s.mqtt_max_queued_bytes,
            message_size_limit=s.mqtt_message_size_limit,
            debug_log="log_type debug" if s.mqtt_log_debug else "",
            user=self._user(),
            pid_file=self.own_pid_path,
            persistence_dir=self.data_dir,
            log_file=self.log_paths[0],
        )

    def sync_auth(self, rotate: list[str] | None = None) -> SyncResult:
        """Bring the identities up to the registry: new users get passwords (and users in
        ``rotate`` new ones), the store (``<state>/secrets/mqtt.json``, 0600), ``passwd`` and
        ``acl`` are rewritten, and a running broker reloads them (SIGHUP). Returns what
        changed; the caller decides whether to show new passwords (never logged here)."""
        from core.mqtt_identities import (
            IdentityError,
            all_identities,
            load_store,
            render_acl,
            render_password_file,
            save_store,
            sync_store,
        )
        from core.registry_yaml import load_registry

        s = self.settings
        try:
            idents = all_identities(load_registry(s.registry_path), s.mqtt_username,
                                    s.mqtt_subscriptions)
            store = load_store(s.mqtt_credentials_path)
            result = sync_store(store, idents, rotate or ())
        except (IdentityError, ValueError, OSError) as exc:
            raise ServiceError(f"mosquitto: MQTT identities from {s.registry_path}: {exc}") \
                from exc
        for user, password in s.mqtt_service_passwords_config().items():
            # a deployment's NZC_MQTT_PASSWORD (ingest bridge), NZC_MQTT_HEALTH_PASSWORD,
            # NZC_MQTT_ALERTS_PASSWORD name those service users' passwords (docker compose)
            store.users[user]["password"] = password
        if result.changed or not s.mqtt_credentials_path.exists():
            save_store(s.mqtt_credentials_path, store)
        passwords = {name: str(entry["password"]) for name, entry in store.users.items()}
        self.home.mkdir(parents=True, exist_ok=True)
        from core.secret_store import write_private

        write_private(self.password_file, render_password_file(passwords))
        write_private(self.acl_file, render_acl(idents))
        owner = os.environ.get("NZC_MQTT_FILE_OWNER") or self._user()
        if os.geteuid() == 0:  # the broker's user must read them (containers: "1883:1883")
            uid, _, gid = owner.partition(":")
            for path in (self.password_file, self.acl_file):
                shutil.chown(path, int(uid) if uid.isdigit() else uid,
                             int(gid) if gid.isdigit() else (gid or uid))
        log.info("mosquitto: %d MQTT users (%d new), ACL %s", len(passwords),
                 len(result.new_passwords), self.acl_file)
        self.reload()
        return result

    def after_ready(self) -> None:
        """When the broker was already running, bring its users and ACL up to the registry."""
        if not getattr(self, "_launched", False):
            self.sync_auth()

    def reload(self) -> bool:
        """SIGHUP a running broker (re-reads password and ACL files); False if not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGHUP)
        return True

    @staticmethod
    def _user() -> str:
        """``mosquitto`` when we are root and that user exists, else the current user."""
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(DROP_TO_USER)
            except KeyError:
                return "root"
            return DROP_TO_USER
        return pwd.getpwuid(os.geteuid()).pw_name

    def launch(self) -> int:
        """Write the config, hand the folder to the broker's user, start in the foreground."""
        from nzc.services.tls import ensure_server_cert

        self.install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_server_cert(self.ca_dir, self.tls_dir)
        self.sync_auth()
        self._launched = True
        self.conf_path.write_text(self.render_config(), encoding="utf-8")
        self.own_pid_path.unlink(missing_ok=True)
        chown_tree(self.home, self._user())
        return spawn([str(MOSQUITTO_BIN), "-c", str(self.conf_path)], self.log_paths[1], self.home)
