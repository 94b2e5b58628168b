/* test_op_norm.c — BatchNormalization, LayerNormalization, InstanceNormalization, LRN and
 * LpNormalization, run through their op table entries: closed forms (normalised rows have mean 0
 * and variance var/(var+eps); batch statistics; running statistics), the oneDNN kernels against
 * the reference kernel on odd shapes (C=3, H=7, W=5; ranks 2 to 6; with and without B and the
 * optional outputs), which cases run oneDNN, and the errors bad nodes must give. */
#include "harness.h"
#include "oprun.h"

#include "io/io.h"
#include "ops/dnnl_util.h"

#include <string.h>

/* ---- nodes run through oprun.h ---- */

typedef or_node node; /* oprun.h */

typedef struct tin {
    int dtype;
    gr_shape s;
    const void *data;
} tin;

/* Prepares op (opset) on the inputs (NULL data: absent) with attrs; on success runs it. */
static int node_run(node *n, const char *op, int opset, const gr_attr *attrs, int nattr,
                    const tin *in, int nin, int nout, int use_ref)
{
    gr_tensor t[OR_MAX_IN];
    for (int i = 0; i < nin; i++)
        t[i] = (gr_tensor){ .dtype = in[i].data ? in[i].dtype : 0,
                            .shape = in[i].s,
                            .data = (void *)in[i].data };
    return or_run(n, &(or_spec){ .op = op,
                                 .opset = opset,
                                 .attrs = attrs,
                                 .nattr = nattr,
                                 .nin = nin,
                                 .ins = t,
                                 .nout = nout,
                                 .use_ref = use_ref });
}

static float *rnd(int64_t n, unsigned seed, float lo, float hi)
{
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    uint32_t s = seed * 2654435761u + 11;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * (float)(s >> 8) / 16777216.0f;
    }
    return x;
}

static tin tf(const float *d, int rank, const int64_t *dims)
{
    tin t = { GR_F32, { rank, { 0 } }, d };
    for (int i = 0; i < rank; i++) t.s.d[i] = dims[i];
    return t;
}

/* ---- BatchNormalization ---- */

