/* kw_train.c — training a keyword head: examples (windows of embeddings or mel frames) from the
 * clip sets, openWakeWord's head shape, balanced batches with hard-negative mining and early
 * stopping, the exported head, and gr_kw_train, which runs the recipe (kw_recipe.h). */
#include "kw_recipe.h"

#include "train/train.h"

#include <math.h>
#include <string.h>

/* ---- examples: (set, item, window) with the window's first embedding ---- */

int64_t gr_kw_item_windows(const gr_kw_clipset *s, int i)
{
    int64_t ne = s->emb_off[i + 1] - s->emb_off[i];
    return ne >= GR_KW_HEAD_WINDOW ? ne - GR_KW_HEAD_WINDOW + 1 : 0;
}

double gr_kw_window_end(int w) { return gr_kw_embedding_end(w + GR_KW_HEAD_WINDOW - 1); }

static int input_size(int mel)
{
    return mel ? GR_KW_MEL_WINDOW * GR_KW_MELS : GR_KW_HEAD_WINDOW * GR_KW_DIM;
}

static void fill_input(const gr_kw_example *e, int mel, float *dst)
{
    const gr_kw_clipset *s = e->s;
    if (mel)
        memcpy(dst,
               s->mel +
                   (s->mel_off[e->item] + (int64_t)GR_KW_FRAMES_PER_HOP * e->win + 4) * GR_KW_MELS,
               (size_t)GR_KW_MEL_WINDOW * GR_KW_MELS * sizeof(float));
    else
        memcpy(dst, s->emb + (s->emb_off[e->item] + e->win) * GR_KW_DIM,
               (size_t)GR_KW_HEAD_WINDOW * GR_KW_DIM * sizeof(float));
}

static int push(gr_kw_exlist *l, const gr_kw_clipset *s, int item, int win)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        gr_kw_example *p = realloc(l->e, (size_t)cap * sizeof *p);
        if (!p) return gr_err(GRAFT_E_NOMEM, "out of memory");
        l->e = p, l->cap = cap;
    }
    l->e[l->n++] = (gr_kw_example){ s, item, win };
    return GRAFT_OK;
}

/* Positive windows end 0-0.4 s after the keyword; every window of a negative item is negative.
 * Every 10th pair of items goes to validation (both kinds of keyword item), or the last pair of
 * a set of fewer than 20. */
static int collect(const gr_kw_clipset *s, gr_kw_exlist *pos, gr_kw_exlist *neg, gr_kw_exlist *vpos,
                   gr_kw_exlist *vneg)
{
    int st = GRAFT_OK;
    for (int i = 0; i < s->nitem && !st; i++) {
        /* pairs, since keyword items alternate alone / going on into a sentence; the last pair
         * when there are fewer than ten */
        int npairs = (s->nitem + 1) / 2, pair = i / 2;
        int val = npairs < 10 ? pair == npairs - 1 : pair % 10 == 9;
        for (int w = 0; w < gr_kw_item_windows(s, i) && !st; w++) {
            if (s->end[i] >= 0) {
                double d = gr_kw_window_end(w) - s->end[i];
                if (d >= 0 && d <= 0.4) st = push(val ? vpos : pos, s, i, w);
            } else st = push(val ? vneg : neg, s, i, w);
        }
    }
    return st;
}

/* ---- the head ---- */

/* Flatten -> Gemm(H) -> Relu -> Gemm(H) -> Relu -> Gemm(1): logits of (batch, window, width).
 * torch's Linear layers (graph/build.c: its init, weight then bias from one stream); each layer's
 * output keeps the name it always had (fc1, fc2, logit). */
