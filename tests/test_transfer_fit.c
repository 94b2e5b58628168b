#define _POSIX_C_SOURCE 200809L
/* test_transfer_fit.c — heads on features (src/transfer/fit.c) against scikit-learn 1.2
 * (scripts/fit_reference.py): StratifiedKFold's folds, StandardScaler, LogisticRegression's
 * coefficients and probabilities for several C, LogisticRegressionCV's fold scores and C,
 * KNeighborsClassifier(metric="cosine") probabilities, NearestCentroid, and raw Fashion-MNIST
 * pixels; the cosine NCM and kNN ties against closed forms; the MLP on a separable problem
 * (loss, accuracy, determinism); saving and loading every kind of head. */
#include "harness.h"

#include "io/io.h"
#include "transfer/transfer.h"

#include <string.h>

static char dir[256];

static void *load_raw(const char *name, gr_tensor *t)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    if (gr_npy_load(path, t)) {
        fprintf(stderr, "cannot load %s: %s\n", path, graft_last_error());
        exit(2);
    }
    return t->data;
}

/* any float array as double */
static double *load_d(const char *name, int64_t *n)
{
    gr_tensor t;
    load_raw(name, &t);
    int64_t m = gr_numel(&t.shape);
    if (n) *n = m;
    double *d = malloc((size_t)m * sizeof *d + 8);
    for (int64_t i = 0; i < m; i++)
        d[i] = t.dtype == GR_F64 ? ((double *)t.data)[i] : ((float *)t.data)[i];
    free(t.data);
    return d;
}

static float *load_f(const char *name, int64_t *n)
{
    int64_t m;
    double *d = load_d(name, &m);
    float *f = malloc((size_t)m * sizeof *f + 4);
    for (int64_t i = 0; i < m; i++) f[i] = (float)d[i];
    free(d);
    if (n) *n = m;
    return f;
}

static int32_t *load_i(const char *name, int64_t *n)
{
    gr_tensor t;
    load_raw(name, &t);
    int64_t m = gr_numel(&t.shape);
    if (n) *n = m;
    if (t.dtype == GR_I32) return t.data;
    int32_t *y = malloc((size_t)m * sizeof *y + 4);
    for (int64_t i = 0; i < m; i++) y[i] = (int32_t)((int64_t *)t.data)[i];
    free(t.data);
    return y;
}

static int argmax(const float *p, int K)
{
    int b = 0;
    for (int c = 1; c < K; c++)
        if (p[c] > p[b]) b = c;
    return b;
}

/* scikit-learn's objective, sum of cross-entropies + |W|^2 / (2C), in double; W (K, dim) and b
 * as float (Wf, bf) or double (Wd, bd) */
static double objective(const float *X, const int32_t *y, int64_t n, int dim, int K, double C,
                        const float *Wf, const float *bf, const double *Wd, const double *bd,
                        const float *mu, const float *sd)
{
    double f = 0, z[16];
    for (int i = 0; i < K * dim; i++) f += 0.5 / C * pow(Wf ? Wf[i] : Wd[i], 2);
    for (int64_t i = 0; i < n; i++) {
        double mx = -INFINITY, s = 0;
        for (int c = 0; c < K; c++) {
            z[c] = bf ? bf[c] : bd[c];
            for (int j = 0; j < dim; j++) {
                double x = mu ? ((double)X[i * dim + j] - mu[j]) / sd[j] : X[i * dim + j];
                z[c] += x * (Wf ? Wf[c * dim + j] : Wd[c * dim + j]);
            }
            mx = fmax(mx, z[c]);
        }
        for (int c = 0; c < K; c++) s += exp(z[c] - mx);
        f += mx + log(s) - z[y[i]];
    }
    return f;
}

