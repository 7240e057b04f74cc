"""Candidate search -> verified pairs -> duplicate groups without chaining.

1. Byte-identical files (same SHA-256) are one node: an exact group on their own.
2. Each node's vector looks up its top-k neighbours (search.py in-process for a whole library,
   Milvus for a few new photos); pairs above a loose cosine are candidates (the search proposes).
3. Each candidate pair is verified on the stored signatures (verify.py decides).
4. Complete linkage: two clusters merge only if every cross pair is verified (or vouched for by a
   member that covers both), so A~B and B~C never put A and C together unless A~C.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

from app.core import verify
from app.core.library import Row

# Neighbours searched per photo. A copy needs only the photo that covers it among its neighbours
# (complete linkage accepts pairs vouched for by a covering member), not every other copy: on the
# dev corpora 16 finds as many copies as 32 with half the pairs to verify.
TOP_K = 16
# A group is "near" (resized / re-encoded) when every pair lines up as the same frame this well
# and the overall brightness did not move; anything else verified is "edited".
NEAR_SCORE = 0.95
NEAR_MEAN_SHIFT = 6.0
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


def verify_threshold(similarity: float) -> float:
    """similarity 0..1 -> minimum normalised cross-correlation of the signatures.

    Default 0.5 -> 0.93: true copies measured >= 0.93 except 3° rotations and crop-vs-crop
    pairs; the closest different photos (strips of one panorama, look-alikes) stayed <= 0.90.
    """
    similarity = min(max(similarity, 0.0), 1.0)
    return 0.89 + 0.08 * similarity


@dataclass
class Member:
    row: Row
    similarity: float = 1.0  # to the keeper, filled by ranking
    keep: bool = False
    reason: str = ""  # why it is the keeper, or what it is (ranking.describe)
    kind: str = ""  # against the keeper: "keeper", ranking.SAFE_KINDS, "RAW", "RAW + JPEG", "edited"
    changes: list = field(default_factory=list)  # an edited copy's edits, in words
    safe: bool = False  # preselected for the trash by its kind (a large group waits for a look)


@dataclass
class Group:
    kind: str  # exact | near | edited
    members: list[Member]
    pair_scores: dict = field(default_factory=dict)  # (id, id) -> verified score between members
    # (a, b) -> verify.Match of the verified pairs among the group's representatives (one file of
    # each set of byte-identical ones): what the keeper and the kinds of copies are read from
    matches: dict = field(default_factory=dict)
    # set by ranking: the suggested keeper, each member's edits against the group (id -> labels),
    # and whether the group waits for a person to look before anything in it is preselected
    keeper: Optional[Member] = None
    edits: dict = field(default_factory=dict)
    needs_look: bool = False

    @property
    def ids(self) -> list[int]:
        return [m.row.id for m in self.members]


@dataclass
class Pair:
    a: int
    b: int
    cosine: float
    match: verify.Match


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


# Above this many candidates, verification runs in worker processes (about 1-3 ms per pair).
PARALLEL_MIN = 1500
CHUNK_MAX = 2000


def locality_order(keys: list[tuple[int, int]], cands: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    """The pairs ordered so that consecutive ones share photos (breadth-first over the candidate
    graph, closest neighbours first): a chunk of them prepares each photo's views once. In id
    order a chunk of the timing corpus touched 2.3x as many photos, at 15 % more time per pair."""
    nbrs: dict[int, list[int]] = defaultdict(list)
    for a, b in keys:
        nbrs[a].append(b)
        nbrs[b].append(a)
    pos: dict[int, int] = {}
    for start in sorted(nbrs):
        if start in pos:
            continue
        pos[start] = len(pos)
        todo = [start]
        while todo:
            nxt = []
            for x in todo:
                for y in sorted(nbrs[x], key=lambda y: -cands[(x, y) if x < y else (y, x)]):
                    if y not in pos:
                        pos[y] = len(pos)
                        nxt.append(y)
            todo = nxt
    return sorted(keys, key=lambda k: (min(pos[k[0]], pos[k[1]]), max(pos[k[0]], pos[k[1]])))


def verifiable(cands: dict[tuple[int, int], float], signature) -> list[tuple[int, int]]:
    """The candidate pairs whose two photos have a signature (``signature(id)``), in locality_order."""
    return locality_order([k for k in cands if signature(k[0]) is not None and signature(k[1]) is not None], cands)


def take_outcomes(done: list, record: Optional[Callable[[dict], None]] = None) -> dict[tuple[int, int], tuple]:
    """verify.verify_chunk's outcomes as (a, b) -> (cosine, Match): every one goes to ``record``;
    the ones verified at the loosest setting are returned."""
    chunk = {(a, b): (cos, m) for a, b, cos, m in done}
    if record is not None:
        record(chunk)
    loosest = verify_threshold(0.0)
    return {k: v for k, v in chunk.items() if v[1].score >= loosest}


def submit_chunk(ex, keys: list[tuple[int, int]], cands: dict[tuple[int, int], float], signature):
    """verify.verify_chunk of the pairs ``keys`` in a worker process of ``ex``, sent with just the
    signatures they need."""
    need = {i for key in keys for i in key}
    return ex.submit(verify.verify_chunk, [(a, b, cands[(a, b)]) for a, b in keys], {i: signature(i) for i in need})


def verify_candidates(cands: dict[tuple[int, int], float], signature, progress=None, workers: int = 0,
                      record: Optional[Callable[[dict], None]] = None,
                      ) -> dict[tuple[int, int], tuple[float, verify.Match]]:
    """Verify every candidate; returns (a, b) -> (cosine, Match) for those verified at the loosest
    setting (``positive_pairs``). ``record`` receives the outcomes of every pair, rejected ones
    too, a chunk at a time as they come (the catalog remembers the low scores, so a rescan
    does not verify them again): a first scan of 100,000 photos rejects about a million pairs,
    and held here as objects they were about 500 MB.

    ``signature(id)`` gives a photo's signature (or None). With ``workers`` > 1 and many pairs,
    chunks of pairs go to worker processes with just the signatures they need.
    """
    keys = verifiable(cands, signature)
    if progress is not None:
        progress.start(len(keys), "verify", "Checking candidate pairs")
    out: dict[tuple[int, int], tuple[float, verify.Match]] = {}

    if workers > 1 and len(keys) >= PARALLEL_MIN:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        # large chunks prepare each photo once for more of its pairs; at least 4 per worker
        # keep the workers evenly busy to the end
        size = max(200, min(CHUNK_MAX, -(-len(keys) // (workers * 4))))
        chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
        from app.core.lifeline import exit_with_parent

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=exit_with_parent) as ex:
            # Two chunks per worker at a time, not all of them: a waiting chunk holds its pairs
            # and a reference to every signature it needs (about 150 kB; a 100,000-photo
            # library makes about 550 chunks).
            futures: set = set()
            pending = iter(chunks)

            def submit() -> None:
                chunk = next(pending, None)
                if chunk is not None:
                    futures.add(submit_chunk(ex, chunk, cands, signature))

            for _ in range(workers * 2):
                submit()
            try:
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        futures.discard(fut)
                        done = fut.result()
                        submit()
                        out.update(take_outcomes(done, record))
                        if progress is not None:
                            progress.advance(len(done))
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        return out
    prepared: OrderedDict = OrderedDict()
    for s in range(0, len(keys), CHUNK_MAX):
        out.update(take_outcomes(verify.verify_chunk(((a, b, cands[(a, b)]) for a, b in keys[s:s + CHUNK_MAX]), None,
                                                     signature, prepared, progress), record))
    return out


def positive_pairs(outcomes: dict[tuple[int, int], tuple[float, verify.Match]]) -> list[Pair]:
    """Pairs verified at the loosest setting, so any similarity can regroup without a rescan."""
    loosest = verify_threshold(0.0)
    return [Pair(a, b, cos, m) for (a, b), (cos, m) in sorted(outcomes.items()) if m.score >= loosest]


def complete_linkage(nodes: list[int], pairs: list[Pair], bridge=None, edges_out: Optional[dict] = None,
                     apart: frozenset = frozenset()) -> list[list[int]]:
    """Merge clusters only when every cross pair is vouched for, and none is ``apart`` (the user
    marked them not duplicates: decisions.py; both orders given).

    A cross pair (x, y) is vouched for when it was verified itself, or when a member z of the
    merged cluster covers both (verify.covers: z shows the same frame as each, or contains
    each as a crop; covering is transitive). Two crops, a 3° turn and a bordered copy of one photo are all copies of
    that photo even where they do not overlap each other; two photos that merely share a crop
    or a look-alike neighbour are covered by nothing and stay apart, so A~B and B~C still never
    put A and C together unless something in the group shows both.
    ``bridge(x, y, cluster)`` may verify a remaining pair directly (overlapping crops placed by
    a shared member); what it verifies becomes an edge like any other.
    Merges are tried best pair first; ties, and which cluster absorbs the other, follow the
    order of ``nodes`` (groups_from_pairs: by path), never the ids, which are made from absolute
    paths: the same files scanned from another folder are linked the same way.
    """
    rank = {n: i for i, n in enumerate(nodes)}
    edge = {(p.a, p.b): p.match.score for p in pairs}
    edge.update({(p.b, p.a): p.match.score for p in pairs})
    covered_by: dict[int, set] = defaultdict(set)
    nbrs: dict[int, set] = defaultdict(set)
    for p in pairs:
        nbrs[p.a].add(p.b)
        nbrs[p.b].add(p.a)
        if verify.covers(p.match, "a"):
            covered_by[p.b].add(p.a)
        if verify.covers(p.match, "b"):
            covered_by[p.a].add(p.b)
    cluster = {n: [n] for n in nodes}
    owner = {n: n for n in nodes}

    def covering(x: int, members: set) -> dict[int, float]:
        """Members that cover x, directly or through a chain (a bordered copy covers the
        original, which covers its crop), each with the weakest verified score on the way."""
        out = {x: 1.0}
        todo = [x]
        while todo:
            n = todo.pop()
            for z in covered_by[n] & members:
                s = min(out[n], edge[(z, n)])
                if s > out.get(z, -1.0):
                    out[z] = s
                    todo.append(z)
        return out

    above: dict[int, set] = {}

    def reach(x: int) -> set:
        """Everything that covers x through any chain, ignoring clusters: a cheap first test."""
        if x not in above:
            seen, todo = {x}, [x]
            while todo:
                for z in covered_by[todo.pop()]:
                    if z not in seen:
                        seen.add(z)
                        todo.append(z)
            above[x] = seen
        return above[x]

    def vouched(x: int, y: int, members: set, cache: dict) -> Optional[float]:
        if not (reach(x) & reach(y) & members):  # most failed merges end here
            return None
        if x not in cache:
            cache[x] = covering(x, members)
        if y not in cache:
            cache[y] = covering(y, members)
        cx, cy = cache[x], cache[y]
        common = cx.keys() & cy.keys()
        if not common:
            return None
        return max(min(cx[z], cy[z]) for z in common)

    failed: set = set()  # merges that failed, by both clusters as they were (clusters only grow)
    for p in sorted(pairs, key=lambda p: (-p.match.score, min(rank[p.a], rank[p.b]), max(rank[p.a], rank[p.b]))):
        ca, cb = sorted((owner[p.a], owner[p.b]), key=rank.__getitem__)
        if ca == cb:
            continue
        attempt = frozenset(((ca, len(cluster[ca])), (cb, len(cluster[cb]))))
        if attempt in failed:
            continue
        merged = cluster[ca] + cluster[cb]
        members = set(merged)
        if apart and any((x, y) in apart for x in cluster[ca] for y in cluster[cb]):
            failed.add(attempt)
            continue
        # cheap test first: a cross pair that nothing in the merged cluster could cover and that
        # shares no verified neighbour there (what bridge() needs) dooms the merge
        if any((x, y) not in edge and not (reach(x) & reach(y) & members)
               and (bridge is None or not (nbrs[x] & nbrs[y] & members))
               for x in cluster[ca] for y in cluster[cb]):
            failed.add(attempt)
            continue
        found = {}
        cache: dict = {}
        ok = True
        for x in cluster[ca]:
            for y in cluster[cb]:
                if (x, y) in edge:
                    continue
                score = vouched(x, y, members, cache)
                if score is None and bridge is not None:
                    score = bridge(x, y, merged)
                if score is None:
                    ok = False
                    break
                found[(x, y)] = found[(y, x)] = score
            if not ok:
                break
        if ok:
            edge.update(found)
            cluster[ca] = merged
            for x in cluster.pop(cb):
                owner[x] = ca
        else:
            failed.add(attempt)
    if edges_out is not None:
        edges_out.update(edge)
    return [c for c in cluster.values() if len(c) > 1]


def anchor_of(cluster: list[int], matches: dict, by_id: dict[int, Row]) -> int:
    """The member that shows the most: it covers (verify.covers, by a direct verified pair) the
    most other members; then the larger photo; then the first by path."""
    def shown(x: int) -> int:
        n = 0
        for y in cluster:
            m = matches.get((x, y))
            if m is not None and verify.covers(m, "a"):
                n += 1
            elif m is None and (y, x) in matches and verify.covers(matches[(y, x)], "b"):
                n += 1
        return n
    return min(cluster, key=lambda x: (-shown(x), -(by_id[x].width * by_id[x].height), by_id[x].path, x))


def anchored(clusters: list[list[int]], pairs: list[Pair], by_id: dict[int, Row], bridge=None,
             edges_out: Optional[dict] = None, apart: frozenset = frozenset()) -> list[list[int]]:
    """Group integrity: every member of a group is verified directly against the member that
    shows the most (``anchor_of``), not only vouched for through others. A member that is not
    is split off; the members split off are linked again among themselves, under the same rule.
    Whatever a chain of edits, overlaps and bridges joined, the group's trash suggestions are
    all copies of one photo that was compared with each of them."""
    matches = {(p.a, p.b): p.match for p in pairs}
    out = []
    todo = list(clusters)
    while todo:
        cluster = todo.pop()
        anchor = anchor_of(cluster, matches, by_id)
        kept = [x for x in cluster if x == anchor or (x, anchor) in matches or (anchor, x) in matches]
        rest = [x for x in cluster if x != anchor and (x, anchor) not in matches and (anchor, x) not in matches]
        if len(kept) > 1:
            out.append(kept)
        if len(rest) > 1:
            split = set(rest)
            inner = [p for p in pairs if p.a in split and p.b in split]
            todo.extend(complete_linkage(sorted(rest, key=lambda i: (by_id[i].path, i)), inner, bridge, edges_out,
                                         apart))
    return out


def make_bridge(pairs: list[Pair], by_id: dict[int, Row], threshold: float, overlaps: Optional[dict] = None):
    """``overlaps``: overlap scores by (x, y, via), kept between calls by the caller; they do not
    depend on the threshold, so another similarity setting reuses them (about 40 % of the time of
    regrouping 5,000 photos)."""
    overlaps = {} if overlaps is None else overlaps
    matches = {}
    for p in pairs:
        matches[(p.a, p.b)] = p
        matches[(p.b, p.a)] = p
    tried: dict[tuple[int, int], Optional[float]] = {}

    def rect_of(node: int, via: int):
        p = matches.get((node, via))
        if p is None:
            return None
        sa, sb = by_id[p.a].signature, by_id[p.b].signature
        return verify.placement(p.match, sa, sb, "a" if node == p.a else "b")

    def bridge(x: int, y: int, members: list[int]) -> Optional[float]:
        if (by_id[y].path, y) < (by_id[x].path, x):  # overlap_score is not symmetric: one order for a pair
            x, y = y, x
        key = (x, y)
        if key in tried:
            return tried[key]
        best = None
        for via in members:
            if via in (x, y):
                continue
            rx, ry = rect_of(x, via), rect_of(y, via)
            if rx is None or ry is None:
                continue
            v = overlaps.get((x, y, via))
            if v is None:
                v = overlaps[(x, y, via)] = verify.overlap_score(by_id[x].signature, rx, by_id[y].signature, ry)
            if v >= threshold and (best is None or v > best):
                best = v
        tried[key] = best
        return best

    return bridge


# Bump when linkage, bridging or group kinds change: remembered groupings are then recomputed.
GROUPING_VERSION = 3


def grouping_key(rows: list[Row], pairs: list[Pair], similarity: float, apart: Iterable = ()) -> str:
    """A digest of everything groups_from_pairs reads: the rows' identities and contents (SHA-256
    stands for the signature), every verified pair, the threshold and the parted contents."""
    h = hashlib.sha256(f"{GROUPING_VERSION}:{verify.VERSION}:{verify_threshold(similarity):.6f}".encode())
    for a, b in sorted(apart):
        h.update(f"apart:{a}:{b};".encode())
    for r in sorted(rows, key=lambda r: r.id):
        h.update(f"{r.id}:{r.sha256};".encode())
    for p in sorted(pairs, key=lambda p: (p.a, p.b)):
        m = p.match
        rect = ",".join(f"{float(v):.3f}" for v in m.rect)  # ints when fresh, floats when remembered
        h.update(f"{p.a}:{p.b}:{m.score:.6f}:{m.how}:{m.transform}:{m.scale:.6f}:{m.outer}:{rect};".encode())
    return h.hexdigest()


def attach_matches(groups: list[Group], pairs: list[Pair]) -> None:
    """Give each group the verified matches among its members (``pairs``: as linked)."""
    by_pair = {(p.a, p.b): p.match for p in pairs}
    for g in groups:
        ids = g.ids
        g.matches = {(a, b): by_pair[(a, b)] for a in ids for b in ids if (a, b) in by_pair}


def groups_to_json(groups: list[Group]) -> str:
    return json.dumps([[g.kind, g.ids, [[a, b, s] for (a, b), s in g.pair_scores.items()]] for g in groups])


def groups_from_json(rows: list[Row], text: str) -> Optional[list[Group]]:
    """Groups stored by groups_to_json, on these rows; None if a member is no longer among them."""
    by_id = {r.id: r for r in rows}
    out = []
    for kind, ids, scores in json.loads(text):
        if any(i not in by_id for i in ids):
            return None
        out.append(Group(kind, [Member(by_id[i]) for i in ids], {(a, b): s for a, b, s in scores}))
    return out


def representatives(rows: list[Row]):
    by_sha: dict[str, list[Row]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r.path):
        by_sha[r.sha256].append(r)
    reps = [v[0] for v in by_sha.values()]
    return reps, by_sha


def groups_from_pairs(rows: list[Row], pairs: list[Pair], similarity: float = 0.5,
                      overlaps: Optional[dict] = None, apart: Iterable = ()) -> list[Group]:
    """``apart``: pairs of contents (SHA-256) the user marked not duplicates (decisions.py): no
    verified pair, cover or bridge puts them in one group."""
    reps, by_sha = representatives(rows)
    by_id = {r.id: r for r in rows}
    rep_of = {r.id: by_sha[r.sha256][0].id for r in rows}
    members_of = {rep.id: by_sha[rep.sha256] for rep in reps}
    rep_by_sha = {rep.sha256: rep.id for rep in reps}
    parted = set()
    for a, b in apart:
        if a in rep_by_sha and b in rep_by_sha:
            parted |= {(rep_by_sha[a], rep_by_sha[b]), (rep_by_sha[b], rep_by_sha[a])}
    parted = frozenset(parted)
    threshold = verify_threshold(similarity)
    pairs = [p for p in pairs if p.match.score >= threshold and p.a in members_of and p.b in members_of
             and (p.a, p.b) not in parted]
    edge_scores: dict[tuple[int, int], float] = {}
    bridge = make_bridge(pairs, by_id, threshold, overlaps)
    clusters = anchored(complete_linkage([r.id for r in reps], pairs, bridge, edge_scores, parted), pairs, by_id,
                        bridge, edge_scores, parted)
    in_cluster = {x for c in clusters for x in c}
    scores = {(p.a, p.b): p.match for p in pairs}
    groups = []
    for c in clusters:
        members = [Member(r) for rep in c for r in members_of[rep]]
        matches = [scores.get((a, b)) or scores.get((b, a)) for i, a in enumerate(c) for b in c[i + 1:]]
        near = all(m is not None and m.how == "frame" and m.transform == 0 and m.score >= NEAR_SCORE for m in matches)
        means = [float(by_id[rep].signature.mean()) for rep in c if by_id[rep].signature is not None]
        near = near and (max(means) - min(means) < NEAR_MEAN_SHIFT if means else True)
        groups.append(Group("near" if near else "edited", members, {}))
    for rep in reps:
        if rep.id not in in_cluster and len(members_of[rep.id]) > 1:
            groups.append(Group("exact", [Member(r) for r in members_of[rep.id]]))
    for g in groups:  # verified scores between members, for "similarity to the keeper"
        for i, a in enumerate(g.members):
            for b in g.members[i + 1:]:
                ra, rb = rep_of[a.row.id], rep_of[b.row.id]
                g.pair_scores[(a.row.id, b.row.id)] = 1.0 if ra == rb else edge_scores.get((ra, rb), 0.0)
    groups.sort(key=lambda g: min(m.row.path for m in g.members))
    attach_matches(groups, pairs)
    return groups
