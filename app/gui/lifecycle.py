"""How the window's process lives: it closes on the signals a desktop or a terminal sends, and it
keeps Python's garbage collections out of the way of the event loop."""
from __future__ import annotations

import gc
import logging


def quit_on_signals(window) -> None:
    """SIGTERM (logout, ``kill``) and SIGINT (Ctrl-C) close the window as Quit does: the scan is
    cancelled, its process and the thumbnail workers end, settings are saved.

    Python runs a signal handler only when the interpreter gets control, and Qt's event loop does
    not give it any: a timer hands it a turn every quarter second."""
    import signal

    from PySide6.QtCore import QTimer

    def close(signum, _frame):
        logging.getLogger(__name__).info("signal %d: closing", signum)
        QTimer.singleShot(0, window.close)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, close)
    window._signal_timer = timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)


def keep_garbage_collections_short() -> None:
    """Leave the objects that live as long as the app out of Python's full garbage collections.

    A full collection walks every tracked object while holding the GIL, so it stops the window's
    thread: 35-44 ms with the window built (PySide6 and numpy loaded) on a 2-core AVX2 machine,
    56 ms during a scan, at moments no one chooses (that one made a 63 ms event-loop gap).
    Called once the window is up; later collections walk only what was made since.
    """
    gc.collect()
    gc.freeze()
