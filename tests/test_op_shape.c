/* test_op_shape.c — the data-movement ops of shape.c, run through their op table entries:
 * closed forms (Reshape with 0 and -1, Slice with negative steps and clamping, Split sizes,
 * Squeeze/Unsqueeze by opset, Shape start/end), Transpose / Tile / Expand / DepthToSpace against
 * naive index arithmetic on odd shapes and several dtypes (including the tiled transpose path
 * on shapes large enough to run threaded), and the errors that bad inputs must give. */
#include "harness.h"
#include "oprun.h"

#include "ops/ops.h"

#include <string.h>

/* ---- nodes run through oprun.h ---- */

#define MAXIO 8

typedef or_node node; /* oprun.h */

/* Prepares op (a tensor with dtype 0 is an absent optional input; inputs whose bit is set in
 * `hidden` are unknown at plan time) with the reference kernels; on success runs forward. */
static int run(node *n, const char *op, int opset, const gr_attr *attrs, int nattr, int nin,
               const gr_tensor *ins, unsigned hidden, int nout)
{
    return or_run(n, &(or_spec){ .op = op,
                                 .opset = opset,
                                 .attrs = attrs,
                                 .nattr = nattr,
                                 .nin = nin,
                                 .ins = ins,
                                 .nout = nout,
                                 .hidden = hidden,
                                 .use_ref = 1 });
}

static gr_tensor ten(int dtype, const void *data, int rank, const int64_t *d)
{
    return (gr_tensor){ .dtype = dtype, .shape = gr_shape_make(rank, d), .data = (void *)data };
}
#define DIMS(...)                                                                                  \
    (int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), (int64_t[]) { __VA_ARGS__ }
#define I64(...)                                                                                   \
    ten(GR_I64, (int64_t[]){ __VA_ARGS__ }, 1,                                                     \
        (int64_t[]){ sizeof((int64_t[]){ __VA_ARGS__ }) / 8 })

static void iota(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)i;
}

static int same_i64(const int64_t *a, const int64_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---- */

static void test_reshape(void)
{
    node n;
    float x[24];
    iota(x, 24);
    gr_tensor in[2] = { ten(GR_F32, x, DIMS(2, 3, 4)), I64(0, -1) };
    CHECK(run(&n, "Reshape", 13, NULL, 0, 2, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2, 12)), "0 copies dim 0, -1 infers 12");
    th_close(n.out[0].data, x, 24, 0, 0, "reshape copies the data");
    or_free(&n);

    in[1] = I64(-1, 0, 2); /* 0 copies input dim 1 = 3 */
    CHECK(run(&n, "Reshape", 13, NULL, 0, 2, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(4, 3, 2)), "(-1, 0, 2) of (2, 3, 4) is (4, 3, 2)");
    or_free(&n);

    /* allowzero=1: 0 is a real zero (opset 14) */
    gr_tensor z[2] = { ten(GR_F32, x, DIMS(0, 3)), I64(3, 0) };
    gr_attr az = ival("allowzero", 1);
    CHECK(run(&n, "Reshape", 14, &az, 1, 2, z, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(3, 0)), "allowzero keeps the 0");
    or_free(&n);
    z[1] = I64(0, -1);
    CHECK(run(&n, "Reshape", 14, &az, 1, 2, z, 0, 1) == GRAFT_E_SHAPE,
          "allowzero with 0 and -1 is invalid");

    in[1] = I64(-1, -1);
    CHECK(run(&n, "Reshape", 13, NULL, 0, 2, in, 0, 1) == GRAFT_E_SHAPE, "two -1s");
    in[1] = I64(5, 5);
    CHECK(run(&n, "Reshape", 13, NULL, 0, 2, in, 0, 1) == GRAFT_E_SHAPE, "wrong element count");
    CHECK(strstr(graft_last_error(), "cannot reshape") != NULL, "message: %s", graft_last_error());
    in[1] = I64(6, 4);
    CHECK(run(&n, "Reshape", 13, NULL, 0, 2, in, 2, 1) == GRAFT_E_UNSUPPORTED,
          "a shape unknown at plan time");
    CHECK(strstr(graft_last_error(), "known when the model is planned") != NULL, "message: %s",
          graft_last_error());

    /* opset 1..4: the shape attribute */
    int64_t sh[2] = { 4, 6 };
    gr_attr as = ints("shape", 2, sh);
    CHECK(run(&n, "Reshape", 4, &as, 1, 1, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(4, 6)), "Reshape-1 shape attribute");
    or_free(&n);
}

