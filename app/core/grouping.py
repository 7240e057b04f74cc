"""Linkage: verified pairs -> duplicate groups without chaining (docs/design.md, step 8).

1. Byte-identical files (same SHA-256) are one node: an exact group on their own.
2. Candidate pairs come from candidates.py, verified by verification.py (verify.py decides).
3. Complete linkage: two clusters merge only if every cross pair is verified (or vouched for by a
   member that covers both), so A~B and B~C never put A and C together unless A~C.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Iterable, Optional


from app.core import verify
from app.core.domain import Group, Member, Pair, Row

# A group is "near" (resized / re-encoded) when every pair lines up as the same frame this well
# and the overall brightness did not move; anything else verified is "edited".
NEAR_SCORE = 0.95
NEAR_MEAN_SHIFT = 6.0
def verify_threshold(similarity: float) -> float:
    """similarity 0..1 -> minimum normalised cross-correlation of the signatures.

    Default 0.5 -> 0.93: true copies measured >= 0.93 except 3° rotations and crop-vs-crop
    pairs; the closest different photos (strips of one panorama, look-alikes) stayed <= 0.90.
    """
    similarity = min(max(similarity, 0.0), 1.0)
    return 0.89 + 0.08 * similarity


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
