/* data_cmds.c — `graft data` and `graft extract`, and the feature extraction flags that fit and
 * fewshot share (EXTRACT_ROWS in cli.h). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void apply_threads(int threads)
{
    if (threads >= 0) graft_set_threads(threads);
}

/* ---- data ---- */

typedef struct data_args {
    const char *labels;
    int json, check, threads, unlabeled;
} data_args;

static const cli_flag DATA_FLAGS[] = {
    { .name = "labels",
      .type = CLI_PATH,
      .meta = "Y.npy",
      .help = "the labels of a .npy dataset",
      .off = offsetof(data_args, labels) },
    { .name = "check",
      .type = CLI_SWITCH,
      .help = "decode every image and list the unreadable ones (exit 1 if any)",
      .off = offsetof(data_args, check) },
    { .name = "unlabeled",
      .type = CLI_SWITCH,
      .help =
          "images without labels: loose in a folder, an IDX file alone, a .npy without --labels",
      .off = offsetof(data_args, unlabeled) },
    CLI_ROW_JSON(data_args, json),
    CLI_ROW_THREADS(data_args, threads, "all"),
    { 0 },
};

typedef struct bad_list {
    cJSON *arr;
    int json;
} bad_list;

static void report_bad(void *ctx, int64_t i, const char *path, const char *msg)
{
    bad_list *b = ctx;
    if (b->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", (double)i);
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddItemToArray(b->arr, o);
    } else printf("  bad: %s\n", msg);
}

/* The dataset's kind, size and classes with their counts, as JSON (and printed as text). */
static cJSON *describe(const graft_dataset *d, const char *path, int json)
{
    int64_t n = graft_dataset_size(d), unlabelled = 0;
    int k = graft_dataset_num_classes(d);
    int64_t *count = calloc((size_t)k + 1, sizeof *count);
    if (!count) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int c = graft_dataset_label(d, i);
        if (c >= 0 && c < k) count[c]++;
        else unlabelled++;
    }
    cJSON *o = cJSON_CreateObject(), *classes = cJSON_AddArrayToObject(o, "classes");
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "kind", graft_dataset_kind(d));
    cJSON_AddNumberToObject(o, "samples", (double)n);
    cJSON_AddNumberToObject(o, "unlabelled", (double)unlabelled);
    cJSON_AddBoolToObject(o, "opened_unlabeled", graft_dataset_is_unlabeled(d));
    for (int c = 0; c < k; c++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", c);
        cJSON_AddStringToObject(e, "name", graft_dataset_class_name(d, c));
        cJSON_AddNumberToObject(e, "count", (double)count[c]);
        cJSON_AddItemToArray(classes, e);
    }
    if (!json) {
        const char *note =
            graft_dataset_is_unlabeled(d)
                ? (k ? " (opened as unlabelled: the classes for reporting only)" : " (unlabelled)")
            : unlabelled ? " (some unlabelled)"
                         : "";
        printf("%s: %s dataset, %lld samples, %d classes%s\n", path, graft_dataset_kind(d),
               (long long)n, k, note);
        for (int c = 0; c < k; c++)
            printf("  %3d  %-24s %lld\n", c, graft_dataset_class_name(d, c), (long long)count[c]);
    }
    free(count);
    return o;
}

static int cmd_data(int argc, char **argv)
{
    data_args a = { .threads = -1 };
    int npos, rc = cli_parse(&CMD_DATA, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos < 1) return usage_error("data", "no dataset given");
    if (npos > 1) return usage_error("data", "more than one dataset given");
    const char *path = argv[0];
    graft_dataset *d;
    graft_status st = a.unlabeled ? graft_dataset_open_unlabeled(path, a.labels, &d)
                                  : graft_dataset_open(path, a.labels, &d);
    if (st) return fail(st);
    cJSON *o = describe(d, path, a.json);
    if (!o) {
        graft_dataset_free(d);
        return fail(GRAFT_E_NOMEM);
    }
    int64_t nbad = 0;
    if (a.check) {
        bad_list b = { cJSON_AddArrayToObject(o, "bad"), a.json };
        st = graft_dataset_check(d, a.threads > 0 ? a.threads : graft_threads(), report_bad, &b,
                                 &nbad);
        cJSON_AddNumberToObject(o, "nbad", (double)nbad);
        if (!a.json && !st)
            printf("checked %lld images: %lld unreadable\n", (long long)graft_dataset_size(d),
                   (long long)nbad);
    }
    if (a.json) {
        char *text = cJSON_Print(o);
        puts(text);
        free(text);
    }
    cJSON_Delete(o);
    graft_dataset_free(d);
    if (st) return fail(st);
    return nbad ? EXIT_INPUT : 0;
}

