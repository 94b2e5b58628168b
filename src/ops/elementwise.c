/* elementwise.c — the elementwise ops: binary arithmetic, comparisons and logic with numpy
 * multidirectional broadcasting, the variadic Max/Min/Sum/Mean, Where, the unary activations and
 * math functions, Clip and Cast. Depends on ops.h (and so core) only.
 *
 * Every op here is a kernel per element type, chosen in prepare, and one of three drivers:
 *   - flat (unary, Clip, Cast): y[i] = f(x[i]) in chunks, threaded on big tensors;
 *   - broadcast (binary, Where): the output is walked as rows of its innermost merged dimension,
 *     each row one kernel call with an input stride of 1 (a full row) or 0 (a broadcast value).
 *     Merging adjacent dimensions that broadcast alike makes the common cases cheap: same shapes
 *     are a single row, "tensor op scalar" a row with stride 0, and per-channel (N,C,H,W) with
 *     (1,C,1,1) is N*C rows of H*W with a scalar per row.
 * Element types: float32, float64, int64, int32, int8, uint8, bool, as each ONNX op allows.
 * Every kernel is plain C. Sigmoid, Tanh and Erf on float32 also have vectorisable polynomial
 * kernels used when c->use_ref == 0; the libm ones stay the reference.
 * Backward (float32) is described at its section below: flat loops for the unary ops, the same
 * row walker plus a reduction over broadcast dims for the others. */
#include "ops.h"

#include <float.h>
#include <omp.h>
#include <string.h>
#include <tgmath.h> /* exp, tanh... pick the float or double function from the argument type */

/* Work splitting: threads only for tensors big enough to pay for them. */
#define EW_PAR_MIN 32768
#define EW_CHUNK   8192

/* ---- element types ---- */

enum { S_F32, S_F64, S_I64, S_I32, S_I8, S_U8, S_BOOL, NSLOT };

static int slot_of(int dt)
{
    switch (dt) {
    case GR_F32: return S_F32;
    case GR_F64: return S_F64;
    case GR_I64: return S_I64;
    case GR_I32: return S_I32;
    case GR_I8: return S_I8;
    case GR_U8: return S_U8;
    case GR_BOOL: return S_BOOL;
    }
    return -1;
}

/* ONNX TensorProto.DataType names, for messages about types graft lacks. */
static const char *onnx_type_name(int dt)
{
    static const char *const names[] = {
        "undefined",      "float32",    "uint8",         "int8",       "uint16",   "int16",
        "int32",          "int64",      "string",        "bool",       "float16",  "float64",
        "uint32",         "uint64",     "complex64",     "complex128", "bfloat16", "float8e4m3fn",
        "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz"
    };
    return dt >= 0 && dt < (int)(sizeof names / sizeof *names) ? names[dt] : "unknown";
}

/* ---- op state and kernel signatures ---- */

typedef struct ew_args {
    float alpha, beta, gamma; /* activation attributes */
    const void *lo, *hi;      /* Clip bounds, in the input's type */
} ew_args;

typedef struct bplan bplan;
typedef struct ew_state ew_state;

/* One row of a broadcast op: n outputs from up to three inputs read with strides 0 or 1. */
typedef struct seg {
    char *o;
    const char *in[3];
    int64_t st[3];
    const ew_state *s;
} seg;

typedef void (*seg_fn)(const seg *g, int64_t n);
typedef void (*flat_fn)(void *y, const void *x, int64_t n, const ew_args *a);
/* backward kernels (defined with the backward section below) */
typedef struct gseg gseg;
typedef void (*gseg_fn)(const gseg *s, int64_t n);
typedef void (*gflat_fn)(float *dx, const float *g, const float *x, const float *y, int64_t n,
                         const ew_args *a);

/* A broadcast walk: the output shape with size-1 dims dropped and adjacent dims merged where
 * every input's strides allow, so that the innermost dim is as long as possible. */
struct bplan {
    int rank; /* >= 1 */
    int64_t numel;
    int64_t d[GR_MAXDIM];     /* merged output dims */
    int64_t st[3][GR_MAXDIM]; /* element strides of each input on them, 0 where broadcast */
};

struct ew_state {
    seg_fn kern;   /* broadcast ops */
    flat_fn fkern; /* unary ops, Clip, Cast */
    ew_args args;
    size_t ein[3], eo; /* element sizes of the inputs and of the output */
    int dt[2], dto;    /* dtypes, for the mixed-type Pow kernel */
    int nplan;         /* number of inputs - 1: a plan for each step of the fold */
    int mean;          /* Mean: divide by the number of inputs at the end */
    bplan *plan;
    _Alignas(8) unsigned char lo[8], hi[8]; /* Clip's default bounds, in the input's type */
    /* backward (set in prepare when need_grad != 0) */
    struct ginput *gin; /* broadcast ops: one per input */
    gflat_fn gk;
    flat_fn bkern; /* Cast: dout back to the input's type */
};

/* Backward set-up of the broadcast ops (defined with the backward kernels below). */
static int binop_grad_prepare(gr_opctx *c, ew_state *s, const gr_shape *out);
static int where_grad_prepare(gr_opctx *c, ew_state *s, const gr_shape *out);

/* ---- the two drivers ---- */

static void bplan_init(bplan *p, const gr_shape *out, const gr_shape *const *in, int nin)
{
    int64_t full[3][GR_MAXDIM];
    for (int i = 0; i < nin; i++) {
        int64_t stride = 1;
        for (int d = out->rank - 1; d >= 0; d--) {
            int sd = d - (out->rank - in[i]->rank);
            int64_t dim = sd >= 0 ? in[i]->d[sd] : 1;
            full[i][d] = dim == 1 ? 0 : stride;
            stride *= dim;
        }
    }
    memset(p, 0, sizeof *p);
    p->numel = gr_numel(out);
    for (int d = 0; d < out->rank; d++) {
        if (out->d[d] == 1) continue;
        int r = p->rank, merge = r > 0;
        for (int i = 0; i < nin && merge; i++) merge = p->st[i][r - 1] == full[i][d] * out->d[d];
        if (merge) {
            p->d[r - 1] *= out->d[d];
        } else {
            p->d[r] = out->d[d];
            p->rank++;
        }
        for (int i = 0; i < nin; i++) p->st[i][p->rank - 1] = full[i][d];
    }
    if (!p->rank) p->rank = 1, p->d[0] = 1; /* a single element: strides stay 0 */
}

/* Runs f over the plan: rows of the innermost dim, cut in chunks so that threads share
 * even a single long row. in[i] has elements of ein[i] bytes; out of eo bytes. */
static void run_plan(const bplan *p, seg_fn f, const ew_state *s, void *out, size_t eo,
                     const void *const *in, const size_t *ein, int nin)
{
    if (p->numel == 0) return;
    int r = p->rank;
    int64_t inner = p->d[r - 1], rows = p->numel / inner;
    int64_t nchunk = (inner + EW_CHUNK - 1) / EW_CHUNK, tasks = rows * nchunk;
#pragma omp parallel for schedule(static) if (p->numel > EW_PAR_MIN)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t row = t / nchunk, j0 = t % nchunk * EW_CHUNK;
        int64_t len = inner - j0 < EW_CHUNK ? inner - j0 : EW_CHUNK;
        int64_t off[3] = { 0, 0, 0 };
        for (int64_t d = r - 2, rem = row; d >= 0; d--) {
            int64_t k = rem % p->d[d];
            rem /= p->d[d];
            for (int i = 0; i < nin; i++) off[i] += k * p->st[i][d];
        }
        seg g = { .o = (char *)out + (row * inner + j0) * (int64_t)eo, .s = s };
        for (int i = 0; i < nin; i++) {
            g.st[i] = p->st[i][r - 1];
            g.in[i] = (const char *)in[i] + (off[i] + j0 * g.st[i]) * (int64_t)ein[i];
        }
        f(&g, len);
    }
}

/* y[i] = f(x[i]) for n elements, in chunks. */
static void run_flat(flat_fn f, const ew_args *a, void *y, size_t eo, const void *x, size_t ei,
                     int64_t n)
{
    int64_t nchunk = (n + EW_CHUNK - 1) / EW_CHUNK;
#pragma omp parallel for schedule(static) if (n > EW_PAR_MIN)
    for (int64_t t = 0; t < nchunk; t++) {
        int64_t i0 = t * EW_CHUNK, len = n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK;
        f((char *)y + i0 * (int64_t)eo, (const char *)x + i0 * (int64_t)ei, len, a);
    }
}

/* ---- binary kernels ---- */

/* Kernel loops carry LOOP_HINT: "omp simd" (vectorise, even at -O2) for plain arithmetic, and
 * nothing for loops that call libm or divide integers, which cannot be vectorised (clang warns
 * when it cannot honour the pragma). It is redefined before each group of kernels below. */
#define LOOP_HINT _Pragma("omp simd")

/* o[i] = EXPR with x = a[i*sa], y = b[i*sb]; the stride patterns get their own loops so that
 * the compiler vectorises each. o may be a (in place, same index), so no restrict. */
