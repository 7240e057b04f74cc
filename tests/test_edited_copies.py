"""Pins what the verification stage finds (crops, turns, mirrors, borders) and what it refuses."""
import os

import pytest
from PIL import Image, ImageOps

from app.core import verify
from app.core.decode import _signature
from app.core.pipeline import scan
from tests import imagegen as ig


def sig(im):
    return _signature(im.convert("RGB"))


@pytest.fixture(scope="module")
def base():
    return ig.photo(71, (900, 600))


@pytest.mark.parametrize("name, edit, how", [
    ("centre crop 80%", lambda im: ig.crop_fraction(im, 0.8), "crop"),
    ("off-centre crop 60%", lambda im: ig.crop_fraction(im, 0.6, 0.9, 0.2), "crop"),
    ("zoom 70% (crop, upscaled)", lambda im: ig.crop_fraction(im, 0.7).resize(im.size), "crop"),
    ("90 degree turn", lambda im: im.rotate(90, expand=True), "frame"),
    ("mirror", ImageOps.mirror, "frame"),
    ("white border", lambda im: ImageOps.expand(im, border=40, fill="white"), "crop"),
    ("3 degree turn, cropped", lambda im: ig.crop_fraction(im.rotate(3, resample=Image.BICUBIC), 0.85), "turn"),
    ("brightened 30%", lambda im: ig.brightened(im, 1.3), "frame"),
])
def test_edited_copy_verifies(base, name, edit, how):
    m = verify.best_match(sig(base), sig(edit(base)), cosine=0.9)
    assert m.score >= 0.93, name
    assert m.how == how, name


def test_two_halves_of_one_scene_do_not_verify(base):
    wide = ig.photo(72, (1200, 500))
    left, right = wide.crop((0, 0, 480, 500)), wide.crop((720, 0, 1200, 500))
    assert verify.best_match(sig(left), sig(right), cosine=0.9).score < 0.9


def test_different_photos_do_not_verify(base):
    for seed in (73, 74, 75):
        assert verify.best_match(sig(base), sig(ig.photo(seed, (900, 600))), cosine=0.9).score < 0.9


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
