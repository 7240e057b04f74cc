"""The window's one runner for background work.

A task is a worker QObject (workers.py) with a ``run`` slot and one or more of the signals
``finished``, ``failed`` and ``cancelled``; the runner moves it to a QThread of its own, under a
name ("scan", "find", "trash", "regroup"), holds both while it runs, and lets go of them once the
thread has really ended. The window asks the runner what runs (``running``), cancels through it,
and waits for every task when it closes.

Python owns the worker and the thread, and drops them on the window's thread after the thread
has ended. No deleteLater: Qt flushes a deferred delete on the worker thread after ``finished``
is emitted, which raced the window's thread dropping its references and freed the worker twice
(test_worker_threads_end_and_are_freed_cleanly_many_times reproduces it with that wiring).
"""
from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import QObject, QThread, Signal, Slot

ENDINGS = ("finished", "failed", "cancelled")


class TaskRunner(QObject):
    changed = Signal(str, bool)  # name, running: a task started or its thread ended

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._tasks: dict[str, tuple[QObject, QThread, Optional[Callable]]] = {}

    def start(self, name: str, worker: QObject, on_end: Optional[Callable[[QObject], None]] = None) -> QObject:
        """Run ``worker`` in a thread of its own; ``on_end(worker)`` once that thread has ended
        (after the worker's last signal has been delivered). One task of a name at a time."""
        if name in self._tasks:
            raise RuntimeError(f"a {name} task is already running")
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        for sig in ENDINGS:
            if hasattr(worker, sig):
                getattr(worker, sig).connect(thread.quit)
        self._tasks[name] = (worker, thread, on_end)
        thread.setObjectName(name)
        # a slot of the runner, which lives on the window's thread: delivered there
        thread.finished.connect(self._ended)
        thread.start()
        self.changed.emit(name, True)
        return worker

    @Slot()
    def _ended(self) -> None:
        name = self.sender().objectName()
        worker, thread, on_end = self._tasks.pop(name)
        thread.wait()  # finished has arrived: wait until the thread has really ended
        if on_end is not None:
            on_end(worker)
        self.changed.emit(name, False)

    def running(self, *names: str) -> bool:
        """Whether a task of one of ``names`` (of any name, without) runs."""
        return any(n in self._tasks for n in names) if names else bool(self._tasks)

    def worker(self, name: str) -> Optional[QObject]:
        task = self._tasks.get(name)
        return task[0] if task else None

    def cancel(self, name: str) -> None:
        """Ask the task to stop (a worker that can be cancelled has ``cancel``)."""
        worker = self.worker(name)
        if worker is not None and hasattr(worker, "cancel"):
            worker.cancel()

    def stop_all(self, wait_ms: int = 30000) -> None:
        """Cancel what can be cancelled and wait for every thread (the window is closing)."""
        for name in list(self._tasks):
            self.cancel(name)
        for _, thread, _ in list(self._tasks.values()):
            thread.quit()
            thread.wait(wait_ms)
