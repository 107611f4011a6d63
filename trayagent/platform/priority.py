"""Background work at a lower CPU priority. One question, answered per platform.

Checksums are computed beside the upload, and on a beamline PC the acquisition software and rclone
should come first. Measured here with a WebDAV server on the same two cores (README "Benchmarks"): the
BLAKE3 hash of a 1 GiB file at normal priority lengthened the upload by ~30 ms; at nice 10 the median upload
took 2.55 s instead of 2.67 s while the host was busy (36 rounds; rclone copy 2.62 s), and the same time
while it was quiet (30 rounds). A lower priority, not the lowest: a thread under Linux's idle policy runs
only on idle cores and could hold verification up indefinitely on a busy PC, and an unprivileged thread
cannot raise its priority again. At nice 10 a thread still gets about a tenth of a busy core.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

BACKGROUND_NICE = 10

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import ctypes

    _THREAD_PRIORITY_BELOW_NORMAL = -1
    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

    def lower_current_thread() -> None:
        """Windows thread priorities are per thread by design."""
        if not _kernel32.SetThreadPriority(_kernel32.GetCurrentThread(), _THREAD_PRIORITY_BELOW_NORMAL):
            log.debug("could not lower the priority of thread %s: error %d", threading.current_thread().name,
                      ctypes.get_last_error())

elif sys.platform.startswith("linux"):

    def lower_current_thread() -> None:
        """On Linux the nice value belongs to each thread (setpriority(2) with the thread's id)."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except OSError as exc:
            log.debug("could not lower the priority of thread %s: %s", threading.current_thread().name, exc)

else:  # pragma: no cover - macOS: nice is per process there, and the whole agent must not slow down

    def lower_current_thread() -> None:
        """Left at normal priority."""
