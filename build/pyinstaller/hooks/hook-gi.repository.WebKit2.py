"""WebKit2 4.1 for pywebview's GTK window (PyInstaller ships no hook for it). The web content and
network helper processes stay the system's (WebKit looks for them at its built-in path), so the
.deb depends on the distribution's libwebkit2gtk-4.1-0."""

from PyInstaller.utils.hooks.gi import GiModuleInfo

module_info = GiModuleInfo("WebKit2", "4.1")
if module_info.available:
    binaries, datas, hiddenimports = module_info.collect_typelib_data()
    hiddenimports += ["gi.repository.Soup", "gi.repository.JavaScriptCore", "gi.repository.Gtk"]
