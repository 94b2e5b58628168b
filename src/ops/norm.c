/* norm.c — normalisation: BatchNormalization (inference and training), LayerNormalization,
 * InstanceNormalization, LRN and LpNormalization; backward for the first three. Depends on core
 * and oneDNN.
 *
 * Every op has a plain reference kernel that accumulates in double. oneDNN runs float32
 * BatchNormalization in inference mode (use_global_stats | use_scale | use_shift) and float32
 * LayerNormalization: ONNX normalises over the axes [axis, rank), which in row-major data is the
 * last axis of the 2-D view (prod(d[0:axis]), prod(d[axis:])), the one oneDNN normalises over. */
#include "dnnl_util.h"

#include <math.h>
#include <string.h>

static const int float_types[] = { GR_F32, GR_F64, 0 };

static void run(gr_opctx *c, dnnl_primitive_t prim, dnnl_memory_t spad, dnnl_exec_arg_t *args,
                int n)
{
    if (spad) {
        dnnl_memory_set_data_handle(spad, c->scratch);
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, spad };
    }
    dnnl_primitive_execute(prim, c->dnnl->stream, n, args);
    dnnl_stream_wait(c->dnnl->stream);
}

static void destroy_mems(dnnl_memory_t *m, int n)
{
    for (int i = 0; i < n; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
}

/* Each input in [from, to) must be present, float, and hold exactly n values. */
static int check_vectors(const gr_opctx *c, int from, int to, int64_t n, const char *what)
{
    int st;
    for (int i = from; i < to; i++) {
        if ((st = gr_op_check_dtype(c, i, float_types))) return st;
        if (gr_numel(&c->in[i]->shape) != n || c->in[i]->shape.rank != 1)
            return gr_op_err(c, GRAFT_E_SHAPE,
                             "input %d must have shape (%lld) (%s), got %lld values", i,
                             (long long)n, what, (long long)gr_numel(&c->in[i]->shape));
    }
    return GRAFT_OK;
}

/* ---- BatchNormalization ----
 * Inference: Y = (X - input_mean) / sqrt(input_var + epsilon) * scale + B, per channel.
 * The batch's statistics (mean and population variance over N and the spatial axes) replace
 * the inputs in two cases:
 *  - the engine trains (c->training; the node's training_mode is ignored): PyTorch's rule. The
 *    running stats (inputs 3, 4) are updated IN PLACE, running = momentum * running +
 *    (1 - momentum) * batch, with the UNBIASED batch variance (n / (n - 1)) for running_var;
 *    outputs 1, 2, when declared, get the new values.
 *  - the engine does not train but the node says training_mode = 1 (opset 14+): ONNX's rule
 *    (BatchNormalization-15), inputs untouched, outputs 1, 2 = input * momentum + batch *
 *    (1 - momentum) with the population variance.
 * Backward, with xhat = (x - mean) * istd and per-channel sums over N and the spatial axes (n
 * values): dScale = sum dY xhat, dB = sum dY; dX = scale * istd * (dY - sum dY / n - xhat *
 * dScale / n) with batch statistics, dX = scale * istd * dY with fixed ones (a frozen BatchNorm).
 * oneDNN (float32) runs forward (inference with use_global_stats, or forward_training) and
 * backward (prop backward: diff scale and shift too). When the engine trains or needs gradients
 * it reads X in the layout a convolution left (nChw16c) and writes Y and dX in it; pure
 * inference keeps asking for plain X, as before. */

typedef struct bn_state {
    dnnl_primitive_t prim; /* first: NULL when the reference kernel runs */
    dnnl_memory_t m[7];    /* src, dst, mean, variance, scale, shift, scratchpad */
    dnnl_primitive_t bwd;  /* backward, or NULL: the reference backward (plain X only) */
    dnnl_memory_t bm[5];   /* diff_dst, diff_src, diff_scale, diff_shift, scratchpad */
    int batch_stats;       /* normalise with the batch's statistics */
    int update;            /* the engine trains: update the running stats in place */
    double eps, momentum;
    int64_t N, C, S;            /* X viewed as (N, C, S) */
    float *mean, *var;          /* batch statistics kept for backward and the running update */
    size_t tmp_off, dsrc_bytes; /* backward temporaries in scratch: diff_src (if dX is not
                                  wanted), diff scale and shift (if not wanted) */
    dnnl_memory_desc_t xmd;     /* X's (and Y's) memory descriptor */
} bn_state;

static void bn_release(void *params)
{
    bn_state *s = params;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->bwd) dnnl_primitive_destroy(s->bwd);
    destroy_mems(s->m, 7);
    destroy_mems(s->bm, 5);
    s->prim = s->bwd = NULL;
    memset(s->m, 0, sizeof s->m);
    memset(s->bm, 0, sizeof s->bm);
}

/* The oneDNN primitives. X in a oneDNN layout is read in it when gradients or training are
 * asked for; otherwise, or when oneDNN declines, GR_RETRY_PLAIN asks for plain X. */
