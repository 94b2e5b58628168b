/* conv.c — convolutions over 1 to 3 spatial axes: Conv, ConvTranspose and ConvInteger.
 * Depends on core and oneDNN.
 *
 * Geometry follows ONNX Conv-11, ConvTranspose-11 and ConvInteger-10. Per spatial axis: kernel k,
 * stride s, dilation d (extent ek = (k-1)*d + 1), begin/end pads pb/pe,
 *   Conv           out = floor((in + pb + pe - ek) / s) + 1
 *   ConvTranspose  out = s*(in-1) + output_padding + ek - pb - pe
 * auto_pad SAME_UPPER / SAME_LOWER ask for Conv out = ceil(in/s), ConvTranspose out = in*s, the
 * total pad split evenly with the odd one at the end (UPPER) or the beginning (LOWER); VALID
 * means no pads. ConvTranspose's output_shape fixes out and implies the pads (convt_axis).
 *
 * Weights: Conv W is (OC, IC/G, k...), ConvTranspose W is (IC, OC/G, k...), bias B is (OC).
 *
 * Kernels: a plain reference kernel (direct loops, float / double / ConvInteger's int32), and
 * oneDNN convolution and deconvolution primitives for float32. oneDNN reads src/dst in plain
 * NCDHW memory and picks its own weight layout ("any"): constant weights are reordered once in
 * prepare, weights computed at run time are reordered into scratch on every run. oneDNN can
 * express every float32 case (ConvTranspose's grouped (IC, OC/G, k...) weights are giohw, given by
 * strides); when it declines a case (oneDNN 2.6 refuses some ConvTranspose output_shape beyond
 * the full output, i.e. an end pad below -1), the reference kernel runs instead.
 *
 * Fusion: the graph optimizer may add "_fused_act" ("relu", or "clip" with "_fused_min" and
 * "_fused_max") to apply an activation to the output; oneDNN does it as an eltwise post-op.
 *
 * Training (need_grad != 0; inference plans are untouched): the forward primitive is made with
 * forward_training and, from its descriptor as a hint, backward_data (need_grad bit 0 only: never
 * for a first layer fed the image) and backward_weights (bits 1, 2; the bias gradient comes with
 * it). With c->layouts every activation and gradient stays in the layout oneDNN picked (nChw16c);
 * reorders, made in prepare, run only where two layouts differ: the weights into backward_data's
 * layout, the weight gradient back to the plain ONNX layout, and dout/din/the input when a
 * backward primitive reads another layout than the tensor has. Run-time weights are reordered into
 * op state, not scratch, so backward_data reuses forward's copy. If oneDNN lacks a backward
 * primitive the node runs the reference kernels (on plain inputs: GR_RETRY_PLAIN). The reference
 * backward computes dX of a Conv as a ConvTranspose of dY (and the reverse), dW by one
 * correlation kernel, dB by a sum; a fused activation masks dY by its derivative first. */
#include "dnnl_util.h"

#include <math.h>
#include <string.h>

enum { K_CONV, K_CONVT, K_CONVINT };
enum { ACT_NONE, ACT_RELU, ACT_CLIP };

/* Geometry with the spatial axes normalised to three (missing leading axes have size 1). */
typedef struct conv_geom {
    int kind, nsp;            /* K_*, number of spatial axes (1..3) */
    int64_t N, IC, OC, G;     /* batch, input and output channels, groups */
    int64_t in[3], out[3];    /* (D, H, W) of input and output */
    int64_t k[3], s[3], d[3]; /* kernel, stride, dilation */
    int64_t pb[3], pe[3];     /* begin and end pads; ConvTranspose: pe net of output_padding
                                 * (out = s*(in-1) + ek - pb - pe, oneDNN's form), may be < 0 */
    int act;                  /* ACT_*: the fused activation */
    float lo, hi;             /* ACT_CLIP bounds */
} conv_geom;

/* The primitive comes first: tests read it to know which kernel a case runs. */
typedef struct conv_state {
    dnnl_primitive_t prim;                   /* NULL: the reference kernel runs */
    dnnl_memory_t src, wei, bias, dst, spad; /* bias, spad NULL when unused */
    dnnl_primitive_t wreorder; /* ONNX weights -> the primitive's layout; NULL if they match */
    dnnl_memory_t wuser;       /* the ONNX weights, source of wreorder */
    int wconst;                /* the weights were reordered once, in prepare */
    size_t wei_off;            /* offset in scratch of run-time reordered weights */
    dnnl_primitive_t sreorder; /* input layout -> the layout the kernel reads; NULL if they match */
    dnnl_memory_t sin;         /* the input as it comes, source of sreorder */
    size_t src_off;            /* offset in scratch of the reordered input */
    dnnl_memory_desc_t src_md, dst_md; /* the layouts the primitive chose */
    conv_geom g;
    void *wkeep;          /* training: run-time weights reordered here (not scratch), as
                                 * backward_data reads them again after forward */
    struct conv_train *t; /* training with oneDNN: the backward primitives; NULL otherwise */
} conv_state;

/* Bias input (OC), or NULL when absent. ConvInteger has no bias (its input 2 is a zero point). */
static const gr_tensor *bias_of(const gr_opctx *c, const conv_geom *g)
{
    return g->kind != K_CONVINT && c->nin > 2 ? c->in[2] : NULL;
}

/* ---- geometry ---- */

static int is_same(const char *auto_pad)
{
    return !strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER");
}

/* Conv: output extent and pads of one spatial axis. */
static int conv_axis(const gr_opctx *c, const char *auto_pad, int64_t in, int64_t ek, int64_t s,
                     int64_t *pb, int64_t *pe, int64_t *out)
{
    if (is_same(auto_pad)) {
        *out = gr_ceil_div(in, s);
        int64_t total = (*out - 1) * s + ek - in;
        if (total < 0) total = 0;
        *pb = auto_pad[5] == 'U' ? total / 2 : total - total / 2;
        *pe = total - *pb;
        return GRAFT_OK;
    }
    if (!strcmp(auto_pad, "VALID")) *pb = *pe = 0;
    int64_t span = in + *pb + *pe - ek;
    if (span < 0)
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "kernel extent %lld is larger than the padded input %lld", (long long)ek,
                         (long long)(in + *pb + *pe));
    *out = span / s + 1;
    return GRAFT_OK;
}

/* ConvTranspose: output extent and pads of one spatial axis; op is output_padding, want the
 * output_shape entry (-1: none). With output_shape or SAME_*, the pads come from the total
 *   total = s*(in-1) + op + ek - out
 * split as ConvTranspose-11 says: the smaller half first for SAME_UPPER, else the larger half
 * first. ConvTranspose-1 said the reverse (the smaller half first unless SAME_UPPER). A negative
 * total (out beyond the full extent) is taken as 0, as onnxruntime does: the extra outputs at the
 * end see no input and hold the bias. */
static void convt_axis(int opset, const char *auto_pad, int64_t in, int64_t ek, int64_t s,
                       int64_t op, int64_t want, int64_t *pb, int64_t *pe, int64_t *out)
{
    int64_t full = s * (in - 1) + op + ek;
    if (want >= 0 || is_same(auto_pad)) {
        *out = want >= 0 ? want : in * s;
        int64_t total = full - *out;
        if (total < 0) total = 0;
        int small_first = (opset >= 11) == !strcmp(auto_pad, "SAME_UPPER");
        *pb = small_first ? total / 2 : total - total / 2;
    } else {
        if (!strcmp(auto_pad, "VALID")) *pb = *pe = 0;
        *out = full - *pb - *pe;
    }
    *pe = full - op - *pb - *out;
}

