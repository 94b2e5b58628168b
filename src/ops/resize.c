/* resize.c — Resize (opsets 10, 11, 13, 18), Upsample (7, 9) and Pad (2, 11, 13, 18).
 * Depends on core only; plain C with OpenMP.
 *
 * Resize follows the ONNX reference implementation (onnx/reference/ops/op_resize.py), which the
 * conformance data was made with. Per axis, an output coordinate x maps to an input coordinate
 *   half_pixel           (x + 0.5) / scale - 0.5
 *   pytorch_half_pixel   the same, but -0.5 when the output length is 1
 *   align_corners        x * (in - 1) / (out - 1)          (0 when out == 1)
 *   asymmetric           x / scale
 *   tf_half_pixel_for_nn (x + 0.5) / scale
 *   tf_crop_and_resize   roi_start * (in - 1) + x * (roi_end - roi_start) * (in - 1) / (out - 1),
 *                        extrapolation_value outside [0, in - 1]
 * where `out` is scale * in (not rounded, as the reference does) and scale is given, or
 * sizes / in. Nearest rounds that coordinate (nearest_mode); linear and cubic weight the taps
 * around it, clamped to the edge (exclude_outside: outside taps get weight 0, renormalised).
 * Opset 18's antialias widens the linear/cubic filter by 1/scale when downsampling.
 * Opset 10 Resize and Upsample use asymmetric coordinates and floor for nearest.
 *
 * Everything about the geometry goes into per-axis tables in prepare (input index and weight
 * of each tap of each output position); forward is a gather for nearest (any dtype, copied by
 * element size) and separable 1-D passes, one per resized axis, for linear and cubic (float32
 * and float64), through two scratch buffers.
 *
 * Pad maps each output position of each axis to an input index (or -1: the constant), after
 * cropping negative pads, for modes constant, reflect, edge and wrap.
 *
 * Backward (float32, w.r.t. the data input only): Resize runs the transposes of its separable
 * passes in reverse order (nearest as one-tap passes); Pad adds each dout element into the input
 * element it read. tf_crop_and_resize has no backward. */
#include "ops.h"

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Reads a float input known at plan time (float or double; empty is allowed). Returns the
 * count, or minus a status. */
static int input_floats(const gr_opctx *c, int i, double *out, int max, const char *what)
{
    const gr_tensor *t = c->in[i];
    if (t->dtype != GR_F32 && t->dtype != GR_F64)
        return -gr_op_err(c, GRAFT_E_FORMAT, "%s must be float, got %s", what,
                          gr_dtype_name(t->dtype));
    int64_t n = gr_numel(&t->shape);
    if (n == 0) return 0;
    if (!t->data)
        return -gr_op_err(c, GRAFT_E_UNSUPPORTED,
                          "%s (input %d) must be known when the model is planned", what, i);
    if (n > max)
        return -gr_op_err(c, GRAFT_E_SHAPE, "%s has %" PRId64 " elements, at most %d allowed", what,
                          n, max);
    for (int64_t k = 0; k < n; k++) out[k] = gr_get_f64(t, k);
    return (int)n;
}

/* ================================ Resize ================================ */

/* The `legacy` argument of the Resize helpers: 0 for Resize-11 and later (X, roi, scales,
 * sizes), else Resize-10 (X, scales) or Upsample (Upsample-7 reads scales from an attribute). */
enum { LEGACY_RESIZE10 = 1, LEGACY_UPSAMPLE = 2 };

enum { NEAREST, LINEAR, CUBIC };
enum {
    CT_HALF_PIXEL,
    CT_PYTORCH_HALF_PIXEL,
    CT_ALIGN_CORNERS,
    CT_ASYMMETRIC,
    CT_TF_HALF_PIXEL_NN,
    CT_TF_CROP
};
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL };

typedef struct resize_geom {
    int mode, ctm, nearest_mode, exclude_outside, antialias;
    double cubic_a, extrapolation;
} resize_geom;

/* One axis: for each of `out` positions, `taps` input indices (clamped) and weights. */
typedef struct axis_map {
    int64_t in, out;
    int taps;
    int identity;           /* output position o reads input o with weight 1 */
    int64_t *idx;           /* (out, taps) */
    double *w;              /* (out, taps) */
    unsigned char *outside; /* (out) tf_crop_and_resize: the extrapolation value, or NULL */
} axis_map;

typedef struct resize_state {
    int rank, mode;
    size_t esz;
    axis_map ax[GR_MAXDIM];
    int order[GR_MAXDIM], npass; /* linear/cubic: the axes resized, in pass order */
    int any_outside;
    unsigned char extra[8]; /* extrapolation value in the output's dtype */
    double extrapolation;
    size_t buf_bytes; /* each of the two scratch buffers */
} resize_state;

static double cubic_weight(double x, double A)
{
    x = fabs(x);
    if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return 0;
}

