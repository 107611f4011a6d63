"""``trayagent agent | open | dialog | install-desktop``: the agent with its tray, the dialogs, the launcher."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ..config import Config
from ..paths import Paths
from ..storage.redact import Redactor
from .common import EXIT_OK, running_agent


def cmd_agent(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    """Start the agent; if one already runs, forward to it (open Activity, or the dropped paths)."""
    if (client := running_agent(paths)) is not None:
        client.post("/api/open", {"paths": args.paths}) if getattr(args, "paths", None) else \
            client.post("/api/show/activity")
        print("trayagent is already running; asked it to open its window", file=sys.stderr)
        return EXIT_OK
    from ..agent.agent import Agent
    from ..ui.dialogs import DialogLauncher

    agent = Agent(cfg, paths, redactor, open_dialog=DialogLauncher(paths))
    agent.start()
    if getattr(args, "paths", None):
        agent.server.dispatch("POST", "/api/open", {"paths": args.paths})
    if args.headless:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: threading.Thread(target=agent.stop, daemon=True).start())
        agent.wait()
        return EXIT_OK
    from ..ui.tray import run_tray

    return run_tray(agent)


def cmd_open(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    paths_given = [str(Path(p).expanduser().resolve()) for p in args.paths]
    args.paths = paths_given
    args.headless = False
    return cmd_agent(args, cfg, paths, redactor)


def cmd_dialog(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    from ..ui.dialogs import show_dialog

    return show_dialog(paths, args.name, args.request)


def cmd_install_desktop(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    from ..platform.desktop import install_desktop

    for installed in install_desktop():
        print(f"installed {installed}")
    return EXIT_OK
