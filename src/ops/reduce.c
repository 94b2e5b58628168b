/* reduce.c — reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp, ArgMax,
 * ArgMin, and the normalisations along an axis Softmax, LogSoftmax and Hardmax. Depends on core
 * and oneDNN.
 *
 * Reduce*: `axes` is an attribute up to opset 17 (ReduceSum: up to 12) and an optional input
 * from opset 18 (ReduceSum: from 13), which also brings `noop_with_empty_axes`: with no axes
 * every axis is reduced, unless noop_with_empty_axes = 1, which makes the op an identity.
 * A reduction over an empty set gives the identity of its operation (0 for sums, 1 for a
 * product, -inf / +inf for max / min (the lowest / highest integer for integer types), -inf for
 * LogSum and LogSumExp, NaN for a float mean, 0 for an integer one).
 * ArgMax/ArgMin (-13): int64 index along `axis` (default 0); ties give the first index, or the
 * last with select_last_index = 1 (opset >= 12); a NaN wins, as in numpy.
 * Softmax/LogSoftmax/Hardmax: before opset 13 the input is coerced to 2-D at `axis` (default 1),
 * (prod(d[0:axis]), prod(d[axis:])), and each row is normalised; from opset 13 the op works
 * along the one axis `axis` (default -1). Both are the (outer, N, inner) view below with
 * inner = 1 for the old semantics.
 *
 * Kernels: plain C with OpenMP (double accumulation for floats, wrapping 64-bit integers for
 * exact integer sums); oneDNN softmax_v2 (accurate / log) runs float32 Softmax and LogSoftmax.
 *
 * Backward (float inputs): ReduceSum/ReduceMean spread dY over the reduced elements (divided by
 * their count for the mean); ReduceMax/ReduceMin send dY to the arg-extremum and split it
 * equally among ties (as torch.amax/amin do; a NaN extremum takes it alone). Softmax: dX =
 * Y * (dY - sum(dY * Y)); LogSoftmax: dX = dY - exp(Y) * sum(dY), per row of the same
 * (outer, N, inner) view as forward; oneDNN softmax_v2 backward for float32. */
#include "dnnl_util.h"

#include <math.h>
#include <string.h>

static int bool_attr(const gr_opctx *c, const char *name, int def, int *out)
{
    int64_t v = gr_attr_int(c, name, def);
    if (v != 0 && v != 1)
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute '%s' must be 0 or 1, got %lld", name,
                         (long long)v);
    *out = (int)v;
    return GRAFT_OK;
}

static int is_int(int dtype) { return dtype != GR_F32 && dtype != GR_F64; }

