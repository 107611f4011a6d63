"""The tray's summary (icon state, status line, tooltip): one source, so they cannot disagree; the
order says what a person must act on first, and failed files never read as "all uploads done"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trayagent.ui.status import summarize, time_left


def entry(name: str, *, state: str = "active", registered: int = 0, failed: int = 0, pending: int = 0,
          rate: float = 0.0, eta: float | None = None, syncing: bool = False) -> dict[str, Any]:
    files = {"registered": registered, "failed": failed, "pending": pending}
    return {"name": name, "state": state, "files": files, "files_total": sum(files.values()), "rate": rate,
            "eta": eta, "syncing": syncing}


@dataclass
class Agent:
    problem: str | None = None
    storage_refused: str | None = None
    login_needed: bool = False
    paused: bool = False
    waiting: str | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)

    def activity(self) -> list[dict[str, Any]]:
        return self.entries


def test_idle_is_up_to_date() -> None:
    s = summarize(Agent(entries=[entry("run1", state="complete", registered=3)]))
    assert (s.state, s.line, s.held) == ("idle", "Up to date", False)


def test_failed_files_are_not_all_done() -> None:
    s = summarize(Agent(entries=[entry("run1", state="complete", registered=3, failed=2)]))
    assert s.state == "failed"
    assert s.line == "2 files failed in run1"
    assert "all uploads done" not in s.tooltip and "Activity" in s.tooltip


def test_uploading_line_has_counts_rate_and_time_left() -> None:
    s = summarize(Agent(entries=[entry("run42", registered=3, pending=27, rate=2.5e6, eta=130)]))
    assert s.state == "syncing"
    assert s.line == "Uploading run42: 3 of 30 · 2.5 MB/s · 2 min left"


def test_refused_storage_password_outranks_everything_and_holds_files() -> None:
    agent = Agent(storage_refused="401", problem="x", paused=True, waiting="storage unreachable",
                  entries=[entry("run5", pending=30)])
    s = summarize(agent)
    assert (s.state, s.line, s.held) == ("logged-out", "Log in to storage", True)
    assert "30 files wait for the storage password" in s.tooltip


def test_unreachable_storage_is_waiting_not_syncing() -> None:
    s = summarize(Agent(waiting="storage unreachable: dial tcp (retrying in 8 s)", entries=[entry("r", pending=4)]))
    assert (s.state, s.line, s.held) == ("waiting", "Waiting for storage", True)


def test_catalogue_login_and_pause() -> None:
    assert summarize(Agent(login_needed=True)).line == "Log in to catalogue"
    s = summarize(Agent(paused=True, entries=[entry("r", pending=5)]))
    assert (s.state, s.line) == ("paused", "Paused — 5 files waiting")


def test_time_left_wording() -> None:
    assert time_left(30) == "under a minute left"
    assert time_left(600) == "10 min left"
    assert time_left(5400) == "1.5 h left"
