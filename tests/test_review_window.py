"""The review's tools in the window (pytest-qt, offscreen, real files, real trash, real library):
the grid of many copies, Compare of two chosen copies, "Not duplicates" with its dialog and
undo, Show in folder, Undo of a trash action, and the progress of every stage."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices

from app.core.decisions import Decisions
from app.gui.group_view import CARD_SIDE, TILE_MIN
from tests import imagegen as ig
from tests.test_gui import regrouped, scan


def names(window) -> list[list[str]]:
    return [sorted(os.path.basename(m.row.path) for m in window.model.group(i).members)
            for i in range(window.model.rowCount())]


def select(window, name: str) -> None:
    for i in range(window.model.rowCount()):
        if any(os.path.basename(m.row.path) == name for m in window.model.group(i).members):
            window.groups.setCurrentIndex(window.model.index(i))
            return
    raise AssertionError(f"no group holds {name}")


@pytest.fixture
def many(tmp_path):
    """One photo and 13 smaller copies of it (and a pair of another photo)."""
    root = tmp_path / "many"
    a = ig.photo(71, (900, 600))
    ig.save(a, root / "a.jpg", quality=92)
    for n in range(13):
        ig.save(ig.resized(a, 0.9 - 0.05 * n), root / f"a ({n + 1}).jpg", quality=70 + 2 * n)
    b = ig.photo(72)
    ig.save(b, root / "b.jpg")
    ig.save(ig.resized(b, 0.5), root / "b_half.jpg")
    return root


def test_a_group_of_many_copies_is_a_grid_that_fits_the_panel(qtbot, window, many):
    window.resize(1280, 800)
    scan(qtbot, window, many)
    assert window.width() == 1280  # nothing in the window is wider than a laptop's screen
    select(window, "b.jpg")
    view = window.view
    qtbot.waitUntil(lambda: len(view.cards) == 2)
    assert view.side == CARD_SIDE and all(c.facts.isVisible() for c in view.cards)  # few copies: full cards
    select(window, "a.jpg")
    qtbot.waitUntil(lambda: len(view.cards) == 14, timeout=10_000)
    assert TILE_MIN <= view.side < CARD_SIDE and view.columns > 1
    panel = view.viewport().rect()
    for c in view.cards:
        qtbot.waitUntil(c.isVisible)
        box = c.geometry().translated(view.widget().pos())
        assert panel.contains(box), f"{os.path.basename(c.path)} at {box} outside {panel}"
        assert not c.facts.isVisible() and c.image.width() == view.side
    rows = {c.geometry().top() for c in view.cards}
    assert 1 < len(rows) <= -(-14 // view.columns)
    # a narrower window: fewer columns; where the group cannot fit, tiles of TILE_MIN scroll
    # down, never sideways
    before = (view.side, view.columns)
    window.resize(1000, 800)
    qtbot.waitUntil(lambda: view.columns < before[1], timeout=5000)
    assert TILE_MIN <= view.side <= before[0]
    qtbot.wait(50)  # the host lays the tiles out again
    for c in view.cards:
        assert c.geometry().right() <= view.viewport().width()


def test_compare_opens_any_two_chosen_copies(qtbot, window, many):
    scan(qtbot, window, many)
    select(window, "a.jpg")
    view = window.view
    qtbot.waitUntil(lambda: len(view.cards) == 14, timeout=10_000)
    third, ninth = view.cards[3], view.cards[9]
    third.choose_box.setChecked(True)
    ninth.choose_box.setChecked(True)
    qtbot.mouseClick(window.review.compare_button, Qt.MouseButton.LeftButton)
    dlg = window.compare_dialog
    qtbot.waitExposed(dlg)
    assert [v.path for v in dlg.views] == [third.path, ninth.path]
    qtbot.waitUntil(lambda: all(v.loaded for v in dlg.views), timeout=30_000)
    dlg.close()
    # one ticked: it beside the keeper; C from the keyboard does the same
    ninth.choose_box.setChecked(False)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_C)
    keeper = window.model.group(window.groups.currentIndex().row()).keeper.row.path
    assert [v.path for v in window.compare_dialog.views] == [keeper, third.path]
    window.compare_dialog.close()


def test_not_duplicates_is_remembered_listed_and_undone(qtbot, window, photos, tmp_path):
    scan(qtbot, window, photos)
    assert names(window) == [["a.jpg", "a_gray.jpg", "a_half.jpg"], ["b.jpg", "b_q50.jpg"]]
    # one copy out of its group
    select(window, "a.jpg")
    gray = next(m.row.path for m in window.model.group(0).members if m.row.path.endswith("a_gray.jpg"))
    window.mark_apart(gray)
    regrouped(qtbot, window)
    assert names(window) == [["a.jpg", "a_half.jpg"], ["b.jpg", "b_q50.jpg"]]
    # a whole group
    select(window, "b.jpg")
    qtbot.mouseClick(window.review.apart_button, Qt.MouseButton.LeftButton)
    regrouped(qtbot, window)
    assert names(window) == [["a.jpg", "a_half.jpg"]]
    # remembered with the library: a new scan (a new window on the same settings) keeps them apart
    window.close()
    from app.gui.main_window import MainWindow

    again = MainWindow(window.settings, settings_path=tmp_path / "settings.json")
    qtbot.addWidget(again)
    again.show()
    with qtbot.waitSignal(again.scan_finished, timeout=120_000):
        again.start_scan()
    qtbot.waitUntil(lambda: not again.tasks.running("scan"), timeout=10_000)
    assert names(again) == [["a.jpg", "a_half.jpg"]]
    # listed in the dialog, newest first; undone there
    again.show_decisions()
    dlg = again.decisions_dialog
    rows = dlg.row_texts()
    assert len(rows) == 2 and "2 photos as not duplicates" in rows[0] and "a_gray.jpg as not a copy" in rows[1]
    dlg.table.selectRow(0)
    dlg.undo_selected()
    regrouped(qtbot, again)
    assert names(again) == [["a.jpg", "a_half.jpg"], ["b.jpg", "b_q50.jpg"]]
    assert len(dlg.row_texts()) == 1
    dlg.close()
    # and from the Undo action: the copy marked in this window goes back to its group
    select(again, "a.jpg")
    half = next(m.row.path for m in again.model.group(0).members if m.row.path.endswith("a_half.jpg"))
    again.mark_apart(half)
    regrouped(qtbot, again)
    assert names(again) == [["b.jpg", "b_q50.jpg"]]
    assert again.undo_action.isEnabled() and "a_half.jpg" in again.undo_action.toolTip()
    again.undo_action.trigger()
    regrouped(qtbot, again)
    assert names(again) == [["a.jpg", "a_half.jpg"], ["b.jpg", "b_q50.jpg"]]
    d = Decisions.for_library(again.result.library)
    assert [m.what for m in d.marks()] == ["a_gray.jpg as not a copy of the rest of its group"]
    d.close()
    again.close()


def test_identical_bytes_cannot_be_marked_apart(qtbot, window, tmp_path):
    root = tmp_path / "same"
    ig.save(ig.photo(91), root / "x.jpg")
    shutil.copy(root / "x.jpg", root / "x copy.jpg")
    scan(qtbot, window, root)
    select(window, "x.jpg")
    window.mark_apart(None)
    assert "same bytes" in window.statusBar().currentMessage()
    assert not window.undo_stack and window.model.rowCount() == 1


def test_undo_brings_back_the_files_of_the_last_trash_action(qtbot, window, photos):
    from app import paths
    from app.core.trash import Journal

    scan(qtbot, window, photos)
    chosen = sorted(m.row.path for m in window.model.to_trash())
    assert len(chosen) == 2
    with qtbot.waitSignal(window.trash_finished, timeout=60_000):
        window.trash_chosen()
    qtbot.waitUntil(lambda: not window.tasks.running("trash"))
    regrouped(qtbot, window)
    assert not any(os.path.exists(p) for p in chosen)
    assert window.undo_action.isEnabled() and "2 files to the trash" in window.undo_action.toolTip()
    window.undo_action.trigger()
    regrouped(qtbot, window)
    assert all(os.path.isfile(p) for p in chosen)
    assert "Restored 2 files" in window.progress.label.text()
    assert names(window) == [["a.jpg", "a_gray.jpg", "a_half.jpg"], ["b.jpg", "b_q50.jpg"]]
    assert Journal(paths.journal_path()).trashed_now() == []
    assert not window.undo_action.isEnabled()


class _Opened(QObject):
    def __init__(self):
        super().__init__()
        self.urls = []

    @Slot(QUrl)
    def open(self, url):
        self.urls.append(url)


def test_show_in_folder_without_a_file_manager_opens_the_folder(qtbot, window, photos):
    """No session bus here (conftest): the card's button falls back to opening the folder."""
    scan(qtbot, window, photos)
    opened = _Opened()
    QDesktopServices.setUrlHandler("file", opened, "open")
    try:
        card = window.view.cards[0]
        button = next(b for b in card.more_buttons if b.text() == "Show in folder")
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [u.toLocalFile() for u in opened.urls] == [os.path.dirname(card.path)]


