"""Read queries for the reports (:mod:`reports`): the site's names, quarantined readings of a
site-month, and the baseline year's monthly figure from the monthly rollups."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from db.queries import monthly_totals


def site_info(database_url: str, site_id: str) -> dict[str, Any]:
    """``site_id``, ``name``, ``site_type``, ``province``, ``city``, ``baseline_year``,
    ``timezone`` of a site; raises ``LookupError`` for an unknown site."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT site_id, name, site_type, province, city, baseline_year, timezone"
            " FROM sites WHERE site_id = %s", (site_id,)).fetchone()
    if row is None:
        raise LookupError(f"未知站点 unknown site {site_id!r}")
    return dict(row)


def quarantined_count(database_url: str, site_id: str, start: datetime, end: datetime) -> int:
    """Dead letters received in [start, end) for the site's meters (quarantined readings)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM dead_letters d JOIN meters m ON m.meter_id = d.meter_id"
            " WHERE m.site_id = %s AND d.received_at >= %s AND d.received_at < %s",
            (site_id, start, end)).fetchone()
    return int(row[0]) if row else 0


def baseline_month_tco2(database_url: str, site_id: str, baseline_year: int,
                        month: int) -> float | None:
    """Location-based emissions [tCO2] of the same calendar month in the baseline year, from
    the monthly rollups; ``None`` when nothing was metered then (most pilots' baseline
    predates metering)."""
    start = datetime.fromisoformat(f"{baseline_year}-{month:02d}-01T00:00:00+08:00")
    nxt = date(baseline_year + month // 12, month % 12 + 1, 1)
    end = datetime.fromisoformat(f"{nxt.isoformat()}T00:00:00+08:00")
    rows = [r for r in monthly_totals(database_url, start, end) if r["site_id"] == site_id]
    return sum(float(r["location_kgco2"]) for r in rows) / 1000.0 if rows else None
