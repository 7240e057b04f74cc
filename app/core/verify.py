"""Verification of candidate pairs from their stored grayscale signatures.

Vector search only proposes; these checks decide. Each compares zero-mean, unit-variance
grayscale thumbnails, so brightness, contrast, saturation and grayscale edits do not matter,
while a different photo of the same scene (a burst frame, the neighbouring strip of a
panorama) does not line up pixel for pixel and scores low.

- same frame (``_frame_score`` on ``prepare``d thumbnails): both images show the same frame (resize, re-encode, colour edits, watermark).
- ``containment``: one image is a crop or zoom of the other, or the other has a border; found by
  normalised cross-correlation of the smaller view slid over the larger one at a range of scales.
- Either check is also tried against the 8 rotations/mirrors of one side (90° turns, mirrors).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

cv2.setNumThreads(1)

# Outcomes remembered between scans (pair_cache.py) are dropped when this changes: bump it
# whenever a change here can turn a verdict.
VERSION = 7
FRAME_SIDE = 32
MIN_TEMPLATE = 20  # px of the 96 px signature: smaller crops carry too little evidence
MIN_STD = 4.0  # a near-flat template (fog, a white wall) matches anything
# Fine detail (std of the signature minus its blur, see ``detail``) an image needs before it can
# be found inside another one. Featureless crops (a sky gradient, an out-of-focus background)
# slid over any smooth area line up at NCC 0.95-0.98: on the timing corpus such crops of
# different photos (detail 0.40-0.88) joined groups. Every photo of both dev corpora
# has >= 2.4 (crops, zooms: >= 5.6).
MIN_DETAIL = 1.5
# Up to this much detail, a reading (frame, crop, turn) must also line up in fine detail
# (``fine_agreement``): smooth shading alone lines up at NCC 0.95-0.996 between different
# low-detail photos of the timing corpus, whose fine detail then agrees at 0.00-0.11 (0.33-0.51
# where a small template holds one cloud edge). True copies of the dev corpora agree at >= 0.81
# (frames) and, 5th percentile, >= 0.59 (crops, zooms, borders; 0.32 at worst); slightly turned
# copies read as crops agree at only 0.09-0.22, which is why photos with more detail than this
# are not checked. Flat photos (lens-cap shots) have no fine detail to agree: only byte-identical
# copies of them are grouped.
DETAIL_CHECK_BELOW = 4.0
FINE_MIN = 0.45


@dataclass(frozen=True, slots=True)  # a large library keeps a million of them
class Match:
    score: float  # normalised cross-correlation, 1.0 = identical up to brightness/contrast
    how: str  # "frame", "crop" (one contains the other), "turn" (slightly rotated), "overlap"
    transform: int  # 0 = as is; 1..7 = rotation/mirror applied to the second image
    scale: float  # fraction of the larger image's width the smaller one covers
    outer: str = "a"  # which side contains the other ("a" or "b")
    rect: tuple = ()  # (x, y, w, h) of the inner side inside the outer side's signature (read when transform is 0)


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """t in 0..7: k = t % 4 quarter turns, mirrored when t >= 4."""
    b = np.rot90(a, t % 4)
    return np.ascontiguousarray(b[:, ::-1] if t >= 4 else b)


def _z(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    a -= a.mean()
    n = np.linalg.norm(a)
    return a / n if n > 0 else a


@dataclass(frozen=True)
class Prepared:
    """A signature with what every comparison of it needs, computed once per photo: its raw
    pixels and, for each of the 8 rotations/mirrors of its equalised version, the aspect ratio
    and a zero-mean unit-length FRAME_SIDE² thumbnail for whole-frame checks. Views used by the
    sliding searches (turned, half-size) are made on first use and kept: a photo takes part in
    many pairs."""
    raw: np.ndarray
    aspects: tuple
    small: tuple  # uint8 FRAME_SIDE x FRAME_SIDE, one per transform
    zs: tuple  # float32 vectors, one per transform
    detail: float  # can it be looked for inside another image (MIN_DETAIL)
    key: bytes  # a digest of the pixels: orders the two sides of a pair (``judged``)
    views: dict = field(default_factory=dict, compare=False, repr=False)

    def view(self, t: int = 0, degrees: float = 0.0) -> np.ndarray:
        """The raw signature under dihedral transform ``t``, or turned by ``degrees`` (t = 0)."""
        key = (t, degrees)
        if key not in self.views:
            self.views[key] = rotated(self.raw, degrees) if degrees else dihedral(self.raw, t)
        return self.views[key]

    def half(self, t: int = 0, degrees: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """That view at half size, as uint8 (a template) and float32 (a search area)."""
        key = ("half", t, degrees)
        if key not in self.views:
            h = _half(self.view(t, degrees))
            self.views[key] = (h, h.astype(np.float32))
        return self.views[key]

    def templates(self, t: int = 0, degrees: float = 0.0, half: bool = False) -> dict:
        """Templates resized from that view (or its half-size version), by size: the sweeps of
        every pair this photo is in ask for the same few sizes (the coarse scale grid is fixed,
        the full-size sweep steps around it, and most outer sides share a width), so each is
        made once."""
        return self.views.setdefault(("templates", half, t, degrees), {})


def prepare(sig: np.ndarray) -> Prepared:
    eq = cv2.equalizeHist(sig)
    aspects, small, zs = [], [], []
    for t in range(8):
        v = dihedral(eq, t)
        r = cv2.resize(v, (FRAME_SIDE, FRAME_SIDE), interpolation=cv2.INTER_AREA)
        aspects.append(_aspect(v))
        small.append(r)
        zs.append(_z(r).ravel())
    key = hashlib.blake2b(sig.tobytes(), digest_size=16, person=b"%dx%d" % sig.shape).digest()
    return Prepared(sig, tuple(aspects), tuple(small), tuple(zs), detail(sig), key)


def detail(sig: np.ndarray) -> float:
    """Standard deviation of the signature's fine detail (what a 2 px blur removes)."""
    f = sig.astype(np.float32)
    return float((f - cv2.GaussianBlur(f, (0, 0), 2.0)).std())


