/* safetensors.c — checkpoints in the safetensors format (8-byte little-endian header length,
 * JSON header, raw little-endian data). The loader trusts nothing: a checkpoint cut short by a
 * crash, a flipped bit or a hand-edited header must give an error naming the file and the
 * tensor, because training falls back to the previous checkpoint on any error. */
#define _FILE_OFFSET_BITS 64
#define _GNU_SOURCE
#include "io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes tensors' memory as-is; safetensors data is little-endian"
#endif

#define MAX_HEADER      100000000 /* as the reference implementation: 100 MB */
/* cJSON takes about 100 bytes per JSON value (node and key), so a 100 MB header of tiny entries
 * would take 1.8 GB (measured): the values are counted before parsing and at most 1M are
 * parsed (about 100 MB). A tensor takes about 10 (graft's checkpoints: 4 tensors per
 * parameter), so that is 100k tensors, far above any real file; long strings (a head's class
 * names) cost nothing extra. */
#define MAX_JSON_VALUES 1000000
#define CRC_KEY         "graft_crc32"
#define META_KEY        "__metadata__"

/* ---- CRC-32 (zlib's polynomial), slice-by-8; the tables are built per call (about 2 us) so
 * that there is no shared state. ---- */

uint32_t gr_crc32(uint32_t crc, const void *data, size_t n)
{
    uint32_t t[8][256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[0][i] = c;
    }
    for (int s = 1; s < 8; s++)
        for (int i = 0; i < 256; i++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    const unsigned char *p = data;
    crc = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    while (n--) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- dtypes ---- */

static const struct {
    const char *name;
    int dtype;
} dtypes[] = {
    { "F32", GR_F32 }, { "F64", GR_F64 }, { "I64", GR_I64 },   { "I32", GR_I32 },
    { "U8", GR_U8 },   { "I8", GR_I8 },   { "BOOL", GR_BOOL },
};
/* Valid in the format but without a graft dtype. */
static const char *const foreign[] = { "F16", "BF16", "I16",     "U16",
                                       "U32", "U64",  "F8_E4M3", "F8_E5M2" };

static const char *st_dtype_name(int dt)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].dtype == dt) return dtypes[i].name;
    return NULL;
}

static int st_dtype(const char *path, const char *tensor, const char *s, int *dt)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strcmp(dtypes[i].name, s) == 0) return *dt = dtypes[i].dtype, GRAFT_OK;
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++)
        if (strcmp(foreign[i], s) == 0)
            return gr_err(GRAFT_E_UNSUPPORTED,
                          "%s: tensor '%s': dtype %s is not supported by graft", path, tensor, s);
    return gr_err(GRAFT_E_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", path, tensor, s);
}

/* ---- save ---- */

static int check_entry(const char *path, const gr_st_entry *e, int i)
{
    if (!e->name || !e->name[0]) return gr_err(GRAFT_E_ARG, "%s: entry %d has no name", path, i);
    if (strcmp(e->name, META_KEY) == 0)
        return gr_err(GRAFT_E_ARG, "%s: '%s' is reserved and cannot name a tensor", path, META_KEY);
    if (!st_dtype_name(e->dtype))
        return gr_err(GRAFT_E_ARG, "%s: tensor '%s': dtype %d cannot be stored", path, e->name,
                      e->dtype);
    if (e->shape.rank < 0 || e->shape.rank > GR_MAXDIM)
        return gr_err(GRAFT_E_ARG, "%s: tensor '%s': rank %d", path, e->name, e->shape.rank);
    for (int k = 0; k < e->shape.rank; k++)
        if (e->shape.d[k] < 0)
            return gr_err(GRAFT_E_ARG, "%s: tensor '%s': negative dim", path, e->name);
    int64_t n = gr_numel_checked(&e->shape, gr_dtype_size(e->dtype));
    if (n < 0 || (uint64_t)n * gr_dtype_size(e->dtype) != e->bytes)
        return gr_err(GRAFT_E_ARG, "%s: tensor '%s': %zu bytes do not match its shape and dtype",
                      path, e->name, e->bytes);
    if (e->bytes && !e->data)
        return gr_err(GRAFT_E_ARG, "%s: tensor '%s' has no data", path, e->name);
    return GRAFT_OK;
}

