#!/bin/sh
# Install Doppel's launcher and icon for the current user (freedesktop desktops).
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
mkdir -p "$data/applications" "$data/icons/hicolor/scalable/apps"
cp "$here/resources/doppel.svg" "$data/icons/hicolor/scalable/apps/doppel.svg"
sed "s|^Exec=doppel|Exec=$here/.venv/bin/doppel|" "$here/resources/doppel.desktop" > "$data/applications/doppel.desktop"
echo "Installed $data/applications/doppel.desktop"
