"""Run the API with uvicorn on loopback: ``nzc api`` (port ``NZC_API_PORT``, default 18080;
host ``NZC_API_HOST``, default 127.0.0.1), and a background scan of the frozen months for
restatements every ``NZC_RESTATEMENT_SCAN_S`` seconds."""

from __future__ import annotations

import logging
import os
import threading

import uvicorn

from analytics.closing import scan_all
from analytics.review import ReviewConfig
from api.app import create_app
from core.settings import Settings
from db.review import connect

DEFAULT_PORT = 18080
log = logging.getLogger(__name__)


def api_port() -> int:
    """The API's port from ``NZC_API_PORT``."""
    raw = os.environ.get("NZC_API_PORT", "") or str(DEFAULT_PORT)
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"NZC_API_PORT={raw!r} is not an integer") from exc


def api_host() -> str:
    """The API's listen address from ``NZC_API_HOST`` (loopback unless a deployment puts a
    TLS proxy in front)."""
    return os.environ.get("NZC_API_HOST", "") or "127.0.0.1"


def scan_interval_s() -> float:
    """Seconds between automatic restatement scans (``NZC_RESTATEMENT_SCAN_S``, default 900;
    0 turns them off)."""
    raw = os.environ.get("NZC_RESTATEMENT_SCAN_S", "") or "900"
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"NZC_RESTATEMENT_SCAN_S={raw!r} is not a number") from exc


def _scanner(settings: Settings, every_s: float, stop: threading.Event) -> None:
    """Compare frozen months with their live figures every ``every_s`` seconds, so that late
    data or a recompute opens a restatement without anyone asking."""
    config = ReviewConfig.from_env()
    while not stop.wait(every_s):
        try:
            with connect(settings.database_url) as conn:
                found = scan_all(conn, settings.interval_s, config)
            for r in found:
                log.info("restatement %s for %s: %s", r["restatement_id"], r["month"],
                         r["reason"])
        except Exception:  # a failed scan is retried at the next tick; the API keeps serving
            log.exception("restatement scan failed")


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the API in the foreground until interrupted, with the restatement scanner."""
    stop = threading.Event()
    every = scan_interval_s()
    if every > 0:
        threading.Thread(target=_scanner, args=(settings, every, stop), daemon=True,
                         name="restatement-scan").start()
    try:
        uvicorn.run(create_app(settings), host=host or api_host(), port=port or api_port(),
                    log_level="info", access_log=True)
    finally:
        stop.set()
