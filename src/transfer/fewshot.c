/* fewshot.c — few-shot classification from feature rows, and its episodic evaluation
 * (see transfer.h for the methods). Episodes are drawn with gr_rng from the seed: classes by a
 * partial Fisher-Yates over the eligible ones, rows likewise inside each class. */
#include "transfer.h"

#include <math.h>
#include <string.h>

static void l2_normalise(double *v, int dim)
{
    double s = 0;
    for (int j = 0; j < dim; j++) s += v[j] * v[j];
    s = s > 0 ? 1 / sqrt(s) : 0;
    for (int j = 0; j < dim; j++) v[j] *= s;
}

/* Row r of X, minus `centre` (NULL: none), L2-normalised, into out (double). */
static void prepared_row(const float *X, int dim, int64_t r, const double *centre, double *out)
{
    for (int j = 0; j < dim; j++) out[j] = (double)X[r * dim + j] - (centre ? centre[j] : 0);
    l2_normalise(out, dim);
}

/* Soft k-means over the prepared queries Q (nq, dim) from prototypes P (way, dim), with the
 * support rows S (way * shot, dim) fixed in their classes. */
static int refine(const double *S, const double *Q, int way, int shot, int nq, int dim, double *P)
{
    double *z = malloc((size_t)nq * way * sizeof *z);
    if (!z) return gr_err(GRAFT_E_NOMEM, "few-shot: out of memory");
    for (int it = 0; it < GR_FS_TD_ITERS; it++) {
        for (int i = 0; i < nq; i++) { /* z[i] = softmax(-beta d(q_i, p_c)) */
            double *zi = z + (int64_t)i * way, lo = INFINITY, sum = 0;
            for (int c = 0; c < way; c++) {
                double d = 0;
                for (int j = 0; j < dim; j++) {
                    double t = Q[(int64_t)i * dim + j] - P[(int64_t)c * dim + j];
                    d += t * t;
                }
                zi[c] = d, lo = d < lo ? d : lo;
            }
            for (int c = 0; c < way; c++) sum += (zi[c] = exp(-GR_FS_TD_BETA * (zi[c] - lo)));
            for (int c = 0; c < way; c++) zi[c] /= sum;
        }
        for (int c = 0; c < way; c++) {
            double *p = P + (int64_t)c * dim, w = shot;
            for (int j = 0; j < dim; j++) p[j] = 0;
            for (int s = 0; s < shot; s++)
                for (int j = 0; j < dim; j++) p[j] += S[((int64_t)c * shot + s) * dim + j];
            for (int i = 0; i < nq; i++) {
                double zc = z[(int64_t)i * way + c];
                w += zc;
                for (int j = 0; j < dim; j++) p[j] += zc * Q[(int64_t)i * dim + j];
            }
            for (int j = 0; j < dim; j++) p[j] /= w;
        }
    }
    free(z);
    return GRAFT_OK;
}

/* Transductive: SimpleShot's prototypes refined with all the prepared queries. */
static int transduce(const float *X, int dim, const int64_t *query, int way, int shot, int nq,
                     const double *centre, const double *S, double *P)
{
    double *Q = malloc((size_t)nq * dim * sizeof *Q);
    if (!Q) return gr_err(GRAFT_E_NOMEM, "few-shot: out of memory");
    for (int i = 0; i < nq; i++) prepared_row(X, dim, query[i], centre, Q + (int64_t)i * dim);
    int st = refine(S, Q, way, shot, nq, dim, P);
    free(Q);
    return st;
}

int gr_fewshot_episode(const float *X, int dim, const int64_t *support, const int64_t *query,
                       int way, int shot, int nquery, int method, int32_t *pred)
{
    int td = method == GR_FS_TRANSDUCTIVE;
    if (td) method = GR_FS_SIMPLESHOT;
    int ns = way * shot;
    double *centre = method == GR_FS_SIMPLESHOT ? calloc((size_t)dim, sizeof(double)) : NULL;
    double *S = malloc((size_t)ns * dim * sizeof(double)),
           *P = calloc((size_t)way * dim, sizeof(double));
    double *q = malloc((size_t)dim * sizeof(double));
    if (!S || !P || !q || (method == GR_FS_SIMPLESHOT && !centre)) {
        free(centre), free(S), free(P), free(q);
        return gr_err(GRAFT_E_NOMEM, "few-shot: out of memory");
    }
    if (centre) {
        for (int i = 0; i < ns; i++)
            for (int j = 0; j < dim; j++) centre[j] += X[support[i] * dim + j];
        for (int j = 0; j < dim; j++) centre[j] /= ns;
    }
    for (int i = 0; i < ns; i++) prepared_row(X, dim, support[i], centre, S + (int64_t)i * dim);
    for (int c = 0; c < way; c++) { /* prototypes: class means of the prepared rows */
        double *p = P + (int64_t)c * dim;
        for (int s = 0; s < shot; s++)
            for (int j = 0; j < dim; j++) p[j] += S[((int64_t)c * shot + s) * dim + j] / shot;
        if (method == GR_FS_IMPRINT) l2_normalise(p, dim);
    }
    int st = td ? transduce(X, dim, query, way, shot, way * nquery, centre, S, P) : GRAFT_OK;
    if (st) {
        free(centre), free(S), free(P), free(q);
        return st;
    }
    for (int i = 0; i < way * nquery; i++) {
        prepared_row(X, dim, query[i], centre, q);
        int best = 0;
        double best_v = -INFINITY;
        if (method == GR_FS_KNN) {
            for (int s = 0; s < ns; s++) {
                double d = 0;
                for (int j = 0; j < dim; j++) d += q[j] * S[(int64_t)s * dim + j];
                if (d > best_v) best_v = d, best = s / shot;
            }
        } else
            for (int c = 0; c < way; c++) {
                const double *p = P + (int64_t)c * dim;
                double v = 0;
                if (method == GR_FS_IMPRINT)
                    for (int j = 0; j < dim; j++) v += q[j] * p[j];
                else /* nearest prototype: the smallest squared distance */
                    for (int j = 0; j < dim; j++) v -= (q[j] - p[j]) * (q[j] - p[j]);
                if (v > best_v) best_v = v, best = c;
            }
        pred[i] = best;
    }
    free(centre), free(S), free(P), free(q);
    return GRAFT_OK;
}

