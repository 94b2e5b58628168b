/* test_core.c — core pieces against closed forms: shapes and overflow, arena alignment and
 * reuse, the RNG's moments and determinism, .npy round trips (checked against numpy's own
 * header rules), whole-file reads, FNV-1a against its published vectors, error messages. */
#define _GNU_SOURCE
#include "core/core.h"
#include "harness.h"
#include "io/io.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static void test_shapes(void)
{
    gr_shape s = { 4, { 2, 3, 5, 7 } };
    CHECK(gr_numel(&s) == 210, "numel %lld", (long long)gr_numel(&s));
    gr_shape big = { 3, { 1LL << 40, 1LL << 40, 4 } };
    CHECK(gr_numel_checked(&big, 4) == -1, "overflow not detected");
    gr_shape bytes = { 1, { INT64_MAX / 2 } };
    CHECK(gr_numel_checked(&bytes, 4) == -1, "byte overflow not detected");
    gr_shape neg = { 1, { -3 } };
    CHECK(gr_numel_checked(&neg, 4) == -1, "negative dim accepted");
    char buf[64];
    CHECK(strcmp(gr_shape_str(&s, buf, sizeof buf), "(2, 3, 5, 7)") == 0, "got %s", buf);
}

static void test_arena(void)
{
    gr_arena *a = gr_arena_new(256);
    size_t total = 0;
    for (int i = 1; i < 200; i++) {
        unsigned char *p = gr_arena_alloc(a, (size_t)i * 7);
        CHECK(((uintptr_t)p & 63) == 0, "allocation %d not 64-byte aligned", i);
        int zero = 1;
        for (int k = 0; k < i * 7; k++) zero &= p[k] == 0;
        CHECK(zero, "allocation %d not zeroed", i);
        memset(p, 0xab, (size_t)i * 7);
        total += ((size_t)i * 7 + 63) & ~(size_t)63;
    }
    CHECK(gr_arena_used(a) == total, "used %zu, expected %zu", gr_arena_used(a), total);
    gr_arena_reset(a);
    CHECK(gr_arena_used(a) == 0, "reset left %zu", gr_arena_used(a));
    gr_arena_free(a);
}

static void test_rng(void)
{
    gr_rng a, b;
    gr_rng_seed(&a, 42);
    gr_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= gr_rng_u64(&a) == gr_rng_u64(&b);
    CHECK(same, "same seed gave different streams");
    /* uniform: mean 1/2, variance 1/12; normal: mean 0, variance 1 (n = 200000, 5 sigma) */
    int n = 200000;
    double s = 0, s2 = 0, z = 0, z2 = 0;
    for (int i = 0; i < n; i++) {
        double u = gr_rng_uniform(&a), g = gr_rng_normal(&a);
        s += u;
        s2 += u * u;
        z += g;
        z2 += g * g;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / n), "uniform mean %g", mean);
    CHECK(fabs(var - 1.0 / 12) < 0.002, "uniform variance %g", var);
    CHECK(fabs(z / n) < 5 / sqrt(n), "normal mean %g", z / n);
    CHECK(fabs(z2 / n - 1) < 0.02, "normal variance %g", z2 / n);
    int hist[7] = { 0 };
    for (int i = 0; i < 70000; i++) hist[gr_rng_below(&a, 7)]++;
    for (int k = 0; k < 7; k++)
        CHECK(abs(hist[k] - 10000) < 500, "below(7) bucket %d has %d", k, hist[k]);
}

static void test_npy(void)
{
    char path[] = "/tmp/graft_test_npyXXXXXX";
    int fd = mkstemp(path);
    close(fd);
    float data[6] = { 1, -2, 3.5f, 4, 5, 6 };
    gr_tensor t = { .dtype = GR_F32, .shape = { 2, { 2, 3 } }, .data = data }, u;
    CHECK(gr_npy_save(path, &t) == GRAFT_OK, "%s", graft_last_error());
    CHECK(gr_npy_load(path, &u) == GRAFT_OK, "%s", graft_last_error());
    CHECK(u.dtype == GR_F32 && gr_shape_eq(&u.shape, &t.shape) &&
              !memcmp(u.data, data, sizeof data),
          "round trip differs");
    free(u.data);
    /* the header is padded so that data starts at a multiple of 64 (numpy's rule) */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK((size - (long)sizeof data) % 64 == 0, "header length %ld", size - (long)sizeof data);
    int64_t scalar = 7;
    gr_tensor s0 = { .dtype = GR_I64, .shape = { 0, { 0 } }, .data = &scalar };
    CHECK(gr_npy_save(path, &s0) == GRAFT_OK && gr_npy_load(path, &u) == GRAFT_OK &&
              u.shape.rank == 0 && *(int64_t *)u.data == 7,
          "scalar round trip");
    free(u.data);
    /* truncated data is an error naming the file */
    gr_npy_save(path, &t);
    CHECK(truncate(path, size - 3) == 0, "truncate");
    CHECK(gr_npy_load(path, &u) == GRAFT_E_FORMAT && strstr(graft_last_error(), path),
          "truncated: %s", graft_last_error());
    unlink(path);
}

