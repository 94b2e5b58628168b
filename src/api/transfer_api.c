/* transfer_api.c — the public transfer API (include/graft.h) over transfer/. */
#include "api.h"

#include "transfer/transfer.h"

#include <string.h>

static int pool_of(const char *s, int *out)
{
    if (!s || !strcmp(s, "mean")) *out = GR_POOL_MEAN;
    else if (!strcmp(s, "grid2")) *out = GR_POOL_GRID2;
    else if (!strcmp(s, "none")) *out = GR_POOL_NONE;
    else return gr_err(GRAFT_E_ARG, "unknown pooling '%s' (mean, grid2 or none)", s);
    return GRAFT_OK;
}

static int to_tensor(graft_dtype dt, int rank, const int64_t *dims, const void *data, size_t bytes, graft_tensor **out)
{
    if (!out) return GRAFT_OK;
    int st = graft_tensor_new(dt, rank, dims, out);
    if (!st && bytes) memcpy((*out)->data, data, bytes);
    return st;
}

graft_status graft_extract(const char *model_path, const graft_dataset *d, const graft_extract_opts *o,
                           graft_tensor **features, graft_tensor **labels, graft_tensor **index, int *cached)
{
    if (!model_path || !d) return gr_err(GRAFT_E_ARG, "graft_extract: model and dataset must not be NULL");
    graft_extract_opts def = {0};
    if (!o) o = &def;
    gr_extract_opts eo = {.layer = o->layer, .batch = o->batch, .workers = o->workers, .cache_dir = o->cache_dir,
                          .bad = o->skip_bad ? GR_BAD_SKIP : GR_BAD_FATAL, .quiet = o->quiet};
    int st = pool_of(o->pool, &eo.pool);
    if (st) return (graft_status)st;
    if (o->transform) st = gr_transform_parse(o->transform, &eo.t);
    else gr_transform_default(&eo.t);
    if (st) return (graft_status)st;
    gr_features f;
    if ((st = gr_extract(model_path, d->ds, NULL, 0, &eo, &f))) return (graft_status)st;
    graft_tensor *x = NULL, *y = NULL, *ix = NULL;
    int64_t dx[2] = {f.n, f.dim}, dn[1] = {f.n};
    st = to_tensor(GRAFT_FLOAT, 2, dx, f.X, (size_t)f.n * f.dim * sizeof(float), features ? &x : NULL);
    if (!st) st = to_tensor(GRAFT_INT32, 1, dn, f.y, (size_t)f.n * sizeof(int32_t), labels ? &y : NULL);
    if (!st) st = to_tensor(GRAFT_INT64, 1, dn, f.index, (size_t)f.n * sizeof(int64_t), index ? &ix : NULL);
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