#define BIN_KERNEL(NAME, TA, TB, TO, EXPR)                                                         \
    static void NAME(const seg *g, int64_t n)                                                      \
    {                                                                                              \
        const TA *a = (const TA *)g->in[0];                                                        \
        const TB *b = (const TB *)g->in[1];                                                        \
        TO *o = (TO *)g->o;                                                                        \
        int64_t sa = g->st[0], sb = g->st[1];                                                      \
        if (sa == 1 && sb == 1) {                                                                  \
            LOOP_HINT for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                TA x = a[i];                                                                       \
                TB y = b[i];                                                                       \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else if (sa == 1 && sb == 0) {                                                           \
            TB y = b[0];                                                                           \
            LOOP_HINT for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                TA x = a[i];                                                                       \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else if (sa == 0 && sb == 1) {                                                           \
            TA x = a[0];                                                                           \
            LOOP_HINT for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                TB y = b[i];                                                                       \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                      \
                TA x = a[i * sa];                                                                  \
                TB y = b[i * sb];                                                                  \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        }                                                                                          \
    }

/* Same-type kernels: floats, signed ints, all ints; OUT is the output type or the input's. */
#define BIN_FLOAT(NAME, OUT_F32, OUT_F64, EXPR)                                                    \
    BIN_KERNEL(NAME##_f32, float, float, OUT_F32, EXPR)                                            \
    BIN_KERNEL(NAME##_f64, double, double, OUT_F64, EXPR)
#define BIN_SINT(NAME, O64, O32, O8, EXPR)                                                         \
    BIN_KERNEL(NAME##_i64, int64_t, int64_t, O64, EXPR)                                            \
    BIN_KERNEL(NAME##_i32, int32_t, int32_t, O32, EXPR)                                            \
    BIN_KERNEL(NAME##_i8, int8_t, int8_t, O8, EXPR)
#define BIN_ARITH(NAME, FEXPR, IEXPR)                                                              \
    BIN_FLOAT(NAME, float, double, FEXPR)                                                          \
    BIN_SINT(NAME, int64_t, int32_t, int8_t, IEXPR)                                                \
    BIN_KERNEL(NAME##_u8, uint8_t, uint8_t, uint8_t, IEXPR)
#define BIN_CMP(NAME, EXPR)                                                                        \
    BIN_FLOAT(NAME, uint8_t, uint8_t, EXPR)                                                        \
    BIN_SINT(NAME, uint8_t, uint8_t, uint8_t, EXPR)                                                \
    BIN_KERNEL(NAME##_u8, uint8_t, uint8_t, uint8_t, EXPR)

/* Integer division and remainder: C truncation as ONNX Runtime and numpy's astype do; a zero
 * divisor gives 0 (numpy's result) instead of a trap, and x / -1 wraps instead of trapping. */
static inline int64_t sdiv(int64_t x, int64_t y)
{
    return y == 0 ? 0 : y == -1 ? (int64_t)(0 - (uint64_t)x) : x / y;
}
static inline int64_t srem(int64_t x, int64_t y) { return y == 0 || y == -1 ? 0 : x % y; }
/* Python's %: the remainder takes the divisor's sign (Mod with fmod=0). */
static inline int64_t spymod(int64_t x, int64_t y)
{
    int64_t r = srem(x, y);
    return r != 0 && (r < 0) != (y < 0) ? r + y : r;
}

/* Integer + - * wrap around (computed unsigned: signed overflow is undefined in C). */
BIN_ARITH(add, x + y, (uint64_t)x + (uint64_t)y)
BIN_ARITH(sub, x - y, (uint64_t)x - (uint64_t)y)
BIN_ARITH(mul, x *y, (uint64_t)x *(uint64_t)y)
BIN_FLOAT(div, float, double, x / y)
/* Max and Min propagate NaN, as numpy's maximum and minimum do. */
BIN_FLOAT(max, float, double, isnan(x) || x > y ? x : y)
BIN_FLOAT(min, float, double, isnan(x) || x < y ? x : y)
BIN_SINT(max, int64_t, int32_t, int8_t, x > y ? x : y)
BIN_SINT(min, int64_t, int32_t, int8_t, x < y ? x : y)
BIN_KERNEL(max_u8, uint8_t, uint8_t, uint8_t, x > y ? x : y)
BIN_KERNEL(min_u8, uint8_t, uint8_t, uint8_t, x < y ? x : y)
BIN_CMP(eq, x == y)
BIN_CMP(lt, x < y)
BIN_CMP(gt, x > y)
BIN_CMP(le, x <= y)
BIN_CMP(ge, x >= y)
BIN_KERNEL(and_b, uint8_t, uint8_t, uint8_t, (x != 0) & (y != 0))
BIN_KERNEL(or_b, uint8_t, uint8_t, uint8_t, (x != 0) | (y != 0))
BIN_KERNEL(xor_b, uint8_t, uint8_t, uint8_t, (x != 0) ^ (y != 0))
/* BitShift (unsigned types only in ONNX): shifting by the width or more gives 0, as in numpy. */
BIN_KERNEL(shl_u8, uint8_t, uint8_t, uint8_t, y < 8 ? x << y : 0)
BIN_KERNEL(shr_u8, uint8_t, uint8_t, uint8_t, y < 8 ? x >> y : 0)
/* PRelu: y is the slope. */
BIN_FLOAT(prelu, float, double, x < 0 ? x * y : x)
BIN_KERNEL(prelu_i64, int64_t, int64_t, int64_t, x < 0 ? (uint64_t)x * (uint64_t)y : (uint64_t)x)
BIN_KERNEL(prelu_i32, int32_t, int32_t, int32_t, x < 0 ? (uint64_t)x * (uint64_t)y : (uint64_t)x)

#undef LOOP_HINT
#define LOOP_HINT /* integer division and libm calls */
BIN_SINT(div, int64_t, int32_t, int8_t, sdiv(x, y))
BIN_KERNEL(div_u8, uint8_t, uint8_t, uint8_t, y ? x / y : 0)
/* Mod: fmod=0 is Python's % (integers only), fmod=1 is C's fmod / % (dividend's sign). */
BIN_SINT(pymod, int64_t, int32_t, int8_t, spymod(x, y))
BIN_SINT(cmod, int64_t, int32_t, int8_t, srem(x, y))
BIN_KERNEL(mod_u8, uint8_t, uint8_t, uint8_t, y ? x % y : 0)
BIN_FLOAT(fmod, float, double, fmod(x, y))
BIN_FLOAT(pow, float, double, pow(x, y))
#undef LOOP_HINT
#define LOOP_HINT _Pragma("omp simd")

/* Pow(x, 2) with a constant exponent, as exporters write for variances: x * x. */
#define SQUARE_KERNEL(NAME, T)                                                                     \
    static void NAME(const seg *g, int64_t n)                                                      \
    {                                                                                              \
        const T *a = (const T *)g->in[0];                                                          \
        T *o = (T *)g->o;                                                                          \
        int64_t sa = g->st[0];                                                                     \
        for (int64_t i = 0; i < n; i++) o[i] = a[i * sa] * a[i * sa];                              \
    }
SQUARE_KERNEL(square_f32, float)
SQUARE_KERNEL(square_f64, double)

static inline double load_f64(const char *p, int dt, int64_t i)
{
    switch (dt) {
    case GR_F32: return ((const float *)p)[i];
    case GR_F64: return ((const double *)p)[i];
    case GR_I64: return (double)((const int64_t *)p)[i];
    case GR_I32: return ((const int32_t *)p)[i];
    case GR_I8: return ((const int8_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
    }
}

/* Float to integer: truncation toward zero (C, numpy, ONNX Runtime), NaN to 0 and saturation
 * at the int64 range so that no input is undefined behaviour; narrower types then wrap. */
static inline int64_t f2i(double v)
{
    return v != v ? 0 : v >= 0x1p63 ? INT64_MAX : v <= -0x1p63 ? INT64_MIN : (int64_t)v;
}

/* Pow of any other type pair (an integer base, or a float base with another exponent type):
 * computed in double, an integer result truncated as numpy's astype does. */
static void pow_mixed(const seg *g, int64_t n)
{
    const ew_state *s = g->s;
    for (int64_t i = 0; i < n; i++) {
        double v = pow(load_f64(g->in[0], s->dt[0], i * g->st[0]),
                       load_f64(g->in[1], s->dt[1], i * g->st[1]));
        switch (s->dto) {
        case GR_F32: ((float *)g->o)[i] = (float)v; break;
        case GR_F64: ((double *)g->o)[i] = v; break;
        case GR_I64: ((int64_t *)g->o)[i] = f2i(v); break;
        default: ((int32_t *)g->o)[i] = (int32_t)f2i(v); break;
        }
    }
}

/* ---- the binary ops ---- */

/* What a binary op's prepare does beyond picking its kernel. */
enum { B_PLAIN, B_SUB, B_MEAN, B_MOD, B_SHIFT, B_POW, B_PRELU };

/* A binary op's part of its row (gr_opdef.impl). */
typedef struct binop {
    int kind;        /* B_* */
    int out_bool;    /* comparisons and logic give bool */
    int variadic;    /* Max, Min, Sum, Mean: 1 to N inputs */
    seg_fn k[NSLOT]; /* by the inputs' type; NULL where ONNX does not allow it */
    /* backward of two inputs: the term of each (dout times the partial derivative); NULL: the
     * term is dout itself, scaled (Add, Sub, Sum, Mean). Max and Min of more inputs pass dout
     * where the input equals the output. */
    gseg_fn d[2];
} binop;

#define K_NUM(P)                                                                                   \
    {                                                                                              \
        P##_f32, P##_f64, P##_i64, P##_i32, P##_i8, P##_u8, NULL                                   \
    }
#define K_FLOAT(P)                                                                                 \
    {                                                                                              \
        P##_f32, P##_f64, NULL, NULL, NULL, NULL, NULL                                             \
    }

static const seg_fn fmod_kernels[NSLOT] = { fmod_f32, fmod_f64, cmod_i64, cmod_i32,
                                            cmod_i8,  mod_u8,   NULL };

static int is_const_two(const gr_tensor *t)
{
    return t->data && gr_numel(&t->shape) == 1 && gr_get_f64(t, 0) == 2.0;
}

/* Picks the kernel for the inputs' types; Mod's fmod and Pow's type pairs are decided here. */
static int binop_kernel(gr_opctx *c, const binop *op, ew_state *s)
{
    const gr_tensor *a = c->in[0], *b = c->nin > 1 ? c->in[1] : NULL;
    int sl = slot_of(a->dtype);
    GR_ASSERT(sl >= 0); /* the loader admits graft's types only */
    s->kern = op->k[sl];
    if (op->kind == B_MOD) {
        int64_t fm = gr_attr_int(c, "fmod", 0);
        if (fm != 0 && fm != 1)
            return gr_op_err(c, GRAFT_E_FORMAT, "attribute fmod must be 0 or 1, got %lld",
                             (long long)fm);
        if (fm == 0 && (sl == S_F32 || sl == S_F64))
            return gr_op_err(c, GRAFT_E_FORMAT,
                             "Mod of %s inputs needs fmod=1 (ONNX requires it for floating point)",
                             gr_dtype_name(a->dtype));
        if (fm) s->kern = fmod_kernels[sl];
    }
    if (op->kind == B_SHIFT) {
        const char *dir = gr_attr_str(c, "direction", "");
        if (strcmp(dir, "LEFT") && strcmp(dir, "RIGHT"))
            return gr_op_err(c, GRAFT_E_FORMAT,
                             "attribute direction must be LEFT or RIGHT, got '%s'", dir);
        if (!strcmp(dir, "RIGHT") && s->kern) s->kern = shr_u8;
    }
    if (op->kind == B_POW) {
        if (sl != S_F32 && sl != S_F64 && sl != S_I64 && sl != S_I32)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "base of type %s is not supported",
                             gr_dtype_name(a->dtype));
        if (b->dtype == GR_BOOL)
            return gr_op_err(c, GRAFT_E_UNSUPPORTED, "exponent of type bool is not supported");
        if (b->dtype != a->dtype || !s->kern) s->kern = pow_mixed;
        if ((sl == S_F32 || sl == S_F64) && is_const_two(b))
            s->kern = sl == S_F32 ? square_f32 : square_f64;
        s->dt[0] = a->dtype, s->dt[1] = b->dtype, s->dto = a->dtype;
        return GRAFT_OK;
    }
    for (int i = 1; i < c->nin; i++)
        if (c->in[i]->dtype != a->dtype)
            return gr_op_err(c, GRAFT_E_FORMAT, "input %d has type %s but input 0 has %s", i,
                             gr_dtype_name(c->in[i]->dtype), gr_dtype_name(a->dtype));
    if (!s->kern)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "inputs of type %s are not supported",
                         gr_dtype_name(a->dtype));
    return GRAFT_OK;
}

/* Binary ops, and the variadic ones folded as out = op(in0, in1), out = op(out, in2)... */
static int binop_prepare(gr_opctx *c)
{
    const binop *op = c->def->impl;
    static const char *const no_attrs[] = { NULL }, *const mod_attrs[] = { "fmod", NULL },
                             *const shift_attrs[] = { "direction", NULL };
    int st = gr_op_check_attrs(c, op->kind == B_MOD     ? mod_attrs
                                  : op->kind == B_SHIFT ? shift_attrs
                                                        : no_attrs);
    if (!st) st = gr_op_check_arity(c, op->variadic ? 1 : 2, op->variadic ? 1 << 20 : 2, 1, 1);
    if (st) return st;
    for (int i = 0; i < c->nin; i++)
        if (!c->in[i]) return gr_op_err(c, GRAFT_E_FORMAT, "input %d is missing", i);
    ew_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    if ((st = binop_kernel(c, op, s))) return st;

    gr_shape out = c->in[0]->shape;
    for (int i = 1; i < c->nin; i++)
        if ((st = gr_broadcast_shape(c, &out, &c->in[i]->shape, &out))) return st;
    if (op->kind == B_PRELU && !gr_shape_eq(&out, &c->in[0]->shape)) {
        char sx[128], ss[128];
        return gr_op_err(c, GRAFT_E_SHAPE, "slope of shape %s does not broadcast to X of shape %s",
                         gr_shape_str(&c->in[1]->shape, ss, sizeof ss),
                         gr_shape_str(&c->in[0]->shape, sx, sizeof sx));
    }
    int dto = op->out_bool ? GR_BOOL : c->in[0]->dtype;
    s->nplan = c->nin - 1;
    s->mean = op->kind == B_MEAN;
    s->eo = gr_dtype_size(dto);
    s->ein[0] = gr_dtype_size(c->in[0]->dtype);
    s->ein[1] = c->nin > 1 ? gr_dtype_size(c->in[1]->dtype) : 0;
    if (s->nplan > 0) {
        s->plan = gr_arena_alloc(c->arena, (size_t)s->nplan * sizeof *s->plan);
        if (!s->plan) return GRAFT_E_NOMEM;
        const gr_shape *first[2] = { &c->in[0]->shape, &c->in[1]->shape };
        bplan_init(&s->plan[0], &out, first, 2);
        for (int k = 1; k < s->nplan; k++) {
            const gr_shape *step[2] = { &out, &c->in[k + 1]->shape };
            bplan_init(&s->plan[k], &out, step, 2);
        }
    }
    if (c->need_grad && (st = binop_grad_prepare(c, s, &out))) return st;
    return gr_op_set_out(c, 0, dto, &out);
}

static void binop_forward(gr_opctx *c)
{
    const ew_state *s = c->params;
    gr_tensor *y = c->out[0];
    if (c->nin == 1) { /* Max/Min/Sum/Mean of one input */
        memcpy(y->data, c->in[0]->data, gr_tensor_bytes(y));
        return;
    }
    const void *in[2] = { c->in[0]->data, c->in[1]->data };
    run_plan(&s->plan[0], s->kern, s, y->data, s->eo, in, s->ein, 2);
    size_t fold_sizes[2] = { s->eo, s->ein[0] };
    for (int k = 1; k < s->nplan; k++) {
        const void *step[2] = { y->data, c->in[k + 1]->data };
        run_plan(&s->plan[k], s->kern, s, y->data, s->eo, step, fold_sizes, 2);
    }
    if (s->mean) {
        int64_t n = gr_numel(&y->shape);
        if (y->dtype == GR_F32)
            for (int64_t i = 0; i < n; i++) ((float *)y->data)[i] /= (float)c->nin;
        else
            for (int64_t i = 0; i < n; i++) ((double *)y->data)[i] /= c->nin;
    }
}

/* ---- Where ---- */

#define WHERE_KERNEL(NAME, T)                                                                      \
    static void NAME(const seg *g, int64_t n)                                                      \
    {                                                                                              \
        const uint8_t *cond = (const uint8_t *)g->in[0];                                           \
        const T *x = (const T *)g->in[1], *y = (const T *)g->in[2];                                \
        T *o = (T *)g->o;                                                                          \
        int64_t sc = g->st[0], sx = g->st[1], sy = g->st[2];                                       \
        if (sc == 1 && sx == 1 && sy == 1) {                                                       \
            LOOP_HINT for (int64_t i = 0; i < n; i++) o[i] = cond[i] ? x[i] : y[i];                \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++) o[i] = cond[i * sc] ? x[i * sx] : y[i * sy];           \
        }                                                                                          \
    }
WHERE_KERNEL(where_1, uint8_t)
WHERE_KERNEL(where_4, uint32_t)
WHERE_KERNEL(where_8, uint64_t)

static int where_prepare(gr_opctx *c)
{
    static const char *const no_attrs[] = { NULL };
    int st = gr_op_check_attrs(c, no_attrs);
    if (!st) st = gr_op_check_arity(c, 3, 3, 1, 1);
    if (st) return st;
    if (c->in[0]->dtype != GR_BOOL)
        return gr_op_err(c, GRAFT_E_FORMAT, "condition has type %s, expected bool",
                         gr_dtype_name(c->in[0]->dtype));
    int dt = c->in[1]->dtype;
    if (c->in[2]->dtype != (gr_dtype)dt)
        return gr_op_err(c, GRAFT_E_FORMAT, "X has type %s but Y has %s", gr_dtype_name(dt),
                         gr_dtype_name(c->in[2]->dtype));
    gr_shape out;
    if ((st = gr_broadcast_shape(c, &c->in[0]->shape, &c->in[1]->shape, &out)) ||
        (st = gr_broadcast_shape(c, &out, &c->in[2]->shape, &out)))
        return st;
    ew_state *s = gr_op_params(c, sizeof *s);
    if (!s || !(s->plan = gr_arena_alloc(c->arena, sizeof *s->plan))) return GRAFT_E_NOMEM;
    s->eo = gr_dtype_size(dt);
    s->kern = s->eo == 1 ? where_1 : s->eo == 4 ? where_4 : where_8;
    s->ein[0] = 1, s->ein[1] = s->ein[2] = s->eo;
    const gr_shape *in[3] = { &c->in[0]->shape, &c->in[1]->shape, &c->in[2]->shape };
    bplan_init(s->plan, &out, in, 3);
    if (c->need_grad && (st = where_grad_prepare(c, s, &out))) return st;
    return gr_op_set_out(c, 0, dt, &out);
}

static void where_forward(gr_opctx *c)
{
    const ew_state *s = c->params;
    const void *in[3] = { c->in[0]->data, c->in[1]->data, c->in[2]->data };
    run_plan(s->plan, s->kern, s, c->out[0]->data, s->eo, in, s->ein, 3);
}

/* ---- unary kernels ---- */

/* y[i] = EXPR of v = x[i]; alpha, beta, gamma are the op's attributes in the type T.
 * Constants are written as float literals so that float kernels stay in float. */
#define UN_KERNEL(NAME, T, EXPR)                                                                   \
    static void NAME(void *yv, const void *xv, int64_t n, const ew_args *p)                        \
    {                                                                                              \
        const T *x = xv;                                                                           \
        T *y = yv;                                                                                 \
        const T alpha = (T)p->alpha, beta = (T)p->beta, gamma = (T)p->gamma;                       \
        (void)alpha, (void)beta, (void)gamma;                                                      \
        LOOP_HINT for (int64_t i = 0; i < n; i++)                                                  \
        {                                                                                          \
            T v = x[i];                                                                            \
            y[i] = (T)(EXPR);                                                                      \
        }                                                                                          \
    }
#define UN_FLOAT(NAME, EXPR) UN_KERNEL(NAME##_f32, float, EXPR) UN_KERNEL(NAME##_f64, double, EXPR)

/* Integer kernels (no attributes); unsigned arithmetic so that -INT_MIN wraps. */
#define UN_IKERNEL(NAME, T, EXPR)                                                                  \
    static void NAME(void *yv, const void *xv, int64_t n, const ew_args *p)                        \
    {                                                                                              \
        const T *x = xv;                                                                           \
        T *y = yv;                                                                                 \
        (void)p;                                                                                   \
        LOOP_HINT for (int64_t i = 0; i < n; i++)                                                  \
        {                                                                                          \
            T v = x[i];                                                                            \
            y[i] = (T)(EXPR);                                                                      \
        }                                                                                          \
    }
#define UN_SINT(NAME, EXPR)                                                                        \
    UN_IKERNEL(NAME##_i64, int64_t, EXPR)                                                          \
    UN_IKERNEL(NAME##_i32, int32_t, EXPR) UN_IKERNEL(NAME##_i8, int8_t, EXPR)

#define CLAMP01(t) ((t) < 0 ? 0 : (t) > 1 ? 1 : (t)) /* NaN stays NaN, as with np.clip */

/* Relu and the like keep NaN (numpy's maximum does): compare so that NaN takes the x branch. */
UN_FLOAT(relu, v < 0 ? 0 : v)
UN_FLOAT(leakyrelu, v < 0 ? alpha * v : v)
UN_FLOAT(thresholdedrelu, v > alpha ? v : 0)
UN_FLOAT(shrink, v<-alpha ? v + beta : v> alpha ? v - beta : 0) /* alpha = lambd, beta = bias */
UN_FLOAT(hardsigmoid, CLAMP01(alpha *v + beta))
UN_FLOAT(hardswish, v *CLAMP01(v / 6.0f + 0.5f))
UN_FLOAT(softsign, v / (1.0f + fabs(v)))
UN_FLOAT(reciprocal, 1.0f / v)
UN_FLOAT(floor, floor(v))
UN_FLOAT(ceil, ceil(v))
UN_FLOAT(round, nearbyint(v)) /* the default rounding mode: half to even */
UN_FLOAT(neg, -v)
UN_FLOAT(abs, fabs(v))
UN_FLOAT(sign, v > 0 ? 1 : v < 0 ? -1 : v) /* 0 and NaN map to themselves */
UN_SINT(neg, 0 - (uint64_t)v)
UN_SINT(abs, v < 0 ? 0 - (uint64_t)v : (uint64_t)v)
UN_SINT(sign, (v > 0) - (v < 0))
UN_SINT(relu, v < 0 ? 0 : v)
UN_IKERNEL(abs_u8, uint8_t, v)
UN_IKERNEL(sign_u8, uint8_t, v > 0)
UN_IKERNEL(not_b, uint8_t, v == 0)

#undef LOOP_HINT
#define LOOP_HINT /* libm calls */
UN_FLOAT(elu, v < 0 ? alpha * expm1(v) : v)
UN_FLOAT(selu, v <= 0 ? gamma * alpha * expm1(v) : gamma * v)
UN_FLOAT(celu, v < 0 ? alpha * expm1(v / alpha) : v)
UN_FLOAT(sigmoid, 1.0f / (1.0f + exp(-v)))
UN_FLOAT(softplus, v > 0 ? v + log1p(exp(-v)) : log1p(exp(v)))
UN_FLOAT(tanh, tanh(v))
UN_FLOAT(erf, erf(v))
UN_FLOAT(sqrt, sqrt(v))
UN_FLOAT(exp, exp(v))
UN_FLOAT(log, log(v))
UN_FLOAT(sin, sin(v))
UN_FLOAT(cos, cos(v))
UN_FLOAT(tan, tan(v))
UN_FLOAT(asin, asin(v))
UN_FLOAT(acos, acos(v))
UN_FLOAT(atan, atan(v))
UN_FLOAT(sinh, sinh(v))
UN_FLOAT(cosh, cosh(v))
UN_FLOAT(asinh, asinh(v))
UN_FLOAT(acosh, acosh(v))
UN_FLOAT(atanh, atanh(v))
#undef LOOP_HINT
#define LOOP_HINT _Pragma("omp simd")

/* ---- fast float32 Sigmoid, Tanh, Erf ----
 * libm's expf, tanhf and erff are scalar calls that no compiler vectorises, which makes these
 * activations ~10x slower than Relu. These are plain C the compiler vectorises, used when
 * c->use_ref == 0; the libm kernels above stay the reference (tests compare the two).
 * gcc 12 vectorises their loops only with AVX-512's masks, so each also has an avx512f clone,
 * chosen at load time on CPUs that have it: a build without -march=native keeps the speed
 * (on a 2-core EPYC: Sigmoid 5.8x, Tanh 11x, Erf 5.3x faster than the default clone). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FAST_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define FAST_CLONES
#endif

/* exp(x) after Cephes expf: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r,
 * 2^n written into the exponent bits. Relative error ~2 ulp for x in [-87, 88]; outside it the
 * result saturates (at ~1e-38 and ~3e38), which is fine for the callers below. NaN propagates. */
static inline float fast_expf(float x)
{
    float xc = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    xc = x != x ? 0.0f : xc;
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;              /* ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = { .i = ((int32_t)n + 127) << 23 };
    return x != x ? x : e * scale.f;
}

FAST_CLONES static void sigmoid_fast(void *yv, const void *xv, int64_t n, const ew_args *p)
{
    const float *x = xv;
    float *y = yv;
    (void)p;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + fast_expf(-x[i]));
}

/* tanh: Cephes tanhf's odd polynomial below |x| = 0.625, 1 - 2 / (e^2|x| + 1) above. */
FAST_CLONES static void tanh_fast(void *yv, const void *xv, int64_t n, const ew_args *p)
{
    const float *x = xv;
    float *y = yv;
    (void)p;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], a = fabsf(v), z = v * v;
        float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                        1.33314422036e-1f) *
                           z -
                       3.33332819422e-1f) *
                          z * v +
                      v;
        float big = 1.0f - 2.0f / (fast_expf(2.0f * a) + 1.0f);
        y[i] = a < 0.625f ? small : copysignf(big, v);
    }
}

/* erf: its Taylor series to x^13 below |x| = 0.5 (error < 1e-9), Abramowitz & Stegun 7.1.26
 * above (absolute error < 1.5e-7 where erf > 0.52). */
FAST_CLONES static void erf_fast(void *yv, const void *xv, int64_t n, const ew_args *p)
{
    const float *x = xv;
    float *y = yv;
    (void)p;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], a = fabsf(v), z = v * v;
        float small =
            v *
            (1.12837916709551257f +
             z * (-0.376126389031837524f +
                  z * (0.112837916709551257f +
                       z * (-0.0268661706451312518f +
                            z * (0.00522397762544218784f + z * (-0.000854832702345085283f +
                                                                z * 0.000120553329817896643f))))));
        float t = 1.0f / (1.0f + 0.3275911f * a);
        float poly =
            t * (0.254829592f +
                 t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
        float big = 1.0f - poly * fast_expf(-z);
        y[i] = a < 0.5f ? small : copysignf(big, v);
    }
}

/* ==================================== backward ====================================
 * The vector-Jacobian products, float32 only (prepare refuses other types when need_grad).
 *   - unary ops: dx = dout * f'(x), computed from the output y where that is cheaper (Relu,
 *     Sigmoid, Tanh, Exp, Elu, Sqrt...), a flat loop in chunks like the forward;
 *   - broadcast ops: the term of each input (dout times the partial derivative w.r.t. it) is
 *     computed with the forward's row walker, straight into din when the input has the
 *     output's shape, else into scratch, and then summed over the input's broadcast dims by a
 *     reduction plan (rplan) built from the same merged dimensions. Add, Sub, Sum and Mean need
 *     no term: dout itself is reduced (scaled by -1 or 1/n).
 * Nothing allocates in backward: plans live in the op state, terms and partial sums in scratch. */

/* One row of a term: o[i] = EXPR of dout g[i], output y[i] and up to two inputs read with
 * strides 0 or 1 (p = the first walked input, q = the second). */
struct gseg {
    float *o;
    const float *g, *y;
    const char *in[2];
    int64_t st[2];
};

/* The sum of an output-shaped term over the dims where an input is broadcast. The merged dims
 * of the walk are reordered: the input's kept dims first, then the reduced ones, the innermost
 * dim last (kept: a vector add; reduced: a row sum). */
typedef struct rplan {
    int rank, nkept;
    int64_t d[GR_MAXDIM], tst[GR_MAXDIM],
        ist[GR_MAXDIM];       /* extents; strides in the term and in din */
    int64_t kept, red, nelem; /* products of the kept and reduced outer dims; din's elements */
    int nth;                  /* threads (partial sums need nth * nelem floats of scratch) */
} rplan;

/* The backward of one input of a broadcast op. */
typedef struct ginput {
    gseg_fn term; /* NULL: the term is scale * dout */
    float scale;
    int nwalk, walk[2]; /* the op inputs the term reads, in order */
    size_t wein[2];
    bplan plan; /* the walk over the output */
    int reduce; /* the input is broadcast: reduce the term with red */
    rplan red;
} ginput;

#define GTERM2(NAME, EXPR)                                                                         \
    static void NAME(const gseg *s, int64_t n)                                                     \
    {                                                                                              \
        const float *p = (const float *)s->in[0], *q = (const float *)s->in[1];                    \
        const float *g = s->g, *y = s->y;                                                          \
        float *o = s->o;                                                                           \
        int64_t sp = s->st[0], sq = s->st[1];                                                      \
        (void)y;                                                                                   \
        if (sp == 1 && sq == 1) {                                                                  \
            LOOP_HINT for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                float x = p[i], w = q[i], gi = g[i], yi = y[i];                                    \
                (void)x, (void)w, (void)yi;                                                        \
                o[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else if (sp == 1 && sq == 0) {                                                           \
            const float w = q[0];                                                                  \
            LOOP_HINT for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                float x = p[i], gi = g[i], yi = y[i];                                              \
                (void)x, (void)w, (void)yi;                                                        \
                o[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else if (sp == 0 && sq == 1) {                                                           \
            const float x = p[0];                                                                  \
            LOOP_HINT for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                float w = q[i], gi = g[i], yi = y[i];                                              \
                (void)x, (void)w, (void)yi;                                                        \
                o[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                      \
                float x = p[i * sp], w = q[i * sq], gi = g[i], yi = y[i];                          \
                (void)x, (void)w, (void)yi;                                                        \
                o[i] = (EXPR);                                                                     \
            }                                                                                      \
        }                                                                                          \
    }

/* One walked input of type TP. */
#define GTERM1(NAME, TP, EXPR)                                                                     \
    static void NAME(const gseg *s, int64_t n)                                                     \
    {                                                                                              \
        const TP *p = (const TP *)s->in[0];                                                        \
        const float *g = s->g, *y = s->y;                                                          \
        float *o = s->o;                                                                           \
        if (s->st[0] == 1) {                                                                       \
            LOOP_HINT for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                TP x = p[i];                                                                       \
                float gi = g[i], yi = y[i];                                                        \
                (void)yi;                                                                          \
                o[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else {                                                                                   \
            const TP x = p[0];                                                                     \
            LOOP_HINT for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                float gi = g[i], yi = y[i];                                                        \
                (void)yi;                                                                          \
                o[i] = (EXPR);                                                                     \
            }                                                                                      \
        }                                                                                          \
    }

/* x = input 0, w = input 1, gi = dout, yi = the output. Max and Min mirror the forward's
 * choice (x when NaN or strictly larger/smaller, else w), so a tie sends dout to one side. */
GTERM2(mul_d0, gi *w)
GTERM2(mul_d1, gi *x)
GTERM2(div_d0, gi / w)
GTERM2(div_d1, -gi *yi / w)
GTERM2(prelu_d0, x < 0 ? gi * w : gi)
GTERM2(prelu_d1, x < 0 ? gi * x : 0.0f)
GTERM2(max_d0, isnan(x) || x > w ? gi : 0.0f)
GTERM2(max_d1, isnan(x) || x > w ? 0.0f : gi)
GTERM2(min_d0, isnan(x) || x < w ? gi : 0.0f)
GTERM2(min_d1, isnan(x) || x < w ? 0.0f : gi)
/* Max/Min of three or more inputs: each input equal to the output gets dout (ties: each). */
GTERM1(eq_mask, float, x == yi ? gi : 0.0f)
GTERM1(where_d1, uint8_t, x ? gi : 0.0f)
GTERM1(where_d2, uint8_t, x ? 0.0f : gi)
#undef LOOP_HINT
#define LOOP_HINT /* libm calls */
/* d/dx x^w = w x^(w-1); d/dw x^w = x^w log x, taken as 0 where x <= 0 (PyTorch's choice at 0). */
GTERM2(pow_d0, gi *w *pow(x, w - 1.0f))
GTERM2(pow_d1, x > 0 ? gi * yi * log(x) : 0.0f)
#undef LOOP_HINT
#define LOOP_HINT _Pragma("omp simd")

/* The forward's walker with a dout and an output at the term's offsets. */
static void run_gplan(const bplan *p, gseg_fn f, float *o, const float *g, const float *y,
                      const void *const *in, const size_t *ein, int nin)
{
    if (p->numel == 0) return;
    int r = p->rank;
    int64_t inner = p->d[r - 1], rows = p->numel / inner;
    int64_t nchunk = (inner + EW_CHUNK - 1) / EW_CHUNK, tasks = rows * nchunk;
#pragma omp parallel for schedule(static) if (p->numel > EW_PAR_MIN)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t row = t / nchunk, j0 = t % nchunk * EW_CHUNK;
        int64_t len = inner - j0 < EW_CHUNK ? inner - j0 : EW_CHUNK;
        int64_t off[2] = { 0, 0 }, at = row * inner + j0;
        for (int64_t d = r - 2, rem = row; d >= 0; d--) {
            int64_t k = rem % p->d[d];
            rem /= p->d[d];
            for (int i = 0; i < nin; i++) off[i] += k * p->st[i][d];
        }
        gseg s = { .o = o + at, .g = g + at, .y = y + at };
        for (int i = 0; i < nin; i++) {
            s.st[i] = p->st[i][r - 1];
            s.in[i] = (const char *)in[i] + (off[i] + j0 * s.st[i]) * (int64_t)ein[i];
        }
        f(&s, len);
    }
}

static void rplan_init(rplan *r, const gr_shape *out, const gr_shape *in)
{
    bplan b;
    const gr_shape *one[1] = { in };
    bplan_init(&b, out, one, 1);
    int n = b.rank, k = 0;
    int64_t tst[GR_MAXDIM];
    tst[n - 1] = 1;
    for (int d = n - 2; d >= 0; d--) tst[d] = tst[d + 1] * b.d[d + 1];
    memset(r, 0, sizeof *r);
    r->rank = n, r->kept = r->red = 1, r->nelem = gr_numel(in);
    r->nth = omp_get_max_threads();
    for (int pass = 0; pass < 2; pass++)
        for (int d = 0; d < n - 1; d++) {
            if ((b.st[0][d] != 0) != (pass == 0)) continue;
            r->d[k] = b.d[d], r->tst[k] = tst[d], r->ist[k] = b.st[0][d];
            if (pass == 0) r->nkept++, r->kept *= b.d[d];
            else r->red *= b.d[d];
            k++;
        }
    r->d[n - 1] = b.d[n - 1], r->tst[n - 1] = 1, r->ist[n - 1] = b.st[0][n - 1];
}

/* Floats of scratch a reduction needs for its per-thread partial sums. */
static int64_t rplan_scratch(const rplan *r)
{
    return r->nth > 1 && r->kept < r->nth ? r->nth * ((r->nelem + 15) & ~(int64_t)15) : 0;
}

static void rplan_offsets(const rplan *r, int d0, int d1, int64_t q, int64_t *to, int64_t *io)
{
    for (int d = d1 - 1; d >= d0; d--) {
        int64_t k = q % r->d[d];
        q /= r->d[d];
        *to += k * r->tst[d];
        *io += k * r->ist[d];
    }
}

/* dst += the rows of t for kept outer indices [q0, q1) and reduced ones [z0, z1). */
static void reduce_rows(const rplan *r, float *dst, const float *t, int64_t q0, int64_t q1,
                        int64_t z0, int64_t z1)
{
    int n = r->rank;
    int64_t inner = r->d[n - 1];
    int kept_inner = r->ist[n - 1] != 0;
    for (int64_t q = q0; q < q1; q++) {
        int64_t to = 0, io = 0;
        rplan_offsets(r, 0, r->nkept, q, &to, &io);
        for (int64_t z = z0; z < z1; z++) {
            int64_t t2 = to, i2 = io;
            rplan_offsets(r, r->nkept, n - 1, z, &t2, &i2);
            const float *src = t + t2;
            float *o = dst + i2;
            if (kept_inner) {
                LOOP_HINT for (int64_t j = 0; j < inner; j++) o[j] += src[j];
            } else {
                float acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int64_t j = 0; j < inner; j++) acc += src[j];
                o[0] += acc;
            }
        }
    }
}

/* dst (the input's shape) = scale * the sum of t (the output's shape) over the broadcast dims.
 * Threads split the kept dims when there are enough of them, else the reduced ones, each thread
 * summing into its own partial buffer (part) first. */
static void reduce_to(const rplan *r, float *dst, const float *t, float scale, float *part)
{
    int64_t total = r->kept * r->red * r->d[r->rank - 1], m = r->nelem;
    memset(dst, 0, (size_t)m * sizeof(float));
    int nth = total > EW_PAR_MIN ? r->nth : 1;
    if (nth > 1 && r->kept >= nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
        for (int th = 0; th < nth; th++)
            reduce_rows(r, dst, t, r->kept * th / nth, r->kept * (th + 1) / nth, 0, r->red);
    } else if (nth > 1 && r->red >= nth) {
        int64_t stride = (m + 15) & ~(int64_t)15;
#pragma omp parallel for num_threads(nth) schedule(static)
        for (int th = 0; th < nth; th++) {
            float *p = part + th * stride;
            memset(p, 0, (size_t)m * sizeof(float));
            reduce_rows(r, p, t, 0, r->kept, r->red * th / nth, r->red * (th + 1) / nth);
        }
        for (int th = 0; th < nth; th++) {
            const float *p = part + th * stride;
            LOOP_HINT for (int64_t j = 0; j < m; j++) dst[j] += p[j];
        }
    } else {
        reduce_rows(r, dst, t, 0, r->kept, 0, r->red);
    }
    if (scale != 1.0f) LOOP_HINT for (int64_t j = 0; j < m; j++) dst[j] *= scale;
}

/* dx = scale * g over n elements, in chunks. */
static void scale_copy(float *dx, const float *g, float scale, int64_t n)
{
    int64_t nchunk = (n + EW_CHUNK - 1) / EW_CHUNK;
#pragma omp parallel for schedule(static) if (n > EW_PAR_MIN)
    for (int64_t t = 0; t < nchunk; t++) {
        int64_t i0 = t * EW_CHUNK, len = n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK;
        LOOP_HINT for (int64_t i = i0; i < i0 + len; i++) dx[i] = scale * g[i];
    }
}

static int need_f32(gr_opctx *c, int i)
{
    if (c->in[i]->dtype != GR_F32)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                         "backward is implemented for float32 only; input %d is %s", i,
                         gr_dtype_name(c->in[i]->dtype));
    return GRAFT_OK;
}

/* Fills gin[i] for an input that needs a gradient; the caller sets term, scale and walk. Returns
 * the floats of scratch it needs. */
static int64_t ginput_finish(gr_opctx *c, ginput *g, int i, const gr_shape *out)
{
    const gr_shape *w[2];
    for (int k = 0; k < g->nwalk; k++) {
        w[k] = &c->in[g->walk[k]]->shape;
        g->wein[k] = gr_dtype_size(c->in[g->walk[k]]->dtype);
    }
    if (g->nwalk) bplan_init(&g->plan, out, w, g->nwalk);
    g->reduce = !gr_shape_eq(&c->in[i]->shape, out);
    if (!g->reduce) return 0;
    rplan_init(&g->red, out, &c->in[i]->shape);
    return (g->term ? (gr_numel(out) + 15) & ~(int64_t)15 : 0) + rplan_scratch(&g->red);
}

static void set_scratch(gr_opctx *c, int64_t floats)
{
    size_t b = (size_t)floats * sizeof(float) + 64;
    if (floats && b > c->scratch_bytes) c->scratch_bytes = b;
}

static int binop_grad_prepare(gr_opctx *c, ew_state *s, const gr_shape *out)
{
    const binop *op = c->def->impl;
    int st;
    if (!c->def->backward)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "%s has no gradient", c->op_type);
    for (int i = 0; i < c->nin; i++)
        if ((c->need_grad >> i & 1) && (st = need_f32(c, i))) return st;
    if (op->kind == B_POW && ((st = need_f32(c, 0)) || (st = need_f32(c, 1))))
        return st; /* each term reads both as float32 */
    if (!(s->gin = gr_arena_alloc(c->arena, (size_t)c->nin * sizeof *s->gin))) return GRAFT_E_NOMEM;
    memset(s->gin, 0, (size_t)c->nin * sizeof *s->gin);
    int64_t most = 0;
    for (int i = 0; i < c->nin; i++) {
        if (!(c->need_grad >> i & 1)) continue;
        ginput *g = &s->gin[i];
        g->scale = 1;
        if (c->nin == 2 && op->d[i]) {
            g->term = op->d[i];
            g->nwalk = 2, g->walk[0] = 0, g->walk[1] = 1;
        } else if (c->nin > 2 && op->d[0]) { /* Max, Min */
            g->term = eq_mask, g->nwalk = 1, g->walk[0] = i;
        } else {
            g->scale = op->kind == B_SUB && i == 1 ? -1.0f
                       : op->kind == B_MEAN        ? 1.0f / (float)c->nin
                                                   : 1.0f;
        }
        int64_t need = ginput_finish(c, g, i, out);
        if (need > most) most = need;
    }
    set_scratch(c, most);
    return GRAFT_OK;
}

static int where_grad_prepare(gr_opctx *c, ew_state *s, const gr_shape *out)
{
    int st;
    if (c->need_grad & 1)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "the condition (bool) has no gradient");
    if (!(s->gin = gr_arena_alloc(c->arena, 3 * sizeof *s->gin))) return GRAFT_E_NOMEM;
    memset(s->gin, 0, 3 * sizeof *s->gin);
    int64_t most = 0;
    for (int i = 1; i < 3; i++) {
        if (!(c->need_grad >> i & 1)) continue;
        if ((st = need_f32(c, i))) return st;
        ginput *g = &s->gin[i];
        g->term = i == 1 ? where_d1 : where_d2, g->scale = 1, g->nwalk = 1, g->walk[0] = 0;
        int64_t need = ginput_finish(c, g, i, out);
        if (need > most) most = need;
    }
    set_scratch(c, most);
    return GRAFT_OK;
}

/* Backward of the binary, variadic and Where ops. */
static void bcast_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const ew_state *s = c->params;
    const gr_tensor *y = c->out[0];
    int64_t m = gr_numel(&y->shape);
    for (int i = 0; i < c->nin; i++) {
        if (!din[i]) continue;
        const ginput *g = &s->gin[i];
        float *dx = din[i]->data;
        if (!dout[0] || m == 0) {
            memset(dx, 0, gr_tensor_bytes(din[i]));
            continue;
        }
        const float *gd = dout[0]->data, *src = gd;
        if (g->term) {
            float *t = g->reduce ? (float *)c->scratch : dx;
            const void *in[2] = { NULL, NULL };
            for (int k = 0; k < g->nwalk; k++) in[k] = c->in[g->walk[k]]->data;
            run_gplan(&g->plan, g->term, t, gd, y->data, in, g->wein, g->nwalk);
            src = t;
        }
        if (g->reduce) {
            float *part = (float *)c->scratch + (g->term ? (m + 15) & ~(int64_t)15 : 0);
            reduce_to(&g->red, dx, src, g->scale, part);
        } else if (!g->term) {
            scale_copy(dx, gd, g->scale, m);
        }
    }
}

/* ---- unary backward: dx = dout * f'(x); v = x[i], u = y[i] (the output), gi = dout[i] ---- */

#define UN_GRAD(NAME, EXPR)                                                                        \
    static void NAME##_grad(float *dx, const float *g, const float *x, const float *y, int64_t n,  \
                            const ew_args *p)                                                      \
    {                                                                                              \
        const float alpha = p->alpha, beta = p->beta, gamma = p->gamma;                            \
        (void)alpha, (void)beta, (void)gamma, (void)x, (void)y;                                    \
        LOOP_HINT for (int64_t i = 0; i < n; i++)                                                  \
        {                                                                                          \
            float v = x[i], u = y[i], gi = g[i];                                                   \
            (void)v, (void)u, (void)gi;                                                            \
            dx[i] = (EXPR);                                                                        \
        }                                                                                          \
    }

UN_GRAD(relu, u > 0 ? gi : 0.0f)
UN_GRAD(leakyrelu, v < 0 ? alpha * gi : gi)
UN_GRAD(thresholdedrelu, v > alpha ? gi : 0.0f)
UN_GRAD(elu, v < 0 ? gi * (u + alpha) : gi) /* alpha e^v = y + alpha */
UN_GRAD(selu, v <= 0 ? gi * (u + gamma * alpha) : gi * gamma)
UN_GRAD(celu, v < 0 ? gi * (u / alpha + 1.0f) : gi) /* e^(v/alpha) = y/alpha + 1 */
UN_GRAD(shrink, v<-alpha || v> alpha ? gi : 0.0f)
UN_GRAD(sigmoid, gi *u *(1.0f - u))
UN_GRAD(hardsigmoid, alpha *v + beta > 0 && alpha * v + beta < 1 ? gi * alpha : 0.0f)
UN_GRAD(hardswish, v<-3.0f ? 0.0f : v> 3.0f ? gi : gi *(v / 3.0f + 0.5f))
UN_GRAD(softplus, gi / (1.0f + fast_expf(-v))) /* the logistic function of x */
UN_GRAD(softsign, gi / ((1.0f + fabsf(v)) * (1.0f + fabsf(v))))
UN_GRAD(tanh, gi *(1.0f - u * u))
UN_GRAD(erf, gi * 1.12837916709551257f * fast_expf(-v * v)) /* 2/sqrt(pi) e^(-x^2) */
UN_GRAD(sqrt, gi * 0.5f / u)
UN_GRAD(exp, gi *u)
UN_GRAD(log, gi / v)
UN_GRAD(reciprocal, -gi *u *u)
UN_GRAD(zero, 0.0f) /* Floor, Ceil, Round, Sign */
UN_GRAD(tan, gi *(1.0f + u * u))
UN_GRAD(atan, gi / (1.0f + v * v))
UN_GRAD(atanh, gi / (1.0f - v * v))
UN_GRAD(neg, -gi)
UN_GRAD(abs, v > 0 ? gi : v < 0 ? -gi : 0.0f)
#undef LOOP_HINT
#define LOOP_HINT /* libm calls; sqrtf too (errno: clang cannot vectorise it) */
UN_GRAD(asin, gi / sqrtf(1.0f - v * v))
UN_GRAD(acos, -gi / sqrtf(1.0f - v * v))
UN_GRAD(asinh, gi / sqrtf(v * v + 1.0f))
UN_GRAD(acosh, gi / sqrtf(v * v - 1.0f))
UN_GRAD(sin, gi *cosf(v))
UN_GRAD(cos, -gi *sinf(v))
UN_GRAD(sinh, gi *coshf(v))
UN_GRAD(cosh, gi *sinhf(v))
#undef LOOP_HINT
#define LOOP_HINT _Pragma("omp simd")

/* Clip: dout passes where the forward kept x (lo <= x <= hi, as PyTorch's clamp). */
/* From the output, as PyTorch's hardtanh (ReLU6): the gradient passes where lo < y < hi, so the
 * input need not be kept for backward; at a bound it goes to that bound's input instead. */
static void clip_grad(float *dx, const float *g, const float *x, const float *y, int64_t n,
                      const ew_args *p)
{
    const float lo = *(const float *)p->lo, hi = *(const float *)p->hi;
    (void)x;
    /* g[i] loaded whatever the test and the tests joined by &, not &&: a plain select that SSE2
     * vectorises (a load under a branch stays scalar and mispredicts: without -march=native
     * this loop took 37 % of a MobileNetV2 training step) */
    LOOP_HINT for (int64_t i = 0; i < n; i++)
    {
        float u = y[i], gi = g[i];
        dx[i] = ((u > lo) & (u < hi)) ? gi : 0.0f;
    }
}

/* dx = f(g, x, y) in chunks, threaded on big tensors like run_flat. */
static void run_gflat(gflat_fn f, const ew_args *a, float *dx, const float *g, const float *x,
                      const float *y, int64_t n)
{
    int64_t nchunk = (n + EW_CHUNK - 1) / EW_CHUNK;
#pragma omp parallel for schedule(static) if (n > EW_PAR_MIN)
    for (int64_t t = 0; t < nchunk; t++) {
        int64_t i0 = t * EW_CHUNK, len = n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK;
        f(dx + i0, g + i0, x + i0, y + i0, len, a);
    }
}

static void unop_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const ew_state *s = c->params;
    int64_t n = gr_numel(&c->in[0]->shape);
    if (!din[0]) return;
    if (!dout[0]) {
        memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
        return;
    }
    run_gflat(s->gk, &s->args, din[0]->data, dout[0]->data, c->in[0]->data, c->out[0]->data, n);
}

/* A unary op's part of its row (gr_opdef.impl). */
typedef struct unop {
    flat_fn k[NSLOT];
    flat_fn fast_f32;    /* optional vectorised float32 kernel, used when use_ref == 0 */
    gflat_fn grad;       /* dx from dout, x and y (float32); NULL: no backward */
    const char *attr[3]; /* the attributes that set alpha, beta, gamma (NULL: none) */
    float def[3];        /* and their defaults */
} unop;

/* kernels by type, then the fast float32 kernel if any */
#define U_FLOAT(P)      { P##_f32, P##_f64, NULL, NULL, NULL, NULL, NULL }, NULL
#define U_FLOAT_FAST(P) { P##_f32, P##_f64, NULL, NULL, NULL, NULL, NULL }, P##_fast
#define U_SIGNED(P)     { P##_f32, P##_f64, P##_i64, P##_i32, P##_i8, NULL, NULL }, NULL
#define U_ALL(P)        { P##_f32, P##_f64, P##_i64, P##_i32, P##_i8, P##_u8, NULL }, NULL

static int unop_prepare(gr_opctx *c)
{
    const unop *op = c->def->impl;
    const char *known[4] = { NULL };
    for (int a = 0, n = 0; a < 3; a++)
        if (op->attr[a]) known[n++] = op->attr[a];
    int st = gr_op_check_attrs(c, known);
    if (!st) st = gr_op_check_arity(c, 1, 1, 1, 1);
    if (st) return st;
    const gr_tensor *x = c->in[0];
    int sl = slot_of(x->dtype);
    GR_ASSERT(sl >= 0);
    flat_fn k = op->k[sl];
    if (!k)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "input of type %s is not supported",
                         gr_dtype_name(x->dtype));
    ew_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->fkern = sl == S_F32 && op->fast_f32 && !c->use_ref ? op->fast_f32 : k;
    float *arg[3] = { &s->args.alpha, &s->args.beta, &s->args.gamma };
    for (int a = 0; a < 3; a++)
        if (op->attr[a]) *arg[a] = gr_attr_float(c, op->attr[a], op->def[a]);
    s->ein[0] = s->eo = gr_dtype_size(x->dtype);
    if (c->need_grad) {
        if ((st = need_f32(c, 0))) return st;
        s->gk = op->grad;
        if (!s->gk) return gr_op_err(c, GRAFT_E_UNSUPPORTED, "%s has no gradient", c->op_type);
    }
    return gr_op_set_out(c, 0, x->dtype, &x->shape);
}

/* Unary ops and Cast. */
static void flat_forward(gr_opctx *c)
{
    const ew_state *s = c->params;
    run_flat(s->fkern, &s->args, c->out[0]->data, s->eo, c->in[0]->data, s->ein[0],
             gr_numel(&c->out[0]->shape));
}

/* ---- Clip ---- */

#define CLIP_KERNEL(NAME, T)                                                                       \
    static void NAME(void *yv, const void *xv, int64_t n, const ew_args *p)                        \
    {                                                                                              \
        const T *x = xv;                                                                           \
        T *y = yv;                                                                                 \
        const T lo = *(const T *)p->lo, hi = *(const T *)p->hi;                                    \
        LOOP_HINT for (int64_t i = 0; i < n; i++)                                                  \
        {                                                                                          \
            T v = x[i] < lo ? lo : x[i];                                                           \
            y[i] = v > hi ? hi : v; /* min > max gives max, as np.clip does */                     \
        }                                                                                          \
    }
CLIP_KERNEL(clip_f32, float)
CLIP_KERNEL(clip_f64, double)
CLIP_KERNEL(clip_i64, int64_t)
CLIP_KERNEL(clip_i32, int32_t)
CLIP_KERNEL(clip_i8, int8_t)
CLIP_KERNEL(clip_u8, uint8_t)
static const flat_fn clip_kernels[NSLOT] = { clip_f32, clip_f64, clip_i64, clip_i32,
                                             clip_i8,  clip_u8,  NULL };

/* Writes the type's lowest and highest values (numeric_limits, ONNX Runtime's defaults). */
static void type_limits(int dt, void *lo, void *hi)
{
    switch (dt) {
    case GR_F32: *(float *)lo = -FLT_MAX, *(float *)hi = FLT_MAX; break;
    case GR_F64: *(double *)lo = -DBL_MAX, *(double *)hi = DBL_MAX; break;
    case GR_I64: *(int64_t *)lo = INT64_MIN, *(int64_t *)hi = INT64_MAX; break;
    case GR_I32: *(int32_t *)lo = INT32_MIN, *(int32_t *)hi = INT32_MAX; break;
    case GR_I8: *(int8_t *)lo = INT8_MIN, *(int8_t *)hi = INT8_MAX; break;
    default: *(uint8_t *)lo = 0, *(uint8_t *)hi = UINT8_MAX; break;
    }
}

/* Clip-6: min and max attributes (float types). Clip-11+: optional scalar inputs min and max,
 * of the input's type, which may be computed at run time. */
static int clip_prepare(gr_opctx *c)
{
    static const char *const attrs6[] = { "min", "max", NULL }, *const attrs11[] = { NULL };
    int old = c->opset < 11;
    int st = gr_op_check_attrs(c, old ? attrs6 : attrs11);
    if (!st) st = gr_op_check_arity(c, 1, old ? 1 : 3, 1, 1);
    if (st) return st;
    const gr_tensor *x = c->in[0];
    int sl = slot_of(x->dtype);
    GR_ASSERT(sl >= 0);
    if (!clip_kernels[sl] || (old && sl != S_F32 && sl != S_F64))
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "input of type %s is not supported",
                         gr_dtype_name(x->dtype));
    ew_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->fkern = clip_kernels[sl];
    s->ein[0] = s->eo = gr_dtype_size(x->dtype);
    type_limits(x->dtype, s->lo, s->hi);
    if (old) {
        gr_tensor lo = { .dtype = x->dtype, .data = s->lo },
                  hi = { .dtype = x->dtype, .data = s->hi };
        if (gr_attr_get(c, "min")) gr_set_f64(&lo, 0, gr_attr_float(c, "min", 0));
        if (gr_attr_get(c, "max")) gr_set_f64(&hi, 0, gr_attr_float(c, "max", 0));
    }
    for (int i = 1; i < c->nin; i++) {
        const gr_tensor *b = c->in[i];
        if (!b) continue;
        if (b->dtype != x->dtype)
            return gr_op_err(c, GRAFT_E_FORMAT, "%s has type %s but input has %s",
                             i == 1 ? "min" : "max", gr_dtype_name(b->dtype),
                             gr_dtype_name(x->dtype));
        if (gr_numel(&b->shape) != 1)
            return gr_op_err(c, GRAFT_E_SHAPE, "%s must be a scalar, it has %lld elements",
                             i == 1 ? "min" : "max", (long long)gr_numel(&b->shape));
    }
    for (int i = 0; i < c->nin; i++)
        if ((c->need_grad >> i & 1) && (st = need_f32(c, i))) return st;
    return gr_op_set_out(c, 0, x->dtype, &x->shape);
}

static ew_args clip_args(const gr_opctx *c)
{
    const ew_state *s = c->params;
    ew_args a = s->args;
    a.lo = c->nin > 1 && c->in[1] ? c->in[1]->data : s->lo;
    a.hi = c->nin > 2 && c->in[2] ? c->in[2]->data : s->hi;
    return a;
}

static void clip_forward(gr_opctx *c)
{
    const ew_state *s = c->params;
    ew_args a = clip_args(c);
    run_flat(s->fkern, &a, c->out[0]->data, s->eo, c->in[0]->data, s->ein[0],
             gr_numel(&c->out[0]->shape));
}

/* dx where x was kept; d min = the sum of dout where the forward chose min, d max likewise
 * (min > max chooses max everywhere, as the forward does). */
static void clip_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    ew_args a = clip_args(c);
    int64_t n = gr_numel(&c->in[0]->shape);
    for (int i = 0; i < c->nin && i < 3; i++)
        if (din[i] && !dout[0]) memset(din[i]->data, 0, gr_tensor_bytes(din[i]));
    if (!dout[0]) return;
    const float *g = dout[0]->data, *y = c->out[0]->data;
    if (din[0]) run_gflat(clip_grad, &a, din[0]->data, g, y, y, n);
    const float lo = *(const float *)a.lo, hi = *(const float *)a.hi;
    for (int b = 1; b <= 2; b++) { /* the bounds get what the input did not: y at a bound */
        if (b >= c->nin || !din[b]) continue;
        double acc = 0;
        for (int64_t i = 0; i < n; i++) {
            int at_lo = y[i] <= lo, at_hi = !at_lo && y[i] >= hi;
            if (b == 1 ? at_lo : at_hi) acc += g[i];
        }
        *(float *)din[b]->data = (float)acc;
    }
}