/* Float value of element i (a switch the compiler hoists out of the loops it sits in). */
static inline double ldf(const void *p, int dtype, int64_t i)
{
    switch (dtype) {
    case GR_F32: return ((const float *)p)[i];
    case GR_F64: return ((const double *)p)[i];
    case GR_I32: return ((const int32_t *)p)[i];
    case GR_I64: return (double)((const int64_t *)p)[i];
    case GR_I8: return ((const int8_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}

static inline int64_t ldi(const void *p, int dtype, int64_t i)
{
    switch (dtype) {
    case GR_I32: return ((const int32_t *)p)[i];
    case GR_I64: return ((const int64_t *)p)[i];
    case GR_I8: return ((const int8_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}

static void sti(void *p, int dtype, int64_t i, int64_t v)
{
    switch (dtype) {
    case GR_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case GR_I64: ((int64_t *)p)[i] = v; break;
    case GR_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    default: ((uint8_t *)p)[i] = (uint8_t)v; break;
    }
}

/* A float result stored into an integer type: NaN and out-of-range values are clamped, not UB. */
static void stf(void *p, int dtype, int64_t i, double v)
{
    switch (dtype) {
    case GR_F32: ((float *)p)[i] = (float)v; return;
    case GR_F64: ((double *)p)[i] = v; return;
    default:
        if (isnan(v)) v = 0;
        v = v < -9.2e18 ? -9.2e18 : v > 9.2e18 ? 9.2e18 : v;
        sti(p, dtype, i, (int64_t)v);
    }
}

/* ==== Reduce* ==== */

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_SUMSQ, R_LOGSUM, R_LOGSUMEXP };

/* The input seen as kept and reduced dims (adjacent dims of one kind merged, size-1 dims
 * dropped), each with its element stride in the input. Output element o decomposes over the
 * kept dims in order; the reduced dims are walked with an odometer, the last one innermost. */
typedef struct red_geom {
    int kind, dtype, noop;
    int nk, nr;
    int64_t kd[GR_MAXDIM], ks[GR_MAXDIM]; /* kept dims, strides */
    int64_t rd[GR_MAXDIM], rs[GR_MAXDIM]; /* reduced dims, strides */
    int64_t nout, R;                      /* output elements, reduced elements per output */
} red_geom;

/* Splits the input dims into merged kept / reduced runs. red[i]: dim i is reduced. */
static void red_layout(red_geom *g, const gr_shape *x, const int *red)
{
    int64_t stride = 1;
    int last = -1; /* kind of the previous (inner) non-trivial dim */
    g->nk = g->nr = 0;
    g->nout = g->R = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        int64_t d = x->d[i];
        if (red[i]) g->R *= d;
        else g->nout *= d;
        if (d != 1) {
            int64_t *dims = red[i] ? g->rd : g->kd, *str = red[i] ? g->rs : g->ks;
            int *n = red[i] ? &g->nr : &g->nk;
            if (last == red[i]) dims[0] *= d; /* merge with the inner neighbour */
            else {
                memmove(dims + 1, dims, sizeof(int64_t) * (size_t)*n);
                memmove(str + 1, str, sizeof(int64_t) * (size_t)*n);
                dims[0] = d, str[0] = stride, (*n)++;
            }
            last = red[i];
        }
        stride *= d;
    }
}

/* Input offset of the first element output o reduces. */
static int64_t red_base(const red_geom *g, int64_t o)
{
    int64_t off = 0;
    for (int i = g->nk - 1; i >= 0; i--) {
        off += (o % g->kd[i]) * g->ks[i];
        o /= g->kd[i];
    }
    return off;
}

/* Calls BODY(offset) for every reduced element of the output at base `base`. */
#define FOR_REDUCED(g, base, BODY)                                                                 \
    do {                                                                                           \
        int64_t cnt_[GR_MAXDIM] = { 0 }, off_ = (base);                                            \
        const int nr_ = (g)->nr;                                                                   \
        const int64_t in_n_ = nr_ ? (g)->rd[nr_ - 1] : 1, in_s_ = nr_ ? (g)->rs[nr_ - 1] : 0;      \
        if ((g)->R == 0) break;                                                                    \
        for (;;) {                                                                                 \
            for (int64_t j_ = 0; j_ < in_n_; j_++) { BODY(off_ + j_ * in_s_); }                    \
            int a_ = nr_ - 2;                                                                      \
            for (; a_ >= 0; a_--) {                                                                \
                off_ += (g)->rs[a_];                                                               \
                if (++cnt_[a_] < (g)->rd[a_]) break;                                               \
                off_ -= cnt_[a_] * (g)->rs[a_];                                                    \
                cnt_[a_] = 0;                                                                      \
            }                                                                                      \
            if (a_ < 0) break;                                                                     \
        }                                                                                          \
    } while (0)

/* One output in double precision (floats, and integer kinds that are not exact sums). */
static double reduce_one_f(const red_geom *g, const void *x, int64_t base)
{
    const int dt = g->dtype;
    double acc, mx = -INFINITY;
    switch (g->kind) {
    case R_MAX: acc = -INFINITY; break;
    case R_MIN: acc = INFINITY; break;
    case R_PROD: acc = 1; break;
    default: acc = 0; break;
    }
#define R_ADD(i) acc += ldf(x, dt, i)
#define R_ABS(i) acc += fabs(ldf(x, dt, i))
#define R_SQ(i)                                                                                    \
    do {                                                                                           \
        double v_ = ldf(x, dt, i);                                                                 \
        acc += v_ * v_;                                                                            \
    } while (0)
#define R_MUL(i) acc *= ldf(x, dt, i)
#define R_MX(i)                                                                                    \
    do {                                                                                           \
        double v_ = ldf(x, dt, i);                                                                 \
        if (v_ > acc || isnan(v_)) acc = isnan(acc) ? acc : v_;                                    \
    } while (0)
#define R_MN(i)                                                                                    \
    do {                                                                                           \
        double v_ = ldf(x, dt, i);                                                                 \
        if (v_ < acc || isnan(v_)) acc = isnan(acc) ? acc : v_;                                    \
    } while (0)
#define R_MAXV(i)                                                                                  \
    do {                                                                                           \
        double v_ = ldf(x, dt, i);                                                                 \
        if (v_ > mx) mx = v_;                                                                      \
    } while (0)
#define R_EXP(i) acc += exp(ldf(x, dt, i) - mx)
    switch (g->kind) {
    case R_SUM:
    case R_MEAN:
    case R_LOGSUM: FOR_REDUCED(g, base, R_ADD); break;
    case R_L1: FOR_REDUCED(g, base, R_ABS); break;
    case R_L2:
    case R_SUMSQ: FOR_REDUCED(g, base, R_SQ); break;
    case R_PROD: FOR_REDUCED(g, base, R_MUL); break;
    case R_MAX: FOR_REDUCED(g, base, R_MX); break;
    case R_MIN: FOR_REDUCED(g, base, R_MN); break;
    case R_LOGSUMEXP:
        FOR_REDUCED(g, base, R_MAXV);
        if (isinf(mx)) return mx; /* +inf, or all -inf (or empty): -inf */
        FOR_REDUCED(g, base, R_EXP);
        return mx + log(acc);
    }
    switch (g->kind) {
    case R_MEAN: return g->R ? acc / (double)g->R : (is_int(dt) ? 0 : NAN);
    case R_L2: return sqrt(acc);
    case R_LOGSUM: return log(acc);
    default: return acc;
    }
}

/* Integer sums, products, max and min: exact, wrapping like the integer type would. */
static int64_t reduce_one_i(const red_geom *g, const void *x, int64_t base)
{
    const int dt = g->dtype;
    uint64_t acc = g->kind == R_PROD ? 1 : 0;
    int64_t best = 0;
    int first = 1;
#define I_ADD(i) acc += (uint64_t)ldi(x, dt, i)
#define I_ABS(i)                                                                                   \
    do {                                                                                           \
        int64_t v_ = ldi(x, dt, i);                                                                \
        acc += (uint64_t)(v_ < 0 ? -(uint64_t)v_ : (uint64_t)v_);                                  \
    } while (0)
#define I_SQ(i)                                                                                    \
    do {                                                                                           \
        uint64_t v_ = (uint64_t)ldi(x, dt, i);                                                     \
        acc += v_ * v_;                                                                            \
    } while (0)
#define I_MUL(i) acc *= (uint64_t)ldi(x, dt, i)
#define I_MX(i)                                                                                    \
    do {                                                                                           \
        int64_t v_ = ldi(x, dt, i);                                                                \
        if (first || v_ > best) best = v_, first = 0;                                              \
    } while (0)
#define I_MN(i)                                                                                    \
    do {                                                                                           \
        int64_t v_ = ldi(x, dt, i);                                                                \
        if (first || v_ < best) best = v_, first = 0;                                              \
    } while (0)
    switch (g->kind) {
    case R_SUM: FOR_REDUCED(g, base, I_ADD); break;
    case R_L1: FOR_REDUCED(g, base, I_ABS); break;
    case R_SUMSQ: FOR_REDUCED(g, base, I_SQ); break;
    case R_PROD: FOR_REDUCED(g, base, I_MUL); break;
    case R_MAX:
    case R_MIN:
        if (g->kind == R_MAX) FOR_REDUCED(g, base, I_MX);
        else FOR_REDUCED(g, base, I_MN);
        if (first) { /* empty: the lowest / highest value of the type */
            int lo = g->kind == R_MAX;
            switch (dt) {
            case GR_I32: return lo ? INT32_MIN : INT32_MAX;
            case GR_I8: return lo ? INT8_MIN : INT8_MAX;
            case GR_U8: return lo ? 0 : UINT8_MAX;
            default: return lo ? INT64_MIN : INT64_MAX;
            }
        }
        return best;
    }
    return (int64_t)acc;
}

/* y: the kept dims of x (keepdims only changes the shape); x: any numeric dtype. */
static void reduce_forward(gr_opctx *c)
{
    const red_geom *g = c->params;
    const gr_tensor *x = c->in[0];
    gr_tensor *y = c->out[0];
    if (g->noop) {
        memcpy(y->data, x->data, gr_tensor_bytes(x));
        return;
    }
    int exact = is_int(g->dtype) && g->kind != R_MEAN && g->kind != R_L2 && g->kind != R_LOGSUM &&
                g->kind != R_LOGSUMEXP;
#pragma omp parallel for schedule(static) if (g->nout > 1)
    for (int64_t o = 0; o < g->nout; o++) {
        int64_t base = red_base(g, o);
        if (exact) sti(y->data, g->dtype, o, reduce_one_i(g, x->data, base));
        else stf(y->data, g->dtype, o, reduce_one_f(g, x->data, base));
    }
}

/* dX for Sum/Mean/Max/Min: each input element belongs to exactly one output, so the outputs
 * are independent (parallel) and every element of dX is written. */
static void reduce_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const red_geom *g = c->params;
    gr_tensor *dx = din[0];
    if (!dx) return;
    const gr_tensor *x = c->in[0], *y = c->out[0], *dy = dout[0];
    const int dt = g->dtype;
    if (g->noop) {
        if (dy) memcpy(dx->data, dy->data, gr_tensor_bytes(dx));
        else memset(dx->data, 0, gr_tensor_bytes(dx));
        return;
    }
    if (!dy || g->R == 0) {
        memset(dx->data, 0, gr_tensor_bytes(dx));
        return;
    }
#pragma omp parallel for schedule(static) if (g->nout > 1)
    for (int64_t o = 0; o < g->nout; o++) {
        int64_t base = red_base(g, o);
        double d = ldf(dy->data, dt, o);
        if (g->kind == R_SUM || g->kind == R_MEAN) {
            double v = g->kind == R_MEAN ? d / (double)g->R : d;
#define B_SET(i) stf(dx->data, dt, i, v)
            FOR_REDUCED(g, base, B_SET);
            continue;
        }
        /* Max/Min: y holds the extremum itself (one of the x values, or NaN). */
        double e = ldf(y->data, dt, o);
        int64_t ties = 0;
#define B_HIT(i)   (isnan(e) ? isnan(ldf(x->data, dt, i)) : ldf(x->data, dt, i) == e)
#define B_COUNT(i) ties += B_HIT(i)
        FOR_REDUCED(g, base, B_COUNT);
        double share = ties ? d / (double)ties : 0;
#define B_SHARE(i) stf(dx->data, dt, i, B_HIT(i) ? share : 0)
        FOR_REDUCED(g, base, B_SHARE);
    }
}

/* Reads the axes (attribute or input, by opset) into red[]; sets *noop. */
static int reduce_axes(gr_opctx *c, int kind, int *red, int *noop)
{
    int rank = c->in[0]->shape.rank,
        axes_input = c->opset >= 18 || (kind == R_SUM && c->opset >= 13);
    int64_t axes[GR_MAXDIM * 2];
    int n = -1, st, noop_attr = 0;
    if (axes_input) {
        if ((st = bool_attr(c, "noop_with_empty_axes", 0, &noop_attr))) return st;
        const gr_tensor *t = c->nin > 1 ? c->in[1] : NULL;
        if (t && t->shape.rank != 1)
            return gr_op_err(c, GRAFT_E_SHAPE, "input 'axes' must be 1-D, got rank %d",
                             t->shape.rank);
        if (t && gr_numel(&t->shape) == 0) n = 0; /* empty: known from the shape alone */
        else if (t && (n = gr_input_ints(c, 1, axes, GR_MAXDIM * 2)) < 0)
            return -n; /* minus a status */
    } else {
        if (c->nin > 1)
            return gr_op_err(c, GRAFT_E_FORMAT,
                             "has %d inputs; 'axes' is an attribute before opset %d", c->nin,
                             kind == R_SUM ? 13 : 18);
        n = gr_attr_ints(c, "axes", axes, GR_MAXDIM * 2);
        if (n > GR_MAXDIM * 2)
            return gr_op_err(c, GRAFT_E_SHAPE, "attribute 'axes' has %d values", n);
    }
    *noop = n <= 0 && noop_attr;
    for (int i = 0; i < rank; i++) red[i] = n <= 0 && !noop_attr; /* no axes: all, or none */
    for (int i = 0; i < n; i++) {
        int a;
        if ((st = gr_op_axis(c, axes[i], rank, &a))) return st;
        if (red[a])
            return gr_op_err(c, GRAFT_E_FORMAT, "axis %lld appears twice in 'axes'",
                             (long long)axes[i]);
        red[a] = 1;
    }
    return GRAFT_OK;
}

static int reduce_prepare(gr_opctx *c, int kind)
{
    static const int types[] = { GR_F32, GR_F64, GR_I32, GR_I64, 0 };
    static const int minmax_types[] = { GR_F32, GR_F64, GR_I32, GR_I64, GR_I8, GR_U8, 0 };
    static const char *const attr_axes[] = { "axes", "keepdims", NULL };
    static const char *const input_axes[] = { "keepdims", "noop_with_empty_axes", NULL };
    int axes_input = c->opset >= 18 || (kind == R_SUM && c->opset >= 13), st, keep = 1;
    /* int8/uint8 ReduceMax/Min came with opset 12 */
    const int *dt = (kind == R_MAX || kind == R_MIN) && c->opset >= 12 ? minmax_types : types;
    if ((st = gr_op_check_arity(c, 1, axes_input ? 2 : 1, 1, 1)) ||
        (st = gr_op_check_attrs(c, axes_input ? input_axes : attr_axes)) ||
        (st = gr_op_check_dtype(c, 0, dt)) || (st = bool_attr(c, "keepdims", 1, &keep)))
        return st;
    const gr_tensor *x = c->in[0];
    red_geom *g = gr_op_params(c, sizeof *g);
    if (!g) return GRAFT_E_NOMEM;
    int red[GR_MAXDIM];
    if ((st = reduce_axes(c, kind, red, &g->noop))) return st;
    g->kind = kind, g->dtype = x->dtype;
    if ((c->need_grad & 1) && is_int(g->dtype))
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "no gradient for an input of type %s",
                         gr_dtype_name(g->dtype));
    red_layout(g, &x->shape, red);
    gr_shape ys = { 0, { 0 } };
    for (int i = 0; i < x->shape.rank; i++)
        if (!red[i]) ys.d[ys.rank++] = x->shape.d[i];
        else if (keep) ys.d[ys.rank++] = 1;
    return gr_op_set_out(c, 0, x->dtype, &ys);
}

#define REDUCE_OP(fn, kind)                                                                        \
    static int fn(gr_opctx *c) { return reduce_prepare(c, kind); }
REDUCE_OP(rsum_prepare, R_SUM)
REDUCE_OP(rmean_prepare, R_MEAN)
REDUCE_OP(rmax_prepare, R_MAX)
REDUCE_OP(rmin_prepare, R_MIN)
REDUCE_OP(rprod_prepare, R_PROD)
REDUCE_OP(rl1_prepare, R_L1)
REDUCE_OP(rl2_prepare, R_L2)
REDUCE_OP(rsumsq_prepare, R_SUMSQ)
REDUCE_OP(rlogsum_prepare, R_LOGSUM)
REDUCE_OP(rlse_prepare, R_LOGSUMEXP)

/* ==== ArgMax / ArgMin ==== */

/* The input as (outer, N, inner) around one axis. */
typedef struct axis_geom {
    int64_t outer, N, inner;
    int kind; /* ArgMax: 1, ArgMin: 0; Softmax family: S_* */
    int last; /* select_last_index */
    int dtype;
} axis_geom;

/* Does v beat best for ArgMax (max = 1) or ArgMin? NaN beats everything (numpy); ties only
 * with select_last_index. */
static inline int beats(double v, double best, int max, int last)
{
    if (isnan(best)) return last && isnan(v);
    if (isnan(v)) return 1;
    return max ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
}

static inline int beats_i(int64_t v, int64_t best, int max, int last)
{
    return max ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
}

/* y: (outer, [1,] inner) int64 indices, x: (outer, N, inner) */
static void arg_forward(gr_opctx *c)
{
    const axis_geom *g = c->params;
    const void *x = c->in[0]->data;
    int64_t *y = c->out[0]->data;
    const int dt = g->dtype, isint = is_int(dt);
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < g->outer * g->inner; o++) {
        int64_t base = (o / g->inner) * g->N * g->inner + o % g->inner, arg = 0;
        for (int64_t j = 1; j < g->N; j++) {
            int64_t i = base + j * g->inner, b = base + arg * g->inner;
            if (isint ? beats_i(ldi(x, dt, i), ldi(x, dt, b), g->kind, g->last)
                      : beats(ldf(x, dt, i), ldf(x, dt, b), g->kind, g->last))
                arg = j;
        }
        y[o] = arg;
    }
}

/* outer/N/inner around axis a of shape s. */
static void split_at(const gr_shape *s, int a, int coerce_2d, axis_geom *g)
{
    g->outer = g->N = g->inner = 1;
    for (int i = 0; i < s->rank; i++) {
        if (i < a) g->outer *= s->d[i];
        else if (i == a || coerce_2d) g->N *= s->d[i];
        else g->inner *= s->d[i];
    }
}

static int arg_prepare(gr_opctx *c, int max)
{
    static const int types[] = { GR_F32, GR_F64, GR_I32, GR_I64, GR_I8, GR_U8, 0 };
    static const char *const attrs11[] = { "axis", "keepdims", NULL };
    static const char *const attrs12[] = { "axis", "keepdims", "select_last_index", NULL };
    int st, keep = 1, last = 0, a;
    if ((st = gr_op_check_arity(c, 1, 1, 1, 1)) ||
        (st = gr_op_check_attrs(c, c->opset >= 12 ? attrs12 : attrs11)) ||
        (st = gr_op_check_dtype(c, 0, types)) || (st = bool_attr(c, "keepdims", 1, &keep)) ||
        (st = bool_attr(c, "select_last_index", 0, &last)))
        return st;
    const gr_shape *xs = &c->in[0]->shape;
    if (xs->rank < 1) return gr_op_err(c, GRAFT_E_SHAPE, "input must have rank >= 1");
    if ((st = gr_op_axis(c, gr_attr_int(c, "axis", 0), xs->rank, &a))) return st;
    if (xs->d[a] == 0)
        return gr_op_err(c, GRAFT_E_SHAPE, "axis %d has size 0: there is no index to return", a);
    axis_geom *g = gr_op_params(c, sizeof *g);
    if (!g) return GRAFT_E_NOMEM;
    split_at(xs, a, 0, g);
    g->kind = max, g->last = last, g->dtype = c->in[0]->dtype;
    gr_shape ys = { 0, { 0 } };
    for (int i = 0; i < xs->rank; i++)
        if (i != a) ys.d[ys.rank++] = xs->d[i];
        else if (keep) ys.d[ys.rank++] = 1;
    return gr_op_set_out(c, 0, GR_I64, &ys);
}

static int argmax_prepare(gr_opctx *c) { return arg_prepare(c, 1); }
static int argmin_prepare(gr_opctx *c) { return arg_prepare(c, 0); }

/* ==== Softmax / LogSoftmax / Hardmax ==== */

enum { S_SOFTMAX, S_LOGSOFTMAX, S_HARDMAX };

/* The primitive comes first: tests read it to know which kernel a case runs. */
typedef struct softmax_state {
    dnnl_primitive_t prim; /* oneDNN softmax_v2, or NULL: the reference kernel */
    dnnl_memory_t src, dst, spad;
    axis_geom g;
    dnnl_primitive_t bwd; /* backward (need_grad), or NULL: the reference backward */
    dnnl_memory_t ddst, dsrc, bspad;
} softmax_state;

static void softmax_release(void *params)
{
    softmax_state *s = params;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->bwd) dnnl_primitive_destroy(s->bwd);
    dnnl_memory_t m[6] = { s->src, s->dst, s->spad, s->ddst, s->dsrc, s->bspad };
    for (int i = 0; i < 6; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
}

/* y, x: (outer, N, inner), float32 or float64; each of the outer*inner rows of N normalised:
 * softmax exp(x - max) / sum, log-softmax x - max - log(sum), hardmax 1 at the first max. */
static void softmax_ref(const axis_geom *g, gr_tensor *y, const gr_tensor *x)
{
    const int64_t N = g->N, in = g->inner;
    const int dt = g->dtype;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < g->outer * in; o++) {
        int64_t base = (o / in) * N * in + o % in, arg = 0;
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < N; j++) {
            double v = ldf(x->data, dt, base + j * in);
            if (beats(v, mx, 1, 0) || j == 0) mx = v, arg = j;
        }
        if (g->kind == S_HARDMAX) {
            for (int64_t j = 0; j < N; j++) stf(y->data, dt, base + j * in, j == arg);
            continue;
        }
        for (int64_t j = 0; j < N; j++) sum += exp(ldf(x->data, dt, base + j * in) - mx);
        double lsum = log(sum);
        for (int64_t j = 0; j < N; j++) {
            double d = ldf(x->data, dt, base + j * in) - mx;
            stf(y->data, dt, base + j * in, g->kind == S_SOFTMAX ? exp(d) / sum : d - lsum);
        }
    }
}

