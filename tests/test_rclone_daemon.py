"""The supervised rclone daemon, against the real rclone (local backend only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trayagent.errors import StorageError
from trayagent.rclone import RcloneDaemon, find_rclone


def test_copied_lines_are_counted_and_end_the_wait_of_a_job(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("a.bin", "b c.bin", "d.bin"):
        (src / name).write_bytes(name.encode() * 100)
    daemon = RcloneDaemon(find_rclone(), tmp_path / "run")
    daemon.launch()  # not waited for: the first call waits
    try:
        before = daemon.copied_count()
        job = daemon.start_job("sync/copy", {"srcFs": str(src), "dstFs": str(dst)})
        status = daemon.wait_job(job, copies=(before, 3))
        assert status["success"] and status["finished"]
        assert sorted(p.name for p in dst.iterdir()) == ["a.bin", "b c.bin", "d.bin"]
        assert daemon.copied_count() - before == 3
    finally:
        daemon.stop()
    assert not daemon.alive()


def test_a_broken_binary_is_reported_at_the_first_call(tmp_path: Path) -> None:
    fake = tmp_path / "rclone"
    fake.write_text("#!/bin/sh\necho 'not rclone' >&2\nexit 3\n")
    fake.chmod(0o755)
    daemon = RcloneDaemon(str(fake), tmp_path / "run")
    daemon.launch()
    try:
        with pytest.raises(StorageError, match=r"rclone did not start.*not rclone"):
            daemon.call("core/version")
    finally:
        daemon.stop()
