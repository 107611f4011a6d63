"""The real agent with its tray icon on a private X display with a real system tray (trayer).

What a user does: sees the icon in the tray, right-clicks it, picks Pause all, sees the icon change,
quits from the menu (also with uploads in flight), drops folders on the launcher while the agent runs.
Everything is observed from outside: the X window tree, screenshots, the control API, the agent log.
Screenshots go to tests/artifacts/ (tray-menu*.png).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from desktop_session import (
    AgentProcess,
    DesktopSession,
    descendants,
    top_windows,
    xdotool,
)
from waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
# the menu as the agent shows it with no sync session and the local catalogue (order matters: keyboard)
MENU = ["Start sync...", "Upload folder...", "Pause all", "Activity...", "Log in...", "Settings...",
        "Open log folder", "Quit"]


def with_upload(menu: list[str], name: str) -> list[str]:
    """The menu while a batch upload is under way: it is listed after the two ways to start one."""
    at = menu.index("Upload folder...") + 1
    return [*menu[:at], f"Uploading {name}", *menu[at:]]


IDLE_BLUE, PAUSED_ORANGE = (0, 114, 178), (230, 159, 0)


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DesktopSession]:
    """Xvfb + private session bus + trayer + notification recorder, for this module."""
    with DesktopSession(tmp_path_factory.mktemp("desktop")) as session:
        yield session


# -- helpers ----------------------------------------------------------------------------------------
def start_tray_agent(desktop: DesktopSession, home: Path, **env: str) -> AgentProcess:
    agent = AgentProcess(home, {**desktop.env(), **env})
    agent.start()
    return agent


@pytest.fixture
def tray_agent(desktop: DesktopSession, tmp_path: Path) -> Iterator[AgentProcess]:
    agent = start_tray_agent(desktop, tmp_path / "home")
    try:
        yield agent
    finally:
        agent.stop()


def panel(desktop: DesktopSession) -> dict[str, Any]:
    panels = [w for w in top_windows(desktop.display) if w["class"] == ("panel", "trayer") and w["mapped"]]
    assert panels, f"trayer's panel is not on screen: {top_windows(desktop.display)}"
    return panels[0]


def icon_window(desktop: DesktopSession, timeout: float = 30, wm_class: str | None = "trayagent") -> dict[str, Any]:
    """The tray icon: a mapped trayagent window docked (reparented) inside trayer's panel."""
    found: list[dict[str, Any]] = []

    def docked() -> bool:
        found[:] = [w for w in descendants(desktop.display, panel(desktop)["id"])
                    if w["mapped"] and w["width"] >= 16
                    and (wm_class is None or (w["class"] and w["class"][0] == wm_class))]
        return bool(found)

    wait_until(docked, timeout, 0.2, "the trayagent icon docked in trayer's panel")
    return found[0]


def settled_icon(desktop: DesktopSession, timeout: float = 10) -> dict[str, Any]:
    """The docked icon once it lies inside trayer's panel: trayer resizes and moves its panel after an
    icon docks, so geometry read in between is stale (the icon seen left of the old panel edge)."""
    found: list[dict[str, Any]] = []

    def inside() -> bool:
        icon, pan = icon_window(desktop), panel(desktop)
        found[:] = [icon]
        return pan["x"] <= icon["x"] < pan["x"] + pan["width"] and icon["y"] < pan["y"] + pan["height"]

    wait_until(inside, timeout, 0.2, "the docked tray icon to lie inside trayer's panel")
    return found[0]


def dominant(desktop: DesktopSession, win: dict[str, Any], name: str) -> tuple[int, int, int]:
    """The most frequent saturated colour of the icon (its disc), from a screenshot."""
    from PIL import Image

    path = desktop.screenshot(name, (win["x"], win["y"], win["x"] + win["width"], win["y"] + win["height"]))
    with Image.open(path) as img:
        colours: list[tuple[int, tuple[int, int, int]]] = img.convert("RGB").getcolors(1 << 16) or []  # type: ignore[assignment]
    saturated = [(n, c) for n, c in colours if max(c) - min(c) > 60]
    return max(saturated)[1]


