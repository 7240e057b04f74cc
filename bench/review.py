"""Review benchmark: is the suggested keeper the original, and is only what is safe preselected?

    .venv/bin/python bench/review.py [--work bench/work] [--seed 1]

Reads the JSON report bench/accuracy.py wrote for that seed (run it first) and the corpus's
truth.csv, and prints, for every found group that holds its family's original:
- how often the keeper is the original, and which copy it was otherwise;
- per variant of the corpus: how many copies were preselected for the trash, and the kinds
  Doppel gave them.
Safe variants (byte copies, re-encodes, resizes, format conversions) should be preselected;
edits (crops, turns, mirrors, grayscale, borders, watermarks, tone) should not.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(HERE / "work"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--report", default=None, help="default: WORK/accuracy-report.json")
    args = ap.parse_args()
    work = Path(args.work)
    corpus = (work / f"corpus_dev_seed{args.seed}").resolve()
    truth = {}
    for r in csv.DictReader(open(corpus / "truth.csv")):
        truth[os.path.realpath(corpus / r["path"])] = r
    data = json.loads(Path(args.report or work / "accuracy-report.json").read_text())
    groups = wrong = 0
    wrong_as = Counter()
    by_variant: dict[str, Counter] = defaultdict(Counter)
    kinds: dict[str, Counter] = defaultdict(Counter)
    for g in data["groups"]:
        files = [(truth.get(os.path.realpath(f["path"])), f) for f in g["files"]]
        originals = [t for t, f in files if t and t["variant"] == "original"]
        if originals:
            groups += 1
            keeper = next(t for t, f in files if f["path"] == g["keeper"])
            if keeper is None or keeper["variant"] != "original":
                wrong += 1
                wrong_as[keeper["variant"] if keeper else "?"] += 1
        for t, f in files:
            if t is None:
                continue
            v = t["variant"]
            by_variant[v]["files"] += 1
            by_variant[v]["preselected"] += not f["keep"]
            kinds[v][f["kind"]] += 1
    print(f"groups holding their original: {groups}; keeper is the original in {groups - wrong} "
          f"({(groups - wrong) / max(groups, 1):.1%})")
    if wrong_as:
        print("  keeper was instead: " + ", ".join(f"{v} {n}" for v, n in wrong_as.most_common()))
    print()
    print("| variant | files | preselected | kinds |")
    print("|---|---|---|---|")
    for v in sorted(by_variant):
        c = by_variant[v]
        ks = ", ".join(f"{k} {n}" for k, n in kinds[v].most_common())
        print(f"| {v} | {c['files']} | {c['preselected']} | {ks} |")


if __name__ == "__main__":
    main()
