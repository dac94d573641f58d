"""Read queries shared by the CLI summary, dashboards, alerts and the API (one owner for each
query): today's site summary, the rolling 15 min / 1 h / 24 h windows, today against the
typical profile of the weekday, month-to-date against the target trajectory, monthly totals,
and pipeline counts. They run unchanged on TimescaleDB and on plain PostgreSQL (migrations
004-006 give both the same rollup relations).

Site totals sum only *boundary* meters (``meters.parent_id IS NULL``): a sub-meter's energy is
already inside its parent's, so adding it again would double count. Sub-meter rows are there
for attribution (where the energy goes) and reconciliation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from carbon.units import ELECTRIC_CARRIERS

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
      -- a local day began less than 25 h ago (DST included): lets the time index serve
      AND e.interval_start >= %(now)s::timestamptz - interval '25 hours'
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
      AND x.interval_start >= %(now)s::timestamptz - interval '25 hours'
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


def newest_reading_time(database_url: str) -> datetime | None:
    """The time of the newest stored reading (UTC), or None when there is none."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT max(ts) FROM readings").fetchone()
    return row[0] if row else None


def dead_letter_reasons(database_url: str, limit: int = 10) -> list[dict[str, Any]]:
    """The most frequent rejection codes with a sample reason."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(
            "SELECT stage, code, count(*) AS n, min(reason) AS sample FROM dead_letters"
            " GROUP BY stage, code ORDER BY n DESC LIMIT %s", (limit,)).fetchall())


# --- Rolling windows, typical profile, month-to-date, monthly totals ----------------------
#
# One query per view the users look at; dashboards, alerts and the API call these functions
# (or run the SQL constants with the parameters named above each). They read the same
# relation names on both storage paths: raw intervals for the newest hours (exact,
# corrections visible at once) and the rollup views of migrations 004-006 (TimescaleDB
# continuous aggregates, or tables that triggers keep on plain PostgreSQL) for longer periods.
# Local days, weeks and months are those of ROLLUP_TIMEZONE, the time zone of the daily and
# monthly rollups.

#: Time zone of the local days and months in the rollups and in these queries (all pilot zones
#: are in China: UTC+8, no daylight saving time).
ROLLUP_TIMEZONE = "Asia/Shanghai"
#: The rolling windows of :func:`rolling_windows` [s]: 15 min, 1 h, 24 h.
ROLLING_WINDOWS_S = (900, 3600, 86400)
_ELECTRIC = sorted(c.value for c in ELECTRIC_CARRIERS)

# Parameters: window_end = now floored to the interval length (UTC aligned), span_s = the
# longest window [s], windows_s [s], electric = the electric carriers.
ROLLING_WINDOWS_SQL = """
WITH w AS (
    SELECT ws AS window_s,
           %(window_end)s::timestamptz - make_interval(secs => ws) AS window_start,
           %(window_end)s::timestamptz AS window_end
    FROM unnest(%(windows_s)s::int[]) AS ws
),
boundary AS (SELECT meter_id, carrier FROM meters WHERE parent_id IS NULL),
em AS (
    SELECT w.window_s, x.site_id,
           sum(x.emissions_kgco2) FILTER (WHERE x.method = 'location') AS location_kgco2,
           sum(x.emissions_kgco2) FILTER (WHERE x.method = 'market') AS market_kgco2
    FROM emission_intervals x
    JOIN boundary b ON b.meter_id = x.meter_id
    JOIN w ON x.interval_start >= w.window_start AND x.interval_start < w.window_end
    WHERE x.interval_start >= %(window_end)s::timestamptz - make_interval(secs => %(span_s)s)
      AND x.interval_start < %(window_end)s::timestamptz
    GROUP BY w.window_s, x.site_id
),
el AS (
    SELECT w.window_s, e.site_id,
           sum(CASE WHEN e.carrier = 'grid_export' THEN -e.quantity ELSE e.quantity END)
               AS electricity_kwh,
           sum(e.quantity) FILTER (WHERE e.carrier = 'grid_import') AS grid_import_kwh,
           sum(e.covered_s) AS covered_s
    FROM energy_intervals e
    JOIN boundary b ON b.meter_id = e.meter_id
    JOIN w ON e.interval_start >= w.window_start AND e.interval_start < w.window_end
    WHERE e.carrier = ANY(%(electric)s::text[])
      AND e.interval_start >= %(window_end)s::timestamptz - make_interval(secs => %(span_s)s)
      AND e.interval_start < %(window_end)s::timestamptz
    GROUP BY w.window_s, e.site_id
),
meters_el AS (
    SELECT m.site_id, count(*) AS n FROM meters m
    WHERE m.parent_id IS NULL AND m.carrier = ANY(%(electric)s::text[]) GROUP BY m.site_id
)
SELECT s.site_id, w.window_s, w.window_start, w.window_end,
       coalesce(em.location_kgco2, 0) AS location_kgco2,
       coalesce(em.market_kgco2, 0) AS market_kgco2,
       coalesce(el.electricity_kwh, 0) AS electricity_kwh,
       coalesce(el.electricity_kwh, 0) * 3600.0 / w.window_s AS power_kw,
       coalesce(el.grid_import_kwh, 0) * 3600.0 / w.window_s AS grid_import_kw,
       coalesce(el.covered_s, 0) / nullif(me.n * w.window_s, 0) AS electricity_coverage
