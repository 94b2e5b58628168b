/* test_grad_norm.c — BatchNormalization in training mode and backward, LayerNormalization and
 * InstanceNormalization backward.
 *  - central finite differences of the ops' own forward (tests/gradcheck.h) for BatchNorm with
 *    batch statistics (the engine training), with fixed statistics (a frozen BatchNorm), with
 *    the node's own training_mode = 1; LayerNorm on every axis, with broadcast Scale/B, without
 *    B, with gradients reaching its Mean and InvStdDev outputs; InstanceNorm; both kernel sets;
 *  - BatchNorm training against PyTorch (tests/grad_norm_torch.py: F.batch_norm(training=True,
 *    momentum=0.1), two steps): Y, the running mean/var updated in place, dX, dScale, dB, with
 *    the running stats hidden at prepare as the engine does;
 *  - BatchNorm on a oneDNN blocked layout (nChw16c, C = 24 so the last block is padded, made by
 *    a reorder here) against the plain path. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include "gradcheck.h"

#include <unistd.h>

static gr_tensor ften(const gr_shape *s, float *data)
{
    return (gr_tensor){ .dtype = GR_F32, .shape = *s, .data = data };
}

/* ---- finite differences ---- */

static void bn_fd_cases(void)
{
    static const gr_shape shapes[] = { { 4, { 3, 4, 2, 3 } },
                                       { 2, { 6, 3 } },
                                       { 5, { 2, 3, 2, 2, 2 } },
                                       { 6, { 2, 2, 2, 1, 2, 2 } } };
    static float x[256], w[8], b[8], rm[8], rv[8];
    for (int si = 0; si < 4; si++) {
        const gr_shape *xs = &shapes[si];
        int64_t C = xs->d[1];
        gr_shape cs = { 1, { C } };
        gc_fill(x, gr_numel(xs), 21 + (uint64_t)si, -2.f, 2.f);
        gc_fill(w, C, 22, 0.5f, 1.5f);
        gc_fill(b, C, 23, -0.5f, 0.5f);
        gc_fill(rm, C, 24, -0.3f, 0.3f);
        gc_fill(rv, C, 25, 0.5f, 1.5f);
        gr_tensor in[5] = { ften(xs, x), ften(&cs, w), ften(&cs, b), ften(&cs, rm), ften(&cs, rv) };
        for (int mode = 0; mode < 3; mode++) /* engine training, frozen, node's training_mode */
            for (int ref = 0; ref <= 1; ref++) {
                if (mode == 2 && !ref)
                    continue; /* the node's training mode has only the reference kernel */
                gr_attr a[2] = { fval("epsilon", 1e-3f), ival("training_mode", 1) };
                gc_case k = { .op = "BatchNormalization",
                              .opset = 15,
                              .attrs = a,
                              .nattr = mode == 2 ? 2 : 1,
                              .nin = 5,
                              .ins = in,
                              .nout = 1,
                              .need = 7,
                              .use_ref = ref,
                              .training = mode == 0 };
                char w_[128], sb[64];
                static const char *names[] = { "training", "frozen", "training_mode=1" };
                snprintf(w_, sizeof w_, "BatchNorm %s %s", names[mode],
                         gr_shape_str(xs, sb, sizeof sb));
                gc_check(&k, w_);
                k.need = 6; /* the first trainable BatchNorm: no dX */
                snprintf(w_, sizeof w_, "BatchNorm %s %s, no dX", names[mode],
                         gr_shape_str(xs, sb, sizeof sb));
                gc_check(&k, w_);
            }
    }
    /* larger, oneDNN vs reference */
    static float bx[8 * 20 * 9 * 9], bw[20], bb[20], brm[20], brv[20];
    gr_shape xs = { 4, { 8, 20, 9, 9 } }, cs = { 1, { 20 } };
    gc_fill(bx, gr_numel(&xs), 31, -3.f, 3.f);
    gc_fill(bw, 20, 32, 0.5f, 1.5f);
    gc_fill(bb, 20, 33, -0.5f, 0.5f);
    gc_fill(brm, 20, 34, -0.3f, 0.3f);
    gc_fill(brv, 20, 35, 0.5f, 1.5f);
    gr_tensor in[5] = { ften(&xs, bx), ften(&cs, bw), ften(&cs, bb), ften(&cs, brm),
                        ften(&cs, brv) };
    for (int tr = 0; tr <= 1; tr++) {
        gc_case k = { .op = "BatchNormalization",
                      .opset = 15,
                      .nin = 5,
                      .ins = in,
                      .nout = 1,
                      .need = 7,
                      .training = tr };
        gc_compare_kernels(&k, 1e-3, 1e-4,
                           tr ? "BatchNorm training (8,20,9,9)" : "BatchNorm frozen (8,20,9,9)");
    }
}

