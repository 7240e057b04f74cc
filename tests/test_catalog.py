"""The catalog is the library's record of its files; Milvus holds their vectors. An unchanged
rescan reads the catalog alone, and the two are reconciled by id when they may disagree."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.core.catalog import Catalog, stamp
from app.core.domain import Row
from app.core.library import Library, LibraryLockedError
from app.core.pipeline import scan
from tests import imagegen as ig

ROOT = Path(__file__).resolve().parent.parent


def groups_of(result):
    return sorted(sorted(m.row.path for m in g.members) for g in result.groups)


def milvus_ids(lib):
    return {r["id"] for r in lib.client.query(lib.collection, filter="", output_fields=["id"], limit=16384)}


def row(i, dim, path="/photos/x.jpg"):
    return Row(i, path, 10, 20, "f" * 64, 4, 3, "JPEG", "m", "", np.full((3, 4), i, np.uint8),
               np.ones(dim, np.float32) / np.sqrt(dim))


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    a = ig.photo(21, (800, 600))
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_small.jpg")
    ig.save(ig.photo(22), root / "b.jpg")
    ig.save(ig.photo(23), root / "c.png")
    return root


def test_milvus_holds_only_ids_and_vectors(tmp_path, embedder):
    with Library(str(tmp_path / "lib.db"), embedder.name, embedder.dim) as lib:
        lib.upsert([row(1, embedder.dim, "/p/one.jpg")])
        fields = {f["name"] for f in lib.client.describe_collection(lib.collection)["fields"]}
        assert fields == {"id", "vector"}
        [stored] = lib.get([1], with_vector=True)
    assert stored.path == "/p/one.jpg" and stored.sha256 == "f" * 64  # from the catalog
    assert np.array_equal(stored.signature, np.full((3, 4), 1, np.uint8))
    assert np.allclose(stored.vector, row(1, embedder.dim).vector)  # from Milvus


def test_an_unchanged_rescan_does_not_start_milvus_and_finds_the_same_groups(tmp_path, photos, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        first = scan([str(photos)], lib, embedder, workers=0, keep_signatures=False)
    assert len(first.groups) == 1
    with Library(location, embedder.name, embedder.dim) as lib:
        assert not lib.started
        again = scan([str(photos)], lib, embedder, workers=0, keep_signatures=False)
        assert not lib.started  # nothing to read, search or verify: Milvus never started
        listed = {r.id for r in lib.rows()}
        assert milvus_ids(lib) == listed and len(listed) == 4
    assert again.stats.skipped == 4 and again.stats.embedded == 0
    assert groups_of(again) == groups_of(first)


def test_a_changed_file_starts_milvus_and_the_catalog_follows(tmp_path, photos, embedder):
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
        rows = lib.rows()
        assert {os.path.basename(r.path) for r in rows} == {"a.jpg", "a_small.jpg", "b.jpg", "d.jpg"}
        assert milvus_ids(lib) == {r.id for r in rows}


def test_an_unreadable_file_is_in_the_catalog_without_a_vector(tmp_path, embedder):
    with Library(str(tmp_path / "lib.db"), embedder.name, embedder.dim) as lib:
        lib.upsert([row(1, embedder.dim, "/p/good.jpg"),
                    Row(2, "/p/bad.jpg", 5, 6, "", 0, 0, "", "m", "truncated file", None)])
        assert {r.path: r.problem for r in lib.rows()} == {"/p/good.jpg": "", "/p/bad.jpg": "truncated file"}
        assert milvus_ids(lib) == {1}
        assert [[i for i, _ in hits] for hits in lib.neighbours(row(1, embedder.dim).vector[None], 5)] == [[1]]
        lib.upsert([Row(1, "/p/good.jpg", 11, 21, "", 0, 0, "", "m", "now unreadable", None)])
        assert milvus_ids(lib) == set()  # its old vector went with it


KILLED_WRITER = """
import os, signal, sys
import numpy as np
from app.core.domain import Row
from app.core.library import Library
from app.core.model import DIMS, FALLBACK_NAME
lib = Library(sys.argv[1], FALLBACK_NAME, DIMS[FALLBACK_NAME])
lib.upsert([Row(7, "/p/killed.jpg", 1, 1, "", 1, 1, "JPEG", "m", "", None,
                np.ones(DIMS[FALLBACK_NAME], np.float32))])
