"""``nzc dashboards build|push`` and ``nzc web``: the Grafana dashboards and the built-in web
view.

``nzc dashboards build`` writes the dashboards' JSON (``dashboards/json``) from the code;
``nzc dashboards push --url URL --token TOKEN`` uploads them to an existing Grafana with
grafana-client: per folder of ``dashboards.build.FOLDERS`` ``GET /api/folders/<uid>`` and,
when missing, ``POST /api/folders``; per dashboard ``POST /api/dashboards/db`` with
``overwrite: true`` into its folder. The token is a Grafana service-account token with the
Editor role (``--token`` or ``NZC_GRAFANA_TOKEN``). The data source itself is provisioned
(``dashboards/provisioning``), not pushed. ``nzc web`` serves the web view (``api.web``) on
``NZC_API_HOST``:``NZC_API_PORT`` (default 127.0.0.1:18080).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from core.settings import Settings


def add_parsers(sub: Any) -> None:
    """Add ``dashboards`` and ``web`` to the ``nzc`` sub-command parsers."""
    d = sub.add_parser("dashboards", help="Grafana dashboards: build JSON, push to Grafana")
    dsub = d.add_subparsers(dest="dashboards_cmd", required=True)
    dsub.add_parser("build", help="write dashboards/json from dashboards/build.py")
    push = dsub.add_parser("push", help="upload the dashboards to a running Grafana")
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. http://host:3000")
    push.add_argument("--token", default=os.environ.get("NZC_GRAFANA_TOKEN"),
                      help="service-account token (default: $NZC_GRAFANA_TOKEN)")
    push.add_argument("--timeout-s", type=float, default=10.0)
    w = sub.add_parser("web", help="serve the built-in web view (no Grafana needed; the API "
                                   "app, login with a `nzc users add` token)")
    w.add_argument("--host", default=os.environ.get("NZC_API_HOST", "127.0.0.1"))
    w.add_argument("--port", type=int, default=int(os.environ.get("NZC_API_PORT", "18080")))


def push(url: str, token: str, timeout_s: float = 10.0) -> list[str]:
    """Create missing folders and upload every dashboard (overwriting); returns what was
    done, one line each. Raises grafana_client's ``GrafanaException`` on an HTTP error."""
    from grafana_client.api import GrafanaApi
    from grafana_client.client import GrafanaClientError

    from dashboards.build import FOLDERS, all_dashboards

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    done = []
    for uid, title in FOLDERS.items():
        try:
            api.folder.get_folder(uid)
        except GrafanaClientError as e:
            if e.status_code != 404:
                raise
            api.folder.create_folder(title, uid=uid)
            done.append(f"folder {uid} created")
    for spec in all_dashboards():
        api.dashboard.update_dashboard({"dashboard": spec.to_dict(), "folderUid": spec.folder,
                                        "overwrite": True,
                                        "message": "nzc dashboards push"})
        done.append(f"dashboard {spec.uid} -> folder {spec.folder}")
    return done


def dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    """Run ``dashboards``/``web``; None when ``args`` is another command."""
    if args.cmd == "dashboards":
        if args.dashboards_cmd == "build":
            from dashboards.build import write

            for path in write():
                print(path)
            return 0
        if not args.token:
            print("--token or NZC_GRAFANA_TOKEN is required / 需要 Grafana 令牌")
            return 2
        for line in push(args.url, args.token, args.timeout_s):
            print(line)
        return 0
    if args.cmd == "web":
        import uvicorn

        from api.web.app import make_app

        print(f"网页视图 web view: http://{args.host}:{args.port}/web/ (登录令牌见 "
              "`nzc users add` / log in with a token from `nzc users add`)", flush=True)
        uvicorn.run(make_app(settings), host=args.host, port=args.port, log_level="warning")
        return 0
    return None
