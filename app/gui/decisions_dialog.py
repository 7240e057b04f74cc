"""The photos marked "not duplicates", newest first, with Undo for the chosen marks."""
from __future__ import annotations

import os
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout)

from app.core.decisions import Decisions


class DecisionsDialog(QDialog):
    changed = Signal()  # a mark was undone: the groups are made again

    def __init__(self, location: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Not duplicates — Doppel")
        self.resize(900, 400)
        self.location = location
        lay = QVBoxLayout(self)
        note = QLabel("Photos you marked as not duplicates are never grouped together again, in this library. "
                      "Undo a mark to let Doppel group them again (at the next regroup or scan).")
        note.setWordWrap(True)
        lay.addWidget(note)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["When", "Marked", "Files"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.undo_btn = QPushButton("Undo selected")
        buttons.addButton(self.undo_btn, QDialogButtonBox.ButtonRole.ActionRole)
        self.undo_btn.clicked.connect(self.undo_selected)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.reload()

    def reload(self) -> None:
        d = Decisions.for_library(self.location)
        try:
            self.marks = d.marks()
        finally:
            d.close()
        self.table.setRowCount(len(self.marks))
        for i, m in enumerate(self.marks):
            names = ", ".join(os.path.basename(p) for p in m.paths)
            for j, text in enumerate((time.strftime("%Y-%m-%d %H:%M", time.localtime(m.made)), m.what, names)):
                item = QTableWidgetItem(text)
                item.setToolTip("\n".join(m.paths))
                self.table.setItem(i, j, item)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(1)
        self.undo_btn.setEnabled(bool(self.marks))

    def undo_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        if not rows:
            return
        d = Decisions.for_library(self.location)
        try:
            for r in rows:
                d.forget(self.marks[r].id)
        finally:
            d.close()
        self.reload()
        self.changed.emit()

    def row_texts(self) -> list[str]:
        """What the table says, a line per mark (for tests and copying)."""
        return [" | ".join(self.table.item(i, j).text() for j in range(3)) for i in range(self.table.rowCount())]

    def keyPressEvent(self, event):
        if event.key() == Qt.Key.Key_Delete:
            self.undo_selected()
            return
        super().keyPressEvent(event)
