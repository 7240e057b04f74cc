"""The scan pipeline: walk -> diff -> decode -> fingerprint -> upsert -> group -> rank.

``scan`` is the one function both front ends call. It takes a ``Progress`` (progress + cancel);
a cancelled scan keeps every batch already written to the library and returns what it has.
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from app import __version__
from app.core import candidates, catalog, content, decisions, grouping, ranking, verification, verify
from app.core.allocator import keep_freed_memory, release_freed_memory
from app.core.decode import Decoded, decode_file
from app.core.library import Library, Row, path_id
from app.core.lifeline import exit_with_parent
from app.core.catalog import Catalog
from app.core.progress import Cancelled, Progress, ScanPlan
from app.core.walk import FileEntry, WalkProblem, inside, walk

log = logging.getLogger(__name__)

BATCH = 16
INLINE_BELOW = 24  # few files: decoding in-process beats starting worker processes


@dataclass
class Problem:
    path: str
    error: str


@dataclass
class ScanStats:
    files: int = 0
    embedded: int = 0
    skipped: int = 0
    removed: int = 0
    problems: int = 0
    seconds: float = 0.0
    cancelled: bool = False


@dataclass
class ScanResult:
    library: str
    model: str
    model_notice: str
    folders: list[str]
    stats: ScanStats
    rows: list[Row]  # decodable rows in scope; those in a pair carry their signature
    groups: list[grouping.Group]
    problems: list[Problem] = field(default_factory=list)
    pairs: list[grouping.Pair] = field(default_factory=list)  # verified at the loosest setting
    overlaps: dict = field(default_factory=dict)  # grouping.make_bridge's, reused by regroup()
    apart: set = field(default_factory=set)  # contents the user marked not duplicates (decisions.py)

    def regroup(self, similarity: float, review: Optional[ranking.Options] = None) -> None:
        """New groups for another similarity setting, from the stored pairs: no rescan."""
        self.groups = self.grouped(similarity, review)

    def grouped(self, similarity: float, review: Optional[ranking.Options] = None) -> list[grouping.Group]:
        """The groups ``regroup`` would set, without setting them (a front end computes them in
        another thread: 0.7-5.4 s for the 5,000-photo timing corpus). Only the overlap checks
        it keeps for the next call change: one call at a time."""
        groups = grouping.groups_from_pairs(self.rows, self.pairs, similarity, self.overlaps, self.apart)
        ranking.rank_groups(groups, review)
        return groups


def _init_worker():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent only
    exit_with_parent()
    keep_freed_memory()


def _init_background_worker():
    """A worker for the groups-so-far: far below the window, and below the reading it runs beside
    (which waits for it when it falls behind, and then leaves it the CPU)."""
    _init_worker()
    try:
        os.nice(19)  # the lowest priority there is (the call caps it)
    except (AttributeError, OSError):  # no os.nice (Windows), or not allowed: run as is
        pass


def default_workers() -> int:
    cpus = os.cpu_count() or 1
    return max(1, min(6, cpus))  # measured on 2 cores: 2 decoders beat 1 by 25 %, the model waits on them


def _crashed(entry: FileEntry) -> Decoded:
    return Decoded(entry, problem="the image decoder crashed on this file (damaged or hostile data)")


def _decode_isolated(entry: FileEntry, ctx) -> Decoded:
    """Decode one file alone in a fresh process, so a crash is pinned on that file."""
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_worker) as ex:
        try:
            return ex.submit(decode_file, entry).result()
        except BrokenProcessPool:
            return _crashed(entry)


def decode_all(entries: list[FileEntry], workers: int, progress: Progress) -> Iterator[Decoded]:
    """Decode in worker processes, in order, overlapped with whatever consumes the iterator.

    A worker that dies (a decoder segfault, the OOM killer) breaks the pool: the files that were
    in flight are retried one by one in isolation and the one that kills its process becomes a
    problem entry; the scan goes on with a fresh pool.
    """
    if workers <= 0 or len(entries) < INLINE_BELOW:
        for e in entries:
            progress.check()
            yield decode_file(e)
        return
    ctx = multiprocessing.get_context("spawn")  # fork after torch/Qt threads can deadlock
    # Shallow on purpose: while the model embeds a batch (torch on every core) the decoders run
    # dry and pause. 64 in flight kept them decoding alongside it, and 1,500 files took 2-4 s
    # longer to read (33.9/33.5 s against 32.1/29.2 s); building the model in a thread while the
    # decoders start gained nothing measurable either (31.9/29.8 s).
    ahead = workers * 4
    i = 0
    while i < len(entries):
        ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
        inflight: deque = deque()
        broken = False
        try:
            while i < len(entries) or inflight:
                while i < len(entries) and len(inflight) < ahead:
                    inflight.append((entries[i], ex.submit(decode_file, entries[i])))
                    i += 1
                entry, fut = inflight[0]
                try:
                    d = fut.result()
                except BrokenProcessPool:
                    broken = True
                    break
                inflight.popleft()
                yield d
                progress.check()
        finally:
            ex.shutdown(wait=not broken, cancel_futures=True)
        if broken:
            log.warning("a decode worker died; retrying %d files one by one", len(inflight))
            for entry, _ in inflight:
                progress.check()
                yield _decode_isolated(entry, ctx)


class PartialGroups:
    """Groups among the files read so far, for a front end that shows results during a scan.

    Each new batch is searched against the vectors read so far (in-process, no Milvus round
    trip; fewer neighbours while few are read: ``neighbours``) and its candidates verified; the
    final stage reuses these outcomes. With ``workers``, verification runs in that many worker
    processes beside the reading. In the scan process it held the reading up while the decoders
    waited: a 5,000-file scan from the window took 267-295 s where the command line took
    107-116 s (then 149-173 s; 145-179 s with fewer neighbours for the photos read early). When
    the reading ends, the chunks sent are finished first (at most two per worker), so that a
    cancelled scan shows the groups among everything it read, and the final stage verifies only
    what they did not.

    Every outcome goes to the catalog as it comes (``cache``), and only the pairs that
    verified are held: a first scan of 100,000 photos rejects about a million pairs, about
    500 MB as objects. Without a cache the rejected pairs are held as keys, so that the final
    stage does not verify them again.
    """

    BACKLOG = 2  # chunks per worker sent and not yet taken back: each holds its signatures
    # Neighbours looked up for a photo read early, when few others are known (``neighbours``).
    FEWEST_NEIGHBOURS = 4

    def __init__(self, callback: Callable, every: float, similarity: float, rank,
                 cache: Optional[Catalog] = None, workers: int = 0, floor: float = candidates.CANDIDATE_COSINE,
                 apart: Iterable = ()):
        self.callback, self.every = callback, every
        self.apart = apart
        self.floor = floor  # candidates.candidate_floor of the model
        self.similarity, self.rank = similarity, rank
        self.cache = cache
        self.workers = workers
        self.rows: dict[int, Row] = {}
        self.ids: list[int] = []
        self.vectors = np.zeros((0, 0), np.float32)
        self.outcomes: dict[tuple[int, int], tuple] = {}  # the pairs that verified
        self.rejected: set[tuple[int, int]] = set()  # only without a cache
        self.overlaps: dict = {}  # a verified pair's placement never changes: reused every update
        self._pool: Optional[ProcessPoolExecutor] = None
        self._sent: deque = deque()  # futures of chunks in the pool, oldest first
        self._last = time.monotonic()
        self.expected = 0  # photos the final stage will search among (the files in the scanned folders)

    def neighbours(self) -> int:
        """How many neighbours the photos read next look up among those read so far.

        A photo's k nearest among the n read so far are, on average, its k * N / n nearest among
        the N the final stage searches: the others will be pushed out by photos still to come,
        and the final stage would not have proposed them. With TOP_K for every photo, a window's
        scan of the 5,000-file timing corpus verified 87,859 pairs where the command line
        verifies 54,508; with this, 59,213 (49 s less CPU). The nearest few, where a photo's
        closest copies are, are always looked up."""
        if self.expected <= 0:
            return candidates.TOP_K
        share = -(-candidates.TOP_K * len(self.ids) // self.expected)
        return min(candidates.TOP_K, max(self.FEWEST_NEIGHBOURS, share))

    def add(self, rows: list[Row]) -> None:
        good = [r for r in rows if not r.problem and r.vector is not None and r.id not in self.rows]
        if not good:
            return
        for r in good:
            self.rows[r.id] = r
        first = len(self.ids)
        self.ids += [r.id for r in good]
        new = np.stack([r.vector for r in good])
        if len(self.ids) > len(self.vectors):  # grow by doubling: no copy of everything per batch
            grown = np.zeros((max(2 * len(self.vectors), len(self.ids), 256), new.shape[1]), np.float32)
            if first:
                grown[:first] = self.vectors[:first]
            self.vectors = grown
        self.vectors[first:len(self.ids)] = new
        # Only the new photos are queried, so every candidate pair holds one that no earlier batch
        # saw: none of them has been verified before.
        cands = candidates.candidate_pairs(self.ids, self.vectors[:len(self.ids)], self.ids[first:], k=self.neighbours(),
                                           min_cosine=self.floor)
        if self.workers > 0:
            self._send(cands)
        else:
            self.outcomes.update(verification.verify_candidates(cands, self._signature, record=self._record))
        if time.monotonic() - self._last >= self.every:
            self.emit()

    def _signature(self, i: int):
        return self.rows[i].evidence()

    def _send(self, cands: dict) -> None:
        self._take_finished()
        keys = verification.verifiable(cands, self._signature)
        if not keys:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_background_worker)
        while len(self._sent) >= self.workers * self.BACKLOG:  # the reading waits for verification
            self._take(self._sent.popleft())
        try:
            self._sent.append(verification.submit_chunk(self._pool, keys, cands, self._signature))
        except BrokenProcessPool:  # a worker died (killed for memory?): verify here from now on
            log.warning("verification workers for the groups so far died; verifying in the scan process")
            self._stop_pool()
            self.workers = 0
            self.outcomes.update(verification.verify_candidates(cands, self._signature, record=self._record))

    def _take_finished(self) -> None:
        while self._sent and self._sent[0].done():
            self._take(self._sent.popleft())

    def _take(self, fut) -> None:
        try:
            done = fut.result()
        except Exception as exc:  # a worker died: the final stage verifies these pairs
            log.warning("verification for the groups so far failed (%s); left to the final stage", exc)
            return
        self.outcomes.update(verification.take_outcomes(done, self._record))

    def _record(self, done: dict) -> None:
        """Every outcome, rejected ones too: the final stage must not verify a pair again."""
        if self.cache is not None:
            rows = self.rows
            self.cache.add(done, {i: catalog.stamp(rows[i].size, rows[i].mtime_ns) for key in done for i in key})
        else:
            loosest = grouping.verify_threshold(0.0)
            self.rejected.update(k for k, (_, m) in done.items() if m.score < loosest)

    def pending(self) -> int:
        """Chunks of pairs sent to the workers and not yet taken back."""
        return len(self._sent)

    def done_reading(self) -> None:
        """Finish the chunks sent, stop the workers and drop the vectors: the final stage gathers
        its own matrix (up to 1.6 GB of float32 at 100,000 photos with ResNet-50, held beside it
        until now)."""
        self.vectors = np.zeros((0, 0), np.float32)
        self._stop_pool()

    def _stop_pool(self) -> None:
        if self._pool is None:
            return
        while self._sent:
            self._take(self._sent.popleft())
        self._pool.shutdown(wait=True)
        self._pool = None

    def emit(self) -> None:
        self._last = time.monotonic()
        pairs = grouping.positive_pairs(self.outcomes)
        groups = grouping.groups_from_pairs(list(self.rows.values()), pairs, self.similarity, self.overlaps,
                                            self.apart)
        self.rank(groups)
        # The front end needs no vectors, signatures or pair scores (ranked here), and the
        # window receives these through a pipe: its thread that unpickles them holds the
        # interpreter lock meanwhile. 950 groups of a 5,000-file scan were 34 MB with the
        # signatures and took 89-99 ms to unpickle, while the window waited; without: 0.8 MB, 20 ms.
        for g in groups:
            g.pair_scores = {}
            for m in g.members:
                m.row = dataclasses.replace(m.row, vector=None, signature=None, features=None)
        self.callback(groups)


# Fewer photos than this to look up (a rescan that found a few new files): ask Milvus, about
# 1 ms each; more: load the library's vectors once and search in-process (search.py).
MILVUS_QUERIES_MAX = 200
SERVER_BATCH = 256  # queries sent to a server at once: a batch's vectors and hits, a few MB


def find_pairs(good: list[Row], library: Library, cache: Optional[Catalog], scope: str, progress: Progress,
               workers: int, known: Optional[dict] = None, checked: Iterable = ()) -> list[grouping.Pair]:
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


def cache_settings() -> dict:
    """What the catalog's verification outcomes depend on: opened with other values, they start empty."""
    return {"top_k": candidates.TOP_K, "candidate_cosine": candidates.CANDIDATE_COSINE,
            "verify": verify.VERSION, "doppel": __version__}


