"""Verification of candidate pairs from their stored grayscale signatures.

Vector search only proposes; these checks decide. Each compares zero-mean, unit-variance
grayscale thumbnails, so brightness, contrast, saturation and grayscale edits do not matter,
while a different photo of the same scene (a burst frame, the neighbouring strip of a
panorama) does not line up pixel for pixel and scores low.

- ``same_frame``: both images show the same frame (resize, re-encode, colour edits, watermark).
- ``containment``: one image is a crop or zoom of the other, or the other has a border; found by
  normalised cross-correlation of the smaller view slid over the larger one at a range of scales.
- Either check is also tried against the 8 rotations/mirrors of one side (90° turns, mirrors).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

cv2.setNumThreads(1)

FRAME_SIDE = 32
MIN_TEMPLATE = 20  # px of the 96 px signature: smaller crops carry too little evidence
MIN_STD = 4.0  # a near-flat template (fog, a white wall) matches anything


@dataclass(frozen=True)
class Match:
    score: float  # normalised cross-correlation, 1.0 = identical up to brightness/contrast
    how: str  # "frame", "crop" (one contains the other)
    transform: int  # 0 = as is; 1..7 = rotation/mirror applied to the second image
    scale: float  # fraction of the larger image's width the smaller one covers


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """t in 0..7: k = t % 4 quarter turns, mirrored when t >= 4."""
    b = np.rot90(a, t % 4)
    return np.ascontiguousarray(b[:, ::-1] if t >= 4 else b)


def _z(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    a -= a.mean()
    n = np.linalg.norm(a)
    return a / n if n > 0 else a


def same_frame(a: np.ndarray, b: np.ndarray) -> float:
    ra = cv2.resize(a, (FRAME_SIDE, FRAME_SIDE), interpolation=cv2.INTER_AREA)
    rb = cv2.resize(b, (FRAME_SIDE, FRAME_SIDE), interpolation=cv2.INTER_AREA)
    if ra.std() < MIN_STD / 2 or rb.std() < MIN_STD / 2:
        return 1.0 if np.abs(ra.astype(int) - rb.astype(int)).mean() < 3 else 0.0
    return float((_z(ra) * _z(rb)).sum())


def _aspect(a: np.ndarray) -> float:
    return a.shape[1] / a.shape[0]


def contains(outer: np.ndarray, inner: np.ndarray, min_scale: float = 0.4) -> tuple[float, float]:
    """Best NCC of ``inner`` resized onto a sub-window of ``outer``, and at which scale."""
    oh, ow = outer.shape
    ih, iw = inner.shape
    best, best_s = -1.0, 0.0
    outer_f = outer.astype(np.float32)
    s = 1.0
    while s >= min_scale:
        tw = int(round(s * ow))
        th = int(round(tw * ih / iw))
        if th > oh:  # inner is relatively taller: fit its height instead
            th = int(round(s * oh))
            tw = int(round(th * iw / ih))
        if tw < MIN_TEMPLATE or th < MIN_TEMPLATE:
            break
        if tw <= ow and th <= oh:
            t = cv2.resize(inner, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)
            if t.std() >= MIN_STD:
                r = cv2.matchTemplate(outer_f, t, cv2.TM_CCOEFF_NORMED)
                v = float(r.max())
                if v > best:
                    best, best_s = v, s
        s *= 0.95
    return best, best_s


def best_match(a: np.ndarray, b: np.ndarray, good_enough: float = 0.985) -> Match:
    """The strongest evidence that ``a`` and ``b`` show the same photo.

    Same-frame checks under all 8 rotations/mirrors are cheap, so they go first; the sliding
    crop search (the costly part) runs only as is and under the best-fitting transform.
    """
    best = Match(-1.0, "frame", 0, 1.0)
    frame_t = 0
    frame_best = -2.0
    for t in range(8):
        bt = dihedral(b, t)
        if abs(np.log(_aspect(a) / _aspect(bt))) < 0.08:
            v = same_frame(a, bt)
            if v > frame_best:
                frame_best, frame_t = v, t
            if v > best.score:
                best = Match(v, "frame", t, 1.0)
    if best.score >= good_enough:
        return best
    for t in sorted({0, frame_t}):
        bt = dihedral(b, t)
        v1, s1 = contains(a, bt)
        v2, s2 = contains(bt, a)
        v, sc = (v1, s1) if v1 >= v2 else (v2, s2)
        if v > best.score + 1e-6:
            best = Match(v, "crop" if sc < 0.985 else "frame", t, sc)
    return best
