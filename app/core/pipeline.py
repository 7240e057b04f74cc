"""The scan pipeline: walk -> diff -> decode -> fingerprint -> upsert -> group -> rank.

``scan`` is the one function both front ends call. It takes a ``Progress`` (progress + cancel);
a cancelled scan keeps every batch already written to the library and returns what it has.
"""
from __future__ import annotations

import logging
import importlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

from app.core import candidates, catalog, content, decisions, domain, groups_so_far, grouping, ranking, reading
from app.core import pairs as verified_pairs
from app.core.allocator import keep_freed_memory
from app.core.catalog import Catalog
from app.core.decode import Decoded
from app.core.domain import Problem, Row
from app.core.library import Library, path_id
from app.core.progress import Cancelled, Progress, ScanPlan
from app.core.walk import inside, walk

log = logging.getLogger(__name__)

BATCH = 16
# Decoded files in flight: two batches, so the decoders fill the next batch while the network
# embeds this one.
DECODE_AHEAD = 2 * BATCH
# Decoded files held while the network is still being loaded (a few seconds of imports and
# building at the start of a first scan): the decoders keep decoding meanwhile.
WAITING_MAX = 16 * BATCH


class _Preparing:
    """Torch, the search and the network loaded in a thread of their own while the decoders start,
    so the decoders do not wait for them. A failure is not kept: the caller's own ``embed`` meets
    it again after ``wait`` and raises it where a failing network always does."""

    def __init__(self, embedder):
        self._thread = threading.Thread(target=self._run, args=(embedder,), name="doppel-model", daemon=True)
        self._thread.start()

    @staticmethod
    def _run(embedder) -> None:
        try:
            importlib.import_module("app.core.search")  # and torch with it

            load = getattr(embedder, "load", None)  # a test's embedder may have nothing to load
            if load is not None:
                load()
        except BaseException:  # told by the caller's embed (see above)
            pass

    def ready(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        self._thread.join()


@dataclass
class ScanStats:
    files: int = 0
    embedded: int = 0
    skipped: int = 0
    removed: int = 0
    problems: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    stages: list = field(default_factory=list)  # (stage, start, end) in time.time(), in order (Progress.timeline)


@dataclass
class ScanResult:
    library: str
    model: str
    model_notice: str
    folders: list[str]
    stats: ScanStats
    rows: list[Row]  # decodable rows in scope; those in a pair carry their signature
    groups: list[domain.Group]
    problems: list[Problem] = field(default_factory=list)
    pairs: list[domain.Pair] = field(default_factory=list)  # verified at the loosest setting
    overlaps: dict = field(default_factory=dict)  # grouping.make_bridge's, reused by regroup()
    apart: set = field(default_factory=set)  # contents the user marked not duplicates (decisions.py)

    def regroup(self, similarity: float, review: Optional[ranking.Options] = None) -> None:
        """New groups for another similarity setting, from the stored pairs: no rescan."""
        self.groups = self.grouped(similarity, review)

    def grouped(self, similarity: float, review: Optional[ranking.Options] = None) -> list[domain.Group]:
        """The groups ``regroup`` would set, without setting them (a front end computes them in
        another thread: 0.7-5.4 s for the 5,000-photo timing corpus). Only the overlap checks
        it keeps for the next call change: one call at a time."""
        groups = grouping.groups_from_pairs(self.rows, self.pairs, similarity, self.overlaps, self.apart)
        ranking.rank_groups(groups, review)
        return groups


def group_rows(good: list[Row], pairs: list[domain.Pair], similarity: float, library: Library,
               cache: Optional[Catalog], keep_signatures: bool, overlaps: Optional[dict] = None,
               apart: Iterable = ()) -> list[domain.Group]:
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
        verified_pairs.attach_signatures(library, {r.id: r for r in good}, {i for p in pairs for i in (p.a, p.b)}, cache,
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
        partial = groups_so_far.PartialGroups(on_partial, partial_every, similarity, rank, cache,
                                reading.default_workers() if workers is None else workers,
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
            walk_problems: list[Problem] = []
            entries = []
            for e in walk(folders, walk_problems, progress):
                entries.append(e)
                if len(entries) % 200 == 0:
                    progress.note(f"Found {len(entries)} files")
            problems += walk_problems
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
            # torch comes with embedding; an unchanged rescan does not import it
            model = _Preparing(embedder) if todo else None
            held_dtype = None

            def flush():
                nonlocal held_dtype
                if held_dtype is None:
                    model.wait()
                    from app.core import search

                    # the search will want float16 (search.matrix_dtype): the rows hold theirs so from
                    # the start, half the memory through a large first scan (410 MB at 100,000 with
                    # ResNet-50)
                    held_dtype = search.matrix_dtype(len(entries), len(todo))
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

            decoders = reading.default_workers() if workers is None else workers
            embedder.threads = reading.network_threads(decoders)
            for d in reading.decode_all(todo, decoders, progress, ahead=DECODE_AHEAD):
                batch.append(d)
                if len(batch) >= BATCH and (model.ready() or len(batch) >= WAITING_MAX):
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
        groups: list[domain.Group] = []
        pairs: list[domain.Pair] = []
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
                pairs = verified_pairs.find_pairs(good, library, cache, catalog.scope_key(folders), progress,
                                   reading.default_workers() if workers is None else max(workers, 1),
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
        stats.stages = list(progress.timeline)
        return ScanResult(library.location, embedder.name, embedder.choice.notice, folders, stats, good, groups,
                          problems, pairs, overlaps, apart)
    finally:
        if partial is not None:  # its worker processes, when the scan failed
            partial.done_reading()
