/* test_op_matmul.c — MatMul, Gemm and MatMulInteger through their op table entries: closed
 * forms, every kernel (reference, oneDNN matmul primitive, dnnl_sgemm) against an independent
 * double-precision loop written here with numpy's broadcasting rules, on odd shapes (batch
 * broadcast (3,5,7)x(7,2), 1-D operands, transA/transB, alpha/beta, every C broadcast), the
 * non-float dtypes, and the errors bad shapes and attributes must give. */
#include "harness.h"
#include "oprun.h"

#include "ops/dnnl_util.h"

#include <string.h>

/* ---- nodes run through oprun.h ---- */

typedef or_node node; /* oprun.h */

typedef struct input {
    int dtype;
    gr_shape s;
    const void *data;
} input;

/* Prepares op on the inputs (dtype 0: absent) with attrs; on success runs it. */
static int node_run(node *n, const char *op, int opset, const gr_attr *attrs, int nattr,
                    const input *in, int nin, int use_ref)
{
    gr_tensor t[OR_MAX_IN];
    for (int i = 0; i < nin; i++)
        t[i] = (gr_tensor){ .dtype = in[i].dtype, .shape = in[i].s, .data = (void *)in[i].data };
    return or_run(n, &(or_spec){ .op = op,
                                 .opset = opset,
                                 .attrs = attrs,
                                 .nattr = nattr,
                                 .nin = nin,
                                 .ins = t,
                                 .use_ref = use_ref });
}

/* The state of every op in matmul.c starts with its primitive, then (after four memory
 * objects) the sgemm flag. */
typedef struct state_head {
    dnnl_primitive_t prim;
    dnnl_memory_t m[4];
    int sgemm;
} state_head;
static int used_prim(const node *n)
{
    return n->c.params && ((const state_head *)n->c.params)->prim != NULL;
}
static int used_sgemm(const node *n)
{
    return n->c.params && ((const state_head *)n->c.params)->sgemm;
}

static void fill(float *x, int64_t n, unsigned seed)
{
    uint32_t s = seed * 2654435761u + 7;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) % 2001) / 500.0f - 2.0f; /* [-2, 2] */
    }
}

/* ---- an independent reference: numpy.matmul in double, element by element ---- */

/* y: the numpy.matmul result of a (shape as) and b (shape bs), with rank and dims in ys. */
static void matmul_naive(double *y, gr_shape *ys, const float *a, const gr_shape *as,
                         const float *b, const gr_shape *bs)
{
    /* promote 1-D operands, then broadcast batch dims */
    gr_shape pa = *as, pb = *bs;
    if (pa.rank == 1) pa = (gr_shape){ 2, { 1, as->d[0] } };
    if (pb.rank == 1) pb = (gr_shape){ 2, { bs->d[0], 1 } };
    int64_t M = pa.d[pa.rank - 2], K = pa.d[pa.rank - 1], N = pb.d[pb.rank - 1];
    int nb = (pa.rank > pb.rank ? pa.rank : pb.rank) - 2;
    int64_t bd[8], batch = 1;
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - (pa.rank - 2)), ib = i - (nb - (pb.rank - 2));
        int64_t da = ia >= 0 ? pa.d[ia] : 1, db = ib >= 0 ? pb.d[ib] : 1;
        bd[i] = da > db ? da : db;
        batch *= bd[i];
    }
    for (int64_t t = 0; t < batch; t++) {
        /* multi-index of batch t, then the flat matrix index in A and B */
        int64_t idx[8], rem = t, ma = 0, mb = 0;
        for (int i = nb - 1; i >= 0; i--) idx[i] = rem % bd[i], rem /= bd[i];
        for (int i = 0; i < nb; i++) {
            int ia = i - (nb - (pa.rank - 2)), ib = i - (nb - (pb.rank - 2));
            if (ia >= 0) ma = ma * pa.d[ia] + (pa.d[ia] == 1 ? 0 : idx[i]);
            if (ib >= 0) mb = mb * pb.d[ib] + (pb.d[ib] == 1 ? 0 : idx[i]);
        }
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)a[ma * M * K + m * K + k] * (double)b[mb * K * N + k * N + n];
                y[(t * M + m) * N + n] = acc;
            }
    }
    ys->rank = 0;
    for (int i = 0; i < nb; i++) ys->d[ys->rank++] = bd[i];
    if (as->rank > 1) ys->d[ys->rank++] = M;
    if (bs->rank > 1) ys->d[ys->rank++] = N;
}

