"""Candidate pairs: the search proposes, verification decides (docs/design.md, step 6).

Each photo's nearest neighbours by vector (search.py in-process for a whole library, Milvus for
a few new photos or a server library) become candidate pairs, and each photo's content square
turned by a quarter is compared with every photo's upright one, since a turned copy's vector
lies far from its original's.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

# Neighbours searched per photo. A copy needs only the photo that covers it among its neighbours
# (complete linkage accepts pairs vouched for by a covering member), not every other copy: on the
# dev corpora 16 finds as many copies as 32 with half the pairs to verify.
TOP_K = 16
# Candidates are ranks: each photo's TOP_K nearest. A floor on their cosine only spares the
# verification of neighbours too far to be copies, and a cosine means something different for
# each model, so the floor is per model, and none (ranks alone) for a model it was not measured
# on. EfficientNet-Lite0 (the fallback): true copies of the dev corpus reach down to 0.52
# (grayscale, 90° turns), so 0.45. ResNet-50's ImageNet weights cannot be had where this was
# written: ranks alone.
CANDIDATE_COSINE = 0.45
CANDIDATE_FLOORS = {"efficientnet-lite0-imagenet": CANDIDATE_COSINE}


def candidate_floor(model: str) -> float:
    """The loosest cosine that proposes a pair for vectors of ``model`` (-1: any rank-k neighbour)."""
    return CANDIDATE_FLOORS.get(model, -1.0)


def candidates_from_hits(out: dict[tuple[int, int], float], ids: list[int], hits, wanted,
                         min_cosine: float = CANDIDATE_COSINE) -> None:
    """Fold search hits (``hits[i]``: (id, cosine) neighbours of ``ids[i]``) into ``out`` as pairs."""
    for a, row_hits in zip(ids, hits):
        for b, score in row_hits:
            if b != a and b in wanted and score >= min_cosine:
                key = (a, b) if a < b else (b, a)
                out[key] = max(out.get(key, -1.0), score)


def candidate_pairs(ids: list[int], vectors: np.ndarray, queries: Optional[list[int]] = None, progress=None,
                    k: Optional[int] = None, min_cosine: float = CANDIDATE_COSINE) -> dict[tuple[int, int], float]:
    """Pairs (a, b), a < b, whose vectors are among each other's ``k`` nearest (in-process search).

    ``vectors[i]`` belongs to ``ids[i]``; ``queries`` (ids, default all) are the photos whose
    neighbours are looked up."""
    return fold_hits(*nearest_hits(ids, vectors, queries, progress, k), min_cosine)


def nearest_hits(ids: list[int], vectors: np.ndarray, queries: Optional[list[int]] = None, progress=None,
                 k: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The search half of candidate_pairs: arrays (query id, neighbour id, cosine), one entry per
    hit. Nothing in them refers to ``vectors``, which the caller may drop before folding."""
    from app.core import search  # torch: not needed by verification workers

    k = TOP_K if k is None else k
    pos = {i: n for n, i in enumerate(ids)}
    q = np.array([pos[i] for i in (ids if queries is None else queries)], dtype=np.int64)
    if progress is not None:
        progress.start(len(q), "search", "Searching for similar photos")
    idx, scores = search.nearest(vectors, k, q, progress)
    id_arr = np.asarray(ids, dtype=np.int64)
    return np.repeat(id_arr[q], idx.shape[1]), id_arr[idx.ravel()], scores.ravel()


def fold_hits(a: np.ndarray, b: np.ndarray, sc: np.ndarray,
              min_cosine: float = CANDIDATE_COSINE) -> dict[tuple[int, int], float]:
    """Hits as candidate pairs: (a, b), a < b, each once with its best cosine, in the order first
    found. In arrays rather than through candidates_from_hits, which took 4.5 s for the 1.1
    million pairs of 100,000 synthetic photos (this: about 1 s)."""
    keep = (sc >= min_cosine) & (a != b)
    lo, hi, sc = np.minimum(a, b)[keep], np.maximum(a, b)[keep], sc[keep]
    if not len(sc):
        return {}
    seen = np.arange(len(sc))
    order = np.lexsort((seen, hi, lo))
    lo, hi, sc, seen = lo[order], hi[order], sc[order], seen[order]
    starts = np.flatnonzero(np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])])
    best = np.maximum.reduceat(sc, starts)
    first = np.argsort(seen[starts], kind="stable")
    lo, hi, best = lo[starts][first], hi[starts][first], best[first]
    out: dict[tuple[int, int], float] = {}
    for s in range(0, len(best), 65536):  # Python's copies of the numbers are made a slice at a time
        out.update(zip(zip(lo[s:s + 65536].tolist(), hi[s:s + 65536].tolist()), best[s:s + 65536].tolist()))
    return out


# Turned copies: the network's vector of a photo turned by a quarter lies far from the upright
# one's (cosine about 0.5 for photos with a clear up direction), so the vector search never
# proposes the pair. Each photo's content square (content.py) turned by each quarter is compared
# with every photo's upright square instead; a turned copy's square, turned back, is its
# original's up to resampling. TURN_FLOOR: set on seed 1 of the dev corpus between the strongest
# different photo (0.898) and the weakest turned copy (0.9995), checked on seed 2 (0.914, 0.9991).
# Verification decides as for any candidate.
TURN_K = 2
TURN_FLOOR = 0.95


def turned_candidates(ids: list[int], squares: list[np.ndarray], queries: list[int],
                      k: int = TURN_K, floor: float = TURN_FLOOR) -> dict[tuple[int, int], float]:
    """Pairs (a, b), a < b, where a query's square under a quarter turn is among the ``k``
    nearest upright squares, at cosine >= ``floor``: (a, b) -> that cosine."""
    from app.core import search  # torch: not needed by verification workers

    n = len(ids)
    if n < 2 or not queries:
        return {}

    def unit(a: np.ndarray) -> np.ndarray:
        v = a.astype(np.float32).ravel()
        v -= v.mean()
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else v

    # one matrix: the upright squares, then each photo's square turned by 1, 2 and 3 quarters;
    # the turned rows of the queries look up their nearest rows, of which the upright ones count
    base = np.stack([unit(np.rot90(sq, turn)) for turn in range(4) for sq in squares])
    pos = {i: x for x, i in enumerate(ids)}
    rows = np.array([turn * n + pos[q] for turn in (1, 2, 3) for q in queries], dtype=np.int64)
    idx, scores = search.nearest(base, 4 * k, rows)
    out: dict[tuple[int, int], float] = {}
    for row, hits, sc in zip(rows, idx, scores):
        a = ids[row % n]
        taken = 0
        for j, v in zip(hits.tolist(), sc.tolist()):
            if j >= n or ids[j] == a:
                continue  # a turned square, or the photo itself
            if v < floor or taken == k:
                break
            taken += 1
            key = (a, ids[j]) if a < ids[j] else (ids[j], a)
            out[key] = max(out.get(key, -1.0), v)
    return out
