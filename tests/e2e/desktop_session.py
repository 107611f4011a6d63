"""A private desktop for end-to-end tests: Xvfb, a session D-Bus, a system tray, a notification recorder.

Everything runs as real subprocesses in their own sessions (reusing ``servers._Process``: log file,
readiness wait, SIGTERM then SIGKILL of the whole process group, death with the test process) and
lives in a temp dir, so nothing reaches the developer's display, bus or keyring:

- ``Xvfb``: picks a free display itself (``-displayfd``), no TCP, no auth needed on the local socket.
- ``SessionBus``: a dbus-daemon with no service directories, so nothing is ever auto-started on it
  (a stray notification daemon or at-spi would make the tests depend on the machine).
- ``Trayer``: Debian's ``trayer``, an XEmbed system tray (owner of ``_NET_SYSTEM_TRAY_S0``); pystray's
  ``gtk`` backend (GtkStatusIcon) docks into it.
- ``NotificationRecorder``: a small org.freedesktop.Notifications service (jeepney) that records every
  ``Notify`` call as one JSON line; whatever sends notifications (plyer -> notify-send / dbus-python)
  reaches it through DBUS_SESSION_BUS_ADDRESS. Run this file as a script to start one by hand.

``AgentProcess`` runs the real ``trayagent`` command against a private TRAYAGENT_HOME and speaks its
control API. The test modules hold the fixtures (pytest fixtures imported from a helper module
would
shadow conftest ones and trip linters), built from these classes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS / "support") not in sys.path:  # also run as a script (notify-recorder)
    sys.path.insert(0, str(TESTS / "support"))

from agentctl import logs_text
from servers import _LIVE, START_TIMEOUT, ServerStartError, _DBusDaemon, _die_with_parent, _Process
from waiting import wait_until

ARTIFACTS = TESTS / "artifacts"
SCREEN = (1280, 800)


# -- X ----------------------------------------------------------------------------------------------
class Xvfb(_Process):
    name = "xvfb"

    def __init__(self, workdir: Path, size: tuple[int, int] = SCREEN) -> None:
        super().__init__(workdir)
        self.size = size
        self.display = ""

    def start(self, timeout: float = START_TIMEOUT) -> Xvfb:
        """Like _Process.start, but Xvfb chooses a free display and writes its number to a pipe."""
        read_fd, write_fd = os.pipe()
        try:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{self.size[0]}x{self.size[1]}x24",
                     "-nolisten", "tcp", "-noreset"],
                    cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,), start_new_session=True,
                    preexec_fn=_die_with_parent)  # noqa: PLW1509 - only calls prctl, takes no locks
            _LIVE.add(self)
            os.close(write_fd)
            write_fd = -1
            number = b""
            deadline = time.monotonic() + timeout
            while not number.endswith(b"\n"):
                ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(read_fd, 16) if ready else b""
                if not chunk:
                    self.kill()
                    raise ServerStartError(f"Xvfb did not report a display\n{self.log_tail()}")
                number += chunk
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        self.display = f":{int(number)}"
        return self

    def _is_ready(self) -> bool:
        return True


class SessionBus(_DBusDaemon):
    """A private session bus (dbus-daemon with no service directories: nothing auto-starts on it)."""


class Trayer(_Process):
    """An XEmbed system tray at the top right of the screen."""

    name = "trayer"

    def __init__(self, workdir: Path, display: str, bus: str) -> None:
        super().__init__(workdir)
        self.display, self.bus = display, bus

    def _command(self) -> list[str]:
        return ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32",
                "--iconspacing", "4", "--SetDockType", "true", "--transparent", "false", "--tint", "0xdddddd"]

    def _env(self) -> dict[str, str]:
        return session_env(self.display, self.bus)

    def _is_ready(self) -> bool:
        return tray_manager(self.display) != 0


def session_env(display: str, bus: str, runtime_dir: Path | None = None) -> dict[str, str]:
    """os.environ pointed at the private display and bus (and away from a real desktop's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XAUTHORITY", "DESKTOP_SESSION")}
    env.update(DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=bus, NO_AT_BRIDGE="1", GDK_BACKEND="x11",
               GTK_A11Y="none")
    if runtime_dir is not None:
        env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    return env


@contextlib.contextmanager
def x_display(display: str) -> Iterator[Any]:
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    try:
        yield d
    finally:
        d.close()


def tray_manager(display: str) -> int:
    """Window id owning the XEmbed system tray selection (_NET_SYSTEM_TRAY_S0), 0 if none."""
    with x_display(display) as d:
        owner = d.get_selection_owner(d.intern_atom("_NET_SYSTEM_TRAY_S0"))
        return int(owner.id) if owner and getattr(owner, "id", 0) else 0


def descendants(display: str, window: int) -> list[dict[str, Any]]:
    """Every window below ``window``: id, parent, mapped, absolute x/y, width, height, WM_CLASS."""
    out: list[dict[str, Any]] = []
    with x_display(display) as d:
        from Xlib import X
        from Xlib.error import XError

        root = d.screen().root

        def walk(win: Any) -> None:
            for child in win.query_tree().children:
                try:
                    geo = child.get_geometry()
                    pos = child.translate_coords(root, 0, 0)
                    attrs = child.get_attributes()
                    wm_class = child.get_wm_class()
                except XError:
                    continue
                out.append({"id": int(child.id), "parent": int(win.id), "x": -pos.x, "y": -pos.y,
                            "width": geo.width, "height": geo.height, "class": wm_class,
                            "mapped": attrs.map_state == X.IsViewable,
                            "override_redirect": bool(attrs.override_redirect)})
                walk(child)

        walk(d.create_resource_object("window", window))
    return out


def top_windows(display: str) -> list[dict[str, Any]]:
    with x_display(display) as d:
        root = int(d.screen().root.id)
    return [w for w in descendants(display, root) if w["parent"] == root]


def screenshot(display: str, path: Path, box: tuple[int, int, int, int] | None = None) -> Path:
    from PIL import ImageGrab

    path.parent.mkdir(parents=True, exist_ok=True)
    image = ImageGrab.grab(bbox=box, xdisplay=display)
    image.save(path)
    return path


def xdotool(display: str, *args: str) -> str:
    proc = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True,
                          text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"xdotool {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


# -- D-Bus ------------------------------------------------------------------------------------------
def name_has_owner(bus: str, name: str) -> bool:
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    try:
        with open_dbus_connection(bus=bus) as conn:
            dbus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                               interface="org.freedesktop.DBus")
            reply = conn.send_and_get_reply(new_method_call(dbus, "NameHasOwner", "s", (name,)), timeout=5)
            return bool(reply.body[0])
    except (OSError, ConnectionError, TimeoutError):
        return False