static int bn_dnnl_prepare(gr_opctx *c, bn_state *s)
{
    int blocked = c->in[0]->layout != NULL, st;
    int decline = blocked ? GR_RETRY_PLAIN : GRAFT_OK;
    for (int i = 0; i < 5; i++)
        if (c->in[i]->dtype != GR_F32) return decline;
    /* a blocked input stays blocked in inference too (an unfolded BatchNorm after a
     * convolution: graft adapt's and fine-tuning's evaluations); a reorder to plain and back
     * cost more than the normalisation */
    if (c->use_ref || (s->batch_stats && !c->training) || s->N * s->C * s->S == 0) return decline;
    gr_shape xs = c->in[0]->shape, cs = { 1, { s->C } };
    if (blocked) s->xmd = *(const dnnl_memory_desc_t *)c->in[0]->layout;
    else {
        if (xs.rank > 5) xs = (gr_shape){ 3, { s->N, s->C, s->S } };
        if ((st = gr_dnnl_plain_md(&s->xmd, &xs))) return st;
    }
    dnnl_batch_normalization_desc_t desc, hint, bdesc;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (s->batch_stats ? 0 : dnnl_use_global_stats);
    dnnl_prop_kind_t prop = c->training ? dnnl_forward_training : dnnl_forward_inference;
    if (dnnl_batch_normalization_forward_desc_init(&desc, prop, &s->xmd, (float)s->eps, flags) !=
        dnnl_success)
        return decline;
    if ((st = gr_dnnl_make(c, &desc, &s->prim, &s->m[6]))) return st;
    if (!s->prim) return decline;
    for (int i = 0; i < 6 && !st; i++) {
        dnnl_memory_desc_t md;
        if (i >= 2 && (st = gr_dnnl_plain_md(&md, &cs))) return st;
        st = gr_dnnl_check(
            c,
            dnnl_memory_create(&s->m[i], i < 2 ? &s->xmd : &md, c->dnnl->engine, DNNL_MEMORY_NONE),
            "memory");
    }
    if (st) return st;
    if (blocked) gr_dnnl_set_layout(c->out[0], &s->xmd);
    if (!c->need_grad) return GRAFT_OK;
    if (dnnl_batch_normalization_forward_desc_init(&hint, dnnl_forward_training, &s->xmd,
                                                   (float)s->eps, flags) != dnnl_success ||
        dnnl_batch_normalization_backward_desc_init(&bdesc, dnnl_backward, &s->xmd, &s->xmd,
                                                    (float)s->eps, flags) != dnnl_success)
        return decline;
    if ((st = gr_dnnl_make_bwd(c, &hint, &bdesc, &s->bwd, &s->bm[4]))) return st;
    if (!s->bwd) return decline;
    for (int i = 0; i < 4 && !st; i++) {
        dnnl_memory_desc_t md;
        if (i >= 2 && (st = gr_dnnl_plain_md(&md, &cs))) return st;
        st = gr_dnnl_check(
            c,
            dnnl_memory_create(&s->bm[i], i < 2 ? &s->xmd : &md, c->dnnl->engine, DNNL_MEMORY_NONE),
            "memory");
    }
    s->tmp_off = gr_align64(c->scratch_bytes);
    s->dsrc_bytes = c->need_grad & 1 ? 0 : gr_align64(dnnl_memory_desc_get_size(&s->xmd));
    c->scratch_bytes = s->tmp_off + s->dsrc_bytes + 2 * gr_align64((size_t)s->C * sizeof(float));
    return st;
}

static int bn_prepare(gr_opctx *c)
{
    static const char *const attrs[] = { "epsilon", "momentum", "training_mode", "spatial", NULL };
    const gr_tensor *x = c->in[0];
    int st, maxout = c->opset >= 14 ? 3 : 5;
    if ((st = gr_op_check_arity(c, 5, 5, 1, maxout)) || (st = gr_op_check_attrs(c, attrs)) ||
        (st = gr_op_check_dtype(c, 0, float_types)))
        return st;
    if (x->shape.rank < 2)
        return gr_op_err(c, GRAFT_E_SHAPE, "input has rank %d, expected (N, C, D1, ...)",
                         x->shape.rank);
    if (gr_attr_int(c, "spatial", 1) != 1)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "attribute 'spatial' = 0 (per-element statistics of opset 7-8) "
                         "is not supported");
    bn_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->N = x->shape.d[0], s->C = x->shape.d[1];
    s->S = s->N * s->C != 0 ? gr_numel(&x->shape) / (s->N * s->C) : 0;
    s->eps = gr_attr_float(c, "epsilon", 1e-5f);
    s->momentum = gr_attr_float(c, "momentum", 0.9f);
    int64_t tm = gr_attr_int(c, "training_mode", 0);
    if (tm != 0 && tm != 1)
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'training_mode' must be 0 or 1, got %lld",
                         (long long)tm);
    s->batch_stats = tm || c->training;
    s->update = c->training;
    if (c->opset < 14 && c->nout > 1)
        return gr_op_err(
            c, GRAFT_E_UNSUPPORTED,
            "training outputs (mean, var, saved_mean, saved_var) of "
            "BatchNormalization-%d are not supported; export the model in inference mode",
            c->opset < 9 ? 7 : 9);
    if (!s->batch_stats && c->nout > 1)
        return gr_op_err(c, GRAFT_E_FORMAT,
                         "has %d outputs, but running_mean and running_var only exist "
                         "with attribute 'training_mode' = 1",
                         c->nout);
    if (c->training && s->N * s->S == 1)
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "training needs more than 1 value per channel for the batch "
                         "statistics, got X of %lld values over %lld channels",
                         (long long)gr_numel(&x->shape), (long long)s->C);
    if ((st = check_vectors(c, 1, 5, s->C, "C, the channels of X"))) return st;
    if ((st = gr_op_set_out(c, 0, x->dtype, &x->shape))) return st;
    for (int i = 1; i < c->nout && !st; i++)
        st = gr_op_set_out(c, i, c->in[2 + i]->dtype, &c->in[2 + i]->shape);
    if (st) return st;
    if (s->batch_stats && (c->training || c->need_grad)) {
        s->mean = gr_arena_alloc(c->arena, (size_t)(s->C ? s->C : 1) * sizeof(float));
        s->var = gr_arena_alloc(c->arena, (size_t)(s->C ? s->C : 1) * sizeof(float));
        if (!s->mean || !s->var) return GRAFT_E_NOMEM;
    }
    c->scratch_bytes = (size_t)s->C * 4 * sizeof(double);
    st = bn_dnnl_prepare(c, s);
    if (st == GR_RETRY_PLAIN) bn_release(s);
    return st;
}

