"""A virtual X display (Xvfb) of the test's own, for the real pywebview windows and the tray."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest
from waiting import stop_process


@dataclass
class Display:
    name: str  # ":N"
    proc: subprocess.Popen[bytes]


def start_xvfb(screen: str = "1280x800x24") -> Display:
    """Xvfb on a display number it picks itself (-displayfd), so parallel runs never collide."""
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run build/dev-setup.sh")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten",
                             "tcp", "-noreset"], pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(write_fd)
    try:
        number = b""
        with os.fdopen(read_fd, "rb") as pipe:
            while not number.endswith(b"\n"):
                chunk = pipe.read(1)
                if not chunk:
                    raise AssertionError(f"Xvfb exited ({proc.poll()}) before naming its display")
                number += chunk
    except BaseException:
        stop_process(proc, 10)
        raise
    return Display(f":{int(number)}", proc)
