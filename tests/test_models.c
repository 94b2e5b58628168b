/* test_models.c — model parity: runs whole ONNX models through graft and compares the first
 * output with a reference computed elsewhere (PyTorch for the torchvision exports of
 * scripts/export_torchvision.py, onnxruntime for the PP-OCR models via scripts/ort_run.js).
 * Uses only the public API (include/graft.h), as any embedding program would.
 *
 *   test_models [--tol X] [--threads N] [--reference] DIR NAME...
 *
 * NAME is a model name (DIR/NAME.onnx) or a path to an .onnx file (NAME ending in ".onnx").
 * Either way, with BASE the file name without ".onnx" and STEM that without a trailing
 * "_op<digits>" (resnet18_op13 -> resnet18), the files in DIR are
 *   STEM_input.npy        the input (a second model input: STEM_input2.npy, and so on)
 *   BASE_output.npy       the expected first output
 * Each model is run on the input twice (the second run reuses the plan of the first), and, if
 * the input's batch is larger than 1, once more on its first sample alone (a new shape, so a
 * new plan), compared with the first row of the expected output. Prints per model
 *   NAME: max abs diff X, max rel diff Y (N outputs)
 * where N is the number of output values compared, then "P passed, F failed"; exits non-zero
 * if any model failed. */
#include <graft.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The issue asks for outputs "within 1e-4 relative". For a whole output tensor we read that as
 *   rel = max_i |a_i - b_i| / max(1e-6, max_i |b_i|)
 * (a = graft, b = reference): the largest error measured against the output's own scale.
 * Element-wise relative error would be meaningless for logits near zero. */
#define DEFAULT_TOL 1e-4
#define MAX_INPUTS  8

typedef struct {
    double max_abs, max_ref, rel;
    int64_t n;
    int nonfinite; /* graft produced NaN or Inf */
} diff;

static double now_s(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Compares n floats of a (graft) with b (reference). */
static diff compare(const float *a, const float *b, int64_t n)
{
    diff d = { 0, 0, 0, n, 0 };
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) d.nonfinite = 1;
        double e = fabs((double)a[i] - (double)b[i]);
        if (e > d.max_abs) d.max_abs = e;
        if (fabs((double)b[i]) > d.max_ref) d.max_ref = fabs((double)b[i]);
    }
    d.rel = d.max_abs / (d.max_ref > 1e-6 ? d.max_ref : 1e-6);
    return d;
}

static void shape_str(const graft_tensor *t, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < t->rank && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, i ? "x%lld" : "%lld", (long long)t->dims[i]);
}

