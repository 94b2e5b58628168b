#define _GNU_SOURCE
/* synth.c — speech clips made offline with Debian's espeak-ng and sox: each clip is
 * `espeak-ng -v VOICE -s SPEED -p PITCH --stdout TEXT | sox -t wav - -r 16000 -b 16 -c 1 OUT
 * EFFECTS...`, run as two processes joined by a pipe (no shell: the text and voice reach the
 * programs as single arguments), several clips at a time. The programs' stderr goes to an
 * anonymous in-memory file (memfd), never to the user's terminal; its last line goes into the
 * error message when a program fails. */
#include "speech.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { MAX_ARGS = 64 };

typedef struct running {
    pid_t speak, sox;
    int speak_err, sox_err; /* the programs' stderr (memfd or /dev/null), read when they end */
    const gr_speak_job *job;
    char tmp[1100]; /* sox writes here; renamed to job->out once both programs succeeded */
} running;

/* sox's arguments: the conversion, then the job's effects split at spaces. */
static int sox_argv(const gr_speak_job *j, const char *out, char *buf, size_t nbuf, char **argv)
{
    int n = 0;
    const char *fixed[] = { "sox", "-V1", "-D",    "-R", "-t", "wav", "-", "-t",
                            "wav", "-r",  "16000", "-b", "16", "-c",  "1", out };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) argv[n++] = (char *)fixed[i];
    snprintf(buf, nbuf, "%s", j->effects);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && n < MAX_ARGS - 1;
         t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    return n;
}

/* A file for a program's stderr: an anonymous in-memory file, or /dev/null if there is none. */
static int stderr_file(void)
{
    int fd = memfd_create("graft-tool-stderr", MFD_CLOEXEC);
    return fd >= 0 ? fd : open("/dev/null", O_WRONLY | O_CLOEXEC);
}

/* The last non-empty line a program wrote to fd (at most n - 1 bytes of it), then fd closed. */
static void stderr_tail(int fd, char *out, size_t n)
{
    out[0] = 0;
    if (fd < 0) return;
    char buf[4096];
    off_t end = lseek(fd, 0, SEEK_END),
          from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t k = end > 0 ? pread(fd, buf, (size_t)(end - from), from) : 0;
    close(fd);
    if (k <= 0) return;
    buf[k] = 0;
    while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == '\r' || buf[k - 1] == ' ')) buf[--k] = 0;
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    size_t len = strlen(line) < n - 1 ? strlen(line) : n - 1;
    memcpy(out, line, len);
    out[len] = 0;
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 32) *c = ' ';
}

/* A program's output: stdout to fd_out (or, when < 0, to /dev/null), stdin from fd_in (or none),
 * stderr to err; the pipe's two ends closed in the child. */
static void child_files(posix_spawn_file_actions_t *a, int fd_in, int fd_out, const int pipe_fd[2],
                        int err)
{
    posix_spawn_file_actions_init(a);
    if (fd_in >= 0) posix_spawn_file_actions_adddup2(a, fd_in, 0);
    if (fd_out >= 0) posix_spawn_file_actions_adddup2(a, fd_out, 1);
    else posix_spawn_file_actions_addopen(a, 1, "/dev/null", O_WRONLY, 0);
    if (pipe_fd) {
        posix_spawn_file_actions_addclose(a, pipe_fd[0]);
        posix_spawn_file_actions_addclose(a, pipe_fd[1]);
    }
    if (err >= 0) posix_spawn_file_actions_adddup2(a, err, 2);
    else posix_spawn_file_actions_addopen(a, 2, "/dev/null", O_WRONLY, 0);
}

/* espeak-ng's output piped into sox, which writes r->tmp. */
static int start(const gr_speak_job *j, running *r)
{
    char speed[16], pitch[16], effects[sizeof j->effects];
    snprintf(speed, sizeof speed, "%d", j->speed);
    snprintf(pitch, sizeof pitch, "%d", j->pitch);
    char *speak_argv[] = { "espeak-ng", "-v", (char *)j->voice, "-s", speed, "-p", pitch,
                           "--stdout",  "--", (char *)j->text,  NULL };
    char *sox[MAX_ARGS];
    if (snprintf(r->tmp, sizeof r->tmp, "%s.tmp.%d", j->out, (int)getpid()) >= (int)sizeof r->tmp)
        return gr_err(GRAFT_E_ARG, "%s: path too long", j->out);
    int fd[2];
    if (pipe(fd)) return gr_err(GRAFT_E_IO, "pipe: %s", strerror(errno));
    sox_argv(j, r->tmp, effects, sizeof effects, sox);
    r->speak_err = stderr_file();
    r->sox_err = stderr_file();
    posix_spawn_file_actions_t a, b;
    child_files(&a, -1, fd[1], fd, r->speak_err);
    child_files(&b, fd[0], -1, fd, r->sox_err);
    int e1 = posix_spawnp(&r->speak, "espeak-ng", &a, NULL, speak_argv, environ);
    int e2 = e1 ? 0 : posix_spawnp(&r->sox, "sox", &b, NULL, sox, environ);
    posix_spawn_file_actions_destroy(&a);
    posix_spawn_file_actions_destroy(&b);
    close(fd[0]);
    close(fd[1]);
    if (e1 || e2) {
        if (!e1) waitpid(r->speak, NULL, 0);
        if (r->speak_err >= 0) close(r->speak_err);
        if (r->sox_err >= 0) close(r->sox_err);
        return gr_err(
            GRAFT_E_IO,
            "cannot run %s: %s (install Debian's espeak-ng and sox: bash scripts/setup.sh)",
            e1 ? "espeak-ng" : "sox", strerror(e1 ? e1 : e2));
    }
    r->job = j;
    return GRAFT_OK;
}

