"""rclone keeps a finished job only seconds: each job holds what it did (about 2.4 kB per file
copied), and kept for rclone's default 10 minutes a million files took trayagent's rclone to 2.5 GB
(bench_scale.py, local storage). A status read after it expired is not an error."""

from __future__ import annotations

import time
from pathlib import Path

from trayagent.storage.process import find_rclone
from trayagent.storage.rclone import RcloneDaemon


def test_a_finished_job_is_forgotten_within_seconds_and_its_late_wait_still_ends(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}.bin").write_bytes(b"x" * i)
    daemon = RcloneDaemon(find_rclone(), tmp_path / "run")
    try:
        job = daemon.start_job("sync/copy", {"srcFs": str(src), "dstFs": str(dst)})
        deadline = time.monotonic() + 30
        while job[0] in daemon.call("job/list").get("jobids", []) and time.monotonic() < deadline:
            time.sleep(0.2)  # the caller busy elsewhere (registering a block) while the job ends
        assert job[0] not in daemon.call("job/list").get("jobids", []), "rclone still holds the finished job"
        assert time.monotonic() < deadline
        status = daemon.wait_job(job)  # its status expired unread: done, the files are checked in storage
        assert status["finished"] and status["success"]
        assert sorted(p.name for p in dst.iterdir()) == sorted(f"f{i}.bin" for i in range(20))
    finally:
        daemon.stop()
