/* test_io_safetensors.c — checkpoints in safetensors format (gr_st_save / gr_st_load):
 *  - graft → graft round trip of every dtype, scalars and empty tensors, metadata;
 *  - graft → an independent reader (scripts/st_check.py: json + numpy.frombuffer, zlib.crc32)
 *    and back: the bytes python decodes must equal what graft wrote;
 *  - a file written by python (unpadded, unaligned offsets, data in another order than the
 *    header, no CRC) → graft;
 *  - damaged files: truncated at many lengths, a flipped data bit (CRC), bad JSON, overlapping
 *    offsets and the other format violations, each a clear error naming the file and tensor;
 *  - writing: atomic (a full disk keeps the old file, leaves no temp file), bad arguments.
 *
 *   test_io_safetensors SRC_DIR OUT_DIR PYTHON */
#define _GNU_SOURCE
#include "harness.h"
#include "io/io.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *src_dir, *out_dir, *python;

static int run(char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, n, f) == n;
    ok &= f && fclose(f) == 0;
    if (!ok) fprintf(stderr, "cannot write %s\n", path);
}

/* ---- the tensors graft writes ---- */

#define NT 11
typedef struct spec {
    const char *name, *json_name;
    int dtype;
    int rank;
    int64_t d[5];
} spec;
static const spec specs[NT] = {
    { "conv1.weight", "\"conv1.weight\"", GR_F32, 4, { 4, 3, 3, 3 } },
    { "fc.bias", "\"fc.bias\"", GR_F32, 1, { 10 } },
    { "step", "\"step\"", GR_I64, 0, { 0 } },
    { "empty", "\"empty\"", GR_F32, 2, { 0, 4 } },
    { "mask", "\"mask\"", GR_BOOL, 1, { 5 } },
    { "u8", "\"u8\"", GR_U8, 1, { 3 } },
    { "i8", "\"i8\"", GR_I8, 2, { 2, 2 } },
    { "i32", "\"i32\"", GR_I32, 1, { 3 } },
    { "f64", "\"f64\"", GR_F64, 2, { 2, 2 } },
    { "na\xc3\xafve \"q\"", "\"na\\u00efve \\\"q\\\"\"", GR_F32, 1, { 1 } },
    { "empty5", "\"empty5\"", GR_F64, 5, { 1, 1, 2, 1, 0 } },
};
static const char *const st_names[] = {
    [GR_F32] = "F32", [GR_F64] = "F64", [GR_I64] = "I64",  [GR_I32] = "I32",
    [GR_U8] = "U8",   [GR_I8] = "I8",   [GR_BOOL] = "BOOL"
};
/* What python's json.dumps(sort_keys=True) gives for the metadata below. */
static const gr_meta meta[2] = { { "note", "a \"b\" \xc3\xa9" }, { "epoch", "3" } };
static const char *meta_json = "{\"epoch\": \"3\", \"note\": \"a \\\"b\\\" \\u00e9\"}";

static gr_st_entry entries[NT];

static void make_entries(gr_arena *a)
{
    gr_rng rng;
    gr_rng_seed(&rng, 99);
    for (int i = 0; i < NT; i++) {
        gr_st_entry *e = &entries[i];
        e->name = specs[i].name;
        e->dtype = specs[i].dtype;
        e->shape = gr_shape_make(specs[i].rank, specs[i].d);
        e->bytes = (size_t)gr_numel(&e->shape) * gr_dtype_size(e->dtype);
        e->data = gr_arena_alloc(a, e->bytes + 1);
        unsigned char *p = e->data;
        for (size_t k = 0; k < e->bytes; k++) p[k] = (unsigned char)gr_rng_u64(&rng);
        if (e->dtype == GR_BOOL)
            for (size_t k = 0; k < e->bytes; k++) p[k] &= 1;
    }
    float *w = entries[0].data; /* special values must survive bit for bit */
    w[0] = -0.0f, w[1] = INFINITY, w[2] = NAN, w[3] = 1e-45f;
}

