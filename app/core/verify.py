"""Verification of candidate pairs: do two photos show the same picture?

Vector search only proposes; this decides, on two independent kinds of evidence, both taken from
the photos' content with any frame set aside (content.py):

1. Geometry. SIFT keypoints of the two contents are matched under Lowe's ratio test, as is and
   against the mirrored side, and RANSAC fits one similarity transform (scale, turn by any angle,
   shift; a mirror on top). Copies share many keypoints that one transform explains; different
   photos share a few by chance, scattered. One mechanism covers resizes, crops, zooms, borders,
   quarter and slight turns and mirrors.
2. Pixels. The transform places one signature on the other; the two must agree, pixel by pixel,
   over the whole overlap of the two contents (a rank correlation, so brightness, contrast, gamma
   and grayscale edits do not matter). A chance alignment of two different photos, a burst frame
   or a look-alike disagrees there.

The score of a match is that rank correlation; the similarity setting sets its threshold
(grouping.verify_threshold). A photo with no texture to find keypoints in (fog, a lens cap, a
white wall, all frame) can verify nothing: it joins only byte-identical copies.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from app.core import content

cv2.setNumThreads(1)

# Outcomes remembered between scans (catalog.py) are dropped when this changes: bump it
# whenever a change here can turn a verdict.
VERSION = 8
MIN_TEMPLATE = 20  # px of the 96 px signature: a smaller shared region carries too little evidence
MIN_STD = 4.0  # a near-flat region (fog, a white wall) matches anything

# The pixel check needs the shared part to vary by more than JPEG's rounding: below a grey level
# of spread, ranks are ties and noise. A dark copy keeps a few levels of its detail (a copy
# darkened to a third with gamma 1.6 spans about 48 levels), so this is no brightness threshold.
MIN_LEVELS = 1.0

# Blur (px of the 96 px signature) of both sides before the pixel check: the signature's last
# pixel of detail is where two resamplings of different scale (a photo and its crop, resized copy
# or bordered copy) alias differently. More blur also raises the agreement of different photos
# under a chance alignment (on seed 1 of the dev corpus, with the geometric gates off: 0.896 at
# 1 px, 0.922 at 2 px), faster than that of copies.
PIXEL_BLUR = 1.0

# Lowe's ratio test (Lowe 2004): a keypoint's best match counts only if it is clearly better than
# its second best, which discards the matches that repeated texture makes ambiguous.
RATIO = 0.8
# RANSAC's tolerance, in pixels of the 256 px feature view: resampling, JPEG and the keypoint
# detector's own localisation move a keypoint by about a pixel.
RANSAC_PX = 3.0
# Inliers RANSAC must find before a transform counts. Different photos reach a chance consensus of
# a few keypoints (a similarity is fixed by two); set between seed 1's strongest chance consensus
# (8) and its weakest true copy (26) at their geometric mean (14.4, rounded up), and checked on
# seed 2 (6 and 22): bench/accuracy.py prints both margins. The pixel check below is independent
# evidence on top.
MIN_INLIERS = 15
# The inliers must span the textured part of the smaller side (the extent of its keypoints inside
# the overlap), in both directions, by at least this share: a match supported by one corner (a
# logo, one star cluster, a repeated motif) does not stand for the whole picture. The weakest true
# copies of the dev corpora span 0.33 (seed 1) and 0.40 (seed 2): texture is often uneven.
MIN_SPREAD = 0.25
# A side "shows" the other when the other's content lies inside it up to this share of its area:
# the transform's corners carry a pixel or two of error on a 96 px signature.
COVER = 0.9
# Two partly overlapping views (two crops of one photo) verify each other only when they share
# at least this share of the smaller one; less is the neighbouring strip of a panorama.
MIN_OVERLAP = 0.5
# Turns within this many degrees of a quarter turn read as that quarter turn (a photo and its
# slightly straightened copy are told apart by "turn").
TURN_DEGREES = 1.0

# A reading this strong passes the strictest similarity setting (grouping.verify_threshold(1.0)):
# the other reading (mirrored) is not tried, as it can change no verdict.
SURE_SCORE = 0.97

# SIFT descriptors are a 4 x 4 grid of 8-bin orientation histograms in the keypoint's own frame;
# a mirror image reflects that frame across the keypoint's direction: grid rows reverse and
# orientations negate. Mirrored descriptors are this permutation of the stored ones.
MIRROR = (np.arange(128).reshape(4, 4, 8)[::-1, :, :][:, :, (-np.arange(8)) % 8]).ravel()


@dataclass(frozen=True, slots=True)  # a large library keeps a million of them
class Match:
    score: float  # rank correlation of the aligned contents, 1.0 = identical up to tone; -1: no match
    how: str  # "frame" (both show the same), "crop" (one contains the other), "turn" (contains, turned
    # by a few degrees), "overlap" (views that partly overlap)
    transform: int  # 0 = as is; 1..7 = nearest rotation/mirror of the second image
    scale: float  # sqrt of the inner content's share of the outer content's area
    outer: str = "a"  # which side contains the other ("a" or "b")
    rect: tuple = ()  # (x, y, w, h) of the inner side's content in the outer side's signature


NO_MATCH = Match(-1.0, "frame", 0, 1.0)


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """t in 0..7: k = t % 4 quarter turns, mirrored when t >= 4."""
    b = np.rot90(a, t % 4)
    return np.ascontiguousarray(b[:, ::-1] if t >= 4 else b)


@dataclass(frozen=True)
class Prepared:
    """A photo's signature and content features, with what every comparison needs, made once
    per photo: a photo takes part in many pairs."""
    raw: np.ndarray  # the 96 px grayscale signature of the whole photo
    feats: content.Features | None
    key: bytes  # a digest of the pixels: orders the two sides of a pair (``judged``)
    views: dict = field(default_factory=dict, compare=False, repr=False)

    def mirrored(self) -> tuple[np.ndarray, np.ndarray]:
        """Points and descriptors of the mirrored view."""
        if "mirror" not in self.views:
            f = self.feats
            pts = f.points.copy()
            pts[:, 0] = f.view[0] - 1 - pts[:, 0]
            self.views["mirror"] = (pts, Descriptors(np.ascontiguousarray(f.descriptors[:, MIRROR])))
        return self.views["mirror"]

    def descriptors(self) -> "Descriptors":
        if "desc" not in self.views:
            self.views["desc"] = Descriptors(self.feats.descriptors)
        return self.views["desc"]


def prepare(sig) -> Prepared:
    """``sig``: (signature, packed features) as stored, or a signature alone (no features:
    it can verify nothing)."""
    raw, feats = (sig if isinstance(sig, tuple) else (sig, None))
    if isinstance(feats, (bytes, bytearray, memoryview)):
        feats = content.unpack(bytes(feats))
    if feats is not None and len(feats.points) < MIN_INLIERS:
        feats = None  # too little texture to verify anything (fog, a lens cap, all frame)
    key = hashlib.blake2b(raw.tobytes(), digest_size=16, person=b"%dx%d" % raw.shape).digest()
    return Prepared(raw, feats, key)


class Descriptors:
    """A side's descriptors with what matching needs of them, made once: a photo takes part in
    many pairs."""

    def __init__(self, desc: np.ndarray):
        self.desc = desc
        self.norms = (desc * desc).sum(1)  # squared lengths
        self.minus_2t = np.ascontiguousarray(-2 * desc.T)  # exact: integers times two


def ratio_matches(da, db) -> tuple[np.ndarray, np.ndarray]:
    """(query rows of ``da``, their matching rows of ``db``), in query order: each row's nearest
    row of ``db`` by L2 distance, kept where it passes the ratio test against the second nearest.

    The same matches as OpenCV's brute-force knnMatch (k=2) followed by the ratio test, at a
    fraction of the cost: one matrix product. Exact, not approximate: SIFT descriptors are
    integers 0..255 (content.unpack), so every squared distance and every partial sum of the
    product is an integer below 2**24, which float32 holds exactly in any summation order; the
    distances compared are the float32 square roots OpenCV compares. Ties need no rule: a best
    match that ties its second best fails the ratio test either way. ``da``, ``db``: arrays, or
    ``Descriptors`` made of them."""
    da = da if isinstance(da, Descriptors) else Descriptors(da)
    db = db if isinstance(db, Descriptors) else Descriptors(db)
    if len(da.desc) == 0 or len(db.desc) < 2:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    # |a - b|^2 = |a|^2 + (|b|^2 - 2 a.b); the first term is the same along a row, so the row's
    # nearest are found without it. Every value here is an integer of magnitude below 2**24.
    d = da.desc @ db.minus_2t
    d += db.norms
    rows = np.arange(len(da.desc))
    best = d.argmin(1)
    first = d[rows, best]
    d[rows, best] = np.inf
    second = d.min(1)
    sa = da.norms
    d0 = np.sqrt(np.maximum(sa + first, 0)).astype(np.float64)
    d1 = np.sqrt(np.maximum(sa + second, 0)).astype(np.float64)
    keep = d0 < RATIO * d1
    return rows[keep], best[keep]


def _ransac(pa: np.ndarray, da: Descriptors, pb: np.ndarray, db: Descriptors, least: int = MIN_INLIERS):
    """(inliers, 2x3 transform taking b's view points onto a's, inlier points on b and on a), or
    (matches, None, None) when fewer than ``least`` matches pass the ratio test (then fewer
    inliers could, and RANSAC is not run)."""
    qi, ti = ratio_matches(da, db)
    if len(qi) < max(least, 3):
        return len(qi), None, None
    src = pb[ti]
    dst = pa[qi]
    cv2.setRNGSeed(0)  # RANSAC samples at random: a pair's verdict must not depend on the run
    t, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX,
                                          maxIters=2000, confidence=0.995)
    if t is None:
        return 0, None, None
    mask = mask.ravel().astype(bool)
    return int(mask.sum()), t, (src[mask], dst[mask])


def _spread(t: np.ndarray, side_b: tuple, side_a: tuple, src: np.ndarray, dst: np.ndarray) -> float:
    """How far the inliers reach across the textured part of the smaller side that the other side
    also shows: the inliers' extent over the extent of all that side's keypoints lying in the
    overlap, the smaller of the two directions. ``t`` takes b's view onto a's; ``side_*``:
    (keypoints, view size); ``src``/``dst``: the inliers on b and on a."""
    m = _affine(t)
    (pb, vb), (pa, va) = side_b, side_a
    if vb[0] * vb[1] * abs(np.linalg.det(t[:, :2])) > va[0] * va[1]:  # a is the smaller side
        m, (pb, vb), (pa, va), src = np.linalg.inv(m), (pa, va), (pb, vb), dst
    on_other = pb @ m[:2, :2].T + m[:2, 2]
    inside = (on_other[:, 0] >= 0) & (on_other[:, 1] >= 0) & (on_other[:, 0] < va[0]) & (on_other[:, 1] < va[1])
    textured = pb[inside]
    if len(textured) < 2:
        return 0.0
    extent = np.maximum(np.ptp(textured, axis=0), 1e-6)
    return float(min(np.ptp(src, axis=0) / extent))


def _affine(m23: np.ndarray) -> np.ndarray:
    return np.vstack([m23, [0, 0, 1]])


def _to_sig(f: content.Features) -> np.ndarray:
    """3x3: view pixels -> signature pixels, both as pixel centres (OpenCV's keypoints and
    warpAffine): a pixel's centre sits half a pixel in from its edges, which scale with the view."""
    k = f.to_sig
    return np.array([[k, 0, 0.5 * k + f.box[0] - 0.5], [0, k, 0.5 * k + f.box[1] - 0.5], [0, 0, 1]], np.float64)


