/* finetune.c — the fine-tuning recipe users know from timm and the Keras transfer guide:
 *
 *   1. the model's classifier is replaced by a new linear head for the dataset's classes (or the
 *      model is cut at a layer and the head reads that map, pooled);
 *   2. phase 1 trains the head alone on the frozen trunk (frozen BatchNorms stay in inference
 *      mode);
 *   3. phase 2 unfreezes more (a gr_freeze_select spec: last:N blocks, after:NODE, all, ...) at a
 *      fraction of phase 1's rate, optionally with layer-wise rate decay; BatchNorms of unfrozen
 *      blocks train (batch statistics, running statistics updated), frozen ones are folded;
 *   4. each phase: AdamW or SGD, linear warm-up then cosine, label smoothing, augmentation;
 *      after each epoch the validation split is scored and the weights with the lowest
 *      validation loss are kept; a phase stops after `patience` epochs without a lower loss;
 *      phase 2 starts from phase 1's best and keeps it unless it beats it;
 *   5. the result is one ONNX file: the adapted model + Softmax ("probabilities"), with the class
 *      names, the preprocessing, the recipe and the learning curves in its metadata.
 *
 * Checkpoints: with a folder, the session is written after every epoch (gr_ckpt_write in
 * DIR/phase1 or DIR/phase2; the best weights of the phase in DIR/phaseN/best.safetensors), with
 * the early-stopping state and the curves in the checkpoint's "note"; --resume continues from
 * the newest one and computes what the uninterrupted run computes. */
#define _GNU_SOURCE
#include "finetune_impl.h"

#include "graph/graph.h"
#include "io/io.h"
#include "ops/dnnl_util.h"
#include "train/train.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void gr_ft_defaults(gr_ft_opts *o)
{
    *o = (gr_ft_opts){ .pool = GR_POOL_MEAN,
                       .head_epochs = -1,
                       .epochs = -1,
                       .opt = GR_ADAMW,
                       .lr = -1,
                       .lr_ratio = -1,
                       .layer_decay = -1,
                       .weight_decay = -1,
                       .label_smoothing = -1,
                       .val_frac = -1,
                       .patience = -1,
                       .batch = 32,
                       .workers = 2 };
    gr_transform_default(&o->eval_t);
}

/* ---- the session ---- */

int gr_ft_exists(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0;
}

int gr_ft_make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return GRAFT_OK;
    return gr_err(GRAFT_E_IO, "%s: cannot create the checkpoint folder: %s", path, strerror(errno));
}

/* A stratified split of the given samples: from each class, round(frac * count) samples (at
 * least one, never all) drawn by seed go to validation; classes with one sample stay in
 * training. Both lists keep the input order. */
