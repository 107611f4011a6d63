#!/usr/bin/env bash
# build/deb/build-deb.sh [OUTDIR]: the Debian package of trayagent, built from this repository.
#
# The PyInstaller bundle (build/trayagent.spec, rclone inside) goes to /opt/trayagent, with
# /usr/bin/trayagent linking to it, the desktop entry (drop folders on it) in /usr/share/applications, the
# icons in hicolor, and an example of the site-wide file in /usr/share/doc/trayagent/examples. Autostart
# is left to each user (Settings: "Start trayagent when I log in"). Writes OUTDIR/trayagent_VERSION_ARCH.deb
# (default OUTDIR: dist/ in the repository) and prints its path. Needs python3 with PyInstaller and
# trayagent's dependencies (build/dev-setup.sh), dpkg-deb and fakeroot.
# TRAYAGENT_BUNDLE=FOLDER packages an already built bundle instead of building one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

BUNDLE=${TRAYAGENT_BUNDLE:-}
if [ -z "$BUNDLE" ]; then
  if ! python3 -m PyInstaller "$ROOT/build/trayagent.spec" --noconfirm --distpath "$WORK/dist" \
      --workpath "$WORK/pyinstaller" >"$WORK/pyinstaller.log" 2>&1; then
    tail -30 "$WORK/pyinstaller.log" >&2
    echo "build-deb: PyInstaller failed (log above)" >&2
    exit 1
  fi
  BUNDLE=$WORK/dist/trayagent
fi
[ -x "$BUNDLE/trayagent" ] || { echo "build-deb: no bundle at $BUNDLE" >&2; exit 1; }

VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/trayagent/__init__.py")
REVISION=1
ARCH=$(dpkg --print-architecture)
PKG=$WORK/pkg
DOC=$PKG/usr/share/doc/trayagent

install -d "$PKG/DEBIAN" "$PKG/opt/trayagent" "$PKG/usr/bin" "$PKG/usr/share/applications" \
  "$PKG/usr/share/icons/hicolor/64x64/apps" "$PKG/usr/share/icons/hicolor/256x256/apps" \
  "$DOC/examples" "$PKG/usr/share/lintian/overrides"
cp -a "$BUNDLE/." "$PKG/opt/trayagent/"
ln -s /opt/trayagent/trayagent "$PKG/usr/bin/trayagent"
install -m 644 "$ROOT/build/trayagent.desktop" "$PKG/usr/share/applications/trayagent.desktop"
install -m 644 "$ROOT/trayagent/icons/trayagent.png" "$PKG/usr/share/icons/hicolor/64x64/apps/trayagent.png"
install -m 644 "$ROOT/assets/trayagent-256.png" "$PKG/usr/share/icons/hicolor/256x256/apps/trayagent.png"
install -m 644 "$ROOT/build/deb/site-config.example.toml" "$DOC/examples/site-config.toml"
install -m 644 "$ROOT/build/deb/copyright" "$DOC/copyright"
install -m 644 "$ROOT/build/deb/lintian-overrides" "$PKG/usr/share/lintian/overrides/trayagent"
DATE=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}")
printf 'trayagent (%s-%s) unstable; urgency=medium\n\n  * Built from the repository by build/deb/build-deb.sh.\n\n -- %s  %s\n' \
  "$VERSION" "$REVISION" "trayagent developers <trayagent@example.org>" "$DATE" | gzip -9n > "$DOC/changelog.Debian.gz"

# Modes as Debian expects them: directories and programs 755, everything else 644 (PyInstaller leaves
# its shared libraries executable).
find "$PKG" -type d -exec chmod 755 {} +
find "$PKG/opt/trayagent" -type f -exec chmod 644 {} +
chmod 755 "$PKG/opt/trayagent/trayagent" "$PKG/opt/trayagent/_internal/rclone"

SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION-$REVISION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
  "$ROOT/build/deb/control.in" > "$PKG/DEBIAN/control"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
  | xargs -0 md5sum > DEBIAN/md5sums)
chmod 644 "$PKG/DEBIAN/control" "$PKG/DEBIAN/md5sums"

DEB=$OUT/trayagent_${VERSION}-${REVISION}_${ARCH}.deb
fakeroot dpkg-deb --build -Zgzip -z3 "$PKG" "$DEB" >/dev/null
echo "$DEB"
