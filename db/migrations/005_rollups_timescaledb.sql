-- nzc:if-extension timescaledb
-- nzc:no-transaction
--
-- Rollups on TimescaleDB: continuous aggregates with the same names and columns as the plain
-- path's rollup tables (004_rollups_plain.sql), refresh policies, compression and retention.
-- Runs statement by statement outside a transaction (the first refresh of a continuous
-- aggregate cannot run in one); every statement may be re-run.
--
--   energy_hourly / energy_daily / energy_monthly
--       bucket_start, meter_id, site_id, carrier, quantity_unit, quantity [quantity_unit],
--       estimated_quantity [quantity_unit, the estimated part], energy_tce [tce],
--       covered_s [s], intervals [count of raw intervals]
--   emissions_hourly / emissions_daily / emissions_monthly
--       bucket_start, meter_id, site_id, method, scope, emissions_kgco2 [kgCO2], intervals
--
-- Buckets: hours are UTC hours (time_bucket); days and months are LOCAL days and months in
-- Asia/Shanghai (time_bucket with a time zone), the calendar reviewers sign off; bucket_start
-- is the UTC instant the local day or month begins. Daily rollups are computed from the
-- hourly ones and monthly from daily (hierarchical continuous aggregates).
--
-- Real-time aggregation is on (materialized_only = false): a rollup shows the materialized
-- buckets plus, live, the raw rows newer than its last refresh. A correction to an interval
-- that is already materialized appears after the next refresh: the policies below refresh
-- the last 35 days of hourly buckets every 15 minutes, then daily and monthly; an older
-- correction needs db.migrate.refresh_rollups (CALL refresh_continuous_aggregate).

CREATE MATERIALIZED VIEW IF NOT EXISTS energy_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', interval_start) AS bucket_start,
       meter_id, site_id, carrier, quantity_unit,
       sum(quantity) AS quantity,
       sum(estimated_quantity) AS estimated_quantity,
       sum(energy_tce) AS energy_tce,
       sum(covered_s) AS covered_s,
       count(*) AS intervals
FROM energy_intervals
GROUP BY time_bucket(INTERVAL '1 hour', interval_start), meter_id, site_id, carrier,
         quantity_unit
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS energy_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket_start, 'Asia/Shanghai') AS bucket_start,
       meter_id, site_id, carrier, quantity_unit,
       sum(quantity) AS quantity,
       sum(estimated_quantity) AS estimated_quantity,
       sum(energy_tce) AS energy_tce,
       sum(covered_s) AS covered_s,
       sum(intervals)::bigint AS intervals
FROM energy_hourly
GROUP BY time_bucket(INTERVAL '1 day', bucket_start, 'Asia/Shanghai'), meter_id, site_id,
         carrier, quantity_unit
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS energy_monthly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 month', bucket_start, 'Asia/Shanghai') AS bucket_start,
       meter_id, site_id, carrier, quantity_unit,
       sum(quantity) AS quantity,
       sum(estimated_quantity) AS estimated_quantity,
       sum(energy_tce) AS energy_tce,
       sum(covered_s) AS covered_s,
       sum(intervals)::bigint AS intervals
FROM energy_daily
GROUP BY time_bucket(INTERVAL '1 month', bucket_start, 'Asia/Shanghai'), meter_id, site_id,
         carrier, quantity_unit
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS emissions_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', interval_start) AS bucket_start,
       meter_id, site_id, method, scope,
       sum(emissions_kgco2) AS emissions_kgco2,
       count(*) AS intervals
FROM emission_intervals
GROUP BY time_bucket(INTERVAL '1 hour', interval_start), meter_id, site_id, method, scope
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS emissions_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket_start, 'Asia/Shanghai') AS bucket_start,
       meter_id, site_id, method, scope,
       sum(emissions_kgco2) AS emissions_kgco2,
       sum(intervals)::bigint AS intervals
FROM emissions_hourly
GROUP BY time_bucket(INTERVAL '1 day', bucket_start, 'Asia/Shanghai'), meter_id, site_id,
         method, scope
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS emissions_monthly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 month', bucket_start, 'Asia/Shanghai') AS bucket_start,
       meter_id, site_id, method, scope,
       sum(emissions_kgco2) AS emissions_kgco2,
       sum(intervals)::bigint AS intervals
FROM emissions_daily
GROUP BY time_bucket(INTERVAL '1 month', bucket_start, 'Asia/Shanghai'), meter_id, site_id,
         method, scope
WITH NO DATA;

-- Materialize what a database converted with data already holds, bottom up.
CALL refresh_continuous_aggregate('energy_hourly', NULL, NULL);
CALL refresh_continuous_aggregate('emissions_hourly', NULL, NULL);
CALL refresh_continuous_aggregate('energy_daily', NULL, NULL);
CALL refresh_continuous_aggregate('emissions_daily', NULL, NULL);
CALL refresh_continuous_aggregate('energy_monthly', NULL, NULL);
CALL refresh_continuous_aggregate('emissions_monthly', NULL, NULL);

