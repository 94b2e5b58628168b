/* ew_basic.c — the elementwise ops the model zoo needs, float32 (and int64 for the arithmetic
 * exporters do on shapes), numpy broadcasting. Registered after elementwise.c: an op defined
 * there takes precedence. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ---- broadcasting ---- */

typedef struct bcast {
    int rank;
    int64_t out[GR_MAXDIM];
    int64_t st[3][GR_MAXDIM];   /* element strides of up to three inputs, 0 on broadcast dims */
    int same[3];                /* input i has the output's shape */
} bcast;

static void bcast_init(bcast *b, const gr_shape *out, const gr_tensor *const *in, int n)
{
    b->rank = out->rank;
    for (int d = 0; d < out->rank; d++) b->out[d] = out->d[d];
    for (int i = 0; i < n; i++) {
        const gr_shape *s = &in[i]->shape;
        int64_t stride = 1;
        b->same[i] = gr_shape_eq(s, out);
        for (int d = out->rank - 1; d >= 0; d--) {
            int sd = d - (out->rank - s->rank);
            int64_t dim = sd >= 0 ? s->d[sd] : 1;
            b->st[i][d] = dim == 1 ? 0 : stride;
            stride *= dim;
        }
    }
}

/* Offset in input i of flat output index k. */
static inline int64_t bcast_off(const bcast *b, int i, int64_t k)
{
    if (b->same[i]) return k;
    int64_t off = 0;
    for (int d = b->rank - 1; d >= 0 && k; d--) {
        off += (k % b->out[d]) * b->st[i][d];
        k /= b->out[d];
    }
    return off;
}

static int bcast_prepare(gr_opctx *c, int nin, int out_dtype)
{
    int st = gr_op_check_arity(c, nin, nin, 1, 1);
    if (st) return st;
    gr_shape s = c->in[0]->shape;
    for (int i = 1; i < nin; i++)
        if ((st = gr_broadcast_shape(c, &s, &c->in[i]->shape, &s))) return st;
    bcast *b = gr_op_params(c, sizeof *b);
    if (!b) return GRAFT_E_NOMEM;
    bcast_init(b, &s, (const gr_tensor *const *)c->in, nin);
    return gr_op_set_out(c, 0, out_dtype, &s);
}

/* ---- binary arithmetic ---- */

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN };

static int arith_prepare(gr_opctx *c)
{
    int dt = c->in[0] ? c->in[0]->dtype : 0;
    if (c->nin >= 2 && c->in[1] && c->in[1]->dtype != (gr_dtype)dt && strcmp(c->op_type, "Pow"))
        return gr_op_err(c, GRAFT_E_FORMAT, "inputs have types %s and %s", gr_dtype_name(dt),
                         gr_dtype_name(c->in[1]->dtype));
    if (dt != GR_F32 && dt != GR_I64 && dt != GR_I32 && dt != GR_F64)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "type %s is not supported", gr_dtype_name(dt));
    return bcast_prepare(c, 2, dt);
}

static int arith_kind(const char *op)
{
    static const char *names[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(op, names[i])) return i;
    return 0;
}

static inline float arith_f(int k, float a, float b)
{
    switch (k) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return powf(a, b);
    case B_MAX: return a > b || isnan(a) ? a : b;
    default: return a < b || isnan(a) ? a : b;
    }
}

static inline double arith_d(int k, double a, double b)
{
    switch (k) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return pow(a, b);
    case B_MAX: return a > b ? a : b;
    default: return a < b ? a : b;
    }
}

