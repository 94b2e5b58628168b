/* gradcheck.h — runs one op standalone in training mode (prepare, forward, backward) and checks
 * its backward against central finite differences of the op's own forward.
 *
 * The scalar checked is L(x) = sum_k <r_k, out_k(x)> with fixed random r_k, so dL/d out_k = r_k
 * is what backward receives. For each input with a gradient, up to GC_MAX_PROBES elements (all
 * of them for small tensors) are perturbed by +-h and L is recomputed in double from the two
 * forwards; the analytic element must agree within atol + rtol * max(|analytic|, |numeric|).
 * A directional derivative along a random vector over the whole tensor is checked as well, which
 * catches errors in elements the probes skipped.
 *
 * Inputs and outputs are plain (c.layouts = 0). Use inputs away from kinks (Relu at 0, MaxPool
 * ties) or the finite difference itself is wrong. Nodes run through oprun.h, and every op checked
 * here is recorded with or_cover (test_op_table reads it).
 *
 * Usage:
 *   gc_case k = {.op = "Conv", .opset = 17, .attrs = a, .nattr = 2, .nin = 3, .ins = ins,
 *                .nout = 1, .need = 0x7, .use_ref = 0};
 *   gc_check(&k, "conv 3x3 stride 2");            // counts CHECKs in harness.h's th_pass/th_fail
 * Integer inputs (shapes, axes) are passed as usual with need bit 0: they stay constant (their
 * data is visible to prepare). Inputs with their need bit set are hidden from prepare, as
 * trainable weights are. */
#ifndef GR_GRADCHECK_H
#define GR_GRADCHECK_H

#include "harness.h"
#include "oprun.h"

#include <stdint.h>
#include <string.h>

#define GC_MAX_IN     OR_MAX_IN
#define GC_MAX_OUT    OR_MAX_OUT
#define GC_MAX_PROBES 96

typedef struct gc_case {
    const char *op;
    int opset;
    const gr_attr *attrs;
    int nattr;
    int nin;
    const gr_tensor *ins; /* dtype 0: an absent optional input */
    int nout;             /* outputs the node declares (optional ones included) */
    uint32_t need;        /* bit i: check dL/d in[i] */
    int use_ref;          /* 1: the plain C reference kernels */
    int training;         /* forward in training mode (BatchNorm batch statistics) */
    double h;             /* finite-difference step (0: 1e-2) */
    double rtol, atol;    /* 0: 1e-2 and 1e-3 */
    uint32_t out_mask;    /* outputs that get a gradient (0: all float ones) */
} gc_case;

/* The node: oprun.h's (gc_node kept as the gradient tests' name for it). */
typedef or_node gc_node;

static inline gr_dnnl *gc_dnnl_handle(void) { return or_dnnl(); }

/* Prepares the node (inputs copied by value; data pointers kept; those with a need bit hidden
 * from prepare). Returns a status; the node is freed on failure. */
static inline int gc_prepare(gc_node *n, const gc_case *k, const gr_tensor *ins)
{
    return or_prepare(n, &(or_spec){ .op = k->op,
                                     .opset = k->opset,
                                     .attrs = k->attrs,
                                     .nattr = k->nattr,
                                     .nin = k->nin,
                                     .ins = ins,
                                     .nout = k->nout,
                                     .use_ref = k->use_ref,
                                     .training = k->training,
                                     .need_grad = k->need });
}

static inline void gc_free(gc_node *n) { or_free(n); }

static inline void gc_fill(float *x, int64_t n, uint64_t seed, float lo, float hi)
{
    gr_rng r;
    gr_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)gr_rng_uniform(&r);
}

static inline int gc_out_has_grad(const gc_case *k, const gc_node *n, int o)
{
    if (k->out_mask) return (int)(k->out_mask >> o & 1);
    return n->out[o].dtype == GR_F32;
}

/* L = sum_k <r_k, out_k> after one forward; state-changing inputs (running stats) are restored
 * by the caller, who passes copies. */
static inline double gc_loss(gc_node *n, const gc_case *k, float *const *r)
{
    gr_rng_seed(&n->rng, 1234); /* the same dropout mask on every forward */
    n->op->forward(&n->c);
    double L = 0;
    for (int o = 0; o < k->nout; o++) {
        if (!r[o]) continue;
        const float *y = n->out[o].data;
        for (int64_t j = 0, m = gr_numel(&n->out[o].shape); j < m; j++) L += (double)r[o][j] * y[j];
    }
    return L;
}

/* Copies of the inputs the op may write (BatchNorm's running stats in training), restored
 * before every forward so each finite difference sees the same state. */
typedef struct gc_saved {
    void *copy[GC_MAX_IN];
    size_t bytes[GC_MAX_IN];
} gc_saved;