static void close_to_double(const float *got, const double *want, int64_t n, double tol,
                            const char *what)
{
    float *w = malloc(sizeof(float) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) w[i] = (float)want[i];
    th_close(got, w, n, tol, tol, what);
    free(w);
}

/* ---- MatMul ---- */

static void test_matmul_closed_form(void)
{
    node n;
    /* [[1 2 3] [4 5 6]] x [[7 8] [9 10] [11 12]] = [[58 64] [139 154]] */
    float a[6] = { 1, 2, 3, 4, 5, 6 }, b[6] = { 7, 8, 9, 10, 11, 12 };
    for (int ref = 0; ref <= 1; ref++) {
        input in[2] = { { GR_F32, { 2, { 2, 3 } }, a }, { GR_F32, { 2, { 3, 2 } }, b } };
        CHECK(node_run(&n, "MatMul", 13, NULL, 0, in, 2, ref) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(shape_is(&n.out[0], 2, (int64_t[]){ 2, 2 }), "2x3 x 3x2 shape");
        th_close(n.out[0].data, (float[]){ 58, 64, 139, 154 }, 4, 0, 0,
                 ref ? "matmul 2x2 (ref)" : "matmul 2x2 (fast)");
        CHECK(n.c.flops == 2 * 2 * 2 * 3, "flops %lld", (long long)n.c.flops);
        or_free(&n);
    }
    /* 1-D x 1-D is a dot product with a scalar result */
    for (int ref = 0; ref <= 1; ref++) {
        input in[2] = { { GR_F32, { 1, { 3 } }, a }, { GR_F32, { 1, { 3 } }, b } };
        CHECK(node_run(&n, "MatMul", 13, NULL, 0, in, 2, ref) == GRAFT_OK, "%s",
              graft_last_error());
        CHECK(n.out[0].shape.rank == 0, "vector . vector must be a scalar, rank %d",
              n.out[0].shape.rank);
        th_close(n.out[0].data, (float[]){ 1 * 7 + 2 * 8 + 3 * 9 }, 1, 0, 0, "dot product");
        or_free(&n);
    }
}

/* Every kernel against the double loop, on shapes that exercise broadcasting and 1-D rules. */
static void test_matmul_shapes(void)
{
    static const struct {
        gr_shape a, b;
    } cases[] = {
        { { 3, { 3, 5, 7 } }, { 2, { 7, 2 } } },       /* ViT-style (B, S, D) x (D, E) */
        { { 2, { 5, 7 } }, { 3, { 3, 7, 4 } } },       /* A broadcast over B's batch */
        { { 1, { 7 } }, { 3, { 3, 7, 4 } } },          /* 1-D A: (3, 4) */
        { { 3, { 3, 5, 7 } }, { 1, { 7 } } },          /* 1-D B: (3, 5) */
        { { 4, { 2, 1, 5, 7 } }, { 3, { 3, 7, 4 } } }, /* both broadcast: (2, 3, 5, 4) */
        { { 4, { 1, 3, 4, 6 } }, { 4, { 2, 1, 6, 5 } } },
        { { 4, { 2, 3, 17, 33 } }, { 4, { 2, 3, 33, 19 } } }, /* attention-like, odd sizes */
        { { 2, { 1, 1 } }, { 2, { 1, 9 } } },
        { { 3, { 2, 0, 3 } }, { 2, { 3, 4 } } }, /* empty M */
        { { 2, { 3, 0 } }, { 2, { 0, 4 } } },    /* K = 0: zeros */
    };
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        const gr_shape *as = &cases[t].a, *bs = &cases[t].b;
        int64_t na = gr_numel(as), nbb = gr_numel(bs);
        float *a = malloc(sizeof(float) * (size_t)(na + 1)),
              *b = malloc(sizeof(float) * (size_t)(nbb + 1));
        fill(a, na, (unsigned)t + 1);
        fill(b, nbb, (unsigned)t + 101);
        double *want = malloc(sizeof(double) * 4096);
        gr_shape ws;
        matmul_naive(want, &ws, a, as, b, bs);
        for (int ref = 0; ref <= 1; ref++) {
            node n;
            char what[160], sa[64], sb[64];
            snprintf(what, sizeof what, "matmul %s x %s (%s)", gr_shape_str(as, sa, sizeof sa),
                     gr_shape_str(bs, sb, sizeof sb), ref ? "ref" : "fast");
            input in[2] = { { GR_F32, *as, a }, { GR_F32, *bs, b } };
            CHECK(node_run(&n, "MatMul", 13, NULL, 0, in, 2, ref) == GRAFT_OK, "%s: %s", what,
                  graft_last_error());
            CHECK(gr_shape_eq(&n.out[0].shape, &ws), "%s: output shape %s", what,
                  gr_shape_str(&n.out[0].shape, sa, sizeof sa));
            close_to_double(n.out[0].data, want, gr_numel(&ws), 1e-5, what);
            int64_t work = gr_numel(&ws) * (as->rank > 0 ? as->d[as->rank - 1] : 0);
            if (ref) CHECK(!used_prim(&n) && !used_sgemm(&n), "%s: use_ref ran oneDNN", what);
            else if (work > 0)
                CHECK(used_prim(&n) || used_sgemm(&n), "%s: oneDNN did not run", what);
            if (!ref && work > 0 && !used_prim(&n))
                printf("note: %s ran dnnl_sgemm, not the primitive\n", what);
            or_free(&n);
        }
        free(a), free(b), free(want);
    }
}