static double maxabs_d(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* ---- folds ---- */
static void test_folds(void)
{
    int64_t n, n2;
    int32_t *y = load_i("cv_y", &n), *want = load_i("cv_folds", NULL);
    int32_t *y2 = load_i("cv_y2", &n2), *want2 = load_i("cv_folds2", NULL);
    int32_t *f = malloc((size_t)n * sizeof *f);
    CHECK(gr_stratified_folds(y, n, 5, f) == GRAFT_OK, "%s", graft_last_error());
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += f[i] != want[i];
    CHECK(bad == 0, "%d of %lld rows in another fold than StratifiedKFold(5)", bad, (long long)n);
    CHECK(gr_stratified_folds(y2, n2, 4, f) == GRAFT_OK, "%s", graft_last_error());
    bad = 0;
    for (int64_t i = 0; i < n2; i++) bad += f[i] != want2[i];
    CHECK(bad == 0, "labels in first-appearance order: %d rows in another fold", bad);
    CHECK(gr_stratified_folds(y, n, 1, f) == GRAFT_E_ARG, "1 fold accepted");
    free(y), free(want), free(y2), free(want2), free(f);
}

/* ---- logistic regression for several C ---- */
static void test_logreg(void)
{
    int64_t ncase;
    double *cases = load_d("logreg_cases", &ncase);
    ncase /= 2;
    for (int64_t c = 0; c < ncase; c++) {
        int K = (int)cases[2 * c];
        double C = cases[2 * c + 1];
        int ci = (int)(c % 4);
        char name[128];
        int64_t nX, nT;
        snprintf(name, sizeof name, "logreg_k%d_X", K);
        float *X = load_f(name, &nX);
        snprintf(name, sizeof name, "logreg_k%d_y", K);
        int32_t *y = load_i(name, NULL);
        snprintf(name, sizeof name, "logreg_k%d_Xtest", K);
        float *Xt = load_f(name, &nT);
        const int dim = 20;
        int64_t n = nX / dim, nt = nT / dim;

        gr_fit_opts o;
        gr_fit_defaults(&o, GR_HEAD_LOGREG);
        o.C = C;
        o.tol = 1e-6; /* scikit-learn ran with 1e-10; float32 products limit graft's gradient */
        o.max_iter = 20000;
        gr_head h;
        int st = gr_head_fit(X, y, n, dim, K, &o, &h);
        CHECK(st == GRAFT_OK, "K %d C %g: %s", K, C, graft_last_error());
        if (st) {
            gr_head_free(&h);
            continue;
        }
        if (ci == 0) { /* StandardScaler's parameters */
            snprintf(name, sizeof name, "logreg_k%d_mean", K);
            float *mu = load_f(name, NULL);
            snprintf(name, sizeof name, "logreg_k%d_scale", K);
            float *sd = load_f(name, NULL);
            snprintf(name, sizeof name, "K %d StandardScaler mean", K);
            th_close(h.mu, mu, dim, 1e-6, 1e-6, name);
            snprintf(name, sizeof name, "K %d StandardScaler scale", K);
            th_close(h.sd, sd, dim, 1e-6, 0, name);
            free(mu), free(sd);
        }
        snprintf(name, sizeof name, "logreg_k%d_c%d_W", K, ci);
        double *W = load_d(name, NULL);
        snprintf(name, sizeof name, "logreg_k%d_c%d_b", K, ci);
        double *b = load_d(name, NULL);
        double scale = fmax(maxabs_d(W, (int64_t)K * dim), maxabs_d(b, K)), dw = 0, db = 0;
        for (int i = 0; i < K * dim; i++) dw = fmax(dw, fabs(h.W[i] - W[i]));
        for (int i = 0; i < K; i++) db = fmax(db, fabs(h.b[i] - b[i]));
        CHECK(dw <= 1e-3 * scale && db <= 1e-3 * scale,
              "K %d C %g: max |W - sklearn| %.3g, |b - sklearn| %.3g, coefficient scale %.3g (%d "
              "iterations)",
              K, C, dw, db, scale, h.iters);
        double fo = objective(X, y, n, dim, K, C, h.W, h.b, NULL, NULL, h.mu, h.sd);
        double fs = objective(X, y, n, dim, K, C, NULL, NULL, W, b, h.mu, h.sd);
        printf("logreg K %d C %-5g: %4d iterations, max |W - sklearn| %.2e, |b - sklearn| %.2e "
               "(scale %.3g), "
               "objective %.10g, sklearn's %.10g\n",
               K, C, h.iters, dw, db, scale, fo, fs);
        /* both stop on scipy's relative-decrease test; the minimum reached must be the same */
        CHECK(fabs(fo - fs) <= 1e-6 * fs, "K %d C %g: objective %.10g, scikit-learn's %.10g", K, C,
              fo, fs);
        float *P = malloc((size_t)nt * K * sizeof *P);
        CHECK(gr_head_predict(&h, Xt, nt, P) == GRAFT_OK, "%s", graft_last_error());
        snprintf(name, sizeof name, "logreg_k%d_c%d_prob", K, ci);
        float *Pw = load_f(name, NULL);
        snprintf(name, sizeof name, "K %d C %g predict_proba", K, C);
        th_close(P, Pw, nt * K, 0, 2e-3, name); /* as loose as the coefficients' 1e-3 */
        free(P), free(Pw), free(W), free(b), free(X), free(y), free(Xt);
        gr_head_free(&h);
    }
    free(cases);
}

/* ---- LogisticRegressionCV ---- */
static void test_cv(void)
{
    int64_t nX;
    float *X = load_f("cv_X", &nX);
    int32_t *y = load_i("cv_y", NULL);
    int dim = 10, K = 3;
    int64_t n = nX / dim;
    double *scores = load_d("cv_scores", NULL), *Cw = load_d("cv_C", NULL);
    double *W = load_d("cv_W", NULL), *b = load_d("cv_b", NULL);
    gr_fit_opts o;
    gr_fit_defaults(&o, GR_HEAD_LOGREG);
    o.norm = GR_FEAT_NONE;
    o.C = 0;
    o.tol = 1e-6;
    o.max_iter = 20000;
    gr_head h;
    double t0 = gr_now();
    int st = gr_head_fit(X, y, n, dim, K, &o, &h);
    double t = gr_now() - t0;
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    if (st) goto out;
    CHECK(h.cv_folds == 5 && h.cv_ncs == 10, "folds %d, Cs %d", h.cv_folds, h.cv_ncs);
    int differ = 0;
    for (int i = 0; i < 50; i++) differ += fabs(h.cv_scores[i] - scores[i]) > 1e-12;
    CHECK(differ == 0, "%d of 50 fold accuracies differ from LogisticRegressionCV's", differ);
    for (int j = 0; j < 10; j++)
        CHECK(fabs(h.cv_Cs[j] / pow(10, -4 + 8.0 * j / 9) - 1) < 1e-12, "C %d is %g", j,
              h.cv_Cs[j]);
    CHECK(fabs(h.C / Cw[0] - 1) < 1e-12, "chosen C %g, LogisticRegressionCV %g", h.C, Cw[0]);
    double scale = maxabs_d(W, (int64_t)K * dim), dw = 0;
    for (int i = 0; i < K * dim; i++) dw = fmax(dw, fabs(h.W[i] - W[i]));
    for (int i = 0; i < K; i++) dw = fmax(dw, fabs(h.b[i] - b[i]));
    /* unscaled features with offsets make the intercept ill-conditioned: the coefficients agree
     * less closely than the objective */
    CHECK(dw <= 5e-3 * scale, "refit: max |coef - sklearn| %.3g (scale %.3g)", dw, scale);
    double fo = objective(X, y, n, dim, K, h.C, h.W, h.b, NULL, NULL, NULL, NULL);
    double fs = objective(X, y, n, dim, K, h.C, NULL, NULL, W, b, NULL, NULL);
    CHECK(fabs(fo - fs) <= 1e-7 * fs, "refit objective %.10g, scikit-learn's %.10g", fo, fs);
    printf("CV refit: max |coef - sklearn| %.2e (scale %.3g), objective %.10g, sklearn's %.10g\n",
           dw, scale, fo, fs);
    printf("CV: chosen C %g (sklearn %g), mean accuracy %.4f, %.3f s\n", h.C, Cw[0], h.cv_acc, t);
out:
    gr_head_free(&h);
    free(X), free(y), free(scores), free(Cw), free(W), free(b);
}

/* ---- kNN ---- */
static void test_knn(void)
{
    int64_t nX, nQ;
    float *X = load_f("knn_X", &nX), *Q = load_f("knn_Q", &nQ), *Pw = load_f("knn_prob", NULL);
    int32_t *y = load_i("knn_y", NULL);
    int dim = 16, K = 3;
    int64_t n = nX / dim, nq = nQ / dim;
    gr_fit_opts o;
    gr_fit_defaults(&o, GR_HEAD_KNN);
    o.k = 7;
    for (int norm = GR_FEAT_NONE; norm <= GR_FEAT_L2; norm += GR_FEAT_L2) { /* cosine ignores L2 */
        o.norm = norm;
        gr_head h;
        CHECK(gr_head_fit(X, y, n, dim, K, &o, &h) == GRAFT_OK, "%s", graft_last_error());
        float *P = malloc((size_t)nq * K * sizeof *P);
        CHECK(gr_head_predict(&h, Q, nq, P) == GRAFT_OK, "%s", graft_last_error());
        th_close(P, Pw, nq * K, 0, 2e-5,
                 norm ? "kNN (L2) vs KNeighborsClassifier" : "kNN vs KNeighborsClassifier");
        free(P);
        gr_head_free(&h);
    }
    /* closed forms: equal rows tie and the earlier row wins; negative similarities get no vote */
    float Xs[4 * 2] = { 1, 0, 1, 0, 0, 1, -1, 0.1f }, q[2] = { 1, 0.2f }, p[3];
    int32_t ys[4] = { 2, 0, 1, 1 };
    o.norm = GR_FEAT_NONE;
    o.k = 1;
    gr_head h;
    CHECK(gr_head_fit(Xs, ys, 4, 2, 3, &o, &h) == GRAFT_OK, "%s", graft_last_error());
    gr_head_predict(&h, q, 1, p);
    CHECK(p[2] == 1 && p[0] == 0 && p[1] == 0, "k 1 tie: (%g %g %g), want row 0's class 2", p[0],
          p[1], p[2]);
    gr_head_free(&h);
    o.k = 4;
    CHECK(gr_head_fit(Xs, ys, 4, 2, 3, &o, &h) == GRAFT_OK, "%s", graft_last_error());
    gr_head_predict(&h, q, 1, p);
    double s1 = 1 / sqrt(1.04), s3 = 0.2 / sqrt(1.04), tot = 2 * s1 + s3; /* row 3 similarity < 0 */
    float want[3] = { (float)(s1 / tot), (float)(s3 / tot), (float)(s1 / tot) };
    th_close(p, want, 3, 1e-6, 1e-7, "kNN weights: similarities, negatives dropped");
    gr_head_free(&h);
    free(X), free(Q), free(Pw), free(y);
}

/* ---- NCM ---- */
static void test_ncm(void)
{
    int64_t nX, nQ;
    float *X = load_f("ncm_X", &nX), *Q = load_f("ncm_Q", &nQ),
          *cent = load_f("ncm_centroids", NULL);
    int32_t *y = load_i("ncm_y", NULL), *pred = load_i("ncm_pred", NULL);
    int dim = 12, K = 5;
    int64_t n = nX / dim, nq = nQ / dim;
    gr_fit_opts o;
    gr_fit_defaults(&o, GR_HEAD_NCM);
    o.norm = GR_FEAT_STANDARDIZE;
    gr_head h;
    CHECK(gr_head_fit(X, y, n, dim, K, &o, &h) == GRAFT_OK, "%s", graft_last_error());
    th_close(h.W, cent, K * dim, 1e-5, 1e-6, "NCM means vs NearestCentroid.centroids_");
    float *P = malloc((size_t)nq * K * sizeof *P);
    CHECK(gr_head_predict(&h, Q, nq, P) == GRAFT_OK, "%s", graft_last_error());
    int bad = 0;
    for (int64_t i = 0; i < nq; i++) bad += argmax(P + i * K, K) != pred[i];
    CHECK(bad == 0, "NCM: %d of %lld predictions differ from NearestCentroid", bad, (long long)nq);
    gr_head_free(&h);

    /* cosine NCM against a direct computation in double */
    o.norm = GR_FEAT_L2;
    CHECK(gr_head_fit(X, y, n, dim, K, &o, &h) == GRAFT_OK, "%s", graft_last_error());
    CHECK(gr_head_predict(&h, Q, nq, P) == GRAFT_OK, "%s", graft_last_error());
    double *mean = calloc((size_t)K * dim, sizeof *mean);
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < dim; j++) s += (double)X[i * dim + j] * X[i * dim + j];
        for (int j = 0; j < dim; j++) mean[y[i] * dim + j] += X[i * dim + j] / sqrt(s);
    }
    for (int c = 0; c < K; c++) {
        double s = 0;
        for (int j = 0; j < dim; j++) s += mean[c * dim + j] * mean[c * dim + j];
        for (int j = 0; j < dim; j++) mean[c * dim + j] /= sqrt(s);
    }
    float *Pw = malloc((size_t)nq * K * sizeof *Pw);
    for (int64_t i = 0; i < nq; i++) {
        double cs[8], qq = 0, z = 0;
        for (int j = 0; j < dim; j++) qq += (double)Q[i * dim + j] * Q[i * dim + j];
        for (int c = 0; c < K; c++) {
            cs[c] = 0;
            for (int j = 0; j < dim; j++) cs[c] += Q[i * dim + j] / sqrt(qq) * mean[c * dim + j];
            z += exp(cs[c]);
        }
        for (int c = 0; c < K; c++) Pw[i * K + c] = (float)(exp(cs[c]) / z);
    }
    th_close(P, Pw, nq * K, 1e-5, 1e-6,
             "cosine NCM: softmax of cosine similarities to the unit means");
    gr_head_free(&h);
    /* a class without training rows gets probability 0 */
    CHECK(gr_head_fit(X, y, n, dim, K + 1, &o, &h) == GRAFT_OK, "%s", graft_last_error());
    float *P6 = malloc((size_t)nq * (K + 1) * sizeof *P6);
    gr_head_predict(&h, Q, nq, P6);
    double m6 = 0;
    for (int64_t i = 0; i < nq; i++) m6 = fmax(m6, P6[i * (K + 1) + K]);
    CHECK(m6 == 0, "empty class probability %g", m6);
    gr_head_free(&h);
    free(P6), free(mean), free(Pw), free(P), free(X), free(Q), free(cent), free(y), free(pred);
}