static void arith_forward(gr_opctx *c)
{
    const bcast *b = c->params;
    int k = arith_kind(c->op_type);
    gr_tensor *y = c->out[0];
    const gr_tensor *x0 = c->in[0], *x1 = c->in[1];
    int64_t n = gr_numel(&y->shape);
    if (y->dtype == GR_F32 && x1->dtype == GR_F32) {
        const float *a = x0->data, *bb = x1->data;
        float *o = y->data;
        if (b->same[0] && b->same[1]) {
#pragma omp parallel for if (n > 65536)
            for (int64_t i = 0; i < n; i++) o[i] = arith_f(k, a[i], bb[i]);
        } else if (b->same[0] && gr_numel(&x1->shape) == 1) {
            float s = bb[0];
#pragma omp parallel for if (n > 65536)
            for (int64_t i = 0; i < n; i++) o[i] = arith_f(k, a[i], s);
        } else {
#pragma omp parallel for if (n > 65536)
            for (int64_t i = 0; i < n; i++) o[i] = arith_f(k, a[bcast_off(b, 0, i)], bb[bcast_off(b, 1, i)]);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double a = gr_get_f64(x0, bcast_off(b, 0, i)), v = gr_get_f64(x1, bcast_off(b, 1, i));
        if (y->dtype == GR_I64 || y->dtype == GR_I32) {
            int64_t ia = (int64_t)a, ib = (int64_t)v, r;
            switch (k) {
            case B_ADD: r = ia + ib; break;
            case B_SUB: r = ia - ib; break;
            case B_MUL: r = ia * ib; break;
            case B_DIV: r = ib ? ia / ib : 0; break;
            default: r = (int64_t)arith_d(k, a, v); break;
            }
            gr_set_f64(y, i, (double)r);
        } else gr_set_f64(y, i, arith_d(k, a, v));
    }
}

/* ---- comparisons and Where ---- */

static int cmp_prepare(gr_opctx *c) { return bcast_prepare(c, 2, GR_BOOL); }

static void cmp_forward(gr_opctx *c)
{
    const bcast *b = c->params;
    gr_tensor *y = c->out[0];
    int64_t n = gr_numel(&y->shape);
    int eq = !strcmp(c->op_type, "Equal"), lt = !strcmp(c->op_type, "Less");
    for (int64_t i = 0; i < n; i++) {
        double a = gr_get_f64(c->in[0], bcast_off(b, 0, i)), v = gr_get_f64(c->in[1], bcast_off(b, 1, i));
        ((uint8_t *)y->data)[i] = eq ? a == v : lt ? a < v : a > v;
    }
}

static int where_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 3, 3, 1, 1);
    if (st) return st;
    if (c->in[1]->dtype != c->in[2]->dtype) return gr_op_err(c, GRAFT_E_FORMAT, "X and Y types differ");
    return bcast_prepare(c, 3, c->in[1]->dtype);
}

static void where_forward(gr_opctx *c)
{
    const bcast *b = c->params;
    gr_tensor *y = c->out[0];
    size_t es = gr_dtype_size(y->dtype);
    int64_t n = gr_numel(&y->shape);
    for (int64_t i = 0; i < n; i++) {
        int cond = ((const uint8_t *)c->in[0]->data)[bcast_off(b, 0, i)] != 0;
        const gr_tensor *src = cond ? c->in[1] : c->in[2];
        memcpy((char *)y->data + i * es, (const char *)src->data + bcast_off(b, cond ? 1 : 2, i) * es, es);
    }
}

/* ---- unary float ops ---- */

typedef struct unary_state { float alpha, beta, lo, hi; } unary_state;

static int unary_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 1, 3, 1, 1);
    if (st) return st;
    const char *op = c->op_type;
    int generic = !strcmp(op, "Neg") || !strcmp(op, "Abs") || !strcmp(op, "Relu") || !strcmp(op, "Clip");
    static const int f32[] = {GR_F32, 0}, numeric[] = {GR_F32, GR_F64, GR_I64, GR_I32, GR_I8, GR_U8, 0};
    if ((st = gr_op_check_dtype(c, 0, generic ? numeric : f32))) return st;
    unary_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->alpha = gr_attr_float(c, "alpha", !strcmp(op, "HardSigmoid") ? 0.2f : !strcmp(op, "LeakyRelu") ? 0.01f : 1.0f);
    s->beta = gr_attr_float(c, "beta", 0.5f);
    s->lo = -INFINITY;
    s->hi = INFINITY;
    if (!strcmp(op, "Clip")) {
        if (c->opset < 11) {
            s->lo = gr_attr_float(c, "min", -INFINITY);
            s->hi = gr_attr_float(c, "max", INFINITY);
        } else {
            double v;
            if (c->nin > 1 && c->in[1]) { if ((st = gr_input_scalar(c, 1, &v))) return st; s->lo = (float)v; }
            if (c->nin > 2 && c->in[2]) { if ((st = gr_input_scalar(c, 2, &v))) return st; s->hi = (float)v; }
        }
    } else if (c->nin > 1) return gr_op_err(c, GRAFT_E_FORMAT, "takes one input, got %d", c->nin);
    return gr_op_set_out(c, 0, c->in[0]->dtype, &c->in[0]->shape);
}

/* Neg, Abs, Relu and Clip on integer and double tensors. */
static int unary_generic(gr_opctx *c)
{
    const unary_state *s = c->params;
    if (c->in[0]->dtype == GR_F32) return 0;
    int64_t n = gr_numel(&c->in[0]->shape);
    double lo = c->nin > 1 && c->in[1] ? gr_get_f64(c->in[1], 0) : -INFINITY;
    double hi = c->nin > 2 && c->in[2] ? gr_get_f64(c->in[2], 0) : INFINITY;
    if (c->opset < 11) lo = s->lo, hi = s->hi;
    for (int64_t i = 0; i < n; i++) {
        double v = gr_get_f64(c->in[0], i);
        switch (c->op_type[0]) {
        case 'N': v = -v; break;
        case 'A': v = fabs(v); break;
        case 'R': v = v > 0 ? v : 0; break;
        default: v = v < lo ? lo : v > hi ? hi : v; break;
        }
        gr_set_f64(c->out[0], i, v);
    }
    return 1;
}

