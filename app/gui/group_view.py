"""The selected group's copies side by side: large thumbnails, facts, differences, Keep/Trash."""
from __future__ import annotations

import os
import time
from typing import Optional

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QFrame, QGridLayout, QHBoxLayout, QLabel, QMenu,
                               QPushButton, QScrollArea, QSizePolicy, QVBoxLayout, QWidget)

from app.gui.group_model import human_size
from app.gui.reveal import show_in_folder

CARD_SIDE = 280
# A group with more copies than fit in a row at full size is shown as a grid of tiles, each side
# as large as lets the whole group fit the panel, but no smaller than this (then it scrolls):
# below it, a tile's two buttons no longer fit under the picture.
TILE_MIN = 96
# px around a card's contents and around the panel's cards: three full cards fit the panel of the
# default 1280 px window
CARD_MARGIN, PANEL_MARGIN = 8, 4
CARDS_AT_ONCE = 3  # new cards built at once; the rest follow, one per turn of the event loop
KEEP_COLOUR, TRASH_COLOUR, CURRENT_TINT = "#2e7d32", "#c0392b", "#eef4ff"
DIFFERS_COLOUR = "#b34700"
LINE_GAP = 2  # px between two facts
FACTS = ("Resolution", "File size", "Format", "Date taken", "Modified", "Folder", "Similarity")


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
    chosen_changed = Signal()  # its Compare box was ticked or cleared
    apart_requested = Signal(str)  # "not a copy"
    compare_with_keeper = Signal(str)

    def __init__(self, member, keeper, thumbs, keep: bool, parent=None):
        super().__init__(parent)
        self.path = member.row.path
        self.current = False  # the card the keyboard acts on
        self.keep = keep
        self._painted = None  # the look last painted
        self.setFrameShape(QFrame.Shape.NoFrame)  # paintEvent draws the frame
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # the grid's spare room stays empty
        self._thumbs = thumbs
        self.side = CARD_SIDE  # the picture's side: smaller in a grid of many copies
        lay = QVBoxLayout(self)
        lay.setContentsMargins(CARD_MARGIN, CARD_MARGIN, CARD_MARGIN, CARD_MARGIN)
        self.badge = QLabel()
        self.badge_row = QHBoxLayout()
        self.badge_row.setContentsMargins(0, 0, 0, 0)
        self.badge_row.addWidget(self.badge, 1)
        lay.addLayout(self.badge_row)
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
        name = self.name = QLabel(os.path.basename(r.path))
        name.setToolTip(r.path)
        lay.addWidget(name)
        self.brief_label = QLabel()  # resolution and size, in a tile (a card shows its facts)
        self.brief_label.hide()
        lay.addWidget(self.brief_label)
        row = QHBoxLayout()
        self.keep_btn = QPushButton("Keep")
        self.trash_btn = QPushButton("Trash")
        self.keep_btn.setToolTip("Keep this copy (K)")
        self.trash_btn.setToolTip("Move this copy to the trash (T or Delete)")
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
        more = self.more = QWidget()
        more_row = QHBoxLayout(more)
        more_row.setContentsMargins(0, 0, 0, 0)
        self.choose_box = QCheckBox("Compare")
        self.choose_box.setToolTip("Tick two copies, then Compare chosen (C)")
        self.choose_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.choose_box.toggled.connect(self.chosen_changed)
        folder_btn = QPushButton("Show in folder")
        folder_btn.setToolTip("Open the folder with this file selected")
        apart_btn = QPushButton("Not a copy")
        apart_btn.setToolTip("This photo is not a copy of the others: never group it with them again")
        for w in (self.choose_box, folder_btn, apart_btn):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            more_row.addWidget(w)
        self.more_buttons = (folder_btn, apart_btn)
        folder_btn.clicked.connect(lambda: show_in_folder(self.path))
        apart_btn.clicked.connect(lambda: self.apart_requested.emit(self.path))
        lay.addWidget(more)
        self.set_keep(keep)
        self.refresh_image()

    @property
    def chosen(self) -> bool:
        return self.choose_box.isChecked()

    def set_side(self, side: int) -> None:
        """The picture at ``side`` px: CARD_SIDE with the facts and every button, smaller as a
        grid tile (the picture, its name and Keep/Trash; the rest is on the right-click menu)."""
        if side == self.side:
            return
        self.side = side
        full = side >= CARD_SIDE
        self.image.setFixedSize(side, side)
        self.facts.setVisible(full)
        self.brief_label.setVisible(not full)
        for b in self.more_buttons:  # on the right-click menu in a tile
            b.setVisible(full)
        # the Compare box: beside Show in folder on a card, before the badge (no label) in a tile
        self.choose_box.setText("Compare" if full else "")
        (self.more.layout() if full else self.badge_row).insertWidget(0, self.choose_box)
        self.more.setVisible(full)
        if full:
            self.setMinimumWidth(0)
            self.setMaximumWidth(16777215)
        else:  # the buttons shrink to the tile rather than widen it
            m = self.layout().contentsMargins()
            self.setFixedWidth(side + m.left() + m.right())
            for b in (self.keep_btn, self.trash_btn):
                b.setMinimumWidth(1)
        self._fit_texts()
        self.refresh_image()

    def _fit_texts(self) -> None:
        """The badge and the file name on one line each, shortened in the middle to the picture's
        width in a tile (the tooltips have them whole)."""
        metrics = QFontMetrics(self.name.font())
        name = os.path.basename(self.path)
        full = self.side >= CARD_SIDE
        self.name.setText(name if full else metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, self.side))
        badge = self.badge.toolTip()
        room = self.side - (0 if full else self.choose_box.sizeHint().width() + 4)
        self.badge.setText(badge if full else metrics.elidedText(badge, Qt.TextElideMode.ElideRight, room))
        self.brief_label.setText(metrics.elidedText(self.brief, Qt.TextElideMode.ElideRight, self.side))

    def contextMenuEvent(self, event) -> None:
        self.menu = self.context_menu()
        self.menu.popup(event.globalPos())

    def context_menu(self) -> QMenu:
        """What a right click offers (in a tile, the buttons a card shows under its facts)."""
        menu = QMenu(self)
        menu.addAction("Compare with the keeper", lambda: self.compare_with_keeper.emit(self.path))
        menu.addAction("Untick Compare" if self.chosen else "Tick Compare",
                       lambda: self.choose_box.setChecked(not self.chosen))
        menu.addAction("Show in folder", lambda: show_in_folder(self.path))
        menu.addAction("Not a copy of the others", lambda: self.apart_requested.emit(self.path))
        return menu

    def show_facts(self, member, keeper) -> None:
        """The badge and the facts of ``member`` (this card's copy), marked where they differ
        from ``keeper``'s; called again when a scan's update brings another keeper."""
        self.member, self.keeper, self.shown = member, keeper, self.facts_of(member, keeper)
        self.badge.setToolTip(f"★ Keep: {member.reason}" if member is keeper else (member.reason or " "))
        self.badge.setText(self.badge.toolTip())
        self.badge.setObjectName("keeperBadge" if member is keeper else "badge")
        if self.side < CARD_SIDE:
            self._fit_texts()
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
        self.brief = f"{r.width} × {r.height} · {human_size(r.size)}"  # a tile's one line of facts
        self.image.setToolTip(f"{r.path}\n\n{self.facts.text()}")

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
            elif self.side >= CARD_SIDE:
                self.image.setPixmap(QPixmap.fromImage(img))
            else:
                self.image.setPixmap(QPixmap.fromImage(img.scaled(
                    self.side, self.side, Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation)))

    def mousePressEvent(self, event):
        self.activated.emit(self)
        super().mousePressEvent(event)


