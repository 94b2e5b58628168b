/* test_data_loader.c — the threaded loader (data.h, "loader"): bit-identical batches for any
 * worker count, every sample once per epoch, drop_last, subsets, the bad-sample policies, free
 * mid-epoch, and each sample equal to gr_transform_apply run directly on a separately decoded
 * copy of the file with the per-sample seed data.h documents (recomputed here). The images are
 * PPM files of varied sizes and random pixels written by this test (never decoded at a reduced
 * scale: that is JPEG only, checked on a photo); in-memory samples come from Fashion-MNIST. */
#define _POSIX_C_SOURCE 200809L
#include "data/data.h"
#include "harness.h"

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NCLASS    3
#define PER_CLASS 7
#define NSAMPLES  (NCLASS * PER_CLASS)
#define BATCH     5
#define OUT       24

static char root[256];

static void write_ppm(const char *path, int w, int h, uint64_t seed)
{
    gr_rng r;
    gr_rng_seed(&r, seed);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f, "P6\n%d %d\n255\n", w, h);
    for (int i = 0; i < w * h * 3; i++) fputc((int)gr_rng_below(&r, 256), f);
    fclose(f);
}

/* DIR/c<k>/img<i>.ppm with sizes between 30 and 70 pixels a side; `bad` adds c0/bad.jpg. */
static void make_folder(const char *dir, int bad)
{
    char p[512];
    mkdir(dir, 0755);
    for (int c = 0; c < NCLASS; c++) {
        snprintf(p, sizeof p, "%s/c%d", dir, c);
        mkdir(p, 0755);
        for (int i = 0; i < PER_CLASS; i++) {
            snprintf(p, sizeof p, "%s/c%d/img%d.ppm", dir, c, i);
            write_ppm(p, 30 + (i * 7 + c * 5) % 41, 30 + (i * 11 + c * 3) % 41,
                      (uint64_t)(c * 100 + i));
        }
    }
    if (bad) {
        snprintf(p, sizeof p, "%s/c0/bad.jpg", dir);
        FILE *f = fopen(p, "wb");
        const unsigned char junk[] = { 0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I',
                                       'F',  0,    1,    2,    3,    4,    5,   6,   7 };
        fwrite(junk, 1, sizeof junk, f);
        fclose(f);
    }
}

static void augment(gr_transform *t)
{
    gr_transform_default(t);
    t->resize = 0;
    t->crop = 0;
    t->rrc = OUT;
    t->rrc_scale[0] = 0.08f, t->rrc_scale[1] = 1.0f;
    t->rrc_ratio[0] = 3.0f / 4.0f, t->rrc_ratio[1] = 4.0f / 3.0f;
    t->hflip = 0.5f;
    t->jitter[0] = 0.4f, t->jitter[1] = 0.4f, t->jitter[2] = 0.4f, t->jitter[3] = 0.1f;
}

static gr_loader_opts opts(int workers, uint64_t seed)
{
    return (gr_loader_opts){ .batch = BATCH,
                             .workers = workers,
                             .prefetch = 0,
                             .shuffle = 1,
                             .drop_last = 0,
                             .bad = GR_BAD_FATAL,
                             .seed = seed };
}

/* One epoch, all batches concatenated. */
typedef struct run {
    int nbatch, n;
    int bn[64];
    float *x;
    int32_t y[256];
    int64_t index[256];
} run;

static size_t sample_len(void) { return (size_t)3 * OUT * OUT; }

static int epoch(gr_loader *l, int e, run *r)
{
    memset(r, 0, sizeof *r);
    r->x = malloc(256 * sample_len() * sizeof(float));
    if (gr_loader_start(l, e)) return -1;
    gr_batch b;
    int st;
    while ((st = gr_loader_next(l, &b)) == 1) {
        if (b.h != OUT || b.w != OUT || r->n + b.n > 256 || r->nbatch >= 64) return -1;
        memcpy(r->x + (size_t)r->n * sample_len(), b.x, (size_t)b.n * sample_len() * sizeof(float));
        memcpy(r->y + r->n, b.y, (size_t)b.n * sizeof *b.y);
        memcpy(r->index + r->n, b.index, (size_t)b.n * sizeof *b.index);
        r->bn[r->nbatch++] = b.n;
        r->n += b.n;
    }
    return st;
}