const cli_command CMD_DATA = {
    "data",
    "DATA",
    "a dataset's kind, size and classes; --check decodes every image",
    "Describes a dataset: a folder with one subfolder per class, a CSV/TSV list "
    "(path,label[,...]),\n"
    "an IDX image file such as Fashion-MNIST's train-images-idx3-ubyte.gz (labels from the\n"
    "matching labels file), or a .npy array (labels from --labels). Prints the kind, the number\n"
    "of samples and each class with its id and count, in the order graft assigns ids (sorted\n"
    "names; integer labels keep their values). --check decodes every image (all cores, or\n"
    "--threads) and lists each unreadable one with its reason; the exit code is then 1.\n"
    "--unlabeled opens images without labels: a folder holding them directly or in any\n"
    "folders (all taken), an IDX images file without its labels file, a .npy without --labels;\n"
    "a folder of class subfolders keeps its classes for reporting only.\n",
    DATA_FLAGS,
    cmd_data
};

/* ---- extract ---- */

const char *cache_dir(const char *cache, int nocache, char *buf, size_t n)
{
    if (nocache) return NULL;
    if (cache) return cache;
    default_cache(buf, n, "features");
    return buf;
}

void cli_set_pool(void *base, const cli_flag *f, cli_value v)
{
    (void)graft_pool_from_name(v.s, (graft_pool *)((char *)base + f->off)); /* a name of the row */
}

graft_extract_opts extract_opts(const extract_flags *f, int quiet, char *buf, size_t n)
{
    graft_extract_opts o = f->o;
    o.cache_dir = cache_dir(f->cache, f->nocache, buf, n);
    o.progress = quiet ? cli_warnings : cli_progress;
    return o;
}

typedef struct extract_args {
    extract_flags f;
    const char *out, *lout;
    int json, unlabeled;
} extract_args;

static const cli_flag EXTRACT_FLAGS[] = {
    EXTRACT_ROWS(extract_args, f),
    { .name = "output",
      .alias = 'o',
      .type = CLI_PATH,
      .meta = "X.npy",
      .help = "write the features (n, dim) as .npy",
      .off = offsetof(extract_args, out) },
    { .name = "labels-output",
      .type = CLI_PATH,
      .meta = "Y.npy",
      .help = "write the class ids as .npy",
      .off = offsetof(extract_args, lout) },
    { .name = "unlabeled",
      .type = CLI_SWITCH,
      .help =
          "images without labels: loose in a folder, an IDX file alone, a .npy without --labels",
      .off = offsetof(extract_args, unlabeled) },
    CLI_ROW_JSON(extract_args, json),
    { 0 },
};

static void print_extract(const extract_args *a, const graft_tensor *x, int cached)
{
    if (!a->json) {
        printf("%lld samples x %lld features%s%s%s\n", (long long)x->dims[0], (long long)x->dims[1],
               cached ? " (from the cache)" : "", a->out ? " -> " : "", a->out ? a->out : "");
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "samples", (double)x->dims[0]);
    cJSON_AddNumberToObject(j, "dim", (double)x->dims[1]);
    cJSON_AddBoolToObject(j, "cached", cached);
    cJSON_AddStringToObject(j, "features", a->out ? a->out : "");
    cJSON_AddStringToObject(j, "labels", a->lout ? a->lout : "");
    char *text = cJSON_PrintUnformatted(j);
    if (text) puts(text);
    free(text);
    cJSON_Delete(j);
}

static int cmd_extract(int argc, char **argv)
{
    extract_args a = { .f.threads = -1 };
    graft_extract_opts_init(&a.f.o);
    int npos, rc = cli_parse(&CMD_EXTRACT, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos != 2) return usage_error("extract", "give a model and a dataset");
    apply_threads(a.f.threads);
    const char *model = argv[0], *data = argv[1];
    char cache_buf[1024];
    graft_extract_opts o = extract_opts(&a.f, a.json, cache_buf, sizeof cache_buf);
    graft_dataset *d;
    graft_status st = a.unlabeled ? graft_dataset_open_unlabeled(data, NULL, &d)
                                  : graft_dataset_open(data, NULL, &d);
    if (st) return fail(st);
    graft_tensor *x = NULL, *y = NULL;
    int cached = 0;
    graft_model *m = NULL; /* parsed once for the layer choice and the extraction */
    st = graft_model_load(model, &m);
    if (!st) st = resolve_auto(m, d, NULL, &o, a.json);
    if (!st) st = graft_model_extract(m, d, &o, &x, &y, NULL, &cached);
    graft_model_free(m);
    graft_dataset_free(d);
    if (!st && a.out) st = graft_npy_save(a.out, x);
    if (!st && a.lout) st = graft_npy_save(a.lout, y);
    if (!st) print_extract(&a, x, cached);
    graft_tensor_free(x);
    graft_tensor_free(y);
    return st ? fail(st) : 0;
}

