/* test_alloc_fail.c — every allocation graft makes can fail, and graft copes: the sweep runs an
 * operation once to count its allocations (M), then M more times with the N-th allocation
 * failing (N = 1..M, one failure per run, as sqlite tests its malloc failures). Each run must
 * return GRAFT_E_NOMEM with a message, or succeed with exactly the result of the run without
 * failures; under ASan (make asan) LeakSanitizer then checks that nothing leaked on any path.
 *
 * How: this executable links graft's static library with -Wl,--wrap=malloc (and calloc,
 * realloc, aligned_alloc, posix_memalign, strdup, strndup; tests/alloc_fail.cmake), so every
 * call graft's own code makes goes through the __wrap_ functions below; shared libraries
 * (oneDNN, libjpeg-turbo, libc itself) keep their allocator. protobuf-c's unpacking is counted
 * too: graft hands it an allocator of its own.
 *
 *   test_alloc_fail TESTMODELS_DIR WORK_DIR
 *
 * TESTMODELS_DIR is scripts/make_test_models.py's output (tiny.onnx, tiny_input.npy). */
#define _GNU_SOURCE
#include "harness.h"

#include "graft.h"
#include "graph/graph.h"
#include "io/io.h"
#include "train/train.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the failing allocator ---- */

static atomic_long af_count;   /* allocations seen while armed */
static atomic_long af_fail_at; /* the one that fails (1-based); 0: none */
static atomic_int af_armed, af_failed;

static int af_should_fail(void)
{
    if (!atomic_load(&af_armed)) return 0;
    long n = atomic_fetch_add(&af_count, 1) + 1;
    if (n != atomic_load(&af_fail_at)) return 0;
    atomic_store(&af_failed, 1);
    return 1;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t n) { return af_should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size)
{
    return af_should_fail() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) { return af_should_fail() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return af_should_fail() ? NULL : __real_aligned_alloc(align, n);
}
int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    return af_should_fail() ? ENOMEM : __real_posix_memalign(p, align, n);
}
char *__wrap_strdup(const char *s) { return af_should_fail() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n)
{
    return af_should_fail() ? NULL : __real_strndup(s, n);
}

/* An operation arms the allocator around the part under test only (fixtures are built
 * without failures), returns its status and, on success, a fingerprint of its result. */
static void arm(void) { atomic_store(&af_armed, 1); }
static void disarm(void) { atomic_store(&af_armed, 0); }

typedef int (*op_fn)(uint64_t *fingerprint);

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static uint64_t fnv_tensor(uint64_t h, const graft_tensor *t)
{
    h = fnv(h, t->dims, (size_t)t->rank * sizeof t->dims[0]);
    size_t es = t->dtype == GRAFT_FLOAT || t->dtype == GRAFT_INT32 ? 4
                : t->dtype == GRAFT_INT64                          ? 8
                                                                   : 1;
    return fnv(h, t->data, (size_t)graft_tensor_numel(t) * es);
}

/* Runs op with each of its allocations failing in turn; see the file's comment. */
static void sweep(const char *name, op_fn op)
{
    uint64_t want = 0, got;
    atomic_store(&af_count, 0);
    atomic_store(&af_fail_at, 0);
    int st = op(&want);
    long total = atomic_load(&af_count);
    CHECK(st == GRAFT_OK, "%s: the run without failures failed: %s", name, graft_last_error());
    CHECK(total > 0, "%s: no allocation was seen (is the --wrap link option in place?)", name);
    long nomem = 0, ok = 0, bad = 0;
    for (long n = 1; n <= total; n++) {
        atomic_store(&af_count, 0);
        atomic_store(&af_failed, 0);
        atomic_store(&af_fail_at, n);
        got = 0;
        st = op(&got);
        int failed = atomic_load(&af_failed);
        if (st == GRAFT_E_NOMEM && failed && graft_last_error()[0]) nomem++;
        else if (st == GRAFT_OK && got == want) ok++; /* the failure was handled (e.g. a retry) */
        else if (bad++ < 5)
            CHECK(0, "%s: allocation %ld of %ld failing gave status %d (%s), result %s: %s", name,
                  n, total, st, graft_status_name(st),
                  st            ? "-"
                  : got == want ? "same"
                                : "DIFFERENT",
                  graft_last_error());
    }
    atomic_store(&af_fail_at, 0);
    CHECK(bad == 0, "%s: %ld of %ld failing allocations mishandled", name, bad, total);
    printf("%-22s %5ld allocations: %5ld failures reported as out of memory, %5ld recovered\n",
           name, total, nomem, ok);
}

/* ---- the operations ---- */

static const char *models, *work;
static char tiny[4096], tiny_in[4096];

