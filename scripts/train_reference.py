#!/usr/bin/python3
"""PyTorch reference for graft's training parity test (tests/test_train_parity.c).

  train_reference.py OUTDIR MODEL MODE OPT

MODEL: a torchvision architecture (resnet18, mobilenet_v2); MODE: "all" (every parameter
trains) or "last" (everything frozen but the last block, plus a new 5-class head); OPT: "sgd"
(lr 0.002 for resnet18, 0.0002 for mobilenet_v2, momentum 0.9, weight decay 1e-4) or "adamw"
(lr 1e-4, weight decay 0.01): fine-tuning rates, written to optim.txt for the test. Weight decay is off for 1-D parameters (biases, BatchNorm), graft's default. Random
weights with random BatchNorm statistics; a batch (resnet18: 4x3x64x64, mobilenet_v2: 2x3x96x96)
and labels drawn until the problem is stable in float32 (see below); three steps.

Writes into OUTDIR:
  model.onnx          the model (eval-mode export that keeps every BatchNormalization node,
                      initializer names = PyTorch parameter names)
  x.npy, y.npy        the batch
  trainable.txt       the names of the trainable parameters, one per line
  loss.npy            the loss before each of the 3 steps (float64)
  grad/<name>.npy     every trainable parameter's gradient at step 1
  stats1/<name>.npy   running mean/var of every BatchNorm after step 1
  after/<name>.npy    every parameter and running statistic after 3 steps
  the same in float64 (loss64.npy, grad64/, stats164/, after64/): PyTorch's answer without
  float32 rounding.
Frozen BatchNorms run in eval mode (graft's default); Dropout is off (eval), as the exported
graph has none. Skips the work when OUTDIR/done exists and is newer than this script."""
import os
import sys

import numpy as np
import torch
import torchvision

out, name, mode, opt_name = sys.argv[1:5]
stamp = os.path.join(out, "done")
if os.path.exists(stamp) and os.path.getmtime(stamp) > os.path.getmtime(__file__):
    sys.exit(0)
os.makedirs(out, exist_ok=True)

torch.manual_seed(7)
gen = torch.Generator().manual_seed(7)
model = getattr(torchvision.models, name)(weights=None, num_classes=10)
with torch.no_grad():  # non-trivial BatchNorm parameters and statistics
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=gen))
            m.bias.copy_(0.2 * torch.randn(c, generator=gen))
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(torch.empty(c).uniform_(0.5, 2.0, generator=gen))

if name == "resnet18":
    last_block = model.layer4[1]
    if mode == "last":
        model.fc = torch.nn.Linear(model.fc.in_features, 5)
    head = model.fc
elif name == "mobilenet_v2":
    last_block = model.features[18]  # the last Conv-BN-ReLU6 before pooling
    if mode == "last":
        model.classifier[1] = torch.nn.Linear(model.classifier[1].in_features, 5)
    head = model.classifier
else:
    raise SystemExit(f"unknown model {name}")

n, size = (4, 64) if name == "resnet18" else (2, 96)
# SGD's rate: a fine-tuning rate that keeps 3 steps out of the chaotic regime. torchvision's
# mobilenet_v2 depthwise weights move 9 % per step at 0.002 (resnet18's at most 4 %), after which
# float32 and float64 runs of PyTorch itself part by 20 % within 3 steps.
SGD_LR = 0.002 if name == "resnet18" else 0.0002
nclass = 5 if mode == "last" else 10

if mode == "all":
    trainable = dict(model.named_parameters())
else:
    keep = {id(p) for p in list(last_block.parameters()) + list(head.parameters())}
    trainable = {n_: p for n_, p in model.named_parameters() if id(p) in keep}

import copy

start = copy.deepcopy(model)