static int split(ft *f, const int64_t *idx, int64_t n, double frac)
{
    f->tr = malloc((size_t)(n + 1) * sizeof *f->tr);
    f->va = malloc((size_t)(n + 1) * sizeof *f->va);
    unsigned char *to_val = calloc((size_t)n + 1, 1);
    int64_t *mine = malloc((size_t)(n + 1) * sizeof *mine);
    if (!f->tr || !f->va || !to_val || !mine) {
        free(to_val), free(mine);
        return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
    }
    gr_rng rng;
    gr_rng_seed(&rng, f->r.seed ^ 0x5eedf00dull);
    for (int c = 0; frac > 0 && c < f->nclass; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (f->ds->labels[idx[i]] == c) mine[m++] = i;
        int64_t k = (int64_t)llround(frac * (double)m);
        if (k < 1) k = 1;
        if (k > m - 1) k = m - 1;
        for (int64_t j = 0; j < k; j++) { /* a partial Fisher-Yates shuffle */
            int64_t r = j + (int64_t)gr_rng_below(&rng, (uint64_t)(m - j));
            int64_t tmp = mine[j];
            mine[j] = mine[r], mine[r] = tmp;
            to_val[mine[j]] = 1;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (to_val[i]) f->va[f->nva++] = idx[i];
        else f->tr[f->ntr++] = idx[i];
    }
    free(to_val), free(mine);
    return GRAFT_OK;
}

/* Defaults from the size of the task: samples per class s (before the validation split). */
static void resolve(ft *f, int64_t n)
{
    gr_ft_opts *r = &f->r;
    double s = (double)n / f->nclass;
    if (r->val_frac < 0) r->val_frac = s < 20 ? 0 : s < 200 ? 0.2 : 0.1;
    /* Below 20 per class there is no validation split to stop phase 2, and measured it only
     * lost to the probe it starts from (PP-OCR -> Fashion-MNIST at 10 per class: 73.0 % against
     * 76.2 %; the second task of bench-transfer: level), so the default is the probe alone. */
    if (!r->freeze)
        r->freeze = s < 20    ? (r->epochs > 0 || r->steps > 0 ? "last:1" : "head")
                    : s < 200 ? "last:2"
                              : "all";
    /* aligning features needs layers below them that train */
    if (gr_ft_aligns(f) && !f->o->freeze && !strcmp(r->freeze, "head")) r->freeze = "last:2";
    if (r->adapt_weight <= 0) r->adapt_weight = 1;
    if (r->lr <= 0) r->lr = r->opt == GR_SGD ? 0.01 : 1e-3;
    if (r->lr_ratio <= 0) r->lr_ratio = 0.1;
    if (r->layer_decay < 0) r->layer_decay = 0;
    if (r->weight_decay < 0) r->weight_decay = r->opt == GR_SGD ? 1e-4 : 0.01;
    if (r->label_smoothing < 0) r->label_smoothing = 0.1f;
    if (r->patience < 0) r->patience = 5;
    /* The probe (or imprinted) head is fitted on features made with the running statistics;
     * batch statistics change those features under it (measured: train loss 600 where the
     * model's running statistics do not fit the data), and below 20 per class they are noise
     * anyway: keep the running statistics (Keras' advice), unless everything trains from a
     * random head (from scratch) or there is plenty of data (s >= 200, timm's practice). */
    if (r->bn == GR_BN_AUTO)
        r->bn = !strcmp(r->freeze, "all") && (r->head_init == GR_HEAD_INIT_RANDOM || s >= 200)
                    ? GR_BN_TRAIN
                    : GR_BN_FROZEN;
    if (r->batch <= 0) r->batch = 32;
    int64_t ntr = n - (int64_t)llround(r->val_frac * (double)n);
    if (r->batch > ntr) r->batch = (int)(ntr > 0 ? ntr : 1);
    int64_t spe = ntr / r->batch > 0 ? ntr / r->batch : 1; /* steps per epoch (drop_last) */
    /* about 200 updates for the head and 300 for phase 2, 5 to 30 epochs */
    int64_t e1 = (200 + spe - 1) / spe, e2 = (300 + spe - 1) / spe;
    if (r->head_epochs < 0)
        r->head_epochs = r->head_init != GR_HEAD_INIT_RANDOM ? 0
                                                             : (int)(e1 < 5    ? 5
                                                                     : e1 > 30 ? 30
                                                                               : e1);
    if (r->epochs < 0)
        r->epochs = (int)(e2 < 5 ? 5 : e2 > 30 ? 30 : e2); /* --steps: after the split */
    if (!strcmp(r->freeze, "head")) r->epochs = 0;
    if (!r->has_train_t) { /* timm-like: a random crop where there is a crop, and a flip */
        r->train_t = r->eval_t;
        if (r->eval_t.crop) {
            r->train_t.resize = 0, r->train_t.crop = 0, r->train_t.rrc = r->eval_t.crop;
            r->train_t.rrc_scale[0] = 0.25f, r->train_t.rrc_scale[1] = 1;
            r->train_t.rrc_ratio[0] = 3.f / 4, r->train_t.rrc_ratio[1] = 4.f / 3;
        }
        /* a head on a grid tells left from right: a flip swaps its cells (measured: -3 points
         * at 10 per class, -0.7 at 50 on PP-OCR -> Fashion-MNIST), so no flip there */
        r->train_t.hflip = r->layer && gr_pool_side(r->pool) > 1 ? 0 : 0.5f;
    }
}

/* Updates per epoch: the loader drops the last partial batch. */

static void recipe_text(ft *f, const char *model_path)
{
    const gr_ft_opts *r = &f->r;
    char et[256], tt[256], stop[128], cut[600] = "", decay[64] = "", steps[64] = "";
    gr_transform_format(&r->eval_t, et, sizeof et);
    gr_transform_format(&r->train_t, tt, sizeof tt);
    if (!f->nva)
        snprintf(stop, sizeof stop, "none (no validation split: the last weights are kept)");
    else if (r->patience)
        snprintf(stop, sizeof stop, "lowest validation loss kept, patience %d epochs", r->patience);
    else snprintf(stop, sizeof stop, "lowest validation loss kept");
    if (r->layer)
        snprintf(cut, sizeof cut, ", cut at %s (%s pooling)", r->layer,
                 r->pool == GR_POOL_GRID2   ? "2x2 grid"
                 : r->pool == GR_POOL_GRID4 ? "4x4 grid"
                                            : "global mean");
    if (r->steps > 0)
        snprintf(steps, sizeof steps, " (%lld updates)", (long long)r->epochs * gr_ft_spe(f));
    if (r->layer_decay > 0 && r->layer_decay < 1)
        snprintf(decay, sizeof decay, ", layer decay %g", r->layer_decay);
    snprintf(f->res->recipe, sizeof f->res->recipe,
             "model %s%s\n%lld training and %lld validation samples, %d classes, batch %d\n"
             "phase 1: the new head, %s%d epochs at lr %g\n"
             "phase 2: %s, %d epochs at lr %g%s%s\n"
             "%s, weight decay %g, warm-up + cosine, label smoothing %g, dropout %g\n"
             "BatchNorms: %s\n"
             "early stopping: %s\naugmentation %s\npreprocessing %s\nseed %llu",
             model_path, cut, (long long)f->ntr, (long long)f->nva, f->nclass, r->batch,
             r->head_init == GR_HEAD_INIT_PROBE
                 ? "a linear probe (logistic regression, CV) on the frozen features, then "
             : r->head_init == GR_HEAD_INIT_IMPRINT
                 ? "imprinted from the class means of the frozen features, then "
                 : "",
             r->head_epochs, r->lr, r->freeze, r->epochs, r->lr * r->lr_ratio, decay, steps,
             r->opt == GR_SGD ? "SGD (momentum 0.9)" : "AdamW", r->weight_decay, r->label_smoothing,
             r->dropout,
             r->bn == GR_BN_FROZEN
                 ? "inference mode throughout (running statistics fixed)"
                 : "batch statistics where they train, inference mode where frozen",
             stop, tt, et, (unsigned long long)r->seed);
}

/* ---- the model: new head, input shape ---- */

static int build_model(ft *f, const gr_model *m)
{
    const char *model_path = m->path;
    int st = gr_graph_clone(m->g, 0, &f->g); /* its own weights: they train in place */
    if (!st) st = gr_graph_inline_constants(f->g, NULL);
    if (st) return st;
    gr_graph *g = f->g;
    if (g->ninputs != 1)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s has %d inputs; fine-tuning takes models with one image input", model_path,
                      g->ninputs);
    const gr_transform *t = &f->r.eval_t;
    if (!t->crop && !t->size_w)
        return gr_err(GRAFT_E_ARG,
                      "fine-tuning needs a preprocessing with a fixed size (crop=N or size=N)");
    int oh, ow, th, tw;
    gr_transform_out_size(t, 224, 224, &oh, &ow);
    gr_transform_out_size(&f->r.train_t, 224, 224, &th, &tw);
    if (oh != th || ow != tw)
        return gr_err(
            GRAFT_E_ARG,
            "the augmentation makes %dx%d images, the preprocessing %dx%d: they must agree", tw, th,
            ow, oh);
    gr_shape in = gr_shape_make(4, (int64_t[]){ 1, 3, oh, ow });
    /* The input size is fixed from here on (a grid pooling's kernel depends on it): declare it,
     * so that shape queries (freeze specs) and the exported model agree with training. */
    gr_value *x = &g->values[g->inputs[0]];
    if (x->t.shape.rank != 4)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: input '%s' is not an image batch (N, 3, H, W)",
                      model_path, x->name);
    for (int i = 1; i < 4; i++)
        if (x->t.shape.d[i] > 0 && x->t.shape.d[i] != in.d[i])
            return gr_err(
                GRAFT_E_SHAPE,
                "%s: input '%s' takes %lldx%lldx%lld images (channels x height x width), the "
                "preprocessing makes 3x%dx%d",
                model_path, x->name, (long long)x->t.shape.d[1], (long long)x->t.shape.d[2],
                (long long)x->t.shape.d[3], oh, ow);
    x->t.shape = gr_shape_make(4, (int64_t[]){ -1, 3, oh, ow });
    x->has_shape = 1;
    gr_rng rng;
    gr_rng_seed(&rng, f->r.seed);
    gr_head_spec spec = { .nclass = f->nclass,
                          .dropout = f->r.dropout,
                          .replace = 1,
                          .input_shapes = &in,
                          .pool = gr_pool_side(f->r.pool) > 1 ? f->r.pool : GR_POOL_MEAN };
    if (!f->r.layer) {
        st = gr_graph_replace_classifier(g, &spec, &rng);
        if (st)
            return gr_err_prefix(st, "%s: no classifier to replace (cut the model with --layer)",
                                 model_path);
        return GRAFT_OK;
    }
    const char *names[1] = { f->r.layer };
    if ((st = gr_graph_cut(g, names, 1))) return gr_err_prefix(st, "%s", model_path);
    int logits;
    return gr_graph_add_head(g, g->outputs[0], &spec, &rng, &logits);
}

