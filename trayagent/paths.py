"""Where trayagent keeps its state: platformdirs by default, everything under TRAYAGENT_HOME if set.

TRAYAGENT_HOME exists so that several isolated agents (tests, two facilities) can run side by side.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "trayagent"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    log_dir: Path
    runtime_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def queue_db(self) -> Path:
        return self.data_dir / "queue.sqlite"

    @property
    def catalogue_db(self) -> Path:
        return self.data_dir / "catalogue.sqlite"

    @property
    def default_storage(self) -> Path:
        return self.data_dir / "storage"

    def ensure(self) -> Paths:
        for d in (self.config_dir, self.data_dir, self.log_dir, self.runtime_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


def resolve_paths(env: dict[str, str] | None = None) -> Paths:
    env = dict(os.environ) if env is None else env
    home = env.get("TRAYAGENT_HOME")
    if home:
        base = Path(home).expanduser().resolve()
        return Paths(base / "config", base / "data", base / "logs", base / "run")
    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR (ssh, cron): platformdirs' /tmp fallback is fine
        warnings.simplefilter("ignore")
        runtime = platformdirs.user_runtime_dir(APP, appauthor=False)
    return Paths(
        Path(platformdirs.user_config_dir(APP, appauthor=False)),
        Path(platformdirs.user_data_dir(APP, appauthor=False)),
        Path(platformdirs.user_log_dir(APP, appauthor=False)),
        Path(runtime),
    )


def site_config_file(env: dict[str, str] | None = None) -> Path:
    """The site-wide file facility IT writes (/etc/xdg/trayagent/config.toml, on Windows
    %PROGRAMDATA%\\trayagent\\config.toml); TRAYAGENT_SITE_CONFIG points elsewhere (tests, trials).
    Not under TRAYAGENT_HOME: the site file is the machine's, shared by every user and agent on it."""
    env = dict(os.environ) if env is None else env
    if given := env.get("TRAYAGENT_SITE_CONFIG"):
        return Path(given).expanduser()
    return Path(platformdirs.site_config_dir(APP, appauthor=False)) / "config.toml"
