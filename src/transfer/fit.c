#define _POSIX_C_SOURCE 200809L
/* fit.c — heads on cached features: multinomial logistic regression (L-BFGS, optional
 * stratified cross-validation of C), a one-hidden-layer MLP (AdamW), cosine kNN and nearest
 * class mean, with the feature normalisation they carry, and their safetensors files.
 * Depends on core, io and oneDNN (dnnl_sgemm for every matrix product).
 *
 * The logistic regression reproduces scikit-learn 1.2's LogisticRegression(solver="lbfgs",
 * multi_class="multinomial") and LogisticRegressionCV: same objective scaling, same stopping
 * rules as scipy's L-BFGS-B on an unconstrained problem, same fold assignment, same Cs, same
 * warm starts; see transfer.h for the exact rules. Parameters and the optimiser run in double;
 * the products with the features run in float32 (sgemm). */
#include "io/io.h"
#include "transfer/transfer.h"

#include <cjson/cJSON.h>
#include <dnnl.h>
#include <errno.h>
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

/* C = op(A) op(B)^T... as dnnl_sgemm (row-major); its only failures are bad arguments. */
static int sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    return dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc) == dnnl_success ? 0 : -1;
}

static int sgemm_err(void) { return gr_err(GRAFT_E_INTERNAL, "fit: dnnl_sgemm failed"); }

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double sqnorm_f(const float *a, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * a[i];
    return s;
}

static double maxabs(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* Softmax cross-entropy of one row: z (logits without bias) becomes scale * (softmax - onehot);
 * returns the loss log(sum exp) - z_y. */
static double softmax_ce_row(float *z, const float *b, int K, int y, float scale)
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

static int argmax_row(const float *z, int K)
{
    int best = 0;
    for (int c = 1; c < K; c++)
        if (z[c] > z[best]) best = c;
    return best;
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

/* Rows scaled to unit length in place (zero rows stay zero). */
static void unit_rows(float *X, int64_t n, int dim)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < dim; j++) s += (double)X[i * dim + j] * X[i * dim + j];
        if (s > 0)
            for (int j = 0; j < dim; j++) X[i * dim + j] = (float)(X[i * dim + j] / sqrt(s));
    }
}

/* ==== stratified folds ===================================================================== */

int gr_stratified_folds(const int32_t *y, int64_t n, int folds, int32_t *fold)
{
    if (n < 1 || folds < 2 || !y || !fold)
        return gr_err(GRAFT_E_ARG, "stratified folds: need n >= 1 and folds >= 2");
    int32_t maxy = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0)
            return gr_err(GRAFT_E_ARG, "stratified folds: label %d of row %lld is negative", y[i],
                          (long long)i);
        if (y[i] > maxy) maxy = y[i];
    }
    int64_t nl = (int64_t)maxy + 1;
    /* enc: label -> rank of first appearance; cnt per encoded class; alloc (folds, nclass) */
    int32_t *enc = gr_malloc((size_t)nl * sizeof(int32_t));
    int64_t *cnt = gr_calloc((size_t)nl, sizeof(int64_t));
    int64_t *alloc = gr_calloc((size_t)nl * folds, sizeof(int64_t));
    int64_t *next = gr_calloc((size_t)nl * 2, sizeof(int64_t));
    if (!enc || !cnt || !alloc || !next) {
        free(enc), free(cnt), free(alloc), free(next);
        return GRAFT_E_NOMEM;
    }
    for (int64_t l = 0; l < nl; l++) enc[l] = -1;
    int32_t ncls = 0;
    for (int64_t i = 0; i < n; i++) {
        if (enc[y[i]] < 0) enc[y[i]] = ncls++;
        cnt[enc[y[i]]]++;
    }
    /* the class-sorted labels dealt round-robin: position p goes to fold p % folds */
    int64_t start = 0;
    for (int32_t k = 0; k < ncls; k++) {
        for (int64_t p = start; p < start + cnt[k]; p++) alloc[(p % folds) * nl + k]++;
        start += cnt[k];
    }
    /* class k's rows in data order fill fold 0's quota, then fold 1's, ... */
    int64_t *cur_fold = next, *used = next + nl;
    for (int64_t i = 0; i < n; i++) {
        int32_t k = enc[y[i]];
        while (used[k] >= alloc[cur_fold[k] * nl + k]) cur_fold[k]++, used[k] = 0;
        fold[i] = (int32_t)cur_fold[k];
        used[k]++;
    }
    free(enc), free(cnt), free(alloc), free(next);
    return GRAFT_OK;
}

/* ==== logistic regression: objective =========================================================
 * Variables w = [W (K, dim) row-major, b (K)]. f = sum_i CE(softmax(W x_i + b), y_i)
 * + |W|^2 / (2C), the scaling of scikit-learn 1.2 (LinearModelLoss with l2_reg_strength 1/C). */

typedef struct lr_prob {
    const float *X; /* (n, dim) normalised rows */
    const int32_t *y;
    int64_t n;
    int dim, K;
    double invC;
    int par;        /* run the row loops on OpenMP threads */
    float *Wf, *bf; /* float copies of W, b */
    float *Z;       /* (n, K) logits, then d loss / d logits */
    float *Gf;      /* (K, dim) */
    double *rl;     /* per-row losses [n] (summed in order: deterministic) */
} lr_prob;

static int64_t lr_nvar(const lr_prob *p) { return (int64_t)p->K * p->dim + p->K; }

static int lr_eval(lr_prob *p, const double *w, double *g, double *f)
{
    int64_t n = p->n, KD = (int64_t)p->K * p->dim;
    int K = p->K;
    for (int64_t i = 0; i < KD; i++) p->Wf[i] = (float)w[i];
    for (int c = 0; c < K; c++) p->bf[c] = (float)w[KD + c];
    if (sgemm('N', 'T', n, K, p->dim, p->X, p->dim, p->Wf, p->dim, 0.0f, p->Z, K)) return -1;
#pragma omp parallel for schedule(static) if (p->par && n * K >= (1 << 17))
    for (int64_t i = 0; i < n; i++)
        p->rl[i] = softmax_ce_row(p->Z + i * K, p->bf, K, p->y[i], 1.0f);
    double loss = 0;
    for (int64_t i = 0; i < n; i++) loss += p->rl[i];
    if (sgemm('T', 'N', K, p->dim, n, p->Z, K, p->X, p->dim, 0.0f, p->Gf, p->dim)) return -1;
    double reg = 0;
    for (int64_t i = 0; i < KD; i++) {
        g[i] = p->Gf[i] + p->invC * w[i];
        reg += w[i] * w[i];
    }
    for (int c = 0; c < K; c++) g[KD + c] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < K; c++) g[KD + c] += p->Z[i * K + c];
    *f = loss + 0.5 * p->invC * reg;
    return 0;
}

/* ==== More-Thuente line search (MINPACK-2 dcsrch / dcstep, as L-BFGS-B calls it) ========== */

typedef struct mt_ls {
    int brackt, stage;
    double finit, ginit, gtest, fx, gx, fy, gy, stx, sty, stmin, stmax, width, width1;
    double ftol, gtol, xtol, stpmin, stpmax;
} mt_ls;

