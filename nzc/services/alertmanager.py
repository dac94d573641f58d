"""Prometheus Alertmanager (Debian ``prometheus-alertmanager``) and our robot receiver
(:mod:`alerts.channels`) as local services on 127.0.0.1.

Alertmanager's config (rendered from ``alerts/routing.yaml``), its data (silences,
notification log) and its output live in ``<state>/alertmanager/``; clustering is off
(``--cluster.listen-address=``), so no gossip port is opened. The receiver runs
``python -m alerts.channels serve`` with its output in ``<state>/alert-receiver/``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from alerts.am import render_config
from alerts.config import AlertSettings
from core.settings import REPO_ROOT
from nzc.services import ManagedService, ServiceError, run, spawn

ALERTMANAGER_BIN = Path("/usr/bin/prometheus-alertmanager")
AMTOOL_BIN = Path("/usr/bin/amtool")
APT_PACKAGES = ("prometheus-alertmanager",)


class AlertmanagerService(ManagedService):
    """The alert router."""

    name = "alertmanager"
    start_timeout_s = 30.0

    @property
    def alert_settings(self) -> AlertSettings:
        """Ports and files of the alerting part (read from the environment)."""
        return AlertSettings.from_env()

    @property
    def port(self) -> int:
        """HTTP API port (``NZC_ALERTMANAGER_PORT``)."""
        return self.alert_settings.alertmanager_port

    @property
    def conf_path(self) -> Path:
        """The rendered config."""
        return self.home / "alertmanager.yml"

    @property
    def log_paths(self) -> list[Path]:
        """Alertmanager logs to stderr, captured here."""
        return [self.home / "alertmanager.out"]

    def owns_process(self, argv: list[str]) -> bool:
        """Ours runs with ``--config.file=<state>/alertmanager/alertmanager.yml``."""
        return bool(argv) and argv[0].endswith("alertmanager") and \
            f"--config.file={self.conf_path}" in argv

    def install(self) -> None:
        """Nothing beyond the Debian package (installed by ``nzc services install``)."""
        if not ALERTMANAGER_BIN.exists():
            raise ServiceError(f"{ALERTMANAGER_BIN} is missing: install the Debian package "
                               "prometheus-alertmanager")

    def write_config(self) -> None:
        """Render the routing file and check it with ``amtool check-config`` if present."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(render_config(self.alert_settings), encoding="utf-8")
        if AMTOOL_BIN.exists():
            run([str(AMTOOL_BIN), "check-config", str(self.conf_path)],
                what="amtool check-config", timeout_s=30)

    def launch(self) -> int:
        """Write the config, start Alertmanager in the foreground."""
        self.install()
        self.write_config()
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        return spawn([str(ALERTMANAGER_BIN), f"--config.file={self.conf_path}",
                      f"--storage.path={data}",
                      f"--web.listen-address=127.0.0.1:{self.port}",
                      f"--web.external-url=http://127.0.0.1:{self.port}",
                      "--cluster.listen-address=", "--log.level=info"],
                     self.log_paths[0], self.home)


class AlertReceiverService(ManagedService):
    """Our webhook receiver that forwards Alertmanager notifications to the robots."""

    name = "alert-receiver"
    start_timeout_s = 30.0

    @property
    def port(self) -> int:
        """HTTP port (``NZC_ALERT_RECEIVER_PORT``)."""
        return AlertSettings.from_env().receiver_port

    @property
    def log_paths(self) -> list[Path]:
        """stdout/stderr of the receiver."""
        return [self.home / "receiver.out"]

    def owns_process(self, argv: list[str]) -> bool:
        """Ours runs ``python -m alerts.channels serve --port <port>``."""
        return "alerts.channels" in argv and "serve" in argv and str(self.port) in argv

    def install(self) -> None:
        """Pure Python: nothing to install."""

    def launch(self) -> int:
        """Start the receiver with this interpreter."""
        self.home.mkdir(parents=True, exist_ok=True)
        python = sys.executable or shutil.which("python3") or "python3"
        return spawn([python, "-m", "alerts.channels", "serve", "--port", str(self.port)],
                     self.log_paths[0], REPO_ROOT)
