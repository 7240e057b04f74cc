"""An unchanged rescan answers from the library's snapshot, and only while the library's files are untouched."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.core import library_snapshot
from app.core.library import Library, LibraryLockedError, Row
from app.core.pipeline import scan
from tests import imagegen as ig

ROOT = Path(__file__).resolve().parent.parent


def groups_of(result):
    return sorted(sorted(m.row.path for m in g.members) for g in result.groups)


def meta(rows):
    return sorted((r.id, r.path, r.size, r.mtime_ns, r.sha256, r.width, r.height, r.format, r.model, r.problem)
                  for r in rows)


def milvus_rows(location, embedder):
    """The rows as Milvus has them, with the snapshot out of the way."""
    moved = {}
    for p in Path(location).parent.glob(Path(location).name + ".*.rows.sqlite"):
        moved[p] = p.read_bytes()
        p.unlink()
    try:
        with Library(location, embedder.name, embedder.dim) as lib:
            assert lib.started
            return meta(lib.rows())
    finally:
        for p, data in moved.items():
            p.write_bytes(data)


def row(i, dim, path="/photos/x.jpg"):
    return Row(i, path, 10, 20, "f" * 64, 4, 3, "JPEG", "m", "", None, np.ones(dim, np.float32) / np.sqrt(dim))


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    a = ig.photo(21, (800, 600))
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_small.jpg")
    ig.save(ig.photo(22), root / "b.jpg")
    ig.save(ig.photo(23), root / "c.png")
    return root


def test_an_unchanged_rescan_does_not_start_milvus_and_finds_the_same_groups(tmp_path, photos, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        first = scan([str(photos)], lib, embedder, workers=0, keep_signatures=False)
    assert len(first.groups) == 1
    with Library(location, embedder.name, embedder.dim) as lib:
        assert not lib.started
        again = scan([str(photos)], lib, embedder, workers=0, keep_signatures=False)
        assert not lib.started  # nothing to read, search or verify: Milvus never started
        from_snapshot = meta(lib.rows())
    assert again.stats.skipped == 4 and again.stats.embedded == 0
    assert groups_of(again) == groups_of(first)
    assert from_snapshot == milvus_rows(location, embedder)
    assert len(from_snapshot) == 4


def test_a_changed_file_starts_milvus_and_the_snapshot_follows(tmp_path, photos, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        scan([str(photos)], lib, embedder, workers=0, keep_signatures=False)
    ig.save(ig.photo(24), photos / "d.jpg")
    (photos / "c.png").unlink()
    with Library(location, embedder.name, embedder.dim) as lib:
        result = scan([str(photos)], lib, embedder, workers=0, keep_signatures=False)
        assert lib.started
    assert (result.stats.embedded, result.stats.removed) == (1, 1)
    with Library(location, embedder.name, embedder.dim) as lib:
        assert not lib.started
        paths = {os.path.basename(r.path) for r in lib.rows()}
    assert paths == {"a.jpg", "a_small.jpg", "b.jpg", "d.jpg"}
    assert meta_paths(milvus_rows(location, embedder)) == paths


def meta_paths(rows):
    return {os.path.basename(r[1]) for r in rows}


def test_writes_in_a_snapshot_session_are_kept_in_the_next_snapshot(tmp_path, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.rows()
        lib.upsert([row(1, embedder.dim, "/p/one.jpg"), row(2, embedder.dim, "/p/two.jpg")])
    with Library(location, embedder.name, embedder.dim) as lib:
        assert not lib.started
        lib.upsert([row(3, embedder.dim, "/p/three.jpg")])  # starts Milvus for the write
        lib.delete([1])
        assert lib.started
    with Library(location, embedder.name, embedder.dim) as lib:
        assert not lib.started
        assert {r.path for r in lib.rows()} == {"/p/two.jpg", "/p/three.jpg"}
    assert meta_paths(milvus_rows(location, embedder)) == {"two.jpg", "three.jpg"}


def test_a_write_by_another_program_is_noticed(tmp_path, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.rows()
        lib.upsert([row(1, embedder.dim, "/p/one.jpg")])
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    other = MilvusClient(location)
    collection = [c for c in other.list_collections() if c.startswith("photos_")][0]
    r = row(2, embedder.dim, "/p/elsewhere.jpg")
    other.upsert(collection, [{"id": 2, "path": r.path, "size": 1, "mtime_ns": 1, "sha256": "", "width": 1,
                               "height": 1, "format": "JPEG", "model": "m", "problem": "", "signature": "",
                               "vector": r.vector.tolist()}])
    other.close()
    server_manager_instance.release_server(location)
    with Library(location, embedder.name, embedder.dim) as lib:
        assert lib.started  # the snapshot no longer matches the files
        assert {r.path for r in lib.rows()} == {"/p/one.jpg", "/p/elsewhere.jpg"}


KILLED_WRITER = """
import os, signal, sys, time
import numpy as np
from app.core import library_snapshot
from app.core.library import Library, Row
from app.core.model import DIMS, FALLBACK_NAME
location = sys.argv[1]
lib = Library(location, FALLBACK_NAME, DIMS[FALLBACK_NAME])
before = library_snapshot.files_stamp(location)
lib.upsert([Row(7, "/p/killed.jpg", 1, 1, "", 1, 1, "JPEG", "m", "", None,
                np.ones(DIMS[FALLBACK_NAME], np.float32))])
