#!/usr/bin/python3
"""transfer_ref.py — the reference side of `make bench-transfer` (bench/transfer.sh).

  transfer_ref.py prep WORK
      The splits both sides use, as PNG files and CSV lists under WORK (seeded, so every run
      makes the same ones):
        task A (PP-OCR -> Fashion-MNIST): a pool of 3,000 training images (300 per class) and
          2,000 test images (200 per class); for k in 1, 5, 10, 50 and seeds 1..5, k images per
          class drawn from the pool: a_k{k}_s{seed}.csv; the test images: a_test/<class>/.
        task B (the second task): source = Fashion-MNIST classes 0-4 (T-shirt/top, Trouser,
          Pullover, Dress, Coat), 1,000 training images each (b_source.csv); target = classes
          5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot): a pool of 300 per class, k-shot lists
          b_k{k}_s{seed}.csv and 200 test images per class in b_test/<class>/.
  transfer_ref.py probe WORK MODEL LAYER G [LIST]
      Task A (only the list LIST when given: the single-probe workflow) with onnxruntime-node +
      scikit-learn, timed end to end from the PNG files: decode,
      torchvision's Resize((64, 64)) + ImageNet normalisation on the grey image copied to 3
      channels, the model cut at LAYER (python3-onnx makes LAYER the output) run by
      onnxruntime-node (2 threads, batches of 64), adaptive_avg_pool2d(x, G) (G = 2 or 4), then for
      every list StandardScaler + LogisticRegression(C=1) fitted on the k-shot rows and scored on
      the test rows. Prints one JSON object: {"acc": {"k/seed": accuracy}, "seconds": wall time}.
  transfer_ref.py second WORK PRETRAINED.onnx TINY.onnx [K,K.. [SEED,SEED..]]
      Task B with Debian's PyTorch from the same weights (the tiny CNN pretrained by graft,
      and its random init): probe, fine-tuning (LP-FT) and the CNN from scratch, each recipe as
      graft's (see the comments in second()); all k and seeds unless given. Prints
      {"acc": {"method/k/seed": accuracy}, "seconds": {method: wall time}}.
"""
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"]
KS = [1, 5, 10, 50]
SEEDS = [1, 2, 3, 4, 5]


def idx_images(name):
    import gzip
    with gzip.open(f"{FASHION}/{name}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{FASHION}/{name}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y


def folder_name(c):
    return NAMES[c].replace("/", "_")


def save_png(path, img):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path)


def write_list(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(rows)


def pick(y, classes, per_class, rng):
    """per_class indices of each class, in class order."""
    return [i for c in classes for i in rng.choice(np.flatnonzero(y == c), per_class, replace=False)]


def make_task(work, tag, x, y, xt, yt, classes, pool_n, test_n, rng):
    pool = pick(y, classes, pool_n, rng)
    for i in pool:
        save_png(f"{work}/{tag}_pool/{i}.png", x[i])
    test = pick(yt, classes, test_n, rng)
    for i in test:
        save_png(f"{work}/{tag}_test/{folder_name(yt[i])}/{i}.png", xt[i])
    pool = np.array(pool)
    for k in KS:
        for s in SEEDS:
            r = np.random.default_rng(1000 * k + s)
            rows = []
            for c in classes:
                for i in r.choice(pool[y[pool] == c], k, replace=False):
                    rows.append([f"{tag}_pool/{i}.png", folder_name(c)])
            write_list(f"{work}/{tag}_k{k}_s{s}.csv", rows)


def prep(work):
    if os.path.exists(f"{work}/done"):
        return
    x, y = idx_images("train")
    xt, yt = idx_images("t10k")
    rng = np.random.default_rng(20261201)
    make_task(work, "a", x, y, xt, yt, range(10), 300, 200, rng)
    make_task(work, "b", x, y, xt, yt, range(5, 10), 300, 200, rng)
    src = pick(y, range(5), 1000, rng)
    for i in src:
        save_png(f"{work}/b_source/{i}.png", x[i])
    write_list(f"{work}/b_source.csv", [[f"b_source/{i}.png", folder_name(y[i])] for i in src])
    open(f"{work}/done", "w").close()


def read_list(work, name):
    with open(f"{work}/{name}") as f:
        r = csv.reader(f)
        next(r)
        return [(f"{work}/{p}", lab) for p, lab in r]


def test_rows(work, tag):
    rows = []
    for lab in sorted(os.listdir(f"{work}/{tag}_test")):
        for f in sorted(os.listdir(f"{work}/{tag}_test/{lab}")):
            rows.append((f"{work}/{tag}_test/{lab}/{f}", lab))
    return rows


def preprocess(paths, size, mean, std):
    from PIL import Image
    from torchvision import transforms
    t = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(mean, std)])
    return np.stack([t(Image.open(p).convert("RGB")).numpy() for p in paths]).astype(np.float32)