def _mirror_view(f: content.Features) -> np.ndarray:
    return np.array([[-1, 0, f.view[0] - 1], [0, 1, 0], [0, 0, 1]], np.float64)


def _box_mask(shape: tuple, box: tuple) -> np.ndarray:
    """1 on the whole pixels of ``box`` (x, y, w, h), 0 elsewhere."""
    m = np.zeros(shape, np.uint8)
    x, y, w, h = box
    x0, y0 = int(np.ceil(x)), int(np.ceil(y))
    x1, y1 = int(np.floor(x + w)), int(np.floor(y + h))
    if x1 > x0 and y1 > y0:
        m[y0:y1, x0:x1] = 1
    return m


def _rank_ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation: Pearson's on ranks, so any monotone tone curve leaves it at 1."""
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float32)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float32)
    ra -= ra.mean()
    rb -= rb.mean()
    n = float(np.linalg.norm(ra) * np.linalg.norm(rb))
    return float(ra @ rb) / n if n > 0 else 0.0


def _dihedral_of(lin: np.ndarray) -> tuple[int, float]:
    """The rotation/mirror t (dihedral(b, t) lines b up with a) nearest to the 2x2 linear part
    ``lin`` (b's signature -> a's), and the turn left over, in degrees."""
    mirrored = np.linalg.det(lin) < 0
    m = lin @ np.diag([-1.0, 1.0]) if mirrored else lin  # undo the mirror, applied first
    angle = np.degrees(np.arctan2(m[1, 0], m[0, 0]))  # image coordinates: y down
    k = int(np.round(angle / 90.0)) % 4
    rest = float((angle - 90.0 * np.round(angle / 90.0) + 180) % 360 - 180)
    # np.rot90 turns counter-clockwise as seen on screen, which is -90 degrees with y down; with
    # the mirror applied after the turn (dihedral), the turn it undoes runs the other way
    return (4 + k % 4 if mirrored else (-k) % 4), rest


