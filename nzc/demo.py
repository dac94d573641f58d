"""``nzc demo``: the whole product on this machine, end to end, in steps a newcomer can follow.

1. services up (Mosquitto with per-gateway credentials, Kafka, PostgreSQL, Alertmanager and the
   alert receiver) and migrations;
2. a complete past local month of the sample park (``cd-park``), backfilled through the real
   pipeline once, so that a reviewer has a month to verify (skipped when it is already there);
3. workers: stream (2), ingest, the API with the web view and the reviewers' pages (the alert
   evaluator joins them after the alerts demo, step 6);
4. the last ``duration_s`` of the zone (7 sites, 7 device formats) published live by the
   simulator, then the per-site summary and every site's scorecard;
5. the sample users (a reviewer and the park's manager; tokens in a 0600 file, never printed),
   the backfilled month submitted by the manager when its checks pass;
6. the alerts demo: a night-load anomaly and an offline meter on the campus, delivered to a
   local robot endpoint;
7. the addresses to look at.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from core.settings import Settings

REVIEW_SITE = "cd-park"
REVIEW_PROFILE = "sample_park"
DEMO_USERS = (("sample-reviewer", "reviewer", ()), ("park-manager", "site_manager",
                                                    (REVIEW_SITE,)))


def previous_local_month(now: datetime) -> date:
    """The first day of the local (Asia/Shanghai) month before ``now``'s."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    return date(local.year - (local.month == 1), (local.month - 2) % 12 + 1, 1)


def review_month(now: datetime, duration_s: int, lateness_s: int) -> date:
    """The local month to backfill for the reviewers: the last one that ended before the
    live window and its lateness bound, so that the live replay never overlaps it (the
    stream would take the replay's older readings as too late)."""
    return previous_local_month(now - timedelta(seconds=duration_s + lateness_s))


def _month_state(settings: Settings, site_id: str, month: date) -> str:
    """``complete`` (>= 90 % of the meter-intervals stored), ``blocked`` (the site has data
    after the month: a backfill now would be too late) or ``empty``."""
    from db import review as dbr

    with dbr.connect(settings.database_reader_url) as conn:
        site = dbr.get_site(conn, site_id)
        if site is None:
            return "empty"
        meters = len(dbr.list_meters(conn, site_id))
        start, end = dbr.month_bounds(month, site["timezone"])
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE interval_start < %(end)s) AS n,"
            " count(*) FILTER (WHERE interval_start >= %(end)s) AS later"
            " FROM energy_intervals WHERE site_id = %(site)s AND interval_start >= %(start)s",
            {"site": site_id, "start": start, "end": end}).fetchone()
    expected = meters * int((end - start).total_seconds()) // settings.interval_s
    if row is not None and expected > 0 and int(row["n"]) >= 0.9 * expected:
        return "complete"
    return "blocked" if row is not None and int(row["later"]) > 0 else "empty"


def ensure_users(settings: Settings) -> Path:
    """Create the demo's users once; their tokens go to ``<state>/demo-users.txt`` (0600)."""
    from api.auth import new_token
    from db import review as dbr

    path = settings.state_dir / "demo-users.txt"
    with dbr.connect(settings.database_url) as conn:
        active = {u["name"] for u in dbr.list_users(conn) if not u["deleted_at"]}
        lines = []
        for name, role, sites in DEMO_USERS:
            if name in active and path.exists():
                continue
            if name in active:
                dbr.delete_user(conn, name)
            token, key, digest = new_token()
            dbr.add_user(conn, name, role, list(sites), key, digest)
            dbr.append_audit(conn, "demo", "user.add",
                             details={"name": name, "role": role, "sites": list(sites)})
            lines.append(f"{name}\t{role}\t{','.join(sites) or '*'}\t{token}\n")
    if lines:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.writelines(lines)
        path.chmod(0o600)
    return path


def submit_month(settings: Settings, site_id: str, month: date) -> str:
    """Submit ``month`` as the park's manager when it is a draft and its checks pass; the
    state it is in afterwards."""
    from analytics import closing
    from analytics.review import ReviewConfig
    from db import review as dbr

    with dbr.connect(settings.database_url) as conn:
        state = dbr.get_close(conn, site_id, month)["state"]
        if state in ("draft", "returned"):
            try:
                state = closing.submit(conn, site_id, month, "park-manager",
                                       settings.interval_s, ReviewConfig.from_env())["state"]
            except closing.ChecksFailed as exc:
                failed = [c["check"] for c in exc.checks if not c["passed"]]
                print(f"  {site_id} {month:%Y-%m} not submitted, checks failed: {failed}")
    return str(state)


