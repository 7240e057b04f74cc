"""A scan's verified pairs: candidates from the search (in-process, Milvus Lite or a Milvus
server), minus the pairs the catalog remembers, verified; with the signatures and features
verification reads (docs/design.md, steps 6-7)."""
from __future__ import annotations

import os
from typing import Iterable, Optional

import numpy as np

from app.core import candidates, catalog, content, domain, grouping, verification
from app.core.allocator import release_freed_memory
from app.core.catalog import Catalog
from app.core.decode import decode_file
from app.core.domain import Row
from app.core.library import Library
from app.core.progress import Progress
from app.core.walk import FileEntry


MILVUS_QUERIES_MAX = 200
SERVER_BATCH = 256  # queries sent to a server at once: a batch's vectors and hits, a few MB


def find_pairs(good: list[Row], library: Library, cache: Optional[Catalog], scope: str, progress: Progress,
               workers: int, known: Optional[dict] = None, checked: Iterable = ()) -> list[domain.Pair]:
    """Verified pairs among ``good`` (the decodable rows in the scanned folders).

    Only photos not yet searched in this scope (new, changed, or the folders changed) look up
    their neighbours, and only pairs without a remembered outcome are verified: an unchanged
    library regroups from the catalog without touching a vector or a signature. Rows read in
    this scan still hold their vectors and signatures; the others' are loaded when needed.
    ``known``: outcomes verified earlier in this scan (PartialGroups), already in ``cache`` when
    there is one; ``checked``: pairs it rejected that no cache remembers.
    """
    reps, _ = grouping.representatives(good)
    rep_ids = [r.id for r in reps]
    wanted = set(rep_ids)
    stamps = {r.id: catalog.stamp(r.size, r.mtime_ns) for r in good}
    done = cache.searched(scope, stamps) if cache else set()
    outcomes = cache.positives(stamps, grouping.verify_threshold(0.0)) if cache else {}
    from_scan = dict(known or {})
    outcomes.update(from_scan)
    queries = [i for i in rep_ids if i not in done]
    by_id = {r.id: r for r in good}

    def vectors_of(ids: list[int], release: bool = False, dtype=np.float32) -> np.ndarray:
        """The vectors of ``ids`` as one matrix. ``release``: each row drops its own vector once
        copied, so a whole library's vectors are not held twice while they are gathered (800 MB
        more for 100,000 photos with ResNet-50: see allocator.release_freed_memory)."""
        matrix = np.empty((len(ids), library.dim), dtype)
        missing = []
        for n, i in enumerate(ids):
            if by_id[i].vector is None:
                missing.append(n)
                continue
            matrix[n] = by_id[i].vector
            if release:
                by_id[i].vector = None
                if (n - len(missing)) % 10_000 == 9_999:  # freed batches stay in the heap otherwise
                    release_freed_memory()
        for s in range(0, len(missing), 10_000):  # the library's copies come and go in slices
            part = missing[s:s + 10_000]
            matrix[part] = library.vectors([ids[n] for n in part])
        return matrix

    cands: dict[tuple[int, int], float] = {}
    if queries and len(rep_ids) > 1:
        if library.is_server:
            # the server searches with its own index; the client holds one batch of query vectors
            # (those not still held from reading) at a time and never downloads the collection
            progress.start(len(queries), "search", "Searching in the Milvus server")
            floor = candidates.candidate_floor(library.model)
            for s in range(0, len(queries), SERVER_BATCH):
                part = queries[s:s + SERVER_BATCH]
                hits = library.neighbours(vectors_of(part), candidates.TOP_K * 2)
                candidates.candidates_from_hits(cands, part, hits, wanted, floor)
                progress.advance(len(part))
        elif len(queries) <= MILVUS_QUERIES_MAX and len(queries) * 4 < len(rep_ids):
            # k * 2: the library may hold photos outside these folders, which take places
            hits = library.neighbours(vectors_of(queries), candidates.TOP_K * 2)
            candidates.candidates_from_hits(cands, queries, hits, wanted, candidates.candidate_floor(library.model))
        else:
            from app.core import search  # torch: decoding workers import this module

            progress.note("Loading vectors")
            matrix = vectors_of(rep_ids, release=True, dtype=search.matrix_dtype(len(rep_ids), len(queries)))
            # The matrix holds them now and nothing after the search needs them: without this, a
            # first scan held every vector twice while searching (800 MB more for 100,000 photos
            # with ResNet-50). Exact copies (not representatives) still hold theirs.
            for r in good:
                r.vector = None
            hits = candidates.nearest_hits(rep_ids, matrix, queries, progress)
            # gone before the hits become a dict of pairs (about 280 MB for 100,000 photos), and
            # the search's working memory (PCA, graph, re-scoring blocks), which otherwise stays
            # in the heap: 212 MB handed back at 100,000 synthetic photos
            del matrix
            release_freed_memory()
            cands = candidates.fold_hits(*hits, candidates.candidate_floor(library.model))
            del hits
            release_freed_memory()  # the fold's arrays, before verification starts its workers
    squares = turn_squares([r.id for r in good], by_id, cache, stamps)
    for r in good:  # byte-identical copies share their representative's content
        if r.id in squares:
            r.content_share = squares[r.id][1]
    if cache is not None:  # what the keeper is chosen on, for photos not read in this scan
        unknown = {r.id: stamps[r.id] for r in good if r.facts is None}
        for i, f in (cache.facts(unknown) if unknown else {}).items():
            by_id[i].facts = f
    if queries and len(rep_ids) > 1:
        with_square = [i for i in rep_ids if i in squares]
        for key, v in candidates.turned_candidates(with_square, [squares[i][0] for i in with_square],
                                                 [i for i in queries if i in squares]).items():
            cands.setdefault(key, v)
    # Of the remembered negatives only that they were verified matters, and only when there is
    # something to verify: an unchanged rescan does not read them (54,508 rows: 0.13-0.17 s).
    verified = (cache.verified(stamps) if cache and cands else set()) | from_scan.keys() | set(checked)
    for k in verified & cands.keys():  # in place: a first scan's candidates are one large dict
        del cands[k]

    attach_signatures(library, by_id, {i for key in cands for i in key}, cache)
    # Each chunk's outcomes are remembered as they come, and only the pairs that verified are
    # held: a cancelled scan keeps the chunks it finished.
    outcomes.update(verification.verify_candidates(cands, lambda i: by_id[i].evidence(), progress, workers,
                                               record=None if cache is None else lambda done: cache.add(done, stamps)))
    if cache is not None:
        cache.mark_searched(scope, {i: stamps[i] for i in rep_ids})
    return grouping.positive_pairs({k: v for k, v in outcomes.items() if k[0] in wanted and k[1] in wanted})


