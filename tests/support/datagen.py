"""Test data: trees of files with awkward names, and helpers to compare them with storage."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ODD_NAMES = ["plain.dat", "with space.h5", "ünïcödé-Å.tif", "new\nline.txt", "hash#pct%.log",
             "empty.bin", "nested/deeper/still/leaf.raw", "nested/a b/c.dat"]


def make_tree(root: Path, names: list[str] = ODD_NAMES, size: int = 4096) -> dict[str, bytes]:
    """Files with random content (``empty.bin`` has 0 bytes); returns relpath -> bytes."""
    content: dict[str, bytes] = {}
    for name in names:
        data = b"" if name.endswith("empty.bin") else os.urandom(size)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        content[name] = data
    return content


def make_many(root: Path, count: int, size: int = 1024, per_dir: int = 500) -> dict[str, bytes]:
    content = {}
    for i in range(count):
        rel = f"d{i // per_dir:03d}/frame_{i:06d}.bin"
        data = os.urandom(size)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        content[rel] = data
    return content


def tree_of(root: Path, skip: tuple[str, ...] = ("ro-crate-metadata.json",)) -> dict[str, bytes]:
    """relpath -> bytes of every file under ``root`` (what a storage folder holds)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
            if rel not in skip:
                out[rel] = Path(dirpath, f).read_bytes()
    return out


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def blake2b(data: bytes) -> str:
    return hashlib.blake2b(data).hexdigest()


def blake3(data: bytes) -> str:
    """trayagent's checksum where storage has no hash of its own (e.g. wsgidav)."""
    import blake3 as _b3

    return _b3.blake3(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
