"""The FastAPI application: ``create_app(settings)``; OpenAPI at ``/docs`` and
``/openapi.json``. Every route takes ``Depends(Need(action))`` (:mod:`api.auth`), the one place
that authenticates, checks the role and scopes the site. Routes are ``sync`` (psycopg, one
connection and transaction per request, the audit entry inside it). Errors carry a Chinese
message with English beside it.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from dataclasses import asdict, is_dataclass
from datetime import date
from typing import Annotated, Any

import psycopg
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from openpyxl import Workbook
from pydantic import BaseModel, Field

from analytics import closing
from analytics.review import ReviewConfig, TransitionError
from analytics.scorecard import scorecard_for_site
from api.auth import Caller, Need, TokenCache
from core.settings import Settings
from db import review as dbr

PREFIX = "/api/v1"
# one alias per action; every route takes exactly one of them (module level, so that the
# annotations resolve under `from __future__ import annotations`)
ReadCaller = Annotated[Caller, Depends(Need("read"))]
AlertsCaller = Annotated[Caller, Depends(Need("alerts"))]
SubmitCaller = Annotated[Caller, Depends(Need("submit"))]
EnterCaller = Annotated[Caller, Depends(Need("enter"))]
VerifyCaller = Annotated[Caller, Depends(Need("verify"))]
ReturnCaller = Annotated[Caller, Depends(Need("return"))]
RestateCaller = Annotated[Caller, Depends(Need("restate"))]
ScanCaller = Annotated[Caller, Depends(Need("scan"))]


class Comment(BaseModel):
    """A reviewer's comment."""

    comment: str = Field(min_length=1, max_length=4000)


class Decision(BaseModel):
    """An optional comment on a decision."""

    comment: str | None = Field(default=None, max_length=4000)


class BillIn(BaseModel):
    """A utility bill of one month and carrier."""

    month: str = Field(pattern=r"^\d{4}-\d{2}$", examples=["2026-10"])
    carrier: str = Field(examples=["grid_import"])
    quantity: float = Field(ge=0, description="billed quantity in `unit`")
    unit: str = Field(examples=["kWh"])
    amount_cny: float | None = Field(default=None, ge=0)
    reference: str | None = None


class DenominatorIn(BaseModel):
    """A monthly denominator (population, floor area, GDP, visitors, ...)."""

    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    kind: str = Field(min_length=1, max_length=64)
    value: float = Field(ge=0)
    unit: str = Field(min_length=1, max_length=32)
    source: str | None = None


def _month(text: str) -> date:
    try:
        return closing.parse_month(text)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


def _view(v: closing.MonthView) -> dict[str, Any]:
    return {"state": v.state, "frozen": v.frozen, "snapshot_sha256": v.sha256,
            "open_restatement": v.open_restatement, "checks": v.checks,
            "close": v.document}


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return dbr.normalise(asdict(value))
    return dbr.normalise(value)


