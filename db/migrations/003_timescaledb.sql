-- Where the timescaledb extension is available, the time-series tables become hypertables.
-- On plain PostgreSQL this migration does nothing and every table keeps its shape, so every
-- reader queries one schema either way. (Continuous aggregates, compression and retention:
-- see the TimescaleDB storage issue.)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('readings', 'ts',
            chunk_time_interval => interval '7 days', migrate_data => true,
            if_not_exists => true);
        PERFORM create_hypertable('energy_intervals', 'interval_start',
            chunk_time_interval => interval '30 days', migrate_data => true,
            if_not_exists => true);
        PERFORM create_hypertable('emission_intervals', 'interval_start',
            chunk_time_interval => interval '30 days', migrate_data => true,
            if_not_exists => true);
    END IF;
END
$$;
