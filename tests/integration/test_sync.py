"""Sync mode end to end: `trayagent sync` runs as a real process, a separate writer process plays the
acquisition system (tests/support/writer.py), and the test finishes the session the way a user does
(`trayagent sync --finalize NAME` from another process, or SIGTERM / SIGKILL).

What is checked is what a beamline scientist would check: the storage holds every complete file
byte-identical, nothing partial ever appears in storage or in the catalogue, the catalogue has one
row per file with the checksum of its final content, and `trayagent status` tells the truth.

Most tests wait for files to be registered *before* finalizing: finalizing rescans the folders, which
would otherwise hide a file the watcher missed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from datagen import blake3, md5, tree_of
from servers import WebDAVServer

WRITER = Path(__file__).resolve().parents[1] / "support" / "writer.py"
FAST = {"sync": {"quiet_seconds": 0.5}}
NO_PROPOSAL = "no-proposal"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

class Proc:
    """A child process whose output is drained by threads (a full pipe must never block it)."""

    def __init__(self, popen: subprocess.Popen[str], what: str) -> None:
        self.popen = popen
        self.what = what
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((popen.stdout, self.out), (popen.stderr, self.err)):
            if stream is not None:
                threading.Thread(target=self._drain, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _drain(stream: Any, sink: list[str]) -> None:
        sink.extend(stream)  # line by line, as it comes

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float = 60) -> int:
        rc = self.popen.wait(timeout)
        time.sleep(0.05)  # let the drain threads catch the last lines
        return rc

    def text(self) -> str:
        return f"[{self.what}] exit={self.popen.poll()}\nstdout:\n{''.join(self.out)}\nstderr:\n{''.join(self.err)}"

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Every process a test starts; whatever is still running at the end is killed."""
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def start_sync(ta: Trayagent, procs: list[Proc], name: str, *paths: Path | str, extra: tuple[str, ...] = (),
               ready: bool = True) -> Proc:
    p = Proc(ta.popen("sync", *map(str, paths), "--dataset", name, *extra), f"sync {name}")
    procs.append(p)
    if ready:
        until(lambda: (s := session(ta, name))["pid"] == p.pid and s["watch"], 60,
              f"the sync session {name!r} to be watching", [p])
    return p


def sync_run(ta: Trayagent, procs: list[Proc], tmp_path: Path, name: str,
             config: dict[str, dict[str, Any]] = FAST, extra: tuple[str, ...] = ()) -> tuple[Path, Proc]:
    """A fresh folder `run` synced as dataset ``name`` with ``config``, watching when returned."""
    src = tmp_path / "run"
    src.mkdir()
    ta.write_config(config)
    return src, start_sync(ta, procs, name, src, extra=extra)


