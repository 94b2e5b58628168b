/* test_train_parity.c — three training steps of a torchvision model in graft against PyTorch
 * (scripts/train_reference.py wrote the model, the batch and torch's results into DIR):
 * the loss of each step, every trainable parameter's gradient and every running statistic after
 * step 1, and every parameter and statistic after step 3, within 1e-4 relative to the tensor's
 * largest magnitude. Where PyTorch's own float32 result is further than that from its float64
 * result (mobilenet_v2's deep stack of training BatchNorms on 4 images is ill-conditioned: its
 * early-layer gradients move by 1e-2 between float32 and float64), graft must be as close to
 * float64 as PyTorch float32 is, within a factor of 4.
 *   test_train_parity DIR sgd|adamw */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "io/io.h"
#include "train/train.h"

#include <string.h>

#define TOL 1e-4

static const char *dir;

/* A reference tensor as doubles (NULL when the file is missing or its size differs). */
static double *load_ref(const char *sub, const char *name, int64_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s.npy", dir, sub, name);
    gr_tensor t;
    if (gr_npy_load(path, &t)) return NULL;
    double *d = NULL;
    if (gr_numel(&t.shape) == n && (d = malloc((size_t)n * sizeof *d + 8)))
        for (int64_t i = 0; i < n; i++) d[i] = gr_get_f64(&t, i);
    free(t.data);
    return d;
}

/* max |a - b| / max |b| */
static double rel(const double *a, const double *b, int64_t n)
{
    double worst = 0, scale = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        worst = d > worst || isnan(d) ? d : worst;
        scale = fmax(scale, fabs(b[i]));
    }
    return worst / scale;
}

/* Compares every value found in `sub` (trainable parameters, or BatchNorm statistics) with
 * PyTorch float32; where PyTorch's own float32 result is further than TOL from its float64
 * result (an ill-conditioned tensor), graft must be as close to float64 as PyTorch float32 is
 * (within 4 times its distance, plus TOL). */
static void compare_all(const gr_trainer *t, const char *sub, int grads, const char *what)
{
    const gr_graph *g = t->g;
    double worst = 0, worst_torch = 0;
    const char *worst_name = "";
    int count = 0, illcond = 0, bad = 0;
    char sub64[64];
    snprintf(sub64, sizeof sub64, "%s64", sub);
    for (int v = 0; v < g->nvalues; v++) {
        const gr_value *x = &g->values[v];
        if (!x->is_init || x->t.dtype != GR_F32) continue;
        const float *data = grads ? t->grad_of[v] : x->t.data;
        int64_t n = gr_numel(&x->t.shape);
        double *b32 = data ? load_ref(sub, x->name, n) : NULL,
               *b64 = data ? load_ref(sub64, x->name, n) : NULL;
        double *a = malloc((size_t)n * sizeof *a + 8);
        if (b32 && b64 && a) {
            for (int64_t i = 0; i < n; i++) a[i] = data[i];
            double r32 = rel(a, b32, n), torch_err = rel(b32, b64, n), r64 = rel(a, b64, n);
            int ok = r32 <= TOL || r64 <= 4 * torch_err + TOL;
            count++;
            illcond += torch_err > TOL;
            bad += !ok;
            if (getenv("GRAFT_PARITY_VERBOSE"))
                printf("    %-40s vs torch32 %.2e  vs torch64 %.2e  (torch32 vs torch64 %.2e)%s\n",
                       x->name, r32, r64, torch_err, ok ? "" : "  FAIL");
            if (!ok && (r64 > worst || isnan(r64))) {
                worst = r64;
                worst_torch = torch_err;
                worst_name = x->name;
            }
            if (torch_err <= TOL && r32 > worst && !bad) {
                worst = r32;
                worst_name = x->name;
            }
        }
        free(a);
        free(b32);
        free(b64);
    }
    printf("  %-28s %3d tensors, worst rel diff %.2e (%s); %d ill-conditioned in PyTorch\n", what,
           count, worst, worst_name, illcond);
    CHECK(count > 0, "%s: no reference tensors found in %s/%s", what, dir, sub);
    CHECK(bad == 0,
          "%s: %d tensors differ from PyTorch, worst '%s' by %.3g relative to float64 (PyTorch "
          "float32: %.3g)",
          what, bad, worst_name, worst, worst_torch);
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
        fprintf(stderr,
                "usage: test_train_parity DIR sgd|adamw (the settings come from DIR/optim.txt)\n");
        return 2;
    }
    dir = argv[1];
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
    gr_trainer_cfg cfg = { .loss = GR_LOSS_CE, .use_ref = getenv("GRAFT_PARITY_REF") != NULL };
    char kind[16] = "";
    double lr = 0, momentum = 0, wd = 0;
    snprintf(path, sizeof path, "%s/optim.txt", dir);
    f = fopen(path, "r");
    if (!f || fscanf(f, "%15s %lf %lf %lf", kind, &lr, &momentum, &wd) != 4) {
        fprintf(stderr, "%s: cannot read the optimizer settings\n", path);
        return 2;
    }
    fclose(f);
    cfg.opt = (gr_optim_cfg){ .kind = strcmp(kind, "adamw") == 0 ? GR_ADAMW : GR_SGD,
                              .lr = lr,
                              .momentum = momentum,
                              .weight_decay = wd };
    gr_trainer *t;
    if (gr_trainer_new(g, trainable, &cfg, &t)) {
        fprintf(stderr, "%s\n", graft_last_error());
        return 2;
    }
    gr_tensor x, y, lt, lt64;
    load_npy("x.npy", &x);
    load_npy("y.npy", &y);
    const double *want_loss = load_npy("loss.npy", &lt), *loss64 = load_npy("loss64.npy", &lt64);
    printf("%s (%s, %d trainable tensors, %lld parameters)\n", dir, argv[2], ntrain,
           (long long)t->total);
    for (int s = 0; s < 3; s++) {
        double loss;
        int st = gr_trainer_step(t, &x, y.data, &loss);
        CHECK(st == GRAFT_OK, "step %d: %s", s + 1, graft_last_error());
        if (st) break;
        double r = fabs(loss - want_loss[s]) / fabs(want_loss[s]);
        double torch_err = fabs(want_loss[s] - loss64[s]) / fabs(loss64[s]),
               r64 = fabs(loss - loss64[s]) / fabs(loss64[s]);
        printf("  step %d loss %.7f (PyTorch %.7f, rel diff %.2e; PyTorch float64 %.7f)\n", s + 1,
               loss, want_loss[s], r, loss64[s]);
        CHECK(r <= TOL || r64 <= 4 * torch_err + TOL,
              "step %d: loss %.8g, PyTorch %.8g (float64 %.8g)", s + 1, loss, want_loss[s],
              loss64[s]);
        if (s == 1 && getenv("GRAFT_PARITY_TWICE"))
            compare_all(t, "grad2", 1, "gradients of step 2");
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
    free(lt64.data);
    return th_finish();
}
