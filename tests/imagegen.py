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
