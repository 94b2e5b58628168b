/* test_grad_elementwise.c — backward of the elementwise family. Oracle: central finite
 * differences of each op's own forward (tests/gradcheck.h), with the plain C and the fast
 * kernels. Binary ops on every broadcasting pattern (same shape, trailing vector, both sides
 * broadcast, scalar on either side, per-channel, sizes that run the threaded reductions), the
 * variadic Sum/Mean/Max/Min, Where, every unary op with a gradient, Clip by opset (with the
 * gradients of min and max), Cast. Inputs keep away from kinks: values sit on a 0.1 grid offset
 * by 0.05 (or 0.025 / -0.025 for the two sides of Max and Min), so a step of 0.01 never crosses
 * 0, a threshold or a tie. The flat.c wrapper is checked on a blocked (padded) layout against the
 * op run on the same storage as a plain 1-D tensor, and against the plain shape's gradient. */
#include "gradcheck.h"

#include <stdlib.h>
#include <string.h>

#define MAXBUF 4096
static void *bufs[MAXBUF];
static int nbufs;

static float *keep(float *p)
{
    if (nbufs < MAXBUF) bufs[nbufs++] = p;
    return p;
}

static gr_shape shp(int rank, const int64_t *d) { return gr_shape_make(rank, d); }
#define S(...)                                                                                     \
    shp((int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), (int64_t[]){ __VA_ARGS__ })
#define S0 shp(0, NULL)

/* Uniform values in [lo, hi). */
static gr_tensor uni(gr_shape s, float lo, float hi, uint64_t seed)
{
    int64_t n = gr_numel(&s);
    float *p = keep(malloc((size_t)n * sizeof(float) + 4));
    gc_fill(p, n, seed, lo, hi);
    return (gr_tensor){ .dtype = GR_F32, .shape = s, .data = p };
}

/* Values k * 0.1 + off, k uniform in [-K, K]: away from kinks at multiples of 0.1. */
static gr_tensor grid(gr_shape s, int K, float off, uint64_t seed)
{
    int64_t n = gr_numel(&s);
    float *p = keep(malloc((size_t)n * sizeof(float) + 4));
    gr_rng r;
    gr_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((int64_t)gr_rng_below(&r, 2 * (uint64_t)K + 1) - K) * 0.1f + off;
    return (gr_tensor){ .dtype = GR_F32, .shape = s, .data = p };
}

static void check_both(gc_case *k, const char *what)
{
    for (int ref = 0; ref <= 1; ref++) {
        k->use_ref = ref;
        gc_check(k, what);
    }
}

/* ---- binary ops on broadcasting patterns ---- */

static void test_binary(void)
{
    struct {
        gr_shape a, b;
        const char *what;
    } pats[] = {
        { S(2, 3, 4), S(2, 3, 4), "same shape" },
        { S(2, 3, 4), S(4), "(2,3,4) with (4,)" },
        { S(2, 1, 4), S(3, 1), "(2,1,4) with (3,1)" },
        { S(2, 3, 4), S0, "tensor with scalar" },
        { S0, S(2, 3), "scalar with tensor" },
        { S(1, 3, 1), S(2, 1, 5), "both sides broadcast" },
        { S(5, 1, 3), S(1, 4, 1), "both sides broadcast, interleaved" },
        { S(2, 3, 4, 5), S(1, 3, 1, 1), "per channel" },
        { S(1), S(3, 2), "(1,) with (3,2)" },
    };
    const char *ops[] = { "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min" };
    for (size_t p = 0; p < sizeof pats / sizeof *pats; p++)
        for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) {
            const char *op = ops[o];
            gr_tensor ins[2];
            if (!strcmp(op, "Div")) {
                ins[0] = uni(pats[p].a, -2, 2, 1 + p);
                ins[1] = uni(pats[p].b, 0.5f, 2, 2 + p);
            } else if (!strcmp(op, "Pow")) {
                ins[0] = uni(pats[p].a, 0.5f, 2, 3 + p);
                ins[1] = uni(pats[p].b, -1.5f, 2.5f, 4 + p);
            } else { /* Max/Min: a and b never within 0.05 of each other */
                ins[0] = grid(pats[p].a, 10, 0.025f, 5 + p);
                ins[1] = grid(pats[p].b, 10, -0.025f, 6 + p);
            }
            gc_case k = { .op = op, .opset = 13, .nin = 2, .ins = ins, .nout = 1, .need = 3 };
            char what[160];
            snprintf(what, sizeof what, "%s %s", op, pats[p].what);
            check_both(&k, what);
        }
    /* one side only, and the other */
    gr_tensor ins[2] = { uni(S(3, 4), -1, 1, 11), uni(S(4), 0.5f, 2, 12) };
    gc_case k = { .op = "Mul", .opset = 13, .nin = 2, .ins = ins, .nout = 1, .need = 1 };
    gc_check(&k, "Mul, gradient of a only");
    k.need = 2;
    gc_check(&k, "Mul, gradient of b only");
    k.op = "Div";
    gc_check(&k, "Div, gradient of b only");

    /* PRelu: slope per channel, x away from 0 */
    gr_tensor pr[2] = { grid(S(2, 3, 4, 5), 10, 0.05f, 13), uni(S(3, 1, 1), 0.05f, 0.5f, 14) };
    gc_case kp = { .op = "PRelu", .opset = 16, .nin = 2, .ins = pr, .nout = 1, .need = 3 };
    check_both(&kp, "PRelu per-channel slope");
    pr[1] = uni(S(2, 3, 4, 5), -0.5f, 0.5f, 15);
    check_both(&kp, "PRelu full slope");
    pr[1] = uni(S0, 0.1f, 0.3f, 16);
    check_both(&kp, "PRelu scalar slope");
}