static void ln_fd_cases(void)
{
    static float x[256], w[64], b[64];
    gr_shape xs = { 3, { 2, 3, 4 } };
    gc_fill(x, 24, 41, -2.f, 2.f);
    gc_fill(w, 24, 42, 0.5f, 1.5f);
    gc_fill(b, 24, 43, -0.5f, 0.5f);
    for (int axis = -3; axis < 3; axis++)
        for (int ref = 0; ref <= 1; ref++)
            for (int variant = 0; variant < 4; variant++) {
                int ax = axis < 0 ? axis + 3 : axis;
                gr_shape ws = { 0, { 0 } };
                for (int k = ax; k < 3; k++) ws.d[ws.rank++] = xs.d[k];
                if (variant == 2) { /* broadcast Scale / B: only the last axis, with leading 1s */
                    gr_shape bsh = { ws.rank, { 0 } };
                    for (int k = 0; k < ws.rank; k++) bsh.d[k] = k == ws.rank - 1 ? ws.d[k] : 1;
                    ws = bsh;
                }
                gr_tensor in[3] = { ften(&xs, x), ften(&ws, w), ften(&ws, b) };
                int nin = variant == 1 ? 2 : 3, nout = variant == 3 ? 3 : 1;
                gr_attr a[2] = { ival("axis", axis), fval("epsilon", 1e-3f) };
                gc_case k = { .op = "LayerNormalization",
                              .opset = 17,
                              .attrs = a,
                              .nattr = 2,
                              .nin = nin,
                              .ins = in,
                              .nout = nout,
                              .need = nin == 3 ? 7 : 3,
                              .use_ref = ref };
                static const char *names[] = { "", ", no B", ", broadcast Scale/B",
                                               ", Mean and InvStdDev outputs" };
                char w_[128];
                snprintf(w_, sizeof w_, "LayerNorm axis %d%s", axis, names[variant]);
                gc_check(&k, w_);
                k.need = 1; /* dX alone */
                snprintf(w_, sizeof w_, "LayerNorm axis %d%s, dX only", axis, names[variant]);
                gc_check(&k, w_);
                k.need = nin == 3 ? 6 : 2; /* parameters alone (oneDNN: diff_src into scratch) */
                snprintf(w_, sizeof w_, "LayerNorm axis %d%s, parameters only", axis,
                         names[variant]);
                gc_check(&k, w_);
            }
    /* larger, oneDNN vs reference, with Mean / InvStdDev gradients */
    static float bx[6 * 17 * 48];
    gr_shape bxs = { 3, { 6, 17, 48 } }, bws = { 1, { 48 } };
    gc_fill(bx, gr_numel(&bxs), 44, -3.f, 3.f);
    gc_fill(w, 48, 45, 0.5f, 1.5f);
    gc_fill(b, 48, 46, -0.5f, 0.5f);
    gr_tensor in[3] = { ften(&bxs, bx), ften(&bws, w), ften(&bws, b) };
    for (int nout = 1; nout <= 3; nout += 2) {
        gc_case k = {
            .op = "LayerNormalization", .opset = 17, .nin = 3, .ins = in, .nout = nout, .need = 7
        };
        gc_compare_kernels(&k, 1e-3, 1e-4,
                           nout == 1 ? "LayerNorm (6,17,48)" : "LayerNorm (6,17,48), 3 outputs");
    }
}

