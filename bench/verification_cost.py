"""Where verification's time goes, on the candidate pairs of a real scan.

    .venv/bin/python bench/verification_cost.py [--library bench/work/speed-library.db] [--chunks 0]
                                                [--photos 100000] [--workers 2]

Takes the candidate pairs a scan verified (its catalog, read-only) and every photo's
signature and local features (its catalog), puts the pairs in the order a scan verifies them (verification.verifiable)
and verifies them again in this process, chunk by chunk as a worker does (``--chunks N``: N
chunks spread over the list; 0: all). Prints the time per pair, the feature-matching and RANSAC calls
per pair and their share of that time, whether every outcome is the one the scan stored, and what
this cost per pair makes
of a library of ``--photos`` photos with as many candidate pairs per photo, on ``--workers``
cores. ``bench/speed.py`` leaves such a library (the timing corpus) in bench/work.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


import numpy as np  # noqa: E402

from app.core import catalog, verification, verify  # noqa: E402
from app.core.library import Library, collection_name  # noqa: E402
from app.core.model import DIMS, FALLBACK_NAME  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--library", default=str(Path(__file__).resolve().parent / "work" / "speed-library.db"))
    ap.add_argument("--model", default=FALLBACK_NAME, choices=sorted(DIMS), help="the model the scan used")
    ap.add_argument("--chunks", type=int, default=0, help="chunks of pairs to verify, spread over the list (0: all)")
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    cache_path = catalog.location_for(args.library)
    t = catalog.Tables(collection_name(args.model))
    db = sqlite3.connect(f"file:{cache_path}?mode=ro", uri=True)  # read-only: Catalog would wipe a mismatch
    stored_version = dict(db.execute(f"SELECT key, value FROM {t.meta}")).get("settings", "")
    stored = {(a, b): (cos, score, how, t) for a, b, cos, score, how, t in
              db.execute(f"SELECT a, b, cosine, score, how, transform FROM {t.pairs}")}
    # what verification reads: the signature and the local features, kept in the catalog
    sigs = {i: (np.frombuffer(pixels, np.uint8).reshape(h, w), feats)
            for i, h, w, pixels, feats in db.execute(f"SELECT id, h, w, pixels, features FROM {t.signatures}")}
    db.close()
    with Library(args.library, args.model, DIMS[args.model], user="bench/verification_cost.py") as lib:
        rows = lib.rows()
    cands = {k: v[0] for k, v in stored.items()}
    keys = verification.verifiable(cands, sigs.get)
    print(f"{args.library}: {len(rows)} photos, {len(stored)} pairs in the catalog ({stored_version}), "
          f"{len(keys)} with both signatures; this code's verify.VERSION is {verify.VERSION}")

    chunks = [keys[s:s + verification.CHUNK_MAX] for s in range(0, len(keys), verification.CHUNK_MAX)]
    if args.chunks:
        step = len(chunks) / min(args.chunks, len(chunks))
        chunks = [chunks[int(i * step)] for i in range(min(args.chunks, len(chunks)))]
    calls, in_calls = [0], [0.0]
    match_template = verify._ransac

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return match_template(*a, **k)
        finally:
            in_calls[0] += time.perf_counter() - t
            calls[0] += 1

    verify._ransac = timed  # best_match calls it through the module
    n = same = 0
    took = 0.0
    for chunk in chunks:
        t = time.perf_counter()
        done = verify.verify_chunk([(a, b, cands[(a, b)]) for a, b in chunk], sigs)
        took += time.perf_counter() - t
        n += len(done)
        for a, b, _, m in done:
            _, score, how, tr = stored[(a, b)]
            same += abs(m.score - score) < 1e-6 and m.how == how and m.transform == tr
    verify._ransac = match_template
    per = took / n
    print(f"verified {n} pairs in {len(chunks)} chunks: {took:.1f} s, {per * 1e3:.3f} ms a pair; "
          f"{same}/{n} outcomes as the scan stored them")
    print(f"feature matching + RANSAC: {calls[0] / n:.1f} calls a pair, {in_calls[0] / calls[0] * 1e6:.1f} us a call, "
          f"{in_calls[0] / took:.0%} of the time")
    per_photo = len(keys) / max(1, len(sigs))
    pairs = per_photo * args.photos
    print(f"{args.photos} photos with {per_photo:.1f} pairs each: about {pairs:,.0f} pairs, "
          f"{pairs * per / args.workers:,.0f} s of verification on {args.workers} cores; "
          f"60 s would leave {60 * args.workers / pairs * 1e6:.0f} us a pair with no search at all")


if __name__ == "__main__":
    main()
