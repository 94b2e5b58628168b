#!/usr/bin/env python3
"""PyTorch reference for graft adapt (tests/test_transfer_adapt.c), into the folder argv[1]:

  source.onnx      a small BatchNorm CNN trained here on generated 16x16 gray images of 4
                   classes (horizontal stripes, vertical stripes, checkerboard, a centre blob,
                   random phase and noise); ONNX opset 13 with its BatchNorms kept, output logits
  source_1ch.onnx  the same network reading one channel (graft's images are 3-channel: refused)
  source_nobn.onnx the same network without its BatchNorms (adabn and tent: refused)
  target.npy       512 images of the same classes under a shift: low contrast and brighter
  target_y.npy     (0.35 x + 140), their labels (int64, for reporting only)
  source-images-idx3-ubyte, source-labels-idx1-ubyte, target-images-idx3-ubyte,
  target-labels-idx1-ubyte   the source's training images and the target in IDX files, for
                   graft finetune ... --target (tests/test_cli_adapt.sh)
  inverted-images-idx3-ubyte, inverted-labels-idx1-ubyte   another target: 512 new images of
                   the source's kind with their colours inverted (255 - x)
  adabn/<init>.npy the BatchNorm statistics PyTorch's AdaBN gives on the target as one batch:
                   reset_running_stats, momentum=None, a training-mode forward (graft's loader
                   turns a gray image into three equal channels and scales by 1/255)
  tent/<init>.npy  TENT over the target as one batch for 3 steps (Adam, lr 1e-3, BatchNorm weight
                   and bias only, batch statistics), then the AdaBN statistics of the result
  shot/<init>.npy  SHOT for 2 epochs of one batch: pseudo-labels from the eval-mode features by
                   the weighted-centroid clustering (cosine, one refinement), loss IM + 0.3 CE,
                   SGD nesterov momentum 0.9, weight decay 1e-3, lr 1e-3 cosine to 1e-4 over the
                   2 steps, the classifier frozen, BatchNorms in training mode
"""
import math
import os
import sys

import numpy as np
import torch
from torch import nn

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
rng = np.random.default_rng(0)
S = 16


def images(n, shift):
    y = rng.integers(0, 4, n)
    ii, jj = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
    x = np.zeros((n, S, S))
    for k in range(n):
        p = rng.integers(0, 4)
        if y[k] == 0:
            v = ((ii + p) // 2) % 2
        elif y[k] == 1:
            v = ((jj + p) // 2) % 2
        elif y[k] == 2:
            v = (((ii + p) // 2) + ((jj + p) // 2)) % 2
        else:
            c = 7.5 + rng.uniform(-2, 2, 2)
            v = ((ii - c[0]) ** 2 + (jj - c[1]) ** 2 < 16).astype(float)
        x[k] = 40 + 170 * v + rng.normal(0, 20, (S, S))
    x = np.clip(x, 0, 255)
    if shift:
        x = 0.35 * x + 140
    return np.round(x).astype(np.uint8), y


class Net(nn.Module):
    def __init__(self, cin=3, bn=True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16) if bn else nn.Identity()
        self.fc = nn.Linear(16, 4)

    def features(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x):
        return self.fc(self.features(x))


def tensor(x):  # graft's loader: gray to three equal channels, / 255
    t = torch.tensor(x, dtype=torch.float32) / 255.0
    return t[:, None].repeat(1, 3, 1, 1)


def export(model, path, cin=3):
    torch.onnx.export(model.eval(), torch.zeros(2, cin, S, S), path, opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def bn_state(model, d):
    os.makedirs(os.path.join(out, d), exist_ok=True)
    for name, t in model.state_dict().items():
        if "num_batches" not in name:
            np.save(os.path.join(out, d, name + ".npy"), t.detach().numpy().astype(np.float32))


def adabn(model, x):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model.eval()(x).argmax(1).numpy() == y).mean())


def write_idx(name, x, y):
    with open(os.path.join(out, name + "-images-idx3-ubyte"), "wb") as f:
        f.write(np.array([0x803, len(x), S, S], ">u4").tobytes() + x.tobytes())
    with open(os.path.join(out, name + "-labels-idx1-ubyte"), "wb") as f:
        f.write(np.array([0x801, len(y)], ">u4").tobytes() + y.astype(np.uint8).tobytes())


def train_source():
    xs, ys = images(2048, False)
    write_idx("source", xs, ys)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    X, Y = tensor(xs), torch.tensor(ys)
    for step in range(300):
        i = torch.randint(0, len(X), (64,))
        model.train()
        loss = nn.functional.cross_entropy(model(X[i]), Y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def tent(model, x, steps=3):
    params = [p for m in model.modules() if isinstance(m, nn.BatchNorm2d)
              for p in (m.weight, m.bias)]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, 1e-3)
    for _ in range(steps):
        model.train()
        z = model(x)
        loss = -(z.softmax(1) * z.log_softmax(1)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return adabn(model, x)


def shot_labels(model, x):
    with torch.no_grad():
        model.eval()
        f = model.features(x).double()
        p = model.fc(f.float()).softmax(1).double()
    f = torch.cat([f, torch.ones(len(f), 1, dtype=torch.float64)], 1)
    f = f / f.norm(dim=1, keepdim=True)
    K = p.shape[1]
    present = torch.bincount(p.argmax(1), minlength=K) > 0
    aff = p
    for _ in range(2):
        c = aff.t() @ f / (1e-8 + aff.sum(0)[:, None])
        c = c / c.norm(dim=1, keepdim=True)
        d = f @ c.t()
        d[:, ~present] = -math.inf
        lab = d.argmax(1)
        aff = torch.eye(K, dtype=torch.float64)[lab]
    return lab


def shot(model, x, epochs=2):
    for p in model.fc.parameters():
        p.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    opt = torch.optim.SGD(params, 1e-3, momentum=0.9, nesterov=True, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=1e-4)
    for _ in range(epochs):
        lab = shot_labels(model, x)
        model.train()
        z = model(x)
        p = z.softmax(1)
        im = -(p * torch.log(p + 1e-5)).sum(1).mean()
        m = p.mean(0)
        im = im + (m * torch.log(m + 1e-5)).sum()
        loss = im + 0.3 * nn.functional.cross_entropy(z, lab)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model


def main():
    model = train_source()
    export(model, os.path.join(out, "source.onnx"))
    one = Net(1)
    export(one, os.path.join(out, "source_1ch.onnx"), 1)
    export(Net(bn=False), os.path.join(out, "source_nobn.onnx"))
    xt, yt = images(512, True)
    np.save(os.path.join(out, "target.npy"), xt)
    np.save(os.path.join(out, "target_y.npy"), yt.astype(np.int64))
    write_idx("target", xt, yt)
    xi, yi = images(512, False)
    write_idx("inverted", 255 - xi, yi)
    X = tensor(xt)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    print("source-only target accuracy", accuracy(model, X, yt))
    for name, fn in (("adabn", adabn), ("tent", tent), ("shot", shot)):
        model.load_state_dict(state)
        for p in model.parameters():
            p.requires_grad_(True)
        fn(model, X)
        bn_state(model, name)
        print(name, "target accuracy", accuracy(model, X, yt))


main()
