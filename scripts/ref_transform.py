#!/usr/bin/python3
"""ref_transform.py — torchvision's transforms on PIL images, the reference graft's transform
pipeline (src/data/transform.c) is tested against by tests/test_data_transform.c.

usage: ref_transform.py images DIR     write the generated test images into DIR and list them,
                                       with real photographs shipped by Debian packages, in
                                       DIR/images.txt (one "NAME PATH" a line)
       ref_transform.py batch JOBS     run the jobs of the file JOBS, one a line:
  pipe IMG OUT RESIZE CROP SIZE MEAN3 STD3   Resize(RESIZE) or Resize((SIZE, SIZE)), CenterCrop(CROP)
                                             (0 = step off), ToTensor, Normalize(MEAN, STD)
  rrc IMG OUT I J H W SIZE                   F.resized_crop(img, I, J, H, W, [SIZE, SIZE]), ToTensor
  adj IMG OUT KIND FACTOR                    F.adjust_KIND(img, FACTOR), ToTensor
  chain IMG OUT I J H W SIZE FLIP O0 O1 O2 O3 F0 F1 F2 F3 A0 A1 A2 A3 MEAN3 STD3
        resized_crop, hflip when FLIP, the four adjustments in order O (each when its A is 1)
        with factors F, ToTensor, Normalize — RandomResizedCrop, RandomHorizontalFlip,
        ColorJitter and Normalize with their random choices given
  params W H SMIN SMAX RMIN RMAX N SEED OUT  N draws of RandomResizedCrop.get_params on a W x H
                                             image, int32 (i, j, h, w) each
  time IMG N                                 prints torchvision's mean seconds per Resize(256) +
                                             CenterCrop(224) + ToTensor + Normalize(imagenet)
                                             (PIL open and convert included)
Images: PIL opens them, ImageOps.exif_transpose (graft applies Exif orientation), convert("RGB")
as torchvision's pil_loader. Tensors are written raw float32, C order (3, H, W).
Needs Debian's python3-torchvision, python3-pil and python3-numpy.
"""
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision import transforms
import torchvision.transforms.functional as F

