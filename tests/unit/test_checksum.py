"""Unit tests for trayagent.pipeline.checksum.hash_file."""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from trayagent.errors import LocalFileError
from trayagent.pipeline import checksum
from trayagent.pipeline.checksum import ALGORITHMS, FileChanging, hash_file, stat_file
from trayagent.storage.process import find_rclone

PAYLOAD = os.urandom((1 << 20) * 2 + 12345)  # spans several read chunks


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("data", [b"", b"x", PAYLOAD], ids=["empty", "one-byte", "multi-chunk"])
def test_matches_hashlib(tmp_path: Path, algorithm: str, data: bytes) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    digest = hash_file(f, algorithm)
    assert digest.value == _reference(algorithm, data)
    assert (digest.size, digest.mtime_ns, digest.algorithm) == (len(data), f.stat().st_mtime_ns, algorithm)


def _reference(algorithm: str, data: bytes) -> str:
    if algorithm == "blake3":
        import blake3

        return str(blake3.blake3(data).hexdigest())
    return hashlib.new(algorithm, data).hexdigest()


def test_empty_file_known_values(tmp_path: Path) -> None:
    f = tmp_path / "empty"
    f.touch()
    assert hash_file(f, "md5").value == "d41d8cd98f00b204e9800998ecf8427e"
    assert hash_file(f, "sha256").value == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hash_file(f, "blake3").value == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def test_blake3_agrees_with_rclone(tmp_path: Path) -> None:
    """Users check BLAKE3 checksums with `rclone hashsum blake3` (or b3sum): the same digest."""
    f = tmp_path / "abc.txt"
    f.write_bytes(PAYLOAD)
    out = subprocess.run([find_rclone(), "hashsum", "blake3", str(f)], capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[0] == hash_file(f, "blake3").value


def test_fast_strong_is_blake3() -> None:
    assert checksum.FAST_STRONG == "blake3" and "blake3" in ALGORITHMS


def test_stat_file_takes_size_and_mtime_without_reading(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"12345")
    st = f.stat()
    assert stat_file(f, "md5") == checksum.Digest(5, st.st_mtime_ns, "", "md5")


def test_stat_file_errors_say_what_happened(tmp_path: Path) -> None:
    with pytest.raises(LocalFileError, match="vanished"):
        stat_file(tmp_path / "gone.h5", "md5")
    with pytest.raises(LocalFileError, match="is now a folder"):
        stat_file(tmp_path, "md5")


def test_unknown_algorithm(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown checksum algorithm 'crc32'"):
        hash_file(f, "crc32")
    with pytest.raises(ValueError):
        hash_file(f, "MD5")


def test_vanished_file_is_permanent_local_error(tmp_path: Path) -> None:
    with pytest.raises(LocalFileError) as info:
        hash_file(tmp_path / "gone.h5", "md5")
    assert type(info.value) is LocalFileError
    assert info.value.transient is False
    assert "vanished" in info.value.message and "gone.h5" in info.value.message


def test_directory_is_local_error(tmp_path: Path) -> None:
    with pytest.raises(LocalFileError, match="is now a folder"):
        hash_file(tmp_path, "md5")


def _failing_open(exc: OSError) -> Any:
    def fake(*args: Any, **kwargs: Any) -> Any:
        raise exc
    return fake


def test_unreadable_file_is_permission_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "secret.h5"
    f.write_bytes(b"x")
    f.chmod(0)
    try:
        open(f, "rb").close()
    except PermissionError:
        pass
    else:  # root reads anything: simulate the denial instead
        monkeypatch.setattr(checksum, "open", _failing_open(PermissionError(errno.EACCES, "Permission denied")),
                            raising=False)
    with pytest.raises(LocalFileError) as info:
        hash_file(f, "sha256")
    assert "permission denied" in info.value.message and info.value.transient is False
    assert "read access" in info.value.hint


@pytest.mark.parametrize(("code", "transient"), [(errno.EIO, True), (errno.EBUSY, True),
                                                 (errno.ETIMEDOUT, True), (errno.ENAMETOOLONG, False)])
def test_other_os_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, transient: bool) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    monkeypatch.setattr(checksum, "open", _failing_open(OSError(code, os.strerror(code))), raising=False)
    with pytest.raises(LocalFileError) as info:
        hash_file(f, "md5")
    assert info.value.transient is transient
    assert os.strerror(code) in info.value.message


def test_file_changing_while_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "growing.h5"
    f.write_bytes(b"first")
    real_open = builtins.open

    def open_then_append(*args: Any, **kwargs: Any) -> Any:
        fh = real_open(*args, **kwargs)
        with real_open(f, "ab") as writer:
            writer.write(b" more")
        return fh

    monkeypatch.setattr(checksum, "open", open_then_append, raising=False)
    with pytest.raises(FileChanging) as info:
        hash_file(f, "md5")
    assert info.value.transient is True
    assert isinstance(info.value, LocalFileError)