static int build_head(int mel, int hidden, gr_rng *r, gr_graph **out)
{
    gr_graph *g;
    int st = gr_graph_new(13, &g);
    if (st) return st;
    int rows = mel ? GR_KW_MEL_WINDOW : GR_KW_HEAD_WINDOW, width = mel ? GR_KW_MELS : GR_KW_DIM,
        d = rows * width;
    gr_shape in_shape = gr_shape_make(3, (int64_t[]){ -1, rows, width });
    gr_gb b = { .g = g, .prefix = "", .act_dtype = GR_F32, .rng = r };
    int x, f, h1, r1, h2, r2, y;
    gr_attr axis = { .name = "axis", .type = GR_AT_INT, .i = 1 };
    if (!st) st = gr_graph_add_input(g, mel ? "mel" : "embeddings", GR_F32, &in_shape, &x);
    if (!st) st = gr_gb_op(&b, "flat", "flat", "Flatten", &x, 1, &axis, 1, &f);
    if (!st) st = gr_gb_value(&b, "fc1", GR_F32, NULL, NULL, &h1);
    if (!st) st = gr_gb_linear(&b, "fc1", f, hidden, d, NULL, NULL, &h1);
    if (!st) st = gr_gb_op(&b, "relu1", "relu1", "Relu", &h1, 1, NULL, 0, &r1);
    if (!st) st = gr_gb_value(&b, "fc2", GR_F32, NULL, NULL, &h2);
    if (!st) st = gr_gb_linear(&b, "fc2", r1, hidden, hidden, NULL, NULL, &h2);
    if (!st) st = gr_gb_op(&b, "relu2", "relu2", "Relu", &h2, 1, NULL, 0, &r2);
    if (!st) st = gr_gb_value(&b, "logit", GR_F32, NULL, NULL, &y);
    if (!st) st = gr_gb_linear(&b, "fc3", r2, 1, hidden, NULL, NULL, &y);
    if (!st) st = gr_graph_add_output(g, y);
    if (st) {
        gr_graph_free(g);
        return st;
    }
    *out = g;
    return GRAFT_OK;
}

int gr_kw_score_examples(gr_graph *g, gr_dnnl *dnnl, int mel, const gr_kw_example *ex, int64_t n,
                         float *out)
{
    enum { B = 256 };
    int d = input_size(mel);
    float *in = calloc((size_t)B * d, sizeof(float));
    if (!in) return gr_err(GRAFT_E_NOMEM, "out of memory");
    gr_tensor x = { .dtype = GR_F32,
                    .shape =
                        gr_shape_make(3, (int64_t[]){ B, mel ? GR_KW_MEL_WINDOW : GR_KW_HEAD_WINDOW,
                                                      mel ? GR_KW_MELS : GR_KW_DIM }),
                    .data = in };
    gr_plan *p = NULL;
    gr_plan_opts po = { .dnnl = dnnl };
    int st = gr_plan_build(g, &x, &po, &p);
    for (int64_t i = 0; i < n && !st; i += B) {
        int b = (int)(n - i < B ? n - i : B);
        for (int k = 0; k < b; k++) fill_input(&ex[i + k], mel, in + (size_t)k * d);
        gr_plan_run(p, &x);
        memcpy(out + i, gr_plan_output(p, 0)->data, (size_t)b * sizeof(float));
    }
    gr_plan_free(p);
    free(in);
    return st;
}

/* Mean binary cross-entropy of logits against one label. */
static double bce(const float *z, int64_t n, int label)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += label ? log1p(exp(-fabs(z[i]))) + fmax(-z[i], 0)
                   : log1p(exp(-fabs(z[i]))) + fmax(z[i], 0);
    return n ? s / n : 0;
}

int gr_kw_cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* ---- training ---- */

typedef struct train_state {
    const gr_kw_train_opts *o;
    gr_graph *g;
    gr_dnnl *dnnl;
    int mel;
    gr_kw_exlist pos, neg, vpos, vneg;
} train_state;

enum { BATCH = 256, HALF = BATCH / 2 }; /* balanced batches: half positives */

