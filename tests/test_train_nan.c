/* test_train_nan.c — a diverging step changes nothing. On the tiny CNN of
 * scripts/make_tiny_cnn.py (two training BatchNorms) with Fashion-MNIST batches:
 *   - a batch with one NaN pixel: gr_trainer_step fails with GRAFT_E_NUMERIC naming the step, and
 *     the parameter block, AdamW's m and v, the step count, the rng and the BatchNorm running
 *     statistics are bit-identical to before the step; the next step on a clean batch succeeds
 *     and the session is then bit-identical to one that never saw the bad batch (the reference:
 *     a second trainer given only the clean batches);
 *   - a learning rate of 1e30: within a few steps the loss or gradients overflow; that step fails
 *     the same way with the state untouched.
 *   test_train_nan [MODEL.onnx]   (default: $GRAFT_TINY_CNN) */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "data/data.h"
#include "io/io.h"
#include "train/train.h"

#include <string.h>

#define B       32
#define PIX     (3 * 28 * 28)
#define FASHION "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

static const char *model;

/* Every float initializer but the BatchNorm running statistics is trained. */
static unsigned char *pick_trainable(const gr_graph *g)
{
    unsigned char *tr = calloc((size_t)g->nvalues + 1, 1);
    for (int v = 0; tr && v < g->nvalues; v++)
        tr[v] = g->values[v].is_init && g->values[v].t.dtype == GR_F32;
    for (int k = 0; tr && k < g->nnodes; k++)
        if (strcmp(g->nodes[k].op_type, "BatchNormalization") == 0)
            for (int i = 3; i < g->nodes[k].nin; i++)
                if (g->nodes[k].in[i] >= 0) tr[g->nodes[k].in[i]] = 0;
    return tr;
}

typedef struct session {
    gr_graph *g;
    unsigned char *tr;
    gr_trainer *t;
} session;

static void open_session(session *s, double lr)
{
    if (gr_onnx_load(model, &s->g) || gr_graph_check_ops(s->g) || !(s->tr = pick_trainable(s->g))) {
        fprintf(stderr, "%s\n", graft_last_error());
        exit(2);
    }
    gr_trainer_cfg cfg = { .loss = GR_LOSS_CE,
                           .seed = 3,
                           .opt = {
                               .kind = GR_ADAMW, .lr = lr, .weight_decay = lr < 1 ? 0.01 : 0 } };
    if (gr_trainer_new(s->g, s->tr, &cfg, &s->t)) {
        fprintf(stderr, "%s\n", graft_last_error());
        exit(2);
    }
}

static void close_session(session *s)
{
    gr_trainer_free(s->t);
    gr_graph_free(s->g);
    free(s->tr);
}

/* Everything a step may change, copied. */
typedef struct snap {
    float *w, *m, *v, *buf;
    int64_t step, opt_step;
    gr_rng rng;
} snap;

static float *dup(const float *x, int64_t n)
{
    float *y = malloc((size_t)n * sizeof *y + 4);
    if (y) memcpy(y, x, (size_t)n * sizeof *y);
    return y;
}

static snap take(const gr_trainer *t)
{
    return (snap){ dup(t->w, t->total),
                   dup(t->opt.m, t->total),
                   dup(t->opt.v, t->total),
                   dup(t->buf, t->nbuf),
                   t->step,
                   t->opt.step,
                   t->rng };
}

static void drop(snap *s)
{
    free(s->w);
    free(s->m);
    free(s->v);
    free(s->buf);
}

/* 1 when t's state equals the snapshot bit for bit; says what differs otherwise. */
static int same(const gr_trainer *t, const snap *s, const char *what)
{
    size_t nb = (size_t)t->total * sizeof(float);
    int w = memcmp(t->w, s->w, nb) == 0, m = memcmp(t->opt.m, s->m, nb) == 0,
        v = memcmp(t->opt.v, s->v, nb) == 0;
    int b = memcmp(t->buf, s->buf, (size_t)t->nbuf * sizeof(float)) == 0;
    int st = t->step == s->step && t->opt.step == s->opt_step,
        r = memcmp(&t->rng, &s->rng, sizeof s->rng) == 0;
    CHECK(w, "%s: the parameter block changed", what);
    CHECK(m && v, "%s: the optimizer state changed (m %s, v %s)", what, m ? "same" : "changed",
          v ? "same" : "changed");
    CHECK(b, "%s: the BatchNorm running statistics changed", what);
    CHECK(st, "%s: the step count changed (%lld, was %lld)", what, (long long)t->step,
          (long long)s->step);
    CHECK(r, "%s: the rng changed", what);
    return w && m && v && b && st && r;
}

static int step(gr_trainer *t, float *x, const int32_t *y, double *loss)
{
    gr_tensor xt = { .dtype = GR_F32, .shape = { 4, { B, 3, 28, 28 } }, .data = x };
    return gr_trainer_step(t, &xt, y, loss);
}

/* A NaN pixel in batch 2: the step fails and changes nothing; batch 2 clean then trains as if
 * the bad batch had never been seen. */
