"""Progress/cancel contract shared by every long stage.

A stage takes a ``Progress`` and calls ``start(total, stage)`` then ``advance(n, current)``;
``advance`` raises ``Cancelled`` once ``cancel()`` was called from any thread, so a stage stops at
the next file boundary. Listeners are called at most ``max_rate`` times a second (plus the first
and last update of a stage) so a front end is never flooded.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional


class Cancelled(Exception):
    """Raised inside a stage when the user asked to stop."""


@dataclass(frozen=True)
class ProgressUpdate:
    stage: str
    done: int
    total: int
    current: str
    rate: float  # items per second since the stage started
    eta: Optional[float]  # seconds, None when unknown
    message: str = ""


Listener = Callable[[ProgressUpdate], None]


def format_eta(seconds: Optional[float]) -> str:
    """'m:ss' (or 'h:mm:ss'); '–' when unknown."""
    if seconds is None:
        return "–"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    def __init__(self, listener: Optional[Listener] = None, max_rate: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self._listener = listener
        self._min_interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self._clock = clock
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.stage = ""
        self.total = 0
        self.done = 0
        self.current = ""
        self._started = clock()
        self._last_emit = float("-inf")

    # -- cancel ---------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    # -- reporting ------------------------------------------------------------
    def start(self, total: int, stage: str, message: str = "") -> None:
        with self._lock:
            self.stage, self.total, self.done, self.current = stage, max(0, total), 0, ""
            self._started = self._clock()
            self._last_emit = float("-inf")
        self._emit(force=True, message=message)
        self.check()

    def advance(self, n: int = 1, current: str = "") -> None:
        with self._lock:
            self.done += n
            if current:
                self.current = current
        self._emit(force=self.done >= self.total)
        self.check()

    def note(self, message: str) -> None:
        """A one-off status line (e.g. 'opening library') without changing counts."""
        self._emit(force=True, message=message)

    def snapshot(self, message: str = "") -> ProgressUpdate:
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = self.done / elapsed if self.done else 0.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total >= self.done else None
        return ProgressUpdate(self.stage, self.done, self.total, self.current, rate, eta, message)

    def _emit(self, force: bool = False, message: str = "") -> None:
        if self._listener is None:
            return
        now = self._clock()
        if not force and now - self._last_emit < self._min_interval:
            return
        self._last_emit = now
        self._listener(self.snapshot(message))