/* ---- validation: an inference plan over the session's current weights ---- */

/* Built afresh for each evaluation: an inference plan reorders constant weights once, at build
 * time, and the weights have changed since the last one. */
int gr_ft_evaluate(ft *f, gr_dnnl *dnnl, double *loss, double *acc)
{
    gr_plan *plans[2] = { NULL, NULL };
    double sum = 0;
    int64_t right = 0, seen = 0;
    int st = gr_loader_start(f->lva, 0), r = 0;
    gr_batch b;
    while (!st && (r = gr_loader_next(f->lva, &b)) > 0) {
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(4, (int64_t[]){ b.n, 3, b.h, b.w }),
                        .data = b.x };
        int which = plans[0] && !gr_plan_matches(plans[0], &x);
        if (!plans[which] || !gr_plan_matches(plans[which], &x)) {
            gr_plan_free(plans[which]);
            plans[which] = NULL;
            gr_plan_opts po = { .use_ref = f->r.use_ref, .dnnl = dnnl };
            if ((st = gr_plan_build(f->g, &x, &po, &plans[which]))) break;
        }
        gr_plan_run(plans[which], &x);
        const gr_tensor *y = gr_plan_output(plans[which], 0);
        const float *logits = y->data;
        sum += gr_loss_softmax_ce(logits, b.y, b.n, f->nclass, NULL, 0, NULL) * b.n;
        for (int i = 0; i < b.n; i++)
            right += gr_argmax(logits + (int64_t)i * f->nclass, f->nclass) == b.y[i];
        seen += b.n;
    }
    if (!st && r < 0) st = -r;
    gr_plan_free(plans[0]);
    gr_plan_free(plans[1]);
    *loss = seen ? sum / seen : NAN;
    *acc = seen ? (double)right / seen : NAN;
    return st;
}

