#!/bin/sh
# Check a built bundle (dist/Doppel, from packaging/build.sh) on its own, away from the checkout:
#  1. doppel-cli scans a generated folder (two photos with copies, one alone) offline, with the
#     bundled fallback model, and its JSON report holds exactly the expected groups;
#  2. the window starts offscreen with that folder, scans it (in its worker process: a frozen
#     app re-running itself), logs the finished scan and stays up until it is asked to quit.
# Everything is written under a temporary HOME; PYTHON (default: the checkout's .venv) only
# makes the test photos and reads the report.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${1:-$root/dist/Doppel}
python=${PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d)
gui_pid=""
cleanup() {
    if [ -n "$gui_pid" ]; then kill "$gui_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

cd "$root"
"$python" - "$work/photos" <<'PY'
import sys
from pathlib import Path
from tests import imagegen as ig
root = Path(sys.argv[1])
a, b = ig.photo(51), ig.photo(52)
ig.save(a, root / "a.jpg")
ig.save(ig.resized(a, 0.5), root / "a_half.jpg")
ig.save(ig.grayscale(a), root / "a_gray.jpg")
ig.save(b, root / "b.jpg")
ig.save(b, root / "b_q50.jpg", quality=50)
ig.save(ig.photo(53), root / "c.jpg")
PY

# The bundle must not lean on this checkout or its venv: a clean environment, another cwd.
run() {
    (cd "$work" && env -i PATH=/usr/bin:/bin HOME="$work/home" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
        DOPPEL_OFFLINE=1 "$@")
}

echo "smoke: command line"
start=$(date +%s)
run "$bundle/doppel-cli" scan --quiet --library "$work/cli/library.db" --json "$work/report.json" "$work/photos" \
    || fail "doppel-cli scan exited $?"
echo "smoke: doppel-cli scanned 6 photos in $(( $(date +%s) - start )) s"
"$python" - "$work/report.json" "$work/photos" <<'PY' || fail "the report's groups are wrong"
import json, sys, os
report = json.load(open(sys.argv[1]))
groups = sorted(sorted(os.path.basename(f["path"]) for f in g["files"]) for g in report["groups"])
want = [["a.jpg", "a_gray.jpg", "a_half.jpg"], ["b.jpg", "b_q50.jpg"]]
print("smoke: groups", groups, "model", report.get("model"))
assert groups == want, groups
keepers = sorted(os.path.basename(g["keeper"]) for g in report["groups"])
assert keepers == ["a.jpg", "b.jpg"], keepers  # the originals, not the smaller or re-saved copies
assert report["stats"]["problems"] == 0 and report["model"] == "efficientnet-lite0-imagenet", report["stats"]
PY

echo "smoke: window"
# platformdirs' user log dir on Linux (app/paths.py log_dir)
log="$work/home/.local/state/doppel/log/doppel.log"
run "$bundle/Doppel" --scan "$work/photos" > "$work/gui.out" 2>&1 &
gui_pid=$!
for _ in $(seq 240); do
    if grep -q "scan finished" "$log" 2>/dev/null; then break; fi
    kill -0 "$gui_pid" 2>/dev/null || { cat "$work/gui.out" >&2; fail "the window exited early"; }
    sleep 0.5
done
grep "scan finished" "$log" || { cat "$work/gui.out" "$log" >&2 2>/dev/null; fail "the window's scan did not finish in 120 s"; }
grep -q "scan finished: 6 files, 2 groups, 0 problems" "$log" || fail "the window's scan found other groups"
sleep 5
kill -0 "$gui_pid" 2>/dev/null || { cat "$work/gui.out" >&2; fail "the window did not stay up"; }
kill -TERM "$gui_pid"
for _ in $(seq 40); do kill -0 "$gui_pid" 2>/dev/null || break; sleep 0.25; done
kill -0 "$gui_pid" 2>/dev/null && fail "the window did not quit on SIGTERM"
wait "$gui_pid" 2>/dev/null || true
gui_pid=""
if grep -E "ERROR|Traceback" "$log"; then fail "the window logged an error"; fi
echo "smoke: PASS ($(du -sh "$bundle" | cut -f1) bundle at $bundle)"
