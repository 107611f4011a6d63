"""Command line: ``trayagent upload | status | resume | login | logout | config``.

Exit codes are part of the interface for scripts: 0 all done, 1 some files failed, 2 a usage,
configuration or authentication problem (nothing was uploaded that should not have been), 130
interrupted (re-run the same command to finish). Errors print their message and what to do next;
tracebacks go to the log file only.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import getpass
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import __version__, sqlitedb
from .client import AgentClient
from .config import Config, load_config, reference_markdown
from .errors import ConfigError, TrayagentError
from .logs import setup_logging
from .paths import Paths, resolve_paths
from .progressbar import ProgressBar
from .rclone import RcloneDaemon, Redactor, end_without_waiting
from .secrets import delete_secret, set_secret, storage_service
from .storage import launch_rclone, prefetch_secret

if TYPE_CHECKING:  # imported by the commands that use them, after an upload has set rclone going
    from .uploader import Uploader

log = logging.getLogger("trayagent.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # stdout's reader went away, as for a tool ended by SIGPIPE
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
    dg.add_argument("name", choices=["dataset", "activity", "login", "settings"])
    dg.add_argument("--request", default="")
    command("install-desktop", help="install the desktop launcher (drop folders on it) and icon")

    cp = command("config", help="configuration: path, check, reference")
    cp.add_argument("action", choices=["path", "check", "reference"])
    return p


def run() -> None:
    """The console script: ``main``, then, for commands that have closed everything, an exit
    without the interpreter's teardown (~20 ms of a short upload, measured in tests/bench).

    The garbage collector waits until the start-up is over (``_started``): the objects start-up
    makes (modules, classes, the configuration) all live on, and collecting among them cost
    ~5 ms of CPU before an upload's first copy."""
    gc.disable()
    sys.exit(main(fast_exit=True))


