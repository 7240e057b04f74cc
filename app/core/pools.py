"""One way to start worker processes, for decoding, verification, the groups so far and the
window's thumbnails.

Every pool is spawned (forking after torch or Qt started threads can deadlock), and each of its
workers ignores the terminal's Ctrl-C (the parent decides what a Ctrl-C stops), ends with the
process that started it, SIGKILL included (lifeline.py), and runs at the CPU priority it is given
(a higher niceness yields the cores to the window and to the reading). What a crashed worker
means differs by use (a file to report, a chunk to verify in-process), so the caller handles the
BrokenProcessPool it gets.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor

# os.nice's lowest priority: the groups-so-far's verification, which the reading waits for only
# when it falls behind
LOWEST = 19


def lower_priority(niceness: int) -> None:
    """This process at ``niceness`` higher (lower priority); as is where that is not possible."""
    try:
        os.nice(niceness)
    except (AttributeError, OSError):  # no os.nice (Windows), or not allowed
        pass


def _init(niceness: int, keep_memory: bool) -> None:
    from app.core.lifeline import exit_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    if keep_memory:
        from app.core.allocator import keep_freed_memory

        keep_freed_memory()
    if niceness:
        lower_priority(niceness)


def start(workers: int, niceness: int = 0, keep_memory: bool = True) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes. ``keep_memory``: the workers keep what they free for the
    next task (allocator.py), right for a scan's batches, not for a window that idles."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                               initargs=(niceness, keep_memory))