/* ---- the early-stopping state and curves, as the checkpoint's note ---- */

/* An epoch's record as the 8 numbers the note and the history store, in this order. */
enum { EPOCH_FIELDS = 8 };
static void epoch_values(const gr_ft_epoch *e, double v[EPOCH_FIELDS])
{
    double x[EPOCH_FIELDS] = { e->phase,    e->epoch,   e->train_loss, e->train_acc,
                               e->val_loss, e->val_acc, e->lr,         e->seconds };
    memcpy(v, x, sizeof x);
}

char *gr_ft_note_json(const ft *f, int phase)
{
    cJSON *o = cJSON_CreateObject(), *h = cJSON_AddArrayToObject(o, "history");
    cJSON_AddNumberToObject(o, "phase", phase);
    cJSON_AddNumberToObject(o, "best_acc", f->best_acc);
    cJSON_AddNumberToObject(o, "best_loss", isfinite(f->best_loss) ? f->best_loss : 1e300);
    cJSON_AddNumberToObject(o, "best_hist", f->best_hist);
    cJSON_AddNumberToObject(o, "bad", f->bad);
    cJSON_AddStringToObject(o, "recipe", f->res->recipe);
    for (int i = 0; i < f->res->nhist; i++) {
        double v[EPOCH_FIELDS];
        epoch_values(&f->res->hist[i], v);
        cJSON_AddItemToArray(h, cJSON_CreateDoubleArray(v, EPOCH_FIELDS));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int gr_ft_push_epoch(gr_ft_result *r, const gr_ft_epoch *e)
{
    if (r->nhist == r->caphist) {
        int cap = r->caphist ? 2 * r->caphist : 32;
        gr_ft_epoch *h = realloc(r->hist, (size_t)cap * sizeof *h);
        if (!h) return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
        r->hist = h, r->caphist = cap;
    }
    r->hist[r->nhist++] = *e;
    return GRAFT_OK;
}

int gr_ft_read_note(ft *f, const char *note, const char *path)
{
    cJSON *o = cJSON_Parse(note);
    const cJSON *h = cJSON_GetObjectItem(o, "history"), *e;
    int st = o && cJSON_IsArray(h)
                 ? GRAFT_OK
                 : gr_err(GRAFT_E_FORMAT, "%s: the checkpoint's note is not graft's", path);
    f->res->nhist = 0;
    cJSON_ArrayForEach(e, h)
    {
        double v[EPOCH_FIELDS] = { 0 };
        for (int i = 0; i < EPOCH_FIELDS;
             i++) { /* null is a NaN (no value: the probe's training loss, no split) */
            const cJSON *x = cJSON_GetArrayItem(e, i);
            v[i] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        }
        /* phase and epoch are small whole numbers in graft's notes: anything else (1e300) is
         * not graft's, and converting it to int would be undefined */
        if (!st && !(v[0] >= 0 && v[0] <= 1e6 && v[1] >= 0 && v[1] <= 1e9))
            st = gr_err(GRAFT_E_FORMAT, "%s: the checkpoint's note has an epoch entry out of range",
                        path);
        gr_ft_epoch ep = {
            st ? 0 : (int)v[0], st ? 0 : (int)v[1], v[2], v[3], v[4], v[5], v[6], v[7]
        };
        if (!st) st = gr_ft_push_epoch(f->res, &ep);
    }
    if (!st) {
        f->best_acc = cJSON_GetObjectItem(o, "best_acc")
                          ? cJSON_GetObjectItem(o, "best_acc")->valuedouble
                          : -1;
        f->best_loss = cJSON_GetObjectItem(o, "best_loss")
                           ? cJSON_GetObjectItem(o, "best_loss")->valuedouble
                           : 1e300;
        f->best_hist = cJSON_GetObjectItem(o, "best_hist")
                           ? cJSON_GetObjectItem(o, "best_hist")->valueint
                           : -1;
        f->bad = cJSON_GetObjectItem(o, "bad") ? cJSON_GetObjectItem(o, "bad")->valueint : 0;
        const char *was = cJSON_GetStringValue(cJSON_GetObjectItem(o, "recipe")),
                   *now = f->res->recipe;
        if (was &&
            strcmp(was, now)) { /* another split, schedule or seed would not continue the run */
            while (*was && *was == *now) was++, now++;
            while (was > cJSON_GetStringValue(cJSON_GetObjectItem(o, "recipe")) && was[-1] != '\n')
                was--, now--;
            st = gr_err(
                GRAFT_E_ARG,
                "%s: the checkpoint was written with other settings (it has \"%.*s\", this run "
                "\"%.*s\"): resume with the same command",
                path, (int)strcspn(was, "\n"), was, (int)strcspn(now, "\n"), now);
        } else if (f->best_hist < -1 || f->best_hist >= f->res->nhist || f->bad < 0)
            st = gr_err(GRAFT_E_FORMAT,
                        "%s: the checkpoint's fine-tuning state is inconsistent (best epoch %d of "
                        "%d, %d bad)",
                        path, f->best_hist, f->res->nhist, f->bad);
    }
    cJSON_Delete(o);
    return st;
}

/* ---- phase 1 by a linear probe (LP-FT, Kumar et al. 2022) ----
 * The head starts as the logistic regression fitted on the frozen features (computed once,
 * through the feature cache): what `graft fit` finds with L-BFGS and a cross-validated C, far
 * better than a few epochs of SGD from a random head, and fine-tuning from a good head distorts
 * the pretrained features less. The standardisation is folded into the head's weights. */

/* Weight imprinting (Qi et al. 2018): each class's weight is the normalised mean of its
 * L2-normalised feature rows, so the logits are |x| times the cosine to each class mean: the
 * cosine classifier's ranking (|x| is common to all classes), scaled so that a typical row's
 * logits span about +-10. Bias 0. */
static int imprint(const gr_features *fe, int nclass, float *W, float *b)
{
    int d = fe->dim;
    double *mean = gr_calloc((size_t)nclass * d + 1, sizeof *mean), norm_sum = 0;
    if (!mean) return gr_err(GRAFT_E_NOMEM, "out of memory for the class means");
    for (int64_t i = 0; i < fe->n; i++) {
        const float *x = fe->X + i * d;
        double nx = 0;
        for (int j = 0; j < d; j++) nx += (double)x[j] * x[j];
        nx = sqrt(nx);
        norm_sum += nx;
        for (int j = 0; j < d && nx > 0; j++) mean[(int64_t)fe->y[i] * d + j] += x[j] / nx;
    }
    double scale = norm_sum > 0 ? 10.0 * (double)fe->n / norm_sum : 1;
    for (int c = 0; c < nclass; c++) {
        double nm = 0;
        for (int j = 0; j < d; j++) nm += mean[(int64_t)c * d + j] * mean[(int64_t)c * d + j];
        nm = sqrt(nm);
        for (int j = 0; j < d; j++)
            W[(int64_t)c * d + j] = nm > 0 ? (float)(scale * mean[(int64_t)c * d + j] / nm) : 0;
        b[c] = 0;
    }
    free(mean);
    return GRAFT_OK;
}

static int probe_head(ft *f, const gr_model *m)
{
    gr_extract_opts eo = { .layer = f->r.layer,
                           .pool = f->r.pool,
                           .t = f->r.eval_t,
                           .batch = f->r.batch,
                           .workers = f->r.workers,
                           .cache_dir = f->r.cache_dir,
                           .use_ref = f->r.use_ref,
                           .progress = f->r.progress,
                           .stage = "probe" };
    gr_features fe;
    int st = gr_extract(m, f->ds, f->tr, f->ntr, &eo, &fe);
    if (st) return st;
    int wv = gr_graph_find_value(f->g, "head.fc.weight"),
        bv = gr_graph_find_value(f->g, "head.fc.bias");
    if (wv < 0 || bv < 0 || gr_numel(&f->g->values[wv].t.shape) != (int64_t)f->nclass * fe.dim)
        st = gr_err(GRAFT_E_INTERNAL, "the new head does not take the %d probe features", fe.dim);
    if (!st && f->r.head_init == GR_HEAD_INIT_IMPRINT) {
        st = imprint(&fe, f->nclass, f->g->values[wv].t.data, f->g->values[bv].t.data);
        if (!st)
            gr_progress_note(&f->r.progress, GRAFT_EVENT_NOTE, "finetune",
                             "finetune: phase 1: the head is imprinted from the class means of "
                             "%lld frozen feature rows",
                             (long long)fe.n);
        gr_features_free(&fe);
        return st;
    }
    gr_fit_opts fo;
    gr_fit_defaults(&fo, GR_HEAD_LOGREG);
    fo.C = f->r.probe_C > 0 ? f->r.probe_C : 0; /* 0: cross-validated */
    fo.seed = f->r.seed;
    gr_head h = { 0 };
    if (!st) st = gr_head_fit(fe.X, fe.y, fe.n, fe.dim, f->nclass, &fo, &h);
    if (!st) {
        float *W = f->g->values[wv].t.data, *b = f->g->values[bv].t.data;
        for (int c = 0; c < f->nclass; c++) {
            double bias = h.b[c];
            for (int j = 0; j < fe.dim; j++) {
                double w = h.W[(int64_t)c * fe.dim + j],
                       sd = h.norm == GR_FEAT_STANDARDIZE ? h.sd[j] : 1,
                       mu = h.norm == GR_FEAT_STANDARDIZE ? h.mu[j] : 0;
                W[(int64_t)c * fe.dim + j] = (float)(w / sd);
                bias -= w * mu / sd;
            }
            b[c] = (float)bias;
        }
        gr_progress_note(&f->r.progress, GRAFT_EVENT_NOTE, "finetune",
                         "finetune: phase 1: the head is a linear probe on %lld frozen feature "
                         "rows%s (C = %g%s)",
                         (long long)fe.n, fe.cached ? " from the cache" : "", h.C,
                         h.cv_acc >= 0 ? " by cross-validation" : "");
    }
    gr_head_free(&h);
    gr_features_free(&fe);
    return st;
}

/* Scores the probe head on the validation split: phase 1's one "epoch", the best so far. */
static int probe_epoch(ft *f)
{
    gr_ft_epoch ep = {
        .phase = 1, .epoch = 0, .train_loss = NAN, .train_acc = NAN, .val_loss = NAN, .val_acc = NAN
    };
    gr_dnnl *dnnl = NULL;
    double t0 = gr_now();
    int st = gr_dnnl_new(&dnnl);
    if (!st && f->nva) st = gr_ft_evaluate(f, dnnl, &ep.val_loss, &ep.val_acc);
    gr_dnnl_free(dnnl);
    ep.seconds = gr_now() - t0;
    if (!st) st = gr_ft_push_epoch(f->res, &ep);
    if (!st && f->nva) {
        f->best_acc = ep.val_acc, f->best_loss = ep.val_loss, f->best_hist = f->res->nhist - 1;
        gr_progress_note(&f->r.progress, GRAFT_EVENT_NOTE, "finetune",
                         "phase 1 probe: val loss %.4f acc %.2f%%", ep.val_loss, 100 * ep.val_acc);
    }
    return st;
}

/* ---- the whole recipe ---- */

static int open_loaders(ft *f)
{
    gr_loader_opts lt = { .batch = f->r.batch,
                          .workers = f->r.workers,
                          .shuffle = 1,
                          .drop_last = f->ntr > f->r.batch,
                          .seed = f->r.seed };
    gr_loader_opts lv = { .batch = f->r.batch, .workers = f->r.workers, .seed = f->r.seed };
    int st = gr_loader_new(f->ds, f->tr, f->ntr, &f->r.train_t, &lt, &f->ltr);
    if (!st && f->nva) st = gr_loader_new(f->ds, f->va, f->nva, &f->r.eval_t, &lv, &f->lva);
    return st;
}

char *gr_ft_history_json(const gr_ft_result *r)
{
    cJSON *o = cJSON_CreateObject();
    const char *keys[] = { "phase",    "epoch",   "train_loss", "train_acc",
                           "val_loss", "val_acc", "lr",         "seconds" };
    for (int k = 0; k < EPOCH_FIELDS; k++) {
        cJSON *a = cJSON_AddArrayToObject(o, keys[k]);
        for (int i = 0; i < r->nhist; i++) {
            double v[EPOCH_FIELDS];
            epoch_values(&r->hist[i], v);
            cJSON_AddItemToArray(a, isfinite(v[k]) ? cJSON_CreateNumber(v[k]) : cJSON_CreateNull());
        }
    }
    cJSON_AddNumberToObject(o, "best", r->best);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int write_model(ft *f, const char *out_path)
{
    char tf[512];
    gr_transform_format(&f->r.eval_t, tf, sizeof tf);
    char *classes = gr_dataset_class_json(f->ds), *hist = gr_ft_history_json(f->res);
    const char *kv[10] = { "graft.classes", classes,        "graft.transform", tf,
                           "graft.recipe",  f->res->recipe, "graft.history",   hist,
                           "graft.layer",   "probabilities" };
    gr_graph_sync_inits(f->gx, f->g);
    for (int v = 0; v < f->gx->nvalues; v++) /* give_back leaves NULL when out of memory */
        if (f->gx->values[v].is_init && !f->gx->values[v].t.data &&
            gr_numel(&f->gx->values[v].t.shape) > 0) {
            free(classes), free(hist);
            return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory for the trained weights");
        }
    int st = classes && hist
                 ? gr_export_finish(f->gx, f->gx->outputs[0], f->nclass, kv, 5, out_path)
                 : gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
    free(classes), free(hist);
    return st;
}

/* layer "auto": the layer and pooling gr_layer_auto ranks best on the samples to fine-tune on,
 * with the preprocessing; the ranking stays in the result. All of them, the validation split
 * included, as the CLI ranked them before the API did (graft fit ranks its training part only;
 * doing the same here would change which layer some runs get). */
static int choose_layer(ft *f, const gr_model *m, const int64_t *idx, int64_t nidx)
{
    gr_extract_opts eo = { .t = f->r.eval_t,
                           .batch = f->r.batch,
                           .workers = f->r.workers,
                           .use_ref = f->r.use_ref,
                           .progress = f->r.progress,
                           .stage = "layer" };
    gr_ft_result *res = f->res;
    int st = gr_layer_auto(m, f->ds, idx, nidx, &eo, 0, &res->ranking, &res->nranking);
    if (st) return gr_err_prefix(st, "layer auto");
    if (!res->nranking) return gr_err(GRAFT_E_UNSUPPORTED, "layer auto: no layer to choose from");
    snprintf(res->layer, sizeof res->layer, "%s", res->ranking[0].layer);
    f->r.layer = res->layer;
    f->r.pool = res->ranking[0].pool;
    gr_progress_note(&f->r.progress, GRAFT_EVENT_NOTE, "finetune",
                     "finetune: layer auto: %s with %s pooling (of %d scored; CV log-loss %.4f, "
                     "accuracy %.4f)",
                     res->layer, gr_pool_name(f->r.pool), res->nranking, res->ranking[0].cv_logloss,
                     res->ranking[0].cv_acc);
    return GRAFT_OK;
}

/* The samples (all when idx is NULL: *all holds them) are labelled, the dataset has images and
 * two classes or more; then the recipe (resolve), the split, and every class has training rows. */
static int check_and_split(ft *f, const int64_t *idx, int64_t nidx, int64_t **all)
{
    const gr_dataset *ds = f->ds;
    if (ds->unlabeled)
        return gr_err(GRAFT_E_ARG,
                      "%s was opened as unlabelled; fine-tuning learns from its labels",
                      ds->source);
    if (!idx) {
        if (!(*all = malloc((size_t)(ds->n + 1) * sizeof **all)))
            return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
        for (int64_t i = 0; i < ds->n; i++) (*all)[i] = i;
        idx = *all, nidx = ds->n;
    }
    for (int64_t i = 0; i < nidx; i++)
        if (idx[i] < 0 || idx[i] >= ds->n || ds->labels[idx[i]] < 0)
            return gr_err(GRAFT_E_ARG, "%s: sample %lld is unlabelled; fine-tuning needs labels",
                          ds->source, (long long)idx[i]);
    if (ds->nclass < 2)
        return gr_err(GRAFT_E_ARG, "%s: fine-tuning needs at least two classes", ds->source);
    if (ds->features)
        return gr_err(GRAFT_E_ARG,
                      "%s holds feature vectors, not images: fit a head on them instead",
                      ds->source);
    resolve(f, nidx);
    int st = split(f, idx, nidx, f->r.val_frac);
    if (!st && f->r.steps > 0 && !strcmp(f->r.freeze, "head"))
        st = gr_err(GRAFT_E_ARG, "steps: freeze \"head\" has no phase 2 to give them to");
    if (!st && gr_ft_aligns(f) && !strcmp(f->r.freeze, "head"))
        st = gr_err(GRAFT_E_ARG,
                    "%s aligns the features the head reads: train layers below them (freeze "
                    "last:N or all, not head)",
                    gr_adapt_method_name(f->r.adapt));
    if (st) return st;
    if (f->r.steps > 0) f->r.epochs = (int)((f->r.steps + gr_ft_spe(f) - 1) / gr_ft_spe(f));
    int64_t *have = calloc((size_t)f->nclass + 1, sizeof *have);
    if (!have) return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
    for (int64_t i = 0; i < f->ntr; i++) have[ds->labels[f->tr[i]]]++;
    for (int c = 0; !st && c < f->nclass; c++)
        if (!have[c])
            st = gr_err(GRAFT_E_ARG, "%s: class '%s' has no training sample", ds->source,
                        ds->class_names[c]);
    free(have);
    return st;
}

/* The checkpoint folders (d1, d2: 4096 bytes each) and where to resume: phase 2's checkpoint
 * means phase 1 is done. Without resume, an earlier run's checkpoints are refused. */
static int checkpoint_dirs(const gr_ft_opts *o, char *d1, char *d2, int *resume1, int *resume2)
{
    *resume1 = *resume2 = 0;
    d1[0] = d2[0] = 0;
    if (!o->ckpt_dir) return GRAFT_OK;
    if (strlen(o->ckpt_dir) > 4000)
        return gr_err(GRAFT_E_ARG, "%.100s...: checkpoint folder name too long", o->ckpt_dir);
    snprintf(d1, 4096, "%s/phase1", o->ckpt_dir);
    snprintf(d2, 4096, "%s/phase2", o->ckpt_dir);
    int st = gr_ft_make_dir(o->ckpt_dir);
    if (st) return st;
    char c2[4300], c2p[4300], c1[4300], c1p[4300];
    snprintf(c2, sizeof c2, "%s/ckpt.safetensors", d2);
    snprintf(c2p, sizeof c2p, "%s/ckpt.prev.safetensors", d2);
    snprintf(c1, sizeof c1, "%s/ckpt.safetensors", d1);
    snprintf(c1p, sizeof c1p, "%s/ckpt.prev.safetensors", d1);
    int has1 = gr_ft_exists(c1) || gr_ft_exists(c1p), has2 = gr_ft_exists(c2) || gr_ft_exists(c2p);
    if (o->resume) {
        *resume2 = has2;
        *resume1 = !has2 && has1;
        if (!has1 && !has2)
            return gr_err(
                GRAFT_E_IO,
                "%s: no checkpoint to resume from (phase1/ or phase2/ with ckpt.safetensors)",
                o->ckpt_dir);
    } else if (has1 || has2) {
        /* a fresh run would mix its checkpoints with an earlier run's (and a later --resume
         * could pick the wrong one); overwriting them would lose that run: refuse */
        return gr_err(GRAFT_E_ARG,
                      "%s holds the checkpoints of an earlier run: add --resume to continue it, "
                      "or give another folder",
                      o->ckpt_dir);
    }
    return GRAFT_OK;
}

/* The probe (LP-FT) or imprinted head, phase 1 on the head, phase 2 on the freeze spec. */
static int run_phases(ft *f, const gr_model *m, const char *d1, const char *d2, int resume1,
                      int resume2)
{
    unsigned char *tr = calloc((size_t)f->g->nvalues + 1, 1);
    if (!tr) return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
    int st = GRAFT_OK;
    if (!resume2 && f->r.head_init != GR_HEAD_INIT_RANDOM && !resume1) {
        st = probe_head(f, m);
        if (!st) st = probe_epoch(f);
    }
    if (!st && !resume2 && f->r.head_epochs > 0) {
        snprintf(f->dir, sizeof f->dir, "%s", d1);
        st = gr_freeze_select(f->g, "head", tr);
        gr_ft_adapt_trainable(f, tr);
        if (!st) st = gr_ft_run_phase(f, 1, tr, f->r.head_epochs, f->r.lr, resume1);
    }
    if (!st && f->r.epochs > 0) {
        char spec[1200];
        snprintf(spec, sizeof spec, "%s,head", f->r.freeze);
        snprintf(f->dir, sizeof f->dir, "%s", d2);
        free(tr); /* phase 1's trainer may have added values to the graph */
        if (!(tr = calloc((size_t)f->g->nvalues + 1, 1)))
            return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
        st = gr_freeze_select(f->g, spec, tr);
        gr_ft_adapt_trainable(f, tr);
        if (!st) st = gr_ft_run_phase(f, 2, tr, f->r.epochs, f->r.lr * f->r.lr_ratio, resume2);
    }
    free(tr);
    return st;
}

int gr_finetune(const gr_model *m, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
                const gr_ft_opts *o, const char *out_path, gr_ft_result *res)
{
    memset(res, 0, sizeof *res);
    res->adapt_loss = res->domain_acc = NAN;
    res->best = -1;
    double t0 = gr_now();
    ft f = { .o = o,
             .r = *o,
             .ds = ds,
             .res = res,
             .nclass = ds->nclass,
             .best_acc = -1,
             .best_loss = INFINITY,
             .best_hist = -1 };
    int64_t *all = NULL;
    int st = o->layer && !strcmp(o->layer, "auto") ? choose_layer(&f, m, idx, nidx) : GRAFT_OK;
    if (!st) st = check_and_split(&f, idx, nidx, &all);
    if (!st) {
        recipe_text(&f, m->path);
        res->ntrain = f.ntr, res->nval = f.nva;
        gr_progress_note(&f.r.progress, GRAFT_EVENT_NOTE, "finetune", "finetune: %s", res->recipe);
    }
    res->adapt = f.r.adapt, res->adapt_weight = f.r.adapt_weight;
    if (!st) st = build_model(&f, m);
    if (!st) st = gr_graph_clone(f.g, 1, &f.gx); /* shares g's bytes: synced before the export */
    if (!st && gr_ft_aligns(&f)) st = gr_ft_adapt_build(&f); /* after: gx never has it */
    if (!st) st = open_loaders(&f);
    char d1[4096] = "", d2[4096] = "";
    int resume1 = 0, resume2 = 0;
    if (!st) st = checkpoint_dirs(o, d1, d2, &resume1, &resume2);
    if (!st) st = run_phases(&f, m, d1, d2, resume1, resume2);
    if (!st) {
        res->best = f.nva ? f.best_hist : res->nhist - 1;
        res->best_val = f.nva ? f.best_acc : NAN;
        st = write_model(&f, out_path);
    }
    res->seconds = gr_now() - t0;
    gr_loader_free(f.ltr);
    gr_loader_free(f.lva);
    gr_ft_adapt_free(&f);
    gr_graph_free(f.gx);
    gr_graph_free(f.g);
    free(f.tr), free(f.va), free(all);
    return st;
}

void gr_ft_result_free(gr_ft_result *r)
{
    free(r->hist);
    free(r->ranking);
    memset(r, 0, sizeof *r);
    r->best = -1;
}
