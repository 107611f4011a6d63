"""The control API's server thread sleeps while nobody calls (issue 24: idle must stay idle) and
still stops at once. Before, ``serve_forever`` looked for a stop every 0.5 s: 2 wake-ups a second
for as long as the agent ran."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from trayagent.agent.client import AgentClient
from trayagent.agent.server import ControlServer


def _switches(thread: threading.Thread) -> int:
    """How often the thread went to sleep so far (voluntary context switches, Linux)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("voluntary_ctxt_switches:")))


def test_an_idle_control_server_sleeps_and_still_answers_and_stops_at_once(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("counts context switches in /proc")
    server = ControlServer(tmp_path / "run")

    @server.route("GET", "/api/ping")
    def ping(body: dict[str, Any], m: Any) -> Any:
        return {"pong": True}

    server.start()
    try:
        [thread] = [t for t in threading.enumerate() if t.name == "control-api"]
        time.sleep(0.3)
        before = _switches(thread)
        time.sleep(3)
        assert _switches(thread) - before <= 1  # was 6: a look every 0.5 s
        assert AgentClient(server.base_url, server.token).get("/api/ping") == {"pong": True}
    finally:
        began = time.monotonic()
        server.stop()
    assert time.monotonic() - began < 2
    thread.join(2)
    assert not thread.is_alive()