/* What the epochs share: a batch and its targets, the logits of the validation examples and of
 * the training negatives, and the hardest negatives (indices into ts->neg). */
typedef struct epoch_bufs {
    float *in, target[BATCH];
    float *zneg, *zv;
    int64_t *hard, nhard;
    int hard_n;    /* negatives per batch drawn from the hard ones */
    int64_t steps; /* batches per epoch */
} epoch_bufs;

static gr_tensor batch_tensor(const train_state *ts, float *in)
{
    return (gr_tensor){ .dtype = GR_F32,
                        .shape = gr_shape_make(
                            3, (int64_t[]){ BATCH, ts->mel ? GR_KW_MEL_WINDOW : GR_KW_HEAD_WINDOW,
                                            ts->mel ? GR_KW_MELS : GR_KW_DIM }),
                        .data = in };
}

/* One epoch: eb->steps balanced batches (drawn with replacement); *mean_loss gets their mean. */
static int train_epoch(train_state *ts, gr_trainer *t, gr_rng *r, epoch_bufs *eb, double *mean_loss)
{
    int d = input_size(ts->mel), st = GRAFT_OK;
    double sum = 0;
    for (int64_t s = 0; s < eb->steps && !st; s++) {
        for (int k = 0; k < BATCH; k++) {
            const gr_kw_example *e;
            if (k < HALF) e = &ts->pos.e[gr_rng_below(r, (uint64_t)ts->pos.n)];
            else if (eb->nhard && k >= BATCH - eb->hard_n)
                e = &ts->neg.e[eb->hard[gr_rng_below(r, (uint64_t)eb->nhard)]];
            else e = &ts->neg.e[gr_rng_below(r, (uint64_t)ts->neg.n)];
            fill_input(e, ts->mel, eb->in + (size_t)k * d);
            eb->target[k] = k < HALF ? 1.0f : 0.0f;
        }
        gr_tensor x = batch_tensor(ts, eb->in);
        double loss;
        st = gr_trainer_step(t, &x, eb->target, &loss);
        sum += loss;
    }
    *mean_loss = sum / eb->steps;
    return st;
}

/* Validation: the balanced loss (*vl); mining: the hardest 10 % of the training negatives. */
static int validate_and_mine(train_state *ts, epoch_bufs *eb, double *vl)
{
    int st = gr_kw_score_examples(ts->g, ts->dnnl, ts->mel, ts->vpos.e, ts->vpos.n, eb->zv);
    if (!st)
        st = gr_kw_score_examples(ts->g, ts->dnnl, ts->mel, ts->vneg.e, ts->vneg.n,
                                  eb->zv + ts->vpos.n);
    if (!st) st = gr_kw_score_examples(ts->g, ts->dnnl, ts->mel, ts->neg.e, ts->neg.n, eb->zneg);
    if (st) return st;
    *vl = 0.5 * bce(eb->zv, ts->vpos.n, 1) + 0.5 * bce(eb->zv + ts->vpos.n, ts->vneg.n, 0);
    float *sorted = malloc((size_t)(ts->neg.n + 1) * sizeof(float));
    if (!sorted) return gr_err(GRAFT_E_NOMEM, "out of memory");
    memcpy(sorted, eb->zneg, (size_t)ts->neg.n * sizeof(float));
    qsort(sorted, (size_t)ts->neg.n, sizeof(float), gr_kw_cmp_desc);
    float cut = sorted[ts->neg.n / 10];
    free(sorted);
    eb->nhard = 0;
    for (int64_t i = 0; i < ts->neg.n; i++)
        if (eb->zneg[i] >= cut) eb->hard[eb->nhard++] = i;
    return GRAFT_OK;
}

