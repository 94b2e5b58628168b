/* test_io_limits.c — every size a file states is checked before anything is allocated. Each
 * case is a file written here byte by byte (or a real one patched) and the expected outcome: a
 * non-zero status that is never GRAFT_E_NOMEM or GRAFT_E_INTERNAL (the CLI's exit 3), a message
 * naming the file and the reason, no crash (the suite also runs under ASan/UBSan), and where a
 * file claims much more than it holds, peak memory that does not grow by what it claims:
 *  - .npy: a 1 GB claim over 16 bytes, overflowing shapes, header lengths past the file or
 *    above the bound, bad dtypes, Fortran order, missing and unknown keys, garbage;
 *  - safetensors: a 2^63 header length, a 150 MB header, offsets past the data, overflowing
 *    shapes, bad JSON (nested 10000 deep; more values than the parse may hold);
 *  - heads: a real kNN head (graft_head_fit + graft_head_save) patched to claim 2^31 classes,
 *    k = 2^31, k above its examples, 10^6 classes with 2 class names, a label outside the
 *    classes; MLP and NCM weights that do not fit the class count;
 *  - checkpoints: truncated, and a 256 MB tensor of another model refused from its header;
 *  - GRAFT_LIMIT_TENSOR_BYTES, _CLASSES and _K: lowered, the same file is refused naming the
 *    limit; restored, it loads.
 *
 *   test_io_limits [OUT_DIR] */
#define _GNU_SOURCE
#include "harness.h"
#include "io/io.h"
#include "train/train.h"

#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[512];

static char *pathf(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

static void die(const char *what)
{
    fprintf(stderr, "test_io_limits: %s: %s\n", what, graft_last_error());
    exit(2);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, n, f) == n;
    ok &= f && fclose(f) == 0;
    if (!ok) die(path);
}

/* Peak resident memory in MB: a refusal must not have allocated what the file claims. */
static double peak_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* st must be an error other than NOMEM/INTERNAL (want: that one, 0: any), whose message holds
 * every given piece (NULL-terminated). */
static void expect_refused(int st, int want, const char *what, ...)
{
    const char *msg = graft_last_error();
    if (getenv("GRAFT_TEST_VERBOSE"))
        printf("%-40s %-12s %s\n", what, graft_status_name((graft_status)st), msg);
    CHECK(st != GRAFT_OK, "%s: accepted", what);
    if (st == GRAFT_OK) return; /* the message is an old one */
    CHECK(st != GRAFT_E_NOMEM && st != GRAFT_E_INTERNAL, "%s: status %s (%s)", what,
          graft_status_name((graft_status)st), msg);
    if (want)
        CHECK(st == want, "%s: status %s, expected %s (%s)", what,
              graft_status_name((graft_status)st), graft_status_name((graft_status)want), msg);
    va_list ap;
    va_start(ap, what);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        CHECK(strstr(msg, s) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, s);
    va_end(ap);
}

/* ==== .npy ================================================================================ */

/* A .npy file: version, header text (its length as given: hlen < 0 writes strlen(header)), and
 * n data bytes. */
static void npy_file(const char *path, int version, long long hlen, const char *header, size_t n)
{
    size_t hl = strlen(header), pre = version == 1 ? 10 : 12;
    unsigned long long len = hlen < 0 ? hl : (unsigned long long)hlen;
    unsigned char *b = calloc(1, pre + hl + n + 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)version;
    for (size_t k = 0; k < pre - 8; k++) b[8 + k] = (unsigned char)(len >> (8 * k));
    memcpy(b + pre, header, hl);
    for (size_t i = 0; i < n; i++) b[pre + hl + i] = (unsigned char)i;
    write_bytes(path, b, pre + hl + n);
    free(b);
}

static int npy_try(const char *path)
{
    graft_tensor *t = NULL;
    int st = graft_npy_load(path, &t);
    graft_tensor_free(t);
    return st;
}

typedef struct npy_case {
    const char *name, *header;
    size_t data;
    int status;
    const char *says;
} npy_case;

#define HDR(dict)                                                                                  \
    "{" dict "}"                                                                                   \
    "          \n"
