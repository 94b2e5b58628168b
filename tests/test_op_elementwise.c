/* test_op_elementwise.c — the ops of elementwise.c, run through their op table entries:
 * binary ops on many broadcast shape pairs (same shape, scalar, per-channel, both sides
 * broadcast, rank 0, empty, and sizes that run threaded) against naive index arithmetic in
 * double; integer semantics (truncating division, wrap-around, division by zero, Python vs C
 * Mod, BitShift); mixed-type Pow; comparisons and logic; the variadic Max/Min/Sum/Mean; Where; PRelu;
 * every unary op against its closed form in double for float32 and float64; Clip by opset; Cast
 * between all pairs of types; and the errors that bad inputs must give. */
#include "harness.h"
#include "oprun.h"

#include "ops/ops.h"

#include <float.h>
#include <string.h>

/* ---- nodes run through oprun.h ---- */

#define MAXIO 8

static int use_ref = 1; /* 0: the op may choose its optimised kernels */

typedef or_node node; /* oprun.h */

/* Prepares op (a tensor with dtype 0 is an absent optional input; inputs whose bit is set in
 * `hidden` are unknown at plan time); on success runs forward. */
static int run(node *n, const char *op, int opset, const gr_attr *attrs, int nattr, int nin,
               const gr_tensor *ins, unsigned hidden)
{
    return or_run(n, &(or_spec){ .op = op,
                                 .opset = opset,
                                 .attrs = attrs,
                                 .nattr = nattr,
                                 .nin = nin,
                                 .ins = ins,
                                 .hidden = hidden,
                                 .use_ref = use_ref });
}

static gr_tensor ten(int dtype, const void *data, int rank, const int64_t *d)
{
    return (gr_tensor){ .dtype = dtype, .shape = gr_shape_make(rank, d), .data = (void *)data };
}
#define DIMS(...)                                                                                  \
    (int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), (int64_t[]) { __VA_ARGS__ }
#define VEC(dt, T, ...)                                                                            \
    ten(dt, (T[]){ __VA_ARGS__ }, 1, (int64_t[]){ sizeof((T[]){ __VA_ARGS__ }) / sizeof(T) })
#define F32(...)  VEC(GR_F32, float, __VA_ARGS__)
#define F64(...)  VEC(GR_F64, double, __VA_ARGS__)
#define I64(...)  VEC(GR_I64, int64_t, __VA_ARGS__)
#define I32(...)  VEC(GR_I32, int32_t, __VA_ARGS__)
#define I8(...)   VEC(GR_I8, int8_t, __VA_ARGS__)
#define U8(...)   VEC(GR_U8, uint8_t, __VA_ARGS__)
#define BOOL(...) VEC(GR_BOOL, uint8_t, __VA_ARGS__)

static uint64_t rng_state = 12345;
static float frand(void) /* in [-2, 2) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1 << 24) * 4.0 - 2.0);
}

/* Output element k as a double, for any dtype. */
static double at(const gr_tensor *t, int64_t k) { return gr_get_f64(t, k); }

/* Checks output 0 of n has dtype and the values want (exactly, or within tol). */
static void expect(const node *n, int dtype, int64_t count, const double *want, double tol,
                   const char *what)
{
    CHECK(n->out[0].dtype == (gr_dtype)dtype, "%s: dtype %s", what, gr_dtype_name(n->out[0].dtype));
    CHECK(gr_numel(&n->out[0].shape) == count, "%s: %lld elements, expected %lld", what,
          (long long)gr_numel(&n->out[0].shape), (long long)count);
    if (n->out[0].dtype != (gr_dtype)dtype || gr_numel(&n->out[0].shape) != count) return;
    for (int64_t k = 0; k < count; k++) {
        double g = at(&n->out[0], k), w = want[k];
        int ok = (isnan(w) && isnan(g)) || g == w || fabs(g - w) <= tol * (1 + fabs(w));
        if (!ok) {
            CHECK(ok, "%s: element %lld is %.9g, expected %.9g", what, (long long)k, g, w);
            return;
        }
    }
    th_pass++;
}

/* ---- naive broadcasting ---- */

/* Offset in `in` of the output element k (numpy rules: align right, size-1 dims repeat). */
static int64_t naive_offset(const gr_shape *in, const gr_shape *out, int64_t k)
{
    int64_t idx[GR_MAXDIM];
    for (int d = out->rank - 1; d >= 0; d--) idx[d] = k % out->d[d], k /= out->d[d];
    int64_t off = 0;
    for (int d = 0; d < in->rank; d++) {
        int od = d + out->rank - in->rank;
        off = off * in->d[d] + (in->d[d] == 1 ? 0 : idx[od]);
    }
    return off;
}

static gr_shape naive_bshape(const gr_shape *a, const gr_shape *b)
{
    gr_shape s = { a->rank > b->rank ? a->rank : b->rank, { 0 } };
    for (int d = 0; d < s.rank; d++) {
        int da = d - (s.rank - a->rank), db = d - (s.rank - b->rank);
        int64_t x = da >= 0 ? a->d[da] : 1, y = db >= 0 ? b->d[db] : 1;
        s.d[d] = x == 1 ? y : x;
    }
    return s;
}

static double ref_binary(const char *op, double x, double y)
{
    if (!strcmp(op, "Add")) return x + y;
    if (!strcmp(op, "Sub")) return x - y;
    if (!strcmp(op, "Mul")) return x * y;
    if (!strcmp(op, "Div")) return x / y;
    if (!strcmp(op, "Pow")) return pow(fabs(x), y); /* the test feeds |x| */
    if (!strcmp(op, "Max")) return x > y ? x : y;
    if (!strcmp(op, "Min")) return x < y ? x : y;
    if (!strcmp(op, "Less")) return x < y;
    if (!strcmp(op, "GreaterOrEqual")) return x >= y;
    return NAN;
}