/* AdamW on the head's weights, cosine schedule over the epochs with one epoch of warmup. */
static int new_trainer(train_state *ts, unsigned char *trainable, int64_t steps, int epochs,
                       gr_trainer **t)
{
    const gr_kw_train_opts *o = ts->o;
    gr_graph_params(ts->g, trainable);
    gr_trainer_cfg cfg = { .loss = GR_LOSS_BCE,
                           .seed = o->seed,
                           .opt = { .kind = GR_ADAMW,
                                    .lr = o->lr > 0 ? o->lr : 1e-4,
                                    .weight_decay = 1e-2,
                                    .sched = GR_SCHED_COSINE,
                                    .warmup = steps,
                                    .total = steps * epochs } };
    return gr_trainer_new(ts->g, trainable, &cfg, t);
}

/* Epochs until the validation loss has not improved for `patience` of them; the best epoch's
 * weights are kept. */
static int run_epochs(train_state *ts, gr_trainer *t, epoch_bufs *eb, int epochs, float *best,
                      gr_kw_train_result *res)
{
    const gr_kw_train_opts *o = ts->o;
    gr_rng r;
    gr_rng_seed(&r, o->seed ^ 0x6b6579776f7264ULL);
    double best_loss = INFINITY;
    int since = 0, patience = o->patience > 0 ? o->patience : 8, st = GRAFT_OK;
    for (int ep = 0; ep < epochs && !st; ep++) {
        double loss, vl;
        st = train_epoch(ts, t, &r, eb, &loss);
        if (!st) st = validate_and_mine(ts, eb, &vl);
        if (st) break;
        gr_progress_note(&o->progress, GRAFT_EVENT_NOTE, "train",
                         "epoch %2d: train loss %.4f  validation loss %.4f%s", ep + 1, loss, vl,
                         vl < best_loss ? "  (best)" : "");
        gr_progress_step(&o->progress, "train", ep + 1, epochs);
        res->epochs = ep + 1;
        if (vl < best_loss) {
            best_loss = vl, since = 0, res->best_epoch = ep + 1;
            memcpy(best, t->w, (size_t)t->total * sizeof(float));
        } else if (++since >= patience) break;
    }
    res->val_loss = best_loss;
    return st;
}

static int train_head(train_state *ts, gr_kw_train_result *res)
{
    const gr_kw_train_opts *o = ts->o;
    int d = input_size(ts->mel);
    /* an epoch: as many batches as a pass over the negatives would take (drawn with replacement),
     * at most 400 (validation, hard negatives and early stopping come that often; 3000 negative
     * clips would make it ~800) */
    epoch_bufs eb = { .steps = ts->neg.n / HALF > 400  ? 400
                               : ts->neg.n / HALF > 20 ? ts->neg.n / HALF
                                                       : 20,
                      .hard_n = (int)(HALF * (o->hard_frac >= 0 ? o->hard_frac : 0.25) + 0.5) };
    int epochs = o->epochs > 0 ? o->epochs : 30;
    unsigned char *trainable = calloc((size_t)ts->g->nvalues, 1);
    eb.in = calloc((size_t)BATCH * d, sizeof(float));
    eb.zneg = malloc((size_t)(ts->neg.n + 1) * sizeof(float));
    eb.zv = malloc((size_t)(ts->vpos.n + ts->vneg.n + 1) * sizeof(float));
    eb.hard = malloc((size_t)(ts->neg.n + 1) * sizeof(int64_t));
    float *best = NULL;
    gr_trainer *t = NULL;
    int st = trainable && eb.in && eb.zneg && eb.zv && eb.hard
                 ? GRAFT_OK
                 : gr_err(GRAFT_E_NOMEM, "out of memory");
    if (!st) st = new_trainer(ts, trainable, eb.steps, epochs, &t);
    if (!st && !(best = malloc((size_t)t->total * sizeof(float))))
        st = gr_err(GRAFT_E_NOMEM, "out of memory");
    double t0 = gr_now();
    res->val_loss = INFINITY;
    if (!st) st = run_epochs(ts, t, &eb, epochs, best, res);
    if (!st && res->best_epoch == 0)
        st = gr_err(GRAFT_E_NUMERIC, "the validation loss was never finite: no epoch to keep");
    if (!st && best) memcpy(t->w, best, (size_t)t->total * sizeof(float));
    res->seconds_training = gr_now() - t0;
    gr_trainer_free(t); /* the graph gets its (best) weights back */
    free(best), free(trainable), free(eb.in), free(eb.zneg), free(eb.zv), free(eb.hard);
    return st;
}

