"""What the terminal shows when things go half wrong: trayagent's message once, rclone's raw lines in
the log file only; what the scan skipped and why; a closed pipe ends a command quietly."""

from __future__ import annotations

import http.client
import http.server
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest
from agentctl import Trayagent
from datagen import make_many, tree_of
from servers import WebDAVServer, free_port
from waiting import wait_until

from trayagent.logs import setup_logging


def test_rclone_lines_go_to_the_log_file_only_and_trayagents_to_the_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "trayagent.log"
    setup_logging(log_file, lambda text: text)
    logging.getLogger("trayagent.rclone.process").error("a.bin: Failed to copy: 503 Service Unavailable")
    logging.getLogger("trayagent.pipeline.engine").warning("a.bin: 503 Service Unavailable; retry in 1.0 s")
    logging.shutdown()
    err = capsys.readouterr().err
    assert "Failed to copy" not in err
    assert err.count("503 Service Unavailable") == 1 and "retry in 1.0 s" in err
    text = log_file.read_text()
    assert "Failed to copy" in text and "retry in 1.0 s" in text
    setup_logging(log_file, lambda text: text, verbose=True)  # -v: rclone's lines too
    logging.getLogger("trayagent.rclone.process").error("b.bin: Failed to copy: 503")
    assert "b.bin: Failed to copy" in capsys.readouterr().err


class FlakyProxy:
    """A fake, in front of the real WebDAV server: a real server will not fail on demand. The first
    ``failures`` PUTs are answered 503 with an HTML page (their body read first), more than rclone's
    own low-level retries absorb; everything else is passed on."""

    def __init__(self, target: WebDAVServer, failures: int = 12) -> None:
        self.target = target
        self.failures = failures
        self.puts = 0
        self.refused = 0
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def _refuse(self) -> bool:
        with self.lock:
            self.puts += 1
            refuse = self.puts <= self.failures
            self.refused += refuse
            return refuse

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and proxy._refuse():
                    page = b"<html><head><title>503 Service Unavailable</title></head><body>busy</body></html>"
                    self.send_response(503)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_PROPFIND = do_MKCOL = do_MOVE = do_COPY = _any
            do_OPTIONS = do_PROPPATCH = do_LOCK = do_UNLOCK = do_POST = _any

        return Handler

    def __enter__(self) -> Self:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky(webdav_server: WebDAVServer) -> Iterator[FlakyProxy]:
    with FlakyProxy(webdav_server) as proxy:
        yield proxy


def test_a_run_that_succeeds_despite_retries_prints_no_raw_rclone_lines(
        ta: Trayagent, webdav_server: WebDAVServer, flaky: FlakyProxy, tmp_path: Path) -> None:
    content = make_many(tmp_path / "run", 12, per_dir=100)
    ta.write_config({"storage": {"remote": f":webdav,url='{flaky.url}',vendor=other:", "user": webdav_server.user},
                     "transfer": {"retry_max_seconds": 1}})
    ta.run("login", "storage", "--password-stdin", input=webdav_server.password + "\n", check=True)
    proc = ta.run("upload", str(tmp_path / "run"), "--dataset", "flaky", timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert flaky.refused >= 4
    assert tree_of(webdav_server.root / "no-proposal" / "flaky") == content
    assert "Failed to copy" not in proc.stderr and "<html" not in proc.stderr  # rclone's lines: log only
    assert "Failed to copy" in ta.log_text
    # trayagent's own words, at most once per refusal (rclone's retries inside a job are its own)
    assert proc.stderr.count("503 Service Unavailable") <= flaky.refused


def odd_entries(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    root.mkdir()
    (root / "a.bin").write_bytes(b"a")
    fifo = root / "pipe.fifo"
    os.mkfifo(fifo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.bin").write_bytes(b"b")
    link = root / "linked"
    link.symlink_to(elsewhere, target_is_directory=True)
    return fifo, link


def test_a_fifo_and_a_link_to_a_folder_are_reported_as_skipped(ta: Trayagent, tmp_path: Path) -> None:
    fifo, link = odd_entries(tmp_path / "run", tmp_path)
    ta.write_config({"storage": {"remote": str(tmp_path / "storage")}})
    for command in (("--dry-run",), ()):
        proc = ta.run("upload", str(tmp_path / "run"), "--dataset", "odd", *command, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"skipped {fifo}: a FIFO (named pipe): only regular files are uploaded" in proc.stderr
        assert f"skipped {link}: a link to a folder" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "storage" / "no-proposal" / "odd").iterdir()) == [
        "a.bin", "ro-crate-metadata.json"]
    assert f"skipped {fifo}" in ta.log_text


def test_dry_run_into_a_closed_pipe_ends_quietly(ta: Trayagent, tmp_path: Path) -> None:
    """`trayagent upload --dry-run ... | head -1`: more lines than a pipe holds, reader gone."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(2000):
        (root / f"frame_{i:05d}_with_a_rather_long_name.bin").write_bytes(b"")
    script = (f'"{sys.executable}" -m trayagent.cli upload --dry-run "{root}" --dataset many | head -1; '
              'echo "exit=${PIPESTATUS[0]}" >&2')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ta.env(),
                          timeout=120, check=False)
    assert proc.stdout.count("\n") == 1 and "frame_00000" in proc.stdout
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert "exit=141" in proc.stderr  # as a Unix tool ended by SIGPIPE


def test_a_sync_session_shows_what_it_skipped_in_status(ta: Trayagent, tmp_path: Path) -> None:
    fifo, link = odd_entries(tmp_path / "run", tmp_path)
    ta.write_config({"storage": {"remote": str(tmp_path / "storage")}, "sync": {"quiet_seconds": 0.5}})
    sync = ta.popen("sync", str(tmp_path / "run"), "--dataset", "odd")
    try:
        wait_until(lambda: "warning: skipped" in ta.run("status").stdout, 60)
        status = ta.run("status").stdout
        assert f"{fifo}: a FIFO (named pipe)" in status and f"{link}: a link to a folder" in status
        wait_until(lambda: (tmp_path / "storage" / "no-proposal" / "odd" / "a.bin").exists(), 60)
    finally:
        sync.terminate()
        sync.wait(30)
    stored = {p.name for p in (tmp_path / "storage" / "no-proposal" / "odd").iterdir()}
    assert "a.bin" in stored and not {"pipe.fifo", "linked"} & stored
