"""Start and stop the pipeline's worker processes (ingest bridge, stream worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nzc.settings import Settings

WORKERS = ("ingest", "stream")


def worker_command(kind: str) -> list[str]:
    """The command line that runs one worker of ``kind`` in the foreground."""
    if kind not in WORKERS:
        raise ValueError(f"unknown worker {kind!r}; known: {', '.join(WORKERS)}")
    return [sys.executable, "-m", "nzc.cli", kind]


def start_worker(kind: str, settings: Settings, env: dict[str, str] | None = None,
                 log_name: str | None = None,
                 extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start a worker in its own session, logging to ``<state>/logs/<kind>.log``
    (``extra_args`` are added to its command line, e.g. ``--loglevel info``)."""
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{log_name or kind}.log", "ab") as out:
        return subprocess.Popen(
            [*worker_command(kind), *extra_args], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )


def log_path(settings: Settings, name: str) -> Path:
    """Where :func:`start_worker` writes the log of worker ``name``."""
    return settings.state_dir / "logs" / f"{name}.log"


def wait_for_log_line(proc: subprocess.Popen[bytes], path: Path, text: str,
                      timeout_s: float = 60.0, offset: int = 0) -> None:
    """Wait until ``text`` appears in the log at ``path`` after byte ``offset``; raise with
    the log's tail when the worker exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            with open(path, "rb") as f:
                f.seek(offset)
                if text.encode() in f.read():
                    return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"
    raise RuntimeError(f"worker did not log {text!r} within {timeout_s} s "
                       f"(exit code {proc.poll()}); log {path}:\n{tail}")


def start_ingest_ready(settings: Settings, log_name: str = "ingest",
                       timeout_s: float = 60.0) -> subprocess.Popen[bytes]:
    """Start the ingest bridge and return once its persistent MQTT session is subscribed, so
    that nothing published from then on can miss it."""
    from ingest.mqtt import READY_LINE

    path = log_path(settings, log_name)
    offset = path.stat().st_size if path.exists() else 0
    proc = start_worker("ingest", settings, log_name=log_name)
    wait_for_log_line(proc, path, READY_LINE, timeout_s, offset)
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
