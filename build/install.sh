#!/usr/bin/env bash
# Installs trayagent for a desktop user on Debian/Ubuntu: the GTK pieces the tray menu and the dialogs
# need (as root: apt), then the package with its GTK extra. Idempotent. Afterwards: `trayagent`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  gir1.2-gtk-3.0 gir1.2-webkit2-4.1 gir1.2-ayatanaappindicator3-0.1
  libgirepository1.0-dev libcairo2-dev pkg-config libnotify-bin gnome-keyring
)
bash build/apt-ensure.sh "${APT_PACKAGES[@]}"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore ".[gtk]"
echo "installed: run 'trayagent' to start the agent (tray icon), or 'trayagent --help'"
