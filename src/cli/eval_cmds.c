#define _DEFAULT_SOURCE
/* eval_cmds.c — `graft predict` (labels for images) and `graft eval` (metrics and an HTML
 * report on a labelled dataset), for a head saved by graft fit or a model made by finetune. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- predict ---- */

typedef struct predict_args {
    const char *model;
    int json, top, threads;
} predict_args;

static const cli_flag PREDICT_FLAGS[] = {
    { .name = "top",
      .type = CLI_INT,
      .meta = "K",
      .lo = 1,
      .hi = 1000000,
      .def = "5",
      .help = "labels shown per image",
      .off = offsetof(predict_args, top) },
    { .name = "model",
      .type = CLI_PATH,
      .meta = "MODEL",
      .help = "the model the head was fitted on, if it moved",
      .off = offsetof(predict_args, model) },
    CLI_ROW_JSON(predict_args, json),
    CLI_ROW_THREADS(predict_args, threads, "all"),
    { 0 },
};

/* The top-K labels of one row of probabilities: printed, and as a JSON array in tops. */
static void print_top(const origin *org, const float *p, int64_t k, int top, int json, cJSON *tops)
{
    unsigned char *used = calloc((size_t)k, 1);
    for (int t = 0; used && t < top; t++) {
        int best = -1;
        for (int64_t c = 0; c < k; c++)
            if (!used[c] && (best < 0 || p[c] > p[best])) best = (int)c;
        used[best] = 1;
        char buf[16];
        const char *name = class_name(org, best, buf, sizeof buf);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "label", name);
        cJSON_AddNumberToObject(e, "id", best);
        cJSON_AddNumberToObject(e, "probability", p[best]);
        cJSON_AddItemToArray(tops, e);
        if (!json) printf("  %6.2f%%  %s\n", 100.0 * p[best], name);
    }
    free(used);
}

static void print_predictions(const origin *org, const graft_tensor *prob, char **files, int top,
                              int json)
{
    int64_t k = prob->dims[1];
    if (top > k) top = (int)k;
    cJSON *arr = cJSON_CreateArray();
    for (int64_t i = 0; i < prob->dims[0]; i++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "input", files[i]);
        cJSON *tops = cJSON_AddArrayToObject(row, "top");
        if (!json) printf("%s\n", files[i]);
        print_top(org, (const float *)prob->data + i * k, k, top, json, tops);
        cJSON_AddItemToArray(arr, row);
    }
    if (json) {
        char *text = cJSON_Print(arr);
        puts(text);
        free(text);
    }
    cJSON_Delete(arr);
}

/* The probabilities of the head on the files. */
static graft_status predict_files(const origin *org, const graft_head *h, char **files,
                                  int64_t nfiles, graft_tensor **prob)
{
    graft_dataset *d = NULL;
    graft_tensor *X = NULL;
    graft_status st = graft_dataset_from_files((const char *const *)files, nfiles, &d);
    if (!st) {
        graft_extract_opts eo;
        st = origin_opts(org, cli_warnings, &eo);
        if (!st) st = origin_extract(org, d, &eo, &X, NULL, NULL);
    }
    if (!st) st = head_predict(h, &X, prob);
    graft_tensor_free(X);
    graft_dataset_free(d);
    return st;
}

static int cmd_predict(int argc, char **argv)
{
    predict_args a = { .top = 5, .threads = -1 };
    int npos, rc = cli_parse(&CMD_PREDICT, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos < 2) return usage_error("predict", "give a head and at least one image");
    apply_threads(a.threads);
    graft_head *h;
    origin org;
    if ((rc = load_head(argv[0], a.model, &h, &org))) return rc;
    char **files = NULL;
    int64_t nfiles = 0;
    graft_tensor *prob = NULL;
    rc = collect_inputs(argv + 1, npos - 1, &files, &nfiles);
    graft_status st = rc ? GRAFT_OK : predict_files(&org, h, files, nfiles, &prob);
    if (!rc && !st) print_predictions(&org, prob, files, a.top, a.json);
    for (int64_t i = 0; files && i < nfiles; i++) free(files[i]);
    free(files);
    graft_tensor_free(prob);
    graft_head_free(h);
    free_origin(&org);
    if (rc) return rc;
    return st ? fail(st) : 0;
}

const cli_command CMD_PREDICT = {
    "predict",
    "HEAD INPUT...",
    "labels for images or folders, with probabilities",
    "Top-K labels (default 5) with probabilities for each image (JPEG, PNG, PGM/PPM) or each "
    "image\n"
    "file in a folder, from a head saved by `graft fit -o HEAD`: the head remembers the model,\n"
    "layer, pooling, preprocessing and class names it was fitted with (--model points elsewhere\n"
    "if the model moved). HEAD may also be a model.onnx made by graft finetune or graft export.\n",
    PREDICT_FLAGS,
    cmd_predict
};

