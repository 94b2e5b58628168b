#!/usr/bin/env python3
"""PyTorch reference for graft's losses and optimizers (tests/test_train_optim.c).

Writes inputs and torch's results as .npy files into the folder given as argv[1]:
losses with their gradients (autograd), and parameters after several optimizer steps with
fixed gradients, parameter groups (decay / no decay, scaled rates), a warm-up + cosine schedule
(LambdaLR) and gradient clipping."""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)


def save(name, t):
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    np.save(os.path.join(out, name + ".npy"), a)


# ---- losses ----
z = (torch.randn(8, 5) * 2).requires_grad_()
y = torch.tensor([0, 4, 2, 2, 1, 3, 0, 4], dtype=torch.int64)
w = torch.rand(5) + 0.5
for tag, weight, eps in (("plain", None, 0.0), ("weighted", w, 0.0), ("smooth", None, 0.1), ("both", w, 0.1)):
    z.grad = None
    loss = F.cross_entropy(z, y, weight=weight, label_smoothing=eps)
    loss.backward()
    save(f"ce_{tag}_loss", loss.reshape(1).double())
    save(f"ce_{tag}_grad", z.grad)
save("ce_logits", z)
save("ce_target", y.int())
save("ce_weight", w)

b = (torch.randn(6, 4) * 3).requires_grad_()
t = torch.rand(6, 4)
pw = torch.rand(4) + 0.5
loss = F.binary_cross_entropy_with_logits(b, t, pos_weight=pw)
loss.backward()
save("bce_logits", b)
save("bce_target", t)
save("bce_pos_weight", pw)
save("bce_loss", loss.reshape(1).double())
save("bce_grad", b.grad)

p = torch.randn(7, 3).requires_grad_()
q = torch.randn(7, 3)
loss = F.mse_loss(p, q)
loss.backward()
save("mse_pred", p)
save("mse_target", q)
save("mse_loss", loss.reshape(1).double())
save("mse_grad", p.grad)

# ---- optimizers: w (3, 4) with decay and rate x1, b (4,) without decay and rate x0.5 ----
STEPS, WARMUP, LR, WD, CLIP = 6, 2, 0.1, 0.05, 0.5
w0 = torch.randn(3, 4)
b0 = torch.randn(4)
grads = [(torch.randn(3, 4), torch.randn(4)) for _ in range(STEPS)]
save("opt_w0", w0)
save("opt_b0", b0)
save("opt_gw", torch.stack([g[0] for g in grads]))
save("opt_gb", torch.stack([g[1] for g in grads]))


def cosine(t):
    if t < WARMUP:
        return (t + 1) / WARMUP
    return 0.5 * (1 + math.cos(math.pi * (t - WARMUP) / (STEPS - WARMUP)))


def run(make, clip):
    wp = torch.nn.Parameter(w0.clone())
    bp = torch.nn.Parameter(b0.clone())
    opt = make([{"params": [wp], "weight_decay": WD, "lr": LR}, {"params": [bp], "weight_decay": 0.0, "lr": LR * 0.5}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    for gw, gb in grads:
        wp.grad = gw.clone()
        bp.grad = gb.clone()
        if clip:
            torch.nn.utils.clip_grad_norm_([wp, bp], CLIP)
        opt.step()
        sched.step()
    return wp, bp


cases = {
    "sgd": (lambda g: torch.optim.SGD(g, lr=LR, momentum=0.9), 0),
    "nesterov": (lambda g: torch.optim.SGD(g, lr=LR, momentum=0.9, nesterov=True), 1),
    "adamw": (lambda g: torch.optim.AdamW(g, lr=LR), 0),
    "adamw_clip": (lambda g: torch.optim.AdamW(g, lr=LR, betas=(0.8, 0.99), eps=1e-6), 1),
}
for name, (make, clip) in cases.items():
    wp, bp = run(make, clip)
    save(f"opt_{name}_w", wp)
    save(f"opt_{name}_b", bp)
print("ok")
