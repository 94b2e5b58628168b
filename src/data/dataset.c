/* dataset.c — labelled datasets (image folders, CSV lists, IDX and NPY arrays), their class
 * maps, stratified splits, k-shot support sets and class weights. See data.h for the rules.
 * Depends on core and io (io/npy.c reads .npy arrays), cJSON for the class list, zlib for .gz
 * IDX files. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"
#include "io/io.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

/* Class counts are held to the limit GRAFT_LIMIT_CLASSES (integer labels keep their values, so
 * a label v makes v + 1 classes: it is refused before anything is allocated for them); ids are
 * int32 whatever the limit. */
#define MAX_DEPTH       64 /* folder nesting inside a class (guards symlink loops) */
#define MAX_FILE_BYTES  ((size_t)1 << 34)
#define CSV_MAX_COLUMNS 1024 /* a header with more is refused before any row is stored */

/* ---- small helpers ---------------------------------------------------------------------- */

static char *join_path(const char *dir, const char *name)
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

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A growable array of pointers. */
typedef struct vec {
    void **v;
    size_t n, cap;
} vec;

static int vec_push(vec *a, void *p)
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

static void vec_free_all(vec *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Opens a regular file of at most MAX_FILE_BYTES; *size is its length. */
static int open_regular(const char *path, FILE **fp, size_t *size)
{
    FILE *f;
    uint64_t n;
    int st = gr_open_regular(path, &f, &n);
    if (st) return st;
    if (n > MAX_FILE_BYTES) {
        fclose(f);
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: the file has %" PRIu64 " bytes, more than graft reads", path, n);
    }
    *fp = f;
    *size = (size_t)n;
    return GRAFT_OK;
}

static int read_bytes(const char *path, FILE *f, uint8_t *dst, size_t n)
{
    return fread(dst, 1, n, f) == n ? GRAFT_OK : gr_err(GRAFT_E_IO, "%s: read error", path);
}

static gr_dataset *ds_new(int kind, const char *path)
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
static int class_count_check(int64_t k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int class_count_check(int64_t k, const char *fmt, ...)
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
static int numeric_names(gr_dataset *ds, int k)
{
    int st = class_count_check(k, "%s: its labels make %d classes", ds->source, k);
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
 * present (unless allowed), a label outside the classes. Unlabelled (-1) samples are fine. */
static int check_labels(const gr_dataset *ds, int allow_one_class)
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
    if (labelled && present < 2 && !allow_one_class)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: the dataset has only one class (%s); classification needs at least two",
                      ds->source,
                      ds->nclass ? ds->class_names[ds->labels[0] >= 0 ? ds->labels[0] : 0] : "?");
    return GRAFT_OK;
}

/* ---- FOLDER: torchvision's ImageFolder ---------------------------------------------------- */

static int is_image_name(const char *name)
{
    static const char *ext[] = { ".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pnm" };
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (ends_with_ci(name, ext[i])) return 1;
    return 0;
}

/* Sorted names of the visible entries of dir (NULL-free vec of malloc'd strings). */
static int list_dir(const char *dir, vec *out)
{
    DIR *d = opendir(dir);
    if (!d) return gr_err(GRAFT_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    int st = GRAFT_OK;
    while (!st && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", ".." and hidden entries */
        char *s = gr_strdup(e->d_name);
        st = s ? vec_push(out, s) : GRAFT_E_NOMEM;
        if (st) free(s);
    }
    closedir(d);
    if (!st && out->n) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return st;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 &&
           S_ISDIR(sb.st_mode); /* follows symlinks, as os.walk(followlinks) */
}

/* Appends the image files under dir in torchvision's order: sorted(os.walk(dir)) visits folders
 * sorted by their whole path string, and the files inside one folder sorted by name. So each
 * folder contributes a block; blocks are ordered by folder path. `files` gets (path) strings
 * and `dirs` the folder order; we collect per folder, then sort folders. */
typedef struct folder_block {
    char *dir;
    vec files;
} folder_block;

static int walk(const char *dir, int depth, vec *blocks)
{
    if (depth > MAX_DEPTH)
        return gr_err(GRAFT_E_FORMAT, "%s: folders nested deeper than %d (a symlink loop?)", dir,
                      MAX_DEPTH);
    vec names = { 0 };
    int st = list_dir(dir, &names);
    folder_block *b = st ? NULL : gr_calloc(1, sizeof *b);
    if (!st && !b) st = GRAFT_E_NOMEM;
    if (!st && !(b->dir = gr_strdup(dir))) {
        free(b);
        b = NULL;
        st = GRAFT_E_NOMEM;
    }
    if (!st && (st = vec_push(blocks, b)) != GRAFT_OK) {
        free(b->dir);
        free(b);
    }
    for (size_t i = 0; !st && i < names.n; i++) {
        char *p = join_path(dir, names.v[i]);
        if (!p) {
            st = GRAFT_E_NOMEM;
            break;
        }
        if (is_dir(p)) {
            st = walk(p, depth + 1, blocks);
            free(p);
        } else if (is_image_name(names.v[i])) {
            st = vec_push(&b->files, p);
            if (st) free(p);
        } else {
            free(p);
        }
    }
    vec_free_all(&names);
    return st;
}

static int cmp_block(const void *a, const void *b)
{
    return strcmp((*(folder_block *const *)a)->dir, (*(folder_block *const *)b)->dir);
}

static void free_blocks(vec *blocks)
{
    for (size_t i = 0; i < blocks->n; i++) {
        folder_block *b = blocks->v[i];
        vec_free_all(&b->files);
        free(b->dir);
        free(b);
    }
    free(blocks->v);
    blocks->v = NULL;
    blocks->n = blocks->cap = 0;
}

/* Moves the files of one class folder, in torchvision's order, onto paths/labels. */
static int add_class(const char *cdir, int cls, vec *paths, vec *labels_v)
{
    vec blocks = { 0 };
    int st = walk(cdir, 0, &blocks);
    if (!st) qsort(blocks.v, blocks.n, sizeof *blocks.v, cmp_block);
    size_t added = 0;
    for (size_t i = 0; !st && i < blocks.n; i++) {
        folder_block *b = blocks.v[i];
        for (size_t j = 0; !st && j < b->files.n; j++) {
            st = vec_push(paths, b->files.v[j]);
            if (!st) {
                b->files.v[j] = NULL;
                added++;
            }
            if (!st) st = vec_push(labels_v, (void *)(intptr_t)cls);
        }
    }
    free_blocks(&blocks);
    if (!st && added == 0)
        st =
            gr_err(GRAFT_E_FORMAT,
                   "%s: empty class folder: no image files (.jpg .jpeg .png .pgm .ppm .pnm)", cdir);
    return st;
}

static int open_folder(const char *path, int allow_one_class, gr_dataset **out)
{
    vec classes = { 0 }, paths = { 0 }, labels = { 0 };
    int st = list_dir(path, &classes);
    /* keep only folders: classes are the subfolders, loose files at the top are ignored */
    size_t k = 0;
    for (size_t i = 0; !st && i < classes.n; i++) {
        char *p = join_path(path, classes.v[i]);
        if (!p) {
            st = GRAFT_E_NOMEM;
            break;
        }
        if (is_dir(p)) classes.v[k++] = classes.v[i];
        else free(classes.v[i]);
        free(p);
    }
    if (!st) classes.n = k;
    if (!st && classes.n == 0)
        st = gr_err(GRAFT_E_FORMAT, "%s: no class folders (expected %s/<class>/<image>)", path,
                    path);
    if (!st) st = class_count_check((int64_t)classes.n, "%s: %zu class folders", path, classes.n);
    for (size_t c = 0; !st && c < classes.n; c++) {
        char *cdir = join_path(path, classes.v[c]);
        st = cdir ? add_class(cdir, (int)c, &paths, &labels) : GRAFT_E_NOMEM;
        free(cdir);
    }
    gr_dataset *ds = st ? NULL : ds_new(GR_DS_FOLDER, path);
    if (!st && !ds) st = GRAFT_E_NOMEM;
    if (!st) {
        ds->n = (int64_t)paths.n;
        ds->nclass = (int)classes.n;
        ds->class_names = (char **)classes.v;
        classes.v = NULL;
        classes.n = 0;
        ds->paths = (char **)paths.v;
        paths.v = NULL;
        paths.n = 0;
        ds->labels = gr_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ds->labels);
        if (!ds->labels) st = GRAFT_E_NOMEM;
        for (int64_t i = 0; !st && i < ds->n; i++) ds->labels[i] = (int32_t)(intptr_t)labels.v[i];
    }
    if (!st) st = check_labels(ds, allow_one_class);
    vec_free_all(&classes);
    vec_free_all(&paths);
    free(labels.v);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}

/* ---- CSV / TSV (RFC 4180) ----------------------------------------------------------------- */

typedef struct csv_row {
    vec fields;
    int line;
} csv_row;

/* Parses one record starting at *pos; fields are malloc'd strings, the first `maxf` of them
 * kept, all of them counted in *nf (so a row wider than the header costs no allocation). *line
 * is advanced over the record's newlines (quoted fields may hold some). Returns 1 when a record
 * was read, 0 at the end, or -status. */
static int csv_record(const char *name, const char *s, size_t n, size_t *pos, char delim, int *line,
                      vec *fields, size_t maxf, size_t *nf)
{
    *nf = 0;
    size_t i = *pos;
    if (i >= n) return 0;
    int start_line = *line;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        int quoted = 0;
        len = 0;
        if (i < n && s[i] == '"') {
            quoted = 1;
            i++;
            for (;;) {
                if (i >= n) {
                    free(buf);
                    return -gr_err(GRAFT_E_FORMAT, "%s:%d: a quoted field is not closed", name,
                                   start_line);
                }
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') i++; /* "" is one quote */
                    else {
                        i++;
                        break;
                    }
                }
                if (s[i] == '\n') (*line)++;
                if (len + 1 >= cap) {
                    cap = cap ? 2 * cap : 64;
                    char *nb = realloc(buf, cap);
                    if (!nb) {
                        free(buf);
                        return -gr_err(GRAFT_E_NOMEM, "out of memory");
                    }
                    buf = nb;
                }
                buf[len++] = s[i++];
            }
        }
        size_t from = i;
        while (i < n && s[i] != delim && s[i] != '\n' &&
               !(s[i] == '\r' && (i + 1 == n || s[i + 1] == '\n')))
            i++;
        if (quoted && i > from) {
            free(buf);
            return -gr_err(GRAFT_E_FORMAT, "%s:%d: text after a closing quote", name, *line);
        }
        if ((*nf)++ < maxf) {
            size_t k = quoted ? len : i - from;
            char *f = gr_malloc(k + 1);
            if (f) {
                if (k) memcpy(f, quoted ? buf : s + from, k);
                f[k] = 0;
            }
            if (!f || vec_push(fields, f)) {
                free(f);
                free(buf);
                return -GRAFT_E_NOMEM;
            }
        }
        if (i < n && s[i] == delim) {
            i++;
            continue;
        }
        if (i < n && s[i] == '\r') i++;
        if (i < n && s[i] == '\n') i++;
        (*line)++;
        break;
    }
    free(buf);
    *pos = i;
    return 1;
}

