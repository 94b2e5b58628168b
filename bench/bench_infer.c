/* bench_infer.c — inference speed of one model through the public API.
 *   bench_infer MODEL BATCH THREADS SECONDS
 * Prints: graft <images/s> img/s peak_rss <MB> MB activations <MB> MB */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "graft.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_infer MODEL BATCH THREADS SECONDS\n");
        return 2;
    }
    int batch = atoi(argv[2]);
    double seconds = atof(argv[4]);
    graft_set_threads(atoi(argv[3]));
    graft_model *m;
    if (graft_model_load(argv[1], &m)) {
        fprintf(stderr, "bench_infer: %s\n", graft_last_error());
        return 1;
    }
    int64_t dims[GRAFT_MAX_RANK];
    int rank = graft_model_input_shape(m, 0, dims);
    dims[0] = batch;
    for (int i = 1; i < rank; i++)
        if (dims[i] < 0) dims[i] = 224;
    graft_tensor *x;
    graft_tensor_new(GRAFT_FLOAT, rank, dims, &x);
    float *xf = x->data;
    srand(1);
    for (int64_t i = 0; i < graft_tensor_numel(x); i++)
        xf[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    int nout = graft_model_num_outputs(m);
    graft_tensor *outs[16];
    /* warm-up: builds the plan and the oneDNN primitives */
    if (graft_model_run(m, (const graft_tensor *const *)&x, 1, outs, nout)) {
        fprintf(stderr, "bench_infer: %s\n", graft_last_error());
        return 1;
    }
    for (int i = 0; i < nout; i++) graft_tensor_free(outs[i]);
    int runs = 0;
    double t0 = now(), t;
    do {
        graft_model_run(m, (const graft_tensor *const *)&x, 1, outs, nout);
        for (int i = 0; i < nout; i++) graft_tensor_free(outs[i]);
        runs++;
        t = now() - t0;
    } while (t < seconds || runs < 3);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("graft %.2f img/s peak_rss %.0f MB activations %.0f MB\n", runs * batch / t,
           ru.ru_maxrss / 1024.0, graft_model_peak_bytes(m) / 1e6);
    graft_tensor_free(x);
    graft_model_free(m);
    return 0;
}
