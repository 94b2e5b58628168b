/* test_grad_shape.c — backward of the data-movement ops (shape.c) and of Pad and Resize
 * (resize.c). Oracle: central finite differences of each op's own forward (tests/gradcheck.h):
 * Reshape, Flatten, Squeeze, Unsqueeze, Identity, Transpose (small and tiled), Concat, Split
 * (with an output that gets no gradient), Slice (steps, negative steps, axes, clamping), Expand,
 * Tile, Gather and GatherElements with repeated and negative indices, DepthToSpace (DCR, CRD),
 * SpaceToDepth, Pad (constant with a crop, reflect, edge, wrap), Resize (nearest, linear, cubic,
 * several coordinate modes, up and down) and Upsample. Dropout: in training the kept fraction
 * of a big tensor is within bounds, kept values are scaled by 1/(1-ratio), the mask output
 * matches, backward applies the same mask, different draws differ; in inference it is the
 * identity, forward and backward. */
#include "gradcheck.h"

#include <stdlib.h>
#include <string.h>

#define MAXBUF 4096
static void *bufs[MAXBUF];
static int nbufs;

static void *keep(void *p)
{
    if (nbufs < MAXBUF) bufs[nbufs++] = p;
    return p;
}

static gr_shape shp(int rank, const int64_t *d) { return gr_shape_make(rank, d); }
#define S(...)                                                                                     \
    shp((int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), (int64_t[]){ __VA_ARGS__ })
#define S0 shp(0, NULL)

static gr_tensor uni(gr_shape s, uint64_t seed)
{
    int64_t n = gr_numel(&s);
    float *p = keep(malloc((size_t)n * sizeof(float) + 4));
    gc_fill(p, n, seed, -1, 1);
    return (gr_tensor){ .dtype = GR_F32, .shape = s, .data = p };
}

/* An int64 vector (shapes, axes, indices). */
static gr_tensor i64(int n, const int64_t *v)
{
    int64_t *p = keep(malloc((size_t)n * sizeof(int64_t) + 8));
    memcpy(p, v, (size_t)n * sizeof(int64_t));
    return (gr_tensor){ .dtype = GR_I64, .shape = { 1, { n } }, .data = p };
}
#define I64(...)                                                                                   \
    i64((int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), (int64_t[]){ __VA_ARGS__ })

static gr_tensor f32v(int n, const float *v)
{
    float *p = keep(malloc((size_t)n * sizeof(float) + 4));
    memcpy(p, v, (size_t)n * sizeof(float));
    return (gr_tensor){ .dtype = GR_F32, .shape = { 1, { n } }, .data = p };
}
#define F32V(...)                                                                                  \
    f32v((int)(sizeof((float[]){ __VA_ARGS__ }) / sizeof(float)), (float[]){ __VA_ARGS__ })

/* One case: input 0 gets the gradient; the others are constants. */
static void one(const char *op, int opset, const gr_attr *a, int na, int nin, const gr_tensor *ins,
                int nout, const char *what)
{
    gc_case k = { .op = op,
                  .opset = opset,
                  .attrs = a,
                  .nattr = na,
                  .nin = nin,
                  .ins = ins,
                  .nout = nout,
                  .need = 1 };
    gc_check(&k, what);
}

static void test_copies(void)
{
    gr_tensor in[2] = { uni(S(2, 3, 4), 1), I64(4, -1) };
    one("Reshape", 14, NULL, 0, 2, in, 1, "Reshape (2,3,4) to (4,6)");
    gr_attr ax = ival("axis", 2);
    one("Flatten", 13, &ax, 1, 1, in, 1, "Flatten axis 2");
    gr_tensor sq[2] = { uni(S(2, 1, 3, 1), 2), I64(1, 3) };
    one("Squeeze", 13, NULL, 0, 2, sq, 1, "Squeeze axes (1, 3)");
    gr_tensor us[2] = { uni(S(3, 2), 3), I64(0, -1) };
    one("Unsqueeze", 13, NULL, 0, 2, us, 1, "Unsqueeze axes (0, -1)");
    one("Identity", 16, NULL, 0, 1, in, 1, "Identity");
}

