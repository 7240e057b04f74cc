"""The paths that make scans fast: in-process search, the catalog's remembered pairs, Milvus for a few new photos,
reduced precision and the lazily loaded model. Each is checked against the slow, plain way."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.core import candidates, catalog, grouping, groups_so_far, pairs, pipeline, pools, search, verification
from app.core.domain import Row
from app.core.library import Library, path_id
from app.core.pipeline import scan
from tests import imagegen as ig

ROOT = Path(__file__).resolve().parent.parent


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted(n=600, dim=64, seed=0):
    """Positive vectors in loose clusters (as CNN features are), every 10th row a near copy of the one before."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((20, dim)))
    x = centres[rng.integers(0, 20, n)] + np.abs(rng.standard_normal((n, dim)))
    for i in range(1, n, 10):
        x[i] = x[i - 1] + 0.05 * rng.standard_normal(dim)
    return unit(x)


def test_exact_search_matches_brute_force():
    x = planted()
    idx, sc = search.nearest(x, 5)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1)[:, :5]
    assert (idx != np.arange(len(x))[:, None]).all()  # never its own neighbour
    np.testing.assert_allclose(sc, np.take_along_axis(sims, want, 1), atol=1e-5)


def test_approximate_search_finds_every_planted_copy(monkeypatch):
    monkeypatch.setattr(search, "EXACT_MAX", 100)  # force the PCA + HNSW path on a small set
    monkeypatch.setattr(search, "PCA_DIM", 16)
    x = planted()
    idx, sc = search.nearest(x, 4)
    for i in range(1, len(x), 10):
        assert i - 1 in idx[i], f"row {i} lost its copy"
    assert (sc[:, :-1] >= sc[:, 1:] - 1e-6).all()  # best first, exact scores


def test_a_few_queries_in_a_large_library_are_answered_exactly(monkeypatch):
    # groups-so-far updates ask for 16 new photos at a time: building the approximate index over
    # the whole library for them took 11 s a batch at 40,000 photos
    monkeypatch.setattr(search, "EXACT_MAX", 100)  # this 600-vector set counts as large
    built = []
    real = search._approximate
    monkeypatch.setattr(search, "_approximate", lambda *a, **k: built.append(1) or real(*a, **k))
    x = planted()
    few = np.arange(590, 600)
    idx, sc = search.nearest(x, 5, few)
    assert built == []
    sims = x[few] @ x.T
    sims[np.arange(len(few)), few] = -np.inf
    np.testing.assert_allclose(sc, -np.sort(-sims, axis=1)[:, :5], atol=1e-5)
    search.nearest(x, 5)  # every photo: the index pays for itself
    assert built == [1]


def test_milvus_and_in_process_search_agree(library):
    x = planted(200, library.dim if library.dim <= 2048 else 64)
    rows = [Row(path_id(f"/p/{i}.jpg"), f"/p/{i}.jpg", 1, 1, f"{i:064d}", 10, 10, "JPEG", library.model, "", None, v)
            for i, v in enumerate(x)]
    library.upsert(rows)
    ids = [r.id for r in rows]
    hits = library.neighbours(x[:20], 6)
    idx, sc = search.nearest(x, 5, np.arange(20))
    for q in range(20):
        milvus = [h for h, _ in hits[q] if h != ids[q]][:5]
        assert milvus == [ids[j] for j in idx[q]]


def make_folder(root: Path):
    a, b = ig.photo(11, (800, 600)), ig.photo(12, (800, 600))
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.6), root / "a_small.jpg")
    ig.save(ig.brightened(a, 1.2), root / "a_bright.jpg")
    ig.save(b, root / "b.jpg")
    ig.save(ig.photo(13), root / "c.jpg")
    return a


def groups_of(result):
    return sorted(sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups)


def spy_on_verification(monkeypatch) -> list[dict]:
    """Every call's outcomes (rejected ones too), one dict per verify_candidates call."""
    real = verification.verify_candidates
    calls = []

    def spy(cands, *a, record=None, **k):
        seen = {}
        calls.append(seen)

        def both(done):
            seen.update(done)
            if record is not None:
                record(done)
        return real(cands, *a, record=both, **k)

    monkeypatch.setattr(verification, "verify_candidates", spy)
    return calls


