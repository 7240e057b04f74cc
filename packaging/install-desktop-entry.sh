#!/bin/sh
# Install Doppel's launcher and icon for the current user (freedesktop desktops).
# Usage: install-desktop-entry.sh [PROGRAM]; PROGRAM defaults to the checkout's .venv/bin/doppel
# (packaging/build.sh passes the bundle's dist/Doppel/Doppel).
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
program=${1:-$here/.venv/bin/doppel}
program=$(cd "$(dirname "$program")" && pwd)/$(basename "$program")
data=${XDG_DATA_HOME:-$HOME/.local/share}
mkdir -p "$data/applications" "$data/icons/hicolor/scalable/apps"
cp "$here/resources/doppel.svg" "$data/icons/hicolor/scalable/apps/doppel.svg"
# The Exec key quotes a path with spaces (Desktop Entry Specification, "The Exec key").
sed "s|^Exec=doppel|Exec=\"$program\"|" "$here/resources/doppel.desktop" > "$data/applications/doppel.desktop"
echo "Installed $data/applications/doppel.desktop (starts $program)"
