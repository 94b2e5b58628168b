#define _POSIX_C_SOURCE 200809L
/* test_train_optim.c — graft's losses and optimizers against PyTorch (scripts/optim_reference.py
 * computes torch's losses, autograd gradients and parameters after 6 optimizer steps with
 * parameter groups, warm-up + cosine and clipping), and L2-SP against its closed form. */
#include "harness.h"

#include "ref_npy.h"
#include "train/train.h"

#include <string.h>

static char dir[256];

static float *load(const char *name, int64_t *n) { return ref_load(dir, name, n); }

static void test_ce(void)
{
    static const char *tags[] = { "plain", "weighted", "smooth", "both" };
    float *z = load("ce_logits", NULL), *w = load("ce_weight", NULL);
    int32_t *y = (int32_t *)load("ce_target", NULL);
    for (int c = 0; c < 4; c++) {
        char name[64];
        float dz[40];
        const float *cw = c & 1 ? w : NULL;
        float eps = c >= 2 ? 0.1f : 0.0f;
        double L = gr_loss_softmax_ce(z, y, 8, 5, cw, eps, dz);
        snprintf(name, sizeof name, "ce_%s_loss", tags[c]);
        float *want = load(name, NULL);
        CHECK(fabs(L - want[0]) <= 1e-5 * fabs(want[0]), "CE %s: loss %.8g, torch %.8g", tags[c], L,
              want[0]);
        free(want);
        snprintf(name, sizeof name, "ce_%s_grad", tags[c]);
        want = load(name, NULL);
        th_close(dz, want, 40, 1e-4, 1e-7, name);
        free(want);
    }
    free(z);
    free(w);
    free(y);
}

static void test_bce_mse(void)
{
    float *z = load("bce_logits", NULL), *t = load("bce_target", NULL),
          *pw = load("bce_pos_weight", NULL);
    float *want = load("bce_loss", NULL), *wg = load("bce_grad", NULL), dz[24];
    double L = gr_loss_bce_logits(z, t, 24, 4, pw, dz);
    CHECK(fabs(L - want[0]) <= 1e-5 * fabs(want[0]), "BCE: loss %.8g, torch %.8g", L, want[0]);
    th_close(dz, wg, 24, 1e-4, 1e-7, "BCE gradient");
    free(z), free(t), free(pw), free(want), free(wg);

    float *p = load("mse_pred", NULL), *q = load("mse_target", NULL), dp[21];
    want = load("mse_loss", NULL), wg = load("mse_grad", NULL);
    L = gr_loss_mse(p, q, 21, dp);
    CHECK(fabs(L - want[0]) <= 1e-5 * fabs(want[0]), "MSE: loss %.8g, torch %.8g", L, want[0]);
    th_close(dp, wg, 21, 1e-5, 1e-7, "MSE gradient");
    free(p), free(q), free(want), free(wg);
}

static void test_optim(void)
{
    static const struct {
        const char *name;
        int kind, nesterov;
        double b1, b2, eps, clip;
    } cases[] = {
        { "sgd", GR_SGD, 0, 0, 0, 0, 0 },
        { "nesterov", GR_SGD, 1, 0, 0, 0, 0.5 },
        { "adamw", GR_ADAMW, 0, 0, 0, 0, 0 },
        { "adamw_clip", GR_ADAMW, 0, 0.8, 0.99, 1e-6, 0.5 },
    };
    float *w0 = load("opt_w0", NULL), *b0 = load("opt_b0", NULL), *gw = load("opt_gw", NULL),
          *gb = load("opt_gb", NULL);
    for (int c = 0; c < 4; c++) {
        gr_optim_cfg cfg = { .kind = cases[c].kind,
                             .lr = 0.1,
                             .momentum = cases[c].kind == GR_SGD ? 0.9 : 0,
                             .nesterov = cases[c].nesterov,
                             .beta1 = cases[c].b1,
                             .beta2 = cases[c].b2,
                             .eps = cases[c].eps,
                             .weight_decay = 0.05,
                             .clip_norm = cases[c].clip,
                             .sched = GR_SCHED_COSINE,
                             .warmup = 2,
                             .total = 6 };
        gr_param params[2] = { { .name = "w", .off = 0, .n = 12, .lr_scale = 1, .decay = 1 },
                               { .name = "b", .off = 12, .n = 4, .lr_scale = 0.5f, .decay = 0 } };
        float w[16], g[16];
        memcpy(w, w0, 12 * sizeof(float));
        memcpy(w + 12, b0, 4 * sizeof(float));
        gr_optim o;
        CHECK(gr_optim_init(&o, &cfg, params, 2, 16, w) == GRAFT_OK, "init: %s",
              graft_last_error());
        for (int s = 0; s < 6; s++) {
            memcpy(g, gw + 12 * s, 12 * sizeof(float));
            memcpy(g + 12, gb + 4 * s, 4 * sizeof(float));
            gr_optim_step(&o, w, g);
        }
        char name[64];
        snprintf(name, sizeof name, "opt_%s_w", cases[c].name);
        float *want = load(name, NULL);
        th_close(w, want, 12, 1e-5, 1e-6, name);
        free(want);
        snprintf(name, sizeof name, "opt_%s_b", cases[c].name);
        want = load(name, NULL);
        th_close(w + 12, want, 4, 1e-5, 1e-6, name);
        free(want);
        gr_optim_free(&o);
    }
    free(w0), free(b0), free(gw), free(gb);
}

/* L2-SP with plain SGD: w <- w - lr * (g + alpha (w - w0)) for pretrained parameters and
 * w <- w - lr * (g + beta w) for new ones, the closed form of one step, iterated. */
static void test_l2sp(void)
{
    gr_optim_cfg cfg = { .kind = GR_SGD, .lr = 0.05, .l2sp_alpha = 0.3, .l2sp_beta = 0.02 };
    gr_param params[2] = { { .name = "trunk", .off = 0, .n = 3, .lr_scale = 1, .pretrained = 1 },
                           { .name = "head", .off = 3, .n = 2, .lr_scale = 1, .pretrained = 0 } };
    float w[5] = { 1, -2, 0.5f, 3, -1 }, start[5], g[5];
    double ref[5];
    memcpy(start, w, sizeof w);
    for (int i = 0; i < 5; i++) ref[i] = w[i];
    gr_optim o;
    CHECK(gr_optim_init(&o, &cfg, params, 2, 5, w) == GRAFT_OK, "init: %s", graft_last_error());
    for (int s = 0; s < 4; s++) {
        for (int i = 0; i < 5; i++) g[i] = 0.1f * (float)(i - s);
        for (int i = 0; i < 5; i++)
            ref[i] -= 0.05 * (0.1 * (i - s) + (i < 3 ? 0.3 * (ref[i] - start[i]) : 0.02 * ref[i]));
        gr_optim_step(&o, w, g);
    }
    float rf[5];
    for (int i = 0; i < 5; i++) rf[i] = (float)ref[i];
    th_close(w, rf, 5, 1e-5, 1e-6, "L2-SP");
    gr_optim_free(&o);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/graft_optim_XXXXXX", tmp);
    if (!mkdtemp(dir)) return 2;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/optim_reference.py %s >/dev/null",
             GRAFT_SOURCE_DIR, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "the PyTorch reference failed: %s\n", cmd);
        return 2;
    }
    test_ce();
    test_bce_mse();
    test_optim();
    test_l2sp();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return th_finish();
}
