"""Read queries of the built-in web view (``api/web``), over the views of migration 012 and
the functions of :mod:`db.queries`: the zone overview (one row per site) and a site page
(24 h by carrier, meter tree with the unmetered remainder, meters' newest readings, offline
meters and recent rejections). All run as the read-only role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from db import queries


def zone_overview(database_url: str, now: datetime) -> list[dict[str, Any]]:
    """Per site: ``site_id``, ``name``, ``site_type``, ``city``; today's (local day)
    ``location_kgco2`` / ``market_kgco2`` [kgCO2]; ``typical_kgco2`` [kgCO2] = the typical
    profile (median of the 4 previous same weekdays, :func:`db.queries.today_vs_typical`)
    summed over today's hours that have begun, ``vs_typical`` = today / typical;
    ``mtd_kgco2``, ``target_to_date_kgco2`` [kgCO2], ``mtd_vs_target`` (location-based,
    :func:`db.queries.month_to_date`); ``completeness`` [0-1] = measured seconds of the
    boundary electric meters over the last 24 h (:func:`db.queries.rolling_windows`);
    ``newest_end`` = end of the newest interval of today."""
    summaries = queries.site_summaries(database_url, now)
    typical: dict[str, float] = {}
    for r in queries.today_vs_typical(database_url, now):
        if r["hour_start"] is not None and r["hour_start"] <= now and \
                r["typical_location_kgco2"] is not None:
            typical[r["site_id"]] = typical.get(r["site_id"], 0.0) + \
                float(r["typical_location_kgco2"])
    mtd = {r["site_id"]: r for r in queries.month_to_date(database_url, now)}
    coverage = {r["site_id"]: r["electricity_coverage"]
                for r in queries.rolling_windows(database_url, now) if r["window_s"] == 86400}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        info = {r["site_id"]: r for r in conn.execute(
            "SELECT site_id, site_type, city FROM sites").fetchall()}
    out = []
    for s in summaries:
        sid = s["site_id"]
        today = float(s["location_kgco2"])
        typ = typical.get(sid)
        m = mtd.get(sid, {})
        out.append({
            "site_id": sid, "name": s["name"], "site_type": info[sid]["site_type"],
            "city": info[sid]["city"], "location_kgco2": today,
            "market_kgco2": float(s["market_kgco2"]), "typical_kgco2": typ,
            "vs_typical": today / typ if typ else None,
            "mtd_kgco2": m.get("mtd_kgco2"), "target_to_date_kgco2": m.get("target_to_date_kgco2"),
            "mtd_vs_target": m.get("mtd_vs_target"),
            "completeness": None if coverage.get(sid) is None else float(coverage[sid]),
            "newest_end": s["newest_end"],
        })
    return out


CARRIER_24H_SQL = """
SELECT bucket_start, carrier, sum(emissions_kgco2) AS kgco2
FROM carrier_emissions_hourly
WHERE site_id = %(site)s AND method = %(method)s
  AND bucket_start >= %(start)s AND bucket_start < %(end)s
GROUP BY bucket_start, carrier
ORDER BY bucket_start, carrier
"""

METER_TREE_SQL = """
SELECT t.meter_id, t.parent_id, t.depth, t.path, t.carrier, t.group_name,
       t.canonical_unit AS unit, e.quantity, s.children_quantity, s.unmetered_quantity,
       st.offline, st.last_reading_at, st.repair_due, lr.value AS last_value
FROM dash_meter_tree t
LEFT JOIN (SELECT meter_id, sum(quantity) AS quantity FROM energy_hourly
           WHERE site_id = %(site)s AND bucket_start >= %(start)s GROUP BY meter_id) e
       ON e.meter_id = t.meter_id
LEFT JOIN (SELECT parent_id, sum(children_quantity) AS children_quantity,
                  sum(unmetered_quantity) AS unmetered_quantity
           FROM dash_submeter_hourly
           WHERE site_id = %(site)s AND bucket_start >= %(start)s GROUP BY parent_id) s
       ON s.parent_id = t.meter_id
LEFT JOIN dash_meter_status st ON st.meter_id = t.meter_id
LEFT JOIN LATERAL (SELECT r.value FROM readings r WHERE r.meter_id = t.meter_id
                   ORDER BY r.ts DESC LIMIT 1) lr ON true
WHERE t.site_id = %(site)s
ORDER BY t.path
"""

ACTIVE_ALERTS_SQL = """
SELECT kind, subject, severity, state, since, deadline, value, threshold
FROM dash_active_alerts WHERE site_id = %(site)s
ORDER BY severity, since
"""

REJECTIONS_SQL = """
SELECT d.code, count(*) AS n, max(d.received_at) AS newest, min(d.reason) AS sample
FROM dead_letters d JOIN meters m ON m.meter_id = d.meter_id
WHERE m.site_id = %(site)s AND d.received_at >= %(start)s
GROUP BY d.code ORDER BY n DESC
"""


def site_page(database_url: str, site_id: str, now: datetime,
              method: str = "location") -> dict[str, Any] | None:
    """One site's live page: ``site`` (the sites row), ``hours`` (the 24 UTC hour starts
    ending with the current one), ``carriers`` {carrier: [kgCO2 per hour or None]} from the
    hourly rollups, ``meters`` (the tree, depth-first, with each meter's energy over the last
    24 h [unit], its sub-meters' sum and the unmetered remainder, its status and newest
    reading [register, canonical unit]), ``rejections`` (dead letters of its meters in the
    last 24 h by code), ``alerts`` (pending and firing alerts of the alert rules, migration
    011, when installed). None for an unknown site."""
    if method not in ("location", "market"):
        raise ValueError(f"method={method!r}: expected 'location' or 'market'")
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=24)
    params = {"site": site_id, "method": method, "start": start, "end": end}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        site = conn.execute("SELECT site_id, name, site_type, province, city, timezone"
                            " FROM sites WHERE site_id = %(site)s", params).fetchone()
        if site is None:
            return None
        rows = conn.execute(CARRIER_24H_SQL, params).fetchall()
        meters = conn.execute(METER_TREE_SQL, params).fetchall()
        rejections = conn.execute(REJECTIONS_SQL, params).fetchall()
        alerts = conn.execute(ACTIVE_ALERTS_SQL, params).fetchall()
    hours = [start + timedelta(hours=h) for h in range(24)]
    index = {h: i for i, h in enumerate(hours)}
    carriers: dict[str, list[float | None]] = {}
    for r in rows:
        series = carriers.setdefault(r["carrier"], [None] * 24)
        series[index[r["bucket_start"]]] = float(r["kgco2"])
    return {"site": site, "hours": hours, "carriers": carriers, "meters": meters,
            "rejections": rejections, "alerts": alerts}
