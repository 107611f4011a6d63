"""Fixtures of the end-to-end dialog tests: a real headless agent, headless Chromium (Playwright) and a
virtual X display (Xvfb) for the real pywebview windows.

Nothing is downloaded: Chromium is Debian's /usr/bin/chromium, Xvfb and xdotool come from apt
(build/dev-setup.sh). Every process started here is stopped in teardown, also when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from agentctl import Trayagent
from virtualdisplay import Display, start_xvfb
from waiting import stop_process, wait_for

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = os.environ.get("TRAYAGENT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AGENT_START_TIMEOUT = 60.0




@dataclass
class AgentProcess:
    """A `trayagent agent --headless` subprocess and the way to talk to it."""

    ta: Trayagent
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    token: str = ""
    log_path: Path = field(default_factory=Path)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AgentProcess:
        run = self.ta.home / "run"
        for name in ("agent.json", "agent.token"):
            (run / name).unlink(missing_ok=True)
        self.log_path = self.ta.home / "agent-stdout.log"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "trayagent.cli", "agent", "--headless"],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the agent exited with {self.proc.returncode}:\n{self.output()}")
            try:
                self.port = int(json.loads((run / "agent.json").read_text())["port"])
                self.token = (run / "agent.token").read_text().strip()
                return bool(self.get("/api/ping"))
            except (OSError, ValueError, KeyError, requests.RequestException, AssertionError):
                return False

        wait_for(ready, AGENT_START_TIMEOUT, "the agent's control API")
        return self

    def output(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-4000:] + "\n--- trayagent.log ---\n" + self.ta.log_text[-4000:]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return requests.request(method, self.base_url + path, json=body if method == "POST" else None,
                                headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def get(self, path: str) -> Any:
        resp = self._call("GET", path)
        assert resp.status_code == 200, f"GET {path} -> {resp.status_code} {resp.text}"
        return resp.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self._call("POST", path, body or {})
        assert resp.status_code == 200, f"POST {path} -> {resp.status_code} {resp.text}"
        return resp.json()

    def status_code(self, method: str, path: str, body: dict[str, Any] | None = None) -> int:
        return self._call(method, path, body).status_code

    def url(self, dialog: str, request: str = "") -> str:
        return f"{self.base_url}/ui/{dialog}.html#token={self.token}&request={request}"

    def dataset(self, name: str) -> dict[str, Any] | None:
        return next((d for d in self.get("/api/status")["activity"] if d["name"] == name), None)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self._call("POST", "/api/quit", {"force": True})
            self.proc.wait(timeout=20)
        except (requests.RequestException, subprocess.TimeoutExpired):
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def agent_env(ta: Trayagent, tmp_path: Path) -> dict[str, str]:
    """The environment of the agent (and of dialog processes): the test's TRAYAGENT_HOME, a private
    XDG_CONFIG_HOME (the autostart entry lands there, never in the real ~/.config) and no display, so
    the agent never opens windows of its own."""
    env = ta.env()
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "TRAYAGENT_WEBVIEW_GUI"):
        env.pop(name, None)
    return env


@pytest.fixture
def start_agent(ta: Trayagent, agent_env: dict[str, str]) -> Iterator[Any]:
    """Factory: start the headless agent (after the test wrote its config); stopped in teardown."""
    started: list[AgentProcess] = []

    def start() -> AgentProcess:
        agent = AgentProcess(ta, agent_env)
        started.append(agent)
        return agent.start()

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def agent(start_agent: Any) -> AgentProcess:
    """A headless agent with the embedded default profile (local folder storage, local catalogue)."""
    return start_agent()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ------------------------------------------------------------------------------------------------------
# Headless Chromium through Playwright
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run build/dev-setup.sh (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own context) that fails the test on any script error or CSP violation."""
    context = browser.new_context(viewport={"width": 760, "height": 760})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text else None)
    yield page
    context.close()
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------------
# A virtual X display for the real pywebview windows
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def xvfb() -> Iterator[Display]:
    display = start_xvfb()
    try:
        yield display
    finally:
        stop_process(display.proc, 10)