static inline void gc_save(gc_saved *s, const gc_node *n, int nin)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < nin; i++) {
        if (!n->pin[i] || !n->in[i].data) continue;
        s->bytes[i] = gr_tensor_bytes(&n->in[i]);
        s->copy[i] = malloc(s->bytes[i] + 1);
        memcpy(s->copy[i], n->in[i].data, s->bytes[i]);
    }
}
static inline void gc_restore(const gc_saved *s, gc_node *n, int nin, uint32_t skip)
{
    for (int i = 0; i < nin; i++)
        if (s->copy[i] && !(skip >> i & 1)) memcpy(n->in[i].data, s->copy[i], s->bytes[i]);
}
static inline void gc_saved_free(gc_saved *s)
{
    for (int i = 0; i < GC_MAX_IN; i++) free(s->copy[i]);
}

/* Runs the check; returns 1 when every comparison held. Reports through CHECK. */
static inline int gc_check(const gc_case *k, const char *what)
{
    double h = k->h > 0 ? k->h : 1e-2, rtol = k->rtol > 0 ? k->rtol : 1e-2,
           atol = k->atol > 0 ? k->atol : 1e-3;
    /* Inputs are copied so the checker may perturb them. */
    gr_tensor ins[GC_MAX_IN];
    void *own[GC_MAX_IN] = { 0 };
    for (int i = 0; i < k->nin; i++) {
        ins[i] = k->ins[i];
        if (!ins[i].dtype) continue;
        size_t b = gr_tensor_bytes(&ins[i]);
        own[i] = malloc(b + 1);
        memcpy(own[i], k->ins[i].data, b);
        ins[i].data = own[i];
    }
    gc_node n;
    int st = gc_prepare(&n, k, ins), ok = 1;
    CHECK(st == GRAFT_OK, "%s: prepare: %s", what, graft_last_error());
    if (st) {
        gc_free(&n);
        for (int i = 0; i < k->nin; i++) free(own[i]);
        return 0;
    }
    CHECK(n.def->backward != NULL, "%s: %s has no backward", what, k->op);
    if (n.def->backward) or_cover(k->op);
    if (!n.def->backward) {
        gc_free(&n);
        for (int i = 0; i < k->nin; i++) free(own[i]);
        return 0;
    }
    gc_saved saved;
    gc_save(&saved, &n, k->nin);

    float *r[GC_MAX_OUT] = { 0 };
    gr_tensor dout_t[GC_MAX_OUT], *dout[GC_MAX_OUT] = { 0 };
    for (int o = 0; o < k->nout; o++) {
        if (!gc_out_has_grad(k, &n, o)) continue;
        int64_t m = gr_numel(&n.out[o].shape);
        r[o] = malloc((size_t)m * sizeof(float) + 4);
        gc_fill(r[o], m, 77 + (uint64_t)o, -1.f, 1.f);
        dout_t[o] = n.out[o];
        dout_t[o].data = r[o];
        dout[o] = &dout_t[o];
    }
    gr_tensor din_t[GC_MAX_IN], *din[GC_MAX_IN] = { 0 };
    for (int i = 0; i < k->nin; i++) {
        if (!(k->need >> i & 1)) continue;
        din_t[i] = n.in[i];
        din_t[i].data = calloc(1, gr_tensor_bytes(&n.in[i]) + 4);
        /* Poison: backward must overwrite, not accumulate. */
        for (int64_t j = 0, m = gr_numel(&n.in[i].shape); j < m; j++)
            ((float *)din_t[i].data)[j] = 1e6f;
        din[i] = &din_t[i];
    }
    gc_loss(&n, k, r);
    n.op->backward(&n.c, dout, din);

    for (int i = 0; i < k->nin && ok; i++) {
        if (!din[i]) continue;
        float *x = n.in[i].data;
        const float *g = din[i]->data;
        int64_t m = gr_numel(&n.in[i].shape);
        int64_t step = m <= GC_MAX_PROBES ? 1 : (m + GC_MAX_PROBES - 1) / GC_MAX_PROBES;
        double worst = 0;
        int64_t worst_j = -1;
        double worst_a = 0, worst_num = 0;
        for (int64_t j = (m > GC_MAX_PROBES ? (int64_t)(7 % step) : 0); j < m; j += step) {
            float x0 = x[j];
            double hj = h * (fabs(x0) > 1 ? fabs(x0) : 1);
            gc_restore(&saved, &n, k->nin, 1u << i);
            x[j] = (float)(x0 + hj);
            double Lp = gc_loss(&n, k, r);
            gc_restore(&saved, &n, k->nin, 1u << i);
            x[j] = (float)(x0 - hj);
            double Lm = gc_loss(&n, k, r);
            x[j] = x0;
            double hp = (double)(float)(x0 + hj) - x0, hm = x0 - (double)(float)(x0 - hj);
            double num = (Lp - Lm) / (hp + hm), a = g[j];
            double excess = fabs(a - num) - (atol + rtol * fmax(fabs(a), fabs(num)));
            if (excess > worst || isnan(a)) {
                worst = isnan(a) ? INFINITY : excess;
                worst_j = j, worst_a = a, worst_num = num;
            }
        }
        char w[256];
        snprintf(w, sizeof w, "%s: d/d input %d (%s)", what, i,
                 k->use_ref ? "reference" : "oneDNN");
        CHECK(worst_j < 0, "%s: element %lld: backward %.6g, finite difference %.6g", w,
              (long long)worst_j, worst_a, worst_num);
        if (worst_j >= 0) ok = 0;

        /* Directional derivative along a random v over every element. */
        float *v = malloc((size_t)m * sizeof(float) + 4);
        float *x0 = malloc((size_t)m * sizeof(float) + 4);
        gc_fill(v, m, 99 + (uint64_t)i, -1.f, 1.f);
        memcpy(x0, x, (size_t)m * sizeof(float));
        double dir = 0, vmax = 0;
        for (int64_t j = 0; j < m; j++) dir += (double)g[j] * v[j];
        for (int64_t j = 0; j < m; j++) vmax = fmax(vmax, fabs(x0[j]));
        double hv = h * (vmax > 1 ? vmax : 1) * 0.25;
        gc_restore(&saved, &n, k->nin, 1u << i);
        for (int64_t j = 0; j < m; j++) x[j] = (float)(x0[j] + hv * v[j]);
        double Lp = gc_loss(&n, k, r);
        gc_restore(&saved, &n, k->nin, 1u << i);
        for (int64_t j = 0; j < m; j++) x[j] = (float)(x0[j] - hv * v[j]);
        double Lm = gc_loss(&n, k, r);
        memcpy(x, x0, (size_t)m * sizeof(float));
        double num = (Lp - Lm) / (2 * hv);
        double scale = fmax(fabs(dir), fabs(num));
        CHECK(fabs(dir - num) <= 10 * atol + rtol * scale,
              "%s: directional derivative %.6g, finite difference %.6g", w, dir, num);
        if (!(fabs(dir - num) <= 10 * atol + rtol * scale)) ok = 0;
        free(v);
        free(x0);
    }
    gc_restore(&saved, &n, k->nin, 0);
    gc_saved_free(&saved);
    for (int o = 0; o < GC_MAX_OUT; o++) free(r[o]);
    for (int i = 0; i < k->nin; i++) {
        if (din[i]) free(din_t[i].data);
        free(own[i]);
    }
    gc_free(&n);
    return ok;
}

