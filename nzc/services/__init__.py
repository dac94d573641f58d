"""Local service launcher: Mosquitto, Kafka (KRaft) and PostgreSQL on loopback.

The machines this project runs on have no container engine, so the project installs, starts,
checks and stops its own brokers and database.  All state lives below ``Settings.state_dir``
(git-ignored).  The public entry points are in :mod:`nzc.services.manager`; this module holds
what the three services share: the root exception, pid bookkeeping, port probes and the
:class:`ManagedService` base class.

Library code here never configures logging; it logs to ``logging.getLogger("nzc.services")``.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar, TypedDict

from core.settings import Settings

log = logging.getLogger("nzc.services")

LOOPBACK = "127.0.0.1"
START_MARKER = "=== nzc services start "

# Popen objects of services started by this process, kept so that they can be reaped (no
# zombies while a long-lived process such as pytest keeps running, no ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class ServiceError(RuntimeError):
    """A local service could not be installed, started, checked or stopped."""


class ServiceStatus(TypedDict):
    """What :func:`nzc.services.manager.status` reports for one service."""

    running: bool
    answering: bool
    pid: int | None
    port: int
    log: str


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float, holder: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) across processes; raise
    :class:`ServiceError` naming ``holder`` when it is still taken after ``timeout_s`` [s]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ServiceError(
                        f"{holder} still holds {path} after {timeout_s:.0f} s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the text file at ``path`` (a note if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except FileNotFoundError:
        return f"({path} does not exist)"
    except OSError as exc:
        return f"({path} could not be read: {exc})"
    text = data.decode("utf-8", errors="replace").splitlines()
    # Output files written by spawn() hold one section per start: show the latest only.
    starts = [i for i, line in enumerate(text) if line.startswith(START_MARKER)]
    if starts:
        text = text[starts[-1] :]
    text = text[-lines:]
    return "\n".join(text) if text else f"({path} is empty)"


def port_open(port: int, host: str = LOOPBACK, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passed; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if it is a child of this process."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies count as dead)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X"):
        _reap(pid)  # it may have exited since the first _reap
        return False
    return True


def process_cmdline(pid: int) -> list[str]:
    """The argument vector of ``pid`` ([] if it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part]


