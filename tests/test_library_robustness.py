"""The library survives a killed scan, refuses a second user clearly, and rebuilds old schemas."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.library import SCHEMA_VERSION, Library, LibraryError, collection_name
from tests import imagegen as ig

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_mid_scan_keeps_stored_rows_and_resumes(tmp_path, embedder):
    root = tmp_path / "p"
    for i in range(120):
        ig.save(ig.photo(300 + i, (400, 300)), root / f"{i:03d}.jpg")
    lib = tmp_path / "lib.db"
    proc = cli("scan", str(root), "--library", str(lib), "--workers", "0")
    # Wait until it is embedding and the first batches reached the library's files, then kill it.
    for line in proc.stderr:
        if line.startswith("embed"):
            break

    def stored_bytes():
        return sum(f.stat().st_size for f in lib.rglob("*") if f.is_file())

    start = stored_bytes()
    deadline = time.monotonic() + 60
    while stored_bytes() < start + 300_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    from app.core.progress import Progress

    notes = []
    with Library(str(lib), embedder.name, embedder.dim, progress=Progress(lambda u: notes.append(u.message))) as l:
        stored = l.count()
        paths = {r.path for r in l.rows()}
    print("stored before the kill:", stored)
    assert 0 < len(paths) == stored < 120
    assert any("interrupted" in n for n in notes)  # says why opening may take a while
    done = subprocess.run([sys.executable, "-m", "app.cli", "scan", str(root), "--library", str(lib),
                           "--json", "-", "--quiet", "--workers", "0"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    import json
    stats = json.loads(done.stdout)["stats"]
    assert stats["skipped"] == stored and stats["embedded"] == 120 - stored  # nothing decoded twice
    with Library(str(lib), embedder.name, embedder.dim) as l:
        assert l.count() == 120  # and nothing duplicated


def test_second_user_of_a_library_gets_a_clear_message(tmp_path, embedder):
    (tmp_path / "p").mkdir()
    lib = tmp_path / "lib.db"
    with Library(str(lib), embedder.name, embedder.dim, user="the Doppel window"):
        proc = cli("scan", str(tmp_path / "p"), "--library", str(lib))
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3
    assert "in use by the Doppel window (pid" in err
    assert "Traceback" not in err


def test_lock_is_released_on_close(tmp_path, embedder):
    lib = str(tmp_path / "lib.db")
    Library(lib, embedder.name, embedder.dim).close()
    Library(lib, embedder.name, embedder.dim).close()


def test_older_schema_is_rebuilt_with_a_notice(tmp_path, embedder):
    lib = str(tmp_path / "lib.db")
    old = collection_name(embedder.name).replace(f"photos_v{SCHEMA_VERSION}_", f"photos_v{SCHEMA_VERSION - 1}_")
    # an older Doppel's library, written by another process as pymilvus opens a file
    subprocess.run([sys.executable, "-c", "import sys; from pymilvus import MilvusClient; "
                    "MilvusClient(sys.argv[1]).create_collection(sys.argv[2], dimension=8)", lib, old],
                   check=True, timeout=120)
    (tmp_path / f"lib.db.{old}.pairs.sqlite").write_bytes(b"")  # what it kept beside the library
    with Library(lib, embedder.name, embedder.dim) as l:
        assert any("older Doppel" in n for n in l.notices)
        assert old not in l.client.list_collections()
        assert l.count() == 0
    assert not (tmp_path / f"lib.db.{old}.pairs.sqlite").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_location_is_a_clear_error(tmp_path, embedder):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(LibraryError, match="read-only"):
        Library(str(ro / "lib.db"), embedder.name, embedder.dim)


@pytest.fixture
def small_fs(tmp_path):
    """A tiny real filesystem (tmpfs) to fill up; needs root and mount rights, else skipped."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)],
                                            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.integration
def test_disk_full_is_a_clear_error_and_photos_are_untouched(small_fs, tmp_path):
    root = tmp_path / "p"
    for i in range(40):
        ig.save(ig.photo(500 + i, (320, 240)), root / f"{i:02d}.jpg")
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "scan", str(root), "--library", str(small_fs / "lib.db"),
                           "--workers", "0", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    # Milvus ("No space left on device") or the catalog (SQLite: "database or disk is full")
    assert "doppel-cli: cannot write to the library" in proc.stderr
    assert "No space left" in proc.stderr or "disk is full" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before


def test_read_only_filesystem_is_a_clear_error(small_fs, tmp_path, embedder):
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    with pytest.raises(LibraryError, match="read-only"):
        Library(str(small_fs / "lib.db"), embedder.name, embedder.dim)
