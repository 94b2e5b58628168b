/* head_store.c — heads as safetensors files: the arrays of the kind and, as metadata, the kind,
 * normalisation, sizes, C and the origin (transfer.h). Loading checks every size against its
 * range and limit, every tensor against the shape the metadata gives, and the values a bad
 * file could make misbehave later (a scale of 0, a label outside the classes). */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"
#include "transfer/heads.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

static const char *const kind_names[] = { "logreg", "mlp", "knn", "ncm" };
static const char *const norm_names[] = { "none", "standardize", "l2" };

static void st_add(gr_st_entry *e, int *ne, const char *name, void *data, int dtype, int rank,
                   int64_t d0, int64_t d1)
{
    int64_t d[2] = { d0, d1 };
    gr_st_entry *x = &e[(*ne)++];
    x->name = name, x->dtype = dtype, x->shape = gr_shape_make(rank, d), x->data = data;
    x->bytes = (size_t)gr_numel(&x->shape) * gr_dtype_size(dtype);
}

/* The origin (graft fit records the class names there) must name as many classes as the head
 * has: more classes than names would print phantom classes, fewer would drop some. An origin
 * that is not a JSON object, or has no "classes", states nothing to check. status: what a
 * mismatch returns (a bad file at load, a bad argument at save). */
static int check_origin(const char *path, const char *origin, int nclass, int status)
{
    cJSON *o = cJSON_Parse(origin);
    const cJSON *c = cJSON_GetObjectItem(o, "classes"), *e;
    int st = GRAFT_OK, n = cJSON_GetArraySize(c), strings = 0;
    cJSON_ArrayForEach(e, c) strings += cJSON_IsString(e);
    if (c && (!cJSON_IsArray(c) || strings != n))
        st = gr_err(status,
                    "%s: the head's origin ('graft_origin'): \"classes\" is not an array of names",
                    path);
    else if (c && n != nclass)
        st = gr_err(
            status,
            "%s: the head has %d classes ('nclass') but its origin ('graft_origin') names %d", path,
            nclass, n);
    cJSON_Delete(o);
    return st;
}

int gr_head_save(const gr_head *h, const char *path)
{
    if (!h || !path || h->kind < GR_HEAD_LOGREG || h->kind > GR_HEAD_NCM || h->norm < 0 ||
        h->norm > GR_FEAT_L2)
        return gr_err(GRAFT_E_ARG, "%s: not a fitted head", path ? path : "(null)");
    gr_st_entry e[8];
    int ne = 0;
    if (h->norm == GR_FEAT_STANDARDIZE) {
        st_add(e, &ne, "mu", h->mu, GR_F32, 1, h->dim, 0);
        st_add(e, &ne, "sd", h->sd, GR_F32, 1, h->dim, 0);
    }
    if (h->kind == GR_HEAD_LOGREG || h->kind == GR_HEAD_NCM) {
        st_add(e, &ne, "W", h->W, GR_F32, 2, h->nclass, h->dim);
        st_add(e, &ne, "b", h->b, GR_F32, 1, h->nclass, 0);
    } else if (h->kind == GR_HEAD_MLP) {
        st_add(e, &ne, "W", h->W, GR_F32, 2, h->hidden, h->dim);
        st_add(e, &ne, "b", h->b, GR_F32, 1, h->hidden, 0);
        st_add(e, &ne, "W2", h->W2, GR_F32, 2, h->nclass, h->hidden);
        st_add(e, &ne, "b2", h->b2, GR_F32, 1, h->nclass, 0);
    } else {
        st_add(e, &ne, "X", h->X, GR_F32, 2, h->n, h->dim);
        st_add(e, &ne, "y", h->y, GR_I32, 1, h->n, 0);
    }
    for (int i = 0; i < ne; i++)
        if (!e[i].data) return gr_err(GRAFT_E_ARG, "%s: the head has no '%s'", path, e[i].name);
    char v[9][40];
    snprintf(v[0], sizeof v[0], "%s", kind_names[h->kind]);
    snprintf(v[1], sizeof v[1], "%s", norm_names[h->norm]);
    snprintf(v[2], sizeof v[2], "%d", h->nclass);
    snprintf(v[3], sizeof v[3], "%d", h->dim);
    snprintf(v[4], sizeof v[4], "%d", h->hidden);
    /* kNN: the k predict uses, min(k, n), so that the file states a k its examples can meet */
    snprintf(v[5], sizeof v[5], "%lld",
             (long long)(h->kind == GR_HEAD_KNN && h->k > h->n ? h->n : h->k));
    snprintf(v[6], sizeof v[6], "%lld", (long long)h->n);
    snprintf(v[7], sizeof v[7], "%.17g", h->C);
    snprintf(v[8], sizeof v[8], "%.17g", h->cv_acc);
    static const char *const keys[9] = { "graft_head", "norm", "nclass", "dim",   "hidden",
                                         "k",          "n",    "C",      "cv_acc" };
    gr_meta m[10];
    for (int i = 0; i < 9; i++) m[i].key = (char *)keys[i], m[i].value = v[i];
    int nm = 9;
    if (h->origin) m[nm++] = (gr_meta){ "graft_origin", h->origin };
    int st = h->origin ? check_origin(path, h->origin, h->nclass, GRAFT_E_ARG) : GRAFT_OK;
    return st ? st : gr_st_save(path, e, ne, m, nm);
}