static void test_permutes(void)
{
    int64_t p[3] = { 2, 0, 1 };
    gr_attr perm = ints("perm", 3, p);
    gr_tensor x = uni(S(2, 3, 5), 10);
    one("Transpose", 13, &perm, 1, 1, &x, 1, "Transpose (2,0,1)");
    one("Transpose", 13, NULL, 0, 1, &x, 1, "Transpose, default reversed axes");
    int64_t p2[2] = { 1, 0 };
    gr_attr perm2 = ints("perm", 2, p2);
    gr_tensor big = uni(S(67, 75), 11);
    one("Transpose", 13, &perm2, 1, 1, &big, 1, "Transpose (67,75), the tiled path");
    gr_tensor d2s = uni(S(2, 8, 2, 3), 12);
    gr_attr a[2] = { ival("blocksize", 2), sval("mode", "DCR") };
    one("DepthToSpace", 13, a, 2, 1, &d2s, 1, "DepthToSpace DCR");
    a[1] = sval("mode", "CRD");
    one("DepthToSpace", 13, a, 2, 1, &d2s, 1, "DepthToSpace CRD");
    gr_tensor s2d = uni(S(2, 2, 4, 6), 13);
    one("SpaceToDepth", 13, a, 1, 1, &s2d, 1, "SpaceToDepth blocksize 2");
}

static void test_concat_split(void)
{
    gr_tensor in[3] = { uni(S(2, 1, 3), 20), uni(S(2, 3, 3), 21), uni(S(2, 2, 3), 22) };
    gr_attr ax = ival("axis", 1);
    gc_case k = { .op = "Concat",
                  .opset = 13,
                  .attrs = &ax,
                  .nattr = 1,
                  .nin = 3,
                  .ins = in,
                  .nout = 1,
                  .need = 7 };
    gc_check(&k, "Concat of three along axis 1");
    k.need = 5;
    gc_check(&k, "Concat, gradients of inputs 0 and 2 only");
    gr_attr ax0 = ival("axis", -1);
    k.attrs = &ax0;
    gr_tensor in2[2] = { uni(S(2, 3, 2), 23), uni(S(2, 3, 5), 24) };
    k.ins = in2, k.nin = 2, k.need = 3;
    gc_check(&k, "Concat along the last axis");

    gr_tensor sp[2] = { uni(S(2, 6, 3), 25), I64(1, 3, 2) };
    gc_case ks = { .op = "Split",
                   .opset = 13,
                   .attrs = &ax,
                   .nattr = 1,
                   .nin = 2,
                   .ins = sp,
                   .nout = 3,
                   .need = 1 };
    gc_check(&ks, "Split (1,3,2) along axis 1");
    ks.out_mask = 5;
    gc_check(&ks, "Split, no gradient reaches output 1");
    ks.out_mask = 0;
    ks.nin = 1;
    ks.nout = 2;
    gc_check(&ks, "Split in two equal parts");
}

static void test_slice(void)
{
    gr_tensor x = uni(S(5, 6, 7), 30);
    struct {
        gr_tensor st, en, ax, sp;
        const char *what;
    } c[] = {
        { I64(1, 0), I64(4, 5), I64(0, 2), I64(1, 2), "steps 1 and 2" },
        { I64(-1, 5), I64(-6, 0), I64(1, 2), I64(-1, -2), "negative steps" },
        { I64(-100), I64(100), I64(1), I64(3), "clamped, step 3" },
        { I64(2, 1, 0), I64(3, 6, 7), I64(0, 1, 2), I64(1, 1, 1), "one row" },
    };
    gr_tensor big[5] = { uni(S(70, 80, 30), 31), I64(1), I64(80), I64(1), I64(2) };
    one("Slice", 13, NULL, 0, 5, big, 1, "Slice (70,80,30) every other row of axis 1, threaded");
    for (int i = 0; i < 4; i++) {
        gr_tensor in[5] = { x, c[i].st, c[i].en, c[i].ax, c[i].sp };
        char what[96];
        snprintf(what, sizeof what, "Slice %s", c[i].what);
        one("Slice", 13, NULL, 0, 5, in, 1, what);
    }
}

