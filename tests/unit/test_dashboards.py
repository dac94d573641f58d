"""Dashboards as code, without a Grafana server: the committed JSON is what the code
generates, every dashboard validates against Grafana's dashboard JSON Schema (draft-07, from
the foundation SDK's repository; CI puts it in ../shared/data/grafana-schema), the project
lints pass, and the macro expander does what Grafana documents."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dashboards import build
from dashboards.lint import lint, provisioned_datasource_uids, provisioned_folders
from dashboards.macros import MacroError, Variable, expand, format_interval, parse_duration

REPO = Path(__file__).resolve().parents[2]
# NZC_SHARED_DATA: where the shared data is when the checkout is not beside it (a worktree)
SHARED = Path(os.environ.get("NZC_SHARED_DATA", REPO.parent / "shared" / "data"))
SCHEMA = SHARED / "grafana-schema" / "dashboard.jsonschema.json"
SPECS = build.all_dashboards()


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    assert SCHEMA.is_file(), f"{SCHEMA} missing: CI puts the Grafana schemas in ../shared/data"
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("spec", SPECS, ids=[s.uid for s in SPECS])
def test_committed_json_is_what_the_code_generates(spec: build.Spec) -> None:
    path = build.json_path(spec)
    assert path.is_file(), f"{path} missing: run python -m dashboards.build"
    assert path.read_text(encoding="utf-8") == build.render(spec), (
        f"{path} differs from the code: run python -m dashboards.build and commit")


def test_no_stray_committed_dashboards() -> None:
    committed = {p.relative_to(build.JSON_DIR) for p in build.JSON_DIR.rglob("*.json")}
    assert committed == {build.json_path(s).relative_to(build.JSON_DIR) for s in SPECS}


@pytest.mark.parametrize("spec", SPECS, ids=[s.uid for s in SPECS])
def test_validates_against_grafana_schema(spec: build.Spec,
                                         validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in
              validator.iter_errors(spec.to_dict())]
    assert errors == []


def test_schema_rejects_a_broken_dashboard(validator: jsonschema.Draft7Validator) -> None:
    good = SPECS[0].to_dict()
    breakages: list[tuple[str, object]] = [("templating", None), ("refresh", 60), ("panelz", [])]
    for key, breakage in breakages:
        d = copy.deepcopy(good)
        if breakage is None:
            del d[key]
        else:
            d[key] = breakage
        assert list(validator.iter_errors(d)), f"{key}: {breakage!r} passed the schema"


@pytest.mark.parametrize("spec", SPECS, ids=[s.uid for s in SPECS])
def test_project_lints(spec: build.Spec) -> None:
    assert lint(spec.to_dict(), provisioned_datasource_uids()) == []


def test_lints_catch_mistakes() -> None:
    d: dict[str, Any] = copy.deepcopy(SPECS[0].to_dict())
    d["panels"][1]["id"] = d["panels"][0]["id"]
    d["panels"][2]["targets"][0]["rawSql"] += " AND x IN ($building)"
    d["panels"][3]["datasource"] = {"type": "grafana-postgresql-datasource", "uid": "other"}
    problems = "\n".join(lint(d, provisioned_datasource_uids()))
    assert "used twice" in problems
    assert "$building, which is not declared" in problems
    assert "'uid': 'other'" in problems


def test_every_dashboard_has_the_three_selectors_and_a_provisioned_folder() -> None:
    folders = provisioned_folders()
    for spec in SPECS:
        names = {v["name"] for v in spec.to_dict()["templating"]["list"]}
        assert {"site", "group", "meter"} <= names
        assert spec.folder in folders and folders[spec.folder].endswith("/" + spec.folder)


def test_expander_macros_and_variables() -> None:
    t0 = datetime(2026, 3, 18, 0, 0, tzinfo=UTC)
    t1 = datetime(2026, 3, 18, 6, 30, tzinfo=UTC)
    sql = ("SELECT $__timeGroupAlias(bucket_start, $__interval), 1 FROM t WHERE "
           "$__timeFilter(bucket_start) AND site_id IN ($site) AND m = '${method}'"
           " AND x < $__timeTo() AND y >= $__timeFrom() AND ms = $__interval_ms")
    out = expand(sql, t0, t1, 900, {"site": Variable(("a", "o'b")),
                                    "method": Variable(("market",), multi=False)})
    assert out == (
        "SELECT floor(extract(epoch from bucket_start)/900)*900 AS \"time\", 1 FROM t WHERE "
        "bucket_start BETWEEN '2026-03-18T00:00:00Z' AND '2026-03-18T06:30:00Z' AND "
        "site_id IN ('a','o''b') AND m = 'market' AND x < '2026-03-18T06:30:00Z' AND "
        "y >= '2026-03-18T00:00:00Z' AND ms = 900000")
    with pytest.raises(MacroError, match="undeclared variable"):
        expand("SELECT $nope", t0, t1, 60, {})
    with pytest.raises(MacroError, match="unknown macro"):
        expand("SELECT $__unixEpochGroup(ts, 1h)", t0, t1, 60, {})
    assert parse_duration("1h") == 3600 and parse_duration("'15m'") == 900
    assert format_interval(3600) == "1h" and format_interval(86400 * 7) == "1w"
    assert format_interval(90) == "90s"
