"""Logging to a rotating file in the per-user log dir, and a dialog for uncaught exceptions."""
from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback

from app import paths


def setup_logging() -> str:
    d = paths.log_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / "doppel.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return str(path)


def install_excepthook(parent_getter=lambda: None):
    """Uncaught exceptions are logged and shown with copyable details, never a silent exit."""

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            return sys.__excepthook__(exc_type, exc, tb)
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        logging.getLogger("doppel").error("uncaught exception:\n%s", details)
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QApplication, QMessageBox

        if QApplication.instance() is None:
            return sys.__excepthook__(exc_type, exc, tb)
        box = QMessageBox(parent_getter())
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Doppel — unexpected error")
        box.setText(f"Something went wrong: {exc}\n\nYour photos were not touched. "
                    f"The log is in {paths.log_dir()}.")
        box.setDetailedText(details)  # copyable: the details pane is a plain text field
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        hook.last_box = box
        box.open()  # non-blocking: an error inside a slot must not stall the event loop

    hook.last_box = None
    sys.excepthook = hook
    return hook