static const npy_case npy_cases[] = {
    { "shape overflow",
      HDR("'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, "
          "4611686018427387904), "),
      16, GRAFT_E_FORMAT, "overflows" },
    { "dim above 2^63",
      HDR("'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), "), 16,
      GRAFT_E_FORMAT, "above 2^63" },
    { "negative dim", HDR("'descr': '<f4', 'fortran_order': False, 'shape': (-4,), "), 16,
      GRAFT_E_FORMAT, "not a non-negative integer" },
    { "unicode dtype", HDR("'descr': '<U10', 'fortran_order': False, 'shape': (1,), "), 40,
      GRAFT_E_UNSUPPORTED, "'<U10'" },
    { "big-endian", HDR("'descr': '>f4', 'fortran_order': False, 'shape': (4,), "), 16,
      GRAFT_E_UNSUPPORTED, "big-endian" },
    { "empty dtype", HDR("'descr': '', 'fortran_order': False, 'shape': (4,), "), 16,
      GRAFT_E_UNSUPPORTED, "type ''" },
    { "binary dtype", HDR("'descr': '<f\x01\xff', 'fortran_order': False, 'shape': (4,), "), 16,
      GRAFT_E_FORMAT, "non-ASCII" },
    { "long dtype",
      HDR("'descr': '<f4444444444444444444444444444444444444444', 'fortran_order': False, 'shape': "
          "(4,), "),
      16, GRAFT_E_FORMAT, "too long" },
    { "structured", HDR("'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), "), 16,
      GRAFT_E_UNSUPPORTED, "structured" },
    { "fortran", HDR("'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), "), 16,
      GRAFT_E_UNSUPPORTED, "Fortran-ordered" },
    { "fortran garbage", HDR("'descr': '<f4', 'fortran_order': Maybe, 'shape': (4,), "), 16,
      GRAFT_E_FORMAT, "True or False" },
    { "no shape", HDR("'descr': '<f4', 'fortran_order': False, "), 16, GRAFT_E_FORMAT,
      "no 'shape'" },
    { "no descr", HDR("'fortran_order': False, 'shape': (4,)"), 16, GRAFT_E_FORMAT, "no 'descr'" },
    { "unknown key", HDR("'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1"), 16,
      GRAFT_E_FORMAT, "unexpected key 'x'" },
    { "twice", HDR("'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)"), 16,
      GRAFT_E_FORMAT, "'descr' appears twice" },
    { "rank 9", HDR("'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1)"),
      1, GRAFT_E_UNSUPPORTED, "rank above 8" },
    { "shape not a tuple", HDR("'descr': '<f4', 'fortran_order': False, 'shape': [4]"), 16,
      GRAFT_E_FORMAT, "not a tuple" },
    { "shape no comma", HDR("'descr': '<f4', 'fortran_order': False, 'shape': (2 2)"), 16,
      GRAFT_E_FORMAT, "separated by ','" },
    { "garbage", "hello, world\n", 16, GRAFT_E_FORMAT, "does not start with '{'" },
    { "unterminated", "{'descr': '<f4", 0, GRAFT_E_FORMAT, "unterminated string" },
    { "no closing brace", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)  \n", 16,
      GRAFT_E_FORMAT, "no closing '}'" },
    { "text after", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} x\n", 16,
      GRAFT_E_FORMAT, "after the closing '}'" },
    { "data short", HDR("'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), "), 47,
      GRAFT_E_FORMAT, "data has 47 bytes" },
    { "data long", HDR("'descr': '<i4', 'fortran_order': False, 'shape': (3,), "), 13,
      GRAFT_E_FORMAT, "needs 12" },
};

static void test_npy_cases(void)
{
    char path[600];
    pathf(path, sizeof path, "bad.npy");
    for (size_t i = 0; i < sizeof npy_cases / sizeof *npy_cases; i++) {
        const npy_case *c = &npy_cases[i];
        npy_file(path, 1, -1, c->header, c->data);
        expect_refused(npy_try(path), c->status, c->name, path, c->says, NULL);
    }
    /* Fortran order is harmless where both orders give the same bytes */
    npy_file(path, 1, -1, HDR("'descr': '<i2', 'fortran_order': True, 'shape': (4,), "), 8);
    expect_refused(npy_try(path), GRAFT_E_UNSUPPORTED, "int16 refused by name", path, "'<i2'",
                   NULL);
    npy_file(path, 1, -1, HDR("\"descr\": \"|u1\", 'fortran_order': True, 'shape': (1, 4, 1), "),
             4);
    graft_tensor *t = NULL;
    int st = graft_npy_load(path, &t);
    CHECK(st == GRAFT_OK && t->rank == 3 && t->dims[1] == 4 && ((unsigned char *)t->data)[3] == 3,
          "a (1, 4, 1) Fortran array is C order too: %s", graft_last_error());
    graft_tensor_free(t);
}