def writer(procs: list[Proc], *args: str | Path) -> Proc:
    p = Proc(subprocess.Popen([sys.executable, str(WRITER), *map(str, args)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE), f"writer {args[0]}")
    procs.append(p)
    return p


def write(procs: list[Proc], *args: str | Path, timeout: float = 120) -> None:
    """Run the writer to its end (it is still another process)."""
    p = writer(procs, *args)
    assert p.wait(timeout) == 0, p.text()


def until(predicate: Callable[[], object], timeout: float, what: str, watch: Sequence[Proc] = (),
          interval: float = 0.1) -> None:
    """wait_until, but fail at once (with its output) when a process that must keep running exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in watch:
            if not p.alive():
                raise AssertionError(f"{p.what} exited while waiting for {what}\n{p.text()}")
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001, S110 - databases may be half-written while we poll
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                         + "\n".join(p.text() for p in watch))


def _query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as con:
        con.row_factory = sqlite3.Row
        return con.execute(sql, args).fetchall()


def session(ta: Trayagent, name: str) -> dict[str, Any]:
    """The dataset's row in the queue's sessions table (raises while there is none yet)."""
    [row] = _query(ta.home / "data" / "queue.sqlite", "SELECT s.* FROM sessions s JOIN datasets d "
                   "ON d.id = s.dataset_id WHERE d.name = ?", (name,))
    return dict(row)


def queue_rows(ta: Trayagent, name: str, relpath: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT f.* FROM files f JOIN datasets d ON d.id = f.dataset_id WHERE d.name = ?"
    args: tuple[Any, ...] = (name,)
    if relpath is not None:
        sql, args = sql + " AND f.relpath = ?", (name, relpath)
    return [dict(r) for r in _query(ta.home / "data" / "queue.sqlite", sql, args)]


def catalogue_rows(ta: Trayagent, name: str, path: str) -> int:
    return len(_query(ta.home / "data" / "catalogue.sqlite", "SELECT f.path FROM files f JOIN datasets d "
                      "ON d.id = f.dataset_id WHERE d.name = ? AND f.path = ?", (name, path)))


def checksums(ta: Trayagent, name: str) -> dict[str, str]:
    """path -> checksum of what the catalogue holds for the dataset."""
    return {p: r["checksum"] for p, r in ta.catalogue_files(name).items()}


def registered(ta: Trayagent, name: str, expected: dict[str, str]) -> Callable[[], bool]:
    """Predicate: the catalogue has every path of ``expected`` with exactly that checksum."""
    def check() -> bool:
        got = checksums(ta, name)
        return all(got.get(p) == c for p, c in expected.items())
    return check


def status(ta: Trayagent, name: str) -> dict[str, Any]:
    doc = json.loads(ta.run("status", "--json", check=True).stdout)
    [d] = [d for d in doc["datasets"] if d["name"] == name]
    return d


def finalize(ta: Trayagent, sync: Proc, name: str) -> None:
    """`trayagent sync --finalize NAME` while the session runs: it asks that process, which exits 0."""
    proc = ta.run("sync", "--finalize", name, timeout=180)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{sync.text()}"
    assert f"{name}: complete" in proc.stdout
    assert sync.wait(60) == 0, sync.text()
    assert session(ta, name)["state"] == "finalized"
    [dataset] = [d for d in ta.catalogue_datasets() if d["name"] == name]
    assert dataset["finished"]


def stop(sync: Proc) -> None:
    sync.popen.send_signal(signal.SIGTERM)
    assert sync.wait(60) == 130, sync.text()
    assert "sync stopped; queued files stay queued" in "".join(sync.err)


def stored(ta: Trayagent, name: str) -> dict[str, bytes]:
    return tree_of(ta.storage_dir / NO_PROPOSAL / name)


def copies(ta: Trayagent, relpath: str) -> int:
    """How many times rclone reported copying this file."""
    return len(re.findall(rf"trayagent\.rclone\.process: {re.escape(relpath)}: Copied", ta.log_text))


def watch_partial(ta: Trayagent, name: str, relpath: str, while_: Callable[[], bool]) -> tuple[
        list[bytes], list[tuple[int, str]]]:
    """Poll storage and catalogue while the writer runs: what appeared under the file's name."""
    target = ta.storage_dir / NO_PROPOSAL / name / relpath
    seen_stored: list[bytes] = []
    seen_registered: list[tuple[int, str]] = []
    while while_():
        with contextlib.suppress(OSError):
            data = target.read_bytes()
            if not seen_stored or seen_stored[-1] != data:
                seen_stored.append(data)
        with contextlib.suppress(Exception):
            row = ta.catalogue_files(name).get(relpath)
            if row and (row["size"], row["checksum"]) not in seen_registered:
                seen_registered.append((row["size"], row["checksum"]))
        time.sleep(0.05)
    return seen_stored, seen_registered


# ------------------------------------------------------------------------------------------------
# completion detection
# ------------------------------------------------------------------------------------------------

def test_file_written_in_chunks_over_10s_is_only_uploaded_complete(ta: Trayagent, procs: list[Proc],
                                                                  tmp_path: Path) -> None:
    """A detector writing a frame every 0.5 s for 10 s with its file open: default quiet period."""
    src = tmp_path / "run"
    src.mkdir()
    sync = start_sync(ta, procs, "chunks", src)
    w = writer(procs, "chunks", src / "scan.h5", "--chunks", "21", "--pause", "0.5", "--size", "65536")
    seen_stored, seen_registered = watch_partial(ta, "chunks", "scan.h5", w.alive)
    assert w.wait() == 0, w.text()
    final = (src / "scan.h5").read_bytes()
    assert len(final) == 21 * 65536
    assert all(s == final for s in seen_stored), \
        f"partial versions appeared in storage: sizes {[len(s) for s in seen_stored]} (final {len(final)})"
    assert all(c == md5(final) for _, c in seen_registered), f"partial registrations: {seen_registered}"
    until(registered(ta, "chunks", {"scan.h5": md5(final)}), 30, "the complete file registered", [sync])
    finalize(ta, sync, "chunks")
    assert stored(ta, "chunks") == {"scan.h5": final}
    assert copies(ta, "scan.h5") == 1  # once, complete


def test_open_file_with_pauses_longer_than_quiet_waits_for_close(ta: Trayagent, procs: list[Proc],
                                                                 tmp_path: Path) -> None:
    """On Linux the close event says when the writer is done: a frame every 1 s (longer than
    quiet_seconds = 0.5) with the file open must not be uploaded before the writer closes it."""
    src, sync = sync_run(ta, procs, tmp_path, "slowframes")
    w = writer(procs, "chunks", src / "scan.h5", "--chunks", "11", "--pause", "1.0", "--size", "65536")
    seen_stored, seen_registered = watch_partial(ta, "slowframes", "scan.h5", w.alive)
    assert w.wait() == 0, w.text()
    final = (src / "scan.h5").read_bytes()
    until(registered(ta, "slowframes", {"scan.h5": md5(final)}), 30, "the complete file registered", [sync])
    finalize(ta, sync, "slowframes")
    assert stored(ta, "slowframes") == {"scan.h5": final}
    assert all(s == final for s in seen_stored), \
        f"partial versions appeared in storage: sizes {[len(s) for s in seen_stored]} (final {len(final)})"
    assert all(c == md5(final) for _, c in seen_registered), f"partial registrations: {seen_registered}"


def test_quiet_period_alone_holds_an_open_file_back_when_polling(ta: Trayagent, procs: list[Proc],
                                                                 tmp_path: Path) -> None:
    """Polling (SMB/NFS) has no close events: only the quiet period decides. Pauses shorter than
    quiet_seconds must keep the file back until the writer is done."""
    src, sync = sync_run(ta, procs, tmp_path, "quiet", {"sync": {"quiet_seconds": 2.5, "polling": True}})
    w = writer(procs, "chunks", src / "slow.raw", "--chunks", "12", "--pause", "0.5", "--size", "32768")
    seen_stored, seen_registered = watch_partial(ta, "quiet", "slow.raw", w.alive)
    assert w.wait() == 0, w.text()
    closed_at = time.monotonic()
    final = (src / "slow.raw").read_bytes()
    assert not seen_stored and not seen_registered, "uploaded while still being written"
    until(registered(ta, "quiet", {"slow.raw": md5(final)}), 30, "the file registered after its quiet period",
          [sync])
    assert time.monotonic() - closed_at >= 2.0  # no close event: it waited out the quiet period
    finalize(ta, sync, "quiet")
    assert stored(ta, "quiet") == {"slow.raw": final}


def test_closed_then_reopened_and_appended_ends_up_in_its_final_version(ta: Trayagent, procs: list[Proc],
                                                                         tmp_path: Path) -> None:
    src, sync = sync_run(ta, procs, tmp_path, "append")
    # reopened at once: the first close may already have queued it; the append must win
    write(procs, "append", src / "quick.dat", "--first", "300000", "--second", "300000", "--gap", "0.2")
    # reopened after its first version was uploaded and registered
    write(procs, "files", src, "late.dat=200000")
    first = (src / "late.dat").read_bytes()
    until(registered(ta, "append", {"late.dat": md5(first)}), 30, "the first version registered", [sync])
    write(procs, "append", src / "late.dat", "--first", "0", "--second", "100000", "--gap", "0")
    final = {n: (src / n).read_bytes() for n in ("quick.dat", "late.dat")}
    assert len(final["quick.dat"]) == 600000 and len(final["late.dat"]) == 300000
    assert final["late.dat"][:200000] == first
    until(registered(ta, "append", {n: md5(d) for n, d in final.items()}), 30, "the final versions registered",
          [sync])
    finalize(ta, sync, "append")
    assert stored(ta, "append") == final
    assert checksums(ta, "append") == {n: md5(d) for n, d in final.items()}
    for n, data in final.items():
        assert catalogue_rows(ta, "append", n) == 1
        [row] = queue_rows(ta, "append", n)
        assert row["state"] == "registered" and row["size"] == len(data)


def test_burst_of_2000_small_files_none_lost(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    src, sync = sync_run(ta, procs, tmp_path, "burst")
    write(procs, "burst", src, "--count", "2000", "--size", "256", "--per-dir", "250")
    local = tree_of(src)
    assert len(local) == 2000
    # all of them through the watcher, before any finalize rescan could paper over a lost event
    until(lambda: len(ta.catalogue_files("burst")) == 2000, 180, "2,000 files registered", [sync])
    assert "rescan (safety)" not in ta.log_text and "after a warning" not in ta.log_text
    finalize(ta, sync, "burst")
    assert stored(ta, "burst") == local
    assert checksums(ta, "burst") == {p: md5(d) for p, d in local.items()}
    assert len(queue_rows(ta, "burst")) == 2000


# ------------------------------------------------------------------------------------------------
# restarts, changes, deletions, renames, filters
# ------------------------------------------------------------------------------------------------

def test_stop_and_kill_9_then_restart_picks_up_what_was_written_meanwhile(ta: Trayagent, procs: list[Proc],
                                                                          tmp_path: Path) -> None:
    src, sync = sync_run(ta, procs, tmp_path, "restart")
    write(procs, "files", src, "a.dat=5000", "sub/b.dat=7000")
    until(lambda: set(ta.catalogue_files("restart")) == {"a.dat", "sub/b.dat"}, 30, "first files", [sync])

    stop(sync)  # SIGTERM: a clean stop; the session stays recorded to be resumed
    assert session(ta, "restart")["state"] == "running"
    write(procs, "files", src, "while_stopped.dat=3000")
    sync = start_sync(ta, procs, "restart", src)
    until(lambda: "while_stopped.dat" in ta.catalogue_files("restart"), 30, "file written while stopped", [sync])

    sync.popen.send_signal(signal.SIGKILL)
    sync.wait(10)
    write(procs, "files", src, "while_dead.dat=4000", "sub/deeper/c.dat=6000")
    (src / "a.dat").write_bytes(b"rewritten while the agent was dead")
    sync = start_sync(ta, procs, "restart", src)
    local = tree_of(src)
    until(registered(ta, "restart", {p: md5(d) for p, d in local.items()}), 30, "catching up after kill -9",
          [sync])
    finalize(ta, sync, "restart")
    assert stored(ta, "restart") == local
    assert checksums(ta, "restart") == {p: md5(d) for p, d in local.items()}
    assert len(queue_rows(ta, "restart")) == len(local) == 5
    assert len(ta.catalogue_datasets()) == 1
    # nothing sent twice: unchanged files were not uploaded again after the restarts
    for rel in ("sub/b.dat", "while_stopped.dat", "while_dead.dat", "sub/deeper/c.dat"):
        assert copies(ta, rel) == 1, rel
    assert copies(ta, "a.dat") == 2  # its new version, once


def test_modified_file_is_registered_once_with_new_checksum(ta: Trayagent, procs: list[Proc],
                                                            tmp_path: Path) -> None:
    src, sync = sync_run(ta, procs, tmp_path, "modify")
    write(procs, "files", src, "frame.tif=50000", "other.tif=1000")
    v1 = (src / "frame.tif").read_bytes()
    until(registered(ta, "modify", {"frame.tif": md5(v1)}), 30, "first version registered", [sync])
    write(procs, "files", src, "frame.tif=50000")  # same size, new content
    v2 = (src / "frame.tif").read_bytes()
    assert v2 != v1
    until(registered(ta, "modify", {"frame.tif": md5(v2)}), 30, "new version registered", [sync])
    finalize(ta, sync, "modify")
    assert stored(ta, "modify")["frame.tif"] == v2
    assert catalogue_rows(ta, "modify", "frame.tif") == 1
    assert ta.catalogue_files("modify")["frame.tif"]["checksum"] == md5(v2)
    assert len(queue_rows(ta, "modify", "frame.tif")) == 1
    assert copies(ta, "frame.tif") == 2 and copies(ta, "other.tif") == 1


def test_deleted_file_is_kept_in_storage_and_logged(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    src, sync = sync_run(ta, procs, tmp_path, "delete")
    write(procs, "files", src, "gone.dat=2000", "stays.dat=2000")
    content = tree_of(src)
    until(registered(ta, "delete", {p: md5(d) for p, d in content.items()}), 30, "files registered", [sync])
    (src / "gone.dat").unlink()
    until(lambda: "gone.dat was deleted locally; its copy in storage is kept" in ta.log_text, 15,
          "the deletion logged", [sync])
    finalize(ta, sync, "delete")
    assert stored(ta, "delete") == content  # nothing deleted remotely
    assert checksums(ta, "delete") == {p: md5(d) for p, d in content.items()}


def test_temp_files_and_excludes_are_never_uploaded(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    src, sync = sync_run(ta, procs, tmp_path, "ignore", extra=("--exclude", "*.log", "--exclude", "scratch"))
    junk = ["x.tmp", "download.part", "~$report.docx", ".~lock.table.ods#", ".DS_Store", "Thumbs.db",
            ".notes.txt.swp", "edit.swp", "sub/.DS_Store", "sub/y.tmp", "run.log", "sub/detector.log",
            "scratch/big.dat", "scratch/deep/more.dat"]
    write(procs, "files", src, *junk)
    write(procs, "files", src, "data.h5=3000", "sub/keep.dat=2000")
    wanted = {p: d for p, d in tree_of(src).items() if p in ("data.h5", "sub/keep.dat")}
    until(registered(ta, "ignore", {p: md5(d) for p, d in wanted.items()}), 30, "wanted files", [sync])
    time.sleep(1.5)  # time for a stray upload of the junk to show
    assert set(ta.catalogue_files("ignore")) == set(wanted)
    finalize(ta, sync, "ignore")  # the final rescan honours the same filters
    assert stored(ta, "ignore") == wanted
    assert set(ta.catalogue_files("ignore")) == set(wanted)
    assert {r["relpath"] for r in queue_rows(ta, "ignore")} == set(wanted)


def test_rename_uploads_under_the_new_name_and_keeps_the_old(ta: Trayagent, procs: list[Proc],
                                                             tmp_path: Path) -> None:
    src, sync = sync_run(ta, procs, tmp_path, "rename")
    write(procs, "files", src, "first.dat=4000", "scanA/f1.dat=1000", "scanA/f2.dat=1000")
    before = tree_of(src)
    until(registered(ta, "rename", {p: md5(d) for p, d in before.items()}), 30, "first files", [sync])
    os.rename(src / "first.dat", src / "renamed.dat")          # a file renamed
    os.rename(src / "scanA", src / "scanB")                     # a whole folder renamed
    # the usual "write as .part, rename into place" of copy tools: only the final name is data
    write(procs, "chunks", src / "image.h5.part", "--chunks", "4", "--pause", "0.2", "--size", "20000")
    os.rename(src / "image.h5.part", src / "image.h5")
    # written on a local disk first, then moved into the watched tree (same file system)
    write(procs, "files", tmp_path / "ssd", "moved_in.raw=30000")
    os.rename(tmp_path / "ssd" / "moved_in.raw", src / "moved_in.raw")
    after = tree_of(src)
    assert set(after) == {"renamed.dat", "scanB/f1.dat", "scanB/f2.dat", "image.h5", "moved_in.raw"}
    until(registered(ta, "rename", {p: md5(d) for p, d in after.items()}), 30, "the new names registered",
          [sync])
    finalize(ta, sync, "rename")
    assert stored(ta, "rename") == {**before, **after}  # old names stay in storage
    assert checksums(ta, "rename") == {p: md5(d) for p, d in {**before, **after}.items()}
    assert not any(p.endswith(".part") for p in stored(ta, "rename"))


# ------------------------------------------------------------------------------------------------
# watching: polling, the watch limit, a vanishing folder
# ------------------------------------------------------------------------------------------------

def test_polling_observer(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    src = tmp_path / "share"
    src.mkdir()
    ta.write_config({"sync": {"quiet_seconds": 0.5, "polling": True}})
    sync = start_sync(ta, procs, "poll", src)
    assert status(ta, "poll")["session"]["watch"] == f"{src}: polling"
    write(procs, "files", src, "a.dat=1000", "nested/b.dat=2000")
    write(procs, "append", src / "c.dat", "--first", "1000", "--second", "1000", "--gap", "0.3")
    local = tree_of(src)
    until(registered(ta, "poll", {p: md5(d) for p, d in local.items()}), 30, "files seen by polling", [sync])
    finalize(ta, sync, "poll")
    assert stored(ta, "poll") == local


MAX_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")


@contextlib.contextmanager
def lowered_watch_limit(value: int) -> Iterator[None]:
    """fs.inotify.max_user_watches lowered for as short as possible, ALWAYS restored (it is per user,
    machine-wide: other processes need their watches)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the inotify watch limit is Linux-only")
    import fcntl

    # Serialised across concurrent test runs on this machine: two runs interleaving read-lower-restore
    # would otherwise "restore" each other's lowered value.
    with open(Path("/tmp") / f"trayagent-tests-inotify-limit-{os.getuid()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            original = MAX_WATCHES.read_text().strip()
            with open(MAX_WATCHES, "w") as fh:  # probe: rewrite the same value
                fh.write(original)
        except OSError as exc:
            pytest.skip(f"cannot change {MAX_WATCHES} here: {exc}")
        if int(original) < 8192:
            pytest.skip(f"{MAX_WATCHES} is {original}: looks left lowered by an interrupted run; not touching it")
        try:
            MAX_WATCHES.write_text(str(value))
            yield
        finally:
            MAX_WATCHES.write_text(original)
        assert MAX_WATCHES.read_text().strip() == original


def watches_in_use() -> int:
    """inotify watches this user holds right now (the limit counts them all, machine-wide)."""
    count = 0
    for info in Path("/proc").glob("[0-9]*/fdinfo/*"):
        with contextlib.suppress(OSError):
            if info.parent.parent.stat().st_uid == os.getuid():
                count += sum(line.startswith("inotify wd:") for line in info.read_text().splitlines())
    return count


def _limit_test(ta: Trayagent, procs: list[Proc], tmp_path: Path, name: str, spare: int | None) -> None:
    """A tree of 50 sub-folders; the limit leaves ``spare`` watches free (None: none at all)."""
    src = tmp_path / "big"
    for i in range(50):
        (src / f"scan{i:02d}").mkdir(parents=True)
    ta.write_config(FAST)
    with lowered_watch_limit(0 if spare is None else watches_in_use() + spare):
        sync = start_sync(ta, procs, name, src)
    s = status(ta, name)["session"]
    assert s["watch"] == f"{src}: polling", s
    assert "watch limit" in (s["warning"] or "") and str(src) in s["warning"]
    write(procs, "files", src, "scan00/a.dat=1000", "scan49/b.dat=1000", "scan25/new/c.dat=1000")
    local = tree_of(src)
    until(registered(ta, name, {p: md5(d) for p, d in local.items()}), 30, "files seen by polling", [sync])
    finalize(ta, sync, name)
    assert stored(ta, name) == local


def test_watch_limit_for_the_folder_itself_falls_back_to_polling(ta: Trayagent, procs: list[Proc],
                                                                  tmp_path: Path) -> None:
    """No watch left at all (limit 0): not even the watched folder can be watched."""
    _limit_test(ta, procs, tmp_path, "nowatch", None)


def test_watch_limit_reached_inside_the_tree_falls_back_to_polling(ta: Trayagent, procs: list[Proc],
                                                                   tmp_path: Path) -> None:
    """20 watches left, a tree of 50 sub-folders: the limit is hit part-way through the tree."""
    _limit_test(ta, procs, tmp_path, "limit", 20)


def test_watched_folder_disappears_and_comes_back(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    data = tmp_path / "disk"
    src = data / "run"
    src.mkdir(parents=True)
    ta.write_config(FAST)
    sync = start_sync(ta, procs, "vanish", src)
    write(procs, "files", src, "before.dat=1000")
    until(lambda: "before.dat" in ta.catalogue_files("vanish"), 30, "first file", [sync])

    os.rename(src, data / "run.away")  # unplugged / unmounted
    until(lambda: "is gone" in (session(ta, "vanish")["warning"] or ""), 15, "the loss reported", [sync])
    s = status(ta, "vanish")["session"]
    assert s["watch"] == f"{src}: none" and str(src) in s["warning"]
    assert f"watched folder {src} is gone" in ta.log_text
    write(procs, "files", data / "run.away", "while_away.dat=1000")  # written elsewhere meanwhile

    os.rename(data / "run.away", src)  # plugged back in
    write(procs, "files", src, "right_after.dat=1000")  # before the agent noticed
    until(lambda: f"watched folder {src} is back" in ta.log_text, 20, "the return noticed", [sync])
    write(procs, "files", src, "later.dat=1000", "sub/later2.dat=1000")
    local = tree_of(src)
    until(registered(ta, "vanish", {p: md5(d) for p, d in local.items()}), 30, "files after the return", [sync])
    s = status(ta, "vanish")["session"]
    assert s["watch"] == f"{src}: events" and "is back" in s["warning"]
    finalize(ta, sync, "vanish")
    assert stored(ta, "vanish") == local


def wakeups(pid: int) -> int:
    """How often the process's threads went to sleep so far (voluntary context switches, Linux):
    over an idle stretch, how often they woke."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def test_an_idle_session_sleeps_until_something_happens(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    """Issue 24: idle costs nothing. The threads sleep until there is something to do (a file, a
    finalize request from another process, a retry or pause that falls due, a stop), not in 1 s
    polls: before, the settler, the session's housekeeping and the finalize-request watcher woke
    every second and the engine every 5 s, 32 wake-ups in 10 s. What remains is the look at the
    watched folders every 5 s (a folder renamed away or unmounted sends no event)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("counts context switches in /proc")
    src, sync = sync_run(ta, procs, tmp_path, "idle")
    write(procs, "files", src, "a.dat=1000", "b.dat=2000")
    until(registered(ta, "idle", {p: md5(d) for p, d in tree_of(src).items()}), 30, "the first files", [sync])
    time.sleep(12)  # past the engine's one look after work (rclone gives back memory 10 s after it)
    before = wakeups(sync.pid)
    time.sleep(10)
    woke = wakeups(sync.pid) - before
    assert woke <= 5, f"{woke} wake-ups in 10 s of idleness"
    write(procs, "files", src, "later.dat=3000")  # a sleeping session still sees the next file at once
    until(registered(ta, "idle", {p: md5(d) for p, d in tree_of(src).items()}), 10, "the later file", [sync])
    asked = time.monotonic()
    finalize(ta, sync, "idle")  # the request rings the session: no wait for its 30 s look
    assert time.monotonic() - asked < 15
    assert stored(ta, "idle") == tree_of(src)


# ------------------------------------------------------------------------------------------------
# several sessions, status, WebDAV
# ------------------------------------------------------------------------------------------------

def two_hutches(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> tuple[Path, Path, Proc, Proc]:
    """Two folders synced by two sessions ("alpha", "beta"): two processes, two rclone daemons."""
    a, b = tmp_path / "hutch1", tmp_path / "hutch2"
    a.mkdir()
    b.mkdir()
    ta.write_config(FAST)
    return a, b, start_sync(ta, procs, "alpha", a), start_sync(ta, procs, "beta", b)


def test_two_sessions_in_parallel(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    a, b, sync_a, sync_b = two_hutches(ta, procs, tmp_path)
    wa = writer(procs, "burst", a, "--count", "100", "--size", "1000", "--per-dir", "50")
    wb = writer(procs, "burst", b, "--count", "100", "--size", "1000", "--per-dir", "50")
    assert wa.wait() == 0 and wb.wait() == 0
    la, lb = tree_of(a), tree_of(b)
    until(registered(ta, "alpha", {p: md5(d) for p, d in la.items()}), 60, "alpha files", [sync_a, sync_b])
    until(registered(ta, "beta", {p: md5(d) for p, d in lb.items()}), 60, "beta files", [sync_a, sync_b])
    # the same dataset cannot be synced twice at once
    twice = ta.run("sync", str(a), "--dataset", "alpha", timeout=60)
    assert twice.returncode == 2 and "another trayagent process" in twice.stderr, twice.stderr
    finalize(ta, sync_a, "alpha")
    assert sync_b.alive()  # finishing one dataset leaves the other session running
    write(procs, "files", b, "after_alpha.dat=1000")
    lb = tree_of(b)
    until(registered(ta, "beta", {p: md5(d) for p, d in lb.items()}), 30, "beta after alpha finished",
          [sync_b])
    finalize(ta, sync_b, "beta")
    assert stored(ta, "alpha") == la and stored(ta, "beta") == lb
    assert set(ta.catalogue_files("alpha")) == set(la) and set(ta.catalogue_files("beta")) == set(lb)


def test_several_folders_keep_their_names(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    """Two folders in one session: each lands under its own name, both are watched."""
    a, b = tmp_path / "detector1", tmp_path / "detector2"
    a.mkdir()
    b.mkdir()
    ta.write_config(FAST)
    sync = start_sync(ta, procs, "multi", a, b)
    s = status(ta, "multi")["session"]
    assert s["folders"] == [str(a), str(b)] and s["watch"] == f"{a}: events, {b}: events"
    write(procs, "files", a, "x.dat=1000", "sub/y.dat=1000")
    write(procs, "files", b, "x.dat=2000")
    expected = {**{f"detector1/{p}": d for p, d in tree_of(a).items()},
                **{f"detector2/{p}": d for p, d in tree_of(b).items()}}
    until(registered(ta, "multi", {p: md5(d) for p, d in expected.items()}), 30, "both folders' files", [sync])
    finalize(ta, sync, "multi")
    assert stored(ta, "multi") == expected


def test_parallel_sessions_leave_each_others_rclone_alone(ta: Trayagent, procs: list[Proc],
                                                          tmp_path: Path) -> None:
    """Each process has its own rclone daemon; starting a second session must not take the first
    one's daemon for an orphan of a killed agent and stop it."""
    a, b, sync_a, sync_b = two_hutches(ta, procs, tmp_path)
    write(procs, "files", a, "x.dat=1000")
    write(procs, "files", b, "y.dat=1000")
    until(lambda: "x.dat" in ta.catalogue_files("alpha") and "y.dat" in ta.catalogue_files("beta"), 30,
          "both files", [sync_a, sync_b])
    finalize(ta, sync_a, "alpha")
    finalize(ta, sync_b, "beta")
    assert "left over from an agent that was killed" not in ta.log_text
    assert "rclone rcd died" not in ta.log_text


def test_status_shows_folders_waiting_and_last_upload(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    src = tmp_path / "run"
    src.mkdir()
    ta.write_config({"sync": {"quiet_seconds": 5}})
    started = time.time()
    sync = start_sync(ta, procs, "stat", src)
    s = status(ta, "stat")["session"]
    assert s["state"] == "running" and s["folders"] == [str(src)] and s["pid"] == sync.pid
    assert s["watch"] == f"{src}: events" and s["waiting"] == 0 and s["last_upload"] is None
    assert s["warning"] is None

    flag = tmp_path / "stop-writing"
    w = writer(procs, "hold", src / "acquiring.h5", "--until", flag, "--pause", "0.3")
    until(lambda: w.out, 10, "the writer to start", [w])
    until(lambda: session(ta, "stat")["waiting"] == 1, 10, "the open file counted as waiting", [sync, w])
    d = status(ta, "stat")
    assert d["session"]["waiting"] == 1 and d["session"]["last_upload"] is None
    assert d["files"]["registered"] == 0
    text = ta.run("status", check=True).stdout
    assert f"sync running: {src}; watching {src}: events; 1 waiting for completion; last upload none yet" in text

    flag.touch()
    assert w.wait() == 0
    final = (src / "acquiring.h5").read_bytes()
    until(registered(ta, "stat", {"acquiring.h5": md5(final)}), 30, "the closed file registered", [sync])
    until(lambda: session(ta, "stat")["waiting"] == 0, 10, "waiting back to 0", [sync])
    d = status(ta, "stat")
    assert d["files"]["registered"] == 1 and d["bytes_registered"] == len(final)
    assert started <= d["session"]["last_upload"] <= time.time()
    text = ta.run("status", check=True).stdout
    assert "0 waiting for completion; last upload " in text and "none yet" not in text
    finalize(ta, sync, "stat")
    d = status(ta, "stat")
    assert d["state"] == "complete" and d["session"]["state"] == "finalized"


def test_finalize_without_a_running_session(ta: Trayagent, procs: list[Proc], tmp_path: Path) -> None:
    """`--finalize` when the session's process was stopped: it finishes the dataset itself,
    including files written after the stop."""
    src, sync = sync_run(ta, procs, tmp_path, "orphan")
    write(procs, "files", src, "a.dat=1000")
    until(lambda: "a.dat" in ta.catalogue_files("orphan"), 30, "first file", [sync])
    stop(sync)
    write(procs, "files", src, "b.dat=1000")
    proc = ta.run("sync", "--finalize", "orphan", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "orphan: complete; 2 files registered, 0 failed" in proc.stdout
    local = tree_of(src)
    assert stored(ta, "orphan") == local
    assert checksums(ta, "orphan") == {p: md5(d) for p, d in local.items()}
    unknown = ta.run("sync", "--finalize", "no-such-dataset", timeout=60)
    assert unknown.returncode == 2 and "no sync session" in unknown.stderr


def test_sync_to_webdav(ta: Trayagent, webdav_server: WebDAVServer, procs: list[Proc], tmp_path: Path) -> None:
    src = tmp_path / "run"
    src.mkdir()
    ta.use_webdav(webdav_server, sync={"quiet_seconds": 1.0})
    sync = start_sync(ta, procs, "dav", src, extra=("--proposal", "p42"))
    w = writer(procs, "chunks", src / "scan.h5", "--chunks", "10", "--pause", "0.4", "--size", "50000")
    write(procs, "append", src / "log.txt", "--first", "2000", "--second", "2000", "--gap", "0.3")
    write(procs, "burst", src, "--count", "60", "--size", "700", "--per-dir", "20")
    write(procs, "files", src, "ignored.tmp=100")
    target = Path(webdav_server.root) / "p42" / "dav"
    _, seen_registered = watch_partial(ta, "dav", "scan.h5", w.alive)
    assert w.wait() == 0
    local = {p: d for p, d in tree_of(src).items() if not p.endswith(".tmp")}
    assert all(c == blake3(local["scan.h5"]) for _, c in seen_registered), \
        f"partial versions registered: {seen_registered}"
    until(registered(ta, "dav", {p: blake3(d) for p, d in local.items()}), 60, "files on WebDAV", [sync])
    finalize(ta, sync, "dav")
    assert tree_of(target) == local
    files = ta.catalogue_files("dav")
    assert {p: r["checksum"] for p, r in files.items()} == {p: blake3(d) for p, d in local.items()}
    assert {r["algorithm"] for r in files.values()} == {"blake3"}
    assert (target / "ro-crate-metadata.json").exists()
