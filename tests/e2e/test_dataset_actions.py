"""Per-dataset actions in Activity (issue 19, "Expected"): pause and resume one dataset while the others
go on, and open the folder its files come from. A real headless agent, the embedded local storage,
Activity in headless Chromium; the file manager is a recording `xdg-open` first on the agent's PATH."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from agentctl import recording_opener
from playwright.sync_api import expect
from waiting import wait_for

pytestmark = pytest.mark.timeout(300)


def make(folder: Path, files: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"f{i}.dat").write_bytes(os.urandom(5000))
    return folder


def state(agent: Any, name: str) -> str | None:
    entry = agent.dataset(name)
    return entry["state"] if entry else None


def test_one_dataset_paused_while_the_other_goes_on_then_resumed_and_its_folder_opened(
        start_agent: Any, agent_env: dict[str, str], page: Any, tmp_path: Path) -> None:
    opened = recording_opener(tmp_path, agent_env)
    agent = start_agent()

    agent.post("/api/pause")  # both wait until a choice is made
    slow, quick = make(tmp_path / "slow", 4), make(tmp_path / "quick", 3)
    agent.post("/api/upload", {"paths": [str(slow)], "dataset": "slow"})
    agent.post("/api/upload", {"paths": [str(quick)], "dataset": "quick"})
    wait_for(lambda: all((d := agent.dataset(n)) and d["files_total"] for n in ("slow", "quick")), 30,
             "both datasets scanned")

    page.goto(agent.url("activity"))
    card = page.locator("section.dataset", has=page.locator("h2", has_text="slow"))
    card.get_by_role("button", name="Pause").click()
    expect(page.locator("#notice")).to_contain_text("Paused slow")
    expect(card).to_contain_text("paused")
    page.locator("#pause").click()  # Resume all: quick goes, slow stays paused
    wait_for(lambda: state(agent, "quick") == "complete", 30, "quick to complete")
    page.wait_for_timeout(2000)
    held = agent.dataset("slow")
    assert held is not None and held["state"] == "active" and held["held"] is True
    assert held["files"].get("registered", 0) == 0, held["files"]

    card.get_by_role("button", name="Resume").click()
    wait_for(lambda: state(agent, "slow") == "complete", 30, "slow to complete after its Resume")

    card.get_by_role("button", name="Open folder").click()
    expect(page.locator("#notice")).to_contain_text(f"Opened {slow}")
    wait_for(lambda: opened.exists() and opened.read_text().split() == [str(slow)], 10, "the file manager")
