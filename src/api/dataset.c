/* dataset.c — the public dataset API (include/graft.h) over data/. */
#include "api.h"

#include "data/data.h"

#include <pthread.h>
#include <string.h>

static graft_status open_dataset(const char *path, const char *labels_npy, int flags,
                                 graft_dataset **out)
{
    if (!path || !out)
        return gr_err(GRAFT_E_ARG, "graft_dataset_open: path and out must not be NULL");
    graft_dataset *d = gr_calloc(1, sizeof *d);
    if (!d) return GRAFT_E_NOMEM;
    int st = gr_dataset_open(path, labels_npy, flags, &d->ds);
    if (st) {
        free(d);
        return (graft_status)st;
    }
    *out = d;
    return GRAFT_OK;
}

graft_status graft_dataset_open(const char *path, const char *labels_npy, graft_dataset **out)
{
    return open_dataset(path, labels_npy, 0, out);
}

graft_status graft_dataset_open_unlabeled(const char *path, const char *labels_npy,
                                          graft_dataset **out)
{
    return open_dataset(path, labels_npy, GR_DS_UNLABELED, out);
}

int graft_dataset_is_unlabeled(const graft_dataset *d) { return d && d->ds->unlabeled; }

void graft_dataset_free(graft_dataset *d)
{
    if (!d) return;
    gr_dataset_free(d->ds);
    free(d);
}

int64_t graft_dataset_size(const graft_dataset *d) { return d->ds->n; }
int graft_dataset_num_classes(const graft_dataset *d) { return d->ds->nclass; }

const char *graft_dataset_class_name(const graft_dataset *d, int c)
{
    return c >= 0 && c < d->ds->nclass ? d->ds->class_names[c] : NULL;
}

int graft_dataset_label(const graft_dataset *d, int64_t i)
{
    return i >= 0 && i < d->ds->n ? d->ds->labels[i] : -1;
}

const char *graft_dataset_kind(const graft_dataset *d)
{
    switch (d->ds->kind) {
    case GR_DS_FOLDER: return "folder";
    case GR_DS_CSV: return "csv";
    case GR_DS_IDX: return "idx";
    case GR_DS_NPY: return "npy";
    }
    return "unknown";
}

const char *graft_dataset_path(const graft_dataset *d, int64_t i)
{
    return d->ds->paths && i >= 0 && i < d->ds->n ? d->ds->paths[i] : NULL;
}

int graft_dataset_column(const graft_dataset *d, const char *name)
{
    return d && name ? gr_dataset_col(d->ds, name) : -1;
}

const char *graft_dataset_value(const graft_dataset *d, int c, int64_t i)
{
    if (!d || c < 0 || c >= d->ds->ncol || i < 0 || i >= d->ds->n) return NULL;
    return d->ds->cols[c][i];
}

graft_status graft_dataset_load(const graft_dataset *d, int64_t i, const char *transform,
                                uint64_t seed, graft_tensor **out)
{
    if (!d || !out)
        return gr_err(GRAFT_E_ARG, "graft_dataset_load: dataset and out must not be NULL");
    if (i < 0 || i >= d->ds->n)
        return gr_err(GRAFT_E_ARG, "sample %lld is outside the dataset (%lld samples)",
                      (long long)i, (long long)d->ds->n);
    gr_transform t;
    int st = transform ? gr_transform_parse(transform, &t) : (gr_transform_default(&t), GRAFT_OK);
    if (st) return (graft_status)st;
    gr_image img;
    if ((st = gr_dataset_image(d->ds, i, &img))) return (graft_status)st;
    int oh, ow;
    gr_transform_out_size(&t, img.w, img.h, &oh, &ow);
    graft_tensor *x;
    int64_t dims[4] = { 1, 3, oh, ow };
    st = graft_tensor_new(GRAFT_FLOAT, 4, dims, &x);
    if (!st) {
        gr_rng rng;
        gr_rng_seed(&rng, seed);
        st = gr_transform_apply(&t, &img, &rng, x->data);
        if (st) graft_tensor_free(x);
        else *out = x;
    }
    gr_image_free(&img);
    return (graft_status)st;
}

/* ---- check: every image decoded, in parallel ---- */

