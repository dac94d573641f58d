"""The migration runner's directives and statement splitter (no database needed): what lets
one set of migrations take the TimescaleDB path or the plain-PostgreSQL path."""

from __future__ import annotations

import pytest

from db.migrate import (
    Directives,
    MigrationError,
    migration_files,
    parse_directives,
    split_statements,
)


def test_split_keeps_semicolons_inside_quotes_comments_and_bodies() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE "odd;name" (a text DEFAULT 'x;''y');
    /* block; /* nested; */ still comment; */
    SELECT E'it\\'s; fine', $$ body; $$, $tag$ more; $x$ ; $tag$;
    CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$
    BEGIN
        RETURN 1; -- inner;
    END
    $fn$;
    -- only a comment at the end;
    """
    out = split_statements(sql)
    assert out == [
        """CREATE TABLE "odd;name" (a text DEFAULT 'x;''y')""",
        """SELECT E'it\\'s; fine', $$ body; $$, $tag$ more; $x$ ; $tag$""",
        """CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$
    BEGIN
        RETURN 1; -- inner;
    END
    $fn$""",
    ]


def test_split_without_final_semicolon_and_parameters_like_dollar() -> None:
    assert split_statements("SELECT $1::int; SELECT a$b FROM t") == ["SELECT $1::int",
                                                                     "SELECT a$b FROM t"]


@pytest.mark.parametrize("bad", ["SELECT 'open", "SELECT $$ open", 'SELECT "open',
                                 "/* open"])
def test_split_refuses_unterminated_text(bad: str) -> None:
    with pytest.raises(MigrationError):
        split_statements(bad)


def test_directives() -> None:
    assert parse_directives("SELECT 1;") == Directives()
    assert parse_directives("-- nzc:no-transaction\n-- nzc:if-extension timescaledb\n") == \
        Directives(transaction=False, if_extension="timescaledb")
    assert parse_directives("--nzc:unless-extension timescaledb") == \
        Directives(unless_extension="timescaledb")
    with pytest.raises(MigrationError, match="unknown directive"):
        parse_directives("-- nzc:no-transactions")
    with pytest.raises(MigrationError, match="takes an extension name"):
        parse_directives("-- nzc:if-extension")
    with pytest.raises(MigrationError, match="takes no argument"):
        parse_directives("-- nzc:no-transaction please")


def test_the_storage_migrations_declare_their_path() -> None:
    files = {p.stem: p.read_text(encoding="utf-8") for p in migration_files()}
    assert parse_directives(files["004_rollups_plain"]) == \
        Directives(unless_extension="timescaledb")
    assert parse_directives(files["005_rollups_timescaledb"]) == \
        Directives(transaction=False, if_extension="timescaledb")
    assert parse_directives(files["006_site_rollups"]) == Directives()
    statements = split_statements(files["005_rollups_timescaledb"])
    kinds = [" ".join(s.split()[:3]) for s in statements]
    assert kinds.count("CREATE MATERIALIZED VIEW") == 6
    assert sum(k.startswith("CALL refresh_continuous_aggregate") for k in kinds) == 6
    # every continuous aggregate can be re-run after a failure half-way
    assert all("IF NOT EXISTS" in s for s in statements if s.startswith("CREATE MATERIALIZED"))
    assert all("if_not_exists => true" in s for s in statements
               if "add_continuous_aggregate_policy" in s)