static void test_expand_tile(void)
{
    struct {
        gr_shape x;
        gr_tensor s;
        const char *what;
    } e[] = {
        { S(3, 1), I64(2, 3, 4), "(3,1) to (2,3,4)" },
        { S(4), I64(2, 3, 4), "(4,) to (2,3,4)" },
        { S(1, 1), I64(5, 6), "(1,1) to (5,6)" },
        { S(2, 1, 3), I64(1, 4, 1), "(2,1,3) with (1,4,1)" },
    };
    for (int i = 0; i < 4; i++) {
        gr_tensor in[2] = { uni(e[i].x, 40 + (uint64_t)i), e[i].s };
        char what[96];
        snprintf(what, sizeof what, "Expand %s", e[i].what);
        one("Expand", 13, NULL, 0, 2, in, 1, what);
    }
    gr_tensor t1[2] = { uni(S(2, 3), 45), I64(2, 1) };
    one("Tile", 13, NULL, 0, 2, t1, 1, "Tile (2,3) by (2,1)");
    gr_tensor t2[2] = { uni(S(2, 3, 1), 46), I64(3, 2, 4) };
    one("Tile", 13, NULL, 0, 2, t2, 1, "Tile (2,3,1) by (3,2,4)");
}

static void test_gather(void)
{
    gr_tensor g0[2] = { uni(S(4, 3), 50), I64(2, 0, 2, -1, 2) };
    one("Gather", 13, NULL, 0, 2, g0, 1, "Gather axis 0, repeated and negative indices");
    gr_attr ax1 = ival("axis", 1);
    gr_tensor idx = I64(4, 0, 4, 4);
    idx.shape = S(2, 2);
    gr_tensor g1[2] = { uni(S(2, 5, 3), 51), idx };
    one("Gather", 13, &ax1, 1, 2, g1, 1, "Gather axis 1, (2,2) indices");
    int64_t many[120];
    for (int i = 0; i < 120; i++)
        many[i] = (i * 37) % 300 - (i % 3 == 0 ? 300 : 0); /* repeats, negatives */
    gr_tensor big[2] = { uni(S(8, 300, 40), 52), i64(120, many) };
    one("Gather", 13, &ax1, 1, 2, big, 1, "Gather axis 1 on (8,300,40) with 120 indices, threaded");
    gr_tensor ge = I64(3, 0, 0, 1, 1, 2, 2, 2, 0, 3, -1, 1, -4, 0, 0);
    ge.shape = S(3, 5);
    gr_tensor e1[2] = { uni(S(3, 4), 53), ge };
    one("GatherElements", 13, &ax1, 1, 2, e1, 1, "GatherElements axis 1");
    gr_attr ax0 = ival("axis", 0);
    gr_tensor ge0 = I64(2, 0, 1, 2, 1, 0, 0, 2);
    ge0.shape = S(2, 4);
    gr_tensor e0[2] = { uni(S(3, 4), 54), ge0 };
    one("GatherElements", 13, &ax0, 1, 2, e0, 1, "GatherElements axis 0");
}

