"""Checksums of local files, computed from their bytes, with a guard against files still changing.

The file is stat'ed before and after hashing: if size or mtime moved, the writer is still at work
and the checksum would describe bytes that no longer exist, so the caller must try again later.
"""

from __future__ import annotations

import errno
import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import LocalFileError

ALGORITHMS = ("md5", "sha1", "sha256", "blake2b")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Digest:
    size: int
    mtime_ns: int
    value: str
    algorithm: str


class FileChanging(LocalFileError):
    """The file changed while it was read: try again when the writer is done."""

    transient = True


def hash_file(path: Path, algorithm: str) -> Digest:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}")
    try:
        before = path.stat()
        h = hashlib.new(algorithm)
        with open(path, "rb", buffering=0) as fh:
            buf = bytearray(_CHUNK)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                h.update(view[:n])
        after = path.stat()
    except FileNotFoundError as exc:
        if path.is_symlink():
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
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise FileChanging(f"{path}: the file changed while its checksum was computed",
                           "It is uploaded once the writer is done.")
    return Digest(after.st_size, after.st_mtime_ns, h.hexdigest(), algorithm)