/* Per-channel mean and population variance of x: (N, C, S). */
static void bn_batch_stats(double *mean, double *var, const gr_tensor *x, int64_t N, int64_t C,
                           int64_t S)
{
#pragma omp parallel for schedule(static)
    for (int64_t ch = 0; ch < C; ch++) {
        double sum = 0, sq = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = (n * C + ch) * S; i < (n * C + ch + 1) * S; i++)
                sum += gr_get_f64(x, i);
        double m = N * S != 0 ? sum / (double)(N * S) : 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = (n * C + ch) * S; i < (n * C + ch + 1) * S; i++)
                sq += (gr_get_f64(x, i) - m) * (gr_get_f64(x, i) - m);
        mean[ch] = m;
        var[ch] = N * S != 0 ? sq / (double)(N * S) : 0;
    }
}

/* The running statistics of channel ch after a batch with mean and population variance var
 * (see the rules above); kept for backward when asked. */
static void bn_running(gr_opctx *c, const bn_state *s, int64_t ch, double mean, double var)
{
    const double m = s->momentum;
    if (s->mean) s->mean[ch] = (float)mean, s->var[ch] = (float)var;
    if (s->update) {
        double n = (double)(s->N * s->S);
        double rm = gr_get_f64(c->in[3], ch) * m + mean * (1 - m),
               rv = gr_get_f64(c->in[4], ch) * m + var * n / (n - 1) * (1 - m);
        gr_set_f64(c->in[3], ch, rm);
        gr_set_f64(c->in[4], ch, rv);
        if (c->nout > 1) gr_set_f64(c->out[1], ch, rm);
        if (c->nout > 2) gr_set_f64(c->out[2], ch, rv);
        return;
    }
    if (c->nout > 1) gr_set_f64(c->out[1], ch, gr_get_f64(c->in[3], ch) * m + mean * (1 - m));
    if (c->nout > 2) gr_set_f64(c->out[2], ch, gr_get_f64(c->in[4], ch) * m + var * (1 - m));
}

/* y = x * a[c] + b[c] with a = scale / sqrt(var + eps), b = B - mean * a. */
static void bn_forward_ref(gr_opctx *c, const bn_state *s)
{
    const gr_tensor *x = c->in[0], *scale = c->in[1], *bias = c->in[2], *in_mean = c->in[3],
                    *in_var = c->in[4];
    double *a = c->scratch, *b = a + s->C, *mean = b + s->C, *var = mean + s->C;
    if (s->batch_stats) {
        bn_batch_stats(mean, var, x, s->N, s->C, s->S);
        for (int64_t ch = 0; ch < s->C; ch++) bn_running(c, s, ch, mean[ch], var[ch]);
    } else
        for (int64_t ch = 0; ch < s->C; ch++)
            mean[ch] = gr_get_f64(in_mean, ch), var[ch] = gr_get_f64(in_var, ch);
    for (int64_t ch = 0; ch < s->C; ch++) {
        a[ch] = gr_get_f64(scale, ch) / sqrt(var[ch] + s->eps);
        b[ch] = gr_get_f64(bias, ch) - mean[ch] * a[ch];
    }
    gr_tensor *y = c->out[0];
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < s->N * s->C; nc++) {
        double ac = a[nc % s->C], bc = b[nc % s->C];
        if (x->dtype == GR_F32) {
            const float *xp = (const float *)x->data + nc * s->S;
            float *yp = (float *)y->data + nc * s->S;
            for (int64_t i = 0; i < s->S; i++) yp[i] = (float)(xp[i] * ac + bc);
        } else
            for (int64_t i = nc * s->S; i < (nc + 1) * s->S; i++)
                gr_set_f64(y, i, gr_get_f64(x, i) * ac + bc);
    }
}

static void bn_forward(gr_opctx *c)
{
    bn_state *s = c->params;
    if (!s->prim) {
        bn_forward_ref(c, s);
        return;
    }
    static const int arg[6] = { DNNL_ARG_SRC,      DNNL_ARG_DST,   DNNL_ARG_MEAN,
                                DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT };
    void *data[6] = { c->in[0]->data, c->out[0]->data, c->in[3]->data,
                      c->in[4]->data, c->in[1]->data,  c->in[2]->data };
    if (s->batch_stats) data[2] = s->mean, data[3] = s->var; /* forward_training writes them */
    dnnl_exec_arg_t args[7];
    for (int i = 0; i < 6; i++) {
        dnnl_memory_set_data_handle(s->m[i], data[i]);
        args[i] = (dnnl_exec_arg_t){ arg[i], s->m[i] };
    }
    run(c, s->prim, s->m[6], args, 6);
    if (s->batch_stats)
        for (int64_t ch = 0; ch < s->C; ch++) bn_running(c, s, ch, s->mean[ch], s->var[ch]);
}

/* Plain X, any float type; per channel in parallel (each channel's sums are its own). */
static void bn_backward_ref(gr_opctx *c, const bn_state *s, const gr_tensor *dy, gr_tensor *dx,
                            gr_tensor *dsc, gr_tensor *dsh)
{
    const gr_tensor *x = c->in[0], *scale = c->in[1];
    const int64_t N = s->N, C = s->C, S = s->S;
    const double n = (double)(N * S);
#pragma omp parallel for schedule(static)
    for (int64_t ch = 0; ch < C; ch++) {
        double mean = s->batch_stats ? s->mean[ch] : gr_get_f64(c->in[3], ch);
        double istd = 1 / sqrt((s->batch_stats ? s->var[ch] : gr_get_f64(c->in[4], ch)) + s->eps);
        double sdy = 0, sdyx = 0;
        for (int64_t b = 0; b < N && dy; b++)
            for (int64_t i = (b * C + ch) * S; i < (b * C + ch + 1) * S; i++) {
                double d = gr_get_f64(dy, i);
                sdy += d;
                sdyx += d * (gr_get_f64(x, i) - mean) * istd;
            }
        if (dsc) gr_set_f64(dsc, ch, sdyx);
        if (dsh) gr_set_f64(dsh, ch, sdy);
        if (!dx) continue;
        double k = gr_get_f64(scale, ch) * istd;
        for (int64_t b = 0; b < N; b++)
            for (int64_t i = (b * C + ch) * S; i < (b * C + ch + 1) * S; i++) {
                double d = dy ? gr_get_f64(dy, i) : 0;
                gr_set_f64(dx, i,
                           s->batch_stats
                               ? k * (d - sdy / n - (gr_get_f64(x, i) - mean) * istd * sdyx / n)
                               : k * d);
            }
    }
}

