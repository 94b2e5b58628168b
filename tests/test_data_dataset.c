/* test_data_dataset.c — datasets against independent readers (scripts/data_reference.py):
 * Fashion-MNIST's IDX files (gzip + numpy: every label and two checksums of every image, both
 * splits, compressed and not), image folders (torchvision's ImageFolder: classes and sample
 * order), CSV/TSV lists (Python's csv module; PIL for the decoded pixels), NPY arrays (numpy,
 * closed-form contents); then stratified splits, k-shot sets and class weights by their
 * defining properties and formulas. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "data_ref.h"

#include "data/data.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char tmp[256];

static gr_dataset *open_ok(const char *path, const char *labels, int one)
{
    gr_dataset *ds = NULL;
    int st = gr_dataset_open(path, labels, one, &ds);
    CHECK(st == GRAFT_OK, "open %s: %s", path, graft_last_error());
    return st ? NULL : ds;
}

static uint64_t rgb_sum(const gr_image *im)
{
    uint64_t s = 0;
    for (size_t k = 0; k < (size_t)im->w * im->h * 3; k++) s += im->rgb[k];
    return s;
}

/* ---- IDX: Fashion-MNIST ---- */

static void check_idx_against(const gr_dataset *ds, const char *images, const char *labels)
{
    char *ref = py("idx %s %s", images, labels);
    char *line = strtok(ref, "\n");
    long n, h, w;
    CHECK(sscanf(line, "%ld %ld %ld", &n, &h, &w) == 3, "reference header");
    CHECK(ds->n == n && ds->h == h && ds->w == w && ds->c == 1,
          "%s: n %lld h %d w %d c %d, numpy %ld %ld %ld", images, (long long)ds->n, ds->h, ds->w,
          ds->c, n, h, w);
    long bad_label = 0, bad_sum = 0, hist_ref[256] = { 0 }, hist[256] = { 0 };
    for (int64_t i = 0; i < ds->n && i < n; i++) {
        line = strtok(NULL, "\n");
        unsigned long y, s1, s2;
        if (!line || sscanf(line, "%lu %lu %lu", &y, &s1, &s2) != 3) {
            bad_sum++;
            break;
        }
        const uint8_t *px = ds->pixels + (size_t)i * h * w;
        uint64_t a = 0, b = 0;
        for (long k = 0; k < h * w; k++) {
            a += px[k];
            b += (uint64_t)(k + 1) * px[k];
        }
        bad_label += (unsigned long)ds->labels[i] != y;
        bad_sum += a != s1 || b != s2;
        hist_ref[y & 255]++;
        hist[ds->labels[i] & 255]++;
    }
    CHECK(bad_label == 0, "%s: %ld labels differ from numpy's", images, bad_label);
    CHECK(bad_sum == 0, "%s: %ld images differ from numpy's (sum or weighted sum)", images,
          bad_sum);
    CHECK(!memcmp(hist, hist_ref, sizeof hist), "%s: label histogram", images);
    /* gr_dataset_image: gray copied to three channels */
    int64_t probe[3] = { 0, ds->n / 2, ds->n - 1 };
    for (int t = 0; t < 3; t++) {
        gr_image im;
        CHECK(gr_dataset_image(ds, probe[t], &im) == GRAFT_OK, "image %lld: %s",
              (long long)probe[t], graft_last_error());
        int same = im.w == ds->w && im.h == ds->h;
        for (int k = 0; same && k < im.w * im.h; k++) {
            uint8_t g = ds->pixels[(size_t)probe[t] * im.w * im.h + k];
            same = im.rgb[3 * k] == g && im.rgb[3 * k + 1] == g && im.rgb[3 * k + 2] == g;
        }
        CHECK(same, "%s[%lld] as RGB", images, (long long)probe[t]);
        gr_image_free(&im);
    }
    free(ref);
}

