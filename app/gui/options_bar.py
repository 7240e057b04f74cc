"""The grouping options on the toolbar: how similar copies must be, which copy to keep, and what
is preselected for the trash beyond the copies that lose nothing. A change regroups the scan's
result without rescanning (``changed``)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QWidget

from app.settings import KEEPER_RULES, Settings

KEEPER_LABELS = {"original": "the original", "highest-resolution": "highest resolution",
                 "largest-file": "largest file", "oldest": "oldest", "newest": "newest",
                 "preferred-folder": "preferred folder"}


class OptionsBar(QWidget):
    changed = Signal()

    def __init__(self, settings: Settings, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # as wide as its contents
        lay.addWidget(QLabel(" Similarity: looser "))
        self.similarity = QSlider(Qt.Orientation.Horizontal)
        self.similarity.setRange(0, 100)
        self.similarity.setValue(int(round(settings.similarity * 100)))
        self.similarity.setFixedWidth(140)
        self.similarity.setToolTip("Stricter finds fewer, surer groups; regroups without rescanning")
        # Regroup when the handle is released, not at every step of a drag: linking 5,000 photos
        # takes seconds, and each step would queue another run.
        self.similarity.setTracking(False)
        self.similarity.valueChanged.connect(self.changed)
        lay.addWidget(self.similarity)
        lay.addWidget(QLabel(" stricter   Keep: "))
        self.keeper_rule = QComboBox()
        for r in KEEPER_RULES:
            self.keeper_rule.addItem(KEEPER_LABELS[r], r)
        self.keeper_rule.setCurrentIndex(max(0, self.keeper_rule.findData(settings.keeper_rule)))
        self.keeper_rule.currentIndexChanged.connect(self.changed)
        lay.addWidget(self.keeper_rule)
        # what is preselected for the trash: copies at no loss only, unless these say more
        self.select_edited = self._option(
            "Also select edits", "Also select edited copies: preselect crops, turned, mirrored, grayscale, "
            "framed, watermarked and tone-edited copies for the trash as well", settings.select_edited)
        self.trash_jpeg_with_raw = self._option(
            "Trash JPEGs with a RAW", "Trash JPEGs that have a RAW: in a RAW + JPEG pair, preselect the JPEG "
            "(the RAW is always kept)", settings.trash_jpeg_with_raw)

    def _option(self, label: str, tip: str, checked: bool) -> QCheckBox:
        box = QCheckBox(label)
        box.setToolTip(tip)
        box.setChecked(checked)
        box.toggled.connect(self.changed)
        self.layout().addWidget(box)
        return box

    def prefer_folder_rule(self) -> None:
        self.keeper_rule.setCurrentIndex(self.keeper_rule.findData("preferred-folder"))

    def apply_to(self, settings: Settings) -> None:
        settings.similarity = self.similarity.value() / 100
        settings.keeper_rule = self.keeper_rule.currentData()
        settings.select_edited = self.select_edited.isChecked()
        settings.trash_jpeg_with_raw = self.trash_jpeg_with_raw.isChecked()
