"""Different photos that share a frame, a look or a texture stay apart; their real copies join.

Every image is made here with Pillow and numpy. The frames are identical across photos, as a
printing service or an editing preset makes them; the night skies are dark, high-detail and share
their look; the walls repeat one brick. These are the cases where a comparison of whole thumbnails
fails: what the pictures share is exactly what must not count.
"""
import os

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from app.core import candidates, domain, grouping, verify
from app.core.decode import evidence
from app.core.pipeline import scan
from tests import imagegen as ig

DEFAULT = grouping.verify_threshold(0.5)
LOOSEST = grouping.verify_threshold(0.0)


def ev(im):
    return evidence(im.convert("RGB"))


def dark(im):
    """A night-like version: a third of the light, the shadows pressed down (gamma 1.6)."""
    return Image.eval(ImageEnhance.Brightness(im).enhance(0.35), lambda v: int(255 * (v / 255) ** 1.6))


def white_border(im):
    return ImageOps.expand(im, border=int(0.06 * max(im.size)), fill="white")


def black_bars(im):
    side = round(max(im.size) * 1.25)
    canvas = Image.new("RGB", (side, side), "black")
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return canvas


def print_frame(im):
    b = int(0.05 * max(im.size))
    return ImageOps.expand(im, border=(b, b, b, 4 * b), fill=(246, 244, 238))


def night_sky(seed, size=(1500, 1000), stars=2500):
    """Random stars with heavy-tailed brightness over a faint nebula, like a long exposure."""
    r = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.zeros((h, w, 3), np.float32)
    for _ in range(3):
        cx, cy, sd = r.uniform(0, w), r.uniform(0, h), r.uniform(100, 330)
        a += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sd * sd))[..., None] * (r.uniform(0.05, 0.35, 3) * 255)
    for x, y, b in zip(r.integers(0, w, stars), r.integers(0, h, stars), r.pareto(2.0, stars) * 60 + 40):
        a[max(0, y - 1):y + 2, max(0, x - 1):x + 2] += min(b, 255)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