def train(x, y, dtype, channels_last=False):
    """Three steps on a copy of the start model in `dtype`; returns {"<sub>/<name>": array}."""
    res = {}
    net = copy.deepcopy(start).to(dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    params = {k: p for k, p in net.named_parameters() if k in trainable}
    for k, p in net.named_parameters():
        p.requires_grad_(k in trainable)
    decay = [p for k, p in params.items() if p.dim() > 1]
    no_decay = [p for k, p in params.items() if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": 1e-4 if opt_name == "sgd" else 0.01},
              {"params": no_decay, "weight_decay": 0.0}]
    opt = (torch.optim.SGD(groups, lr=SGD_LR, momentum=0.9) if opt_name == "sgd"
           else torch.optim.AdamW(groups, lr=1e-4))
    losses = []
    for step in range(3):
        net.eval()  # BatchNorms train when their own parameters do; Dropout stays off
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and m.weight.requires_grad:
                m.train()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x.to(dtype)), y)
        loss.backward()
        losses.append(loss.item())
        if step == 0:
            for k, p in params.items():
                res["grad/" + k] = p.grad.contiguous().numpy().copy()
            for k, b in net.named_buffers():
                if k.endswith("running_mean") or k.endswith("running_var"):
                    res["stats1/" + k] = b.numpy().copy()
        opt.step()
    res["loss"] = np.array(losses, dtype=np.float64)
    for k, p in net.named_parameters():
        res["after/" + k] = p.detach().contiguous().numpy().copy()
    for k, b in net.named_buffers():
        if k.endswith("running_mean") or k.endswith("running_var"):
            res["after/" + k] = b.numpy().copy()
    return res


def worst_rel(a, b):
    """max over tensors of max|a-b|/max|b|, skipping tensors that are zero in exact arithmetic
    (a bias followed by a training BatchNorm: its gradient is rounding noise)."""
    top = max(np.abs(v).max() for v in b.values())
    w = 0.0
    for k in b:
        scale = np.abs(b[k]).max()
        if scale <= 1e-9 * top:
            continue
        w = max(w, float(np.abs(a[k].astype(np.float64) - b[k]).max() / scale))
    return w


# A training step is continuous except at activation kinks (ReLU at 0, ReLU6 at 0 and 6): an
# input within rounding distance of one can land on either side in two float32 implementations,
# and then a gradient differs by a whole term (a 2-8 % change of an early BatchNorm's bias
# gradient, measured). Such a batch tests luck, not arithmetic. So the batch is drawn until
# PyTorch itself is stable on it: float32 with another memory layout (channels_last: other
# kernels, other summation orders) within 2e-5 of float64 everywhere.
best = None
for attempt in range(12):
    g = torch.Generator().manual_seed(1000 + attempt)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, nclass, (n,), generator=g)
    r32 = train(x, y, torch.float32)
    r64 = train(x, y, torch.float64)
    rcl = train(x, y, torch.float32, channels_last=True)
    spread = max(worst_rel(r32, r64), worst_rel(rcl, r64))
    print(f"{name} {mode} {opt_name}: batch seed {1000 + attempt}: float32 vs float64 {spread:.2e}", file=sys.stderr)
    if best is None or spread < best[0]:
        best = (spread, x, y, r32, r64)
    if spread <= 2e-5:
        break
# When no draw is stable (mobilenet_v2 with every BatchNorm training on 2 images: its float32
# runs part from float64 by 1e-2 in 3 steps whatever the batch), the least unstable one is used
# and the test holds graft to PyTorch float32's own distance from float64.
spread, x, y, r32, r64 = best
model.eval()
torch.onnx.export(model, x, os.path.join(out, "model.onnx"), opset_version=13,
                  training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, do_constant_folding=False)
np.save(os.path.join(out, "x.npy"), x.numpy())
np.save(os.path.join(out, "y.npy"), y.numpy().astype(np.int32))
with open(os.path.join(out, "optim.txt"), "w") as f:  # kind lr momentum weight_decay
    f.write(f"sgd {SGD_LR} 0.9 1e-4\n" if opt_name == "sgd" else "adamw 1e-4 0 0.01\n")
with open(os.path.join(out, "trainable.txt"), "w") as f:
    f.write("".join(k + "\n" for k in trainable))
for res, suffix in ((r32, ""), (r64, "64")):
    for key, a in res.items():
        if key == "loss":
            np.save(os.path.join(out, "loss" + suffix + ".npy"), a)
            continue
        sub, k = key.split("/", 1)
        os.makedirs(os.path.join(out, sub + suffix), exist_ok=True)
        np.save(os.path.join(out, sub + suffix, k + ".npy"), a)
open(stamp, "w").close()
