"""Start-up cost of a CLI run: the upload path must not import what only other commands need."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_cli_import_leaves_requests_keyring_and_watchdog_for_later() -> None:
    """requests (~60 ms, catalogue), keyring (read only when a secret is needed, while rclone
    starts) and watchdog (sync sessions) are imported where they are used."""
    code = ("import sys, trayagent.cli, trayagent.uploader, trayagent.pipeline.engine\n"
            "print(sorted(m for m in ('requests', 'keyring', 'watchdog') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_import_leaves_the_http_client_until_rclone_is_launched() -> None:
    """http.client (~10-18 ms with ssl and email) is loaded by the first rc call or agent request,
    so that ``trayagent upload`` launches rclone first and rclone starts up meanwhile."""
    code = "import sys, trayagent.cli\nprint('http.client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_console_script_collects_no_garbage_until_its_start_up_is_over(tmp_path: Path) -> None:
    """Start-up objects all live on: the collector waits until the upload is planned (the engine
    imported, the queue open), then resumes with those objects frozen out of later collections."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(b"x")
    code = ("import gc, sys\nfrom trayagent.cli import main as cli\nopen_uploader = cli._uploader\n"
            "def spy(*args):\n    print('opening', gc.isenabled())\n    return open_uploader(*args)\n"
            "cli._uploader = spy\n"
            "cli._dry_run = lambda up, plan, as_json: print('planned', gc.isenabled(), gc.get_freeze_count() > 0) or 0\n"
            "sys.argv = ['trayagent', 'upload', sys.argv[1], '--dataset', 'd', '--dry-run']\ncli.run()\n")
    env = {**os.environ, "TRAYAGENT_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "src")], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["opening False", "planned True True"]
