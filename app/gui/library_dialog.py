"""Where the library lives: the local Milvus Lite file, another file, or a Milvus server (URI,
token, database)."""
from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QVBoxLayout, QWidget)

from app import paths
from app.core.library import is_server_uri


class LibraryDialog(QDialog):
    def __init__(self, settings, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Library — Doppel")
        self.resize(640, 0)
        lay = QVBoxLayout(self)
        note = QLabel("Doppel keeps what it learned about your photos in a library: by default a file on this "
                      "computer. For a very large collection, or one shared by several computers, give the "
                      "address of a Milvus server instead (http://host:19530).")
        note.setWordWrap(True)
        lay.addWidget(note)
        form = QFormLayout()
        self.location = QLineEdit(settings.library)
        self.location.setPlaceholderText(paths.default_library())
        pick = QPushButton("File…")
        pick.clicked.connect(self._pick_file)
        row = QWidget()
        row_lay = QHBoxLayout(row)
        row_lay.setContentsMargins(0, 0, 0, 0)
        row_lay.addWidget(self.location, 1)
        row_lay.addWidget(pick)
        form.addRow("Library file or server URI:", row)
        self.token = QLineEdit(settings.server_token)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("user:password or API key (a secured server only)")
        form.addRow("Server token:", self.token)
        self.database = QLineEdit(settings.server_database)
        self.database.setPlaceholderText("the server's default database")
        form.addRow("Server database:", self.database)
        lay.addLayout(form)
        self.location.textChanged.connect(self._update)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self._update()

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Library file", self.location.text() or paths.default_library(),
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.location.setText(path)

    def _update(self) -> None:
        server = is_server_uri(self.location.text().strip())
        self.token.setEnabled(server)
        self.database.setEnabled(server)

    def accept(self) -> None:
        self.settings.library = self.location.text().strip()
        server = is_server_uri(self.settings.library)
        self.settings.server_token = self.token.text().strip() if server else ""
        self.settings.server_database = self.database.text().strip() if server else ""
        super().accept()
