/* head_logreg.c — multinomial logistic regression on features, as scikit-learn 1.2's
 * LogisticRegression(solver="lbfgs", multi_class="multinomial") and LogisticRegressionCV: same
 * objective scaling, same stopping rules as scipy's L-BFGS-B on an unconstrained problem, same
 * fold assignment, same Cs, same warm starts (transfer.h gives the rules). Parameters and the
 * optimiser run in double; the products with the features run in float32 (sgemm). */
#include "transfer/heads.h"

#include <math.h>
#include <string.h>

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double maxabs(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
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
    if (gr_head_sgemm('N', 'T', n, K, p->dim, p->X, p->dim, p->Wf, p->dim, 0.0f, p->Z, K))
        return -1;
#pragma omp parallel for schedule(static) if (p->par && n * K >= (1 << 17))
    for (int64_t i = 0; i < n; i++)
        p->rl[i] = gr_head_softmax_ce_row(p->Z + i * K, p->bf, K, p->y[i], 1.0f);
    double loss = 0;
    for (int64_t i = 0; i < n; i++) loss += p->rl[i];
    if (gr_head_sgemm('T', 'N', K, p->dim, n, p->Z, K, p->X, p->dim, 0.0f, p->Gf, p->dim))
        return -1;
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
    if (gr_head_sgemm('N', 'T', n, p->K, p->dim, X, p->dim, p->Wf, p->dim, 0.0f, p->Z, p->K))
        return -1;
    for (int64_t i = 0; i < n; i++) {
        float *z = p->Z + i * p->K;
        for (int c = 0; c < p->K; c++) z[c] = (float)((double)z[c] + w[KD + c]);
        right += gr_argmax(z, p->K) == y[i];
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

/* Fold f's workspace: own copies of its training rows (all but fold f) and its test rows. */
static int cv_fold_split(const float *X, const int32_t *y, int64_t n, int dim, int K,
                         const int32_t *fold, int f, int F, lr_ws *w)
{
    int64_t nte = 0;
    for (int64_t i = 0; i < n; i++) nte += fold[i] == f;
    if (nte == 0 || nte == n)
        return gr_err(GRAFT_E_ARG, "fit: cross-validation fold %d of %d is empty (%lld rows)", f, F,
                      (long long)n);
    int st = lr_ws_alloc(w, n - nte, dim, K, nte);
    if (st) return st;
    w->Xtr = gr_malloc((size_t)(n - nte) * dim * sizeof(float));
    w->Xte = gr_malloc((size_t)nte * dim * sizeof(float));
    w->ytr = gr_malloc((size_t)(n - nte) * sizeof(int32_t));
    w->yte = gr_malloc((size_t)nte * sizeof(int32_t));
    if (!w->Xtr || !w->Xte || !w->ytr || !w->yte) return GRAFT_E_NOMEM;
    for (int64_t i = 0, a = 0, b = 0; i < n; i++) {
        int te = fold[i] == f;
        memcpy(te ? w->Xte + b * dim : w->Xtr + a * dim, X + i * dim, (size_t)dim * sizeof(float));
        if (te) w->yte[b++] = y[i];
        else w->ytr[a++] = y[i];
    }
    w->p.X = w->Xtr, w->p.y = w->ytr;
    return GRAFT_OK;
}

/* Each fold's path over increasing C, warm started (as _log_reg_scoring_path), folds on up to
 * `threads` threads: coefs (F, ncs, nv) gets the coefficients, h->cv_scores the accuracies. */
static int cv_paths(lr_ws *ws, int F, int ncs, int64_t nv, double *coefs, int max_iter, double tol,
                    int threads, gr_head *h)
{
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
    return bad ? gr_head_sgemm_err() : GRAFT_OK;
}

/* The best summed accuracy (first of ties) sets h->C and h->cv_acc; w0 (nv) gets the folds' mean
 * coefficients at that C, where the refit starts. */
static void cv_pick(const double *coefs, int F, int ncs, int64_t nv, gr_head *h, double *w0)
{
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
    for (int f = 0; f < F && !st; f++) st = cv_fold_split(X, y, n, dim, K, fold, f, F, &ws[f]);
    if (!st) {
        for (int j = 0; j < ncs; j++) h->cv_Cs[j] = logspace_c(j, ncs);
        h->cv_folds = F, h->cv_ncs = ncs;
        st = cv_paths(ws, F, ncs, nv, coefs, max_iter, tol, threads, h);
    }
    if (!st) cv_pick(coefs, F, ncs, nv, h, w0);
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

int gr_logreg_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o, int threads,
                  gr_head *h)
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
        if (lbfgs(&w.p, &w.lb, x, max_iter, tol, &h->iters)) st = gr_head_sgemm_err();
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