static void inorm_fd_cases(void)
{
    static float x[256], w[8], b[8];
    static const gr_shape shapes[] = { { 4, { 2, 3, 2, 3 } }, { 3, { 3, 2, 5 } } };
    for (int si = 0; si < 2; si++) {
        const gr_shape *xs = &shapes[si];
        gr_shape cs = { 1, { xs->d[1] } };
        gc_fill(x, gr_numel(xs), 51 + (uint64_t)si, -2.f, 2.f);
        gc_fill(w, 8, 52, 0.5f, 1.5f);
        gc_fill(b, 8, 53, -0.5f, 0.5f);
        gr_tensor in[3] = { ften(xs, x), ften(&cs, w), ften(&cs, b) };
        gr_attr a[1] = { fval("epsilon", 1e-3f) };
        for (uint32_t need = 1; need <= 7; need += 3) {
            gc_case k = { .op = "InstanceNormalization",
                          .opset = 6,
                          .attrs = a,
                          .nattr = 1,
                          .nin = 3,
                          .ins = in,
                          .nout = 1,
                          .need = need,
                          .use_ref = 1 };
            char w_[96];
            snprintf(w_, sizeof w_, "InstanceNorm rank %d need %u", xs->rank, need);
            gc_check(&k, w_);
        }
    }
}

/* ---- a BatchNorm runner: training forward (steps times) and backward, X optionally in a
 * oneDNN layout; every input hidden at prepare (the running stats too), as the engine does ---- */

typedef struct bn_io {
    float *y, *rm, *rv, *dx, *dw, *db; /* outputs, plain; rm, rv: the running stats after */
} bn_io;

static void reorder(const dnnl_memory_desc_t *smd, void *src, const dnnl_memory_desc_t *dmd,
                    void *dst)
{
    gr_dnnl *d = gc_dnnl_handle();
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    dnnl_memory_t ms, md;
    dnnl_reorder_primitive_desc_create(&pd, smd, d->engine, dmd, d->engine, NULL);
    dnnl_primitive_create(&p, pd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_create(&ms, smd, d->engine, src);
    dnnl_memory_create(&md, dmd, d->engine, dst);
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, ms }, { DNNL_ARG_TO, md } };
    dnnl_primitive_execute(p, d->stream, 2, args);
    dnnl_stream_wait(d->stream);
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(md);
    dnnl_primitive_destroy(p);
}

/* in: x, w, b, rm, rv, dy (plain). Returns 1 on success; o's buffers are malloc'ed. */
static int bn_run(const gr_shape *xs, float *const in[6], float eps, int use_ref, int blocked,
                  int steps, bn_io *o, const char *what)
{
    int64_t C = xs->d[1], n = gr_numel(xs);
    gr_shape cs = { 1, { C } };
    dnnl_memory_desc_t plain, bmd;
    gr_dnnl_plain_md(&plain, xs);
    dnnl_dims_t dims = { xs->d[0], xs->d[1], xs->d[2], xs->d[3] };
    dnnl_memory_desc_init_by_tag(&bmd, 4, dims, dnnl_f32, dnnl_nChw16c);
    size_t xbytes = blocked ? dnnl_memory_desc_get_size(&bmd) : (size_t)n * sizeof(float);
    float *x = aligned_alloc(64, (xbytes + 63) & ~(size_t)63),
          *dy = aligned_alloc(64, (xbytes + 63) & ~(size_t)63);
    float *dx = aligned_alloc(64, (xbytes + 63) & ~(size_t)63),
          *y = aligned_alloc(64, (xbytes + 63) & ~(size_t)63);
    memset(x, 0, xbytes), memset(dy, 0, xbytes);
    if (blocked) reorder(&plain, in[0], &bmd, x), reorder(&plain, in[5], &bmd, dy);
    else memcpy(x, in[0], xbytes), memcpy(dy, in[5], xbytes);
    o->rm = malloc((size_t)C * sizeof(float)), o->rv = malloc((size_t)C * sizeof(float));
    memcpy(o->rm, in[3], (size_t)C * sizeof(float));
    memcpy(o->rv, in[4], (size_t)C * sizeof(float));
    o->dw = malloc((size_t)C * sizeof(float)), o->db = malloc((size_t)C * sizeof(float));
    /* the running statistics (inputs 3, 4) are not known at prepare either */
    gr_tensor t[5] = { { .dtype = GR_F32,
                         .shape = *xs,
                         .layout = blocked ? &bmd : NULL,
                         .bytes = blocked ? xbytes : 0,
                         .data = x },
                       ften(&cs, in[1]),
                       ften(&cs, in[2]),
                       ften(&cs, o->rm),
                       ften(&cs, o->rv) };
    gr_attr a[2] = { fval("epsilon", eps), fval("momentum", 0.9f) };
    or_node nd;
    int st = or_prepare(&nd, &(or_spec){ .op = "BatchNormalization",
                                         .opset = 15,
                                         .attrs = a,
                                         .nattr = 2,
                                         .nin = 5,
                                         .ins = t,
                                         .hidden = 0x18,
                                         .use_ref = use_ref,
                                         .layouts = blocked,
                                         .training = 1,
                                         .need_grad = 7 }),
        ok = st == GRAFT_OK;
    CHECK(st == GRAFT_OK, "%s: prepare: %s (status %d)", what, graft_last_error(), st);
    if (ok && blocked) {
        ok = nd.out[0].layout && dnnl_memory_desc_equal(nd.out[0].layout, &bmd);
        CHECK(ok, "%s: Y should keep X's blocked layout", what);
    }
    if (ok) {
        for (int s = 0; s < steps; s++) or_forward(&nd);
        memcpy(y, nd.out[0].data, xbytes);
        gr_tensor dyt = nd.out[0], dxt = nd.in[0], dwt = nd.in[1], dbt = nd.in[2];
        dyt.data = dy, dxt.data = dx, dwt.data = o->dw, dbt.data = o->db;
        gr_tensor *dout[1] = { &dyt }, *din[5] = { &dxt, &dwt, &dbt, NULL, NULL };
        or_backward(&nd, dout, din);
    }
    or_free(&nd);
    o->y = malloc((size_t)n * sizeof(float)), o->dx = malloc((size_t)n * sizeof(float));
    if (blocked && ok) reorder(&bmd, y, &plain, o->y), reorder(&bmd, dx, &plain, o->dx);
    else memcpy(o->y, y, (size_t)n * sizeof(float)), memcpy(o->dx, dx, (size_t)n * sizeof(float));
    free(x), free(dy), free(dx), free(y);
    return ok;
}

