"""Where the checksum comes from, in-process against the real rclone and the local backend.

With the storage's hash computed by rclone during the copy (the local backend and S3 report MD5),
trayagent records that hash instead of hashing again. These tests pin the two ways this could go
wrong: storage showing no hash for an object (then the file is hashed here), and a file rewritten
after rclone read it (then it goes back to the queue and its new version is what gets registered).
Faults are injected by wrapping the real ``Transfer`` methods; everything else is real.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path
from typing import Any

import blake3
import pytest

from trayagent.config import load_config
from trayagent.paths import resolve_paths
from trayagent.pipeline import checksum
from trayagent.platform.priority import BACKGROUND_NICE
from trayagent.queue import State
from trayagent.storage.transfer import RemoteFile, Transfer
from trayagent.uploader import Uploader


@pytest.fixture
def uploader(tmp_path: Path) -> Any:
    paths = resolve_paths({"TRAYAGENT_HOME": str(tmp_path / "home")})
    with Uploader(load_config(paths), paths) as up:
        yield up


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def _registered(up: Uploader, dataset_id: int) -> dict[str, tuple[str, str, str]]:
    return {f.relpath: (f.checksum or "", f.algorithm or "", f.verification or "")
            for f in up.queue.files(dataset_id, State.REGISTERED)}


def test_storage_hash_is_recorded_without_hashing_here(uploader: Uploader, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"a.bin": b"a" * 1000, "sub/b.bin": b"b" * 3000}
    _write(tmp_path / "src", files)

    def no_local_hashing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("hashed locally although rclone computed the storage's hash")
    monkeypatch.setattr("trayagent.pipeline.engine.hash_file", no_local_hashing)  # beside the copy
    monkeypatch.setattr("trayagent.pipeline.verify.hash_file", no_local_hashing)  # at verification
    plan = uploader.plan([str(tmp_path / "src")], dataset="d1")
    outcome = uploader.run(uploader.submit(plan))
    assert (outcome.files_ok, outcome.files_failed) == (2, 0)
    got = _registered(uploader, uploader.queue.datasets()[0].id)
    assert got == {rel: (hashlib.md5(data).hexdigest(), "md5", "hash") for rel, data in files.items()}


def test_object_without_a_storage_hash_is_hashed_here(uploader: Uploader, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    files = {f"f{i}.bin": bytes([i]) * (100 + i) for i in range(20)}  # > STAT_MAX: read back by listing
    _write(tmp_path / "src", files)

    def strip(result: dict[str, RemoteFile]) -> dict[str, RemoteFile]:
        return {k: RemoteFile(v.size, {}) for k, v in result.items()}
    real_listing, real_stat = Transfer.listing, Transfer.stat
    monkeypatch.setattr(Transfer, "listing", lambda self, *a: strip(real_listing(self, *a)))
    monkeypatch.setattr(Transfer, "stat", lambda self, *a: strip(real_stat(self, *a)))
    outcome = uploader.run(uploader.submit(uploader.plan([str(tmp_path / "src")], dataset="d2")))
    assert (outcome.files_ok, outcome.files_failed) == (20, 0)
    got = _registered(uploader, uploader.queue.datasets()[0].id)
    assert got == {rel: (hashlib.md5(data).hexdigest(), "md5", "size") for rel, data in files.items()}


def test_file_rewritten_after_the_copy_registers_its_new_version(uploader: Uploader, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _write(src, {"scan.h5": b"old" * 100, "other.h5": b"x" * 10})
    real_copy = Transfer.copy_batch
    rewritten: list[str] = []

    def copy_then_rewrite(self: Transfer, *args: Any, **kwargs: Any) -> list[str]:
        errors = real_copy(self, *args, **kwargs)
        if not rewritten:  # the writer appends once rclone has read the old bytes
            rewritten.append("scan.h5")
            with open(src / "scan.h5", "ab") as fh:
                fh.write(b"new")
        return errors
    monkeypatch.setattr(Transfer, "copy_batch", copy_then_rewrite)
    outcome = uploader.run(uploader.submit(uploader.plan([str(src)], dataset="d3")))
    assert rewritten and (outcome.files_ok, outcome.files_failed) == (2, 0)
    got = _registered(uploader, uploader.queue.datasets()[0].id)
    assert got["scan.h5"] == (hashlib.md5(b"old" * 100 + b"new").hexdigest(), "md5", "hash")
    stored = uploader.paths.default_storage / "no-proposal" / "d3" / "scan.h5"
    assert stored.read_bytes() == b"old" * 100 + b"new"


def _nice_of_this_thread() -> int:
    stat = Path(f"/proc/self/task/{threading.get_native_id()}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_files_are_hashed_beside_the_copy_at_a_lower_priority(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """BLAKE3 computed here (with ``auto`` the local backend's MD5 would come from rclone in transit;
    it reads BLAKE3 back): the hashing threads run at nice 10, the caller's thread stays as it was."""
    paths = resolve_paths({"TRAYAGENT_HOME": str(tmp_path / "home")})
    paths.ensure()
    paths.config_file.write_text('[transfer]\nchecksum = "blake3"\n')
    files = {"a.bin": b"a" * 5000, "sub/b.bin": b"b" * 7000}
    _write(tmp_path / "src", files)
    seen: list[tuple[str, int]] = []
    real_hash = checksum.hash_file

    def observed(path: Path, algorithm: str) -> checksum.Digest:
        seen.append((threading.current_thread().name, _nice_of_this_thread()))
        return real_hash(path, algorithm)
    monkeypatch.setattr("trayagent.pipeline.engine.hash_file", observed)
    monkeypatch.setattr("trayagent.pipeline.verify.hash_file", observed)  # none here: counted if it did
    with Uploader(load_config(paths), paths) as up:
        outcome = up.run(up.submit(up.plan([str(tmp_path / "src")], dataset="niced")))
        got = _registered(up, up.queue.datasets()[0].id)
    assert (outcome.files_ok, outcome.files_failed) == (2, 0)
    assert got == {rel: (blake3.blake3(data).hexdigest(), "blake3", "hash") for rel, data in files.items()}
    assert len(seen) == 2 and all(name.startswith("hash") and nice == BACKGROUND_NICE for name, nice in seen), seen
    assert _nice_of_this_thread() == 0
