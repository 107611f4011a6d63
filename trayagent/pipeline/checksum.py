"""Checksums of local files, computed from their bytes, with a guard against files still changing.

The file is stat'ed before and after hashing: if size or mtime moved, the writer is still at work
and the checksum would describe bytes that no longer exist, so the caller must try again later.

BLAKE3 is the fast strong hash for storage that reports no hash of its own: one core hashes
several GB/s, so on a busy two-core beamline PC the checksum does not slow the upload down.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LocalFileError

_blake3: Any
try:
    import blake3 as _blake3
except ImportError:  # a platform without a wheel: the stdlib hashes still work
    _blake3 = None

ALGORITHMS = ("md5", "sha1", "sha256", "blake2b") + (("blake3",) if _blake3 is not None else ())
FAST_STRONG = "blake3" if _blake3 is not None else "sha256"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Digest:
    size: int
    mtime_ns: int
    value: str  # "" when the storage's hash, taken after the upload, will be recorded instead
    algorithm: str


class FileChanging(LocalFileError):
    """The file changed while it was read: try again when the writer is done."""

    transient = True


def _hasher(algorithm: str) -> Any:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}")
    if algorithm == "blake3":
        assert _blake3 is not None
        return _blake3.blake3(max_threads=1)  # leave the other cores to rclone and the writer
    return hashlib.new(algorithm)


@contextmanager
def _reading(path: str | Path) -> Iterator[None]:
    """Turn OS errors into messages that say what happened to the file and what to do."""
    try:
        yield
    except FileNotFoundError as exc:
        if os.path.islink(path):
            raise LocalFileError(f"{path}: broken symbolic link (its target is missing)",
                                 "Restore the target, then press Retry.") from exc
        raise LocalFileError(f"{path}: the file vanished before it could be uploaded",
                             "Nothing to do if it was deleted on purpose.") from exc
    except PermissionError as exc:
        raise LocalFileError(f"{path}: permission denied (cannot read the file)",
                             "Give your user read access to the file, then press Retry.") from exc
    except IsADirectoryError as exc:
        raise LocalFileError(f"{path}: is now a folder, not a file", "Upload the folder itself.") from exc
    except OSError as exc:
        transient = exc.errno in (errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.EIO)
        raise LocalFileError(f"{path}: cannot be read ({exc.strerror or exc})",
                             "Check the disk or share, then press Retry.", transient=transient) from exc


def hash_file(path: Path, algorithm: str) -> Digest:
    h = _hasher(algorithm)
    with _reading(path):
        before = path.stat()
        with open(path, "rb", buffering=0) as fh:
            buf = bytearray(_CHUNK)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                h.update(view[:n])
        after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise FileChanging(f"{path}: the file changed while its checksum was computed",
                           "It is uploaded once the writer is done.")
    return Digest(after.st_size, after.st_mtime_ns, h.hexdigest(), algorithm)


def stat_file(path: str | Path, algorithm: str) -> Digest:
    """Size and mtime before an upload whose checksum rclone computes and checks in transit;
    the file must still be readable, as ``hash_file`` would have found out."""
    with _reading(path):
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not os.access(path, os.R_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
    return Digest(st.st_size, st.st_mtime_ns, "", algorithm)
