/* loss_adapt.c — the losses of learning from unlabelled data, each with its gradient, in double
 * where sums meet (the formulas are those of the papers' reference code; see train.h):
 *   entropy   TENT (Wang et al. 2021): mean softmax entropy of the predictions;
 *   im        SHOT (Liang et al. 2020): information maximisation, mean entropy minus the entropy
 *             of the mean prediction, both with SHOT's epsilon inside the log;
 *   coral     Deep CORAL (Sun & Saenko 2016): |C_s - C_t|_F^2 / (4 d^2) of the two batches'
 *             feature covariances;
 *   mmd       DAN's multi-kernel MMD (Long et al. 2015, as Transfer-Learning-Library's
 *             MultipleKernelMaximumMeanDiscrepancy): Gaussian kernels whose bandwidths are
 *             multiples of the batch's mean squared distance, the unbiased estimator. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Softmax of one row of k logits into p (double). */
static void softmax_row(const float *z, int k, double *p)
{
    double mx = z[0], sum = 0;
    for (int c = 1; c < k; c++) mx = z[c] > mx ? z[c] : mx;
    for (int c = 0; c < k; c++) sum += (p[c] = exp(z[c] - mx));
    for (int c = 0; c < k; c++) p[c] /= sum;
}

double gr_loss_entropy(const float *logits, int64_t n, int k, float *dlogits)
{
    double *p = malloc((size_t)k * sizeof *p), loss = 0;
    if (!p) return NAN;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        softmax_row(z, k, p);
        double h = 0; /* -sum p log p, log p as log_softmax: z - lse */
        for (int c = 0; c < k; c++) h -= p[c] > 0 ? p[c] * log(p[c]) : 0;
        loss += h;
        /* dH/dz_j = -p_j (log p_j + H) */
        for (int c = 0; dlogits && c < k; c++)
            dlogits[i * k + c] = (float)(-p[c] * ((p[c] > 0 ? log(p[c]) : 0) + h) / (double)n);
    }
    free(p);
    return n ? loss / (double)n : 0;
}

/* The gradient of a row's softmax: dL/dz_j = p_j (g_j - sum_c p_c g_c) for dL/dp = g. */
static void softmax_backward(const double *p, const double *g, int k, double scale, float *dz)
{
    double dot = 0;
    for (int c = 0; c < k; c++) dot += p[c] * g[c];
    for (int c = 0; c < k; c++) dz[c] += (float)(scale * p[c] * (g[c] - dot));
}

double gr_loss_im(const float *logits, int64_t n, int k, double eps, float *dlogits)
{
    double *P = malloc((size_t)(n * k + 2 * k) * sizeof *P), loss = 0;
    if (!P) return NAN;
    double *mean = P + n * k, *g = mean + k;
    memset(mean, 0, (size_t)k * sizeof *mean);
    for (int64_t i = 0; i < n; i++) {
        softmax_row(logits + i * k, k, P + i * k);
        for (int c = 0; c < k; c++) {
            double q = P[i * k + c];
            loss -= q * log(q + eps) / (double)n; /* mean of the rows' entropies */
            mean[c] += q / (double)n;
        }
    }
    for (int c = 0; c < k; c++) loss += mean[c] * log(mean[c] + eps); /* minus H(mean) */
    if (dlogits) {
        memset(dlogits, 0, (size_t)(n * k) * sizeof *dlogits);
        /* d(-H(mean))/dmean_c = log(m + eps) + m / (m + eps); each row adds 1/n of it */
        double *gm = malloc((size_t)k * sizeof *gm);
        if (!gm) {
            free(P);
            return NAN;
        }
        for (int c = 0; c < k; c++) gm[c] = log(mean[c] + eps) + mean[c] / (mean[c] + eps);
        for (int64_t i = 0; i < n; i++) {
            const double *q = P + i * k;
            for (int c = 0; c < k; c++) /* d(-q log(q + eps))/dq, then the mean's part */
                g[c] = -(log(q[c] + eps) + q[c] / (q[c] + eps)) + gm[c];
            softmax_backward(q, g, k, 1.0 / (double)n, dlogits + i * k);
        }
        free(gm);
    }
    free(P);
    return loss;
}

/* Centred rows Xc (n, d) and the covariance C (d, d) = Xc^T Xc / (n - 1). */
static void covariance(const float *x, int64_t n, int d, double *Xc, double *C)
{
    for (int j = 0; j < d; j++) {
        double m = 0;
        for (int64_t i = 0; i < n; i++) m += x[i * d + j];
        m /= (double)n;
        for (int64_t i = 0; i < n; i++) Xc[i * d + j] = x[i * d + j] - m;
    }
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += Xc[i * d + a] * Xc[i * d + b];
            C[a * d + b] = C[b * d + a] = s / (double)(n - 1);
        }
}

