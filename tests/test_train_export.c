/* test_train_export.c — a fine-tuned model exports to ONNX and runs the same elsewhere. The
 * tiny CNN of scripts/make_tiny_cnn.py trains 6 AdamW steps on Fashion-MNIST (its BatchNorms in
 * training mode, so their running statistics move), gr_onnx_save writes the session's graph
 * (whose initializers point into the trainer's blocks), and then on 16 held-out images:
 *   - onnxruntime-node (scripts/ort_run.js) runs the exported file: the reference;
 *   - graft runs it through the public API (graft_model_load, BatchNorm folded into Conv):
 *     max |graft - ort| / max |ort| <= 1e-4, printed;
 *   - the file's initializers equal the trained parameters and running statistics bit for bit,
 *     and both differ from the untrained model's (the export is not of the original weights);
 *   - the untrained model's output on the same images differs from the trained one's.
 *   test_train_export [MODEL.onnx [OUT_DIR]]   (defaults: $GRAFT_TINY_CNN, $GRAFT_EXPORT_DIR) */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "data/data.h"
#include "io/io.h"
#include "train/train.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define B       32
#define NEVAL   16
#define PIX     (3 * 28 * 28)
#define STEPS   6
#define FASHION "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

static void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, graft_last_error());
    exit(2);
}

static unsigned char *pick_trainable(const gr_graph *g)
{
    unsigned char *tr = calloc((size_t)g->nvalues + 1, 1);
    for (int v = 0; tr && v < g->nvalues; v++)
        tr[v] = g->values[v].is_init && g->values[v].t.dtype == GR_F32;
    for (int k = 0; tr && k < g->nnodes; k++)
        if (strcmp(g->nodes[k].op_type, "BatchNormalization") == 0)
            for (int i = 3; i < g->nodes[k].nin; i++)
                if (g->nodes[k].in[i] >= 0) tr[g->nodes[k].in[i]] = 0;
    return tr;
}

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

/* The model's output on x (NEVAL images) through the public API; malloc'd, 10 per image. */
static float *infer(const char *path, graft_tensor *x)
{
    graft_model *m;
    graft_tensor *y = NULL;
    const graft_tensor *in[1] = { x };
    if (graft_model_load(path, &m) || graft_model_run(m, in, 1, &y, 1)) die(path);
    float *out = NULL;
    if (graft_tensor_numel(y) == NEVAL * 10 && (out = malloc(NEVAL * 10 * sizeof *out)))
        memcpy(out, y->data, NEVAL * 10 * sizeof *out);
    CHECK(out != NULL, "%s: output has %lld elements, expected %d", path,
          (long long)graft_tensor_numel(y), NEVAL * 10);
    graft_tensor_free(y);
    graft_model_free(m);
    return out;
}

/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, int n)
{
    double worst = 0, scale = 1e-30;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = d > worst || isnan(d) ? d : worst;
        scale = fmax(scale, fabs(b[i]));
    }
    return worst / scale;
}

/* Compares the exported file's float initializers with the session's values (and, for a
 * difference check, the untrained model's). */
static void check_initializers(const char *saved, const gr_graph *trained, const char *orig_path)
{
    gr_graph *s, *o;
    if (gr_onnx_load(saved, &s)) die(saved);
    if (gr_onnx_load(orig_path, &o)) die(orig_path);
    int n = 0, equal = 0, moved = 0;
    for (int v = 0; v < trained->nvalues; v++) {
        const gr_value *x = &trained->values[v];
        if (!x->is_init || x->t.dtype != GR_F32) continue;
        int vs = gr_graph_find_value(s, x->name), vo = gr_graph_find_value(o, x->name);
        size_t bytes = (size_t)gr_numel(&x->t.shape) * sizeof(float);
        int eq = vs >= 0 && s->values[vs].is_init &&
                 gr_shape_eq(&s->values[vs].t.shape, &x->t.shape) &&
                 memcmp(s->values[vs].t.data, x->t.data, bytes) == 0;
        int mv = vo >= 0 && memcmp(o->values[vo].t.data, x->t.data, bytes) != 0;
        CHECK(eq, "%s: initializer '%s' is not the trained value", saved, x->name);
        CHECK(mv, "'%s' did not change in training", x->name);
        n++;
        equal += eq;
        moved += mv;
    }
    printf("exported initializers: %d of %d equal to the session's, %d changed by training\n",
           equal, n, moved);
    CHECK(n == 14, "%d float initializers, expected 14 (10 parameters, 4 running statistics)", n);
    gr_graph_free(s);
    gr_graph_free(o);
}