def _content_blur(raw: np.ndarray, box: tuple, sigma: float) -> np.ndarray:
    """``raw`` blurred within its content box only (normalised convolution): a frame's white or
    black must not bleed into the content's edge, where a dark photo would take it for detail."""
    mask = _box_mask(raw.shape, box).astype(np.float32)
    num = cv2.GaussianBlur(raw.astype(np.float32) * mask, (0, 0), sigma)
    den = cv2.GaussianBlur(mask, (0, 0), sigma)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 1e-3)


def _aligned(pd: Prepared, ps: Prepared, m: np.ndarray, box_d: tuple, box_s: tuple):
    """The pixels of the two signatures where their contents overlap, with ``ps`` placed on
    ``pd`` by ``m`` (3x3, ps's signature -> pd's; it shrinks ps or keeps its size): (pd's, ps's),
    or (None, None) when the overlap is too small to say anything."""
    hd, wd = pd.raw.shape
    det = abs(np.linalg.det(m[:2, :2]))
    # Both sides are compared at the detail the coarser one keeps: ps is low-passed before it
    # shrinks (as a resize would, or its detail aliases), and both lose the last pixel of detail,
    # where two resamplings of different scale disagree.
    src = _content_blur(ps.raw, box_s, float(np.hypot(PIXEL_BLUR, 0.5 / np.sqrt(det)) if det < 1 else PIXEL_BLUR))
    warped = cv2.warpAffine(src, m[:2], (wd, hd), flags=cv2.INTER_LINEAR)
    mask = _box_mask((hd, wd), box_d) & cv2.warpAffine(_box_mask(ps.raw.shape, box_s), m[:2], (wd, hd),
                                                           flags=cv2.INTER_NEAREST)
    # a pixel along the overlap's edges is left out: the warp mixes in the outside there
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
    if inner.sum() < MIN_TEMPLATE * MIN_TEMPLATE:
        return None, None
    return _content_blur(pd.raw, box_d, PIXEL_BLUR)[inner], warped[inner]