static void free_rows(csv_row *rows, size_t n)
{
    for (size_t r = 0; r < n; r++) vec_free_all(&rows[r].fields);
    free(rows);
}

/* All records except blank lines (one empty unquoted field). The header may have up to
 * CSV_MAX_COLUMNS fields and every row must have as many as the header, checked as each row is
 * read: the cells kept are at most the file's bytes, whatever its shape. */
static int csv_parse(const char *name, const char *s, size_t n, char delim, csv_row **rows_out,
                     size_t *nrows)
{
    csv_row *rows = NULL;
    size_t cnt = 0, cap = 0, pos = 0, ncol = CSV_MAX_COLUMNS, nf = 0;
    int line = 1, st = GRAFT_OK;
    if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) pos = 3; /* UTF-8 byte order mark */
    for (;;) {
        if (cnt == cap) {
            cap = cap ? 2 * cap : 256;
            csv_row *nr = realloc(rows, cap * sizeof *nr);
            if (!nr) {
                free_rows(rows, cnt);
                return gr_err(GRAFT_E_NOMEM, "out of memory");
            }
            rows = nr;
        }
        memset(&rows[cnt], 0, sizeof rows[cnt]);
        rows[cnt].line = line;
        /* a row's fields in one allocation of the header's width (vec_push would reserve 64) */
        if (cnt > 0 && !(rows[cnt].fields.v = gr_malloc(ncol * sizeof(void *)))) st = GRAFT_E_NOMEM;
        rows[cnt].fields.cap = cnt > 0 ? ncol : 0;
        int blank =
            pos < n && (s[pos] == '\n' || (s[pos] == '\r' && pos + 1 < n && s[pos + 1] == '\n'));
        int r = st ? -st : csv_record(name, s, n, &pos, delim, &line, &rows[cnt].fields, ncol, &nf);
        if (r > 0 && blank) {
            vec_free_all(&rows[cnt].fields);
            continue;
        }
        if (r > 0 && cnt == 0 && nf > CSV_MAX_COLUMNS)
            r = -gr_err(GRAFT_E_UNSUPPORTED,
                        "%s:%d: the header has %zu columns, graft reads at most %d", name,
                        rows[cnt].line, nf, CSV_MAX_COLUMNS);
        if (r > 0 && cnt > 0 && nf != ncol)
            r = -gr_err(GRAFT_E_FORMAT, "%s:%d: %zu fields, the header has %zu", name,
                        rows[cnt].line, nf, ncol);
        if (r <= 0) vec_free_all(&rows[cnt].fields);
        if (r < 0) {
            free_rows(rows, cnt);
            return -r;
        }
        if (r == 0) break;
        if (cnt++ == 0) ncol = nf;
    }
    *rows_out = rows;
    *nrows = cnt;
    return GRAFT_OK;
}

