"""Migrations on the real PostgreSQL: applied once, recorded, roles enforced."""

from __future__ import annotations

import psycopg
import pytest

from core.settings import Settings
from db.migrate import apply_migrations, migration_files

pytestmark = pytest.mark.services


def test_migrations_are_recorded_and_idempotent(services: Settings) -> None:
    assert apply_migrations(services.database_admin_url) == []  # the session applied them
    with psycopg.connect(services.database_admin_url) as conn:
        done = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert done == [p.stem for p in migration_files()]


def test_reader_cannot_write_and_writer_cannot_drop(services: Settings) -> None:
    with psycopg.connect(services.database_reader_url) as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege
    ):
        conn.execute("DELETE FROM energy_intervals")
    with psycopg.connect(services.database_url) as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege
    ):
        conn.execute("DROP TABLE energy_intervals")
    with psycopg.connect(services.database_url) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False,)