#define UNARY(name, expr)                                                   \
    static void name##_forward(gr_opctx *c)                                 \
    {                                                                       \
        const unary_state *s = c->params;                                   \
        const float *restrict x = c->in[0]->data;                           \
        float *restrict y = c->out[0]->data;                                \
        int64_t n = gr_numel(&c->in[0]->shape);                             \
        (void)s;                                                            \
        if (unary_generic(c)) return;                                       \
        _Pragma("omp parallel for if (n > 65536)")                          \
        for (int64_t i = 0; i < n; i++) {                                   \
            float v = x[i];                                                 \
            y[i] = (expr);                                                  \
        }                                                                   \
    }

UNARY(relu, v > 0 ? v : 0)
UNARY(leakyrelu, v >= 0 ? v : s->alpha * v)
UNARY(clip, v < s->lo ? s->lo : v > s->hi ? s->hi : v)
UNARY(sigmoid, 1.0f / (1.0f + expf(-v)))
UNARY(hardsigmoid, fmaxf(0.0f, fminf(1.0f, s->alpha * v + s->beta)))
UNARY(hardswish, v * fmaxf(0.0f, fminf(1.0f, v / 6.0f + 0.5f)))
UNARY(tanh, tanhf(v))
UNARY(erf, erff(v))
UNARY(sqrt, sqrtf(v))
UNARY(exp, expf(v))
UNARY(log, logf(v))
UNARY(neg, -v)
UNARY(abs, fabsf(v))
UNARY(reciprocal, 1.0f / v)
UNARY(softplus, v > 20 ? v : log1pf(expf(v)))

/* ---- Cast ---- */

static int cast_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 1, 1, 1, 1);
    if (st) return st;
    int to = (int)gr_attr_int(c, "to", 0);
    if (!gr_dtype_size(to)) return gr_op_err(c, GRAFT_E_UNSUPPORTED, "cast to type %d is not supported", to);
    return gr_op_set_out(c, 0, to, &c->in[0]->shape);
}

static void cast_forward(gr_opctx *c)
{
    int64_t n = gr_numel(&c->in[0]->shape);
    for (int64_t i = 0; i < n; i++) {
        double v = gr_get_f64(c->in[0], i);
        gr_set_f64(c->out[0], i, c->out[0]->dtype == GR_F32 || c->out[0]->dtype == GR_F64 ? v : trunc(v));
    }
}

const gr_opdef gr_ops_ew_basic[] = {
    {"Add", arith_prepare, arith_forward, NULL, 0},
    {"Sub", arith_prepare, arith_forward, NULL, 0},
    {"Mul", arith_prepare, arith_forward, NULL, 0},
    {"Div", arith_prepare, arith_forward, NULL, 0},
    {"Pow", arith_prepare, arith_forward, NULL, 0},
    {"Equal", cmp_prepare, cmp_forward, NULL, 0},
    {"Less", cmp_prepare, cmp_forward, NULL, 0},
    {"Greater", cmp_prepare, cmp_forward, NULL, 0},
    {"Where", where_prepare, where_forward, NULL, 0},
    {"Relu", unary_prepare, relu_forward, NULL, 0},
    {"LeakyRelu", unary_prepare, leakyrelu_forward, NULL, 0},
    {"Clip", unary_prepare, clip_forward, NULL, 0},
    {"Sigmoid", unary_prepare, sigmoid_forward, NULL, 0},
    {"HardSigmoid", unary_prepare, hardsigmoid_forward, NULL, 0},
    {"HardSwish", unary_prepare, hardswish_forward, NULL, 0},
    {"Tanh", unary_prepare, tanh_forward, NULL, 0},
    {"Erf", unary_prepare, erf_forward, NULL, 0},
    {"Sqrt", unary_prepare, sqrt_forward, NULL, 0},
    {"Exp", unary_prepare, exp_forward, NULL, 0},
    {"Log", unary_prepare, log_forward, NULL, 0},
    {"Neg", unary_prepare, neg_forward, NULL, 0},
    {"Abs", unary_prepare, abs_forward, NULL, 0},
    {"Reciprocal", unary_prepare, reciprocal_forward, NULL, 0},
    {"Softplus", unary_prepare, softplus_forward, NULL, 0},
    {"Cast", cast_prepare, cast_forward, NULL, 0},
    {0},
};
