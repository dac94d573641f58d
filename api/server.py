"""Run the API with uvicorn on loopback: ``nzc api`` (port ``NZC_API_PORT``, default 18080;
host ``NZC_API_HOST``, default 127.0.0.1)."""

from __future__ import annotations

import os

import uvicorn

from api.app import create_app
from nzc.settings import Settings

DEFAULT_PORT = 18080


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


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the API in the foreground until interrupted."""
    uvicorn.run(create_app(settings), host=host or api_host(), port=port or api_port(),
                log_level="info", access_log=True)
