"""Apply the SQL migrations in ``db/migrations`` in order, each once, recording them.

A migration file may start with directive comments (one per line, anywhere in the file):

``-- nzc:no-transaction``
    Run the file statement by statement in autocommit mode instead of in one transaction.
    Needed for statements PostgreSQL or TimescaleDB refuse inside a transaction block
    (``CALL refresh_continuous_aggregate``, ``CREATE INDEX CONCURRENTLY``). Such a file is
    not atomic: write every statement so that a re-run after a failure completes it
    (``IF NOT EXISTS``, ``if_not_exists => true``); it is recorded only once all succeeded.
``-- nzc:if-extension NAME`` / ``-- nzc:unless-extension NAME``
    Apply the file only if the extension ``NAME`` is (is not) installed in the database when
    the file's turn comes. A file skipped this way is recorded too, with the reason in
    ``schema_migrations.note``, and is never reconsidered (a database does not change path).

This is how one set of migrations serves both storage paths: TimescaleDB (continuous
aggregates, compression, retention) and plain PostgreSQL (rollup tables kept by triggers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_DIRECTIVE = re.compile(r"^--\s*nzc:(?P<name>[a-z-]+)(?:[ \t]+(?P<arg>\S+))?[ \t]*$", re.M)
_KNOWN = {"no-transaction": False, "if-extension": True, "unless-extension": True}


class MigrationError(RuntimeError):
    """A migration file that cannot be applied as written (bad directive, failed statement)."""


@dataclass(frozen=True)
class Directives:
    """What the ``-- nzc:`` comments of one migration file ask for."""

    transaction: bool = True
    if_extension: str | None = None
    unless_extension: str | None = None


def migration_files() -> list[Path]:
    """The migration files, in the order they apply (by file name)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def parse_directives(sql: str, source: str = "<sql>") -> Directives:
    """The ``-- nzc:`` directives of a migration's text; unknown ones are errors (a typo
    must not silently run a file in the wrong mode)."""
    transaction = True
    if_ext: str | None = None
    unless_ext: str | None = None
    for m in _DIRECTIVE.finditer(sql):
        name, arg = m.group("name"), m.group("arg")
        if name not in _KNOWN:
            raise MigrationError(
                f"{source}: unknown directive '-- nzc:{name}'; known: "
                + ", ".join(f"nzc:{k}" for k in _KNOWN)
            )
        if _KNOWN[name] != (arg is not None):
            need = "an extension name" if _KNOWN[name] else "no argument"
            raise MigrationError(f"{source}: '-- nzc:{name}' takes {need}, got {arg!r}")
        if name == "no-transaction":
            transaction = False
        elif name == "if-extension":
            if_ext = arg
        else:
            unless_ext = arg
    return Directives(transaction, if_ext, unless_ext)


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements at top-level semicolons.

    Knows what may contain a semicolon without ending a statement: ``--`` and (nested)
    ``/* */`` comments, ``'...'`` strings (``''`` inside; ``E'...'`` with backslash escapes),
    ``"..."`` identifiers and ``$tag$...$tag$`` dollar quotes. Comments before a statement
    and statements that are only comments or blank are dropped.
    """
    out: list[str] = []
    start = i = 0  # start: where the current statement's first meaningful character is
    n = len(sql)
    meaningful = False  # the current statement holds something besides comments/blanks

    def flush(end: int) -> None:
        nonlocal meaningful
        if meaningful:
            out.append(sql[start:end].strip())
        meaningful = False

    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "/" and sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            if depth:
                raise MigrationError("unterminated /* comment")
            continue
        if c == ";":
            flush(i)
            i += 1
            continue
        if not c.isspace() and not meaningful:
            meaningful, start = True, i
        if c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _ident_char(sql[i - 2]))
            i += 1
            while True:
                if i >= n:
                    raise MigrationError("unterminated string literal")
                if escapes and sql[i] == "\\":
                    i += 2
                    continue
                if sql[i] == "'":
                    if sql.startswith("''", i):
                        i += 2
                        continue
                    i += 1
                    break
                i += 1
            continue
        if c == '"':
            j = sql.find('"', i + 1)
            while j >= 0 and sql.startswith('""', j):
                j = sql.find('"', j + 2)
            if j < 0:
                raise MigrationError("unterminated quoted identifier")
            i = j + 1
            continue
        if c == "$" and not (i > 0 and _ident_char(sql[i - 1])):
            m = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$").match(sql, i)
            if m:
                tag = m.group(0)
                j = sql.find(tag, m.end())
                if j < 0:
                    raise MigrationError(f"unterminated dollar quote {tag}")
                i = j + len(tag)
                continue
        i += 1
    flush(n)
    return out


def _ident_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _has_extension(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (name,)).fetchone()
    return row is not None


def has_timescaledb(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether the ``timescaledb`` extension is installed in the connected database."""
    return _has_extension(conn, "timescaledb")


