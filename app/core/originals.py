"""What tells the original of a group from its edited copies.

Two kinds of evidence, neither of them a file size (an edit that adds bytes must not win):

- Facts of each photo, read when it is decoded (``photo_facts``): is it in colour, which camera
  and date its EXIF names, is it a camera RAW. Kept in the library's catalog.
- What verification found between the members of a group (``edits``): which copy another one
  contains with more around it (a crop or zoom), and which copies are turned or mirrored against
  the orientation most of the group shares.

ranking.py orders a group's members on these; the card and the report show them.
"""
from __future__ import annotations

from collections import Counter, deque
from functools import lru_cache
from typing import Optional

import numpy as np

from app.core import verify

# A photo is grayscale when 99 % of its pixels have their three channels within this many levels
# (of 255) of each other: a gray image saved as colour JPEG keeps its channels within a few levels
# (chroma subsampling, rounding), while a colour photo has more than 1 % of its pixels further
# apart. Used only between members of one group: a colour copy beside a grayscale one.
GRAY_CHROMA = 8
# A member that another member shows whole, with more around it, is a crop or zoom of it when its
# content is less than this share of the other's side: verification's placement carries a pixel
# or two of error on a 96 px signature (verify.COVER's rule), so nearer 1 is the same frame.
CROP_SIDE = 0.95

# Tone and colour: the brightness (mean of the photo's gray levels, 0..255), contrast (their
# spread) and colour (chroma, above) that most members of a group share are the original's:
# resizes, re-encodes and conversions keep them (within a level or two, a few percent), while the
# gentlest brightness edit we keep apart (x0.9) moves the mean by about ten levels.
TONE_SHIFT = 6.0
CONTRAST_SHARE = 0.12
CHROMA_SHARE = 0.25

# Overlays (a watermark, a caption, a logo): two copies of the same frame are compared at this
# long side, tone matched, and where they differ by more than OVERLAY_LEVELS (and more than
# four times their typical difference) on a small share of the picture, the copy with clearly more
# edges there carries the overlay: text and logos add strokes; resampling and re-encoding remove
# detail, never add it. Above OVERLAY_MAX_SHARE the difference is not local (another edit).
OVERLAY_SIDE = 512
OVERLAY_LEVELS = 24.0
OVERLAY_MIN_SHARE = 0.0005
OVERLAY_MAX_SHARE = 0.2
OVERLAY_EDGES = 2.0

# Formats by how near they are to what a camera wrote: RAW, then what cameras and phones write,
# then conversions (PNG, WebP, GIF, BMP ... are exports, never a camera's own file).
CAMERA_FORMATS = {"JPEG", "MPO", "HEIF", "HEIC", "AVIF", "TIFF"}

EDIT_LABELS = {
    "grayscale": "grayscale copy",
    "crop": "crop or zoom",
    "framed": "added border or frame",
    "mirrored": "mirrored",
    "turned": "turned",
    "tone": "brightness or contrast changed",
    "colour": "colours changed",
    "overlay": "watermark or overlay",
}


def photo_facts(rgb, exif, raw: bool) -> dict:
    """``rgb``: the decoded photo (PIL RGB, any size); ``exif``: Pillow's Exif of the file, or None."""
    small = rgb.copy()
    small.thumbnail((128, 128))
    a = np.asarray(small, dtype=np.int16)
    spread = (a.max(axis=2) - a.min(axis=2)) if a.size else np.zeros(1)
    camera = taken = ""
    flagged = False
    if exif is not None:
        try:
            flagged = int(exif.get(0x0112, 1) or 1) != 1
        except (TypeError, ValueError):
            flagged = False
        try:
            make = str(exif.get(0x010F, "") or "").strip(" \x00")
            model = str(exif.get(0x0110, "") or "").strip(" \x00")
            camera = model if make and model.lower().startswith(make.split()[0].lower()) else f"{make} {model}".strip()
            taken = str(exif.get_ifd(0x8769).get(0x9003, "") or "").strip(" \x00")
        except Exception:  # damaged EXIF: no provenance, the photo is still read
            camera = taken = ""
    gray = np.asarray(small.convert("L"), dtype=np.float32)
    return {"chroma": round(float(np.percentile(spread, 99)), 2), "camera": camera[:80], "taken": taken[:32],
            "raw": bool(raw), "flagged": flagged, "tone": [round(float(gray.mean()), 2), round(float(gray.std()), 2)]}


