#!/bin/sh
# Runs once, when the TimescaleDB container initialises an empty data volume
# (/docker-entrypoint-initdb.d): creates the sink's and the readers' roles with the passwords
# from .env (SCRAM-SHA-256), so that migration 002 finds them and keeps them.
set -eu
psql -v ON_ERROR_STOP=1 --username postgres --dbname nzc \
     -v writer_pw="$NZC_PG_WRITER_PASSWORD" -v reader_pw="$NZC_PG_READER_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE nzc_writer LOGIN PASSWORD :'writer_pw';
CREATE ROLE nzc_reader LOGIN PASSWORD :'reader_pw';
SQL
