"""Apply the SQL migrations in ``db/migrations`` in order, each once, recording them."""

from __future__ import annotations

from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def migration_files() -> list[Path]:
    """The migration files, in the order they apply (by file name)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def apply_migrations(admin_url: str) -> list[str]:
    """Apply every migration not yet recorded in ``schema_migrations``; return those applied.

    Each file runs in its own transaction together with its record, so a failed migration
    leaves nothing half-applied.
    """
    applied: list[str] = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for path in migration_files():
            if path.stem in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text(encoding="utf-8"))
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
            applied.append(path.stem)
    return applied
