"""The same pipeline against a real Milvus server (not milvus-lite).

Runs only when DOPPEL_TEST_MILVUS_URI names a server, e.g. one started from PyPI's
``milvus==2.3.5`` in its own venv (see README, "Milvus server"); `.ci/run` starts one, so CI
runs these. Each run uses a unique collection name so it never touches other data on that server.
"""
import os
import uuid

import pytest

from app.core import library as L
from app.core.pipeline import scan
from tests import imagegen as ig

URI = os.environ.get("DOPPEL_TEST_MILVUS_URI")
pytestmark = pytest.mark.skipif(not URI, reason="set DOPPEL_TEST_MILVUS_URI to a Milvus server to run")


def test_scan_rescan_and_groups_on_a_server(tmp_path, embedder, monkeypatch):
    model = f"test-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "p"
    a = ig.photo(81)
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_half.jpg")
    ig.save(ig.photo(82), root / "b.jpg")
    with L.Library(URI, model, embedder.dim) as lib:
        try:
            first = scan([str(root)], lib, embedder, workers=0)
            assert [sorted(os.path.basename(m.row.path) for m in g.members) for g in first.groups] == [["a.jpg", "a_half.jpg"]]
            second = scan([str(root)], lib, embedder, workers=0)
            assert second.stats.embedded == 0 and second.stats.skipped == 3
            (root / "b.jpg").unlink()
            third = scan([str(root)], lib, embedder, workers=0)
            assert third.stats.removed == 1 and lib.count() == 2
        finally:
            lib.client.drop_collection(lib.collection)


def test_the_same_scan_on_milvus_lite_and_on_a_server_gives_the_same_groups(tmp_path, embedder):
    from app.core import find

    root = tmp_path / "p"
    a, b = ig.photo(91, (900, 600)), ig.photo(92, (900, 600))
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_half.jpg")
    ig.save(ig.grayscale(a), root / "a_gray.jpg")
    ig.save(ig.crop_fraction(a, 0.7), root / "a_crop.jpg")
    ig.save(b, root / "b.jpg")
    ig.save(b, root / "b_q50.jpg", quality=50)
    ig.save(ig.photo(93), root / "c.jpg")

    def groups(result):
        return sorted(sorted((os.path.basename(m.row.path), m.keep) for m in g.members) for g in result.groups)

    with L.Library(str(tmp_path / "lite" / "l.db"), embedder.name, embedder.dim) as lite:
        on_lite = scan([str(root)], lite, embedder, workers=0)
    model = f"test-{uuid.uuid4().hex[:8]}"
    with L.Library(URI, model, embedder.dim) as server:
        try:
            on_server = scan([str(root)], server, embedder, workers=0)
            # and a photo's copies, found by the server's search
            found = find.find_copies(str(root / "a_half.jpg"), server, embedder)
        finally:
            server.client.drop_collection(server.collection)
    assert groups(on_server) == groups(on_lite) and len(on_lite.groups) == 2
    assert sorted(os.path.basename(c.row.path) for c in found.copies) == ["a.jpg", "a_crop.jpg", "a_gray.jpg"]


def test_a_server_database_and_token_are_used(tmp_path, embedder):
    """The library in a database of its own on the server, opened with a token (the test
    server does not check it; a secured one does)."""
    from pymilvus import MilvusClient

    database = f"doppel_{uuid.uuid4().hex[:8]}"
    admin = MilvusClient(URI)
    admin.create_database(database)
    root = tmp_path / "p"
    a = ig.photo(95)
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_half.jpg")
    try:
        with L.Library(URI, embedder.name, embedder.dim, token="root:Milvus", database=database) as lib:
            assert lib.location == f"{URI}#{database}"
            result = scan([str(root)], lib, embedder, workers=0)
            assert len(result.groups) == 1 and lib.count() == 2
            collection = lib.collection
        assert MilvusClient(URI, db_name=database).has_collection(collection)
        assert not admin.has_collection(collection)  # not in the default database
        # the command line's options name the same library: nothing new to read
        from app import cli

        assert cli.main(["scan", str(root), "--library", URI, "--database", database, "--token", "root:Milvus",
                         "--fallback-model", "--quiet", "--json", str(tmp_path / "r.json")]) == 0
        report = __import__("json").loads((tmp_path / "r.json").read_text())
        assert report["stats"]["skipped"] == 2 and len(report["groups"]) == 1
    finally:
        inside = MilvusClient(URI, db_name=database)
        for name in inside.list_collections():
            inside.drop_collection(name)
        admin.drop_database(database)


def test_a_server_scan_holds_no_more_than_a_batch_of_vectors(tmp_path, embedder, monkeypatch):
    """The rows read drop their vectors once the server has them; the search asks the server
    for them a batch of queries at a time."""
    from app.core import pairs

    monkeypatch.setattr(pairs, "SERVER_BATCH", 4)
    root = tmp_path / "p"
    for n in range(10):
        a = ig.photo(200 + n, (320, 240))
        ig.save(a, root / f"{n}.jpg")
        ig.save(ig.resized(a, 0.5), root / f"{n}_half.jpg")
    held, asked = [], []
    real_find, real_vectors = pairs.find_pairs, L.Library.vectors

    def find_pairs(good, *a, **k):
        held.append(sum(r.vector is not None for r in good))
        return real_find(good, *a, **k)

    def vectors(self, ids):
        asked.append(len(ids))
        return real_vectors(self, ids)

    monkeypatch.setattr(pairs, "find_pairs", find_pairs)
    monkeypatch.setattr(L.Library, "vectors", vectors)
    model = f"test-{uuid.uuid4().hex[:8]}"
    with L.Library(URI, model, embedder.dim) as lib:
        try:
            result = scan([str(root)], lib, embedder, workers=0)
        finally:
            lib.client.drop_collection(lib.collection)
    assert len(result.groups) == 10
    assert held == [0]  # none held when the search starts
    assert asked and max(asked) <= 4 and sum(asked) == 20  # each photo's vector, a batch at a time
