"""What the command modules share: exit codes, the end of start-up, Ctrl-C for SIGTERM, the running agent."""

from __future__ import annotations

import gc
import signal
from types import FrameType

from ..agent.client import AgentClient
from ..paths import Paths

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # stdout's reader went away, as for a tool ended by SIGPIPE


def startup_over() -> None:
    """Start-up is over: its objects are frozen out of later collections, and collection resumes.
    Only where ``run`` held collection off: ``main`` called from other code leaves its GC alone."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def sigterm_as_interrupt() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def running_agent(paths: Paths) -> AgentClient | None:
    return AgentClient.find(paths.runtime_dir)
