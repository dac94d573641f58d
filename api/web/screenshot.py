"""Screenshots of the web view as a browser renders it (for the README and test artefacts):
``python -m api.web.screenshot --out docs [--site SITE] --token TOKEN`` serves the web view on
a free loopback port against the settings' database and saves ``web-overview.png`` and
``web-site.png`` from Debian's headless Chromium (playwright, no browser download). The web
view needs a login: the token (``nzc users add``, default ``$NZC_WEB_TOKEN``) is put in the
session cookie, as the login form does."""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from pathlib import Path

import uvicorn

from api.auth import SESSION_COOKIE
from api.web.app import make_app
from core.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def capture(settings: Settings, out: Path, site: str, token: str, width: int = 1400
            ) -> list[Path]:
    """Render the overview and ``site``'s page as the user of ``token``; returns the files
    written."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(300):
        if server.started:
            break
        time.sleep(0.1)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": width, "height": 900},
                                              locale="zh-CN")
                context.add_cookies([{"name": SESSION_COOKIE, "value": token,
                                      "url": f"http://127.0.0.1:{port}/",
                                      "httpOnly": True, "sameSite": "Strict"}])
                page = context.new_page()
                base = f"http://127.0.0.1:{port}/web"
                for name, url in (("web-overview.png", f"{base}/"),
                                  ("web-site.png", f"{base}/site/{site}")):
                    page.goto(url)
                    page.wait_for_function(
                        "() => Number(document.getElementById('updated')"
                        ".getAttribute('data-updates')) >= 1")
                    page.screenshot(path=str(out / name), full_page=True)
                    written.append(out / name)
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--site", default="cd-ind-park")
    parser.add_argument("--token", default=os.environ.get("NZC_WEB_TOKEN", ""),
                        help="a user's token from `nzc users add` (default $NZC_WEB_TOKEN)")
    args = parser.parse_args()
    if not args.token:
        parser.error("--token or NZC_WEB_TOKEN is required / 需要登录令牌")
    for path in capture(Settings.from_env(), args.out, args.site, args.token):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