/* Creates a oneDNN primitive for op_desc with a user scratchpad (its size is added to
 * c->scratch_bytes). Leaves *prim NULL when oneDNN cannot run this case; errors only on OOM. */
/* float32 Softmax / LogSoftmax on the (outer, N, inner) view, axis 1. */
static int softmax_dnnl_prepare(gr_opctx *c, softmax_state *s)
{
    const axis_geom *g = &s->g;
    if (c->use_ref || g->dtype != GR_F32 || g->kind == S_HARDMAX || g->outer * g->N * g->inner == 0)
        return GRAFT_OK;
    gr_shape v = { 3, { g->outer, g->N, g->inner } };
    dnnl_memory_desc_t md;
    dnnl_softmax_v2_desc_t desc;
    int st;
    if ((st = gr_dnnl_plain_md(&md, &v))) return st;
    dnnl_alg_kind_t alg = g->kind == S_SOFTMAX ? dnnl_softmax_accurate : dnnl_softmax_log;
    dnnl_prop_kind_t prop = c->need_grad ? dnnl_forward_training : dnnl_forward_inference;
    if (dnnl_softmax_v2_forward_desc_init(&desc, prop, alg, &md, &md, 1) != dnnl_success)
        return GRAFT_OK;
    if ((st = gr_dnnl_make(c, &desc, &s->prim, &s->spad)) || !s->prim) return st;
    st = gr_dnnl_check(c, dnnl_memory_create(&s->src, &md, c->dnnl->engine, DNNL_MEMORY_NONE),
                       "memory");
    if (!st)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->dst, &md, c->dnnl->engine, DNNL_MEMORY_NONE),
                           "memory");
    if (st || !(c->need_grad & 1)) return st;
    dnnl_softmax_v2_desc_t bdesc;
    if (dnnl_softmax_v2_backward_desc_init(&bdesc, alg, &md, &md, &md, 1) != dnnl_success)
        return GRAFT_OK;
    if ((st = gr_dnnl_make_bwd(c, &desc, &bdesc, &s->bwd, &s->bspad)) || !s->bwd) return st;
    st = gr_dnnl_check(c, dnnl_memory_create(&s->ddst, &md, c->dnnl->engine, DNNL_MEMORY_NONE),
                       "memory");
    if (!st)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->dsrc, &md, c->dnnl->engine, DNNL_MEMORY_NONE),
                           "memory");
    return st;
}

