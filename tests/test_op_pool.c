/* test_op_pool.c — MaxPool, AveragePool, LpPool and the global pools, run through their op
 * table entries: hand-worked and PyTorch-computed values (ceil_mode, dropped windows,
 * count_include_pad, dilations, Indices in both storage orders), the oneDNN kernels against the
 * reference kernel on odd shapes (C=3, H=7, W=5, strides, pads, ceil_mode, dilations; 1-D to 3-D),
 * which cases run oneDNN, and the errors bad attributes must give. */
#include "harness.h"
#include "oprun.h"

#include "io/io.h"
#include "ops/dnnl_util.h"

#include <string.h>

/* ---- nodes run through oprun.h ---- */

typedef or_node node; /* oprun.h */

/* Prepares op (opset 17) on x with attrs; on success runs it. */
static int node_run(node *n, const char *op, const gr_attr *attrs, int nattr, int dtype,
                    const void *x, const gr_shape *xs, int nout, int use_ref)
{
    gr_tensor t = { .dtype = dtype, .shape = *xs, .data = (void *)x };
    return or_run(n, &(or_spec){ .op = op,
                                 .opset = 17,
                                 .attrs = attrs,
                                 .nattr = nattr,
                                 .nin = 1,
                                 .ins = &t,
                                 .nout = nout,
                                 .use_ref = use_ref });
}

static void fill(float *x, int64_t n, unsigned seed)
{
    uint32_t s = seed * 2654435761u + 7;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) % 2001) / 250.0f -
               4.0f; /* [-4, 4], ties are likely: max picks the first */
    }
}

/* ---- values worked by hand or computed with PyTorch 1.13 ---- */

