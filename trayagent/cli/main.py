"""Command line: the parser, the dispatch to the command modules (upload, desktop, account), exit codes.

Exit codes are part of the interface for scripts: 0 all done, 1 some files failed, 2 a usage,
configuration or authentication problem (nothing was uploaded that should not have been), 130
interrupted (re-run the same command to finish). Errors print their message and what to do next;
tracebacks go to the log file only.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__, sqlitedb
from ..agent.client import DIALOGS
from ..config import Config, load_config, reference_markdown
from ..errors import TrayagentError
from ..logs import log_file_for, prune_logs, setup_logging
from ..paths import Paths, resolve_paths
from ..storage.process import end_without_waiting
from ..storage.redact import Redactor
from .account import cmd_login, cmd_logout
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    in_cli_words,
    startup_over,
)
from .desktop import cmd_agent, cmd_dialog, cmd_install_desktop, cmd_open
from .upload import cmd_cancel, cmd_resume, cmd_status, cmd_sync, cmd_upload

log = logging.getLogger("trayagent.cli")

# Commands that close everything they open (queue, catalogue, rclone, threads) before they return:
# the console script ends them without the interpreter's teardown of a few hundred modules, and
# without SQLite's close-time checkpoint (see sqlitedb).
_FAST_EXIT = frozenset({"upload", "status", "resume", "login", "logout", "config"})


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"trayagent: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)  # accepted before and after the command
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="configuration file (default: config.toml in the user config folder; "
                        "env TRAYAGENT_CONFIG)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug details to the terminal")
    p = _Parser(prog="trayagent", parents=[common], description="Upload beamline data to facility "
                "storage and register it in the data catalogue.")
    p.add_argument("--version", action="version", version=f"trayagent {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kw)

    up = command("upload", help="upload folders/files as one dataset (batch mode)")
    up.add_argument("paths", nargs="+", metavar="PATH", help="folders and files (one folder: its contents "
                    "form the dataset; several: each keeps its name)")
    up.add_argument("--dataset", required=True, metavar="NAME", help="dataset name")
    up.add_argument("--proposal", metavar="ID", help="proposal / investigation the data belongs to")
    up.add_argument("--description", metavar="TEXT", help="dataset description")
    up.add_argument("--investigation-description", metavar="TEXT", help="investigation description")
    up.add_argument("--include", action="append", default=[], metavar="GLOB",
                    help="upload only matching files (repeatable)")
    up.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                    help="never upload matching files or folders (repeatable)")
    _metadata_options(up)
    up.add_argument("--dry-run", action="store_true", help="show what would go where; change nothing")
    up.add_argument("--json", action="store_true", help="machine-readable result on stdout")

    sy = command("sync", help="watch folders and upload each file as soon as it is complete")
    sy.add_argument("paths", nargs="*", metavar="PATH", help="folders (and files) to watch")
    sy.add_argument("--dataset", metavar="NAME", help="dataset name")
    sy.add_argument("--finalize", metavar="NAME", help="finish the sync dataset NAME: drain the queue "
                    "and mark it complete (also when its session runs in another process)")
    for flag, meta, text in (("--proposal", "ID", "proposal / investigation"),
                             ("--description", "TEXT", "dataset description"),
                             ("--investigation-description", "TEXT", "investigation description")):
        sy.add_argument(flag, metavar=meta, help=text)
    sy.add_argument("--include", action="append", default=[], metavar="GLOB")
    sy.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    _metadata_options(sy)

    cn = command("cancel", help="cancel the upload of a dataset: what is not yet sent leaves the queue (what is "
                 "in storage and the catalogue stays; a sync stops watching)")
    cn.add_argument("name", metavar="NAME", help="the dataset's name")

    st = command("status", help="datasets, sync sessions, queue counts and recent errors")
    st.add_argument("--json", action="store_true")

    rs = command("resume", help="finish every interrupted upload")
    rs.add_argument("--json", action="store_true")

    for verb in ("login", "logout"):
        lp = command(verb, help=f"{verb}: the SciCat catalogue (default) or `storage`; secrets live "
                            "only in the OS keyring")
        lp.add_argument("what", nargs="?", choices=["catalogue", "storage"], default="catalogue",
                        help="what to log in to (default: the catalogue)")
        lp.add_argument("--user", metavar="U", help="account name (default: [storage] user; for the "
                        "catalogue, the user logged in last)")
        if verb == "login":
            how = lp.add_mutually_exclusive_group()
            how.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
            how.add_argument("--token-stdin", action="store_true",
                             help="read a SciCat token (copied from the SciCat web page) from stdin")
            how.add_argument("--browser", action="store_true",
                             help="log in to SciCat in the browser (needs [catalogue] oidc_client)")

    ag = command("agent", help="run the agent (tray icon, queue, sync sessions, control API)")
    ag.add_argument("--headless", action="store_true", help="no tray icon: for servers and scripts")
    op = command("open", help="open the Dataset dialog of the running agent with these paths "
                        "(what dropping folders on the launcher does)")
    op.add_argument("paths", nargs="*", metavar="PATH")
    dg = command("dialog", help=argparse.SUPPRESS)
    # argparse (before 3.14) still lists a suppressed sub-command, as "dialog ==SUPPRESS==": hide it
    sub._choices_actions = [a for a in sub._choices_actions if a.dest != "dialog"]
    dg.add_argument("name", choices=DIALOGS)
    dg.add_argument("--request", default="")
    command("install-desktop", help="install the desktop launcher (drop folders on it) and icon")

    cp = command("config", help="configuration: show (every value and where it comes from), path, check, "
                 "reference")
    cp.add_argument("action", choices=["show", "path", "check", "reference"])
    return p


def run() -> None:
    """The console script: ``main``, then, for commands that have closed everything, an exit
    without the interpreter's teardown (~20 ms of a short upload, measured in tests/bench).

    The garbage collector waits until the start-up is over (``common.startup_over``): the objects start-up
    makes (modules, classes, the configuration) all live on, and collecting among them cost
    ~5 ms of CPU before an upload's first copy."""
    gc.disable()
    sys.exit(main(fast_exit=True))


