#!/usr/bin/env bash
# Installs trayagent for a desktop user on Debian/Ubuntu: the GTK pieces the tray menu and the dialogs
# need (as root: apt), then the package with its GTK extra. Idempotent. Afterwards: `trayagent`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  gir1.2-gtk-3.0 gir1.2-webkit2-4.1 gir1.2-ayatanaappindicator3-0.1
  libgirepository1.0-dev libcairo2-dev pkg-config libnotify-bin gnome-keyring
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install: please install these Debian packages first (sudo apt-get install ...): ${missing[*]}" >&2
    exit 1
  fi
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore ".[gtk]"
echo "installed: run 'trayagent' to start the agent (tray icon), or 'trayagent --help'"
