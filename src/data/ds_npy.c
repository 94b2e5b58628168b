/* ds_npy.c — the NPY dataset kind: features or images from a .npy array (read by io/npy.c),
 * labels from a second one. See data.h, gr_dataset_open. */
#define _POSIX_C_SOURCE 200809L
#include "dataset_impl.h"
#include "io/io.h"

#include <stdlib.h>
#include <string.h>

/* ---- NPY (the arrays read by io/npy.c) ----------------------------------------------------- */

/* Samples from array a: features (n, dim) float32/float64, or images (n, h, w[, 1|3]) uint8.
 * Float32 features and the pixels are taken from a (a->data is NULL afterwards). */
static int npy_fill_samples(gr_dataset *ds, gr_tensor *a)
{
    const int64_t *d = a->shape.d;
    int rank = a->shape.rank;
    if ((a->dtype == GR_F32 || a->dtype == GR_F64) && rank == 2) {
        ds->n = d[0];
        ds->dim = d[1];
        size_t cnt = (size_t)(ds->n * ds->dim);
        if (a->dtype == GR_F32) {
            ds->features = a->data, a->data = NULL;
            return GRAFT_OK;
        }
        if (!(ds->features = gr_malloc((cnt ? cnt : 1) * sizeof(float)))) return GRAFT_E_NOMEM;
        for (size_t i = 0; i < cnt; i++) ds->features[i] = (float)((const double *)a->data)[i];
        return GRAFT_OK;
    }
    if (a->dtype == GR_U8 && (rank == 3 || (rank == 4 && (d[3] == 1 || d[3] == 3)))) {
        if (d[1] < 1 || d[2] < 1 || d[1] > GR_IMAGE_MAX_SIDE || d[2] > GR_IMAGE_MAX_SIDE)
            return gr_err(GRAFT_E_FORMAT, "%s: images of %lldx%lld pixels", ds->source,
                          (long long)d[2], (long long)d[1]);
        ds->n = d[0];
        ds->h = (int)d[1];
        ds->w = (int)d[2];
        ds->c = rank == 4 ? (int)d[3] : 1;
        ds->pixels = a->data, a->data = NULL;
        return GRAFT_OK;
    }
    return gr_err(GRAFT_E_UNSUPPORTED,
                  "%s: a %d-d %s array is neither features (n, dim) float32/float64 nor images "
                  "(n, h, w[, 1|3]) uint8",
                  ds->source, rank, gr_dtype_name(a->dtype));
}

static int npy_fill_labels(gr_dataset *ds, const char *lpath, const gr_tensor *l)
{
    if ((l->dtype != GR_I32 && l->dtype != GR_I64) || l->shape.rank != 1)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: labels must be a 1-d int32 or int64 array (this is %d-d %s)", lpath,
                      l->shape.rank, gr_dtype_name(l->dtype));
    if (l->shape.d[0] != ds->n)
        return gr_err(GRAFT_E_FORMAT, "%s: %lld labels for the %lld samples of %s", lpath,
                      (long long)l->shape.d[0], (long long)ds->n, ds->source);
    if (!(ds->labels = gr_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ds->labels)))
        return GRAFT_E_NOMEM;
    int64_t maxv = -1;
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t v =
            l->dtype == GR_I32 ? ((const int32_t *)l->data)[i] : ((const int64_t *)l->data)[i];
        if (v < 0)
            return gr_err(GRAFT_E_FORMAT, "%s: label %lld of sample %lld is negative", lpath,
                          (long long)v, (long long)i);
        int st = gr_ds_class_count_check(
            v < INT64_MAX ? v + 1 : v, "%s: label %lld of sample %lld makes %lld classes", lpath,
            (long long)v, (long long)i, (long long)(v < INT64_MAX ? v + 1 : v));
        if (st) return st;
        ds->labels[i] = (int32_t)v;
        if (v > maxv) maxv = v;
    }
    return gr_ds_numeric_names(ds, (int)maxv + 1);
}

/* Unlabelled samples: labels -1, no classes. */
static int npy_no_labels(gr_dataset *ds)
{
    if (!(ds->labels = gr_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ds->labels)))
        return GRAFT_E_NOMEM;
    for (int64_t i = 0; i < ds->n; i++) ds->labels[i] = -1;
    return GRAFT_OK;
}

int gr_ds_open_npy(const char *path, const char *labels_npy, int flags, gr_dataset **out)
{
    if (!labels_npy && !(flags & GR_DS_UNLABELED))
        return gr_err(GRAFT_E_ARG,
                      "%s: a .npy dataset needs its labels (an int array of n) as a second .npy, "
                      "or to be opened as unlabelled",
                      path);
    gr_tensor a = { 0 }, l = { 0 };
    gr_dataset *ds = NULL;
    int st = gr_npy_load(path, &a);
    if (st) return st;
    if (!(ds = gr_ds_new(GR_DS_NPY, path))) st = GRAFT_E_NOMEM;
    if (!st) st = npy_fill_samples(ds, &a);
    free(a.data);
    if (!st && !labels_npy) st = npy_no_labels(ds);
    else if (!st && !(st = gr_npy_load(labels_npy, &l))) st = npy_fill_labels(ds, labels_npy, &l);
    free(l.data);
    if (!st) st = gr_ds_check_labels(ds, flags);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}