static void test_pad(void)
{
    gr_tensor x = uni(S(3, 4, 5), 60);
    struct {
        const char *mode;
        gr_tensor pads;
        int opset;
        const char *what;
    } c[] = {
        { "constant", I64(1, 0, 2, 0, 2, 1), 13, "constant" },
        { "constant", I64(0, -1, 2, 1, 1, -2), 13, "constant with a crop" },
        { "reflect", I64(1, 2, 3, 2, 3, 4), 13, "reflect" },
        { "edge", I64(2, 0, 6, 0, 3, 7), 13, "edge" },
        { "wrap", I64(1, 3, 2, 2, 1, 9), 19, "wrap" },
    };
    for (int i = 0; i < 5; i++) {
        gr_attr m = sval("mode", c[i].mode);
        gr_tensor in[2] = { x, c[i].pads };
        char what[96];
        snprintf(what, sizeof what, "Pad %s", c[i].what);
        one("Pad", c[i].opset, &m, 1, 2, in, 1, what);
    }
    gr_attr mc = sval("mode", "constant");
    gr_tensor bigp[2] = { uni(S(4, 16, 30, 30), 61), I64(0, 0, 1, 1, 0, 0, 1, 1) };
    one("Pad", 13, &mc, 1, 2, bigp, 1, "Pad constant on (4,16,30,30), threaded");
    int64_t p2[6] = { 0, 1, 2, 1, 0, 1 };
    gr_attr a2[2] = { ints("pads", 6, p2), sval("mode", "reflect") };
    one("Pad", 2, a2, 2, 1, &x, 1, "Pad-2 reflect (pads attribute)");
    float v = 3;
    gr_tensor in[3] = { x, I64(1, 0, 2, 0, 2, 1), { .dtype = GR_F32, .shape = S0, .data = &v } };
    gc_case k = { .op = "Pad", .opset = 13, .nin = 3, .ins = in, .nout = 1, .need = 5 };
    gc_node n;
    CHECK(gc_prepare(&n, &k, in) != GRAFT_OK, "Pad refuses a gradient for constant_value");
    gc_free(&n);
}

static void test_resize(void)
{
    gr_tensor x = uni(S(1, 2, 3, 4), 70), none = { 0 };
    struct {
        const char *mode, *ctm, *nm;
        gr_tensor scales, sizes;
        const char *what;
    } c[] = {
        { "nearest", "asymmetric", "floor", F32V(1, 1, 2, 2), none, "nearest x2" },
        { "nearest", "half_pixel", "round_prefer_ceil", F32V(1, 1, 1.7f, 0.6f), none,
          "nearest up and down" },
        { "linear", "half_pixel", NULL, F32V(1, 1, 1.5f, 0.75f), none, "linear half_pixel" },
        { "linear", "align_corners", NULL, none, I64(1, 2, 5, 7), "linear align_corners sizes" },
        { "linear", "pytorch_half_pixel", NULL, F32V(1, 1, 2, 2), none,
          "linear pytorch_half_pixel x2" },
        { "cubic", "half_pixel", NULL, F32V(1, 1, 2, 0.5f), none, "cubic" },
        { "linear", "asymmetric", NULL, F32V(1, 2, 1, 1), none, "linear along channels" },
    };
    for (int i = 0; i < 7; i++) {
        gr_attr a[3] = { sval("mode", c[i].mode), sval("coordinate_transformation_mode", c[i].ctm),
                         sval("nearest_mode", c[i].nm ? c[i].nm : "round_prefer_floor") };
        gr_tensor in[4] = { x, none, c[i].scales, c[i].sizes };
        int nin = c[i].sizes.dtype ? 4 : 3;
        char what[96];
        snprintf(what, sizeof what, "Resize %s", c[i].what);
        one("Resize", 13, a, 3, nin, in, 1, what);
    }
    gr_attr m = sval("mode", "nearest");
    gr_tensor up[2] = { uni(S(2, 3, 5, 2), 71), F32V(1, 1, 2, 3) };
    one("Upsample", 9, &m, 1, 2, up, 1, "Upsample-9 nearest");
    gr_tensor big[3] = { uni(S(4, 16, 24, 24), 72), none, F32V(1, 1, 2, 2) };
    gr_attr lin = sval("mode", "linear");
    one("Resize", 13, &lin, 1, 3, big, 1, "Resize linear x2 on (4,16,24,24), threaded");
}

/* ---- Dropout ---- */