static void mt_start(mt_ls *s, double f, double g, double stp)
{
    s->ftol = 1e-3, s->gtol = 0.9, s->xtol = 0.1, s->stpmin = 0, s->stpmax = 1e10;
    s->brackt = 0, s->stage = 1;
    s->finit = f, s->ginit = g, s->gtest = s->ftol * g;
    s->width = s->stpmax - s->stpmin, s->width1 = s->width / 0.5;
    s->stx = 0, s->fx = f, s->gx = g;
    s->sty = 0, s->fy = f, s->gy = g;
    s->stmin = 0, s->stmax = stp + 4.0 * stp;
}

/* One safeguarded step of the interval update (dcstep). */
static void mt_step(double *stx, double *fx, double *dx, double *sty, double *fy, double *dy,
                    double *stp, double fp, double dp, int *brackt, double stpmin, double stpmax)
{
    double sgnd = dp * (*dx / fabs(*dx)), stpf, stpc, stpq, theta, s, gamma, p, q, r;
    if (fp > *fx) { /* higher function value: the minimum is bracketed */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp < *stx) gamma = -gamma;
        p = (gamma - *dx) + theta;
        q = ((gamma - *dx) + gamma) + dp;
        r = p / q;
        stpc = *stx + r * (*stp - *stx);
        stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2.0) * (*stp - *stx);
        stpf = fabs(stpc - *stx) < fabs(stpq - *stx) ? stpc : stpc + (stpq - stpc) / 2.0;
        *brackt = 1;
    } else if (sgnd < 0) { /* lower value, derivatives of opposite sign */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp > *stx) gamma = -gamma;
        p = (gamma - dp) + theta;
        q = ((gamma - dp) + gamma) + *dx;
        r = p / q;
        stpc = *stp + r * (*stx - *stp);
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        stpf = fabs(stpc - *stp) > fabs(stpq - *stp) ? stpc : stpq;
        *brackt = 1;
    } else if (fabs(dp) < fabs(*dx)) { /* same sign, the derivative's magnitude decreases */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        gamma = s * sqrt(fmax(0.0, (theta / s) * (theta / s) - (*dx / s) * (dp / s)));
        if (*stp > *stx) gamma = -gamma;
        p = (gamma - dp) + theta;
        q = (gamma + (*dx - dp)) + gamma;
        r = p / q;
        if (r < 0 && gamma != 0) stpc = *stp + r * (*stx - *stp);
        else if (*stp > *stx) stpc = stpmax;
        else stpc = stpmin;
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if (*brackt) {
            stpf = fabs(stpc - *stp) < fabs(stpq - *stp) ? stpc : stpq;
            if (*stp > *stx) stpf = fmin(*stp + 0.66 * (*sty - *stp), stpf);
            else stpf = fmax(*stp + 0.66 * (*sty - *stp), stpf);
        } else {
            stpf = fabs(stpc - *stp) > fabs(stpq - *stp) ? stpc : stpq;
            stpf = fmax(stpmin, fmin(stpmax, stpf));
        }
    } else { /* same sign, the magnitude does not decrease */
        if (*brackt) {
            theta = 3.0 * (fp - *fy) / (*sty - *stp) + *dy + dp;
            s = fmax(fabs(theta), fmax(fabs(*dy), fabs(dp)));
            gamma = s * sqrt((theta / s) * (theta / s) - (*dy / s) * (dp / s));
            if (*stp > *sty) gamma = -gamma;
            p = (gamma - dp) + theta;
            q = ((gamma - dp) + gamma) + *dy;
            r = p / q;
            stpf = *stp + r * (*sty - *stp);
        } else {
            stpf = *stp > *stx ? stpmax : stpmin;
        }
    }
    if (fp > *fx) {
        *sty = *stp, *fy = fp, *dy = dp;
    } else {
        if (sgnd < 0) *sty = *stx, *fy = *fx, *dy = *dx;
        *stx = *stp, *fx = fp, *dx = dp;
    }
    *stp = stpf;
}

/* Given f and g (directional derivative) at *stp: returns 1 when the search is over (converged
 * or a warning, both accepted as L-BFGS-B does), else 0 with the next *stp to evaluate. */
static int mt_next(mt_ls *s, double f, double g, double *stp)
{
    double ftest = s->finit + *stp * s->gtest;
    if (s->stage == 1 && f <= ftest && g >= 0) s->stage = 2;
    if (s->brackt && (*stp <= s->stmin || *stp >= s->stmax)) return 1;    /* rounding errors */
    if (s->brackt && s->stmax - s->stmin <= s->xtol * s->stmax) return 1; /* xtol */
    if (*stp == s->stpmax && f <= ftest && g <= s->gtest) return 1;
    if (*stp == s->stpmin && (f > ftest || g >= s->gtest)) return 1;
    if (f <= ftest && fabs(g) <= s->gtol * (-s->ginit)) return 1; /* converged */
    if (s->stage == 1 && f <= s->fx && f > ftest) {
        /* the modified function psi(stp) = f - stp * gtest while no decrease condition holds */
        double fm = f - *stp * s->gtest, fxm = s->fx - s->stx * s->gtest,
               fym = s->fy - s->sty * s->gtest;
        double gm = g - s->gtest, gxm = s->gx - s->gtest, gym = s->gy - s->gtest;
        mt_step(&s->stx, &fxm, &gxm, &s->sty, &fym, &gym, stp, fm, gm, &s->brackt, s->stmin,
                s->stmax);
        s->fx = fxm + s->stx * s->gtest, s->fy = fym + s->sty * s->gtest;
        s->gx = gxm + s->gtest, s->gy = gym + s->gtest;
    } else {
        mt_step(&s->stx, &s->fx, &s->gx, &s->sty, &s->fy, &s->gy, stp, f, g, &s->brackt, s->stmin,
                s->stmax);
    }
    if (s->brackt) {
        if (fabs(s->sty - s->stx) >= 0.66 * s->width1) *stp = s->stx + 0.5 * (s->sty - s->stx);
        s->width1 = s->width;
        s->width = fabs(s->sty - s->stx);
        s->stmin = fmin(s->stx, s->sty), s->stmax = fmax(s->stx, s->sty);
    } else {
        s->stmin = *stp + 1.1 * (*stp - s->stx);
        s->stmax = *stp + 4.0 * (*stp - s->stx);
    }
    *stp = fmin(fmax(*stp, s->stpmin), s->stpmax);
    if ((s->brackt && (*stp <= s->stmin || *stp >= s->stmax)) ||
        (s->brackt && s->stmax - s->stmin <= s->xtol * s->stmax))
        *stp = s->stx;
    return 0;
}

/* ==== L-BFGS ================================================================================
 * L-BFGS-B without bounds: memory 10, first step 1/|g| along -g, then unit steps along the
 * two-loop direction (H0 = s'y / y'y); a pair with s'y <= eps * (-g's) is skipped; a failed
 * line search restores the point and restarts from steepest descent, and fails for good when
 * that was already steepest descent. Stops at max|g| <= pgtol, at a relative decrease of f
 * <= 2.2e-9 (scipy's default ftol), or after max_iter iterations. */

enum { LB_M = 10, LB_MAXLS = 20 };