static void test_flatten_squeeze(void)
{
    node n;
    float x[24];
    iota(x, 24);
    gr_tensor in[2] = { ten(GR_F32, x, DIMS(2, 3, 4)) };
    struct {
        int64_t axis, a, b;
    } fl[] = { { 0, 1, 24 }, { 1, 2, 12 }, { 3, 24, 1 }, { -1, 6, 4 }, { -3, 1, 24 } };
    for (int i = 0; i < 5; i++) {
        gr_attr a = ival("axis", fl[i].axis);
        CHECK(run(&n, "Flatten", 13, &a, 1, 1, in, 0, 1) == 0, "%s", graft_last_error());
        CHECK(shape_is(&n.out[0], DIMS(fl[i].a, fl[i].b)), "flatten axis %lld",
              (long long)fl[i].axis);
        or_free(&n);
    }
    gr_attr bad = ival("axis", 4);
    CHECK(run(&n, "Flatten", 13, &bad, 1, 1, in, 0, 1) == GRAFT_E_SHAPE,
          "flatten axis 4 of rank 3");

    /* Squeeze: opset 11 attribute, opset 13 input, and no axes at all */
    gr_tensor s[2] = { ten(GR_F32, x, DIMS(1, 3, 1, 8)), I64(-2) };
    int64_t ax[1] = { 0 };
    gr_attr aa = ints("axes", 1, ax);
    CHECK(run(&n, "Squeeze", 11, &aa, 1, 1, s, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(3, 1, 8)), "Squeeze-11 axes attribute");
    or_free(&n);
    CHECK(run(&n, "Squeeze", 13, NULL, 0, 2, s, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(1, 3, 8)), "Squeeze-13 axes input, negative axis");
    or_free(&n);
    CHECK(run(&n, "Squeeze", 13, NULL, 0, 1, s, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(3, 8)), "Squeeze without axes drops every 1");
    th_close(n.out[0].data, x, 24, 0, 0, "squeeze copies");
    or_free(&n);
    s[1] = I64(1);
    CHECK(run(&n, "Squeeze", 13, NULL, 0, 2, s, 0, 1) == GRAFT_E_SHAPE, "squeezing a dim of 3");

    /* Unsqueeze: axes index the output */
    gr_tensor u[2] = { ten(GR_F32, x, DIMS(2, 3, 4)), I64(3, 0) };
    CHECK(run(&n, "Unsqueeze", 13, NULL, 0, 2, u, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(1, 2, 3, 1, 4)), "Unsqueeze [3, 0]");
    or_free(&n);
    u[1] = I64(-1);
    CHECK(run(&n, "Unsqueeze", 13, NULL, 0, 2, u, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2, 3, 4, 1)), "Unsqueeze [-1]");
    or_free(&n);
    int64_t ax2[2] = { 1, 1 };
    gr_attr dup = ints("axes", 2, ax2);
    CHECK(run(&n, "Unsqueeze", 11, &dup, 1, 1, u, 0, 1) == GRAFT_E_SHAPE,
          "Unsqueeze duplicate axes");
    CHECK(run(&n, "Unsqueeze", 13, NULL, 0, 1, u, 0, 1) != 0, "Unsqueeze-13 needs axes");
}

/* ---- Transpose against naive index arithmetic ---- */

/* Naive transpose of a row-major tensor of element size esz. */
static void naive_transpose(char *y, const char *x, int r, const int64_t *d, const int *perm,
                            size_t esz)
{
    int64_t xst[8], n = 1, k = 1;
    for (int i = r - 1; i >= 0; i--) xst[i] = k, k *= d[i];
    for (int i = 0; i < r; i++) n *= d[i];
    for (int64_t o = 0; o < n; o++) {
        int64_t q = o, off = 0;
        for (int i = r - 1; i >= 0; i--) {
            int64_t od = d[perm[i]];
            off += (q % od) * xst[perm[i]];
            q /= od;
        }
        memcpy(y + o * (int64_t)esz, x + off * (int64_t)esz, esz);
    }
}

