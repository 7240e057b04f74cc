"""What the review area shows before there is a group to review: the next step to take.

A person who starts Doppel for the first time sees an empty window; this panel says what to do
next and offers the button that does it. Its states: no folders yet (add one), folders but no
scan yet (scan), a scan that has found no group so far, and a scan that found no copies (said
plainly, with the count, so an empty list is not mistaken for a failure).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

NO_FOLDERS, READY, SCANNING, NO_COPIES = "no folders", "ready", "scanning", "no copies"


class WelcomePanel(QWidget):
    add_requested = Signal()
    scan_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.addStretch(2)
        self.title = QLabel()
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.title.setFont(font)
        lay.addWidget(self.title)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        # a column a person reads line by line (about 70 characters), left-aligned, in the middle
        self.text.setFixedWidth(self.text.fontMetrics().averageCharWidth() * 72)
        # centred by stretches, not by an alignment flag: a widget placed with an alignment gets
        # its plain size hint, which cuts off the lines of wrapped text
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.text)
        row.addStretch(1)
        lay.addLayout(row)
        self.button = QPushButton()
        self.button.setMinimumHeight(self.button.sizeHint().height() * 3 // 2)
        self.button.clicked.connect(self._clicked)
        lay.addWidget(self.button, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addStretch(3)
        self.state = ""
        self.show_state(NO_FOLDERS)

    def show_state(self, state: str, folders: int = 0, files: int = 0) -> None:
        self.state = state
        self.button.setVisible(state in (NO_FOLDERS, READY))
        if state == NO_FOLDERS:
            self.title.setText("Find the copies among your photos")
            self.text.setText(
                "<p>1. Add the folders that hold your photos (or drop them on this window).<br>"
                "2. Press <b>Scan</b>: Doppel reads every photo and groups the copies of each picture — "
                "identical files, and resized, re-saved, cropped, brightened or grayscale copies.<br>"
                "3. Look at each group side by side and choose what to keep.</p>"
                "<p>Nothing is deleted: the copies you choose go to the trash, where you can get them back.</p>")
            self.button.setText("Add a photo folder…")
        elif state == READY:
            self.title.setText(f"{folders} folder{'s' if folders != 1 else ''} ready to scan")
            self.text.setText("<p>Press <b>Scan</b> to look for copies. The first scan reads every photo; "
                              "later scans read only what changed.</p>"
                              "<p>Tick a folder on the left to make it a reference: its photos are never "
                              "suggested for the trash.</p>")
            self.button.setText("Scan")
        elif state == SCANNING:
            self.title.setText("Looking for copies…")
            self.text.setText("<p>Groups appear here as they are found: you can review them while the scan "
                              "goes on.</p>")
        else:
            self.title.setText("No copies found")
            self.text.setText(f"<p>None of the {files} photos scanned is a copy of another.</p>"
                              "<p>Add more folders and scan again, or move the Similarity slider towards "
                              "<i>looser</i> to see looser matches.</p>")

    def _clicked(self) -> None:
        (self.add_requested if self.state == NO_FOLDERS else self.scan_requested).emit()