static void bn_io_free(bn_io *o)
{
    free(o->y), free(o->rm), free(o->rv), free(o->dx), free(o->dw), free(o->db);
}

/* max |a - b| / max |b|: a norm-wise relative difference (elementwise would divide by ~0). */
static double rel_diff(const float *a, const float *b, int64_t n)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        if (isnan(a[i])) d = INFINITY;
        m = fmax(m, fabs((double)b[i]));
    }
    return d / (m > 0 ? m : 1);
}

static void bn_torch_case(void)
{
    const int64_t N = 8, C = 24, H = 7, W = 5, n = N * C * H * W;
    gr_shape xs = { 4, { N, C, H, W } };
    float *x = malloc((size_t)n * 4), *dy = malloc((size_t)n * 4), w[24], b[24], rm[24], rv[24];
    gc_fill(x, n, 61, -1.f, 3.f); /* a non-zero mean */
    gc_fill(dy, n, 62, -1.f, 1.f);
    gc_fill(w, C, 63, 0.5f, 1.5f);
    gc_fill(b, C, 64, -0.5f, 0.5f);
    gc_fill(rm, C, 65, -0.3f, 0.3f);
    gc_fill(rv, C, 66, 0.5f, 1.5f);
    char in_path[] = "/tmp/graft_bn_in_XXXXXX", out_path[] = "/tmp/graft_bn_out_XXXXXX";
    int fi = mkstemp(in_path), fo = mkstemp(out_path);
    CHECK(fi >= 0 && fo >= 0, "temporary files");
    FILE *f = fdopen(fi, "wb");
    const float *parts[6] = { x, w, b, rm, rv, dy };
    const int64_t sizes[6] = { n, C, C, C, C, n };
    for (int i = 0; i < 6; i++) fwrite(parts[i], 4, (size_t)sizes[i], f);
    fclose(f);
    close(fo);
    /* the script sits next to this file */
    char dir[1024], cmd[3072];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/grad_norm_torch.py %s %s %lld %lld %lld %lld 1e-5 0.1 2", dir,
             in_path, out_path, (long long)N, (long long)C, (long long)H, (long long)W);
    int rc = system(cmd);
    CHECK(rc == 0, "PyTorch reference (%s) exited with %d", cmd, rc);
    float *ref = malloc((size_t)(2 * n + 4 * C) * 4);
    f = fopen(out_path, "rb");
    size_t got = f ? fread(ref, 4, (size_t)(2 * n + 4 * C), f) : 0;
    if (f) fclose(f);
    unlink(in_path);
    unlink(out_path);
    CHECK(got == (size_t)(2 * n + 4 * C), "PyTorch reference output: %zu values", got);
    if (rc != 0 || got != (size_t)(2 * n + 4 * C)) {
        free(x), free(dy), free(ref);
        return;
    }
    const float *ty = ref, *trm = ty + n, *trv = trm + C, *tdx = trv + C, *tdw = tdx + n,
                *tdb = tdw + C;
    float *in[6] = { x, w, b, rm, rv, dy };
    for (int ref_k = 0; ref_k <= 1; ref_k++) {
        bn_io o;
        const char *k = ref_k ? "reference" : "oneDNN";
        if (bn_run(&xs, in, 1e-5f, ref_k, 0, 2, &o, k)) {
            struct {
                const char *name;
                const float *a, *b;
                int64_t n;
            } q[6] = { { "Y", o.y, ty, n },
                       { "running_mean", o.rm, trm, C },
                       { "running_var", o.rv, trv, C },
                       { "dX", o.dx, tdx, n },
                       { "dScale", o.dw, tdw, C },
                       { "dB", o.db, tdb, C } };
            for (int i = 0; i < 6; i++) {
                double r = rel_diff(q[i].a, q[i].b, q[i].n);
                printf("BatchNorm training vs PyTorch (%s, 2 steps): %-12s max rel diff %.3g\n", k,
                       q[i].name, r);
                CHECK(r <= 1e-5, "BatchNorm training vs PyTorch (%s): %s max rel diff %.3g > 1e-5",
                      k, q[i].name, r);
            }
        }
        bn_io_free(&o);
    }
    free(x), free(dy), free(ref);
}

