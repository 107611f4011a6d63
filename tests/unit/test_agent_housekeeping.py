"""How often the agent's housekeeping loop runs (issue 24: idle must stay idle). Every second while
something moves, waits or has a notice pending; every HOUSEKEEPING_IDLE seconds otherwise: at 1 s it
was the largest share of an idle agent's CPU."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from trayagent.agent.agent import HOUSEKEEPING_IDLE, Agent
from trayagent.agent.notify import Notifications


@dataclass
class _Uploader:
    waiting: str | None = None
    files: int = 0

    def in_flight(self) -> int:
        return self.files


def _agent(uploader: _Uploader, notes: Notifications) -> Agent:
    agent = Agent.__new__(Agent)  # only the two collaborators the interval reads
    agent.uploader = uploader  # type: ignore[assignment]
    agent.notes = notes
    return agent


@pytest.mark.parametrize(("waiting", "files", "failure", "interval"), [
    (None, 0, False, HOUSEKEEPING_IDLE),
    (None, 3, False, 1.0),
    ("storage unreachable: connection refused (retrying in 8 s)", 0, False, 1.0),
    (None, 0, True, 1.0),
])
def test_the_loop_ticks_every_second_only_while_there_is_something_to_follow(
        waiting: str | None, files: int, failure: bool, interval: float) -> None:
    notes = Notifications(lambda *args, **kwargs: None)
    if failure:
        notes.file_failed("run42", "permission denied")
    assert _agent(_Uploader(waiting, files), notes)._housekeeping_interval() == interval
    assert HOUSEKEEPING_IDLE >= 5.0
