"""The scan's stages chained in one process, with a fake embedder and the synchronous pool: the
unit layer's check that reading, candidate search, verification and linkage fit together and
group the copies of a picture apart from other pictures. The real model and Milvus are the
integration layer's (test_scan_pipeline.py)."""
from __future__ import annotations

import numpy as np
import pytest

from app.core import candidates, grouping, reading, verification
from app.core.domain import Row
from app.core.library import path_id
from app.core.progress import Cancelled, Progress
from app.core.walk import walk
from tests import imagegen as ig


class FakeEmbedder:
    """Stands in for the network: a photo's vector is its model input reduced to 16 x 16 gray,
    centred and of unit length. A resized or re-encoded copy lands beside its original; another
    picture does not. Microseconds a photo, no torch model, no weights."""

    name = "fake-16x16"
    dim = 256

    def embed(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        gray = batch.astype(np.float32).mean(axis=3)  # (n, 224, 224)
        v = gray.reshape(n, 16, 14, 16, 14).mean(axis=(2, 4)).reshape(n, self.dim)
        v -= v.mean(axis=1, keepdims=True)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def rows_of(decoded, embedder) -> list[Row]:
    good = [d for d in decoded if not d.problem]
    vectors = embedder.embed(np.stack([d.model_input for d in good]))
    rows = []
    for d, v in zip(good, vectors):
        e = d.entry
        rows.append(Row(path_id(e.path), e.path, e.size, e.mtime_ns, d.sha256, d.width, d.height, d.format,
                        embedder.name, "", d.thumb, v, d.features))
    return rows


def group_names(root, embedder=FakeEmbedder(), workers=0, k=4):
    """Every stage from the walk to the groups, as basenames sorted within and across groups."""
    problems: list = []
    decoded = list(reading.decode_all(list(walk([str(root)], problems)), workers, Progress()))
    rows = rows_of(decoded, embedder)
    by_id = {r.id: r for r in rows}
    ids = [r.id for r in rows]
    cands = candidates.candidate_pairs(ids, np.stack([r.vector for r in rows]), k=k,
                                       min_cosine=candidates.candidate_floor(embedder.name))
    outcomes = verification.verify_candidates(cands, lambda i: by_id[i].evidence(), workers=0)
    groups = grouping.groups_from_pairs(rows, grouping.positive_pairs(outcomes), 0.5)
    names = sorted(sorted(m.row.path.rsplit("/", 1)[1] for m in g.members) for g in groups)
    bad = sorted(d.entry.path.rsplit("/", 1)[1] for d in decoded if d.problem)
    return names, bad, cands


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    a, b = ig.photo(71), ig.photo(72)
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_half.jpg")
    ig.save(a, root / "a_q40.jpg", quality=40)
    ig.save(ig.brightened(a, 1.15), root / "a_bright.jpg")
    ig.save(b, root / "b.jpg")
    ig.save(ig.resized(b, 0.7), root / "b_small.png")
    ig.save(ig.photo(73), root / "c.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    (root / "a_same.jpg").write_bytes((root / "a.jpg").read_bytes())
    return root


def test_the_stages_group_each_pictures_copies_and_only_them(folder):
    names, bad, cands = group_names(folder)
    assert names == [["a.jpg", "a_bright.jpg", "a_half.jpg", "a_q40.jpg", "a_same.jpg"], ["b.jpg", "b_small.png"]]
    assert bad == ["broken.jpg"]  # a problem entry, and the rest are read
    assert cands  # the fake vectors did propose pairs: the groups come from verification


def test_verification_not_the_embedder_decides(folder):
    """An embedder that puts every photo beside every other proposes every pair; verification
    still parts the different pictures."""

    class Blind(FakeEmbedder):
        name = "blind"

        def embed(self, batch):
            return np.ones((len(batch), self.dim), np.float32) / np.sqrt(self.dim)

    names, _, cands = group_names(folder, Blind(), k=8)
    assert len(cands) == 8 * 7 // 2  # the 8 photos read, every pair of them
    assert names == [["a.jpg", "a_bright.jpg", "a_half.jpg", "a_q40.jpg", "a_same.jpg"], ["b.jpg", "b_small.png"]]


def test_the_synchronous_pool_reads_in_order_and_stops_on_a_cancel(folder):
    entries = sorted(walk([str(folder)]), key=lambda e: e.path)
    progress = Progress()
    seen = []
    with pytest.raises(Cancelled):
        for d in reading.decode_all(entries, 0, progress):
            seen.append(d.entry.path)
            if len(seen) == 3:
                progress.cancel()
    assert seen == [e.path for e in entries[:3]]
