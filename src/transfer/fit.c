/* fit.c — heads on cached features: the options, the feature normalisation every kind carries
 * (fitted here, applied before the head), and the dispatch of fit and predict to the kinds
 * (heads.h lists their files). Depends on core, train (the MLP's AdamW) and oneDNN (dnnl_sgemm
 * for every matrix product). */
#include "transfer/heads.h"

#include <dnnl.h>
#include <math.h>
#include <string.h>

void gr_fit_defaults(gr_fit_opts *o, int kind)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    /* cosine heads read unit rows; the linear ones want comparable feature scales */
    o->norm = (kind == GR_HEAD_KNN || kind == GR_HEAD_NCM) ? GR_FEAT_L2 : GR_FEAT_STANDARDIZE;
    o->C = 1.0;
    o->ncs = 10;
    o->folds = 5;
    o->max_iter = 1000;
    o->tol = 1e-4;
    o->hidden = 256;
    o->dropout = 0.1f;
    o->epochs = 50;
    o->lr = 1e-3;
    o->weight_decay = 1e-2;
    o->batch = 128;
    o->k = 10;
    o->seed = 0;
    o->threads = 0;
}

int gr_head_sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    return dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc) == dnnl_success ? 0 : -1;
}

int gr_head_sgemm_err(void) { return gr_err(GRAFT_E_INTERNAL, "fit: dnnl_sgemm failed"); }

double gr_head_softmax_ce_row(float *z, const float *b, int K, int y, float scale)
{
    double mx = -INFINITY, s = 0;
    for (int c = 0; c < K; c++) mx = fmax(mx, (double)z[c] + (b ? b[c] : 0));
    for (int c = 0; c < K; c++) s += exp((double)z[c] + (b ? b[c] : 0) - mx);
    double lse = mx + log(s);
    double loss = lse - ((double)z[y] + (b ? b[y] : 0));
    for (int c = 0; c < K; c++)
        z[c] = (float)(scale * (exp((double)z[c] + (b ? b[c] : 0) - lse) - (c == y)));
    return loss;
}

/* Softmax of a row of logits (plus bias) into prob. */
static void softmax_row(const float *z, const float *b, int K, float *prob)
{
    double mx = -INFINITY, s = 0;
    for (int c = 0; c < K; c++) mx = fmax(mx, (double)z[c] + (b ? b[c] : 0));
    for (int c = 0; c < K; c++) s += exp((double)z[c] + (b ? b[c] : 0) - mx);
    for (int c = 0; c < K; c++) prob[c] = (float)(exp((double)z[c] + (b ? b[c] : 0) - mx) / s);
}

/* ==== feature normalisation ================================================================ */

/* StandardScaler's parameters: mean and population std in double; a feature scikit-learn deems
 * constant (var <= n eps var + (n mean eps)^2) or with std < 1e-12 is scaled by 1. */
static int norm_fit(gr_head *h, const float *X, int64_t n, int dim)
{
    if (h->norm != GR_FEAT_STANDARDIZE) return GRAFT_OK;
    h->mu = gr_malloc((size_t)dim * sizeof(float));
    h->sd = gr_malloc((size_t)dim * sizeof(float));
    double *acc = gr_calloc((size_t)dim * 2, sizeof(double));
    if (!h->mu || !h->sd || !acc) return free(acc), GRAFT_E_NOMEM;
    double *mean = acc, *var = acc + dim;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) mean[j] += X[i * dim + j];
    for (int j = 0; j < dim; j++) mean[j] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) {
            double d = X[i * dim + j] - mean[j];
            var[j] += d * d;
        }
    const double eps = 2.220446049250313e-16;
    for (int j = 0; j < dim; j++) {
        double v = var[j] / (double)n,
               bound = (double)n * eps * v + pow((double)n * mean[j] * eps, 2);
        double sd = sqrt(v);
        h->mu[j] = (float)mean[j];
        h->sd[j] = (v <= bound || sd < 1e-12) ? 1.0f : (float)sd;
    }
    free(acc);
    return GRAFT_OK;
}