/* dx = scale * Xc G (rows of x, G symmetric (d, d)). */
static void rows_times(const double *Xc, int64_t n, int d, const double *G, double scale, float *dx)
{
    for (int64_t i = 0; i < n; i++)
        for (int b = 0; b < d; b++) {
            double s = 0;
            for (int a = 0; a < d; a++) s += Xc[i * d + a] * G[a * d + b];
            dx[i * d + b] = (float)(scale * s);
        }
}

double gr_loss_coral(const float *xs, int64_t ns, const float *xt, int64_t nt, int d, float *dxs,
                     float *dxt)
{
    if (ns < 2 || nt < 2 || d < 1) return NAN;
    double *Xs = malloc((size_t)((ns + nt) * d + 3 * d * d) * sizeof *Xs);
    if (!Xs) return NAN;
    double *Xt = Xs + ns * d, *Cs = Xt + nt * d, *Ct = Cs + d * d, *D = Ct + d * d;
    covariance(xs, ns, d, Xs, Cs);
    covariance(xt, nt, d, Xt, Ct);
    double loss = 0, dd = (double)d * d;
    for (int64_t q = 0; q < (int64_t)d * d; q++) {
        D[q] = Cs[q] - Ct[q];
        loss += D[q] * D[q];
    }
    /* dL/dC_s = D / (2 d^2); through C = Xc^T Xc / (n - 1): dL/dx = 2 Xc dL/dC / (n - 1) (the
     * centring adds nothing: the columns of Xc sum to zero) */
    if (dxs) rows_times(Xs, ns, d, D, 1.0 / (dd * (double)(ns - 1)), dxs);
    if (dxt) rows_times(Xt, nt, d, D, -1.0 / (dd * (double)(nt - 1)), dxt);
    free(Xs);
    return loss / (4 * dd);
}

/* Squared distances between the m = ns + nt rows of [xs; xt] (m, m) and their mean. */
static double sq_distances(const float *xs, int64_t ns, const float *xt, int64_t nt, int d,
                           double *D2)
{
    int64_t m = ns + nt;
    double sum = 0;
    for (int64_t a = 0; a < m; a++) {
        const float *u = a < ns ? xs + a * d : xt + (a - ns) * d;
        for (int64_t b = a; b < m; b++) {
            const float *v = b < ns ? xs + b * d : xt + (b - ns) * d;
            double s = 0;
            for (int j = 0; j < d; j++) s += ((double)u[j] - v[j]) * ((double)u[j] - v[j]);
            D2[a * m + b] = D2[b * m + a] = s;
            sum += a == b ? s : 2 * s;
        }
    }
    return sum / (double)(m * m);
}

double gr_loss_mmd(const float *xs, int64_t ns, const float *xt, int64_t nt, int d,
                   const double *alphas, int nkernel, float *dxs, float *dxt)
{
    if (ns < 2 || nt < 2 || nkernel < 1) return NAN;
    int64_t m = ns + nt;
    double *D2 = malloc((size_t)(m * m) * sizeof *D2);
    if (!D2) return NAN;
    double mean = sq_distances(xs, ns, xt, nt, d, D2), loss = 0;
    if (dxs) memset(dxs, 0, (size_t)(ns * d) * sizeof *dxs);
    if (dxt) memset(dxt, 0, (size_t)(nt * d) * sizeof *dxt);
    for (int64_t a = 0; a < m; a++)
        for (int64_t b = 0; b < m; b++) {
            if (a == b) continue;
            int sa = a < ns, sb = b < ns; /* weights of the unbiased estimator */
            double w = sa && sb     ? 1.0 / (double)(ns * (ns - 1))
                       : !sa && !sb ? 1.0 / (double)(nt * (nt - 1))
                                    : -1.0 / (double)(ns * nt);
            double k = 0, dk = 0; /* sum of kernels and of k / sigma^2 (bandwidths detached) */
            for (int q = 0; q < nkernel; q++) {
                double s2 = alphas[q] * mean, e = exp(-D2[a * m + b] / (2 * s2));
                k += e, dk += e / s2;
            }
            loss += w * k;
            /* d(w k(x_a, x_b))/dx_a = -w dk (x_a - x_b); the pair (b, a) adds the same to x_a */
            float *ga = sa ? (dxs ? dxs + a * d : NULL) : (dxt ? dxt + (a - ns) * d : NULL);
            if (!ga) continue;
            const float *u = sa ? xs + a * d : xt + (a - ns) * d,
                        *v = sb ? xs + b * d : xt + (b - ns) * d;
            for (int j = 0; j < d; j++) ga[j] += (float)(-2 * w * dk * ((double)u[j] - v[j]));
        }
    free(D2);
    return loss;
}