/* The JSON header, or NULL with the error set. */
static char *make_header(const char *path, const gr_st_entry *en, int n, const gr_meta *meta,
                         int nmeta, uint32_t crc)
{
    cJSON *root = cJSON_CreateObject(), *md = cJSON_CreateObject();
    int ok = root && md && cJSON_AddItemToObject(root, META_KEY, md);
    if (!ok) cJSON_Delete(md);
    char num[16];
    snprintf(num, sizeof num, "%" PRIu32, crc);
    for (int i = 0; ok && i < nmeta; i++)
        ok = cJSON_AddStringToObject(md, meta[i].key, meta[i].value) != NULL;
    ok = ok && cJSON_AddStringToObject(md, CRC_KEY, num);
    uint64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        cJSON *t = cJSON_AddObjectToObject(root, en[i].name);
        double dims[GR_MAXDIM];
        for (int k = 0; k < en[i].shape.rank; k++) dims[k] = (double)en[i].shape.d[k];
        double offs[2] = { (double)off, (double)(off + en[i].bytes) };
        off += en[i].bytes;
        ok = t && cJSON_AddStringToObject(t, "dtype", st_dtype_name(en[i].dtype)) &&
             cJSON_AddItemToObject(t, "shape", cJSON_CreateDoubleArray(dims, en[i].shape.rank)) &&
             cJSON_AddItemToObject(t, "data_offsets", cJSON_CreateDoubleArray(offs, 2));
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) gr_err(GRAFT_E_NOMEM, "%s: out of memory building the header", path);
    return s;
}

int gr_st_save(const char *path, const gr_st_entry *entries, int n, const gr_meta *meta, int nmeta)
{
    if (n < 0 || nmeta < 0 || (n && !entries) || (nmeta && !meta))
        return gr_err(GRAFT_E_ARG, "%s: bad arguments", path);
    uint32_t crc = 0;
    for (int i = 0; i < n; i++) {
        int st = check_entry(path, &entries[i], i);
        if (st) return st;
        for (int j = 0; j < i; j++)
            if (strcmp(entries[i].name, entries[j].name) == 0)
                return gr_err(GRAFT_E_ARG, "%s: two tensors are named '%s'", path, entries[i].name);
        crc = gr_crc32(crc, entries[i].data, entries[i].bytes);
    }
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value)
            return gr_err(GRAFT_E_ARG, "%s: metadata entry %d is NULL", path, i);
        if (strcmp(meta[i].key, CRC_KEY) == 0)
            return gr_err(GRAFT_E_ARG, "%s: metadata key '%s' is reserved", path, CRC_KEY);
    }
    char *h = make_header(path, entries, n, meta, nmeta, crc);
    if (!h) return GRAFT_E_NOMEM;
    size_t hlen = strlen(h), padded = (hlen + 7) & ~(size_t)7; /* data 8-byte aligned */
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)padded >> (8 * k));
    gr_wfile w;
    int st = gr_wfile_open(&w, path);
    if (!st) {
        gr_wfile_write(&w, len8, 8);
        gr_wfile_write(&w, h, hlen);
        gr_wfile_write(&w, "        ", padded - hlen);
        for (int i = 0; i < n; i++) gr_wfile_write(&w, entries[i].data, entries[i].bytes);
        st = gr_wfile_commit(&w);
    }
    cJSON_free(h);
    return st;
}

/* ---- load ---- */

typedef struct parsed {
    gr_st_entry e;
    uint64_t begin, end;
    int index; /* position in the header, to keep sorting deterministic */
} parsed;

/* A JSON number that is an integer in [0, 2^53]. */
static int json_u64(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return -1;
    *v = (uint64_t)d;
    return 0;
}

