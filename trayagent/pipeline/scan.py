"""Finding the files of a dataset: which local file goes to which path in the dataset folder.

Mapping rule (stable, so re-running the same command maps every file to the same place): when the
user gives exactly one folder, its *contents* form the dataset; otherwise each folder keeps its own
name as a top-level folder and each file its name. The scan is a generator so that a tree of a
million files is enqueued in bounded batches, never held in memory.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from ..errors import ConfigError
from ..queue import NewFile

log = logging.getLogger(__name__)

# Never data: partial downloads, editor and OS droppings. Used by sync mode, offered to batch mode.
DEFAULT_IGNORES = ("*.tmp", "*.part", "*.partial", "~*", ".~lock*", ".DS_Store", "Thumbs.db",
                   "desktop.ini", "*.swp", "*.swx", ".*.swp", "*~", ".#*")


@dataclass(frozen=True)
class Source:
    """One thing the user asked to upload: a folder (recursively) or a single file."""

    root: Path       # local folder rclone reads from
    prefix: str      # folder under the dataset folder where it lands ("" for the dataset root)
    only: str | None = None  # a single file name under ``root``


@dataclass(frozen=True)
class Filters:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def wants(self, relpath: str) -> bool:
        if self._excluded.matches(relpath):
            return False
        return not self.include or self._included.matches(relpath)

    def prunes(self, reldir: str) -> bool:
        """A folder matching an exclude pattern is not walked at all."""
        return self._excluded.matches(reldir)

    @functools.cached_property
    def _excluded(self) -> _Patterns:
        return _Patterns(self.exclude)

    @functools.cached_property
    def _included(self) -> _Patterns:
        return _Patterns(self.include)


class _Patterns:
    """A pattern with '/' matches the whole relative path; one without matches any path component.
    The patterns are compiled together: one regular expression for the whole path, one for its
    components. (Sync mode's safety rescan matches every file against the 13 default ignores; one
    ``fnmatch`` call per pattern and component was 60 % of a rescan of 50,000 files, 1.25 s.)"""

    def __init__(self, patterns: Sequence[str]) -> None:
        whole: list[str] = []
        part: list[str] = []
        for pattern in (p.rstrip("/") for p in patterns):
            if "/" in pattern:
                whole += [fnmatch.translate(pattern.lstrip("/")), fnmatch.translate(pattern)]
            else:
                part.append(fnmatch.translate(pattern))
        self._whole = re.compile("|".join(whole)).match if whole else None
        self._part = re.compile("|".join(part)).match if part else None

    def matches(self, relpath: str) -> bool:
        if self._whole is not None and self._whole(relpath):
            return True
        return self._part is not None and any(self._part(c) for c in relpath.split("/"))


def plan_sources(paths: Sequence[str | os.PathLike[str]]) -> list[Source]:
    """Resolve the user's PATH arguments; a missing path is a usage error reported before anything."""
    resolved = [Path(p).expanduser().resolve() for p in paths]
    missing = [str(p) for p in resolved if not p.exists()]
    if missing:
        raise ConfigError("no such file or folder: " + ", ".join(missing), "Check the paths and try again.")
    if not resolved:
        raise ConfigError("nothing to upload", "Name at least one folder or file.")
    folders = [p for p in resolved if p.is_dir()]
    if len(resolved) == 1 and folders:
        return [Source(resolved[0], "")]
    names = [p.name for p in resolved]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ConfigError("several paths have the same name: " + ", ".join(clashes),
                          "Upload them as separate datasets, or put them in one folder.")
    return [Source(p, p.name) if p.is_dir() else Source(p.parent, "", only=p.name) for p in resolved]


def scan(sources: Sequence[Source], filters: Filters, errors: list[str] | None = None,
         skipped: list[str] | None = None) -> Iterator[NewFile]:
    """Every wanted regular file under the sources. Unreadable folders are logged and collected in
    ``errors`` (the rest of the tree goes on); symlinked folders are not followed (loops). What is
    neither (a FIFO, a socket, a device, a link to a folder) is skipped with a warning that says
    why, and collected in ``skipped`` ("path: why"), not silently: the user may have expected it in
    the dataset."""
    for source in sources:
        if source.only is not None:
            yield from _single(source, filters, errors, skipped)
        else:
            yield from _walk(source, filters, errors, skipped)


def _single(source: Source, filters: Filters, errors: list[str] | None,
            skipped: list[str] | None) -> Iterator[NewFile]:
    assert source.only is not None
    entry = _stat(source.root / source.only, errors)
    if entry is not None and not stat.S_ISREG(entry.st_mode):  # a FIFO named on the command line
        _skip(str(source.root / source.only), _kind(entry.st_mode), skipped)
    elif entry is not None and filters.wants(source.only):
        yield NewFile(str(source.root), source.only, source.only, entry.st_size, entry.st_mtime_ns)


def _stat(path: Path, errors: list[str] | None) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError as exc:
        _report(errors, f"{path}: {exc.strerror or exc}")
        return None


def _report(errors: list[str] | None, message: str) -> None:
    log.warning("skipped while scanning: %s", message)
    if errors is not None:
        errors.append(message)


_told: set[str] = set()  # said once per path per process: sync mode scans the same tree again


def _skip(path: str, why: str, skipped: list[str] | None) -> None:
    """A wanted name is not uploaded: collected, and said once (per process) with the reason."""
    if skipped is not None:
        skipped.append(f"{path}: {why}")
    if path not in _told:
        _told.add(path)
        log.warning("skipped %s: %s", path, why)


def skip_reason(entry: os.DirEntry[str]) -> str:
    """Why a directory entry that is neither a regular file nor a folder is not uploaded."""
    try:
        if entry.is_symlink():
            return "a link to a folder (links to folders are not followed; upload the folder itself)"
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        return exc.strerror or str(exc)
    return _kind(mode)


def _kind(mode: int) -> str:
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    return f"{kind}: only regular files are uploaded"


def _walk(source: Source, filters: Filters, errors: list[str] | None,
          skipped: list[str] | None) -> Iterator[NewFile]:
    stack = [""]
    while stack:
        reldir = stack.pop()
        try:
            with os.scandir(source.root / reldir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            _report(errors, f"{source.root / reldir}: cannot list folder ({exc.strerror or exc})")
            continue
        subdirs = []
        for entry in entries:
            rel = f"{reldir}/{entry.name}" if reldir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not filters.prunes(rel):
                        subdirs.append(rel)
                    continue
                if not filters.wants(rel):
                    continue
                if entry.is_symlink() and not os.path.exists(entry.path):
                    st = entry.stat(follow_symlinks=False)  # queued: it fails with its reason, and a
                elif not entry.is_file():                   # Retry succeeds once the target is back
                    _skip(entry.path, skip_reason(entry), skipped)
                    continue
                else:
                    st = entry.stat()
            except OSError as exc:
                _report(errors, f"{entry.path}: {exc.strerror or exc}")
                continue
            relpath = f"{source.prefix}/{rel}" if source.prefix else rel
            yield NewFile(str(source.root), rel, relpath, st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subdirs))


def batched(items: Iterator[NewFile], size: int) -> Iterator[list[NewFile]]:
    """Bounded chunks, so enqueueing a huge tree never holds it whole."""
    while chunk := list(islice(items, size)):
        yield chunk
