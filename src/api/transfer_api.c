/* transfer_api.c — the public transfer API (include/graft.h) over transfer/. */
#include "api.h"

#include "train/train.h"
#include "transfer/transfer.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <string.h>

/* The public options hold explicit values (graft_*_opts_init, GRAFT_AUTO, GRAFT_NEVER); the
 * internal structs keep their own conventions (0 or -1: the default, 0: none). The conversions
 * are here. */

_Static_assert((int)GRAFT_POOL_MEAN == GR_POOL_MEAN && (int)GRAFT_POOL_GRID2 == GR_POOL_GRID2 &&
                   (int)GRAFT_POOL_GRID4 == GR_POOL_GRID4 && (int)GRAFT_POOL_NONE == GR_POOL_NONE,
               "graft_pool mirrors GR_POOL_*");

static int pool_of(graft_pool p, int *out)
{
    if (!graft_pool_name(p)) return gr_err(GRAFT_E_ARG, "unknown pooling %d", (int)p);
    *out = (int)p;
    return GRAFT_OK;
}

static gr_progress progress_of(graft_progress_fn fn, void *ctx) { return (gr_progress){ fn, ctx }; }

/* extract_opts' fields for the internal struct (the layer and pooling aside); the transform
 * defaults to m's own. */
static int extract_common(const gr_model *m, const graft_extract_opts *o, gr_extract_opts *eo)
{
    if (o->batch <= 0 || o->workers <= 0)
        return gr_err(GRAFT_E_ARG, "extract: batch and workers must be positive (got %d and %d)",
                      o->batch, o->workers);
    *eo = (gr_extract_opts){ .batch = o->batch,
                             .workers = o->workers,
                             .bad = o->skip_bad ? GR_BAD_SKIP : GR_BAD_FATAL,
                             .progress = progress_of(o->progress, o->progress_ctx) };
    return gr_api_model_transform(m, o->transform, &eo->t);
}

static int to_tensor(graft_dtype dt, int rank, const int64_t *dims, const void *data, size_t bytes,
                     graft_tensor **out)
{
    if (!out) return GRAFT_OK;
    int st = graft_tensor_new(dt, rank, dims, out);
    if (!st && bytes) memcpy((*out)->data, data, bytes);
    return st;
}

static graft_status extract(const gr_model *m, const graft_dataset *d, const graft_extract_opts *o,
                            graft_tensor **features, graft_tensor **labels, graft_tensor **index,
                            int *cached)
{
    graft_extract_opts def;
    graft_extract_opts_init(&def);
    if (!o) o = &def;
    gr_extract_opts eo;
    int st = extract_common(m, o, &eo);
    if (!st) st = pool_of(o->pool, &eo.pool);
    if (st) return (graft_status)st;
    eo.layer = o->layer, eo.cache_dir = o->cache_dir;
    gr_features f;
    if ((st = gr_extract(m, d->ds, NULL, 0, &eo, &f))) return (graft_status)st;
    graft_tensor *x = NULL, *y = NULL, *ix = NULL;
    int64_t dx[2] = { f.n, f.dim }, dn[1] = { f.n };
    st = to_tensor(GRAFT_FLOAT, 2, dx, f.X, (size_t)f.n * f.dim * sizeof(float),
                   features ? &x : NULL);
    if (!st)
        st = to_tensor(GRAFT_INT32, 1, dn, f.y, (size_t)f.n * sizeof(int32_t), labels ? &y : NULL);
    if (!st)
        st = to_tensor(GRAFT_INT64, 1, dn, f.index, (size_t)f.n * sizeof(int64_t),
                       index ? &ix : NULL);
    if (st) {
        graft_tensor_free(x);
        graft_tensor_free(y);
        graft_tensor_free(ix);
    } else {
        if (features) *features = x;
        if (labels) *labels = y;
        if (index) *index = ix;
        if (cached) *cached = f.cached;
    }
    gr_features_free(&f);
    return (graft_status)st;
}

graft_status graft_model_extract(const graft_model *m, const graft_dataset *d,
                                 const graft_extract_opts *o, graft_tensor **features,
                                 graft_tensor **labels, graft_tensor **index, int *cached)
{
    if (!m || !d)
        return gr_err(GRAFT_E_ARG, "graft_model_extract: model and dataset must not be NULL");
    return extract(&m->src, d, o, features, labels, index, cached);
}

graft_status graft_extract(const char *model_path, const graft_dataset *d,
                           const graft_extract_opts *o, graft_tensor **features,
                           graft_tensor **labels, graft_tensor **index, int *cached)
{
    if (!model_path || !d)
        return gr_err(GRAFT_E_ARG, "graft_extract: model and dataset must not be NULL");
    gr_model m;
    int st = gr_model_open(model_path, &m);
    if (st) return (graft_status)st;
    st = extract(&m, d, o, features, labels, index, cached);
    gr_model_close(&m);
    return (graft_status)st;
}

/* ---- heads ---- */

struct graft_head {
    gr_head h;
};

