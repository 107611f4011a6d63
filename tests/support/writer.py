"""A stand-alone acquisition-system stand-in: writes files the way detectors and DAQ software do.

Run as a separate process by the sync tests, so the agent sees another process's writes (its
close events, its open handles), never the test's own:

    python writer.py chunks PATH --chunks 20 --pause 0.5 --size 65536   # one file, kept open
    python writer.py append PATH --first 4096 --second 4096 --gap 1.5  # close, reopen, append
    python writer.py burst DIR --count 2000 --size 256 --per-dir 250   # many small files, fast
    python writer.py hold PATH --until FLAG --pause 0.3                # write until FLAG exists
    python writer.py files DIR NAME[=SIZE] ...                         # plain files, one go

Content is random bytes; the tests take the local file, once the writer has exited, as the truth.
Each chunk is flushed so that size and mtime move while the file stays open. The writer prints
"started" once its file is open (and holds data), so a test can start observing at that point.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _say(text: str) -> None:
    print(text, flush=True)


def chunks(path: Path, count: int, pause: float, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for i in range(count):
            fh.write(os.urandom(size))
            fh.flush()
            if i == 0:
                _say("started")
            if i < count - 1:
                time.sleep(pause)
    _say("closed")


def append(path: Path, first: int, second: int, gap: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if first:  # --first 0: only reopen an existing file and append
        with open(path, "wb") as fh:
            fh.write(os.urandom(first))
        _say("closed once")
        time.sleep(gap)
    with open(path, "ab") as fh:
        fh.write(os.urandom(second))
    _say("closed again")


def burst(root: Path, count: int, size: int, per_dir: int) -> None:
    for i in range(count):
        path = root / f"scan{i // per_dir:03d}" / f"frame_{i:06d}.tif"
        if i % per_dir == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(os.urandom(size))
    _say(f"wrote {count}")


def hold(path: Path, until: Path, pause: float, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        first = True
        while not until.exists():
            fh.write(os.urandom(size))
            fh.flush()
            if first:
                _say("started")
                first = False
            time.sleep(pause)
    _say("closed")


def files(root: Path, specs: list[str]) -> None:
    for spec in specs:
        name, _, size = spec.partition("=")
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(os.urandom(int(size) if size else 1024))
    _say(f"wrote {len(specs)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="writer")
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("chunks")
    c.add_argument("path", type=Path)
    c.add_argument("--chunks", type=int, default=20)
    c.add_argument("--pause", type=float, default=0.5)
    c.add_argument("--size", type=int, default=65536)
    a = sub.add_parser("append")
    a.add_argument("path", type=Path)
    a.add_argument("--first", type=int, default=4096)
    a.add_argument("--second", type=int, default=4096)
    a.add_argument("--gap", type=float, default=1.5)
    b = sub.add_parser("burst")
    b.add_argument("root", type=Path)
    b.add_argument("--count", type=int, default=2000)
    b.add_argument("--size", type=int, default=256)
    b.add_argument("--per-dir", type=int, default=250)
    h = sub.add_parser("hold")
    h.add_argument("path", type=Path)
    h.add_argument("--until", type=Path, required=True)
    h.add_argument("--pause", type=float, default=0.3)
    h.add_argument("--size", type=int, default=4096)
    f = sub.add_parser("files")
    f.add_argument("root", type=Path)
    f.add_argument("specs", nargs="+")
    args = p.parse_args(argv)
    if args.mode == "chunks":
        chunks(args.path, args.chunks, args.pause, args.size)
    elif args.mode == "append":
        append(args.path, args.first, args.second, args.gap)
    elif args.mode == "burst":
        burst(args.root, args.count, args.size, args.per_dir)
    elif args.mode == "hold":
        hold(args.path, args.until, args.pause, args.size)
    else:
        files(args.root, args.specs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
