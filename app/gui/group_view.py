"""The selected group's copies side by side: large thumbnails, facts, differences, Keep/Trash."""
from __future__ import annotations

import os
import time
from typing import Optional

from PySide6.QtCore import QRectF, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QFont, QFontMetrics, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (QButtonGroup, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QSizePolicy, QVBoxLayout, QWidget)

from app.gui.group_model import human_size

CARD_SIDE = 280
CARDS_AT_ONCE = 3  # new cards built at once; the rest follow, one per turn of the event loop
KEEP_COLOUR, TRASH_COLOUR, CURRENT_TINT = "#2e7d32", "#c0392b", "#eef4ff"
DIFFERS_COLOUR = "#b34700"
LINE_GAP = 2  # px between two facts
FACTS = ("Resolution", "File size", "Format", "Date taken", "Modified", "Folder", "Similarity")


def show_in_folder(path: str) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))


class FactsView(QWidget):
    """A card's facts, one line each: "Name: value", the value in orange and marked ● where it
    differs from the keeper's. A folder too long for its line breaks after a path separator onto
    a second one, and is shortened in the middle if it is longer still; the tooltip has it whole.

    Painted, not one rich-text label per fact: laying out seven word-wrapped rich-text labels
    made a card cost 17-33 ms of the window on a 2-core AVX2 machine, against 2-9 ms like this.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lines: list[tuple[str, str, bool]] = []
        # one line per fact, and one for a folder that takes two
        self.setFixedSize(CARD_SIDE, (len(FACTS) + 1) * (self.fontMetrics().lineSpacing() + LINE_GAP))

    def set_lines(self, lines: list[tuple[str, str, bool]]) -> None:
        if lines != self.lines:
            self.lines = lines
            self.update()

    def text(self) -> str:
        """The facts as plain text, one per line (what the card says, for tests and copying)."""
        return "\n".join(f"{name}: {value}" + (" ●" if differs else "") for name, value, differs in self.lines)

    @staticmethod
    def folder_lines(text: str, metrics: QFontMetrics, width: int) -> list[str]:
        """``text`` (a folder) on one line of ``width`` px, else on two: as many leading folders as
        fit, then the rest, shortened in the middle when it is still too long."""
        if metrics.horizontalAdvance(text) <= width:
            return [text]
        cut = 0
        for i, ch in enumerate(text):
            if ch in "/\\" and metrics.horizontalAdvance(text[:i + 1]) <= width:
                cut = i + 1
        if cut == 0:
            return [metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, width)]
        return [text[:cut], metrics.elidedText(text[cut:], Qt.TextElideMode.ElideMiddle, width)]

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        bold = QFont(self.font())
        bold.setBold(True)
        plain_metrics, bold_metrics = self.fontMetrics(), QFontMetrics(bold)
        step = plain_metrics.lineSpacing() + LINE_GAP
        normal = self.palette().color(QPalette.ColorRole.WindowText)
        y = plain_metrics.ascent()
        for name, value, differs in self.lines:
            label = f"{name}: "
            p.setFont(bold)
            p.setPen(normal)
            p.drawText(0, y, label)
            x = bold_metrics.horizontalAdvance(label)
            p.setFont(self.font())
            p.setPen(QColor(DIFFERS_COLOUR) if differs else normal)
            text = f"{value} ●" if differs else value
            if name == "Folder":
                parts = self.folder_lines(text, plain_metrics, self.width() - x)
            else:
                parts = [plain_metrics.elidedText(text, Qt.TextElideMode.ElideRight, self.width() - x)]
            for part in parts:
                p.drawText(x, y, part)
                y += step
        p.end()


class CopyCard(QFrame):
    keep_changed = Signal(str, bool)
    activated = Signal(object)  # self

    def __init__(self, member, keeper, thumbs, keep: bool, parent=None):
        super().__init__(parent)
        self.path = member.row.path
        self.current = False  # the card the keyboard acts on
        self.keep = keep
        self._painted = None  # the look last painted
        self.setFrameShape(QFrame.Shape.NoFrame)  # paintEvent draws the frame
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._thumbs = thumbs
        lay = QVBoxLayout(self)
        self.badge = QLabel()
        lay.addWidget(self.badge)
        self.image = QLabel()
        self.image.setFixedSize(CARD_SIDE, CARD_SIDE)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setText("loading…")
        lay.addWidget(self.image)
        r = member.row
        self.facts = FactsView()
        self.facts.setToolTip(r.path)
        lay.addWidget(self.facts)
        self.show_facts(member, keeper)
        name = QLabel(os.path.basename(r.path))
        name.setToolTip(r.path)
        lay.addWidget(name)
        row = QHBoxLayout()
        self.keep_btn = QPushButton("Keep (K)")
        self.trash_btn = QPushButton("Trash (T)")
        for b in (self.keep_btn, self.trash_btn):
            b.setCheckable(True)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            row.addWidget(b)
        grp = QButtonGroup(self)
        grp.addButton(self.keep_btn)
        grp.addButton(self.trash_btn)
        self.keep_btn.clicked.connect(lambda: self.keep_changed.emit(self.path, True))
        self.trash_btn.clicked.connect(lambda: self.keep_changed.emit(self.path, False))
        lay.addLayout(row)
        folder_btn = QPushButton("Show in folder")
        folder_btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        folder_btn.clicked.connect(lambda: show_in_folder(self.path))
        lay.addWidget(folder_btn)
        self.set_keep(keep)
        self.refresh_image()

    def show_facts(self, member, keeper) -> None:
        """The badge and the facts of ``member`` (this card's copy), marked where they differ
        from ``keeper``'s; called again when a scan's update brings another keeper."""
        self.member, self.keeper, self.shown = member, keeper, self.facts_of(member, keeper)
        self.badge.setText(f"★ Keep: {member.reason}" if member is keeper else (member.reason or " "))
        self.badge.setToolTip(self.badge.text())
        self.badge.setObjectName("keeperBadge" if member is keeper else "badge")
        r, k = member.row, keeper.row
        taken = self._thumbs.date_taken(r.path)
        facts = {
            "Resolution": (f"{r.width} × {r.height}", (r.width, r.height) != (k.width, k.height)),
            "File size": (human_size(r.size), r.size != k.size),
            "Format": (r.format or "?", r.format != k.format),
            "Date taken": (taken or "–", taken != self._thumbs.date_taken(k.path)),
            "Modified": (time.strftime("%Y-%m-%d %H:%M", time.localtime(r.mtime_ns / 1e9)), False),
            "Folder": (os.path.dirname(r.path), os.path.dirname(r.path) != os.path.dirname(k.path)),
            "Similarity": (f"{member.similarity:.0%}", False),
        }
        self.facts.set_lines([(name, value, differs) for name, (value, differs) in facts.items()])

    @staticmethod
    def facts_of(member, keeper) -> tuple:
        """Everything a card shows of ``member`` beside ``keeper`` (the image aside): equal
        tuples, equal cards."""
        def row(r):
            return r.path, r.size, r.mtime_ns, r.width, r.height, r.format
        return row(member.row), member.similarity, member.reason, member is keeper, row(keeper.row)

    def set_keep(self, keep: bool) -> None:
        self.keep = keep
        self.keep_btn.setChecked(keep)
        self.trash_btn.setChecked(not keep)
        self.setProperty("trash", not keep)
        self._restyle()

    def set_current(self, current: bool) -> None:
        self.current = current
        self._restyle()

    def look(self) -> tuple:
        """(border colour, border width, background or None): green to keep, red to trash; the
        card the keyboard acts on has a thicker border and a tint."""
        return (KEEP_COLOUR if self.keep else TRASH_COLOUR, 3 if self.current else 2,
                CURRENT_TINT if self.current else None)

    def _restyle(self) -> None:
        # Painted, not a style sheet: setStyleSheet re-polishes the card and all its children,
        # 4-5 ms a time on a 2-core AVX2 machine, and a groups-so-far update that restyled six
        # cards held the window for 24 ms. Repainted only when the look changes.
        if self.look() != self._painted:
            self._painted = self.look()
            self.update()

    def paintEvent(self, event) -> None:
        colour, width, tint = self._painted = self.look()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(QColor(colour), width))
        p.setBrush(QColor(tint) if tint else Qt.BrushStyle.NoBrush)
        half = width / 2
        p.drawRoundedRect(QRectF(self.rect()).adjusted(half, half, -half, -half), 6, 6)
        p.end()

    def refresh_image(self) -> None:
        if self._thumbs.date_taken(self.path):  # read with the thumbnail: marked against the keeper's as well
            self.show_facts(self.member, self.keeper)
        img = self._thumbs.get(self.path, CARD_SIDE)
        if img is not None:
            if img.isNull():
                self.image.setText("cannot show this image")
            else:
                self.image.setPixmap(QPixmap.fromImage(img))

    def mousePressEvent(self, event):
        self.activated.emit(self)
        super().mousePressEvent(event)


class GroupView(QScrollArea):
    """Cards of one group; keyboard: ←/→ move, K keep, T/Delete trash, Space compare."""

    keep_changed = Signal(str, bool)
    compare_requested = Signal(str, str)

    def __init__(self, thumbs, parent=None):
        super().__init__(parent)
        self._thumbs = thumbs
        self.setWidgetResizable(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.cards: list[CopyCard] = []
        self.current = 0
        self._shown: list[str] = []  # the paths of the group on screen, cards still to build included
        self._pending: list = []  # (member, card shown before or None): placed on the next turns of the event loop
        self._host: Optional[QWidget] = None
        self._scheduled = False
        self._keeper = None
        self._keep: dict[str, bool] = {}
        self._empty()
        thumbs.ready.connect(self._thumb_ready)

    def _empty(self):
        lab = QLabel("Scan your photo folders, then pick a group on the left to compare its copies here.")
        lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lab.setWordWrap(True)
        self.setWidget(lab)
        self.cards = []
        self._shown, self._pending = [], []

    def show_group(self, group, keep: dict[str, bool]) -> bool:
        """Show ``group``'s copies; True when they are not the ones already on screen (the same
        copies, as a "groups so far" update brings them, keep the current card)."""
        if group is None:
            self._empty()
            return True
        paths = [m.row.path for m in group.members]
        same = self._shown == paths
        keeper = group.keeper or group.members[0]
        # The cards of copies already on screen are kept (their facts rewritten if the keeper
        # changed): while a scan runs, the shown group grows with "groups so far" updates and may
        # get a better keeper, and rebuilding every card each time held the window for 50-140 ms
        # on a busy 2-core machine (10-20 ms a card, plus re-laying the host).
        old = {c.path: c for c in self.cards}
        old.update((m.row.path, card) for m, card in self._pending if card is not None)
        if not self.cards:
            host = QWidget()
            QHBoxLayout(host).addStretch(1)
            host.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
            self._host = host
        for c in self.cards:
            self._host.layout().removeWidget(c)
        self.cards, self._shown, self._keeper, self._keep = [], paths, keeper, keep
        # A new card costs 10-15 ms here: a group of 13 new copies held the window for 175 ms.
        # The first few (about what the panel shows) are built now, the rest one per turn of the
        # event loop, in order.
        self._pending = []
        built = 0
        for m in group.members:
            card = old.pop(m.row.path, None)
            if self._pending or (card is None and built >= CARDS_AT_ONCE):
                if card is not None:
                    card.hide()  # out of the layout until its turn
                self._pending.append((m, card))
                continue
            built += card is None
            self._place(m, card)
        for c in old.values():  # out of the layout already; the event loop deletes them
            c.hide()
            c.deleteLater()
        if self.widget() is not self._host:
            self.setWidget(self._host)
        self.set_current(self.current if same else 0)
        self._schedule()
        return not same

    def _place(self, m, card=None) -> None:
        """Put ``m``'s card next in line: ``card`` when it was on screen before, else a new one."""
        keep = self._keep.get(m.row.path, m.keep)
        if card is not None:
            if card.shown != CopyCard.facts_of(m, self._keeper):  # another keeper, say
                card.show_facts(m, self._keeper)
            card.set_keep(keep)
        else:
            card = CopyCard(m, self._keeper, self._thumbs, keep)
            card.keep_changed.connect(self.keep_changed)
            card.activated.connect(lambda c: self.set_current(self.cards.index(c)))
        self._host.layout().insertWidget(len(self.cards), card)
        card.show()  # a child laid out into a host already on screen is otherwise shown a cycle later
        self.cards.append(card)

    def _schedule(self) -> None:
        if self._pending and not self._scheduled:  # one chain of turns, however many updates come
            self._scheduled = True
            QTimer.singleShot(0, self, self._build_pending)

    def _build_pending(self) -> None:
        self._scheduled = False
        if self._pending:
            self._place(*self._pending.pop(0))
        self._schedule()

    def set_current(self, i: int) -> None:
        if not self.cards:
            return
        self.current = max(0, min(i, len(self.cards) - 1))
        for j, c in enumerate(self.cards):
            c.set_current(j == self.current)
        self.ensureWidgetVisible(self.cards[self.current])

    def update_keep(self, path: str, keep: bool) -> None:
        for c in self.cards:
            if c.path == path:
                c.set_keep(keep)
        self.set_current(self.current)

    def keyPressEvent(self, event):
        key = event.key()
        if not self.cards:
            return super().keyPressEvent(event)
        card = self.cards[self.current]
        if key in (Qt.Key.Key_Right, Qt.Key.Key_Down):
            self.set_current(self.current + 1)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Up):
            self.set_current(self.current - 1)
        elif key == Qt.Key.Key_K:
            self.keep_changed.emit(card.path, True)
        elif key in (Qt.Key.Key_T, Qt.Key.Key_Delete):
            self.keep_changed.emit(card.path, False)
        elif key == Qt.Key.Key_Space and len(self.cards) > 1:
            other = self.cards[0] if self.current != 0 else self.cards[1]
            self.compare_requested.emit(other.path, card.path)
        else:
            return super().keyPressEvent(event)
        event.accept()

    def _thumb_ready(self, path, side):
        if side == CARD_SIDE:
            for c in self.cards:
                if c.path == path:
                    c.refresh_image()
