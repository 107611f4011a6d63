"""Idle cost of the agent after use (issue 19: "137 MB after an hour, 67 MB fresh; stay within 80 MB").

Run by hand (not in the suite):  python3 tests/bench/bench_idle_memory.py --minutes 60 [--tray]

A headless agent (embedded local storage and catalogue, a private TRAYAGENT_HOME) is measured fresh,
then used the way a beamline hour uses it: every ``--every`` seconds a dataset of ``--files`` small files
is handed to it through the control API, while an Activity window's long poll (POST /api/status/wait)
runs all the time; then it idles for ``--idle`` seconds. The agent's VmRSS and VmHWM come from /proc
(rclone is a separate process and reported apart). One line of figures per phase, and a verdict
against the 80 MB target.

With ``--tray`` the agent runs as on a desktop, with its GTK tray icon: the e2e tests' private desktop
(tests/e2e/desktop_session.py: Xvfb, a private session bus, trayer as the system tray, a notification
recorder) is started first and the agent is ``trayagent agent`` without ``--headless`` on that display.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import prepare_environment  # noqa: E402

TARGET_MB = 80.0


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


class Api:
    def __init__(self, home: Path) -> None:
        info = json.loads((home / "run" / "agent.json").read_text())
        self.base = f"http://127.0.0.1:{info['port']}"
        self.token = (home / "run" / "agent.token").read_text().strip()

    def call(self, path: str, body: dict[str, Any] | None = None, timeout: float = 90) -> Any:
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())


def start_agent(home: Path, desktop_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """The headless agent, or (``desktop_env``) the agent with its tray icon on that desktop."""
    env = {**(desktop_env or os.environ), "TRAYAGENT_HOME": str(home)}
    args = [] if desktop_env is not None else ["--headless"]
    proc = subprocess.Popen([sys.executable, "-m", "trayagent.cli", "agent", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            Api(home).call("/api/ping")
            return proc
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the agent did not start")


def make_dataset(root: Path, n: int, files: int) -> Path:
    folder = root / f"run{n:03d}"
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"frame_{i:04d}.dat").write_bytes(os.urandom(20_000))
    return folder


def activity_window(api: Api, stop: threading.Event) -> None:
    """What an open Activity window does: wait for the status to change, again and again."""
    version = ""
    while not stop.is_set():
        try:
            version = api.call("/api/status/wait", {"since": version, "timeout": 25})["version"]
        except OSError:
            time.sleep(1)


def report(phase: str, pid: int) -> float:
    rss, hwm = rss_mb(pid)
    rclone = sum(rss_mb(c)[0] for c in children(pid))
    print(f"{phase:<28} agent RSS {rss:6.1f} MB  peak {hwm:6.1f} MB  | rclone {rclone:6.1f} MB", flush=True)
    return rss


def start_desktop(base: Path) -> Any:
    """The e2e tests' private desktop (Xvfb, session bus, trayer, notification recorder)."""
    tests = Path(__file__).resolve().parent.parent
    for sub in ("support", "e2e"):
        if str(tests / sub) not in sys.path:
            sys.path.insert(0, str(tests / sub))
    from desktop_session import DesktopSession

    return DesktopSession(base).start()


def tray_icon_docked(desktop: Any) -> bool:
    """True once a trayagent window is mapped inside trayer's panel (the icon is really in the tray)."""
    from desktop_session import descendants, top_windows

    panels = [w for w in top_windows(desktop.display) if w["class"] == ("panel", "trayer") and w["mapped"]]
    return any(w["mapped"] and w["class"] and w["class"][0] == "trayagent"
               for p in panels for w in descendants(desktop.display, p["id"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="time of use (default 60)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between datasets (default 30)")
    parser.add_argument("--files", type=int, default=200, help="files per dataset (default 200)")
    parser.add_argument("--idle", type=float, default=120.0, help="idle seconds after use (default 120)")
    parser.add_argument("--tray", action="store_true",
                        help="run the agent with its GTK tray icon under Xvfb (as the e2e tests do), not headless")
    args = parser.parse_args()
    prepare_environment()
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    home = work / "home"
    desktop = start_desktop(work / "desktop") if args.tray else None
    stop = threading.Event()
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = start_agent(home, desktop.env() if desktop is not None else None)
        api = Api(home)
        if desktop is not None:
            deadline = time.monotonic() + 30
            while not tray_icon_docked(desktop):
                if time.monotonic() > deadline:
                    raise SystemExit("the tray icon did not dock in the tray")
                time.sleep(0.2)
            print("agent with its GTK tray icon, docked in trayer on Xvfb", flush=True)
        time.sleep(5)
        fresh = report("fresh (5 s after start)", proc.pid)
        threading.Thread(target=activity_window, args=(api, stop), daemon=True).start()
        end, n = time.monotonic() + args.minutes * 60, 0
        while time.monotonic() < end:
            data = make_dataset(work / "data", n, args.files)
            api.call("/api/upload", {"paths": [str(data)], "dataset": data.name})
            n += 1
            time.sleep(max(0.0, min(args.every, end - time.monotonic())))
            shutil.rmtree(data, ignore_errors=True)
        report(f"after {args.minutes:g} min, {n} datasets", proc.pid)
        time.sleep(args.idle)
        idle = report(f"after {args.idle:g} s idle", proc.pid)
        print(f"fresh {fresh:.1f} MB, idle after use {idle:.1f} MB: "
              f"{'within' if idle <= TARGET_MB else 'OVER'} the {TARGET_MB:.0f} MB target", flush=True)
        return 0 if idle <= TARGET_MB else 1
    finally:
        stop.set()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if desktop is not None:
            desktop.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