static int same(const run *a, const run *b)
{
    return a->nbatch == b->nbatch && a->n == b->n && !memcmp(a->bn, b->bn, sizeof a->bn) &&
           !memcmp(a->y, b->y, (size_t)a->n * sizeof *a->y) &&
           !memcmp(a->index, b->index, (size_t)a->n * sizeof *a->index) &&
           !memcmp(a->x, b->x, (size_t)a->n * sample_len() * sizeof(float));
}

static int load_run(const gr_dataset *ds, const gr_transform *t, gr_loader_opts o, int e, run *r)
{
    gr_loader *l;
    if (gr_loader_new(ds, NULL, 0, t, &o, &l)) {
        fprintf(stderr, "loader: %s\n", graft_last_error());
        memset(r, 0, sizeof *r);
        return -1;
    }
    int st = epoch(l, e, r);
    gr_loader_free(l);
    return st;
}

/* data.h: sample i of epoch e uses gr_rng_seed(splitmix64(splitmix64(splitmix64(seed) ^ e) ^ i)). */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void test_determinism(const gr_dataset *ds)
{
    gr_transform t;
    augment(&t);
    run ref[2], r;
    for (int e = 0; e < 2; e++)
        CHECK(load_run(ds, &t, opts(0, 7), e, &ref[e]) == 0, "epoch %d: %s", e, graft_last_error());
    CHECK(ref[0].nbatch == (NSAMPLES + BATCH - 1) / BATCH &&
              ref[0].bn[ref[0].nbatch - 1] == NSAMPLES % BATCH,
          "%d batches, last %d", ref[0].nbatch, ref[0].bn[ref[0].nbatch - 1]);
    int workers[] = { 1, 4 };
    for (int w = 0; w < 2; w++)
        for (int e = 0; e < 2; e++) {
            load_run(ds, &t, opts(workers[w], 7), e, &r);
            CHECK(same(&r, &ref[e]), "%d workers, epoch %d: batches differ from 0 workers",
                  workers[w], e);
            free(r.x);
        }
    /* one loader, epochs in any order and restarted mid-epoch */
    gr_loader *l;
    gr_loader_opts o = opts(2, 7);
    o.prefetch = 1;
    CHECK(gr_loader_new(ds, NULL, 0, &t, &o, &l) == 0, "%s", graft_last_error());
    epoch(l, 1, &r);
    CHECK(same(&r, &ref[1]), "epoch 1 first on a 2-worker loader");
    free(r.x);
    gr_batch b;
    gr_loader_start(l, 0);
    CHECK(gr_loader_next(l, &b) == 1, "first batch");
    epoch(l, 0, &r);
    CHECK(same(&r, &ref[0]), "epoch 0 restarted after one batch");
    free(r.x);
    gr_loader_free(l);

    /* every sample once per epoch, labels follow the index, epochs and seeds differ */
    for (int e = 0; e < 2; e++) {
        int seen[NSAMPLES] = { 0 }, labels_ok = 1;
        for (int i = 0; i < ref[e].n; i++) {
            if (ref[e].index[i] >= 0 && ref[e].index[i] < NSAMPLES) seen[ref[e].index[i]]++;
            labels_ok &= ref[e].y[i] == ds->labels[ref[e].index[i]];
        }
        int once = ref[e].n == NSAMPLES;
        for (int i = 0; i < NSAMPLES; i++) once &= seen[i] == 1;
        CHECK(once, "epoch %d: every sample exactly once (%d samples)", e, ref[e].n);
        CHECK(labels_ok, "epoch %d: y is the label of index", e);
    }
    CHECK(memcmp(ref[0].index, ref[1].index, sizeof ref[0].index) != 0,
          "epochs 0 and 1 have the same order");
    load_run(ds, &t, opts(1, 8), 0, &r);
    CHECK(memcmp(r.index, ref[0].index, sizeof r.index) != 0, "seeds 7 and 8 give the same order");
    free(r.x);
    /* without shuffling the order is the same in both epochs, yet the augmentation differs */
    run u[2];
    for (int e = 0; e < 2; e++) {
        gr_loader_opts o2 = opts(2, 7);
        o2.shuffle = 0;
        load_run(ds, &t, o2, e, &u[e]);
        int ident = u[e].n == NSAMPLES;
        for (int i = 0; i < u[e].n; i++) ident &= u[e].index[i] == i;
        CHECK(ident, "shuffle off, epoch %d: dataset order", e);
    }
    CHECK(memcmp(u[0].x, u[1].x, NSAMPLES * sample_len() * sizeof(float)) != 0,
          "epochs 0 and 1 augment alike");

    /* each sample equals the transform applied directly, with the documented seed */
    for (int e = 0; e < 2; e++) {
        int bad = 0;
        float *x = malloc(sample_len() * sizeof(float));
        for (int i = 0; i < ref[e].n; i++) {
            int64_t di = ref[e].index[i];
            gr_image img;
            if (gr_image_decode(ds->paths[di], &img)) {
                bad++;
                continue;
            }
            gr_rng rng;
            gr_rng_seed(&rng, splitmix64(splitmix64(splitmix64(7) ^ (uint64_t)e) ^ (uint64_t)di));
            if (gr_transform_apply(&t, &img, &rng, x) ||
                memcmp(x, ref[e].x + (size_t)i * sample_len(), sample_len() * sizeof(float)))
                bad++;
            gr_image_free(&img);
        }
        CHECK(bad == 0,
              "epoch %d: %d samples differ from gr_transform_apply with the per-sample seed", e,
              bad);
        free(x);
    }
    for (int e = 0; e < 2; e++) free(ref[e].x), free(u[e].x);
}

