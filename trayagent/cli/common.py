"""What the command modules share: exit codes, the end of start-up, Ctrl-C for SIGTERM, the running agent."""

from __future__ import annotations

import gc
import signal
from types import FrameType

from ..agent.client import AgentClient
from ..errors import ForeignDataset, StorageLogin, TrayagentError
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


# The options that give what an error's ``field`` names: the core words its hints for every front end.
_OPTIONS = {"dataset": "--dataset NAME", "proposal": "--proposal", "user": "--user NAME",
            "secret": "--password-stdin, --token-stdin or --browser", "config": "--config",
            "metadata": "--metadata KEY=VALUE or --metadata-file"}


def in_cli_words(exc: TrayagentError) -> str:
    """The error as the CLI shows it: the core's message and hint, and the option to use."""
    if isinstance(exc, StorageLogin):  # the command that stores it, for that user
        return (f"{exc.message}\n  -> {exc.hint.rstrip('.')}: "
                f"run `trayagent login storage --user {exc.user or 'NAME'} --password-stdin`.")
    if isinstance(exc, ForeignDataset):  # the command that finishes it, with its own file
        how = (f"`trayagent resume --config {exc.config}`" if exc.config
               else "`trayagent resume` without --config (and without TRAYAGENT_CONFIG)")
        return f"{exc.message}\n  -> Finish it with {how}."
    option = _OPTIONS.get((exc.field or "").partition(".")[0])
    if option is None:
        return str(exc)
    hint = f"{exc.hint.rstrip('.')} ({option})." if exc.hint else f"See {option}."
    return f"{exc.message}\n  -> {hint}"