static int parse_entry(const char *path, const cJSON *j, parsed *p)
{
    const char *name = j->string;
    if (!cJSON_IsObject(j))
        return gr_err(GRAFT_E_FORMAT, "%s: tensor '%s': not a JSON object", path, name);
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL, *c;
    cJSON_ArrayForEach(c, j)
    {
        if (strcmp(c->string, "dtype") == 0) dt = c;
        else if (strcmp(c->string, "shape") == 0) shape = c;
        else if (strcmp(c->string, "data_offsets") == 0) offs = c;
        else
            return gr_err(GRAFT_E_FORMAT, "%s: tensor '%s': unexpected field \"%s\"", path, name,
                          c->string);
    }
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        return gr_err(GRAFT_E_FORMAT,
                      "%s: tensor '%s': needs \"dtype\" (a string), \"shape\" and "
                      "\"data_offsets\" (arrays)",
                      path, name);
    int st = st_dtype(path, name, dt->valuestring, &p->e.dtype);
    if (st) return st;
    int rank = cJSON_GetArraySize(shape);
    if (rank > GR_MAXDIM)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: tensor '%s': rank %d exceeds graft's maximum of %d",
                      path, name, rank, GR_MAXDIM);
    p->e.shape.rank = rank;
    int k = 0;
    cJSON_ArrayForEach(c, shape)
    {
        uint64_t d;
        if (json_u64(c, &d))
            return gr_err(GRAFT_E_FORMAT,
                          "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name,
                          k);
        p->e.shape.d[k++] = (int64_t)d;
    }
    if (cJSON_GetArraySize(offs) != 2 || json_u64(cJSON_GetArrayItem(offs, 0), &p->begin) ||
        json_u64(cJSON_GetArrayItem(offs, 1), &p->end) || p->begin > p->end)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: tensor '%s': data_offsets must be [begin, end] with "
                      "0 <= begin <= end",
                      path, name);
    size_t es = gr_dtype_size(p->e.dtype);
    int64_t n = gr_numel_checked(&p->e.shape, es);
    if (n < 0)
        return gr_err(GRAFT_E_FORMAT, "%s: tensor '%s': shape %s of %s: its size overflows 64 bits",
                      path, name, gr_shape_str(&p->e.shape, (char[160]){ 0 }, 160),
                      dt->valuestring);
    if ((uint64_t)n * es != p->end - p->begin)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: tensor '%s': shape %s of %s needs %" PRId64 " bytes but "
                      "data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64,
                      path, name, gr_shape_str(&p->e.shape, (char[160]){ 0 }, 160), dt->valuestring,
                      n * (int64_t)es, p->begin, p->end, p->end - p->begin);
    p->e.bytes = (size_t)(p->end - p->begin);
    return GRAFT_OK;
}

static int meta_from_json(const char *path, const cJSON *j, gr_arena *a, gr_meta **meta, int *nmeta,
                          const char **crc)
{
    if (!cJSON_IsObject(j))
        return gr_err(GRAFT_E_FORMAT, "%s: %s is not a JSON object", path, META_KEY);
    int n = cJSON_GetArraySize(j), k = 0;
    gr_meta *m = gr_arena_alloc(a, (size_t)(n + 1) * sizeof *m);
    if (!m) return gr_err_prefix(GRAFT_E_NOMEM, "%s", path);
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        if (!cJSON_IsString(c))
            return gr_err(GRAFT_E_FORMAT, "%s: %s[\"%s\"] is not a string", path, META_KEY,
                          c->string);
        if (strcmp(c->string, CRC_KEY) == 0) {
            *crc = c->valuestring;
            continue;
        }
        m[k].key = gr_arena_strdup(a, c->string);
        m[k].value = gr_arena_strdup(a, c->valuestring);
        if (!m[k].key || !m[k].value) return gr_err_prefix(GRAFT_E_NOMEM, "%s", path);
        k++;
    }
    *meta = m;
    *nmeta = k;
    return GRAFT_OK;
}

static int by_offset(const void *x, const void *y)
{
    const parsed *a = x, *b = y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return a->index - b->index;
}

static int by_name(const void *x, const void *y)
{
    return strcmp((*(const parsed *const *)x)->e.name, (*(const parsed *const *)y)->e.name);
}

