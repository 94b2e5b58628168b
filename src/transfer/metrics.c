/* metrics.c — evaluation of a classifier from its class probabilities: accuracy, top-k,
 * per-class precision/recall/F1 (scikit-learn's definitions with zero_division=0), the
 * confusion matrix, the expected calibration error with its reliability bins (Guo et al. 2017,
 * "On Calibration of Modern Neural Networks") and per-group accuracy. Depends on core only. */
#include "transfer.h"

#include <math.h>
#include <string.h>

/* Classes ranked above the true class t: higher probability, or equal and a lower id. */
static int rank_of(const float *p, int nclass, int t)
{
    int r = 0;
    for (int c = 0; c < nclass; c++)
        if (p[c] > p[t] || (p[c] == p[t] && c < t)) r++;
    return r;
}

/* Bin b holds (b/B, (b+1)/B]; 0 goes to bin 0. The edges are the doubles b/B, and the guess
 * ceil(c*B) - 1 is corrected against them, since c*B may round across an edge. */
static int conf_bin(double c, int nbins)
{
    if (!(c > 0)) return 0;
    if (c >= 1) return nbins - 1;
    int b = (int)ceil(c * nbins) - 1;
    if (b < 0) b = 0;
    if (b > nbins - 1) b = nbins - 1;
    while (b > 0 && c <= (double)b / nbins) b--;
    while (b < nbins - 1 && c > (double)(b + 1) / nbins) b++;
    return b;
}

static int check_inputs(const float *prob, const int32_t *y, int64_t n, int nclass,
                        const int32_t *group, int ngroup, int nbins)
{
    if (!prob || !y) return gr_err(GRAFT_E_ARG, "metrics: probabilities and labels are required");
    if (n < 1) return gr_err(GRAFT_E_ARG, "metrics: no rows (n = %lld)", (long long)n);
    if (nclass < 2) return gr_err(GRAFT_E_ARG, "metrics: %d classes, need at least 2", nclass);
    if (nbins < 0) return gr_err(GRAFT_E_ARG, "metrics: %d calibration bins", nbins);
    if (group && ngroup < 1)
        return gr_err(GRAFT_E_ARG, "metrics: group ids given but %d groups", ngroup);
    if ((uint64_t)nclass * (uint64_t)nclass > (uint64_t)SIZE_MAX / sizeof(int64_t))
        return gr_err(GRAFT_E_NOMEM, "metrics: %d classes: the confusion matrix is too large",
                      nclass);
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= nclass)
            return gr_err(GRAFT_E_ARG, "metrics: row %lld: label %d is not in [0, %d)",
                          (long long)i, y[i], nclass);
        if (group && (group[i] < 0 || group[i] >= ngroup))
            return gr_err(GRAFT_E_ARG, "metrics: row %lld: group %d is not in [0, %d)",
                          (long long)i, group[i], ngroup);
        for (int c = 0; c < nclass; c++)
            if (!isfinite(prob[i * nclass + c]))
                return gr_err(GRAFT_E_ARG,
                              "metrics: row %lld, class %d: probability %g is not finite",
                              (long long)i, c, (double)prob[i * nclass + c]);
    }
    return GRAFT_OK;
}

static int alloc_all(gr_metrics *m, int nclass, int nbins, int ngroup)
{
    size_t k = (size_t)nclass;
    m->precision = gr_calloc(k, sizeof(double));
    m->recall = gr_calloc(k, sizeof(double));
    m->f1 = gr_calloc(k, sizeof(double));
    m->support = gr_calloc(k, sizeof(int64_t));
    m->confusion = gr_calloc(k * k, sizeof(int64_t));
    m->bin_acc = gr_calloc((size_t)nbins, sizeof(double));
    m->bin_conf = gr_calloc((size_t)nbins, sizeof(double));
    m->bin_count = gr_calloc((size_t)nbins, sizeof(int64_t));
    int ok = m->precision && m->recall && m->f1 && m->support && m->confusion && m->bin_acc &&
             m->bin_conf && m->bin_count;
    if (ngroup > 0) {
        m->group_acc = gr_calloc((size_t)ngroup, sizeof(double));
        m->group_n = gr_calloc((size_t)ngroup, sizeof(int64_t));
        ok = ok && m->group_acc && m->group_n;
    }
    return ok ? GRAFT_OK : gr_err_prefix(GRAFT_E_NOMEM, "metrics");
}

/* precision = tp / predicted, recall = tp / support, F1 = 2PR / (P + R), each 0 when its
 * denominator is 0; computed in scikit-learn's order so the doubles agree. */
