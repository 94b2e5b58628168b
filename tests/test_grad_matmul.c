/* test_grad_matmul.c — backward of Gemm (transA x transB, alpha, beta, C of shape (M, N), (N,),
 * (1, N), (M, 1), (1, 1) and a scalar, C absent) and MatMul (batch broadcasting both ways,
 * 1-D operands on either side, B without batch dims) against central finite differences of the
 * ops' own forward (tests/gradcheck.h), with both kernel sets, and oneDNN/sgemm against the
 * reference kernel on larger shapes. */
#include "gradcheck.h"

static gr_tensor ften(const gr_shape *s, float *data)
{
    return (gr_tensor){ .dtype = GR_F32, .shape = *s, .data = data };
}

static float bufa[4096], bufb[4096], bufc[4096];

static void gemm_cases(void)
{
    const int64_t M = 3, K = 5, N = 4;
    const gr_shape cshapes[] = { { 2, { M, N } }, { 1, { N } }, { 2, { 1, N } }, { 2, { M, 1 } },
                                 { 2, { 1, 1 } }, { 0, { 0 } }, { 1, { 1 } } };
    gc_fill(bufa, 64, 1, -1.f, 1.f);
    gc_fill(bufb, 64, 2, -1.f, 1.f);
    gc_fill(bufc, 64, 3, -1.f, 1.f);
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (int ci = 0; ci <= 7; ci++)
                for (int ref = 0; ref <= 1; ref++) {
                    gr_shape as = ta ? (gr_shape){ 2, { K, M } } : (gr_shape){ 2, { M, K } };
                    gr_shape bs = tb ? (gr_shape){ 2, { N, K } } : (gr_shape){ 2, { K, N } };
                    gr_tensor in[3] = { ften(&as, bufa), ften(&bs, bufb), { 0 } };
                    int nin = 2;
                    if (ci < 7) in[2] = ften(&cshapes[ci], bufc), nin = 3;
                    gr_attr a[4] = { ival("transA", ta), ival("transB", tb), fval("alpha", 0.7f),
                                     fval("beta", -1.3f) };
                    gc_case k = { .op = "Gemm",
                                  .opset = 13,
                                  .attrs = a,
                                  .nattr = 4,
                                  .nin = nin,
                                  .ins = in,
                                  .nout = 1,
                                  .need = nin == 3 ? 7 : 3,
                                  .use_ref = ref };
                    char w[128];
                    snprintf(w, sizeof w, "Gemm transA %d transB %d C #%d", ta, tb, ci);
                    gc_check(&k, w);
                    k.need = 2; /* only dB (a classifier's weight) */
                    snprintf(w, sizeof w, "Gemm transA %d transB %d C #%d, dB only", ta, tb, ci);
                    gc_check(&k, w);
                }
    /* larger: sgemm vs the reference, the classifier-head shape (transB, bias (N,)) */
    gr_shape as = { 2, { 32, 64 } }, bs = { 2, { 10, 64 } }, cs = { 1, { 10 } };
    gc_fill(bufa, 32 * 64, 4, -1.f, 1.f);
    gc_fill(bufb, 640, 5, -1.f, 1.f);
    gr_tensor in[3] = { ften(&as, bufa), ften(&bs, bufb), ften(&cs, bufc) };
    gr_attr a[1] = { ival("transB", 1) };
    gc_case k = {
        .op = "Gemm", .opset = 13, .attrs = a, .nattr = 1, .nin = 3, .ins = in, .nout = 1, .need = 7
    };
    gc_compare_kernels(&k, 1e-4, 1e-5, "Gemm 32x64 * (10x64)^T");
}

static void matmul_cases(void)
{
    static const struct {
        gr_shape a, b;
    } cases[] = {
        { { 4, { 2, 1, 3, 4 } }, { 3, { 5, 4, 2 } } }, /* both broadcast */
        { { 1, { 4 } }, { 2, { 4, 3 } } },             /* 1-D x 2-D */
        { { 2, { 3, 4 } }, { 1, { 4 } } },             /* 2-D x 1-D */
        { { 1, { 4 } }, { 1, { 4 } } },                /* dot product */
        { { 1, { 4 } }, { 3, { 2, 4, 3 } } },          /* 1-D x batched */
        { { 3, { 2, 3, 4 } }, { 1, { 4 } } },          /* batched x 1-D */
        { { 3, { 2, 3, 4 } }, { 2, { 4, 5 } } },       /* B without batch: one folded GEMM */
        { { 2, { 3, 4 } }, { 3, { 2, 4, 5 } } },       /* A broadcast over B's batch */
        { { 3, { 1, 3, 4 } }, { 3, { 3, 4, 2 } } },
    };
    gc_fill(bufa, 256, 6, -1.f, 1.f);
    gc_fill(bufb, 256, 7, -1.f, 1.f);
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
        for (int ref = 0; ref <= 1; ref++)
            for (uint32_t need = 1; need <= 3; need++) {
                gr_tensor in[2] = { ften(&cases[i].a, bufa), ften(&cases[i].b, bufb) };
                gc_case k = { .op = "MatMul",
                              .opset = 13,
                              .nin = 2,
                              .ins = in,
                              .nout = 1,
                              .need = need,
                              .use_ref = ref };
                char w[128], sa[64], sb[64];
                snprintf(w, sizeof w, "MatMul %s x %s need %u",
                         gr_shape_str(&cases[i].a, sa, sizeof sa),
                         gr_shape_str(&cases[i].b, sb, sizeof sb), need);
                gc_check(&k, w);
            }
    /* larger, oneDNN vs reference: a ViT-like linear layer and a broadcast batched product */
    gr_shape a1 = { 3, { 4, 17, 24 } }, b1 = { 2, { 24, 33 } }, a2 = { 4, { 3, 1, 9, 16 } },
             b2 = { 3, { 2, 16, 11 } };
    gc_fill(bufa, 4 * 17 * 24, 8, -1.f, 1.f);
    gc_fill(bufb, 24 * 33, 9, -1.f, 1.f);
    gr_tensor in1[2] = { ften(&a1, bufa), ften(&b1, bufb) },
              in2[2] = { ften(&a2, bufa), ften(&b2, bufb) };
    gc_case k1 = { .op = "MatMul", .opset = 13, .nin = 2, .ins = in1, .nout = 1, .need = 3 };
    gc_case k2 = { .op = "MatMul", .opset = 13, .nin = 2, .ins = in2, .nout = 1, .need = 3 };
    gc_compare_kernels(&k1, 1e-4, 1e-5, "MatMul (4,17,24) x (24,33)");
    gc_compare_kernels(&k2, 1e-4, 1e-5, "MatMul (3,1,9,16) x (2,16,11)");
}

int main(void)
{
    gemm_cases();
    matmul_cases();
    return th_finish();
}
