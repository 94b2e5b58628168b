/* kw_eval.c — detections, thresholds and the test: scores of every window, the lowest threshold
 * within a rate of false accepts, recall near the keyword, and gr_kw_eval on held-out voices. */
#include "kw_recipe.h"

#include <math.h>
#include <string.h>

/* ---- detections, thresholds, metrics ---- */

/* Detections in a stream of scores (one per 80 ms): a score >= thr at least 1 s after the last. */
static int64_t detections(const float *p, int64_t n, double thr)
{
    int64_t k = 0, last = -1000;
    for (int64_t i = 0; i < n; i++)
        if (p[i] >= thr && (i - last) * GR_KW_HOP >= GR_KW_RATE) k++, last = i;
    return k;
}
void gr_kw_scores_free(gr_kw_scores *s)
{
    free(s->p), free(s->off);
    memset(s, 0, sizeof *s);
}

static int64_t total_detections(const gr_kw_scores *s, double thr)
{
    int64_t k = 0;
    for (int i = 0; i < s->n; i++)
        k += detections(s->p + s->off[i], s->off[i + 1] - s->off[i], thr);
    return k;
}

/* The lowest threshold (just above one of the scores) at which the negatives give at most
 * `allowed` detections; detections only grow as the threshold falls. *met = 0 when even the cap
 * of 0.9999 gives more. */
static double threshold_for(const gr_kw_scores *neg, int64_t allowed, int *met)
{
    int64_t n = neg->off[neg->n];
    *met = 1;
    float *v = malloc((size_t)(n + 1) * sizeof(float));
    if (!v || n == 0) {
        free(v);
        return 0.5;
    }
    memcpy(v, neg->p, (size_t)n * sizeof(float));
    qsort(v, (size_t)n, sizeof(float), gr_kw_cmp_desc);
    /* candidate i: just above v[i] (descending), so a larger i is a lower threshold; i = 0
     * gives no detection at all. Find the largest i that stays within `allowed`. */
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (total_detections(neg, nextafterf(v[mid], 2.0f)) <= allowed) lo = mid;
        else hi = mid - 1;
    }
    double thr = nextafterf(v[lo], 2.0f);
    free(v);
    if (thr > 0.9999) {
        *met = total_detections(neg, 0.9999) <= allowed;
        thr = 0.9999;
    }
    return thr;
}

/* The share of positive items with a detection from 0.3 s before the keyword's end (the end is
 * measured on the clean clip, reverb tail included) to 1 s after it; a detection elsewhere in
 * the recording (the lead-in, the sentence after) is not a hit. */
static double recall_at(const gr_kw_scores *pos, const float *end, double thr)
{
    int hit = 0;
    for (int i = 0; i < pos->n; i++)
        for (int64_t k = pos->off[i]; k < pos->off[i + 1]; k++) {
            double t = gr_kw_window_end((int)(k - pos->off[i]));
            if (pos->p[k] >= thr && t >= end[i] - 0.3 && t <= end[i] + 1.0) {
                hit++;
                break;
            }
        }
    return pos->n ? (double)hit / pos->n : 0;
}

static double sigmoid(double z) { return 1 / (1 + exp(-z)); }

int gr_kw_score_set(const gr_kw_clipset *s, gr_kw_head *head, gr_graph *g, gr_dnnl *dnnl, int mel,
                    gr_kw_scores *out)
{
    memset(out, 0, sizeof *out);
    out->n = s->nitem;
    out->seconds = s->seconds;
    out->off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
    if (!out->off) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = 0; i < s->nitem; i++) out->off[i + 1] = out->off[i] + gr_kw_item_windows(s, i);
    out->p = malloc((size_t)(out->off[s->nitem] + 1) * sizeof(float));
    if (!out->p) return gr_err(GRAFT_E_NOMEM, "out of memory");
    if (head) {
        for (int i = 0; i < s->nitem; i++)
            if (gr_kw_item_windows(s, i) > 0)
                gr_kw_head_score(head, s->emb + s->emb_off[i] * GR_KW_DIM,
                                 s->emb_off[i + 1] - s->emb_off[i], out->p + out->off[i]);
        return GRAFT_OK;
    }
    int64_t n = out->off[s->nitem];
    gr_kw_example *ex = malloc((size_t)(n + 1) * sizeof *ex);
    if (!ex) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = 0; i < s->nitem; i++)
        for (int64_t w = 0; w < gr_kw_item_windows(s, i); w++)
            ex[out->off[i] + w] = (gr_kw_example){ s, i, (int)w };
    int st = gr_kw_score_examples(g, dnnl, mel, ex, n, out->p);
    for (int64_t k = 0; !st && k < n; k++) out->p[k] = (float)sigmoid(out->p[k]);
    free(ex);
    return st;
}

