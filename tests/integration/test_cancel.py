"""`trayagent cancel NAME` without an agent (issue 19, per-dataset Cancel): an upload interrupted half-way
(kill -9) leaves its dataset active in the queue, and `trayagent resume` would finish it. Cancelled, what was
not yet sent leaves the queue, `resume` has nothing to do, what storage holds stays; an upload of the same
folder later completes it. Real CLI processes, real rclone, a real WebDAV server slowed by rclone's own
bandwidth limit."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

from agentctl import Trayagent
from servers import WebDAVServer
from waiting import wait_until

FILES, SIZE = 20, 100_000


def rows(ta: Trayagent) -> dict[str, int]:
    with sqlite3.connect(ta.home / "data" / "queue.sqlite") as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())


def test_cancel_an_interrupted_upload_then_upload_it_again(ta: Trayagent, webdav_server: WebDAVServer,
                                                           tmp_path: Path) -> None:
    ta.use_webdav(webdav_server, transfer={"bwlimit": "400k", "batch_files": 2, "transfers": 1})
    data = tmp_path / "run7"
    data.mkdir()
    for i in range(FILES):
        (data / f"f{i:02d}.dat").write_bytes(os.urandom(SIZE))

    def in_storage() -> set[str]:
        return {p.name for p in webdav_server.root.rglob("f*.dat")}

    proc = ta.popen("upload", str(data), "--dataset", "run7")
    wait_until(lambda: len(in_storage()) >= 4, 60, interval=0.05, what="the first files in storage")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert rows(ta).get("pending", 0) > 0, rows(ta)

    missing = ta.run("cancel", "nosuchdataset")
    assert missing.returncode == 2 and "no dataset named 'nosuchdataset' is being uploaded" in missing.stderr

    done = ta.run("cancel", "run7", check=True)
    assert "run7: cancelled" in done.stdout
    left = rows(ta)
    assert "pending" not in left and "failed" not in left, left
    status = ta.run("status", check=True).stdout
    assert "run7 [cancelled" in status, status
    resumed = ta.run("resume", check=True)
    assert "nothing to resume" in resumed.stdout
    kept = in_storage()
    assert 4 <= len(kept) < FILES  # what was sent stays

    code, outcome = ta.upload_json(str(data), "--dataset", "run7")
    assert code == 0, outcome
    assert outcome["files_ok"] == FILES and outcome["files_failed"] == 0
    assert in_storage() == {f"f{i:02d}.dat" for i in range(FILES)}
    assert rows(ta) == {"registered": FILES}