static void test_fashion(void)
{
    static const char *names[10] = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot" };
    const char *splits[2] = { "train", "t10k" };
    for (int s = 0; s < 2; s++) {
        char im[256], lb[256];
        snprintf(im, sizeof im, FMNIST "/%s-images-idx3-ubyte.gz", splits[s]);
        snprintf(lb, sizeof lb, FMNIST "/%s-labels-idx1-ubyte.gz", splits[s]);
        double t0 = gr_now();
        gr_dataset *ds = open_ok(im, NULL, 0);
        if (!ds) continue;
        printf("%s: %lld images opened in %.2f s\n", im, (long long)ds->n, gr_now() - t0);
        CHECK(ds->kind == GR_DS_IDX && ds->n == (s ? 10000 : 60000), "%s: kind %d n %lld", im,
              ds->kind, (long long)ds->n);
        CHECK(ds->nclass == 10, "nclass %d", ds->nclass);
        for (int c = 0; c < 10 && ds->nclass == 10; c++)
            CHECK(!strcmp(ds->class_names[c], names[c]), "class %d is '%s'", c, ds->class_names[c]);
        CHECK(ds->paths == NULL && ds->features == NULL, "in-memory images");
        check_idx_against(ds, im, lb);
        gr_dataset_free(ds);
    }
    /* uncompressed copies: in a folder named like Fashion-MNIST, and in one that is not */
    const char *dirs[2] = { "fashion-copy", "plain" };
    gr_dataset *gz = open_ok(FMNIST "/t10k-images-idx3-ubyte.gz", NULL, 0);
    for (int d = 0; d < 2 && gz; d++) {
        char dir[512], im[600], lb[600];
        snprintf(dir, sizeof dir, "%s/%s", tmp, dirs[d]);
        mkdir(dir, 0700);
        snprintf(im, sizeof im, "%s/t10k-images-idx3-ubyte", dir);
        snprintf(lb, sizeof lb, "%s/t10k-labels-idx1-ubyte", dir);
        free(py("gunzip " FMNIST "/t10k-images-idx3-ubyte.gz %s", im));
        free(py("gunzip " FMNIST "/t10k-labels-idx1-ubyte.gz %s", lb));
        gr_dataset *ds = open_ok(im, NULL, 0);
        if (!ds) continue;
        CHECK(ds->n == gz->n && !memcmp(ds->pixels, gz->pixels, (size_t)gz->n * 784) &&
                  !memcmp(ds->labels, gz->labels, (size_t)gz->n * 4),
              "%s: same samples as the .gz", im);
        CHECK(ds->nclass == 10 && !strcmp(ds->class_names[0], d == 0 ? "T-shirt/top" : "0") &&
                  !strcmp(ds->class_names[9], d == 0 ? "Ankle boot" : "9"),
              "%s: class names '%s'..'%s'", im, ds->class_names[0], ds->class_names[9]);
        gr_dataset_free(ds);
    }
    gr_dataset_free(gz);
}

/* ---- FOLDER against torchvision's ImageFolder ---- */

static void check_pixels(const gr_dataset *ds, const char *what)
{
    /* every sample decoded by graft vs PIL's convert("RGB"): pixel sum and size */
    char args[8192] = "pixsum";
    for (int64_t i = 0; i < ds->n; i++) {
        size_t k = strlen(args);
        snprintf(args + k, sizeof args - k, " '%s'", ds->paths[i]);
    }
    char *ref = py("%s", args), *line = strtok(ref, "\n");
    for (int64_t i = 0; i < ds->n; i++, line = strtok(NULL, "\n")) {
        unsigned long s = 0;
        int w = 0, h = 0;
        CHECK(line && sscanf(line, "%lu %d %d", &s, &w, &h) == 3, "pixsum line %lld", (long long)i);
        gr_image im;
        int st = gr_dataset_image(ds, i, &im);
        CHECK(st == GRAFT_OK, "%s: %s", what, graft_last_error());
        if (st) continue;
        CHECK(im.w == w && im.h == h && rgb_sum(&im) == s,
              "%s[%lld] %s: %dx%d sum %llu, PIL %dx%d sum %lu", what, (long long)i, ds->paths[i],
              im.w, im.h, (unsigned long long)rgb_sum(&im), w, h, s);
        gr_image_free(&im);
    }
    free(ref);
}

