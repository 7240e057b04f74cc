"""What a photo shows, apart from its frame: the content box and the local features in it.

Runs in the decode workers, once per photo (no torch, no Qt). Verification (verify.py) decides
on these, never on a frame: a white border, letterbox bars or a print mat are the same for many
different photos, so anything they contribute to a comparison is evidence of nothing.

- ``content_box``: flat bands of one colour along the edges are peeled off (a frame).
- ``features``: SIFT keypoints of the content, on a rank-equalised view, packed with the
  geometry that maps them onto the photo's 96 px signature.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

cv2.setNumThreads(1)

# A frame line is one flat colour: JPEG noise and resampling move flat colour by a few grey
# levels, and up to 2 % of a line may be ringing next to the content or a speck of dust. A line
# of the photo itself (texture, a horizon, stars) has more than 2 % of its pixels off its own
# median by more than this, so it stops the peeling.
FRAME_TOLERANCE = 8
FRAME_LINE_SHARE = 0.98
# Peeling stops short of this share of each side, so that a photo that is flat across most of
# its height (fog, a wall) keeps a box to compare; a frame deeper than this is a picture of
# something else. The deepest frames we know: a print mat with a deep bottom edge (20 % of the
# height), letterbox bars of a 2:1 photo centred on a square (25 % a side).
FRAME_MAX_SHARE = 0.4

# The local features are found on the content at this long side (px). Each photo keeps its
# N_FEATURES strongest keypoints. 256 px keeps the crop of 60 % of the area at about 200 px,
# where SIFT still finds structure, and keeps the stored features about 34 kB a photo.
VIEW_SIDE = 256
N_FEATURES = 256
# SIFT's default contrast threshold (0.04) finds almost nothing in a dark or low-contrast
# photo after equalisation noise is suppressed by resizing; the count cap keeps the strongest
# N_FEATURES anyway, so a low threshold only helps photos that would otherwise have none.
CONTRAST_THRESHOLD = 0.01

# The content squeezed to SQUARE x SQUARE px, equalised: a photo's quarter turn squeezes to the
# same square turned, whatever its aspect, so turned copies can be proposed by comparing squares
# under the four turns (candidates.turned_candidates), which the network's vectors cannot do.
SQUARE = 16

_HEADER = struct.Struct("<4sHHH6f")  # magic, view w, view h, count, box (x, y, w, h), view->sig, content share
MAGIC = b"SFT2"


@dataclass(frozen=True)
class Features:
    """Keypoints of a photo's content and where they lie on its signature."""
    points: np.ndarray  # (n, 2) float32, in view pixels
    descriptors: np.ndarray  # (n, 128) float32 (SIFT; integral values 0..255)
    view: tuple  # (w, h) of the view the points are in
    box: tuple  # (x, y, w, h) of the content on the signature, in signature pixels
    to_sig: float  # signature pixels per view pixel
    square: np.ndarray  # (SQUARE, SQUARE) uint8: the equalised content, squeezed
    share: float = 1.0  # the content's share of the photo's area (1.0: no frame)


def content_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of ``gray`` without its frame: per side, the lines of one flat colour (that
    of the outermost line), up to FRAME_MAX_SHARE of the side."""
    h, w = gray.shape
    g = gray.astype(np.int16)
    peel = {"t": 0, "b": 0, "l": 0, "r": 0}

    def line(side: str, k: int) -> np.ndarray:
        t, b, l, r = peel["t"], h - peel["b"], peel["l"], w - peel["r"]
        if side == "t":
            return g[t + k, l:r]
        if side == "b":
            return g[b - 1 - k, l:r]
        if side == "l":
            return g[t:b, l + k]
        return g[t:b, r - 1 - k]

    for side in "tblr":  # top and bottom first: a side's lines then span only the content
        limit = int(FRAME_MAX_SHARE * (h if side in "tb" else w))
        first = line(side, 0)
        if not first.size:
            continue
        colour = int(np.median(first))
        k = 0
        while k < limit:
            ln = line(side, k)
            if np.count_nonzero(np.abs(ln - colour) <= FRAME_TOLERANCE) < FRAME_LINE_SHARE * ln.size:
                break
            k += 1
        peel[side] = k
    return peel["l"], peel["t"], w - peel["l"] - peel["r"], h - peel["t"] - peel["b"]


_sift = None


def _detector():
    global _sift
    if _sift is None:
        _sift = cv2.SIFT_create(nfeatures=N_FEATURES, contrastThreshold=CONTRAST_THRESHOLD)
    return _sift


def features(gray: np.ndarray, sig_shape: tuple) -> Features:
    """The local features of the content of ``gray`` (the decoded photo, any size), placed on
    its signature of ``sig_shape`` (h, w), which shows the whole of ``gray``."""
    h, w = gray.shape
    x, y, cw, ch = content_box(gray)
    content = gray[y:y + ch, x:x + cw]
    s = min(1.0, VIEW_SIDE / max(cw, ch))
    vw, vh = max(1, round(cw * s)), max(1, round(ch * s))
    view = cv2.resize(content, (vw, vh), interpolation=cv2.INTER_AREA) if s < 1.0 else content
    # Equalised: brightness, contrast, gamma and a dark version keep the order of the pixels,
    # and so the same equalised view.
    view = cv2.equalizeHist(np.ascontiguousarray(view))
    kps, desc = _detector().detectAndCompute(view, None)
    pts = np.float32([k.pt for k in kps]).reshape(-1, 2)
    desc = np.zeros((0, 128), np.float32) if desc is None else desc
    sig_scale = sig_shape[1] / w  # the signature shows the whole photo
    box = (x * sig_scale, y * sig_scale, cw * sig_scale, ch * sig_scale)
    square = cv2.resize(view, (SQUARE, SQUARE), interpolation=cv2.INTER_AREA)
    return Features(pts, desc, (vw, vh), box, cw / vw * sig_scale, square, cw * ch / (w * h))


def pack(f: Features) -> bytes:
    head = _HEADER.pack(MAGIC, f.view[0], f.view[1], len(f.points), *f.box, f.to_sig, f.share)
    pts = np.round(f.points * 64).astype(np.uint16)  # 1/64 px: far finer than RANSAC's tolerance
    return head + f.square.tobytes() + pts.tobytes() + np.clip(f.descriptors, 0, 255).astype(np.uint8).tobytes()


def unpack(data: bytes) -> Features:
    magic, vw, vh, n, bx, by, bw, bh, to_sig, share = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not a Doppel feature record")
    o = _HEADER.size
    square = np.frombuffer(data, np.uint8, SQUARE * SQUARE, o).reshape(SQUARE, SQUARE)
    o += SQUARE * SQUARE
    pts = np.frombuffer(data, np.uint16, 2 * n, o).reshape(n, 2).astype(np.float32) / 64
    desc = np.frombuffer(data, np.uint8, 128 * n, o + 4 * n).reshape(n, 128).astype(np.float32)
    return Features(pts, desc, (vw, vh), (bx, by, bw, bh), to_sig, square, share)


def square_of(data: bytes) -> tuple[np.ndarray, float]:
    """Just the content's square and its share of the photo, from packed features (no
    descriptors unpacked)."""
    if data[:4] != MAGIC:
        raise ValueError("not a Doppel feature record")
    share = _HEADER.unpack_from(data)[-1]
    return np.frombuffer(data, np.uint8, SQUARE * SQUARE, _HEADER.size).reshape(SQUARE, SQUARE), share