static int next_perm(int *p, int n)
{
    int i = n - 2;
    while (i >= 0 && p[i] > p[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (p[j] < p[i]) j--;
    int t = p[i];
    p[i] = p[j];
    p[j] = t;
    for (int a = i + 1, b = n - 1; a < b; a++, b--) t = p[a], p[a] = p[b], p[b] = t;
    return 1;
}

static void check_transpose(int r, const int64_t *d, const int *perm, int dtype, const char *what)
{
    size_t esz = gr_dtype_size(dtype);
    int64_t n = 1, p64[8];
    for (int i = 0; i < r; i++) n *= d[i], p64[i] = perm[i];
    unsigned char *x = malloc((size_t)n * esz), *want = malloc((size_t)n * esz);
    for (int64_t i = 0; i < n * (int64_t)esz; i++) x[i] = (unsigned char)(i * 131 + i / 7);
    naive_transpose((char *)want, (char *)x, r, d, perm, esz);
    gr_attr a = ints("perm", r, p64);
    gr_tensor in = ten(dtype, x, r, d);
    node nd;
    CHECK(run(&nd, "Transpose", 13, &a, 1, 1, &in, 0, 1) == 0, "%s", graft_last_error());
    int ok = 1;
    for (int i = 0; i < r; i++) ok &= nd.out[0].shape.d[i] == d[perm[i]];
    CHECK(ok && memcmp(nd.out[0].data, want, (size_t)n * esz) == 0,
          "%s: transpose (%d, %d, %d, %d...) differs", what, perm[0], perm[1], r > 2 ? perm[2] : -1,
          r > 3 ? perm[3] : -1);
    or_free(&nd);
    free(x);
    free(want);
}

static void test_transpose(void)
{
    int64_t d4[4] = { 3, 4, 5, 7 };
    int p[4] = { 0, 1, 2, 3 };
    int dtypes[3] = { GR_F32, GR_U8, GR_I64 };
    do
        for (int t = 0; t < 3; t++)
            check_transpose(4, d4, p, dtypes[t], "rank 4, every permutation");
    while (next_perm(p, 4));
    /* large enough for the tiled path and threads: 2-D, batched 2-D, an NCHW → NHWC */
    check_transpose(2, (int64_t[]){ 300, 517 }, (int[]){ 1, 0 }, GR_F32, "300x517 2-D");
    check_transpose(2, (int64_t[]){ 129, 65 }, (int[]){ 1, 0 }, GR_F64, "129x65 2-D f64");
    check_transpose(3, (int64_t[]){ 5, 70, 133 }, (int[]){ 0, 2, 1 }, GR_F32, "batched");
    check_transpose(4, (int64_t[]){ 2, 35, 31, 37 }, (int[]){ 0, 2, 3, 1 }, GR_F32, "NCHW to NHWC");
    check_transpose(4, (int64_t[]){ 2, 31, 37, 35 }, (int[]){ 0, 3, 1, 2 }, GR_U8,
                    "NHWC to NCHW u8");
    check_transpose(5, (int64_t[]){ 3, 1, 9, 1, 11 }, (int[]){ 4, 3, 2, 1, 0 }, GR_I32,
                    "unit dims");
    check_transpose(3, (int64_t[]){ 0, 4, 5 }, (int[]){ 2, 0, 1 }, GR_F32, "empty");

    /* default perm reverses the axes */
    float x[6] = { 1, 2, 3, 4, 5, 6 };
    gr_tensor in = ten(GR_F32, x, DIMS(2, 3));
    node n;
    CHECK(run(&n, "Transpose", 13, NULL, 0, 1, &in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(3, 2)), "default perm");
    th_close(n.out[0].data, (float[]){ 1, 4, 2, 5, 3, 6 }, 6, 0, 0, "default transpose");
    or_free(&n);
    int64_t bad[2] = { 0, 0 };
    gr_attr ab = ints("perm", 2, bad);
    CHECK(run(&n, "Transpose", 13, &ab, 1, 1, &in, 0, 1) == GRAFT_E_SHAPE, "perm (0, 0)");
}

/* ---- Concat, Split ---- */

static void test_concat_split(void)
{
    node n;
    float a[6] = { 1, 2, 3, 4, 5, 6 }, b[4] = { 7, 8, 9, 10 };
    gr_tensor in[2] = { ten(GR_F32, a, DIMS(2, 3)), ten(GR_F32, b, DIMS(2, 2)) };
    gr_attr ax = ival("axis", -1);
    CHECK(run(&n, "Concat", 13, &ax, 1, 2, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2, 5)), "concat along -1");
    th_close(n.out[0].data, (float[]){ 1, 2, 3, 7, 8, 4, 5, 6, 9, 10 }, 10, 0, 0, "concat values");
    or_free(&n);
    gr_attr ax0 = ival("axis", 0);
    CHECK(run(&n, "Concat", 13, &ax0, 1, 2, in, 0, 1) == GRAFT_E_SHAPE,
          "concat axis 0 with 3 vs 2 columns");
    int64_t i64[4] = { 1, 2, 3, 4 };
    in[1] = ten(GR_I64, i64, DIMS(2, 2));
    CHECK(run(&n, "Concat", 13, &ax, 1, 2, in, 0, 1) == GRAFT_E_SHAPE, "concat float with int64");

    /* Split-11 attribute, Split-13 input, Split-18 num_outputs with a short last part */
    float x[14];
    iota(x, 14);
    gr_tensor s[2] = { ten(GR_F32, x, DIMS(2, 7)), I64(2, 5) };
    int64_t sp[2] = { 2, 5 };
    gr_attr a11[2] = { ival("axis", 1), ints("split", 2, sp) };
    CHECK(run(&n, "Split", 11, a11, 2, 1, s, 0, 2) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2, 2)) && shape_is(&n.out[1], DIMS(2, 5)), "Split-11 shapes");
    th_close(n.out[0].data, (float[]){ 0, 1, 7, 8 }, 4, 0, 0, "Split-11 part 0");
    th_close(n.out[1].data, (float[]){ 2, 3, 4, 5, 6, 9, 10, 11, 12, 13 }, 10, 0, 0,
             "Split-11 part 1");
    or_free(&n);
    CHECK(run(&n, "Split", 13, a11, 1, 2, s, 0, 2) == 0, "%s", graft_last_error());
    th_close(n.out[1].data, (float[]){ 2, 3, 4, 5, 6, 9, 10, 11, 12, 13 }, 10, 0, 0,
             "Split-13 part 1");
    or_free(&n);
    gr_attr a18[2] = { ival("axis", 1), ival("num_outputs", 3) };
    CHECK(run(&n, "Split", 18, a18, 2, 1, s, 0, 3) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2, 3)) && shape_is(&n.out[2], DIMS(2, 1)),
          "Split-18 7 into 3, 3, 1");
    th_close(n.out[2].data, (float[]){ 6, 13 }, 2, 0, 0, "Split-18 last part");
    or_free(&n);
    CHECK(run(&n, "Split", 13, a11, 1, 1, s, 0, 3) == GRAFT_E_SHAPE,
          "7 does not split into 3 equal parts before 18");
    s[1] = I64(3, 3);
    CHECK(run(&n, "Split", 13, a11, 1, 2, s, 0, 2) == GRAFT_E_SHAPE,
          "split sizes that do not sum up");
}

