/* matmul.c — matrix products: MatMul (numpy.matmul semantics), Gemm and MatMulInteger.
 * Depends on core and oneDNN.
 *
 * MatMul-13 (numpy.matmul): A (..., M, K) x B (..., K, N) -> Y (..., M, N). A 1-D A (K) is
 * promoted to (1, K) and a 1-D B (K) to (K, 1); the promoted dimension is removed from Y. The
 * batch dimensions (all but the last two) broadcast like numpy, so (B, S, D) x (D, E) gives
 * (B, S, E) as in a ViT's linear layers.
 * Gemm-13: Y (M, N) = alpha * A' B' + beta * C, A' = transA ? A^T : A (A' is (M, K)),
 * B' = transB ? B^T : B (B' is (K, N)), C optional (since Gemm-11) and unidirectionally
 * broadcast to (M, N).
 * MatMulInteger-10: int32 Y = (A - a_zero_point) x (B - b_zero_point) for int8/uint8 A and B,
 * zero points per tensor, per row of A / column of B.
 *
 * Kernels: a plain C reference kernel for every dtype (float32, float64, int32, int64; int8/
 * uint8 for MatMulInteger), and for float32 oneDNN: MatMul runs a oneDNN matmul primitive made
 * once in prepare (when B has no batch dimensions A's batch is folded into M: one big GEMM), or
 * dnnl_sgemm per batch matrix if oneDNN refuses the primitive; Gemm runs dnnl_sgemm.
 *
 * Backward (float inputs): MatMul dA = dY B^T, dB = A^T dY per batch matrix, summed over the
 * batch matrices an input was broadcast to (a 1-D operand is the (1, K) / (K, 1) matrix it was
 * promoted to, so its gradient has its own shape). Gemm dA' = alpha dY B'^T, dB' = alpha A'^T dY
 * (stored transposed when transA / transB), dC = beta * dY summed over the axes C was broadcast
 * along. float32 runs dnnl_sgemm (one call for the common case of B without batch dims); the
 * reference kernels accumulate in double. */
#include "dnnl_util.h"

#include <string.h>

enum { MM_MATMUL, MM_GEMM, MM_INTEGER };

/* Batched geometry: Y is (batch, M, N) with batch the product of the broadcast batch dims. */
typedef struct mm_geom {
    int64_t batch, M, N, K;
    int nb;                               /* number of broadcast batch dims */
    int64_t bd[GR_MAXDIM];                /* broadcast batch dims of Y */
    int64_t as[GR_MAXDIM], bs[GR_MAXDIM]; /* element stride of A / B per batch dim; 0: broadcast */
} mm_geom;

/* The primitive comes first: tests read it to know which kernel a case runs. */
typedef struct mm_state {
    dnnl_primitive_t prim; /* oneDNN matmul primitive, or NULL */
    dnnl_memory_t src, wei, dst, spad;
    int sgemm; /* float32 without a primitive: dnnl_sgemm */
    int kind, dtype;
    mm_geom g;
    /* Gemm */
    int ta, tb;
    float alpha, beta;
    int64_t cm, cn; /* C viewed as (cm, cn), cm in {1, M}, cn in {1, N}; 0: no C */
    /* MatMulInteger: zero points per tensor (n == 1), per row of A / column of B (n == M or N,
     * for every batch matrix) or per batch matrix and row / column (n == batch * M or N) */
    int64_t azn, bzn;
} mm_state;

static void mm_release(void *params)
{
    mm_state *s = params;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->src) dnnl_memory_destroy(s->src);
    if (s->wei) dnnl_memory_destroy(s->wei);
    if (s->dst) dnnl_memory_destroy(s->dst);
    if (s->spad) dnnl_memory_destroy(s->spad);
}

/* Offsets (in elements) of batch matrix b in A and B. */
static void batch_offsets(const mm_geom *g, int64_t b, int64_t *oa, int64_t *ob)
{
    *oa = *ob = 0;
    for (int i = g->nb - 1; i >= 0; i--) {
        int64_t idx = b % g->bd[i];
        b /= g->bd[i];
        *oa += idx * g->as[i];
        *ob += idx * g->bs[i];
    }
}

/* ---- MatMul / MatMulInteger geometry ---- */

