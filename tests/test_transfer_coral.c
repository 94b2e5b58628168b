#define _DEFAULT_SOURCE
/* test_transfer_coral.c — closed-form CORAL (transfer/coral.c) against the paper's algorithm with
 * scipy's matrix powers (scripts/coral_reference.py): the aligned source rows agree on a small
 * case with a constant feature and on a wide case whose target covariance is rank-deficient; on
 * a per-feature scale-and-offset shift a head fitted on the raw source fails on the target and
 * one fitted on the aligned source does not; the public call refuses mismatched shapes and
 * too few rows. */
#include "harness.h"

#include "ref_npy.h"
#include "transfer/transfer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char dir[64] = "/tmp/graft_coral_XXXXXX";

/* The case's rows aligned by graft, compared with the reference; returns them (malloc'd). */
static float *check_case(const char *tag, int64_t d, int64_t *ns_out)
{
    char name[64];
    int64_t ns, nt, nw;
    snprintf(name, sizeof name, "%s_xs", tag);
    float *xs = ref_load(dir, name, &ns);
    snprintf(name, sizeof name, "%s_xt", tag);
    float *xt = ref_load(dir, name, &nt);
    snprintf(name, sizeof name, "%s_aligned", tag);
    float *want = ref_load(dir, name, &nw);
    ns /= d, nt /= d;
    float *got = malloc((size_t)(ns * d) * sizeof *got);
    CHECK(gr_coral_align(xs, ns, xt, nt, d, got) == GRAFT_OK, "%s: %s", tag, graft_last_error());
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < ns * d; i++) {
        worst = fmax(worst, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    CHECK(nw == ns * d && worst <= 2e-4 * scale, "%s: aligned rows off scipy's by %g (scale %g)",
          tag, worst, scale);
    printf("coral (%s, %lld x %lld source, %lld target rows): worst gap %.2g of %.3g\n", tag,
           (long long)ns, (long long)d, (long long)nt, worst, scale);
    free(xs), free(xt), free(want);
    *ns_out = ns;
    return got;
}

static int32_t *load_labels(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    gr_tensor t;
    if (gr_npy_load(path, &t)) exit(2);
    return t.data; /* int32 */
}

/* Target accuracy of a logistic regression fitted on rows X with labels ys. */
static double target_accuracy(const float *X, const int32_t *ys, int64_t n, const float *xt,
                              const int32_t *yt, int64_t nt, int d)
{
    gr_fit_opts fo;
    gr_fit_defaults(&fo, GR_HEAD_LOGREG);
    fo.C = 1;
    gr_head h;
    CHECK(gr_head_fit(X, ys, n, d, 4, &fo, &h) == GRAFT_OK, "fit: %s", graft_last_error());
    float *prob = malloc((size_t)nt * 4 * sizeof *prob);
    CHECK(gr_head_predict(&h, xt, nt, prob) == GRAFT_OK, "predict");
    int64_t right = 0;
    for (int64_t i = 0; i < nt; i++) right += gr_argmax(prob + i * 4, 4) == yt[i];
    gr_head_free(&h);
    free(prob);
    return (double)right / (double)nt;
}

static void test_shift(void)
{
    int64_t ns, nt;
    float *aligned = check_case("shift", 8, &ns);
    float *xs = ref_load(dir, "shift_xs", NULL), *xt = ref_load(dir, "shift_xt", &nt);
    nt /= 8;
    int32_t *ys = load_labels("shift_ys"), *yt = load_labels("shift_yt");
    double raw = target_accuracy(xs, ys, ns, xt, yt, nt, 8),
           al = target_accuracy(aligned, ys, ns, xt, yt, nt, 8);
    printf("shifted target: head on the raw source %.3f, on the aligned source %.3f\n", raw, al);
    CHECK(al >= 0.95 && al >= raw + 0.2, "coral should undo a scale-and-offset shift: %.3f -> %.3f",
          raw, al);
    free(aligned), free(xs), free(xt), free(ys), free(yt);
}

static void test_public(void)
{
    float a[6 * 2] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 0 }, b[3 * 3] = { 0 };
    graft_tensor ts = { .dtype = GRAFT_FLOAT, .rank = 2, .dims = { 6, 2 }, .data = a },
                 t1 = { .dtype = GRAFT_FLOAT, .rank = 2, .dims = { 1, 2 }, .data = a },
                 t3 = { .dtype = GRAFT_FLOAT, .rank = 2, .dims = { 3, 3 }, .data = b };
    graft_tensor *out = NULL;
    CHECK(graft_coral_align(&ts, &ts, &out) == GRAFT_OK && out && out->dims[0] == 6 &&
              out->dims[1] == 2,
          "coral of a domain to itself: %s", graft_last_error());
    for (int i = 0; out && i < 12; i++) /* aligning a domain to itself is the identity */
        CHECK(fabsf(((float *)out->data)[i] - a[i]) < 1e-4f, "self-alignment moved row %d", i / 2);
    graft_tensor_free(out);
    CHECK(graft_coral_align(&ts, &t3, &out) == GRAFT_E_SHAPE && strstr(graft_last_error(), "3"),
          "feature mismatch: %s", graft_last_error());
    CHECK(graft_coral_align(&ts, &t1, &out) == GRAFT_E_ARG &&
              strstr(graft_last_error(), "2 or more"),
          "one target row: %s", graft_last_error());
}

int main(void)
{
    if (!mkdtemp(dir)) return 2;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/coral_reference.py %s", GRAFT_SOURCE_DIR,
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "the scipy reference failed: %s\n", cmd);
        return 2;
    }
    int64_t n;
    free(check_case("small", 16, &n));
    free(check_case("wide", 200, &n));
    test_shift();
    test_public();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return th_finish();
}
