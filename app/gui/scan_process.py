"""The processes behind the window's Scan and Find (no Qt here: the children never load it)."""
from __future__ import annotations

import logging
import os
import traceback

from app import paths
from app.core.progress import Progress
from app.settings import Settings

log = logging.getLogger(__name__)

SCAN_NICENESS = 5


def _yield_to_the_window() -> None:
    """Run the scan (and the workers it starts, which inherit this) at a lower CPU priority.

    The scan keeps every core busy; at equal priority the window waited for a time slice behind
    three busy processes on two cores, and a groups-so-far update of 60 ms in the window took
    up to 140 ms of wall time. An idle window leaves the scan all the CPU it had.
    """
    from app.core.pools import lower_priority

    lower_priority(SCAN_NICENESS)


def run_scan(folders: list[str], settings: Settings, partial_every: float, messages, cancel_event,
             log_to_file: bool = False) -> None:
    """The scan, in a process of its own: it shares no interpreter lock with the window.

    Measured with bench/gui_latency.py: run in a thread of the window's process, imports and
    library reads that hold the lock in C code froze the window for up to 0.3 s. Everything
    the window needs comes back through ``messages`` as (kind, payload) tuples.
    """
    import threading

    from app.core.lifeline import exit_with_parent

    exit_with_parent()  # the window's scan ends with the window, however the window ended

    _yield_to_the_window()
    if log_to_file:
        from app.gui.errors import setup_logging

        setup_logging()
    from app.core import session
    from app.core.library import LibraryError
    from app.core.model import WeightsError
    from app.core.pipeline import scan

    progress = Progress(lambda u: messages.put(("progress", u)), max_rate=5)
    threading.Thread(target=lambda: (cancel_event.wait(), progress.cancel()), daemon=True).start()
    s = settings
    try:
        with session.opened(s.library_location(), progress, "the Doppel window",
                            lambda text: messages.put(("notice", text)), s.weights, s.allow_download,
                            library_options=s.library_options()) as (embedder, lib):
            result = scan(folders, lib, embedder, progress, similarity=s.similarity,
                          workers=s.decode_workers or None, review=s.review(),
                          on_partial=lambda groups: messages.put(("partial", groups)), partial_every=partial_every)
    except (LibraryError, WeightsError) as exc:
        messages.put(("failed", str(exc)))
        return
    except session.DownloadCancelled:
        messages.put(("cancelled", "Cancelled while the ResNet-50 weights were downloading; nothing was "
                                   "scanned. The download is offered again at the next scan."))
        return
    except Exception as exc:  # shown in the window, with the log for details
        log.error("scan failed:\n%s", traceback.format_exc())
        messages.put(("failed", f"The scan failed: {exc}\nDetails are in the log: {paths.log_dir()}"))
        return
    messages.put(("finished", result))


def run_find(photo: str, settings: Settings, messages, cancel_event, log_to_file: bool = False) -> None:
    """Find the copies of ``photo`` in the library (app.core.find), in a process of its own for
    the reason run_scan gives; the result comes back through ``messages``."""
    from app.core.lifeline import exit_with_parent

    exit_with_parent()
    if log_to_file:
        from app.gui.errors import setup_logging

        setup_logging()
    from app.core import find, session
    from app.core.library import LibraryError
    from app.core.model import WeightsError

    progress = Progress(lambda u: messages.put(("progress", u)), max_rate=5)
    s = settings
    try:
        with session.opened(s.library_location(), progress, "the Doppel window", lambda text: None, s.weights,
                            s.allow_download, library_options=s.library_options()) as (embedder, lib):
            progress.note(f"Looking for copies of {os.path.basename(photo)}")
            if lib.count() == 0:
                messages.put(("failed", f"The library holds no photos read with {embedder.name} yet: scan your "
                                        f"folders first."))
                return
            result = find.find_copies(photo, lib, embedder, s.similarity)
    except (LibraryError, WeightsError) as exc:
        messages.put(("failed", str(exc)))
        return
    except Exception as exc:
        log.error("find failed:\n%s", traceback.format_exc())
        messages.put(("failed", f"Finding copies failed: {exc}\nDetails are in the log: {paths.log_dir()}"))
        return
    messages.put(("finished", result))
