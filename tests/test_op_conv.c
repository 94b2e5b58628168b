/* test_op_conv.c — Conv, ConvTranspose and ConvInteger, run through their op table entries:
 * hand-worked values (padding, strides, groups, output_padding, output_shape, SAME_* in both
 * opsets of ConvTranspose), the reference kernel against an independent double-precision
 * implementation written here (Conv by its definition, ConvTranspose by scattering each input),
 * the oneDNN kernels against the reference kernel on odd shapes (C=3, H=7, W=5, strides,
 * asymmetric pads, dilations, groups, depthwise; 1-D to 3-D) with constant and run-time weights,
 * the fused activations, flops, and the errors bad nodes must give. */
#include "harness.h"
#include "oprun.h"

#include "ops/dnnl_util.h"

#include <string.h>

/* ---- nodes run through oprun.h ---- */

typedef or_node node; /* oprun.h */

/* Prepares op on ins[0..nin) (dtype 0: an absent input), allocates the output and runs it.
 * wconst 0 hides the data of inputs 1.. from prepare, as for weights computed at run time. */
static int node_run(node *n, const char *op, int opset, const gr_attr *attrs, int nattr,
                    const gr_tensor *ins, int nin, int wconst, int use_ref)
{
    return or_run(n, &(or_spec){ .op = op,
                                 .opset = opset,
                                 .attrs = attrs,
                                 .nattr = nattr,
                                 .nin = nin,
                                 .ins = ins,
                                 .hidden = wconst ? 0 : ~1u,
                                 .use_ref = use_ref });
}

static gr_tensor f32(int rank, const int64_t *d, const float *data)
{
    return (gr_tensor){ .dtype = GR_F32, .shape = gr_shape_make(rank, d), .data = (void *)data };
}

static void fill(float *x, int64_t n, unsigned seed)
{
    uint32_t s = seed * 2654435761u + 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) % 2001) / 1000.0f - 1.0f; /* [-1, 1] */
    }
}

/* Set while a case oneDNN declines (so the reference kernel runs on both paths). */
static int dnnl_declines;

/* Runs a float32 node with both kernels (oneDNN with constant weights) and checks the output
 * shape and values against want. */
static void expect_values(const char *what, const char *op, int opset, const gr_attr *a, int na,
                          const gr_tensor *ins, int nin, int rank, const int64_t *yshape,
                          const float *want)
{
    for (int ref = 0; ref <= 1; ref++) {
        node n;
        int st = node_run(&n, op, opset, a, na, ins, nin, 1, ref);
        CHECK(st == GRAFT_OK, "%s: %s", what, graft_last_error());
        if (st) continue;
        char w[200];
        snprintf(w, sizeof w, "%s (%s)", what, ref ? "reference" : "oneDNN");
        if (shape_is(&n.out[0], rank, yshape))
            th_close(n.out[0].data, want, gr_numel(&n.out[0].shape), 1e-6, 1e-6, w);
        else CHECK(0, "%s: wrong output shape", w);
        CHECK(used_dnnl(&n) == (!ref && !dnnl_declines), "%s: oneDNN used %d", w, used_dnnl(&n));
        or_free(&n);
    }
}

/* ---- values worked by hand ---- */

