"""Start and stop the pipeline's worker processes (ingest bridge, stream worker)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from core.readiness import READY_FILE_ENV
from core.settings import Settings

# worker kind -> its ``nzc`` subcommand: the MQTT -> Kafka bridge, a stream worker, the API with
# the web view and the reviewers' pages, the alert evaluator
WORKER_COMMANDS = {"ingest": ("ingest",), "stream": ("stream",), "api": ("api",),
                   "alerts": ("alerts", "run")}
WORKERS = tuple(WORKER_COMMANDS)


def worker_command(kind: str) -> list[str]:
    """The command line that runs one worker of ``kind`` in the foreground."""
    if kind not in WORKERS:
        raise ValueError(f"unknown worker {kind!r}; known: {', '.join(WORKERS)}")
    return [sys.executable, "-m", "nzc.cli", *WORKER_COMMANDS[kind]]


def ready_path(settings: Settings, name: str) -> Path:
    """The file a worker named ``name`` writes once it is ready (:mod:`core.readiness`)."""
    return _pid_dir(settings) / f"{name}.ready"


def start_worker(kind: str, settings: Settings, env: dict[str, str] | None = None,
                 log_name: str | None = None,
                 extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start a worker in its own session, logging to ``<state>/logs/<kind>.log``
    (``extra_args`` are added to its command line, e.g. ``--loglevel info``); it signals
    readiness by writing :func:`ready_path` (see :func:`wait_ready`)."""
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ready = ready_path(settings, log_name or kind)
    ready.parent.mkdir(parents=True, exist_ok=True)
    ready.unlink(missing_ok=True)
    with open(logs / f"{log_name or kind}.log", "ab") as out:
        proc = subprocess.Popen(
            [*worker_command(kind), *extra_args], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), READY_FILE_ENV: str(ready)},
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    # recorded, so that `nzc services down` stops it and `nzc services status` shows it
    pids = _pid_dir(settings)
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"{log_name or kind}.pid").write_text(f"{proc.pid}\n")
    # on a loaded machine /proc may show the new process's command line a moment late; until
    # it does, the record would look like a reused pid (bounded: 5 s, or until it exits)
    deadline = time.monotonic() + 5.0
    while not _is_worker(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc


def _pid_dir(settings: Settings) -> Path:
    return settings.state_dir / "workers"


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` is alive and one of our workers (guards against a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and b"nzc.cli" in argv and any(w.encode() in argv for w in WORKERS)


def recorded_workers(settings: Settings) -> dict[str, int]:
    """The workers started by :func:`start_worker` that still run: name -> pid (the records of
    the others are removed)."""
    out = {}
    folder = _pid_dir(settings)
    for path in sorted(folder.glob("*.pid")) if folder.is_dir() else []:
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and _is_worker(pid):
            out[path.stem] = pid
        else:
            path.unlink(missing_ok=True)
    return out


def stop_recorded_workers(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """SIGTERM every recorded worker, SIGKILL what still runs after ``timeout_s``; returns the
    names stopped."""
    workers = recorded_workers(settings)
    for pid in workers.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_is_worker(p) for p in workers.values()):
        time.sleep(0.1)
    for pid in workers.values():
        if _is_worker(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for name in workers:
        (_pid_dir(settings) / f"{name}.pid").unlink(missing_ok=True)
    return sorted(workers)


def log_path(settings: Settings, name: str) -> Path:
    """Where :func:`start_worker` writes the log of worker ``name``."""
    return settings.state_dir / "logs" / f"{name}.log"


def _wait_worker(proc: subprocess.Popen[bytes], log: Path, done: Callable[[], bool],
                 what: str, timeout_s: float) -> None:
    """Poll ``done`` until it holds; raise with the log's tail when the worker exits first or
    the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"worker did not {what} within {timeout_s} s (exit code "
                       f"{proc.poll()}); log {log}:\n{tail}")


def wait_for_log_line(proc: subprocess.Popen[bytes], path: Path, text: str,
                      timeout_s: float = 60.0, offset: int = 0) -> None:
    """Wait until ``text`` appears in the log at ``path`` after byte ``offset`` (for faust's
    own milestones, e.g. recovery done; readiness is :func:`wait_ready`)."""

    def logged() -> bool:
        if not path.exists():
            return False
        with open(path, "rb") as f:
            f.seek(offset)
            return text.encode() in f.read()

    _wait_worker(proc, path, logged, f"log {text!r}", timeout_s)


def wait_ready(proc: subprocess.Popen[bytes], settings: Settings, name: str,
               timeout_s: float = 60.0) -> None:
    """Wait until the worker ``name`` signalled readiness (its ready file exists)."""
    ready = ready_path(settings, name)
    _wait_worker(proc, log_path(settings, name), ready.exists,
                 f"signal readiness ({name})", timeout_s)


def start_ingest_ready(settings: Settings, log_name: str = "ingest",
                       timeout_s: float = 60.0) -> subprocess.Popen[bytes]:
    """Start the ingest bridge and return once its persistent MQTT session is subscribed, so
    that nothing published from then on can miss it."""
    proc = start_worker("ingest", settings, log_name=log_name)
    wait_ready(proc, settings, log_name, timeout_s)
    return proc


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
    return proc.wait()
