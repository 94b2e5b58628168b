#define _DEFAULT_SOURCE
/* test_transfer_semi.c — self-training (transfer/semi.c) against scikit-learn's replay
 * (scripts/semi_reference.py: StandardScaler + LogisticRegression, SelfTrainingClassifier's
 * threshold rule written out, plain and class-balanced): every round adds the same number of
 * pseudo-labels and the final head's test probabilities agree. (Whether self-training helps is
 * measured on real features by make bench-adapt; on these Gaussian classes it does not.) The
 * public graft_head_fit_self reports the rounds, and refuses bad options and mismatched
 * shapes. */
#include "harness.h"

#include "ref_npy.h"
#include "transfer/transfer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char dir[64] = "/tmp/graft_semi_XXXXXX";

static int32_t *load_i32(const char *name, int64_t *n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    gr_tensor t;
    if (gr_npy_load(path, &t)) exit(2);
    *n = gr_numel(&t.shape);
    int32_t *v = malloc((size_t)*n * sizeof *v + 4);
    for (int64_t i = 0; i < *n; i++)
        v[i] = t.dtype == GR_I64 ? (int32_t)((int64_t *)t.data)[i] : ((int32_t *)t.data)[i];
    free(t.data);
    return v;
}

static double accuracy(const float *prob, const int32_t *y, int64_t n, int k)
{
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) right += gr_argmax(prob + i * k, k) == y[i];
    return (double)right / (double)n;
}

static void test_replay(const char *tag, int balance)
{
    int64_t nx, nu, nt, n, nc;
    char name[64];
    snprintf(name, sizeof name, "%s_prob", tag);
    float *X = ref_load(dir, "X", &nx), *XU = ref_load(dir, "XU", &nu),
          *XT = ref_load(dir, "XT", &nt), *want = ref_load(dir, name, NULL);
    snprintf(name, sizeof name, "%s_counts", tag);
    int32_t *y = load_i32("y", &n), *yu = load_i32("yu", &nu), *yt = load_i32("yt", &nt),
            *counts = load_i32(name, &nc);
    int dim = (int)(nx / n), k = 4;
    gr_fit_opts fo;
    gr_fit_defaults(&fo, GR_HEAD_LOGREG);
    fo.C = 0.5, fo.tol = 1e-8, fo.max_iter = 20000; /* the reference's tight fit */
    gr_semi_opts so = { .rounds = 5, .threshold = 0.9, .balance = balance };
    gr_semi_round rr[5];
    gr_head h;
    CHECK(gr_self_train(X, y, n, XU, nu, dim, k, &fo, &so, yu, &h, rr) == GRAFT_OK, "%s",
          graft_last_error());
    for (int r = 0; r < 5; r++) {
        CHECK(rr[r].npseudo == counts[r], "%s round %d: %lld pseudo-labels, scikit-learn %d", tag,
              r + 1, (long long)rr[r].npseudo, counts[r]);
        CHECK(!rr[r].npseudo || (rr[r].mean_conf >= 0.9 && rr[r].pseudo_acc > 0.5),
              "%s round %d: confidence %.3f accuracy %.3f", tag, r + 1, rr[r].mean_conf,
              rr[r].pseudo_acc);
    }
    float *prob = malloc((size_t)nt * k * sizeof *prob);
    CHECK(gr_head_predict(&h, XT, nt, prob) == GRAFT_OK, "predict");
    double worst = 0;
    for (int64_t i = 0; i < nt * k; i++) worst = fmax(worst, fabs(prob[i] - want[i]));
    CHECK(worst < 2e-3, "%s: test probabilities off scikit-learn's by %g", tag, worst);
    printf("self-training (%s): test accuracy %.4f (scikit-learn's replay %.4f), worst |p| gap "
           "%.2g\n",
           tag, accuracy(prob, yt, nt, k), accuracy(want, yt, nt, k), worst);
    gr_head_free(&h);
    free(X), free(XU), free(XT), free(want), free(y), free(yu), free(yt), free(counts);
    free(prob);
}