-- Refresh policies. Windows: hourly buckets of the last 35 days (late data, corrections and
-- the month being closed), daily of the last 40 days, monthly of the last 3 months; each
-- leaves the newest hour to real-time aggregation. Raw retention must stay longer than the
-- hourly window (checked by apply_storage_policies), or a refresh would find the raw rows gone.
SELECT add_continuous_aggregate_policy('energy_hourly', start_offset => INTERVAL '35 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes',
    if_not_exists => true);
SELECT add_continuous_aggregate_policy('emissions_hourly', start_offset => INTERVAL '35 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes',
    if_not_exists => true);
SELECT add_continuous_aggregate_policy('energy_daily', start_offset => INTERVAL '40 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes',
    if_not_exists => true);
SELECT add_continuous_aggregate_policy('emissions_daily', start_offset => INTERVAL '40 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes',
    if_not_exists => true);
SELECT add_continuous_aggregate_policy('energy_monthly', start_offset => INTERVAL '3 months',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour',
    if_not_exists => true);
SELECT add_continuous_aggregate_policy('emissions_monthly', start_offset => INTERVAL '3 months',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour',
    if_not_exists => true);

-- Compression of raw chunks: one segment per site and meter (and method), ordered by time,
-- so a meter's history compresses well and a site's or meter's query reads few segments.
-- Upserts into compressed chunks still work (TimescaleDB decompresses the affected segment).
ALTER TABLE readings SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'meter_id', timescaledb.compress_orderby = 'ts DESC');
ALTER TABLE energy_intervals SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'site_id, meter_id',
    timescaledb.compress_orderby = 'interval_start DESC');
ALTER TABLE emission_intervals SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'site_id, meter_id, method',
    timescaledb.compress_orderby = 'interval_start DESC');

-- Configurable horizons: compress raw chunks older than compress_after, drop raw chunks older
-- than drop_after (NULL: keep). The rollups are never dropped. To change: UPDATE this table,
-- then SELECT apply_storage_policies(); (as the schema owner).
CREATE TABLE IF NOT EXISTS storage_policies (
    hypertable      text PRIMARY KEY
        CHECK (hypertable IN ('readings', 'energy_intervals', 'emission_intervals')),
    compress_after  interval NOT NULL,
    drop_after      interval,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO storage_policies (hypertable, compress_after, drop_after) VALUES
    ('readings', INTERVAL '7 days', INTERVAL '400 days'),
    ('energy_intervals', INTERVAL '45 days', INTERVAL '1095 days'),
    ('emission_intervals', INTERVAL '45 days', INTERVAL '1095 days')
ON CONFLICT (hypertable) DO NOTHING;

CREATE OR REPLACE FUNCTION apply_storage_policies()
RETURNS TABLE (hypertable text, compress_job integer, retention_job integer)
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    refresh_window interval;
BEGIN
    -- the longest window in which a refresh policy re-reads raw rows
    SELECT max((j.config ->> 'start_offset')::interval) INTO refresh_window
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = 'policy_refresh_continuous_aggregate'
      AND j.hypertable_name IN ('energy_hourly', 'emissions_hourly');
    FOR p IN SELECT * FROM storage_policies s ORDER BY s.hypertable LOOP
        IF p.drop_after IS NOT NULL AND p.drop_after <= p.compress_after THEN
            RAISE EXCEPTION 'storage_policies: % drop_after % must be longer than compress_after %',
                p.hypertable, p.drop_after, p.compress_after;
        END IF;
        IF p.drop_after IS NOT NULL AND p.hypertable <> 'readings'
           AND p.drop_after <= coalesce(refresh_window, INTERVAL '0') + INTERVAL '1 day' THEN
            RAISE EXCEPTION 'storage_policies: % drop_after % must exceed the rollup refresh window % by more than a day, or refreshes would erase rolled-up history',
                p.hypertable, p.drop_after, refresh_window;
        END IF;
        PERFORM remove_compression_policy(p.hypertable::regclass, if_exists => true);
        PERFORM remove_retention_policy(p.hypertable::regclass, if_exists => true);
        hypertable := p.hypertable;
        compress_job := add_compression_policy(p.hypertable::regclass, p.compress_after);
        retention_job := NULL;
        IF p.drop_after IS NOT NULL THEN
            retention_job := add_retention_policy(p.hypertable::regclass, p.drop_after);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

SELECT * FROM apply_storage_policies();

-- Privileges: readers read the rollups; the sink only reads them (TimescaleDB maintains
-- them); the storage horizons are the schema owner's.
GRANT SELECT ON energy_hourly, energy_daily, energy_monthly,
    emissions_hourly, emissions_daily, emissions_monthly, storage_policies
    TO nzc_reader, nzc_writer;
REVOKE INSERT, UPDATE, DELETE ON energy_hourly, energy_daily, energy_monthly,
    emissions_hourly, emissions_daily, emissions_monthly, storage_policies FROM nzc_writer;
REVOKE EXECUTE ON FUNCTION apply_storage_policies() FROM PUBLIC;
