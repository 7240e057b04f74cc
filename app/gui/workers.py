"""Workers wrap core functions and talk to the window through signals only; tasks.py runs each
in a QThread of its own."""
from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import traceback

from PySide6.QtCore import QObject, Signal, Slot

from app import paths
from app.core.progress import Progress
from app.gui.scan_process import run_find, run_scan
from app.settings import Settings

log = logging.getLogger(__name__)


class ProcessWorker(QObject):
    """Runs ``target`` (a function of scan_process.py) in a child process and relays what it
    reports, (kind, payload) tuples, as the signals of the same names."""

    progress = Signal(object)  # ProgressUpdate
    notice = Signal(str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)  # stopped before it had anything to give (a cancelled download)
    what = "The job"

    def __init__(self, target, args: tuple):
        super().__init__()
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs Qt
        self._ctx = ctx
        self._cancel = ctx.Event()
        self._target, self._args = target, args

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        import queue

        messages = self._ctx.Queue()
        root = logging.getLogger()
        log_to_file = any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers)
        proc = self._ctx.Process(target=self._target, name=f"doppel-{self._target.__name__}",
                                 args=(*self._args, messages, self._cancel, log_to_file))
        proc.start()
        outcome = None
        while outcome is None:
            try:
                kind, payload = messages.get(timeout=0.2)
            except queue.Empty:
                if not proc.is_alive():
                    try:  # the last message may still be in the pipe
                        kind, payload = messages.get(timeout=1.0)
                    except queue.Empty:
                        outcome = ("failed", f"{self.what} stopped unexpectedly (exit code {proc.exitcode}). "
                                             f"Details may be in the log: {paths.log_dir()}")
                        break
                else:
                    continue
            if kind in ("finished", "failed", "cancelled"):
                outcome = (kind, payload)
            else:
                getattr(self, kind).emit(payload)
        proc.join(timeout=30)
        getattr(self, outcome[0]).emit(outcome[1])


class ScanWorker(ProcessWorker):
    """Runs app.core.pipeline.scan in a child process (run_scan); the child owns the library for
    the duration of the scan."""

    partial = Signal(object)  # list of groups among the files read so far
    partial_every = 3.0  # seconds between "groups so far" updates
    what = "The scan"

    def __init__(self, folders: list[str], settings: Settings):
        super().__init__(run_scan, (folders, settings, self.partial_every))
        self.folders = folders
        self.settings = settings


class FindWorker(ProcessWorker):
    """Finds the copies of one photo in the library (run_find); ``finished`` gets a find.FindResult."""

    what = "Finding copies"

    def __init__(self, photo: str, settings: Settings):
        super().__init__(run_find, (photo, settings))


class TrashWorker(QObject):
    progress = Signal(object)
    finished = Signal(object)  # TrashOutcome

    def __init__(self, decisions, reference_folders):
        super().__init__()
        self.decisions = decisions
        self.reference_folders = reference_folders

    @Slot()
    def run(self) -> None:
        from app.core.domain import Problem
        from app.core.trash import Journal, TrashOutcome, trash_files

        try:
            outcome = trash_files(self.decisions, Journal(paths.journal_path()), self.reference_folders,
                                  Progress(self.progress.emit, max_rate=5))
        except Exception as exc:  # never lose the report of what happened
            log.error("trash failed:\n%s", traceback.format_exc())
            outcome = TrashOutcome(problems=[Problem("", f"trashing stopped: {exc}")])
        self.finished.emit(outcome)


class RegroupWorker(QObject):
    """ScanResult.grouped for other settings, off the window's thread."""

    finished = Signal(int, object)  # generation, list of groups
    failed = Signal(int, str)

    def __init__(self, result, settings: tuple, generation: int):
        super().__init__()
        self.result, self.settings, self.generation = result, settings, generation

    @Slot()
    def run(self) -> None:
        try:
            groups = self.result.grouped(*self.settings)
        except Exception as exc:
            log.error("regrouping failed:\n%s", traceback.format_exc())
            self.failed.emit(self.generation, f"Regrouping failed: {exc}\nDetails are in the log: {paths.log_dir()}")
            return
        self.finished.emit(self.generation, groups)