static void test_npy_sizes(void)
{
    char path[600];
    pathf(path, sizeof path, "big.npy");
    /* 1 GiB claimed, 16 bytes present: refused from the header, nothing allocated */
    npy_file(path, 1, -1, HDR("'descr': '<f4', 'fortran_order': False, 'shape': (16384, 16384), "),
             16);
    double before = peak_mb();
    expect_refused(npy_try(path), GRAFT_E_FORMAT, "1 GiB over 16 bytes", path, "data has 16 bytes",
                   "1073741824", NULL);
    CHECK(peak_mb() - before < 100, "peak memory grew by %.0f MB refusing a 1 GiB claim",
          peak_mb() - before);
    /* header lengths: past the file (v1, v2), and above the bound although present (v3) */
    npy_file(path, 1, 0xffff, HDR("'descr': '<f4', 'fortran_order': False, 'shape': (4,), "), 16);
    expect_refused(npy_try(path), GRAFT_E_FORMAT, "v1 header past the file", path,
                   "truncated .npy header", NULL);
    npy_file(path, 2, 0xffffffffLL, HDR("'descr': '<f4', 'fortran_order': False, 'shape': (4,), "),
             16);
    before = peak_mb();
    expect_refused(npy_try(path), GRAFT_E_FORMAT, "v2 header of 4 GiB", path, "4294967295", NULL);
    CHECK(peak_mb() - before < 100, "peak memory grew by %.0f MB for a 4 GiB header",
          peak_mb() - before);
    char *pad = malloc(70001);
    snprintf(pad, 70001, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }");
    memset(pad + strlen(pad), ' ', 70000 - strlen(pad));
    pad[69999] = '\n', pad[70000] = 0;
    npy_file(path, 3, -1, pad, 16);
    expect_refused(npy_try(path), GRAFT_E_FORMAT, "v3 header of 70000 bytes", path,
                   "longer than the 65536", NULL);
    free(pad);
    npy_file(path, 4, -1, HDR("'descr': '<f4', 'fortran_order': False, 'shape': (4,), "), 16);
    expect_refused(npy_try(path), GRAFT_E_UNSUPPORTED, "version 4", path, "version 4", NULL);
    write_bytes(path, "\x93NUMP", 5);
    expect_refused(npy_try(path), GRAFT_E_FORMAT, "5 bytes", path, "not a .npy file", NULL);
}

/* The limit path: the same valid file refused below the limit, loaded at the default. */
static void test_npy_limit(void)
{
    char path[600];
    pathf(path, sizeof path, "ok.npy");
    int64_t dims[2] = { 64, 64 };
    graft_tensor *t, *u = NULL;
    if (graft_tensor_new(GRAFT_FLOAT, 2, dims, &t)) die("tensor");
    for (int i = 0; i < 4096; i++) ((float *)t->data)[i] = (float)i * 0.5f;
    if (graft_npy_save(path, t)) die(path);
    int64_t saved = graft_get_limit(GRAFT_LIMIT_TENSOR_BYTES);
    CHECK(graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, 16383) == GRAFT_OK, "%s", graft_last_error());
    expect_refused(npy_try(path), GRAFT_E_LIMIT, "npy below the limit", path, "16384 bytes",
                   "tensor-bytes = 16383", NULL);
    CHECK(graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, 16384) == GRAFT_OK, "%s", graft_last_error());
    CHECK(npy_try(path) == GRAFT_OK, "npy at the limit: %s", graft_last_error());
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, saved);
    int st = graft_npy_load(path, &u);
    CHECK(st == GRAFT_OK && u->rank == 2 && !memcmp(u->data, t->data, 4096 * sizeof(float)),
          "npy after restoring the limit: %s", graft_last_error());
    graft_tensor_free(t);
    graft_tensor_free(u);
}

/* ==== safetensors ========================================================================= */

/* A safetensors file: header length (hlen < 0: strlen(json)), the JSON, n data bytes. */
static void st_file(const char *path, long long hlen, const char *json, size_t n)
{
    size_t jl = strlen(json);
    unsigned long long len = hlen < 0 ? jl : (unsigned long long)hlen;
    unsigned char *b = calloc(1, 8 + jl + n + 1);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)(len >> (8 * k));
    memcpy(b + 8, json, jl);
    write_bytes(path, b, 8 + jl + n);
    free(b);
}

static int st_try(const char *path)
{
    gr_arena *a = gr_arena_new(1 << 16);
    gr_st_entry *e;
    gr_meta *m;
    int n, nm, st = gr_st_load(path, a, &e, &n, &m, &nm);
    gr_arena_free(a);
    return st;
}