os.kill(os.getpid(), signal.SIGKILL)  # never closed
"""


def test_a_session_killed_after_writing_is_reconciled_on_the_next_open(tmp_path, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.upsert([row(1, embedder.dim, "/p/one.jpg")])
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, location], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Library(location, embedder.name, embedder.dim) as lib:
        assert lib.started  # the catalog was left unsynced: reconciled before anyone reads it
        assert {r.path for r in lib.rows()} == {"/p/one.jpg", "/p/killed.jpg"}
        assert milvus_ids(lib) == {1, 7}
    with Library(location, embedder.name, embedder.dim) as lib:
        assert not lib.started  # and trusted again once that session closed


def test_vectors_and_catalog_rows_without_their_other_half_are_reconciled(tmp_path, embedder):
    """A vector without a catalog row is deleted; a catalog photo without a vector is dropped, so
    its file is read again."""
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.upsert([row(1, embedder.dim, "/p/one.jpg"), row(2, embedder.dim, "/p/two.jpg")])
        lib.client.delete(lib.collection, ids=[2])  # behind the catalog's back
        lib.client.upsert(lib.collection, [{"id": 9, "vector": row(9, embedder.dim).vector.tolist()}])
        catalog_path, meta = lib.catalog.path, lib.catalog.t.meta
    import sqlite3

    with sqlite3.connect(catalog_path) as db:  # as a session that died between the two writes leaves it
        db.execute(f"UPDATE {meta} SET value = '0' WHERE key = 'synced'")
    with Library(location, embedder.name, embedder.dim) as lib:
        assert {r.path for r in lib.rows()} == {"/p/one.jpg"}
        assert milvus_ids(lib) == {1}


def test_a_library_folder_deleted_behind_doppels_back_is_read_again(tmp_path, photos, embedder):
    import shutil

    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        scan([str(photos)], lib, embedder, workers=0)
    shutil.rmtree(location)
    with Library(location, embedder.name, embedder.dim) as lib:
        assert lib.rows() == []  # the catalog follows Milvus: no vectors, no photos
        again = scan([str(photos)], lib, embedder, workers=0)
    assert again.stats.embedded == 4 and len(again.groups) == 1


def test_a_library_is_held_against_a_second_user_until_it_is_closed(tmp_path, embedder):
    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.upsert([row(1, embedder.dim)])
    with Library(location, embedder.name, embedder.dim, user="the Doppel window") as lib:
        assert not lib.started
        with pytest.raises(LibraryLockedError, match="in use by the Doppel window"):
            Library(location, embedder.name, embedder.dim)
    with Library(location, embedder.name, embedder.dim) as lib:  # and lets go of it on close
        assert [r.id for r in lib.rows()] == [1]


def test_the_windows_rescan_keeps_its_signatures_without_starting_milvus(tmp_path, photos, embedder):
    """The window regroups from a scan's result, so it keeps the paired photos' signatures: on a
    rescan they come from the catalog, for the files as they are now."""
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
    catalog = Catalog(str(tmp_path / "catalog.sqlite"), {})
    sig = np.arange(12, dtype=np.uint8).reshape(3, 4)
    catalog.add_signatures({7: (sig, b"features")}, {7: stamp(100, 1)})
    assert catalog.signatures_held({7: stamp(100, 1)}) == {7}
    assert catalog.signatures_held({7: stamp(100, 2)}) == set()  # touched since
    held, features = catalog.signatures([7])[7]
    assert np.array_equal(held, sig) and features == b"features"
    catalog.close()


def test_new_verification_settings_keep_the_files_and_drop_what_was_derived(tmp_path):
    path = str(tmp_path / "catalog.sqlite")
    catalog = Catalog(path, {"verify": 1})
    catalog.put_files([(7, "/p/\udcff.jpg", 100, 1, "", 4, 3, "JPEG", "m", "")])  # a non-UTF-8 name
    catalog.add_signatures({7: (np.zeros((3, 4), np.uint8), b"features")}, {7: stamp(100, 1)})
    catalog.close()
    catalog = Catalog(path, {"verify": 2})
    assert catalog.file_rows() == [(7, "/p/\udcff.jpg", 100, 1, "", 4, 3, "JPEG", "m", "")]
    sig, features = catalog.signatures([7])[7]
    assert sig.shape == (3, 4) and features is None  # read again where verification needs them
    catalog.close()


def test_a_refused_write_leaves_the_library_to_be_reconciled(tmp_path, embedder):
    from app.core.library import LibraryError

    location = str(tmp_path / "lib.db")
    with Library(location, embedder.name, embedder.dim) as lib:
        lib.upsert([row(1, embedder.dim, "/p/one.jpg")])
    with Library(location, embedder.name, embedder.dim) as lib:
        with pytest.raises(LibraryError, match="cannot write to the library"):
            lib.upsert([row(2, embedder.dim + 1, "/p/wrong.jpg")])  # a vector Milvus refuses
    with Library(location, embedder.name, embedder.dim) as lib:
        assert lib.started  # not trusted blindly after a failed write
        assert [r.path for r in lib.rows()] == ["/p/one.jpg"] and milvus_ids(lib) == {1}


def test_one_file_holds_each_models_tables_and_the_marks_outlive_both(tmp_path):
    from app.core import catalog as catalog_mod
    from app.core.decisions import Decisions

    location = str(tmp_path / "lib.db")
    path = catalog_mod.location_for(location)
    first = Catalog(path, {"verify": 1}, "photos_v2_model_a")
    first.put_files([(1, "/p/a.jpg", 100, 1, "", 4, 3, "JPEG", "a", "")])
    first.close()
    d = Decisions.for_library(location)
    assert d.path == path  # the marks are in the catalog's file
    d.mark("apart", [("/p/a.jpg", "s1"), ("/p/b.jpg", "s2")])
    d.close()

    second = Catalog(path, {"verify": 1}, "photos_v2_model_b")
    assert second.file_rows() == []  # another model's collection: its own ids
    second.close()
    # new verification settings empty the collection's outcomes, and the marks stay
    again = Catalog(path, {"verify": 2}, "photos_v2_model_a")
    assert [r[1] for r in again.file_rows()] == ["/p/a.jpg"]
    again.drop_collection("photos_v2_model_b")
    again.close()
    d = Decisions.for_library(location)
    assert d.apart() == {("s1", "s2")}
    d.close()
    assert sorted(os.listdir(tmp_path)) == ["lib.db.catalog.sqlite"]


def test_an_earlier_versions_catalog_and_marks_are_taken_over_once(tmp_path):
    import sqlite3

    from app.core import catalog as catalog_mod
    from app.core import decisions

    location = str(tmp_path / "lib.db")
    old_catalog = catalog_mod.legacy_location(location, "photos_v2_m")
    with sqlite3.connect(old_catalog) as db:  # the layout of a catalog file of its own
        db.executescript(
            "CREATE TABLE files (id INTEGER PRIMARY KEY, path BLOB, size INTEGER, mtime_ns INTEGER, sha256 TEXT,"
            " width INTEGER, height INTEGER, format TEXT, model TEXT, problem TEXT);"
            "INSERT INTO files VALUES (5, CAST('/p/x.jpg' AS BLOB), 10, 2, 'sx', 4, 3, 'JPEG', 'm', '');")
    db.close()
    old_marks = decisions.legacy_location(location)
    with sqlite3.connect(old_marks) as db:
        db.executescript(
            "CREATE TABLE marks (id INTEGER PRIMARY KEY, made REAL, what TEXT, paths TEXT);"
            "CREATE TABLE apart (a TEXT, b TEXT, mark INTEGER, PRIMARY KEY (a, b, mark));"
            "INSERT INTO marks VALUES (3, 1.0, 'kept apart', '/p/x.jpg');"
            "INSERT INTO apart VALUES ('sx', 'sy', 3);")
    db.close()

    cat = Catalog(catalog_mod.location_for(location), {}, "photos_v2_m", legacy=old_catalog)
    assert cat.file_rows() == [(5, "/p/x.jpg", 10, 2, "sx", 4, 3, "JPEG", "m", "")]
    cat.close()
    assert decisions.apart_for(location) == {("sx", "sy")}
    d = decisions.Decisions.for_library(location)
    assert [(m.what, m.paths) for m in d.marks()] == [("kept apart", ("/p/x.jpg",))]
    d.close()
    # renamed, not deleted, and not read twice
    assert not os.path.exists(old_catalog) and os.path.exists(old_catalog + ".imported")
    assert not os.path.exists(old_marks) and os.path.exists(old_marks + ".imported")
    assert decisions.apart_for(location) == {("sx", "sy")}
    d = decisions.Decisions.for_library(location)
    assert len(d.marks()) == 1
    d.close()
