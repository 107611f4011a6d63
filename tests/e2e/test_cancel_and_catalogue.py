"""Per-dataset Cancel and "Open in catalogue" in Activity (issue 19, "Expected": "Per dataset in Activity:
... cancel, ... and open the dataset in the catalogue where it has a web page").

Cancel: a real headless agent uploads to a real WebDAV server through real rclone, slowed by rclone's
own bandwidth limit and small batches, so the upload lasts seconds; Activity in headless Chromium asks
for a confirmation, then the queue holds nothing more of the dataset, storage gets no more of its files,
what was sent stays (storage and the local catalogue), nothing more is told of it, and an upload of the
same folder later completes it. Open in catalogue: the real SciCat backend gives the dataset its pid
(which holds a '/'); with [catalogue] web_url set, Activity links to the page with the pid
percent-encoded, and a click hands that address to the desktop's opener (a recording `xdg-open`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from agentctl import Trayagent, recording_opener
from playwright.sync_api import expect
from servers import WebDAVServer
from waiting import wait_for

pytestmark = pytest.mark.timeout(300)

FILES, SIZE = 24, 250_000  # 6 MB at 500 kB/s, two files per rclone job: about 12 s of uploading


def dataset_rows(ta: Trayagent, name: str) -> dict[str, int]:
    """Files of the dataset per state, read from the agent's queue database."""
    with sqlite3.connect(ta.home / "data" / "queue.sqlite") as db:
        rows = db.execute("SELECT f.state, COUNT(*) FROM files f JOIN datasets d ON d.id = f.dataset_id "
                          "WHERE d.name = ? GROUP BY f.state", (name,)).fetchall()
    return dict(rows)


def stored(server: WebDAVServer, name: str) -> set[str]:
    """The data files of the dataset in the WebDAV server's folder (the manifest aside)."""
    return {p.name for p in server.root.rglob("*.dat") if name in p.parts}


def notices_about(log: str, name: str) -> list[str]:
    return [line for line in log.splitlines() if "notification:" in line and name in line]


def slow_run(folder: Path) -> Path:
    """FILES frames of SIZE random bytes: about 12 s of uploading at the tests' 500 kB/s."""
    folder.mkdir()
    for i in range(FILES):
        (folder / f"frame_{i:03d}.dat").write_bytes(os.urandom(SIZE))
    return folder


