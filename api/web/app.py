"""``make_app(settings)``: the app ``nzc web`` serves. It is the API app itself
(:func:`api.app.create_app`: the web view, the login form and the reviewers' pages under the
one authorisation dependency :class:`api.auth.Need`), with ``/`` sent to the zone overview,
so that the web view is never served without login."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from core.settings import Settings


def make_app(settings: Settings) -> FastAPI:
    """The API app with ``/`` redirecting to the zone overview ``/web/`` (login first)."""
    from api.app import create_app

    app = create_app(settings)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/web/")

    return app