/* The input coordinate of output position x; *outside for tf_crop_and_resize out of range. */
static double to_input(const resize_geom *g, double x, double scale, int64_t in, const double *roi,
                       int *outside)
{
    double out = scale * (double)in; /* the reference uses scale * in, not the rounded size */
    *outside = 0;
    switch (g->ctm) {
    case CT_HALF_PIXEL: return (x + 0.5) / scale - 0.5;
    case CT_PYTORCH_HALF_PIXEL: return out == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    case CT_ALIGN_CORNERS: return out == 1 ? 0 : x * (double)(in - 1) / (out - 1);
    case CT_ASYMMETRIC: return x / scale;
    case CT_TF_HALF_PIXEL_NN: return (x + 0.5) / scale;
    default: {
        double v = out == 1 ? (roi[1] - roi[0]) * (double)(in - 1) / 2
                            : x * (roi[1] - roi[0]) * (double)(in - 1) / (out - 1);
        v += roi[0] * (double)(in - 1);
        *outside = v < 0 || v > (double)(in - 1);
        return v;
    }
    }
}

static int64_t nearest_index(int mode, double x)
{
    double f = floor(x), r = x - f;
    switch (mode) {
    case NM_ROUND_PREFER_FLOOR: return (int64_t)(r <= 0.5 ? f : f + 1);
    case NM_ROUND_PREFER_CEIL: return (int64_t)(r < 0.5 ? f : f + 1);
    case NM_FLOOR: return (int64_t)f;
    default: return (int64_t)ceil(x);
    }
}

/* Number of taps: 1 (nearest), 2 (linear), 4 (cubic), more with antialias (scale < 1). */
static int taps_for(const resize_geom *g, double scale, int *first)
{
    double s = g->antialias && scale < 1 ? scale : 1;
    *first = 0;
    if (g->mode == NEAREST) return 1;
    *first = (int)floor((g->mode == LINEAR ? -1 : -2) / s) + 1;
    return 2 - 2 * *first; /* linear: taps first..1-first; cubic: first..1-first too */
}

/* Fills one axis's table. */
static int axis_build(gr_opctx *c, const resize_geom *g, axis_map *m, double scale,
                      const double *roi)
{
    int first, T = taps_for(g, scale, &first);
    if (T > 4096)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "antialias with a scale of %g needs too many taps",
                         scale);
    m->taps = T;
    /* the tables hold T taps per output position: with antialias up to 4096, far more than the
     * output itself, so they are checked against tensor-bytes before they are allocated */
    int64_t table = m->out * T * (int64_t)(sizeof *m->idx + sizeof *m->w);
    int st = gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, table,
                            "node '%s' (%s): its resampling tables need %lld bytes", c->name,
                            c->op_type, (long long)table);
    if (st) return st;
    m->idx = gr_arena_alloc(c->arena, (size_t)(m->out * T) * sizeof *m->idx + 8);
    m->w = gr_arena_alloc(c->arena, (size_t)(m->out * T) * sizeof *m->w + 8);
    if (g->ctm == CT_TF_CROP) m->outside = gr_arena_alloc(c->arena, (size_t)m->out + 8);
    if (!m->idx || !m->w || (g->ctm == CT_TF_CROP && !m->outside))
        return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    double s = g->antialias && scale < 1 ? scale : 1;
    m->identity = m->in == m->out;
    for (int64_t o = 0; o < m->out; o++) {
        int outside;
        double x = to_input(g, (double)o, scale, m->in, roi, &outside);
        if (m->outside) m->outside[o] = (unsigned char)outside;
        m->identity &= !outside;
        int64_t *ix = m->idx + o * T;
        double *w = m->w + o * T;
        if (g->mode == NEAREST) {
            int64_t k = nearest_index(g->nearest_mode, x);
            ix[0] = k < 0 ? 0 : k >= m->in ? m->in - 1 : k;
            w[0] = 1;
            m->identity &= ix[0] == o;
            continue;
        }
        /* the reference takes ratio in (0, 1]: a whole coordinate is the right end of a gap */
        double base = floor(x), ratio = x - base, sum = 0;
        if (ratio == 0) base -= 1, ratio = 1;
        for (int t = 0; t < T; t++) {
            double arg = ((double)(first + t) - ratio) * s;
            int64_t k = (int64_t)base + first + t;
            w[t] = g->mode == LINEAR ? fmax(0.0, 1 - fabs(arg)) : cubic_weight(arg, g->cubic_a);
            if (g->exclude_outside && (k < 0 || k >= m->in)) w[t] = 0;
            ix[t] = k < 0 ? 0 : k >= m->in ? m->in - 1 : k;
            sum += w[t];
        }
        if ((g->antialias && s < 1) || g->exclude_outside)
            for (int t = 0; t < T && sum != 0; t++) w[t] /= sum;
        double self = 0, other = 0; /* identity: weight 1 on input o, 0 elsewhere */
        for (int t = 0; t < T; t++) {
            if (ix[t] == o) self += w[t];
            else other += fabs(w[t]);
        }
        m->identity &= self == 1 && other == 0;
    }
    return GRAFT_OK;
}

static int parse_enum(const gr_opctx *c, const char *attr, const char *def,
                      const char *const *names, int *out)
{
    const char *v = gr_attr_str(c, attr, def);
    *out = 0; /* defined on failure too */
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return GRAFT_OK;
        }
    return gr_op_err(c, GRAFT_E_UNSUPPORTED, "%s '%s' is not supported (opset %d)", attr, v,
                     c->opset);
}