static int op_model_load(uint64_t *fp)
{
    graft_model *m = NULL;
    arm();
    int st = graft_model_load(tiny, &m);
    disarm();
    if (!st) *fp = (uint64_t)graft_model_num_inputs(m) * 31 + (uint64_t)graft_model_num_outputs(m);
    graft_model_free(m);
    return st;
}

/* Planning and running: the plan is built on the first run of a freshly loaded model. */
static int op_model_run(uint64_t *fp)
{
    graft_model *m = NULL;
    graft_tensor *x = NULL, *y = NULL;
    int st = graft_model_load(tiny, &m);
    if (!st) st = graft_npy_load(tiny_in, &x);
    if (st) return GRAFT_E_INTERNAL;
    arm();
    st = graft_model_run(m, (const graft_tensor *const *)&x, 1, &y, 1);
    disarm();
    if (!st) *fp = fnv_tensor(1, y);
    graft_tensor_free(y);
    graft_tensor_free(x);
    graft_model_free(m);
    return st;
}

static int op_model_info(uint64_t *fp)
{
    graft_model *m = NULL;
    char *json = NULL;
    if (graft_model_load(tiny, &m)) return GRAFT_E_INTERNAL;
    arm();
    int st = graft_model_info_json(m, 2, &json);
    disarm();
    if (!st) *fp = fnv(1, json, strlen(json));
    free(json);
    graft_model_free(m);
    return st;
}

static char folder[4096], csv[4096], idx[4096], cache[4096], ckpt[4096], head_path[4096];

/* A dataset opened and one sample loaded through a transform. */
static int open_and_load(const char *path, uint64_t *fp)
{
    graft_dataset *d = NULL;
    graft_tensor *x = NULL;
    arm();
    int st = graft_dataset_open(path, NULL, &d);
    if (!st) st = graft_dataset_load(d, graft_dataset_size(d) - 1, "size=8", 0, &x);
    disarm();
    if (!st)
        *fp = fnv_tensor(
            (uint64_t)graft_dataset_size(d) * 131 + (uint64_t)graft_dataset_num_classes(d), x);
    graft_tensor_free(x);
    graft_dataset_free(d);
    return st;
}

static int op_folder(uint64_t *fp) { return open_and_load(folder, fp); }
static int op_csv(uint64_t *fp) { return open_and_load(csv, fp); }
static int op_idx(uint64_t *fp) { return open_and_load(idx, fp); }

static void remove_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* Features of the folder dataset at the tiny model's pooled Relu map, written to a fresh cache
 * (cold = 1) or read back from it (cold = 0). One loader thread keeps the order of
 * allocations the same from run to run. */
static int extract(int cold, uint64_t *fp)
{
    graft_dataset *d = NULL;
    graft_tensor *X = NULL, *y = NULL;
    if (graft_dataset_open(folder, NULL, &d)) return GRAFT_E_INTERNAL;
    if (cold) remove_tree(cache);
    graft_extract_opts o;
    graft_extract_opts_init(&o);
    o.layer = "r", o.pool = GRAFT_POOL_MEAN, o.transform = "size=8", o.batch = 2, o.workers = 1;
    o.cache_dir = cache;
    int cached = 0;
    arm();
    int st = graft_extract(tiny, d, &o, &X, &y, NULL, &cached);
    disarm();
    if (!st) *fp = fnv_tensor(fnv_tensor(1, X), y);
    graft_tensor_free(X);
    graft_tensor_free(y);
    graft_dataset_free(d);
    return st;
}

static int op_extract_cold(uint64_t *fp) { return extract(1, fp); }
static int op_extract_cached(uint64_t *fp) { return extract(0, fp); }

static uint64_t file_fingerprint(const char *path)
{
    unsigned char *data;
    size_t n;
    if (gr_read_file(path, 0, &data, &n)) return 0;
    uint64_t h = fnv(1, data, n);
    free(data);
    return h;
}

/* A training session's checkpoint (every parameter of the tiny model trainable, AdamW). */
static int op_checkpoint(uint64_t *fp)
{
    gr_graph *g = NULL;
    gr_trainer *t = NULL;
    if (gr_onnx_load(tiny, &g)) return GRAFT_E_INTERNAL;
    unsigned char *trainable = calloc((size_t)g->nvalues + 1, 1);
    gr_graph_params(g, trainable);
    gr_trainer_cfg cfg = { .opt = { .kind = GR_ADAMW, .lr = 1e-3 } };
    int st = gr_trainer_new(g, trainable, &cfg, &t);
    if (st) return GRAFT_E_INTERNAL;
    gr_train_pos pos = { .epoch = 1, .batch = 2, .seed = 3, .note = "{\"k\": 1}" };
    remove(ckpt);
    arm();
    st = gr_trainer_save(t, ckpt, &pos);
    disarm();
    if (!st) *fp = file_fingerprint(ckpt);
    gr_trainer_free(t);
    free(trainable);
    gr_graph_free(g);
    return st;
}

