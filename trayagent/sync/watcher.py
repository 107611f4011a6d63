"""Watching folders: watchdog events turned into settler reports, with the failure modes handled.

inotify is preferred (close events, no polling). Its two silent failure modes are made loud: a
queue overflow (watchdog rebuilds its watches and logs a warning, but the events are gone) asks
for a rescan; the per-user watch limit (ENOSPC) falls back to polling for that tree. The polling
observer serves SMB/NFS mounts, where inotify does not see other machines' writes.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .settle import Settler

log = logging.getLogger(__name__)

Accept = Callable[[Path], bool]  # is this file part of the dataset (filters, ignores)?


class _Handler(FileSystemEventHandler):
    def __init__(self, settler: Settler, accept: Accept, on_folder: Callable[[Path], None]) -> None:
        self.settler = settler
        self.accept = accept
        self.on_folder = on_folder
        self.close_events = False  # set when the observer reports closes (inotify)

    def dispatch(self, event: FileSystemEvent) -> None:
        src = Path(os.fsdecode(event.src_path))
        if isinstance(event, FileClosedEvent):
            self._file(src, closed=True)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            # Only a write seen live promises a close event. A "created" file may have been moved
            # in from outside the tree, and watchdog's synthetic events (a folder that appeared)
            # describe files closed long ago: those are judged by the quiet period.
            self._file(src, closed=False, live=isinstance(event, FileModifiedEvent) and not event.is_synthetic)
        elif isinstance(event, FileMovedEvent):
            # renamed or moved into place (from outside the tree too: inotify's IN_MOVED_TO, reported
            # with an empty source by the full-events observer): complete, no quiet period. Moved out:
            # an empty destination, as a deletion.
            if event.src_path:
                self.settler.forget(src)
            if event.dest_path:
                self._file(Path(os.fsdecode(event.dest_path)), closed=True)
        elif isinstance(event, FileDeletedEvent):
            self.settler.forget(src)
            if self.accept(src):
                log.info("%s was deleted locally; its copy in storage is kept", src)
        elif isinstance(event, DirCreatedEvent) or (isinstance(event, DirMovedEvent) and event.dest_path):
            dest = Path(os.fsdecode(getattr(event, "dest_path", "") or event.src_path))
            self.on_folder(dest)  # a tree moved in arrives as one event: look inside

    def _file(self, path: Path, closed: bool, live: bool = True) -> None:
        if not self.accept(path):
            return
        if closed:
            self.settler.closed(path)
        else:
            self.settler.touch(path, wait_for_close=self.close_events and live)


def _event_observer() -> BaseObserver:
    """The platform's event observer; on Linux with full events: a file moved in from outside the
    watched tree arrives as a move (IN_MOVED_TO), not as a 'created' file that might still be
    written, so it counts as complete at once."""
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver
        return InotifyObserver(generate_full_events=True)
    return Observer()


class _OverflowAlarm(logging.Handler):
    """watchdog reports an inotify overflow only as a log line: turn it into a rescan request."""

    def __init__(self, on_overflow: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow(record.getMessage())


_limit_listeners: list[Callable[[str], None]] = []


def _install_watch_limit_probe() -> None:
    """watchdog 7 swallows ENOSPC/EMFILE when adding watches for *sub-folders* (only the root's
    failure reaches us), so a big tree would be silently half-watched. Observe every add instead."""
    try:
        from watchdog.observers.inotify_c import InotifyFD
    except (ImportError, OSError):  # not Linux
        return
    original = InotifyFD.add_callback
    if getattr(original, "trayagent_probe", False):
        return

    def add_callback(self: InotifyFD, path: bytes, *args: object, **kwargs: object) -> object:
        try:
            return original(self, path, *args, **kwargs)  # type: ignore[arg-type]
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                for listener in _limit_listeners:
                    listener(os.fsdecode(path))
            raise

    add_callback.trayagent_probe = True  # type: ignore[attr-defined]
    InotifyFD.add_callback = add_callback  # type: ignore[method-assign,assignment]


_install_watch_limit_probe()


class FolderWatcher:
    """Watches one folder tree. ``mode`` says what is in use: inotify/native, polling, or none."""

    def __init__(self, root: Path, settler: Settler, accept: Accept, *, polling: bool,
                 on_folder: Callable[[Path], None], on_trouble: Callable[[str], None],
                 on_limit: Callable[[], None] = lambda: None) -> None:
        self.root = root
        self.polling = polling
        self.on_trouble = on_trouble
        self.on_limit = on_limit  # told when ``limit_hit`` is set: the owner falls back to polling
        self.handler = _Handler(settler, accept, on_folder)
        self.observer: BaseObserver | None = None
        self.mode = "none"
        self._alarm = _OverflowAlarm(lambda msg: on_trouble(f"event queue overflow under {root}: {msg}"))
        self._lock = threading.Lock()
        self.limit_hit = threading.Event()  # a sub-folder could not be watched: poll this tree
        _limit_listeners.append(self._on_limit)

    def _on_limit(self, path: str) -> None:
        if Path(path).is_relative_to(self.root) and not self.polling:
            self.limit_hit.set()
            self.on_limit()

    def fall_back_to_polling(self) -> bool:
        """After a watch-limit hit: replace the event observer of this tree by polling."""
        if not self.limit_hit.is_set() or self.polling:
            return False
        self.stop()
        self.polling = True
        self.limit_hit.clear()
        started = self.start()
        self.on_trouble(f"inotify watch limit reached under {self.root}: polling this tree instead "
                        "(raise fs.inotify.max_user_watches to use events)")
        return started

    def start(self) -> bool:
        """Start watching; False if the folder is not there (the caller retries later)."""
        with self._lock:
            if self.observer is not None:
                return True
            if not self.root.is_dir():
                return False
            observer = self._start(PollingObserver() if self.polling else _event_observer())
            if observer is None and not self.polling:
                observer = self._start(PollingObserver())
                if observer is not None:
                    self.on_trouble(f"inotify watch limit reached under {self.root}: polling this tree "
                                    "instead (raise fs.inotify.max_user_watches to use events)")
            self.observer = observer
            self.mode = "none" if observer is None else ("polling" if isinstance(observer, PollingObserver)
                                                         else "events")
            self.handler.close_events = self.mode == "events" and sys.platform.startswith("linux")
            logging.getLogger("watchdog.observers.inotify").addHandler(self._alarm)
        if self.limit_hit.is_set():  # raised while watches were added during start()
            return self.fall_back_to_polling()
        return observer is not None

    def _start(self, observer: BaseObserver) -> BaseObserver | None:
        try:
            observer.schedule(self.handler, str(self.root), recursive=True)
            observer.start()
            return observer
        except OSError as exc:
            observer.stop()
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                log.warning("cannot watch %s with events: %s", self.root, exc)
                return None
            raise

    def alive(self) -> bool:
        return self.observer is not None and self.observer.is_alive() and self.root.is_dir()

    def close(self) -> None:
        self.stop()
        if self._on_limit in _limit_listeners:
            _limit_listeners.remove(self._on_limit)

    def stop(self) -> None:
        with self._lock:
            observer, self.observer = self.observer, None
            self.mode = "none"
        logging.getLogger("watchdog.observers.inotify").removeHandler(self._alarm)
        if observer is not None:
            observer.stop()
            if observer.is_alive() and threading.current_thread() is not observer:
                observer.join(5)


class Doorbell:
    """A folder another process "rings" (touches a file in) to wake this one at once. It is how a
    request written into the queue database (``trayagent sync --finalize NAME``) reaches the process
    that runs the session without that process polling the database: an idle session sleeps."""

    FILE = "ring"

    def __init__(self, folder: Path, on_ring: Callable[[], None]) -> None:
        self.folder = folder
        self.on_ring = on_ring
        self._observer: BaseObserver | None = None

    def start(self) -> bool:
        """Listen; False if the folder cannot be watched (the owner then polls)."""
        bell = self

        class _Ringing(FileSystemEventHandler):
            def dispatch(self, event: FileSystemEvent) -> None:
                bell.on_ring()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            observer = Observer()
            observer.schedule(_Ringing(), str(self.folder), recursive=False)
            observer.start()
        except OSError as exc:
            log.info("cannot watch %s for requests (%s); looking for them every few seconds", self.folder, exc)
            return False
        self._observer = observer
        return True

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if threading.current_thread() is not observer:
                observer.join(5)

    @classmethod
    def ring(cls, folder: Path) -> None:
        """Wake every process listening on ``folder`` (best effort: they also look now and then)."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / cls.FILE).write_bytes(b"")
        except OSError as exc:
            log.info("could not ring %s (%s); the request is seen at the next look", folder, exc)