/* The attributes of Resize-11+; Resize-10 and Upsample have only 'mode'. */
static int resize_attrs(gr_opctx *c, int legacy, resize_geom *g)
{
    static const char *const modes[] = { "nearest", "linear", "cubic", NULL };
    static const char *const ctms[] = { "half_pixel", "pytorch_half_pixel",   "align_corners",
                                        "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize",
                                        NULL };
    static const char *const nms[] = { "round_prefer_floor", "round_prefer_ceil", "floor", "ceil",
                                       NULL };
    static const char *const known11[] = { "mode",
                                           "coordinate_transformation_mode",
                                           "cubic_coeff_a",
                                           "exclude_outside",
                                           "extrapolation_value",
                                           "nearest_mode",
                                           "antialias",
                                           "axes",
                                           "keep_aspect_ratio_policy",
                                           NULL };
    static const char *const known_legacy[] = { "mode", "scales", NULL };
    int st = gr_op_check_attrs(c, legacy ? known_legacy : known11);
    if (st || (st = parse_enum(c, "mode", "nearest", modes, &g->mode))) return st;
    if (legacy) {
        if (g->mode == CUBIC)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "mode 'cubic' needs Resize-11 or later");
        g->ctm = CT_ASYMMETRIC, g->nearest_mode = NM_FLOOR, g->cubic_a = -0.75;
        return GRAFT_OK;
    }
    if ((st = parse_enum(c, "coordinate_transformation_mode", "half_pixel", ctms, &g->ctm)) ||
        (st = parse_enum(c, "nearest_mode", "round_prefer_floor", nms, &g->nearest_mode)))
        return st;
    if (c->opset >= 18 && g->ctm == CT_TF_HALF_PIXEL_NN)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "tf_half_pixel_for_nn was removed in Resize-18");
    g->cubic_a = gr_attr_float(c, "cubic_coeff_a", -0.75f);
    g->exclude_outside = gr_attr_int(c, "exclude_outside", 0) != 0;
    g->extrapolation = gr_attr_float(c, "extrapolation_value", 0.0f);
    g->antialias = gr_attr_int(c, "antialias", 0) != 0;
    if (c->opset < 18 && (gr_attr_get(c, "antialias") || gr_attr_get(c, "axes") ||
                          gr_attr_get(c, "keep_aspect_ratio_policy")))
        return gr_op_err(
            c, GRAFT_E_UNSUPPORTED,
            "antialias/axes/keep_aspect_ratio_policy need Resize-18, the model has opset %d",
            c->opset);
    return GRAFT_OK;
}