/* Reads the optional fused activation the graph optimizer adds. */
static int parse_act(const gr_opctx *c, conv_geom *g)
{
    const gr_attr *a = gr_attr_get(c, "_fused_act");
    if (!a) return GRAFT_OK;
    if (a->type == GR_AT_STRING && !strcmp(a->s, "relu")) g->act = ACT_RELU;
    else if (a->type == GR_AT_STRING && !strcmp(a->s, "clip")) {
        g->act = ACT_CLIP;
        g->lo = gr_attr_float(c, "_fused_min", -INFINITY);
        g->hi = gr_attr_float(c, "_fused_max", INFINITY);
    } else
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "attribute '_fused_act' must be \"relu\" or \"clip\", got %s%s%s",
                         a->type == GR_AT_STRING ? "\"" : "",
                         a->type == GR_AT_STRING ? a->s : "a non-string",
                         a->type == GR_AT_STRING ? "\"" : "");
    return GRAFT_OK;
}

/* Channels and groups from X (N, C, ...) and W. */
static int channels(const gr_opctx *c, conv_geom *g)
{
    const gr_shape *xs = &c->in[0]->shape, *ws = &c->in[1]->shape;
    char a[128], b[128];
    if (ws->rank != xs->rank)
        return gr_op_err(c, GRAFT_E_SHAPE, "weight %s must have the rank of the input %s",
                         gr_shape_str(ws, a, sizeof a), gr_shape_str(xs, b, sizeof b));
    g->G = gr_attr_int(c, "group", 1);
    if (g->G < 1)
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'group' must be >= 1, got %lld",
                         (long long)g->G);
    g->N = xs->d[0];
    g->IC = xs->d[1];
    int ok;
    if (g->kind == K_CONVT) { /* W (IC, OC/G, k...) */
        g->OC = ws->d[1] * g->G;
        ok = ws->d[0] == g->IC && g->IC % g->G == 0;
    } else { /* W (OC, IC/G, k...) */
        g->OC = ws->d[0];
        ok = ws->d[1] * g->G == g->IC && g->OC % g->G == 0;
    }
    if (!ok)
        return gr_op_err(
            c, GRAFT_E_SHAPE, "weight %s does not fit input %s with group %lld (W must be %s)",
            gr_shape_str(ws, a, sizeof a), gr_shape_str(xs, b, sizeof b), (long long)g->G,
            g->kind == K_CONVT ? "(C, M/group, k...)" : "(M, C/group, k...), M divisible by group");
    return GRAFT_OK;
}

/* Parses the attributes into g and sets the output shape (dtype ydtype). */
static int conv_geometry(gr_opctx *c, int kind, int ydtype, conv_geom *g)
{
    const gr_tensor *x = c->in[0], *w = c->in[1];
    int rank = x->shape.rank, nsp = rank - 2, st;
    if (nsp < 1)
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "input has rank %d, expected (N, C, D1, ...) of rank >= 3", rank);
    if (nsp > 3)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "convolution over %d spatial axes; graft supports 1 to 3", nsp);
    *g = (conv_geom){ .kind = kind, .nsp = nsp };
    if ((st = channels(c, g)) || (st = parse_act(c, g))) return st;
    int64_t k[6], s[6], d[6], pads[6], op[6], os[8];
    if ((st = gr_op_ints_attr(c, "kernel_shape", nsp, 1, 1, k)) ||
        (st = gr_op_ints_attr(c, "strides", nsp, 1, 1, s)) ||
        (st = gr_op_ints_attr(c, "dilations", nsp, 1, 1, d)) ||
        (st = gr_op_ints_attr(c, "pads", 2 * nsp, 0, 0, pads)) ||
        (st = gr_op_ints_attr(c, "output_padding", nsp, 0, 0, op)))
        return st;
    for (int i = 0; i < nsp; i++) /* kernel_shape is optional, but must agree with W */
        if (gr_attr_get(c, "kernel_shape") && k[i] != w->shape.d[2 + i])
            return gr_op_err(
                c, GRAFT_E_SHAPE,
                "attribute 'kernel_shape' [%d] = %lld does not match the weight's %lld", i,
                (long long)k[i], (long long)w->shape.d[2 + i]);
    int nos = gr_attr_ints(c, "output_shape", os, 8);
    if (nos >= 0 && nos != nsp && nos != nsp + 2)
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'output_shape' has %d values, expected %d",
                         nos, nsp);
    for (int i = 0; i < nos && i < 8; i++)
        if (os[i] < 1 || os[i] > (int64_t)1 << 32)
            return gr_op_err(c, GRAFT_E_FORMAT,
                             "attribute 'output_shape' has value %lld, must be in [1, 2^32]",
                             (long long)os[i]);
    const char *auto_pad = gr_attr_str(c, "auto_pad", "NOTSET");
    if (strcmp(auto_pad, "NOTSET") && strcmp(auto_pad, "VALID") && !is_same(auto_pad))
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "auto_pad '%s' is not supported (NOTSET, SAME_UPPER, SAME_LOWER or VALID)",
                         auto_pad);
    gr_shape ys = x->shape;
    ys.d[1] = g->OC;
    for (int a = 0; a < 3; a++) {
        int i = a - (3 - nsp); /* index among the node's spatial axes, < 0 for the padding ones */
        g->in[a] = g->out[a] = g->k[a] = g->s[a] = g->d[a] = 1;
        if (i < 0) continue;
        g->in[a] = x->shape.d[2 + i];
        g->k[a] = w->shape.d[2 + i], g->s[a] = s[i], g->d[a] = d[i];
        g->pb[a] = pads[i], g->pe[a] = pads[nsp + i];
        int64_t ek = (g->k[a] - 1) * d[i] + 1;
        if (kind == K_CONVT)
            convt_axis(c->opset, auto_pad, g->in[a], ek, s[i], op[i],
                       nos < 0 ? -1 : os[nos - nsp + i], &g->pb[a], &g->pe[a], &g->out[a]);
        else if ((st =
                      conv_axis(c, auto_pad, g->in[a], ek, s[i], &g->pb[a], &g->pe[a], &g->out[a])))
            return st;
        if (g->out[a] < 1)
            return gr_op_err(c, GRAFT_E_SHAPE, "spatial axis %d of the output would have size %lld",
                             i, (long long)g->out[a]);
        ys.d[2 + i] = g->out[a];
    }
    return gr_op_set_out(c, 0, ydtype, &ys);
}

/* Multiply-adds x 2. Conv: every output element sums IC/G x kernel products; ConvTranspose:
 * every input element meets OC/G x kernel weights. */
static int64_t conv_flops(const conv_geom *g)
{
    int64_t ks = g->k[0] * g->k[1] * g->k[2];
    if (g->kind == K_CONVT)
        return 2 * g->N * g->IC * g->in[0] * g->in[1] * g->in[2] * (g->OC / g->G) * ks;
    return 2 * g->N * g->OC * g->out[0] * g->out[1] * g->out[2] * (g->IC / g->G) * ks;
}

/* ---- reference kernels ---- */

static double act_apply(const conv_geom *g, double v)
{
    if (g->act == ACT_RELU) return v < 0 ? 0 : v; /* keeps NaN, as max(x, 0) in ONNX Relu */
    if (g->act == ACT_CLIP) {                     /* min(max(v, lo), hi), as ONNX Clip */
        if (v < g->lo) v = g->lo;
        if (v > g->hi) v = g->hi;
    }
    return v;
}

/* Conv: y (N, OC, OD, OH, OW), x (N, IC, ID, IH, IW), w (OC, IC/G, KD, KH, KW), b (OC) or NULL.
 * Each output is a direct sum over its group's input channels and the kernel taps that land
 * inside the input (taps in the padding add zero). T is the element type, ACC the accumulator. */
