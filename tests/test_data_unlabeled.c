/* test_data_unlabeled.c — datasets opened as unlabelled (GR_DS_UNLABELED,
 * graft_dataset_open_unlabeled), the data of domain adaptation's target and of semi-supervised
 * learning:
 *   - a folder holding images at its top and in sub-folders: every image, in the order of
 *     Python's sorted(os.walk) with graft's extensions and hidden-file rule
 *     (scripts/data_reference.py walkfiles), labels -1, no classes; without the flag it is
 *     refused (no class folders);
 *   - an empty folder is refused ("no image files");
 *   - a folder in the class layout keeps its classes and labels (the same as a labelled open)
 *     for reporting, and is marked unlabelled; a single class folder is fine;
 *   - Fashion-MNIST's images file copied where no labels file is: the same pixels as the
 *     labelled original, labels -1; refused without the flag, naming the labels file;
 *   - a .npy without labels: the same features, labels -1; refused without the flag;
 *   - what learns from labels refuses an unlabelled set with a message saying so (k-shot draws,
 *     layer choice, fine-tuning), and extraction runs on it (rows = samples, labels -1).
 *
 * Environment (ctest sets it): GRAFT_SOURCE_DIR (the reference script), GRAFT_BUILD_DIR (its
 * testmodels/tiny.onnx, scripts/make_test_models.py's (N, 3, 8, 8) -> (N, 4) model). */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "data_ref.h"

#include "data/data.h"
#include "graft.h"
#include "io/io.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char tmp[256], tiny[4096];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* The paths of ds against walkfiles(root); every label -1, no classes, marked unlabelled. */
static void check_tree(const gr_dataset *ds, const char *root)
{
    char *js = py("walkfiles '%s'", root);
    cJSON *ref = cJSON_Parse(js);
    free(js);
    int n = cJSON_GetArraySize(ref);
    CHECK(ds->n == n && n > 0, "%s: %lld samples, os.walk finds %d", root, (long long)ds->n, n);
    for (int i = 0; i < n && i < ds->n; i++) {
        const char *p = cJSON_GetStringValue(cJSON_GetArrayItem(ref, i));
        CHECK(!strcmp(ds->paths[i], p), "sample %d: %s, os.walk %s", i, ds->paths[i], p);
        CHECK(ds->labels[i] == -1, "sample %d has label %d", i, ds->labels[i]);
    }
    CHECK(ds->nclass == 0 && ds->unlabeled == 1, "%d classes, unlabeled %d", ds->nclass,
          ds->unlabeled);
    cJSON_Delete(ref);
}

static void test_folders(void)
{
    char root[512], one[600], hid[700];
    snprintf(root, sizeof root, "%s/folder", tmp);
    free(py("mkfolder '%s'", root));
    /* hidden files and folders stay out, as in a labelled open */
    snprintf(hid, sizeof hid, "%s/.hidden", root);
    mkdir(hid, 0700);
    snprintf(hid, sizeof hid, "%s/.hidden/x.pgm", root);
    write_file(hid, "P5 1 1 255\n\x7f");
    snprintf(hid, sizeof hid, "%s/cat/.y.pgm", root);
    write_file(hid, "P5 1 1 255\n\x7f");

    /* mkfolder leaves an image file at the top: the whole tree is unlabelled */
    gr_dataset *ds = NULL;
    int st = gr_dataset_open(root, NULL, GR_DS_UNLABELED, &ds);
    CHECK(st == GRAFT_OK, "unlabelled open of %s: %s", root, graft_last_error());
    if (!st) check_tree(ds, root);
    gr_dataset_free(ds);

    /* a folder of images alone (mkfolder's dog: no sub-folders): refused as labelled data */
    snprintf(one, sizeof one, "%s/dog", root);
    ds = NULL;
    st = gr_dataset_open(one, NULL, 0, &ds);
    CHECK(st != GRAFT_OK && !ds && strstr(graft_last_error(), "no class folders"),
          "labelled open of a folder of images: %d '%s'", st, graft_last_error());
    st = gr_dataset_open(one, NULL, GR_DS_UNLABELED, &ds);
    CHECK(st == GRAFT_OK, "unlabelled open of %s: %s", one, graft_last_error());
    if (!st) check_tree(ds, one);
    gr_dataset_free(ds);

    /* nothing to take: an error that says so */
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    mkdir(empty, 0700);
    ds = NULL;
    st = gr_dataset_open(empty, NULL, GR_DS_UNLABELED, &ds);
    CHECK(st == GRAFT_E_FORMAT && !ds && strstr(graft_last_error(), "no image files"),
          "an empty folder, unlabelled: %d '%s'", st, graft_last_error());

    /* the class layout (no image at the top): classes kept for reporting */
    snprintf(hid, sizeof hid, "%s/loose.png", root);
    remove(hid);
    gr_dataset *lab = NULL, *unl = NULL;
    st = gr_dataset_open(root, NULL, 0, &lab);
    if (!st) st = gr_dataset_open(root, NULL, GR_DS_UNLABELED, &unl);
    CHECK(st == GRAFT_OK, "class layout: %s", graft_last_error());
    if (!st) {
        int same = lab->n == unl->n && lab->nclass == unl->nclass;
        for (int64_t i = 0; same && i < lab->n; i++)
            same = lab->labels[i] == unl->labels[i] && !strcmp(lab->paths[i], unl->paths[i]);
        CHECK(same && unl->unlabeled && !lab->unlabeled,
              "class layout opened unlabelled keeps the labelled open's samples and labels");
    }
    gr_dataset_free(lab);
    gr_dataset_free(unl);
}

