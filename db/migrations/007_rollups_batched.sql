-- nzc:unless-extension timescaledb
--
-- Plain-PostgreSQL rollups refreshed per batch instead of per statement (issue 10).
--
-- 004 recomputed, in an AFTER statement trigger, the hourly/daily/monthly rollup rows of every
-- (meter, hour) a statement touched: 30-50 % of the sink's database time, paid again for a
-- meter on every batch that touched it. Here the triggers only queue the touched (meter, UTC
-- hour) pairs in rollup_dirty (deduplicated by its key), and nzc_refresh_rollups() recomputes
-- the queued buckets with 004's functions and empties the queue. The sink calls it in the same
-- transaction as a batch when the batch is the only one in its period (idle or light load: the
-- rollups are current when the batch commits, as before), and at most every few seconds under
-- load (the rollups then lag the raw tables by that much). nzc_rebuild_rollups() is unchanged.

CREATE TABLE rollup_dirty (
    kind      text NOT NULL CHECK (kind IN ('energy', 'emissions')),
    meter_id  text NOT NULL,
    hour      timestamptz NOT NULL,
    PRIMARY KEY (kind, meter_id, hour)
);

CREATE OR REPLACE FUNCTION nzc_energy_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (kind, meter_id, hour)
    SELECT DISTINCT 'energy', meter_id, date_trunc('hour', interval_start, 'UTC') FROM changed
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION nzc_emissions_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (kind, meter_id, hour)
    SELECT DISTINCT 'emissions', meter_id, date_trunc('hour', interval_start, 'UTC') FROM changed
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- Recompute every queued bucket and empty the queue; returns the number of (meter, hour) pairs
-- refreshed. Serialised by an advisory lock (two stream workers never refresh at once).
CREATE FUNCTION nzc_refresh_rollups() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m text[];
    h timestamptz[];
    n integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('nzc_refresh_rollups'));
    WITH d AS (DELETE FROM rollup_dirty WHERE kind = 'energy' RETURNING meter_id, hour)
    SELECT array_agg(meter_id), array_agg(hour) INTO m, h FROM d;
    IF m IS NOT NULL THEN
        PERFORM nzc_recompute_energy(m, h);
        n := n + cardinality(m);
    END IF;
    WITH d AS (DELETE FROM rollup_dirty WHERE kind = 'emissions' RETURNING meter_id, hour)
    SELECT array_agg(meter_id), array_agg(hour) INTO m, h FROM d;
    IF m IS NOT NULL THEN
        PERFORM nzc_recompute_emissions(m, h);
        n := n + cardinality(m);
    END IF;
    RETURN n;
END
$$;

GRANT SELECT, INSERT, DELETE ON rollup_dirty TO nzc_writer;
GRANT SELECT ON rollup_dirty TO nzc_reader;