static int kind_of(graft_head_kind k, int *out)
{
    switch (k) {
    case GRAFT_HEAD_LOGREG: *out = GR_HEAD_LOGREG; return GRAFT_OK;
    case GRAFT_HEAD_MLP: *out = GR_HEAD_MLP; return GRAFT_OK;
    case GRAFT_HEAD_KNN: *out = GR_HEAD_KNN; return GRAFT_OK;
    case GRAFT_HEAD_NCM: *out = GR_HEAD_NCM; return GRAFT_OK;
    }
    return gr_err(GRAFT_E_ARG, "unknown head kind %d", (int)k);
}

static int norm_of(graft_norm n, int kind, int *out)
{
    switch (n) {
    case GRAFT_NORM_AUTO:
        *out = kind == GR_HEAD_KNN || kind == GR_HEAD_NCM ? GR_FEAT_L2 : GR_FEAT_STANDARDIZE;
        return GRAFT_OK;
    case GRAFT_NORM_STANDARDIZE: *out = GR_FEAT_STANDARDIZE; return GRAFT_OK;
    case GRAFT_NORM_L2: *out = GR_FEAT_L2; return GRAFT_OK;
    case GRAFT_NORM_NONE: *out = GR_FEAT_NONE; return GRAFT_OK;
    }
    return gr_err(GRAFT_E_ARG, "unknown feature normalisation %d", (int)n);
}

static int check_rows(const graft_tensor *X, const graft_tensor *y)
{
    if (!X || X->dtype != GRAFT_FLOAT || X->rank != 2)
        return gr_err(GRAFT_E_SHAPE, "features must be a float32 (n, dim) tensor");
    if (y && (y->dtype != GRAFT_INT32 || y->rank != 1 || y->dims[0] != X->dims[0]))
        return gr_err(GRAFT_E_SHAPE, "labels must be int32 (n) with n = %lld rows",
                      (long long)X->dims[0]);
    return GRAFT_OK;
}

/* The public fit options (NULL: the defaults) as the internal ones. */
static int fit_opts_of(const graft_fit_opts *o, gr_fit_opts *fo)
{
    graft_fit_opts def;
    graft_fit_opts_init(&def);
    if (!o) o = &def;
    int kind = GR_HEAD_LOGREG, st = kind_of(o->kind, &kind);
    if (st) return st;
    gr_fit_defaults(fo, kind);
    if ((st = norm_of(o->norm, kind, &fo->norm))) return st;
    if ((o->C != GRAFT_AUTO && !(o->C > 0)) || o->hidden <= 0 || o->epochs <= 0 || o->k <= 0)
        return gr_err(GRAFT_E_ARG,
                      "graft_head_fit: C (or GRAFT_AUTO), hidden, epochs and k must be positive");
    fo->C = o->C == GRAFT_AUTO ? 0 : o->C; /* 0: cross-validated */
    fo->hidden = o->hidden, fo->epochs = o->epochs, fo->k = o->k;
    fo->seed = o->seed;
    return GRAFT_OK;
}

graft_status graft_head_fit(const graft_tensor *X, const graft_tensor *y, int nclass,
                            const graft_fit_opts *o, graft_head **out)
{
    int st = check_rows(X, y);
    if (st) return (graft_status)st;
    if (!y || !out || nclass < 2)
        return gr_err(GRAFT_E_ARG, "graft_head_fit: labels, out and nclass >= 2 are needed");
    gr_fit_opts fo;
    if ((st = fit_opts_of(o, &fo))) return (graft_status)st;
    graft_head *h = gr_calloc(1, sizeof *h);
    if (!h) return GRAFT_E_NOMEM;
    st = gr_head_fit(X->data, y->data, X->dims[0], (int)X->dims[1], nclass, &fo, &h->h);
    if (st) {
        free(h);
        return (graft_status)st;
    }
    *out = h;
    return GRAFT_OK;
}

graft_status graft_head_predict(const graft_head *h, const graft_tensor *X, graft_tensor **prob)
{
    if (!h || !prob)
        return gr_err(GRAFT_E_ARG, "graft_head_predict: head and prob must not be NULL");
    int st = check_rows(X, NULL);
    if (st) return (graft_status)st;
    if (X->dims[1] != h->h.dim)
        return gr_err(GRAFT_E_SHAPE, "the head takes %d features, got %lld", h->h.dim,
                      (long long)X->dims[1]);
    int64_t dims[2] = { X->dims[0], h->h.nclass };
    if ((st = graft_tensor_new(GRAFT_FLOAT, 2, dims, prob))) return (graft_status)st;
    if ((st = gr_head_predict(&h->h, X->data, X->dims[0], (*prob)->data))) {
        graft_tensor_free(*prob);
        *prob = NULL;
    }
    return (graft_status)st;
}

graft_status graft_head_save(const graft_head *h, const char *path)
{
    if (!h) return gr_err(GRAFT_E_ARG, "graft_head_save: no head");
    return (graft_status)gr_head_save(&h->h, path);
}

/* Everything the file states (classes, k, shapes, labels, class names) is checked by
 * gr_head_load before it is trusted, so a loaded head predicts in bounded memory. */
