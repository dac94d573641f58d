"""The reviewers' close over real HTTP (uvicorn started by ``nzc api``) on the real PostgreSQL:
a sample month's full close (checks, submit, return, re-submit, verify, snapshot hash, a late
interval opening a restatement, accepting it as version 2), every endpoint's authorisation
generated from the app's route table, the audit log's protection and tamper detection, and
the exports in openpyxl.

Interval rows are written as the stream's sink writes them (the writer role, same columns);
expected figures are worked by hand here from the published factors typed in below.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from openpyxl import load_workbook
from psycopg.rows import dict_row

from core.settings import Settings

from .conftest import _OFF, add_users, nzc, running_api

pytestmark = pytest.mark.services

API_PORT = 18090 + _OFF
BASE = f"http://127.0.0.1:{API_PORT}"
MONTH = "2026-10"
# local month 2026-10 in Asia/Shanghai (UTC+8): 2026-09-30 16:00Z .. 2026-10-31 16:00Z
START = datetime(2026, 9, 30, 16, tzinfo=UTC)
N = 31 * 96  # 15-minute intervals in October
# MEE 2025 No. 47 (data year 2023): Sichuan average 0.1564, national excl. market 0.6096
SICHUAN = 0.1564
EXCL = 0.6096
GAS = 389.31 / 10_000 * 15.3 / 1000 * 0.99 * 44 / 12 * 1000  # kgCO2/m3, GB/T 32150
KGCE_KWH, KGCE_M3 = 0.1229, 1.33  # GB/T 2589-2020
GRID_KWH, SUB_KWH, GAS_M3 = 10.0, 6.0, 0.5  # per interval
GAS_MISSING = set(range(0, N, 30))  # 100 intervals without gas data

SITES = """
INSERT INTO sites (site_id, name, site_type, province, city, baseline_year) VALUES
  ('rev-a', 'Review test park A', 'park', 'sichuan', 'Chengdu', 2026),
  ('rev-b', 'Review test park B', 'park', 'guangdong', 'Shenzhen', 2026)
ON CONFLICT DO NOTHING;
INSERT INTO meters (meter_id, site_id, carrier, unit, canonical_unit, gateway_id, parent_id,
  register_max, max_rate_per_h) VALUES
  ('rev-a-grid', 'rev-a', 'grid_import', 'kWh', 'kWh', 'gw', NULL, 1e9, 1e5),
  ('rev-a-sub', 'rev-a', 'grid_import', 'kWh', 'kWh', 'gw', 'rev-a-grid', 1e9, 1e5),
  ('rev-a-gas', 'rev-a', 'natural_gas', 'm3', 'm3', 'gw', NULL, 1e9, 1e5),
  ('rev-b-grid', 'rev-b', 'grid_import', 'kWh', 'kWh', 'gw', NULL, 1e9, 1e5)
