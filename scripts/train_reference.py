#!/usr/bin/python3
"""PyTorch reference for graft's training parity test (tests/test_train_parity.c).

  train_reference.py OUTDIR MODEL MODE OPT

MODEL: a torchvision architecture (resnet18, mobilenet_v2); MODE: "all" (every parameter
trains) or "last" (everything frozen but the last block, plus a new 5-class head); OPT: "sgd"
(momentum 0.9, weight decay 1e-4) or "adamw" (weight decay 0.01). Weight decay is off for 1-D
parameters (biases, BatchNorm), graft's default. Random weights with random BatchNorm
statistics, a fixed input (4, 3, 64, 64) and labels, three steps.

Writes into OUTDIR:
  model.onnx          the model (eval-mode export that keeps every BatchNormalization node,
                      initializer names = PyTorch parameter names)
  x.npy, y.npy        the batch
  trainable.txt       the names of the trainable parameters, one per line
  loss.npy            the loss before each of the 3 steps (float64)
  grad/<name>.npy     every trainable parameter's gradient at step 1
  stats1/<name>.npy   running mean/var of every BatchNorm after step 1
  after/<name>.npy    every parameter and running statistic after 3 steps
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
for sub in ("grad", "stats1", "after"):
    os.makedirs(os.path.join(out, sub), exist_ok=True)

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

x = torch.randn(4, 3, 64, 64, generator=gen)
nclass = 5 if mode == "last" else 10
y = torch.randint(0, nclass, (4,), generator=gen)

model.eval()
torch.onnx.export(model, x, os.path.join(out, "model.onnx"), opset_version=13,
                  training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, do_constant_folding=False)
np.save(os.path.join(out, "x.npy"), x.numpy())
np.save(os.path.join(out, "y.npy"), y.numpy().astype(np.int32))

if mode == "all":
    trainable = dict(model.named_parameters())
else:
    keep = {id(p) for p in list(last_block.parameters()) + list(head.parameters())}
    trainable = {n: p for n, p in model.named_parameters() if id(p) in keep}
for n, p in model.named_parameters():
    p.requires_grad_(n in trainable)
with open(os.path.join(out, "trainable.txt"), "w") as f:
    f.write("".join(n + "\n" for n in trainable))

decay = [p for n, p in trainable.items() if p.dim() > 1]
no_decay = [p for n, p in trainable.items() if p.dim() <= 1]
if opt_name == "sgd":
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.01, momentum=0.9)
else:
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3)


def set_modes():
    """BatchNorms train when their own parameters do; everything else (Dropout) is in eval."""
    model.eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d) and m.weight.requires_grad:
            m.train()


losses = []
for step in range(3):
    set_modes()
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    losses.append(loss.item())
    if step == 0:
        for n, p in trainable.items():
            np.save(os.path.join(out, "grad", n + ".npy"), p.grad.numpy())
        for n, b in model.named_buffers():
            if n.endswith("running_mean") or n.endswith("running_var"):
                np.save(os.path.join(out, "stats1", n + ".npy"), b.numpy())
    opt.step()
np.save(os.path.join(out, "loss.npy"), np.array(losses, dtype=np.float64))
for n, p in model.named_parameters():
    np.save(os.path.join(out, "after", n + ".npy"), p.detach().numpy())
for n, b in model.named_buffers():
    if n.endswith("running_mean") or n.endswith("running_var"):
        np.save(os.path.join(out, "after", n + ".npy"), b.numpy())
open(stamp, "w").close()
