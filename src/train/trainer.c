/* trainer.c — a training session: parameter, gradient and buffer blocks, the training plan,
 * the loss on output 0 and the optimizer step. */
#include "train.h"

#include "ops/dnnl_util.h"

#include <math.h>
#include <string.h>

/* Same rule as the plan's (graph.h): a BatchNorm trains with its own parameters. */
static int bn_trains(const gr_trainer *t, int k)
{
    const gr_node *n = &t->g->nodes[k];
    if (t->cfg.node_mode && t->cfg.node_mode[k] >= 0) return t->cfg.node_mode[k];
    return n->nin > 2 &&
           ((n->in[1] >= 0 && t->trainable[n->in[1]]) || (n->in[2] >= 0 && t->trainable[n->in[2]]));
}

/* Layer index of each trainable value: the order of the first node reading it among the nodes
 * that read trainable values. */
static void layer_scales(gr_trainer *t)
{
    const gr_graph *g = t->g;
    int *layer = malloc((size_t)(g->nvalues + 1) * sizeof *layer), nlayers = 0;
    if (!layer) return; /* scales stay 1 */
    for (int v = 0; v < g->nvalues; v++) layer[v] = -1;
    for (int k = 0; k < g->nnodes; k++) {
        int used = 0;
        for (int i = 0; i < g->nodes[k].nin; i++) {
            int v = g->nodes[k].in[i];
            if (v >= 0 && t->trainable[v] && layer[v] < 0) {
                layer[v] = nlayers;
                used = 1;
            }
        }
        nlayers += used;
    }
    for (int p = 0; p < t->nparam; p++) {
        int v = gr_graph_find_value(g, t->params[p].name);
        int depth = v >= 0 && layer[v] >= 0 ? nlayers - 1 - layer[v] : 0;
        t->params[p].lr_scale = (float)pow(t->cfg.layer_decay, depth);
    }
    free(layer);
}

/* Moves the trainable initializers into the parameter block and the running statistics of
 * training BatchNorms into the buffer block; the graph's values point into the blocks. */
static int make_blocks(gr_trainer *t)
{
    gr_graph *g = t->g;
    for (int v = 0; v < g->nvalues; v++) {
        if (!t->trainable[v]) continue;
        const gr_value *x = &g->values[v];
        if (!x->is_init || x->t.dtype != GR_F32)
            return gr_err(GRAFT_E_ARG, "'%s' cannot be trained: it is not a float32 initializer",
                          x->name);
        t->total += gr_numel(&x->t.shape);
        t->nparam++;
    }
    unsigned char *in_buf = gr_calloc((size_t)g->nvalues + 1, 1);
    if (!in_buf) return GRAFT_E_NOMEM;
    for (int k = 0; k < g->nnodes; k++)
        if (gr_node_running_stats(&g->nodes[k]) && g->nodes[k].nin >= 5 && bn_trains(t, k))
            for (int i = 3; i < 5; i++) {
                int v = g->nodes[k].in[i];
                if (v >= 0 && g->values[v].is_init && g->values[v].t.dtype == GR_F32 &&
                    !in_buf[v]) {
                    in_buf[v] = 1;
                    t->nbuf += gr_numel(&g->values[v].t.shape);
                    t->nbuf_values++;
                }
            }
    t->w = gr_calloc((size_t)t->total + 1, sizeof(float));
    t->grad = gr_calloc((size_t)t->total + 1, sizeof(float));
    t->params = gr_calloc((size_t)t->nparam + 1, sizeof *t->params);
    t->grad_of = gr_calloc((size_t)g->nvalues + 1, sizeof *t->grad_of);
    t->buf = gr_calloc((size_t)t->nbuf + 1, sizeof(float));
    t->buf_saved = gr_calloc((size_t)t->nbuf + 1, sizeof(float));
    t->buf_values = gr_calloc((size_t)t->nbuf_values + 1, sizeof(int));
    if (!t->w || !t->grad || !t->params || !t->grad_of || !t->buf || !t->buf_saved ||
        !t->buf_values) {
        free(in_buf);
        return gr_err(GRAFT_E_NOMEM, "out of memory for %lld parameters", (long long)t->total);
    }
    int64_t off = 0, boff = 0;
    int p = 0, b = 0, nfresh = t->nvalues_given;
    for (int v = 0; v < g->nvalues; v++) {
        gr_value *x = &g->values[v];
        int64_t n = gr_numel(&x->t.shape);
        if (t->trainable[v]) {
            memcpy(t->w + off, x->t.data, (size_t)n * sizeof(float));
            x->t.data = t->w + off;
            t->grad_of[v] = t->grad + off;
            /* torch convention: no decay on 1-D parameters (biases, normalisation scales) */
            t->params[p++] =
                (gr_param){ .name = x->name,
                            .off = off,
                            .n = n,
                            .lr_scale = 1,
                            .decay = x->t.shape.rank > 1,
                            .pretrained = !(t->cfg.fresh && v < nfresh && t->cfg.fresh[v]) };
            off += n;
        } else if (in_buf[v]) {
            memcpy(t->buf + boff, x->t.data, (size_t)n * sizeof(float));
            x->t.data = t->buf + boff;
            t->buf_values[b++] = v;
            boff += n;
        }
    }
    free(in_buf);
    return GRAFT_OK;
}

