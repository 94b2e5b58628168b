/* test_grad_reduce.c — backward of Softmax, LogSoftmax (opset 11's 2-D coercion and opset 13's
 * one axis, every axis), ReduceSum (axes as attribute at opset 11 and as input at 13, keepdims,
 * noop_with_empty_axes), ReduceMean, ReduceMax and ReduceMin, against central finite
 * differences of the ops' own forward (tests/gradcheck.h), oneDNN against the reference kernel
 * on a larger softmax, and the documented tie rule of ReduceMax/Min (dY split equally among the
 * tied extrema) against its closed form. */
#include "gradcheck.h"

static gr_tensor ften(const gr_shape *s, float *data)
{
    return (gr_tensor){ .dtype = GR_F32, .shape = *s, .data = data };
}

/* Distinct values 0.07 apart, shuffled: no ties within the finite-difference step. */
static void distinct(float *x, int64_t n, uint64_t seed)
{
    gr_rng r;
    gr_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(0.07 * (double)i - 0.035 * (double)n);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)gr_rng_below(&r, (uint64_t)i + 1);
        float t = x[i];
        x[i] = x[j], x[j] = t;
    }
}

static void softmax_cases(void)
{
    const gr_shape shapes[] = { { 3, { 2, 3, 5 } }, { 1, { 7 } }, { 4, { 2, 1, 3, 4 } } };
    static float x[64];
    for (int si = 0; si < 3; si++) {
        const gr_shape *xs = &shapes[si];
        gc_fill(x, gr_numel(xs), 11 + (uint64_t)si, -2.f, 2.f);
        gr_tensor in = ften(xs, x);
        for (int op = 0; op < 2; op++)
            for (int opset = 11; opset <= 13; opset += 2)
                for (int axis = -xs->rank; axis < xs->rank; axis++)
                    for (int ref = 0; ref <= 1; ref++) {
                        gr_attr a[1] = { ival("axis", axis) };
                        const char *name = op ? "LogSoftmax" : "Softmax";
                        gc_case k = { .op = name,
                                      .opset = opset,
                                      .attrs = a,
                                      .nattr = 1,
                                      .nin = 1,
                                      .ins = &in,
                                      .nout = 1,
                                      .need = 1,
                                      .use_ref = ref };
                        char w[128];
                        snprintf(w, sizeof w, "%s-%d rank %d axis %d", name, opset, xs->rank, axis);
                        gc_check(&k, w);
                    }
    }
    /* oneDNN vs reference on a larger case */
    static float big[16 * 33 * 7];
    gr_shape bs = { 3, { 16, 33, 7 } };
    gc_fill(big, gr_numel(&bs), 5, -4.f, 4.f);
    gr_tensor in = ften(&bs, big);
    for (int op = 0; op < 2; op++)
        for (int axis = 0; axis < 3; axis++) {
            gr_attr a[1] = { ival("axis", axis) };
            gc_case k = { .op = op ? "LogSoftmax" : "Softmax",
                          .opset = 13,
                          .attrs = a,
                          .nattr = 1,
                          .nin = 1,
                          .ins = &in,
                          .nout = 1,
                          .need = 1 };
            /* float32 rounding of sum(dY) over 33 terms: a few 1e-6 absolute */
            gc_compare_kernels(&k, 1e-4, 2e-5, op ? "LogSoftmax big" : "Softmax big");
        }
}

static void reduce_attr_cases(void)
{
    static const char *ops[] = { "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin" };
    gr_shape xs = { 3, { 3, 4, 5 } };
    static float x[60];
    distinct(x, 60, 3);
    gr_tensor in = ften(&xs, x);
    /* every subset of the 3 axes (mask 0: no attribute = all axes), keepdims 0 and 1 */
    for (int o = 0; o < 4; o++)
        for (int mask = 0; mask < 8; mask++)
            for (int keep = 0; keep <= 1; keep++) {
                int64_t axes[3];
                int n = 0;
                for (int i = 0; i < 3; i++)
                    if (mask >> i & 1)
                        axes[n++] = (mask == 5 && i == 0) ? -3 : i; /* a negative axis too */
                gr_attr a[2] = { ival("keepdims", keep), ints("axes", n, axes) };
                gc_case k = { .op = ops[o],
                              .opset = 11,
                              .attrs = a,
                              .nattr = n ? 2 : 1,
                              .nin = 1,
                              .ins = &in,
                              .nout = 1,
                              .need = 1,
                              .use_ref = 1 };
                char w[128];
                snprintf(w, sizeof w, "%s axes mask %d keepdims %d", ops[o], mask, keep);
                gc_check(&k, w);
            }
}