/* ---- eval ---- */

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Group ids of the rows (sample index[r]) from a CSV column: the distinct values sorted, as
 * int32 ids, and their names (malloc'd; free each and the array). */
static graft_status group_ids(const graft_dataset *d, int col, const graft_tensor *index,
                              graft_tensor **ids, char ***names, int *ngroup)
{
    int64_t n = index->dims[0], nd = 0;
    const int64_t *ix = index->data;
    const char **vals = malloc((size_t)(n + 1) * sizeof *vals);
    if (!vals) return GRAFT_E_NOMEM;
    for (int64_t r = 0; r < n; r++) {
        const char *v = graft_dataset_value(d, col, ix[r]);
        vals[r] = v ? v : "";
    }
    const char **sorted = malloc((size_t)(n + 1) * sizeof *sorted);
    if (!sorted) {
        free(vals);
        return GRAFT_E_NOMEM;
    }
    memcpy(sorted, vals, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_cstr);
    for (int64_t r = 0; r < n; r++)
        if (r == 0 || strcmp(sorted[r], sorted[nd - 1])) sorted[nd++] = sorted[r];
    graft_status st = graft_tensor_new(GRAFT_INT32, 1, (int64_t[]){ n }, ids);
    char **nm = st ? NULL : calloc((size_t)nd + 1, sizeof *nm);
    if (!st && !nm) st = GRAFT_E_NOMEM;
    for (int64_t g = 0; !st && g < nd; g++)
        if (!(nm[g] = strdup(sorted[g]))) st = GRAFT_E_NOMEM;
    for (int64_t r = 0; !st && r < n; r++) {
        const char **hit = bsearch(&vals[r], sorted, (size_t)nd, sizeof *sorted, cmp_cstr);
        ((int32_t *)(*ids)->data)[r] = (int32_t)(hit - sorted);
    }
    free(vals), free(sorted);
    if (st) {
        for (int64_t g = 0; nm && g < nd; g++) free(nm[g]);
        free(nm);
        return st;
    }
    *names = nm;
    *ngroup = (int)nd;
    return GRAFT_OK;
}

typedef struct eval_args {
    const char *model, *report, *cache, *group;
    int json, nocache, skip_bad, threads;
} eval_args;

static const cli_flag EVAL_FLAGS[] = {
    { .name = "report",
      .type = CLI_PATH,
      .meta = "REPORT.html",
      .help = "write an HTML report (confusion matrix, reliability diagram, tables)",
      .off = offsetof(eval_args, report) },
    { .name = "model",
      .type = CLI_PATH,
      .meta = "MODEL",
      .help = "the model the head was fitted on, if it moved",
      .off = offsetof(eval_args, model) },
    { .name = "group",
      .type = CLI_STRING,
      .meta = "COLUMN",
      .def = "group",
      .help = "the CSV column whose groups get their own accuracy",
      .off = offsetof(eval_args, group) },
    { .name = "cache",
      .type = CLI_PATH,
      .meta = "DIR",
      .def = "$GRAFT_CACHE/features",
      .help = "the feature cache",
      .off = offsetof(eval_args, cache) },
    { .name = "no-cache",
      .type = CLI_SWITCH,
      .help = "neither read nor write the cache",
      .off = offsetof(eval_args, nocache) },
    { .name = "skip-bad",
      .type = CLI_SWITCH,
      .help = "leave unreadable images out (reported) instead of stopping",
      .off = offsetof(eval_args, skip_bad) },
    CLI_ROW_JSON(eval_args, json),
    CLI_ROW_THREADS(eval_args, threads, "all"),
    { 0 },
};

/* What one `graft eval` holds; freed by eval_free. */
typedef struct eval_state {
    graft_dataset *d;
    graft_tensor *X, *y, *prob, *index, *gids;
    char *metrics, **gnames;
    char **names;
    int nclass, ngroup;
} eval_state;

static void eval_free(eval_state *s)
{
    for (int c = 0; s->names && c < s->nclass; c++) free(s->names[c]);
    free(s->names);
    for (int g = 0; s->gnames && g < s->ngroup; g++) free(s->gnames[g]);
    free(s->gnames);
    graft_tensor *all[] = { s->index, s->gids, s->X, s->y, s->prob };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) graft_tensor_free(all[i]);
    free(s->metrics);
    graft_dataset_free(s->d);
}

