"""Regenerate docs/screenshots/: the main window during a scan and the review panel with groups.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_screenshots.py PHOTO_FOLDER [--out docs/screenshots]

Uses a throw-away library and settings so a person's own library is untouched.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "screenshots"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="doppel-shots-")
    os.environ["DOPPEL_DATA_DIR"] = os.path.join(tmp, "data")
    os.environ["DOPPEL_CONFIG_DIR"] = os.path.join(tmp, "config")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow, app_icon

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Doppel")
    app.setWindowIcon(app_icon())
    w = MainWindow()
    w.add_folders([args.folder])
    w.show()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shot = {"scan": False}

    def watch():
        # Polled from the window's thread: a slot connected to the scan worker's signal without a
        # receiver runs in the worker's thread, where grabbing a widget is not allowed.
        bar = w.progress_bar
        if not shot["scan"] and w.progress_label.text().startswith("Reading") and bar.maximum() > 0 \
                and bar.value() >= bar.maximum() // 3:
            shot["scan"] = True
            w.grab().save(str(out / "scanning.png"))

    def finished(result):
        def take():
            w.grab().save(str(out / "review.png"))
            print(f"{len(result.groups)} groups; screenshots in {out}")
            app.quit()
        # let the thumbnails arrive first
        QTimer.singleShot(2500, take)

    w.scan_finished.connect(finished)
    poll = QTimer(w)
    poll.timeout.connect(watch)
    poll.start(100)
    w.start_scan()
    app.exec()


if __name__ == "__main__":
    main()
