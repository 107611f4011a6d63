"""What both benchmarks need: a clean environment that runs the working tree's trayagent, the code's
revision for the results, and per-process CPU time from /proc."""

from __future__ import annotations

import compileall
import os
import signal
import subprocess
import sys
from collections.abc import Callable
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