/* The data section must be covered exactly: no holes, no overlaps, nothing past its end. */
static int check_layout(const char *path, parsed *p, int n, uint64_t data_size)
{
    qsort(p, (size_t)n, sizeof *p, by_offset);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (p[i].end > data_size)
            return gr_err(GRAFT_E_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] go past the "
                          "end of the data section (%" PRIu64 " bytes): the file is truncated",
                          path, p[i].e.name, p[i].begin, p[i].end, data_size);
        if (p[i].begin < at)
            return gr_err(GRAFT_E_FORMAT,
                          "%s: tensor '%s' (bytes %" PRIu64 "..%" PRIu64 ") overlaps tensor '%s'",
                          path, p[i].e.name, p[i].begin, p[i].end, p[i - 1].e.name);
        if (p[i].begin > at)
            return gr_err(GRAFT_E_FORMAT,
                          "%s: tensor '%s' starts at byte %" PRIu64 " of the data but the "
                          "previous tensor ends at %" PRIu64 " (a hole)",
                          path, p[i].e.name, p[i].begin, at);
        at = p[i].end;
    }
    if (at != data_size)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: %" PRIu64 " bytes after the last tensor's data (the data section "
                      "has %" PRIu64 ", the tensors cover %" PRIu64 ")",
                      path, data_size - at, data_size, at);
    /* after the layout: a tensor cut short is a truncated file, whatever its size */
    for (int i = 0; i < n; i++) {
        int st = gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)p[i].e.bytes,
                                "%s: tensor '%s' needs %zu bytes", path, p[i].e.name, p[i].e.bytes);
        if (st) return st;
    }
    if (n < 2) return GRAFT_OK;
    parsed **order = malloc((size_t)n * sizeof *order);
    if (!order) return gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) order[i] = &p[i];
    qsort(order, (size_t)n, sizeof *order, by_name);
    int st = GRAFT_OK;
    for (int i = 1; i < n && !st; i++)
        if (strcmp(order[i]->e.name, order[i - 1]->e.name) == 0)
            st = gr_err(GRAFT_E_FORMAT, "%s: tensor '%s' is defined twice", path, order[i]->e.name);
    free(order);
    return st;
}

/* JSON values in the header text, over-estimated: one plus every ',', '[' and '{' outside
 * strings. */
static size_t json_values(const char *h, size_t n)
{
    size_t count = 1;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        if (in_str) {
            if (h[i] == '\\') i++;
            else if (h[i] == '"') in_str = 0;
        } else if (h[i] == '"') {
            in_str = 1;
        } else {
            count += h[i] == ',' || h[i] == '[' || h[i] == '{';
        }
    }
    return count;
}

/* Parses the header text into entries (names in the arena) and metadata. */
static int parse_header(const char *path, const char *h, size_t hlen, uint64_t data_size,
                        gr_arena *a, parsed **out, int *n, gr_meta **meta, int *nmeta,
                        const char **crc_text, cJSON **root_out)
{
    if (hlen == 0 || h[0] != '{')
        return gr_err(GRAFT_E_FORMAT,
                      "%s: the header does not start with '{': not a safetensors file", path);
    size_t values = json_values(h, hlen);
    if (values > MAX_JSON_VALUES)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: the header holds about %zu JSON values, above the %d graft parses "
                      "(damaged?)",
                      path, values, MAX_JSON_VALUES);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= h ? (size_t)(end - h) : 0;
        return gr_err(GRAFT_E_FORMAT,
                      "%s: the header is not valid JSON (error near byte %zu of the file; the "
                      "header is bytes 8 to %zu)",
                      path, 8 + at, 8 + hlen);
    }
    *root_out = root;
    for (const char *q = end; q < h + hlen; q++)
        if (*q != ' ' && *q != '\n' && *q != '\t' && *q != '\r')
            return gr_err(GRAFT_E_FORMAT, "%s: text after the header's JSON object (byte %zu)",
                          path, 8 + (size_t)(q - h));
    if (!cJSON_IsObject(root))
        return gr_err(GRAFT_E_FORMAT, "%s: the header is not a JSON object", path);
    int cnt = cJSON_GetArraySize(root);
    parsed *p = gr_calloc((size_t)cnt + 1, sizeof *p);
    if (!p) return GRAFT_E_NOMEM;
    *out = p;
    *n = 0;
    *meta = NULL;
    *nmeta = 0;
    const cJSON *c;
    int st = GRAFT_OK;
    cJSON_ArrayForEach(c, root)
    {
        if (strcmp(c->string, META_KEY) == 0) {
            if (*meta) return gr_err(GRAFT_E_FORMAT, "%s: %s appears twice", path, META_KEY);
            st = meta_from_json(path, c, a, meta, nmeta, crc_text);
        } else {
            parsed *e = &p[*n];
            e->index = *n;
            st = parse_entry(path, c, e);
            if (!st && !(e->e.name = gr_arena_strdup(a, c->string)))
                st = gr_err_prefix(GRAFT_E_NOMEM, "%s", path);
            (*n)++;
        }
        if (st) return st;
    }
    return check_layout(path, p, *n, data_size);
}

