/* ds_idx.c — the IDX dataset kind (MNIST, Fashion-MNIST): *-images-idx3-ubyte[.gz] with its
 * labels file next to it, raw or gzip (read through zlib). See data.h, gr_dataset_open. */
#define _POSIX_C_SOURCE 200809L
#include "dataset_impl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

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
    int st = gr_ds_read_bytes(path, fp, h, hl);
    if (!st) st = idx_header(path, h, ndim, magic, f);
    if (!st && f->bytes != n - hl)
        st =
            gr_err(GRAFT_E_FORMAT, "%s: the header's counts need %s data bytes, the file holds %zu",
                   path, idx_need(f, need, sizeof need), n - hl);
    if (!st)
        st = gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)f->bytes,
                            "%s: the IDX data is %zu bytes", path, f->bytes);
    if (!st && !(f->data = gr_malloc(f->bytes ? f->bytes : 1))) st = GRAFT_E_NOMEM;
    if (!st) st = gr_ds_read_bytes(path, fp, f->data, f->bytes);
    return st;
}

static int idx_load(const char *path, int ndim, uint32_t magic, idx_file *f)
{
    memset(f, 0, sizeof *f);
    FILE *fp = NULL;
    size_t n = 0;
    uint8_t magic2[2] = { 0, 0 };
    int st = gr_ds_open_regular(path, &fp, &n);
    if (st) return st;
    int gzipped = n >= 2 && fread(magic2, 1, 2, fp) == 2 && magic2[0] == 0x1f && magic2[1] == 0x8b;
    rewind(fp);
    if (!gzipped) st = idx_raw(path, fp, n, ndim, magic, f);
    else { /* the compressed bytes, read whole: their size is the file's */
        uint8_t *raw = gr_malloc(n);
        st = raw ? gr_ds_read_bytes(path, fp, raw, n) : GRAFT_E_NOMEM;
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
    const char *b = gr_ds_base_name(path);
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
    const char *b = gr_ds_base_name(path);
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
    if (!lb->data) { /* unlabelled, no labels file: no classes */
        for (int64_t i = 0; i < ds->n; i++) ds->labels[i] = -1;
        return GRAFT_OK;
    }
    int maxv = -1;
    for (int64_t i = 0; i < ds->n; i++) {
        ds->labels[i] = lb->data[i];
        if (lb->data[i] > maxv) maxv = lb->data[i];
    }
    if (!is_fashion(ds->source) || maxv > 9) return gr_ds_numeric_names(ds, maxv + 1);
    if (!(ds->class_names = gr_calloc(10, sizeof(char *)))) return GRAFT_E_NOMEM;
    ds->nclass = 10;
    for (int c = 0; c < 10; c++)
        if (!(ds->class_names[c] = gr_strdup(fashion[c]))) return GRAFT_E_NOMEM;
    return GRAFT_OK;
}

int gr_ds_open_idx(const char *path, int flags, gr_dataset **out)
{
    char *lpath = idx_labels_path(path);
    if (!lpath) return GRAFT_E_NOMEM;
    idx_file im = { 0 }, lb = { 0 };
    gr_dataset *ds = NULL;
    struct stat sb;
    int st = idx_load(path, 3, 0x00000803, &im);
    int no_labels = (flags & GR_DS_UNLABELED) && stat(lpath, &sb) != 0;
    if (!st && no_labels) lb.dims[0] = im.dims[0]; /* no data: idx_fill leaves them unlabelled */
    else if (!st) st = idx_load(lpath, 1, 0x00000801, &lb);
    if (st && im.data)
        st = gr_err_prefix(st, "%s: its labels file", path); /* images ok, labels not */
    if (!st && !(ds = gr_ds_new(GR_DS_IDX, path))) st = GRAFT_E_NOMEM;
    if (!st) st = idx_fill(ds, &im, &lb);
    if (!st) st = gr_ds_check_labels(ds, flags);
    free(im.data);
    free(lb.data);
    free(lpath);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}