def test_a_first_scan_holds_each_vector_once_while_searching(tmp_path, library, embedder, monkeypatch):
    root = tmp_path / "photos"
    make_folder(root)
    rows, searched, still_held = [], [], []
    real_find, real_search, real_verify = pairs.find_pairs, candidates.nearest_hits, verification.verify_candidates
    monkeypatch.setattr(pairs, "find_pairs", lambda good, *a, **k: rows.extend(good) or real_find(good, *a, **k))
    monkeypatch.setattr(candidates, "nearest_hits",
                        lambda ids, vectors, *a, **k: searched.append(vectors.shape) or real_search(ids, vectors, *a, **k))
    monkeypatch.setattr(verification, "verify_candidates",
                        lambda *a, **k: still_held.append(sum(r.vector is not None for r in rows)) or real_verify(*a, **k))
    result = scan([str(root)], library, embedder, workers=0)
    assert searched == [(5, library.dim)]  # the search had every photo's vector...
    assert len(rows) == 5 and still_held == [0]  # ...and the rows kept none beside it
    assert len(result.groups) == 1


def test_a_large_library_is_held_and_searched_in_float16_with_the_same_groups(tmp_path, library, embedder,
                                                                               monkeypatch):
    root = tmp_path / "photos"
    make_folder(root)
    plain = scan([str(root)], library, embedder, workers=0)
    monkeypatch.setattr(search, "EXACT_MAX", 2)  # these 5 photos count as a large library
    held, searched = [], []
    other = Library(str(tmp_path / "large.db"), library.model, library.dim)
    real_upsert, real_search = other.upsert, candidates.nearest_hits
    monkeypatch.setattr(other, "upsert", lambda rows: held.extend(r.vector.dtype for r in rows) or real_upsert(rows))
    monkeypatch.setattr(candidates, "nearest_hits",
                        lambda ids, vectors, *a, **k: searched.append(vectors.dtype) or real_search(ids, vectors, *a, **k))
    try:
        large = scan([str(root)], other, embedder, workers=0)
        assert searched == [np.float16]
        assert set(held) == {np.dtype(np.float32)}  # stored as computed...
        assert groups_of(large) == groups_of(plain) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]
        stored = other.vectors([r.id for r in large.rows])  # ...not rounded as the search's copy is
        assert stored.dtype == np.float32 and not np.array_equal(stored, stored.astype(np.float16))
    finally:
        other.close()


def test_rescan_regroups_from_the_catalog_and_new_files_join(tmp_path, library, embedder, monkeypatch):
    root = tmp_path / "photos"
    a = make_folder(root)
    first = scan([str(root)], library, embedder, workers=0)
    assert groups_of(first) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]
    assert Path(catalog.location_for(library.location)).is_file()

    # unchanged: nothing read, nothing searched or verified, same groups
    calls = []
    monkeypatch.setattr(verification, "verify_candidates",
                        lambda *a, **k: calls.append(a) or {})
    again = scan([str(root)], library, embedder, workers=0)
    assert again.stats.embedded == 0 and groups_of(again) == groups_of(first)
    assert all(len(c[0]) == 0 for c in calls)
    monkeypatch.undo()

    # one new copy: it alone is looked up (through Milvus) and joins the group
    ig.save(ig.grayscale(a), root / "a_gray.jpg")
    searched = []
    real = library.neighbours
    monkeypatch.setattr(library, "neighbours", lambda v, k: searched.append(len(v)) or real(v, k))
    third = scan([str(root)], library, embedder, workers=0)
    assert third.stats.embedded == 1 and searched == [1]
    assert groups_of(third) == [["a.jpg", "a_bright.jpg", "a_gray.jpg", "a_small.jpg"]]


def test_an_unchanged_rescan_reuses_its_grouping(tmp_path, library, embedder, monkeypatch):
    root = tmp_path / "photos"
    a = make_folder(root)
    first = scan([str(root)], library, embedder, workers=0, keep_signatures=False)
    linked = []
    real = grouping.groups_from_pairs
    monkeypatch.setattr(grouping, "groups_from_pairs", lambda *a, **k: linked.append(1) or real(*a, **k))

    again = scan([str(root)], library, embedder, workers=0, keep_signatures=False)
    assert linked == [] and groups_of(again) == groups_of(first)
    assert [(m.row.path, m.keep, m.reason) for g in again.groups for m in g.members] == \
        [(m.row.path, m.keep, m.reason) for g in first.groups for m in g.members]
    assert all(r.signature is None for r in again.rows)  # nothing loaded that only regrouping needs

    # another similarity setting, a new copy: linked again
    scan([str(root)], library, embedder, workers=0, similarity=1.0, keep_signatures=False)
    assert linked == [1]
    ig.save(ig.grayscale(a), root / "a_gray.jpg")
    third = scan([str(root)], library, embedder, workers=0, keep_signatures=False)
    assert linked == [1, 1]
    assert groups_of(third) == [["a.jpg", "a_bright.jpg", "a_gray.jpg", "a_small.jpg"]]


