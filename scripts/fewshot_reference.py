#!/usr/bin/python3
"""numpy reference for graft's few-shot methods (tests/test_transfer_fewshot.c).

  fewshot_reference.py DIR

Reads DIR/X.npy (n, dim) float32, DIR/support.npy (E, way*shot) and DIR/query.npy
(E, way*query) int64, DIR/shape.npy [way, shot, query]; writes DIR/pred_<method>.npy (E,
way*query) int32 for simpleshot, knn and imprint, each written from its paper's definition:
  simpleshot: x - mean(support), L2-normalise, nearest class mean (Euclidean)
  knn:        cosine similarity, the class of the most similar support row
  imprint:    L2-normalise rows, class weights = normalised mean, argmax of the dot product
  transductive: simpleshot's rows and prototypes, then 10 rounds of soft k-means over the
              queries (Ren et al. 2018): weights softmax(-5 * squared distance), prototypes =
              (sum of the class's support + weighted sum of queries) / (shot + sum of weights)"""
import os
import sys

import numpy as np

d = sys.argv[1]
X = np.load(os.path.join(d, "X.npy")).astype(np.float64)
S = np.load(os.path.join(d, "support.npy"))
Q = np.load(os.path.join(d, "query.npy"))
way, shot, query = np.load(os.path.join(d, "shape.npy")).tolist()


def unit(a):
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.where(n > 0, n, 1)


out = {m: [] for m in ("simpleshot", "knn", "imprint", "transductive")}
for s, q in zip(S, Q):
    xs, xq = X[s], X[q]
    c = xs.mean(0)
    ps = unit(xs - c).reshape(way, shot, -1).mean(1)
    dist = ((unit(xq - c)[:, None, :] - ps[None]) ** 2).sum(-1)
    out["simpleshot"].append(dist.argmin(1))
    sim = unit(xq) @ unit(xs).T
    out["knn"].append(sim.argmax(1) // shot)
    w = unit(unit(xs).reshape(way, shot, -1).mean(1))
    out["imprint"].append((unit(xq) @ w.T).argmax(1))
    ss, qq, pt = unit(xs - c).reshape(way, shot, -1), unit(xq - c), ps.copy()
    for _ in range(10):
        d2 = ((qq[:, None, :] - pt[None]) ** 2).sum(-1)
        z = np.exp(-5.0 * (d2 - d2.min(1, keepdims=True)))
        z /= z.sum(1, keepdims=True)
        pt = (ss.sum(1) + z.T @ qq) / (shot + z.sum(0))[:, None]
    out["transductive"].append(((qq[:, None, :] - pt[None]) ** 2).sum(-1).argmin(1))
for m, p in out.items():
    np.save(os.path.join(d, f"pred_{m}.npy"), np.array(p, dtype=np.int32))
