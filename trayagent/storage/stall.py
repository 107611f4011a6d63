"""Noticing that storage went away in the middle of a copy.

Why: when the server dies mid-batch, rclone keeps the job alive through its own retries (low-level
retries, each behind its pacer's growing back-off, then the job's retries of the whole copy): a
WebDAV server killed mid-upload went unnoticed for 85-92 s, and plain ``rclone copy`` took 191 s to
give up on 11 files. All that time the icon said "uploading". A job whose counters stand still is
asked about: storage is probed with one cheap listing and no retries, and if that listing cannot
reach storage either, the job is stopped. The engine then does what it does for any unreachable
storage: waits with back-off, says so, and retries the batch once storage answers. A slow server
that still answers is left alone, however slow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..errors import StorageError

log = logging.getLogger(__name__)

QUIET_SECONDS = 5.0  # a job whose counters stood still this long: is storage still there?
LOOK_EVERY = 1.0  # how often the job's counters are read (at most: the poll itself runs every 0.25 s)


class StallWatch:
    """The ``watchdog`` of one rclone job (see ``RcloneDaemon.wait_job``): returns why the job
    should be stopped, or None while it progresses or storage answers."""

    def __init__(self, counters: Callable[[int], tuple[int, ...]], probe: Callable[[], None],
                 quiet: float = QUIET_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._counters = counters  # jobid -> (bytes, checks, transfers, errors...): anything that moves
        self._probe = probe  # raises StorageError when storage cannot be reached
        self._quiet = quiet
        self._clock = clock
        self._last: tuple[int, ...] | None = None
        self._moved_at = clock()
        self._looked_at = -LOOK_EVERY

    def __call__(self, jobid: int) -> str | None:
        now = self._clock()
        if now - self._looked_at < LOOK_EVERY:
            return None
        self._looked_at = now
        counters = self._counters(jobid)
        if counters != self._last:
            self._last, self._moved_at = counters, now
            return None
        if now - self._moved_at < self._quiet:
            return None
        self._moved_at = now  # the next probe only after another quiet spell
        try:
            self._probe()
        except StorageError as exc:
            if exc.transient:
                log.warning("storage stopped answering during a copy (%s): the copy is stopped and "
                            "retried once storage is back", exc.message)
                return str(getattr(exc.__cause__, "error", "") or exc.message)  # rclone's words, for ``explain``
            log.debug("storage probe during a quiet copy: %s", exc.message)
        return None