def cut_model(model, layer, out):
    import onnx
    from onnx import helper, TensorProto
    m = onnx.load(model)
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info(layer, TensorProto.FLOAT, None))
    onnx.save(m, out)


def grid(f, g):
    """adaptive_avg_pool2d(x, g), flattened per channel: cell i spans [floor(i h / g), ceil((i + 1) h / g))."""
    n, c, h, w = f.shape
    hs = [(i * h // g, -(-(i + 1) * h // g)) for i in range(g)]
    ws = [(j * w // g, -(-(j + 1) * w // g)) for j in range(g)]
    cells = [f[:, :, a:b, p:q].mean(axis=(2, 3)) for a, b in hs for p, q in ws]
    return np.stack(cells, axis=2).reshape(n, c * g * g)


def probe(work, model, layer, side, only=None):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    t0 = time.time()
    lists = {(k, s): read_list(work, f"a_k{k}_s{s}.csv") for k in KS for s in SEEDS}
    if only:  # one list: the single-probe workflow
        lists = {key: rows for key, rows in lists.items() if f"a_k{key[0]}_s{key[1]}.csv" == only}
    test = test_rows(work, "a")
    paths = sorted({p for rows in lists.values() for p, _ in rows}) + [p for p, _ in test]
    x = preprocess(paths, 64, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    np.save(f"{work}/ref_x.npy", x)
    cut_model(model, layer, f"{work}/ref_cut.onnx")
    env = dict(os.environ, ORT_THREADS="2", ORT_BATCH="64")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(["node", f"{here}/../scripts/ort_run.js", f"{work}/ref_cut.onnx", f"{work}/ref_x.npy",
                    f"{work}/ref_f.npy"], check=True, env=env, stderr=subprocess.DEVNULL)
    feats = grid(np.load(f"{work}/ref_f.npy"), side)
    row = {p: i for i, p in enumerate(paths)}
    Xte = feats[[row[p] for p, _ in test]]
    yte = [lab for _, lab in test]
    acc = {}
    for (k, s), rows in lists.items():
        X = feats[[row[p] for p, _ in rows]]
        sc = StandardScaler().fit(X)
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(X), [lab for _, lab in rows])
        acc[f"{k}/{s}"] = float((clf.predict(sc.transform(Xte)) == np.array(yte)).mean())
    print(json.dumps({"acc": acc, "seconds": time.time() - t0}))


# ---- task B: PyTorch's fine-tuning and scratch training, graft's recipe step for step ----

FM_MEAN, FM_STD = 0.2860, 0.3530


def load_images(rows):
    from PIL import Image
    import torch
    x = np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255 for p, _ in rows])
    x = (x - FM_MEAN) / FM_STD
    return torch.from_numpy(np.repeat(x[:, None], 3, axis=1).copy())


def tiny_cnn(nclass):
    import torch
    from torch import nn
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
    from make_tiny_cnn import TinyCNN
    torch.manual_seed(1234)  # make_tiny_cnn.py's initialisation
    m = TinyCNN()
    m.fc = nn.Linear(16, nclass)
    return m


def load_onnx_weights(m, path):
    """The trunk of a graft-made ONNX file (initializers named as the PyTorch module's)."""
    import onnx
    import torch
    from onnx import numpy_helper
    w = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    sd = m.state_dict()
    for k in sd:
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        sd[k] = torch.from_numpy(w[k].copy())
    m.load_state_dict(sd)


def features(m, x):
    import torch
    m.eval()
    with torch.no_grad():
        h = m.pool(torch.relu(m.bn1(m.conv1(x))))
        h = torch.relu(m.bn2(m.conv2(h)))
        return torch.flatten(m.gap(h), 1).numpy()


def split_val(y, frac, seed):
    """Stratified: round(frac * count) per class (at least 1, never all) to validation."""
    if frac <= 0:
        return np.arange(len(y)), np.array([], dtype=int)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        mine = np.flatnonzero(y == c)
        k = min(max(1, int(round(frac * len(mine)))), len(mine) - 1)
        val += list(rng.choice(mine, k, replace=False)) if k > 0 else []
    val = np.sort(np.array(val, dtype=int))
    return np.setdiff1d(np.arange(len(y)), val), val


def lr_at(t, lr, warmup, total):
    """gr_sched_lr's cosine: linear warm-up, then cosine to lr / 100."""
    import math
    if t < warmup:
        return lr * (t + 1) / warmup
    span = total - warmup
    f = min((t - warmup) / span, 1.0) if span > 0 else 1.0
    return lr * 0.01 + (lr - lr * 0.01) * 0.5 * (1 + math.cos(math.pi * f))


def train_recipe(m, x, y, trainable, lr, epochs, seed, frac, bn_frozen=False):
    """Phase 2 of graft's recipe: AdamW (decay 0.01 on weight matrices), warm-up + cosine, label
    smoothing 0.1, flips, batch min(32, n) with drop_last, early stopping (patience 5) on a
    stratified validation split keeping the weights of the lowest validation loss, the start
    counting as the first best; BatchNorms train where their parameters do, else (or with
    bn_frozen: always) stay in inference mode."""
    import copy
    import torch
    from torch import nn
    tr, va = split_val(y, frac, seed)
    ntr = len(tr)
    batch = min(32, ntr)
    spe = max(1, ntr // batch)
    total = spe * epochs
    warmup = min(spe, total // 10) if total >= 20 else 0
    params = [p for n, p in m.named_parameters() if n in trainable]
    for n, p in m.named_parameters():
        p.requires_grad_(n in trainable)
    decay = [p for n, p in m.named_parameters() if n in trainable and p.dim() > 1]
    rest = [p for n, p in m.named_parameters() if n in trainable and p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=lr)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    g = torch.Generator().manual_seed(seed)
    yt = torch.from_numpy(y.astype(np.int64))

    def set_modes():
        m.train()
        for bn in (m.bn1, m.bn2):
            if bn_frozen or not any(n.startswith(("bn1." if bn is m.bn1 else "bn2.")) for n in trainable):
                bn.eval()

    def evaluate():
        m.eval()
        with torch.no_grad():
            out = m(x[va])
            return (out.argmax(1) == yt[va]).float().mean().item(), nn.functional.cross_entropy(out, yt[va]).item()

    best = evaluate() if len(va) else None
    best_state, bad, step = copy.deepcopy(m.state_dict()), 0, 0
    for e in range(epochs):
        if len(va) and bad >= 5:
            break
        set_modes()
        perm = tr[torch.randperm(ntr, generator=g).numpy()]
        for b in range(spe):
            idx = perm[b * batch:(b + 1) * batch]
            xb = x[idx].clone()
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb[flip] = torch.flip(xb[flip], dims=[3])
            for group in opt.param_groups:
                group["lr"] = lr_at(step, lr, warmup, total)
            opt.zero_grad()
            loss_fn(m(xb), yt[idx]).backward()
            opt.step()
            step += 1
        if len(va):
            acc, loss = evaluate()
            if loss < best[1]:
                best, best_state, bad = (acc, loss), copy.deepcopy(m.state_dict()), 0
            else:
                bad += 1
    if len(va):
        m.load_state_dict(best_state)
    return m


def size_rules(n, nclass):
    s = n / nclass
    frac = 0 if s < 20 else 0.2 if s < 200 else 0.1
    ntr = n - int(round(frac * n))
    spe = max(1, ntr // min(32, ntr))
    return frac, s, spe


def accuracy(m, x, y):
    import torch
    m.eval()
    with torch.no_grad():
        return float((m(x).argmax(1).numpy() == y).mean())


def second(work, pre, tiny, ks=None, seeds=None):
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    torch.set_num_threads(2)
    test = test_rows(work, "b")
    names = sorted({lab for _, lab in test})
    xte, yte = load_images(test), np.array([names.index(lab) for _, lab in test])
    acc, secs = {}, {"probe": 0.0, "finetune": 0.0, "scratch": 0.0}
    for k in ks or KS:
        for s in seeds or SEEDS:
            rows = read_list(work, f"b_k{k}_s{s}.csv")
            x, y = load_images(rows), np.array([names.index(lab) for _, lab in rows])
            frac, per, spe = size_rules(len(y), len(names))
            # probe: scikit-learn on the pretrained trunk's features
            t0 = time.time()
            m = tiny_cnn(len(names))
            load_onnx_weights(m, pre)
            f, fte = features(m, x), features(m, xte)
            sc = StandardScaler().fit(f)
            clf = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(f), y)
            acc[f"probe/{k}/{s}"] = float((clf.predict(sc.transform(fte)) == yte).mean())
            secs["probe"] += time.time() - t0
            # fine-tuning (LP-FT): the probe (fitted on the training part) as the head, then the
            # last blocks (last:1 below 20 images per class: conv2 + bn2; else all) at 1e-4, the
            # BatchNorms in inference mode (graft's rule after a probe head)
            t0 = time.time()
            tr, _ = split_val(y, frac, s)
            sc = StandardScaler().fit(f[tr])
            clf = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(f[tr]), y[tr])
            with torch.no_grad():
                W = clf.coef_ / sc.scale_
                m.fc.weight.copy_(torch.from_numpy(W).float())
                m.fc.bias.copy_(torch.from_numpy(clf.intercept_ - W @ sc.mean_).float())
            trainable = {n for n, _ in m.named_parameters() if per >= 20 or not n.startswith(("conv1.", "bn1."))}
            epochs = min(max(-(-300 // spe), 5), 30)
            train_recipe(m, x, y, trainable, 1e-4, epochs, s, frac, bn_frozen=True)
            acc[f"finetune/{k}/{s}"] = accuracy(m, xte, yte)
            secs["finetune"] += time.time() - t0
            # scratch: every parameter, AdamW 1e-2, 500 updates in whole epochs on every image, no
            # validation split (graft --steps 500 --val 0)
            t0 = time.time()
            m = tiny_cnn(len(names))
            torch.manual_seed(s)  # a new head per seed, as graft draws one per --seed
            m.fc.reset_parameters()
            spe_all = max(1, len(y) // min(32, len(y)))
            train_recipe(m, x, y, {n for n, _ in m.named_parameters()}, 1e-2, -(-500 // spe_all), s, 0)
            acc[f"scratch/{k}/{s}"] = accuracy(m, xte, yte)
            secs["scratch"] += time.time() - t0
    print(json.dumps({"acc": acc, "seconds": secs}))


# ---- the side-by-side tables ----

def mean_se(v):
    v = np.array(v, dtype=float)
    return v.mean(), (v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0)


def read_graft(path):
    out = {}
    for line in open(path):
        m, k, s, a = line.split()
        out.setdefault((m, int(k)), []).append(float(a))
    return out


def read_ref(path, method="probe"):
    out = {}
    for key, a in json.load(open(path))["acc"].items():
        parts = key.split("/")
        m, k = (method, parts[0]) if len(parts) == 2 else (parts[0], parts[1])
        out.setdefault((m, int(k)), []).append(a)
    return out


def table(work, a_secs, a4_secs, warm_secs, b_probe, b_ft, b_scratch, one_graft, one_ref):
    ga, ra = read_graft(f"{work}/a_graft.txt"), read_ref(f"{work}/a_ref.json")
    ra.update(read_ref(f"{work}/a_ref4.json", "grid4"))
    gb, rb = read_graft(f"{work}/b_graft.txt"), read_ref(f"{work}/b_ref.json")
    ref_a = json.load(open(f"{work}/a_ref.json"))["seconds"]
    ref_a4 = json.load(open(f"{work}/a_ref4.json"))["seconds"]
    ref_b = json.load(open(f"{work}/b_ref.json"))["seconds"]
    gsecs = {"probe": float(b_probe), "finetune": float(b_ft), "scratch": float(b_scratch)}
    worst, flagged = -1e9, []
    head = f"{'method':10s} {'side':8s}" + "".join(f"{'k=%d' % k:>15s}" for k in KS) + f"{'time':>10s}"

    def rows(task, methods, g, r, gtime, rtime, rname):
        nonlocal worst
        print(head)
        for m in methods:
            for side, d, t in (("graft", g, gtime[m]), (rname, r, rtime[m])):
                cells = "".join("%15s" % ("%.1f +- %.1f" % tuple(100 * x for x in mean_se(d[(m, k)]))) for k in KS)
                print(f"{m if side == 'graft' else '':10s} {side:8s}{cells}{t:9.1f}s")
            gaps = []
            for k in KS:
                (mg, seg), (mr, ser) = mean_se(g[(m, k)]), mean_se(r[(m, k)])
                gap = 100 * (mr - mg)
                bound = max(1.0, 100 * float(np.hypot(seg, ser)))  # the standard error of the gap
                worst = max(worst, gap)
                if gap > bound:
                    flagged.append(f"{task} {m} k={k}: graft {100 * mg:.1f}% is {gap:.1f} points below {rname} "
                                   f"{100 * mr:.1f}% (bound {bound:.1f})")
                gaps.append(gap)
            print(f"{'':10s} {'gap':8s}" + "".join("%15s" % ("%+.1f" % -x) for x in gaps))

    print("task A: PP-OCRv4 text detector -> Fashion-MNIST, linear probe (C = 1) on p2o.Add.71 pooled on a 2x2 "
          "grid (probe: the issue's reference recipe) and on p2o.Add.75 on a 4x4 grid (grid4: what layer auto "
          "picks in the demo), 5 seeds, 2,000 test images")
    rows("A", ["probe", "grid4"], ga, ra, {"probe": float(a_secs), "grid4": float(a4_secs)},
         {"probe": ref_a, "grid4": ref_a4}, "ref")
    print("  (ref: onnxruntime-node features + scikit-learn LogisticRegression, one process; the issue's reference "
          "row, its own splits: 52.6 71.7 77.2 84.7)")
    print()
    print("task B: tiny CNN pretrained by graft on Fashion-MNIST classes 0-4 -> classes 5-9, 5 seeds, "
          "1,000 test images")
    rows("B", ["probe", "finetune", "scratch"], gb, rb, gsecs, ref_b, "pytorch")
    for k in KS:
        best = max(mean_se(gb[(m, k)])[0] for m in ("probe", "finetune"))
        scratch = mean_se(gb[("scratch", k)])[0]
        if best <= scratch:
            print(f"warning: task B, k={k}: transfer ({100 * best:.1f}%) does not beat the CNN from scratch "
                  f"({100 * scratch:.1f}%): negative transfer")
    for f in flagged:
        print("above the parity bound: " + f)
    if not flagged:
        print("every method and k within max(1 point, the gap's standard error) of the reference")
    print(f"task A, all 20 probes (20 graft processes, cold cache, against one reference process): "
          f"graft {float(a_secs):.1f} s, reference {ref_a:.1f} s ({ref_a / float(a_secs):.1f}x)")
    print(f"one probe end to end (k = 50, 500 + 2,000 images, cold cache): graft {float(one_graft):.2f} s, "
          f"reference {float(one_ref):.2f} s; graft fit with a warm cache: {float(warm_secs):.2f} s")
    print(f"linear probe workflow {float(one_ref) / float(one_graft):.1f}x faster than pytorch, "
          f"worst accuracy gap {worst:.1f} points")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prep":
        prep(sys.argv[2])
    elif cmd == "probe":
        probe(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6] if len(sys.argv) > 6 else None)
    elif cmd == "table":
        table(*sys.argv[2:11])
    elif cmd == "second":
        ints = lambda i: [int(v) for v in sys.argv[i].split(",")] if len(sys.argv) > i else None
        second(sys.argv[2], sys.argv[3], sys.argv[4], ints(5), ints(6))
    else:
        sys.exit(f"unknown command {cmd}")
