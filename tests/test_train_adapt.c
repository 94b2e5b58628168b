#define _POSIX_C_SOURCE 200809L
/* test_train_adapt.c — the losses without labels (train/loss_adapt.c: TENT's entropy, SHOT's
 * information maximisation, Deep CORAL, DAN's multi-kernel MMD) and their gradients against
 * PyTorch: scripts/adapt_reference.py writes each loss as its paper's reference code computes it,
 * in double, with autograd's gradients, on fixed float32 inputs. Also the refusals: too few rows
 * give NaN, not a number that looks like a loss. */
#include "harness.h"

#include "ref_npy.h"
#include "train/train.h"

#include <math.h>
#include <string.h>

static char dir[256];

static float *load(const char *name, int64_t *n) { return ref_load(dir, name, n); }

static double load_scalar(const char *name)
{
    float *v = load(name, NULL);
    double x = v[0];
    free(v);
    return x;
}

static void check_loss(double got, const char *ref, const char *what)
{
    double want = load_scalar(ref);
    CHECK(fabs(got - want) <= 1e-5 * fabs(want) + 1e-7, "%s: loss %.9g, torch %.9g", what, got,
          want);
}

static void test_entropy_im(void)
{
    int64_t n;
    float *z = load("ent_logits", &n), *want = load("ent_grad", NULL);
    float *dz = malloc((size_t)n * sizeof *dz);
    check_loss(gr_loss_entropy(z, 9, 6, dz), "ent_loss", "entropy");
    th_close(dz, want, (long)n, 1e-4, 1e-7, "entropy gradient");
    free(z), free(want), free(dz);

    z = load("im_logits", &n), want = load("im_grad", NULL);
    dz = malloc((size_t)n * sizeof *dz);
    check_loss(gr_loss_im(z, 11, 5, 1e-5, dz), "im_loss", "information maximisation");
    th_close(dz, want, (long)n, 1e-4, 1e-7, "information maximisation gradient");
    free(z), free(want), free(dz);
}

/* A two-domain loss f(xs, xt) against its reference files <tag>_{xs,xt,loss,gs,gt}. */
static void test_pair(const char *tag, int ns, int nt, int d, const double *alphas, int nk)
{
    char a[64], b[64], c[64], e[64], g[64];
    snprintf(a, sizeof a, "%s_xs", tag), snprintf(b, sizeof b, "%s_xt", tag);
    snprintf(c, sizeof c, "%s_loss", tag), snprintf(e, sizeof e, "%s_gs", tag);
    snprintf(g, sizeof g, "%s_gt", tag);
    float *xs = load(a, NULL), *xt = load(b, NULL), *ws = load(e, NULL), *wt = load(g, NULL);
    float *gs = malloc((size_t)ns * d * sizeof *gs), *gt = malloc((size_t)nt * d * sizeof *gt);
    double L = alphas ? gr_loss_mmd(xs, ns, xt, nt, d, alphas, nk, gs, gt)
                      : gr_loss_coral(xs, ns, xt, nt, d, gs, gt);
    check_loss(L, c, tag);
    char what[80];
    snprintf(what, sizeof what, "%s gradient (source)", tag);
    th_close(gs, ws, (long)ns * d, 1e-4, 1e-7, what);
    snprintf(what, sizeof what, "%s gradient (target)", tag);
    th_close(gt, wt, (long)nt * d, 1e-4, 1e-7, what);
    /* one row per domain has no covariance, no pair of distinct rows: NaN, not a loss */
    CHECK(isnan(alphas ? gr_loss_mmd(xs, 1, xt, nt, d, alphas, nk, NULL, NULL)
                       : gr_loss_coral(xs, ns, xt, 1, d, NULL, NULL)),
          "%s of a single row is NaN", tag);
    free(xs), free(xt), free(ws), free(wt), free(gs), free(gt);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/graft_adapt_XXXXXX", tmp);
    if (!mkdtemp(dir)) return 2;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/adapt_reference.py %s >/dev/null",
             GRAFT_SOURCE_DIR, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "the PyTorch reference failed: %s\n", cmd);
        return 2;
    }
    test_entropy_im();
    test_pair("coral", 12, 9, 7, NULL, 0);
    int64_t nk;
    float *al = load("mmd_alphas", &nk);
    double alphas[8];
    for (int q = 0; q < nk && q < 8; q++) alphas[q] = al[q];
    free(al);
    test_pair("mmd", 10, 7, 4, alphas, (int)nk);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return th_finish();
}
