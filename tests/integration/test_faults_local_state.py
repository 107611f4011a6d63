"""trayagent's own state in trouble, for real: TRAYAGENT_HOME on a small tmpfs that is filled up,
a queue.sqlite with one page overwritten, a queue.sqlite of 0 bytes. Each ends in one clear message
and a defined exit code, never a traceback, and nothing in the queue is lost or forgotten silently.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentctl import Trayagent
from tmpfs import ROOT, fill, mount_tmpfs, unmount

from trayagent import sqlitedb
from trayagent.errors import LocalStateError
from trayagent.queue import Queue


def make_files(root: Path, count: int = 5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"f{i}.bin").write_bytes(os.urandom(1000))
    return root


@pytest.fixture
def small_home(ta: Trayagent) -> Iterator[Trayagent]:
    """TRAYAGENT_HOME on its own 3 MiB tmpfs."""
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mount_tmpfs(ta.home, "3m")
    try:
        yield ta
    finally:
        ta.close()
        unmount(ta.home)


def test_full_local_disk_is_exit_2_with_a_clear_message_and_the_queue_intact(
        small_home: Trayagent, tmp_path: Path) -> None:
    ta = small_home
    data = make_files(tmp_path / "run")
    ta.write_config({"storage": {"remote": str(tmp_path / "storage")}})
    assert ta.run("upload", str(data), "--dataset", "one").returncode == 0
    filler = fill(ta.home)
    for command in (("upload", str(data), "--dataset", "two"), ("resume",)):
        proc = ta.run(*command)
        assert proc.returncode == 2, (command, proc.stderr)
        assert f"no space left on {ta.home}" in proc.stderr and "free space, then run again" in proc.stderr
        assert "Traceback" not in proc.stderr and "Errno" not in proc.stderr
    assert ta.queue_states() == {"registered": 5}  # dataset one, as it was
    assert not list((ta.home / "run").glob("rclone-rc-*.htpasswd"))  # nothing half-written left behind
    filler.unlink()
    proc = ta.run("upload", str(data), "--dataset", "two")
    assert proc.returncode == 0, proc.stderr
    assert ta.queue_states() == {"registered": 10}


def test_a_queue_commit_on_a_full_disk_is_said_as_such_and_rolled_back(tmp_path: Path) -> None:
    """SQLite's own 'database or disk is full', from a real commit on a full tmpfs."""
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_tmpfs(disk, "1m")
    try:
        queue = Queue(disk / "queue.sqlite")
        queue.ensure_dataset(name="kept", spec={}, mode="batch", storage_url="s", storage_path="kept",
                             catalogue_kind="local")
        filler = fill(disk)
        with pytest.raises(sqlite3.OperationalError) as caught:
            queue.ensure_dataset(name="big", spec={"notes": "x" * 200_000}, mode="batch", storage_url="s",
                                 storage_path="big", catalogue_kind="local")
        problem = sqlitedb.local_state_error(caught.value, disk)
        assert isinstance(problem, LocalStateError) and problem.exit_code == 2
        assert str(problem).startswith(f"no space left on {disk}")
        queue.close()
        filler.unlink()
        queue = Queue(disk / "queue.sqlite")
        assert [d.name for d in queue.datasets()] == ["kept"]
        queue.close()
    finally:
        unmount(disk)


def damage_page(db_file: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage, after folding the WAL into the file."""
    with sqlite3.connect(db_file) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()[0]
    db.close()
    with db_file.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(os.urandom(page_size))


def test_a_damaged_queue_page_gives_one_clear_message_for_every_command(ta: Trayagent, tmp_path: Path) -> None:
    data = make_files(tmp_path / "run")
    ta.write_config({"storage": {"remote": str(tmp_path / "storage")}})
    assert ta.run("upload", str(data), "--dataset", "one").returncode == 0
    queue_file = ta.home / "data" / "queue.sqlite"
    damage_page(queue_file, "datasets")
    for command in (("status",), ("resume",), ("upload", str(data), "--dataset", "one")):
        proc = ta.run(*command)
        assert proc.returncode == 2, (command, proc.stderr)
        assert f"the database {queue_file} is damaged" in proc.stderr, proc.stderr
        assert f"mv '{queue_file}' '{queue_file}.damaged'" in proc.stderr
        assert "Traceback" not in proc.stderr
    proc = ta.run("status", "--json")  # a script gets the same answer on stdout
    assert proc.returncode == 2 and json.loads(proc.stdout)["exit_code"] == 2
    assert "is damaged" in json.loads(proc.stdout)["error"]
    queue_file.rename(queue_file.with_name("queue.sqlite.damaged"))
    assert ta.run("upload", str(data), "--dataset", "one").returncode == 0  # a new queue, rebuilt


def test_an_emptied_queue_file_is_warned_about_not_taken_for_a_new_queue(ta: Trayagent) -> None:
    queue_file = ta.home / "data" / "queue.sqlite"
    queue_file.parent.mkdir(parents=True)
    queue_file.write_bytes(b"")
    an_hour_ago = time.time() - 3600  # emptied earlier (a crash), not being created right now
    os.utime(queue_file, (an_hour_ago, an_hour_ago))
    proc = ta.run("status")
    assert proc.returncode == 0, proc.stderr
    assert f"{queue_file} is empty (0 bytes): what it held is lost" in proc.stderr
    assert "Traceback" not in proc.stderr


_OPEN_IN_STEP = """
import sys, time
from pathlib import Path
from trayagent.queue import Queue
folder, start, rounds = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for i in range(rounds):
    while time.time() < start + i * 0.05:
        pass
    try:
        Queue(folder / f"{i}.sqlite").close()
    except Exception as exc:
        print(f"round {i}: {exc}")
"""


def test_processes_creating_the_queue_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    """Two uploads started together on a new machine: SQLite does not wait for the lock that
    switching a new file to WAL takes, and a process seeing the other's file at 0 bytes took it for
    an emptied queue. Before the fix about 6 % of opens failed ("database is locked") here."""
    start, rounds = time.time() + 1.5, 40
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_IN_STEP, str(tmp_path), str(start), str(rounds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert all(out == "" for out, _ in results), results
    assert not any("is empty (0 bytes)" in err for _, err in results), results
    assert len(list(tmp_path.glob("*.sqlite"))) == rounds
