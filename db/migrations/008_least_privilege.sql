-- Least privilege for the application roles (issue 9).
--
-- nzc_writer (the sink, recompute) writes only what the pipeline produces: readings,
-- energy_intervals, emission_intervals, dead_letters, recompute_audit and the plain rollup
-- tables its triggers maintain. The registry and what people enter (sites, meters,
-- registry_versions, denominators, instruments, site_targets) are written by the migration
-- role (`nzc db migrate`, `nzc registry load`) only; the writer may read them.
-- nzc_reader reads and never writes.
--
-- Rule for later migrations (007-012 and on): a new table gives nzc_writer and nzc_reader
-- SELECT by default (below); grant INSERT/UPDATE (DELETE) to nzc_writer explicitly, in the
-- same migration, on exactly the tables the pipeline writes.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE
    ON sites, meters, registry_versions, denominators, instruments, site_targets,
       schema_migrations
    FROM nzc_writer;
DO $$
BEGIN
    IF to_regclass('storage_policies') IS NOT NULL THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON storage_policies FROM nzc_writer;
    END IF;
END
$$;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON ALL TABLES IN SCHEMA public FROM nzc_reader;
REVOKE CREATE ON SCHEMA public FROM PUBLIC, nzc_writer, nzc_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE INSERT, UPDATE ON TABLES FROM nzc_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO nzc_writer, nzc_reader;
