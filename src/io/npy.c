/* npy.c — NumPy .npy files (format versions 1-3, little-endian, C order).
 *
 * The loader trusts nothing in the file: the header is parsed as the Python dict literal it is
 * (exactly the keys descr, fortran_order and shape, each once), its length is bounded, and the
 * element count is checked for overflow, against the bytes actually in the file and against
 * GRAFT_LIMIT_TENSOR_BYTES before the data is allocated. Only the header and then the data are
 * read, so a file is never held twice in memory. */
#define _FILE_OFFSET_BITS 64
#include "io.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

/* numpy writes headers below 64 KiB for every array graft can hold (version 2 exists for
 * structured dtypes with very many fields) and itself refuses headers above 10000 bytes by
 * default, so a longer one is damage or an attack, not data. */
#define NPY_MAX_HEADER 65536

static const struct {
    const char *code;
    int dtype;
} npy_types[] = {
    { "f4", GR_F32 }, { "f8", GR_F64 }, { "i8", GR_I64 },  { "i4", GR_I32 },
    { "u1", GR_U8 },  { "i1", GR_I8 },  { "b1", GR_BOOL },
};

/* descr ("<f4", "|u1", ...) to a dtype; big-endian and unknown types are refused by name. */
static int descr_dtype(const char *path, const char *d, int *dt)
{
    char order = strchr("<>|=", d[0]) && d[0] ? d[0] : 0;
    const char *code = order ? d + 1 : d;
    for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++) {
        if (strcmp(npy_types[i].code, code) != 0) continue;
        if (order == '>' && gr_dtype_size(npy_types[i].dtype) > 1)
            return gr_err(GRAFT_E_UNSUPPORTED,
                          "%s: .npy element type '%s' is big-endian; graft reads little-endian "
                          "arrays (numpy: a.astype('<%s'))",
                          path, d, code);
        *dt = npy_types[i].dtype;
        return GRAFT_OK;
    }
    return gr_err(GRAFT_E_UNSUPPORTED,
                  "%s: .npy element type '%s' is not supported (graft reads <f4 <f8 <i8 <i4 "
                  "|u1 |i1 |b1)",
                  path, d);
}

static const char *dtype_descr(int dt)
{
    switch (dt) {
    case GR_F32: return "<f4";
    case GR_F64: return "<f8";
    case GR_I64: return "<i8";
    case GR_I32: return "<i4";
    case GR_U8: return "|u1";
    case GR_I8: return "|i1";
    case GR_BOOL: return "|b1";
    }
    return NULL;
}

/* ---- the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ---- */

typedef struct hcur {
    const char *start, *p, *end, *path;
} hcur;

static void skip_ws(hcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int bad(const hcur *c, const char *what)
{
    return gr_err(GRAFT_E_FORMAT, "%s: bad .npy header: %s (at byte %td of the header)", c->path,
                  what, c->p - c->start);
}

/* Expects character ch after optional white space. */
static int expect(hcur *c, char ch, const char *what)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch) return bad(c, what);
    c->p++;
    return GRAFT_OK;
}

/* A quoted string without escapes into buf (printable ASCII only: nothing graft accepts needs
 * more, and the text may end up in a message). */
static int parse_str(hcur *c, char *buf, size_t n, const char *what)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return bad(c, what);
    char q = *c->p++;
    size_t k = 0;
    for (; c->p < c->end && *c->p != q; c->p++) {
        if (*c->p < 0x20 || *c->p > 0x7e || *c->p == '\\')
            return bad(c, "a string with an escape or a non-ASCII byte");
        if (k + 1 >= n) return bad(c, "a string too long");
        buf[k++] = *c->p;
    }
    if (c->p >= c->end) return bad(c, "an unterminated string");
    c->p++;
    buf[k] = 0;
    return GRAFT_OK;
}

static int parse_bool(hcur *c, int *v)
{
    skip_ws(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && !memcmp(c->p, "True", 4)) return c->p += 4, *v = 1, GRAFT_OK;
    if (left >= 5 && !memcmp(c->p, "False", 5)) return c->p += 5, *v = 0, GRAFT_OK;
    return bad(c, "fortran_order is not True or False");
}

/* A non-negative decimal integer (Python 2's 'L' suffix allowed), below 2^63. */
static int parse_dim(hcur *c, int64_t *v)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return bad(c, "a shape entry is not a non-negative integer");
    uint64_t x = 0;
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        if (x > ((uint64_t)INT64_MAX - (uint64_t)(*c->p - '0')) / 10)
            return bad(c, "a shape entry above 2^63");
        x = x * 10 + (uint64_t)(*c->p - '0');
    }
    if (c->p < c->end && *c->p == 'L') c->p++;
    *v = (int64_t)x;
    return GRAFT_OK;
}