/* The trained graph as the deliverable: Sigmoid on the logit, batch 1 as openWakeWord's heads,
 * the keyword, threshold and recipe in the metadata. */
static int export_head(gr_graph *g, const gr_kw_train_opts *o, double thr, const char *path)
{
    int y = g->outputs[0], p;
    gr_gb b = { .g = g, .prefix = "", .act_dtype = GR_F32 };
    int st = gr_gb_op(&b, "score", "score", "Sigmoid", &y, 1, NULL, 0, &p);
    if (st) return st;
    g->outputs[0] = p;
    g->values[g->inputs[0]].t.shape.d[0] = 1;
    g->values[p].t.dtype =
        GR_F32; /* a graph output declares its type: (1, 1) as openWakeWord's heads */
    g->values[p].t.shape = gr_shape_make(2, (int64_t[]){ 1, 1 });
    g->values[p].has_shape = 1;
    char thr_s[32], recipe[512];
    snprintf(thr_s, sizeof thr_s, "%.6f", thr);
    snprintf(recipe, sizeof recipe,
             "%s head (Flatten, Gemm %d, Relu, Gemm %d, Relu, Gemm 1, Sigmoid) on %s; %d synthetic "
             "clips of the keyword, "
             "%d of other phrases (espeak-ng + sox); AdamW lr %g, cosine, balanced batches of 256, "
             "hard negatives; seed %llu",
             o->scratch ? "from scratch:" : "transfer:", o->hidden > 0 ? o->hidden : 128,
             o->hidden > 0 ? o->hidden : 128,
             o->scratch ? "mel frames" : "openWakeWord's speech embeddings",
             o->positives > 0 ? o->positives : 500, o->negatives > 0 ? o->negatives : 3000,
             o->lr > 0 ? o->lr : 1e-4, (unsigned long long)o->seed);
    const char *kv[4][2] = { { "graft.keyword", o->keyword },
                             { "graft.threshold", thr_s },
                             { "graft.recipe", recipe },
                             { "graft.head", "keyword" } };
    for (int k = 0; !st && k < 4; k++) st = gr_graph_add_meta(g, kv[k][0], kv[k][1]);
    if (st) return st;
    return gr_onnx_save(g, path);
}

/* The training sets planned, synthesised and through the front end; the first 3 keyword clips
 * come first, alone: they prove espeak-ng can say the keyword. */
static int training_data(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_frontend *fe,
                         const gr_kw_noise *nb, gr_kw_clipset *pos, gr_kw_clipset *neg,
                         gr_kw_clipset *nearm, int *nuser, gr_kw_train_result *res)
{
    int st = gr_kw_plan_train_sets(o, v, pos, neg, nearm, nuser);
    if (!st) st = gr_kw_synthesise(pos->c, pos->nclip < 3 ? pos->nclip : 3, 3, "keyword", NULL);
    if (!st) st = gr_kw_check_spoken(pos, o->keyword);
    if (!st) st = gr_kw_materialise(o, pos, fe, nb, "keyword clips", res);
    if (!st) st = gr_kw_materialise(o, neg, fe, nb, "negative clips", res);
    if (!st) st = gr_kw_materialise(o, nearm, fe, nb, "near misses", res);
    return st;
}

