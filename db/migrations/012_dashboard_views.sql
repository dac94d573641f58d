-- Views and functions for the Grafana dashboards and the built-in web view (dashboards/,
-- api/web/). Plain views over the rollups of 004-006 (TimescaleDB continuous aggregates or the
-- plain path's trigger-maintained tables), so they are the same on both storage paths and no
-- panel scans the raw interval tables over its whole time range.
--
--   dash_group_meters           the top meter of each group (building / enterprise) per site
--   dash_group_energy_hourly    bucket_start, site_id, group_name, carrier, quantity_unit,
--                               quantity [unit], covered_s [s], meters
--   dash_group_emissions_hourly bucket_start, site_id, group_name, method, emissions_kgco2
--   dash_submeter_hourly        per parent meter and UTC hour: parent_quantity,
--                               children_quantity, unmetered_quantity [quantity_unit]
--   dash_meter_tree             meter_id, parent_id, site_id, group_name, carrier, depth, path
--   dash_meter_status           per meter: last reading, offline flag, repair deadline
--   dash_night_base_load        per group and local day: mean electric load 00:00-05:00 [kW]
--                               against the mean of the 14 nights before
--   dash_site_monthly           per site and local month: totals, completeness, estimated share
--   dash_restatements           recompute_audit with the change in kgCO2
--   dash_active_alerts          pending and firing alerts (alerts, migration 011)
--   dash_close_status           the reviewers' month states (month_closes, migration 010)
--   nzc_today_vs_typical(now, weeks)  the SQL of db.queries.today_vs_typical
--   nzc_month_to_date(now, method)    the SQL of db.queries.month_to_date
--
-- Hours are UTC hours; days and months are local (Asia/Shanghai) days and months.

-- A group's (building's, enterprise's) energy is that of its top meters: meters carrying the
-- group whose parent carries another group or none, so a group's sub-meters are not counted
-- twice.
CREATE VIEW dash_group_meters AS
SELECT m.meter_id, m.site_id, m.group_name, m.carrier
FROM meters m LEFT JOIN meters p ON p.meter_id = m.parent_id
WHERE m.group_name IS NOT NULL AND (p.meter_id IS NULL OR p.group_name IS DISTINCT FROM m.group_name);

CREATE VIEW dash_group_energy_hourly AS
SELECT r.bucket_start, r.site_id, g.group_name, r.carrier, r.quantity_unit,
       sum(r.quantity) AS quantity, sum(r.covered_s) AS covered_s,
       count(DISTINCT r.meter_id) AS meters
FROM energy_hourly r JOIN dash_group_meters g ON g.meter_id = r.meter_id
GROUP BY r.bucket_start, r.site_id, g.group_name, r.carrier, r.quantity_unit;

CREATE VIEW dash_group_emissions_hourly AS
SELECT r.bucket_start, r.site_id, g.group_name, r.method,
       sum(r.emissions_kgco2) AS emissions_kgco2
FROM emissions_hourly r JOIN dash_group_meters g ON g.meter_id = r.meter_id
GROUP BY r.bucket_start, r.site_id, g.group_name, r.method;

-- Sub-meter reconciliation per hour (submeter_reconciliation of 002b is per raw interval):
-- parent - children of the same unit (PV and export meters under a grid meter are not
-- consumption) = the unmetered remainder (losses and unmetered loads).
CREATE VIEW dash_submeter_hourly AS
SELECT p.bucket_start, p.site_id, p.meter_id AS parent_id, pm.group_name, p.carrier,
       p.quantity_unit, p.quantity AS parent_quantity,
       coalesce(sum(c.quantity), 0) AS children_quantity,
       p.quantity - coalesce(sum(c.quantity), 0) AS unmetered_quantity,
       count(c.meter_id) AS children_reporting,
       count(DISTINCT cm.meter_id) AS children_registered
FROM energy_hourly p
JOIN meters pm ON pm.meter_id = p.meter_id
JOIN meters cm ON cm.parent_id = p.meter_id
    AND cm.carrier NOT IN ('onsite_renewable', 'grid_export')
LEFT JOIN energy_hourly c ON c.meter_id = cm.meter_id AND c.bucket_start = p.bucket_start
    AND c.quantity_unit = p.quantity_unit
GROUP BY p.bucket_start, p.site_id, p.meter_id, pm.group_name, p.carrier, p.quantity_unit,
         p.quantity;

CREATE VIEW dash_meter_tree AS
WITH RECURSIVE t AS (
    SELECT m.meter_id, m.parent_id, m.site_id, m.group_name, m.carrier, m.canonical_unit,
           0 AS depth, m.meter_id AS path
    FROM meters m WHERE m.parent_id IS NULL
    UNION ALL
    SELECT m.meter_id, m.parent_id, m.site_id, m.group_name, m.carrier, m.canonical_unit,
           t.depth + 1, t.path || ' / ' || m.meter_id
    FROM meters m JOIN t ON m.parent_id = t.meter_id
    WHERE t.depth < 20
)
SELECT * FROM t;

-- A meter is offline when its newest reading is older than its gap limit (meters.max_gap_s,
-- else 1800 s, NZC_MAX_GAP_S's default). Repair deadline: 72 h after the last reading (a
-- calendar approximation of the alert rules' 3 working days; the alerts module's own
-- deadline, in working days, is the one that escalates).
-- One index probe per meter (primary key (meter_id, ts)), never a scan of the readings.
CREATE VIEW dash_meter_status AS
SELECT m.meter_id, m.site_id, m.group_name, m.carrier, m.gateway_id,
       r.ts AS last_reading_at,
       coalesce(m.max_gap_s, 1800) AS max_gap_s,
       (r.ts IS NULL OR r.ts < now() - make_interval(secs => coalesce(m.max_gap_s, 1800)))
           AS offline,
       r.ts + interval '72 hours' AS repair_due,
       extract(epoch FROM now() - r.ts) / 3600.0 AS silent_h
FROM meters m
LEFT JOIN LATERAL (
    SELECT x.ts FROM readings x WHERE x.meter_id = m.meter_id ORDER BY x.ts DESC LIMIT 1
) r ON true;

-- Night base load: mean electric load [kW] of a group's top meters over the local hours
-- 00:00-05:00 (kWh in those hours / hours with data), against the mean of the 14 nights
-- before (the typical level; a rising night load is equipment left running).
CREATE VIEW dash_night_base_load AS
WITH nights AS (
    SELECT (r.bucket_start AT TIME ZONE 'Asia/Shanghai')::date AS day,
           r.site_id, r.group_name,
           sum(r.quantity) / count(DISTINCT r.bucket_start) AS night_kw
    FROM dash_group_energy_hourly r
    WHERE r.carrier IN ('grid_import', 'it_load', 'ev_charging')
      AND extract(hour FROM r.bucket_start AT TIME ZONE 'Asia/Shanghai') < 5
    GROUP BY 1, r.site_id, r.group_name
)
SELECT day, (day::timestamp AT TIME ZONE 'Asia/Shanghai') AS day_start, site_id, group_name,
       night_kw,
       avg(night_kw) OVER (PARTITION BY site_id, group_name ORDER BY day
                           ROWS BETWEEN 14 PRECEDING AND 1 PRECEDING) AS typical_kw
FROM nights;

-- Per site and local month: live totals (boundary meters), data completeness = measured
-- seconds / (boundary meters x seconds of the month so far), estimated share of the energy
-- [tce-weighted; electricity's kWh where no tce applies].
CREATE VIEW dash_site_monthly AS
WITH en AS (
    SELECT site_id, bucket_start, sum(energy_tce) AS energy_tce,
           sum(covered_s) AS covered_s,
           sum(quantity) FILTER (WHERE carrier = 'grid_import') AS grid_import_kwh,
           sum(estimated_quantity) FILTER (WHERE carrier = 'grid_import')
               AS grid_import_estimated_kwh,
           sum(energy_tce * estimated_quantity / nullif(quantity, 0)) AS estimated_tce
    FROM site_energy_monthly GROUP BY site_id, bucket_start
),
em AS (
    SELECT site_id, bucket_start,
           sum(emissions_kgco2) FILTER (WHERE method = 'location') AS location_kgco2,
           sum(emissions_kgco2) FILTER (WHERE method = 'market') AS market_kgco2,
           sum(scope1_kgco2) FILTER (WHERE method = 'location') AS scope1_kgco2
    FROM site_emissions_monthly GROUP BY site_id, bucket_start
),
nb AS (SELECT site_id, count(*) AS meters FROM meters WHERE parent_id IS NULL GROUP BY site_id)
SELECT en.site_id, en.bucket_start AS month_start,
       (en.bucket_start AT TIME ZONE 'Asia/Shanghai')::date AS month,
       coalesce(em.location_kgco2, 0) AS location_kgco2,
       coalesce(em.market_kgco2, 0) AS market_kgco2,
       coalesce(em.scope1_kgco2, 0) AS scope1_kgco2,
       en.energy_tce, en.grid_import_kwh, en.grid_import_estimated_kwh,
       en.covered_s / nullif(nb.meters * extract(epoch FROM
           least(now(), ((en.bucket_start AT TIME ZONE 'Asia/Shanghai') + interval '1 month')
                 AT TIME ZONE 'Asia/Shanghai') - en.bucket_start), 0) AS completeness,
       coalesce(en.estimated_tce / nullif(en.energy_tce, 0),
                en.grid_import_estimated_kwh / nullif(en.grid_import_kwh, 0), 0)
           AS estimated_share
FROM en LEFT JOIN em USING (site_id, bucket_start) LEFT JOIN nb USING (site_id);

CREATE VIEW dash_restatements AS
SELECT audit_id, done_at, done_by, site_id, period_start, period_end, rows_changed,
       parameters::text AS parameters,
       (SELECT sum(value::float8) FROM jsonb_each_text(before_kgco2)) AS before_kgco2,
       (SELECT sum(value::float8) FROM jsonb_each_text(after_kgco2)) AS after_kgco2
FROM recompute_audit;

-- db.queries.TODAY_VS_TYPICAL_SQL as a function, for panels (which cannot call Python):
-- per site and local hour of today, today's emissions and electricity use against the median
-- of the previous p_weeks same weekdays with data.
CREATE FUNCTION nzc_today_vs_typical(p_now timestamptz, p_weeks integer DEFAULT 4)
RETURNS TABLE (site_id text, hour integer, hour_start timestamptz,
               today_location_kgco2 float8, typical_location_kgco2 float8,
               today_market_kgco2 float8, typical_market_kgco2 float8,
               today_electricity_kwh float8, typical_electricity_kwh float8,
               typical_days bigint)
LANGUAGE sql STABLE AS $$
WITH hours AS (
    SELECT k, h AS hour,
           date_trunc('day', p_now, 'Asia/Shanghai') - make_interval(hours => 168 * k)
               + make_interval(hours => h) AS hour_start
    FROM generate_series(0, p_weeks) AS k, generate_series(0, 23) AS h
),
lim AS (SELECT min(hour_start) AS lo, max(hour_start) + interval '1 hour' AS hi FROM hours),
em AS (
    SELECT r.site_id, r.bucket_start,
           sum(r.emissions_kgco2) FILTER (WHERE r.method = 'location') AS location_kgco2,
           sum(r.emissions_kgco2) FILTER (WHERE r.method = 'market') AS market_kgco2
    FROM site_emissions_hourly r, lim
    WHERE r.bucket_start IN (SELECT hour_start FROM hours)
      AND r.bucket_start >= lim.lo AND r.bucket_start < lim.hi
    GROUP BY r.site_id, r.bucket_start
),
el AS (
    SELECT r.site_id, r.bucket_start,
           sum(CASE WHEN r.carrier = 'grid_export' THEN -r.quantity ELSE r.quantity END)
               AS electricity_kwh
    FROM site_energy_hourly r, lim
    WHERE r.carrier IN ('grid_import', 'grid_export', 'onsite_renewable', 'ev_charging',
                        'it_load')
      AND r.bucket_start IN (SELECT hour_start FROM hours)
      AND r.bucket_start >= lim.lo AND r.bucket_start < lim.hi
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
       max(hour_start) FILTER (WHERE k = 0),
       max(location_kgco2) FILTER (WHERE k = 0 AND hour_start < p_now),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(location_kgco2, 0))
           FILTER (WHERE k > 0 AND has_data),
       max(market_kgco2) FILTER (WHERE k = 0 AND hour_start < p_now),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(market_kgco2, 0))
           FILTER (WHERE k > 0 AND has_data),
       max(electricity_kwh) FILTER (WHERE k = 0 AND hour_start < p_now),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(electricity_kwh, 0))
           FILTER (WHERE k > 0 AND has_data),
       count(*) FILTER (WHERE k > 0 AND has_data)
