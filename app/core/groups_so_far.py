"""The groups among the files read so far, shown by the window while a scan goes on."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Optional

import numpy as np

from app.core import candidates, catalog, grouping, pools, verification
from app.core.catalog import Catalog
from app.core.domain import Row

log = logging.getLogger(__name__)


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
        self._pool: Optional[pools.Pool] = None
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
            # far below the window, and below the reading it runs beside (which waits for it
            # when it falls behind, and then leaves it the CPU)
            self._pool = pools.Pool(self.workers, niceness=pools.LOWEST, name="doppel-sofar")
        while len(self._sent) >= self.workers * self.BACKLOG:  # the reading waits for verification
            self._take(self._sent.popleft())
        try:
            self._sent.append(verification.submit_chunk(self._pool, keys, cands, self._signature))
        except BrokenProcessPool:  # workers keep dying (killed for memory?): verify here from now on
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
