"""Where a background task shows how far it is: a bar, a line of text with the rate and the time
left (of the step and of the whole scan), a Cancel button, a notice line for what the user should
know (the fallback model in use), and the weights download's own dialog."""
from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QProgressDialog, QPushButton, QVBoxLayout, QWidget

from app import APP_NAME
from app.core.progress import ProgressUpdate, format_eta

STAGE_NAMES = {"embed": "Reading photos", "search": "Searching", "verify": "Checking pairs", "group": "Grouping",
               "keeper": "Choosing keepers", "trash": "Moving to trash"}


class ProgressPanel(QWidget):
    cancel_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.label = QLabel("")
        self.label.setMinimumWidth(400)
        lay.addWidget(self.label)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #8a5a00")
        self.notice.hide()
        lay.addWidget(self.notice)
        self._busy_text = ""  # what an uncounted step is doing
        self.download: Optional[QProgressDialog] = None

    def say(self, text: str) -> None:
        self.label.setText(text)

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.show()

    def set_cancellable(self, on: bool) -> None:
        self.cancel_button.setEnabled(on)

    def show_update(self, u: ProgressUpdate) -> None:
        if u.stage == "download weights":
            self._show_download(u)
            return
        left = f" · about {format_eta(u.left)} left in the scan" if u.left is not None else ""
        if u.total > 0:
            self.bar.setRange(0, u.total)
            self.bar.setValue(u.done)
            self.label.setText(f"{STAGE_NAMES.get(u.stage, u.stage)}: {u.done} / {u.total} · "
                               f"{u.rate:.1f}/s · {format_eta(u.eta)} left in this step{left} · "
                               f"{os.path.basename(u.current)}")
        else:
            self.bar.setRange(0, 0)
            if u.message:
                self._busy_text = u.message
            self.label.setText(self._busy_text + left)

    def ended(self, text: str, done: bool = True) -> None:
        """A task is over: the bar full (``done``) or empty, and what it came to."""
        self.close_download()
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if done else 0)
        self.label.setText(text)

    def _show_download(self, u: ProgressUpdate) -> None:
        dlg = self.download
        if dlg is None:
            dlg = self.download = QProgressDialog("Downloading the ResNet-50 model weights…", "Cancel", 0, 100, self)
            dlg.setWindowTitle(APP_NAME)
            dlg.canceled.connect(self.cancel_requested)
        dlg.setMaximum(max(1, u.total))
        dlg.setValue(min(u.done, max(1, u.total)))
        if u.total and u.done >= u.total:
            self.close_download()

    def close_download(self) -> None:
        if self.download is not None:
            self.download.close()
            self.download = None
