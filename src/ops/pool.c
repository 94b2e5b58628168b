/* pool.c — pooling: MaxPool (with the optional Indices output), AveragePool, LpPool and the
 * global pools (GlobalAveragePool, GlobalMaxPool, GlobalLpPool). Depends on core and oneDNN.
 *
 * Geometry follows the ONNX spec (MaxPool-12, AveragePool-11/19, LpPool-11/18): per spatial axis
 * a kernel k, stride s, dilation d (effective extent ek = (k-1)*d + 1), begin/end pads pb/pe,
 *   out = floor((in + pb + pe - ek) / s) + 1          (ceil with ceil_mode=1),
 * and with ceil_mode a last window that would start in the right padding is dropped, as PyTorch
 * does (`(out-1)*s >= in + pb` → out - 1). auto_pad SAME_* / VALID replace the pads.
 *
 * Kernels: a plain reference kernel for every case (any dtype, 1 to 3 spatial axes), and oneDNN
 * pooling_v2 primitives for float32 max and average pooling. oneDNN has no ceil_mode: it is
 * expressed as extra right padding (pe' so that the floor formula gives the ceil output). With
 * count_include_pad=1 oneDNN divides by the whole kernel, while ONNX/PyTorch count only the
 * positions inside the explicitly padded input; the two differ only when the ceil extension is
 * used, so that case (and LpPool, and the Indices output) runs the reference kernel.
 *
 * Training (need_grad != 0): oneDNN forward_training and a pooling backward made with it as the
 * hint, reading dout and writing din in the output's and the input's layouts; max pooling's
 * workspace lives in the op state. The reference backward routes dY to the window's maximum
 * (found again from the input, as forward finds it) or spreads dY / divisor over the window.
 * LpPool and GlobalLpPool have no backward. */
#include "dnnl_util.h"

#include <math.h>
#include <string.h>

enum { POOL_MAX, POOL_AVG, POOL_LP };

/* Geometry with the spatial axes normalised to three (missing leading axes have size 1). */
typedef struct pool_geom {
    int kind, nsp; /* POOL_*, number of spatial axes (1..3) */
    int64_t N, C;
    int64_t in[3], out[3];    /* (D, H, W) of input and output */
    int64_t k[3], s[3], d[3]; /* kernel, stride, dilation */
    int64_t pb[3], pe[3];     /* begin and end pads (as ONNX gives them) */
    int count_include_pad, storage_order;
    double p; /* LpPool norm order */
} pool_geom;

/* The primitive comes first: tests read it to know which kernel a case runs. */
typedef struct pool_state {
    dnnl_primitive_t prim;        /* NULL: the reference kernel runs */
    dnnl_memory_t src, dst, spad; /* spad NULL if the primitive needs no scratchpad */
    dnnl_memory_desc_t src_md, dst_md;
    pool_geom g;
    /* training with oneDNN (need_grad != 0): the backward primitive, reading dout and writing din
     * in the layouts of the output and the input; max pooling's workspace (where each window's
     * maximum was) lives in the op state, written by forward and read by backward */
    dnnl_primitive_t bwd;
    dnnl_memory_t ws, ddst, dsrc, bspad;
} pool_state;

/* The value MaxPool writes for a window that holds no input element (only padding). */
static double lowest(int dtype) { return dtype == GR_U8 ? 0 : dtype == GR_I8 ? -128 : -INFINITY; }

/* ---- geometry ---- */

