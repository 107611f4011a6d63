"""What the tray says: one state for the icon, one status line for the top of the menu, one tooltip.

Plain logic over a few facts of the agent, so that icon, tooltip and menu cannot disagree: the
first condition that holds wins, in the order a person has to act on them (a refused password
before a problem, a problem before a pause, a pause before progress). Failed files are never
hidden behind "up to date".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..formats import human_bytes

# the icon shown for each state (waiting and failed have no picture of their own: the error one)
ICONS = {"idle": "idle", "syncing": "syncing", "paused": "paused", "error": "error", "logged-out": "logged-out",
         "waiting": "error", "failed": "error"}


class Facts(Protocol):
    """What the summary reads from the agent."""

    problem: str | None
    storage_refused: str | None
    login_needed: bool

    @property
    def paused(self) -> bool: ...
    @property
    def waiting(self) -> str | None: ...
    def activity(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Summary:
    state: str     # a key of ICONS
    line: str      # the status line at the top of the menu
    tooltip: str
    held: bool     # files wait rather than move (paused, refused, unreachable): "waiting", not "in flight"


def summarize(agent: Facts) -> Summary:
    activity = agent.activity()
    failed = [(d["name"], d["files"].get("failed", 0)) for d in activity if d["files"].get("failed", 0)]
    queued = sum(_left(d) for d in activity if d["state"] == "active")
    if agent.storage_refused:
        return Summary("logged-out", "Log in to storage",
                       f"trayagent: {_files(queued)} wait for the storage password — use Log in…", True)
    if agent.login_needed:
        return Summary("logged-out", "Log in to catalogue",
                       "trayagent: log in to the catalogue — uploads continue, registration waits", False)
    if agent.problem:
        return Summary("error", "Problem: " + _clip(agent.problem), f"trayagent: problem — {agent.problem}", True)
    if agent.paused:
        text = f"Paused — {_files(queued)} waiting" if queued else "Paused"
        return Summary("paused", text, f"trayagent: {text[0].lower()}{text[1:]}", True)
    waiting = agent.waiting or ""
    if waiting.startswith("storage"):
        return Summary("waiting", "Waiting for storage",
                       f"trayagent: waiting for storage — {_files(queued)} queued; {_clip(waiting, 90)}", True)
    busy = [d for d in activity if d["state"] == "active" and _left(d) > 0 and not d.get("held")]
    if busy:
        line = _uploading(busy[0]) + (f" (+{len(busy) - 1} more)" if len(busy) > 1 else "")
        line += _failed_suffix(failed)
        return Summary("syncing", line, "trayagent: " + line, False)
    if waiting.startswith("catalogue"):
        return Summary("waiting", "Waiting for the catalogue", f"trayagent: {_clip(waiting, 120)}", True)
    if failed:
        total = sum(n for _, n in failed)
        where = failed[0][0] + (f" and {len(failed) - 1} more" if len(failed) > 1 else "")
        line = f"{_files(total)} failed in {where}"
        return Summary("failed", line, f"trayagent: {line} — see Activity (Retry)", False)
    watching = [d["name"] for d in activity if d.get("syncing")]
    if watching:
        line = f"Syncing {watching[0]}: up to date" + (f" (+{len(watching) - 1} more)" if len(watching) > 1 else "")
        return Summary("syncing", line, "trayagent: " + line, False)
    return Summary("idle", "Up to date", "trayagent: up to date — all uploads done", False)


def _uploading(d: dict[str, Any]) -> str:
    """``Uploading run42: 3 of 30 · 4.2 MB/s · 2 min left``."""
    done = d["files"].get("registered", 0)
    parts = [f"Uploading {d['name']}: {done} of {d['files_total']}"]
    if d.get("rate"):
        parts.append(f"{human_bytes(d['rate'])}/s")
    if d.get("eta") is not None:
        parts.append(time_left(float(d["eta"])))
    return " · ".join(parts)


def time_left(seconds: float) -> str:
    if seconds < 60:
        return "under a minute left"
    if seconds < 3600:
        return f"{round(seconds / 60)} min left"
    return f"{seconds / 3600:.1f} h left"


def _left(d: dict[str, Any]) -> int:
    files = d["files"]
    return int(d["files_total"] - files.get("registered", 0) - files.get("failed", 0))


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _failed_suffix(failed: Sequence[tuple[str, int]]) -> str:
    total = sum(n for _, n in failed)
    return f" · {total} failed" if total else ""


def _clip(text: str, width: int = 60) -> str:
    text = text.split("\n")[0]
    return text if len(text) <= width else text[:width - 1] + "…"
