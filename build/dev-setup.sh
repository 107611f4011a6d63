#!/usr/bin/env bash
# Installs everything the test suite needs on a bare Debian machine (root) or a prepared one.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  xvfb xauth xdotool x11-utils dbus-x11 dbus dunst libnotify-bin trayer gnome-keyring
  gir1.2-webkit2-4.1 gir1.2-ayatanaappindicator3-0.1 gir1.2-gtk-3.0
  libgirepository1.0-dev libcairo2-dev pkg-config chromium fonts-dejavu-core
  libsecret-tools procps desktop-file-utils
  # packaging (issue 21): the Quick start's venv with Debian's Python and GTK bindings, the PyInstaller
  # bundle (strip), the .deb and its check
  python3-venv python3-gi python3-gi-cairo binutils fakeroot lintian
)
bash build/apt-ensure.sh "${APT_PACKAGES[@]}"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[test]"
# The real SciCat backend the SciCat tests start (tests/support/scicat_real.py): built once from ../shared
# (npm + PyPI, about a minute on a bare machine; later runs only check).
if [[ -f ../shared/scicat/start-scicat.sh ]]; then
  bash ../shared/scicat/start-scicat.sh --setup
fi