static void test_broadcast_shapes(void)
{
    static const struct {
        int ra;
        int64_t a[5];
        int rb;
        int64_t b[5];
    } cases[] = {
        { 4, { 2, 3, 7, 5 }, 4, { 2, 3, 7, 5 } },     /* same shape */
        { 4, { 2, 3, 7, 5 }, 0, { 0 } },              /* tensor op rank-0 scalar */
        { 1, { 1 }, 3, { 3, 7, 5 } },                 /* scalar op tensor */
        { 4, { 2, 3, 7, 5 }, 4, { 1, 3, 1, 1 } },     /* per channel */
        { 4, { 1, 3, 1, 1 }, 4, { 2, 3, 7, 5 } },     /* per channel, the other way */
        { 3, { 3, 1, 5 }, 2, { 4, 1 } },              /* both sides broadcast */
        { 3, { 2, 3, 4 }, 2, { 3, 4 } },              /* a row per outer index */
        { 4, { 2, 1, 3, 1 }, 4, { 1, 4, 1, 5 } },     /* alternating */
        { 2, { 3, 1 }, 1, { 5 } },                    /* outer product */
        { 3, { 2, 3, 4 }, 3, { 2, 1, 4 } },           /* middle broadcast */
        { 2, { 0, 3 }, 1, { 3 } },                    /* empty */
        { 0, { 0 }, 0, { 0 } },                       /* rank 0 with rank 0 */
        { 4, { 1, 64, 56, 56 }, 4, { 1, 64, 1, 1 } }, /* big per channel: threaded */
        { 3, { 4, 100, 300 }, 3, { 4, 100, 300 } },   /* big same shape: threaded, several chunks */
        { 2, { 300, 301 }, 2, { 300, 1 } },           /* big, row broadcast */
        { 2, { 3, 40000 }, 1, { 40000 } },            /* big, long rows */
    };
    static const char *ops[] = { "Add", "Sub", "Mul",  "Div",           "Pow",
                                 "Max", "Min", "Less", "GreaterOrEqual" };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        gr_tensor ta = ten(GR_F32, NULL, cases[ci].ra, cases[ci].a),
                  tb = ten(GR_F32, NULL, cases[ci].rb, cases[ci].b);
        int64_t na = gr_numel(&ta.shape), nb = gr_numel(&tb.shape);
        float *a = malloc((size_t)(na + 1) * 4), *b = malloc((size_t)(nb + 1) * 4);
        for (int64_t i = 0; i < na; i++) a[i] = frand();
        for (int64_t i = 0; i < nb; i++)
            b[i] = frand() + (frand() > 0 ? 3 : -3); /* away from 0 for Div */
        ta.data = a, tb.data = b;
        gr_shape os = naive_bshape(&ta.shape, &tb.shape);
        int64_t no = gr_numel(&os);
        double *want = malloc((size_t)(no + 1) * sizeof *want);
        float *pa = malloc((size_t)(na + 1) * 4);
        for (int64_t i = 0; i < na; i++) pa[i] = fabsf(a[i]);
        for (size_t oi = 0; oi < sizeof ops / sizeof *ops; oi++) {
            const char *op = ops[oi];
            int pw = !strcmp(op, "Pow"), cmp = !strcmp(op, "Less") || !strcmp(op, "GreaterOrEqual");
            gr_tensor in[2] = { ta, tb };
            if (pw) in[0].data = pa;
            for (int64_t k = 0; k < no; k++)
                want[k] = (float)ref_binary(op, a[naive_offset(&ta.shape, &os, k)],
                                            b[naive_offset(&tb.shape, &os, k)]);
            node n;
            char what[96];
            snprintf(what, sizeof what, "%s case %zu", op, ci);
            int st = run(&n, op, 13, NULL, 0, 2, in, 0);
            CHECK(st == 0, "%s: %s", what, graft_last_error());
            if (st) continue;
            CHECK(gr_shape_eq(&n.out[0].shape, &os), "%s: output shape", what);
            expect(&n, cmp ? GR_BOOL : GR_F32, no, want, 1e-6, what);
            or_free(&n);
        }
        free(a), free(b), free(pa), free(want);
    }
}

/* Every numeric type through Add/Mul/Max/Equal on a broadcast pair, against double math. */
static void test_broadcast_types(void)
{
    static const int types[] = { GR_F64, GR_I64, GR_I32, GR_I8, GR_U8 };
    int64_t da[3] = { 2, 3, 4 }, db[2] = { 3, 1 };
    for (int ti = 0; ti < 5; ti++) {
        int dt = types[ti];
        char a[24 * 8], b[3 * 8];
        gr_tensor ta = ten(dt, a, 3, da), tb = ten(dt, b, 2, db);
        for (int i = 0; i < 24; i++) gr_set_f64(&ta, i, (i * 7) % 11);
        for (int i = 0; i < 3; i++) gr_set_f64(&tb, i, i + 2);
        static const char *ops[] = { "Add", "Mul", "Max", "Equal", "Sub" };
        for (int oi = 0; oi < 5; oi++) {
            double want[24];
            for (int k = 0; k < 24; k++) {
                double x = gr_get_f64(&ta, k), y = gr_get_f64(&tb, k / 4 % 3);
                want[k] = oi == 0   ? x + y
                          : oi == 1 ? x * y
                          : oi == 2 ? (x > y ? x : y)
                          : oi == 3 ? x == y
                                    : x - y;
                if (dt == GR_U8 && oi == 4 && want[k] < 0) want[k] += 256; /* uint8 wraps */
            }
            gr_tensor in[2] = { ta, tb };
            node n;
            char what[64];
            snprintf(what, sizeof what, "%s on %s", ops[oi], gr_dtype_name(dt));
            CHECK(run(&n, ops[oi], 14, NULL, 0, 2, in, 0) == 0, "%s: %s", what, graft_last_error());
            expect(&n, oi == 3 ? GR_BOOL : dt, 24, want, 0, what);
            or_free(&n);
        }
    }
}

/* ---- integer semantics ---- */

