"""Bearer tokens and the ONE authorisation dependency every route uses (:class:`Need`).

Tokens are ``nzc_<key>_<secret>``: the key finds the user, the secret is checked against its
argon2id hash (argon2-cffi). Roles:

=================  ===========  ==========================================================
role               sites        may
=================  ===========  ==========================================================
admin              all          read, submit, enter bills and denominators, scan
reviewer           all          read, verify, return, accept/reject restatements, scan
site_manager       own          read, submit, enter bills and denominators
facility_staff     own          read, alerts
=================  ===========  ==========================================================

Verifying and accepting are the reviewers' alone (separation of duties: an admin who can
submit cannot also verify). A route's site comes from its ``site_id`` path parameter or, for
``restatement_id``, from the restatement's row; a site outside the caller's scope is refused
(403) before the route runs; list routes receive the caller's scope and filter by it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from db import review as dbr

ROLES = ("admin", "reviewer", "site_manager", "facility_staff")
ALL_SITES_ROLES = frozenset({"admin", "reviewer"})
#: action -> roles allowed to do it
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset(ROLES),
    "alerts": frozenset(ROLES),
    "submit": frozenset({"admin", "site_manager"}),
    "enter": frozenset({"admin", "site_manager"}),
    "verify": frozenset({"reviewer"}),
    "return": frozenset({"reviewer"}),
    "restate": frozenset({"reviewer"}),
    "scan": frozenset({"admin", "reviewer"}),
}
#: the web pages' session cookie (HttpOnly, SameSite=Strict): holds the same bearer token,
#: so that pages and API are authorised by the same dependency
SESSION_COOKIE = "nzc_session"
_hasher = PasswordHasher()
_bearer = HTTPBearer(auto_error=False, description="token from `nzc users add`")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: name, role, scope (``sites`` None = every site) and the
    site the route is about (when it has one)."""

    name: str
    role: str
    sites: list[str] | None
    site_id: str | None = None

    def can_see(self, site_id: str) -> bool:
        """Whether ``site_id`` is in the caller's scope."""
        return self.sites is None or site_id in self.sites


def new_token() -> tuple[str, str, str]:
    """A new token: (token shown once, key stored plain, argon2 hash of the secret)."""
    key = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"nzc_{key}_{secret}", key, _hasher.hash(secret)


def split_token(token: str) -> tuple[str, str] | None:
    """``nzc_<key>_<secret>`` -> (key, secret), or None when malformed."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "nzc" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class TokenCache:
    """Tokens whose argon2 check already passed in this process (by SHA-256 of the token,
    with the hash they matched), so that each request costs one indexed lookup; the user row
    is still read every time, so deleting a user takes effect at once."""

    def __init__(self) -> None:
        self._ok: dict[str, str] = {}
        self._lock = threading.Lock()

    def check(self, token: str, stored_hash: str, secret: str) -> tuple[bool, bool]:
        """(valid, first use in this process)."""
        fp = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            if self._ok.get(fp) == stored_hash:
                return True, False
        try:
            _hasher.verify(stored_hash, secret)
        except (VerificationError, InvalidHashError):
            return False, False
        with self._lock:
            self._ok[fp] = stored_hash
        return True, True


class Need:
    """``Depends(Need("submit"))``: authenticate the bearer token (or the web pages' session
    cookie holding one), check that the role may do
    the action and that the route's site is in the caller's scope. Every route uses it."""

    def __init__(self, action: str) -> None:
        if action not in PERMISSIONS:
            raise ValueError(f"unknown action {action!r}")
        self.action = action

    def __call__(
        self, request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        state = request.app.state
        unauthorized = HTTPException(
            401, "需要有效的令牌 / a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"})
        if credentials is not None and credentials.scheme.lower() == "bearer":
            token = credentials.credentials
        elif credentials is None and request.cookies.get(SESSION_COOKIE):
            token = request.cookies[SESSION_COOKIE]
        else:
            raise unauthorized
        parts = split_token(token)
        if parts is None:
            raise unauthorized
        with dbr.connect(state.database_url) as conn:
            user = dbr.user_by_key(conn, parts[0])
            if user is None:
                raise unauthorized
            ok, first = state.tokens.check(token, user["token_hash"], parts[1])
            if not ok:
                raise unauthorized
            if first:
                dbr.append_audit(conn, user["name"], "auth.login", details={
                    "role": user["role"], "client": request.client.host if request.client
                    else None})
            caller = Caller(user["name"], user["role"],
                            None if user["role"] in ALL_SITES_ROLES else list(user["sites"]))
            if user["role"] not in PERMISSIONS[self.action]:
                raise HTTPException(403, f"角色 {user['role']} 不能执行 {self.action} / role "
                                         f"{user['role']} may not {self.action}")
            site_id = request.path_params.get("site_id")
            rid = request.path_params.get("restatement_id")
            if site_id is None and rid is not None:
                try:
                    site_id = dbr.restatement_site(conn, int(rid))
                except ValueError:
                    site_id = None
                if site_id is None:
                    raise HTTPException(404, f"no restatement {rid}")
        if site_id is not None and not caller.can_see(str(site_id)):
            raise HTTPException(403, f"站点 {site_id} 不在您的范围内 / site {site_id} is not "
                                     "in your scope")
        return Caller(caller.name, caller.role, caller.sites,
                      str(site_id) if site_id is not None else None)