static void check_class_json(const gr_dataset *ds)
{
    char *js = gr_dataset_class_json(ds);
    cJSON *a = js ? cJSON_Parse(js) : NULL;
    CHECK(a && cJSON_IsArray(a) && cJSON_GetArraySize(a) == ds->nclass, "class json %s",
          js ? js : "(null)");
    for (int c = 0; a && c < ds->nclass && c < cJSON_GetArraySize(a); c++) {
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(a, c));
        CHECK(s && !strcmp(s, ds->class_names[c]), "class json [%d] %s", c, s ? s : "(null)");
    }
    cJSON_Delete(a);
    free(js);
}

static void test_folder(void)
{
    char root[512], path[700];
    snprintf(root, sizeof root, "%s/folder", tmp);
    free(py("mkfolder '%s'", root));
    char *js = py("imagefolder '%s'", root);
    cJSON *ref = cJSON_Parse(js);
    free(js);
    cJSON *classes = cJSON_GetObjectItem(ref, "classes"),
          *samples = cJSON_GetObjectItem(ref, "samples");
    cJSON *c2i = cJSON_GetObjectItem(ref, "class_to_idx");
    gr_dataset *ds = open_ok(root, NULL, 0);
    if (!ds || !classes || !samples) {
        gr_dataset_free(ds);
        cJSON_Delete(ref);
        return;
    }
    CHECK(ds->kind == GR_DS_FOLDER, "kind");
    CHECK(ds->nclass == cJSON_GetArraySize(classes), "nclass %d, torchvision %d", ds->nclass,
          cJSON_GetArraySize(classes));
    for (int c = 0; c < ds->nclass && c < cJSON_GetArraySize(classes); c++) {
        const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(classes, c));
        CHECK(!strcmp(ds->class_names[c], name), "class %d: '%s', torchvision '%s'", c,
              ds->class_names[c], name);
        cJSON *id = cJSON_GetObjectItem(c2i, name);
        CHECK(id && (int)id->valuedouble == c, "class_to_idx['%s']", name);
    }
    int ns = cJSON_GetArraySize(samples);
    CHECK(ds->n == ns, "n %lld, torchvision %d", (long long)ds->n, ns);
    for (int i = 0; i < ns && i < ds->n; i++) {
        cJSON *s = cJSON_GetArrayItem(samples, i);
        const char *p = cJSON_GetStringValue(cJSON_GetArrayItem(s, 0));
        int y = (int)cJSON_GetArrayItem(s, 1)->valuedouble;
        CHECK(!strcmp(ds->paths[i], p) && ds->labels[i] == y,
              "sample %d: %s (%d), torchvision %s (%d)", i, ds->paths[i], ds->labels[i], p, y);
    }
    check_pixels(ds, root);
    check_class_json(ds);
    int64_t n0 = ds->n;
    gr_dataset_free(ds);
    cJSON_Delete(ref);

    /* hidden files and folders are ignored; .pnm counts as an image (torchvision lacks it) */
    const char *hidden[] = { "cat/.hidden.png", ".git/x.png", "cat/.cache/e.png", ".dot/y.png" };
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s", root, hidden[k]);
        char *slash = strrchr(path, '/');
        *slash = 0;
        mkdir(path, 0700);
        *slash = '/';
        FILE *f = fopen(path, "wb");
        if (f) {
            fputs("P5 1 1 255\n\x7f", f);
            fclose(f);
        }
    }
    snprintf(path, sizeof path, "%s/dog/y.PNM", root);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("P5 2 1 255\n\x10\x20", f);
        fclose(f);
    }
    ds = open_ok(root, NULL, 0);
    if (ds) {
        CHECK(ds->nclass == 4 && ds->n == n0 + 1, "with hidden entries: %d classes %lld samples",
              ds->nclass, (long long)ds->n);
        CHECK(!strcmp(ds->paths[ds->n - 1], path) && ds->labels[ds->n - 1] == 3,
              "the .PNM sorts last: %s", ds->paths[ds->n - 1]);
        gr_dataset_free(ds);
    }

    /* one class: refused unless allowed */
    snprintf(path, sizeof path, "%s/one", tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/one/only", tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/one/only/x.pgm", tmp);
    if ((f = fopen(path, "wb")) != NULL) {
        fputs("P5 1 1 255\n\x7f", f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/one", tmp);
    ds = NULL;
    CHECK(gr_dataset_open(path, NULL, 0, &ds) != GRAFT_OK && ds == NULL,
          "a one-class folder must be refused");
    CHECK(strstr(graft_last_error(), "one class") != NULL, "message: %s", graft_last_error());
    ds = open_ok(path, NULL, 1);
    CHECK(ds && ds->nclass == 1 && ds->n == 1, "one class, allowed");
    gr_dataset_free(ds);
    snprintf(path, sizeof path, "%s/folder/cat", tmp); /* classes = "sub", "sub-x" */
    ds = open_ok(path, NULL, 0);
    if (ds) {
        CHECK(ds->nclass == 2 && !strcmp(ds->class_names[0], "sub") &&
                  !strcmp(ds->class_names[1], "sub-x") && ds->n == 3,
              "nested: %d classes, %lld samples", ds->nclass, (long long)ds->n);
        gr_dataset_free(ds);
    }
}

/* ---- CSV against Python's csv module ---- */

static int name_index(const gr_dataset *ds, const char *s)
{
    for (int c = 0; c < ds->nclass; c++)
        if (!strcmp(ds->class_names[c], s)) return c;
    return -1;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_csv(void)
{
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/csv", tmp);
    free(py("mkcsv '%s'", dir));

    /* list.csv: columns group,path,note,label; quotes, a comma and a newline inside fields */
    snprintf(path, sizeof path, "%s/list.csv", dir);
    char *js = py("csvrows '%s' comma", path);
    cJSON *rows = cJSON_Parse(js);
    free(js);
    gr_dataset *ds = open_ok(path, NULL, 0);
    int nr = cJSON_GetArraySize(rows) - 1;
    if (ds && nr > 0) {
        CHECK(ds->kind == GR_DS_CSV && ds->n == nr, "n %lld, csv module %d", (long long)ds->n, nr);
        CHECK(ds->ncol == 2 && !strcmp(ds->col_names[0], "group") &&
                  !strcmp(ds->col_names[1], "note"),
              "extra columns");
        CHECK(gr_dataset_col(ds, "note") == 1 && gr_dataset_col(ds, "group") == 0 &&
                  gr_dataset_col(ds, "nope") == -1,
              "gr_dataset_col");
        /* the class order the header promises: distinct labels sorted bytewise */
        const char *lab[16];
        int nl = 0;
        for (int r = 1; r <= nr && nl < 16; r++)
            lab[nl++] = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetArrayItem(rows, r), 3));
        qsort(lab, (size_t)nl, sizeof *lab, cmp_cstr);
        int k = 0;
        for (int i = 0; i < nl; i++)
            if (!k || strcmp(lab[k - 1], lab[i])) lab[k++] = lab[i];
        CHECK(ds->nclass == k, "nclass %d, distinct labels %d", ds->nclass, k);
        for (int c = 0; c < k && c < ds->nclass; c++)
            CHECK(!strcmp(ds->class_names[c], lab[c]), "class %d '%s' vs '%s'", c,
                  ds->class_names[c], lab[c]);
        for (int r = 1; r <= nr && r <= ds->n; r++) {
            cJSON *row = cJSON_GetArrayItem(rows, r);
            const char *p = cJSON_GetStringValue(cJSON_GetArrayItem(row, 1));
            char want[1024];
            if (p[0] == '/') snprintf(want, sizeof want, "%s", p);
            else snprintf(want, sizeof want, "%s/%s", dir, p);
            CHECK(!strcmp(ds->paths[r - 1], want), "row %d path %s, want %s", r, ds->paths[r - 1],
                  want);
            CHECK(ds->labels[r - 1] ==
                      name_index(ds, cJSON_GetStringValue(cJSON_GetArrayItem(row, 3))),
                  "row %d label", r);
            CHECK(!strcmp(ds->cols[0][r - 1], cJSON_GetStringValue(cJSON_GetArrayItem(row, 0))) &&
                      !strcmp(ds->cols[1][r - 1], cJSON_GetStringValue(cJSON_GetArrayItem(row, 2))),
                  "row %d extra cells '%s' '%s'", r, ds->cols[0][r - 1], ds->cols[1][r - 1]);
        }
        check_pixels(ds, path);
        check_class_json(ds);
    }
    gr_dataset_free(ds);
    cJSON_Delete(rows);

    /* ints.tsv: no path/label header names → the first two columns; integer labels → ids */
    snprintf(path, sizeof path, "%s/ints.tsv", dir);
    js = py("csvrows '%s' tab", path);
    rows = cJSON_Parse(js);
    free(js);
    ds = open_ok(path, NULL, 0);
    nr = cJSON_GetArraySize(rows) - 1;
    if (ds && nr > 0) {
        long maxv = -1;
        for (int r = 1; r <= nr; r++) {
            long v = atol(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetArrayItem(rows, r), 1)));
            if (v > maxv) maxv = v;
            CHECK(r > ds->n || ds->labels[r - 1] == v, "row %d: label %d, file %ld", r,
                  ds->labels[r - 1], v);
            CHECK(r > ds->n || !strcmp(ds->cols[0][r - 1], cJSON_GetStringValue(cJSON_GetArrayItem(
                                                               cJSON_GetArrayItem(rows, r), 2))),
                  "row %d weight cell", r);
        }
        CHECK(ds->nclass == maxv + 1, "integer labels: nclass %d, max label %ld", ds->nclass, maxv);
        for (int c = 0; c < ds->nclass; c++) {
            char want[16];
            snprintf(want, sizeof want, "%d", c);
            CHECK(!strcmp(ds->class_names[c], want), "class name %d '%s'", c, ds->class_names[c]);
        }
        CHECK(ds->ncol == 1 && !strcmp(ds->col_names[0], "weight"), "tsv extra column");
    }
    gr_dataset_free(ds);
    cJSON_Delete(rows);

    /* plain.txt: only a path column → unlabelled samples */
    snprintf(path, sizeof path, "%s/plain.txt", dir);
    ds = open_ok(path, NULL, 0);
    if (ds) {
        int all = 1;
        for (int64_t i = 0; i < ds->n; i++) all &= ds->labels[i] == -1;
        CHECK(ds->n == 5 && ds->nclass == 0 && all && ds->ncol == 0,
              "unlabelled list: n %lld nclass %d", (long long)ds->n, ds->nclass);
        gr_dataset_free(ds);
    }
}

