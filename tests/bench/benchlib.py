"""What both benchmarks need: a clean environment that runs the working tree's trayagent, the code's
revision for the results, per-process CPU time (including processes a tool leaves running as it
exits), and how far a ratio of medians can be trusted on a noisy machine."""

from __future__ import annotations

import compileall
import contextlib
import ctypes
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind: processes, servers and temp data are removed


def prepare_environment() -> None:
    """SIGTERM unwinds like Ctrl-C; subprocesses import the working tree's trayagent, whatever is
    installed; no RCLONE_*/TRAYAGENT_* setting of the caller leaks into the measurement."""
    signal.signal(signal.SIGTERM, _sigterm)
    # Byte-compiled like a pip install (pip compiles wheels at install time): with
    # PYTHONDONTWRITEBYTECODE set (CI sandboxes), every run would recompile every module (~30 ms).
    compileall.compile_dir(str(REPO / "trayagent"), quiet=1)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    for key in [k for k in os.environ if k.startswith(("RCLONE_", "TRAYAGENT_"))]:
        os.environ.pop(key)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip()
    except OSError:
        return ""


def proc_cpu(pid: int | None) -> float | None:
    """user+sys CPU seconds of one process (all its threads), None if it is gone."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of stat)


_PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def adopting_orphans() -> Iterator[None]:
    """Inside, processes orphaned below this one become its children instead of init's (Linux).

    ``trayagent upload`` ends without waiting for its rclone (it is signalled and left to exit), so
    rclone's CPU would never reach this process's RUSAGE_CHILDREN: the tool would look cheaper than
    it is. Adopted, rclone is collected with ``reap`` and counted."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    if libc is None or libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot become a child subreaper (Linux only)")
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def reap(pid: int, timeout: float = 10.0) -> float | None:
    """Wait for an adopted child to exit; its user+sys CPU seconds (now also in RUSAGE_CHILDREN).
    None if it is not this process's child (its parent waited for it: its CPU is already counted
    with the parent's); TimeoutError if it still runs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, _, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got:
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} still runs {timeout:.0f} s after its parent ended")
        time.sleep(0.005)


def ratio_interval(reference: Sequence[float], tool: Sequence[float], resamples: int = 5000,
                   seed: int = 1) -> tuple[float, float] | None:
    """95 % bootstrap interval of median(reference) / median(tool), in rounds.

    The tools ran interleaved, one sample each per round, so a round is resampled whole: what the
    machine was doing then hit both. Single runs here spread by more than the 5 % a target allows,
    and a ratio of two medians says nothing about whether it would hold on the next run; its
    interval does. None for fewer than 5 rounds."""
    n = min(len(reference), len(tool))
    if n < 5:
        return None
    rnd = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        rounds = [rnd.randrange(n) for _ in range(n)]
        ratios.append(statistics.median(reference[i] for i in rounds) / statistics.median(tool[i] for i in rounds))
    ratios.sort()
    return ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]


RESULTS = REPO / "build" / "bench-results"


def write_results(name: str, doc: dict[str, object], total_seconds: float) -> Path:
    """build/bench-results/<name>.json (git-ignored), announced with the run's total time."""
    import json

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nresults: {out.relative_to(REPO)} (total {total_seconds:.0f} s)")
    return out


def run_main(main: Callable[[], int], cleaned: str) -> NoReturn:
    """Exit with main's code; Ctrl-C / SIGTERM exit 130 after the cleanup has unwound."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"\ninterrupted; {cleaned} were cleaned up", file=sys.stderr)
        sys.exit(130)