FAKE_FILE_MANAGER = r'''
import sys
from PySide6.QtCore import QCoreApplication, QObject, Slot
from PySide6.QtDBus import QDBusConnection

class FileManager(QObject):
    @Slot("QStringList", str)
    def ShowItems(self, uris, startup_id):
        with open(sys.argv[1], "a") as f:
            f.write("\n".join(uris) + "\n")

app = QCoreApplication([])
fm = FileManager()
bus = QDBusConnection.sessionBus()
bus.registerObject("/org/freedesktop/FileManager1", "org.freedesktop.FileManager1", fm,
                   QDBusConnection.RegisterOption.ExportAllSlots)
bus.registerService("org.freedesktop.FileManager1")
print("ready", flush=True)
app.exec()
'''

REVEAL = r'''
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.gui.reveal import show_in_folder
print(show_in_folder(sys.argv[1]))
'''


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon for a private session bus")
def test_show_in_folder_asks_the_file_manager_over_dbus_to_select_the_file(tmp_path):
    """A private session bus with a stand-in file manager that owns org.freedesktop.FileManager1:
    the file is asked for by its URI, selected in its folder."""
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, text=True)
    fm = None
    try:
        address = bus.stdout.readline().strip()
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address, "QT_QPA_PLATFORM": "offscreen"}
        shown = tmp_path / "shown.txt"
        fm = subprocess.Popen([sys.executable, "-c", FAKE_FILE_MANAGER, str(shown)], env=env,
                              stdout=subprocess.PIPE, text=True)
        assert fm.stdout.readline().strip() == "ready"
        photo = tmp_path / "a folder" / "IMG 1.jpg"
        ig.save(ig.photo(5), photo)
        root = str(Path(__file__).resolve().parent.parent)
        way = subprocess.run([sys.executable, "-c", REVEAL, str(photo)], env={**env, "PYTHONPATH": root},
                             capture_output=True, text=True, timeout=60)
        assert way.stdout.strip().splitlines()[-1] == "file manager", way.stderr
        deadline = time.monotonic() + 10
        while not shown.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shown.read_text().split() == [QUrl.fromLocalFile(str(photo)).toString(QUrl.ComponentFormattingOption.FullyEncoded)]
        assert "%20" in shown.read_text()
    finally:
        for p in (fm, bus):
            if p is not None:
                p.kill()
                p.wait()