/* (), (n,), (a, b), (a, b,) */
static int parse_shape(hcur *c, gr_shape *s)
{
    int st = expect(c, '(', "shape is not a tuple");
    s->rank = 0;
    while (!st) {
        skip_ws(c);
        if (c->p < c->end && *c->p == ')') return c->p++, GRAFT_OK;
        if (s->rank == GR_MAXDIM)
            return gr_err(GRAFT_E_UNSUPPORTED, "%s: .npy array of rank above %d is not supported",
                          c->path, GR_MAXDIM);
        st = parse_dim(c, &s->d[s->rank++]);
        skip_ws(c);
        if (!st && c->p < c->end && *c->p == ',') c->p++;
        else if (!st && (c->p >= c->end || *c->p != ')'))
            st = bad(c, "shape entries not separated by ','");
    }
    return st;
}

typedef struct npy_head {
    char descr[32];
    int fortran;
    gr_shape shape;
} npy_head;

/* One "key: value" of the dict; seen counts each key so that a repeated or missing one is
 * refused (numpy requires exactly these three). */
static int parse_item(hcur *c, npy_head *h, int seen[3])
{
    char key[32] = "";
    int st = parse_str(c, key, sizeof key, "a key is not a quoted string");
    if (!st) st = expect(c, ':', "no ':' after a key");
    int k = !strcmp(key, "descr")           ? 0
            : !strcmp(key, "fortran_order") ? 1
            : !strcmp(key, "shape")         ? 2
                                            : -1;
    if (!st && k < 0)
        return gr_err(GRAFT_E_FORMAT, "%s: bad .npy header: unexpected key '%s'", c->path, key);
    if (!st && seen[k]++)
        return gr_err(GRAFT_E_FORMAT, "%s: bad .npy header: key '%s' appears twice", c->path, key);
    if (st) return st;
    skip_ws(c);
    if (k == 0 && c->p < c->end && *c->p == '[')
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: .npy arrays of a structured dtype are not supported", c->path);
    return k == 0   ? parse_str(c, h->descr, sizeof h->descr, "descr is not a quoted type string")
           : k == 1 ? parse_bool(c, &h->fortran)
                    : parse_shape(c, &h->shape);
}

static int parse_dict(hcur *c, npy_head *h)
{
    int seen[3] = { 0 }, st = expect(c, '{', "it does not start with '{'");
    while (!st) {
        skip_ws(c);
        if (c->p < c->end && *c->p == '}') break;
        st = parse_item(c, h, seen);
        skip_ws(c);
        if (!st && c->p < c->end && *c->p == ',') c->p++;
        else if (!st && (c->p >= c->end || *c->p != '}'))
            st = bad(c, "entries not separated by ',' or no closing '}'");
    }
    if (st) return st;
    c->p++;
    skip_ws(c); /* numpy pads with spaces up to a '\n' */
    if (c->p != c->end) return bad(c, "text after the closing '}'");
    static const char *const keys[3] = { "descr", "fortran_order", "shape" };
    for (int k = 0; k < 3; k++)
        if (!seen[k])
            return gr_err(GRAFT_E_FORMAT, "%s: bad .npy header: no '%s'", c->path, keys[k]);
    return GRAFT_OK;
}

/* ---- load ---- */

/* The magic, version and header length, then the header text, parsed; *data_off gets where the
 * data starts. Nothing is allocated for a header longer than the file or than NPY_MAX_HEADER. */
static int read_header(const char *path, FILE *f, uint64_t size, npy_head *h, uint64_t *data_off)
{
    unsigned char pre[12] = { 0 };
    /* a file that does not start as .npy is "bad magic" however short; a .npy cut inside its
     * 10-byte prefix is short */
    size_t have = size < 10 ? (size_t)size : 10, cmp = have < 6 ? have : 6;
    if (fread(pre, 1, have, f) != have) return gr_err(GRAFT_E_IO, "%s: read error", path);
    if (memcmp(pre, "\x93NUMPY", cmp) != 0 || have < 10)
        return gr_err(GRAFT_E_FORMAT, "%s: not a .npy file (%s)", path,
                      have < 10 && !memcmp(pre, "\x93NUMPY", cmp) ? "shorter than its prefix"
                                                                  : "bad magic");
    uint64_t hlen, off = pre[6] == 1 ? 10 : 12;
    if (pre[6] < 1 || pre[6] > 3)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: .npy format version %d is not supported (1, 2 or 3)", path, pre[6]);
    if (off == 12 && (size < 12 || fread(pre + 10, 1, 2, f) != 2))
        return gr_err(GRAFT_E_FORMAT, "%s: truncated .npy header", path);
    hlen = pre[8] | (uint64_t)pre[9] << 8;
    if (off == 12) hlen |= (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    if (hlen > size - off)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: truncated .npy header: it announces %" PRIu64
                      " bytes, the file has %" PRIu64 " after the prefix",
                      path, hlen, size - off);
    if (hlen > NPY_MAX_HEADER)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: .npy header of %" PRIu64 " bytes, longer than the %d graft reads (numpy "
                      "writes much shorter ones)",
                      path, hlen, NPY_MAX_HEADER);
    char *text = malloc(hlen + 1);
    if (!text) return gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    int st =
        fread(text, 1, hlen, f) == hlen ? GRAFT_OK : gr_err(GRAFT_E_IO, "%s: read error", path);
    hcur c = { text, text, text + hlen, path };
    memset(h, 0, sizeof *h);
    if (!st) st = parse_dict(&c, h);
    free(text);
    *data_off = off + hlen;
    return st;
}