/* Numpy matmul shapes: fills g and sets Y's shape with dtype ydt. */
static int matmul_geometry(gr_opctx *c, mm_geom *g, int ydt)
{
    const gr_shape *a = &c->in[0]->shape, *b = &c->in[1]->shape;
    char sa[128], sb[128];
    if (a->rank < 1 || b->rank < 1)
        return gr_op_err(c, GRAFT_E_SHAPE, "inputs must have rank >= 1, got %s and %s",
                         gr_shape_str(a, sa, sizeof sa), gr_shape_str(b, sb, sizeof sb));
    int ra = a->rank, rb = b->rank;
    int64_t M = ra == 1 ? 1 : a->d[ra - 2], K = a->d[ra - 1];
    int64_t Kb = rb == 1 ? b->d[0] : b->d[rb - 2], N = rb == 1 ? 1 : b->d[rb - 1];
    if (K != Kb)
        return gr_op_err(c, GRAFT_E_SHAPE, "A %s and B %s: inner dimensions %lld and %lld differ",
                         gr_shape_str(a, sa, sizeof sa), gr_shape_str(b, sb, sizeof sb),
                         (long long)K, (long long)Kb);
    gr_shape ab = { ra > 2 ? ra - 2 : 0, { 0 } }, bb = { rb > 2 ? rb - 2 : 0, { 0 } }, ob;
    memcpy(ab.d, a->d, sizeof(int64_t) * (size_t)ab.rank);
    memcpy(bb.d, b->d, sizeof(int64_t) * (size_t)bb.rank);
    int st = gr_broadcast_shape(c, &ab, &bb, &ob);
    if (st) return st;
    *g = (mm_geom){ .batch = 1, .M = M, .N = N, .K = K, .nb = ob.rank };
    int64_t sa_ = M * K, sb_ = K * N; /* strides of the innermost batch dim */
    for (int i = ob.rank - 1; i >= 0; i--) {
        int ia = i - (ob.rank - ab.rank), ib = i - (ob.rank - bb.rank);
        int64_t da = ia >= 0 ? ab.d[ia] : 1, db = ib >= 0 ? bb.d[ib] : 1;
        g->bd[i] = ob.d[i];
        g->as[i] = da == 1 ? 0 : sa_;
        g->bs[i] = db == 1 ? 0 : sb_;
        sa_ *= da, sb_ *= db;
        g->batch *= ob.d[i];
    }
    gr_shape ys = ob;
    if (ra > 1) ys.d[ys.rank++] = M;
    if (rb > 1) ys.d[ys.rank++] = N;
    return gr_op_set_out(c, 0, ydt, &ys);
}

/* ---- reference kernels ---- */

/* y: (batch, M, N), a, b: batch matrices (M, K), (K, N) at the broadcast offsets. Rows are
 * accumulated in the dtype (i-k-j order, vectorisable); integers in wrapping unsigned 64-bit. */
#define MATMUL_REF_FLOAT(T)                                                                        \
    static void matmul_ref_##T(const mm_geom *g, T *y, const T *a, const T *b)                     \
    {                                                                                              \
        const int64_t M = g->M, N = g->N, K = g->K;                                                \
        _Pragma("omp parallel for schedule(static)") for (int64_t r = 0; r < g->batch * M; r++)    \
        {                                                                                          \
            int64_t oa, ob, m = r % M;                                                             \
            batch_offsets(g, r / M, &oa, &ob);                                                     \
            const T *ar = a + oa + m * K, *bm = b + ob;                                            \
            T *yr = y + r * N;                                                                     \
            for (int64_t n = 0; n < N; n++) yr[n] = 0;                                             \
            for (int64_t k = 0; k < K; k++) {                                                      \
                T av = ar[k];                                                                      \
                const T *br = bm + k * N;                                                          \
                for (int64_t n = 0; n < N; n++) yr[n] += av * br[n];                               \
            }                                                                                      \
        }                                                                                          \
    }
MATMUL_REF_FLOAT(float)
MATMUL_REF_FLOAT(double)