/* Big enough for the threaded walks and both kinds of threaded reduction. */
static void test_big_broadcast(void)
{
    struct {
        gr_shape a, b;
        const char *what;
    } pats[] = {
        { S(40, 33, 30), S(33, 1), "(40,33,30)+(33,1): kept dims split" },
        { S(40, 33, 30), S(30), "(40,33,30)+(30,): partial sums" },
        { S(40, 33, 30), S0, "(40,33,30)+scalar" },
        { S(4, 16, 24, 24), S(1, 16, 1, 1), "bias of a (4,16,24,24) map" },
    };
    for (size_t p = 0; p < sizeof pats / sizeof *pats; p++) {
        const char *ops[] = { "Add", "Mul", "Sub" };
        for (int o = 0; o < 3; o++) {
            gr_tensor ins[2] = { uni(pats[p].a, -1, 1, 21 + p), uni(pats[p].b, -1, 1, 31 + p) };
            gc_case k = {
                .op = ops[o], .opset = 14, .nin = 2, .ins = ins, .nout = 1, .need = 3, .rtol = 2e-2
            };
            char what[160];
            snprintf(what, sizeof what, "%s %s", ops[o], pats[p].what);
            gc_check(&k, what);
        }
    }
}

static void test_variadic(void)
{
    gr_shape sh[3] = { S(2, 3, 4), S(3, 1), S(4) };
    const char *ops[] = { "Sum", "Mean", "Max", "Min" };
    for (int o = 0; o < 4; o++) {
        gr_tensor ins[3];
        for (int i = 0; i < 3; i++)
            ins[i] = grid(sh[i], 10, 0.0167f + 0.0333f * (float)i, 40 + 3 * o + i);
        gc_case k = { .op = ops[o], .opset = 13, .nin = 3, .ins = ins, .nout = 1, .need = 7 };
        char what[96];
        snprintf(what, sizeof what, "%s of three broadcast inputs", ops[o]);
        check_both(&k, what);
        k.nin = 2;
        snprintf(what, sizeof what, "%s of two", ops[o]);
        check_both(&k, what);
        k.nin = 1;
        snprintf(what, sizeof what, "%s of one", ops[o]);
        check_both(&k, what);
    }
}

