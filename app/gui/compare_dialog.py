"""Full-size compare of two copies with synchronised zoom and pan."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QDialog, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QHBoxLayout, QLabel, QVBoxLayout

from app.gui.thumbnails import ThumbnailCache

COMPARE_SIDE = 4096


class SyncedView(QGraphicsView):
    """One side of the compare: the photo at up to COMPARE_SIDE px, decoded in the thumbnail
    workers (a full-size PNG took 0.4-0.5 s to decode, which held the window when it was decoded
    here); "loading…" until it arrives."""

    def __init__(self, path: str, thumbs: ThumbnailCache):
        super().__init__()
        self.path = path
        self.loaded = False
        self.scene_ = QGraphicsScene(self)
        self.setScene(self.scene_)
        self.note = self.scene_.addText("loading…")
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene_.addItem(self.item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.partner: "SyncedView | None" = None
        self._syncing = False
        self.horizontalScrollBar().valueChanged.connect(self._sync_scroll)
        self.verticalScrollBar().valueChanged.connect(self._sync_scroll)
        thumbs.fetched.connect(self._fetched)
        thumbs.fetch(path, COMPARE_SIDE)

    def _fetched(self, path: str, side: int, img) -> None:
        if path != self.path or side != COMPARE_SIDE or self.loaded:
            return
        self.loaded = True
        if img.isNull():
            self.note.setPlainText("cannot show this image")
            return
        self.scene_.removeItem(self.note)
        self.item.setPixmap(QPixmap.fromImage(img))
        self.scene_.setSceneRect(self.item.boundingRect())
        self.fit()

    def fit(self):
        if not self.item.pixmap().isNull():  # a note ("loading…") stays at its own size
            self.fitInView(self.scene_.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float, from_partner: bool = False):
        self.scale(factor, factor)
        if self.partner and not from_partner:
            self.partner.zoom(factor, True)

    def wheelEvent(self, event):
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def _sync_scroll(self):
        if self.partner is None or self._syncing:
            return
        self.partner._syncing = True
        for mine, theirs in ((self.horizontalScrollBar(), self.partner.horizontalScrollBar()),
                             (self.verticalScrollBar(), self.partner.verticalScrollBar())):
            span = max(mine.maximum() - mine.minimum(), 1)
            frac = (mine.value() - mine.minimum()) / span
            theirs.setValue(int(theirs.minimum() + frac * (theirs.maximum() - theirs.minimum())))
        self.partner._syncing = False


class CompareDialog(QDialog):
    def __init__(self, left: str, right: str, thumbs: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Compare — Doppel")
        self.resize(1200, 700)
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.views = [SyncedView(left, thumbs), SyncedView(right, thumbs)]
        self.views[0].partner, self.views[1].partner = self.views[1], self.views[0]
        for path, v in zip((left, right), self.views):
            col = QVBoxLayout()
            cap = QLabel(os.path.basename(path))
            cap.setToolTip(path)
            col.addWidget(cap)
            col.addWidget(v)
            row.addLayout(col)
        lay.addLayout(row)
        lay.addWidget(QLabel("Mouse wheel zooms both sides; drag to pan both. Esc closes."))

    def showEvent(self, event):
        super().showEvent(event)
        for v in self.views:
            v.fit()
