#!/usr/bin/env python3
"""Upload benchmark: trayagent vs. plain ``rclone copy`` vs. a naive per-file ``rclone copyto`` loop.

Usage::

    python3 tests/bench/bench_upload.py [--quick] [--targets webdav,s3,local]

Starts fresh loopback servers (WebDAV via wsgidav/cheroot, S3 via SeaweedFS) and a private keyring,
writes two random data sets once (default 1 GiB as one file and 2,000 x 512 KiB files; ``--quick``:
256 MiB and 500 files; ``--datasets nexus``: as many NeXus/HDF5 files of that size, written with h5py,
which the metadata extractors read) and times, per target and data set:

  trayagent   ``trayagent upload DIR --dataset X --json`` with a fresh TRAYAGENT_HOME (whole command:
              rclone start, checksums, verification, catalogue registration, manifest)
  trayagent-agent the same command while a headless agent runs on that home (started before the clock,
              as on a workstation where the tray agent runs all day): the CLI hands the upload to the
              agent, whose rclone and keyring session are already up, and waits for the end. CPU counts
              the CLI, the agent and its rclone
  trayagent-noharvest the ``trayagent`` run with ``[dataset] harvest = false``: no metadata extractors
              (what they cost is the difference)
  rclone-copy ``rclone copy DIR remote:path --transfers 4`` (rclone's defaults)
  rclone-tuned the same with what trayagent sets by default (trayagent.storage.TUNING, the ``auto``
              number of transfers and no read-ahead buffer; WebDAV: ``--webdav-pacer-min-sleep 1ms
              --buffer-size 0``; S3: ``--s3-upload-concurrency 8 --transfers 8 --buffer-size 0``): it
              separates what trayagent's defaults gain from what its engine costs
  naive-loop  one ``rclone copyto FILE remote:path/FILE`` process per file, sequentially (for many files
              only the first ``--naive-limit`` files are timed and the time is extrapolated linearly)

Single-file runs are short and noisy, so by default they are repeated 5 times (interleaved across tools, in
an order that rotates every round) and the median is reported; the many-files ones 3 times (``--repeat N``
for all). Every run goes to a fresh destination (WebDAV folder / S3 bucket) that is deleted afterwards; the
page cache is warmed by reading the data set before every timed run, and ``sync`` flushes the servers'
writes from the previous run and the set-up's own (trayagent's configuration, login, agent) just before the
clock starts. On WebDAV the storage root that trayagent's dataset folder goes into exists before the clock,
as the server's root does for rclone, so that each tool creates one folder. ``local`` is the embedded
default storage (a folder under TRAYAGENT_HOME); rclone copies to a fresh folder on the same disk.
Results are printed as a table and written as JSON to build/bench-results/upload-<timestamp>.json. Not
a pytest module (not named test_*.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS / "support"))  # run as a script: the servers and the CLI driver

from agentctl import Trayagent
from benchlib import (
    adopting_orphans,
    git_commit,
    prepare_environment,
    proc_cpu,
    ratio_interval,
    reap,
    run_main,
    write_results,
)
from servers import (
    S3Server,
    SessionKeyring,
    WebDAVServer,
    random_secret,
    rclone_binary,
    run_rclone,
)
from waiting import stop_process

from trayagent.storage.target import TUNING, parallel_transfers
from trayagent.storage.transfer import BUFFER_SIZE

MiB = 1 << 20
KiB = 1 << 10
TRANSFERS = 4  # rclone's default --transfers, written out
MANIFEST = "ro-crate-metadata.json"


# ---------------------------------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------------------------------

@dataclass
class DataSet:
    name: str
    path: Path
    files: list[Path]
    bytes: int = 0

    def __post_init__(self) -> None:
        self.bytes = sum(f.stat().st_size for f in self.files)

    def warm(self) -> None:
        """Read every byte once so all tools start with the same (hot) page cache."""
        buf = bytearray(4 * MiB)
        for f in self.files:
            with open(f, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass


def write_random(path: Path, size: int, chunk: int = 16 * MiB) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(chunk, left)
            fh.write(os.urandom(n))
            left -= n


def make_datasets(base: Path, kinds: list[str], big_bytes: int, n_files: int, file_bytes: int) -> list[DataSet]:
    out = []
    if "big" in kinds:
        big_dir = base / "big"
        big_dir.mkdir(parents=True)
        write_random(big_dir / "big.bin", big_bytes)
        out.append(DataSet(f"1x{_size(big_bytes)}", big_dir, [big_dir / "big.bin"]))
    if "many" in kinds:
        many_dir = base / "many"
        many_dir.mkdir(parents=True)
        for i in range(n_files):
            write_random(many_dir / f"frame_{i:05d}.bin", file_bytes)
        out.append(DataSet(f"{n_files}x{_size(file_bytes)}", many_dir, sorted(many_dir.iterdir())))
    if "nexus" in kinds:
        nexus_dir = base / "nexus"
        for i in range(n_files):
            write_nexus(nexus_dir / f"scan_{i:05d}.nxs", file_bytes, i)
        out.append(DataSet(f"{n_files}x{_size(file_bytes)}nxs", nexus_dir, sorted(nexus_dir.iterdir())))
    return out


def write_nexus(path: Path, size: int, i: int) -> None:
    """A NeXus file as an acquisition writes it (tests/support/metafiles.py: NXentry with instrument,
    source, monochromator, detector and sample, with units) and ``size`` bytes of random frames."""
    import h5py
    import numpy as np
    from metafiles import make_nexus

    make_nexus(path, energy_kev=10.0 + i % 30, start=f"2026-01-23T09:{i % 60:02d}:00Z")
    with h5py.File(path, "a") as f:
        frames = np.frombuffer(os.urandom(size // 2 * 2), dtype="u2")
        f["entry"].create_dataset("frames", data=frames)


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


# ---------------------------------------------------------------------------------------------------
# targets: a fresh destination per run, the same for every tool
# ---------------------------------------------------------------------------------------------------

@dataclass
class Dest:
    """One fresh destination: ``rclone_path`` is what plain rclone writes to (remote:path)."""

    tag: str
    rclone_path: str
    storage_root: str  # trayagent's [storage] root template, below the remote
    bucket: str = ""


class Target:
    name = ""
    remote = ""
    backend = ""

    def tuned_flags(self) -> list[str]:
        """rclone flags for what trayagent sets on this backend by default: its options
        (storage.TUNING) and, where ``[transfer] transfers = "auto"`` differs from rclone's 4, --transfers."""
        flags = [f"--{self.backend}-{key.replace('_', '-')}={value}"
                 for key, value in TUNING.get(self.backend, {}).items()] + [f"--buffer-size={BUFFER_SIZE}"]
        transfers = parallel_transfers("auto", self.backend)
        return flags + ([f"--transfers={transfers}"] if transfers != TRANSFERS else [])

    def rclone_env(self) -> dict[str, str]:
        raise NotImplementedError

    def fresh(self, tag: str) -> Dest:
        raise NotImplementedError

    def configure(self, ta: Trayagent, dest: Dest) -> None:
        raise NotImplementedError

    def cleanup(self, dest: Dest) -> None:
        raise NotImplementedError

    @property
    def server_pid(self) -> int | None:
        raise NotImplementedError


