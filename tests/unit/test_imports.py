"""Start-up cost of a CLI run: the upload path must not import what only other commands need."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path


def test_cli_import_leaves_requests_keyring_and_watchdog_for_later() -> None:
    """requests (~60 ms, catalogue), keyring (read only when a secret is needed, while rclone
    starts) and watchdog (sync sessions) are imported where they are used."""
    code = ("import sys, trayagent.cli, trayagent.uploader, trayagent.pipeline.engine\n"
            "print(sorted(m for m in ('requests', 'keyring', 'watchdog') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_import_leaves_the_http_client_until_rclone_is_launched() -> None:
    """http.client (~10-18 ms with ssl and email) is loaded by the first rc call or agent request,
    so that ``trayagent upload`` launches rclone first and rclone starts up meanwhile."""
    code = "import sys, trayagent.cli\nprint('http.client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_console_script_collects_no_garbage_until_its_start_up_is_over(tmp_path: Path) -> None:
    """Start-up objects all live on: the collector waits until the upload is planned (the engine
    imported, the queue open), then resumes with those objects frozen out of later collections."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(b"x")
    code = ("import gc, sys\nfrom trayagent.cli import main, upload as cli\nopen_uploader = cli._uploader\n"
            "def spy(*args):\n    print('opening', gc.isenabled())\n    return open_uploader(*args)\n"
            "cli._uploader = spy\n"
            "cli._dry_run = lambda up, plan, as_json: "
            "print('planned', gc.isenabled(), gc.get_freeze_count() > 0) or 0\n"
            "sys.argv = ['trayagent', 'upload', sys.argv[1], '--dataset', 'd', '--dry-run']\nmain.run()\n")
    env = {**os.environ, "TRAYAGENT_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "src")], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["opening False", "planned True True"]


# -- the import graph: layers and cycles ------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[2] / "trayagent"
CORE = ("pipeline", "sync", "storage", "catalogue", "secrets", "queue", "config", "sqlitedb", "errors", "paths",
        "logs", "uploader", "icons", "metadata")
FRONT_ENDS = ("agent", "ui", "cli")
GUI_LIBRARIES = ("pystray", "webview", "gi", "PIL", "plyer", "tkinter", "AppKit", "win32gui")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports, at any depth (functions, TYPE_CHECKING blocks included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(files)) for name, path in files.items()}


def _layer(module: str) -> str:
    """The first name under trayagent: the subpackage or top-level module a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            if component:
                found.append(sorted([node, *component]))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_imports_it_checks() -> None:
    """Guards the checks below against passing on an empty graph."""
    graph = _graph()
    assert "trayagent.agent.routes" in graph["trayagent.agent.agent"]
    assert "trayagent.pipeline.engine" in graph["trayagent.uploader"]
    assert "trayagent.sync.session" in graph["trayagent.sync.sessions"]  # a lazy import counts too
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_imports_no_front_end_and_no_gui_library() -> None:
    """pipeline, sync, storage, catalogue, secrets, the queue, the configuration and the Uploader
    facade run with no display: the agent, the tray, the dialogs and the CLI are built on them,
    never the other way round."""
    bad = []
    for module, imported in _graph().items():
        if _layer(module) not in CORE:
            continue
        for target in imported:
            top = target.split(".")[0]
            if (top == "trayagent" and _layer(target) in FRONT_ENDS) or top in GUI_LIBRARIES:
                bad.append(f"{module} -> {target}")
    assert bad == []


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    internal = {m: {t for t in imported if t in graph and t != m} for m, imported in graph.items()}
    assert _cycles(internal) == []


def test_no_import_cycles_between_subpackages() -> None:
    """Each subpackage (and each top-level module) is one node: the layers form a hierarchy."""
    layers: dict[str, set[str]] = {}
    for module, imported in _graph().items():
        for target in imported:
            if target.startswith("trayagent.") and _layer(target) != _layer(module) and _layer(target):
                layers.setdefault(_layer(module), set()).add(_layer(target))
    assert _cycles(layers) == []


def test_front_ends_go_through_the_uploader_facade() -> None:
    """The agent, tray, dialogs and CLI call the Uploader's methods, never its parts (engine, queue,
    sync sessions, catalogue, transfer): the facade is the one place that knows how they fit."""
    parts = {"engine", "queue", "sessions", "catalogue", "transfer", "daemon"}
    reach_ins = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if _layer(module) not in FRONT_ENDS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in parts:
                owner = node.value
                owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if owner_name in ("uploader", "up"):
                    reach_ins.append(f"{module}:{node.lineno} {owner_name}.{node.attr}")
    assert reach_ins == []
