/* test_silent.c — the library never prints: the public calls that used to write to stderr
 * (extract with its cache, a skipped bad image, layer_auto, a head fit, few-shot, fine-tuning,
 * a checkpoint resume, a failed internal assertion) run with stdout and stderr redirected into
 * a file (dup2), which must stay empty; what they have to say arrives through the progress
 * callback instead, and is checked against what the call did: extraction counts up to the
 * number of samples, fine-tuning reports each epoch it trains, warnings name their file.
 *
 *   test_silent TESTMODELS_DIR WORK_DIR
 *
 * TESTMODELS_DIR is scripts/make_test_models.py's output (tiny.onnx: (N, 3, 8, 8) -> (N, 4)). */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "core/core.h"
#include "graft.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tiny[4096], work[4096], good[4200], bad[4200], cache[4200], ckpt[4200];

/* ---- what the library says: every event, recorded ---- */

#define MAXEV 4096
typedef struct event {
    graft_event kind;
    char stage[32];
    int64_t done, total;
    char message[512];
} event;

static event evs[MAXEV];
static int nev;

static void record(void *ctx, const graft_progress *p)
{
    (void)ctx;
    if (nev == MAXEV) return;
    event *e = &evs[nev++];
    e->kind = p->event;
    snprintf(e->stage, sizeof e->stage, "%s", p->stage ? p->stage : "");
    e->done = p->done, e->total = p->total;
    snprintf(e->message, sizeof e->message, "%s", p->message ? p->message : "");
}

/* Runs of a stage (each starts at done 0): how many, whether done never went down within one
 * and whether each ended at done == total == want_total (want_total < 0: any total). */
static int runs_of(const char *stage, int64_t want_total, int *ok)
{
    int runs = 0;
    int64_t last = -1, total = -1;
    *ok = 1;
    for (int i = 0; i < nev; i++) {
        const event *e = &evs[i];
        if (e->kind != GRAFT_EVENT_PROGRESS || strcmp(e->stage, stage)) continue;
        if (e->done == 0) {
            if (runs && last != total) *ok = 0; /* the previous run stopped short */
            runs++, total = e->total;
        } else if (e->done < last || e->total != total) *ok = 0;
        last = e->done;
    }
    if (runs && (last != total || (want_total >= 0 && total != want_total))) *ok = 0;
    return runs;
}

/* Events of a kind and stage whose message contains `text`. */
static int count_msgs(graft_event kind, const char *stage, const char *text)
{
    int n = 0;
    for (int i = 0; i < nev; i++)
        n += evs[i].kind == kind && !strcmp(evs[i].stage, stage) && strstr(evs[i].message, text);
    return n;
}

/* ---- stdout and stderr into a file around a call ---- */

static int saved[2] = { -1, -1 };
static char capture_path[4300];

static void mute(void)
{
    fflush(stdout);
    fflush(stderr);
    int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    saved[0] = dup(1), saved[1] = dup(2);
    dup2(fd, 1), dup2(fd, 2);
    close(fd);
    nev = 0;
}

/* Restores stdout and stderr; returns what was written meanwhile (empty: silent). */
static const char *unmute(void)
{
    static char text[4096];
    fflush(stdout);
    fflush(stderr);
    dup2(saved[0], 1), dup2(saved[1], 2);
    close(saved[0]), close(saved[1]);
    text[0] = 0;
    FILE *f = fopen(capture_path, "rb");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
    }
    return text;
}

#define CHECK_SILENT(what)                                                                         \
    do {                                                                                           \
        const char *said = unmute();                                                               \
        CHECK(said[0] == 0, "%s printed: %s", what, said);                                         \
    } while (0)

/* ---- data: two classes of 8x8 colour images, told apart by their colour ---- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) fprintf(stderr, "cannot write %s\n", path);
    if (f) fclose(f);
}

static void write_ppm(const char *path, int cls, int i)
{
    unsigned char buf[32 + 8 * 8 * 3];
    int k = snprintf((char *)buf, 32, "P6\n8 8\n255\n");
    for (int p = 0; p < 64; p++) {
        int noise = (p * 37 + i * 11) % 23;
        buf[k + 3 * p] = (unsigned char)(cls ? 200 - noise : 40 + noise);
        buf[k + 3 * p + 1] = (unsigned char)(90 + (p + i) % 30);
        buf[k + 3 * p + 2] = (unsigned char)(cls ? 30 + noise : 190 - noise);
    }
    write_file(path, buf, (size_t)k + 192);
}

/* dir/c0 and dir/c1 with n images each; with_bad: one more in c0 that is not an image. */
static void make_folder(const char *dir, int n, int with_bad)
{
    char p[4400];
    mkdir(dir, 0777);
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/c%d", dir, c);
        mkdir(p, 0777);
        for (int i = 0; i < n; i++) {
            snprintf(p, sizeof p, "%s/c%d/img%02d.ppm", dir, c, i);
            write_ppm(p, c, i);
        }
    }
    if (with_bad) {
        snprintf(p, sizeof p, "%s/c0/broken.ppm", dir);
        write_file(p, "P6\n8 8\n255\nshort", 16);
    }
}

