"""``nzc`` subcommands of the reviewers' close (issue 12):

    nzc users add NAME --role ROLE [--site S ...]   create an API user, print its token once
    nzc users delete NAME | list
    nzc bills import FILE [--by NAME]                CSV: site_id,month,carrier,quantity,unit
    nzc audit verify | show [--site S]               hash chain and snapshots intact?
    nzc review show --site S --month YYYY-MM         figures with quality and the checks
    nzc review scan --site S                         open restatements for changed frozen months
    nzc review disclosure --site S --year Y          annual disclosure (verified months only)
    nzc api [--port P]                               the HTTP API (uvicorn, loopback)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nzc.settings import Settings

COMMANDS = ("users", "bills", "audit", "review", "api")


def add_parsers(sub: Any) -> None:
    """Add this module's subcommands to the ``nzc`` parser."""
    users = sub.add_parser("users", help="API users and their bearer tokens")
    users.add_argument("action", choices=["add", "delete", "list"])
    users.add_argument("name", nargs="?")
    users.add_argument("--role", choices=["admin", "reviewer", "site_manager",
                                          "facility_staff"])
    users.add_argument("--site", action="append", default=[], help="repeat for several")
    bills = sub.add_parser("bills", help="utility bills")
    bills.add_argument("action", choices=["import"])
    bills.add_argument("file", type=Path)
    bills.add_argument("--by", default="cli", help="who entered them (audit log)")
    audit = sub.add_parser("audit", help="the append-only audit log")
    audit.add_argument("action", choices=["verify", "show"])
    audit.add_argument("--site")
    audit.add_argument("--limit", type=int, default=50)
    review = sub.add_parser("review", help="monthly close for reviewers")
    review.add_argument("action", choices=["show", "scan", "disclosure"])
    review.add_argument("--site", required=True)
    review.add_argument("--month", help="YYYY-MM")
    review.add_argument("--year", type=int)
    review.add_argument("--json", action="store_true")
    api = sub.add_parser("api", help="run the HTTP API on loopback (NZC_API_PORT)")
    api.add_argument("--port", type=int)


def dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    """Run the command if it is one of ours; None otherwise."""
    if args.cmd not in COMMANDS:
        return None
    from analytics import closing
    from analytics.review import ReviewConfig, format_month
    from db import review as dbr

    if args.cmd == "api":
        from api.server import serve

        serve(settings, port=args.port)
        return 0
    if args.cmd == "users":
        return _users(args, settings)
    if args.cmd == "bills":
        with dbr.connect(settings.database_url) as conn:
            ids = closing.import_bills(conn, args.file, args.by)
        print(f"已导入 {len(ids)} 张账单 / imported {len(ids)} bills: ids {ids}")
        return 0
    if args.cmd == "audit":
        with dbr.connect(settings.database_reader_url) as conn:
            if args.action == "show":
                for e in dbr.read_audit(conn, None, args.site, args.limit):
                    print(f"{e['seq']:>6} {e['at']:%Y-%m-%d %H:%M:%S}Z {e['actor']:<16} "
                          f"{e['action']:<20} {e['site_id'] or '-'} "
                          f"{e['month'] or ''} {json.dumps(e['details'], ensure_ascii=False)}")
                return 0
            problems = dbr.verify_audit(conn)
            n = len(dbr.audit_chain(conn))
        if problems:
            print(f"审计日志被篡改 / audit log NOT intact ({n} entries):")
            for p in problems:
                print(f"  - {p}")
            return 1
        print(f"审计日志完整 / audit log intact: {n} entries, hash chain and snapshots verified")
        return 0
    cfg = ReviewConfig.from_env()
    with dbr.connect(settings.database_url) as conn:
        if args.action == "show":
            if not args.month:
                raise SystemExit("--month YYYY-MM is required")
            v = closing.view_month(conn, args.site, closing.parse_month(args.month),
                                   settings.interval_s, cfg)
            if args.json:
                print(json.dumps({"state": v.state, "close": v.document, "checks": v.checks,
                                  "sha256": v.sha256}, default=str, ensure_ascii=False,
                                 indent=2))
            else:
                print(format_month(v.document, v.checks, v.state)
                      + (f"\n  snapshot SHA-256: {v.sha256}" if v.sha256 else ""))
            return 0
        if args.action == "scan":
            found = closing.scan_restatements(conn, args.site, settings.interval_s, cfg,
                                              "cli")
            for r in found:
                print(f"restatement {r['restatement_id']} {r['month']:%Y-%m}: "
                      f"{len(r['differences'])} figures changed; {r['reason']}")
            if not found:
                print("冻结月份无变化 / no frozen month changed")
            return 0
        if not args.year:
            raise SystemExit("--year is required")
        d = closing.disclosure(conn, args.site, args.year)
    print(json.dumps(d, ensure_ascii=False, indent=2, default=str))
    return 0


def _users(args: argparse.Namespace, settings: Settings) -> int:
    from api.auth import new_token
    from db import review as dbr

    with dbr.connect(settings.database_url) as conn:
        if args.action == "list":
            for u in dbr.list_users(conn):
                print(f"{u['name']:<20} {u['role']:<15} {','.join(u['sites']) or '(all)':<30}"
                      f" {'deleted ' + str(u['deleted_at']) if u['deleted_at'] else 'active'}")
            return 0
        if not args.name:
            raise SystemExit("a user name is required")
        if args.action == "delete":
            if not dbr.delete_user(conn, args.name):
                print(f"no active user {args.name!r}")
                return 1
            dbr.append_audit(conn, "cli", "user.delete", details={"name": args.name})
            print(f"user {args.name} deleted; its token no longer works")
            return 0
        if not args.role:
            raise SystemExit("--role is required")
        if args.role in ("site_manager", "facility_staff") and not args.site:
            raise SystemExit(f"--site is required for {args.role}")
        for s in args.site:
            if dbr.get_site(conn, s) is None:
                raise SystemExit(f"unknown site {s!r}")
        token, key, digest = new_token()
        dbr.add_user(conn, args.name, args.role, args.site, key, digest)
        dbr.append_audit(conn, "cli", "user.add", details={
            "name": args.name, "role": args.role, "sites": args.site})
    print(token)
    return 0
