"""Start and stop the pipeline's worker processes (ingest bridge, stream worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nzc.settings import Settings

WORKERS = ("ingest", "stream")


def worker_command(kind: str) -> list[str]:
    """The command line that runs one worker of ``kind`` in the foreground."""
    if kind not in WORKERS:
        raise ValueError(f"unknown worker {kind!r}; known: {', '.join(WORKERS)}")
    return [sys.executable, "-m", "nzc.cli", kind]


def start_worker(kind: str, settings: Settings, env: dict[str, str] | None = None,
                 log_name: str | None = None) -> subprocess.Popen[bytes]:
    """Start a worker in its own session, logging to ``<state>/logs/<kind>.log``."""
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{log_name or kind}.log"
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            worker_command(kind), stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )


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
