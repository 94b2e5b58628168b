/* cli.h — what the `graft` command's files share (graft.c: the image commands and main;
 * keyword.c: `graft keyword`). Only graft.h below. */
#ifndef GRAFT_CLI_H
#define GRAFT_CLI_H

#include "graft.h"

#include <stddef.h>

enum { EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

extern char cli_error[512];
/* Prints graft_last_error() (or cli_error) and returns the exit code for st. */
int fail(graft_status st);
int usage_error(const char *cmd, const char *msg);
/* $GRAFT_CACHE/sub, or ~/.cache/graft/sub. */
void default_cache(char *buf, size_t n, const char *sub);

int cmd_keyword(int argc, char **argv);

/* progress.c: graft_progress_fn callbacks (ctx unused) drawing on stderr. cli_progress: a bar
 * with rate and ETA on a terminal, a line per quarter of a run otherwise, notes and warnings as
 * lines; cli_warnings: warnings only (--json and the quiet steps). cli_progress_end closes a bar
 * left open (before an error message). */
void cli_progress(void *ctx, const graft_progress *p);
void cli_warnings(void *ctx, const graft_progress *p);
void cli_progress_end(void);
/* A failed internal assertion (the library aborts with the message in graft_last_error()) is
 * said on stderr, "graft: internal error: assertion ...". */
void cli_catch_assertions(void);

#endif