/* Output sizes and per-axis scales from scales or sizes (Resize-11+: roi, axes, policy). */
static int resize_sizes(gr_opctx *c, int legacy, const resize_geom *g, int64_t *out, double *scale,
                        double *roi)
{
    const gr_shape *xs = &c->in[0]->shape;
    int r = xs->rank, st, axes[GR_MAXDIM], na = r;
    double sc[GR_MAXDIM], rv[2 * GR_MAXDIM];
    int64_t sz[GR_MAXDIM], ax64[GR_MAXDIM];
    for (int i = 0; i < r; i++)
        axes[i] = i, out[i] = xs->d[i], scale[i] = 1, roi[2 * i] = 0, roi[2 * i + 1] = 1;
    if (!legacy && c->opset >= 18 && gr_attr_get(c, "axes")) {
        int seen[GR_MAXDIM] = { 0 };
        na = gr_attr_ints(c, "axes", ax64, GR_MAXDIM);
        if (na > r)
            return gr_op_err(c, GRAFT_E_SHAPE, "'axes' has more entries than the input's rank");
        for (int i = 0; i < na; i++) {
            if ((st = gr_op_axis(c, ax64[i], r, &axes[i]))) return st;
            if (seen[axes[i]]++)
                return gr_op_err(c, GRAFT_E_SHAPE, "axis %d appears twice in 'axes'", axes[i]);
        }
    }
    int iscale = legacy ? 1 : 2, isize = 3, nsc = -1, nsz = -1;
    if (legacy == LEGACY_UPSAMPLE && c->opset < 9) {
        const gr_attr *a = gr_attr_get(c, "scales");
        if (!a || a->type != GR_AT_FLOATS)
            return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'scales' is required");
        nsc = a->n > GR_MAXDIM ? GR_MAXDIM + 1 : a->n;
        for (int i = 0; i < nsc && i < GR_MAXDIM; i++) sc[i] = a->floats[i];
    } else {
        if (gr_op_has_input(c, iscale) &&
            (nsc = input_floats(c, iscale, sc, GR_MAXDIM, "scales")) < 0)
            return -nsc;
        if (!legacy && gr_op_has_input(c, isize) && gr_numel(&c->in[isize]->shape) > 0 &&
            (nsz = gr_input_ints(c, isize, sz, GR_MAXDIM)) < 0)
            return -nsz;
    }
    if (nsc == 0) nsc = -1;
    if (nsz == 0) nsz = -1;
    if ((nsc < 0) == (nsz < 0))
        return gr_op_err(c, GRAFT_E_FORMAT, "exactly one of scales and sizes must be given");
    if ((nsc >= 0 ? nsc : nsz) != na)
        return gr_op_err(c, GRAFT_E_SHAPE, "%s has %d entries, expected %d",
                         nsc >= 0 ? "scales" : "sizes", nsc >= 0 ? nsc : nsz, na);
    if (nsc >= 0) {
        for (int i = 0; i < na; i++) {
            if (!(sc[i] > 0 && sc[i] < 1e9))
                return gr_op_err(c, GRAFT_E_SHAPE, "scales[%d] = %g must be positive", i, sc[i]);
            scale[axes[i]] = sc[i];
            out[axes[i]] = (int64_t)floor(sc[i] * (double)xs->d[axes[i]]);
        }
    } else {
        const char *pol = gr_attr_str(c, "keep_aspect_ratio_policy", "stretch");
        int stretch = !strcmp(pol, "stretch"), not_larger = !strcmp(pol, "not_larger");
        if (!stretch && !not_larger && strcmp(pol, "not_smaller"))
            return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                             "keep_aspect_ratio_policy '%s' is not supported", pol);
        double keep = not_larger ? INFINITY : 0;
        for (int i = 0; i < na; i++) {
            if (sz[i] < 0) return gr_op_err(c, GRAFT_E_SHAPE, "sizes[%d] is negative", i);
            double s = (double)sz[i] / (double)xs->d[axes[i]];
            keep = not_larger ? fmin(keep, s) : fmax(keep, s);
            out[axes[i]] = sz[i];
            scale[axes[i]] = s;
        }
        if (!stretch)
            for (int i = 0; i < na; i++) {
                scale[axes[i]] = keep;
                out[axes[i]] = (int64_t)floor(keep * (double)xs->d[axes[i]] + 0.5);
            }
    }
    if (!legacy && g->ctm == CT_TF_CROP) {
        int n;
        if (!gr_op_has_input(c, 1))
            return gr_op_err(c, GRAFT_E_FORMAT, "tf_crop_and_resize needs the roi input");
        if ((n = input_floats(c, 1, rv, 2 * GR_MAXDIM, "roi")) < 0) return -n;
        if (n != 2 * na)
            return gr_op_err(c, GRAFT_E_SHAPE, "roi has %d entries, expected %d", n, 2 * na);
        for (int i = 0; i < na; i++) roi[2 * axes[i]] = rv[i], roi[2 * axes[i] + 1] = rv[na + i];
    }
    for (int i = 0; i < r; i++)
        if (xs->d[i] == 0 && out[i] != 0)
            return gr_op_err(c, GRAFT_E_SHAPE, "cannot resize an empty axis %d", i);
    return GRAFT_OK;
}

/* Scratch for the separable passes: the largest intermediate, twice. */
static void plan_passes(resize_state *rs, const gr_shape *xs)
{
    gr_shape cur = *xs;
    size_t most = 0;
    rs->npass = 0;
    for (int d = rs->rank - 1; d >= 0; d--)
        if (!rs->ax[d].identity) rs->order[rs->npass++] = d;
    for (int p = 0; p + 1 < rs->npass; p++) {
        cur.d[rs->order[p]] = rs->ax[rs->order[p]].out;
        size_t n = (size_t)gr_numel(&cur);
        if (n > most) most = n;
    }
    rs->buf_bytes = (most * rs->esz + 63) & ~(size_t)63;
}

static int resize_common(gr_opctx *c, int legacy)
{
    static const int ft[] = { GR_F32, GR_F64, 0 };
    int st = gr_op_check_arity(c, 1, legacy ? 2 : 4, 1, 1);
    if (st) return st;
    if (!gr_dtype_size(c->in[0]->dtype))
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "input 0 has a dtype graft does not support");
    resize_geom g = { 0 };
    if ((st = resize_attrs(c, legacy, &g))) return st;
    if (g.mode != NEAREST && (st = gr_op_check_dtype(c, 0, ft))) return st;
    const gr_shape *xs = &c->in[0]->shape;
    int64_t out[GR_MAXDIM];
    double scale[GR_MAXDIM], roi[2 * GR_MAXDIM];
    if ((st = resize_sizes(c, legacy, &g, out, scale, roi))) return st;
    gr_shape s = gr_shape_make(xs->rank, out);
    if ((st = gr_op_set_out(c, 0, c->in[0]->dtype, &s))) return st;
    resize_state *rs = gr_op_params(c, sizeof *rs);
    if (!rs) return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    rs->rank = xs->rank, rs->mode = g.mode, rs->esz = gr_dtype_size(c->in[0]->dtype);
    rs->extrapolation = g.extrapolation;
    gr_tensor ex = { .dtype = c->in[0]->dtype, .data = rs->extra };
    gr_set_f64(&ex, 0, g.extrapolation);
    for (int d = 0; d < xs->rank; d++) {
        rs->ax[d].in = xs->d[d], rs->ax[d].out = out[d];
        if ((st = axis_build(c, &g, &rs->ax[d], scale[d], roi + 2 * d))) return st;
        rs->any_outside |= rs->ax[d].outside != NULL;
    }
    if (c->need_grad) {
        if (c->need_grad & ~1u)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "only the data input (0) has a gradient");
        if ((st = gr_op_check_dtype(c, 0, (const int[]){ GR_F32, 0 }))) return st;
        if (rs->any_outside)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                             "backward of tf_crop_and_resize is not supported");
    }
    if (g.mode != NEAREST || c->need_grad) { /* backward runs nearest as passes too */
        plan_passes(rs, xs);
        c->scratch_bytes = 2 * rs->buf_bytes;
        if (g.mode != NEAREST)
            for (int p = 0; p < rs->npass; p++)
                c->flops += 2 * (int64_t)rs->ax[rs->order[p]].taps * gr_numel(&s);
    }
    return GRAFT_OK;
}