/* Runs backward once with both kernel sets on the same case and compares the input gradients
 * (for shapes too big for finite differences). Returns 1 when they agree. */
static inline int gc_compare_kernels(const gc_case *k, double rtol, double atol, const char *what)
{
    float *g[2][GC_MAX_IN] = { { 0 } };
    int64_t m[GC_MAX_IN] = { 0 };
    for (int ref = 0; ref <= 1; ref++) {
        gc_case kk = *k;
        kk.use_ref = ref;
        gr_tensor ins[GC_MAX_IN];
        void *own[GC_MAX_IN] = { 0 };
        for (int i = 0; i < k->nin; i++) {
            ins[i] = k->ins[i];
            if (!ins[i].dtype) continue;
            size_t b = gr_tensor_bytes(&ins[i]);
            own[i] = malloc(b + 1);
            memcpy(own[i], k->ins[i].data, b);
            ins[i].data = own[i];
        }
        gc_node n;
        int st = gc_prepare(&n, &kk, ins);
        CHECK(st == GRAFT_OK, "%s: prepare: %s", what, graft_last_error());
        if (st || !n.def->backward) {
            gc_free(&n);
            for (int i = 0; i < k->nin; i++) free(own[i]);
            return 0;
        }
        or_cover(k->op);
        float *r[GC_MAX_OUT] = { 0 };
        gr_tensor dout_t[GC_MAX_OUT], *dout[GC_MAX_OUT] = { 0 }, din_t[GC_MAX_IN],
                                      *din[GC_MAX_IN] = { 0 };
        for (int o = 0; o < k->nout; o++) {
            if (!gc_out_has_grad(k, &n, o)) continue;
            int64_t mo = gr_numel(&n.out[o].shape);
            r[o] = malloc((size_t)mo * sizeof(float) + 4);
            gc_fill(r[o], mo, 77 + (uint64_t)o, -1.f, 1.f);
            dout_t[o] = n.out[o];
            dout_t[o].data = r[o];
            dout[o] = &dout_t[o];
        }
        for (int i = 0; i < k->nin; i++) {
            if (!(k->need >> i & 1)) continue;
            m[i] = gr_numel(&n.in[i].shape);
            g[ref][i] = calloc((size_t)m[i] + 1, sizeof(float));
            din_t[i] = n.in[i];
            din_t[i].data = g[ref][i];
            din[i] = &din_t[i];
        }
        gr_rng_seed(&n.rng, 1234);
        n.op->forward(&n.c);
        n.op->backward(&n.c, dout, din);
        for (int o = 0; o < GC_MAX_OUT; o++) free(r[o]);
        for (int i = 0; i < k->nin; i++) free(own[i]);
        gc_free(&n);
    }
    int ok = 1;
    for (int i = 0; i < k->nin; i++) {
        if (!g[0][i]) continue;
        char w[256];
        snprintf(w, sizeof w, "%s: d/d input %d, oneDNN vs reference", what, i);
        ok &= th_close(g[0][i], g[1][i], (long)m[i], rtol, atol, w);
        free(g[0][i]);
        free(g[1][i]);
    }
    return ok;
}

#endif