/* Output extent and pads of one spatial axis from auto_pad / pads / ceil_mode. */
static int axis_geometry(const gr_opctx *c, const char *auto_pad, int ceil_mode, int64_t in,
                         int64_t k, int64_t s, int64_t d, int64_t *pb, int64_t *pe, int64_t *out)
{
    int64_t ek = (k - 1) * d + 1;
    if (strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0) {
        *out = gr_ceil_div(in, s);
        int64_t total = (*out - 1) * s + ek - in;
        if (total < 0) total = 0;
        int upper = auto_pad[5] == 'U';
        *pb = upper ? total / 2 : total - total / 2;
        *pe = total - *pb;
        return GRAFT_OK;
    }
    if (strcmp(auto_pad, "VALID") == 0) *pb = *pe = 0, ceil_mode = 0; /* the spec's VALID formula */
    else if (strcmp(auto_pad, "NOTSET") != 0)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "auto_pad '%s' is not supported (NOTSET, SAME_UPPER, "
                         "SAME_LOWER or VALID)",
                         auto_pad);
    int64_t span = in + *pb + *pe - ek;
    if (span < 0)
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "kernel extent %lld is larger than the padded input %lld", (long long)ek,
                         (long long)(in + *pb + *pe));
    *out = (ceil_mode ? gr_ceil_div(span, s) : span / s) + 1;
    if (ceil_mode && (*out - 1) * s >= in + *pb) (*out)--; /* window starting in the end pad */
    return GRAFT_OK;
}

/* Parses the attributes of a (non-global) pool into g and sets the output shapes. */
static int pool_geometry(gr_opctx *c, int kind, pool_geom *g)
{
    const gr_tensor *x = c->in[0];
    int rank = x->shape.rank, nsp = rank - 2;
    if (nsp < 1)
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "input has rank %d, expected (N, C, D1, ...) of rank >= 3", rank);
    if (nsp > 3)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "pooling over %d spatial axes; graft supports 1 to 3", nsp);
    int64_t k[6], s[6], d[6], pads[6];
    if (!gr_attr_get(c, "kernel_shape"))
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'kernel_shape' is required");
    int st;
    if ((st = gr_op_ints_attr(c, "kernel_shape", nsp, 1, 1, k)) ||
        (st = gr_op_ints_attr(c, "strides", nsp, 1, 1, s)) ||
        (st = gr_op_ints_attr(c, "dilations", nsp, 1, 1, d)) ||
        (st = gr_op_ints_attr(c, "pads", 2 * nsp, 0, 0, pads)))
        return st;
    const char *auto_pad = gr_attr_str(c, "auto_pad", "NOTSET");
    int64_t ceil_mode = gr_attr_int(c, "ceil_mode", 0);
    if (ceil_mode != 0 && ceil_mode != 1)
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'ceil_mode' must be 0 or 1, got %lld",
                         (long long)ceil_mode);
    if (strcmp(auto_pad, "NOTSET") != 0)
        for (int i = 0; i < 2 * nsp; i++)
            if (pads[i])
                return gr_op_err(c, GRAFT_E_FORMAT,
                                 "attributes 'pads' and 'auto_pad' %s cannot be used together",
                                 auto_pad);
    *g = (pool_geom){ .kind = kind, .nsp = nsp, .N = x->shape.d[0], .C = x->shape.d[1] };
    gr_shape ys = x->shape;
    for (int a = 0; a < 3; a++) {
        int i = a - (3 - nsp); /* index among the node's spatial axes, < 0 for the padding ones */
        g->in[a] = g->out[a] = g->k[a] = g->s[a] = g->d[a] = 1;
        if (i < 0) continue;
        g->in[a] = x->shape.d[2 + i];
        g->k[a] = k[i], g->s[a] = s[i], g->d[a] = d[i];
        g->pb[a] = pads[i], g->pe[a] = pads[nsp + i];
        if ((st = axis_geometry(c, auto_pad, (int)ceil_mode, g->in[a], k[i], s[i], d[i], &g->pb[a],
                                &g->pe[a], &g->out[a])))
            return st;
        ys.d[2 + i] = g->out[a];
    }
    if ((st = gr_op_set_out(c, 0, x->dtype, &ys))) return st;
    return c->nout > 1 ? gr_op_set_out(c, 1, GR_I64, &ys) : GRAFT_OK;
}

/* ---- reference kernel ---- */

/* Range [lo, hi) of kernel taps j whose position start + j*d lies in [0, end). */
static void taps(int64_t start, int64_t d, int64_t k, int64_t end, int64_t *lo, int64_t *hi)
{
    *lo = start < 0 ? gr_ceil_div(-start, d) : 0;
    *hi = start < end ? gr_ceil_div(end - start, d) : 0;
    if (*hi > k) *hi = k;
    if (*hi < *lo) *hi = *lo;
}

