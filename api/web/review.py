"""The reviewer's and site manager's pages (issue 15), server-rendered (Jinja2, every asset
local), under ``/review``, in the API app (:func:`api.app.create_app` includes them).

Login takes the API's users: a form with the token from ``nzc users add`` (and, optionally,
the user's name, which must match); it sets an HttpOnly, SameSite=Strict session cookie
holding the token, and every page and action then goes through the same
:class:`api.auth.Need` dependency as the API, so site scoping is decided in one place.
Actions are HTML form posts that call the close's own functions
(:mod:`analytics.closing`) and redirect back (303). Times are shown in Asia/Shanghai.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from analytics import closing
from analytics.review import TRANSITIONS, ReviewConfig
from api.auth import PERMISSIONS, SESSION_COOKIE, Caller, Need, split_token
from core.settings import Settings
from db import review as dbr
from reports.build import scorecard_items
from reports.document import (
    CHECK_NAMES,
    RESTATEMENT_STATES,
    STATUS_NAMES,
    figure_label,
    fmt,
    local_time,
    pct,
    state_name,
)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(prefix="/review", include_in_schema=False)
ReadCaller = Annotated[Caller, Depends(Need("read"))]
SubmitCaller = Annotated[Caller, Depends(Need("submit"))]
VerifyCaller = Annotated[Caller, Depends(Need("verify"))]
ReturnCaller = Annotated[Caller, Depends(Need("return"))]
RestateCaller = Annotated[Caller, Depends(Need("restate"))]
#: how many recent local months the sites list shows besides the ones with a close
RECENT_MONTHS = 3
FIGURE_ORDER = ("energy_consumed", "scope1", "scope2_location", "scope2_market",
                "total_location", "total_market", "sinks", "purchased_reductions",
                "net_location", "net_market", "renewable_share", "carbon_intensity_of_energy")


def _local(value: Any) -> str:
    if isinstance(value, datetime):
        return local_time(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, str) and "T" in value:
        try:
            return local_time(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    return "—" if value is None else str(value)


def _numbers(value: Any) -> str:
    return json.dumps(dbr.normalise(value), ensure_ascii=False, sort_keys=True)


templates.env.filters.update(local=_local, fmt=fmt, pct=pct, numbers=_numbers,
                             state_name=state_name,
                             status_name=lambda s: STATUS_NAMES.get(str(s), str(s)))
templates.env.globals.update(figure_label=figure_label, check_names=CHECK_NAMES,
                             restatement_states=RESTATEMENT_STATES)


def _settings(request: Request) -> Settings:
    s = getattr(request.app.state, "settings", None)
    return s if isinstance(s, Settings) else Settings.from_env()


def _config(request: Request) -> ReviewConfig:
    c = getattr(request.app.state, "review_config", None)
    return c if isinstance(c, ReviewConfig) else ReviewConfig.from_env()


def _may(caller: Caller, action: str) -> bool:
    return caller.role in PERMISSIONS[action]


def _page(request: Request, name: str, caller: Caller | None, status: int = 200,
          **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"caller": caller, **context},
                                      status_code=status)


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the pages' forms) as a dict."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _back(path: str, error: str | None = None, note: str | None = None) -> RedirectResponse:
    query = f"?error={quote(error)}" if error else (f"?note={quote(note)}" if note else "")
    return RedirectResponse(path + query, status_code=303)


def _recent_months(now: datetime, n: int) -> list[date]:
    """The ``n`` local (Asia/Shanghai) months before the current one, newest first."""
    from reports.document import LOCAL_TZ

    local = now.astimezone(LOCAL_TZ).date()
    year, month = local.year, local.month
    out = []
    for _ in range(n):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        out.append(date(year, month, 1))
    return out


# --- login ---------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/review/") -> HTMLResponse:
    """The login form: the API token (and the user's name)."""
    return _page(request, "review/login.html", None, next=next, error=None)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Check the token like the API does; set the HttpOnly session cookie."""
    form = await _form(request)
    token, name = form.get("token", "").strip(), form.get("name", "").strip()
    target = form.get("next", "/review/")
    if not _page_path(target):
        target = "/review/"
    user = await run_in_threadpool(_check_login, request, token, name)
    if user is None:
        return _page(request, "review/login.html", None, status=401, next=target,
                     error="用户名或令牌无效 / unknown name or invalid token")
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                    secure=request.url.scheme == "https")
    return resp


def _page_path(path: str) -> bool:
    """A page the login may send back to: the reviewers' pages or the web view's (never
    another host, never the JSON or the login itself)."""
    return (path.startswith(("/review/", "/web/")) and not path.startswith("//")
            and not path.startswith(("/review/login", "/web/api/", "/web/static/")))


def _check_login(request: Request, token: str, name: str) -> dict[str, Any] | None:
    parts = split_token(token)
    if parts is None:
        return None
    state = request.app.state
    with dbr.connect(state.database_url) as conn:
        user = dbr.user_by_key(conn, parts[0])
        if user is None or (name and name != user["name"]):
            return None
        ok, _ = state.tokens.check(token, user["token_hash"], parts[1])
        if not ok:
            return None
        dbr.append_audit(conn, user["name"], "auth.login", details={
            "role": user["role"], "via": "web",
            "client": request.client.host if request.client else None})
        return dict(user)


@router.post("/logout")
def logout() -> RedirectResponse:
    """Forget the session cookie."""
    resp = RedirectResponse("/review/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# --- pages ---------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def sites_page(request: Request, caller: ReadCaller) -> HTMLResponse:
    """Sites in scope with the close state of each month."""
    with dbr.connect(_settings(request).database_url) as conn:
        sites = dbr.list_sites(conn, caller.sites)
        closes = dbr.list_closes(conn, caller.sites)
    recent = _recent_months(datetime.now(UTC), RECENT_MONTHS)
    by_site: dict[str, dict[date, dict[str, Any]]] = {}
    for c in closes:
        by_site.setdefault(c["site_id"], {})[c["month"]] = c
    rows = []
    for s in sites:
        known = by_site.get(s["site_id"], {})
        months = sorted(set(known) | set(recent), reverse=True)
        rows.append({"site": s, "months": [
            {**(known.get(m) or {"state": "draft", "version": 0}), "month": f"{m:%Y-%m}"}
            for m in months]})
    return _page(request, "review/sites.html", caller, rows=rows)


@router.get("/sites/{site_id}/months/{month}", response_class=HTMLResponse)
def month_page(request: Request, site_id: str, month: str, caller: ReadCaller,
               error: str | None = None, note: str | None = None) -> HTMLResponse:
    """One month: checks in words and numbers, figures, scorecard, actions, downloads."""
    s = _settings(request)
    m = closing.parse_month(month)
    with dbr.connect(s.database_url) as conn:
        site = dbr.get_site(conn, site_id)
        if site is None:
            raise StarletteHTTPException(404, f"未知站点 unknown site {site_id}")
        view = closing.view_month(conn, site_id, m, s.interval_s, _config(request))
        restatements = dbr.list_restatements(conn, site_id, m)
        snapshots = dbr.list_snapshots(conn, site_id, m)
    state = view.state["state"]
    actions = {a: _may(caller, a) and state in TRANSITIONS[a][0]
               for a in ("submit", "verify", "return")}
    scorecard = scorecard_items(s.database_reader_url, site_id, m, datetime.now(UTC))
    figs = view.document["figures"]
    order = [n for n in sorted(figs) if n.startswith("energy.")] + [
        n for n in FIGURE_ORDER if n in figs] + sorted(
        n for n in figs if n.startswith("intensity."))
    figures = [(n, figs[n]) for n in order] + [(n, f) for n, f in figs.items()
                                                if n not in order]
    return _page(request, "review/month.html", caller, site=site, month=month, view=view,
                 figures=figures,
                 actions=actions, scorecard=scorecard, restatements=restatements,
                 snapshots=snapshots, error=error, note=note, year=m.year,
                 may_restate=_may(caller, "restate"))


def _month_action(request: Request, site_id: str, month: str, action: str, caller: Caller,
                  comment: str = "") -> RedirectResponse:
    s = _settings(request)
    back = f"/review/sites/{site_id}/months/{month}"
    try:
        m = closing.parse_month(month)
        with dbr.connect(s.database_url) as conn:
            if action == "submit":
                closing.submit(conn, site_id, m, caller.name, s.interval_s, _config(request))
            elif action == "verify":
                closing.verify(conn, site_id, m, caller.name, s.interval_s, _config(request))
            else:
                closing.return_month(conn, site_id, m, caller.name, comment)
    except (closing.ChecksFailed, ValueError) as exc:  # TransitionError is a ValueError
        return _back(back, error=str(exc))
    done = {"submit": "已提交 submitted", "verify": "已核证并冻结 verified and frozen",
            "return": "已退回 returned"}[action]
    return _back(back, note=done)


@router.post("/sites/{site_id}/months/{month}/submit")
def submit(request: Request, site_id: str, month: str, caller: SubmitCaller
           ) -> RedirectResponse:
    """Submit the month (site manager, admin)."""
    return _month_action(request, site_id, month, "submit", caller)


@router.post("/sites/{site_id}/months/{month}/verify")
def verify(request: Request, site_id: str, month: str, caller: VerifyCaller
           ) -> RedirectResponse:
    """Verify and freeze the month (reviewer)."""
    return _month_action(request, site_id, month, "verify", caller)


@router.post("/sites/{site_id}/months/{month}/return")
async def return_(request: Request, site_id: str, month: str, caller: ReturnCaller
                  ) -> RedirectResponse:
    """Return the month with comments (reviewer)."""
    comment = (await _form(request)).get("comment", "")
    return await run_in_threadpool(_month_action, request, site_id, month, "return", caller,
                                   comment)


@router.get("/sites/{site_id}/restatements", response_class=HTMLResponse)
def restatements_page(request: Request, site_id: str, caller: ReadCaller,
                      error: str | None = None, note: str | None = None) -> HTMLResponse:
    """A site's restatements: old vs new side by side, accept / reject."""
    with dbr.connect(_settings(request).database_url) as conn:
        site = dbr.get_site(conn, site_id)
        if site is None:
            raise StarletteHTTPException(404, f"未知站点 unknown site {site_id}")
        rows = dbr.list_restatements(conn, site_id)
    return _page(request, "review/restatements.html", caller, site=site, rows=rows,
                 may_restate=_may(caller, "restate"), error=error, note=note)


async def _decide(request: Request, restatement_id: int, accept: bool, caller: Caller
                  ) -> RedirectResponse:
    comment = (await _form(request)).get("comment", "").strip() or None
    back = f"/review/sites/{caller.site_id}/restatements"

    def run() -> None:
        with dbr.connect(_settings(request).database_url) as conn:
            closing.decide(conn, restatement_id, accept, caller.name, comment)

    try:
        await run_in_threadpool(run)
    except (ValueError, LookupError) as exc:
        return _back(back, error=str(exc))
    return _back(back, note=f"重述 #{restatement_id} " + ("已接受 accepted" if accept
                                                          else "已驳回 rejected"))


@router.post("/restatements/{restatement_id}/accept")
async def accept(request: Request, restatement_id: int, caller: RestateCaller
                 ) -> RedirectResponse:
    """Accept a restatement (reviewer): a new snapshot version, the old one kept."""
    return await _decide(request, restatement_id, True, caller)


@router.post("/restatements/{restatement_id}/reject")
async def reject(request: Request, restatement_id: int, caller: RestateCaller
                 ) -> RedirectResponse:
    """Reject a restatement (reviewer): the frozen figures stay."""
    return await _decide(request, restatement_id, False, caller)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, caller: ReadCaller, site_id: str | None = None,
               limit: int = 200) -> HTMLResponse:
    """The audit log in scope, newest first."""
    with dbr.connect(_settings(request).database_url) as conn:
        rows = dbr.read_audit(conn, caller.sites, site_id, limit=max(1, min(limit, 5000)))
    return _page(request, "review/audit.html", caller, rows=rows, site_id=site_id)


# --- wiring --------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Add the pages to ``app`` and make an unauthenticated page request (these pages and
    the web view's ``/web/`` pages) go to the login form with a ``next`` back to the page
    (API and ``/web/api/*`` requests keep their JSON 401); refusals on pages are HTML with
    their status."""
    app.include_router(router)

    @app.exception_handler(StarletteHTTPException)
    async def _pages(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if not _page_path(path):
            return await http_exception_handler(request, exc)
        if exc.status_code == 401:
            back = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/review/login?next={quote(back, safe='/')}",
                                    status_code=303)
        return _page(request, "review/error.html", None, status=exc.status_code,
                     status_code=exc.status_code, detail=exc.detail)
