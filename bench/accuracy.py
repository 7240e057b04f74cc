"""Accuracy benchmark: build the dev corpus with ../shared/bench, scan it with doppel-cli, score it.

    .venv/bin/python bench/accuracy.py [--shared ../shared/bench] [--work bench/work] [--similarity 0.5]

Prints evaluate.py's full output (precision, recall, confusions, recall per variant) plus the
model and wall time. The corpus is built once and reused; the library is fresh each run.
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
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more doppel-cli scan options")
    args = ap.parse_args()
    work = Path(args.work)
    corpus = work / f"corpus_dev_seed{args.seed}"
    if not (corpus / "truth.csv").exists():
        subprocess.run([sys.executable, str(Path(args.shared) / "make_corpus.py"), "--pool", "dev", "--seed",
                        str(args.seed), "--out", str(corpus)], check=True)
    lib = work / "accuracy-library.db"
    for p in work.glob("accuracy-library.db*"):  # the library and its pair cache: a cold scan
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


if __name__ == "__main__":
    main()
