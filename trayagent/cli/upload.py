"""``trayagent upload | sync | resume | status``: standalone, or handed to the running agent."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..agent.client import AgentClient
from ..config import Config
from ..errors import ConfigError
from ..paths import Paths
from ..pipeline.progress import Outcome, Progress
from ..queue import DatasetState, Mode
from ..storage.rclone import RcloneDaemon
from ..storage.redact import Redactor
from ..storage.target import launch_rclone, prefetch_secret
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    in_cli_words,
    running_agent,
    sigterm_as_interrupt,
    startup_over,
)
from .progressbar import ProgressBar

if TYPE_CHECKING:  # imported by the commands that use it, after an upload has set rclone going
    from ..uploader import Uploader


def _request_body(args: argparse.Namespace) -> dict[str, Any]:
    return {"paths": [str(Path(p).expanduser().resolve()) for p in args.paths], "dataset": args.dataset,
            "proposal": args.proposal, "description": args.description,
            "investigation_description": args.investigation_description, "include": args.include,
            "exclude": args.exclude, "keywords": args.keyword, "metadata": _metadata(args)}


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    """``--metadata-file`` then every ``--metadata`` (later wins); the template is checked by the plan."""
    from ..metadata.model import parse_assignment, read_metadata_file

    entries = read_metadata_file(Path(args.metadata_file).expanduser()) if args.metadata_file else {}
    entries.update(parse_assignment(text) for text in args.metadata)
    return entries


def _described(args: argparse.Namespace) -> dict[str, Any]:
    """What ``Uploader.plan`` takes from the options, besides paths and mode."""
    return {"dataset": args.dataset, "proposal": args.proposal, "description": args.description,
            "investigation_description": args.investigation_description, "include": args.include,
            "exclude": args.exclude, "keywords": args.keyword, "metadata": _metadata(args)}


def _uploader(cfg: Config, paths: Paths, redactor: Redactor, daemon: RcloneDaemon | None = None) -> Uploader:
    from ..uploader import Uploader

    return Uploader(cfg, paths, redactor, daemon)


def cmd_upload(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    client = None if args.dry_run else running_agent(paths)
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
    plan = up.plan(args.paths, **_described(args))
    startup_over()
    if args.dry_run:
        return _dry_run(up, plan, args.json)
    sigterm_as_interrupt()
    up.preflight()  # a refusal certain to come stops the upload before anything is sent
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
    begun = time.monotonic()
    answer = client.post("/api/upload", _request_body(args))
    startup_over()
    if answer.get("problem"):  # a setting to fix holds every upload: said now, not waited out mutely
        raise ConfigError(f"the agent took {args.dataset!r} into its queue, but uploads cannot go on: "
                          f"{answer['problem']}", "It goes up by itself once that is fixed; "
                          "`trayagent status` shows it.")
    bar = ProgressBar.for_stream(sys.stderr, enabled=not args.json)
    while True:
        d = client.post(f"/api/datasets/{answer['dataset_id']}/wait", {"timeout": 0.5 if bar else 30},
                        timeout=90)
        if bar:
            bar.update(Progress(d["name"], d["files"], d["bytes_total"], d["bytes_done"], d["rate"], d["eta"]))
        if d["state"] in ("complete", "cancelled"):
            break
    if bar:
        bar.close()
    if d["state"] == "cancelled":
        print(f"trayagent: {d['name']} was cancelled (Activity or `trayagent cancel`); what was sent stays in "
              "storage and the catalogue. Run the same command to upload the rest.", file=sys.stderr)
        return EXIT_INTERRUPTED
    outcome = Outcome.of_entry(d, seconds=time.monotonic() - begun)
    _report(outcome.as_dict(), args.json)
    return EXIT_FAILED if outcome.files_failed else EXIT_OK


def cmd_sync(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if not args.finalize and (not args.paths or not args.dataset):
        raise ConfigError("sync needs folders and --dataset NAME (or --finalize NAME)",
                          "Example: trayagent sync /data/run42 --dataset run42")
    if (client := running_agent(paths)) is not None:
        return _sync_via_agent(client, args)
    if args.finalize:
        return _finalize(args.finalize, cfg, paths, redactor)
    sigterm_as_interrupt()
    with _uploader(cfg, paths, redactor) as up:
        plan = up.plan(args.paths, mode=Mode.SYNC, **_described(args))
        dataset = up.start_sync(plan)
        up.watch(on_storage_full=lambda exc: None,  # a full storage pauses the sync (the engine warns)
                 on_catalogue_refused=lambda exc: up.warn_syncs(f"registration waits: {exc.message}"))
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


def cmd_cancel(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    """``trayagent cancel NAME``: what Activity's Cancel does, for the dataset of that name that is
    being uploaded (by the running agent, else in this queue)."""
    if (client := running_agent(paths)) is not None:
        ids = [d["id"] for d in client.get("/api/status")["activity"]
               if d["name"] == args.name and d["state"] == "active"]
        if not ids:
            raise ConfigError(f"the agent uploads no dataset named {args.name!r}", "See `trayagent status`.",
                              field="dataset")
        dropped = int(client.post(f"/api/datasets/{ids[0]}/cancel")["dropped"])
    else:
        with _uploader(cfg, paths, redactor) as up:
            found = [d for d in up.datasets(DatasetState.ACTIVE) if d.name == args.name]
            if not found:
                raise ConfigError(f"no dataset named {args.name!r} is being uploaded", "See `trayagent status`.",
                                  field="dataset")
            up.claim(found[-1].id)  # Busy while another process (an upload, a sync) works on it
            dropped = up.cancel(found[-1].id)
    print(f"{args.name}: cancelled; {dropped} files not yet sent left the queue. What is in storage and "
          "the catalogue stays there; uploading it again starts it again.")
    return EXIT_OK


def _finalize(name: str, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    sigterm_as_interrupt()
    with _uploader(cfg, paths, redactor) as up:
        dataset = up.request_finalize(name)
        if up.syncing():  # nobody else held it: finish it here
            up.serve_syncs()
        else:
            print(f"asked the running sync of {name!r} to finish; waiting", file=sys.stderr)
            while up.dataset(dataset.id).state != DatasetState.COMPLETE:
                time.sleep(0.5)
        counts = up.file_counts(dataset.id)
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
    sigterm_as_interrupt()
    with _uploader(cfg, paths, redactor) as up:
        if not up.datasets(DatasetState.ACTIVE):
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
        print(f"trayagent: {in_cli_words(problem)}", file=sys.stderr)
    if any(o.files_failed for o in outcomes):
        return EXIT_FAILED
    return EXIT_USAGE if refused else EXIT_OK


def cmd_status(args: argparse.Namespace, cfg: Config, paths: Paths, redactor: Redactor) -> int:
    if (client := running_agent(paths)) is not None:
        status = client.get("/api/status")
    else:
        with _uploader(cfg, paths, redactor) as up:
            status = up.status()
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
        return EXIT_OK
    agent = status.get("agent") or {}
    if agent.get("problem"):
        print(f"the agent cannot upload: {agent['problem']}")
    elif (agent.get("waiting") or "").startswith("storage"):
        print(f"the agent waits: {agent['waiting']}")
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
