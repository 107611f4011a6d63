"""The environment of the processes trayagent starts (dialog windows, the file manager, the web
browser): the agent's own, less what the agent set only for itself (GDK_GL=disable for its tray
icon, which a dialog window drawing a web page must not inherit).

Kept here, below both the agent and the UI, so that either can start a process with it."""

from __future__ import annotations

import os

_SET_FOR_THIS_PROCESS: dict[str, str] = {}


def set_for_this_process(name: str, value: str) -> None:
    """Set ``name`` in this process's environment unless the user set it; children do not get it."""
    if name not in os.environ:
        os.environ[name] = _SET_FOR_THIS_PROCESS[name] = value


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    for name in _SET_FOR_THIS_PROCESS:
        env.pop(name, None)
    return env