def _skip_reason(conn: psycopg.Connection[tuple[object, ...]], d: Directives) -> str | None:
    if d.if_extension is not None and not _has_extension(conn, d.if_extension):
        return f"skipped: extension {d.if_extension} not installed"
    if d.unless_extension is not None and _has_extension(conn, d.unless_extension):
        return f"skipped: extension {d.unless_extension} installed"
    return None


def apply_migrations(admin_url: str) -> list[str]:
    """Apply every migration not yet recorded in ``schema_migrations``; return those applied
    (skipped ones included: they are recorded with the reason in ``note``).

    Each file runs in its own transaction together with its record, so a failed migration
    leaves nothing half-applied; files marked ``-- nzc:no-transaction`` run statement by
    statement (see the module docstring).
    """
    applied: list[str] = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS note text")
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        for path in migration_files():
            if path.stem in done:
                continue
            sql = path.read_text(encoding="utf-8")
            directives = parse_directives(sql, path.name)
            note = _skip_reason(conn, directives)
            record = "INSERT INTO schema_migrations (version, note) VALUES (%s, %s)"
            if note is not None:
                conn.execute(record, (path.stem, note))
            elif directives.transaction:
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(record, (path.stem, None))
            else:
                for k, statement in enumerate(split_statements(sql), 1):
                    try:
                        conn.execute(statement)
                    except psycopg.Error as exc:
                        raise MigrationError(
                            f"{path.name}: statement {k} failed ({exc}); the statements "
                            f"before it are committed, fix and re-run:\n{statement}"
                        ) from exc
                conn.execute(record, (path.stem, "no-transaction"))
            applied.append(path.stem)
    return applied


# Rollups in refresh order: a daily rollup is computed from the hourly one, a monthly one from
# the daily one (TimescaleDB hierarchical continuous aggregates; the plain path's triggers
# follow the same order).
ROLLUPS = (
    "energy_hourly",
    "emissions_hourly",
    "energy_daily",
    "emissions_daily",
    "energy_monthly",
    "emissions_monthly",
)


def refresh_rollups(admin_url: str, start: datetime, end: datetime) -> str:
    """Bring every rollup up to date with the raw intervals between ``start`` and ``end``
    (timezone-aware) after a correction the automatic path does not cover; return which path
    ran.

    TimescaleDB: ``CALL refresh_continuous_aggregate`` for each rollup in order, over the
    window widened to whole local (Asia/Shanghai) months, since a refresh only recomputes
    buckets that lie entirely inside its window. Needed for corrections older than the
    refresh policies' window (35 days) or when a policy has not run yet. Plain PostgreSQL:
    ``nzc_rebuild_rollups(start, end)`` recomputes the rollup tables over whole local months
    (the triggers already keep them current after every upsert; this repairs rows edited by
    hand, e.g. raw rows deleted).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"start={start!r}, end={end!r}: timezone-aware datetimes required")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT date_trunc('month', %(s)s::timestamptz, 'Asia/Shanghai'),"
            " (date_trunc('month', %(e)s::timestamptz - interval '1 microsecond',"
            "   'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai' + interval '1 month')"
            "   AT TIME ZONE 'Asia/Shanghai'",
            {"s": start, "e": end},
        ).fetchone()
        assert row is not None
        lo, hi = row
        if has_timescaledb(conn):
            for view in ROLLUPS:
                conn.execute(
                    "CALL refresh_continuous_aggregate(%s::regclass, %s::timestamptz,"
                    " %s::timestamptz)",
                    (view, lo, hi),
                )
            return "timescaledb"
        conn.execute("SELECT nzc_rebuild_rollups(%s, %s)", (lo, hi))
        return "plain"