def test_show_in_folder_takes_the_system_way_on_windows_and_macos(monkeypatch, tmp_path):
    """explorer /select, and open -R: what would be started (Popen records it here)."""
    from app.gui import reveal

    started = []
    monkeypatch.setattr(reveal.subprocess, "Popen", lambda args, **k: started.append(args))
    assert reveal.show_in_folder("/p/a b.jpg", platform="darwin") == "finder"
    assert reveal.show_in_folder(r"C:\p\a b.jpg", platform="win32") == "explorer"
    assert started == [["open", "-R", "/p/a b.jpg"], 'explorer /select,"' + os.path.normpath(r"C:\p\a b.jpg") + '"']


def test_every_stage_reports_progress_with_time_left_for_the_whole_scan(qtbot, window, photos):
    seen = []

    class Recorder(QObject):  # in the window's thread: gets each update after the window showed it
        @Slot(object)
        def on_progress(self, u):
            seen.append((u.stage, u.left, window.progress.label.text()))

    recorder = Recorder()
    window.add_folders([str(photos)])
    with qtbot.waitSignal(window.scan_finished, timeout=120_000):
        window.start_scan()
        window.tasks.worker("scan").progress.connect(recorder.on_progress)
    qtbot.waitUntil(lambda: not window.tasks.running("scan"), timeout=10_000)
    stages = [s for s, _, _ in seen]
    for stage in ("embed", "verify", "group", "keeper"):
        assert stage in stages, stages
    assert all(left is not None for s, left, _ in seen if s in ("group", "keeper")), seen
    labels = [text for s, left, text in seen if s == "keeper" and left is not None]
    assert labels and all("left in the scan" in t for t in labels)
    assert any(t.startswith("Choosing keepers") for t in labels)