static void bn_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    bn_state *s = c->params;
    if (!dout[0]) {
        gr_op_zero_grads(c, din);
        return;
    }
    if (!s->bwd) {
        bn_backward_ref(c, s, dout[0], din[0], din[1], din[2]);
        for (int i = 3; i < 5; i++) /* the statistics inputs get no gradient (PyTorch's buffers) */
            if (din[i]) memset(din[i]->data, 0, gr_tensor_bytes(din[i]));
        return;
    }
    char *tmp = (char *)c->scratch + s->tmp_off;
    size_t cb = gr_align64((size_t)s->C * sizeof(float));
    void *data[4] = { dout[0]->data, din[0] ? din[0]->data : tmp,
                      din[1] ? din[1]->data : tmp + s->dsrc_bytes,
                      din[2] ? din[2]->data : tmp + s->dsrc_bytes + cb };
    static const int barg[4] = { DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_SCALE,
                                 DNNL_ARG_DIFF_SHIFT };
    /* oneDNN 2.6 counts SHIFT among backward's inputs when use_shift is set (it is unread) */
    void *fdata[5] = { c->in[0]->data, s->batch_stats ? (void *)s->mean : c->in[3]->data,
                       s->batch_stats ? (void *)s->var : c->in[4]->data, c->in[1]->data,
                       c->in[2]->data };
    static const int fmem[5] = { 0, 2, 3, 4, 5 },
                     farg[5] = { DNNL_ARG_SRC, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE,
                                 DNNL_ARG_SHIFT };
    dnnl_exec_arg_t args[10];
    for (int i = 0; i < 5; i++) {
        dnnl_memory_set_data_handle(s->m[fmem[i]], fdata[i]);
        args[i] = (dnnl_exec_arg_t){ farg[i], s->m[fmem[i]] };
    }
    for (int i = 0; i < 4; i++) {
        dnnl_memory_set_data_handle(s->bm[i], data[i]);
        args[5 + i] = (dnnl_exec_arg_t){ barg[i], s->bm[i] };
    }
    run(c, s->bwd, s->bm[4], args, 9);
    for (int i = 3; i < 5; i++)
        if (din[i]) memset(din[i]->data, 0, gr_tensor_bytes(din[i]));
}

/* ---- LayerNormalization (opset 17) ----
 * Per row of the (rows, cols) view: Y = (X - mean) / sqrt(var + epsilon) * Scale + B, with the
 * optional outputs Mean and InvStdDev of shape (d[0], ..., d[axis-1], 1, ..., 1). Scale and B
 * broadcast to X[axis:].
 * Backward per row, g = dY * Scale, xhat = (X - mean) * inv: dX = inv * (g - mean(g) - xhat *
 * mean(g xhat)), plus what reaches Mean (dMean / cols) and InvStdDev (-dInv inv^2 xhat / cols);
 * dScale = sum over rows of dY xhat, dB = sum of dY (summed onto broadcast elements). oneDNN
 * layer normalization backward for float32 when it ran forward; else the reference. */

typedef struct ln_state {
    dnnl_primitive_t prim; /* first: NULL when the reference kernel runs */
    dnnl_memory_t m[7];    /* src, dst, scale, shift, mean, variance, scratchpad */
    int64_t rows, cols;
    double eps;
    const int64_t *map[2];      /* Scale / B element for each of the cols positions; NULL: itself */
    size_t var_off;             /* oneDNN path: scratch offset of the variance (rows floats) */
    dnnl_primitive_t bwd;       /* oneDNN backward, or NULL: the reference backward */
    dnnl_memory_t bm[5];        /* diff_dst, diff_src, diff_scale, diff_shift, scratchpad */
    float *mean, *var;          /* need_grad with oneDNN: forward's statistics per row */
    size_t tmp_off, dsrc_bytes; /* backward temporaries in scratch, as for BatchNormalization */
} ln_state;

static void ln_release(void *params)
{
    ln_state *s = params;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->bwd) dnnl_primitive_destroy(s->bwd);
    destroy_mems(s->m, 7);
    destroy_mems(s->bm, 5);
}

/* Checks that input i broadcasts to X[axis:] (numpy rules, leading dims 1) and, unless it holds
 * all cols values, builds the map from a normalised position to its element. */
static int ln_broadcast(gr_opctx *c, ln_state *s, int i, int axis, const int64_t **map)
{
    const gr_shape *xs = &c->in[0]->shape, *ws = &c->in[i]->shape;
    int r = xs->rank, off = r - ws->rank;
    int ok = ws->rank <= r;
    for (int k = 0; ok && k < ws->rank; k++)
        ok = ws->d[k] == 1 || (k + off >= axis && ws->d[k] == xs->d[k + off]);
    if (!ok) {
        char a[160], b[160];
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "input %d of shape %s does not broadcast to the normalised axes of "
                         "X %s from axis %d",
                         i, gr_shape_str(ws, a, sizeof a), gr_shape_str(xs, b, sizeof b), axis);
    }
    *map = NULL;
    if (gr_numel(ws) == s->cols) return GRAFT_OK;
    int64_t *m = gr_arena_alloc(c->arena, (size_t)(s->cols ? s->cols : 1) * sizeof *m);
    if (!m) return GRAFT_E_NOMEM;
    for (int64_t j = 0; j < s->cols; j++) {
        int64_t rest = j, idx = 0, stride = 1;
        for (int k = r - 1; k >= axis; k--) {
            int64_t coord = rest % xs->d[k];
            rest /= xs->d[k];
            int wk = k - off;
            if (wk >= 0) {
                if (ws->d[wk] != 1) idx += coord * stride;
                stride *= ws->d[wk];
            }
        }
        m[j] = idx;
    }
    *map = m;
    return GRAFT_OK;
}