static int find_col(const vec *hdr, const char *name)
{
    for (size_t j = 0; j < hdr->n; j++) {
        const char *h = hdr->v[j];
        while (*h == ' ') h++;
        size_t k = strlen(h);
        while (k && h[k - 1] == ' ') k--;
        if (k == strlen(name) && strncasecmp(h, name, k) == 0) return (int)j;
    }
    return -1;
}

/* A label is text without control characters; "bad" labels are refused with their line. */
static int label_ok(const char *s)
{
    if (!*s) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F) return 0;
    return 1;
}

static int all_digits(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* Class ids for the labels column: integers when every label is one, else sorted strings. */
static int csv_classes(gr_dataset *ds, csv_row *rows, size_t nrows, int lcol)
{
    int numeric = 1;
    for (size_t r = 1; r < nrows && numeric; r++) numeric = all_digits(rows[r].fields.v[lcol]);
    if (numeric) {
        /* integer ids keep their values: label v makes v + 1 classes, refused above the limit
         * before the names are made (digits only, so strtoll saturates rather than wraps) */
        long long maxv = -1;
        for (size_t r = 1; r < nrows; r++) {
            const char *s = rows[r].fields.v[lcol];
            long long v = strtoll(s, NULL, 10);
            int st =
                class_count_check(v < INT64_MAX ? v + 1 : v,
                                  "%s:%d: bad label \"%.40s\": integer class ids keep their "
                                  "values, so it makes %s%lld classes",
                                  ds->source, rows[r].line, s, v < INT64_MAX ? "" : "more than ",
                                  v < INT64_MAX ? v + 1 : v);
            if (st) return st;
            ds->labels[r - 1] = (int32_t)v;
            if (v > maxv) maxv = v;
        }
        return numeric_names(ds, (int)maxv + 1);
    }
    char **sorted = gr_malloc((nrows ? nrows : 1) * sizeof *sorted);
    if (!sorted) return GRAFT_E_NOMEM;
    for (size_t r = 1; r < nrows; r++) sorted[r - 1] = rows[r].fields.v[lcol];
    qsort(sorted, nrows - 1, sizeof *sorted, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < nrows - 1; i++)
        if (k == 0 || strcmp(sorted[k - 1], sorted[i])) sorted[k++] = sorted[i];
    int st = GRAFT_OK;
    st = class_count_check((int64_t)k, "%s: %zu distinct labels", ds->source, k);
    if (!st && !(ds->class_names = gr_calloc(k ? k : 1, sizeof(char *)))) st = GRAFT_E_NOMEM;
    if (!st) ds->nclass = (int)k;
    for (size_t c = 0; !st && c < k; c++)
        if (!(ds->class_names[c] = gr_strdup(sorted[c]))) st = GRAFT_E_NOMEM;
    for (size_t r = 1; !st && r < nrows; r++) {
        const char *key = rows[r].fields.v[lcol];
        char **hit = bsearch(&key, sorted, k, sizeof *sorted, cmp_str);
        ds->labels[r - 1] = (int32_t)(hit - sorted);
    }
    free(sorted);
    return st;
}

/* The rows → samples: paths (resolved, must exist), labels, extra columns. */
static int csv_samples(gr_dataset *ds, csv_row *rows, size_t nrows, int pcol, int lcol,
                       const char *dir)
{
    size_t ncol = rows[0].fields.n; /* every row has as many fields (csv_parse) */
    for (size_t r = 1; r < nrows; r++) {
        const char *p = rows[r].fields.v[pcol];
        if (!*p) return gr_err(GRAFT_E_FORMAT, "%s:%d: empty path", ds->source, rows[r].line);
        char *full = p[0] == '/' ? gr_strdup(p) : join_path(dir, p);
        if (!full) return GRAFT_E_NOMEM;
        ds->paths[r - 1] = full;
        struct stat sb;
        if (stat(full, &sb) != 0)
            return gr_err(GRAFT_E_IO, "%s:%d: image file %s: %s", ds->source, rows[r].line, full,
                          strerror(errno));
        if (!S_ISREG(sb.st_mode))
            return gr_err(GRAFT_E_IO, "%s:%d: image file %s is not a regular file", ds->source,
                          rows[r].line, full);
        if (lcol >= 0 && !label_ok(rows[r].fields.v[lcol]))
            return gr_err(GRAFT_E_FORMAT, "%s:%d: bad label \"%s\" (%s)", ds->source, rows[r].line,
                          (char *)rows[r].fields.v[lcol],
                          *(char *)rows[r].fields.v[lcol] ? "control characters" : "empty");
    }
    int j = 0;
    for (size_t c = 0; c < ncol; c++) {
        if ((int)c == pcol || (int)c == lcol) continue;
        if (!(ds->col_names[j] = gr_strdup(rows[0].fields.v[c]))) return GRAFT_E_NOMEM;
        for (size_t r = 1; r < nrows; r++) {
            ds->cols[j][r - 1] = rows[r].fields.v[c]; /* ownership moves to the dataset */
            rows[r].fields.v[c] = NULL;
        }
        j++;
    }
    return GRAFT_OK;
}

static int csv_build(gr_dataset *ds, csv_row *rows, size_t nrows)
{
    const vec *hdr = &rows[0].fields;
    int pcol = find_col(hdr, "path"), lcol = find_col(hdr, "label");
    /* no "path"/"label" names: the first two columns (or one column: unlabelled). A named
     * "path" without a "label" column means unlabelled. */
    if (pcol < 0 && lcol < 0) {
        pcol = 0;
        lcol = hdr->n >= 2 ? 1 : -1;
    } else if (pcol < 0) pcol = lcol == 0 ? 1 : 0;
    if (pcol >= (int)hdr->n)
        return gr_err(GRAFT_E_FORMAT, "%s:1: the header has no path column", ds->source);
    ds->n = (int64_t)nrows - 1;
    if (ds->n == 0)
        return gr_err(GRAFT_E_FORMAT, "%s: the dataset has no samples (only a header line)",
                      ds->source);
    size_t n = (size_t)ds->n;
    ds->ncol = (int)hdr->n - 1 - (lcol >= 0);
    if (!(ds->paths = gr_calloc(n, sizeof(char *))) ||
        !(ds->labels = gr_malloc(n * sizeof(int32_t))) ||
        !(ds->col_names = gr_calloc((size_t)ds->ncol + 1, sizeof(char *))) ||
        !(ds->cols = gr_calloc((size_t)ds->ncol + 1, sizeof(char **))))
        return GRAFT_E_NOMEM;
    for (int j = 0; j < ds->ncol; j++)
        if (!(ds->cols[j] = gr_calloc(n, sizeof(char *)))) return GRAFT_E_NOMEM;
    char *dir = gr_strdup(ds->source);
    if (!dir) return GRAFT_E_NOMEM;
    char *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir] = 0; /* "/x.csv" → "/" */
    else strcpy(dir, ".");
    int st = csv_samples(ds, rows, nrows, pcol, lcol, dir);
    free(dir);
    if (st) return st;
    if (lcol < 0) {
        for (size_t i = 0; i < n; i++) ds->labels[i] = -1;
        return GRAFT_OK;
    }
    return csv_classes(ds, rows, nrows, lcol);
}