def find_process(predicate: Callable[[list[str]], bool]) -> int | None:
    """The lowest pid of a live process whose argument vector satisfies ``predicate``."""
    pids = sorted(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    for pid in pids:
        argv = process_cmdline(pid)
        if argv and predicate(argv) and process_alive(pid):
            return pid
    return None


def read_pid(path: Path) -> int | None:
    """The pid recorded in the first line of ``path``, or None if absent or unreadable."""
    try:
        first = path.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def run(
    argv: Sequence[str],
    what: str,
    timeout_s: float,
    cwd: Path | None = None,
    log_hint: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion; raise :class:`ServiceError` naming ``what`` on failure."""
    log.debug("running %s: %s", what, " ".join(argv))
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ServiceError(f"{what}: program not found: {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{what}: no result after {timeout_s:.0f} s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()[-30:]
        msg = f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n" + "\n".join(output)
        if log_hint is not None:
            msg += f"\n--- tail of {log_hint} ---\n{tail(log_hint)}"
        raise ServiceError(msg)
    return proc


def spawn(argv: Sequence[str], out_path: Path, cwd: Path) -> int:
    """Start ``argv`` detached (own session, no stdin), stdout/stderr appended to ``out_path``."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("ab") as out:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        out.write(f"{START_MARKER}{stamp}: {' '.join(argv)}\n".encode())
        out.flush()
        try:
            child = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServiceError(f"cannot start {argv[0]}: {exc}") from exc
    _CHILDREN[child.pid] = child
    return child.pid


def chown_tree(path: Path, user: str) -> None:
    """Give ``path`` and everything below it to ``user`` (only when running as root)."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        shutil.chown(root, user, user)
        for name in dirs + files:
            target = Path(root) / name
            if not target.is_symlink():
                shutil.chown(target, user, user)


class ManagedService(abc.ABC):
    """One local service: its files below the state dir, its pid file, start and stop.

    Subclasses name the service, its port and logs, how to recognise its process, how to
    launch it and what to do once it answers.
    """

    name: ClassVar[str]
    #: (signal, seconds to wait for exit) tried in order when stopping.
    stop_signals: ClassVar[tuple[tuple[signal.Signals, float], ...]] = (
        (signal.SIGTERM, 20.0),
        (signal.SIGKILL, 5.0),
    )
    #: Seconds to wait for the port to answer after launching.
    start_timeout_s: ClassVar[float] = 30.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.home = self.state_dir / self.name
        self.pid_path = self.state_dir / f"{self.name}.pid"

    # --- what subclasses define -------------------------------------------------------

    @property
    @abc.abstractmethod
    def port(self) -> int:
        """The TCP port on 127.0.0.1 where the service answers."""

    @property
    @abc.abstractmethod
    def log_paths(self) -> list[Path]:
        """Log files, most useful first; their tails are shown in error messages."""

    @abc.abstractmethod
    def owns_process(self, argv: list[str]) -> bool:
        """Whether a process with argument vector ``argv`` is this project's service."""

    @abc.abstractmethod
    def install(self) -> None:
        """Download or build what the service needs beyond Debian packages (idempotent)."""

    @abc.abstractmethod
    def launch(self) -> int:
        """Prepare config and data, start the process, return its pid (do not wait)."""

    def after_ready(self) -> None:  # noqa: B027 - optional hook
        """Runs once the port answers (create topics, databases)."""

    def reset_paths(self) -> list[Path]:
        """What ``reset`` deletes: by default the service's whole folder."""
        return [self.home]

    def discover_pid(self) -> int | None:
        """Our service's pid when our pid file is missing or stale: by default the first
        process whose argument vector :meth:`owns_process` accepts."""
        return find_process(self.owns_process)

    # --- shared behaviour --------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """The main log file."""
        return self.log_paths[0]

    def log_tails(self, lines: int = 30) -> str:
        """Tails of all existing log files, for error messages."""
        parts = [
            f"--- tail of {path} ---\n{tail(path, lines)}"
            for path in self.log_paths
            if path.exists()
        ]
        return (
            "\n".join(parts)
            if parts
            else "(no log file written yet: " + ", ".join(str(p) for p in self.log_paths) + ")"
        )

    def _is_ours(self, pid: int | None) -> bool:
        return pid is not None and process_alive(pid) and self.owns_process(process_cmdline(pid))

    def pid(self) -> int | None:
        """The pid of our running service, or None.  Stale pid files are ignored."""
        recorded = read_pid(self.pid_path)
        if self._is_ours(recorded):
            return recorded
        found = self.discover_pid()
        if self._is_ours(found):
            return found
        return None

    def answering(self) -> bool:
        """Whether the service's port accepts connections."""
        return port_open(self.port)

    def status(self) -> ServiceStatus:
        """Running, answering, pid, port and main log of this service."""
        pid = self.pid()
        return ServiceStatus(
            running=pid is not None,
            answering=self.answering(),
            pid=pid,
            port=self.port,
            log=str(self.log_path),
        )

    def _write_pid(self, pid: int) -> None:
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.write_text(f"{pid}\n")

    def up(self) -> None:
        """Start the service unless it runs, wait until it answers, then run ``after_ready``."""
        pid = self.pid()
        if pid is None:
            # a process killed a moment ago (e.g. kill -9 of the JVM) may still hold its port
            # while its threads exit: give it a few seconds before calling the port foreign
            if self.answering() and not wait_until(lambda: not self.answering(), 10.0, 0.2):
                raise ServiceError(
                    f"{self.name}: port 127.0.0.1:{self.port} is already in use by a process "
                    f"this project did not start (no live pid in {self.pid_path}); stop it "
                    f"or choose another port"
                )
            self.pid_path.unlink(missing_ok=True)
            log.info("%s: starting", self.name)
            pid = self.launch()
            self._write_pid(pid)
        else:
            if read_pid(self.pid_path) != pid:
                self._write_pid(pid)
            log.info("%s: already running (pid %d)", self.name, pid)
        self._wait_answering(pid)
        self.after_ready()

    def _wait_answering(self, pid: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while not self.answering():
            if not process_alive(pid):
                raise ServiceError(
                    f"{self.name} (pid {pid}) exited before answering on 127.0.0.1:"
                    f"{self.port}\n{self.log_tails()}"
                )
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"{self.name} (pid {pid}) did not answer on 127.0.0.1:{self.port} within "
                    f"{self.start_timeout_s:.0f} s; it is left running\n{self.log_tails()}"
                )
            time.sleep(0.1)

    def down(self) -> bool:
        """Stop the recorded process (signals in ``stop_signals``); True if one was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        log.info("%s: stopping pid %d", self.name, pid)
        for sig, wait_s in self.stop_signals:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if wait_until(lambda: not process_alive(pid), wait_s, 0.1):
                self.pid_path.unlink(missing_ok=True)
                return True
            log.warning("%s: pid %d still alive %.0f s after %s", self.name, pid, wait_s, sig.name)
        raise ServiceError(f"{self.name}: pid {pid} did not exit\n{self.log_tails()}")