typedef struct lb_ws {
    double *g, *d, *xold, *gold, *S, *Y;
    double rho[LB_M], sy[LB_M], yy[LB_M], a[LB_M];
} lb_ws;

static int lb_alloc(lb_ws *w, int64_t nv)
{
    memset(w, 0, sizeof *w);
    w->g = gr_malloc((size_t)nv * (4 + 2 * LB_M) * sizeof(double));
    if (!w->g) return GRAFT_E_NOMEM;
    w->d = w->g + nv, w->xold = w->d + nv, w->gold = w->xold + nv, w->S = w->gold + nv;
    w->Y = w->S + (size_t)nv * LB_M;
    return GRAFT_OK;
}

static void lb_free(lb_ws *w) { free(w->g); }

static void lb_direction(lb_ws *w, int64_t nv, int col, int head)
{
    double *d = w->d;
    for (int64_t i = 0; i < nv; i++) d[i] = -w->g[i];
    for (int j = col - 1; j >= 0; j--) {
        int k = (head + j) % LB_M;
        const double *s = w->S + (size_t)k * nv, *y = w->Y + (size_t)k * nv;
        w->a[j] = w->rho[k] * dot(s, d, nv);
        for (int64_t i = 0; i < nv; i++) d[i] -= w->a[j] * y[i];
    }
    if (col > 0) {
        int k = (head + col - 1) % LB_M;
        double gamma = w->sy[k] / w->yy[k];
        for (int64_t i = 0; i < nv; i++) d[i] *= gamma;
    }
    for (int j = 0; j < col; j++) {
        int k = (head + j) % LB_M;
        const double *s = w->S + (size_t)k * nv, *y = w->Y + (size_t)k * nv;
        double beta = w->rho[k] * dot(y, d, nv);
        for (int64_t i = 0; i < nv; i++) d[i] += (w->a[j] - beta) * s[i];
    }
}

/* Minimises p's objective from x (in/out). Returns 0, or -1 when sgemm failed. */
static int lbfgs(lr_prob *p, lb_ws *w, double *x, int max_iter, double pgtol, int *iters)
{
    const double eps = 2.220446049250313e-16, ftol = 2.2204460492503131e-09;
    int64_t nv = lr_nvar(p);
    double f, fold;
    int it = 0, col = 0, head = 0;
    *iters = 0;
    if (lr_eval(p, x, w->g, &f)) return -1;
    if (maxabs(w->g, nv) <= pgtol) return 0;
    for (;;) {
        lb_direction(w, nv, col, head);
        double gd = dot(w->g, w->d, nv);
        if (!(gd < 0)) { /* not a descent direction (rounding): restart or give up */
            if (col == 0) break;
            col = 0, head = 0;
            continue;
        }
        double stp = it == 0 ? fmin(1.0 / sqrt(dot(w->d, w->d, nv)), 1e10) : 1.0;
        memcpy(w->xold, x, (size_t)nv * sizeof(double));
        memcpy(w->gold, w->g, (size_t)nv * sizeof(double));
        fold = f;
        mt_ls ls;
        mt_start(&ls, f, gd, stp);
        int ok = 0;
        for (int k = 0; k < LB_MAXLS && !ok; k++) {
            for (int64_t i = 0; i < nv; i++) x[i] = w->xold[i] + stp * w->d[i];
            if (lr_eval(p, x, w->g, &f)) return -1;
            ok = mt_next(&ls, f, dot(w->g, w->d, nv), &stp);
        }
        if (!ok || !isfinite(f)) { /* restore the point; restart from steepest descent once */
            memcpy(x, w->xold, (size_t)nv * sizeof(double));
            memcpy(w->g, w->gold, (size_t)nv * sizeof(double));
            f = fold;
            if (col == 0) break;
            col = 0, head = 0;
            continue;
        }
        it++;
        if (it >= max_iter || maxabs(w->g, nv) <= pgtol) break;
        if (fold - f <= ftol * fmax(fmax(fabs(fold), fabs(f)), 1.0)) break;
        /* the new pair s = x - xold, y = g - gold */
        int k = col < LB_M ? (head + col) % LB_M : head;
        double *s = w->S + (size_t)k * nv, *yv = w->Y + (size_t)k * nv;
        for (int64_t i = 0; i < nv; i++) s[i] = x[i] - w->xold[i], yv[i] = w->g[i] - w->gold[i];
        double sy = dot(s, yv, nv), yy = dot(yv, yv, nv);
        if (sy <= eps * (-gd * stp)) continue; /* skipped, slot reused next time */
        w->rho[k] = 1.0 / sy, w->sy[k] = sy, w->yy[k] = yy;
        if (col < LB_M) col++;
        else head = (head + 1) % LB_M;
    }
    *iters = it;
    return 0;
}

/* ==== logistic regression: fit, cross-validation =========================================== */

/* Buffers of one problem (n rows), allocated up front so nothing fails in parallel regions. */
typedef struct lr_ws {
    lr_prob p;
    lb_ws lb;
    float *Xtr, *Xte; /* CV folds: own copies of their rows */
    int32_t *ytr, *yte;
    int64_t nte;
} lr_ws;

static int lr_ws_alloc(lr_ws *w, int64_t n, int dim, int K, int64_t nte)
{
    memset(w, 0, sizeof *w);
    w->p.n = n, w->p.dim = dim, w->p.K = K;
    w->p.Wf = gr_malloc(((size_t)K * dim + K) * sizeof(float));
    w->p.Z = gr_malloc((size_t)(n > nte ? n : nte) * K * sizeof(float));
    w->p.Gf = gr_malloc((size_t)K * dim * sizeof(float));
    w->p.rl = gr_malloc((size_t)n * sizeof(double));
    if (!w->p.Wf || !w->p.Z || !w->p.Gf || !w->p.rl) return GRAFT_E_NOMEM;
    w->p.bf = w->p.Wf + (size_t)K * dim;
    w->nte = nte;
    return lb_alloc(&w->lb, lr_nvar(&w->p));
}

static void lr_ws_free(lr_ws *w)
{
    free(w->p.Wf), free(w->p.Z), free(w->p.Gf), free(w->p.rl);
    free(w->Xtr), free(w->Xte), free(w->ytr), free(w->yte);
    lb_free(&w->lb);
}

/* Accuracy of w on rows X (n), argmax ties to the lower class (as numpy's argmax). */
static int lr_accuracy(lr_prob *p, const double *w, const float *X, const int32_t *y, int64_t n,
                       double *acc)
{
    int64_t KD = (int64_t)p->K * p->dim, right = 0;
    for (int64_t i = 0; i < KD; i++) p->Wf[i] = (float)w[i];
    if (sgemm('N', 'T', n, p->K, p->dim, X, p->dim, p->Wf, p->dim, 0.0f, p->Z, p->K)) return -1;
    for (int64_t i = 0; i < n; i++) {
        float *z = p->Z + i * p->K;
        for (int c = 0; c < p->K; c++) z[c] = (float)((double)z[c] + w[KD + c]);
        right += argmax_row(z, p->K) == y[i];
    }
    *acc = (double)right / (double)n;
    return 0;
}