void gr_fewshot_free(gr_fewshot_result *r)
{
    free(r->acc);
    memset(r, 0, sizeof *r);
}

int gr_fewshot_eval(const float *X, const int32_t *y, int64_t n, int dim, int nclass,
                    const gr_fewshot_opts *o, gr_fewshot_result *r)
{
    memset(r, 0, sizeof *r);
    if (o->way < 2 || o->shot < 1 || o->query < 1 || o->episodes < 1)
        return gr_err(GRAFT_E_ARG,
                      "few-shot: way >= 2, shot >= 1, query >= 1 and episodes >= 1 are needed");
    if (o->method < GR_FS_SIMPLESHOT || o->method > GR_FS_TRANSDUCTIVE)
        return gr_err(GRAFT_E_ARG, "few-shot: unknown method");
    /* rows of each class */
    int64_t *count = calloc((size_t)nclass + 1, sizeof *count),
            *start = calloc((size_t)nclass + 2, sizeof *start);
    int64_t *rows = malloc((size_t)(n + 1) * sizeof *rows);
    int *eligible = malloc((size_t)(nclass + 1) * sizeof *eligible);
    int64_t *sup = malloc((size_t)o->way * o->shot * sizeof *sup),
            *qry = malloc((size_t)o->way * o->query * sizeof *qry);
    int32_t *pred = malloc((size_t)o->way * o->query * sizeof *pred);
    int64_t *pick = malloc((size_t)(n + 1) * sizeof *pick);
    r->acc = malloc((size_t)o->episodes * sizeof *r->acc);
    int st = count && start && rows && eligible && sup && qry && pred && pick && r->acc
                 ? GRAFT_OK
                 : GRAFT_E_NOMEM;
    int ne = 0;
    for (int64_t i = 0; !st && i < n; i++)
        if (y[i] >= 0 && y[i] < nclass) count[y[i]]++;
    for (int c = 0; !st && c < nclass; c++) start[c + 1] = start[c] + count[c];
    int64_t *fill = st ? NULL : calloc((size_t)nclass + 1, sizeof *fill);
    if (!st && !fill) st = GRAFT_E_NOMEM;
    for (int64_t i = 0; !st && i < n; i++)
        if (y[i] >= 0 && y[i] < nclass) rows[start[y[i]] + fill[y[i]]++] = i;
    free(fill);
    for (int c = 0; !st && c < nclass; c++)
        if (count[c] >= o->shot + o->query) eligible[ne++] = c;
    if (!st && ne < o->way)
        st = gr_err(
            GRAFT_E_ARG,
            "few-shot: only %d classes have %d examples (shot %d + query %d); %d-way needs %d", ne,
            o->shot + o->query, o->shot, o->query, o->way, o->way);
    gr_rng rng;
    gr_rng_seed(&rng, o->seed);
    double sum = 0, sum2 = 0;
    for (int e = 0; !st && e < o->episodes; e++) {
        for (int c = 0; c < o->way; c++) { /* partial Fisher-Yates over the eligible classes */
            int j = c + (int)gr_rng_below(&rng, (uint64_t)(ne - c)), t = eligible[c];
            eligible[c] = eligible[j], eligible[j] = t;
        }
        for (int c = 0; c < o->way; c++) {
            int cls = eligible[c];
            int64_t m = count[cls], need = o->shot + o->query;
            for (int64_t i = 0; i < m; i++) pick[i] = rows[start[cls] + i];
            for (int64_t i = 0; i < need; i++) {
                int64_t j = i + (int64_t)gr_rng_below(&rng, (uint64_t)(m - i)), t = pick[i];
                pick[i] = pick[j], pick[j] = t;
            }
            for (int s = 0; s < o->shot; s++) sup[c * o->shot + s] = pick[s];
            for (int q = 0; q < o->query; q++) qry[c * o->query + q] = pick[o->shot + q];
        }
        st = gr_fewshot_episode(X, dim, sup, qry, o->way, o->shot, o->query, o->method, pred);
        int right = 0;
        for (int i = 0; !st && i < o->way * o->query; i++) right += pred[i] == i / o->query;
        double a = (double)right / (o->way * o->query);
        r->acc[e] = a;
        sum += a, sum2 += a * a;
    }
    if (!st) {
        r->episodes = o->episodes;
        r->mean = sum / o->episodes;
        double var = o->episodes > 1 ? (sum2 - sum * sum / o->episodes) / (o->episodes - 1) : 0;
        r->ci95 = 1.96 * sqrt(var > 0 ? var : 0) / sqrt((double)o->episodes);
    }
    free(count), free(start), free(rows), free(eligible), free(sup), free(qry), free(pred),
        free(pick);
    if (st) gr_fewshot_free(r);
    return st;
}
