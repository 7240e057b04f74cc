"""Fuzz the decode + fingerprint path with mutated image bytes (outside the unit-test budget).

    .venv/bin/python bench/fuzz_decode.py --iterations 3000 --seed 1

Seeds are real encodings (JPEG, progressive JPEG, PNG, 16-bit PNG, GIF, WebP, TIFF, BMP) of a
generated photo; each input flips bytes, truncates, splices or repeats chunks. ``decode_bytes``
must never raise: every input must come back as a decoded image (sane shapes) or a problem string.
Inputs that break that rule are written to --out for a regression test.
"""
from __future__ import annotations

import argparse
import io
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from app.core.decode import MODEL_SIZE, decode_bytes  # noqa: E402
from app.core.walk import FileEntry  # noqa: E402
from tests import imagegen  # noqa: E402


def seeds() -> dict[str, bytes]:
    im = imagegen.photo(7, (256, 192))
    out = {}
    for name, kw in {"jpeg": dict(format="JPEG", quality=85), "pjpeg": dict(format="JPEG", progressive=True),
                     "png": dict(format="PNG"), "gif": dict(format="GIF"), "webp": dict(format="WEBP"),
                     "tiff": dict(format="TIFF"), "bmp": dict(format="BMP")}.items():
        b = io.BytesIO()
        im.save(b, **kw)
        out[name] = b.getvalue()
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray((np.asarray(im.convert("L"), np.uint16) * 257)).save(b, format="PNG")
    out["png16"] = b.getvalue()
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "byte", "truncate", "splice", "repeat", "header"])
        if op == "flip" and b:
            i = rng.randrange(len(b)); b[i] ^= 1 << rng.randrange(8)
        elif op == "byte" and b:
            for _ in range(rng.randint(1, 16)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == "truncate" and b:
            del b[rng.randrange(len(b)):]
        elif op == "splice" and len(b) > 8:
            i, j = sorted(rng.randrange(len(b)) for _ in range(2))
            b[i:i] = b[j:j + rng.randint(1, 512)]
        elif op == "repeat" and len(b) > 8:
            i = rng.randrange(len(b)); b[i:i] = b[i:i + 64] * rng.randint(2, 50)
        elif op == "header" and len(b) > 32:
            i = rng.randrange(min(64, len(b) - 4)); b[i:i + 4] = rng.randbytes(4)
    return bytes(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="bench/fuzz-failures")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    corpus = seeds()
    outcomes, failures = Counter(), []
    t0 = time.monotonic()
    entry = FileEntry("fuzz", 0, 0)
    for i in range(args.iterations):
        kind = rng.choice(sorted(corpus))
        data = mutate(corpus[kind], rng)
        try:
            d = decode_bytes(data, entry)
            if d.problem:
                outcomes["problem: " + d.problem.split("(")[0].split(":")[0][:50]] += 1
            else:
                assert d.model_input.shape == (MODEL_SIZE, MODEL_SIZE, 3) and d.model_input.dtype == np.uint8
                assert d.thumb.ndim == 2 and max(d.thumb.shape) == 96
                assert d.width > 0 and d.height > 0
                outcomes["decoded"] += 1
        except BaseException as exc:  # noqa: BLE001 - that is the point
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append((kind, i, f"{type(exc).__name__}: {exc}"))
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / f"{i:06d}-{kind}.bin").write_bytes(data)
    dt = time.monotonic() - t0
    print(f"fuzzed {args.iterations} inputs in {dt:.1f} s (seed {args.seed}); {len(failures)} escaped exceptions")
    for k, v in outcomes.most_common():
        print(f"  {v:6d}  {k}")
    for f in failures[:20]:
        print("  FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