/* Column-major and row-major bytes are the same when at most one dim exceeds 1. */
static int fortran_differs(const gr_shape *s)
{
    int big = 0;
    for (int i = 0; i < s->rank; i++) big += s->d[i] > 1;
    return big > 1;
}

/* The header's array against what the file holds and the limit, before anything is allocated. */
static int check_array(const char *path, const npy_head *h, uint64_t present, gr_tensor *t)
{
    int dt = 0, st = descr_dtype(path, h->descr, &dt);
    if (st) return st;
    t->dtype = (gr_dtype)dt;
    t->shape = h->shape;
    char sh[200];
    gr_shape_str(&t->shape, sh, sizeof sh);
    if (h->fortran && fortran_differs(&t->shape))
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: the .npy array %s is Fortran-ordered (fortran_order: True); graft "
                      "reads C order (numpy: np.save(path, np.ascontiguousarray(a)))",
                      path, sh);
    size_t es = gr_dtype_size(dt);
    int64_t count = gr_numel_checked(&t->shape, es);
    if (count < 0)
        return gr_err(GRAFT_E_FORMAT, "%s: .npy shape %s of %s: its size overflows 64 bits", path,
                      sh, h->descr);
    uint64_t bytes = (uint64_t)count * es;
    if (bytes != present)
        return gr_err(
            GRAFT_E_FORMAT,
            "%s: .npy data has %" PRIu64 " bytes, the header's shape %s of %s needs %" PRIu64 "%s",
            path, present, sh, h->descr, bytes, bytes > present ? " (truncated file?)" : "");
    return gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)bytes,
                          "%s: .npy array %s of %s needs %" PRIu64 " bytes", path, sh, h->descr,
                          bytes);
}

int gr_npy_load(const char *path, gr_tensor *out)
{
    FILE *f;
    uint64_t size, off = 0;
    int ost = gr_open_regular(path, &f, &size);
    if (ost) return ost;
    npy_head h;
    gr_tensor t = { 0 };
    int st = read_header(path, f, size, &h, &off);
    if (!st) st = check_array(path, &h, size - off, &t);
    size_t bytes = st ? 0 : (size_t)(size - off);
    if (!st && !(t.data = malloc(bytes ? bytes : 1)))
        st = gr_err(GRAFT_E_NOMEM, "%s: out of memory (%zu bytes)", path, bytes);
    if (!st && fread(t.data, 1, bytes, f) != bytes)
        st = gr_err(GRAFT_E_IO, "%s: read error (did the file shrink?)", path);
    fclose(f);
    if (st) free(t.data);
    else *out = t;
    return st;
}

int gr_npy_save(const char *path, const gr_tensor *t)
{
    const char *descr = dtype_descr(t->dtype);
    if (!descr)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: cannot save type %s", path,
                      gr_dtype_name(t->dtype));
    char h[512];
    int k = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->shape.rank; i++)
        k += snprintf(h + k, sizeof h - (size_t)k, "%lld%s", (long long)t->shape.d[i],
                      t->shape.rank == 1      ? ","
                      : i + 1 < t->shape.rank ? ", "
                                              : "");
    k += snprintf(h + k, sizeof h - (size_t)k, "), }");
    /* pad with spaces so that magic + header is a multiple of 64, ending in '\n' */
    while ((10 + k + 1) % 64) h[k++] = ' ';
    h[k++] = '\n';
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 0xff), (unsigned char)(k >> 8)
    };
    size_t bytes = (size_t)gr_numel(&t->shape) * gr_dtype_size(t->dtype);
    gr_wfile w; /* atomic: a failed write (a full disk) leaves the previous file as it was */
    int st = gr_wfile_open(&w, path);
    if (st) return st;
    gr_wfile_write(&w, pre, 10);
    gr_wfile_write(&w, h, (size_t)k);
    gr_wfile_write(&w, t->data, bytes);
    return gr_wfile_commit(&w);
}
