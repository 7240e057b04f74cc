"""The two search engines of a scan on the same vectors: in-process (search.py) and Milvus.

    .venv/bin/python bench/search_engines.py LIBRARY.db [--server http://127.0.0.1:19530]

Reads every vector of a scanned Milvus Lite library (bench/speed.py leaves one of the 5,000-file
timing corpus in bench/work/speed-library.db) and asks each photo's k nearest neighbours
(k = candidates.TOP_K * 2, as a scan does) of:
- search.py in-process (exact inner product below 30,000 photos), the reference;
- the library's Milvus Lite (FLAT index), in batches of pairs.SERVER_BATCH queries;
- with --server, a Milvus server holding the same vectors in the index Doppel gives a server
  library (HNSW, library.py), in a collection of its own, dropped afterwards.
Prints each engine's wall time and the share of the reference's k nearest it returns (recall@k),
and the recall of each photo's 16 nearest (the candidates a scan takes at most).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core import candidates, pairs, search  # noqa: E402
from app.core.domain import Row  # noqa: E402
from app.core.library import Library  # noqa: E402
from app.core.model import DIMS, FALLBACK_NAME  # noqa: E402


def recall(reference: list[list[int]], found: list[list[int]], k: int) -> float:
    hit = sum(len(set(r[:k]) & set(f[:k])) for r, f in zip(reference, found))
    return hit / sum(len(r[:k]) for r in reference)


def ask(library: Library, ids: list[int], vectors: np.ndarray, k: int) -> list[list[int]]:
    out = []
    for s in range(0, len(ids), pairs.SERVER_BATCH):
        for i, hits in zip(ids[s:s + pairs.SERVER_BATCH],
                           library.neighbours(vectors[s:s + pairs.SERVER_BATCH], k + 1)):
            out.append([j for j, _ in hits if j != i][:k])
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("library")
    ap.add_argument("--model", default=FALLBACK_NAME)
    ap.add_argument("--server")
    args = ap.parse_args()
    k = candidates.TOP_K * 2
    with Library(args.library, args.model, DIMS[args.model], user="bench/search_engines.py") as lib:
        ids = sorted(r.id for r in lib.rows() if not r.problem)
        vectors = np.concatenate([lib.vectors(ids[s:s + 1000]) for s in range(0, len(ids), 1000)])
        t = time.monotonic()
        idx, _ = search.nearest(vectors, k)
        exact_s = time.monotonic() - t
        reference = [[ids[j] for j in row] for row in idx.tolist()]
        print(f"{len(ids)} photos, {vectors.shape[1]}-d vectors, k = {k}")
        print(f"in-process (search.py): {exact_s:.2f} s")
        t = time.monotonic()
        lite = ask(lib, ids, vectors, k)
        print(f"Milvus Lite (FLAT): {time.monotonic() - t:.2f} s; recall@{k} {recall(reference, lite, k):.4f}, "
              f"recall@16 {recall(reference, lite, 16):.4f}")
    if args.server:
        os.environ["DOPPEL_DATA_DIR"] = tempfile.mkdtemp(prefix="doppel-bench-")  # its catalog
        with Library(args.server, f"bench-{uuid.uuid4().hex[:8]}", vectors.shape[1]) as server:
            try:
                for s in range(0, len(ids), 500):
                    server.upsert([Row(i, f"/bench/{i}", 1, 1, "", 1, 1, "", "", "", None, v)
                                   for i, v in zip(ids[s:s + 500], vectors[s:s + 500])])
                t = time.monotonic()
                found = ask(server, ids, vectors, k)
                print(f"Milvus server (HNSW M 16, efConstruction 200, ef {max(64, k + 1)}): "
                      f"{time.monotonic() - t:.2f} s; recall@{k} {recall(reference, found, k):.4f}, "
                      f"recall@16 {recall(reference, found, 16):.4f}")
            finally:
                server.client.drop_collection(server.collection)
    return 0


if __name__ == "__main__":
    sys.exit(main())