/* y: (N, C, OD, OH, OW), ind: same or NULL, x: (N, C, ID, IH, IW), any dtype. Indices are flat
 * positions in x, row-major (storage_order 0) or with the spatial axes column-major (1). */
static void pool_forward_ref(gr_tensor *y, int64_t *ind, const gr_tensor *x, const pool_geom *g)
{
    const int64_t ID = g->in[0], IH = g->in[1], IW = g->in[2];
    const int64_t plane = ID * IH * IW, oplane = g->out[0] * g->out[1] * g->out[2];
    const double empty = lowest(x->dtype);
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < g->N * g->C; nc++)
        for (int64_t o = 0; o < oplane; o++) {
            int64_t oi[3] = { o / (g->out[1] * g->out[2]), o / g->out[2] % g->out[1],
                              o % g->out[2] };
            int64_t start[3], lo[3], hi[3], padded = 1;
            for (int a = 0; a < 3; a++) {
                start[a] = oi[a] * g->s[a] - g->pb[a];
                taps(start[a], g->d[a], g->k[a], g->in[a], &lo[a], &hi[a]);
                /* taps inside the padded input [-pb, in + pe): start >= -pb, so all from j = 0 */
                int64_t phi = gr_ceil_div(g->in[a] + g->pe[a] - start[a], g->d[a]);
                padded *= phi < g->k[a] ? phi : g->k[a];
            }
            double acc = g->kind == POOL_MAX ? empty : 0;
            int64_t n = 0, best[3] = { -1, -1, -1 };
            for (int64_t j0 = lo[0]; j0 < hi[0]; j0++)
                for (int64_t j1 = lo[1]; j1 < hi[1]; j1++)
                    for (int64_t j2 = lo[2]; j2 < hi[2]; j2++) {
                        int64_t i0 = start[0] + j0 * g->d[0], i1 = start[1] + j1 * g->d[1],
                                i2 = start[2] + j2 * g->d[2];
                        double v = gr_get_f64(x, nc * plane + (i0 * IH + i1) * IW + i2);
                        if (g->kind == POOL_MAX) {
                            if (n == 0 || v > acc)
                                acc = v, best[0] = i0, best[1] = i1, best[2] = i2;
                        } else if (g->kind == POOL_AVG) acc += v;
                        else acc += g->p == 1 ? fabs(v) : g->p == 2 ? v * v : pow(fabs(v), g->p);
                        n++;
                    }
            if (g->kind == POOL_AVG) {
                int64_t div = g->count_include_pad ? padded : n;
                acc = div ? acc / (double)div : 0;
            } else if (g->kind == POOL_LP)
                acc = g->p == 1 ? acc : g->p == 2 ? sqrt(acc) : pow(acc, 1.0 / g->p);
            gr_set_f64(y, nc * oplane + o, acc);
            if (ind)
                ind[nc * oplane + o] =
                    best[0] < 0
                        ? -1
                        : nc * plane + (g->storage_order ? best[0] + ID * (best[1] + IH * best[2])
                                                         : (best[0] * IH + best[1]) * IW + best[2]);
        }
}

/* The backward of MaxPool and AveragePool: dx (x's shape and float dtype) from dy, x holding
 * forward's input. MaxPool routes each dy to the window's maximum, found again as forward found
 * it (the first of equal values); AveragePool spreads dy / divisor over the window's taps inside
 * the input. Each (n, c) plane is written by one thread. */
