"""Role passwords for deployments: ``nzc db migrate`` sets the password of each role whose
URL carries one (``NZC_DATABASE_URL``, ``NZC_DATABASE_READER_URL`` from the environment), so
that a deployment keeps its secrets in its environment only and never in a migration.

Only the SCRAM-SHA-256 verifier, computed by libpq on this side, is sent to the server
(``ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$4096:...'``): no clear password in a statement or
in the server's log. The local launcher sets its generated passwords itself
(:mod:`nzc.services.postgres`).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql


def url_credentials(url: str) -> tuple[str, str] | None:
    """(user, password) written in ``url``, or ``None`` when it has no password."""
    parts = urlsplit(url)
    if parts.username is None or parts.password is None:
        return None
    return unquote(parts.username), unquote(parts.password)


def set_role_passwords(admin_url: str, urls: list[str]) -> list[str]:
    """For each URL with a user and password, set that role's password (the role must
    exist: ``db/migrations/002_roles.sql``); return the roles changed."""
    creds = [c for c in (url_credentials(u) for u in urls) if c is not None]
    if not creds:
        return []
    done = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for user, password in creds:
            verifier = conn.pgconn.encrypt_password(
                password.encode(), user.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(verifier)))
            done.append(user)
    return done