static void test_where(void)
{
    uint8_t cond[8] = { 1, 0, 0, 1, 1, 1, 0, 1 };
    gr_tensor c = { .dtype = GR_BOOL, .shape = S(2, 1, 4), .data = cond };
    struct {
        gr_shape x, y;
        const char *what;
    } pats[] = {
        { S(2, 3, 4), S(2, 3, 4), "x, y full" },
        { S(3, 1), S(4), "x (3,1), y (4,)" },
        { S0, S(2, 3, 1), "scalar x" },
    };
    for (int p = 0; p < 3; p++) {
        gr_tensor ins[3] = { c, uni(pats[p].x, -1, 1, 50 + p), uni(pats[p].y, -1, 1, 60 + p) };
        gc_case k = { .op = "Where", .opset = 16, .nin = 3, .ins = ins, .nout = 1, .need = 6 };
        char what[96];
        snprintf(what, sizeof what, "Where %s", pats[p].what);
        check_both(&k, what);
    }
    gr_tensor ins[3] = { c, uni(S(2, 3, 4), -1, 1, 70), uni(S(2, 3, 4), -1, 1, 71) };
    gc_case k = { .op = "Where", .opset = 16, .nin = 3, .ins = ins, .nout = 1, .need = 7 };
    gc_node n;
    CHECK(gc_prepare(&n, &k, ins) != GRAFT_OK, "Where refuses a gradient for the condition");
    gc_free(&n);
}

/* ---- unary ops ---- */

static gr_attr fattr(const char *name, float v)
{
    return (gr_attr){ .name = name, .type = GR_AT_FLOAT, .f = v };
}

static void test_unary(void)
{
    enum { GRID, WIDE, POS, UNIT, ABOVE1 };
    struct {
        const char *op;
        int dom;
        const char *attr;
        float av;
    } ops[] = {
        { "Relu", GRID, NULL, 0 },
        { "LeakyRelu", GRID, "alpha", 0.1f },
        { "ThresholdedRelu", GRID, "alpha", 0.5f },
        { "Elu", GRID, "alpha", 0.7f },
        { "Selu", GRID, NULL, 0 },
        { "Celu", GRID, "alpha", 0.7f },
        { "Shrink", GRID, "lambd", 0.3f },
        { "Sigmoid", WIDE, NULL, 0 },
        { "HardSigmoid", GRID, "alpha", 0.25f },
        { "HardSwish", GRID, NULL, 0 },
        { "Softplus", WIDE, NULL, 0 },
        { "Softsign", GRID, NULL, 0 },
        { "Tanh", WIDE, NULL, 0 },
        { "Erf", WIDE, NULL, 0 },
        { "Sqrt", POS, NULL, 0 },
        { "Exp", WIDE, NULL, 0 },
        { "Log", POS, NULL, 0 },
        { "Reciprocal", POS, NULL, 0 },
        { "Floor", GRID, NULL, 0 },
        { "Ceil", GRID, NULL, 0 },
        { "Round", GRID, NULL, 0 },
        { "Sign", GRID, NULL, 0 },
        { "Sin", WIDE, NULL, 0 },
        { "Cos", WIDE, NULL, 0 },
        { "Tan", UNIT, NULL, 0 },
        { "Asin", UNIT, NULL, 0 },
        { "Acos", UNIT, NULL, 0 },
        { "Atan", WIDE, NULL, 0 },
        { "Sinh", WIDE, NULL, 0 },
        { "Cosh", WIDE, NULL, 0 },
        { "Asinh", WIDE, NULL, 0 },
        { "Acosh", ABOVE1, NULL, 0 },
        { "Atanh", UNIT, NULL, 0 },
        { "Neg", WIDE, NULL, 0 },
        { "Abs", GRID, NULL, 0 },
    };
    for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) {
        gr_shape s = S(3, 5, 7);
        uint64_t seed = 100 + o;
        gr_tensor x = ops[o].dom == GRID   ? grid(s, 35, 0.05f, seed)
                      : ops[o].dom == WIDE ? uni(s, -2.5f, 2.5f, seed)
                      : ops[o].dom == POS  ? uni(s, 0.4f, 3, seed)
                      : ops[o].dom == UNIT ? uni(s, -0.8f, 0.8f, seed)
                                           : uni(s, 1.3f, 3, seed);
        gr_attr a = fattr(ops[o].attr ? ops[o].attr : "", ops[o].av);
        gc_case k = { .op = ops[o].op,
                      .opset = 13,
                      .attrs = &a,
                      .nattr = ops[o].attr ? 1 : 0,
                      .nin = 1,
                      .ins = &x,
                      .nout = 1,
                      .need = 1 };
        check_both(&k, ops[o].op);
    }
    /* threaded, with the fast kernels */
    const char *big[] = { "Relu", "Sigmoid", "Tanh", "Erf", "Exp" };
    for (int o = 0; o < 5; o++) {
        gr_tensor x = grid(S(190, 190), 25, 0.05f, 200 + (uint64_t)o);
        gc_case k = { .op = big[o], .opset = 13, .nin = 1, .ins = &x, .nout = 1, .need = 1 };
        char what[64];
        snprintf(what, sizeof what, "%s on 36100 elements", big[o]);
        gc_check(&k, what);
    }
    uint8_t b[4] = { 0, 1, 0, 1 };
    gr_tensor xb = { .dtype = GR_BOOL, .shape = S(4), .data = b };
    gc_case k = { .op = "Not", .opset = 13, .nin = 1, .ins = &xb, .nout = 1, .need = 1 };
    gc_node n;
    CHECK(gc_prepare(&n, &k, &xb) != GRAFT_OK, "Not (bool) refuses a gradient");
    gc_free(&n);
}

