"""The supervised rclone daemon, against the real rclone (local backend only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trayagent.errors import StorageError
from trayagent.rclone import RcError, RcloneDaemon, find_rclone


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


def test_bytes_are_uploaded_from_memory_without_a_scratch_file(tmp_path: Path) -> None:
    """The manifest path: small and large payloads land byte-identical; nothing is written to the
    runtime folder (no temporary file to delete after a big upload); odd names are refused."""
    dst, run = tmp_path / "dst", tmp_path / "run"
    dst.mkdir()
    small = '{"name": "ünïcode ✓"}\n'.encode()
    large = bytes(range(256)) * 8192  # 2 MiB: above rclone's default streaming cutoff of 100 KiB
    daemon = RcloneDaemon(find_rclone(), run)
    try:
        daemon.upload(str(dst), "small.json", small, {"LowLevelRetries": 1})
        daemon.upload(str(dst), "large.bin", large, {})
        assert (dst / "small.json").read_bytes() == small
        assert (dst / "large.bin").read_bytes() == large
        assert sorted(p.name for p in run.iterdir() if p.suffix not in (".pid", ".htpasswd")) == []
        for bad in ("", "a/b.json", 'quote".json', "line\nbreak.json"):
            with pytest.raises(ValueError, match="plain file name"):
                daemon.upload(str(dst), bad, small, {})
        (tmp_path / "a-file").write_text("not a folder")
        with pytest.raises(RcError):  # storage's refusal comes back as an rc error
            daemon.upload(str(tmp_path / "a-file" / "sub"), "x.json", small, {})
    finally:
        daemon.stop()