static void reduce_input_cases(void)
{
    gr_shape xs = { 4, { 2, 3, 1, 4 } };
    static float x[24];
    distinct(x, 24, 9);
    static const int64_t axes_sets[][2] = { { 1, 3 }, { -1, 0 }, { 2, 0 } };
    for (int i = 0; i < 3; i++) {
        gr_tensor in[2] = {
            ften(&xs, x), { .dtype = GR_I64, .shape = { 1, { 2 } }, .data = (void *)axes_sets[i] }
        };
        gr_attr a[1] = { ival("keepdims", i & 1) };
        gc_case k = { .op = "ReduceSum",
                      .opset = 13,
                      .attrs = a,
                      .nattr = 1,
                      .nin = 2,
                      .ins = in,
                      .nout = 1,
                      .need = 1,
                      .use_ref = 1 };
        char w[96];
        snprintf(w, sizeof w, "ReduceSum-13 axes input #%d", i);
        gc_check(&k, w);
        k.op = "ReduceMax", k.opset = 18;
        snprintf(w, sizeof w, "ReduceMax-18 axes input #%d", i);
        gc_check(&k, w);
    }
    /* empty axes: all axes, or with noop_with_empty_axes an identity */
    static const int64_t none[1] = { 0 };
    gr_tensor in[2] = { ften(&xs, x),
                        { .dtype = GR_I64, .shape = { 1, { 0 } }, .data = (void *)none } };
    for (int noop = 0; noop <= 1; noop++) {
        gr_attr a[1] = { ival("noop_with_empty_axes", noop) };
        gc_case k = { .op = "ReduceSum",
                      .opset = 13,
                      .attrs = a,
                      .nattr = 1,
                      .nin = 2,
                      .ins = in,
                      .nout = 1,
                      .need = 1,
                      .use_ref = 1 };
        gc_check(&k, noop ? "ReduceSum empty axes, noop" : "ReduceSum empty axes, all");
        gc_case k1 = k;
        k1.nin = 1;
        gc_check(&k1, noop ? "ReduceSum no axes input, noop" : "ReduceSum no axes input, all");
    }
}

/* Ties: with dY = 1 each tied extremum gets 1 / (number of ties), the others 0. */
static void tie_cases(void)
{
    static float x[12] = { 1,  3, 3,  0, /* row 0: max 3 twice, min 0 once */
                           2,  2, 2,  2, /* row 1: all tied */
                           -1, 5, -1, 4 };
    gr_shape xs = { 2, { 3, 4 } };
    for (int mx = 0; mx <= 1; mx++) {
        static const int64_t ax[1] = { 1 };
        gr_attr a[2] = { ival("keepdims", 0), ints("axes", 1, ax) };
        gc_case k = { .op = mx ? "ReduceMax" : "ReduceMin",
                      .opset = 13,
                      .attrs = a,
                      .nattr = 2,
                      .nin = 1,
                      .nout = 1,
                      .need = 1,
                      .use_ref = 1 };
        gr_tensor in = ften(&xs, x);
        gc_node n;
        int st = gc_prepare(&n, &k, &in);
        CHECK(st == GRAFT_OK, "tie case prepare: %s", graft_last_error());
        if (st) continue;
        float dyv[3] = { 1, 1, 1 }, dxv[12];
        gr_tensor dyt = n.out[0], dxt = n.in[0], *dout[1] = { &dyt }, *din[1] = { &dxt };
        dyt.data = dyv, dxt.data = dxv;
        n.op->forward(&n.c);
        n.op->backward(&n.c, dout, din);
        float expect[12];
        for (int r = 0; r < 3; r++) {
            float e = x[r * 4];
            for (int j = 1; j < 4; j++) e = mx ? fmaxf(e, x[r * 4 + j]) : fminf(e, x[r * 4 + j]);
            int ties = 0;
            for (int j = 0; j < 4; j++) ties += x[r * 4 + j] == e;
            for (int j = 0; j < 4; j++)
                expect[r * 4 + j] = x[r * 4 + j] == e ? 1.f / (float)ties : 0.f;
        }
        th_close(dxv, expect, 12, 0, 1e-7,
                 mx ? "ReduceMax ties split equally" : "ReduceMin ties split equally");
        gc_free(&n);
    }
}

int main(void)
{
    softmax_cases();
    reduce_attr_cases();
    reduce_input_cases();
    tie_cases();
    return th_finish();
}
