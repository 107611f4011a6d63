"""rclone's rc API over loopback HTTP: kept-alive connections, http.client imported on the first call."""

from __future__ import annotations

import base64
import select
import threading
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import http.client


def http_client() -> ModuleType:
    """``http.client``, imported on first use: its ~10 ms (ssl, email) then fall in the time a CLI
    run waits for rclone to start instead of before rclone is launched."""
    import http.client

    return http.client



class LoopbackHttp:
    """POSTs (JSON, or a multipart upload) to rclone's loopback rc server over kept-alive
    connections, one per thread (``http.client`` connections are not thread-safe). The stdlib
    keeps a CLI run from paying ~60 ms to import requests, and the rc server never needs
    proxies, cookies or redirects."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _connection(self, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and ((conn.host, conn.port) != (host, port) or _dropped(conn)):
            conn.close()
            conn = None
        if conn is None:
            conn = http_client().HTTPConnection(host, port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def post(self, url: str, body: bytes, content_type: str, auth: tuple[str, str],
             timeout: float) -> tuple[int, bytes]:
        parts = urlsplit(url)
        conn = self._connection(parts.hostname or "127.0.0.1", parts.port or 80, timeout)
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("POST", target, body=body,
                         headers={"Content-Type": content_type, "Authorization": f"Basic {token}"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http_client().HTTPException) as exc:
            conn.close()
            raise ConnectionError(f"rc request failed: {exc}") from exc



def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that is readable was closed by the server (e.g. rclone restarted)."""
    if conn.sock is None:
        return False
    try:
        return bool(select.select([conn.sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True
