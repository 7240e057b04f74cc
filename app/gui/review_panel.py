"""The review area: the welcome panel until there is a group to review, then the group's copies
side by side (group_view.py), with the keys and the buttons that act on the group below."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from app.gui.group_model import human_size
from app.gui.group_view import GroupView
from app.gui.welcome import WelcomePanel


class ReviewPanel(QWidget):
    apart_requested = Signal()  # "Not duplicates" for the whole group shown
    trash_requested = Signal()

    def __init__(self, thumbs, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.view = GroupView(thumbs)
        self.welcome = WelcomePanel()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.view)
        lay.addWidget(self.stack, 1)
        bottom = QHBoxLayout()
        keys = QLabel("←/→ move · K keep · T/Del trash · Space compare with the keeper · C compare chosen · "
                      "Enter next group")
        keys.setWordWrap(True)  # on two lines rather than widen the window past a laptop's screen
        bottom.addWidget(keys, 1)
        self.compare_button = QPushButton("Compare chosen (C)")
        self.compare_button.setToolTip("Tick Compare on two copies (or on one: it is compared with the keeper)")
        self.compare_button.clicked.connect(self.view.compare_chosen)
        bottom.addWidget(self.compare_button)
        self.apart_button = QPushButton("Not duplicates")
        self.apart_button.setToolTip("These are different photos: never group them together again")
        self.apart_button.clicked.connect(self.apart_requested)
        self.apart_button.setEnabled(False)
        bottom.addWidget(self.apart_button)
        self.trash_button = QPushButton()
        self.trash_button.clicked.connect(self.trash_requested)
        bottom.addWidget(self.trash_button)
        lay.addLayout(bottom)

    def show_welcome(self, state: str, **facts) -> None:
        self.welcome.show_state(state, **facts)
        self.stack.setCurrentWidget(self.welcome)

    def show_groups(self) -> None:
        self.stack.setCurrentWidget(self.view)

    def set_trash_choice(self, count: int, size: int, enabled: bool) -> None:
        self.trash_button.setText(f"Move {count} files to trash ({human_size(size)})")
        self.trash_button.setEnabled(enabled)


KIND_WORDS = {"identical": ("identical copy", "identical copies"),
              "smaller copy": ("smaller copy", "smaller copies"),
              "re-encoded": ("re-encoded copy", "re-encoded copies"),
              "converted": ("copy in another format", "copies in another format"),
              "RAW + JPEG": ("JPEG that has a RAW", "JPEGs that have a RAW"),
              "edited": ("edited copy", "edited copies"),
              "RAW": ("RAW file", "RAW files"),
              "keeper": ("suggested keeper", "suggested keepers")}


def kind_counts(members) -> list[str]:
    """What the trash confirmation lists: how many copies of each kind, edits first."""
    counts: dict[str, int] = {}
    for m in members:
        counts[m.kind or "edited"] = counts.get(m.kind or "edited", 0) + 1
    order = ["keeper", "RAW", "edited", "RAW + JPEG", "converted", "re-encoded", "smaller copy", "identical"]
    out = []
    for k in sorted(counts, key=lambda k: order.index(k) if k in order else 0):
        one, many = KIND_WORDS.get(k, (k, k))
        out.append(f"• {counts[k]} {one if counts[k] == 1 else many}")
    return out
