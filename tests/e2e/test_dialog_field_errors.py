"""Errors the agent answers with a ``field`` are shown at that input (issue 19: a person reads the message
where the mistake is): marked invalid (aria-invalid), the message right after it and tied to it
(aria-describedby), focus there; the next try takes the mark back. A real headless agent, real rclone,
a real WebDAV server, the dialogs in headless Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest
from agentctl import Trayagent
from playwright.sync_api import expect
from servers import WebDAVServer

pytestmark = pytest.mark.timeout(300)


def open_dialog(page: Any, agent: Any, name: str, request: str = "") -> None:
    page.goto(agent.url(name, request))
    expect(page.locator("h1")).to_be_visible()


def expect_marked(page: Any, selector: str, text: str) -> None:
    field = page.locator(selector)
    note = page.locator(f"{selector}-error")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(note).to_be_visible()
    expect(note).to_contain_text(text)
    expect(field).to_have_attribute("aria-describedby", re.compile(rf"\b{selector[1:]}-error\b"))
    expect(field).to_be_focused()


def test_settings_marks_the_storage_field_the_agent_names(agent: Any, page: Any, artifacts: Any) -> None:
    open_dialog(page, agent, "settings")
    expect(page.locator("#storage-root")).to_have_value("{proposal}/{dataset}")  # the form is loaded
    remote = page.locator("#storage-remote")

    # a web address typed where an rclone remote goes: refused by the agent, at that field
    remote.fill("https://dav.example.org/dav")
    page.locator("#transfer-bwlimit").focus()
    page.click("#save")
    expect(page.locator("#result")).to_have_class("message error")
    expect_marked(page, "#storage-remote", "a web address alone is no remote")
    page.screenshot(path=artifacts / "settings-field-error.png", full_page=True)
    assert agent.get("/api/settings")["settings"]["storage"]["remote"] == ""  # nothing saved

    # a remote rclone does not know: Test connection says so beside the field
    remote.fill("nosuchremote:bucket")
    page.click("#test")
    expect(page.locator("#test-result")).to_contain_text("Connection failed")
    expect_marked(page, "#storage-remote", "the storage remote 'nosuchremote' is not in rclone's configuration")

    # fixed: the mark goes with the next try
    remote.fill("")
    page.click("#save")
    expect(page.locator("#result")).to_contain_text("Saved.")
    expect(remote).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#storage-remote-error")).to_be_hidden()


def test_login_marks_the_password_the_storage_refused(ta: Trayagent, webdav_server: WebDAVServer,
                                                      start_agent: Any, page: Any) -> None:
    ta.use_webdav(webdav_server)
    agent = start_agent()
    request = agent.post("/api/show/login", {"account": "storage"})["request"]
    open_dialog(page, agent, "login", request)
    expect(page.locator("#account-storage")).to_be_checked()
    page.fill("#password", "not-the-password")
    page.press("#password", "Enter")
    expect(page.locator("#result")).to_have_class("message error")
    expect_marked(page, "#password", "The storage refused this password")
    expect(page.locator("#password")).to_have_value("")

    page.fill("#password", webdav_server.password)
    page.press("#password", "Enter")
    expect(page.locator("#result")).to_have_class("message ok")
    expect(page.locator("#password")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-error")).to_be_hidden()