/* nChw16c (C = 24: the second block padded) against the plain oneDNN path. */
static void bn_blocked_case(void)
{
    const int64_t N = 4, C = 24, H = 6, W = 5, n = N * C * H * W;
    gr_shape xs = { 4, { N, C, H, W } };
    float *x = malloc((size_t)n * 4), *dy = malloc((size_t)n * 4), w[24], b[24], rm[24], rv[24];
    gc_fill(x, n, 71, -2.f, 2.f);
    gc_fill(dy, n, 72, -1.f, 1.f);
    gc_fill(w, C, 73, 0.5f, 1.5f);
    gc_fill(b, C, 74, -0.5f, 0.5f);
    gc_fill(rm, C, 75, -0.3f, 0.3f);
    gc_fill(rv, C, 76, 0.5f, 1.5f);
    float *in[6] = { x, w, b, rm, rv, dy };
    bn_io p, q;
    int okp = bn_run(&xs, in, 1e-5f, 0, 0, 1, &p, "plain"),
        okq = bn_run(&xs, in, 1e-5f, 0, 1, 1, &q, "nChw16c");
    if (okp && okq) {
        th_close(q.y, p.y, (long)n, 1e-5, 1e-6, "BatchNorm nChw16c vs plain: Y");
        th_close(q.rm, p.rm, (long)C, 1e-5, 1e-6, "BatchNorm nChw16c vs plain: running_mean");
        th_close(q.rv, p.rv, (long)C, 1e-5, 1e-6, "BatchNorm nChw16c vs plain: running_var");
        th_close(q.dx, p.dx, (long)n, 1e-4, 1e-6, "BatchNorm nChw16c vs plain: dX");
        th_close(q.dw, p.dw, (long)C, 1e-4, 1e-5, "BatchNorm nChw16c vs plain: dScale");
        th_close(q.db, p.db, (long)C, 1e-4, 1e-5, "BatchNorm nChw16c vs plain: dB");
    }
    bn_io_free(&p);
    bn_io_free(&q);
    free(x), free(dy);
}

int main(void)
{
    bn_fd_cases();
    ln_fd_cases();
    inorm_fd_cases();
    bn_torch_case();
    bn_blocked_case();
    return th_finish();
}
