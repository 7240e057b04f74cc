"""Doppel's main window: folders, scan progress, the group list and the side-by-side review."""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
from pathlib import Path

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QListView, QListWidget,
                               QListWidgetItem, QMainWindow, QMessageBox, QProgressBar, QProgressDialog,
                               QPushButton, QSlider, QSplitter, QStackedWidget, QToolBar, QVBoxLayout,
                               QWidget)

from app import APP_NAME, paths
from app.core import decisions, ranking
from app.core.decisions import Decisions
from app.core.trash import Journal, restore_entries
from app.core.progress import ProgressUpdate, format_eta
from app.gui.compare_dialog import CompareDialog
from app.gui.group_model import THUMB_SIDE, GroupListModel, human_size
from app.gui.group_view import GroupView
from app.gui.decisions_dialog import DecisionsDialog
from app.gui.find_dialog import FindDialog
from app.gui.library_dialog import LibraryDialog
from app.gui.journal_dialog import JournalDialog
from app.gui.thumbnails import ThumbnailCache
from app.gui.welcome import NO_COPIES, NO_FOLDERS, READY, SCANNING, WelcomePanel
from app.gui.workers import FindWorker, RegroupWorker, ScanWorker, TrashWorker, retire, start_in_thread
from app.settings import KEEPER_RULES, Settings

def resource(name: str) -> Path:
    """A file of the package data app.resources (the repository's resources/ folder)."""
    from importlib.resources import files

    return Path(str(files("app.resources") / name))


def app_icon() -> QIcon:
    icon = resource("doppel.svg")
    return QIcon(str(icon)) if icon.is_file() else QIcon()