static int read_data(const char *path, FILE *f, gr_arena *a, parsed *p, int n, const char *crc_text)
{
    uint32_t crc = 0;
    for (int i = 0; i < n; i++) {
        p[i].e.data = gr_arena_alloc(a, p[i].e.bytes ? p[i].e.bytes : 1);
        if (!p[i].e.data) return gr_err_prefix(GRAFT_E_NOMEM, "%s: tensor '%s'", path, p[i].e.name);
        if (fread(p[i].e.data, 1, p[i].e.bytes, f) != p[i].e.bytes)
            return gr_err(GRAFT_E_IO,
                          "%s: tensor '%s': read error (the file shrank while reading?)", path,
                          p[i].e.name);
        crc = gr_crc32(crc, p[i].e.data, p[i].e.bytes);
    }
    if (!crc_text) return GRAFT_OK;
    char *end;
    errno = 0;
    unsigned long long want = strtoull(crc_text, &end, 10);
    if (errno || end == crc_text || *end || want > UINT32_MAX)
        return gr_err(GRAFT_E_FORMAT, "%s: %s[\"%s\"] = \"%s\" is not a CRC-32", path, META_KEY,
                      CRC_KEY, crc_text);
    if (want != crc)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: the data is corrupt: its CRC-32 is %" PRIu32 " but the header "
                      "says %llu",
                      path, crc, want);
    return GRAFT_OK;
}

/* The 8-byte length and the header text (at most MAX_HEADER bytes and never more than the file
 * holds, checked before the header is allocated); *hlen gets its length. */
static int read_header_text(const char *path, FILE *f, uint64_t size, char **text, uint64_t *hlen)
{
    unsigned char len8[8];
    if (size < 8 || fread(len8, 1, 8, f) != 8)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: %" PRIu64 " bytes, too short for a safetensors file (truncated?)", path,
                      size);
    uint64_t n = 0;
    for (int k = 0; k < 8; k++) n |= (uint64_t)len8[k] << (8 * k);
    if (n > size - 8)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: the header length %" PRIu64 " exceeds the %" PRIu64 " bytes after it: "
                      "the file is truncated or not a safetensors file",
                      path, n, size - 8);
    if (n > MAX_HEADER)
        return gr_err(GRAFT_E_FORMAT, "%s: header of %" PRIu64 " bytes (the limit is %d)", path, n,
                      MAX_HEADER);
    char *h = malloc(n + 1);
    if (!h) return gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    if (fread(h, 1, n, f) != n) {
        free(h);
        return gr_err(GRAFT_E_IO, "%s: read error", path);
    }
    h[n] = 0;
    *text = h;
    *hlen = n;
    return GRAFT_OK;
}

/* The entries without their data, for the caller's check, then with it. */
static int entries_of(const char *path, gr_arena *arena, const parsed *p, int cnt,
                      gr_st_entry **out)
{
    gr_st_entry *e = gr_arena_alloc(arena, (size_t)(cnt + 1) * sizeof *e);
    if (!e) return gr_err_prefix(GRAFT_E_NOMEM, "%s", path);
    for (int i = 0; i < cnt; i++) e[i] = p[i].e;
    *out = e;
    return GRAFT_OK;
}

int gr_st_load_checked(const char *path, gr_arena *arena, gr_st_check_fn check, void *ctx,
                       gr_st_entry **entries, int *n, gr_meta **meta, int *nmeta)
{
    FILE *f = fopen(path, "rb");
    if (!f) return gr_err(GRAFT_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return gr_err(GRAFT_E_IO, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)sb.st_size, hlen = 0;
    char *h = NULL;
    parsed *p = NULL;
    cJSON *root = NULL;
    const char *crc_text = NULL;
    gr_st_entry *e = NULL;
    int cnt = 0, st = read_header_text(path, f, size, &h, &hlen);
    if (!st)
        st = parse_header(path, h, hlen, size - 8 - hlen, arena, &p, &cnt, meta, nmeta, &crc_text,
                          &root);
    if (!st) st = entries_of(path, arena, p, cnt, &e);
    if (!st && check) st = check(ctx, e, cnt, *meta, *nmeta);
    if (!st) st = read_data(path, f, arena, p, cnt, crc_text);
    if (!st) {
        for (int i = 0; i < cnt; i++) e[i] = p[i].e;
        *entries = e;
        *n = cnt;
    }
    cJSON_Delete(root);
    free(p);
    free(h);
    fclose(f);
    return st;
}

int gr_st_load(const char *path, gr_arena *arena, gr_st_entry **entries, int *n, gr_meta **meta,
               int *nmeta)
{
    return gr_st_load_checked(path, arena, NULL, NULL, entries, n, meta, nmeta);
}