#define MATMUL_REF_INT(T)                                                                          \
    static void matmul_ref_##T(const mm_geom *g, T *y, const T *a, const T *b)                     \
    {                                                                                              \
        const int64_t M = g->M, N = g->N, K = g->K;                                                \
        _Pragma("omp parallel for schedule(static)") for (int64_t r = 0; r < g->batch * M; r++)    \
        {                                                                                          \
            int64_t oa, ob, m = r % M;                                                             \
            batch_offsets(g, r / M, &oa, &ob);                                                     \
            for (int64_t n = 0; n < N; n++) {                                                      \
                uint64_t acc = 0;                                                                  \
                for (int64_t k = 0; k < K; k++)                                                    \
                    acc += (uint64_t)(int64_t)a[oa + m * K + k] *                                  \
                           (uint64_t)(int64_t)b[ob + k * N + n];                                   \
                y[r * N + n] = (T)acc;                                                             \
            }                                                                                      \
        }                                                                                          \
    }
MATMUL_REF_INT(int32_t)
MATMUL_REF_INT(int64_t)

static void matmul_ref(const mm_state *s, gr_tensor *y, const gr_tensor *a, const gr_tensor *b)
{
    switch (s->dtype) {
    case GR_F32: matmul_ref_float(&s->g, y->data, a->data, b->data); break;
    case GR_F64: matmul_ref_double(&s->g, y->data, a->data, b->data); break;
    case GR_I32: matmul_ref_int32_t(&s->g, y->data, a->data, b->data); break;
    case GR_I64: matmul_ref_int64_t(&s->g, y->data, a->data, b->data); break;
    default: GR_ASSERT(0);
    }
}

/* ---- MatMul ---- */

static const int matmul_types[] = { GR_F32, GR_F64, GR_I32, GR_I64, 0 };

/* The oneDNN matmul primitive for float32: src (.., M, K), weights (.., K, N), dst (.., M, N),
 * batch dims of size 1 broadcast. Leaves s->prim NULL if oneDNN refuses the case. */
static int matmul_dnnl_prepare(gr_opctx *c, mm_state *s)
{
    const mm_geom *g = &s->g;
    const gr_shape *a = &c->in[0]->shape, *b = &c->in[1]->shape;
    gr_shape ss, ws, ds;
    if (b->rank <= 2) { /* no batch in B: fold A's batch into the rows, one GEMM */
        int64_t rows = g->batch * g->M;
        ss = (gr_shape){ 2, { rows, g->K } };
        ws = (gr_shape){ 2, { g->K, g->N } };
        ds = (gr_shape){ 2, { rows, g->N } };
    } else {
        int nd = g->nb + 2;
        ss.rank = ws.rank = ds.rank = nd;
        for (int i = 0; i < g->nb; i++) {
            int ia = i - (g->nb - (a->rank - 2)), ib = i - (g->nb - (b->rank - 2));
            ss.d[i] = ia >= 0 ? a->d[ia] : 1;
            ws.d[i] = ib >= 0 ? b->d[ib] : 1;
            ds.d[i] = g->bd[i];
        }
        ss.d[nd - 2] = g->M, ss.d[nd - 1] = g->K;
        ws.d[nd - 2] = g->K, ws.d[nd - 1] = g->N;
        ds.d[nd - 2] = g->M, ds.d[nd - 1] = g->N;
    }
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_matmul_desc_t desc;
    int st;
    if ((st = gr_dnnl_plain_md(&smd, &ss)) || (st = gr_dnnl_plain_md(&wmd, &ws)) ||
        (st = gr_dnnl_plain_md(&dmd, &ds)))
        return st;
    if (dnnl_matmul_desc_init(&desc, &smd, &wmd, NULL, &dmd) != dnnl_success) return GRAFT_OK;
    if ((st = gr_dnnl_make(c, &desc, &s->prim, &s->spad)) || !s->prim) return st;
    if ((st = gr_dnnl_plain_mem(c, &s->src, &ss)) || (st = gr_dnnl_plain_mem(c, &s->wei, &ws)) ||
        (st = gr_dnnl_plain_mem(c, &s->dst, &ds)))
        return st;
    return GRAFT_OK;
}

