"""One long-lived ``rclone rcd`` per agent, driven over its remote-control API.

Why rc and not one process per file: one process keeps connections, directory caches and parallel
transfers warm across batches; progress comes from ``core/stats``; the bandwidth limit changes at run
time. The rc password reaches rclone through an htpasswd file (0600), never the command line, and
rclone's own log is streamed into the agent log with every registered secret masked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ..errors import StorageError
from .process import LAUNCHER, die_with_parent, ending_without_waiting, is_rclone, pid_alive
from .rcerrors import RcError
from .rchttp import LoopbackHttp, http_client
from .rclonelog import LineReader, LogPump
from .redact import Redactor

log = logging.getLogger(__name__)

# Go's collector during rclone's start-up: off, with a ceiling in case it is never turned back on
_START_GC = {"GOGC": "off", "GOMEMLIMIT": "256MiB"}
_GC_HELD_SECONDS = 0.5
_NO_MEMORY_LIMIT = 2**63 - 1  # Go's default; sent as a string (a JSON number would pass through a float)
# How long rclone keeps a finished job (counted from its end). Each job holds what it did (about
# 2.4 kB per file copied): kept for rclone's default 10 minutes, a million files took its rclone to
# 2.5 GB. A status that expired before it was read is not an error (see ``wait_job``).
JOB_EXPIRE = "3s"
# rclone gives every rc call that counts anything (a listing, a copyfile) a stats group of its own,
# kept until deleted (up to 1,000): the calls that are not jobs share this one instead.
CALL_GROUP = "trayagent"
_LISTEN = re.compile(r"Serving remote control on (http://127\.0\.0\.1:\d+)/")


class RcloneDaemon:
    """A supervised ``rclone rcd``; ``call`` restarts it once if it died."""

    def __init__(self, binary: str, runtime_dir: Path, rclone_config: str = "",
                 redactor: Redactor | None = None, bwlimit: str = "") -> None:
        self.binary = binary
        self.bwlimit = bwlimit  # rclone's --bwlimit at (re)start: a single rate or a timetable
        self.runtime_dir = runtime_dir
        self.rclone_config = rclone_config
        self.redact = redactor or Redactor()
        self._proc: subprocess.Popen[str] | None = None
        self._url = ""
        self._auth: tuple[str, str] = ("trayagent", "")
        self._lock = threading.Lock()
        self._http = LoopbackHttp()
        self._ready = _Ready()
        self._log = LogPump(self.redact)  # counts "Copied" lines: tells a waiting job that its files are done
        self._gc_held = False

    # -- process --------------------------------------------------------------------------------
    def _write_htpasswd(self, password: str) -> Path:
        path = self.runtime_dir / f"rclone-rc-{os.getpid()}.htpasswd"
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{self._auth[0]}:{{SHA}}{digest}\n")
        except OSError:  # a full disk: no empty password file left behind
            path.unlink(missing_ok=True)
            raise
        return path

    def start(self) -> None:
        """Start rclone and wait until it serves (errors such as a broken binary raise here)."""
        self.launch()
        self._wait_ready()

    def launch(self) -> None:
        """Start rclone without waiting: the first ``call`` waits. A CLI run scans its folders
        and reads the keyring meanwhile instead of idling through rclone's start-up."""
        with self._lock:
            if self._proc and self._proc.poll() is None:
                return
            self._start_locked()

    def _start_locked(self) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = secrets.token_urlsafe(32)
        self._auth = ("trayagent", password)
        htpasswd = self._write_htpasswd(password)
        cmd = [self.binary, "rcd", "--rc-addr", "127.0.0.1:0", "--rc-htpasswd", str(htpasswd),
               "--rc-job-expire-duration", JOB_EXPIRE, "--rc-job-expire-interval", JOB_EXPIRE,
               "--log-level", "INFO", "--use-json-log=false",
               "--stats", "0"]
        if self.rclone_config:
            cmd += ["--config", self.rclone_config]
        if self.bwlimit:
            cmd += ["--bwlimit", self.bwlimit]
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        self._gc_held = not ({"GOGC", "GOMEMLIMIT"} & env.keys())  # a user's own Go settings win
        if self._gc_held:
            env.update(_START_GC)
        self._reap_orphan()
        try:
            self._proc = LAUNCHER.popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, errors="replace", env=env,
                                        creationflags=flags,
                                        preexec_fn=die_with_parent if os.name == "posix" else None)
            self._pidfile.write_text(str(self._proc.pid))
        except OSError:  # e.g. no space left for the pid file: nothing started, nothing left behind
            self._abandon_start(htpasswd)
            raise
        self._ready = _Ready()
        threading.Thread(target=self._follow, args=(self._proc, self._ready), daemon=True,
                         name="rclone-log").start()

    def _abandon_start(self, htpasswd: Path) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait(5)
        for leftover in (htpasswd, self._pidfile):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)

    def _follow(self, proc: subprocess.Popen[str], ready: _Ready) -> None:
        """Wait for rclone to serve, then stream its log for as long as it runs."""
        assert proc.stderr is not None
        reader = LineReader(proc.stderr.fileno())  # the text stream itself is never read: no buffer between
        after: list[str] = []
        try:
            self._url, after = self._await_listen(proc, reader)
            log.info("rclone rcd (pid %d) serving on %s", proc.pid, self._url)
        except StorageError as exc:
            ready.error = exc
        finally:
            ready.set()
        if ready.error is None:
            if self._gc_held:
                timer = threading.Timer(_GC_HELD_SECONDS, self._release_gc, (proc,))
                timer.daemon = True
                timer.start()
            self._log.run(reader, after)

    def _release_gc(self, proc: subprocess.Popen[str]) -> None:
        """rclone starts with Go's collector off (``_START_GC``): its start-up allocates much that
        lives on, and collecting it cost ~11 ms of the ~45 ms before it serves, on the critical path
        of every `trayagent upload`. Half a second after it serves (not at once: the deferred
        collection would then slow the first requests instead) Go's defaults come back. Should that
        fail, the start-up memory limit still bounds the heap."""
        if proc is not self._proc or proc.poll() is not None:
            return
        try:
            for method, params in (("debug/set-gc-percent", {"gc-percent": 100}),
                                   ("debug/set-soft-memory-limit", {"mem-limit": str(_NO_MEMORY_LIMIT)})):
                status, payload = self._http.post(f"{self._url}/{method}", json.dumps(params).encode(),
                                                  "application/json", self._auth, 10)
                if status != 200:
                    raise ConnectionError(f"{method}: HTTP {status} {payload[:200]!r}")
        except ConnectionError as exc:
            if proc is self._proc and proc.poll() is None:  # not merely stopped meanwhile
                log.warning("rclone keeps its start-up memory limit (%s): %s", _START_GC["GOMEMLIMIT"], exc)

    def _wait_ready(self) -> None:
        ready = self._ready
        if not ready.wait(30):
            raise StorageError("rclone did not start within 30 s", "See the log; check that `rclone version` works.",
                               transient=True)
        if ready.error is not None:
            raise ready.error

    @property
    def _pidfile(self) -> Path:
        """One per agent process: several processes (two sync sessions) may share a home."""
        return self.runtime_dir / f"rclone-rcd-{os.getpid()}.pid"

    def _reap_orphan(self) -> None:
        """An rclone left running by a killed agent could still be writing: stop it first.
        Only daemons whose owning process is gone are touched."""
        for pidfile in self.runtime_dir.glob("rclone-rcd-*.pid"):
            try:
                owner = int(pidfile.stem.rsplit("-", 1)[1])
                pid = int(pidfile.read_text())
            except (OSError, ValueError, IndexError):
                continue
            if owner != os.getpid() and pid_alive(owner):
                continue
            if owner != os.getpid() and is_rclone(pid):
                log.warning("stopping rclone (pid %d) left over from an agent that was killed", pid)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            pidfile.unlink(missing_ok=True)

    def _await_listen(self, proc: subprocess.Popen[str], reader: LineReader) -> tuple[str, list[str]]:
        """rclone's address, and the lines that came after it in the same read (logged as usual)."""
        deadline = time.monotonic() + 20
        seen: list[str] = []
        while time.monotonic() < deadline and (lines := reader.lines()) is not None:
            for i, line in enumerate(lines):
                seen.append(self.redact(line.rstrip()))
                if m := _LISTEN.search(line):
                    return m.group(1), lines[i + 1:]
        proc.kill()
        raise StorageError("rclone did not start: " + " | ".join(seen[-5:]),
                           "Check that rclone works (`rclone version`) and see the log.")

    def copied_count(self) -> int:
        """Files rclone has logged as copied so far (all jobs): a base for ``wait_job(copies=)``."""
        return self._log.copied()

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc and proc.poll() is None:
            proc.terminate()
            if not ending_without_waiting():
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        for f in self.runtime_dir.glob(f"rclone-rc-{os.getpid()}.htpasswd"):
            f.unlink(missing_ok=True)
        self._pidfile.unlink(missing_ok=True)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return bool(self._proc and self._proc.poll() is None)

    # -- rc calls -------------------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
        """POST an rc method with JSON parameters; on a dead daemon restart it and try once more.
        A call that is not a job shares one stats group (``CALL_GROUP``) with the others."""
        params = dict(params or {})
        if not params.get("_async"):
            params.setdefault("_group", CALL_GROUP)
        return self._post(method, "", json.dumps(params).encode(), "application/json", timeout)

    def upload(self, fs: str, name: str, data: bytes, config: dict[str, Any],
               timeout: float = 600) -> dict[str, Any]:
        """Store ``data`` as the file ``name`` at the top of ``fs``, from memory (rc
        ``operations/uploadfile``). No scratch file: deleting one on the local disk right after a
        big upload was measured waiting 40-110 ms on the filesystem's journal."""
        if not name or any(c in name for c in '"/\\\r\n'):
            raise ValueError(f"not a plain file name: {name!r}")
        boundary = secrets.token_hex(16)
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        body = b"".join((head.encode(), data, f"\r\n--{boundary}--\r\n".encode()))
        # Sent with its size, as one request: above the cutoff rclone would stream it with a chunked
        # upload of unknown size, which some WebDAV servers refuse.
        config = {**config, "StreamingUploadCutoff": len(data) + 1}
        query = urlencode({"fs": fs, "remote": "", "_config": json.dumps(config)})
        return self._post("operations/uploadfile", query, body, f"multipart/form-data; boundary={boundary}",
                          timeout)

    def _post(self, method: str, query: str, body: bytes, content_type: str, timeout: float) -> dict[str, Any]:
        for attempt in (1, 2):
            if not self.alive():
                with self._lock:
                    if not (self._proc and self._proc.poll() is None):
                        if self._proc is not None:
                            log.warning("rclone rcd died (exit %s); restarting it", self._proc.returncode)
                        self._start_locked()
            http_client()  # loaded while rclone may still be starting
            self._wait_ready()
            url = f"{self._url}/{method}" + (f"?{query}" if query else "")
            try:
                status, payload = self._http.post(url, body, content_type, self._auth, timeout)
            except OSError:  # refused, reset, timed out
                if attempt == 2:
                    raise StorageError("rclone is not answering", "See the log; it is restarted "
                                       "automatically.", transient=True) from None
                continue
            return self._decode(method, status, payload)
        raise AssertionError("unreachable")

    def _decode(self, method: str, status: int, payload: bytes) -> dict[str, Any]:
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        if not isinstance(body, dict):  # not rclone's JSON (a proxy's page, a truncated answer)
            body = {"error": payload[:200].decode("utf-8", "replace")}
        if status != 200:
            raise RcError(method, status, self.redact(str(body.get("error", body))))
        return body

    def run_job(self, method: str, params: dict[str, Any], poll: float = 0.05,
                on_job: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Start an async job and wait for it; returns the final job/status."""
        return self.wait_job(self.start_job(method, params), poll, on_job)

    def start_job(self, method: str, params: dict[str, Any]) -> tuple[int, int | None]:
        """Start an async job; returns (jobid, daemon pid) for ``wait_job``."""
        job = self.call(method, {**params, "_async": True})
        return int(job["jobid"]), self.pid

    def wait_job(self, job: tuple[int, int | None], poll: float = 0.05,
                 on_job: Callable[[int], None] | None = None,
                 copies: tuple[int, int] | None = None,
                 watchdog: Callable[[int], str | None] | None = None) -> dict[str, Any]:
        """Poll the job until it finishes. ``copies`` = (``copied_count()`` before the job, files in
        it): once rclone has logged that many copies the job is about to end, so the next poll comes
        at once instead of up to ``poll`` later (latency of small sync batches, tail of big files).
        ``watchdog``: asked on every poll; the reason it returns stops the job and becomes its error
        (``stall.StallWatch``: storage gone mid-copy)."""
        jobid, pid = job
        delay, all_copied = 0.02, False
        stopped: str | None = None
        while True:
            if copies is not None and not all_copied:
                all_copied = self._wait_copies(*copies, timeout=delay)
                delay = 0.005 if all_copied else delay
            else:
                time.sleep(delay)
            delay = min(poll, delay * 2)
            if self.pid != pid or not self.alive():
                raise StorageError("rclone restarted during a transfer", "The batch is retried.",
                                   transient=True)
            try:
                status = self.call("job/status", {"jobid": jobid})
            except RcError as exc:
                if "job not found" not in exc.error:
                    raise
                self._forget_stats(jobid)
                return _EXPIRED  # finished and forgotten while the caller was busy (``JOB_EXPIRE``)
            if on_job is not None:
                on_job(jobid)
            if status.get("finished"):
                self._forget_stats(jobid)
                return {**status, "success": False, "error": stopped} if stopped else status
            if watchdog is not None and stopped is None and (stopped := watchdog(jobid)):
                with contextlib.suppress(RcError):  # ended meanwhile: the next poll says how
                    self.call("job/stop", {"jobid": jobid})

    def _forget_stats(self, jobid: int) -> None:
        """A finished job's transfer statistics (its stats group) outlive the job in rclone: up to
        1,000 groups of up to 100 transfers each. Nothing reads them once the job is done."""
        try:
            self.call("core/stats-delete", {"group": f"job/{jobid}"}, timeout=10)
        except (RcError, StorageError) as exc:
            log.debug("rclone stats of job %d kept: %s", jobid, exc)

    def _wait_copies(self, base: int, expect: int, timeout: float) -> bool:
        return self._log.wait_copies(base, expect, timeout)

    def stats(self, group: str | None = None) -> dict[str, Any]:
        return self.call("core/stats", {"group": group} if group else {})

    def trim(self) -> None:
        """Give back what finished work left in rclone: the garbage Go has not collected yet,
        collected now (Go then returns it to the system), and the stats groups (those of jobs not
        waited for here, and the calls' shared one), those of running jobs kept. For a quiet moment;
        a daemon that is not running is not started for it. 50,000 files in jobs of 1,000: RSS
        80.8 MB after the copies, 69.0 MB after this, 66.6 MB fresh."""
        if not self.alive():
            return
        try:
            running = {f"job/{i}" for i in self.call("job/list", timeout=10).get("runningIds") or []}
            for group in self.call("core/group-list", timeout=10).get("groups") or []:
                if (str(group).startswith("job/") or group == CALL_GROUP) and group not in running:
                    self.call("core/stats-delete", {"group": group}, timeout=10)
            self.call("core/gc", timeout=30)
        except (RcError, StorageError) as exc:
            log.debug("rclone trim: %s", exc)

    def set_bwlimit(self, rate: str) -> None:
        """Change the bandwidth limit of the running rclone. rclone's rc takes one rate only, so a
        timetable ("08:00,20M 20:00,off") takes effect at rclone's next start; either way the new
        value is kept for restarts."""
        rate = rate.strip()
        if rate == self.bwlimit and self._proc is not None:
            return  # rclone was started with it
        self.bwlimit = rate
        if is_timetable(rate):
            log.warning("bandwidth timetable %r takes effect when rclone next starts (restart the agent)", rate)
            return
        self.call("core/bwlimit", {"rate": rate or "off"})

    def obscure(self, clear: str) -> str:
        obscured = str(self.call("core/obscure", {"clear": clear})["obscured"])
        self.redact.add(obscured)
        return obscured


def is_timetable(bwlimit: str) -> bool:
    """rclone's bandwidth timetable ("08:00,512k 12:00,10M Sat-00:00,off"), as opposed to a single
    rate ("10M", "1M:100k" for upload:download, "off")."""
    return "," in bwlimit or " " in bwlimit.strip()


# A job whose status expired unread: taken as done, since its files are verified in storage like any
# others (what did not land is then copied alone, which tells its own error).
_EXPIRED: dict[str, Any] = {"finished": True, "success": True, "expired": True}


class _Ready(threading.Event):
    """Set once rclone serves, or failed to start (``error``)."""

    def __init__(self) -> None:
        super().__init__()
        self.error: StorageError | None = None
