#!/usr/bin/python3
"""Independent references for graft's dataset tests (tests/test_data_dataset.c, test_data_badfiles.c).

Readers here are Python's own (gzip + numpy for IDX, csv for CSV, torchvision's ImageFolder for
folders, PIL for images); graft's C code is never consulted. Modes:
  idx IMAGES LABELS         n h w, then "label sum weighted_sum" per image (weights 1..h*w)
  gunzip SRC DST            writes SRC decompressed to DST (gzip: compressed)
  mkfolder ROOT             a small ImageFolder tree of PNG/PGM/JPEG files, odd names included
  imagefolder ROOT          JSON {"classes", "class_to_idx", "samples": [[path, idx], ...]}
  mkcsv DIR                 images plus list.csv (quoting, extra columns), ints.tsv, plain.txt
  csvrows FILE DELIM        JSON: the rows as Python's csv module reads them
  mknpy DIR                 feats32/feats64/img3/img4 .npy and int32/int64 labels (closed forms)
  pixsum PATH...            "sum w h" of each image decoded by PIL and converted to RGB
  badfiles DIR              valid and corrupt JPEG/PNG files for the bad-input test
  verdict LIST OUT          PIL's verdict on each image named in LIST (one path a line), to OUT
                            one line each: "ok W H" when Image.open, ImageOps.exif_transpose and
                            convert("RGB") succeed (W x H upright), else "error TYPE: MESSAGE"
"""
import csv
import gzip
import io
import json
import os
import struct
import sys
import zlib

import numpy as np


def idx(images, labels):
    def read(p):
        with open(p, "rb") as f:
            b = f.read()
        return gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b
    im, lb = read(images), read(labels)
    magic, n, h, w = struct.unpack(">IIII", im[:16])
    assert magic == 0x803
    lmagic, ln = struct.unpack(">II", lb[:8])
    assert lmagic == 0x801 and ln == n
    x = np.frombuffer(im, dtype=np.uint8, offset=16).reshape(n, h * w).astype(np.uint64)
    y = np.frombuffer(lb, dtype=np.uint8, offset=8)
    s1 = x.sum(axis=1)
    s2 = (x * np.arange(1, h * w + 1, dtype=np.uint64)).sum(axis=1)
    out = [f"{n} {h} {w}"]
    out += [f"{int(a)} {int(b)} {int(c)}" for a, b, c in zip(y, s1, s2)]
    sys.stdout.write("\n".join(out) + "\n")


def gzip_file(src, dst):
    with open(src, "rb") as f, gzip.open(dst, "wb") as g:
        g.write(f.read())


def gunzip(src, dst):
    with gzip.open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())


def save(img, path):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = path.rsplit(".", 1)[1].lower()
    fmt = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "pgm": "PPM", "ppm": "PPM", "pnm": "PPM"}[ext]
    Image.fromarray(img).save(path, format=fmt)


def pattern(i, h=6, w=5, gray=False):
    y, x = np.mgrid[0:h, 0:w]
    base = (i * 37 + y * 11 + x * 5) % 256
    if gray:
        return base.astype(np.uint8)
    return np.stack([base, (base + 80) % 256, (base * 3) % 256], axis=-1).astype(np.uint8)


def mkfolder(root):
    # classes sort bytewise: "Zebra" < "a b" < "cat" < "dog"; files nest in sub-folders whose
    # order ("sub" before "sub-x" by root string, not by full path) is torchvision's.
    files = {
        "cat": ["z.png", "a.png", "sub/b.PNG", "sub-x/c.pgm", "sub/deep/d.JpG", "m.jpeg"],
        "dog": ["x.ppm", "10.png", "2.png"],
        "Zebra": ["one.png"],
        "a b": ["with space.png", "ü.png"],
    }
    i = 0
    for cls, names in files.items():
        for name in names:
            ext = name.rsplit(".", 1)[1].lower()
            save(pattern(i, gray=(ext == "pgm")), os.path.join(root, cls, name))
            i += 1
    # not images: ignored by both readers
    for p in ["cat/readme.txt", "dog/notes.md"]:
        with open(os.path.join(root, p), "w") as f:
            f.write("not an image\n")
    with open(os.path.join(root, "loose.png"), "wb") as f:  # a file at the top is no class
        f.write(b"")


def imagefolder(root):
    from torchvision.datasets import ImageFolder
    ds = ImageFolder(root, loader=lambda p: p)
    json.dump({"classes": ds.classes, "class_to_idx": ds.class_to_idx,
               "samples": [[p, i] for p, i in ds.samples]}, sys.stdout)


def walkfiles(root):
    # every image under root in torchvision's make_dataset order (sorted(os.walk), files sorted),
    # with graft's extensions and its rule that hidden files and folders (".x") are skipped
    ext = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pnm")
    out = []
    for d, _, files in sorted(os.walk(root, followlinks=True)):
        rel = os.path.relpath(d, root)
        if rel != "." and any(part.startswith(".") for part in rel.split(os.sep)):
            continue
        out += [os.path.join(d, f) for f in sorted(files)
                if not f.startswith(".") and f.lower().endswith(ext)]
    json.dump(out, sys.stdout)


