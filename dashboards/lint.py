"""Project lints for generated dashboards (beyond the Grafana JSON Schema): unique panel ids,
every ``$variable`` a query uses is declared, every data source uid is provisioned, every
panel has a target of our SQL dataquery with a known format, folders are provisioned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dashboards.macros import referenced_variables

PROVISIONING = Path(__file__).resolve().parent / "provisioning"
BUILTIN_VARIABLES = {"__from", "__to", "__interval", "__interval_ms", "__range", "__rate_interval",
                     "__dashboard", "__user", "__org", "timeFilter"}


def provisioned_datasource_uids(root: Path = PROVISIONING) -> set[str]:
    """The uids of the data sources in ``root/datasources/*.yaml``."""
    uids: set[str] = set()
    for path in sorted((root / "datasources").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        uids.update(str(ds["uid"]) for ds in doc.get("datasources", []))
    return uids


def provisioned_folders(root: Path = PROVISIONING) -> dict[str, str]:
    """folderUid -> container path of each dashboard provider in ``root/dashboards``."""
    out = {}
    for path in sorted((root / "dashboards").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for p in doc.get("providers", []):
            out[str(p["folderUid"])] = str(p["options"]["path"])
    return out


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed panels included."""
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def lint(dashboard: dict[str, Any], datasource_uids: set[str]) -> list[str]:
    """Problems found in one dashboard's JSON (empty: fine)."""
    problems: list[str] = []
    uid = dashboard.get("uid", "?")
    declared = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    seen: set[int] = set()
    texts: list[tuple[str, str]] = []
    for v in dashboard.get("templating", {}).get("list", []):
        ds = v.get("datasource")
        if ds is not None and ds.get("uid") not in datasource_uids:
            problems.append(f"{uid}: variable {v['name']}: data source {ds} not provisioned")
        if v.get("type") == "query":
            texts.append((f"variable {v['name']}", str(v.get("query", ""))))
    for p in panels(dashboard):
        pid = p.get("id")
        if not isinstance(pid, int):
            problems.append(f"{uid}: panel {p.get('title')!r} has no numeric id")
        elif pid in seen:
            problems.append(f"{uid}: panel id {pid} used twice")
        else:
            seen.add(pid)
        texts.append((f"panel {pid} title", str(p.get("title", ""))))
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{uid}: panel {pid} has no query")
        for ds in [p.get("datasource"), *(t.get("datasource") for t in targets)]:
            if not ds or ds.get("uid") not in datasource_uids:
                problems.append(f"{uid}: panel {pid}: data source {ds} not provisioned")
        for t in targets:
            if t.get("format") not in ("time_series", "table"):
                problems.append(f"{uid}: panel {pid}: format {t.get('format')!r}")
            if not t.get("rawSql"):
                problems.append(f"{uid}: panel {pid}: empty rawSql")
            texts.append((f"panel {pid} query {t.get('refId')}", str(t.get("rawSql", ""))))
    for where, text in texts:
        for name in sorted(referenced_variables(text) - declared - BUILTIN_VARIABLES):
            problems.append(f"{uid}: {where} uses ${name}, which is not declared")
    return problems