static void pool_backward_ref(gr_tensor *dx, const gr_tensor *dy, const gr_tensor *x,
                              const pool_geom *g)
{
    const int64_t IH = g->in[1], IW = g->in[2];
    const int64_t plane = g->in[0] * IH * IW, oplane = g->out[0] * g->out[1] * g->out[2];
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < g->N * g->C; nc++) {
        for (int64_t i = 0; i < plane; i++) gr_set_f64(dx, nc * plane + i, 0);
        for (int64_t o = 0; o < oplane; o++) {
            int64_t oi[3] = { o / (g->out[1] * g->out[2]), o / g->out[2] % g->out[1],
                              o % g->out[2] };
            int64_t start[3], lo[3], hi[3], padded = 1, n = (int64_t)1, best = -1;
            for (int a = 0; a < 3; a++) {
                start[a] = oi[a] * g->s[a] - g->pb[a];
                taps(start[a], g->d[a], g->k[a], g->in[a], &lo[a], &hi[a]);
                int64_t phi = gr_ceil_div(g->in[a] + g->pe[a] - start[a], g->d[a]);
                padded *= phi < g->k[a] ? phi : g->k[a];
                n *= hi[a] - lo[a];
            }
            double gy = gr_get_f64(dy, nc * oplane + o), acc = 0;
            double share = g->count_include_pad ? (padded ? gy / (double)padded : 0)
                                                : (n ? gy / (double)n : 0);
            for (int64_t j0 = lo[0]; j0 < hi[0]; j0++)
                for (int64_t j1 = lo[1]; j1 < hi[1]; j1++)
                    for (int64_t j2 = lo[2]; j2 < hi[2]; j2++) {
                        int64_t i =
                            nc * plane +
                            ((start[0] + j0 * g->d[0]) * IH + start[1] + j1 * g->d[1]) * IW +
                            start[2] + j2 * g->d[2];
                        if (g->kind == POOL_AVG) {
                            gr_set_f64(dx, i, gr_get_f64(dx, i) + share);
                            continue;
                        }
                        double v = gr_get_f64(x, i);
                        if (best < 0 || v > acc) acc = v, best = i;
                    }
            if (g->kind == POOL_MAX && best >= 0) gr_set_f64(dx, best, gr_get_f64(dx, best) + gy);
        }
    }
}

/* ---- oneDNN ---- */

static void pool_release(void *params)
{
    pool_state *s = params;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->bwd) dnnl_primitive_destroy(s->bwd);
    dnnl_memory_t mems[] = { s->src, s->dst, s->spad, s->ws, s->ddst, s->dsrc, s->bspad };
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
}

/* Destroys the oneDNN objects of s, keeping the geometry: the reference kernels run. */
static void pool_drop(pool_state *s)
{
    pool_release(s);
    pool_geom g = s->g;
    memset(s, 0, sizeof *s);
    s->g = g;
}

/* Training: the workspace forward fills (max pooling) and the backward primitive, hinted by the
 * forward fpd; dout and din keep the output's and the input's layouts. *made 0 when oneDNN has
 * no backward for the case. */
static int pool_train_make(gr_opctx *c, pool_state *s, const dnnl_pooling_v2_desc_t *fwd,
                           const_dnnl_primitive_desc_t fpd, int *made)
{
    dnnl_engine_t eng = c->dnnl->engine;
    dnnl_pooling_v2_desc_t d;
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd = NULL;
    int st;
    *made = 0;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
    size_t wbytes = wmd ? dnnl_memory_desc_get_size(wmd) : 0;
    if (wbytes) {
        void *buf = gr_arena_alloc(c->arena, wbytes);
        if (!buf)
            return gr_op_err(c, GRAFT_E_NOMEM, "out of memory for a %zu-byte pooling workspace",
                             wbytes);
        if ((st = gr_dnnl_check(c, dnnl_memory_create(&s->ws, wmd, eng, buf), "memory"))) return st;
    }
    if (dnnl_pooling_v2_backward_desc_init(&d, fwd->alg_kind, &s->src_md, &s->dst_md, fwd->strides,
                                           fwd->kernel, fwd->dilation, fwd->padding[0],
                                           fwd->padding[1]) != dnnl_success)
        return GRAFT_OK;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return gr_op_err(c, GRAFT_E_NOMEM, "oneDNN attr");
    dnnl_status_t ds = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (ds == dnnl_success) ds = dnnl_primitive_desc_create(&pd, &d, attr, eng, fpd);
    dnnl_primitive_attr_destroy(attr);
    if (ds == dnnl_out_of_memory) return gr_dnnl_check(c, ds, "primitive descriptor");
    if (ds != dnnl_success) return GRAFT_OK;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    st = GRAFT_OK;
    if (sbytes) {
        st = gr_dnnl_check(c, dnnl_memory_create(&s->bspad, smd, eng, DNNL_MEMORY_NONE), "memory");
        if (sbytes > c->scratch_bytes) c->scratch_bytes = sbytes;
    }
    if (!st)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->ddst, &s->dst_md, eng, DNNL_MEMORY_NONE),
                           "memory");
    if (!st)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->dsrc, &s->src_md, eng, DNNL_MEMORY_NONE),
                           "memory");
    if (!st) st = gr_dnnl_check(c, dnnl_primitive_create(&s->bwd, pd), "primitive");
    dnnl_primitive_desc_destroy(pd);
    *made = !st;
    return st;
}