/* out (n, dim) = the normalised rows of X (out may be X). */
static void norm_apply(const gr_head *h, const float *X, int64_t n, float *out)
{
    int dim = h->dim;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *x = X + i * dim;
        float *o = out + i * dim;
        if (h->norm == GR_FEAT_STANDARDIZE) {
            for (int j = 0; j < dim; j++) o[j] = (float)(((double)x[j] - h->mu[j]) / h->sd[j]);
        } else if (h->norm == GR_FEAT_L2) {
            double s = 0;
            for (int j = 0; j < dim; j++) s += (double)x[j] * x[j];
            double inv = s > 0 ? 1.0 / sqrt(s) : 1.0;
            for (int j = 0; j < dim; j++) o[j] = (float)(x[j] * inv);
        } else if (o != x) {
            memcpy(o, x, (size_t)dim * sizeof(float));
        }
    }
}

/* ==== fit / predict / free ================================================================== */

static int check_args(const float *X, const int32_t *y, int64_t n, int dim, int nclass,
                      const gr_fit_opts *o)
{
    if (!X || !y || !o || n < 1 || dim < 1 || nclass < 2)
        return gr_err(
            GRAFT_E_ARG,
            "fit: need rows, labels, n >= 1, dim >= 1 and nclass >= 2 (got n %lld, dim %d, "
            "nclass %d)",
            (long long)n, dim, nclass);
    if (o->kind < GR_HEAD_LOGREG || o->kind > GR_HEAD_NCM)
        return gr_err(GRAFT_E_ARG, "fit: unknown head kind %d", o->kind);
    if (o->norm < GR_FEAT_NONE || o->norm > GR_FEAT_L2)
        return gr_err(GRAFT_E_ARG, "fit: unknown feature normalisation %d", o->norm);
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= nclass)
            return gr_err(GRAFT_E_ARG, "fit: label %d of row %lld is outside [0, %d)", y[i],
                          (long long)i, nclass);
    for (int64_t i = 0; i < n * dim; i++)
        if (!isfinite(X[i]))
            return gr_err(GRAFT_E_ARG, "fit: feature %lld of row %lld is not finite",
                          (long long)(i % dim), (long long)(i / dim));
    return GRAFT_OK;
}

int gr_head_fit(const float *X, const int32_t *y, int64_t n, int dim, int nclass,
                const gr_fit_opts *o, gr_head *h)
{
    if (!h) return gr_err(GRAFT_E_ARG, "fit: no head");
    memset(h, 0, sizeof *h);
    int st = check_args(X, y, n, dim, nclass, o);
    if (st) return st;
    h->kind = o->kind, h->nclass = nclass, h->dim = dim, h->norm = o->norm;
    int threads = o->threads > 0 ? o->threads : gr_threads();
    int saved = gr_threads();
    if (o->threads > 0) gr_set_threads(o->threads);
    float *Xn = gr_malloc((size_t)n * dim * sizeof(float));
    if (!Xn) st = GRAFT_E_NOMEM;
    if (!st) st = norm_fit(h, X, n, dim);
    if (!st) {
        norm_apply(h, X, n, Xn);
        switch (o->kind) {
        case GR_HEAD_LOGREG: st = gr_logreg_fit(Xn, y, n, o, threads, h); break;
        case GR_HEAD_MLP: st = gr_mlp_fit(Xn, y, n, o, h); break;
        case GR_HEAD_KNN: st = gr_knn_fit(Xn, y, n, o, h); break;
        default: st = gr_ncm_fit(Xn, y, n, h); break;
        }
    }
    free(Xn);
    if (o->threads > 0) gr_set_threads(saved);
    if (st == GRAFT_E_NOMEM)
        gr_err(st, "fit: out of memory (%lld rows of %d features)", (long long)n, dim);
    if (st) gr_head_free(h); /* nothing half-made is left to the caller */
    return st;
}

/* ==== predict ============================================================================== */

/* Scratch for a block of blk rows: the normalised rows Xn (blk, dim), S (kNN: similarities to
 * every stored row (blk, n); else logits (blk, K) then, for the MLP, hidden units (blk, H)); kNN's
 * k best (idx, sim) and votes; NCM's squared class-mean lengths mm. */
typedef struct pred_ws {
    int64_t blk;
    float *Xn, *S, *sim;
    int64_t *idx;
    double *votes, *mm;
} pred_ws;

static void pred_ws_free(pred_ws *w)
{
    free(w->Xn), free(w->S), free(w->idx), free(w->sim), free(w->mm), free(w->votes);
}