static int matmul_prepare(gr_opctx *c)
{
    static const char *const no_attrs[] = { NULL };
    int st;
    if ((st = gr_op_check_arity(c, 2, 2, 1, 1)) || (st = gr_op_check_attrs(c, no_attrs)) ||
        (st = gr_op_check_dtype(c, 0, matmul_types)))
        return st;
    if (c->in[1]->dtype != c->in[0]->dtype)
        return gr_op_err(c, GRAFT_E_FORMAT, "inputs have different types %s and %s",
                         gr_dtype_name(c->in[0]->dtype), gr_dtype_name(c->in[1]->dtype));
    mm_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->kind = MM_MATMUL;
    s->dtype = c->in[0]->dtype;
    if (c->need_grad && s->dtype != GR_F32 && s->dtype != GR_F64)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "no gradient for inputs of type %s",
                         gr_dtype_name(s->dtype));
    if ((st = matmul_geometry(c, &s->g, s->dtype))) return st;
    const mm_geom *g = &s->g;
    c->flops = 2 * g->batch * g->M * g->N * g->K;
    if (c->use_ref || s->dtype != GR_F32 || g->batch * g->M * g->N * g->K == 0) return GRAFT_OK;
    if ((st = matmul_dnnl_prepare(c, s))) return st;
    s->sgemm = s->prim == NULL;
    return GRAFT_OK;
}

static void matmul_forward(gr_opctx *c)
{
    const mm_state *s = c->params;
    const mm_geom *g = &s->g;
    if (s->prim) {
        dnnl_memory_set_data_handle(s->src, c->in[0]->data);
        dnnl_memory_set_data_handle(s->wei, c->in[1]->data);
        dnnl_memory_set_data_handle(s->dst, c->out[0]->data);
        dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, s->src },
                                    { DNNL_ARG_WEIGHTS, s->wei },
                                    { DNNL_ARG_DST, s->dst },
                                    { DNNL_ARG_SCRATCHPAD, s->spad } };
        if (s->spad) dnnl_memory_set_data_handle(s->spad, c->scratch);
        dnnl_primitive_execute(s->prim, c->dnnl->stream, s->spad ? 4 : 3, args);
        dnnl_stream_wait(c->dnnl->stream);
    } else if (s->sgemm) {
        const float *a = c->in[0]->data, *b = c->in[1]->data;
        float *y = c->out[0]->data;
        for (int64_t i = 0; i < g->batch; i++) {
            int64_t oa, ob;
            batch_offsets(g, i, &oa, &ob);
            dnnl_sgemm('N', 'N', g->M, g->N, g->K, 1.0f, a + oa, g->K, b + ob, g->N, 0.0f,
                       y + i * g->M * g->N, g->N);
        }
    } else matmul_ref(s, c->out[0], c->in[0], c->in[1]);
}

/* ---- Gemm ---- */

static double ld(const void *p, int dtype, int64_t i)
{
    switch (dtype) {
    case GR_F32: return ((const float *)p)[i];
    case GR_F64: return ((const double *)p)[i];
    case GR_I32: return ((const int32_t *)p)[i];
    default: return (double)((const int64_t *)p)[i];
    }
}

static void st_(void *p, int dtype, int64_t i, double v)
{
    switch (dtype) {
    case GR_F32: ((float *)p)[i] = (float)v; break;
    case GR_F64: ((double *)p)[i] = v; break;
    case GR_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    default: ((int64_t *)p)[i] = (int64_t)v; break;
    }
}

/* beta * C, broadcast from (cm, cn) to (M, N), at element (m, n). */
static double gemm_bias(const mm_state *s, const gr_tensor *cc, int64_t m, int64_t n)
{
    if (!s->cm) return 0;
    int64_t i = (s->cm == 1 ? 0 : m) * s->cn + (s->cn == 1 ? 0 : n);
    return (double)s->beta * ld(cc->data, s->dtype, i);
}

/* y: (M, N) = alpha * A' B' + beta * C; a: (M, K) or (K, M) with transA, b: (K, N) or (N, K). */
static void gemm_ref(const mm_state *s, gr_tensor *y, const gr_tensor *a, const gr_tensor *b,
                     const gr_tensor *cc)
{
    const int64_t M = s->g.M, N = s->g.N, K = s->g.K;
    const int64_t ask = s->ta ? M : 1, asm_ = s->ta ? 1 : K; /* A' (m, k) at m*asm_ + k*ask */
    const int64_t bsk = s->tb ? 1 : N, bsn = s->tb ? K : 1;  /* B' (k, n) at k*bsk + n*bsn */
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += ld(a->data, s->dtype, m * asm_ + k * ask) *
                       ld(b->data, s->dtype, k * bsk + n * bsn);
            st_(y->data, s->dtype, m * N + n, (double)s->alpha * acc + gemm_bias(s, cc, m, n));
        }
}

