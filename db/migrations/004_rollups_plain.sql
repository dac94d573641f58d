-- nzc:unless-extension timescaledb
--
-- Rollups on plain PostgreSQL: the same relation names and columns as the TimescaleDB
-- continuous aggregates of 005_rollups_timescaledb.sql, here as tables that triggers keep
-- current inside the sink's own transaction, so every reader queries one schema either way.
--
--   energy_hourly / energy_daily / energy_monthly
--       bucket_start, meter_id, site_id, carrier, quantity_unit, quantity [quantity_unit],
--       estimated_quantity [quantity_unit, the estimated part], energy_tce [tce],
--       covered_s [s], intervals [count of raw intervals]
--   emissions_hourly / emissions_daily / emissions_monthly
--       bucket_start, meter_id, site_id, method, scope, emissions_kgco2 [kgCO2], intervals
--
-- Buckets: hours are UTC hours; days and months are LOCAL days and months in Asia/Shanghai
-- (UTC+8, no daylight saving), the calendar reviewers sign off; bucket_start is the UTC
-- instant the local day or month begins. A raw interval counts in the bucket holding its
-- interval_start.
--
-- How they stay current: statement-level AFTER INSERT / AFTER UPDATE triggers on the raw
-- tables recompute, for every (meter, hour) the statement touched, the hourly row from the raw
-- rows, then the (meter, local day) rows from the hourly rows, then the (meter, local month)
-- rows from the daily rows. A late correction is therefore in every rollup when the sink's
-- transaction commits. Rows deleted from the raw tables are NOT subtracted (as on TimescaleDB,
-- where aggregates are kept when retention drops raw chunks); nzc_rebuild_rollups(from, to)
-- recomputes a period from what the raw tables hold now.

CREATE TABLE energy_hourly (
    bucket_start        timestamptz NOT NULL,
    meter_id            text NOT NULL,
    site_id             text NOT NULL,
    carrier             text NOT NULL,
    quantity_unit       text NOT NULL,
    quantity            double precision,
    estimated_quantity  double precision,
    energy_tce          double precision,
    covered_s           double precision,
    intervals           bigint,
    PRIMARY KEY (meter_id, bucket_start, site_id, carrier, quantity_unit)
);
CREATE INDEX energy_hourly_time_idx ON energy_hourly (bucket_start);
CREATE TABLE energy_daily (LIKE energy_hourly INCLUDING ALL);
CREATE TABLE energy_monthly (LIKE energy_hourly INCLUDING ALL);

CREATE TABLE emissions_hourly (
    bucket_start     timestamptz NOT NULL,
    meter_id         text NOT NULL,
    site_id          text NOT NULL,
    method           text NOT NULL,
    scope            text NOT NULL,
    emissions_kgco2  double precision,
    intervals        bigint,
    PRIMARY KEY (meter_id, bucket_start, method, site_id, scope)
);
CREATE INDEX emissions_hourly_time_idx ON emissions_hourly (bucket_start);
CREATE TABLE emissions_daily (LIKE emissions_hourly INCLUDING ALL);
CREATE TABLE emissions_monthly (LIKE emissions_hourly INCLUDING ALL);

-- TimescaleDB indexes every hypertable on its time column; plain PostgreSQL needs them for
-- the rolling windows over all sites (the primary keys lead with meter_id).
CREATE INDEX energy_intervals_time_idx ON energy_intervals (interval_start);
CREATE INDEX emission_intervals_time_idx ON emission_intervals (interval_start);

-- The distinct (meter, bucket) pairs of the given (meter, UTC hour) pairs, for p_level 'hour',
-- 'day' (local day) or 'month' (local month).
CREATE FUNCTION nzc_bucket_keys(p_meters text[], p_hours timestamptz[], p_level text)
RETURNS TABLE (meter_id text, bucket_start timestamptz) LANGUAGE sql STABLE AS $$
    SELECT DISTINCT m, CASE p_level
        WHEN 'hour' THEN h
        WHEN 'day' THEN date_trunc('day', h, 'Asia/Shanghai')
        ELSE date_trunc('month', h, 'Asia/Shanghai') END
    FROM unnest(p_meters, p_hours) AS k (m, h)