static void extract_opts(graft_extract_opts *o)
{
    graft_extract_opts_init(o);
    o->layer = "r", o->transform = "size=8,normalize=none", o->batch = 5;
    o->progress = record;
}

/* ---- the calls ---- */

static void test_extract(const graft_dataset *d)
{
    graft_extract_opts o;
    extract_opts(&o);
    o.cache_dir = cache;
    graft_tensor *X = NULL;
    int cached = -1;
    mute();
    graft_status st = graft_extract(tiny, d, &o, &X, NULL, NULL, &cached);
    CHECK_SILENT("extract");
    CHECK(st == GRAFT_OK, "extract: %s", graft_last_error());
    int ok, runs = runs_of("extract", 24, &ok);
    CHECK(runs == 1 && ok, "extract: %d runs of 'extract' progress up to 24 samples (ok %d)", runs,
          ok);
    CHECK(!cached && X && X->dims[0] == 24, "extract: 24 rows computed");
    graft_tensor_free(X);

    /* the cache answers: no run, and still nothing printed */
    mute();
    st = graft_extract(tiny, d, &o, &X, NULL, NULL, &cached);
    CHECK_SILENT("extract (cached)");
    CHECK(st == GRAFT_OK && cached == 1, "extract (cached): %s", graft_last_error());
    graft_tensor_free(X);

    /* a damaged cache file: a warning naming it, the features recomputed */
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "for f in '%s'/*.safetensors; do printf garbage > \"$f\"; done",
             cache);
    CHECK(system(cmd) == 0, "damaging the cache");
    mute();
    st = graft_extract(tiny, d, &o, &X, NULL, NULL, &cached);
    CHECK_SILENT("extract (damaged cache)");
    CHECK(st == GRAFT_OK && !cached, "extract (damaged cache): %s", graft_last_error());
    CHECK(count_msgs(GRAFT_EVENT_WARNING, "extract", "extract: ignoring the damaged cache file") ==
                  1 &&
              count_msgs(GRAFT_EVENT_WARNING, "extract", cache) == 1,
          "extract (damaged cache): one warning naming the file");
    graft_tensor_free(X);
}

static void test_skip_bad(void)
{
    graft_dataset *d = NULL;
    if (graft_dataset_open(bad, NULL, &d)) {
        CHECK(0, "open %s: %s", bad, graft_last_error());
        return;
    }
    graft_extract_opts o;
    extract_opts(&o);
    o.skip_bad = 1;
    graft_tensor *X = NULL;
    mute();
    graft_status st = graft_extract(tiny, d, &o, &X, NULL, NULL, NULL);
    CHECK_SILENT("extract --skip-bad");
    CHECK(st == GRAFT_OK && X && X->dims[0] == 24, "skip: 24 of 25 rows (%s)",
          st ? graft_last_error() : "");
    int ok, runs = runs_of("extract", 25, &ok); /* the skipped image counts as done */
    CHECK(runs == 1 && ok, "skip: one run up to 25 samples (runs %d, ok %d)", runs, ok);
    CHECK(count_msgs(GRAFT_EVENT_WARNING, "load", "graft: skipping a bad sample: ") == 1 &&
              count_msgs(GRAFT_EVENT_WARNING, "load", "broken.ppm") == 1,
          "skip: one warning naming broken.ppm");
    graft_tensor_free(X);
    graft_dataset_free(d);
}