/* C must broadcast unidirectionally to (M, N): rank <= 2, each dim 1 or equal. */
static int gemm_c_view(gr_opctx *c, mm_state *s)
{
    const gr_tensor *cc = c->nin > 2 ? c->in[2] : NULL;
    if (!cc) return GRAFT_OK;
    if (cc->dtype != (gr_dtype)s->dtype)
        return gr_op_err(c, GRAFT_E_FORMAT, "C has type %s, A has %s", gr_dtype_name(cc->dtype),
                         gr_dtype_name(s->dtype));
    const gr_shape *cs = &cc->shape;
    int64_t cm = cs->rank == 2 ? cs->d[0] : 1, cn = cs->rank >= 1 ? cs->d[cs->rank - 1] : 1;
    if (cs->rank > 2 || (cm != 1 && cm != s->g.M) || (cn != 1 && cn != s->g.N)) {
        char b[128];
        return gr_op_err(c, GRAFT_E_SHAPE, "C %s cannot be broadcast to (%lld, %lld)",
                         gr_shape_str(cs, b, sizeof b), (long long)s->g.M, (long long)s->g.N);
    }
    s->cm = cm, s->cn = cn;
    return GRAFT_OK;
}

static int gemm_prepare(gr_opctx *c)
{
    static const char *const attrs[] = { "alpha", "beta", "transA", "transB", NULL };
    int st;
    /* C became optional in Gemm-11 */
    if ((st = gr_op_check_arity(c, c->opset < 11 ? 3 : 2, 3, 1, 1)) ||
        (st = gr_op_check_attrs(c, attrs)) || (st = gr_op_check_dtype(c, 0, matmul_types)))
        return st;
    const gr_tensor *a = c->in[0], *b = c->in[1];
    if (b->dtype != a->dtype)
        return gr_op_err(c, GRAFT_E_FORMAT, "inputs have different types %s and %s",
                         gr_dtype_name(a->dtype), gr_dtype_name(b->dtype));
    if (a->shape.rank != 2 || b->shape.rank != 2)
        return gr_op_err(c, GRAFT_E_SHAPE, "A and B must be 2-D, got ranks %d and %d",
                         a->shape.rank, b->shape.rank);
    mm_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->kind = MM_GEMM;
    s->dtype = a->dtype;
    if (c->need_grad && s->dtype != GR_F32 && s->dtype != GR_F64)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "no gradient for inputs of type %s",
                         gr_dtype_name(s->dtype));
    int64_t ta = gr_attr_int(c, "transA", 0), tb = gr_attr_int(c, "transB", 0);
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
        return gr_op_err(c, GRAFT_E_FORMAT,
                         "attributes 'transA' and 'transB' must be 0 or 1, got %lld and %lld",
                         (long long)ta, (long long)tb);
    s->ta = (int)ta, s->tb = (int)tb;
    s->alpha = gr_attr_float(c, "alpha", 1.0f);
    s->beta = gr_attr_float(c, "beta", 1.0f);
    int64_t M = a->shape.d[ta], K = a->shape.d[1 - ta], Kb = b->shape.d[tb], N = b->shape.d[1 - tb];
    if (K != Kb)
        return gr_op_err(c, GRAFT_E_SHAPE,
                         "A' is (%lld, %lld) and B' is (%lld, %lld): inner dimensions differ",
                         (long long)M, (long long)K, (long long)Kb, (long long)N);
    s->g = (mm_geom){ .batch = 1, .M = M, .N = N, .K = K };
    if ((st = gemm_c_view(c, s))) return st;
    c->flops = 2 * M * N * K;
    s->sgemm = !c->use_ref && s->dtype == GR_F32 && M * N * K > 0;
    return gr_op_set_out(c, 0, s->dtype, &(gr_shape){ 2, { M, N } });
}

static void gemm_forward(gr_opctx *c)
{
    const mm_state *s = c->params;
    const gr_tensor *cc = s->cm ? c->in[2] : NULL;
    if (!s->sgemm) {
        gemm_ref(s, c->out[0], c->in[0], c->in[1], cc);
        return;
    }
    const int64_t M = s->g.M, N = s->g.N, K = s->g.K;
    float *y = c->out[0]->data;
    if (cc) {
#pragma omp parallel for schedule(static)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) y[m * N + n] = (float)gemm_bias(s, cc, m, n);
    }
    dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', M, N, K, s->alpha, c->in[0]->data,
               s->ta ? M : K, c->in[1]->data, s->tb ? K : N, cc ? 1.0f : 0.0f, y, N);
}

