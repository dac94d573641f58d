"""``nzc`` subcommands of the indicators and the scorecard (issue 11).

    nzc scorecard --site S [--period ytd|mtd|r12|YYYY-MM] [--method location|market]
                  [--json] [--store] [--verbose]        one site's scorecard (--site all: every)
    nzc indicators [--site-type T]                      the indicator catalogue
    nzc denominators import FILE [--replace] [--by WHO] monthly denominators from CSV
    nzc baselines import FILE [--replace] [--by WHO]    baseline-year totals from CSV
    nzc baselines compute --site S [--year Y] [--replace]   baseline from stored data
    nzc declare --site S --indicator ID --value V --evidence TEXT [--by WHO]
    nzc indicator-target --site S --indicator ID --value V --source TEXT [--by WHO]
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from core.settings import Settings

COMMANDS = ("scorecard", "indicators", "denominators", "baselines", "declare",
            "indicator-target")


def add_parsers(sub: Any) -> None:
    """Add the subcommands to ``nzc``'s subparsers."""
    sc = sub.add_parser("scorecard", help="indicator scorecard of a site (评价指标记分卡)")
    sc.add_argument("--site", required=True, help="site id, or 'all'")
    sc.add_argument("--period", default="ytd", help="ytd (default), mtd, r12 or YYYY-MM")
    sc.add_argument("--method", default="location", choices=["location", "market"],
                    help="Scope 2 method the status follows (both are shown)")
    sc.add_argument("--json", action="store_true")
    sc.add_argument("--store", action="store_true", help="store it as today's scorecard")
    sc.add_argument("--verbose", action="store_true", help="notes and projections too")
    ind = sub.add_parser("indicators", help="the indicator catalogue")
    ind.add_argument("--site-type")
    den = sub.add_parser("denominators", help="import monthly denominators (CSV)")
    den.add_argument("action", choices=["import"])
    den.add_argument("file", type=Path)
    den.add_argument("--replace", action="store_true",
                     help="allow changing existing values (recorded in the history)")
    den.add_argument("--by", help="who enters them (default: NZC_USER or the login)")
    base = sub.add_parser("baselines", help="baseline-year totals: import CSV or compute")
    base.add_argument("action", choices=["import", "compute"])
    base.add_argument("file", type=Path, nargs="?")
    base.add_argument("--site")
    base.add_argument("--year", type=int)
    base.add_argument("--replace", action="store_true")
    base.add_argument("--by")
    dec = sub.add_parser("declare", help="declare a non-metered indicator with evidence")
    dec.add_argument("--site", required=True)
    dec.add_argument("--indicator", required=True)
    dec.add_argument("--value", required=True)
    dec.add_argument("--evidence", required=True, help="text or a file reference")
    dec.add_argument("--by")
    tgt = sub.add_parser("indicator-target", help="configure a site's reference value")
    tgt.add_argument("--site", required=True)
    tgt.add_argument("--indicator", required=True)
    tgt.add_argument("--value", required=True, type=float)
    tgt.add_argument("--source", required=True)
    tgt.add_argument("--by")


def dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    """Run one of these subcommands; ``None`` when ``args.cmd`` is not one of them."""
    if args.cmd not in COMMANDS:
        return None
    from carbon.indicators import IndicatorError

    try:
        return _dispatch(args, settings)
    except (IndicatorError, ValueError) as exc:
        print(f"错误 error: {exc}")
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from analytics.scorecard import current_user

    by = getattr(args, "by", None) or current_user()
    if args.cmd == "scorecard":
        return _scorecard(args, settings)
    if args.cmd == "indicators":
        return _indicators(args.site_type)
    if args.cmd == "denominators":
        return _import(settings, args.file, baseline=False, replace=args.replace, by=by)
    if args.cmd == "baselines":
        if args.action == "import":
            if args.file is None:
                print("baselines import needs FILE")
                return 2
            return _import(settings, args.file, baseline=True, replace=args.replace, by=by)
        return _compute_baseline(settings, args.site, args.year, args.replace, by)
    if args.cmd == "declare":
        return _declare(settings, args, by)
    from carbon.indicators import load_catalogue
    from db.scorecard import set_indicator_target

    load_catalogue().by_id(args.indicator)
    set_indicator_target(settings.database_admin_url, args.site, args.indicator, args.value,
                         args.source, by)
    print(f"reference of {args.indicator} for {args.site}: {args.value} ({args.source})")
    return 0


