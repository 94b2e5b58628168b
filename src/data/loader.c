/* loader.c — threaded deterministic batches (data.h, "loader").
 *
 * The epoch's samples, in order (a permutation drawn from (seed, epoch) when shuffling), are
 * handed out one at a time from a shared counter to a pool of pthreads. Position p of the epoch
 * belongs to batch p / B, which lives in slot (p / B) % nslot of a ring of batch buffers
 * allocated once; a worker decodes and transforms its sample straight into that slot. Every
 * sample's random augmentation comes from its own rng seeded from (seed, epoch, dataset index),
 * so the numbers do not depend on which worker ran it or when. The caller takes batches strictly
 * in order; a slot is refilled only after the caller has come back for the next batch.
 *
 * Locking: one mutex guards the counters and the slot bookkeeping; the pixels are written
 * outside it, by the only worker that owns that sample's place in the slot. A skipped sample's
 * warning waits in its slot and goes to the progress callback from gr_loader_next, on the
 * caller's thread and in batch order (a callback is never called from two threads at once). */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <pthread.h>
#include <string.h>

#define MAX_WORKERS 256

typedef struct slot {
    float *x;        /* (B, 3, h, w) */
    int32_t *y;      /* [B] */
    int64_t *index;  /* [B] */
    uint8_t *ok;     /* [B] 1 = the sample is there, 0 = skipped or failed */
    int64_t batch;   /* the batch of the epoch it holds (-1: none) */
    int pending;     /* samples of that batch not finished yet */
    int err, err_at; /* the first fatal failure in the batch (status, place), err 0 = none */
    char *msg;       /* its message, copied out of the worker's thread */
    char **skip;     /* [B] why a sample was skipped (GR_BAD_SKIP), reported by gr_loader_next */
} slot;

struct gr_loader {
    const gr_dataset *ds;
    gr_transform t;
    gr_loader_opts o;
    int64_t *idx, n; /* the samples to iterate (dataset indices) */
    int oh, ow;
    int min_w, min_h;  /* the decode size the transform needs (0: decode in full) */
    size_t sample_len; /* floats per sample */
    uint8_t *bad;      /* [n] found bad under GR_BAD_SKIP: reported once, never read again */
    int64_t skipped;

    /* the current epoch; all of this is guarded by mu */
    int started, epoch;
    int64_t *order; /* [n] positions into idx */
    int64_t used;   /* samples taken this epoch (n, or whole batches only with drop_last) */
    int64_t nbatch;
    int64_t claim;    /* next epoch position to hand out */
    int64_t limit;    /* positions from here on are not handed out (after a fatal failure) */
    int64_t released; /* batches the caller is done with */
    int64_t next_out; /* next batch for the caller */
    int busy;         /* samples being worked on right now */
    int fatal;        /* a fatal failure was returned: sticky until the next start */
    char *fatal_msg;
    int stop;

    slot *slots;
    int nslot;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t *th;
    int nth;
};

/* ---- seeds -------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Documented in data.h, so a caller can reproduce one sample's augmentation on its own. */
static uint64_t sample_seed(uint64_t seed, int epoch, int64_t index)
{
    return splitmix64(splitmix64(splitmix64(seed) ^ (uint64_t)(int64_t)epoch) ^ (uint64_t)index);
}

