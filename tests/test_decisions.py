"""'Not duplicates' decisions kept with the library, and the time left for a whole scan."""
import shutil

import pytest

from app.core import decisions, pipeline
from app.core.decisions import Decisions
from app.core.progress import FIRST_GUESS, Progress, ScanPlan
from tests import imagegen as ig


def group_names(result) -> list[list[str]]:
    return sorted(sorted(m.row.path.rsplit("/", 1)[-1] for m in g.members) for g in result.groups)


@pytest.fixture
def family(tmp_path):
    """An original, its smaller copy and its 70 % crop (the original covers both), and an
    identical copy of the original."""
    root = tmp_path / "family"
    a = ig.photo(61, (900, 600))
    ig.save(a, root / "a.jpg", quality=92)
    ig.save(ig.resized(a, 0.5), root / "a_small.jpg")
    ig.save(ig.crop_fraction(a, 0.7), root / "a_crop.jpg")
    shutil.copy(root / "a.jpg", root / "a_same.jpg")
    return root


def test_marks_part_contents_and_are_forgotten_on_undo(tmp_path):
    d = Decisions(str(tmp_path / "d.sqlite"))
    files = [("/p/x.jpg", "s1"), ("/p/y.jpg", "s2"), ("/p/z.jpg", "s3"), ("/p/x copy.jpg", "s1")]
    whole = d.mark("all", files)
    assert d.apart() == {("s1", "s2"), ("s1", "s3"), ("s2", "s3")}  # identical bytes are never parted
    one = d.mark("z alone", files, parted="/p/z.jpg")
    assert [m.what for m in d.marks()] == ["z alone", "all"] and d.marks()[0].paths == ("/p/z.jpg",)
    d.forget(whole.id)
    assert d.apart() == {("s1", "s3"), ("s2", "s3")}  # what the other mark still parts
    d.forget(one.id)
    assert d.apart() == set() and d.marks() == []
    assert d.mark("same bytes", [("/a", "s9"), ("/b", "s9")]) is None
    d.close()


def test_a_parted_pair_is_never_grouped_by_a_cover_or_a_bridge(library, embedder, family):
    """The crop and the smaller copy are vouched for by the original that covers both: a mark
    that parts them must split them even so, and the original keeps one of them."""
    result = pipeline.scan([str(family)], library, embedder, workers=0)
    assert group_names(result) == [["a.jpg", "a_crop.jpg", "a_same.jpg", "a_small.jpg"]]
    rows = {r.path.rsplit("/", 1)[-1]: r for r in result.rows}
    d = Decisions.for_library(library.location)
    d.mark("crop apart from small", [(rows[n].path, rows[n].sha256) for n in ("a_crop.jpg", "a_small.jpg")])
    d.close()
    again = pipeline.scan([str(family)], library, embedder, workers=0)  # remembered: read by the next scan
    groups = group_names(again)
    assert not any({"a_crop.jpg", "a_small.jpg"} <= set(g) for g in groups), groups
    assert any({"a.jpg", "a_same.jpg"} <= set(g) and len(g) == 3 for g in groups), groups  # one of them stays
    # the whole group marked: the identical copies stay together, nothing else does
    d = Decisions.for_library(library.location)
    d.mark("all", [(r.path, r.sha256) for r in again.rows])
    d.close()
    again.apart = decisions.apart_for(library.location)
    assert [sorted(m.row.path.rsplit("/", 1)[-1] for m in g.members) for g in again.grouped(0.5)] == \
        [["a.jpg", "a_same.jpg"]]


def test_the_command_line_scan_keeps_marked_photos_apart(library, embedder, family, tmp_path):
    first = pipeline.scan([str(family)], library, embedder, workers=0)
    d = Decisions.for_library(library.location)
    d.mark("all", [(r.path, r.sha256) for r in first.rows])
    d.close()
    moved = tmp_path / "moved"
    shutil.move(str(family), str(moved))  # a mark follows the contents, not the paths
    again = pipeline.scan([str(moved)], library, embedder, workers=0)
    assert group_names(again) == [["a.jpg", "a_same.jpg"]]


def test_time_left_covers_the_stages_to_come_and_learns_their_costs():
    now = [0.0]
    updates = []
    p = Progress(updates.append, max_rate=0, clock=lambda: now[0])
    plan = ScanPlan({}, read=100, photos=200)
    p.plan = plan
    p.start(100, "embed")
    now[0] = 5.0
    p.advance(50)
    after_embed = (FIRST_GUESS["search"] + FIRST_GUESS["verify"]) * 100 + (FIRST_GUESS["group"] + FIRST_GUESS["keeper"]) * 200
    assert updates[-1].eta == pytest.approx(5.0)  # 50 more at 10 a second
    assert updates[-1].left == pytest.approx(5.0 + after_embed)
    p.start(0, "group")  # not counted: the plan's guess for it, and what follows
    assert updates[-1].left == pytest.approx(FIRST_GUESS["group"] * 200 + FIRST_GUESS["keeper"] * 200)
    now[0] = 6.0
    p.start(10, "keeper")
    now[0] = 9.0
    p.advance(10)
    assert updates[-1].left == pytest.approx(0.0)
    p.finish()
    assert p.took == {"embed": 5.0, "group": 1.0, "keeper": 3.0}
    learned = plan.measured(p.took)
    assert learned["embed"] == pytest.approx(0.05) and learned["keeper"] == pytest.approx(3.0 / 200)
    assert "verify" not in learned  # not run: the first guess stands
    assert ScanPlan(learned, read=10, photos=200).ahead("embed") == pytest.approx(
        (FIRST_GUESS["search"] + FIRST_GUESS["verify"]) * 10 + (1.0 / 200 + 3.0 / 200) * 200)


def test_a_scan_remembers_what_its_stages_cost_on_this_machine(library, embedder, tmp_path):
    import json
    import sqlite3

    from app.core import catalog

    root = tmp_path / "many"
    for i in range(24):  # enough photos for a rate (ScanPlan.measured)
        ig.save(ig.photo(400 + i, (320, 240)), root / f"p{i:02d}.jpg")
    ig.save(ig.resized(ig.photo(400, (320, 240)), 0.5), root / "p00 small.jpg")
    pipeline.scan([str(root)], library, embedder, workers=0)
    db = sqlite3.connect(catalog.location_for(library.location))
    costs = json.loads(db.execute(f"SELECT value FROM {library.catalog.t.meta} WHERE key = 'stage_costs'").fetchone()[0])
    db.close()
    assert {"embed", "verify", "keeper"} <= costs.keys() and all(v > 0 for v in costs.values())
