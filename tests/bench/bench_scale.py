#!/usr/bin/env python3
"""Scale benchmark (issue 22): many small files, trayagent against `rclone copy` in the same run.

Usage::

    python3 tests/bench/bench_scale.py [--files 10000,100000] [--targets local,webdav,s3] [--rounds 3]
    python3 tests/bench/bench_scale.py --files 1000000 --targets local --rounds 1 --file-bytes 1

For each file count a tree of ``--file-bytes`` (4,096) byte files in 100 folders is written once. Per
target and round, interleaved (the order of the tools alternates from round to round):

  trayagent       ``trayagent upload TREE --dataset X --json`` with a fresh TRAYAGENT_HOME and a fresh
                  destination: rclone start, checksums, verification, registration, the manifest
  rclone-copy     ``rclone copy TREE DEST`` with what trayagent sets (its backend options, the ``auto``
                  number of transfers, ``--checkers 8``, ``--buffer-size 0``) into a fresh destination
  rclone-copy-small  (S3) the same plus what trayagent sets for its copies of small files only
                  (``storage.target.SMALL_FILES``: no HEAD per object, which trayagent's listing replaces;
                  this copy reads nothing back)
  trayagent-noop  the same upload again, nothing changed (the queue's own records decide)
  rclone-noop     the same copy again into the filled destination (rclone lists and compares)

``local`` is the embedded default storage (a folder) and the local catalogue; rclone copies to a
folder on the same disk. Peak RSS comes from /proc: VmHWM of the ``trayagent upload`` process as it
returns (a driver prints it), and of its ``rclone rcd`` child sampled every 50 ms until it ends (VmHWM
only grows, so the last sample is the peak up to 50 ms before the end); ``rclone copy``'s from
wait4. CPU seconds the same way: trayagent's Python as it returns, its rclone's last sample, ``rclone
copy``'s from wait4, and the storage server's (S3, WebDAV) over each run: on 2 cores shared with the
server, a tool's time follows the CPU that all three spend. After the first upload of a round: the
time of ``trayagent status --json`` and the sizes of the queue and catalogue databases. Ratios are
rclone time / trayagent time (>= 1.0: trayagent as fast), medians over rounds, with a 95 % bootstrap
interval from 5 rounds on. Results go to build/bench-results/scale-<timestamp>.json. Not a pytest module.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "support"))
sys.path.insert(0, str(HERE))

from agentctl import Trayagent  # noqa: E402
from bench_upload import Dest, S3Target, Target, WebDAVTarget, rclone_cmd_env  # noqa: E402
from benchlib import git_commit, prepare_environment, proc_cpu, ratio_interval, run_main, write_results  # noqa: E402
from servers import S3Server, SessionKeyring, WebDAVServer, random_secret  # noqa: E402

from trayagent.storage.target import SMALL_FILES  # noqa: E402

# `trayagent upload` in-process, printing its own peak RSS when it returns (rclone is another process)
DRIVER = ("import sys, time\nfrom trayagent.cli.main import main\ncode = main(sys.argv[1:])\n"
          "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
          "sys.stderr.write(f'\\nVmHWM_KB={hwm.split()[1]} CPU_S={time.process_time():.3f}\\n')\nsys.exit(code)\n")


class LocalTarget(Target):
    """The embedded default storage: a folder under TRAYAGENT_HOME; rclone copies to a folder beside."""

    name = "local"
    backend = "local"

    def __init__(self, base: Path) -> None:
        self.base = base

    def rclone_env(self) -> dict[str, str]:
        return {}

    def fresh(self, tag: str) -> Dest:
        return Dest(tag, str(self.base / tag), "")

    def configure(self, ta: Trayagent, dest: Dest) -> None:
        pass  # no config file: the embedded default

    def cleanup(self, dest: Dest) -> None:
        shutil.rmtree(dest.rclone_path, ignore_errors=True)

    @property
    def server_pid(self) -> int | None:
        return None


def make_tree(root: Path, files: int, size: int) -> None:
    payload = os.urandom(size)
    per_dir = max(1, files // 100)
    for i in range(files):
        folder = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:07d}.dat").write_bytes(payload)


def _hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _rclone_child(pid: int) -> int | None:
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                if "rclone" in Path(f"/proc/{child}/comm").read_text():
                    return int(child)
    except OSError:
        pass
    return None


def run_trayagent(ta: Trayagent, tree: Path, timeout: float, checkout: Path | None = None,
                  server_pid: int | None = None) -> dict[str, Any]:
    """One upload: wall time, its peak RSS and its rclone's, and the CPU seconds of trayagent's Python
    (as it returns), of its rclone (sampled every 50 ms: the last ones may be missed) and of the storage
    server. ``checkout``: run the trayagent of that source tree (``python -c`` imports from its working
    directory) instead of the installed one."""
    rclone_peak, rclone_cpu = [0], [0.0]
    server_before = proc_cpu(server_pid)
    begun = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "upload", str(tree), "--dataset", "scale", "--json"],
                            env=ta.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=checkout or HERE.parent.parent)

    def sample() -> None:
        child = None
        while proc.poll() is None:
            child = child or _rclone_child(proc.pid)
            if child:
                rclone_peak[0] = max(rclone_peak[0], _hwm(child))
                rclone_cpu[0] = proc_cpu(child) or rclone_cpu[0]
            time.sleep(0.05)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=timeout)
    seconds = time.perf_counter() - begun
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"trayagent upload exit {proc.returncode}: {err[-2000:]}")
    tail = err.rsplit("VmHWM_KB=", 1)[1].split()
    return {"seconds": seconds, "rss": int(tail[0]) * 1024, "rclone_rss": rclone_peak[0],
            "cpu": {"python": float(tail[1].removeprefix("CPU_S=")), "rclone": rclone_cpu[0],
                    "server": _cpu_since(server_pid, server_before)},
            "files_ok": __import__("json").loads(out)["files_ok"]}


def _cpu_since(pid: int | None, before: float | None) -> float | None:
    now = proc_cpu(pid)
    return None if now is None or before is None else round(now - before, 2)


def small_file_flags(target: Target) -> list[str]:
    """rclone flags for what trayagent sets on its copies of small files only (``SMALL_FILES``)."""
    return [f"--{target.backend}-{key.replace('_', '-')}={value}"
            for key, value in SMALL_FILES.get(target.backend, {}).items()]


def run_rclone(target: Target, tree: Path, dest: Dest, timeout: float, extra: list[str] | None = None
               ) -> dict[str, Any]:
    cmd = ["rclone", "copy", str(tree), dest.rclone_path, "--checkers=8", *target.tuned_flags(), *(extra or [])]
    server_before = proc_cpu(target.server_pid)
    begun = time.perf_counter()
    proc = subprocess.Popen(cmd, env=rclone_cmd_env(target), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - begun
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"rclone copy exit {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    return {"seconds": seconds, "rss": usage.ru_maxrss * 1024,
            "cpu": {"rclone": round(usage.ru_utime + usage.ru_stime, 2),
                    "server": _cpu_since(target.server_pid, server_before)}}


def after_upload(ta: Trayagent) -> dict[str, Any]:
    begun = time.perf_counter()
    ta.run("status", "--json", check=True)
    data = ta.home / "data"
    size = lambda name: sum(p.stat().st_size for p in data.glob(name + "*"))  # noqa: E731 (with -wal)
    return {"status_s": time.perf_counter() - begun, "queue_db": size("queue.sqlite"),
            "catalogue_db": size("catalogue.sqlite")}


def one_round(target: Target, tree: Path, base: Path, tag: str, flip: bool, timeout: float,
              compare: Path | None = None) -> dict[str, Any]:
    ta = Trayagent(base / f"home-{tag}")
    dest_ta, dest_rc = target.fresh(f"ta{tag}"), target.fresh(f"rc{tag}")
    target.configure(ta, dest_ta)
    out: dict[str, Any] = {}
    uploads: list[tuple[Trayagent | None, Dest]] = [(ta, dest_ta)]  # each upload's home and destination
    try:
        pid = target.server_pid
        steps = [("trayagent", lambda: run_trayagent(ta, tree, timeout, server_pid=pid)),
                 ("rclone-copy", lambda: run_rclone(target, tree, dest_rc, timeout))]
        if small_file_flags(target):  # and with what trayagent sets for small files only (S3: no HEAD)
            dest_small = target.fresh(f"rs{tag}")
            uploads.append((None, dest_small))
            steps.append(("rclone-copy-small", lambda: run_rclone(target, tree, dest_small, timeout,
                                                                  small_file_flags(target))))
        if compare is not None:  # the other checkout's first upload, in the same round
            ta_base, dest_base = Trayagent(base / f"home-base-{tag}"), target.fresh(f"tb{tag}")
            target.configure(ta_base, dest_base)
            uploads.append((ta_base, dest_base))
            steps.insert(1, ("trayagent-base", lambda: run_trayagent(ta_base, tree, timeout, compare, pid)))
        for name, step in (reversed(steps) if flip else steps):
            subprocess.run(["sync"], check=False)
            out[name] = step()
        out["after"] = after_upload(ta)
        noop = [("trayagent-noop", lambda: run_trayagent(ta, tree, timeout)),
                ("rclone-noop", lambda: run_rclone(target, tree, dest_rc, timeout))]
        for name, step in (reversed(noop) if flip else noop):
            out[name] = step()
    finally:
        for home, dest in uploads:
            target.cleanup(dest)
            if home is not None:
                home.close()
                shutil.rmtree(home.home, ignore_errors=True)
        target.cleanup(dest_rc)
    return out


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    med = lambda tool, key: statistics.median(r[tool][key] for r in rounds)  # noqa: E731
    out: dict[str, Any] = {k: round(med(k, "seconds"), 3) for k in
                           ("trayagent", "rclone-copy", "trayagent-noop", "rclone-noop")}
    out["ratio"] = round(out["rclone-copy"] / out["trayagent"], 2)
    out["ratio_noop"] = round(out["rclone-noop"] / out["trayagent-noop"], 2)
    pairs = (("trayagent", "rclone-copy", "interval"), ("trayagent-noop", "rclone-noop", "interval_noop"))
    for tool, ref, key in pairs:
        iv = ratio_interval([r[ref]["seconds"] for r in rounds], [r[tool]["seconds"] for r in rounds])
        out[key] = [round(v, 2) for v in iv] if iv else None
    out["rss_mb"] = {k: round(max(r[t]["rss"] for r in rounds) / 2**20, 1) for k, t in
                     (("trayagent", "trayagent"), ("trayagent_noop", "trayagent-noop"), ("rclone_copy", "rclone-copy"))}
    out["rss_mb"]["trayagent_rclone"] = round(max(r["trayagent"]["rclone_rss"] for r in rounds) / 2**20, 1)
    if "trayagent-base" in rounds[0]:  # --compare: this checkout against the other one
        out["trayagent-base"] = round(med("trayagent-base", "seconds"), 3)
        out["ratio_base"] = round(out["rclone-copy"] / out["trayagent-base"], 2)
        iv = ratio_interval([r["trayagent-base"]["seconds"] for r in rounds],
                            [r["trayagent"]["seconds"] for r in rounds])
        out["interval_base_over_this"] = [round(v, 2) for v in iv] if iv else None
    if "rclone-copy-small" in rounds[0]:
        out["rclone-copy-small"] = round(med("rclone-copy-small", "seconds"), 3)
        out["ratio_small"] = round(out["rclone-copy-small"] / out["trayagent"], 2)
    out["cpu_s"] = {tool: {part: round(statistics.median(r[tool]["cpu"][part] or 0 for r in rounds), 2)
                           for part in rounds[0][tool]["cpu"]}
                    for tool in ("trayagent", "trayagent-base", "rclone-copy", "rclone-copy-small")
                    if tool in rounds[0]}
    out["status_s"] = round(statistics.median(r["after"]["status_s"] for r in rounds), 3)
    out["queue_db_mb"] = round(rounds[0]["after"]["queue_db"] / 2**20, 1)
    out["catalogue_db_mb"] = round(rounds[0]["after"]["catalogue_db"] / 2**20, 1)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", default="10000,100000")
    p.add_argument("--targets", default="local,webdav,s3")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--file-bytes", type=int, default=4096)
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--compare", type=Path, help="another checkout of trayagent (e.g. a git worktree of the "
                   "previous commit): its first upload runs in every round too, as trayagent-base")
    args = p.parse_args()
    prepare_environment()
    started = time.monotonic()
    doc: dict[str, Any] = {"commit": git_commit(), "when": datetime.now().isoformat(timespec="seconds"),
                           "file_bytes": args.file_bytes, "rounds": args.rounds, "results": {}}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        base = Path(tmp)
        servers: list[Any] = [SessionKeyring(base / "keyring").__enter__()]  # storage secrets for the remotes
        try:
            for n in (int(x) for x in args.files.split(",")):
                tree = base / f"tree{n}"
                print(f"writing {n:,} files of {args.file_bytes} B ...", flush=True)
                make_tree(tree, n, args.file_bytes)
                for name in args.targets.split(","):
                    target = _target(name, base, servers)
                    rounds = [one_round(target, tree, base, f"{n}-{name}-{i}", i % 2 == 1, args.timeout,
                                        args.compare) for i in range(args.rounds)]
                    summary = summarise(rounds)
                    doc["results"][f"{name}-{n}"] = {"summary": summary, "rounds": rounds}
                    print(f"{name:<7} {n:>9,} files: {summary}", flush=True)
                shutil.rmtree(tree, ignore_errors=True)
        finally:
            for server in reversed(servers):
                server.__exit__(None, None, None)
    write_results(f"scale-{datetime.now():%Y%m%d-%H%M%S}", doc, time.monotonic() - started)
    return 0


def _target(name: str, base: Path, servers: list[Any]) -> Target:
    if name == "local":
        return LocalTarget(base / "rclone-dest")
    if name == "webdav":
        server = WebDAVServer(base / "webdav", user="alice", password=random_secret()).__enter__()
        servers.append(server)
        return WebDAVTarget(server)
    if name == "s3":
        server = S3Server(base / "s3", access_key="AKSCALE", secret_key=random_secret(24)).__enter__()
        servers.append(server)
        return S3Target(server)
    raise SystemExit(f"unknown target {name!r} (local, webdav, s3)")


if __name__ == "__main__":
    run_main(main, "processes, servers and temp data")
