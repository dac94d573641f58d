"""``nzc``: one command line for every part of the platform.

    nzc services up|down|status|install|reset   local Mosquitto, Kafka, PostgreSQL
    nzc db migrate                               apply migrations, load the registry
    nzc ingest                                   MQTT -> Kafka bridge (foreground)
    nzc stream                                   faust stream worker (foreground)
    nzc simulate ...                             sample pilot zone publisher
    nzc summary                                  live per-site emissions from the database
    nzc registry load|diff                       store the registry (with history) / compare
    nzc gateways list|credentials                MQTT users, passwords and ACLs of gateways
    nzc close --site S --month YYYY-MM           a reviewer's monthly close with its evidence
    nzc recompute --site S --from D --to D ...   restate emissions with another factor
    nzc alerts run|rules|list|ack|demo ...       alert evaluator and acknowledgements
    nzc scorecard|denominators|baselines|declare  the pilot indicators and their inputs
    nzc users|bills|audit|review|api             the reviewers' close, its API and pages
    nzc report monthly|yearly --site S ...       the monthly PDF and the yearly disclosure
    nzc dashboards build|push --url U --token T  Grafana dashboards as code
    nzc web                                      the web view and pages (as nzc api)
    nzc demo                                     all of the above, end to end
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg

from core.settings import Settings
from nzc import cli_alerts, cli_dashboards, cli_gateways, cli_reports, cli_scorecard
from nzc.cli_review import add_parsers as add_review_parsers
from nzc.cli_review import dispatch as review_dispatch


def _services(argv: list[str]) -> int:
    from nzc.services.manager import main as services_main

    return services_main(argv)


def cmd_migrate(settings: Settings) -> int:
    """Apply migrations and upsert the registry into the database."""
    from core.registry_yaml import load_registry, registry_text
    from db.migrate import apply_migrations
    from db.sink import sync_registry

    applied = apply_migrations(settings.database_admin_url)
    from db.roles import set_role_passwords  # deployments: passwords from NZC_DATABASE_*_URL

    set_role_passwords(settings.database_admin_url,
                       [settings.database_url_config, settings.database_reader_url_config])
    path = settings.registry_path
    sync_registry(settings.database_admin_url, load_registry(path), str(path),
                  registry_text(path))
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    return 0


def cmd_registry(settings: Settings, action: str) -> int:
    """``load``: store the registry file (a new version only when it changed);
    ``diff``: what the file changes against the newest stored version."""
    from carbon.registry import diff_registries
    from core.registry_yaml import load_registry, parse_registry_text, registry_text
    from db.sink import latest_registry_text, sync_registry

    path = settings.registry_path
    new = load_registry(path)
    if action == "load":
        version = sync_registry(settings.database_admin_url, new, str(path),
                                registry_text(path))
        print(f"registry {path}: " + (f"stored as version {version}" if version
                                       else "unchanged (already stored)"))
        from nzc.cli_gateways import refresh_broker  # MQTT users and ACL follow the registry

        refresh_broker(settings)
        return 0
    old_text = latest_registry_text(settings.database_reader_url, str(path))
    if old_text is None:
        print(f"registry {path} has never been stored; everything is new")
        return 0
    old = parse_registry_text(old_text, source=f"{path} (stored)")
    changes = diff_registries(old, new)
    print("\n".join(changes) if changes else "no differences")
    return 0


def cmd_close(settings: Settings, args: argparse.Namespace) -> int:
    """Print the monthly close of one site."""
    from analytics.close import close_as_json, format_close, load_and_close

    month = date.fromisoformat(f"{args.month}-01")
    c = load_and_close(settings.database_reader_url, args.site, month, settings.interval_s)
    print(close_as_json(c) if args.json else format_close(c))
    return 0


def cmd_recompute(settings: Settings, args: argparse.Namespace) -> int:
    """Recompute emissions of a site and period with another factor data year or file."""
    from analytics.recompute import recompute
    from core.factors_io import load_factor_library

    library = load_factor_library(args.factors or settings.factors_path)
    audit = recompute(settings.database_url, args.site,
                      datetime.fromisoformat(args.start).astimezone(UTC),
                      datetime.fromisoformat(args.end).astimezone(UTC), library,
                      data_year=args.data_year)
    print(f"recomputed: {audit['rows_changed']} rows changed; before {audit['before_kgco2']} "
          f"kgCO2, after {audit['after_kgco2']} kgCO2 (audit id {audit['audit_id']})")
    return 0


def cmd_summary(settings: Settings) -> int:
    """Print live per-site figures read from the database (reader role)."""
    from db.queries import dead_letter_reasons, pipeline_counts, site_summaries

    now = datetime.now(UTC)
    url = settings.database_reader_url
    for s in site_summaries(url, now):
        print(f"\n== {s['site_id']}: {s['name']}")
        print(f"   today since {s['day_start']:%Y-%m-%d %H:%M %Z} ({s['timezone']} day), "
              f"data up to {s['newest_end'] or '-'}")
        print(f"   emissions today: location-based {s['location_kgco2'] / 1000:.3f} tCO2, "
              f"market-based {s['market_kgco2'] / 1000:.3f} tCO2; "
              f"last hour {s['last_hour_location_kgco2']:.1f} kgCO2 (location)")
        for c in s["carriers"]:
            print(f"   {c['carrier']:<18} {c['quantity']:>14.2f} {c['unit']:<4} "
                  f"{(c['tce'] or 0):>10.3f} tce  ({c['intervals']} meter-intervals)")
    counts = pipeline_counts(url)
    print("\nrows: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for d in dead_letter_reasons(url):
        print(f"   rejected {d['n']:>5} x {d['stage']}/{d['code']}: {d['sample'][:100]}")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """The whole product end to end (:mod:`nzc.demo`)."""
    from nzc.demo import run_demo

    return run_demo(settings, args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nzc`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="nzc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("services", help="local services: up|down|status|install|reset",
                   add_help=False)
    db = sub.add_parser("db", help="database tasks")
    db.add_argument("action", choices=["migrate"])
    sub.add_parser("ingest", help="run the MQTT -> Kafka bridge")
    st = sub.add_parser("stream", help="run a stream worker")
    st.add_argument("--loglevel", default="warning")
    sub.add_parser("simulate", help="run the simulator (see nzc simulate --help)",
                   add_help=False)
    sub.add_parser("summary", help="live per-site figures from the database")
    reg = sub.add_parser("registry", help="store or compare the site registry")
    reg.add_argument("action", choices=["load", "diff"])
    close = sub.add_parser("close", help="monthly close of a site (local month)")
    close.add_argument("--site", required=True)
    close.add_argument("--month", required=True, help="YYYY-MM")
    close.add_argument("--json", action="store_true")
    rec = sub.add_parser("recompute", help="restate emissions with another factor")
    rec.add_argument("--site", required=True)
    rec.add_argument("--from", dest="start", required=True, help="ISO time with offset")
    rec.add_argument("--to", dest="end", required=True, help="ISO time with offset (exclusive)")
    rec.add_argument("--data-year", type=int, help="pin the grid factors' data year")
    rec.add_argument("--factors", type=Path, help="YAML factors file (default NZC_FACTORS)")
    cli_scorecard.add_parsers(sub)
    cli_reports.add_parsers(sub)
    cli_alerts.add_parsers(sub)
    add_review_parsers(sub)
    demo = sub.add_parser("demo", help="services + workers + simulator + summary")
    demo.add_argument("--duration-s", type=int, default=6 * 3600,
                      help="simulated seconds to publish (default 6 h)")
    demo.add_argument("--speed", type=float, default=600.0,
                      help="simulated seconds per wall second (default 600)")
    demo.add_argument("--keep-running", action="store_true",
                      help="leave ingest and stream workers running afterwards")
    demo.add_argument("--reading-interval-s", type=int, default=300,
                      help="simulated seconds between a meter's readings (default 300)")
    demo.add_argument("--stream-workers", type=int, default=2,
                      help="stream worker processes (default 2, one per core here)")
    demo.add_argument("--drain-timeout-s", type=int, default=300,
                      help="how long to wait for the database to catch up (default 300)")
    demo.add_argument("--no-backfill", dest="backfill", action="store_false",
                      help="skip the past month of the sample park for the reviewers")
    cli_dashboards.add_parsers(sub)

    if argv and argv[0] in ("services", "simulate"):
        cmd, rest = argv[0], argv[1:]
        if cmd == "services":
            return _services(rest)
        from simulators.run import main as simulate

        return simulate(rest)
    cli_gateways.add_parsers(sub)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code = _dispatch(args, settings)
    except (psycopg.OperationalError, ConnectionRefusedError) as exc:
        print(services_down_message(settings, exc), file=sys.stderr)
        return 2
    if code is None:
        parser.error(f"unknown command {args.cmd}")
    return code


def services_down_message(settings: Settings, exc: BaseException) -> str:
    """One line for a command that needs a service which does not answer (no traceback, no
    password: only host and port)."""
    if isinstance(exc, psycopg.OperationalError):
        what = f"PostgreSQL at 127.0.0.1:{settings.pg_port}"
    else:
        what = f"a service ({type(exc).__name__}: {exc.strerror or exc})" \
            if isinstance(exc, OSError) else "a service"
    return (f"服务未运行 services are down: {what} does not answer; start them with "
            "`nzc services up` (or `nzc demo`)")


def _dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    """Run the subcommand; ``None`` when no module knows it."""
    if (code := cli_dashboards.dispatch(args, settings)) is not None:
        return code
    if (code := cli_gateways.dispatch(args, settings)) is not None:
        return code
    if args.cmd == "db":
        return cmd_migrate(settings)
    if (code := cli_alerts.dispatch(args, settings)) is not None:
        return code
    if args.cmd == "ingest":
        from ingest.bridge import run_ingest

        run_ingest(settings)
        return 0
    if args.cmd == "stream":
        from stream.app import run_worker

        run_worker(settings, loglevel=args.loglevel)
        return 0
    simple = {"summary": lambda: cmd_summary(settings),
              "registry": lambda: cmd_registry(settings, args.action),
              "close": lambda: cmd_close(settings, args),
              "recompute": lambda: cmd_recompute(settings, args),
              "demo": lambda: cmd_demo(settings, args)}
    if args.cmd in simple:
        return simple[args.cmd]()
    if (code := cli_scorecard.dispatch(args, settings)) is not None:
        return code
    if (code := cli_reports.dispatch(args, settings)) is not None:
        return code
    return review_dispatch(args, settings)

if __name__ == "__main__":
    raise SystemExit(main())
