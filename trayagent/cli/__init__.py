"""The command line: ``trayagent`` and ``python -m trayagent.cli``."""

from .main import build_parser, run

__all__ = ["build_parser", "run"]
