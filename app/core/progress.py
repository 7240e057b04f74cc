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
    left: Optional[float] = None  # seconds left for the whole job (this stage and those after), None when unknown


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
        self.ahead: Optional[float] = None  # seconds the stages after this one are expected to take
        self.took: dict[str, float] = {}  # seconds each finished stage took
        # (stage, start, end) of each finished stage in time.time(): when a profile (bench/speed.py)
        # or a report wants to know where a job's time went
        self.timeline: list[tuple[str, float, float]] = []
        self._wall_started = time.time()
        self.plan: Optional["ScanPlan"] = None  # tells ``ahead`` for a scan's stages

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
    def start(self, total: int, stage: str, message: str = "", ahead: Optional[float] = None) -> None:
        """A new stage of ``total`` items (0: not counted); ``ahead``: the seconds the stages after
        it are expected to take (ScanPlan), for the time left of the whole job."""
        with self._lock:
            now = self._clock()
            self._close_stage(now)
            self.stage, self.total, self.done, self.current = stage, max(0, total), 0, ""
            if ahead is None and self.plan is not None and stage in SCAN_STAGES:
                ahead = self.plan.ahead(stage)
            self.ahead = ahead
            self._started, self._wall_started = now, time.time()
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
        if self.total and self.done >= self.total:
            eta = 0.0
        left = None
        if self.ahead is not None:
            if eta is None and self.plan is not None and self.stage in SCAN_STAGES:
                left = self.ahead + self.plan.cost(self.stage)  # no rate yet: the plan's guess for this stage
            else:
                left = self.ahead + (eta or 0.0)
        return ProgressUpdate(self.stage, self.done, self.total, self.current, rate, eta, message, left)

    def finish(self) -> None:
        """The job is over: the last stage's time goes into ``took`` (a cancel is not raised)."""
        with self._lock:
            self._close_stage(self._clock())
            self.stage, self.total, self.done, self.ahead = "", 0, 0, None

    def _close_stage(self, now: float) -> None:
        if self.stage:
            self.took[self.stage] = self.took.get(self.stage, 0.0) + now - self._started
            self.timeline.append((self.stage, self._wall_started, time.time()))


    def _emit(self, force: bool = False, message: str = "") -> None:
        if self._listener is None:
            return
        now = self._clock()
        if not force and now - self._last_emit < self._min_interval:
            return
        self._last_emit = now
        self._listener(self.snapshot(message))


# Seconds a stage costs: per photo read in this scan (reading, searching its neighbours, checking
# its candidate pairs) or per photo in the scanned folders (linking, choosing keepers). Only a
# guess for a library's first scan; after that, what its last scan measured on this machine.
FIRST_GUESS = {"embed": 0.05, "search": 0.002, "verify": 0.01, "group": 0.001, "keeper": 0.015}
PER_READ = ("embed", "search", "verify")
SCAN_STAGES = ("walk", "diff", "embed", "search", "verify", "group", "keeper")


@dataclass
class ScanPlan:
    """The time left for a whole scan: the stage under way at its own rate, the stages after it at
    their cost per photo."""
    costs: dict
    read: int = 0  # photos to read in this scan
    photos: int = 0  # photos in the scanned folders

    def cost(self, stage: str) -> float:
        """The seconds ``stage`` is expected to take in this scan."""
        if stage not in FIRST_GUESS:
            return 0.0
        return self.costs.get(stage, FIRST_GUESS[stage]) * (self.read if stage in PER_READ else self.photos)

    def ahead(self, stage: str) -> float:
        """The seconds the stages after ``stage`` are expected to take."""
        return sum(self.cost(s) for s in SCAN_STAGES[SCAN_STAGES.index(stage) + 1:])

    def measured(self, took: dict[str, float]) -> dict:
        """Costs per photo from a finished scan's stage times (``Progress.took``); stages it did
        not run (nothing to read) keep the costs known before."""
        out = dict(self.costs)
        for s in FIRST_GUESS:
            n = self.read if s in PER_READ else self.photos
            if s in took and n >= 20:  # too few photos for a rate: start-up costs dominate
                out[s] = took[s] / n
        return out