static void test_matmul_dtypes(void)
{
    node n;
    /* float64 on (2, 2, 3) x (3, 2) */
    double a[12], b[6];
    for (int i = 0; i < 12; i++) a[i] = 0.5 * i - 2;
    for (int i = 0; i < 6; i++) b[i] = 1.0 / (i + 1);
    input in[2] = { { GR_F64, { 3, { 2, 2, 3 } }, a }, { GR_F64, { 2, { 3, 2 } }, b } };
    CHECK(node_run(&n, "MatMul", 13, NULL, 0, in, 2, 0) == GRAFT_OK, "%s", graft_last_error());
    const double *y = n.out[0].data;
    double maxd = 0;
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 2; j++) {
            double acc = 0;
            for (int k = 0; k < 3; k++) acc += a[r * 3 + k] * b[k * 2 + j];
            maxd = fmax(maxd, fabs(acc - y[r * 2 + j]));
        }
    CHECK(maxd < 1e-14 && n.out[0].dtype == GR_F64, "float64 matmul off by %g", maxd);
    or_free(&n);
    /* int64 beyond 2^53 stays exact; int32 wraps like numpy */
    int64_t ia[2] = { (int64_t)1 << 40, 3 }, ib[2] = { (int64_t)1 << 20, 1 };
    input ii[2] = { { GR_I64, { 2, { 1, 2 } }, ia }, { GR_I64, { 2, { 2, 1 } }, ib } };
    CHECK(node_run(&n, "MatMul", 13, NULL, 0, ii, 2, 0) == GRAFT_OK, "%s", graft_last_error());
    CHECK(((int64_t *)n.out[0].data)[0] == ((int64_t)1 << 60) + 3, "int64 matmul: %lld",
          (long long)((int64_t *)n.out[0].data)[0]);
    or_free(&n);
    int32_t ja[3] = { -7, 2, 5 }, jb[3] = { 3, 100000, 40000 };
    input jj[2] = { { GR_I32, { 1, { 3 } }, ja }, { GR_I32, { 1, { 3 } }, jb } };
    CHECK(node_run(&n, "MatMul", 13, NULL, 0, jj, 2, 0) == GRAFT_OK, "%s", graft_last_error());
    int32_t want32 = (int32_t)(uint32_t)(-21 + 200000 + 200000);
    CHECK(((int32_t *)n.out[0].data)[0] == want32 && n.out[0].dtype == GR_I32, "int32 matmul: %d",
          ((int32_t *)n.out[0].data)[0]);
    or_free(&n);
}

static void test_matmul_errors(void)
{
    node n;
    float x[64] = { 0 };
    input k_mismatch[2] = { { GR_F32, { 2, { 2, 3 } }, x }, { GR_F32, { 2, { 4, 2 } }, x } };
    CHECK(node_run(&n, "MatMul", 13, NULL, 0, k_mismatch, 2, 1) == GRAFT_E_SHAPE,
          "inner dims 3 vs 4 must fail");
    CHECK(strstr(graft_last_error(), "inner dimensions") != NULL, "message: %s",
          graft_last_error());
    or_free(&n);
    input batch_mismatch[2] = { { GR_F32, { 3, { 2, 2, 3 } }, x },
                                { GR_F32, { 3, { 3, 3, 2 } }, x } };
    CHECK(node_run(&n, "MatMul", 13, NULL, 0, batch_mismatch, 2, 1) == GRAFT_E_SHAPE,
          "batch 2 vs 3 must fail");
    or_free(&n);
    input mixed[2] = { { GR_F32, { 2, { 2, 3 } }, x }, { GR_F64, { 2, { 3, 2 } }, x } };
    CHECK(node_run(&n, "MatMul", 13, NULL, 0, mixed, 2, 1) == GRAFT_E_FORMAT,
          "f32 x f64 must fail");
    or_free(&n);
    input u8[2] = { { GR_U8, { 2, { 2, 3 } }, x }, { GR_U8, { 2, { 3, 2 } }, x } };
    CHECK(node_run(&n, "MatMul", 13, NULL, 0, u8, 2, 1) == GRAFT_E_UNSUPPORTED,
          "uint8 MatMul must be unsupported");
    or_free(&n);
    input scalar[2] = { { GR_F32, { 0, { 0 } }, x }, { GR_F32, { 2, { 1, 2 } }, x } };
    CHECK(node_run(&n, "MatMul", 13, NULL, 0, scalar, 2, 1) == GRAFT_E_SHAPE,
          "a scalar operand must fail");
    or_free(&n);
}