static void test_safetensors(void)
{
    char path[600];
    pathf(path, sizeof path, "bad.safetensors");
    st_file(path, INT64_MAX, "{}", 0);
    expect_refused(st_try(path), GRAFT_E_FORMAT, "header length 2^63-1", path, "header length",
                   NULL);
    unsigned char len8[8] = { 0, 0, 0, 0, 0, 0, 0, 0x80 }; /* 2^63 exactly */
    write_bytes(path, len8, 8);
    expect_refused(st_try(path), GRAFT_E_FORMAT, "header length 2^63", path, "9223372036854775808",
                   NULL);
    /* a 150 MB header in a 200 MB (sparse) file: above the bound, refused before it is read */
    st_file(path, 150000000, "{", 0);
    if (truncate(path, 200000000)) die("truncate");
    double before = peak_mb();
    expect_refused(st_try(path), GRAFT_E_FORMAT, "150 MB header", path, "header of 150000000 bytes",
                   NULL);
    CHECK(peak_mb() - before < 100, "peak memory grew by %.0f MB for a 150 MB header",
          peak_mb() - before);
    unlink(path); /* sparse, but 200 MB to a copy or a backup */
    static const struct {
        const char *name, *json;
        size_t data;
        const char *says;
    } cases[] = {
        { "garbage", "{\"a\": [1, 2", 0, "not valid JSON" },
        { "past the data",
          "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8,
          "truncated" },
        { "size mismatch",
          "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 16]}}", 16,
          "needs 12 bytes" },
        { "overlap",
          "{\"w\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]}, \"v\": "
          "{\"dtype\": \"U8\", "
          "\"shape\": [8], \"data_offsets\": [4, 12]}}",
          12, "overlaps" },
        { "numel overflow",
          "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], "
          "\"data_offsets\": [0, 16]}}",
          16, "overflows 64 bits" },
        { "1 GiB claimed",
          "{\"w\": {\"dtype\": \"F32\", \"shape\": [268435456], \"data_offsets\": [0, "
          "1073741824]}}",
          16, "truncated" },
        { "bad dtype", "{\"w\": {\"dtype\": \"F33\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
          16, "unknown dtype" },
        { "negative dim",
          "{\"w\": {\"dtype\": \"F32\", \"shape\": [-4], \"data_offsets\": [0, 16]}}", 16,
          "shape[0] is not a non-negative integer" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        st_file(path, -1, cases[i].json, cases[i].data);
        before = peak_mb();
        expect_refused(st_try(path), GRAFT_E_FORMAT, cases[i].name, path, cases[i].says, NULL);
        CHECK(peak_mb() - before < 100, "%s: peak memory grew by %.0f MB", cases[i].name,
              peak_mb() - before);
    }
    char *deep = malloc(10002); /* nesting deep enough to overflow a recursive parser's stack */
    deep[0] = '{';
    for (int i = 1; i < 10001; i++) deep[i] = '[';
    deep[10001] = 0;
    st_file(path, -1, deep, 0);
    expect_refused(st_try(path), GRAFT_E_FORMAT, "nested 10000 deep", path, "not valid JSON", NULL);
    free(deep);
    /* a header of more tiny JSON values than the parse is allowed (cJSON: ~100 bytes each) */
    size_t nv = 1100000;
    char *many = malloc(2 * nv + 16);
    size_t at = (size_t)sprintf(many, "{\"a\": [");
    for (size_t i = 0; i < nv; i++) many[at++] = '0', many[at++] = ',';
    strcpy(many + at - 1, "]}");
    st_file(path, -1, many, 0);
    before = peak_mb();
    expect_refused(st_try(path), GRAFT_E_FORMAT, "1.1M JSON values", path, "JSON values", NULL);
    CHECK(peak_mb() - before < 50, "peak memory grew by %.0f MB refusing 1.1M JSON values",
          peak_mb() - before);
    free(many);
}

static void test_safetensors_limit(void)
{
    char path[600];
    pathf(path, sizeof path, "ok.safetensors");
    static float w[1024];
    gr_st_entry e = { "weights", GR_F32, gr_shape_make(1, (int64_t[]){ 1024 }), w, sizeof w };
    if (gr_st_save(path, &e, 1, NULL, 0)) die(path);
    int64_t saved = graft_get_limit(GRAFT_LIMIT_TENSOR_BYTES);
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, 4095);
    expect_refused(st_try(path), GRAFT_E_LIMIT, "safetensors below the limit", path, "'weights'",
                   "4096 bytes", "tensor-bytes = 4095", NULL);
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, saved);
    CHECK(st_try(path) == GRAFT_OK, "safetensors after restoring the limit: %s",
          graft_last_error());
}

