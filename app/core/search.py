"""Candidate search in-process: each photo's nearest neighbours by the cosine of its vector.

Milvus stays the library and answers small searches (the few photos a rescan adds). Its
per-query cost is the problem for the self-join of a whole library: milvus-lite takes about 1 ms
per query whatever the batch (5,000 photos ≈ 5 s, 100,000 ≈ 2 min), while a blocked matrix
product over the same vectors takes a fraction of a second for 5,000. Above EXACT_MAX photos
even that grows with the square of the library, so the vectors are projected to PCA_DIM
dimensions and searched with an HNSW graph (faiss), and the hits are re-scored on the full
vectors.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch

from app.core.allocator import MMAP_THRESHOLD, release_freed_memory

EXACT_MAX = 30_000
# Few queries (a batch of groups-so-far during a scan, a rescan's new photos) are answered exactly
# whatever the library's size: an approximate index is built over the whole library first (PCA and
# an HNSW graph: 11 s at 40,000 photos), while 16 exact queries against 40,000 vectors take
# milliseconds. Exact costs queries x photos, so the bound is on that product (EXACT_MAX²).
PCA_DIM = 256
APPROX_HITS = 4  # the approximate search returns this many times k before exact re-scoring
BLOCK = 1024  # queries per matrix product: 1024 x 30,000 floats = 120 MB
# Neighbour vectors gathered for re-scoring, per step (widened to float32): well under the
# allocator's mmap threshold, above which a block is mapped and faulted in afresh each time, and
# small, as the heap keeps what a step frees. Half the threshold held about 50 MB more while
# re-scoring 100,000 photos, in the same time.
GATHER_BYTES = MMAP_THRESHOLD // 4


def nearest(base: np.ndarray, k: int, queries: Optional[np.ndarray] = None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``base`` (unit vectors) by inner product for each query row.

    ``queries`` are row indices into ``base`` (default: all rows); a row is never its own
    neighbour. Returns (indices, scores), each (len(queries), k'), k' = min(k, len(base) - 1),
    best first.
    """
    n = len(base)
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    k = min(k, n - 1)
    if k <= 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
    if is_exact(n, len(queries)):
        return _exact(base, queries, k, progress)
    return _approximate(base, queries, k, progress)


def is_exact(rows: int, queries: int) -> bool:
    """Whether ``nearest`` answers ``queries`` among ``rows`` exactly (else approximately)."""
    return rows <= EXACT_MAX or queries * rows <= EXACT_MAX * EXACT_MAX


def matrix_dtype(rows: int, queries: int):
    """What a caller should store the vectors to search in: float16 where the search is
    approximate. That halves the largest thing held while searching a large library (410 MB for
    100,000 photos with ResNet-50); the re-scored cosines move by about 1e-5, and the approximate
    search's own misses are far more. The exact search of smaller libraries keeps float32."""
    return np.float32 if is_exact(rows, queries) else np.float16


def _drop_self(idx: torch.Tensor, sc: torch.Tensor, q: torch.Tensor, k: int):
    """Remove each query's own row from its hit list (it is normally first, but ties can move it)."""
    keep = idx != q[:, None]
    # rows where self was not among the hits keep their first k
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :k]
    return torch.gather(idx, 1, order), torch.gather(sc, 1, order)


def _exact(base: np.ndarray, queries: np.ndarray, k: int, progress=None):
    b = torch.from_numpy(np.ascontiguousarray(base, dtype=np.float32))
    out_i = np.empty((len(queries), k), np.int64)
    out_s = np.empty((len(queries), k), np.float32)
    block = max(16, min(BLOCK, BLOCK * EXACT_MAX // len(base)))  # a larger library: fewer per product
    for s in range(0, len(queries), block):
        q = torch.from_numpy(queries[s:s + block])
        sims = b[q] @ b.T
        sc, idx = torch.topk(sims, k + 1, dim=1)
        idx, sc = _drop_self(idx, sc, q, k)
        out_i[s:s + len(q)] = idx.numpy()
        out_s[s:s + len(q)] = sc.numpy()
        if progress is not None:
            progress.advance(len(q))
    return out_i, out_s


def _pca(base: np.ndarray, dim: int, sample: int = 20_000) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, projection) of ``base`` to its ``dim`` main directions, fitted on a sample."""
    rng = np.random.default_rng(0)  # the same library gives the same projection
    pick = np.sort(rng.choice(len(base), min(sample, len(base)), replace=False))
    x = torch.empty((len(pick), base.shape[1]), dtype=torch.float32)
    for s in range(0, len(pick), 2048):  # widened a slice at a time: no whole float16 copy beside it
        x[s:s + 2048] = torch.from_numpy(np.ascontiguousarray(base[pick[s:s + 2048]], dtype=np.float32))
    mean = x.mean(0)
    x -= mean  # in place: a second copy of the sample is 160 MB for 2048-d vectors
    cov = (x.T @ x) / len(x)
    del x
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    return mean, vecs[:, -dim:].contiguous()


def _project(rows: np.ndarray, mean: torch.Tensor, proj: torch.Tensor) -> np.ndarray:
    y = (torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)) - mean) @ proj
    return torch.nn.functional.normalize(y, dim=1).numpy()


def _approximate(base: np.ndarray, queries: np.ndarray, k: int, progress=None):
    import faiss  # comes with milvus-lite; only large libraries need it

    faiss.omp_set_num_threads(max(1, os.cpu_count() or 1))
    mean, proj = _pca(base, min(PCA_DIM, base.shape[1]))
    release_freed_memory()  # PCA's working memory, kept in the heap otherwise (allocator.py)
    index = faiss.IndexHNSWFlat(proj.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 64
    # The projected library is added and the queries projected a slice at a time, never held
    # whole beside the index's own copy (100 MB at 100,000 photos); small slices, as each is
    # widened to float32 twice on the way (67 MB each for 8192 rows of 2048-d).
    for s in range(0, len(base), 2048):
        index.add(_project(base[s:s + 2048], mean, proj))
    release_freed_memory()
    wide = min(len(base) - 1, APPROX_HITS * k + 1)
    index.hnsw.efSearch = max(2 * wide, 64)
    b = torch.from_numpy(np.ascontiguousarray(base))  # float16 (matrix_dtype): blocks are widened below
    out_i = np.empty((len(queries), k), np.int64)
    out_s = np.empty((len(queries), k), np.float32)
    # 256 queries a step (136 MB for 2048-d) were mapped and faulted in afresh every step: at
    # 100,000 photos the re-scoring took 54 s, 28 of them in the kernel; 64 queries: 11 s.
    step = max(1, GATHER_BYTES // (wide * b.shape[1] * 4))
    for s in range(0, len(queries), step):
        q = torch.from_numpy(queries[s:s + step])
        _, hits = index.search(_project(base[queries[s:s + step]], mean, proj), wide)
        hits = torch.from_numpy(hits)
        valid = hits >= 0
        safe = torch.where(valid, hits, q[:, None])
        sc = torch.einsum("qd,qwd->qw", b[q].float(), b[safe].float())
        sc = torch.where(valid & (safe != q[:, None]), sc, torch.full_like(sc, -2.0))
        sc, order = torch.topk(sc, k, dim=1)
        out_i[s:s + len(q)] = torch.gather(safe, 1, order).numpy()
        out_s[s:s + len(q)] = sc.numpy()
        if progress is not None:
            progress.advance(len(q))
    return out_i, out_s