static int open_csv(const char *path, int allow_one_class, gr_dataset **out)
{
    uint8_t *text;
    size_t size;
    int st = gr_read_file(path, MAX_FILE_BYTES, &text, &size);
    if (st) return st;
    char delim = ',';
    if (ends_with_ci(path, ".tsv")) delim = '\t';
    else if (ends_with_ci(path, ".txt")) {
        const char *nl = strchr((char *)text, '\n');
        const char *tab = strchr((char *)text, '\t');
        if (tab && (!nl || tab < nl)) delim = '\t'; /* sniffed from the header line */
    }
    if (memchr(text, 0, size)) {
        free(text);
        return gr_err(GRAFT_E_FORMAT, "%s: not a text file (it holds NUL bytes)", path);
    }
    csv_row *rows = NULL;
    size_t nrows = 0;
    st = csv_parse(path, (char *)text, size, delim, &rows, &nrows);
    free(text);
    if (st) return st;
    gr_dataset *ds = NULL;
    if (nrows == 0) st = gr_err(GRAFT_E_FORMAT, "%s: empty file (expected a header line)", path);
    else if (!(ds = ds_new(GR_DS_CSV, path))) st = GRAFT_E_NOMEM;
    if (!st) st = csv_build(ds, rows, nrows);
    free_rows(rows, nrows);
    if (!st) st = check_labels(ds, allow_one_class);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}

