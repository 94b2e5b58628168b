#!/usr/bin/python3
"""semi_reference.py OUTDIR — scikit-learn's replay of graft's self-training
(src/transfer/semi.c) for tests/test_transfer_semi.c, as .npy files in OUTDIR.

Data: 4 overlapping Gaussian classes in 12 dimensions with uneven feature scales; 5 labelled rows
per class (X, y), 600 unlabelled rows (XU, with their labels yu for reporting), 400 test rows.
Replay (scikit-learn's SelfTrainingClassifier, criterion "threshold", written out so that the
class-balanced variant can be replayed too): StandardScaler + LogisticRegression(multinomial,
lbfgs, C=0.5, tight tol) on the labelled rows; then up to 5 rounds, each adding for good the
unlabelled rows predicted with more than 0.9 confidence (balanced: at most ceil(600 / (4 * 5)) =
30 a class a round, most confident first, ties to the lower row) and refitting. Saves each
round's pseudo-label count and the final model's test probabilities, for both variants; prints
the supervised-only and self-trained test accuracies.
"""
import os
import sys
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.RandomState(7)
K, D = 4, 12
centers = rng.randn(K, D) * 0.7
scale = rng.uniform(0.5, 3.0, D)


def draw(n, per_class=None):
    y = np.repeat(np.arange(K), per_class) if per_class else rng.randint(0, K, n)
    X = (centers[y] + rng.randn(len(y), D)) * scale
    return X.astype(np.float32), y.astype(np.int32)


X, y = draw(0, 5)
XU, yu = draw(600)
XT, yt = draw(400)


def fit(Xa, ya):
    s = StandardScaler().fit(Xa)
    m = LogisticRegression(multi_class="multinomial", solver="lbfgs", C=0.5, tol=1e-10,
                           max_iter=20000).fit(s.transform(Xa.astype(np.float64)), ya)
    return lambda Z: m.predict_proba(s.transform(Z.astype(np.float64)))


def self_train(balance):
    model, used = fit(X, y), np.zeros(len(XU), bool)
    Xs, ys, counts = X, y, []
    for r in range(5):
        p = model(XU).astype(np.float32)
        pred, conf = p.argmax(1), p.max(1)
        new = []
        for c in range(K):
            rows = [i for i in range(len(XU)) if not used[i] and pred[i] == c and conf[i] > 0.9]
            rows.sort(key=lambda i: (-conf[i], i))
            new += rows[:30] if balance else rows
        counts.append(len(new))
        if not new:
            break
        used[new] = True
        Xs = np.concatenate([Xs, XU[new]])
        ys = np.concatenate([ys, pred[new].astype(np.int32)])
        model = fit(Xs, ys)
    return model, counts + [0] * (5 - len(counts))


supervised = (fit(X, y)(XT).argmax(1) == yt).mean()
for name, a in (("X", X), ("y", y), ("XU", XU), ("yu", yu), ("XT", XT), ("yt", yt)):
    np.save(os.path.join(out, name + ".npy"), a)
for tag, balance in (("plain", False), ("balanced", True)):
    model, counts = self_train(balance)
    final = model(XT)
    np.save(os.path.join(out, tag + "_counts.npy"), np.array(counts, np.int64))
    np.save(os.path.join(out, tag + "_prob.npy"), final.astype(np.float32))
    print(f"{tag}: supervised {supervised:.4f}, self-trained {(final.argmax(1) == yt).mean():.4f}, "
          f"pseudo-labels per round {counts}")
