#!/usr/bin/python3
"""fit_reference.py OUTDIR — scikit-learn's results for tests/test_transfer_fit.c.

Makes data with fixed seeds, fits scikit-learn (Debian's python3-sklearn 1.2) and saves inputs
and results as .npy files in OUTDIR:
  logreg_<case>_*   LogisticRegression(multinomial, lbfgs, tight tol) after StandardScaler, for
                    several C (cases in logreg_cases.npy: rows (nclass, C))
  cv_*              StratifiedKFold fold ids and LogisticRegressionCV (Cs=10, cv=5)
  knn_*             KNeighborsClassifier(metric="cosine", weights=similarity) probabilities
  ncm_*             NearestCentroid centroids and predictions (after StandardScaler)
  fm_*              raw Fashion-MNIST pixels / 255 (3,000 train, 2,000 test images), C=0.01
"""
import gzip
import os
import sys
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def save(name, a):
    np.save(os.path.join(out, name + ".npy"), a)


def blobs(rng, n, dim, k, spread, scale):
    """Overlapping Gaussian classes with uneven sizes and feature scales, labels unsorted."""
    centers = rng.randn(k, dim) * spread
    p = np.linspace(1.0, 2.0, k)
    y = rng.choice(k, size=n, p=p / p.sum())
    X = centers[y] + rng.randn(n, dim)
    X = X * scale + rng.randn(dim) * 3.0
    return X.astype(np.float32), y.astype(np.int32)


# ---- logistic regression for several C (and two class counts) ----
rng = np.random.RandomState(1)
cases = []
for nclass in (4, 2):
    scale = np.exp(rng.uniform(-2, 2, 20))
    X, y = blobs(rng, 500, 20, nclass, 0.8, scale)
    Xtr, ytr, Xte = X[:400], y[:400], X[400:]
    sc = StandardScaler().fit(Xtr)
    save("logreg_k%d_X" % nclass, Xtr)
    save("logreg_k%d_y" % nclass, ytr)
    save("logreg_k%d_Xtest" % nclass, Xte)
    save("logreg_k%d_mean" % nclass, sc.mean_)
    save("logreg_k%d_scale" % nclass, sc.scale_)
    for ci, C in enumerate((0.01, 0.1, 1.0, 10.0)):
        m = LogisticRegression(multi_class="multinomial", solver="lbfgs", C=C, tol=1e-10, max_iter=20000)
        m.fit(sc.transform(Xtr).astype(np.float64), ytr)
        W, b = m.coef_, m.intercept_
        if nclass == 2:  # binary multinomial: coef_ is class 1's row, class 0's is its negative
            W, b = np.vstack([-W, W]), np.concatenate([-b, b])
        tag = "logreg_k%d_c%d" % (nclass, ci)
        save(tag + "_W", W)
        save(tag + "_b", b)
        save(tag + "_prob", m.predict_proba(sc.transform(Xte)))
        cases.append((nclass, C))
save("logreg_cases", np.array(cases, dtype=np.float64))

# ---- stratified folds and LogisticRegressionCV ----
rng = np.random.RandomState(2)
X, y = blobs(rng, 303, 10, 3, 0.6, np.ones(10))
y[[5, 17, 40]] = 2  # a few more to make the class sizes odd
save("cv_X", X)
save("cv_y", y)
folds = np.empty(len(y), np.int32)
for f, (_, te) in enumerate(StratifiedKFold(n_splits=5).split(X, y)):
    folds[te] = f
save("cv_folds", folds)
# labels whose first appearance order differs from their numeric order
y2 = np.array([3, 3, 1, 0, 2, 1, 3, 0, 0, 2, 1, 1, 3, 2, 0, 0, 1, 3, 2, 2, 2, 1, 0], np.int32)
folds2 = np.empty(len(y2), np.int32)
for f, (_, te) in enumerate(StratifiedKFold(n_splits=4).split(y2, y2)):
    folds2[te] = f
save("cv_y2", y2)
save("cv_folds2", folds2)
m = LogisticRegressionCV(Cs=10, cv=5, multi_class="multinomial", solver="lbfgs", tol=1e-8, max_iter=20000)
m.fit(X.astype(np.float64), y)
save("cv_C", np.array([m.C_[0]]))
save("cv_scores", m.scores_[0])  # (folds, Cs), identical for every class in the multinomial case
save("cv_W", m.coef_)
save("cv_b", m.intercept_)

# ---- kNN, cosine similarity, votes weighted by similarity ----
rng = np.random.RandomState(3)
k = 3
yk = rng.randint(0, k, 300).astype(np.int32)
Xk = (rng.rand(300, 16) + 0.8 * np.eye(k, 16)[yk] * rng.rand(300, 1)).astype(np.float32)
Qk = (rng.rand(120, 16) + 0.5 * np.eye(k, 16)[rng.randint(0, k, 120)]).astype(np.float32)
knn = KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute", weights=lambda d: 1.0 - d)
knn.fit(Xk.astype(np.float64), yk)
save("knn_X", Xk)
save("knn_y", yk)
save("knn_Q", Qk)
save("knn_prob", knn.predict_proba(Qk.astype(np.float64)))

# ---- nearest class mean (Euclidean, after StandardScaler) ----
rng = np.random.RandomState(4)
Xn, yn = blobs(rng, 400, 12, 5, 0.7, np.exp(rng.uniform(-1, 1, 12)))
Qn = Xn[300:]
Xn, yn = Xn[:300], yn[:300]
sc = StandardScaler().fit(Xn)
nc = NearestCentroid().fit(sc.transform(Xn), yn)
save("ncm_X", Xn)
save("ncm_y", yn)
save("ncm_Q", Qn)
save("ncm_centroids", nc.centroids_)
save("ncm_pred", nc.predict(sc.transform(Qn)).astype(np.int32))


# ---- Fashion-MNIST, raw pixels ----
def idx(name, offset):
    with gzip.open(os.path.join("/usr/share/datasets/fashion-mnist", name)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


Xf = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784)[:3000].astype(np.float32) / 255
yf = idx("train-labels-idx1-ubyte.gz", 8)[:3000].astype(np.int32)
Xft = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)[:2000].astype(np.float32) / 255
yft = idx("t10k-labels-idx1-ubyte.gz", 8)[:2000].astype(np.int32)
t = time.time()
m = LogisticRegression(multi_class="multinomial", solver="lbfgs", C=0.01, tol=1e-4, max_iter=1000).fit(Xf, yf)
t = time.time() - t
save("fm_X", Xf)
save("fm_y", yf)
save("fm_Xtest", Xft)
save("fm_ytest", yft)
save("fm_pred", m.predict(Xft).astype(np.int32))
save("fm_result", np.array([(m.predict(Xft) == yft).mean(), t, m.n_iter_[0]]))
print("fit_reference: Fashion-MNIST C=0.01: scikit-learn %.2f s, %d iterations, test accuracy %.4f"
      % (t, m.n_iter_[0], (m.predict(Xft) == yft).mean()))
