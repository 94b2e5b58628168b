/* test_grad_pool.c — backward of MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool.
 * Oracles: central finite differences of the op's own forward with both kernel sets on small odd
 * shapes (C=3, H=7, W=5; overlapping windows, strides, asymmetric pads, dilations, ceil_mode,
 * count_include_pad 0 and 1, 1-D and 3-D); MaxPool inputs are distinct values spaced wider than
 * the finite-difference step, so no window's maximum changes place. Then the reference backward
 * against oneDNN's on bigger maps (N=2, C=32, 28x28), and oneDNN on inputs in nChw16c (as a
 * convolution leaves them; dout and din in that layout too) against the plain path. */
#include "gradcheck.h"

#include <stdlib.h>
#include <string.h>

/* The case tables below leave trailing fields (ceil_mode, count_include_pad, ...) at zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

typedef struct spec {
    const char *what;
    const char *op; /* MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool */
    int nsp;
    int64_t N, C;
    int64_t in[3], k[3], s[3], d[3], pads[6];
    int ceil, cip; /* ceil_mode, count_include_pad */
    int indices;   /* MaxPool's second output */
} spec;

typedef struct built {
    gr_attr a[8];
    int na;
    int64_t kk[3], ss[3], dd[3], pp[6];
    gr_tensor x;
    gc_case k;
} built;

/* Distinct values spaced 2/n apart in [-1, 1), in a random order: no ties, and a perturbation
 * below half the spacing keeps every window's maximum where it is. */
static void fill_distinct(float *x, int64_t n, uint64_t seed)
{
    gr_rng r;
    gr_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = -1.f + 2.f * (float)i / (float)n;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(gr_rng_uniform(&r) * (double)(i + 1));
        if (j > i) j = i;
        float t = x[i];
        x[i] = x[j], x[j] = t;
    }
}

static void build(built *b, const spec *p, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    int n = p->nsp, global = !strncmp(p->op, "Global", 6);
    for (int i = 0; i < n; i++) {
        b->kk[i] = p->k[i];
        b->ss[i] = p->s[i] ? p->s[i] : 1;
        b->dd[i] = p->d[i] ? p->d[i] : 1;
        b->pp[i] = p->pads[i], b->pp[n + i] = p->pads[n + i];
    }
    if (!global) {
        b->a[b->na++] = ints("kernel_shape", n, b->kk);
        b->a[b->na++] = ints("strides", n, b->ss);
        b->a[b->na++] = ints("dilations", n, b->dd);
        b->a[b->na++] = ints("pads", 2 * n, b->pp);
        b->a[b->na++] = ival("ceil_mode", p->ceil);
        if (!strcmp(p->op, "AveragePool")) b->a[b->na++] = ival("count_include_pad", p->cip);
    }
    gr_shape xs = { 2 + n, { p->N, p->C } };
    for (int i = 0; i < n; i++) xs.d[2 + i] = p->in[i];
    int64_t m = gr_numel(&xs);
    float *d = malloc((size_t)m * sizeof(float) + 4);
    fill_distinct(d, m, seed);
    b->x = (gr_tensor){ .dtype = GR_F32, .shape = xs, .data = d };
    b->k = (gc_case){ .op = p->op,
                      .opset = 19,
                      .attrs = b->a,
                      .nattr = b->na,
                      .nin = 1,
                      .ins = &b->x,
                      .nout = p->indices ? 2 : 1,
                      .need = 1,
                      .out_mask = 1 };
    if (strstr(p->op, "Max")) b->k.h = 0.25 / (double)m; /* below half the spacing of the values */
    b->k.rtol = 1e-3,
    b->k.atol = 1e-4; /* pooling is piecewise linear: the differences are exact but for rounding */
}

/* The state of every pool starts with its forward primitive (NULL: the reference kernel). */
static int uses_dnnl(const gc_node *n) { return *(dnnl_primitive_t *)n->c.params != NULL; }

static void fd_case(const spec *p, int want_dnnl)
{
    built b;
    build(&b, p, 17);
    for (int ref = 0; ref <= 1; ref++) {
        b.k.use_ref = ref;
        gc_check(&b.k, p->what);
    }
    gc_node n;
    b.k.use_ref = 0;
    if (gc_prepare(&n, &b.k, &b.x) == GRAFT_OK)
        CHECK(uses_dnnl(&n) == want_dnnl, "%s: expected the %s kernel", p->what,
              want_dnnl ? "oneDNN" : "reference");
    gc_free(&n);
    free(b.x.data);
}