def fine_agreement(outer: np.ndarray, inner: np.ndarray, rect: tuple) -> float:
    """NCC of the finest detail (what a 1 px blur removes) of ``inner`` and of the part of
    ``outer`` it was placed on (``rect``: x, y, w, h in ``outer`` pixels)."""
    x, y, w, h = rect
    region = outer[y:y + h, x:x + w].astype(np.float32)
    placed = cv2.resize(inner, (region.shape[1], region.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    fa = region - cv2.GaussianBlur(region, (0, 0), 1.0)
    fb = placed - cv2.GaussianBlur(placed, (0, 0), 1.0)
    fa -= fa.mean()
    fb -= fb.mean()
    n = float(np.linalg.norm(fa) * np.linalg.norm(fb))
    return float((fa * fb).sum()) / n if n > 0 else 0.0


def _frame_score(ra: np.ndarray, za: np.ndarray, rb: np.ndarray, zb: np.ndarray) -> float:
    if _std(ra) < MIN_STD / 2 or _std(rb) < MIN_STD / 2:
        return 1.0 if np.abs(ra.astype(int) - rb.astype(int)).mean() < 3 else 0.0
    return float(za @ zb)


def _std(a: np.ndarray) -> float:
    return float(cv2.meanStdDev(a)[1][0, 0])  # a tenth of numpy's cost on these small arrays


def _aspect(a: np.ndarray) -> float:
    return a.shape[1] / a.shape[0]


def _ncc_at(outer_f: np.ndarray, inner: np.ndarray, s: float, min_template: int = MIN_TEMPLATE,
            centre: tuple | None = None, templates: dict | None = None) -> tuple[float, tuple]:
    """NCC of ``inner`` resized to scale ``s`` of ``outer_f``, at its best position: anywhere, or
    within WINDOW px of ``centre`` (where the match's centre lies, in ``outer_f`` pixels).
    ``templates``: resized versions of ``inner`` by size (filled here), when they are kept."""
    oh, ow = outer_f.shape
    ih, iw = inner.shape
    tw = int(round(s * ow))
    th = int(round(tw * ih / iw))
    if th > oh:  # inner is relatively taller: fit its height instead
        th = int(round(s * oh))
        tw = int(round(th * iw / ih))
    if tw < min_template or th < min_template or tw > ow or th > oh:
        return -1.0, ()
    t = templates.get((tw, th)) if templates is not None else None
    if t is None:
        t = cv2.resize(inner, (tw, th), interpolation=cv2.INTER_AREA)
        t = t if _std(t) >= MIN_STD else False  # False: too flat to place
        if templates is not None:
            templates[(tw, th)] = t  # as uint8: a quarter of the memory, converted in ~1 us
    if t is False:
        return -1.0, ()
    t = t.astype(np.float32)
    x0 = y0 = 0
    area = outer_f
    if centre is not None:
        x0 = min(max(int(round(centre[0] - tw / 2)) - WINDOW, 0), ow - tw)
        y0 = min(max(int(round(centre[1] - th / 2)) - WINDOW, 0), oh - th)
        area = outer_f[y0:min(y0 + th + 2 * WINDOW, oh), x0:min(x0 + tw + 2 * WINDOW, ow)]
    r = cv2.matchTemplate(area, t, cv2.TM_CCOEFF_NORMED)
    _, v, _, loc = cv2.minMaxLoc(r)
    return float(v), (loc[0] + x0, loc[1] + y0, tw, th)


def _centre(rect: tuple, k: float = 1.0) -> tuple:
    return ((rect[0] + rect[2] / 2) * k, (rect[1] + rect[3] / 2) * k)


# The sliding search runs first on half-size signatures with coarse scale steps; only scales that
# line up there at least this well are searched at full size. Most candidate pairs (different
# photos of one scene, overlapping crops) stop at the coarse pass, which costs a tenth as much.
COARSE_STEP = 0.9
COARSE_GATE = 0.60  # true crops/borders of the dev corpora: >= 0.66 there
COARSE_KEEP = 1  # coarse scales searched at full size (a second changed 1 of 242 verdicts, cost 20 %)
REFINE_MIN = 0.75  # true copies score >= 0.85 before refinement on the dev corpora
# The full-size search looks only this many px around where the coarse one lined up (doubled):
# half-size rounding moves the peak by about 2 px, and the scales searched keep the centre.
WINDOW = 4


def _half(a: np.ndarray) -> np.ndarray:
    return cv2.resize(a, (max(1, a.shape[1] // 2), max(1, a.shape[0] // 2)), interpolation=cv2.INTER_AREA)


def coarse_scales(outer: np.ndarray, inner: np.ndarray, min_scale: float = 0.4,
                  halves: tuple | None = None, templates: dict | None = None) -> list[tuple[float, float, tuple]]:
    """(score, scale, centre) of ``inner`` slid over ``outer`` on half-size signatures, best first;
    the centre of the best placement is in full-size pixels. ``halves``: (outer as float32,
    inner as uint8) at half size, when already made; ``templates``: the inner half's kept
    resized versions (``Prepared.templates``)."""
    outer_c, inner_c = halves or (_half(outer).astype(np.float32), _half(inner))
    coarse = []
    s = 1.0
    while s >= min_scale * COARSE_STEP:
        v, rect = _ncc_at(outer_c, inner_c, s, MIN_TEMPLATE // 2, templates=templates)
        coarse.append((v, s, _centre(rect, 2.0) if rect else None))
        s *= COARSE_STEP
    coarse.sort(key=lambda c: (-c[0], -c[1]))
    return coarse or [(-1.0, 0.0, None)]


def contains(outer: np.ndarray, inner: np.ndarray, min_scale: float = 0.4,
             coarse: list | None = None, templates: dict | None = None) -> tuple[float, float, tuple]:
    """Best NCC of ``inner`` resized onto a sub-window of ``outer``, and at which scale.

    Coarse to fine: a sweep on half-size signatures finds the promising scales, a full-size sweep
    around them the exact one (a 2 % scale error is already a 2 px misalignment at the edge of a
    96 px signature). Returns the coarse score (below the gate) when nothing is promising.
    ``templates``: ``inner``'s kept resized versions (``Prepared.templates``).
    """
    coarse = coarse if coarse is not None else coarse_scales(outer, inner, min_scale)
    if coarse[0][0] < COARSE_GATE:
        return coarse[0][0], 0.0, ()
    outer_f = outer.astype(np.float32)
    tried: dict[float, tuple] = {}

    def at(s: float, centre: tuple):
        s = round(s, 5)
        if s not in tried:
            tried[s] = (_ncc_at(outer_f, inner, s, centre=centre, templates=templates)
                        if min_scale <= s <= 1.0 else (-1.0, ()))
        return tried[s][0]

    for v0, s0, c0 in coarse[:COARSE_KEEP]:
        if v0 < COARSE_GATE:
            break
        for k in range(-4, 5):  # +-5 % around the coarse scale in 1.25 % steps
            at(min(s0 * (1 + 0.0125 * k), 1.0), c0)
    # Halving steps around the two best: hard edges (a white border) lose several points of NCC
    # for a 0.3 % scale error, so the peak is narrow and a neighbour can hide it. Views that
    # line up nowhere near a match by now (most candidates) are not refined.
    for start in sorted(tried, key=lambda s: -tried[s][0])[:2]:
        if tried[start][0] < REFINE_MIN:
            break
        centre, step = start, 0.006
        while step > 0.002:
            for f in (1 - step, 1 + step):
                if at(centre * f, _centre(tried[round(centre, 5)][1])) > tried[round(centre, 5)][0]:
                    centre = round(centre * f, 5)
            step /= 2
    best_s = max(tried, key=lambda s: tried[s][0])
    best, best_r = tried[best_s]
    if best <= -1.0:
        return best, 0.0, ()
    return best, best_s, best_r


def turn_window(shape: tuple, degrees: float) -> float:
    """Side of the largest upright window without empty corners, as a fraction of the frame."""
    h, w = shape
    th = np.radians(abs(degrees))
    return 1.0 / (np.cos(th) + np.sin(th) * max(w / h, h / w))


def rotated(a: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the centre and keep the largest upright window without empty corners."""
    h, w = a.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    r = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    k = turn_window(a.shape, degrees)
    cw, ch = int(w * k), int(h * k)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return np.ascontiguousarray(r[y0:y0 + ch, x0:x0 + cw])


# The costly searches run only for pairs whose vectors already agree this much (cosine of the
# GeM descriptors). Measured on the dev corpus with EfficientNet-Lite0: crops/zooms/borders
# >= 0.63, slight turns >= 0.92 (so 0.88 leaves a margin and spares most overlapping views the
# costliest search). Whole-frame checks (cheap) run for every candidate.
CROP_MIN_COSINE = 0.55
TURN_MIN_COSINE = 0.88
SMALL_TURNS = (-4.0, -3.0, -2.0, 2.0, 3.0, 4.0)
SMALL_TURNS_FIRST = (-3.0, 3.0)
# Best half-size score at +-3 degrees: the 30 turned copies of both dev corpora >= 0.90, every
# turned reading that verified on 3,000 timing-corpus pairs >= 0.88; half of those pairs < 0.70.
TURN_COARSE_GATE = 0.70
TURN_SKIP_SCORE = 0.97  # verify_threshold(1.0) in grouping.py: the strictest setting
TURN_COVER_SCALE = 1.03  # a turned frame this much larger than the outer side still fits (rounding)


def best_match(a, b, good_enough: float = 0.985, cosine: float = 1.0) -> Match:
    """The strongest evidence that ``a`` and ``b`` (signatures, or ``prepare``d signatures)
    show the same photo.

    Same-frame checks under all 8 rotations/mirrors are cheap, so they go first; the sliding
    crop search (the costly part) runs only as is and under the best-fitting transform.
    """
    # Histogram-equalised: tone curves that clip (strong brightening) or bend (contrast) keep the
    # rank order of pixels, so equalised signatures still line up where raw ones drift apart.
    # Containment keeps the raw signatures: a crop's histogram differs from the full frame's, so
    # equalising them separately would bend one against the other.
    pa = a if isinstance(a, Prepared) else prepare(a)
    pb = b if isinstance(b, Prepared) else prepare(b)
    a_raw, b_raw = pa.raw, pb.raw
    low_detail = min(pa.detail, pb.detail) < DETAIL_CHECK_BELOW

    def fine(outer, inner, rect) -> bool:
        return not low_detail or (len(rect) == 4 and fine_agreement(outer, inner, rect) >= FINE_MIN)

    best = Match(-1.0, "frame", 0, 1.0)
    frame_t = 0
    frame_best = -2.0
    for t in range(8):
        if abs(np.log(pa.aspects[0] / pb.aspects[t])) < 0.08:
            v = _frame_score(pa.small[0], pa.zs[0], pb.small[t], pb.zs[t])
            if v > frame_best:
                frame_best, frame_t = v, t
            whole = (0, 0, a_raw.shape[1], a_raw.shape[0])
            if v > best.score and fine(a_raw, pb.view(t), whole):
                best = Match(v, "frame", t, 1.0, "a", whole)
    if best.score >= good_enough or cosine < CROP_MIN_COSINE:
        return best
    # When the best whole frame is a quarter turn, both quarter turns are tried: a crop and a
    # turned copy both differ from the full frame, so frame scores cannot tell left from right.
    turns = {0, frame_t} | ({1, 3} if frame_t in (1, 3) else set())
    tries = []
    for t in sorted(turns):
        bt = pb.view(t)
        for outer, inner, side, halves, pi, ti in ((a_raw, bt, "a", (pa.half()[1], pb.half(t)[0]), pb, t),
                                                   (bt, a_raw, "b", (pb.half(t)[1], pa.half()[0]), pa, 0)):
            if pi.detail < MIN_DETAIL:
                continue
            co = coarse_scales(outer, inner, halves=halves, templates=pi.templates(ti, half=True))
            tries.append((co[0][0], t, outer, inner, side, co, pi.templates(ti)))
    tries.sort(key=lambda x: -x[0])
    for _, t, outer, inner, side, co, kept in tries[:2]:  # full-size search where the coarse one lined up best
        v, sc, rect = contains(outer, inner, coarse=co, templates=kept)
        if v > best.score + 1e-6 and fine(outer, inner, rect):
            # "frame" only when the inner side fills the outer one: a full-width strip matches at
            # scale 1.0 but is a crop, and covers() must not let it stand for the whole photo.
            filled = rect and rect[2] * rect[3] >= 0.95 * outer.shape[0] * outer.shape[1]
            best = Match(v, "frame" if filled else "crop", t, sc, side, rect)
    # Above the strictest verification threshold the turned readings can change no verdict.
    if best.score >= min(good_enough, TURN_SKIP_SCORE) or cosine < TURN_MIN_COSINE:
        return best
    # A slightly straightened photo (a few degrees, then cropped): turn one side back and look
    # for it inside the other. Upright only: a mirror plus a slight turn is rare in real edits
    # and was the closest call between two different strips of one scene.
    # Coarse sweeps for every angle and side first; only the two per side that line up best get
    # the full-size search (most candidates here are overlapping views that line up nowhere).
    # Two per side, not one: the coarse ranking of neighbouring angles is not reliable enough
    # (one per side lost 2 of 15 slight turns of the dev corpus).
    def sweep(degrees):
        for deg in degrees:
            for side, po, pt in (("a", pa, pb), ("b", pb, pa)):
                if pt.detail < MIN_DETAIL:
                    continue
                outer, turned, inner = po.raw, pt.raw, pt.view(0, deg)
                co = coarse_scales(outer, inner, 0.6, halves=(po.half()[1], pt.half(0, deg)[0]),
                                   templates=pt.templates(0, deg, half=True))
                tries.append((co[0][0], side, outer, inner, turned, deg, co, pt.templates(0, deg)))

    tries = []
    # The middle angles first: at half size a degree off costs a turned copy little, so pairs
    # that line up poorly there (most overlapping views) are not turned further.
    sweep(SMALL_TURNS_FIRST)
    if max((t[0] for t in tries), default=-1.0) < TURN_COARSE_GATE:
        return best
    sweep([d for d in SMALL_TURNS if d not in SMALL_TURNS_FIRST])
    tries.sort(key=lambda t: -t[0])
    # covers() needs both readings, each at its best angle
    picked = [t for t in tries if t[1] == "a"][:2] + [t for t in tries if t[1] == "b"][:2]
    turns = []
    for _, side, outer, inner, turned, deg, co, kept in picked:
        v, sc, rect = contains(outer, inner, min_scale=0.6, coarse=co, templates=kept)
        if not fine(outer, inner, rect):
            v = -1.0
        # scale of the whole turned frame, not of the corner-free window that was matched:
        # above 1 the turned side shows more than the outer one (see covers())
        turns.append(Match(v, "turn", 0, sc / turn_window(turned.shape, deg), side))
    top = max(turns, key=lambda m: m.score)
    # The crop of a turned copy lines up both ways (the original's corner-free window also sits
    # inside the turned copy); keep the reading that says which side holds the other when it
    # scores about as well, so the group can tell the whole photo from its turned crop.
    holding = [m for m in turns if m.scale <= TURN_COVER_SCALE and m.score >= top.score - 0.02]
    top = max(holding, key=lambda m: m.score) if holding else top
    return top if top.score > best.score + 1e-6 else best


def inverse(t: int) -> int:
    """The dihedral transform that undoes ``t``: a quarter turn back; a mirrored one undoes itself."""
    return t if t >= 4 else (4 - t) % 4


def judged(pa: Prepared, pb: Prepared, cosine: float = 1.0) -> Match:
    """best_match with the two sides in an order fixed by their pixels, told as seen from ``pa``.

    The checks are not symmetric (resampling one side and not the other; the crop search runs
    under turns of the second side): swapping the sides moved 65 of 3,000 timing-corpus pairs
    by more than 0.001, and 4 verdicts at the thresholds 0.89, 0.93 or 0.97 changed. Pairs are
    named by ids made from paths, so without this the same two files scanned from another folder
    could be judged differently.
    """
    if pb.key >= pa.key:
        return best_match(pa, pb, cosine=cosine)
    m = best_match(pb, pa, cosine=cosine)
    return replace(m, transform=inverse(m.transform), outer="b" if m.outer == "a" else "a")


def covers(m: Match, side: str) -> bool:
    """Does side ``side`` ("a" or "b") of a verified match show everything the other side shows?

    Same frame (under any turn or mirror): both sides cover each other. A crop, zoom or slightly
    turned crop: only the outer side covers the inner one. Overlaps cover nothing.
    """
    if m.how == "frame":
        return True
    if m.how == "turn":
        # both sides of a turn match each other's corner-free window; the outer one covers the
        # turned one only if the whole turned frame fits inside it
        return m.outer == side and m.scale <= TURN_COVER_SCALE
    return m.how == "crop" and m.outer == side


# --------------------------------------------------------------------------- overlapping crops
def placement(m: Match, sig_a: np.ndarray, sig_b: np.ndarray, of: str) -> tuple | None:
    """Rectangle (x, y, w, h) of side ``of`` ("a" or "b") in the other side's signature pixels.

    Only for upright matches that carry a placement (frames and crops without rotation/mirror).
    """
    if m.transform != 0 or m.how not in ("frame", "crop") or len(m.rect) != 4:
        return None
    x, y, w, h = m.rect
    inner_sig, outer_sig = (sig_b, sig_a) if m.outer == "a" else (sig_a, sig_b)
    inner_side = "b" if m.outer == "a" else "a"
    if of == inner_side:
        return (float(x), float(y), float(w), float(h))
    # the outer side seen from the inner side: invert the placement
    ih, iw = inner_sig.shape
    oh, ow = outer_sig.shape
    kx, ky = iw / w, ih / h
    return (-x * kx, -y * ky, ow * kx, oh * ky)


def overlap_score(sig_x: np.ndarray, rect_x: tuple, sig_y: np.ndarray, rect_y: tuple,
                  min_fraction: float = 0.3) -> float:
    """NCC of the pixels two crops share, placed by their rectangles in a common third photo.

    The third photo only says where to look; the score compares X's own pixels with Y's, so two
    crops of one photo are verified against each other, not merely through a neighbour.
    """
    x0, y0 = max(rect_x[0], rect_y[0]), max(rect_x[1], rect_y[1])
    x1 = min(rect_x[0] + rect_x[2], rect_y[0] + rect_y[2])
    y1 = min(rect_x[1] + rect_x[3], rect_y[1] + rect_y[3])
    ow, oh = x1 - x0, y1 - y0
    if ow < MIN_TEMPLATE or oh < MIN_TEMPLATE:
        return -1.0
    if ow * oh < min_fraction * min(rect_x[2] * rect_x[3], rect_y[2] * rect_y[3]):
        return -1.0

    def cut(sig, rect):
        h, w = sig.shape
        sx, sy = w / rect[2], h / rect[3]
        a0, b0 = int(round((x0 - rect[0]) * sx)), int(round((y0 - rect[1]) * sy))
        a1, b1 = int(round((x1 - rect[0]) * sx)), int(round((y1 - rect[1]) * sy))
        a0, b0, a1, b1 = max(a0, 0), max(b0, 0), min(a1, w), min(b1, h)
        if a1 - a0 < 8 or b1 - b0 < 8:
            return None
        return cv2.resize(sig[b0:b1, a0:a1], (int(round(ow)), int(round(oh))), interpolation=cv2.INTER_AREA).astype(np.float32)

    px, py = cut(sig_x, rect_x), cut(sig_y, rect_y)
    if px is None or py is None or px.std() < MIN_STD or py.std() < MIN_STD:
        return -1.0
    # Slack for the rounding of two placements: a few pixels of shift and a few % of scale.
    m = 2
    best = -1.0
    for f in (0.97, 0.985, 1.0, 1.015, 1.03):
        q = py if f == 1.0 else cv2.resize(py, (max(1, int(round(py.shape[1] * f))), max(1, int(round(py.shape[0] * f)))),
                                           interpolation=cv2.INTER_LINEAR)
        t = q[m:-m, m:-m]
        if t.shape[0] < MIN_TEMPLATE // 2 or t.shape[1] < MIN_TEMPLATE // 2 or t.shape[0] > px.shape[0] or t.shape[1] > px.shape[1]:
            continue
        best = max(best, float(cv2.matchTemplate(px, t, cv2.TM_CCOEFF_NORMED).max()))
    return best


# --------------------------------------------------------------------------- batches
def verify_chunk(items, sigs: dict | None = None, signature=None, prepared: dict | None = None,
                 progress=None) -> list[tuple[int, int, float, Match]]:
    """judged for each (a, b, cosine) in ``items``, signatures from ``sigs`` (id -> array)
    or ``signature(id)``. A top-level function so worker processes can run it on a chunk."""
    get = sigs.__getitem__ if sigs is not None else signature
    prepared = {} if prepared is None else prepared
    out = []
    for n, (a, b, cos) in enumerate(items, 1):
        for i in (a, b):
            if i not in prepared:
                prepared[i] = prepare(get(i))
        out.append((a, b, cos, judged(prepared[a], prepared[b], cosine=cos)))
        if progress is not None and n % 50 == 0:
            progress.advance(50)
    if progress is not None and len(out) % 50:
        progress.advance(len(out) % 50)
    return out
