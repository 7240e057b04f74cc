"""Accuracy benchmark: build the dev corpus with ../shared/bench, scan it with doppel-cli, score it.

    .venv/bin/python bench/accuracy.py [--shared ../shared/bench] [--work bench/work] [--seed 1]
                                       [--similarity 0.5] [--no-margins]

Prints evaluate.py's full output (precision, recall, confusions, recall per variant) plus the
model and wall time. The corpus is built once and reused; the library is fresh each run.

Then the margins of verification's checks (verify.py), measured on every pair of the corpus's
files, independent of the candidate search: for each check, the weakest true copy (a copy
against its group's original, the pair group integrity needs) and the strongest different photo
(files of different groups that reached that check), and the check's setting between them.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "bench"))
    ap.add_argument("--work", default=str(HERE / "work"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--similarity", type=float, default=None, help="default: the app's default")
    ap.add_argument("--no-margins", action="store_true", help="skip the per-check margins (about a minute)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more doppel-cli scan options")
    args = ap.parse_args()
    work = Path(args.work)
    corpus = work / f"corpus_dev_seed{args.seed}"
    if not (corpus / "truth.csv").exists():
        subprocess.run([sys.executable, str(Path(args.shared) / "make_corpus.py"), "--pool", "dev", "--seed",
                        str(args.seed), "--out", str(corpus)], check=True)
    lib = work / "accuracy-library.db"
    for p in work.glob("accuracy-library.db*"):  # the library and its catalog: a cold scan
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
    report = work / "accuracy-report.json"
    cmd = [sys.executable, "-m", "app.cli", "scan", str(corpus / "corpus"), "--library", str(lib),
           "--json", str(report), "--quiet"] + (["--similarity", str(args.similarity)] if args.similarity is not None else []) + args.extra
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=REPO, check=True)
    wall = time.monotonic() - t0
    data = json.loads(report.read_text())
    # evaluate.py reads a list of path lists (its object form expects lists, not Doppel's file dicts).
    groups = work / "accuracy-groups.json"
    groups.write_text(json.dumps([[f["path"] for f in g["files"]] for g in data["groups"]]))
    print(f"model: {data['model']}   wall time: {wall:.1f} s for {data['stats']['files']} files "
          f"(scan stats: {data['stats']})")
    subprocess.run([sys.executable, str(Path(args.shared) / "evaluate.py"), "--truth", str(corpus / "truth.csv"),
                    str(groups)], check=True)
    if not args.no_margins:
        margins(corpus)


def margins(corpus: Path) -> None:
    import csv
    import itertools
    import os

    sys.path.insert(0, str(REPO))
    from app.core import decode, grouping, verify
    from app.core.walk import FileEntry

    truth = list(csv.DictReader(open(corpus / "truth.csv")))
    prepared = []
    for r in truth:
        path = str(corpus / r["path"])
        st = os.stat(path)
        d = decode.decode_file(FileEntry(path, st.st_size, st.st_mtime_ns))
        prepared.append(verify.prepare((d.thumb, d.features)))
    originals = {r["group_id"]: i for i, r in enumerate(truth) if r["variant"] == "original"}
    true_inl, true_spread, true_score = [], [], []
    neg_inl, neg_spread, neg_score, neg_any = [], [], [], []
    t0 = time.monotonic()
    for i, j in itertools.combinations(range(len(truth)), 2):
        gi, gj = truth[i]["group_id"], truth[j]["group_id"]
        same = gi == gj
        if same and originals.get(gi) not in (i, j):
            continue  # copies against each other: linkage does not need them
        trace: list = []
        verify.best_match(prepared[i], prepared[j], trace=trace)
        inl = max(t["inliers"] for t in trace) if trace else 0
        spreads = [t["spread"] for t in trace if t["spread"] is not None]
        scores = [t["score"] for t in trace if t["score"] is not None]
        name = f"{truth[i]['variant']}/{truth[j]['variant']} ({gi}, {gj})"
        if same:
            true_inl.append((inl, name))
            true_spread.append((max(spreads, default=0.0), name))
            true_score.append((max(scores, default=-1.0), name))
        else:
            neg_inl.append((inl, name))
            neg_spread.extend((v, name) for v in spreads)
            neg_score.extend((v, name) for v in scores)
            neg_any.extend((t["unchecked_score"], name) for t in trace if t["unchecked_score"] is not None)
    print(f"\nmargins of verification's checks ({len(true_inl)} copies against their original, "
          f"{len(neg_inl)} pairs of different photos; {time.monotonic() - t0:.0f} s):")
    rows = [("inliers (RANSAC)", true_inl, neg_inl, f"MIN_INLIERS = {verify.MIN_INLIERS}"),
            ("spread of the inliers", true_spread, neg_spread, f"MIN_SPREAD = {verify.MIN_SPREAD}"),
            ("pixel agreement (rank correlation)", true_score, neg_score,
             f"threshold {grouping.verify_threshold(0.0):.2f}-{grouping.verify_threshold(1.0):.2f}, "
             f"default {grouping.verify_threshold(0.5):.2f}"),
            ("pixel agreement under RANSAC's transform, no gates", true_score, neg_any, "(the geometric gates off)")]
    for check, pos, neg, setting in rows:
        weakest = min(pos) if pos else (float("nan"), "-")
        strongest = max(neg) if neg else (float("nan"), "none reached it")
        print(f"  {check}: weakest true copy {weakest[0]:.3f} [{weakest[1]}]; strongest different photo "
              f"{strongest[0]:.3f} [{strongest[1]}]; {len(neg)} different pairs reached it; setting: {setting}")


if __name__ == "__main__":
    main()