/* Rows go by blocks to bound the scratch near 4M values per row width (kNN: similarities to
 * every stored row and votes for every class; else logits and hidden units), so that a head
 * with many classes or examples still predicts in bounded memory. */
static int pred_ws_alloc(const gr_head *h, int64_t n, pred_ws *w)
{
    int K = h->nclass, H = h->hidden, knn = h->kind == GR_HEAD_KNN, ncm = h->kind == GR_HEAD_NCM;
    memset(w, 0, sizeof *w);
    int64_t width = knn ? h->n + K : (int64_t)K + H;
    int64_t blk = 1 + (int64_t)(4 << 20) / (width > 0 ? width : 1);
    if (blk > 1024) blk = 1024;
    if (blk > n) blk = n;
    int64_t kk = h->k < h->n ? h->k : h->n; /* gr_knn_predict uses min(k, n) neighbours */
    if (kk < 1) kk = 1;
    size_t extra = knn ? (size_t)blk * h->n : (size_t)blk * (K + (h->kind == GR_HEAD_MLP ? H : 0));
    w->blk = blk;
    w->Xn = gr_malloc((size_t)blk * h->dim * sizeof(float));
    w->S = gr_malloc(extra * sizeof(float));
    w->idx = knn ? gr_malloc((size_t)blk * kk * sizeof(int64_t)) : NULL;
    w->sim = knn ? gr_malloc((size_t)blk * kk * sizeof(float)) : NULL;
    w->votes = knn ? gr_malloc((size_t)blk * K * sizeof(double)) : NULL;
    w->mm = ncm ? gr_malloc((size_t)K * sizeof(double)) : NULL;
    if (!w->Xn || !w->S || (knn && (!w->idx || !w->sim || !w->votes)) || (ncm && !w->mm))
        return GRAFT_E_NOMEM;
    if (ncm) gr_ncm_sqnorms(h, w->mm);
    return GRAFT_OK;
}

/* Probabilities P (m, K) of the rows X (m <= w->blk). */
static int predict_block(const gr_head *h, pred_ws *w, const float *X, int64_t m, float *P)
{
    int K = h->nclass;
    float *Z = w->S;
    const float *b = h->kind == GR_HEAD_MLP ? h->b2 : h->b;
    int st = GRAFT_OK;
    norm_apply(h, X, m, w->Xn);
    switch (h->kind) {
    case GR_HEAD_KNN: return gr_knn_predict(h, w->Xn, m, P, w->S, w->idx, w->sim, w->votes);
    case GR_HEAD_MLP: st = gr_mlp_logits(h, w->Xn, m, w->S + (size_t)w->blk * K, Z); break;
    case GR_HEAD_NCM: st = gr_ncm_logits(h, w->Xn, m, w->mm, Z); break;
    default:
        if (gr_head_sgemm('N', 'T', m, K, h->dim, w->Xn, h->dim, h->W, h->dim, 0.0f, Z, K))
            st = gr_head_sgemm_err();
        break;
    }
    if (st) return st;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; i++) softmax_row(Z + i * K, b, K, P + i * K);
    return GRAFT_OK;
}

int gr_head_predict(const gr_head *h, const float *X, int64_t n, float *prob)
{
    if (!h || !X || !prob || n < 0) return gr_err(GRAFT_E_ARG, "predict: bad arguments");
    if (n == 0) return GRAFT_OK;
    pred_ws w;
    int st = pred_ws_alloc(h, n, &w);
    for (int64_t r0 = 0; r0 < n && !st; r0 += w.blk) {
        int64_t m = n - r0 < w.blk ? n - r0 : w.blk;
        st = predict_block(h, &w, X + r0 * h->dim, m, prob + r0 * h->nclass);
    }
    pred_ws_free(&w);
    if (st == GRAFT_E_NOMEM) gr_err(st, "predict: out of memory (%lld rows)", (long long)n);
    return st;
}
void gr_head_free(gr_head *h)
{
    if (!h) return;
    free(h->mu), free(h->sd), free(h->W), free(h->b), free(h->W2), free(h->b2), free(h->X),
        free(h->y);
    free(h->cv_scores), free(h->cv_Cs), free(h->train_loss), free(h->origin);
    memset(h, 0, sizeof *h);
}
