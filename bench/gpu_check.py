"""The reduced-precision paths against fp32: do the vectors of CUDA (fp16) and of a CPU with native
bf16 rank like CPU fp32, and how fast is the network on CUDA? Self-contained, for a machine lent
for a few minutes.

    python bench/gpu_check.py --inputs FILE.npz [--weights resnet50.pth] [--truth truth.csv] [--batch 64]

``--inputs``: an .npz with ``x``, photos as the decoder gives them to the model ((n, 224, 224, 3)
uint8), and ``paths``, their files relative to the corpus folder's parent (``bench/gpu_check.py
--make-inputs CORPUS_DIR --inputs FILE.npz`` writes one from a corpus). ``--truth``: the shared
benchmark's truth.csv, to count how many true-copy pairs each precision's candidates hold.

For each model (EfficientNet-Lite0, the fallback, and ResNet-50 from ``--weights`` or, without
it, random weights with seed 0: the values do not matter for speed, and CPU and GPU share them)
it embeds the photos on the CPU in fp32 and, where Doppel picks a reduced precision (bf16 on a
CPU with native bf16, fp16 on CUDA), in that precision too, and prints the cosine of each
photo's two vectors (worst, 1st percentile, median), how many of each photo's k nearest fp32
neighbours the reduced-precision vectors keep (recall@k, k 10 and the scan's candidates.TOP_K),
and the network's throughput on CUDA (images/s over timed batches after warm-up, from host
memory).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_inputs(corpus: str, out: str) -> None:
    from app.core.decode import decode_file
    from app.core.walk import FileEntry

    xs, names = [], []
    top = Path(corpus).resolve().parent  # the shared benchmark's truth.csv names files from there
    for path in sorted(p for p in Path(corpus).rglob("*") if p.is_file()):
        st = path.stat()
        d = decode_file(FileEntry(str(path), st.st_size, st.st_mtime_ns))
        if d.model_input is not None:
            xs.append(d.model_input)
            names.append(str(path.resolve().relative_to(top)))
    np.savez_compressed(out, x=np.stack(xs), paths=np.array(names))
    print(f"{len(xs)} model inputs from {corpus} -> {out}")


def knn_kept(ref: np.ndarray, other: np.ndarray, k: int = 10) -> float:
    def top(v):
        s = v @ v.T
        np.fill_diagonal(s, -np.inf)
        return np.argsort(-s, axis=1)[:, :k]
    a, b = top(ref), top(other)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def true_pairs(truth: str, paths: list[str]) -> set[tuple[int, int]]:
    """Index pairs (a < b) of ``paths`` that the benchmark's truth.csv puts in one group."""
    import csv
    import itertools

    with open(truth, newline="") as f:
        group = {r["path"]: r["group_id"] for r in csv.DictReader(f)}
    members: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        if p in group:
            members.setdefault(group[p], []).append(i)
    return {pair for m in members.values() for pair in itertools.combinations(m, 2)}


def embed_all(embedder, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([embedder.embed(x[s:s + batch]) for s in range(0, len(x), batch)])


def compare(name: str, model_name: str, where: str, ref: np.ndarray, got: np.ndarray,
            true: set = frozenset()) -> None:
    """How closely ``got`` (reduced precision) follows ``ref`` (CPU fp32), down to the candidate
    pairs a scan would verify: each photo's candidates.TOP_K nearest above the model's floor."""
    from app.core import candidates

    cos = np.sum(ref * got, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    k = candidates.TOP_K
    floor = candidates.candidate_floor(model_name)
    ids = list(range(len(ref)))
    pairs_ref = set(candidates.candidate_pairs(ids, ref.astype(np.float32), k=k, min_cosine=floor))
    pairs_got = set(candidates.candidate_pairs(ids, got.astype(np.float32), k=k, min_cosine=floor))
    print(f"{name}: cosine {where} vs CPU fp32: worst {cos.min():.4f}, 1st percentile "
          f"{np.percentile(cos, 1):.4f}, median {np.median(cos):.4f}; nearest fp32 neighbours kept: "
          f"recall@10 {knn_kept(ref, got):.3f}, recall@{k} {knn_kept(ref, got, k):.3f}; candidate pairs "
          f"kept {len(pairs_ref & pairs_got)}/{len(pairs_ref)} ({len(pairs_got - pairs_ref)} new)")
    if true:  # the pairs that matter: copies of one photo (verification rejects the rest)
        print(f"{name}: true-copy pairs among the candidates: fp32 {len(pairs_ref & true)}, {where} "
              f"{len(pairs_got & true)} of {len(true)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--make-inputs", metavar="CORPUS")
    ap.add_argument("--weights")
    ap.add_argument("--truth", help="the corpus's truth.csv: count the true-copy pairs among the candidates")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--timed-batches", type=int, default=20)
    args = ap.parse_args()
    if args.make_inputs:
        return make_inputs(args.make_inputs, args.inputs)

    import torch

    from app.core import model
    from app.core.networks import choose_precision

    inputs = np.load(args.inputs)
    x = inputs["x"]
    if args.truth and "paths" not in inputs:
        sys.exit(f"{args.inputs} names no files: make it again with --make-inputs to use --truth")
    true = true_pairs(args.truth, [str(p) for p in inputs["paths"]]) if args.truth else set()
    cpu_precision = choose_precision(torch.device("cpu"))
    print(f"{len(x)} photos; torch {torch.__version__}; CUDA: "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}; "
          f"precision Doppel picks on CUDA: {choose_precision(torch.device('cuda')) if torch.cuda.is_available() else '-'}")
    weights = args.weights
    if not weights:
        import torchvision
        torch.manual_seed(0)
        weights = "/tmp/resnet50-random.pth"
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
    builds = {"efficientnet-lite0 (fallback)": lambda dev: model.load_fallback("gpu check", dev),
              "resnet50": lambda dev: model.load_embedder(weights=weights, device=dev)}
    for name, build in builds.items():
        os.environ["DOPPEL_PRECISION"] = "fp32"
        cpu = build("cpu")
        ref = embed_all(cpu, x, 32)
        os.environ.pop("DOPPEL_PRECISION")
        if cpu_precision != "fp32":
            cpu = build("cpu")  # as a scan runs it here: the CPU's reduced precision
            compare(name, cpu.name, f"CPU {cpu_precision}", ref, embed_all(cpu, x, 32), true)
        if not torch.cuda.is_available():
            print(f"{name}: no CUDA here")
            continue
        gpu = build("cuda")
        compare(name, gpu.name, f"CUDA {choose_precision(torch.device('cuda'))}", ref,
                embed_all(gpu, x, args.batch), true)
        batch = np.ascontiguousarray(np.resize(x, (args.batch,) + x.shape[1:]))
        for _ in range(3):
            gpu.embed(batch)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(args.timed_batches):
            gpu.embed(batch)
        torch.cuda.synchronize()
        took = time.perf_counter() - t
        print(f"{name}: {args.timed_batches * args.batch / took:.0f} images/s through Embedder.embed on CUDA "
              f"(batch {args.batch}, from host memory, vectors back to the host)")


if __name__ == "__main__":
    main()