/* Frozen Conv + BatchNorm pairs become one Conv (inference mode is an affine map), so the frozen
 * part runs as an inference network does. The graph grows by the folded weights. */
static int fold_frozen(gr_trainer *t)
{
    if (t->cfg.node_mode || t->cfg.no_fold) return GRAFT_OK; /* node indices must stay */
    int before = t->g->nvalues;
    int st = gr_graph_fold_frozen(t->g, t->trainable);
    if (st || t->g->nvalues == before) return st;
    unsigned char *m = gr_calloc((size_t)t->g->nvalues + 1, 1);
    if (!m) return GRAFT_E_NOMEM;
    memcpy(m, t->trainable, (size_t)before);
    free(t->trainable);
    t->trainable = m;
    return GRAFT_OK;
}

int gr_trainer_new(gr_graph *g, const unsigned char *trainable, const gr_trainer_cfg *cfg,
                   gr_trainer **out)
{
    gr_trainer *t = gr_calloc(1, sizeof *t);
    if (!t) return GRAFT_E_NOMEM;
    t->g = g;
    t->nvalues_given = g->nvalues; /* masks from the caller cover these (folding appends values) */
    t->cfg = *cfg;
    t->trainable = gr_calloc((size_t)g->nvalues + 1, 1);
    int st = t->trainable ? GRAFT_OK : GRAFT_E_NOMEM;
    if (!st) {
        memcpy(t->trainable, trainable, (size_t)g->nvalues);
        st = fold_frozen(t);
    }
    if (!st) st = make_blocks(t);
    if (!st && cfg->layer_decay > 0 && cfg->layer_decay < 1) layer_scales(t);
    if (!st) st = gr_optim_init(&t->opt, &cfg->opt, t->params, t->nparam, t->total, t->w);
    if (!st) st = gr_dnnl_new(&t->dnnl);
    gr_rng_seed(&t->rng, cfg->seed);
    if (st) {
        gr_trainer_free(t);
        return st;
    }
    *out = t;
    return GRAFT_OK;
}

/* The graph's trainable values and running statistics point into the blocks freed below: give
 * them copies in the graph's arena, so the graph (trained weights included) outlives the
 * session, e.g. for an export. */
static void give_back(gr_trainer *t)
{
    gr_graph *g = t->g;
    for (int v = 0; t->trainable && v < t->nvalues_given && v < g->nvalues; v++) {
        gr_value *x = &g->values[v];
        int in_block = t->w && (float *)x->t.data >= t->w && (float *)x->t.data < t->w + t->total;
        int in_buf =
            t->buf && (float *)x->t.data >= t->buf && (float *)x->t.data < t->buf + t->nbuf;
        if (!x->is_init || !(in_block || in_buf)) continue;
        size_t n = gr_tensor_bytes(&x->t);
        void *copy = gr_arena_alloc(g->arena, n);
        if (copy) memcpy(copy, x->t.data, n);
        x->t.data = copy; /* NULL only if the arena is out of memory */
    }
}

