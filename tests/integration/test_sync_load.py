"""Sync mode under acquisition load (issue 24), with the real CLI, real rclone and a real WebDAV
server: small files keep flowing while a big file uploads, and a file moved into the watched tree
counts as complete at once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from servers import WebDAVServer


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _rows(ta: Trayagent, name: str) -> dict[str, dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(ta.home / "data" / "queue.sqlite", timeout=10)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT f.relpath, f.state, f.updated FROM files f JOIN datasets d "
                          "ON d.id = f.dataset_id WHERE d.name = ?", (name,)).fetchall()
    return {r["relpath"]: dict(r) for r in rows}


def _until(predicate: Callable[[], object], timeout: float, what: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the sync session exited ({proc.returncode}) while waiting for {what}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        with contextlib.suppress(sqlite3.Error):
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _sync(ta: Trayagent, started: list[subprocess.Popen[str]], src: Path, name: str) -> subprocess.Popen[str]:
    proc = ta.popen("sync", str(src), "--dataset", name)
    started.append(proc)

    def watching() -> bool:
        with contextlib.closing(sqlite3.connect(ta.home / "data" / "queue.sqlite", timeout=10)) as db:
            row = db.execute("SELECT s.pid, s.watch FROM sessions s JOIN datasets d ON d.id = s.dataset_id "
                             "WHERE d.name = ?", (name,)).fetchone()
        return bool(row and row[0] == proc.pid and row[1])
    _until(watching, 60, "the session to watch", proc)
    return proc


def _registered(ta: Trayagent, name: str, path: str) -> bool:
    return _rows(ta, name).get(path, {}).get("state") == "registered"


def test_small_files_closed_during_a_big_upload_complete_before_it(
        ta: Trayagent, webdav_server: WebDAVServer, tmp_path: Path, started: list[subprocess.Popen[str]]) -> None:
    """A 400 MB file (sent at 40 MB/s: ~10 s) and, while it uploads, 1 MiB files closed every 0.25 s:
    each small file is registered within a few seconds of its close, all before the big one.
    Before the big-file lane, the batch holding the big file held every small one behind it."""
    ta.use_webdav(webdav_server, sync={"quiet_seconds": 1}, transfer={"bwlimit": "40M"})
    src, outside = tmp_path / "run", tmp_path / "ssd"
    src.mkdir()
    outside.mkdir()
    big = outside / "stack.h5"
    with big.open("wb") as fh:
        for _ in range(400):
            fh.write(os.urandom(1 << 20))
    proc = _sync(ta, started, src, "load")
    os.rename(big, src / "stack.h5")  # a file moved in is complete: it goes at once
    _until(lambda: _rows(ta, "load").get("stack.h5", {}).get("state") == "uploading", 30, "the big upload", proc)
    closed: dict[str, float] = {}
    for i in range(12):
        path = src / f"frame{i:03d}.raw"
        path.write_bytes(os.urandom(1 << 20))
        closed[path.name] = time.time()
        time.sleep(0.25)
    _until(lambda: all(_registered(ta, "load", p) for p in closed), 60, "the small files", proc)
    rows = _rows(ta, "load")
    assert rows["stack.h5"]["state"] != "registered", "the small files waited for the big one (registered before them)"
    latency = sorted(rows[p]["updated"] - closed[p] for p in closed)
    assert latency[-1] < 5.0, f"close to registered (s): {latency}"
    _until(lambda: _registered(ta, "load", "stack.h5"), 120, "the big file", proc)
    stored = webdav_server.root / "no-proposal" / "load"
    assert (stored / "stack.h5").stat().st_size == 400 << 20
    assert all(hashlib.md5((stored / p).read_bytes()).digest() == hashlib.md5((src / p).read_bytes()).digest()
               for p in closed)


def test_a_file_moved_in_from_outside_counts_as_complete_at_once(
        ta: Trayagent, tmp_path: Path, started: list[subprocess.Popen[str]]) -> None:
    """With a 30 s quiet period, a file written elsewhere and renamed into the watched folder is
    uploaded and registered within seconds (a move is complete; only files written in place wait
    for their close or the quiet period). Before, it arrived as 'created' and waited 30 s."""
    ta.write_config({"sync": {"quiet_seconds": 30}})
    src, outside = tmp_path / "run", tmp_path / "ssd"
    src.mkdir()
    outside.mkdir()
    proc = _sync(ta, started, src, "movein")
    (outside / "frame.raw").write_bytes(b"complete frame")
    moved = time.monotonic()
    os.rename(outside / "frame.raw", src / "frame.raw")
    _until(lambda: _registered(ta, "movein", "frame.raw"), 25, "the moved-in file to be registered", proc)
    assert time.monotonic() - moved < 25
    assert (ta.storage_dir / "no-proposal" / "movein" / "frame.raw").read_bytes() == b"complete frame"
