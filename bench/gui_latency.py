"""How long the window's event loop is blocked while a scan runs.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_latency.py FOLDER [--library DIR]

Opens the real main window, starts a scan of FOLDER (a fresh library in a temp dir unless
--library), and lets a 10 ms QTimer record when it actually fires. The longest gap between two
ticks is the longest time the window could not react to a click. Prints the longest gaps, the
99th percentile and how many gaps exceeded 100 ms, for the scan (while groups-so-far updates
arrive every few seconds) and for the moment the results are shown.
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
    args = ap.parse_args()
    os.environ.setdefault("DOPPEL_OFFLINE", "1")
    tmp = tempfile.mkdtemp(prefix="doppel-gui-latency-")
    os.environ.setdefault("DOPPEL_CONFIG_DIR", os.path.join(tmp, "config"))
    os.environ.setdefault("DOPPEL_DATA_DIR", os.path.join(tmp, "data"))
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

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
    timer.start()
    marks["start"] = time.perf_counter()
    win.start_scan()
    app.exec()
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
    for name, g in (("during the scan", during), ("after it (results shown)", after)):
        if not g:
            continue
        g = sorted(g)
        print(f"{name}: {len(g)} ticks, longest gaps {', '.join(f'{x:.0f}' for x in g[-5:][::-1])} ms, "
              f"99th percentile {g[int(0.99 * (len(g) - 1))]:.0f} ms, over 100 ms: {sum(x > 100 for x in g)}")


if __name__ == "__main__":
    main()
