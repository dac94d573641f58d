"""Keep the registry in the database without giving the pipeline's role write access to it.

The stream worker runs as ``nzc_writer``, which may read but not write the registry tables
(``db/migrations/008_least_privilege.sql``). At start it only checks that the newest stored
version of its registry file is the one it loaded; when it is not, the owner role stores it
(``settings.database_admin_url``: locally its password is in the state folder; a deployment
runs ``nzc db migrate`` or ``nzc registry load`` before the workers, so the check passes).
"""

from __future__ import annotations

import hashlib
import logging

import psycopg

from carbon.registry import Registry
from core.settings import Settings

log = logging.getLogger(__name__)


def stored_registry_sha256(database_url: str, source: str) -> str | None:
    """SHA-256 of the newest stored registry document of ``source``, or ``None``."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT sha256 FROM registry_versions WHERE source = %s"
                           " ORDER BY version_id DESC LIMIT 1", (source,)).fetchone()
    return None if row is None else str(row[0])


def ensure_registry_stored(settings: Settings, registry: Registry, source: str,
                           text: str) -> None:
    """Make sure the database holds ``registry`` (document ``text`` of file ``source``)."""
    from db.sink import sync_registry

    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if stored_registry_sha256(settings.database_url, source) == digest:
        return
    log.info("registry %s is not the stored version: storing it as the owner role", source)
    try:
        sync_registry(settings.database_admin_url, registry, source, text)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"registry {source} is not stored in the database and the owner role cannot "
            f"connect ({exc}); run `nzc registry load` with NZC_DATABASE_ADMIN_URL set") from exc
