"""Install, start, check and stop the local Mosquitto, Kafka and PostgreSQL.

Public API (used by the ``nzc`` CLI as ``nzc services <command>``):

- :func:`install` - Debian packages if missing (one ``apt-get update`` first), Kafka jars from
  Maven Central if missing; a second call downloads nothing;
- :func:`up` - install, start what is not running, wait until each answers, create the Kafka
  topics and the database;
- :func:`down` - stop what ``up`` started, by recorded pid only;
- :func:`status` - per service: running, answering, pid, port, log;
- :func:`reset` - ``down``, then delete the services' data (the downloaded jars are kept);
- :func:`main` - the command line.

Everything listens on 127.0.0.1 and keeps its state below ``Settings.state_dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from core.settings import Settings
from nzc.services import (
    ManagedService,
    ServiceError,
    ServiceStatus,
    file_lock,
    log,
    run,
)
from nzc.services import alertmanager as alertmanager_mod
from nzc.services import kafka as kafka_mod
from nzc.services import mosquitto as mosquitto_mod
from nzc.services import postgres as postgres_mod

APT_TIMEOUT_S = 900.0
LOCK_TIMEOUT_S = 1200.0


def services(settings: Settings) -> list[ManagedService]:
    """The managed services, in display order."""
    return [
        mosquitto_mod.Mosquitto(settings),
        kafka_mod.Kafka(settings),
        postgres_mod.Postgres(settings),
        # alerts (issue 13): the router and our robot receiver
        alertmanager_mod.AlertmanagerService(settings),
        alertmanager_mod.AlertReceiverService(settings),
    ]


def _required_apt_packages() -> list[str]:
    packages = [*mosquitto_mod.APT_PACKAGES, *postgres_mod.APT_PACKAGES,
                *alertmanager_mod.APT_PACKAGES]
    for program, package in kafka_mod.REQUIRED_PROGRAMS.items():
        if shutil.which(program) is None:
            packages.append(package)
    return packages


def missing_apt_packages(packages: Sequence[str]) -> list[str]:
    """The packages among ``packages`` that ``dpkg -s`` does not report as installed."""
    if shutil.which("dpkg") is None:
        raise ServiceError("dpkg not found: the local launcher needs a Debian-based system")
    missing = []
    for package in packages:
        proc = subprocess.run(["dpkg", "-s", package], capture_output=True, text=True, check=False)
        if proc.returncode != 0 or "Status: install ok installed" not in proc.stdout:
            missing.append(package)
    return missing


def _apt_install(packages: Sequence[str]) -> None:
    if os.geteuid() != 0:
        raise ServiceError(
            f"missing Debian packages {' '.join(packages)}: run as root, or "
            f"`sudo apt-get update && sudo apt-get install -y {' '.join(packages)}`"
        )
    log.info("installing Debian packages: %s", " ".join(packages))
    noninteractive = ["env", "DEBIAN_FRONTEND=noninteractive"]
    run([*noninteractive, "apt-get", "update"], what="apt-get update", timeout_s=APT_TIMEOUT_S)
    run(
        [*noninteractive, "apt-get", "install", "-y", "--no-install-recommends", *packages],
        what="apt-get install",
        timeout_s=APT_TIMEOUT_S,
    )


def install(settings: Settings) -> None:
    """Install what the services need, only what is missing (idempotent, cached)."""
    with _locked(settings):
        _install(settings)


def _install(settings: Settings) -> None:
    missing = missing_apt_packages(_required_apt_packages())
    if missing:
        _apt_install(missing)
    for service in services(settings):
        service.install()


def _locked(settings: Settings) -> contextlib.AbstractContextManager[None]:
    """Serialise install/up/down/reset of one state dir across processes (pytest workers,
    a CLI in another terminal): an exclusive ``flock`` on ``<state>/.services.lock``."""
    return file_lock(settings.state_dir / ".services.lock", LOCK_TIMEOUT_S,
                     "another `nzc services` command")


def _each(settings: Settings, action: Callable[[ManagedService], object], verb: str) -> None:
    """Run ``action`` on every service in parallel; raise one error listing all failures."""
    todo = services(settings)
    with ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="nzc-services") as pool:
        futures = [(service, pool.submit(action, service)) for service in todo]
        failures = []
        for service, future in futures:
            exc = future.exception()
            if exc is not None:
                failures.append(f"[{service.name}] {exc}")
    if failures:
        raise ServiceError(f"could not {verb}:\n" + "\n\n".join(failures))


def up(settings: Settings) -> None:
    """Install, start whatever is not running, wait until all answer, create topics and db.

    Services start in parallel; each wait is bounded.  On failure the error names the
    service and shows the tail of its log; services that did start are left running.
    """
    with _locked(settings):
        _install(settings)
        _each(settings, lambda s: s.up(), "start every service")


def down(settings: Settings) -> None:
    """Stop the services by their recorded pids (nothing else is signalled)."""
    # the ingest and stream workers nzc started (recorded by nzc.procs.start_worker) first:
    # without their services they would only log errors
    from nzc.procs import stop_recorded_workers

    stopped = stop_recorded_workers(settings)
    if stopped:
        log.info("stopped workers: %s", ", ".join(stopped))
    with _locked(settings):
        _each(settings, lambda s: s.down(), "stop every service")


def status(settings: Settings) -> dict[str, ServiceStatus]:
    """Per service: running (pid alive), answering (port open), pid, port and log path."""
    return {service.name: service.status() for service in services(settings)}


def reset(settings: Settings) -> None:
    """Stop everything, then delete the services' data for a clean slate.

    Kept: the Kafka jars (and their pom), and anything in the state dir that is not one of
    the three services' folders or pid files.
    """
    with _locked(settings):
        _each(settings, lambda s: s.down(), "stop every service")
        for service in services(settings):
            for path in [*service.reset_paths(), service.pid_path]:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        # the stream workers' local meter states belong to the Kafka data just deleted
        shutil.rmtree(settings.stream_state_root, ignore_errors=True)


def format_status(report: dict[str, ServiceStatus]) -> str:
    """A readable table of :func:`status`."""
    rows = [("service", "running", "answering", "pid", "port", "log")]
    for name, st in report.items():
        rows.append(
            (
                name,
                "yes" if st["running"] else "no",
                "yes" if st["answering"] else "no",
                str(st["pid"]) if st["pid"] is not None else "-",
                str(st["port"]),
                st["log"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  "
        + row[-1]
        for row in rows
    )


def main(argv: list[str]) -> int:
    """``install | up | down | status | reset``; exit 0 on success, 1 on error, and for
    ``status`` 3 when a service is not running or not answering."""
    parser = argparse.ArgumentParser(
        prog="nzc services",
        description="Local Mosquitto, Kafka and PostgreSQL on 127.0.0.1 (state in NZC_STATE_DIR).",
    )
    parser.add_argument(
        "command",
        choices=("install", "up", "down", "status", "reset"),
        help="install: packages and jars if missing; up: install and start, create topics and "
        "database; down: stop; status: table; reset: down and delete the services' data",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    actions: dict[str, Callable[[Settings], None]] = {
        "install": install,
        "up": up,
        "down": down,
        "reset": reset,
    }
    started = time.monotonic()
    if args.command != "status":
        try:
            actions[args.command](settings)
        except ServiceError as exc:
            print(f"nzc services {args.command}: error: {exc}", file=sys.stderr)
            return 1
        print(f"nzc services {args.command}: done in {time.monotonic() - started:.1f} s")
    report = status(settings)
    print(format_status(report))
    from nzc.procs import recorded_workers

    workers = recorded_workers(settings)
    print("workers: " + (", ".join(f"{n} (pid {p})" for n, p in workers.items()) or "none"))
    if args.command == "status":
        return 0 if all(st["running"] and st["answering"] for st in report.values()) else 3
    return 0