/* A logistic-regression head on 24 points in 4 dimensions: fitted, saved, loaded, applied. */
static int op_head(uint64_t *fp)
{
    int64_t xd[2] = { 24, 4 }, yd[1] = { 24 };
    graft_tensor *X, *y, *prob = NULL;
    if (graft_tensor_new(GRAFT_FLOAT, 2, xd, &X) || graft_tensor_new(GRAFT_INT32, 1, yd, &y))
        return GRAFT_E_INTERNAL;
    for (int i = 0; i < 24; i++) {
        ((int32_t *)y->data)[i] = i % 3;
        for (int j = 0; j < 4; j++)
            ((float *)X->data)[i * 4 + j] = (float)((i % 3) == j) + 0.1f * (float)((i * 7 + j) % 5);
    }
    graft_fit_opts o;
    graft_fit_opts_init(&o);
    o.kind = GRAFT_HEAD_LOGREG, o.C = 1.0, o.seed = 1;
    graft_head *h = NULL, *h2 = NULL;
    remove(head_path);
    arm();
    int st = graft_head_fit(X, y, 3, &o, &h);
    if (!st) st = graft_head_save(h, head_path);
    if (!st) st = graft_head_load(head_path, &h2);
    if (!st) st = graft_head_predict(h2, X, &prob);
    disarm();
    if (!st) *fp = fnv_tensor(1, prob);
    graft_tensor_free(prob);
    graft_head_free(h);
    graft_head_free(h2);
    graft_tensor_free(X);
    graft_tensor_free(y);
    return st;
}

/* ---- fixtures: small datasets written here ---- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

/* A 6x5 binary PGM whose pixels depend on seed. */
static void write_pgm(const char *path, int seed)
{
    unsigned char buf[64];
    int k = snprintf((char *)buf, sizeof buf, "P5\n6 5\n255\n");
    for (int i = 0; i < 30; i++) buf[k + i] = (unsigned char)(seed * 37 + i * 11);
    write_file(path, buf, (size_t)k + 30);
}

static void make_datasets(void)
{
    char p[4200], text[4096] = "path,label\n";
    snprintf(folder, sizeof folder, "%s/folder", work);
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/class%d", folder, c);
        mkdir(folder, 0777);
        mkdir(p, 0777);
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/class%d/img%d.pgm", folder, c, i);
            write_pgm(p, c * 3 + i);
            size_t k = strlen(text);
            snprintf(text + k, sizeof text - k, "%.1000s,%s\n", p, c ? "cat" : "dog");
        }
    }
    snprintf(csv, sizeof csv, "%s/list.csv", work);
    write_file(csv, text, strlen(text));
    /* IDX: 4 images of 3x3 and their labels (big-endian counts) */
    unsigned char img[16 + 36] = { 0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 3 };
    for (int i = 0; i < 36; i++) img[16 + i] = (unsigned char)(i * 7);
    unsigned char lab[8 + 4] = { 0, 0, 8, 1, 0, 0, 0, 4, 0, 1, 2, 1 };
    snprintf(idx, sizeof idx, "%s/toy-images-idx3-ubyte", work);
    write_file(idx, img, sizeof img);
    snprintf(p, sizeof p, "%s/toy-labels-idx1-ubyte", work);
    write_file(p, lab, sizeof lab);
    snprintf(cache, sizeof cache, "%s/cache", work);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", work);
    snprintf(head_path, sizeof head_path, "%s/head.safetensors", work);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_alloc_fail TESTMODELS_DIR WORK_DIR\n");
        return 2;
    }
    models = argv[1];
    work = argv[2];
    remove_tree(work);
    mkdir(work, 0777);
    snprintf(tiny, sizeof tiny, "%s/tiny.onnx", models);
    snprintf(tiny_in, sizeof tiny_in, "%s/tiny_input.npy", models);
    setvbuf(stdout, NULL, _IOLBF, 0); /* each sweep's line survives a crash in the next */
    graft_set_threads(1);
    make_datasets();
    sweep("model load", op_model_load);
    sweep("model plan + run", op_model_run);
    sweep("model info", op_model_info);
    sweep("dataset folder", op_folder);
    sweep("dataset csv", op_csv);
    sweep("dataset idx", op_idx);
    sweep("extract (cold cache)", op_extract_cold);
    sweep("extract (cached)", op_extract_cached);
    sweep("checkpoint write", op_checkpoint);
    sweep("head fit/save/load", op_head);
    return th_finish();
}