class NotificationRecorder(_Process):
    """org.freedesktop.Notifications on the private bus, writing each Notify call as a JSON line."""

    name = "notification-recorder"

    def __init__(self, workdir: Path, bus: str) -> None:
        super().__init__(workdir)
        self.bus = bus
        self.records_path = workdir / "notifications.jsonl"

    def _command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "notify-recorder", str(self.records_path)]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.bus}

    def _is_ready(self) -> bool:
        return name_has_owner(self.bus, "org.freedesktop.Notifications")

    def records(self) -> list[dict[str, Any]]:
        if not self.records_path.exists():
            return []
        lines = self.records_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def clear(self) -> None:
        self.records_path.write_text("", encoding="utf-8")


def _run_recorder(out: Path) -> None:
    """The recorder's main loop (this file run as a script)."""
    from jeepney import HeaderFields, MessageType, new_error, new_method_return
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    conn = open_dbus_connection(bus="SESSION")
    reply = conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.Notifications", 4))
    if reply.body[0] != 1:
        raise SystemExit(f"org.freedesktop.Notifications is taken (RequestName answered {reply.body[0]})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    next_id = 0
    introspection = """<node><interface name="org.freedesktop.Notifications">
<method name="Notify"><arg type="s"/><arg type="u"/><arg type="s"/><arg type="s"/><arg type="s"/>
<arg type="as"/><arg type="a{sv}"/><arg type="i"/><arg type="u" direction="out"/></method>
<method name="GetCapabilities"><arg type="as" direction="out"/></method>
<method name="GetServerInformation"><arg type="s" direction="out"/><arg type="s" direction="out"/>
<arg type="s" direction="out"/><arg type="s" direction="out"/></method>
<method name="CloseNotification"><arg type="u"/></method></interface></node>"""
    with open(out, "a", encoding="utf-8") as records:
        while True:
            msg = conn.receive()
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "Notify":
                app, replaces, icon, summary, body, actions, hints, timeout = msg.body
                next_id += 1
                simple = {k: v[1] for k, v in hints.items() if isinstance(v[1], (str, int, float, bool))}
                records.write(json.dumps({"id": next_id, "app_name": app, "replaces_id": replaces,
                                          "app_icon": icon, "summary": summary, "body": body,
                                          "actions": actions, "hints": simple, "expire_timeout": timeout,
                                          "time": time.time()}) + "\n")
                records.flush()
                conn.send(new_method_return(msg, "u", (next_id,)))
            elif member == "GetCapabilities":
                conn.send(new_method_return(msg, "as", (["actions", "body", "icon-static", "persistence"],)))
            elif member == "GetServerInformation":
                conn.send(new_method_return(msg, "ssss", ("recorder", "trayagent-tests", "1.0", "1.2")))
            elif member == "CloseNotification":
                conn.send(new_method_return(msg))
            elif member == "Introspect":
                conn.send(new_method_return(msg, "s", (introspection,)))
            elif member == "Ping":
                conn.send(new_method_return(msg))
            else:
                conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s",
                                    (f"no method {member}",)))


