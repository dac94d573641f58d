"""The reports over the API (issue 15), each behind the same :class:`api.auth.Need` scoping
dependency as every other route:

* ``GET /api/v1/sites/{site_id}/months/{month}/report.pdf`` and ``report.xlsx``: the monthly
  report (from the snapshot when the month is frozen, else live and marked not verified);
* ``GET /api/v1/sites/{site_id}/years/{year}/disclosure.pdf`` and ``disclosure.xlsx``: the
  yearly carbon disclosure with the self-evaluation figures, from verified months only.

The app's settings are read from ``app.state.settings`` (set by :func:`api.app.create_app`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from analytics import closing
from analytics.review import ReviewConfig
from api.auth import Caller, Need
from core.settings import Settings
from db import review as dbr
from reports.build import monthly_document, xlsx_bytes, yearly_document
from reports.document import ReportDocument
from reports.render import to_pdf

PREFIX = "/api/v1"
ReadCaller = Annotated[Caller, Depends(Need("read"))]
PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
router = APIRouter(tags=["reports"])


def _settings(request: Request) -> Settings:
    s = getattr(request.app.state, "settings", None)
    return s if isinstance(s, Settings) else Settings.from_env()


def _config(request: Request) -> ReviewConfig:
    c = getattr(request.app.state, "review_config", None)
    return c if isinstance(c, ReviewConfig) else ReviewConfig.from_env()


def _file(doc: ReportDocument, kind: str, name: str) -> Response:
    body, media = (to_pdf(doc), PDF) if kind == "pdf" else (xlsx_bytes(doc), XLSX)
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'})


def _month_doc(request: Request, site_id: str, month: str) -> ReportDocument:
    s = _settings(request)
    try:
        m = closing.parse_month(month)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    with dbr.connect(s.database_url) as conn:
        return monthly_document(conn, s.database_reader_url, site_id, m, s.interval_s,
                                _config(request))


def _year_doc(request: Request, site_id: str, year: int) -> ReportDocument:
    if not 2000 <= year <= 2100:
        raise HTTPException(400, f"year {year}: expected 2000..2100")
    with dbr.connect(_settings(request).database_url) as conn:
        return yearly_document(conn, site_id, year)


@router.get(f"{PREFIX}/sites/{{site_id}}/months/{{month}}/report.pdf",
            response_class=Response, responses={200: {"content": {PDF: {}}}})
def month_report_pdf(request: Request, site_id: str, month: str,
                     caller: ReadCaller) -> Response:
    """The monthly report as PDF (Chinese with English labels, fonts embedded)."""
    return _file(_month_doc(request, site_id, month), "pdf", f"{site_id}-{month}")


@router.get(f"{PREFIX}/sites/{{site_id}}/months/{{month}}/report.xlsx",
            response_class=Response, responses={200: {"content": {XLSX: {}}}})
def month_report_xlsx(request: Request, site_id: str, month: str,
                      caller: ReadCaller) -> Response:
    """The monthly report's tables as an Excel workbook."""
    return _file(_month_doc(request, site_id, month), "xlsx", f"{site_id}-{month}")


@router.get(f"{PREFIX}/sites/{{site_id}}/years/{{year}}/disclosure.pdf",
            response_class=Response, responses={200: {"content": {PDF: {}}}})
def disclosure_pdf(request: Request, site_id: str, year: int,
                   caller: ReadCaller) -> Response:
    """The yearly disclosure and self-evaluation figures as PDF (verified months only)."""
    return _file(_year_doc(request, site_id, year), "pdf", f"{site_id}-{year}-disclosure")


@router.get(f"{PREFIX}/sites/{{site_id}}/years/{{year}}/disclosure.xlsx",
            response_class=Response, responses={200: {"content": {XLSX: {}}}})
def disclosure_xlsx(request: Request, site_id: str, year: int,
                    caller: ReadCaller) -> Response:
    """The yearly disclosure and self-evaluation figures as Excel (verified months only)."""
    return _file(_year_doc(request, site_id, year), "xlsx", f"{site_id}-{year}-disclosure")
