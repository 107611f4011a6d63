"""Lanes: rclone jobs sent from a thread of their own, beside the engine's loop.

The big-file lane: small files keep flowing while one big file uploads.

Why: the engine waits for the rclone job of a batch before it sends the next. A batch holding a
multi-GiB file held every small file closed after it for the whole upload (a sync session's p99
went from 30 ms to 5-8 s beside a 3 GiB file). A big file now goes in a job of its own, sent from
this lane's thread, while the engine's loop keeps sending small batches; the big file takes one of
the ``[transfer] transfers`` slots, the small batches the rest.

Durability is the queue's as before: the file is marked ``uploading`` before its job starts and
``uploaded`` after it, in the same calls the engine makes for any batch, so a crash sends it again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

BIG_FILE_BYTES = 64 << 20  # from this size a file goes to the big lane


class Lane:
    """Runs one send at a time in a thread; an error it raised is re-raised in the engine's thread
    by ``check``."""

    def __init__(self, on_done: Callable[[], None], name: str = "big-file-lane") -> None:
        self._on_done = on_done
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, send: Callable[[], None]) -> None:
        """Run ``send`` (files already marked ``uploading`` by the caller) in the lane's thread."""
        with self._lock:
            if self.busy:
                raise RuntimeError(f"the {self._name} is busy")
            self._thread = threading.Thread(target=self._run, args=(send,), daemon=True, name=self._name)
            self._thread.start()

    def _run(self, send: Callable[[], None]) -> None:
        try:
            send()
        except BaseException as exc:  # handed to the engine's thread, which reports it
            log.debug("%s: %s", self._name, exc)
            self._error = exc
        finally:
            self._on_done()

    def check(self) -> None:
        """Raise, in the caller's thread, what the lane's last send raised."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def join(self) -> None:
        """Wait for the file in flight (the engine is stopping; its job is not abandoned midway)."""
        thread = self._thread
        if thread is not None:
            thread.join()
        self.check()