FROM sites s CROSS JOIN w
LEFT JOIN em ON em.site_id = s.site_id AND em.window_s = w.window_s
LEFT JOIN el ON el.site_id = s.site_id AND el.window_s = w.window_s
LEFT JOIN meters_el me ON me.site_id = s.site_id
ORDER BY s.site_id, w.window_s
"""


def rolling_windows(
    database_url: str,
    now: datetime,
    interval_s: int = 900,
    windows_s: tuple[int, ...] = ROLLING_WINDOWS_S,
) -> list[dict[str, Any]]:
    """Per site and window: emissions and electric power of the last 15 min / 1 h / 24 h.

    A window ends at the start of the interval that holds ``now`` (``interval_s`` [s], UTC
    aligned: the interval still being filled is left out) and spans ``window_s`` [s] before
    it; it holds the raw intervals whose start lies inside it, of boundary meters only.
    Columns: ``site_id``, ``window_s`` [s], ``window_start``, ``window_end``,
    ``location_kgco2`` and ``market_kgco2`` [kgCO2], ``electricity_kwh`` [kWh] = the site's
    electricity use (boundary electric meters, grid export counted negative: import + on-site
    generation - export), ``power_kw`` [kW] = ``electricity_kwh`` / window hours (average
    load), ``grid_import_kw`` [kW] (average grid draw), ``electricity_coverage`` [0-1] =
    measured seconds / (boundary electric meters x window) (None without such meters), so
    that a gap never reads as zero load.
    """
    if interval_s <= 0 or any(w <= 0 for w in windows_s):
        raise ValueError(
            f"interval_s={interval_s}, windows_s={windows_s}: positive seconds required"
        )
    if now.tzinfo is None:
        raise ValueError(f"now={now!r}: a timezone-aware datetime is required")
    epoch = datetime.fromtimestamp(0, UTC)
    step = timedelta(seconds=interval_s)
    window_end = epoch + (now - epoch) // step * step
    params = {"window_end": window_end, "span_s": max(windows_s),
              "windows_s": list(windows_s), "electric": _ELECTRIC}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(ROLLING_WINDOWS_SQL, params).fetchall())


# Parameters: hours = the (weeks + 1) x 24 hour starts [UTC instants]: today's local hours 0-23,
# then the same hours 1, 2, ... weeks before (in that order); lo / hi = the first hour start /
# the last hour's end; now; electric = the electric carriers.
TODAY_VS_TYPICAL_SQL = """
WITH hours AS (
    SELECT (i - 1) / 24 AS k, ((i - 1) %% 24)::int AS hour, hour_start
    FROM unnest(%(hours)s::timestamptz[]) WITH ORDINALITY AS u (hour_start, i)
),
em AS (
    SELECT r.site_id, r.bucket_start,
           sum(r.emissions_kgco2) FILTER (WHERE r.method = 'location') AS location_kgco2,
           sum(r.emissions_kgco2) FILTER (WHERE r.method = 'market') AS market_kgco2
    FROM site_emissions_hourly r
    WHERE r.bucket_start = ANY(%(hours)s::timestamptz[])
      AND r.bucket_start >= %(lo)s AND r.bucket_start < %(hi)s
    GROUP BY r.site_id, r.bucket_start
),
el AS (
    SELECT r.site_id, r.bucket_start,
           sum(CASE WHEN r.carrier = 'grid_export' THEN -r.quantity ELSE r.quantity END)
               AS electricity_kwh
    FROM site_energy_hourly r
    WHERE r.carrier = ANY(%(electric)s::text[])
      AND r.bucket_start = ANY(%(hours)s::timestamptz[])
      AND r.bucket_start >= %(lo)s AND r.bucket_start < %(hi)s
    GROUP BY r.site_id, r.bucket_start
),
grid AS (
    SELECT s.site_id, h.k, h.hour, h.hour_start,
           em.location_kgco2, em.market_kgco2, el.electricity_kwh,
           (em.site_id IS NOT NULL OR el.site_id IS NOT NULL) AS has_data
    FROM sites s CROSS JOIN hours h
    LEFT JOIN em ON em.site_id = s.site_id AND em.bucket_start = h.hour_start
    LEFT JOIN el ON el.site_id = s.site_id AND el.bucket_start = h.hour_start
)
SELECT site_id, hour,
       max(hour_start) FILTER (WHERE k = 0) AS hour_start,
       max(location_kgco2) FILTER (WHERE k = 0 AND hour_start < %(now)s) AS today_location_kgco2,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(location_kgco2, 0))
           FILTER (WHERE k > 0 AND has_data) AS typical_location_kgco2,
       max(market_kgco2) FILTER (WHERE k = 0 AND hour_start < %(now)s) AS today_market_kgco2,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(market_kgco2, 0))
           FILTER (WHERE k > 0 AND has_data) AS typical_market_kgco2,
       max(electricity_kwh) FILTER (WHERE k = 0 AND hour_start < %(now)s)
           AS today_electricity_kwh,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(electricity_kwh, 0))
           FILTER (WHERE k > 0 AND has_data) AS typical_electricity_kwh,
       count(*) FILTER (WHERE k > 0 AND has_data) AS typical_days