static void test_dropout(void)
{
    int64_t m = 200003;
    gr_tensor x = uni(S(m), 80);
    float ratio = 0.3f;
    gr_tensor ins[2] = { x, { .dtype = GR_F32, .shape = S0, .data = &ratio } };
    gc_case k = {
        .op = "Dropout", .opset = 13, .nin = 2, .ins = ins, .nout = 2, .need = 1, .training = 1
    };
    gc_node n;
    int st = gc_prepare(&n, &k, ins);
    CHECK(st == GRAFT_OK, "Dropout prepare in training: %s", graft_last_error());
    if (st) return;
    n.op->forward(&n.c);
    const float *xv = x.data, *y = n.out[0].data;
    const uint8_t *mask = n.out[1].data;
    CHECK(n.out[1].dtype == GR_BOOL, "the mask output is bool");
    int64_t kept = 0, bad = 0;
    for (int64_t i = 0; i < m; i++) {
        kept += mask[i];
        float want = mask[i] ? xv[i] / 0.7f : 0.0f;
        if (fabsf(y[i] - want) > 1e-6f * (1 + fabsf(want))) bad++;
    }
    double frac = (double)kept / (double)m; /* 0.7 +- 0.001 (1 sigma); 10 sigma allowed */
    CHECK(fabs(frac - 0.7) < 0.01, "kept fraction %.4f for ratio 0.3", frac);
    CHECK(bad == 0, "%lld outputs are not x / (1 - ratio) where kept and 0 elsewhere",
          (long long)bad);
    /* backward with the same mask */
    float *dy = keep(malloc((size_t)m * sizeof(float))),
          *dx = keep(malloc((size_t)m * sizeof(float)));
    gc_fill(dy, m, 81, -1, 1);
    gr_tensor dyt = n.out[0], dxt = n.in[0], *pdy[2] = { &dyt, NULL }, *pdx[2] = { &dxt, NULL };
    dyt.data = dy, dxt.data = dx;
    n.op->backward(&n.c, pdy, pdx);
    bad = 0;
    for (int64_t i = 0; i < m; i++) {
        float want = mask[i] ? dy[i] / 0.7f : 0.0f;
        if (fabsf(dx[i] - want) > 1e-6f * (1 + fabsf(want))) bad++;
    }
    CHECK(bad == 0, "%lld gradients disagree with the forward's mask", (long long)bad);
    /* a second forward draws another mask */
    uint8_t *first = keep(malloc((size_t)m));
    memcpy(first, mask, (size_t)m);
    n.op->forward(&n.c);
    int64_t same = 0;
    for (int64_t i = 0; i < m; i++) same += first[i] == mask[i];
    CHECK(same < m * 0.7, "a second draw gives another mask (%lld of %lld agree)", (long long)same,
          (long long)m);
    gc_free(&n);

    /* finite differences with a fixed mask (the checker reseeds c->rng before each forward) */
    gr_tensor small[2] = { uni(S(3, 7, 5), 82), { .dtype = GR_F32, .shape = S0, .data = &ratio } };
    gc_case ks = {
        .op = "Dropout", .opset = 13, .nin = 2, .ins = small, .nout = 2, .need = 1, .training = 1
    };
    gc_check(&ks, "Dropout-13 training, ratio input");
    gr_attr ra = { .name = "ratio", .type = GR_AT_FLOAT, .f = 0.6f };
    gc_case k7 = { .op = "Dropout",
                   .opset = 7,
                   .attrs = &ra,
                   .nattr = 1,
                   .nin = 1,
                   .ins = small,
                   .nout = 1,
                   .need = 1,
                   .training = 1 };
    gc_check(&k7, "Dropout-7 training, ratio attribute");
    ks.nin = 1;
    gc_check(&ks, "Dropout-13 training, default ratio 0.5");
    /* training ignores the model's training_mode input */
    uint8_t no = 0;
    gr_tensor tm[3] = { small[0], small[1], { .dtype = GR_BOOL, .shape = S0, .data = &no } };
    ks.ins = tm, ks.nin = 3;
    CHECK(gc_prepare(&n, &ks, tm) == GRAFT_OK, "training with training_mode=false: %s",
          graft_last_error());
    n.op->forward(&n.c);
    int64_t zeros = 0, ns = gr_numel(&small[0].shape);
    for (int64_t i = 0; i < ns; i++) zeros += ((const float *)n.out[0].data)[i] == 0;
    CHECK(zeros > 0, "the engine's training mode wins over training_mode=false (%lld dropped)",
          (long long)zeros);
    gc_free(&n);

    /* inference: identity forward and backward */
    gc_case ki = {
        .op = "Dropout", .opset = 13, .nin = 2, .ins = small, .nout = 2, .need = 1, .training = 0
    };
    CHECK(gc_prepare(&n, &ki, small) == GRAFT_OK, "inference: %s", graft_last_error());
    n.op->forward(&n.c);
    th_close(n.out[0].data, small[0].data, (long)ns, 0, 0, "inference Dropout is the identity");
    float dyi[105], dxi[105];
    gc_fill(dyi, ns, 83, -1, 1);
    gr_tensor a = n.out[0], b = n.in[0], *pa[2] = { &a, NULL }, *pb[2] = { &b, NULL };
    a.data = dyi, b.data = dxi;
    n.op->backward(&n.c, pa, pb);
    th_close(dxi, dyi, (long)ns, 0, 0, "inference Dropout backward is the identity");
    gc_free(&n);
    gc_check(&ki, "Dropout inference");
}