static void test_integer_arith(void)
{
    node n;
    gr_tensor in[2] = { I64(7, -7, 7, -7, 5, INT64_MIN), I64(2, 2, -2, -2, 0, -1) };
    CHECK(run(&n, "Div", 14, NULL, 0, 2, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I64, 6, (double[]){ 3, -3, -3, 3, 0, (double)INT64_MIN }, 0,
           "int64 Div truncates, /0 is 0, MIN/-1 wraps");
    or_free(&n);

    gr_tensor w[2] = { I32(INT32_MAX, INT32_MIN, 100000), I32(1, -1, 100000) };
    CHECK(run(&n, "Add", 14, NULL, 0, 2, w, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I32, 3, (double[]){ INT32_MIN, INT32_MAX, 200000 }, 0, "int32 Add wraps");
    or_free(&n);
    CHECK(run(&n, "Mul", 14, NULL, 0, 2, w, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I32, 3, (double[]){ INT32_MAX, INT32_MIN, 1410065408 }, 0, "int32 Mul wraps");
    or_free(&n);

    gr_tensor u[2] = { U8(250, 3, 200, 9), U8(10, 5, 0, 2) };
    CHECK(run(&n, "Add", 14, NULL, 0, 2, u, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_U8, 4, (double[]){ 4, 8, 200, 11 }, 0, "uint8 Add wraps");
    or_free(&n);
    CHECK(run(&n, "Sub", 14, NULL, 0, 2, u, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_U8, 4, (double[]){ 240, 254, 200, 7 }, 0, "uint8 Sub wraps");
    or_free(&n);
    CHECK(run(&n, "Div", 14, NULL, 0, 2, u, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_U8, 4, (double[]){ 25, 0, 0, 4 }, 0, "uint8 Div");
    or_free(&n);

    gr_tensor s8[2] = { I8(-128, 100, -7), I8(-1, 2, 2) };
    CHECK(run(&n, "Div", 14, NULL, 0, 2, s8, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I8, 3, (double[]){ -128, 50, -3 }, 0, "int8 Div");
    or_free(&n);
}

static void test_mod(void)
{
    node n;
    gr_tensor in[2] = { I32(-4, 7, 5, 4, -7, 8, 3), I32(2, -3, 8, -2, 3, 5, 0) };
    CHECK(run(&n, "Mod", 13, NULL, 0, 2, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I32, 7, (double[]){ 0, -2, 5, 0, 2, 3, 0 }, 0,
           "Mod fmod=0 takes the divisor's sign");
    or_free(&n);
    gr_attr fm = ival("fmod", 1);
    CHECK(run(&n, "Mod", 13, &fm, 1, 2, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I32, 7, (double[]){ 0, 1, 5, 0, -1, 3, 0 }, 0,
           "Mod fmod=1 takes the dividend's sign");
    or_free(&n);
    gr_tensor f[2] = { F32(-4.3f, 7.2f, 5.0f), F32(2.1f, -3.4f, 8.0f) };
    CHECK(run(&n, "Mod", 13, &fm, 1, 2, f, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 3, (double[]){ fmodf(-4.3f, 2.1f), fmodf(7.2f, -3.4f), 5 }, 0,
           "float Mod fmod=1");
    or_free(&n);
    CHECK(run(&n, "Mod", 13, NULL, 0, 2, f, 0) == GRAFT_E_FORMAT, "float Mod needs fmod=1");
    CHECK(strstr(graft_last_error(), "fmod=1") != NULL, "message: %s", graft_last_error());
    gr_attr bad = ival("fmod", 2);
    CHECK(run(&n, "Mod", 13, &bad, 1, 2, in, 0) == GRAFT_E_FORMAT, "fmod=2");
    gr_tensor u[2] = { U8(7, 200), U8(3, 0) };
    CHECK(run(&n, "Mod", 13, NULL, 0, 2, u, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_U8, 2, (double[]){ 1, 0 }, 0, "uint8 Mod");
    or_free(&n);
}

static void test_bitshift(void)
{
    node n;
    gr_tensor in[2] = { U8(1, 200, 255, 3), U8(3, 1, 8, 0) };
    gr_attr left = { .name = "direction", .type = GR_AT_STRING, .s = "LEFT" };
    CHECK(run(&n, "BitShift", 11, &left, 1, 2, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_U8, 4, (double[]){ 8, 144, 0, 3 }, 0, "BitShift LEFT wraps, by 8 gives 0");
    or_free(&n);
    gr_attr right = { .name = "direction", .type = GR_AT_STRING, .s = "RIGHT" };
    CHECK(run(&n, "BitShift", 11, &right, 1, 2, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_U8, 4, (double[]){ 0, 100, 0, 3 }, 0, "BitShift RIGHT");
    or_free(&n);
    CHECK(run(&n, "BitShift", 11, NULL, 0, 2, in, 0) == GRAFT_E_FORMAT,
          "BitShift without direction");
    gr_tensor s[2] = { I32(1), I32(1) };
    CHECK(run(&n, "BitShift", 11, &left, 1, 2, s, 0) == GRAFT_E_UNSUPPORTED,
          "BitShift of int32 (ONNX: unsigned only)");
}

static void test_pow(void)
{
    node n;
    gr_tensor a[2] = { I32(1, 2, 3), F32(4, 5, 0.5f) };
    CHECK(run(&n, "Pow", 15, NULL, 0, 2, a, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I32, 3, (double[]){ 1, 32, 1 }, 0,
           "int32 ** float32 truncates (sqrt 3 = 1.73 -> 1)");
    or_free(&n);
    gr_tensor b[2] = { F32(1, 2, -3), I64(4, 5, 3) };
    CHECK(run(&n, "Pow", 15, NULL, 0, 2, b, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 3, (double[]){ 1, 32, -27 }, 0, "float32 ** int64");
    or_free(&n);
    gr_tensor c[2] = { I64(3, -2, 10), I64(3, 3, 15) };
    CHECK(run(&n, "Pow", 15, NULL, 0, 2, c, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I64, 3, (double[]){ 27, -8, 1e15 }, 0, "int64 ** int64");
    or_free(&n);
    /* x ** 2 with a constant exponent takes the x*x path; hidden, the pow path: both exact */
    gr_tensor d[2] = { F32(-1.5f, 3, 0.25f, -0.0f), ten(GR_F32, (float[]){ 2 }, 0, NULL) };
    for (unsigned hide = 0; hide < 2; hide++) {
        CHECK(run(&n, "Pow", 15, NULL, 0, 2, d, hide << 1) == 0, "%s", graft_last_error());
        expect(&n, GR_F32, 4, (double[]){ 2.25, 9, 0.0625, 0 }, 0,
               hide ? "pow(x, 2) at run time" : "x ** constant 2");
        or_free(&n);
    }
    gr_tensor e[2] = { U8(1, 2), U8(1, 2) };
    CHECK(run(&n, "Pow", 15, NULL, 0, 2, e, 0) == GRAFT_E_UNSUPPORTED,
          "uint8 base is not an ONNX Pow type");
    gr_tensor f[2] = { F32(1, 2), BOOL(1, 0) };
    CHECK(run(&n, "Pow", 15, NULL, 0, 2, f, 0) == GRAFT_E_UNSUPPORTED, "bool exponent");
}

/* ---- comparisons and logic ---- */

static void test_compare_logic(void)
{
    node n;
    gr_tensor in[2] = { ten(GR_F32, (float[]){ 1, NAN, 3, 4, 5, 6 }, DIMS(2, 3)), F32(1, 5, NAN) };
    static const struct {
        const char *op;
        double w[6];
    } cmp[] = {
        { "Equal", { 1, 0, 0, 0, 1, 0 } },          { "Less", { 0, 0, 0, 0, 0, 0 } },
        { "Greater", { 0, 0, 0, 1, 0, 0 } },        { "LessOrEqual", { 1, 0, 0, 0, 1, 0 } },
        { "GreaterOrEqual", { 1, 0, 0, 1, 1, 0 } },
    };
    for (int i = 0; i < 5; i++) {
        CHECK(run(&n, cmp[i].op, 16, NULL, 0, 2, in, 0) == 0, "%s", graft_last_error());
        expect(&n, GR_BOOL, 6, cmp[i].w, 0, cmp[i].op);
        or_free(&n);
    }
    gr_tensor eb[2] = { BOOL(1, 0, 1, 0), BOOL(1, 1, 0, 0) };
    CHECK(run(&n, "Equal", 13, NULL, 0, 2, eb, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_BOOL, 4, (double[]){ 1, 0, 0, 1 }, 0, "Equal on bool");
    or_free(&n);

    gr_tensor l[2] = { ten(GR_BOOL, (uint8_t[]){ 1, 0, 1, 0 }, DIMS(2, 2, 1)), BOOL(1, 0) };
    static const struct {
        const char *op;
        double w[8];
    } lg[] = {
        { "And", { 1, 0, 0, 0, 1, 0, 0, 0 } },
        { "Or", { 1, 1, 1, 0, 1, 1, 1, 0 } },
        { "Xor", { 0, 1, 1, 0, 0, 1, 1, 0 } },
    };
    for (int i = 0; i < 3; i++) {
        CHECK(run(&n, lg[i].op, 7, NULL, 0, 2, l, 0) == 0, "%s", graft_last_error());
        expect(&n, GR_BOOL, 8, lg[i].w, 0, lg[i].op);
        CHECK(n.out[0].shape.rank == 3 && n.out[0].shape.d[2] == 2, "%s broadcast shape", lg[i].op);
        or_free(&n);
    }
    CHECK(run(&n, "Not", 1, NULL, 0, 1, eb, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_BOOL, 4, (double[]){ 0, 1, 0, 1 }, 0, "Not");
    or_free(&n);
    CHECK(run(&n, "And", 7, NULL, 0, 2, in, 0) == GRAFT_E_UNSUPPORTED, "And of floats");
    CHECK(run(&n, "Not", 1, NULL, 0, 1, in, 0) == GRAFT_E_UNSUPPORTED, "Not of float");
}

/* ---- variadic ops ---- */

static void test_variadic(void)
{
    node n;
    gr_tensor in[3] = { ten(GR_F32, (float[]){ 1, 2, 3 }, DIMS(3, 1)),
                        ten(GR_F32, (float[]){ 10, 20, 30, 40 }, DIMS(1, 4)),
                        F32(100, 200, 300, 400) };
    double sum[12], mean[12], mx[12], mn[12];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            double a = i + 1, b = 10 * (j + 1), c = 100 * (j + 1);
            sum[i * 4 + j] = a + b + c;
            mean[i * 4 + j] = (float)((float)(a + b + c) / 3.0f);
            mx[i * 4 + j] = c;
            mn[i * 4 + j] = a;
        }
    CHECK(run(&n, "Sum", 13, NULL, 0, 3, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 12, sum, 0, "Sum of three, broadcast");
    or_free(&n);
    CHECK(run(&n, "Mean", 13, NULL, 0, 3, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 12, mean, 1e-7, "Mean of three, broadcast");
    or_free(&n);
    CHECK(run(&n, "Max", 13, NULL, 0, 3, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 12, mx, 0, "Max of three");
    or_free(&n);
    CHECK(run(&n, "Min", 13, NULL, 0, 3, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 12, mn, 0, "Min of three");
    or_free(&n);
    CHECK(run(&n, "Mean", 13, NULL, 0, 1, in + 2, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ 100, 200, 300, 400 }, 0, "Mean of one input");
    or_free(&n);

    gr_tensor nan[2] = { F32(NAN, 1, 2), F32(0, NAN, 1) };
    CHECK(run(&n, "Max", 13, NULL, 0, 2, nan, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 3, (double[]){ NAN, NAN, 2 }, 0, "Max propagates NaN");
    or_free(&n);
    CHECK(run(&n, "Min", 13, NULL, 0, 2, nan, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 3, (double[]){ NAN, NAN, 1 }, 0, "Min propagates NaN");
    or_free(&n);
    gr_tensor i8[2] = { I8(-128, 5, 127), I8(3, -3, 0) };
    CHECK(run(&n, "Max", 13, NULL, 0, 2, i8, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I8, 3, (double[]){ 3, 5, 127 }, 0, "int8 Max");
    or_free(&n);
    CHECK(run(&n, "Sum", 13, NULL, 0, 2, i8, 0) == GRAFT_E_UNSUPPORTED,
          "Sum is float-only in ONNX");
    gr_tensor mixed[2] = { F32(1), F64(1) };
    CHECK(run(&n, "Max", 13, NULL, 0, 2, mixed, 0) == GRAFT_E_FORMAT, "Max of float32 and float64");
}

/* ---- Where and PRelu ---- */

static void test_where(void)
{
    uint8_t cond[6] = { 1, 0, 0, 1, 1, 0 };
    int64_t x[4] = { 1, 2, 3, 4 };
    int64_t y[3] = { -1, -2, -3 };
    gr_tensor in[3] = { ten(GR_BOOL, cond, DIMS(2, 1, 3)), ten(GR_I64, x, DIMS(4, 1)),
                        ten(GR_I64, y, DIMS(3)) };
    gr_shape os = { 3, { 2, 4, 3 } };
    double want[24];
    for (int k = 0; k < 24; k++)
        want[k] = cond[naive_offset(&in[0].shape, &os, k)] ? x[naive_offset(&in[1].shape, &os, k)]
                                                           : y[naive_offset(&in[2].shape, &os, k)];
    node n;
    CHECK(run(&n, "Where", 16, NULL, 0, 3, in, 0) == 0, "%s", graft_last_error());
    CHECK(gr_shape_eq(&n.out[0].shape, &os), "Where three-way broadcast shape");
    expect(&n, GR_I64, 24, want, 0, "Where int64, three-way broadcast");
    or_free(&n);

    gr_tensor b[3] = { BOOL(1, 0, 1), BOOL(0, 0, 0), BOOL(1, 1, 1) };
    CHECK(run(&n, "Where", 16, NULL, 0, 3, b, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_BOOL, 3, (double[]){ 0, 1, 0 }, 0, "Where on bool values");
    or_free(&n);
    gr_tensor f[3] = { BOOL(1, 0), F32(1.5f, 2.5f), ten(GR_F32, (float[]){ -1 }, 0, NULL) };
    CHECK(run(&n, "Where", 16, NULL, 0, 3, f, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 2, (double[]){ 1.5, -1 }, 0, "Where float with a scalar");
    or_free(&n);
    f[0] = F32(1, 0);
    CHECK(run(&n, "Where", 16, NULL, 0, 3, f, 0) == GRAFT_E_FORMAT, "Where condition must be bool");
    f[0] = BOOL(1, 0), f[2] = F64(1);
    CHECK(run(&n, "Where", 16, NULL, 0, 3, f, 0) == GRAFT_E_FORMAT, "Where X and Y types differ");
}

static void test_prelu(void)
{
    float x[2 * 3 * 4 * 5], slope[3] = { 0.5f, -2, 0.25f };
    for (int i = 0; i < 120; i++) x[i] = frand();
    gr_tensor in[2] = { ten(GR_F32, x, DIMS(2, 3, 4, 5)), ten(GR_F32, slope, DIMS(3, 1, 1)) };
    double want[120];
    for (int i = 0; i < 120; i++) want[i] = x[i] < 0 ? x[i] * slope[i / 20 % 3] : x[i];
    node n;
    CHECK(run(&n, "PRelu", 16, NULL, 0, 2, in, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 120, want, 1e-7, "PRelu per channel");
    or_free(&n);
    gr_tensor bad[2] = { ten(GR_F32, x, DIMS(3, 4)), ten(GR_F32, x, DIMS(2, 3, 4)) };
    CHECK(run(&n, "PRelu", 16, NULL, 0, 2, bad, 0) == GRAFT_E_SHAPE,
          "slope must broadcast to X, not grow it");
    gr_tensor i[2] = { I64(-3, 4), I64(2) };
    CHECK(run(&n, "PRelu", 16, NULL, 0, 2, i, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I64, 2, (double[]){ -6, 4 }, 0, "int64 PRelu");
    or_free(&n);
}

/* ---- unary ops against closed forms ---- */

static double ref_unary(const char *op, double v)
{
    static const double selu_a = 1.67326319217681884765625, selu_g = 1.05070102214813232421875;
    if (!strcmp(op, "Relu")) return v > 0 ? v : 0;
    if (!strcmp(op, "LeakyRelu")) return v >= 0 ? v : (double)0.01f * v; /* attributes are float */
    if (!strcmp(op, "ThresholdedRelu")) return v > 1 ? v : 0;
    if (!strcmp(op, "Elu")) return v >= 0 ? v : exp(v) - 1;
    if (!strcmp(op, "Selu")) return v > 0 ? selu_g * v : selu_g * (selu_a * exp(v) - selu_a);
    if (!strcmp(op, "Celu")) return fmax(0, v) + fmin(0, exp(v) - 1);
    if (!strcmp(op, "Sigmoid")) return 1 / (1 + exp(-v));
    if (!strcmp(op, "HardSigmoid")) return fmax(0, fmin(1, (double)0.2f * v + 0.5));
    if (!strcmp(op, "HardSwish")) return v * fmax(0, fmin(1, v / 6 + 0.5));
    if (!strcmp(op, "Softplus")) return log(exp(v) + 1);
    if (!strcmp(op, "Softsign")) return v / (1 + fabs(v));
    if (!strcmp(op, "Tanh")) return tanh(v);
    if (!strcmp(op, "Erf")) return erf(v);
    if (!strcmp(op, "Sqrt")) return sqrt(v);
    if (!strcmp(op, "Exp")) return exp(v);
    if (!strcmp(op, "Log")) return log(v);
    if (!strcmp(op, "Reciprocal")) return 1 / v;
    if (!strcmp(op, "Floor")) return floor(v);
    if (!strcmp(op, "Ceil")) return ceil(v);
    if (!strcmp(op, "Sin")) return sin(v);
    if (!strcmp(op, "Cos")) return cos(v);
    if (!strcmp(op, "Tan")) return tan(v);
    if (!strcmp(op, "Asin")) return asin(v);
    if (!strcmp(op, "Acos")) return acos(v);
    if (!strcmp(op, "Atan")) return atan(v);
    if (!strcmp(op, "Sinh")) return sinh(v);
    if (!strcmp(op, "Cosh")) return cosh(v);
    if (!strcmp(op, "Asinh")) return asinh(v);
    if (!strcmp(op, "Acosh")) return acosh(v);
    if (!strcmp(op, "Atanh")) return atanh(v);
    if (!strcmp(op, "Neg")) return -v;
    if (!strcmp(op, "Abs")) return fabs(v);
    if (!strcmp(op, "Sign")) return v > 0 ? 1 : v < 0 ? -1 : 0;
    return NAN;
}

/* The input the op is fed: v, or v mapped into the op's domain. */
static double unary_input(const char *op, double v)
{
    if (!strcmp(op, "Sqrt") || !strcmp(op, "Log")) return fabs(v);
    if (!strcmp(op, "Asin") || !strcmp(op, "Acos") || !strcmp(op, "Atanh")) return v / 3.1;
    if (!strcmp(op, "Acosh")) return fabs(v) + 1;
    return v;
}

static void test_unary_float(void)
{
    static const char *ops[] = { "Relu",     "LeakyRelu",   "ThresholdedRelu",
                                 "Elu",      "Selu",        "Celu",
                                 "Sigmoid",  "HardSigmoid", "HardSwish",
                                 "Softplus", "Softsign",    "Tanh",
                                 "Erf",      "Sqrt",        "Exp",
                                 "Log",      "Reciprocal",  "Floor",
                                 "Ceil",     "Sin",         "Cos",
                                 "Tan",      "Asin",        "Acos",
                                 "Atan",     "Sinh",        "Cosh",
                                 "Asinh",    "Acosh",       "Atanh",
                                 "Neg",      "Abs",         "Sign" };
    enum { N = 70001 }; /* big enough to run threaded, and odd */
    float *xf = malloc(N * sizeof *xf);
    double *xd = malloc(N * sizeof *xd), *want = malloc(N * sizeof *want);
    for (size_t oi = 0; oi < sizeof ops / sizeof *ops; oi++) {
        const char *op = ops[oi];
        for (int i = 0; i < N; i++) {
            double v =
                i < 9 ? (double[]){ 0, 1, -1, 0.5, -0.5, 3, -3, 1.25, 25 }[i] : 3.0 * frand();
            if (!strcmp(op, "Reciprocal") && v == 0) v = 0.5;
            xd[i] = unary_input(op, v);
            xf[i] = (float)xd[i];
        }
        for (int dt = 0; dt < 2; dt++) {
            gr_tensor in = dt ? ten(GR_F64, xd, DIMS(N)) : ten(GR_F32, xf, DIMS(N));
            for (int i = 0; i < N; i++) {
                double w = ref_unary(op, dt ? xd[i] : (double)xf[i]);
                want[i] = dt ? w : (float)w;
            }
            node n;
            char what[64];
            snprintf(what, sizeof what, "%s %s", op, dt ? "float64" : "float32");
            CHECK(run(&n, op, 13, NULL, 0, 1, &in, 0) == 0, "%s: %s", what, graft_last_error());
            expect(&n, dt ? GR_F64 : GR_F32, N, want, dt ? 1e-12 : 2e-6, what);
            or_free(&n);
        }
    }
    free(xf), free(xd), free(want);

    node n;
    gr_tensor r = F32(0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f, -2.6f, NAN, INFINITY);
    CHECK(run(&n, "Round", 11, NULL, 0, 1, &r, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 10, (double[]){ 0, 2, 2, -0.0, -2, -2, 2, -3, NAN, INFINITY }, 0,
           "Round half to even");
    or_free(&n);
    CHECK(run(&n, "Relu", 14, NULL, 0, 1, &r, 0) == 0, "%s", graft_last_error());
    CHECK(isnan(((float *)n.out[0].data)[8]), "Relu keeps NaN");
    or_free(&n);

    /* attributes */
    gr_tensor x = F32(-2, -0.5f, 0.5f, 2);
    gr_attr la = fval("alpha", 0.1f);
    CHECK(run(&n, "LeakyRelu", 16, &la, 1, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ -0.2f, -0.05f, 0.5, 2 }, 0, "LeakyRelu alpha");
    or_free(&n);
    gr_attr hs[2] = { fval("alpha", 0.5f), fval("beta", 0.25f) };
    CHECK(run(&n, "HardSigmoid", 6, hs, 2, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ 0, 0, 0.5, 1 }, 0, "HardSigmoid alpha beta");
    or_free(&n);
    gr_attr ca = fval("alpha", 2.0f);
    CHECK(run(&n, "Celu", 12, &ca, 1, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ 2 * expm1(-1.0), 2 * expm1(-0.25), 0.5, 2 }, 1e-7,
           "Celu alpha");
    or_free(&n);
    CHECK(run(&n, "ThresholdedRelu", 10, &ca, 1, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ 0, 0, 0, 0 }, 0, "ThresholdedRelu alpha 2 (2 is not > 2)");
    or_free(&n);
    gr_attr sa[2] = { fval("alpha", 2.0f), fval("gamma", 3.0f) };
    CHECK(run(&n, "Selu", 6, sa, 2, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ 6 * expm1(-2.0), 6 * expm1(-0.5), 1.5, 6 }, 1e-7,
           "Selu alpha gamma");
    or_free(&n);
    CHECK(run(&n, "Elu", 6, &ca, 1, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ 2 * expm1(-2.0), 2 * expm1(-0.5), 0.5, 2 }, 1e-7,
           "Elu alpha");
    or_free(&n);
    gr_attr sh[2] = { fval("lambd", 1.0f), fval("bias", 0.5f) };
    CHECK(run(&n, "Shrink", 9, sh, 2, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ -1.5, 0, 0, 1.5 }, 0, "Shrink lambd bias");
    or_free(&n);
    CHECK(run(&n, "Shrink", 9, NULL, 0, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 4, (double[]){ -2, 0, 0, 2 }, 0, "Shrink defaults (lambd 0.5, bias 0)");
    or_free(&n);
    gr_attr junk = fval("beta", 1);
    CHECK(run(&n, "LeakyRelu", 16, &junk, 1, 1, &x, 0) == GRAFT_E_UNSUPPORTED, "unknown attribute");
    CHECK(strstr(graft_last_error(), "'beta'") != NULL, "message names it: %s", graft_last_error());
}

static void test_unary_int(void)
{
    node n;
    gr_tensor a = I8(-128, -5, 0, 7, 127);
    CHECK(run(&n, "Neg", 13, NULL, 0, 1, &a, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I8, 5, (double[]){ -128, 5, 0, -7, -127 }, 0, "int8 Neg wraps at -128");
    or_free(&n);
    CHECK(run(&n, "Abs", 13, NULL, 0, 1, &a, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I8, 5, (double[]){ -128, 5, 0, 7, 127 }, 0, "int8 Abs");
    or_free(&n);
    CHECK(run(&n, "Sign", 13, NULL, 0, 1, &a, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I8, 5, (double[]){ -1, -1, 0, 1, 1 }, 0, "int8 Sign");
    or_free(&n);
    CHECK(run(&n, "Relu", 14, NULL, 0, 1, &a, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I8, 5, (double[]){ 0, 0, 0, 7, 127 }, 0, "int8 Relu");
    or_free(&n);
    gr_tensor b = I64(-3, 4);
    CHECK(run(&n, "Abs", 13, NULL, 0, 1, &b, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I64, 2, (double[]){ 3, 4 }, 0, "int64 Abs");
    or_free(&n);
    gr_tensor u = U8(0, 200);
    CHECK(run(&n, "Sign", 13, NULL, 0, 1, &u, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_U8, 2, (double[]){ 0, 1 }, 0, "uint8 Sign");
    or_free(&n);
    CHECK(run(&n, "Neg", 13, NULL, 0, 1, &u, 0) == GRAFT_E_UNSUPPORTED, "uint8 Neg");
    CHECK(run(&n, "Sigmoid", 13, NULL, 0, 1, &b, 0) == GRAFT_E_UNSUPPORTED, "int64 Sigmoid");
    CHECK(strstr(graft_last_error(), "int64") != NULL, "message names the type: %s",
          graft_last_error());
}

/* The vectorised float32 Sigmoid, Tanh and Erf (use_ref = 0) against the libm reference, over a
 * dense sweep of [-20, 20] and the special values. */
static void test_fast_activations(void)
{
    enum { N = 400000 + 16 };
    float *x = malloc(N * sizeof *x);
    static const float special[16] = { 0.0f,   -0.0f,  INFINITY, -INFINITY, NAN,   1e-6f,
                                       -1e-6f, 1e-30f, 100,      -100,      1e30f, -1e30f,
                                       0.5f,   0.625f, -0.625f,  88.5f };
    for (int i = 0; i < N - 16; i++) x[i] = -20.0f + 40.0f * (float)i / (N - 16);
    memcpy(x + N - 16, special, sizeof special);
    static const struct {
        const char *op;
        double rtol, atol;
    } ops[] = { { "Sigmoid", 1e-6, 1e-30 }, { "Tanh", 1e-6, 1e-30 }, { "Erf", 1e-6, 3e-7 } };
    for (int oi = 0; oi < 3; oi++) {
        node ref, fast;
        gr_tensor in = ten(GR_F32, x, DIMS(N));
        use_ref = 1;
        CHECK(run(&ref, ops[oi].op, 13, NULL, 0, 1, &in, 0) == 0, "%s", graft_last_error());
        use_ref = 0;
        CHECK(run(&fast, ops[oi].op, 13, NULL, 0, 1, &in, 0) == 0, "%s", graft_last_error());
        use_ref = 1;
        const float *a = fast.out[0].data, *b = ref.out[0].data;
        int64_t bad = -1;
        double worst = 0;
        for (int64_t i = 0; i < N; i++) {
            double d = fabs((double)a[i] - b[i]);
            if (isnan(b[i]) ? !isnan(a[i]) : !(d <= ops[oi].atol + ops[oi].rtol * fabs(b[i]))) {
                if (bad < 0) bad = i;
            }
            if (d > worst) worst = d;
        }
        CHECK(bad < 0, "fast %s: at x = %.9g got %.9g, libm %.9g (max abs diff %.3g)", ops[oi].op,
              bad < 0 ? 0 : x[bad], bad < 0 ? 0 : a[bad], bad < 0 ? 0 : b[bad], worst);
        or_free(&ref);
        or_free(&fast);
    }
    free(x);
}

/* ---- Clip ---- */

static void test_clip(void)
{
    node n;
    gr_tensor x = F32(-3, -1, 0, 1, 3, NAN);
    gr_attr mm[2] = { fval("min", -1.5f), fval("max", 2) };
    CHECK(run(&n, "Clip", 6, mm, 2, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 6, (double[]){ -1.5, -1, 0, 1, 2, NAN }, 0, "Clip-6 attributes");
    or_free(&n);
    CHECK(run(&n, "Clip", 6, mm + 1, 1, 1, &x, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 6, (double[]){ -3, -1, 0, 1, 2, NAN }, 0, "Clip-6 max only");
    or_free(&n);
    CHECK(run(&n, "Clip", 11, mm, 2, 1, &x, 0) == GRAFT_E_UNSUPPORTED, "Clip-11 has no attributes");

    gr_tensor lo = ten(GR_F32, (float[]){ -2 }, 0, NULL),
              hi = ten(GR_F32, (float[]){ 0.5f }, 0, NULL);
    for (unsigned hide = 0; hide < 8;
         hide += 6) { /* constant bounds, then bounds known at run time */
        gr_tensor in[3] = { x, lo, hi };
        CHECK(run(&n, "Clip", 13, NULL, 0, 3, in, hide) == 0, "%s", graft_last_error());
        expect(&n, GR_F32, 6, (double[]){ -2, -1, 0, 0.5, 0.5, NAN }, 0, "Clip-13 min and max");
        or_free(&n);
        gr_tensor only_max[3] = { x, { 0 }, hi };
        CHECK(run(&n, "Clip", 13, NULL, 0, 3, only_max, hide) == 0, "%s", graft_last_error());
        expect(&n, GR_F32, 6, (double[]){ -3, -1, 0, 0.5, 0.5, NAN }, 0, "Clip-13 absent min");
        or_free(&n);
    }
    gr_tensor swapped[3] = { x, hi, lo };
    CHECK(run(&n, "Clip", 13, NULL, 0, 3, swapped, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F32, 6, (double[]){ -2, -2, -2, -2, -2, NAN }, 0, "Clip min > max gives max");
    or_free(&n);

    gr_tensor i8[2] = { I8(-128, -1, 0, 5, 127), ten(GR_I8, (int8_t[]){ 0 }, 0, NULL) };
    CHECK(run(&n, "Clip", 13, NULL, 0, 2, i8, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I8, 5, (double[]){ 0, 0, 0, 5, 127 }, 0, "int8 Clip min only");
    or_free(&n);
    gr_tensor i64[3] = { I64(INT64_MIN, 5, INT64_MAX),
                         { 0 },
                         ten(GR_I64, (int64_t[]){ 4 }, 0, NULL) };
    CHECK(run(&n, "Clip", 13, NULL, 0, 3, i64, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I64, 3, (double[]){ (double)INT64_MIN, 4, 4 }, 0, "int64 Clip max only");
    or_free(&n);

    gr_tensor wrong[2] = { x, ten(GR_F64, (double[]){ 0 }, 0, NULL) };
    CHECK(run(&n, "Clip", 13, NULL, 0, 2, wrong, 0) == GRAFT_E_FORMAT,
          "Clip bound of another type");
    gr_tensor vec[2] = { x, F32(0, 1) };
    CHECK(run(&n, "Clip", 13, NULL, 0, 2, vec, 0) == GRAFT_E_SHAPE, "Clip bound must be a scalar");
}

/* ---- Cast ---- */

static void test_cast(void)
{
    static const int types[] = { GR_F32, GR_F64, GR_I64, GR_I32, GR_I8, GR_U8, GR_BOOL };
    /* values every type holds: every pair of types must round-trip them */
    static const double vals[] = { 0, 1, 2, 7, 100, 127 };
    char src[6 * 8];
    for (int a = 0; a < 7; a++)
        for (int b = 0; b < 7; b++) {
            gr_tensor in = ten(types[a], src, DIMS(6));
            for (int i = 0; i < 6; i++) gr_set_f64(&in, i, vals[i]);
            double want[6];
            for (int i = 0; i < 6; i++)
                want[i] = types[a] == GR_BOOL || types[b] == GR_BOOL ? vals[i] != 0 : vals[i];
            gr_attr to = ival("to", types[b]);
            node n;
            char what[64];
            snprintf(what, sizeof what, "Cast %s to %s", gr_dtype_name(types[a]),
                     gr_dtype_name(types[b]));
            CHECK(run(&n, "Cast", 13, &to, 1, 1, &in, 0) == 0, "%s: %s", what, graft_last_error());
            expect(&n, types[b], 6, want, 0, what);
            or_free(&n);
        }

    node n;
    gr_tensor f = F32(-2.7f, 2.7f, -0.5f, 300.0f, -1.0f, NAN, 1e20f);
    gr_attr to = ival("to", GR_I32);
    CHECK(run(&n, "Cast", 13, &to, 1, 1, &f, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I32, 7, (double[]){ -2, 2, 0, 300, -1, 0, -1 }, 0,
           "float to int32 truncates toward zero");
    or_free(&n);
    to.i = GR_U8;
    CHECK(run(&n, "Cast", 13, &to, 1, 1, &f, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_U8, 7, (double[]){ 254, 2, 0, 44, 255, 0, 255 }, 0,
           "float to uint8 truncates then wraps");
    or_free(&n);
    to.i = GR_BOOL;
    CHECK(run(&n, "Cast", 13, &to, 1, 1, &f, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_BOOL, 7, (double[]){ 1, 1, 1, 1, 1, 1, 1 }, 0,
           "float to bool: nonzero and NaN are true");
    or_free(&n);
    gr_tensor big = I64(INT64_MAX, -9007199254740993LL);
    to.i = GR_F64;
    CHECK(run(&n, "Cast", 13, &to, 1, 1, &big, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_F64, 2, (double[]){ 9223372036854775807.0, -9007199254740992.0 }, 0,
           "int64 to float64 rounds");
    or_free(&n);
    gr_tensor wide = I32(300, -129, 65);
    to.i = GR_I8;
    CHECK(run(&n, "Cast", 13, &to, 1, 1, &wide, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I8, 3, (double[]){ 44, 127, 65 }, 0, "int32 to int8 wraps");
    or_free(&n);

    gr_tensor like[2] = { F32(1.5f, -1.5f), I64(0) };
    CHECK(run(&n, "CastLike", 15, NULL, 0, 2, like, 0) == 0, "%s", graft_last_error());
    expect(&n, GR_I64, 2, (double[]){ 1, -1 }, 0, "CastLike takes input 1's type");
    or_free(&n);

    to.i = 10; /* float16 */
    CHECK(run(&n, "Cast", 13, &to, 1, 1, &f, 0) == GRAFT_E_UNSUPPORTED, "cast to float16");
    CHECK(strstr(graft_last_error(), "cast to type float16") != NULL, "message: %s",
          graft_last_error());
    to.i = 8; /* string */
    CHECK(run(&n, "Cast", 13, &to, 1, 1, &f, 0) == GRAFT_E_UNSUPPORTED, "cast to string");
    CHECK(run(&n, "Cast", 13, NULL, 0, 1, &f, 0) == GRAFT_E_FORMAT, "Cast without 'to'");
}

/* ---- errors ---- */

static void test_errors(void)
{
    node n;
    gr_tensor mixed[2] = { F32(1, 2), I64(1, 2) };
    CHECK(run(&n, "Add", 14, NULL, 0, 2, mixed, 0) == GRAFT_E_FORMAT, "Add of float32 and int64");
    CHECK(strstr(graft_last_error(), "node 't' (Add)") != NULL, "message names the node: %s",
          graft_last_error());
    gr_tensor shapes[2] = { ten(GR_F32, NULL, DIMS(2, 3)), ten(GR_F32, NULL, DIMS(2)) };
    CHECK(run(&n, "Mul", 14, NULL, 0, 2, shapes, 0) == GRAFT_E_SHAPE, "(2,3) * (2)");
    CHECK(strstr(graft_last_error(), "cannot be broadcast") != NULL, "message: %s",
          graft_last_error());
    gr_attr legacy = ival("broadcast", 1);
    gr_tensor ok[2] = { F32(1), F32(2) };
    CHECK(run(&n, "Add", 6, &legacy, 1, 2, ok, 0) == GRAFT_E_UNSUPPORTED,
          "Add-6 broadcast attribute");
    CHECK(run(&n, "Add", 14, NULL, 0, 1, ok, 0) == GRAFT_E_FORMAT, "Add of one input");
    CHECK(run(&n, "Sum", 13, NULL, 0, 0, ok, 0) == GRAFT_E_FORMAT, "Sum of no input");
}

int main(void)
{
    test_broadcast_shapes();
    test_broadcast_types();
    test_integer_arith();
    test_mod();
    test_pow();
    test_bitshift();
    test_compare_logic();
    test_variadic();
    test_where();
    test_prelu();
    test_unary_float();
    test_unary_int();
    test_fast_activations();
    test_clip();
    test_cast();
    test_errors();
    return th_finish();
}
