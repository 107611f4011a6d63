"""Settings under a site-wide file (issue 21), in headless Chromium against the real headless agent.

IT's file locks the storage remote and the catalogue: Settings shows those fields read-only with the
site file's name, saves the user's other changes into the user's file with its comments kept, and a
request that changes a locked key, or a save into a read-only file, is answered with a clear message
(HTTP 400 naming the key or file), never the "internal error" of HTTP 500.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from playwright.sync_api import expect

SITE = """\
[storage]
remote = ":local:"
root = "site/{dataset}"

[locked]
keys = ["storage.remote", "catalogue"]
"""

USER = """\
# my settings, with a comment that must survive a save
[transfer]
transfers = 2   # slow link at home
"""


@pytest.fixture
def site_file(ta: Trayagent, agent_env: dict[str, str], tmp_path: Path) -> Path:
    site = tmp_path / "etc" / "trayagent" / "config.toml"
    site.parent.mkdir(parents=True)
    site.write_text(SITE)
    agent_env["TRAYAGENT_SITE_CONFIG"] = str(site)
    user = ta.home / "config" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(USER)
    return site


def test_locked_keys_are_read_only_and_the_rest_saves_into_the_users_file(
        ta: Trayagent, site_file: Path, start_agent: Any, page: Any, artifacts: Path) -> None:
    agent = start_agent()
    answer = agent.get("/api/settings")
    assert "storage.remote" in answer["locked"] and "catalogue.kind" in answer["locked"]
    assert answer["site_file"] == str(site_file)

    page.goto(agent.url("settings"))
    expect(page.locator("#locked-note")).to_be_visible()
    expect(page.locator("#site-file")).to_have_text(str(site_file))
    for locked in ("#storage-remote", "#catalogue-kind", "#catalogue-url"):
        expect(page.locator(locked)).to_be_disabled()
        expect(page.locator(locked)).to_have_attribute("title", f"Set by your facility in {site_file}")
    expect(page.locator("#storage-remote")).to_have_value(":local:")
    expect(page.locator("#storage-root")).to_be_enabled()          # set by the site, not locked
    expect(page.locator("#storage-root")).to_have_value("site/{dataset}")
    expect(page.locator("#transfer-transfers")).to_have_value("2")  # the user's file over the site's
    page.screenshot(path=artifacts / "settings-locked.png", full_page=True)

    page.fill("#transfer-bwlimit", "20M")
    page.click("#save")
    expect(page.locator("#result")).to_contain_text("Saved.")
    text = (ta.home / "config" / "config.toml").read_text()
    assert text == USER + 'bwlimit = "20M"\n'   # comments kept; locked and unchanged keys not written


def test_a_change_to_a_locked_key_is_refused_with_the_site_files_name(site_file: Path, start_agent: Any,
                                                                      ta: Trayagent) -> None:
    agent = start_agent()
    settings = agent.get("/api/settings")["settings"]
    settings["storage"]["remote"] = "elsewhere:"
    resp = agent._call("POST", "/api/settings", {"settings": settings})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == f"storage.remote: set by your facility in {site_file}; this cannot be changed here"
    assert (ta.home / "config" / "config.toml").read_text() == USER


def test_a_read_only_user_file_is_refused_with_a_clear_message(site_file: Path, start_agent: Any, page: Any,
                                                               ta: Trayagent) -> None:
    """The issue's HTTP 500: IT made the file read-only. Now the dialog says what happened."""
    user = ta.home / "config" / "config.toml"
    user.chmod(0o444)
    agent = start_agent()
    page.goto(agent.url("settings"))
    page.fill("#transfer-bwlimit", "5M")
    page.click("#save")
    expect(page.locator("#result")).to_contain_text(
        f"{user}: the configuration file is read-only, so nothing was saved")
    expect(page.locator("#result")).not_to_contain_text("internal error")
    assert user.read_text() == USER
