/* core — tensors, errors, arenas, RNG, threads. Depends on libc and OpenMP only. */
#ifndef GR_CORE_H
#define GR_CORE_H

#include "graft.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define GR_MAXDIM GRAFT_MAX_RANK

/* Element types: ONNX TensorProto.DataType numbers. */
typedef enum gr_dtype {
    GR_F32 = GRAFT_FLOAT,
    GR_U8 = GRAFT_UINT8,
    GR_I8 = GRAFT_INT8,
    GR_I32 = GRAFT_INT32,
    GR_I64 = GRAFT_INT64,
    GR_BOOL = GRAFT_BOOL,
    GR_F64 = GRAFT_DOUBLE
} gr_dtype;

typedef struct gr_shape {
    int rank;
    int64_t d[GR_MAXDIM];
} gr_shape;

/* Internal tensors never own their data: it lives in an arena or a parameter block.
 * `layout` is NULL for plain row-major data (NCHW for images). Otherwise the data is in a
 * oneDNN layout (e.g. nChw16c) described by an opaque descriptor owned by the op that produced
 * it, and `bytes` is its storage size (blocked layouts pad channels). Only ops flagged
 * GR_OPF_LAYOUT ever see such tensors; the executor converts them to plain for the others. */
typedef struct gr_tensor {
    gr_dtype dtype;
    gr_shape shape;
    void *data;
    const void *layout;
    size_t bytes;
} gr_tensor;

/* Storage size in bytes (plain, or the layout's size). */
size_t gr_tensor_bytes(const gr_tensor *t);

size_t gr_dtype_size(int dtype); /* 0 for a type graft does not know */
const char *gr_dtype_name(int dtype);
int64_t gr_numel(const gr_shape *s);
/* numel with overflow detection: -1 if the product of dims (or bytes) overflows int64. */
int64_t gr_numel_checked(const gr_shape *s, size_t elem_size);
int gr_shape_eq(const gr_shape *a, const gr_shape *b);
/* "(1, 3, 224, 224)" into buf; returns buf. */
char *gr_shape_str(const gr_shape *s, char *buf, size_t n);
gr_shape gr_shape_make(int rank, const int64_t *d);

/* Errors: set the thread's message and return the status, so `return gr_err(...)` reads well. */
int gr_err(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message ("context: old message"), return status unchanged. */
int gr_err_prefix(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Limits (graft_set_limit). gr_limit_check: GRAFT_OK when value <= the limit, else sets the
 * message "<fmt...>, above the limit <name> = <limit> (raise it with --limit <name>=N or
 * graft_set_limit)" and returns GRAFT_E_LIMIT. fmt says what was asked for, e.g.
 * "initializer 'w' needs 1073741824 bytes". */
int64_t gr_limit(graft_limit which);
int gr_limit_check(graft_limit which, int64_t value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Always-on assertion for internal invariants (bugs in graft, never input errors). A failed one
 * does not print (the library never does): the message "internal error: assertion 'C' failed at
 * FILE:LINE" becomes the thread's graft_last_error(), then abort() (see gr_assert_fail). */
#define GR_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) gr_assert_fail(#c, __FILE__, __LINE__);                                          \
    } while (0)
void gr_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

/* Opens path for reading if it is a regular file (not a folder, pipe or device, which would
 * block or never end); *size gets its length. Errors name the file. */
int gr_open_regular(const char *path, FILE **f, uint64_t *size);
/* Reads a whole regular file into *data (malloc'd, caller frees; one byte more than the file,
 * holding a 0, so that text can be parsed as a string); *size gets its length. A file of more
 * than max bytes (0: no bound but the address space) is refused (GRAFT_E_UNSUPPORTED) before
 * anything is allocated. Errors name the file. */
int gr_read_file(const char *path, uint64_t max, unsigned char **data, size_t *size);

/* 64-bit FNV-1a of n bytes, continuing from h (GR_FNV1A_BASIS to start a hash): for hash tables
 * and cache keys, not against chosen collisions. */
#define GR_FNV1A_BASIS 0xcbf29ce484222325ull
uint64_t gr_fnv1a(uint64_t h, const void *data, size_t n);

/* Checked allocation helpers: set GRAFT_E_NOMEM on failure. */
void *gr_malloc(size_t n);
void *gr_calloc(size_t count, size_t size);
char *gr_strdup(const char *s);

/* Arena: a bump allocator in growing chunks; everything freed at once. */
typedef struct gr_arena gr_arena;
gr_arena *gr_arena_new(size_t chunk);
void *gr_arena_alloc(gr_arena *a, size_t n); /* 64-byte aligned, zeroed; NULL on OOM */
char *gr_arena_strdup(gr_arena *a, const char *s);
void gr_arena_reset(gr_arena *a);
void gr_arena_free(gr_arena *a);
size_t gr_arena_used(const gr_arena *a);

/* RNG: xoshiro256**, seeded with splitmix64. State is plain data so it can be checkpointed. */
typedef struct gr_rng {
    uint64_t s[4];
} gr_rng;
void gr_rng_seed(gr_rng *r, uint64_t seed);
uint64_t gr_rng_u64(gr_rng *r);
double gr_rng_uniform(gr_rng *r); /* [0, 1) */
double gr_rng_normal(gr_rng *r);
uint64_t gr_rng_below(gr_rng *r, uint64_t n); /* uniform in [0, n) */

/* Threads */
void gr_set_threads(int n);
int gr_threads(void);

/* Monotonic time in seconds; peak resident memory in bytes. */
double gr_now(void);
size_t gr_peak_rss(void);

/* Progress and notes for the caller (graft_progress_fn, include/graft/core.h): the library's only
 * way to tell a user anything. A NULL fn reports nothing. gr_progress_step is cheap enough for
 * every batch; gr_progress_note formats one line (printf style, no newline). */
typedef struct gr_progress {
    graft_progress_fn fn;
    void *ctx;
} gr_progress;
void gr_progress_step(const gr_progress *p, const char *stage, int64_t done, int64_t total);
void gr_progress_note(const gr_progress *p, graft_event ev, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A step with a detail for the bar (the PROGRESS event's message), formatted only when someone
 * listens. */
void gr_progress_detail(const gr_progress *p, const char *stage, int64_t done, int64_t total,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