/* ---- NPY (numpy wrote closed forms) ---- */

static void test_npy(void)
{
    char dir[512], a[700], b[700];
    snprintf(dir, sizeof dir, "%s/npy", tmp);
    free(py("mknpy '%s'", dir));
    const char *feats[2][2] = { { "feats64.npy", "lab64.npy" }, { "feats32.npy", "lab32.npy" } };
    for (int v = 0; v < 2; v++) {
        snprintf(a, sizeof a, "%s/%s", dir, feats[v][0]);
        snprintf(b, sizeof b, "%s/%s", dir, feats[v][1]);
        gr_dataset *ds = open_ok(a, b, 0);
        if (!ds) continue;
        CHECK(ds->kind == GR_DS_NPY && ds->n == 23 && ds->dim == 7 && ds->pixels == NULL &&
                  ds->nclass == 3,
              "%s: n %lld dim %lld nclass %d", a, (long long)ds->n, (long long)ds->dim, ds->nclass);
        int bad = 0;
        for (int i = 0; i < 23; i++) {
            bad += ds->labels[i] != i % 3;
            for (int j = 0; j < 7; j++)
                bad += ds->features[i * 7 + j] != (float)(((i * 7 + j * 3) % 11) / 4.0 - 1.0);
        }
        CHECK(bad == 0, "%s: %d values differ", a, bad);
        gr_image im;
        CHECK(gr_dataset_image(ds, 0, &im) != GRAFT_OK && strstr(graft_last_error(), "features"),
              "features are no images: %s", graft_last_error());
        gr_dataset_free(ds);
    }
    const char *imgs[2] = { "img4.npy", "img3.npy" };
    snprintf(b, sizeof b, "%s/lab32.npy", dir);
    for (int v = 0; v < 2; v++) {
        snprintf(a, sizeof a, "%s/%s", dir, imgs[v]);
        gr_dataset *ds = open_ok(a, b, 0);
        if (!ds) continue;
        CHECK(ds->n == 23 && ds->h == 4 && ds->w == 5 && ds->c == (v ? 1 : 3) && !ds->features,
              "%s: shape", a);
        int bad = 0;
        for (int k = 0; k < 23; k++) {
            gr_image im;
            if (gr_dataset_image(ds, k, &im)) {
                bad++;
                continue;
            }
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 5; x++)
                    for (int c = 0; c < 3; c++)
                        bad += im.rgb[(y * 5 + x) * 3 + c] !=
                               (uint8_t)((k * 31 + y * 5 + x * 3 + (v ? 0 : c) * 101) % 256);
            gr_image_free(&im);
        }
        CHECK(bad == 0, "%s: %d pixels differ", a, bad);
        gr_dataset_free(ds);
    }
    /* labels that do not fit */
    const char *badl[3] = { "badlab.npy", "shortlab.npy", "feats32.npy" };
    snprintf(a, sizeof a, "%s/feats32.npy", dir);
    for (int v = 0; v < 3; v++) {
        snprintf(b, sizeof b, "%s/%s", dir, badl[v]);
        gr_dataset *ds = NULL;
        CHECK(gr_dataset_open(a, b, 0, &ds) != GRAFT_OK && !ds &&
                  strstr(graft_last_error(), badl[v]),
              "labels %s must be refused: %s", badl[v], graft_last_error());
    }
    gr_dataset *ds = NULL;
    CHECK(gr_dataset_open(a, NULL, 0, &ds) != GRAFT_OK && !ds,
          "NPY without labels must be refused");
}

