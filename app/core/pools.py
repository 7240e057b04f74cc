"""One helper for worker processes: decoding, verification, the groups so far and the window's
thumbnails all run in a ``Pool``.

- Spawned: forking after torch or Qt started threads can deadlock.
- Each worker ignores the terminal's Ctrl-C (the parent decides what a Ctrl-C stops), ends with
  the process that started it, SIGKILL included (lifeline.py), and runs at the CPU priority it
  is given (a higher niceness yields the cores to the window and to the reading).
- Crash isolation: ``imap`` retries the items that were in flight when a worker died one at a
  time, each in a process of its own, so the one item that kills its process is pinned and
  becomes the caller's problem entry; the others succeed.
- Retry: a pool broken by a dead worker is replaced on the next ``submit``, at most
  ``restarts`` times; after that ``submit`` raises BrokenProcessPool, and the caller does the
  work in its own process (a machine that keeps killing workers for memory needs fewer of them).
- Terminate: ``terminate`` stops the workers at once, jobs half done included.
- With 0 workers a Pool runs each job in the calling thread as it is submitted: the synchronous
  pool of small jobs and of the unit tests, with the same code path above it.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator, Optional

log = logging.getLogger(__name__)

# os.nice's lowest priority: the groups-so-far's verification, which the reading waits for only
# when it falls behind
LOWEST = 19


def lower_priority(niceness: int) -> None:
    """This process at ``niceness`` higher (lower priority); as is where that is not possible."""
    try:
        os.nice(niceness)
    except (AttributeError, OSError):  # no os.nice (Windows), or not allowed
        pass


def name_process(name: str) -> None:
    """Show this process as ``name`` in ps/top (Linux: the process's comm, 15 bytes at most), so a
    person, and bench/speed.py's profile, can tell what each of Doppel's processes does."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:  # another OS, or not allowed: the name is only a label
        pass


def single_threaded() -> None:
    """numpy's BLAS (and any OpenMP runtime loaded) at one thread in this worker. A pool has a
    worker per core: a BLAS that also starts a thread per core in each worker puts several threads
    on every core, which wait for each other by spinning (verification's descriptor matching spent
    several times the CPU time per pair so)."""
    import numpy  # noqa: F401  (loaded first: the limit applies to the libraries loaded)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _init(niceness: int, keep_memory: bool, name: str) -> None:
    from app.core.lifeline import exit_with_parent

    if name:
        name_process(name)
    single_threaded()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    if keep_memory:
        from app.core.allocator import keep_freed_memory

        keep_freed_memory()
    if niceness:
        lower_priority(niceness)


def _ran(fn, args) -> Future:
    fut: Future = Future()
    try:
        fut.set_result(fn(*args))
    except BaseException as exc:  # what a worker's exception would be: the caller's result() raises it
        fut.set_exception(exc)
    return fut


class Pool:
    """``workers`` processes, started on the first job; a context manager that shuts them down.

    ``keep_memory``: the workers keep what they free for the next job (allocator.py), right for a
    scan's batches, not for a window that idles. ``restarts``: how many broken pools ``submit``
    replaces before it gives up (None: always; for a window, where each crash is one hostile
    file and the rest must still be shown). ``name``: what the workers are called in ps/top.
    """

    def __init__(self, workers: int, niceness: int = 0, keep_memory: bool = True, restarts: Optional[int] = 2,
                 name: str = ""):
        self.workers = max(0, workers)
        self.name = name
        self.niceness = niceness
        self.keep_memory = keep_memory
        self.restarts = restarts
        self._ex: Optional[ProcessPoolExecutor] = None

    @property
    def synchronous(self) -> bool:
        return self.workers == 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._ex is None:
            self._ex = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init, initargs=(self.niceness, self.keep_memory, self.name))
        return self._ex

    def start(self) -> "Pool":
        """Start the workers now rather than on the first job (so they are ready when it comes)."""
        if not self.synchronous:
            ex = self._executor()
            for _ in range(self.workers):  # one trivial job each starts them all
                ex.submit(os.getpid)
        return self

    def submit(self, fn: Callable, *args) -> Future:
        """Run ``fn(*args)`` in a worker; the future's result raises BrokenProcessPool if its
        worker died. A pool already broken is replaced first (see ``restarts``)."""
        if self.synchronous:
            return _ran(fn, args)
        while True:
            try:
                return self._executor().submit(fn, *args)
            except BrokenProcessPool:  # a worker died since the last job
                if self.restarts is not None:
                    if self.restarts <= 0:
                        raise
                    self.restarts -= 1
                log.warning("a worker process died; starting fresh workers")
                self._drop(wait=False)

    def imap(self, fn: Callable, items: Iterable, ahead: int, crashed: Callable,
             check: Callable[[], None] = lambda: None) -> Iterator:
        """``fn(item)`` for every item, in order, ``ahead`` of them in flight, overlapped with
        whatever consumes the iterator. The item that kills its worker gives ``crashed(item)``
        instead (see the module's crash isolation). ``check`` runs between results (a cancel)."""
        pending = deque(items)
        if self.synchronous:
            while pending:
                check()
                yield fn(pending.popleft())
            return
        inflight: deque = deque()
        while pending or inflight:
            broken = False
            while pending and len(inflight) < ahead:
                try:
                    fut = self._executor().submit(fn, pending[0])
                except BrokenProcessPool:  # a worker died since the last result
                    broken = True
                    break
                inflight.append((pending.popleft(), fut))
            if not broken:
                item, fut = inflight[0]
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                else:
                    inflight.popleft()
                    yield result
                    check()
                    continue
            self._drop(wait=False)
            log.warning("a worker process died; retrying %d items one by one", len(inflight))
            for item, fut in inflight:
                check()
                ok = fut.done() and not fut.cancelled() and fut.exception() is None
                yield fut.result() if ok else isolated(fn, item, crashed)
            inflight.clear()

    def _drop(self, wait: bool) -> None:
        ex, self._ex = self._ex, None
        if ex is not None:
            ex.shutdown(wait=wait, cancel_futures=True)

    def shutdown(self, wait: bool = True) -> None:
        """The jobs submitted finish (``wait``), the workers end; a later job starts new ones."""
        self._drop(wait)

    def pids(self) -> list[int]:
        """The process ids of the workers running now (none before the first job)."""
        return list(self._workers(self._ex))

    @staticmethod
    def _workers(ex: Optional[ProcessPoolExecutor]) -> dict:
        # The executor's _processes (pid -> Process) are its workers: it offers no public way to
        # name them, nor to stop a running job.
        return dict(getattr(ex, "_processes", None) or {}) if ex is not None else {}

    def terminate(self) -> None:
        """Stop the workers now, in the middle of a job if need be, and wait until they are gone."""
        ex, self._ex = self._ex, None
        if ex is None:
            return
        workers = list(self._workers(ex).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in workers:  # safe: a worker is never stopped halfway through writing a result
            proc.terminate()
        for proc in workers:
            proc.join(5)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *_):
        self.shutdown(wait=True)


def isolated(fn: Callable, item, crashed: Callable):
    """``fn(item)`` alone in a fresh process, so that a crash is pinned on ``item``: ``crashed(item)``."""
    with Pool(1, restarts=0) as pool:
        try:
            return pool.submit(fn, item).result()
        except BrokenProcessPool:
            return crashed(item)