static int softmax_prepare(gr_opctx *c, int kind)
{
    static const int types[] = { GR_F32, GR_F64, 0 };
    static const char *const attrs[] = { "axis", NULL };
    int st, a;
    if ((st = gr_op_check_arity(c, 1, 1, 1, 1)) || (st = gr_op_check_attrs(c, attrs)) ||
        (st = gr_op_check_dtype(c, 0, types)))
        return st;
    const gr_shape *xs = &c->in[0]->shape;
    int coerce_2d = c->opset < 13; /* Softmax-1/11: rows of the 2-D view at axis (default 1) */
    if (xs->rank < 1) return gr_op_err(c, GRAFT_E_SHAPE, "input must have rank >= 1");
    if ((st = gr_op_axis(c, gr_attr_int(c, "axis", coerce_2d ? 1 : -1), xs->rank, &a))) return st;
    softmax_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    split_at(xs, a, coerce_2d, &s->g);
    s->g.kind = kind, s->g.dtype = c->in[0]->dtype;
    if ((st = gr_op_set_out(c, 0, s->g.dtype, xs))) return st;
    return softmax_dnnl_prepare(c, s);
}

static int softmax_prep(gr_opctx *c) { return softmax_prepare(c, S_SOFTMAX); }
static int logsoftmax_prep(gr_opctx *c) { return softmax_prepare(c, S_LOGSOFTMAX); }
static int hardmax_prep(gr_opctx *c) { return softmax_prepare(c, S_HARDMAX); }