def test_the_card_menu_offers_compare_show_and_not_a_copy(qtbot, window, photos):
    scan(qtbot, window, photos)
    card = window.view.cards[1]
    menu = card.context_menu()
    assert [a.text() for a in menu.actions()] == ["Compare with the keeper", "Tick Compare", "Show in folder",
                                                  "Not a copy of the others"]
    menu.actions()[1].trigger()
    assert card.chosen and card.context_menu().actions()[1].text() == "Untick Compare"
    menu.actions()[0].trigger()
    keeper = window.model.group(0).keeper.row.path
    assert [v.path for v in window.compare_dialog.views] == [keeper, card.path]
    window.compare_dialog.close()
    menu.actions()[3].trigger()
    regrouped(qtbot, window)
    assert card.path not in {m.row.path for i in range(window.model.rowCount()) for m in window.model.group(i).members}


def test_find_copies_of_a_photo_from_outside_the_library(qtbot, window, photos, tmp_path):
    scan(qtbot, window, photos)
    from PIL import Image

    outside = tmp_path / "from a friend.jpg"
    with Image.open(photos / "a.jpg") as im:
        ig.save(ig.resized(im.convert("RGB"), 0.7).rotate(90, expand=True), outside, quality=80)
    with qtbot.waitSignal(window.found, timeout=120_000) as blocker:
        window.find_copies(str(outside))
    qtbot.waitUntil(lambda: not window.tasks.running("find"), timeout=10_000)
    result = blocker.args[0]
    assert sorted(os.path.basename(c.row.path) for c in result.copies) == ["a.jpg", "a_gray.jpg", "a_half.jpg"]
    dlg = window.find_dialog
    assert dlg.list.count() == 3 and "3 copies of" in dlg.summary.text()
    qtbot.waitUntil(lambda: all(not dlg.list.item(i).icon().isNull() for i in range(3)), timeout=30_000)
    qtbot.mouseClick(dlg.compare_btn, Qt.MouseButton.LeftButton)
    assert [v.path for v in window.compare_dialog.views] == [str(outside), dlg.chosen()]
    window.compare_dialog.close()
    dlg.close()
    assert window.scan_action.isEnabled()


def test_the_library_dialog_sets_a_server_with_its_token_and_database(qtbot, window, tmp_path):
    import json
    import stat

    window.choose_library()
    dlg = window.library_dialog
    assert not dlg.token.isEnabled()  # a local file has no token
    dlg.location.setText("http://milvus.example:19530")
    assert dlg.token.isEnabled() and dlg.database.isEnabled()
    dlg.token.setText("doppel:secret")
    dlg.database.setText("photos")
    dlg.accept()
    saved = tmp_path / "settings.json"
    data = json.loads(saved.read_text())
    assert (data["library"], data["server_token"], data["server_database"]) == \
        ("http://milvus.example:19530", "doppel:secret", "photos")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # it holds a token
    assert window.settings.library_options() == {"token": "doppel:secret", "database": "photos"}
    assert "milvus.example" in window.statusBar().currentMessage()