FROM grid
GROUP BY site_id, hour
ORDER BY site_id, hour
"""


def today_vs_typical(database_url: str, now: datetime, weeks: int = 4) -> list[dict[str, Any]]:
    """Per site and local hour of today (0-23): today's emissions and electricity use against
    the typical profile of the same weekday.

    Today is the local (``ROLLUP_TIMEZONE``) day holding ``now``. Typical = the median over
    the previous ``weeks`` same local weekdays that have data in that hour (a holiday among
    them moves a median less than a mean); ``typical_days`` says how many there were.
    Columns: ``site_id``, ``hour`` (local hour), ``hour_start`` (today's, UTC instant),
    ``today_location_kgco2``, ``typical_location_kgco2``, ``today_market_kgco2``,
    ``typical_market_kgco2`` [kgCO2], ``today_electricity_kwh``, ``typical_electricity_kwh``
    [kWh, import + on-site generation - export], ``typical_days``. Today's values are None for
    hours that have not begun or have no data; the hour holding ``now`` is partial. Boundary
    meters only; from the hourly rollups.
    """
    if not 1 <= weeks <= 52:
        raise ValueError(f"weeks={weeks}: expected 1 to 52")
    if now.tzinfo is None:
        raise ValueError(f"now={now!r}: a timezone-aware datetime is required")
    local = now.astimezone(ZoneInfo(ROLLUP_TIMEZONE))
    today = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    # a local day is 24 h and a week 168 h in ROLLUP_TIMEZONE (no daylight saving time)
    hours = [today - timedelta(hours=168 * k) + timedelta(hours=h)
             for k in range(weeks + 1) for h in range(24)]
    params = {"now": now, "hours": hours, "lo": min(hours),
              "hi": max(hours) + timedelta(hours=1), "electric": _ELECTRIC}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(TODAY_VS_TYPICAL_SQL, params).fetchall())


MONTH_TO_DATE_SQL = """
WITH b AS (
    SELECT date_trunc('month', %(now)s::timestamptz, %(tz)s) AS month_start,
           (date_trunc('month', %(now)s::timestamptz, %(tz)s) AT TIME ZONE %(tz)s
                + interval '1 month') AT TIME ZONE %(tz)s AS month_end,
           date_trunc('day', %(now)s::timestamptz, %(tz)s) AS day_start,
           date_trunc('year', %(now)s::timestamptz, %(tz)s) AS year_start,
           (date_trunc('year', %(now)s::timestamptz, %(tz)s) AT TIME ZONE %(tz)s
                + interval '1 year') AT TIME ZONE %(tz)s AS year_end,
           extract(year FROM %(now)s::timestamptz AT TIME ZONE %(tz)s)::int AS year
),
f AS (
    SELECT b.*,
           extract(epoch FROM b.month_end - b.month_start)::float8
               / extract(epoch FROM b.year_end - b.year_start)::float8 AS month_share,
           extract(epoch FROM %(now)s::timestamptz - b.month_start)::float8
               / extract(epoch FROM b.month_end - b.month_start)::float8 AS elapsed_share
    FROM b
),
past AS (
    -- whole local days of this month before today, from the daily rollups
    SELECT r.site_id, sum(r.emissions_kgco2) AS kgco2
    FROM site_emissions_daily r
    WHERE r.method = %(method)s
      AND r.bucket_start >= date_trunc('month', %(now)s::timestamptz, %(tz)s)
      AND r.bucket_start < date_trunc('day', %(now)s::timestamptz, %(tz)s)
    GROUP BY r.site_id
),
today AS (
    -- today up to now, from the raw intervals of boundary meters
    SELECT x.site_id, sum(x.emissions_kgco2) AS kgco2
    FROM emission_intervals x
    JOIN meters m ON m.meter_id = x.meter_id AND m.parent_id IS NULL
    WHERE x.method = %(method)s
      AND x.interval_start >= date_trunc('day', %(now)s::timestamptz, %(tz)s)
      AND x.interval_start < %(now)s::timestamptz
    GROUP BY x.site_id
)
SELECT s.site_id, %(method)s::text AS method, f.month_start, f.month_end,
       f.elapsed_share,
       coalesce(past.kgco2, 0) + coalesce(today.kgco2, 0) AS mtd_kgco2,
       tg.annual_emissions_kgco2 AS annual_target_kgco2,
       tg.annual_emissions_kgco2 * f.month_share AS month_target_kgco2,
       tg.annual_emissions_kgco2 * f.month_share * f.elapsed_share AS target_to_date_kgco2,
       (coalesce(past.kgco2, 0) + coalesce(today.kgco2, 0))
           / nullif(tg.annual_emissions_kgco2 * f.month_share * f.elapsed_share, 0)
           AS mtd_vs_target,
       (coalesce(past.kgco2, 0) + coalesce(today.kgco2, 0)) / nullif(f.elapsed_share, 0)
           AS projected_month_kgco2
FROM sites s CROSS JOIN f
LEFT JOIN past ON past.site_id = s.site_id
LEFT JOIN today ON today.site_id = s.site_id
LEFT JOIN site_targets tg ON tg.site_id = s.site_id AND tg.year = f.year
    AND tg.method = %(method)s
ORDER BY s.site_id
"""


def month_to_date(
    database_url: str, now: datetime, method: str = "location"
) -> list[dict[str, Any]]:
    """Per site: this local month's emissions up to ``now`` against the target trajectory.

    The month is the local (``ROLLUP_TIMEZONE``) calendar month holding ``now``. Emissions
    (``method`` 'location' or 'market', boundary meters): whole days before today from the
    daily rollups, today from the raw intervals starting before ``now``. Target: the site's
    annual target for the local year and method (``site_targets``), spread over the months in
    proportion to their length; the trajectory within the month is a straight line.
    Columns: ``site_id``, ``method``, ``month_start``, ``month_end`` (UTC instants),
    ``elapsed_share`` [0-1 of the month], ``mtd_kgco2``, ``annual_target_kgco2``,
    ``month_target_kgco2``, ``target_to_date_kgco2`` [kgCO2], ``mtd_vs_target`` [ratio; > 1:
    above the trajectory], ``projected_month_kgco2`` [kgCO2, mtd / elapsed share]. Target
    columns are None for a site without a target.
    """
    if method not in ("location", "market"):
        raise ValueError(f"method={method!r}: expected 'location' or 'market'")
    params = {"now": now, "method": method, "tz": ROLLUP_TIMEZONE}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(MONTH_TO_DATE_SQL, params).fetchall())


MONTHLY_TOTALS_SQL = """
WITH em AS (
    SELECT site_id, bucket_start,
           sum(emissions_kgco2) FILTER (WHERE method = 'location') AS location_kgco2,
           sum(emissions_kgco2) FILTER (WHERE method = 'market') AS market_kgco2,
           sum(scope1_kgco2) FILTER (WHERE method = 'location') AS scope1_kgco2
    FROM site_emissions_monthly
    WHERE bucket_start >= %(start)s AND bucket_start < %(end)s
    GROUP BY site_id, bucket_start
),
en AS (
    SELECT site_id, bucket_start, sum(energy_tce) AS energy_tce,
           sum(quantity) FILTER (WHERE carrier = 'grid_import') AS grid_import_kwh,
           sum(estimated_quantity) FILTER (WHERE carrier = 'grid_import')
               AS grid_import_estimated_kwh
    FROM site_energy_monthly
    WHERE bucket_start >= %(start)s AND bucket_start < %(end)s
    GROUP BY site_id, bucket_start
)
SELECT coalesce(em.site_id, en.site_id) AS site_id,
       coalesce(em.bucket_start, en.bucket_start) AS month_start,
       (coalesce(em.bucket_start, en.bucket_start) AT TIME ZONE %(tz)s)::date AS month,
       coalesce(em.location_kgco2, 0) AS location_kgco2,
       coalesce(em.market_kgco2, 0) AS market_kgco2,
       coalesce(em.scope1_kgco2, 0) AS scope1_kgco2,
       en.energy_tce, coalesce(en.grid_import_kwh, 0) AS grid_import_kwh,
       coalesce(en.grid_import_estimated_kwh, 0) AS grid_import_estimated_kwh
FROM em FULL JOIN en ON en.site_id = em.site_id AND en.bucket_start = em.bucket_start
ORDER BY 1, 2
"""


def monthly_totals(database_url: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per site and local month starting in [``start``, ``end``): live totals from the monthly
    rollups (boundary meters), for dashboards and the API. Not the signed-off figures: the
    monthly close (``analytics.close``) adds instruments, completeness and market-based
    Scope 2 for the month.

    Columns: ``site_id``, ``month_start`` (UTC instant), ``month`` (local date, first day),
    ``location_kgco2``, ``market_kgco2``, ``scope1_kgco2`` [kgCO2], ``energy_tce`` [tce],
    ``grid_import_kwh`` and its estimated part ``grid_import_estimated_kwh`` [kWh].
    """
    params = {"start": start, "end": end, "tz": ROLLUP_TIMEZONE}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(MONTHLY_TOTALS_SQL, params).fetchall())