static void test_finite_differences(void)
{
    static const struct {
        spec p;
        int dnnl;
    } cases[] = {
        { { "max 3x3 stride 2 pads 1 (overlapping)",
            "MaxPool",
            2,
            2,
            3,
            { 7, 5 },
            { 3, 3 },
            { 2, 2 },
            { 0 },
            { 1, 1, 1, 1 } },
          1 },
        { { "max 2x2 stride 1 asymmetric pads",
            "MaxPool",
            2,
            2,
            3,
            { 7, 5 },
            { 2, 3 },
            { 1, 1 },
            { 0 },
            { 1, 0, 0, 2 } },
          1 },
        { { "max dilation 2",
            "MaxPool",
            2,
            1,
            3,
            { 7, 5 },
            { 2, 2 },
            { 1, 2 },
            { 2, 2 },
            { 0, 1, 1, 0 } },
          1 },
        { { "max ceil_mode", "MaxPool", 2, 2, 3, { 7, 5 }, { 3, 2 }, { 2, 2 }, { 0 }, { 0 }, 1 },
          1 },
        { { "max with Indices",
            "MaxPool",
            2,
            1,
            3,
            { 7, 5 },
            { 3, 3 },
            { 2, 1 },
            { 0 },
            { 1, 1, 1, 1 },
            0,
            0,
            1 },
          0 },
        { { "max 1-D", "MaxPool", 1, 2, 3, { 11 }, { 3 }, { 2 }, { 0 }, { 1, 1 } }, 1 },
        { { "max 3-D",
            "MaxPool",
            3,
            1,
            3,
            { 4, 5, 3 },
            { 2, 3, 2 },
            { 2, 1, 1 },
            { 0 },
            { 0, 1, 1, 1, 0, 0 } },
          1 },
        { { "avg exclude pad",
            "AveragePool",
            2,
            2,
            3,
            { 7, 5 },
            { 3, 3 },
            { 2, 2 },
            { 0 },
            { 1, 0, 1, 2 },
            0,
            0 },
          1 },
        { { "avg include pad",
            "AveragePool",
            2,
            2,
            3,
            { 7, 5 },
            { 3, 3 },
            { 2, 2 },
            { 0 },
            { 1, 0, 1, 2 },
            0,
            1 },
          1 },
        { { "avg ceil_mode exclude pad",
            "AveragePool",
            2,
            2,
            3,
            { 7, 5 },
            { 3, 2 },
            { 2, 2 },
            { 0 },
            { 1, 1, 0, 0 },
            1,
            0 },
          1 },
        { { "avg ceil_mode include pad",
            "AveragePool",
            2,
            2,
            3,
            { 7, 5 },
            { 3, 2 },
            { 2, 2 },
            { 0 },
            { 1, 1, 0, 0 },
            1,
            1 },
          0 },
        { { "avg overlapping 3x3 stride 1",
            "AveragePool",
            2,
            1,
            3,
            { 7, 5 },
            { 3, 3 },
            { 1, 1 },
            { 0 },
            { 1, 1, 1, 1 },
            0,
            1 },
          1 },
        { { "avg dilation 2",
            "AveragePool",
            2,
            1,
            3,
            { 7, 5 },
            { 2, 2 },
            { 1, 1 },
            { 2, 1 },
            { 0 },
            0,
            0 },
          1 },
        { { "avg 1-D include pad",
            "AveragePool",
            1,
            2,
            3,
            { 11 },
            { 4 },
            { 3 },
            { 0 },
            { 2, 1 },
            0,
            1 },
          1 },
        { { "avg 3-D",
            "AveragePool",
            3,
            1,
            3,
            { 4, 5, 3 },
            { 2, 2, 2 },
            { 2, 2, 1 },
            { 0 },
            { 1, 0, 0, 0, 1, 1 },
            0,
            0 },
          1 },
        { { "global avg", "GlobalAveragePool", 2, 2, 3, { 7, 5 } }, 0 },
        { { "global max", "GlobalMaxPool", 2, 2, 3, { 7, 5 } }, 0 },
        { { "global avg 1-D", "GlobalAveragePool", 1, 2, 3, { 9 } }, 0 },
        { { "global max 3-D", "GlobalMaxPool", 3, 1, 3, { 3, 4, 5 } }, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) fd_case(&cases[i].p, cases[i].dnnl);
}

static void test_kernels_agree(void)
{
    static const spec cases[] = {
        { "big max 3x3 stride 2 pads 1",
          "MaxPool",
          2,
          2,
          32,
          { 28, 28 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 } },
        { "big max 2x2 stride 2", "MaxPool", 2, 2, 32, { 28, 28 }, { 2, 2 }, { 2, 2 } },
        { "big max ceil_mode odd",
          "MaxPool",
          2,
          2,
          32,
          { 27, 29 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 0 },
          1 },
        { "big avg 3x3 stride 1 include pad",
          "AveragePool",
          2,
          2,
          32,
          { 28, 28 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          0,
          1 },
        { "big avg 3x3 stride 2 exclude pad",
          "AveragePool",
          2,
          2,
          32,
          { 28, 28 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 },
          0,
          0 },
        { "big avg ceil_mode",
          "AveragePool",
          2,
          2,
          32,
          { 27, 27 },
          { 2, 2 },
          { 2, 2 },
          { 0 },
          { 0 },
          1,
          0 },
        { "big max 3-D", "MaxPool", 3, 2, 16, { 8, 10, 10 }, { 2, 2, 2 }, { 2, 2, 2 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        built b;
        build(&b, &cases[i], 5);
        gc_compare_kernels(&b.k, 1e-5, 1e-6, cases[i].what);
        free(b.x.data);
    }
}

/* ---- blocked layouts ---- */

/* Forward and backward with dout = r; blocked: c.layouts set and x handed over in nChw16c.
 * Returns y and dx plain (malloc'd), *laid whether the output came in a oneDNN layout. */
static int run_node(const gc_case *k, int blocked, const float *r, float **y, float **dx, int *laid)
{
    dnnl_memory_desc_t xmd = or_blocked_md(&k->ins[0].shape);
    void *xbuf = NULL;
    gr_tensor x = k->ins[0];
    if (blocked) {
        xbuf = calloc(1, dnnl_memory_desc_get_size(&xmd));
        or_convert(&k->ins[0].shape, NULL, k->ins[0].data, &xmd, xbuf);
        x.layout = &xmd;
        x.bytes = dnnl_memory_desc_get_size(&xmd);
        x.data = xbuf;
    }
    gc_node n;
    int st = or_prepare(&n, &(or_spec){ .op = k->op,
                                        .opset = k->opset,
                                        .attrs = k->attrs,
                                        .nattr = k->nattr,
                                        .nin = 1,
                                        .ins = &x,
                                        .nout = k->nout,
                                        .layouts = blocked,
                                        .training = 1,
                                        .need_grad = 1 });
    CHECK(st == GRAFT_OK, "layout run prepare: %s", graft_last_error());
    if (st) {
        free(xbuf);
        return st;
    }
    *laid = n.out[0].layout != NULL;
    gr_tensor dy = n.out[0], g = n.in[0], *dout[2] = { &dy, NULL }, *din[1] = { &g };
    dy.data = calloc(1, gr_tensor_bytes(&n.out[0]) + 1);
    or_convert(&n.out[0].shape, NULL, r, n.out[0].layout, dy.data);
    g.data = malloc(gr_tensor_bytes(&n.in[0]) + 4);
    memset(g.data, 0x7f, gr_tensor_bytes(&n.in[0])); /* poison: backward must overwrite */
    n.op->forward(&n.c);
    n.op->backward(&n.c, dout, din);
    *y = malloc((size_t)gr_numel(&n.out[0].shape) * 4 + 4);
    or_convert(&n.out[0].shape, n.out[0].layout, n.out[0].data, NULL, *y);
    *dx = malloc((size_t)gr_numel(&n.in[0].shape) * 4 + 4);
    or_convert(&n.in[0].shape, n.in[0].layout, g.data, NULL, *dx);
    free(g.data);
    free(dy.data);
    free(xbuf);
    gc_free(&n);
    return GRAFT_OK;
}

static void layout_case(const spec *p)
{
    built b;
    build(&b, p, 3);
    gc_node n;
    if (gc_prepare(&n, &b.k, &b.x) != GRAFT_OK) {
        CHECK(0, "%s: prepare: %s", p->what, graft_last_error());
        free(b.x.data);
        return;
    }
    int64_t m = gr_numel(&n.out[0].shape);
    gc_free(&n);
    float *r = malloc((size_t)m * 4 + 4), *y[2] = { 0 }, *g[2] = { 0 };
    gc_fill(r, m, 91, -1.f, 1.f);
    int laid[2] = { 0 };
    char w[256];
    if (!run_node(&b.k, 0, r, &y[0], &g[0], &laid[0]) &&
        !run_node(&b.k, 1, r, &y[1], &g[1], &laid[1])) {
        CHECK(laid[1], "%s: a blocked input should give a blocked output", p->what);
        snprintf(w, sizeof w, "%s: forward, blocked vs plain", p->what);
        th_close(y[1], y[0], (long)m, 1e-5, 1e-6, w);
        snprintf(w, sizeof w, "%s: d/d input, blocked vs plain", p->what);
        th_close(g[1], g[0], (long)gr_numel(&b.x.shape), 1e-5, 1e-6, w);
    }
    for (int v = 0; v < 2; v++) free(y[v]), free(g[v]);
    free(r);
    free(b.x.data);
}

static void test_layouts(void)
{
    static const spec cases[] = {
        { "layouts max 3x3 stride 2 pads 1",
          "MaxPool",
          2,
          2,
          32,
          { 28, 28 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 } },
        { "layouts max C=24 ceil_mode",
          "MaxPool",
          2,
          2,
          24,
          { 13, 11 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 0 },
          1 },
        { "layouts avg include pad",
          "AveragePool",
          2,
          2,
          32,
          { 14, 14 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          0,
          1 },
        { "layouts avg 2x2 stride 2",
          "AveragePool",
          2,
          2,
          40,
          { 14, 14 },
          { 2, 2 },
          { 2, 2 },
          { 0 },
          { 0 },
          0,
          0 },
        { "layouts max 1-D", "MaxPool", 1, 2, 32, { 30 }, { 3 }, { 2 }, { 0 }, { 1, 1 } },
        { "layouts avg 3-D",
          "AveragePool",
          3,
          2,
          16,
          { 6, 8, 8 },
          { 2, 2, 2 },
          { 2, 2, 2 },
          { 0 },
          { 0 },
          0,
          0 },
        { "layouts global avg", "GlobalAveragePool", 2, 2, 48, { 7, 7 } },
        { "layouts global max", "GlobalMaxPool", 2, 2, 48, { 7, 7 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) layout_case(&cases[i]);
}

/* No gradient reaches the output: dx is zero. */
static void test_null_dout(void)
{
    static const spec cases[] = {
        { "null dout max",
          "MaxPool",
          2,
          1,
          3,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 } },
        { "null dout global avg", "GlobalAveragePool", 2, 1, 3, { 7, 5 } },
    };
    for (size_t c = 0; c < 2; c++)
        for (int ref = 0; ref <= 1; ref++) {
            built b;
            build(&b, &cases[c], 1);
            b.k.use_ref = ref;
            gc_node n;
            int st = gc_prepare(&n, &b.k, &b.x);
            CHECK(st == GRAFT_OK, "%s prepare: %s", cases[c].what, graft_last_error());
            if (!st) {
                gr_tensor g = n.in[0], *din[1] = { &g }, *dout[1] = { NULL };
                int64_t m = gr_numel(&g.shape);
                g.data = malloc((size_t)m * 4);
                memset(g.data, 0x7f, (size_t)m * 4);
                n.op->forward(&n.c);
                n.op->backward(&n.c, dout, din);
                int zero = 1;
                for (int64_t j = 0; j < m; j++) zero &= ((float *)g.data)[j] == 0;
                CHECK(zero, "%s (%s): dx must be zero", cases[c].what,
                      ref ? "reference" : "oneDNN");
                free(g.data);
            }
            gc_free(&n);
            free(b.x.data);
        }
}

/* An 8-bit MaxPool has no gradient: asking for one is an error at prepare. */
static void test_errors(void)
{
    int64_t k[2] = { 2, 2 };
    gr_attr a[1] = { ints("kernel_shape", 2, k) };
    uint8_t x[16] = { 0 };
    gr_tensor in = { .dtype = GR_U8, .shape = { 4, { 1, 1, 4, 4 } }, .data = x };
    gc_case kc = { .op = "MaxPool",
                   .opset = 12,
                   .attrs = a,
                   .nattr = 1,
                   .nin = 1,
                   .ins = &in,
                   .nout = 1,
                   .need = 1 };
    gc_node n;
    int st = gc_prepare(&n, &kc, &in);
    CHECK(st != GRAFT_OK && strstr(graft_last_error(), "gradient"),
          "uint8 MaxPool with need_grad: status %d, '%s'", st, graft_last_error());
    gc_free(&n);
}

int main(void)
{
    test_finite_differences();
    test_kernels_agree();
    test_layouts();
    test_null_dout();
    test_errors();
    return th_finish();
}
