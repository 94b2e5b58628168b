/* test_op_resize.c — Resize, Upsample and Pad, run through their op table entries: closed forms
 * (nearest x2 repeats pixels, linear align_corners on a ramp is a ramp, linear on a ramp is the
 * ramp at the clamped coordinate, cubic keeps constants and, at whole coordinates, the input;
 * tf_crop_and_resize extrapolates outside the crop; antialias weights), the separable passes
 * against a direct 2-D bilinear sum on odd shapes large enough to run threaded, Pad's modes
 * against numpy.pad values, and the errors bad attributes must give. */
#include "harness.h"
#include "oprun.h"

#include "ops/ops.h"

#include <string.h>

/* ---- nodes run through oprun.h ---- */

#define MAXIO 5

typedef or_node node; /* oprun.h */

/* Prepares op (a tensor with dtype 0 is an absent optional input; inputs whose bit is set in
 * `hidden` are unknown at plan time) with the reference kernels; on success runs forward. */
static int run(node *n, const char *op, int opset, const gr_attr *attrs, int nattr, int nin,
               const gr_tensor *ins, unsigned hidden)
{
    return or_run(n, &(or_spec){ .op = op,
                                 .opset = opset,
                                 .attrs = attrs,
                                 .nattr = nattr,
                                 .nin = nin,
                                 .ins = ins,
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
#define F32(...)                                                                                   \
    ten(GR_F32, (float[]){ __VA_ARGS__ }, 1, (int64_t[]){ sizeof((float[]){ __VA_ARGS__ }) / 4 })
static const gr_tensor NONE = { 0 };

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- nearest ---- */

static void test_nearest(void)
{
    node n;
    /* x2 (and x3 along W with Upsample) repeats pixels, for several dtypes */
    float x[6] = { 1, 2, 3, 4, 5, 6 };
    gr_tensor in[4] = { ten(GR_F32, x, DIMS(1, 1, 2, 3)), NONE, F32(1, 1, 2, 2) };
    CHECK(run(&n, "Resize", 13, NULL, 0, 3, in, 0) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(1, 1, 4, 6)), "x2 shape");
    float want[24];
    for (int h = 0; h < 4; h++)
        for (int w = 0; w < 6; w++) want[h * 6 + w] = x[(h / 2) * 3 + w / 2];
    th_close(n.out[0].data, want, 24, 0, 0, "nearest x2 (half_pixel, round_prefer_floor)");
    or_free(&n);
    int64_t xi[6] = { 10, -20, 30, 40, 50, 1LL << 40 };
    gr_tensor ini[4] = { ten(GR_I64, xi, DIMS(1, 1, 2, 3)), NONE, F32(1, 1, 2, 2) };
    gr_attr asym[2] = { sval("coordinate_transformation_mode", "asymmetric"),
                        sval("nearest_mode", "floor") };
    CHECK(run(&n, "Resize", 13, asym, 2, 3, ini, 0) == 0, "%s", graft_last_error());
    int ok = 1;
    for (int h = 0; h < 4; h++)
        for (int w = 0; w < 6; w++)
            ok &= ((int64_t *)n.out[0].data)[h * 6 + w] == xi[(h / 2) * 3 + w / 2];
    CHECK(ok, "nearest x2 on int64 (asymmetric, floor)");
    or_free(&n);

    /* Upsample-9 (scales input) and Upsample-7 (attribute): the ONNX example, x2 rows x3 cols */
    float u[4] = { 1, 2, 3, 4 };
    gr_tensor up[2] = { ten(GR_F32, u, DIMS(1, 1, 2, 2)), F32(1, 1, 2, 3) };
    float uw[24] = { 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4 };
    CHECK(run(&n, "Upsample", 9, NULL, 0, 2, up, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, uw, 24, 0, 0, "Upsample-9 nearest");
    or_free(&n);
    float sc[4] = { 1, 1, 2, 3 };
    gr_attr a7 = { .name = "scales", .type = GR_AT_FLOATS, .n = 4, .floats = sc };
    CHECK(run(&n, "Upsample", 7, &a7, 1, 1, up, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, uw, 24, 0, 0, "Upsample-7 nearest");
    or_free(&n);

    /* nearest modes on a 1-D downsample by 0.6 with asymmetric coordinates: x_ori = o / 0.6 */
    float r[5] = { 0, 1, 2, 3, 4 };
    gr_tensor rd[3] = { ten(GR_F32, r, DIMS(5)), NONE, F32(0.6f) };
    const char *modes[4] = { "floor", "ceil", "round_prefer_floor", "round_prefer_ceil" };
    /* o = 0, 1, 2 → 0, 1.667, 3.333 */
    float mw[4][3] = { { 0, 1, 3 }, { 0, 2, 4 }, { 0, 2, 3 }, { 0, 2, 3 } };
    for (int m = 0; m < 4; m++) {
        gr_attr a[2] = { sval("coordinate_transformation_mode", "asymmetric"),
                         sval("nearest_mode", modes[m]) };
        CHECK(run(&n, "Resize", 13, a, 2, 3, rd, 0) == 0, "%s", graft_last_error());
        th_close(n.out[0].data, mw[m], 3, 0, 0, modes[m]);
        or_free(&n);
    }
}

/* ---- linear ---- */

static void test_linear_closed_forms(void)
{
    node n;
    /* align_corners on a ramp reproduces the ramp: 4x5 → 7x9 */
    float x[20];
    for (int h = 0; h < 4; h++)
        for (int w = 0; w < 5; w++) x[h * 5 + w] = 2.0f * h + 3.0f * w + 1;
    gr_tensor in[4] = { ten(GR_F32, x, DIMS(1, 1, 4, 5)), NONE, NONE, I64(1, 1, 7, 9) };
    gr_attr a[2] = { sval("mode", "linear"),
                     sval("coordinate_transformation_mode", "align_corners") };
    CHECK(run(&n, "Resize", 13, a, 2, 4, in, 0) == 0, "%s", graft_last_error());
    float want[63];
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 9; j++)
            want[i * 9 + j] = 2.0f * (i * 3.0f / 6) + 3.0f * (j * 4.0f / 8) + 1;
    th_close(n.out[0].data, want, 63, 1e-6, 1e-5, "bilinear align_corners on a ramp");
    or_free(&n);

    /* half_pixel linear on a ramp = the ramp at the coordinate clamped to [0, in-1] (f64) */
    double r[4] = { 0, 1, 2, 3 }, rw[7];
    gr_tensor rd[3] = { ten(GR_F64, r, DIMS(4)), NONE, F32(1.75f) };
    gr_attr lin = sval("mode", "linear");
    CHECK(run(&n, "Resize", 13, &lin, 1, 3, rd, 0) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(7)), "floor(4 * 1.75) = 7");
    int ok = 1;
    for (int o = 0; o < 7; o++) {
        rw[o] = clampd((o + 0.5) / 1.75 - 0.5, 0, 3);
        ok &= fabs(((double *)n.out[0].data)[o] - rw[o]) < 1e-12;
    }
    CHECK(ok, "linear half_pixel on a float64 ramp");
    or_free(&n);

    /* pytorch_half_pixel with an output of length 1 reads coordinate -0.5 → the first pixel */
    gr_tensor one[4] = { ten(GR_F64, r, DIMS(4)), NONE, NONE, I64(1) };
    gr_attr pt[2] = { sval("mode", "linear"),
                      sval("coordinate_transformation_mode", "pytorch_half_pixel") };
    CHECK(run(&n, "Resize", 13, pt, 2, 4, one, 0) == 0, "%s", graft_last_error());
    CHECK(((double *)n.out[0].data)[0] == 0, "pytorch_half_pixel to length 1: got %g",
          ((double *)n.out[0].data)[0]);
    or_free(&n);

    /* tf_crop_and_resize: roi [-0.5, 1.5] of a 4-ramp to 5 → x_ori = 1.5 o - 1.5 */
    float t[4] = { 0, 1, 2, 3 };
    gr_tensor tc[4] = { ten(GR_F32, t, DIMS(4)), F32(-0.5f, 1.5f), NONE, I64(5) };
    gr_attr ta[3] = { sval("mode", "linear"),
                      sval("coordinate_transformation_mode", "tf_crop_and_resize"),
                      fval("extrapolation_value", -7) };
    CHECK(run(&n, "Resize", 13, ta, 3, 4, tc, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ -7, 0, 1.5f, 3, -7 }, 5, 0, 1e-6, "tf_crop_and_resize");
    or_free(&n);
    ta[0] = sval("mode", "nearest");
    CHECK(run(&n, "Resize", 13, ta, 3, 4, tc, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ -7, 0, 1, 3, -7 }, 5, 0, 0, "tf_crop_and_resize nearest");
    or_free(&n);
    CHECK(run(&n, "Resize", 13, ta, 3, 4, tc, 2) == GRAFT_E_UNSUPPORTED,
          "roi unknown at plan time");
}

/* Direct (non-separable) bilinear half_pixel, as ONNX defines it, for comparing the passes. */
static double lin_coord(int64_t o, double scale, int64_t in, int64_t *i0, int64_t *i1)
{
    double x = (o + 0.5) / scale - 0.5, f = floor(x);
    *i0 = (int64_t)clampd(f, 0, (double)in - 1);
    *i1 = (int64_t)clampd(f + 1, 0, (double)in - 1);
    return x - f;
}

static void test_linear_vs_direct(void)
{
    enum { N = 2, C = 3, H = 37, W = 29 };
    int64_t OH = 50, OW = 61;
    float *x = malloc(sizeof(float) * N * C * H * W),
          *want = malloc(sizeof(float) * N * C * OH * OW);
    for (int i = 0; i < N * C * H * W; i++) x[i] = (float)((i * 7919) % 101) / 10.0f - 5;
    double sh = (double)OH / H, sw = (double)OW / W;
    for (int p = 0; p < N * C; p++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                int64_t h0, h1, w0, w1;
                double fy = lin_coord(i, sh, H, &h0, &h1), fx = lin_coord(j, sw, W, &w0, &w1);
                const float *q = x + p * H * W;
                want[(p * OH + i) * OW + j] =
                    (float)((1 - fy) * ((1 - fx) * q[h0 * W + w0] + fx * q[h0 * W + w1]) +
                            fy * ((1 - fx) * q[h1 * W + w0] + fx * q[h1 * W + w1]));
            }
    node n;
    gr_tensor in[4] = { ten(GR_F32, x, DIMS(N, C, H, W)), NONE, NONE, I64(N, C, OH, OW) };
    gr_attr lin = sval("mode", "linear");
    CHECK(run(&n, "Resize", 13, &lin, 1, 4, in, 0) == 0, "%s", graft_last_error());
    CHECK(n.c.flops > 0 && n.c.scratch_bytes > 0, "flops and scratch are set");
    th_close(n.out[0].data, want, N * C * OH * OW, 1e-5, 1e-5,
             "separable bilinear vs direct, 37x29 → 50x61");
    or_free(&n);
    free(x);
    free(want);
}

/* ---- cubic and antialias ---- */

static void test_cubic(void)
{
    node n;
    /* cubic keeps a constant (weights sum to 1), with and without exclude_outside */
    float k[30];
    for (int i = 0; i < 30; i++) k[i] = 2.5f;
    gr_tensor in[3] = { ten(GR_F32, k, DIMS(1, 1, 5, 6)), NONE, F32(1, 1, 1.7f, 0.6f) };
    for (int ex = 0; ex <= 1; ex++) {
        gr_attr a[3] = { sval("mode", "cubic"), ival("exclude_outside", ex),
                         fval("cubic_coeff_a", -0.5f) };
        CHECK(run(&n, "Resize", 13, a, 3, 3, in, 0) == 0, "%s", graft_last_error());
        CHECK(shape_is(&n.out[0], DIMS(1, 1, 8, 3)), "cubic shape");
        float w[24];
        for (int i = 0; i < 24; i++) w[i] = 2.5f;
        th_close(n.out[0].data, w, 24, 1e-6, 1e-6,
                 ex ? "cubic exclude_outside on a constant" : "cubic on a constant");
        or_free(&n);
    }
    /* asymmetric x2: even outputs sit on input pixels and reproduce them */
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)(i * i % 7) - 3;
    gr_tensor in2[3] = { ten(GR_F32, x, DIMS(3, 4)), NONE, F32(2, 2) };
    gr_attr a[2] = { sval("mode", "cubic"), sval("coordinate_transformation_mode", "asymmetric") };
    CHECK(run(&n, "Resize", 13, a, 2, 3, in2, 0) == 0, "%s", graft_last_error());
    float got[12];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) got[i * 4 + j] = ((float *)n.out[0].data)[(2 * i) * 8 + 2 * j];
    th_close(got, x, 12, 1e-6, 1e-6, "cubic at whole coordinates");
    or_free(&n);

    /* antialias (Resize-18) linear downsampling by 2 of 0..7: weights 1/8, 3/8, 3/8, 1/8 */
    float r[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    gr_tensor rd[3] = { ten(GR_F32, r, DIMS(8)), NONE, F32(0.5f) };
    gr_attr aa[2] = { sval("mode", "linear"), ival("antialias", 1) };
    CHECK(run(&n, "Resize", 18, aa, 2, 3, rd, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 0.625f, 2.5f, 4.5f, 6.375f }, 4, 1e-6, 1e-6,
             "antialias linear");
    or_free(&n);
    CHECK(run(&n, "Resize", 13, aa, 2, 3, rd, 0) == GRAFT_E_UNSUPPORTED,
          "antialias before opset 18");
}

/* ---- opset 18 axes and keep_aspect_ratio_policy, errors ---- */

static void test_resize18_and_errors(void)
{
    node n;
    float x[24] = { 0 };
    gr_tensor in[4] = { ten(GR_F32, x, DIMS(1, 1, 4, 6)), NONE, NONE, I64(8, 8) };
    int64_t ax[2] = { 2, 3 };
    const char *pol[3] = { "stretch", "not_larger", "not_smaller" };
    int64_t want[3][2] = { { 8, 8 },
                           { 5, 8 },
                           { 8, 12 } }; /* scale min(2, 4/3) and max: 4*4/3 → 5.33 → 5 */
    for (int p = 0; p < 3; p++) {
        gr_attr a[2] = { ints("axes", 2, ax), sval("keep_aspect_ratio_policy", pol[p]) };
        CHECK(run(&n, "Resize", 18, a, 2, 4, in, 0) == 0, "%s", graft_last_error());
        CHECK(shape_is(&n.out[0], DIMS(1, 1, want[p][0], want[p][1])),
              "policy %s: got (%lld, %lld)", pol[p], (long long)n.out[0].shape.d[2],
              (long long)n.out[0].shape.d[3]);
        or_free(&n);
    }
    gr_tensor both[4] = { in[0], NONE, F32(1, 1, 2, 2), I64(1, 1, 8, 12) };
    CHECK(run(&n, "Resize", 13, NULL, 0, 4, both, 0) == GRAFT_E_FORMAT,
          "scales and sizes both given");
    gr_attr bad = sval("mode", "bilinear");
    CHECK(run(&n, "Resize", 13, &bad, 1, 3, both, 0) == GRAFT_E_UNSUPPORTED, "unknown mode");
    CHECK(strstr(graft_last_error(), "bilinear") != NULL, "message names the value: %s",
          graft_last_error());
    gr_attr badc = sval("coordinate_transformation_mode", "half_pixel_symmetric");
    CHECK(run(&n, "Resize", 13, &badc, 1, 3, both, 0) == GRAFT_E_UNSUPPORTED,
          "unknown coordinate mode");
    int64_t xi[24] = { 0 };
    gr_tensor ints_in[3] = { ten(GR_I64, xi, DIMS(1, 1, 4, 6)), NONE, F32(1, 1, 2, 2) };
    gr_attr lin = sval("mode", "linear");
    CHECK(run(&n, "Resize", 13, &lin, 1, 3, ints_in, 0) == GRAFT_E_UNSUPPORTED, "linear on int64");
    CHECK(run(&n, "Resize", 13, NULL, 0, 3, both, 4) == GRAFT_E_UNSUPPORTED,
          "scales unknown at plan time");
    gr_attr junk = ival("junk", 1);
    CHECK(run(&n, "Resize", 13, &junk, 1, 3, both, 0) == GRAFT_E_UNSUPPORTED, "unknown attribute");
    /* Resize-10: (X, scales), asymmetric, nearest floors */
    float r[3] = { 1, 2, 3 };
    gr_tensor r10[2] = { ten(GR_F32, r, DIMS(3)), F32(2) };
    CHECK(run(&n, "Resize", 10, NULL, 0, 2, r10, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 1, 1, 2, 2, 3, 3 }, 6, 0, 0, "Resize-10 nearest");
    or_free(&n);
    CHECK(run(&n, "Resize", 10, &lin, 1, 2, r10, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 1, 1.5f, 2, 2.5f, 3, 3 }, 6, 0, 0,
             "Resize-10 linear (asymmetric)");
    or_free(&n);
}

/* ---- Pad ---- */

static void test_pad(void)
{
    node n;
    float x[6] = { 1, 2, 3, 4, 5, 6 }; /* (2, 3) */
    /* numpy.pad(x, ((1, 0), (2, 3)), mode) */
    float want_reflect[] = {
        6, 5, 4, 5, 6, 5, 4, 5, 3, 2, 1, 2, 3, 2, 1, 2, 6, 5, 4, 5, 6, 5, 4, 5
    };
    float want_edge[] = { 1, 1, 1, 2, 3, 3, 3, 3, 1, 1, 1, 2, 3, 3, 3, 3, 4, 4, 4, 5, 6, 6, 6, 6 };
    float want_wrap[] = { 5, 6, 4, 5, 6, 4, 5, 6, 2, 3, 1, 2, 3, 1, 2, 3, 5, 6, 4, 5, 6, 4, 5, 6 };
    float want_const[] = { 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 9, 9, 9, 9, 9, 4, 5, 6, 9, 9, 9 };
    float v = 9;
    gr_tensor in[3] = { ten(GR_F32, x, DIMS(2, 3)), I64(1, 2, 0, 3), ten(GR_F32, &v, 0, NULL) };
    const char *modes[4] = { "reflect", "edge", "wrap", "constant" };
    const float *wants[4] = { want_reflect, want_edge, want_wrap, want_const };
    for (int m = 0; m < 4; m++) {
        gr_attr a = sval("mode", modes[m]);
        CHECK(run(&n, "Pad", 13, &a, 1, 3, in, 0) == 0, "%s", graft_last_error());
        CHECK(shape_is(&n.out[0], DIMS(3, 8)), "pad shape");
        th_close(n.out[0].data, wants[m], 24, 0, 0, modes[m]);
        or_free(&n);
    }
    /* constant_value unknown at plan time is fine: forward reads it */
    CHECK(run(&n, "Pad", 13, NULL, 0, 3, in, 4) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, want_const, 24, 0, 0, "runtime constant_value");
    or_free(&n);
    /* Pad-2: attributes */
    int64_t p2[4] = { 1, 2, 0, 3 };
    gr_attr a2[2] = { ints("pads", 4, p2), fval("value", 9) };
    CHECK(run(&n, "Pad", 2, a2, 2, 1, in, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, want_const, 24, 0, 0, "Pad-2");
    or_free(&n);
    /* negative pads crop, then reflect pads the cropped tensor: numpy.pad(x[:, 1:], ((0,0),(0,2)), reflect) */
    gr_tensor neg[2] = { in[0], I64(0, -1, 0, 2) };
    gr_attr rf = sval("mode", "reflect");
    CHECK(run(&n, "Pad", 13, &rf, 1, 2, neg, 0) == 0, "%s", graft_last_error());
    CHECK(shape_is(&n.out[0], DIMS(2, 4)), "crop and pad shape");
    th_close(n.out[0].data, (float[]){ 2, 3, 2, 3, 5, 6, 5, 6 }, 8, 0, 0, "crop then reflect");
    or_free(&n);
    /* reflect wider than the axis: numpy repeats the reflection */
    float r3[3] = { 1, 2, 3 };
    gr_tensor wide[2] = { ten(GR_F32, r3, DIMS(3)), I64(7, 7) };
    CHECK(run(&n, "Pad", 13, &rf, 1, 2, wide, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, (float[]){ 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2 }, 17, 0,
             0, "wide reflect");
    or_free(&n);
    /* Pad-18 axes: pad only axis -1 of an int64 tensor */
    int64_t xi[6] = { 1, 2, 3, 4, 5, 6 }, zero = 0;
    gr_tensor ax[4] = { ten(GR_I64, xi, DIMS(2, 3)), I64(1, 1), ten(GR_I64, &zero, 0, NULL),
                        I64(-1) };
    CHECK(run(&n, "Pad", 18, NULL, 0, 4, ax, 0) == 0, "%s", graft_last_error());
    int64_t wi[10] = { 0, 1, 2, 3, 0, 0, 4, 5, 6, 0 };
    CHECK(shape_is(&n.out[0], DIMS(2, 5)) && memcmp(n.out[0].data, wi, sizeof wi) == 0,
          "Pad-18 axes");
    or_free(&n);
    /* errors */
    gr_tensor bad[2] = { in[0], I64(1, 2, 3) };
    CHECK(run(&n, "Pad", 13, NULL, 0, 2, bad, 0) == GRAFT_E_SHAPE, "pads of the wrong length");
    gr_attr bm = sval("mode", "mirror");
    CHECK(run(&n, "Pad", 13, &bm, 1, 2, in, 0) == GRAFT_E_UNSUPPORTED, "unknown mode");
    CHECK(run(&n, "Pad", 13, NULL, 0, 2, in, 2) == GRAFT_E_UNSUPPORTED,
          "pads unknown at plan time");
    gr_tensor crop[2] = { in[0], I64(0, -4, 0, 0) };
    CHECK(run(&n, "Pad", 13, NULL, 0, 2, crop, 0) == GRAFT_E_SHAPE, "cropping more than the axis");

    /* a big constant pad, threaded, against a direct loop */
    enum { C = 3, H = 61, W = 67 };
    float *big = malloc(sizeof(float) * C * H * W),
          *bw = malloc(sizeof(float) * C * (H + 3) * (W + 5));
    for (int i = 0; i < C * H * W; i++) big[i] = (float)i;
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H + 3; h++)
            for (int w = 0; w < W + 5; w++) {
                int hi = h - 1, wi2 = w - 2;
                int inside = hi >= 0 && hi < H && wi2 >= 0 && wi2 < W;
                bw[(c * (H + 3) + h) * (W + 5) + w] = inside ? big[(c * H + hi) * W + wi2] : 0;
            }
    gr_tensor bi[2] = { ten(GR_F32, big, DIMS(1, C, H, W)), I64(0, 0, 1, 2, 0, 0, 2, 3) };
    CHECK(run(&n, "Pad", 13, NULL, 0, 2, bi, 0) == 0, "%s", graft_last_error());
    th_close(n.out[0].data, bw, C * (H + 3) * (W + 5), 0, 0, "big constant pad");
    or_free(&n);
    free(big);
    free(bw);
}

int main(void)
{
    test_nearest();
    test_linear_closed_forms();
    test_linear_vs_direct();
    test_cubic();
    test_resize18_and_errors();
    test_pad();
    return th_finish();
}
