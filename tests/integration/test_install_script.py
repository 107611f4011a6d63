"""The README's Quick start (`bash build/install.sh`) with the distribution's own Python (issue 21).

Debian 12 and Ubuntu 24.04 mark /usr/bin/python3 as externally managed (PEP 668): `pip install` into it
stops with `externally-managed-environment`. The script installs into a virtual environment of its own
and links a `trayagent` command. Run as root, in a fresh HOME, with a PATH that holds nothing but the
system's, as a new user of a beamline PC would; the environment and the link go to this test's folder
(TRAYAGENT_VENV, TRAYAGENT_BIN_DIR) so that the machine keeps no trayagent of the test's making.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")

pytestmark = [pytest.mark.slow, pytest.mark.posix,
              pytest.mark.skipif(not SYSTEM_PYTHON.exists() or not sys.platform.startswith("linux"),
                                 reason="needs the distribution's /usr/bin/python3")]


def _externally_managed() -> bool:
    stdlib = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="the script installs Debian packages as root")
def test_quick_start_with_the_system_python_in_a_fresh_home(tmp_path: Path) -> None:
    home, venv, bin_dir = tmp_path / "home", tmp_path / "venv", tmp_path / "bin"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8", "TRAYAGENT_VENV": str(venv), "TRAYAGENT_BIN_DIR": str(bin_dir)}
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "PIP_CERT",
                 "PIP_CACHE_DIR", "PIP_DEFAULT_TIMEOUT", "PIP_CONSTRAINT", "SSL_CERT_FILE"):
        if name in os.environ:  # how this machine reaches the package index: not a user's choice
            env[name] = os.environ[name]
    before = {p.name for p in (ROOT / "build").iterdir()}
    out = subprocess.run(["bash", "build/install.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=1500, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert f"the command: {bin_dir / 'trayagent'}" in out.stdout

    # the environment is the system Python's, which PEP 668 keeps pip out of
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "home = /usr/bin" in cfg and "include-system-site-packages = true" in cfg
    if sysconfig.get_config_var("EXT_SUFFIX") and _externally_managed():
        refused = subprocess.run([str(SYSTEM_PYTHON), "-m", "pip", "install", "--dry-run", "trayagent"],
                                 env=env, capture_output=True, text=True, check=False)
        assert refused.returncode != 0  # what the old Quick start ran into

    version = subprocess.run([str(bin_dir / "trayagent"), "--version"], env={**env, "PATH": f"{bin_dir}:{env['PATH']}"},
                             capture_output=True, text=True, timeout=120, check=False)
    assert version.returncode == 0 and version.stdout.startswith("trayagent "), version
    gi = subprocess.run([str(venv / "bin" / "python"), "-c", "import gi, trayagent; print(trayagent.__file__)"],
                        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert gi.returncode == 0 and gi.stdout.startswith(str(venv)), gi  # the tray's GTK from Debian, our own copy

    # pip's setuptools build left nothing among the packaging scripts (build/lib, build/bdist.*)
    assert {p.name for p in (ROOT / "build").iterdir()} == before
