"""Speed benchmark: Doppel's command line and the peers on the same timing corpus, in one run.

    .venv/bin/python bench/speed.py [--work bench/work] [--peers fid90 dg_scaled idd_PHash ih_phash10_draft]
                                    [--no-peers] [--weights FILE]

Builds (once) the timing corpus of ../shared/bench (`make_corpus.py --pool dev --seed 3 --scale 5000`),
then measures, one after the other on this machine:
- Doppel's first scan into a fresh library (walk, decode, hash, embed, store, search, verify,
  group, report): wall time, images/s, CPU seconds and peak memory of the whole process tree;
- a rescan of the unchanged library (nothing decoded);
- each peer through ../shared/bench/run_benchmark.sh (its `setup.sh` must have run; FEAS_VENV
  names the venv with Pillow/numpy/imagehash it needs, default bench/work/feas-venv);
and prints one table with Doppel's speed ratio to each peer, after a machine line that says which
CPU instructions torch uses and the network's precision there (bf16 needs native support).
Every run starts after the corpus has been read into the page cache once more: on a VM that
hands idle cache back to its host (this project's machines), pages read minutes earlier are gone,
and a tool run last would otherwise read from disk while the first read from memory. How much of
the corpus is still cached when Doppel's first scan starts and ends is printed (util-linux fincore).
``--weights`` times ResNet-50 from a weights file (any ResNet-50 state dict: for speed the values
of the weights do not matter).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_NAMES = {"fid90": "findimagedupes (90 %)", "dg_scaled": "dupeGuru picture mode", "idd_PHash": "imagededup PHash",
              "ih_phash10_draft": "imagehash pHash, draft decode"}


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    return rss_kb(descendants(pid))


def rss_kb(pids: list[int]) -> int:
    """Resident memory of these processes (Linux /proc)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


TICK = os.sysconf("SC_CLK_TCK")


def role(root: int, pid: int) -> str:
    """What a process of Doppel's tree does (its main process: "main"): worker processes name
    themselves (pools.name_process)."""
    if pid == root:
        return "main"
    try:
        with open(f"/proc/{pid}/comm") as f:
            name = f.read().strip()
    except OSError:
        return "other"
    return {"doppel-decode": "decode workers", "doppel-verify": "verification workers",
            "doppel-milvus": "Milvus Lite server", "doppel-sofar": "groups-so-far workers"}.get(name, f"other ({name})")


def thread_cpu(root: int, pids: list[int]) -> dict:
    """(pid, tid) -> (role, CPU seconds so far) for every thread of these processes."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        who = role(root, pid)
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if who == "main":
                what = "main thread" if int(tid) == pid else "main process, other threads (torch, faiss, pymilvus)"
            else:
                what = who
            out[(pid, int(tid))] = (what, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def cached_mb(folder: Path) -> float:
    """MB of the files under ``folder`` held in the page cache (fincore), or NaN without fincore."""
    files = [str(p) for p in folder.rglob("*") if p.is_file()]
    total = 0
    for s in range(0, len(files), 500):
        try:
            out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES"] + files[s:s + 500],
                                 capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return float("nan")
        total += sum(int(x) for x in out.split())
    return total / 1e6


def timed(cmd: list[str], env=None) -> tuple[float, int, int, float, list]:
    """(wall seconds, peak tree RSS in kB, exit code, CPU seconds, CPU samples), sampled every 0.1 s.

    CPU seconds are user + system time of the command and every process it waited for (its
    decode and verification workers): the work done, which moves less than the wall time on a
    shared VM. The samples are (time.time(), {(pid, tid): (role, CPU seconds)}) of every thread of
    the process tree, for ``profile``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    peak = [0]
    samples: list = []

    def sample():
        while proc.poll() is None:
            pids = descendants(proc.pid)
            peak[0] = max(peak[0], rss_kb(pids))
            samples.append((time.time(), thread_cpu(proc.pid, pids)))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = proc.wait()
    wall = time.monotonic() - t0
    th.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak[0], rc, cpu, samples