/* numpy.logspace(-4, 4, ncs) */
static double logspace_c(int j, int ncs)
{
    if (ncs == 1) return 1e-4;
    double e = j == ncs - 1 ? 4.0 : (double)j * (8.0 / (double)(ncs - 1)) + -4.0;
    return pow(10.0, e);
}

static int lr_cv(const float *X, const int32_t *y, int64_t n, int dim, int K, const gr_fit_opts *o,
                 int max_iter, double tol, int threads, gr_head *h, double *w0)
{
    int F = o->folds > 0 ? o->folds : 5, ncs = o->ncs > 0 ? o->ncs : 10;
    int64_t nv = (int64_t)K * dim + K;
    int32_t *fold = gr_malloc((size_t)n * sizeof(int32_t));
    lr_ws *ws = gr_calloc((size_t)F, sizeof(lr_ws));
    double *coefs = gr_calloc((size_t)F * ncs * nv, sizeof(double));
    h->cv_scores = gr_calloc((size_t)F * ncs, sizeof(double));
    h->cv_Cs = gr_calloc((size_t)ncs, sizeof(double));
    int st = (fold && ws && coefs && h->cv_scores && h->cv_Cs) ? GRAFT_OK : GRAFT_E_NOMEM;
    if (!st) st = gr_stratified_folds(y, n, F, fold);
    for (int f = 0; f < F && !st; f++) {
        int64_t nte = 0;
        for (int64_t i = 0; i < n; i++) nte += fold[i] == f;
        if (nte == 0 || nte == n) {
            st = gr_err(GRAFT_E_ARG, "fit: cross-validation fold %d of %d is empty (%lld rows)", f,
                        F, (long long)n);
            break;
        }
        lr_ws *w = &ws[f];
        if ((st = lr_ws_alloc(w, n - nte, dim, K, nte))) break;
        w->Xtr = gr_malloc((size_t)(n - nte) * dim * sizeof(float));
        w->Xte = gr_malloc((size_t)nte * dim * sizeof(float));
        w->ytr = gr_malloc((size_t)(n - nte) * sizeof(int32_t));
        w->yte = gr_malloc((size_t)nte * sizeof(int32_t));
        if (!w->Xtr || !w->Xte || !w->ytr || !w->yte) {
            st = GRAFT_E_NOMEM;
            break;
        }
        for (int64_t i = 0, a = 0, b = 0; i < n; i++) {
            int te = fold[i] == f;
            memcpy(te ? w->Xte + b * dim : w->Xtr + a * dim, X + i * dim,
                   (size_t)dim * sizeof(float));
            if (te) w->yte[b++] = y[i];
            else w->ytr[a++] = y[i];
        }
        w->p.X = w->Xtr, w->p.y = w->ytr;
    }
    if (st) goto done;
    for (int j = 0; j < ncs; j++) h->cv_Cs[j] = logspace_c(j, ncs);
    h->cv_folds = F, h->cv_ncs = ncs;

    /* each fold: the path over increasing C, warm started (as _log_reg_scoring_path) */
    int bad = 0, nt = threads < F ? threads : F;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) reduction(| : bad)
    for (int f = 0; f < F; f++) {
        lr_ws *w = &ws[f];
        double *x = coefs + (size_t)f * ncs * nv; /* slot j holds the result for C_j */
        int it;
        w->p.par = nt <= 1;
        for (int j = 0; j < ncs && !bad; j++) {
            double *xj = x + (size_t)j * nv;
            if (j > 0) memcpy(xj, xj - nv, (size_t)nv * sizeof(double));
            w->p.invC = 1.0 / h->cv_Cs[j];
            bad |= lbfgs(&w->p, &w->lb, xj, max_iter, tol, &it) != 0;
            bad |= lr_accuracy(&w->p, xj, w->Xte, w->yte, w->nte, &h->cv_scores[f * ncs + j]) != 0;
        }
    }
    if (bad) {
        st = sgemm_err();
        goto done;
    }
    /* best summed accuracy, first of ties; refit starts from the folds' mean coefficients */
    int best = 0;
    double best_sum = -1;
    for (int j = 0; j < ncs; j++) {
        double s = 0;
        for (int f = 0; f < F; f++) s += h->cv_scores[f * ncs + j];
        if (s > best_sum) best_sum = s, best = j;
    }
    h->C = h->cv_Cs[best];
    h->cv_acc = best_sum / F;
    for (int64_t i = 0; i < nv; i++) {
        double s = 0;
        for (int f = 0; f < F; f++) s += coefs[((size_t)f * ncs + best) * nv + i];
        w0[i] = s / F;
    }
done:
    for (int f = 0; ws && f < F; f++) lr_ws_free(&ws[f]);
    free(ws), free(coefs), free(fold);
    return st;
}

/* A present class with fewer rows than folds: StratifiedKFold refuses it (scikit-learn's
 * LogisticRegressionCV fails), and folds of one row per class choose C by noise (measured: 45 %
 * instead of 50 % with C = 1 at one image per class), so C is LogisticRegression's default, 1. */
static int fewer_than_folds(const int32_t *y, int64_t n, int K, int folds)
{
    int64_t *cnt = gr_calloc((size_t)K + 1, sizeof *cnt);
    if (!cnt) return 0;
    for (int64_t i = 0; i < n; i++)
        if (y[i] >= 0 && y[i] < K) cnt[y[i]]++;
    int few = 0;
    for (int c = 0; c < K; c++) few |= cnt[c] > 0 && cnt[c] < folds;
    free(cnt);
    return few;
}

static int logreg_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o,
                      int threads, gr_head *h)
{
    int dim = h->dim, K = h->nclass;
    int max_iter = o->max_iter > 0 ? o->max_iter : 1000;
    double tol = o->tol > 0 ? o->tol : 1e-4;
    int64_t nv = (int64_t)K * dim + K;
    double *x = gr_calloc((size_t)nv, sizeof(double));
    if (!x) return GRAFT_E_NOMEM;
    int st = GRAFT_OK;
    if (o->C > 0) h->C = o->C;
    else if (fewer_than_folds(y, n, K, o->folds > 0 ? o->folds : 5)) h->C = 1;
    else if ((st = lr_cv(X, y, n, dim, K, o, max_iter, tol, threads, h, x))) return free(x), st;
    lr_ws w;
    if (!(st = lr_ws_alloc(&w, n, dim, K, 0))) {
        w.p.X = X, w.p.y = y, w.p.invC = 1.0 / h->C, w.p.par = 1;
        if (lbfgs(&w.p, &w.lb, x, max_iter, tol, &h->iters)) st = sgemm_err();
    }
    lr_ws_free(&w);
    h->W = gr_malloc((size_t)K * dim * sizeof(float));
    h->b = gr_malloc((size_t)K * sizeof(float));
    if (!st && (!h->W || !h->b)) st = GRAFT_E_NOMEM;
    if (!st) {
        for (int64_t i = 0; i < (int64_t)K * dim; i++) h->W[i] = (float)x[i];
        for (int c = 0; c < K; c++) h->b[c] = (float)x[(int64_t)K * dim + c];
    }
    free(x);
    return st;
}

/* ==== MLP =================================================================================== */