class GroupView(QScrollArea):
    """Cards of one group; keyboard: ←/→ move, K keep, T/Delete trash, Space compare with the
    keeper, C compare the two chosen. A group with more copies than fit in a row is a grid of
    tiles sized to fit the panel (``tile_side``)."""

    keep_changed = Signal(str, bool)
    compare_requested = Signal(str, str)
    apart_requested = Signal(str)  # a copy is not a copy of the rest
    chosen_changed = Signal(int)  # how many copies are ticked for Compare

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
        self.side = CARD_SIDE
        self.columns = 1
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
            grid = QGridLayout(host)
            grid.setContentsMargins(PANEL_MARGIN, PANEL_MARGIN, PANEL_MARGIN, PANEL_MARGIN)
            grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            host.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
            self._host = host
        for c in self.cards:
            self._host.layout().removeWidget(c)
        self.cards, self._shown, self._keeper, self._keep = [], paths, keeper, keep
        self.side, self.columns = self.tile_side(len(paths))
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
            card.apart_requested.connect(self.apart_requested)
            card.chosen_changed.connect(lambda: self.chosen_changed.emit(len(self.chosen())))
            card.compare_with_keeper.connect(self._compare_with_keeper)
        card.set_side(self.side)
        n = len(self.cards)
        self._host.layout().addWidget(card, n // self.columns, n % self.columns)
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

    def tile_side(self, n: int) -> tuple[int, int]:
        """(picture side, columns) for ``n`` copies in this panel: full cards in one row when
        they fit it; else the largest tiles that let all ``n`` fit the panel, down to TILE_MIN."""
        extra_w, chrome = self._tile_extra()
        width = max(self.viewport().width() - 2 * PANEL_MARGIN, 1)
        height = max(self.viewport().height() - 2 * PANEL_MARGIN, 1)
        if n * (CARD_SIDE + extra_w) <= width:
            return CARD_SIDE, max(n, 1)
        for side in range(CARD_SIDE - 20, TILE_MIN - 1, -4):
            cols = max(1, width // (side + extra_w))
            rows = -(-n // cols)
            if rows * (side + chrome) <= height:
                return side, cols
        return TILE_MIN, max(1, width // (TILE_MIN + extra_w))

    def _tile_extra(self) -> tuple[int, int]:
        """(px a tile is wider than its picture, with the grid's spacing; px a tile is taller than
        its picture): from the style's metrics."""
        if getattr(self, "_extra", None) is None:
            holder, frame = QWidget(), QFrame()
            grid, card = QGridLayout(holder), QVBoxLayout(frame)  # a layout has the style's spacing once it has a widget
            spacing = max(grid.horizontalSpacing(), 0)
            button = QPushButton("Keep").sizeHint().height()
            line = self.fontMetrics().lineSpacing()
            check = QCheckBox().sizeHint().height()  # on the badge's line
            chrome = (2 * CARD_MARGIN + max(line, check) + 2 * line + button + 4 * max(card.spacing(), 0)
                      + max(grid.verticalSpacing(), 0))
            self._extra = (2 * CARD_MARGIN + spacing, chrome)
        return self._extra

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.cards and self.tile_side(len(self._shown)) != (self.side, self.columns):
            self._relayout()

    def _relayout(self) -> None:
        self.side, self.columns = self.tile_side(len(self._shown))
        grid = self._host.layout()
        for c in self.cards:
            grid.removeWidget(c)
        for n, c in enumerate(self.cards):
            c.set_side(self.side)
            grid.addWidget(c, n // self.columns, n % self.columns)

    def chosen(self) -> list[CopyCard]:
        return [c for c in self.cards if c.chosen]

    def compare_chosen(self) -> None:
        """Compare the two ticked copies; one ticked: it with the keeper; none: the current one
        with the keeper."""
        chosen = self.chosen()
        if len(chosen) >= 2:
            self.compare_requested.emit(chosen[0].path, chosen[1].path)
        elif self.cards:
            self._compare_with_keeper(chosen[0].path if chosen else self.cards[self.current].path)

    def _compare_with_keeper(self, path: str) -> None:
        keeper = self._keeper.row.path if self._keeper is not None else None
        if keeper is None or keeper == path:
            other = next((c.path for c in self.cards if c.path != path), None)
            if other is None:
                return
            self.compare_requested.emit(path, other)
        else:
            self.compare_requested.emit(keeper, path)

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
            self._compare_with_keeper(card.path)
        elif key == Qt.Key.Key_C:
            self.compare_chosen()
        else:
            return super().keyPressEvent(event)
        event.accept()

    def _thumb_ready(self, path, side):
        if side == CARD_SIDE:
            for c in self.cards:
                if c.path == path:
                    c.refresh_image()
