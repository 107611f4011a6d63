"""Desktop notifications from the real headless agent, as a notification daemon receives them.

A recorder owns org.freedesktop.Notifications on a private session bus (tests/e2e/desktop_session.py);
the agent notifies over D-Bus itself (jeepney; no dbus-python, no notify-send), so the whole path is real. A batch
upload handed to the agent by ``trayagent upload`` gives exactly one "Dataset X complete"; files that
fail give one aggregated notice per dataset (the failure window is 10 s), never one per file.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from desktop_session import AgentProcess, DesktopSession
from waiting import wait_until

FAILURE_WINDOW = 10.0  # trayagent.agent.notify.Notifications default


@pytest.fixture(scope="module")
def notification_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DesktopSession]:
    """No display: a private session bus with the notification recorder only."""
    with DesktopSession(tmp_path_factory.mktemp("notify"), x=False) as session:
        yield session


@pytest.fixture
def headless_agent(notification_bus: DesktopSession, tmp_path: Path) -> Iterator[AgentProcess]:
    agent = AgentProcess(tmp_path / "home", notification_bus.env(), "agent", "--headless")
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
        assert "Traceback" not in agent.log_text, agent.log_text[-3000:]


def upload(agent: AgentProcess, folder: Path, dataset: str) -> subprocess.CompletedProcess[str]:
    """``trayagent upload`` while the agent runs: it hands the dataset to the agent and follows it."""
    return subprocess.run([sys.executable, "-m", "trayagent.cli", "upload", str(folder), "--dataset", dataset,
                           "--json"], env=agent.env, capture_output=True, text=True, timeout=300,
                          check=False)


def about(bus: DesktopSession, dataset: str) -> list[dict[str, Any]]:
    assert bus.recorder is not None
    return [n for n in bus.recorder.records() if dataset in n["summary"] + n["body"]]


def test_a_batch_upload_gives_one_complete_notification(notification_bus: DesktopSession,
                                                        headless_agent: AgentProcess, tmp_path: Path) -> None:
    folder = tmp_path / "run42"
    folder.mkdir()
    for i in range(7):
        (folder / f"scan_{i}.h5").write_bytes(b"x" * (2000 + i))
    proc = upload(headless_agent, folder, "run42")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    headless_agent.wait_log("notification: Dataset run42 complete")
    wait_until(lambda: about(notification_bus, "run42"), 15, 0.1, "the notification to reach the daemon")
    time.sleep(3)   # nothing else may follow
    notes = about(notification_bus, "run42")
    assert len(notes) == 1, notes
    note = notes[0]
    assert note["summary"] == "Dataset run42 complete"
    assert note["body"].startswith("7 files, "), note
    assert "uploaded and registered" in note["body"]
    assert note["app_name"] == "trayagent"


def test_failing_files_give_one_aggregated_notification(notification_bus: DesktopSession,
                                                        headless_agent: AgentProcess, tmp_path: Path) -> None:
    folder = tmp_path / "run43"
    folder.mkdir()
    (folder / "good_1.dat").write_bytes(b"a" * 500)
    (folder / "good_2.dat").write_bytes(b"b" * 600)
    for i in range(3):
        (folder / f"broken_{i}.dat").symlink_to(tmp_path / f"missing_{i}")
    started = time.monotonic()
    upload(headless_agent, folder, "run43")

    def failure_notes() -> list[dict[str, Any]]:
        return [n for n in about(notification_bus, "run43") if n["summary"].startswith("Upload problem")]

    wait_until(failure_notes, FAILURE_WINDOW + 15, 0.2, "the aggregated failure notification")
    # stay past the whole failure window: per-file notices would have arrived by now
    time.sleep(max(0.0, started + FAILURE_WINDOW + 3 - time.monotonic()) + 1)
    failures = failure_notes()
    assert len(failures) == 1, failures
    assert failures[0]["summary"] == "Upload problem in run43"
    assert failures[0]["body"].startswith("3 files of run43 failed: "), failures[0]
    assert "broken symbolic link" in failures[0]["body"]
    assert not [n for n in about(notification_bus, "run43") if n["body"].startswith("1 file of")]
    complete = [n for n in about(notification_bus, "run43") if n["summary"] == "Dataset run43 complete"]
    assert len(complete) == 1, about(notification_bus, "run43")
    assert complete[0]["body"].startswith("2 files, ") and "3 failed" in complete[0]["body"], complete[0]
    assert len(about(notification_bus, "run43")) == 2   # the aggregate and the completion, nothing else


def click(bus: DesktopSession, notification_id: int) -> None:
    """What the notification service does when the user clicks a bubble: the ActionInvoked signal."""
    from jeepney import DBusAddress, new_signal
    from jeepney.io.blocking import open_dbus_connection

    address = DBusAddress("/org/freedesktop/Notifications", interface="org.freedesktop.Notifications")
    with open_dbus_connection(bus=bus.bus.address) as conn:
        conn.send(new_signal(address, "ActionInvoked", "us", (notification_id, "default")))


def test_a_notification_has_icon_expiry_urgency_true_duration_and_opens_activity(
        notification_bus: DesktopSession, headless_agent: AgentProcess, tmp_path: Path) -> None:
    """Issue 19.5: plyer without dbus-python ran `notify-send -t 0` (no icon, never expiring, stacking
    up), and the duration counted from the engine's first batch ("registered in 0 s")."""
    assert notification_bus.recorder is not None
    folder = tmp_path / "run77"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.dat").write_bytes(b"x" * 10_000)
    headless_agent.api("POST", "/api/pause")
    headless_agent.api("POST", "/api/upload", {"paths": [str(folder)], "dataset": "run77"})
    time.sleep(4)  # the dataset waits: its time counts
    headless_agent.api("POST", "/api/resume")
    wait_until(lambda: about(notification_bus, "run77"), 60, 0.2, "the complete notification")
    (note,) = about(notification_bus, "run77")
    assert note["summary"] == "Dataset run77 complete"
    assert note["app_icon"] and Path(note["app_icon"]).is_file(), note
    assert 0 < note["expire_timeout"] <= 30_000, note
    assert note["hints"]["urgency"] == 1 and note["hints"]["desktop-entry"] == "trayagent", note
    assert note["actions"][:2] == ["default", "Open Activity"], note
    seconds = int(note["body"].split("registered in ")[1].split(" s")[0])
    assert seconds >= 4, note["body"]

    click(notification_bus, note["id"])
    headless_agent.wait_log("notification clicked: opening Activity")
    headless_agent.wait_log("the activity dialog")  # asked for (no display here: not drawn)