static int same_shape(const graft_tensor *a, const graft_tensor *b)
{
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

/* Runs m on inputs and compares its first output with `expected`; on failure prints why
 * (prefixed by name and what) and returns 0. */
static int run_and_compare(graft_model *m, const char *name, const char *what,
                           const graft_tensor *const *inputs, int nin, const graft_tensor *expected,
                           double tol, diff *out, double *secs)
{
    int nout = graft_model_num_outputs(m);
    graft_tensor **outs = calloc((size_t)(nout > 0 ? nout : 1), sizeof *outs);
    if (!outs) {
        printf("%s: FAIL out of memory\n", name);
        return 0;
    }
    double t0 = now_s();
    graft_status s = graft_model_run(m, inputs, nin, outs, nout);
    *secs = now_s() - t0;
    int ok = 0;
    char gs[128], es[128];
    if (s != GRAFT_OK) {
        printf("%s: FAIL %s: graft_model_run: %s: %s\n", name, what, graft_status_name(s),
               graft_last_error());
    } else if (!outs[0] || outs[0]->dtype != GRAFT_FLOAT) {
        printf("%s: FAIL %s: output 0 is %s, expected float32\n", name, what,
               outs[0] ? "not float32" : "missing");
    } else if (!same_shape(outs[0], expected)) {
        shape_str(outs[0], gs, sizeof gs);
        shape_str(expected, es, sizeof es);
        printf("%s: FAIL %s: output shape %s, expected %s\n", name, what, gs, es);
    } else {
        *out = compare(outs[0]->data, expected->data, graft_tensor_numel(expected));
        if (out->nonfinite) printf("%s: FAIL %s: output has NaN or Inf\n", name, what);
        else if (!(out->rel <= tol))
            printf("%s: FAIL %s: max abs diff %.3g, max rel diff %.3g > %.1g (max |ref| %.3g)\n",
                   name, what, out->max_abs, out->rel, tol, out->max_ref);
        else ok = 1;
    }
    for (int i = 0; i < nout; i++) graft_tensor_free(outs[i]);
    free(outs);
    return ok;
}

/* A view of the first sample of t (batch dim 0), sharing its data. */
static graft_tensor first_sample(const graft_tensor *t)
{
    graft_tensor v = *t;
    v.dims[0] = 1;
    return v;
}

static int load_npy(const char *name, const char *path, graft_tensor **t)
{
    graft_status s = graft_npy_load(path, t);
    if (s != GRAFT_OK) {
        printf("%s: FAIL %s: %s\n", name, graft_status_name(s), graft_last_error());
        return 0;
    }
    return 1;
}

static int test_model(const char *dir, const char *arg, double tol, int reference)
{
    char path[4096], base[1024], stem[1024], file[4096];
    const char *slash = strrchr(arg, '/');
    size_t len = strlen(arg);
    int is_path = len > 5 && strcmp(arg + len - 5, ".onnx") == 0;
    snprintf(base, sizeof base, "%s", slash && is_path ? slash + 1 : arg);
    if (is_path) base[strlen(base) - 5] = 0;
    if (is_path && slash) snprintf(path, sizeof path, "%s", arg);
    else if (is_path) snprintf(path, sizeof path, "%s/%s", dir, arg);
    else snprintf(path, sizeof path, "%s/%s.onnx", dir, arg);
    snprintf(stem, sizeof stem, "%s", base);
    char *op = strrchr(stem, '_');
    if (op && strncmp(op, "_op", 3) == 0 && op[3] && strspn(op + 3, "0123456789") == strlen(op + 3))
        *op = 0;
    const char *name = base;

    graft_model *m = NULL;
    graft_tensor *in[MAX_INPUTS] = { 0 }, *expected = NULL;
    int nin = 0, ok = 0;
    double t0 = now_s();
    graft_status s = graft_model_load(path, &m);
    double t_load = now_s() - t0;
    if (s != GRAFT_OK) {
        printf("%s: FAIL load %s: %s: %s\n", name, path, graft_status_name(s), graft_last_error());
        return 0;
    }
    if (reference) graft_model_use_reference(m, 1);
    nin = graft_model_num_inputs(m);
    if (nin < 1 || nin > MAX_INPUTS) {
        printf("%s: FAIL model has %d inputs (this test handles 1..%d)\n", name, nin, MAX_INPUTS);
        nin = 0;
        goto done;
    }
    for (int i = 0; i < nin; i++) {
        if (i == 0) snprintf(file, sizeof file, "%s/%s_input.npy", dir, stem);
        else snprintf(file, sizeof file, "%s/%s_input%d.npy", dir, stem, i + 1);
        if (!load_npy(name, file, &in[i])) goto done;
    }
    snprintf(file, sizeof file, "%s/%s_output.npy", dir, base);
    if (!load_npy(name, file, &expected)) goto done;
    if (expected->dtype != GRAFT_FLOAT) {
        printf("%s: FAIL %s is not float32\n", name, file);
        goto done;
    }

    diff d1, d2, d3 = { 0, 0, 0, 0, 0 };
    double t_run1, t_run2, t_run3 = 0;
    const graft_tensor *const *inputs = (const graft_tensor *const *)in;
    if (!run_and_compare(m, name, "run 1", inputs, nin, expected, tol, &d1, &t_run1)) goto done;
    if (!run_and_compare(m, name, "run 2 (same plan)", inputs, nin, expected, tol, &d2, &t_run2))
        goto done;
    /* Batch 1: only when every input and the output share a batch dim larger than 1. */
    int batch = expected->rank > 0 && expected->dims[0] > 1;
    for (int i = 0; i < nin; i++)
        batch = batch && in[i]->rank > 0 && in[i]->dims[0] == expected->dims[0];
    if (batch) {
        graft_tensor one[MAX_INPUTS];
        const graft_tensor *one_p[MAX_INPUTS];
        for (int i = 0; i < nin; i++) {
            one[i] = first_sample(in[i]);
            one_p[i] = &one[i];
        }
        graft_tensor exp1 = first_sample(expected);
        if (!run_and_compare(m, name, "batch 1", one_p, nin, &exp1, tol, &d3, &t_run3)) goto done;
    }
    diff worst = d1;
    if (d2.rel > worst.rel) worst = d2;
    if (d3.rel > worst.rel) worst = d3;
    char es[128];
    shape_str(expected, es, sizeof es);
    printf("%s: max abs diff %.3g, max rel diff %.3g (%lld outputs)   [%s, load %.2f s, "
           "run %.2f / %.2f s%s]\n",
           name, worst.max_abs, worst.rel, (long long)d1.n, es, t_load, t_run1, t_run2,
           batch ? ", batch 1 ok" : "");
    ok = 1;
done:
    for (int i = 0; i < nin; i++) graft_tensor_free(in[i]);
    graft_tensor_free(expected);
    graft_model_free(m);
    return ok;
}

static int usage(void)
{
    fprintf(stderr, "usage: test_models [--tol X] [--threads N] [--reference] DIR NAME...\n"
                    "  NAME: a model DIR/NAME.onnx, or a path to an .onnx file\n");
    return 2;
}

int main(int argc, char **argv)
{
    double tol = DEFAULT_TOL;
    int reference = 0, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) tol = atof(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            graft_set_threads(atoi(argv[++i]));
        else if (strcmp(argv[i], "--reference") == 0) reference = 1;
        else return usage();
    }
    if (argc - i < 2) return usage();
    const char *dir = argv[i++];
    int passed = 0, failed = 0;
    for (; i < argc; i++) {
        if (test_model(dir, argv[i], tol, reference)) passed++;
        else failed++;
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
