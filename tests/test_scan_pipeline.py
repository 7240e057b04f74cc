"""End to end through the real pipeline: Pillow-made photos, a real Milvus Lite file, real model."""
import os
import time
from pathlib import Path

import pytest

from app.core.library import Library
from app.core.pipeline import scan
from app.core.progress import Progress
from tests import imagegen as ig


def group_sets(result, root: Path):
    return sorted(sorted(os.path.relpath(m.row.path, root) for m in g.members) for g in result.groups)


@pytest.fixture
def photo_folder(tmp_path):
    root = tmp_path / "photos"
    a = ig.photo(1, (800, 600))
    b = ig.photo(2, (640, 480))
    ig.save(a, root / "a.jpg")
    ig.save(a, root / "copies" / "a_copy.jpg")  # byte-identical after the copy below
    (root / "copies" / "a_copy.jpg").write_bytes((root / "a.jpg").read_bytes())
    ig.save(ig.resized(a, 0.5), root / "copies" / "a_small.jpg")
    ig.save(a, root / "copies" / "a_q40.jpg", quality=40)
    ig.save(ig.grayscale(a), root / "edits" / "a_gray.jpg")
    ig.save(ig.brightened(a, 1.3), root / "edits" / "a_bright.png")
    ig.save(b, root / "b.png")
    ig.save(ig.resized(b, 0.7), root / "b_small.webp", quality=85)
    for seed in (3, 4, 5, 6):  # distinct photos: must never share a group
        ig.save(ig.photo(seed), root / "others" / f"p{seed}.jpg")
    return root


def test_scan_finds_copies_and_never_groups_distinct_photos(photo_folder, library, embedder):
    result = scan([str(photo_folder)], library, embedder, workers=0)
    assert result.stats.files == 12
    assert result.stats.embedded == 12
    assert result.problems == []
    assert group_sets(result, photo_folder) == [
        ["a.jpg", "copies/a_copy.jpg", "copies/a_q40.jpg", "copies/a_small.jpg", "edits/a_bright.png", "edits/a_gray.jpg"],
        ["b.png", "b_small.webp"],
    ]
    a_group = next(g for g in result.groups if len(g.members) == 6)
    kinds = {os.path.relpath(m.row.path, photo_folder): (m.kind, m.keep) for m in a_group.members}
    # The keeper is a full-size colour JPEG, unedited; the copy at no loss is preselected, the
    # edits are kept and say what they are.
    keeper = os.path.relpath(a_group.keeper.row.path, photo_folder)
    assert keeper in ("a.jpg", "copies/a_copy.jpg", "copies/a_q40.jpg")
    assert kinds.pop(keeper) == ("keeper", True)
    assert kinds.pop("copies/a_small.jpg") == ("smaller copy", False)
    assert kinds.pop("edits/a_gray.jpg") == ("edited", True)
    assert kinds.pop("edits/a_bright.png") == ("edited", True)
    assert set(kinds.values()) <= {("identical", False), ("re-encoded", False)}
    gray = next(m for m in a_group.members if m.row.path.endswith("a_gray.jpg"))
    bright = next(m for m in a_group.members if m.row.path.endswith("a_bright.png"))
    assert "grayscale copy" in gray.changes and "brighter" in bright.changes


def test_exact_copies_alone_form_an_exact_group(tmp_path, library, embedder):
    root = tmp_path / "p"
    ig.save(ig.photo(11), root / "x.jpg")
    (root / "y.jpg").write_bytes((root / "x.jpg").read_bytes())
    ig.save(ig.photo(12), root / "z.jpg")
    result = scan([str(root)], library, embedder, workers=0)
    assert [(g.kind, len(g.members)) for g in result.groups] == [("exact", 2)]


def test_rescan_of_unchanged_folder_decodes_nothing(photo_folder, library, embedder):
    first = scan([str(photo_folder)], library, embedder, workers=0)
    second = scan([str(photo_folder)], library, embedder, workers=0)
    assert second.stats.embedded == 0
    assert second.stats.skipped == second.stats.files == 12
    assert group_sets(second, photo_folder) == group_sets(first, photo_folder)