def _judge(pa: Prepared, pb: Prepared, lin_view: np.ndarray) -> Match:
    """The pixel check and the reading of a transform (b's view -> a's view, 3x3)."""
    fa, fb = pa.feats, pb.feats
    m = _to_sig(fa) @ lin_view @ np.linalg.inv(_to_sig(fb))  # b's signature -> a's
    ha, wa = pa.raw.shape
    hb, wb = pb.raw.shape
    det = abs(np.linalg.det(m[:2, :2]))
    if not det > 0:
        return NO_MATCH
    content_b = _box_mask((hb, wb), fb.box)
    mask_b = cv2.warpAffine(content_b, m[:2], (wa, ha), flags=cv2.INTER_NEAREST)
    mask_a = _box_mask((ha, wa), fa.box)
    area_a = float(mask_a.sum())
    area_b = float(content_b.sum()) * det  # b's content, in a's pixels
    both = mask_a & mask_b
    shared = float(both.sum())
    if area_a <= 0 or area_b <= 0 or shared <= 0:
        return NO_MATCH
    cover_a, cover_b = shared / area_a, shared / area_b  # share of each content the other shows
    if max(cover_a, cover_b) < MIN_OVERLAP:
        return NO_MATCH
    # Pixels are compared where the shared part has fewer of them (the other side shrinks onto
    # it): enlarging the coarser side would compare its blur with the other's detail.
    if det <= 1:
        va, vb = _aligned(pa, pb, m, fa.box, fb.box)
    else:
        vb, va = _aligned(pb, pa, np.linalg.inv(m), fb.box, fa.box)
    if va is None or va.std() < MIN_LEVELS or vb.std() < MIN_LEVELS:
        return NO_MATCH  # too small, or the shared part is flat: it says nothing
    score = _rank_ncc(va, vb)
    t, rest = _dihedral_of(m[:2, :2])
    if cover_a >= COVER and cover_b >= COVER:
        how, outer = "frame", "a"
    elif cover_b >= COVER:  # all of b lies in a
        how, outer = "crop", "a"
    elif cover_a >= COVER:
        how, outer = "crop", "b"
    else:
        how, outer = "overlap", "a"
    if how == "crop" and abs(rest) > TURN_DEGREES:
        how = "turn"
    ys, xs = np.nonzero(both)
    rect = ()
    if how in ("frame", "crop") and t == 0:
        if outer == "a":
            rect = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        else:  # a's content placed on b's signature
            inv = np.linalg.inv(m)
            x, y, w, h = fa.box
            corners = (inv @ np.array([[x, x + w, x, x + w], [y, y, y + h, y + h], [1, 1, 1, 1]]))[:2]
            x0, y0 = np.clip(corners.min(axis=1), 0, None)
            x1, y1 = np.minimum(corners.max(axis=1), (wb, hb))
            rect = (int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)))
    scale = float(np.sqrt(min(area_a, area_b) / max(area_a, area_b)))
    return Match(score, how, t, scale, outer, rect)