graft_status graft_head_load(const char *path, graft_head **out)
{
    if (!path || !out) return gr_err(GRAFT_E_ARG, "graft_head_load: path and out must not be NULL");
    graft_head *h = gr_calloc(1, sizeof *h);
    if (!h) return GRAFT_E_NOMEM;
    int st = gr_head_load(path, &h->h);
    if (st) {
        free(h);
        return (graft_status)st;
    }
    *out = h;
    return GRAFT_OK;
}

void graft_head_free(graft_head *h)
{
    if (!h) return;
    gr_head_free(&h->h);
    free(h);
}

double graft_head_C(const graft_head *h) { return h->h.C; }
double graft_head_cv_accuracy(const graft_head *h) { return h->h.cv_scores ? h->h.cv_acc : -1; }

/* ---- evaluation ---- */

/* Metrics of probabilities against labels, with group ids when given (their count in *ngroup). */
static int metrics_of(const graft_tensor *prob, const graft_tensor *y, const graft_tensor *group,
                      int *ngroup, gr_metrics *m)
{
    *ngroup = 0;
    if (group) {
        if (group->dtype != GRAFT_INT32 || group->rank != 1 || group->dims[0] != prob->dims[0])
            return gr_err(GRAFT_E_SHAPE, "group ids must be int32 (n)");
        const int32_t *g = group->data;
        for (int64_t i = 0; i < group->dims[0]; i++)
            *ngroup = g[i] + 1 > *ngroup ? g[i] + 1 : *ngroup;
    }
    return gr_metrics_compute(prob->data, y->data, prob->dims[0], (int)prob->dims[1],
                              group ? group->data : NULL, *ngroup, 0, m);
}

graft_status graft_evaluate_json(const graft_tensor *prob, const graft_tensor *y,
                                 const graft_tensor *group, const char *const *class_names,
                                 const char *const *group_names, char **json)
{
    int st = check_rows(prob, y);
    if (st) return (graft_status)st;
    if (!y || !json) return gr_err(GRAFT_E_ARG, "graft_evaluate_json: labels and json are needed");
    int nclass = (int)prob->dims[1], ngroup;
    gr_metrics m;
    if ((st = metrics_of(prob, y, group, &ngroup, &m))) return (graft_status)st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "samples", (double)m.n);
    cJSON_AddNumberToObject(o, "accuracy", m.accuracy);
    cJSON_AddNumberToObject(o, "top5", m.top5);
    cJSON_AddNumberToObject(o, "topk", m.topk);
    cJSON_AddNumberToObject(o, "macro_f1", m.macro_f1);
    cJSON_AddNumberToObject(o, "ece", m.ece);
    cJSON *cls = cJSON_AddArrayToObject(o, "classes");
    for (int c = 0; c < nclass; c++) {
        cJSON *e = cJSON_CreateObject();
        char id[16];
        snprintf(id, sizeof id, "%d", c);
        cJSON_AddStringToObject(e, "name", class_names && class_names[c] ? class_names[c] : id);
        cJSON_AddNumberToObject(e, "precision", m.precision[c]);
        cJSON_AddNumberToObject(e, "recall", m.recall[c]);
        cJSON_AddNumberToObject(e, "f1", m.f1[c]);
        cJSON_AddNumberToObject(e, "support", (double)m.support[c]);
        cJSON *row = cJSON_AddArrayToObject(e, "confusion");
        for (int k = 0; k < nclass; k++)
            cJSON_AddItemToArray(row,
                                 cJSON_CreateNumber((double)m.confusion[(int64_t)c * nclass + k]));
        cJSON_AddItemToArray(cls, e);
    }
    cJSON *bins = cJSON_AddArrayToObject(o, "calibration");
    for (int b = 0; b < m.nbins; b++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "accuracy", m.bin_acc[b]);
        cJSON_AddNumberToObject(e, "confidence", m.bin_conf[b]);
        cJSON_AddNumberToObject(e, "count", (double)m.bin_count[b]);
        cJSON_AddItemToArray(bins, e);
    }
    if (ngroup) {
        cJSON *gs = cJSON_AddArrayToObject(o, "groups");
        for (int k = 0; k < ngroup; k++) {
            cJSON *e = cJSON_CreateObject();
            char id[16];
            snprintf(id, sizeof id, "%d", k);
            cJSON_AddStringToObject(e, "name", group_names && group_names[k] ? group_names[k] : id);
            cJSON_AddNumberToObject(e, "accuracy", m.group_acc[k]);
            cJSON_AddNumberToObject(e, "samples", (double)m.group_n[k]);
            cJSON_AddItemToArray(gs, e);
        }
        if (m.worst_group >= 0) {
            char id[16];
            snprintf(id, sizeof id, "%d", m.worst_group);
            cJSON_AddStringToObject(
                o, "worst_group",
                group_names && group_names[m.worst_group] ? group_names[m.worst_group] : id);
        }
    }
    gr_metrics_free(&m);
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *json ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
}

