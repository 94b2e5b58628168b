/* layer_auto.c — which layer (and pooling) transfers best, measured instead of guessed: every
 * candidate map (gr_layer_candidates) is pooled by its global mean and over a 2x2 grid, the
 * best eight maps also over a 4x4 grid (where their sides are multiples of 4), and each is
 * scored by a 3-fold stratified cross-validation of a logistic-regression probe (standardised
 * features, C = 1) on the training samples: the mean held-out log-loss ranks them, the
 * accuracy is reported beside it. On a detector transferred to clothing the node just before the
 * head can be worse than raw pixels while a map inside the feature pyramid is much better; users
 * should not have to know that. The 4x4 grid only refines the best maps: scoring it for every
 * candidate took 4 minutes instead of 44 s on PP-OCR (its rows are 4x longer) for the same
 * choice, and the maps it helps are those the coarse poolings already rank high (PP-OCR ->
 * Fashion-MNIST, p2o.Add.75: 54.2 / 72.8 / 79.3 / 86.0 % at 1 / 5 / 10 / 50 shots on the 4x4
 * grid, 52.8 / 71.7 / 77.5 / 84.1 on the 2x2 one, 30 draws).
 *
 * Why the log-loss: accuracy on a few hundred held-out rows moves in coarse steps, and the best
 * maps tie within its noise (PP-OCR -> Fashion-MNIST, 100 images per class: the top dozen within
 * 0.3 %), while their few-shot accuracies differ by up to 4 points. The log-loss (a proper
 * scoring rule, continuous) picked the map that is best at 1, 5 and 10 shots there, as did
 * simulated 1- and 5-shot probes; the best-accuracy rule picked one 1-2 points worse. */
#include "transfer.h"

#include <math.h>
#include <string.h>

static int by_score(const void *a, const void *b)
{
    const gr_layer_score *x = a, *y = b;
    if (x->cv_logloss != y->cv_logloss) return x->cv_logloss > y->cv_logloss ? 1 : -1;
    return x->order != y->order ? x->order - y->order : x->pool - y->pool;
}

/* 3-fold stratified CV of a C = 1 probe on rows X: mean held-out log-loss and accuracy. */
static int probe_cv(const gr_features *f, int nclass, double *logloss, double *acc)
{
    enum { FOLDS = 3 };
    int64_t n = f->n;
    int d = f->dim, st;
    int32_t *fold = gr_malloc((size_t)(n + 1) * sizeof *fold),
            *yt = gr_malloc((size_t)(n + 1) * sizeof *yt);
    float *Xt = gr_malloc((size_t)(n * d + 1) * sizeof *Xt),
          *Xv = gr_malloc((size_t)(n * d + 1) * sizeof *Xv);
    float *p = gr_malloc((size_t)(n * nclass + 1) * sizeof *p);
    int64_t *vi = gr_malloc((size_t)(n + 1) * sizeof *vi);
    if (!fold || !yt || !Xt || !Xv || !p || !vi)
        st = gr_err(GRAFT_E_NOMEM, "layer auto: out of memory");
    else st = gr_stratified_folds(f->y, n, FOLDS, fold);
    double ll = 0, right = 0;
    for (int k = 0; !st && k < FOLDS; k++) {
        int64_t nt = 0, nv = 0;
        for (int64_t i = 0; i < n; i++) {
            if (fold[i] == k) {
                memcpy(Xv + nv * d, f->X + i * d, (size_t)d * sizeof *Xv);
                vi[nv++] = i;
            } else {
                memcpy(Xt + nt * d, f->X + i * d, (size_t)d * sizeof *Xt);
                yt[nt++] = f->y[i];
            }
        }
        gr_fit_opts fo;
        gr_fit_defaults(&fo, GR_HEAD_LOGREG);
        fo.C = 1;
        gr_head h;
        if (!nt || !nv)
            st = gr_err(GRAFT_E_ARG, "layer auto: %lld samples are too few for %d folds",
                        (long long)n, FOLDS);
        if (!st) st = gr_head_fit(Xt, yt, nt, d, nclass, &fo, &h);
        if (!st) {
            st = gr_head_predict(&h, Xv, nv, p);
            gr_head_free(&h);
        }
        for (int64_t r = 0; !st && r < nv; r++) {
            const float *pr = p + r * nclass;
            int32_t y = f->y[vi[r]];
            int best = 0;
            for (int c = 1; c < nclass; c++)
                if (pr[c] > pr[best]) best = c;
            right += best == y;
            ll -= log(fmax((double)pr[y], 1e-15)); /* scikit-learn's log_loss clips at 1e-15 */
        }
    }
    *logloss = n ? ll / (double)n : INFINITY;
    *acc = n ? right / (double)n : 0;
    free(fold), free(yt), free(Xt), free(Xv), free(p), free(vi);
    return st;
}

/* Scores names[0..n) with the poolings pools[0..npools) into s[*ns...]; a 4x4 grid only where
 * the map's sides (hw[2k], hw[2k + 1]) are multiples of 4. order[k] is each name's place in the
 * full candidate list. */
