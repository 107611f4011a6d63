"""A crash late in a big batch costs only what storage does not hold yet (issue 18.7).

The batch in flight when trayagent is killed (kill -9: no clean-up at all) is recorded as
``uploading``; the next run sends its files in a batch that first compares with storage: same size
and, where storage has a hash (the local backend, S3's MD5), same hash of the local bytes;
without one (plain WebDAV), same size. Everything still ends verified and registered once.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from agentctl import Trayagent
from datagen import blake3, make_many, md5, tree_of
from servers import S3Server, WebDAVServer, run_rclone
from waiting import stop_process, wait_until

FILES, SIZE = 30, 150_000
ONE_BATCH = {"bwlimit": "1M", "batch_files": FILES, "transfers": 2}


def complete_in(folder: Path, content: dict[str, bytes]) -> set[str]:
    """Files that storage holds whole (the bytes of the source)."""
    out = set()
    for rel, data in content.items():
        path = folder / rel
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            out.add(rel)
    return out


def kill_late_in_the_batch(ta: Trayagent, args: tuple[str, ...], folder: Path,
                           content: dict[str, bytes]) -> set[str]:
    """Start the upload, kill -9 it once most of its one batch is in storage; what storage held whole."""
    proc = ta.popen(*args)
    wait_until(lambda: len(complete_in(folder, content)) >= FILES * 2 // 3, 120, interval=0.05,
               what="most of the batch in storage")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: not list((ta.home / "run").glob(f"rclone-rcd-{proc.pid}.pid"))
               or not Path(f"/proc/{_rcd(ta, proc.pid)}").exists(), 10, what="its rclone to die with it")
    done = complete_in(folder, content)
    assert ta.queue_states() == {"uploading": FILES}, ta.queue_states()  # nothing finished: all in flight
    assert FILES // 2 <= len(done) < FILES, done
    return done


def _rcd(ta: Trayagent, pid: int) -> int:
    return int((ta.home / "run" / f"rclone-rcd-{pid}.pid").read_text())


def registered_once(ta: Trayagent, name: str, content: dict[str, bytes],
                    checksum: Callable[[bytes], str]) -> None:
    """Each file once, with the checksum of its bytes (WebDAV: trayagent's BLAKE3; local: MD5)."""
    files = ta.catalogue_files(name)
    assert {p: r["checksum"] for p, r in files.items()} == {p: checksum(d) for p, d in content.items()}
    assert len(ta.catalogue_datasets()) == 1
    with sqlite3.connect(ta.home / "data" / "catalogue.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == FILES


def test_webdav_restart_sends_only_what_storage_lacks(ta: Trayagent, webdav_server: WebDAVServer,
                                                      tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", FILES, size=SIZE, per_dir=FILES)
    ta.use_webdav(webdav_server, transfer=ONE_BATCH)
    folder = Path(webdav_server.root) / "p" / "big"
    args = ("upload", str(tmp_path / "d"), "--dataset", "big", "--proposal", "p")
    done = kill_late_in_the_batch(ta, args, folder, content)
    log_before = webdav_server.log_path.stat().st_size
    rc, out = ta.upload_json(*args[1:])
    assert rc == 0 and out["files_ok"] == FILES, out
    with open(webdav_server.log_path, "rb") as fh:
        fh.seek(log_before)
        after = fh.read().decode(errors="replace")
    sent_again = {m.removeprefix("/p/big/") for m in re.findall(r'"PUT (/p/big/[^"]+)"', after)}
    assert sent_again, after[-3000:]  # what was missing was sent
    assert not sent_again & done, f"re-sent although complete in storage: {sorted(sent_again & done)}"
    assert sent_again | done >= set(content)
    assert tree_of(folder) == content
    registered_once(ta, "big", content, blake3)
    manifest = json.loads((folder / "ro-crate-metadata.json").read_text())
    assert set(content) <= {e["@id"] for e in manifest["@graph"]}


def test_local_storage_restart_keeps_complete_files_hash_checked(ta: Trayagent, tmp_path: Path) -> None:
    """The embedded local storage has hashes: a complete file is kept only if its MD5 matches.
    rclone's local backend writes a new file (new inode) for every copy it makes, so an unchanged
    inode shows the file was not sent again; one complete file is damaged in storage (same size)
    and must be sent again."""
    content = make_many(tmp_path / "d", FILES, size=SIZE, per_dir=FILES)
    ta.write_config({"transfer": ONE_BATCH})
    folder = ta.storage_dir / "no-proposal" / "big"
    args = ("upload", str(tmp_path / "d"), "--dataset", "big")
    done = kill_late_in_the_batch(ta, args, folder, content)
    damaged = min(done)
    with open(folder / damaged, "r+b") as fh:  # same size, other bytes: only a hash can tell
        fh.write(b"X" * 100)
    inodes = {rel: (folder / rel).stat().st_ino for rel in done}
    rc, out = ta.upload_json(*args[1:])
    assert rc == 0 and out["files_ok"] == FILES, out
    assert tree_of(folder) == content
    rewritten = {rel for rel in done if (folder / rel).stat().st_ino != inodes[rel]}
    assert rewritten == {damaged}
    registered_once(ta, "big", content, md5)


def test_agent_stopped_mid_batch_then_restarted_sends_only_what_storage_lacks(
        ta: Trayagent, webdav_server: WebDAVServer, tmp_path: Path) -> None:
    """Quit now (the agent's clean stop, here by SIGTERM as the desktop session sends it) in the
    middle of the batch: rclone is stopped with the agent, and the next run keeps what is complete.
    (When the stop happens to record the batch as uploaded before it ends, the read-back keeps the
    complete files even without the storage check; most stops leave it ``uploading``.)"""
    content = make_many(tmp_path / "d", FILES, size=SIZE, per_dir=FILES)
    ta.use_webdav(webdav_server, transfer=ONE_BATCH)
    folder = Path(webdav_server.root) / "p" / "quit"
    agent = subprocess.Popen([sys.executable, "-m", "trayagent.cli", "agent", "--headless"], env=ta.env(),
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: (ta.home / "run" / "agent.json").exists(), 30, what="the agent's API")
        client = ta.popen("upload", str(tmp_path / "d"), "--dataset", "quit", "--proposal", "p")
        wait_until(lambda: len(complete_in(folder, content)) >= FILES * 2 // 3, 120, interval=0.05,
                   what="most of the batch in storage")
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        client.wait(30)
    finally:
        stop_process(agent, 10)
    done = complete_in(folder, content)
    assert len(done) < FILES, "the batch ended before the stop: nothing was tested"
    log_before = webdav_server.log_path.stat().st_size
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "quit", "--proposal", "p")
    assert rc == 0 and out["files_ok"] == FILES, out
    with open(webdav_server.log_path, "rb") as fh:
        fh.seek(log_before)
        after = fh.read().decode(errors="replace")
    sent_again = {m.removeprefix("/p/quit/") for m in re.findall(r'"PUT (/p/quit/[^"]+)"', after)}
    assert not sent_again & done, f"re-sent although complete in storage: {sorted(sent_again & done)}"
    assert tree_of(folder) == content
    registered_once(ta, "quit", content, blake3)


def test_resume_of_a_dataset_whose_scan_was_cut_short_says_what_to_do(ta: Trayagent, tmp_path: Path) -> None:
    """A kill during the scan leaves the dataset with its scan unfinished (scan_done = 0; made here
    in the queue file after a kill, the scan of a small folder being too quick to hit). Only the
    upload command knows the filters to finish the scan: resume says so instead of waiting forever."""
    content = make_many(tmp_path / "d", 12, size=SIZE, per_dir=12)
    ta.write_config({"transfer": {"bwlimit": "1M", "batch_files": 4}})
    args = ("upload", str(tmp_path / "d"), "--dataset", "cut")
    proc = ta.popen(*args)
    wait_until(lambda: ta.files_sent() >= 4, 60, what="mid-upload")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with sqlite3.connect(ta.home / "data" / "queue.sqlite") as db:
        db.execute("UPDATE datasets SET scan_done = 0")
    resumed = ta.run("resume", timeout=60)
    assert resumed.returncode == 2, resumed.stderr
    assert "the scan of dataset 'cut' was interrupted" in resumed.stderr
    assert "run the same `trayagent upload` command again" in resumed.stderr.lower()
    rc, out = ta.upload_json(*args[1:])
    assert rc == 0 and out["files_ok"] == len(content), out
    assert tree_of(ta.storage_dir / "no-proposal" / "cut") == content


def test_s3_restart_keeps_complete_objects_md5_checked(ta: Trayagent, s3_server: S3Server, s3_bucket: str,
                                                       tmp_path: Path) -> None:
    """S3 has MD5: objects complete at the kill are kept (the server's own upload time of each,
    read with rclone's --use-server-modtime, is unchanged by the re-run); the rest is sent."""
    content = make_many(tmp_path / "d", FILES, size=SIZE, per_dir=FILES)
    ta.use_s3(s3_server, s3_bucket, transfer=ONE_BATCH)
    args = ("upload", str(tmp_path / "d"), "--dataset", "big", "--proposal", "p")

    def uploaded_at() -> dict[str, str]:
        out = run_rclone(["lsjson", "-R", "--files-only", "--use-server-modtime", f"S3:{s3_bucket}/p/big"],
                         env=s3_server.rclone_env("S3")).stdout
        return {e["Path"]: e["ModTime"] for e in json.loads(out)}

    proc = ta.popen(*args)
    wait_until(lambda: len(uploaded_at()) >= FILES * 2 // 3, 120, interval=0.1, what="most of the batch in storage")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = uploaded_at()
    assert ta.queue_states() == {"uploading": FILES}, ta.queue_states()
    assert FILES // 2 <= len(before) < FILES, before
    rc, out = ta.upload_json(*args[1:])
    assert rc == 0 and out["files_ok"] == FILES, out
    after = uploaded_at()
    assert {p: after[p] for p in before} == before, "objects complete at the kill were sent again"
    assert set(after) == set(content) | {"ro-crate-metadata.json"}
    registered_once(ta, "big", content, md5)
