"""Assemble report documents from the database and write the files.

The monthly report reads the month exactly as the API shows it
(:func:`analytics.closing.view_month`): a month frozen by a reviewer from its snapshot (with
the snapshot's hash and the reviewer's sign-off), any other month from its live figures,
marked as not verified. The yearly disclosure and the self-evaluation figures are the close's
own (:func:`analytics.closing.disclosure`, :func:`analytics.closing.evaluation`), from
verified months only. The scorecard is printed when the indicators issue's
``analytics.scorecard.scorecard_for_site`` is installed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from analytics import closing
from analytics.review import ReviewConfig
from db import review as dbr
from db.review import Conn
from reports.document import ReportDocument, SignOff, monthly_report, yearly_disclosure
from reports.excel import to_xlsx
from reports.render import to_pdf


def scorecard_items(reader_url: str, site_id: str, month: date, now: datetime,
                    method: str = "location") -> list[dict[str, Any]]:
    """The indicator scorecard of a site-month (``indicators`` of
    ``analytics.scorecard.scorecard_for_site``), or ``[]`` while that module is not
    installed (the indicators issue)."""
    try:
        module = importlib.import_module("analytics.scorecard")
        fn = module.scorecard_for_site
    except (ImportError, AttributeError):
        return []
    try:
        card = fn(reader_url, site_id, f"{month:%Y-%m}", now, method)
    except (ValueError, LookupError):  # a site or month the scorecard does not cover
        return []
    items = card.get("indicators", []) if isinstance(card, Mapping) else []
    return [dict(i) for i in items]


def _signoff(view: closing.MonthView) -> SignOff:
    st = view.state
    if not view.frozen:
        return SignOff(state=str(st.get("state", "draft")))
    return SignOff(state="verified", version=int(st["version"]), sha256=view.sha256,
                   verified_by=st.get("verified_by"), verified_at=st.get("verified_at"))


def _baseline_month_tco2(reader_url: str, site: Mapping[str, Any], month: date
                         ) -> float | None:
    from db.reports import baseline_month_tco2

    year = site.get("baseline_year")
    if year is None or int(year) >= month.year:
        return None
    return baseline_month_tco2(reader_url, str(site["site_id"]), int(year), month.month)


def monthly_document(conn: Conn, reader_url: str, site_id: str, month: date, interval_s: int,
                     config: ReviewConfig | None = None, now: datetime | None = None
                     ) -> ReportDocument:
    """The monthly report of a site-month as the API shows it (snapshot when frozen)."""
    now = now or datetime.now(UTC)
    site = dbr.get_site(conn, site_id)
    if site is None:
        raise LookupError(f"未知站点 unknown site {site_id!r}")
    view = closing.view_month(conn, site_id, month, interval_s,
                              config or ReviewConfig.from_env())
    restatements = dbr.list_restatements(conn, site_id, month)
    return monthly_report(
        view.document, site_name=str(site.get("name") or site_id),
        site_type=str(site.get("site_type") or ""), generated_at=now,
        signoff=_signoff(view), checks=view.checks,
        scorecard=scorecard_items(reader_url, site_id, month, now),
        baseline_month_tco2=_baseline_month_tco2(reader_url, site, month),
        baseline_year=site.get("baseline_year"),
        restatements=restatements)


def yearly_document(conn: Conn, site_id: str, year: int, now: datetime | None = None
                    ) -> ReportDocument:
    """The yearly disclosure with the self-evaluation figures, verified months only."""
    site = dbr.get_site(conn, site_id)
    if site is None:
        raise LookupError(f"未知站点 unknown site {site_id!r}")
    months = [{"month": m["month"], "version": m["version"], "sha256": m["sha256"],
               "verified_by": m["verified_by"], "verified_at": m["verified_at"],
               "figures": json.loads(m["canonical"])["close"]["figures"]}
              for m in dbr.verified_months(conn, site_id, year)]
    evaluation = closing.evaluation(conn, site_id, year)
    return yearly_disclosure(closing.disclosure(conn, site_id, year),
                             site_name=str(site.get("name") or site_id),
                             generated_at=now or datetime.now(UTC), months=months,
                             evaluation=evaluation)


def write_report(doc: ReportDocument, out_dir: Path, stem: str,
                 excel: bool = False) -> list[Path]:
    """Write ``<stem>.pdf`` (and ``<stem>.xlsx``) into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pdf = out_dir / f"{stem}.pdf"
    pdf.write_bytes(to_pdf(doc))
    paths = [pdf]
    if excel:
        paths.append(to_xlsx(doc, out_dir / f"{stem}.xlsx"))
    return paths


def xlsx_bytes(doc: ReportDocument) -> bytes:
    """The document as an Excel workbook, in memory."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return to_xlsx(doc, Path(tmp) / "report.xlsx").read_bytes()


__all__: Sequence[str] = ("monthly_document", "scorecard_items", "write_report",
                          "xlsx_bytes", "yearly_document")
