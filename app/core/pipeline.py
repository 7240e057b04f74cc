"""The scan pipeline: walk -> diff -> decode -> fingerprint -> upsert -> group -> rank.

``scan`` is the one function both front ends call. It takes a ``Progress`` (progress + cancel);
a cancelled scan keeps every batch already written to the library and returns what it has.
"""
from __future__ import annotations

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

from app.core import grouping, ranking
from app.core.decode import Decoded, decode_file
from app.core.library import Library, Row, path_id
from app.core.progress import Cancelled, Progress
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
    rows: list[Row]  # decodable rows in scope, with signatures
    groups: list[grouping.Group]
    problems: list[Problem] = field(default_factory=list)
    pairs: list[grouping.Pair] = field(default_factory=list)  # verified at the loosest setting

    def regroup(self, similarity: float, keeper_rule: str = "resolution", reference_folders=(),
                preferred_folder: str = "") -> None:
        """New groups for another similarity setting, from the stored pairs: no rescan."""
        self.groups = grouping.groups_from_pairs(self.rows, self.pairs, similarity)
        ranking.rank_groups(self.groups, keeper_rule, reference_folders, preferred_folder)


def _init_worker():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent only


def default_workers() -> int:
    cpus = os.cpu_count() or 1
    return max(1, min(6, cpus - 1))


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

    Each new batch asks Milvus for its neighbours; pairs of freshly read files are verified at
    once and remembered, so the final grouping stage does not verify them again.
    """

    def __init__(self, library: Library, callback: Callable, every: float, similarity: float, rank):
        self.library, self.callback, self.every = library, callback, every
        self.similarity, self.rank = similarity, rank
        self.rows: dict[int, Row] = {}
        self.verified: dict[tuple[int, int], Optional[grouping.Pair]] = {}
        self._last = time.monotonic()

    def add(self, rows: list[Row]) -> None:
        good = [r for r in rows if not r.problem and r.vector is not None]
        if not good:
            return
        for r in good:
            self.rows[r.id] = r
        hits = self.library.neighbours(np.stack([r.vector for r in good]), grouping.TOP_K)
        for r in good:
            r.vector = None  # searched; only the signature is needed from here on
        cands: dict[tuple[int, int], float] = {}
        grouping.add_candidates(cands, [r.id for r in good], hits, self.rows)
        cands = {k: v for k, v in cands.items() if k not in self.verified}
        found = {(p.a, p.b): p for p in grouping.verify_pairs(cands, self.rows, grouping.verify_threshold(0.0))}
        for key in cands:
            self.verified[key] = found.get(key)
        if time.monotonic() - self._last >= self.every:
            self.emit()

    def emit(self) -> None:
        self._last = time.monotonic()
        pairs = [p for p in self.verified.values() if p is not None]
        groups = grouping.groups_from_pairs(list(self.rows.values()), pairs, self.similarity)
        self.rank(groups)
        self.callback(groups)


def scan(folders: Iterable[str], library: Library, embedder, progress: Optional[Progress] = None,
         similarity: float = 0.5, workers: Optional[int] = None, keeper_rule: str = "resolution",
         reference_folders: Iterable[str] = (), preferred_folder: str = "",
         on_partial: Optional[Callable] = None, partial_every: float = 3.0) -> ScanResult:
    """Scan ``folders`` into ``library`` and group them. ``on_partial(groups)``, when given, gets
    the groups among the files read so far every ``partial_every`` seconds during the scan."""
    progress = progress or Progress()

    def rank(groups):
        ranking.rank_groups(groups, keeper_rule, reference_folders=reference_folders, preferred_folder=preferred_folder)

    partial = PartialGroups(library, on_partial, partial_every, similarity, rank) if on_partial else None
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
        stored = library.identities()
        present = {e.path for e in entries}
        vanished = [i for p, (i, _, _) in stored.items() if inside(p, folders) and p not in present]
        library.delete(vanished)
        stats.removed = len(vanished)
        todo = [e for e in entries if stored.get(e.path, (0, -1, -1))[1:] != (e.size, e.mtime_ns)]
        stats.skipped = len(entries) - len(todo)

        # 3-5. decode, fingerprint, upsert in batches (a cancel keeps finished batches)
        progress.start(len(todo), "embed", f"Reading {len(todo)} new or changed files")

        def flush():
            good = [d for d in batch if not d.problem]
            vecs = embedder.embed(np.stack([d.model_input for d in good])) if good else []
            out, vi = [], 0
            for d in batch:
                vec = None
                if not d.problem:
                    vec, vi = vecs[vi], vi + 1
                out.append(Row(path_id(d.entry.path), d.entry.path, d.entry.size, d.entry.mtime_ns, d.sha256,
                               d.width, d.height, d.format, embedder.name, d.problem, d.thumb, vec))
            library.upsert(out)
            stats.embedded += len(good)
            if partial is not None:
                partial.add(out)
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
    in_scope = [r for r in library.rows(with_signature=True) if inside(r.path, folders)]
    problems += [Problem(r.path, r.problem) for r in in_scope if r.problem]
    good = [r for r in in_scope if not r.problem]
    groups: list[grouping.Group] = []
    pairs: list[grouping.Pair] = []
    if not stats.cancelled:
        try:
            pairs = grouping.build_pairs(good, library, progress, known=partial.verified if partial else None)
            groups = grouping.groups_from_pairs(good, pairs, similarity)
        except Cancelled:
            stats.cancelled = True
    rank(groups)
    stats.problems = len(problems)
    stats.seconds = round(time.monotonic() - t0, 3)
    return ScanResult(library.location, embedder.name, embedder.choice.notice, folders, stats, good, groups,
                      problems, pairs)