static void test_heads(const graft_dataset *d)
{
    graft_extract_opts o;
    extract_opts(&o);
    char *ranking = NULL, *layer = NULL;
    graft_pool pool = (graft_pool)-1;
    mute();
    graft_status st = graft_layer_auto(tiny, d, NULL, &o, 0, &ranking, &layer, &pool);
    CHECK_SILENT("layer_auto");
    CHECK(st == GRAFT_OK && layer && graft_pool_name(pool), "layer_auto: %s",
          st ? graft_last_error() : "");
    free(ranking), free(layer);

    graft_tensor *X = NULL, *y = NULL;
    st = graft_extract(tiny, d, &o, &X, &y, NULL, NULL);
    CHECK(st == GRAFT_OK, "extract for the heads: %s", graft_last_error());
    if (st) return;
    graft_fit_opts fo;
    graft_fit_opts_init(&fo); /* logreg, C cross-validated */
    graft_head *h = NULL;
    mute();
    st = graft_head_fit(X, y, 2, &fo, &h);
    CHECK_SILENT("head fit");
    CHECK(st == GRAFT_OK && graft_head_cv_accuracy(h) >= 0, "head fit (C by CV): %s",
          st ? graft_last_error() : "");
    graft_head_free(h);

    graft_fewshot_opts fs;
    graft_fewshot_opts_init(&fs);
    fs.way = 2, fs.query = 3, fs.episodes = 20;
    double mean = -1, ci = -1;
    mute();
    st = graft_fewshot_eval(X, y, 2, &fs, &mean, &ci);
    CHECK_SILENT("fewshot");
    CHECK(st == GRAFT_OK && mean >= 0 && mean <= 1, "fewshot: %s", st ? graft_last_error() : "");
    graft_tensor_free(X);
    graft_tensor_free(y);
}

static void finetune_opts(graft_finetune_opts *o)
{
    graft_finetune_opts_init(o);
    o->head_init = GRAFT_HEAD_INIT_RANDOM, o->freeze = "all", o->head_epochs = 2, o->epochs = 1;
    o->val_frac = 0, o->batch = 6, o->workers = 1, o->seed = 3;
    o->transform = "size=8,normalize=none", o->augment = "size=8,normalize=none";
    o->progress = record;
}

static void test_finetune(const graft_dataset *d)
{
    char out[4400];
    snprintf(out, sizeof out, "%s/ft.onnx", work);
    graft_finetune_opts o;
    finetune_opts(&o);
    mute();
    graft_status st = graft_finetune(tiny, d, NULL, &o, out, NULL);
    CHECK_SILENT("finetune");
    CHECK(st == GRAFT_OK, "finetune: %s", graft_last_error());
    int ok, runs = runs_of("train", 24, &ok); /* batch 6 divides 24: every image every epoch */
    CHECK(runs == 3 && ok, "finetune: 3 epochs of 24 images reported (runs %d, ok %d)", runs, ok);
    CHECK(count_msgs(GRAFT_EVENT_NOTE, "finetune", "finetune: model ") == 1,
          "finetune: the recipe is a note");
    CHECK(count_msgs(GRAFT_EVENT_NOTE, "finetune", "phase 1 epoch  1/2: train loss") == 1 &&
              count_msgs(GRAFT_EVENT_NOTE, "finetune", "phase 1 epoch  2/2: train loss") == 1 &&
              count_msgs(GRAFT_EVENT_NOTE, "finetune", "phase 2 epoch  1/1: train loss") == 1,
          "finetune: a note for each epoch");

    /* interrupted after phase 1's two epochs (a checkpoint after each), the newest checkpoint
     * truncated, resumed: a warning names it, the previous one is used, a note says so */
    o.checkpoint_dir = ckpt, o.stop_after_epochs = 2;
    mute();
    st = graft_finetune(tiny, d, NULL, &o, out, NULL);
    CHECK_SILENT("finetune (stopped)");
    CHECK(st != GRAFT_OK, "finetune stop_after_epochs 2 stops");
    char newest[4400];
    snprintf(newest, sizeof newest, "%s/phase1/ckpt.safetensors", ckpt);
    CHECK(truncate(newest, 100) == 0, "truncating %s", newest);
    o.stop_after_epochs = 0, o.resume = 1;
    mute();
    st = graft_finetune(tiny, d, NULL, &o, out, NULL);
    CHECK_SILENT("finetune (resumed)");
    CHECK(st == GRAFT_OK, "finetune (resumed): %s", graft_last_error());
    CHECK(count_msgs(GRAFT_EVENT_WARNING, "checkpoint",
                     "graft: the newest checkpoint is unusable") >= 1 &&
              count_msgs(GRAFT_EVENT_WARNING, "checkpoint", "previous checkpoint") >= 1,
          "resume: the unusable newest checkpoint is a warning");
    CHECK(count_msgs(GRAFT_EVENT_NOTE, "finetune", "finetune: resumed ") == 1,
          "resume: a note says where it resumed");
    runs = runs_of("train", 24, &ok); /* phase 1's second epoch again, then phase 2 */
    CHECK(runs == 2 && ok, "resume: 2 epochs trained (runs %d, ok %d)", runs, ok);
}

/* A failed internal assertion: nothing printed, the message in graft_last_error() (where a
 * SIGABRT handler such as the CLI's finds it), then abort. In a child process. */