/* ==== heads =============================================================================== */

#define NROW 8
static const char *origin2 = "{\"model\": \"m.onnx\", \"classes\": [\"cat\", \"dog\"]}";

/* A real head of kind fitted on 8 rows of 4 features, 2 classes, saved to name. */
static graft_head *make_head(const char *kind, int k, const char *origin, const char *path)
{
    int64_t dx[2] = { NROW, 4 }, dy[1] = { NROW };
    graft_tensor *X, *y;
    if (graft_tensor_new(GRAFT_FLOAT, 2, dx, &X) || graft_tensor_new(GRAFT_INT32, 1, dy, &y))
        die("tensor");
    for (int i = 0; i < NROW; i++) {
        ((int32_t *)y->data)[i] = i % 2;
        for (int j = 0; j < 4; j++)
            ((float *)X->data)[i * 4 + j] = (float)((i % 2 ? 1 : -1) * (j + 1) + 0.1 * i);
    }
    graft_fit_opts o;
    graft_fit_opts_init(&o);
    if (graft_head_kind_from_name(kind, &o.kind)) die(kind);
    if (k) o.k = k; /* 0: the default */
    o.hidden = 4, o.epochs = 2, o.seed = 1;
    graft_head *h;
    if (graft_head_fit(X, y, 2, &o, &h)) die(kind);
    if (origin && graft_head_set_origin(h, origin)) die("origin");
    if (graft_head_save(h, path)) die(path);
    graft_tensor_free(X);
    graft_tensor_free(y);
    return h;
}

#define NOLAB (-1000)

/* Copies head file src to dst with metadata key set to value (NULL: removed) and, when label is
 * not NOLAB, the first stored kNN label set to it: the file is rewritten by gr_st_save, so it is
 * a well-formed safetensors file (right CRC) whose head is what is wrong. */
static void patch(const char *src, const char *dst, const char *key, const char *value, int label)
{
    gr_arena *a = gr_arena_new(1 << 16);
    gr_st_entry *e;
    gr_meta *m, out[32];
    int n, nm, k = 0;
    if (gr_st_load(src, a, &e, &n, &m, &nm) || nm > 30) die(src);
    for (int i = 0; i < nm; i++)
        if (strcmp(m[i].key, key)) out[k++] = m[i];
    if (value) out[k++] = (gr_meta){ (char *)key, (char *)value };
    for (int i = 0; label != NOLAB && i < n; i++)
        if (!strcmp(e[i].name, "y")) ((int32_t *)e[i].data)[0] = label;
    if (gr_st_save(dst, e, n, out, k)) die(dst);
    gr_arena_free(a);
}

static int head_try(const char *path)
{
    graft_head *h = NULL;
    int st = graft_head_load(path, &h);
    graft_head_free(h);
    return st;
}

/* The metadata value of key in a safetensors file ("" when absent). */
static const char *meta_of(const char *path, const char *key, char *buf, size_t n)
{
    gr_arena *a = gr_arena_new(1 << 16);
    gr_st_entry *e;
    gr_meta *m;
    int ne, nm;
    buf[0] = 0;
    if (gr_st_load(path, a, &e, &ne, &m, &nm)) die(path);
    for (int i = 0; i < nm; i++)
        if (!strcmp(m[i].key, key)) snprintf(buf, n, "%s", m[i].value);
    gr_arena_free(a);
    return buf;
}

static const struct {
    const char *key, *value;
    int label, status;
    const char *says;
} knn_cases[] = {
    { "nclass", "2147483648", NOLAB, GRAFT_E_LIMIT,
      "'nclass' is 2147483648, above the limit classes" },
    { "nclass", "2147483647", NOLAB, GRAFT_E_LIMIT, "above the limit classes" },
    { "nclass", "99999999999999999999999", NOLAB, GRAFT_E_FORMAT, "'nclass'" },
    { "nclass", "1000000", NOLAB, GRAFT_E_FORMAT,
      "1000000 classes ('nclass') but its origin ('graft_origin') names 2" },
    { "nclass", "3", NOLAB, GRAFT_E_FORMAT, "names 2" },
    { "nclass", "1", NOLAB, GRAFT_E_FORMAT, "'nclass'" },
    { "k", "2147483648", NOLAB, GRAFT_E_LIMIT, "'k' is 2147483648, above the limit k" },
    { "k", "2147483647", NOLAB, GRAFT_E_LIMIT, "above the limit k" },
    { "k", "0", NOLAB, GRAFT_E_FORMAT, "'k'" },
    { "k", NULL, NOLAB, GRAFT_E_FORMAT, "'k' is missing" },
    { "n", "9", NOLAB, GRAFT_E_FORMAT, "tensor 'X'" },
    { "graft_origin", "{\"classes\": [\"cat\", 7]}", NOLAB, GRAFT_E_FORMAT,
      "not an array of names" },
    { "graft_origin", "{\"classes\": \"cat, dog\"}", NOLAB, GRAFT_E_FORMAT,
      "not an array of names" },
    { "nclass", "2", 2, GRAFT_E_FORMAT,
      "tensor 'y': label 2 of stored example 0 is outside [0, 2)" },
    { "nclass", "2", -1, GRAFT_E_FORMAT, "label -1" },
};

