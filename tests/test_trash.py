"""Trashing into a real freedesktop trash (XDG_DATA_HOME is a temp dir, see conftest)."""
import os
from pathlib import Path

import pytest

from app.core.trash import GroupDecision, Journal, ScannedFile, restore, sha256_of, trash_files


def scanned(path: Path) -> ScannedFile:
    st = path.stat()
    return ScannedFile(str(path), st.st_size, st.st_mtime_ns, sha256_of(str(path)))


@pytest.fixture
def trio(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    files = []
    for name, data in (("keep.jpg", b"A" * 1000), ("copy1.jpg", b"B" * 500), ("copy2.jpg", b"C" * 300)):
        (root / name).write_bytes(data)
        files.append(scanned(root / name))
    return root, files


def trash_dir() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "Trash"


def test_trashed_files_land_in_the_trash_and_are_journaled(trio, tmp_path):
    root, files = trio
    journal = Journal(tmp_path / "journal.jsonl")
    out = trash_files([GroupDecision(files, {files[1].path, files[2].path})], journal)
    assert out.problems == []
    assert sorted(Path(e.path).name for e in out.trashed) == ["copy1.jpg", "copy2.jpg"]
    assert not (root / "copy1.jpg").exists() and (root / "keep.jpg").exists()
    entries = journal.entries()
    assert [(Path(e.path).name, e.size, e.action) for e in entries] == [("copy1.jpg", 500, "trashed"), ("copy2.jpg", 300, "trashed")]
    assert all(e.sha256 == f.sha256 for e, f in zip(entries, files[1:]))
    for e, data in zip(entries, (b"B" * 500, b"C" * 300)):
        assert Path(e.trash_path).parent == trash_dir() / "files"
        assert Path(e.trash_path).read_bytes() == data  # really in the freedesktop trash
    assert out.freed == 800


def test_never_trashes_every_copy(trio, tmp_path):
    root, files = trio
    out = trash_files([GroupDecision(files, {f.path for f in files})], Journal(tmp_path / "j.jsonl"))
    assert out.trashed == []
    assert all("every copy" in p.error for p in out.problems) and len(out.problems) == 3
    assert all(Path(f.path).exists() for f in files)


def test_refuses_when_the_kept_copy_is_gone(trio, tmp_path):
    root, files = trio
    (root / "keep.jpg").unlink()  # the user deleted the keeper since the scan
    out = trash_files([GroupDecision(files, {files[1].path, files[2].path})], Journal(tmp_path / "j.jsonl"))
    assert out.trashed == [] and (root / "copy1.jpg").exists()
    assert "no kept copy" in out.problems[0].error


def test_reference_folder_files_are_never_trashed(tmp_path):
    ref = tmp_path / "archive"
    ref.mkdir()
    (ref / "a.jpg").write_bytes(b"x" * 10)
    (tmp_path / "b.jpg").write_bytes(b"y" * 10)
    files = [scanned(ref / "a.jpg"), scanned(tmp_path / "b.jpg")]
    out = trash_files([GroupDecision(files, {files[0].path})], Journal(tmp_path / "j.jsonl"),
                      reference_folders=[str(ref)])
    assert out.trashed == [] and (ref / "a.jpg").exists()
    assert "reference folder" in out.problems[0].error


def test_file_changed_since_scan_is_skipped_and_batch_goes_on(trio, tmp_path):
    root, files = trio
    (root / "copy1.jpg").write_bytes(b"Z" * 500)  # same size, new content
    os.utime(root / "copy1.jpg", ns=(files[1].mtime_ns, files[1].mtime_ns))  # and same mtime
    out = trash_files([GroupDecision(files, {files[1].path, files[2].path})], Journal(tmp_path / "j.jsonl"))
    assert [Path(e.path).name for e in out.trashed] == ["copy2.jpg"]
    assert (root / "copy1.jpg").read_bytes() == b"Z" * 500
    assert "content changed" in out.problems[0].error


def test_restore_puts_the_file_back(trio, tmp_path):
    root, files = trio
    journal = Journal(tmp_path / "j.jsonl")
    trash_files([GroupDecision(files, {files[2].path})], journal)
    (entry,) = journal.trashed_now()
    assert restore(entry, journal) is None
    assert (root / "copy2.jpg").read_bytes() == b"C" * 300
    assert journal.trashed_now() == []
    assert not (trash_dir() / "info" / (Path(entry.trash_path).name + ".trashinfo")).exists()
    # Restoring twice is refused with a reason, never an exception.
    assert "no longer in the trash" in restore(entry, journal)


def test_cli_restore_and_journal(trio, tmp_path, monkeypatch):
    from app import paths
    from app.cli import main

    root, files = trio
    journal = Journal(paths.journal_path())
    trash_files([GroupDecision(files, {files[1].path})], journal)
    assert not Path(files[1].path).exists()
    assert main(["journal"]) == 0
    assert main(["restore", files[1].path]) == 0
    assert Path(files[1].path).read_bytes() == b"B" * 500
    assert main(["restore", files[1].path]) == 0  # nothing left to do: reported, not an error
