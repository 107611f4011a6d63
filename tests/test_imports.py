"""Start-up cost of a CLI run: the upload path must not import what only other commands need."""

from __future__ import annotations

import subprocess
import sys


def test_cli_import_leaves_requests_keyring_and_watchdog_for_later() -> None:
    """requests (~60 ms, catalogue), keyring (read only when a secret is needed, while rclone
    starts) and watchdog (sync sessions) are imported where they are used."""
    code = ("import sys, trayagent.cli, trayagent.uploader, trayagent.engine\n"
            "print(sorted(m for m in ('requests', 'keyring', 'watchdog') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_import_leaves_the_http_client_until_rclone_is_launched() -> None:
    """http.client (~10-18 ms with ssl and email) is loaded by the first rc call or agent request,
    so that ``trayagent upload`` launches rclone first and rclone starts up meanwhile."""
    code = "import sys, trayagent.cli\nprint('http.client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