/* GradientReversal (graft's domain): forward the identity, backward -coeff * dY, its whole
 * point being that this is not the forward's derivative, so its oracle is the closed form (as
 * TLlib's GradientReverseFunction: grad.neg() * coeff) rather than finite differences. */
static void test_gradient_reversal(void)
{
    float coeff = 0.37f;
    gr_tensor in[2] = { uni(S(4, 6), 11), { .dtype = GR_F32, .shape = S(1), .data = &coeff } },
              dy = uni(S(4, 6), 12), dx = uni(S(4, 6), 13);
    or_node n;
    int st = or_run(
        &n,
        &(or_spec){ .op = "GradientReversal", .nin = 2, .ins = in, .training = 1, .need_grad = 1 });
    CHECK(st == GRAFT_OK, "GradientReversal prepare: %s", graft_last_error());
    if (st) return;
    CHECK(!strcmp(gr_op_domain(n.def), GR_DOMAIN_GRAFT), "in graft's domain");
    const float *x = in[0].data, *y = n.out[0].data, *g = dy.data;
    int bad = 0;
    for (int i = 0; i < 24; i++) bad += y[i] != x[i];
    CHECK(!bad, "forward is the identity (%d differ)", bad);
    coeff = -1.5f; /* read when backward runs: a schedule changes it between steps */
    gr_tensor *dout[1] = { &dy }, *din[2] = { &dx, NULL };
    or_backward(&n, dout, din);
    for (int i = 0; i < 24; i++) bad += ((float *)dx.data)[i] != 1.5f * g[i];
    CHECK(!bad, "backward is -coeff * dY (%d differ)", bad);
    or_cover("GradientReversal");
    or_free(&n);
    in[0].data = NULL; /* a coeff that is not one value is refused */
    gr_tensor two = { .dtype = GR_F32, .shape = S(2), .data = dx.data };
    in[1] = two;
    in[0] = uni(S(4, 6), 11);
    CHECK(or_run(&n, &(or_spec){ .op = "GradientReversal", .nin = 2, .ins = in }) != GRAFT_OK &&
              strstr(graft_last_error(), "one value"),
          "two-value coeff: %s", graft_last_error());
    or_free(&n);
}

static void test_errors(void)
{
    int64_t iv[6] = { 1, 2, 3, 4, 5, 6 };
    gr_tensor in[2] = { { .dtype = GR_I64, .shape = S(2, 3), .data = iv }, I64(2, 1) };
    gc_case k = { .op = "Tile", .opset = 13, .nin = 2, .ins = in, .nout = 1, .need = 1 };
    gc_node n;
    CHECK(gc_prepare(&n, &k, in) != GRAFT_OK && strstr(graft_last_error(), "float32"),
          "int64 Tile backward: %s", graft_last_error());
    gc_free(&n);
}

int main(void)
{
    test_copies();
    test_permutes();
    test_concat_split();
    test_slice();
    test_expand_tile();
    test_gather();
    test_pad();
    test_resize();
    test_dropout();
    test_gradient_reversal();
    test_errors();
    for (int i = 0; i < nbufs; i++) free(bufs[i]);
    return th_finish();
}
