"""Talking to a running agent: the CLI, dialog processes and second starts all come through here.

The stdlib ``http.client`` rather than requests: the agent listens on loopback only, so proxies,
redirects and TLS never apply, and a CLI run forwarded to the agent does not pay ~60 ms to import
requests before its upload can start. Imported on first request: a run with no agent starts rclone
before it (see storage.rchttp.http_client).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import TrayagentError

# The files a running agent leaves in the runtime folder: its port and pid, and its API token (0600).
INFO_FILE = "agent.json"
TOKEN_FILE = "agent.token"
# The dialogs the agent opens (and `trayagent dialog NAME` runs).
DIALOGS = ("dataset", "activity", "login", "settings")


class AgentError(TrayagentError):
    """The agent answered with an error, or stopped answering."""


def read_token(runtime_dir: Path) -> str:
    return (runtime_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()


class AgentClient:
    def __init__(self, base_url: str, token: str) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._token = token

    @classmethod
    def find(cls, runtime_dir: Path) -> AgentClient | None:
        """The running agent of this user, or None (no agent, or a stale file of a dead one)."""
        try:
            info = json.loads((runtime_dir / INFO_FILE).read_text(encoding="utf-8"))
            token = read_token(runtime_dir)
            client = cls(f"http://127.0.0.1:{int(info['port'])}", token)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        try:
            client.get("/api/ping", timeout=2)
        except AgentError:
            return None
        return client

    def get(self, path: str, timeout: float = 30) -> Any:
        return self._request("GET", path, None, timeout)

    def post(self, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        return self._request("POST", path, json.dumps(body or {}).encode(), timeout)

    def _request(self, method: str, path: str, body: bytes | None, timeout: float) -> Any:
        """One request on its own connection (a few hundred microseconds on loopback): no shared
        state, so dialog threads and the CLI can use one client freely."""
        import http.client

        conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        headers = {"Authorization": f"Bearer {self._token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            status, raw = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise AgentError(f"the agent is not answering ({exc})",
                             "Check that trayagent is running (tray icon), then try again.") from exc
        finally:
            conn.close()
        return self._answer(status, raw)

    @staticmethod
    def _answer(status: int, raw: bytes) -> Any:
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"error": raw[:200].decode("utf-8", "replace")}
        if status != 200:
            error = payload.get("error", status) if isinstance(payload, dict) else status
            hint = payload.get("hint", "") if isinstance(payload, dict) else ""
            raise AgentError(f"the agent refused: {error}", hint)
        return payload