/* ---- gzip through zlib ------------------------------------------------------------------ */

typedef struct gz {
    z_stream z;
    int open, eof;
} gz;

static int gz_open(gz *g, const char *name, const uint8_t *src, size_t n)
{
    memset(g, 0, sizeof *g);
    g->z.next_in = (Bytef *)src;
    g->z.avail_in = 0;
    if (inflateInit2(&g->z, 15 + 16) != Z_OK)
        return gr_err(GRAFT_E_NOMEM, "%s: zlib init failed", name);
    g->open = 1;
    (void)n;
    return GRAFT_OK;
}

static void gz_close(gz *g)
{
    if (g->open) inflateEnd(&g->z);
    memset(g, 0, sizeof *g);
}

/* Inflates up to `len` bytes into dst from the gzip data src[0..n) (members concatenated, as
 * gzip allows); *got is how many came out (less than len only at the end). */
static int gz_read(gz *g, const char *name, const uint8_t *src, size_t n, uint8_t *dst, size_t len,
                   size_t *got)
{
    size_t done = 0;
    while (done < len && !g->eof) {
        size_t used = (size_t)(g->z.next_in - (const Bytef *)src);
        if (g->z.avail_in == 0) {
            size_t left = n - used;
            g->z.avail_in = left > (1u << 30) ? (1u << 30) : (uInt)left;
        }
        size_t want = len - done > (1u << 30) ? (1u << 30) : len - done;
        g->z.next_out = dst + done;
        g->z.avail_out = (uInt)want;
        int r = inflate(&g->z, Z_NO_FLUSH);
        done += want - g->z.avail_out;
        if (r == Z_STREAM_END) {
            used = (size_t)(g->z.next_in - (const Bytef *)src);
            if (n - used >= 2 && src[used] == 0x1f && src[used + 1] == 0x8b) inflateReset(&g->z);
            else
                g->eof = 1; /* trailing bytes after the last member are ignored, as gzip -d warns */
        } else if (r != Z_OK) {
            if (r == Z_BUF_ERROR && g->z.avail_in == 0)
                return gr_err(GRAFT_E_FORMAT, "%s: truncated gzip data", name);
            return gr_err(GRAFT_E_FORMAT, "%s: corrupt gzip data (%s)", name,
                          g->z.msg ? g->z.msg : "inflate error");
        }
    }
    *got = done;
    return GRAFT_OK;
}

/* ---- IDX (the MNIST format) -------------------------------------------------------------- */

/* An IDX file's dims and payload; gzip is detected from the bytes. The header is validated before
 * the payload is allocated: a raw file's counts must need exactly the bytes after the header
 * (and at most the tensor-bytes limit); a gzip file's must need at most the decompressed-bytes
 * limit and at most what its compressed bytes can hold, and its stream is inflated into a buffer
 * that grows as data comes out, stopping one byte past what the header declares. */
typedef struct idx_file {
    int64_t dims[3];
    int ndim;
    uint8_t *data;
    size_t bytes;
} idx_file;

#define IDX_ABSURD ((uint64_t)1 << 62) /* a payload past this is reported as "more than" it */