#define CONV_REF(NAME, T, ACC)                                                                     \
    static void NAME(T *y, const T *x, const T *w, const T *b, const conv_geom *g)                 \
    {                                                                                              \
        const int64_t ICg = g->IC / g->G, OCg = g->OC / g->G, IH = g->in[1], IW = g->in[2];        \
        const int64_t KH = g->k[1], KW = g->k[2], OH = g->out[1], OW = g->out[2];                  \
        const int64_t ip = g->in[0] * IH * IW, op = g->out[0] * OH * OW, ks = g->k[0] * KH * KW;   \
        _Pragma("omp parallel for schedule(static)") for (int64_t no = 0; no < g->N * g->OC; no++) \
        {                                                                                          \
            const int64_t n = no / g->OC, oc = no % g->OC;                                         \
            const T *xg = x + (n * g->IC + oc / OCg * ICg) * ip, *wo = w + oc * ICg * ks;          \
            for (int64_t o = 0; o < op; o++) {                                                     \
                const int64_t o0 = o / (OH * OW), o1 = o / OW % OH, o2 = o % OW;                   \
                ACC acc = b ? (ACC)b[oc] : 0;                                                      \
                for (int64_t j0 = 0; j0 < g->k[0]; j0++) {                                         \
                    const int64_t i0 = o0 * g->s[0] - g->pb[0] + j0 * g->d[0];                     \
                    if (i0 < 0 || i0 >= g->in[0]) continue;                                        \
                    for (int64_t j1 = 0; j1 < KH; j1++) {                                          \
                        const int64_t i1 = o1 * g->s[1] - g->pb[1] + j1 * g->d[1];                 \
                        if (i1 < 0 || i1 >= IH) continue;                                          \
                        for (int64_t j2 = 0; j2 < KW; j2++) {                                      \
                            const int64_t i2 = o2 * g->s[2] - g->pb[2] + j2 * g->d[2];             \
                            if (i2 < 0 || i2 >= IW) continue;                                      \
                            const T *xp = xg + (i0 * IH + i1) * IW + i2,                           \
                                    *wp = wo + (j0 * KH + j1) * KW + j2;                           \
                            for (int64_t ic = 0; ic < ICg; ic++)                                   \
                                acc += (ACC)xp[ic * ip] * (ACC)wp[ic * ks];                        \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                y[no * op + o] = (T)(g->act ? act_apply(g, (double)acc) : acc);                    \
            }                                                                                      \
        }                                                                                          \
    }

/* ConvTranspose, as a gather so that each (n, oc) writes only its own plane:
 * y (N, OC, OD, OH, OW), x (N, IC, ID, IH, IW), w (IC, OC/G, KD, KH, KW), b (OC) or NULL.
 * Input position i meets output position o through tap j when o + pb = i*s + j*d. */
#define CONVT_REF(NAME, T, ACC)                                                                    \
    static void NAME(T *y, const T *x, const T *w, const T *b, const conv_geom *g)                 \
    {                                                                                              \
        const int64_t ICg = g->IC / g->G, OCg = g->OC / g->G, IH = g->in[1], IW = g->in[2];        \
        const int64_t KH = g->k[1], KW = g->k[2], OH = g->out[1], OW = g->out[2];                  \
        const int64_t ip = g->in[0] * IH * IW, op = g->out[0] * OH * OW, ks = g->k[0] * KH * KW;   \
        _Pragma("omp parallel for schedule(static)") for (int64_t no = 0; no < g->N * g->OC; no++) \
        {                                                                                          \
            const int64_t n = no / g->OC, oc = no % g->OC, grp = oc / OCg;                         \
            const T *xg = x + (n * g->IC + grp * ICg) * ip,                                        \
                    *wg = w + (grp * ICg * OCg + oc % OCg) * ks;                                   \
            for (int64_t o = 0; o < op; o++) {                                                     \
                const int64_t o0 = o / (OH * OW), o1 = o / OW % OH, o2 = o % OW;                   \
                ACC acc = b ? (ACC)b[oc] : 0;                                                      \
                for (int64_t j0 = 0; j0 < g->k[0]; j0++) {                                         \
                    const int64_t q0 = o0 + g->pb[0] - j0 * g->d[0], i0 = q0 / g->s[0];            \
                    if (q0 < 0 || q0 % g->s[0] || i0 >= g->in[0]) continue;                        \
                    for (int64_t j1 = 0; j1 < KH; j1++) {                                          \
                        const int64_t q1 = o1 + g->pb[1] - j1 * g->d[1], i1 = q1 / g->s[1];        \
                        if (q1 < 0 || q1 % g->s[1] || i1 >= IH) continue;                          \
                        for (int64_t j2 = 0; j2 < KW; j2++) {                                      \
                            const int64_t q2 = o2 + g->pb[2] - j2 * g->d[2], i2 = q2 / g->s[2];    \
                            if (q2 < 0 || q2 % g->s[2] || i2 >= IW) continue;                      \
                            const T *xp = xg + (i0 * IH + i1) * IW + i2,                           \
                                    *wp = wg + (j0 * KH + j1) * KW + j2;                           \
                            for (int64_t ic = 0; ic < ICg; ic++)                                   \
                                acc += (ACC)xp[ic * ip] * (ACC)wp[ic * OCg * ks];                  \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                y[no * op + o] = (T)(g->act ? act_apply(g, (double)acc) : acc);                    \
            }                                                                                      \
        }                                                                                          \
    }

CONV_REF(conv_ref_f32, float, double)
CONV_REF(conv_ref_f64, double, double)
CONV_REF(conv_ref_i32, int32_t, int64_t)
CONVT_REF(convt_ref_f32, float, double)
CONVT_REF(convt_ref_f64, double, double)

/* ---- reference backward ----
 * The input gradient of a Conv is a ConvTranspose of dy with the same weights and geometry, and
 * the reverse (swap_geom swaps the roles); the weight gradient of both is one correlation
 * (DW_REF); the bias gradient sums dy over the batch and the positions. */

static conv_geom swap_geom(const conv_geom *g)
{
    conv_geom t = *g;
    t.kind = g->kind == K_CONVT ? K_CONV : K_CONVT;
    t.IC = g->OC, t.OC = g->IC, t.act = ACT_NONE;
    for (int a = 0; a < 3; a++) t.in[a] = g->out[a], t.out[a] = g->in[a];
    return t;
}

/* dw[a, b, j] = sum over n and positions p of P[n, a, p] * Q[n, (a / Ag) * B + b, p*s - pb + j*d]:
 * Conv has P = dy (A = OC), Q = x (B = IC/G); ConvTranspose has P = x (A = IC), Q = dy (B = OC/G).
 * Each (a, b) writes only its own kernel taps. */
typedef struct dw_geom {
    int64_t A, Ag, B, QC; /* channels of P, of P per group, of the weight's second axis, of Q */
    int64_t pn[3], qn[3]; /* spatial extents of P and Q */
} dw_geom;

#define DW_REF(NAME, T)                                                                            \
    static void NAME(T *dw, const T *P, const T *Q, const dw_geom *h, const conv_geom *g)          \
    {                                                                                              \
        const int64_t K1 = g->k[1], K2 = g->k[2], ks = g->k[0] * K1 * K2;                          \
        const int64_t P1 = h->pn[1], P2 = h->pn[2], pp = h->pn[0] * P1 * P2;                       \
        const int64_t Q1 = h->qn[1], Q2 = h->qn[2], qp = h->qn[0] * Q1 * Q2;                       \
        _Pragma("omp parallel for schedule(static)") for (int64_t ab = 0; ab < h->A * h->B; ab++)  \
        {                                                                                          \
            const int64_t a = ab / h->B, qc = a / h->Ag * h->B + ab % h->B;                        \
            for (int64_t j = 0; j < ks; j++) {                                                     \
                const int64_t j0 = j / (K1 * K2), j1 = j / K2 % K1, j2 = j % K2;                   \
                double acc = 0;                                                                    \
                for (int64_t n = 0; n < g->N; n++) {                                               \
                    const T *pa = P + (n * h->A + a) * pp, *qb = Q + (n * h->QC + qc) * qp;        \
                    for (int64_t p = 0; p < pp; p++) {                                             \
                        const int64_t q0 = p / (P1 * P2) * g->s[0] - g->pb[0] + j0 * g->d[0];      \
                        const int64_t q1 = p / P2 % P1 * g->s[1] - g->pb[1] + j1 * g->d[1];        \
                        const int64_t q2 = p % P2 * g->s[2] - g->pb[2] + j2 * g->d[2];             \
                        if (q0 < 0 || q0 >= h->qn[0] || q1 < 0 || q1 >= Q1 || q2 < 0 || q2 >= Q2)  \
                            continue;                                                              \
                        acc += (double)pa[p] * qb[(q0 * Q1 + q1) * Q2 + q2];                       \
                    }                                                                              \
                }                                                                                  \
                dw[ab * ks + j] = (T)acc;                                                          \
            }                                                                                      \
        }                                                                                          \
    }

/* db[oc] = sum of dy[n, oc, ...] */
#define DB_REF(NAME, T)                                                                            \
    static void NAME(T *db, const T *dy, const conv_geom *g)                                       \
    {                                                                                              \
        const int64_t op = g->out[0] * g->out[1] * g->out[2];                                      \
        for (int64_t oc = 0; oc < g->OC; oc++) {                                                   \
            double acc = 0;                                                                        \
            for (int64_t n = 0; n < g->N; n++)                                                     \
                for (int64_t o = 0; o < op; o++) acc += dy[(n * g->OC + oc) * op + o];             \
            db[oc] = (T)acc;                                                                       \
        }                                                                                          \
    }

DW_REF(dw_ref_f32, float)
DW_REF(dw_ref_f64, double)
DB_REF(db_ref_f32, float)
DB_REF(db_ref_f64, double)

/* dy times the derivative of the fused activation, read from its output y (relu: y > 0, clip:
 * lo < y < hi), into m; n elements of y's dtype (f32 or f64). */
static void act_mask(const conv_geom *g, int dtype, void *m, const void *dy, const void *y,
                     int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double v = dtype == GR_F32 ? ((const float *)y)[i] : ((const double *)y)[i];
        int pass = g->act == ACT_RELU ? v > 0 : v > g->lo && v < g->hi;
        if (dtype == GR_F32) ((float *)m)[i] = pass ? ((const float *)dy)[i] : 0;
        else ((double *)m)[i] = pass ? ((const double *)dy)[i] : 0;
    }
}

static void conv_backward_ref(gr_opctx *c, const conv_geom *g, const void *dy,
                              gr_tensor *const *din)
{
    const gr_tensor *x = c->in[0], *w = c->in[1];
    int f32 = x->dtype == GR_F32, convt = g->kind == K_CONVT;
    if (din[0]) {
        conv_geom t = swap_geom(g);
        if (f32) (convt ? conv_ref_f32 : convt_ref_f32)(din[0]->data, dy, w->data, NULL, &t);
        else (convt ? conv_ref_f64 : convt_ref_f64)(din[0]->data, dy, w->data, NULL, &t);
    }
    if (din[1]) {
        dw_geom h = { .A = convt ? g->IC : g->OC,
                      .Ag = (convt ? g->IC : g->OC) / g->G,
                      .B = (convt ? g->OC : g->IC) / g->G,
                      .QC = convt ? g->OC : g->IC };
        for (int a = 0; a < 3; a++)
            h.pn[a] = convt ? g->in[a] : g->out[a], h.qn[a] = convt ? g->out[a] : g->in[a];
        const void *P = convt ? x->data : dy, *Q = convt ? dy : x->data;
        if (f32) dw_ref_f32(din[1]->data, P, Q, &h, g);
        else dw_ref_f64(din[1]->data, P, Q, &h, g);
    }
    if (c->nin > 2 && din[2]) {
        if (f32) db_ref_f32(din[2]->data, dy, g);
        else db_ref_f64(din[2]->data, dy, g);
    }
}

/* ---- oneDNN ---- */

/* A primitive and its execution arguments: memories are made in prepare from the primitive's own
 * descriptors, their handles set before each run. */
typedef struct dprim {
    dnnl_primitive_t p; /* NULL: not used */
    int n;
    int arg[6];
    dnnl_memory_t mem[6];
} dprim;

/* Training with oneDNN: the backward primitives and the reorders around them. The offsets are
 * into scratch after `base` (the larger backward scratchpad sits at its start). */
typedef struct conv_train {
    dprim bdata, bwei; /* backward_data (need_grad bit 0); backward_weights (bits 1, 2) */
    dprim wb;          /* ONNX weights -> backward_data's layout, if not forward's */
    dprim dyd, dyw;    /* dout (forward's dst layout) -> each backward's diff_dst layout */
    dprim xw;          /* the input as it comes -> backward_weights' src layout */
    dprim dx;          /* backward_data's diff_src -> din[0]'s layout (in[0]'s) */
    dprim dw;          /* backward_weights' diff_weights -> the ONNX weight layout */
    size_t base, top;  /* scratch: [scratchpad][buffers from base, top bytes] */
    size_t off_act, off_wb, off_dyd, off_dyw, off_xw, off_dx, off_dw;
} conv_train;

static void dprim_free(dprim *d)
{
    if (d->p) dnnl_primitive_destroy(d->p);
    for (int i = 0; i < d->n; i++) dnnl_memory_destroy(d->mem[i]);
    memset(d, 0, sizeof *d);
}

static void conv_release(void *params)
{
    conv_state *s = params;
    if (s->t) {
        dprim *ds[] = { &s->t->bdata, &s->t->bwei, &s->t->wb, &s->t->dyd,
                        &s->t->dyw,   &s->t->xw,   &s->t->dx, &s->t->dw };
        for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) dprim_free(ds[i]);
    }
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->wreorder) dnnl_primitive_destroy(s->wreorder);
    if (s->sreorder) dnnl_primitive_destroy(s->sreorder);
    dnnl_memory_t *mems[] = { &s->src, &s->wei, &s->bias, &s->dst, &s->spad, &s->wuser, &s->sin };
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (*mems[i]) dnnl_memory_destroy(*mems[i]);
}

/* The weights as oneDNN sees them, logical dims (OC, IC, k...) or, with groups,
 * (G, OC/G, IC/G, k...): wany in format "any" for the primitive to choose, wuser with the strides
 * of the ONNX tensor. Conv's W (OC, IC/G, k...) is already in that order (goihw); ConvTranspose's
 * W (IC, OC/G, k...) = (G, IC/G, OC/G, k...) is giohw: the same dims with the OC and IC strides
 * swapped. */
static int weights_mds(const gr_opctx *c, const conv_geom *g, dnnl_memory_desc_t *wany,
                       dnnl_memory_desc_t *wuser)
{
    int grouped = g->G > 1, nd = 0;
    const int64_t OCg = g->OC / g->G, ICg = g->IC / g->G;
    dnnl_dims_t dims, strides;
    if (grouped) dims[nd++] = g->G;
    dims[nd++] = OCg;
    dims[nd++] = ICg;
    for (int i = 0; i < g->nsp; i++) dims[nd++] = g->k[3 - g->nsp + i];
    int64_t ks = 1;
    for (int i = nd - 1; i >= nd - g->nsp; i--) strides[i] = ks, ks *= dims[i];
    int o = grouped, ii = grouped + 1; /* positions of the OC and IC dims */
    strides[o] = g->kind == K_CONVT ? ks : ICg * ks;
    strides[ii] = g->kind == K_CONVT ? OCg * ks : ks;
    if (grouped) strides[0] = OCg * ICg * ks;
    if (dnnl_memory_desc_init_by_strides(wuser, nd, dims, dnnl_f32, strides) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(wany, nd, dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
        return gr_op_err(c, GRAFT_E_INTERNAL, "oneDNN: bad weight descriptor");
    return GRAFT_OK;
}

/* Primitive descriptor for op_desc with a user scratchpad and the fused activation of g (if any,
 * g NULL: none) as a post-op; hint is the forward's descriptor for a backward one, else NULL.
 * *pd NULL (and GRAFT_OK) when oneDNN has no implementation for it. */
static int make_pd(const gr_opctx *c, const conv_geom *g, const void *op_desc,
                   const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd)
{
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t ops = NULL;
    *pd = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return gr_op_err(c, GRAFT_E_NOMEM, "oneDNN attr");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && g && g->act) {
        st = dnnl_post_ops_create(&ops);
        /* clip is max(alpha, min(beta, x)); alpha <= beta keeps ONNX's min(max(x, lo), hi) */
        float alpha = g->act == ACT_CLIP ? fminf(g->lo, g->hi) : 0,
              beta = g->act == ACT_CLIP ? g->hi : 0;
        if (st == dnnl_success)
            st = dnnl_post_ops_append_eltwise(
                ops, 1.0f, g->act == ACT_RELU ? dnnl_eltwise_relu : dnnl_eltwise_clip, alpha, beta);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    if (st == dnnl_success) {
        st = dnnl_primitive_desc_create(pd, op_desc, attr, c->dnnl->engine, hint);
        if (st != dnnl_success) *pd = NULL;
        if (st != dnnl_out_of_memory) st = dnnl_success; /* declined: the reference kernel runs */
    }
    if (ops) dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return gr_dnnl_check(c, st, "primitive descriptor");
}

/* Reorders the ONNX weights (wuser) into the primitive's layout (wmd): once now for constant
 * weights (into the plan arena), else on every run into scratch at s->wei_off. */
static int weights_setup(gr_opctx *c, conv_state *s, const dnnl_memory_desc_t *wuser,
                         const dnnl_memory_desc_t *wmd)
{
    const gr_tensor *w = c->in[1];
    dnnl_engine_t eng = c->dnnl->engine;
    int st = gr_dnnl_check(c, dnnl_memory_create(&s->wei, wmd, eng, DNNL_MEMORY_NONE), "memory");
    if (st || dnnl_memory_desc_equal(wuser, wmd))
        return st; /* same layout: forward uses W as it is */
    dnnl_primitive_desc_t rpd;
    if ((st = gr_dnnl_check(c, dnnl_reorder_primitive_desc_create(&rpd, wuser, eng, wmd, eng, NULL),
                            "reorder")))
        return st;
    st = gr_dnnl_check(c, dnnl_primitive_create(&s->wreorder, rpd), "reorder");
    dnnl_primitive_desc_destroy(rpd);
    void *handle = w->data ? w->data : DNNL_MEMORY_NONE;
    if (!st) st = gr_dnnl_check(c, dnnl_memory_create(&s->wuser, wuser, eng, handle), "memory");
    if (st) return st;
    size_t bytes = dnnl_memory_desc_get_size(wmd);
    if (!w->data && c->need_grad & 1) { /* backward_data reads them after forward */
        s->wkeep = gr_arena_alloc(c->arena, bytes);
        return s->wkeep
                   ? GRAFT_OK
                   : gr_op_err(c, GRAFT_E_NOMEM, "out of memory for %zu bytes of weights", bytes);
    }
    if (!w->data) {
        s->wei_off = gr_align64(c->scratch_bytes);
        c->scratch_bytes = s->wei_off + bytes;
        return GRAFT_OK;
    }
    void *buf = gr_arena_alloc(c->arena, bytes);
    if (!buf)
        return gr_op_err(c, GRAFT_E_NOMEM, "out of memory for %zu bytes of reordered weights",
                         bytes);
    dnnl_memory_set_data_handle(s->wei, buf);
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, s->wuser }, { DNNL_ARG_TO, s->wei } };
    st = gr_dnnl_check(c, dnnl_primitive_execute(s->wreorder, c->dnnl->stream, 2, args),
                       "weight reorder");
    if (!st) st = gr_dnnl_check(c, dnnl_stream_wait(c->dnnl->stream), "weight reorder");
    s->wconst = 1;
    return st;
}

/* Makes d run pd with the arguments args (0-terminated); those the primitive does not use (an
 * empty scratchpad) are left out. Takes ownership of nothing: pd stays the caller's. */
static int dprim_make(const gr_opctx *c, dprim *d, const_dnnl_primitive_desc_t pd, const int *args)
{
    for (; *args; args++) {
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, *args);
        if (!md || md->ndims == 0) continue;
        int st = gr_dnnl_check(
            c, dnnl_memory_create(&d->mem[d->n], md, c->dnnl->engine, DNNL_MEMORY_NONE), "memory");
        if (st) return st;
        d->arg[d->n++] = *args;
    }
    return gr_dnnl_check(c, dnnl_primitive_create(&d->p, pd), "primitive");
}

static void dprim_set(dprim *d, int arg, void *data)
{
    for (int i = 0; i < d->n; i++)
        if (d->arg[i] == arg) dnnl_memory_set_data_handle(d->mem[i], data);
}

static void dprim_run(const gr_opctx *c, const dprim *d)
{
    dnnl_exec_arg_t args[6];
    for (int i = 0; i < d->n; i++) args[i] = (dnnl_exec_arg_t){ d->arg[i], d->mem[i] };
    dnnl_primitive_execute(d->p, c->dnnl->stream, d->n, args);
}

/* A reorder from -> to when the two layouts differ (else d stays unused); a buffer of the
 * destination's size is taken from the backward scratch into *off. */
static int reorder_make(const gr_opctx *c, conv_train *t, dprim *d, const dnnl_memory_desc_t *from,
                        const dnnl_memory_desc_t *to, size_t *off, const dnnl_memory_desc_t *buf)
{
    if (dnnl_memory_desc_equal(from, to)) return GRAFT_OK;
    dnnl_primitive_desc_t pd;
    dnnl_engine_t eng = c->dnnl->engine;
    int st = gr_dnnl_check(c, dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, NULL),
                           "reorder");
    if (st) return st;
    static const int args[] = { DNNL_ARG_FROM, DNNL_ARG_TO, 0 };
    st = dprim_make(c, d, pd, args);
    dnnl_primitive_desc_destroy(pd);
    *off = gr_align64(t->top);
    t->top = *off + dnnl_memory_desc_get_size(buf);
    return st;
}

/* Runs reorder d from `from` into the scratch buffer at off (or from the scratch buffer into
 * `to` when to != NULL); returns where the data now is. */
static void *reorder_run(const gr_opctx *c, const dprim *d, const void *from, void *to)
{
    dprim_set((dprim *)d, DNNL_ARG_FROM, (void *)from);
    dprim_set((dprim *)d, DNNL_ARG_TO, to);
    dprim_run(c, d);
    return to;
}

/* What train_create needs from the forward's creation. */
typedef struct conv_bwd_args {
    const dnnl_memory_desc_t *src, *dst; /* as given to the forward: plain, or "any" */
    const dnnl_memory_desc_t *wuser, *bias;
    const_dnnl_primitive_desc_t fwd;
    dnnl_dims_t strides, dil, pl, pr;
} conv_bwd_args;

static size_t spad_bytes(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static const dnnl_memory_desc_t *arg_md(const_dnnl_primitive_desc_t pd, int arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
}

/* Training lets oneDNN choose the algorithm for layers of 32 or more channels in and out a
 * group: for 3x3 stride-1 layers on AVX-512 it picks Winograd, 1.4x faster end to end on the
 * adaptation bench's CNN (32-64 channels), where on a CNN of 8-16 channels it was 18 % slower
 * than direct. Inference stays direct, bit-stable against the conformance and PyTorch
 * references whatever the machine. */
static dnnl_alg_kind_t conv_alg(dnnl_prop_kind_t prop, const conv_geom *g)
{
    int wide = g->IC / g->G >= 32 && g->OC / g->G >= 32;
    return prop == dnnl_forward_inference || !wide ? dnnl_convolution_direct
                                                   : dnnl_convolution_auto;
}

/* backward_data, with the reorders around it. *pd NULL when oneDNN has no implementation. */

static int train_data(gr_opctx *c, conv_state *s, const conv_bwd_args *a, dnnl_primitive_desc_t *pd)
{
    const conv_geom *g = &s->g;
    conv_train *t = s->t;
    dnnl_memory_desc_t wany, wuser, xin;
    dnnl_convolution_desc_t d;
    int st;
    if ((st = weights_mds(c, g, &wany, &wuser)) || (st = gr_dnnl_md_of(c->in[0], &xin))) return st;
    dnnl_status_t ds =
        g->kind == K_CONVT
            ? dnnl_dilated_deconvolution_backward_data_desc_init(&d, dnnl_deconvolution_direct,
                                                                 a->src, &wany, a->dst, a->strides,
                                                                 a->dil, a->pl, a->pr)
            : dnnl_dilated_convolution_backward_data_desc_init(&d, conv_alg(dnnl_backward, g),
                                                               a->src, &wany, a->dst, a->strides,
                                                               a->dil, a->pl, a->pr);
    *pd = NULL;
    if (ds != dnnl_success || (st = make_pd(c, NULL, &d, a->fwd, pd)) || !*pd) return st;
    static const int args[] = { DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC,
                                DNNL_ARG_SCRATCHPAD, 0 };
    const dnnl_memory_desc_t *wmd = arg_md(*pd, DNNL_ARG_WEIGHTS),
                             *dy = arg_md(*pd, DNNL_ARG_DIFF_DST);
    const dnnl_memory_desc_t *dx = arg_md(*pd, DNNL_ARG_DIFF_SRC);
    const dnnl_memory_desc_t *fw = dnnl_primitive_desc_query_md(a->fwd, dnnl_query_weights_md, 0);
    if ((st = dprim_make(c, &t->bdata, *pd, args)) ||
        (!dnnl_memory_desc_equal(wmd, fw) &&
         (st = reorder_make(c, t, &t->wb, a->wuser, wmd, &t->off_wb, wmd))) ||
        (st = reorder_make(c, t, &t->dyd, &s->dst_md, dy, &t->off_dyd, dy)))
        return st;
    return reorder_make(c, t, &t->dx, dx, &xin, &t->off_dx, dx);
}

/* backward_weights (with the bias when asked), with the reorders around it. */
static int train_weights(gr_opctx *c, conv_state *s, const conv_bwd_args *a,
                         dnnl_primitive_desc_t *pd)
{
    const conv_geom *g = &s->g;
    conv_train *t = s->t;
    dnnl_memory_desc_t wany, wuser, xin;
    dnnl_convolution_desc_t d;
    int st, bias = c->need_grad >> 2 & 1 && bias_of(c, g);
    if ((st = weights_mds(c, g, &wany, &wuser)) || (st = gr_dnnl_md_of(c->in[0], &xin))) return st;
    dnnl_status_t ds = g->kind == K_CONVT
                           ? dnnl_dilated_deconvolution_backward_weights_desc_init(
                                 &d, dnnl_deconvolution_direct, a->src, &wany,
                                 bias ? a->bias : NULL, a->dst, a->strides, a->dil, a->pl, a->pr)
                           : dnnl_dilated_convolution_backward_weights_desc_init(
                                 &d, conv_alg(dnnl_backward, g), a->src, &wany,
                                 bias ? a->bias : NULL, a->dst, a->strides, a->dil, a->pl, a->pr);
    *pd = NULL;
    if (ds != dnnl_success || (st = make_pd(c, NULL, &d, a->fwd, pd)) || !*pd) return st;
    static const int args[] = { DNNL_ARG_SRC,       DNNL_ARG_DIFF_DST,   DNNL_ARG_DIFF_WEIGHTS,
                                DNNL_ARG_DIFF_BIAS, DNNL_ARG_SCRATCHPAD, 0 };
    const dnnl_memory_desc_t *xmd = arg_md(*pd, DNNL_ARG_SRC), *dy = arg_md(*pd, DNNL_ARG_DIFF_DST);
    const dnnl_memory_desc_t *dw = arg_md(*pd, DNNL_ARG_DIFF_WEIGHTS);
    if ((st = dprim_make(c, &t->bwei, *pd, args)) ||
        (st = reorder_make(c, t, &t->xw, &xin, xmd, &t->off_xw, xmd)) ||
        (st = reorder_make(c, t, &t->dyw, &s->dst_md, dy, &t->off_dyw, dy)))
        return st;
    if (!(c->need_grad & 2)) { /* only the bias gradient is wanted: the weights' go to scratch */
        t->off_dw = gr_align64(t->top);
        t->top = t->off_dw + dnnl_memory_desc_get_size(dw);
        return GRAFT_OK;
    }
    return reorder_make(c, t, &t->dw, dw, &wuser, &t->off_dw, dw);
}

/* The backward primitives for a forward made with a->fwd. *declined when oneDNN lacks one of them
 * (then the caller drops oneDNN for this node). Sets s->t. */
static int train_create(gr_opctx *c, conv_state *s, const conv_bwd_args *a, int *declined)
{
    conv_train *t = gr_arena_alloc(c->arena, sizeof *t);
    if (!t) return GRAFT_E_NOMEM;
    memset(t, 0, sizeof *t);
    s->t = t;
    dnnl_primitive_desc_t pd[2] = { NULL, NULL };
    int st = GRAFT_OK;
    *declined = 0;
    if (c->need_grad & 1) {
        st = train_data(c, s, a, &pd[0]);
        *declined |= !st && !pd[0];
    }
    if (!st && !*declined && c->need_grad & 6) {
        st = train_weights(c, s, a, &pd[1]);
        *declined |= !st && !pd[1];
    }
    if (s->g.act) { /* dout times the activation's derivative */
        t->off_act = gr_align64(t->top);
        t->top = t->off_act + dnnl_memory_desc_get_size(&s->dst_md);
    }
    size_t sp = 0;
    for (int i = 0; i < 2; i++)
        if (pd[i]) {
            size_t b = spad_bytes(pd[i]);
            sp = b > sp ? b : sp;
            dnnl_primitive_desc_destroy(pd[i]);
        }
    t->base = gr_align64(sp);
    return st;
}

/* Destroys every oneDNN object of s, keeping the geometry: the reference kernels run. */
static void drop_dnnl(conv_state *s)
{
    conv_release(s);
    conv_geom g = s->g;
    memset(s, 0, sizeof *s);
    s->g = g;
}

/* Creates the oneDNN (de)convolution reading src and writing dst in the layouts these memory
 * descriptors give (plain, or "any" to let oneDNN choose its fastest layout, which it records in
 * s->src_md and s->dst_md), with weights in the layout oneDNN prefers. Leaves s->prim NULL when
 * oneDNN cannot run the case: the reference kernel runs. */
static int conv_dnnl_create(gr_opctx *c, conv_state *s, const dnnl_memory_desc_t *src,
                            const dnnl_memory_desc_t *dst)
{
    const conv_geom *g = &s->g;
    dnnl_memory_desc_t wany, wuser, bmd;
    const gr_tensor *b = bias_of(c, g);
    gr_shape bs = { 1, { g->OC } };
    int st;
    if ((st = weights_mds(c, g, &wany, &wuser)) || (b && (st = gr_dnnl_plain_md(&bmd, &bs))))
        return st;
    dnnl_dims_t strides, dil, pl, pr;
    for (int i = 0; i < g->nsp; i++) {
        int a = 3 - g->nsp + i;
        strides[i] = g->s[a], dil[i] = g->d[a] - 1; /* oneDNN: dilation 0 is dense */
        pl[i] = g->pb[a], pr[i] = g->pe[a];
    }
    dnnl_convolution_desc_t desc; /* dnnl_deconvolution_desc_t is the same type */
    dnnl_prop_kind_t prop = c->need_grad ? dnnl_forward_training : dnnl_forward_inference;
    dnnl_status_t ds =
        g->kind == K_CONVT
            ? dnnl_dilated_deconvolution_forward_desc_init(&desc, prop, dnnl_deconvolution_direct,
                                                           src, &wany, b ? &bmd : NULL, dst,
                                                           strides, dil, pl, pr)
            : dnnl_dilated_convolution_forward_desc_init(&desc, prop, conv_alg(prop, g), src, &wany,
                                                         b ? &bmd : NULL, dst, strides, dil, pl,
                                                         pr);
    if (ds != dnnl_success) return GRAFT_OK;
    dnnl_primitive_desc_t pd;
    if ((st = make_pd(c, g, &desc, NULL, &pd)) || !pd) return st;
    dnnl_engine_t eng = c->dnnl->engine;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (sbytes) {
        st = gr_dnnl_check(c, dnnl_memory_create(&s->spad, smd, eng, DNNL_MEMORY_NONE), "memory");
        c->scratch_bytes = sbytes; /* the scratchpad sits at the start of scratch */
    }
    if (!st)
        st =
            weights_setup(c, s, &wuser, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0));
    s->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    s->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if (!st)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->src, &s->src_md, eng, DNNL_MEMORY_NONE),
                           "memory");
    if (!st)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->dst, &s->dst_md, eng, DNNL_MEMORY_NONE),
                           "memory");
    if (!st && b)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->bias, &bmd, eng, DNNL_MEMORY_NONE), "memory");
    int declined = 0;
    if (!st && c->need_grad) {
        conv_bwd_args a = { .src = src, .dst = dst, .wuser = &wuser, .bias = &bmd, .fwd = pd };
        memcpy(a.strides, strides, sizeof strides), memcpy(a.dil, dil, sizeof dil);
        memcpy(a.pl, pl, sizeof pl), memcpy(a.pr, pr, sizeof pr);
        st = train_create(c, s, &a, &declined);
    }
    dnnl_primitive_t prim = NULL;
    if (!st && !declined) st = gr_dnnl_check(c, dnnl_primitive_create(&prim, pd), "primitive");
    dnnl_primitive_desc_destroy(pd);
    s->prim = st ? NULL : prim; /* set last: forward runs oneDNN only when all of it exists */
    if (!st && declined) drop_dnnl(s); /* a backward oneDNN lacks: all of it runs the reference */
    return st;
}

