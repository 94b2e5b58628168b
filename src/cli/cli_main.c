#define _DEFAULT_SOURCE
/* cli_main.c — the `graft` command: the list of commands, `graft --help`, --limit (every
 * command), the hidden --flags-table, and main. A thin layer over include/graft.h: each command
 * parses its flags from its table (flags.h), calls the API and prints results (text or --json)
 * on stdout and errors on stderr. */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char cli_error[512]; /* a bad-input message of the CLI's own, printed by fail() */

int fail(graft_status st)
{
    cli_progress_end();
    fprintf(stderr, "graft: %s\n", cli_error[0] ? cli_error : graft_last_error());
    return st == GRAFT_E_INTERNAL || st == GRAFT_E_NOMEM ? EXIT_INTERNAL : EXIT_INPUT;
}

int usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "graft %s: %s (see graft %s --help)\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

void default_cache(char *buf, size_t n, const char *sub)
{
    const char *c = getenv("GRAFT_CACHE"), *home = getenv("HOME");
    if (c && *c) snprintf(buf, n, "%s/%s", c, sub);
    else snprintf(buf, n, "%s/.cache/graft/%s", home ? home : ".", sub);
}

double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- version ---- */

typedef struct version_args {
    int json;
} version_args;

static const cli_flag VERSION_FLAGS[] = { CLI_ROW_JSON(version_args, json), { 0 } };
static const cli_command CMD_VERSION;

static int cmd_version(int argc, char **argv)
{
    version_args a = { 0 };
    int npos, rc = cli_parse(&CMD_VERSION, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos) return usage_error("version", "takes no arguments");
    if (a.json) printf("{\"version\": \"%s\"}\n", graft_version());
    else printf("graft %s\n", graft_version());
    return 0;
}

static const cli_command CMD_VERSION = { "version",           "",
                                         "print the version", "Prints graft's version.\n",
                                         VERSION_FLAGS,       cmd_version };

/* ---- the list of commands ---- */

static const cli_command *const COMMANDS[] = {
    &CMD_INFO,    &CMD_RUN,       &CMD_DATA,     &CMD_EXTRACT,   &CMD_FIT,     &CMD_FINETUNE,
    &CMD_ADAPT,   &CMD_PREDICT,   &CMD_EVAL,     &CMD_EXPORT,    &CMD_FEWSHOT, &CMD_KW_TRAIN,
    &CMD_KW_EVAL, &CMD_KW_LISTEN, &CMD_KW_EMBED, &CMD_KW_EXPORT, &CMD_VERSION, NULL,
};

static void print_commands(FILE *out, const char *prefix)
{
    for (const cli_command *const *c = COMMANDS; *c; c++) {
        if (prefix && strncmp((*c)->name, prefix, strlen(prefix))) continue;
        char syn[160];
        int n =
            snprintf(syn, sizeof syn, "%s%s%s", (*c)->name, (*c)->args[0] ? " " : "", (*c)->args);
        if (n > 34) fprintf(out, "  %s\n  %-34s  %s\n", syn, "", (*c)->summary);
        else fprintf(out, "  %-34s  %s\n", syn, (*c)->summary);
    }
}

static void print_help(FILE *out)
{
    fputs("graft — transfer learning for pretrained ONNX models, on the CPU\n"
          "\n"
          "usage: graft COMMAND [ARGS] [flags]   (graft COMMAND --help: its flags)\n"
          "\n"
          "commands:\n",
          out);
    print_commands(out, NULL);
    fputs("\ncommon flags: --json (machine-readable output), --threads N (default: all cores), "
          "--help,\n"
          "  --limit NAME=VALUE (what a file may make graft allocate: tensor-bytes, "
          "image-pixels, audio-rate,\n"
          "  audio-seconds, decompressed-bytes, classes, k; see docs/ARCHITECTURE.md)\n"
          "exit codes: 0 ok, 1 bad input, 2 bad usage, 3 internal error\n",
          out);
}

/* `graft keyword SUB ...`: the sub-command's row of COMMANDS. */
static int run_keyword(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        FILE *out = argc < 1 ? stderr : stdout;
        fputs("usage: graft keyword SUBCOMMAND [ARGS] [flags]   (graft keyword SUBCOMMAND "
              "--help: its flags)\n\nsubcommands:\n",
              out);
        print_commands(out, "keyword ");
        return argc < 1 ? EXIT_USAGE : 0;
    }
    char name[64];
    snprintf(name, sizeof name, "keyword %s", argv[0]);
    for (const cli_command *const *c = COMMANDS; *c; c++)
        if (!strcmp((*c)->name, name)) return (*c)->run(argc - 1, argv + 1);
    return usage_error("keyword", "unknown subcommand (train, eval, listen, embed, export)");
}

/* --limit NAME=VALUE, anywhere on the command line and repeatable, for every command: sets the
 * limit and removes the pair from argv. Returns 0, or the exit code of a usage error. */
static int take_limits(int *argc, char **argv)
{
    int w = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--limit")) {
            argv[w++] = argv[i];
            continue;
        }
        const char *spec = i + 1 < *argc ? argv[++i] : "";
        const char *eq = strchr(spec, '=');
        char name[64];
        int64_t v;
        int which = -1;
        if (eq && eq - spec < (int)sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
            which = graft_limit_find(name);
        }
        if (which < 0 || cli_parse_size(eq + 1, &v)) {
            fprintf(stderr, "graft: --limit '%s': expected NAME=VALUE with NAME one of", spec);
            for (int k = 0; k < GRAFT_LIMIT_COUNT; k++)
                fprintf(stderr, " %s", graft_limit_name((graft_limit)k));
            fprintf(stderr,
                    " and VALUE a positive number (suffix K, M, G or T for powers of 1024)\n");
            return EXIT_USAGE;
        }
        graft_set_limit((graft_limit)which, v);
    }
    argv[w] = NULL;
    *argc = w;
    return 0;
}

/* SIGXFSZ, see main: caught, not ignored, so that the programs graft runs keep the default. */
static void on_xfsz(int sig) { (void)sig; }

int main(int argc, char **argv)
{
    /* A file-size limit (ulimit -f, RLIMIT_FSIZE) kills a writer with SIGXFSZ by default, before
     * it can remove its temp file or say what happened; caught, the write fails with EFBIG and
     * the atomic writer names the file and "File too large", as for a full disk. A handler
     * rather than SIG_IGN, which sox would inherit: sox exits 0 after a failed write (a
     * truncated clip taken for a good one), while killed by the signal it is seen to fail. */
    struct sigaction xfsz = { .sa_handler = on_xfsz, .sa_flags = SA_RESTART };
    sigaction(SIGXFSZ, &xfsz, NULL);
    cli_catch_assertions();
    int lim = take_limits(&argc, argv);
    if (lim) return lim;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        print_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--flags-table")) { /* hidden: every command's flags, for the tests */
        for (const cli_command *const *c = COMMANDS; *c; c++) cli_print_table(*c, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) return cmd_version(argc - 2, argv + 2);
    if (!strcmp(cmd, "keyword")) return run_keyword(argc - 2, argv + 2);
    for (const cli_command *const *c = COMMANDS; *c; c++)
        if (!strcmp((*c)->name, cmd)) return (*c)->run(argc - 2, argv + 2);
    fprintf(stderr, "graft: unknown command '%s'\n\n", cmd);
    print_help(stderr);
    return EXIT_USAGE;
}
