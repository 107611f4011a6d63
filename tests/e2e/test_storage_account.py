"""The storage account as a person meets it (issue 19, items 1 to 4): a wrong storage password, the
Login dialog's storage account, `trayagent login storage` while the agent runs, a storage changed in
Settings, and Test connection on the values in the form.

A real headless agent, real WebDAV servers (wsgidav) with basic auth, real rclone, the real keyring
of the test session, and the dialogs' pages in headless Chromium.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from playwright.sync_api import expect
from servers import WebDAVServer, random_secret
from waiting import wait_for

pytestmark = pytest.mark.timeout(300)

AgentProcess = Any  # the fixture's type, defined in tests/e2e/conftest.py
RESUME_WITHIN = 20.0  # seconds from a new password to the upload done (the agent re-reads every 3 s)


def make_files(folder: Path, count: int = 3, size: int = 50_000) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"frame_{i}.dat").write_bytes(os.urandom(size))
    return folder


def refused(agent: AgentProcess) -> bool:
    """The agent says the storage refused the password (its status; older agents: their problem text)."""
    state = agent.get("/api/status")["agent"]
    return bool(state.get("storage_refused") or "refused the credentials" in (state.get("problem") or ""))


def complete(agent: AgentProcess, name: str) -> bool:
    entry = agent.dataset(name)
    return entry is not None and entry["state"] == "complete"


def open_dialog(page: Any, agent: AgentProcess, name: str, request: str = "") -> None:
    page.goto("about:blank")  # a new request id alone changes only the fragment: load the page anew
    page.goto(agent.url(name, request))
    expect(page.locator("h1")).to_be_visible()


def refused_upload(ta: Trayagent, server: WebDAVServer, start_agent: Any, tmp_path: Path) -> AgentProcess:
    """An agent whose keyring holds a wrong storage password, with an upload held by the refusal."""
    ta.use_webdav(server)
    ta.run("login", "storage", "--password-stdin", input="not-the-password\n", check=True)
    agent = start_agent()
    agent.post("/api/upload", {"paths": [str(make_files(tmp_path / "run9"))], "dataset": "run9"})
    wait_for(lambda: refused(agent), 60, "the storage to refuse the password")
    assert not complete(agent, "run9")
    return agent


def test_login_dialog_takes_the_storage_password_and_the_held_upload_resumes(
        ta: Trayagent, webdav_server: WebDAVServer, start_agent: Any, page: Any, tmp_path: Path,
        artifacts: Path) -> None:
    agent = refused_upload(ta, webdav_server, start_agent, tmp_path)
    # the tray's "Log in... (needed)" asks for the dialog on the storage account
    request = agent.post("/api/show/login", {"account": "storage"})["request"]
    open_dialog(page, agent, "login", request)
    expect(page.locator("#account-storage")).to_be_checked()
    expect(page.locator("h1")).to_have_text("Log in to the storage")
    expect(page.locator("#user")).to_have_value("alice")
    expect(page.locator("#password")).to_be_focused()
    expect(page.locator("#storage-state")).to_contain_text("Uploads wait")

    result = page.locator("#result")
    page.keyboard.type("still-not-it")
    page.keyboard.press("Enter")
    expect(result).to_have_class("message error")
    expect(result).to_contain_text("refused this password")
    assert refused(agent), "a refused password must not be taken"

    page.fill("#password", webdav_server.password)
    page.screenshot(path=artifacts / "login-storage.png", full_page=True)
    page.press("#password", "Enter")
    expect(result).to_have_class("message ok")
    expect(result).to_contain_text("waiting uploads resume")
    wait_for(lambda: complete(agent, "run9"), RESUME_WITHIN, "the held upload to finish after the login")
    assert sorted(p.name for p in webdav_server.root.rglob("frame_*.dat")) == [f"frame_{i}.dat" for i in range(3)]
    assert not refused(agent)


def test_cli_login_storage_is_picked_up_by_the_running_agent(ta: Trayagent, webdav_server: WebDAVServer,
                                                             start_agent: Any, tmp_path: Path) -> None:
    agent = refused_upload(ta, webdav_server, start_agent, tmp_path)
    ta.run("login", "storage", "--password-stdin", input=webdav_server.password + "\n", check=True)
    wait_for(lambda: complete(agent, "run9"), RESUME_WITHIN, "the running agent to use the new password")
    assert agent.proc is not None and agent.proc.poll() is None


def test_storage_changed_in_settings_applies_live_and_asks_for_its_password(
        ta: Trayagent, webdav_server: WebDAVServer, start_agent: Any, page: Any, tmp_path: Path) -> None:
    ta.use_webdav(webdav_server)
    agent = start_agent()
    with WebDAVServer(tmp_path / "dav2", user="bob", password=random_secret()) as second:
        open_dialog(page, agent, "settings")
        page.fill("#storage-remote", f":webdav,url='{second.url}',vendor=other:")
        page.fill("#storage-user", "bob")
        page.click("#save")
        result = page.locator("#result")
        expect(result).to_contain_text("Applied at once")
        # no password for bob yet: the agent stays up and says what it needs
        wait_for(lambda: refused(agent), 30, "the agent to ask for the new storage's password")
        assert agent.proc is not None and agent.proc.poll() is None
        agent.post("/api/upload", {"paths": [str(make_files(tmp_path / "run10"))], "dataset": "run10"})

        page.fill("#storage-password", "wrong")
        page.click("#save")
        expect(result).to_have_class("message error")
        expect(result).to_contain_text("refused this password")
        page.fill("#storage-password", second.password)
        page.click("#save")
        expect(result).to_contain_text("Applied at once")
        wait_for(lambda: complete(agent, "run10"), RESUME_WITHIN, "the upload to reach the new storage")
        assert len(list(second.root.rglob("frame_*.dat"))) == 3
        assert not list(webdav_server.root.rglob("run10"))


def test_test_connection_tests_the_form_with_the_typed_password(start_agent: Any, page: Any,
                                                                tmp_path: Path) -> None:
    agent = start_agent()  # the embedded local storage, which is reachable
    with WebDAVServer(tmp_path / "dav", user="carol", password=random_secret()) as dav:
        open_dialog(page, agent, "settings")
        page.fill("#storage-remote", f":webdav,url='{dav.url}',vendor=other:")
        page.fill("#storage-user", "carol")
        box = page.locator("#test-result")
        page.click("#test")
        expect(box).to_have_class("message error")
        expect(box).to_contain_text("no password for carol")

        page.fill("#storage-password", "wrong")
        page.click("#test")
        expect(box).to_have_class("message error")
        expect(box).to_contain_text("refused")

        page.fill("#storage-password", dav.password)
        page.click("#test")
        expect(box).to_have_class("message ok")
        expect(box).to_contain_text(dav.url.rstrip("/"))
        # nothing was saved by testing
        assert agent.get("/api/settings")["settings"]["storage"]["remote"] == ""


def test_start_sync_opens_the_dataset_dialog_in_sync_mode(agent: AgentProcess, page: Any) -> None:
    """The tray's "Start sync..." asks for the Dataset dialog with mode sync (tray.py)."""
    request = agent.post("/api/show/dataset", {"mode": "sync"})["request"]
    open_dialog(page, agent, "dataset", request)
    expect(page.locator("input[name=mode][value=sync]")).to_be_checked()
    request = agent.post("/api/show/dataset", {"mode": "batch"})["request"]
    open_dialog(page, agent, "dataset", request)
    expect(page.locator("input[name=mode][value=batch]")).to_be_checked()


