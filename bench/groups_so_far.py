"""The window's scan path on a large library, from synthetic photos: memory and time.

    .venv/bin/python bench/groups_so_far.py [--photos 10000] [--dim 2048]

A scan started from the window shows groups while it reads (groups_so_far.PartialGroups): each batch
of new photos is searched against those read so far and its candidates are verified at once, in
the scan process. The final stage (pairs.find_pairs) then searches the whole library and
verifies only what the reading did not. This feeds grouping_scale.py's synthetic photos through
both, a batch at a time as pipeline.scan does after embedding them, with a real catalog and
library in a temporary folder (every row holds its vector and signature, so Milvus is not
started). Verification during the reading runs in ``--workers`` processes, as in a scan from the
window. Prints what the groups-so-far hold once everything is read, the peak memory of the
process tree (sampled every 0.1 s) from the first batch on, and the time of each stage.
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

from app.core import candidates, catalog, grouping, groups_so_far, pairs, pipeline, verify  # noqa: E402
from app.core.allocator import keep_freed_memory  # noqa: E402
from app.core.domain import Row  # noqa: E402
from app.core.library import Library  # noqa: E402
from app.core.catalog import Catalog  # noqa: E402
from app.core.progress import Progress  # noqa: E402
from bench.grouping_scale import photos, planted_and_other  # noqa: E402
from bench.speed import tree_rss_kb  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    from app.core import search  # torch: not at the top, where verification workers would import it too

    keep_freed_memory()  # as pipeline.scan does
    n = args.photos
    vec, sig, copies = photos(n, args.dim)
    held = search.matrix_dtype(n, n)  # what a first scan's rows hold (pipeline.scan)
    rows = [Row(i, f"/synthetic/{i:06d}.jpg", 1000 + i, i, f"{i:064x}", 96, 72, "JPEG", "synthetic", "", sig[i],
                vec[i].astype(held)) for i in range(n)]
    del vec, sig
    peak = [tree_rss_kb(os.getpid())]
    start = peak[0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kb(os.getpid()))
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    print(f"made {n} photos ({args.dim}-d vectors held as {np.dtype(held).name}, {len(copies)} planted copies); "
          f"{start / 1024:.0f} MB", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"top_k": candidates.TOP_K, "candidate_cosine": candidates.CANDIDATE_COSINE, "verify": verify.VERSION}
        cache = Catalog(os.path.join(tmp, "pairs.sqlite"), settings)
        t0 = time.monotonic()
        partial = groups_so_far.PartialGroups(lambda groups: None, float("inf"), 0.5, lambda groups: None, cache,
                                         args.workers)
        partial.expected = n  # as pipeline.scan sets it: the photos the final stage searches among
        for s in range(0, n, pipeline.BATCH):
            partial.add(rows[s:s + pipeline.BATCH])
            if s % 2000 == 0 and s:
                print(f"  read {s}: {time.monotonic() - t0:.0f} s, {tree_rss_kb(os.getpid()) / 1024:.0f} MB", flush=True)
        now = tree_rss_kb(os.getpid())
        held = len(partial.outcomes)
        partial.done_reading()  # as pipeline.scan does before its final stage: the chunks sent are finished
        t1 = time.monotonic()
        print(f"read: {t1 - t0:.1f} s; {now / 1024:.0f} MB after the last batch, {(now - start) / 1024:.0f} MB more "
              f"than before the first; {held} outcomes held then, {len(partial.outcomes)} after the chunks sent",
              flush=True)
        library = Library(os.path.join(tmp, "library.db"), "synthetic", args.dim)
        found = pairs.find_pairs(rows, library, cache, catalog.scope_key(["/synthetic"]), Progress(),
                                 args.workers, partial.outcomes, partial.rejected)
        groups = grouping.groups_from_pairs(rows, found)
        t2 = time.monotonic()
        done.set()
        stored = cache.db.execute(f"SELECT count(*) FROM {cache.t.pairs}").fetchone()[0]
        cache.close()
        library.close()
    planted, other = planted_and_other(groups, copies)
    print(f"final stage {t2 - t1:.1f} s; {stored} outcomes in the catalog")
    print(f"peak memory from the first batch on (process tree) {peak[0] / 1024:.0f} MB")
    print(f"planted copies grouped {planted}/{len(copies)}; groups holding anything else: {other}")


if __name__ == "__main__":
    main()