static const char *meta_get(const gr_meta *m, int nm, const char *key)
{
    for (int i = 0; i < nm; i++)
        if (strcmp(m[i].key, key) == 0) return m[i].value;
    return NULL;
}

/* An integer of the head's metadata in [lo, hi], checked against limit `lim` (-1: none) first:
 * a count beyond a limit is refused as such, whatever the type could hold. A missing entry is
 * 0 when lo <= 0 (not needed by this kind of head). */
static int meta_int(const char *path, const gr_meta *m, int nm, const char *key, int64_t lo,
                    int64_t hi, int lim, int64_t *out)
{
    const char *s = meta_get(m, nm, key);
    if (!s && lo <= 0) return *out = 0, GRAFT_OK;
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    int ok = s && end != s && !*end && !errno && v >= lo;
    if (ok && lim >= 0) {
        int st =
            gr_limit_check((graft_limit)lim, v, "%s: head metadata '%s' is %lld", path, key, v);
        if (st) return st;
    }
    if (!ok || v > hi)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: head metadata '%s' is %s%s%s, expected an integer in [%lld, %lld]", path,
                      key, s ? "\"" : "missing", s ? s : "", s ? "\"" : "", (long long)lo,
                      (long long)hi);
    *out = v;
    return GRAFT_OK;
}

static int name_index(const char *path, const gr_meta *m, int nm, const char *key,
                      const char *const *names, int n, int *out)
{
    const char *s = meta_get(m, nm, key);
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) return *out = i, GRAFT_OK;
    return gr_err(GRAFT_E_FORMAT, "%s: head metadata '%s' is %s%s%s", path, key,
                  s ? "unknown: \"" : "missing", s ? s : "", s ? "\"" : "");
}

/* Copies tensor `name` (dtype, shape (d0[, d1])) out of the loaded entries into malloc'd *dst. */
static int take(const char *path, const gr_st_entry *e, int ne, const char *name, int dtype,
                int rank, int64_t d0, int64_t d1, void **dst)
{
    for (int i = 0; i < ne; i++) {
        if (strcmp(e[i].name, name)) continue;
        gr_shape want = gr_shape_make(rank, (int64_t[]){ d0, d1 });
        if (e[i].dtype != dtype || !gr_shape_eq(&e[i].shape, &want)) {
            char got[200], exp[96];
            return gr_err(GRAFT_E_FORMAT, "%s: tensor '%s' is %s %s, expected %s %s", path, name,
                          gr_dtype_name(e[i].dtype), gr_shape_str(&e[i].shape, got, sizeof got),
                          gr_dtype_name(dtype), gr_shape_str(&want, exp, sizeof exp));
        }
        *dst = gr_malloc(e[i].bytes ? e[i].bytes : 1);
        if (!*dst) return GRAFT_E_NOMEM;
        memcpy(*dst, e[i].data, e[i].bytes);
        return GRAFT_OK;
    }
    return gr_err(GRAFT_E_FORMAT, "%s: the head has no tensor '%s'", path, name);
}

/* Kind, normalisation and sizes from the metadata, each against its range and limit, and
 * against each other (a kNN head's k neighbours among its n examples). */
