"""The command line as a user runs it: a subprocess, a JSON report, a summary on stdout."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests import imagegen as ig

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.integration
def test_cli_scan_writes_report_and_summary(tmp_path):
    root = tmp_path / "photos"
    a = ig.photo(41)
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_half.jpg")
    ig.save(ig.photo(42), root / "b.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    report = tmp_path / "out" / "report.json"
    lib = tmp_path / "lib.db"
    proc = run_cli("scan", str(root), "--library", str(lib), "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    assert "Found 1 groups holding 1 extra copies" in proc.stdout
    assert "fallback" in proc.stderr  # offline: the notice says which model ran
    data = json.loads(report.read_text())
    assert data["version"] == 2 and data["model"] == "efficientnet-lite0-imagenet"
    assert data["library"] == str(lib)
    assert data["stats"]["files"] == 4 and data["stats"]["embedded"] == 3 and data["stats"]["problems"] == 1
    stages = data["stats"]["stages"]  # where the time went, in order, one after the other
    assert [s["stage"] for s in stages][:3] == ["walk", "diff", "embed"] and "group" in [s["stage"] for s in stages]
    assert all(s["seconds"] >= 0 and b["start"] >= s["start"] + s["seconds"] - 0.01 for s, b in zip(stages, stages[1:]))
    assert sum(s["seconds"] for s in stages) <= data["stats"]["seconds"] + 0.01
    (group,) = data["groups"]
    assert sorted(Path(f["path"]).name for f in group["files"]) == ["a.jpg", "a_half.jpg"]
    keeper = [f for f in group["files"] if f["keep"]]
    assert [Path(f["path"]).name for f in keeper] == ["a.jpg"]
    assert keeper[0]["width"] == a.width and keeper[0]["similarity"] == 1.0
    assert Path(group["keeper"]).name == "a.jpg" and keeper[0]["kind"] == "keeper"
    assert [f["kind"] for f in group["files"] if not f["keep"]] == ["smaller copy"]
    assert [Path(p["path"]).name for p in data["problems"]] == ["broken.jpg"]

    again = run_cli("scan", str(root), "--library", str(lib), "--json", "-", "--quiet")
    assert again.returncode == 0
    stats = json.loads(again.stdout)["stats"]
    assert stats["embedded"] == 0 and stats["skipped"] == 4


@pytest.mark.integration
def test_cli_rejects_missing_folder(tmp_path):
    proc = run_cli("scan", str(tmp_path / "nope"), "--library", str(tmp_path / "l.db"))
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_a_report_written_to_a_pipe_or_device_leaves_it_one(tmp_path):
    """--json /dev/null (or a FIFO another program reads) is written to, never replaced by a
    file: the report is written atomically only to a regular file."""
    import threading

    from app.core import report
    from app.core.pipeline import ScanResult, ScanStats

    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, encoding="utf-8").read()))
    reader.start()
    report.write(ScanResult("lib.db", "m", "", [], ScanStats(files=3), [], []), str(fifo))
    reader.join(10)
    assert json.loads(got[0])["stats"]["files"] == 3
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
