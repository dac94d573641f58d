"""Workers started by nzc are recorded, shown and stopped by `nzc services down` (issue 8,
item 10): the records live in ``<state>/workers``; a record whose process ended is dropped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.settings import Settings
from nzc.procs import recorded_workers, start_worker, stop_recorded_workers

pytestmark = pytest.mark.services


def test_started_workers_are_recorded_and_stopped(services: Settings, tmp_path: Path) -> None:
    # a state folder of its own, so that the session's shared workers are not touched
    s = dataclasses.replace(services, state_dir=tmp_path)
    proc = start_worker("stream", s, log_name="recorded-stream")
    log = tmp_path / "logs" / "recorded-stream.log"
    try:
        assert recorded_workers(s) == {"recorded-stream": proc.pid}, (
            proc.poll(), log.read_text(errors="replace")[-2000:])
        assert stop_recorded_workers(s, timeout_s=20) == ["recorded-stream"]
        assert proc.wait(timeout=5) is not None
        assert recorded_workers(s) == {}
        assert not list((tmp_path / "workers").glob("*.pid"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
