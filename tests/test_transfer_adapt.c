#define _DEFAULT_SOURCE
/* test_transfer_adapt.c — graft_adapt end to end against PyTorch: scripts/adapt_model_reference.py
 * trains a small BatchNorm CNN on generated images, shifts the target (low contrast, brighter:
 * source-only 26 % on it) and replays AdaBN, TENT and SHOT over the target as one batch. The
 * adapted model's every parameter and running statistic must equal PyTorch's, and AdaBN and TENT
 * must lift the target accuracy graft itself measures by 50 points or more. Also the refusals:
 * a model without BatchNorm (adabn, tent), a model reading one channel, feature vectors. */
#include "harness.h"

#include "io/io.h"
#include "ref_npy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64] = "/tmp/graft_adapt_XXXXXX";

static const char *const PARAMS[] = { "conv1.weight", "conv1.bias",       "bn1.weight",
                                      "bn1.bias",     "bn1.running_mean", "bn1.running_var",
                                      "conv2.weight", "conv2.bias",       "bn2.weight",
                                      "bn2.bias",     "bn2.running_mean", "bn2.running_var",
                                      "fc.weight",    "fc.bias",          NULL };

static graft_dataset *target(void)
{
    char x[128], y[128];
    snprintf(x, sizeof x, "%s/target.npy", dir);
    snprintf(y, sizeof y, "%s/target_y.npy", dir);
    graft_dataset *d = NULL;
    CHECK(graft_dataset_open_unlabeled(x, y, &d) == GRAFT_OK, "%s", graft_last_error());
    return d;
}

static void adapt_opts(graft_adapt_opts *o, graft_adapt_method m, int epochs)
{
    graft_adapt_opts_init(o);
    o->method = m;
    o->transform = "size=16,normalize=none"; /* the reference's x / 255, three equal channels */
    o->batch = 512;                          /* the whole target: one batch, as the reference */
    o->workers = 1;
    if (epochs) o->epochs = epochs;
}

/* Every parameter and statistic of the adapted model against the reference's. */
static void compare_model(const char *path, const char *refdir, double tol)
{
    gr_model m;
    CHECK(gr_model_open(path, &m) == GRAFT_OK, "%s", graft_last_error());
    for (int i = 0; PARAMS[i]; i++) {
        int v = gr_graph_find_value(m.g, PARAMS[i]);
        CHECK(v >= 0 && m.g->values[v].is_init, "v >= 0 && m.g->values[v].is_init");
        int64_t n;
        float *want = ref_load(refdir, PARAMS[i], &n);
        const float *got = m.g->values[v].t.data;
        CHECK(gr_numel(&m.g->values[v].t.shape) == n, "gr_numel(&m.g->values[v].t.shape) == n");
        double worst = 0;
        for (int64_t j = 0; j < n; j++) {
            double e = fabs(got[j] - want[j]) / (1 + fabs(want[j]));
            worst = e > worst ? e : worst;
        }
        if (worst > tol) fprintf(stderr, "%s: %s off by %g\n", refdir, PARAMS[i], worst);
        CHECK(worst <= tol, "worst <= tol");
        free(want);
    }
    gr_model_close(&m);
}