/* ---- Fashion-MNIST raw pixels ---- */
static void test_fashion(void)
{
    int64_t nX, nT;
    float *X = load_f("fm_X", &nX), *Xt = load_f("fm_Xtest", &nT);
    int32_t *y = load_i("fm_y", NULL), *yt = load_i("fm_ytest", NULL),
            *pred = load_i("fm_pred", NULL);
    double *res = load_d("fm_result", NULL);
    int dim = 784, K = 10;
    int64_t n = nX / dim, nt = nT / dim;
    gr_fit_opts o;
    gr_fit_defaults(&o, GR_HEAD_LOGREG);
    o.norm = GR_FEAT_NONE;
    o.C = 0.01;
    gr_head h;
    double t0 = gr_now();
    int st = gr_head_fit(X, y, n, dim, K, &o, &h);
    double t = gr_now() - t0;
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    float *P = malloc((size_t)nt * K * sizeof *P);
    CHECK(gr_head_predict(&h, Xt, nt, P) == GRAFT_OK, "%s", graft_last_error());
    int64_t right = 0, same = 0;
    for (int64_t i = 0; i < nt; i++) {
        int a = argmax(P + i * K, K);
        right += a == yt[i];
        same += a == pred[i];
    }
    double acc = (double)right / (double)nt;
    printf("Fashion-MNIST raw pixels, 3000 train / 2000 test, C=0.01: graft %.4f in %.3f s (%d "
           "iterations), "
           "scikit-learn %.4f in %.3f s (%d iterations); %lld of %lld predictions equal\n",
           acc, t, h.iters, res[0], res[1], (int)res[2], (long long)same, (long long)nt);
    CHECK(fabs(acc - res[0]) <= 0.0015, "accuracy %.4f, scikit-learn %.4f", acc, res[0]);
    CHECK(same >= nt - 10, "only %lld of %lld predictions agree with scikit-learn", (long long)same,
          (long long)nt);
    gr_head_free(&h);
    free(P), free(X), free(Xt), free(y), free(yt), free(pred), free(res);
}