static int ln_dnnl_prepare(gr_opctx *c, ln_state *s)
{
    int has_b = c->nin > 2 && c->in[2];
    if (c->use_ref || s->rows * s->cols == 0 || s->map[0] || s->map[1] || c->in[0]->dtype != GR_F32)
        return GRAFT_OK;
    gr_shape xs = { 2, { s->rows, s->cols } }, cs = { 1, { s->cols } }, rs = { 1, { s->rows } };
    dnnl_memory_desc_t md;
    dnnl_layer_normalization_desc_t desc;
    int st, training = c->nout > 1 || c->need_grad;
    unsigned flags = dnnl_use_scale | (has_b ? dnnl_use_shift : 0);
    if ((st = gr_dnnl_plain_md(&md, &xs))) return st;
    if (dnnl_layer_normalization_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference, &md, NULL,
            (float)s->eps, flags) != dnnl_success)
        return GRAFT_OK;
    if ((st = gr_dnnl_make(c, &desc, &s->prim, &s->m[6])) || !s->prim) return st;
    for (int i = 0; i < 6 && !st; i++)
        if ((i != 3 || has_b) && (i < 4 || training))
            st = gr_dnnl_plain_mem(c, &s->m[i], i < 2 ? &xs : i < 4 ? &cs : &rs);
    s->var_off = (c->scratch_bytes + 63) & ~(size_t)63;
    if (training) c->scratch_bytes = s->var_off + (size_t)s->rows * sizeof(float);
    if (st || !c->need_grad) return st;
    s->mean = gr_arena_alloc(c->arena, (size_t)s->rows * sizeof(float));
    s->var = gr_arena_alloc(c->arena, (size_t)s->rows * sizeof(float));
    if (!s->mean || !s->var) return GRAFT_E_NOMEM;
    dnnl_layer_normalization_desc_t bdesc;
    if (dnnl_layer_normalization_backward_desc_init(&bdesc, dnnl_backward, &md, &md, NULL,
                                                    (float)s->eps, flags) != dnnl_success)
        return GRAFT_OK;
    if ((st = gr_dnnl_make_bwd(c, &desc, &bdesc, &s->bwd, &s->bm[4])) || !s->bwd) return st;
    for (int i = 0; i < 4 && !st; i++)
        if (i != 3 || has_b) st = gr_dnnl_plain_mem(c, &s->bm[i], i < 2 ? &xs : &cs);
    s->tmp_off = gr_align64(c->scratch_bytes);
    s->dsrc_bytes = c->need_grad & 1 ? 0 : gr_align64((size_t)(s->rows * s->cols) * sizeof(float));
    c->scratch_bytes = s->tmp_off + s->dsrc_bytes + 2 * gr_align64((size_t)s->cols * sizeof(float));
    return st;
}

static int ln_prepare(gr_opctx *c)
{
    static const char *const attrs[] = { "axis", "epsilon", "stash_type", NULL };
    const gr_tensor *x = c->in[0];
    int st, axis;
    if ((st = gr_op_check_arity(c, 2, 3, 1, 3)) || (st = gr_op_check_attrs(c, attrs)) ||
        (st = gr_op_check_dtype(c, 0, float_types)) ||
        (st = gr_op_axis(c, gr_attr_int(c, "axis", -1), x->shape.rank, &axis)))
        return st;
    int64_t stash = gr_attr_int(c, "stash_type", 1);
    if (stash != 1)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "attribute 'stash_type' = %lld is not supported (only 1, float)",
                         (long long)stash);
    for (int i = 1; i < c->nin; i++)
        if (c->in[i] && c->in[i]->dtype != x->dtype)
            return gr_op_err(c, GRAFT_E_SHAPE, "input %d has type %s, X has %s", i,
                             gr_dtype_name(c->in[i]->dtype), gr_dtype_name(x->dtype));
    ln_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->eps = gr_attr_float(c, "epsilon", 1e-5f);
    s->rows = 1, s->cols = 1;
    gr_shape ms = x->shape;
    for (int k = 0; k < x->shape.rank; k++) {
        if (k < axis) s->rows *= x->shape.d[k];
        else s->cols *= x->shape.d[k], ms.d[k] = 1;
    }
    for (int i = 1; i < c->nin && !st; i++)
        if (c->in[i]) st = ln_broadcast(c, s, i, axis, &s->map[i - 1]);
    if (st || (st = gr_op_set_out(c, 0, x->dtype, &x->shape))) return st;
    for (int i = 1; i < c->nout && !st; i++) st = gr_op_set_out(c, i, GR_F32, &ms);
    if (st) return st;
    if (c->need_grad) { /* the reference backward's row statistics */
        size_t b = (size_t)s->rows * 2 * sizeof(double);
        if (b > c->scratch_bytes) c->scratch_bytes = b;
    }
    return ln_dnnl_prepare(c, s);
}

