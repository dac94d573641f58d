"""Assemble report documents from the database and write the files.

Live figures come from :func:`analytics.close.load_and_close`; a month frozen by a reviewer
is printed from its snapshot instead (``snapshot`` argument: the stored JSON, its version,
hash and sign-off), so a signed report never changes when late data arrives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from reports.document import ReportDocument, SignOff, monthly_report, yearly_disclosure
from reports.excel import to_xlsx
from reports.render import to_pdf

# Site types whose pilot rules account net emissions (Guangdong guide, seed 003).
NET_RULE_PROVINCES = frozenset({"Guangdong", "广东"})


def live_monthly_document(database_url: str, site_id: str, month: date, interval_s: int,
                          now: datetime | None = None,
                          scorecard: Sequence[Mapping[str, Any]] = ()) -> ReportDocument:
    """The monthly report of live (not verified) figures read from the database."""
    from analytics.close import load_and_close, month_bounds
    from db.reports import baseline_month_tco2, quarantined_count, site_info

    now = now or datetime.now(UTC)
    site = site_info(database_url, site_id)
    close = dataclasses.asdict(load_and_close(database_url, site_id, month, interval_s, now))
    start, end = month_bounds(month, site["timezone"])
    return monthly_report(
        close, site_name=site["name"], site_type=site["site_type"], generated_at=now,
        signoff=SignOff(state="live"), scorecard=scorecard,
        baseline_month_tco2=baseline_month_tco2(database_url, site_id,
                                                site["baseline_year"], month.month),
        baseline_year=site["baseline_year"],
        quarantined=quarantined_count(database_url, site_id, start, end),
        net_rule=site["province"] in NET_RULE_PROVINCES)


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


def yearly_document(site: Mapping[str, Any], year: int,
                    verified: Sequence[Mapping[str, Any]],
                    self_evaluation: Sequence[Mapping[str, Any]] = (),
                    now: datetime | None = None) -> ReportDocument:
    """The yearly disclosure from verified monthly snapshots (never from live figures)."""
    return yearly_disclosure(verified, site_id=site["site_id"], site_name=site["name"],
                             year=year, generated_at=now or datetime.now(UTC),
                             self_evaluation=self_evaluation)
