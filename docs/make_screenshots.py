"""Regenerate docs/screenshots/: the main window on a first run (no folders), during a scan, the
review panel (a camera photo beside its edited copies), a RAW + JPEG pair, the grid of a group of
many copies, the copies of a photo from outside the library and the trash confirmation.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_screenshots.py PHOTO_FOLDER [--out docs/screenshots]

PHOTO_FOLDER: any folder of photos (the dev corpus makes a good one); the review examples are
generated into it under doppel-screenshot-examples/ (removed afterwards).

Uses a throw-away library and settings so a person's own library is untouched.
"""
from __future__ import annotations

import argparse
import os
import shutil
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
    examples = Path(args.folder) / "doppel-screenshot-examples"
    make_examples(examples)
    from tests import imagegen as ig

    friend = Path(tmp) / "from a friend.jpg"  # outside the library: Find copies of a photo
    ig.save(ig.resized(ig.photo(61, (1200, 800)), 0.6).rotate(90, expand=True), friend, quality=80)
    w = MainWindow()
    w.show()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app.processEvents()
    w.grab().save(str(out / "first-run.png"))  # no folders yet: what to do next
    w.add_folders([args.folder])
    shot = {"scan": False}

    def watch():
        # Polled from the window's thread: a slot connected to the scan worker's signal without a
        # receiver runs in the worker's thread, where grabbing a widget is not allowed.
        bar = w.progress.bar
        if not shot["scan"] and w.progress.label.text().startswith("Reading") and bar.maximum() > 0 \
                and bar.value() >= bar.maximum() // 3:
            shot["scan"] = True
            w.grab().save(str(out / "scanning.png"))

    def select(name: str) -> None:
        for i in range(w.model.rowCount()):
            if any(m.row.path.endswith(name) for m in w.model.group(i).members):
                w.groups.setCurrentIndex(w.model.index(i))
                w.groups.scrollTo(w.model.index(i))
                return

    def finished(result):
        def take():
            select("IMG_0001.jpg")
            QTimer.singleShot(1500, review)

        def review():
            w.grab().save(str(out / "review.png"))
            select("DSC_0002.dng")
            QTimer.singleShot(1500, raw_pair)

        def raw_pair():
            w.grab().save(str(out / "raw-jpeg.png"))
            select("IMG_0003.jpg")
            QTimer.singleShot(2500, grid)

        def grid():
            w.grab().save(str(out / "grid.png"))
            w.found.connect(lambda _: QTimer.singleShot(2500, found))
            w.find_copies(str(friend))

        def found():
            w.find_dialog.grab().save(str(out / "find.png"))
            w.find_dialog.close()
            from PySide6.QtWidgets import QMessageBox

            from app.gui.review_panel import kind_counts
            chosen = w.model.to_trash()
            box = QMessageBox(QMessageBox.Icon.Question, "Doppel",
                              f"Move {len(chosen)} files to the trash?\n\n" + "\n".join(kind_counts(chosen)),
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, w)
            box.show()
            QTimer.singleShot(500, lambda: confirm(box))

        def confirm(box):
            box.grab().save(str(out / "trash-confirmation.png"))
            box.close()
            print(f"{len(result.groups)} groups; screenshots in {out}")
            shutil.rmtree(examples, ignore_errors=True)
            app.quit()
        # let the thumbnails arrive first
        QTimer.singleShot(2500, take)

    w.scan_finished.connect(finished)
    poll = QTimer(w)
    poll.timeout.connect(watch)
    poll.start(100)
    w.start_scan()
    app.exec()


def make_examples(root: Path) -> None:
    """A camera JPEG with larger grayscale, watermarked and mirrored copies and a smaller export;
    a RAW (a real DNG) beside the camera's JPEG of the same shot."""
    from tests import imagegen as ig

    a = ig.photo(61, (1200, 800))
    ig.save(a, root / "DCIM" / "IMG_0001.jpg", quality=85, exif=ig.camera_exif())
    ig.save(ig.grayscale(a), root / "Edited" / "IMG_0001 gray.jpg", quality=98)
    ig.save(ig.watermarked(a), root / "Web" / "IMG_0001 sample.jpg", quality=98)
    ig.save(a.transpose(0), root / "Edited" / "IMG_0001 mirror.jpg", quality=98)
    ig.save(ig.resized(a, 0.5), root / "Export" / "IMG_0001 small.jpg", quality=90)
    ig.save(ig.crop_fraction(a, 0.7), root / "Edited" / "IMG_0001 crop.jpg", quality=95)
    b = ig.photo(65, (1200, 800))
    ig.dng(b, root / "DCIM" / "DSC_0002.dng", preview_side=160)
    ig.save(b, root / "DCIM" / "DSC_0002.jpg", quality=95, exif=ig.camera_exif("NIKON CORPORATION", "NIKON D7500"))
    c = ig.photo(67, (1200, 800))  # a photo shared many times: the grid
    ig.save(c, root / "DCIM" / "IMG_0003.jpg", quality=90, exif=ig.camera_exif())
    for n in range(13):
        ig.save(ig.resized(c, 0.9 - 0.05 * n), root / "Shared" / f"IMG_0003 ({n + 1}).jpg", quality=70 + 2 * n)


if __name__ == "__main__":
    main()
