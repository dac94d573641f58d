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
import sys
from pathlib import Path
from typing import Any

from core.settings import Settings

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
    review.add_argument("action", choices=["show", "scan", "disclosure", "backfill"])
    review.add_argument("--site", required=True)
    review.add_argument("--profile", default="sample_park",
                        help="backfill: simulator profile of the site (default sample_park)")
    review.add_argument("--drain-timeout-s", type=int, default=900)
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
        try:
            with dbr.connect(settings.database_url) as conn:
                ids = closing.import_bills(conn, args.file, args.by)
        except (ValueError, OSError) as exc:
            print(f"未导入任何账单 / nothing imported: {exc}", file=sys.stderr)
            return 2
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
    if args.action == "backfill":
        return backfill(settings, args.site, args.profile, args.month, args.drain_timeout_s)
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


def backfill(settings: Settings, site_id: str, profile: str, month_text: str | None,
             drain_timeout_s: int = 900) -> int:
    """Publish a whole past local month of a sample site through the real pipeline, so that
    a reviewer has a complete month to verify: services up, migrations, an ingest bridge and a
    stream worker, the simulator (``--fast``, one reading per meter every 900 s from one
    interval before the month to its end), wait until the site's intervals stop changing,
    stop the workers, print the month with its checks.

    Run it before any live data of that site (``nzc demo``): the stream rejects readings
    older than ``NZC_LATENESS_S`` behind a meter's newest one as too late.
    """
    import time
    from datetime import UTC, datetime, timedelta

    from analytics import closing
    from analytics.review import ReviewConfig, format_month
    from db import review as dbr
    from nzc.cli import _services, cmd_migrate
    from nzc.procs import start_ingest_ready, start_worker, stop_worker
    from simulators.run import run_cli as simulate

    if month_text is None:
        raise SystemExit("--month YYYY-MM is required")
    month = closing.parse_month(month_text)
    if _services(["up"]) != 0:
        return 1
    cmd_migrate(settings)
    with dbr.connect(settings.database_reader_url) as conn:
        site = dbr.get_site(conn, site_id)
        if site is None:
            raise SystemExit(f"unknown site {site_id!r} in the registry")
        meters = len(dbr.list_meters(conn, site_id))
    start, end = dbr.month_bounds(month, site["timezone"])
    if end > datetime.now(UTC):
        raise SystemExit(f"{month_text} has not ended yet: backfill a past month")
    first = start - timedelta(seconds=settings.interval_s)
    duration = int((end - first).total_seconds())
    workers = [start_worker("stream", settings, log_name="backfill-stream"),
               start_ingest_ready(settings, log_name="backfill-ingest")]
    try:
        sim = ["--profile", profile, "--fast", "--start", first.isoformat(), "--duration-s",
               str(duration), "--interval-s", str(settings.interval_s), "--seed", "7"]
        print(f"backfilling {site_id} {month_text}: nzc simulate {' '.join(sim)}", flush=True)
        code, report = simulate(sim)
        if code != 0 or report is None:
            return 1
        expected = meters * int((end - start).total_seconds()) // settings.interval_s
        deadline = time.monotonic() + drain_timeout_s
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            with dbr.connect(settings.database_reader_url) as conn:
                row = conn.execute(
                    "SELECT count(*) AS n FROM energy_intervals WHERE site_id = %s"
                    " AND interval_start >= %s AND interval_start < %s",
                    (site_id, start, end)).fetchone()
            n = int(row["n"]) if row else 0
            if n != last:
                last, since = n, time.monotonic()
                print(f"  {n} of {expected} meter-intervals stored", flush=True)
            elif n >= expected * 0.9 and time.monotonic() - since > 10:
                break
            time.sleep(2)
        else:
            print(f"still incomplete after {drain_timeout_s} s ({last} of {expected})")
    finally:
        for w in workers:
            stop_worker(w)
    with dbr.connect(settings.database_url) as conn:
        v = closing.view_month(conn, site_id, month, settings.interval_s,
                               ReviewConfig.from_env())
    print(format_month(v.document, v.checks, v.state))
    return 0
