/* test_train_parity.c — three training steps of a torchvision model in graft against PyTorch
 * (scripts/train_reference.py wrote the model, the batch and torch's results into DIR):
 * the loss of each step, every trainable parameter's gradient and every running statistic after
 * step 1, and every parameter and statistic after step 3, within 1e-4 relative to the tensor's
 * largest magnitude.
 *   test_train_parity DIR sgd|adamw */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "io/io.h"
#include "train/train.h"

#include <string.h>

#define TOL 1e-4

static const char *dir;

/* max |a - b| / max |b|, or -1 when the reference file is missing. */
static double rel_diff(const float *a, const char *sub, const char *name, int64_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s.npy", dir, sub, name);
    gr_tensor t;
    if (gr_npy_load(path, &t)) return -1;
    double worst = 0, scale = 1e-12;
    const float *b = t.data;
    if (gr_numel(&t.shape) != n) {
        free(t.data);
        return 1e9;
    }
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = d > worst || isnan(d) ? d : worst;
        scale = fmax(scale, fabs(b[i]));
    }
    free(t.data);
    return worst / scale;
}

/* Compares every value named in `sub` (trainable parameters, or BatchNorm statistics). */
static void compare_all(const gr_trainer *t, const char *sub, int grads, const char *what)
{
    const gr_graph *g = t->g;
    double worst = 0;
    const char *worst_name = "";
    int count = 0;
    for (int v = 0; v < g->nvalues; v++) {
        const gr_value *x = &g->values[v];
        if (!x->is_init || x->t.dtype != GR_F32) continue;
        const float *data = grads ? t->grad_of[v] : x->t.data;
        if (!data) continue;
        double r = rel_diff(data, sub, x->name, gr_numel(&x->t.shape));
        if (r < 0) continue;
        count++;
        if (r > worst || isnan(r)) { worst = r; worst_name = x->name; }
    }
    printf("  %-28s %3d tensors, worst rel diff %.2e (%s)\n", what, count, worst, worst_name);
    CHECK(count > 0, "%s: no reference tensors found in %s/%s", what, dir, sub);
    CHECK(worst <= TOL, "%s: '%s' differs from PyTorch by %.3g relative", what, worst_name, worst);
}

static void *load_npy(const char *name, gr_tensor *t)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (gr_npy_load(path, t)) {
        fprintf(stderr, "%s\n", graft_last_error());
        exit(2);
    }
    return t->data;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_train_parity DIR sgd|adamw\n");
        return 2;
    }
    dir = argv[1];
    int adamw = strcmp(argv[2], "adamw") == 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    gr_graph *g;
    if (gr_onnx_load(path, &g) || gr_graph_check_ops(g)) {
        fprintf(stderr, "%s\n", graft_last_error());
        return 2;
    }
    unsigned char *trainable = calloc((size_t)g->nvalues + 1, 1);
    snprintf(path, sizeof path, "%s/trainable.txt", dir);
    FILE *f = fopen(path, "r");
    char line[512];
    int ntrain = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        int v = gr_graph_find_value(g, line);
        CHECK(v >= 0, "trainable '%s' is not a value of the model", line);
        if (v >= 0) trainable[v] = 1, ntrain++;
    }
    if (f) fclose(f);
    gr_trainer_cfg cfg = {.loss = GR_LOSS_CE};
    cfg.opt = adamw ? (gr_optim_cfg){.kind = GR_ADAMW, .lr = 1e-3, .weight_decay = 0.01}
                    : (gr_optim_cfg){.kind = GR_SGD, .lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4};
    gr_trainer *t;
    if (gr_trainer_new(g, trainable, &cfg, &t)) {
        fprintf(stderr, "%s\n", graft_last_error());
        return 2;
    }
    gr_tensor x, y, lt;
    load_npy("x.npy", &x);
    load_npy("y.npy", &y);
    const double *want_loss = load_npy("loss.npy", &lt);
    printf("%s (%s, %d trainable tensors, %lld parameters)\n", dir, argv[2], ntrain, (long long)t->total);
    for (int s = 0; s < 3; s++) {
        double loss;
        int st = gr_trainer_step(t, &x, y.data, &loss);
        CHECK(st == GRAFT_OK, "step %d: %s", s + 1, graft_last_error());
        if (st) break;
        double r = fabs(loss - want_loss[s]) / fabs(want_loss[s]);
        printf("  step %d loss %.7f (PyTorch %.7f, rel diff %.2e)\n", s + 1, loss, want_loss[s], r);
        CHECK(r <= TOL, "step %d: loss %.8g, PyTorch %.8g", s + 1, loss, want_loss[s]);
        if (s == 0) {
            compare_all(t, "grad", 1, "gradients after step 1");
            compare_all(t, "stats1", 0, "running stats after step 1");
        }
    }
    compare_all(t, "after", 0, "weights and stats after 3");
    gr_trainer_free(t);
    gr_graph_free(g);
    free(trainable);
    free(x.data);
    free(y.data);
    free(lt.data);
    return th_finish();
}
