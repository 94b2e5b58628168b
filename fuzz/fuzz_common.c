/* fuzz_common.c — the scratch folder and file helpers of fuzz_common.h. */
#define _XOPEN_SOURCE 700
#include "fuzz_common.h"

#include <graft.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[512];
static int scratch_failed;

static int unlink_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *path) { nftw(path, unlink_one, 16, FTW_DEPTH | FTW_PHYS); }

static void remove_scratch(void)
{
    if (scratch[0]) remove_tree(scratch);
}

/* Removes the scratch folders in parent of processes that no longer run (a crash skips atexit). */
static void remove_stale(const char *parent)
{
    DIR *d = opendir(parent);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        long pid;
        char tail[8], path[1024]; /* mkdtemp's six characters, and nothing after them */
        if (sscanf(e->d_name, "graft-fuzz-%ld-%7s", &pid, tail) != 2 || strlen(tail) != 6 ||
            pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        if (snprintf(path, sizeof path, "%s/%s", parent, e->d_name) < (int)sizeof path)
            remove_tree(path);
    }
    closedir(d);
}

static int writable_dir(const char *d)
{
    struct stat sb;
    return d && *d && stat(d, &sb) == 0 && S_ISDIR(sb.st_mode) && access(d, W_OK | X_OK) == 0;
}

const char *fz_dir(void)
{
    if (scratch[0] || scratch_failed) return scratch[0] ? scratch : NULL;
    const char *cand[4] = { getenv("GRAFT_FUZZ_TMP"), "/dev/shm", getenv("TMPDIR"), "/tmp" };
    for (int i = 0; i < 4 && !scratch[0]; i++) {
        if (!writable_dir(cand[i])) continue;
        remove_stale(cand[i]);
        if (snprintf(scratch, sizeof scratch, "%s/graft-fuzz-%ld-XXXXXX", cand[i],
                     (long)getpid()) >= (int)sizeof scratch ||
            !mkdtemp(scratch))
            scratch[0] = 0;
    }
    if (!scratch[0]) {
        scratch_failed = 1;
        fprintf(stderr,
                "fuzz: no scratch folder (tried $GRAFT_FUZZ_TMP, /dev/shm, $TMPDIR, /tmp)\n");
        return NULL;
    }
    atexit(remove_scratch);
    return scratch;
}

int fz_path(const char *name, char *path, size_t n)
{
    const char *d = fz_dir();
    if (!d || snprintf(path, n, "%s/%s", d, name) >= (int)n) return -1;
    return 0;
}

int fz_write(const char *name, const void *data, size_t size, char *path, size_t n)
{
    if (fz_path(name, path, n)) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    const char *p = data;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        p += w, size -= (size_t)w;
    }
    return close(fd) ? -1 : 0;
}

int fz_mkdir(const char *name)
{
    char path[1024];
    if (fz_path(name, path, sizeof path)) return -1;
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

void fz_remove(const char *name)
{
    char path[1024];
    if (!fz_path(name, path, sizeof path)) remove_tree(path);
}

int fz_note(const char *what, int st)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("GRAFT_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "  %s: %s%s%s\n", what, graft_status_name((graft_status)st), st ? ": " : "",
                st ? graft_last_error() : "");
    /* the API's contract, checked on every call: a status of the enum, and a message on failure */
    if (st < GRAFT_OK || st > GRAFT_E_LIMIT) {
        fprintf(stderr, "fuzz: %s returned %d, not a graft_status (message: %s)\n", what, st,
                graft_last_error());
        abort();
    }
    if (st && !*graft_last_error()) {
        fprintf(stderr, "fuzz: %s failed (%s) with an empty graft_last_error()\n", what,
                graft_status_name((graft_status)st));
        abort();
    }
    return st;
}

uint32_t fz_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

unsigned fz_touch(const void *p, size_t n)
{
    const volatile unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    return s;
}

size_t fz_dtype_size(int dtype)
{
    switch (dtype) {
    case GRAFT_FLOAT:
    case GRAFT_INT32: return 4;
    case GRAFT_UINT8:
    case GRAFT_INT8:
    case GRAFT_BOOL: return 1;
    case GRAFT_INT64:
    case GRAFT_DOUBLE: return 8;
    default: return 0;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* One input at a time on one thread: OpenMP workers would only add noise to the coverage
     * and the timings (and each would be another thread for the sanitizers to watch). */
    graft_set_threads(1);
    /* Limits far below the defaults: a small file may legitimately ask for gigabytes (a model
     * that upsamples 1,000-fold), and spending them is a cost, not a bug; what the fuzzer is
     * after is a file that gets past the limits or the checks. 64 MB also keeps each input fast
     * under ASan. */
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)64 << 20);
    graft_set_limit(GRAFT_LIMIT_IMAGE_PIXELS, (int64_t)4 << 20);
    graft_set_limit(GRAFT_LIMIT_DECOMPRESSED_BYTES, (int64_t)64 << 20);
    graft_set_limit(GRAFT_LIMIT_AUDIO_SECONDS, 600);
    graft_set_limit(GRAFT_LIMIT_CLASSES, 100000);
    return 0;
}
