/* atomic.c — writing a file so that readers see either the old or the new version: a temp file
 * beside the target, fsync, rename, fsync of the folder. Used by the ONNX and safetensors
 * writers (checkpoints must survive a crash or a full disk mid-write). */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int gr_wfile_open(gr_wfile *w, const char *path)
{
    memset(w, 0, sizeof *w);
    w->path = path;
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

void gr_wfile_abort(gr_wfile *w)
{
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->tmp) unlink(w->tmp);
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
    if (!e && fflush(w->f)) { e = errno; step = "write"; }
    if (!e && fsync(fileno(w->f))) { e = errno; step = "fsync"; }
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) && !e) { e = errno; step = "close"; }
    if (!e && rename(w->tmp, w->path)) { e = errno; step = "rename the temp file over"; }
    if (e) {
        gr_wfile_abort(w);
        return gr_err(GRAFT_E_IO, "%s: cannot %s the file: %s", w->path, step, strerror(e));
    }
    free(w->tmp);
    w->tmp = NULL;
    e = sync_dir(w->path);
    if (e) return gr_err(GRAFT_E_IO, "%s: written, but cannot fsync its folder: %s", w->path, strerror(e));
    return GRAFT_OK;
}

int gr_make_dirs(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return gr_err(GRAFT_E_ARG, "%.64s...: path too long", dir);
    for (char *c = p + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            mkdir(p, 0777);
            *c = '/';
        }
    mkdir(p, 0777);
    return access(p, W_OK) == 0 ? GRAFT_OK : gr_err(GRAFT_E_IO, "cannot create the folder %s: %s", dir, strerror(errno));
}
