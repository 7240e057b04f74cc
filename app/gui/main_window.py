"""Doppel's main window: the actions and menus, the panels, and what happens when a background
task (tasks.py) reports. The panels lay out and show; the window decides.

- folders_panel.py: the photo folders (reference, preferred);
- options_bar.py: the grouping options on the toolbar;
- progress_panel.py: the progress of the task that runs;
- the group list (group_model.py) and review_panel.py: the groups, one shown side by side.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QLabel, QListView, QMainWindow, QMessageBox, QSplitter, QToolBar,
                               QVBoxLayout, QWidget)

from app import APP_NAME, paths
from app.core import decisions, ranking
from app.core.decisions import Decisions
from app.core.trash import Journal, restore_entries
from app.gui.compare_dialog import CompareDialog
from app.gui.decisions_dialog import DecisionsDialog
from app.gui.find_dialog import FindDialog
from app.gui.folders_panel import FoldersPanel
from app.gui.group_model import THUMB_SIDE, GroupListModel, human_size
from app.gui.journal_dialog import JournalDialog
from app.gui.library_dialog import LibraryDialog
from app.gui.options_bar import OptionsBar
from app.gui.progress_panel import ProgressPanel
from app.gui.review_panel import ReviewPanel, kind_counts
from app.gui.tasks import TaskRunner
from app.gui.thumbnails import ThumbnailCache
from app.gui.welcome import NO_COPIES, NO_FOLDERS, READY, SCANNING
from app.gui.workers import FindWorker, RegroupWorker, ScanWorker, TrashWorker
from app.settings import Settings


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
        self.scanning = False  # from Scan until the scan's result, failure or cancel arrives
        self.tasks = TaskRunner(self)  # "scan", "find", "trash", "regroup": one of each at a time
        self.tasks.changed.connect(self._tasks_changed)
        self._regroup_wanted = 0  # bumped by every regroup(): only the latest one's groups are shown
        self._scan_grouping = None  # the grouping settings the running scan links with
        self.problem_box = None
        self.partial_updates = 0  # "groups so far" updates shown during scans
        self.compare_dialog = None
        self.journal_dialog = None
        self.decisions_dialog = None
        self.find_dialog = None
        self.library_dialog = None
        self.undo_stack: list = []  # (label, action): the last trash actions and "not duplicates" marks
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self.thumbs = ThumbnailCache(self)
        self.model = GroupListModel(self.thumbs, self)
        self._build()
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
        self.options = OptionsBar(self.settings)
        self.options.changed.connect(self.regroup)
        tb.addWidget(self.options)
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
        s = self.settings
        self.folders = FoldersPanel(s.folders, s.reference_folders, s.preferred_folder)
        self.folders.changed.connect(self._folders_changed)
        ll.addWidget(self.folders)
        ll.addWidget(QLabel("<b>Duplicate groups</b>"))
        self.groups = QListView()
        self.groups.setModel(self.model)
        self.groups.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
        # every row is the same size (GroupModel's SizeHintRole): a reset by a groups-so-far
        # update then lays out one row, not all of them
        self.groups.setUniformItemSizes(True)
        self.groups.selectionModel().currentChanged.connect(self._group_selected)
        ll.addWidget(self.groups, 1)

        right = QWidget()
        rl = QVBoxLayout(right)
        self.progress = ProgressPanel()
        self.progress.cancel_requested.connect(self.cancel_scan)
        rl.addWidget(self.progress)
        self.review = ReviewPanel(self.thumbs)
        self.view = self.review.view
        self.view.keep_changed.connect(self.set_keep)
        self.view.compare_requested.connect(self.compare)
        self.view.apart_requested.connect(self.mark_apart)
        self.review.welcome.add_requested.connect(self.choose_folder)
        self.review.welcome.scan_requested.connect(self.start_scan)
        self.review.apart_requested.connect(lambda: self.mark_apart(None))
        self.review.trash_requested.connect(self.confirm_trash)
        rl.addWidget(self.review, 1)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([300, 980])
        self.setCentralWidget(split)
        self.statusBar().showMessage("Ready")

    def _tasks_changed(self, name: str, running: bool) -> None:
        """What may start depends on what runs: one process holds the library (a scan or a
        find), and undo waits for a trash run to end."""
        library_busy = self.tasks.running("scan", "find")
        self.scan_action.setEnabled(not library_busy)
        self.find_action.setEnabled(not library_busy)
        self.progress.set_cancellable(self.tasks.running("scan"))
        self._update_trash_button()
        self._update_undo()

    def _update_welcome(self) -> None:
        """The review area shows the groups when there are some, else the next step to take."""
        if self.model.rowCount():
            self.review.show_groups()
        elif self.scanning:
            self.review.show_welcome(SCANNING)
        elif self.result is not None:
            self.review.show_welcome(NO_COPIES, files=self.result.stats.files)
        else:
            n = self.folders.count()
            self.review.show_welcome(READY if n else NO_FOLDERS, folders=n)

    # -- folders --------------------------------------------------------------------
    def prefer_selected_folder(self):
        folder = self.folders.prefer_selected()
        if folder is None:
            return
        self.settings.preferred_folder = folder
        self.options.prefer_folder_rule()  # regroups
        self._save_settings()
        self.regroup()

    def add_folders(self, folders):
        self.folders.add(folders)

    def folder_list(self) -> list[str]:
        return self.folders.folders()

    def _folders_changed(self):
        self.settings.folders = self.folders.folders()
        self.settings.reference_folders = self.folders.reference_folders()
        self._save_settings()
        self._update_welcome()

    def choose_folder(self):
        d = QFileDialog.getExistingDirectory(self, "Add a photo folder", os.path.expanduser("~"))
        if d:
            self.add_folders([d])

    def remove_selected_folder(self):
        self.folders.remove_selected()

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
        if self.tasks.running("scan", "find"):
            self.statusBar().showMessage("Wait for the scan to finish, then look for copies", 8000)
            return
        worker = FindWorker(photo, self.settings)
        worker.progress.connect(self.progress.show_update)
        worker.finished.connect(self._on_found)
        worker.failed.connect(lambda message: self.show_problems("Could not look for copies.", [message]))
        self.progress.say(f"Looking for copies of {os.path.basename(photo)}…")
        self.tasks.start("find", worker)
        self.thumbs.start()

    def _on_found(self, result):
        if result.problem:
            self.show_problems("Could not read the photo.", [f"{result.photo}: {result.problem}"])
            return
        self.progress.say(f"{len(result.copies)} copies of {os.path.basename(result.photo)} found.")
        self.find_dialog = FindDialog(result, self.thumbs, self)
        self.find_dialog.compare_requested.connect(self.compare)
        self.find_dialog.open()
        self.found.emit(result)

    def _save_settings(self):
        try:
            self.settings.save(self.settings_path)
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save settings: {exc}")

    # -- scan -------------------------------------------------------------------------
    def start_scan(self):
        if self.tasks.running("scan", "find"):  # one process holds the library
            return
        folders = self.folder_list()
        if not folders:
            QMessageBox.information(self, APP_NAME, "Add at least one photo folder first.")
            return
        worker = ScanWorker(folders, self.settings)
        self._scan_grouping = self._grouping_settings()
        worker.progress.connect(self.progress.show_update)
        worker.partial.connect(self._on_partial)
        worker.notice.connect(self.progress.show_notice)
        worker.finished.connect(self._on_scan_finished)
        worker.failed.connect(self._on_scan_failed)
        worker.cancelled.connect(self._on_scan_cancelled)
        self.progress.say("Starting…")
        self.scanning = True
        self.tasks.start("scan", worker)
        self._update_welcome()
        self.thumbs.start()

    def cancel_scan(self):
        if self.tasks.running("scan"):
            self.tasks.cancel("scan")
            self.progress.say("Stopping after the current batch; what was read is kept…")

    def _on_partial(self, groups):
        """Groups among the files read so far: reviewable while the scan goes on."""
        if not self.scanning:
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
            self.review.apart_button.setEnabled(False)
        self._update_trash_button()
        self._update_welcome()

    def _on_scan_cancelled(self, message: str):
        """Cancelled before the scan began (the weights download): said, not an error."""
        self.scanning = False
        self._update_welcome()
        self.progress.ended(message, done=False)
        self.scan_cancelled.emit(message)

    def _on_scan_failed(self, message: str):
        self.scanning = False
        self._update_welcome()
        self.progress.close_download()
        self.progress.say("Scan failed.")
        self.show_problems("The scan could not run.", [message])

    def _on_scan_finished(self, result):
        self.result = result
        self.scanning = False
        logging.getLogger(__name__).info("scan finished: %d files, %d groups, %d problems", result.stats.files,
                                         len(result.groups), len(result.problems))
        s = result.stats
        state = "Scan cancelled — partial results" if s.cancelled else "Scan finished"
        self.progress.ended(f"{state}: {s.files} files, {s.embedded} read, {s.skipped} unchanged, {s.problems} "
                            f"problems, {len(result.groups)} groups in {s.seconds:.1f} s. Model: {result.model}")
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

    # -- review -------------------------------------------------------------------------
    def _grouping_settings(self) -> tuple:
        return (self.options.similarity.value() / 100, self.settings.review())

    def regroup(self, *_):
        """Group the scan's result again for the current settings, in a worker thread (seconds
        for a large library). A change that comes while it runs starts another run when it ends;
        only the groups of the latest settings and rows are shown."""
        self.options.apply_to(self.settings)
        self._save_settings()
        if self.result is None:
            return
        self._regroup_wanted += 1
        if not self.tasks.running("regroup"):
            self._start_regroup()

    def _start_regroup(self):
        s = self.settings
        worker = RegroupWorker(self.result, (s.similarity, s.review()), self._regroup_wanted)
        worker.finished.connect(self._on_regrouped)
        worker.failed.connect(self._on_regroup_failed)
        self.statusBar().showMessage("Regrouping…")
        self.tasks.start("regroup", worker, on_end=self._regroup_ended)

    def _on_regrouped(self, generation: int, groups):
        # not if the settings changed meanwhile, or a new scan's result came (the worker is still
        # held by the runner: its thread's end, which lets go of it, is queued after this)
        if generation == self._regroup_wanted and self.tasks.worker("regroup").result is self.result:
            self.result.groups = groups
            self._show_groups(groups)
            self.statusBar().showMessage(f"{len(groups)} groups", 5000)

    def _on_regroup_failed(self, generation: int, message: str):
        if generation == self._regroup_wanted:
            self.show_problems("The groups could not be made again.", [message])

    def _regroup_ended(self, worker) -> None:
        if worker.generation != self._regroup_wanted and self.result is not None:
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
        self.review.apart_button.setEnabled(self.result is not None)

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
        self.undo_action.setEnabled(bool(self.undo_stack) and not self.tasks.running("trash"))
        self.undo_action.setToolTip(label + " (Ctrl+Z)")
        self.undo_action.setText("Undo")

    def undo(self):
        """Undo the last trash action or "not duplicates" mark."""
        if not self.undo_stack or self.tasks.running("trash"):
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
        self.progress.say(f"Restored {len(back)} files from the trash.")
        if problems:
            self.show_problems("Some files could not be restored.", problems)

    # -- trash ----------------------------------------------------------------------------
    def show_journal(self):
        self.journal_dialog = JournalDialog(self)
        self.journal_dialog.open()

    def _update_trash_button(self):
        chosen = self.model.to_trash()
        size = sum(m.row.size for m in chosen)
        self.review.set_trash_choice(len(chosen), size, bool(chosen) and not self.tasks.running("trash"))

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
        if self.tasks.running("trash"):
            return
        worker = TrashWorker(self.model.decisions(), self.settings.reference_folders)
        worker.progress.connect(self.progress.show_update)
        worker.finished.connect(self._on_trash_finished)
        self.tasks.start("trash", worker)

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
        self.progress.say(f"Moved {len(outcome.trashed)} files to the trash, freeing {human_size(outcome.freed)}.")
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
        self.tasks.stop_all()  # a scan is cancelled: what it read is kept
        self.thumbs.close()
        super().closeEvent(event)
