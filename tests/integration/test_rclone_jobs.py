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


def test_finished_jobs_leave_no_statistics_behind(tmp_path: Path) -> None:
    """rclone keeps a stats group for each job and each call that counts anything (a listing, a
    copyfile), up to 1,000 of up to 100 transfers each, long after the job or call ended. A job
    waited for drops its group when it ends, the calls share one, and ``trim`` (run by the engine
    once it is quiet after work) drops any others and has Go collect its garbage now (the effect on
    rclone's memory is measured in tests/bench)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):
        (src / f"f{i:03d}.bin").write_bytes(b"x" * i)
    daemon = RcloneDaemon(find_rclone(), tmp_path / "run")
    try:
        def job_groups() -> list[str]:
            return [g for g in daemon.call("core/group-list").get("groups") or [] if g.startswith("job/")]
        for n in range(5):
            assert daemon.run_job("sync/copy", {"srcFs": str(src), "dstFs": str(tmp_path / f"dst{n}")})["success"]
            daemon.call("operations/list", {"fs": str(tmp_path / f"dst{n}"), "remote": ""})  # a verification
        assert job_groups() == []  # the calls share one group
        # jobs nobody waits for (a crash between start and wait)
        jobs = [daemon.start_job("sync/copy", {"srcFs": str(src), "dstFs": str(tmp_path / f"other{n}")})[0]
                for n in range(3)]
        deadline = time.monotonic() + 30
        while (not all(daemon.call("job/status", {"jobid": j})["finished"] for j in jobs)
               and time.monotonic() < deadline):
            time.sleep(0.1)
        assert len(job_groups()) == 3
        daemon.trim()
        assert job_groups() == []
    finally:
        daemon.stop()
    daemon.trim()  # a daemon that is not running is not started for it
    assert not daemon.alive()
