"""A standalone app that serves only the web view: ``make_app(settings)``. Used by
``nzc web`` and the web view's tests; the reviewers' API app includes the same router."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from api.web.routes import router
from core.settings import Settings


def make_app(settings: Settings) -> FastAPI:
    """The web view alone; ``/`` redirects to the zone overview ``/web/``."""
    app = FastAPI(title="nzc-monitor web view", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/web/")

    return app