def mkcsv(d):
    imgs = []
    for i, name in enumerate(["img0.png", "img,1.png", 'q"uote.png', "sub/img3.pgm", "img4.png"]):
        p = os.path.join(d, name)
        save(pattern(i, gray=name.endswith(".pgm")), p)
        imgs.append(p)
    labels = ["bird", "ant", "bird", "Cow", "ant"]
    groups = ["g1", "g2", "g1", "g3", "g2"]
    notes = ["plain", "has, comma", 'has "quotes"', "two\nlines", ""]
    with open(os.path.join(d, "list.csv"), "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        w.writerow(["group", "path", "note", "label"])
        for i, p in enumerate(imgs):
            # one absolute path, the rest relative to the CSV's folder
            rel = p if i == 4 else os.path.relpath(p, d)
            w.writerow([groups[i], rel, notes[i], labels[i]])
    with open(os.path.join(d, "ints.tsv"), "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["file", "y", "weight"])
        for i, p in enumerate(imgs):
            w.writerow([os.path.relpath(p, d), [3, 0, 7, 3, 0][i], f"{i * 0.5}"])
    with open(os.path.join(d, "plain.txt"), "w", newline="") as f:  # one column, a blank last line
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path"])
        w.writerows([os.path.relpath(p, d)] for p in imgs)
        f.write("\n")


def csvrows(path, delim):
    with open(path, newline="") as f:
        json.dump(list(csv.reader(f, delimiter="\t" if delim == "tab" else ",")), sys.stdout)


def mknpy(d):
    os.makedirs(d, exist_ok=True)
    n, dim = 23, 7
    i, j = np.mgrid[0:n, 0:dim]
    feats = ((i * 7 + j * 3) % 11) / 4.0 - 1.0  # exact in float32
    np.save(os.path.join(d, "feats64.npy"), feats.astype(np.float64))
    np.save(os.path.join(d, "feats32.npy"), feats.astype(np.float32))
    lab = np.arange(n) % 3
    np.save(os.path.join(d, "lab64.npy"), lab.astype(np.int64))
    np.save(os.path.join(d, "lab32.npy"), lab.astype(np.int32))
    k, y, x, c = np.mgrid[0:n, 0:4, 0:5, 0:3]
    img = ((k * 31 + y * 5 + x * 3 + c * 101) % 256).astype(np.uint8)
    np.save(os.path.join(d, "img4.npy"), img)
    np.save(os.path.join(d, "img3.npy"), np.ascontiguousarray(img[..., 0]))
    np.save(os.path.join(d, "badlab.npy"), (np.arange(n) - 1).astype(np.int64))  # a -1
    np.save(os.path.join(d, "shortlab.npy"), lab[:-1].astype(np.int64))


def pixsum(paths):
    from PIL import Image
    for p in paths:
        im = np.asarray(Image.open(p).convert("RGB"), dtype=np.uint64)
        print(int(im.sum()), im.shape[1], im.shape[0])


def verdict(listfile, out):
    import warnings
    from PIL import Image, ImageOps
    warnings.simplefilter("ignore")  # DecompressionBombWarning is a warning, not a refusal
    lines = []
    with open(listfile) as f:
        for path in (line.rstrip("\n") for line in f):
            if not path:
                continue
            try:
                with Image.open(path) as im:
                    img = ImageOps.exif_transpose(im).convert("RGB")
                lines.append(f"ok {img.width} {img.height}")
            except Exception as e:  # whatever PIL raises is its refusal
                lines.append(f"error {type(e).__name__}: {e}".replace("\n", " "))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def badfiles(d):
    from PIL import Image
    os.makedirs(d, exist_ok=True)
    img = Image.fromarray(pattern(3, h=32, w=40))
    jb, pb = io.BytesIO(), io.BytesIO()
    img.save(jb, format="JPEG", quality=90)
    img.save(pb, format="PNG")
    jpg, png = jb.getvalue(), pb.getvalue()
    files = {"good.jpg": jpg, "good.png": png, "empty.jpg": b"", "truncated.jpg": jpg[: len(jpg) // 2],
             "text.jpg": b"this is not a JPEG, just some text\n"}
    # a PNG whose IHDR CRC is wrong (PIL: "bad header checksum"); one whose last IDAT CRC is
    # wrong with intact data (PIL decodes it, not checking IDAT CRCs); one with a flipped data byte
    at = 8 + 8 + 13
    files["badcrc.png"] = png[:at] + bytes([png[at] ^ 0x55]) + png[at + 1:]
    i = png.rindex(b"IDAT")
    (ln,) = struct.unpack(">I", png[i - 4:i])
    at = i + 4 + ln
    files["idatcrc.png"] = png[:at] + bytes([png[at] ^ 0x55]) + png[at + 1:]
    at = i + 4 + 3
    files["badidat.png"] = png[:at] + bytes([png[at] ^ 0x55]) + png[at + 1:]
    # a PNG whose IHDR (CRC recomputed, so the header is valid) declares 100000 x 100000
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    files["huge.png"] = png[:8] + png_chunk(b"IHDR", ihdr) + png[8 + 25:]
    # JPEGs whose SOF0 declares 60000 x 60000 (3.6 gigapixels, within libjpeg's 65500 limit)
    # and 65535 x 65535 (JPEG's largest, beyond libjpeg's)
    sof = jpg.index(b"\xff\xc0")
    files["huge.jpg"] = jpg[:sof + 5] + struct.pack(">HH", 60000, 60000) + jpg[sof + 9:]
    files["huger.jpg"] = jpg[:sof + 5] + struct.pack(">HH", 65535, 65535) + jpg[sof + 9:]
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"idx": lambda: idx(*args), "gunzip": lambda: gunzip(*args), "gzip": lambda: gzip_file(*args), "mkfolder": lambda: mkfolder(*args),
     "walkfiles": lambda: walkfiles(*args),
     "imagefolder": lambda: imagefolder(*args), "mkcsv": lambda: mkcsv(*args),
     "csvrows": lambda: csvrows(*args), "mknpy": lambda: mknpy(*args), "pixsum": lambda: pixsum(args),
     "badfiles": lambda: badfiles(*args), "verdict": lambda: verdict(*args)}[mode]()