/* Creates the pooling primitive for desc-making function `init`'s parameters, reading the input
 * in the layout it comes in and writing the layout oneDNN prefers when the plan allows layouts.
 * Returns GR_RETRY_PLAIN when the input is in a oneDNN layout but oneDNN declined. */
static int pool_dnnl_make(gr_opctx *c, pool_state *s, dnnl_alg_kind_t alg,
                          const dnnl_dims_t strides, const dnnl_dims_t kernel,
                          const dnnl_dims_t dil, const dnnl_dims_t pl, const dnnl_dims_t pr)
{
    dnnl_pooling_v2_desc_t desc;
    int st;
    if ((st = gr_dnnl_md_of(c->in[0], &s->src_md)) ||
        (st = gr_dnnl_plain_md(&s->dst_md, &c->out[0]->shape)))
        return st;
    if (c->layouts && c->in[0]->layout &&
        dnnl_memory_desc_init_by_tag(&s->dst_md, s->dst_md.ndims, s->dst_md.dims, dnnl_f32,
                                     dnnl_format_tag_any) != dnnl_success)
        return gr_op_err(c, GRAFT_E_INTERNAL, "oneDNN: bad memory descriptor");
    dnnl_prop_kind_t prop = c->need_grad ? dnnl_forward_training : dnnl_forward_inference;
    if (dnnl_pooling_v2_forward_desc_init(&desc, prop, alg, &s->src_md, &s->dst_md, strides, kernel,
                                          dil, pl, pr) != dnnl_success)
        return c->in[0]->layout ? GR_RETRY_PLAIN : GRAFT_OK;
    if ((st = gr_dnnl_make(c, &desc, &s->prim, &s->spad))) return st;
    if (!s->prim) return c->in[0]->layout ? GR_RETRY_PLAIN : GRAFT_OK;
    const_dnnl_primitive_desc_t pd;
    dnnl_primitive_get_primitive_desc(s->prim, &pd);
    s->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    gr_dnnl_set_layout(c->out[0], &s->dst_md);
    st = gr_dnnl_check(
        c, dnnl_memory_create(&s->src, &s->src_md, c->dnnl->engine, DNNL_MEMORY_NONE), "memory");
    if (!st)
        st = gr_dnnl_check(
            c, dnnl_memory_create(&s->dst, &s->dst_md, c->dnnl->engine, DNNL_MEMORY_NONE),
            "memory");
    int made = 1;
    if (!st && c->need_grad) st = pool_train_make(c, s, &desc, pd, &made);
    if (st || made) return st;
    pool_drop(s); /* no oneDNN backward: the reference kernels run, on plain tensors */
    gr_op_set_out(c, 0, c->in[0]->dtype, &c->out[0]->shape);
    return c->in[0]->layout ? GR_RETRY_PLAIN : GRAFT_OK;
}

/* Builds the oneDNN primitive when oneDNN computes exactly what ONNX asks; else leaves prim NULL
 * (or asks for plain inputs, when the input came in a oneDNN layout). */
