/* dataset.c — labelled datasets: opening (the kinds are in ds_folder.c, ds_csv.c, ds_idx.c and
 * ds_npy.c), their samples and class maps, stratified splits, k-shot support sets, class weights
 * and unlabelled file lists; the small helpers the kinds share (dataset_impl.h). See data.h for
 * the rules. Depends on core, cJSON for the class list. */
#define _POSIX_C_SOURCE 200809L
#include "dataset_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- small helpers ---------------------------------------------------------------------- */

char *gr_ds_join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = gr_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int gr_ds_ends_with_ci(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

const char *gr_ds_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int gr_ds_vec_push(gr_ds_vec *a, void *p)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void **v = realloc(a->v, cap * sizeof *v);
        if (!v) return gr_err(GRAFT_E_NOMEM, "out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = p;
    return GRAFT_OK;
}

void gr_ds_vec_free_all(gr_ds_vec *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

int gr_ds_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Opens a regular file of at most GR_DS_MAX_FILE_BYTES; *size is its length. */
int gr_ds_open_regular(const char *path, FILE **fp, size_t *size)
{
    FILE *f;
    uint64_t n;
    int st = gr_open_regular(path, &f, &n);
    if (st) return st;
    if (n > GR_DS_MAX_FILE_BYTES) {
        fclose(f);
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: the file has %" PRIu64 " bytes, more than graft reads", path, n);
    }
    *fp = f;
    *size = (size_t)n;
    return GRAFT_OK;
}

int gr_ds_read_bytes(const char *path, FILE *f, uint8_t *dst, size_t n)
{
    return fread(dst, 1, n, f) == n ? GRAFT_OK : gr_err(GRAFT_E_IO, "%s: read error", path);
}

gr_dataset *gr_ds_new(int kind, const char *path)
{
    gr_dataset *ds = gr_calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->kind = kind;
    ds->source = gr_strdup(path);
    if (!ds->source) {
        free(ds);
        return NULL;
    }
    return ds;
}

void gr_dataset_free(gr_dataset *ds)
{
    if (!ds) return;
    for (int c = 0; ds->class_names && c < ds->nclass; c++) free(ds->class_names[c]);
    free(ds->class_names);
    for (int64_t i = 0; ds->paths && i < ds->n; i++) free(ds->paths[i]);
    free(ds->paths);
    for (int j = 0; j < ds->ncol; j++) {
        for (int64_t i = 0; ds->cols && ds->cols[j] && i < ds->n; i++) free(ds->cols[j][i]);
        if (ds->cols) free(ds->cols[j]);
        if (ds->col_names) free(ds->col_names[j]);
    }
    free(ds->cols);
    free(ds->col_names);
    free(ds->labels);
    free(ds->pixels);
    free(ds->features);
    free(ds->source);
    free(ds);
}

/* GRAFT_OK when k classes are within the classes limit; the message (fmt...) says where they
 * come from. Ids are int32, so k >= 2^31 - 1 counts as above any limit. */
int gr_ds_class_count_check(int64_t k, const char *fmt, ...)
{
    if (k <= gr_limit(GRAFT_LIMIT_CLASSES) && k < INT32_MAX) return GRAFT_OK;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return gr_limit_check(GRAFT_LIMIT_CLASSES, k < INT32_MAX ? k : INT64_MAX, "%s", what);
}

/* Names "0".."k-1" for integer labels. */
int gr_ds_numeric_names(gr_dataset *ds, int k)
{
    int st = gr_ds_class_count_check(k, "%s: its labels make %d classes", ds->source, k);
    if (st) return st;
    ds->class_names = gr_calloc((size_t)(k ? k : 1), sizeof(char *));
    if (!ds->class_names) return GRAFT_E_NOMEM;
    ds->nclass = k;
    for (int c = 0; c < k; c++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", c);
        if (!(ds->class_names[c] = gr_strdup(buf))) return GRAFT_E_NOMEM;
    }
    return GRAFT_OK;
}

/* The checks every kind shares once labels are known: no samples, fewer than two classes
 * present (unless flags allow), a label outside the classes. Unlabelled (-1) samples are fine. */
int gr_ds_check_labels(const gr_dataset *ds, int flags)
{
    if (ds->n == 0) return gr_err(GRAFT_E_FORMAT, "%s: the dataset has no samples", ds->source);
    uint8_t *seen = gr_calloc((size_t)(ds->nclass ? ds->nclass : 1), 1);
    if (!seen) return GRAFT_E_NOMEM;
    int present = 0, labelled = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        int32_t y = ds->labels[i];
        if (y == -1) continue;
        labelled = 1;
        if (y < 0 || y >= ds->nclass) {
            free(seen);
            return gr_err(GRAFT_E_FORMAT, "%s: sample %lld has label %d, outside the %d classes",
                          ds->source, (long long)i, y, ds->nclass);
        }
        present += !seen[y];
        seen[y] = 1;
    }
    free(seen);
    if (labelled && present < 2 && !(flags & (GR_DS_ONE_CLASS | GR_DS_UNLABELED)))
        return gr_err(GRAFT_E_FORMAT,
                      "%s: the dataset has only one class (%s); classification needs at least two",
                      ds->source,
                      ds->nclass ? ds->class_names[ds->labels[0] >= 0 ? ds->labels[0] : 0] : "?");
    return GRAFT_OK;
}

/* ---- opening, samples, classes ----------------------------------------------------------- */

static int open_kind(const char *path, const char *labels_npy, int flags, gr_dataset **out)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return gr_err(GRAFT_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return gr_ds_open_folder(path, flags, out);
    const char *b = gr_ds_base_name(path);
    if (gr_ds_ends_with_ci(b, ".csv") || gr_ds_ends_with_ci(b, ".tsv") ||
        gr_ds_ends_with_ci(b, ".txt"))
        return gr_ds_open_csv(path, flags, out);
    if (gr_ds_ends_with_ci(b, ".npy")) return gr_ds_open_npy(path, labels_npy, flags, out);
    if (strstr(b, "-images-idx3-ubyte")) return gr_ds_open_idx(path, flags, out);
    if (strstr(b, "-labels-idx1-ubyte"))
        return gr_err(
            GRAFT_E_ARG,
            "%s: open the matching *-images-idx3-ubyte file; its labels are found next to it",
            path);
    return gr_err(GRAFT_E_ARG,
                  "%s: cannot tell the dataset kind (expected a folder, .csv/.tsv/.txt, "
                  "*-images-idx3-ubyte[.gz] or .npy)",
                  path);
}

int gr_dataset_open(const char *path, const char *labels_npy, int flags, gr_dataset **out)
{
    if (!path || !out) return gr_err(GRAFT_E_ARG, "gr_dataset_open: NULL argument");
    int st = open_kind(path, labels_npy, flags, out);
    if (!st) (*out)->unlabeled = !!(flags & GR_DS_UNLABELED);
    return st;
}

int gr_dataset_image(const gr_dataset *ds, int64_t i, gr_image *out)
{
    if (i < 0 || i >= ds->n)
        return gr_err(GRAFT_E_ARG, "%s: sample %lld is outside 0..%lld", ds->source, (long long)i,
                      (long long)ds->n - 1);
    if (ds->paths) return gr_image_decode(ds->paths[i], out);
    if (!ds->pixels)
        return gr_err(GRAFT_E_ARG, "%s[%lld]: dataset holds features, not images", ds->source,
                      (long long)i);
    size_t np = (size_t)ds->w * (size_t)ds->h;
    uint8_t *rgb = gr_malloc(np * 3);
    if (!rgb) return GRAFT_E_NOMEM;
    const uint8_t *src = ds->pixels + (size_t)i * np * (size_t)ds->c;
    if (ds->c == 3) memcpy(rgb, src, np * 3);
    else
        for (size_t k = 0; k < np; k++) rgb[3 * k] = rgb[3 * k + 1] = rgb[3 * k + 2] = src[k];
    out->w = ds->w;
    out->h = ds->h;
    out->rgb = rgb;
    return GRAFT_OK;
}

char *gr_dataset_class_json(const gr_dataset *ds)
{
    cJSON *a = cJSON_CreateArray();
    for (int c = 0; a && c < ds->nclass; c++) {
        cJSON *s = cJSON_CreateString(ds->class_names[c]);
        if (!s) {
            cJSON_Delete(a);
            a = NULL;
            break;
        }
        cJSON_AddItemToArray(a, s);
    }
    char *txt = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    char *res = txt ? gr_strdup(txt) : NULL; /* plain malloc, whatever cJSON's hooks are */
    cJSON_free(txt);
    if (!res) gr_err(GRAFT_E_NOMEM, "out of memory");
    return res;
}

int gr_dataset_col(const gr_dataset *ds, const char *name)
{
    for (int j = 0; j < ds->ncol; j++)
        if (!strcmp(ds->col_names[j], name)) return j;
    return -1;
}

/* ---- splits, k-shot, class weights ------------------------------------------------------- */

/* Fisher-Yates, drawing from rng. */
static void shuffle(int64_t *a, int64_t n, gr_rng *rng)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)gr_rng_below(rng, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Sample indices grouped by class (counting sort): members of class c are
 * order[start[c] .. start[c+1]) ascending. Only the listed samples (idx, or all) count;
 * unlabelled ones are left out. */
static int by_class(const gr_dataset *ds, const int64_t *idx, int64_t nidx, int64_t **order,
                    int64_t **start)
{
    int K = ds->nclass;
    int64_t *st = gr_calloc((size_t)K + 2, sizeof *st);
    int64_t *ord = gr_malloc((size_t)(nidx ? nidx : 1) * sizeof *ord);
    if (!st || !ord) {
        free(st);
        free(ord);
        return GRAFT_E_NOMEM;
    }
    for (int64_t j = 0; j < nidx; j++) {
        int32_t y = ds->labels[idx ? idx[j] : j];
        if (y >= 0 && y < K) st[y + 1]++;
    }
    for (int c = 0; c < K; c++) st[c + 1] += st[c];
    int64_t *fill = gr_malloc(((size_t)K + 1) * sizeof *fill);
    if (!fill) {
        free(st);
        free(ord);
        return GRAFT_E_NOMEM;
    }
    memcpy(fill, st, ((size_t)K + 1) * sizeof *fill);
    for (int64_t j = 0; j < nidx; j++) {
        int64_t i = idx ? idx[j] : j;
        int32_t y = ds->labels[i];
        if (y >= 0 && y < K) ord[fill[y]++] = i;
    }
    free(fill);
    for (int c = 0; c < K; c++)
        qsort(ord + st[c], (size_t)(st[c + 1] - st[c]), sizeof *ord, cmp_i64);
    *order = ord;
    *start = st;
    return GRAFT_OK;
}

/* Part sizes for one class of m samples: rounded, then every non-zero part gets one when
 * m >= 3, taken from the largest part. */
static void part_sizes(int64_t m, const double frac[3], int64_t sz[3])
{
    sz[1] = (int64_t)(frac[1] * (double)m + 0.5);
    sz[2] = (int64_t)(frac[2] * (double)m + 0.5);
    if (sz[1] + sz[2] > m) sz[2] = m - sz[1];
    sz[0] = m - sz[1] - sz[2];
    if (m < 3) return;
    for (int p = 0; p < 3; p++) {
        if (frac[p] <= 0 || sz[p] > 0) continue;
        int big = 0;
        for (int q = 1; q < 3; q++)
            if (sz[q] > sz[big]) big = q;
        sz[big]--;
        sz[p]++;
    }
}

int gr_split_stratified(const gr_dataset *ds, const double frac[3], uint64_t seed, int64_t *idx[3],
                        int64_t cnt[3])
{
    double sum = 0;
    for (int p = 0; p < 3; p++) {
        if (!(frac[p] >= 0 && frac[p] <= 1))
            return gr_err(GRAFT_E_ARG, "split fractions must be in [0, 1] (got %g)", frac[p]);
        sum += frac[p];
    }
    if (fabs(sum - 1) > 1e-6 || frac[0] <= 0)
        return gr_err(GRAFT_E_ARG,
                      "split fractions %g/%g/%g must sum to 1 with a non-zero train part", frac[0],
                      frac[1], frac[2]);
    int64_t *ord, *start;
    if (by_class(ds, NULL, ds->n, &ord, &start)) return GRAFT_E_NOMEM;
    int64_t *out[3];
    int64_t k[3] = { 0, 0, 0 };
    for (int p = 0; p < 3; p++) out[p] = gr_malloc((size_t)(ds->n ? ds->n : 1) * sizeof(int64_t));
    if (!out[0] || !out[1] || !out[2]) {
        for (int p = 0; p < 3; p++) free(out[p]);
        free(ord);
        free(start);
        return GRAFT_E_NOMEM;
    }
    gr_rng rng;
    gr_rng_seed(&rng, seed);
    for (int c = 0; c < ds->nclass; c++) {
        int64_t *a = ord + start[c], m = start[c + 1] - start[c], sz[3];
        shuffle(a, m, &rng);
        part_sizes(m, frac, sz);
        for (int p = 0, j = 0; p < 3; p++)
            for (int64_t t = 0; t < sz[p]; t++) out[p][k[p]++] = a[j++];
    }
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] < 0)
            out[0][k[0]++] = i; /* unlabelled samples train (semi-supervised use) */
    for (int p = 0; p < 3; p++) {
        qsort(out[p], (size_t)k[p], sizeof(int64_t), cmp_i64);
        idx[p] = out[p];
        cnt[p] = k[p];
    }
    free(ord);
    free(start);
    return GRAFT_OK;
}