/* ---- Gemm ---- */

/* y = alpha * A' B' + beta * C in double, C of shape cs broadcast to (M, N) (NULL: none). */
static void gemm_naive(double *y, int64_t M, int64_t N, int64_t K, const float *a, int ta,
                       const float *b, int tb, const float *cc, const gr_shape *cs, double alpha,
                       double beta)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)(ta ? a[k * M + m] : a[m * K + k]) *
                       (double)(tb ? b[n * K + k] : b[k * N + n]);
            double cv = 0;
            if (cc) {
                int64_t r = cs->rank == 2 ? cs->d[0] : 1,
                        q = cs->rank >= 1 ? cs->d[cs->rank - 1] : 1;
                cv = cc[(r == 1 ? 0 : m) * q + (q == 1 ? 0 : n)];
            }
            y[m * N + n] = alpha * acc + beta * cv;
        }
}

static void test_gemm(void)
{
    const int64_t M = 5, N = 3, K = 7;
    float a[35], b[21], cc[15];
    fill(a, 35, 11), fill(b, 21, 12), fill(cc, 15, 13);
    const gr_shape cshapes[] = { { 0, { 0 } },    { 1, { 1 } },    { 1, { N } },
                                 { 2, { 1, N } }, { 2, { M, 1 } }, { 2, { M, N } } };
    double want[15];
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (int ci = -1; ci < 6; ci++) {
                const gr_shape *cs = ci >= 0 ? &cshapes[ci] : NULL;
                float alpha = ta ? 0.25f : 1.0f, beta = tb ? -1.5f : 1.0f;
                gemm_naive(want, M, N, K, a, ta, b, tb, cs ? cc : NULL, cs, alpha, beta);
                for (int ref = 0; ref <= 1; ref++) {
                    node n;
                    char what[128], sc[64] = "none";
                    if (cs) gr_shape_str(cs, sc, sizeof sc);
                    snprintf(what, sizeof what, "gemm transA=%d transB=%d C %s (%s)", ta, tb, sc,
                             ref ? "ref" : "sgemm");
                    gr_attr at[4] = { ival("transA", ta), ival("transB", tb), fval("alpha", alpha),
                                      fval("beta", beta) };
                    input in[3] = {
                        { GR_F32, ta ? (gr_shape){ 2, { K, M } } : (gr_shape){ 2, { M, K } }, a },
                        { GR_F32, tb ? (gr_shape){ 2, { N, K } } : (gr_shape){ 2, { K, N } }, b },
                        { cs ? GR_F32 : 0, cs ? *cs : (gr_shape){ 0, { 0 } }, cc }
                    };
                    CHECK(node_run(&n, "Gemm", 13, at, 4, in, 3, ref) == GRAFT_OK, "%s: %s", what,
                          graft_last_error());
                    CHECK(shape_is(&n.out[0], 2, (int64_t[]){ M, N }), "%s: shape", what);
                    close_to_double(n.out[0].data, want, M * N, 1e-5, what);
                    CHECK(used_sgemm(&n) == !ref, "%s: wrong kernel", what);
                    CHECK(n.c.flops == 2 * M * N * K, "%s: flops", what);
                    or_free(&n);
                }
            }
}