def brick_wall(seed, size=(1200, 800)):
    """A wall of one repeated brick: the same shape everywhere, each brick a little different in
    tone and every patch of mortar its own, as in a photo of a real wall."""
    r = np.random.default_rng(seed)
    w, h = size
    bw, bh = 60, 28
    a = np.full((h, w), 170.0, np.float32)
    for row in range(h // bh + 1):
        shift = (bw // 2) * (row % 2)
        for col in range(-1, w // bw + 1):
            x0, y0 = col * bw + shift + 3, row * bh + 3
            a[max(y0, 0):max(y0 + bh - 6, 0), max(x0, 0):max(x0 + bw - 6, 0)] = r.uniform(80, 120)
    a += r.normal(0, 6, a.shape)
    rgb = np.stack([a * 1.0, a * 0.55, a * 0.4], axis=2)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7))


@pytest.fixture(scope="module")
def photos():
    return [ig.photo(seed, (900, 600)) for seed in (401, 402, 403, 404)]


@pytest.mark.parametrize("frame", [white_border, black_bars, print_frame])
def test_different_photos_in_one_frame_stay_apart(photos, frame):
    framed = [ev(frame(p)) for p in photos]
    dark_framed = [ev(frame(dark(p))) for p in photos]
    for i in range(len(photos)):
        for j in range(len(photos)):
            if i != j:
                assert verify.best_match(framed[i], framed[j]).score < LOOSEST, (frame.__name__, i, j)
                assert verify.best_match(dark_framed[i], dark_framed[j]).score < LOOSEST, (frame.__name__, i, j)
                assert verify.best_match(framed[i], ev(photos[j])).score < LOOSEST


@pytest.mark.parametrize("frame", [white_border, black_bars, print_frame])
def test_a_framed_or_dark_framed_copy_joins_its_original(photos, frame):
    for p in photos:
        for copy in (frame(p), frame(dark(p))):
            m = verify.best_match(ev(p), ev(copy))
            assert m.score >= DEFAULT, frame.__name__
            assert m.how == "frame"  # the frame is set aside: the same picture is left


def test_different_night_skies_stay_apart_and_a_bordered_sky_joins_its_own():
    skies = [night_sky(seed) for seed in (11, 12, 13, 14)]
    evs = [ev(s) for s in skies]
    bordered = [ev(white_border(s)) for s in skies]
    for i in range(len(skies)):
        assert verify.best_match(evs[i], bordered[i]).score >= DEFAULT
        for j in range(len(skies)):
            if i != j:
                assert verify.best_match(evs[i], evs[j]).score < LOOSEST
                assert verify.best_match(bordered[i], bordered[j]).score < LOOSEST
                # a crop of one sky is not found inside another (nor mirrored)
                crop = ig.crop_fraction(skies[j], 0.6, 0.2, 0.7)
                assert verify.best_match(evs[i], ev(crop)).score < LOOSEST
                assert verify.best_match(evs[i], ev(ImageOps.mirror(crop))).score < LOOSEST


def test_a_night_sky_is_found_in_its_crop_and_its_resized_copy():
    sky = night_sky(15)
    for copy in (ig.crop_fraction(sky, 0.7, 0.8, 0.3), ig.resized(sky, 0.5)):
        assert verify.best_match(ev(sky), ev(copy)).score >= DEFAULT


def test_photos_of_one_repeated_texture_stay_apart():
    walls = [brick_wall(seed) for seed in (21, 22, 23)]
    evs = [ev(w) for w in walls]
    for i in range(len(walls)):
        for j in range(len(walls)):
            if i != j:
                assert verify.best_match(evs[i], evs[j]).score < LOOSEST
                assert verify.best_match(evs[i], ev(ig.crop_fraction(walls[j], 0.6, 0.3, 0.3))).score < LOOSEST
        # while the wall's own resized copy is found, and its crop at the loosest setting: on the
        # 96 px signature the bricks are a few pixels wide and the mortar under one, where two
        # resamplings of different scale alias differently
        assert verify.best_match(evs[i], ev(ig.resized(walls[i], 0.6))).score >= DEFAULT
        assert verify.best_match(evs[i], ev(ig.crop_fraction(walls[i], 0.6, 0.3, 0.3))).score >= LOOSEST


def test_a_scan_keeps_framed_families_and_skies_apart(tmp_path, library, embedder, photos):
    root = tmp_path / "p"
    for n, p in enumerate(photos[:3]):
        ig.save(p, root / f"photo{n}.jpg")
        ig.save(white_border(dark(p)), root / f"photo{n} dark white.jpg")
        ig.save(black_bars(dark(p)), root / f"photo{n} dark bars.jpg")
        ig.save(print_frame(p), root / f"photo{n} print.jpg")
    for n in range(3):
        sky = night_sky(30 + n)
        ig.save(sky, root / f"sky{n}.jpg")
        ig.save(white_border(sky), root / f"sky{n} border.jpg")
    result = scan([str(root)], library, embedder, workers=0)
    groups = sorted(sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups)
    assert groups == sorted(
        [sorted([f"photo{n}.jpg", f"photo{n} dark white.jpg", f"photo{n} dark bars.jpg", f"photo{n} print.jpg"])
         for n in range(3)] + [[f"sky{n} border.jpg", f"sky{n}.jpg"] for n in range(3)])


def test_a_member_not_verified_against_the_photo_that_shows_the_most_is_split_off():
    # 1 contains 2 and 3; 4 is the same frame as 2, so 1 covers 4 through 2 and complete linkage
    # lets it in, but 4 was never compared with 1 itself.
    rows = {i: _row(i) for i in (1, 2, 3, 4)}
    pairs = [_pair(1, 2, "crop"), _pair(1, 3, "crop"), _pair(2, 4, "frame")]
    linked = grouping.complete_linkage([1, 2, 3, 4], pairs)
    assert sorted(map(sorted, linked)) == [[1, 2, 3, 4]]
    assert sorted(map(sorted, grouping.anchored(linked, pairs, rows))) == [[1, 2, 3]]


def _pair(a, b, how, outer="a", score=0.99):
    return domain.Pair(a, b, 0.9, verify.Match(score, how, 0, 0.8, outer))


def _row(i):
    from app.core.domain import Row
    return Row(i, f"/p/{i}.jpg", 1, 1, str(i), 100, 100, "JPEG", "m", "", None)


def town(seed, size=(1200, 800)):
    """A street: sky above, buildings with rows of windows standing on the ground, a road below.
    Its up direction is plain, which is what the network's vector does not forgive a turn."""
    r = np.random.default_rng(seed)
    w, h = size
    im = Image.new("RGB", size, tuple(int(v) for v in r.integers(120, 220, 3)))
    from PIL import ImageDraw
    d = ImageDraw.Draw(im)
    ground = int(h * r.uniform(0.75, 0.85))
    d.rectangle([0, ground, w, h], fill=tuple(int(v) for v in r.integers(40, 90, 3)))
    x = 0
    while x < w:
        bw, bh = int(r.integers(80, 220)), int(r.integers(150, ground - 40))
        d.rectangle([x, ground - bh, x + bw, ground], fill=tuple(int(v) for v in r.integers(60, 200, 3)))
        for wy in range(ground - bh + 15, ground - 25, 30):
            for wx in range(x + 10, x + bw - 20, 25):
                if r.random() < 0.8:
                    d.rectangle([wx, wy, wx + 12, wy + 16], fill=tuple(int(v) for v in r.integers(150, 255, 3)))
        x += bw + int(r.integers(5, 30))
    a = np.asarray(im, np.float32) + r.normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


def test_quarter_turned_copies_of_photos_with_an_up_direction_are_grouped(tmp_path, library, embedder, monkeypatch):
    # To the network a turned street is less like its original (cosine 0.73-0.80 with the
    # fallback model) than another street is (0.86-0.89): among more streets than the vector
    # search's TOP_K neighbours (made small here, so that a few streets are many), only the
    # turned squares propose the pair.
    monkeypatch.setattr(candidates, "TOP_K", 3)
    root = tmp_path / "p"
    for n in range(10):
        ig.save(town(50 + n), root / f"town{n:02d}.jpg")
    ig.save(town(50).rotate(90, expand=True), root / "town00 turned.jpg")
    ig.save(town(51).rotate(180), root / "town01 upside down.jpg")
    ig.save(town(52).rotate(-90, expand=True), root / "town02 turned back.jpg")
    result = scan([str(root)], library, embedder, workers=0)
    assert sorted(sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups) == [
        ["town00 turned.jpg", "town00.jpg"], ["town01 upside down.jpg", "town01.jpg"],
        ["town02 turned back.jpg", "town02.jpg"]]


def test_a_turned_copy_added_later_is_found_by_a_rescan(tmp_path, library, embedder, monkeypatch):
    """The rescan reads only the new photo; the squares of the others come from the catalog."""
    root = tmp_path / "p"
    t = town(60)
    ig.save(t, root / "town.jpg")
    for n in range(10):
        ig.save(town(70 + n), root / f"other{n:02d}.jpg")
    assert scan([str(root)], library, embedder, workers=0).groups == []
    ig.save(t.rotate(90, expand=True), root / "town turned.jpg")
    proposed = []
    real = candidates.turned_candidates

    def spy(ids, squares, queries, *a, **k):
        out = real(ids, squares, queries, *a, **k)
        proposed.append((len(ids), len(queries), out))
        return out

    monkeypatch.setattr(candidates, "turned_candidates", spy)
    result = scan([str(root)], library, embedder, workers=0)
    assert [sorted(os.path.basename(m.row.path) for m in g.members) for g in result.groups] == \
        [["town turned.jpg", "town.jpg"]]
    (photos, queries, pairs), = proposed
    assert (photos, queries) == (12, 1)  # every photo's square, one of them read now
    assert {tuple(sorted((a, b))) for a, b in pairs} == {tuple(sorted(m.row.id for m in result.groups[0].members))}


def test_the_suggested_keeper_is_the_copy_without_an_added_frame(tmp_path, library, embedder):
    """Bars and borders add pixels, not picture: the photo itself is kept, on a rescan too."""
    root = tmp_path / "p"
    p = ig.photo(405, (1200, 800))
    ig.save(p, root / "photo.jpg")
    ig.save(black_bars(dark(p)), root / "photo dark bars.jpg")  # 1500 x 1500
    ig.save(white_border(p), root / "photo white border.jpg")
    ig.save(print_frame(p), root / "photo print.jpg")
    for result in (scan([str(root)], library, embedder, workers=0), scan([str(root)], library, embedder, workers=0)):
        (group,) = result.groups
        assert len(group.members) == 4
        assert os.path.basename(group.members[0].row.path) == "photo.jpg" and group.members[0].keep
