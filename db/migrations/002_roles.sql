-- Roles: the sink writes, dashboards and reviewers read; no superuser in running services.
-- No password here: the local launcher (nzc/services/postgres.py) creates the roles first
-- and sets generated passwords (<state>/secrets/pgpass, 0600); deployments set them from
-- their environment (`nzc db migrate` with NZC_DATABASE_URL / NZC_DATABASE_READER_URL).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nzc_writer') THEN
        CREATE ROLE nzc_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nzc_reader') THEN
        CREATE ROLE nzc_reader LOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO nzc_writer, nzc_reader;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO nzc_writer;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO nzc_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO nzc_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO nzc_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO nzc_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO nzc_reader;