static void test_known_values(void)
{
    float x9[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, ones[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 },
          half[1] = { 0.5f };
    int64_t k2[2] = { 2, 2 }, s2[2] = { 2, 2 }, p1[4] = { 1, 1, 1, 1 };
    gr_tensor in[3] = { f32(4, (int64_t[]){ 1, 1, 3, 3 }, x9),
                        f32(4, (int64_t[]){ 1, 1, 2, 2 }, ones), f32(1, (int64_t[]){ 1 }, half) };
    /* 2x2 window sums of 1..9, plus the bias; kernel_shape inferred from W */
    expect_values("conv 2x2", "Conv", 17, NULL, 0, in, 3, 4, (int64_t[]){ 1, 1, 2, 2 },
                  (float[]){ 12.5f, 16.5f, 24.5f, 28.5f });
    /* pads 1, stride 2: windows at (-1,-1) (-1,1) (1,-1) (1,1) see 1 | 2+3 | 4+7 | 5+6+8+9 */
    gr_attr ap[3] = { ints("pads", 4, p1), ints("strides", 2, s2), ints("kernel_shape", 2, k2) };
    expect_values("conv pads stride", "Conv", 17, ap, 3, in, 3, 4, (int64_t[]){ 1, 1, 2, 2 },
                  (float[]){ 1.5f, 5.5f, 11.5f, 28.5f });

    /* ConvTranspose of [1 2; 3 4] with a 2x2 of ones: each input adds itself to a 2x2 block. */
    float x4[4] = { 1, 2, 3, 4 }, one[1] = { 1 };
    gr_tensor tin[3] = { f32(4, (int64_t[]){ 1, 1, 2, 2 }, x4),
                         f32(4, (int64_t[]){ 1, 1, 2, 2 }, ones), f32(1, (int64_t[]){ 1 }, one) };
    expect_values("convtranspose 2x2", "ConvTranspose", 17, NULL, 0, tin, 2, 4,
                  (int64_t[]){ 1, 1, 3, 3 }, (float[]){ 1, 3, 2, 4, 10, 6, 3, 7, 4 });
    /* stride 2 and output_padding 1: disjoint blocks, then a last row and column of bias only */
    int64_t op1[2] = { 1, 1 };
    gr_attr at[2] = { ints("strides", 2, s2), ints("output_padding", 2, op1) };
    expect_values("convtranspose output_padding", "ConvTranspose", 17, at, 2, tin, 3, 4,
                  (int64_t[]){ 1, 1, 5, 5 }, (float[]){ 2, 2, 3, 3, 1, 2, 2, 3, 3, 1, 4, 4, 5,
                                                        5, 1, 4, 4, 5, 5, 1, 1, 1, 1, 1, 1 });

    /* groups: ConvTranspose W is (C, M/group, k...): input channel 0 feeds outputs 0, 1 and
     * input channel 1 feeds outputs 2, 3. Conv W is (M, C/group, k...). */
    float x2[2] = { 2, 3 }, w4[4] = { 1, 2, 3, 4 };
    gr_attr g2[1] = { ival("group", 2) };
    gr_tensor gin[2] = { f32(4, (int64_t[]){ 1, 2, 1, 1 }, x2),
                         f32(4, (int64_t[]){ 2, 2, 1, 1 }, w4) };
    expect_values("convtranspose groups", "ConvTranspose", 17, g2, 1, gin, 2, 4,
                  (int64_t[]){ 1, 4, 1, 1 }, (float[]){ 2, 4, 9, 12 });
    gr_tensor cin[2] = { f32(4, (int64_t[]){ 1, 2, 1, 1 }, x2),
                         f32(4, (int64_t[]){ 4, 1, 1, 1 }, w4) };
    expect_values("conv groups", "Conv", 17, g2, 1, cin, 2, 4, (int64_t[]){ 1, 4, 1, 1 },
                  (float[]){ 2, 4, 9, 12 });

    /* 1-D SAME on 1..6 with [1 1 1], stride 2: total pad 1, at the end (UPPER) or start (LOWER). */
    float x6[6] = { 1, 2, 3, 4, 5, 6 };
    int64_t st2[1] = { 2 };
    gr_tensor in1[2] = { f32(3, (int64_t[]){ 1, 1, 6 }, x6), f32(3, (int64_t[]){ 1, 1, 3 }, ones) };
    gr_attr su[2] = { ints("strides", 1, st2), sval("auto_pad", "SAME_UPPER") };
    expect_values("conv SAME_UPPER", "Conv", 17, su, 2, in1, 2, 3, (int64_t[]){ 1, 1, 3 },
                  (float[]){ 6, 12, 11 });
    su[1] = sval("auto_pad", "SAME_LOWER");
    expect_values("conv SAME_LOWER", "Conv", 17, su, 2, in1, 2, 3, (int64_t[]){ 1, 1, 3 },
                  (float[]){ 3, 9, 15 });

    /* ConvTranspose 1-D of 1, 2, 3 with [1 1 1], stride 2: the full output is 1 1 3 2 5 3 3 (7);
     * SAME gives 6 outputs, cropping 1: ConvTranspose-11 SAME_UPPER crops the end, SAME_LOWER the
     * start; ConvTranspose-1 said the reverse. */
    gr_tensor tin1[3] = { f32(3, (int64_t[]){ 1, 1, 3 }, x6), f32(3, (int64_t[]){ 1, 1, 3 }, ones),
                          f32(1, (int64_t[]){ 1 }, half) };
    const float crop_end[6] = { 1, 1, 3, 2, 5, 3 }, crop_start[6] = { 1, 3, 2, 5, 3, 3 };
    su[1] = sval("auto_pad", "SAME_UPPER");
    expect_values("convtranspose SAME_UPPER", "ConvTranspose", 17, su, 2, tin1, 2, 3,
                  (int64_t[]){ 1, 1, 6 }, crop_end);
    expect_values("convtranspose-1 SAME_UPPER", "ConvTranspose", 10, su, 2, tin1, 2, 3,
                  (int64_t[]){ 1, 1, 6 }, crop_start);
    su[1] = sval("auto_pad", "SAME_LOWER");
    expect_values("convtranspose SAME_LOWER", "ConvTranspose", 17, su, 2, tin1, 2, 3,
                  (int64_t[]){ 1, 1, 6 }, crop_start);
    /* output_shape 5: total pad 2, one each side; 6: the larger half first (ConvTranspose-11);
     * 9: beyond the full 7, the extra outputs hold the bias */
    int64_t o5[1] = { 5 }, o6[1] = { 6 }, o9[1] = { 9 };
    gr_attr ao[2] = { ints("strides", 1, st2), ints("output_shape", 1, o5) };
    expect_values("convtranspose output_shape 5", "ConvTranspose", 17, ao, 2, tin1, 2, 3,
                  (int64_t[]){ 1, 1, 5 }, (float[]){ 1, 3, 2, 5, 3 });
    ao[1] = ints("output_shape", 1, o6);
    expect_values("convtranspose output_shape 6", "ConvTranspose", 17, ao, 2, tin1, 2, 3,
                  (int64_t[]){ 1, 1, 6 }, crop_start);
    int64_t o8[1] = { 8 };
    ao[1] = ints("output_shape", 1, o8);
    expect_values("convtranspose output_shape 8", "ConvTranspose", 17, ao, 2, tin1, 3, 3,
                  (int64_t[]){ 1, 1, 8 },
                  (float[]){ 1.5f, 1.5f, 3.5f, 2.5f, 5.5f, 3.5f, 3.5f, 0.5f });
    ao[1] = ints("output_shape", 1, o9);
    dnnl_declines = 1; /* oneDNN 2.6 rejects an end pad of -2 here: the reference kernel runs */
    expect_values("convtranspose output_shape 9", "ConvTranspose", 17, ao, 2, tin1, 3, 3,
                  (int64_t[]){ 1, 1, 9 },
                  (float[]){ 1.5f, 1.5f, 3.5f, 2.5f, 5.5f, 3.5f, 3.5f, 0.5f, 0.5f });
    dnnl_declines = 0;

    /* ConvInteger: uint8 1..9 minus zero point 1, int8 2x2 of ones minus per-channel zero point 0 */
    uint8_t xq[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, zx[1] = { 1 };
    int8_t wq[4] = { 1, 1, 1, 1 }, zw[1] = { 0 };
    gr_tensor qin[4] = {
        { .dtype = GR_U8, .shape = gr_shape_make(4, (int64_t[]){ 1, 1, 3, 3 }), .data = xq },
        { .dtype = GR_I8, .shape = gr_shape_make(4, (int64_t[]){ 1, 1, 2, 2 }), .data = wq },
        { .dtype = GR_U8, .shape = { 0, { 0 } }, .data = zx },
        { .dtype = GR_I8, .shape = gr_shape_make(1, (int64_t[]){ 1 }), .data = zw }
    };
    node n;
    CHECK(node_run(&n, "ConvInteger", 17, NULL, 0, qin, 4, 0, 0) == GRAFT_OK, "%s",
          graft_last_error());
    const int32_t *yq = n.out[0].data;
    CHECK(n.out[0].dtype == GR_I32 && shape_is(&n.out[0], 4, (int64_t[]){ 1, 1, 2, 2 }) &&
              yq[0] == 8 && yq[1] == 12 && yq[2] == 20 && yq[3] == 24,
          "ConvInteger: %d %d %d %d", yq[0], yq[1], yq[2], yq[3]);
    or_free(&n);
}

/* ---- an independent implementation: double precision, straight from the definitions ---- */

typedef struct geo {
    int transpose;
    int64_t N, C, OC, G, in[3], out[3], k[3], s[3], d[3], pb[3];
} geo;

/* Conv: y[n][oc][o] = b[oc] + sum over ic of the group and taps j of x[n][ic][o*s - pb + j*d] w[oc][ic'][j].
 * ConvTranspose: every x[n][ic][i] adds x * w[ic][oc'][j] to y[n][oc][i*s - pb + j*d]. */
static void naive(double *y, const float *x, const float *w, const float *b, const geo *q)
{
    const int64_t ICg = q->C / q->G, OCg = q->OC / q->G;
    const int64_t ip = q->in[0] * q->in[1] * q->in[2], op = q->out[0] * q->out[1] * q->out[2];
    const int64_t ks = q->k[0] * q->k[1] * q->k[2];
    for (int64_t i = 0; i < q->N * q->OC * op; i++) y[i] = b ? b[i / op % q->OC] : 0;
    for (int64_t n = 0; n < q->N; n++)
        for (int64_t oc = 0; oc < q->OC; oc++)
            for (int64_t icg = 0; icg < ICg; icg++) {
                int64_t grp = oc / OCg, ic = grp * ICg + icg;
                double wk;
                for (int64_t j = 0; j < ks; j++) {
                    int64_t jj[3] = { j / (q->k[1] * q->k[2]), j / q->k[2] % q->k[1], j % q->k[2] };
                    wk = q->transpose ? w[(ic * OCg + oc % OCg) * ks + j]
                                      : w[(oc * ICg + icg) * ks + j];
                    /* conv: walk outputs and read inputs; transpose: walk inputs and write outputs */
                    const int64_t *walk = q->transpose ? q->in : q->out,
                                  *other = q->transpose ? q->out : q->in;
                    for (int64_t p = 0; p < walk[0] * walk[1] * walk[2]; p++) {
                        int64_t pp[3] = { p / (walk[1] * walk[2]), p / walk[2] % walk[1],
                                          p % walk[2] },
                                at = 0, ok = 1;
                        for (int a = 0; a < 3; a++) {
                            int64_t pos = pp[a] * q->s[a] - q->pb[a] + jj[a] * q->d[a];
                            ok &= pos >= 0 && pos < other[a];
                            at = at * other[a] + pos;
                        }
                        if (!ok) continue;
                        if (q->transpose)
                            y[(n * q->OC + oc) * op + at] += x[(n * q->C + ic) * ip + p] * wk;
                        else y[(n * q->OC + oc) * op + p] += x[(n * q->C + ic) * ip + at] * wk;
                    }
                }
            }
}

/* ---- oneDNN against the reference kernel, and the reference against naive() ---- */

typedef struct ccase {
    const char *op; /* "Conv" or "ConvTranspose" */
    int nsp;
    int64_t N, C, OC, G;
    int64_t in[3], k[3], s[3], d[3], pads[6], opad[3], oshape[3];
    const char *auto_pad; /* NULL: explicit pads */
    int bias, ks_attr;    /* a bias input; give kernel_shape (else inferred from W) */
    const char *act;      /* fused activation or NULL */
} ccase;

static int64_t numel_of(int rank, const int64_t *d)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= d[i];
    return n;
}

/* Expected output geometry of a case with explicit pads (the naive implementation's input). */
static geo case_geo(const ccase *p)
{
    int t = !strcmp(p->op, "ConvTranspose");
    geo q = { .transpose = t, .N = p->N, .C = p->C, .OC = p->OC, .G = p->G };
    for (int a = 0; a < 3; a++) {
        int i = a - (3 - p->nsp);
        q.in[a] = q.out[a] = q.k[a] = q.s[a] = q.d[a] = 1;
        if (i < 0) continue;
        q.in[a] = p->in[i], q.k[a] = p->k[i], q.s[a] = p->s[i], q.d[a] = p->d[i],
        q.pb[a] = p->pads[i];
        int64_t ek = (p->k[i] - 1) * p->d[i] + 1, pads = p->pads[i] + p->pads[p->nsp + i];
        q.out[a] = t ? p->s[i] * (p->in[i] - 1) + p->opad[i] + ek - pads
                     : (p->in[i] + pads - ek) / p->s[i] + 1;
    }
    return q;
}

static void run_case(const ccase *p)
{
    int t = !strcmp(p->op, "ConvTranspose"), nsp = p->nsp;
    int64_t xd[5] = { p->N, p->C }, wd[5] = { t ? p->C : p->OC, t ? p->OC / p->G : p->C / p->G };
    for (int i = 0; i < nsp; i++) xd[2 + i] = p->in[i], wd[2 + i] = p->k[i];
    int64_t nx = numel_of(2 + nsp, xd), nw = numel_of(2 + nsp, wd);
    float *x = malloc((size_t)nx * 4), *w = malloc((size_t)nw * 4), *b = malloc((size_t)p->OC * 4);
    fill(x, nx, (unsigned)(nx + 1)), fill(w, nw, (unsigned)(nw + 2)), fill(b, p->OC, 3);
    gr_tensor in[3] = { f32(2 + nsp, xd, x), f32(2 + nsp, wd, w), f32(1, &p->OC, b) };
    gr_attr a[12];
    int na = 0;
    a[na++] = ints("strides", nsp, p->s);
    a[na++] = ints("dilations", nsp, p->d);
    a[na++] = ival("group", p->G);
    if (p->auto_pad) a[na++] = sval("auto_pad", p->auto_pad);
    else a[na++] = ints("pads", 2 * nsp, p->pads);
    if (p->ks_attr) a[na++] = ints("kernel_shape", nsp, p->k);
    if (p->opad[0] || p->opad[nsp - 1]) a[na++] = ints("output_padding", nsp, p->opad);
    if (p->oshape[0]) a[na++] = ints("output_shape", nsp, p->oshape);
    if (p->act) a[na++] = sval("_fused_act", p->act);
    if (p->act && !strcmp(p->act, "clip"))
        a[na++] = fval("_fused_min", -0.25f), a[na++] = fval("_fused_max", 0.5f);
    char what[200];
    snprintf(what, sizeof what, "%s %dD C%lld OC%lld G%lld k%lld s%lld d%lld pads %lld/%lld %s%s%s",
             p->op, nsp, (long long)p->C, (long long)p->OC, (long long)p->G, (long long)p->k[0],
             (long long)p->s[0], (long long)p->d[0], (long long)p->pads[0], (long long)p->pads[nsp],
             p->auto_pad ? p->auto_pad : "", p->act ? " act " : "", p->act ? p->act : "");
    node r, o[2];
    int st = node_run(&r, p->op, 17, a, na, in, p->bias ? 3 : 2, 1, 1);
    CHECK(st == GRAFT_OK, "%s: %s", what, graft_last_error());
    if (st) goto out;
    int64_t ny = gr_numel(&r.out[0].shape);
    CHECK(!used_dnnl(&r), "%s: use_ref must run the reference kernel", what);
    for (int wconst = 0; wconst <= 1;
         wconst++) { /* weights known in prepare, or only at run time */
        node *n = &o[wconst];
        char w2[240];
        snprintf(w2, sizeof w2, "%s, %s weights", what, wconst ? "constant" : "run-time");
        CHECK((st = node_run(n, p->op, 17, a, na, in, p->bias ? 3 : 2, wconst, 0)) == GRAFT_OK,
              "%s: %s", w2, graft_last_error());
        if (st) continue;
        CHECK(gr_shape_eq(&r.out[0].shape, &n->out[0].shape), "%s: shapes differ", w2);
        CHECK(used_dnnl(n), "%s: oneDNN must run this case", w2);
        CHECK(n->c.flops == r.c.flops && n->c.flops > 0, "%s: flops %lld", w2,
              (long long)n->c.flops);
        th_close(n->out[0].data, r.out[0].data, ny, 1e-4, 1e-5, w2);
        or_free(n);
    }
    if (!p->auto_pad && !p->oshape[0]) { /* explicit pads: the naive implementation */
        geo q = case_geo(p);
        double *yd = malloc((size_t)ny * sizeof *yd);
        float *yf = malloc((size_t)ny * sizeof *yf);
        naive(yd, x, w, p->bias ? b : NULL, &q);
        for (int64_t i = 0; i < ny; i++) {
            double v = yd[i];
            if (p->act && !strcmp(p->act, "relu")) v = v < 0 ? 0 : v;
            if (p->act && !strcmp(p->act, "clip")) v = v < -0.25 ? -0.25 : v > 0.5 ? 0.5 : v;
            yf[i] = (float)v;
        }
        int64_t yshape[5] = { p->N, p->OC };
        for (int i = 0; i < nsp; i++) yshape[2 + i] = q.out[3 - nsp + i];
        CHECK(shape_is(&r.out[0], 2 + nsp, yshape), "%s: output shape against the naive geometry",
              what);
        char w3[240];
        snprintf(w3, sizeof w3, "%s, reference vs naive", what);
        if (shape_is(&r.out[0], 2 + nsp, yshape)) th_close(r.out[0].data, yf, ny, 1e-5, 1e-6, w3);
        free(yd), free(yf);
    }
    or_free(&r);
out:
    free(x), free(w), free(b);
}

static void test_dnnl_vs_ref(void)
{
    static const ccase cases[] = {
        /* op, nsp, N, C, OC, G, in, k, s, d, pads, output_padding, output_shape, auto_pad, bias, ks_attr, act */
        { "Conv",
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 1, 0, 2, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          1,
          NULL },
        { "Conv",
          2,
          2,
          3,
          5,
          1,
          { 7, 5 },
          { 3, 2 },
          { 1, 2 },
          { 2, 2 },
          { 2, 1, 0, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "Conv",
          2,
          1,
          6,
          9,
          3,
          { 7, 5 },
          { 3, 3 },
          { 2, 1 },
          { 1, 2 },
          { 1, 2, 1, 0 },
          { 0 },
          { 0 },
          NULL,
          0,
          1,
          NULL },
        { "Conv",
          2,
          2,
          3,
          9,
          3,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 2, 2 },
          { 2, 2, 1, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "Conv",
          2,
          2,
          5,
          5,
          5,
          { 7, 5 },
          { 3, 3 },
          { 1, 1 },
          { 1, 1 },
          { 1, 1, 1, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "Conv",
          2,
          1,
          3,
          6,
          3,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 0, 1, 1, 0 },
          { 0 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "Conv",
          1,
          2,
          3,
          4,
          1,
          { 11 },
          { 4 },
          { 3 },
          { 2 },
          { 2, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          1,
          NULL },
        { "Conv",
          1,
          1,
          6,
          6,
          6,
          { 11 },
          { 3 },
          { 1 },
          { 1 },
          { 1, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "Conv",
          3,
          1,
          3,
          2,
          1,
          { 5, 7, 6 },
          { 2, 3, 3 },
          { 1, 2, 2 },
          { 2, 1, 1 },
          { 1, 0, 1, 0, 1, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "Conv",
          3,
          2,
          4,
          6,
          2,
          { 4, 5, 3 },
          { 3, 2, 2 },
          { 2, 1, 1 },
          { 1, 1, 2 },
          { 1, 1, 0, 0, 0, 2 },
          { 0 },
          { 0 },
          NULL,
          0,
          1,
          NULL },
        { "Conv",
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 0 },
          { 0 },
          { 0 },
          "SAME_UPPER",
          1,
          0,
          NULL },
        { "Conv",
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 2, 2 },
          { 2, 2 },
          { 2, 2 },
          { 0 },
          { 0 },
          { 0 },
          "SAME_LOWER",
          1,
          0,
          NULL },
        { "Conv",
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 0 },
          { 0 },
          { 0 },
          "VALID",
          1,
          0,
          NULL },
        { "Conv",
          2,
          2,
          3,
          8,
          1,
          { 7, 5 },
          { 1, 1 },
          { 2, 2 },
          { 1, 1 },
          { 0, 0, 0, 0 },
          { 0 },
          { 0 },
          NULL,
          0,
          0,
          NULL },
        { "Conv",
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 1, 0, 2, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          1,
          "relu" },
        { "Conv",
          2,
          1,
          6,
          9,
          3,
          { 7, 5 },
          { 3, 3 },
          { 2, 1 },
          { 1, 2 },
          { 1, 2, 1, 0 },
          { 0 },
          { 0 },
          NULL,
          1,
          1,
          "clip" },
        { "Conv",
          2,
          2,
          16,
          32,
          1,
          { 14, 13 },
          { 3, 3 },
          { 1, 1 },
          { 1, 1 },
          { 1, 1, 1, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          0,
          "relu" },
        { "Conv",
          2,
          2,
          32,
          32,
          32,
          { 9, 9 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 1, 1, 1, 1 },
          { 0 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "ConvTranspose",
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 3 },
          { 1, 1 },
          { 1, 0, 0, 1 },
          { 1, 2 },
          { 0 },
          NULL,
          1,
          1,
          NULL },
        { "ConvTranspose",
          2,
          1,
          6,
          9,
          3,
          { 7, 5 },
          { 3, 2 },
          { 2, 2 },
          { 2, 1 },
          { 0, 1, 1, 0 },
          { 1, 1 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "ConvTranspose",
          2,
          2,
          3,
          6,
          3,
          { 7, 5 },
          { 3, 3 },
          { 1, 2 },
          { 2, 1 },
          { 2, 0, 1, 1 },
          { 0, 1 },
          { 0 },
          NULL,
          0,
          0,
          NULL },
        { "ConvTranspose",
          2,
          2,
          3,
          3,
          3,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 1, 1, 1, 1 },
          { 1, 0 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "ConvTranspose",
          1,
          2,
          3,
          4,
          1,
          { 11 },
          { 4 },
          { 3 },
          { 2 },
          { 2, 1 },
          { 2 },
          { 0 },
          NULL,
          1,
          1,
          NULL },
        { "ConvTranspose",
          3,
          1,
          3,
          2,
          1,
          { 5, 7, 6 },
          { 2, 3, 3 },
          { 1, 2, 2 },
          { 2, 1, 1 },
          { 1, 0, 1, 0, 1, 1 },
          { 0, 1, 1 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "ConvTranspose",
          3,
          2,
          4,
          6,
          2,
          { 3, 4, 3 },
          { 2, 2, 3 },
          { 2, 1, 2 },
          { 1, 2, 1 },
          { 0, 1, 1, 1, 0, 0 },
          { 1, 0, 1 },
          { 0 },
          NULL,
          1,
          0,
          NULL },
        { "ConvTranspose",
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 0 },
          { 0 },
          { 0 },
          "SAME_UPPER",
          1,
          0,
          NULL },
        { "ConvTranspose",
          2,
          2,
          3,
          4,
          1,
          { 7, 5 },
          { 4, 3 },
          { 3, 2 },
          { 1, 1 },
          { 0 },
          { 0 },
          { 0 },
          "SAME_LOWER",
          1,
          0,
          NULL },
        { "ConvTranspose",
          2,
          1,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 0 },
          { 0 },
          { 13, 10 },
          NULL,
          1,
          0,
          NULL },
        { "ConvTranspose",
          2,
          1,
          3,
          4,
          1,
          { 7, 5 },
          { 3, 3 },
          { 2, 2 },
          { 1, 1 },
          { 0 },
          { 0 },
          { 14, 12 },
          NULL,
          1,
          0,
          NULL },
        { "ConvTranspose",
          2,
          1,
          6,
          9,
          3,
          { 7, 5 },
          { 3, 2 },
          { 2, 2 },
          { 2, 1 },
          { 0, 1, 1, 0 },
          { 1, 1 },
          { 0 },
          NULL,
          1,
          0,
          "relu" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
}

/* ---- fused activations against the unfused output, and float64 ---- */

static void test_fused_and_f64(void)
{
    int64_t xd[4] = { 2, 3, 7, 5 }, wd[4] = { 4, 3, 3, 3 }, oc = 4, p1[4] = { 1, 1, 1, 1 };
    float x[210], w[108], b[4];
    fill(x, 210, 7), fill(w, 108, 8), fill(b, 4, 9);
    gr_tensor in[3] = { f32(4, xd, x), f32(4, wd, w), f32(1, &oc, b) };
    gr_attr a[4] = { ints("pads", 4, p1), sval("_fused_act", "relu"), fval("_fused_min", -0.3f),
                     fval("_fused_max", 0.4f) };
    for (int ref = 0; ref <= 1; ref++) {
        node plain, relu, clip, cmax;
        CHECK(node_run(&plain, "Conv", 17, a, 1, in, 3, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(node_run(&relu, "Conv", 17, a, 2, in, 3, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        a[1] = sval("_fused_act", "clip");
        CHECK(node_run(&clip, "Conv", 17, a, 4, in, 3, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        gr_attr amax[3] = { a[0], a[1], a[3] }; /* no _fused_min: -inf, as Clip without min */
        CHECK(node_run(&cmax, "Conv", 17, amax, 3, in, 3, 1, ref) == GRAFT_OK, "%s",
              graft_last_error());
        a[1] = sval("_fused_act", "relu");
        int64_t ny = gr_numel(&plain.out[0].shape), neg = 0;
        float *wr = malloc((size_t)ny * 4), *wc = malloc((size_t)ny * 4),
              *wm = malloc((size_t)ny * 4);
        const float *y = plain.out[0].data;
        for (int64_t i = 0; i < ny; i++) {
            wr[i] = y[i] < 0 ? 0 : y[i];
            wc[i] = y[i] < -0.3f ? -0.3f : y[i] > 0.4f ? 0.4f : y[i];
            wm[i] = y[i] > 0.4f ? 0.4f : y[i];
            neg += y[i] < 0;
        }
        CHECK(neg > 10 && neg < ny - 10, "the case must have both signs (%lld negative of %lld)",
              (long long)neg, (long long)ny);
        th_close(relu.out[0].data, wr, ny, 1e-6, 1e-7,
                 ref ? "fused relu (reference)" : "fused relu (oneDNN)");
        th_close(clip.out[0].data, wc, ny, 1e-6, 1e-7,
                 ref ? "fused clip (reference)" : "fused clip (oneDNN)");
        th_close(cmax.out[0].data, wm, ny, 1e-6, 1e-7,
                 ref ? "fused clip max only (reference)" : "fused clip max only (oneDNN)");
        CHECK(used_dnnl(&relu) == !ref && used_dnnl(&clip) == !ref && used_dnnl(&cmax) == !ref,
              "fused cases run oneDNN");
        free(wr), free(wc), free(wm);
        or_free(&plain), or_free(&relu), or_free(&clip), or_free(&cmax);
    }

    /* float64 runs the reference kernel and agrees with float32 */
    double xd64[210], wd64[108], bd64[4];
    for (int i = 0; i < 210; i++) xd64[i] = x[i];
    for (int i = 0; i < 108; i++) wd64[i] = w[i];
    for (int i = 0; i < 4; i++) bd64[i] = b[i];
    gr_tensor in64[3] = { { .dtype = GR_F64, .shape = gr_shape_make(4, xd), .data = xd64 },
                          { .dtype = GR_F64, .shape = gr_shape_make(4, wd), .data = wd64 },
                          { .dtype = GR_F64, .shape = gr_shape_make(1, &oc), .data = bd64 } };
    node n32, n64;
    in64[1].shape = in[1].shape = gr_shape_make(4, (int64_t[]){ 3, 4, 3, 3 }); /* (C, M, kH, kW) */
    CHECK(node_run(&n32, "ConvTranspose", 17, a, 1, in, 3, 1, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(node_run(&n64, "ConvTranspose", 17, a, 1, in64, 3, 1, 0) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(n64.out[0].dtype == GR_F64 && !used_dnnl(&n64), "float64 runs the reference kernel");
    int64_t ny = gr_numel(&n64.out[0].shape);
    float *y64 = malloc((size_t)ny * 4);
    for (int64_t i = 0; i < ny; i++) y64[i] = (float)((const double *)n64.out[0].data)[i];
    th_close(n32.out[0].data, y64, ny, 1e-6, 1e-6, "float64 ConvTranspose");
    free(y64);
    or_free(&n32), or_free(&n64);
}

/* ---- flops ---- */

static void test_flops(void)
{
    static float x[1024], w[1024];
    int64_t p1[4] = { 1, 1, 1, 1 }, s2[2] = { 2, 2 };
    gr_tensor in[2] = { f32(4, (int64_t[]){ 2, 6, 7, 5 }, x),
                        f32(4, (int64_t[]){ 4, 3, 3, 3 }, w) };
    gr_attr a[3] = { ints("pads", 4, p1), ival("group", 2), ints("strides", 2, s2) };
    node n;
    /* 2 x N x OC x OH x OW x IC/G x KH x KW, output 4x3 */
    CHECK(node_run(&n, "Conv", 17, a, 3, in, 2, 1, 1) == GRAFT_OK, "%s", graft_last_error());
    CHECK(n.c.flops == 2LL * 2 * 4 * 4 * 3 * 3 * 9, "Conv flops %lld", (long long)n.c.flops);
    or_free(&n);
    /* ConvTranspose: 2 x N x IC x IH x IW x OC/G x KH x KW; W (6, 2, 3, 3), OC = 4 */
    in[1].shape = gr_shape_make(4, (int64_t[]){ 6, 2, 3, 3 });
    CHECK(node_run(&n, "ConvTranspose", 17, a, 2, in, 2, 1, 1) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(n.c.flops == 2LL * 2 * 6 * 35 * 2 * 9, "ConvTranspose flops %lld", (long long)n.c.flops);
    CHECK(shape_is(&n.out[0], 4, (int64_t[]){ 2, 4, 7, 5 }), "ConvTranspose pads 1: 7x5");
    or_free(&n);
}

/* ---- errors ---- */

static void expect_error(const char *op, const gr_attr *a, int na, const gr_tensor *in, int nin,
                         const char *needle)
{
    node n;
    int st = node_run(&n, op, 17, a, na, in, nin, 1, 0);
    CHECK(st != GRAFT_OK && strstr(graft_last_error(), needle),
          "%s: expected an error with '%s', got %d: %s", op, needle, st,
          st ? graft_last_error() : "");
    or_free(&n); /* a failed run is freed already: nothing to do */
}

static void test_errors(void)
{
    static float x[4096];
    int64_t xd[4] = { 1, 3, 7, 5 }, k2[2] = { 2, 2 }, four = 4, five = 5;
    gr_tensor in[3] = { f32(4, xd, x), f32(4, (int64_t[]){ 4, 3, 3, 3 }, x), f32(1, &four, x) };
    gr_attr a1[1] = { ints("kernel_shape", 2, k2) };
    expect_error("Conv", a1, 1, in, 2, "kernel_shape");
    gr_attr a2[1] = { sval("auto_pad", "SAME") };
    expect_error("Conv", a2, 1, in, 2, "auto_pad");
    gr_attr a3[1] = { ival("frobnicate", 1) };
    expect_error("ConvTranspose", a3, 1, in, 2, "frobnicate");
    gr_attr a4[1] = { ints("output_padding", 2, k2) };
    expect_error("Conv", a4, 1, in, 2, "output_padding");
    gr_attr a5[1] = { sval("_fused_act", "gelu") };
    expect_error("Conv", a5, 1, in, 2, "_fused_act");
    gr_attr a6[1] = { ival("group", 2) };
    expect_error("Conv", a6, 1, in, 2, "group 2");
    expect_error("ConvTranspose", NULL, 0, in, 2, "does not fit");
    gr_attr a7[1] = { ints("strides", 1, k2) };
    expect_error("Conv", a7, 1, in, 2, "strides");
    gr_attr a8[1] = { ival("group", 0) };
    expect_error("Conv", a8, 1, in, 2, "group");
    in[2].shape = gr_shape_make(1, &five);
    expect_error("Conv", NULL, 0, in, 3, "bias");
    in[1].shape = gr_shape_make(3, (int64_t[]){ 4, 3, 3 });
    expect_error("Conv", NULL, 0, in, 2, "rank");
    in[1].shape = gr_shape_make(4, (int64_t[]){ 4, 3, 9, 3 });
    expect_error("Conv", NULL, 0, in, 2, "larger than the padded input");
    in[1].shape = gr_shape_make(4, (int64_t[]){ 4, 3, 3, 3 });
    in[1].dtype = GR_F64;
    expect_error("Conv", NULL, 0, in, 2, "float64");
    in[1].dtype = GR_F32;
    in[0].dtype = GR_I64;
    expect_error("Conv", NULL, 0, in, 2, "int64");
    in[0] = f32(2, (int64_t[]){ 1, 3 }, x);
    in[1].shape = gr_shape_make(2, (int64_t[]){ 4, 3 });
    expect_error("Conv", NULL, 0, in, 2, "rank");
    in[0] = f32(6, (int64_t[]){ 1, 3, 2, 2, 2, 2 }, x);
    in[1].shape = gr_shape_make(6, (int64_t[]){ 4, 3, 1, 1, 1, 1 });
    expect_error("Conv", NULL, 0, in, 2, "spatial axes");
    /* ConvTranspose with pads larger than its output */
    in[0] = f32(4, xd, x);
    in[1].shape = gr_shape_make(4, (int64_t[]){ 3, 2, 3, 3 });
    int64_t big[4] = { 5, 0, 5, 0 };
    gr_attr a9[1] = { ints("pads", 4, big) };
    expect_error("ConvTranspose", a9, 1, in, 2, "would have size");
    int64_t os0[2] = { 0, 5 };
    gr_attr a10[1] = { ints("output_shape", 2, os0) };
    expect_error("ConvTranspose", a10, 1, in, 2, "output_shape");
}

int main(void)
{
    test_known_values();
    test_dnnl_vs_ref();
    test_fused_and_f64();
    test_flops();
    test_errors();
    return th_finish();
}
