"""The agent's local control API: JSON over HTTP on 127.0.0.1, for the CLI, dialogs and second starts.

Why HTTP: dialogs are web pages (pywebview, or any browser for tests), and every language speaks it.
Why it is safe: bound to loopback only, on a free port; every /api request must carry the per-run
token (``Authorization: Bearer``), which lives in a 0600 file in the user's runtime folder; the Host
header must name this server (defeats DNS rebinding) and an Origin, when present, must be our own
(defeats cross-site requests from a browser tab). The dialog pages themselves (/ui/...) are static
and public; they read the token from their URL fragment, which browsers never send to a server.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import mimetypes
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import TrayagentError
from .client import INFO_FILE, TOKEN_FILE

TICKET_SECONDS = 120.0  # a browser has this long to open a dialog's page
SHUTDOWN_POLL = 60.0  # the server's own look for a stop; ``stop`` wakes it at once (idle: no wake-ups)

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], re.Match[str]], Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class ApiError(TrayagentError):
    """An error answered to the client with an HTTP status."""

    def __init__(self, status: int, message: str, hint: str = "", field: str | None = None) -> None:
        super().__init__(message, hint, field=field)
        self.status = status


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by the user alone (0600), replacing any older file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


class ControlServer:
    """Routes + token + the HTTP server thread."""

    def __init__(self, runtime_dir: Path, ui_package: str = "trayagent.ui") -> None:
        self.runtime_dir = runtime_dir
        self.token = secrets.token_urlsafe(32)
        self.routes: list[Route] = []
        self.ui_package = ui_package
        self._httpd: ThreadingHTTPServer | None = None
        self._tickets: dict[str, float] = {}  # one-time ticket -> expiry (monotonic)
        self._tickets_lock = threading.Lock()

    def new_ticket(self) -> str:
        """A one-time, short-lived ticket a page trades for the token (``POST /api/ticket``): what a
        dialog opened in a web browser carries in its URL, which travels on the browser's command
        line (visible to other local users); the token itself never does."""
        ticket = secrets.token_hex(16)
        with self._tickets_lock:
            now = time.monotonic()
            self._tickets = {t: exp for t, exp in self._tickets.items() if exp > now}
            self._tickets[ticket] = now + TICKET_SECONDS
        return ticket

    def redeem(self, ticket: str) -> str | None:
        """The token for a valid ticket, once; None otherwise."""
        with self._tickets_lock:
            expiry = self._tickets.pop(ticket, 0.0)
        return self.token if expiry > time.monotonic() else None

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.routes.append(Route(method, re.compile(f"^{path}$"), fn))
            return fn
        return register

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = self

        class _Handler(_RequestHandler):
            control = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(SHUTDOWN_POLL,), name="control-api",
                         daemon=True).start()
        write_private(self.runtime_dir / TOKEN_FILE, self.token)
        write_private(self.runtime_dir / INFO_FILE, json.dumps({"port": self.port, "pid": os.getpid()}))
        log.info("control API on %s (token in %s)", self.base_url, self.runtime_dir / TOKEN_FILE)

    def stop(self) -> None:
        if self._httpd is not None:
            httpd, self._httpd = self._httpd, None
            stopping = threading.Thread(target=httpd.shutdown, daemon=True)
            stopping.start()
            while stopping.is_alive():  # a connection wakes the server, which then sees the stop
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", int(httpd.server_address[1])), timeout=1).close()
                stopping.join(0.05)
            httpd.server_close()
        for name in (INFO_FILE, TOKEN_FILE):
            (self.runtime_dir / name).unlink(missing_ok=True)

    def dispatch(self, method: str, path: str, body: dict[str, Any]) -> Any:
        for route in self.routes:
            if route.method == method and (m := route.pattern.match(path)):
                return route.handler(body, m)
        raise ApiError(HTTPStatus.NOT_FOUND, f"no such API: {method} {path}")

    def ui_file(self, name: str) -> bytes | None:
        if not re.fullmatch(r"[a-z0-9_-]+\.(html|css|js|svg|png)", name):
            return None
        try:
            return resources.files(self.ui_package).joinpath("pages", name).read_bytes()
        except (FileNotFoundError, ModuleNotFoundError, IsADirectoryError):
            return None


class _RequestHandler(BaseHTTPRequestHandler):
    control: ControlServer
    server_version = "trayagent"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_OPTIONS(self) -> None:
        self._send(HTTPStatus.FORBIDDEN, {"error": "cross-origin requests are not accepted"})

    def _handle(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if not self._host_ok():
            return self._send(HTTPStatus.FORBIDDEN, {"error": "wrong Host header"})
        if path.startswith("/ui/"):
            return self._static(path[4:])
        if not self._origin_ok():
            return self._send(HTTPStatus.FORBIDDEN, {"error": "foreign Origin refused"})
        if method == "POST" and path == "/api/ticket":  # the one call without the token: it gives it
            try:
                token = self.control.redeem(str(self._body().get("ticket", "")))
            except ApiError as exc:
                return self._send(exc.status, {"error": exc.message, "hint": exc.hint, "field": exc.field})
            if token is None:
                return self._send(HTTPStatus.UNAUTHORIZED, {"error": "this window's ticket is used or expired",
                                                            "hint": "Open the dialog again from the tray menu."})
            return self._send(HTTPStatus.OK, {"token": token})
        if not self._token_ok():
            return self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong token"})
        try:
            body = self._body() if method == "POST" else {}
            result = self.control.dispatch(method, path, body)
        except ApiError as exc:
            return self._send(exc.status, {"error": exc.message, "hint": exc.hint, "field": exc.field})
        except TrayagentError as exc:
            return self._send(HTTPStatus.BAD_REQUEST, {"error": exc.message, "hint": exc.hint, "field": exc.field})
        except Exception:
            log.exception("control API: %s %s failed", method, path)
            return self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; see the log"})
        self._send(HTTPStatus.OK, result if result is not None else {"ok": True})

    def _own_hosts(self) -> set[str]:
        port = self.control.port
        return {f"127.0.0.1:{port}", f"localhost:{port}"}

    def _host_ok(self) -> bool:
        return self.headers.get("Host", "") in self._own_hosts()

    def _origin_ok(self) -> bool:
        origin = self.headers.get("Origin")
        return origin is None or origin in {f"http://{h}" for h in self._own_hosts()}

    def _token_ok(self) -> bool:
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.control.token}".encode())

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 20:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"request body is not JSON ({exc})") from exc
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
        return body

    def _static(self, name: str) -> None:
        data = self.control.ui_file(name)
        if data is None:
            return self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", mimetypes.guess_type(name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self'; "
                         "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
        self.end_headers()
        self.wfile.write(data)

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)
