/* bench_train.c — training speed and memory of one model in one mode (bench/train.sh).
 *   bench_train MODEL TRAINABLE_LIST BATCH THREADS WARMUP WINDOWS SECONDS
 * TRAINABLE_LIST names the parameters that train, one a line (bench/torch_train.py export writes
 * it with the same rule as the PyTorch side). SGD with momentum, cross-entropy on random images
 * and labels; WARMUP steps, then WINDOWS timed windows of about SECONDS each (a whole number of
 * steps, at least one, from the last warm-up step's time).
 * Prints: graft <best img/s> img/s median <img/s> peak_rss <MB> MB step_ms <best ms> cpu_ms <ms>
 *         backward_steps <n> arena <MB> MB windows <img/s,...> steps <per window> loss <last loss>
 * The best window is the one least disturbed by other load on the machine (load only slows).
 * cpu_ms is the least process CPU time (all threads) per step over the windows: a cross-check
 * that other load disturbs less (it still counts OpenMP threads spinning at barriers). */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define NCLASS 10
#define MAXWIN 32

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }

static int fail(const char *what)
{
    fprintf(stderr, "bench_train: %s: %s\n", what, graft_last_error());
    return 1;
}

/* Marks the values named in path; returns their count, or -1 when the file or a name is bad. */
static int read_trainable(const gr_graph *g, const char *path, unsigned char *mask)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_train: cannot open %s\n", path);
        return -1;
    }
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        int v = gr_graph_find_value(g, line);
        if (v < 0) {
            fprintf(stderr, "bench_train: %s: '%s' is not a value of the model\n", path, line);
            fclose(f);
            return -1;
        }
        mask[v] = 1;
        n++;
    }
    fclose(f);
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median (which 0.5) or the best (which 1) of n values. */
static double pick(const double *x, int n, double which)
{
    double s[MAXWIN];
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    if (which >= 1) return s[n - 1];
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr,
                "usage: bench_train MODEL TRAINABLE_LIST BATCH THREADS WARMUP WINDOWS SECONDS\n");
        return 2;
    }
    int batch = atoi(argv[3]), warmup = atoi(argv[5]), windows = atoi(argv[6]);
    double seconds = atof(argv[7]);
    if (batch < 1 || warmup < 1 || windows < 1 || windows > MAXWIN || !(seconds > 0)) {
        fprintf(stderr, "bench_train: bad BATCH/WARMUP/WINDOWS/SECONDS\n");
        return 2;
    }
    gr_set_threads(atoi(argv[4]));
    gr_graph *g = NULL;
    gr_trainer *t = NULL;
    unsigned char *mask = NULL;
    float *xf = NULL;
    int32_t *y = NULL;
    int rc = 1;
    if (gr_onnx_load(argv[1], &g) || gr_graph_check_ops(g)) {
        fail(argv[1]);
        goto done;
    }
    mask = calloc((size_t)g->nvalues + 1, 1);
    if (!mask || read_trainable(g, argv[2], mask) <= 0) goto done;
    gr_trainer_cfg cfg = { .loss = GR_LOSS_CE,
                           .opt = { .kind = GR_SGD, .lr = 0.001, .momentum = 0.9 } };
    if (gr_trainer_new(g, mask, &cfg, &t)) {
        fail("trainer");
        goto done;
    }

    gr_tensor x = { .dtype = GR_F32, .shape = { .rank = 4, .d = { batch, 3, 224, 224 } } };
    int64_t n = gr_numel(&x.shape);
    xf = malloc((size_t)n * sizeof *xf);
    y = malloc((size_t)batch * sizeof *y);
    if (!xf || !y) goto done;
    srand(1);
    for (int64_t i = 0; i < n; i++) xf[i] = 2.0f * (float)rand() / (float)RAND_MAX - 1.0f;
    for (int i = 0; i < batch; i++) y[i] = rand() % NCLASS;
    x.data = xf;

    double loss = 0, last = 0;
    for (int i = 0; i < warmup; i++) { /* the first builds the plan and the oneDNN primitives */
        double t0 = now();
        if (gr_trainer_step(t, &x, y, &loss)) {
            fail("step");
            goto done;
        }
        last = now() - t0;
    }
    int steps = last >= seconds ? 1 : (int)(seconds / last + 0.5);
    double rate[MAXWIN], cpu = 1e30;
    for (int w = 0; w < windows; w++) {
        double t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 0; i < steps; i++)
            if (gr_trainer_step(t, &x, y, &loss)) {
                fail("step");
                goto done;
            }
        double dt = now() - t0;
        rate[w] = batch * steps / dt;
        double c = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / steps;
        if (c < cpu) cpu = c;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double best = pick(rate, windows, 1);
    printf("graft %.2f img/s median %.2f peak_rss %.0f MB step_ms %.0f cpu_ms %.0f backward_steps "
           "%d arena %.0f MB "
           "windows ",
           best, pick(rate, windows, 0.5), ru.ru_maxrss / 1024.0, 1000.0 * batch / best,
           1000.0 * cpu, gr_plan_backward_steps(t->plan), gr_plan_arena_bytes(t->plan) / 1048576.0);
    for (int w = 0; w < windows; w++) printf("%s%.2f", w ? "," : "", rate[w]);
    printf(" steps %d loss %.4f\n", steps, loss);
    rc = 0;
done:
    gr_trainer_free(t);
    gr_graph_free(g);
    free(mask);
    free(xf);
    free(y);
    return rc;
}