/* ---- MatMul backward ---- */

/* Reference: dA and/or dB for any float dtype, accumulated over broadcast batch matrices in
 * double. Batches run in order; rows of one batch matrix in parallel (they are disjoint). */
static void matmul_backward_ref(const mm_state *s, gr_tensor *da, gr_tensor *db, const gr_tensor *a,
                                const gr_tensor *b, const gr_tensor *dy)
{
    const mm_geom *g = &s->g;
    const int64_t M = g->M, N = g->N, K = g->K;
    const int dt = s->dtype;
    if (da) memset(da->data, 0, gr_tensor_bytes(da));
    if (db) memset(db->data, 0, gr_tensor_bytes(db));
    for (int64_t bi = 0; bi < g->batch; bi++) {
        int64_t oa, ob;
        batch_offsets(g, bi, &oa, &ob);
        const int64_t oy = bi * M * N;
        if (da) {
#pragma omp parallel for schedule(static)
            for (int64_t m = 0; m < M; m++)
                for (int64_t k = 0; k < K; k++) {
                    double acc = 0;
                    for (int64_t n = 0; n < N; n++)
                        acc += ld(dy->data, dt, oy + m * N + n) * ld(b->data, dt, ob + k * N + n);
                    int64_t i = oa + m * K + k;
                    st_(da->data, dt, i, ld(da->data, dt, i) + acc);
                }
        }
        if (db) {
#pragma omp parallel for schedule(static)
            for (int64_t k = 0; k < K; k++)
                for (int64_t n = 0; n < N; n++) {
                    double acc = 0;
                    for (int64_t m = 0; m < M; m++)
                        acc += ld(a->data, dt, oa + m * K + k) * ld(dy->data, dt, oy + m * N + n);
                    int64_t i = ob + k * N + n;
                    st_(db->data, dt, i, ld(db->data, dt, i) + acc);
                }
        }
    }
}

static void matmul_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const mm_state *s = c->params;
    const mm_geom *g = &s->g;
    gr_tensor *da = din[0], *db = din[1];
    if (!dout[0] || g->batch * g->M * g->N * g->K == 0) {
        if (da) memset(da->data, 0, gr_tensor_bytes(da));
        if (db) memset(db->data, 0, gr_tensor_bytes(db));
        return;
    }
    if (!s->prim && !s->sgemm) {
        matmul_backward_ref(s, da, db, c->in[0], c->in[1], dout[0]);
        return;
    }
    const int64_t M = g->M, N = g->N, K = g->K;
    const float *a = c->in[0]->data, *b = c->in[1]->data, *dy = dout[0]->data;
    if (c->in[1]->shape.rank <= 2) { /* B has no batch dims: A's batch folds into the rows */
        const int64_t rows = g->batch * M;
        if (da) dnnl_sgemm('N', 'T', rows, K, N, 1.0f, dy, N, b, N, 0.0f, da->data, K);
        if (db) dnnl_sgemm('T', 'N', K, N, rows, 1.0f, a, K, dy, N, 0.0f, db->data, N);
        return;
    }
    /* Broadcast batch matrices accumulate (beta 1) into zeroed gradients. */
    if (da) memset(da->data, 0, gr_tensor_bytes(da));
    if (db) memset(db->data, 0, gr_tensor_bytes(db));
    for (int64_t i = 0; i < g->batch; i++) {
        int64_t oa, ob;
        batch_offsets(g, i, &oa, &ob);
        const float *dyi = dy + i * M * N;
        if (da)
            dnnl_sgemm('N', 'T', M, K, N, 1.0f, dyi, N, b + ob, N, 1.0f, (float *)da->data + oa, K);
        if (db)
            dnnl_sgemm('T', 'N', K, N, M, 1.0f, a + oa, K, dyi, N, 1.0f, (float *)db->data + ob, N);
    }
}

/* ---- Gemm backward ---- */