def profile(samples: list, stages: list[dict], photos: int) -> None:
    """Print where the core time went: CPU seconds per stage (the report's timeline) and per role
    (thread or worker process), and per photo. A thread's CPU between two samples counts in the
    stage running at the second; what a process used after its last sample is not seen (0.1 s)."""
    spans = [(s["start"], s["start"] + s["seconds"], s["stage"]) for s in stages]

    def stage_at(t: float) -> str:
        if spans and t < spans[0][0]:
            return "start-up (imports, model, library)"
        for a, b, name in spans:
            if t <= b + 0.05:
                return name
        return "report, closing"

    table: dict = {}
    last: dict = {}
    for t, cpu in samples:
        st = stage_at(t)
        for key, (who, secs) in cpu.items():
            d = secs - last.get(key, 0.0)
            last[key] = secs
            if d > 0:
                table.setdefault(st, {}).setdefault(who, 0.0)
                table[st][who] += d
    roles = sorted({w for v in table.values() for w in v}, key=lambda w: -sum(v.get(w, 0) for v in table.values()))
    order = ["start-up (imports, model, library)"] + [n for _, _, n in spans] + ["report, closing"]
    walls = {n: b - a for a, b, n in spans}
    print(f"\nwhere the first scan's core time went (CPU s; ms a photo over {photos} photos):")
    print("| stage | wall s | " + " | ".join(roles) + " | all |")
    print("|---|---|" + "---|" * (len(roles) + 1))
    totals = {w: 0.0 for w in roles}
    for st in dict.fromkeys(order):
        if st not in table:
            continue
        row = table[st]
        for w in roles:
            totals[w] += row.get(w, 0.0)
        wall = f"{walls[st]:.1f}" if st in walls else ""
        print(f"| {st} | {wall} | " + " | ".join(f"{row.get(w, 0.0):.1f}" for w in roles) + f" | {sum(row.values()):.1f} |")
    print("| all | | " + " | ".join(f"{totals[w]:.1f}" for w in roles) + f" | {sum(totals.values()):.1f} |")
    print("| ms a photo | | " + " | ".join(f"{totals[w] / photos * 1000:.1f}" for w in roles)
          + f" | {sum(totals.values()) / photos * 1000:.1f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "bench"))
    ap.add_argument("--work", default=str(HERE / "work"))
    ap.add_argument("--scale", type=int, default=5000)
    ap.add_argument("--corpus", help="time this folder instead of the timing corpus (e.g. a part of it)")
    ap.add_argument("--peers", nargs="*", default=list(PEER_NAMES))
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--weights", help="time ResNet-50 from this weights file instead of the default model")
    args = ap.parse_args()
    shared, work = Path(args.shared), Path(args.work)
    corpus = work / f"scale_dev_{args.scale}"
    if not args.corpus and not (corpus / "corpus").is_dir():
        subprocess.run([sys.executable, str(shared / "make_corpus.py"), "--pool", "dev", "--seed", "3", "--scale",
                        str(args.scale), "--out", str(corpus)], check=True)
    images = Path(args.corpus) if args.corpus else corpus / "corpus"
    files = sum(len(f) for _, _, f in os.walk(images))
    print(f"corpus {images}: {files} files, "
          f"{sum(p.stat().st_size for p in images.rglob('*') if p.is_file()) / 1e9:.2f} GB")
    print("warming the page cache before each run (run_benchmark.sh does the same for each peer)")
    subprocess.run(f"find '{images}' -type f -exec cat {{}} + > /dev/null", shell=True, check=True)

    env = dict(os.environ, DOPPEL_OFFLINE="1")
    if args.weights:
        env["DOPPEL_WEIGHTS"] = args.weights
    lib = work / "speed-library.db"
    for p in work.glob("speed-library.db*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
    report = work / "speed-report.json"
    cmd = [sys.executable, "-m", "app.cli", "scan", str(images), "--library", str(lib), "--json", str(report), "--quiet"]
    before = cached_mb(images)
    first, first_mem, rc, first_cpu, first_samples = timed(cmd, env)
    print(f"corpus in the page cache: {before:.0f} MB when the first scan started, {cached_mb(images):.0f} MB when it ended")
    if rc:
        sys.exit(f"doppel-cli scan failed ({rc})")
    data = json.loads(report.read_text())
    rescan, rescan_mem, rc, rescan_cpu, _ = timed(cmd, env)
    again = json.loads(report.read_text())
    same = sorted(map(sorted, ([f["path"] for f in g["files"]] for g in data["groups"]))) == \
        sorted(map(sorted, ([f["path"] for f in g["files"]] for g in again["groups"])))
    rows = [("Doppel first scan", first, first_mem, first_cpu), ("Doppel rescan (unchanged)", rescan, rescan_mem, rescan_cpu)]

    peers = []
    if not args.no_peers and args.peers:
        out = work / "speed-peers"
        feas = os.environ.get("FEAS_VENV") or str(work / "feas-venv")
        penv = dict(os.environ, FEAS_VENV=feas, BENCH_WORK=os.environ.get("BENCH_WORK", str(work / "peers")))
        for name in args.peers:  # one call each: run_benchmark.sh warms the cache before its tools
            subprocess.run(["bash", str(shared / "run_benchmark.sh"), str(corpus), str(out), name], env=penv, check=False)
        for name in args.peers:
            t = out / f"{name}.time"
            if t.exists() and (out / f"{name}.json").exists():
                wall, rss = t.read_text().split()[:2]
                peers.append((PEER_NAMES.get(name, name), float(wall), int(rss)))
            else:
                print(f"peer {name} did not produce results (see {out}/{name}.log)")

    import torch  # for the machine line only

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from app.core.networks import choose_precision

    # Which instructions the CPU has decides the network's speed more than its model name does:
    # two "AMD EPYC" machines of this project ran Lite0 at 6.4 (AVX-512 with bf16) and 46 (AVX2,
    # fp32) ms of CPU per image.
    print(f"\nmachine: {cpu}, {os.cpu_count()} cores, CPU instructions used by torch: "
          f"{torch.backends.cpu.get_cpu_capability()}, network precision on the CPU: "
          f"{choose_precision(torch.device('cpu'))}, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"model: {data['model']}; {files} files; groups {len(data['groups'])}; "
          f"rescan gives the same groups: {same}; rescan read {again['stats']['embedded']} files")
    print(f"\n| run | wall s | images/s | CPU s | peak memory MB | Doppel first scan is faster by |")
    print("|---|---|---|---|---|---|")
    for name, wall, kb, cpu_s in rows:
        rate = "—" if "rescan" in name else f"{files / wall:.1f}"  # a rescan reads no image
        print(f"| {name} | {wall:.1f} | {rate} | {cpu_s:.1f} | {kb / 1024:.0f} | |")
    for name, wall, kb in peers:
        print(f"| {name} | {wall:.1f} | {files / wall:.1f} | | {kb / 1024:.0f} | {wall / first:.2f}x |")
    print("\n(CPU s: user + system time of Doppel and its workers; peak memory: Doppel's whole process tree "
          "sampled every 0.1 s; peers: GNU time's maxRSS of the main process)")
    profile(first_samples, data["stats"].get("stages", []), files)


if __name__ == "__main__":
    main()
