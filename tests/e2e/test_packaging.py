"""The frozen bundle and the .deb (issue 21), built from this repository and driven as a user would.

The bundle is built once per module with build/trayagent.spec (PyInstaller, rclone inside, ~1 min) and
run from where it was built: an upload to the embedded default, the headless agent taking an upload and
notifying through a real notification service on a private bus, and, on a private X display with a
real tray (trayer), the tray icon and a dialog window the agent opens by starting the bundle itself.
The .deb is built from that bundle by build/deb/build-deb.sh, checked by lintian, installed with apt,
run from /usr/bin and removed again (root only; skipped where trayagent is installed for real).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from desktop_session import AgentProcess, DesktopSession, descendants, top_windows, xdotool
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.posix,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux bundle and .deb")]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """build/trayagent.spec, built as a facility would build it: the bundle's program."""
    work = tmp_path_factory.mktemp("pyinstaller")
    out = subprocess.run([sys.executable, "-m", "PyInstaller", str(ROOT / "build" / "trayagent.spec"), "--noconfirm",
                          "--distpath", str(work / "dist"), "--workpath", str(work / "build")],
                         capture_output=True, text=True, timeout=1200, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    exe = work / "dist" / "trayagent" / "trayagent"
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert (exe.parent / "_internal" / "rclone").is_file()  # rclone travels inside
    return exe


def env_for(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = {**(base or os.environ), "TRAYAGENT_HOME": str(home), "TRAYAGENT_SITE_CONFIG": str(home / "no-site.toml")}
    env.pop("TRAYAGENT_CONFIG", None)
    # nothing of the test interpreter may help the bundle: no rclone or Python packages on PATH
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env.pop("PYTHONPATH", None)
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


def dataset(tmp_path: Path, name: str, files: int = 3) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for i in range(files):
        (folder / f"scan_{i}.h5").write_bytes(bytes([i]) * (1000 + i))
    return folder


def test_bundle_uploads_to_the_embedded_default(bundle: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = env_for(home)
    version = run([str(bundle), "--version"], env)
    assert version.returncode == 0 and version.stdout.startswith("trayagent "), version
    folder = dataset(tmp_path, "run7")
    out = run([str(bundle), "upload", str(folder), "--dataset", "run7", "--json"], env)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert (result["files_ok"], result["files_failed"], result["storage_path"]) == (3, 0, "no-proposal/run7")
    assert result["catalogue_id"].startswith("local/")  # registered in the embedded catalogue
    stored = home / "data" / "storage" / "no-proposal" / "run7"
    assert sorted(p.name for p in stored.iterdir() if p.suffix == ".h5") == ["scan_0.h5", "scan_1.h5", "scan_2.h5"]
    assert (stored / "scan_2.h5").read_bytes() == (folder / "scan_2.h5").read_bytes()
    status = run([str(bundle), "status", "--json"], env)
    assert status.returncode == 0 and "run7" in status.stdout


class BundleAgent(AgentProcess):
    """The desktop tests' agent process, started from the bundle."""

    def __init__(self, exe: Path, home: Path, env: dict[str, str], *args: str) -> None:
        super().__init__(home, env_for(home, env), *args)
        self.program = (str(exe),)


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[DesktopSession]:
    with DesktopSession(tmp_path / "desktop") as session:
        yield session


def test_bundle_headless_agent_uploads_and_notifies(bundle: Path, desktop: DesktopSession, tmp_path: Path) -> None:
    agent = BundleAgent(bundle, tmp_path / "home", desktop.env(), "agent", "--headless").start()
    try:
        folder = dataset(tmp_path, "run8", files=5)
        out = run([str(bundle), "upload", str(folder), "--dataset", "run8"], agent.env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert desktop.recorder is not None
        wait_until(lambda: any("run8" in n["summary"] for n in desktop.recorder.records()), 30, 0.2,
                   "the bundle's notification to reach the notification service")
        assert (tmp_path / "home" / "data" / "storage" / "no-proposal" / "run8" / "scan_4.h5").is_file()
    finally:
        agent.stop()
    assert "Traceback" not in agent.log_text + agent.output, agent.log_text[-3000:] + agent.output


def test_bundle_tray_icon_and_dialog_under_xvfb(bundle: Path, desktop: DesktopSession, tmp_path: Path) -> None:
    agent = BundleAgent(bundle, tmp_path / "home", desktop.env(), "agent").start()
    try:
        def docked() -> bool:
            panels = [w for w in top_windows(desktop.display) if w["class"] == ("panel", "trayer") and w["mapped"]]
            return bool(panels) and any(w["mapped"] and w["class"] and w["class"][0] == "trayagent"
                                        for w in descendants(desktop.display, panels[0]["id"]))

        wait_until(docked, 60, 0.3, "the bundle's tray icon docked in the tray")
        agent.api("POST", "/api/show/settings")

        def window() -> str:
            try:
                return xdotool(desktop.display, "search", "--onlyvisible", "--name", "^trayagent: Settings$")
            except (AssertionError, subprocess.SubprocessError):
                return ""

        wait_until(window, 90, 0.5, "the Settings dialog window (the bundle started itself)")
        dialogs = [c for c in agent.children_cmdlines() if "dialog" in c]
        assert dialogs and dialogs[0][0] == str(bundle) and dialogs[0][1:3] == ["dialog", "settings"], dialogs
        desktop.screenshot("bundle-settings.png")
    finally:
        agent.stop()


def _installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    return "install ok installed" in out.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: root only")
def test_deb_builds_passes_lintian_installs_runs_and_is_removed(bundle: Path, tmp_path: Path) -> None:
    if _installed("trayagent"):
        pytest.skip("trayagent is installed on this machine for real: not touched")
    out = run(["bash", str(ROOT / "build" / "deb" / "build-deb.sh"), str(tmp_path / "out")],
              {**os.environ, "TRAYAGENT_BUNDLE": str(bundle.parent)}, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    deb = Path(out.stdout.strip().splitlines()[-1])
    assert deb.name.startswith("trayagent_") and deb.suffix == ".deb" and deb.is_file()
    lint = run(["lintian", "--fail-on", "error,warning", str(deb)], dict(os.environ), timeout=1200)
    assert lint.returncode == 0, lint.stdout[-4000:] + lint.stderr[-2000:]
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        install = run(["apt-get", "install", "-y", "-q", str(deb)], apt_env, timeout=600)
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
        assert Path("/usr/bin/trayagent").resolve() == Path("/opt/trayagent/trayagent")
        home = tmp_path / "home"
        version = run(["/usr/bin/trayagent", "--version"], env_for(home))
        assert version.returncode == 0 and version.stdout.startswith("trayagent "), version
        folder = dataset(tmp_path, "run9")
        up = run(["/usr/bin/trayagent", "upload", str(folder), "--dataset", "run9"], env_for(home))
        assert up.returncode == 0, up.stdout + up.stderr
        assert (home / "data" / "storage" / "no-proposal" / "run9" / "scan_0.h5").is_file()
        entry = Path("/usr/share/applications/trayagent.desktop").read_text()
        assert "Exec=trayagent open %F" in entry
        assert Path("/usr/share/icons/hicolor/64x64/apps/trayagent.png").is_file()
        assert not Path("/etc/xdg/autostart/trayagent.desktop").exists()  # autostart is each user's choice
    finally:
        remove = run(["apt-get", "remove", "--purge", "-y", "-q", "trayagent"], apt_env, timeout=600)
    assert remove.returncode == 0, remove.stdout[-3000:] + remove.stderr[-3000:]
    assert not _installed("trayagent")
    assert not Path("/opt/trayagent").exists() and not Path("/usr/bin/trayagent").exists()
    assert shutil.which("trayagent", path="/usr/bin") is None
