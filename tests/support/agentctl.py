"""Drive trayagent as a user would: real CLI processes against a private TRAYAGENT_HOME.

Tests use ``Trayagent`` to write a config file, store secrets through ``trayagent login``, run
commands (or start them in the background to kill them), and read back the queue and catalogue.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers import S3Server, WebDAVServer
from waiting import stop_process

from trayagent.config import toml_value


def logs_text(folder: Path) -> str:
    """The log files of every trayagent process under ``folder`` (one file each), oldest first."""
    files = sorted(folder.glob("*.log"), key=lambda p: (p.stat().st_mtime, p.name)) if folder.is_dir() else []
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


@dataclass
class Trayagent:
    home: Path
    _started: list[subprocess.Popen[str]] = field(default_factory=list, init=False, repr=False)

    def close(self) -> None:
        """Stop what ``popen`` started and is still running: a test that failed half-way must not
        leave an upload retrying against a server it stopped (its home is deleted later)."""
        for proc in self._started:
            if proc.poll() is None:
                stop_process(proc, 10)

    @property
    def storage_dir(self) -> Path:
        """The embedded default storage folder."""
        return self.home / "data" / "storage"

    @property
    def log_text(self) -> str:
        """Every process's log file (one per process: trayagent/logs.py), oldest first."""
        return logs_text(self.home / "logs")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TRAYAGENT_HOME"] = str(self.home)
        env.pop("TRAYAGENT_CONFIG", None)
        return env

    def write_config(self, sections: dict[str, dict[str, Any]]) -> Path:
        path = self.home / "config" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for name, keys in sections.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def run(self, *args: str, input: str | None = None, timeout: float = 300,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "trayagent.cli", *args], input=input, text=True,
                              capture_output=True, env=self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"trayagent {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def upload_json(self, *args: str, timeout: float = 300) -> tuple[int, dict[str, Any]]:
        proc = self.run("upload", *args, "--json", timeout=timeout)
        try:
            return proc.returncode, json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise AssertionError(
                f"no JSON from upload (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None

    def popen(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "trayagent.cli", *args], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        self._started.append(proc)
        return proc

    # -- reading state back -------------------------------------------------------------------
    def catalogue_files(self, dataset: str) -> dict[str, dict[str, Any]]:
        """path -> row of every file the local catalogue holds for datasets named ``dataset``."""
        with sqlite3.connect(self.home / "data" / "catalogue.sqlite") as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT f.* FROM files f JOIN datasets d ON d.id = f.dataset_id "
                              "WHERE d.name = ?", (dataset,)).fetchall()
        return {r["path"]: dict(r) for r in rows}

    def catalogue_datasets(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.home / "data" / "catalogue.sqlite") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM datasets").fetchall()]

    def queue_states(self) -> dict[str, int]:
        with sqlite3.connect(self.home / "data" / "queue.sqlite") as db:
            return dict(db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())

    def files_sent(self) -> int:
        """Files already in storage (uploaded, verified or registered), for acting mid-upload."""
        states = self.queue_states()
        return sum(states.get(s, 0) for s in ("uploaded", "verified", "registered"))

    # -- storage profiles ---------------------------------------------------------------------
    def use_webdav(self, server: WebDAVServer, **extra: Any) -> None:
        self.write_config({"storage": {"remote": f":webdav,url='{server.url}',vendor=other:",
                                       "user": server.user, **extra.pop("storage", {})}, **extra})
        self.run("login", "storage", "--password-stdin", input=server.password + "\n", check=True)

    def use_s3(self, server: S3Server, bucket: str, **extra: Any) -> None:
        remote = (f":s3,provider=SeaweedFS,endpoint='{server.endpoint}',region={server.region},"
                  f"force_path_style=true:{bucket}")
        self.write_config({"storage": {"remote": remote, "user": server.access_key,
                                       **extra.pop("storage", {})}, **extra})
        self.run("login", "storage", "--password-stdin", input=server.secret_key + "\n", check=True)


def recording_opener(tmp_path: Path, agent_env: dict[str, str]) -> Path:
    """An `xdg-open` first on the agent's PATH that writes down what it was asked to open."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opened = tmp_path / "opened.txt"
    (bin_dir / "xdg-open").write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n')
    (bin_dir / "xdg-open").chmod(0o755)
    agent_env["PATH"] = f"{bin_dir}{os.pathsep}{agent_env['PATH']}"
    return opened