/* ---- Slice ---- */

static void test_slice(void)
{
    node n;
    float x[10];
    iota(x, 10);
    gr_tensor in[5] = { ten(GR_F32, x, DIMS(10)), I64(8), I64(1), I64(0), I64(-2) };
    CHECK(run(&n, "Slice", 13, NULL, 0, 5, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(4)), "8:1:-2 takes 4");
    th_close(n.out[0].data, (float[]){ 8, 6, 4, 2 }, 4, 0, 0, "slice 8:1:-2");
    or_free(&n);
    /* reversal with clamped ends: start INT64_MAX → 9, end INT64_MIN → -1 */
    in[1] = I64(INT64_MAX), in[2] = I64(INT64_MIN), in[4] = I64(-1);
    CHECK(run(&n, "Slice", 13, NULL, 0, 5, in, 0, 1) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 9, 8, 7, 6, 5, 4, 3, 2, 1, 0 }, 10, 0, 0, "full reversal");
    or_free(&n);
    in[1] = I64(-3), in[2] = I64(1000), in[4] = I64(1);
    CHECK(run(&n, "Slice", 13, NULL, 0, 5, in, 0, 1) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 7, 8, 9 }, 3, 0, 0, "-3:1000");
    or_free(&n);
    in[1] = I64(5), in[2] = I64(2);
    CHECK(run(&n, "Slice", 13, NULL, 0, 5, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(0)), "5:2:1 is empty");
    or_free(&n);
    in[4] = I64(0);
    CHECK(run(&n, "Slice", 13, NULL, 0, 5, in, 0, 1) == GRAFT_E_SHAPE, "step 0");

    /* 2-D, axes out of order and negative, steps on both, against naive indexing */
    float y[7 * 9];
    iota(y, 63);
    gr_tensor in2[5] = { ten(GR_F32, y, DIMS(7, 9)), I64(-1, 1), I64(0, 7), I64(-1, 0),
                         I64(-3, 2) };
    /* axis -1 (cols): 8 down to 1 step -3 → 8, 5, 2; axis 0 (rows): 1 to 7 step 2 → 1, 3, 5 */
    CHECK(run(&n, "Slice", 13, NULL, 0, 5, in2, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(3, 3)), "2-D slice shape");
    float want[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) want[i * 3 + j] = y[(1 + 2 * i) * 9 + 8 - 3 * j];
    th_close(n.out[0].data, want, 9, 0, 0, "2-D slice values");
    or_free(&n);

    /* Slice-1..9: attributes, no steps; default axes */
    int64_t st[2] = { 1, -4 }, en[2] = { 3, 100 };
    gr_attr a[2] = { ints("starts", 2, st), ints("ends", 2, en) };
    CHECK(run(&n, "Slice", 9, a, 2, 1, in2, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2, 4)), "Slice-9 shape");
    th_close(n.out[0].data, (float[]){ 14, 15, 16, 17, 23, 24, 25, 26 }, 8, 0, 0, "Slice-9 values");
    or_free(&n);
}

