/* coral.c — closed-form CORAL on feature rows (Sun, Feng & Saenko 2016, "Return of Frustratingly
 * Easy Domain Adaptation", Algorithm 1): the source rows are whitened by their own covariance and
 * re-coloured by the target's, both regularised by the identity,
 *   Cs = cov(Zs) + I,  Ct = cov(Zt) + I,  Zs' = Zs Cs^(-1/2) Ct^(1/2),
 * on features normalised to zero mean and unit variance in each domain (the paper's setting; Z =
 * (X - mean) / std, std with ddof 0 as StandardScaler, 1 where a feature is constant; cov with
 * ddof 1 as np.cov). The result goes back into the target's units, Xs' = Zs' * std_t + mean_t,
 * so that a head fitted on the aligned source rows applies to raw target features.
 *
 * The matrix roots come from the coupled Newton-Schulz iteration (Higham 2008, (6.35)): with
 * c = ||C||_F, Y0 = C / c, Z0 = I, T = (3 I - Z Y) / 2, Y <- Y T, Z <- T Z converges
 * quadratically to (C / c)^(1/2) and (C / c)^(-1/2) for a symmetric positive definite C (here
 * every eigenvalue is at least 1, so at most about c); only matrix products (sgemm), no
 * eigendecomposition. */
#include "transfer/heads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NS_MAX_ITERS = 100 };

/* Per-feature mean and standard deviation (ddof 0; 1 where constant) of X (n, d), in double. */
static void moments(const float *X, int64_t n, int64_t d, double *mean, double *sd)
{
    for (int64_t j = 0; j < d; j++) mean[j] = 0, sd[j] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) mean[j] += X[i * d + j];
    for (int64_t j = 0; j < d; j++) mean[j] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            double v = X[i * d + j] - mean[j];
            sd[j] += v * v;
        }
    for (int64_t j = 0; j < d; j++) {
        sd[j] = sqrt(sd[j] / (double)n);
        if (!(sd[j] > 1e-12)) sd[j] = 1; /* a constant feature: centred only */
    }
}

/* Z (n, d) = (X - mean) / sd; then C (d, d) = Z^T Z / (n - 1) + I. */
static int standardised_cov(const float *X, int64_t n, int64_t d, const double *mean,
                            const double *sd, float *Z, float *C)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) Z[i * d + j] = (float)((X[i * d + j] - mean[j]) / sd[j]);
    if (gr_head_sgemm('T', 'N', d, d, n, Z, d, Z, d, 0.0f, C, d)) return gr_head_sgemm_err();
    for (int64_t k = 0; k < d * d; k++) C[k] /= (float)(n - 1);
    for (int64_t j = 0; j < d; j++) C[j * d + j] += 1.0f;
    return GRAFT_OK;
}

/* Y = C^(1/2) and Z = C^(-1/2) (d, d) by Newton-Schulz (see the top); T, P: scratch (d, d). */
static int sqrt_pair(const float *C, int64_t d, float *Y, float *Z, float *T, float *P)
{
    double c = 0;
    for (int64_t k = 0; k < d * d; k++) c += (double)C[k] * C[k];
    c = sqrt(c);
    if (!(c > 0) || !isfinite(c))
        return gr_err(GRAFT_E_NUMERIC, "coral: the covariance is not finite");
    for (int64_t k = 0; k < d * d; k++) Y[k] = (float)(C[k] / c), Z[k] = 0;
    for (int64_t j = 0; j < d; j++) Z[j * d + j] = 1;
    double res = INFINITY;
    for (int it = 0; it < NS_MAX_ITERS && res > 1e-6; it++) {
        if (gr_head_sgemm('N', 'N', d, d, d, Z, d, Y, d, 0.0f, T, d)) return gr_head_sgemm_err();
        res = 0; /* ||Z Y - I||_F / sqrt(d): 0 at the fixed point */
        for (int64_t k = 0; k < d * d; k++) {
            double e = T[k] - (k % (d + 1) == 0);
            res += e * e;
            T[k] = (float)(-0.5 * T[k] + (k % (d + 1) == 0 ? 1.5 : 0));
        }
        res = sqrt(res / (double)d);
        if (gr_head_sgemm('N', 'N', d, d, d, Y, d, T, d, 0.0f, P, d)) return gr_head_sgemm_err();
        memcpy(Y, P, (size_t)(d * d) * sizeof *Y);
        if (gr_head_sgemm('N', 'N', d, d, d, T, d, Z, d, 0.0f, P, d)) return gr_head_sgemm_err();
        memcpy(Z, P, (size_t)(d * d) * sizeof *Z);
    }
    if (!(res <= 1e-3))
        return gr_err(GRAFT_E_NUMERIC,
                      "coral: the matrix square root did not converge "
                      "(residual %.3g)",
                      res);
    float up = (float)sqrt(c), down = (float)(1 / sqrt(c));
    for (int64_t k = 0; k < d * d; k++) Y[k] *= up, Z[k] *= down;
    return GRAFT_OK;
}

