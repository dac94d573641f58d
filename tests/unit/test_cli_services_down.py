"""A command that needs the services says so in one line when they are down (issue 8 item 10):
no traceback, no password, exit code 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("argv", [["summary"], ["scorecard", "--site", "cd-park"],
                                  ["close", "--site", "cd-park", "--month", "2026-10"]])
def test_services_down_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NZC_")}
    env.update(NZC_STATE_DIR=str(tmp_path), NZC_PG_PORT=str(_free_port()),
               NZC_DATABASE_URL="postgresql://nzc_writer:s3cret-w@127.0.0.1:1/nzc")
    out = subprocess.run([sys.executable, "-m", "nzc.cli", *argv], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nzc services up" in lines[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "s3cret" not in out.stderr + out.stdout
