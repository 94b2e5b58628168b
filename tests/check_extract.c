/* check_extract.c — features from a cut resnet18 against PyTorch
 * (scripts/extract_reference.py): layer3 pooled on a 2x2 grid and the classifier's input
 * (the default layer), on an image folder through Resize/CenterCrop/Normalize; then the cache:
 * a second request is read back bit-identically, a touched image changes the key, and another
 * layer or pooling gets its own entry.
 *   check_extract REFDIR CACHEDIR */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "io/io.h"
#include "transfer/transfer.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

static const char *ref;

static float *load_ref(const char *name, int64_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", ref, name);
    gr_tensor t;
    if (gr_npy_load(path, &t)) {
        fprintf(stderr, "%s\n", graft_last_error());
        exit(2);
    }
    *n = gr_numel(&t.shape);
    return t.data;
}

static int extract(const char *layer, int pool, const char *cache, gr_features *f)
{
    char model[1024], data[1024];
    snprintf(model, sizeof model, "%s/resnet18.onnx", ref);
    snprintf(data, sizeof data, "%s/data", ref);
    gr_dataset *ds;
    if (gr_dataset_open(data, NULL, 0, &ds)) return -1;
    gr_extract_opts o = {
        .layer = layer, .pool = pool, .batch = 3, .workers = 2, .cache_dir = cache
    };
    gr_model m;
    int st = gr_transform_parse("resize=72,crop=64,normalize=imagenet", &o.t);
    if (!st) st = gr_model_open(model, &m);
    if (!st) {
        st = gr_extract(&m, ds, NULL, 0, &o, f);
        gr_model_close(&m);
    }
    gr_dataset_free(ds);
    return st;
}

static void compare(const gr_features *f, const char *refname, const char *what)
{
    int64_t n;
    float *want = load_ref(refname, &n);
    CHECK(f->n * f->dim == n, "%s: %lld x %d features, PyTorch has %lld values", what,
          (long long)f->n, f->dim, (long long)n);
    double worst = 0, scale = 1e-12;
    for (int64_t i = 0; i < n && f->n * f->dim == n; i++) {
        worst = fmax(worst, fabs((double)f->X[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    printf("%s: %lld x %d, max rel diff to PyTorch %.2e (layer %s)\n", what, (long long)f->n,
           f->dim, worst / scale, f->layer);
    CHECK(worst / scale <= 1e-4, "%s differs from PyTorch by %.3g relative", what, worst / scale);
    int64_t nl;
    int32_t *labels = (int32_t *)load_ref("labels.npy", &nl);
    for (int64_t i = 0; i < f->n && i < nl; i++)
        CHECK(f->y[i] == labels[i], "%s: row %lld label %d, ImageFolder %d", what, (long long)i,
              f->y[i], labels[i]);
    free(labels);
    free(want);
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    ref = argv[1];
    const char *cache = argv[2];
    gr_features a, b, c, d;
    CHECK(extract("/layer3/layer3.1/relu_1/Relu_output_0", GR_POOL_GRID2, cache, &a) == GRAFT_OK,
          "%s", graft_last_error());
    compare(&a, "grid2.npy", "layer3, 2x2 grid");
    CHECK(extract("/layer3/layer3.1/relu_1/Relu_output_0", GR_POOL_GRID2, cache, &b) == GRAFT_OK,
          "%s", graft_last_error());
    CHECK(b.cached && !a.cached, "second request cached %d (first %d)", b.cached, a.cached);
    CHECK(!strcmp(a.key, b.key) && a.n == b.n && a.dim == b.dim &&
              !memcmp(a.X, b.X, (size_t)a.n * a.dim * sizeof(float)),
          "the cached features differ from the computed ones");
    CHECK(extract(NULL, GR_POOL_MEAN, cache, &c) == GRAFT_OK, "%s", graft_last_error());
    CHECK(!c.cached && strcmp(c.key, a.key), "another layer must have another key");
    compare(&c, "head.npy", "classifier input (default layer)");
    /* a changed image (its modification time) invalidates the entry */
    char img[1024];
    snprintf(img, sizeof img, "%s/data/ants/img0.png", ref);
    struct utimbuf ut = { time(NULL) + 5, time(NULL) + 5 };
    CHECK(utime(img, &ut) == 0, "cannot touch %s", img);
    CHECK(extract("/layer3/layer3.1/relu_1/Relu_output_0", GR_POOL_GRID2, cache, &d) == GRAFT_OK,
          "%s", graft_last_error());
    CHECK(!d.cached && strcmp(d.key, a.key), "a touched image must change the key");
    gr_features e, g4;
    CHECK(extract("no_such_value", GR_POOL_MEAN, NULL, &e) != GRAFT_OK &&
              strstr(graft_last_error(), "no_such_value"),
          "an unknown layer must be an error naming it: %s", graft_last_error());
    CHECK(extract("/layer2/layer2.1/relu_1/Relu_output_0", GR_POOL_GRID4, NULL, &g4) == GRAFT_OK,
          "%s", graft_last_error());
    compare(&g4, "grid4.npy", "layer2, 4x4 grid");
    gr_features_free(&g4);
    /* layer4 is 2x2 here: no 4x4 grid of equal cells */
    CHECK(extract("/layer4/layer4.1/relu_1/Relu_output_0", GR_POOL_GRID4, NULL, &e) != GRAFT_OK &&
              strstr(graft_last_error(), "layer4.1") &&
              strstr(graft_last_error(), "multiples of 4") && strstr(graft_last_error(), "2x2"),
          "grid4 on a 2x2 map must be an error naming the layer and the size: %s",
          graft_last_error());
    gr_features_free(&a);
    gr_features_free(&b);
    gr_features_free(&c);
    gr_features_free(&d);
    return th_finish();
}
