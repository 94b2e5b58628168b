/* atomic.c — writing a file so that readers see either the old or the new version: a temp file
 * beside the target, fsync, rename, fsync of the folder. Used by the writers of ONNX models,
 * safetensors (checkpoints, heads, feature caches), reports and keyword noise beds: a crash, a
 * kill or a full disk mid-write must leave the previous file as it was. */
#define _GNU_SOURCE
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- stale temp files ----
 * A writer killed between open and rename leaves "<path>.tmp.<pid>". Nothing else ever names
 * such a file again (the next writer has another pid), so without a cleanup every kill mid-write
 * would leave one behind for good. Deleting one that is still being written must never happen:
 *   - only the exact pattern gr_wfile_open writes for this path is considered (a decimal pid
 *     without leading zeros), never other files of the folder (gr_wfile_clean_dir: for the
 *     targets its caller names);
 *   - the pid must be gone: kill(pid, 0) fails with ESRCH (EPERM means alive, another user's);
 *     a reused pid makes the file look alive, which only delays its removal;
 *   - its flock must be free: gr_wfile_open holds one until the rename, and kill() cannot see a
 *     writer in another pid namespace (containers sharing a volume), flock can;
 *   - the name must still be the inode that was locked (a racing writer may have replaced it). */

/* The pid of a file named "<target>.tmp.<pid>" (a decimal pid without leading zeros, as
 * gr_wfile_open writes it) whose target is_target accepts; else 0. */
static long stale_pid(const char *name, gr_tmp_target_fn is_target, void *ctx)
{
    size_t n = strlen(name), k = n;
    while (k > 0 && name[k - 1] >= '0' && name[k - 1] <= '9') k--;
    if (k == n || n - k > 10 || name[k] == '0' || k < 6 || memcmp(name + k - 5, ".tmp.", 5))
        return 0;
    long pid = strtol(name + k, NULL, 10);
    if (pid <= 0 || pid > INT_MAX || !is_target(ctx, name, k - 5)) return 0;
    return pid;
}

static int is_dead(long pid)
{
    return pid != (long)getpid() && kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* Removes dir/name if it is a regular file nobody holds a lock on. Only a regular file is
 * opened (opening a device can have effects); read-write, as NFS grants LOCK_EX only then. */
static void remove_unlocked(int dfd, const char *name)
{
    struct stat a, b;
    if (fstatat(dfd, name, &a, AT_SYMLINK_NOFOLLOW) || !S_ISREG(a.st_mode)) return;
    int fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    if (fstat(fd, &b) == 0 && b.st_dev == a.st_dev && b.st_ino == a.st_ino &&
        flock(fd, LOCK_EX | LOCK_NB) == 0 && fstatat(dfd, name, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        unlinkat(dfd, name, 0);
    close(fd);
}

void gr_wfile_clean_dir(const char *dir, gr_tmp_target_fn is_target, void *ctx)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        long pid = stale_pid(e->d_name, is_target, ctx);
        if (pid && is_dead(pid)) remove_unlocked(dirfd(d), e->d_name);
    }
    closedir(d);
}

static int is_base(void *base, const char *name, size_t len)
{
    return len == strlen(base) && !memcmp(name, base, len);
}

void gr_wfile_clean(const char *path)
{
    char buf[PATH_MAX];
    if (!path || snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return;
    char *slash = strrchr(buf, '/');
    char *base = slash ? slash + 1 : buf;
    const char *dir = !slash ? "." : slash == buf ? "/" : buf;
    if (slash) *slash = 0;
    if (*base) gr_wfile_clean_dir(dir, is_base, base);
}

/* ---- writing ---- */

/* A device or FIFO (/dev/null, /dev/stdout, a named pipe) is written in place: a stream has no
 * old version to keep, and a rename would put a regular file where the device was (as root, for
 * /dev/null, the whole system's). */
static int open_stream(gr_wfile *w, const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return gr_err(GRAFT_E_IO, "%s: cannot open it for writing: %s", path, strerror(errno));
    if (!(w->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        return gr_err(GRAFT_E_IO, "%s: cannot open it for writing: %s", path, strerror(e));
    }
    w->stream = 1;
    return GRAFT_OK;
}

int gr_wfile_open(gr_wfile *w, const char *path)
{
    memset(w, 0, sizeof *w);
    w->path = path;
    w->lockfd = -1;
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return S_ISDIR(sb.st_mode) ? gr_err(GRAFT_E_IO, "%s: is a folder, not a file", path)
                                   : open_stream(w, path);
    gr_wfile_clean(path);
    size_t n = strlen(path) + 32;
    w->tmp = gr_malloc(n);
    if (!w->tmp) return gr_err_prefix(GRAFT_E_NOMEM, "%s", path);
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        free(w->tmp);
        w->tmp = NULL;
        return gr_err(GRAFT_E_IO, "%s: cannot create the file: %s", path, strerror(e));
    }
    /* the lock says "being written" to gr_wfile_clean in other pid namespaces; a second
     * descriptor keeps it from fclose (which comes before the rename) until the rename is done.
     * Where locks are unsupported there is no lock, and kill() alone decides. */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) w->lockfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        int e = errno;
        close(fd);
        gr_wfile_abort(w);
        return gr_err(GRAFT_E_IO, "%s: cannot create the file: %s", path, strerror(e));
    }
    return GRAFT_OK;
}

void gr_wfile_write(gr_wfile *w, const void *data, size_t n)
{
    if (w->err || n == 0) return;
    if (fwrite(data, 1, n, w->f) != n) w->err = errno ? errno : EIO;
}

static void unlock(gr_wfile *w)
{
    if (w->lockfd >= 0) close(w->lockfd);
    w->lockfd = -1;
}

void gr_wfile_abort(gr_wfile *w)
{
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->tmp) unlink(w->tmp);
    unlock(w);
    free(w->tmp);
    w->tmp = NULL;
}

/* fsync of the folder holding path, so that the rename itself is durable. */
static int sync_dir(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return ENAMETOOLONG;
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = fsync(fd) ? errno : 0;
    /* Some filesystems cannot fsync a folder; the data itself is already safe then. */
    if (e == EINVAL || e == EROFS) e = 0;
    close(fd);
    return e;
}

int gr_wfile_commit(gr_wfile *w)
{
    int e = w->err;
    const char *step = "write";
    if (!e && fflush(w->f)) e = errno;
    if (!e && !w->stream && fsync(fileno(w->f))) {
        e = errno;
        step = "fsync";
    }
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) && !e) {
        e = errno;
        step = "close";
    }
    if (!e && !w->stream && rename(w->tmp, w->path)) {
        e = errno;
        step = "rename the temp file over";
    }
    if (e) {
        gr_wfile_abort(w);
        return gr_err(GRAFT_E_IO, "%s: cannot %s the file: %s", w->path, step, strerror(e));
    }
    if (w->stream) return GRAFT_OK;
    unlock(w);
    free(w->tmp);
    w->tmp = NULL;
    e = sync_dir(w->path);
    if (e)
        return gr_err(GRAFT_E_IO, "%s: written, but cannot fsync its folder: %s", w->path,
                      strerror(e));
    return GRAFT_OK;
}

int gr_make_dirs(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return gr_err(GRAFT_E_ARG, "%.64s...: path too long", dir);
    for (char *c = p + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            mkdir(p, 0777);
            *c = '/';
        }
    mkdir(p, 0777);
    return access(p, W_OK) == 0
               ? GRAFT_OK
               : gr_err(GRAFT_E_IO, "cannot create the folder %s: %s", dir, strerror(errno));
}