static void softmax_forward(gr_opctx *c)
{
    const softmax_state *s = c->params;
    if (!s->prim) {
        softmax_ref(&s->g, c->out[0], c->in[0]);
        return;
    }
    dnnl_memory_set_data_handle(s->src, c->in[0]->data);
    dnnl_memory_set_data_handle(s->dst, c->out[0]->data);
    dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, s->src },
                                { DNNL_ARG_DST, s->dst },
                                { DNNL_ARG_SCRATCHPAD, s->spad } };
    if (s->spad) dnnl_memory_set_data_handle(s->spad, c->scratch);
    dnnl_primitive_execute(s->prim, c->dnnl->stream, s->spad ? 3 : 2, args);
    dnnl_stream_wait(c->dnnl->stream);
}

/* dx, dy, y: (outer, N, inner). Softmax: dx = y (dy - <dy, y>); LogSoftmax: dx = dy - e^y sum(dy). */
static void softmax_backward_ref(const axis_geom *g, gr_tensor *dx, const gr_tensor *dy,
                                 const gr_tensor *y)
{
    const int64_t N = g->N, in = g->inner;
    const int dt = g->dtype;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < g->outer * in; o++) {
        int64_t base = (o / in) * N * in + o % in;
        double dot = 0;
        for (int64_t j = 0; j < N; j++) {
            int64_t i = base + j * in;
            dot += ldf(dy->data, dt, i) * (g->kind == S_SOFTMAX ? ldf(y->data, dt, i) : 1);
        }
        for (int64_t j = 0; j < N; j++) {
            int64_t i = base + j * in;
            double d = ldf(dy->data, dt, i), v = ldf(y->data, dt, i);
            stf(dx->data, dt, i, g->kind == S_SOFTMAX ? v * (d - dot) : d - exp(v) * dot);
        }
    }
}

