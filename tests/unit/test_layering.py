"""The launcher is the top layer: ``nzc`` (CLI, service launcher, worker processes) imports
everything, and no other package imports ``nzc`` (settings, topic names, the MQTT topic scheme,
credentials and the YAML loaders live in ``core``). Checked on the source, import by import."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOWER = ("core", "carbon", "ingest", "stream", "db", "simulators", "analytics", "alerts",
         "api", "reports", "dashboards")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_no_package_imports_the_launcher() -> None:
    offenders = [f"{p.relative_to(REPO)}:{line} imports {mod}"
                 for pkg in LOWER for p in sorted((REPO / pkg).rglob("*.py"))
                 for line, mod in _imports(p) if mod == "nzc" or mod.startswith("nzc.")]
    assert offenders == []


def test_core_imports_only_the_domain() -> None:
    """``core`` sits under ingest, stream and simulators: it may use ``carbon`` (pure domain)
    and itself, nothing else of ours."""
    ours = {"nzc", *LOWER}
    bad = [f"{p.relative_to(REPO)}:{line} imports {mod}"
           for p in sorted((REPO / "core").rglob("*.py")) for line, mod in _imports(p)
           if mod.split(".")[0] in ours - {"core", "carbon"}]
    assert bad == []