class WebDAVTarget(Target):
    name = "webdav"
    remote = "DAV"
    backend = "webdav"

    def __init__(self, server: WebDAVServer) -> None:
        self.server = server
        self._env = server.rclone_env(self.remote)

    def rclone_env(self) -> dict[str, str]:
        return self._env

    def fresh(self, tag: str) -> Dest:
        return Dest(tag, f"{self.remote}:{tag}", f"{tag}/{{dataset}}")

    def configure(self, ta: Trayagent, dest: Dest) -> None:
        """The storage root exists, as on a facility's storage and as the server's root does for
        rclone: each tool then creates one new folder (trayagent's dataset folder below it)."""
        ta.use_webdav(self.server, storage={"root": dest.storage_root})
        (self.server.root / dest.tag).mkdir(exist_ok=True)

    def cleanup(self, dest: Dest) -> None:
        shutil.rmtree(self.server.root / dest.tag, ignore_errors=True)

    @property
    def server_pid(self) -> int | None:
        return self.server.pid


class S3Target(Target):
    name = "s3"
    remote = "S3"
    backend = "s3"

    def __init__(self, server: S3Server) -> None:
        self.server = server
        self._env = server.rclone_env(self.remote)

    def rclone_env(self) -> dict[str, str]:
        return self._env

    def fresh(self, tag: str) -> Dest:
        bucket = self.server.make_bucket(tag)
        return Dest(tag, f"{self.remote}:{bucket}/data", "data/{dataset}", bucket)

    def configure(self, ta: Trayagent, dest: Dest) -> None:
        ta.use_s3(self.server, dest.bucket, storage={"root": dest.storage_root})

    def cleanup(self, dest: Dest) -> None:
        result = run_rclone(["purge", f"{self.remote}:{dest.bucket}"], env=self._env, check=False,
                            timeout=600)
        if result.returncode != 0:
            print(f"  warning: purge of bucket {dest.bucket} failed: {result.stderr.strip()[:300]}",
                  flush=True)

    @property
    def server_pid(self) -> int | None:
        return self.server.pid


