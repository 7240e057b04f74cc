"""How long the window's event loop is blocked while a scan runs.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_latency.py FOLDER [--library DIR] [--stacks]

Opens the real main window, starts a scan of FOLDER (a fresh library in a temp dir unless
--library), and lets a 10 ms QTimer record when it actually fires. The longest gap between two
ticks is the longest time the window could not react to a click. Prints the longest gaps, the
99th percentile and how many gaps exceeded 100 ms, for the scan (while groups-so-far updates
arrive every few seconds) and for the moment the results are shown. ``--stacks`` also says what
held the longest gaps: every thread's Python stack sampled while a gap lasts, and the garbage
collections that ran in it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--library")
    ap.add_argument("--stacks", action="store_true",
                    help="sample every thread's Python stack during gaps over 60 ms and print them")
    args = ap.parse_args()
    os.environ.setdefault("DOPPEL_OFFLINE", "1")
    tmp = tempfile.mkdtemp(prefix="doppel-gui-latency-")
    os.environ.setdefault("DOPPEL_CONFIG_DIR", os.path.join(tmp, "config"))
    os.environ.setdefault("DOPPEL_DATA_DIR", os.path.join(tmp, "data"))
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.lifecycle import keep_garbage_collections_short
    from app.gui.main_window import MainWindow
    from app.settings import Settings

    app = QApplication.instance() or QApplication([])
    settings = Settings(library=args.library or os.path.join(tmp, "library.db"))
    partial_at: list[float] = []

    class TimedWindow(MainWindow):
        # A method defined in the class body, like the window's own: the worker's signal is then
        # queued to the window's thread. A function patched onto the window or its class later
        # was called directly in the worker thread (and built widgets there).
        def _on_partial(self, groups):
            t = time.perf_counter()
            super()._on_partial(groups)
            partial_at.append((t, time.perf_counter() - t))

    win = TimedWindow(settings, Path(tmp) / "settings.json")
    win.resize(1200, 800)
    win.show()
    keep_garbage_collections_short()  # as app/__main__.py does
    win.add_folders([os.path.abspath(args.folder)])
    ticks: list[float] = []
    marks = {}
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def finished(_result):
        marks["finished"] = time.perf_counter()
        QTimer.singleShot(2000, app.quit)  # keep measuring while the results are shown

    win.scan_finished.connect(finished)
    samples: dict[float, list[str]] = {}  # gap start (last tick) -> stacks seen during it
    if args.stacks:
        import threading
        import traceback

        main_id = threading.main_thread().ident

        def sample():
            while "done" not in marks:
                time.sleep(0.005)
                if ticks and time.perf_counter() - ticks[-1] > 0.06:
                    # every thread but this one: a thread that holds the GIL in a long C call
                    # keeps the timer's Python callback from running as surely as the window does
                    for ident, frame in sys._current_frames().items():
                        if ident == threading.get_ident():
                            continue
                        stack = traceback.extract_stack(frame)[-4:]
                        who = "window" if ident == main_id else "thread"
                        samples.setdefault(ticks[-1], []).append(
                            who + ": " + " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack[::-1]))

        threading.Thread(target=sample, daemon=True).start()
        import gc

        collections: list[tuple[float, float, int]] = []  # (start, ms, generation)
        gc_start = {}

        def on_gc(phase, info):
            if phase == "start":
                gc_start["t"] = time.perf_counter()
            else:
                t = gc_start.get("t", time.perf_counter())
                collections.append((t, (time.perf_counter() - t) * 1000, info["generation"]))

        gc.callbacks.append(on_gc)
    timer.start()
    marks["start"] = time.perf_counter()
    win.start_scan()
    app.exec()
    marks["done"] = time.perf_counter()
    gaps = sorted(((b - a) * 1000, a) for a, b in zip(ticks, ticks[1:]))
    during = [g for g, t in gaps if t < marks.get("finished", float("inf"))]
    after = [g for g, t in gaps if t >= marks.get("finished", float("inf"))]
    res = win.result
    t0 = marks["start"]
    worst = sorted(((b - a) * 1000, a) for a, b in zip(ticks, ticks[1:]))[-5:]
    print("longest gaps at (s after start):", ", ".join(f"{g:.0f} ms @ {a - t0:.1f}" for g, a in worst[::-1]))
    print("groups-so-far updates at (s, ms spent in the window):", ", ".join(f"{t - t0:.1f} ({d * 1000:.0f})" for t, d in partial_at))
    print(f"scan of {res.stats.files} files, {res.stats.embedded} read, {len(res.groups)} groups, "
          f"{win.partial_updates} groups-so-far updates, {marks['finished'] - marks['start']:.1f} s")
    if args.stacks:
        from collections import Counter

        for g, a in worst[::-1]:
            if g > 60:
                seen = Counter(samples.get(a, []))
                print(f"gap of {g:.0f} ms @ {a - t0:.1f} s, {sum(seen.values())} thread stacks sampled:")
                for stack, n in seen.most_common(8):
                    print(f"  {n} x {stack}")
                for t, ms, gen in collections:
                    if a <= t <= a + g / 1000:
                        print(f"  garbage collection of generation {gen} in it: {ms:.0f} ms")
        slow = [c for c in collections if c[1] > 10]
        print(f"{len(collections)} garbage collections, {len(slow)} over 10 ms:",
              ", ".join(f"gen {gen} {ms:.0f} ms @ {t - t0:.1f}" for t, ms, gen in slow[:12]))
    for name, g in (("during the scan", during), ("after it (results shown)", after)):
        if not g:
            continue
        g = sorted(g)
        print(f"{name}: {len(g)} ticks, longest gaps {', '.join(f'{x:.0f}' for x in g[-5:][::-1])} ms, "
              f"99th percentile {g[int(0.99 * (len(g) - 1))]:.0f} ms, over 100 ms: {sum(x > 100 for x in g)}")


if __name__ == "__main__":
    main()