static void per_class(gr_metrics *m)
{
    int K = m->nclass;
    double fsum = 0;
    m->nclass_present = 0;
    for (int c = 0; c < K; c++) {
        int64_t tp = m->confusion[(size_t)c * K + c], pred = 0;
        for (int t = 0; t < K; t++) pred += m->confusion[(size_t)t * K + c];
        double p = pred ? (double)tp / (double)pred : 0.0;
        double r = m->support[c] ? (double)tp / (double)m->support[c] : 0.0;
        m->precision[c] = p;
        m->recall[c] = r;
        m->f1[c] = p + r > 0 ? 2.0 * p * r / (p + r) : 0.0;
        if (pred || m->support[c]) {
            m->nclass_present++;
            fsum += m->f1[c];
        }
    }
    m->macro_f1 = fsum / m->nclass_present;
}

static void calibration(gr_metrics *m, const double *sum_conf, const int64_t *sum_correct)
{
    m->ece = 0;
    for (int b = 0; b < m->nbins; b++) {
        int64_t cnt = m->bin_count[b];
        if (!cnt) continue;
        m->bin_acc[b] = (double)sum_correct[b] / (double)cnt;
        m->bin_conf[b] = sum_conf[b] / (double)cnt;
        m->ece += fabs(m->bin_acc[b] - m->bin_conf[b]) * (double)cnt / (double)m->n;
    }
}

static void groups(gr_metrics *m, const int64_t *group_correct)
{
    m->worst_group = -1;
    for (int g = 0; g < m->ngroup; g++) {
        if (!m->group_n[g]) continue;
        m->group_acc[g] = (double)group_correct[g] / (double)m->group_n[g];
        if (m->worst_group < 0 || m->group_acc[g] < m->group_acc[m->worst_group])
            m->worst_group = g;
    }
}

int gr_metrics_compute(const float *prob, const int32_t *y, int64_t n, int nclass,
                       const int32_t *group, int ngroup, int nbins, gr_metrics *m)
{
    memset(m, 0, sizeof *m);
    int st = check_inputs(prob, y, n, nclass, group, ngroup, nbins);
    if (st) return st;
    if (!nbins) nbins = 15;
    if (!group) ngroup = 0;
    gr_metrics r = {
        .n = n, .nclass = nclass, .nbins = nbins, .ngroup = ngroup, .worst_group = -1
    };
    r.topk = nclass < 5 ? nclass : 5;
    double *sum_conf = gr_calloc((size_t)nbins, sizeof(double));
    int64_t *sum_correct = gr_calloc((size_t)nbins, sizeof(int64_t));
    int64_t *group_correct = ngroup ? gr_calloc((size_t)ngroup, sizeof(int64_t)) : NULL;
    st = alloc_all(&r, nclass, nbins, ngroup);
    if (!st && (!sum_conf || !sum_correct || (ngroup && !group_correct)))
        st = gr_err_prefix(GRAFT_E_NOMEM, "metrics");
    if (st) {
        gr_metrics_free(&r);
        free(sum_conf), free(sum_correct), free(group_correct);
        return st;
    }
    int64_t correct = 0, topk_hits = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *p = prob + i * nclass;
        int pred = gr_argmax(p, nclass), t = y[i], ok = pred == t;
        correct += ok;
        topk_hits += rank_of(p, nclass, t) < r.topk;
        r.support[t]++;
        r.confusion[(size_t)t * nclass + pred]++;
        int b = conf_bin((double)p[pred], nbins);
        r.bin_count[b]++;
        sum_conf[b] += (double)p[pred];
        sum_correct[b] += ok;
        if (ngroup) {
            r.group_n[group[i]]++;
            group_correct[group[i]] += ok;
        }
    }
    r.accuracy = (double)correct / (double)n;
    r.top5 = (double)topk_hits / (double)n;
    per_class(&r);
    calibration(&r, sum_conf, sum_correct);
    if (ngroup) groups(&r, group_correct);
    free(sum_conf), free(sum_correct), free(group_correct);
    *m = r;
    return GRAFT_OK;
}

void gr_metrics_free(gr_metrics *m)
{
    if (!m) return;
    free(m->precision), free(m->recall), free(m->f1), free(m->support), free(m->confusion);
    free(m->bin_acc), free(m->bin_conf), free(m->bin_count), free(m->group_acc), free(m->group_n);
    memset(m, 0, sizeof *m);
}

int gr_metrics_top_confusions(const gr_metrics *m, int k, gr_confusion_cell *out)
{
    int K = m->nclass, got = 0;
    if (k <= 0) return 0;
    /* Insertion into a sorted list of at most k cells: k is small (a report shows ~20). */
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) {
            int64_t c = m->confusion[(size_t)t * K + p];
            if (t == p || c <= 0) continue;
            /* visiting order is (true, pred) ascending, so among equal counts earlier wins */
            int at = got;
            while (at > 0 && out[at - 1].count < c) at--;
            if (at >= k) continue;
            int last = got < k ? got : k - 1;
            for (int j = last; j > at; j--) out[j] = out[j - 1];
            out[at] = (gr_confusion_cell){ t, p, c };
            if (got < k) got++;
        }
    return got;
}
