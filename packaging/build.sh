#!/bin/sh
# Build the one-folder app dist/Doppel/ with PyInstaller (packaging/doppel.spec) and install a
# per-user desktop entry and icon that start it. PYTHON names the environment to build from
# (default: the checkout's .venv); a release build uses one with CPU-only torch
# (docs/packaging.md). Set DOPPEL_NO_DESKTOP_ENTRY=1 to build only.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
cd "$root"
"$python" -m PyInstaller --version >/dev/null 2>&1 || "$python" -m pip install -q "pyinstaller>=6.3"
start=$(date +%s)
DOPPEL_ROOT=$root "$python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$root/dist" --workpath "$root/build/pyinstaller" "$root/packaging/doppel.spec"
end=$(date +%s)
echo "Built $root/dist/Doppel in $((end - start)) s: $(du -sh "$root/dist/Doppel" | cut -f1)"
if [ "${DOPPEL_NO_DESKTOP_ENTRY:-0}" != 1 ]; then
    "$root/packaging/install-desktop-entry.sh" "$root/dist/Doppel/Doppel"
fi