$$;

-- Recompute the rollups of the given (meter, UTC hour) pairs, bottom up: per rollup table one
-- DELETE of the affected buckets and one INSERT that sums each bucket in a LATERAL subquery
-- (an index range scan per (meter, bucket): a plain join is planned as a hash join over the
-- whole raw table once it is large). Local days/months are 24 h / calendar months in
-- Asia/Shanghai, independent of the session's TimeZone.
CREATE FUNCTION nzc_recompute_energy(p_meters text[], p_hours timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- hours
    DELETE FROM energy_hourly t USING nzc_bucket_keys(p_meters, p_hours, 'hour') k
        WHERE t.meter_id = k.meter_id AND t.bucket_start = k.bucket_start;
    INSERT INTO energy_hourly
    SELECT k.bucket_start, a.*
    FROM nzc_bucket_keys(p_meters, p_hours, 'hour') k
    CROSS JOIN LATERAL (
        SELECT e.meter_id, e.site_id, e.carrier, e.quantity_unit, sum(e.quantity),
               sum(e.estimated_quantity), sum(e.energy_tce), sum(e.covered_s), count(*)
        FROM energy_intervals e
        WHERE e.meter_id = k.meter_id AND e.interval_start >= k.bucket_start
          AND e.interval_start < k.bucket_start + interval '1 hour'
        GROUP BY e.meter_id, e.site_id, e.carrier, e.quantity_unit) a;
    -- local days
    DELETE FROM energy_daily t USING nzc_bucket_keys(p_meters, p_hours, 'day') k
        WHERE t.meter_id = k.meter_id AND t.bucket_start = k.bucket_start;
    INSERT INTO energy_daily
    SELECT k.bucket_start, a.*
    FROM nzc_bucket_keys(p_meters, p_hours, 'day') k
    CROSS JOIN LATERAL (
        SELECT r.meter_id, r.site_id, r.carrier, r.quantity_unit, sum(r.quantity),
               sum(r.estimated_quantity), sum(r.energy_tce), sum(r.covered_s),
               sum(r.intervals)::bigint
        FROM energy_hourly r
        WHERE r.meter_id = k.meter_id AND r.bucket_start >= k.bucket_start
          AND r.bucket_start < k.bucket_start + interval '24 hours'
        GROUP BY r.meter_id, r.site_id, r.carrier, r.quantity_unit) a;
    -- local months
    DELETE FROM energy_monthly t USING nzc_bucket_keys(p_meters, p_hours, 'month') k
        WHERE t.meter_id = k.meter_id AND t.bucket_start = k.bucket_start;
    INSERT INTO energy_monthly
    SELECT k.bucket_start, a.*
    FROM nzc_bucket_keys(p_meters, p_hours, 'month') k
    CROSS JOIN LATERAL (
        SELECT r.meter_id, r.site_id, r.carrier, r.quantity_unit, sum(r.quantity),
               sum(r.estimated_quantity), sum(r.energy_tce), sum(r.covered_s),
               sum(r.intervals)::bigint
        FROM energy_daily r
        WHERE r.meter_id = k.meter_id AND r.bucket_start >= k.bucket_start
          AND r.bucket_start < ((k.bucket_start AT TIME ZONE 'Asia/Shanghai') + interval '1 month')
              AT TIME ZONE 'Asia/Shanghai'
        GROUP BY r.meter_id, r.site_id, r.carrier, r.quantity_unit) a;
END
$$;

CREATE FUNCTION nzc_recompute_emissions(p_meters text[], p_hours timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM emissions_hourly t USING nzc_bucket_keys(p_meters, p_hours, 'hour') k
        WHERE t.meter_id = k.meter_id AND t.bucket_start = k.bucket_start;
    INSERT INTO emissions_hourly
    SELECT k.bucket_start, a.*
    FROM nzc_bucket_keys(p_meters, p_hours, 'hour') k
    CROSS JOIN LATERAL (
        SELECT x.meter_id, x.site_id, x.method, x.scope, sum(x.emissions_kgco2), count(*)
        FROM emission_intervals x
        WHERE x.meter_id = k.meter_id AND x.interval_start >= k.bucket_start
          AND x.interval_start < k.bucket_start + interval '1 hour'
        GROUP BY x.meter_id, x.site_id, x.method, x.scope) a;
    DELETE FROM emissions_daily t USING nzc_bucket_keys(p_meters, p_hours, 'day') k
        WHERE t.meter_id = k.meter_id AND t.bucket_start = k.bucket_start;
    INSERT INTO emissions_daily
    SELECT k.bucket_start, a.*
    FROM nzc_bucket_keys(p_meters, p_hours, 'day') k
    CROSS JOIN LATERAL (
        SELECT r.meter_id, r.site_id, r.method, r.scope, sum(r.emissions_kgco2),
               sum(r.intervals)::bigint
        FROM emissions_hourly r
        WHERE r.meter_id = k.meter_id AND r.bucket_start >= k.bucket_start
          AND r.bucket_start < k.bucket_start + interval '24 hours'
        GROUP BY r.meter_id, r.site_id, r.method, r.scope) a;
    DELETE FROM emissions_monthly t USING nzc_bucket_keys(p_meters, p_hours, 'month') k
        WHERE t.meter_id = k.meter_id AND t.bucket_start = k.bucket_start;
    INSERT INTO emissions_monthly
    SELECT k.bucket_start, a.*
    FROM nzc_bucket_keys(p_meters, p_hours, 'month') k
    CROSS JOIN LATERAL (
        SELECT r.meter_id, r.site_id, r.method, r.scope, sum(r.emissions_kgco2),
               sum(r.intervals)::bigint
        FROM emissions_daily r
        WHERE r.meter_id = k.meter_id AND r.bucket_start >= k.bucket_start
          AND r.bucket_start < ((k.bucket_start AT TIME ZONE 'Asia/Shanghai') + interval '1 month')
              AT TIME ZONE 'Asia/Shanghai'
        GROUP BY r.meter_id, r.site_id, r.method, r.scope) a;
END
$$;

-- Trigger functions: the rows a statement inserted or updated arrive as the transition table
-- "changed" (old and new rows share their key: the sink never moves a row to another meter
-- or interval).
CREATE FUNCTION nzc_energy_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nzc_recompute_energy(array_agg(meter_id), array_agg(h))
    FROM (SELECT DISTINCT meter_id, date_trunc('hour', interval_start, 'UTC') AS h
          FROM changed) c;
    RETURN NULL;
END
$$;

CREATE FUNCTION nzc_emissions_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nzc_recompute_emissions(array_agg(meter_id), array_agg(h))
    FROM (SELECT DISTINCT meter_id, date_trunc('hour', interval_start, 'UTC') AS h
          FROM changed) c;
    RETURN NULL;
END
$$;

CREATE TRIGGER energy_rollup_after_insert AFTER INSERT ON energy_intervals
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION nzc_energy_rollup_trigger();
CREATE TRIGGER energy_rollup_after_update AFTER UPDATE ON energy_intervals
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION nzc_energy_rollup_trigger();
CREATE TRIGGER emissions_rollup_after_insert AFTER INSERT ON emission_intervals
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION nzc_emissions_rollup_trigger();
CREATE TRIGGER emissions_rollup_after_update AFTER UPDATE ON emission_intervals
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION nzc_emissions_rollup_trigger();

-- Recompute every rollup over [p_from, p_to) widened to whole local months, from what the raw
-- tables hold now (after rows were deleted or edited by hand), set-based. Run by the
-- migration role.
CREATE FUNCTION nzc_rebuild_rollups(p_from timestamptz, p_to timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', p_from, 'Asia/Shanghai');
    hi timestamptz := (date_trunc('month', p_to - interval '1 microsecond', 'Asia/Shanghai')
                       AT TIME ZONE 'Asia/Shanghai' + interval '1 month') AT TIME ZONE 'Asia/Shanghai';
BEGIN
    IF p_from >= p_to THEN
        RAISE EXCEPTION 'nzc_rebuild_rollups: from % must be before to %', p_from, p_to;
    END IF;
    DELETE FROM energy_hourly WHERE bucket_start >= lo AND bucket_start < hi;
    DELETE FROM energy_daily WHERE bucket_start >= lo AND bucket_start < hi;
    DELETE FROM energy_monthly WHERE bucket_start >= lo AND bucket_start < hi;
    DELETE FROM emissions_hourly WHERE bucket_start >= lo AND bucket_start < hi;
    DELETE FROM emissions_daily WHERE bucket_start >= lo AND bucket_start < hi;
    DELETE FROM emissions_monthly WHERE bucket_start >= lo AND bucket_start < hi;

    INSERT INTO energy_hourly
    SELECT date_trunc('hour', interval_start, 'UTC'), meter_id, site_id, carrier, quantity_unit,
           sum(quantity), sum(estimated_quantity), sum(energy_tce), sum(covered_s), count(*)
    FROM energy_intervals WHERE interval_start >= lo AND interval_start < hi
    GROUP BY 1, meter_id, site_id, carrier, quantity_unit;
    INSERT INTO energy_daily
    SELECT date_trunc('day', bucket_start, 'Asia/Shanghai'), meter_id, site_id, carrier,
           quantity_unit, sum(quantity), sum(estimated_quantity), sum(energy_tce),
           sum(covered_s), sum(intervals)::bigint
    FROM energy_hourly WHERE bucket_start >= lo AND bucket_start < hi
    GROUP BY 1, meter_id, site_id, carrier, quantity_unit;
    INSERT INTO energy_monthly
    SELECT date_trunc('month', bucket_start, 'Asia/Shanghai'), meter_id, site_id, carrier,
           quantity_unit, sum(quantity), sum(estimated_quantity), sum(energy_tce),
           sum(covered_s), sum(intervals)::bigint
    FROM energy_daily WHERE bucket_start >= lo AND bucket_start < hi
    GROUP BY 1, meter_id, site_id, carrier, quantity_unit;

    INSERT INTO emissions_hourly
    SELECT date_trunc('hour', interval_start, 'UTC'), meter_id, site_id, method, scope,
           sum(emissions_kgco2), count(*)
    FROM emission_intervals WHERE interval_start >= lo AND interval_start < hi
    GROUP BY 1, meter_id, site_id, method, scope;
    INSERT INTO emissions_daily
    SELECT date_trunc('day', bucket_start, 'Asia/Shanghai'), meter_id, site_id, method, scope,
           sum(emissions_kgco2), sum(intervals)::bigint
    FROM emissions_hourly WHERE bucket_start >= lo AND bucket_start < hi
    GROUP BY 1, meter_id, site_id, method, scope;
    INSERT INTO emissions_monthly
    SELECT date_trunc('month', bucket_start, 'Asia/Shanghai'), meter_id, site_id, method, scope,
           sum(emissions_kgco2), sum(intervals)::bigint
    FROM emissions_daily WHERE bucket_start >= lo AND bucket_start < hi
    GROUP BY 1, meter_id, site_id, method, scope;
END
$$;

-- Rows written before this migration (a database that ran 001-003 with data).
SELECT nzc_rebuild_rollups('-infinity', 'infinity');

-- The sink (nzc_writer) fires the triggers, so it maintains the rollup tables (DELETE
-- included: a bucket is recomputed by replacing its rows). Readers only read them.
GRANT SELECT, INSERT, UPDATE, DELETE ON energy_hourly, energy_daily, energy_monthly,
    emissions_hourly, emissions_daily, emissions_monthly TO nzc_writer;
GRANT SELECT ON energy_hourly, energy_daily, energy_monthly,
    emissions_hourly, emissions_daily, emissions_monthly TO nzc_reader;
REVOKE EXECUTE ON FUNCTION nzc_rebuild_rollups(timestamptz, timestamptz) FROM PUBLIC;