def test_a_wider_scan_does_not_verify_remembered_pairs_again(tmp_path, library, embedder, monkeypatch):
    """Adding a folder searches the old photos again (a new scope); their pairs remembered from the
    last scan, the ones that failed verification included, are not verified a second time."""
    root = tmp_path / "photos"
    make_folder(root / "old")
    ig.save(ig.photo(13, (800, 600)), root / "new" / "c.jpg")
    verified = spy_on_verification(monkeypatch)  # every outcome, rejected ones too
    scan([str(root / "old")], library, embedder, workers=0)
    first = verified.pop()
    loosest = grouping.verify_threshold(0.0)
    assert any(m.score < loosest for _, m in first.values())  # a remembered negative is in play

    wider = scan([str(root / "old"), str(root / "new")], library, embedder, workers=0)
    again = set().union(*(o.keys() for o in verified))
    assert again and not again & first.keys()
    assert groups_of(wider) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]


def test_a_scan_cancelled_while_verifying_keeps_the_chunks_it_finished(tmp_path, library, embedder, monkeypatch):
    import sqlite3

    from app.core.progress import Progress

    root = tmp_path / "photos"
    make_folder(root)
    monkeypatch.setattr(verification, "CHUNK_MAX", 2)
    sizes = []
    real = verification.verify_candidates
    monkeypatch.setattr(verification, "verify_candidates",
                        lambda cands, *a, **k: sizes.append(len(cands)) or real(cands, *a, **k))

    class CancelInTheSecondChunk(Progress):
        def advance(self, n=1, current=""):
            if self.stage == "verify" and self.done + n >= 4:
                self.cancel()
            super().advance(n, current)

    cancelled = scan([str(root)], library, embedder, CancelInTheSecondChunk(), workers=0)
    assert cancelled.stats.cancelled and sizes[0] >= 6
    with sqlite3.connect(catalog.location_for(library.location)) as db:
        assert db.execute(f"SELECT count(*) FROM {library.catalog.t.pairs}").fetchone()[0] == 2  # the first chunk, not the second
    again = scan([str(root)], library, embedder, workers=0)
    assert sizes[1] == sizes[0] - 2  # what was kept is not verified again
    assert groups_of(again) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]


def window_scan(root, library, embedder, progress=None):
    """A scan as the window runs it: groups so far after every batch."""
    return scan([str(root)], library, embedder, progress, workers=0, on_partial=lambda groups: None,
                partial_every=0)


def test_the_groups_so_far_remember_every_outcome_and_hold_only_the_verified(tmp_path, library, embedder,
                                                                              monkeypatch):
    import sqlite3

    root = tmp_path / "photos"
    make_folder(root)
    calls = spy_on_verification(monkeypatch)
    made, held = [], []

    class Seen(groups_so_far.PartialGroups):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    real_find = pairs.find_pairs

    def find(good, library, cache, scope, progress, workers, known=None, checked=()):
        held.append(([p.vectors.size for p in made], dict(known), set(checked)))
        return real_find(good, library, cache, scope, progress, workers, known, checked)

    monkeypatch.setattr(groups_so_far, "PartialGroups", Seen)

    monkeypatch.setattr(pairs, "find_pairs", find)
    result = window_scan(root, library, embedder)
    assert groups_of(result) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]
    reading, final = calls[0], {k: v for c in calls[1:] for k, v in c.items()}
    loosest = grouping.verify_threshold(0.0)
    assert any(m.score < loosest for _, m in reading.values())  # a rejected pair is in play
    [(vectors, known, checked)] = held
    assert vectors == [0]  # the groups-so-far dropped their vectors before the final search
    assert known == {k: v for k, v in reading.items() if v[1].score >= loosest} and not checked
    assert not reading.keys() & final.keys()  # nothing verified twice
    with sqlite3.connect(catalog.location_for(library.location)) as db:
        stored = {(a, b) for a, b in db.execute(f"SELECT a, b FROM {library.catalog.t.pairs}")}
    assert stored == reading.keys() | final.keys()