/* The public call: its summary, and refusals. */
static void test_public(void)
{
    float X[8 * 2], XU[6 * 2], XU3[6 * 3];
    int32_t y[8];
    for (int i = 0; i < 8; i++)
        X[2 * i] = (float)(i % 2) * 4 + 0.1f * i, X[2 * i + 1] = 1, y[i] = i % 2;
    for (int i = 0; i < 6; i++) XU[2 * i] = (float)(i % 2) * 4 - 0.1f * i, XU[2 * i + 1] = 0;
    memset(XU3, 0, sizeof XU3);
    graft_tensor tx = { .dtype = GRAFT_FLOAT, .rank = 2, .dims = { 8, 2 }, .data = X },
                 ty = { .dtype = GRAFT_INT32, .rank = 1, .dims = { 8 }, .data = y },
                 tu = { .dtype = GRAFT_FLOAT, .rank = 2, .dims = { 6, 2 }, .data = XU },
                 tu3 = { .dtype = GRAFT_FLOAT, .rank = 2, .dims = { 6, 3 }, .data = XU3 };
    graft_fit_opts fo;
    graft_fit_opts_init(&fo);
    fo.C = 1;
    graft_semi_opts so;
    graft_semi_opts_init(&so);
    graft_head *h = NULL;
    char *summary = NULL;
    CHECK(graft_head_fit_self(&tx, &ty, 2, &tu, NULL, &fo, &so, &h, &summary) == GRAFT_OK, "%s",
          graft_last_error());
    cJSON *s = cJSON_Parse(summary);
    const cJSON *rounds = cJSON_GetObjectItem(s, "rounds");
    CHECK(cJSON_GetArraySize(rounds) == 5, "5 rounds reported");
    const cJSON *r0 = cJSON_GetArrayItem(rounds, 0);
    int n1 = cJSON_GetObjectItem(r0, "pseudo_labels")->valueint, total = 0;
    CHECK(n1 >= 1 && n1 <= 6 && cJSON_IsNull(cJSON_GetObjectItem(r0, "accuracy")),
          "round 1 (no labels to report): %s", summary);
    const cJSON *r;
    cJSON_ArrayForEach(r, rounds) total += cJSON_GetObjectItem(r, "pseudo_labels")->valueint;
    CHECK(total <= 6, "every unlabelled row is pseudo-labelled at most once: %s", summary);
    cJSON_Delete(s);
    free(summary);
    graft_head_free(h);
    CHECK(graft_head_fit_self(&tx, &ty, 2, &tu3, NULL, &fo, &so, &h, NULL) == GRAFT_E_SHAPE &&
              strstr(graft_last_error(), "3 features"),
          "feature mismatch: %s", graft_last_error());
    so.rounds = 0;
    CHECK(graft_head_fit_self(&tx, &ty, 2, &tu, NULL, &fo, &so, &h, NULL) == GRAFT_E_ARG,
          "0 rounds refused");
    graft_semi_opts_init(&so);
    so.threshold = 1;
    CHECK(graft_head_fit_self(&tx, &ty, 2, &tu, NULL, &fo, &so, &h, NULL) == GRAFT_E_ARG,
          "threshold 1 refused");
    so.threshold = 0;
    CHECK(graft_head_fit_self(&tx, &ty, 2, &tu, NULL, &fo, &so, &h, NULL) == GRAFT_E_ARG,
          "threshold 0 refused");
}

int main(void)
{
    if (!mkdtemp(dir)) return 2;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/semi_reference.py %s", GRAFT_SOURCE_DIR,
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "the scikit-learn reference failed: %s\n", cmd);
        return 2;
    }
    test_replay("plain", 0);
    test_replay("balanced", 1);
    test_public();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return th_finish();
}