static int idx_header(const char *path, const uint8_t *h, int ndim, uint32_t magic, idx_file *f)
{
    uint32_t m = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (m != magic)
        return gr_err(GRAFT_E_FORMAT, "%s: not an IDX %s file (magic 0x%08x, expected 0x%08x)",
                      path, ndim == 3 ? "images" : "labels", m, magic);
    f->ndim = ndim;
    uint64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        const uint8_t *p = h + 4 + 4 * d;
        f->dims[d] =
            (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        if (f->dims[d] > 0x7FFFFFFF)
            return gr_err(GRAFT_E_FORMAT, "%s: dimension %d is %lld", path, d,
                          (long long)f->dims[d]);
        total *= (uint64_t)f->dims[d]; /* 31-bit factors: the product stays below 2^93... */
        if (total > IDX_ABSURD)
            total = IDX_ABSURD + 1; /* ...so saturate it as soon as it is absurd */
    }
    f->bytes = (size_t)total;
    return GRAFT_OK;
}

/* "N" or "more than 2^62" for a payload size from idx_header. */
static const char *idx_need(const idx_file *f, char *buf, size_t n)
{
    if (f->bytes > IDX_ABSURD) snprintf(buf, n, "more than %llu", (unsigned long long)IDX_ABSURD);
    else snprintf(buf, n, "%zu", f->bytes);
    return buf;
}

/* Inflates the payload: at most f->bytes + 1 bytes ever come out (the extra one tells a stream
 * longer than its header), into a buffer grown by doubling from 1 MB. */
static int idx_inflate(gz *g, const char *path, const uint8_t *raw, size_t n, idx_file *f)
{
    size_t cap = f->bytes < ((size_t)1 << 20) ? f->bytes : (size_t)1 << 20, done = 0, got = 0,
           more = 0;
    uint8_t *buf = gr_malloc(cap ? cap : 1), extra;
    int st = buf ? GRAFT_OK : GRAFT_E_NOMEM;
    while (!st && !(st = gz_read(g, path, raw, n, buf + done, cap - done, &got))) {
        done += got;
        if (done < cap || cap == f->bytes) break; /* the stream ended, or the payload is whole */
        size_t grow = cap > f->bytes / 2 ? f->bytes : 2 * cap;
        uint8_t *nb = realloc(buf, grow);
        if (!nb) st = gr_err(GRAFT_E_NOMEM, "%s: out of memory for %zu bytes", path, grow);
        else buf = nb, cap = grow;
    }
    if (!st && done == f->bytes) st = gz_read(g, path, raw, n, &extra, 1, &more);
    char need[48];
    if (!st && (done != f->bytes || more))
        st = gr_err(
            GRAFT_E_FORMAT, "%s: the header's counts need %s data bytes, the file holds %s%zu",
            path, idx_need(f, need, sizeof need), more ? "more than " : "", more ? f->bytes : done);
    if (st) free(buf);
    else f->data = buf;
    return st;
}

static int idx_gz(const char *path, const uint8_t *raw, size_t n, int ndim, uint32_t magic,
                  idx_file *f)
{
    gz g;
    int st = gz_open(&g, path, raw, n);
    if (st) return st;
    uint8_t h[16];
    size_t hl = 4 + 4 * (size_t)ndim, got;
    char need[48];
    st = gz_read(&g, path, raw, n, h, hl, &got);
    if (!st && got < hl) st = gr_err(GRAFT_E_FORMAT, "%s: truncated IDX header", path);
    if (!st) st = idx_header(path, h, ndim, magic, f);
    /* deflate expands at most 1032:1, so a header asking for more is refused unallocated */
    if (!st && f->bytes / 1032 > n)
        st =
            gr_err(GRAFT_E_FORMAT,
                   "%s: the header's counts need %s bytes, more than %zu compressed bytes can hold",
                   path, idx_need(f, need, sizeof need), n);
    /* the header and the payload its counts need (below 1032 x 16 GiB after the check above) */
    if (!st)
        st = gr_limit_check(GRAFT_LIMIT_DECOMPRESSED_BYTES, (int64_t)(f->bytes + hl),
                            "%s: the header's counts make %zu bytes decompressed", path,
                            f->bytes + hl);
    if (!st) st = idx_inflate(&g, path, raw, n, f);
    gz_close(&g);
    return st;
}

/* A raw IDX file: the header read on its own and checked against the file's size, then the
 * payload read straight into its buffer. */
static int idx_raw(const char *path, FILE *fp, size_t n, int ndim, uint32_t magic, idx_file *f)
{
    uint8_t h[16];
    size_t hl = 4 + 4 * (size_t)ndim;
    char need[48];
    if (n < hl) return gr_err(GRAFT_E_FORMAT, "%s: truncated IDX header (%zu bytes)", path, n);
    int st = read_bytes(path, fp, h, hl);
    if (!st) st = idx_header(path, h, ndim, magic, f);
    if (!st && f->bytes != n - hl)
        st =
            gr_err(GRAFT_E_FORMAT, "%s: the header's counts need %s data bytes, the file holds %zu",
                   path, idx_need(f, need, sizeof need), n - hl);
    if (!st)
        st = gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)f->bytes,
                            "%s: the IDX data is %zu bytes", path, f->bytes);
    if (!st && !(f->data = gr_malloc(f->bytes ? f->bytes : 1))) st = GRAFT_E_NOMEM;
    if (!st) st = read_bytes(path, fp, f->data, f->bytes);
    return st;
}