def test_cancel_in_activity_drops_what_is_not_sent_keeps_what_is_and_a_new_upload_completes_it(
        ta: Trayagent, webdav_server: WebDAVServer, start_agent: Any, page: Any, tmp_path: Path,
        artifacts: Path) -> None:
    ta.use_webdav(webdav_server, transfer={"bwlimit": "500k", "batch_files": 2, "transfers": 1})
    agent = start_agent()
    data = slow_run(tmp_path / "slowrun")
    dataset_id = agent.post("/api/upload", {"paths": [str(data)], "dataset": "slowrun"})["dataset_id"]

    page.goto(agent.url("activity"))
    card = page.locator("section.dataset", has=page.locator("h2", has_text="slowrun"))
    expect(card).to_contain_text("uploading", timeout=15_000)
    expect(card.get_by_role("link", name="Open in catalogue")).to_be_hidden()  # local catalogue, no web_url
    wait_for(lambda: 2 <= len(stored(webdav_server, "slowrun")) <= FILES // 2, 30,
             "the first files of slowrun in storage", interval=0.1)

    # Cancel asks first, and says what stays; "Keep uploading" changes nothing
    card.get_by_role("button", name="Cancel…").click()
    question = card.get_by_role("alertdialog")
    expect(question).to_be_visible()
    expect(question).to_contain_text("What is already in storage and in the catalogue stays there")
    page.screenshot(path=artifacts / "activity-cancel-confirm.png", full_page=True)
    question.get_by_role("button", name="Keep uploading").click()
    expect(question).to_be_hidden()
    assert agent.get(f"/api/datasets/{dataset_id}")["state"] == "active"

    card.get_by_role("button", name="Cancel…").click()
    log_before = len(ta.log_text)
    question.get_by_role("button", name="Cancel upload").click()
    expect(page.locator("#notice")).to_contain_text("Cancelled slowrun")
    expect(card.locator(".dataset-head .badge").last).to_have_text("cancelled")
    expect(card.get_by_role("button", name="Cancel…")).to_be_hidden()
    expect(card.get_by_role("button", name="Pause")).to_be_hidden()
    expect(card).to_contain_text("registered; the rest was cancelled")  # not "n of n", which reads as done
    expect(card.locator("progress").first).to_be_hidden()

    entry = agent.get(f"/api/datasets/{dataset_id}")
    assert entry["state"] == "cancelled"
    rows = dataset_rows(ta, "slowrun")
    assert "pending" not in rows and "failed" not in rows, rows  # nothing left to send
    time.sleep(4)  # a batch in flight at the click ends within this (two files at 500 kB/s: 1 s)
    kept = stored(webdav_server, "slowrun")
    settled_rows = dataset_rows(ta, "slowrun")
    time.sleep(4)
    assert stored(webdav_server, "slowrun") == kept, "files of the cancelled dataset still reach storage"
    assert dataset_rows(ta, "slowrun") == settled_rows
    assert 2 <= len(kept) < FILES, kept
    assert sum(settled_rows.values()) == len(kept), (settled_rows, kept)  # the queue knows what storage holds
    registered = ta.catalogue_files("slowrun")
    assert registered and set(registered) <= {f"frame_{i:03d}.dat" for i in range(FILES)}  # kept, not removed
    assert set(registered) <= kept
    assert agent.get("/api/status")["agent"]["state"] == "idle"  # nothing in flight
    assert not notices_about(ta.log_text[log_before:], "slowrun"), ta.log_text[log_before:]
    page.screenshot(path=artifacts / "activity-cancelled.png", full_page=True)

    # the same folder again: the dataset starts again and completes, sending only what is missing
    again = agent.post("/api/upload", {"paths": [str(data)], "dataset": "slowrun"})
    assert again["dataset_id"] == dataset_id
    expect(card.locator(".dataset-head .badge").last).to_have_text("uploading", timeout=15_000)
    wait_for(lambda: agent.get(f"/api/datasets/{dataset_id}")["state"] == "complete", 90, "slowrun to complete")
    assert stored(webdav_server, "slowrun") == {f"frame_{i:03d}.dat" for i in range(FILES)}
    assert len(ta.catalogue_files("slowrun")) == FILES
    assert dataset_rows(ta, "slowrun") == {"registered": FILES}
    expect(card.locator(".dataset-head .badge").last).to_have_text("complete")
    assert any("Dataset slowrun complete" in n for n in notices_about(ta.log_text[log_before:], "slowrun"))