graft_status graft_head_set_origin(graft_head *h, const char *json)
{
    if (!h) return gr_err(GRAFT_E_ARG, "graft_head_set_origin: no head");
    char *copy = json ? gr_strdup(json) : NULL;
    if (json && !copy) return GRAFT_E_NOMEM;
    free(h->h.origin);
    h->h.origin = copy;
    return GRAFT_OK;
}

const char *graft_head_origin(const graft_head *h) { return h->h.origin; }

/* Learning curves from a fine-tuning history (see graft_finetune): losses and accuracies
 * against the epoch counted over both phases. */
typedef struct curves {
    gr_curve c[4];
    int n;
    double *buf;
} curves;

static int curves_of(const char *history, curves *cv)
{
    static const char *const keys[4] = { "train_loss", "val_loss", "train_acc", "val_acc" };
    static const char *const names[4] = { "train loss", "val loss", "train accuracy",
                                          "val accuracy" };
    cJSON *o = cJSON_Parse(history);
    if (!o || !cJSON_IsArray(cJSON_GetObjectItem(o, keys[0]))) {
        cJSON_Delete(o);
        return gr_err(GRAFT_E_FORMAT, "the learning-curve history is not graft's JSON");
    }
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(o, keys[0]));
    if (n == 0) { /* no epoch was trained: no curves */
        cJSON_Delete(o);
        return GRAFT_OK;
    }
    cv->buf = malloc((size_t)n * 5 * sizeof *cv->buf);
    if (!cv->buf) {
        cJSON_Delete(o);
        return GRAFT_E_NOMEM;
    }
    double *x = cv->buf;
    for (int i = 0; i < n; i++) x[i] = i + 1;
    for (int k = 0; k < 4; k++) {
        double *y = cv->buf + (size_t)(k + 1) * n;
        const cJSON *a = cJSON_GetObjectItem(o, keys[k]);
        int any = 0;
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(a, i);
            y[i] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
            any |= isfinite(y[i]);
        }
        if (any) cv->c[cv->n++] = (gr_curve){ .name = names[k], .x = x, .y = y, .n = n };
    }
    cJSON_Delete(o);
    return GRAFT_OK;
}

graft_status graft_evaluate_report(const graft_tensor *prob, const graft_tensor *y,
                                   const graft_tensor *group, const char *const *class_names,
                                   const char *const *group_names, const char *title,
                                   const char *recipe, const char *history, double seconds,
                                   const char *path)
{
    int st = check_rows(prob, y);
    if (st) return (graft_status)st;
    if (!y || !path)
        return gr_err(GRAFT_E_ARG, "graft_evaluate_report: labels and path are needed");
    int nclass = (int)prob->dims[1], ngroup;
    gr_metrics m;
    if ((st = metrics_of(prob, y, group, &ngroup, &m))) return (graft_status)st;
    char **names = gr_calloc((size_t)nclass + 1, sizeof *names);
    for (int c = 0; names && c < nclass; c++) {
        char id[16];
        snprintf(id, sizeof id, "%d", c);
        names[c] = gr_strdup(class_names && class_names[c] ? class_names[c] : id);
    }
    gr_report r = { .title = title ? title : "graft evaluation",
                    .recipe = recipe ? recipe : "",
                    .class_names = (const char *const *)names,
                    .group_names = group_names,
                    .m = &m,
                    .seconds = seconds,
                    .peak_mb = (double)gr_peak_rss() / (1 << 20) };
    curves cv = { 0 };
    if (!st && history) st = curves_of(history, &cv);
    r.curves = cv.c, r.ncurves = cv.n;
    if (!st) st = names ? gr_report_write(path, &r) : GRAFT_E_NOMEM;
    free(cv.buf);
    for (int c = 0; names && c < nclass; c++) free(names[c]);
    free(names);
    gr_metrics_free(&m);
    return (graft_status)st;
}

graft_status graft_head_export(const graft_head *h, const char *model_path, const char *out_path)
{
    if (!h || !out_path)
        return gr_err(GRAFT_E_ARG, "graft_head_export: head and output path must not be NULL");
    cJSON *o = h->h.origin ? cJSON_Parse(h->h.origin) : NULL;
    const cJSON *m = cJSON_GetObjectItem(o, "model"), *l = cJSON_GetObjectItem(o, "layer"),
                *p = cJSON_GetObjectItem(o, "pool"), *t = cJSON_GetObjectItem(o, "transform"),
                *c = cJSON_GetObjectItem(o, "classes");
    if (!model_path) model_path = cJSON_IsString(m) ? m->valuestring : NULL;
    int st =
        model_path ? GRAFT_OK : gr_err(GRAFT_E_ARG, "the head does not record its model; give one");
    graft_pool pool = GRAFT_POOL_MEAN; /* the origin names it ("mean" when absent) */
    if (!st && cJSON_IsString(p)) st = graft_pool_from_name(p->valuestring, &pool);
    gr_transform tf;
    if (!st && cJSON_IsString(t)) st = gr_transform_parse(t->valuestring, &tf);
    else if (!st) gr_transform_default(&tf);
    char *classes = c ? cJSON_PrintUnformatted(c) : NULL;
    if (!st)
        st = gr_export_head(model_path, &h->h, cJSON_IsString(l) ? l->valuestring : NULL, (int)pool,
                            &tf, classes, out_path);
    free(classes);
    cJSON_Delete(o);
    return (graft_status)st;
}

