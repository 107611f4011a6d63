"""trayagent: move beamline data into facility storage and register it in the data catalogue."""

__version__ = "0.1.0"