# -- the desktop ------------------------------------------------------------------------------------
class DesktopSession:
    """Xvfb + session bus (+ trayer) (+ notification recorder), torn down in reverse order."""

    def __init__(self, base: Path, *, x: bool = True, tray: bool = True, notifications: bool = True) -> None:
        self.base = base
        self.runtime_dir = base / "xdg-runtime"
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.xvfb = Xvfb(base / "xvfb") if x else None
        self.bus = SessionBus(base / "dbus")
        self.trayer: Trayer | None = None
        self.recorder = NotificationRecorder(base / "recorder", self.bus.address) if notifications else None
        self._want_tray = tray and x
        self._started: list[_Process] = []

    @property
    def display(self) -> str:
        return self.xvfb.display if self.xvfb else ""

    def env(self) -> dict[str, str]:
        env = session_env(self.display, self.bus.address, self.runtime_dir)
        if not self.xvfb:
            env.pop("DISPLAY", None)
        return env

    def start(self) -> DesktopSession:
        try:
            for proc in (self.xvfb, self.bus):
                if proc is not None:
                    proc.start()
                    self._started.append(proc)
            if self._want_tray:
                self.trayer = Trayer(self.base / "trayer", self.display, self.bus.address)
                self.trayer.start()
                self._started.append(self.trayer)
            if self.recorder is not None:
                self.recorder.start()
                self._started.append(self.recorder)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(self._started):
            with contextlib.suppress(Exception):
                proc.stop()
        self._started.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def screenshot(self, name: str, box: tuple[int, int, int, int] | None = None) -> Path:
        return screenshot(self.display, ARTIFACTS / name, box)


# -- the agent under test ---------------------------------------------------------------------------
class AgentProcess:
    """``python -m trayagent.cli ARGS`` with a private TRAYAGENT_HOME, in its own process group (so
    the dialog windows it spawns go with it), plus its control API."""

    program: tuple[str, ...] = (sys.executable, "-m", "trayagent.cli")  # the frozen bundle's tests change it

    def __init__(self, home: Path, env: dict[str, str], *args: str) -> None:
        self.home, self.args = home, args
        self.env = {**env, "TRAYAGENT_HOME": str(home)}
        self.env.pop("TRAYAGENT_CONFIG", None)
        self.out_path = home / "agent-process.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> AgentProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen([*self.program, *self.args], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl
        wait_until(lambda: self._ping() or self.proc.poll() is not None, timeout, 0.2, "the agent's control API")
        if self.proc.poll() is not None:
            raise AssertionError(f"the agent exited with {self.proc.returncode}:\n{self.output}\n{self.log_text}")
        return self

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    @property
    def log_text(self) -> str:
        return logs_text(self.home / "logs")

    def wait_log(self, text: str, timeout: float = 30) -> None:
        try:
            wait_until(lambda: text in self.log_text, timeout, 0.1, f"{text!r} in the agent log")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n--- log ---\n{self.log_text[-4000:]}\n--- output ---\n{self.output}") from None

    # control API -----------------------------------------------------------------------------------
    def port(self) -> int:
        return int(json.loads((self.home / "run" / "agent.json").read_text())["port"])

    def token(self) -> str:
        return (self.home / "run" / "agent.token").read_text().strip()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, token: str | None = "") -> tuple[int, Any]:
        """One API call; ``token=""`` uses the agent's own, ``None`` sends none."""
        port = self.port()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        send = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", **(headers or {})}
        if token is not None:
            send["Authorization"] = f"Bearer {token or self.token()}"
        try:
            conn.request(method, path, json.dumps(body) if body is not None else None, send)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(data or b"null")
        except ValueError:
            return resp.status, data.decode(errors="replace")

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, answer = self.request(method, path, body)
        assert status == 200, f"{method} {path} -> {status}: {answer}"
        return answer

    def _ping(self) -> bool:
        try:
            return self.request("GET", "/api/ping")[0] == 200
        except (OSError, ValueError, KeyError):
            return False

    # ending ----------------------------------------------------------------------------------------
    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._killpg(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killpg(signal.SIGKILL)
                self.proc.wait()
        self._killpg(signal.SIGKILL)  # dialog windows and rclone left in the group

    def _killpg(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def children_cmdlines(self) -> list[list[str]]:
        """Command lines of the processes in the agent's process group (its dialog windows)."""
        assert self.proc is not None
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.proc.pid:
                continue
            try:
                if os.getpgid(int(entry.name)) != self.proc.pid:
                    continue
                found.append((entry / "cmdline").read_bytes().decode(errors="replace").split("\0"))
            except (OSError, ProcessLookupError):
                continue
        return found


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "notify-recorder":
        _run_recorder(Path(sys.argv[2]))
    elif len(sys.argv) == 2 and sys.argv[1] == "shell":  # a desktop to poke at by hand
        with DesktopSession(Path(tempfile.mkdtemp(prefix="desktop-"))) as s:
            print(f"DISPLAY={s.display} DBUS_SESSION_BUS_ADDRESS={s.bus.address}  (Ctrl-C ends)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    else:
        raise SystemExit("usage: desktop_session.py notify-recorder FILE | shell")