graft_status graft_fewshot_eval(const graft_tensor *X, const graft_tensor *y, int nclass,
                                const graft_fewshot_opts *o, double *mean, double *ci95)
{
    int st = check_rows(X, y);
    if (st) return (graft_status)st;
    if (!y || !mean) return gr_err(GRAFT_E_ARG, "graft_fewshot_eval: labels and mean are needed");
    graft_fewshot_opts def;
    graft_fewshot_opts_init(&def);
    if (!o) o = &def;
    if (o->way <= 0 || o->shot <= 0 || o->query <= 0 || o->episodes <= 0)
        return gr_err(GRAFT_E_ARG,
                      "graft_fewshot_eval: way, shot, query and episodes must be positive");
    gr_fewshot_opts fo = {
        .way = o->way, .shot = o->shot, .query = o->query, .episodes = o->episodes, .seed = o->seed
    };
    switch (o->method) {
    case GRAFT_FEWSHOT_SIMPLESHOT: fo.method = GR_FS_SIMPLESHOT; break;
    case GRAFT_FEWSHOT_KNN: fo.method = GR_FS_KNN; break;
    case GRAFT_FEWSHOT_IMPRINT: fo.method = GR_FS_IMPRINT; break;
    default: return gr_err(GRAFT_E_ARG, "unknown few-shot method %d", (int)o->method);
    }
    if (o->transductive && fo.method != GR_FS_SIMPLESHOT)
        return gr_err(GRAFT_E_ARG,
                      "transductive few-shot refines simpleshot's prototypes; the method is %s",
                      graft_fewshot_method_name(o->method));
    if (o->transductive) fo.method = GR_FS_TRANSDUCTIVE;
    gr_fewshot_result r;
    if ((st = gr_fewshot_eval(X->data, y->data, X->dims[0], (int)X->dims[1], nclass, &fo, &r)))
        return (graft_status)st;
    *mean = r.mean;
    if (ci95) *ci95 = r.ci95;
    gr_fewshot_free(&r);
    return GRAFT_OK;
}

/* The scores as graft_layer_auto's JSON array; NULL when out of memory. */
static cJSON *ranking_json(const gr_layer_score *s, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(arr, e)) {
            cJSON_Delete(e);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddStringToObject(e, "layer", s[i].layer);
        cJSON_AddStringToObject(e, "pool", gr_pool_name(s[i].pool));
        cJSON_AddNumberToObject(e, "dim", s[i].dim);
        cJSON_AddNumberToObject(e, "accuracy", s[i].cv_acc);
        cJSON_AddNumberToObject(e, "log_loss", s[i].cv_logloss);
    }
    return arr;
}

