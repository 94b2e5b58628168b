/* test_io_export.c — ONNX export (gr_onnx_save) against three independent readers:
 *  - graft itself: load → save → reload, both run on the same input, outputs equal bit for bit;
 *  - onnxruntime-node (scripts/ort_run.js) on the saved file: its output within 1e-4 relative
 *    of graft's (the measure of tests/test_models.c: max abs diff / max |reference|);
 *  - python3-onnx (scripts/onnx_export_check.py): onnx.checker.check_model(full_check=True)
 *    accepts the file, and every node, attribute, initializer, input/output type, opset and
 *    metadata entry equals the original's.
 * Models: the torchvision exports of tests/models.cmake (resnet18, mobilenet_v2 at opsets 13
 * and 17), the real PP-OCR models (ocr fixture) and a synthetic model using every attribute
 * type. Errors: a path in a missing folder, a folder the process cannot write to, and a full
 * disk (RLIMIT_FSIZE) must fail naming the path, leave no temp file and keep the old file.
 *
 *   test_io_export SRC_DIR OUT_DIR MODELS_DIR OCR_DIR PYTHON */
#define _GNU_SOURCE
#include "harness.h"
#include "io/io.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *src_dir, *out_dir, *models_dir, *ocr_dir, *python;

/* Runs argv (NULL-terminated) and returns its exit status, -1 if it could not run. */
static int run(char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Number of files in dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static int file_equals(const char *path, const char *text)
{
    char buf[256] = { 0 };
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

static double seconds(void) { return gr_now(); }

/* Python's structural check of saved against orig (exit status). */
static int py_check(const char *orig, const char *saved, const char *meta1, const char *meta2)
{
    char script[1024];
    snprintf(script, sizeof script, "%s/scripts/onnx_export_check.py", src_dir);
    char *argv[] = { (char *)python, script,
                     "check",        (char *)orig,
                     (char *)saved,  meta1 ? "--meta" : NULL,
                     (char *)meta1,  meta2 ? "--meta" : NULL,
                     (char *)meta2,  NULL };
    return run(argv);
}

/* ---- errors ---- */

/* A child that cannot write to its folder: a folder of mode 0555 (as user nobody when the test
 * runs as root, whom permissions do not stop). */
static void test_unwritable(const gr_graph *g)
{
    char dir[] = "/tmp/graft_export_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    chmod(dir, 0555);
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) || setuid(65534))) _exit(3);
        int st = gr_onnx_save(g, path);
        const char *msg = graft_last_error();
        int ok = st == GRAFT_E_IO && strstr(msg, path) && strstr(msg, strerror(EACCES));
        if (!ok) fprintf(stderr, "unwritable folder: status %d, message: %s\n", st, msg);
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "unwritable folder: child status %d",
          status);
    CHECK(count_prefix(dir, "model.onnx") == 0, "unwritable folder: a file was left in %s", dir);
    rmdir(dir);
}

static void test_missing_folder(const gr_graph *g)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/no_such_folder/model.onnx", out_dir);
    int st = gr_onnx_save(g, path);
    const char *msg = graft_last_error();
    CHECK(st == GRAFT_E_IO && strstr(msg, path) && strstr(msg, strerror(ENOENT)),
          "missing folder: status %d, message: %s", st, msg);
    struct stat sb;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/no_such_folder", out_dir);
    CHECK(stat(dir, &sb) != 0, "missing folder: %s was created", dir);
}

/* A full disk, simulated with a file-size limit: writes past 64 KiB fail with EFBIG. The
 * existing file must stay as it was and no temp file may remain. */
static void test_disk_full(const gr_graph *g)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/full.onnx", out_dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs("previous version", f) >= 0 && fclose(f) == 0, "cannot write %s", path);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = { 64 << 10, 64 << 10 };
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(3);
        int st = gr_onnx_save(g, path);
        const char *msg = graft_last_error();
        int ok = st == GRAFT_E_IO && strstr(msg, path) && strstr(msg, strerror(EFBIG));
        if (!ok) fprintf(stderr, "disk full: status %d, message: %s\n", st, msg);
        else fprintf(stderr, "disk full: %s\n", msg);
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "disk full: child status %d", status);
    CHECK(file_equals(path, "previous version"), "disk full: %s was changed", path);
    CHECK(count_prefix(out_dir, "full.onnx.tmp.") == 0, "disk full: temp file left in %s", out_dir);
}

