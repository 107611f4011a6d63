"""One small exception hierarchy whose messages are written for the person at the beamline.

Every error carries a ``hint``: what to do next, in words that suit every front end. ``field`` names
the input at fault (``dataset``, ``proposal``, ``user``, ``secret``, ``config``): the CLI adds its
option's name, a dialog can point at its field. The CLI and the tray display ``str(error)``;
tracebacks go to the log. ``transient`` tells the queue whether waiting and retrying can help.
"""

from __future__ import annotations


class TrayagentError(Exception):
    """Base of every error trayagent reports to a user."""

    exit_code = 1
    transient = False

    def __init__(self, message: str, hint: str = "", *, field: str | None = None,
                 transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message


class ConfigError(TrayagentError):
    """The configuration file or a command-line option is wrong."""

    exit_code = 2


class ForeignDataset(ConfigError):
    """A queued dataset belongs to another storage or catalogue than this configuration's: it is
    finished where it was defined, never silently moved. ``config`` is the configuration file it was
    defined with (None: the default configuration), so each front end can say how to use it."""

    def __init__(self, message: str, hint: str, config: str | None) -> None:
        super().__init__(message, hint, field="config")
        self.config = config


class AuthError(TrayagentError):
    """Credentials are missing, wrong or expired (storage or catalogue)."""

    exit_code = 2


class StorageLogin(AuthError):
    """The storage needs its password: none is stored for ``user``, or the storage refused it. Each
    front end says how to enter one (the CLI's `login storage`, the Login dialog's storage account)."""

    def __init__(self, message: str, hint: str, user: str) -> None:
        super().__init__(message, hint, field="storage.secret")
        self.user = user


class LoginRequired(AuthError):
    """The catalogue session expired and no stored password can renew it: the user must log in."""


class StorageError(TrayagentError):
    """The storage (through rclone) refused or failed a transfer."""


class StorageFull(StorageError):
    """The storage refused a write for lack of space or quota. Retrying at the usual pace cannot
    help until someone frees space: a batch stops (what is verified stays verified), the agent
    and sync sessions pause that storage and try again slowly."""


class LocalStateError(TrayagentError):
    """trayagent's own state (queue, catalogue, log, rclone's runtime files) cannot be written
    or read: the local disk is full, or a database file is damaged. Nothing was sent wrongly."""

    exit_code = 2


class CatalogueError(TrayagentError):
    """The catalogue refused or failed a request."""


class LocalFileError(TrayagentError):
    """A source file cannot be read, vanished, or changed under us."""