def group_rows(good: list[Row], pairs: list[grouping.Pair], similarity: float, library: Library,
               cache: Optional[Catalog], keep_signatures: bool, overlaps: Optional[dict] = None,
               apart: Iterable = ()) -> list[grouping.Group]:
    """groups_from_pairs, or the groups it made last time from exactly these rows and pairs.

    Linking is the costliest part of an unchanged rescan; what it reads is summed up in
    grouping.grouping_key. Rows in a pair get their signatures when linking needs them
    (bridging, group kinds) or the caller will regroup (``keep_signatures``).
    """
    key = grouping.grouping_key(good, pairs, similarity, apart)
    stored = cache.grouping(key) if cache is not None else None
    groups = grouping.groups_from_json(good, stored) if stored else None
    if groups is not None:
        floor = grouping.verify_threshold(similarity)
        grouping.attach_matches(groups, [p for p in pairs if p.match.score >= floor])
    if groups is None or keep_signatures:
        attach_signatures(library, {r.id: r for r in good}, {i for p in pairs for i in (p.a, p.b)}, cache,
                          remember=True)
    if groups is None:
        groups = grouping.groups_from_pairs(good, pairs, similarity, overlaps, apart)
        if cache is not None:
            cache.add_grouping(key, grouping.groups_to_json(groups))
    return groups