/* The input arrives in the layout its producer left it in; if the kernel reads another (the
 * primitive's choice, or plain for the reference kernel), reorder it into scratch each run. */
static int input_setup(gr_opctx *c, conv_state *s, const dnnl_memory_desc_t *want)
{
    dnnl_memory_desc_t have;
    int st = gr_dnnl_md_of(c->in[0], &have);
    if (st || dnnl_memory_desc_equal(&have, want)) return st;
    dnnl_engine_t eng = c->dnnl->engine;
    dnnl_primitive_desc_t rpd;
    if ((st = gr_dnnl_check(
             c, dnnl_reorder_primitive_desc_create(&rpd, &have, eng, want, eng, NULL), "reorder")))
        return st;
    st = gr_dnnl_check(c, dnnl_primitive_create(&s->sreorder, rpd), "reorder");
    dnnl_primitive_desc_destroy(rpd);
    if (!st)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->sin, &have, eng, DNNL_MEMORY_NONE), "memory");
    if (!st && !s->src)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->src, want, eng, DNNL_MEMORY_NONE), "memory");
    s->src_off = gr_align64(c->scratch_bytes);
    c->scratch_bytes = s->src_off + dnnl_memory_desc_get_size(want);
    return st;
}

static void reorder_input(gr_opctx *c, conv_state *s)
{
    if (!s->sreorder) return;
    dnnl_memory_set_data_handle(s->sin, c->in[0]->data);
    dnnl_memory_set_data_handle(s->src, (char *)c->scratch + s->src_off);
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, s->sin }, { DNNL_ARG_TO, s->src } };
    dnnl_primitive_execute(s->sreorder, c->dnnl->stream, 2, args);
}