def turn_squares(ids: list[int], by_id: dict[int, Row], cache: Optional[Catalog], stamps: dict[int, int]) -> dict:
    """Each photo's (content square, content share), for turned candidates and the keeper: from
    the features of the rows read in this scan (the cache keeps them), else as the cache
    remembers them."""
    fresh = {i: content.square_of(by_id[i].features) for i in ids if by_id[i].features is not None}
    if cache is None:
        return fresh
    cache.add_squares(fresh, stamps)
    held = cache.squares({i: stamps[i] for i in ids if i not in fresh})
    return {**held, **fresh}


def attach_signatures(library: Library, by_id: dict[int, Row], ids, cache: Optional[Catalog] = None,
                      remember: bool = False) -> None:
    """Give the rows ``ids`` their signatures and features: the ones held in memory, else from
    the catalog (``cache``, else the library's; stored for the file as it is now), else read
    from the file again. ``remember``: the catalog keeps what it lacked."""
    ids = set(ids)
    if not ids:
        return
    stamps = {i: catalog.stamp(by_id[i].size, by_id[i].mtime_ns) for i in ids}
    held = cache.signatures_held(stamps) if cache is not None else set()
    for i, (sig, feats) in (cache.signatures([i for i in held if by_id[i].signature is None]) if held else {}).items():
        by_id[i].signature, by_id[i].features = sig, feats
    for r in library.get([i for i in ids if by_id[i].signature is None], with_signature=True):
        by_id[r.id].signature = r.signature
    # Features live only in the catalog, and go when the verification settings change; a photo
    # without them (or without a signature) is read again rather than never verified.
    lost = [i for i in ids if by_id[i].features is None or by_id[i].signature is None]
    for i in lost:
        r = by_id[i]
        try:
            st = os.stat(r.path)
        except OSError:
            continue  # gone: the next scan drops it
        if (st.st_size, st.st_mtime_ns) != (r.size, r.mtime_ns):
            continue  # changed since it was scanned: the next scan reads it again
        d = decode_file(FileEntry(r.path, r.size, r.mtime_ns))
        if not d.problem:
            r.signature, r.features = d.thumb, d.features
            r.facts = r.facts or d.facts or None
    if cache is not None and (remember or lost):
        cache.add_signatures({i: by_id[i].evidence() for i in (ids - held) | set(lost)
                              if by_id[i].signature is not None}, stamps)
        cache.add_facts({i: by_id[i].facts for i in lost if by_id[i].facts}, stamps)