/* ---- Cast ---- */

/* Conversions: to bool is "!= 0" (NaN is true, as in numpy); float to integer truncates
 * toward zero (f2i); everything else is C's conversion (integers wrap). */
#define CV_PLAIN(DT, v) ((DT)(v))
#define CV_F2I(DT, v)   ((DT)f2i((double)(v)))
#define CV_BOOL(DT, v)  ((DT)((v) != 0))
#define CAST_KERNEL(SN, ST, DN, DT, CV)                                                            \
    static void cast_##SN##_##DN(void *yv, const void *xv, int64_t n, const ew_args *p)            \
    {                                                                                              \
        const ST *x = xv;                                                                          \
        DT *y = yv;                                                                                \
        (void)p;                                                                                   \
        LOOP_HINT for (int64_t i = 0; i < n; i++) y[i] = CV(DT, x[i]);                             \
    }
/* One kernel a line (clang-format 14 chains macro calls into a staircase). */
/* clang-format off */
#define CAST_FROM(SN, ST, TO_INT)                  \
    CAST_KERNEL(SN, ST, f32, float, CV_PLAIN)      \
    CAST_KERNEL(SN, ST, f64, double, CV_PLAIN)     \
    CAST_KERNEL(SN, ST, i64, int64_t, TO_INT)      \
    CAST_KERNEL(SN, ST, i32, int32_t, TO_INT)      \
    CAST_KERNEL(SN, ST, i8, int8_t, TO_INT)        \
    CAST_KERNEL(SN, ST, u8, uint8_t, TO_INT)       \
    CAST_KERNEL(SN, ST, b, uint8_t, CV_BOOL)
