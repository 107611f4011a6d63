"""The dialogs, end to end: a real headless agent, its pages in real headless Chromium (Playwright), and
the real pywebview windows on a virtual X display.

Screenshots of every dialog land in tests/artifacts/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from playwright.sync_api import expect
from scicat_real import unique
from servers import WebDAVServer
from waiting import wait_for

pytestmark = pytest.mark.timeout(300)

AgentProcess = Display = Any  # the fixtures' types, defined in tests/e2e/conftest.py




def make_files(folder: Path, sizes: dict[str, int]) -> Path:
    for rel, size in sizes.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    return folder


def open_dialog(page: Any, agent: AgentProcess, name: str, request: str = "") -> None:
    page.goto(agent.url(name, request))
    expect(page.locator("h1")).to_be_visible()


def card(page: Any, name: str) -> Any:
    return page.locator("section.dataset", has=page.locator("h2", has_text=name))


# ------------------------------------------------------------------------------------------------------
# Dataset -> Activity
# ------------------------------------------------------------------------------------------------------


def test_dataset_dialog_defines_uploads_and_activity_follows(ta: Trayagent, webdav_server: WebDAVServer,
                                                             start_agent: Any, page: Any, tmp_path: Path,
                                                             artifacts: Path) -> None:
    ta.use_webdav(webdav_server)
    agent = start_agent()
    data = make_files(tmp_path / "run42", {"a.h5": 300_000, "b.h5": 200_000, "sub/c.h5": 100_000,
                                           "scratch.tmp": 1000})
    # What dropping the folder on the launcher does: the agent remembers a request for the dialog.
    request = agent.post("/api/open", {"paths": [str(data)]})["request"]

    open_dialog(page, agent, "dataset", request)
    expect(page.locator("#paths li")).to_have_count(1)
    expect(page.locator("#paths li")).to_contain_text(str(data))
    expect(page.locator("#dataset-name")).to_have_value("run42")  # suggested from the folder name

    page.fill("#proposal", "p1234")
    page.click("#lookup")
    info = page.locator("#proposal-info")
    assert agent.status_code("GET", "/api/proposals/p1234") == 404  # the local catalogue has no proposals
    expect(info).to_contain_text("Proposal lookup needs the SciCat catalogue")
    expect(info).to_have_class("message info")
    page.fill("#description", "Tomography of a test sample")
    page.fill("#investigation-description", "Dialog end-to-end test")
    page.fill("#exclude", "*.tmp")

    # An error of the agent is shown inline: a path that does not exist.
    page.fill("#path-input", str(tmp_path / "no-such-folder"))
    page.press("#path-input", "Enter")
    page.click("#preview-button")
    expect(page.locator("#error")).to_have_class("message error")
    expect(page.locator("#error")).not_to_be_empty()
    page.locator("#paths li", has_text="no-such-folder").get_by_role("button", name="Remove").click()
    expect(page.locator("#paths li")).to_have_count(1)

    page.click("#preview-button")
    expect(page.locator("#preview")).to_be_visible()
    expect(page.locator("#preview-rows tr")).to_have_count(3)
    expect(page.locator("#preview-summary")).to_contain_text("3 files, 600 kB")
    expect(page.locator("#preview-summary")).to_contain_text("p1234/run42")
    expect(page.locator("#preview-rows")).not_to_contain_text("scratch.tmp")
    expect(page.locator("#error")).to_be_empty()
    page.screenshot(path=artifacts / "dataset.png", full_page=True)
    assert not list(webdav_server.root.rglob("*.h5")), "the preview must not upload anything"

    page.click("#start")
    expect(page.locator("#status")).to_contain_text("Uploading “run42”")
    expect(page.locator("#start")).to_be_disabled()  # no second dataset by a double click

    open_dialog(page, agent, "activity")
    run = card(page, "run42")
    expect(run).to_be_visible()
    expect(run.locator(".where")).to_contain_text("p1234/run42")
    expect(run).to_have_attribute("data-state", "complete", timeout=60_000)
    expect(run).to_contain_text("3 of 3 registered")
    expect(run).to_contain_text("600 kB of 600 kB")
    bar = run.locator("progress").first
    assert bar.evaluate("p => p.value === p.max")
    page.screenshot(path=artifacts / "activity.png", full_page=True)

    stored = sorted(p.relative_to(webdav_server.root).as_posix() for p in webdav_server.root.rglob("*.h5"))
    assert stored == ["p1234/run42/a.h5", "p1234/run42/b.h5", "p1234/run42/sub/c.h5"]
    assert set(ta.catalogue_files("run42")) == {"a.h5", "b.h5", "sub/c.h5"}


def test_failed_file_retry_and_pause_resume(agent: AgentProcess, page: Any, tmp_path: Path, artifacts: Path,
                                            ta: Trayagent) -> None:
    data = make_files(tmp_path / "flaky", {"one.bin": 50_000, "two.bin": 50_000, "three.bin": 50_000})
    open_dialog(page, agent, "activity")
    page.click("#pause")
    expect(page.locator("#agent-state")).to_have_text("paused")
    expect(page.locator("#pause")).to_have_text("Resume")
    expect(page.locator("#waiting")).to_contain_text("Paused")

    open_dialog(page, agent, "dataset")
    page.fill("#path-input", str(data))
    page.press("#path-input", "Enter")
    page.fill("#dataset-name", "flaky")
    page.press("#dataset-name", "Enter")  # Enter submits the form
    expect(page.locator("#status")).to_contain_text("Uploading")

    # Queued while paused; then one file disappears before it is sent.
    wait_for(lambda: (d := agent.dataset("flaky")) and d["files"]["pending"] == 3, 30, "3 queued files")
    moved = tmp_path / "two.bin.away"
    (data / "two.bin").rename(moved)

    open_dialog(page, agent, "activity")
    flaky = card(page, "flaky")
    expect(flaky).to_contain_text("3 in progress")
    page.click("#pause")  # Resume
    expect(page.locator("#pause")).to_have_text("Pause all")
    expect(flaky).to_have_attribute("data-state", "complete, 1 failed", timeout=60_000)
    expect(flaky.locator(".errors")).to_contain_text("two.bin")
    retry = flaky.get_by_role("button", name="Retry failed")
    expect(retry).to_be_visible()
    page.screenshot(path=artifacts / "activity-failed.png", full_page=True)

    moved.rename(data / "two.bin")
    retry.click()
    expect(page.locator("#notice")).to_contain_text("Retrying 1 failed file of flaky")
    expect(flaky).to_have_attribute("data-state", "complete", timeout=60_000)
    expect(flaky).to_contain_text("3 of 3 registered")
    expect(retry).to_be_hidden()
    expect(flaky.locator(".errors li")).to_have_count(0)
    assert set(ta.catalogue_files("flaky")) == {"one.bin", "two.bin", "three.bin"}


def test_sync_session_shows_stop_and_finalize(agent: AgentProcess, page: Any, tmp_path: Path,
                                              ta: Trayagent) -> None:
    data = make_files(tmp_path / "watched", {"first.dat": 10_000})
    open_dialog(page, agent, "dataset")
    page.fill("#path-input", str(data))
    page.press("#path-input", "Enter")
    page.fill("#dataset-name", "live")
    page.check("input[name=mode][value=sync]")
    page.click("#start")
    expect(page.locator("#status")).to_contain_text("Syncing “live”")

    open_dialog(page, agent, "activity")
    live = card(page, "live")
    expect(live).to_have_attribute("data-state", "syncing")
    expect(live.get_by_role("button", name="Stop")).to_be_visible()
    finalize = live.get_by_role("button", name="Finalize")
    expect(live).to_contain_text("1 of 1 registered", timeout=60_000)
    make_files(data, {"second.dat": 10_000})
    expect(live).to_contain_text("2 of 2 registered", timeout=60_000)
    finalize.click()
    expect(live).to_have_attribute("data-state", "complete", timeout=60_000)
    expect(finalize).to_be_hidden()
    assert set(ta.catalogue_files("live")) == {"first.dat", "second.dat"}


# ------------------------------------------------------------------------------------------------------
# Login
# ------------------------------------------------------------------------------------------------------


def focus_order(page: Any, presses: int) -> list[str]:
    """What Tab focuses, press by press: id, else name=value, else the text."""
    page.click("h1")  # Tab starts from the top of the page
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("""() => { const e = document.activeElement;
            return e.id || (e.name ? e.name + '=' + e.value : e.textContent.trim()); }"""))
    return seen


def test_login_keyboard_and_local_catalogue(agent: AgentProcess, page: Any, artifacts: Path) -> None:
    open_dialog(page, agent, "login")
    expect(page.locator("#user")).to_be_focused()
    page.screenshot(path=artifacts / "login.png", full_page=True)

    order = focus_order(page, 5)
    assert order == ["method=password", "user", "password", "close", "submit"], order
    # The focused control is visibly marked (keyboard focus ring).
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"

    page.focus("#user")
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type("wrong-password")
    page.keyboard.press("Enter")  # Enter submits
    result = page.locator("#result")
    # The embedded local catalogue has nothing to log in to (the agent answers 404).
    expect(result).to_contain_text("The local catalogue needs no login")
    expect(result).to_have_class("message info")
    page.screenshot(path=artifacts / "login-answer.png", full_page=True)

    # Empty fields are caught before anything is sent, and the culprit gets the focus.
    page.fill("#password", "")
    page.press("#user", "Enter")
    expect(result).to_contain_text("Give your password")
    expect(page.locator("#password")).to_be_focused()
    expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")


def test_login_wrong_password_on_scicat(ta: Trayagent, real_scicat: Any, start_agent: Any, page: Any,
                                        artifacts: Path) -> None:
    """Against the real SciCat backend (v4.27.0, tests/support/scicat_real.py)."""
    ta.write_config({"catalogue": {"kind": "scicat", "url": real_scicat.url}})
    agent = start_agent()
    open_dialog(page, agent, "login")
    expect(page.locator("#catalogue")).to_contain_text(real_scicat.url)
    page.fill("#user", "beamuser")
    page.fill("#password", "not-the-password")
    page.press("#password", "Enter")
    result = page.locator("#result")
    expect(result).to_have_class("message error")
    expect(result).not_to_be_empty()
    expect(page.locator("#password")).to_be_focused()
    page.screenshot(path=artifacts / "login-error.png", full_page=True)

    page.fill("#password", "beamuser-pw")
    page.press("#password", "Enter")
    expect(result).to_have_class("message ok")
    expect(result).to_contain_text("Logged in as beamuser")

    # Logged in, the Dataset dialog looks proposals up in SciCat and prefills from them.
    proposal = unique("2026")
    real_scicat.add_proposal(proposal, "p20260123", "Sandstone porosity at high pressure", pi_firstname="Bob",
                             pi_lastname="Builder", email="bob@example.org")
    open_dialog(page, agent, "dataset")
    page.fill("#proposal", proposal)
    page.press("#proposal", "Enter")  # Enter in the proposal field looks it up
    info = page.locator("#proposal-info")
    expect(info).to_have_class("message ok")
    expect(info).to_contain_text("Sandstone porosity at high pressure")
    expect(info).to_contain_text("PI: Bob Builder <bob@example.org>")
    expect(page.locator("#investigation-description")).to_have_value("Sandstone porosity at high pressure")


# ------------------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------------------


def test_settings_round_trip_and_test_connection(agent: AgentProcess, page: Any, artifacts: Path,
                                                 agent_env: dict[str, str]) -> None:
    open_dialog(page, agent, "settings")
    expect(page.locator("#storage-root")).to_have_value("{proposal}/{dataset}")
    expect(page.locator("#transfer-transfers")).to_have_value("auto")
    page.screenshot(path=artifacts / "settings.png", full_page=True)

    page.click("#test")
    expect(page.locator("#test-result")).to_contain_text("Connection OK")
    expect(page.locator("#test-result")).to_have_class("message ok")

    # A bad number is refused in the form, next to nothing sent.
    page.fill("#transfer-transfers", "0")
    page.click("#save")
    expect(page.locator("#result")).to_contain_text("Parallel transfers")
    expect(page.locator("#transfer-transfers")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#transfer-transfers")).to_be_focused()

    page.fill("#transfer-transfers", "2.5")
    page.click("#save")
    expect(page.locator("#result")).to_contain_text("without decimals, or auto")
    expect(page.locator("#transfer-transfers")).to_have_attribute("aria-invalid", "true")

    page.fill("#transfer-transfers", "3")
    page.fill("#transfer-bwlimit", "50M")
    page.fill("#sync-quiet", "1.5")
    page.fill("#storage-root", "{proposal}/{user}/{dataset}")
    page.check("#sync-polling")
    page.check("#autostart")
    page.press("#transfer-bwlimit", "Enter")  # Enter saves
    expect(page.locator("#result")).to_contain_text("Saved.")
    expect(page.locator("#result")).to_have_class("message ok")

    saved = agent.get("/api/settings")
    assert saved["settings"]["transfer"]["transfers"] == 3
    assert saved["settings"]["transfer"]["bwlimit"] == "50M"
    assert saved["settings"]["sync"]["quiet_seconds"] == 1.5
    assert saved["settings"]["sync"]["polling"] is True
    assert saved["settings"]["storage"]["root"] == "{proposal}/{user}/{dataset}"
    assert saved["settings"]["catalogue"]["kind"] == "local"
    assert saved["autostart"] is True
    assert (Path(agent_env["XDG_CONFIG_HOME"]) / "autostart" / "trayagent.desktop").is_file()
    assert 'bwlimit = "50M"' in Path(saved["config_file"]).read_text()

    page.reload()  # the form shows what was saved
    expect(page.locator("#transfer-transfers")).to_have_value("3")
    expect(page.locator("#sync-quiet")).to_have_value("1.5")
    expect(page.locator("#sync-polling")).to_be_checked()
    expect(page.locator("#autostart")).to_be_checked()

    page.fill("#transfer-transfers", "")  # emptied: back to auto
    page.uncheck("#autostart")
    page.click("#save")
    expect(page.locator("#result")).to_contain_text("Saved.")
    saved = agent.get("/api/settings")
    assert saved["autostart"] is False
    assert saved["settings"]["transfer"]["transfers"] == "auto"


def test_settings_test_connection_reports_failure(ta: Trayagent, webdav_server: WebDAVServer, start_agent: Any,
                                                  page: Any) -> None:
    ta.use_webdav(webdav_server)
    agent = start_agent()
    open_dialog(page, agent, "settings")
    expect(page.locator("#storage-remote")).to_have_value(f":webdav,url='{webdav_server.url}',vendor=other:")
    page.click("#test")
    expect(page.locator("#test-result")).to_contain_text("Connection OK")
    webdav_server.stop()
    page.click("#test")
    expect(page.locator("#test-result")).to_contain_text("Connection failed", timeout=30_000)
    expect(page.locator("#test-result")).to_have_class("message error")


# ------------------------------------------------------------------------------------------------------
# The real windows: pywebview on Xvfb
# ------------------------------------------------------------------------------------------------------

TITLES = {"dataset": "trayagent: Dataset", "activity": "trayagent: Activity", "login": "trayagent: Log in",
          "settings": "trayagent: Settings"}
PAGE_BACKGROUNDS = {(0xF6, 0xF7, 0xF9), (0x1B, 0x1E, 0x24)}  # style.css --bg, light and dark


def xdotool(display: Display, *args: str, timeout: float = 10) -> str:
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display.name}, capture_output=True,
                          text=True, timeout=timeout, check=True).stdout


def find_window(display: Display, title: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    def found() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"the dialog exited with {proc.returncode}:\n{proc.stdout.read().decode()}")
        try:
            out = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
                                 env={**os.environ, "DISPLAY": display.name}, capture_output=True, text=True,
                                 timeout=10).stdout.split()
        except subprocess.TimeoutExpired:
            return None
        return out[0] if out else None

    return wait_for(found, timeout, f"the window {title!r}", interval=0.3)


def grab(display: Display, window: str) -> Any:
    from PIL import ImageGrab

    geo = dict(line.split("=", 1) for line in xdotool(display, "getwindowgeometry", "--shell", window).split())
    x, y, w, h = (int(geo[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    return ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=display.name).convert("RGB")


def rendered(image: Any) -> bool:
    """Our page, drawn: many colours (text, anti-aliasing) on the dialog background."""
    colours = image.getcolors(maxcolors=1 << 20) or []
    if len(colours) < 40:
        return False
    background = sum(n for n, rgb in colours if rgb in PAGE_BACKGROUNDS)
    return background > 0.05 * image.width * image.height


def start_dialog_window(display: Display, agent_env: dict[str, str], name: str,
                        request: str = "") -> subprocess.Popen[bytes]:
    """``trayagent dialog NAME`` on the display, as the agent starts it; in a session of its own, so that
    ``stop_dialog`` ends WebKit's helper processes too. The toolkit is the one the tests run with."""
    env = {**agent_env, "DISPLAY": display.name, "NO_AT_BRIDGE": "1", "GDK_BACKEND": "x11"}
    env.pop("TRAYAGENT_WEBVIEW_GUI", None)
    if os.environ.get("TRAYAGENT_WEBVIEW_GUI"):
        env["TRAYAGENT_WEBVIEW_GUI"] = os.environ["TRAYAGENT_WEBVIEW_GUI"]
    return subprocess.Popen([sys.executable, "-m", "trayagent.cli", "dialog", name, "--request", request],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def stop_dialog(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: WebKit's helper processes go too
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.parametrize("name", ["dataset", "activity", "login", "settings"])
def test_pywebview_window(name: str, agent: AgentProcess, agent_env: dict[str, str], xvfb: Display,
                          tmp_path: Path, artifacts: Path) -> None:
    data = make_files(tmp_path / "beamtime", {"scan_0001.h5": 1000})
    request = agent.post("/api/open", {"paths": [str(data)]})["request"] if name == "dataset" else ""
    proc = start_dialog_window(xvfb, agent_env, name, request)
    try:
        window = find_window(xvfb, TITLES[name], proc)
        deadline = time.monotonic() + 60
        while not rendered(shot := grab(xvfb, window)) and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(1.0)  # let the first API answers (prefill, status) land
        shot = grab(xvfb, window)
        shot.save(artifacts / f"window-{name}.png")
        assert rendered(shot), f"the {name} window looks blank (see tests/artifacts/window-{name}.png)"

        # Escape closes the window through the page's bridge to pywebview (js_api close). Without a
        # window manager nothing gives the window the keyboard: a click on its heading does.
        geo = dict(line.split("=", 1) for line in xdotool(xvfb, "getwindowgeometry", "--shell", window).split())
        env = {**os.environ, "DISPLAY": xvfb.name}
        for _ in range(5):
            subprocess.run(["xdotool", "mousemove", str(int(geo["X"]) + 40), str(int(geo["Y"]) + 20), "click", "1"],
                           env=env, capture_output=True, timeout=10)
            subprocess.run(["xdotool", "key", "--clearmodifiers", "Escape"], env=env, capture_output=True,
                           timeout=10)
            try:
                proc.wait(timeout=4)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            stop_dialog(proc)
            raise AssertionError(f"Escape did not close the {name} window:\n{proc.stdout.read().decode()}")
        assert proc.returncode == 0, proc.stdout.read().decode() if proc.stdout else ""
    finally:
        stop_dialog(proc)
