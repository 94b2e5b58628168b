"""PyTorch reference for tests/test_grad_norm.c: BatchNorm in training mode.

usage: grad_norm_torch.py IN OUT N C H W EPS MOMENTUM STEPS
IN holds float32 x (N,C,H,W), weight (C), bias (C), running_mean (C), running_var (C), dy (N,C,H,W).
Runs F.batch_norm(training=True, momentum=MOMENTUM) STEPS times on the same x (the running
stats updated in place each time), then backward of sum(dy * y) from the last step; writes
float32 y, running_mean, running_var, dx, dweight, dbias to OUT.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F


def main():
    src, dst = sys.argv[1], sys.argv[2]
    n, c, h, w = (int(v) for v in sys.argv[3:7])
    eps, momentum, steps = float(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9])
    raw = np.fromfile(src, dtype=np.float32)
    sizes = [n * c * h * w, c, c, c, c, n * c * h * w]
    parts, off = [], 0
    for s in sizes:
        parts.append(raw[off:off + s].copy())
        off += s
    assert off == raw.size, "input size mismatch"
    x = torch.tensor(parts[0]).reshape(n, c, h, w).requires_grad_(True)
    weight = torch.tensor(parts[1]).requires_grad_(True)
    bias = torch.tensor(parts[2]).requires_grad_(True)
    rm, rv = torch.tensor(parts[3]), torch.tensor(parts[4])
    dy = torch.tensor(parts[5]).reshape(n, c, h, w)
    for _ in range(steps):
        y = F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=momentum, eps=eps)
    (y * dy).sum().backward()
    out = [y.detach(), rm, rv, x.grad, weight.grad, bias.grad]
    np.concatenate([t.reshape(-1).numpy().astype(np.float32) for t in out]).tofile(dst)


if __name__ == "__main__":
    main()