static void test_known_values(void)
{
    node n;
    /* MaxPool 2x2 stride 2 on 1..16 (4x4), with Indices. */
    float x16[16];
    for (int i = 0; i < 16; i++) x16[i] = (float)(i + 1);
    gr_shape s44 = { 4, { 1, 1, 4, 4 } };
    int64_t k2[2] = { 2, 2 }, s2[2] = { 2, 2 };
    for (int order = 0; order <= 1; order++) {
        gr_attr a[3] = { ints("kernel_shape", 2, k2), ints("strides", 2, s2),
                         ival("storage_order", order) };
        CHECK(node_run(&n, "MaxPool", a, 3, GR_F32, x16, &s44, 2, 0) == GRAFT_OK, "%s",
              graft_last_error());
        th_close(n.out[0].data, (float[]){ 6, 8, 14, 16 }, 4, 0, 0, "maxpool 2x2 values");
        const int64_t *ind = n.out[1].data;
        /* row-major: 5, 7, 13, 15; column-major (index = h + w*H): 1+4, 1+12, 3+4, 3+12 */
        int64_t want[2][4] = { { 5, 7, 13, 15 }, { 5, 13, 7, 15 } };
        for (int i = 0; i < 4; i++)
            CHECK(ind[i] == want[order][i], "storage_order %d index %d: got %lld, want %lld", order,
                  i, (long long)ind[i], (long long)want[order][i]);
        CHECK(!used_dnnl(&n), "the Indices output must run the reference kernel");
        or_free(&n);
    }
    /* Dilation 2: each output is the max of x[i][j], x[i][j+2], x[i+2][j], x[i+2][j+2]. */
    int64_t d2[2] = { 2, 2 }, s1[2] = { 1, 1 };
    gr_attr ad[3] = { ints("kernel_shape", 2, k2), ints("dilations", 2, d2),
                      ints("strides", 2, s1) };
    float xd[16] = { 9, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 6 };
    for (int ref = 0; ref <= 1; ref++) {
        CHECK(node_run(&n, "MaxPool", ad, 3, GR_F32, xd, &s44, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        th_close(n.out[0].data, (float[]){ 9, 3, 6, 7 }, 4, 0, 0,
                 ref ? "dilated maxpool (ref)" : "dilated maxpool (oneDNN)");
        or_free(&n);
    }

    /* 1-D, kernel 3, stride 2, pads 1/1, ceil_mode on 1..6: PyTorch gives
     * max [2 4 6 6], avg include pad [1 3 5 3] (last window: (6 + pad) / 2), exclude [1.5 3 5 6]. */
    float x6[6] = { 1, 2, 3, 4, 5, 6 };
    gr_shape s6 = { 3, { 1, 1, 6 } };
    int64_t k3[1] = { 3 }, st2[1] = { 2 }, p11[2] = { 1, 1 };
    for (int ref = 0; ref <= 1; ref++) {
        const char *what = ref ? "reference" : "oneDNN";
        gr_attr a[5] = { ints("kernel_shape", 1, k3), ints("strides", 1, st2), ints("pads", 2, p11),
                         ival("ceil_mode", 1), ival("count_include_pad", 1) };
        CHECK(node_run(&n, "MaxPool", a, 4, GR_F32, x6, &s6, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(shape_is(&n.out[0], 3, (int64_t[]){ 1, 1, 4 }), "ceil output length %lld",
              (long long)n.out[0].shape.d[2]);
        th_close(n.out[0].data, (float[]){ 2, 4, 6, 6 }, 4, 0, 0, what);
        CHECK(used_dnnl(&n) == !ref, "maxpool ceil_mode runs oneDNN: %d", used_dnnl(&n));
        or_free(&n);
        CHECK(node_run(&n, "AveragePool", a, 5, GR_F32, x6, &s6, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        th_close(n.out[0].data, (float[]){ 1, 3, 5, 3 }, 4, 1e-6, 0, what);
        CHECK(!used_dnnl(&n),
              "count_include_pad with the ceil extension must run the reference kernel");
        or_free(&n);
        CHECK(node_run(&n, "AveragePool", a, 4, GR_F32, x6, &s6, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        th_close(n.out[0].data, (float[]){ 1.5f, 3, 5, 6 }, 4, 1e-6, 0, what);
        CHECK(used_dnnl(&n) == !ref, "avgpool exclude-pad ceil_mode runs oneDNN");
        or_free(&n);
    }
    /* A ceil_mode window that would start in the end padding is dropped: length 3, kernel 2,
     * stride 2, pads 1/1 gives 2 outputs (PyTorch: max [1 5], avg include pad [0.5 4]). */
    float x3[3] = { 1, 5, 3 };
    gr_shape s3 = { 3, { 1, 1, 3 } };
    int64_t k21[1] = { 2 };
    for (int ref = 0; ref <= 1; ref++) {
        gr_attr a[5] = { ints("kernel_shape", 1, k21), ints("strides", 1, st2),
                         ints("pads", 2, p11), ival("ceil_mode", 1), ival("count_include_pad", 1) };
        CHECK(node_run(&n, "MaxPool", a, 4, GR_F32, x3, &s3, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(shape_is(&n.out[0], 3, (int64_t[]){ 1, 1, 2 }), "dropped window: length %lld",
              (long long)n.out[0].shape.d[2]);
        th_close(n.out[0].data, (float[]){ 1, 5 }, 2, 0, 0, "dropped window max");
        or_free(&n);
        CHECK(node_run(&n, "AveragePool", a, 5, GR_F32, x3, &s3, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        th_close(n.out[0].data, (float[]){ 0.5f, 4 }, 2, 1e-6, 0, "dropped window avg");
        or_free(&n);
    }

    /* auto_pad SAME_UPPER / SAME_LOWER, kernel 2 on length 3: total pad 1, at the end / the start. */
    gr_attr su[2] = { ints("kernel_shape", 1, k21), sval("auto_pad", "SAME_UPPER") };
    CHECK(node_run(&n, "AveragePool", su, 2, GR_F32, x3, &s3, 1, 1) == GRAFT_OK, "%s",
          graft_last_error());
    th_close(n.out[0].data, (float[]){ 3, 4, 3 }, 3, 1e-6, 0, "SAME_UPPER");
    or_free(&n);
    su[1] = sval("auto_pad", "SAME_LOWER");
    CHECK(node_run(&n, "AveragePool", su, 2, GR_F32, x3, &s3, 1, 1) == GRAFT_OK, "%s",
          graft_last_error());
    th_close(n.out[0].data, (float[]){ 1, 3, 4 }, 3, 1e-6, 0, "SAME_LOWER");
    or_free(&n);

    /* LpPool p=2 (reference kernel only), kernel 2: sqrt(1+25), sqrt(25+9). */
    gr_attr lp[1] = { ints("kernel_shape", 1, k21) };
    CHECK(node_run(&n, "LpPool", lp, 1, GR_F32, x3, &s3, 1, 0) == GRAFT_OK, "%s",
          graft_last_error());
    th_close(n.out[0].data, (float[]){ sqrtf(26), sqrtf(34) }, 2, 1e-6, 0, "LpPool p=2");
    CHECK(!used_dnnl(&n), "LpPool runs the reference kernel");
    or_free(&n);

    /* MaxPool on uint8 and int8 (reference kernel), with padding. */
    uint8_t u[4] = { 200, 3, 7, 255 };
    gr_shape s4 = { 3, { 1, 1, 4 } };
    gr_attr a8[2] = { ints("kernel_shape", 1, k21), ints("pads", 2, p11) };
    CHECK(node_run(&n, "MaxPool", a8, 2, GR_U8, u, &s4, 1, 0) == GRAFT_OK, "%s",
          graft_last_error());
    const uint8_t *yu = n.out[0].data;
    CHECK(n.out[0].shape.d[2] == 5 && yu[0] == 200 && yu[1] == 200 && yu[2] == 7 && yu[3] == 255 &&
              yu[4] == 255,
          "uint8 maxpool: %d %d %d %d %d", yu[0], yu[1], yu[2], yu[3], yu[4]);
    or_free(&n);

    /* Global pools over (2, 3, 2, 2) keep the rank: (2, 3, 1, 1). */
    float xg[24];
    for (int i = 0; i < 24; i++) xg[i] = (float)((i * 7) % 24) - 10;
    gr_shape sg = { 4, { 2, 3, 2, 2 } };
    float want_avg[6], want_max[6], want_lp[6];
    for (int p = 0; p < 6; p++) {
        float s = 0, m = -INFINITY, q = 0;
        for (int i = 0; i < 4; i++) {
            s += xg[p * 4 + i], q += xg[p * 4 + i] * xg[p * 4 + i];
            if (xg[p * 4 + i] > m) m = xg[p * 4 + i];
        }
        want_avg[p] = s / 4, want_max[p] = m, want_lp[p] = sqrtf(q);
    }
    const char *gops[3] = { "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool" };
    const float *gwant[3] = { want_avg, want_max, want_lp };
    for (int k = 0; k < 3; k++) {
        CHECK(node_run(&n, gops[k], NULL, 0, GR_F32, xg, &sg, 1, 0) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(shape_is(&n.out[0], 4, (int64_t[]){ 2, 3, 1, 1 }), "%s shape", gops[k]);
        th_close(n.out[0].data, gwant[k], 6, 1e-6, 1e-6, gops[k]);
        or_free(&n);
    }
}

/* ---- oneDNN against the reference kernel ---- */

typedef struct pcase {
    const char *op;
    int nsp;
    int64_t k[3], s[3], d[3], pads[6];
    int ceil, include_pad;
    const char *auto_pad;
    int want_dnnl; /* 1: oneDNN must run this case */
} pcase;

static void run_pair(const pcase *p)
{
    int64_t dims[5] = { 2, 3, 7, 5, 6 }; /* N=2, C=3, then spatial 7, 5, 6 (1-D uses 7; 2-D 7x5) */
    gr_shape xs = { 2 + p->nsp, { 2, 3 } };
    for (int i = 0; i < p->nsp; i++) xs.d[2 + i] = dims[2 + i];
    int64_t count = gr_numel(&xs);
    float *x = malloc((size_t)count * sizeof *x);
    fill(x, count, (unsigned)(p->nsp * 31 + p->k[0] + p->ceil * 7));
    gr_attr a[8];
    int na = 0;
    a[na++] = ints("kernel_shape", p->nsp, p->k);
    a[na++] = ints("strides", p->nsp, p->s);
    a[na++] = ints("dilations", p->nsp, p->d);
    if (p->auto_pad) a[na++] = sval("auto_pad", p->auto_pad);
    else a[na++] = ints("pads", 2 * p->nsp, p->pads);
    a[na++] = ival("ceil_mode", p->ceil);
    if (strcmp(p->op, "AveragePool") == 0) a[na++] = ival("count_include_pad", p->include_pad);
    node r, o;
    char what[200];
    snprintf(what, sizeof what, "%s %dD k%lld s%lld d%lld pads %lld/%lld ceil %d incl %d %s", p->op,
             p->nsp, (long long)p->k[0], (long long)p->s[0], (long long)p->d[0],
             (long long)p->pads[0], (long long)p->pads[p->nsp], p->ceil, p->include_pad,
             p->auto_pad ? p->auto_pad : "");
    int st1 = node_run(&r, p->op, a, na, GR_F32, x, &xs, 1, 1);
    int st2 = node_run(&o, p->op, a, na, GR_F32, x, &xs, 1, 0);
    CHECK(st1 == GRAFT_OK && st2 == GRAFT_OK, "%s: %s", what, graft_last_error());
    if (!st1 && !st2) {
        CHECK(gr_shape_eq(&r.out[0].shape, &o.out[0].shape), "%s: shapes differ", what);
        CHECK(used_dnnl(&o) == p->want_dnnl, "%s: oneDNN used %d, expected %d", what, used_dnnl(&o),
              p->want_dnnl);
        CHECK(!used_dnnl(&r), "%s: use_ref must run the reference kernel", what);
        th_close(o.out[0].data, r.out[0].data, gr_numel(&r.out[0].shape), 1e-5, 1e-6, what);
    }
    if (!st1) or_free(&r);
    if (!st2) or_free(&o);
    free(x);
}

static void test_dnnl_vs_ref(void)
{
    static const pcase cases[] = {
        { "MaxPool", 2, { 3, 3 }, { 2, 2 }, { 1, 1 }, { 1, 0, 1, 2 }, 0, 0, NULL, 1 },
        { "MaxPool", 2, { 3, 2 }, { 2, 2 }, { 1, 1 }, { 1, 0, 1, 2 }, 1, 0, NULL, 1 },
        { "MaxPool", 2, { 2, 3 }, { 2, 1 }, { 2, 1 }, { 0, 1, 1, 1 }, 1, 0, NULL, 1 },
        { "MaxPool", 2, { 3, 3 }, { 2, 2 }, { 1, 1 }, { 0 }, 0, 0, "SAME_UPPER", 1 },
        { "MaxPool", 2, { 2, 2 }, { 2, 2 }, { 1, 2 }, { 0 }, 0, 0, "SAME_LOWER", 1 },
        { "MaxPool", 2, { 3, 3 }, { 2, 2 }, { 1, 1 }, { 0 }, 0, 0, "VALID", 1 },
        { "MaxPool", 1, { 3 }, { 2 }, { 2 }, { 1, 1 }, 1, 0, NULL, 1 },
        { "MaxPool",
          3,
          { 2, 3, 2 },
          { 2, 2, 3 },
          { 1, 1, 2 },
          { 1, 0, 1, 0, 1, 1 },
          1,
          0,
          NULL,
          1 },
        { "AveragePool", 2, { 3, 3 }, { 2, 2 }, { 1, 1 }, { 1, 0, 1, 2 }, 0, 0, NULL, 1 },
        { "AveragePool", 2, { 3, 3 }, { 2, 2 }, { 1, 1 }, { 1, 0, 1, 2 }, 0, 1, NULL, 1 },
        { "AveragePool", 2, { 3, 2 }, { 2, 2 }, { 1, 1 }, { 1, 0, 1, 1 }, 1, 0, NULL, 1 },
        { "AveragePool",
          2,
          { 3, 2 },
          { 2, 2 },
          { 1, 1 },
          { 1, 0, 1, 0 },
          1,
          1,
          NULL,
          0 }, /* ceil past the pads */
        { "AveragePool",
          2,
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 1, 1, 1, 1 },
          1,
          1,
          NULL,
          1 }, /* 7+2-3 even: no extension */
        { "AveragePool",
          2,
          { 2, 2 },
          { 2, 2 },
          { 2, 1 },
          { 1, 0, 0, 1 },
          0,
          1,
          NULL,
          1 }, /* dilated (AveragePool-19) */
        { "AveragePool", 2, { 3, 3 }, { 2, 2 }, { 1, 1 }, { 0 }, 0, 0, "SAME_UPPER", 1 },
        { "AveragePool", 2, { 3, 3 }, { 2, 2 }, { 1, 1 }, { 0 }, 0, 1, "SAME_LOWER", 1 },
        { "AveragePool", 1, { 4 }, { 3 }, { 1 }, { 2, 1 }, 1, 0, NULL, 1 },
        { "AveragePool",
          3,
          { 3, 2, 2 },
          { 2, 2, 2 },
          { 1, 1, 1 },
          { 1, 1, 0, 1, 0, 1 },
          0,
          1,
          NULL,
          1 },
        { "AveragePool",
          3,
          { 2, 2, 2 },
          { 2, 2, 2 },
          { 1, 1, 1 },
          { 0, 0, 0, 0, 0, 0 },
          1,
          0,
          NULL,
          1 },
        { "LpPool", 2, { 3, 2 }, { 2, 2 }, { 1, 1 }, { 1, 0, 1, 1 }, 0, 0, NULL, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_pair(&cases[i]);
}

/* ---- conformance cases the ONNX runner skips (their models declare opset 1) ---- */

static void suite_case(const char *name, const char *op)
{
    char path[512];
    gr_arena *a = gr_arena_new(1 << 16);
    gr_tensor x, want;
    snprintf(path, sizeof path,
             "/usr/share/libonnx-testdata/data/node/%s/test_data_set_0/input_0.pb", name);
    if (gr_onnx_read_tensor(path, a, &x, NULL)) {
        printf("SKIP %s: %s\n", name, graft_last_error());
        gr_arena_free(a);
        return;
    }
    snprintf(path, sizeof path,
             "/usr/share/libonnx-testdata/data/node/%s/test_data_set_0/output_0.pb", name);
    CHECK(gr_onnx_read_tensor(path, a, &want, NULL) == GRAFT_OK, "%s", graft_last_error());
    for (int ref = 0; ref <= 1; ref++) {
        node n;
        CHECK(node_run(&n, op, NULL, 0, x.dtype, x.data, &x.shape, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(gr_shape_eq(&n.out[0].shape, &want.shape), "%s: output shape", name);
        th_close(n.out[0].data, want.data, gr_numel(&want.shape), 1e-3, 1e-7, name);
        or_free(&n);
    }
    gr_arena_free(a);
}

static void test_suite_cases(void)
{
    suite_case("test_globalaveragepool", "GlobalAveragePool");
    suite_case("test_globalaveragepool_precomputed", "GlobalAveragePool");
    suite_case("test_globalmaxpool", "GlobalMaxPool");
    suite_case("test_globalmaxpool_precomputed", "GlobalMaxPool");
}

/* ---- errors ---- */

static void expect_error(const char *op, const gr_attr *a, int na, int dtype, const gr_shape *xs,
                         const char *needle)
{
    static float x[4096];
    node n;
    int st = node_run(&n, op, a, na, dtype, x, xs, 1, 0);
    CHECK(st != GRAFT_OK && strstr(graft_last_error(), needle),
          "%s: expected an error with '%s', got %d: %s", op, needle, st,
          st ? graft_last_error() : "");
    or_free(&n); /* a failed run is freed already: nothing to do */
}

static void test_errors(void)
{
    gr_shape xs = { 4, { 1, 3, 7, 5 } };
    int64_t k2[2] = { 2, 2 }, k3[3] = { 2, 2, 2 }, p1[2] = { 1, 1 };
    expect_error("MaxPool", NULL, 0, GR_F32, &xs, "kernel_shape");
    gr_attr a1[2] = { ints("kernel_shape", 2, k2), sval("auto_pad", "SAME") };
    expect_error("MaxPool", a1, 2, GR_F32, &xs, "auto_pad");
    gr_attr a2[2] = { ints("kernel_shape", 2, k2), ival("frobnicate", 1) };
    expect_error("AveragePool", a2, 2, GR_F32, &xs, "frobnicate");
    gr_attr a3[1] = { ints("kernel_shape", 3, k3) };
    expect_error("MaxPool", a3, 1, GR_F32, &xs, "kernel_shape");
    gr_attr a4[2] = { ints("kernel_shape", 2, k2), ints("pads", 2, p1) };
    expect_error("MaxPool", a4, 2, GR_F32, &xs, "pads");
    gr_attr a5[1] = { ints("kernel_shape", 2, k2) };
    expect_error("AveragePool", a5, 1, GR_I64, &xs, "int64");
    gr_attr a6[2] = { ints("kernel_shape", 2, k2), ival("count_include_pad", 2) };
    expect_error("AveragePool", a6, 2, GR_F32, &xs, "count_include_pad");
    int64_t big[2] = { 9, 2 };
    gr_attr a7[1] = { ints("kernel_shape", 2, big) };
    expect_error("MaxPool", a7, 1, GR_F32, &xs, "larger than the padded input");
    gr_shape x2 = { 2, { 1, 3 } };
    expect_error("MaxPool", a5, 1, GR_F32, &x2, "rank");
}

int main(void)
{
    test_known_values();
    test_dnnl_vs_ref();
    test_suite_cases();
    test_errors();
    return th_finish();
}
