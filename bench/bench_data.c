/* bench_data.c — images/s of graft's loader on a folder of JPEGs.
 *   bench_data FOLDER WORKERS BATCH
 * The evaluation transform (Resize 256, CenterCrop 224, ToTensor, Normalize ImageNet), shuffled,
 * one warm-up epoch (page cache, allocator) then one timed epoch.
 * Prints: graft <images/s> img/s peak_rss <MB> MB decode <policy> cpu <ms> ms/img
 * (cpu: user + system time of all threads over the timed epoch, per image). */
#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_data FOLDER WORKERS BATCH\n");
        return 2;
    }
    gr_dataset *ds;
    gr_loader *l;
    gr_transform t;
    gr_transform_default(&t);
    gr_loader_opts o = { .batch = atoi(argv[3]),
                         .workers = atoi(argv[2]),
                         .shuffle = 1,
                         .bad = GR_BAD_FATAL,
                         .seed = 1 };
    if (gr_dataset_open(argv[1], NULL, 0, &ds) || gr_loader_new(ds, NULL, 0, &t, &o, &l)) {
        fprintf(stderr, "bench_data: %s\n", graft_last_error());
        return 1;
    }
    /* The loader decodes a JPEG at a reduced IDCT scale only when it is at least twice the size
     * the transform needs (256 here); say which of the two the first image gets. */
    int mw, mh;
    gr_transform_decode_min(&t, &mw, &mh);
    gr_image full, scaled;
    if (gr_image_decode(ds->paths[0], &full) ||
        gr_image_decode_scaled(ds->paths[0], mw, mh, &scaled)) {
        fprintf(stderr, "bench_data: %s\n", graft_last_error());
        return 1;
    }
    const char *policy = scaled.w < full.w ? "scaled" : "full";
    gr_image_free(&full);
    gr_image_free(&scaled);
    double t0 = 0, c0 = 0, sum = 0;
    int64_t n = 0;
    for (int e = 0; e < 2; e++) {
        if (e == 1) t0 = gr_now(), c0 = cpu_seconds();
        gr_loader_start(l, e);
        gr_batch b;
        int st;
        n = 0;
        while ((st = gr_loader_next(l, &b)) == 1) {
            n += b.n;
            sum += b.x[0]; /* touch the batch, as a training step would */
        }
        if (st < 0) {
            fprintf(stderr, "bench_data: %s\n", graft_last_error());
            return 1;
        }
    }
    double dt = gr_now() - t0, cpu = cpu_seconds() - c0;
    printf("graft %.1f img/s peak_rss %.0f MB decode %s cpu %.2f ms/img\n", (double)n / dt,
           gr_peak_rss() / 1048576.0, policy, 1e3 * cpu / (double)n);
    if (sum != sum) printf("nan\n");
    gr_loader_free(l);
    gr_dataset_free(ds);
    return 0;
}