FROM grid
GROUP BY site_id, hour
ORDER BY site_id, hour
$$;

-- db.queries.MONTH_TO_DATE_SQL as a function: per site, this local month's emissions up to
-- p_now against the target trajectory (annual target spread by month length, straight line
-- within the month).
CREATE FUNCTION nzc_month_to_date(p_now timestamptz, p_method text DEFAULT 'location')
RETURNS TABLE (site_id text, method text, month_start timestamptz, month_end timestamptz,
               elapsed_share float8, mtd_kgco2 float8, annual_target_kgco2 float8,
               month_target_kgco2 float8, target_to_date_kgco2 float8, mtd_vs_target float8,
               projected_month_kgco2 float8)
LANGUAGE sql STABLE AS $$
WITH b AS (
    SELECT date_trunc('month', p_now, 'Asia/Shanghai') AS month_start,
           (date_trunc('month', p_now, 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai'
                + interval '1 month') AT TIME ZONE 'Asia/Shanghai' AS month_end,
           date_trunc('year', p_now, 'Asia/Shanghai') AS year_start,
           (date_trunc('year', p_now, 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai'
                + interval '1 year') AT TIME ZONE 'Asia/Shanghai' AS year_end,
           extract(year FROM p_now AT TIME ZONE 'Asia/Shanghai')::int AS year
),
f AS (
    SELECT b.*,
           extract(epoch FROM b.month_end - b.month_start)::float8
               / extract(epoch FROM b.year_end - b.year_start)::float8 AS month_share,
           extract(epoch FROM p_now - b.month_start)::float8
               / extract(epoch FROM b.month_end - b.month_start)::float8 AS elapsed_share
    FROM b
),
past AS (
    SELECT r.site_id, sum(r.emissions_kgco2) AS kgco2
    FROM site_emissions_daily r
    WHERE r.method = p_method
      AND r.bucket_start >= date_trunc('month', p_now, 'Asia/Shanghai')
      AND r.bucket_start < date_trunc('day', p_now, 'Asia/Shanghai')
    GROUP BY r.site_id
),
today AS (
    SELECT x.site_id, sum(x.emissions_kgco2) AS kgco2
    FROM emission_intervals x
    JOIN meters m ON m.meter_id = x.meter_id AND m.parent_id IS NULL
    WHERE x.method = p_method
      AND x.interval_start >= date_trunc('day', p_now, 'Asia/Shanghai')
      AND x.interval_start < p_now
    GROUP BY x.site_id
)
SELECT s.site_id, p_method, f.month_start, f.month_end, f.elapsed_share,
       coalesce(past.kgco2, 0) + coalesce(today.kgco2, 0),
       tg.annual_emissions_kgco2,
       tg.annual_emissions_kgco2 * f.month_share,
       tg.annual_emissions_kgco2 * f.month_share * f.elapsed_share,
       (coalesce(past.kgco2, 0) + coalesce(today.kgco2, 0))
           / nullif(tg.annual_emissions_kgco2 * f.month_share * f.elapsed_share, 0),
       (coalesce(past.kgco2, 0) + coalesce(today.kgco2, 0)) / nullif(f.elapsed_share, 0)
FROM sites s CROSS JOIN f
LEFT JOIN past ON past.site_id = s.site_id
LEFT JOIN today ON today.site_id = s.site_id
LEFT JOIN site_targets tg ON tg.site_id = s.site_id AND tg.year = f.year
    AND tg.method = p_method
ORDER BY s.site_id
$$;

-- Views over tables that other parts add (alerts: 011, the reviewers' close: 010): defined
-- over them when they exist as this migration runs, else as empty views with the same
-- columns. A database that got those tables later re-creates them with
-- SELECT nzc_dash_optional_views(); (as the schema owner).
CREATE FUNCTION nzc_dash_optional_views() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('public.alerts') IS NOT NULL THEN
        EXECUTE $v$CREATE OR REPLACE VIEW dash_active_alerts AS
            SELECT site_id, kind, rule_id, subject, severity, state,
                   coalesce(firing_since, pending_since) AS since, value, threshold, typical,
                   deadline, acked_by
            FROM alerts WHERE state IN ('pending', 'firing')$v$;
    ELSE
        EXECUTE $v$CREATE OR REPLACE VIEW dash_active_alerts AS
            SELECT NULL::text AS site_id, NULL::text AS kind, NULL::text AS rule_id,
                   NULL::text AS subject, NULL::text AS severity, NULL::text AS state,
                   NULL::timestamptz AS since, NULL::float8 AS value,
                   NULL::float8 AS threshold, NULL::float8 AS typical,
                   NULL::timestamptz AS deadline, NULL::text AS acked_by
            WHERE false$v$;
    END IF;
    IF to_regclass('public.month_closes') IS NOT NULL THEN
        EXECUTE $v$CREATE OR REPLACE VIEW dash_close_status AS
            SELECT site_id, month, state, version, submitted_at, returned_at, verified_at,
                   comment
            FROM month_closes$v$;
    ELSE
        EXECUTE $v$CREATE OR REPLACE VIEW dash_close_status AS
            SELECT NULL::text AS site_id, NULL::date AS month, NULL::text AS state,
                   NULL::integer AS version, NULL::timestamptz AS submitted_at,
                   NULL::timestamptz AS returned_at, NULL::timestamptz AS verified_at,
                   NULL::text AS comment
            WHERE false$v$;
    END IF;
END
$$;
SELECT nzc_dash_optional_views();
REVOKE EXECUTE ON FUNCTION nzc_dash_optional_views() FROM PUBLIC;
GRANT SELECT ON dash_active_alerts, dash_close_status TO nzc_reader, nzc_writer;

GRANT SELECT ON dash_group_meters, dash_group_energy_hourly, dash_group_emissions_hourly,
    dash_submeter_hourly, dash_meter_tree, dash_meter_status, dash_night_base_load,
    dash_site_monthly, dash_restatements TO nzc_reader, nzc_writer;
GRANT EXECUTE ON FUNCTION nzc_today_vs_typical(timestamptz, integer),
    nzc_month_to_date(timestamptz, text) TO nzc_reader, nzc_writer;