static int idx_load(const char *path, int ndim, uint32_t magic, idx_file *f)
{
    memset(f, 0, sizeof *f);
    FILE *fp = NULL;
    size_t n = 0;
    uint8_t magic2[2] = { 0, 0 };
    int st = open_regular(path, &fp, &n);
    if (st) return st;
    int gzipped = n >= 2 && fread(magic2, 1, 2, fp) == 2 && magic2[0] == 0x1f && magic2[1] == 0x8b;
    rewind(fp);
    if (!gzipped) st = idx_raw(path, fp, n, ndim, magic, f);
    else { /* the compressed bytes, read whole: their size is the file's */
        uint8_t *raw = gr_malloc(n);
        st = raw ? read_bytes(path, fp, raw, n) : GRAFT_E_NOMEM;
        if (!st) st = idx_gz(path, raw, n, ndim, magic, f);
        free(raw);
    }
    fclose(fp);
    if (st) {
        free(f->data);
        f->data = NULL;
    }
    return st;
}

static int is_fashion(const char *path)
{
    const char *b = base_name(path);
    static const char *files[] = { "train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                                   "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz" };
    int known = 0;
    for (size_t i = 0; i < 4; i++) known |= strcmp(b, files[i]) == 0;
    if (!known || b == path) return 0;
    /* the folder holding the file (its last path component) must name Fashion-MNIST */
    size_t dl = (size_t)(b - path) - 1, ds = dl;
    while (ds > 0 && path[ds - 1] != '/') ds--;
    for (size_t i = ds; i + 7 <= dl; i++)
        if (strncasecmp(path + i, "fashion", 7) == 0) return 1;
    return 0;
}

/* The labels file next to an images file: "images-idx3" → "labels-idx1", with or without .gz. */
static char *idx_labels_path(const char *path)
{
    const char *b = base_name(path);
    const char *m = strstr(b, "images-idx3-ubyte");
    if (!m) return NULL;
    size_t pre = (size_t)(m - path);
    const char *tail = m + strlen("images-idx3-ubyte");
    char *p = gr_malloc(strlen(path) + 8);
    if (!p) return NULL;
    const char *tails[2] = { tail, *tail ? "" : ".gz" };
    for (int t = 0; t < 2; t++) {
        snprintf(p, strlen(path) + 8, "%.*slabels-idx1-ubyte%s", (int)pre, path, tails[t]);
        struct stat sb;
        if (stat(p, &sb) == 0) return p;
    }
    snprintf(p, strlen(path) + 8, "%.*slabels-idx1-ubyte%s", (int)pre, path, tail);
    return p; /* missing: the caller's open names it */
}

static int idx_fill(gr_dataset *ds, idx_file *im, idx_file *lb)
{
    static const char *fashion[10] = {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"
    };
    if (im->dims[0] != lb->dims[0])
        return gr_err(GRAFT_E_FORMAT, "%s: %lld images but %lld labels in its labels file",
                      ds->source, (long long)im->dims[0], (long long)lb->dims[0]);
    if (im->dims[1] <= 0 || im->dims[2] <= 0 || im->dims[1] > GR_IMAGE_MAX_SIDE ||
        im->dims[2] > GR_IMAGE_MAX_SIDE)
        return gr_err(GRAFT_E_FORMAT, "%s: images of %lldx%lld pixels", ds->source,
                      (long long)im->dims[2], (long long)im->dims[1]);
    ds->n = im->dims[0];
    ds->h = (int)im->dims[1];
    ds->w = (int)im->dims[2];
    ds->c = 1;
    ds->pixels = im->data;
    im->data = NULL;
    if (!(ds->labels = gr_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ds->labels)))
        return GRAFT_E_NOMEM;
    int maxv = -1;
    for (int64_t i = 0; i < ds->n; i++) {
        ds->labels[i] = lb->data[i];
        if (lb->data[i] > maxv) maxv = lb->data[i];
    }
    if (!is_fashion(ds->source) || maxv > 9) return numeric_names(ds, maxv + 1);
    if (!(ds->class_names = gr_calloc(10, sizeof(char *)))) return GRAFT_E_NOMEM;
    ds->nclass = 10;
    for (int c = 0; c < 10; c++)
        if (!(ds->class_names[c] = gr_strdup(fashion[c]))) return GRAFT_E_NOMEM;
    return GRAFT_OK;
}

static int open_idx(const char *path, int allow_one_class, gr_dataset **out)
{
    char *lpath = idx_labels_path(path);
    if (!lpath) return GRAFT_E_NOMEM;
    idx_file im = { 0 }, lb = { 0 };
    gr_dataset *ds = NULL;
    int st = idx_load(path, 3, 0x00000803, &im);
    if (!st) st = idx_load(lpath, 1, 0x00000801, &lb);
    if (st && im.data)
        st = gr_err_prefix(st, "%s: its labels file", path); /* images ok, labels not */
    if (!st && !(ds = ds_new(GR_DS_IDX, path))) st = GRAFT_E_NOMEM;
    if (!st) st = idx_fill(ds, &im, &lb);
    if (!st) st = check_labels(ds, allow_one_class);
    free(im.data);
    free(lb.data);
    free(lpath);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}