/* Compares loaded entries (in data order = the order written) with `entries`. */
static void compare_entries(const gr_st_entry *got, int n, const char *what)
{
    CHECK(n == NT, "%s: %d tensors, expected %d", what, n, NT);
    for (int i = 0; i < n && i < NT; i++) {
        const gr_st_entry *e = &entries[i], *g = &got[i];
        int ok = strcmp(g->name, e->name) == 0 && g->dtype == e->dtype &&
                 gr_shape_eq(&g->shape, &e->shape) && g->bytes == e->bytes &&
                 (e->bytes == 0 || memcmp(g->data, e->data, e->bytes) == 0);
        CHECK(ok, "%s: tensor %d ('%s') differs", what, i, e->name);
        CHECK(((uintptr_t)g->data & 63) == 0, "%s: tensor '%s' is not 64-byte aligned", what,
              e->name);
    }
}

static void test_round_trip(const char *path)
{
    int st = gr_st_save(path, entries, NT, meta, 2);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    CHECK(count_prefix(out_dir, "graft.safetensors.tmp.") == 0, "temp file left");
    gr_arena *a = gr_arena_new(1 << 16);
    gr_st_entry *got = NULL;
    gr_meta *m = NULL;
    int n = 0, nm = 0;
    st = gr_st_load(path, a, &got, &n, &m, &nm);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    if (!st) {
        compare_entries(got, n, "graft round trip");
        CHECK(nm == 2, "metadata: %d entries (graft_crc32 must be hidden)", nm);
        for (int i = 0; i < nm && i < 2; i++)
            CHECK(strcmp(m[i].key, meta[i].key) == 0 && strcmp(m[i].value, meta[i].value) == 0,
                  "metadata %d: '%s'='%s'", i, m[i].key, m[i].value);
    }
    gr_arena_free(a);
}

/* ---- the independent reader ---- */

/* Reads OUTDIR/manifest.txt; calls back per tensor with its line fields and .bin bytes. */
typedef struct mline {
    char name[256], dtype[16], dims[128];
    unsigned char *data;
    size_t n;
} mline;

/* Copies src into dst[n], cutting it if needed. */
static void cpy(char *dst, size_t n, const char *src)
{
    size_t k = strlen(src);
    if (k >= n) k = n - 1;
    memcpy(dst, src, k);
    dst[k] = 0;
}

static int read_manifest(const char *dir, mline *lines, int max, char *meta_out, size_t meta_n)
{
    char path[1024], line[2048];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "meta\t", 5) == 0) {
            cpy(meta_out, meta_n, line + 5);
            continue;
        }
        if (n == max) break;
        char *fld[4];
        char *s = line;
        for (int k = 0; k < 4; k++) {
            fld[k] = strsep(&s, "\t");
            if (!fld[k]) fld[k] = "";
        }
        mline *l = &lines[n++];
        cpy(l->name, sizeof l->name, fld[0]);
        cpy(l->dtype, sizeof l->dtype, fld[1]);
        cpy(l->dims, sizeof l->dims, fld[2]);
        cpy(path, sizeof path, dir);
        strncat(path, "/", sizeof path - strlen(path) - 1);
        strncat(path, fld[3], sizeof path - strlen(path) - 1);
        l->data = NULL;
        l->n = 0;
        if (gr_read_file(path, 0, &l->data, &l->n)) l->data = NULL;
    }
    fclose(f);
    return n;
}

static void dims_str(const gr_shape *s, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < s->rank; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)s->d[i]);
}

static void test_python_reads(const char *path)
{
    char dir[1024], script[1024], metabuf[1024] = { 0 };
    snprintf(dir, sizeof dir, "%s/py_read", out_dir);
    snprintf(script, sizeof script, "%s/scripts/st_check.py", src_dir);
    char *argv[] = { (char *)python, script, "read", (char *)path, dir, NULL };
    CHECK(run(argv) == 0, "st_check.py read %s failed", path);
    mline lines[NT + 1];
    int n = read_manifest(dir, lines, NT + 1, metabuf, sizeof metabuf);
    CHECK(n == NT, "python read %d tensors", n);
    for (int i = 0; i < n && i < NT; i++) { /* graft writes the header in entry order */
        char dims[128];
        dims_str(&entries[i].shape, dims, sizeof dims);
        int ok = strcmp(lines[i].name, specs[i].json_name) == 0 &&
                 strcmp(lines[i].dtype, st_names[specs[i].dtype]) == 0 &&
                 strcmp(lines[i].dims, dims) == 0 && lines[i].data &&
                 lines[i].n == entries[i].bytes &&
                 (lines[i].n == 0 || memcmp(lines[i].data, entries[i].data, lines[i].n) == 0);
        CHECK(ok, "python's view of tensor %d: name %s dtype %s dims [%s], %zu bytes", i,
              lines[i].name, lines[i].dtype, lines[i].dims, lines[i].n);
        free(lines[i].data);
    }
    CHECK(strcmp(metabuf, meta_json) == 0, "python's metadata %s, expected %s", metabuf, meta_json);
}