static void test_drop_last_and_subset(const gr_dataset *ds)
{
    gr_transform t;
    augment(&t);
    gr_loader_opts o = opts(2, 3);
    o.drop_last = 1;
    run r;
    CHECK(load_run(ds, &t, o, 0, &r) == 0, "%s", graft_last_error());
    int full = r.nbatch == NSAMPLES / BATCH;
    for (int i = 0; i < r.nbatch; i++) full &= r.bn[i] == BATCH;
    CHECK(full && r.n == NSAMPLES / BATCH * BATCH, "drop_last: %d batches, %d samples", r.nbatch,
          r.n);
    int seen[NSAMPLES] = { 0 }, twice = 0;
    for (int i = 0; i < r.n; i++) twice |= seen[r.index[i]]++;
    CHECK(!twice, "drop_last: a sample repeated");
    free(r.x);

    int64_t idx[] = { 20, 3, 5, 11, 0, 17, 9 };
    gr_loader *l;
    o = opts(3, 3);
    CHECK(gr_loader_new(ds, idx, 7, &t, &o, &l) == 0, "%s", graft_last_error());
    epoch(l, 0, &r);
    gr_loader_free(l);
    int in = r.n == 7;
    int64_t sum = 0;
    for (int i = 0; i < r.n; i++) {
        int found = 0;
        for (int k = 0; k < 7; k++) found |= r.index[i] == idx[k];
        in &= found;
        sum += r.index[i];
    }
    CHECK(in && sum == 20 + 3 + 5 + 11 + 0 + 17 + 9 && r.nbatch == 2,
          "subset: %d samples, %d batches", r.n, r.nbatch);
    free(r.x);
}

/* Runs f with stderr in a file; returns what was written (malloc'd). */
static char *capture_stderr(int (*f)(const gr_dataset *, run *), const gr_dataset *ds, run *r,
                            int *ret)
{
    char path[300];
    snprintf(path, sizeof path, "%s/stderr.txt", root);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(fd, 2);
    close(fd);
    *ret = f(ds, r);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *fp = fopen(path, "rb");
    char *buf = calloc(1, 65536);
    if (fp) {
        size_t n = fread(buf, 1, 65535, fp);
        buf[n] = 0;
        fclose(fp);
    }
    return buf;
}

/* The loader's warnings (a skipped sample), appended to `warned` as lines "stage|message". */
static char warned[65536];
static void collect(void *ctx, const graft_progress *p)
{
    (void)ctx;
    size_t n = strlen(warned);
    if (p->event == GRAFT_EVENT_WARNING)
        snprintf(warned + n, sizeof warned - n, "%s|%s\n", p->stage, p->message);
}