/* ---- NPY (the arrays read by io/npy.c) ----------------------------------------------------- */

/* Samples from array a: features (n, dim) float32/float64, or images (n, h, w[, 1|3]) uint8.
 * Float32 features and the pixels are taken from a (a->data is NULL afterwards). */
static int npy_fill_samples(gr_dataset *ds, gr_tensor *a)
{
    const int64_t *d = a->shape.d;
    int rank = a->shape.rank;
    if ((a->dtype == GR_F32 || a->dtype == GR_F64) && rank == 2) {
        ds->n = d[0];
        ds->dim = d[1];
        size_t cnt = (size_t)(ds->n * ds->dim);
        if (a->dtype == GR_F32) {
            ds->features = a->data, a->data = NULL;
            return GRAFT_OK;
        }
        if (!(ds->features = gr_malloc((cnt ? cnt : 1) * sizeof(float)))) return GRAFT_E_NOMEM;
        for (size_t i = 0; i < cnt; i++) ds->features[i] = (float)((const double *)a->data)[i];
        return GRAFT_OK;
    }
    if (a->dtype == GR_U8 && (rank == 3 || (rank == 4 && (d[3] == 1 || d[3] == 3)))) {
        if (d[1] < 1 || d[2] < 1 || d[1] > GR_IMAGE_MAX_SIDE || d[2] > GR_IMAGE_MAX_SIDE)
            return gr_err(GRAFT_E_FORMAT, "%s: images of %lldx%lld pixels", ds->source,
                          (long long)d[2], (long long)d[1]);
        ds->n = d[0];
        ds->h = (int)d[1];
        ds->w = (int)d[2];
        ds->c = rank == 4 ? (int)d[3] : 1;
        ds->pixels = a->data, a->data = NULL;
        return GRAFT_OK;
    }
    return gr_err(GRAFT_E_UNSUPPORTED,
                  "%s: a %d-d %s array is neither features (n, dim) float32/float64 nor images "
                  "(n, h, w[, 1|3]) uint8",
                  ds->source, rank, gr_dtype_name(a->dtype));
}

static int npy_fill_labels(gr_dataset *ds, const char *lpath, const gr_tensor *l)
{
    if ((l->dtype != GR_I32 && l->dtype != GR_I64) || l->shape.rank != 1)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: labels must be a 1-d int32 or int64 array (this is %d-d %s)", lpath,
                      l->shape.rank, gr_dtype_name(l->dtype));
    if (l->shape.d[0] != ds->n)
        return gr_err(GRAFT_E_FORMAT, "%s: %lld labels for the %lld samples of %s", lpath,
                      (long long)l->shape.d[0], (long long)ds->n, ds->source);
    if (!(ds->labels = gr_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ds->labels)))
        return GRAFT_E_NOMEM;
    int64_t maxv = -1;
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t v =
            l->dtype == GR_I32 ? ((const int32_t *)l->data)[i] : ((const int64_t *)l->data)[i];
        if (v < 0)
            return gr_err(GRAFT_E_FORMAT, "%s: label %lld of sample %lld is negative", lpath,
                          (long long)v, (long long)i);
        int st = class_count_check(
            v < INT64_MAX ? v + 1 : v, "%s: label %lld of sample %lld makes %lld classes", lpath,
            (long long)v, (long long)i, (long long)(v < INT64_MAX ? v + 1 : v));
        if (st) return st;
        ds->labels[i] = (int32_t)v;
        if (v > maxv) maxv = v;
    }
    return numeric_names(ds, (int)maxv + 1);
}

static int open_npy(const char *path, const char *labels_npy, int allow_one_class, gr_dataset **out)
{
    if (!labels_npy)
        return gr_err(GRAFT_E_ARG,
                      "%s: a .npy dataset needs its labels (an int array of n) as a second .npy",
                      path);
    gr_tensor a = { 0 }, l = { 0 };
    gr_dataset *ds = NULL;
    int st = gr_npy_load(path, &a);
    if (st) return st;
    if (!(ds = ds_new(GR_DS_NPY, path))) st = GRAFT_E_NOMEM;
    if (!st) st = npy_fill_samples(ds, &a);
    free(a.data);
    if (!st) st = gr_npy_load(labels_npy, &l);
    if (!st) st = npy_fill_labels(ds, labels_npy, &l);
    free(l.data);
    if (!st) st = check_labels(ds, allow_one_class);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}

/* ---- opening, samples, classes ----------------------------------------------------------- */

int gr_dataset_open(const char *path, const char *labels_npy, int allow_one_class, gr_dataset **out)
{
    if (!path || !out) return gr_err(GRAFT_E_ARG, "gr_dataset_open: NULL argument");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return gr_err(GRAFT_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return open_folder(path, allow_one_class, out);
    const char *b = base_name(path);
    if (ends_with_ci(b, ".csv") || ends_with_ci(b, ".tsv") || ends_with_ci(b, ".txt"))
        return open_csv(path, allow_one_class, out);
    if (ends_with_ci(b, ".npy")) return open_npy(path, labels_npy, allow_one_class, out);
    if (strstr(b, "-images-idx3-ubyte")) return open_idx(path, allow_one_class, out);
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
    gr_dataset *ds = ds_new(GR_DS_CSV, "(files)");
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