static void softmax_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const softmax_state *s = c->params;
    if (!din[0]) return;
    if (!dout[0]) {
        memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
        return;
    }
    if (!s->bwd) {
        softmax_backward_ref(&s->g, din[0], dout[0], c->out[0]);
        return;
    }
    dnnl_memory_set_data_handle(s->dst, c->out[0]->data);
    dnnl_memory_set_data_handle(s->ddst, dout[0]->data);
    dnnl_memory_set_data_handle(s->dsrc, din[0]->data);
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_DST, s->dst },
                                { DNNL_ARG_DIFF_DST, s->ddst },
                                { DNNL_ARG_DIFF_SRC, s->dsrc },
                                { DNNL_ARG_SCRATCHPAD, s->bspad } };
    if (s->bspad) dnnl_memory_set_data_handle(s->bspad, c->scratch);
    dnnl_primitive_execute(s->bwd, c->dnnl->stream, s->bspad ? 4 : 3, args);
    dnnl_stream_wait(c->dnnl->stream);
}

const gr_opdef gr_ops_reduce[] = {
    { "ReduceSum", rsum_prepare, reduce_forward, NULL, 0, reduce_backward, NULL },
    { "ReduceMean", rmean_prepare, reduce_forward, NULL, 0, reduce_backward, NULL },
    { "ReduceMax", rmax_prepare, reduce_forward, NULL, 0, reduce_backward, NULL },
    { "ReduceMin", rmin_prepare, reduce_forward, NULL, 0, reduce_backward, NULL },
    { "ReduceProd", rprod_prepare, reduce_forward, NULL, 0, NULL, NULL },
    { "ReduceL1", rl1_prepare, reduce_forward, NULL, 0, NULL, NULL },
    { "ReduceL2", rl2_prepare, reduce_forward, NULL, 0, NULL, NULL },
    { "ReduceSumSquare", rsumsq_prepare, reduce_forward, NULL, 0, NULL, NULL },
    { "ReduceLogSum", rlogsum_prepare, reduce_forward, NULL, 0, NULL, NULL },
    { "ReduceLogSumExp", rlse_prepare, reduce_forward, NULL, 0, NULL, NULL },
    { "ArgMax", argmax_prepare, arg_forward, NULL, 0, NULL, NULL },
    { "ArgMin", argmin_prepare, arg_forward, NULL, 0, NULL, NULL },
    { "Softmax", softmax_prep, softmax_forward, softmax_release, GR_OPF_BWD_NO_X, softmax_backward,
      NULL },
    { "LogSoftmax", logsoftmax_prep, softmax_forward, softmax_release, GR_OPF_BWD_NO_X,
      softmax_backward, NULL },
    { "Hardmax", hardmax_prep, softmax_forward, softmax_release, 0, NULL, NULL },
    { 0 },
};
