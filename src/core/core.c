/* core.c — errors, shapes, allocation, arena, RNG, threads. */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- errors ---- */

static _Thread_local char last_error[1024];

const char *graft_last_error(void) { return last_error; }

const char *graft_status_name(graft_status s)
{
    static const char *names[] = { "ok",
                                   "bad argument",
                                   "i/o error",
                                   "bad format",
                                   "unsupported",
                                   "shape mismatch",
                                   "out of memory",
                                   "internal error",
                                   "numeric failure",
                                   "over a limit" };
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown status";
}

const char *graft_version(void) { return "0.1.0"; }

/* ---- files ---- */

int gr_open_regular(const char *path, FILE **fp, uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return gr_err(GRAFT_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return gr_err(GRAFT_E_IO, "%s: not a regular file", path);
    }
    *fp = f;
    *size = (uint64_t)sb.st_size;
    return GRAFT_OK;
}

int gr_read_file(const char *path, uint64_t max, unsigned char **data, size_t *size)
{
    *data = NULL, *size = 0; /* defined on failure too (gcc -O3's maybe-uninitialized) */
    FILE *f;
    uint64_t length;
    int st = gr_open_regular(path, &f, &length);
    if (st) return st;
    if (length >= SIZE_MAX / 2 || (max && length > max)) {
        fclose(f);
        if (!max) return gr_err(GRAFT_E_UNSUPPORTED, "%s: the file is too large to read", path);
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: the file has %" PRIu64 " bytes, more than the %" PRIu64 " graft reads",
                      path, length, max);
    }
    size_t n = (size_t)length;
    unsigned char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return gr_err(GRAFT_E_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return gr_err(GRAFT_E_IO, "%s: read error", path);
    }
    fclose(f);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return GRAFT_OK;
}

uint64_t gr_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* ---- limits ---- */

static const char *const limit_names[GRAFT_LIMIT_COUNT] = {
    "tensor-bytes",       "image-pixels", "audio-rate", "audio-seconds",
    "decompressed-bytes", "classes",      "k"
};
static int64_t limits[GRAFT_LIMIT_COUNT] = { (int64_t)16 << 30, 178956970, 384000, 86400,
                                             (int64_t)1 << 30,  1000000,   10000 };

graft_status graft_set_limit(graft_limit which, int64_t value)
{
    if ((unsigned)which >= GRAFT_LIMIT_COUNT)
        return gr_err(GRAFT_E_ARG, "unknown limit %d", (int)which);
    if (value <= 0)
        return gr_err(GRAFT_E_ARG, "limit %s must be positive, got %" PRId64, limit_names[which],
                      value);
    limits[which] = value;
    return GRAFT_OK;
}

int64_t graft_get_limit(graft_limit which)
{
    return (unsigned)which < GRAFT_LIMIT_COUNT ? limits[which] : 0;
}
int64_t gr_limit(graft_limit which) { return graft_get_limit(which); }

const char *graft_limit_name(graft_limit which)
{
    return (unsigned)which < GRAFT_LIMIT_COUNT ? limit_names[which] : NULL;
}

int graft_limit_find(const char *name)
{
    for (int i = 0; i < GRAFT_LIMIT_COUNT; i++)
        if (name && !strcmp(name, limit_names[i])) return i;
    return -1;
}

int gr_limit_check(graft_limit which, int64_t value, const char *fmt, ...)
{
    if (value <= limits[which]) return GRAFT_OK;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return gr_err(GRAFT_E_LIMIT,
                  "%s, above the limit %s = %" PRId64
                  " (raise it with --limit %s=N or graft_set_limit)",
                  what, limit_names[which], limits[which], limit_names[which]);
}

int gr_err(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int gr_err_prefix(int status, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t k = strlen(prefix);
    if (k + 2 >= sizeof last_error) k = sizeof last_error - 3;
    memcpy(last_error, prefix, k);
    memcpy(last_error + k, ": ", 2);
    size_t room = sizeof last_error - k - 3, n = strlen(old);
    if (n > room) n = room;
    memcpy(last_error + k + 2, old, n);
    last_error[k + 2 + n] = 0;
    return status;
}

/* A broken invariant is a bug: carrying on could write out of bounds or save a wrong model, and
 * there is no status to return from the middle of a kernel, so the process stops. The library
 * never prints, so the message goes where graft_last_error() shows it (a SIGABRT handler, such as
 * graft's CLI installs, or a debugger reads it there) and abort() leaves a core to debug. */
void gr_assert_fail(const char *cond, const char *file, int line)
{
    gr_err(GRAFT_E_INTERNAL, "internal error: assertion '%s' failed at %s:%d", cond, file, line);
    abort();
}

/* ---- dtypes and shapes ---- */

size_t gr_dtype_size(int dtype)
{
    switch (dtype) {
    case GR_F32:
    case GR_I32: return 4;
    case GR_U8:
    case GR_I8:
    case GR_BOOL: return 1;
    case GR_I64:
    case GR_F64: return 8;
    default: return 0;
    }
}

const char *gr_dtype_name(int dtype)
{
    switch (dtype) {
    case GR_F32: return "float32";
    case GR_U8: return "uint8";
    case GR_I8: return "int8";
    case GR_I32: return "int32";
    case GR_I64: return "int64";
    case GR_BOOL: return "bool";
    case GR_F64: return "float64";
    default: return "unsupported-type";
    }
}

int64_t gr_numel(const gr_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= s->d[i];
    return n;
}

int64_t gr_numel_checked(const gr_shape *s, size_t elem_size)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->d[i] < 0) return -1;
        if (s->d[i] != 0 && n > INT64_MAX / s->d[i]) return -1;
        n *= s->d[i];
    }
    if (elem_size && n > INT64_MAX / (int64_t)elem_size) return -1;
    return n;
}