static void conv_forward_dnnl(gr_opctx *c, conv_state *s)
{
    const gr_tensor *b = bias_of(c, &s->g);
    dnnl_stream_t stream = c->dnnl->stream;
    reorder_input(c, s);
    if (!s->sreorder) dnnl_memory_set_data_handle(s->src, c->in[0]->data);
    dnnl_memory_set_data_handle(s->dst, c->out[0]->data);
    if (s->bias) dnnl_memory_set_data_handle(s->bias, b->data);
    if (s->spad) dnnl_memory_set_data_handle(s->spad, c->scratch);
    if (!s->wreorder) dnnl_memory_set_data_handle(s->wei, c->in[1]->data);
    else if (!s->wconst) {
        dnnl_memory_set_data_handle(s->wuser, c->in[1]->data);
        dnnl_memory_set_data_handle(s->wei, s->wkeep ? s->wkeep : (char *)c->scratch + s->wei_off);
        dnnl_exec_arg_t rargs[2] = { { DNNL_ARG_FROM, s->wuser }, { DNNL_ARG_TO, s->wei } };
        dnnl_primitive_execute(s->wreorder, stream, 2, rargs);
    }
    dnnl_exec_arg_t args[5] = { { DNNL_ARG_SRC, s->src },
                                { DNNL_ARG_WEIGHTS, s->wei },
                                { DNNL_ARG_DST, s->dst } };
    int n = 3;
    if (s->bias) args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, s->bias };
    if (s->spad) args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, s->spad };
    dnnl_primitive_execute(s->prim, stream, n, args);
    dnnl_stream_wait(stream);
}