/* ---- splits, k-shot, weights ---- */

/* A dataset of labels only: class c has sizes[c] samples, interleaved pseudo-randomly, plus
 * `unl` unlabelled ones. */
static gr_dataset *synthetic(const int *sizes, int k, int unl)
{
    gr_dataset *ds = calloc(1, sizeof *ds);
    int64_t n = unl;
    for (int c = 0; c < k; c++) n += sizes[c];
    ds->n = n;
    ds->nclass = k;
    ds->labels = malloc((size_t)n * sizeof *ds->labels);
    ds->class_names = calloc((size_t)k, sizeof(char *));
    for (int c = 0; c < k; c++) {
        ds->class_names[c] = malloc(16);
        snprintf(ds->class_names[c], 16, "cls%d", c);
    }
    int64_t i = 0;
    for (int c = 0; c < k; c++)
        for (int j = 0; j < sizes[c]; j++) ds->labels[i++] = c;
    while (i < n) ds->labels[i++] = -1;
    uint64_t s = 12345;
    for (int64_t a = n - 1; a > 0; a--) { /* a permutation, from an LCG independent of gr_rng */
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t b = (int64_t)((s >> 33) % (uint64_t)(a + 1));
        int32_t t = ds->labels[a];
        ds->labels[a] = ds->labels[b];
        ds->labels[b] = t;
    }
    return ds;
}