static int pool_dnnl_prepare(gr_opctx *c, pool_state *s)
{
    const pool_geom *g = &s->g;
    int blocked = c->in[0]->layout != NULL;
    if (c->use_ref || c->in[0]->dtype != GR_F32 || g->kind == POOL_LP || c->nout > 1)
        return blocked ? GR_RETRY_PLAIN : GRAFT_OK;
    dnnl_dims_t strides, kernel, dil, pl, pr;
    int ceil_ext = 0;
    for (int i = 0; i < g->nsp; i++) {
        int a = 3 - g->nsp + i;
        int64_t ek = (g->k[a] - 1) * g->d[a] + 1;
        int64_t need =
            (g->out[a] - 1) * g->s[a] + ek - g->in[a] - g->pb[a];        /* right pad for ceil */
        strides[i] = g->s[a], kernel[i] = g->k[a], dil[i] = g->d[a] - 1; /* oneDNN: 0 = dense */
        pl[i] = g->pb[a];
        pr[i] = need > g->pe[a] ? need : g->pe[a];
        ceil_ext |= need > g->pe[a];
    }
    dnnl_alg_kind_t alg = g->kind == POOL_MAX    ? dnnl_pooling_max
                          : g->count_include_pad ? dnnl_pooling_avg_include_padding
                                                 : dnnl_pooling_avg_exclude_padding;
    if (alg == dnnl_pooling_avg_include_padding && ceil_ext)
        return blocked ? GR_RETRY_PLAIN : GRAFT_OK;
    int st = pool_dnnl_make(c, s, alg, strides, kernel, dil, pl, pr);
    if (st == GR_RETRY_PLAIN) pool_release(s);
    return st;
}

static void pool_forward_dnnl(gr_opctx *c, pool_state *s)
{
    dnnl_memory_set_data_handle(s->src, c->in[0]->data);
    dnnl_memory_set_data_handle(s->dst, c->out[0]->data);
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, s->src }, { DNNL_ARG_DST, s->dst } };
    int n = 2;
    if (s->spad) {
        dnnl_memory_set_data_handle(s->spad, c->scratch);
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, s->spad };
    }
    if (s->ws) args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_WORKSPACE, s->ws };
    dnnl_primitive_execute(s->prim, c->dnnl->stream, n, args);
    dnnl_stream_wait(c->dnnl->stream);
}

static void pool_backward_dnnl(gr_opctx *c, pool_state *s, const gr_tensor *dy, gr_tensor *dx)
{
    dnnl_memory_set_data_handle(s->ddst, dy->data);
    dnnl_memory_set_data_handle(s->dsrc, dx->data);
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_DIFF_DST, s->ddst }, { DNNL_ARG_DIFF_SRC, s->dsrc } };
    int n = 2;
    if (s->bspad) {
        dnnl_memory_set_data_handle(s->bspad, c->scratch);
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, s->bspad };
    }
    if (s->ws) args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_WORKSPACE, s->ws };
    dnnl_primitive_execute(s->bwd, c->dnnl->stream, n, args);
    dnnl_stream_wait(c->dnnl->stream);
}

/* ---- ops ---- */

/* Backward needs a float input (MaxPool also takes 8-bit integers). */
static int check_grad_dtype(gr_opctx *c)
{
    if (!c->need_grad || c->in[0]->dtype == GR_F32 || c->in[0]->dtype == GR_F64) return GRAFT_OK;
    return gr_op_err(c, GRAFT_E_UNSUPPORTED, "cannot compute a gradient for a %s input",
                     gr_dtype_name(c->in[0]->dtype));
}

static const int float_types[] = { GR_F32, GR_F64, 0 };
static const int max_types[] = { GR_F32, GR_F64, GR_U8, GR_I8, 0 };

