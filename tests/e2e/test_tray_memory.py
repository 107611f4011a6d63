"""The agent with its tray icon holds no OpenGL driver (issue 19: "the agent holds 137 MB after an hour,
67 MB fresh; it should stay within 80 MB").

GDK 3 on X11 initialises GLX when it opens the display; with Mesa (here llvmpipe under Xvfb) that maps
libLLVM and the DRI driver into the agent: 121 MB resident at start, 43 MB of it libLLVM, for an icon that
draws no GL. The agent now starts GTK with GDK_GL=disable, and hands the processes it starts (dialog
windows: WebKit) the environment without it. Real agent, real tray (trayer) on Xvfb, the real dialog
process it starts; figures from /proc.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_for

sys.path.insert(0, str(Path(__file__).parent))

from desktop_session import AgentProcess, DesktopSession, descendants, top_windows  # noqa: E402

pytestmark = pytest.mark.timeout(300)
GL_LIBRARIES = ("libLLVM", "_dri.so", "libGLX_mesa", "libgallium")


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[DesktopSession]:
    with DesktopSession(tmp_path / "desktop") as session:
        yield session


def docked(desktop: DesktopSession) -> bool:
    panels = [w for w in top_windows(desktop.display) if w["class"] == ("panel", "trayer") and w["mapped"]]
    return any(w["mapped"] and w["class"] and w["class"][0] == "trayagent"
               for p in panels for w in descendants(desktop.display, p["id"]))


def mapped_libraries(pid: int) -> set[str]:
    return {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if ".so" in line}


def rss_mb(pid: int) -> float:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def test_the_tray_agent_loads_no_gl_driver_and_its_dialogs_get_gl_back(desktop: DesktopSession,
                                                                        tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "home", desktop.env()).start()
    try:
        wait_for(lambda: docked(desktop), 30, "the tray icon docked in trayer")
        agent.wait_log("tray: status Up to date")
        assert agent.proc is not None
        pid = agent.proc.pid
        time.sleep(2)
        gl = sorted(lib for lib in mapped_libraries(pid) if any(name in lib for name in GL_LIBRARIES))
        assert not gl, f"the tray agent maps a GL driver ({rss_mb(pid):.1f} MB resident): {gl}"
        assert "libgtk-3" in " ".join(mapped_libraries(pid))  # the GTK icon, not a fallback without GTK
        print(f"tray agent resident at start: {rss_mb(pid):.1f} MB")

        agent.api("POST", "/api/show/activity", {})

        def dialog() -> int | None:
            return next((int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                         and _is_dialog(int(p.name), pid)), None)

        child = wait_for(dialog, 30, "the Activity dialog process")
        assert "GDK_GL" not in environ(child), "the dialog window inherited the icon's GDK_GL=disable"
    finally:
        agent.stop()


def _is_dialog(pid: int, parent: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return int(stat[1]) == parent and b"dialog" in cmdline and b"activity" in cmdline
