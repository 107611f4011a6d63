"""``python -m trayagent.cli``: how autostart, desktop entries and dialogs start trayagent."""

from . import run

run()