static void check_split(const gr_dataset *ds, const double frac[3], uint64_t seed, int64_t *idx[3],
                        int64_t cnt[3])
{
    int st = gr_split_stratified(ds, frac, seed, idx, cnt);
    CHECK(st == GRAFT_OK, "split: %s", graft_last_error());
    if (st) {
        for (int p = 0; p < 3; p++) idx[p] = NULL;
        return;
    }
    int *seen = calloc((size_t)ds->n, sizeof *seen), bad_order = 0, bad_cover = 0, bad_unl = 0;
    int64_t(*per)[3] = calloc((size_t)ds->nclass, sizeof *per);
    for (int p = 0; p < 3; p++)
        for (int64_t j = 0; j < cnt[p]; j++) {
            int64_t i = idx[p][j];
            if (i < 0 || i >= ds->n) {
                bad_cover++;
                continue;
            }
            seen[i]++;
            bad_order += j > 0 && idx[p][j - 1] >= i;
            if (ds->labels[i] < 0) bad_unl += p != 0;
            else per[ds->labels[i]][p]++;
        }
    for (int64_t i = 0; i < ds->n; i++) bad_cover += seen[i] != 1;
    CHECK(bad_cover == 0 && bad_order == 0 && bad_unl == 0,
          "parts must be disjoint, cover all, ascending, unlabelled in train: %d %d %d", bad_cover,
          bad_order, bad_unl);
    for (int c = 0; c < ds->nclass; c++) {
        int64_t m = per[c][0] + per[c][1] + per[c][2];
        for (int p = 0; p < 3; p++) {
            if (m >= 3 && frac[p] > 0)
                CHECK(per[c][p] >= 1, "class %d (%lld samples) part %d empty", c, (long long)m, p);
            if (frac[p] == 0) CHECK(per[c][p] == 0, "class %d part %d should be empty", c, p);
            if (m >= 10)
                CHECK(fabs((double)per[c][p] - frac[p] * (double)m) <= 1.0,
                      "class %d part %d: %lld of %lld for %g", c, p, (long long)per[c][p],
                      (long long)m, frac[p]);
        }
    }
    free(seen);
    free(per);
}

