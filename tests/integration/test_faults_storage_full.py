"""A storage that is really full: a WebDAV server (wsgidav) whose root is a 2 MiB tmpfs, through the
real rclone. wsgidav answers a write that hits ENOSPC with a 500 page that names the server's
"No space left on device": trayagent must recognise it as a full storage, not retry it forever.

Batch (`trayagent upload`) stops with one clear message and exit 1, keeping what is verified; the
re-run after space is freed sends the rest. The agent and sync sessions pause that storage, tell the
user once, and try again slowly (here every second instead of every 5 minutes).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentctl import Trayagent
from datagen import tree_of
from servers import WebDAVServer, random_secret
from tmpfs import grow_tmpfs, mount_tmpfs, unmount
from waiting import wait_until

from trayagent.config import load_config
from trayagent.errors import StorageFull
from trayagent.paths import resolve_paths
from trayagent.pipeline.progress import Outcome
from trayagent.uploader import Uploader

NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

FILE_SIZE = 700_000  # four of them: 2.8 MB, into a 2 MiB storage


@pytest.fixture
def full_webdav(tmp_path: Path) -> Iterator[WebDAVServer]:
    """WebDAV whose root is a 2 MiB tmpfs (``grow`` makes it bigger: space freed)."""
    mnt = tmp_path / "davfs"
    mount_tmpfs(mnt, "2m")
    try:
        with WebDAVServer(mnt / "dav", user="alice", password=random_secret()) as server:
            yield server
    finally:
        unmount(mnt)


def grow(server: WebDAVServer, size: str = "16m") -> None:
    grow_tmpfs(server.root.parent, size)


def four_files(root: Path) -> dict[str, bytes]:
    root.mkdir()
    content = {f"f{i}.bin": os.urandom(FILE_SIZE) for i in range(4)}
    for name, data in content.items():
        (root / name).write_bytes(data)
    return content


@NEEDS_ROOT
def test_batch_upload_into_full_storage_stops_with_one_message_and_the_rerun_finishes(
        ta: Trayagent, full_webdav: WebDAVServer, tmp_path: Path) -> None:
    content = four_files(tmp_path / "run")
    ta.use_webdav(full_webdav, transfer={"retry_max_seconds": 2, "batch_files": 2})
    proc = ta.run("upload", str(tmp_path / "run"), "--dataset", "full", timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "is full or over its quota" in proc.stderr and "No space left on device" in proc.stderr
    assert "Free space there" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "<html" not in proc.stderr.lower()  # no server page, no raw rclone line on the terminal
    assert "Failed to copy" not in proc.stderr
    assert proc.stderr.count("is full or over its quota") == 1
    states = ta.queue_states()
    assert "failed" not in states  # no file is at fault
    assert states.get("verified", 0) + states.get("registered", 0) >= 1  # what landed is kept
    assert sum(states.values()) == 4
    assert ta.catalogue_files("full") == {}  # nothing half-written is registered

    grow(full_webdav)
    proc = ta.run("upload", str(tmp_path / "run"), "--dataset", "full", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert tree_of(full_webdav.root / "no-proposal" / "full") == content
    assert set(ta.catalogue_files("full")) == set(content)


@NEEDS_ROOT
def test_agent_and_sync_pause_a_full_storage_tell_once_and_go_on_when_there_is_room(
        ta: Trayagent, full_webdav: WebDAVServer, tmp_path: Path) -> None:
    """The engine as the agent and sync sessions run it (``serve``, with ``on_storage_full``)."""
    content = four_files(tmp_path / "run")
    ta.use_webdav(full_webdav, transfer={"retry_max_seconds": 2, "batch_files": 2})
    paths = resolve_paths()
    with Uploader(load_config(paths), paths) as up:
        dataset = up.submit(up.plan([str(tmp_path / "run")], dataset="full"))
        engine = up.engine
        engine.tuning.full_retry_seconds = 1.0
        told: list[StorageFull] = []
        done: list[Outcome] = []
        engine.hooks.on_storage_full = told.append
        loop = threading.Thread(target=engine.serve, args=(lambda: [dataset.id],),
                                kwargs={"on_complete": done.append}, daemon=True)
        loop.start()
        try:
            wait_until(lambda: told, timeout=90)
            assert "No space left on device" in told[0].message
            assert engine.waiting is not None and "full or over its quota" in engine.waiting
            time.sleep(2)  # a few slow tries: still paused, still serving, nothing failed
            assert loop.is_alive() and not done
            assert "failed" not in ta.queue_states()
            grow(full_webdav)
            wait_until(lambda: done, timeout=90)
        finally:
            engine.stop()
            loop.join(30)
    assert done[0].files_ok == 4 and done[0].files_failed == 0
    assert tree_of(full_webdav.root / "no-proposal" / "full") == content


def test_the_agent_says_storage_full_once_per_pause() -> None:
    """The agent's notification for a full storage: once while it stays full, again after it had room."""
    from trayagent.agent.notify import Notifications

    sent: list[tuple[str, str, bool]] = []
    notes = Notifications(lambda title, message, urgent=False: sent.append((title, message, urgent)),
                          min_interval=0)
    for _ in range(3):
        notes.storage_full("the storage webdav+http://h is full or over its quota: No space left on device")
    assert [(t, u) for t, _, u in sent] == [("Storage full", True)]
    assert "No space left on device" in sent[0][1] and "Nothing is lost" in sent[0][1]
    notes.storage_has_room()
    notes.storage_full("the storage webdav+http://h is full or over its quota: 507 Insufficient Storage")
    assert len(sent) == 2