def test_a_storage_remote_rclone_does_not_know_leaves_the_agent_up_and_saying_so(
        start_agent: Any, page: Any, tmp_path: Path) -> None:
    """Issue 19.3: a storage changed in Settings left the agent dead at its restart, with a message on
    stderr only. Now Settings apply live, and a storage that cannot work is said (status, log), not fatal."""
    agent = start_agent()
    open_dialog(page, agent, "settings")
    page.fill("#storage-remote", "nosuchremote:bucket")
    page.click("#save")
    expect(page.locator("#result")).to_contain_text("Applied at once")
    agent.post("/api/upload", {"paths": [str(make_files(tmp_path / "run12"))], "dataset": "run12"})
    def said() -> bool:
        state = agent.get("/api/status")["agent"]
        return "nosuchremote" in (state.get("problem") or "") + (state.get("waiting") or "")

    wait_for(said, 30, "the agent to say what is wrong with the storage")
    assert agent.proc is not None and agent.proc.poll() is None

    page.fill("#storage-remote", "")  # back to the embedded storage: the problem goes, uploads work
    page.click("#save")
    wait_for(lambda: not said(), 30, "the problem to clear")
    agent.post("/api/upload", {"paths": [str(make_files(tmp_path / "run11"))], "dataset": "run11"})
    wait_for(lambda: complete(agent, "run11"), 30, "the upload to the embedded storage")