static int pool_prepare(gr_opctx *c, int kind)
{
    static const char *const max_attrs[] = { "auto_pad",     "ceil_mode", "dilations",
                                             "kernel_shape", "pads",      "storage_order",
                                             "strides",      NULL };
    static const char *const avg_attrs[] = { "auto_pad",          "ceil_mode",
                                             "count_include_pad", "dilations",
                                             "kernel_shape",      "pads",
                                             "strides",           NULL };
    static const char *const lp_attrs[] = { "auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                            "p",        "pads",      "strides",   NULL };
    int st;
    if ((st = gr_op_check_arity(c, 1, 1, 1, kind == POOL_MAX ? 2 : 1)) ||
        (st = gr_op_check_attrs(c, kind == POOL_MAX   ? max_attrs
                                   : kind == POOL_AVG ? avg_attrs
                                                      : lp_attrs)) ||
        (st = gr_op_check_dtype(c, 0, kind == POOL_MAX ? max_types : float_types)))
        return st;
    pool_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    if ((st = pool_geometry(c, kind, &s->g))) return st;
    int64_t v = gr_attr_int(c, kind == POOL_MAX ? "storage_order" : "count_include_pad", 0);
    if (v != 0 && v != 1)
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute '%s' must be 0 or 1, got %lld",
                         kind == POOL_MAX ? "storage_order" : "count_include_pad", (long long)v);
    if (kind == POOL_MAX) s->g.storage_order = (int)v;
    if (kind == POOL_AVG) s->g.count_include_pad = (int)v;
    if (kind == POOL_LP) {
        s->g.p = gr_attr_float(c, "p", 2);
        if (!(s->g.p > 0))
            return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'p' must be positive, got %g", s->g.p);
    }
    if ((st = check_grad_dtype(c))) return st;
    return pool_dnnl_prepare(c, s);
}

static int maxpool_prepare(gr_opctx *c) { return pool_prepare(c, POOL_MAX); }
static int avgpool_prepare(gr_opctx *c) { return pool_prepare(c, POOL_AVG); }
static int lppool_prepare(gr_opctx *c) { return pool_prepare(c, POOL_LP); }

static void pool_forward(gr_opctx *c)
{
    pool_state *s = c->params;
    if (s->prim) pool_forward_dnnl(c, s);
    else pool_forward_ref(c->out[0], c->nout > 1 ? c->out[1]->data : NULL, c->in[0], &s->g);
}

/* No gradient reaches the output (dy NULL): dx is zero. Returns 1 when that settled it. */
static int zero_if_no_dy(const gr_tensor *dy, gr_tensor *dx)
{
    if (dy) return 0;
    memset(dx->data, 0, gr_tensor_bytes(dx));
    return 1;
}

static void pool_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    pool_state *s = c->params;
    if (!din[0] || zero_if_no_dy(dout[0], din[0])) return;
    if (s->bwd) pool_backward_dnnl(c, s, dout[0], din[0]);
    else pool_backward_ref(din[0], dout[0], c->in[0], &s->g);
}

/* ---- global pools: one value per (n, c) over all spatial positions ---- */

typedef struct global_state {
    pool_state pool; /* first: a oneDNN pooling over the whole map, or prim NULL */
    int kind;
    double p;
} global_state;

static int global_prepare(gr_opctx *c, int kind)
{
    static const char *const no_attrs[] = { NULL }, *const lp_attrs[] = { "p", NULL };
    const gr_tensor *x = c->in[0];
    int st;
    if ((st = gr_op_check_arity(c, 1, 1, 1, 1)) ||
        (st = gr_op_check_attrs(c, kind == POOL_LP ? lp_attrs : no_attrs)) ||
        (st = gr_op_check_dtype(c, 0, float_types)))
        return st;
    if (x->shape.rank < 2)
        return gr_op_err(c, GRAFT_E_SHAPE, "input has rank %d, expected (N, C, D1, ...)",
                         x->shape.rank);
    global_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->kind = kind;
    s->p = gr_attr_float(c, "p", 2);
    if (!(s->p > 0))
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'p' must be positive, got %g", s->p);
    gr_shape ys = x->shape;
    for (int i = 2; i < ys.rank; i++) ys.d[i] = 1;
    if ((st = gr_op_set_out(c, 0, x->dtype, &ys)) || (st = check_grad_dtype(c))) return st;
    if (!x->layout) return GRAFT_OK;
    /* a map in a oneDNN layout (after a convolution): pool it there, no conversion */
    if (kind == POOL_LP || x->shape.rank < 3 || x->shape.rank > 5) return GR_RETRY_PLAIN;
    dnnl_dims_t strides, kernel, dil, pads;
    for (int i = 2; i < x->shape.rank; i++)
        strides[i - 2] = 1, kernel[i - 2] = x->shape.d[i], dil[i - 2] = 0, pads[i - 2] = 0;
    st = pool_dnnl_make(c, &s->pool,
                        kind == POOL_MAX ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding,
                        strides, kernel, dil, pads, pads);
    if (st == GR_RETRY_PLAIN) pool_release(&s->pool);
    return st;
}

