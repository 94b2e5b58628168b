/* test_op_reduce.c — the Reduce* ops, ArgMax/ArgMin and Softmax/LogSoftmax/Hardmax through
 * their op table entries: every reduction on every axis subset of odd shapes against a
 * double-precision loop written here, axes as attribute (opset 13) and input (opset 18, and
 * ReduceSum from 13), keepdims, noop_with_empty_axes, empty reductions, exact int64 sums;
 * ties, select_last_index and NaN for ArgMax/ArgMin; softmax rows summing to 1, the opset-11
 * (2-D coercion) and opset-13 (one axis) semantics, oneDNN against the reference kernel; and
 * the errors bad attributes must give. */
#include "harness.h"
#include "oprun.h"

#include "ops/dnnl_util.h"

#include <string.h>

/* ---- nodes run through oprun.h ---- */

typedef or_node node; /* oprun.h */

/* Prepares op on x (and an int64 axes input when axes != NULL) with attrs; on success runs it. */
static int node_run(node *n, const char *op, int opset, const gr_attr *attrs, int nattr, int dtype,
                    const void *x, const gr_shape *xs, const int64_t *axes, int naxes, int use_ref)
{
    gr_tensor t[2] = { { .dtype = dtype, .shape = *xs, .data = (void *)x },
                       { .dtype = GR_I64, .shape = { 1, { naxes } }, .data = (void *)axes } };
    return or_run(n, &(or_spec){ .op = op,
                                 .opset = opset,
                                 .attrs = attrs,
                                 .nattr = nattr,
                                 .nin = axes ? 2 : 1,
                                 .ins = t,
                                 .use_ref = use_ref });
}

static void fill(float *x, int64_t n, unsigned seed, float lo, float hi)
{
    uint32_t s = seed * 2654435761u + 7;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * (float)((s >> 8) % 10001) / 10000.0f;
    }
}

/* ---- Reduce*: an independent double loop over every input element ---- */

static const char *const reduce_names[] = { "ReduceSum",      "ReduceMean",      "ReduceMax",
                                            "ReduceMin",      "ReduceProd",      "ReduceL1",
                                            "ReduceL2",       "ReduceSumSquare", "ReduceLogSum",
                                            "ReduceLogSumExp" };
enum { K_SUM, K_MEAN, K_MAX, K_MIN, K_PROD, K_L1, K_L2, K_SUMSQ, K_LOGSUM, K_LSE, K_COUNT };

/* y[o] for the reduction `kind` of x (shape xs) over the axes with red[a] set; returns the
 * number of outputs. Each input element adds to the output whose index drops the reduced axes. */
static int64_t reduce_naive(double *y, int kind, const float *x, const gr_shape *xs, const int *red)
{
    int64_t nout = 1, cnt = 1;
    for (int a = 0; a < xs->rank; a++) {
        if (red[a]) cnt *= xs->d[a];
        else nout *= xs->d[a];
    }
    double *acc = calloc((size_t)nout + 1, sizeof(double)),
           *mx = calloc((size_t)nout + 1, sizeof(double));
    for (int64_t o = 0; o < nout; o++) {
        acc[o] = kind == K_PROD ? 1 : kind == K_MAX ? -INFINITY : kind == K_MIN ? INFINITY : 0;
        mx[o] = -INFINITY;
    }
    for (int pass = 0; pass < 2; pass++) /* LogSumExp: the max first, then the sum */
        for (int64_t i = 0; i < gr_numel(xs); i++) {
            int64_t rem = i, o = 0, mul = 1;
            for (int a = xs->rank - 1; a >= 0; a--) {
                int64_t idx = rem % xs->d[a];
                rem /= xs->d[a];
                if (!red[a]) o += idx * mul, mul *= xs->d[a];
            }
            double v = x[i];
            if (kind == K_LSE && pass == 0) mx[o] = fmax(mx[o], v);
            if (kind == K_LSE && pass == 1) acc[o] += exp(v - mx[o]);
            if (kind == K_LSE || pass == 1) continue;
            switch (kind) {
            case K_SUM:
            case K_MEAN:
            case K_LOGSUM: acc[o] += v; break;
            case K_MAX: acc[o] = fmax(acc[o], v); break;
            case K_MIN: acc[o] = fmin(acc[o], v); break;
            case K_PROD: acc[o] *= v; break;
            case K_L1: acc[o] += fabs(v); break;
            case K_L2:
            case K_SUMSQ: acc[o] += v * v; break;
            }
        }
    for (int64_t o = 0; o < nout; o++)
        y[o] = kind == K_MEAN     ? acc[o] / (double)cnt
               : kind == K_L2     ? sqrt(acc[o])
               : kind == K_LOGSUM ? log(acc[o])
               : kind == K_LSE    ? mx[o] + log(acc[o])
                                  : acc[o];
    free(acc), free(mx);
    return nout;
}