class MainWindow(QMainWindow):
    scan_finished = Signal(object)  # ScanResult, after the window has shown it
    trash_finished = Signal(object)  # TrashOutcome
    found = Signal(object)  # find.FindResult, after the window has shown it
    scan_cancelled = Signal(str)  # a scan stopped before it began (a cancelled download)

    def __init__(self, settings: Settings | None = None, settings_path: Path | None = None):
        super().__init__()
        self.settings_path = settings_path
        self.settings = settings or Settings.load(settings_path)
        self.result = None
        self.scan_worker = None
        self.scan_thread = None
        self.scanning = False  # from Scan until the scan's result, failure or cancel arrives
        self.trash_thread = None
        self.trash_worker = None
        self.regroup_thread = None
        self.regroup_worker = None
        self._regroup_wanted = 0  # bumped by every regroup(): only the latest one's groups are shown
        self.problem_box = None
        self.partial_updates = 0  # "groups so far" updates shown during scans
        self._busy_text = ""  # what an uncounted step is doing
        self.compare_dialog = None
        self.journal_dialog = None
        self.decisions_dialog = None
        self.find_dialog = None
        self.library_dialog = None
        self.find_thread = None
        self.find_worker = None
        self.undo_stack: list = []  # (label, action): the last trash actions and "not duplicates" marks
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self.thumbs = ThumbnailCache(self)
        self.model = GroupListModel(self.thumbs, self)
        self._build()
        for f in self.settings.folders:
            self._add_folder_item(f)
        self._update_trash_button()
        self._update_welcome()

    # -- layout -------------------------------------------------------------------
    def _build(self):
        tb = QToolBar("Main")
        tb.setMovable(False)
        self.addToolBar(tb)
        self.add_action = QAction("Add folder…", self, triggered=self.choose_folder)
        self.remove_action = QAction("Remove folder", self, triggered=self.remove_selected_folder)
        self.prefer_action = QAction("Prefer folder", self, triggered=self.prefer_selected_folder)
        self.prefer_action.setToolTip("Copies in the selected folder are kept first when Keep: preferred folder")
        self.scan_action = QAction("Scan", self, triggered=self.start_scan, shortcut=QKeySequence("Ctrl+R"))
        self.journal_action = QAction("Trash journal…", self, triggered=self.show_journal)
        self.undo_action = QAction("Undo", self, triggered=self.undo, shortcut=QKeySequence.StandardKey.Undo)
        self.undo_action.setEnabled(False)
        self.find_action = QAction("Find copies of a photo…", self, triggered=self.choose_photo_to_find,
                                   shortcut=QKeySequence.StandardKey.Find)
        self.find_action.setToolTip("Pick any photo, in the library or not, to see its copies in the library "
                                    "(or drop a photo on the window)")
        self.decisions_action = QAction("Not duplicates…", self, triggered=self.show_decisions)
        self.decisions_action.setToolTip("Photos you marked as not duplicates; undo a mark there")
        for a in (self.add_action, self.remove_action, self.prefer_action, self.scan_action):
            tb.addAction(a)
        tb.addSeparator()
        tb.addWidget(QLabel(" Similarity: looser "))
        self.similarity = QSlider(Qt.Orientation.Horizontal)
        self.similarity.setRange(0, 100)
        self.similarity.setValue(int(round(self.settings.similarity * 100)))
        self.similarity.setFixedWidth(140)
        self.similarity.setToolTip("Stricter finds fewer, surer groups; regroups without rescanning")
        # Regroup when the handle is released, not at every step of a drag: linking 5,000 photos
        # takes seconds, and each step would queue another run.
        self.similarity.setTracking(False)
        self.similarity.valueChanged.connect(self.regroup)
        tb.addWidget(self.similarity)
        tb.addWidget(QLabel(" stricter   Keep: "))
        self.keeper_rule = QComboBox()
        labels = {"original": "the original", "highest-resolution": "highest resolution",
                  "largest-file": "largest file", "oldest": "oldest", "newest": "newest",
                  "preferred-folder": "preferred folder"}
        for r in KEEPER_RULES:
            self.keeper_rule.addItem(labels[r], r)
        self.keeper_rule.setCurrentIndex(max(0, self.keeper_rule.findData(self.settings.keeper_rule)))
        self.keeper_rule.currentIndexChanged.connect(self.regroup)
        tb.addWidget(self.keeper_rule)
        # What is preselected for the trash: copies at no loss only, unless these say more
        def option(label: str, tip: str, checked: bool) -> QCheckBox:
            box = QCheckBox(label)
            box.setToolTip(tip)
            box.setChecked(checked)
            box.toggled.connect(self.regroup)
            tb.addWidget(box)
            return box

        self.select_edited = option("Also select edits", "Also select edited copies: preselect crops, turned, "
                                    "mirrored, grayscale, framed, watermarked and tone-edited copies for the trash "
                                    "as well", self.settings.select_edited)
        self.trash_jpeg_with_raw = option("Trash JPEGs with a RAW", "Trash JPEGs that have a RAW: in a RAW + JPEG "
                                          "pair, preselect the JPEG (the RAW is always kept)",
                                          self.settings.trash_jpeg_with_raw)
        tb.addSeparator()
        tb.addAction(self.undo_action)
        # the menus hold every action, the toolbar the frequent ones (it fits a 1280 px window)
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for a in (self.add_action, self.remove_action, self.prefer_action, self.scan_action, self.find_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(QAction("&Quit", self, triggered=self.close, shortcut=QKeySequence.StandardKey.Quit))
        menus.addMenu("&Edit").addAction(self.undo_action)
        library_menu = menus.addMenu("&Library")
        library_menu.addAction(self.journal_action)
        library_menu.addAction(self.decisions_action)
        library_menu.addSeparator()
        self.library_action = QAction("Library location…", self, triggered=self.choose_library)
        self.library_action.setToolTip("A library file, or a Milvus server (URI, token, database)")
        library_menu.addAction(self.library_action)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(QLabel("<b>Photo folders</b> (tick = reference: never trashed)"))
        self.folders = QListWidget()
        self.folders.setMaximumHeight(160)
        self.folders.itemChanged.connect(self._folders_changed)
        ll.addWidget(self.folders)
        ll.addWidget(QLabel("<b>Duplicate groups</b>"))
        self.groups = QListView()
        self.groups.setModel(self.model)
        self.groups.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
        # every row is the same size (GroupModel's SizeHintRole): a reset by a groups-so-far
        # update then lays out one row, not all of them
        self.groups.setUniformItemSizes(True)
        self.groups.selectionModel().currentChanged.connect(self._group_selected)
        ll.addWidget(self.groups)

        right = QWidget()
        rl = QVBoxLayout(right)
        prog = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_label = QLabel("")
        self.progress_label.setMinimumWidth(400)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_scan)
        prog.addWidget(self.progress_bar, 1)
        prog.addWidget(self.cancel_button)
        rl.addLayout(prog)
        rl.addWidget(self.progress_label)
        self.notice_label = QLabel("")
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet("color: #8a5a00")
        self.notice_label.hide()
        rl.addWidget(self.notice_label)
        self.view = GroupView(self.thumbs)
        self.view.keep_changed.connect(self.set_keep)
        self.view.compare_requested.connect(self.compare)
        self.view.apart_requested.connect(self.mark_apart)
        self.welcome = WelcomePanel()
        self.welcome.add_requested.connect(self.choose_folder)
        self.welcome.scan_requested.connect(self.start_scan)
        self.review_stack = QStackedWidget()  # the welcome panel until there is a group to review
        self.review_stack.addWidget(self.welcome)
        self.review_stack.addWidget(self.view)
        rl.addWidget(self.review_stack, 1)
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
        self.apart_button.clicked.connect(lambda: self.mark_apart(None))
        self.apart_button.setEnabled(False)
        bottom.addWidget(self.apart_button)
        self.trash_button = QPushButton()
        self.trash_button.clicked.connect(self.confirm_trash)
        bottom.addWidget(self.trash_button)
        rl.addLayout(bottom)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([300, 980])
        self.setCentralWidget(split)
        self.statusBar().showMessage("Ready")

    # -- folders --------------------------------------------------------------------
    def _add_folder_item(self, folder: str):
        folder = os.path.abspath(folder)
        if any(self.folders.item(i).data(Qt.ItemDataRole.UserRole) == folder for i in range(self.folders.count())):
            return
        item = QListWidgetItem(self._folder_label(folder))
        item.setData(Qt.ItemDataRole.UserRole, folder)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        self.folders.blockSignals(True)
        item.setCheckState(Qt.CheckState.Checked if folder in self.settings.reference_folders else Qt.CheckState.Unchecked)
        self.folders.addItem(item)
        self.folders.blockSignals(False)

    def _update_welcome(self) -> None:
        """The review area shows the groups when there are some, else the next step to take."""
        if self.model.rowCount():
            self.review_stack.setCurrentWidget(self.view)
            return
        if self.scanning:
            self.welcome.show_state(SCANNING)
        elif self.result is not None:
            self.welcome.show_state(NO_COPIES, files=self.result.stats.files)
        else:
            self.welcome.show_state(READY if self.folders.count() else NO_FOLDERS, folders=self.folders.count())
        self.review_stack.setCurrentWidget(self.welcome)

    def _folder_label(self, folder: str) -> str:
        return folder + ("  ★ preferred" if folder == self.settings.preferred_folder else "")

    def prefer_selected_folder(self):
        items = self.folders.selectedItems()
        if not items:
            return
        self.settings.preferred_folder = items[0].data(Qt.ItemDataRole.UserRole)
        for i in range(self.folders.count()):
            it = self.folders.item(i)
            self.folders.blockSignals(True)
            it.setText(self._folder_label(it.data(Qt.ItemDataRole.UserRole)))
            self.folders.blockSignals(False)
        self.keeper_rule.setCurrentIndex(self.keeper_rule.findData("preferred-folder"))
        self._save_settings()
        self.regroup()

    def add_folders(self, folders):
        for f in folders:
            if os.path.isdir(f):
                self._add_folder_item(f)
        self._folders_changed()

    def folder_list(self) -> list[str]:
        return [self.folders.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.folders.count())]

    def _folders_changed(self, *_):
        self.settings.folders = self.folder_list()
        self.settings.reference_folders = [self.folders.item(i).data(Qt.ItemDataRole.UserRole)
                                           for i in range(self.folders.count())
                                           if self.folders.item(i).checkState() == Qt.CheckState.Checked]
        self._save_settings()
        self._update_welcome()

    def choose_folder(self):
        d = QFileDialog.getExistingDirectory(self, "Add a photo folder", os.path.expanduser("~"))
        if d:
            self.add_folders([d])

    def remove_selected_folder(self):
        for item in self.folders.selectedItems():
            self.folders.takeItem(self.folders.row(item))
        self._folders_changed()

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        dropped = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        self.add_folders([p for p in dropped if os.path.isdir(p)])
        photos = [p for p in dropped if os.path.isfile(p)]
        if photos:  # a photo dropped: its copies in the library
            self.find_copies(photos[0])

    def choose_library(self):
        self.library_dialog = dlg = LibraryDialog(self.settings, self)
        dlg.accepted.connect(self._library_chosen)
        dlg.open()

    def _library_chosen(self):
        self._save_settings()
        self.statusBar().showMessage(f"Library: {self.settings.library_location()} (used from the next scan)", 8000)

    # -- find copies of one photo ------------------------------------------------------
    def choose_photo_to_find(self):
        path, _ = QFileDialog.getOpenFileName(self, "Find copies of a photo", os.path.expanduser("~"))
        if path:
            self.find_copies(path)

    def find_copies(self, photo: str) -> None:
        """Look for ``photo``'s copies in the library (Milvus search, then verification), in a
        process of its own; the copies are shown in a dialog."""
        if self.scan_thread is not None or self.find_thread is not None:
            self.statusBar().showMessage("Wait for the scan to finish, then look for copies", 8000)
            return
        self.find_worker = worker = FindWorker(photo, self.settings)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_found)
        worker.failed.connect(lambda message: self.show_problems("Could not look for copies.", [message]))
        self.scan_action.setEnabled(False)
        self.find_action.setEnabled(False)
        self.progress_label.setText(f"Looking for copies of {os.path.basename(photo)}…")
        self.find_thread = start_in_thread(worker)
        self.find_thread.finished.connect(self._find_thread_done)
        self.thumbs.start()

    def _on_found(self, result):
        if result.problem:
            self.show_problems("Could not read the photo.", [f"{result.photo}: {result.problem}"])
            return
        self.progress_label.setText(f"{len(result.copies)} copies of {os.path.basename(result.photo)} found.")
        self.find_dialog = FindDialog(result, self.thumbs, self)
        self.find_dialog.compare_requested.connect(self.compare)
        self.find_dialog.open()
        self.found.emit(result)

    def _find_thread_done(self):
        retire(self.find_thread)
        self.find_thread = None
        self.find_worker = None
        self.scan_action.setEnabled(True)
        self.find_action.setEnabled(True)

    def _save_settings(self):
        try:
            self.settings.save(self.settings_path)
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save settings: {exc}")

    # -- scan -------------------------------------------------------------------------
    def start_scan(self):
        if self.scan_thread is not None or self.find_thread is not None:  # one process holds the library
            return
        folders = self.folder_list()
        if not folders:
            QMessageBox.information(self, APP_NAME, "Add at least one photo folder first.")
            return
        self.scan_worker = ScanWorker(folders, self.settings)
        self._scan_grouping = self._grouping_settings()
        self.scan_worker.progress.connect(self._on_progress)
        self.scan_worker.partial.connect(self._on_partial)
        self.scan_worker.notice.connect(self._on_notice)
        self.scan_worker.finished.connect(self._on_scan_finished)
        self.scan_worker.failed.connect(self._on_scan_failed)
        self.scan_worker.cancelled.connect(self._on_scan_cancelled)
        self.scan_action.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_label.setText("Starting…")
        self.scan_thread = start_in_thread(self.scan_worker)
        self.scanning = True
        self._update_welcome()
        self.scan_thread.finished.connect(self._scan_thread_done)
        self.thumbs.start()

    def cancel_scan(self):
        if self.scan_worker is not None:
            self.scan_worker.cancel()
            self.progress_label.setText("Stopping after the current batch; what was read is kept…")

    def _on_progress(self, u: ProgressUpdate):
        if u.stage == "download weights":
            self._download_dialog(u)
            return
        left = f" · about {format_eta(u.left)} left in the scan" if u.left is not None else ""
        if u.total > 0:
            self.progress_bar.setRange(0, u.total)
            self.progress_bar.setValue(u.done)
            self.progress_label.setText(f"{STAGE_NAMES.get(u.stage, u.stage)}: {u.done} / {u.total} · "
                                        f"{u.rate:.1f}/s · {format_eta(u.eta)} left in this step{left} · "
                                        f"{os.path.basename(u.current)}")
        else:
            self.progress_bar.setRange(0, 0)
            if u.message:
                self._busy_text = u.message
            self.progress_label.setText(self._busy_text + left)

    def _download_dialog(self, u: ProgressUpdate):
        dlg = getattr(self, "_dl", None)
        if dlg is None:
            dlg = self._dl = QProgressDialog("Downloading the ResNet-50 model weights…", "Cancel", 0, 100, self)
            dlg.setWindowTitle(APP_NAME)
            dlg.canceled.connect(self.cancel_scan)
        dlg.setMaximum(max(1, u.total))
        dlg.setValue(min(u.done, max(1, u.total)))
        if u.total and u.done >= u.total:
            self._close_download_dialog()

    def _on_partial(self, groups):
        """Groups among the files read so far: reviewable while the scan goes on."""
        if self.scan_worker is None:
            return
        self.partial_updates += 1
        self._show_groups(groups)
        self.statusBar().showMessage(f"{len(groups)} groups so far — you can review them while the scan goes on")

    def _show_groups(self, groups):
        """Replace the group list, keeping the group the user is looking at selected."""
        current = self.groups.currentIndex()
        anchor = self.model.group(current.row()).members[0].row.path if current.isValid() else None
        self.model.set_groups(groups)
        row = self.model.row_of(anchor) if anchor else -1
        if row < 0 and self.model.rowCount():
            row = 0
        if row >= 0:
            self.groups.setCurrentIndex(self.model.index(row))  # the reset cleared it: this emits
        else:
            self.view.show_group(None, {})
            self.apart_button.setEnabled(False)
        self._update_trash_button()
        self._update_welcome()

    def _on_notice(self, text: str):
        self.notice_label.setText(text)
        self.notice_label.show()

    def _on_scan_cancelled(self, message: str):
        """Cancelled before the scan began (the weights download): said, not an error."""
        self.scanning = False
        self._update_welcome()
        self._close_download_dialog()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_label.setText(message)
        self.scan_cancelled.emit(message)

    def _close_download_dialog(self):
        dlg = getattr(self, "_dl", None)
        if dlg is not None:
            dlg.close()
            self._dl = None

    def _on_scan_failed(self, message: str):
        self.scanning = False
        self._update_welcome()
        self._close_download_dialog()
        self.progress_label.setText("Scan failed.")
        self.show_problems("The scan could not run.", [message])

    def _on_scan_finished(self, result):
        self.result = result
        self.scanning = False
        logging.getLogger(__name__).info("scan finished: %d files, %d groups, %d problems", result.stats.files,
                                         len(result.groups), len(result.problems))
        s = result.stats
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        state = "Scan cancelled — partial results" if s.cancelled else "Scan finished"
        self.progress_label.setText(
            f"{state}: {s.files} files, {s.embedded} read, {s.skipped} unchanged, {s.problems} problems, "
            f"{len(result.groups)} groups in {s.seconds:.1f} s. Model: {result.model}")
        if self._grouping_settings() == self._scan_grouping:
            self._show_groups(result.groups)  # linked with these settings already, in the scan process
        else:  # the slider or keeper rule moved during the scan
            self.regroup()
        self.statusBar().showMessage(f"{len(result.groups)} groups", 5000)
        if result.problems:
            self.statusBar().showMessage(f"{len(result.problems)} files could not be read — see the details")
            self.show_problems(f"{len(result.problems)} files could not be read; the rest were scanned.",
                               [f"{p.path}: {p.error}" for p in result.problems])
        self.scan_finished.emit(result)

    def _scan_thread_done(self):
        retire(self.scan_thread)
        self.scan_thread = None
        self.scan_worker = None
        self.scan_action.setEnabled(True)
        self.cancel_button.setEnabled(False)

    # -- review -------------------------------------------------------------------------
    def _grouping_settings(self) -> tuple:
        s = self.settings
        return (self.similarity.value() / 100, s.review())

    def regroup(self, *_):
        """Group the scan's result again for the current settings, in a worker thread (seconds
        for a large library). A change that comes while it runs starts another run when it ends;
        only the groups of the latest settings and rows are shown."""
        self.settings.similarity = self.similarity.value() / 100
        self.settings.keeper_rule = self.keeper_rule.currentData()
        self.settings.select_edited = self.select_edited.isChecked()
        self.settings.trash_jpeg_with_raw = self.trash_jpeg_with_raw.isChecked()
        self._save_settings()
        if self.result is None:
            return
        self._regroup_wanted += 1
        if self.regroup_thread is None:
            self._start_regroup()

    def _start_regroup(self):
        s = self.settings
        self.regroup_worker = worker = RegroupWorker(
            self.result, (s.similarity, s.review()),
            self._regroup_wanted)
        worker.finished.connect(self._on_regrouped)
        worker.failed.connect(self._on_regroup_failed)
        self.statusBar().showMessage("Regrouping…")
        self.regroup_thread = start_in_thread(worker)
        self.regroup_thread.finished.connect(self._regroup_thread_done)

    def _on_regrouped(self, generation: int, groups):
        # not if the settings changed meanwhile, or a new scan's result came (the worker is still
        # held here: its thread's end, which lets go of it, is queued after this)
        if generation == self._regroup_wanted and self.regroup_worker.result is self.result:
            self.result.groups = groups
            self._show_groups(groups)
            self.statusBar().showMessage(f"{len(groups)} groups", 5000)

    def _on_regroup_failed(self, generation: int, message: str):
        if generation == self._regroup_wanted:
            self.show_problems("The groups could not be made again.", [message])

    def _regroup_thread_done(self):
        retire(self.regroup_thread)
        done = self.regroup_worker.generation
        self.regroup_thread = None
        self.regroup_worker = None
        if done != self._regroup_wanted and self.result is not None:
            self._start_regroup()

    def _group_selected(self, current: QModelIndex, _previous=None):
        if not current.isValid():
            return
        # the focus moves to the copies only when other copies are shown, not on a "groups so
        # far" update of the same ones
        group = self.model.group(current.row())
        if group.needs_look:  # a large group's safe copies are preselected once it is seen
            ranking.look_at(group)
            self.model.refresh_keep(current.row())
            self._update_trash_button()
        if self.view.show_group(group, self.model.keep):
            self.view.setFocus()
        self.apart_button.setEnabled(self.result is not None)

    def set_keep(self, path: str, keep: bool):
        self.model.set_keep(path, keep)
        self.view.update_keep(path, keep)
        self._update_trash_button()

    def next_group(self):
        row = self.groups.currentIndex().row()
        if row + 1 < self.model.rowCount():
            self.groups.setCurrentIndex(self.model.index(row + 1))

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.next_group()
            return
        super().keyPressEvent(event)

    def compare(self, left: str, right: str):
        self.compare_dialog = CompareDialog(left, right, self.thumbs, self)
        self.compare_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.compare_dialog.open()

    # -- not duplicates ------------------------------------------------------------------
    def library_location(self) -> str:
        return self.result.library if self.result is not None else self.settings.library_location()

    def mark_apart(self, path: str | None = None):
        """Mark the shown group as not duplicates, or (``path``) one copy as not a copy of the
        rest; remembered with the library, undoable, and the groups are made again."""
        row = self.groups.currentIndex().row()
        if self.result is None or row < 0:
            return
        group = self.model.group(row)
        if path is None:
            what = f"{len(group.members)} photos as not duplicates"
        else:
            what = f"{os.path.basename(path)} as not a copy of the rest of its group"
        d = Decisions.for_library(self.result.library)
        try:
            mark = d.mark(what, [(m.row.path, m.row.sha256) for m in group.members], path)
            self.result.apart = d.apart()
        finally:
            d.close()
        if mark is None:
            self.statusBar().showMessage("These files are the same bytes: they are duplicates whatever they show", 8000)
            return
        self._push_undo(f"Undo marking {what}", lambda: self.forget_marks([mark.id]))
        self.statusBar().showMessage(f"Marked {what}. Undo with Ctrl+Z, or from Not duplicates…", 8000)
        self.regroup()

    def forget_marks(self, ids: list[int]) -> None:
        d = Decisions.for_library(self.library_location())
        try:
            for i in ids:
                d.forget(i)
        finally:
            d.close()
        self._marks_changed()

    def _marks_changed(self) -> None:
        """Group again with the library's marks as they are now."""
        if self.result is not None:
            self.result.apart = decisions.apart_for(self.result.library)
            self.regroup()

    def show_decisions(self):
        self.decisions_dialog = DecisionsDialog(self.library_location(), self)
        self.decisions_dialog.changed.connect(self._marks_changed)
        self.decisions_dialog.open()

    # -- undo ------------------------------------------------------------------------------
    def _push_undo(self, label: str, action) -> None:
        self.undo_stack.append((label, action))
        self._update_undo()

    def _update_undo(self) -> None:
        label = self.undo_stack[-1][0] if self.undo_stack else "Nothing to undo"
        self.undo_action.setEnabled(bool(self.undo_stack) and self.trash_thread is None)
        self.undo_action.setToolTip(label + " (Ctrl+Z)")
        self.undo_action.setText("Undo")

    def undo(self):
        """Undo the last trash action or "not duplicates" mark."""
        if not self.undo_stack or self.trash_thread is not None:
            return
        label, action = self.undo_stack.pop()
        action()
        self._update_undo()
        self.statusBar().showMessage(label.replace("Undo ", "Undone: ", 1), 8000)

    def _restore_trashed(self, entries, rows) -> None:
        """Undo of a trash action: the files back from the trash (as the journal recorded them),
        and into the groups."""
        restored, problems = restore_entries(entries, Journal(paths.journal_path()))
        back = {e.path for e in restored}
        if self.result is not None and back:
            have = {r.path for r in self.result.rows}
            self.result.rows += [r for r in rows if r.path in back and r.path not in have]
            self.regroup()
        self.progress_label.setText(f"Restored {len(back)} files from the trash.")
        if problems:
            self.show_problems("Some files could not be restored.", problems)

    # -- trash ----------------------------------------------------------------------------
    def show_journal(self):
        self.journal_dialog = JournalDialog(self)
        self.journal_dialog.open()

    def _update_trash_button(self):
        chosen = self.model.to_trash()
        size = sum(m.row.size for m in chosen)
        self.trash_button.setText(f"Move {len(chosen)} files to trash ({human_size(size)})")
        self.trash_button.setEnabled(bool(chosen) and self.trash_thread is None)

    def confirm_trash(self):
        chosen = self.model.to_trash()
        if not chosen:
            return
        size = sum(m.row.size for m in chosen)
        ok = QMessageBox.question(self, APP_NAME,
                                  f"Move {len(chosen)} files ({human_size(size)}) to the trash?\n\n"
                                  + "\n".join(kind_counts(chosen)) +
                                  "\n\nThey can be restored from the trash, with Undo, or from the Trash journal.")
        if ok == QMessageBox.StandardButton.Yes:
            self.trash_chosen()

    def trash_chosen(self):
        # Held on self: a worker without a Python reference would be collected mid-run.
        self.trash_worker = worker = TrashWorker(self.model.decisions(), self.settings.reference_folders)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_trash_finished)
        self.trash_button.setEnabled(False)
        self.undo_action.setEnabled(False)
        self.trash_thread = start_in_thread(worker)
        self.trash_thread.finished.connect(self._trash_thread_done)

    def _trash_thread_done(self):
        retire(self.trash_thread)
        self.trash_thread = None
        self.trash_worker = None
        self._update_trash_button()
        self._update_undo()

    def _on_trash_finished(self, outcome):
        gone = {e.path for e in outcome.trashed}
        if self.result is not None and gone:
            removed = [r for r in self.result.rows if r.path in gone]
            self.result.rows = [r for r in self.result.rows if r.path not in gone]
            self._push_undo(f"Undo moving {len(gone)} files to the trash",
                            lambda: self._restore_trashed(outcome.trashed, removed))
            # Off the screen at once; the groups are made again from the rows that are left in
            # the background (a copy may have held its group together).
            kept = [dataclasses.replace(g, members=[m for m in g.members if m.row.path not in gone])
                    for g in self.result.groups]
            self.result.groups = [g for g in kept if len(g.members) > 1]
            self._show_groups(self.result.groups)
            self.regroup()
        self.progress_label.setText(f"Moved {len(outcome.trashed)} files to the trash, freeing {human_size(outcome.freed)}.")
        if outcome.problems:
            self.show_problems("Some files were not moved to the trash.",
                               [f"{p.path}: {p.error}" for p in outcome.problems])
        self.trash_finished.emit(outcome)

    def show_problems(self, text: str, lines: list[str]) -> None:
        """The one place problems reach the user: a non-blocking box with copyable details."""
        box = self.problem_box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, text, QMessageBox.StandardButton.Ok, self)
        box.setInformativeText("\n".join(lines[:10]) + (f"\n… and {len(lines) - 10} more" if len(lines) > 10 else ""))
        box.setDetailedText("\n".join(lines))
        box.open()

    def closeEvent(self, event):
        if self.scan_worker is not None:
            self.scan_worker.cancel()
        for t in (self.scan_thread, self.trash_thread, self.regroup_thread, self.find_thread):
            if t is not None:
                t.quit()
                t.wait(30000)
        self.thumbs.close()
        super().closeEvent(event)