typedef struct mlp_param {
    float *w, *g, *m, *v;
    int64_t n;
    int decay;
} mlp_param;

static void adamw_step(mlp_param *P, int np, double lr, double wd, int64_t t)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    for (int k = 0; k < np; k++) {
        mlp_param *p = &P[k];
#pragma omp parallel for schedule(static) if (p->n >= (1 << 16))
        for (int64_t i = 0; i < p->n; i++) {
            double w = p->w[i], g = p->g[i];
            if (p->decay) w *= 1 - lr * wd;
            double m = b1 * p->m[i] + (1 - b1) * g, v = b2 * p->v[i] + (1 - b2) * g * g;
            p->m[i] = (float)m, p->v[i] = (float)v;
            p->w[i] = (float)(w - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps));
        }
    }
}

/* column sums of a (rows, cols) matrix into out (float), in double, rows in order */
static void colsum(const float *A, int64_t rows, int cols, float *out, double *acc)
{
    for (int c = 0; c < cols; c++) acc[c] = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) acc[c] += A[i * cols + c];
    for (int c = 0; c < cols; c++) out[c] = (float)acc[c];
}

static int mlp_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o, gr_head *h)
{
    int dim = h->dim, K = h->nclass, H = o->hidden > 0 ? o->hidden : 256,
        epochs = o->epochs > 0 ? o->epochs : 50;
    int64_t bs = (o->batch > 0 && o->batch < n) ? o->batch : n;
    float pdrop = o->dropout > 0 && o->dropout < 1 ? o->dropout : 0.0f;
    double lr = o->lr > 0 ? o->lr : 1e-3, wd = o->weight_decay >= 0 ? o->weight_decay : 0;
    h->hidden = H;
    int64_t sz[4] = { (int64_t)H * dim, H, (int64_t)K * H, K };
    mlp_param P[4];
    float *blk[4] = { 0 };
    int st = GRAFT_OK;
    for (int k = 0; k < 4; k++) {
        blk[k] = gr_calloc((size_t)sz[k] * 4, sizeof(float));
        if (!blk[k]) st = GRAFT_E_NOMEM;
        P[k] = (mlp_param){ blk[k],
                            blk[k] ? blk[k] + sz[k] : 0,
                            blk[k] ? blk[k] + 2 * sz[k] : 0,
                            blk[k] ? blk[k] + 3 * sz[k] : 0,
                            sz[k],
                            k == 0 || k == 2 };
    }
    /* the head owns the parameter part of each block (the rest is its gradient and moments) */
    h->W = blk[0], h->b = blk[1], h->W2 = blk[2], h->b2 = blk[3];
    float *Xb = gr_malloc((size_t)bs * dim * sizeof(float)),
          *A = gr_malloc((size_t)bs * H * sizeof(float));
    float *D = gr_malloc((size_t)bs * H * sizeof(float)),
          *Z = gr_malloc((size_t)bs * K * sizeof(float));
    int32_t *yb = gr_malloc((size_t)bs * sizeof(int32_t));
    int64_t *perm = gr_malloc((size_t)n * sizeof(int64_t));
    double *rl = gr_malloc((size_t)bs * sizeof(double)),
           *acc = gr_malloc((size_t)(H > K ? H : K) * sizeof(double));
    h->train_loss = gr_calloc((size_t)epochs, sizeof(double));
    if (!Xb || !A || !D || !Z || !yb || !perm || !rl || !acc || !h->train_loss) st = GRAFT_E_NOMEM;
    if (st) goto done;

    gr_rng rng;
    gr_rng_seed(&rng, o->seed);
    for (int k = 0; k < 4; k++) { /* PyTorch's nn.Linear: uniform(-1/sqrt(fan_in), +) */
        double a = 1.0 / sqrt(k < 2 ? dim : H);
        for (int64_t i = 0; i < sz[k]; i++) P[k].w[i] = (float)((2 * gr_rng_uniform(&rng) - 1) * a);
    }
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    int64_t t = 0;
    for (int e = 0; e < epochs; e++) {
        if (bs < n)
            for (int64_t i = n - 1; i > 0; i--) {
                int64_t j = (int64_t)gr_rng_below(&rng, (uint64_t)i + 1), tmp = perm[i];
                perm[i] = perm[j], perm[j] = tmp;
            }
        double eloss = 0;
        for (int64_t s0 = 0; s0 < n; s0 += bs) {
            int64_t m = n - s0 < bs ? n - s0 : bs;
            for (int64_t i = 0; i < m; i++) {
                memcpy(Xb + i * dim, X + perm[s0 + i] * dim, (size_t)dim * sizeof(float));
                yb[i] = y[perm[s0 + i]];
            }
            /* forward: A = relu(Xb W1^T + b1) * dropout mask, D its derivative w.r.t. the
             * pre-activation; Z = A W2^T */
            if (sgemm('N', 'T', m, H, dim, Xb, dim, P[0].w, dim, 0.0f, A, H)) {
                st = sgemm_err();
                goto done;
            }
            float keep = 1.0f / (1.0f - pdrop);
            for (int64_t i = 0; i < m * H; i++) {
                float a = A[i] + P[1].w[i % H];
                float mask = pdrop > 0 ? (gr_rng_uniform(&rng) >= pdrop ? keep : 0.0f) : 1.0f;
                D[i] = a > 0 ? mask : 0.0f;
                A[i] = a * D[i];
            }
            if (sgemm('N', 'T', m, K, H, A, H, P[2].w, H, 0.0f, Z, K)) {
                st = sgemm_err();
                goto done;
            }
#pragma omp parallel for schedule(static) if (m * K >= (1 << 17))
            for (int64_t i = 0; i < m; i++)
                rl[i] = softmax_ce_row(Z + i * K, P[3].w, K, yb[i], 1.0f / (float)m);
            for (int64_t i = 0; i < m; i++) eloss += rl[i];
            /* backward */
            if (sgemm('T', 'N', K, H, m, Z, K, A, H, 0.0f, P[2].g, H)) {
                st = sgemm_err();
                goto done;
            }
            colsum(Z, m, K, P[3].g, acc);
            if (sgemm('N', 'N', m, H, K, Z, K, P[2].w, H, 0.0f, A, H)) {
                st = sgemm_err();
                goto done;
            }
            for (int64_t i = 0; i < m * H; i++) A[i] *= D[i];
            if (sgemm('T', 'N', H, dim, m, A, H, Xb, dim, 0.0f, P[0].g, dim)) {
                st = sgemm_err();
                goto done;
            }
            colsum(A, m, H, P[1].g, acc);
            adamw_step(P, 4, lr, wd, ++t);
        }
        h->train_loss[e] = eloss / (double)n;
        h->epochs = e + 1;
        if (!isfinite(eloss)) {
            st = gr_err(GRAFT_E_NUMERIC,
                        "fit: MLP loss is not finite at epoch %d (lr %g too high?)", e + 1, lr);
            goto done;
        }
    }
done:
    free(Xb), free(A), free(D), free(Z), free(yb), free(perm), free(rl), free(acc);
    return st;
}

/* ==== kNN and nearest class mean =========================================================== */