int gr_shape_eq(const gr_shape *a, const gr_shape *b)
{
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

char *gr_shape_str(const gr_shape *s, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < s->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, i ? ", " : "", s->d[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

size_t gr_tensor_bytes(const gr_tensor *t)
{
    return t->layout ? t->bytes : (size_t)gr_numel(&t->shape) * gr_dtype_size(t->dtype);
}

gr_shape gr_shape_make(int rank, const int64_t *d)
{
    gr_shape s = { rank, { 0 } };
    for (int i = 0; i < rank; i++) s.d[i] = d[i];
    return s;
}

/* ---- allocation ---- */

void *gr_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) gr_err(GRAFT_E_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *gr_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) gr_err(GRAFT_E_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

char *gr_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = gr_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* ---- arena ---- */

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(64) unsigned char data[];
} chunk;

struct gr_arena {
    chunk *head;
    size_t chunk_size, total;
};

gr_arena *gr_arena_new(size_t chunk_size)
{
    gr_arena *a = gr_calloc(1, sizeof *a);
    if (a) a->chunk_size = chunk_size ? chunk_size : 1 << 16;
    return a;
}

void *gr_arena_alloc(gr_arena *a, size_t n)
{
    if (n > SIZE_MAX / 2) {
        gr_err(GRAFT_E_NOMEM, "out of memory allocating %zu bytes", n);
        return NULL;
    }
    n = (n + 63) & ~(size_t)63;
    if (!a->head || a->head->size - a->head->used < n) {
        size_t size = n > a->chunk_size ? n : a->chunk_size;
        chunk *c = aligned_alloc(64, (sizeof(chunk) + size + 63) & ~(size_t)63);
        if (!c) {
            gr_err(GRAFT_E_NOMEM, "out of memory allocating %zu bytes", n);
            return NULL;
        }
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

char *gr_arena_strdup(gr_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = gr_arena_alloc(a, n);
    if (p) memcpy(p, s, n);
    return p;
}

void gr_arena_reset(gr_arena *a)
{
    while (a->head) {
        chunk *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->total = 0;
}

void gr_arena_free(gr_arena *a)
{
    if (!a) return;
    gr_arena_reset(a);
    free(a);
}

size_t gr_arena_used(const gr_arena *a) { return a->total; }

/* ---- RNG: xoshiro256** (Blackman & Vigna), seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void gr_rng_seed(gr_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t gr_rng_u64(gr_rng *r)
{
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double gr_rng_uniform(gr_rng *r) { return (double)(gr_rng_u64(r) >> 11) * 0x1.0p-53; }

double gr_rng_normal(gr_rng *r)
{
    double u1 = gr_rng_uniform(r), u2 = gr_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

uint64_t gr_rng_below(gr_rng *r, uint64_t n)
{
    /* Lemire's rejection keeps the draw unbiased. */
    uint64_t threshold = (0 - n) % n, x;
    do x = gr_rng_u64(r);
    while (x < threshold);
    return x % n;
}

/* ---- threads, time, memory ---- */

void gr_set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
#else
    (void)n;
#endif
}

int gr_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void graft_set_threads(int n) { gr_set_threads(n); }
int graft_threads(void) { return gr_threads(); }

double gr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t gr_peak_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

/* ---- progress ---- */

void gr_progress_step(const gr_progress *p, const char *stage, int64_t done, int64_t total)
{
    if (!p || !p->fn) return;
    graft_progress ev = { GRAFT_EVENT_PROGRESS, stage, done, total, NULL };
    p->fn(p->ctx, &ev);
}

void gr_progress_detail(const gr_progress *p, const char *stage, int64_t done, int64_t total,
                        const char *fmt, ...)
{
    if (!p || !p->fn) return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    graft_progress ev = { GRAFT_EVENT_PROGRESS, stage, done, total, line };
    p->fn(p->ctx, &ev);
}

void gr_progress_note(const gr_progress *p, graft_event ev, const char *stage, const char *fmt, ...)
{
    if (!p || !p->fn) return;
    char line[1024], *text = line; /* a longer note (a recipe, two paths) on the heap */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof line && (text = malloc((size_t)n + 1))) {
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    graft_progress e = { ev, stage, 0, 0, text ? text : line };
    p->fn(p->ctx, &e);
    if (text != line) free(text);
}