/* clang-format on */
CAST_FROM(f32, float, CV_F2I)
CAST_FROM(f64, double, CV_F2I)
CAST_FROM(i64, int64_t, CV_PLAIN)
CAST_FROM(i32, int32_t, CV_PLAIN)
CAST_FROM(i8, int8_t, CV_PLAIN)
CAST_FROM(u8, uint8_t, CV_PLAIN)
CAST_FROM(b, uint8_t, CV_PLAIN)

#define CAST_ROW(SN)                                                                               \
    {                                                                                              \
        cast_##SN##_f32, cast_##SN##_f64, cast_##SN##_i64, cast_##SN##_i32, cast_##SN##_i8,        \
            cast_##SN##_u8, cast_##SN##_b                                                          \
    }
static const flat_fn cast_kernels[NSLOT][NSLOT] = {
    /* [from][to] */
    CAST_ROW(f32), CAST_ROW(f64), CAST_ROW(i64), CAST_ROW(i32),
    CAST_ROW(i8),  CAST_ROW(u8),  CAST_ROW(b),
};

/* Cast (attribute to) and CastLike (the type of input 1, opset 15). */
static int cast_prepare(gr_opctx *c)
{
    int like = c->def->impl != NULL; /* CastLike: the target type is input 1's */
    static const char *const cast_attrs[] = { "to", NULL }, *const like_attrs[] = { NULL };
    int st = gr_op_check_attrs(c, like ? like_attrs : cast_attrs);
    if (!st) st = gr_op_check_arity(c, like ? 2 : 1, like ? 2 : 1, 1, 1);
    if (st) return st;
    if (!like && !gr_attr_get(c, "to"))
        return gr_op_err(c, GRAFT_E_FORMAT, "attribute 'to' is missing");
    int to = like ? (int)c->in[1]->dtype : (int)gr_attr_int(c, "to", 0);
    int from = c->in[0]->dtype, sto = slot_of(to), sfrom = slot_of(from);
    if (sto < 0)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "cast to type %s (%d) is not supported",
                         onnx_type_name(to), to);
    GR_ASSERT(sfrom >= 0);
    ew_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->fkern = cast_kernels[sfrom][sto];
    s->ein[0] = gr_dtype_size(from);
    s->eo = gr_dtype_size(to);
    if (c->need_grad & 1) {
        if ((from != GR_F32 && from != GR_F64) || (to != GR_F32 && to != GR_F64))
            return gr_op_err(c, GRAFT_E_UNSUPPORTED,
                             "backward of a cast from %s to %s (only between float types)",
                             gr_dtype_name(from), onnx_type_name(to));
        s->bkern = cast_kernels[sto][sfrom];
    }
    return gr_op_set_out(c, 0, to, &c->in[0]->shape);
}