void gr_kw_evaluate(const gr_kw_scores *tp, const float *end, const gr_kw_scores *tn, double thr,
                    gr_kw_train_result *res)
{
    res->threshold = thr;
    res->test_pos_clips = tp->n;
    res->test_hours = tn->seconds / 3600;
    res->test_recall = recall_at(tp, end, thr);
    res->test_fa = total_detections(tn, thr);
    res->test_fa_per_hour = res->test_hours > 0 ? res->test_fa / res->test_hours : 0;
    /* 1 per hour of the stream, rounded to the nearest whole false accept */
    int met;
    res->threshold_at_1fa = threshold_for(tn, (int64_t)floor(res->test_hours + 0.5), &met);
    res->recall_at_1fa = recall_at(tp, end, res->threshold_at_1fa);
}

int gr_kw_test_sets(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_frontend *fe,
                    const gr_kw_noise *nb, gr_kw_clipset *tp, gr_kw_clipset *tn,
                    gr_kw_train_result *res)
{
    int st = gr_kw_plan_test_sets(o, v, tp, tn);
    if (!st) st = gr_kw_materialise(o, tp, fe, nb, "test keyword clips (held-out voices)", res);
    if (!st) st = gr_kw_materialise(o, tn, fe, nb, "test negative audio (held-out voices)", res);
    return st;
}

int gr_kw_choose_threshold(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_frontend *fe,
                           const gr_kw_noise *nb, gr_graph *g, gr_dnnl *dnnl, int mel,
                           gr_kw_train_result *res)
{
    /* a quarter of an hour of made-up sentences by training voices (not trained on; names
     * neither trained on nor in the test), at the target rate of false accepts (near misses train
     * the head to reject them, but a threshold set on them would price in adversarial speech a
     * user rarely says) */
    gr_kw_clipset vneg = { 0 };
    gr_kw_scores vn = { 0 };
    int st = gr_kw_plan_phrase_stream(o, v, 0, 0.25, 6, &vneg);
    if (!st) st = gr_kw_materialise(o, &vneg, fe, nb, "validation negative audio", res);
    gr_progress_step(&o->progress, "threshold", 0, 1);
    if (!st) st = gr_kw_score_set(&vneg, NULL, g, dnnl, mel, &vn);
    if (!st) {
        double target = o->target_fa > 0 ? o->target_fa : 0.5;
        int met;
        double t = threshold_for(&vn, (int64_t)floor(target * vn.seconds / 3600 + 1e-9), &met);
        if (!met)
            gr_progress_note(
                &o->progress, GRAFT_EVENT_WARNING, "threshold",
                "warning: even a threshold of 0.9999 gives more than %g false accepts per hour "
                "on the validation speech",
                target);
        res->threshold = t < 0.5 ? 0.5 : t;
        gr_progress_step(&o->progress, "threshold", 1, 1);
    }
    gr_kw_scores_free(&vn);
    gr_kw_clipset_free(&vneg);
    return st;
}

int gr_kw_test_scores(const gr_kw_train_opts *o, const gr_kw_clipset *tp, const gr_kw_clipset *tn,
                      gr_kw_head *head, gr_graph *g, gr_dnnl *dnnl, int mel, double thr,
                      gr_kw_train_result *res)
{
    gr_kw_scores sp = { 0 }, sn = { 0 };
    gr_progress_step(&o->progress, "test", 0, 2);
    int st = gr_kw_score_set(tp, head, g, dnnl, mel, &sp);
    if (!st) gr_progress_step(&o->progress, "test", 1, 2);
    if (!st) st = gr_kw_score_set(tn, head, g, dnnl, mel, &sn);
    if (!st) gr_progress_step(&o->progress, "test", 2, 2);
    if (!st) gr_kw_evaluate(&sp, tp->end, &sn, thr, res);
    gr_kw_scores_free(&sp), gr_kw_scores_free(&sn);
    return st;
}

int gr_kw_eval(const char *head_path, const gr_kw_train_opts *o, gr_kw_train_result *res)
{
    memset(res, 0, sizeof *res);
    gr_kw_voices v;
    gr_kw_frontend *fe = NULL;
    gr_kw_noise nb = { 0 };
    gr_kw_clipset tp = { 0 }, tn = { 0 };
    gr_kw_head *head = NULL;
    int st = gr_kw_prepare(o, &v, &fe, &nb);
    if (!st) st = gr_kw_head_load(head_path, 64, 0, &head);
    if (!st && gr_kw_head_window(head) != GR_KW_HEAD_WINDOW)
        st = gr_err(GRAFT_E_SHAPE, "%s reads %d embeddings; the test data is cut for heads of 16",
                    head_path, gr_kw_head_window(head));
    if (!st) st = gr_kw_test_sets(o, &v, fe, &nb, &tp, &tn, res);
    /* at openWakeWord's default threshold */
    if (!st) st = gr_kw_test_scores(o, &tp, &tn, head, NULL, NULL, 0, 0.5, res);
    gr_kw_clipset_free(&tp), gr_kw_clipset_free(&tn);
    gr_kw_head_free(head);
    gr_kw_frontend_free(fe);
    gr_kw_free_noise(&nb);
    return st;
}