class LocalTarget(Target):
    """The embedded default storage: a folder under TRAYAGENT_HOME (no configuration); rclone copies
    to a fresh folder beside, on the same disk."""

    name = "local"
    backend = "local"

    def __init__(self, base: Path) -> None:
        self.base = base

    def tuned_flags(self) -> list[str]:
        return []  # trayagent sets nothing of its own for a local folder

    def rclone_env(self) -> dict[str, str]:
        return {}

    def fresh(self, tag: str) -> Dest:
        return Dest(tag, str(self.base / tag), "")

    def configure(self, ta: Trayagent, dest: Dest) -> None:
        pass  # the embedded default

    def cleanup(self, dest: Dest) -> None:
        shutil.rmtree(dest.rclone_path, ignore_errors=True)

    @property
    def server_pid(self) -> int | None:
        return None


# ---------------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------------

@dataclass
class Result:
    target: str
    dataset: str
    tool: str
    seconds: float  # wall time (extrapolated for a partial naive loop)
    files: int
    bytes: int
    measured_files: int
    measured_seconds: float
    extrapolated: bool = False
    client_cpu: float = 0.0  # user+sys CPU of the tool's processes (children), measured part only
    server_cpu: float = 0.0  # user+sys CPU of the storage server process, measured part only
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0

    @property
    def files_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


def _cpu(pid: int | None) -> float:
    return proc_cpu(pid) or 0.0


