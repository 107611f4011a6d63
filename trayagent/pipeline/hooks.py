"""What the engine tells its owner (the CLI, a sync session, the agent): events through hooks, and
why it waits through a status line. The engine, its registrar and its setbacks share one of each,
so the owner sets a hook once, whichever part of the pipeline calls it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..errors import CatalogueError, StorageFull
    from ..queue import Dataset, QueuedFile


def _ignore_failure(dataset: Dataset, f: QueuedFile, reason: str) -> None:
    """Without a hook a failed file is still logged and kept in the queue as failed."""


def _ignore_login() -> None:
    """Without a hook registration waits for a login given elsewhere (``trayagent login``)."""


@dataclass
class Hooks:
    """Set by the owner; the defaults suit a batch run that reports at its end."""

    on_failure: Callable[[Dataset, QueuedFile, str], None] = _ignore_failure
    on_login_needed: Callable[[], None] = _ignore_login
    # a full storage: None stops the run (batch); a callback pauses the storage and tells the user
    on_storage_full: Callable[[StorageFull], None] | None = None
    # a catalogue refusal a person must fix (a 400/403): None stops the run (batch: better stop early
    # than upload uncatalogued); a callback (agent, sync) keeps uploading and tells the user once
    on_catalogue_refused: Callable[[CatalogueError], None] | None = None


@dataclass
class Status:
    """Why the pipeline waits, if it does: one line for status, the tray and the activity dialog,
    written by whichever side waits (storage or catalogue)."""

    waiting: str | None = None