/* ---- Expand, Tile, DepthToSpace, SpaceToDepth ---- */

static void test_expand_tile(void)
{
    node n;
    float x[6] = { 1, 2, 3, 4, 5, 6 };
    gr_tensor e[2] = { ten(GR_F32, x, DIMS(3, 1)), I64(2, 1, 6) };
    CHECK(run(&n, "Expand", 13, NULL, 0, 2, e, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2, 3, 6)), "expand (3,1) to (2,1,6)");
    float want[36];
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 6; j++) want[(b * 3 + i) * 6 + j] = x[i];
    th_close(n.out[0].data, want, 36, 0, 0, "expand values");
    or_free(&n);
    e[1] = I64(2, 2);
    CHECK(run(&n, "Expand", 13, NULL, 0, 2, e, 0, 1) == GRAFT_E_SHAPE,
          "(3,1) cannot broadcast to (2,2)");

    /* Tile (2, 3) by (3, 2) on int64 */
    int64_t xi[6] = { 1, 2, 3, 4, 5, 6 }, wi[36];
    gr_tensor t[2] = { ten(GR_I64, xi, DIMS(2, 3)), I64(3, 2) };
    CHECK(run(&n, "Tile", 13, NULL, 0, 2, t, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(6, 6)), "tile shape");
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) wi[i * 6 + j] = xi[(i % 2) * 3 + j % 3];
    CHECK(same_i64(n.out[0].data, wi, 36), "tile values");
    or_free(&n);
    /* a bigger Tile that runs threaded */
    float big[37 * 29], *bw = malloc(sizeof(float) * 37 * 29 * 12);
    iota(big, 37 * 29);
    gr_tensor tb[2] = { ten(GR_F32, big, DIMS(1, 37, 29)), I64(4, 1, 3) };
    CHECK(run(&n, "Tile", 13, NULL, 0, 2, tb, 0, 1) == 0, "%s", graft_last_error());
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 37; i++)
            for (int j = 0; j < 87; j++) bw[(r * 37 + i) * 87 + j] = big[i * 29 + j % 29];
    th_close(n.out[0].data, bw, 37 * 29 * 12, 0, 0, "big tile");
    or_free(&n);
    free(bw);
}

static void test_depth_space(void)
{
    node n, m;
    enum { N = 2, C = 12, H = 3, W = 5, B = 2, CQ = C / (B * B) };
    float x[N * C * H * W], want[N * C * H * W];
    iota(x, N * C * H * W);
    gr_tensor in = ten(GR_F32, x, DIMS(N, C, H, W));
    for (int crd = 0; crd <= 1; crd++) {
        gr_attr a[2] = { ival("blocksize", B), sval("mode", crd ? "CRD" : "DCR") };
        CHECK(run(&n, "DepthToSpace", 13, a, 2, 1, &in, 0, 1) == 0, "%s", graft_last_error());
        CHECK(shape_is(&n.out[0], DIMS(N, CQ, H * B, W * B)), "DepthToSpace shape");
        /* ONNX: DCR reads channel (i*B + j)*C' + c, CRD reads c*B*B + i*B + j */
        for (int b = 0; b < N; b++)
            for (int c = 0; c < CQ; c++)
                for (int h = 0; h < H * B; h++)
                    for (int w = 0; w < W * B; w++) {
                        int i = h % B, j = w % B,
                            ch = crd ? c * B * B + i * B + j : (i * B + j) * CQ + c;
                        want[((b * CQ + c) * H * B + h) * W * B + w] =
                            x[((b * C + ch) * H + h / B) * W + w / B];
                    }
        th_close(n.out[0].data, want, N * C * H * W, 0, 0,
                 crd ? "DepthToSpace CRD" : "DepthToSpace DCR");
        if (!crd) { /* SpaceToDepth undoes DCR DepthToSpace */
            gr_attr bs = ival("blocksize", B);
            CHECK(run(&m, "SpaceToDepth", 13, &bs, 1, 1, &n.out[0], 0, 1) == 0, "%s",
                  graft_last_error());
            CHECK(shape_is(&m.out[0], DIMS(N, C, H, W)), "SpaceToDepth shape");
            th_close(m.out[0].data, x, N * C * H * W, 0, 0, "SpaceToDepth inverts DCR");
            or_free(&m);
        }
        or_free(&n);
    }
    gr_attr a3 = ival("blocksize", 5);
    CHECK(run(&n, "DepthToSpace", 13, &a3, 1, 1, &in, 0, 1) == GRAFT_E_SHAPE,
          "12 channels and blocksize 5");
    gr_attr bad[2] = { ival("blocksize", 2), sval("mode", "XYZ") };
    CHECK(run(&n, "DepthToSpace", 13, bad, 2, 1, &in, 0, 1) == GRAFT_E_UNSUPPORTED, "unknown mode");
}

