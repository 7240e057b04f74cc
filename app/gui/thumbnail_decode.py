"""Thumbnail decoding, run in worker processes of the window (no Qt here: they never load it).

Pillow and numpy are imported by ``warm_up``, after the pool (pools.start) has lowered the
process's priority: a worker starting up does not take a core from the window either.
"""
from __future__ import annotations

import contextlib
import os
import tempfile


def decode_thumbnail(path: str, side: int) -> tuple[int, int, bytes, str]:
    """(width, height, RGB888 bytes, date taken) of an image no larger than side x side, EXIF
    orientation applied. Raises whatever Pillow raises on a file it cannot read."""
    from PIL import Image, ImageOps

    from app.core import raw
    from app.core.decode import _to_rgb

    with open(path, "rb") as f:
        head = f.read(65536)
        data = head + f.read() if raw.is_raw(path, head) else None
    if data is not None:  # LibRaw's rendering, never the small preview Pillow would show
        im, _, _, error = raw.decode(data, side)
        if error:
            raise OSError(error)
        im.thumbnail((side, side))
        return im.width, im.height, im.tobytes("raw", "RGB"), ""
    with Image.open(path) as im:
        exif = im.getexif()
        taken = ""
        try:
            taken = exif.get_ifd(0x8769).get(0x9003, "") or exif.get(0x0132, "")
        except Exception:
            pass
        im.draft("RGB", (side, side))
        im = ImageOps.exif_transpose(im) or im
        im = _to_rgb(im)
        im.thumbnail((side, side))
        return im.width, im.height, im.tobytes("raw", "RGB"), str(taken)


def decode_to_file(path: str, side: int, folder: str) -> tuple[int, int, str, str]:
    """decode_thumbnail, with the pixels written to a new file in ``folder``: (width, height,
    that file, date taken); (0, 0, "", "") for an image it cannot show.

    Only those few bytes go back through the pool's pipe, in one write that cannot be cut short:
    a worker stopped while it sent a whole image left the pool's reading thread waiting for the
    rest of it, and the process could not exit (seen when a window closed during a test run).
    """
    name = ""
    try:
        width, height, data, taken = decode_thumbnail(path, side)
        fd, name = tempfile.mkstemp(dir=folder, suffix=".rgb")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return width, height, name, str(taken)[:200]
    except Exception:  # nothing larger than this tuple goes back, not even a traceback
        if name:
            with contextlib.suppress(OSError):
                os.unlink(name)
        return 0, 0, "", ""


def warm_up() -> None:
    """Import what decoding needs, so the first thumbnails asked for do not wait for it."""
    import PIL.Image  # noqa: F401

    import app.core.decode  # noqa: F401