/* dy times the fused activation's derivative, in y's layout (zero padding stays zero). */
static const void *masked_dy(gr_opctx *c, const conv_geom *g, const gr_tensor *dy, void *buf)
{
    if (!g->act) return dy->data;
    const gr_tensor *y = c->out[0];
    act_mask(g, y->dtype, buf, dy->data, y->data,
             (int64_t)(gr_tensor_bytes(y) / gr_dtype_size(y->dtype)));
    return buf;
}

static void conv_backward_dnnl(gr_opctx *c, conv_state *s, const gr_tensor *dout,
                               gr_tensor *const *din)
{
    conv_train *t = s->t;
    char *buf = (char *)c->scratch + t->base;
    const void *dy = masked_dy(c, &s->g, dout, buf + t->off_act);
    if (din[0]) {
        void *wd = NULL;
        if (t->wb.p) wd = reorder_run(c, &t->wb, c->in[1]->data, buf + t->off_wb);
        else dnnl_memory_get_data_handle(s->wei, &wd); /* where forward read them */
        void *dyd = t->dyd.p ? reorder_run(c, &t->dyd, dy, buf + t->off_dyd) : (void *)dy;
        void *dx = t->dx.p ? buf + t->off_dx : din[0]->data;
        dprim_set(&t->bdata, DNNL_ARG_DIFF_DST, dyd);
        dprim_set(&t->bdata, DNNL_ARG_WEIGHTS, wd);
        dprim_set(&t->bdata, DNNL_ARG_DIFF_SRC, dx);
        dprim_set(&t->bdata, DNNL_ARG_SCRATCHPAD, c->scratch);
        dprim_run(c, &t->bdata);
        if (t->dx.p) reorder_run(c, &t->dx, dx, din[0]->data);
    }
    if (t->bwei.p) {
        gr_tensor *db = c->nin > 2 ? din[2] : NULL;
        void *x =
            t->xw.p ? reorder_run(c, &t->xw, c->in[0]->data, buf + t->off_xw) : c->in[0]->data;
        void *dyw = t->dyw.p ? reorder_run(c, &t->dyw, dy, buf + t->off_dyw) : (void *)dy;
        void *dw = t->dw.p || !din[1] ? buf + t->off_dw : din[1]->data;
        dprim_set(&t->bwei, DNNL_ARG_SRC, x);
        dprim_set(&t->bwei, DNNL_ARG_DIFF_DST, dyw);
        dprim_set(&t->bwei, DNNL_ARG_DIFF_WEIGHTS, dw);
        dprim_set(&t->bwei, DNNL_ARG_DIFF_BIAS, db ? db->data : NULL);
        dprim_set(&t->bwei, DNNL_ARG_SCRATCHPAD, c->scratch);
        dprim_run(c, &t->bwei);
        if (t->dw.p && din[1]) reorder_run(c, &t->dw, dw, din[1]->data);
    }
    dnnl_stream_wait(c->dnnl->stream);
}

