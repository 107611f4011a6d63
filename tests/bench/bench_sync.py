#!/usr/bin/env python3
"""Sync benchmark: how soon a finished file is safe in storage, and what an idle session costs.

Usage::

    python3 tests/bench/bench_sync.py [--quick] [--parts latency,idle]

1. Latency. ``trayagent sync DIR --dataset lat`` runs against a loopback WebDAV server (wsgidav/cheroot,
   private keyring). A writer thread in this process writes ``--file-kib`` (1 MiB) files into DIR at
   ``--rate`` (10) files/s for ``--seconds`` (60; quick 15) s, each written then closed, and records the
   close time. A poller thread reads the queue database (TRAYAGENT_HOME/data/queue.sqlite, read-only;
   WAL lets it read while trayagent writes) every ~20 ms and records when each file is first seen
   queued, uploading, verified and registered. ``updated`` is the time of the row's last state change,
   so a file caught in state ``verified`` gives its exact verification time; one caught only after its
   registration gives an upper bound (min of the poll time and the registration time). Measured twice:
   with close events (inotify IN_CLOSE_WRITE, the Linux default) and in the quiet-period mode
   (``[sync] polling = true``, ``quiet_seconds = 2``: no close events, a file is complete when it has not
   changed for 2 s). Targets (close events): p50 <= 0.5 s, p99 <= 2 s from close to verified.

2. Idle cost. A tree of ``--tree-files`` tiny (1-byte) files in ``--tree-dirs`` folders (100,000 in 1,000;
   quick 20,000 in 200) is synced with the embedded default storage (no config file: [storage] defaults,
   local catalogue). Once every file is registered (the initial upload is timed and reported too), the
   session is left idle for ``--idle-seconds`` (30) and the CPU time (utime+stime from /proc/<pid>/stat)
   of the trayagent process and of its ``rclone rcd`` child is measured, plus the trayagent RSS (VmRSS,
   sampled every second; VmHWM is the peak over the whole run). Each thread's wake-ups (voluntary
   context switches per second, by thread name: the trayagent process is started with
   ``threadnames/sitecustomize.py`` on its path, which names its threads in /proc) are counted over
   the same window. Targets (issue 24): RSS <= 80 MB, CPU <= 0.1 % of one core, trayagent's rclone
   at most a bare ``rclone rcd`` + 20 MB.

Results are printed as a table and written as JSON to build/bench-results/sync-<timestamp>.json, next
to the trayagent logs of each run. Processes, servers, keyring and temp data are removed at the end,
also on errors, Ctrl-C or SIGTERM. Not a pytest module (not named test_*.py).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS / "support"))  # run as a script: the servers and the CLI driver

from agentctl import Trayagent
from benchlib import CLK_TCK, git_commit, prepare_environment, proc_cpu, run_main, write_results
from servers import SessionKeyring, WebDAVServer, _die_with_parent, random_secret, rclone_binary

KiB = 1 << 10
MiB = 1 << 20
POLL_SECONDS = 0.02

TARGET_P50 = 0.5      # s, close events
TARGET_P99 = 2.0      # s, close events
TARGET_RSS_MB = 80.0
TARGET_IDLE_CPU_PCT = 0.1  # issue 24: an idle session over 50,000 files, at most 0.1 % of one core
TARGET_RCLONE_OVER_BARE_MB = 20.0  # issue 24: trayagent's idle rclone, at most a bare `rclone rcd` + 20 MB


# ---------------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------------

def proc_status(pid: int | None) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads from /proc/<pid>/status."""
    out: dict[str, int] = {}
    if not pid:
        return out
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def thread_stats(pid: int | None) -> dict[int, tuple[str, int, float]]:
    """Per thread of ``pid``: (name, voluntary context switches, CPU seconds). A voluntary switch is
    the thread going to sleep (a wait, a read): over an idle window, its wake-ups."""
    out: dict[int, tuple[str, int, float]] = {}
    if not pid:
        return out
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            name = (task / "comm").read_text().strip()
            switches = 0
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    switches = int(line.split()[1])
            try:  # time on the CPU in ns (the stat file counts in 10 ms ticks: too coarse for idle)
                cpu = int((task / "schedstat").read_text().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
            out[int(task.name)] = (name, switches, cpu)
    return out


def thread_wakeups(before: dict[int, tuple[str, int, float]], after: dict[int, tuple[str, int, float]],
                   seconds: float) -> list[dict[str, Any]]:
    """Wake-ups per second and CPU per thread over a window, busiest first (threads alive at its end)."""
    rows = []
    for tid, (name, switches, cpu) in after.items():
        _, s0, c0 = before.get(tid, (name, 0, 0.0))
        rows.append({"tid": tid, "name": name, "wakeups_per_s": round((switches - s0) / seconds, 2),
                     "cpu_ms": round(1000 * (cpu - c0), 2)})
    return sorted(rows, key=lambda r: (-r["wakeups_per_s"], r["name"]))


def children(pid: int) -> list[int]:
    """Direct children of pid (from /proc/<pid>/task/*/children, else pgrep -P)."""
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        pass
    if not kids and shutil.which("pgrep"):
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
        kids = [int(x) for x in out.split()]
    return sorted(set(kids))


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class SyncProcess:
    """``trayagent sync`` as a subprocess with a private TRAYAGENT_HOME; stopped like Ctrl-C (SIGTERM)."""

    def __init__(self, ta: Trayagent, folder: Path, dataset: str, name_threads: bool = False) -> None:
        self.ta = ta
        self.folder = folder
        self.dataset = dataset
        self.name_threads = name_threads  # each thread named in /proc (threadnames/sitecustomize.py)
        self.proc: subprocess.Popen[bytes] | None = None
        self.rclone_pid: int | None = None
        self.out_path = ta.home / "sync-stdout.txt"

    def start(self) -> None:
        self.ta.home.mkdir(parents=True, exist_ok=True)
        env = self.ta.env()
        if self.name_threads:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE / "threadnames"), env.get("PYTHONPATH")) if p)
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "trayagent.cli", "sync", str(self.folder),
                                          "--dataset", self.dataset], stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env,
                                         preexec_fn=_die_with_parent)  # noqa: PLW1509 (dies with the bench)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def log_path(self) -> Path:
        """This process's own log file (each trayagent process writes COMMAND-TIME-PID.log)."""
        found = sorted((self.ta.home / "logs").glob(f"*-{self.pid}.log"))
        return found[-1] if found else self.ta.home / "logs" / f"not-yet-{self.pid}.log"

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"trayagent sync exited early ({self.proc.returncode}):\n"
                               f"{self.output()[-2000:]}\n"
                               f"log:\n{self.ta.log_text[-3000:]}")

    def output(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""

    def find_rclone(self, timeout: float = 30) -> int | None:
        """The ``rclone rcd`` child (started once storage is first reached)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid:
            self.check_alive()
            for kid in children(self.pid):
                if proc_name(kid).startswith("rclone"):
                    self.rclone_pid = kid
                    return kid
            time.sleep(0.2)
        return None

    def stop(self) -> int | None:
        """SIGTERM (trayagent treats it as Ctrl-C), then SIGKILL; the rclone child is made sure of."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(10)
        if self.rclone_pid and proc_name(self.rclone_pid).startswith("rclone"):
            with contextlib.suppress(OSError):  # only the child we saw; normally trayagent stopped it
                os.kill(self.rclone_pid, signal.SIGKILL)
        return rc


def queue_db(home: Path) -> Path:
    return home / "data" / "queue.sqlite"


def connect_ro(path: Path, timeout: float = 30) -> sqlite3.Connection:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False)


