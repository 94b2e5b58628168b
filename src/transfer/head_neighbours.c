/* head_neighbours.c — heads that keep examples or their means: cosine kNN (the training rows
 * at unit length; a query's k most similar rows vote with weight max(similarity, 0)) and nearest
 * class mean (logits -|x - mean|^2, or with L2 rows the cosine to the mean). */
#include "transfer/heads.h"

#include <math.h>
#include <string.h>

void gr_head_unit_rows(float *X, int64_t n, int dim)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < dim; j++) s += (double)X[i * dim + j] * X[i * dim + j];
        if (s > 0)
            for (int j = 0; j < dim; j++) X[i * dim + j] = (float)(X[i * dim + j] / sqrt(s));
    }
}

int gr_knn_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o, gr_head *h)
{
    h->X = gr_malloc((size_t)n * h->dim * sizeof(float));
    h->y = gr_malloc((size_t)n * sizeof(int32_t));
    if (!h->X || !h->y) return GRAFT_E_NOMEM;
    memcpy(h->X, X, (size_t)n * h->dim * sizeof(float));
    memcpy(h->y, y, (size_t)n * sizeof(int32_t));
    gr_head_unit_rows(h->X, n, h->dim);
    h->n = n;
    h->k = o->k > 0 ? o->k : 10;
    return GRAFT_OK;
}

/* Similarities of the unit rows Q to every stored row, the k best, their votes. */
int gr_knn_predict(const gr_head *h, float *Q, int64_t m, float *prob, float *S, int64_t *idx,
                   float *sim, double *votes)
{
    int K = h->nclass, k = h->k < h->n ? h->k : (int)h->n;
    gr_head_unit_rows(Q, m, h->dim);
    if (gr_head_sgemm('N', 'T', m, h->n, h->dim, Q, h->dim, h->X, h->dim, 0.0f, S, h->n))
        return gr_head_sgemm_err();
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

int gr_ncm_fit(const float *X, const int32_t *y, int64_t n, gr_head *h)
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
    if (h->norm == GR_FEAT_L2) gr_head_unit_rows(h->W, K, dim);
    free(sum), free(cnt);
    return GRAFT_OK;
}

void gr_ncm_sqnorms(const gr_head *h, double *mm)
{
    for (int c = 0; c < h->nclass; c++) {
        const float *a = h->W + (int64_t)c * h->dim;
        double s = 0;
        for (int j = 0; j < h->dim; j++) s += (double)a[j] * a[j];
        mm[c] = s;
    }
}

int gr_ncm_logits(const gr_head *h, const float *X, int64_t m, const double *mm, float *Z)
{
    int K = h->nclass;
    if (gr_head_sgemm('N', 'T', m, K, h->dim, X, h->dim, h->W, h->dim, 0.0f, Z, K))
        return gr_head_sgemm_err();
    if (h->norm != GR_FEAT_L2)
        /* -|x - m|^2 = 2 x.m - |m|^2 - |x|^2; the last term is the same for every class */
        for (int64_t i = 0; i < m; i++)
            for (int c = 0; c < K; c++) Z[i * K + c] = (float)(2.0 * Z[i * K + c] - mm[c]);
    return GRAFT_OK;
}