/* Fisher-Yates from its own stream (not any sample's), or the identity. */
static void epoch_order(gr_loader *l)
{
    for (int64_t i = 0; i < l->n; i++) l->order[i] = i;
    if (!l->o.shuffle) return;
    gr_rng r;
    gr_rng_seed(&r, splitmix64(splitmix64(l->o.seed ^ 0x5348554646u /* "SHUFF" */) ^
                               (uint64_t)(int64_t)l->epoch));
    for (int64_t i = l->n - 1; i > 0; i--) {
        int64_t j = (int64_t)gr_rng_below(&r, (uint64_t)i + 1), t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
}

/* ---- one sample ----------------------------------------------------------------------------- */

static void sample_name(const gr_loader *l, int64_t di, char *buf, size_t n)
{
    if (l->ds->paths && l->ds->paths[di]) snprintf(buf, n, "%s", l->ds->paths[di]);
    else snprintf(buf, n, "%s[%lld]", l->ds->source ? l->ds->source : "dataset", (long long)di);
}

/* Image files are decoded at a reduced JPEG (IDCT) scale when the image is at least twice the
 * size the transform needs, which gr_image_decode_scaled decides; anything else in full. */
static int decode(const gr_loader *l, int64_t di, gr_image *img)
{
    if (l->ds->paths && l->ds->paths[di] && (l->min_w > 0 || l->min_h > 0))
        return gr_image_decode_scaled(l->ds->paths[di], l->min_w, l->min_h, img);
    return gr_dataset_image(l->ds, di, img);
}

/* Decode, check the size, transform into x. Errors name the sample (in this thread's message). */
static int load_sample(const gr_loader *l, int epoch, int64_t di, float *x)
{
    gr_image img = { 0 };
    int st = decode(l, di, &img);
    if (!st) {
        int oh, ow;
        gr_transform_out_size(&l->t, img.w, img.h, &oh, &ow);
        if (oh != l->oh || ow != l->ow) {
            st = gr_err(GRAFT_E_SHAPE,
                        "the transform makes %dx%d (w x h) of this %dx%d image, the batch is %dx%d",
                        ow, oh, img.w, img.h, l->ow, l->oh);
        } else {
            gr_rng rng;
            gr_rng_seed(&rng, sample_seed(l->o.seed, epoch, di));
            st = gr_transform_apply(&l->t, &img, &rng, x);
        }
        gr_image_free(&img);
    }
    if (st) {
        char name[512];
        sample_name(l, di, name, sizeof name);
        if (!strstr(graft_last_error(), name)) gr_err_prefix(st, "%s", name);
    }
    return st;
}

/* ---- the shared counter ------------------------------------------------------------------ */

static int claimable(const gr_loader *l)
{
    return l->started && l->claim < l->used && l->claim < l->limit &&
           l->claim / l->o.batch < l->released + l->nslot;
}

/* Hands out the next position (mu held, claimable(l) true) and readies its slot. */
static int64_t claim_next(gr_loader *l)
{
    int64_t p = l->claim++, b = p / l->o.batch;
    slot *s = &l->slots[b % l->nslot];
    if (s->batch != b) { /* the first sample of batch b: positions are handed out in order */
        int64_t left = l->used - b * l->o.batch;
        s->batch = b;
        s->pending = (int)(left < l->o.batch ? left : l->o.batch);
        s->err = 0;
        free(s->msg);
        s->msg = NULL;
        for (int j = 0; j < l->o.batch; j++) free(s->skip[j]), s->skip[j] = NULL;
    }
    l->busy++;
    return p;
}

/* Runs position p (mu held on entry and exit; released while decoding). */
static void run_sample(gr_loader *l, int64_t p)
{
    int64_t b = p / l->o.batch, pos = l->order[p], di = l->idx[pos];
    int j = (int)(p % l->o.batch), epoch = l->epoch, known_bad = l->bad[pos];
    slot *s = &l->slots[b % l->nslot];
    char msg[1024] = "";
    int st = 0;
    if (!known_bad) {
        pthread_mutex_unlock(&l->mu);
        st = load_sample(l, epoch, di, s->x + (size_t)j * l->sample_len);
        if (st) snprintf(msg, sizeof msg, "%s", graft_last_error());
        pthread_mutex_lock(&l->mu);
    }
    s->ok[j] = !known_bad && !st;
    s->y[j] = l->ds->labels ? l->ds->labels[di] : -1;
    s->index[j] = di;
    if (st && l->o.bad == GR_BAD_SKIP) {
        l->bad[pos] = 1;
        l->skipped++;
        if (l->o.progress.fn) s->skip[j] = gr_strdup(msg); /* lost on NULL: still counted */
    } else if (st && (!s->err || j < s->err_at)) {
        s->err = st;
        s->err_at = j;
        free(s->msg);
        s->msg = gr_strdup(msg);
        /* Nothing after this batch is needed; finish the batch so its first failure is known. */
        int64_t end = (b + 1) * l->o.batch;
        if (end < l->limit) l->limit = end > l->claim ? end : l->claim;
    }
    s->pending--;
    l->busy--;
    pthread_cond_broadcast(&l->done);
}

static void *worker(void *arg)
{
    gr_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !claimable(l)) pthread_cond_wait(&l->work, &l->mu);
        if (l->stop) break;
        run_sample(l, claim_next(l));
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

static int fixed_size(const gr_dataset *ds, const gr_transform *t, int *oh, int *ow)
{
    if (t->rrc > 0 || t->crop > 0 || (t->size_w > 0 && t->size_h > 0)) {
        gr_transform_out_size(t, 1, 1, oh, ow);
        return 1;
    }
    if (ds->pixels && ds->w > 0 && ds->h > 0) { /* in-memory images all have one size */
        gr_transform_out_size(t, ds->w, ds->h, oh, ow);
        return 1;
    }
    return 0;
}

static int check_args(const gr_dataset *ds, const int64_t *idx, int64_t nidx, const gr_transform *t,
                      const gr_loader_opts *o)
{
    if (!ds || !t || !o)
        return gr_err(GRAFT_E_ARG, "loader: dataset, transform and options must not be NULL");
    const char *src = ds->source ? ds->source : "dataset";
    if (ds->features)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: the loader batches images; this dataset holds feature vectors", src);
    if (o->batch <= 0 || o->workers < 0 || o->workers > MAX_WORKERS || o->prefetch < 0 ||
        o->prefetch > 4096)
        return gr_err(GRAFT_E_ARG,
                      "loader: batch %d, workers %d, prefetch %d: need batch > 0, 0 <= workers <= "
                      "%d, 0 <= prefetch <= 4096",
                      o->batch, o->workers, o->prefetch, MAX_WORKERS);
    if (o->bad != GR_BAD_FATAL && o->bad != GR_BAD_SKIP)
        return gr_err(GRAFT_E_ARG,
                      "loader: bad-sample policy %d is neither GR_BAD_FATAL nor GR_BAD_SKIP",
                      o->bad);
    if (idx && nidx < 0) return gr_err(GRAFT_E_ARG, "loader: %lld samples", (long long)nidx);
    for (int64_t i = 0; idx && i < nidx; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return gr_err(GRAFT_E_ARG, "%s: sample index %lld (entry %lld) is outside 0..%lld", src,
                          (long long)idx[i], (long long)i, (long long)ds->n - 1);
    if ((idx ? nidx : ds->n) <= 0) return gr_err(GRAFT_E_ARG, "%s: no samples to load", src);
    return GRAFT_OK;
}

int gr_loader_new(const gr_dataset *ds, const int64_t *idx, int64_t nidx, const gr_transform *t,
                  const gr_loader_opts *o, gr_loader **out)
{
    int st = check_args(ds, idx, nidx, t, o);
    if (st) return st;
    int oh, ow;
    if (!fixed_size(ds, t, &oh, &ow))
        return gr_err(GRAFT_E_ARG,
                      "%s: images may differ in size, so the transform needs a fixed output size "
                      "(crop, rrc or size) to make batches",
                      ds->source ? ds->source : "dataset");
    if ((st = gr_image_size_check("loader: the transform's output", ow, oh))) return st;
    size_t sample_len = (size_t)3 * (size_t)oh * (size_t)ow;
    /* oh * ow is within the image-pixels limit, so only an absurd batch overflows */
    if (sample_len > SIZE_MAX / sizeof(float) / (size_t)o->batch)
        return gr_err(GRAFT_E_ARG, "loader: a batch of %d images of %dx%d is too large to address",
                      o->batch, ow, oh);

    gr_loader *l = gr_calloc(1, sizeof *l);
    if (!l) return GRAFT_E_NOMEM;
    l->ds = ds;
    l->t = *t;
    l->o = *o;
    l->n = idx ? nidx : ds->n;
    l->oh = oh;
    l->ow = ow;
    gr_transform_decode_min(t, &l->min_w, &l->min_h);
    l->sample_len = sample_len;
    l->nth = o->workers;
    /* the caller holds one batch while `prefetch` more are made */
    l->nslot = o->workers ? (o->prefetch ? o->prefetch : 2 * o->workers) + 1 : 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->done, NULL);
    if (!(l->idx = gr_malloc((size_t)l->n * sizeof *l->idx)) ||
        !(l->order = gr_malloc((size_t)l->n * sizeof *l->order)) ||
        !(l->bad = gr_calloc((size_t)l->n, 1)) ||
        !(l->slots = gr_calloc((size_t)l->nslot, sizeof *l->slots)) ||
        !(l->th = gr_calloc((size_t)(l->nth ? l->nth : 1), sizeof *l->th)))
        goto nomem;
    for (int64_t i = 0; i < l->n; i++) l->idx[i] = idx ? idx[i] : i;
    for (int i = 0; i < l->nslot; i++) {
        slot *s = &l->slots[i];
        s->batch = -1;
        size_t b = (size_t)o->batch;
        if (!(s->x = gr_malloc(b * sample_len * sizeof(float))) ||
            !(s->y = gr_malloc(b * sizeof *s->y)) ||
            !(s->index = gr_malloc(b * sizeof *s->index)) || !(s->ok = gr_malloc(b)) ||
            !(s->skip = gr_calloc(b, sizeof *s->skip)))
            goto nomem;
    }
    for (int i = 0; i < l->nth; i++)
        if (pthread_create(&l->th[i], NULL, worker, l)) {
            l->nth = i; /* free joins the ones that started */
            gr_loader_free(l);
            return gr_err(GRAFT_E_NOMEM, "loader: cannot start worker thread %d of %d", i + 1,
                          o->workers);
        }
    *out = l;
    return GRAFT_OK;
nomem:;
    int nslot = l->nslot; /* read before l is freed */
    l->nth = 0;
    gr_loader_free(l);
    return gr_err(GRAFT_E_NOMEM, "loader: out of memory for %d batches of %d images of %dx%d",
                  nslot, o->batch, ow, oh);
}

/* Stops handing out work and waits for samples in flight (mu held). */
static void quiesce(gr_loader *l)
{
    l->started = 0;
    while (l->busy > 0) pthread_cond_wait(&l->done, &l->mu);
}

int gr_loader_start(gr_loader *l, int epoch)
{
    if (!l) return gr_err(GRAFT_E_ARG, "gr_loader_start: no loader");
    if (epoch < 0) return gr_err(GRAFT_E_ARG, "gr_loader_start: epoch %d is negative", epoch);
    pthread_mutex_lock(&l->mu);
    quiesce(l);
    l->epoch = epoch;
    epoch_order(l);
    l->used = l->o.drop_last ? l->n - l->n % l->o.batch : l->n;
    l->nbatch = (l->used + l->o.batch - 1) / l->o.batch;
    l->claim = 0;
    l->limit = l->used;
    l->released = 0;
    l->next_out = 0;
    l->fatal = 0;
    free(l->fatal_msg);
    l->fatal_msg = NULL;
    for (int i = 0; i < l->nslot; i++) l->slots[i].batch = -1;
    l->started = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return GRAFT_OK;
}

/* Reports the batch's skipped samples (slot owned by the caller, mu not held). */
static void report_skips(const gr_loader *l, slot *s, int n)
{
    for (int j = 0; j < n; j++) {
        if (!s->skip[j]) continue;
        gr_progress_note(&l->o.progress, GRAFT_EVENT_WARNING, "load",
                         "graft: skipping a bad sample: %s", s->skip[j]);
        free(s->skip[j]);
        s->skip[j] = NULL;
    }
}

/* Moves the samples that made it to the front; returns how many. Slot owned by the caller. */
static int compact(const gr_loader *l, slot *s, int n)
{
    int k = 0;
    for (int j = 0; j < n; j++) {
        if (!s->ok[j]) continue;
        if (k != j) {
            memcpy(s->x + (size_t)k * l->sample_len, s->x + (size_t)j * l->sample_len,
                   l->sample_len * sizeof(float));
            s->y[k] = s->y[j];
            s->index[k] = s->index[j];
        }
        k++;
    }
    return k;
}

int gr_loader_next(gr_loader *l, gr_batch *b)
{
    if (!l || !b) return -gr_err(GRAFT_E_ARG, "gr_loader_next: loader and batch must not be NULL");
    pthread_mutex_lock(&l->mu);
    if (!l->started && !l->fatal) {
        pthread_mutex_unlock(&l->mu);
        return -gr_err(GRAFT_E_ARG, "gr_loader_next: call gr_loader_start first");
    }
    for (;;) {
        if (l->fatal) {
            int st = l->fatal;
            gr_err(st, "%s", l->fatal_msg ? l->fatal_msg : "loader: an earlier sample failed");
            pthread_mutex_unlock(&l->mu);
            return -st;
        }
        l->released = l->next_out; /* the batch returned last time is free again */
        pthread_cond_broadcast(&l->work);
        if (l->next_out >= l->nbatch) {
            pthread_mutex_unlock(&l->mu);
            return 0;
        }
        int64_t bi = l->next_out;
        slot *s = &l->slots[bi % l->nslot];
        while (s->batch != bi || s->pending > 0) {
            if (l->nth == 0) { /* claims are in order: the next one is batch bi's */
                GR_ASSERT(claimable(l));
                run_sample(l, claim_next(l));
            } else {
                pthread_cond_wait(&l->done, &l->mu);
            }
        }
        if (s->err) { /* workers stop; the message goes to the caller's thread */
            l->fatal = s->err;
            l->fatal_msg = s->msg;
            s->msg = NULL;
            l->limit = l->claim;
            continue;
        }
        int n =
            (int)(l->used - bi * l->o.batch < l->o.batch ? l->used - bi * l->o.batch : l->o.batch);
        l->next_out++;
        pthread_mutex_unlock(&l->mu);
        /* only this thread touches the slot until the next call */
        report_skips(l, s, n);
        int k = compact(l, s, n);
        if (k == 0) { /* every sample of the batch was skipped */
            pthread_mutex_lock(&l->mu);
            continue;
        }
        *b = (gr_batch){ k, l->oh, l->ow, s->x, s->y, s->index };
        return 1;
    }
}

int64_t gr_loader_skipped(const gr_loader *l)
{
    if (!l) return 0;
    gr_loader *m = (gr_loader *)l; /* the mutex is bookkeeping, not the loader's value */
    pthread_mutex_lock(&m->mu);
    int64_t n = m->skipped;
    pthread_mutex_unlock(&m->mu);
    return n;
}

void gr_loader_free(gr_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->nth; i++) pthread_join(l->th[i], NULL);
    for (int i = 0; l->slots && i < l->nslot; i++) {
        slot *s = &l->slots[i];
        free(s->x);
        free(s->y);
        free(s->index);
        free(s->ok);
        free(s->msg);
        for (int j = 0; s->skip && j < l->o.batch; j++) free(s->skip[j]);
        free(s->skip);
    }
    free(l->slots);
    free(l->th);
    free(l->idx);
    free(l->order);
    free(l->bad);
    free(l->fatal_msg);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->done);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
