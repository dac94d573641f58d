"""``nzc dashboards push`` through grafana-client's real HTTP against a loopback recorder
that answers like Grafana's folder and dashboard API (no Grafana server can be installed
here): missing folders are created, existing ones kept, every dashboard posted with overwrite
into its folder, with the token as a Bearer header."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from dashboards.build import FOLDERS, all_dashboards
from nzc.cli_dashboards import push


class Recorder(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, str, Any]]] = []
    existing: ClassVar[set[str]] = {"facility"}

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, self.headers.get("Authorization", ""), None))
        uid = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/api/folders/") and uid in self.existing:
            self._reply(200, {"uid": uid, "title": FOLDERS[uid]})
        else:
            self._reply(404, {"message": "folder not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, self.headers.get("Authorization", ""), body))
        self._reply(200, {"status": "success", "uid": body.get("uid") or "x"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def grafana() -> Iterator[str]:
    Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_push_creates_missing_folders_and_uploads_every_dashboard(grafana: str) -> None:
    done = push(grafana, "glsa_test_token")
    posts = [(p, b) for m, p, _a, b in Recorder.requests if m == "POST"]
    created = sorted(b["uid"] for p, b in posts if p == "/api/folders")
    assert created == sorted(set(FOLDERS) - {"facility"})
    uploads = [b for p, b in posts if p == "/api/dashboards/db"]
    specs = all_dashboards()
    assert [u["dashboard"]["uid"] for u in uploads] == [s.uid for s in specs]
    assert [u["folderUid"] for u in uploads] == [s.folder for s in specs]
    assert all(u["overwrite"] is True for u in uploads)
    assert uploads[0]["dashboard"] == specs[0].to_dict()
    assert {a for _m, _p, a, _b in Recorder.requests} == {"Bearer glsa_test_token"}
    assert len(done) == len(created) + len(specs)