/* A version 1.0 .npy file with header dict `dict` and `bytes` bytes of data 0, 1, 2, ... */
static void write_npy(const char *path, const char *dict, size_t bytes)
{
    unsigned char buf[512] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0 };
    size_t hl = strlen(dict);
    buf[8] = (unsigned char)hl;
    memcpy(buf + 10, dict, hl);
    for (size_t i = 0; i < bytes; i++) buf[10 + hl + i] = (unsigned char)i;
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, 10 + hl + bytes, f);
    fclose(f);
}

/* The element types the one .npy reader takes (what io and the datasets each took before they
 * shared it): uint8 with either byte-order mark, Fortran order where it equals C order. */
static void test_npy_types(void)
{
    char path[] = "/tmp/graft_test_npytXXXXXX";
    close(mkstemp(path));
    static const struct {
        const char *dict;
        size_t bytes;
        int status, dtype;
    } cases[] = {
        { "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", 6, GRAFT_OK, GR_U8 },
        { "{'descr': '<u1', 'fortran_order': False, 'shape': (2, 3), }", 6, GRAFT_OK, GR_U8 },
        { "{'descr': '|i1', 'fortran_order': False, 'shape': (6,), }", 6, GRAFT_OK, GR_I8 },
        { "{'descr': '<i4', 'fortran_order': True, 'shape': (1, 3), }", 12, GRAFT_OK, GR_I32 },
        { "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, GRAFT_OK, GR_F64 },
        { "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, GRAFT_E_UNSUPPORTED,
          0 },
        { "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, GRAFT_E_UNSUPPORTED, 0 },
        { "{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }", 4, GRAFT_E_UNSUPPORTED, 0 },
        { "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8,
          GRAFT_E_FORMAT, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_npy(path, cases[i].dict, cases[i].bytes);
        gr_tensor t = { 0 };
        int st = gr_npy_load(path, &t);
        CHECK(st == cases[i].status &&
                  (st || (t.dtype == (gr_dtype)cases[i].dtype &&
                          ((unsigned char *)t.data)[cases[i].bytes - 1] == cases[i].bytes - 1)),
              "%s: status %d (%s)", cases[i].dict, st, graft_last_error());
        free(t.data);
    }
    unlink(path);
}

/* gr_read_file: the bytes back, a 0 after them, the bound in bytes, and what is no file. */
static void test_read_file(void)
{
    char path[] = "/tmp/graft_test_readXXXXXX";
    int fd = mkstemp(path);
    const char text[] = "a,b\n1,\0002\n"; /* 10 bytes with a NUL inside */
    CHECK(write(fd, text, 10) == 10, "write");
    close(fd);
    unsigned char *d = NULL;
    size_t n = 0;
    CHECK(gr_read_file(path, 0, &d, &n) == GRAFT_OK && n == 10 && !memcmp(d, text, 10) &&
              d[10] == 0,
          "read back: %s", graft_last_error());
    free(d);
    CHECK(gr_read_file(path, 10, &d, &n) == GRAFT_OK && n == 10, "max = size: %s",
          graft_last_error());
    free(d);
    CHECK(gr_read_file(path, 9, &d, &n) == GRAFT_E_UNSUPPORTED &&
              strstr(graft_last_error(), path) && strstr(graft_last_error(), "10 bytes"),
          "max = size - 1: %s", graft_last_error());
    unlink(path);
    CHECK(gr_read_file(path, 0, &d, &n) == GRAFT_E_IO && strstr(graft_last_error(), path),
          "missing file: %s", graft_last_error());
    CHECK(gr_read_file("/tmp", 0, &d, &n) == GRAFT_E_IO &&
              strstr(graft_last_error(), "not a regular file"),
          "folder: %s", graft_last_error());
}

/* FNV-1a 64 against the published test vectors (Fowler, Noll, Vo: fnv_test.c), and chaining. */
static void test_fnv(void)
{
    CHECK(gr_fnv1a(GR_FNV1A_BASIS, "", 0) == 0xcbf29ce484222325ull, "empty");
    CHECK(gr_fnv1a(GR_FNV1A_BASIS, "a", 1) == 0xaf63dc4c8601ec8cull, "\"a\"");
    CHECK(gr_fnv1a(GR_FNV1A_BASIS, "foobar", 6) == 0x85944171f73967e8ull, "\"foobar\"");
    CHECK(gr_fnv1a(gr_fnv1a(GR_FNV1A_BASIS, "foo", 3), "bar", 3) == 0x85944171f73967e8ull,
          "chained");
}

static void test_errors(void)
{
    int st = gr_err(GRAFT_E_SHAPE, "node '%s': bad", "x");
    CHECK(st == GRAFT_E_SHAPE && !strcmp(graft_last_error(), "node 'x': bad"), "%s",
          graft_last_error());
    gr_err_prefix(st, "model.onnx");
    CHECK(!strcmp(graft_last_error(), "model.onnx: node 'x': bad"), "%s", graft_last_error());
}

int main(void)
{
    test_shapes();
    test_arena();
    test_rng();
    test_npy();
    test_npy_types();
    test_read_file();
    test_fnv();
    test_errors();
    return th_finish();
}