/* ---- every attribute type ---- */

static void test_attrs(void)
{
    char orig[1024], saved[1024], script[1024];
    snprintf(orig, sizeof orig, "%s/attrs.onnx", out_dir);
    snprintf(saved, sizeof saved, "%s/attrs_saved.onnx", out_dir);
    snprintf(script, sizeof script, "%s/scripts/onnx_export_check.py", src_dir);
    char *argv[] = { (char *)python, script, "make-attrs", orig, NULL };
    CHECK(run(argv) == 0, "make-attrs failed");
    gr_graph *g = NULL;
    int st = gr_onnx_load(orig, &g);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    if (st) return;
    st = gr_onnx_save(g, saved);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    CHECK(count_prefix(out_dir, "attrs_saved.onnx.tmp.") == 0, "temp file left");
    CHECK(py_check(orig, saved, NULL, NULL) == 0, "python check of %s", saved);
    /* saving over an existing file replaces it */
    st = gr_onnx_save(g, saved);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    CHECK(py_check(orig, saved, NULL, NULL) == 0, "python check of %s (overwritten)", saved);
    test_missing_folder(g);
    test_unwritable(g);
    gr_graph_free(g);
}

/* ---- whole models ---- */

static graft_tensor *load_npy(const char *path)
{
    graft_tensor *t = NULL;
    int st = graft_npy_load(path, &t);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    return st ? NULL : t;
}

/* Runs the model at path on x; returns its outputs (count in *n) or NULL. */
static graft_tensor **run_graft(const char *path, const graft_tensor *x, int *n)
{
    graft_model *m = NULL;
    int st = graft_model_load(path, &m);
    CHECK(st == GRAFT_OK, "load %s: %s", path, graft_last_error());
    if (st) return NULL;
    *n = graft_model_num_outputs(m);
    graft_tensor **out = calloc((size_t)*n, sizeof *out);
    st = graft_model_run(m, &x, 1, out, *n);
    CHECK(st == GRAFT_OK, "run %s: %s", path, graft_last_error());
    graft_model_free(m);
    return out;
}

static size_t tensor_bytes(const graft_tensor *t)
{
    size_t es = t->dtype == GRAFT_FLOAT || t->dtype == GRAFT_INT32    ? 4
                : t->dtype == GRAFT_INT64 || t->dtype == GRAFT_DOUBLE ? 8
                                                                      : 1;
    return (size_t)graft_tensor_numel(t) * es;
}

static void free_outputs(graft_tensor **o, int n)
{
    for (int i = 0; o && i < n; i++) graft_tensor_free(o[i]);
    free(o);
}