def near(colour: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
    return sum(abs(a - b) for a, b in zip(colour, target, strict=True)) < 60


def menu_window(desktop: DesktopSession) -> dict[str, Any] | None:
    menus = [w for w in top_windows(desktop.display) if w["class"] and w["class"][0] == "trayagent"
             and w["override_redirect"] and w["mapped"] and w["height"] > 100]
    return menus[0] if menus else None


def open_menu(desktop: DesktopSession, icon: dict[str, Any]) -> dict[str, Any]:
    """Right-click the icon (as a user does) and wait for the popup menu."""
    # (no --sync: xdotool waits for a pointer motion that never comes when it is already there)
    xdotool(desktop.display, "mousemove", str(icon["x"] + icon["width"] // 2),
            str(icon["y"] + icon["height"] // 2), "sleep", "0.3", "click", "3")
    wait_until(lambda: menu_window(desktop) is not None, 10, 0.1, "the tray menu to pop up")
    time.sleep(0.3)  # let it draw before a screenshot
    menu = menu_window(desktop)
    assert menu is not None
    return menu


def shoot_menu(desktop: DesktopSession, menu: dict[str, Any], name: str) -> Path:
    pan = panel(desktop)
    left = max(0, min(menu["x"], pan["x"]) - 20)
    right = max(menu["x"] + menu["width"], pan["x"] + pan["width"])
    bottom = max(menu["y"] + menu["height"], pan["y"] + pan["height"]) + 20
    return desktop.screenshot(name, (left, 0, right, bottom))


def choose(desktop: DesktopSession, label: str, menu: list[str] = MENU) -> None:
    """Pick an item of the open menu with the keyboard (the menu grabs it): Down n times, Return."""
    downs = ["Down"] * (menu.index(label) + 1)
    xdotool(desktop.display, "key", "--delay", "60", *downs, "Return")
    wait_until(lambda: menu_window(desktop) is None, 10, 0.1, "the tray menu to close")


def make_tree(root: Path, files: int) -> Path:
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"frame_{i:03d}.dat").write_bytes(bytes([i % 256]) * (1000 + i))
    return root


def submenu_box(desktop: DesktopSession, menu: dict[str, Any], what: str) -> dict[str, Any]:
    """The open menu and its open submenu together (for a screenshot); fails if no submenu opened."""
    shots = [w for w in top_windows(desktop.display) if w["class"] and w["class"][0] == "trayagent"
             and w["override_redirect"] and w["mapped"] and w["height"] > 20]
    assert len(shots) >= 2, f"the {what} submenu did not open: {shots}"
    sub = min(shots, key=lambda w: w["height"])
    return {"x": min(menu["x"], sub["x"]), "y": 0,
            "width": max(menu["x"] + menu["width"], sub["x"] + sub["width"]) - min(menu["x"], sub["x"]),
            "height": max(menu["y"] + menu["height"], sub["y"] + sub["height"])}


def dialog_request(agent: AgentProcess, name: str) -> str:
    """The request id of a ``name`` dialog process the agent started ("" while there is none)."""
    for cmd in agent.children_cmdlines():
        if "dialog" in cmd and name in cmd and "--request" in cmd:
            return cmd[cmd.index("--request") + 1]
    return ""


# -- tests ------------------------------------------------------------------------------------------
def test_icon_docks_in_the_tray_and_its_menu_pauses_resumes_and_quits(desktop: DesktopSession,
                                                                        tray_agent: AgentProcess) -> None:
    icon = settled_icon(desktop)
    tray_agent.wait_log("tray: using the pystray 'gtk' backend")
    tray_agent.wait_log("tray: icon embedded in the system tray")
    assert near(dominant(desktop, icon, "tray-icon-idle.png"), IDLE_BLUE)
    assert tray_agent.api("GET", "/api/status")["agent"]["paused"] is False

    menu = open_menu(desktop, icon)
    shoot_menu(desktop, menu, "tray-menu.png")
    choose(desktop, "Pause all")
    wait_until(lambda: tray_agent.api("GET", "/api/status")["agent"]["paused"], 10, 0.2, "the agent to pause")
    tray_agent.wait_log("tray: state idle -> paused")
    wait_until(lambda: near(dominant(desktop, icon_window(desktop), "tray-icon-paused.png"), PAUSED_ORANGE),
               10, 0.3, "the paused (orange) icon")

    time.sleep(1.5)  # the menu is rebuilt within a second of a change
    menu = open_menu(desktop, icon_window(desktop))
    shoot_menu(desktop, menu, "tray-menu-paused.png")
    choose(desktop, "Resume", [m.replace("Pause all", "Resume") for m in MENU])
    wait_until(lambda: not tray_agent.api("GET", "/api/status")["agent"]["paused"], 10, 0.2, "the agent to resume")

    time.sleep(1.5)
    open_menu(desktop, icon_window(desktop))
    choose(desktop, "Quit")
    assert tray_agent.wait_exit(30) == 0
    assert not (tray_agent.home / "run" / "agent.json").exists(), "the control API files outlive the agent"
    wait_until(lambda: not any(w["class"] and w["class"][0] == "trayagent"
                               for w in descendants(desktop.display, panel(desktop)["id"])),
               10, 0.2, "the icon to leave the tray")
    assert "Traceback" not in tray_agent.log_text + tray_agent.output


def test_quit_with_files_in_flight_asks_and_quit_now_keeps_them_queued(desktop: DesktopSession,
                                                                      tray_agent: AgentProcess,
                                                                      tmp_path: Path) -> None:
    icon = icon_window(desktop)
    tray_agent.api("POST", "/api/pause")
    data = make_tree(tmp_path / "run7", 5)
    tray_agent.api("POST", "/api/upload", {"paths": [str(data)], "dataset": "run7"})
    wait_until(lambda: sum(d["files"].get("pending", 0) for d in tray_agent.api("GET", "/api/status")["activity"])
               == 5, 30, 0.2, "5 files queued")
    time.sleep(1.5)  # menu refresh

    labels = with_upload([m.replace("Pause all", "Resume").replace("Quit", "Quit (5 files in flight)")
                          for m in MENU], "run7")
    menu = open_menu(desktop, icon)
    downs = ["Down"] * len(labels)
    xdotool(desktop.display, "key", "--delay", "60", *downs, "Right")   # open the Quit submenu
    time.sleep(0.5)
    shoot_menu(desktop, submenu_box(desktop, menu, "Quit"), "tray-menu-quit-in-flight.png")
    xdotool(desktop.display, "key", "--delay", "60", "Down", "Return")  # "Quit now" (the 2nd entry)
    assert tray_agent.wait_exit(30) == 0
    tray_agent.wait_log("tray: quit (5 files in flight)")
    with sqlite3.connect(tray_agent.home / "data" / "queue.sqlite") as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())
    assert states.get("pending") == 5, f"queued files should wait for the next start: {states}"


def test_each_upload_under_way_has_its_own_pause_and_cancel_in_the_menu(desktop: DesktopSession,
                                                                       tray_agent: AgentProcess,
                                                                       tmp_path: Path) -> None:
    """Right-click lists each batch upload under way. Its Pause holds that dataset alone; its Cancel…
    opens Activity asking about that dataset (a request the page fetches): the menu drops nothing itself."""
    icon = icon_window(desktop)
    tray_agent.api("POST", "/api/pause")  # the files stay queued while the menu is used
    data = make_tree(tmp_path / "run8", 3)
    dataset_id = tray_agent.api("POST", "/api/upload", {"paths": [str(data)], "dataset": "run8"})["dataset_id"]

    def entry() -> dict[str, Any]:
        return next(d for d in tray_agent.api("GET", "/api/status")["activity"] if d["id"] == dataset_id)
    wait_until(lambda: entry()["files"].get("pending", 0) == 3, 30, 0.2, "3 files queued")
    time.sleep(1.5)  # the menu is rebuilt within a second of a change
    upload = MENU.index("Upload folder...") + 1  # right after the two ways to start one
    menu = open_menu(desktop, icon)
    xdotool(desktop.display, "key", "--delay", "60", *["Down"] * (upload + 1), "Right")  # its submenu
    time.sleep(0.5)
    shoot_menu(desktop, submenu_box(desktop, menu, "run8"), "tray-menu-upload.png")
    xdotool(desktop.display, "key", "Return")  # its first entry: Pause
    wait_until(lambda: entry()["held"], 10, 0.2, "run8 paused on its own")
    assert tray_agent.api("GET", "/api/status")["agent"]["paused"] is True  # Pause all is a different thing

    time.sleep(1.5)
    open_menu(desktop, icon_window(desktop))
    xdotool(desktop.display, "key", "--delay", "60", *["Down"] * (upload + 1), "Right")
    time.sleep(0.5)
    xdotool(desktop.display, "key", "--delay", "60", "Down", "Return")  # its second entry: Cancel…
    tray_agent.wait_log("tray: asked for the activity dialog")
    wait_until(lambda: dialog_request(tray_agent, "activity"), 10, 0.2, "an Activity dialog process")
    request = tray_agent.api("GET", f"/api/requests/{dialog_request(tray_agent, 'activity')}")
    assert request == {"dialog": "activity", "dataset": dataset_id, "ask": "cancel"}
    assert entry()["state"] == "active" and entry()["files"]["pending"] == 3  # asked, not yet dropped


def test_open_from_the_launcher_reaches_the_running_agent(desktop: DesktopSession, tray_agent: AgentProcess,
                                                          tmp_path: Path) -> None:
    icon_window(desktop)
    dropped = make_tree(tmp_path / "dropped run", 2)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "trayagent.cli", "open", str(dropped)], env=tray_agent.env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 15
    assert "already running" in proc.stderr
    tray_agent.wait_log("opened the dataset dialog")
    wait_until(lambda: dialog_request(tray_agent, "dataset"), 10, 0.2, "a dataset dialog process")
    request = tray_agent.api("GET", f"/api/requests/{dialog_request(tray_agent, 'dataset')}")
    assert request == {"dialog": "dataset", "paths": [str(dropped.resolve())]}


def test_control_api_refuses_missing_or_wrong_token_and_foreign_origin(tray_agent: AgentProcess) -> None:
    assert tray_agent.request("GET", "/api/status")[0] == 200
    assert tray_agent.request("GET", "/api/status", token=None)[0] == 401
    assert tray_agent.request("GET", "/api/status", token="not-the-token")[0] == 401
    assert tray_agent.request("POST", "/api/pause", {}, token=None)[0] == 401
    status, _ = tray_agent.request("POST", "/api/pause", {}, headers={"Origin": "http://evil.example"})
    assert status == 403
    assert tray_agent.request("GET", "/api/status", headers={"Host": "evil.example"})[0] == 403
    assert tray_agent.api("GET", "/api/status")["agent"]["paused"] is False  # nothing got through


def test_appindicator_backend_without_a_watcher_falls_back_to_the_xembed_tray(desktop: DesktopSession,
                                                                            tmp_path: Path) -> None:
    """Desktops with a StatusNotifierWatcher get the appindicator backend; without one, libayatana docks
    a GtkStatusIcon itself: the icon and its full menu still work."""
    agent = start_tray_agent(desktop, tmp_path / "home", PYSTRAY_BACKEND="appindicator")
    try:
        agent.wait_log("tray: using the pystray 'appindicator' backend")
        menu = open_menu(desktop, icon_window(desktop))
        shoot_menu(desktop, menu, "tray-menu-appindicator.png")
        choose(desktop, "Pause all")
        wait_until(lambda: agent.api("GET", "/api/status")["agent"]["paused"], 10, 0.2, "the agent to pause")
    finally:
        agent.stop()
    assert agent.proc is not None and agent.proc.returncode == 0, agent.output  # SIGTERM: a clean stop


def test_without_gtk_the_degraded_xorg_backend_warns(desktop: DesktopSession, tmp_path: Path) -> None:
    agent = start_tray_agent(desktop, tmp_path / "home", PYSTRAY_BACKEND="xorg")
    try:
        agent.wait_log("degraded 'xorg' backend")
        line = next(line for line in agent.log_text.splitlines() if "degraded 'xorg' backend" in line)
        assert " WARNING " in line
        assert agent.api("GET", "/api/status")["agent"]["state"] == "idle"   # the agent itself works
        # (not asserted: pystray's xorg icon does not dock in trayer here; it has no menu anyway)
    finally:
        agent.stop()


def test_install_desktop_writes_the_launcher_and_icon(tmp_path: Path) -> None:
    from PIL import Image

    from trayagent.platform.desktop import desktop_entry

    env = {**os.environ, "TRAYAGENT_HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "share")}
    proc = subprocess.run([sys.executable, "-m", "trayagent.cli", "install-desktop"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    entry = tmp_path / "share" / "applications" / "trayagent.desktop"
    icon = tmp_path / "share" / "icons" / "hicolor" / "64x64" / "apps" / "trayagent.png"
    assert proc.stdout.split() == ["installed", str(entry), "installed", str(icon)]
    text = entry.read_text()
    assert f"Exec={sys.executable} -m trayagent.cli open %F\n" in text
    assert "Icon=trayagent\n" in text
    assert "MimeType" not in text, "a launcher that handles folders opens them all (xdg-open FOLDER)"
    with Image.open(icon) as img:
        assert img.size == (64, 64)
    # the packagers' template is the same entry with the plain command
    assert (ROOT / "build" / "trayagent.desktop").read_text() == desktop_entry(["trayagent"])
    validate = shutil.which("desktop-file-validate")
    assert validate, "desktop-file-validate (Debian desktop-file-utils) is missing; run build/dev-setup.sh"
    for path in (entry, ROOT / "build" / "trayagent.desktop"):
        check = subprocess.run([validate, str(path)], capture_output=True, text=True, check=False)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


# -- the tray tells the truth (issue 19, items 2 and 7) ---------------------------------------------
ERROR_ORANGE = (213, 94, 0)
MENU_NEEDS_LOGIN = [m.replace("Log in...", "Log in... (needed)") for m in MENU]


@pytest.fixture(scope="module")
def desktop_keyring(desktop: DesktopSession) -> Iterator[None]:
    """A Secret Service (gnome-keyring) on the desktop's own session bus, where the tray agent looks."""
    from servers import _GnomeKeyring, random_secret

    ring = _GnomeKeyring(desktop.base / "keyring", desktop.bus.address, random_secret())
    ring.start()
    try:
        yield
    finally:
        ring.stop()


def dataset_state(agent: AgentProcess, name: str) -> str | None:
    return next((d["state"] for d in agent.api("GET", "/api/status")["activity"] if d["name"] == name), None)


def write_storage_config(home: Path, url: str) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(f"[storage]\nremote = \":webdav,url='{url}',vendor=other:\"\n"
                                                 'user = "alice"\n')


def storage_login(desktop: DesktopSession, home: Path, password: str) -> None:
    """`trayagent login storage` as a user runs it, against the desktop's keyring."""
    env = {**desktop.env(), "TRAYAGENT_HOME": str(home),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring"}
    proc = subprocess.run([sys.executable, "-m", "trayagent.cli", "login", "storage", "--password-stdin"],
                          input=password + "\n", text=True, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def dialog_window(desktop: DesktopSession, title: str, timeout: float = 60) -> str:
    def found() -> str | None:
        out = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
                             env={**os.environ, "DISPLAY": desktop.display}, capture_output=True, text=True,
                             timeout=10).stdout.split()
        return out[0] if out else None

    found_id: list[str] = []
    wait_until(lambda: bool(found_id.append(w) or True) if (w := found()) else False, timeout, 0.3,
               f"the window {title!r}")
    return found_id[0]


def window_box(desktop: DesktopSession, window: str) -> tuple[int, int, int, int]:
    geo = dict(line.split("=", 1) for line in xdotool(desktop.display, "getwindowgeometry", "--shell",
                                                      window).split())
    x, y, w, h = (int(geo[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    return x, y, x + w, y + h


def test_wrong_storage_password_shows_log_in_and_the_login_window_resumes_the_uploads(
        desktop: DesktopSession, desktop_keyring: None, tmp_path: Path) -> None:
    from servers import WebDAVServer, random_secret

    home = tmp_path / "home"
    home.mkdir()
    with WebDAVServer(tmp_path / "dav", user="alice", password=random_secret()) as dav:
        write_storage_config(home, dav.url)
        storage_login(desktop, home, "not-the-password")
        agent = start_tray_agent(desktop, home, PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring")
        try:
            settled_icon(desktop)
            agent.wait_log("tray: status Up to date")
            agent.api("POST", "/api/upload", {"paths": [str(make_tree(tmp_path / "run5", 4))], "dataset": "run5"})
            agent.wait_log("tray: status Log in to storage", 60)
            agent.wait_log("tray: state idle -> logged-out")
            time.sleep(1.5)  # the menu is rebuilt within a second of a change
            menu = open_menu(desktop, icon_window(desktop))
            shoot_menu(desktop, menu, "tray-menu-log-in-to-storage.png")
            # "Quit" says the files wait, not that they are in flight
            choose(desktop, "Log in... (needed)", with_upload(MENU_NEEDS_LOGIN, "run5"))

            # the Login window opens on the storage account; a person types the password and presses Enter
            window = dialog_window(desktop, "trayagent: Log in")
            wm_class = next(w["class"] for w in top_windows(desktop.display) if w["id"] == int(window))
            assert wm_class and wm_class[0] == "trayagent", f"the window is called {wm_class}, not trayagent"
            time.sleep(3.0)  # the page asks the agent which account needs the login
            box = window_box(desktop, window)
            desktop.screenshot("window-login-storage.png", box)
            xdotool(desktop.display, "mousemove", str(box[0] + 40), str(box[1] + 20), "click", "1")
            xdotool(desktop.display, "key", "Tab")  # from the heading to the password (the user is fixed)
            xdotool(desktop.display, "type", "--delay", "20", dav.password)
            xdotool(desktop.display, "key", "Return")
            agent.wait_log("the storage accepted the password: uploads resume", 30)
            wait_until(lambda: dataset_state(agent, "run5") == "complete", 30, 0.2, "run5 to complete")
            wait_until(lambda: agent.log_text.count("tray: status Up to date") >= 2, 10, 0.2,
                       "the status line back to 'Up to date'")
            assert len(list(dav.root.rglob("frame_*.dat"))) == 4
            assert "Traceback" not in agent.log_text + agent.output
        finally:
            agent.stop()


def test_unreachable_storage_shows_waiting_and_retry_now_goes_at_once(desktop: DesktopSession,
                                                                      desktop_keyring: None,
                                                                      tmp_path: Path) -> None:
    """Issue 19.7 and 19.8: with the storage down the icon stayed green "syncing"; once it was back, the
    upload waited for its next retry slot (63 s seen), with no way to say "try now"."""
    from servers import WebDAVServer, random_secret

    home = tmp_path / "home"
    home.mkdir()
    password = random_secret()
    dav = WebDAVServer(tmp_path / "dav", user="alice", password=password).start()
    port = dav.port
    try:
        write_storage_config(home, dav.url)
        storage_login(desktop, home, password)
        agent = start_tray_agent(desktop, home, PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring")
    finally:
        dav.stop()
    try:
        icon = settled_icon(desktop)
        agent.wait_log("tray: status Up to date")
        agent.api("POST", "/api/upload", {"paths": [str(make_tree(tmp_path / "run6", 3))], "dataset": "run6"})
        agent.wait_log("tray: status Waiting for storage", 60)
        wait_until(lambda: near(dominant(desktop, icon_window(desktop), "tray-icon-waiting.png"), ERROR_ORANGE),
                   10, 0.3, "the waiting (error) icon, not the green syncing one")
        time.sleep(1.5)
        menu = open_menu(desktop, icon)
        shoot_menu(desktop, menu, "tray-menu-waiting-for-storage.png")
        xdotool(desktop.display, "key", "Escape")
        wait_until(lambda: menu_window(desktop) is None, 10, 0.1, "the tray menu to close")

        time.sleep(20)  # the outage lasts: the storage's retry slots are 16 s apart or more by now
        with WebDAVServer(tmp_path / "dav", user="alice", password=password, port=port):
            started = time.monotonic()
            open_menu(desktop, icon_window(desktop))
            choose(desktop, "Retry now", with_upload([*MENU[:2], "Retry now", *MENU[2:]], "run6"))
            wait_until(lambda: dataset_state(agent, "run6") == "complete", 8, 0.2,
                       "run6 to complete right after Retry now")
            assert time.monotonic() - started < 8
        agent.wait_log("retry now: ")
    finally:
        agent.stop()


def test_install_desktop_does_not_make_trayagent_the_folder_handler(tmp_path: Path) -> None:
    """Issue 19.9: after install-desktop, "Open log folder" (xdg-open FOLDER) opened a Dataset dialog.
    Asked as a desktop asks: GIO's default application for inode/directory, and xdg-mime's."""
    xdg = {"XDG_DATA_HOME": str(tmp_path / "share"), "XDG_DATA_DIRS": str(tmp_path / "none"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CONFIG_DIRS": str(tmp_path / "none"),
           "XDG_CURRENT_DESKTOP": "", "DE": ""}
    env = {**os.environ, "TRAYAGENT_HOME": str(tmp_path / "home"), **xdg}
    subprocess.run([sys.executable, "-m", "trayagent.cli", "install-desktop"], env=env, capture_output=True,
                   timeout=60, check=True)
    assert (tmp_path / "share" / "applications" / "trayagent.desktop").is_file()
    gio = subprocess.run(["gio", "mime", "inode/directory"], env=env, capture_output=True, text=True, timeout=30)
    assert "trayagent.desktop" not in gio.stdout, gio.stdout
    mime = subprocess.run(["xdg-mime", "query", "default", "inode/directory"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert "trayagent" not in mime.stdout, mime.stdout
