"""Secrets kept in the state folder: generated passwords, files readable only by their owner.

Layout below ``<state>/secrets/`` (folder mode 0700, every file 0600):

``pgpass``
    PostgreSQL passwords in libpq's own `pgpass` format (``host:port:database:user:password``,
    here ``*:*:*:<role>:<password>``), generated at the first ``nzc services up``.
    :class:`core.settings.Settings` adds them to the database URLs that name a user without a
    password, so code keeps using ``settings.database_url``; ``PGPASSFILE=<that file> psql
    postgresql://nzc_reader@127.0.0.1:15432/nzc`` works for people.
``mqtt.json``
    MQTT identities (gateways, the ingest bridge, the health probe) with their passwords and
    allowed topics (:mod:`core.mqtt_identities`); the simulator publishes as each gateway from it.

Deployments pass secrets in environment variables instead (``NZC_DATABASE_URL`` with a
password, ``NZC_MQTT_PASSWORD``); then nothing here is read. Nothing in this module logs or
prints a secret.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

PASSWORD_BYTES = 24  # -> 32 URL-safe characters, 192 bits


class SecretFileError(RuntimeError):
    """A secret file is unreadable, malformed or open to other users."""


def new_password() -> str:
    """A random password of 32 URL-safe characters (``secrets.token_urlsafe``, 192 bits): no
    ``:`` or ``\\`` (pgpass), no ``@``/``/`` (URLs), nothing a shell would expand."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (its folder made 0700 if new)."""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_private(path: Path) -> None:
    """Raise :class:`SecretFileError` when ``path`` can be read or written by group/others."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretFileError(
            f"{path} has mode {mode:04o}; secret files must be 0600 (chmod 600 {path})")


# --- pgpass -----------------------------------------------------------------------------


def _pgpass_fields(line: str) -> list[str]:
    """Split one pgpass line at unescaped ``:`` (``\\:`` and ``\\\\`` are escapes)."""
    fields, cur, i = [], [], 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            i += 2
            continue
        if c == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    return fields


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


_PGPASS_CACHE: dict[Path, tuple[tuple[int, int], list[list[str]]]] = {}


def _pgpass_entries(path: Path) -> list[list[str]]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return []
    key = (st.st_mtime_ns, st.st_size)
    cached = _PGPASS_CACHE.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    entries = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = _pgpass_fields(raw)
        if len(fields) == 5:
            entries.append(fields)
    _PGPASS_CACHE[path] = (key, entries)
    return entries


def pgpass_lookup(path: Path, user: str, host: str = "*", port: str = "*",
                  database: str = "*") -> str | None:
    """The password for ``user`` in the pgpass file at ``path`` (first matching line, ``*``
    matches anything, as libpq does), or ``None``."""
    for h, p, d, u, pw in _pgpass_entries(path):
        if (u in ("*", user) and h in ("*", host) and p in ("*", port)
                and d in ("*", database)):
            return pw
    return None


def read_pgpass_users(path: Path) -> dict[str, str]:
    """``{user: password}`` of the wildcard lines (``*:*:*:user:password``) in ``path``."""
    return {u: pw for h, p, d, u, pw in _pgpass_entries(path) if (h, p, d) == ("*", "*", "*")}


def write_pgpass(path: Path, passwords: dict[str, str]) -> None:
    """Write ``{role: password}`` as wildcard pgpass lines, mode 0600."""
    lines = ["# PostgreSQL passwords of the local services (core/secret_store.py); mode 0600."]
    lines += [f"*:*:*:{_pgpass_escape(u)}:{_pgpass_escape(pw)}"
              for u, pw in sorted(passwords.items())]
    write_private(path, "\n".join(lines) + "\n")
    _PGPASS_CACHE.pop(path, None)


def url_with_password(url: str, passfile: Path) -> str:
    """``url`` (``postgresql://user@host:port/db``) with the user's password from
    ``passfile`` inserted, when the URL names a user, carries no password, and the file has
    one; otherwise ``url`` unchanged."""
    parts = urlsplit(url)
    if parts.username is None or parts.password is not None or "@" not in parts.netloc:
        return url
    user = unquote(parts.username)
    password = pgpass_lookup(passfile, user, parts.hostname or "*",
                             str(parts.port) if parts.port else "*",
                             parts.path.lstrip("/") or "*")
    if password is None:
        return url
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    netloc = f"{userinfo}:{quote(password, safe='')}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages people read)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{hostport}", parts.path, parts.query,
                       parts.fragment))


# --- MQTT credentials file -----------------------------------------------------------------


def read_json_secret(path: Path) -> dict[str, Any]:
    """The JSON object in the secret file ``path`` (``{}`` when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SecretFileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise SecretFileError(f"{path}: expected a JSON object")
    return doc


def stored_mqtt_password(path: Path, username: str) -> str | None:
    """The password stored for MQTT user ``username`` in ``path``, or ``None``."""
    user = read_json_secret(path).get("users", {}).get(username)
    if isinstance(user, dict) and isinstance(user.get("password"), str):
        return str(user["password"])
    return None