static void run_method(graft_adapt_method m, const char *name, int epochs, double tol,
                       double min_gain)
{
    graft_dataset *d = target();
    graft_adapt_opts o;
    adapt_opts(&o, m, epochs);
    char model[128], out[128], ref[128];
    snprintf(model, sizeof model, "%s/source.onnx", dir);
    snprintf(out, sizeof out, "%s/%s.onnx", dir, name);
    snprintf(ref, sizeof ref, "%s/%s", dir, name);
    char *summary = NULL;
    CHECK(graft_adapt(model, d, &o, out, &summary) == GRAFT_OK, "%s", graft_last_error());
    compare_model(out, ref, tol);
    cJSON *s = cJSON_Parse(summary);
    CHECK(s != NULL, "s != NULL");
    double before = cJSON_GetObjectItem(s, "accuracy_before")->valuedouble,
           after = cJSON_GetObjectItem(s, "accuracy_after")->valuedouble;
    fprintf(stderr, "%s: target accuracy %.3f -> %.3f\n", name, before, after);
    CHECK(cJSON_GetObjectItem(s, "target")->valueint == 512, "%s: target count", name);
    CHECK(cJSON_GetObjectItem(s, "labelled")->valueint == 512, "%s: labelled count", name);
    CHECK(cJSON_GetObjectItem(s, "batchnorms")->valueint == 2, "%s: BatchNorm count", name);
    CHECK(after - before >= min_gain, "%s: gain %.3f below %.3f", name, after - before, min_gain);
    if (m == GRAFT_ADAPT_SHOT)
        CHECK(cJSON_GetObjectItem(s, "pseudo_labels") != NULL, "shot: no pseudo_labels");
    cJSON_Delete(s);
    free(summary);
    graft_dataset_free(d);
}

/* The refusals name what is missing. */
static void test_refusals(void)
{
    graft_dataset *d = target();
    graft_adapt_opts o;
    adapt_opts(&o, GRAFT_ADAPT_ADABN, 0);
    char model[256], out[128];
    snprintf(out, sizeof out, "%s/refused.onnx", dir);
    /* no BatchNorm: adabn and tent have nothing to adapt; shot does not need them */
    snprintf(model, sizeof model, "%s/source_nobn.onnx", dir);
    CHECK(graft_adapt(model, d, &o, out, NULL) == GRAFT_E_UNSUPPORTED, "adabn without BatchNorm");
    fprintf(stderr, "no BatchNorm: %s\n", graft_last_error());
    CHECK(strstr(graft_last_error(), "no BatchNormalization node") &&
              strstr(graft_last_error(), "source_nobn.onnx"),
          "no BatchNorm: %s", graft_last_error());
    o.method = GRAFT_ADAPT_TENT;
    CHECK(graft_adapt(model, d, &o, out, NULL) == GRAFT_E_UNSUPPORTED, "tent without BatchNorm");
    CHECK(access(out, F_OK) != 0, "a refused adaptation wrote %s", out);
    o.method = GRAFT_ADAPT_SHOT, o.epochs = 1;
    CHECK(graft_adapt(model, d, &o, out, NULL) == GRAFT_OK, "shot without BatchNorm: %s",
          graft_last_error());
    unlink(out);
    o.method = GRAFT_ADAPT_ADABN;
    /* one input channel against graft's three */
    snprintf(model, sizeof model, "%s/source_1ch.onnx", dir);
    CHECK(graft_adapt(model, d, &o, out, NULL) == GRAFT_E_SHAPE,
          "graft_adapt(model, d, &o, out, NULL) == GRAFT_E_SHAPE");
    fprintf(stderr, "one channel: %s\n", graft_last_error());
    CHECK(strstr(graft_last_error(), "1x16x16") && strstr(graft_last_error(), "3x16x16"),
          "one channel: %s", graft_last_error());
    CHECK(access(out, F_OK) != 0, "a refused adaptation wrote %s", out);
    /* out-of-range options */
    snprintf(model, sizeof model, "%s/source.onnx", dir);
    o.batch = 0;
    CHECK(graft_adapt(model, d, &o, out, NULL) == GRAFT_E_ARG,
          "graft_adapt(model, d, &o, out, NULL) == GRAFT_E_ARG");
    graft_dataset_free(d);
}

int main(void)
{
    if (!mkdtemp(dir)) return 2;
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/scripts/adapt_model_reference.py %s >/dev/null 2>&1",
             GRAFT_SOURCE_DIR, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "the PyTorch reference failed: %s\n", cmd);
        return 2;
    }
    run_method(GRAFT_ADAPT_ADABN, "adabn", 0, 1e-5, 0.5);
    run_method(GRAFT_ADAPT_TENT, "tent", 3, 1e-4, 0.5);
    run_method(GRAFT_ADAPT_SHOT, "shot", 2, 1e-4, -1);
    test_refusals();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return th_finish();
}