def test_cancel_of_a_sync_session_stops_watching(ta: Trayagent, agent: Any, page: Any, tmp_path: Path) -> None:
    """A sync dataset cancelled in Activity: its folder is no longer watched (a file written afterwards is
    neither queued nor sent), what it had registered stays."""
    folder = tmp_path / "beamtime"
    folder.mkdir()
    (folder / "scan_000.dat").write_bytes(os.urandom(4000))
    dataset_id = agent.post("/api/sync", {"paths": [str(folder)], "dataset": "beamtime"})["dataset_id"]
    wait_for(lambda: agent.get(f"/api/datasets/{dataset_id}")["files"].get("registered") == 1, 30,
             "the first file of the sync registered")

    page.goto(agent.url("activity"))
    card = page.locator("section.dataset", has=page.locator("h2", has_text="beamtime"))
    expect(card.locator(".dataset-head .badge").last).to_have_text("syncing")
    card.get_by_role("button", name="Cancel…").click()
    expect(card.get_by_role("alertdialog")).to_contain_text("Its folder is no longer watched")
    card.get_by_role("button", name="Cancel upload").click()
    expect(card.locator(".dataset-head .badge").last).to_have_text("cancelled")
    entry = agent.get(f"/api/datasets/{dataset_id}")
    assert entry["state"] == "cancelled" and entry["syncing"] is False, entry

    (folder / "scan_001.dat").write_bytes(os.urandom(4000))  # after the cancel: nobody watches any more
    time.sleep(6)  # the quiet period (2 s) and a settle pass, twice over
    assert dataset_rows(ta, "beamtime") == {"registered": 1}
    assert set(ta.catalogue_files("beamtime")) == {"scan_000.dat"}
    assert {p.name for p in ta.storage_dir.rglob("scan_*.dat")} == {"scan_000.dat"}
    session = next(d["session"] for d in agent.get("/api/status")["datasets"] if d["id"] == dataset_id)
    assert session["state"] == "stopped", session


def test_cancel_from_the_cli_while_the_agent_uploads(ta: Trayagent, webdav_server: WebDAVServer,
                                                     start_agent: Any, tmp_path: Path) -> None:
    """`trayagent cancel NAME` does what Activity's Cancel does; a CLI following that upload ends, saying so."""
    ta.use_webdav(webdav_server, transfer={"bwlimit": "500k", "batch_files": 2, "transfers": 1})
    start_agent()
    data = tmp_path / "clirun"
    data.mkdir()
    for i in range(FILES):
        (data / f"frame_{i:03d}.dat").write_bytes(os.urandom(SIZE))
    follower = ta.popen("upload", str(data), "--dataset", "clirun")
    wait_for(lambda: len(stored(webdav_server, "clirun")) >= 2, 30, "the first files of clirun in storage")
    done = ta.run("cancel", "clirun", check=True)
    assert "clirun: cancelled" in done.stdout
    _, err = follower.communicate(timeout=30)
    assert follower.returncode == 130, err
    assert "clirun was cancelled" in err
    rows = dataset_rows(ta, "clirun")
    assert "pending" not in rows, rows
    refused = ta.run("cancel", "clirun")
    assert refused.returncode != 0 and "uploads no dataset named 'clirun'" in refused.stderr


def test_open_in_catalogue_links_the_scicat_page_with_the_pid_percent_encoded(
        ta: Trayagent, real_scicat: Any, start_agent: Any, agent_env: dict[str, str], page: Any,
        tmp_path: Path) -> None:
    opened = recording_opener(tmp_path, agent_env)
    web = "https://scicat.example.org/datasets/{pid}"
    ta.write_config({"catalogue": {"kind": "scicat", "url": real_scicat.url, "web_url": web}})
    agent = start_agent()
    agent.post("/api/login", {"user": "beamuser", "password": "beamuser-pw"})
    data = tmp_path / "catrun"
    data.mkdir()
    (data / "a.dat").write_bytes(os.urandom(2000))
    dataset_id = agent.post("/api/upload", {"paths": [str(data)], "dataset": "catrun"})["dataset_id"]
    entry = wait_for(lambda: (e := agent.get(f"/api/datasets/{dataset_id}"))["state"] == "complete" and e, 60,
                     "catrun to complete")
    pid = entry["catalogue_id"]
    assert "/" in pid, pid  # SciCat's pids hold a '/': the page's address must encode it
    expected = "https://scicat.example.org/datasets/" + quote(pid, safe="")
    assert entry["catalogue_page"] == expected and "%2F" in expected

    page.goto(agent.url("activity"))
    card = page.locator("section.dataset", has=page.locator("h2", has_text="catrun"))
    link = card.get_by_role("link", name="Open in catalogue")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", expected)
    link.click()
    expect(page.locator("#notice")).to_contain_text("in the web browser")
    wait_for(lambda: opened.exists() and opened.read_text().split() == [expected], 10, "the web browser opener")