static int skip_two_epochs(const gr_dataset *ds, run *r)
{
    gr_transform t;
    augment(&t);
    gr_loader_opts o = opts(2, 5);
    o.bad = GR_BAD_SKIP;
    o.progress = (gr_progress){ collect, NULL };
    warned[0] = 0;
    gr_loader *l;
    if (gr_loader_new(ds, NULL, 0, &t, &o, &l)) return -1;
    int st = epoch(l, 0, &r[0]);
    if (!st) st = epoch(l, 1, &r[1]);
    int64_t skipped = gr_loader_skipped(l);
    gr_loader_free(l);
    return st ? st : (int)skipped;
}

static void test_bad(const gr_dataset *bds, int64_t bad_i)
{
    char bad_path[512];
    snprintf(bad_path, sizeof bad_path, "%s", bds->paths[bad_i]);
    /* skip: left out of its batch, counted once, reported once naming the file (a warning
     * through the progress callback; nothing on stderr) */
    run r[2];
    int skipped;
    char *err = capture_stderr(skip_two_epochs, bds, r, &skipped);
    CHECK(skipped == 1, "skip: %d skipped (want 1)", skipped);
    const char *hit = strstr(warned, bad_path);
    CHECK(hit && !strstr(hit + 1, bad_path) &&
              !strncmp(warned, "load|graft: skipping a bad sample: ", 35),
          "skip: one warning names %s; got: %s", bad_path, warned);
    CHECK(err[0] == 0, "skip: the loader printed on stderr: %s", err);
    free(err);
    /* the batch the bad sample fell in (same seed and epoch as the fatal runs below) */
    int bad_batch = -1;
    for (int b = 0; b < r[0].nbatch; b++)
        if (r[0].bn[b] < (b < r[0].nbatch - 1 ? BATCH : (NSAMPLES + 1) % BATCH)) bad_batch = b;
    CHECK(bad_batch >= 0, "skip: no batch came out a sample short");
    for (int e = 0; e < 2; e++) {
        int has_bad = 0, shorter = 0;
        for (int i = 0; i < r[e].n; i++) has_bad |= r[e].index[i] == bad_i;
        for (int b = 0; b < r[e].nbatch; b++) shorter += BATCH - r[e].bn[b];
        /* 22 samples: 4 full batches and one of 2, one of them a sample short */
        CHECK(!has_bad && r[e].n == NSAMPLES && r[e].nbatch == 5 && shorter == 5 * BATCH - NSAMPLES,
              "skip epoch %d: %d samples in %d batches, bad one present %d", e, r[e].n, r[e].nbatch,
              has_bad);
        free(r[e].x);
    }

    /* fatal: the batches before the bad sample arrive, then the error naming it, then it stays */
    gr_transform t;
    augment(&t);
    int workers[] = { 0, 2, 4 };
    for (int w = 0; w < 3; w++) {
        gr_loader *l;
        gr_loader_opts o = opts(workers[w], 5);
        if (gr_loader_new(bds, NULL, 0, &t, &o, &l)) {
            CHECK(0, "%s", graft_last_error());
            continue;
        }
        gr_loader_start(l, 0);
        gr_batch b;
        int st, got = 0;
        while ((st = gr_loader_next(l, &b)) == 1) got += b.n;
        CHECK(st < 0 && strstr(graft_last_error(), bad_path),
              "fatal, %d workers: returned %d, message: %s", workers[w], st, graft_last_error());
        CHECK(
            got == bad_batch * BATCH,
            "fatal, %d workers: %d samples before the error (want the %d whole batches before it)",
            workers[w], got, bad_batch);
        CHECK(gr_loader_next(l, &b) == st, "fatal: the error stays");
        CHECK(gr_loader_start(l, 0) == 0 && gr_loader_next(l, &b) == 1, "a new start clears it");
        gr_loader_free(l);
    }
}

/* In-memory samples (Fashion-MNIST's IDX test set, 28x28 gray): no crop needed, since they all
 * have one size; x must be ToTensor + Normalize of the raw pixels, computed here. */