def _scorecard(args: argparse.Namespace, settings: Settings) -> int:
    from analytics.scorecard import format_scorecard, scorecard_for_site, store
    from db.scorecard import site_ids

    now = datetime.now(UTC)
    sites = site_ids(settings.database_reader_url) if args.site == "all" else [args.site]
    cards = []
    for site in sites:
        card = scorecard_for_site(settings.database_reader_url, site, args.period, now,
                                  args.method)
        cards.append(card)
        if args.store:
            store(settings.database_url, card)
        if not args.json:
            print(format_scorecard(card, verbose=args.verbose) + "\n")
    if args.json:
        print(json.dumps(cards if args.site == "all" else cards[0], default=str,
                         ensure_ascii=False, indent=2))
    return 0


def _indicators(site_type: str | None) -> int:
    from carbon.indicators import TYPE_ZH, load_catalogue

    cat = load_catalogue()
    for ind in cat.metered:
        if site_type and site_type not in ind.pilot_types:
            continue
        ref = "configured" if ind.reference is None else f"{ind.direction} {ind.reference:g}"
        src = "; ".join(f"{s.seed}:{s.table or '-'}:{s.line}" for s in ind.sources)
        print(f"{ind.id:<38} {TYPE_ZH[ind.type]} {ind.name_zh} / {ind.name_en} [{ind.unit}] "
              f"{ref}  ({', '.join(ind.pilot_types)}; seed:table:line {src})")
    for d in cat.declared:
        if site_type and site_type not in d.pilot_types:
            continue
        print(f"{d.id:<38} {TYPE_ZH[d.type]} {d.name_zh} / {d.name_en} [declared, "
              f"{d.value_type}] ({', '.join(d.pilot_types)}; seed {d.seed} table {d.table} "
              f"line {d.line})")
    return 0


def _import(settings: Settings, path: Path, *, baseline: bool, replace: bool, by: str) -> int:
    from carbon.indicators import parse_entries_csv
    from db.scorecard import ConflictError, import_entries, site_ids

    rows, errors = parse_entries_csv(path.read_text(encoding="utf-8"),
                                     set(site_ids(settings.database_admin_url)),
                                     baseline=baseline)
    if errors:
        print(f"{path}: 未导入 nothing imported, {len(errors)} error(s):")
        for e in errors:
            print(f"  {e}")
        return 1
    try:
        counts = import_entries(settings.database_admin_url, rows, baseline=baseline, by=by,
                                file=str(path), replace=replace)
    except ConflictError as exc:
        print(f"{path}: 未导入 nothing imported. {exc}")
        return 1
    print(f"{path}: {counts['inserted']} inserted, {counts['replaced']} replaced, "
          f"{counts['unchanged']} unchanged (by {by})")
    return 0


def _compute_baseline(settings: Settings, site: str | None, year: int | None,
                      replace: bool, by: str) -> int:
    from analytics.scorecard import month_start_utc
    from carbon.indicators import EntryRow
    from db.scorecard import ConflictError, baseline_from_data, import_entries, site_info

    if not site:
        print("baselines compute needs --site")
        return 2
    info = site_info(settings.database_reader_url, site)
    if info is None:
        print(f"unknown site {site!r}")
        return 1
    y = year or int(info["baseline_year"])
    start, end = month_start_utc(date(y, 1, 1)), month_start_utc(date(y + 1, 1, 1))
    totals = baseline_from_data(settings.database_reader_url, site, start, end)
    if totals["months"] < 12:
        print(f"{site} {y}: only {totals['months']} month(s) of stored data; a baseline needs "
              f"the whole year. Enter it with its source instead: nzc baselines import FILE")
        return 1
    src = f"computed from the monthly rollups {y}-01..{y}-12 ({totals['months']} months)"
    rows = [EntryRow(0, site, f"emissions_{m}_tco2", date(y, 1, 1), kg / 1000.0, "tCO2", src)
            for m, kg in totals["emissions_kgco2"].items() if kg is not None]
    if totals["energy_tce"] is not None:
        rows.append(EntryRow(0, site, "energy_tce", date(y, 1, 1), totals["energy_tce"], "tce",
                             src))
    try:
        counts = import_entries(settings.database_admin_url, rows, baseline=True, by=by,
                                replace=replace, method="computed")
    except ConflictError as exc:
        print(str(exc))
        return 1
    print(f"{site} baseline {y}: {counts}")
    return 0


def _declare(settings: Settings, args: argparse.Namespace, by: str) -> int:
    from carbon.indicators import DeclaredIndicator, load_catalogue, validate_declaration
    from db.scorecard import declare

    ind = load_catalogue().by_id(args.indicator)
    if not isinstance(ind, DeclaredIndicator):
        print(f"{args.indicator} is metered: its value comes from the meters, not declared")
        return 1
    validate_declaration(ind, args.value, args.evidence)
    entry = declare(settings.database_admin_url, args.site, args.indicator, args.value,
                    args.evidence, by)
    print(f"declared {args.indicator} = {args.value} for {args.site} by {by} (entry {entry})")
    return 0