/* The real head patched one field at a time: each refused with the field named. */
static void test_knn_head(const char *good)
{
    char bad[600];
    pathf(bad, sizeof bad, "knn_bad.safetensors");
    CHECK(head_try(good) == GRAFT_OK, "the kNN head as saved: %s", graft_last_error());
    for (size_t i = 0; i < sizeof knn_cases / sizeof *knn_cases; i++) {
        patch(good, bad, knn_cases[i].key, knn_cases[i].value, knn_cases[i].label);
        char what[160];
        int n = snprintf(what, sizeof what, "kNN head with %s = %s", knn_cases[i].key,
                         knn_cases[i].value ? knn_cases[i].value : "(none)");
        if (knn_cases[i].label != NOLAB)
            snprintf(what + n, sizeof what - (size_t)n, ", label %d", knn_cases[i].label);
        expect_refused(head_try(bad), knn_cases[i].status, what, bad, knn_cases[i].says, NULL);
    }
    /* the classes and k limits on the valid head: refused below, loaded when restored */
    int64_t classes = graft_get_limit(GRAFT_LIMIT_CLASSES), k = graft_get_limit(GRAFT_LIMIT_K);
    graft_set_limit(GRAFT_LIMIT_CLASSES, 1);
    expect_refused(head_try(good), GRAFT_E_LIMIT, "classes limit 1", good, "classes = 1", NULL);
    graft_set_limit(GRAFT_LIMIT_CLASSES, classes);
    graft_set_limit(GRAFT_LIMIT_K, 2);
    expect_refused(head_try(good), GRAFT_E_LIMIT, "k limit 2", good, "'k' is 3", "k = 2", NULL);
    graft_set_limit(GRAFT_LIMIT_K, k);
    CHECK(head_try(good) == GRAFT_OK, "the kNN head with the limits restored: %s",
          graft_last_error());
}

static graft_tensor *queries(int64_t rows)
{
    int64_t dq[2] = { rows, 4 };
    graft_tensor *Q;
    if (graft_tensor_new(GRAFT_FLOAT, 2, dq, &Q)) die("tensor");
    for (int64_t i = 0; i < rows * 4; i++) ((float *)Q->data)[i] = (float)(i % 5) - 2.0f;
    return Q;
}

/* 10^6 classes without class names: at the limit, labels inside: a consistent file, which
 * predicts in bounded scratch (32 rows' probabilities are 128 MB; their votes in one block
 * would be 256 MB more). */
static void test_knn_many_classes(const char *good)
{
    char bad[600];
    pathf(bad, sizeof bad, "knn_big.safetensors");
    patch(good, bad, "graft_origin", NULL, NOLAB);
    patch(bad, bad, "nclass", "1000000", NOLAB);
    graft_head *big = NULL;
    graft_tensor *Q = queries(32), *P = NULL;
    int st = graft_head_load(bad, &big);
    CHECK(st == GRAFT_OK, "10^6 classes without names: %s", graft_last_error());
    double before = peak_mb();
    if (!st) {
        CHECK(graft_head_predict(big, Q, &P) == GRAFT_OK && P->dims[1] == 1000000,
              "predict with 10^6 classes: %s", graft_last_error());
        CHECK(peak_mb() - before < 250,
              "predicting 32 rows of 10^6 classes grew the peak by %.0f MB", peak_mb() - before);
    }
    graft_tensor_free(P), graft_tensor_free(Q);
    graft_head_free(big);
}

/* A head fitted with k above its rows is saved with the k it uses, min(k, n), so that it loads,
 * and predicts the same after loading. */