/* Nearest: every output element reads one input element; rows of the last axis in parallel. */
static void resize_nearest(const resize_state *rs, const gr_tensor *x, gr_tensor *y)
{
    int r = rs->rank;
    size_t esz = rs->esz;
    int64_t xst[GR_MAXDIM], n = gr_numel(&y->shape);
    if (n == 0) return;
    if (r == 0) {
        memcpy(y->data, x->data, esz);
        return;
    }
    gr_strides(&x->shape, xst);
    const axis_map *last = &rs->ax[r - 1];
    int64_t inner = last->out, rows = n / inner;
    int nth = gr_op_threads(n);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0, q = row;
        int outside = 0;
        for (int d = r - 2; d >= 0; d--) {
            const axis_map *m = &rs->ax[d];
            int64_t o = q % m->out;
            q /= m->out;
            off += m->idx[o] * xst[d];
            outside |= m->outside && m->outside[o];
        }
        char *yr = (char *)y->data + row * inner * (int64_t)esz;
        const char *xr = (const char *)x->data + off * (int64_t)esz;
        for (int64_t j = 0; j < inner; j++) {
            int ext = outside || (last->outside && last->outside[j]);
            const void *src = ext ? (const void *)rs->extra : xr + last->idx[j] * (int64_t)esz;
            if (esz == 4) memcpy(yr + j * 4, src, 4);
            else memcpy(yr + j * (int64_t)esz, src, esz);
        }
    }
}