def counts(db: sqlite3.Connection) -> dict[str, int]:
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())
    except sqlite3.OperationalError:
        return {}


# ---------------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float | None:
    """Percentile with linear interpolation between closest ranks."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": round(min(values), 4), "p50": round(pct(values, 50) or 0, 4),
            "p90": round(pct(values, 90) or 0, 4), "p99": round(pct(values, 99) or 0, 4),
            "max": round(max(values), 4), "mean": round(statistics.fmean(values), 4)}


# ---------------------------------------------------------------------------------------------------
# 1. latency
# ---------------------------------------------------------------------------------------------------

@dataclass
class Seen:
    queued: float | None = None        # first seen in the queue (exact if caught in 'pending')
    queued_exact: bool = False
    uploading: float | None = None     # poll time first seen 'uploading'
    verified: float | None = None      # exact if caught in 'verified', else an upper bound
    verified_exact: bool = False
    registered: float | None = None    # exact ('updated' of a registered row)


class QueuePoller(threading.Thread):
    """Reads the queue every POLL_SECONDS and notes when each file reaches each state."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(name="queue-poller", daemon=True)
        self.db_path = db_path
        self.seen: dict[str, Seen] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.polls = 0
        self.poll_gaps: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            db = connect_ro(self.db_path)
            last = None
            while not self.stop_event.is_set():
                try:
                    rows = db.execute("SELECT relpath, state, updated FROM files").fetchall()
                except sqlite3.OperationalError:  # table not created yet, or busy
                    rows = []
                now = time.time()
                if last is not None:
                    self.poll_gaps.append(now - last)
                last = now
                self.polls += 1
                with self.lock:
                    for relpath, state, updated in rows:
                        self._note(relpath, state, updated, now)
                self.stop_event.wait(POLL_SECONDS)
            db.close()
        except Exception as exc:  # noqa: BLE001 (reported by the main thread)
            self.error = exc

    def _note(self, relpath: str, state: str, updated: float, now: float) -> None:
        s = self.seen.setdefault(relpath, Seen())
        if s.queued is None:
            s.queued, s.queued_exact = (updated, True) if state == "pending" else (now, False)
        if state == "uploading" and s.uploading is None:
            s.uploading = now
        if state == "verified" and (s.verified is None or not s.verified_exact):
            s.verified, s.verified_exact = updated, True
        if state == "registered":
            if s.verified is None:
                s.verified, s.verified_exact = min(now, updated), False
            if s.registered is None:
                s.registered = updated

    def snapshot(self) -> dict[str, Seen]:
        with self.lock:
            return {k: Seen(**vars(v)) for k, v in self.seen.items()}


