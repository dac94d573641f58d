"""The built-in web view in a real browser (Debian's headless Chromium, driven by
playwright-python; no browser download), fed by the real pipeline: readings published over
MQTT go through ingest, Kafka and the stream worker into PostgreSQL, the app (uvicorn on
loopback) serves the pages and their data, and the test checks that the overview lists every
site, that a chart has drawn data points, that a new reading appears on the site page without
a reload, and that no request leaves loopback. The web view is the API app's (one login,
one authorisation dependency): without a session a page goes to the login form and comes back
after it, the JSON answers 401; a site manager sees only their site on the overview and is
refused another site's page and JSON. Screenshots go to .state/artifacts/."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from api.web.app import make_app
from core.settings import Settings
from tests.integration.conftest import (
    _OFF,
    REPO,
    Pipeline,
    add_users,
    publish_payloads,
    query,
    wait_for,
)

pytestmark = pytest.mark.services

PORT = 18090 + _OFF
ARTIFACTS = REPO / ".state" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TOPIC = "nzc/v1/web-site/gw-web/readings"
STEP_S = 900
# register start [kWh or m3] and increase per 15 min
METERS = {"web-grid": (1000.0, 25.0), "web-office": (400.0, 10.0), "web-gas": (50.0, 1.5)}


def _payload(ts_s: int, registers: dict[str, float]) -> bytes:
    return json.dumps({"readings": [
        {"meter": m, "ts": ts_s * 1000, "register": round(v, 3),
         "unit": "m3" if m == "web-gas" else "kWh"} for m, v in registers.items()]}).encode()


@pytest.fixture(scope="module")
def web_data(pipeline: Pipeline) -> int:
    """Four hours of 15-minute registers up to now, through the real pipeline; returns the
    newest reading's time [s]."""
    s = pipeline.settings
    now = int(time.time())
    first = now - now % STEP_S - 16 * STEP_S
    msgs = []
    for k in range(17):
        msgs.append((TOPIC, _payload(first + k * STEP_S,
                                     {m: a + k * b for m, (a, b) in METERS.items()})))
    publish_payloads(s, msgs)
    wait_for(lambda: query(s, "SELECT count(*) FROM emission_intervals"
                              " WHERE meter_id = 'web-grid'")[0][0] >= 15,
             180, "the web-site emissions to reach the database")
    return first + 16 * STEP_S


@pytest.fixture(scope="module")
def server(services: Settings) -> Iterator[str]:
    os.environ["NZC_WEB_POLL_S"] = "1"
    config = uvicorn.Config(make_app(services), host="127.0.0.1", port=PORT,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, 30, f"uvicorn on 127.0.0.1:{PORT}", 0.1)
    try:
        yield f"http://127.0.0.1:{PORT}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        os.environ.pop("NZC_WEB_POLL_S", None)


@pytest.fixture(scope="module")
def users(services: Settings) -> dict[str, str]:
    """name -> token: a reviewer, the web site's manager (names unique per run)."""
    tag = secrets.token_hex(3)
    names = {"rev": f"web-rev-{tag}", "mgr": f"web-mgr-{tag}"}
    added = add_users(((names["rev"], "reviewer", []),
                       (names["mgr"], "site_manager", ["web-site"])))
    tokens = {}
    for who, name in names.items():
        tokens[who], tokens[f"{who}-name"] = added[name], name
    return tokens


def _login(browser: Browser, server: str, users: dict[str, str], who: str, path: str,
           requested: list[str]) -> Page:
    """A new browser session opens ``path``, is sent to the login form, logs in and is sent
    back to ``path``."""
    page = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN"
                               ).new_page()
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{server}{path}")
    assert urlsplit(page.url).path == "/review/login"  # no session: the login form
    page.fill("#name", users[f"{who}-name"])
    page.fill("#token", users[who])
    page.click("#login")
    page.wait_for_url(f"{server}{path}")
    assert users[f"{who}-name"] in page.inner_text("#who")
    return page


def _chart_points(page: Page, element_id: str) -> int:
    """Non-null data points in the ECharts chart's series."""
    return int(page.evaluate(
        """id => {
            const c = echarts.getInstanceByDom(document.getElementById(id));
            if (!c) return 0;
            return c.getOption().series.reduce((n, s) =>
                n + s.data.filter(v => v !== null && v !== undefined).length, 0);
        }""", element_id))


def _drawn_pixels(page: Page, element_id: str) -> int:
    """Coloured (non-white, non-transparent) pixels on the chart's canvas."""
    return int(page.evaluate(
        """id => {
            const cv = document.querySelector('#' + id + ' canvas');
            const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) n++;
            }
            return n;
        }""", element_id))


