"""The reviewer's pages and the signed reports (issue 15), end to end: real PostgreSQL, the
API app run by ``nzc api`` (uvicorn) over real HTTP, Debian's headless Chromium driven by
playwright (no browser download), poppler's tools on the PDFs.

* a reviewer logs in with the API's token, opens a submitted month, reads its checks,
  verifies it and sees it frozen with the snapshot's hash (the API's hash);
* a site manager of another site is refused that month's page and its API (403);
* a late reading opens a restatement: the page shows old vs new side by side, it is accepted
  and the month becomes version 2;
* the monthly PDF (frozen and live) and the yearly disclosure served over HTTP: fonts
  embedded, every text put in comes out (no tofu), a page renders to PNG, and its numbers are
  the API's JSON numbers for that month and year.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, sync_playwright

from core.settings import Settings
from reports.document import fmt
from tests.integration.conftest import _OFF, REPO, add_users, nzc, running_api
from tests.integration.test_review_api import GAS_M3, KGCE_KWH, KGCE_M3, N, _write_intervals
from tests.integration.test_web_view import CHROMIUM, CHROMIUM_ARGS
from tests.unit.test_reports import _check_pdf, _squash

pytestmark = pytest.mark.services

API_PORT = 18090 + _OFF
BASE = f"http://127.0.0.1:{API_PORT}"
MONTH = "2026-10"
SITES = """
INSERT INTO sites (site_id, name, site_type, province, city, baseline_year) VALUES
  ('ui-a', '审核测试园区 A', 'park', 'sichuan', 'Chengdu', 2026),
  ('ui-b', '审核测试园区 B', 'park', 'guangdong', 'Shenzhen', 2026)
ON CONFLICT DO NOTHING;
INSERT INTO meters (meter_id, site_id, carrier, unit, canonical_unit, gateway_id, parent_id,
  register_max, max_rate_per_h) VALUES
  ('ui-a-grid', 'ui-a', 'grid_import', 'kWh', 'kWh', 'gw', NULL, 1e9, 1e5),
  ('ui-a-gas', 'ui-a', 'natural_gas', 'm3', 'm3', 'gw', NULL, 1e9, 1e5),
  ('ui-b-grid', 'ui-b', 'grid_import', 'kWh', 'kWh', 'gw', NULL, 1e9, 1e5)