def is_gray(facts: Optional[dict]) -> Optional[bool]:
    if not facts or "chroma" not in facts:
        return None
    return facts["chroma"] < GRAY_CHROMA


def provenance(facts: Optional[dict], fmt: str) -> int:
    """0 a camera RAW, 1 a camera's file (EXIF camera and date, a camera format), 2 a camera
    format without them, 3 a conversion (PNG, WebP, ...)."""
    facts = facts or {}
    if facts.get("raw"):
        return 0
    camera_format = (fmt or "").upper() in CAMERA_FORMATS
    if camera_format and facts.get("camera") and facts.get("taken"):
        return 1
    return 2 if camera_format else 3


# -- the dihedral group: t in 0..7 as verify.dihedral applies it ------------------------------
_COMPOSE: list[list[int]] = []


def compose(s: int, t: int) -> int:
    """The transform that applies ``s`` then ``t`` (verify.dihedral's t in 0..7), read off a probe."""
    if not _COMPOSE:
        dihedral = verify.dihedral
        probe = np.arange(6).reshape(2, 3)

        def seen(a: np.ndarray) -> bytes:
            return a.tobytes() + bytes(a.shape)

        of = {seen(dihedral(probe, t)): t for t in range(8)}
        _COMPOSE.extend([[of[seen(dihedral(dihedral(probe, a), b))] for b in range(8)] for a in range(8)])
    return _COMPOSE[s][t]


def edits(ids: list[int], matches: dict, facts: dict[int, dict], fmt: dict[int, str]) -> dict[int, list[str]]:
    """Labels (EDIT_LABELS keys, grayscale and crops and orientation; frames are the keeper's own
    fact) of each of ``ids`` against the rest of its group. ``matches``: (a, b) -> verify.Match of
    verified pairs among them (dihedral(b, t) lines b up with a)."""
    out: dict[int, list[str]] = {i: [] for i in ids}
    grays = {i: is_gray(facts.get(i)) for i in ids}
    if any(g is False for g in grays.values()):  # beside a colour copy, a gray one is an edit
        for i, g in grays.items():
            if g:
                out[i].append("grayscale")
    _tone_labels(ids, facts, grays, out)
    for (a, b), m in matches.items():
        if m.how in ("crop", "turn") and m.scale < CROP_SIDE:
            inner = b if m.outer == "a" else a
            if inner in out and "crop" not in out[inner]:
                out[inner].append("crop")
    # Orientation: each member's transform onto one member, through the verified pairs; the
    # orientation most members share is upright. A tie is broken by the camera's own files (their
    # EXIF orientation is applied on decoding), else left undecided: nothing is labelled.
    links: dict[int, list[tuple[int, int]]] = {i: [] for i in ids}
    for (a, b), m in matches.items():
        if m.how in ("frame", "crop", "turn") and a in links and b in links:
            links[a].append((b, m.transform))  # o[b] = compose(t, o[a])
            links[b].append((a, verify.inverse(m.transform)))
    orient: dict[int, int] = {}
    for start in ids:
        if start in orient:
            continue
        orient[start] = 0
        todo = deque([start])
        while todo:
            x = todo.popleft()
            for y, t in links[x]:
                if y not in orient:
                    orient[y] = compose(t, orient[x])
                    todo.append(y)
    if len({orient[i] for i in ids}) > 1:
        votes = Counter(orient[i] for i in ids)
        top = max(votes.values())
        best = [o for o, n in votes.items() if n == top]
        if len(best) > 1:
            camera = Counter(orient[i] for i in ids if provenance(facts.get(i), fmt.get(i, "")) <= 1
                             and orient[i] in best)
            best = [o for o, n in camera.items() if n == max(camera.values())] if camera else best
        if len(best) == 1:
            up = best[0]
            for i in ids:
                r = compose(orient[i], verify.inverse(up))
                if r >= 4:
                    out[i].append("mirrored")
                elif r:
                    out[i].append("turned")
    return out