/* ---- Gather, GatherElements ---- */

static void test_gather(void)
{
    node n;
    float x[12];
    iota(x, 12); /* (3, 4) */
    int32_t idx[4] = { 3, -1, 0, -4 };
    gr_tensor in[2] = { ten(GR_F32, x, DIMS(3, 4)), ten(GR_I32, idx, DIMS(2, 2)) };
    gr_attr a1 = ival("axis", 1);
    CHECK(run(&n, "Gather", 13, &a1, 1, 2, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(3, 2, 2)), "gather axis 1 shape");
    th_close(n.out[0].data, (float[]){ 3, 3, 0, 0, 7, 7, 4, 4, 11, 11, 8, 8 }, 12, 0, 0,
             "gather axis 1, int32, negative");
    or_free(&n);
    int64_t one = -1;
    gr_tensor s[2] = { in[0], ten(GR_I64, &one, 0, NULL) };
    CHECK(run(&n, "Gather", 13, NULL, 0, 2, s, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], 1, (int64_t[]){ 4 }), "gather a scalar index drops the axis");
    th_close(n.out[0].data, (float[]){ 8, 9, 10, 11 }, 4, 0, 0, "gather row -1");
    or_free(&n);
    idx[0] = 4;
    CHECK(run(&n, "Gather", 13, &a1, 1, 2, in, 0, 1) == GRAFT_E_SHAPE,
          "constant index out of range");
    /* not known at plan time: an out-of-range index gives zeros */
    CHECK(run(&n, "Gather", 13, &a1, 1, 2, in, 2, 1) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 0, 3, 0, 0, 0, 7, 4, 4, 0, 11, 8, 8 }, 12, 0, 0,
             "runtime out-of-range index");
    or_free(&n);

    /* GatherElements: the ONNX examples */
    float d[4] = { 1, 2, 3, 4 };
    int64_t gi[4] = { 0, 0, 1, 0 };
    gr_tensor ge[2] = { ten(GR_F32, d, DIMS(2, 2)), ten(GR_I64, gi, DIMS(2, 2)) };
    CHECK(run(&n, "GatherElements", 13, &a1, 1, 2, ge, 0, 1) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 1, 1, 4, 3 }, 4, 0, 0, "GatherElements axis 1");
    or_free(&n);
    float d9[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    int32_t gi2[6] = { 1, 2, 0, 2, 0, -3 };
    gr_tensor ge2[2] = { ten(GR_F32, d9, DIMS(3, 3)), ten(GR_I32, gi2, DIMS(2, 3)) };
    CHECK(run(&n, "GatherElements", 13, NULL, 0, 2, ge2, 0, 1) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 4, 8, 3, 7, 2, 3 }, 6, 0, 0, "GatherElements axis 0");
    or_free(&n);
}

/* ---- Shape, Size, constants, Range, Identity, Dropout ---- */

