"""Readiness of a worker process, signalled explicitly (not by a line in its log).

The launcher (:mod:`nzc.procs`) names a file in ``NZC_READY_FILE`` when it starts a worker;
the worker writes it, atomically, once it is ready (the ingest bridge: its persistent MQTT
session is subscribed, so nothing published from then on can miss it; a stream worker: it
has been assigned its partitions). Without the variable nothing is written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

READY_FILE_ENV = "NZC_READY_FILE"


def signal_ready(what: str) -> None:
    """Write ``what`` and the time [epoch s] to the file named by ``NZC_READY_FILE``."""
    path = os.environ.get(READY_FILE_ENV)
    if not path:
        return
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(f"{what} {time.time():.3f}\n", encoding="utf-8")
    tmp.replace(target)