/* A (d, d) = Cs^(-1/2) Ct^(1/2), from the two covariances; the scratch holds 4 d x d. */
static int coral_map(const float *Cs, const float *Ct, int64_t d, float *A, float *w)
{
    float *Y = w, *Z = w + d * d, *T = w + 2 * d * d, *S = w + 3 * d * d;
    int st = sqrt_pair(Cs, d, Y, Z, T, A); /* Z = Cs^(-1/2) */
    if (!st) memcpy(S, Z, (size_t)(d * d) * sizeof *S);
    if (!st) st = sqrt_pair(Ct, d, Y, Z, T, A); /* Y = Ct^(1/2) */
    if (!st && gr_head_sgemm('N', 'N', d, d, d, S, d, Y, d, 0.0f, A, d)) st = gr_head_sgemm_err();
    return st;
}

int gr_coral_align(const float *Xs, int64_t ns, const float *Xt, int64_t nt, int64_t d, float *out)
{
    if (ns < 2 || nt < 2 || d < 1)
        return gr_err(GRAFT_E_ARG,
                      "coral needs 2 or more rows of each domain (got %lld source, "
                      "%lld target) and features",
                      (long long)ns, (long long)nt);
    if (d > 8192)
        return gr_err(GRAFT_E_LIMIT, "coral: %lld features; at most 8192 (seven d x d matrices)",
                      (long long)d);
    size_t dd = (size_t)(d * d), big = (size_t)(ns > nt ? ns : nt) * (size_t)d;
    double *stats = malloc(4 * (size_t)d * sizeof *stats);
    float *Cs = malloc(dd * sizeof *Cs), *Ct = malloc(dd * sizeof *Ct), *A = malloc(dd * sizeof *A),
          *w = malloc(4 * dd * sizeof *w), *Z = malloc(big * sizeof *Z);
    int st = stats && Cs && Ct && A && w && Z ? GRAFT_OK
                                              : gr_err(GRAFT_E_NOMEM,
                                                       "coral: out of memory "
                                                       "for %lld features",
                                                       (long long)d);
    double *ms = stats, *ss = stats + d, *mt = stats + 2 * d, *sdt = stats + 3 * d;
    if (!st) {
        moments(Xt, nt, d, mt, sdt);
        moments(Xs, ns, d, ms, ss);
        st = standardised_cov(Xt, nt, d, mt, sdt, Z, Ct);
    }
    if (!st) st = standardised_cov(Xs, ns, d, ms, ss, Z, Cs); /* Z: the standardised source */
    if (!st) st = coral_map(Cs, Ct, d, A, w);
    if (!st && gr_head_sgemm('N', 'N', ns, d, d, Z, d, A, d, 0.0f, out, d))
        st = gr_head_sgemm_err();
    for (int64_t i = 0; !st && i < ns; i++)
        for (int64_t j = 0; j < d; j++) out[i * d + j] = (float)(out[i * d + j] * sdt[j] + mt[j]);
    free(stats), free(Cs), free(Ct), free(A), free(w), free(Z);
    return st;
}
