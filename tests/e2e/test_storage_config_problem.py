"""A storage remote that rclone's configuration does not hold (issue 19: it read as "Waiting for storage",
an outage retried every few seconds forever). It is a setting to fix: the tray (icon, status line, tooltip),
Activity, `trayagent upload` and `trayagent status` say what is wrong and what to do, nothing is retried
in a loop, and once `rclone config` adds the remote (here: the file written as it would), the waiting
upload goes on by itself, without a restart. Real rclone, a real headless agent, Activity in headless
Chromium; the tray part with the real tray icon docked in trayer on Xvfb.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from playwright.sync_api import expect
from waiting import wait_for

sys.path.insert(0, str(Path(__file__).parent))

from desktop_session import AgentProcess as DesktopAgent  # noqa: E402
from desktop_session import DesktopSession  # noqa: E402

pytestmark = pytest.mark.timeout(300)

SAID = "the storage remote 'labstore' is not in rclone's configuration"


def unknown_remote_config(home: Path, tmp_path: Path) -> Path:
    """config.toml naming the remote `labstore` in an rclone config file that does not hold it (yet)."""
    rclone_conf = tmp_path / "rclone.conf"
    rclone_conf.write_text("# no remotes yet\n")
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(
        f'[storage]\nremote = "labstore:bucket"\nrclone_config = "{rclone_conf}"\n')
    return rclone_conf


def add_remote(rclone_conf: Path, folder: Path) -> None:
    """What `rclone config` writes for an alias remote named labstore."""
    folder.mkdir(parents=True, exist_ok=True)
    rclone_conf.write_text(f"[labstore]\ntype = alias\nremote = {folder}\n")


def make_run(folder: Path, files: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"frame_{i}.dat").write_bytes(os.urandom(3000))
    return folder


def test_unknown_rclone_remote_is_said_as_a_setting_to_fix_and_goes_on_once_added(
        ta: Trayagent, start_agent: Any, page: Any, tmp_path: Path, artifacts: Path) -> None:
    rclone_conf = unknown_remote_config(ta.home, tmp_path)
    agent = start_agent()

    def problem() -> str:
        return str(agent.get("/api/status")["agent"].get("problem") or "")

    wait_for(lambda: SAID in problem(), 30, "the agent to say the remote is unknown")
    state = agent.get("/api/status")["agent"]
    assert state["state"] == "error" and not state["waiting"], state  # not "waiting for storage"
    assert "rclone config" in problem() and "[storage] remote" in problem()
    assert str(rclone_conf) in problem()

    # the CLI hands the upload to the agent, and says at once why it cannot go on
    data = make_run(tmp_path / "run1")
    cli = ta.run("upload", str(data), "--dataset", "run1", timeout=60)
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert SAID in cli.stderr and "Add it with `rclone config`" in cli.stderr, cli.stderr
    status = ta.run("status", check=True)
    assert f"the agent cannot upload: {SAID}" in status.stdout, status.stdout

    page.goto(agent.url("activity"))
    expect(page.locator("#problem")).to_contain_text(SAID)
    expect(page.locator("#problem")).to_contain_text("rclone config")
    expect(page.locator("#waiting")).to_be_empty()
    run1 = page.locator("section.dataset", has=page.locator("h2", has_text="run1"))
    expect(run1.locator(".dataset-head .badge").last).to_have_text("waiting")  # not "scanning"
    page.screenshot(path=artifacts / "activity-unknown-remote.png", full_page=True)

    time.sleep(8)  # no retry loop: said once, no "storage unreachable" retries in the log
    log = ta.log_text
    assert "storage unreachable" not in log and "didn't find section" not in log, log[-3000:]
    assert log.count("uploads wait: ") == 1, log[-3000:]

    add_remote(rclone_conf, tmp_path / "store")  # `rclone config`: the agent picks it up by itself
    wait_for(lambda: (d := agent.dataset("run1")) is not None and d["state"] == "complete", 30,
             "run1 to complete once the remote exists")
    sent = {p.name for p in (tmp_path / "store" / "bucket").rglob("frame_*.dat")}
    assert sent == {f"frame_{i}.dat" for i in range(3)}
    assert problem() == ""
    expect(page.locator("#problem")).to_be_empty()


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[DesktopSession]:
    with DesktopSession(tmp_path / "desktop") as session:
        yield session


def test_the_tray_says_the_remote_is_unknown_not_waiting_for_storage(desktop: DesktopSession,
                                                                     tmp_path: Path) -> None:
    home = tmp_path / "home"
    rclone_conf = unknown_remote_config(home, tmp_path)
    agent = DesktopAgent(home, desktop.env()).start()
    try:
        agent.wait_log("tray: status Problem: the storage remote 'labstore' is not in rclone", 60)
        agent.wait_log("tray: state idle -> error")
        assert "Waiting for storage" not in agent.log_text
        before = agent.log_text.count("tray: status Up to date")
        add_remote(rclone_conf, tmp_path / "store")
        wait_for(lambda: agent.log_text.count("tray: status Up to date") > before, 30,
                 "the status line back to 'Up to date' once the remote exists")
        agent.wait_log("tray: state error -> idle")
    finally:
        agent.stop()
