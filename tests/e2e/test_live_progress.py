"""Live progress while a batch is in flight (issue 19.6): Activity, the tray's status line and the
CLI bar showed "0 B" until the whole batch was done (a batch can be 4 GiB: minutes of nothing).

A real headless agent uploads one big file to a real WebDAV server through real rclone, slowed by
rclone's own bandwidth limit so the copy lasts seconds; Activity in headless Chromium and the control
API must show bytes sent, a rate and a time left before the file is done.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from playwright.sync_api import expect
from servers import WebDAVServer
from waiting import wait_for

pytestmark = pytest.mark.timeout(300)

SIZE = 40_000_000  # 40 MB at 8 MB/s: about 5 s of copying


def test_activity_shows_bytes_rate_and_time_left_while_the_batch_is_in_flight(
        ta: Trayagent, webdav_server: WebDAVServer, start_agent: Any, page: Any, tmp_path: Path,
        artifacts: Path) -> None:
    ta.use_webdav(webdav_server, transfer={"bwlimit": "8M"})
    agent = start_agent()
    data = tmp_path / "bigrun"
    data.mkdir()
    (data / "detector.h5").write_bytes(os.urandom(SIZE))
    dataset_id = agent.post("/api/upload", {"paths": [str(data)], "dataset": "bigrun"})["dataset_id"]
    page.goto(agent.url("activity"))

    def midway() -> dict[str, Any] | None:
        entry = agent.get(f"/api/datasets/{dataset_id}")
        sent = entry["bytes_done"]
        return entry if 0 < sent < SIZE and entry["files"].get("registered", 0) == 0 else None

    entry = wait_for(midway, 30, "bytes sent before the file is done", interval=0.2)
    assert entry["state"] == "active"
    wait_for(lambda: (e := agent.get(f"/api/datasets/{dataset_id}"))["rate"] > 0 and e["eta"] is not None
             and e["files"].get("registered", 0) == 0, 15, "a rate and a time left while the file is in flight",
             interval=0.2)

    card = page.locator("section.dataset", has=page.locator("h2", has_text="bigrun"))
    expect(card).to_contain_text(re.compile(r"[1-9][\d.]* MB of 40\.0 MB"), timeout=10_000)
    expect(card).to_contain_text(re.compile(r"Rate: [\d.]+ [kM]B/s"))
    page.screenshot(path=artifacts / "activity-live-progress.png", full_page=True)
    wait_for(lambda: agent.get(f"/api/datasets/{dataset_id}")["state"] == "complete", 60, "the upload to finish")
    time.sleep(0.5)
    final = agent.get(f"/api/datasets/{dataset_id}")
    assert final["bytes_done"] == SIZE


def test_an_idle_activity_window_waits_for_changes_instead_of_polling(agent: Any, page: Any,
                                                                      tmp_path: Path) -> None:
    """Issue 19.10: an open Activity asked for the whole status every second (2 % of a core, forever).
    Now it long-polls: idle, it sends a request every 25 s; a change still shows within a second."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/status" in r.url else None)
    page.goto(agent.url("activity"))
    expect(page.locator("#empty")).to_be_visible()
    page.wait_for_timeout(1000)  # (not time.sleep: Playwright delivers page events only while it runs)
    requests.clear()
    page.wait_for_timeout(6000)
    assert len(requests) <= 1, f"{len(requests)} status requests in 6 idle seconds: {requests}"

    data = tmp_path / "small"
    data.mkdir()
    (data / "a.dat").write_bytes(b"a" * 1000)
    agent.post("/api/upload", {"paths": [str(data)], "dataset": "small"})
    card = page.locator("section.dataset", has=page.locator("h2", has_text="small"))
    expect(card).to_be_visible(timeout=3_000)
    expect(card).to_contain_text("1 of 1 registered", timeout=10_000)


def test_the_dataset_dialog_says_when_its_upload_is_complete(agent: Any, page: Any, tmp_path: Path) -> None:
    """Issue 19.10: "Uploading…" stayed in the Dataset dialog after the upload had completed."""
    data = tmp_path / "run3"
    data.mkdir()
    for i in range(3):
        (data / f"f{i}.dat").write_bytes(os.urandom(2000))
    request = agent.post("/api/open", {"paths": [str(data)]})["request"]
    page.goto(agent.url("dataset", request))
    page.fill("#dataset-name", "run3")
    page.click("#start")
    status = page.locator("#status")
    expect(status).to_contain_text("“run3” is complete: 3 files, 6.0 kB registered.", timeout=30_000)