/* y: (rows, cols), mean/inv: (rows) or NULL, x: (rows, cols), w/b: broadcast per column. */
static void ln_forward_ref(gr_opctx *c, const ln_state *s)
{
    const gr_tensor *x = c->in[0], *w = c->in[1], *b = c->nin > 2 ? c->in[2] : NULL;
    gr_tensor *y = c->out[0];
    const int64_t cols = s->cols;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < s->rows; r++) {
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < cols; j++) sum += gr_get_f64(x, r * cols + j);
        double mean = sum / (double)cols;
        for (int64_t j = 0; j < cols; j++)
            sq += (gr_get_f64(x, r * cols + j) - mean) * (gr_get_f64(x, r * cols + j) - mean);
        double inv = 1 / sqrt(sq / (double)cols + s->eps);
        for (int64_t j = 0; j < cols; j++) {
            double v = (gr_get_f64(x, r * cols + j) - mean) * inv *
                       gr_get_f64(w, s->map[0] ? s->map[0][j] : j);
            if (b) v += gr_get_f64(b, s->map[1] ? s->map[1][j] : j);
            gr_set_f64(y, r * cols + j, v);
        }
        if (c->nout > 1) ((float *)c->out[1]->data)[r] = (float)mean;
        if (c->nout > 2) ((float *)c->out[2]->data)[r] = (float)inv;
    }
}

static void ln_forward(gr_opctx *c)
{
    ln_state *s = c->params;
    if (!s->prim) {
        ln_forward_ref(c, s);
        return;
    }
    float *var = (float *)((char *)c->scratch + s->var_off);
    static const int arg[6] = { DNNL_ARG_SRC,   DNNL_ARG_DST,  DNNL_ARG_SCALE,
                                DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE };
    void *data[6] = { c->in[0]->data,
                      c->out[0]->data,
                      c->in[1]->data,
                      c->nin > 2 && c->in[2] ? c->in[2]->data : NULL,
                      c->nout > 1 ? c->out[1]->data : NULL,
                      var };
    if (s->mean) { /* need_grad: backward reads the statistics from the op state */
        data[4] = s->mean, data[5] = var = s->var;
    }
    dnnl_exec_arg_t args[7];
    int n = 0;
    for (int i = 0; i < 6; i++)
        if (s->m[i]) {
            dnnl_memory_set_data_handle(s->m[i], data[i]);
            args[n++] = (dnnl_exec_arg_t){ arg[i], s->m[i] };
        }
    run(c, s->prim, s->m[6], args, n);
    if (s->mean && c->nout > 1) memcpy(c->out[1]->data, s->mean, (size_t)s->rows * sizeof(float));
    if (c->nout > 2) {
        float *inv = c->out[2]->data;
        for (int64_t r = 0; r < s->rows; r++) inv[r] = (float)(1 / sqrt((double)var[r] + s->eps));
    }
}

/* Reference backward, any float type. Row statistics go to scratch (pass 1, rows in parallel,
 * with dX); dScale and dB are summed over rows in pass 2 (serially: broadcast Scale / B
 * elements collect several columns). */
static void ln_backward_ref(gr_opctx *c, const ln_state *s, gr_tensor *const *dout,
                            gr_tensor *const *din)
{
    const gr_tensor *x = c->in[0], *w = c->in[1], *dy = dout[0];
    const float *dmean = c->nout > 1 && dout[1] ? dout[1]->data : NULL;
    const float *dinv = c->nout > 2 && dout[2] ? dout[2]->data : NULL;
    gr_tensor *dx = din[0], *dw = din[1], *db = c->nin > 2 ? din[2] : NULL;
    const int64_t cols = s->cols;
    double *mu = c->scratch, *iv = mu + s->rows;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < s->rows; r++) {
        const int64_t o = r * cols;
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < cols; j++) sum += gr_get_f64(x, o + j);
        double mean = sum / (double)cols;
        for (int64_t j = 0; j < cols; j++)
            sq += (gr_get_f64(x, o + j) - mean) * (gr_get_f64(x, o + j) - mean);
        double inv = 1 / sqrt(sq / (double)cols + s->eps);
        mu[r] = mean, iv[r] = inv;
        if (!dx) continue;
        double sg = 0, sgx = 0;
        for (int64_t j = 0; j < cols && dy; j++) {
            double g = gr_get_f64(dy, o + j) * gr_get_f64(w, s->map[0] ? s->map[0][j] : j);
            sg += g;
            sgx += g * (gr_get_f64(x, o + j) - mean) * inv;
        }
        double dm = dmean ? dmean[r] : 0, di = dinv ? dinv[r] : 0;
        for (int64_t j = 0; j < cols; j++) {
            double xh = (gr_get_f64(x, o + j) - mean) * inv;
            double g = dy ? gr_get_f64(dy, o + j) * gr_get_f64(w, s->map[0] ? s->map[0][j] : j) : 0;
            gr_set_f64(dx, o + j,
                       inv * (g - sg / (double)cols - xh * sgx / (double)cols) + dm / (double)cols -
                           di * inv * inv * xh / (double)cols);
        }
    }
    gr_tensor *dp[2] = { dw, db };
    for (int k = 0; k < 2; k++) {
        if (!dp[k]) continue;
        memset(dp[k]->data, 0, gr_tensor_bytes(dp[k]));
        if (!dy) continue;
        for (int64_t r = 0; r < s->rows; r++)
            for (int64_t j = 0; j < cols; j++) {
                int64_t e = s->map[k] ? s->map[k][j] : j;
                double d = gr_get_f64(dy, r * cols + j) *
                           (k == 0 ? (gr_get_f64(x, r * cols + j) - mu[r]) * iv[r] : 1);
                gr_set_f64(dp[k], e, gr_get_f64(dp[k], e) + d);
            }
    }
}

