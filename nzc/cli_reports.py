"""``nzc report monthly|yearly``: write a site's reports (PDF, optionally Excel)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from core.settings import Settings


def add_parsers(sub: Any) -> None:
    """Register ``nzc report``."""
    rep = sub.add_parser("report", help="write a site's monthly report or yearly disclosure")
    rep.add_argument("kind", choices=["monthly", "yearly"])
    rep.add_argument("--site", required=True)
    rep.add_argument("--month", help="YYYY-MM (local month), for monthly")
    rep.add_argument("--year", type=int, help="for yearly")
    rep.add_argument("--out", type=Path, default=Path("reports-out"),
                     help="output folder (default ./reports-out)")
    rep.add_argument("--excel", action="store_true", help="also write an .xlsx")


def dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    """Run ``nzc report``; ``None`` when the command is not ours."""
    if args.cmd != "report":
        return None
    from db.review import connect
    from reports.build import monthly_document, write_report, yearly_document

    with connect(settings.database_url) as conn:
        if args.kind == "monthly":
            if not args.month:
                print("nzc report monthly needs --month YYYY-MM")
                return 2
            month = date.fromisoformat(f"{args.month}-01")
            doc = monthly_document(conn, settings.database_reader_url, args.site, month,
                                   settings.interval_s)
            stem = f"{args.site}-{args.month}"
        else:
            if not args.year:
                print("nzc report yearly needs --year YYYY")
                return 2
            doc = yearly_document(conn, args.site, args.year)
            stem = f"{args.site}-{args.year}-disclosure"
    paths = write_report(doc, args.out, stem, excel=args.excel)
    for p in paths:
        print(f"已生成 written: {p}")
    return 0