def write_file(path: Path, payload: bytes, i: int) -> float:
    """Write, close; returns the close time (epoch seconds, like the queue's ``updated``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, i.to_bytes(8, "little"))  # every file differs
        view = memoryview(payload)[8:]
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)
    return time.time()


def wait_verified(poller: QueuePoller, names: list[str], sync: SyncProcess, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sync.check_alive()
        if poller.error:
            raise RuntimeError(f"queue poller failed: {poller.error!r}")
        seen = poller.snapshot()
        if all(n in seen and seen[n].verified is not None for n in names):
            return True
        time.sleep(0.1)
    return False


def run_latency(mode: str, server: WebDAVServer, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One latency run: mode 'events' (close events) or 'polling' (quiet-period mode)."""
    home = base / f"home-lat-{mode}"
    folder = base / f"lat-{mode}"
    folder.mkdir(parents=True)
    ta = Trayagent(home)
    sync_cfg: dict[str, Any] = {"quiet_seconds": args.quiet_seconds}
    if mode == "polling":
        sync_cfg["polling"] = True
    ta.use_webdav(server, storage={"root": f"{mode}/{{dataset}}"}, sync=sync_cfg)
    payload = os.urandom(args.file_kib * KiB)
    n_files = round(args.seconds * args.rate)
    names = [f"f_{i:05d}.bin" for i in range(n_files)]
    sync = SyncProcess(ta, folder, "lat")
    poller = QueuePoller(queue_db(home))
    result: dict[str, Any] = {"mode": mode, "config": {"sync": sync_cfg}, "files": n_files,
                              "file_bytes": len(payload), "rate": args.rate, "seconds": args.seconds}
    try:
        t_start = time.time()
        sync.start()
        poller.start()
        # warm-up: rclone rcd up, storage reached, dataset catalogued, first batch done
        write_file(folder / "warmup.bin", payload, 0)
        if not wait_verified(poller, ["warmup.bin"], sync, 120):
            raise RuntimeError(f"{mode}: the warm-up file was not verified within 120 s\n"
                               f"{ta.log_text[-3000:]}")
        result["startup_to_first_verified_s"] = round(time.time() - t_start, 3)
        sync.find_rclone(10)
        cpu0 = (proc_cpu(sync.pid) or 0.0, proc_cpu(sync.rclone_pid) or 0.0)
        up_s = result["startup_to_first_verified_s"]
        print(f"  {mode}: session up, warm-up file verified {up_s:.1f} s after "
              f"start; writing {n_files} x {len(payload) // KiB} KiB at {args.rate:g} files/s", flush=True)

        closes: dict[str, float] = {}
        behind: list[float] = []
        big = BigFile(base / f"big-{mode}", folder, args.big_mib) if args.big_mib else None
        t0 = time.monotonic()
        for i, name in enumerate(names):
            if big is not None and not big.moved_at and time.monotonic() - t0 >= 2.0:
                big.move_in()
            due = t0 + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif -delay > 0.005:  # started more than 5 ms late (the writer could not keep the rate)
                behind.append(-delay)
            closes[name] = write_file(folder / name, payload, i + 1)
        write_seconds = time.monotonic() - t0
        result["writer"] = {"seconds": round(write_seconds, 3), "late_starts": len(behind),
                            "max_late_s": round(max(behind), 3) if behind else 0.0}
        done = wait_verified(poller, names, sync, args.drain_timeout)
        drain = time.monotonic() - t0 - write_seconds
        if big is not None:
            big_ok = wait_verified(poller, [big.name], sync, args.drain_timeout)
            snap = poller.snapshot()
            big_verified = snap[big.name].verified if big_ok else None
            during = {n: s.verified for n in names if big.moved_at <= closes[n] <= (big_verified or 0)
                      and (s := snap.get(n)) and s.verified}
            result["big_file"] = {"mib": args.big_mib, "moved_in": big.moved_at,
                                  "verified_after_move_s": round(big_verified - big.moved_at, 3)
                                  if big_verified else None,
                                  "small_closed_during": len(during),
                                  "their_close_to_verified": summary([v - closes[n] for n, v in during.items()]),
                                  "slowest_of_them_before_big": bool(during and big_verified
                                                                     and max(during.values()) < big_verified)}
        cpu1 = (proc_cpu(sync.pid) or 0.0, proc_cpu(sync.rclone_pid) or 0.0)
        time.sleep(0.5)  # let the last registrations land for the register column
        seen = poller.snapshot()
        result["drain_after_last_close_s"] = round(drain, 3)
        result["all_verified"] = done
        result["cpu_seconds"] = {"trayagent": round(cpu1[0] - cpu0[0], 2),
                                 "rclone": round(cpu1[1] - cpu0[1], 2),
                                 "window_s": round(write_seconds + drain, 2)}
        result["rss_mb"] = round(proc_status(sync.pid).get("VmRSS", 0) / 1024, 1)
    finally:
        poller.stop_event.set()
        rc = sync.stop()
        poller.join(5)
        result["exit_code"] = rc
    result.update(analyse(names, closes, seen, poller, t0_epoch=min(closes.values())))
    copied = copied_times(ta.log_text)
    result["close_to_rclone_copied"] = summary([copied[n] - closes[n] for n in names if n in copied])
    result["rclone_copied_to_verified"] = summary(
        [v - copied[n] for n in names
         if n in copied and (v := seen[n].verified if n in seen else None) is not None])
    t_first = min(closes.values())
    split: dict[int, tuple[list[float], list[float]]] = {}
    for n in names:
        v = seen[n].verified if n in seen else None
        if n in copied and v is not None:
            a, b = split.setdefault(int((closes[n] - t_first) // 10), ([], []))
            a.append(copied[n] - closes[n])
            b.append(v - copied[n])
    result["split_p50_by_10s_of_writing"] = {
        f"{k * 10}-{k * 10 + 10}s": {"close_to_copied": round(pct(a, 50) or 0, 3),
                                     "copied_to_verified": round(pct(b, 50) or 0, 3)}
        for k, (a, b) in sorted(split.items())}
    # per file, seconds after the first close: close, queued, uploading, copied, verified, registered
    def rel(t: float | None) -> float | None:
        return round(t - t_first, 4) if t is not None else None
    result["per_file"] = {"columns": ["close", "queued", "uploading", "copied", "verified", "registered",
                                      "verified_exact"],
                          "t0_epoch": t_first,
                          "rows": {n: [rel(closes[n]), rel(seen[n].queued if n in seen else None),
                                       rel(seen[n].uploading if n in seen else None), rel(copied.get(n)),
                                       rel(seen[n].verified if n in seen else None),
                                       rel(seen[n].registered if n in seen else None),
                                       seen[n].verified_exact if n in seen else None] for n in names}}
    result["log_tail"] = [ln for ln in ta.log_text.splitlines() if " WARNING " in ln or " ERROR " in ln][-10:]
    result["rclone_copied_lines"] = len(copied)
    keep_log(ta, f"latency-{mode}", args)
    return result


def run_put_reference(server: WebDAVServer, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The reference for the latency runs: the same writer, and on every close a plain HTTP PUT of the
    file (4 at a time, as trayagent's transfers), the big file PUT beside them; close -> PUT answered."""
    import base64
    import http.client
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    folder = base / "lat-put"
    folder.mkdir(parents=True)
    url = urlsplit(server.url)
    auth = "Basic " + base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
    (server.root / "put").mkdir(exist_ok=True)

    def put(path: Path) -> float:
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=600)
        try:
            with path.open("rb") as body:
                conn.request("PUT", f"{url.path.rstrip('/')}/put/{path.name}", body=body,
                             headers={"Authorization": auth, "Content-Length": str(path.stat().st_size)})
                conn.getresponse().read()
        finally:
            conn.close()
        return time.time()
    payload = os.urandom(args.file_kib * KiB)
    names = [f"f_{i:05d}.bin" for i in range(round(args.seconds * args.rate))]
    big = BigFile(base / "big-put", folder, args.big_mib) if args.big_mib else None
    closes: dict[str, float] = {}
    with ThreadPoolExecutor(4) as pool, ThreadPoolExecutor(1) as big_pool:
        done: dict[str, Any] = {}
        big_done = None
        t0 = time.monotonic()
        for i, name in enumerate(names):
            if big is not None and big_done is None and time.monotonic() - t0 >= 2.0:
                big.move_in()
                big_done = big_pool.submit(put, folder / big.name)
            delay = t0 + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            closes[name] = write_file(folder / name, payload, i + 1)
            done[name] = pool.submit(put, folder / name)
        ended = {n: f.result() for n, f in done.items()}
        big_end = big_done.result() if big_done is not None else None
    out: dict[str, Any] = {"mode": "put", "files": len(names),
                           "close_to_put": summary([ended[n] - closes[n] for n in names])}
    if big is not None and big_end is not None:
        during = [ended[n] - closes[n] for n in names if big.moved_at <= closes[n] <= big_end]
        out["big_file"] = {"mib": args.big_mib, "put_after_move_s": round(big_end - big.moved_at, 3),
                           "small_closed_during": len(during), "their_close_to_put": summary(during)}
    return out


class BigFile:
    """A big file written outside the watched folder beforehand, moved in 2 s into the writing (a
    detector's stack beside its frames): it uploads while the small files keep coming."""

    name = "stack.big"

    def __init__(self, outside: Path, folder: Path, mib: int) -> None:
        outside.mkdir(parents=True, exist_ok=True)
        self.path, self.folder = outside / self.name, folder
        block = os.urandom(MiB)
        with self.path.open("wb") as fh:
            for _ in range(mib):
                fh.write(block)
        self.moved_at = 0.0

    def move_in(self) -> None:
        os.rename(self.path, self.folder / self.name)
        self.moved_at = time.time()


_COPIED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+\s+"
                     r"trayagent\.rclone\.process: (\S+): Copied")


def copied_times(log_text: str) -> dict[str, float]:
    """File name -> when rclone logged it copied (log timestamps: local time, millisecond resolution)."""
    out: dict[str, float] = {}
    for line in log_text.splitlines():
        if m := _COPIED.match(line):
            out.setdefault(m.group(2), datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return out


def analyse(names: list[str], closes: dict[str, float], seen: dict[str, Seen], poller: QueuePoller,
            t0_epoch: float) -> dict[str, Any]:
    lat, detect, upload, register, missing = [], [], [], [], []
    exact_v = exact_q = 0
    per_bucket: dict[int, list[float]] = {}
    batch_ticks: Counter[float] = Counter()
    for name in names:
        s = seen.get(name)
        c = closes[name]
        if s is None or s.verified is None:
            missing.append(name)
            continue
        v = s.verified - c
        lat.append(v)
        exact_v += s.verified_exact
        per_bucket.setdefault(int((c - t0_epoch) // 10), []).append(v)
        if s.queued is not None:
            detect.append(s.queued - c)
            upload.append(s.verified - s.queued)
            exact_q += s.queued_exact
        if s.registered is not None and s.verified_exact:
            register.append(s.registered - s.verified)
        if s.uploading is not None:
            batch_ticks[s.uploading] += 1
    sizes = list(batch_ticks.values())
    return {
        "close_to_verified": summary(lat),
        "close_to_queued": summary(detect),
        "queued_to_verified": summary(upload),
        "verified_to_registered": summary(register),
        "verified_exact_fraction": round(exact_v / len(lat), 3) if lat else None,
        "queued_exact_fraction": round(exact_q / len(detect), 3) if detect else None,
        "not_verified": missing[:20],
        "not_verified_count": len(missing),
        "p50_by_10s_of_writing": {f"{k * 10}-{k * 10 + 10}s": round(pct(v, 50) or 0, 3)
                                  for k, v in sorted(per_bucket.items())},
        "p99_by_10s_of_writing": {f"{k * 10}-{k * 10 + 10}s": round(pct(v, 99) or 0, 3)
                                  for k, v in sorted(per_bucket.items())},
        "batches_seen_uploading": {"count": len(sizes),
                                   "mean_files": round(statistics.fmean(sizes), 2) if sizes else None,
                                   "max_files": max(sizes) if sizes else None},
        "poller": {"polls": poller.polls, "median_gap_s": round(pct(poller.poll_gaps, 50) or 0, 4),
                   "p99_gap_s": round(pct(poller.poll_gaps, 99) or 0, 4)},
    }


# ---------------------------------------------------------------------------------------------------
# 2. idle cost
# ---------------------------------------------------------------------------------------------------

def make_tree(root: Path, n_files: int, n_dirs: int) -> float:
    t0 = time.monotonic()
    per_dir = math.ceil(n_files / n_dirs)
    made = 0
    for d in range(n_dirs):
        folder = root / f"d{d:04d}"
        folder.mkdir(parents=True)
        for i in range(min(per_dir, n_files - made)):
            fd = os.open(folder / f"f{i:04d}.dat", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"x")
            os.close(fd)
            made += 1
    return time.monotonic() - t0


def run_idle(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    tree = base / "tree"
    print(f"  idle: creating {args.tree_files:,} one-byte files in {args.tree_dirs:,} folders ...",
          flush=True)
    made_s = make_tree(tree, args.tree_files, args.tree_dirs)
    print(f"  idle: tree created in {made_s:.1f} s; starting trayagent sync (embedded default storage)",
          flush=True)
    home = base / "home-idle"
    ta = Trayagent(home)  # no config file: [storage] defaults, local catalogue
    sync = SyncProcess(ta, tree, "idle", name_threads=True)
    result: dict[str, Any] = {"files": args.tree_files, "folders": args.tree_dirs,
                              "tree_create_s": round(made_s, 1), "idle_window_s": args.idle_seconds}
    db: sqlite3.Connection | None = None
    try:
        t0 = time.monotonic()
        sync.start()
        db = connect_ro(queue_db(home), 60)
        last_print = time.monotonic()
        first_registered_at = None
        while True:
            sync.check_alive()
            c = counts(db)
            reg = c.get("registered", 0)
            if reg and first_registered_at is None:
                first_registered_at = time.monotonic() - t0
            if reg + c.get("failed", 0) >= args.tree_files and not any(
                    c.get(s, 0) for s in ("pending", "uploading", "uploaded", "verified")):
                break
            if time.monotonic() - t0 > args.upload_timeout:
                raise RuntimeError(f"initial upload not done after {args.upload_timeout:.0f} s: {c}")
            if time.monotonic() - last_print >= 15:
                el = time.monotonic() - t0
                print(f"  idle: initial upload {el:5.0f} s: {c} ({reg / el:.0f} files/s)", flush=True)
                last_print = time.monotonic()
            time.sleep(1.0)
        upload_s = time.monotonic() - t0
        c = counts(db)
        result["initial_upload"] = {"seconds": round(upload_s, 1), "states": c,
                                    "files_per_s": round(c.get("registered", 0) / upload_s, 1),
                                    "first_registered_after_s": round(first_registered_at or 0, 1),
                                    "rss_peak_mb_so_far": round(proc_status(sync.pid).get("VmHWM", 0) / 1024,
                                                                1)}
        print(f"  idle: initial upload done in {upload_s:.1f} s ({c}); settling {args.settle_seconds:g} s, "
              f"then {args.idle_seconds:g} s idle window", flush=True)
        try:
            watch = db.execute("SELECT watch, waiting, warning FROM sessions").fetchall()
        except sqlite3.OperationalError:
            watch = []
        result["session"] = [{"watch": w, "waiting": n, "warning": warn} for w, n, warn in watch]
        rclone = sync.find_rclone(10)
        time.sleep(args.settle_seconds)
        sync.check_alive()
        result.update(idle_window(sync, rclone, sync.log_path, args.idle_seconds))
        result["references"] = idle_references(tree, args.idle_seconds)
        if args.restart:
            result["after_restart"] = idle_after_restart(sync, db, args)
        rescans = re.findall(r"rescan \((\w[\w ]*)\) queued (\d+) new or changed files in ([\d.]+) s",
                             ta.log_text)
        result["rescans_whole_run"] = [{"reason": r, "queued": int(q), "seconds": float(s)}
                                       for r, q, s in rescans]
    finally:
        if db is not None:
            db.close()
        result["exit_code"] = sync.stop()
        if "after_restart" in result:
            result["after_restart"]["first_exit_code"] = result["exit_code"]
        keep_log(ta, "idle", args)
        shutil.rmtree(tree, ignore_errors=True)
    return result


def idle_window(sync: SyncProcess, rclone: int | None, log_path: Path, seconds: float) -> dict[str, Any]:
    """CPU of trayagent and its rclone child over ``seconds`` of idleness; RSS sampled every second."""
    log_off = log_path.stat().st_size if log_path.exists() else 0
    w0 = time.monotonic()
    ta0, rc0 = proc_cpu(sync.pid), proc_cpu(rclone)
    th0, rth0 = thread_stats(sync.pid), thread_stats(rclone)
    rss, threads, rclone_rss = [], [], []
    while time.monotonic() - w0 < seconds:
        st = proc_status(sync.pid)
        rss.append(st.get("VmRSS", 0) / 1024)
        threads.append(st.get("Threads", 0))
        rclone_rss.append(proc_status(rclone).get("VmRSS", 0) / 1024)
        time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - w0))))
    ta1, rc1 = proc_cpu(sync.pid), proc_cpu(rclone)
    th1, rth1 = thread_stats(sync.pid), thread_stats(rclone)
    window = time.monotonic() - w0
    per_thread = thread_wakeups(th0, th1, window)
    rclone_threads = thread_wakeups(rth0, rth1, window)
    sync.check_alive()
    final = proc_status(sync.pid)
    ta_cpu = (ta1 or 0) - (ta0 or 0)
    rc_cpu = (rc1 or 0) - (rc0 or 0) if rclone else None
    window_log: list[str] = []
    with contextlib.suppress(OSError), open(log_path, "rb") as fh:
        fh.seek(log_off)
        window_log = fh.read().decode(errors="replace").splitlines()
    return {
        "window_s": round(window, 2),
        "trayagent_cpu_s": round(ta_cpu, 3),
        "rclone_cpu_s": round(rc_cpu, 3) if rc_cpu is not None else None,
        "trayagent_cpu_pct": round(100 * ta_cpu / window, 3),
        "rclone_cpu_pct": round(100 * rc_cpu / window, 3) if rc_cpu is not None else None,
        "total_cpu_pct": round(100 * (ta_cpu + (rc_cpu or 0)) / window, 3),
        "rss_mb": round(final.get("VmRSS", 0) / 1024, 1),
        "rss_mb_max_in_window": round(max(rss), 1) if rss else None,
        "rss_peak_mb_whole_run": round(final.get("VmHWM", 0) / 1024, 1),
        "rclone_rss_mb": round(max(rclone_rss), 1) if rclone_rss else None,
        "rclone_rss_mb_end": round(proc_status(rclone).get("VmRSS", 0) / 1024, 1) if rclone else None,
        "threads": max(threads) if threads else None,
        "wakeups_per_s": round(sum(t["wakeups_per_s"] for t in per_thread), 2),
        # the same CPU from the threads' ns counters (threads alive at both ends of the window)
        "trayagent_cpu_pct_fine": round(sum(t["cpu_ms"] for t in per_thread) / 10 / window, 4),
        "rclone_cpu_pct_fine": round(sum(t["cpu_ms"] for t in rclone_threads) / 10 / window, 4),
        "thread_wakeups": per_thread,
        "rclone_wakeups_per_s": round(sum(t["wakeups_per_s"] for t in rclone_threads), 2),
        "rclone_pid_found": bool(rclone),
        "log_lines_in_window": len(window_log),
        "log_in_window": window_log[-10:],
        "rescans_in_window": [ln for ln in window_log if "rescan" in ln],
    }


_BARE_OBSERVER = """
import sys, time
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
observer = Observer()
observer.schedule(FileSystemEventHandler(), sys.argv[1], recursive=True)
observer.start()
print("watching", flush=True)
time.sleep(float(sys.argv[2]))
"""


def idle_references(tree: Path, seconds: float) -> dict[str, Any]:
    """The same run's references for the idle figures (issue 24): the CPU of a bare watchdog observer
    over the same tree for the same window, and the RSS of a bare ``rclone rcd`` that did nothing."""
    watcher = subprocess.Popen([sys.executable, "-c", _BARE_OBSERVER, str(tree), str(seconds + 30)],
                               stdout=subprocess.PIPE, text=True)
    rcd = subprocess.Popen([rclone_binary(), "rcd", "--rc-no-auth", "--rc-addr", "127.0.0.1:0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert watcher.stdout is not None
        watcher.stdout.readline()  # its watches are in place
        time.sleep(2.0)
        c0, w0 = proc_cpu(watcher.pid) or 0.0, time.monotonic()
        time.sleep(seconds)
        cpu, window = (proc_cpu(watcher.pid) or 0.0) - c0, time.monotonic() - w0
        return {"bare_watchdog_cpu_pct": round(100 * cpu / window, 3),
                "bare_rclone_rcd_rss_mb": round(proc_status(rcd.pid).get("VmRSS", 0) / 1024, 1)}
    finally:
        for p in (watcher, rcd):
            p.kill()
            p.wait(10)


def idle_after_restart(sync: SyncProcess, db: sqlite3.Connection,
                       args: argparse.Namespace) -> dict[str, Any]:
    """Same command again on the uploaded tree: the RSS of a session that never held the upload's work."""
    sync.stop()
    t0 = time.monotonic()
    sync.proc, sync.rclone_pid = None, None
    sync.start()
    while True:  # the start rescan (nothing new to queue) marks the session as caught up
        sync.check_alive()
        try:  # the restarted process writes a log file of its own
            text = sync.log_path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        c = counts(db)
        if "rescan (start)" in text and not any(c.get(x, 0) for x in ("pending", "uploading", "verified")):
            break
        if time.monotonic() - t0 > 600:
            raise RuntimeError(f"restarted sync did not catch up in 600 s: {c}")
        time.sleep(0.5)
    caught_up = time.monotonic() - t0
    rclone = sync.find_rclone(10)
    print(f"  idle: restarted session caught up in {caught_up:.1f} s; {args.idle_seconds:g} s idle window",
          flush=True)
    time.sleep(args.settle_seconds)
    out = idle_window(sync, rclone, sync.log_path, args.idle_seconds)
    out["caught_up_after_s"] = round(caught_up, 1)
    out["states"] = counts(db)
    return out


# ---------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------

def keep_log(ta: Trayagent, tag: str, args: argparse.Namespace) -> None:
    logs = sorted((ta.home / "logs").glob("*.log"))
    if logs:
        out = REPO / "build" / "bench-results" / f"sync-{args.stamp}-{tag}.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"".join(f.read_bytes() for f in logs))


def _f(v: Any, fmt: str = ".3f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("OK" if ok else "MISSED")


def print_latency(runs: list[dict[str, Any]]) -> None:
    print("\nSync latency, close -> verified in storage (seconds; loopback WebDAV, "
          f"{runs[0]['file_bytes'] // KiB} KiB files at {runs[0]['rate']:g}/s):")
    head = (f"{'mode':<28} {'files':>5} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}   "
            f"{'detect p50':>10} {'upload p50':>10} {'reg p50':>8}  {'target':<22} verdict")
    print(head)
    print("-" * len(head))
    for r in runs:
        s = r["close_to_verified"]
        name = ("close events (inotify)" if r["mode"] == "events"
                else f"quiet period {r['config']['sync']['quiet_seconds']:g} s (polling)")
        if r["mode"] == "events":
            target = f"p50<={TARGET_P50:g} p99<={TARGET_P99:g}"
            ok = (s.get("p50", 1e9) <= TARGET_P50 and s.get("p99", 1e9) <= TARGET_P99
                  and not r["not_verified_count"])
        else:
            target, ok = "(none; for reference)", None
        print(f"{name:<28} {s.get('n', 0):>5} {_f(s.get('p50')):>7} {_f(s.get('p90')):>7} "
              f"{_f(s.get('p99')):>7} "
              f"{_f(s.get('max')):>7}   {_f(r['close_to_queued'].get('p50')):>10} "
              f"{_f(r['queued_to_verified'].get('p50')):>10} "
              f"{_f(r['verified_to_registered'].get('p50')):>8}  "
              f"{target:<22} {verdict(ok)}")
    print("(detect = close -> first seen in the queue; upload = queued -> verified; "
          "reg = verified -> registered, over files caught in state verified)")
    for r in runs:
        b = r["batches_seen_uploading"]
        print(f"  {r['mode']}: {r['not_verified_count']} not verified; verified time exact for "
              f"{100 * (r['verified_exact_fraction'] or 0):.0f} % (rest: upper bound); "
              f"batches seen uploading: {b['count']} (mean {b['mean_files']} files, max {b['max_files']}); "
              f"drain after last close {r['drain_after_last_close_s']:.2f} s; CPU during the run: trayagent "
              f"{r['cpu_seconds']['trayagent']:.1f} s, rclone {r['cpu_seconds']['rclone']:.1f} s over "
              f"{r['cpu_seconds']['window_s']:.0f} s; writer late starts {r['writer']['late_starts']} "
              f"(max {r['writer']['max_late_s']:.3f} s)")
        a, b = r["close_to_rclone_copied"], r["rclone_copied_to_verified"]
        print(f"    split of close -> verified: close -> rclone logged 'Copied' p50 {_f(a.get('p50'))} s "
              f"(p99 {_f(a.get('p99'))}); 'Copied' -> verified p50 {_f(b.get('p50'))} s "
              f"(p99 {_f(b.get('p99'))}; job-status polling + listing + queue update)")
        sp = r.get("split_p50_by_10s_of_writing", {})
        print("    p50 split by 10 s of writing (close->Copied / Copied->verified): "
              + ", ".join(f"{k} {v['close_to_copied']:.2f}/{v['copied_to_verified']:.2f}"
                          for k, v in sp.items()))
        for q in ("p50", "p99"):
            by = r[f"{q}_by_10s_of_writing"]
            print(f"    {q} by 10 s of writing: " + ", ".join(f"{k} {v:.2f}" for k, v in by.items()))
        if big := r.get("big_file"):
            during = big["their_close_to_verified"]
            print(f"    beside a {big['mib']} MiB file moved in 2 s into the writing: it was verified "
                  f"{_f(big['verified_after_move_s'])} s after its move; {big['small_closed_during']} small "
                  f"files closed meanwhile: close -> verified p50 {_f(during.get('p50'))} s, p99 "
                  f"{_f(during.get('p99'))} s, the slowest "
                  f"{'before' if big['slowest_of_them_before_big'] else 'NOT before'} the big one")
        if r["log_tail"]:
            print("    warnings/errors in the log: " + " | ".join(x[-160:] for x in r["log_tail"][-3:]))


def print_idle(r: dict[str, Any]) -> None:
    print(f"\nIdle session watching {r['files']:,} files in {r['folders']:,} folders "
          f"(embedded default storage), "
          f"{r['window_s']:.1f} s window after the initial upload:")
    head = f"{'measure':<36} {'value':>10}  {'target':<14} verdict"
    print(head)
    print("-" * len(head))
    cpu_ok = r["total_cpu_pct"] <= TARGET_IDLE_CPU_PCT
    rss_ok = r["rss_mb"] <= TARGET_RSS_MB
    rows = [
        ("CPU trayagent (% of one core)", _f(r["trayagent_cpu_pct"], ".2f"), "", None),
        ("CPU rclone rcd (% of one core)", _f(r["rclone_cpu_pct"], ".2f"), "", None),
        ("CPU total (% of one core)", _f(r["total_cpu_pct"], ".2f"), f"~0 (<= {TARGET_IDLE_CPU_PCT:g} %)",
         cpu_ok),
        ("CPU seconds trayagent / rclone",
         f"{_f(r['trayagent_cpu_s'], '.2f')}/{_f(r['rclone_cpu_s'], '.2f')}",
         "", None),
        ("RSS trayagent (MB, end of window)", _f(r["rss_mb"], ".1f"), f"<= {TARGET_RSS_MB:g} MB", rss_ok),
        ("RSS trayagent max in window (MB)", _f(r["rss_mb_max_in_window"], ".1f"), "", None),
        ("RSS trayagent peak, whole run (MB)", _f(r["rss_peak_mb_whole_run"], ".1f"), "", None),
        ("RSS rclone rcd (MB, max in window)", _f(r["rclone_rss_mb"], ".1f"), "", None),
        ("RSS rclone rcd (MB, end of window)", _f(r.get("rclone_rss_mb_end"), ".1f"), "", None),
        ("trayagent threads", str(r["threads"]), "", None),
    ]
    for name, value, target, ok in rows:
        print(f"{name:<36} {value:>10}  {target:<14} {verdict(ok) if target else ''}")
    if ar := r.get("after_restart"):
        print(f"  after a restart (same command, tree already uploaded; caught up in "
              f"{ar['caught_up_after_s']:.1f} s), {ar['window_s']:.1f} s idle: CPU total "
              f"{_f(ar['total_cpu_pct'], '.2f')} % (trayagent {_f(ar['trayagent_cpu_pct'], '.2f')}, "
              f"rclone {_f(ar['rclone_cpu_pct'], '.2f')}); RSS trayagent {_f(ar['rss_mb'], '.1f')} MB "
              f"({verdict(ar['rss_mb'] <= TARGET_RSS_MB)} vs <= {TARGET_RSS_MB:g} MB), peak "
              f"{_f(ar['rss_peak_mb_whole_run'], '.1f')} MB; rclone {_f(ar['rclone_rss_mb'], '.1f')} MB")
    if ref := r.get("references"):
        print(f"  references, same run: a bare watchdog observer over the same tree "
              f"{_f(ref['bare_watchdog_cpu_pct'], '.3f')} % of one core; a bare `rclone rcd` "
              f"{_f(ref['bare_rclone_rcd_rss_mb'], '.1f')} MB RSS (trayagent's rclone at the end of the "
              f"window: {_f(_rclone_end(r), '.1f')} MB, target <= bare + {TARGET_RCLONE_OVER_BARE_MB:g} MB: "
              f"{verdict(_rclone_ok(_rclone_end(r), ref['bare_rclone_rcd_rss_mb']))}"
              + (f"; after the restart {_f(_rclone_end(ar), '.1f')} MB: "
                 f"{verdict(_rclone_ok(_rclone_end(ar), ref['bare_rclone_rcd_rss_mb']))}" if ar else "") + ")")
    iu = r["initial_upload"]
    print(f"  initial upload: {iu['seconds']:.1f} s ({iu['files_per_s']:.0f} files/s; "
          f"first registration after "
          f"{iu['first_registered_after_s']:.1f} s); states {iu['states']}; "
          f"tree created in {r['tree_create_s']:.1f} s")
    for label, w in (("", r), (" after the restart", r.get("after_restart") or {})):
        if w.get("thread_wakeups") is not None:
            busy = [t for t in w["thread_wakeups"] if t["wakeups_per_s"] >= 0.05 or t["cpu_ms"] >= 0.1]
            print(f"  wake-ups{label}: trayagent {_f(w['wakeups_per_s'], '.2f')}/s, CPU "
                  f"{_f(w['trayagent_cpu_pct_fine'], '.4f')} % (rclone {_f(w['rclone_wakeups_per_s'], '.2f')}/s, "
                  f"{_f(w['rclone_cpu_pct_fine'], '.4f')} %; from the threads' ns counters); by thread: "
                  + (", ".join(f"{t['name']} {t['wakeups_per_s']:.2f}/s {t['cpu_ms']:.1f} ms" for t in busy)
                     or "none"))
    print(f"  watch: {r.get('session')}; log lines in window: {r['log_lines_in_window']}; "
          f"rescans in window: {len(r['rescans_in_window'])}")
    for x in r.get("rescans_whole_run", []):
        print(f"  rescan ({x['reason']}): {x['queued']} queued in {x['seconds']:.1f} s")


def _rclone_end(window: dict[str, Any]) -> float | None:
    """trayagent's rclone at the end of an idle window (older results: the window's maximum)."""
    return window.get("rclone_rss_mb_end") or window.get("rclone_rss_mb")


def _rclone_ok(rss: float | None, bare: float | None) -> bool | None:
    return None if rss is None or bare is None else rss <= bare + TARGET_RCLONE_OVER_BARE_MB


def code_state() -> dict[str, Any]:
    """HEAD, uncommitted changes under trayagent/ and its newest file time: the code every
    subprocess imports is the working tree at its start, so a tree edited mid-run is worth knowing."""
    try:
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "trayagent"],
                               capture_output=True, text=True, check=False).stdout.split("\n")
    except OSError:
        dirty = []
    newest = max((f.stat().st_mtime for f in (REPO / "trayagent").rglob("*.py")), default=0.0)
    return {"commit": git_commit(), "dirty": [d.strip() for d in dirty if d.strip()],
            "newest_source_mtime": datetime.fromtimestamp(newest).isoformat(timespec="seconds")}


# ---------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="15 s of writing, 20,000-file tree")
    p.add_argument("--parts", default="latency,idle", help="comma-separated: latency, idle (default both)")
    p.add_argument("--modes", default="events,polling", help="latency modes: events, polling (default both)")
    p.add_argument("--seconds", type=float, help="writing time per latency run (default 60; quick 15)")
    p.add_argument("--rate", type=float, default=10.0, help="files per second written (default 10)")
    p.add_argument("--file-kib", type=int, default=1024,
                   help="size of each written file in KiB (default 1024)")
    p.add_argument("--quiet-seconds", type=float, default=2.0, help="[sync] quiet_seconds (default 2)")
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="how long to wait after the last close for every file to be verified")
    p.add_argument("--tree-files", type=int, help="files in the idle tree (default 100,000; quick 20,000)")
    p.add_argument("--tree-dirs", type=int, help="folders in the idle tree (default 1,000; quick 200)")
    p.add_argument("--put-reference", action="store_true",
                   help="latency: also the reference, a plain HTTP PUT of every file on its close")
    p.add_argument("--big-mib", type=int, default=0,
                   help="latency: a file of this many MiB moved in 2 s into the writing (issue 24: 3072)")
    p.add_argument("--idle-seconds", type=float, default=30.0, help="idle measurement window (default 30)")
    p.add_argument("--settle-seconds", type=float, default=5.0,
                   help="wait between the end of the initial upload and the idle window (default 5)")
    p.add_argument("--no-restart", dest="restart", action="store_false",
                   help="skip the second idle window after restarting the session on the uploaded tree")
    p.add_argument("--upload-timeout", type=float, default=7200.0,
                   help="limit in seconds for the initial upload of the tree")
    p.add_argument("--tmp", help="parent folder for temp data (default: system temp)")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (15.0 if args.quick else 60.0)
    args.tree_files = args.tree_files or (20_000 if args.quick else 100_000)
    args.tree_dirs = args.tree_dirs or (200 if args.quick else 1_000)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    args.modes = [x.strip() for x in args.modes.split(",") if x.strip()]
    bad = [x for x in args.parts if x not in ("latency", "idle")]
    bad += [x for x in args.modes if x not in ("events", "polling")]
    if bad:
        p.error(f"unknown part/mode: {', '.join(bad)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_environment()
    args.stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    rclone_version = subprocess.run([rclone_binary(), "version"], capture_output=True, text=True,
                                    check=False).stdout.splitlines()[:1]
    print(f"sync benchmark {args.stamp}: {'quick' if args.quick else 'full'}; parts {','.join(args.parts)}; "
          f"{os.cpu_count()} CPUs; {rclone_version[0] if rclone_version else ''}", flush=True)
    doc: dict[str, Any] = {
        "timestamp": args.stamp, "mode": "quick" if args.quick else "full", "git_commit": git_commit(),
        "cpus": os.cpu_count(), "rclone": rclone_version[0] if rclone_version else "",
        "code_at_start": code_state(),
        "targets": {"events_p50_s": TARGET_P50, "events_p99_s": TARGET_P99, "idle_rss_mb": TARGET_RSS_MB,
                    "idle_cpu_pct": TARGET_IDLE_CPU_PCT},
        "latency": [], "idle": None,
    }
    failed: Exception | None = None
    try:
        with contextlib.ExitStack() as stack:
            base = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=args.tmp))
            stack.callback(shutil.rmtree, base, ignore_errors=True)
            if "latency" in args.parts:
                stack.enter_context(SessionKeyring(base / "keyring"))
                t0 = time.monotonic()
                server = stack.enter_context(WebDAVServer(base / "webdav-root", user="bench",
                                                          password=random_secret()))
                print(f"webdav server up in {time.monotonic() - t0:.1f} s", flush=True)
                for mode in args.modes:
                    doc["latency"].append(run_latency(mode, server, base, args))
                    r = doc["latency"][-1]["close_to_verified"]
                    print(f"  {mode}: p50 {_f(r.get('p50'))} s, p99 {_f(r.get('p99'))} s, "
                          f"max {_f(r.get('max'))} s", flush=True)
                if args.put_reference:
                    doc["put_reference"] = run_put_reference(server, base, args)
                    r = doc["put_reference"]["close_to_put"]
                    print(f"  direct PUT on close (reference): p50 {_f(r.get('p50'))} s, p99 {_f(r.get('p99'))} s"
                          + (f"; beside the big file: {doc['put_reference']['big_file']}"
                             if "big_file" in doc["put_reference"] else ""), flush=True)
            if "idle" in args.parts:
                doc["idle"] = run_idle(base, args)
    except Exception as exc:  # noqa: BLE001 (what was measured is still reported and saved)
        failed = exc
        doc["error"] = f"{type(exc).__name__}: {exc}"[:4000]
        print(f"\nERROR: {doc['error'][:2000]}\n(processes and temp data were cleaned up; "
              "partial results follow)", flush=True)
    if doc["latency"]:
        print_latency(doc["latency"])
    if doc["idle"]:
        print_idle(doc["idle"])
    doc["total_seconds"] = round(time.monotonic() - started, 1)
    doc["code_at_end"] = code_state()
    if doc["code_at_end"] != doc["code_at_start"]:
        print(f"\nWARNING: trayagent/ changed during the run (start {doc['code_at_start']}, end "
              f"{doc['code_at_end']}): runs may have used different code")
    elif doc["code_at_start"]["dirty"]:
        print(f"\nnote: uncommitted changes under trayagent/: {', '.join(doc['code_at_start']['dirty'])}")
    write_results(f"sync-{args.stamp}", doc, doc["total_seconds"])
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main, "processes, servers and temp data")