typedef struct check_job {
    const gr_dataset *ds;
    pthread_mutex_t mu;
    int64_t next, nbad;
    void (*bad)(void *, int64_t, const char *, const char *);
    void *ctx;
} check_job;

static void *check_worker(void *arg)
{
    check_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int64_t i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->ds->n) return NULL;
        gr_image img;
        if (gr_dataset_image(j->ds, i, &img) == GRAFT_OK) {
            gr_image_free(&img);
            continue;
        }
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", graft_last_error()); /* errors are per thread */
        pthread_mutex_lock(&j->mu);
        j->nbad++;
        if (j->bad) j->bad(j->ctx, i, j->ds->paths ? j->ds->paths[i] : j->ds->source, msg);
        pthread_mutex_unlock(&j->mu);
    }
}

graft_status graft_dataset_check(const graft_dataset *d, int threads,
                                 void (*bad)(void *ctx, int64_t i, const char *path,
                                             const char *msg),
                                 void *ctx, int64_t *nbad)
{
    if (!d || !nbad)
        return gr_err(GRAFT_E_ARG, "graft_dataset_check: dataset and nbad must not be NULL");
    if (d->ds->features)
        return gr_err(GRAFT_E_ARG, "%s holds feature vectors, not images", d->ds->source);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    check_job j = { .ds = d->ds, .bad = bad, .ctx = ctx };
    pthread_mutex_init(&j.mu, NULL);
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[started], NULL, check_worker, &j) == 0) started++;
    check_worker(&j);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.mu);
    *nbad = j.nbad;
    return GRAFT_OK;
}

graft_status graft_dataset_split(const graft_dataset *d, const double frac[3], uint64_t seed,
                                 graft_tensor **train, graft_tensor **val, graft_tensor **test)
{
    if (!d || !frac)
        return gr_err(GRAFT_E_ARG, "graft_dataset_split: dataset and fractions must not be NULL");
    int64_t *idx[3] = { NULL, NULL, NULL }, cnt[3];
    int st = gr_split_stratified(d->ds, frac, seed, idx, cnt);
    graft_tensor **outs[3] = { train, val, test }, *made[3] = { NULL, NULL, NULL };
    for (int p = 0; !st && p < 3; p++) {
        if (!outs[p]) continue;
        int64_t dims[1] = { cnt[p] };
        st = graft_tensor_new(GRAFT_INT64, 1, dims, &made[p]);
        if (!st && cnt[p]) memcpy(made[p]->data, idx[p], (size_t)cnt[p] * sizeof(int64_t));
    }
    for (int p = 0; p < 3; p++) {
        free(idx[p]);
        if (st) graft_tensor_free(made[p]);
        else if (outs[p]) *outs[p] = made[p];
    }
    return (graft_status)st;
}

graft_status graft_dataset_from_files(const char *const *paths, int64_t n, graft_dataset **out)
{
    if (!paths || !out)
        return gr_err(GRAFT_E_ARG, "graft_dataset_from_files: paths and out must not be NULL");
    graft_dataset *d = gr_calloc(1, sizeof *d);
    if (!d) return GRAFT_E_NOMEM;
    int st = gr_dataset_from_files(paths, n, &d->ds);
    if (st) {
        free(d);
        return (graft_status)st;
    }
    *out = d;
    return GRAFT_OK;
}

graft_status graft_dataset_kshot(const graft_dataset *d, int k, uint64_t seed, graft_tensor **out)
{
    if (!d || !out || k < 1)
        return gr_err(GRAFT_E_ARG, "graft_dataset_kshot: dataset, out and k >= 1 are needed");
    if (d->ds->unlabeled)
        return gr_err(GRAFT_E_ARG, "%s was opened as unlabelled: k-shot draws need labels",
                      d->ds->source);
    int64_t *idx;
    int st = gr_sample_kshot(d->ds, NULL, 0, k, seed, &idx);
    if (st) return (graft_status)st;
    int64_t dims[1] = { (int64_t)d->ds->nclass * k };
    if (!(st = graft_tensor_new(GRAFT_INT64, 1, dims, out)))
        memcpy((*out)->data, idx, (size_t)dims[0] * sizeof(int64_t));
    free(idx);
    return (graft_status)st;
}