/* One linear/cubic pass along an axis: x (outer, in, inner) → y (outer, out, inner). */
#define DEFINE_PASS(T, NAME)                                                                       \
    static void NAME(const axis_map *m, int64_t outer, int64_t inner, const T *x, T *y)            \
    {                                                                                              \
        int64_t out = m->out, in = m->in;                                                          \
        int taps = m->taps;                                                                        \
        int nth = gr_op_threads(outer * out * inner * taps);                                       \
        _Pragma("omp parallel for num_threads(nth) schedule(static)") for (int64_t w = 0;          \
                                                                           w < outer * out; w++)   \
        {                                                                                          \
            int64_t b = w / out, o = w % out;                                                      \
            const int64_t *ix = m->idx + o * taps;                                                 \
            const double *wt = m->w + o * taps;                                                    \
            T *yr = y + w * inner;                                                                 \
            const T *xb = x + b * in * inner;                                                      \
            if (inner == 1) {                                                                      \
                double acc = 0;                                                                    \
                for (int t = 0; t < taps; t++) acc += wt[t] * (double)xb[ix[t]];                   \
                yr[0] = (T)acc;                                                                    \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t j = 0; j < inner; j++) yr[j] = 0;                                         \
            for (int t = 0; t < taps; t++) {                                                       \
                const T *xr = xb + ix[t] * inner;                                                  \
                T wk = (T)wt[t];                                                                   \
                if (wk == 0) continue;                                                             \
                for (int64_t j = 0; j < inner; j++) yr[j] += wk * xr[j];                           \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_PASS(float, pass_f32)
DEFINE_PASS(double, pass_f64)

/* tf_crop_and_resize: output positions outside the crop on any axis get the extrapolation value. */
static void resize_extrapolate(const resize_state *rs, gr_tensor *y)
{
    int r = rs->rank;
    int64_t n = gr_numel(&y->shape);
    for (int64_t i = 0; i < n; i++) {
        int64_t q = i;
        int outside = 0;
        for (int d = r - 1; d >= 0; d--) {
            const axis_map *m = &rs->ax[d];
            outside |= m->outside && m->outside[q % m->out];
            q /= m->out;
        }
        if (outside) memcpy((char *)y->data + i * (int64_t)rs->esz, rs->extra, rs->esz);
    }
}

static void resize_forward(gr_opctx *c)
{
    const resize_state *rs = c->params;
    const gr_tensor *x = c->in[0];
    gr_tensor *y = c->out[0];
    if (rs->mode == NEAREST) {
        resize_nearest(rs, x, y);
        return;
    }
    if (gr_numel(&y->shape) == 0) return;
    gr_shape cur = x->shape;
    const void *src = x->data;
    if (rs->npass == 0) memcpy(y->data, x->data, gr_tensor_bytes(x));
    for (int p = 0; p < rs->npass; p++) {
        int d = rs->order[p];
        int64_t outer = 1, inner = 1;
        for (int k = 0; k < d; k++) outer *= cur.d[k];
        for (int k = d + 1; k < cur.rank; k++) inner *= cur.d[k];
        void *dst = p == rs->npass - 1 ? y->data : (char *)c->scratch + (p % 2) * rs->buf_bytes;
        if (x->dtype == GR_F32) pass_f32(&rs->ax[d], outer, inner, src, dst);
        else pass_f64(&rs->ax[d], outer, inner, src, dst);
        cur.d[d] = rs->ax[d].out;
        src = dst;
    }
    if (rs->any_outside) resize_extrapolate(rs, y);
}

/* The transpose of one pass: dx (outer, in, inner) = the taps' weights times dy (outer, out,
 * inner) summed into the inputs they read. Threads split the outer slices, each owning its
 * part of dx. */
static void pass_back_f32(const axis_map *m, int64_t outer, int64_t inner, const float *dy,
                          float *dx)
{
    int64_t out = m->out, in = m->in;
    int taps = m->taps;
    int nth = outer > 1 ? gr_op_threads(outer * out * inner * taps) : 1;
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t b = 0; b < outer; b++) {
        float *xb = dx + b * in * inner;
        const float *yb = dy + b * out * inner;
        memset(xb, 0, (size_t)(in * inner) * sizeof(float));
        for (int64_t o = 0; o < out; o++) {
            const int64_t *ix = m->idx + o * taps;
            const double *wt = m->w + o * taps;
            const float *yr = yb + o * inner;
            for (int t = 0; t < taps; t++) {
                float wk = (float)wt[t], *xr = xb + ix[t] * inner;
                if (wk == 0) continue;
#pragma omp simd
                for (int64_t j = 0; j < inner; j++) xr[j] += wk * yr[j];
            }
        }
    }
}

/* Backward of Resize and Upsample (float32, every mode but tf_crop_and_resize): the forward's
 * separable passes transposed, last pass first, through the same two scratch buffers (their
 * shapes are the forward's intermediates). Nearest is a pass with one tap of weight 1. */
static void resize_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const resize_state *rs = c->params;
    if (!din[0]) return;
    size_t bytes = gr_tensor_bytes(din[0]);
    if (!dout[0] || gr_numel(&c->out[0]->shape) == 0) {
        memset(din[0]->data, 0, bytes);
        return;
    }
    if (rs->npass == 0) {
        memcpy(din[0]->data, dout[0]->data, bytes);
        return;
    }
    gr_shape cur = c->out[0]->shape;
    const float *src = dout[0]->data;
    for (int p = rs->npass - 1; p >= 0; p--) {
        int d = rs->order[p];
        int64_t outer = 1, inner = 1;
        for (int k = 0; k < d; k++) outer *= cur.d[k];
        for (int k = d + 1; k < cur.rank; k++) inner *= cur.d[k];
        float *dst =
            p == 0 ? din[0]->data : (float *)((char *)c->scratch + (p % 2) * rs->buf_bytes);
        pass_back_f32(&rs->ax[d], outer, inner, src, dst);
        cur.d[d] = rs->ax[d].in;
        src = dst;
    }
}

/* ONNX Resize-10 (X, scales) and Resize-11/13/18 (X, roi, scales, sizes). */
static int resize_prepare(gr_opctx *c)
{
    return resize_common(c, c->opset < 11 ? LEGACY_RESIZE10 : 0);
}

/* ONNX Upsample-7 (scales attribute) and -9/-10 (scales input): nearest or linear. */
static int upsample_prepare(gr_opctx *c)
{
    if (c->opset >= 9 && !gr_op_has_input(c, 1))
        return gr_op_err(c, GRAFT_E_FORMAT, "input 1 (scales) is required");
    if (c->opset < 9 && c->nin > 1)
        return gr_op_err(c, GRAFT_E_FORMAT, "Upsample-7 takes scales as an attribute");
    if (c->opset >= 9 && gr_attr_get(c, "scales"))
        return gr_op_err(c, GRAFT_E_FORMAT,
                         "Upsample-9 takes scales as an input, not an attribute");
    return resize_common(c, LEGACY_UPSAMPLE);
}

/* ================================ Pad ================================ */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

typedef struct pad_state {
    int rank, mode;
    size_t esz;
    int64_t *map[GR_MAXDIM]; /* (out_d) input index along axis d, or -1: the constant */
    int64_t lo, hi, shift;   /* last axis: positions [lo, hi) read input j - shift */
    unsigned char value[8];  /* the constant (attribute, before opset 11; else 0) */
} pad_state;

/* Input index of position i (may be outside [0, n)) of a cropped axis of length n. */
static int64_t pad_index(int mode, int64_t i, int64_t n)
{
    if (i >= 0 && i < n) return i;
    switch (mode) {
    case PAD_EDGE: return i < 0 ? 0 : n - 1;
    case PAD_WRAP: return ((i % n) + n) % n;
    case PAD_REFLECT: {
        if (n == 1) return 0;
        int64_t p = 2 * (n - 1), m = ((i % p) + p) % p;
        return m < n ? m : p - m;
    }
    default: return -1;
    }
}

/* Pads: opset < 11 'pads' attribute, from 11 input 1; opset 18 input 3 'axes'. Fills pb/pe. */
static int pad_amounts(gr_opctx *c, int64_t *pb, int64_t *pe)
{
    int r = c->in[0]->shape.rank, n, na = r, axes[GR_MAXDIM], st;
    int64_t p[4 * GR_MAXDIM], ax64[GR_MAXDIM];
    for (int i = 0; i < r; i++) axes[i] = i, pb[i] = pe[i] = 0;
    if (c->opset < 11) {
        n = gr_attr_ints(c, "pads", p, 4 * GR_MAXDIM);
        if (n < 0) return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'pads' is required");
    } else if ((n = gr_input_ints(c, 1, p, 4 * GR_MAXDIM)) < 0) {
        return -n;
    }
    if (gr_op_has_input(c, 3)) {
        int seen[GR_MAXDIM] = { 0 };
        if (c->opset < 18) return gr_op_err(c, GRAFT_E_FORMAT, "the axes input needs Pad-18");
        if ((na = gr_input_ints(c, 3, ax64, GR_MAXDIM)) < 0) return -na;
        for (int i = 0; i < na; i++) {
            if ((st = gr_op_axis(c, ax64[i], r, &axes[i]))) return st;
            if (seen[axes[i]]++)
                return gr_op_err(c, GRAFT_E_SHAPE, "axis %d appears twice in axes", axes[i]);
        }
    }
    if (n != 2 * na)
        return gr_op_err(c, GRAFT_E_SHAPE, "pads has %d entries, expected %d", n, 2 * na);
    for (int i = 0; i < 2 * na;
         i++) /* beyond 2^40 no output fits; below, the sums cannot overflow */
        if (p[i] > (int64_t)1 << 40 || p[i] < -((int64_t)1 << 40))
            return gr_op_err(c, GRAFT_E_SHAPE, "pad %lld is out of range", (long long)p[i]);
    for (int i = 0; i < na; i++) pb[axes[i]] = p[i], pe[axes[i]] = p[na + i];
    return GRAFT_OK;
}

/* ONNX Pad-2/11/13/18 (and wrap, Pad-19). Negative pads crop; the other modes then pad the
 * cropped tensor, as the reference (crop, then numpy.pad) does. */
static int pad_prepare(gr_opctx *c)
{
    static const char *const known[] = { "mode", "pads", "value", NULL };
    static const char *const modes[] = { "constant", "reflect", "edge", "wrap", NULL };
    int st = gr_op_check_attrs(c, known), mode;
    if (st || (st = gr_op_reject_attr(c, "pads", c->opset >= 11)) ||
        (st = gr_op_reject_attr(c, "value", c->opset >= 11)) ||
        (st = gr_op_check_arity(c, c->opset < 11 ? 1 : 2, c->opset < 11 ? 1 : 4, 1, 1)))
        return st;
    if ((st = parse_enum(c, "mode", "constant", modes, &mode))) return st;
    const gr_tensor *x = c->in[0];
    if (!gr_dtype_size(x->dtype))
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "input 0 has a dtype graft does not support");
    if (gr_op_has_input(c, 2)) {
        if (c->in[2]->dtype != x->dtype)
            return gr_op_err(c, GRAFT_E_SHAPE, "constant_value must have the input's type");
        if (gr_numel(&c->in[2]->shape) != 1)
            return gr_op_err(c, GRAFT_E_SHAPE, "constant_value must be a scalar");
    }
    int64_t pb[GR_MAXDIM], pe[GR_MAXDIM];
    if ((st = pad_amounts(c, pb, pe))) return st;
    pad_state *ps = gr_op_params(c, sizeof *ps);
    if (!ps) return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
    ps->rank = x->shape.rank, ps->esz = gr_dtype_size(x->dtype), ps->mode = mode;
    if (c->need_grad) {
        if (c->need_grad & ~1u)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "only the data input (0) has a gradient");
        if ((st = gr_op_check_dtype(c, 0, (const int[]){ GR_F32, 0 }))) return st;
    }
    gr_tensor v = { .dtype = x->dtype, .data = ps->value };
    gr_set_f64(&v, 0, c->opset < 11 ? gr_attr_float(c, "value", 0) : 0);
    gr_shape s = x->shape;
    for (int d = 0; d < s.rank; d++) {
        int64_t in = x->shape.d[d], c0 = pb[d] < 0 ? -pb[d] : 0,
                n = in - c0 - (pe[d] < 0 ? -pe[d] : 0);
        int64_t b = pb[d] > 0 ? pb[d] : 0;
        s.d[d] = in + pb[d] + pe[d];
        if (n < 0 || s.d[d] < 0)
            return gr_op_err(c, GRAFT_E_SHAPE, "pads crop more than axis %d holds", d);
        if (mode != PAD_CONSTANT && n == 0 && s.d[d] > 0)
            return gr_op_err(c, GRAFT_E_SHAPE, "mode '%s' cannot pad an empty axis %d", modes[mode],
                             d);
        int64_t numel = gr_numel_checked(&s, ps->esz);
        if (numel < 0) return gr_op_err(c, GRAFT_E_SHAPE, "the padded output's size overflows");
        /* the output and this axis's index map (pads are within 2^40, so no overflow), checked
         * before the map is allocated */
        int64_t out_bytes = numel * (int64_t)ps->esz, map_bytes = s.d[d] * (int64_t)sizeof(int64_t);
        if ((st = gr_limit_check(
                 GRAFT_LIMIT_TENSOR_BYTES, out_bytes > map_bytes ? out_bytes : map_bytes,
                 "node '%s' (Pad): the padded output needs %lld bytes and its index map %lld",
                 c->name, (long long)out_bytes, (long long)map_bytes)))
            return st;
        if (!(ps->map[d] = gr_arena_alloc(c->arena, (size_t)s.d[d] * sizeof(int64_t) + 8)))
            return gr_op_err(c, GRAFT_E_NOMEM, "out of memory");
        for (int64_t o = 0; o < s.d[d]; o++) {
            int64_t k = pad_index(mode, o - b, n);
            ps->map[d][o] = k < 0 ? -1 : k + c0;
        }
        if (d == s.rank - 1) { /* the run that reads the input in order */
            ps->shift = b - c0;
            ps->lo = b, ps->hi = b + n;
        }
    }
    return gr_op_set_out(c, 0, x->dtype, &s);
}