static void test_knn_k_above_rows(void)
{
    char path[600], buf[64];
    pathf(path, sizeof path, "knn20.safetensors");
    graft_head *h = make_head("knn", 20, NULL, path), *g = NULL;
    CHECK(!strcmp(meta_of(path, "k", buf, sizeof buf), "8"), "k saved as %s, expected 8 (its rows)",
          buf);
    graft_tensor *Q = queries(16), *p1 = NULL, *p2 = NULL;
    int st = graft_head_load(path, &g);
    CHECK(st == GRAFT_OK, "kNN head with k > n, saved: %s", graft_last_error());
    if (!st)
        CHECK(graft_head_predict(h, Q, &p1) == GRAFT_OK &&
                  graft_head_predict(g, Q, &p2) == GRAFT_OK &&
                  !memcmp(p1->data, p2->data, 32 * sizeof(float)),
              "k > n: predictions changed by save/load");
    graft_tensor_free(Q), graft_tensor_free(p1), graft_tensor_free(p2);
    graft_head_free(h), graft_head_free(g);
}

/* A head file with k above its examples (written before save stored min(k, n)) still loads
 * and predicts as with k = n, as predict always did. */
static void test_knn_old_k(const char *good)
{
    char old[600], eight[600];
    pathf(old, sizeof old, "knn_old_k.safetensors");
    pathf(eight, sizeof eight, "knn_k8.safetensors");
    patch(good, old, "k", "9", NOLAB);
    patch(good, eight, "k", "8", NOLAB);
    graft_head *h = NULL, *g = NULL;
    graft_tensor *Q = queries(16), *p1 = NULL, *p2 = NULL;
    int st = graft_head_load(eight, &h);
    if (!st) st = graft_head_load(old, &g);
    CHECK(st == GRAFT_OK, "a kNN head with k = 9 over 8 examples must load: %s",
          graft_last_error());
    if (!st)
        CHECK(graft_head_predict(h, Q, &p1) == GRAFT_OK &&
                  graft_head_predict(g, Q, &p2) == GRAFT_OK &&
                  !memcmp(p1->data, p2->data, (size_t)graft_tensor_numel(p1) * sizeof(float)),
              "k = 9 over 8 examples predicts differently from k = 8");
    graft_tensor_free(Q), graft_tensor_free(p1), graft_tensor_free(p2);
    graft_head_free(h), graft_head_free(g);
}

static void test_knn(void)
{
    char good[600];
    pathf(good, sizeof good, "knn.safetensors");
    graft_head_free(make_head("knn", 3, origin2, good));
    test_knn_head(good);
    test_knn_many_classes(good);
    test_knn_k_above_rows();
    test_knn_old_k(good);
}

/* Weight shapes against the class count; the origin checked at save too. */
static void test_other_heads(void)
{
    char good[600], bad[600];
    pathf(good, sizeof good, "head.safetensors");
    pathf(bad, sizeof bad, "head_bad.safetensors");
    static const struct {
        const char *kind, *tensor;
    } kinds[] = { { "mlp", "'W2'" }, { "ncm", "'W'" }, { "logreg", "'W'" } };
    for (int i = 0; i < 3; i++) {
        graft_head_free(make_head(kinds[i].kind, 0, NULL, good));
        CHECK(head_try(good) == GRAFT_OK, "%s head as saved: %s", kinds[i].kind,
              graft_last_error());
        patch(good, bad, "nclass", "5", NOLAB);
        expect_refused(head_try(bad), GRAFT_E_FORMAT, kinds[i].kind, bad, kinds[i].tensor, "(5, ",
                       NULL);
        patch(good, bad, "nclass", "2147483647", NOLAB);
        expect_refused(head_try(bad), GRAFT_E_LIMIT, kinds[i].kind, bad, "limit classes", NULL);
    }
    patch(good, bad, "dim", "5", NOLAB);
    expect_refused(head_try(bad), GRAFT_E_FORMAT, "dim 5 of 4", bad,
                   "'mu' is float32 (4), expected float32 (5)", NULL);
    graft_head *h = make_head("logreg", 0, NULL, good);
    CHECK(graft_head_set_origin(h, "{\"classes\": [\"a\", \"b\", \"c\"]}") == GRAFT_OK, "%s",
          graft_last_error());
    unlink(bad);
    expect_refused(graft_head_save(h, bad), GRAFT_E_ARG, "saving 2 classes named 3", bad, "names 3",
                   NULL);
    CHECK(access(bad, F_OK) != 0, "an inconsistent head was written");
    graft_head_free(h);
}

/* ==== checkpoints ========================================================================= */