def scan(folders: Iterable[str], library: Library, embedder, progress: Optional[Progress] = None,
         similarity: float = 0.5, workers: Optional[int] = None, review: Optional[ranking.Options] = None,
         on_partial: Optional[Callable] = None, partial_every: float = 3.0,
         keep_signatures: bool = True) -> ScanResult:
    """Scan ``folders`` into ``library`` and group them. ``on_partial(groups)``, when given, gets
    the groups among the files read so far every ``partial_every`` seconds during the scan.
    ``keep_signatures=False``: the result will not be regrouped (ScanResult.regroup needs the
    signatures of paired photos), so an unchanged library's need not be loaded."""
    progress = progress or Progress()
    keep_freed_memory()

    def rank(groups, progress=None):
        ranking.rank_groups(groups, review, progress)

    # the library's catalog: the groups-so-far remember their outcomes in it as they come
    cache = library.catalog
    apart = decisions.apart_for(library.location)
    plan = ScanPlan(cache.stage_costs())
    partial = None
    if on_partial:
        partial = PartialGroups(on_partial, partial_every, similarity, rank, cache,
                                default_workers() if workers is None else workers,
                                candidates.candidate_floor(embedder.name), apart)
    try:
        written: dict[int, Row] = {}  # every row stored in this scan (vectors and signatures in memory)
        stored_rows: Optional[list[Row]] = None
        present: set[str] = set()
        t0 = time.monotonic()
        folders = [os.path.abspath(os.path.expanduser(f)) for f in folders]
        stats = ScanStats()
        problems: list[Problem] = []
        batch: list[Decoded] = []
        try:
            # 1. walk
            progress.start(0, "walk", "Looking for photos")
            walk_problems: list[WalkProblem] = []
            entries = []
            for e in walk(folders, walk_problems, progress):
                entries.append(e)
                if len(entries) % 200 == 0:
                    progress.note(f"Found {len(entries)} files")
            problems += [Problem(p.path, p.error) for p in walk_problems]
            stats.files = len(entries)

            # 2. diff against the library
            progress.start(0, "diff", "Comparing with the library")
            stored_rows = library.rows()  # read once: the grouping stage reuses it
            stored = {r.path: (r.id, r.size, r.mtime_ns) for r in stored_rows}
            present = {e.path for e in entries}
            vanished = [i for p, (i, _, _) in stored.items() if p not in present and inside(p, folders)]
            library.delete(vanished)
            stats.removed = len(vanished)
            todo = [e for e in entries if stored.get(e.path, (0, -1, -1))[1:] != (e.size, e.mtime_ns)]
            stats.skipped = len(entries) - len(todo)
            plan.read, plan.photos = len(todo), len(entries)
            progress.plan = plan  # the time left for the whole scan is told from here on
            if partial is not None:
                partial.expected = len(entries)

            # 3-5. decode, fingerprint, upsert in batches (a cancel keeps finished batches)
            progress.start(len(todo), "embed", f"Reading {len(todo)} new or changed files")
            held_dtype = np.float32
            if todo:  # torch comes with embedding; an unchanged rescan does not import it
                from app.core import search

                # the search will want float16 (search.matrix_dtype): the rows hold theirs so from the
                # start, half the memory through a large first scan (410 MB at 100,000 with ResNet-50)
                held_dtype = search.matrix_dtype(len(entries), len(todo))

            def flush():
                good = [d for d in batch if not d.problem]
                vecs = embedder.embed(np.stack([d.model_input for d in good])) if good else []
                out, vi = [], 0
                for d in batch:
                    vec = None
                    if not d.problem:
                        vec, vi = vecs[vi], vi + 1
                    out.append(Row(path_id(d.entry.path), d.entry.path, d.entry.size, d.entry.mtime_ns, d.sha256,
                                   d.width, d.height, d.format, embedder.name, d.problem, d.thumb, vec, d.features,
                                   facts=d.facts or None))
                for r in out:  # known from the start, so the groups-so-far rank as the final ones
                    if r.features is not None:
                        r.content_share = content.square_of(r.features)[1]
                library.upsert(out)  # as computed: only the copy held for the search is rounded
                # what the keeper is chosen on, beside the files in the catalog (not in Milvus)
                cache.add_facts({r.id: r.facts for r in out if r.facts},
                                {r.id: catalog.stamp(r.size, r.mtime_ns) for r in out})
                if held_dtype is not np.float32:
                    for r in out:
                        if r.vector is not None:
                            r.vector = r.vector.astype(held_dtype)
                stats.embedded += len(good)
                written.update((r.id, r) for r in out)
                if partial is not None:
                    partial.add(out)
                elif library.is_server:
                    # the server holds them: its search takes them back a batch at a time
                    # (find_pairs), so the client never holds a whole library's vectors
                    for r in out:
                        r.vector = None
                last = batch[-1].entry.path
                n = len(batch)
                batch.clear()  # before advance(): it raises Cancelled, and this batch is stored
                progress.advance(n, last)

            for d in decode_all(todo, default_workers() if workers is None else workers, progress):
                batch.append(d)
                if len(batch) >= BATCH:
                    flush()
            if batch:
                flush()
        except Cancelled:
            stats.cancelled = True
            if batch:
                try:
                    flush()
                except Cancelled:
                    pass
        # 6. group what is in the library for these folders (also after a cancel: partial results)
        if stored_rows is None:  # cancelled before the diff
            in_scope = [r for r in library.rows() if inside(r.path, folders)]
        else:
            scope_rows = {r.id: r for r in stored_rows if r.path in present}
            scope_rows.update(written)
            in_scope = list(scope_rows.values())
        problems += [Problem(r.path, r.problem) for r in in_scope if r.problem]
        good = [r for r in in_scope if not r.problem]
        groups: list[grouping.Group] = []
        pairs: list[grouping.Pair] = []
        # the groups-so-far updates checked these pairs' overlaps already (same verified outcomes)
        overlaps: dict = partial.overlaps if partial is not None else {}
        if partial is not None:
            if partial.pending() and not progress.cancelled:
                try:
                    progress.start(0, "verify", "Checking the last pairs of the groups so far")
                except Cancelled:  # asked just now: the pairs sent are finished all the same
                    stats.cancelled = True
            partial.done_reading()
        if not stats.cancelled:
            try:
                pairs = find_pairs(good, library, cache, catalog.scope_key(folders), progress,
                                   default_workers() if workers is None else max(workers, 1),
                                   partial.outcomes if partial else None, partial.rejected if partial else ())
                progress.start(0, "group", f"Grouping {len(good)} photos by {len(pairs)} verified pairs")
                groups = group_rows(good, pairs, similarity, library, cache, keep_signatures, overlaps, apart)
            except Cancelled:
                stats.cancelled = True
        elif partial is not None:
            # a cancelled scan still shows the groups among what it read
            pairs = grouping.positive_pairs(partial.outcomes)
            groups = grouping.groups_from_pairs(good, pairs, similarity, apart=apart)
        try:
            rank(groups, progress)
        except Cancelled:  # the rest are ranked all the same: a cancelled scan shows what it found
            stats.cancelled = True
            rank(groups)
        progress.finish()
        if not stats.cancelled:
            cache.set_stage_costs(plan.measured(progress.took))
        for r in good:  # searched: only signatures of paired photos are kept for regrouping
            r.vector = None
            r.features = None  # verification is done; regrouping reads signatures only
        stats.problems = len(problems)
        stats.seconds = round(time.monotonic() - t0, 3)
        return ScanResult(library.location, embedder.name, embedder.choice.notice, folders, stats, good, groups,
                          problems, pairs, overlaps, apart)
    finally:
        if partial is not None:  # its worker processes, when the scan failed
            partial.done_reading()