static int score_layers(const gr_model *model, const gr_dataset *ds, const int64_t *idx,
                        int64_t nidx, const gr_extract_opts *o, char **names, const int64_t *hw,
                        const int *order, int n, const int *pools, int npools, gr_layer_score *s,
                        int *ns)
{
    gr_features *f = gr_calloc((size_t)n + 1, sizeof *f);
    int *pool = gr_calloc((size_t)n + 1, sizeof *pool),
        *ord = gr_calloc((size_t)n + 1, sizeof *ord);
    char **use = gr_calloc((size_t)n + 1, sizeof *use);
    int st = f && pool && ord && use ? GRAFT_OK : GRAFT_E_NOMEM;
    for (int p = 0; !st && p < npools; p++) {
        int m = 0;
        for (int k = 0; k < n; k++)
            if (gr_pool_fits(hw[2 * k], hw[2 * k + 1], pools[p]))
                use[m] = names[k], ord[m] = order[k], pool[m++] = pools[p];
        if (!m) continue;
        if ((st = gr_extract_layers(model, ds, idx, nidx, (const char *const *)use, pool, m, o, f)))
            break;
        for (int k = 0; !st && k < m; k++) {
            gr_layer_score *e = &s[*ns];
            if ((st = probe_cv(&f[k], ds->nclass, &e->cv_logloss, &e->cv_acc))) break;
            snprintf(e->layer, sizeof e->layer, "%s", use[k]);
            e->pool = pool[k];
            e->dim = f[k].dim;
            e->order = ord[k];
            ++*ns;
        }
        for (int k = 0; k < m; k++) gr_features_free(&f[k]);
    }
    free(f), free(pool), free(ord), free(use);
    return st;
}

/* Adds candidate `at` to the picks (its name, map sides and place). */
static void take(int at, char **all, const int64_t *sides, char **pick, int64_t *hw, int *order,
                 int *np)
{
    pick[*np] = all[at], hw[2 * *np] = sides[2 * at], hw[2 * *np + 1] = sides[2 * at + 1],
    order[*np] = at;
    ++*np;
}

/* Two passes over the candidates (all of them when they are few): max evenly spaced ones, then
 * the unscored ones next to the best three (up to max more): good maps sit in runs of similar
 * maps, and an even thinning can step over the best of a run. Then the 4x4 grid for the best
 * eight. */
int gr_layer_auto(const gr_model *m, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
                  const gr_extract_opts *o, int max_candidates, gr_layer_score **scores, int *count)
{
    if (ds->unlabeled)
        return gr_err(GRAFT_E_ARG,
                      "%s was opened as unlabelled; the layer choice scores a probe on labels",
                      ds->source);
    int max = max_candidates > 0 ? max_candidates : 32;
    char **all = NULL;
    int64_t *sides = NULL, *hw = NULL;
    int na = 0, st = gr_layer_candidates(m, &o->t, 1 << 20, &all, &sides, &na);
    if (st) return st;
    gr_layer_score *s = gr_calloc((size_t)4 * na + 1, sizeof *s);
    char **pick = gr_calloc((size_t)na + 1, sizeof *pick);
    int *order = gr_calloc((size_t)na + 1, sizeof *order), ns = 0, np = 0;
    unsigned char *done = gr_calloc((size_t)na + 1, 1);
    hw = gr_calloc((size_t)(2 * na + 1), sizeof *hw);
    if (!s || !pick || !order || !done || !hw) st = GRAFT_E_NOMEM;
    int first = na < max ? na : max;
    for (int i = 0; !st && i < first; i++) { /* evenly spaced in execution order, the last kept */
        int at = first == 1 ? na - 1 : (int)((int64_t)i * (na - 1) / (first - 1));
        if (done[at]) continue;
        done[at] = 1;
        take(at, all, sides, pick, hw, order, &np);
    }
    static const int coarse[2] = { GR_POOL_MEAN, GR_POOL_GRID2 }, fine[1] = { GR_POOL_GRID4 };
    if (!st) st = score_layers(m, ds, idx, nidx, o, pick, hw, order, np, coarse, 2, s, &ns);
    if (!st && first < na) {
        qsort(s, (size_t)ns, sizeof *s, by_score);
        int step = (na - 1) / (first > 1 ? first - 1 : 1), seen[3] = { -1, -1, -1 }, top = 0;
        np = 0;
        for (int i = 0; i < ns && top < 3; i++) { /* the best three distinct layers */
            int at = s[i].order;
            if (at == seen[0] || at == seen[1]) continue;
            seen[top++] = at;
            for (int j = at - step; j <= at + step && np < max; j++)
                if (j >= 0 && j < na && !done[j])
                    done[j] = 1, take(j, all, sides, pick, hw, order, &np);
        }
        st = score_layers(m, ds, idx, nidx, o, pick, hw, order, np, coarse, 2, s, &ns);
    }
    if (!st) { /* the 4x4 grid for the best eight layers */
        qsort(s, (size_t)ns, sizeof *s, by_score);
        memset(done, 0, (size_t)na);
        np = 0;
        for (int i = 0; i < ns && np < 8; i++) {
            int at = s[i].order;
            if (!done[at]) done[at] = 1, take(at, all, sides, pick, hw, order, &np);
        }
        st = score_layers(m, ds, idx, nidx, o, pick, hw, order, np, fine, 1, s, &ns);
    }
    for (int k = 0; k < na; k++) free(all[k]);
    free(all), free(pick), free(order), free(done), free(sides), free(hw);
    if (st) {
        free(s);
        return st;
    }
    qsort(s, (size_t)ns, sizeof *s, by_score);
    *scores = s;
    *count = ns;
    return GRAFT_OK;
}