static int dtype_of(const char *s)
{
    for (int d = 0; d < (int)(sizeof st_names / sizeof *st_names); d++)
        if (st_names[d] && strcmp(st_names[d], s) == 0) return d;
    return -1;
}

static void test_python_writes(void)
{
    char dir[1024], script[1024], path[1024], metabuf[1024] = { 0 };
    snprintf(dir, sizeof dir, "%s/py_write", out_dir);
    snprintf(path, sizeof path, "%s/python.safetensors", out_dir);
    snprintf(script, sizeof script, "%s/scripts/st_check.py", src_dir);
    char *argv[] = { (char *)python, script, "write", path, dir, NULL };
    CHECK(run(argv) == 0, "st_check.py write failed");
    mline lines[16];
    int n = read_manifest(dir, lines, 16, metabuf, sizeof metabuf);
    gr_arena *a = gr_arena_new(1 << 16);
    gr_st_entry *got = NULL;
    gr_meta *m = NULL;
    int ng = 0, nm = 0;
    int st = gr_st_load(path, a, &got, &ng, &m, &nm);
    CHECK(st == GRAFT_OK, "%s", graft_last_error());
    CHECK(st || ng == n, "graft read %d tensors, python wrote %d", ng, n);
    for (int i = 0; !st && i < n && i < ng; i++) {
        char name[300], dims[128];
        snprintf(name, sizeof name, "\"%s\"", got[i].name);
        dims_str(&got[i].shape, dims, sizeof dims);
        int ok = strcmp(name, lines[i].name) == 0 && got[i].dtype == dtype_of(lines[i].dtype) &&
                 strcmp(dims, lines[i].dims) == 0 && lines[i].data && got[i].bytes == lines[i].n &&
                 (lines[i].n == 0 || memcmp(got[i].data, lines[i].data, lines[i].n) == 0);
        CHECK(ok, "tensor %d: graft read %s [%s] %zu bytes; python wrote %s %s [%s] %zu bytes", i,
              name, dims, got[i].bytes, lines[i].name, lines[i].dtype, lines[i].dims, lines[i].n);
    }
    for (int i = 0; i < n; i++) free(lines[i].data);
    CHECK(!st && nm == 2 && strcmp(metabuf, "{\"epoch\": \"7\", \"format\": \"pt\"}") == 0,
          "metadata: %d entries; python wrote %s", nm, metabuf);
    gr_arena_free(a);
}

/* ---- damaged files ---- */

/* gr_st_load must fail on path with a message naming the file and containing each fragment. */
static void expect_error(const char *path, const char *what, const char *frag1, const char *frag2)
{
    gr_arena *a = gr_arena_new(1 << 16);
    gr_st_entry *got = NULL;
    gr_meta *m = NULL;
    int n = 0, nm = 0;
    int st = gr_st_load(path, a, &got, &n, &m, &nm);
    const char *msg = graft_last_error();
    CHECK(st != GRAFT_OK && strstr(msg, path) && (!frag1 || strstr(msg, frag1)) &&
              (!frag2 || strstr(msg, frag2)),
          "%s: status %d, message '%s' (wanted '%s', '%s')", what, st, st ? msg : "",
          frag1 ? frag1 : "", frag2 ? frag2 : "");
    gr_arena_free(a);
}