static void test_clip_cast(void)
{
    gr_tensor x = grid(S(4, 5, 3), 15, 0.05f, 300);
    gr_attr a6[2] = { fattr("min", -0.5f), fattr("max", 0.7f) };
    gc_case k = {
        .op = "Clip", .opset = 6, .attrs = a6, .nattr = 2, .nin = 1, .ins = &x, .nout = 1, .need = 1
    };
    check_both(&k, "Clip-6 min and max attributes");
    k.nattr = 1;
    check_both(&k, "Clip-6 min only");
    float lo = -0.5f, hi = 0.7f;
    gr_tensor ins[3] = { x,
                         { .dtype = GR_F32, .shape = S0, .data = &lo },
                         { .dtype = GR_F32, .shape = S0, .data = &hi } };
    gc_case k13 = { .op = "Clip", .opset = 13, .nin = 3, .ins = ins, .nout = 1, .need = 1 };
    check_both(&k13, "Clip-13 with min and max inputs");
    k13.need = 7;
    check_both(&k13, "Clip-13 gradients of x, min and max");
    ins[1].dtype = 0;
    k13.need = 5;
    check_both(&k13, "Clip-13 max only, gradient of max");
    k13.nin = 1;
    k13.need = 1;
    check_both(&k13, "Clip-13 without bounds");

    gr_attr to = { .name = "to", .type = GR_AT_INT, .i = 1 };
    gr_tensor xc = uni(S(3, 7), -2, 2, 301);
    gc_case kc = { .op = "Cast",
                   .opset = 13,
                   .attrs = &to,
                   .nattr = 1,
                   .nin = 1,
                   .ins = &xc,
                   .nout = 1,
                   .need = 1 };
    check_both(&kc, "Cast float32 to float32");
    to.i = 7;
    gc_node n;
    CHECK(gc_prepare(&n, &kc, &xc) != GRAFT_OK, "Cast to int64 refuses a gradient");
    gc_free(&n);
}

/* A float64 input gets a clear error, not a wrong gradient. */
static void test_errors(void)
{
    double d[4] = { 1, 2, 3, 4 };
    gr_tensor x = { .dtype = GR_F64, .shape = S(4), .data = d };
    gc_case k = { .op = "Relu", .opset = 13, .nin = 1, .ins = &x, .nout = 1, .need = 1 };
    gc_node n;
    CHECK(gc_prepare(&n, &k, &x) != GRAFT_OK && strstr(graft_last_error(), "float32"),
          "float64 backward: %s", graft_last_error());
    gc_free(&n);
    int64_t iv[4] = { 1, 2, 3, 4 };
    gr_tensor xi[2] = { { .dtype = GR_I64, .shape = S(4), .data = iv },
                        { .dtype = GR_I64, .shape = S(4), .data = iv } };
    gc_case kb = { .op = "Equal", .opset = 13, .nin = 2, .ins = xi, .nout = 1, .need = 1 };
    CHECK(or_find("Equal")->backward == NULL, "Equal has no backward");
    (void)kb;
}

/* ---- the flat.c wrapper on a blocked layout ---- */

/* Runs op's prepare/forward/backward through the registry (the flat wrapper) on inputs that may
 * carry a layout; returns the status of prepare. din[i] gets the gradient of input i. */