def _started() -> None:
    """Start-up is over: its objects are frozen out of later collections, and collection resumes.
    Only where ``run`` held collection off: ``main`` called from other code leaves its GC alone."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None, fast_exit: bool = False) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:  # `trayagent` alone starts the agent with its tray icon
        args.command, args.headless = "agent", False
    paths = resolve_paths()
    redactor = Redactor()
    setup_logging(paths.log_file, redactor, verbose=getattr(args, "verbose", False))
    if fast_exit and args.command in _FAST_EXIT:
        sqlitedb.end_without_checkpoint()
        end_without_waiting()
    try:
        cfg = load_config(paths, getattr(args, "config", None))
        if args.command != "upload":  # an upload ends its start-up once its first copy is near
            _started()
        code = int(_COMMANDS[args.command](args, cfg, paths, redactor))
    except BrokenPipeError:
        code = _reader_gone()
    except (TrayagentError, OSError, sqlite3.DatabaseError) as caught:
        exc = _in_words(caught, paths)  # a full disk, a damaged database: said, not a traceback
        log.info("%s failed: %s", args.command, exc)  # INFO: the log file keeps what stderr said once
        log.debug("command failed", exc_info=True)
        print(f"trayagent: {exc}", file=sys.stderr)
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


def _sigterm_as_interrupt() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def _agent(paths: Paths) -> AgentClient | None:
    return AgentClient.find(paths.runtime_dir)


def _request_body(args: argparse.Namespace) -> dict[str, Any]:
    return {"paths": [str(Path(p).expanduser().resolve()) for p in args.paths], "dataset": args.dataset,
            "proposal": args.proposal, "description": args.description,
            "investigation_description": args.investigation_description, "include": args.include,
            "exclude": args.exclude}


def _uploader(cfg: Config, paths: Paths, redactor: Redactor, daemon: RcloneDaemon | None = None) -> Uploader:
    from .uploader import Uploader

    return Uploader(cfg, paths, redactor, daemon)


def cmd_upload(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    client = None if args.dry_run else _agent(paths)
    if client is not None:
        return _upload_via_agent(client, args)
    daemon = None
    if not args.dry_run:
        daemon = launch_rclone(cfg, paths, redactor)  # before the engine is even imported
        prefetch_secret(cfg)
    try:
        with _uploader(cfg, paths, redactor, daemon) as up:
            return _upload(up, args)
    finally:
        if daemon is not None:  # the uploader stops it; this covers an uploader that failed to open
            daemon.stop()


def _upload(up: Uploader, args: argparse.Namespace) -> int:
    plan = up.plan(args.paths, dataset=args.dataset, proposal=args.proposal,
                   description=args.description, investigation_description=args.investigation_description,
                   include=args.include, exclude=args.exclude)
    _started()
    if args.dry_run:
        return _dry_run(up, plan, args.json)
    _sigterm_as_interrupt()
    up.catalogue.preflight()  # a refusal certain to come stops the upload before anything is sent
    scan_errors: list[str] = []
    dataset = up.submit(plan, scan_errors)
    bar = ProgressBar.for_stream(sys.stderr, enabled=not args.json)
    outcome = up.run(dataset, bar.update if bar else None)
    if bar:
        bar.close()
    for problem in scan_errors:
        outcome.failures.append({"path": problem, "reason": "skipped while scanning"})
    outcome.files_failed += len(scan_errors)
    _report(outcome.as_dict(), args.json)
    return EXIT_FAILED if outcome.files_failed else EXIT_OK


def _upload_via_agent(client: AgentClient, args: argparse.Namespace) -> int:
    """The agent owns the queue: hand it the dataset and follow it to the end. The agent answers
    a wait the moment the dataset completes, or after a while to refresh the progress bar."""
    started = time.monotonic()
    answer = client.post("/api/upload", _request_body(args))
    _started()
    bar = ProgressBar.for_stream(sys.stderr, enabled=not args.json)
    while True:
        d = client.post(f"/api/datasets/{answer['dataset_id']}/wait", {"timeout": 0.5 if bar else 30},
                        timeout=90)
        if bar:
            from .engine import Progress

            bar.update(Progress(d["name"], d["files"], d["bytes_total"], d["bytes_done"], d["rate"], d["eta"]))
        if d["state"] == "complete":
            break
    if bar:
        bar.close()
    result = {"dataset": d["name"], "files_ok": d["files"]["registered"], "files_failed": d["files"]["failed"],
              "bytes": d["bytes_done"], "seconds": round(time.monotonic() - started, 3),
              "failures": d["errors"], "catalogue_id": None, "storage_path": d["storage_path"]}
    _report(result, args.json)
    return EXIT_FAILED if result["files_failed"] else EXIT_OK


def cmd_sync(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if not args.finalize and (not args.paths or not args.dataset):
        raise ConfigError("sync needs folders and --dataset NAME (or --finalize NAME)",
                          "Example: trayagent sync /data/run42 --dataset run42")
    if (client := _agent(paths)) is not None:
        return _sync_via_agent(client, args)
    if args.finalize:
        return _finalize(args.finalize, cfg, paths, redactor)
    _sigterm_as_interrupt()
    with _uploader(cfg, paths, redactor) as up:
        plan = up.plan(args.paths, dataset=args.dataset, proposal=args.proposal, description=args.description,
                       investigation_description=args.investigation_description, include=args.include,
                       exclude=args.exclude, mode="sync")
        dataset = up.start_sync(plan)
        up.engine.on_storage_full = lambda exc: None  # a full storage pauses the sync (the engine warns)
        up.engine.on_catalogue_refused = lambda exc: _registration_waits(up, exc)  # uploads go on
        print(f"syncing {', '.join(args.paths)} -> {dataset.storage_path} (Ctrl-C stops; "
              f"`trayagent sync --finalize {args.dataset}` finishes the dataset)", file=sys.stderr)
        try:
            up.serve_syncs(on_complete=lambda o: _report(o.as_dict(), False))
        except KeyboardInterrupt:
            up.stop_syncs()
            print("\ntrayagent: sync stopped; queued files stay queued. Run the same command to go on.",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
    return EXIT_OK


def _registration_waits(up: Uploader, exc: TrayagentError) -> None:
    """The engine has logged the refusal (terminal and log file); `trayagent status` shows it too."""
    for dataset_id, session in up.sessions.items():
        session.warning = f"registration waits: {exc.message}"
        up.queue.update_session(dataset_id, warning=session.warning)


def _sync_via_agent(client: AgentClient, args: argparse.Namespace) -> int:
    if args.finalize:
        status = client.get("/api/status")
        ids = [d["id"] for d in status["activity"] if d["name"] == args.finalize and d["syncing"]]
        if not ids:
            raise ConfigError(f"the agent has no running sync of {args.finalize!r}", "See `trayagent status`.")
        client.post(f"/api/datasets/{ids[0]}/finalize")
        print(f"the agent is finishing {args.finalize}; `trayagent status` shows when it is complete")
        return EXIT_OK
    answer = client.post("/api/sync", _request_body(args))
    print(f"the running agent now syncs {', '.join(args.paths)} -> {answer['storage_path']}")
    return EXIT_OK


def cmd_agent(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    """Start the agent; if one already runs, forward to it (open Activity, or the dropped paths)."""
    if (client := _agent(paths)) is not None:
        client.post("/api/open", {"paths": args.paths}) if getattr(args, "paths", None) else \
            client.post("/api/show/activity")
        print("trayagent is already running; asked it to open its window", file=sys.stderr)
        return EXIT_OK
    from .agent import Agent
    from .dialogs import DialogLauncher

    agent = Agent(cfg, paths, redactor, open_dialog=DialogLauncher(paths))
    agent.start()
    if getattr(args, "paths", None):
        agent.server.dispatch("POST", "/api/open", {"paths": args.paths})
    if args.headless:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: threading.Thread(target=agent.stop, daemon=True).start())
        agent.wait()
        return EXIT_OK
    from .tray import run_tray

    return run_tray(agent)


def cmd_open(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    paths_given = [str(Path(p).expanduser().resolve()) for p in args.paths]
    args.paths = paths_given
    args.headless = False
    return cmd_agent(args, cfg, paths, redactor)


def cmd_dialog(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    from .dialogs import show_dialog

    return show_dialog(paths, args.name, args.request)


def cmd_install_desktop(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    from .desktop import install_desktop

    for installed in install_desktop():
        print(f"installed {installed}")
    return EXIT_OK


def _finalize(name: str, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    _sigterm_as_interrupt()
    with _uploader(cfg, paths, redactor) as up:
        dataset = up.request_finalize(name)
        if up.sessions:  # nobody else held it: finish it here
            up.serve_syncs()
        else:
            print(f"asked the running sync of {name!r} to finish; waiting", file=sys.stderr)
            while up.queue.dataset(dataset.id).state != "complete":
                time.sleep(0.5)
        counts = up.queue.counts(dataset.id)
    print(f"{name}: complete; {counts['registered']} files registered, {counts['failed']} failed")
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _dry_run(up: Uploader, plan: Any, as_json: bool) -> int:
    errors: list[str] = []
    rows = list(up.preview(plan, errors))
    if as_json:
        print(json.dumps({"dataset": plan.spec.name, "storage_path": plan.storage_path,
                          "files": [{"local": a, "remote": b, "size": s} for a, b, s in rows],
                          "errors": errors}, ensure_ascii=False))
    else:
        for local, remote, size in rows:
            print(f"{local!s} -> {remote} ({size} bytes)")
        print(f"dry run: {len(rows)} files, {sum(r[2] for r in rows)} bytes would go to {plan.storage_path}; "
              "nothing was changed")
        for e in errors:
            print(f"  skipped: {e}", file=sys.stderr)
    return EXIT_OK


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: result[k] for k in ("dataset", "files_ok", "files_failed", "bytes", "seconds",
                                                  "failures", "catalogue_id", "storage_path")},
                         ensure_ascii=False))
        return
    mb = result["bytes"] / 1e6
    print(f"{result['dataset']}: {result['files_ok']} files ({mb:.1f} MB) uploaded, verified and registered "
          f"in {result['seconds']:.1f} s -> {result['storage_path']}")
    if result["files_failed"]:
        print(f"{result['files_failed']} files failed:", file=sys.stderr)
        for f in result["failures"][:20]:
            print(f"  {f['path']}: {f['reason']}", file=sys.stderr)
        print("Fix the cause and run the same command again: only what is missing is sent.", file=sys.stderr)


def cmd_resume(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    _sigterm_as_interrupt()
    with _uploader(cfg, paths, redactor) as up:
        if not up.queue.datasets("active"):
            print("nothing to resume" if not args.json else "[]")
            return EXIT_OK
        outcomes = up.resume()
        refused = up.refused
    if args.json:
        print(json.dumps([o.as_dict() for o in outcomes], ensure_ascii=False))
    else:
        for o in outcomes:
            _report(o.as_dict(), False)
    for problem in refused:  # datasets this configuration cannot finish: each says what will
        print(f"trayagent: {problem}", file=sys.stderr)
    if any(o.files_failed for o in outcomes):
        return EXIT_FAILED
    return EXIT_USAGE if refused else EXIT_OK


def cmd_status(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if (client := _agent(paths)) is not None:
        status = client.get("/api/status")
    else:
        with _uploader(cfg, paths, redactor) as up:
            status = up.status()
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
        return EXIT_OK
    if not status["datasets"]:
        print("no datasets yet")
    for d in status["datasets"]:
        counts = ", ".join(f"{n} {s}" for s, n in d["files"].items() if n)
        print(f"{d['name']} [{d['state']}, {d['mode']}] {counts or 'no files'}; "
              f"{d['bytes_registered'] / 1e6:.1f}/{d['bytes'] / 1e6:.1f} MB -> {d['storage']}")
        if session := d.get("session"):
            last = session["last_upload"]
            print(f"  sync {session['state']}: {', '.join(session['folders'])}; watching {session['watch'] or '-'}; "
                  f"{session['waiting']} waiting for completion; last upload "
                  f"{time.strftime('%H:%M:%S', time.localtime(last)) if last else 'none yet'}")
            if session["warning"]:
                print(f"  warning: {session['warning']}")
    if status["recent_errors"]:
        print("recent errors:")
        for e in status["recent_errors"]:
            print(f"  {e['dataset']}: {e['path']} ({e['state']}): {e['error']}")
    return EXIT_OK


def _storage_account(args: argparse.Namespace, cfg: Config) -> tuple[str, str]:
    user = args.user or cfg.storage.user
    if not cfg.storage.remote:
        raise ConfigError("[storage] remote is not set: the embedded local storage needs no login",
                          "Set [storage] remote and user in the configuration first.")
    if not user:
        raise ConfigError("no storage user", "Give --user NAME or set [storage] user.")
    return storage_service(cfg.storage.remote), user


def _stdin_secret(what: str) -> str:
    secret = sys.stdin.readline().strip()
    if not secret:
        raise ConfigError(f"empty {what} on stdin", f"Pipe the {what} into the command: `... | trayagent login`.")
    return secret


def _login_catalogue(args: argparse.Namespace, cfg: Config, redactor: Redactor) -> int:
    from .auth import login_catalogue

    password = token = None
    if args.token_stdin:
        token = _stdin_secret("token")
    elif args.password_stdin:
        password = _stdin_secret("password")
    elif not args.browser:
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to ask for the password",
                              "Use --password-stdin, --token-stdin or --browser.")
        args.user = args.user or input(f"SciCat user at {cfg.catalogue.url}: ").strip()
        password = getpass.getpass(f"Password for {args.user}: ")
    if password is not None and not args.user:
        raise ConfigError("no SciCat user name", "Give --user NAME.")
    for secret in (password, token):
        if secret:
            redactor.add(secret)
    ident = login_catalogue(cfg, args.user, password=password, token=token, oidc=args.browser)
    print(f"logged in to {cfg.catalogue.url} as {ident.username} <{ident.email}>; "
          f"groups: {', '.join(ident.groups) or 'none'}")
    if password is not None:
        print("your password and token are kept in the OS keyring; the token is renewed automatically")
    else:
        print("your token is kept in the OS keyring; it lasts about an hour, then run `trayagent login` again")
    return EXIT_OK


def cmd_login(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if args.what == "catalogue":
        return _login_catalogue(args, cfg, redactor)
    if args.token_stdin or args.browser:
        raise ConfigError("--token-stdin and --browser are for the catalogue", "Use --password-stdin for storage.")
    service, user = _storage_account(args, cfg)
    if args.password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        secret = getpass.getpass(f"Password for {user} on {cfg.storage.remote}: ")
    else:
        raise ConfigError("no terminal to ask for the password", "Use --password-stdin.")
    if not secret:
        raise ConfigError("empty password", "Give the storage password on stdin.")
    set_secret(service, user, secret)
    print(f"stored the storage password of {user} in the OS keyring")
    return EXIT_OK


def cmd_logout(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if args.what == "catalogue":
        from .auth import logout_catalogue

        removed = logout_catalogue(cfg, args.user)
        print("logged out of SciCat; the stored password and token are gone" if removed
              else "not logged in to SciCat: nothing to remove")
        return EXIT_OK
    service, user = _storage_account(args, cfg)
    removed = delete_secret(service, user)
    print(f"removed the storage password of {user}" if removed else f"no stored password for {user}")
    return EXIT_OK


def cmd_config(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if args.action == "path":
        print(cfg.source or f"{paths.config_file} (absent: the embedded default is used)")
    elif args.action == "reference":
        print(reference_markdown())
    else:
        print(f"{cfg.source or 'embedded default'}: OK")
    return EXIT_OK


_COMMANDS = {"upload": cmd_upload, "sync": cmd_sync, "agent": cmd_agent, "open": cmd_open,
             "dialog": cmd_dialog, "install-desktop": cmd_install_desktop, "status": cmd_status, "resume": cmd_resume, "login": cmd_login,
             "logout": cmd_logout, "config": cmd_config}

if __name__ == "__main__":
    run()
