"""The frozen program's entry point (named apart from the package it imports): the `trayagent` console script."""

from trayagent.cli.main import run

if __name__ == "__main__":
    run()