static void ln_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    ln_state *s = c->params;
    if (!s->bwd || !dout[0]) {
        ln_backward_ref(c, s, dout, din);
        return;
    }
    int has_b = c->nin > 2 && c->in[2];
    char *tmp = (char *)c->scratch + s->tmp_off;
    size_t cb = gr_align64((size_t)s->cols * sizeof(float));
    /* SHIFT: oneDNN 2.6 counts it among backward's inputs when use_shift is set (unread) */
    static const int arg[9] = { DNNL_ARG_SRC,        DNNL_ARG_MEAN,       DNNL_ARG_VARIANCE,
                                DNNL_ARG_SCALE,      DNNL_ARG_DIFF_DST,   DNNL_ARG_DIFF_SRC,
                                DNNL_ARG_DIFF_SCALE, DNNL_ARG_DIFF_SHIFT, DNNL_ARG_SHIFT };
    dnnl_memory_t mem[9] = { s->m[0],  s->m[4],  s->m[5],  s->m[2], s->bm[0],
                             s->bm[1], s->bm[2], s->bm[3], s->m[3] };
    void *data[9] = { c->in[0]->data,
                      s->mean,
                      s->var,
                      c->in[1]->data,
                      dout[0]->data,
                      din[0] ? din[0]->data : tmp,
                      din[1] ? din[1]->data : tmp + s->dsrc_bytes,
                      has_b && din[2] ? din[2]->data : tmp + s->dsrc_bytes + cb,
                      has_b ? c->in[2]->data : NULL };
    dnnl_exec_arg_t args[10];
    int n = 0;
    for (int i = 0; i < 9; i++)
        if (mem[i]) {
            dnnl_memory_set_data_handle(mem[i], data[i]);
            args[n++] = (dnnl_exec_arg_t){ arg[i], mem[i] };
        }
    run(c, s->bwd, s->bm[4], args, n);
    const float *dmean = c->nout > 1 && dout[1] ? dout[1]->data : NULL;
    const float *dinv = c->nout > 2 && dout[2] ? dout[2]->data : NULL;
    if (!din[0] || (!dmean && !dinv)) return;
    const float *x = c->in[0]->data;
    float *dx = din[0]->data;
    const int64_t cols = s->cols;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < s->rows; r++) {
        double inv = 1 / sqrt((double)s->var[r] + s->eps), dm = dmean ? dmean[r] : 0,
               di = dinv ? dinv[r] : 0;
        for (int64_t j = 0; j < cols; j++)
            dx[r * cols + j] +=
                (float)((dm - di * inv * inv * inv * (x[r * cols + j] - s->mean[r])) /
                        (double)cols);
    }
}

/* ---- InstanceNormalization (opset 6) ----
 * y = scale[c] * (x - mean) / sqrt(var + epsilon) + B[c], statistics per (n, c) over the spatial
 * axes (population variance). Backward (reference only): BatchNormalization's batch-statistics
 * formula per (n, c), the statistics recomputed from X; dScale and dB summed over n. */

typedef struct inorm_state {
    double eps;
    int64_t NC, C, S;
} inorm_state;

static int inorm_prepare(gr_opctx *c)
{
    static const char *const attrs[] = { "epsilon", NULL };
    const gr_tensor *x = c->in[0];
    int st;
    if ((st = gr_op_check_arity(c, 3, 3, 1, 1)) || (st = gr_op_check_attrs(c, attrs)) ||
        (st = gr_op_check_dtype(c, 0, float_types)))
        return st;
    if (x->shape.rank < 3)
        return gr_op_err(c, GRAFT_E_SHAPE, "input has rank %d, expected (N, C, D1, ...)",
                         x->shape.rank);
    inorm_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->eps = gr_attr_float(c, "epsilon", 1e-5f);
    s->C = x->shape.d[1];
    s->NC = x->shape.d[0] * s->C;
    s->S = s->NC ? gr_numel(&x->shape) / s->NC : 0;
    if ((st = check_vectors(c, 1, 3, s->C, "C, the channels of X"))) return st;
    return gr_op_set_out(c, 0, x->dtype, &x->shape);
}

static void inorm_forward(gr_opctx *c)
{
    const inorm_state *s = c->params;
    const gr_tensor *x = c->in[0], *w = c->in[1], *b = c->in[2];
    const int64_t S = s->S;
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < s->NC; nc++) {
        double sum = 0, sq = 0;
        for (int64_t i = nc * S; i < (nc + 1) * S; i++) sum += gr_get_f64(x, i);
        double mean = S ? sum / (double)S : 0;
        for (int64_t i = nc * S; i < (nc + 1) * S; i++)
            sq += (gr_get_f64(x, i) - mean) * (gr_get_f64(x, i) - mean);
        double a = gr_get_f64(w, nc % s->C) / sqrt((S ? sq / (double)S : 0) + s->eps);
        double bc = gr_get_f64(b, nc % s->C) - mean * a;
        for (int64_t i = nc * S; i < (nc + 1) * S; i++)
            gr_set_f64(c->out[0], i, gr_get_f64(x, i) * a + bc);
    }
}

/* Channels in parallel: each (n, c) instance of a channel is handled by one thread. */
static void inorm_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const inorm_state *s = c->params;
    const gr_tensor *x = c->in[0], *w = c->in[1], *dy = dout[0];
    gr_tensor *dx = din[0], *dsc = din[1], *dsh = din[2];
    const int64_t S = s->S, C = s->C, N = C ? s->NC / C : 0;
#pragma omp parallel for schedule(static)
    for (int64_t ch = 0; ch < C; ch++) {
        double tsc = 0, tsh = 0;
        for (int64_t b = 0; b < N; b++) {
            const int64_t o = (b * C + ch) * S;
            double sum = 0, sq = 0, sdy = 0, sdyx = 0;
            for (int64_t i = o; i < o + S; i++) sum += gr_get_f64(x, i);
            double mean = S ? sum / (double)S : 0;
            for (int64_t i = o; i < o + S; i++)
                sq += (gr_get_f64(x, i) - mean) * (gr_get_f64(x, i) - mean);
            double istd = 1 / sqrt((S ? sq / (double)S : 0) + s->eps);
            for (int64_t i = o; i < o + S && dy; i++) {
                sdy += gr_get_f64(dy, i);
                sdyx += gr_get_f64(dy, i) * (gr_get_f64(x, i) - mean) * istd;
            }
            tsc += sdyx, tsh += sdy;
            if (!dx) continue;
            double k = gr_get_f64(w, ch) * istd;
            for (int64_t i = o; i < o + S; i++) {
                double d = dy ? gr_get_f64(dy, i) : 0;
                gr_set_f64(dx, i,
                           k * (d - sdy / (double)S -
                                (gr_get_f64(x, i) - mean) * istd * sdyx / (double)S));
            }
        }
        if (dsc) gr_set_f64(dsc, ch, tsc);
        if (dsh) gr_set_f64(dsh, ch, tsh);
    }
}