/* dir/name.onnx with input dir/stem_input.npy. */
static void test_model(const char *dir, const char *name, const char *stem, int add_meta)
{
    char orig[1024], saved[1024], input[1024], ort_out[1024], script[1024];
    snprintf(orig, sizeof orig, "%s/%s.onnx", dir, name);
    snprintf(saved, sizeof saved, "%s/%s_saved.onnx", out_dir, name);
    snprintf(input, sizeof input, "%s/%s_input.npy", dir, stem);
    snprintf(ort_out, sizeof ort_out, "%s/%s_saved_ort.npy", out_dir, name);
    snprintf(script, sizeof script, "%s/scripts/ort_run.js", src_dir);

    gr_graph *g = NULL;
    int st = gr_onnx_load(orig, &g);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    if (st) return;
    if (add_meta) { /* what training adds: metadata_props must come out as given */
        gr_meta *m = gr_arena_alloc(g->arena, (size_t)(g->nmeta + 2) * sizeof *m);
        memcpy(m, g->meta, (size_t)g->nmeta * sizeof *m);
        m[g->nmeta++] = (gr_meta){ "graft.recipe", "finetune" };
        m[g->nmeta++] = (gr_meta){ "graft.note", "\"quoted\", \xc3\xa9" };
        g->meta = m;
    }
    double t0 = seconds();
    st = gr_onnx_save(g, saved);
    double t_save = seconds() - t0;
    gr_graph_free(g);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    if (st) return;
    CHECK(py_check(orig, saved, add_meta ? "graft.recipe=finetune" : NULL,
                   add_meta ? "graft.note=\"quoted\", \xc3\xa9" : NULL) == 0,
          "python check of %s", saved);

    graft_tensor *x = load_npy(input);
    if (!x) return;
    int na = 0, nb = 0;
    graft_tensor **a = run_graft(orig, x, &na), **b = run_graft(saved, x, &nb);
    CHECK(a && b && na == nb, "%s: %d outputs before, %d after", name, na, nb);
    for (int i = 0; a && b && i < na && i < nb; i++) {
        int same = a[i] && b[i] && a[i]->dtype == b[i]->dtype && a[i]->rank == b[i]->rank &&
                   memcmp(a[i]->dims, b[i]->dims, sizeof a[i]->dims) == 0 &&
                   memcmp(a[i]->data, b[i]->data, tensor_bytes(a[i])) == 0;
        CHECK(same, "%s: output %d differs after the round trip", name, i);
    }

    char *argv[] = { "node", script, saved, input, ort_out, NULL };
    CHECK(run(argv) == 0, "onnxruntime failed on %s", saved);
    graft_tensor *r = load_npy(ort_out);
    if (r && a && a[0]) {
        int shape_ok = r->rank == a[0]->rank && r->dtype == GRAFT_FLOAT &&
                       a[0]->dtype == GRAFT_FLOAT &&
                       memcmp(r->dims, a[0]->dims, (size_t)r->rank * sizeof r->dims[0]) == 0;
        CHECK(shape_ok, "%s: onnxruntime's output shape or type differs from graft's", name);
        if (shape_ok) {
            const float *p = a[0]->data, *q = r->data;
            double maxd = 0, maxr = 0;
            for (int64_t i = 0; i < graft_tensor_numel(r); i++) {
                double d = fabs((double)p[i] - q[i]);
                if (!(d <= maxd)) maxd = d; /* NaN propagates */
                if (fabs(q[i]) > maxr) maxr = fabs(q[i]);
            }
            double rel = maxd / (maxr > 1e-6 ? maxr : 1e-6);
            CHECK(rel <= 1e-4, "%s: graft vs onnxruntime on the saved file: rel diff %.3g", name,
                  rel);
            printf("%s: saved in %.2f s; graft before/after bit-identical; onnxruntime rel diff "
                   "%.3g\n",
                   name, t_save, rel);
        }
    }
    graft_tensor_free(r);
    graft_tensor_free(x);
    free_outputs(a, na);
    free_outputs(b, nb);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: test_io_export SRC_DIR OUT_DIR MODELS_DIR OCR_DIR PYTHON\n");
        return 2;
    }
    src_dir = argv[1], out_dir = argv[2], models_dir = argv[3], ocr_dir = argv[4], python = argv[5];
    mkdir(out_dir, 0777);

    test_attrs();
    {
        char path[1024];
        snprintf(path, sizeof path, "%s/resnet18_op13.onnx", models_dir);
        gr_graph *g = NULL;
        int st = gr_onnx_load(path, &g);
        CHECK(st == GRAFT_OK, "%s", graft_last_error());
        if (!st) test_disk_full(g);
        /* an optimized graph carries graft-only fused attributes: refused, not written wrong */
        if (!st && gr_graph_optimize(g) == GRAFT_OK) {
            snprintf(path, sizeof path, "%s/optimized.onnx", out_dir);
            st = gr_onnx_save(g, path);
            CHECK(st == GRAFT_E_ARG && strstr(graft_last_error(), path) &&
                      strstr(graft_last_error(), "_fused_act"),
                  "optimized graph: status %d, %s", st, graft_last_error());
            CHECK(count_prefix(out_dir, "optimized.onnx") == 0,
                  "optimized graph: a file was written");
        }
        gr_graph_free(g);
    }
    test_model(models_dir, "resnet18_op13", "resnet18", 1);
    test_model(models_dir, "resnet18_op17", "resnet18", 0);
    test_model(models_dir, "mobilenet_v2_op13", "mobilenet_v2", 0);
    test_model(models_dir, "mobilenet_v2_op17", "mobilenet_v2", 0);
    static const char *ocr[] = { "ch_PP-OCRv4_det_infer", "ch_PP-OCRv4_rec_infer",
                                 "ch_ppocr_mobile_v2.0_cls_infer" };
    for (int i = 0; i < 3; i++) test_model(ocr_dir, ocr[i], ocr[i], 0);
    return th_finish();
}