def test_the_dataset_dialog_says_when_its_upload_was_cancelled(
        ta: Trayagent, webdav_server: WebDAVServer, start_agent: Any, page: Any, tmp_path: Path) -> None:
    """The Dataset dialog follows the upload it started: a Cancel in Activity ends that wait with a sentence
    (not a loop of requests, nor "Uploading…" forever)."""
    ta.use_webdav(webdav_server, transfer={"bwlimit": "500k", "batch_files": 2, "transfers": 1})
    agent = start_agent()
    data = slow_run(tmp_path / "dialogrun")
    waits: list[str] = []
    page.on("request", lambda r: waits.append(r.url) if r.url.endswith("/wait") and "/datasets/" in r.url else None)
    request = agent.post("/api/open", {"paths": [str(data)]})["request"]
    page.goto(agent.url("dataset", request))
    page.fill("#dataset-name", "dialogrun")
    page.click("#start")
    expect(page.locator("#status")).to_contain_text("Uploading “dialogrun”")
    entry = wait_for(lambda: agent.dataset("dialogrun"), 15, "the dataset in the agent")
    agent.post(f"/api/datasets/{entry['id']}/cancel")
    expect(page.locator("#status")).to_contain_text("“dialogrun” was cancelled", timeout=10_000)
    count = len(waits)
    page.wait_for_timeout(3000)
    assert len(waits) == count, f"{len(waits) - count} more waits after the end: {waits[-5:]}"


def test_cancel_from_the_tray_opens_activity_with_the_question_and_drops_nothing_until_answered(
        agent: Any, page: Any, tmp_path: Path) -> None:
    """The tray's Cancel… of one upload opens Activity (a request the page fetches) on that dataset's
    card with the question asked, "Keep uploading" focused: a slip in the tray menu drops nothing.
    The answer here cancels it as the card's own Cancel… does."""
    agent.post("/api/pause")  # the upload stays queued while the page is looked at
    data = tmp_path / "fromtray"
    data.mkdir()
    for i in range(3):
        (data / f"f{i}.dat").write_bytes(os.urandom(2000))
    other = agent.post("/api/upload", {"paths": [str(data)], "dataset": "another"})["dataset_id"]
    dataset_id = agent.post("/api/upload", {"paths": [str(data)], "dataset": "fromtray"})["dataset_id"]
    request = agent.post("/api/show/activity", {"dataset": dataset_id, "ask": "cancel"})["request"]
    page.goto(agent.url("activity", request))

    card = page.locator("section.dataset", has=page.locator("h2", has_text="fromtray"))
    question = card.get_by_role("alertdialog")
    expect(question).to_be_visible()
    expect(question).to_contain_text("Cancel the upload of fromtray?")
    expect(question.get_by_role("button", name="Keep uploading")).to_be_focused()
    other_card = page.locator("section.dataset", has=page.locator("h2", has_text="another"))
    expect(other_card.get_by_role("alertdialog")).to_be_hidden()  # only the dataset the tray named
    assert agent.get(f"/api/datasets/{dataset_id}")["state"] == "active"

    question.get_by_role("button", name="Cancel upload").click()
    expect(card.locator(".dataset-head .badge").last).to_have_text("cancelled")
    assert agent.get(f"/api/datasets/{dataset_id}")["state"] == "cancelled"
    assert agent.get(f"/api/datasets/{other}")["state"] == "active"

    # a menu older than the change (the tray refreshes within a second): said, not silently ignored
    request = agent.post("/api/show/activity", {"dataset": dataset_id, "ask": "cancel"})["request"]
    page.goto("about:blank")
    page.goto(agent.url("activity", request))
    expect(page.locator("#notice")).to_contain_text("fromtray is no longer under way: there is nothing to cancel")
    expect(card.get_by_role("alertdialog")).to_be_hidden()
