"""Camera RAW files: recognised by extension and by content, decoded with LibRaw (rawpy).

A RAW is the camera's master. Most RAW formats are TIFF-based and carry a small preview in their
first directory, which Pillow reads as if it were the photo: 256 px for a 24 MP sensor. Doppel
never decides on that preview. A RAW is decoded by LibRaw, from its embedded full-size preview
(the camera's own rendering) or, when it has none that large, a half-size demosaic; its size is
the sensor's. A RAW that LibRaw cannot read is a problem, never grouped.
"""
from __future__ import annotations

import io
import os
import struct
from typing import Optional

import numpy as np

RAW_EXTENSIONS = {".dng", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                  ".raf", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mrw", ".mos",
                  ".rwl", ".raw"}
DNG_VERSION_TAG = 50706

# An embedded preview stands for the photo when its long side is at least this share of the
# sensor's: cameras embed either a full-size rendering or a thumbnail of a few hundred pixels,
# nothing in between, so the rule only has to tell those two apart.
FULL_PREVIEW_SHARE = 0.5


def _tiff_has_tag(head: bytes, tag: int) -> bool:
    """Does the first directory of the TIFF whose first bytes are ``head`` hold ``tag``?"""
    if head[:4] == b"II*\x00":
        end = "<"
    elif head[:4] == b"MM\x00*":
        end = ">"
    else:
        return False
    (offset,) = struct.unpack(end + "I", head[4:8])
    if offset + 2 > len(head):
        return False
    (count,) = struct.unpack(end + "H", head[offset:offset + 2])
    for i in range(min(count, 512)):
        at = offset + 2 + 12 * i
        if at + 2 > len(head):
            return False
        if struct.unpack(end + "H", head[at:at + 2])[0] == tag:
            return True
    return False


def is_raw(path: str, head: bytes) -> bool:
    """A RAW by its extension, or by content: a DNG's version tag, or a RAW format's own magic
    (Fujifilm RAF, Olympus ORF, Panasonic RW2, Canon CR3)."""
    if os.path.splitext(path)[1].lower() in RAW_EXTENSIONS or sniff(head):
        return True
    return _tiff_has_tag(head[:65536], DNG_VERSION_TAG)


def sniff(head: bytes) -> bool:
    """RAW magic the walk would not otherwise take for an image (TIFF-based RAWs already are)."""
    return head.startswith(b"FUJIFILMCCD-RAW") or head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00") \
        or head[4:12] == b"ftypcrx "


def decode(data: bytes, max_side: Optional[int] = None):
    """(RGB PIL image, sensor width, sensor height, error). ``error`` is "" on success; on
    failure the rest is (None, 0, 0)."""
    try:
        import rawpy
    except ImportError:  # pragma: no cover - a dependency; a broken install says so per file
        return None, 0, 0, "RAW file, and LibRaw (rawpy) is not installed"
    from PIL import Image

    try:
        with rawpy.imread(io.BytesIO(data)) as r:
            s = r.sizes
            width, height = int(s.width), int(s.height)
            if s.flip in (5, 6):  # LibRaw's flip: the sensor is read turned a quarter
                width, height = height, width
            if width <= 0 or height <= 0:
                return None, 0, 0, "RAW file with no image data LibRaw can read"
            im = None
            try:
                thumb = r.extract_thumb()
            except (rawpy.LibRawError, ValueError):
                thumb = None
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                try:
                    p = Image.open(io.BytesIO(thumb.data))
                    if max(p.size) >= FULL_PREVIEW_SHARE * max(width, height):
                        if max_side:
                            p.draft("RGB", (max_side, max_side))
                        p.load()
                        im = p.convert("RGB")
                        # previews are stored as the sensor reads; LibRaw's flip turns them upright
                        turn = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90,
                                6: Image.Transpose.ROTATE_270}.get(s.flip)
                        if turn is not None:
                            im = im.transpose(turn)
                except (OSError, ValueError):
                    im = None
            if im is None:
                rgb = r.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
                im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
            return im, width, height, ""
    except Exception as exc:  # LibRaw's errors are many classes; every one is a problem entry
        reason = exc.args[0] if exc.args else type(exc).__name__
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return None, 0, 0, f"RAW file LibRaw cannot read ({reason}); not grouped by its preview"