static void test_shape_size(void)
{
    node n;
    gr_tensor in = ten(GR_F32, NULL, DIMS(2, 3, 4, 5)); /* Shape and Size never read the data */
    CHECK(or_find("Shape")->flags & GR_OPF_SHAPE_ONLY, "Shape is shape-only");
    CHECK(or_find("Size")->flags & GR_OPF_SHAPE_ONLY, "Size is shape-only");
    CHECK(run(&n, "Shape", 13, NULL, 0, 1, &in, 1, 1) == 0, "%s", graft_last_error());
    CHECK(n.out[0].dtype == GR_I64 && same_i64(n.out[0].data, (int64_t[]){ 2, 3, 4, 5 }, 4),
          "Shape");
    or_free(&n);
    struct {
        int64_t start, end;
        int has_end, n;
        int64_t v[4];
    } cs[] = { { 1, -1, 1, 2, { 3, 4 } },
               { -1, 0, 0, 1, { 5 } },
               { -10, 10, 1, 4, { 2, 3, 4, 5 } },
               { 3, 1, 1, 0, { 0 } } };
    for (int i = 0; i < 4; i++) {
        gr_attr a[2] = { ival("start", cs[i].start), ival("end", cs[i].end) };
        CHECK(run(&n, "Shape", 15, a, 1 + cs[i].has_end, 1, &in, 1, 1) == 0, "%s",
              graft_last_error());
        CHECK(shape_is(&n.out[0], 1, (int64_t[]){ cs[i].n }) &&
                  same_i64(n.out[0].data, cs[i].v, cs[i].n),
              "Shape start %lld end %lld", (long long)cs[i].start, (long long)cs[i].end);
        or_free(&n);
    }
    CHECK(run(&n, "Size", 13, NULL, 0, 1, &in, 1, 1) == 0, "%s", graft_last_error());
    CHECK(n.out[0].shape.rank == 0 && *(int64_t *)n.out[0].data == 120, "Size is a scalar 120");
    or_free(&n);
}

static void test_constants(void)
{
    node n;
    /* ConstantOfShape: default float 0, an int64 value, an empty shape (a scalar) */
    gr_tensor sh = I64(2, 3);
    CHECK(run(&n, "ConstantOfShape", 9, NULL, 0, 1, &sh, 0, 1) == 0, "%s", graft_last_error());
    CHECK(n.out[0].dtype == GR_F32 && shape_is(&n.out[0], DIMS(2, 3)), "default float zeros");
    th_close(n.out[0].data, (float[6]){ 0 }, 6, 0, 0, "zeros");
    or_free(&n);
    int64_t seven = 7;
    gr_attr v = { .name = "value",
                  .type = GR_AT_TENSOR,
                  .t = ten(GR_I64, &seven, 1, (int64_t[]){ 1 }) };
    CHECK(run(&n, "ConstantOfShape", 9, &v, 1, 1, &sh, 0, 1) == 0, "%s", graft_last_error());
    CHECK(n.out[0].dtype == GR_I64 && same_i64(n.out[0].data, (int64_t[]){ 7, 7, 7, 7, 7, 7 }, 6),
          "sevens");
    or_free(&n);
    gr_tensor empty = ten(GR_I64, &seven, 1, (int64_t[]){ 0 });
    CHECK(run(&n, "ConstantOfShape", 9, &v, 1, 1, &empty, 0, 1) == 0, "%s", graft_last_error());
    CHECK(n.out[0].shape.rank == 0 && *(int64_t *)n.out[0].data == 7, "empty shape gives a scalar");
    or_free(&n);
    CHECK(run(&n, "ConstantOfShape", 9, &v, 1, 1, &sh, 1, 1) == GRAFT_E_UNSUPPORTED,
          "shape unknown at plan time");

    /* Constant */
    float fv[3] = { 1.5f, -2, 3 };
    gr_attr cf = { .name = "value_floats", .type = GR_AT_FLOATS, .n = 3, .floats = fv };
    CHECK(run(&n, "Constant", 13, &cf, 1, 0, NULL, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(3)), "value_floats shape");
    th_close(n.out[0].data, fv, 3, 0, 0, "value_floats");
    or_free(&n);
    gr_attr ci = ival("value_int", -5);
    CHECK(run(&n, "Constant", 13, &ci, 1, 0, NULL, 0, 1) == 0, "%s", graft_last_error());
    CHECK(n.out[0].dtype == GR_I64 && n.out[0].shape.rank == 0 && *(int64_t *)n.out[0].data == -5,
          "value_int");
    or_free(&n);
    double dv[4] = { 1, 2, 3, 4 };
    gr_attr ct = { .name = "value", .type = GR_AT_TENSOR, .t = ten(GR_F64, dv, DIMS(2, 2)) };
    CHECK(run(&n, "Constant", 13, &ct, 1, 0, NULL, 0, 1) == 0, "%s", graft_last_error());
    CHECK(n.out[0].dtype == GR_F64 && memcmp(n.out[0].data, dv, sizeof dv) == 0, "tensor value");
    or_free(&n);
    gr_attr cs = sval("value_string", "x");
    CHECK(run(&n, "Constant", 13, &cs, 1, 0, NULL, 0, 1) == GRAFT_E_UNSUPPORTED,
          "string constants");
}

