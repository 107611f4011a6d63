"""Core messages are worded for every front end; the CLI adds its options, a dialog its fields."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from trayagent.cli.main import in_cli_words
from trayagent.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[2] / "trayagent"
CORE = ("pipeline", "sync", "storage", "catalogue", "secrets", "queue.py", "config.py", "uploader.py", "paths.py")


def _error_classes() -> set[str]:
    """TrayagentError and every class in trayagent derived from it (by name, to a fixed point)."""
    bases: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases.setdefault(node.name, set()).update(b.id for b in node.bases if isinstance(b, ast.Name))
    errors = {"TrayagentError"}
    while grown := {name for name, parents in bases.items() if parents & errors} - errors:
        errors |= grown
    return errors


def _error_texts(path: Path, errors: set[str]) -> list[tuple[int, str]]:
    """The text of every string an error is raised with (f-strings with their holes as X)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in errors):
            continue
        for arg in node.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
            elif isinstance(arg, ast.JoinedStr):
                found.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "X"
                                                   for v in arg.values)))
    return found


def test_core_errors_name_no_command_line_option() -> None:
    """"Check --proposal" reached the Dataset dialog through the API. A whole command to run, in
    backquotes, is an instruction every front end can show; a bare option is the CLI's to add."""
    files = [p for name in CORE for p in ([PACKAGE / name] if name.endswith(".py") else
                                          sorted((PACKAGE / name).rglob("*.py")))]
    errors = _error_classes()
    assert {"ConfigError", "LoginRequired", "Busy", "RcError"} <= errors
    texts = [(p, line, text) for p in files for line, text in _error_texts(p, errors)]
    assert len(texts) > 50  # the scan sees the core's errors
    options = [f"{p.name}:{line} {text}" for p, line, text in texts
               if re.search(r"--[a-z]", re.sub(r"`[^`]*`", "", text))]
    assert options == []


def test_the_cli_adds_the_option_a_field_names() -> None:
    exc = ConfigError("the dataset name is empty", "Give the dataset a name.", field="dataset")
    assert in_cli_words(exc) == "the dataset name is empty\n  -> Give the dataset a name (--dataset NAME)."
    assert in_cli_words(ConfigError("bad", "Fix it.")) == "bad\n  -> Fix it."


def test_an_empty_dataset_name_is_told_in_the_cli_with_its_option(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(b"x")
    env = {**os.environ, "TRAYAGENT_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "trayagent.cli", "upload", str(tmp_path / "src"), "--dataset", " ",
                           "--dry-run"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr == "trayagent: the dataset name is empty\n  -> Give the dataset a name (--dataset NAME).\n"
