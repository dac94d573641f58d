"""Mosquitto (Debian ``/usr/sbin/mosquitto``) as a foreground child on 127.0.0.1.

Config, persistence, log and mosquitto's own pid file live in ``<state>/mosquitto/``.  Run as
root, mosquitto drops to the ``mosquitto`` user after binding its port, so that folder is
given to that user (``mosquitto -d`` exits silently when it cannot write its pid file; we run
it in the foreground under the launcher instead, with stdout/stderr in ``mosquitto.out``).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from string import Template

from nzc.services import ManagedService, ServiceError, chown_tree, read_pid, spawn

MOSQUITTO_BIN = Path("/usr/sbin/mosquitto")
APT_PACKAGES = ("mosquitto", "mosquitto-clients")
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

    def render_config(self) -> str:
        """The config text for this state dir and port."""
        return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
            port=self.port,
            user=self._user(),
            pid_file=self.own_pid_path,
            persistence_dir=self.data_dir,
            log_file=self.log_paths[0],
        )

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
        self.install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.render_config(), encoding="utf-8")
        self.own_pid_path.unlink(missing_ok=True)
        chown_tree(self.home, self._user())
        return spawn([str(MOSQUITTO_BIN), "-c", str(self.conf_path)], self.log_paths[1], self.home)
