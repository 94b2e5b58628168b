/* test_grad_conv.c — backward of Conv and ConvTranspose. Oracles: central finite differences of
 * the op's own forward (both kernel sets, small odd shapes: C=3, H=7, W=5, strides, asymmetric
 * pads, dilations, groups, depthwise, bias or not, 1-D and 3-D, output_padding), the reference
 * backward against oneDNN's on bigger shapes (N=2, C=32, 28x28), and oneDNN in blocked layouts
 * (c.layouts = 1, the input itself in nChw16c as a previous convolution leaves it) against the
 * plain path. Also: need_grad subsets (no input gradient for a first layer, bias only), a missing
 * dout, the reference fallback where oneDNN declines, and the kernel oneDNN picks for a depthwise
 * layer in blocked layouts (jit_dw, not ref or gemm). */
#include "gradcheck.h"

#include <stdlib.h>
#include <string.h>

/* One convolution case: input (N, C, in...), M output channels. */
typedef struct spec {
    const char *what;
    int convt, nsp;
    int64_t N, C, M, G;
    int64_t in[3], k[3], s[3], d[3], pads[6], opad[3];
    int bias;
    uint32_t need;   /* 0: every input */
    const char *act; /* "_fused_act" or NULL */
} spec;

/* The node's attributes and inputs, built from a spec (owned, freed by built_free). */
typedef struct built {
    gr_attr a[8];
    int na;
    int64_t one[3], kk[3], ss[3], dd[3], pp[6], op[3];
    gr_tensor ins[3];
    gc_case k;
} built;

static void build(built *b, const spec *p, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    int n = p->nsp;
    for (int i = 0; i < n; i++) {
        b->kk[i] = p->k[i];
        b->ss[i] = p->s[i] ? p->s[i] : 1;
        b->dd[i] = p->d[i] ? p->d[i] : 1;
        b->pp[i] = p->pads[i], b->pp[n + i] = p->pads[n + i];
        b->op[i] = p->opad[i];
    }
    b->a[b->na++] = ints("kernel_shape", n, b->kk);
    b->a[b->na++] = ints("strides", n, b->ss);
    b->a[b->na++] = ints("dilations", n, b->dd);
    b->a[b->na++] = ints("pads", 2 * n, b->pp);
    b->a[b->na++] = ival("group", p->G ? p->G : 1);
    if (p->convt) b->a[b->na++] = ints("output_padding", n, b->op);
    if (p->act)
        b->a[b->na++] = (gr_attr){ .name = "_fused_act", .type = GR_AT_STRING, .s = p->act };
    int64_t G = p->G ? p->G : 1;
    gr_shape xs = { 2 + n, { p->N, p->C } },
             ws = { 2 + n, { p->convt ? p->C : p->M, p->convt ? p->M / G : p->C / G } };
    for (int i = 0; i < n; i++) xs.d[2 + i] = p->in[i], ws.d[2 + i] = p->k[i];
    gr_shape bs = { 1, { p->M } };
    gr_shape shapes[3] = { xs, ws, bs };
    int nin = p->bias ? 3 : 2;
    for (int i = 0; i < nin; i++) {
        int64_t m = gr_numel(&shapes[i]);
        float *d = malloc((size_t)m * sizeof(float) + 4);
        gc_fill(d, m, seed + (uint64_t)i, i ? -0.5f : -1.f, i ? 0.5f : 1.f);
        b->ins[i] = (gr_tensor){ .dtype = GR_F32, .shape = shapes[i], .data = d };
    }
    b->k = (gc_case){ .op = p->convt ? "ConvTranspose" : "Conv",
                      .opset = 17,
                      .attrs = b->a,
                      .nattr = b->na,
                      .nin = nin,
                      .ins = b->ins,
                      .nout = 1,
                      .need = p->need ? p->need : (1u << nin) - 1 };
}

static void built_free(built *b)
{
    for (int i = 0; i < 3; i++) free(b->ins[i].data);
}

/* Finite differences with both kernel sets. */
static void fd_case(const spec *p)
{
    built b;
    build(&b, p, 11);
    for (int ref = 0; ref <= 1; ref++) {
        b.k.use_ref = ref;
        if (p->act) b.k.h = 1e-3;
        gc_check(&b.k, p->what);
    }
    /* the oneDNN run above was oneDNN's: the state starts with the forward primitive, which is
     * dropped (the reference runs) when any backward primitive is missing */
    gc_node n;
    b.k.use_ref = 0;
    if (gc_prepare(&n, &b.k, b.ins) == GRAFT_OK)
        CHECK(*(dnnl_primitive_t *)n.c.params != NULL,
              "%s: oneDNN declined the training primitives", p->what);
    gc_free(&n);
    built_free(&b);
}

