"""Thumbnails decoded in worker processes and cached by path; larger one-off images (the compare
dialog's) from the same workers, not cached."""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Optional

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.core import pools
from app.gui.scan_process import SCAN_NICENESS
from app.gui.thumbnail_decode import decode_to_file, warm_up

# Processes, not threads: decoding in threads of the window's process (a full-size PNG has no
# reduced-size decode) competed with the window for the interpreter lock as well as for the
# cores, and a 13-copy group shown by a rescan of the dev corpus stalled the window 89-127 ms.
WORKERS = 2


def from_file(width: int, height: int, name: str) -> QImage:
    """The image a worker wrote (decode_to_file), read and removed."""
    if not name:
        return QImage()
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError:  # the folder went with close()
        return QImage()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
    if len(data) != width * height * 3:
        return QImage()
    return QImage(data, width, height, width * 3, QImage.Format.Format_RGB888).copy()


def _finished(cache_ref, path: str, side: int, cached: bool, fut: Future) -> None:
    """In the pool's thread: hand the result to the window's thread through a signal."""
    if fut.cancelled():
        return
    exc = fut.exception()
    width, height, name, taken = fut.result() if exc is None else (0, 0, "", "")
    image = from_file(width, height, name)  # read and removed even when no one wants it now
    cache = cache_ref()
    if cache is None or cache._closed:
        return
    if exc is None:
        cache._signals.done.emit(path, side, image, taken, True, cached)
        return
    # A worker died: the next request starts fresh workers (pools.Pool.submit).
    cache._signals.done.emit(path, side, QImage(), "", False, cached)


class _Signals(QObject):
    # path, side, image, date taken, decoded (else its worker crashed), for the cache (else fetched)
    done = Signal(str, int, QImage, str, bool, bool)


class ThumbnailCache(QObject):
    ready = Signal(str, int)  # path, side: get() has it now
    fetched = Signal(str, int, QImage)  # path, side, image (null if it cannot be shown): see fetch()

    def __init__(self, parent=None, capacity: int = 600):
        super().__init__(parent)
        self._cache: OrderedDict[tuple[str, int], QImage] = OrderedDict()
        self._taken: dict[str, str] = {}
        self._pending: set[tuple[str, int]] = set()
        self._crashes: dict[tuple[str, int], int] = {}  # worker crashes each image was in flight for
        self._capacity = capacity
        self._signals = _Signals(self)  # owned by the cache: never deleted from the pool's thread
        self._signals.done.connect(self._store)
        self._pool: Optional[pools.Pool] = None  # started on the first thumbnail asked for
        self._folder: Optional[str] = None  # where the workers put the pixels they decoded
        self._closed = False

    def get(self, path: str, side: int):
        """The cached image, or None after asking for it (``ready`` fires when it arrives)."""
        key = (path, side)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if key not in self._pending and self._submit(path, side, cached=True):
            self._pending.add(key)
        return None

    def fetch(self, path: str, side: int) -> None:
        """Decode ``path`` to fit side x side in the workers, for ``fetched``; not cached (the
        compare dialog's full-size images would crowd out hundreds of thumbnails)."""
        if not self._submit(path, side, cached=False):
            self.fetched.emit(path, side, QImage())

    def _submit(self, path: str, side: int, cached: bool) -> bool:
        if self._closed:
            return False
        try:
            fut = self.start().submit(decode_to_file, path, side, self._folder)
        except BrokenProcessPool:  # the workers keep dying: shown as unreadable
            return False
        # the pool's thread holds the callback: a weak reference leaves the cache's life to Qt
        fut.add_done_callback(functools.partial(_finished, weakref.ref(self), path, side, cached))
        return True

    def start(self) -> pools.Pool:
        """The worker processes, started now if they are not running (the window calls this
        when a scan starts, so that they are ready when its results are shown)."""
        if self._pool is None:
            if self._folder is None:
                self._folder = tempfile.mkdtemp(prefix="doppel-thumbnails-")
                # also gone when the app exits without close() (a test, a script)
                weakref.finalize(self, shutil.rmtree, self._folder, True)
            # at the scan's lower priority, so the window comes first for the cores
            self._pool = pools.Pool(WORKERS, niceness=SCAN_NICENESS, keep_memory=False, restarts=None,
                                    name="doppel-thumbs")
            for _ in range(WORKERS):  # one job each starts them all
                self._pool.submit(warm_up)
        return self._pool

    def date_taken(self, path: str) -> str:
        return self._taken.get(path, "")

    def _store(self, path, side, img, taken, decoded, cached):
        if not cached:
            self.fetched.emit(path, side, img)
            return
        key = (path, side)
        self._pending.discard(key)
        if not decoded:
            # Its worker died (a decoder crash on this file or on another one in flight beside
            # it): tried once more in fresh workers, then shown as unreadable like a bad file.
            self._crashes[key] = self._crashes.get(key, 0) + 1
            if self._crashes[key] < 2:
                self.get(path, side)
                return
        self._cache[key] = img
        self._taken[path] = taken
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        self.ready.emit(path, side)

    def close(self) -> None:
        """Stop the workers at once (a thumbnail has nothing to save: closing the window does not
        wait for a large decode to finish); thumbnails asked for later are not decoded."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