static char assert_msg_path[4300];
static void on_abort(int sig)
{
    (void)sig;
    int fd = open(assert_msg_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const char *m = graft_last_error();
    if (fd >= 0 && write(fd, m, strlen(m)) < 0) _exit(3);
    _exit(7);
}

static void test_assert(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        mute();
        signal(SIGABRT, on_abort);
        gr_assert_fail("x == 1", "somewhere.c", 42);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char msg[512] = "";
    FILE *f = fopen(assert_msg_path, "rb");
    if (f) {
        size_t n = fread(msg, 1, sizeof msg - 1, f);
        msg[n] = 0;
        fclose(f);
    }
    f = fopen(capture_path, "rb");
    int printed = f ? fgetc(f) != EOF : 1;
    if (f) fclose(f);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, "assert: aborted (status %d)", status);
    CHECK(!strcmp(msg, "internal error: assertion 'x == 1' failed at somewhere.c:42"),
          "assert: graft_last_error() holds the message, got '%s'", msg);
    CHECK(!printed, "assert: something was printed");
}

/* The closed sets' names: each value's name reads back as that value, a wrong name is refused
 * with the list of names, NULL names a value outside the enum. (Here because the options that
 * replaced `quiet` came with them.) */
#define ROUND_TRIP(type, name_fn, from_fn, n, list)                                                \
    do {                                                                                           \
        for (int v = 0; v < (n); v++) {                                                            \
            type back = (type)-1;                                                                  \
            const char *nm = name_fn((type)v);                                                     \
            CHECK(nm &&from_fn(nm, &back) == GRAFT_OK && back == (type)v, #name_fn " %d: %s", v,   \
                  nm ? nm : "NULL");                                                               \
        }                                                                                          \
        type x;                                                                                    \
        CHECK(name_fn((type)(n)) == NULL, #name_fn " past the end");                               \
        CHECK(from_fn("cube", &x) == GRAFT_E_ARG && strstr(graft_last_error(), "cube") &&          \
                  strstr(graft_last_error(), list),                                                \
              #from_fn ": %s", graft_last_error());                                                \
    } while (0)

static void test_names(void)
{
    ROUND_TRIP(graft_pool, graft_pool_name, graft_pool_from_name, 4, "mean, grid2, grid4 or none");
    ROUND_TRIP(graft_head_kind, graft_head_kind_name, graft_head_kind_from_name, 4,
               "logreg, mlp, knn or ncm");
    ROUND_TRIP(graft_norm, graft_norm_name, graft_norm_from_name, 4, "standardize, l2 or none");
    ROUND_TRIP(graft_fewshot_method, graft_fewshot_method_name, graft_fewshot_method_from_name, 3,
               "simpleshot, knn or imprint");
    ROUND_TRIP(graft_head_init, graft_head_init_name, graft_head_init_from_name, 3,
               "probe, imprint or random");
    ROUND_TRIP(graft_bn, graft_bn_name, graft_bn_from_name, 3, "train or frozen");
    ROUND_TRIP(graft_optimizer, graft_optimizer_name, graft_optimizer_from_name, 2, "adamw or sgd");
    graft_pool p;
    CHECK(!strcmp(graft_pool_name(GRAFT_POOL_GRID4), "grid4") &&
              graft_pool_from_name(NULL, &p) == GRAFT_E_ARG,
          "grid4 is named grid4; a NULL name is refused");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_silent TESTMODELS_DIR WORK_DIR\n");
        return 2;
    }
    snprintf(tiny, sizeof tiny, "%s/tiny.onnx", argv[1]);
    snprintf(work, sizeof work, "%s", argv[2]);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    if (system(cmd)) return 2;
    mkdir(work, 0777);
    snprintf(good, sizeof good, "%s/good", work);
    snprintf(bad, sizeof bad, "%s/bad", work);
    snprintf(cache, sizeof cache, "%s/cache", work);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", work);
    snprintf(capture_path, sizeof capture_path, "%s/printed.txt", work);
    snprintf(assert_msg_path, sizeof assert_msg_path, "%s/assert.txt", work);
    make_folder(good, 12, 0);
    make_folder(bad, 12, 1);
    graft_set_threads(1);
    graft_dataset *d = NULL;
    if (graft_dataset_open(good, NULL, &d)) {
        fprintf(stderr, "open %s: %s\n", good, graft_last_error());
        return 1;
    }
    test_extract(d);
    test_skip_bad();
    test_heads(d);
    test_finetune(d);
    test_assert();
    test_names();
    graft_dataset_free(d);
    return th_finish();
}