void gr_trainer_free(gr_trainer *t)
{
    if (!t) return;
    give_back(t);
    gr_plan_free(t->plan);
    gr_optim_free(&t->opt);
    gr_dnnl_free(t->dnnl);
    free(t->trainable);
    free(t->grad_of);
    free(t->w);
    free(t->grad);
    free(t->params);
    free(t->buf);
    free(t->buf_saved);
    free(t->buf_values);
    for (int i = 0; i < GR_TRAIN_MAXOUT; i++) free(t->dout[i]);
    free(t->dptr);
    free(t);
}

static int ensure_plan(gr_trainer *t, const gr_tensor *x)
{
    if (t->plan && gr_plan_matches(t->plan, x)) return GRAFT_OK;
    gr_plan_free(t->plan);
    t->plan = NULL;
    gr_plan_opts o = { .use_ref = t->cfg.use_ref,
                       .dnnl = t->dnnl,
                       .trainable = t->trainable,
                       .grads = t->grad_of,
                       .node_mode = t->cfg.node_mode,
                       .rng = &t->rng };
    int st = gr_plan_build(t->g, x, &o, &t->plan);
    if (st) return st;
    /* the outputs past GR_TRAIN_MAXOUT get no gradient (the supervised losses read output 0) */
    int nout = t->g->noutputs;
    const gr_tensor **dp = realloc(t->dptr, ((size_t)nout + 1) * sizeof *dp);
    if (!dp) st = gr_err(GRAFT_E_NOMEM, "training: out of memory");
    else t->dptr = dp;
    for (int i = 0; !st && i < nout && i < GR_TRAIN_MAXOUT; i++) {
        const gr_tensor *y = gr_plan_output(t->plan, i);
        size_t need = (size_t)gr_numel(&y->shape);
        if (y->dtype != GR_F32 || need <= t->dout_cap[i]) continue; /* no gradient for ints */
        free(t->dout[i]);
        t->dout[i] = malloc(need * sizeof(float) + 64);
        t->dout_cap[i] = t->dout[i] ? need : 0;
        if (!t->dout[i]) st = GRAFT_E_NOMEM;
    }
    if (st) { /* no half-checked plan stays for the next call */
        gr_plan_free(t->plan);
        t->plan = NULL;
    }
    return st;
}

/* The supervised losses (cfg.loss) on output 0 against the caller's target. */
typedef struct builtin_loss {
    const gr_trainer *t;
    const void *target;
} builtin_loss;

static int compute_loss(void *ctx, gr_loss_io *io, double *loss)
{
    const builtin_loss *b = ctx;
    const gr_tensor *y = io->y[0];
    if (y->dtype != GR_F32)
        return gr_err(GRAFT_E_SHAPE, "the model's first output is %s, not float32",
                      gr_dtype_name(y->dtype));
    int64_t n = gr_numel(&y->shape);
    io->used[0] = 1;
    switch (b->t->cfg.loss) {
    case GR_LOSS_CE: {
        if (y->shape.rank != 2)
            return gr_err(GRAFT_E_SHAPE, "cross-entropy needs (batch, classes) logits, got rank %d",
                          y->shape.rank);
        int rows = (int)y->shape.d[0], k = (int)y->shape.d[1];
        const int32_t *lab = b->target;
        for (int i = 0; i < rows; i++)
            if (lab[i] >= k)
                return gr_err(GRAFT_E_ARG, "label %d of sample %d is not below the %d classes",
                              lab[i], i, k);
        *loss = gr_loss_softmax_ce(y->data, lab, rows, k, b->t->cfg.class_weight,
                                   b->t->cfg.label_smoothing, io->dy[0]);
        return GRAFT_OK;
    }
    case GR_LOSS_BCE:
        *loss = gr_loss_bce_logits(y->data, b->target, n,
                                   y->shape.rank ? (int)y->shape.d[y->shape.rank - 1] : 1, NULL,
                                   io->dy[0]);
        return GRAFT_OK;
    case GR_LOSS_MSE: *loss = gr_loss_mse(y->data, b->target, n, io->dy[0]); return GRAFT_OK;
    }
    return gr_err(GRAFT_E_ARG, "unknown loss %d", b->t->cfg.loss);
}

