"""MQTT identities and access rules generated from the site registry.

Every gateway of the registry (a ``gateway:`` of a site's meters) gets its own MQTT user,
``<site>/<gateway>``, allowed to publish only to the topics of its own meters:

=================  ========================================================================
format             topics a gateway may publish (write)
=================  ========================================================================
``nzc`` (ours)     ``nzc/v1/<site>/<gateway>/readings``
``tasmota``        ``tele/<device>/SENSOR``
``shelly_gen1``    ``shellies/<id>/emeter/#``
``shelly_gen2``    ``<id>/events/rpc``
``zigbee2mqtt``    ``zigbee2mqtt/<friendly name>``
``neuron``         ``/neuron/+/<node>/#`` (Neuron >= 2.4 upload topics of its south node)
``sparkplug``      ``spBv1.0/<group>/+/<node>/#`` (node and device messages of its node)
=================  ========================================================================

and to read only what its protocol needs (Sparkplug B edge nodes: their own ``NCMD``/``DCMD``
topics and the primary host's ``STATE``; nothing for the others). The ingest bridge,
``nzc-ingest``, may read exactly its subscriptions (``NZC_MQTT_SUBSCRIPTIONS``) and write
nothing; the health probe, ``nzc-health``, may read and write ``nzc/health/#`` only; the alert
receiver, ``nzc-alerts``, may read and write ``nzc/v1/alerts[/#]`` only.

Passwords are Mosquitto's PBKDF2-SHA512 hashes (``$7$`` format of ``mosquitto_passwd``,
Mosquitto >= 2.0); the clear passwords live only in ``<state>/secrets/mqtt.json`` (0600),
for the local simulator and the ingest bridge. Everything here is pure apart from
:func:`load_store` / :func:`save_store`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carbon.registry import DeviceSource, Registry

INGEST_USER = "nzc-ingest"
HEALTH_USER = "nzc-health"
HEALTH_TOPICS = ("nzc/health/#",)
# The alert receiver (alerts/channels.py) publishes alert messages for facility systems.
ALERTS_USER = "nzc-alerts"
ALERTS_TOPICS = ("nzc/v1/alerts", "nzc/v1/alerts/#")
# Mosquitto's own password hash (mosquitto_passwd, src/password_mosq.c): PBKDF2 with
# HMAC-SHA512, 101 iterations, 12 bytes of salt, base64 fields: $7$<iterations>$<salt>$<hash>
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
_FORBIDDEN = set("+#\n\r\0")


class IdentityError(ValueError):
    """A registry entry that cannot become an MQTT user or a topic rule."""


@dataclass(frozen=True)
class Identity:
    """One MQTT user and the topic filters it may publish to and subscribe to."""

    username: str
    role: str  # "gateway", "ingest", "health" or "alerts"
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    site_id: str | None = None
    gateway_id: str | None = None


def gateway_username(site_id: str, gateway_id: str) -> str:
    """The MQTT user of gateway ``gateway_id`` of site ``site_id``."""
    return f"{site_id}/{gateway_id}"


def _level(value: str, what: str) -> str:
    """``value`` as (part of) a topic in an ACL rule: no wildcards, no line breaks."""
    if not value or _FORBIDDEN & set(value):
        raise IdentityError(f"{what} {value!r} cannot be used in an MQTT topic rule "
                            "(empty, or contains + # or a line break)")
    return value


def device_rules(source: DeviceSource) -> tuple[list[str], list[str]]:
    """(publish, subscribe) topic filters of the device behind ``source``."""
    fmt, dev = source.format, source.device
    if fmt == "nzc":
        return [], []
    if fmt == "tasmota":
        return [f"tele/{_level(dev, 'Tasmota topic')}/SENSOR"], []
    if fmt == "shelly_gen1":
        return [f"shellies/{_level(dev, 'Shelly id')}/emeter/#"], []
    if fmt == "shelly_gen2":
        return [f"{_level(dev, 'Shelly topic prefix')}/events/rpc"], []
    if fmt == "zigbee2mqtt":
        return [f"zigbee2mqtt/{_level(dev, 'Zigbee2MQTT friendly name')}"], []
    if fmt == "neuron":
        node = dev.split("/", 1)[0]
        return [f"/neuron/+/{_level(node, 'Neuron node')}/#"], []
    if fmt == "sparkplug":
        parts = dev.split("/")
        if len(parts) < 2:
            raise IdentityError(f"Sparkplug device {dev!r} is not <group>/<node>[/<device>]")
        group, node = _level(parts[0], "Sparkplug group"), _level(parts[1], "Sparkplug node")
        # "<node>/#" also matches "<node>" itself (MQTT 3.1.1 4.7.1.2): N* and D* messages
        return ([f"spBv1.0/{group}/+/{node}/#"],
                [f"spBv1.0/{group}/NCMD/{node}", f"spBv1.0/{group}/DCMD/{node}/#",
                 "spBv1.0/STATE/+"])
    raise IdentityError(f"device format {fmt!r} has no MQTT topic rule")


def gateway_identities(registry: Registry) -> list[Identity]:
    """One identity per (site, gateway) of ``registry``, sorted by user name."""
    pub: dict[tuple[str, str], list[str]] = {}
    sub: dict[tuple[str, str], list[str]] = {}
    for meter in registry.meters.values():
        site = _level(meter.site_id, "site id")
        gw = _level(meter.gateway_id, "gateway id")
        if "/" in site + gw or ":" in site + gw:
            raise IdentityError(f"site {site!r} / gateway {gw!r}: ids used in MQTT user names "
                                "and topics may not contain '/' or ':'")
        p = pub.setdefault((site, gw), [])
        s = sub.setdefault((site, gw), [])
        if meter.source is None or meter.source.format == "nzc":
            p.append(f"nzc/v1/{site}/{gw}/readings")
        if meter.source is not None:
            dp, ds = device_rules(meter.source)
            p.extend(dp)
            s.extend(ds)
    out = [Identity(gateway_username(site, gw), "gateway", tuple(dict.fromkeys(topics)),
                    tuple(dict.fromkeys(sub[(site, gw)])), site, gw)
           for (site, gw), topics in pub.items()]
    return sorted(out, key=lambda i: i.username)


def all_identities(registry: Registry, ingest_user: str,
                   ingest_subscriptions: Iterable[str]) -> list[Identity]:
    """The ingest bridge, the health probe, the alert receiver and every gateway of
    ``registry``."""
    subs = tuple(ingest_subscriptions)
    for t in subs:
        if "\n" in t or not t:
            raise IdentityError(f"ingest subscription {t!r} cannot be an ACL rule")
    gateways = gateway_identities(registry)
    fixed = [Identity(ingest_user, "ingest", (), subs),
             Identity(HEALTH_USER, "health", HEALTH_TOPICS, HEALTH_TOPICS),
             Identity(ALERTS_USER, "alerts", ALERTS_TOPICS, ALERTS_TOPICS)]
    names = {i.username for i in fixed}
    clash = [g.username for g in gateways if g.username in names]
    if clash:
        raise IdentityError(f"gateway user {clash[0]!r} has the name of a service user")
    return fixed + gateways


def render_acl(identities: Iterable[Identity]) -> str:
    """Mosquitto ``acl_file`` text: a ``user`` block per identity with ``topic write`` /
    ``topic read`` lines (``readwrite`` where a filter is in both lists). Nothing is allowed
    to anonymous clients (there are none: ``allow_anonymous false``)."""
    lines = ["# Generated by nzc (core/mqtt_identities.py) from the site registry; edits are "
             "overwritten.", "# Anything not listed is denied."]
    for ident in identities:
        lines += ["", f"# {ident.role}" + (f": site {ident.site_id}, gateway {ident.gateway_id}"
                                           if ident.site_id else ""),
                  f"user {ident.username}"]
        both = set(ident.publish) & set(ident.subscribe)
        lines += [f"topic readwrite {t}" for t in ident.publish if t in both]
        lines += [f"topic write {t}" for t in ident.publish if t not in both]
        lines += [f"topic read {t}" for t in ident.subscribe if t not in both]
    return "\n".join(lines) + "\n"


def mosquitto_hash(password: str, salt: bytes | None = None,
                   iterations: int = PBKDF2_ITERATIONS) -> str:
    """``password`` hashed as ``mosquitto_passwd`` does (``$7$``: PBKDF2-HMAC-SHA512)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def verify_mosquitto_hash(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash of a Mosquitto password file."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("not a Mosquitto $7$ (PBKDF2-SHA512) hash")
    salt = base64.b64decode(parts[3])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
    return hmac.compare_digest(digest, base64.b64decode(parts[4]))


def render_password_file(passwords: Mapping[str, str]) -> str:
    """Mosquitto ``password_file`` text (``user:$7$...`` lines) for ``{user: password}``."""
    for user in passwords:
        if ":" in user or "\n" in user or not user:
            raise IdentityError(f"MQTT user name {user!r} cannot go in a password file")
    return "".join(f"{u}:{mosquitto_hash(pw)}\n" for u, pw in sorted(passwords.items()))


# --- the credential store (<state>/secrets/mqtt.json) ------------------------------------


@dataclass
class Store:
    """The MQTT identities with their clear passwords (a 0600 file)."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    def password(self, username: str) -> str | None:
        """The stored password of ``username``."""
        entry = self.users.get(username)
        return None if entry is None else str(entry["password"])


def load_store(path: Path) -> Store:
    """The store at ``path`` (empty if missing)."""
    from core.secret_store import read_json_secret

    doc = read_json_secret(path)
    users = doc.get("users", {})
    if not isinstance(users, dict):
        raise IdentityError(f"{path}: 'users' must be an object")
    return Store(users)


def save_store(path: Path, store: Store) -> None:
    """Write the store with mode 0600."""
    from core.secret_store import write_private

    write_private(path, json.dumps({"users": store.users}, indent=1, sort_keys=True) + "\n")


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_store` changed: new passwords (to print once), removed users, and
    whether any rule or password changed (the broker must reload)."""

    new_passwords: dict[str, str]
    removed: list[str]
    changed: bool


def sync_store(store: Store, identities: list[Identity],
               rotate: Iterable[str] = ()) -> SyncResult:
    """Bring ``store`` to ``identities``: a password for each new user and for each user in
    ``rotate``, rules updated, users no longer in the registry removed."""
    from core.secret_store import new_password

    rotate_set = set(rotate)
    wanted = {i.username: i for i in identities}
    unknown = rotate_set - wanted.keys()
    if unknown:
        raise IdentityError(f"no MQTT user {sorted(unknown)[0]!r}; known users: "
                            + ", ".join(sorted(wanted)))
    new: dict[str, str] = {}
    changed = False
    removed = sorted(set(store.users) - wanted.keys())
    for name in removed:
        del store.users[name]
        changed = True
    for name, ident in wanted.items():
        entry = store.users.get(name)
        rules = {"role": ident.role, "publish": list(ident.publish),
                 "subscribe": list(ident.subscribe), "site": ident.site_id,
                 "gateway": ident.gateway_id}
        if entry is None or name in rotate_set:
            new[name] = new_password()
            store.users[name] = {**rules, "password": new[name], "shown": False}
            changed = True
        elif {k: entry.get(k) for k in rules} != rules:
            store.users[name] = {**entry, **rules}
            changed = True
    return SyncResult(new, removed, changed)
