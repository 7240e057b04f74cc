"""The copies of one photo found in the library (app.core.find), as thumbnails."""
from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QVBoxLayout)

from app.gui.group_model import human_size
from app.gui.reveal import show_in_folder

TILE = 160
HOW = {"identical": "the same bytes", "frame": "the whole picture", "crop": "one shows part of the other",
       "turn": "turned a little", "overlap": "overlapping views"}  # verify.Match.how, in words


class FindDialog(QDialog):
    compare_requested = Signal(str, str)

    def __init__(self, result, thumbs, parent=None):
        super().__init__(parent)
        self.result = result
        self._thumbs = thumbs
        self.setWindowTitle(f"Copies of {os.path.basename(result.photo)} — Doppel")
        self.resize(900, 520)
        lay = QVBoxLayout(self)
        n = len(result.copies)
        self.summary = QLabel(f"{n} {'copy' if n == 1 else 'copies'} of {result.photo} in the library "
                              f"({result.candidates} similar photos checked)." if n else
                              f"No copy of {result.photo} in the library ({result.candidates} similar photos "
                              f"checked).")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(TILE, TILE))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setWordWrap(True)
        self.list.setMovement(QListWidget.Movement.Static)
        lines = self.fontMetrics().lineSpacing()
        self.list.setGridSize(QSize(TILE + 40, TILE + 3 * lines + 16))  # the thumbnail and its three lines
        self.list.itemDoubleClicked.connect(lambda item: show_in_folder(item.data(Qt.ItemDataRole.UserRole)))
        for c in result.copies:
            r = c.row
            item = QListWidgetItem(f"{os.path.basename(r.path)}\n{c.score:.0%} · {HOW.get(c.how, c.how)}\n"
                                   f"{r.width} × {r.height} · {human_size(r.size)}")
            item.setData(Qt.ItemDataRole.UserRole, r.path)
            item.setToolTip(r.path)
            self.list.addItem(item)
        lay.addWidget(self.list, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.compare_btn = QPushButton("Compare with the photo")
        self.show_btn = QPushButton("Show in folder")
        for b in (self.compare_btn, self.show_btn):
            b.setEnabled(False)
            buttons.addButton(b, QDialogButtonBox.ButtonRole.ActionRole)
        self.compare_btn.clicked.connect(lambda: self.compare_requested.emit(result.photo, self.chosen()))
        self.show_btn.clicked.connect(lambda: show_in_folder(self.chosen()))
        self.list.currentItemChanged.connect(lambda *_: [b.setEnabled(self.list.currentItem() is not None)
                                                         for b in (self.compare_btn, self.show_btn)])
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        thumbs.ready.connect(self._thumb_ready)
        for c in result.copies:
            self._thumb_ready(c.row.path, TILE)
        if result.copies:
            self.list.setCurrentRow(0)

    def chosen(self) -> str:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def _thumb_ready(self, path: str, side: int) -> None:
        if side != TILE:
            return
        img = self._thumbs.get(path, TILE)  # asks the workers when not decoded yet
        if img is None or img.isNull():
            return
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == path:
                item.setIcon(QIcon(QPixmap.fromImage(img)))
