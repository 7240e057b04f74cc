"""The scanning process's peak memory on a library: a Milvus server or a Milvus Lite file.

    .venv/bin/python bench/client_memory.py CORPUS --library http://127.0.0.1:19530 [--database NAME]
    .venv/bin/python bench/client_memory.py CORPUS --library /tmp/lib.db

Runs a first scan of CORPUS with `doppel-cli scan` into a library of its own (a new database on
a server, dropped afterwards; a new file otherwise) and prints the scanning process's peak
resident memory (VmHWM, Linux) and wall time. Decoding and verification run in worker processes
of their own and are not counted: the figure is what the client itself holds (docs/scaling.md).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def peak_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--library", required=True)
    ap.add_argument("--database", help="server only; default: a new database, dropped afterwards")
    args = ap.parse_args()
    server = "://" in args.library
    database = args.database or (f"doppel_mem_{uuid.uuid4().hex[:8]}" if server else None)
    if server and not args.database:
        from pymilvus import MilvusClient

        MilvusClient(args.library).create_database(database)
    report = os.path.join(tempfile.mkdtemp(prefix="doppel-mem-"), "report.json")
    cmd = [sys.executable, "-m", "app.cli", "scan", args.corpus, "--library", args.library, "--quiet",
           "--json", report, "--fallback-model"]
    if database:
        cmd += ["--database", database]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, peak_kb(proc.pid))
        except OSError:
            break
        time.sleep(0.2)
    err = proc.stderr.read()
    wall = time.monotonic() - t0
    if server and not args.database:
        from pymilvus import MilvusClient

        inside = MilvusClient(args.library, db_name=database)
        for name in inside.list_collections():
            inside.drop_collection(name)
        MilvusClient(args.library).drop_database(database)
    if proc.returncode != 0:
        print(err, file=sys.stderr)
        return proc.returncode
    where = f"{args.library} (database {database})" if server else args.library
    print(f"{where}: first scan of {args.corpus} in {wall:.1f} s; scanning process peak {peak / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
