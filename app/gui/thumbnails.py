"""Thumbnails decoded off the GUI thread (QThreadPool) and cached by path."""
from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from app.core.decode import _to_rgb
from app.gui.scan_process import SCAN_NICENESS


def load_thumbnail(path: str, side: int) -> tuple[QImage, str]:
    """A QImage no larger than side x side, EXIF orientation applied; and the date taken."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        exif = im.getexif()
        taken = ""
        try:
            taken = exif.get_ifd(0x8769).get(0x9003, "") or exif.get(0x0132, "")
        except Exception:
            pass
        im.draft("RGB", (side, side))
        im = ImageOps.exif_transpose(im) or im
        im = _to_rgb(im)
        im.thumbnail((side, side))
        data = im.tobytes("raw", "RGB")
        qimg = QImage(data, im.width, im.height, im.width * 3, QImage.Format.Format_RGB888).copy()
    return qimg, str(taken)


def _yield_to_the_window() -> None:
    """Decode at the scan's lower CPU priority, so the window comes first for the cores.

    A full-size PNG has no reduced-size decoding; two threads decoding them took the cores from
    the window while it laid out a new group's cards. Linux keeps a nice value per thread; other
    systems run the threads as they are.
    """
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SCAN_NICENESS)
        except OSError:
            pass


class _Signals(QObject):
    done = Signal(str, int, QImage, str)


class _Job(QRunnable):
    def __init__(self, path: str, side: int, signals: _Signals):
        super().__init__()
        self.path, self.side, self.signals = path, side, signals

    def run(self):
        _yield_to_the_window()
        try:
            img, taken = load_thumbnail(self.path, self.side)
        except Exception:
            img, taken = QImage(), ""
        self.signals.done.emit(self.path, self.side, img, taken)


class ThumbnailCache(QObject):
    ready = Signal(str, int)  # path, side

    def __init__(self, parent=None, capacity: int = 600):
        super().__init__(parent)
        self._cache: OrderedDict[tuple[str, int], QImage] = OrderedDict()
        self._taken: dict[str, str] = {}
        self._pending: set[tuple[str, int]] = set()
        self._capacity = capacity
        self._signals = _Signals()
        self._signals.done.connect(self._store)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)

    def get(self, path: str, side: int):
        """The cached image, or None after asking for it (``ready`` fires when it arrives)."""
        key = (path, side)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if key not in self._pending:
            self._pending.add(key)
            self.pool.start(_Job(path, side, self._signals))
        return None

    def date_taken(self, path: str) -> str:
        return self._taken.get(path, "")

    def _store(self, path, side, img, taken):
        self._pending.discard((path, side))
        self._cache[(path, side)] = img
        self._taken[path] = taken
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        self.ready.emit(path, side)

    def wait(self):
        self.pool.waitForDone()
