"""The desktop app through pytest-qt: offscreen, strict (Qt warnings fail), real worker, real trash."""
import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester

from app.core.trash import Journal
from app.settings import Settings
from tests import imagegen as ig


def scan(qtbot, window, folder):
    window.add_folders([str(folder)])
    with qtbot.waitSignal(window.scan_finished, timeout=120_000) as blocker:
        window.start_scan()
    qtbot.waitUntil(lambda: not window.tasks.running("scan"), timeout=10_000)
    return blocker.args[0]


def regrouped(qtbot, window):
    """Wait for the window's regrouping (a worker thread) and any rerun it starts."""
    qtbot.waitUntil(lambda: not window.tasks.running("regroup"), timeout=30_000)


def record_regroupings(monkeypatch) -> list:
    """The similarity of every regrouping from now on, in order (ScanResult.grouped still runs)."""
    from app.core.pipeline import ScanResult

    seen = []
    real = ScanResult.grouped

    def grouped(self, *a, **k):
        seen.append(a[0])
        return real(self, *a, **k)

    monkeypatch.setattr(ScanResult, "grouped", grouped)
    return seen


def test_scan_through_worker_fills_the_group_model(qtbot, window, photos):
    result = scan(qtbot, window, photos)
    assert window.windowTitle() == "Doppel"
    QAbstractItemModelTester(window.model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    assert window.model.rowCount() == 2
    sizes = sorted(len(window.model.group(i).members) for i in range(2))
    assert sizes == [2, 3]
    assert "Scan finished" in window.progress.label.text()
    # the smaller copy and the re-encode; the grayscale copy is an edit, kept unless chosen
    assert window.review.trash_button.text().startswith("Move 2 files to trash")
    assert result.model == "efficientnet-lite0-imagenet"
    assert "fallback" in window.progress.notice.text()


def test_finished_scan_is_shown_as_linked_unless_the_slider_moved_meanwhile(qtbot, window, photos, monkeypatch):
    """Linking a large library takes seconds: the window must not redo it at the end of a scan."""
    relinked = record_regroupings(monkeypatch)
    result = scan(qtbot, window, photos)
    assert relinked == [] and window.model.rowCount() == 2
    assert [len(window.model.group(i).members) for i in range(2)] == [len(g.members) for g in result.groups]
    # the strictest setting chosen while a scan runs: its groups are linked again when it ends
    with qtbot.waitSignal(window.scan_finished, timeout=120_000):
        window.start_scan()
        window.options.similarity.setValue(100)
    qtbot.waitUntil(lambda: not window.tasks.running("scan"), timeout=10_000)
    regrouped(qtbot, window)
    # once for the groups on screen when the slider moved, once for the new scan's when it ended
    assert relinked == [1.0, 1.0]


def test_keyboard_keep_trash_and_next_group(qtbot, window, photos):
    scan(qtbot, window, photos)
    view = window.view
    first = window.groups.currentIndex().row()
    card0, card1 = view.cards[0], view.cards[1]
    assert card0.keep and not card1.keep  # keeper first, copies suggested for trash
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.current == 1
    qtbot.keyClick(view, Qt.Key.Key_K)
    assert window.model.keep[card1.path] is True and view.cards[1].keep_btn.isChecked()
    qtbot.keyClick(view, Qt.Key.Key_T)
    assert window.model.keep[card1.path] is False
    qtbot.keyClick(view, Qt.Key.Key_Left)
    qtbot.keyClick(view, Qt.Key.Key_Delete)  # the keeper may be marked too; the core guards the last copy
    assert window.model.keep[card0.path] is False
    qtbot.keyClick(view, Qt.Key.Key_K)
    qtbot.keyClick(window, Qt.Key.Key_Return)
    assert window.groups.currentIndex().row() == first + 1


def test_similarity_slider_regroups_without_rescanning(qtbot, window, photos):
    scan(qtbot, window, photos)
    assert window.model.rowCount() == 2
    window.options.similarity.setValue(100)  # strictest: the grayscale copy still lines up exactly
    regrouped(qtbot, window)
    assert window.result.stats.embedded == 6  # no rescan happened
    assert [len(window.model.group(i).members) for i in range(window.model.rowCount())] == \
           [len(g.members) for g in window.result.groups]
    window.options.similarity.setValue(50)
    regrouped(qtbot, window)
    assert window.model.rowCount() == 2


def test_regrouping_runs_off_the_window_thread_and_shows_only_the_latest_settings(qtbot, window, photos,
                                                                                  monkeypatch):
    import time

    from PySide6.QtCore import QTimer

    from app.core.pipeline import ScanResult

    scan(qtbot, window, photos)
    calls = []
    real = ScanResult.grouped

    def slow(self, *a, **k):  # as a large library takes
        calls.append(a[0])
        time.sleep(0.5)
        return real(self, *a, **k)

    monkeypatch.setattr(ScanResult, "grouped", slow)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    window.options.similarity.setValue(100)
    window.options.similarity.setValue(90)  # both while the first runs: only the last is made
    window.options.similarity.setValue(80)
    assert window.tasks.running("regroup")
    regrouped(qtbot, window)
    timer.stop()
    assert calls == [1.0, 0.8] and window.settings.similarity == 0.8
    assert len(ticks) > 20  # the event loop ran through the second of regrouping
    expected = real(window.result, 0.8, window.settings.review())
    assert [[m.row.path for m in g.members] for g in window.result.groups] == \
           [[m.row.path for m in g.members] for g in expected]


def test_dragging_the_slider_regroups_once_on_release(qtbot, window, photos, monkeypatch):
    scan(qtbot, window, photos)
    relinked = record_regroupings(monkeypatch)
    window.options.similarity.setSliderDown(True)  # what a mouse drag does
    for v in range(55, 100, 5):
        window.options.similarity.setSliderPosition(v)
    assert relinked == []
    window.options.similarity.setSliderDown(False)
    regrouped(qtbot, window)
    assert relinked == [0.95] and window.settings.similarity == 0.95


def test_trash_moves_files_to_real_trash_and_journals(qtbot, window, photos):
    from app import paths

    scan(qtbot, window, photos)
    chosen = sorted(m.row.path for m in window.model.to_trash())
    assert sorted(os.path.basename(p) for p in chosen) == ["a_half.jpg", "b_q50.jpg"]
    with qtbot.waitSignal(window.trash_finished, timeout=60_000) as blocker:
        window.trash_chosen()
    outcome = blocker.args[0]
    assert sorted(e.path for e in outcome.trashed) == chosen
    assert all(not os.path.exists(p) for p in chosen)
    assert all(Path(e.trash_path).is_file() for e in outcome.trashed)
    journal = Journal(paths.journal_path())
    assert sorted(e.path for e in journal.trashed_now()) == chosen
    # groups updated: the original and its grayscale edit are left to review
    assert [sorted(os.path.basename(m.row.path) for m in window.model.group(i).members)
            for i in range(window.model.rowCount())] == [["a.jpg", "a_gray.jpg"]]
    qtbot.waitUntil(lambda: not window.tasks.running("trash"))


def test_last_copy_of_a_group_cannot_be_trashed(qtbot, window, photos):
    scan(qtbot, window, photos)
    group = window.model.group(0)
    for m in group.members:
        window.set_keep(m.row.path, False)
    with qtbot.waitSignal(window.trash_finished, timeout=60_000) as blocker:
        window.trash_chosen()
    outcome = blocker.args[0]
    assert all(os.path.exists(m.row.path) for m in group.members)
    assert {p.path for p in outcome.problems if "every copy" in p.error} == {m.row.path for m in group.members}
    assert window.problem_box.isVisible() and "every copy" in window.problem_box.detailedText()
    qtbot.waitUntil(lambda: not window.tasks.running("trash"))


def test_folders_and_reference_flag_are_remembered(qtbot, tmp_path, photos):
    from app.gui.main_window import MainWindow

    path = tmp_path / "settings.json"
    w = MainWindow(Settings(library=str(tmp_path / "l.db")), settings_path=path)
    qtbot.addWidget(w)
    w.add_folders([str(photos)])
    w.folders.list.item(0).setCheckState(Qt.CheckState.Checked)
    saved = json.loads(path.read_text())
    assert saved["folders"] == [str(photos)] and saved["reference_folders"] == [str(photos)]
    w2 = MainWindow(settings_path=path)
    qtbot.addWidget(w2)
    assert w2.folder_list() == [str(photos)]
    assert w2.folders.list.item(0).checkState() == Qt.CheckState.Checked


def test_space_opens_synchronised_compare(qtbot, window, photos):
    scan(qtbot, window, photos)
    view = window.view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.keyClick(view, Qt.Key.Key_Space)
    dlg = window.compare_dialog
    qtbot.waitExposed(dlg)
    left, right = dlg.views
    qtbot.waitUntil(lambda: left.loaded and right.loaded, timeout=30_000)  # decoded in the workers
    assert not left.item.pixmap().isNull() and not right.item.pixmap().isNull()
    before = right.transform().m11()
    left.zoom(2.0)
    assert right.transform().m11() == pytest.approx(before * 2.0)  # zoom follows
    left.horizontalScrollBar().setValue(left.horizontalScrollBar().maximum())
    assert right.horizontalScrollBar().value() == right.horizontalScrollBar().maximum()  # so does pan
    dlg.close()


def test_journal_dialog_restores_a_trashed_file(qtbot, window, photos):
    scan(qtbot, window, photos)
    with qtbot.waitSignal(window.trash_finished, timeout=60_000) as blocker:
        window.trash_chosen()
    entry = blocker.args[0].trashed[0]
    qtbot.waitUntil(lambda: not window.tasks.running("trash"))
    window.show_journal()
    dlg = window.journal_dialog
    row = [dlg.table.item(i, 3).text() for i in range(dlg.table.rowCount())].index(entry.path)
    dlg.table.selectRow(row)
    dlg.restore_selected()
    assert dlg.last_problems == []
    assert Path(entry.path).exists()
    assert dlg.table.item(0, 1).text() == "restored"
    dlg.close()


def test_preferred_folder_rule_reapplies_to_groups(qtbot, window, photos):
    scan(qtbot, window, photos)
    window.add_folders([str(photos)])
    window.folders.list.setCurrentRow(0)
    window.folders.list.item(0).setSelected(True)
    window.prefer_selected_folder()
    assert window.options.keeper_rule.currentData() == "preferred-folder"
    assert "preferred" in window.folders.list.item(0).text()
    window.options.keeper_rule.setCurrentIndex(window.options.keeper_rule.findData("largest-file"))
    regrouped(qtbot, window)
    for i in range(window.model.rowCount()):
        g = window.model.group(i)
        assert g.keeper.row.size == max(m.row.size for m in g.members)


def test_uncaught_exception_shows_details_and_log_location(qtbot, window):
    from app import paths
    from app.gui.errors import install_excepthook

    hook = install_excepthook(lambda: window)
    try:
        raise RuntimeError("boom for the test")
    except RuntimeError:
        import sys
        hook(*sys.exc_info())
    box = hook.last_box
    assert "boom for the test" in box.text() and str(paths.log_dir()) in box.text()
    assert "Traceback" in box.detailedText()
    box.close()
    import sys
    sys.excepthook = sys.__excepthook__


def test_groups_found_so_far_are_shown_during_the_scan(qtbot, window, photos, monkeypatch):
    from app.gui.workers import ScanWorker

    monkeypatch.setattr(ScanWorker, "partial_every", 0.0)
    window.add_folders([str(photos)])
    with qtbot.waitSignal(window.scan_finished, timeout=120_000):
        window.start_scan()
    qtbot.waitUntil(lambda: not window.tasks.running("scan"), timeout=10_000)
    assert window.partial_updates >= 1  # shown while the scan was still running
    assert window.model.rowCount() == 2


def test_a_growing_group_keeps_the_cards_already_shown(qtbot, window, photos):
    """A "groups so far" update that adds a copy to the shown group builds one card, not all."""
    import dataclasses

    scan(qtbot, window, photos)
    view = window.view
    big = next(g for g in window.result.groups if len(g.members) == 3)
    other = next(g for g in window.result.groups if g is not big)
    keeper = big.keeper
    small = dataclasses.replace(big, members=[m for m in big.members if m is keeper or m is big.members[-1]])
    if big.members[-1] is keeper:
        small = dataclasses.replace(big, members=big.members[:2])
    view.show_group(small, window.model.keep)
    first = {c.path: c for c in view.cards}
    view.show_group(big, window.model.keep)
    assert [c.path for c in view.cards] == [m.row.path for m in big.members]
    assert [c for c in view.cards if c.path in first] == [first[c.path] for c in view.cards if c.path in first]
    assert len(set(map(id, view.cards)) - set(map(id, first.values()))) == 1  # one new card
    assert all(c.isVisibleTo(view) for c in view.cards)
    # another keeper: the same cards, rewritten to compare with it
    turned = [dataclasses.replace(m, reason="the most pixels" if m is big.members[-1] else "") for m in big.members]
    shown = list(view.cards)
    view.show_group(dataclasses.replace(big, members=turned, keeper=turned[-1]), window.model.keep)
    assert view.cards == shown
    assert [c.badge.text() for c in view.cards] == [" "] * (len(shown) - 1) + ["★ Keep: the most pixels"]
    assert view.cards[-1].shown == type(shown[0]).facts_of(turned[-1], turned[-1])
    view.show_group(other, window.model.keep)
    assert [c.path for c in view.cards] == [m.row.path for m in other.members]
    assert all(not c.isVisibleTo(view) for c in shown)


def test_a_large_group_shows_its_first_cards_at_once_and_the_rest_in_order(qtbot, window, photos):
    """New cards beyond the first few are built on later turns of the event loop, in order, and
    updates that come meanwhile neither lose nor duplicate one."""
    import dataclasses

    from app.gui.group_view import CARDS_AT_ONCE, CopyCard

    scan(qtbot, window, photos)
    big = next(g for g in window.result.groups if len(g.members) == 3)

    def copies(n):
        return [dataclasses.replace(m, row=dataclasses.replace(m.row, path=f"{m.row.path}.{i}"))
                for i in range(n) for m in big.members]

    view = window.view
    group = dataclasses.replace(big, members=copies(4))  # 12 copies no card shows yet
    view.show_group(group, window.model.keep)
    assert len(view.cards) == CARDS_AT_ONCE
    qtbot.waitUntil(lambda: len(view.cards) == 12, timeout=5000)
    assert [c.path for c in view.cards] == [m.row.path for m in group.members]

    grown = dataclasses.replace(big, members=copies(6))  # 6 more, arriving while they are built
    view.show_group(grown, window.model.keep)
    view.show_group(dataclasses.replace(grown, members=grown.members[::-1]), window.model.keep)
    qtbot.waitUntil(lambda: len(view.cards) == 18, timeout=5000)
    assert [c.path for c in view.cards] == [m.row.path for m in grown.members[::-1]]
    shown = [c for c in view.widget().findChildren(CopyCard) if c.isVisibleTo(view)]
    assert sorted(c.path for c in shown) == sorted(m.row.path for m in grown.members)


def test_a_card_border_shows_keep_or_trash_and_the_current_card_is_tinted(qtbot, window, photos):
    from app.gui.group_view import CURRENT_TINT, KEEP_COLOUR, TRASH_COLOUR

    scan(qtbot, window, photos)
    cards = window.view.cards

    def edge(card, x):
        img = card.grab().toImage()
        return img.pixelColor(x, img.height() // 2).name()

    keeper = next(c for c in cards if c.keep)
    other = next(c for c in cards if not c.keep)
    assert edge(keeper, 1) == KEEP_COLOUR and edge(other, 1) == TRASH_COLOUR
    current = next(c for c in cards if c.current)
    assert edge(current, 5) == CURRENT_TINT
    assert all(edge(c, 5) != CURRENT_TINT for c in cards if not c.current)
    window.set_keep(other.path, True)
    assert edge(other, 1) == KEEP_COLOUR


def test_cards_show_thumbnails_decoded_in_worker_processes_and_say_what_differs(qtbot, window, photos):
    from app.gui.group_view import CARD_SIDE

    scan(qtbot, window, photos)
    cards = window.view.cards
    qtbot.waitUntil(lambda: all(c.image.pixmap() is not None and not c.image.pixmap().isNull() for c in cards),
                    timeout=30_000)
    for c in cards:
        pix = c.image.pixmap()
        assert max(pix.width(), pix.height()) == CARD_SIDE  # the photos are larger: reduced to fit
    keeper = next(c for c in cards if c.member is c.keeper)
    other = next(c for c in cards if c.member is not c.keeper)
    lines = dict(line.split(": ", 1) for line in other.facts.text().splitlines())
    assert lines["File size"].endswith(" ●")  # another size than the keeper's
    assert lines["Format"] == "JPEG" and lines["Folder"] == str(photos)
    assert "●" not in keeper.facts.text()
    assert other.facts.toolTip() == other.path
    workers = window.thumbs._pool.pids()
    assert workers and os.getpid() not in workers


def test_a_long_folder_breaks_after_a_separator_and_is_shortened_only_past_two_lines(qtbot):
    from app.gui.group_view import FactsView

    view = FactsView()
    qtbot.addWidget(view)
    metrics, width = view.fontMetrics(), 200
    assert FactsView.folder_lines("/photos/2019", metrics, width) == ["/photos/2019"]
    folder = "/home/someone/Pictures/Holidays/2019 Summer/Camera"
    first, second = FactsView.folder_lines(folder, metrics, width)
    assert first.endswith("/") and first + second == folder
    assert metrics.horizontalAdvance(first) <= width and metrics.horizontalAdvance(second) <= width
    deep = folder + "/very long names/that go on and on/and on"
    first, second = FactsView.folder_lines(deep, metrics, width)
    assert deep.startswith(first) and "…" in second and deep.endswith(second.split("…")[1])
    assert metrics.horizontalAdvance(second) <= width


def test_an_unreadable_thumbnail_and_a_dead_thumbnail_worker_leave_the_window_working(qtbot, tmp_path, photos):
    """A file that cannot be decoded shows as such; a worker that dies (a decoder crash) fails only
    the thumbnails in flight, and the next ones come from fresh workers."""
    import signal

    from app.gui.thumbnails import ThumbnailCache

    thumbs = ThumbnailCache()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with qtbot.waitSignal(thumbs.ready, timeout=30_000):
        assert thumbs.get(str(bad), 100) is None
    assert thumbs.get(str(bad), 100).isNull()
    with qtbot.waitSignal(thumbs.fetched, timeout=30_000) as fetched:  # the compare dialog's way
        thumbs.fetch(str(bad), 4096)
    assert fetched.args[:2] == [str(bad), 4096] and fetched.args[2].isNull()
    assert (str(bad), 4096) not in thumbs._cache

    stuck = tmp_path / "stuck.jpg"
    os.mkfifo(stuck)  # a read that blocks until the worker is killed
    with qtbot.waitSignal(thumbs.ready, timeout=30_000) as blocker:
        thumbs.get(str(stuck), 100)
        killed: set = set()
        for round in (1, 2):  # tried again once in fresh workers, then given up
            qtbot.waitUntil(lambda: thumbs._pool is not None and bool(set(thumbs._pool.pids()) - killed), timeout=10_000)
            qtbot.wait(500)
            for pid in thumbs._pool.pids():
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            qtbot.waitUntil(lambda: thumbs._crashes.get((str(stuck), 100)) == round, timeout=10_000)
    assert blocker.args == [str(stuck), 100]
    assert thumbs.get(str(stuck), 100).isNull()  # kept as unreadable: not tried a third time
    good = str(photos / "a.jpg")
    with qtbot.waitSignal(thumbs.ready, timeout=30_000):
        assert thumbs.get(good, 100) is None
    img = thumbs.get(good, 100)
    assert not img.isNull() and max(img.width(), img.height()) == 100
    # Closing does not wait for a decode that has not finished (here, one that never will).
    thumbs.get(str(stuck), 200)
    qtbot.wait(500)
    workers = thumbs._pool.pids()

    def running(pid):  # by the OS: the pool's own thread may be reaping them just now
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    assert workers and all(running(pid) for pid in workers)
    folder = thumbs._folder
    assert os.listdir(folder) == []  # every image handed back was read and removed
    thumbs.close()
    assert thumbs._pool is None and not os.path.exists(folder)
    qtbot.waitUntil(lambda: not any(running(pid) for pid in workers), timeout=5_000)
    assert thumbs.get(str(photos / "b.jpg"), 100) is None and thumbs._pool is None


_CLOSE_WHILE_SENDING = """
import sys, time
from PySide6.QtWidgets import QApplication
from app.gui.thumbnails import ThumbnailCache
app = QApplication([])
cache = ThumbnailCache()
got = []
cache.fetched.connect(lambda *a: got.append(1))
for _ in range(8):  # large images: each takes a while to hand back
    cache.fetch(sys.argv[1], 4096)
while not got:
    app.processEvents()
    time.sleep(0.001)
time.sleep(float(sys.argv[2]))
cache.close()
"""


@pytest.mark.integration
def test_closing_while_workers_hand_back_images_lets_the_app_exit(tmp_path):
    """Workers stopped by close() while others' images were on their way back left the pool's
    reading thread waiting for the rest of a message, and the process never exited (2 runs of 5
    hung before images were handed back through files)."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), dtype=np.uint8)).save(big)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    for delay in ("0", "0.01", "0.03"):
        run = subprocess.run([sys.executable, "-c", _CLOSE_WHILE_SENDING, str(big), delay], env=env,
                             timeout=120, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr


def test_worker_threads_end_and_are_freed_cleanly_many_times(qtbot):
    """Short tasks back to back, as scans and trash runs are: the runner drops its references
    once the thread has ended, and only then says the task is over. With a deleteLater on the
    worker thread as well, this crashed (segfault or heap corruption) within a few hundred rounds."""
    from PySide6.QtCore import QObject, QTimer, Signal, Slot

    from app.gui.tasks import TaskRunner

    class Worker(QObject):
        finished = Signal(object)

        @Slot()
        def run(self):
            self.finished.emit(list(range(50)))

    runner = TaskRunner()
    seen = {"results": 0, "ended": 0, "running_at_end": 0}

    def got(result):
        seen["results"] += len(result) == 50

    def ended(worker):
        seen["ended"] += 1
        seen["running_at_end"] += runner.running("job")  # over by then: on_end may start the next one
        if seen["ended"] < 300:
            QTimer.singleShot(0, start)

    def start():
        worker = Worker()
        worker.finished.connect(got)
        runner.start("job", worker, on_end=ended)
        assert runner.running("job") and runner.worker("job") is worker
        with pytest.raises(RuntimeError):
            runner.start("job", Worker())  # one task of a name at a time

    start()
    qtbot.waitUntil(lambda: seen["ended"] == 300 and not runner.running(), timeout=60_000)
    assert seen["results"] == 300
    assert seen["running_at_end"] == 0


def test_signals_do_not_leak_references():
    """PySide6 6.12.0 dropped a reference to True on every emit: on Python 3.11 a long scan's
    progress signals then freed True and aborted the interpreter. pyproject.toml excludes it; this
    checks whatever binding is installed."""
    import sys
    import threading

    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        tick = Signal(object)

    e = Emitter()
    before = sys.getrefcount(True), sys.getrefcount(False)
    for i in range(500):
        e.tick.emit(i)
    t = threading.Thread(target=lambda: [e.tick.emit(i) for i in range(500)])
    t.start()
    t.join()
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert after[0] >= before[0] - 20 and after[1] >= before[1] - 20, (before, after)


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process priorities here")
def test_scan_process_runs_at_a_lower_priority_than_the_window():
    import subprocess
    import sys

    code = ("import os; from app.gui import scan_process as sp; before = os.nice(0); sp._yield_to_the_window(); "
            "print(os.nice(0) - before, sp.SCAN_NICENESS)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1] and int(out[0]) > 0


@pytest.mark.integration
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes from /proc")
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_sigterm_or_sigint_closes_the_app_and_leaves_no_process_behind(tmp_path, signame):
    """The app as a person starts it, scanning; a signal closes it as Quit does: it exits with 0
    and none of its processes (scan, decoders, thumbnails, resource tracker) outlives it."""
    import signal
    import subprocess
    import sys
    import time

    from tests.test_scan_pipeline import _children, await_workers, still_alive

    root = tmp_path / "p"
    for n in range(40):
        ig.save(ig.photo(700 + n, (1600, 1200)), root / f"{n:02d}.jpg")
    config = tmp_path / "config"
    env = dict(os.environ, DOPPEL_OFFLINE="1", QT_QPA_PLATFORM="offscreen", DOPPEL_CONFIG_DIR=str(config),
               DOPPEL_DATA_DIR=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "app", str(root), "--scan"],
                            cwd=Path(__file__).resolve().parent.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers = await_workers(proc, 3, 90)  # the scan's process and its decoders
        time.sleep(0.5)
        workers |= _children(proc.pid)
        proc.send_signal(getattr(signal, signame))
        assert proc.wait(60) == 0, proc.stderr.read().decode(errors="replace")[-2000:]
        assert still_alive(workers) == set()
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_edited_copies_are_selected_only_when_asked_and_the_confirmation_counts_kinds(qtbot, window, photos,
                                                                                        monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    scan(qtbot, window, photos)
    gray = next(m for i in range(window.model.rowCount()) for m in window.model.group(i).members
                if m.row.path.endswith("a_gray.jpg"))
    assert gray.kind == "edited" and "grayscale copy" in gray.changes and window.model.keep[gray.row.path]
    assert sorted(os.path.basename(m.row.path) for m in window.model.to_trash()) == ["a_half.jpg", "b_q50.jpg"]
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    window.confirm_trash()
    assert "• 1 smaller copy" in asked[-1] and "• 1 re-encoded copy" in asked[-1] and "edited" not in asked[-1]
    window.options.select_edited.setChecked(True)
    regrouped(qtbot, window)
    assert window.settings.select_edited
    assert sorted(os.path.basename(m.row.path) for m in window.model.to_trash()) == \
        ["a_gray.jpg", "a_half.jpg", "b_q50.jpg"]
    window.confirm_trash()
    assert "• 1 edited copy" in asked[-1]
    assert window.review.trash_button.text().startswith("Move 3 files")


def test_a_large_group_preselects_nothing_until_it_is_looked_at(qtbot, window, tmp_path, monkeypatch):
    from app.core import ranking
    from app.gui.workers import ScanWorker

    # no groups-so-far update: the group shown by one would be looked at, and kept shown, before
    # the scan ends (the window keeps the group in view selected)
    monkeypatch.setattr(ScanWorker, "partial_every", 3600.0)

    root = tmp_path / "many"
    a = ig.photo(81, (900, 600))
    ig.save(a, root / "a.jpg", quality=95)
    for n in range(ranking.LARGE_GROUP + 2):  # more copies than a person checks at a glance
        (root / f"copy{n:02d}.jpg").write_bytes((root / "a.jpg").read_bytes())
    ig.save(ig.photo(82), root / "0" / "first.jpg")  # a small group, listed (and shown) first
    (root / "0" / "first copy.jpg").write_bytes((root / "0" / "first.jpg").read_bytes())
    scan(qtbot, window, root)
    assert window.model.rowCount() == 2
    group = window.model.group(1)
    assert group.needs_look and len(window.model.to_trash()) == 1  # the small group's copy only
    assert "open it to choose" in window.model.data(window.model.index(1))
    window.groups.setCurrentIndex(window.model.index(1))
    assert not group.needs_look
    assert len(window.model.to_trash()) == 1 + ranking.LARGE_GROUP + 2


def test_a_first_run_says_what_to_do_next_and_its_buttons_do_it(qtbot, window, tmp_path, monkeypatch):
    """No folders: the review area says how Doppel works and offers to add a folder; with a
    folder it offers the scan; a scan that finds no copies says so with the count."""
    from PySide6.QtWidgets import QFileDialog

    from app.gui.welcome import NO_COPIES, NO_FOLDERS, READY

    assert window.review.stack.currentWidget() is window.review.welcome
    assert window.review.welcome.state == NO_FOLDERS
    assert window.review.welcome.button.isVisible() and window.review.welcome.button.text() == "Add a photo folder…"
    assert "Nothing is deleted" in window.review.welcome.text.text()

    folder = tmp_path / "different"
    for seed in (61, 62):
        ig.save(ig.photo(seed), folder / f"{seed}.jpg")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    qtbot.mouseClick(window.review.welcome.button, Qt.MouseButton.LeftButton)
    assert window.folder_list() == [str(folder)]
    assert window.review.welcome.state == READY and window.review.welcome.title.text() == "1 folder ready to scan"

    with qtbot.waitSignal(window.scan_finished, timeout=120_000):
        qtbot.mouseClick(window.review.welcome.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.tasks.running("scan"), timeout=10_000)
    assert window.review.welcome.state == NO_COPIES
    assert "None of the 2 photos" in window.review.welcome.text.text()
    assert not window.review.welcome.button.isVisible()


def test_the_groups_replace_the_first_run_panel(qtbot, window, photos):
    scan(qtbot, window, photos)
    assert window.review.stack.currentWidget() is window.view