const cli_command CMD_EXTRACT = {
    "extract",
    "MODEL DATA",
    "features of a dataset from a cut model (cached)",
    "Runs MODEL cut at NODE (a name `graft info` lists; default: the input of the model's\n"
    "classifier; auto: the candidate map and pooling with the best cross-validated linear probe)\n"
    "over every image of DATA (see `graft data --help`) and pools each map into one\n"
    "row: mean (global average, default), grid2 (mean over a 2x2 grid, 4 values per channel),\n"
    "grid4 (4x4, 16 values; the map's sides must be multiples of 4) or none. SPEC is the\n"
    "preprocessing (default resize=256,crop=224,normalize=imagenet). The result is cached in\n"
    "DIR (default $GRAFT_CACHE/features, i.e. ~/.cache/graft/features), keyed by the model's\n"
    "content, the layer, the pooling, the preprocessing and the image files, so an unchanged\n"
    "request is read back and a changed input recomputed. --output writes the features\n"
    "(n, dim) and --labels-output the class ids as .npy. Unreadable images stop the run, or with\n"
    "--skip-bad are left out and reported.\n",
    EXTRACT_FLAGS,
    cmd_extract
};

/* ---- --layer auto ---- */

static char *auto_choice;
static void free_auto_choice(void) { free(auto_choice); }

void print_layer_ranking(const cJSON *arr, FILE *out)
{
    fprintf(
        out,
        "layer auto: %d candidates (layer, pooling) ranked by the held-out log-loss of a 3-fold "
        "cross-validated linear probe:\n  log-loss  accuracy\n",
        cJSON_GetArraySize(arr));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (i++ == 10) {
            fprintf(out, "  ...\n");
            break;
        }
        fprintf(out, "  %8.4f  %8.4f  %-40s %-5s (%d features)\n",
                cJSON_GetObjectItem(e, "log_loss")->valuedouble,
                cJSON_GetObjectItem(e, "accuracy")->valuedouble,
                cJSON_GetObjectItem(e, "layer")->valuestring,
                cJSON_GetObjectItem(e, "pool")->valuestring,
                cJSON_GetObjectItem(e, "dim")->valueint);
    }
    const cJSON *best = cJSON_GetArrayItem(arr, 0);
    if (best)
        fprintf(out, "using %s with %s pooling\n", cJSON_GetObjectItem(best, "layer")->valuestring,
                cJSON_GetObjectItem(best, "pool")->valuestring);
}

graft_status resolve_auto(const graft_model *model, const graft_dataset *d,
                          const graft_tensor *subset, graft_extract_opts *eo, int json)
{
    if (!eo->layer || strcmp(eo->layer, "auto")) return GRAFT_OK;
    char *ranking, *layer;
    graft_pool pool;
    graft_extract_opts q = *eo;
    q.progress = cli_warnings;
    graft_status st = graft_model_layer_auto(model, d, subset, &q, 0, &ranking, &layer, &pool);
    if (st) return st;
    cJSON *arr = cJSON_Parse(ranking);
    free(ranking);
    if (!arr) {
        free(layer);
        snprintf(cli_error, sizeof cli_error, "out of memory reading the layer ranking");
        return GRAFT_E_NOMEM;
    }
    print_layer_ranking(arr, json ? stderr : stdout);
    cJSON_Delete(arr);
    auto_choice = layer; /* kept for the rest of the command, freed at exit */
    atexit(free_auto_choice);
    eo->layer = layer;
    eo->pool = pool;
    return GRAFT_OK;
}

graft_status map_classes(const graft_dataset *train, const graft_dataset *test, graft_tensor *y,
                         const char *path)
{
    int kt = graft_dataset_num_classes(test), k = graft_dataset_num_classes(train);
    int *map = malloc((size_t)(kt + 1) * sizeof *map);
    if (!map) return GRAFT_E_NOMEM;
    for (int c = 0; c < kt; c++) {
        map[c] = -1;
        for (int j = 0; j < k; j++)
            if (!strcmp(graft_dataset_class_name(test, c), graft_dataset_class_name(train, j)))
                map[c] = j;
        if (map[c] < 0) {
            snprintf(cli_error, sizeof cli_error,
                     "class '%s' of %s is not among the training classes",
                     graft_dataset_class_name(test, c), path);
            free(map);
            return GRAFT_E_ARG;
        }
    }
    int32_t *l = y->data;
    for (int64_t i = 0; i < y->dims[0]; i++) l[i] = l[i] >= 0 && l[i] < kt ? map[l[i]] : -1;
    free(map);
    return GRAFT_OK;
}
