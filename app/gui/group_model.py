"""List model of duplicate groups: rows are group indices; text and icons are made on demand."""
from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSize, Qt
from PySide6.QtGui import QPixmap

from app.core.trash import GroupDecision, ScannedFile

THUMB_SIDE = 64


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class GroupListModel(QAbstractListModel):
    GroupRole = Qt.ItemDataRole.UserRole + 1
    KindRole = Qt.ItemDataRole.UserRole + 2
    ReclaimRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, thumbnails, parent=None):
        super().__init__(parent)
        self._thumbs = thumbnails
        self._groups = []
        self.keep: dict[str, bool] = {}  # path -> keep? (suggestion, or the user's choice)
        self.user_keep: dict[str, bool] = {}  # choices the user made; they survive regrouping
        self._row_of_path: dict[str, int] = {}
        thumbnails.ready.connect(self._thumb_ready)

    # -- data in --------------------------------------------------------------
    def set_groups(self, groups) -> None:
        self.beginResetModel()
        self._groups = list(groups)
        self.keep = {m.row.path: self.user_keep.get(m.row.path, m.keep) for g in self._groups for m in g.members}
        self._row_of_path = {m.row.path: i for i, g in enumerate(self._groups) for m in g.members}
        self.endResetModel()

    def group(self, row: int):
        return self._groups[row]

    def row_of(self, path: str) -> int:
        return self._row_of_path.get(path, -1)

    def set_keep(self, path: str, keep: bool) -> None:
        self.user_keep[path] = keep
        if self.keep.get(path) == keep:
            return
        self.keep[path] = keep
        row = self._row_of_path.get(path)
        if row is not None:
            i = self.index(row)
            self.dataChanged.emit(i, i, [Qt.ItemDataRole.DisplayRole, self.ReclaimRole])

    def refresh_keep(self, row: int) -> None:
        """Take group ``row``'s suggestions again (ranking.look_at changed them), the user's own
        choices aside."""
        for m in self._groups[row].members:
            self.keep[m.row.path] = self.user_keep.get(m.row.path, m.keep)
        i = self.index(row)
        self.dataChanged.emit(i, i, [Qt.ItemDataRole.DisplayRole, self.ReclaimRole])

    # -- summaries ------------------------------------------------------------
    def to_trash(self) -> list:
        return [m for g in self._groups for m in g.members if not self.keep.get(m.row.path, True)]

    def decisions(self) -> list[GroupDecision]:
        out = []
        for g in self._groups:
            trash = {m.row.path for m in g.members if not self.keep.get(m.row.path, True)}
            if trash:
                out.append(GroupDecision([ScannedFile(m.row.path, m.row.size, m.row.mtime_ns, m.row.sha256)
                                          for m in g.members], trash))
        return out

    def reclaim(self, row: int) -> int:
        return sum(m.row.size for m in self._groups[row].members if not self.keep.get(m.row.path, True))

    # -- Qt model API -----------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._groups)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._groups):
            return None
        g = self._groups[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            if g.needs_look:
                return f"{len(g.members)} copies · {g.kind}\nopen it to choose"
            return (f"{len(g.members)} copies · {g.kind}\n"
                    f"{human_size(self.reclaim(index.row()))} to reclaim")
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(m.row.path for m in g.members)
        if role == Qt.ItemDataRole.DecorationRole:
            keeper = next((m for m in g.members if m.keep), g.members[0])
            img = self._thumbs.get(keeper.row.path, THUMB_SIDE)
            if img is None or img.isNull():
                pm = QPixmap(THUMB_SIDE, THUMB_SIDE)
                pm.fill(Qt.GlobalColor.lightGray)
                return pm
            return QPixmap.fromImage(img)
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(220, THUMB_SIDE + 8)
        if role == self.GroupRole:
            return index.row()
        if role == self.KindRole:
            return g.kind
        if role == self.ReclaimRole:
            return self.reclaim(index.row())
        return None

    def _thumb_ready(self, path: str, side: int) -> None:
        if side != THUMB_SIDE:
            return
        row = self._row_of_path.get(path)
        if row is not None:
            i = self.index(row)
            self.dataChanged.emit(i, i, [Qt.ItemDataRole.DecorationRole])
