"""Workers wrap core functions in QThreads and talk to the window through signals only."""
from __future__ import annotations

import logging
import traceback

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app import paths
from app.core.progress import Progress
from app.settings import Settings

log = logging.getLogger(__name__)


class ScanWorker(QObject):
    """Runs app.core.pipeline.scan; owns the library for the duration of the scan."""

    progress = Signal(object)  # ProgressUpdate
    partial = Signal(object)  # list of groups among the files read so far
    notice = Signal(str)
    finished = Signal(object)  # ScanResult
    failed = Signal(str)
    partial_every = 3.0  # seconds between "groups so far" updates

    def __init__(self, folders: list[str], settings: Settings):
        super().__init__()
        self.folders = folders
        self.settings = settings
        self._progress = Progress(self.progress.emit, max_rate=5)

    def cancel(self) -> None:
        self._progress.cancel()

    @Slot()
    def run(self) -> None:
        from app.core.library import Library, LibraryError
        from app.core.model import WeightsError, load_embedder
        from app.core.pipeline import scan

        s = self.settings
        try:
            embedder = load_embedder(s.weights or None, allow_download=s.allow_download, progress=self._progress)
            if embedder.choice.notice:
                self.notice.emit(embedder.choice.notice)
            self._progress.note(f"Opening library {s.library_location()}")
            with Library(s.library_location(), embedder.name, embedder.dim, user="the Doppel window",
                         progress=self._progress) as lib:
                for n in lib.notices:
                    self.notice.emit(n)
                result = scan(self.folders, lib, embedder, self._progress, similarity=s.similarity,
                              workers=s.decode_workers or None, keeper_rule=s.keeper_rule,
                              reference_folders=s.reference_folders, preferred_folder=s.preferred_folder,
                              on_partial=self.partial.emit, partial_every=self.partial_every)
        except (LibraryError, WeightsError) as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # shown in the window, with the log for details
            log.error("scan failed:\n%s", traceback.format_exc())
            self.failed.emit(f"The scan failed: {exc}\nDetails are in the log: {paths.log_dir()}")
            return
        self.finished.emit(result)


class TrashWorker(QObject):
    progress = Signal(object)
    finished = Signal(object)  # TrashOutcome

    def __init__(self, decisions, reference_folders):
        super().__init__()
        self.decisions = decisions
        self.reference_folders = reference_folders

    @Slot()
    def run(self) -> None:
        from app.core.trash import Journal, TrashOutcome, TrashProblem, trash_files

        try:
            outcome = trash_files(self.decisions, Journal(paths.journal_path()), self.reference_folders,
                                  Progress(self.progress.emit, max_rate=5))
        except Exception as exc:  # never lose the report of what happened
            log.error("trash failed:\n%s", traceback.format_exc())
            outcome = TrashOutcome(problems=[TrashProblem("", f"trashing stopped: {exc}")])
        self.finished.emit(outcome)


def start_in_thread(worker: QObject, owner: QObject) -> QThread:
    """Move ``worker`` to a new QThread that ends and cleans up when the worker finishes."""
    thread = QThread(owner)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    for sig in ("finished", "failed"):
        if hasattr(worker, sig):
            getattr(worker, sig).connect(thread.quit)
    thread.finished.connect(worker.deleteLater)
    thread.finished.connect(thread.deleteLater)
    thread.start()
    return thread