def best_match(a, b, cosine: float = 1.0, trace: list | None = None) -> Match:
    """The strongest evidence that ``a`` and ``b`` (stored (signature, features) or
    ``prepare``d) show the same photo. ``cosine`` is kept for callers; the decision does not
    depend on it. ``trace``: gets each reading's figures (as is, then mirrored): inliers, spread
    and the pixel score, None for a check that did not run, and the pixel score of RANSAC's
    transform whatever the gates said (bench/accuracy.py's margins)."""
    pa = a if isinstance(a, Prepared) else prepare(a)
    pb = b if isinstance(b, Prepared) else prepare(b)
    if pa.feats is None or pb.feats is None:
        return NO_MATCH
    fa, fb = pa.feats, pb.feats
    best = NO_MATCH
    for mirrored in (False, True):
        if mirrored and best.score >= SURE_SCORE and trace is None:
            break  # verified at every setting as is: the mirrored reading can change no verdict
        pts_b, desc_b = pb.mirrored() if mirrored else (fb.points, pb.descriptors())
        n, t, inl = _ransac(fa.points, pa.descriptors(), pts_b, desc_b, MIN_INLIERS if trace is None else 3)
        reading = {"mirrored": mirrored, "inliers": n, "spread": None, "score": None, "unchecked_score": None}
        lin = None if t is None else _affine(t) @ (_mirror_view(fb) if mirrored else np.eye(3))
        if trace is not None:
            trace.append(reading)
            if lin is not None:  # what the pixel check would say of this transform, gates or not
                reading["unchecked_score"] = _judge(pa, pb, lin).score
        if t is None or n < MIN_INLIERS:
            continue
        src, dst = inl
        reading["spread"] = _spread(t, (pts_b, fb.view), (fa.points, fa.view), src, dst)
        if reading["spread"] < MIN_SPREAD:
            continue
        m = _judge(pa, pb, lin)
        reading["score"] = m.score
        if m.score > best.score:
            best = m
    return best