def test_changed_file_is_reembedded_and_deleted_file_leaves_library(photo_folder, library, embedder):
    scan([str(photo_folder)], library, embedder, workers=0)
    # Replace the grayscale copy with a different photo: it must leave the group.
    changed = photo_folder / "edits" / "a_gray.jpg"
    ig.save(ig.photo(99), changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    gone = photo_folder / "b_small.webp"
    gone.unlink()
    result = scan([str(photo_folder)], library, embedder, workers=0)
    assert result.stats.embedded == 1
    assert result.stats.removed == 1
    assert str(gone) not in {r.path for r in library.rows()}
    assert group_sets(result, photo_folder) == [
        ["a.jpg", "copies/a_copy.jpg", "copies/a_q40.jpg", "copies/a_small.jpg", "edits/a_bright.png"],
    ]


def test_problem_files_are_reported_and_scan_goes_on(tmp_path, library, embedder):
    root = tmp_path / "p"
    a = ig.photo(21)
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_small.jpg")
    (root / "notes.png").write_text("this is not a picture")
    data = (root / "a.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "empty.jpg").write_bytes(b"")
    (root / "readme.txt").write_text("ignored: not an image by name or content")
    result = scan([str(root)], library, embedder, workers=0)
    problems = {Path(p.path).name: p.error for p in result.problems}
    assert set(problems) == {"notes.png", "truncated.jpg", "empty.jpg"}
    assert "not an image" in problems["notes.png"]
    assert "truncated" in problems["truncated.jpg"]
    assert "empty" in problems["empty.jpg"]
    assert group_sets(result, root) == [["a.jpg", "a_small.jpg"]]
    # Problem files are remembered: an unchanged bad file is not decoded again, but still reported.
    again = scan([str(root)], library, embedder, workers=0)
    assert again.stats.embedded == 0
    assert {Path(p.path).name for p in again.problems} == set(problems)


def test_worker_processes_give_the_same_groups(photo_folder, tmp_path, embedder):
    # More files than the inline threshold so the process pool really runs.
    for i in range(14):
        ig.save(ig.photo(100 + i, (320, 240)), photo_folder / "more" / f"m{i}.jpg")
    with Library(str(tmp_path / "w.db"), embedder.name, embedder.dim) as lib:
        result = scan([str(photo_folder)], lib, embedder, workers=2)
    assert result.stats.embedded == 26
    assert [len(g) for g in group_sets(result, photo_folder)] == [6, 2]


def test_cancel_keeps_what_was_embedded(tmp_path, embedder):
    root = tmp_path / "p"
    for i in range(40):
        ig.save(ig.photo(200 + i, (160, 120)), root / f"{i:02d}.jpg")
    holder = {}

    def listener(update):
        if update.stage == "embed" and update.done >= 16:
            holder["p"].cancel()

    holder["p"] = Progress(listener, max_rate=0)
    with Library(str(tmp_path / "c.db"), embedder.name, embedder.dim) as lib:
        result = scan([str(root)], lib, embedder, holder["p"], workers=0)
        assert result.stats.cancelled
        kept = lib.count()
        assert 16 <= kept < 40
        resumed = scan([str(root)], lib, embedder, workers=0)
    assert resumed.stats.skipped == kept
    assert resumed.stats.embedded == 40 - kept


def test_symlink_loop_and_hidden_folders(tmp_path, library, embedder):
    root = tmp_path / "p"
    ig.save(ig.photo(31), root / "sub" / "a.jpg")
    ig.save(ig.photo(32), root / ".hidden" / "h.jpg")
    os.symlink(root, root / "sub" / "loop")
    os.symlink(root / "missing.jpg", root / "broken.jpg")
    result = scan([str(root)], library, embedder, workers=0)
    assert result.stats.files == 1
    assert [Path(p.path).name for p in result.problems] == ["broken.jpg"]


def test_a_file_reached_through_links_is_listed_once(tmp_path):
    from app.core.walk import walk

    real = tmp_path / "real"
    ig.save(ig.photo(33, (64, 48)), real / "a.jpg")
    ig.save(ig.photo(34, (64, 48)), real / "deep" / "b.jpg")
    os.symlink(real / "a.jpg", real / "link_to_a.jpg")  # a file link beside its target
    os.symlink(real, tmp_path / "alias")  # the same folder under another name
    os.symlink(real / "deep", real / "deep_alias")  # a folder link inside the tree
    os.symlink(tmp_path / "alias", tmp_path / "alias_of_alias")  # a link to a link
    for roots in ([real], [tmp_path / "alias"], [real, tmp_path / "alias"], [tmp_path / "alias", real],
                  [tmp_path / "alias_of_alias", real / "deep_alias"]):
        names = sorted(Path(e.path).name for e in walk([str(r) for r in roots]))
        assert names == ["a.jpg", "b.jpg"], roots
    # a folder below a linked one, given beside its real self
    for roots in ([tmp_path / "alias" / "deep", real / "deep"], [real / "deep_alias", tmp_path / "alias_of_alias" / "deep"]):
        assert [Path(e.path).name for e in walk([str(r) for r in roots])] == ["b.jpg"], roots


def test_partial_groups_during_scan_agree_with_the_final_groups(photo_folder, library, embedder):
    for i in range(20):  # more than one batch
        ig.save(ig.photo(400 + i, (200, 150)), photo_folder / "more" / f"m{i:02d}.jpg")
    seen = []
    result = scan([str(photo_folder)], library, embedder, workers=0, on_partial=seen.append, partial_every=0)
    assert len(seen) >= 2
    final = {frozenset(m.row.path for m in g.members) for g in result.groups}
    for groups in seen:
        for g in groups:  # every group shown early is part of a final group
            paths = frozenset(m.row.path for m in g.members)
            assert any(paths <= f for f in final)
    assert {frozenset(m.row.path for m in g.members) for g in seen[-1]} == final
    # ranked before they are sent, and sent light: the window unpickles them holding the GIL
    last = {frozenset(m.row.path for m in g.members): g for g in seen[-1]}
    for g in result.groups:
        shown = last[frozenset(m.row.path for m in g.members)]
        assert [(m.row.path, m.keep) for m in shown.members] == [(m.row.path, m.keep) for m in g.members]
    assert all(g.pair_scores == {} and all(m.row.signature is None and m.row.vector is None for m in g.members)
               for groups in seen for g in groups)


def test_a_photo_whose_features_were_lost_is_read_again_to_verify_a_new_copy(tmp_path, library, embedder):
    """Local features live in the catalog, not in Milvus, and go when the verification settings
    change: the original a new copy is compared with is then decoded again, not left unverifiable."""
    root = tmp_path / "p"
    a = ig.photo(91, (900, 600))
    ig.save(a, root / "a.jpg")
    ig.save(ig.photo(92, (900, 600)), root / "b.jpg")
    assert scan([str(root)], library, embedder, workers=0).groups == []
    assert library.catalog.db.execute(f"SELECT count(*) FROM {library.catalog.t.signatures} WHERE features IS NOT NULL").fetchone()[0] == 2
    library.catalog.db.execute(f"UPDATE {library.catalog.t.signatures} SET features = NULL")  # what a settings change does
    library.catalog.db.commit()
    ig.save(ig.crop_fraction(a, 0.7), root / "a crop.jpg")
    result = scan([str(root)], library, embedder, workers=0)
    assert result.stats.embedded == 1  # only the new file was read into the library
    assert [sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups] == [["a crop.jpg", "a.jpg"]]


def test_heic_and_avif_photos_are_read_and_grouped_with_their_jpeg_copies(tmp_path, library, embedder):
    """What phones write: HEIC (pillow-heif, a dependency) and AVIF (Pillow's own)."""
    root = tmp_path / "p"
    for n, fmt in enumerate(("HEIF", "AVIF")):
        im = ig.photo(95 + n, (900, 600))
        ig.save(im, root / f"phone{n}.{fmt.lower()}", format=fmt, quality=90)
        ig.save(ig.resized(im, 0.5), root / f"phone{n} copy.jpg")
    result = scan([str(root)], library, embedder, workers=0)
    assert result.problems == []
    assert sorted(sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups) == [
        ["phone0 copy.jpg", "phone0.heif"], ["phone1 copy.jpg", "phone1.avif"]]
    formats = {os.path.basename(r.path): r.format for r in result.rows}
    assert formats["phone0.heif"] == "HEIF" and formats["phone1.avif"] == "AVIF"


def _children(pid: int) -> set[int]:
    """Every process descended from ``pid`` (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for c, pp in parents.items():
            if pp == p and c not in out:
                out.add(c)
                todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def await_workers(proc, least: int, seconds: float = 60) -> set[int]:
    """The processes descended from ``proc`` once there are at least ``least`` of them."""
    workers: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        if len(workers) >= least:
            break
        time.sleep(0.05)
    assert len(workers) >= least, f"{len(workers)} worker processes started, not {least}"
    return workers


def still_alive(workers: set[int], seconds: float = 10) -> set[int]:
    """Those of ``workers`` still alive after waiting up to ``seconds`` for them to end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    return {p for p in workers if _alive(p)}


@pytest.mark.integration
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes from /proc")
def test_a_scan_killed_with_sigkill_leaves_no_worker_process_behind(tmp_path):
    import signal
    import subprocess
    import sys

    root = tmp_path / "p"
    for n in range(60):
        ig.save(ig.photo(600 + n, (1600, 1200)), root / f"{n:02d}.jpg")
    env = dict(os.environ, DOPPEL_OFFLINE="1")
    scan_cmd = [sys.executable, "-m", "app.cli", "scan", str(root), "--library", str(tmp_path / "lib.db"), "--quiet"]
    proc = subprocess.Popen(scan_cmd, cwd=Path(__file__).resolve().parent.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers = await_workers(proc, 2)  # the decoders (and multiprocessing's resource tracker)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        left = {p: open(f"/proc/{p}/cmdline").read().replace("\0", " ")[:150] for p in still_alive(workers)}
        assert left == {}
    finally:
        if proc.poll() is None:
            proc.kill()