def test_the_groups_so_far_verify_in_worker_processes(tmp_path, library, embedder, monkeypatch):
    root = tmp_path / "photos"
    make_folder(root)
    calls = spy_on_verification(monkeypatch)  # sees the final stage only: the groups so far send chunks
    sent, before_final = [], []
    real_submit, real_find = verification.submit_chunk, pairs.find_pairs
    monkeypatch.setattr(verification, "submit_chunk",
                        lambda ex, keys, *a: sent.append((ex.workers, list(keys))) or real_submit(ex, keys, *a))

    def find(good, library, cache, *a):
        before_final.append({(x, y) for x, y in cache.db.execute(f"SELECT a, b FROM {cache.t.pairs}")})
        return real_find(good, library, cache, *a)

    monkeypatch.setattr(pairs, "find_pairs", find)
    result = scan([str(root)], library, embedder, workers=2, on_partial=lambda groups: None, partial_every=0)
    assert groups_of(result) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]
    assert sent and {workers for workers, _ in sent} == {2}  # worker processes, not the synchronous pool
    [stored] = before_final
    assert stored == {k for _, keys in sent for k in keys}  # every chunk sent, finished before the final stage
    assert not stored & {k for c in calls for k in c}  # which verifies none of them again


def test_a_verification_worker_that_dies_leaves_its_pairs_to_the_rest_of_the_scan(tmp_path, library, embedder,
                                                                                  monkeypatch, caplog):
    root = tmp_path / "photos"
    make_folder(root)
    for i in range(pipeline.BATCH):  # a second batch, sent after the first one's worker died
        ig.save(ig.photo(600 + i, (200, 150)), root / "more" / f"m{i:02d}.jpg")
    monkeypatch.setattr(verification, "submit_chunk", lambda ex, *a: ex.submit(os._exit, 1))
    result = scan([str(root)], library, embedder, workers=2, on_partial=lambda groups: None, partial_every=0)
    assert not result.stats.cancelled and not result.problems
    assert groups_of(result) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]
    assert "groups so far" in caplog.text


def test_a_window_scan_cancelled_while_reading_keeps_what_it_verified(tmp_path, library, embedder, monkeypatch):
    from app.core.progress import Progress

    root = tmp_path / "photos"
    make_folder(root)
    for i in range(pipeline.BATCH):  # a second batch to cancel in
        ig.save(ig.photo(500 + i, (200, 150)), root / "more" / f"m{i:02d}.jpg")
    calls = spy_on_verification(monkeypatch)

    class CancelInTheSecondBatch(Progress):
        def advance(self, n=1, current=""):
            if self.stage == "embed" and self.done + n > pipeline.BATCH:
                self.cancel()
            super().advance(n, current)

    cancelled = window_scan(root, library, embedder, CancelInTheSecondBatch())
    assert cancelled.stats.cancelled
    kept = {k for c in calls for k in c}
    assert kept
    calls.clear()
    again = scan([str(root)], library, embedder, workers=0)
    assert not kept & {k for c in calls for k in c}  # what the cancelled scan verified is not verified again
    assert groups_of(again) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]


def test_a_window_scan_cancelled_at_its_last_batch_shows_the_groups_among_all_it_read(tmp_path, library, embedder):
    from app.core.progress import Progress

    root = tmp_path / "photos"
    for i in range(pipeline.BATCH):  # the first batch; the copies, in a subfolder, come last
        ig.save(ig.photo(700 + i, (200, 150)), root / f"m{i:02d}.jpg")
    make_folder(root / "z")

    class CancelAtTheEnd(Progress):
        def advance(self, n=1, current=""):
            if self.stage == "embed" and self.done + n >= self.total:
                self.cancel()
            super().advance(n, current)

    # verified in worker processes: the chunks sent are finished, not dropped, when the reading stops
    result = scan([str(root)], library, embedder, CancelAtTheEnd(), workers=2, on_partial=lambda groups: None,
                  partial_every=0)
    assert result.stats.cancelled and result.stats.embedded == 5 + pipeline.BATCH
    assert groups_of(result) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]


