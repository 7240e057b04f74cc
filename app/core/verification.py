"""Verification scheduling: candidate pairs checked by verify.py, in worker processes when there
are many, in an order that prepares each photo's views once, with every outcome recorded as it
comes (docs/design.md, step 7)."""
from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import Callable, Optional

from app.core import verify
from app.core.grouping import verify_threshold

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

    def here(chunk: list[tuple[int, int]], prepared: OrderedDict) -> None:
        out.update(take_outcomes(verify.verify_chunk(((a, b, cands[(a, b)]) for a, b in chunk), None,
                                                     signature, prepared, progress), record))

    if workers > 1 and len(keys) >= PARALLEL_MIN:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        from app.core import pools

        # large chunks prepare each photo once for more of its pairs; at least 4 per worker
        # keep the workers evenly busy to the end
        size = max(200, min(CHUNK_MAX, -(-len(keys) // (workers * 4))))
        chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
        with pools.Pool(workers, name="doppel-verify") as pool:
            # Two chunks per worker at a time, not all of them: a waiting chunk holds its pairs
            # and a reference to every signature it needs (about 150 kB; a 100,000-photo
            # library makes about 550 chunks).
            futures: dict = {}  # future -> its chunk
            pending = iter(chunks)

            def submit() -> None:
                chunk = next(pending, None)
                if chunk is None:
                    return
                try:
                    futures[submit_chunk(pool, chunk, cands, signature)] = chunk
                except BrokenProcessPool:  # workers keep dying (pools.Pool's restarts spent)
                    here(chunk, OrderedDict())

            for _ in range(workers * 2):
                submit()
            try:
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        chunk = futures.pop(fut)
                        try:
                            done = fut.result()
                        except BrokenProcessPool:  # its worker died (killed for memory?): checked here
                            here(chunk, OrderedDict())
                        else:
                            out.update(take_outcomes(done, record))
                            if progress is not None:
                                progress.advance(len(done))
                        submit()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        return out
    prepared: OrderedDict = OrderedDict()
    for s in range(0, len(keys), CHUNK_MAX):
        here(keys[s:s + CHUNK_MAX], prepared)
    return out