static void conv_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    conv_state *s = c->params;
    if (!dout[0]) { /* no gradient reaches the output: every input gradient is zero */
        gr_op_zero_grads(c, din);
        return;
    }
    if (s->t) {
        conv_backward_dnnl(c, s, dout[0], din);
        return;
    }
    conv_backward_ref(c, &s->g, masked_dy(c, &s->g, dout[0], c->scratch), din);
}

/* ---- Conv and ConvTranspose ---- */

static const int float_types[] = { GR_F32, GR_F64, 0 };

static int conv_prepare(gr_opctx *c, int kind)
{
    static const char *const conv_attrs[] = {
        "auto_pad", "dilations",  "group",      "kernel_shape", "pads",
        "strides",  "_fused_act", "_fused_min", "_fused_max",   NULL
    };
    static const char *const convt_attrs[] = { "auto_pad",     "dilations",      "group",
                                               "kernel_shape", "output_padding", "output_shape",
                                               "pads",         "strides",        "_fused_act",
                                               "_fused_min",   "_fused_max",     NULL };
    int st;
    if ((st = gr_op_check_arity(c, 2, 3, 1, 1)) ||
        (st = gr_op_check_attrs(c, kind == K_CONVT ? convt_attrs : conv_attrs)) ||
        (st = gr_op_check_dtype(c, 0, float_types)))
        return st;
    int dt = c->in[0]->dtype, same[] = { dt, 0 };
    if ((st = gr_op_check_dtype(c, 1, same)) ||
        (c->nin > 2 && c->in[2] && (st = gr_op_check_dtype(c, 2, same))))
        return st;
    conv_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    if ((st = conv_geometry(c, kind, dt, &s->g))) return st;
    const gr_tensor *b = bias_of(c, &s->g);
    if (b && (b->shape.rank != 1 || b->shape.d[0] != s->g.OC))
        return gr_op_err(c, GRAFT_E_SHAPE, "bias must have shape (%lld), the output channels",
                         (long long)s->g.OC);
    c->flops = conv_flops(&s->g);
    if (c->need_grad && s->g.act) /* the reference backward masks dout in scratch */
        c->scratch_bytes = (size_t)gr_numel(&c->out[0]->shape) * gr_dtype_size(dt);
    if (c->use_ref || !c->dnnl || dt != GR_F32 || gr_numel(&c->out[0]->shape) == 0) return GRAFT_OK;
    dnnl_memory_desc_t src, dst;
    if ((st = gr_dnnl_plain_md(&src, &c->in[0]->shape)) ||
        (st = gr_dnnl_plain_md(&dst, &c->out[0]->shape)))
        return st;
    if (c->layouts) { /* let oneDNN pick its fastest layouts (DESIGN.md: 2x on this CPU) */
        dnnl_memory_desc_t *mds[] = { &src, &dst };
        for (int i = 0; i < 2; i++)
            if (dnnl_memory_desc_init_by_tag(mds[i], mds[i]->ndims, mds[i]->dims, dnnl_f32,
                                             dnnl_format_tag_any) != dnnl_success)
                return gr_op_err(c, GRAFT_E_INTERNAL, "oneDNN: bad memory descriptor");
    }
    size_t ref_bytes = c->scratch_bytes;
    if ((st = conv_dnnl_create(c, s, &src, &dst))) return st;
    if (c->need_grad && !s->prim && c->in[0]->layout)
        return GR_RETRY_PLAIN; /* train the reference on plain */
    if (s->prim) gr_dnnl_set_layout(c->out[0], &s->dst_md);
    if (s->prim || c->in[0]->layout) {
        dnnl_memory_desc_t plain;
        if ((st = gr_dnnl_plain_md(&plain, &c->in[0]->shape))) return st;
        st = input_setup(c, s, s->prim ? &s->src_md : &plain);
    }
    size_t bwd = s->t ? s->t->base + s->t->top : ref_bytes; /* backward's scratch need */
    if (bwd > c->scratch_bytes) c->scratch_bytes = bwd;
    return st;
}

