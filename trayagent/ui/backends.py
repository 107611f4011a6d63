"""Which pystray backend runs the tray icon here: probe GTK, AppIndicator and the StatusNotifier
watcher; PYSTRAY_BACKEND overrides."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from ..platform.childenv import set_for_this_process

log = logging.getLogger(__name__)


LINUX_BACKENDS = ("appindicator", "gtk", "xorg")


def no_gl_for_the_icon() -> None:
    """A tray icon and its menu draw no OpenGL, but GDK 3 on X11 initialises GLX when it opens the
    display (to choose visuals): the desktop's GL driver is then loaded into the agent for nothing.
    Measured under Xvfb (Mesa's llvmpipe): libLLVM alone held 43 MB of the agent's 121 MB; with
    GDK_GL=disable the agent starts at 67 MB (tests/bench/bench_idle_memory.py --tray). A GDK_GL the
    user set is left alone; the processes the agent starts get the environment without it."""
    set_for_this_process("GDK_GL", "disable")


# -- backend choice ---------------------------------------------------------------------------------
def _gtk_available() -> bool:
    try:
        import gi  # type: ignore[import-untyped,unused-ignore]

        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk  # type: ignore[import-untyped,unused-ignore]

        return bool(Gtk.init_check()[0])
    except (ImportError, ValueError):
        return False



def _appindicator_available() -> bool:
    try:
        import gi  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # no PyGObject: no AppIndicator either
        return False
    for name in ("AyatanaAppIndicator3", "AppIndicator3"):
        try:
            gi.require_version(name, "0.1")
            return True
        except ValueError:
            continue
    return False



def _status_notifier_watcher() -> bool:
    """Whether a StatusNotifierItem host (what appindicator icons need) runs on the session bus."""
    try:
        from gi.repository import Gio, GLib  # type: ignore[import-untyped,unused-ignore]

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                              "NameHasOwner", GLib.Variant("(s)", ("org.kde.StatusNotifierWatcher",)),
                              GLib.VariantType("(b)"), Gio.DBusCallFlags.NONE, 2000, None)
        return bool(reply.unpack()[0])
    except Exception:  # noqa: BLE001 - no gi, no session bus: no watcher
        return False



def backend_candidates(env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """The Linux backends to try, best first, and why the first one."""
    env = dict(os.environ) if env is None else env
    if forced := env.get("PYSTRAY_BACKEND"):
        return [forced], "PYSTRAY_BACKEND is set"
    has_gtk, has_indicator = _gtk_available(), _appindicator_available()
    if has_indicator and _status_notifier_watcher():
        return ["appindicator", "gtk", "xorg"], "a StatusNotifierWatcher runs on the session bus"
    if has_gtk:
        return ["gtk", "appindicator", "xorg"], "no StatusNotifierWatcher on the session bus: XEmbed system tray"
    if has_indicator:
        return ["appindicator", "xorg"], "GTK could not be initialised"
    return ["xorg"], "neither PyGObject with GTK 3 nor AppIndicator is available"



def _name_the_program() -> None:
    """WM_CLASS "trayagent" for the icon and menus (else "cli.py"), and the name panels show."""
    try:
        from gi.repository import GLib  # type: ignore[import-untyped,unused-ignore]

        GLib.set_prgname("trayagent")
        GLib.set_application_name("trayagent")
    except ImportError:  # no GTK: a backend without window names, nothing to set
        return



def import_pystray() -> tuple[Any, str]:
    """Import pystray with the best working backend; returns (module, backend name)."""
    if sys.platform in ("win32", "darwin"):
        import pystray  # type: ignore[import-untyped,unused-ignore]

        return pystray, sys.platform
    no_gl_for_the_icon()  # before GTK first opens the display (backend_candidates)
    candidates, why = backend_candidates()
    _name_the_program()
    errors = []
    for name in candidates:
        os.environ["PYSTRAY_BACKEND"] = name
        for mod in [m for m in sys.modules if m == "pystray" or m.startswith("pystray.")]:
            del sys.modules[mod]
        try:
            import pystray  # type: ignore[import-untyped,unused-ignore]
        except Exception as exc:  # noqa: BLE001 - ImportError, or Xlib's errors (xorg backend)
            errors.append(f"{name}: {exc}")
            continue
        if errors:
            log.warning("tray: pystray backend(s) failed: %s", "; ".join(errors))
        if name == "xorg":
            log.warning("tray: only pystray's degraded 'xorg' backend is available: the tray icon has NO "
                        "MENU (a click opens Activity). Install PyGObject with gir1.2-gtk-3.0 and "
                        "gir1.2-ayatanaappindicator3-0.1 for the full menu.")
        else:
            log.info("tray: using the pystray %r backend (%s)", name, why)
        return pystray, name
    raise ImportError("no pystray backend works: " + "; ".join(errors))
