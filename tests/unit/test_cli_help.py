"""`trayagent --help` lists the commands a person uses, not the internal `dialog` (issue 19.10)."""

from __future__ import annotations

import subprocess
import sys


def test_help_hides_the_internal_dialog_command() -> None:
    out = subprocess.run([sys.executable, "-m", "trayagent.cli", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "SUPPRESS" not in out, out
    assert "dialog" not in out.split("options:")[0].replace("Dataset dialog", ""), out
    assert "install-desktop" in out and "upload" in out