int main(int argc, char **argv)
{
    const char *model = argc > 1 ? argv[1] : getenv("GRAFT_TINY_CNN");
    const char *out = argc > 2 ? argv[2] : getenv("GRAFT_EXPORT_DIR");
    if (!model || !out) {
        fprintf(stderr, "usage: test_train_export MODEL.onnx OUT_DIR (or set GRAFT_TINY_CNN, "
                        "GRAFT_EXPORT_DIR)\n");
        return 2;
    }
    mkdir(out, 0777);
    gr_dataset *ds;
    if (gr_dataset_open(FASHION, NULL, 0, &ds)) die(FASHION);
    int total = 2 * B + NEVAL;
    float *x = malloc((size_t)total * PIX * sizeof *x);
    int32_t *y = malloc((size_t)total * sizeof *y);
    const float mean[3] = { 0.286f, 0.286f, 0.286f }, sd[3] = { 0.353f, 0.353f, 0.353f };
    for (int i = 0; i < total; i++) {
        gr_image img;
        if (gr_dataset_image(ds, i, &img)) die("image");
        gr_image_to_chw(x + (size_t)i * PIX, &img, mean, sd);
        gr_image_free(&img);
        y[i] = ds->labels[i];
    }

    gr_graph *g;
    gr_trainer *t;
    unsigned char *tr;
    if (gr_onnx_load(model, &g) || gr_graph_check_ops(g) || !(tr = pick_trainable(g))) die(model);
    gr_trainer_cfg cfg = { .loss = GR_LOSS_CE,
                           .opt = { .kind = GR_ADAMW, .lr = 3e-3, .weight_decay = 0.01 } };
    if (gr_trainer_new(g, tr, &cfg, &t)) die("trainer");
    for (int s = 0; s < STEPS; s++) {
        gr_tensor xt = { .dtype = GR_F32,
                         .shape = { 4, { B, 3, 28, 28 } },
                         .data = x + (size_t)(s % 2) * B * PIX };
        double loss;
        int st = gr_trainer_step(t, &xt, y + (s % 2) * B, &loss);
        CHECK(st == GRAFT_OK, "step %d: %s", s + 1, graft_last_error());
        printf("step %d loss %.6f\n", s + 1, loss);
    }

    char saved[1024], xpath[1024], opath[1024], script[1024];
    snprintf(saved, sizeof saved, "%s/tiny_cnn_trained.onnx", out);
    snprintf(xpath, sizeof xpath, "%s/x.npy", out);
    snprintf(opath, sizeof opath, "%s/ort.npy", out);
    snprintf(script, sizeof script, "%s/scripts/ort_run.js", GRAFT_SOURCE_DIR);
    CHECK(gr_onnx_save(g, saved) == GRAFT_OK, "gr_onnx_save: %s", graft_last_error());
    check_initializers(saved, g, model);

    graft_tensor *xe;
    int64_t dims[4] = { NEVAL, 3, 28, 28 };
    if (graft_tensor_new(GRAFT_FLOAT, 4, dims, &xe)) die("tensor");
    memcpy(xe->data, x + (size_t)2 * B * PIX, (size_t)NEVAL * PIX * sizeof(float));
    if (graft_npy_save(xpath, xe)) die(xpath);
    char *ort_argv[] = { "node", script, saved, xpath, opath, NULL };
    int rc = run(ort_argv);
    CHECK(rc == 0, "onnxruntime-node on %s exited with %d", saved, rc);
    graft_tensor *ort = NULL;
    if (rc == 0 && graft_npy_load(opath, &ort)) die(opath);

    float *mine = infer(saved, xe), *before = infer(model, xe);
    if (ort && mine && before && graft_tensor_numel(ort) == NEVAL * 10) {
        double r = rel(mine, ort->data, NEVAL * 10), moved = rel(before, ort->data, NEVAL * 10);
        printf("exported model on %d held-out images: graft vs onnxruntime max rel diff %.2e; "
               "untrained vs trained %.2e\n",
               NEVAL, r, moved);
        CHECK(r <= 1e-4, "graft and onnxruntime differ by %.3g relative on the exported model", r);
        CHECK(moved > 1e-2, "the trained model's output is too close to the untrained one's (%.3g)",
              moved);
    } else {
        CHECK(0, "no output to compare (onnxruntime %p, graft %p)", (void *)ort, (void *)mine);
    }
    free(mine);
    free(before);
    graft_tensor_free(ort);
    graft_tensor_free(xe);
    gr_trainer_free(t);
    gr_graph_free(g);
    free(tr);
    free(x);
    free(y);
    gr_dataset_free(ds);
    return th_finish();
}