static void pad_forward(gr_opctx *c)
{
    const pad_state *ps = c->params;
    const gr_tensor *x = c->in[0];
    gr_tensor *y = c->out[0];
    int r = ps->rank;
    size_t esz = ps->esz;
    const unsigned char *val = gr_op_has_input(c, 2) ? c->in[2]->data : ps->value;
    int64_t n = gr_numel(&y->shape), xst[GR_MAXDIM];
    if (n == 0) return;
    if (r == 0) {
        memcpy(y->data, x->data, esz);
        return;
    }
    gr_strides(&x->shape, xst);
    int64_t inner = y->shape.d[r - 1], rows = n / inner;
    const int64_t *ml = ps->map[r - 1];
    int nth = gr_op_threads(n);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0, q = row;
        int fill = 0;
        for (int d = r - 2; d >= 0; d--) {
            int64_t o = q % y->shape.d[d], k = ps->map[d][o];
            q /= y->shape.d[d];
            fill |= k < 0;
            off += k * xst[d];
        }
        char *yr = (char *)y->data + row * inner * (int64_t)esz;
        const char *xr = (const char *)x->data + off * (int64_t)esz;
        for (int64_t j = 0; j < inner; j++) {
            if (!fill && j == ps->lo && ps->hi > ps->lo) { /* the in-order run */
                memcpy(yr + j * (int64_t)esz, xr + (j - ps->shift) * (int64_t)esz,
                       (size_t)(ps->hi - ps->lo) * esz);
                j = ps->hi - 1;
                continue;
            }
            const void *src = fill || ml[j] < 0 ? (const void *)val : xr + ml[j] * (int64_t)esz;
            memcpy(yr + j * (int64_t)esz, src, esz);
        }
    }
}