static void check_reduce(int kind, int opset, const float *x, const gr_shape *xs, const int *red,
                         int keep)
{
    int64_t axes[8];
    int naxes = 0;
    for (int a = 0; a < xs->rank; a++)
        if (red[a]) axes[naxes++] = a - (a % 2 ? xs->rank : 0); /* mix negative axes in */
    double want[512];
    int64_t nout = reduce_naive(want, kind, x, xs, red);
    float wantf[512];
    for (int64_t o = 0; o < nout; o++) wantf[o] = (float)want[o];
    int axes_input = opset >= 18 || (kind == K_SUM && opset >= 13);
    gr_attr at[2] = { ival("keepdims", keep), ints("axes", naxes, axes) };
    node n;
    char what[160];
    snprintf(what, sizeof what, "%s-%d axes", reduce_names[kind], opset);
    for (int a = 0; a < xs->rank; a++)
        if (red[a]) snprintf(what + strlen(what), sizeof what - strlen(what), " %d", a);
    snprintf(what + strlen(what), sizeof what - strlen(what), " keepdims=%d", keep);
    /* no axes at all means every axis: pass none when all are reduced (half of the time) */
    int all = naxes == xs->rank, omit = all && (keep || opset >= 18);
    int st = node_run(&n, reduce_names[kind], opset, at, axes_input || omit ? 1 : 2, GR_F32, x, xs,
                      axes_input && !omit ? axes : NULL, naxes, 1);
    CHECK(st == GRAFT_OK, "%s: %s", what, graft_last_error());
    if (st) {
        or_free(&n);
        return;
    }
    gr_shape ys = { 0, { 0 } };
    for (int a = 0; a < xs->rank; a++)
        if (!red[a]) ys.d[ys.rank++] = xs->d[a];
        else if (keep) ys.d[ys.rank++] = 1;
    char s1[64];
    CHECK(gr_shape_eq(&n.out[0].shape, &ys), "%s: shape %s", what,
          gr_shape_str(&n.out[0].shape, s1, sizeof s1));
    th_close(n.out[0].data, wantf, nout, 1e-5, 1e-6, what);
    or_free(&n);
}

static void test_reduce_all_axes(void)
{
    /* (3, 4, 1, 5): size-1 axis and every subset of axes; values > 0 so LogSum is defined */
    gr_shape xs = { 4, { 3, 4, 1, 5 } };
    float x[60];
    fill(x, 60, 3, 0.2f, 1.6f);
    for (int kind = 0; kind < K_COUNT; kind++)
        for (int mask = 1; mask < 16; mask++)
            for (int keep = 0; keep <= 1; keep++) {
                int red[4] = { mask & 1, (mask >> 1) & 1, (mask >> 2) & 1, (mask >> 3) & 1 };
                check_reduce(kind, 13, x, &xs, red, keep);
                if (mask % 3 == 0) check_reduce(kind, 18, x, &xs, red, keep);
            }
    /* rank 5: every axis subset, so that up to three separate runs of reduced axes occur */
    gr_shape r5 = { 5, { 2, 3, 2, 3, 3 } };
    float x5[108];
    fill(x5, 108, 7, 0.5f, 1.5f);
    for (int kind = 0; kind < K_COUNT; kind++)
        for (int mask = 1; mask < 32; mask++) {
            int red[5];
            for (int a = 0; a < 5; a++) red[a] = (mask >> a) & 1;
            check_reduce(kind, 13, x5, &r5, red, mask % 2);
        }
    /* a larger odd shape on a few axis sets, with negative values */
    gr_shape big = { 3, { 7, 9, 5 } };
    float xb[315];
    fill(xb, 315, 5, -2.0f, 2.0f);
    static const int sets[][3] = {
        { 0, 0, 1 }, { 1, 0, 1 }, { 0, 1, 0 }, { 1, 1, 1 }, { 1, 0, 0 }
    };
    for (int kind = 0; kind < K_COUNT; kind++)
        if (kind != K_LOGSUM && kind != K_PROD)
            for (int s = 0; s < 5; s++) check_reduce(kind, 13, xb, &big, sets[s], s % 2);
}