static void test_batchnorm(void)
{
    /* (N, C, ...) shapes of rank 2 to 6, C = 3 */
    static const int64_t shapes[][7] = { { 2, 2, 3 },
                                         { 3, 2, 3, 7 },
                                         { 4, 2, 3, 7, 5 },
                                         { 5, 1, 3, 2, 3, 2 },
                                         { 6, 2, 3, 2, 1, 3, 2 } };
    float eps = 1e-2f;
    gr_attr attrs[1] = { fval("epsilon", eps) };
    float scale[3] = { 0.5f, -2, 1.25f }, bias[3] = { 0.1f, 0, -3 }, mean[3] = { 1, -0.5f, 0.25f },
          var[3] = { 0.5f, 2, 0.01f };
    int64_t c3[1] = { 3 };
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        int rank = (int)shapes[k][0];
        gr_shape xs = { rank, { 0 } };
        for (int i = 0; i < rank; i++) xs.d[i] = shapes[k][1 + i];
        int64_t count = gr_numel(&xs), S = count / (xs.d[0] * 3);
        float *x = rnd(count, (unsigned)k, -3, 3), *want = malloc((size_t)count * sizeof *want);
        for (int64_t i = 0; i < count; i++) {
            int ch = (int)(i / S % 3);
            want[i] =
                (float)((x[i] - mean[ch]) / sqrt((double)var[ch] + eps) * scale[ch] + bias[ch]);
        }
        tin in[5] = { tf(x, rank, xs.d), tf(scale, 1, c3), tf(bias, 1, c3), tf(mean, 1, c3),
                      tf(var, 1, c3) };
        for (int ref = 0; ref <= 1; ref++) {
            node n;
            char what[64];
            snprintf(what, sizeof what, "batchnorm rank %d (%s)", rank,
                     ref ? "reference" : "oneDNN");
            CHECK(node_run(&n, "BatchNormalization", 15, attrs, 1, in, 5, 1, ref) == GRAFT_OK, "%s",
                  graft_last_error());
            th_close(n.out[0].data, want, count, 1e-5, 1e-5, what);
            CHECK(used_dnnl(&n) == !ref, "%s: oneDNN used %d", what, used_dnnl(&n));
            or_free(&n);
        }
        /* opset 9 has no training_mode: the same values */
        node n;
        CHECK(node_run(&n, "BatchNormalization", 9, attrs, 1, in, 5, 1, 0) == GRAFT_OK, "%s",
              graft_last_error());
        th_close(n.out[0].data, want, count, 1e-5, 1e-5, "batchnorm opset 9");
        or_free(&n);
        free(x);
        free(want);
    }

    /* Training mode (reference kernel): per channel, Y has mean B and variance
     * scale^2 * v / (v + eps) with v the batch's population variance; running stats mix. */
    int64_t xd[4] = { 2, 3, 7, 5 };
    float *x = rnd(2 * 3 * 35, 5, -1, 4);
    for (int i = 35; i < 70; i++) x[i] = x[i] * 3 + 1; /* channel 1 of sample 0 differs */
    tin in[5] = { tf(x, 4, xd), tf(scale, 1, c3), tf(bias, 1, c3), tf(mean, 1, c3),
                  tf(var, 1, c3) };
    gr_attr ta[3] = { fval("epsilon", eps), ival("training_mode", 1), fval("momentum", 0.75f) };
    for (int ref = 0; ref <= 1; ref++) {
        node n;
        CHECK(node_run(&n, "BatchNormalization", 15, ta, 3, in, 5, 3, ref) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(!used_dnnl(&n), "training mode runs the reference kernel");
        const float *y = n.out[0].data, *rm = n.out[1].data, *rv = n.out[2].data;
        for (int ch = 0; ch < 3; ch++) {
            double sx = 0, sxx = 0, sy = 0, syy = 0;
            for (int b = 0; b < 2; b++)
                for (int i = 0; i < 35; i++) {
                    double v = x[(b * 3 + ch) * 35 + i], w = y[(b * 3 + ch) * 35 + i];
                    sx += v, sxx += v * v, sy += w, syy += w * w;
                }
            double m = sx / 70, v = sxx / 70 - m * m, my = sy / 70, vy = syy / 70 - my * my;
            CHECK(fabs(my - bias[ch]) < 1e-4, "training channel %d: mean of Y %g, want %g", ch, my,
                  bias[ch]);
            double want_vy = scale[ch] * scale[ch] * v / (v + eps);
            CHECK(fabs(vy - want_vy) < 1e-4 * (1 + want_vy),
                  "training channel %d: var of Y %g, want %g", ch, vy, want_vy);
            CHECK(fabs(rm[ch] - (mean[ch] * 0.75 + m * 0.25)) < 1e-5, "running_mean[%d] %g", ch,
                  rm[ch]);
            CHECK(fabs(rv[ch] - (var[ch] * 0.75 + v * 0.25)) < 1e-4, "running_var[%d] %g, want %g",
                  ch, rv[ch], var[ch] * 0.75 + v * 0.25);
        }
        or_free(&n);
    }

    /* errors */
    node n;
    CHECK(node_run(&n, "BatchNormalization", 15, attrs, 1, in, 5, 3, 0) == GRAFT_E_FORMAT &&
              strstr(graft_last_error(), "training_mode"),
          "extra outputs without training_mode: %s", graft_last_error());
    CHECK(node_run(&n, "BatchNormalization", 9, attrs, 1, in, 5, 5, 0) == GRAFT_E_UNSUPPORTED,
          "opset 9 training outputs: %s", graft_last_error());
    gr_attr bad[1] = { ival("training_mode", 2) };
    CHECK(node_run(&n, "BatchNormalization", 15, bad, 1, in, 5, 1, 0) != GRAFT_OK &&
              strstr(graft_last_error(), "training_mode"),
          "training_mode 2: %s", graft_last_error());
    int64_t c2[1] = { 2 };
    tin in2[5] = { in[0], tf(scale, 1, c2), in[2], in[3], in[4] };
    CHECK(node_run(&n, "BatchNormalization", 15, attrs, 1, in2, 5, 1, 0) == GRAFT_E_SHAPE,
          "scale of 2: %s", graft_last_error());
    gr_attr sp[1] = { ival("spatial", 0) };
    CHECK(node_run(&n, "BatchNormalization", 9, sp, 1, in, 5, 1, 0) == GRAFT_E_UNSUPPORTED &&
              strstr(graft_last_error(), "spatial"),
          "spatial 0: %s", graft_last_error());
    free(x);
}