/* ---- MLP ---- */
static void blobs(gr_rng *r, float *X, int32_t *y, int64_t n, int dim, int K)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % K);
        for (int j = 0; j < dim; j++)
            X[i * dim + j] = (float)(gr_rng_normal(r) + (j % K == y[i] ? 3.0 : 0.0) +
                                     (j == dim - 1 ? 5.0 : 0.0));
    }
}

static void test_mlp(void)
{
    enum { N = 600, NT = 300, D = 24, K = 4 };
    static float X[N * D], Xt[NT * D];
    static int32_t y[N], yt[NT];
    gr_rng r;
    gr_rng_seed(&r, 7);
    blobs(&r, X, y, N, D, K);
    blobs(&r, Xt, yt, NT, D, K);
    gr_fit_opts o;
    gr_fit_defaults(&o, GR_HEAD_MLP);
    o.hidden = 32;
    o.epochs = 30;
    o.batch = 64;
    o.dropout = 0.2f;
    o.seed = 11;
    gr_head h, h2, h3;
    CHECK(gr_head_fit(X, y, N, D, K, &o, &h) == GRAFT_OK, "%s", graft_last_error());
    CHECK(h.epochs == 30, "%d epochs recorded", h.epochs);
    CHECK(h.train_loss[29] < 0.25 * h.train_loss[0], "loss %g -> %g", h.train_loss[0],
          h.train_loss[29]);
    int decreasing = 0;
    for (int e = 1; e < 30; e++) decreasing += h.train_loss[e] < h.train_loss[e - 1];
    CHECK(decreasing >= 20, "loss went down in only %d of 29 epochs", decreasing);
    static float P[NT * K], P2[NT * K];
    CHECK(gr_head_predict(&h, Xt, NT, P) == GRAFT_OK, "%s", graft_last_error());
    int right = 0;
    for (int i = 0; i < NT; i++) right += argmax(P + i * K, K) == yt[i];
    CHECK(right >= NT * 97 / 100, "MLP test accuracy %d / %d", right, NT);
    printf("MLP: loss %.4f -> %.4f, test accuracy %.3f\n", h.train_loss[0], h.train_loss[29],
           (double)right / NT);
    CHECK(gr_head_fit(X, y, N, D, K, &o, &h2) == GRAFT_OK, "%s", graft_last_error());
    CHECK(memcmp(h.W, h2.W, sizeof(float) * 32 * D) == 0 &&
              memcmp(h.W2, h2.W2, sizeof(float) * K * 32) == 0 &&
              memcmp(h.train_loss, h2.train_loss, sizeof(double) * 30) == 0,
          "two fits with seed 11 differ");
    o.seed = 12;
    CHECK(gr_head_fit(X, y, N, D, K, &o, &h3) == GRAFT_OK, "%s", graft_last_error());
    CHECK(memcmp(h.W, h3.W, sizeof(float) * 32 * D) != 0, "seeds 11 and 12 gave the same weights");
    /* full batch, no dropout: a second path through the code */
    o.batch = 0;
    o.dropout = 0;
    o.lr = 1e-2;
    gr_head_free(&h3);
    CHECK(gr_head_fit(X, y, N, D, K, &o, &h3) == GRAFT_OK, "%s", graft_last_error());
    CHECK(gr_head_predict(&h3, Xt, NT, P2) == GRAFT_OK, "%s", graft_last_error());
    right = 0;
    for (int i = 0; i < NT; i++) right += argmax(P2 + i * K, K) == yt[i];
    CHECK(right >= NT * 95 / 100 && h3.train_loss[29] < h3.train_loss[0],
          "full batch: accuracy %d / %d", right, NT);
    gr_head_free(&h), gr_head_free(&h2), gr_head_free(&h3);
}