static int knn_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o, gr_head *h)
{
    h->X = gr_malloc((size_t)n * h->dim * sizeof(float));
    h->y = gr_malloc((size_t)n * sizeof(int32_t));
    if (!h->X || !h->y) return GRAFT_E_NOMEM;
    memcpy(h->X, X, (size_t)n * h->dim * sizeof(float));
    memcpy(h->y, y, (size_t)n * sizeof(int32_t));
    unit_rows(h->X, n, h->dim);
    h->n = n;
    h->k = o->k > 0 ? o->k : 10;
    return GRAFT_OK;
}

static int ncm_fit(const float *X, const int32_t *y, int64_t n, gr_head *h)
{
    int dim = h->dim, K = h->nclass;
    h->W = gr_calloc((size_t)K * dim, sizeof(float));
    h->b = gr_calloc((size_t)K, sizeof(float));
    double *sum = gr_calloc((size_t)K * dim, sizeof(double));
    int64_t *cnt = gr_calloc((size_t)K, sizeof(int64_t));
    if (!h->W || !h->b || !sum || !cnt) return free(sum), free(cnt), GRAFT_E_NOMEM;
    for (int64_t i = 0; i < n; i++) {
        cnt[y[i]]++;
        for (int j = 0; j < dim; j++) sum[(int64_t)y[i] * dim + j] += X[i * dim + j];
    }
    for (int c = 0; c < K; c++) {
        for (int j = 0; j < dim; j++)
            h->W[(int64_t)c * dim + j] =
                cnt[c] ? (float)(sum[(int64_t)c * dim + j] / (double)cnt[c]) : 0.0f;
        h->b[c] = cnt[c] ? 0.0f : -INFINITY;
    }
    if (h->norm == GR_FEAT_L2) unit_rows(h->W, K, dim);
    free(sum), free(cnt);
    return GRAFT_OK;
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
        case GR_HEAD_LOGREG: st = logreg_fit(Xn, y, n, o, threads, h); break;
        case GR_HEAD_MLP: st = mlp_fit(Xn, y, n, o, h); break;
        case GR_HEAD_KNN: st = knn_fit(Xn, y, n, o, h); break;
        default: st = ncm_fit(Xn, y, n, h); break;
        }
    }
    free(Xn);
    if (o->threads > 0) gr_set_threads(saved);
    if (st == GRAFT_E_NOMEM)
        gr_err(st, "fit: out of memory (%lld rows of %d features)", (long long)n, dim);
    if (st) gr_head_free(h); /* nothing half-made is left to the caller */
    return st;
}

/* kNN probabilities of the unit query rows Q (m): similarities to every stored row, the k best
 * (scratch idx, sim: m * k), their votes (scratch votes: m * nclass). */
static int knn_predict(const gr_head *h, const float *Q, int64_t m, float *prob, float *S,
                       int64_t *idx, float *sim, double *votes)
{
    int K = h->nclass, k = h->k < h->n ? h->k : (int)h->n;
    if (sgemm('N', 'T', m, h->n, h->dim, Q, h->dim, h->X, h->dim, 0.0f, S, h->n))
        return sgemm_err();
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < m; q++) {
        const float *s = S + q * h->n;
        int64_t *bi = idx + q * k;
        float *bs = sim + q * k;
        double *v = votes + q * K, total = 0;
        int cnt = 0;
        for (int64_t i = 0; i < h->n; i++) { /* insertion into the k best, earlier rows win ties */
            if (cnt == k && !(s[i] > bs[k - 1])) continue;
            int p = cnt < k ? cnt++ : k - 1;
            while (p > 0 && s[i] > bs[p - 1]) bs[p] = bs[p - 1], bi[p] = bi[p - 1], p--;
            bs[p] = s[i], bi[p] = i;
        }
        for (int c = 0; c < K; c++) v[c] = 0;
        for (int j = 0; j < k; j++) total += fmax(bs[j], 0.0);
        for (int j = 0; j < k; j++) v[h->y[bi[j]]] += total > 0 ? fmax(bs[j], 0.0) : 1.0;
        if (!(total > 0)) total = k;
        for (int c = 0; c < K; c++) prob[q * K + c] = (float)(v[c] / total);
    }
    return GRAFT_OK;
}

int gr_head_predict(const gr_head *h, const float *X, int64_t n, float *prob)
{
    if (!h || !X || !prob || n < 0) return gr_err(GRAFT_E_ARG, "predict: bad arguments");
    if (n == 0) return GRAFT_OK;
    int dim = h->dim, K = h->nclass, H = h->hidden;
    /* rows by blocks to bound the scratch near 4M values per row width (kNN: similarities to
     * every stored row and votes for every class; else logits and hidden units), so that a head
     * with many classes or examples still predicts in bounded memory */
    int64_t width = h->kind == GR_HEAD_KNN ? h->n + K : (int64_t)K + H;
    int64_t blk = 1 + (int64_t)(4 << 20) / (width > 0 ? width : 1);
    if (blk > 1024) blk = 1024;
    if (blk > n) blk = n;
    int64_t kk = h->k < h->n ? h->k : h->n; /* knn_predict uses min(k, n) neighbours */
    if (kk < 1) kk = 1;
    size_t extra = h->kind == GR_HEAD_KNN ? (size_t)blk * h->n
                                          : (size_t)blk * (K + (h->kind == GR_HEAD_MLP ? H : 0));
    float *Xn = gr_malloc((size_t)blk * dim * sizeof(float)), *S = gr_malloc(extra * sizeof(float));
    int64_t *idx = h->kind == GR_HEAD_KNN ? gr_malloc((size_t)blk * kk * sizeof(int64_t)) : NULL;
    float *sim = h->kind == GR_HEAD_KNN ? gr_malloc((size_t)blk * kk * sizeof(float)) : NULL;
    double *mm = h->kind == GR_HEAD_NCM ? gr_malloc((size_t)K * sizeof(double)) : NULL;
    double *votes = h->kind == GR_HEAD_KNN ? gr_malloc((size_t)blk * K * sizeof(double)) : NULL;
    int st = (!Xn || !S || (h->kind == GR_HEAD_KNN && (!idx || !sim || !votes)) ||
              (h->kind == GR_HEAD_NCM && !mm))
                 ? GRAFT_E_NOMEM
                 : GRAFT_OK;
    if (!st && h->kind == GR_HEAD_NCM)
        for (int c = 0; c < K; c++) mm[c] = sqnorm_f(h->W + (int64_t)c * dim, dim);
    for (int64_t r0 = 0; r0 < n && !st; r0 += blk) {
        int64_t m = n - r0 < blk ? n - r0 : blk;
        float *P = prob + r0 * K;
        norm_apply(h, X + r0 * dim, m, Xn);
        if (h->kind == GR_HEAD_KNN) {
            unit_rows(Xn, m, dim);
            st = knn_predict(h, Xn, m, P, S, idx, sim, votes);
            continue;
        }
        float *Z = S;
        const float *in = Xn, *W = h->W, *b = h->b;
        int din = dim;
        if (h->kind == GR_HEAD_MLP) {
            float *A = S + (size_t)blk * K;
            if (sgemm('N', 'T', m, H, dim, Xn, dim, h->W, dim, 0.0f, A, H)) {
                st = sgemm_err();
                break;
            }
            for (int64_t i = 0; i < m * H; i++) A[i] = fmaxf(A[i] + h->b[i % H], 0.0f);
            in = A, W = h->W2, b = h->b2, din = H;
        }
        if (sgemm('N', 'T', m, K, din, in, din, W, din, 0.0f, Z, K)) {
            st = sgemm_err();
            break;
        }
        if (h->kind == GR_HEAD_NCM && h->norm != GR_FEAT_L2)
            /* -|x - m|^2 = 2 x.m - |m|^2 - |x|^2; the last term is the same for every class */
            for (int64_t i = 0; i < m; i++)
                for (int c = 0; c < K; c++) Z[i * K + c] = (float)(2.0 * Z[i * K + c] - mm[c]);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++) softmax_row(Z + i * K, b, K, P + i * K);
    }
    free(Xn), free(S), free(idx), free(sim), free(mm), free(votes);
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

