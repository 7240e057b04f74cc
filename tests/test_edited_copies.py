"""Pins what the verification stage finds (crops, turns, mirrors, borders) and what it refuses."""
import os

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.core import domain, grouping, verify
from app.core.decode import evidence
from app.core.pipeline import scan
from tests import imagegen as ig


def sig(im):
    """What verification reads of a photo: its signature and its content's features."""
    return evidence(im.convert("RGB"))


@pytest.fixture(scope="module")
def base():
    return ig.photo(71, (900, 600))


@pytest.mark.parametrize("name, edit, how", [
    ("centre crop 80%", lambda im: ig.crop_fraction(im, 0.8), "crop"),
    ("off-centre crop 60%", lambda im: ig.crop_fraction(im, 0.6, 0.9, 0.2), "crop"),
    ("zoom 70% (crop, upscaled)", lambda im: ig.crop_fraction(im, 0.7).resize(im.size), "crop"),
    ("90 degree turn", lambda im: im.rotate(90, expand=True), "frame"),
    ("mirror", ImageOps.mirror, "frame"),
    # the border is a frame, set aside: what is left is the same picture
    ("white border", lambda im: ImageOps.expand(im, border=40, fill="white"), "frame"),
    ("3 degree turn, cropped", lambda im: ig.crop_fraction(im.rotate(3, resample=Image.BICUBIC), 0.85), "turn"),
    ("2 degree turn, cropped", lambda im: ig.crop_fraction(im.rotate(2, resample=Image.BICUBIC), 0.85), "turn"),
    ("-4 degree turn, cropped", lambda im: ig.crop_fraction(im.rotate(-4, resample=Image.BICUBIC), 0.85), "turn"),
    ("brightened 30%", lambda im: ig.brightened(im, 1.3), "frame"),
])
def test_edited_copy_verifies(base, name, edit, how):
    m = verify.best_match(sig(base), sig(edit(base)), cosine=0.9)
    assert m.score >= 0.93, name
    assert m.how == how, name


def test_the_mirrored_reading_is_skipped_only_where_no_setting_could_use_it():
    assert verify.SURE_SCORE >= grouping.verify_threshold(1.0)


def test_two_halves_of_one_scene_do_not_verify(base):
    wide = ig.photo(72, (1200, 500))
    left, right = wide.crop((0, 0, 480, 500)), wide.crop((720, 0, 1200, 500))
    assert verify.best_match(sig(left), sig(right), cosine=0.9).score < 0.9


def test_different_photos_do_not_verify(base):
    for seed in (73, 74, 75):
        assert verify.best_match(sig(base), sig(ig.photo(seed, (900, 600))), cosine=0.9).score < 0.9