def test_photos_read_early_look_up_fewer_neighbours_for_the_groups_so_far(tmp_path, library, embedder, monkeypatch):
    root = tmp_path / "photos"
    make_folder(root)
    for i in range(2 * pipeline.BATCH):
        ig.save(ig.photo(800 + i, (200, 150)), root / "more" / f"m{i:02d}.jpg")
    asked = []  # (photos read so far, neighbours looked up), one per batch
    real = candidates.candidate_pairs

    def spy(ids, vectors, queries=None, progress=None, k=candidates.TOP_K, **kw):
        asked.append((len(ids), k))
        return real(ids, vectors, queries, progress, k, **kw)

    monkeypatch.setattr(candidates, "candidate_pairs", spy)  # the final stage searches without it
    result = window_scan(root, library, embedder)
    assert [n for n, _ in asked] == [16, 32, 37]
    ks = [k for _, k in asked]
    # a photo's 7 nearest among the first 16 of 37 stand for about its 16 nearest of all (7 * 37 / 16)
    assert groups_so_far.PartialGroups.FEWEST_NEIGHBOURS <= ks[0] < ks[1] < ks[2] == candidates.TOP_K
    assert ks[0] == -(-candidates.TOP_K * 16 // 37)
    assert groups_of(result) == [["a.jpg", "a_bright.jpg", "a_small.jpg"]]


def test_a_changed_file_is_verified_again(tmp_path, library, embedder):
    root = tmp_path / "photos"
    make_folder(root)
    scan([str(root)], library, embedder, workers=0)
    # a_small.jpg is overwritten by a different photo: its remembered outcome must not keep it grouped
    ig.save(ig.photo(14, (480, 360)), root / "a_small.jpg")
    os.utime(root / "a_small.jpg", ns=(1, 1))
    result = scan([str(root)], library, embedder, workers=0)
    assert groups_of(result) == [["a.jpg", "a_bright.jpg"]]


def test_reduced_precision_vectors_agree_with_fp32(embedder, monkeypatch):
    import torch

    from app.core import networks
    from app.core.model import load_fallback

    if networks.choose_precision(embedder.device) == "fp32":
        pytest.skip("this CPU has no native bf16: the app runs fp32 here")
    photos = [ig.photo(s, (320, 240)) for s in range(20, 28)]
    batch = np.stack([np.asarray(p.resize((224, 224))) for p in photos])
    fast = embedder.embed(batch)
    monkeypatch.setenv("DOPPEL_PRECISION", "fp32")
    exact_embedder = load_fallback("fp32 reference")
    assert exact_embedder.load().dtype == torch.float32
    exact = exact_embedder.embed(batch)
    assert (np.sum(fast * exact, axis=1) > 0.99).all()
    # the cosines between photos, which candidate thresholds are applied to, move by less than 0.02
    assert np.abs(fast @ fast.T - exact @ exact.T).max() < 0.02


@pytest.mark.integration
def test_choosing_the_model_does_not_import_torch():
    code = ("import sys; from app.core.model import load_embedder; e = load_embedder(allow_download=False); "
            "print(e.name, e.dim, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, DOPPEL_OFFLINE="1"), check=True).stdout.split()
    assert out == ["efficientnet-lite0-imagenet", "1280", "False"]


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_scan_processes_keep_freed_memory_for_the_next_batch():
    code = ("from app.core.allocator import keep_freed_memory, release_freed_memory; "
            "print(keep_freed_memory(), keep_freed_memory(), release_freed_memory())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True"]


@pytest.mark.integration
def test_parallel_verification_keeps_few_chunks_waiting_and_agrees_with_one_process(monkeypatch):
    import concurrent.futures

    from app.core.decode import evidence

    sigs = {}
    for i in range(80):  # photos, every other one a resized and brightened copy of the one before
        im = ig.photo(300 + i, (320, 240)) if i % 2 == 0 else ig.brightened(ig.resized(im, 0.6), 1.1)
        sigs[i] = evidence(im.convert("RGB"))
    cands = {(a, b): 0.5 for a in range(80) for b in range(a + 1, 80) if (b - a) % 5 in (1, 2)}
    assert len(cands) > 6 * 200  # more chunks than are let wait at once

    submitted, most = [], [0]

    class Counting(concurrent.futures.ProcessPoolExecutor):
        def submit(self, *a, **k):
            submitted.append(super().submit(*a, **k))
            most[0] = max(most[0], sum(not f.done() for f in submitted))
            return submitted[-1]

    monkeypatch.setattr(pools, "ProcessPoolExecutor", Counting)
    monkeypatch.setattr(verification, "PARALLEL_MIN", 100)
    recorded = {}
    parallel = verification.verify_candidates(cands, sigs.__getitem__, workers=2, record=recorded.update)
    assert 2 <= most[0] <= 4
    # every outcome reaches the record; only the pairs that verified are returned
    assert recorded.keys() == cands.keys()
    assert parallel == {k: v for k, v in recorded.items() if v[1].score >= grouping.verify_threshold(0.0)}
    assert len(parallel) < len(recorded)
    serial = verification.verify_candidates(cands, sigs.__getitem__, workers=0)
    assert parallel == serial
    assert sum(m.score >= 0.93 for _, m in serial.values()) >= 40  # the planted copies, not only refusals
