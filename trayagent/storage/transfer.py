"""Moving bytes: batches of queued files copied by the rclone daemon, and what storage then holds.

A batch becomes one ``sync/copy`` job per source folder, restricted to the batch's files by a
NUL-separated ``--files-from0`` list and run with ``NoCheckDest``: the
queue has already decided what must go, so rclone need not list the destination first. The one
exception is a batch of files whose earlier upload was interrupted (a crash, Quit now): there rclone
compares with what storage holds and sends only what is missing or different (``check_dest``). Names with
control characters are passed in rclone's own encoding (see ``rclone_name``). ``listing`` reads back what
storage holds (size, and the backend's hash where it has one) for verification.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AuthError, StorageError, StorageFull, StorageLogin
from ..queue import QueuedFile
from .rcerrors import RcError, is_auth_error, is_no_space, plain_error
from .rclone import RcloneDaemon
from .stall import StallWatch
from .target import SMALL_FILE_BYTES, StorageTarget

log = logging.getLogger(__name__)

_HASH_PREFERENCE = ("md5", "sha1", "sha256")
BUFFER_SIZE = 0  # rclone's read-ahead per transfer (see Transfer._config)
# How often a running copy is asked how it does: its end is seen at once anyway (rclone's "Copied" lines
# are counted), so this bounds only progress updates and the end of a job whose files did not all copy.
JOB_POLL = 0.25


@dataclass(frozen=True)
class RemoteFile:
    size: int
    hashes: dict[str, str]


def source_fs(root: str) -> str:
    """The local source as rclone sees it, following symlinked files like the scanner does
    (rclone's local backend skips symlinks by default)."""
    return f":local,copy_links=true:{root}"


def _prefix(f: QueuedFile) -> str:
    """Folder under the dataset folder that the file's source folder maps to."""
    return f.relpath[: len(f.relpath) - len(f.src_rel)].rstrip("/")


_QUOTE = "\u201b"  # rclone's escape for a character that already looks like an encoded one
_ENCODED = re.compile("[\x00-\x1f\x7f\u2400-\u2421\u201b]")  # what rclone_name changes


def rclone_name(path: str) -> str:
    """A local path in rclone's internal encoding: control characters become their Unicode
    'control pictures' (newline -> U+240A), as rclone lists and expects them. Names without such
    characters (nearly all) are returned as they are: this runs twice per file uploaded."""
    if not _ENCODED.search(path):
        return path
    out = []
    for ch in path:
        code = ord(ch)
        if 0x2400 <= code <= 0x2421 or ch == _QUOTE:
            out.append(_QUOTE + ch)
        elif code < 0x20:
            out.append(chr(0x2400 + code))
        elif code == 0x7F:
            out.append("\u2421")
        else:
            out.append(ch)
    return "".join(out)


class Transfer:
    """The storage side of the pipeline for one storage target."""

    def __init__(self, daemon: RcloneDaemon, target: StorageTarget, *, transfers: int,
                 scratch_dir: Path, backend_type: str = "", preset: frozenset[str] = frozenset()) -> None:
        self.daemon = daemon
        self.target = target
        self.transfers = transfers
        self.scratch_dir = scratch_dir
        self.backend_type = backend_type
        self.preset = preset  # options the named remote's config sets itself
        self._hashes: list[str] | None = None
        self._obscured: str | None = None

    def fs(self, subpath: str = "", small_files: bool = False) -> str:
        return self.target.fs(subpath, self._obscure, self.backend_type, self.preset, small_files)

    def _obscure(self, clear: str) -> str:
        """The secret obscured once and reused: rclone keeps the remotes it built by their fs string,
        and each ``core/obscure`` answer differs, so a fresh one per call made rclone build the
        remote again every time (a round trip of its own, and one more request to check the folder)."""
        if self._obscured is None:
            self._obscured = self.daemon.obscure(clear)
        return self._obscured

    def _forget_remotes(self) -> None:
        """After a storage error: rclone builds its remotes afresh, so that one whose pacer backed
        off during an outage does not slow the calls after it."""
        try:
            self.daemon.call("fscache/clear", timeout=10)
        except (RcError, StorageError) as exc:
            log.debug("cannot clear rclone's remotes: %s", exc)

    def _config(self, check_dest: bool = False, transfers: int | None = None) -> dict[str, Any]:
        """Every call that may build a remote passes the same: rclone fixes a remote's low-level
        retries when it builds it.

        Few low-level retries: rclone would otherwise wait out an outage silently inside a job;
        the queue retries with backoff and tells the user it is waiting. No read-ahead buffer:
        rclone reads each file straight into the request, one copy of every byte fewer (0.1-0.2
        CPU-s per GiB less for rclone, and no 16 MiB per transfer); the kernel's read-ahead keeps
        sequential reads from disk ahead of the network.

        ``check_dest``: rclone skips a file that storage already holds. With a hash on storage
        (S3's MD5, the local backend), same size and same hash, computed from the local bytes
        (``CheckSum``); without one (plain WebDAV), same size and, where the storage keeps
        modification times, same mtime: rclone's own default comparison."""
        check = {"NoCheckDest": False, "CheckSum": bool(self.hash_types())} if check_dest else {}
        return {"Transfers": transfers or self.transfers, "Checkers": max(8, self.transfers), "NoCheckDest": True,
                "LowLevelRetries": 3, "BufferSize": BUFFER_SIZE} | check

    # -- capabilities and access ----------------------------------------------------------------
    def hash_types(self) -> list[str]:
        """Hashes the storage can report for stored files (empty: size verification only)."""
        if self._hashes is None:
            info = self._guard(lambda: self.daemon.call("operations/fsinfo", {
                "fs": self.fs(), "_config": self._config()}))
            self._hashes = [h for h in info.get("Hashes") or [] if isinstance(h, str)]
        return self._hashes

    def preferred_hash(self) -> str | None:
        return next((h for h in _HASH_PREFERENCE if h in self.hash_types()), None)

    def check_access(self, storage_path: str) -> None:
        """Create the dataset folder: fails fast on a wrong password or an unreachable server.
        Made from the top of the remote: a remote built for the folder itself first asks whether
        that path is a file, and with a wrong secret rclone's S3 backend took the folder for a file
        (SeaweedFS), which hid the refused credentials."""
        self._guard(lambda: self.daemon.call("operations/mkdir", {
            "fs": self.fs(), "remote": rclone_name(storage_path), "_config": self._config()}))

    def probe(self) -> None:
        """Really talk to the storage (Settings' Test connection): list the top of the remote.
        Creating a folder is not enough: rclone's WebDAV mkdir of the root contacts nobody."""
        self.check_access("")
        self.reachable()

    def reachable(self, timeout: float = 20) -> None:
        """One listing of the top of the remote, without retries: raises when storage cannot be
        reached (the stall watch of a copy that stands still)."""
        self._guard(lambda: self.daemon.call("operations/list", {
            "fs": self.fs(), "remote": "", "opt": {"dirsOnly": True, "noModTime": True},
            "_config": {"LowLevelRetries": 1}}, timeout=timeout))

    def _job_counters(self, jobid: int) -> tuple[int, ...]:
        """What moves while a job gets on: bytes sent, files compared, files done (not its errors:
        failing is not progress)."""
        try:
            stats = self.daemon.stats(f"job/{jobid}")
        except (RcError, StorageError):
            return ()
        return tuple(int(stats.get(k) or 0) for k in ("bytes", "checks", "transfers"))

    def _guard(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return call()
        except RcError as exc:
            raise self._failure(exc.error) from exc

    def _failure(self, error: str) -> StorageError | AuthError:
        """A storage call failed: rclone's remotes are dropped, and the error is put in the user's terms."""
        self._forget_remotes()
        return self.explain(error)

    def explain(self, error: str) -> StorageError | AuthError:
        """Turn rclone's error text into the error a user can act on."""
        where = self.target.display
        if is_no_space(error):
            return StorageFull(f"the storage {where} is full or over its quota: {plain_error(error)}",
                               "Free space there (or ask for a bigger quota), then run the same command "
                               "again: what is verified is kept, only the rest is sent.")
        if is_auth_error(error):
            return StorageLogin(f"the storage {where} refused the credentials: {error}",
                                "Check [storage] user and store the right password.", self.target.user)
        return StorageError(f"storage {where}: {plain_error(error)}", "It is retried automatically; see the log "
                            "if it persists.", transient=RcError("", 0, error).transient)

    # -- copying --------------------------------------------------------------------------------
    def copy_batch(self, storage_path: str, files: Sequence[QueuedFile],
                   on_job: Callable[[int], None] | None = None,
                   meanwhile: Callable[[], None] | None = None, check_dest: bool = False,
                   transfers: int | None = None) -> list[str]:
        """Copy the files; returns the error texts of jobs that failed (files are verified anyway).
        Files all below ``SMALL_FILE_BYTES`` go with ``target.SMALL_FILES`` (S3: no HEAD per object):
        the engine lists them afterwards.

        ``meanwhile`` runs once the jobs are started, while rclone works: the engine verifies and
        registers earlier batches there, so storage never waits for the catalogue. ``check_dest``:
        send only what storage does not already hold (see ``_config``). ``transfers``: the jobs' share
        of the transfer slots when another job runs beside them (the big-file lane)."""
        groups: dict[tuple[str, str], list[QueuedFile]] = defaultdict(list)
        for f in files:
            groups[(f.src_root, _prefix(f))].append(f)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        started = []
        copied_before = self.daemon.copied_count()
        small = all(f.size is not None and f.size < SMALL_FILE_BYTES for f in files)
        try:
            for (root, prefix), group in groups.items():
                listing = self.scratch_dir / f"batch-{os.getpid()}-{secrets.token_hex(4)}.lst"
                listing.write_bytes(b"".join(rclone_name(f.src_rel).encode() + b"\0" for f in group))
                dst = "/".join(p for p in (storage_path, prefix) if p)
                try:
                    job = self.daemon.start_job("sync/copy", {
                        "srcFs": source_fs(root), "dstFs": self.fs(dst, small), "createEmptySrcDirs": False,
                        "_config": self._config(check_dest, transfers), "_filter": {"FilesFrom0": [str(listing)]}})
                except BaseException as exc:
                    listing.unlink(missing_ok=True)
                    if isinstance(exc, RcError):
                        self._forget_remotes()
                    raise
                started.append((listing, job))
            if meanwhile is not None:
                meanwhile()
            errors = []
            for _, job in started:
                status = self.daemon.wait_job(job, poll=JOB_POLL, on_job=on_job, copies=(copied_before, len(files)),
                                              watchdog=StallWatch(self._job_counters, self.reachable))
                if not status.get("success"):
                    errors.append(self.daemon.redact(str(status.get("error") or "failed")))
            if errors:
                self._forget_remotes()
            return errors
        finally:
            for listing, _ in started:
                listing.unlink(missing_ok=True)

    def copy_one(self, storage_path: str, f: QueuedFile) -> None:
        """One file on its own: used for odd names and to learn each file's own error."""
        status = self.daemon.run_job("operations/copyfile", {
            "srcFs": source_fs(f.src_root), "srcRemote": rclone_name(f.src_rel), "dstFs": self.fs(storage_path),
            "dstRemote": rclone_name(f.relpath), "_config": self._config()})
        if not status.get("success"):
            self._forget_remotes()
            raise RcError("operations/copyfile", 0, self.daemon.redact(str(status.get("error"))))

    def put_bytes(self, storage_path: str, name: str, data: bytes) -> None:
        """Write a small generated file (the manifest) into the dataset folder, straight from memory."""
        self._guard(lambda: self.daemon.upload(self.fs(storage_path), name, data, self._config()))

    def put_file(self, storage_path: str, name: str, path: Path) -> None:
        """Store a generated local file (a big manifest) as ``name`` in the dataset folder; rclone
        reads it from disk, so its size does not pass through memory here."""
        self._guard(lambda: self.daemon.call("operations/copyfile", {
            "srcFs": source_fs(str(path.parent)), "srcRemote": path.name, "dstFs": self.fs(storage_path),
            "dstRemote": name, "_config": self._config()}, timeout=3600))

    # -- reading back ---------------------------------------------------------------------------
    def listing(self, storage_path: str, folders: set[str], hash_type: str | None) -> dict[str, RemoteFile]:
        """What storage holds in these dataset sub-folders: rclone-encoded relpath -> size and hashes."""
        out: dict[str, RemoteFile] = {}
        for folder in sorted(folders):
            opt: dict[str, Any] = {"recurse": False, "filesOnly": True, "noMimeType": True,
                                   "noModTime": True}
            if hash_type:
                opt.update(showHash=True, hashTypes=[hash_type])
            try:
                result = self.daemon.call("operations/list", {
                    "fs": self.fs(storage_path), "remote": rclone_name(folder), "opt": opt,
                    "_config": self._config()})
            except RcError as exc:
                if "not found" in exc.error.lower():
                    continue
                raise self._failure(exc.error) from exc
            for item in result.get("list") or []:
                out[item["Path"]] = RemoteFile(int(item["Size"]), dict(item.get("Hashes") or {}))
        return out

    def stat(self, storage_path: str, relpaths: Sequence[str], hash_type: str | None) -> dict[str, RemoteFile]:
        """What storage holds for a few files, one request each: for small verifications, where
        listing a big folder would cost more than the files themselves."""
        out: dict[str, RemoteFile] = {}
        opt: dict[str, Any] = {"noMimeType": True, "noModTime": True}
        if hash_type:
            opt.update(showHash=True, hashTypes=[hash_type])
        for rel in relpaths:
            try:
                item = self.daemon.call("operations/stat", {
                    "fs": self.fs(storage_path), "remote": rclone_name(rel), "opt": opt,
                    "_config": self._config()}).get("item")
            except RcError as exc:
                if "not found" in exc.error.lower():
                    continue
                raise self._failure(exc.error) from exc
            if item:
                out[rclone_name(rel)] = RemoteFile(int(item["Size"]), dict(item.get("Hashes") or {}))
        return out

    def trim(self) -> None:
        """After a burst of work, once quiet: rclone gives back the memory it took (see
        ``RcloneDaemon.trim``)."""
        self.daemon.trim()

    def bytes_in_flight(self, jobid: int) -> int:
        """Bytes rclone has sent so far in a job, for progress."""
        try:
            return int(self.daemon.stats(f"job/{jobid}").get("bytes", 0))
        except (RcError, StorageError):
            return 0
