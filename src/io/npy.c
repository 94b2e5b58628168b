/* npy.c — NumPy .npy files (format versions 1-3, little-endian, C order). */
#include "io.h"

#include <errno.h>
#include <string.h>

static int descr_dtype(const char *d)
{
    static const struct { const char *descr; int dtype; } map[] = {
        {"<f4", GR_F32}, {"<f8", GR_F64}, {"<i8", GR_I64}, {"<i4", GR_I32},
        {"|u1", GR_U8}, {"|i1", GR_I8}, {"|b1", GR_BOOL}, {"<u1", GR_U8}, {"<i1", GR_I8},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i].descr, d) == 0) return map[i].dtype;
    return 0;
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

/* Parses the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
static int parse_header(const char *path, const char *h, gr_tensor *t)
{
    const char *p = strstr(h, "'descr'");
    char descr[8] = {0};
    if (!p || sscanf(p, "'descr' : '%7[^']'", descr) != 1) {
        if (!p || sscanf(p, "'descr': '%7[^']'", descr) != 1)
            return gr_err(GRAFT_E_FORMAT, "%s: .npy header has no descr", path);
    }
    t->dtype = (gr_dtype)descr_dtype(descr);
    if (!t->dtype) return gr_err(GRAFT_E_UNSUPPORTED, "%s: .npy element type '%s' is not supported", path, descr);
    p = strstr(h, "'fortran_order'");
    if (!p || !strchr(p, ':')) return gr_err(GRAFT_E_FORMAT, "%s: .npy header has no fortran_order", path);
    p = strchr(p, ':') + 1;
    while (*p == ' ') p++;
    if (strncmp(p, "False", 5) != 0)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: Fortran-ordered .npy arrays are not supported", path);
    p = strstr(h, "'shape'");
    if (!p || !(p = strchr(p, '('))) return gr_err(GRAFT_E_FORMAT, "%s: .npy header has no shape", path);
    p++;
    t->shape.rank = 0;
    while (1) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        errno = 0;
        long long d = strtoll(p, &end, 10);
        if (end == p || errno || d < 0) return gr_err(GRAFT_E_FORMAT, "%s: bad .npy shape", path);
        if (t->shape.rank == GR_MAXDIM)
            return gr_err(GRAFT_E_UNSUPPORTED, "%s: rank above %d is not supported", path, GR_MAXDIM);
        t->shape.d[t->shape.rank++] = d;
        p = end;
        while (*p == 'L') p++;
    }
    return GRAFT_OK;
}

int gr_npy_load(const char *path, gr_tensor *out)
{
    unsigned char *buf;
    size_t n;
    int st = gr_read_file(path, &buf, &n);
    if (st) return st;
    gr_tensor t = {0};
    size_t hlen, off;
    if (n < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        st = gr_err(GRAFT_E_FORMAT, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    if (buf[6] == 1) { hlen = buf[8] | (size_t)buf[9] << 8; off = 10; }
    else if (buf[6] == 2 || buf[6] == 3) {
        if (n < 12) { st = gr_err(GRAFT_E_FORMAT, "%s: truncated .npy header", path); goto done; }
        hlen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        off = 12;
    } else {
        st = gr_err(GRAFT_E_UNSUPPORTED, "%s: .npy format version %d is not supported", path, buf[6]);
        goto done;
    }
    if (hlen > n - off) { st = gr_err(GRAFT_E_FORMAT, "%s: truncated .npy header", path); goto done; }
    char *h = malloc(hlen + 1);
    if (!h) { st = GRAFT_E_NOMEM; goto done; }
    memcpy(h, buf + off, hlen);
    h[hlen] = 0;
    st = parse_header(path, h, &t);
    free(h);
    if (st) goto done;
    int64_t count = gr_numel_checked(&t.shape, gr_dtype_size(t.dtype));
    size_t bytes = (size_t)count * gr_dtype_size(t.dtype);
    if (count < 0 || bytes != n - off - hlen) {
        st = gr_err(GRAFT_E_FORMAT, "%s: .npy data has %zu bytes, the header's shape needs %zu", path,
                    n - off - hlen, bytes);
        goto done;
    }
    t.data = malloc(bytes ? bytes : 1);
    if (!t.data) { st = gr_err(GRAFT_E_NOMEM, "%s: out of memory", path); goto done; }
    memcpy(t.data, buf + off + hlen, bytes);
    *out = t;
done:
    free(buf);
    return st;
}

int gr_npy_save(const char *path, const gr_tensor *t)
{
    const char *descr = dtype_descr(t->dtype);
    if (!descr) return gr_err(GRAFT_E_UNSUPPORTED, "%s: cannot save type %s", path, gr_dtype_name(t->dtype));
    char h[512];
    int k = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->shape.rank; i++)
        k += snprintf(h + k, sizeof h - (size_t)k, "%lld%s", (long long)t->shape.d[i],
                      t->shape.rank == 1 ? "," : i + 1 < t->shape.rank ? ", " : "");
    k += snprintf(h + k, sizeof h - (size_t)k, "), }");
    /* pad with spaces so that magic + header is a multiple of 64, ending in '\n' */
    while ((10 + k + 1) % 64) h[k++] = ' ';
    h[k++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return gr_err(GRAFT_E_IO, "%s: cannot write: %s", path, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 0xff), (unsigned char)(k >> 8)};
    size_t bytes = (size_t)gr_numel(&t->shape) * gr_dtype_size(t->dtype);
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, (size_t)k, f) == (size_t)k &&
             fwrite(t->data, 1, bytes, f) == bytes;
    ok &= fclose(f) == 0;
    return ok ? GRAFT_OK : gr_err(GRAFT_E_IO, "%s: write failed (disk full?)", path);
}