static void test_truncated(const char *good)
{
    unsigned char *buf;
    size_t size;
    if (gr_read_file(good, 0, &buf, &size)) {
        CHECK(0, "%s", graft_last_error());
        return;
    }
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++) hlen |= (uint64_t)buf[k] << (8 * k);
    size_t data0 = 8 + (size_t)hlen;
    size_t off[NT + 1] = { 0 }; /* data offsets of each tensor */
    for (int i = 0; i < NT; i++) off[i + 1] = off[i] + entries[i].bytes;
    char path[1024];
    snprintf(path, sizeof path, "%s/truncated.safetensors", out_dir);
    size_t cuts[] = { 0,
                      1,
                      7,
                      8,
                      9,
                      data0 / 2,
                      data0 - 1,
                      data0,
                      data0 + 1,
                      data0 + off[1] / 2,
                      data0 + off[1],
                      data0 + off[8] + 5,
                      size - 1 };
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        write_bytes(path, buf, cuts[c]);
        char what[64];
        snprintf(what, sizeof what, "cut at %zu of %zu bytes", cuts[c], size);
        expect_error(path, what, "truncated", NULL);
    }
    /* the tensor whose data is cut is named */
    write_bytes(path, buf, data0 + off[1] / 2);
    expect_error(path, "cut in conv1.weight", "truncated", "'conv1.weight'");
    write_bytes(path, buf, data0 + off[8] + 5);
    expect_error(path, "cut in f64", "truncated", "'f64'");
    free(buf);
}

static void test_corrupt(const char *good)
{
    unsigned char *buf;
    size_t size;
    if (gr_read_file(good, 0, &buf, &size)) {
        CHECK(0, "%s", graft_last_error());
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/corrupt.safetensors", out_dir);
    size_t pos[] = { size - 1, size / 2 + size / 4 };
    for (int i = 0; i < 2; i++) {
        buf[pos[i]] ^= 0x10;
        write_bytes(path, buf, size);
        expect_error(path, "flipped data bit", "corrupt", "CRC-32");
        buf[pos[i]] ^= 0x10;
    }
    /* in the header: a dtype renamed */
    char *dt = memmem(buf, size, "\"F64\"", 5);
    CHECK(dt != NULL, "no F64 in the header");
    if (dt) {
        memcpy(dt, "\"F65\"", 5);
        write_bytes(path, buf, size);
        expect_error(path, "unknown dtype", "unknown dtype", "'f64'");
    }
    free(buf);
}

static void write_st(const char *path, const char *header, size_t ndata)
{
    size_t h = strlen(header), n = 8 + h + ndata;
    unsigned char *b = calloc(1, n);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(b + 8, header, h);
    write_bytes(path, b, n);
    free(b);
}

static void test_bad_headers(void)
{
    static const struct {
        const char *header;
        size_t ndata;
        const char *frag1, *frag2;
    } cases[] = {
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}", 4,
          "not valid JSON", NULL },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4],}}", 4,
          "not valid JSON", NULL },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
          12, "'b'", "overlaps tensor 'a'" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
          8, "overlaps", NULL },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
          12, "'b'", "hole" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
          "4 bytes after the last", NULL },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "'a'",
          "needs 12 bytes" },
        { "{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "'a'",
          "F16 is not supported" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
          8, "'a'", "defined twice" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "'a'",
          "shape[0]" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "'a'",
          "shape[0]" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "'a'",
          "data_offsets" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "'a'",
          "data_offsets" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, "'a'", "needs" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "'a'",
          "unexpected field" },
        { "{\"a\":[1,2]}", 0, "'a'", "not a JSON object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
          "'a'", "rank 9" },
        { "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "not a string" },
        { "{\"__metadata__\":{\"graft_crc32\":\"xyz\"}}", 0, "graft_crc32", "not a CRC-32" },
        { "{\"__metadata__\":{\"graft_crc32\":\"12345\"}}", 0, "corrupt", NULL },
        { "{} x", 0, "text after", NULL },
        { "[1, 2]", 0, "does not start with '{'", NULL },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2, "'a'",
          "truncated" },
    };
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.safetensors", out_dir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_st(path, cases[i].header, cases[i].ndata);
        char what[64];
        snprintf(what, sizeof what, "bad header case %zu", i);
        expect_error(path, what, cases[i].frag1, cases[i].frag2);
    }
    /* a header length far beyond the file */
    unsigned char huge[16] = { 0, 0, 0, 0, 0, 1, 0, 0, '{', '}' };
    write_bytes(path, huge, 10);
    expect_error(path, "huge header length", "exceeds", "truncated");
    /* an empty file, a folder, a missing file */
    write_bytes(path, "", 0);
    expect_error(path, "empty file", "too short", NULL);
    expect_error(out_dir, "a folder", "not a regular file", NULL);
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", out_dir);
    expect_error(missing, "missing file", strerror(ENOENT), NULL);
    /* a valid minimal file without tensors loads */
    write_st(path, "{}      ", 0);
    gr_arena *a = gr_arena_new(4096);
    gr_st_entry *e = NULL;
    gr_meta *m = NULL;
    int n = -1, nm = -1;
    CHECK(gr_st_load(path, a, &e, &n, &m, &nm) == GRAFT_OK && n == 0 && nm == 0, "empty header: %s",
          graft_last_error());
    gr_arena_free(a);
}