static void test_reduce_special(void)
{
    node n;
    float x[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    gr_shape xs = { 3, { 3, 2, 2 } };
    /* noop_with_empty_axes = 1 and no axes: identity (ReduceSum-13, input axes) */
    gr_attr noop[2] = { ival("noop_with_empty_axes", 1), ival("keepdims", 1) };
    int64_t none[1] = { 0 };
    CHECK(node_run(&n, "ReduceSum", 13, noop, 2, GR_F32, x, &xs, none, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(gr_shape_eq(&n.out[0].shape, &xs), "noop keeps the shape");
    th_close(n.out[0].data, x, 12, 0, 0, "noop_with_empty_axes is an identity");
    or_free(&n);
    /* ... and with noop 0, empty axes reduce everything */
    CHECK(node_run(&n, "ReduceMean", 18, noop + 1, 1, GR_F32, x, &xs, none, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(shape_is(&n.out[0], 3, (int64_t[]){ 1, 1, 1 }), "empty axes, keepdims: (1, 1, 1)");
    th_close(n.out[0].data, (float[]){ 6.5f }, 1, 0, 0, "mean of 1..12");
    or_free(&n);
    /* keepdims 0 over everything: a scalar */
    gr_attr k0 = ival("keepdims", 0);
    CHECK(node_run(&n, "ReduceMax", 13, &k0, 1, GR_F32, x, &xs, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(n.out[0].shape.rank == 0 && ((float *)n.out[0].data)[0] == 12,
          "max of all, keepdims 0: a scalar 12");
    or_free(&n);
    /* empty reductions: identities of each operation */
    gr_shape es = { 2, { 2, 0 } };
    int64_t ax1[1] = { 1 };
    gr_attr ea[2] = { ints("axes", 1, ax1), k0 };
    const struct {
        const char *op;
        float want;
    } empties[] = {
        { "ReduceSum", 0 },           { "ReduceProd", 1 }, { "ReduceMax", -INFINITY },
        { "ReduceMin", INFINITY },    { "ReduceL2", 0 },   { "ReduceLogSumExp", -INFINITY },
        { "ReduceLogSum", -INFINITY }
    };
    for (int i = 0; i < 7; i++) {
        int st = node_run(&n, empties[i].op, 11, ea, 2, GR_F32, x, &es, NULL, 0, 1);
        CHECK(st == GRAFT_OK, "%s", graft_last_error());
        const float *y = st ? (const float[2]){ 0 } : n.out[0].data;
        CHECK(shape_is(&n.out[0], 1, (int64_t[]){ 2 }) && y[0] == empties[i].want &&
                  y[1] == empties[i].want,
              "%s over an empty axis: got %g, want %g", empties[i].op, y[0], empties[i].want);
        or_free(&n);
    }
    CHECK(node_run(&n, "ReduceMean", 13, ea, 2, GR_F32, x, &es, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(isnan(((float *)n.out[0].data)[0]), "mean over an empty axis is NaN");
    or_free(&n);
    /* int64 sums are exact beyond 2^53; int32 max/min; float64 */
    int64_t big[3] = { ((int64_t)1 << 60) + 1, 2, -((int64_t)1 << 60) };
    gr_shape s3 = { 1, { 3 } };
    CHECK(node_run(&n, "ReduceSum", 11, &k0, 1, GR_I64, big, &s3, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(((int64_t *)n.out[0].data)[0] == 3, "int64 sum: %lld",
          (long long)((int64_t *)n.out[0].data)[0]);
    or_free(&n);
    int32_t i32[3] = { -5, 7, 2 };
    CHECK(node_run(&n, "ReduceMin", 13, &k0, 1, GR_I32, i32, &s3, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(((int32_t *)n.out[0].data)[0] == -5 && n.out[0].dtype == GR_I32, "int32 min");
    or_free(&n);
    uint8_t u8[3] = { 200, 7, 255 };
    CHECK(node_run(&n, "ReduceMax", 13, &k0, 1, GR_U8, u8, &s3, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(((uint8_t *)n.out[0].data)[0] == 255, "uint8 max");
    or_free(&n);
    double d[3] = { 1e-300, 1e300, 3 };
    CHECK(node_run(&n, "ReduceProd", 13, &k0, 1, GR_F64, d, &s3, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(fabs(((double *)n.out[0].data)[0] - 3) < 1e-12, "float64 prod: %g",
          ((double *)n.out[0].data)[0]);
    or_free(&n);
    /* LogSumExp stays finite on large inputs */
    float large[3] = { 1000, 1000, 999 };
    CHECK(node_run(&n, "ReduceLogSumExp", 13, &k0, 1, GR_F32, large, &s3, NULL, 0, 1) == GRAFT_OK,
          "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ (float)(1000 + log(2 + exp(-1.0))) }, 1, 1e-6, 0,
             "logsumexp of large values");
    or_free(&n);
    /* NaN propagates through max */
    float nanx[3] = { 1, NAN, 3 };
    CHECK(node_run(&n, "ReduceMax", 13, &k0, 1, GR_F32, nanx, &s3, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(isnan(((float *)n.out[0].data)[0]), "max with a NaN is NaN");
    or_free(&n);
}

static void test_reduce_errors(void)
{
    node n;
    float x[12] = { 0 };
    gr_shape xs = { 3, { 3, 2, 2 } };
    int64_t dup[2] = { 1, -2 }, out_of_range[1] = { 3 }, ax[1] = { 1 };
    gr_attr a_dup = ints("axes", 2, dup), a_oor = ints("axes", 1, out_of_range),
            a_ok = ints("axes", 1, ax);
    CHECK(node_run(&n, "ReduceMean", 13, &a_dup, 1, GR_F32, x, &xs, NULL, 0, 1) == GRAFT_E_FORMAT,
          "duplicate axes");
    or_free(&n);
    CHECK(node_run(&n, "ReduceMean", 13, &a_oor, 1, GR_F32, x, &xs, NULL, 0, 1) == GRAFT_E_SHAPE,
          "axis 3 of rank 3");
    or_free(&n);
    CHECK(node_run(&n, "ReduceMean", 18, &a_ok, 1, GR_F32, x, &xs, NULL, 0, 1) ==
              GRAFT_E_UNSUPPORTED,
          "the axes attribute at opset 18");
    CHECK(strstr(graft_last_error(), "axes") != NULL, "message: %s", graft_last_error());
    or_free(&n);
    CHECK(node_run(&n, "ReduceSum", 13, &a_ok, 1, GR_F32, x, &xs, NULL, 0, 1) ==
              GRAFT_E_UNSUPPORTED,
          "the axes attribute on ReduceSum-13");
    or_free(&n);
    CHECK(node_run(&n, "ReduceMean", 13, NULL, 0, GR_F32, x, &xs, ax, 1, 1) == GRAFT_E_FORMAT,
          "an axes input on ReduceMean-13");
    or_free(&n);
    gr_attr noop = ival("noop_with_empty_axes", 1);
    CHECK(node_run(&n, "ReduceMax", 13, &noop, 1, GR_F32, x, &xs, NULL, 0, 1) ==
              GRAFT_E_UNSUPPORTED,
          "noop_with_empty_axes before opset 18");
    or_free(&n);
    gr_attr k2 = ival("keepdims", 2);
    CHECK(node_run(&n, "ReduceL1", 13, &k2, 1, GR_F32, x, &xs, NULL, 0, 1) == GRAFT_E_FORMAT,
          "keepdims 2");
    or_free(&n);
    CHECK(node_run(&n, "ReduceSum", 13, NULL, 0, GR_F32, x, &xs, NULL, 0, 1) == GRAFT_OK,
          "no axes input is fine");
    or_free(&n);
    uint8_t u[12] = { 0 };
    CHECK(node_run(&n, "ReduceSum", 13, NULL, 0, GR_U8, u, &xs, NULL, 0, 1) == GRAFT_E_UNSUPPORTED,
          "uint8 sum");
    or_free(&n);
    CHECK(node_run(&n, "ReduceMax", 11, NULL, 0, GR_U8, u, &xs, NULL, 0, 1) == GRAFT_E_UNSUPPORTED,
          "uint8 max before opset 12");
    or_free(&n);
}

/* ---- ArgMax / ArgMin ---- */

static void test_arg(void)
{
    node n;
    /* (2, 4) with ties: row 0 max 5 at 1 and 3, min 1 at 0 and 2 */
    float x[8] = { 1, 5, 1, 5, 3, -2, 7, 7 };
    gr_shape xs = { 2, { 2, 4 } };
    const struct {
        const char *op;
        int last;
        int64_t want[2];
    } cases[] = { { "ArgMax", 0, { 1, 2 } },
                  { "ArgMax", 1, { 3, 3 } },
                  { "ArgMin", 0, { 0, 1 } },
                  { "ArgMin", 1, { 2, 1 } } };
    for (int i = 0; i < 4; i++)
        for (int keep = 0; keep <= 1; keep++) {
            gr_attr at[3] = { ival("axis", -1), ival("keepdims", keep),
                              ival("select_last_index", cases[i].last) };
            CHECK(node_run(&n, cases[i].op, 13, at, 3, GR_F32, x, &xs, NULL, 0, 0) == GRAFT_OK,
                  "%s", graft_last_error());
            const int64_t *y = n.out[0].data;
            CHECK(n.out[0].dtype == GR_I64 && (keep ? shape_is(&n.out[0], 2, (int64_t[]){ 2, 1 })
                                                    : shape_is(&n.out[0], 1, (int64_t[]){ 2 })),
                  "%s keepdims %d shape", cases[i].op, keep);
            CHECK(y[0] == cases[i].want[0] && y[1] == cases[i].want[1],
                  "%s last=%d: got %lld %lld, want %lld %lld", cases[i].op, cases[i].last,
                  (long long)y[0], (long long)y[1], (long long)cases[i].want[0],
                  (long long)cases[i].want[1]);
            or_free(&n);
        }
    /* default axis 0 on a (3, 2, 2) int64 tensor against a loop */
    int64_t xi[12] = { 4, -1, 9, 0, 4, 8, -3, 0, 2, 8, 9, 1 };
    gr_shape s3 = { 3, { 3, 2, 2 } };
    for (int max = 0; max <= 1; max++) {
        CHECK(node_run(&n, max ? "ArgMax" : "ArgMin", 11, NULL, 0, GR_I64, xi, &s3, NULL, 0, 0) ==
                  GRAFT_OK,
              "%s", graft_last_error());
        CHECK(shape_is(&n.out[0], 3, (int64_t[]){ 1, 2, 2 }), "default axis 0, keepdims 1");
        const int64_t *y = n.out[0].data;
        for (int j = 0; j < 4; j++) {
            int best = 0;
            for (int k = 1; k < 3; k++)
                if (max ? xi[k * 4 + j] > xi[best * 4 + j] : xi[k * 4 + j] < xi[best * 4 + j])
                    best = k;
            CHECK(y[j] == best, "%s axis 0 column %d: got %lld, want %d", max ? "ArgMax" : "ArgMin",
                  j, (long long)y[j], best);
        }
        or_free(&n);
    }
    /* NaN wins (numpy) */
    float xn[4] = { 1, NAN, 3, NAN };
    gr_shape s4 = { 1, { 4 } };
    gr_attr k0 = ival("keepdims", 0);
    CHECK(node_run(&n, "ArgMax", 13, &k0, 1, GR_F32, xn, &s4, NULL, 0, 0) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(n.out[0].shape.rank == 0 && ((int64_t *)n.out[0].data)[0] == 1,
          "argmax with NaN is the first NaN");
    or_free(&n);
    gr_attr sl = ival("select_last_index", 1);
    CHECK(node_run(&n, "ArgMax", 11, &sl, 1, GR_F32, x, &xs, NULL, 0, 0) == GRAFT_E_UNSUPPORTED,
          "select_last_index before opset 12");
    or_free(&n);
    gr_attr ax = ival("axis", 2);
    CHECK(node_run(&n, "ArgMin", 13, &ax, 1, GR_F32, x, &xs, NULL, 0, 0) == GRAFT_E_SHAPE,
          "axis 2 of rank 2");
    or_free(&n);
}

/* ---- Softmax / LogSoftmax / Hardmax ---- */

/* y: softmax of x over rows of N elements spaced `inner` apart, (outer, N, inner), in double. */
static void softmax_naive(double *y, const float *x, int64_t outer, int64_t N, int64_t inner,
                          int kind)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *r = x + o * N * inner + i;
            double mx = -INFINITY, sum = 0;
            int64_t arg = 0;
            for (int64_t j = 0; j < N; j++)
                if (r[j * inner] > mx) mx = r[j * inner], arg = j;
            for (int64_t j = 0; j < N; j++) sum += exp(r[j * inner] - mx);
            for (int64_t j = 0; j < N; j++) {
                double v = kind == 0   ? exp(r[j * inner] - mx) / sum
                           : kind == 1 ? r[j * inner] - mx - log(sum)
                                       : j == arg;
                y[o * N * inner + j * inner + i] = v;
            }
        }
}

static void test_softmax(void)
{
    static const char *const ops[] = { "Softmax", "LogSoftmax", "Hardmax" };
    gr_shape xs = { 3, { 3, 5, 7 } };
    float x[105];
    fill(x, 105, 9, -4, 4);
    x[7] = x[14]; /* a tie for Hardmax along axis 1 */
    double want[105];
    float wantf[105];
    for (int kind = 0; kind < 3; kind++)
        for (int opset = 11; opset <= 13; opset += 2)
            for (int axis = -3; axis < 3; axis++) {
                int a = axis < 0 ? axis + 3 : axis;
                int64_t outer = 1, N = 1, inner = 1;
                for (int i = 0; i < 3; i++) {
                    if (i < a) outer *= xs.d[i];
                    else if (i == a || opset < 13) N *= xs.d[i]; /* opset 11: the 2-D view */
                    else inner *= xs.d[i];
                }
                softmax_naive(want, x, outer, N, inner, kind);
                for (int i = 0; i < 105; i++) wantf[i] = (float)want[i];
                for (int ref = 0; ref <= 1; ref++) {
                    node n;
                    char what[96];
                    snprintf(what, sizeof what, "%s-%d axis %d (%s)", ops[kind], opset, axis,
                             ref ? "ref" : "oneDNN");
                    gr_attr at = ival("axis", axis);
                    CHECK(node_run(&n, ops[kind], opset, &at, 1, GR_F32, x, &xs, NULL, 0, ref) ==
                              GRAFT_OK,
                          "%s: %s", what, graft_last_error());
                    CHECK(gr_shape_eq(&n.out[0].shape, &xs), "%s: shape", what);
                    /* oneDNN's vectorised exp/log: log-softmax off by ~4e-6 absolute */
                    th_close(n.out[0].data, wantf, 105, 1e-5, ref ? 1e-6 : 2e-5, what);
                    CHECK(used_dnnl(&n) == (!ref && kind != 2), "%s: wrong kernel", what);
                    if (kind == 0) { /* rows sum to 1 */
                        const float *y = n.out[0].data;
                        double worst = 0;
                        for (int64_t o = 0; o < outer * inner; o++) {
                            double s = 0;
                            for (int64_t j = 0; j < N; j++)
                                s += y[(o / inner) * N * inner + j * inner + o % inner];
                            worst = fmax(worst, fabs(s - 1));
                        }
                        CHECK(worst < 1e-5, "%s: a row sums to 1 +- %g", what, worst);
                    }
                    or_free(&n);
                }
            }
    /* the two semantics differ: axis 1 of (3, 5, 7) normalises 35 values (opset 11) or 5 */
    node a, b;
    gr_attr at = ival("axis", 1);
    CHECK(node_run(&a, "Softmax", 11, &at, 1, GR_F32, x, &xs, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(node_run(&b, "Softmax", 13, &at, 1, GR_F32, x, &xs, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(fabs(((float *)a.out[0].data)[0] - ((float *)b.out[0].data)[0]) > 1e-3,
          "opset 11 and 13 must differ");
    or_free(&a), or_free(&b);
    /* defaults: axis 1 before opset 13, -1 after; on (2, 3, 4) they differ */
    gr_shape s234 = { 3, { 2, 3, 4 } };
    CHECK(node_run(&a, "LogSoftmax", 11, NULL, 0, GR_F32, x, &s234, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    softmax_naive(want, x, 2, 12, 1, 1);
    for (int i = 0; i < 24; i++) wantf[i] = (float)want[i];
    th_close(a.out[0].data, wantf, 24, 1e-5, 1e-6, "LogSoftmax-11 default axis 1");
    or_free(&a);
    CHECK(node_run(&a, "LogSoftmax", 13, NULL, 0, GR_F32, x, &s234, NULL, 0, 1) == GRAFT_OK, "%s",
          graft_last_error());
    softmax_naive(want, x, 6, 4, 1, 1);
    for (int i = 0; i < 24; i++) wantf[i] = (float)want[i];
    th_close(a.out[0].data, wantf, 24, 1e-5, 1e-6, "LogSoftmax-13 default axis -1");
    or_free(&a);
    /* large values stay finite; float64 */
    float big[4] = { 10000, 10001, 10002, 10003 };
    gr_shape s4 = { 2, { 1, 4 } };
    for (int ref = 0; ref <= 1; ref++) {
        CHECK(node_run(&a, "Softmax", 13, NULL, 0, GR_F32, big, &s4, NULL, 0, ref) == GRAFT_OK,
              "%s", graft_last_error());
        th_close(a.out[0].data, (float[]){ 0.0320586f, 0.08714432f, 0.23688282f, 0.64391426f }, 4,
                 1e-5, 0, "softmax of large values");
        or_free(&a);
    }
    double xd[3] = { 0, 1, 2 };
    gr_shape s3 = { 1, { 3 } };
    CHECK(node_run(&a, "LogSoftmax", 13, NULL, 0, GR_F64, xd, &s3, NULL, 0, 0) == GRAFT_OK, "%s",
          graft_last_error());
    double l = log(1 + exp(1.0) + exp(2.0));
    CHECK(fabs(((double *)a.out[0].data)[2] - (2 - l)) < 1e-14 && a.out[0].dtype == GR_F64,
          "float64 logsoftmax");
    or_free(&a);
    int32_t xi[3] = { 0 };
    CHECK(node_run(&a, "Softmax", 13, NULL, 0, GR_I32, xi, &s3, NULL, 0, 0) == GRAFT_E_UNSUPPORTED,
          "int32 softmax");
    or_free(&a);
    gr_attr bad = ival("axis", 1);
    CHECK(node_run(&a, "Hardmax", 13, &bad, 1, GR_F32, big, &s3, NULL, 0, 0) == GRAFT_E_SHAPE,
          "axis 1 of rank 1");
    or_free(&a);
}

int main(void)
{
    test_reduce_all_axes();
    test_reduce_special();
    test_reduce_errors();
    test_arg();
    test_softmax();
    return th_finish();
}