ON CONFLICT DO NOTHING;
"""
LATE = 7  # the interval of ui-a's gas meter that arrives after verification


_nzc = nzc


@pytest.fixture(scope="module")
def ui(services: Settings) -> Iterator[dict[str, Any]]:
    s = services
    with psycopg.connect(s.database_admin_url) as conn:
        conn.execute(SITES)
    rows = [("ui-a-grid", "ui-a", k, "grid_import", 8.0, 8.0 * KGCE_KWH / 1000, "grid")
            for k in range(N)]
    rows += [("ui-a-gas", "ui-a", k, "natural_gas", GAS_M3, GAS_M3 * KGCE_M3 / 1000, "gas")
             for k in range(N) if k != LATE]
    rows += [("ui-b-grid", "ui-b", k, "grid_import", 5.0, 5.0 * KGCE_KWH / 1000, "grid")
             for k in range(N)]
    _write_intervals(s.database_url, rows)
    tokens = add_users((("rose", "reviewer", []), ("mike", "site_manager", ["ui-a"]),
                        ("bob", "site_manager", ["ui-b"])))
    with running_api(s, API_PORT, "api-ui-test.log"), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield {"tokens": tokens, "settings": s, "browser": browser}
        finally:
            browser.close()


def _api(ui: dict[str, Any], who: str, method: str, path: str, body: Any = None
         ) -> httpx.Response:
    return httpx.request(method, f"{BASE}{path}", json=body, timeout=120,
                         headers={"Authorization": f"Bearer {ui['tokens'][who]}"})


def _login(ui: dict[str, Any], who: str, requested: list[str]) -> Page:
    browser: Browser = ui["browser"]
    page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000}
                               ).new_page()
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{BASE}/review/")
    assert urlsplit(page.url).path == "/review/login"  # not logged in: the form
    page.fill("#name", who)
    page.fill("#token", ui["tokens"][who])
    page.click("#login")
    page.wait_for_url(f"{BASE}/review/")
    assert who in page.inner_text("#who")
    cookie = next(c for c in page.context.cookies() if c["name"] == "nzc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    return page


def test_reviewer_logs_in_reads_checks_and_verifies(ui: dict[str, Any]) -> None:
    r = _api(ui, "mike", "POST", f"/api/v1/sites/ui-a/months/{MONTH}/submit")
    assert r.status_code == 200, r.text
    requested: list[str] = []
    page = _login(ui, "rose", requested)
    link = page.locator(f'tr[data-site="ui-a"] a[data-month="{MONTH}"]')
    assert "已提交 submitted" in link.inner_text()
    link.click()
    page.wait_for_url(f"{BASE}/review/sites/ui-a/months/{MONTH}")
    assert page.inner_text("#state") == "已提交 submitted"
    assert page.locator("#live").is_visible()
    checks = {c.get_attribute("data-check"): c.inner_text()
              for c in page.locator("tr.check").all()}
    assert set(checks) == {"month_ended", "completeness", "daily_vs_monthly", "bills",
                           "open_alerts"}
    # the gas meter misses one of 2976 intervals: 2975 / 2976 = 99.97 %, in words and numbers
    assert "ui-a-gas 100.0% of 2976 intervals" in checks["completeness"]
    assert "通过 pass" in checks["completeness"]
    api_view = _api(ui, "rose", "GET", f"/api/v1/sites/ui-a/months/{MONTH}").json()
    grid = page.inner_text('tr[data-figure="energy.grid_import"] td.value')
    assert grid == fmt(api_view["close"]["figures"]["energy.grid_import"]["value"])
    assert grid == fmt(N * 8.0)  # 2976 intervals x 8 kWh, by hand
    assert page.locator("#return").is_visible() and page.locator("#submit").count() == 0

    # returned with a comment, re-submitted by the site manager, then verified
    page.fill("#return-comment", "请核对燃气表 / check the gas meter")
    page.click("#return")
    page.wait_for_selector("#note")
    assert page.inner_text("#state") == "已退回 returned"
    assert page.inner_text("#comment") == "请核对燃气表 / check the gas meter"
    assert page.locator("#verify").count() == 0
    r = _api(ui, "mike", "POST", f"/api/v1/sites/ui-a/months/{MONTH}/submit")
    assert r.status_code == 200, r.text
    page.reload()
    page.click("#verify")
    page.wait_for_selector("#frozen")
    assert page.inner_text("#state") == "已核证 verified" and page.inner_text("#version") == "1"
    frozen = _api(ui, "rose", "GET", f"/api/v1/sites/ui-a/months/{MONTH}").json()
    assert frozen["frozen"] and page.inner_text("#sha256") == frozen["snapshot_sha256"]
    assert page.locator("#verify").count() == 0
    page.screenshot(path=str(REPO / ".state" / "artifacts" / "review-month.png"),
                    full_page=True)
    hosts = {urlsplit(u).hostname for u in requested}
    assert hosts == {"127.0.0.1"}, f"requests left loopback: {sorted(map(str, hosts))}"
    page.context.close()


def test_manager_of_another_site_is_refused_page_and_api(ui: dict[str, Any]) -> None:
    page = _login(ui, "bob", [])
    assert [r.get_attribute("data-site") for r in page.locator("tr[data-site]").all()] == [
        "ui-b"]
    resp = page.goto(f"{BASE}/review/sites/ui-a/months/{MONTH}")
    assert resp is not None and resp.status == 403
    assert "无权访问" in page.inner_text("#refused")
    assert "ui-a-grid" not in page.content()
    # the same dependency refuses the API, with the token or with the page's cookie
    for path in (f"/api/v1/sites/ui-a/months/{MONTH}",
                 f"/api/v1/sites/ui-a/months/{MONTH}/report.pdf",
                 "/api/v1/sites/ui-a/years/2026/disclosure.pdf"):
        assert _api(ui, "bob", "GET", path).status_code == 403
        assert page.request.get(f"{BASE}{path}").status == 403
    assert page.request.get(f"{BASE}/api/v1/sites/ui-b/months/{MONTH}").status == 200
    # a site manager may not verify, from the page either; submitting his own site works
    assert page.request.post(f"{BASE}/review/sites/ui-b/months/{MONTH}/verify").status == 403
    page.goto(f"{BASE}/review/sites/ui-b/months/{MONTH}")
    assert page.locator("#verify").count() == 0 and page.locator("#return").count() == 0
    page.click("#submit")
    page.wait_for_selector("#note")
    assert page.inner_text("#state") == "已提交 submitted"
    page.context.close()


def test_restatement_old_vs_new_accepted_in_the_browser(ui: dict[str, Any]) -> None:
    s = ui["settings"]
    before = _api(ui, "rose", "GET", f"/api/v1/sites/ui-a/months/{MONTH}").json()
    _write_intervals(s.database_url, [("ui-a-gas", "ui-a", LATE, "natural_gas", GAS_M3,
                                       GAS_M3 * KGCE_M3 / 1000, "gas")])
    found = _api(ui, "rose", "POST", "/api/v1/sites/ui-a/restatements/scan").json()
    assert len(found) == 1
    rid = found[0]["restatement_id"]
    old_gas = (N - 1) * GAS_M3  # by hand: 2975 intervals of 0.5 m3, then one more
    page = _login(ui, "rose", [])
    page.goto(f"{BASE}/review/sites/ui-a/restatements")
    sec = page.locator(f"#r{rid}")
    assert sec.get_attribute("data-state") == "open"
    row = sec.locator('tr[data-figure="energy.natural_gas"]')
    assert row.locator("td.old").inner_text() == fmt(old_gas)
    assert row.locator("td.new").inner_text() == fmt(old_gas + GAS_M3)
    assert "1 energy intervals written after verification" in sec.inner_text()
    sec.locator("button.accept").click()
    page.wait_for_selector("#note")
    assert page.locator(f"#r{rid}").get_attribute("data-state") == "accepted"
    after = _api(ui, "rose", "GET", f"/api/v1/sites/ui-a/months/{MONTH}").json()
    assert after["state"]["version"] == 2
    assert after["snapshot_sha256"] != before["snapshot_sha256"]
    assert after["close"]["figures"]["energy.natural_gas"]["value"] == pytest.approx(
        old_gas + GAS_M3)
    page.goto(f"{BASE}/review/sites/ui-a/months/{MONTH}")
    assert page.inner_text("#version") == "2"
    assert page.inner_text("#sha256") == after["snapshot_sha256"]
    page.goto(f"{BASE}/review/audit")
    assert "restatement.accept" in page.inner_text("#audit")
    page.context.close()


def _figures_in(text: str, figures: dict[str, Any]) -> None:
    for name, f in figures.items():
        assert _squash(fmt(f["value"])) in text, f"{name} {fmt(f['value'])} not in the PDF"


def test_monthly_pdf_over_http_equals_the_api(ui: dict[str, Any]) -> None:
    from db.review import connect
    from reports.build import monthly_document

    s = ui["settings"]
    r = _api(ui, "rose", "GET", f"/api/v1/sites/ui-a/months/{MONTH}/report.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    with connect(s.database_url) as conn:
        doc = monthly_document(conn, s.database_reader_url, "ui-a",
                               date(2026, 10, 1), s.interval_s)
    texts = [t for t in doc.texts() if t != doc.generated_at]
    text = _check_pdf(r.content, "ui-monthly-frozen", texts)
    view = _api(ui, "rose", "GET", f"/api/v1/sites/ui-a/months/{MONTH}").json()
    _figures_in(text, view["close"]["figures"])
    assert view["snapshot_sha256"] in text and "核证人verifiedby:rose" in text
    assert "未经核证" not in text

    live = _api(ui, "bob", "GET", f"/api/v1/sites/ui-b/months/{MONTH}/report.pdf")
    text = _check_pdf(live.content, "ui-monthly-live", [])
    live_view = _api(ui, "bob", "GET", f"/api/v1/sites/ui-b/months/{MONTH}").json()
    _figures_in(text, live_view["close"]["figures"])
    assert "未经核证" in text and "已提交" in text  # submitted by bob, not verified
    assert "净排放量" in text  # Guangdong: net lines

    x = _api(ui, "rose", "GET", f"/api/v1/sites/ui-a/months/{MONTH}/report.xlsx")
    wb = load_workbook(io.BytesIO(x.content))
    totals = {r[0]: r for r in wb.worksheets[1].iter_rows(values_only=True) if r[0]}
    assert totals["碳排放总量（基于位置）"][2] == pytest.approx(
        view["close"]["figures"]["total_location"]["value"], abs=5e-4)


def test_yearly_disclosure_over_http_equals_the_api(ui: dict[str, Any]) -> None:
    r = _api(ui, "rose", "GET", "/api/v1/sites/ui-a/years/2026/disclosure.pdf")
    assert r.status_code == 200, r.text
    d = _api(ui, "rose", "GET", "/api/v1/sites/ui-a/disclosure/2026").json()
    assert d["verified_months"] == [MONTH]
    text = _check_pdf(r.content, "ui-yearly", ["2026年度碳排放信息披露", "2026-01", "2026-12"])
    _figures_in(text, d["totals"])
    assert d["sources"][0]["sha256"] in text
    ev = _api(ui, "rose", "GET", "/api/v1/sites/ui-a/self-evaluation?year=2026").json()
    for row in ev["indicators"]:
        assert _squash(fmt(row["current"])) in text
    x = _api(ui, "rose", "GET", "/api/v1/sites/ui-a/years/2026/disclosure.xlsx")
    wb = load_workbook(io.BytesIO(x.content))
    totals = {r[0]: r for r in wb.worksheets[2].iter_rows(values_only=True) if r[0]}
    assert totals["碳排放总量（基于位置）"][2] == pytest.approx(
        d["totals"]["total_location"]["value"], abs=5e-4)
    # 2976 x 8 kWh x 0.1564 kgCO2/kWh (Sichuan) + 2976 x 0.5 m3 gas x GAS, by hand
    from tests.integration.test_review_api import GAS, SICHUAN

    assert d["totals"]["total_location"]["value"] == pytest.approx(
        (N * 8.0 * SICHUAN + N * GAS_M3 * GAS) / 1000, rel=1e-6)


def test_nzc_report_writes_the_same_files(ui: dict[str, Any], tmp_path: Any) -> None:
    out = _nzc("report", "monthly", "--site", "ui-a", "--month", MONTH, "--excel",
               "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / f"ui-a-{MONTH}.xlsx").exists()
    view = _api(ui, "rose", "GET", f"/api/v1/sites/ui-a/months/{MONTH}").json()
    text = _check_pdf((tmp_path / f"ui-a-{MONTH}.pdf").read_bytes(), "ui-cli-monthly", [])
    _figures_in(text, view["close"]["figures"])
    assert view["snapshot_sha256"] in text
    out = _nzc("report", "yearly", "--site", "ui-a", "--year", "2026", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "ui-a-2026-disclosure.pdf" in out.stdout
