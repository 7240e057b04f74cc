"""What Doppel trashed, with a Restore button for entries still in the trash."""
from __future__ import annotations

import time

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QMessageBox, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

from app import paths
from app.core.trash import Journal, restore_entries
from app.gui.group_model import human_size


class JournalDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Trash journal — Doppel")
        self.resize(900, 400)
        self.journal = Journal(paths.journal_path())
        self.last_problems: list[str] = []
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Every file Doppel moved to the trash. Journal file: {self.journal.path}"))
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["When", "Action", "Size", "Original path"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.restore_btn = QPushButton("Restore selected")
        buttons.addButton(self.restore_btn, QDialogButtonBox.ButtonRole.ActionRole)
        self.restore_btn.clicked.connect(self.restore_selected)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.reload()

    def reload(self):
        self.entries = self.journal.entries()
        self.table.setRowCount(len(self.entries))
        for i, e in enumerate(reversed(self.entries)):
            for j, text in enumerate((time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time)), e.action,
                                      human_size(e.size), e.path)):
                self.table.setItem(i, j, QTableWidgetItem(text))

    def restore_selected(self):
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        shown = list(reversed(self.entries))  # newest first, as the table lists them
        _, problems = restore_entries([shown[r] for r in rows], self.journal)
        self.reload()
        self.last_problems = problems
        if problems:
            box = QMessageBox(QMessageBox.Icon.Warning, "Doppel", "Some files could not be restored.",
                              QMessageBox.StandardButton.Ok, self)
            box.setDetailedText("\n".join(problems))
            box.open()