int gr_sample_kshot(const gr_dataset *ds, const int64_t *pool, int64_t npool, int k, uint64_t seed,
                    int64_t **out)
{
    if (k < 1) return gr_err(GRAFT_E_ARG, "k-shot: k must be at least 1 (got %d)", k);
    if (!pool) npool = ds->n;
    uint8_t *seen = gr_calloc((size_t)(ds->n ? ds->n : 1), 1);
    if (!seen) return GRAFT_E_NOMEM;
    for (int64_t j = 0; pool && j < npool; j++) {
        if (pool[j] < 0 || pool[j] >= ds->n || seen[pool[j]]) {
            int64_t bad = pool[j];
            free(seen);
            return gr_err(GRAFT_E_ARG, "k-shot: pool entry %lld (sample %lld) is %s", (long long)j,
                          (long long)bad,
                          bad < 0 || bad >= ds->n ? "outside the dataset" : "listed twice");
        }
        seen[pool[j]] = 1;
    }
    free(seen);
    int64_t *ord, *start;
    if (by_class(ds, pool, npool, &ord, &start)) return GRAFT_E_NOMEM;
    int st = GRAFT_OK;
    for (int c = 0; !st && c < ds->nclass; c++)
        if (start[c + 1] - start[c] < k)
            st = gr_err(
                GRAFT_E_ARG,
                "%s: class %d (%s) has %lld labelled examples in the pool, fewer than k = %d",
                ds->source, c, ds->class_names[c], (long long)(start[c + 1] - start[c]), k);
    int64_t *res = st ? NULL : gr_malloc((size_t)ds->nclass * (size_t)k * sizeof *res + 1);
    if (!st && !res) st = GRAFT_E_NOMEM;
    gr_rng rng;
    gr_rng_seed(&rng, seed);
    for (int c = 0; !st && c < ds->nclass; c++) {
        int64_t *a = ord + start[c], m = start[c + 1] - start[c];
        /* the first k of a partial Fisher-Yates are a uniform k-subset */
        for (int64_t i = 0; i < k; i++) {
            int64_t j = i + (int64_t)gr_rng_below(&rng, (uint64_t)(m - i));
            int64_t t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        qsort(a, (size_t)k, sizeof *a, cmp_i64);
        memcpy(res + (size_t)c * (size_t)k, a, (size_t)k * sizeof *a);
    }
    free(ord);
    free(start);
    if (!st) *out = res;
    return st;
}

void gr_class_weights(const gr_dataset *ds, const int64_t *idx, int64_t nidx, float *w)
{
    int64_t total = 0;
    int64_t *cnt = gr_calloc((size_t)ds->nclass + 1, sizeof *cnt);
    if (!cnt) {
        for (int c = 0; c < ds->nclass; c++) w[c] = 1;
        return;
    }
    if (!idx) nidx = ds->n;
    for (int64_t j = 0; j < nidx; j++) {
        int32_t y = ds->labels[idx ? idx[j] : j];
        if (y >= 0 && y < ds->nclass) {
            cnt[y]++;
            total++;
        }
    }
    for (int c = 0; c < ds->nclass; c++)
        w[c] = cnt[c] ? (float)((double)total / ((double)ds->nclass * (double)cnt[c])) : 0.0f;
    free(cnt);
}

/* ---- an unlabelled list of image files (prediction) ---- */

int gr_dataset_from_files(const char *const *paths, int64_t n, gr_dataset **out)
{
    if (n <= 0) return gr_err(GRAFT_E_ARG, "no image files given");
    gr_dataset *ds = gr_ds_new(GR_DS_CSV, "(files)");
    if (!ds) return GRAFT_E_NOMEM;
    ds->paths = gr_calloc((size_t)n, sizeof *ds->paths);
    ds->labels = gr_calloc((size_t)n, sizeof *ds->labels);
    int st = ds->paths && ds->labels ? GRAFT_OK : GRAFT_E_NOMEM;
    for (int64_t i = 0; !st && i < n; i++) {
        ds->paths[i] = gr_strdup(paths[i]);
        ds->labels[i] = -1;
        ds->n = i + 1;
        if (!ds->paths[i]) st = GRAFT_E_NOMEM;
    }
    if (st) {
        gr_dataset_free(ds);
        return st;
    }
    *out = ds;
    return GRAFT_OK;
}