/* dC (cm, cn) = beta * dY (M, N) summed over the broadcast axes. */
static void gemm_backward_c(const mm_state *s, gr_tensor *dc, const gr_tensor *dy)
{
    const int64_t M = s->g.M, N = s->g.N;
    memset(dc->data, 0, gr_tensor_bytes(dc));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            int64_t i = (s->cm == 1 ? 0 : m) * s->cn + (s->cn == 1 ? 0 : n);
            st_(dc->data, s->dtype, i,
                ld(dc->data, s->dtype, i) + (double)s->beta * ld(dy->data, s->dtype, m * N + n));
        }
}

/* Reference: A' (m, k) lives at m*asm_ + k*ask of A, B' (k, n) at k*bsk + n*bsn of B. */
static void gemm_backward_ref(const mm_state *s, gr_tensor *da, gr_tensor *db, const gr_tensor *a,
                              const gr_tensor *b, const gr_tensor *dy)
{
    const int64_t M = s->g.M, N = s->g.N, K = s->g.K;
    const int64_t ask = s->ta ? M : 1, asm_ = s->ta ? 1 : K, bsk = s->tb ? 1 : N,
                  bsn = s->tb ? K : 1;
    const int dt = s->dtype;
    if (da) {
#pragma omp parallel for schedule(static)
        for (int64_t m = 0; m < M; m++)
            for (int64_t k = 0; k < K; k++) {
                double acc = 0;
                for (int64_t n = 0; n < N; n++)
                    acc += ld(dy->data, dt, m * N + n) * ld(b->data, dt, k * bsk + n * bsn);
                st_(da->data, dt, m * asm_ + k * ask, (double)s->alpha * acc);
            }
    }
    if (db) {
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t m = 0; m < M; m++)
                    acc += ld(a->data, dt, m * asm_ + k * ask) * ld(dy->data, dt, m * N + n);
                st_(db->data, dt, k * bsk + n * bsn, (double)s->alpha * acc);
            }
    }
}

static void gemm_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    const mm_state *s = c->params;
    gr_tensor *da = din[0], *db = din[1], *dc = c->nin > 2 ? din[2] : NULL;
    const int64_t M = s->g.M, N = s->g.N, K = s->g.K;
    const gr_tensor *dy = dout[0];
    if (!dy) {
        gr_op_zero_grads(c, din);
        return;
    }
    if (dc) gemm_backward_c(s, dc, dy);
    if (!s->sgemm) {
        if (M * N * K == 0) { /* an empty product: A' B' contributes nothing */
            if (da) memset(da->data, 0, gr_tensor_bytes(da));
            if (db) memset(db->data, 0, gr_tensor_bytes(db));
            return;
        }
        gemm_backward_ref(s, da, db, c->in[0], c->in[1], dy);
        return;
    }
    const float *a = c->in[0]->data, *b = c->in[1]->data, *g = dy->data;
    const float al = s->alpha;
    const int64_t lda = s->ta ? M : K, ldb = s->tb ? K : N;
    if (da) {
        if (!s->ta) /* dA (M, K) = alpha dY B'^T */
            dnnl_sgemm('N', s->tb ? 'N' : 'T', M, K, N, al, g, N, b, ldb, 0.0f, da->data, K);
        else /* dA (K, M) = alpha B' dY^T */
            dnnl_sgemm(s->tb ? 'T' : 'N', 'T', K, M, N, al, b, ldb, g, N, 0.0f, da->data, M);
    }
    if (db) {
        if (!s->tb) /* dB (K, N) = alpha A'^T dY */
            dnnl_sgemm(s->ta ? 'N' : 'T', 'N', K, N, M, al, a, lda, g, N, 0.0f, db->data, N);
        else /* dB (N, K) = alpha dY^T A' */
            dnnl_sgemm('T', s->ta ? 'T' : 'N', N, K, M, al, g, N, a, lda, 0.0f, db->data, K);
    }
}

/* ---- MatMulInteger ---- */

static int64_t ld_int(const gr_tensor *t, int64_t i)
{
    return t->dtype == GR_U8 ? ((const uint8_t *)t->data)[i] : ((const int8_t *)t->data)[i];
}

/* A zero point: numel 1 (per tensor), `len` elements as a vector (per row of A / column of B),
 * or (..., len) / (..., len, 1) with one value per batch matrix of its input (`mats`). */