static void test_in_memory(void)
{
    const char *fm = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    gr_dataset *ds;
    if (gr_dataset_open(fm, NULL, 0, &ds)) {
        CHECK(0, "open %s: %s", fm, graft_last_error());
        return;
    }
    CHECK(ds->n == 10000 && ds->w == 28 && ds->h == 28 && ds->pixels,
          "fashion-mnist: %lld samples of %dx%d", (long long)ds->n, ds->w, ds->h);
    gr_transform t;
    gr_transform_default(&t);
    t.resize = t.crop = 0;
    int64_t idx[] = { 9999, 0, 1234, 5, 42, 777, 3141 };
    gr_loader_opts o = opts(2, 11);
    o.batch = 3;
    o.shuffle = 0;
    gr_loader *l;
    if (gr_loader_new(ds, idx, 7, &t, &o, &l)) {
        CHECK(0, "in-memory loader: %s", graft_last_error());
        gr_dataset_free(ds);
        return;
    }
    gr_loader_start(l, 0);
    gr_batch b;
    int k = 0, st;
    float want[3 * 28 * 28];
    while ((st = gr_loader_next(l, &b)) == 1) {
        CHECK(b.h == 28 && b.w == 28, "in-memory batch of %dx%d", b.w, b.h);
        for (int i = 0; i < b.n && k < 7; i++, k++) {
            CHECK(b.index[i] == idx[k] && b.y[i] == ds->labels[idx[k]],
                  "in-memory sample %d: index %lld", k, (long long)b.index[i]);
            const uint8_t *px = ds->pixels + idx[k] * 28 * 28;
            for (int c = 0; c < 3; c++)
                for (int j = 0; j < 28 * 28; j++)
                    want[c * 784 + j] = ((float)px[j] / 255.0f - t.mean[c]) / t.std[c];
            th_close(b.x + (size_t)i * 3 * 784, want, 3 * 784, 1e-6, 1e-6,
                     "in-memory ToTensor + Normalize");
        }
    }
    CHECK(st == 0 && k == 7, "in-memory: %d samples, status %d", k, st);
    gr_loader_free(l);
    gr_dataset_free(ds);
}

/* A 512x600 photo under Resize 64 + CenterCrop 56: the loader decodes the JPEG at a reduced IDCT
 * scale (the image is more than twice the 64 needed), exactly as gr_image_decode_scaled with the
 * transform's gr_transform_decode_min does, and the result stays close to a full decode. */
static void test_scaled_decode(void)
{
    const char *photo = "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg";
    FILE *in = fopen(photo, "rb");
    if (!in) {
        CHECK(0, "%s is missing (python3-matplotlib)", photo);
        return;
    }
    static unsigned char data[1 << 20];
    size_t n = fread(data, 1, sizeof data, in);
    fclose(in);
    char dir[300], p[400];
    snprintf(dir, sizeof dir, "%s/photos", root);
    mkdir(dir, 0755);
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/k%d", dir, c);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/k%d/photo.jpg", dir, c);
        FILE *f = fopen(p, "wb");
        fwrite(data, 1, n, f);
        fclose(f);
    }
    gr_dataset *ds;
    if (gr_dataset_open(dir, NULL, 0, &ds)) {
        CHECK(0, "%s", graft_last_error());
        return;
    }
    gr_transform t;
    gr_transform_default(&t);
    t.resize = 64;
    t.crop = 56;
    int mw, mh;
    gr_transform_decode_min(&t, &mw, &mh);
    gr_loader_opts o = opts(2, 1);
    gr_loader *l;
    gr_batch b;
    if (gr_loader_new(ds, NULL, 0, &t, &o, &l) || gr_loader_start(l, 0) ||
        gr_loader_next(l, &b) != 1) {
        CHECK(0, "photo loader: %s", graft_last_error());
        gr_dataset_free(ds);
        return;
    }
    size_t len = (size_t)3 * 56 * 56;
    float *scaled = malloc(len * sizeof(float)), *full = malloc(len * sizeof(float));
    gr_image s_img, f_img;
    gr_rng rng;
    CHECK(b.n == 2 && gr_image_decode_scaled(photo, mw, mh, &s_img) == 0 &&
              gr_image_decode(photo, &f_img) == 0,
          "decode the photo: %s", graft_last_error());
    CHECK(s_img.w < f_img.w && s_img.w >= 2 * mw && s_img.h >= 2 * mh,
          "scaled decode %dx%d of %dx%d (min %dx%d)", s_img.w, s_img.h, f_img.w, f_img.h, mw, mh);
    gr_transform_apply(&t, &s_img, &rng, scaled); /* no random steps: rng unused */
    gr_transform_apply(&t, &f_img, &rng, full);
    for (int i = 0; i < b.n; i++)
        CHECK(!memcmp(b.x + i * len, scaled, len * sizeof(float)),
              "photo %d: loader differs from the scaled decode", i);
    double mad = 0;
    for (size_t i = 0; i < len; i++) mad += fabs((double)scaled[i] - full[i]) / (double)len;
    /* 0.03 in normalised units is about 1.7/255 of pixel value */
    CHECK(mad > 0 && mad < 0.03, "scaled vs full decode: mean |diff| %.4f", mad);
    gr_image_free(&s_img);
    gr_image_free(&f_img);
    free(scaled);
    free(full);
    gr_loader_free(l);
    gr_dataset_free(ds);
}