@contextlib.contextmanager
def cpu_meter(server_pid: int | None) -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s0 = _cpu(server_pid)
    yield out
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["client"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    out["server"] = _cpu(server_pid) - s0


def rclone_cmd_env(target: Target) -> dict[str, str]:
    return {**os.environ, "RCLONE_CONFIG": os.devnull, **target.rclone_env()}


def stored_size(target: Target, dest: Dest) -> tuple[int, int]:
    """(count, bytes) of data files under the destination (the trayagent manifest excluded)."""
    result = run_rclone(["size", "--json", "--exclude", MANIFEST, dest.rclone_path],
                        env=target.rclone_env(), timeout=600)
    data = json.loads(result.stdout)
    return int(data["count"]), int(data["bytes"])


def check_stored(target: Target, dest: Dest, ds: DataSet, tool: str, partial: int | None = None) -> None:
    count, nbytes = stored_size(target, dest)
    want_files = ds.files[:partial] if partial else ds.files
    want = (len(want_files), sum(f.stat().st_size for f in want_files))
    if (count, nbytes) != want:
        raise RuntimeError(f"{tool} -> {target.name}/{ds.name}: storage holds {count} files, {nbytes} bytes; "
                           f"expected {want[0]} files, {want[1]} bytes")


@contextlib.contextmanager
def running_agent(ta: Trayagent) -> Iterator[list[int]]:
    """A headless agent on the run's home, started and settled before the clock starts (as on a
    workstation where the tray agent runs all day); yields the pids whose CPU is the tool's."""
    proc = ta.popen("agent", "--headless")
    try:
        info = ta.home / "run" / "agent.json"
        deadline = time.monotonic() + 60
        while not (info.exists() and list((ta.home / "run").glob(f"rclone-rcd-{proc.pid}.pid"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not start:\n{proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
        time.sleep(1.0)  # its start-up work (resume, first housekeeping) is over
        rcd = int((ta.home / "run" / f"rclone-rcd-{proc.pid}.pid").read_text())
        yield [proc.pid, rcd]
    finally:
        stop_process(proc, 30)


def run_trayagent(target: Target, ds: DataSet, dest: Dest, home: Path, timeout: float,
                  agent: bool = False, harvest: bool = True) -> Result:
    ta = Trayagent(home)
    target.configure(ta, dest)  # config + `trayagent login storage` (not timed)
    if not harvest:  # the configuration the target wrote (if any), with the extractors off
        config = home / "config" / "config.toml"
        text = config.read_text() if config.exists() else ""
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text + "[dataset]\nharvest = false\n")
    logs = LogCursor(home / "logs")
    dataset_name = f"bench-{dest.tag}"
    with contextlib.ExitStack() as stack:
        agent_pids = stack.enter_context(running_agent(ta)) if agent else []
        logs.mark()
        os.sync()  # as before every tool: the set-up's writes (config, keyring, agent) are on disk
        ds.warm()
        agent_cpu0 = sum(proc_cpu(p) or 0.0 for p in agent_pids)
        with cpu_meter(target.server_pid) as cpu, adopting_orphans():
            t_start = time.time()
            t0 = time.perf_counter()
            proc = ta.run("upload", str(ds.path), "--dataset", dataset_name, "--json", timeout=timeout)
            seconds = time.perf_counter() - t0
            t_end = time.time()
            rcd = None if agent else _rcd_pid(logs.new_text())
            if rcd is not None:
                reap(rcd)  # left running as the command exits: its CPU counts with the command's
        cpu["client"] += sum(proc_cpu(p) or 0.0 for p in agent_pids) - agent_cpu0
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"trayagent upload gave no JSON (exit {proc.returncode}):\n{proc.stdout}\n"
                           f"{proc.stderr}\n{ta.log_text[-3000:]}") from None
    n = len(ds.files)
    if proc.returncode != 0 or out.get("files_ok") != n or out.get("files_failed") != 0:
        raise RuntimeError(f"trayagent upload to {target.name}/{ds.name}: exit {proc.returncode}, "
                           f"files_ok={out.get('files_ok')} (want {n}), files_failed={out.get('files_failed')}, "
                           f"failures={out.get('failures')[:5]}\nstderr: {proc.stderr[-2000:]}")
    tool = "trayagent-agent" if agent else "trayagent" if harvest else "trayagent-noharvest"
    if isinstance(target, LocalTarget):  # the embedded storage, under the run's home
        dest = Dest(dest.tag, str(home / "data" / "storage" / out["storage_path"]), "")
    check_stored(target, dest, ds, tool)
    text = logs.new_text()
    detail = {"engine_seconds": out.get("seconds"), "storage_path": out.get("storage_path"),
              "phases": log_phases(text, t_start, t_end), "harvest": harvest_lines(text)}
    return Result(target.name, ds.name, tool, seconds, n, ds.bytes, n, seconds,
                  client_cpu=cpu["client"], server_cpu=cpu["server"], detail=detail)


class LogCursor:
    """What trayagent's processes logged since ``mark()``: each process writes its own file under
    TRAYAGENT_HOME/logs (COMMAND-TIME-PID.log), so the command's lines and, via the agent, the agent's
    are read from every file, new files whole and older ones from where they ended at the mark."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sizes: dict[Path, int] = {}

    def mark(self) -> None:
        self.sizes = {f: f.stat().st_size for f in self.folder.glob("*.log")}

    def new_text(self) -> str:
        parts = []
        for f in sorted(self.folder.glob("*.log")):
            with open(f, "rb") as fh:
                fh.seek(self.sizes.get(f, 0))
                parts.append(fh.read().decode("utf-8", errors="replace"))
        return "".join(parts)


def harvest_lines(text: str) -> dict[str, Any]:
    """How long the end of the dataset waited for the metadata extractors, from the log."""
    done = re.search(r"metadata: extraction done ([\d.]+) s after the end", text)
    short = re.search(r"metadata: (\d+) files of dataset \d+ not read within ([\d.]+) s", text)
    return {"end_waited": float(done.group(1)) if done else (float(short.group(2)) if short else 0.0),
            "files_not_read": int(short.group(1)) if short else 0}


def _rcd_pid(text: str) -> int | None:
    """The pid of the rclone rcd this command started, from its log ("rclone rcd (pid N) serving")."""
    found = re.search(r"rclone rcd \(pid (\d+)\) serving", text)
    return int(found.group(1)) if found else None


def run_rclone_copy(target: Target, ds: DataSet, dest: Dest, timeout: float, tuned: bool = False) -> Result:
    cmd = [rclone_binary(), "copy", str(ds.path), dest.rclone_path, "--transfers", str(TRANSFERS)]
    cmd += target.tuned_flags() if tuned else []
    tool = "rclone-tuned" if tuned else "rclone-copy"
    env = rclone_cmd_env(target)
    ds.warm()
    with cpu_meter(target.server_pid) as cpu:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:2] + cmd[4:])} -> {target.name}/{ds.name} failed "
                           f"({proc.returncode}):\n{proc.stderr[-2000:]}")
    check_stored(target, dest, ds, tool)
    n = len(ds.files)
    return Result(target.name, ds.name, tool, seconds, n, ds.bytes, n, seconds,
                  client_cpu=cpu["client"], server_cpu=cpu["server"])


def run_naive(target: Target, ds: DataSet, dest: Dest, limit: int, timeout: float) -> Result:
    env = rclone_cmd_env(target)
    files = ds.files if len(ds.files) <= limit else ds.files[:limit]
    ds.warm()
    with cpu_meter(target.server_pid) as cpu:
        t0 = time.perf_counter()
        for f in files:
            rel = f.relative_to(ds.path).as_posix()
            proc = subprocess.run([rclone_binary(), "copyto", str(f), f"{dest.rclone_path}/{rel}"],
                                  env=env, capture_output=True, text=True, timeout=timeout, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"rclone copyto {rel} -> {target.name} failed ({proc.returncode}):\n"
                                   f"{proc.stderr[-2000:]}")
        measured = time.perf_counter() - t0
    check_stored(target, dest, ds, "naive-loop", partial=len(files))
    n = len(ds.files)
    extrapolated = len(files) < n
    seconds = measured * n / len(files)
    measured_bytes = sum(f.stat().st_size for f in files)
    return Result(target.name, ds.name, "naive-loop", seconds, n, ds.bytes, len(files), measured,
                  extrapolated=extrapolated, client_cpu=cpu["client"], server_cpu=cpu["server"],
                  detail={"measured_bytes": measured_bytes})


# ---------------------------------------------------------------------------------------------------
# where trayagent spends its time: timestamps from the logs under TRAYAGENT_HOME/logs
# ---------------------------------------------------------------------------------------------------

# "2026-12-02 09:27:59,089 INFO    27027 trayagent.storage.rclone: ..." (the pid since per-process logs)
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\S+)\s+(?:\d+\s+)?(\S+): (.*)$")


def log_phases(text: str, t_start: float, t_end: float) -> dict[str, Any]:
    """Seconds from the command's start to key log events, plus the largest gaps between copies."""
    events: list[tuple[float, str, str]] = []
    for line in text.splitlines():
        m = _LOG_LINE.match(line)
        if m:
            ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            events.append((ts, m.group(3), m.group(4)))
    if not events:
        return {}
    events.sort(key=lambda e: e[0])  # several processes' files, one timeline

    def first(pred: Any) -> float | None:
        return next((ts - t_start for ts, name, msg in events if pred(name, msg)), None)

    copied = [ts - t_start for ts, name, msg in events
              if name == "trayagent.rclone.process" and re.search(r"\bCopied \(", msg)
              and not msg.startswith(MANIFEST)]
    manifest = [ts - t_start for ts, name, msg in events
                if name == "trayagent.rclone.process" and msg.startswith(MANIFEST + ": Copied")]
    gaps = sorted(((b - a, a) for a, b in itertools.pairwise(copied)), reverse=True)[:3]
    phases = {
        "first_log": events[0][0] - t_start,
        "rclone_rcd_ready": first(lambda n, m: m.startswith("rclone rcd (pid")),
        "checksum_chosen": first(lambda n, m: m.startswith("checksum ")),
        "dataset_catalogued": first(lambda n, m: " catalogue" in m and m.startswith("dataset ")),
        "first_copied": copied[0] if copied else None,
        "last_copied": copied[-1] if copied else None,
        "manifest_copied": manifest[0] if manifest else None,
        "complete": first(lambda n, m: m.startswith("dataset ") and m.endswith(" complete")),
        "exit": t_end - t_start,
        "copied_lines": len(copied),
        "largest_copy_gaps": [{"gap": round(g, 3), "after": round(a, 3)} for g, a in gaps],
        "warnings": [msg[:200] for ts, name, msg in events if "WARN" in msg or "ERROR" in msg][:5],
    }
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in phases.items()}


# ---------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------

def print_table(results: list[Result]) -> None:
    head = (f"{'target':<7} {'data set':<13} {'tool':<15} {'seconds':>8} {'MB/s':>8} {'files/s':>8} "
            f"{'cli CPU':>8} {'srv CPU':>8}  note")
    print(head)
    print("-" * len(head))
    for r in results:
        notes = []
        if r.extrapolated:
            notes.append(f"extrapolated from first {r.measured_files} files ({r.measured_seconds:.1f} s)")
        if r.detail.get("median_of"):
            notes.append("median of " + ", ".join(f"{x:.2f}" for x in r.detail["samples_seconds"]))
        note = "; ".join(notes)
        print(f"{r.target:<7} {r.dataset:<13} {r.tool:<15} {r.seconds:>8.2f} {r.mb_s:>8.1f} {r.files_s:>8.1f} "
              f"{r.client_cpu:>8.2f} {r.server_cpu:>8.2f}  {note}")
    print("(MB = 10^6 bytes; CPU = user+sys seconds of the tool's processes, trayagent's rclone and agent included"
          " / the storage server process)")


def ratios(results: list[Result]) -> list[dict[str, Any]]:
    rows = []
    for target, dataset in keys_order(results):
        by_tool = {r.tool: r for r in results if (r.target, r.dataset) == (target, dataset)}
        ta = by_tool.get("trayagent")
        row: dict[str, Any] = {"target": target, "dataset": dataset}
        for tool, key in (("rclone-copy", "vs_rclone_copy"), ("rclone-tuned", "vs_rclone_tuned"),
                          ("naive-loop", "vs_naive_loop")):
            other = by_tool.get(tool)
            row[key] = _ratio(other, ta)
        via_agent, copy = by_tool.get("trayagent-agent"), by_tool.get("rclone-copy")
        row["agent_vs_rclone_copy"] = _ratio(copy, via_agent)
        plain = by_tool.get("trayagent-noharvest")
        row["noharvest_vs_rclone_copy"] = _ratio(copy, plain)
        for key, mine in (("vs_rclone_copy", ta), ("agent_vs_rclone_copy", via_agent),
                          ("noharvest_vs_rclone_copy", plain)):
            interval = ratio_interval(_samples(copy), _samples(mine)) if mine and copy else None
            row[key + "_95"] = [round(x, 3) for x in interval] if interval else None
        rows.append(row)
    return rows


def _ratio(other: Result | None, mine: Result | None) -> float | None:
    """other's median seconds / mine (true medians, as in ``ratio_interval``)."""
    if not (other and mine):
        return None
    return round(statistics.median(_samples(other)) / statistics.median(_samples(mine)), 3)


def _samples(r: Result) -> list[float]:
    """A tool's seconds per round, in round order (one value when it ran once)."""
    return list(r.detail.get("samples_seconds") or [r.seconds])


def keys_order(results: list[Result]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for r in results:
        if (r.target, r.dataset) not in seen:
            seen.append((r.target, r.dataset))
    return seen


def print_ratios(rows: list[dict[str, Any]]) -> None:
    print("\nSpeed ratios (other tool's seconds / trayagent's seconds; >= 1.0: trayagent at least as fast)")
    print(f"{'target':<7} {'data set':<13} {'vs rclone-copy':>15} {'vs rclone-tuned':>16} {'vs naive-loop':>14}"
          f" {'agent vs rclone-copy':>21} {'no harvest vs rclone-copy':>26}")
    for row in rows:
        a, b, c, d, e = (f"{row[k]:.2f}" if row[k] is not None else "-"
                         for k in ("vs_rclone_copy", "vs_rclone_tuned", "vs_naive_loop", "agent_vs_rclone_copy",
                                   "noharvest_vs_rclone_copy"))
        print(f"{row['target']:<7} {row['dataset']:<13} {a:>15} {b:>16} {c:>14} {d:>21} {e:>26}")
    keys95 = ("vs_rclone_copy_95", "agent_vs_rclone_copy_95", "noharvest_vs_rclone_copy_95")
    intervals = [row for row in rows if any(row[k] for k in keys95)]
    if intervals:
        print("95 % intervals of those ratios (bootstrap over interleaved rounds; 5 rounds or more):")
        for row in intervals:
            a, d, e = ("{:.2f}-{:.2f}".format(*row[k]) if row[k] else "-" for k in keys95)
            print(f"{row['target']:<7} {row['dataset']:<13} {a:>15} {'':>16} {'':>14} {d:>21} {e:>26}")


def print_phases(results: list[Result]) -> None:
    rows = [r for r in results if r.tool.startswith("trayagent") and r.detail.get("phases")]
    if not rows:
        return
    print("\ntrayagent timeline (seconds since the command started, from its log):")
    print(f"{'target':<7} {'data set':<13} {'tool':<15} {'1st log':>7} {'rcd up':>7} {'catalog':>7} {'1st copy':>8} "
          f"{'last copy':>9} {'complete':>8} {'exit':>6} {'engine':>7} {'harvest':>7}  largest gaps between copies")
    for r in rows:
        p = r.detail["phases"]

        def f(key: str, width: int, p: dict[str, Any] = p) -> str:
            v = p.get(key)
            return f"{v:>{width}.2f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"
        gaps = ", ".join(f"{g['gap']:.2f}s@{g['after']:.1f}" for g in p.get("largest_copy_gaps", []) if g["gap"] >= 0.3)
        eng = r.detail.get("engine_seconds")
        h = r.detail.get("harvest") or {}
        waited = f"{h.get('end_waited', 0.0):.2f}" + (f"/{h['files_not_read']}left" if h.get("files_not_read") else "")
        print(f"{r.target:<7} {r.dataset:<13} {r.tool:<15} {f('first_log', 7)} {f('rclone_rcd_ready', 7)} "
              f"{f('dataset_catalogued', 7)} {f('first_copied', 8)} {f('last_copied', 9)} {f('complete', 8)} "
              f"{f('exit', 6)} {eng if eng is not None else '-':>7} {waited:>7}  {gaps}")
    print("(harvest: seconds the end of the dataset waited for the metadata extractors; N left: files it did not"
          " wait for)")


def startup_probe() -> dict[str, float]:
    """Fixed per-command costs: best of 3 for `trayagent --version` (interpreter + imports) and `rclone version`."""
    probes = {"trayagent --version": [sys.executable, "-m", "trayagent.cli", "--version"],
              "rclone version": [rclone_binary(), "version"]}
    out = {}
    for name, cmd in probes.items():
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            times.append(time.perf_counter() - t0)
        out[name] = round(min(times), 3)
    return out


# ---------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------

TOOLS = ("trayagent", "trayagent-agent", "trayagent-noharvest", "rclone-copy", "rclone-tuned", "naive-loop")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small data sets (256 MiB, 500 x 512 KiB)")
    p.add_argument("--targets", default="webdav,s3",
                   help="comma-separated: webdav, s3, local (the embedded default storage; default webdav,s3)")
    p.add_argument("--tools", default="trayagent,trayagent-agent,rclone-copy,rclone-tuned,naive-loop",
                   help="comma-separated tools to run (rclone-tuned only where trayagent tunes the backend)")
    p.add_argument("--datasets", default="big,many", help="comma-separated: big (one file), many (small files), "
                   "nexus (as many NeXus/HDF5 files of that size, which the metadata extractors read)")
    p.add_argument("--big-mib", type=int, help="size of the single big file in MiB (default 1024; quick 256)")
    p.add_argument("--files", type=int, help="number of small files (default 2000; quick 500)")
    p.add_argument("--file-kib", type=int, default=512, help="size of each small file in KiB (default 512)")
    p.add_argument("--naive-limit", type=int, default=200,
                   help="time at most this many files in the naive loop, extrapolate the rest (default 200)")
    p.add_argument("--repeat", type=int, help="runs per measurement, the median is reported (default: 5 for "
                   "the single-file data set, whose runs are short and noisy; 3 for the many-files one)")
    p.add_argument("--timeout", type=float, default=1800, help="per-command timeout in seconds")
    p.add_argument("--tmp", help="parent folder for temp data (default: system temp)")
    args = p.parse_args(argv)
    args.big_mib = args.big_mib or (256 if args.quick else 1024)
    args.files = args.files or (500 if args.quick else 2000)
    args.targets = [t.strip().lower() for t in args.targets.split(",") if t.strip()]
    args.tools = [t.strip().lower() for t in args.tools.split(",") if t.strip()]
    args.datasets = [t.strip().lower() for t in args.datasets.split(",") if t.strip()]
    bad = [t for t in args.targets if t not in ("webdav", "s3", "local")]
    bad += [t for t in args.datasets if t not in ("big", "many", "nexus")]
    bad += [t for t in args.tools if t not in TOOLS]
    if bad:
        p.error(f"unknown target/tool: {', '.join(bad)}")
    return args


def median_result(samples: list[Result]) -> Result:
    if len(samples) == 1:
        return samples[0]
    ordered = sorted(samples, key=lambda r: r.seconds)
    chosen = ordered[len(ordered) // 2]
    chosen.detail["samples_seconds"] = [round(r.seconds, 3) for r in samples]
    chosen.detail["median_of"] = len(samples)
    chosen.detail["stdev"] = round(statistics.stdev(r.seconds for r in samples), 3)
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_environment()

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    commit = git_commit()  # at the start: others may commit while the benchmark runs
    dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "trayagent"],
                                capture_output=True, text=True, check=False).stdout.strip())
    probe = startup_probe()
    results: list[Result] = []
    started = time.monotonic()
    rclone_version = subprocess.run([rclone_binary(), "version"], capture_output=True, text=True,
                                    check=False).stdout.splitlines()[:1]
    print(f"upload benchmark {stamp}: {'quick' if args.quick else 'full'}; targets {','.join(args.targets)}; "
          f"tools {','.join(args.tools)}; {os.cpu_count()} CPUs; {rclone_version[0] if rclone_version else ''}",
          flush=True)

    with contextlib.ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=args.tmp))
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        ring = stack.enter_context(SessionKeyring(base / "keyring"))
        del ring

        t0 = time.monotonic()
        datasets = make_datasets(base / "data", args.datasets, args.big_mib * MiB, args.files, args.file_kib * KiB)
        print(f"data written in {time.monotonic() - t0:.1f} s: "
              + ", ".join(f"{d.name} ({d.bytes / 1e6:.0f} MB)" for d in datasets), flush=True)

        targets: list[Target] = []
        for name in args.targets:
            t0 = time.monotonic()
            if name == "local":
                targets.append(LocalTarget(base / "rclone-dest"))
            elif name == "webdav":
                server = stack.enter_context(WebDAVServer(base / "webdav-root", user="bench",
                                                          password=random_secret()))
                targets.append(WebDAVTarget(server))
            else:
                s3 = stack.enter_context(S3Server(base / "s3data", access_key="AK" + secrets.token_hex(8).upper(),
                                                  secret_key=random_secret(24)))
                targets.append(S3Target(s3))
            print(f"{name} server up in {time.monotonic() - t0:.1f} s", flush=True)

        homes = base / "homes"
        run_no = 0
        for target in targets:
            for ds in datasets:
                repeat = args.repeat or (5 if len(ds.files) == 1 else 3)
                tools = [t for t in args.tools if t != "rclone-tuned" or target.tuned_flags()]
                samples: dict[str, list[Result]] = {tool: [] for tool in tools}
                for rep in range(repeat):  # interleaved, so drift hits every tool alike; the order
                    # rotates so that no tool always runs first after the previous round's cleanup
                    for tool in tools[rep % len(tools):] + tools[:rep % len(tools)]:
                        run_no += 1
                        tag = f"r{run_no:03d}-{tool[:6]}-{secrets.token_hex(3)}"
                        dest = target.fresh(tag)
                        try:
                            os.sync()  # previous run's writes must not slow this one down
                            if tool in ("trayagent", "trayagent-agent", "trayagent-noharvest"):
                                r = run_trayagent(target, ds, dest, homes / tag, args.timeout,
                                                  agent=tool == "trayagent-agent",
                                                  harvest=tool != "trayagent-noharvest")
                            elif tool in ("rclone-copy", "rclone-tuned"):
                                r = run_rclone_copy(target, ds, dest, args.timeout, tuned=tool == "rclone-tuned")
                            else:
                                r = run_naive(target, ds, dest, args.naive_limit, args.timeout)
                        finally:
                            target.cleanup(dest)
                        if tool.startswith("trayagent"):
                            logs_out = base / f"{tool}-{target.name}-{ds.name}-{rep}.log"
                            logs_out.write_bytes(b"".join(f.read_bytes() for f in
                                                          sorted((homes / tag / "logs").glob("*.log"))))
                            shutil.rmtree(homes / tag, ignore_errors=True)
                        extra = (f" (first {r.measured_files} files in {r.measured_seconds:.1f} s, extrapolated)"
                                 if r.extrapolated else "")
                        print(f"  {target.name:<6} {ds.name:<13} {tool:<15} {r.seconds:8.2f} s "
                              f"{r.mb_s:8.1f} MB/s{extra}", flush=True)
                        samples[tool].append(r)
                results += [median_result(samples[tool]) for tool in tools]

        # keep trayagent logs next to the JSON results: they explain where the time went
        out_dir = REPO / "build" / "bench-results"
        out_dir.mkdir(parents=True, exist_ok=True)
        for log in base.glob("trayagent-*.log"):
            shutil.copy(log, out_dir / f"upload-{stamp}-{log.name}")

    print()
    print_table(results)
    ratio_rows = ratios(results)
    print_ratios(ratio_rows)
    print_phases(results)
    print("\nstartup cost (best of 3): " + ", ".join(f"{k}: {v:.2f} s" for k, v in probe.items()))
    total = time.monotonic() - started
    doc = {
        "timestamp": stamp, "mode": "quick" if args.quick else "full", "git_commit": commit, "trayagent_dirty": dirty,
        "cpus": os.cpu_count(), "rclone": rclone_version[0] if rclone_version else "",
        "transfers": TRANSFERS, "naive_limit": args.naive_limit, "repeat": args.repeat or "5 for one file, else 3",
        "datasets": [{"name": d.name, "files": len(d.files), "bytes": d.bytes} for d in datasets],
        "results": [{**asdict(r), "mb_per_s": round(r.mb_s, 2), "files_per_s": round(r.files_s, 2),
                     "seconds": round(r.seconds, 3), "measured_seconds": round(r.measured_seconds, 3),
                     "client_cpu": round(r.client_cpu, 2), "server_cpu": round(r.server_cpu, 2)}
                    for r in results],
        "speed_ratios": ratio_rows, "startup_seconds": probe, "total_seconds": round(total, 1),
    }
    write_results(f"upload-{stamp}", doc, total)
    return 0


if __name__ == "__main__":
    run_main(main, "servers and temp data")