/* The examples of the three training sets, and enough of each kind to train and validate. */
static int collect_examples(train_state *ts, const gr_kw_clipset *pos, const gr_kw_clipset *neg,
                            const gr_kw_clipset *nearm)
{
    int st = collect(pos, &ts->pos, &ts->neg, &ts->vpos, &ts->vneg);
    if (!st) st = collect(neg, &ts->pos, &ts->neg, &ts->vpos, &ts->vneg);
    if (!st) st = collect(nearm, &ts->pos, &ts->neg, &ts->vpos, &ts->vneg);
    if (!st && (ts->pos.n == 0 || ts->neg.n == 0 || ts->vpos.n == 0 || ts->vneg.n == 0))
        st = gr_err(
            GRAFT_E_ARG,
            "too few examples to train and validate (training %lld positive and %lld negative "
            "windows, validation %lld and %lld): give at least 20 keyword clips and 20 negatives",
            (long long)ts->pos.n, (long long)ts->neg.n, (long long)ts->vpos.n,
            (long long)ts->vneg.n);
    return st;
}

/* The head tested on held-out voices at res->threshold: an embedding head is written first and
 * the test reads the file written; a mel head is tested through its graph, then written. */
static int test_head(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_frontend *fe,
                     const gr_kw_noise *nb, train_state *ts, const char *out_path,
                     gr_kw_train_result *res)
{
    gr_kw_clipset tp = { 0 }, tn = { 0 };
    gr_kw_head *head = NULL;
    double thr = res->threshold;
    int st = o->scratch ? GRAFT_OK : export_head(ts->g, o, thr, out_path);
    if (!st) st = gr_kw_test_sets(o, v, fe, nb, &tp, &tn, res);
    if (!st && !o->scratch) st = gr_kw_head_load(out_path, 64, 0, &head);
    if (!st) st = gr_kw_test_scores(o, &tp, &tn, head, ts->g, ts->dnnl, ts->mel, thr, res);
    if (!st && o->scratch) st = export_head(ts->g, o, thr, out_path);
    gr_kw_clipset_free(&tp), gr_kw_clipset_free(&tn);
    gr_kw_head_free(head);
    return st;
}

int gr_kw_train(const gr_kw_train_opts *o, const char *out_path, gr_kw_train_result *res)
{
    memset(res, 0, sizeof *res);
    gr_kw_voices v;
    gr_kw_frontend *fe = NULL;
    gr_kw_noise nb = { 0 };
    gr_kw_clipset pos = { 0 }, neg = { 0 }, nearm = { 0 };
    train_state ts = { .o = o, .mel = o->scratch };
    int nuser = 0;
    int st = gr_kw_prepare(o, &v, &fe, &nb);
    if (!st) st = training_data(o, &v, fe, &nb, &pos, &neg, &nearm, &nuser, res);
    if (!st) st = collect_examples(&ts, &pos, &neg, &nearm);
    res->train_pos_clips = pos.nitem - nuser, res->user_clips = nuser,
    res->train_neg_clips = neg.nclip + nearm.nclip;
    res->pos_windows = ts.pos.n, res->neg_windows = ts.neg.n;
    gr_rng r;
    gr_rng_seed(&r, o->seed + 17);
    if (!st) st = build_head(o->scratch, o->hidden > 0 ? o->hidden : 128, &r, &ts.g);
    if (!st) st = gr_dnnl_new(&ts.dnnl);
    if (!st) st = train_head(&ts, res);
    if (!st) st = gr_kw_choose_threshold(o, &v, fe, &nb, ts.g, ts.dnnl, ts.mel, res);
    if (!st) st = test_head(o, &v, fe, &nb, &ts, out_path, res);
    free(ts.pos.e), free(ts.neg.e), free(ts.vpos.e), free(ts.vneg.e);
    gr_kw_clipset_free(&pos), gr_kw_clipset_free(&neg), gr_kw_clipset_free(&nearm);
    gr_graph_free(ts.g);
    gr_dnnl_free(ts.dnnl);
    gr_kw_frontend_free(fe);
    gr_kw_free_noise(&nb);
    return st;
}