static void test_free_and_errors(const gr_dataset *ds)
{
    gr_transform t;
    augment(&t);
    gr_loader *l;
    gr_batch b;
    gr_loader_opts o = opts(4, 1);
    o.prefetch = 2;
    /* free before start, right after start, and after one batch: no hang, no leak (ASan) */
    CHECK(gr_loader_new(ds, NULL, 0, &t, &o, &l) == 0, "%s", graft_last_error());
    gr_loader_free(l);
    CHECK(gr_loader_new(ds, NULL, 0, &t, &o, &l) == 0, "%s", graft_last_error());
    gr_loader_start(l, 0);
    gr_loader_free(l);
    CHECK(gr_loader_new(ds, NULL, 0, &t, &o, &l) == 0, "%s", graft_last_error());
    gr_loader_start(l, 3);
    CHECK(gr_loader_next(l, &b) == 1 && b.n == BATCH, "one batch");
    gr_loader_free(l);
    CHECK(1, "free mid-epoch returned");

    /* a transform without a fixed size cannot batch images of different sizes */
    gr_transform v;
    gr_transform_default(&v);
    v.crop = 0;
    CHECK(gr_loader_new(ds, NULL, 0, &v, &o, &l) == GRAFT_E_ARG &&
              strstr(graft_last_error(), "fixed"),
          "resize only: %s", graft_last_error());
    o.batch = 0;
    CHECK(gr_loader_new(ds, NULL, 0, &t, &o, &l) == GRAFT_E_ARG, "batch 0");
    o = opts(1, 1);
    int64_t out_of_range[] = { 0, NSAMPLES };
    CHECK(gr_loader_new(ds, out_of_range, 2, &t, &o, &l) == GRAFT_E_ARG, "index out of range");
    CHECK(gr_loader_new(ds, NULL, 0, &t, &o, &l) == 0, "%s", graft_last_error());
    CHECK(gr_loader_next(l, &b) < 0, "next before start");
    gr_loader_free(l);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/graft_loader_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s/good", root);
    snprintf(bad, sizeof bad, "%s/bad", root);
    make_folder(good, 0);
    make_folder(bad, 1);
    gr_dataset *ds, *bds;
    if (gr_dataset_open(good, NULL, 0, &ds) || gr_dataset_open(bad, NULL, 0, &bds)) {
        fprintf(stderr, "open: %s\n", graft_last_error());
        return 1;
    }
    CHECK(ds->n == NSAMPLES && bds->n == NSAMPLES + 1, "%lld and %lld samples", (long long)ds->n,
          (long long)bds->n);
    int64_t bad_i = -1;
    for (int64_t i = 0; i < bds->n; i++)
        if (strstr(bds->paths[i], "bad.jpg")) bad_i = i;
    test_determinism(ds);
    test_drop_last_and_subset(ds);
    if (bad_i >= 0) test_bad(bds, bad_i);
    else CHECK(0, "bad.jpg not in the dataset");
    test_free_and_errors(ds);
    test_in_memory();
    test_scaled_decode();
    gr_dataset_free(ds);
    gr_dataset_free(bds);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
    return th_finish();
}
