"""``nzc gateways``: MQTT identities of the registry's gateways.

    nzc gateways list                          users and the topics each may publish / read
    nzc gateways credentials                   passwords for new gateways (printed once)
    nzc gateways credentials --rotate S/GW     a new password for gateway GW of site S
    nzc gateways credentials --rotate-all      new passwords for every gateway

Credentials, the broker's password file and its ACL follow the registry (``NZC_REGISTRY``);
a running local broker reloads them (SIGHUP). A password is shown only when it is created.
"""

from __future__ import annotations

import argparse
import sys

from core.settings import Settings


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nzc gateways`` to the ``nzc`` command line."""
    gw = sub.add_parser("gateways", help="MQTT users, passwords and ACLs of the gateways")
    gw.add_argument("action", choices=["list", "credentials"])
    gw.add_argument("--rotate", action="append", default=[], metavar="SITE/GATEWAY",
                    help="give this MQTT user a new password (repeatable)")
    gw.add_argument("--rotate-all", action="store_true",
                    help="new passwords for every gateway (not the service users)")


def refresh_broker(settings: Settings, rotate: list[str] | None = None) -> None:
    """Sync MQTT users and ACL with the registry and reload a running broker."""
    from nzc.services.mosquitto import Mosquitto

    Mosquitto(settings).sync_auth(rotate)


def take_unshown(settings: Settings) -> dict[str, str]:
    """Gateway passwords never shown yet (new or rotated, also those the launcher made),
    marked as shown: each is returned exactly once. Service users' passwords (ingest,
    health probe) stay in the store and are never shown."""
    from core.mqtt_identities import load_store, save_store

    store = load_store(settings.mqtt_credentials_path)
    out = {name: str(e["password"]) for name, e in store.users.items()
           if not e.get("shown") and e.get("role") == "gateway"}
    if out:
        for name in out:
            store.users[name]["shown"] = True
        save_store(settings.mqtt_credentials_path, store)
    return out


def dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    """Run ``nzc gateways ...``; ``None`` when ``args`` is another command."""
    if args.cmd != "gateways":
        return None
    from core.mqtt_identities import IdentityError, all_identities
    from core.registry_yaml import load_registry
    from nzc.services import ServiceError

    try:
        idents = all_identities(load_registry(settings.registry_path), settings.mqtt_username,
                                settings.mqtt_subscriptions)
        if args.action == "list":
            for i in idents:
                where = f" (site {i.site_id}, gateway {i.gateway_id})" if i.site_id else ""
                print(f"{i.username}  [{i.role}]{where}")
                for t in i.publish:
                    print(f"    publish   {t}")
                for t in i.subscribe:
                    print(f"    subscribe {t}")
            return 0
        rotate = list(args.rotate)
        if args.rotate_all:
            rotate += [i.username for i in idents if i.role == "gateway"]
        refresh_broker(settings, rotate)
        new = take_unshown(settings)
    except (IdentityError, ServiceError, ValueError) as exc:
        print(f"nzc gateways: error: {exc}", file=sys.stderr)
        return 1
    if new:
        print("新密码只显示这一次 / New MQTT passwords, shown only this once "
              "(give each to its gateway's installer):")
        for user, password in sorted(new.items()):
            print(f"  {user}  {password}")
    else:
        print("没有新密码 / No new passwords: every gateway already has one "
              "(--rotate SITE/GATEWAY for a new one).")
    print(f"Stored in {settings.mqtt_credentials_path} (mode 0600); broker users and ACL "
          "updated from the registry.")
    return 0
