"""Dialogs without GTK or Qt (issue 19.11): a plain `pip install` has neither, and the dialogs crashed
(WebViewException) while the log said they were open. Now the page opens in the default web browser.

The real `trayagent dialog` process runs with the GTK and Qt bindings made unimportable (stub modules
that raise ImportError first on its path), and BROWSER pointing at a script that records the URL it is
given, as a desktop's browser would receive it. The recorded URL is then opened in headless Chromium: it
carries a one-time ticket, not the control token, and the page works with it exactly once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.timeout(300)

BLOCKED = ("gi", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6")


def without_gtk_and_qt(root: Path) -> Path:
    root.mkdir()
    for name in BLOCKED:
        (root / f"{name}.py").write_text(f"raise ImportError('{name} is not installed (test stub)')\n")
    return root


def recording_browser(tmp_path: Path) -> tuple[Path, Path]:
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n')
    script.chmod(0o755)
    return script, opened


def test_without_gtk_or_qt_the_dialog_opens_in_the_web_browser(agent: Any, agent_env: dict[str, str],
                                                               tmp_path: Path, browser: Any) -> None:
    stubs = without_gtk_and_qt(tmp_path / "stubs")
    script, opened = recording_browser(tmp_path)
    env = {**agent_env, "PYTHONPATH": str(stubs), "BROWSER": str(script)}
    proc = subprocess.run([sys.executable, "-m", "trayagent.cli", "dialog", "activity"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    (url,) = opened.read_text().split()
    assert agent.token not in url and "ticket=" in url
    log = agent.ta.log_text
    assert "opening it in the default web browser" in log, log[-2000:]

    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        expect(page.locator("#empty")).to_be_visible(timeout=10_000)  # the status arrived: the ticket worked
        assert "ticket" not in page.url
        page.reload()  # the same tab keeps working
        expect(page.locator("#empty")).to_be_visible(timeout=10_000)
        again = context.browser.new_context() if context.browser else None
        assert again is not None
        try:
            other = again.new_page()
            other.goto(url)  # the ticket is used: another browser gets nothing
            expect(other.locator("#problem")).to_contain_text("missing or wrong token", timeout=10_000)
        finally:
            again.close()
    finally:
        context.close()