static int all_finite(const float *x, int64_t n)
{
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * 0.0f; /* NaN or Inf makes s NaN */
    return s == 0;
}

static void restore_buffers(gr_trainer *t)
{
    memcpy(t->buf, t->buf_saved, (size_t)t->nbuf * sizeof(float));
}

/* Forward, loss and backward; the running statistics are left as the forward made them. */
static int forward_backward(gr_trainer *t, const gr_tensor *x, gr_loss_fn fn, void *ctx,
                            int want_grad, double *loss)
{
    int st = ensure_plan(t, x);
    if (st) return st;
    memcpy(t->buf_saved, t->buf, (size_t)t->nbuf * sizeof(float));
    gr_plan_run(t->plan, x);
    int nout = t->g->noutputs;
    gr_loss_io io = { .ny = nout < GR_TRAIN_MAXOUT ? nout : GR_TRAIN_MAXOUT };
    for (int i = 0; i < io.ny; i++) io.y[i] = gr_plan_output(t->plan, i), io.dy[i] = t->dout[i];
    st = fn(ctx, &io, loss);
    if (!st && want_grad) {
        gr_tensor d[GR_TRAIN_MAXOUT];
        for (int i = 0; i < nout; i++) {
            t->dptr[i] = NULL;
            if (i >= io.ny || !io.used[i] || !t->dout[i]) continue;
            d[i] = *io.y[i];
            d[i].data = t->dout[i];
            t->dptr[i] = &d[i];
        }
        gr_plan_backward(t->plan, t->dptr);
    }
    return st;
}

int gr_trainer_grad_fn(gr_trainer *t, const gr_tensor *x, gr_loss_fn fn, void *ctx, int want_grad,
                       double *loss)
{
    int st = forward_backward(t, x, fn, ctx, want_grad, loss);
    restore_buffers(t); /* as documented: the statistics do not change */
    return st;
}

int gr_trainer_step_fn(gr_trainer *t, const gr_tensor *x, gr_loss_fn fn, void *ctx, double *loss)
{
    double L;
    gr_rng rng_before = t->rng; /* a failed step leaves no trace, Dropout's draws included */
    int st = forward_backward(t, x, fn, ctx, 1, &L);
    if (st) {
        restore_buffers(t);
        t->rng = rng_before;
        return st;
    }
    if (!isfinite(L) || !all_finite(t->grad, t->total)) {
        restore_buffers(t);
        t->rng = rng_before;
        return gr_err(GRAFT_E_NUMERIC,
                      "step %lld: the %s is %s; the weights and running statistics are unchanged "
                      "(lower the learning rate or enable gradient clipping)",
                      (long long)t->step + 1, isfinite(L) ? "gradient" : "loss",
                      isfinite(L) ? "not finite" : (isnan(L) ? "NaN" : "infinite"));
    }
    t->last_norm = gr_optim_step(&t->opt, t->w, t->grad);
    t->last_loss = L;
    t->step++;
    if (loss) *loss = L;
    return GRAFT_OK;
}

int gr_trainer_grad(gr_trainer *t, const gr_tensor *x, const void *target, int want_grad,
                    double *loss)
{
    builtin_loss b = { t, target };
    return gr_trainer_grad_fn(t, x, compute_loss, &b, want_grad, loss);
}

int gr_trainer_step(gr_trainer *t, const gr_tensor *x, const void *target, double *loss)
{
    builtin_loss b = { t, target };
    return gr_trainer_step_fn(t, x, compute_loss, &b, loss);
}