/* The features of DATA for the head, and the group of each row (--group COL, or a CSV column
 * named "group"). */
static graft_status eval_features(const eval_args *a, const origin *org, const char *data,
                                  eval_state *s)
{
    char cache_buf[1024];
    graft_status st = graft_dataset_open(data, NULL, &s->d);
    if (st) return st;
    int gcol = graft_dataset_column(s->d, a->group ? a->group : "group");
    if (a->group && gcol < 0) {
        snprintf(cli_error, sizeof cli_error, "%s has no column '%s' for --group", data, a->group);
        return GRAFT_E_ARG;
    }
    graft_extract_opts eo;
    st = origin_opts(org, a->json ? cli_warnings : cli_progress, &eo);
    eo.cache_dir = cache_dir(a->cache, a->nocache, cache_buf, sizeof cache_buf);
    eo.skip_bad = a->skip_bad;
    if (!st) st = origin_extract(org, s->d, &eo, &s->X, &s->y, &s->index);
    if (!st && gcol >= 0) st = group_ids(s->d, gcol, s->index, &s->gids, &s->gnames, &s->ngroup);
    return st;
}

static graft_status eval_metrics(const origin *org, const graft_head *h, eval_state *s)
{
    graft_status st = head_predict(h, &s->X, &s->prob);
    if (st) return st;
    s->nclass = (int)s->prob->dims[1];
    s->names = calloc((size_t)s->nclass + 1, sizeof *s->names);
    for (int c = 0; s->names && c < s->nclass; c++) {
        char buf[16];
        s->names[c] = strdup(class_name(org, c, buf, sizeof buf));
    }
    if (graft_dataset_num_classes(s->d) != s->nclass)
        fprintf(stderr,
                "graft: note: the dataset has %d classes, the head %d; ids are compared as "
                "they are\n",
                graft_dataset_num_classes(s->d), s->nclass);
    return graft_evaluate_json(s->prob, s->y, s->gids, (const char *const *)s->names,
                               (const char *const *)s->gnames, &s->metrics);
}

/* A fine-tuned model's accuracy on its own data (graft.history: the kept epoch's validation
 * accuracy, else its training accuracy), added to the metrics as "source" {accuracy, split,
 * drop}: evaluated on another domain, the drop is the first sign of a shift (graft adapt). */
static graft_status add_source(const origin *org, eval_state *s)
{
    cJSON *h = org->history ? cJSON_Parse(org->history) : NULL;
    const cJSON *best = cJSON_GetObjectItem(h, "best");
    int b = cJSON_IsNumber(best) ? best->valueint : -1;
    const cJSON *va = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "val_acc"), b),
                *ta = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "train_acc"), b);
    const cJSON *src = cJSON_IsNumber(va) ? va : cJSON_IsNumber(ta) ? ta : NULL;
    cJSON *m = src ? cJSON_Parse(s->metrics) : NULL;
    const cJSON *acc = cJSON_GetObjectItem(m, "accuracy");
    graft_status st = GRAFT_OK;
    if (cJSON_IsNumber(acc)) {
        cJSON *o = cJSON_AddObjectToObject(m, "source");
        cJSON_AddNumberToObject(o, "accuracy", src->valuedouble);
        cJSON_AddStringToObject(o, "split", src == va ? "validation" : "training");
        cJSON_AddNumberToObject(o, "drop", src->valuedouble - acc->valuedouble);
        char *text = cJSON_PrintUnformatted(m);
        if (text) free(s->metrics), s->metrics = text;
        else st = GRAFT_E_NOMEM;
    }
    cJSON_Delete(m);
    cJSON_Delete(h);
    return st;
}

static graft_status eval_report(const char *report, const origin *org, const char *head,
                                const char *data, const eval_state *s, double t0)
{
    char recipe[4096];
    if (org->recipe)
        snprintf(recipe, sizeof recipe, "model %s (fine-tuned)\ndata %s\n\n%s", head, data,
                 org->recipe);
    else
        snprintf(recipe, sizeof recipe,
                 "head %s\nmodel %s\nlayer %s, pooling %s\ntransform %s\ndata %s", head, org->model,
                 org->layer ? org->layer : "(the classifier's input)",
                 org->pool ? org->pool : "mean",
                 org->transform ? org->transform : "resize=256,crop=224,normalize=imagenet", data);
    return graft_evaluate_report(s->prob, s->y, s->gids, (const char *const *)s->names,
                                 (const char *const *)s->gnames, "graft eval", recipe, org->history,
                                 wall_seconds() - t0, report);
}