static int same_parts(int64_t *a[3], const int64_t ca[3], int64_t *b[3], const int64_t cb[3])
{
    for (int p = 0; p < 3; p++)
        if (ca[p] != cb[p] || (ca[p] && memcmp(a[p], b[p], (size_t)ca[p] * sizeof(int64_t))))
            return 0;
    return 1;
}

static void test_split(void)
{
    static const int sizes[8] = { 1, 2, 3, 5, 10, 100, 1000, 7 };
    gr_dataset *ds = synthetic(sizes, 8, 13);
    const double frac[3] = { 0.7, 0.2, 0.1 };
    int64_t *a[3], *b[3], *c[3], ca[3], cb[3], cc[3];
    check_split(ds, frac, 1, a, ca);
    check_split(ds, frac, 1, b, cb);
    check_split(ds, frac, 2, c, cc);
    if (a[0] && b[0] && c[0]) {
        CHECK(same_parts(a, ca, b, cb), "same seed, same split");
        CHECK(!same_parts(a, ca, c, cc), "another seed, another split");
    }
    for (int p = 0; p < 3; p++) {
        free(a[p]);
        free(b[p]);
        free(c[p]);
    }
    const double two[3] = { 0.8, 0.2, 0 };
    check_split(ds, two, 7, a, ca);
    CHECK(ca[2] == 0, "test part must be empty, has %lld", (long long)ca[2]);
    for (int p = 0; p < 3; p++) free(a[p]);
    const double bad[3] = { 0.7, 0.2, 0.2 };
    CHECK(gr_split_stratified(ds, bad, 1, a, ca) != GRAFT_OK,
          "fractions summing to 1.1 must be refused");

    /* class weights: n / (nclass * n_c) over the labelled samples (scikit-learn's "balanced") */
    float w[8];
    gr_class_weights(ds, NULL, 0, w);
    int64_t lab = 0;
    for (int k = 0; k < 8; k++) lab += sizes[k];
    float want[8];
    for (int k = 0; k < 8; k++) want[k] = (float)((double)lab / (8.0 * sizes[k]));
    th_close(w, want, 8, 1e-6, 0, "class weights (all)");
    /* over a subset in which class 0 is absent: weight 0 */
    check_split(ds, frac, 3, a, ca);
    if (a[0]) {
        int64_t n0[8] = { 0 }, tot = 0;
        int64_t *sub = malloc((size_t)ca[1] * sizeof *sub), ns = 0;
        for (int64_t j = 0; j < ca[1]; j++)
            if (ds->labels[a[1][j]] != 0) sub[ns++] = a[1][j];
        for (int64_t j = 0; j < ns; j++)
            if (ds->labels[sub[j]] >= 0) {
                n0[ds->labels[sub[j]]]++;
                tot++;
            }
        for (int k = 0; k < 8; k++)
            want[k] = n0[k] ? (float)((double)tot / (8.0 * (double)n0[k])) : 0.0f;
        gr_class_weights(ds, sub, ns, w);
        th_close(w, want, 8, 1e-6, 0, "class weights (val part without class 0)");
        free(sub);
    }
    for (int p = 0; p < 3; p++) free(a[p]);

    /* k-shot: a class with fewer than k examples is named */
    int64_t *ks = NULL;
    CHECK(gr_sample_kshot(ds, NULL, 0, 2, 1, &ks) != GRAFT_OK && strstr(graft_last_error(), "cls0"),
          "k=2 with a 1-sample class: %s", graft_last_error());
    free(ks);
    /* uniformity: k=1 from a 5-sample class, over 2000 seeds each member ~400 times */
    static const int five[2] = { 5, 5 };
    gr_dataset *f5 = synthetic(five, 2, 0);
    int hits[10] = { 0 };
    for (uint64_t s = 0; s < 2000; s++) {
        ks = NULL;
        if (gr_sample_kshot(f5, NULL, 0, 1, s, &ks) == GRAFT_OK) hits[ks[0]]++;
        free(ks);
    }
    for (int i = 0; i < 10; i++)
        if (f5->labels[i] == 0)
            CHECK(hits[i] > 300 && hits[i] < 500, "sample %d drawn %d times of 2000 (expect ~400)",
                  i, hits[i]);
    gr_dataset_free(f5);
    gr_dataset_free(ds);
}

