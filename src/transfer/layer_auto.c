/* layer_auto.c — which layer (and pooling) transfers best, measured instead of guessed: every
 * candidate map (gr_layer_candidates) is pooled by its global mean and over a 2x2 grid, and
 * scored by the cross-validated accuracy of a logistic-regression probe on the training
 * samples (standardised features; 3 folds, C over logspace(-4, 4) in 5 steps: a ranking, not a
 * final fit). On a detector transferred to clothing the node just before the head can be worse
 * than raw pixels while a map inside the feature pyramid is much better; users should not have
 * to know that. */
#include "transfer.h"

#include <string.h>

static int by_score(const void *a, const void *b)
{
    const gr_layer_score *x = a, *y = b;
    if (x->cv_acc != y->cv_acc) return x->cv_acc < y->cv_acc ? 1 : -1;
    return x->order != y->order ? x->order - y->order : x->pool - y->pool;
}

int gr_layer_auto(const char *model_path, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
                  const gr_extract_opts *o, int max_candidates, gr_layer_score **scores, int *count)
{
    char **names = NULL;
    int n = 0, st = gr_layer_candidates(model_path, &o->t, max_candidates > 0 ? max_candidates : 32, &names, &n);
    if (st) return st;
    gr_layer_score *s = gr_calloc((size_t)2 * n + 1, sizeof *s);
    gr_features *f = gr_calloc((size_t)n + 1, sizeof *f);
    int *pool = gr_calloc((size_t)n + 1, sizeof *pool);
    if (!s || !f || !pool) st = GRAFT_E_NOMEM;
    int ns = 0;
    for (int p = 0; !st && p < 2; p++) {
        for (int k = 0; k < n; k++) pool[k] = p ? GR_POOL_GRID2 : GR_POOL_MEAN;
        if ((st = gr_extract_layers(model_path, ds, idx, nidx, (const char *const *)names, pool, n, o, f))) break;
        for (int k = 0; !st && k < n; k++) {
            gr_fit_opts fo;
            gr_fit_defaults(&fo, GR_HEAD_LOGREG);
            fo.C = 0;
            fo.ncs = 5;
            fo.folds = 3;
            gr_head h;
            st = gr_head_fit(f[k].X, f[k].y, f[k].n, f[k].dim, ds->nclass, &fo, &h);
            if (!st) {
                gr_layer_score *e = &s[ns++];
                snprintf(e->layer, sizeof e->layer, "%s", names[k]);
                e->pool = pool[k];
                e->dim = f[k].dim;
                e->cv_acc = h.cv_acc;
                e->order = k;
                gr_head_free(&h);
            }
        }
        for (int k = 0; k < n; k++) gr_features_free(&f[k]);
    }
    for (int k = 0; k < n; k++) free(names[k]);
    free(names);
    free(f);
    free(pool);
    if (st) {
        free(s);
        return st;
    }
    qsort(s, (size_t)ns, sizeof *s, by_score);
    *scores = s;
    *count = ns;
    return GRAFT_OK;
}