static void compare_case(const spec *p)
{
    built b;
    build(&b, p, 5);
    gc_compare_kernels(&b.k, 1e-3, 1e-3, p->what);
    built_free(&b);
}

static void test_finite_differences(void)
{
    static const spec cases[] = {
        { "conv 2-D 3x3 C=3 7x5",
          0,
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 0 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "conv 2-D no bias",
          0,
          2,
          1,
          3,
          2,
          1,
          { 7, 5 },
          { 3, 3 },
          { 0 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          0,
          0,
          NULL },
        { "conv stride 2, asymmetric pads",
          0,
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 2 },
          { 2, 2 },
          { 0 },
          { 0, 1, 2, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "conv stride (2,1) dilation (2,1)",
          0,
          2,
          1,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 1 },
          { 2, 1 },
          { 2, 0, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "conv groups 2",
          0,
          2,
          2,
          4,
          6,
          2,
          { 7, 5 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "conv depthwise",
          0,
          2,
          2,
          5,
          5,
          5,
          { 7, 5 },
          { 3, 3 },
          { 2, 1 },
          { 0 },
          { 1, 0, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "conv depthwise multiplier 2",
          0,
          2,
          1,
          3,
          6,
          3,
          { 7, 5 },
          { 3, 3 },
          { 1, 1 },
          { 1, 2 },
          { 1, 2, 1, 2 },
          { 0 },
          0,
          0,
          NULL },
        { "conv 1x1 stride 2",
          0,
          2,
          2,
          3,
          5,
          1,
          { 7, 5 },
          { 1, 1 },
          { 2, 2 },
          { 0 },
          { 0 },
          { 0 },
          1,
          0,
          NULL },
        { "conv 1-D", 0, 1, 2, 3, 4, 1, { 11 }, { 3 }, { 2 }, { 2 }, { 2, 1 }, { 0 }, 1, 0, NULL },
        { "conv 3-D",
          0,
          3,
          1,
          3,
          2,
          1,
          { 4, 5, 3 },
          { 2, 3, 2 },
          { 1, 2, 1 },
          { 1, 1, 2 },
          { 1, 1, 0, 0, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "conv fused relu",
          0,
          2,
          1,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          "relu" },
        { "conv first layer (no input gradient)",
          0,
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0x6,
          NULL },
        { "conv frozen weights (input gradient only)",
          0,
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0x1,
          NULL },
        { "conv bias gradient only",
          0,
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0x4,
          NULL },
        { "convT 2-D stride 2",
          1,
          2,
          2,
          3,
          4,
          1,
          { 4, 3 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "convT output_padding, asymmetric pads",
          1,
          2,
          1,
          3,
          2,
          1,
          { 4, 3 },
          { 3, 2 },
          { 2, 3 },
          { 0 },
          { 0, 1, 1, 0 },
          { 1, 2 },
          1,
          0,
          NULL },
        { "convT groups, dilation",
          1,
          2,
          2,
          4,
          6,
          2,
          { 4, 3 },
          { 3, 3 },
          { 2, 1 },
          { 1, 2 },
          { 1, 0, 0, 1 },
          { 1, 0 },
          1,
          0,
          NULL },
        { "convT depthwise no bias",
          1,
          2,
          1,
          4,
          4,
          4,
          { 5, 4 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 },
          { 1, 1 },
          0,
          0,
          NULL },
        { "convT 1-D", 1, 1, 2, 3, 2, 1, { 6 }, { 4 }, { 3 }, { 0 }, { 1, 2 }, { 2 }, 1, 0, NULL },
        { "convT 3-D",
          1,
          3,
          1,
          2,
          3,
          1,
          { 3, 3, 2 },
          { 2, 2, 3 },
          { 2, 1, 2 },
          { 0 },
          { 0, 1, 1, 1, 0, 0 },
          { 1, 0, 0 },
          1,
          0,
          NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) fd_case(&cases[i]);
}

static void test_kernels_agree(void)
{
    static const spec cases[] = {
        { "big conv 3x3",
          0,
          2,
          2,
          32,
          32,
          1,
          { 28, 28 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "big conv 3x3 stride 2 odd",
          0,
          2,
          2,
          32,
          48,
          1,
          { 27, 29 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 0, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "big conv 1x1",
          0,
          2,
          2,
          32,
          64,
          1,
          { 28, 28 },
          { 1, 1 },
          { 1, 1 },
          { 0 },
          { 0 },
          { 0 },
          0,
          0,
          NULL },
        { "big depthwise 3x3",
          0,
          2,
          2,
          32,
          32,
          32,
          { 28, 28 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "big depthwise 3x3 stride 2",
          0,
          2,
          2,
          32,
          32,
          32,
          { 28, 28 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          0,
          0,
          NULL },
        { "big groups 4 dilation 2",
          0,
          2,
          2,
          32,
          32,
          4,
          { 28, 28 },
          { 3, 3 },
          { 1, 1 },
          { 2, 2 },
          { 2, 2, 2, 2 },
          { 0 },
          1,
          0,
          NULL },
        { "big first layer C=3 7x7 stride 2",
          0,
          2,
          2,
          3,
          32,
          1,
          { 28, 28 },
          { 7, 7 },
          { 2, 2 },
          { 0 },
          { 3, 3, 3, 3 },
          { 0 },
          0,
          0x2,
          NULL },
        { "big conv fused relu",
          0,
          2,
          2,
          32,
          32,
          1,
          { 28, 28 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          "relu" },
        { "big convT stride 2",
          1,
          2,
          2,
          32,
          16,
          1,
          { 14, 14 },
          { 4, 4 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "big conv 1-D",
          0,
          1,
          2,
          32,
          32,
          1,
          { 100 },
          { 5 },
          { 1 },
          { 0 },
          { 2, 2 },
          { 0 },
          1,
          0,
          NULL },
        { "big conv 3-D",
          0,
          3,
          2,
          16,
          16,
          1,
          { 8, 10, 10 },
          { 3, 3, 3 },
          { 1, 1, 1 },
          { 0 },
          { 1, 1, 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) compare_case(&cases[i]);
}

/* ---- blocked layouts ---- */

/* Prepares, runs forward and backward with dout = r, and returns (plain) y and the gradients.
 * layouts 1: c.layouts set and the input handed over in nChw16c (x_blocked). */
static int run_node(const gc_case *k, int layouts, int x_blocked, const float *r, float **y,
                    float **g, int *used_layout, char *impl)
{
    dnnl_memory_desc_t xmd = or_blocked_md(&k->ins[0].shape);
    void *xbuf = NULL;
    gr_tensor ins[GC_MAX_IN];
    for (int i = 0; i < k->nin; i++) ins[i] = k->ins[i];
    if (x_blocked) {
        xbuf = calloc(1, dnnl_memory_desc_get_size(&xmd));
        or_convert(&k->ins[0].shape, NULL, k->ins[0].data, &xmd, xbuf);
        ins[0].layout = &xmd;
        ins[0].bytes = dnnl_memory_desc_get_size(&xmd);
        ins[0].data = xbuf;
    }
    gc_node n;
    int st = or_prepare(&n, &(or_spec){ .op = k->op,
                                        .opset = k->opset,
                                        .attrs = k->attrs,
                                        .nattr = k->nattr,
                                        .nin = k->nin,
                                        .ins = ins,
                                        .layouts = layouts,
                                        .training = 1,
                                        .need_grad = k->need });
    CHECK(st == GRAFT_OK, "layout run prepare: %s", graft_last_error());
    if (st) {
        free(xbuf);
        return st;
    }
    *used_layout = n.out[0].layout != NULL;
    dnnl_primitive_t prim = *(dnnl_primitive_t *)n.c.params; /* the state starts with it */
    const_dnnl_primitive_desc_t pd;
    const char *name = "none";
    if (prim && dnnl_primitive_get_primitive_desc(prim, &pd) == dnnl_success)
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    snprintf(impl, 64, "%s", name);
    gr_tensor dy = n.out[0], dx[3], *dout[1] = { &dy }, *din[3] = { 0 };
    dy.data = calloc(1, gr_tensor_bytes(&n.out[0]) + 1);
    or_convert(&n.out[0].shape, NULL, r, n.out[0].layout, dy.data);
    for (int i = 0; i < k->nin; i++) {
        if (!(k->need >> i & 1)) continue;
        dx[i] = n.in[i];
        dx[i].data = malloc(gr_tensor_bytes(&n.in[i]) + 4);
        memset(dx[i].data, 0x7f, gr_tensor_bytes(&n.in[i])); /* poison: backward must overwrite */
        din[i] = &dx[i];
    }
    n.op->forward(&n.c);
    n.op->backward(&n.c, dout, din);
    *y = malloc((size_t)gr_numel(&n.out[0].shape) * 4 + 4);
    or_convert(&n.out[0].shape, n.out[0].layout, n.out[0].data, NULL, *y);
    for (int i = 0; i < k->nin; i++) {
        if (!din[i]) continue;
        g[i] = malloc((size_t)gr_numel(&n.in[i].shape) * 4 + 4);
        or_convert(&n.in[i].shape, n.in[i].layout, dx[i].data, NULL, g[i]);
        free(dx[i].data);
    }
    free(dy.data);
    free(xbuf);
    gc_free(&n);
    return GRAFT_OK;
}

static void layout_case(const spec *p, int x_blocked)
{
    built b;
    build(&b, p, 3);
    b.k.need = p->need ? p->need : (1u << b.k.nin) - 1;
    /* the output shape, from a plain preparation */
    gc_node n;
    if (gc_prepare(&n, &b.k, b.ins) != GRAFT_OK) {
        CHECK(0, "%s: prepare: %s", p->what, graft_last_error());
        built_free(&b);
        return;
    }
    int64_t m = gr_numel(&n.out[0].shape);
    gc_free(&n);
    float *r = malloc((size_t)m * 4 + 4);
    gc_fill(r, m, 91, -1.f, 1.f);
    float *y[2] = { 0 }, *g[2][3] = { { 0 } };
    int used[2] = { 0 };
    char w[256], impl[2][64];
    if (!run_node(&b.k, 0, 0, r, &y[0], g[0], &used[0], impl[0]) &&
        !run_node(&b.k, 1, x_blocked, r, &y[1], g[1], &used[1], impl[1])) {
        CHECK(used[1], "%s: oneDNN kept a plain output with layouts allowed", p->what);
        if (p->G > 1 && p->G == p->C && p->G == p->M) /* depthwise: a jit kernel, not ref or gemm */
            CHECK(!strncmp(impl[1], "jit_dw", 6), "%s: oneDNN runs %s", p->what, impl[1]);
        snprintf(w, sizeof w, "%s: forward, blocked vs plain", p->what);
        th_close(y[1], y[0], (long)m, 1e-4, 1e-4, w);
        for (int i = 0; i < b.k.nin; i++) {
            if (!g[0][i]) continue;
            snprintf(w, sizeof w, "%s: d/d input %d, blocked vs plain", p->what, i);
            th_close(g[1][i], g[0][i], (long)gr_numel(&b.ins[i].shape), 1e-3, 1e-3, w);
        }
    }
    for (int v = 0; v < 2; v++) {
        free(y[v]);
        for (int i = 0; i < 3; i++) free(g[v][i]);
    }
    free(r);
    built_free(&b);
}

static void test_layouts(void)
{
    static const spec cases[] = {
        { "layouts conv 3x3",
          0,
          2,
          2,
          32,
          32,
          1,
          { 14, 14 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "layouts conv odd C stride 2",
          0,
          2,
          2,
          24,
          40,
          1,
          { 13, 11 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 0, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "layouts depthwise",
          0,
          2,
          2,
          32,
          32,
          32,
          { 14, 14 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "layouts depthwise stride 2",
          0,
          2,
          2,
          48,
          48,
          48,
          { 15, 15 },
          { 3, 3 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          0,
          0,
          NULL },
        { "layouts 1x1 weights only",
          0,
          2,
          2,
          32,
          64,
          1,
          { 14, 14 },
          { 1, 1 },
          { 1, 1 },
          { 0 },
          { 0 },
          { 0 },
          1,
          0x6,
          NULL },
        { "layouts frozen weights",
          0,
          2,
          2,
          32,
          16,
          1,
          { 14, 14 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0x1,
          NULL },
        { "layouts groups",
          0,
          2,
          2,
          32,
          32,
          2,
          { 14, 14 },
          { 3, 3 },
          { 1, 1 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "layouts convT",
          1,
          2,
          2,
          32,
          16,
          1,
          { 7, 7 },
          { 4, 4 },
          { 2, 2 },
          { 0 },
          { 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "layouts conv 1-D",
          0,
          1,
          2,
          32,
          32,
          1,
          { 40 },
          { 3 },
          { 1 },
          { 0 },
          { 1, 1 },
          { 0 },
          1,
          0,
          NULL },
        { "layouts conv 3-D",
          0,
          3,
          2,
          16,
          32,
          1,
          { 6, 8, 8 },
          { 3, 3, 3 },
          { 1, 1, 1 },
          { 0 },
          { 1, 1, 1, 1, 1, 1 },
          { 0 },
          1,
          0,
          NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int xb = 0; xb <= 1; xb++) layout_case(&cases[i], xb);
    /* a first layer: the image plain, C = 3, no input gradient */
    static const spec first = {
        "layouts first layer", 0,     2, 2,   3,   32, 1, { 28, 28 }, { 7, 7 }, { 2, 2 }, { 0 },
        { 3, 3, 3, 3 },        { 0 }, 0, 0x2, NULL
    };
    layout_case(&first, 0);
}

/* No gradient reaches the output: the input gradients are zero (not left as they were). */
static void test_null_dout(void)
{
    static const spec p = { "null dout", 0,        2,        1,        3,     4,
                            1,           { 7, 5 }, { 3, 3 }, { 1, 1 }, { 0 }, { 1, 1, 1, 1 },
                            { 0 },       1,        0,        NULL };
    built b;
    build(&b, &p, 1);
    for (int ref = 0; ref <= 1; ref++) {
        b.k.use_ref = ref;
        gc_node n;
        int st = gc_prepare(&n, &b.k, b.ins);
        CHECK(st == GRAFT_OK, "null dout prepare: %s", graft_last_error());
        if (st) break;
        gr_tensor dx[3], *din[3], *dout[1] = { NULL };
        for (int i = 0; i < 3; i++) {
            dx[i] = n.in[i];
            dx[i].data = malloc(gr_tensor_bytes(&n.in[i]));
            memset(dx[i].data, 0x7f, gr_tensor_bytes(&n.in[i]));
            din[i] = &dx[i];
        }
        n.op->forward(&n.c);
        n.op->backward(&n.c, dout, din);
        int zero = 1;
        for (int i = 0; i < 3; i++) {
            for (int64_t j = 0; j < gr_numel(&n.in[i].shape); j++)
                zero &= ((float *)dx[i].data)[j] == 0;
            free(dx[i].data);
        }
        CHECK(zero, "null dout (%s): input gradients must be zero", ref ? "reference" : "oneDNN");
        gc_free(&n);
    }
    built_free(&b);
}

/* ConvTranspose with an output_shape past the full output (an end pad of -2): oneDNN declines it,
 * so training runs the reference kernels; with the input in a oneDNN layout prepare asks for a
 * plain one (GR_RETRY_PLAIN). */
static void test_reference_fallback(void)
{
    static const spec p = { "convT output_shape past the end",
                            1,
                            2,
                            2,
                            3,
                            2,
                            1,
                            { 3, 3 },
                            { 3, 3 },
                            { 2, 2 },
                            { 0 },
                            { 0 },
                            { 0 },
                            1,
                            0,
                            NULL };
    static const int64_t os[2] = { 9, 8 };
    built b;
    build(&b, &p, 21);
    b.a[b.na++] = ints("output_shape", 2, os);
    b.k.nattr = b.na;
    gc_check(&b.k, p.what);
    gc_node n;
    if (gc_prepare(&n, &b.k, b.ins) == GRAFT_OK) {
        CHECK(n.out[0].shape.d[2] == 9 && n.out[0].shape.d[3] == 8, "%s: output shape", p.what);
        CHECK(*(dnnl_primitive_t *)n.c.params == NULL, "%s: expected the reference kernels",
              p.what);
    }
    gc_free(&n);
    dnnl_memory_desc_t xmd = or_blocked_md(&b.ins[0].shape);
    gr_tensor ins[3] = { b.ins[0], b.ins[1], b.ins[2] };
    ins[0].layout = &xmd;
    ins[0].bytes = dnnl_memory_desc_get_size(&xmd);
    gc_case k = b.k;
    k.ins = ins;
    int st = gc_prepare(&n, &k, ins);
    CHECK(st == GR_RETRY_PLAIN, "%s: blocked input: prepare gave %d, expected GR_RETRY_PLAIN",
          p.what, st);
    gc_free(&n);
    built_free(&b);
}

int main(void)
{
    test_finite_differences();
    test_kernels_agree();
    test_layouts();
    test_null_dout();
    test_reference_fallback();
    return th_finish();
}
