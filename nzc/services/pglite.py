"""PGlite with TimescaleDB: real TimescaleDB C code (PostgreSQL 17 + TimescaleDB 2.23 with its
TSL part, compiled to WASM) served over TCP on loopback, for tests and benchmarks.

The node project is ``db/pglite/`` (``package.json``, ``package-lock.json``, ``server.js``);
its ``node_modules`` is installed by :func:`install` (``npm ci --legacy-peer-deps``) only when
it is missing or ``package-lock.json`` changed. :func:`start` runs ``node server.js`` in the
background and returns a :class:`PgliteServer` (its ``url`` for psycopg, ``stop()``).

What differs from a TimescaleDB server (see ``db/pglite/server.js``): one client connection
at a time (a second one waits until the first closes, then gets a clean session); no
``COPY FROM STDIN``; background jobs never run by themselves (``CALL run_job(id)``); any user
name and password are accepted and every session runs as the superuser ``postgres``, so role
privileges can only be checked with ``has_table_privilege``; ``sslmode=disable``.

Command line: ``python -m nzc.services.pglite install`` (idempotent) or
``python -m nzc.services.pglite serve --port 15460 [--data-dir DIR]`` (foreground).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.settings import REPO_ROOT, Settings
from nzc.services import (
    LOOPBACK,
    ServiceError,
    file_lock,
    log,
    port_open,
    process_alive,
    run,
    spawn,
    tail,
    wait_until,
)

PGLITE_DIR = REPO_ROOT / "db" / "pglite"
SERVER_JS = PGLITE_DIR / "server.js"
LOCK_FILE = PGLITE_DIR / "package-lock.json"
STAMP_PREFIX = ".nzc-lock-"
NPM_TIMEOUT_S = 900.0
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
INSTALL_LOCK_TIMEOUT_S = 900.0
MIN_NODE_MAJOR = 18


def _lock_digest() -> str:
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:16]


def installed() -> bool:
    """Whether ``db/pglite/node_modules`` was installed from the current lock file."""
    return (PGLITE_DIR / "node_modules" / f"{STAMP_PREFIX}{_lock_digest()}").exists()


def _check_node() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise ServiceError(
            "pglite: node and npm are required for the TimescaleDB tests (Node.js >= "
            f"{MIN_NODE_MAJOR}; Debian: apt-get install nodejs npm)"
        )
    out = run([node, "--version"], what="node --version", timeout_s=30.0).stdout.strip()
    major = out.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < MIN_NODE_MAJOR:
        raise ServiceError(f"pglite: Node.js {out} found, >= {MIN_NODE_MAJOR} required")
    return node


def install(settings: Settings | None = None) -> bool:
    """Install the node packages with ``npm ci --legacy-peer-deps`` unless ``node_modules``
    matches the lock file already; return whether npm ran. A second call downloads nothing."""
    if installed():
        return False
    settings = settings or Settings.from_env()
    _check_node()
    with file_lock(settings.state_dir / ".pglite-install.lock", INSTALL_LOCK_TIMEOUT_S,
                   "another pglite install"):
        if installed():
            return False
        log.info("pglite: npm ci in %s", PGLITE_DIR)
        run(
            ["npm", "ci", "--legacy-peer-deps", "--no-audit", "--no-fund"],
            what="pglite: npm ci",
            timeout_s=NPM_TIMEOUT_S,
            cwd=PGLITE_DIR,
        )
        (PGLITE_DIR / "node_modules" / f"{STAMP_PREFIX}{_lock_digest()}").touch()
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class PgliteServer:
    """A running ``db/pglite/server.js``."""

    pid: int
    port: int
    log_path: Path
    data_dir: Path | None

    @property
    def url(self) -> str:
        """psycopg connection string (user and password are ignored by pglite)."""
        return f"postgresql://postgres:pglite@{LOOPBACK}:{self.port}/postgres?sslmode=disable"

    def alive(self) -> bool:
        """Whether the server process still runs."""
        return process_alive(self.pid)

    def stop(self) -> None:
        """SIGTERM (clean close of the database), then SIGKILL after ``STOP_TIMEOUT_S``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            if wait_until(lambda: not process_alive(self.pid), STOP_TIMEOUT_S, 0.05):
                return
        raise ServiceError(f"pglite: pid {self.pid} did not exit\n{tail(self.log_path)}")


def start(
    log_path: Path,
    port: int | None = None,
    data_dir: Path | None = None,
    wait_ms: int = 60_000,
) -> PgliteServer:
    """Start the server on 127.0.0.1:``port`` (a free port if None) and wait until it answers.

    ``data_dir``: where the database is kept (None: in memory, gone when it stops).
    ``wait_ms``: how long a second connection waits for the first to close before it is
    refused with an error naming the one-connection rule. Raises :class:`ServiceError` with
    the tail of ``log_path`` if it does not come up within ``START_TIMEOUT_S``.
    """
    node = _check_node()
    if not installed():
        raise ServiceError(
            f"pglite: {PGLITE_DIR / 'node_modules'} is missing or older than "
            f"package-lock.json: run scripts/setup (or python -m nzc.services.pglite install)"
        )
    port = free_port() if port is None else port
    if port_open(port):
        raise ServiceError(f"pglite: 127.0.0.1:{port} is already in use")
    argv = [node, str(SERVER_JS), "--port", str(port), "--wait-ms", str(wait_ms)]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--data-dir", str(data_dir)]
    pid = spawn(argv, log_path, cwd=PGLITE_DIR)
    server = PgliteServer(pid=pid, port=port, log_path=log_path, data_dir=data_dir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open(port):
        if not server.alive():
            raise ServiceError(f"pglite (pid {pid}) exited before answering on port {port}\n"
                               f"{tail(log_path)}")
        if time.monotonic() >= deadline:
            server.stop()
            raise ServiceError(f"pglite (pid {pid}) did not answer on port {port} within "
                               f"{START_TIMEOUT_S:.0f} s\n{tail(log_path)}")
        time.sleep(0.1)
    log.info("pglite: pid %d answers on 127.0.0.1:%d", pid, port)
    return server


def main(argv: list[str] | None = None) -> int:
    """``install`` | ``serve``; exit 0 on success, 1 on error."""
    parser = argparse.ArgumentParser(prog="python -m nzc.services.pglite")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="npm ci in db/pglite if node_modules is missing or stale")
    serve = sub.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("--port", type=int, default=15460)
    serve.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            if install():
                print(f"pglite: node packages installed in {PGLITE_DIR / 'node_modules'}")
            return 0
        install()
        argv_ = [_check_node(), str(SERVER_JS), "--port", str(args.port)]
        if args.data_dir is not None:
            argv_ += ["--data-dir", str(args.data_dir)]
        os.chdir(PGLITE_DIR)
        os.execv(argv_[0], argv_)
    except ServiceError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
