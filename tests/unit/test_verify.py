"""Unit tests for trayagent.pipeline.verify: what storage holds against what was sent and what the
file is now (real files in a temporary folder; storage's answer as rclone's read-back gives it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from trayagent.errors import LocalFileError
from trayagent.pipeline.checksum import Digest
from trayagent.pipeline.verify import CHANGED, MISSING, check, stored_digest
from trayagent.queue import QueuedFile, State
from trayagent.storage.transfer import RemoteFile

DATA = b"beamline" * 100


def _queued(tmp_path: Path, checksum: str = "", algorithm: str = "md5") -> QueuedFile:
    path = tmp_path / "a.bin"
    if not path.exists():
        path.write_bytes(DATA)
    st = path.stat()
    return QueuedFile(id=1, dataset_id=1, src_root=str(tmp_path), src_rel="a.bin", relpath="a.bin",
                      size=st.st_size, mtime_ns=st.st_mtime_ns, checksum=checksum, algorithm=algorithm,
                      state=State.UPLOADED, verification=None, attempts=0, last_error=None)


def test_a_matching_storage_hash_verifies_by_hash(tmp_path: Path) -> None:
    md5 = hashlib.md5(DATA).hexdigest()
    f = _queued(tmp_path, checksum=md5)
    assert check(f, stored_digest(f), RemoteFile(len(DATA), {"md5": md5.upper()}), "md5") == ("hash", md5)


def test_what_storage_does_not_hold_as_sent_is_missing(tmp_path: Path) -> None:
    md5 = hashlib.md5(DATA).hexdigest()
    f = _queued(tmp_path, checksum=md5)
    assert check(f, stored_digest(f), None, "md5") == MISSING
    assert check(f, stored_digest(f), RemoteFile(len(DATA) - 1, {}), "md5") == MISSING
    assert check(f, stored_digest(f), RemoteFile(len(DATA), {"md5": "0" * 32}), "md5") == MISSING


def test_a_hash_computed_in_transit_is_read_from_storage(tmp_path: Path) -> None:
    """The queue holds no value (rclone computed it during the copy): storage's hash is recorded."""
    md5 = hashlib.md5(DATA).hexdigest()
    f = _queued(tmp_path)
    assert check(f, stored_digest(f), RemoteFile(len(DATA), {"md5": md5}), "md5") == ("hash", md5)


def test_without_any_hash_the_file_is_hashed_here_and_verified_by_size(tmp_path: Path) -> None:
    f = _queued(tmp_path)
    assert check(f, stored_digest(f), RemoteFile(len(DATA), {}), None) == ("size", hashlib.md5(DATA).hexdigest())


def test_a_file_changed_since_it_was_hashed_goes_back(tmp_path: Path) -> None:
    md5 = hashlib.md5(DATA).hexdigest()
    f = _queued(tmp_path, checksum=md5)
    digest = stored_digest(f)
    st = (tmp_path / "a.bin").stat()
    os.utime(tmp_path / "a.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert check(f, digest, RemoteFile(len(DATA), {"md5": md5}), "md5") == CHANGED


def test_a_file_gone_before_it_could_be_hashed_is_its_error(tmp_path: Path) -> None:
    f = _queued(tmp_path)
    (tmp_path / "a.bin").unlink()
    verdict = check(f, Digest(len(DATA), f.mtime_ns or 0, "", "md5"), RemoteFile(len(DATA), {}), None)
    assert isinstance(verdict, LocalFileError)