static graft_status layer_auto(const gr_model *m, const graft_dataset *d,
                               const graft_tensor *subset, const graft_extract_opts *o,
                               int max_candidates, char **ranking, char **layer, graft_pool *pool)
{
    if (!d || !ranking || !layer || !pool)
        return gr_err(GRAFT_E_ARG, "graft_layer_auto: NULL argument");
    if (subset && (subset->dtype != GRAFT_INT64 || subset->rank != 1))
        return gr_err(GRAFT_E_ARG, "graft_layer_auto: the subset must be int64 indices");
    graft_extract_opts def;
    graft_extract_opts_init(&def);
    if (!o) o = &def;
    gr_extract_opts eo;
    int st = extract_common(m, o, &eo);
    if (st) return (graft_status)st;
    gr_layer_score *s;
    int n;
    if ((st = gr_layer_auto(m, d->ds, subset ? subset->data : NULL, subset ? subset->dims[0] : 0,
                            &eo, max_candidates, &s, &n)))
        return (graft_status)st;
    cJSON *arr = ranking_json(s, n);
    *ranking = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    *layer = n ? gr_strdup(s[0].layer) : NULL;
    *pool = n ? (graft_pool)s[0].pool : GRAFT_POOL_MEAN;
    free(s);
    if (!*ranking || !*layer) {
        free(*ranking), free(*layer);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    return GRAFT_OK;
}

graft_status graft_model_layer_auto(const graft_model *m, const graft_dataset *d,
                                    const graft_tensor *subset, const graft_extract_opts *o,
                                    int max_candidates, char **ranking, char **layer,
                                    graft_pool *pool)
{
    if (!m) return gr_err(GRAFT_E_ARG, "graft_model_layer_auto: NULL model");
    return layer_auto(&m->src, d, subset, o, max_candidates, ranking, layer, pool);
}

graft_status graft_layer_auto(const char *model_path, const graft_dataset *d,
                              const graft_tensor *subset, const graft_extract_opts *o,
                              int max_candidates, char **ranking, char **layer, graft_pool *pool)
{
    if (!model_path) return gr_err(GRAFT_E_ARG, "graft_layer_auto: NULL argument");
    gr_model m;
    int st = gr_model_open(model_path, &m);
    if (st) return (graft_status)st;
    st = layer_auto(&m, d, subset, o, max_candidates, ranking, layer, pool);
    gr_model_close(&m);
    return (graft_status)st;
}

/* ---- fine-tuning ---- */

/* The public options, checked, as gr_ft_opts (whose -1 means "resolve from the data"). */
static int finetune_ranges(const graft_finetune_opts *o)
{
#define AUTO_OR(x, ok) ((x) == GRAFT_AUTO || (ok))
    if (!AUTO_OR(o->lr, o->lr > 0) || !(o->lr_ratio > 0) || !AUTO_OR(o->probe_C, o->probe_C > 0) ||
        !(o->layer_decay >= 0 && o->layer_decay < 1) ||
        !AUTO_OR(o->weight_decay, o->weight_decay >= 0) ||
        !(o->label_smoothing >= 0 && o->label_smoothing < 1) ||
        !(o->dropout >= 0 && o->dropout < 1) ||
        !AUTO_OR(o->val_frac, o->val_frac >= 0 && o->val_frac < 1) ||
        !AUTO_OR(o->head_epochs, o->head_epochs >= 0) || !AUTO_OR(o->epochs, o->epochs >= 0) ||
        o->patience <= 0 || o->batch <= 0 || o->workers <= 0)
        return gr_err(GRAFT_E_ARG,
                      "fine-tuning options out of range (lr, lr ratio, probe C > 0; layer decay, "
                      "dropout, validation fraction and label smoothing in [0, 1); weight decay "
                      "and epochs >= 0; patience, batch and workers > 0; GRAFT_AUTO where "
                      "documented)");
#undef AUTO_OR
    return GRAFT_OK;
}

static int finetune_sets(const graft_finetune_opts *o, gr_ft_opts *r)
{
    switch (o->head_init) {
    case GRAFT_HEAD_INIT_PROBE: r->head_init = GR_HEAD_INIT_PROBE; break;
    case GRAFT_HEAD_INIT_IMPRINT: r->head_init = GR_HEAD_INIT_IMPRINT; break;
    case GRAFT_HEAD_INIT_RANDOM: r->head_init = GR_HEAD_INIT_RANDOM; break;
    default: return gr_err(GRAFT_E_ARG, "unknown head init %d", (int)o->head_init);
    }
    switch (o->bn) {
    case GRAFT_BN_AUTO: r->bn = GR_BN_AUTO; break;
    case GRAFT_BN_TRAIN: r->bn = GR_BN_TRAIN; break;
    case GRAFT_BN_FROZEN: r->bn = GR_BN_FROZEN; break;
    default: return gr_err(GRAFT_E_ARG, "unknown BatchNorm mode %d", (int)o->bn);
    }
    switch (o->optimizer) {
    case GRAFT_OPTIMIZER_ADAMW: r->opt = GR_ADAMW; break;
    case GRAFT_OPTIMIZER_SGD: r->opt = GR_SGD; break;
    default: return gr_err(GRAFT_E_ARG, "unknown optimizer %d", (int)o->optimizer);
    }
    if (o->pool == GRAFT_POOL_NONE)
        return gr_err(GRAFT_E_ARG, "fine-tuning pools a cut map: mean, grid2 or grid4");
    return pool_of(o->pool, &r->pool);
}

static int finetune_opts(const graft_finetune_opts *o, gr_ft_opts *r)
{
    gr_ft_defaults(r);
    r->layer = o->layer, r->freeze = o->freeze, r->cache_dir = o->cache_dir;
    int st = finetune_sets(o, r);
    if (!st) st = finetune_ranges(o);
    if (st) return st;
    if (o->steps < 0) return gr_err(GRAFT_E_ARG, "steps must be positive (got %d)", o->steps);
    if (o->steps && o->epochs != GRAFT_AUTO)
        return gr_err(GRAFT_E_ARG, "give phase 2 either epochs or steps, not both");
    r->steps = o->steps;
    /* gr_ft_opts: -1 (gr_ft_defaults) resolves from the data, 0 is none */
    r->probe_C = o->probe_C == GRAFT_AUTO ? 0 : o->probe_C; /* 0: cross-validated */
    if (o->head_epochs != GRAFT_AUTO) r->head_epochs = o->head_epochs;
    if (o->epochs != GRAFT_AUTO) r->epochs = o->epochs;
    if (o->lr != GRAFT_AUTO) r->lr = o->lr;
    r->lr_ratio = o->lr_ratio;
    r->layer_decay = o->layer_decay;
    if (o->weight_decay != GRAFT_AUTO) r->weight_decay = o->weight_decay;
    r->label_smoothing = (float)o->label_smoothing;
    r->dropout = (float)o->dropout;
    if (o->val_frac != GRAFT_AUTO) r->val_frac = o->val_frac;
    r->patience = o->patience == GRAFT_NEVER ? 0 : o->patience; /* 0: no early stop */
    r->batch = o->batch, r->workers = o->workers;
    if (o->transform && (st = gr_transform_parse(o->transform, &r->eval_t)))
        return gr_err_prefix(st, "--transform");
    if (o->augment) {
        if ((st = gr_transform_parse(o->augment, &r->train_t)))
            return gr_err_prefix(st, "--augment");
        r->has_train_t = 1;
    }
    r->ckpt_dir = o->checkpoint_dir, r->resume = o->resume, r->seed = o->seed;
    r->progress = progress_of(o->progress, o->progress_ctx);
    r->stop_after_epochs = o->stop_after_epochs;
    if ((int)o->adapt < 0 || (int)o->adapt >= GR_ADAPT_NMETHOD || !(o->adapt_weight > 0))
        return gr_err(GRAFT_E_ARG, "unknown adaptation method %d or weight %g not above 0",
                      (int)o->adapt, o->adapt_weight);
    if (o->target && (int)o->adapt >= GR_ADAPT_CORAL) /* aligned while training */
        r->target = o->target->ds, r->adapt = (int)o->adapt, r->adapt_weight = o->adapt_weight;
    if (o->resume && !o->checkpoint_dir)
        return gr_err(GRAFT_E_ARG, "resume needs a checkpoint folder");
    return GRAFT_OK;
}

/* A target given: the written model adapted to it by graft_adapt with the fine-tuning's batch,
 * workers, seed and preprocessing. */
static int finetune_adapt(const graft_finetune_opts *o, const char *out_path, char **summary)
{
    graft_adapt_opts ao;
    graft_adapt_opts_init(&ao);
    ao.method = o->adapt, ao.transform = o->transform, ao.batch = o->batch;
    ao.workers = o->workers, ao.seed = o->seed;
    ao.progress = o->progress, ao.progress_ctx = o->progress_ctx;
    return gr_api_adapt_file(out_path, o->target, &ao, summary);
}

static char *finetune_summary(const gr_ft_result *r, const char *adapted)
{
    char *hist = gr_ft_history_json(r);
    cJSON *o = cJSON_CreateObject(), *h = hist ? cJSON_Parse(hist) : NULL;
    free(hist);
    if (!h) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(o, "recipe", r->recipe);
    cJSON_AddNumberToObject(o, "train", (double)r->ntrain);
    cJSON_AddNumberToObject(o, "val", (double)r->nval);
    cJSON_AddNumberToObject(o, "best_epoch", r->best);
    if (isfinite(r->best_val)) cJSON_AddNumberToObject(o, "best_val_accuracy", r->best_val);
    else cJSON_AddNullToObject(o, "best_val_accuracy");
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    if (r->nranking) { /* layer "auto" */
        cJSON_AddStringToObject(o, "layer", r->layer);
        cJSON_AddStringToObject(o, "pool", gr_pool_name(r->ranking[0].pool));
        cJSON_AddItemToObject(o, "layer_auto", ranking_json(r->ranking, r->nranking));
    }
    cJSON_AddItemToObject(o, "history", h);
    if (adapted) cJSON_AddItemToObject(o, "adapt", cJSON_Parse(adapted));
    else if (isfinite(r->adapt_loss)) {
        cJSON *a = cJSON_AddObjectToObject(o, "adapt");
        cJSON_AddStringToObject(a, "method", gr_adapt_method_name(r->adapt));
        cJSON_AddNumberToObject(a, "weight", r->adapt_weight);
        cJSON_AddNumberToObject(a, "loss", r->adapt_loss);
        if (isfinite(r->domain_acc)) cJSON_AddNumberToObject(a, "domain_accuracy", r->domain_acc);
        else cJSON_AddNullToObject(a, "domain_accuracy");
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static graft_status finetune(const gr_model *m, const graft_dataset *d, const graft_tensor *subset,
                             const graft_finetune_opts *o, const char *out_path, char **summary)
{
    if (!d || !out_path)
        return gr_err(GRAFT_E_ARG, "graft_finetune: model, dataset and output must not be NULL");
    graft_finetune_opts def;
    graft_finetune_opts_init(&def);
    gr_ft_opts r;
    int st = finetune_opts(o ? o : &def, &r);
    if (st) return (graft_status)st;
    if (subset && (subset->dtype != GRAFT_INT64 || subset->rank != 1))
        return gr_err(GRAFT_E_ARG,
                      "graft_finetune: the subset must be a 1-D int64 tensor of sample indices");
    gr_ft_result res;
    char *adapted = NULL;
    st = gr_finetune(m, d->ds, subset ? subset->data : NULL, subset ? subset->dims[0] : 0, &r,
                     out_path, &res);
    if (!st && o && o->target && (int)o->adapt < GR_ADAPT_CORAL)
        st = finetune_adapt(o, out_path, &adapted);
    if (!st && summary && !(*summary = finetune_summary(&res, adapted)))
        st = gr_err(GRAFT_E_NOMEM, "out of memory");
    gr_ft_result_free(&res);
    free(adapted);
    return (graft_status)st;
}

graft_status graft_model_finetune(const graft_model *m, const graft_dataset *d,
                                  const graft_tensor *subset, const graft_finetune_opts *o,
                                  const char *out_path, char **summary)
{
    if (!m) return gr_err(GRAFT_E_ARG, "graft_model_finetune: NULL model");
    return finetune(&m->src, d, subset, o, out_path, summary);
}

graft_status graft_finetune(const char *model_path, const graft_dataset *d,
                            const graft_tensor *subset, const graft_finetune_opts *o,
                            const char *out_path, char **summary)
{
    if (!model_path || !d || !out_path)
        return gr_err(GRAFT_E_ARG, "graft_finetune: model, dataset and output must not be NULL");
    gr_model m;
    int st = gr_model_open(model_path, &m);
    if (st) return (graft_status)st;
    st = finetune(&m, d, subset, o, out_path, summary);
    gr_model_close(&m);
    return (graft_status)st;
}

/* ---- self-training ---- */

static char *semi_summary(const gr_semi_round *rr, int n)
{
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "rounds");
    for (int r = 0; r < n; r++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "pseudo_labels", (double)rr[r].npseudo);
        if (isfinite(rr[r].mean_conf)) cJSON_AddNumberToObject(x, "confidence", rr[r].mean_conf);
        else cJSON_AddNullToObject(x, "confidence");
        if (isfinite(rr[r].pseudo_acc)) cJSON_AddNumberToObject(x, "accuracy", rr[r].pseudo_acc);
        else cJSON_AddNullToObject(x, "accuracy");
        cJSON_AddItemToArray(a, x);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int semi_check(const graft_tensor *X, const graft_tensor *y, int nclass,
                      const graft_tensor *XU, const graft_tensor *yu, const graft_semi_opts *so)
{
    int st = check_rows(X, y);
    if (!st) st = check_rows(XU, yu);
    if (st) return st;
    if (!y || nclass < 2)
        return gr_err(GRAFT_E_ARG, "graft_head_fit_self: labels and nclass >= 2 are needed");
    if (XU->dims[1] != X->dims[1])
        return gr_err(GRAFT_E_SHAPE, "the unlabelled rows have %lld features, the labelled %lld",
                      (long long)XU->dims[1], (long long)X->dims[1]);
    if (so->rounds <= 0 || so->rounds > 1000 || !(so->threshold > 0 && so->threshold < 1))
        return gr_err(GRAFT_E_ARG, "self-training options out of range (rounds in 1..1000, "
                                   "threshold in (0, 1))");
    return GRAFT_OK;
}

graft_status graft_head_fit_self(const graft_tensor *X, const graft_tensor *y, int nclass,
                                 const graft_tensor *XU, const graft_tensor *yu,
                                 const graft_fit_opts *o, const graft_semi_opts *so,
                                 graft_head **out, char **summary)
{
    graft_semi_opts sdef;
    graft_semi_opts_init(&sdef);
    if (!so) so = &sdef;
    if (!out) return gr_err(GRAFT_E_ARG, "graft_head_fit_self: out must not be NULL");
    int st = semi_check(X, y, nclass, XU, yu, so);
    gr_fit_opts fo;
    if (!st) st = fit_opts_of(o, &fo);
    if (st) return (graft_status)st;
    gr_semi_opts s = { so->rounds, so->threshold, so->balance != 0 };
    gr_semi_round *rr = gr_calloc((size_t)so->rounds, sizeof *rr);
    graft_head *h = gr_calloc(1, sizeof *h);
    if (!rr || !h) st = gr_err(GRAFT_E_NOMEM, "self-training: out of memory");
    if (!st)
        st = gr_self_train(X->data, y->data, X->dims[0], XU->data, XU->dims[0], (int)X->dims[1],
                           nclass, &fo, &s, yu ? yu->data : NULL, &h->h, rr);
    if (!st && summary && !(*summary = semi_summary(rr, so->rounds)))
        st = gr_err(GRAFT_E_NOMEM, "out of memory");
    free(rr);
    if (st) {
        if (h) gr_head_free(&h->h);
        free(h);
        return (graft_status)st;
    }
    *out = h;
    return GRAFT_OK;
}

/* ---- closed-form CORAL ---- */

graft_status graft_coral_align(const graft_tensor *Xs, const graft_tensor *Xt, graft_tensor **out)
{
    if (!out) return gr_err(GRAFT_E_ARG, "graft_coral_align: out must not be NULL");
    *out = NULL;
    int st = check_rows(Xs, NULL);
    if (!st) st = check_rows(Xt, NULL);
    if (st) return (graft_status)st;
    if (Xs->dims[1] != Xt->dims[1])
        return gr_err(GRAFT_E_SHAPE, "coral: the target rows have %lld features, the source %lld",
                      (long long)Xt->dims[1], (long long)Xs->dims[1]);
    graft_tensor *o = NULL;
    st = graft_tensor_new(GRAFT_FLOAT, 2, Xs->dims, &o);
    if (!st)
        st = gr_coral_align(Xs->data, Xs->dims[0], Xt->data, Xt->dims[0], Xs->dims[1], o->data);
    if (st) {
        graft_tensor_free(o);
        return (graft_status)st;
    }
    *out = o;
    return GRAFT_OK;
}
