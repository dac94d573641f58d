"""``nzc alerts ...``: the alert evaluator, rules, acknowledgements and the demo (issue 13).

    nzc alerts run [--once]            evaluate rules from the database, post to Alertmanager
    nzc alerts rules check|load        validate alerts/rules.yaml / store it in alert_rules
    nzc alerts list [--all]            open (pending/firing) alerts, or all
    nzc alerts ack ID --by NAME        acknowledge: record who/when, silence until resolved
    nzc alerts deliveries              the robot receiver's newest delivery attempts
    nzc alerts receiver                run the robot receiver in the foreground
    nzc alerts demo                    inject a night-load anomaly and an offline meter
    nzc alerts config                  print alertmanager.yml rendered from alerts/routing.yaml
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from core.settings import Settings


def add_parsers(sub: Any) -> None:
    """Add ``nzc alerts`` to the ``nzc`` sub-command parsers."""
    p = sub.add_parser("alerts", help="alert evaluator, rules, acknowledgements, demo")
    a = p.add_subparsers(dest="alerts_cmd", required=True)
    run = a.add_parser("run", help="evaluate the rules every few seconds (foreground)")
    run.add_argument("--once", action="store_true", help="one cycle with every rule, then exit")
    rules = a.add_parser("rules", help="check or store the rule file")
    rules.add_argument("action", choices=["check", "load"])
    ls = a.add_parser("list", help="open alerts")
    ls.add_argument("--all", action="store_true")
    ack = a.add_parser("ack", help="acknowledge an alert")
    ack.add_argument("alert_id", type=int)
    ack.add_argument("--by", required=True, help="who acknowledges")
    ack.add_argument("--comment", default="")
    a.add_parser("deliveries", help="newest delivery attempts of the robot receiver")
    a.add_parser("receiver", help="run the robot receiver in the foreground")
    a.add_parser("config", help="print alertmanager.yml rendered from the routing file "
                 "(for docker-compose or another Alertmanager)")
    demo = a.add_parser("demo", help="inject a night-load anomaly and an offline meter into "
                        "the campus sample site and show the two alerts delivered")
    demo.add_argument("--timeout-s", type=float, default=120.0)


def _ack(settings: Settings, alert_id: int, by: str, comment: str) -> int:
    import psycopg

    from alerts.am import Alertmanager
    from alerts.config import AlertSettings
    from db.alerts import get_alert, record_ack

    with psycopg.connect(settings.database_url) as conn:
        row = get_alert(conn, alert_id)
        if row is None:
            print(f"no alert {alert_id}")
            return 1
        if row["state"] not in ("pending", "firing"):
            print(f"alert {alert_id} is {row['state']}: nothing to acknowledge")
            return 1
        now = datetime.now(UTC)
        am = Alertmanager(AlertSettings.from_env().alertmanager_url)
        # until it resolves: the evaluator expires the silence when the alert resolves;
        # 30 days bound it if the evaluator never runs again
        silence = am.create_silence(row["labels"], now + timedelta(days=30), by,
                                    comment or f"acknowledged alert {alert_id} (nzc alerts ack)")
        record_ack(conn, alert_id, by, now, silence)
    print(f"alert {alert_id} acknowledged by {by} at {now:%Y-%m-%d %H:%M:%S} UTC; "
          f"silence {silence} until it resolves")
    return 0


def dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    """Run ``nzc alerts ...``; None when ``args`` is not an alerts command."""
    if getattr(args, "cmd", None) != "alerts":
        return None
    from alerts.config import AlertSettings
    from alerts.rules import load_rules

    asettings = AlertSettings.from_env()
    cmd = args.alerts_cmd
    if cmd in ("run", "rules"):
        import psycopg

        from db.alerts import sync_rules

        rules = load_rules(asettings.rules_path)
        if cmd == "rules" and args.action == "check":
            print(f"{asettings.rules_path}: {len(rules)} rules OK")
            return 0
        with psycopg.connect(settings.database_url) as conn:
            n = sync_rules(conn, [r.to_json() for r in rules])
        print(f"{n} rules stored from {asettings.rules_path}", flush=True)
        if cmd == "rules":
            return 0
        from alerts.evaluate import load_evaluator
        from core.registry_yaml import load_registry

        ev = load_evaluator(settings.database_url, load_registry(settings.registry_path), rules,
                            asettings)
        if args.once:
            report = ev.cycle(periodic=True)
            print(f"{report.observations} observations, events: {report.events}, "
                  f"posted {report.posted}" + (f", error {report.post_error}"
                                               if report.post_error else ""))
            return 0
        ev.run()
        return 0
    if cmd == "list":
        from db.alerts import list_alerts

        states = ["pending", "firing", "resolved", "inactive"] if args.all else \
            ["pending", "firing"]
        for r in list_alerts(settings.database_reader_url, states):
            print(f"{r['alert_id']:>5} {r['state']:<8} {r['severity']:<8} {r['rule_id']:<24} "
                  f"{r['subject']:<24} value={r['value']} threshold={r['threshold']} "
                  f"since={r['firing_since'] or r['pending_since']} "
                  f"acked={r['acked_by'] or '-'}")
        return 0
    if cmd == "ack":
        return _ack(settings, args.alert_id, args.by, args.comment)
    if cmd == "deliveries":
        from db.alerts import list_deliveries

        for d in list_deliveries(settings.database_reader_url):
            print(f"{d['at']:%Y-%m-%d %H:%M:%S} {d['channel']:<10} {d['status']:<9} "
                  f"attempt {d['attempt']} {'ok' if d['ok'] else 'FAILED'} {d['bytes']} B"
                  + (" (cut)" if d["truncated"] else "") + (f" {d['error']}" if d["error"]
                                                           else ""))
        return 0
    if cmd == "config":
        from alerts.am import render_config

        print(render_config(asettings), end="")
        return 0
    if cmd == "receiver":
        from alerts.channels import main as receiver_main

        return int(receiver_main(["serve"]))
    if cmd == "demo":
        from nzc.alerts_demo import run_demo

        return run_demo(settings, asettings, args.timeout_s)
    return None