def _tone_labels(ids: list[int], facts: dict[int, dict], grays: dict, out: dict[int, list[str]]) -> None:
    """Label the members whose brightness, contrast or colour is off what most of the group shares
    (the median of the members that show the whole picture: a crop's own mean differs)."""
    tones = {i: facts[i]["tone"] for i in ids if facts.get(i) and facts[i].get("tone")}
    whole = [i for i in tones if "crop" not in out[i]]
    if len(whole) < 2:
        return
    usual = (float(np.median([tones[i][0] for i in whole])), float(np.median([tones[i][1] for i in whole])))
    for i in whole:
        if tone_change(tones[i], usual):
            out[i].append("tone")
    colour = [i for i in whole if grays.get(i) is False]
    if len(colour) >= 2:
        c = float(np.median([facts[i]["chroma"] for i in colour]))
        for i in colour:
            if colour_changed(facts[i]["chroma"], c):
                out[i].append("colour")


def tone_change(tone, ref) -> str:
    """How ``tone`` (mean, spread of the gray levels) differs from ``ref``'s: "brighter",
    "darker", "contrast changed", or "" (within what resizing and re-encoding move)."""
    if abs(tone[0] - ref[0]) > TONE_SHIFT:
        return "brighter" if tone[0] > ref[0] else "darker"
    if ref[1] > 0 and abs(tone[1] / ref[1] - 1) > CONTRAST_SHARE:
        return "contrast changed"
    return ""


def colour_changed(chroma: float, ref: float) -> bool:
    """Is a colour photo's chroma off ``ref`` by more than resizing and re-encoding move it?"""
    return abs(chroma - ref) > CHROMA_SHARE * max(ref, GRAY_CHROMA)


@lru_cache(maxsize=32)  # a keeper is compared with each of its copies in turn
def _gray_view(path: str, size: int, mtime_ns: int) -> Optional[np.ndarray]:
    from PIL import Image, ImageOps

    from app.core.decode import _to_rgb

    with Image.open(path) as im:
        im.draft("RGB", (OVERLAY_SIDE, OVERLAY_SIDE))
        im = ImageOps.exif_transpose(im) or im
        g = _to_rgb(im).convert("L")
        g.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE))
        return np.asarray(g, dtype=np.float32)


def _matched_tone(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``b``'s gray levels mapped onto ``a``'s by rank, each level of b to the mean of a's levels
    at its ranks (a level b holds for many pixels, as clipped highlights, stays one level)."""
    levels = np.clip(np.rint(b), 0, 255).astype(np.int64).ravel()
    ranked = np.sort(a.ravel()).astype(np.float64)
    count = np.bincount(levels, minlength=256)
    ends = np.concatenate([[0], np.cumsum(count)])
    sums = np.concatenate([[0.0], np.cumsum(ranked)])
    lut = np.where(count > 0, (sums[ends[1:]] - sums[ends[:-1]]) / np.maximum(count, 1), 0.0)
    return lut[levels].reshape(b.shape).astype(np.float32)


_OVERLAYS: dict = {}


def overlay_side(a, b) -> str:
    """Which of two copies of the same frame, upright (rows a, b: path, size, mtime_ns), carries
    an overlay the other lacks: "a", "b", or "" (neither, or it cannot tell)."""
    import cv2

    key = (a.path, a.size, a.mtime_ns, b.path, b.size, b.mtime_ns)
    if key in _OVERLAYS:
        return _OVERLAYS[key]
    side = ""
    try:
        ga, gb = _gray_view(a.path, a.size, a.mtime_ns), _gray_view(b.path, b.size, b.mtime_ns)
        if ga.size and gb.size and abs(ga.shape[0] / ga.shape[1] - gb.shape[0] / gb.shape[1]) < 0.02:
            gb = _matched_tone(cv2.resize(gb, (ga.shape[1], ga.shape[0]), interpolation=cv2.INTER_AREA), ga)
            diff = np.abs(cv2.GaussianBlur(ga, (0, 0), 1.0) - cv2.GaussianBlur(gb, (0, 0), 1.0))
            mask = diff > max(OVERLAY_LEVELS, 4 * float(np.median(diff)))
            if OVERLAY_MIN_SHARE <= mask.mean() <= OVERLAY_MAX_SHARE:
                near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                ea = float(np.abs(cv2.Laplacian(ga, cv2.CV_32F))[near].sum())
                eb = float(np.abs(cv2.Laplacian(gb, cv2.CV_32F))[near].sum())
                side = "b" if eb > OVERLAY_EDGES * ea else "a" if ea > OVERLAY_EDGES * eb else ""
    except Exception:  # a file gone or unreadable since the scan: nothing is claimed
        side = ""
    if len(_OVERLAYS) > 100_000:
        _OVERLAYS.clear()
    _OVERLAYS[key] = side
    return side
