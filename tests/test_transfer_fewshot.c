/* test_transfer_fewshot.c — few-shot methods against a numpy implementation of their papers'
 * definitions (scripts/fewshot_reference.py) on fixed episodes, and the episodic evaluation:
 * episodes drawn by seed (distinct classes, support and query disjoint), mean and 95 % interval
 * recomputed from the per-episode accuracies, an error when too few classes have enough rows. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "io/io.h"
#include "transfer/transfer.h"

#include <string.h>

enum { N = 240, DIM = 12, NCLASS = 8, WAY = 5, SHOT = 3, QUERY = 4, EPISODES = 30 };

static void save(const char *dir, const char *name, int dtype, int rank, const int64_t *dims,
                 void *data)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gr_tensor t = { .dtype = dtype, .shape = gr_shape_make(rank, dims), .data = data };
    if (gr_npy_save(path, &t)) {
        fprintf(stderr, "%s\n", graft_last_error());
        exit(2);
    }
}

int main(void)
{
    static float X[N * DIM];
    static int32_t y[N];
    gr_rng r;
    gr_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) { /* class means apart, noise comparable: errors happen */
        y[i] = i % NCLASS;
        for (int j = 0; j < DIM; j++)
            X[i * DIM + j] = (float)(0.8 * ((y[i] * 7 + j * 3) % 5 - 2) + gr_rng_normal(&r) + 0.5);
    }
    char dir[] = "/tmp/graft_fewshot_XXXXXX";
    if (!mkdtemp(dir)) return 2;
    /* fixed episodes: classes e, e+1.. (mod 8), rows by stride */
    static int64_t sup[EPISODES][WAY * SHOT], qry[EPISODES][WAY * QUERY];
    for (int e = 0; e < EPISODES; e++)
        for (int c = 0; c < WAY; c++) {
            int cls = (e + c * 3) % NCLASS;
            for (int s = 0; s < SHOT; s++)
                sup[e][c * SHOT + s] = cls + NCLASS * ((e + s * 5) % (N / NCLASS));
            for (int q = 0; q < QUERY; q++)
                qry[e][c * QUERY + q] = cls + NCLASS * ((e + 17 + q * 3) % (N / NCLASS));
        }
    int64_t dx[2] = { N, DIM }, ds[2] = { EPISODES, WAY * SHOT }, dq[2] = { EPISODES, WAY * QUERY },
            d3[1] = { 3 };
    int64_t shape[3] = { WAY, SHOT, QUERY };
    save(dir, "X.npy", GR_F32, 2, dx, X);
    save(dir, "support.npy", GR_I64, 2, ds, sup);
    save(dir, "query.npy", GR_I64, 2, dq, qry);
    save(dir, "shape.npy", GR_I64, 1, d3, shape);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/fewshot_reference.py %s",
             GRAFT_SOURCE_DIR, dir);
    if (system(cmd) != 0) return 2;
    static const char *names[4] = { "simpleshot", "knn", "imprint", "transductive" };
    for (int m = 0; m < 4; m++) {
        char path[512];
        snprintf(path, sizeof path, "%s/pred_%s.npy", dir, names[m]);
        gr_tensor want;
        CHECK(gr_npy_load(path, &want) == GRAFT_OK, "%s", graft_last_error());
        int same = 0, right = 0;
        for (int e = 0; e < EPISODES; e++) {
            int32_t pred[WAY * QUERY];
            CHECK(gr_fewshot_episode(X, DIM, sup[e], qry[e], WAY, SHOT, QUERY, m, pred) == GRAFT_OK,
                  "%s", graft_last_error());
            for (int i = 0; i < WAY * QUERY; i++) {
                same += pred[i] == ((int32_t *)want.data)[e * WAY * QUERY + i];
                right += pred[i] == i / QUERY;
            }
        }
        printf("%-10s: %d of %d predictions equal numpy's; accuracy %.3f\n", names[m], same,
               EPISODES * WAY * QUERY, (double)right / (EPISODES * WAY * QUERY));
        CHECK(same == EPISODES * WAY * QUERY, "%s: %d predictions differ from numpy", names[m],
              EPISODES * WAY * QUERY - same);
        CHECK(right < EPISODES * WAY * QUERY && right > EPISODES * WAY,
              "%s: accuracy should be neither chance nor perfect here", names[m]);
        free(want.data);
    }
    /* episodic evaluation */
    gr_fewshot_opts o = { .method = GR_FS_SIMPLESHOT,
                          .way = WAY,
                          .shot = SHOT,
                          .query = QUERY,
                          .episodes = 200,
                          .seed = 9 };
    gr_fewshot_result a, b, c;
    CHECK(gr_fewshot_eval(X, y, N, DIM, NCLASS, &o, &a) == GRAFT_OK, "%s", graft_last_error());
    CHECK(gr_fewshot_eval(X, y, N, DIM, NCLASS, &o, &b) == GRAFT_OK, "%s", graft_last_error());
    o.seed = 10;
    CHECK(gr_fewshot_eval(X, y, N, DIM, NCLASS, &o, &c) == GRAFT_OK, "%s", graft_last_error());
    double s = 0, s2 = 0;
    for (int e = 0; e < a.episodes; e++) s += a.acc[e], s2 += a.acc[e] * a.acc[e];
    double mean = s / a.episodes, sd = sqrt((s2 - s * s / a.episodes) / (a.episodes - 1));
    printf("simpleshot %d-way %d-shot: %.4f +- %.4f over %d episodes\n", WAY, SHOT, a.mean, a.ci95,
           a.episodes);
    CHECK(fabs(a.mean - mean) < 1e-12 && fabs(a.ci95 - 1.96 * sd / sqrt(a.episodes)) < 1e-12,
          "mean/CI do not match the episodes");
    CHECK(!memcmp(a.acc, b.acc, sizeof(double) * a.episodes),
          "the same seed must give the same episodes");
    CHECK(memcmp(a.acc, c.acc, sizeof(double) * a.episodes) != 0,
          "another seed must give other episodes");
    gr_fewshot_free(&a), gr_fewshot_free(&b), gr_fewshot_free(&c);
    o.shot = 40; /* 30 rows per class: no class has 44 */
    CHECK(gr_fewshot_eval(X, y, N, DIM, NCLASS, &o, &a) != GRAFT_OK &&
              strstr(graft_last_error(), "only 0 classes"),
          "too few rows per class must be an error: %s", graft_last_error());
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return th_finish();
}