def _metadata_options(p: argparse.ArgumentParser) -> None:
    """Keywords and scientific metadata: the same for a batch upload and a sync session."""
    p.add_argument("--keyword", action="append", default=[], metavar="K", help="a keyword (repeatable)")
    p.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE[ UNIT]",
                   help="a scientific metadata entry, e.g. 'energy=12.4 keV' (repeatable; wins over the file)")
    p.add_argument("--metadata-file", metavar="FILE", help="scientific metadata entries in a JSON or TOML file")


def main(argv: Sequence[str] | None = None, fast_exit: bool = False) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:  # `trayagent` alone starts the agent with its tray icon
        args.command, args.headless = "agent", False
    paths = resolve_paths()
    redactor = Redactor()
    setup_logging(log_file_for(paths.log_dir, args.command), redactor, verbose=getattr(args, "verbose", False))
    prune_logs(paths.log_dir)
    if fast_exit and args.command in _FAST_EXIT:
        sqlitedb.end_without_checkpoint()
        end_without_waiting()
    try:
        cfg = load_config(paths, getattr(args, "config", None))
        if args.command != "upload":  # an upload ends its start-up once its first copy is near
            startup_over()
        code = int(_COMMANDS[args.command](args, cfg, paths, redactor))
    except BrokenPipeError:
        code = _reader_gone()
    except (TrayagentError, OSError, sqlite3.DatabaseError) as caught:
        exc = _in_words(caught, paths)  # a full disk, a damaged database: said, not a traceback
        log.info("%s failed: %s", args.command, exc)  # INFO: the log file keeps what stderr said once
        log.debug("command failed", exc_info=True)
        print(f"trayagent: {in_cli_words(exc)}", file=sys.stderr)
        code = exc.exit_code if exc.exit_code else EXIT_FAILED
        if getattr(args, "json", False):  # a script reading stdout gets an answer on every exit
            print(json.dumps({"error": exc.message, "hint": exc.hint, "exit_code": code}, ensure_ascii=False))
    except KeyboardInterrupt:
        print("\ntrayagent: interrupted; run the same command again to finish (nothing is lost).",
              file=sys.stderr)
        code = EXIT_INTERRUPTED
    if fast_exit and args.command in _FAST_EXIT:
        _exit_now(code)
    return code


def _in_words(caught: BaseException, paths: Paths) -> TrayagentError:
    """The error as the user reads it: trayagent's own, or a failure of its local state (no space
    left, a damaged database) put in words; anything else is a bug and keeps its traceback."""
    if isinstance(caught, TrayagentError):
        return caught
    problem = sqlitedb.local_state_error(caught, paths.data_dir)
    if problem is None:
        raise caught
    log.info("local state: %r", caught, exc_info=caught)  # where it happened: the log file only
    return problem


def _reader_gone() -> int:
    """stdout's reader went away (`trayagent upload --dry-run ... | head -1`): end quietly, as a
    Unix tool ended by SIGPIPE does (exit 128 + 13). Further output goes nowhere, so that the
    interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _exit_now(code: int) -> None:
    """Flush what the process wrote, then end it at once (no atexit work is pending: see _FAST_EXIT)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def cmd_config(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if args.action == "show":
        from ..configfile import show_config

        print(show_config(cfg, paths))
    elif args.action == "path":
        print(cfg.source or f"{paths.config_file} (absent: the embedded default is used)")
    elif args.action == "reference":
        print(reference_markdown())
    else:
        print(f"{cfg.source or 'embedded default'}: OK")
    return EXIT_OK


_COMMANDS = {"upload": cmd_upload, "sync": cmd_sync, "agent": cmd_agent, "open": cmd_open,
             "dialog": cmd_dialog, "install-desktop": cmd_install_desktop, "status": cmd_status,
             "resume": cmd_resume, "cancel": cmd_cancel, "login": cmd_login, "logout": cmd_logout, "config": cmd_config}