BIL = transforms.InterpolationMode.BILINEAR
REAL = ["/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "/usr/share/matplotlib/mpl-data/sample_data/Minduka_Present_Blue_Pack.png"]


def load(path):
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def pattern(w, h, ch, seed):
    """Gradients, a checkerboard with sharp edges and noise, like tests/test_op_image.c."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((h, w, ch), np.uint8)
    for c in range(ch):
        v = (x * (3 + c) + y * (5 - c)) // 2 + (((x // 7) + (y // 5)) % 2) * 90 + rng.integers(0, 32, (h, w))
        out[:, :, c] = v % 256
    return out


def png16(path, arr):
    """A 16-bit RGB PNG written by hand (PIL cannot write one); PIL reads it as RGB, high bytes."""
    h, w, _ = arr.shape
    raw = b"".join(b"\0" + arr[r].astype(">u2").tobytes() for r in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_images(d):
    made = []

    def save(name, im, **kw):
        im.save(os.path.join(d, name), **kw)
        made.append(name)
    save("rgb_500x375.jpg", Image.fromarray(pattern(500, 375, 3, 1)), quality=90)
    save("rgb_301x257.png", Image.fromarray(pattern(301, 257, 3, 2)))
    save("rgb_100x60.jpg", Image.fromarray(pattern(100, 60, 3, 3)), quality=95)
    save("rgb_1x1.png", Image.fromarray(pattern(1, 1, 3, 4)))
    save("l_7x300.png", Image.fromarray(pattern(7, 300, 1, 5)[:, :, 0], "L"))
    save("la_64x80.png", Image.fromarray(pattern(64, 80, 2, 6), "LA"))
    save("rgba_199x301.png", Image.fromarray(pattern(199, 301, 4, 7), "RGBA"))
    save("cmyk_120x90.jpg", Image.fromarray(pattern(120, 90, 4, 8), "CMYK"), quality=95)
    pal = Image.fromarray(pattern(150, 100, 1, 9)[:, :, 0], "L").convert("P")
    pal.putpalette([(i * k * 37) % 256 for i in range(256) for k in (1, 2, 3)])
    save("p_150x100.png", pal)
    png16(os.path.join(d, "rgb16_90x70.png"), pattern(90, 70, 3, 10).astype(np.uint16) * 257 + 77)
    made.append("rgb16_90x70.png")
    save("gray_333x250.jpg", Image.fromarray(pattern(333, 250, 1, 11)[:, :, 0], "L"), quality=92)
    save("gray_199x301.pgm", Image.fromarray(pattern(199, 301, 1, 12)[:, :, 0], "L"))
    save("rgb_301x199.ppm", Image.fromarray(pattern(301, 199, 3, 13)))
    save("rgb_223x224.png", Image.fromarray(pattern(223, 224, 3, 14)))
    # 64 levels (0..255) of each channel in every combination: the colour adjustments' corners
    lv = np.round(np.linspace(0, 255, 64)).astype(np.uint8)
    idx = np.arange(512 * 512)
    cube = np.stack([lv[idx % 64], lv[(idx // 64) % 64], lv[idx // 4096]], 1).reshape(512, 512, 3)
    save("colors_512x512.png", Image.fromarray(cube))
    # a large real photograph for scaled decoding: Grace Hopper enlarged 4x, JPEG 4:2:0
    save("hopper_2048x2400.jpg", load(REAL[0]).resize((2048, 2400), Image.LANCZOS), quality=90)
    with open(os.path.join(d, "images.txt"), "w") as f:
        for p in REAL:
            f.write("%s %s\n" % (os.path.basename(p), p))
        for n in made:
            f.write("%s %s\n" % (n, os.path.join(d, n)))


def write(out, x):
    x.contiguous().numpy().astype("<f4").tofile(out)


def floats(v):
    return [float(s) for s in v]


def adjust(img, kind, f):
    return {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
            "saturation": F.adjust_saturation, "hue": F.adjust_hue}[kind](img, f)


def job(a):
    kind = a[0]
    if kind == "pipe":
        img = load(a[1])
        resize, crop, size = int(a[3]), int(a[4]), int(a[5])
        mean, std = floats(a[6:9]), floats(a[9:12])
        steps = []
        if size > 0:
            steps.append(transforms.Resize((size, size), interpolation=BIL))
        elif resize > 0:
            steps.append(transforms.Resize(resize, interpolation=BIL))
        if crop > 0:
            steps.append(transforms.CenterCrop(crop))
        steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
        write(a[2], transforms.Compose(steps)(img))
    elif kind == "rrc":
        i, j, h, w, size = (int(v) for v in a[3:8])
        write(a[2], F.to_tensor(F.resized_crop(load(a[1]), i, j, h, w, [size, size], BIL)))
    elif kind == "adj":
        write(a[2], F.to_tensor(adjust(load(a[1]), a[3], float(a[4]))))
    elif kind == "chain":
        i, j, h, w, size, flip = (int(v) for v in a[3:9])
        order = [int(v) for v in a[9:13]]
        fac = floats(a[13:17])
        active = [int(v) for v in a[17:21]]
        mean, std = floats(a[21:24]), floats(a[24:27])
        img = F.resized_crop(load(a[1]), i, j, h, w, [size, size], BIL)
        if flip:
            img = F.hflip(img)
        names = ["brightness", "contrast", "saturation", "hue"]
        for k in order:  # ColorJitter.forward: fn_idx order, None factors skipped
            if active[k]:
                img = adjust(img, names[k], fac[k])
        write(a[2], F.normalize(F.to_tensor(img), mean, std))
    elif kind == "params":
        W, H = int(a[1]), int(a[2])
        scale, ratio = floats(a[3:5]), floats(a[5:7])
        n, seed = int(a[7]), int(a[8])
        torch.manual_seed(seed)
        img = Image.new("RGB", (W, H))
        out = np.array([transforms.RandomResizedCrop.get_params(img, scale, ratio) for _ in range(n)], np.int32)
        out.astype("<i4").tofile(a[9])
    elif kind == "time":
        t = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
        n = int(a[2])
        t(load(a[1]))
        t0 = time.perf_counter()
        for _ in range(n):
            t(load(a[1]))
        print("time %s %.6f" % (a[1], (time.perf_counter() - t0) / n))
    else:
        raise SystemExit("unknown job " + kind)


def main(argv):
    if len(argv) == 2 and argv[0] == "images":
        make_images(argv[1])
        return 0
    if len(argv) == 2 and argv[0] == "batch":
        torch.set_num_threads(1)
        with open(argv[1]) as f:
            for line in f:
                if line.strip():
                    job(line.split())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