static void print_groups(const cJSON *m)
{
    const cJSON *c;
    printf("  %-24s %9s %8s\n", "group", "accuracy", "samples");
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(m, "groups"))
        printf("  %-24s %9.4f %8d\n", cJSON_GetObjectItem(c, "name")->valuestring,
               cJSON_GetObjectItem(c, "accuracy")->valuedouble,
               cJSON_GetObjectItem(c, "samples")->valueint);
    const cJSON *w = cJSON_GetObjectItem(m, "worst_group");
    if (cJSON_IsString(w)) printf("worst group: %s\n", w->valuestring);
}

static void print_eval(const char *data, const eval_state *s, const char *report)
{
    cJSON *m = cJSON_Parse(s->metrics);
    printf("%s: %lld samples, accuracy %.4f, top-%d %.4f, macro F1 %.4f, ECE %.4f\n", data,
           (long long)s->prob->dims[0], cJSON_GetObjectItem(m, "accuracy")->valuedouble,
           cJSON_GetObjectItem(m, "topk")->valueint, cJSON_GetObjectItem(m, "top5")->valuedouble,
           cJSON_GetObjectItem(m, "macro_f1")->valuedouble,
           cJSON_GetObjectItem(m, "ece")->valuedouble);
    printf("  %-24s %9s %9s %9s %8s\n", "class", "precision", "recall", "F1", "support");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(m, "classes")) printf(
        "  %-24s %9.4f %9.4f %9.4f %8d\n", cJSON_GetObjectItem(c, "name")->valuestring,
        cJSON_GetObjectItem(c, "precision")->valuedouble,
        cJSON_GetObjectItem(c, "recall")->valuedouble, cJSON_GetObjectItem(c, "f1")->valuedouble,
        cJSON_GetObjectItem(c, "support")->valueint);
    if (cJSON_GetObjectItem(m, "groups")) print_groups(m);
    const cJSON *src = cJSON_GetObjectItem(m, "source");
    if (src) {
        double drop = 100 * cJSON_GetObjectItem(src, "drop")->valuedouble;
        printf("source: accuracy %.4f on the fine-tuning's %s data; here %.1f points %s%s\n",
               cJSON_GetObjectItem(src, "accuracy")->valuedouble,
               cJSON_GetObjectItem(src, "split")->valuestring, fabs(drop),
               drop >= 0 ? "lower" : "higher",
               drop >= 10 ? " (a shift from the source domain? see graft adapt --help)" : "");
    }
    cJSON_Delete(m);
    if (report) printf("report written to %s\n", report);
}

static int cmd_eval(int argc, char **argv)
{
    eval_args a = { .threads = -1 };
    int npos, rc = cli_parse(&CMD_EVAL, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos > 2) return usage_error("eval", "more than a head and a dataset given");
    if (npos < 2) return usage_error("eval", "give a head and a dataset");
    apply_threads(a.threads);
    const char *head = argv[0], *data = argv[1];
    graft_head *h;
    origin org;
    if ((rc = load_head(head, a.model, &h, &org))) return rc;
    double t0 = wall_seconds();
    eval_state s = { 0 };
    graft_status st = eval_features(&a, &org, data, &s);
    if (!st) st = eval_metrics(&org, h, &s);
    if (!st) st = add_source(&org, &s);
    if (!st && a.report) st = eval_report(a.report, &org, head, data, &s, t0);
    if (!st && a.json) puts(s.metrics);
    else if (!st) print_eval(data, &s, a.report);
    eval_free(&s);
    graft_head_free(h);
    free_origin(&org);
    return st ? fail(st) : 0;
}

const cli_command CMD_EVAL = {
    "eval",
    "HEAD DATA",
    "accuracy, per-class, calibration; an HTML report",
    "Evaluates a head saved by `graft fit -o HEAD`, or a model.onnx made by graft finetune or\n"
    "graft export, on a labelled dataset: accuracy, top-5, macro F1,\n"
    "expected calibration error (15 bins) and per-class precision/recall/F1. --report writes one\n"
    "self-contained HTML page with the confusion matrix, the reliability diagram and the tables\n"
    "(and the learning curves of a fine-tuned model). When DATA is a CSV list with a column named\n"
    "group (or the one --group names), the accuracy of each group is reported and the worst\n"
    "group named: the check for a model that fails one part of the population. A fine-tuned\n"
    "model's own accuracy (its validation split, else its training data) is printed beside the\n"
    "result with the drop: evaluated on another domain, the size of the shift.\n",
    EVAL_FLAGS,
    cmd_eval
};