static void test_kshot_fashion(void)
{
    gr_dataset *ds = open_ok(FMNIST "/train-images-idx3-ubyte.gz", NULL, 0);
    if (!ds) return;
    /* 0.8/0.2 of 6000 per class is exactly 4800/1200 */
    const double frac[3] = { 0.8, 0.2, 0 };
    int64_t *idx[3], cnt[3];
    check_split(ds, frac, 42, idx, cnt);
    if (!idx[0]) {
        gr_dataset_free(ds);
        return;
    }
    CHECK(cnt[0] == 48000 && cnt[1] == 12000 && cnt[2] == 0, "fashion split %lld/%lld/%lld",
          (long long)cnt[0], (long long)cnt[1], (long long)cnt[2]);
    int64_t *k1 = NULL, *k2 = NULL, *k3 = NULL;
    int k = 5;
    CHECK(gr_sample_kshot(ds, idx[1], cnt[1], k, 9, &k1) == GRAFT_OK, "kshot: %s",
          graft_last_error());
    CHECK(gr_sample_kshot(ds, idx[1], cnt[1], k, 9, &k2) == GRAFT_OK, "kshot: %s",
          graft_last_error());
    CHECK(gr_sample_kshot(ds, idx[1], cnt[1], k, 10, &k3) == GRAFT_OK, "kshot: %s",
          graft_last_error());
    if (k1 && k2 && k3) {
        CHECK(!memcmp(k1, k2, 50 * sizeof *k1), "same seed, same support set");
        CHECK(memcmp(k1, k3, 50 * sizeof *k1) != 0, "another seed, another support set");
        int bad = 0;
        uint8_t *in_pool = calloc((size_t)ds->n, 1);
        for (int64_t j = 0; j < cnt[1]; j++) in_pool[idx[1][j]] = 1;
        for (int c = 0; c < 10; c++)
            for (int j = 0; j < k; j++) {
                int64_t i = k1[c * k + j];
                bad += ds->labels[i] != c || !in_pool[i] || (j && k1[c * k + j - 1] >= i);
            }
        CHECK(bad == 0, "support set: %d entries wrong class, outside the pool or out of order",
              bad);
        free(in_pool);
    }
    free(k1);
    free(k2);
    free(k3);
    int64_t *big = NULL;
    CHECK(gr_sample_kshot(ds, idx[1], cnt[1], 1201, 1, &big) != GRAFT_OK && !big &&
              strstr(graft_last_error(), "1200"),
          "k above the pool's class size: %s", graft_last_error());
    float w[10], want[10];
    gr_class_weights(ds, idx[0], cnt[0], w);
    for (int c = 0; c < 10; c++) want[c] = 1.0f; /* balanced: 48000 / (10 * 4800) */
    th_close(w, want, 10, 1e-6, 0, "fashion class weights");
    for (int p = 0; p < 3; p++) free(idx[p]);
    gr_dataset_free(ds);
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/graft_ds_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    test_fashion();
    test_folder();
    test_csv();
    test_npy();
    test_split();
    test_kshot_fashion();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return th_finish();
}
