"""A review a person can trust: the original is the keeper, only copies at no loss are preselected,
RAW masters are never suggested for the trash. Real files made here, the real command line."""
import json
from pathlib import Path

import pytest

from app.core import originals, ranking
from app.core.domain import Group, Member, Row
from app.core.verify import Match
from tests import imagegen as ig
from tests.test_cli import run_cli


def report_of(tmp_path, root, *extra):
    out = tmp_path / "report.json"
    proc = run_cli("scan", str(root), "--library", str(tmp_path / "lib.db"), "--json", str(out), "--quiet", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def files_by_name(group):
    return {Path(f["path"]).name: f for f in group["files"]}


@pytest.mark.integration
def test_the_camera_jpeg_is_kept_over_larger_grayscale_watermarked_and_mirrored_copies(tmp_path):
    root = tmp_path / "photos"
    a = ig.photo(61, (1200, 800))
    ig.save(a, root / "DCIM" / "IMG_0001.jpg", quality=85, exif=ig.camera_exif())
    # edits saved at quality 98, without the camera's EXIF: each file is larger than the original
    ig.save(ig.grayscale(a), root / "edits" / "gray.jpg", quality=98)
    ig.save(ig.watermarked(a), root / "edits" / "watermarked.jpg", quality=98)
    ig.save(a.transpose(0), root / "edits" / "mirrored.jpg", quality=98)  # FLIP_LEFT_RIGHT
    ig.save(ig.resized(a, 0.5), root / "export" / "small.jpg", quality=90)
    ig.save(ig.photo(62, (1200, 800)), root / "other.jpg", quality=85, exif=ig.camera_exif())
    for name in ("gray", "watermarked", "mirrored"):
        assert (root / "edits" / f"{name}.jpg").stat().st_size > (root / "DCIM" / "IMG_0001.jpg").stat().st_size
    data = report_of(tmp_path, root)
    (group,) = data["groups"]
    assert Path(group["keeper"]).name == "IMG_0001.jpg"
    files = files_by_name(group)
    assert files["IMG_0001.jpg"]["keep"] and files["IMG_0001.jpg"]["kind"] == "keeper"
    assert files["IMG_0001.jpg"]["camera"] == "Canon EOS 80D"
    # only the smaller copy is preselected; the edits are kept and say what they are
    assert [n for n, f in files.items() if not f["keep"]] == ["small.jpg"]
    assert files["small.jpg"]["kind"] == "smaller copy"
    assert "grayscale copy" in files["gray.jpg"]["changes"]
    assert "mirrored" in files["mirrored.jpg"]["changes"]
    assert files["watermarked.jpg"]["kind"] == "edited"


@pytest.mark.integration
def test_a_watermarked_copy_is_told_from_its_original_by_the_pixels_alone(tmp_path):
    """Same size, same EXIF, the watermarked file larger: only the overlay tells them apart."""
    root = tmp_path / "photos"
    a = ig.photo(63, (1200, 800))
    ig.save(a, root / "a.jpg", quality=85, exif=ig.camera_exif())
    ig.save(ig.watermarked(a), root / "b.jpg", quality=97, exif=ig.camera_exif())
    assert (root / "b.jpg").stat().st_size > (root / "a.jpg").stat().st_size
    (group,) = report_of(tmp_path, root)["groups"]
    files = files_by_name(group)
    assert Path(group["keeper"]).name == "a.jpg"
    assert files["b.jpg"]["keep"] and files["b.jpg"]["changes"] == ["watermark or overlay"]


@pytest.mark.integration
def test_a_raw_lookalike_beside_its_jpeg_is_a_problem_never_a_copy_to_trash(tmp_path):
    """A TIFF with a small preview named .nef/.dng: Pillow would read the preview; LibRaw finds no
    raw data. It is listed as a problem and never grouped."""
    root = tmp_path / "photos"
    a = ig.photo(64, (1200, 800))
    ig.save(a, root / "DSC_0001.jpg", quality=90, exif=ig.camera_exif("NIKON CORPORATION", "NIKON D7500"))
    ig.raw_lookalike(a, root / "DSC_0001.nef")
    ig.raw_lookalike(a, root / "DSC_0002.dng")
    ig.save(a, root / "copy.jpg", quality=90)
    data = report_of(tmp_path, root)
    problems = {Path(p["path"]).name: p["error"] for p in data["problems"]}
    assert set(problems) == {"DSC_0001.nef", "DSC_0002.dng"}
    assert all("LibRaw" in e for e in problems.values())
    grouped = {Path(f["path"]).name for g in data["groups"] for f in g["files"]}
    assert grouped == {"DSC_0001.jpg", "copy.jpg"}


@pytest.mark.integration
def test_raw_and_jpeg_of_one_shot_keep_the_raw_and_preselect_neither(tmp_path):
    root = tmp_path / "photos"
    a = ig.photo(65, (1200, 800))
    ig.dng(a, root / "IMG_0001.dng", preview_side=160)
    ig.save(a, root / "IMG_0001.jpg", quality=95, exif=ig.camera_exif())
    ig.save(ig.photo(66, (1200, 800)), root / "other.jpg", quality=90)
    data = report_of(tmp_path, root)
    assert data["problems"] == []
    (group,) = data["groups"]
    files = files_by_name(group)
    assert Path(group["keeper"]).name == "IMG_0001.dng"
    raw = files["IMG_0001.dng"]
    assert raw["format"] == "DNG" and (raw["width"], raw["height"]) == (1200, 800)  # the sensor, not the preview
    assert files["IMG_0001.jpg"]["kind"] == "RAW + JPEG" and files["IMG_0001.jpg"]["keep"]
    # the user's choice: JPEGs that have a RAW go
    again = report_of(tmp_path, root, "--trash-jpeg-with-raw")
    files = files_by_name(again["groups"][0])
    assert not files["IMG_0001.jpg"]["keep"] and files["IMG_0001.dng"]["keep"]


def _row(i, path, w=800, h=600, size=1000, facts=None, sha=None):
    return Row(i, path, size, i, sha or f"sha{i}", w, h, "JPEG", "m", "", None,
               facts=facts or {"chroma": 40.0, "camera": "", "taken": "", "raw": False, "tone": [120.0, 50.0]})


def test_mirrored_is_told_by_the_orientation_most_copies_share():
    """Three copies agree on one orientation, one is mirrored against them: that one is labelled,
    whichever member the transforms are read from."""
    frame = lambda t: Match(0.99, "frame", t, 1.0)  # noqa: E731
    ids = [1, 2, 3, 4]
    # dihedral(b, t) lines b up with a: 4 is the mirror of 1, 2 and 3
    matches = {(1, 2): frame(0), (1, 3): frame(0), (1, 4): frame(4), (2, 4): frame(4), (3, 4): frame(4)}
    facts = {i: {"chroma": 40.0, "tone": [120.0, 50.0]} for i in ids}
    labels = originals.edits(ids, matches, facts, {i: "JPEG" for i in ids})
    assert labels == {1: [], 2: [], 3: [], 4: ["mirrored"]}
    # seen from the mirrored one: the same answer
    matches = {(4, 1): frame(4), (4, 2): frame(4), (4, 3): frame(4), (1, 2): frame(0)}
    assert originals.edits(ids, matches, facts, {i: "JPEG" for i in ids})[4] == ["mirrored"]
    # two against one turned a quarter: the turned one
    matches = {(1, 2): frame(0), (1, 3): frame(1)}
    assert originals.edits([1, 2, 3], matches, facts, {i: "JPEG" for i in ids})[3] == ["turned"]


def test_edited_copies_are_preselected_only_when_asked_and_a_large_group_waits_for_a_look():
    members = [Member(_row(1, "/p/a.jpg", size=900)), Member(_row(2, "/p/b.jpg", 400, 300)),
               Member(_row(3, "/p/c.jpg", 640, 480, facts={"chroma": 40.0, "raw": False, "tone": [160.0, 50.0]}))]
    matches = {(1, 2): Match(0.99, "frame", 0, 1.0), (1, 3): Match(0.99, "frame", 0, 1.0)}
    g = Group("edited", members, {}, matches)
    ranking.rank_group(g)
    kinds = {m.row.path: (m.kind, m.keep) for m in g.members}
    assert g.keeper.row.path == "/p/a.jpg"
    assert kinds["/p/b.jpg"] == ("smaller copy", False)
    assert kinds["/p/c.jpg"] == ("edited", True)
    assert "brightness or contrast changed" in next(m for m in g.members if m.row.path == "/p/c.jpg").changes
    ranking.rank_group(g, ranking.Options(select_edited=True))
    assert {m.row.path: m.keep for m in g.members} == {"/p/a.jpg": True, "/p/b.jpg": False, "/p/c.jpg": False}

    many = [Member(_row(1, "/p/a.jpg"))] + [Member(_row(i, f"/p/s{i:02}.jpg", 400, 300)) for i in range(2, 42)]
    big = Group("near", many, {}, {(1, i): Match(0.99, "frame", 0, 1.0) for i in range(2, 42)})
    ranking.rank_group(big)
    assert big.needs_look and all(m.keep for m in big.members) and all(m.safe for m in big.members[1:])
    ranking.look_at(big)
    assert not big.needs_look and [m.keep for m in big.members] == [True] + [False] * 40


def test_a_raw_is_never_preselected_and_its_reason_is_shown():
    raw_facts = {"chroma": 40.0, "camera": "", "taken": "", "raw": True, "tone": [120.0, 50.0]}
    members = [Member(_row(1, "/p/a.jpg", 6000, 4000, size=9_000_000)),
               Member(_row(2, "/p/a.nef", 6000, 4000, size=30_000_000, facts=raw_facts))]
    g = Group("near", members, {}, {(1, 2): Match(0.99, "frame", 0, 1.0)})
    ranking.rank_group(g, ranking.Options(rule="largest-file", select_edited=True))
    assert g.keeper.row.path == "/p/a.nef"  # the largest file here too
    ranking.rank_group(g, ranking.Options(rule="oldest", select_edited=True))
    assert g.keeper.row.path == "/p/a.jpg"  # the user's rule puts the JPEG first ...
    raw = next(m for m in g.members if m.row.path == "/p/a.nef")
    assert raw.kind == "RAW" and raw.keep  # ... and the RAW is still never preselected
    ranking.rank_group(g)
    assert g.keeper.row.path == "/p/a.nef" and g.keeper.reason == "the camera's RAW"
