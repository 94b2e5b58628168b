#define _GNU_SOURCE
/* speech_synth.c — speech clips made offline with Debian's espeak-ng and sox: each clip is
 * `espeak-ng -v VOICE -s SPEED -p PITCH --stdout TEXT | sox -t wav - -r 16000 -b 16 -c 1 OUT
 * EFFECTS...`, run as two processes joined by a pipe (no shell: the text and voice reach the
 * programs as single arguments), several clips at a time. */
#include "speech.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { MAX_ARGS = 64 };

typedef struct running {
    pid_t speak, sox;
    int speak_rc, sox_rc;
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

static int start(const gr_speak_job *j, running *r)
{
    int fd[2];
    if (pipe(fd)) return gr_err(GRAFT_E_IO, "pipe: %s", strerror(errno));
    char speed[16], pitch[16], effects[sizeof j->effects];
    snprintf(speed, sizeof speed, "%d", j->speed);
    snprintf(pitch, sizeof pitch, "%d", j->pitch);
    char *speak_argv[] = { "espeak-ng", "-v", (char *)j->voice, "-s", speed, "-p", pitch,
                           "--stdout",  "--", (char *)j->text,  NULL };
    char *sox[MAX_ARGS];
    if (snprintf(r->tmp, sizeof r->tmp, "%s.tmp.%d", j->out, (int)getpid()) >= (int)sizeof r->tmp) {
        close(fd[0]);
        close(fd[1]);
        return gr_err(GRAFT_E_ARG, "%s: path too long", j->out);
    }
    sox_argv(j, r->tmp, effects, sizeof effects, sox);
    posix_spawn_file_actions_t a, b;
    posix_spawn_file_actions_init(&a);
    posix_spawn_file_actions_adddup2(&a, fd[1], 1);
    posix_spawn_file_actions_addclose(&a, fd[0]);
    posix_spawn_file_actions_addclose(&a, fd[1]);
    posix_spawn_file_actions_addopen(&a, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_init(&b);
    posix_spawn_file_actions_adddup2(&b, fd[0], 0);
    posix_spawn_file_actions_addclose(&b, fd[0]);
    posix_spawn_file_actions_addclose(&b, fd[1]);
    posix_spawn_file_actions_addopen(&b, 2, "/dev/null", O_WRONLY, 0);
    int e1 = posix_spawnp(&r->speak, "espeak-ng", &a, NULL, speak_argv, environ);
    int e2 = e1 ? 0 : posix_spawnp(&r->sox, "sox", &b, NULL, sox, environ);
    posix_spawn_file_actions_destroy(&a);
    posix_spawn_file_actions_destroy(&b);
    close(fd[0]);
    close(fd[1]);
    if (e1 || e2) {
        if (!e1) waitpid(r->speak, NULL, 0);
        return gr_err(
            GRAFT_E_IO,
            "cannot run %s: %s (install Debian's espeak-ng and sox: bash scripts/setup.sh)",
            e1 ? "espeak-ng" : "sox", strerror(e1 ? e1 : e2));
    }
    r->job = j;
    r->speak_rc = r->sox_rc = -1;
    return GRAFT_OK;
}

static int wait_for(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR) return -1;
    return 0;
}

/* Both programs done: the clip is renamed into place only when both succeeded, so an
 * interrupted or failed run never leaves a partial WAV under the final name. sox is checked
 * first: when it fails, espeak-ng dies of the broken pipe and would take the blame. */
static int finish(running *r)
{
    int s1 = 0, s2 = 0;
    int w1 = wait_for(r->speak, &s1), w2 = wait_for(r->sox, &s2);
    const gr_speak_job *j = r->job;
    int st = GRAFT_OK;
    if (w2 || !WIFEXITED(s2) || WEXITSTATUS(s2))
        st = gr_err(GRAFT_E_IO, "sox failed (exit %d) writing %s with effects \"%s\"",
                    !w2 && WIFEXITED(s2) ? WEXITSTATUS(s2) : -1, j->out, j->effects);
    else if (w1 || !WIFEXITED(s1) || WEXITSTATUS(s1))
        st = gr_err(GRAFT_E_IO, "espeak-ng failed (exit %d) for voice '%s' saying \"%s\"",
                    !w1 && WIFEXITED(s1) ? WEXITSTATUS(s1) : -1, j->voice, j->text);
    else if (rename(r->tmp, j->out) != 0)
        st = gr_err(GRAFT_E_IO, "%s: cannot move the clip into place: %s", j->out, strerror(errno));
    if (st) unlink(r->tmp);
    return st;
}

int gr_speak(const gr_speak_job *jobs, int n, int parallel,
             void (*progress)(int done, int total, void *), void *ctx)
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
        if (progress && !st) progress(i + m, n, ctx);
    }
    return st;
}

int gr_run_tool(char *const argv[])
{
    posix_spawn_file_actions_t a;
    posix_spawn_file_actions_init(&a);
    posix_spawn_file_actions_addopen(&a, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&a, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &a, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&a);
    if (e) return gr_err(GRAFT_E_IO, "cannot run %s: %s", argv[0], strerror(e));
    int s = 0;
    waitpid(pid, &s, 0);
    if (!WIFEXITED(s) || WEXITSTATUS(s))
        return gr_err(GRAFT_E_IO, "%s failed (exit %d)", argv[0],
                      WIFEXITED(s) ? WEXITSTATUS(s) : -1);
    return GRAFT_OK;
}