/* ==== safetensors files ==================================================================== */

static const char *const kind_names[] = { "logreg", "mlp", "knn", "ncm" };
static const char *const norm_names[] = { "none", "standardize", "l2" };

static void st_add(gr_st_entry *e, int *ne, const char *name, void *data, int dtype, int rank,
                   int64_t d0, int64_t d1)
{
    int64_t d[2] = { d0, d1 };
    gr_st_entry *x = &e[(*ne)++];
    x->name = name, x->dtype = dtype, x->shape = gr_shape_make(rank, d), x->data = data;
    x->bytes = (size_t)gr_numel(&x->shape) * gr_dtype_size(dtype);
}

/* The origin (graft fit records the class names there) must name as many classes as the head
 * has: more classes than names would print phantom classes, fewer would drop some. An origin
 * that is not a JSON object, or has no "classes", states nothing to check. status: what a
 * mismatch returns (a bad file at load, a bad argument at save). */
static int check_origin(const char *path, const char *origin, int nclass, int status)
{
    cJSON *o = cJSON_Parse(origin);
    const cJSON *c = cJSON_GetObjectItem(o, "classes"), *e;
    int st = GRAFT_OK, n = cJSON_GetArraySize(c), strings = 0;
    cJSON_ArrayForEach(e, c) strings += cJSON_IsString(e);
    if (c && (!cJSON_IsArray(c) || strings != n))
        st = gr_err(status,
                    "%s: the head's origin ('graft_origin'): \"classes\" is not an array of names",
                    path);
    else if (c && n != nclass)
        st = gr_err(
            status,
            "%s: the head has %d classes ('nclass') but its origin ('graft_origin') names %d", path,
            nclass, n);
    cJSON_Delete(o);
    return st;
}

int gr_head_save(const gr_head *h, const char *path)
{
    if (!h || !path || h->kind < GR_HEAD_LOGREG || h->kind > GR_HEAD_NCM || h->norm < 0 ||
        h->norm > GR_FEAT_L2)
        return gr_err(GRAFT_E_ARG, "%s: not a fitted head", path ? path : "(null)");
    gr_st_entry e[8];
    int ne = 0;
    if (h->norm == GR_FEAT_STANDARDIZE) {
        st_add(e, &ne, "mu", h->mu, GR_F32, 1, h->dim, 0);
        st_add(e, &ne, "sd", h->sd, GR_F32, 1, h->dim, 0);
    }
    if (h->kind == GR_HEAD_LOGREG || h->kind == GR_HEAD_NCM) {
        st_add(e, &ne, "W", h->W, GR_F32, 2, h->nclass, h->dim);
        st_add(e, &ne, "b", h->b, GR_F32, 1, h->nclass, 0);
    } else if (h->kind == GR_HEAD_MLP) {
        st_add(e, &ne, "W", h->W, GR_F32, 2, h->hidden, h->dim);
        st_add(e, &ne, "b", h->b, GR_F32, 1, h->hidden, 0);
        st_add(e, &ne, "W2", h->W2, GR_F32, 2, h->nclass, h->hidden);
        st_add(e, &ne, "b2", h->b2, GR_F32, 1, h->nclass, 0);
    } else {
        st_add(e, &ne, "X", h->X, GR_F32, 2, h->n, h->dim);
        st_add(e, &ne, "y", h->y, GR_I32, 1, h->n, 0);
    }
    for (int i = 0; i < ne; i++)
        if (!e[i].data) return gr_err(GRAFT_E_ARG, "%s: the head has no '%s'", path, e[i].name);
    char v[9][40];
    snprintf(v[0], sizeof v[0], "%s", kind_names[h->kind]);
    snprintf(v[1], sizeof v[1], "%s", norm_names[h->norm]);
    snprintf(v[2], sizeof v[2], "%d", h->nclass);
    snprintf(v[3], sizeof v[3], "%d", h->dim);
    snprintf(v[4], sizeof v[4], "%d", h->hidden);
    /* kNN: the k predict uses, min(k, n), so that the file states a k its examples can meet */
    snprintf(v[5], sizeof v[5], "%lld",
             (long long)(h->kind == GR_HEAD_KNN && h->k > h->n ? h->n : h->k));
    snprintf(v[6], sizeof v[6], "%lld", (long long)h->n);
    snprintf(v[7], sizeof v[7], "%.17g", h->C);
    snprintf(v[8], sizeof v[8], "%.17g", h->cv_acc);
    static const char *const keys[9] = { "graft_head", "norm", "nclass", "dim",   "hidden",
                                         "k",          "n",    "C",      "cv_acc" };
    gr_meta m[10];
    for (int i = 0; i < 9; i++) m[i].key = (char *)keys[i], m[i].value = v[i];
    int nm = 9;
    if (h->origin) m[nm++] = (gr_meta){ "graft_origin", h->origin };
    int st = h->origin ? check_origin(path, h->origin, h->nclass, GRAFT_E_ARG) : GRAFT_OK;
    return st ? st : gr_st_save(path, e, ne, m, nm);
}

static const char *meta_get(const gr_meta *m, int nm, const char *key)
{
    for (int i = 0; i < nm; i++)
        if (strcmp(m[i].key, key) == 0) return m[i].value;
    return NULL;
}

/* An integer of the head's metadata in [lo, hi], checked against limit `lim` (-1: none) first:
 * a count beyond a limit is refused as such, whatever the type could hold. A missing entry is
 * 0 when lo <= 0 (not needed by this kind of head). */
static int meta_int(const char *path, const gr_meta *m, int nm, const char *key, int64_t lo,
                    int64_t hi, int lim, int64_t *out)
{
    const char *s = meta_get(m, nm, key);
    if (!s && lo <= 0) return *out = 0, GRAFT_OK;
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    int ok = s && end != s && !*end && !errno && v >= lo;
    if (ok && lim >= 0) {
        int st =
            gr_limit_check((graft_limit)lim, v, "%s: head metadata '%s' is %lld", path, key, v);
        if (st) return st;
    }
    if (!ok || v > hi)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: head metadata '%s' is %s%s%s, expected an integer in [%lld, %lld]", path,
                      key, s ? "\"" : "missing", s ? s : "", s ? "\"" : "", (long long)lo,
                      (long long)hi);
    *out = v;
    return GRAFT_OK;
}

