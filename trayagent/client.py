"""Talking to a running agent: the CLI, dialog processes and second starts all come through here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TrayagentError

if TYPE_CHECKING:
    import requests


class AgentError(TrayagentError):
    """The agent answered with an error."""


class AgentClient:
    def __init__(self, base_url: str, token: str) -> None:
        import requests  # only when an agent runs: a plain CLI run does not pay for the import

        self.base_url = base_url
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.trust_env = False  # never route loopback through a proxy

    @classmethod
    def find(cls, runtime_dir: Path) -> AgentClient | None:
        """The running agent of this user, or None (no agent, or a stale file of a dead one)."""
        try:
            info = json.loads((runtime_dir / "agent.json").read_text(encoding="utf-8"))
            token = (runtime_dir / "agent.token").read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            return None
        import requests

        client = cls(f"http://127.0.0.1:{int(info['port'])}", token)
        try:
            client.get("/api/ping", timeout=2)
        except (requests.RequestException, AgentError):
            return None
        return client

    def get(self, path: str, timeout: float = 30) -> Any:
        return self._answer(self._session.get(self.base_url + path, timeout=timeout))

    def post(self, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        return self._answer(self._session.post(self.base_url + path, json=body or {}, timeout=timeout))

    @staticmethod
    def _answer(resp: requests.Response) -> Any:
        try:
            payload = resp.json()
        except ValueError:
            payload = {"error": resp.text[:200]}
        if resp.status_code != 200:
            raise AgentError(f"the agent refused: {payload.get('error', resp.status_code)}",
                             payload.get("hint", ""))
        return payload