def live_window(settings: Settings, now_s: float, duration_s: int,
                reading_interval_s: int) -> tuple[int, int]:
    """Start [epoch s] and length [s] of the live replay: the last ``duration_s`` up to now
    (readings never run ahead of the wall clock, which ingest would reject as clock skew), on
    the grid of ``reading_interval_s``, and never before the newest reading already stored,
    so that a second run continues the first one instead of sending older readings again
    (they would be duplicates, or too late behind the lateness bound)."""
    from db.queries import newest_reading_time

    start = int(now_s) - duration_s
    newest = newest_reading_time(settings.database_reader_url)
    if newest is not None:
        start = max(start, int(newest.timestamp()))
    start -= start % reading_interval_s
    return start, max(int(now_s) - start, reading_interval_s)


def _wait_for_readings(settings: Settings, clean_readings: int, timeout_s: int) -> None:
    from db.queries import pipeline_counts

    print(f"waiting for the pipeline to store {clean_readings} readings ...", flush=True)
    deadline = time.monotonic() + timeout_s
    last: Any = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        counts = pipeline_counts(settings.database_reader_url)
        if counts != last:
            last, stable_since = counts, time.monotonic()
        elif counts["readings"] >= clean_readings and time.monotonic() - stable_since > 5:
            return
        time.sleep(1)
    print(f"still catching up after {timeout_s} s: {last}; the rest stays in Kafka and lands "
          "when the workers run again (nzc demo --keep-running)")


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    """``nzc demo``: see the module docstring."""
    from nzc.cli import _services, cmd_migrate, cmd_summary
    from nzc.cli_review import backfill
    from nzc.procs import start_ingest_ready, start_worker, stop_worker
    from simulators.run import run_cli as simulate

    if _services(["up"]) != 0:
        return 1
    cmd_migrate(settings)
    month = review_month(datetime.now(UTC), args.duration_s, settings.lateness_s)
    state = _month_state(settings, REVIEW_SITE, month) if args.backfill else "skipped"
    if state == "empty":
        print(f"\n== 1. a complete month for the reviewers: {REVIEW_SITE} {month:%Y-%m} ==")
        backfill(settings, REVIEW_SITE, REVIEW_PROFILE, f"{month:%Y-%m}")
    elif state == "blocked":
        print(f"\n(no backfill of {REVIEW_SITE} {month:%Y-%m}: the site already has later data, "
              "which would make the month's readings too late; `nzc services reset` starts "
              "afresh)")
    workers = [start_worker("stream", settings, log_name=f"stream-{i + 1}")
               for i in range(args.stream_workers)]
    workers.append(start_ingest_ready(settings))
    workers.append(start_worker("api", settings))
    try:
        start, duration_s = live_window(settings, time.time(), args.duration_s,
                                        args.reading_interval_s)
        sim_args = ["--start", datetime.fromtimestamp(start, UTC).isoformat(),
                    "--duration-s", str(duration_s), "--speed", str(args.speed),
                    "--interval-s", str(args.reading_interval_s), "--seed", "7"]
        print(f"\n== 2. the zone, live: simulating {settings.registry_path}: "
              f"{' '.join(sim_args)}", flush=True)
        code, report = simulate(sim_args)
        if code != 0 or report is None:
            return 1
        _wait_for_readings(settings, report.clean_readings, args.drain_timeout_s)
        cmd_summary(settings)
        from analytics.scorecard import demo_scorecards

        print("\n== 3. indicators ==")
        demo_scorecards(settings)
        users = ensure_users(settings)
        close_state = submit_month(settings, REVIEW_SITE, month)
        print("\n== 4. alerts ==")
        from alerts.config import AlertSettings
        from nzc.alerts_demo import run_demo as alerts_demo

        alerts_demo(settings, AlertSettings.from_env())
        # the evaluator from now on (not during the replay above: accelerated history lags the
        # wall clock, so every meter would look offline until the replay caught up)
        workers.append(start_worker("alerts", settings))
        api = f"http://127.0.0.1:{os.environ.get('NZC_API_PORT', '18080')}"
        print("\n== 5. look ==\n"
              f"网页视图 web view (log in; zone, sites):  {api}/web/\n"
              f"审核 reviewers' pages (log in):           {api}/review/\n"
              f"  {REVIEW_SITE} {month:%Y-%m} is {close_state}; user names and tokens: {users} "
              "(mode 0600)\n"
              f"API (OpenAPI):                             {api}/docs\n"
              f"Logs: {settings.state_dir / 'logs'}. Again any time: nzc summary, "
              f"nzc scorecard --site all, nzc review show --site {REVIEW_SITE} "
              f"--month {month:%Y-%m}, or PGPASSFILE={settings.pg_passfile} psql "
              f"{settings.database_reader_url_config}")
    finally:
        if not args.keep_running:
            for w in workers:
                stop_worker(w)
    if args.keep_running:
        print("Workers, the web view and the API keep running; stop everything with: "
              "nzc services down")
    else:
        print("Workers stopped (the pages above need them: nzc demo --keep-running)")
    return 0