static int run_flat_op(const char *op, int nin, const gr_tensor *ins, const float *dy, float **din,
                       uint32_t need)
{
    or_node n;
    int st = or_prepare(&n, &(or_spec){ .op = op,
                                        .opset = 13,
                                        .nin = nin,
                                        .ins = ins,
                                        .layouts = 1,
                                        .training = 1,
                                        .need_grad = need });
    if (st) return st;
    or_forward(&n);
    gr_tensor dout = n.out[0], *pdout = &dout, dins[3], *pdin[3] = { 0 };
    dout.data = (void *)dy;
    for (int i = 0; i < nin; i++)
        if (need >> i & 1) {
            dins[i] = n.in[i];
            dins[i].data = din[i];
            pdin[i] = &dins[i];
        }
    or_backward(&n, &pdout, pdin);
    or_free(&n);
    return GRAFT_OK;
}

static void test_flat_blocked(void)
{
    /* (2, 3, 2, 2) in a 16-channel blocked layout: 2 * 16 * 4 floats, channels 3..15 padding. */
    static const int dummy_layout = 0;
    int64_t m = 2 * 16 * 4;
    const char *ops[] = {
        "Relu", "Sigmoid", "Tanh", "Exp", "Add", "Mul", "Max", "Clip", "HardSwish"
    };
    for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) {
        int bin = !strcmp(ops[o], "Add") || !strcmp(ops[o], "Mul") || !strcmp(ops[o], "Max");
        int nin = bin ? 2 : 1;
        float *x[2], *dy = keep(malloc((size_t)m * sizeof(float))), *g1[2], *g2[2];
        for (int i = 0; i < nin; i++) {
            x[i] = grid(S(m), 20, i ? -0.025f : 0.025f, 400 + 2 * o + (uint64_t)i).data;
            g1[i] = keep(malloc((size_t)m * sizeof(float)));
            g2[i] = keep(malloc((size_t)m * sizeof(float)));
        }
        gc_fill(dy, m, 500 + o, -1, 1);
        gr_tensor blk[2], flat[2];
        for (int i = 0; i < nin; i++) {
            blk[i] = (gr_tensor){ .dtype = GR_F32,
                                  .shape = S(2, 3, 2, 2),
                                  .data = x[i],
                                  .layout = &dummy_layout,
                                  .bytes = (size_t)m * sizeof(float) };
            flat[i] = (gr_tensor){ .dtype = GR_F32, .shape = S(m), .data = x[i] };
        }
        uint32_t need = bin ? 3 : 1;
        int st = run_flat_op(ops[o], nin, blk, dy, g1, need);
        CHECK(st == GRAFT_OK, "%s on a blocked layout: %s", ops[o], graft_last_error());
        if (st) continue;
        run_flat_op(ops[o], nin, flat, dy, g2, need);
        for (int i = 0; i < nin; i++) {
            char what[96];
            snprintf(what, sizeof what, "%s blocked vs flat, d input %d", ops[o], i);
            th_close(g1[i], g2[i], (long)m, 0, 0, what);
        }
    }
    /* a scalar that needs a gradient would sum the padding: the wrapper asks for plain inputs */
    float xs[128], s = 2;
    gc_fill(xs, 128, 9, -1, 1);
    gr_tensor in[2] = { { .dtype = GR_F32,
                          .shape = S(2, 3, 2, 2),
                          .data = xs,
                          .layout = &dummy_layout,
                          .bytes = sizeof xs },
                        { .dtype = GR_F32, .shape = S0, .data = &s } };
    float *g[2] = { keep(malloc(sizeof xs)), keep(malloc(4)) };
    CHECK(run_flat_op("Mul", 2, in, xs, g, 3) == GR_RETRY_PLAIN,
          "blocked Mul with a scalar needing a gradient");
    CHECK(run_flat_op("Mul", 2, in, xs, g, 1) == GRAFT_OK, "blocked Mul by a constant scalar: %s",
          graft_last_error());
    float want[128];
    for (int i = 0; i < 128; i++) want[i] = 2 * xs[i]; /* dout = xs, d x = dout * s */
    th_close(g[0], want, 128, 0, 0, "blocked Mul by a constant scalar: d x");
}

int main(void)
{
    test_binary();
    test_big_broadcast();
    test_variadic();
    test_where();
    test_unary();
    test_clip_cast();
    test_errors();
    test_flat_blocked();
    for (int i = 0; i < nbufs; i++) free(bufs[i]);
    return th_finish();
}
