#!/usr/bin/env python3
"""make_jpegs.py OUT [N] [CLASSES] — a folder of generated photos-like JPEGs for bench/data.sh.

OUT/class_XX/img_NNNNN.jpg, ImageFolder layout. Each image is about 500x375 (some portrait),
made of smooth colour gradients, soft blobs, a few shapes and sensor-like noise, saved at
quality 90, so the files are the size of real photos of that size (~40-80 KB) and decode like
them. Deterministic (seeded). Written to OUT.tmp and renamed, so a half-made folder is never used.
"""
import os
import shutil
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def make(rng, w, h):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    # two crossing colour gradients
    for _ in range(2):
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * xx / w + np.sin(a) * yy / h + 1) / 2
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        img += 0.5 * (c0 + t[..., None] * (c1 - c0))
    # soft low-frequency blobs
    small = rng.uniform(-60, 60, (6, 8, 3)).astype(np.float32)
    blobs = np.stack([np.asarray(Image.fromarray(small[..., c], "F").resize((w, h), Image.BICUBIC))
                      for c in range(3)], -1)
    img = np.clip(img + blobs, 0, 255).astype(np.uint8)
    pil = Image.fromarray(img, "RGB")
    d = ImageDraw.Draw(pil)
    for _ in range(rng.integers(3, 9)):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(20, w // 2), y0 + rng.integers(20, h // 2)
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            d.ellipse([x0, y0, x1, y1], fill=col)
        elif kind == 1:
            d.rectangle([x0, y0, x1, y1], fill=col)
        else:
            pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(3)]
            d.polygon(pts, fill=col)
    pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    arr = np.asarray(pil).astype(np.int16) + rng.normal(0, 8, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    classes = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(20240611)
    total = 0
    for i in range(n):
        c = i % classes
        d = os.path.join(tmp, "class_%02d" % c)
        os.makedirs(d, exist_ok=True)
        w, h = (500, 375) if rng.uniform() < 0.8 else (375, 500)
        w += int(rng.integers(-20, 21))
        h += int(rng.integers(-20, 21))
        p = os.path.join(d, "img_%05d.jpg" % i)
        make(rng, w, h).save(p, quality=90)
        total += os.path.getsize(p)
        if (i + 1) % 500 == 0:
            print("make_jpegs: %d/%d" % (i + 1, n), file=sys.stderr)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print("make_jpegs: %d JPEGs in %d classes, %.0f KB on average, in %s" % (n, classes, total / n / 1024, out),
          file=sys.stderr)


if __name__ == "__main__":
    main()