def _sky(seed, size=(900, 600)):
    """A featureless photo: a smooth two-way gradient (an evening sky) with sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    a, b, c = rng.uniform(0.3, 1.0, 3)
    base = 60 + 150 * (a * y + b * x * x + c * x * y) / (a + b + c)
    rgb = np.stack([base * k for k in rng.uniform(0.7, 1.1, 3)], axis=2) + rng.normal(0, 3, (h, w, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def test_a_featureless_crop_is_not_found_inside_another_photo(base):
    """A patch of smooth sky lines up with any smooth area; it is no evidence of a crop."""
    box = (200, 150, 500, 550)
    for seed in (81, 82, 83):
        other, patch = _sky(seed), _sky(seed + 10).crop(box)
        assert verify.best_match(sig(other), sig(patch)).score < 0.9
        # nor does a whole featureless photo pass for another one
        assert verify.best_match(sig(_sky(seed)), sig(_sky(seed + 10))).score < 0.9
    # while the same crop of a photo with detail is still found
    m = verify.best_match(sig(base), sig(base.crop(box)))
    assert m.score >= 0.93 and m.how == "crop"


def test_a_flat_photo_joins_only_its_byte_identical_copies(tmp_path, library, embedder):
    """A lens-cap shot (one grey level and sensor noise) has nothing a copy could be recognised
    by: its re-encoded copy is not joined, its byte-identical copy is."""
    rng = np.random.default_rng(5)
    flat = Image.fromarray(np.clip(rng.normal(40, 2, (600, 900, 3)), 0, 255).astype(np.uint8))
    root = tmp_path / "p"
    ig.save(flat, root / "cap.jpg", quality=95)
    (root / "cap copy.jpg").write_bytes((root / "cap.jpg").read_bytes())
    ig.save(flat, root / "cap q70.jpg", quality=70)
    ig.save(ig.grayscale(flat), root / "cap gray.jpg", quality=95)
    assert verify.best_match(sig(flat), sig(ig.grayscale(flat))).score < 0.9
    result = scan([str(root)], library, embedder, workers=0)
    assert [sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups] == \
        [["cap copy.jpg", "cap.jpg"]]
    assert result.groups[0].kind == "exact"


def test_overlapping_crops_share_a_group_and_strips_stay_apart(tmp_path, library, embedder):
    root = tmp_path / "p"
    a = ig.photo(76, (1200, 800))
    ig.save(a, root / "full.jpg")
    ig.save(ig.crop_fraction(a, 0.8), root / "centre80.jpg")
    ig.save(ig.crop_fraction(a, 0.6, 0.95, 0.05), root / "corner60.jpg")
    ig.save(a.rotate(90, expand=True), root / "turned.jpg")
    wide = ig.photo(77, (1500, 600))
    ig.save(wide.crop((0, 0, 600, 600)), root / "strip_left.jpg")
    ig.save(wide.crop((900, 0, 1500, 600)), root / "strip_right.jpg")
    result = scan([str(root)], library, embedder, workers=0)
    groups = [sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups]
    assert groups == [["centre80.jpg", "corner60.jpg", "full.jpg", "turned.jpg"]]
    assert result.groups[0].kind == "edited"


def test_regrouping_reuses_the_overlap_checks_of_crops(tmp_path, library, embedder, monkeypatch):
    """Two crops that only overlap are checked on their shared pixels once per scan (verification
    places one on the other), not again for every position of the similarity slider."""
    root = tmp_path / "p"
    a = ig.photo(76, (1200, 800))
    ig.save(a.crop((0, 0, 840, 800)), root / "left.jpg")
    ig.save(a.crop((360, 0, 1200, 800)), root / "right.jpg")
    ig.save(a.crop((420, 200, 780, 560)), root / "middle.jpg")  # inside both: places them
    result = scan([str(root)], library, embedder, workers=0)
    overlapping = [p for p in result.pairs if p.match.how == "overlap"]
    assert len(overlapping) == 1 and overlapping[0].match.score >= 0.97  # left/right
    checks = []
    real = verify.overlap_score
    monkeypatch.setattr(verify, "overlap_score", lambda *a, **k: checks.append(1) or real(*a, **k))
    for similarity in (0.3, 0.6):
        result.regroup(similarity)
        assert [sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups] == \
            [["left.jpg", "middle.jpg", "right.jpg"]]
    assert checks == []


def test_a_turned_crop_is_covered_by_its_original_not_the_reverse(base):
    turned = ig.crop_fraction(base.rotate(3, resample=Image.BICUBIC), 0.85)
    m = verify.best_match(sig(base), sig(turned), cosine=0.95)
    assert m.how == "turn"
    assert verify.covers(m, "a") and not verify.covers(m, "b")


def test_a_full_width_strip_is_a_crop_not_the_same_frame(base):
    strip = base.crop((0, 0, base.width, base.height // 2))
    m = verify.best_match(sig(base), sig(strip), cosine=0.9)
    assert m.score >= 0.93
    assert m.how == "crop" and verify.covers(m, "a") and not verify.covers(m, "b")


def _pair(a, b, how, outer="a", score=0.99):
    return domain.Pair(a, b, 0.9, verify.Match(score, how, 0, 0.8, outer))


def test_a_shared_crop_does_not_join_two_photos_it_fits_in():
    # 3 is a crop that lines up inside both 1 and 2 (say, sky that two burst frames share);
    # 1 and 2 were never verified against each other, so no group may hold both.
    pairs = [_pair(1, 3, "crop", "a"), _pair(2, 3, "crop", "a", 0.98)]
    clusters = grouping.complete_linkage([1, 2, 3], pairs)
    assert all(not {1, 2} <= set(c) for c in clusters)


def test_a_tie_between_two_merges_is_settled_by_path_order_not_by_ids():
    # B is a crop inside A and inside C; A and C were never verified together, so only one of
    # them can join B, and both pairs score the same. Ids come from absolute paths, so the same
    # three files in another folder have other ids: the nodes' order (by path) must decide.
    def linked(a, b, c):
        pairs = sorted([_pair(*sorted((a, b)), "crop", "a" if a < b else "b", 0.95),
                        _pair(*sorted((c, b)), "crop", "a" if c < b else "b", 0.95)], key=lambda p: (p.a, p.b))
        clusters = grouping.complete_linkage([a, b, c], pairs)
        name = {a: "A", b: "B", c: "C"}
        return sorted(sorted(name[x] for x in cl) for cl in clusters)

    assert linked(10, 20, 30) == linked(30, 20, 10) == [["A", "B"]]


def test_copies_that_do_not_overlap_join_through_the_photo_that_shows_them_all():
    # 1 = original, 2 and 3 = crops of opposite corners, 4 = a bordered copy containing 1.
    pairs = [_pair(1, 2, "crop"), _pair(1, 3, "crop"), _pair(4, 1, "crop"), _pair(4, 2, "crop")]
    assert sorted(map(sorted, grouping.complete_linkage([1, 2, 3, 4], pairs))) == [[1, 2, 3, 4]]


def test_a_whole_family_of_edits_is_one_group(tmp_path, library, embedder):
    root = tmp_path / "family"
    a = ig.photo(78, (1200, 800))
    ig.save(a, root / "original.jpg")
    ig.save(ImageOps.expand(a, border=60, fill="white"), root / "border.jpg")
    ig.save(ig.crop_fraction(a.rotate(3, resample=Image.BICUBIC), 0.86), root / "turn3.jpg")
    ig.save(ig.crop_fraction(a, 0.6, 0.95, 0.05), root / "corner_ne.jpg")
    ig.save(ig.crop_fraction(a, 0.6, 0.05, 0.95), root / "corner_sw.jpg")
    ig.save(ig.crop_fraction(a, 0.7).resize(a.size), root / "zoom.jpg")
    ig.save(ImageOps.mirror(a), root / "mirror.jpg")
    ig.save(a.resize((640, 427)), root / "small.jpg")
    ig.save(ig.photo(79, (1200, 800)), root / "other.jpg")
    result = scan([str(root)], library, embedder, workers=0)
    groups = [sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups]
    assert groups == [["border.jpg", "corner_ne.jpg", "corner_sw.jpg", "mirror.jpg", "original.jpg",
                       "small.jpg", "turn3.jpg", "zoom.jpg"]]


def test_a_photo_prepared_once_judges_every_partner_as_a_fresh_one_would(base):
    # verify_chunk prepares each photo once and keeps its mirrored features for later partners.
    partners = [ig.crop_fraction(base, 0.7), base.rotate(90, expand=True), base.crop((0, 0, 900, 200)),
                base.crop((100, 0, 700, 600)), ig.photo(72, (600, 900)), ig.crop_fraction(base.rotate(3), 0.85),
                ImageOps.expand(base, border=40, fill="white")]
    sigs = {0: sig(base), **{i: sig(p) for i, p in enumerate(partners, 1)}}
    items = [(0, i, 0.95) for i in range(1, len(sigs))] + [(i, 0, 0.95) for i in range(1, len(sigs))]
    kept = verify.verify_chunk(items, sigs)
    for a, b, cos, m in kept:
        assert m == verify.judged(verify.prepare(sigs[a]), verify.prepare(sigs[b]), cosine=cos)
    assert sum(m.score >= 0.93 for *_, m in kept) >= 8  # real matches among them, not only refusals


def test_a_pair_is_judged_the_same_whichever_photo_is_named_first(base):
    # Pairs are named by ids made from paths: scanned from another folder, the same two files can
    # come in the other order, and matching is not exactly symmetric, so the order is fixed by
    # the pixels.
    pairs = [(sig(base), sig(ig.crop_fraction(base.rotate(90, expand=True), 0.7))),  # a turned crop
             (sig(base), sig(ig.crop_fraction(ImageOps.mirror(base), 0.7, 0.3, 0.6))),  # a mirrored crop
             (sig(base), sig(ig.crop_fraction(base.rotate(3, resample=Image.BICUBIC), 0.85))),
             (sig(base), sig(ImageOps.expand(base, border=40, fill="white")))]
    for x, y in pairs:
        (_, _, _, m), = verify.verify_chunk([(1, 2, 0.95)], {1: x, 2: y})
        (_, _, _, r), = verify.verify_chunk([(1, 2, 0.95)], {1: y, 2: x})
        assert (r.score, r.how, r.scale) == (m.score, m.how, m.scale)
        assert r.transform == verify.inverse(m.transform) and r.outer != m.outer
        assert (verify.covers(r, "a"), verify.covers(r, "b")) == (verify.covers(m, "b"), verify.covers(m, "a"))
        assert m.score >= 0.93


def test_the_transform_read_off_a_match_lines_the_copy_up_with_the_original(base):
    """Match.transform: dihedral(second, t) shows the first as it is (quarter turns, mirrors)."""
    for t in range(8):
        copy = Image.fromarray(verify.dihedral(np.asarray(base), t))
        m = verify.best_match(sig(base), sig(copy))
        assert m.how == "frame" and m.score >= 0.97
        assert m.transform == verify.inverse(t), t


def test_every_turn_and_mirror_is_undone_by_its_inverse():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for t in range(8):
        assert np.array_equal(verify.dihedral(verify.dihedral(a, t), verify.inverse(t)), a)
