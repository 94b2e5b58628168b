/* ds_csv.c — the CSV dataset kind: CSV/TSV lists of image paths and labels (RFC 4180 quoting),
 * extra columns kept. See data.h, gr_dataset_open. */
#define _POSIX_C_SOURCE 200809L
#include "dataset_impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CSV_MAX_COLUMNS 1024 /* a header with more is refused before any row is stored */

/* ---- CSV / TSV (RFC 4180) ----------------------------------------------------------------- */

typedef struct csv_row {
    gr_ds_vec fields;
    int line;
} csv_row;

/* Parses one record starting at *pos; fields are malloc'd strings, the first `maxf` of them
 * kept, all of them counted in *nf (so a row wider than the header costs no allocation). *line
 * is advanced over the record's newlines (quoted fields may hold some). Returns 1 when a record
 * was read, 0 at the end, or -status. */
static int csv_record(const char *name, const char *s, size_t n, size_t *pos, char delim, int *line,
                      gr_ds_vec *fields, size_t maxf, size_t *nf)
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
            if (!f || gr_ds_vec_push(fields, f)) {
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
    for (size_t r = 0; r < n; r++) gr_ds_vec_free_all(&rows[r].fields);
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
        /* a row's fields in one allocation of the header's width (gr_ds_vec_push would
         * reserve 64) */
        if (cnt > 0 && !(rows[cnt].fields.v = gr_malloc(ncol * sizeof(void *)))) st = GRAFT_E_NOMEM;
        rows[cnt].fields.cap = cnt > 0 ? ncol : 0;
        int blank =
            pos < n && (s[pos] == '\n' || (s[pos] == '\r' && pos + 1 < n && s[pos + 1] == '\n'));
        int r = st ? -st : csv_record(name, s, n, &pos, delim, &line, &rows[cnt].fields, ncol, &nf);
        if (r > 0 && blank) {
            gr_ds_vec_free_all(&rows[cnt].fields);
            continue;
        }
        if (r > 0 && cnt == 0 && nf > CSV_MAX_COLUMNS)
            r = -gr_err(GRAFT_E_UNSUPPORTED,
                        "%s:%d: the header has %zu columns, graft reads at most %d", name,
                        rows[cnt].line, nf, CSV_MAX_COLUMNS);
        if (r > 0 && cnt > 0 && nf != ncol)
            r = -gr_err(GRAFT_E_FORMAT, "%s:%d: %zu fields, the header has %zu", name,
                        rows[cnt].line, nf, ncol);
        if (r <= 0) gr_ds_vec_free_all(&rows[cnt].fields);
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

static int find_col(const gr_ds_vec *hdr, const char *name)
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
            int st = gr_ds_class_count_check(
                v < INT64_MAX ? v + 1 : v,
                "%s:%d: bad label \"%.40s\": integer class ids keep their "
                "values, so it makes %s%lld classes",
                ds->source, rows[r].line, s, v < INT64_MAX ? "" : "more than ",
                v < INT64_MAX ? v + 1 : v);
            if (st) return st;
            ds->labels[r - 1] = (int32_t)v;
            if (v > maxv) maxv = v;
        }
        return gr_ds_numeric_names(ds, (int)maxv + 1);
    }
    char **sorted = gr_malloc((nrows ? nrows : 1) * sizeof *sorted);
    if (!sorted) return GRAFT_E_NOMEM;
    for (size_t r = 1; r < nrows; r++) sorted[r - 1] = rows[r].fields.v[lcol];
    qsort(sorted, nrows - 1, sizeof *sorted, gr_ds_cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < nrows - 1; i++)
        if (k == 0 || strcmp(sorted[k - 1], sorted[i])) sorted[k++] = sorted[i];
    int st = GRAFT_OK;
    st = gr_ds_class_count_check((int64_t)k, "%s: %zu distinct labels", ds->source, k);
    if (!st && !(ds->class_names = gr_calloc(k ? k : 1, sizeof(char *)))) st = GRAFT_E_NOMEM;
    if (!st) ds->nclass = (int)k;
    for (size_t c = 0; !st && c < k; c++)
        if (!(ds->class_names[c] = gr_strdup(sorted[c]))) st = GRAFT_E_NOMEM;
    for (size_t r = 1; !st && r < nrows; r++) {
        const char *key = rows[r].fields.v[lcol];
        char **hit = bsearch(&key, sorted, k, sizeof *sorted, gr_ds_cmp_str);
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
        char *full = p[0] == '/' ? gr_strdup(p) : gr_ds_join_path(dir, p);
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
    const gr_ds_vec *hdr = &rows[0].fields;
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
    if (ds->n <= 0) /* nrows >= 1 (the caller checks); <= tells GCC so (-Wstringop-overflow) */
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

int gr_ds_open_csv(const char *path, int flags, gr_dataset **out)
{
    uint8_t *text;
    size_t size;
    int st = gr_read_file(path, GR_DS_MAX_FILE_BYTES, &text, &size);
    if (st) return st;
    char delim = ',';
    if (gr_ds_ends_with_ci(path, ".tsv")) delim = '\t';
    else if (gr_ds_ends_with_ci(path, ".txt")) {
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
    else if (!(ds = gr_ds_new(GR_DS_CSV, path))) st = GRAFT_E_NOMEM;
    if (!st) st = csv_build(ds, rows, nrows);
    free_rows(rows, nrows);
    if (!st) st = gr_ds_check_labels(ds, flags);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}