/* Between float types the gradient is dout cast back. */
static void cast_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const ew_state *s = c->params;
    if (!din[0]) return;
    if (!dout[0]) {
        memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
        return;
    }
    run_flat(s->bkern, NULL, din[0]->data, s->ein[0], dout[0]->data, s->eo,
             gr_numel(&c->in[0]->shape));
}

/* One row per op. BINOP and UNOP rows carry their family data (binop, unop) as impl. */
/* clang-format off */
#define BINOP(NAME, FLAGS, BWD, ...) \
    { NAME, binop_prepare, binop_forward, NULL, FLAGS, BWD, &(const binop){ __VA_ARGS__ } }
#define UNOP(NAME, FLAGS, KERNELS, GRAD, ...) \
    { NAME, unop_prepare, flat_forward, NULL, FLAGS, unop_backward, \
      &(const unop){ .k = KERNELS, .grad = GRAD, __VA_ARGS__ } }
#define BOOL_ONLY(K) { NULL, NULL, NULL, NULL, NULL, NULL, K }
/* clang-format on */
#define NO_XY (GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y)
#define FLAT  GR_OPF_FLAT
#define NO_X  GR_OPF_BWD_NO_X

const gr_opdef gr_ops_elementwise[] = {
    BINOP("Add", NO_XY | FLAT, bcast_backward, .k = K_NUM(add)),
    BINOP("Sub", NO_XY | FLAT, bcast_backward, .kind = B_SUB, .k = K_NUM(sub)),
    BINOP("Mul", FLAT, bcast_backward, .k = K_NUM(mul), .d = { mul_d0, mul_d1 }),
    BINOP("Div", 0, bcast_backward, .k = K_NUM(div), .d = { div_d0, div_d1 }),
    /* other type pairs: pow_mixed */
    BINOP("Pow", 0, bcast_backward, .kind = B_POW, .k = K_FLOAT(pow), .d = { pow_d0, pow_d1 }),
    BINOP("Mod", 0, NULL, .kind = B_MOD,
          .k = { NULL, NULL, pymod_i64, pymod_i32, pymod_i8, mod_u8, NULL }),
    BINOP("PRelu", 0, bcast_backward, .kind = B_PRELU,
          .k = { prelu_f32, prelu_f64, prelu_i64, prelu_i32, NULL, NULL, NULL },
          .d = { prelu_d0, prelu_d1 }),
    BINOP("Equal", 0, NULL, .out_bool = 1,
          .k = { eq_f32, eq_f64, eq_i64, eq_i32, eq_i8, eq_u8, eq_u8 }),
    BINOP("Less", 0, NULL, .out_bool = 1, .k = K_NUM(lt)),
    BINOP("Greater", 0, NULL, .out_bool = 1, .k = K_NUM(gt)),
    BINOP("LessOrEqual", 0, NULL, .out_bool = 1, .k = K_NUM(le)),
    BINOP("GreaterOrEqual", 0, NULL, .out_bool = 1, .k = K_NUM(ge)),
    BINOP("And", 0, NULL, .out_bool = 1, .k = BOOL_ONLY(and_b)),
    BINOP("Or", 0, NULL, .out_bool = 1, .k = BOOL_ONLY(or_b)),
    BINOP("Xor", 0, NULL, .out_bool = 1, .k = BOOL_ONLY(xor_b)),
    /* direction RIGHT: shr_u8 */
    BINOP("BitShift", 0, NULL, .kind = B_SHIFT,
          .k = { NULL, NULL, NULL, NULL, NULL, shl_u8, NULL }),
    BINOP("Max", FLAT, bcast_backward, .variadic = 1, .k = K_NUM(max), .d = { max_d0, max_d1 }),
    BINOP("Min", FLAT, bcast_backward, .variadic = 1, .k = K_NUM(min), .d = { min_d0, min_d1 }),
    BINOP("Sum", FLAT, bcast_backward, .variadic = 1, .k = K_FLOAT(add)),
    BINOP("Mean", 0, bcast_backward, .variadic = 1, .kind = B_MEAN, .k = K_FLOAT(add)),
    { "Where", where_prepare, where_forward, NULL, 0, bcast_backward, NULL },
    UNOP("Relu", NO_X | FLAT | GR_OPF_FUSE_RELU, U_SIGNED(relu), relu_grad),
    UNOP("LeakyRelu", FLAT, U_FLOAT(leakyrelu), leakyrelu_grad, .attr = { "alpha" },
         .def = { 0.01f }),
    UNOP("ThresholdedRelu", 0, U_FLOAT(thresholdedrelu), thresholdedrelu_grad, .attr = { "alpha" },
         .def = { 1.0f }),
    UNOP("Elu", FLAT, U_FLOAT(elu), elu_grad, .attr = { "alpha" }, .def = { 1.0f }),
    UNOP("Selu", FLAT, U_FLOAT(selu), selu_grad, .attr = { "alpha", NULL, "gamma" },
         .def = { 1.67326319217681884765625f, 0, 1.05070102214813232421875f }),
    UNOP("Celu", 0, U_FLOAT(celu), celu_grad, .attr = { "alpha" }, .def = { 1.0f }),
    UNOP("Shrink", 0, U_FLOAT(shrink), shrink_grad, .attr = { "lambd", "bias" },
         .def = { 0.5f, 0.0f }),
    UNOP("Sigmoid", NO_X | FLAT, U_FLOAT_FAST(sigmoid), sigmoid_grad),
    UNOP("HardSigmoid", FLAT, U_FLOAT(hardsigmoid), hardsigmoid_grad, .attr = { "alpha", "beta" },
         .def = { 0.2f, 0.5f }),
    UNOP("HardSwish", FLAT, U_FLOAT(hardswish), hardswish_grad),
    UNOP("Softplus", FLAT, U_FLOAT(softplus), softplus_grad),
    UNOP("Softsign", 0, U_FLOAT(softsign), softsign_grad),
    UNOP("Tanh", NO_X | FLAT, U_FLOAT_FAST(tanh), tanh_grad),
    UNOP("Erf", FLAT, U_FLOAT_FAST(erf), erf_grad),
    UNOP("Sqrt", NO_X, U_FLOAT(sqrt), sqrt_grad),
    UNOP("Exp", NO_X | FLAT, U_FLOAT(exp), exp_grad),
    UNOP("Log", 0, U_FLOAT(log), log_grad),
    UNOP("Reciprocal", NO_X, U_FLOAT(reciprocal), reciprocal_grad),
    UNOP("Floor", 0, U_FLOAT(floor), zero_grad),
    UNOP("Ceil", 0, U_FLOAT(ceil), zero_grad),
    UNOP("Round", 0, U_FLOAT(round), zero_grad),
    UNOP("Sin", 0, U_FLOAT(sin), sin_grad),
    UNOP("Cos", 0, U_FLOAT(cos), cos_grad),
    UNOP("Tan", 0, U_FLOAT(tan), tan_grad),
    UNOP("Asin", 0, U_FLOAT(asin), asin_grad),
    UNOP("Acos", 0, U_FLOAT(acos), acos_grad),
    UNOP("Atan", 0, U_FLOAT(atan), atan_grad),
    UNOP("Sinh", 0, U_FLOAT(sinh), sinh_grad),
    UNOP("Cosh", 0, U_FLOAT(cosh), cosh_grad),
    UNOP("Asinh", 0, U_FLOAT(asinh), asinh_grad),
    UNOP("Acosh", 0, U_FLOAT(acosh), acosh_grad),
    UNOP("Atanh", 0, U_FLOAT(atanh), atanh_grad),
    UNOP("Neg", FLAT, U_SIGNED(neg), neg_grad),
    UNOP("Abs", FLAT, U_ALL(abs), abs_grad),
    UNOP("Sign", 0, U_ALL(sign), zero_grad),
    /* Not: no backward */
    { "Not", unop_prepare, flat_forward, NULL, 0, NULL, &(const unop){ .k = BOOL_ONLY(not_b) } },
    { "Clip", clip_prepare, clip_forward, NULL, NO_X | FLAT | GR_OPF_FUSE_CLIP, clip_backward,
      NULL },
    { "Cast", cast_prepare, flat_forward, NULL, 0, cast_backward, NULL },
    { "CastLike", cast_prepare, flat_forward, NULL, 0, NULL, &(const int){ 1 } },
    { 0 },
};