static int wait_for(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR) return -1;
    return 0;
}

static int exit_code(int waited, int status)
{
    return !waited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ": <the tool's last line>", or nothing when it said nothing. */
static const char *said(const char *line, char *buf, size_t n)
{
    if (!line[0]) return "";
    snprintf(buf, n, ": %s", line);
    return buf;
}

/* sox exits 0 when it cannot write its output (a full disk, measured with sox 14.4), and
 * espeak-ng does when it had said everything into the pipe before; at -V1 sox reports only
 * failures, so a line from it is one. The clip is read back: a data chunk shorter than its header
 * says, or a header sox could not write, is a failure naming the clip. (A clip cut short whose
 * header sox could still fix reads as a good one.) */
static int check_clip(const running *r, const char *sox_said)
{
    const gr_speak_job *j = r->job;
    char b[600];
    if (sox_said[0])
        return gr_err(GRAFT_E_IO, "sox exited 0 but failed writing %s%s", j->out,
                      said(sox_said, b, sizeof b));
    gr_audio a = { 0 };
    int st = gr_wav_read(r->tmp, &a);
    gr_audio_free(&a);
    if (st)
        return gr_err(st, "sox exited 0 but wrote a damaged clip %s: %s", j->out,
                      graft_last_error());
    return GRAFT_OK;
}

/* Both programs done: the clip is renamed into place only when both succeeded and it reads back
 * whole, so an interrupted or failed run never leaves a partial WAV under the final name. sox is
 * checked first: when it fails, espeak-ng dies of the broken pipe and would take the blame. */
static int finish(running *r)
{
    int s1 = 0, s2 = 0;
    int w1 = wait_for(r->speak, &s1), w2 = wait_for(r->sox, &s2);
    char speak_said[400], sox_said[400], b[420];
    stderr_tail(r->speak_err, speak_said, sizeof speak_said);
    stderr_tail(r->sox_err, sox_said, sizeof sox_said);
    const gr_speak_job *j = r->job;
    int st = GRAFT_OK;
    if (w2 || !WIFEXITED(s2) || WEXITSTATUS(s2))
        st = gr_err(GRAFT_E_IO, "sox failed (exit %d) writing %s with effects \"%s\"%s",
                    exit_code(w2, s2), j->out, j->effects, said(sox_said, b, sizeof b));
    else if (w1 || !WIFEXITED(s1) || WEXITSTATUS(s1))
        st = gr_err(GRAFT_E_IO, "espeak-ng failed (exit %d) for voice '%s' saying \"%s\"%s",
                    exit_code(w1, s1), j->voice, j->text, said(speak_said, b, sizeof b));
    else if ((st = check_clip(r, sox_said)))
        ;
    else if (rename(r->tmp, j->out) != 0)
        st = gr_err(GRAFT_E_IO, "%s: cannot move the clip into place: %s", j->out, strerror(errno));
    if (st) unlink(r->tmp);
    return st;
}

int gr_speak(const gr_speak_job *jobs, int n, int parallel, const gr_progress *progress)
{
    if (parallel < 1) parallel = 1;
    if (parallel > 32) parallel = 32;
    running r[32];
    int st = GRAFT_OK;
    for (int i = 0; i < n && !st; i += parallel) {
        int m = n - i < parallel ? n - i : parallel, started = 0;
        for (; started < m && !st; started++) st = start(&jobs[i + started], &r[started]);
        if (st) started--;
        for (int k = 0; k < started; k++) {
            int s = finish(&r[k]);
            if (!st) st = s;
        }
        if (!st) gr_progress_step(progress, "synthesize", i + m, n);
    }
    return st;
}

int gr_run_tool(char *const argv[])
{
    int err = stderr_file();
    posix_spawn_file_actions_t a;
    child_files(&a, -1, -1, NULL, err);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &a, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&a);
    if (e) {
        if (err >= 0) close(err);
        return gr_err(GRAFT_E_IO, "cannot run %s: %s", argv[0], strerror(e));
    }
    int s = 0, w = wait_for(pid, &s);
    char line[400], b[420];
    stderr_tail(err, line, sizeof line);
    if (w || !WIFEXITED(s) || WEXITSTATUS(s))
        return gr_err(GRAFT_E_IO, "%s failed (exit %d)%s", argv[0], exit_code(w, s),
                      said(line, b, sizeof b));
    return GRAFT_OK;
}