def test_web_view_in_chromium(services: Settings, web_data: int, server: str,
                              users: dict[str, str]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sites = sorted(r[0] for r in query(services, "SELECT site_id FROM sites"))
    assert "web-site" in sites
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _login(browser, server, users, "rev", "/web/", requested)
            navigations: list[str] = []
            page.on("framenavigated", lambda f: navigations.append(f.url))

            # the zone overview (a reviewer: every site), and the bar chart drawn
            page.wait_for_function(
                "n => document.querySelectorAll('#sites tbody tr').length === n", arg=len(sites))
            shown = sorted(page.eval_on_selector_all(
                "#sites tbody tr", "rows => rows.map(r => r.dataset.site)"))
            assert shown == sites
            web_row = page.inner_text("#sites tbody tr[data-site='web-site']")
            assert "Web view test building" in web_row
            assert _chart_points(page, "overview-chart") >= 1
            assert _drawn_pixels(page, "overview-chart") > 500
            page.screenshot(path=str(ARTIFACTS / "web-overview.png"), full_page=True)

            # the site page: carrier chart with points, the meter tree
            page.goto(f"{server}/web/site/web-site")
            page.wait_for_selector("#meters tr[data-meter='web-office']")
            page.wait_for_function(
                "() => { const c = echarts.getInstanceByDom("
                "document.getElementById('carrier-chart'));"
                " return c && c.getOption().series.length >= 2; }")
            assert _chart_points(page, "carrier-chart") >= 3
            assert _drawn_pixels(page, "carrier-chart") > 500
            tree = page.inner_text("#meters tbody")
            assert tree.index("web-grid") < tree.index("web-office")
            # the scorecard of the site (analytics.scorecard, month to date), with the same
            # indicators as the function returns for it
            page.wait_for_selector("#scorecard tbody tr")
            from analytics.scorecard import scorecard_for_site

            card = scorecard_for_site(services.database_reader_url, "web-site", "mtd")
            metered = [i["name_zh"] for i in card["indicators"] if i["kind"] == "metered"]
            shown = page.inner_text("#scorecard tbody")
            assert metered and all(name in shown for name in metered), (metered, shown)
            assert "验收准备 acceptance" in page.inner_text("#scorecard-readiness")
            grid_last = page.inner_text("#meters tr[data-meter='web-grid'] .last-value")
            assert float(grid_last.replace(",", "")) == pytest.approx(
                METERS["web-grid"][0] + 16 * METERS["web-grid"][1])
            page.evaluate("window.__sameDocument = true")
            loads = len(navigations)

            # a new reading over MQTT appears without a reload
            new_ts = max(web_data + 60, int(time.time()) - 5)
            new_value = 12.345 + METERS["web-grid"][0] + 16 * METERS["web-grid"][1]
            publish_payloads(services, [(TOPIC, _payload(new_ts, {"web-grid": new_value}))])
            page.wait_for_function(
                "v => Math.abs(Number(document.querySelector("
                "\"#meters tr[data-meter='web-grid'] .last-value\").textContent"
                ".replace(/,/g, '')) - v) < 0.0005", arg=new_value, timeout=120_000)
            assert page.evaluate("window.__sameDocument === true")
            assert len(navigations) == loads
            page.screenshot(path=str(ARTIFACTS / "web-site.png"), full_page=True)
        finally:
            browser.close()
    hosts = {urlsplit(u).hostname for u in requested}
    assert hosts == {"127.0.0.1"}, f"requests left loopback: {sorted(hosts)}"
    assert any(u.endswith("/web/static/vendor/echarts/echarts.min.js") for u in requested)


def test_web_view_is_scoped(services: Settings, web_data: int, server: str,
                            users: dict[str, str]) -> None:
    other = sorted(r[0] for r in query(services, "SELECT site_id FROM sites"
                                                 " WHERE site_id <> 'web-site'"))[0]
    # no session: the JSON is 401, a page goes to the login form with its way back
    for path in ("/web/api/overview", "/web/api/site/web-site"):
        assert httpx.get(f"{server}{path}", timeout=30).status_code == 401, path
    r = httpx.get(f"{server}/web/site/web-site", timeout=30)
    assert r.status_code == 303
    assert r.headers["location"] == "/review/login?next=/web/site/web-site"
    assert httpx.get(f"{server}/web/static/web.css", timeout=30).status_code == 200
    # the site manager of web-site, bearer token: own site only
    h = {"Authorization": f"Bearer {users['mgr']}"}
    rows = httpx.get(f"{server}/web/api/overview", headers=h, timeout=30).json()["sites"]
    assert [x["site_id"] for x in rows] == ["web-site"]
    assert httpx.get(f"{server}/web/api/site/web-site", headers=h, timeout=30
                     ).status_code == 200
    assert httpx.get(f"{server}/web/api/site/{other}", headers=h, timeout=30
                     ).status_code == 403
    # and in the browser, with the session cookie
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _login(browser, server, users, "mgr", "/web/", requested)
            page.wait_for_function(
                "() => document.querySelectorAll('#sites tbody tr').length >= 1")
            page.wait_for_function(
                "() => Number(document.getElementById('updated')"
                ".getAttribute('data-updates')) >= 2")
            shown = page.eval_on_selector_all("#sites tbody tr",
                                              "rows => rows.map(r => r.dataset.site)")
            assert shown == ["web-site"]
            resp = page.goto(f"{server}/web/site/{other}")
            assert resp is not None and resp.status == 403
            assert other not in [c["site_id"] for c in page.evaluate(
                "() => fetch('/web/api/overview').then(r => r.json()).then(j => j.sites)")]
            status = page.evaluate(
                f"() => fetch('/web/api/site/{other}').then(r => r.status)")
            assert status == 403
        finally:
            browser.close()
    assert {urlsplit(u).hostname for u in requested} == {"127.0.0.1"}
