"""Small real file systems for the full-disk tests: a tmpfs of a chosen size (root mounts it), filled to
the last byte with dd, grown with a remount, and unmounted even while an ending process still holds a
file there."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = os.geteuid() == 0


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)


def grow_tmpfs(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte (dd stops at ENOSPC)."""
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True, check=False)
    return filler


def unmount(where: Path) -> None:
    """Unmount; lazily if a process that is ending still holds a file there."""
    for _ in range(20):
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.25)
    subprocess.run(["umount", "-l", str(where)], check=True)