/* ---- LayerNormalization ---- */

/* Runs LayerNormalization of x (2, 3, 7, 5) at axis, checks the closed form with Scale 1 and B 0
 * (every row: mean 0, variance var/(var+eps), Mean and InvStdDev outputs), then oneDNN against
 * the reference kernel with random Scale and B (absent when with_b is 0). */
static void layernorm_case(int axis, int with_b, int nout)
{
    int64_t xd[4] = { 2, 3, 7, 5 };
    int a = axis < 0 ? axis + 4 : axis;
    int64_t rows = 1, cols = 1;
    for (int k = 0; k < 4; k++) *(k < a ? &rows : &cols) *= xd[k];
    float *x = rnd(rows * cols, (unsigned)(a + 3 * with_b), -2, 5),
          *one = malloc((size_t)cols * sizeof *one);
    float *zero = calloc((size_t)cols, sizeof *zero), *w = rnd(cols, 9, -2, 2),
          *b = rnd(cols, 10, -1, 1);
    for (int64_t j = 0; j < cols; j++) one[j] = 1, x[j] += 100; /* a large offset in row 0 */
    float eps = 1e-3f;
    gr_attr at[2] = { ival("axis", axis), fval("epsilon", eps) };
    char what[96];
    for (int ref = 0; ref <= 1; ref++) {
        tin in[3] = { tf(x, 4, xd), tf(one, 4 - a, xd + a), tf(zero, 4 - a, xd + a) };
        node n;
        snprintf(what, sizeof what, "layernorm axis %d (%s)", axis, ref ? "reference" : "oneDNN");
        CHECK(node_run(&n, "LayerNormalization", 17, at, 2, in, 3, 3, ref) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(used_dnnl(&n) == !ref, "%s: oneDNN used %d", what, used_dnnl(&n));
        const float *y = n.out[0].data, *mean = n.out[1].data, *inv = n.out[2].data;
        CHECK(n.out[1].shape.rank == 4 && gr_numel(&n.out[1].shape) == rows &&
                  n.out[1].shape.d[3] == 1,
              "%s: Mean has %lld values", what, (long long)gr_numel(&n.out[1].shape));
        for (int64_t r = 0; r < rows; r++) {
            double sx = 0, sy = 0, syy = 0;
            for (int64_t j = 0; j < cols; j++) {
                double u = y[r * cols + j];
                sx += x[r * cols + j], sy += u, syy += u * u;
            }
            double m = sx / (double)cols, v = 0;
            for (int64_t j = 0; j < cols; j++) v += (x[r * cols + j] - m) * (x[r * cols + j] - m);
            v /= (double)cols;
            double my = sy / (double)cols, vy = syy / (double)cols - my * my;
            CHECK(fabs(my) < 1e-5, "%s row %lld: mean %g", what, (long long)r, my);
            CHECK(fabs(vy - v / (v + eps)) < 1e-4, "%s row %lld: var %g, want %g", what,
                  (long long)r, vy, v / (v + eps));
            CHECK(fabs(mean[r] - m) < 1e-5 * (1 + fabs(m)), "%s row %lld: Mean %g, want %g", what,
                  (long long)r, mean[r], m);
            CHECK(fabs(inv[r] - 1 / sqrt(v + eps)) < 1e-4 / sqrt(v + eps),
                  "%s row %lld: InvStdDev %g, want %g", what, (long long)r, inv[r],
                  1 / sqrt(v + eps));
        }
        or_free(&n);
    }
    /* oneDNN against the reference kernel, random Scale and B */
    tin in[3] = { tf(x, 4, xd), tf(w, 4 - a, xd + a), tf(with_b ? b : NULL, 4 - a, xd + a) };
    node r, o;
    snprintf(what, sizeof what, "layernorm axis %d B %d outputs %d: oneDNN vs reference", axis,
             with_b, nout);
    CHECK(node_run(&r, "LayerNormalization", 17, at, 2, in, 3, nout, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(node_run(&o, "LayerNormalization", 17, at, 2, in, 3, nout, 0) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(used_dnnl(&o), "%s: oneDNN not used", what);
    for (int i = 0; i < nout; i++)
        th_close(o.out[i].data, r.out[i].data, gr_numel(&r.out[i].shape), 1e-4, 1e-5, what);
    or_free(&r);
    or_free(&o);
    free(x), free(one), free(zero), free(w), free(b);
}

static void test_layernorm(void)
{
    layernorm_case(-1, 1, 3);
    layernorm_case(3, 0, 1);
    layernorm_case(2, 1, 2);
    layernorm_case(1, 1, 1);
    layernorm_case(0, 0, 3);
    layernorm_case(-3, 1, 3);

    /* Scale (5) broadcast over X[2:] = (7, 5) runs the reference kernel; it must equal the
     * result with Scale expanded to (7, 5). */
    int64_t xd[4] = { 2, 3, 7, 5 }, wd[2] = { 7, 5 };
    float *x = rnd(210, 21, -1, 1), *w5 = rnd(5, 22, -2, 2), *w35 = malloc(35 * sizeof *w35);
    for (int i = 0; i < 35; i++) w35[i] = w5[i % 5];
    gr_attr at[1] = { ival("axis", 2) };
    tin small[2] = { tf(x, 4, xd), tf(w5, 1, xd + 3) }, full[2] = { tf(x, 4, xd), tf(w35, 2, wd) };
    node a, b;
    CHECK(node_run(&a, "LayerNormalization", 17, at, 1, small, 2, 1, 0) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(node_run(&b, "LayerNormalization", 17, at, 1, full, 2, 1, 0) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(!used_dnnl(&a), "broadcast Scale must run the reference kernel");
    th_close(a.out[0].data, b.out[0].data, 210, 1e-5, 1e-6, "layernorm broadcast Scale");
    or_free(&a);
    or_free(&b);

    /* errors */
    node n;
    tin bad[2] = { tf(x, 4, xd), tf(w5, 1, xd + 2) }; /* Scale (7) does not fit (7, 5) */
    CHECK(node_run(&n, "LayerNormalization", 17, at, 1, bad, 2, 1, 0) == GRAFT_E_SHAPE,
          "bad Scale: %s", graft_last_error());
    gr_attr st[1] = { ival("stash_type", 11) };
    CHECK(node_run(&n, "LayerNormalization", 17, st, 1, full, 2, 1, 0) == GRAFT_E_UNSUPPORTED &&
              strstr(graft_last_error(), "stash_type"),
          "stash_type: %s", graft_last_error());
    gr_attr ax[1] = { ival("axis", 4) };
    CHECK(node_run(&n, "LayerNormalization", 17, ax, 1, full, 2, 1, 0) == GRAFT_E_SHAPE,
          "axis 4: %s", graft_last_error());
    free(x), free(w5), free(w35);
}

/* ---- InstanceNormalization, LRN, LpNormalization ---- */

static void test_others(void)
{
    int64_t xd[4] = { 2, 3, 7, 5 }, c3[1] = { 3 };
    float *x = rnd(210, 31, -2, 3), scale[3] = { 1, -0.5f, 2 }, bias[3] = { 0.5f, 1, -1 };
    float eps = 1e-2f;
    gr_attr ie[1] = { fval("epsilon", eps) };
    tin in[3] = { tf(x, 4, xd), tf(scale, 1, c3), tf(bias, 1, c3) };
    node n;
    CHECK(node_run(&n, "InstanceNormalization", 6, ie, 1, in, 3, 1, 0) == GRAFT_OK, "%s",
          graft_last_error());
    const float *y = n.out[0].data;
    for (int p = 0; p < 6; p++) {
        double sx = 0, sxx = 0, sy = 0, syy = 0;
        for (int i = 0; i < 35; i++) {
            double v = x[p * 35 + i], u = y[p * 35 + i];
            sx += v, sxx += v * v, sy += u, syy += u * u;
        }
        double v = sxx / 35 - (sx / 35) * (sx / 35), my = sy / 35, vy = syy / 35 - my * my;
        double want_v = scale[p % 3] * scale[p % 3] * v / (v + eps);
        CHECK(fabs(my - bias[p % 3]) < 1e-5 && fabs(vy - want_v) < 1e-4 * (1 + want_v),
              "instancenorm plane %d: mean %g var %g, want %g %g", p, my, vy, bias[p % 3], want_v);
    }
    or_free(&n);

    /* LRN, size 4 (window c-1 .. c+2), against the formula written out. */
    gr_attr la[4] = { ival("size", 4), fval("alpha", 0.1f), fval("beta", 0.6f),
                      fval("bias", 1.5f) };
    CHECK(node_run(&n, "LRN", 13, la, 4, in, 1, 1, 0) == GRAFT_OK, "%s", graft_last_error());
    float *want = malloc(210 * sizeof *want);
    for (int b = 0; b < 2; b++)
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 35; i++) {
                double sq = 0;
                for (int k = ch - 1; k <= ch + 2; k++)
                    if (k >= 0 && k < 3)
                        sq += (double)x[(b * 3 + k) * 35 + i] * x[(b * 3 + k) * 35 + i];
                want[(b * 3 + ch) * 35 + i] =
                    (float)(x[(b * 3 + ch) * 35 + i] / pow(1.5 + 0.1 / 4 * sq, 0.6));
            }
    th_close(n.out[0].data, want, 210, 1e-5, 1e-6, "LRN");
    or_free(&n);
    gr_attr l0[1] = { ival("size", 0) };
    CHECK(node_run(&n, "LRN", 13, l0, 1, in, 1, 1, 0) != GRAFT_OK &&
              strstr(graft_last_error(), "size"),
          "LRN size 0");

    /* LpNormalization along axis 1 (C = 3): every (n, h, w) column gets unit norm. */
    for (int p = 1; p <= 2; p++) {
        gr_attr pa[2] = { ival("axis", 1), ival("p", p) };
        CHECK(node_run(&n, "LpNormalization", 1, pa, 2, in, 1, 1, 0) == GRAFT_OK, "%s",
              graft_last_error());
        const float *z = n.out[0].data;
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 35; i++) {
                double norm = 0, ratio = 0;
                for (int ch = 0; ch < 3; ch++) {
                    double u = z[(b * 3 + ch) * 35 + i];
                    norm += p == 1 ? fabs(u) : u * u;
                }
                ratio =
                    z[b * 105 + i] / x[b * 105 + i]; /* y = x / ||x||: a positive common factor */
                CHECK(fabs(norm - 1) < 1e-5 && ratio > 0, "LpNormalization p=%d at %d,%d: norm %g",
                      p, b, i, norm);
            }
        or_free(&n);
    }
    gr_attr p3[1] = { ival("p", 3) };
    CHECK(node_run(&n, "LpNormalization", 1, p3, 1, in, 1, 1, 0) == GRAFT_E_UNSUPPORTED, "p=3: %s",
          graft_last_error());
    free(x);
    free(want);
}

/* ---- conformance cases the ONNX runner skips (their models declare opset 6) ---- */

static void suite_case(const char *name, float eps)
{
    char path[512];
    gr_arena *a = gr_arena_new(1 << 16);
    gr_tensor t[4];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path,
                 "/usr/share/libonnx-testdata/data/node/%s/test_data_set_0/%s_%d.pb", name,
                 i < 3 ? "input" : "output", i < 3 ? i : 0);
        if (gr_onnx_read_tensor(path, a, &t[i], NULL)) {
            printf("SKIP %s: %s\n", name, graft_last_error());
            gr_arena_free(a);
            return;
        }
    }
    tin in[3];
    for (int i = 0; i < 3; i++) in[i] = (tin){ t[i].dtype, t[i].shape, t[i].data };
    gr_attr at[1] = { fval("epsilon", eps) };
    node n;
    CHECK(node_run(&n, "InstanceNormalization", 6, at, 1, in, 3, 1, 0) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(gr_shape_eq(&n.out[0].shape, &t[3].shape), "%s: output shape", name);
    th_close(n.out[0].data, t[3].data, gr_numel(&t[3].shape), 1e-3, 1e-7, name);
    or_free(&n);
    gr_arena_free(a);
}

int main(void)
{
    test_batchnorm();
    test_layernorm();
    test_others();
    suite_case("test_instancenorm_example", 1e-5f);
    suite_case("test_instancenorm_epsilon", 1e-2f);
    return th_finish();
}