STAGE_NAMES = {"embed": "Reading photos", "search": "Searching", "verify": "Checking pairs", "group": "Grouping",
               "keeper": "Choosing keepers", "trash": "Moving to trash"}

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


def quit_on_signals(window: MainWindow) -> None:
    """SIGTERM (logout, ``kill``) and SIGINT (Ctrl-C) close the window as Quit does: the scan is
    cancelled, its process and the thumbnail workers end, settings are saved.

    Python runs a signal handler only when the interpreter gets control, and Qt's event loop does
    not give it any: a timer hands it a turn every quarter second."""
    import signal

    from PySide6.QtCore import QTimer

    def close(signum, _frame):
        logging.getLogger(__name__).info("signal %d: closing", signum)
        QTimer.singleShot(0, window.close)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, close)
    window._signal_timer = timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)


def keep_garbage_collections_short() -> None:
    """Leave the objects that live as long as the app out of Python's full garbage collections.

    A full collection walks every tracked object while holding the GIL, so it stops the window's
    thread: 35-44 ms with the window built (PySide6 and numpy loaded) on a 2-core AVX2 machine,
    56 ms during a scan, at moments no one chooses (that one made a 63 ms event-loop gap).
    Called once the window is up; later collections walk only what was made since.
    """
    gc.collect()
    gc.freeze()