/* ---- save / load ---- */
static void test_save_load(void)
{
    enum { N = 200, D = 8, K = 3 };
    static float X[N * D], P[N * K], P2[N * K];
    static int32_t y[N];
    gr_rng r;
    gr_rng_seed(&r, 3);
    blobs(&r, X, y, N, D, K);
    char path[512];
    snprintf(path, sizeof path, "%s/head.safetensors", dir);
    static const char *kinds[] = { "logreg", "mlp", "knn", "ncm" };
    for (int kind = GR_HEAD_LOGREG; kind <= GR_HEAD_NCM; kind++)
        for (int norm = GR_FEAT_NONE; norm <= GR_FEAT_L2; norm++) {
            gr_fit_opts o;
            gr_fit_defaults(&o, kind);
            o.norm = norm;
            o.epochs = 3;
            o.hidden = 16;
            o.k = 5;
            gr_head h, g;
            CHECK(gr_head_fit(X, y, N, D, K, &o, &h) == GRAFT_OK, "%s", graft_last_error());
            CHECK(gr_head_predict(&h, X, N, P) == GRAFT_OK, "%s", graft_last_error());
            CHECK(gr_head_save(&h, path) == GRAFT_OK, "%s", graft_last_error());
            int st = gr_head_load(path, &g);
            CHECK(st == GRAFT_OK, "%s", graft_last_error());
            if (!st) {
                CHECK(g.kind == kind && g.norm == norm && g.nclass == K && g.dim == D && g.C == h.C,
                      "%s: metadata changed", kinds[kind]);
                CHECK(gr_head_predict(&g, X, N, P2) == GRAFT_OK, "%s", graft_last_error());
                CHECK(memcmp(P, P2, sizeof P) == 0, "%s norm %d: predictions changed by save/load",
                      kinds[kind], norm);
            }
            gr_head_free(&h), gr_head_free(&g);
        }
    /* a file whose tensor does not fit its metadata */
    float w[4] = { 0 };
    gr_st_entry e = { "W", GR_F32, gr_shape_make(2, (int64_t[]){ 2, 2 }), w, sizeof w };
    gr_meta m[4] = {
        { "graft_head", "logreg" }, { "norm", "none" }, { "nclass", "3" }, { "dim", "2" }
    };
    CHECK(gr_st_save(path, &e, 1, m, 4) == GRAFT_OK, "%s", graft_last_error());
    gr_head g;
    CHECK(gr_head_load(path, &g) == GRAFT_E_FORMAT && strstr(graft_last_error(), "'W'") &&
              strstr(graft_last_error(), path),
          "bad shape: %s", graft_last_error());
    m[0].value = "svm";
    CHECK(gr_st_save(path, &e, 1, m, 4) == GRAFT_OK, "%s", graft_last_error());
    CHECK(gr_head_load(path, &g) == GRAFT_E_FORMAT && strstr(graft_last_error(), "svm"), "kind: %s",
          graft_last_error());
}

static void test_bad_args(void)
{
    float X[6] = { 1, 2, 3, 4, 5, NAN };
    int32_t y[3] = { 0, 2, 1 };
    gr_fit_opts o;
    gr_fit_defaults(&o, GR_HEAD_LOGREG);
    gr_head h;
    CHECK(gr_head_fit(X, y, 2, 2, 2, &o, &h) == GRAFT_E_ARG &&
              strstr(graft_last_error(), "label 2 of row 1"),
          "label out of range: %s", graft_last_error());
    CHECK(gr_head_fit(X, y, 3, 2, 3, &o, &h) == GRAFT_E_ARG &&
              strstr(graft_last_error(), "not finite"),
          "NaN feature: %s", graft_last_error());
    gr_head_free(&h);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/graft_fit_XXXXXX", tmp);
    if (!mkdtemp(dir)) return 2;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/fit_reference.py %s", GRAFT_SOURCE_DIR,
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "the scikit-learn reference failed: %s\n", cmd);
        return 2;
    }
    test_folds();
    test_logreg();
    test_cv();
    test_knn();
    test_ncm();
    test_fashion();
    test_mlp();
    test_save_load();
    test_bad_args();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return th_finish();
}
