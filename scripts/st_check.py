#!/usr/bin/python3
"""An independent safetensors reader and writer for tests/test_io_safetensors.c, written from
the format's description with json + numpy only (the safetensors package is not in Debian).

  st_check.py read FILE OUTDIR
      Parses FILE (8-byte little-endian header length, JSON header, data), checks what the
      format requires (header starts with '{', data_offsets cover the data section exactly, no
      overlap, each tensor's bytes = product(shape) * dtype size) and what graft promises (header
      padded with spaces to a multiple of 8, __metadata__["graft_crc32"] = zlib.crc32 of the
      data). Writes OUTDIR/manifest.txt, one line per tensor in header order:
          <json-encoded name> TAB <dtype> TAB <dims, comma-separated> TAB <index>.bin
      with the tensor's bytes (via numpy.frombuffer + reshape) in OUTDIR/<index>.bin, and a
      last line "meta" TAB json.dumps(metadata without graft_crc32, sort_keys=True).
  st_check.py write FILE OUTDIR
      Writes a file the way another tool might: no padding, keys not sorted, data in another
      order than the header, unaligned offsets, metadata without a CRC; and OUTDIR/manifest.txt
      + .bin files as above, for graft to compare with.
"""
import json
import os
import struct
import sys
import zlib

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
          "U8": np.uint8, "I8": np.int8, "BOOL": np.bool_}


def fail(msg):
    print(f"st_check: {msg}", file=sys.stderr)
    sys.exit(1)


def write_manifest(outdir, tensors, meta):
    """tensors: list of (name, dtype, array)."""
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "manifest.txt"), "w", encoding="ascii") as f:
        for i, (name, dt, a) in enumerate(tensors):
            with open(os.path.join(outdir, f"{i}.bin"), "wb") as b:
                b.write(a.tobytes())
            dims = ",".join(str(d) for d in a.shape)
            f.write(f"{json.dumps(name)}\t{dt}\t{dims}\t{i}.bin\n")
        f.write("meta\t" + json.dumps(meta, sort_keys=True) + "\n")


def read(path, outdir):
    raw = open(path, "rb").read()
    if len(raw) < 8:
        fail(f"{path}: too short")
    (n,) = struct.unpack("<Q", raw[:8])
    header = raw[8:8 + n]
    if len(header) != n or not header.startswith(b"{"):
        fail(f"{path}: bad header")
    text = header.decode("utf-8")
    if (8 + n) % 8 or not text.rstrip(" ").endswith("}"):
        fail(f"{path}: data not 8-byte aligned or header not padded with spaces (length {n})")
    h = json.loads(text)
    data = raw[8 + n:]
    meta = h.pop("__metadata__", {})
    crc = meta.pop("graft_crc32", None)
    if crc is None or int(crc) != zlib.crc32(data):
        fail(f"{path}: graft_crc32 {crc}, zlib.crc32 of the data is {zlib.crc32(data)}")
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1]) for v in h.values())
    at = 0
    for b, e in spans:
        if b != at or e < b:
            fail(f"{path}: data_offsets {spans} do not cover the data contiguously")
        at = e
    if at != len(data):
        fail(f"{path}: tensors cover {at} bytes, data section has {len(data)}")
    tensors = []
    for name, v in h.items():
        b, e = v["data_offsets"]
        dt = np.dtype(DTYPES[v["dtype"]])
        a = np.frombuffer(data[b:e], dtype=dt.newbyteorder("<")).reshape(v["shape"])
        tensors.append((name, v["dtype"], a))
    write_manifest(outdir, tensors, meta)
    print(f"st_check: {path}: {len(tensors)} tensors, {len(data)} data bytes, crc ok, "
          f"header {n} bytes")


def write(path, outdir):
    rng = np.random.default_rng(11)
    tensors = [
        ("mask", "BOOL", np.array([True, False, False], np.bool_)),          # 3 bytes: unaligns the rest
        ("w", "F32", rng.standard_normal((2, 3, 2)).astype(np.float32)),
        ("steps", "I64", np.array(123456789012, np.int64)),                  # scalar
        ("nothing", "F64", np.zeros((3, 0), np.float64)),                    # empty
        ("table", "I32", np.array([[1, -2], [2 ** 31 - 1, -2 ** 31]], np.int32)),
        ("bytes", "U8", np.arange(7, dtype=np.uint8)),
        ("small", "I8", np.array([-128, 0, 127], np.int8)),
        ("d", "F64", rng.standard_normal(5)),
    ]
    # data in this order; header keys in another (reversed) order
    order = [1, 0, 3, 2, 6, 5, 4, 7]
    header, blobs, off = {}, [], 0
    for k in order:
        name, dt, a = tensors[k]
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    meta = {"format": "pt", "epoch": "7"}
    h = {"__metadata__": meta}
    for name in reversed(list(header)):
        h[name] = header[name]
    text = json.dumps(h).encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    # manifest in data order, which is the order graft returns
    write_manifest(outdir, [tensors[k] for k in order], meta)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        fail("usage: st_check.py read|write FILE OUTDIR")


if __name__ == "__main__":
    main()
