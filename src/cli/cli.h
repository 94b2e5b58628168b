/* cli.h — what the files of the `graft` command share. Only graft.h below: the CLI uses the
 * public API alone. One file per command family:
 *   cli_main.c      main, the list of commands, `graft --help`, --limit, --flags-table
 *   flags.c         the flag tables' engine (flags.h)
 *   model_cmds.c    info, run
 *   data_cmds.c     data, extract and the flags of every command that extracts features
 *   fit_cmds.c      fit, fewshot, export
 *   eval_cmds.c     predict, eval (a saved head and where its features come from: head_load.c)
 *   finetune_cmd.c  finetune
 *   adapt_cmd.c     adapt
 *   keyword_cmds.c  keyword embed, listen, export; keyword_train.c: keyword train, eval
 *   progress.c      what the library reports (graft_progress_fn), drawn on stderr
 * Exit codes: 0 success, 1 bad input (a file, model or data problem), 2 bad usage, 3 internal
 * error or out of memory. */
#ifndef GRAFT_CLI_H
#define GRAFT_CLI_H

#include "graft.h"

#include "flags.h"

#include <stddef.h>
#include <stdio.h>

enum { EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

extern char cli_error[512];
/* Prints graft_last_error() (or cli_error) and returns the exit code for st. */
int fail(graft_status st);
int usage_error(const char *cmd, const char *msg);
/* $GRAFT_CACHE/sub, or ~/.cache/graft/sub. */
void default_cache(char *buf, size_t n, const char *sub);
double wall_seconds(void);

/* ---- the commands (cmd_NAME(argc, argv): the arguments after the command's name) ---- */
extern const cli_command CMD_INFO, CMD_RUN, CMD_DATA, CMD_EXTRACT, CMD_FIT, CMD_FEWSHOT, CMD_EXPORT,
    CMD_PREDICT, CMD_EVAL, CMD_FINETUNE, CMD_KW_TRAIN, CMD_KW_EVAL, CMD_KW_LISTEN, CMD_KW_EMBED,
    CMD_KW_EXPORT, CMD_ADAPT;

/* ---- feature extraction, shared by extract, fit, fewshot (data_cmds.c) ---- */
typedef struct extract_flags {
    graft_extract_opts o;
    const char *cache;
    int nocache, threads;
} extract_flags;

/* The rows of those flags, for a command whose argument struct T has an extract_flags f. */
#define EXTRACT_ROWS(T, f)                                                                         \
    { .name = "layer",                                                                             \
      .type = CLI_STRING,                                                                          \
      .meta = "NODE|auto",                                                                         \
      .help = "cut the model here (graft info lists cut points; auto: measured)",                  \
      .def = "the classifier's input",                                                             \
      .off = offsetof(T, f.o.layer) },                                                             \
        { .name = "pool",                                                                          \
          .type = CLI_CHOICE,                                                                      \
          .choices = "mean|grid2|grid4|none",                                                      \
          .help = "pool each map into one row",                                                    \
          .def = "mean",                                                                           \
          .off = offsetof(T, f.o.pool),                                                            \
          .set = cli_set_pool },                                                                   \
        { .name = "transform",                                                                     \
          .type = CLI_STRING,                                                                      \
          .meta = "SPEC",                                                                          \
          .help = "preprocessing",                                                                 \
          .def = "the model's graft.transform, else resize=256,crop=224,normalize=imagenet",       \
          .off = offsetof(T, f.o.transform) },                                                     \
        { .name = "cache",                                                                         \
          .type = CLI_PATH,                                                                        \
          .meta = "DIR",                                                                           \
          .help = "the feature cache",                                                             \
          .def = "$GRAFT_CACHE/features",                                                          \
          .off = offsetof(T, f.cache) },                                                           \
        { .name = "no-cache",                                                                      \
          .type = CLI_SWITCH,                                                                      \
          .help = "neither read nor write the cache",                                              \
          .off = offsetof(T, f.nocache) },                                                         \
        { .name = "batch",                                                                         \
          .type = CLI_INT,                                                                         \
          .meta = "N",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 65536,                                                                             \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .help = "images a forward pass",                                                         \
          .def = "32",                                                                             \
          .off = offsetof(T, f.o.batch) },                                                         \
        { .name = "workers",                                                                       \
          .type = CLI_INT,                                                                         \
          .meta = "N",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 256,                                                                               \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .help = "image decoding threads",                                                        \
          .def = "2",                                                                              \
          .off = offsetof(T, f.o.workers) },                                                       \
        { .name = "skip-bad",                                                                      \
          .type = CLI_SWITCH,                                                                      \
          .help = "leave unreadable images out (reported) instead of stopping",                    \
          .off = offsetof(T, f.o.skip_bad) },                                                      \
        CLI_ROW_THREADS(T, f.threads, "all")

/* The setter of a --pool row: the name (checked by the row) as its graft_pool. */
void cli_set_pool(void *base, const cli_flag *f, cli_value v);
/* The extract options of f (its o starts from graft_extract_opts_init), with its cache folder (in
 * buf), reporting on stderr (quiet: warnings only). */
graft_extract_opts extract_opts(const extract_flags *f, int quiet, char *buf, size_t n);
/* --cache DIR / --no-cache / the default folder, as the cache_dir of graft_extract_opts. */
const char *cache_dir(const char *cache, int nocache, char *buf, size_t n);
/* --layer auto: rank the candidate layers on `subset` (NULL: all), print the ranking, and set
 * eo->layer / eo->pool to the best (the layer's name stays allocated until exit). */
/* The ranking of a layer "auto" (graft_layer_auto's JSON array, best first): the best ten and
 * the choice. */
struct cJSON;
void print_layer_ranking(const struct cJSON *arr, FILE *out);
graft_status resolve_auto(const graft_model *model, const graft_dataset *d,
                          const graft_tensor *subset, graft_extract_opts *eo, int json);
/* Test labels renumbered to the training dataset's ids, matching classes by name. */
graft_status map_classes(const graft_dataset *train, const graft_dataset *test, graft_tensor *y,
                         const char *path);
/* ---- a saved head and where its features come from (head_load.c) ---- */
typedef struct origin {
    struct cJSON *o;
    const char *model, *layer, *pool, *transform;
    struct cJSON *classes;
    char *history;       /* a fine-tuned model's learning curves (graft.history), or NULL */
    char *recipe;        /* and its recipe (graft.recipe), or NULL */
    graft_model *loaded; /* a whole model, parsed once; NULL for a head (its model is read once,
                            by origin_extract) */
} origin;

/* A head saved by graft fit, or a whole model (.onnx) made by finetune or export (*h NULL: its
 * features are the probabilities). Returns 0 or an exit code (printed). */
int load_head(const char *path, const char *model_override, graft_head **h, origin *org);
void free_origin(origin *org);
/* The extraction an origin describes, reporting through `progress`. */
graft_status origin_opts(const origin *org, graft_progress_fn progress, graft_extract_opts *eo);
/* The features of d for the origin (graft_extract on its model). */
graft_status origin_extract(const origin *org, const graft_dataset *d, const graft_extract_opts *eo,
                            graft_tensor **X, graft_tensor **y, graft_tensor **index);
/* Probabilities from the features: the head's, or the features themselves for a whole model
 * (which then owns nothing new: *prob takes X). */
graft_status head_predict(const graft_head *h, graft_tensor **X, graft_tensor **prob);
const char *class_name(const origin *org, int c, char *buf, size_t n);
/* Files given, and the image files of folders given (sorted), into a malloc'd list. Returns 0
 * or an exit code. */
int collect_inputs(char **args, int n, char ***list, int64_t *count);

/* ---- keyword (keyword_cmds.c) ---- */
/* openWakeWord's models folder: given, or the npm package's in the cache. */
void models_dir(const char *given, char *buf, size_t n);
/* HEAD.onnx -> HEAD_full.onnx */
void full_output(const char *head, char *out, size_t n);
/* Writes the joined detector; adds {"full": {...}} to *summary (JSON) or prints a line. */
graft_status export_full(const char *head, const char *models, const char *out, int json,
                         char **summary);

/* threads >= 0 (given): graft_set_threads(threads), 0 meaning every core; -1: not given. */
void apply_threads(int threads);

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