static void test_range(void)
{
    node n;
    float f[3] = { 3, 9, 3 };
    gr_tensor in[3] = { ten(GR_F32, &f[0], 0, NULL), ten(GR_F32, &f[1], 0, NULL),
                        ten(GR_F32, &f[2], 0, NULL) };
    CHECK(run(&n, "Range", 11, NULL, 0, 3, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2)), "range(3, 9, 3) has 2");
    th_close(n.out[0].data, (float[]){ 3, 6 }, 2, 0, 0, "range float");
    or_free(&n);
    f[2] = 0.25f;
    f[1] = 4;
    CHECK(run(&n, "Range", 11, NULL, 0, 3, in, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(4)), "range(3, 4, 0.25) has 4");
    or_free(&n);
    int32_t iv[3] = { 10, 4, -3 };
    gr_tensor ii[3] = { ten(GR_I32, &iv[0], 0, NULL), ten(GR_I32, &iv[1], 0, NULL),
                        ten(GR_I32, &iv[2], 0, NULL) };
    CHECK(run(&n, "Range", 11, NULL, 0, 3, ii, 0, 1) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2)) && ((int32_t *)n.out[0].data)[0] == 10 &&
              ((int32_t *)n.out[0].data)[1] == 7,
          "range int32 negative delta");
    or_free(&n);
    iv[1] = 20;
    CHECK(run(&n, "Range", 11, NULL, 0, 3, ii, 0, 1) == 0 && n.out[0].shape.d[0] == 0,
          "range going the wrong way is empty");
    or_free(&n);
    CHECK(run(&n, "Range", 11, NULL, 0, 3, ii, 2, 1) == GRAFT_E_UNSUPPORTED,
          "limit unknown at plan time");
}

static void test_identity_dropout(void)
{
    node n;
    float x[6] = { 1, -2, 3, -4, 5, -6 };
    gr_tensor in[3] = { ten(GR_F32, x, DIMS(2, 3)) };
    CHECK(run(&n, "Identity", 16, NULL, 0, 1, in, 0, 1) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, x, 6, 0, 0, "identity");
    or_free(&n);
    float ratio = 0.3f;
    unsigned char no = 0, yes = 1;
    in[1] = ten(GR_F32, &ratio, 0, NULL);
    in[2] = ten(GR_BOOL, &no, 0, NULL);
    CHECK(run(&n, "Dropout", 13, NULL, 0, 3, in, 0, 2) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, x, 6, 0, 0, "dropout in inference is the identity");
    const unsigned char *m = n.out[1].data;
    CHECK(n.out[1].dtype == GR_BOOL && m[0] == 1 && m[5] == 1, "mask is all true");
    or_free(&n);
    in[2] = ten(GR_BOOL, &yes, 0, NULL);
    CHECK(run(&n, "Dropout", 13, NULL, 0, 3, in, 0, 2) == GRAFT_E_UNSUPPORTED,
          "training_mode=true");
    CHECK(strstr(graft_last_error(), "training") != NULL, "message: %s", graft_last_error());
    CHECK(run(&n, "Dropout", 13, NULL, 0, 3, in, 4, 2) == GRAFT_E_UNSUPPORTED,
          "training_mode unknown at plan time");
    ratio = 0;
    CHECK(run(&n, "Dropout", 13, NULL, 0, 3, in, 0, 2) == 0, "training with ratio 0: %s",
          graft_last_error());
    th_close(n.out[0].data, x, 6, 0, 0, "training dropout with ratio 0 is the identity");
    or_free(&n);
    CHECK(run(&n, "Dropout", 13, NULL, 0, 3, in, 2, 2) == GRAFT_E_UNSUPPORTED,
          "training with an unknown ratio");
    gr_attr r = { .name = "ratio", .type = GR_AT_FLOAT, .f = 0.2f };
    CHECK(run(&n, "Dropout", 9, &r, 1, 1, in, 0, 2) == 0, "%s", graft_last_error());
    CHECK(n.out[1].dtype == GR_F32, "Dropout-9 mask has the input's type");
    th_close(n.out[1].data, (float[]){ 1, 1, 1, 1, 1, 1 }, 6, 0, 0, "Dropout-9 mask ones");
    or_free(&n);
}

int main(void)
{
    test_reshape();
    test_flatten_squeeze();
    test_transpose();
    test_concat_split();
    test_slice();
    test_expand_tile();
    test_depth_space();
    test_gather();
    test_shape_size();
    test_constants();
    test_range();
    test_identity_dropout();
    return th_finish();
}