/* ---- writing ---- */

static void test_write_errors(const char *good)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/no_such_folder/x.safetensors", out_dir);
    int st = gr_st_save(path, entries, NT, NULL, 0);
    CHECK(st == GRAFT_E_IO && strstr(graft_last_error(), path) &&
              strstr(graft_last_error(), strerror(ENOENT)),
          "missing folder: %d %s", st, graft_last_error());

    snprintf(path, sizeof path, "%s/args.safetensors", out_dir);
    gr_st_entry two[2] = { entries[1], entries[1] };
    st = gr_st_save(path, two, 2, NULL, 0);
    CHECK(st == GRAFT_E_ARG && strstr(graft_last_error(), "'fc.bias'"), "duplicate names: %s",
          graft_last_error());
    two[1].name = "other";
    two[1].bytes -= 4;
    st = gr_st_save(path, two, 2, NULL, 0);
    CHECK(st == GRAFT_E_ARG && strstr(graft_last_error(), "'other'"), "bytes mismatch: %s",
          graft_last_error());
    gr_meta reserved = { "graft_crc32", "1" };
    st = gr_st_save(path, entries, 1, &reserved, 1);
    CHECK(st == GRAFT_E_ARG && strstr(graft_last_error(), "reserved"), "reserved key: %s",
          graft_last_error());
    struct stat sb;
    CHECK(stat(path, &sb) != 0, "a failed save created %s", path);

    /* a full disk (file-size limit): the previous checkpoint stays intact, no temp file */
    unsigned char *before;
    size_t nbefore;
    if (gr_read_file(good, 0, &before, &nbefore)) return;
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = { 256, 256 };
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(3);
        int s = gr_st_save(good, entries, NT, meta, 2);
        int ok = s == GRAFT_E_IO && strstr(graft_last_error(), good) &&
                 strstr(graft_last_error(), strerror(EFBIG));
        if (!ok) fprintf(stderr, "disk full: %d %s\n", s, graft_last_error());
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "disk full: child status %d", status);
    unsigned char *after;
    size_t nafter;
    CHECK(gr_read_file(good, 0, &after, &nafter) == GRAFT_OK && nafter == nbefore &&
              memcmp(before, after, nafter) == 0,
          "disk full: %s changed", good);
    CHECK(count_prefix(out_dir, "graft.safetensors.tmp.") == 0, "disk full: temp file left");
    free(before);
    free(after);
}

/* CRC-32 against python's zlib on a buffer whose length exercises the 8-byte loop and tail. */
static void test_crc(void)
{
    unsigned char buf[1003];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 7 + 3);
    char path[1024], script[2048];
    snprintf(path, sizeof path, "%s/crc.bin", out_dir);
    write_bytes(path, buf, sizeof buf);
    uint32_t c = gr_crc32(0, buf, sizeof buf);
    uint32_t split = gr_crc32(gr_crc32(0, buf, 13), buf + 13, sizeof buf - 13);
    CHECK(c == split, "crc32 in two parts %u vs %u", split, c);
    snprintf(script, sizeof script,
             "import zlib,sys; sys.exit(0 if zlib.crc32(open('%s','rb').read()) == %u else 1)",
             path, c);
    char *argv[] = { (char *)python, "-c", script, NULL };
    CHECK(run(argv) == 0, "gr_crc32 = %u differs from zlib.crc32", c);
    CHECK(gr_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test_io_safetensors SRC_DIR OUT_DIR PYTHON\n");
        return 2;
    }
    src_dir = argv[1], out_dir = argv[2], python = argv[3];
    mkdir(out_dir, 0777);
    gr_arena *a = gr_arena_new(1 << 16);
    make_entries(a);
    char good[1024];
    snprintf(good, sizeof good, "%s/graft.safetensors", out_dir);
    test_crc();
    test_round_trip(good);
    test_python_reads(good);
    test_python_writes();
    test_truncated(good);
    test_corrupt(good);
    test_bad_headers();
    test_write_errors(good);
    gr_arena_free(a);
    return th_finish();
}