static int zero_point_count(gr_opctx *c, int i, int64_t len, int64_t mats, int64_t *n)
{
    const gr_tensor *z = c->nin > i ? c->in[i] : NULL;
    *n = 0;
    if (!z) return GRAFT_OK;
    if (z->dtype != c->in[i - 2]->dtype)
        return gr_op_err(c, GRAFT_E_FORMAT, "input %d (zero point) has type %s, its input has %s",
                         i, gr_dtype_name(z->dtype), gr_dtype_name(c->in[i - 2]->dtype));
    int64_t k = gr_numel(&z->shape);
    if (k == 1 || (k == len && z->shape.rank == 1) || (k == len * mats && z->shape.rank >= 2)) {
        *n = k;
        return GRAFT_OK;
    }
    char b[128];
    return gr_op_err(c, GRAFT_E_SHAPE,
                     "zero point input %d has shape %s; expected a scalar, %lld values or "
                     "one per batch matrix row/column",
                     i, gr_shape_str(&z->shape, b, sizeof b), (long long)len);
}

static int mmint_prepare(gr_opctx *c)
{
    static const char *const no_attrs[] = { NULL };
    static const int int8_types[] = { GR_U8, GR_I8, 0 };
    int st;
    if ((st = gr_op_check_arity(c, 2, 4, 1, 1)) || (st = gr_op_check_attrs(c, no_attrs)) ||
        (st = gr_op_check_dtype(c, 0, int8_types)) || (st = gr_op_check_dtype(c, 1, int8_types)))
        return st;
    mm_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->kind = MM_INTEGER;
    if ((st = matmul_geometry(c, &s->g, GR_I32))) return st;
    const gr_shape *a = &c->in[0]->shape, *b = &c->in[1]->shape;
    int64_t MK = s->g.M * s->g.K, KN = s->g.K * s->g.N;
    int64_t amats = MK > 0 ? gr_numel(a) / MK : 0, bmats = KN > 0 ? gr_numel(b) / KN : 0;
    if ((st = zero_point_count(c, 2, s->g.M, amats, &s->azn)) ||
        (st = zero_point_count(c, 3, s->g.N, bmats, &s->bzn)))
        return st;
    c->flops = 2 * s->g.batch * s->g.M * s->g.N * s->g.K;
    return GRAFT_OK;
}

/* y: (batch, M, N) int32; a, b int8/uint8 with zero points as in zero_point_count. */
static void mmint_forward(gr_opctx *c)
{
    const mm_state *s = c->params;
    const mm_geom *g = &s->g;
    const gr_tensor *a = c->in[0], *b = c->in[1], *az = s->azn ? c->in[2] : NULL,
                    *bz = s->bzn ? c->in[3] : NULL;
    int32_t *y = c->out[0]->data;
    const int64_t M = g->M, N = g->N, K = g->K, MK = M * K > 0 ? M * K : 1,
                  KN = K * N > 0 ? K * N : 1;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < g->batch * M; r++) {
        int64_t oa, ob, m = r % M;
        batch_offsets(g, r / M, &oa, &ob); /* oa / MK: A's own matrix index */
        int64_t za = !az ? 0 : ld_int(az, s->azn == 1 ? 0 : s->azn == M ? m : oa / MK * M + m);
        for (int64_t n = 0; n < N; n++) {
            int64_t zb = !bz ? 0 : ld_int(bz, s->bzn == 1 ? 0 : s->bzn == N ? n : ob / KN * N + n);
            uint32_t acc = 0; /* the spec lets the 32-bit accumulation wrap */
            for (int64_t k = 0; k < K; k++)
                acc +=
                    (uint32_t)((ld_int(a, oa + m * K + k) - za) * (ld_int(b, ob + k * N + n) - zb));
            y[r * N + n] = (int32_t)acc;
        }
    }
}

const gr_opdef gr_ops_matmul[] = {
    { "MatMul", matmul_prepare, matmul_forward, mm_release, GR_OPF_BWD_NO_Y, matmul_backward,
      NULL },
    { "Gemm", gemm_prepare, gemm_forward, mm_release, GR_OPF_BWD_NO_Y, gemm_backward, NULL },
    { "MatMulInteger", mmint_prepare, mmint_forward, mm_release, 0, NULL, NULL },
    { 0 },
};
