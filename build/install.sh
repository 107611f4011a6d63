#!/usr/bin/env bash
# Installs trayagent from this repository into a virtual environment of its own, with a `trayagent`
# command on PATH. Works with the distribution's own Python (Debian 12, Ubuntu 24.04: PEP 668 forbids
# `pip install` into it, so nothing is installed there). Idempotent: run it again to update.
#
#   as a user: ~/.local/share/trayagent/venv, command in ~/.local/bin
#   as root:   /usr/local/lib/trayagent/venv, command in /usr/local/bin (every user of the computer)
#
# As root it first installs the Debian packages the tray menu and the dialogs need (GTK, WebKit,
# AppIndicator, python3-gi, python3-venv); as a user it names the missing ones and stops.
# Options by environment: PYTHON (default /usr/bin/python3 where it exists), TRAYAGENT_VENV (the
# environment's folder), TRAYAGENT_BIN_DIR (where the `trayagent` link goes).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  VENV=${TRAYAGENT_VENV:-/usr/local/lib/trayagent/venv}
  BIN_DIR=${TRAYAGENT_BIN_DIR:-/usr/local/bin}
else
  VENV=${TRAYAGENT_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/trayagent/venv}
  BIN_DIR=${TRAYAGENT_BIN_DIR:-$HOME/.local/bin}
fi
if [ -z "${PYTHON:-}" ]; then
  if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=$(command -v python3); fi
fi

if command -v dpkg-query >/dev/null; then
  # python3-gi from Debian: the venv sees it (--system-site-packages), so nothing is compiled.
  APT_PACKAGES=(
    python3-venv python3-gi python3-gi-cairo gir1.2-gtk-3.0 gir1.2-webkit2-4.1
    gir1.2-ayatanaappindicator3-0.1 libnotify-bin gnome-keyring
  )
  bash build/apt-ensure.sh "${APT_PACKAGES[@]}"
fi

"$PYTHON" -m venv --system-site-packages "$VENV"
extra=""
# A Python that is not the system's cannot see python3-gi: build PyGObject from source instead.
"$VENV/bin/python" -c "import gi" 2>/dev/null || extra="[gtk]"
# Built from a copy: setuptools builds in the project folder, and its build/lib and build/bdist.* would
# land among the repository's packaging scripts in build/.
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
cp -r pyproject.toml README.md trayagent "$SRC/"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-warn-script-location "$SRC$extra"
mkdir -p "$BIN_DIR"
ln -sfn "$VENV/bin/trayagent" "$BIN_DIR/trayagent"
"$BIN_DIR/trayagent" --version >/dev/null
echo "installed $("$BIN_DIR/trayagent" --version) in $VENV; the command: $BIN_DIR/trayagent"
case ":$PATH:" in
  *":$BIN_DIR:"*) echo "run 'trayagent' to start the agent (tray icon), or 'trayagent --help'" ;;
  *) echo "add $BIN_DIR to PATH (or log in again: Debian's ~/.profile adds ~/.local/bin when it exists)" ;;
esac
