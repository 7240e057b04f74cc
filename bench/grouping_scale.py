"""Grouping a large library from synthetic vectors and signatures: time and peak memory.

    .venv/bin/python bench/grouping_scale.py [--photos 100000] [--dim 2048]

Makes ``--photos`` unit vectors shaped like CNN features (positive, in loose clusters of similar
scenes) and 96 x 72 grayscale signatures, with planted copies (every 10th photo has a resized,
brightened copy: vector nudged, signature resampled and brightened). Then runs the grouping stage
exactly as a first scan does after embedding: in-process candidate search, verification in
worker processes with every outcome written to the catalog, complete linkage. Prints wall time
per stage, peak memory of the process tree (this process + verification workers, /proc sampled
every 0.1 s) from the start of the grouping (making the test data peaks on its own) and how many
planted copies were grouped and how many groups hold anything else.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core import candidates, catalog, grouping, verification  # noqa: E402
from app.core.allocator import keep_freed_memory, release_freed_memory  # noqa: E402
from app.core.domain import Row  # noqa: E402
from app.core.catalog import Catalog  # noqa: E402
from bench.speed import tree_rss_kb  # noqa: E402


def signatures(n: int, rng) -> np.ndarray:
    """Smooth random scenes with some texture, uint8 (n, 72, 96)."""
    import cv2

    out = np.empty((n, 72, 96), np.uint8)
    for i in range(n):
        base = cv2.resize(rng.random((6, 8), dtype=np.float32), (96, 72), interpolation=cv2.INTER_CUBIC)
        detail = cv2.resize(rng.random((18, 24), dtype=np.float32), (96, 72), interpolation=cv2.INTER_LINEAR)
        out[i] = np.clip((0.7 * base + 0.3 * detail) * 255, 0, 255)
    return out


def photos(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(unit vectors float32 (n, dim), signatures uint8 (n, 72, 96), ids of the planted copies):
    every 10th photo is a resized, brightened copy of the one before it."""
    import cv2

    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((n // 50, dim), dtype=np.float32))
    vec = np.empty((n, dim), np.float32)
    for s in range(0, n, 10_000):
        m = min(10_000, n - s)
        vec[s:s + m] = centres[rng.integers(0, len(centres), m)] + 0.9 * np.abs(rng.standard_normal((m, dim), dtype=np.float32))
    sig = signatures(n, rng)
    copies = list(range(1, n, 10))
    for i in copies:
        vec[i] = vec[i - 1] + 0.15 * rng.standard_normal(dim, dtype=np.float32)
        small = cv2.resize(sig[i - 1], (64, 48), interpolation=cv2.INTER_AREA)
        sig[i] = np.clip(cv2.resize(small, (96, 72), interpolation=cv2.INTER_LINEAR) * 1.15 + 8, 0, 255)
    for s in range(0, n, 10_000):  # in slices: the norm of the whole matrix at once is another 800 MB for 100,000
        part = vec[s:s + 10_000]
        part /= np.linalg.norm(part, axis=1, keepdims=True)
    return vec, sig, copies


def planted_and_other(groups, copies: list[int]) -> tuple[int, int]:
    """How many planted copies were grouped with their photo, and how many groups hold anything else."""
    found = {tuple(sorted(m.row.id for m in g.members)) for g in groups}
    planted = sum((i - 1, i) in found for i in copies)
    return planted, sum(1 for g in found if not (len(g) == 2 and g[1] == g[0] + 1 and g[1] % 10 == 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    from app.core import search  # torch: not at the top, where verification workers would import it too

    keep_freed_memory()  # as pipeline.scan does
    peak = [0]  # reset when the grouping starts: making the test data is not grouping
    lock = threading.Lock()
    done = threading.Event()

    def sample():
        while not done.is_set():
            now = tree_rss_kb(os.getpid())
            with lock:
                peak[0] = max(peak[0], now)
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    n = args.photos
    t = time.monotonic()
    vec, sig, copies = photos(n, args.dim)
    # what pairs.find_pairs searches: the rows' vectors gathered into one matrix, float16 for a
    # library that is searched approximately (search.matrix_dtype)
    vec = vec.astype(search.matrix_dtype(n, n))
    rows = [Row(i, f"/synthetic/{i:06d}.jpg", 1000 + i, i, f"{i:064x}", 96, 72, "JPEG", "synthetic", "", sig[i])
            for i in range(n)]
    print(f"made {n} photos ({args.dim}-d vectors, {len(copies)} planted copies) in {time.monotonic() - t:.1f} s")

    def mb() -> str:
        now = tree_rss_kb(os.getpid())
        with lock:
            peak[0] = max(peak[0], now)
            return f"{now / 1024:.0f} MB now, {peak[0] / 1024:.0f} MB peak since the grouping started"

    made = tree_rss_kb(os.getpid())
    with lock:
        making, peak[0] = max(peak[0], made), made
    print(f"memory with the photos made: {made / 1024:.0f} MB now, {making / 1024:.0f} MB peak while making them",
          flush=True)
    t0 = time.monotonic()
    ids = [r.id for r in rows]
    hits = candidates.nearest_hits(ids, vec)
    del vec  # as in a scan: nothing after the search needs the vectors (pairs.find_pairs)
    release_freed_memory()
    cands = candidates.fold_hits(*hits)
    del hits
    release_freed_memory()
    t1 = time.monotonic()
    print(f"after the search: {mb()}", flush=True)
    # every outcome goes to the catalog as a scan's do (pairs.find_pairs); positives are held
    with tempfile.TemporaryDirectory() as tmp:
        cache = Catalog(os.path.join(tmp, "pairs.sqlite"), {})
        stamps = {r.id: catalog.stamp(r.size, r.mtime_ns) for r in rows}
        outcomes = verification.verify_candidates(cands, lambda i: sig[i], workers=args.workers,
                                              record=lambda done: cache.add(done, stamps))
        stored = cache.db.execute(f"SELECT count(*) FROM {cache.t.pairs}").fetchone()[0]
        cache.close()
    t2 = time.monotonic()
    print(f"after verification: {mb()}; {stored} outcomes in the catalog", flush=True)
    pairs = grouping.positive_pairs(outcomes)
    groups = grouping.groups_from_pairs(rows, pairs)
    t3 = time.monotonic()
    done.set()
    planted, other = planted_and_other(groups, copies)
    print(f"search {t1 - t0:.1f} s ({len(cands)} candidate pairs), verify {t2 - t1:.1f} s, "
          f"link {t3 - t2:.1f} s: grouping {t3 - t0:.1f} s in all")
    print(f"peak memory while grouping (process tree, includes the {n} photos' vectors and signatures) "
          f"{peak[0] / 1024:.0f} MB")
    print(f"planted copies grouped {planted}/{len(copies)}; groups holding anything else: {other}")


if __name__ == "__main__":
    main()