static int name_index(const char *path, const gr_meta *m, int nm, const char *key,
                      const char *const *names, int n, int *out)
{
    const char *s = meta_get(m, nm, key);
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) return *out = i, GRAFT_OK;
    return gr_err(GRAFT_E_FORMAT, "%s: head metadata '%s' is %s%s%s", path, key,
                  s ? "unknown: \"" : "missing", s ? s : "", s ? "\"" : "");
}

/* Copies tensor `name` (dtype, shape (d0[, d1])) out of the loaded entries into malloc'd *dst. */
static int take(const char *path, const gr_st_entry *e, int ne, const char *name, int dtype,
                int rank, int64_t d0, int64_t d1, void **dst)
{
    for (int i = 0; i < ne; i++) {
        if (strcmp(e[i].name, name)) continue;
        gr_shape want = gr_shape_make(rank, (int64_t[]){ d0, d1 });
        if (e[i].dtype != dtype || !gr_shape_eq(&e[i].shape, &want)) {
            char got[200], exp[96];
            return gr_err(GRAFT_E_FORMAT, "%s: tensor '%s' is %s %s, expected %s %s", path, name,
                          gr_dtype_name(e[i].dtype), gr_shape_str(&e[i].shape, got, sizeof got),
                          gr_dtype_name(dtype), gr_shape_str(&want, exp, sizeof exp));
        }
        *dst = gr_malloc(e[i].bytes ? e[i].bytes : 1);
        if (!*dst) return GRAFT_E_NOMEM;
        memcpy(*dst, e[i].data, e[i].bytes);
        return GRAFT_OK;
    }
    return gr_err(GRAFT_E_FORMAT, "%s: the head has no tensor '%s'", path, name);
}

/* Kind, normalisation and sizes from the metadata, each against its range and limit, and
 * against each other (a kNN head's k neighbours among its n examples). */
static int head_meta(const char *path, const gr_meta *m, int nm, gr_head *h)
{
    int64_t nclass = 0, dim = 0, hidden = 0, k = 0, n = 0;
    int knn = 0;
    int st = name_index(path, m, nm, "graft_head", kind_names, 4, &h->kind);
    if (!st) st = name_index(path, m, nm, "norm", norm_names, 3, &h->norm);
    if (!st) knn = h->kind == GR_HEAD_KNN;
    if (!st) st = meta_int(path, m, nm, "nclass", 2, INT32_MAX, GRAFT_LIMIT_CLASSES, &nclass);
    if (!st) st = meta_int(path, m, nm, "dim", 1, INT32_MAX, -1, &dim);
    if (!st)
        st =
            meta_int(path, m, nm, "hidden", h->kind == GR_HEAD_MLP ? 1 : 0, INT32_MAX, -1, &hidden);
    if (!st) st = meta_int(path, m, nm, "k", knn, INT32_MAX, knn ? GRAFT_LIMIT_K : -1, &k);
    if (!st) st = meta_int(path, m, nm, "n", knn, INT64_MAX, -1, &n);
    if (st) return st;
    /* k > n: heads saved before graft wrote min(k, n) (graft fit --head knn on fewer than 10
     * rows) are valid files, and predict always used min(k, n); the k limit above still bounds
     * what a file may ask for */
    if (knn && k > n) k = n;
    h->nclass = (int)nclass, h->dim = (int)dim, h->hidden = (int)hidden, h->k = (int)k, h->n = n;
    return GRAFT_OK;
}

/* The stored tensors, each of the shape the metadata gives (take), and their values where a
 * bad one would misbehave later (a scale of 0, a label outside the classes). */
static int head_tensors(const char *path, const gr_st_entry *e, int ne, gr_head *h)
{
    int64_t K = h->nclass, dim = h->dim, H = h->hidden, n = h->n;
    int st = GRAFT_OK;
    if (h->norm == GR_FEAT_STANDARDIZE) {
        st = take(path, e, ne, "mu", GR_F32, 1, dim, 0, (void **)&h->mu);
        if (!st) st = take(path, e, ne, "sd", GR_F32, 1, dim, 0, (void **)&h->sd);
        for (int64_t j = 0; !st && j < dim; j++)
            if (!(h->sd[j] > 0) || !isfinite(h->sd[j]))
                st = gr_err(GRAFT_E_FORMAT, "%s: 'sd' of feature %lld is %g, not a positive number",
                            path, (long long)j, h->sd[j]);
    }
    if (st) return st;
    if (h->kind == GR_HEAD_LOGREG || h->kind == GR_HEAD_NCM) {
        st = take(path, e, ne, "W", GR_F32, 2, K, dim, (void **)&h->W);
        if (!st) st = take(path, e, ne, "b", GR_F32, 1, K, 0, (void **)&h->b);
    } else if (h->kind == GR_HEAD_MLP) {
        st = take(path, e, ne, "W", GR_F32, 2, H, dim, (void **)&h->W);
        if (!st) st = take(path, e, ne, "b", GR_F32, 1, H, 0, (void **)&h->b);
        if (!st) st = take(path, e, ne, "W2", GR_F32, 2, K, H, (void **)&h->W2);
        if (!st) st = take(path, e, ne, "b2", GR_F32, 1, K, 0, (void **)&h->b2);
    } else {
        st = take(path, e, ne, "X", GR_F32, 2, n, dim, (void **)&h->X);
        if (!st) st = take(path, e, ne, "y", GR_I32, 1, n, 0, (void **)&h->y);
        for (int64_t i = 0; !st && i < n; i++)
            if (h->y[i] < 0 || h->y[i] >= K)
                st = gr_err(GRAFT_E_FORMAT,
                            "%s: tensor 'y': label %d of stored example %lld is outside [0, %lld) "
                            "('nclass')",
                            path, h->y[i], (long long)i, (long long)K);
    }
    return st;
}

int gr_head_load(const char *path, gr_head *h)
{
    if (!path || !h) return gr_err(GRAFT_E_ARG, "head load: bad arguments");
    memset(h, 0, sizeof *h);
    gr_arena *a = gr_arena_new(1 << 16);
    if (!a) return gr_err(GRAFT_E_NOMEM, "%s: out of memory loading the head", path);
    gr_st_entry *e;
    gr_meta *m;
    int ne, nm, st = gr_st_load(path, a, &e, &ne, &m, &nm);
    if (!st) st = head_meta(path, m, nm, h);
    const char *c = st ? NULL : meta_get(m, nm, "C"), *cv = st ? NULL : meta_get(m, nm, "cv_acc"),
               *origin = st ? NULL : meta_get(m, nm, "graft_origin");
    if (origin) st = check_origin(path, origin, h->nclass, GRAFT_E_FORMAT);
    if (!st && origin && !(h->origin = strdup(origin))) st = GRAFT_E_NOMEM;
    h->C = c ? strtod(c, NULL) : 0;
    h->cv_acc = cv ? strtod(cv, NULL) : 0;
    if (!st) st = head_tensors(path, e, ne, h);
    gr_arena_free(a);
    if (st == GRAFT_E_NOMEM) gr_err(st, "%s: out of memory loading the head", path);
    if (st) gr_head_free(h);
    return st;
}