/* logits = x W + B, x (2, 4), W (4, 3), B (3): W and B train. */
static gr_trainer *tiny_trainer(gr_graph **gp)
{
    gr_graph *g;
    static const float w[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, b[3] = { 1, 2, 3 };
    int in[3], out;
    gr_shape sx = gr_shape_make(2, (int64_t[]){ 2, 4 }), sw = gr_shape_make(2, (int64_t[]){ 4, 3 }),
             sb = gr_shape_make(1, (int64_t[]){ 3 });
    if (gr_graph_new(13, &g) || gr_graph_add_input(g, "x", GR_F32, &sx, &in[0]) ||
        gr_graph_add_value(g, "W", GR_F32, &sw, w, &in[1]) ||
        gr_graph_add_value(g, "B", GR_F32, &sb, b, &in[2]) ||
        gr_graph_add_value(g, "logits", GR_F32, NULL, NULL, &out) ||
        gr_graph_add_node(g, "fc", "Gemm", in, 3, &out, 1, NULL, 0, NULL) ||
        gr_graph_add_output(g, out))
        die("graph");
    unsigned char *tr = calloc((size_t)g->nvalues, 1);
    tr[in[1]] = tr[in[2]] = 1;
    gr_trainer_cfg cfg = { .loss = GR_LOSS_CE, .opt = { .kind = GR_SGD, .lr = 0.1 } };
    gr_trainer *t;
    if (gr_trainer_new(g, tr, &cfg, &t)) die("trainer");
    free(tr);
    *gp = g;
    return t;
}

static void test_checkpoint(void)
{
    char good[600], bad[600];
    pathf(good, sizeof good, "ckpt.safetensors");
    pathf(bad, sizeof bad, "ckpt_bad.safetensors");
    gr_graph *g;
    gr_trainer *t = tiny_trainer(&g);
    gr_train_pos pos = { .epoch = 2, .batch = 3, .seed = 4 };
    if (gr_trainer_save(t, good, &pos)) die(good);
    CHECK(gr_trainer_load(t, good, NULL) == GRAFT_OK, "checkpoint as saved: %s",
          graft_last_error());
    struct stat sb;
    stat(good, &sb);
    if (truncate(good, sb.st_size / 2)) die("truncate");
    expect_refused(gr_trainer_load(t, good, NULL), GRAFT_E_FORMAT, "half a checkpoint", good,
                   "truncated", NULL);
    /* another model's 256 MiB tensor (a sparse file, no CRC): refused from the header alone */
    static const char *json = "{\"__metadata__\": {\"format\": \"graft-trainer-checkpoint-1\", "
                              "\"optimizer\": \"sgd\", \"step\": \"1\", "
                              "\"epoch\": \"0\", \"batch\": \"0\", \"loader_seed\": \"0\"}, \"W\": "
                              "{\"dtype\": \"F32\", \"shape\": [8192, 8192], "
                              "\"data_offsets\": [0, 268435456]}}";
    st_file(bad, -1, json, 0);
    if (truncate(bad, 8 + (off_t)strlen(json) + 268435456)) die("truncate");
    double before = peak_mb();
    expect_refused(
        gr_trainer_load(t, bad, NULL), GRAFT_E_SHAPE, "a 256 MiB misfit", bad,
        "tensor 'W' is float32 (8192, 8192) in the checkpoint but float32 (4, 3) in the model",
        NULL);
    CHECK(peak_mb() - before < 100, "peak memory grew by %.0f MB refusing a misfit checkpoint",
          peak_mb() - before);
    unlink(bad);
    /* the tensor limit applies to checkpoints */
    if (gr_trainer_save(t, good, &pos)) die(good);
    int64_t saved = graft_get_limit(GRAFT_LIMIT_TENSOR_BYTES);
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, 47);
    expect_refused(gr_trainer_load(t, good, NULL), GRAFT_E_LIMIT, "checkpoint below the limit",
                   good, "'W'", "48 bytes", "tensor-bytes", NULL);
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, saved);
    gr_train_pos back = { 0 };
    CHECK(gr_trainer_load(t, good, &back) == GRAFT_OK && back.epoch == 2 && back.batch == 3 &&
              back.seed == 4,
          "checkpoint with the limit restored: %s", graft_last_error());
    free(back.note);
    gr_trainer_free(t);
    gr_graph_free(g);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
        mkdir(dir, 0777);
    } else {
        snprintf(dir, sizeof dir, "%s/graft_io_limits_XXXXXX", tmp);
        if (!mkdtemp(dir)) return 2;
    }
    test_npy_cases();
    test_npy_sizes();
    test_npy_limit();
    test_safetensors();
    test_safetensors_limit();
    test_knn();
    test_other_heads();
    test_checkpoint();
    return th_finish();
}
