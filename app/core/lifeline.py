"""Worker processes end with the process that started them, however it ended (SIGKILL included).

A killed parent cannot tell its workers to stop, and a worker waiting for its next task would
wait for ever: the decoders and verifiers of a scan killed with ``kill -9`` stayed alive
indefinitely. Each worker watches its parent instead: when the parent is gone the worker is
re-parented (``os.getppid()`` changes) and exits. A thread that polls is used rather than
Linux's PR_SET_PDEATHSIG, which fires when the *thread* that started the worker ends, not the
process, and pools start workers from whichever thread submits.
"""
from __future__ import annotations

import os
import threading
import time

# How often a worker looks for its parent (s): a killed scan's workers are gone within this.
POLL = 0.5


def exit_with_parent(poll: float = POLL) -> None:
    """Start watching: this process exits (``os._exit``, no clean-up: its parent, who would
    want the results, is gone) once the process that started it is no longer its parent. That
    process is the one multiprocessing names, not ``os.getppid()`` now: a worker still starting
    up when its parent was killed is already someone else's child here."""
    import multiprocessing

    started_by = multiprocessing.parent_process()
    parent = started_by.pid if started_by is not None else os.getppid()

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(poll)

    threading.Thread(target=watch, name="doppel-lifeline", daemon=True).start()