static int gap_prepare(gr_opctx *c) { return global_prepare(c, POOL_AVG); }
static int gmp_prepare(gr_opctx *c) { return global_prepare(c, POOL_MAX); }
static int glp_prepare(gr_opctx *c) { return global_prepare(c, POOL_LP); }

/* y: (N, C, 1, ...), x: (N, C, D1, ...) */
static void global_forward(gr_opctx *c)
{
    global_state *s = c->params;
    if (s->pool.prim) {
        pool_forward_dnnl(c, &s->pool);
        return;
    }
    const gr_tensor *x = c->in[0];
    int64_t NC = x->shape.d[0] * x->shape.d[1], S = NC ? gr_numel(&x->shape) / NC : 0;
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        double acc = s->kind == POOL_MAX ? -INFINITY : 0;
        for (int64_t i = nc * S; i < (nc + 1) * S; i++) {
            double v = gr_get_f64(x, i);
            if (s->kind == POOL_MAX) acc = i == nc * S || v > acc ? v : acc;
            else acc += s->kind == POOL_AVG ? v : pow(fabs(v), s->p);
        }
        if (s->kind == POOL_AVG) acc = S ? acc / (double)S : 0;
        if (s->kind == POOL_LP) acc = pow(acc, 1.0 / s->p);
        gr_set_f64(c->out[0], nc, acc);
    }
}

/* GlobalAveragePool spreads dy / S over the plane; GlobalMaxPool gives it to the plane's
 * (first) maximum. */
static void global_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    global_state *s = c->params;
    gr_tensor *dx = din[0];
    const gr_tensor *x = c->in[0], *dy = dout[0];
    if (!dx || zero_if_no_dy(dy, dx)) return;
    if (s->pool.bwd) {
        pool_backward_dnnl(c, &s->pool, dy, dx);
        return;
    }
    int64_t NC = x->shape.d[0] * x->shape.d[1], S = NC ? gr_numel(&x->shape) / NC : 0;
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        double gy = gr_get_f64(dy, nc), best = -INFINITY;
        int64_t at = nc * S;
        for (int64_t i = nc * S; i < (nc + 1) * S; i++) {
            if (s->kind == POOL_AVG) {
                gr_set_f64(dx, i, gy / (double)S);
                continue;
            }
            double v = gr_get_f64(x, i);
            if (i == nc * S || v > best) best = v, at = i;
            gr_set_f64(dx, i, 0);
        }
        if (s->kind == POOL_MAX && S) gr_set_f64(dx, at, gy);
    }
}

const gr_opdef gr_ops_pool[] = {
    { "MaxPool", maxpool_prepare, pool_forward, pool_release, GR_OPF_LAYOUT, pool_backward, NULL },
    { "AveragePool", avgpool_prepare, pool_forward, pool_release, GR_OPF_LAYOUT, pool_backward,
      NULL },
    { "LpPool", lppool_prepare, pool_forward, pool_release, GR_OPF_LAYOUT, NULL, NULL },
    { "GlobalAveragePool", gap_prepare, global_forward, pool_release, GR_OPF_LAYOUT,
      global_backward, NULL },
    { "GlobalMaxPool", gmp_prepare, global_forward, pool_release, GR_OPF_LAYOUT, global_backward,
      NULL },
    { "GlobalLpPool", glp_prepare, global_forward, NULL, 0, NULL, NULL },
    { 0 },
};