static void test_idx(void)
{
    char copy[512];
    snprintf(copy, sizeof copy, "%s/shifted-images-idx3-ubyte.gz", tmp);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp %s/t10k-images-idx3-ubyte.gz '%s'", FMNIST, copy);
    CHECK(system(cmd) == 0, "copy the images file");
    gr_dataset *ds = NULL, *orig = NULL;
    int st = gr_dataset_open(copy, NULL, 0, &ds);
    CHECK(st != GRAFT_OK && !ds && strstr(graft_last_error(), "shifted-labels-idx1-ubyte"),
          "an images file without labels, labelled: %d '%s'", st, graft_last_error());
    st = gr_dataset_open(copy, NULL, GR_DS_UNLABELED, &ds);
    if (!st) st = gr_dataset_open(FMNIST "/t10k-images-idx3-ubyte.gz", NULL, 0, &orig);
    CHECK(st == GRAFT_OK, "IDX unlabelled: %s", graft_last_error());
    if (!st) {
        int all = 1;
        for (int64_t i = 0; i < ds->n; i++) all &= ds->labels[i] == -1;
        CHECK(ds->n == orig->n && ds->h == orig->h && ds->w == orig->w && ds->nclass == 0 && all,
              "n %lld (%lld), %dx%d, %d classes, all -1: %d", (long long)ds->n, (long long)orig->n,
              ds->w, ds->h, ds->nclass, all);
        CHECK(!memcmp(ds->pixels, orig->pixels, (size_t)orig->n * orig->h * orig->w),
              "the pixels are the labelled file's");
    }
    gr_dataset_free(ds);
    gr_dataset_free(orig);
}

static void test_npy(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/x.npy", tmp);
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i * 0.5f - 2;
    gr_tensor t = { .dtype = GR_F32, .shape = gr_shape_make(2, (int64_t[]){ 4, 3 }), .data = x };
    CHECK(gr_npy_save(path, &t) == GRAFT_OK, "write %s", path);
    gr_dataset *ds = NULL;
    int st = gr_dataset_open(path, NULL, 0, &ds);
    CHECK(st != GRAFT_OK && !ds && strstr(graft_last_error(), "labels"),
          "a .npy without labels, labelled: %d '%s'", st, graft_last_error());
    st = gr_dataset_open(path, NULL, GR_DS_UNLABELED, &ds);
    CHECK(st == GRAFT_OK, "NPY unlabelled: %s", graft_last_error());
    if (!st)
        CHECK(ds->n == 4 && ds->dim == 3 && !memcmp(ds->features, x, sizeof x) &&
                  ds->labels[0] == -1 && ds->labels[3] == -1 && ds->nclass == 0,
              "NPY unlabelled: n %lld dim %lld", (long long)ds->n, (long long)ds->dim);
    gr_dataset_free(ds);
}

/* graft_* refuses: the status is GRAFT_E_ARG and the message says the set is unlabelled. */
static void expect_refusal(graft_status st, const char *what)
{
    CHECK(st == GRAFT_E_ARG && strstr(graft_last_error(), "opened as unlabelled"),
          "%s of an unlabelled set: status %d, '%s'", what, (int)st, graft_last_error());
}

static void test_api(void)
{
    char root[512];
    snprintf(root, sizeof root, "%s/folder", tmp); /* the class layout by now */
    graft_dataset *d = NULL;
    if (graft_dataset_open_unlabeled(root, NULL, &d)) {
        CHECK(0, "graft_dataset_open_unlabeled: %s", graft_last_error());
        return;
    }
    CHECK(graft_dataset_is_unlabeled(d) == 1, "graft_dataset_is_unlabeled");
    graft_tensor *t = NULL;
    expect_refusal(graft_dataset_kshot(d, 1, 0, &t), "graft_dataset_kshot");
    graft_extract_opts eo;
    graft_extract_opts_init(&eo);
    eo.transform = "size=8";
    char *ranking = NULL, *layer = NULL;
    graft_pool pool;
    expect_refusal(graft_layer_auto(tiny, d, NULL, &eo, 0, &ranking, &layer, &pool),
                   "graft_layer_auto");
    graft_finetune_opts fo;
    graft_finetune_opts_init(&fo);
    fo.transform = "size=8";
    char out[600];
    snprintf(out, sizeof out, "%s/ft.onnx", tmp);
    expect_refusal(graft_finetune(tiny, d, NULL, &fo, out, NULL), "graft_finetune");
    graft_dataset_free(d);

    /* extraction runs on unlabelled images: a row a sample, labels -1 */
    snprintf(root, sizeof root, "%s/folder/cat", tmp);
    graft_tensor *X = NULL, *y = NULL;
    graft_status st = graft_dataset_open_unlabeled(root, NULL, &d);
    if (!st) st = graft_extract(tiny, d, &eo, &X, &y, NULL, NULL);
    CHECK(st == GRAFT_OK, "extract from unlabelled images: %s", graft_last_error());
    if (!st) {
        int all = 1;
        for (int64_t i = 0; i < y->dims[0]; i++) all &= ((const int32_t *)y->data)[i] == -1;
        CHECK(X->dims[0] == graft_dataset_size(d) && y->dims[0] == X->dims[0] && all,
              "%lld rows for %lld samples, labels -1: %d", (long long)X->dims[0],
              (long long)graft_dataset_size(d), all);
    }
    graft_tensor_free(X);
    graft_tensor_free(y);
    graft_dataset_free(d);
}

int main(void)
{
    const char *build = getenv("GRAFT_BUILD_DIR");
    snprintf(tiny, sizeof tiny, "%s/testmodels/tiny.onnx", build ? build : ".");
    snprintf(tmp, sizeof tmp, "/tmp/graft_unl_XXXXXX");
    if (!mkdtemp(tmp)) return 2;
    test_folders();
    test_idx();
    test_npy();
    test_api();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return th_finish();
}