static int conv_op_prepare(gr_opctx *c) { return conv_prepare(c, K_CONV); }
static int convt_op_prepare(gr_opctx *c) { return conv_prepare(c, K_CONVT); }

static void conv_forward(gr_opctx *c)
{
    conv_state *s = c->params;
    if (s->prim) {
        conv_forward_dnnl(c, s);
        return;
    }
    const gr_tensor *x = c->in[0], *w = c->in[1], *b = bias_of(c, &s->g);
    void *y = c->out[0]->data;
    const void *bd = b ? b->data : NULL, *xd = x->data;
    int t = s->g.kind == K_CONVT;
    if (s->sreorder) { /* a oneDNN layout in, the reference kernel reads plain */
        reorder_input(c, s);
        dnnl_stream_wait(c->dnnl->stream);
        xd = (char *)c->scratch + s->src_off;
    }
    if (x->dtype == GR_F32) (t ? convt_ref_f32 : conv_ref_f32)(y, xd, w->data, bd, &s->g);
    else (t ? convt_ref_f64 : conv_ref_f64)(y, xd, w->data, bd, &s->g);
}

/* ---- ConvInteger: int32 y = Conv(x - x_zero_point, w - w_zero_point), 8-bit x and w ---- */

static int convint_prepare(gr_opctx *c)
{
    static const char *const attrs[] = { "auto_pad", "dilations", "group", "kernel_shape",
                                         "pads",     "strides",   NULL };
    static const int q_types[] = { GR_U8, GR_I8, 0 };
    int st;
    if ((st = gr_op_check_arity(c, 2, 4, 1, 1)) || (st = gr_op_check_attrs(c, attrs)) ||
        (st = gr_op_check_dtype(c, 0, q_types)) || (st = gr_op_check_dtype(c, 1, q_types)))
        return st;
    conv_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    if ((st = conv_geometry(c, K_CONVINT, GR_I32, &s->g))) return st;
    for (int i = 2; i < c->nin && i < 4;
         i++) { /* x_zero_point: a scalar; w_zero_point: scalar or (OC) */
        const gr_tensor *z = c->in[i];
        if (!z) continue;
        int want[] = { c->in[i - 2]->dtype, 0 };
        if ((st = gr_op_check_dtype(c, i, want))) return st;
        int64_t n = gr_numel(&z->shape);
        if (z->shape.rank > 1 || (n != 1 && (i == 2 || n != s->g.OC)))
            return gr_op_err(c, GRAFT_E_SHAPE, "%s must be a scalar%s",
                             i == 2 ? "x_zero_point" : "w_zero_point",
                             i == 2 ? "" : " or have one value per output channel");
    }
    c->flops = conv_flops(&s->g);
    c->scratch_bytes =
        gr_align64((size_t)gr_numel(&c->in[0]->shape) * 4) + (size_t)gr_numel(&c->in[1]->shape) * 4;
    return GRAFT_OK;
}

static int32_t q_at(const gr_tensor *t, int64_t i)
{
    return t->dtype == GR_U8 ? ((const uint8_t *)t->data)[i] : ((const int8_t *)t->data)[i];
}

/* Widens x - zx and w - zw (per output channel) to int32 in scratch, then the int32 kernel. */
static void convint_forward(gr_opctx *c)
{
    conv_state *s = c->params;
    const gr_tensor *x = c->in[0], *w = c->in[1];
    const gr_tensor *zx = c->nin > 2 ? c->in[2] : NULL, *zw = c->nin > 3 ? c->in[3] : NULL;
    int64_t nx = gr_numel(&x->shape), nw = gr_numel(&w->shape), per = s->g.OC ? nw / s->g.OC : 0;
    int32_t *xi = c->scratch, *wi = (int32_t *)((char *)c->scratch + gr_align64((size_t)nx * 4));
    int32_t zxv = zx ? q_at(zx, 0) : 0;
    int per_channel = zw && gr_numel(&zw->shape) > 1;
    for (int64_t i = 0; i < nx; i++) xi[i] = q_at(x, i) - zxv;
    for (int64_t i = 0; i < nw; i++)
        wi[i] = q_at(w, i) - (zw ? q_at(zw, per_channel ? i / per : 0) : 0);
    conv_ref_i32(c->out[0]->data, xi, wi, NULL, &s->g);
}

const gr_opdef gr_ops_conv[] = {
    { "Conv", conv_op_prepare, conv_forward, conv_release, GR_OPF_LAYOUT, conv_backward, NULL },
    { "ConvTranspose", convt_op_prepare, conv_forward, conv_release, GR_OPF_LAYOUT, conv_backward,
      NULL },
    { "ConvInteger", convint_prepare, convint_forward, conv_release, 0, NULL, NULL },
    { 0 },
};
