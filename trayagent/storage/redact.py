"""Secrets out of log lines and messages: every secret trayagent learns is masked before it is written."""

from __future__ import annotations

import threading


class Redactor:
    """Masks secrets in text before it reaches a log."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        with self._lock:
            for s in sorted(self._secrets, key=len, reverse=True):
                text = text.replace(s, "***")
        return text
