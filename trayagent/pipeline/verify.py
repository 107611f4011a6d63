"""Verification: what storage holds for an uploaded file, against what was sent and what the file is
now. Pure decisions; the engine acts on them (marks verified, sends a file again, fails it).

A file is verified by size, and by hash where storage reports the algorithm trayagent hashed with
(rclone computed it from the local bytes during the copy). Where storage shows no hash for an object
the local file is hashed here. Either way the local file is re-stat'ed: one that changed during its
upload goes back to the queue and is never registered with a stale checksum.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

from ..errors import LocalFileError, StorageError
from ..logs import FOLD
from ..queue import QueuedFile
from ..storage.rcerrors import RcError
from ..storage.transfer import RemoteFile, Transfer
from .checksum import Digest, hash_file

log = logging.getLogger(__name__)

STAT_MAX = 16  # up to this many files are read back one by one, beyond by folder listings
MISSING: Literal["missing"] = "missing"  # storage does not hold the file (yet), or not as sent
CHANGED: Literal["changed"] = "changed"  # the local file changed during its upload

Verdict = tuple[str, str] | Literal["missing", "changed"] | LocalFileError


def stored_digest(f: QueuedFile) -> Digest:
    """The checksum and stat the queue recorded when the file was hashed."""
    return Digest(f.size or 0, f.mtime_ns or 0, f.checksum or "", f.algorithm or "")


def check(f: QueuedFile, digest: Digest, remote: RemoteFile | None, verify_hash: str | None) -> Verdict:
    """(verification level, checksum) for a verified file; ``MISSING`` when storage does not hold
    it as sent; ``CHANGED`` when the local file changed; the error when it cannot be read."""
    if remote is None or remote.size != digest.size:
        return MISSING
    level, value = "size", digest.value.lower()
    if verify_hash and digest.algorithm == verify_hash:
        got = remote.hashes.get(verify_hash, "").lower()
        if got and value and got != value:
            return MISSING
        level, value = ("hash", value or got) if got else ("size", value)
    if not value:  # computed in transit, but storage shows no hash for this object: hash here
        try:
            local = hash_file(f.local_path, digest.algorithm)
        except LocalFileError as exc:
            return exc
        if (local.size, local.mtime_ns) != (digest.size, digest.mtime_ns):
            return CHANGED
        value = local.value
    if changed_since(f, digest):
        return CHANGED
    return level, value


def changed_since(f: QueuedFile, digest: Digest) -> bool:
    try:
        st = os.stat(f.local_file)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (digest.size, digest.mtime_ns)


def read_back(transfer: Transfer, storage_path: str, files: list[QueuedFile],
              verify_hash: str | None) -> dict[str, RemoteFile]:
    """A few files: one stat each (cost independent of folder size, for sync latency); many:
    one listing per folder. Storage that cannot be read yet gives nothing (files stay uploaded); said
    once per kind of error in the log file, with a count: an outage tries this again on every retry."""
    try:
        if len(files) > STAT_MAX:
            folders = {f.relpath.rpartition("/")[0] for f in files}
            return transfer.listing(storage_path, folders, verify_hash)
        return transfer.stat(storage_path, [f.relpath for f in files], verify_hash)
    except (StorageError, RcError) as exc:
        log.warning("cannot read back the stored files yet: %s", exc, extra=FOLD)
        return {}