deadline = time.monotonic() + 30
while library_snapshot.files_stamp(location) == before and time.monotonic() < deadline:
    time.sleep(0.05)  # until the write reached the library's files
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_session_killed_after_writing_leaves_no_trusted_snapshot(tmp_path, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.rows()
        lib.upsert([row(1, embedder.dim, "/p/one.jpg")])
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, location], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Library(location, embedder.name, embedder.dim) as lib:
        assert lib.started
        assert {r.path for r in lib.rows()} == {"/p/one.jpg", "/p/killed.jpg"}


def test_a_snapshot_session_holds_the_library_against_a_second_user(tmp_path, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.rows()
    with Library(location, embedder.name, embedder.dim, user="the Doppel window") as lib:
        assert not lib.started
        with pytest.raises(LibraryLockedError, match="in use by the Doppel window"):
            Library(location, embedder.name, embedder.dim)
        lib.upsert([row(1, embedder.dim)])  # it can still start Milvus itself
    with Library(location, embedder.name, embedder.dim) as lib:  # and lets go of it on close
        assert [r.id for r in lib.rows()] == [1]


def test_a_refused_write_leaves_no_snapshot_of_rows_that_were_never_stored(tmp_path, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.rows()
        lib.upsert([row(1, embedder.dim, "/p/one.jpg")])
    with Library(location, embedder.name, embedder.dim) as lib:
        assert not lib.started
        lib.upsert([row(2, embedder.dim, "/p/two.jpg")])
        with pytest.raises(Exception, match="max_length"):
            lib.upsert([row(3, embedder.dim, "/p/" + "x" * 9000 + ".jpg")])
    with Library(location, embedder.name, embedder.dim) as lib:
        assert lib.started  # this session's writes changed the files; no snapshot was written for them
        assert sorted(r.path for r in lib.rows()) == ["/p/one.jpg", "/p/two.jpg"]


def test_the_windows_rescan_keeps_its_signatures_without_starting_milvus(tmp_path, photos, embedder):
    """The window regroups from a scan's result, so it keeps the paired photos' signatures: after
    the first scan they come from the pair cache, for the files as they are now."""
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        first = scan([str(photos)], lib, embedder, workers=0)
    with Library(location, embedder.name, embedder.dim) as lib:
        again = scan([str(photos)], lib, embedder, workers=0)
        assert not lib.started
    assert groups_of(again) == groups_of(first)
    paired = {i for p in again.pairs for i in (p.a, p.b)}
    assert paired
    with Library(location, embedder.name, embedder.dim) as lib:
        stored = {r.id: r.signature for r in lib.get(sorted(paired), with_signature=True)}
    kept = {r.id: r.signature for r in again.rows if r.id in paired}
    assert kept.keys() == stored.keys() and all(np.array_equal(kept[i], stored[i]) for i in kept)
    again.regroup(0.9)  # and regrouping works from them
    assert all(len(g.members) >= 2 for g in again.groups)


def test_a_remembered_signature_is_only_for_the_file_as_it_was(tmp_path):
    from app.core.pair_cache import PairCache, stamp

    cache = PairCache(str(tmp_path / "pairs.sqlite"), {})
    sig = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cache.add_signatures({7: (sig, b"features")}, {7: stamp(100, 1)})
    assert cache.signatures_held({7: stamp(100, 1)}) == {7}
    assert cache.signatures_held({7: stamp(100, 2)}) == set()  # touched since
    held, features = cache.signatures([7])[7]
    assert np.array_equal(held, sig) and features == b"features"
    cache.close()
