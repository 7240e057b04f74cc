"""Photo-like test images made with Pillow: textured scenes, not flat colours.

Each seed gives a different scene (sky gradient, hills, objects, fine texture and sensor noise),
so a CNN sees real structure and two seeds are as different as two photos.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps


def photo(seed: int, size=(640, 480)) -> Image.Image:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    w, h = size
    top = np.array([rng.randint(0, 255) for _ in range(3)], float)
    bottom = np.array([rng.randint(0, 255) for _ in range(3)], float)
    t = np.linspace(0, 1, h)[:, None, None]
    sky = (top * (1 - t) + bottom * t) * np.ones((1, w, 1))
    im = Image.fromarray(sky.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    for _ in range(3):  # hills
        base = rng.uniform(0.4, 0.9) * h
        pts = [(0, h)] + [(x, base + rng.uniform(-0.15, 0.15) * h) for x in range(0, w + 40, 40)] + [(w, h)]
        d.polygon(pts, fill=tuple(rng.randint(0, 255) for _ in range(3)))
    for _ in range(rng.randint(8, 16)):  # objects
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        rw, rh = rng.uniform(0.03, 0.25) * w, rng.uniform(0.03, 0.25) * h
        box = [x0, y0, x0 + rw, y0 + rh]
        col = tuple(rng.randint(0, 255) for _ in range(3))
        if rng.random() < 0.5:
            d.ellipse(box, fill=col, outline=(0, 0, 0), width=rng.randint(1, 4))
        else:
            d.rectangle(box, fill=col)
        for _ in range(rng.randint(0, 6)):
            d.line([rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h)],
                   fill=tuple(rng.randint(0, 255) for _ in range(3)), width=rng.randint(1, 5))
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    a = np.asarray(im, dtype=np.float32)
    texture = nrng.normal(0, 1, (h // 8 + 1, w // 8 + 1, 1))
    tex = np.asarray(Image.fromarray(((texture[..., 0] + 3) * 40).clip(0, 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float32)
    a = a + (tex[..., None] - 120) * 0.25 + nrng.normal(0, 4, a.shape)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8), "RGB")


def save(im: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = kw.pop("format", None)
    if fmt is None and path.suffix.lower() in (".jpg", ".jpeg"):
        kw.setdefault("quality", 92)
    im.save(path, format=fmt, **kw)
    return path


def resized(im, factor):
    return im.resize((max(1, int(im.width * factor)), max(1, int(im.height * factor))), Image.LANCZOS)


def grayscale(im):
    return ImageOps.grayscale(im).convert("RGB")


def brightened(im, factor):
    return ImageEnhance.Brightness(im).enhance(factor)


def crop_fraction(im, frac, cx=0.5, cy=0.5):
    w, h = im.size
    cw, ch = int(w * frac), int(h * frac)
    x0 = int((w - cw) * cx)
    y0 = int((h - ch) * cy)
    return im.crop((x0, y0, x0 + cw, y0 + ch))


def camera_exif(make="Canon", model="Canon EOS 80D", when="2021:06:05 14:03:22") -> Image.Exif:
    """EXIF as a camera writes it: make, model, and the date the photo was taken."""
    ex = Image.Exif()
    ex[0x010F], ex[0x0110], ex[0x0132] = make, model, when
    ex.get_ifd(0x8769)[0x9003] = when  # DateTimeOriginal
    return ex


def watermarked(im, text="SAMPLE - J. Smith 2021"):
    """A semi-transparent text watermark in the lower right, as a photo site stamps one."""
    from PIL import ImageFont

    im = im.convert("RGBA")
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=max(12, im.height // 14))
    x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
    x, y = im.width - (x1 - x0) - im.width // 30, im.height - (y1 - y0) - im.height // 25
    d.text((x + 2, y + 2), text, font=font, fill=(0, 0, 0, 110))
    d.text((x, y), text, font=font, fill=(255, 255, 255, 170))
    return Image.alpha_composite(im, layer).convert("RGB")


# XYZ (D65) -> linear sRGB: a DNG's ColorMatrix1 for a "camera" whose raw values are linear sRGB,
# so LibRaw's rendering gives back the colours the test drew.
_XYZ_TO_SRGB = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]


def dng(im: Image.Image, path: Path, preview_side: int = 0) -> Path:
    """A real DNG of ``im``: a 12-bit RGGB Bayer mosaic with the tags LibRaw needs (as cameras and
    Adobe's converter write them). ``preview_side``: also a small RGB preview in the first
    directory, as many cameras put there (what Pillow would read)."""
    import tifffile

    lin = (np.asarray(im.convert("RGB"), np.float64) / 255.0) ** 2.2 * 4095
    h, w = lin.shape[:2]
    h, w = h - h % 2, w - w % 2
    mos = np.empty((h, w), np.uint16)
    mos[0::2, 0::2] = lin[0:h:2, 0:w:2, 0]
    mos[0::2, 1::2] = lin[0:h:2, 1:w:2, 1]
    mos[1::2, 0::2] = lin[1:h:2, 0:w:2, 1]
    mos[1::2, 1::2] = lin[1:h:2, 1:w:2, 2]
    matrix = []
    for v in _XYZ_TO_SRGB:
        matrix += [int(round(v * 10000)), 10000]
    tags = [(50706, "B", 4, (1, 4, 0, 0), True), (50707, "B", 4, (1, 1, 0, 0), True),
            (50708, "s", 0, "Doppel Test Camera", True), (33421, "H", 2, (2, 2), True),
            (33422, "B", 4, (0, 1, 1, 2), True), (50721, "2i", 9, matrix, True),
            (50728, "2I", 3, [1, 1, 1, 1, 1, 1], True), (50778, "H", 1, (21,), True),
            (50717, "I", 1, (4095,), True), (271, "s", 0, "Doppel", True), (272, "s", 0, "Test Camera", True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tif:
        if preview_side:
            small = im.convert("RGB").copy()
            small.thumbnail((preview_side, preview_side))
            tif.write(np.asarray(small), photometric="rgb", subfiletype=1, extratags=tags[:3])
            tif.write(mos, photometric=32803, subfiletype=0, extratags=tags[3:9])
        else:
            tif.write(mos, photometric=32803, subfiletype=0, extratags=tags)
    return path


def raw_lookalike(im: Image.Image, path: Path, side: int = 256) -> Path:
    """A TIFF holding only a small RGB preview, named like a RAW (.dng, .nef): what Pillow reads of
    a RAW it cannot decode. LibRaw finds no raw data in it."""
    small = im.convert("RGB").copy()
    small.thumbnail((side, side))
    path.parent.mkdir(parents=True, exist_ok=True)
    ex = camera_exif("NIKON CORPORATION", "NIKON D7500")
    small.save(path, format="TIFF", exif=ex)
    return path