/* Each output that read an input element adds its dout there (nothing for the constant). In
 * constant mode each input element is read at most once, so rows run in parallel; reflect,
 * edge and wrap read some many times and run serially. */
static void pad_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const pad_state *ps = c->params;
    if (!din[0]) return;
    memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
    const gr_tensor *y = c->out[0];
    int r = ps->rank;
    int64_t n = gr_numel(&y->shape), xst[GR_MAXDIM];
    if (!dout[0] || n == 0) return;
    const float *dy = dout[0]->data;
    float *dx = din[0]->data;
    if (r == 0) {
        dx[0] = dy[0];
        return;
    }
    gr_strides(&c->in[0]->shape, xst);
    int64_t inner = y->shape.d[r - 1], rows = n / inner;
    const int64_t *ml = ps->map[r - 1];
    int nth = ps->mode == PAD_CONSTANT ? gr_op_threads(n) : 1;
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0, q = row;
        int fill = 0;
        for (int d = r - 2; d >= 0; d--) {
            int64_t o = q % y->shape.d[d], k = ps->map[d][o];
            q /= y->shape.d[d];
            fill |= k < 0;
            off += k * xst[d];
        }
        if (fill) continue;
        float *xr = dx + off;
        const float *yr = dy + row * inner;
        for (int64_t j = 0; j < inner; j++)
            if (ml[j] >= 0) xr[ml[j]] += yr[j];
    }
}

const gr_opdef gr_ops_resize[] = {
    { "Resize", resize_prepare, resize_forward, NULL, 0, resize_backward, NULL },
    { "Upsample", upsample_prepare, resize_forward, NULL, 0, resize_backward, NULL },
    { "Pad", pad_prepare, pad_forward, NULL, 0, pad_backward, NULL },
    { 0 },
};
