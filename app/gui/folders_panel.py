"""The photo folders: the list the scan reads, each folder ticked when it is a reference (its
files are never trashed), one of them marked preferred (its copies are kept first when the
keeper rule says so). Every change reaches the settings through ``changed``."""
from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QSizePolicy, QVBoxLayout, QWidget

FOLDER = Qt.ItemDataRole.UserRole


class FoldersPanel(QWidget):
    changed = Signal()  # folders added or removed, a reference tick, a preferred folder

    def __init__(self, folders: list[str], reference: list[str], preferred: str, parent=None):
        super().__init__(parent)
        self.preferred = preferred
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # the groups take the rest
        lay.addWidget(QLabel("<b>Photo folders</b> (tick = reference: never trashed)"))
        self.list = QListWidget()
        self.list.setMaximumHeight(160)
        lay.addWidget(self.list)
        for f in folders:
            self._add_item(f, f in reference)
        self.list.itemChanged.connect(lambda *_: self.changed.emit())

    def _label(self, folder: str) -> str:
        return folder + ("  ★ preferred" if folder == self.preferred else "")

    def _add_item(self, folder: str, reference: bool) -> None:
        folder = os.path.abspath(folder)
        if folder in self.folders():
            return
        item = QListWidgetItem(self._label(folder))
        item.setData(FOLDER, folder)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        self.list.blockSignals(True)
        item.setCheckState(Qt.CheckState.Checked if reference else Qt.CheckState.Unchecked)
        self.list.addItem(item)
        self.list.blockSignals(False)

    def add(self, folders) -> None:
        """Add the folders among ``folders`` that exist (files and missing paths are left out)."""
        for f in folders:
            if os.path.isdir(f):
                self._add_item(f, False)
        self.changed.emit()

    def folders(self) -> list[str]:
        return [self.list.item(i).data(FOLDER) for i in range(self.list.count())]

    def reference_folders(self) -> list[str]:
        return [self.list.item(i).data(FOLDER) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]

    def count(self) -> int:
        return self.list.count()

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.changed.emit()

    def prefer_selected(self) -> Optional[str]:
        """Mark the selected folder preferred; returns it (None when no folder is selected)."""
        items = self.list.selectedItems()
        if not items:
            return None
        self.preferred = items[0].data(FOLDER)
        self.list.blockSignals(True)
        for i in range(self.list.count()):
            it = self.list.item(i)
            it.setText(self._label(it.data(FOLDER)))
        self.list.blockSignals(False)
        self.changed.emit()
        return self.preferred
