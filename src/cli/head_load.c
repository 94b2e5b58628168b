#define _DEFAULT_SOURCE
/* head_load.c — a saved head and where its features come from, for predict and eval: a head
 * saved by graft fit (its origin names the model, layer, pooling, preprocessing, classes), or a
 * whole model (.onnx with output "probabilities") made by finetune or export. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int is_onnx(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && !strcasecmp(path + n - 5, ".onnx");
}

/* A fine-tuned or exported model (ONNX with output "probabilities"): its own features are the
 * probabilities, so the "head" is the identity (*h = NULL). */
static int load_model_origin(const char *path, origin *org)
{
    graft_model *m;
    graft_status st = graft_model_load(path, &m);
    if (st) return fail(st);
    const char *classes = graft_model_metadata(m, "graft.classes"),
               *tf = graft_model_metadata(m, "graft.transform"),
               *hist = graft_model_metadata(m, "graft.history"),
               *recipe = graft_model_metadata(m, "graft.recipe");
    int ok = 0;
    for (int i = 0; i < graft_model_num_outputs(m); i++)
        ok |= !strcmp(graft_model_output_name(m, i), "probabilities");
    if (!ok) {
        fprintf(stderr,
                "graft: %s has no output 'probabilities': give a model made by graft finetune or "
                "graft export, "
                "or a head saved by graft fit\n",
                path);
        graft_model_free(m);
        return EXIT_INPUT;
    }
    org->o = cJSON_CreateObject();
    cJSON_AddStringToObject(org->o, "model", path);
    cJSON_AddStringToObject(org->o, "layer", "probabilities");
    cJSON_AddStringToObject(org->o, "pool", "none");
    if (tf) cJSON_AddStringToObject(org->o, "transform", tf);
    cJSON *c = classes ? cJSON_Parse(classes) : NULL;
    if (c) cJSON_AddItemToObject(org->o, "classes", c);
    org->model = path;
    org->layer = "probabilities";
    org->pool = "none";
    org->transform = cJSON_GetStringValue(cJSON_GetObjectItem(org->o, "transform"));
    org->classes = c;
    org->history = hist ? strdup(hist) : NULL;
    org->recipe = recipe ? strdup(recipe) : NULL;
    org->loaded = m; /* parsed once: the extraction runs it */
    return 0;
}

void free_origin(origin *org)
{
    cJSON_Delete(org->o);
    free(org->history);
    free(org->recipe);
    graft_model_free(org->loaded);
}

graft_status origin_extract(const origin *org, const graft_dataset *d, const graft_extract_opts *eo,
                            graft_tensor **X, graft_tensor **y, graft_tensor **index)
{
    if (org->loaded) return graft_model_extract(org->loaded, d, eo, X, y, index, NULL);
    return graft_extract(org->model, d, eo, X, y, index, NULL);
}

graft_status origin_opts(const origin *org, graft_progress_fn progress, graft_extract_opts *eo)
{
    graft_extract_opts_init(eo);
    eo->layer = org->layer, eo->transform = org->transform, eo->progress = progress;
    return org->pool ? graft_pool_from_name(org->pool, &eo->pool) : GRAFT_OK;
}

/* A head saved by graft fit, or a whole model (.onnx) made by finetune or export. */
int load_head(const char *path, const char *model_override, graft_head **h, origin *org)
{
    memset(org, 0, sizeof *org);
    *h = NULL;
    if (is_onnx(path)) return load_model_origin(path, org);
    graft_status st = graft_head_load(path, h);
    if (st) return fail(st);
    const char *text = graft_head_origin(*h);
    org->o = text ? cJSON_Parse(text) : NULL;
    const cJSON *m = cJSON_GetObjectItem(org->o, "model");
    org->model = model_override ? model_override : cJSON_IsString(m) ? m->valuestring : NULL;
    const cJSON *l = cJSON_GetObjectItem(org->o, "layer"), *p = cJSON_GetObjectItem(org->o, "pool"),
                *t = cJSON_GetObjectItem(org->o, "transform");
    org->layer = cJSON_IsString(l) ? l->valuestring : NULL;
    org->pool = cJSON_IsString(p) ? p->valuestring : NULL;
    org->transform = cJSON_IsString(t) ? t->valuestring : NULL;
    org->classes = cJSON_GetObjectItem(org->o, "classes");
    if (!org->model) {
        fprintf(stderr, "graft: %s does not say which model it belongs to; give --model\n", path);
        graft_head_free(*h);
        cJSON_Delete(org->o);
        return EXIT_INPUT;
    }
    return 0;
}

/* Probabilities from the features: the head's, or the features themselves for a whole model
 * (which then owns nothing new: *prob takes X). */
graft_status head_predict(const graft_head *h, graft_tensor **X, graft_tensor **prob)
{
    if (h) return graft_head_predict(h, *X, prob);
    *prob = *X;
    *X = NULL;
    return GRAFT_OK;
}

const char *class_name(const origin *org, int c, char *buf, size_t n)
{
    const cJSON *e = cJSON_GetArrayItem(org->classes, c);
    if (cJSON_IsString(e)) return e->valuestring;
    snprintf(buf, n, "%d", c);
    return buf;
}

static int image_file(const char *name)
{
    const char *dot = strrchr(name, '.');
    static const char *const ext[] = { ".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pnm", NULL };
    for (int i = 0; dot && ext[i]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Doubles the list; on failure frees it (and its k strings) and returns NULL. */
static char **grow_list(char **l, int64_t k, int64_t *cap)
{
    char **m = realloc(l, (size_t)(*cap * 2) * sizeof *l);
    if (m) {
        *cap *= 2;
        return m;
    }
    for (int64_t i = 0; i < k; i++) free(l[i]);
    free(l);
    return NULL;
}

/* Files given, and the image files of folders given (sorted), into a malloc'd list. */
int collect_inputs(char **args, int n, char ***list, int64_t *count)
{
    int64_t cap = 64, k = 0;
    char **l = malloc((size_t)cap * sizeof *l);
    for (int i = 0; l && i < n; i++) {
        struct stat st;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(args[i]);
            struct dirent *e;
            int64_t first = k;
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.' || !image_file(e->d_name)) continue;
                if (k == cap && !(l = grow_list(l, k, &cap))) break;
                size_t len = strlen(args[i]) + strlen(e->d_name) + 2;
                l[k] = malloc(len);
                if (l[k]) snprintf(l[k], len, "%s/%s", args[i], e->d_name), k++;
            }
            if (d) closedir(d);
            if (l) qsort(l + first, (size_t)(k - first), sizeof *l, cmp_str);
        } else {
            if (k == cap && !(l = grow_list(l, k, &cap))) break;
            l[k++] = strdup(args[i]);
        }
    }
    if (!l) return fail(GRAFT_E_NOMEM);
    *list = l;
    *count = k;
    return 0;
}