static int head_meta(const char *path, const gr_meta *m, int nm, gr_head *h)
{
    int64_t nclass = 0, dim = 0, hidden = 0, k = 0, n = 0;
    int knn = 0;
    int st = name_index(path, m, nm, "graft_head", kind_names, 4, &h->kind);
    if (!st) st = name_index(path, m, nm, "norm", norm_names, 3, &h->norm);
    if (!st) knn = h->kind == GR_HEAD_KNN;
    if (!st) st = meta_int(path, m, nm, "nclass", 2, INT32_MAX, GRAFT_LIMIT_CLASSES, &nclass);
    if (!st) st = meta_int(path, m, nm, "dim", 1, INT32_MAX, -1, &dim);
    if (!st)
        st =
            meta_int(path, m, nm, "hidden", h->kind == GR_HEAD_MLP ? 1 : 0, INT32_MAX, -1, &hidden);
    if (!st) st = meta_int(path, m, nm, "k", knn, INT32_MAX, knn ? GRAFT_LIMIT_K : -1, &k);
    if (!st) st = meta_int(path, m, nm, "n", knn, INT64_MAX, -1, &n);
    if (st) return st;
    /* k > n: heads saved before graft wrote min(k, n) (graft fit --head knn on fewer than 10
     * rows) are valid files, and predict always used min(k, n); the k limit above still bounds
     * what a file may ask for */
    if (knn && k > n) k = n;
    h->nclass = (int)nclass, h->dim = (int)dim, h->hidden = (int)hidden, h->k = (int)k, h->n = n;
    return GRAFT_OK;
}

/* The stored tensors, each of the shape the metadata gives (take), and their values where a
 * bad one would misbehave later (a scale of 0, a label outside the classes). */
static int head_tensors(const char *path, const gr_st_entry *e, int ne, gr_head *h)
{
    int64_t K = h->nclass, dim = h->dim, H = h->hidden, n = h->n;
    int st = GRAFT_OK;
    if (h->norm == GR_FEAT_STANDARDIZE) {
        st = take(path, e, ne, "mu", GR_F32, 1, dim, 0, (void **)&h->mu);
        if (!st) st = take(path, e, ne, "sd", GR_F32, 1, dim, 0, (void **)&h->sd);
        for (int64_t j = 0; !st && j < dim; j++)
            if (!(h->sd[j] > 0) || !isfinite(h->sd[j]))
                st = gr_err(GRAFT_E_FORMAT, "%s: 'sd' of feature %lld is %g, not a positive number",
                            path, (long long)j, h->sd[j]);
    }
    if (st) return st;
    if (h->kind == GR_HEAD_LOGREG || h->kind == GR_HEAD_NCM) {
        st = take(path, e, ne, "W", GR_F32, 2, K, dim, (void **)&h->W);
        if (!st) st = take(path, e, ne, "b", GR_F32, 1, K, 0, (void **)&h->b);
    } else if (h->kind == GR_HEAD_MLP) {
        st = take(path, e, ne, "W", GR_F32, 2, H, dim, (void **)&h->W);
        if (!st) st = take(path, e, ne, "b", GR_F32, 1, H, 0, (void **)&h->b);
        if (!st) st = take(path, e, ne, "W2", GR_F32, 2, K, H, (void **)&h->W2);
        if (!st) st = take(path, e, ne, "b2", GR_F32, 1, K, 0, (void **)&h->b2);
    } else {
        st = take(path, e, ne, "X", GR_F32, 2, n, dim, (void **)&h->X);
        if (!st) st = take(path, e, ne, "y", GR_I32, 1, n, 0, (void **)&h->y);
        for (int64_t i = 0; !st && i < n; i++)
            if (h->y[i] < 0 || h->y[i] >= K)
                st = gr_err(GRAFT_E_FORMAT,
                            "%s: tensor 'y': label %d of stored example %lld is outside [0, %lld) "
                            "('nclass')",
                            path, h->y[i], (long long)i, (long long)K);
    }
    return st;
}

int gr_head_load(const char *path, gr_head *h)
{
    if (!path || !h) return gr_err(GRAFT_E_ARG, "head load: bad arguments");
    memset(h, 0, sizeof *h);
    gr_arena *a = gr_arena_new(1 << 16);
    if (!a) return gr_err(GRAFT_E_NOMEM, "%s: out of memory loading the head", path);
    gr_st_entry *e;
    gr_meta *m;
    int ne, nm, st = gr_st_load(path, a, &e, &ne, &m, &nm);
    if (!st) st = head_meta(path, m, nm, h);
    const char *c = st ? NULL : meta_get(m, nm, "C"), *cv = st ? NULL : meta_get(m, nm, "cv_acc"),
               *origin = st ? NULL : meta_get(m, nm, "graft_origin");
    if (origin) st = check_origin(path, origin, h->nclass, GRAFT_E_FORMAT);
    if (!st && origin && !(h->origin = strdup(origin))) st = GRAFT_E_NOMEM;
    h->C = c ? strtod(c, NULL) : 0;
    h->cv_acc = cv ? strtod(cv, NULL) : 0;
    if (!st) st = head_tensors(path, e, ne, h);
    gr_arena_free(a);
    if (st == GRAFT_E_NOMEM) gr_err(st, "%s: out of memory loading the head", path);
    if (st) gr_head_free(h);
    return st;
}
