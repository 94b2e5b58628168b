#!/usr/bin/env python3
"""Reference for graft's closed-form CORAL (tests/test_transfer_coral.c), into the folder argv[1]:
Sun, Feng & Saenko 2016's Algorithm 1 with scipy's matrix powers, in double:
  Zs, Zt = each domain standardised (mean 0, std with ddof 0, 1 for a constant feature)
  Cs = np.cov(Zs) + I, Ct = np.cov(Zt) + I
  aligned = (Zs @ fractional_matrix_power(Cs, -1/2) @ fractional_matrix_power(Ct, 1/2)) * std_t + mean_t
Cases (float32 .npy: {case}_xs, {case}_xt, {case}_aligned):
  small  150 source and 120 target rows of 16 correlated features, one constant in the source
  wide   200 features, 80 target rows (a rank-deficient covariance the identity regularises)
  shift  4 Gaussian classes in 8 features; the target the same classes under a per-feature
         scale and offset (plus labels shift_ys, shift_yt): a head fitted on the raw source
         fails on it, one fitted on the aligned source does not
"""
import os
import sys

import numpy as np
from scipy.linalg import fractional_matrix_power

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)


def standardise(x):
    m, s = x.mean(0), x.std(0)
    s[s <= 1e-12] = 1
    return (x - m) / s, m, s


def coral(xs, xt):
    zs, _, _ = standardise(xs)
    zt, mt, st = standardise(xt)
    d = xs.shape[1]
    cs = np.cov(zs, rowvar=False) + np.eye(d)
    ct = np.cov(zt, rowvar=False) + np.eye(d)
    a = np.real(fractional_matrix_power(cs, -0.5) @ fractional_matrix_power(ct, 0.5))
    return (zs @ a) * st + mt


def save(case, xs, xt, **more):
    xs, xt = xs.astype(np.float32), xt.astype(np.float32)
    np.save(f"{out}/{case}_xs.npy", xs)
    np.save(f"{out}/{case}_xt.npy", xt)
    np.save(f"{out}/{case}_aligned.npy", coral(xs.astype(np.float64), xt.astype(np.float64)).astype(np.float32))
    for k, v in more.items():
        np.save(f"{out}/{case}_{k}.npy", v)


d = 16
xs = rng.normal(size=(150, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d) * 3
xs[:, 3] = 2.5
xt = rng.normal(size=(120, d)) @ rng.normal(size=(d, d)) * 0.5 - 1
save("small", xs, xt)

d = 200
xs = rng.normal(size=(300, d)) @ rng.normal(size=(d, d)) / 10
xt = rng.normal(size=(80, d)) @ rng.normal(size=(d, d)) / 10 + 0.3
save("wide", xs, xt)

d, k = 8, 4
centres = rng.normal(size=(k, d)) * 2.0
ys = rng.integers(0, k, 400)
yt = rng.integers(0, k, 400)
xs = centres[ys] + rng.normal(size=(400, d))
xt = (centres[yt] + rng.normal(size=(400, d))) * rng.uniform(0.2, 3.0, d) + rng.normal(size=d) * 10
save("shift", xs, xt, ys=ys.astype(np.int32), yt=yt.astype(np.int32))