static void test_gemm_errors(void)
{
    node n;
    float x[64] = { 0 };
    input no_c[2] = { { GR_F32, { 2, { 2, 3 } }, x }, { GR_F32, { 2, { 3, 4 } }, x } };
    CHECK(node_run(&n, "Gemm", 11, NULL, 0, no_c, 2, 1) == GRAFT_OK, "Gemm-11 without C: %s",
          graft_last_error());
    or_free(&n);
    CHECK(node_run(&n, "Gemm", 9, NULL, 0, no_c, 2, 1) == GRAFT_E_FORMAT, "Gemm-9 requires C");
    or_free(&n);
    input bad_c[3] = { { GR_F32, { 2, { 2, 3 } }, x },
                       { GR_F32, { 2, { 3, 4 } }, x },
                       { GR_F32, { 2, { 3, 4 } }, x } };
    CHECK(node_run(&n, "Gemm", 13, NULL, 0, bad_c, 3, 1) == GRAFT_E_SHAPE,
          "C (3,4) onto (2,4) must fail");
    or_free(&n);
    input rank3[2] = { { GR_F32, { 3, { 1, 2, 3 } }, x }, { GR_F32, { 2, { 3, 4 } }, x } };
    CHECK(node_run(&n, "Gemm", 13, NULL, 0, rank3, 2, 1) == GRAFT_E_SHAPE, "3-D A must fail");
    or_free(&n);
    gr_attr t2 = ival("transA", 2);
    CHECK(node_run(&n, "Gemm", 13, &t2, 1, no_c, 2, 1) == GRAFT_E_FORMAT, "transA=2 must fail");
    or_free(&n);
    gr_attr bc = ival("broadcast", 1);
    CHECK(node_run(&n, "Gemm", 13, &bc, 1, no_c, 2, 1) == GRAFT_E_UNSUPPORTED,
          "an unknown attribute must fail");
    CHECK(strstr(graft_last_error(), "broadcast") != NULL, "message names it: %s",
          graft_last_error());
    or_free(&n);
}

/* ---- MatMulInteger ---- */

static void test_matmul_integer(void)
{
    node n;
    /* The ONNX example: A uint8 (4, 3), zero point 12; B (3, 2), zero point 0. */
    uint8_t a[12] = { 11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0 }, b[6] = { 1, 4, 2, 5, 3, 6 }, za = 12,
            zb = 0;
    int32_t want[8] = { -38, -83, -44, -98, -50, -113, -56, -128 };
    input in[4] = { { GR_U8, { 2, { 4, 3 } }, a },
                    { GR_U8, { 2, { 3, 2 } }, b },
                    { GR_U8, { 0, { 0 } }, &za },
                    { GR_U8, { 1, { 1 } }, &zb } };
    CHECK(node_run(&n, "MatMulInteger", 13, NULL, 0, in, 4, 0) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(n.out[0].dtype == GR_I32 && shape_is(&n.out[0], 2, (int64_t[]){ 4, 2 }),
          "MatMulInteger output type/shape");
    CHECK(memcmp(n.out[0].data, want, sizeof want) == 0, "MatMulInteger example: first %d",
          ((int32_t *)n.out[0].data)[0]);
    or_free(&n);
    /* per-row zero points of int8 A (one per row, M = 2) and per-column of B */
    int8_t sa[4] = { 1, -2, 3, 4 }, sb[4] = { 5, 6, -7, 8 }, zra[2] = { 1, -1 }, zcb[2] = { 2, 0 };
    input pr[4] = { { GR_I8, { 2, { 2, 2 } }, sa },
                    { GR_I8, { 2, { 2, 2 } }, sb },
                    { GR_I8, { 1, { 2 } }, zra },
                    { GR_I8, { 1, { 2 } }, zcb } };
    CHECK(node_run(&n, "MatMulInteger", 13, NULL, 0, pr, 4, 0) == GRAFT_OK, "%s",
          graft_last_error());
    const int32_t *y = n.out[0].data;
    int ok = 1;
    for (int m = 0; m < 2; m++)
        for (int j = 0; j < 2; j++) {
            int acc = 0;
            for (int k = 0; k < 2; k++) acc += (sa[m * 2 + k] - zra[m]) * (sb[k * 2 + j] - zcb[j]);
            ok &= y[m * 2 + j] == acc;
        }
    CHECK(ok, "per-row / per-column zero points");
    or_free(&n);
    uint8_t zbad[3] = { 0 };
    input bad[3] = { { GR_U8, { 2, { 4, 3 } }, a },
                     { GR_U8, { 2, { 3, 2 } }, b },
                     { GR_U8, { 1, { 3 } }, zbad } };
    CHECK(node_run(&n, "MatMulInteger", 13, NULL, 0, bad, 3, 0) == GRAFT_E_SHAPE,
          "a 3-vector zero point for M=4 must fail");
    or_free(&n);
}

int main(void)
{
    test_matmul_closed_form();
    test_matmul_shapes();
    test_matmul_dtypes();
    test_matmul_errors();
    test_gemm();
    test_gemm_errors();
    test_matmul_integer();
    return th_finish();
}