/* ---- LRN (opset 13) ----
 * y = x / (bias + alpha / size * sum of x^2 over channels [c - floor((size-1)/2),
 * c + ceil((size-1)/2)]) ^ beta. */

typedef struct lrn_state {
    double alpha, beta, bias;
    int64_t size, N, C, S;
} lrn_state;

static int lrn_prepare(gr_opctx *c)
{
    static const char *const attrs[] = { "alpha", "beta", "bias", "size", NULL };
    const gr_tensor *x = c->in[0];
    int st;
    if ((st = gr_op_check_arity(c, 1, 1, 1, 1)) || (st = gr_op_check_attrs(c, attrs)) ||
        (st = gr_op_check_dtype(c, 0, float_types)))
        return st;
    if (x->shape.rank < 2)
        return gr_op_err(c, GRAFT_E_SHAPE, "input has rank %d, expected (N, C, D1, ...)",
                         x->shape.rank);
    lrn_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->size = gr_attr_int(c, "size", 0);
    if (s->size < 1)
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'size' is required and must be >= 1");
    s->alpha = gr_attr_float(c, "alpha", 1e-4f);
    s->beta = gr_attr_float(c, "beta", 0.75f);
    s->bias = gr_attr_float(c, "bias", 1.0f);
    s->N = x->shape.d[0], s->C = x->shape.d[1];
    s->S = s->N * s->C != 0 ? gr_numel(&x->shape) / (s->N * s->C) : 0;
    return gr_op_set_out(c, 0, x->dtype, &x->shape);
}

static void lrn_forward(gr_opctx *c)
{
    const lrn_state *s = c->params;
    const gr_tensor *x = c->in[0];
    const int64_t C = s->C, S = s->S, before = (s->size - 1) / 2, after = s->size - 1 - before;
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < s->N * C; nc++) {
        int64_t n = nc / C, ch = nc % C;
        int64_t lo = ch - before < 0 ? 0 : ch - before,
                hi = ch + after > C - 1 ? C - 1 : ch + after;
        for (int64_t i = 0; i < S; i++) {
            double sq = 0;
            for (int64_t k = lo; k <= hi; k++) {
                double v = gr_get_f64(x, (n * C + k) * S + i);
                sq += v * v;
            }
            gr_set_f64(c->out[0], nc * S + i,
                       gr_get_f64(x, nc * S + i) /
                           pow(s->bias + s->alpha / (double)s->size * sq, s->beta));
        }
    }
}

/* ---- LpNormalization (opset 1) ----
 * y = x / ||x||_p along one axis (p = 1 or 2); a zero norm gives 0 rather than NaN. */

typedef struct lpn_state {
    int p;
    int64_t outer, A, inner;
} lpn_state;

static int lpn_prepare(gr_opctx *c)
{
    static const char *const attrs[] = { "axis", "p", NULL };
    const gr_tensor *x = c->in[0];
    int st, axis;
    if ((st = gr_op_check_arity(c, 1, 1, 1, 1)) || (st = gr_op_check_attrs(c, attrs)) ||
        (st = gr_op_check_dtype(c, 0, float_types)) ||
        (st = gr_op_axis(c, gr_attr_int(c, "axis", -1), x->shape.rank, &axis)))
        return st;
    lpn_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    int64_t p = gr_attr_int(c, "p", 2);
    if (p != 1 && p != 2)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "attribute 'p' = %lld; only 1 and 2 are defined",
                         (long long)p);
    s->p = (int)p;
    s->outer = 1, s->inner = 1, s->A = x->shape.d[axis];
    for (int k = 0; k < x->shape.rank; k++) {
        if (k < axis) s->outer *= x->shape.d[k];
        if (k > axis) s->inner *= x->shape.d[k];
    }
    return gr_op_set_out(c, 0, x->dtype, &x->shape);
}

static void lpn_forward(gr_opctx *c)
{
    const lpn_state *s = c->params;
    const gr_tensor *x = c->in[0];
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < s->outer; o++)
        for (int64_t i = 0; i < s->inner; i++) {
            int64_t base = o * s->A * s->inner + i;
            double norm = 0;
            for (int64_t a = 0; a < s->A; a++) {
                double v = gr_get_f64(x, base + a * s->inner);
                norm += s->p == 1 ? fabs(v) : v * v;
            }
            if (s->p == 2) norm = sqrt(norm);
            for (int64_t a = 0; a < s->A; a++)
                gr_set_f64(c->out[0], base + a * s->inner,
                           norm ? gr_get_f64(x, base + a * s->inner) / norm : 0);
        }
}

const gr_opdef gr_ops_norm[] = {
    { "BatchNormalization", bn_prepare, bn_forward, bn_release,
      GR_OPF_LAYOUT | GR_OPF_BWD_NO_Y | GR_OPF_RUNNING_STATS, bn_backward, NULL },
    { "LayerNormalization", ln_prepare, ln_forward, ln_release, 0, ln_backward, NULL },
    { "InstanceNormalization", inorm_prepare, inorm_forward, NULL, 0, inorm_backward, NULL },
    { "LRN", lrn_prepare, lrn_forward, NULL, 0, NULL, NULL },
    { "LpNormalization", lpn_prepare, lpn_forward, NULL, 0, NULL, NULL },
    { 0 },
};