def create_app(settings: Settings, config: ReviewConfig | None = None) -> FastAPI:
    """The API app for these settings (writer role for actions, reader role for reads)."""
    app = FastAPI(title="nzc-monitor API", version="1",
                  description="近零碳试点监测 / near-zero-carbon pilot monitoring: monthly "
                              "closes, reviews, restatements, audit log.")
    app.state.database_url = settings.database_url
    app.state.settings = settings
    app.state.tokens = TokenCache()
    cfg = config or ReviewConfig.from_env()
    url, interval_s = settings.database_url, settings.interval_s

    @app.exception_handler(closing.ChecksFailed)
    def _checks_failed(request: Request, exc: closing.ChecksFailed) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc),
                                                      "checks": exc.checks})

    @app.exception_handler(TransitionError)
    def _transition(request: Request, exc: TransitionError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(ValueError)
    def _bad(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(psycopg.errors.IntegrityError)
    def _integrity(request: Request, exc: psycopg.errors.IntegrityError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": f"数据不符合约束 / rejected by "
                                                                f"the database: {exc}"})

    @app.exception_handler(LookupError)
    def _lookup(request: Request, exc: LookupError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.get(f"{PREFIX}/me", tags=["users"])
    def me(caller: ReadCaller) -> dict[str, Any]:
        """Who the token belongs to, its role and scope."""
        return {"name": caller.name, "role": caller.role, "sites": caller.sites}

    @app.get(f"{PREFIX}/sites", tags=["sites"])
    def sites(caller: ReadCaller) -> list[dict[str, Any]]:
        """The sites in the caller's scope."""
        with dbr.connect(url) as conn:
            return dbr.list_sites(conn, caller.sites)

    @app.get(f"{PREFIX}/sites/{{site_id}}", tags=["sites"])
    def site(site_id: str, caller: ReadCaller) -> dict[str, Any]:
        """One site."""
        with dbr.connect(url) as conn:
            row = dbr.get_site(conn, site_id)
        if row is None:
            raise HTTPException(404, f"no site {site_id}")
        return row

    @app.get(f"{PREFIX}/sites/{{site_id}}/meters", tags=["sites"])
    def meters(site_id: str, caller: ReadCaller) -> list[dict[str, Any]]:
        """The meters of a site (boundary meters have no parent)."""
        with dbr.connect(url) as conn:
            return dbr.list_meters(conn, site_id)

    @app.get(f"{PREFIX}/closes", tags=["closes"])
    def closes(caller: ReadCaller) -> list[dict[str, Any]]:
        """The state of every month in scope (a reviewer's queue)."""
        with dbr.connect(url) as conn:
            return dbr.list_closes(conn, caller.sites)

    @app.get(f"{PREFIX}/sites/{{site_id}}/closes", tags=["closes"])
    def site_closes(site_id: str, caller: ReadCaller) -> list[dict[str, Any]]:
        """The state of each month of a site that has one."""
        with dbr.connect(url) as conn:
            return dbr.list_closes(conn, caller.sites, site_id)

    @app.get(f"{PREFIX}/sites/{{site_id}}/months/{{month}}", tags=["closes"])
    def month_view(site_id: str, month: str, caller: ReadCaller) -> dict[str, Any]:
        """A month's figures with their quality and its checks: live for an open month, the
        snapshot for a verified (frozen) one."""
        with dbr.connect(url) as conn:
            return _view(closing.view_month(conn, site_id, _month(month), interval_s, cfg))

    @app.post(f"{PREFIX}/sites/{{site_id}}/months/{{month}}/submit", tags=["closes"])
    def submit(site_id: str, month: str,
               caller: SubmitCaller) -> dict[str, Any]:
        """Submit a draft or returned month (site manager); 422 with the failed checks."""
        with dbr.connect(url) as conn:
            return closing.submit(conn, site_id, _month(month), caller.name, interval_s, cfg)

    @app.post(f"{PREFIX}/sites/{{site_id}}/months/{{month}}/return", tags=["closes"])
    def return_(site_id: str, month: str, body: Comment,
                caller: ReturnCaller) -> dict[str, Any]:
        """Return a submitted month with comments (reviewer)."""
        with dbr.connect(url) as conn:
            return closing.return_month(conn, site_id, _month(month), caller.name,
                                        body.comment)

    @app.post(f"{PREFIX}/sites/{{site_id}}/months/{{month}}/verify", tags=["closes"])
    def verify(site_id: str, month: str,
               caller: VerifyCaller) -> dict[str, Any]:
        """Verify a submitted month (reviewer): its figures are frozen as a snapshot."""
        with dbr.connect(url) as conn:
            return closing.verify(conn, site_id, _month(month), caller.name, interval_s, cfg)

    @app.get(f"{PREFIX}/sites/{{site_id}}/months/{{month}}/snapshots", tags=["closes"])
    def snapshots(site_id: str, month: str, caller: ReadCaller) -> list[dict[str, Any]]:
        """Every frozen version of a month: canonical text, SHA-256, reviewer, time."""
        with dbr.connect(url) as conn:
            return dbr.list_snapshots(conn, site_id, _month(month))

    @app.get(f"{PREFIX}/sites/{{site_id}}/monthly", tags=["exports"])
    def monthly(site_id: str, caller: ReadCaller, year: int = Query(ge=2000, le=2100)
                ) -> list[dict[str, Any]]:
        """Monthly totals of a year with their quality columns (frozen months from their
        snapshot)."""
        with dbr.connect(url) as conn:
            return closing.monthly_rows(conn, site_id, year, interval_s, cfg)

    @app.get(f"{PREFIX}/sites/{{site_id}}/monthly.csv", tags=["exports"])
    def monthly_csv(site_id: str, caller: ReadCaller, year: int = Query(ge=2000, le=2100)
                    ) -> Response:
        """The monthly totals as CSV (UTF-8 with BOM, so Excel reads the Chinese)."""
        with dbr.connect(url) as conn:
            rows = closing.monthly_rows(conn, site_id, year, interval_s, cfg)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=closing.EXPORT_COLUMNS)
        w.writeheader()
        w.writerows(rows)
        return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{site_id}-{year}-monthly.csv"'})

    @app.get(f"{PREFIX}/sites/{{site_id}}/monthly.xlsx", tags=["exports"])
    def monthly_xlsx(site_id: str, caller: ReadCaller, year: int = Query(ge=2000, le=2100)
                     ) -> Response:
        """The monthly totals as an Excel workbook (sheet ``monthly``)."""
        with dbr.connect(url) as conn:
            rows = closing.monthly_rows(conn, site_id, year, interval_s, cfg)
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "monthly"
        ws.append(list(closing.EXPORT_COLUMNS))
        for r in rows:
            ws.append([r[c] for c in closing.EXPORT_COLUMNS])
        buf = io.BytesIO()
        wb.save(buf)
        return Response(buf.getvalue(), media_type="application/vnd.openxmlformats-"
                        "officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{site_id}-{year}-monthly.xlsx"'})

    @app.get(f"{PREFIX}/sites/{{site_id}}/denominators", tags=["inputs"])
    def denominators(site_id: str, caller: ReadCaller) -> list[dict[str, Any]]:
        """A site's monthly denominators."""
        with dbr.connect(url) as conn:
            return dbr.list_denominators(conn, site_id)

    @app.put(f"{PREFIX}/sites/{{site_id}}/denominators", tags=["inputs"])
    def set_denominator(site_id: str, body: DenominatorIn,
                        caller: EnterCaller) -> dict[str, Any]:
        """Enter or replace a monthly denominator (site manager)."""
        m = _month(body.month)
        with dbr.connect(url) as conn:
            dbr.set_denominator(conn, site_id, body.kind, m, body.value, body.unit,
                                body.source or f"api:{caller.name}")
            dbr.append_audit(conn, caller.name, "denominator.set", site_id, m,
                             body.model_dump())
        return {"ok": True}

    @app.get(f"{PREFIX}/sites/{{site_id}}/bills", tags=["inputs"])
    def bills(site_id: str, caller: ReadCaller, month: str | None = None) -> list[dict[str, Any]]:
        """Every bill of a site with its history (``current`` marks the one that counts)."""
        with dbr.connect(url) as conn:
            return dbr.list_bills(conn, site_id, _month(month) if month else None)

    @app.post(f"{PREFIX}/sites/{{site_id}}/bills", tags=["inputs"], status_code=201)
    def add_bill(site_id: str, body: BillIn,
                 caller: EnterCaller) -> dict[str, Any]:
        """Enter a bill (a correction is a new entry; the old one is kept)."""
        with dbr.connect(url) as conn:
            bill_id = closing.enter_bill(conn, site_id, _month(body.month), body.carrier,
                                         body.quantity, body.unit, caller.name,
                                         body.amount_cny, body.reference)
        return {"bill_id": bill_id}

    @app.get(f"{PREFIX}/sites/{{site_id}}/restatements", tags=["restatements"])
    def restatements(site_id: str, caller: ReadCaller) -> list[dict[str, Any]]:
        """Restatements of a site: old vs new figures, why, and the decision."""
        with dbr.connect(url) as conn:
            return dbr.list_restatements(conn, site_id)

    @app.post(f"{PREFIX}/sites/{{site_id}}/restatements/scan", tags=["restatements"])
    def scan(site_id: str, caller: ScanCaller
             ) -> list[dict[str, Any]]:
        """Compare the site's frozen months with their live figures; open restatements."""
        with dbr.connect(url) as conn:
            return closing.scan_restatements(conn, site_id, interval_s, cfg, caller.name)

    @app.get(f"{PREFIX}/restatements/{{restatement_id}}", tags=["restatements"])
    def restatement(restatement_id: int, caller: ReadCaller) -> dict[str, Any]:
        """One restatement."""
        with dbr.connect(url) as conn:
            r = dbr.get_restatement(conn, restatement_id)
        if r is None:
            raise HTTPException(404, f"no restatement {restatement_id}")
        r.pop("new_canonical", None)
        return r

    def _decide(restatement_id: int, accept: bool, caller: Caller,
                body: Decision | None) -> dict[str, Any]:
        with dbr.connect(url) as conn:
            r = closing.decide(conn, restatement_id, accept, caller.name,
                               body.comment if body else None)
        r.pop("new_canonical", None)
        return r

    @app.post(f"{PREFIX}/restatements/{{restatement_id}}/accept", tags=["restatements"])
    def accept(restatement_id: int, caller: RestateCaller,
               body: Annotated[Decision | None, Body()] = None) -> dict[str, Any]:
        """Accept a restatement (reviewer): a new snapshot version; the old one is kept."""
        return _decide(restatement_id, True, caller, body)

    @app.post(f"{PREFIX}/restatements/{{restatement_id}}/reject", tags=["restatements"])
    def reject(restatement_id: int, caller: RestateCaller,
               body: Annotated[Decision | None, Body()] = None) -> dict[str, Any]:
        """Reject a restatement (reviewer): the frozen figures stay."""
        return _decide(restatement_id, False, caller, body)

    @app.get(f"{PREFIX}/audit", tags=["audit"])
    def audit(caller: ReadCaller, limit: int = Query(default=200, ge=1, le=5000)
              ) -> list[dict[str, Any]]:
        """The audit log, newest first (reviewers and admins: all; others: their sites)."""
        with dbr.connect(url) as conn:
            return dbr.read_audit(conn, caller.sites, limit=limit)

    @app.get(f"{PREFIX}/sites/{{site_id}}/audit", tags=["audit"])
    def site_audit(site_id: str, caller: ReadCaller,
                   limit: int = Query(default=200, ge=1, le=5000)) -> list[dict[str, Any]]:
        """The audit entries of one site, newest first."""
        with dbr.connect(url) as conn:
            return dbr.read_audit(conn, caller.sites, site_id, limit=limit)

    @app.get(f"{PREFIX}/sites/{{site_id}}/disclosure/{{year}}", tags=["disclosure"])
    def disclosure(site_id: str, year: int, caller: ReadCaller) -> dict[str, Any]:
        """The annual carbon disclosure, from verified months only."""
        with dbr.connect(url) as conn:
            return closing.disclosure(conn, site_id, year)

    @app.get(f"{PREFIX}/sites/{{site_id}}/self-evaluation", tags=["disclosure"])
    def evaluation(site_id: str, caller: ReadCaller, year: int = Query(ge=2000, le=2100)
                   ) -> dict[str, Any]:
        """Self-evaluation figures: baseline year vs ``year``, verified months only."""
        with dbr.connect(url) as conn:
            return closing.evaluation(conn, site_id, year)

    @app.get(f"{PREFIX}/sites/{{site_id}}/scorecard", tags=["indicators"])
    def scorecard(site_id: str, caller: ReadCaller,
                  period: str = Query("ytd", pattern=r"^(mtd|ytd|r12|\d{4}-\d{2})$"),
                  method: str = Query("location", pattern="^(location|market)$")) -> Any:
        """The indicator scorecard (issue 11) for ``period`` (``mtd``, ``ytd``, ``r12`` or a
        local month ``YYYY-MM``): every applicable indicator with value, target, status,
        completeness and its trace (:func:`analytics.scorecard.scorecard_for_site`)."""
        try:
            card = scorecard_for_site(settings.database_reader_url, site_id, period,
                                      method=method)
        except ValueError as exc:
            raise HTTPException(404, str(exc)) from exc
        return _jsonable(card)

    @app.get(f"{PREFIX}/sites/{{site_id}}/alerts", tags=["alerts"])
    def alerts(site_id: str, caller: AlertsCaller
               ) -> dict[str, Any]:
        """The site's data-quality alerts (once the alerts issue's table exists)."""
        with dbr.connect(url) as conn:
            rows = dbr.list_open_alerts(conn, site_id)
        if rows is None:
            return {"available": False, "alerts": [],
                    "note": "告警表尚未建立 / no alerts table yet"}
        return {"available": True, "alerts": json.loads(json.dumps(rows, default=str))}

    _include_web(app)
    app.state.review_config = cfg
    _include_reports(app)
    return app


def _include_reports(app: FastAPI) -> None:
    """The reports (PDF, Excel) and the reviewer's pages (issue 15), when present."""
    try:
        reports = importlib.import_module("api.reports")
        pages = importlib.import_module("api.web.review")
    except ImportError:
        return
    app.include_router(reports.router)
    pages.install(app)


def _include_web(app: FastAPI) -> None:
    """The dashboards helper's web view (``api.web``: an APIRouter ``router``, optional
    ``mount(app)`` for its static files), when present."""
    try:
        web = importlib.import_module("api.web")
    except ImportError:
        return
    router = getattr(web, "router", None)
    if router is not None:
        app.include_router(router)
    mount = getattr(web, "mount", None)
    if callable(mount):
        mount(app)
