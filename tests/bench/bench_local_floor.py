#!/usr/bin/env python3
"""The floor of a verified copy to local storage in Python, against `rclone copy` (issue 22).

Usage::

    python3 tests/bench/bench_local_floor.py [--files 20000] [--rounds 5] [--workers 2]

Issue 22 asks trayagent to be at least as fast as `rclone copy` to the embedded local storage, with
checksums, verification and registration included. On tmpfs `rclone copy` of small files keeps both
cores of this machine busy, so trayagent (which drives that same rclone) cannot reach it. This bench
asks the next question: could trayagent reach it by copying local files itself?

``floor`` is the least such a design must do, written as tightly as this bench knows how, and timed
inside its process (interpreter start and imports excluded, which favours it):

  scan      the tree with trayagent's scanner, into trayagent's queue database (its real schema)
  copy      in ``--workers`` processes (threads are slower: the GIL): read each file, MD5 it, write
            a ``.part`` file, set its mtime, rename it into place, read it back and MD5 it again
  record    the queue's own writes for each batch: uploading, uploaded with its checksum, verified

It leaves out what trayagent also does, so a real design would be slower still: the catalogue's
registration, the RO-Crate manifest, the stat before and after each copy that catches a file still
being written, the harvest of metadata, and the start of the interpreter.

``rclone copy`` runs with what trayagent sets for a local folder (nothing of its own) and
``--checkers 8``, into a fresh folder, interleaved with the floor (the order alternates by round).
Ratios are rclone time / floor time (>= 1.0: the floor is as fast), the median over rounds with a 95 %
bootstrap interval from 5 rounds on. Results go to build/bench-results/local-floor-<timestamp>.json.
Not a pytest module.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scale import make_tree  # noqa: E402
from benchlib import git_commit, prepare_environment, ratio_interval, run_main, write_results  # noqa: E402

from trayagent.pipeline.scan import Filters, Source, batched, scan  # noqa: E402
from trayagent.queue import Queue, QueuedFile, State  # noqa: E402

BATCH = 1000  # files per queue batch (trayagent's ENQUEUE_BATCH)
CHUNK = 250   # files per task handed to a worker process


def copy_chunk(dest: str, items: list[tuple[str, str, int]]) -> list[str]:
    """Copy, then read back; returns each file's MD5 (a mismatch read back raises)."""
    hashes = []
    for src, rel, mtime_ns in items:
        target = os.path.join(dest, rel)
        fd = os.open(src, os.O_RDONLY)
        try:
            data = os.read(fd, 1 << 24)
        finally:
            os.close(fd)
        digest = hashlib.md5(data).hexdigest()
        part = target + ".part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
        os.replace(part, target)
        fd = os.open(target, os.O_RDONLY)
        try:
            back = os.read(fd, 1 << 24)
        finally:
            os.close(fd)
        if hashlib.md5(back).hexdigest() != digest:
            raise OSError(f"{target}: read back differs")
        hashes.append(digest)
    return hashes


def floor(tree: Path, dest: Path, workdir: Path, workers: int) -> float:
    """Seconds from the scan to the last queue write (the pool is started before the clock)."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pool.submit(len, "").result()  # the workers exist before the clock starts
        begun = time.perf_counter()
        queue = Queue(workdir / "queue.db")
        ds = queue.ensure_dataset(name="floor", spec={}, mode="batch", storage_url="local",
                                  storage_path="floor", catalogue_kind="local")
        for chunk in batched(scan([Source(tree, "")], Filters()), BATCH):
            queue.enqueue(ds.id, chunk)
        in_flight: tuple[list[QueuedFile], list[Future[list[str]]]] | None = None
        while batch := queue.due(ds.id, State.PENDING, BATCH):
            queue.mark([f.id for f in batch], State.UPLOADING, expect=State.PENDING)
            items = [(f.local_file, f.relpath, f.mtime_ns or 0) for f in batch]
            futures = [pool.submit(copy_chunk, str(dest), items[i:i + CHUNK]) for i in range(0, len(items), CHUNK)]
            if in_flight is not None:  # the previous batch is recorded while this one copies
                _record(queue, *in_flight)
            in_flight = (batch, futures)
        if in_flight is not None:
            _record(queue, *in_flight)
        seconds = time.perf_counter() - begun
        done = queue.counts(ds.id)[State.VERIFIED.value]
        queue.close()
    return seconds if done else float("nan")


def _record(queue: Queue, batch: list[QueuedFile], futures: list[Future[list[str]]]) -> None:
    hashes = [h for future in futures for h in future.result()]
    pairs = list(zip(batch, hashes, strict=True))
    queue.mark_uploaded([(f.id, f.size or 0, f.mtime_ns or 0, h, "md5") for f, h in pairs], [])
    queue.mark_verified([(f.id, "md5", h) for f, h in pairs])


def rclone_copy(tree: Path, dest: Path) -> float:
    begun = time.perf_counter()
    subprocess.run(["rclone", "copy", str(tree), str(dest), "--checkers=8"], check=True,
                   env={**os.environ, "RCLONE_CONFIG": os.devnull})
    return time.perf_counter() - begun


def stored(dest: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(dest))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--file-bytes", type=int, default=4096)
    args = p.parse_args()
    if min(args.files, args.rounds, args.workers, args.file_bytes) < 1:
        p.error("--files, --rounds, --workers and --file-bytes must be at least 1")
    prepare_environment()
    started = time.perf_counter()
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="trayagent-floor-") as tmp:
        base = Path(tmp)
        tree = base / "tree"
        make_tree(tree, args.files, args.file_bytes)
        for n in range(args.rounds):
            result: dict[str, float] = {}
            order = ["floor", "rclone-copy"] if n % 2 == 0 else ["rclone-copy", "floor"]
            for tool in order:
                dest, work = base / f"dest-{tool}", base / f"work-{tool}"
                work.mkdir()
                result[tool] = (floor(tree, dest, work, args.workers) if tool == "floor"
                                else rclone_copy(tree, dest))
                if stored(dest) != args.files:
                    raise SystemExit(f"{tool}: {stored(dest)} files stored, {args.files} expected")
                shutil.rmtree(dest)
                shutil.rmtree(work)
            rounds.append(result)
            print(f"round {n + 1}: floor {result['floor']:.2f} s, rclone copy {result['rclone-copy']:.2f} s, "
                  f"ratio {result['rclone-copy'] / result['floor']:.2f}", flush=True)
    ours, ref = [r["floor"] for r in rounds], [r["rclone-copy"] for r in rounds]
    interval = ratio_interval(ref, ours)
    ratio = statistics.median(ref) / statistics.median(ours)
    print(f"\n{args.files} files of {args.file_bytes} B, {args.workers} workers: "
          f"floor {statistics.median(ours):.2f} s, rclone copy {statistics.median(ref):.2f} s, ratio {ratio:.2f}"
          + (f" (95 % {interval[0]:.2f}-{interval[1]:.2f})" if interval else ""))
    doc: dict[str, Any] = {"commit": git_commit(), "files": args.files, "file_bytes": args.file_bytes,
                           "workers": args.workers, "rounds": rounds, "ratio": round(ratio, 3),
                           "interval": interval}
    write_results(f"local-floor-{datetime.now():%Y%m%d-%H%M%S}", doc, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    run_main(main, "the tree and destinations")
