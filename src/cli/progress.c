/* progress.c — what the library reports (graft_progress_fn) drawn on stderr: on a terminal a bar
 * rewritten in place with rate and ETA, on a pipe or file one plain line per quarter of a run;
 * notes and warnings as lines, as graft printed them before the library reported through a
 * callback. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How a stage is shown. `plain`: quarter lines off a terminal too; `keep`: a finished bar stays
 * as a line (else it is erased: a note with the run's figures follows, as after a fine-tuning
 * epoch). What is not listed counts "items", shown everywhere and kept. */
typedef struct stage_style {
    const char *stage, *unit, *rate_unit;
    int plain, keep;
} stage_style;

static const stage_style styles[] = {
    { "extract", "images", "img", 1, 1 },
    { "probe", "images", "img", 0, 0 },
    { "train", "images", "img", 0, 0 },
};
static const stage_style other = { NULL, "items", "items", 1, 1 };

static struct {
    int tty;        /* stderr is a terminal (-1: not asked yet) */
    char stage[64]; /* the run being shown */
    const stage_style *style;
    int64_t last;     /* its last `done` */
    double t0, drawn; /* its start and the last redraw */
    int next;         /* plain lines: the next quarter to report */
    int open;         /* a bar is on the terminal's last line */
    int width;        /* its length, to erase it */
} bar = { .tty = -1 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int on_tty(void)
{
    if (bar.tty < 0) bar.tty = isatty(2);
    return bar.tty;
}

static const stage_style *style_of(const char *stage)
{
    for (size_t i = 0; stage && i < sizeof styles / sizeof *styles; i++)
        if (!strcmp(styles[i].stage, stage)) return &styles[i];
    return &other;
}

static void erase(void)
{
    if (bar.open) fprintf(stderr, "\r%*s\r", bar.width, "");
    bar.open = 0;
}

/* A new run starts with done = 0, or shows as one (another stage, or fewer done than before). */
static void start_run(const graft_progress *p)
{
    snprintf(bar.stage, sizeof bar.stage, "%s", p->stage ? p->stage : "");
    bar.style = style_of(p->stage);
    bar.t0 = bar.drawn = now();
    bar.next = 1;
    bar.last = 0;
}

/* "extract: 96/160 images, 250 img/s, ETA 0 s[, detail]" */
static int draw(const graft_progress *p, const char *lead, const char *end)
{
    double el = now() - bar.t0, rate = el > 0 ? (double)p->done / el : 0;
    const stage_style *s = bar.style;
    return fprintf(stderr, "%s%s: %lld/%lld %s, %.0f %s/s, ETA %.0f s%s%s%s", lead, bar.stage,
                   (long long)p->done, (long long)p->total, s->unit, rate, s->rate_unit,
                   rate > 0 ? (double)(p->total - p->done) / rate : 0.0, p->message ? ", " : "",
                   p->message ? p->message : "", end);
}

static void show_step(const graft_progress *p)
{
    if (p->done == 0 || strcmp(bar.stage, p->stage ? p->stage : "") || p->done < bar.last)
        start_run(p);
    bar.last = p->done;
    if (p->done == 0) return;
    int final = p->total > 0 && p->done >= p->total;
    if (on_tty()) {
        if (!final && now() - bar.drawn < 0.1) return;
        bar.drawn = now();
        if (final && !bar.style->keep) {
            erase();
            return;
        }
        int n = draw(p, "\r", final ? "\n" : "   ");
        bar.open = !final;
        bar.width = n > 1 ? n - 1 : 0;
        return;
    }
    if (!bar.style->plain || p->total <= 0) return;
    if (!final && p->done * 4 < (int64_t)bar.next * p->total) return;
    if (final && bar.next > 4) return; /* the last quarter's line said it already */
    bar.next = final ? 5 : (int)(p->done * 4 / p->total) + 1;
    draw(p, "", "\n");
}

void cli_progress(void *ctx, const graft_progress *p)
{
    (void)ctx;
    if (p->event == GRAFT_EVENT_PROGRESS) {
        show_step(p);
        return;
    }
    erase(); /* the bar comes back with the next step */
    if (p->message) fprintf(stderr, "%s\n", p->message);
}

void cli_warnings(void *ctx, const graft_progress *p)
{
    (void)ctx;
    if (p->event == GRAFT_EVENT_WARNING && p->message) fprintf(stderr, "%s\n", p->message);
}

void cli_progress_end(void)
{
    if (!bar.open) return;
    if (bar.style && bar.style->keep) fputc('\n', stderr);
    else erase();
    bar.open = 0;
}

/* ---- a failed internal assertion ---- */

static void say(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w, n -= (size_t)w;
    }
}

/* The library does not print a failed assertion: it leaves the message in graft_last_error()
 * and aborts (core.h, GR_ASSERT). Said here as graft said it before, then the default action
 * (a core). Only write(2): this runs in a signal handler. */
static void on_abort(int sig)
{
    const char *m = graft_last_error();
    if (!strncmp(m, "internal error: assertion", 25)) {
        say("graft: ");
        say(m);
        say("\n");
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void cli_catch_assertions(void)
{
    struct sigaction a = { .sa_handler = on_abort };
    sigaction(SIGABRT, &a, NULL);
}
