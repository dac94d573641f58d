"""Routes of the web view, under ``/web``: ``/web/`` zone overview, ``/web/site/{site_id}``
site page, ``/web/api/overview`` and ``/web/api/site/{site_id}`` their live data (JSON; the
pages poll them every ``NZC_WEB_POLL_S`` seconds, default 5), ``/web/static/...`` the local
assets. Times in the JSON are UTC instants; the pages show them in Asia/Shanghai.

Every page and JSON route takes the API's one authorisation dependency
(:class:`api.auth.Need` ``("read")``: bearer token or the ``nzc_session`` cookie set by the
login form at ``/review/login``), so a site manager or facility staff sees only their own
sites (the overview lists only those; another site's page or JSON is 403) and reviewers and
admins see every site. A page visit without a session is sent to the login form with a
``next`` back to the page (:func:`api.web.review.install`); the JSON answers 401. Only the
static assets are public."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from api.auth import Caller, Need
from core.settings import Settings
from db.dashboard_views import site_page, zone_overview

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(prefix="/web", tags=["web"])
ReadCaller = Annotated[Caller, Depends(Need("read"))]


def _settings(request: Request) -> Settings:
    s = getattr(request.app.state, "settings", None)
    return s if isinstance(s, Settings) else Settings.from_env()


def _poll_s() -> float:
    return max(0.5, float(os.environ.get("NZC_WEB_POLL_S", "5")))


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, caller: ReadCaller) -> HTMLResponse:
    return templates.TemplateResponse(request, "overview.html",
                                      {"poll_s": _poll_s(), "caller": caller})


@router.get("/site/{site_id}", response_class=HTMLResponse)
def site_html(request: Request, site_id: str, caller: ReadCaller) -> HTMLResponse:
    return templates.TemplateResponse(request, "site.html", {
        "poll_s": _poll_s(), "site_id": site_id, "caller": caller})


@router.get("/api/overview")
def overview_data(request: Request, caller: ReadCaller) -> dict[str, Any]:
    """The overview's rows, only the sites in the caller's scope."""
    now = datetime.now(UTC)
    rows = zone_overview(_settings(request).database_reader_url, now)
    return {"now": now, "sites": [r for r in rows if caller.can_see(str(r["site_id"]))]}


@router.get("/api/site/{site_id}")
def site_data(request: Request, site_id: str, caller: ReadCaller,
              method: str = "location") -> dict[str, Any]:
    if method not in ("location", "market"):
        raise HTTPException(422, f"method={method!r}: expected location or market")
    now = datetime.now(UTC)
    page = site_page(_settings(request).database_reader_url, site_id, now, method)
    if page is None:
        raise HTTPException(404, f"站点不存在 unknown site {site_id!r}")
    return {"now": now, **page}


@router.get("/api/site/{site_id}/scorecard")
def site_scorecard(request: Request, site_id: str, caller: ReadCaller) -> dict[str, Any]:
    """The site's indicator scorecard, month to date (:func:`analytics.scorecard.
    scorecard_for_site`): per metered or declared indicator its value, reference and status,
    and the acceptance readiness."""
    from analytics.scorecard import scorecard_for_site

    now = datetime.now(UTC)
    try:
        card = scorecard_for_site(_settings(request).database_reader_url, site_id, "mtd", now)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc
    keep = ("id", "name_zh", "name_en", "kind", "type_zh", "value", "unit", "reference_text",
            "status", "status_zh", "completeness")
    return {"now": now, "period": card["period"]["label"],
            "readiness": card["readiness"],
            "indicators": [{k: i.get(k) for k in keep} for i in card["indicators"]]}


@router.get("/static/{path:path}")
def static(path: str) -> FileResponse:
    file = (STATIC / path).resolve()
    if not file.is_file() or STATIC not in file.parents:
        raise HTTPException(404, "not found")
    return FileResponse(file)
