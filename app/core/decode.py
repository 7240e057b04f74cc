"""Decode one file into what the fingerprint stage needs; runs in worker processes.

No torch and no Qt here, so worker processes start fast. Every failure becomes a ``problem``
string on the result: a bad file never raises out of ``decode_file``.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from app.core import content, originals, raw
from app.core.walk import FileEntry

MODEL_SIZE = 224
THUMB_SIDE = 96  # grayscale signature used by the verification stage
# Anything above this is refused before decoding: a 50,000 x 50,000 header is a decompression
# bomb, while a real 100+ MP panorama still fits.
MAX_PIXELS = 300_000_000
MAX_FILE_BYTES = 2 << 30

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

try:  # HEIC/HEIF: a dependency; an install without it still reads everything else
    from pillow_heif import register_heif_opener  # type: ignore

    register_heif_opener()
except Exception:  # pragma: no cover - a broken or missing pillow-heif
    pass


@dataclass
class Decoded:
    entry: FileEntry
    sha256: str = ""
    width: int = 0
    height: int = 0
    format: str = ""
    model_input: Optional[np.ndarray] = None  # (224, 224, 3) uint8
    thumb: Optional[np.ndarray] = None  # (h, w) uint8, long side THUMB_SIDE
    features: Optional[bytes] = None  # content.pack()ed local features of the content
    facts: dict = field(default_factory=dict)  # originals.photo_facts: colour, camera, date, RAW
    problem: str = ""
    extra: dict = field(default_factory=dict)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB: alpha over white, 16-bit scaled (not clipped), CMYK converted."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = a.max() if a.size else 0
        scale = 255.0 / 65535.0 if hi > 255 else 1.0
        im = Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        im = Image.fromarray(np.nan_to_num(a).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode in ("RGB48", "RGBA64"):  # pragma: no cover - rare Pillow modes
        im = im.convert("RGB")
    return im.convert("RGB")


def _signature(rgb: Image.Image) -> np.ndarray:
    w, h = rgb.size
    s = THUMB_SIDE / max(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(rgb.convert("L").resize(size, Image.Resampling.BOX if s < 0.5 else Image.Resampling.BILINEAR), dtype=np.uint8).copy()


def evidence(rgb: Image.Image) -> tuple[np.ndarray, Optional[bytes]]:
    """What verification reads of a decoded photo: its signature and its content's packed
    features (None when OpenCV cannot describe it: such a photo verifies nothing, and is still
    listed and still joins its byte-identical copies)."""
    sig = _signature(rgb)
    try:
        return sig, content.pack(content.features(np.asarray(rgb.convert("L")), sig.shape))
    except cv2.error:
        return sig, None


def decode_bytes(data: bytes, entry: FileEntry) -> Decoded:
    out = Decoded(entry)
    out.sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        out.problem = "empty file (0 bytes)"
        return out
    if raw.is_raw(entry.path, data[:65536]):
        return _decode_raw(data, out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # damaged metadata: decode what is there
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            out.format = im.format or ""
            w, h = im.size
            if w <= 0 or h <= 0:
                out.problem = f"invalid image size {w}x{h}"
                return out
            if w * h > MAX_PIXELS:
                out.problem = f"image too large to decode safely ({w}x{h} pixels; possible decompression bomb)"
                return out
            # Reduced-size decode: JPEG scales by 1/2..1/8 at decode time, so a 12 MP file
            # is never fully decoded to make a 224 px input.
            im.draft("RGB", (MODEL_SIZE, MODEL_SIZE))
            im.load()  # first frame only for animations and multi-page files
            exif = im.getexif() if hasattr(im, "getexif") else None
            orientation = exif.get(0x0112, 1) if exif is not None else 1
            im = ImageOps.exif_transpose(im) or im
            if orientation in (5, 6, 7, 8):
                w, h = h, w
            out.width, out.height = w, h
            rgb = _to_rgb(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        what = f"it claims {int(claimed.group(1)):,} pixels" if claimed else str(exc)
        out.problem = f"image too large to decode safely ({what}; possible decompression bomb)"
        return out
    except UnidentifiedImageError:
        out.problem = "not an image Doppel can read (unknown or damaged format)"
        return out
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, ZeroDivisionError,
            AttributeError, NotImplementedError, RuntimeError, struct.error) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = f"truncated or damaged image data ({reason})"
        out.problem = f"cannot decode image: {reason}"
        return out
    except MemoryError:
        out.problem = "not enough memory to decode this image"
        return out
    return _finish(out, rgb, exif, False)


def _finish(out: Decoded, rgb: Image.Image, exif, is_raw: bool) -> Decoded:
    out.model_input = np.asarray(rgb.resize((MODEL_SIZE, MODEL_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.uint8).copy()
    out.thumb, out.features = evidence(rgb)
    try:
        out.facts = originals.photo_facts(rgb, exif, is_raw)
    except Exception:  # damaged metadata costs the keeper a fact, never the photo
        out.facts = {"raw": is_raw}
    return out


def _decode_raw(data: bytes, out: Decoded) -> Decoded:
    """A camera RAW through LibRaw (raw.py); its EXIF (camera, date) from its TIFF directory when
    Pillow can read one. Never decided on Pillow's reading of the small preview."""
    rgb, w, h, error = raw.decode(data, MODEL_SIZE * 4)
    if error:
        out.problem = error
        return out
    out.width, out.height = w, h
    rgb.thumbnail((MODEL_SIZE * 4, MODEL_SIZE * 4), Image.Resampling.BILINEAR, reducing_gap=2.0)
    ext = os.path.splitext(out.entry.path)[1].lstrip(".").upper()
    out.format = ext if ext else "RAW"
    exif = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exif = Image.open(io.BytesIO(data)).getexif()
    except Exception:  # not TIFF-based (CR3, RAF): no camera facts from Pillow
        exif = None
    return _finish(out, rgb, exif, True)


def decode_file(entry: FileEntry) -> Decoded:
    """Read, hash and decode one file; the file is read once."""
    try:
        st = os.stat(entry.path)
        if st.st_size > MAX_FILE_BYTES:
            return Decoded(entry, problem=f"file too large ({st.st_size} bytes)")
        with open(entry.path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return Decoded(entry, problem="file vanished during the scan")
    except PermissionError:
        return Decoded(entry, problem="permission denied: cannot read the file")
    except IsADirectoryError:
        return Decoded(entry, problem="is a directory, not a file")
    except OSError as exc:
        return Decoded(entry, problem=f"cannot read the file: {exc.strerror or exc}")
    return decode_bytes(data, entry)
