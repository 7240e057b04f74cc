"""The JSON report (described in the README, "The JSON report"): what the command line writes and tests/benchmarks read."""
from __future__ import annotations

import json
import os
from pathlib import Path

from app.core.pipeline import ScanResult

REPORT_VERSION = 2


def _path(p: str) -> str:
    # JSON needs valid Unicode; undecodable bytes in names are shown as U+FFFD, never dropped.
    return os.fsencode(p).decode("utf-8", "replace")


def to_dict(result: ScanResult) -> dict:
    s = result.stats
    return {
        "version": REPORT_VERSION,
        "library": result.library,
        "model": result.model,
        "model_notice": result.model_notice,
        "folders": [_path(f) for f in result.folders],
        "stats": {"files": s.files, "embedded": s.embedded, "skipped": s.skipped, "removed": s.removed,
                  "problems": s.problems, "seconds": s.seconds, "cancelled": s.cancelled,
                  # where the time went: each stage's start (Unix time) and seconds, in order
                  "stages": [{"stage": st, "start": round(a, 3), "seconds": round(b - a, 3)} for st, a, b in s.stages]},
        "groups": [
            {"kind": g.kind,
             "keeper": _path(g.keeper.row.path) if g.keeper is not None else None,
             "needs_look": g.needs_look,
             "files": [{"path": _path(m.row.path), "keep": m.keep, "similarity": round(float(m.similarity), 4),
                        "kind": m.kind, "changes": list(m.changes), "reason": m.reason,
                        "size": m.row.size, "width": m.row.width, "height": m.row.height,
                        "format": m.row.format, "mtime_ns": m.row.mtime_ns, "sha256": m.row.sha256,
                        "camera": (m.row.facts or {}).get("camera", ""),
                        "taken": (m.row.facts or {}).get("taken", "")}
                       for m in g.members]}
            for g in result.groups],
        "problems": [{"path": _path(p.path), "error": p.error} for p in result.problems],
    }


def write(result: ScanResult, path: str) -> None:
    data = json.dumps(to_dict(result), indent=1, ensure_ascii=False)
    target = Path(path)
    if target.exists() and not target.is_file():
        # a device or a pipe (/dev/null, a FIFO another program reads): written to, never
        # replaced by a file
        with open(target, "w", encoding="utf-8") as f:
            f.write(data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")  # a report is never left half written
    tmp.write_text(data, "utf-8")
    os.replace(tmp, target)


def summary(result: ScanResult) -> str:
    s = result.stats
    copies = sum(len(g.members) - 1 for g in result.groups)
    reclaim = sum(m.row.size for g in result.groups for m in g.members if not m.keep)
    lines = [
        f"Doppel scanned {s.files} files in {s.seconds:.1f} s: {s.embedded} read, {s.skipped} unchanged, "
        f"{s.removed} gone from the library, {s.problems} problems.",
        f"Model: {result.model}" + (f"  ({result.model_notice})" if result.model_notice else ""),
        f"Library: {result.library}",
        f"Found {len(result.groups)} groups holding {copies} extra copies; "
        f"trashing the suggested copies would free {reclaim / 1e6:.1f} MB.",
    ]
    if s.cancelled:
        lines.append("Scan cancelled: what was read so far is kept in the library.")
    kinds = {}
    for g in result.groups:
        kinds[g.kind] = kinds.get(g.kind, 0) + 1
    if kinds:
        lines.append("Groups by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    for g in result.groups[:5]:
        keep = g.keeper or g.members[0]
        lines.append(f"  [{g.kind}] keep {_path(keep.row.path)} ({keep.reason})  (+{len(g.members) - 1} copies, "
                     f"{sum(not m.keep for m in g.members)} preselected)")
    if len(result.groups) > 5:
        lines.append(f"  ... and {len(result.groups) - 5} more groups (see the JSON report)")
    for p in result.problems[:5]:
        lines.append(f"  problem: {_path(p.path)}: {p.error}")
    if len(result.problems) > 5:
        lines.append(f"  ... and {len(result.problems) - 5} more problems")
    return "\n".join(lines)