def inverse(t: int) -> int:
    """The dihedral transform that undoes ``t``: a quarter turn back; a mirrored one undoes itself."""
    return t if t >= 4 else (4 - t) % 4


def judged(pa: Prepared, pb: Prepared, cosine: float = 1.0) -> Match:
    """best_match with the two sides in an order fixed by their pixels, told as seen from ``pa``:
    matching and RANSAC are not exactly symmetric, and the same two files scanned from another
    folder (other ids) must get the same verdict."""
    if pb.key >= pa.key:
        return best_match(pa, pb, cosine=cosine)
    return swapped(best_match(pb, pa, cosine=cosine))


def swapped(m: Match) -> Match:
    """The match ``m`` of (a, b) as seen from b: the transform undone, the outer side swapped."""
    return replace(m, transform=inverse(m.transform), outer="b" if m.outer == "a" else "a")


def covers(m: Match, side: str) -> bool:
    """Does side ``side`` ("a" or "b") of a verified match show everything the other side shows?

    Same frame (under any turn or mirror): both sides cover each other. A crop, zoom or slightly
    turned crop: only the outer side covers the inner one. Overlaps cover nothing.
    """
    if m.how == "frame":
        return True
    return m.how in ("crop", "turn") and m.outer == side


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
# Prepared photos a verifying process keeps, the most recently used: each holds its descriptors as
# float32, as is and mirrored (about 260 kB). Pairs come in locality order (grouping.py), so a
# photo's pairs are close together and a few hundred cover them.
PREPARED_KEPT = 256


def verify_chunk(items, sigs: dict | None = None, signature=None, prepared: OrderedDict | None = None,
                 progress=None) -> list[tuple[int, int, float, Match]]:
    """judged for each (a, b, cosine) in ``items``, signatures from ``sigs`` (id -> array)
    or ``signature(id)``. A top-level function so worker processes can run it on a chunk."""
    get = sigs.__getitem__ if sigs is not None else signature
    prepared = OrderedDict() if prepared is None else prepared
    out = []
    for n, (a, b, cos) in enumerate(items, 1):
        for i in (a, b):
            if i in prepared:
                prepared.move_to_end(i)
            else:
                prepared[i] = prepare(get(i))
                if len(prepared) > PREPARED_KEPT:
                    prepared.popitem(last=False)
        out.append((a, b, cos, judged(prepared[a], prepared[b], cosine=cos)))
        if progress is not None and n % 50 == 0:
            progress.advance(50)
    if progress is not None and len(out) % 50:
        progress.advance(len(out) % 50)
    return out