ON CONFLICT DO NOTHING;
"""


def _write_intervals(url: str, rows: list[tuple[str, str, int, str, float, float, str]]
                     ) -> None:
    """Write energy and emission rows like the sink: (meter, site, k, carrier, quantity, tce,
    kind) with kind grid or gas."""
    energy, emissions = [], []
    for meter, site, k, carrier, qty, tce, kind in rows:
        t = START + timedelta(minutes=15 * k)
        energy.append((meter, t, 900, site, carrier, qty, "kWh" if kind == "grid" else "m3",
                       tce, 900.0, "measured"))
        if kind == "grid":
            region = "sichuan" if site == "rev-a" else "guangdong"
            emissions.append((meter, t, "location", "scope2", site, qty * SICHUAN,
                              f"grid.avg.{region}", "2023", SICHUAN, "kgCO2/kWh"))
            emissions.append((meter, t, "market", "scope2", site, qty * EXCL,
                              "grid.excl_market.national", "2023", EXCL, "kgCO2/kWh"))
        else:
            for method in ("location", "market"):
                emissions.append((meter, t, method, "scope1", site, qty * GAS,
                                  "fuel.natural_gas", "gbt32150-2015", GAS, "kgCO2/m3"))
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO energy_intervals (meter_id, interval_start, interval_s, site_id,"
            " carrier, quantity, quantity_unit, energy_tce, covered_s, quality)"
            " SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::int[], %s::text[],"
            " %s::text[], %s::float8[], %s::text[], %s::float8[], %s::float8[], %s::text[])"
            " ON CONFLICT (meter_id, interval_start) DO UPDATE SET quantity = excluded.quantity,"
            " energy_tce = excluded.energy_tce, updated_at = now()",
            [list(c) for c in zip(*energy, strict=True)])
        conn.execute(
            "INSERT INTO emission_intervals (meter_id, interval_start, method, scope, site_id,"
            " emissions_kgco2, factor_id, factor_version, factor_value, factor_unit)"
            " SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[],"
            " %s::text[], %s::float8[], %s::text[], %s::text[], %s::float8[], %s::text[])"
            " ON CONFLICT (meter_id, interval_start, method) DO UPDATE SET"
            " emissions_kgco2 = excluded.emissions_kgco2, updated_at = now()",
            [list(c) for c in zip(*emissions, strict=True)])


def _nzc(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return nzc(*args)


@pytest.fixture(scope="module")
def api(services: Settings) -> Iterator[dict[str, Any]]:
    s = services
    with psycopg.connect(s.database_admin_url) as conn:
        conn.execute(SITES)
    grid = [("rev-a-grid", "rev-a", k, "grid_import", GRID_KWH, GRID_KWH * KGCE_KWH / 1000,
             "grid") for k in range(N)]
    sub = [("rev-a-sub", "rev-a", k, "grid_import", SUB_KWH, SUB_KWH * KGCE_KWH / 1000, "grid")
           for k in range(N)]
    gas = [("rev-a-gas", "rev-a", k, "natural_gas", GAS_M3, GAS_M3 * KGCE_M3 / 1000, "gas")
           for k in range(N) if k not in GAS_MISSING]
    half = [("rev-b-grid", "rev-b", k, "grid_import", GRID_KWH, GRID_KWH * KGCE_KWH / 1000,
             "grid") for k in range(N // 2)]
    _write_intervals(s.database_url, grid + sub + gas + half)

    tokens = add_users((("admin", "admin", []), ("rita", "reviewer", []),
                        ("mia", "site_manager", ["rev-a"]), ("max", "site_manager", ["rev-b"]),
                        ("fay", "facility_staff", ["rev-a"]),
                        ("gone", "site_manager", ["rev-a"])))
    with running_api(s, API_PORT, "api-test.log"):
        yield {"tokens": tokens, "settings": s}


def _h(api: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api['tokens'][who]}"}


def _call(api: dict[str, Any], who: str | None, method: str, path: str,
          body: Any = None) -> httpx.Response:
    headers = _h(api, who) if who else {}
    return httpx.request(method, f"{BASE}{path}", headers=headers, json=body, timeout=60)


def test_full_close_of_a_month(api: dict[str, Any]) -> None:
    s = api["settings"]
    # expected by hand: every grid interval 10 kWh, gas 0.5 m3 in 2876 of 2976 intervals
    grid_kwh = N * GRID_KWH
    gas_m3 = (N - len(GAS_MISSING)) * GAS_M3
    scope1_t = gas_m3 * GAS / 1000
    s2_loc_t = grid_kwh * SICHUAN / 1000
    s2_mkt_t = grid_kwh * EXCL / 1000
    tce = grid_kwh * KGCE_KWH / 1000 + gas_m3 * KGCE_M3 / 1000

    v = _call(api, "mia", "GET", f"/api/v1/sites/rev-a/months/{MONTH}").json()
    f = v["close"]["figures"]
    assert v["state"]["state"] == "draft" and not v["frozen"]
    assert f["energy.grid_import"]["value"] == pytest.approx(grid_kwh)
    assert f["energy.grid_import"]["unit"] == "kWh"
    assert f["energy.natural_gas"]["value"] == pytest.approx(gas_m3)
    assert f["scope1"]["value"] == pytest.approx(scope1_t, rel=1e-6)
    assert f["scope2_location"]["value"] == pytest.approx(s2_loc_t, rel=1e-6)
    assert f["scope2_market"]["value"] == pytest.approx(s2_mkt_t, rel=1e-6)
    assert f["energy_consumed"]["value"] == pytest.approx(tce, rel=1e-5)
    assert "net_location" not in f  # Sichuan: the Guangdong net line does not apply
    gas_q = f["energy.natural_gas"]["quality"]
    assert gas_q["completeness"] == pytest.approx((N - 100) / N, abs=1e-6)
    # sub-meter 6 of the 10 kWh: 4 kWh per interval unmetered
    assert f["energy.grid_import"]["quality"]["unmetered_remainder"] == pytest.approx(N * 4.0)
    assert f["scope1"]["quality"]["factor_versions"] == ["fuel.natural_gas gbt32150-2015"]

    # a bill 10 % off blocks submission, in words with its numbers
    r = _call(api, "mia", "POST", "/api/v1/sites/rev-a/bills",
              {"month": MONTH, "carrier": "grid_import", "quantity": grid_kwh * 1.1,
               "unit": "kWh"})
    assert r.status_code == 201
    r = _call(api, "mia", "POST", f"/api/v1/sites/rev-a/months/{MONTH}/submit")
    assert r.status_code == 422
    failed = [c for c in r.json()["checks"] if not c["passed"]]
    assert [c["check"] for c in failed] == ["bills"]
    assert "9.1%" in failed[0]["message"]  # |29760 - 32736| / 32736
    # the corrected bill (MWh) replaces it; history keeps both
    r = _call(api, "mia", "POST", "/api/v1/sites/rev-a/bills",
              {"month": MONTH, "carrier": "grid_import", "quantity": 29.80, "unit": "MWh"})
    bills = _call(api, "mia", "GET", "/api/v1/sites/rev-a/bills").json()
    assert [b["current"] for b in bills] == [False, True]

    r = _call(api, "mia", "POST", f"/api/v1/sites/rev-a/months/{MONTH}/submit")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "submitted"
    # data arriving after the submission: the reviewer cannot verify what was not submitted
    _write_intervals(s.database_url, [("rev-a-gas", "rev-a", 60, "natural_gas", GAS_M3,
                                       GAS_M3 * KGCE_M3 / 1000, "gas")])
    scope1_t += GAS_M3 * GAS / 1000
    r = _call(api, "rita", "POST", f"/api/v1/sites/rev-a/months/{MONTH}/verify")
    assert r.status_code == 409 and "changed since they were submitted" in r.text
    r = _call(api, "rita", "POST", f"/api/v1/sites/rev-a/months/{MONTH}/return",
              {"comment": "请附上燃气账单 / attach the gas bill"})
    assert r.json()["state"] == "returned"
    assert _call(api, "mia", "GET", f"/api/v1/sites/rev-a/months/{MONTH}").json()[
        "state"]["comment"] == "请附上燃气账单 / attach the gas bill"
    assert _call(api, "rita", "POST",
                 f"/api/v1/sites/rev-a/months/{MONTH}/verify").status_code == 409
    assert _call(api, "mia", "POST",
                 f"/api/v1/sites/rev-a/months/{MONTH}/submit").status_code == 200
    r = _call(api, "rita", "POST", f"/api/v1/sites/rev-a/months/{MONTH}/verify")
    assert r.status_code == 200, r.text
    sha1 = r.json()["sha256"]

    # frozen: the view is the snapshot; hash stable and equal to SHA-256 of the canonical text
    v1 = _call(api, "fay", "GET", f"/api/v1/sites/rev-a/months/{MONTH}").json()
    assert v1["frozen"] and v1["snapshot_sha256"] == sha1
    snaps = _call(api, "fay", "GET", f"/api/v1/sites/rev-a/months/{MONTH}/snapshots").json()
    assert len(snaps) == 1 and snaps[0]["verified_by"] == "rita"
    assert hashlib.sha256(snaps[0]["canonical"].encode()).hexdigest() == sha1
    canon = json.loads(snaps[0]["canonical"])
    assert json.dumps(canon, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False) == snaps[0]["canonical"]
    assert _call(api, "rita", "GET",
                 f"/api/v1/sites/rev-a/months/{MONTH}").json()["snapshot_sha256"] == sha1

    # a late gas interval for the frozen month: the live figures move, the snapshot does not
    _write_intervals(s.database_url, [("rev-a-gas", "rev-a", 30, "natural_gas", GAS_M3,
                                       GAS_M3 * KGCE_M3 / 1000, "gas")])
    found = _call(api, "rita", "POST", "/api/v1/sites/rev-a/restatements/scan").json()
    assert len(found) == 1 and found[0]["created"]
    diffs = {d["figure"]: d for d in found[0]["differences"]}
    assert diffs["energy.natural_gas"]["new"] - diffs["energy.natural_gas"]["old"] == \
        pytest.approx(GAS_M3)
    assert diffs["scope1"]["change"] == pytest.approx(GAS_M3 * GAS / 1000, abs=2e-6)
    assert "1 energy intervals written after verification" in found[0]["reason"]
    again = _call(api, "fay", "GET", f"/api/v1/sites/rev-a/months/{MONTH}").json()
    assert again["snapshot_sha256"] == sha1
    assert again["close"]["figures"]["scope1"]["value"] == pytest.approx(scope1_t, rel=1e-6)
    assert again["open_restatement"] == found[0]["restatement_id"]

    rid = found[0]["restatement_id"]
    assert _call(api, "mia", "POST", f"/api/v1/restatements/{rid}/accept").status_code == 403
    r = _call(api, "rita", "POST", f"/api/v1/restatements/{rid}/accept",
              {"comment": "late gas reading accepted"})
    assert r.status_code == 200 and r.json()["state"] == "accepted"
    snaps = _call(api, "rita", "GET", f"/api/v1/sites/rev-a/months/{MONTH}/snapshots").json()
    assert [x["version"] for x in snaps] == [1, 2]
    assert snaps[0]["sha256"] == sha1  # version 1 kept as it was
    v2 = _call(api, "rita", "GET", f"/api/v1/sites/rev-a/months/{MONTH}").json()
    assert v2["state"]["version"] == 2 and v2["snapshot_sha256"] == snaps[1]["sha256"]
    assert v2["close"]["figures"]["scope1"]["value"] == pytest.approx(
        scope1_t + GAS_M3 * GAS / 1000, rel=1e-6)

    # the exports: expected columns and values
    x = _call(api, "rita", "GET", "/api/v1/sites/rev-a/monthly.xlsx?year=2026")
    assert x.status_code == 200
    ws = load_workbook(io.BytesIO(x.content))["monthly"]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == ["site_id", "month", "state", "version", "figure", "value", "unit",
                             "completeness", "estimated_share", "quarantined_readings",
                             "factor_versions", "snapshot_sha256"]
    got = {(r[1], r[4]): r for r in rows[1:]}
    row = got[(MONTH, "scope2_location")]
    assert row[2] == "verified" and row[3] == 2 and row[6] == "tCO2"
    assert row[5] == pytest.approx(s2_loc_t, rel=1e-6)
    assert got[(MONTH, "energy.grid_import")][5] == pytest.approx(grid_kwh)
    c = _call(api, "rita", "GET", "/api/v1/sites/rev-a/monthly.csv?year=2026")
    assert c.text.splitlines()[0].lstrip("\ufeff").split(",")[:5] == [
        "site_id", "month", "state", "version", "figure"]

    # the annual disclosure holds the verified month only
    d = _call(api, "mia", "GET", "/api/v1/sites/rev-a/disclosure/2026").json()
    assert d["verified_months"] == [MONTH] and not d["complete"]
    assert d["totals"]["scope2_location"]["value"] == pytest.approx(s2_loc_t, rel=1e-6)
    ev = _call(api, "mia", "GET", "/api/v1/sites/rev-a/self-evaluation?year=2026").json()
    row = {r["indicator"]: r for r in ev["indicators"]}["scope2_location"]
    assert (row["baseline"], row["change"]) == (pytest.approx(s2_loc_t, rel=1e-6), 0.0)

    # another late interval: a second restatement, rejected; the same figures are not
    # proposed again, version 2 stays
    _write_intervals(s.database_url, [("rev-a-gas", "rev-a", 90, "natural_gas", GAS_M3,
                                       GAS_M3 * KGCE_M3 / 1000, "gas")])
    found = _call(api, "rita", "POST", "/api/v1/sites/rev-a/restatements/scan").json()
    assert len(found) == 1 and found[0]["restatement_id"] != rid
    r = _call(api, "rita", "POST", f"/api/v1/restatements/{found[0]['restatement_id']}/reject",
              {"comment": "meter reading not confirmed"})
    assert r.json()["state"] == "rejected" and r.json()["decided_by"] == "rita"
    assert _call(api, "rita", "POST", "/api/v1/sites/rev-a/restatements/scan").json() == []
    assert _call(api, "rita", "GET", f"/api/v1/sites/rev-a/months/{MONTH}").json()[
        "snapshot_sha256"] == snaps[1]["sha256"]
    assert httpx.get(f"{BASE}/docs", timeout=10).status_code == 200


def test_recompute_of_a_frozen_month_opens_a_restatement(api: dict[str, Any]) -> None:
    from analytics.recompute import recompute
    from carbon.factors import FactorLibrary

    s = api["settings"]
    audit = recompute(s.database_url, "rev-a", START, START + timedelta(days=31),
                      FactorLibrary(), data_year=2021)
    found = _call(api, "rita", "POST", "/api/v1/sites/rev-a/restatements/scan").json()
    assert len(found) == 1
    reason = found[0]["reason"]
    assert f"recomputed with other factors (recompute_audit {audit['audit_id']})" in reason
    assert "factors changed: " in reason and "grid.avg.sichuan 2023" in reason
    r = _call(api, "rita", "POST", f"/api/v1/restatements/{found[0]['restatement_id']}/reject")
    assert r.status_code == 200 and r.json()["state"] == "rejected"


def test_failed_checks_block_submission(api: dict[str, Any]) -> None:
    r = _call(api, "max", "POST", f"/api/v1/sites/rev-b/months/{MONTH}/submit")
    assert r.status_code == 422
    failed = {c["check"]: c for c in r.json()["checks"] if not c["passed"]}
    assert set(failed) == {"completeness"}
    assert "rev-b-grid 50.0% (1488 of 2976 intervals)" in failed["completeness"]["message"]
    v = _call(api, "max", "GET", f"/api/v1/sites/rev-b/months/{MONTH}").json()
    assert v["state"]["state"] == "draft"
    assert "net_location" in v["close"]["figures"]  # Guangdong: net emissions reported


# -- every endpoint, from the route table ---------------------------------------------------

BODIES = {
    "return_": {"comment": "x"},
    "set_denominator": {"month": MONTH, "kind": "population", "value": 1.0, "unit": "person"},
    "add_bill": {"month": MONTH, "carrier": "grid_import", "quantity": 1.0, "unit": "kWh"},
}


def _routes() -> list[tuple[str, str, str, str]]:
    """(method, path, route name, action) of every API route and of the web view's JSON
    (``/web/api/*``), from the app itself."""
    from fastapi.routing import APIRoute

    from api.app import create_app
    from api.auth import Need
    from api.web.routes import router as web_router

    app = create_app(Settings.from_env())
    out = []
    # the app's own routes, and the web view's router that it includes (FastAPI lists an
    # included router as one entry); a route the app did not serve would answer 404, not
    # the 401 checked below
    for r in [*app.routes, *web_router.routes]:
        if not isinstance(r, APIRoute) or not r.path.startswith(("/api/", "/web/api/")):
            continue
        needs = [d.call for d in r.dependant.dependencies if isinstance(d.call, Need)]
        assert len(needs) == 1, f"{r.path} does not use the one authorisation dependency"
        for m in sorted(r.methods):
            out.append((m, r.path, r.name, needs[0].action))
    assert len(out) >= 25
    assert {p for _, p, _, _ in out} >= {"/web/api/overview", "/web/api/site/{site_id}"}
    return out


def _b_restatement(api: dict[str, Any]) -> int:
    with psycopg.connect(api["settings"].database_admin_url) as conn:
        conn.execute("INSERT INTO month_closes (site_id, month) VALUES ('rev-b', '2026-09-01')"
                     " ON CONFLICT DO NOTHING")
        row = conn.execute(
            "INSERT INTO restatements (site_id, month, from_version, old_figures, new_figures,"
            " differences, reason, new_canonical, new_sha256, state) VALUES ('rev-b',"
            " '2026-09-01', 1, '{}', '{}', '[]', 'fixture', '{}', %s, 'rejected')"
            " RETURNING restatement_id", ("0" * 64,)).fetchone()
        assert row is not None
        return int(row[0])


def _fill(path: str, site: str, rid: int) -> str:
    return (path.replace("{site_id}", site).replace("{month}", MONTH)
            .replace("{year}", "2026").replace("{restatement_id}", str(rid))
            + ("?year=2026" if path.endswith(("monthly", ".csv", ".xlsx", "evaluation"))
               else ""))


def test_every_endpoint_is_scoped(api: dict[str, Any]) -> None:
    from api.auth import PERMISSIONS

    rid_b = _b_restatement(api)
    problems = []
    for method, path, name, action in _routes():
        body = BODIES.get(name)
        url_b = _fill(path, "rev-b", rid_b)
        # site manager of A on site B's data and actions: refused
        if "{site_id}" in path or "{restatement_id}" in path:
            r = _call(api, "mia", method, url_b, body)
            if r.status_code not in (403, 404):
                problems.append(f"mia {method} {url_b}: {r.status_code}")
        # a role without the action is refused on its own site
        for who, role in (("fay", "facility_staff"), ("mia", "site_manager"),
                          ("rita", "reviewer"), ("admin", "admin")):
            if role not in PERMISSIONS[action]:
                r = _call(api, who, method, _fill(path, "rev-a", rid_b), body)
                if r.status_code != 403:
                    problems.append(f"{who} ({role}) {method} {path}: {r.status_code}")
        # no token, a malformed one: 401
        for headers in ({}, {"Authorization": "Bearer nzc_x_y"}):
            r = httpx.request(method, f"{BASE}{url_b}", headers=headers, json=body, timeout=30)
            if r.status_code != 401:
                problems.append(f"anonymous {method} {path}: {r.status_code}")
    assert not problems, "\n".join(problems)
    # list routes filter by scope
    assert [s["site_id"] for s in _call(api, "mia", "GET", "/api/v1/sites").json()] == ["rev-a"]
    assert {e["site_id"] for e in _call(api, "max", "GET", "/api/v1/audit").json()} <= {"rev-b"}
    assert {c["site_id"] for c in _call(api, "max", "GET", "/api/v1/closes").json()} <= {
        "rev-b"}
    assert [s["site_id"] for s in _call(api, "mia", "GET", "/web/api/overview").json()[
        "sites"]] == ["rev-a"]


def test_bills_import_from_a_file(api: dict[str, Any], tmp_path: Any) -> None:
    s = api["settings"]
    bad = tmp_path / "bad.csv"
    bad.write_text("site_id,month,carrier,quantity,unit\nrev-b,2026-10,grid_import,12x,kWh\n",
                   encoding="utf-8")
    out = _nzc(s, "bills", "import", str(bad))
    assert out.returncode != 0 and "bad.csv:2" in out.stderr
    good = tmp_path / "bills.csv"
    good.write_text("site_id,month,carrier,quantity,unit,amount_cny,reference\n"
                    "rev-b,2026-10,grid_import,14880,kWh,9820.5,GD-2026-10-001\n"
                    "rev-b,2026-10,grid_import,14.9,MWh,,GD-2026-10-001b\n", encoding="utf-8")
    out = _nzc(s, "bills", "import", str(good), "--by", "clerk")
    assert out.returncode == 0, out.stderr
    bills = _call(api, "max", "GET", "/api/v1/sites/rev-b/bills?month=2026-10").json()
    assert [(b["quantity"], b["unit"], b["current"], b["entered_by"]) for b in bills] == [
        (14880.0, "kWh", False, "clerk"), (14.9, "MWh", True, "clerk")]
    audit = _call(api, "max", "GET", "/api/v1/sites/rev-b/audit").json()
    assert [e["details"]["via"] for e in audit if e["action"] == "bill.enter"][:2] == [
        "import bills.csv", "import bills.csv"]
    # rev-b's grid: 1488 intervals x 10 kWh = 14880 kWh vs the current bill 14900 kWh: 0.13 %
    checks = {c["check"]: c for c in _call(
        api, "max", "GET", f"/api/v1/sites/rev-b/months/{MONTH}").json()["checks"]}
    assert checks["bills"]["passed"]
    assert checks["bills"]["numbers"]["bills"][0]["difference"] == pytest.approx(
        20 / 14900, abs=1e-6)


def test_open_alerts_check_counts_firing_data_quality_alerts_of_the_month(
        api: dict[str, Any]) -> None:
    """The check reads the alerts of migration 011: only *firing* alerts of a data-quality
    kind (completeness, estimated share) of this site and about this month hold it; a night
    load alert, a resolved one, another site's or another month's do not. In a transaction
    that is rolled back, so the real table is left as it was."""
    from db import review as dbr

    october = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)   # 2026-10-01 00:00 Beijing
    november = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    rows = [("c-a-oct", "completeness", "rev-a", "firing", october),
            ("e-a-oct", "estimated_share", "rev-a", "firing", october),
            ("c-a-oct-old", "completeness", "rev-a", "resolved", october),
            ("n-a-oct", "night_load", "rev-a", "firing", october),
            ("c-b-oct", "completeness", "rev-b", "firing", october),
            ("c-a-nov", "completeness", "rev-a", "firing", november)]
    with psycopg.connect(api["settings"].database_admin_url, row_factory=dict_row) as conn:
        for fp, kind, site, state, month_start in rows:
            conn.execute(
                "INSERT INTO alerts (fingerprint, rule_id, kind, site_id, subject, labels,"
                " state, severity, evidence) VALUES (%s, %s, %s, %s, 'm', '{}', %s, 'info',"
                " jsonb_build_object('month_start', %s::text))",
                ("probe-" + fp, kind, kind, site, state, month_start.isoformat()))
        assert dbr.open_alerts(conn, "rev-a", october) == 2
        assert dbr.open_alerts(conn, "rev-a", november) == 1
        assert dbr.open_alerts(conn, "rev-a") == 3
        assert dbr.open_alerts(conn, "rev-b", november) == 0
        conn.rollback()


def test_deleted_user_token_fails_everywhere(api: dict[str, Any]) -> None:
    assert _call(api, "gone", "GET", "/api/v1/me").status_code == 200
    out = _nzc(api["settings"], "users", "delete", "gone")
    assert out.returncode == 0, out.stderr
    codes = {(m, p): _call(api, "gone", m, _fill(p, "rev-a", 1), BODIES.get(n)).status_code
             for m, p, n, _ in _routes()}
    assert set(codes.values()) == {401}, codes


def test_audit_log_is_append_only_and_tamper_evident(api: dict[str, Any]) -> None:
    s = api["settings"]
    ok = _nzc(s, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with psycopg.connect(s.database_url) as conn:  # the application's role
        for sql in ("UPDATE audit_log SET actor = 'x' WHERE seq = 2",
                    "DELETE FROM audit_log WHERE seq = 2", "TRUNCATE audit_log",
                    "UPDATE close_snapshots SET canonical = '{}'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()
    with psycopg.connect(s.database_admin_url) as conn:  # even the owner hits the trigger
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_log SET actor = 'x' WHERE seq = 2")
        conn.rollback()
        # the owner bypasses the trigger: alter one entry, remove another
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET details = '{\"comment\": \"fine\"}'"
                     " WHERE action = 'close.return'")
        conn.execute("DELETE FROM audit_log WHERE seq = 3")
        conn.commit()
        ret = conn.execute("SELECT seq FROM audit_log WHERE action = 'close.return'"
                           ).fetchone()
        assert ret is not None
    bad = _nzc(s, "audit", "verify")
    assert bad.returncode == 1
    assert "entries 3..3 are missing (removed)" in bad.stdout
    assert f"entry {ret[0]} (close.return): content does not match its hash" in bad.stdout
    assert "entry 4: prev_hash does not match" in bad.stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-x", "-q"]))


def test_scorecard_route_serves_the_scorecard(api: dict[str, Any]) -> None:
    """The API's scorecard is analytics.scorecard's, for the caller's own site only; the
    month's grid energy behind the emissions indicator is the metered one."""
    from analytics.scorecard import scorecard_for_site

    s = api["settings"]
    r = _call(api, "mia", "GET", "/api/v1/sites/rev-a/scorecard?period=2026-10")
    assert r.status_code == 200, r.text
    body = r.json()
    direct = scorecard_for_site(s.database_reader_url, "rev-a", "2026-10")
    assert [i["id"] for i in body["indicators"]] == [i["id"] for i in direct["indicators"]]
    assert [i["status"] for i in body["indicators"]] == \
        [i["status"] for i in direct["indicators"]]
    for got, want in zip(body["indicators"], direct["indicators"], strict=True):
        if isinstance(want["value"], float):
            assert got["value"] == pytest.approx(want["value"], rel=1e-6), want["id"]
        else:
            assert got["value"] == want["value"], want["id"]
    assert _call(api, "max", "GET", "/api/v1/sites/rev-a/scorecard").status_code == 403
    assert _call(api, "mia", "GET",
                 "/api/v1/sites/rev-a/scorecard?period=bogus").status_code == 422