static void test_nan_pixel(float *x, const int32_t *y)
{
    session s, ref;
    open_session(&s, 1e-3);
    open_session(&ref, 1e-3);
    double l1, l2, r1, r2;
    CHECK(step(s.t, x, y, &l1) == GRAFT_OK, "step 1: %s", graft_last_error());
    CHECK(step(ref.t, x, y, &r1) == GRAFT_OK, "reference step 1: %s", graft_last_error());
    float *bad = dup(x + B * PIX, B * PIX);
    bad[5 * PIX + 3 * 28 + 14] = NAN; /* one pixel of sample 5, channel 0 */
    snap before = take(s.t);
    double lb = 0;
    int st = step(s.t, bad, y + B, &lb);
    const char *msg = graft_last_error();
    printf("NaN pixel: status %s: %s\n", graft_status_name(st), msg);
    CHECK(st == GRAFT_E_NUMERIC, "NaN pixel: status %d, expected GRAFT_E_NUMERIC", st);
    CHECK(strstr(msg, "step 2:") != NULL, "NaN pixel: the message does not name step 2: %s", msg);
    CHECK(strstr(msg, "NaN") != NULL, "NaN pixel: the message does not say the loss is NaN: %s",
          msg);
    same(s.t, &before, "NaN pixel");
    CHECK(step(s.t, x + B * PIX, y + B, &l2) == GRAFT_OK, "clean step after the NaN one: %s",
          graft_last_error());
    CHECK(step(ref.t, x + B * PIX, y + B, &r2) == GRAFT_OK, "reference step 2: %s",
          graft_last_error());
    printf("NaN pixel: losses %.7f %.7f after the failed step, %.7f %.7f without it\n", l1, l2, r1,
           r2);
    CHECK(isfinite(l2) && l2 == r2 && s.t->step == 2,
          "clean step: loss %.9g (reference %.9g), step %lld", l2, r2, (long long)s.t->step);
    snap want = take(ref.t);
    if (!same(s.t, &want, "after the clean step, against a session that never saw the NaN batch"))
        fprintf(stderr, "  the failed step left a trace in the session\n");
    CHECK(memcmp(s.t->w, before.w, (size_t)s.t->total * sizeof(float)) != 0,
          "the clean step did not update");
    drop(&before);
    drop(&want);
    free(bad);
    close_session(&s);
    close_session(&ref);
}

/* lr 1e30: AdamW moves every weight by about 1e30 per step, so activations overflow within a
 * few steps. The failing step changes nothing. */
static void test_overflow(float *x, const int32_t *y)
{
    session s;
    open_session(&s, 1e30);
    int failed_at = 0;
    for (int k = 0; k < 10 && !failed_at; k++) {
        snap before = take(s.t);
        double loss = 0;
        int st = step(s.t, x + (k % 2) * B * PIX, y + (k % 2) * B, &loss);
        if (st == GRAFT_OK) {
            printf("lr 1e30: step %d loss %.6g\n", k + 1, loss);
        } else {
            const char *msg = graft_last_error();
            char want[32];
            snprintf(want, sizeof want, "step %d:", k + 1);
            printf("lr 1e30: status %s: %s\n", graft_status_name(st), msg);
            CHECK(st == GRAFT_E_NUMERIC, "lr 1e30: status %d at step %d, expected GRAFT_E_NUMERIC",
                  st, k + 1);
            CHECK(strstr(msg, want) != NULL, "lr 1e30: the message does not name %s %s", want, msg);
            CHECK(strstr(msg, "infinite") || strstr(msg, "NaN") || strstr(msg, "not finite"),
                  "lr 1e30: the message does not say what overflowed: %s", msg);
            same(s.t, &before, "lr 1e30");
            failed_at = k + 1;
        }
        drop(&before);
    }
    CHECK(failed_at >= 2, "lr 1e30: no step failed within 10 (or the first did: %d)", failed_at);
    close_session(&s);
}

int main(int argc, char **argv)
{
    model = argc > 1 ? argv[1] : getenv("GRAFT_TINY_CNN");
    if (!model) {
        fprintf(stderr, "usage: test_train_nan MODEL.onnx (or set GRAFT_TINY_CNN)\n");
        return 2;
    }
    gr_dataset *ds;
    if (gr_dataset_open(FASHION, NULL, 0, &ds)) {
        fprintf(stderr, "%s\n", graft_last_error());
        return 2;
    }
    float *x = malloc((size_t)2 * B * PIX * sizeof *x);
    int32_t y[2 * B];
    const float mean[3] = { 0.286f, 0.286f, 0.286f }, sd[3] = { 0.353f, 0.353f, 0.353f };
    for (int i = 0; i < 2 * B; i++) {
        gr_image img;
        if (gr_dataset_image(ds, i, &img)) {
            fprintf(stderr, "%s\n", graft_last_error());
            return 2;
        }
        gr_image_to_chw(x + (size_t)i * PIX, &img, mean, sd);
        gr_image_free(&img);
        y[i] = ds->labels[i];
    }
    test_nan_pixel(x, y);
    test_overflow(x, y);
    free(x);
    gr_dataset_free(ds);
    return th_finish();
}
