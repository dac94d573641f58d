"""Read queries shared by the CLI summary, dashboards and alerts (one owner for each query).

Site totals sum only *boundary* meters (``meters.parent_id IS NULL``): a sub-meter's energy is
already inside its parent's, so adding it again would double count. Sub-meter rows are there
for attribution (where the energy goes) and reconciliation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

SITE_SUMMARY_SQL = """
WITH bounds AS (
    SELECT s.site_id, s.name, s.timezone,
           (date_trunc('day', %(now)s::timestamptz AT TIME ZONE s.timezone)
                AT TIME ZONE s.timezone) AS day_start
    FROM sites s
),
energy AS (
    SELECT e.site_id, e.carrier, e.quantity_unit, sum(e.quantity) AS quantity,
           sum(e.energy_tce) AS energy_tce, sum(e.covered_s) AS covered_s,
           count(*) AS intervals, max(e.interval_start + make_interval(secs => e.interval_s))
               AS newest_end
    FROM energy_intervals e JOIN bounds b USING (site_id)
    JOIN meters m ON m.meter_id = e.meter_id AND m.parent_id IS NULL
    WHERE e.interval_start >= b.day_start AND e.interval_start < %(now)s
    GROUP BY e.site_id, e.carrier, e.quantity_unit
),
em AS (
    SELECT x.site_id,
           sum(x.emissions_kgco2) FILTER (WHERE x.method = 'location') AS location_kgco2,
           sum(x.emissions_kgco2) FILTER (WHERE x.method = 'market') AS market_kgco2,
           sum(x.emissions_kgco2) FILTER (WHERE x.method = 'location'
               AND x.interval_start >= %(now)s::timestamptz - interval '1 hour')
               AS last_hour_location_kgco2
    FROM emission_intervals x JOIN bounds b USING (site_id)
    JOIN meters m ON m.meter_id = x.meter_id AND m.parent_id IS NULL
    WHERE x.interval_start >= b.day_start AND x.interval_start < %(now)s
    GROUP BY x.site_id
)
SELECT b.site_id, b.name, b.timezone, b.day_start,
       coalesce(em.location_kgco2, 0) AS location_kgco2,
       coalesce(em.market_kgco2, 0) AS market_kgco2,
       coalesce(em.last_hour_location_kgco2, 0) AS last_hour_location_kgco2,
       coalesce(json_agg(json_build_object(
           'carrier', energy.carrier, 'unit', energy.quantity_unit,
           'quantity', energy.quantity, 'tce', energy.energy_tce, 'intervals', energy.intervals)
           ORDER BY energy.carrier) FILTER (WHERE energy.carrier IS NOT NULL), '[]')
           AS carriers,
       max(energy.newest_end) AS newest_end
FROM bounds b
LEFT JOIN em USING (site_id)
LEFT JOIN energy USING (site_id)
GROUP BY b.site_id, b.name, b.timezone, b.day_start, em.location_kgco2, em.market_kgco2,
         em.last_hour_location_kgco2
ORDER BY b.site_id
"""


def site_summaries(database_url: str, now: datetime) -> list[dict[str, Any]]:
    """Per site: today's (site-local day up to ``now``) energy per carrier [canonical unit and
    tce], location- and market-based emissions [kgCO2] and the last hour's emissions, all from
    boundary meters."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(SITE_SUMMARY_SQL, {"now": now}).fetchall())


def pipeline_counts(database_url: str) -> dict[str, int]:
    """Row counts of the pipeline's tables (readings, intervals, emissions, dead letters)."""
    with psycopg.connect(database_url) as conn:
        out = {}
        for table in ("readings", "energy_intervals", "emission_intervals", "dead_letters"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[table] = int(row[0]) if row else 0
        return out


def dead_letter_reasons(database_url: str, limit: int = 10) -> list[dict[str, Any]]:
    """The most frequent rejection codes with a sample reason."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(
            "SELECT stage, code, count(*) AS n, min(reason) AS sample FROM dead_letters"
            " GROUP BY stage, code ORDER BY n DESC LIMIT %s", (limit,)).fetchall())
