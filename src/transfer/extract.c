/* extract.c — features from a frozen trunk, computed once and cached.
 *
 * The model is cut at the layer (graph/surgery.c), given the inference rewrites, and run over
 * the samples in batches from the data loader; a spatial map (N, C, H, W) is pooled per row
 * (global mean, or PyTorch's adaptive_avg_pool2d(x, 2 or 4) flattened in (c, i, j) order), tokens
 * (N, T, C) are averaged over T, anything else is flattened.
 *
 * The cache key is a 64-bit FNV-1a hash over: the model file's CRC-32 (two seeds) and size, the
 * layer, the pooling, the canonical text of the transform, and the samples (for files: path,
 * size and modification time of each; for in-memory datasets: the source file's size and
 * modification time) in order. A changed input gives another key; the file is
 * <cache>/<key>.safetensors with "features", "labels" and "index". */
#define _POSIX_C_SOURCE 200809L
#include "transfer.h"

#include "graph/graph.h"
#include "io/io.h"
#include "ops/dnnl_util.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void gr_features_free(gr_features *f)
{
    free(f->X);
    free(f->y);
    free(f->index);
    memset(f, 0, sizeof *f);
}

/* ---- the cache key ---- */

typedef struct fnv {
    uint64_t h;
} fnv;

static void fnv_add(fnv *f, const void *data, size_t n) { f->h = gr_fnv1a(f->h, data, n); }
static void fnv_str(fnv *f, const char *s) { fnv_add(f, s ? s : "", strlen(s ? s : "") + 1); }
static void fnv_i64(fnv *f, int64_t v) { fnv_add(f, &v, sizeof v); }

static void fnv_file_stat(fnv *f, const char *path)
{
    struct stat st;
    fnv_str(f, path);
    if (stat(path, &st) == 0) {
        fnv_i64(f, (int64_t)st.st_size);
        fnv_i64(f, (int64_t)st.st_mtime);
    } else fnv_i64(f, -1);
}

static void cache_key(const gr_model *m, const char *layer, const gr_extract_opts *o,
                      const gr_dataset *ds, const int64_t *idx, int64_t n, char key[17])
{
    fnv f = { GR_FNV1A_BASIS };
    fnv_add(&f, &m->crc[0], sizeof m->crc[0]);
    fnv_add(&f, &m->crc[1], sizeof m->crc[1]);
    fnv_i64(&f, m->size);
    fnv_str(&f, layer);
    fnv_i64(&f, o->pool);
    char t[512];
    gr_transform_format(&o->t, t, sizeof t);
    fnv_str(&f, t);
    fnv_i64(&f, ds->kind);
    fnv_file_stat(&f, ds->source);
    for (int64_t i = 0; i < n; i++) {
        int64_t s = idx ? idx[i] : i;
        fnv_i64(&f, s);
        fnv_i64(&f, ds->labels[s]);
        if (ds->paths) fnv_file_stat(&f, ds->paths[s]);
    }
    snprintf(key, 17, "%016llx", (unsigned long long)f.h);
}

static void cache_path(const char *dir, const char *key, char *path, size_t n)
{
    snprintf(path, n, "%s/%s.safetensors", dir, key);
}

/* Reads a cached result; 1 when there was a usable one, 0 when there is none, or minus
 * GRAFT_E_NOMEM: running out of memory is not a damaged file. A damaged cache file is ignored
 * (recomputed and overwritten), with a warning through the progress callback. */
static int cache_read(const char *path, gr_features *out, const gr_progress *pr)
{
    if (access(path, R_OK) != 0) return 0;
    gr_arena *a = gr_arena_new(1 << 16);
    if (!a) return -GRAFT_E_NOMEM;
    gr_st_entry *e;
    gr_meta *meta;
    int ne, nmeta, ok = 0;
    int st = gr_st_load(path, a, &e, &ne, &meta, &nmeta);
    if (st == GRAFT_E_NOMEM) {
        gr_arena_free(a);
        return -st;
    }
    if (st == GRAFT_OK && ne == 3) {
        const gr_st_entry *X = NULL, *Y = NULL, *I = NULL;
        for (int i = 0; i < ne; i++) {
            if (!strcmp(e[i].name, "features")) X = &e[i];
            if (!strcmp(e[i].name, "labels")) Y = &e[i];
            if (!strcmp(e[i].name, "index")) I = &e[i];
        }
        if (X && Y && I && X->dtype == GR_F32 && X->shape.rank == 2 && Y->dtype == GR_I32 &&
            I->dtype == GR_I64 && gr_numel(&Y->shape) == X->shape.d[0] &&
            gr_numel(&I->shape) == X->shape.d[0]) {
            out->n = X->shape.d[0];
            out->dim = (int)X->shape.d[1];
            out->X = malloc(X->bytes + 1);
            out->y = malloc(Y->bytes + 1);
            out->index = malloc(I->bytes + 1);
            if (out->X && out->y &&
                out->index) { /* (else the frees below, keeping key and layer) */
                memcpy(out->X, X->data, X->bytes);
                memcpy(out->y, Y->data, Y->bytes);
                memcpy(out->index, I->data, I->bytes);
                ok = 1;
                for (int m = 0; m < nmeta; m++)
                    if (!strcmp(meta[m].key, "layer"))
                        snprintf(out->layer, sizeof out->layer, "%s", meta[m].value);
            } else {
                free(out->X), free(out->y), free(out->index);
                out->X = NULL, out->y = NULL, out->index = NULL;
                out->n = 0, out->dim = 0;
                gr_arena_free(a);
                return -gr_err(GRAFT_E_NOMEM, "%s: out of memory reading the cached features",
                               path);
            }
        } else gr_err(GRAFT_E_FORMAT, "not graft's features/labels/index");
    }
    /* a warning, not progress: graft's CLI shows it also with --json */
    if (!ok)
        gr_progress_note(pr, GRAFT_EVENT_WARNING, "extract",
                         "extract: ignoring the damaged cache file %s: %s", path,
                         graft_last_error());
    gr_arena_free(a);
    return ok;
}

static int cache_write(const char *dir, const char *path, const gr_features *f,
                       const char *model_path, const gr_extract_opts *o)
{
    if (gr_make_dirs(dir))
        return gr_err(GRAFT_E_IO, "cannot create the feature cache folder %s", dir);
    int64_t dx[2] = { f->n, f->dim }, dn[1] = { f->n };
    gr_st_entry e[3] = {
        { "features", GR_F32, gr_shape_make(2, dx), f->X, (size_t)f->n * f->dim * sizeof(float) },
        { "labels", GR_I32, gr_shape_make(1, dn), f->y, (size_t)f->n * sizeof(int32_t) },
        { "index", GR_I64, gr_shape_make(1, dn), f->index, (size_t)f->n * sizeof(int64_t) },
    };
    char t[512], pool[8];
    gr_transform_format(&o->t, t, sizeof t);
    snprintf(pool, sizeof pool, "%d", o->pool);
    gr_meta meta[4] = { { "model", (char *)model_path },
                        { "layer", (char *)f->layer },
                        { "transform", t },
                        { "pool", pool } };
    return gr_st_save(path, e, 3, meta, 4);
}

static int pooled_dim(const gr_shape *s, int pool)
{
    int side = gr_pool_side(pool);
    if (s->rank == 4 && side) return (int)(s->d[1] * side * side);
    if (s->rank == 3) return (int)s->d[2];
    int64_t d = 1;
    for (int i = 1; i < s->rank; i++) d *= s->d[i];
    return (int)d;
}

/* One row of features from sample r of the output y (plain float). A grid of G x G cells is
 * adaptive_avg_pool2d(x, G): cell i spans [floor(i*H/G), ceil((i+1)*H/G)) on each axis. */
static void pool_row(const gr_tensor *y, int64_t r, int pool, float *row)
{
    const gr_shape *s = &y->shape;
    const float *x = y->data;
    int G = gr_pool_side(pool);
    if (s->rank == 4 && G) {
        int64_t C = s->d[1], H = s->d[2], W = s->d[3];
        const float *base = x + r * C * H * W;
        for (int64_t c = 0; c < C; c++) {
            const float *p = base + c * H * W;
            for (int gi = 0; gi < G; gi++)
                for (int gj = 0; gj < G; gj++) {
                    int64_t h0 = gi * H / G, h1 = ((gi + 1) * H + G - 1) / G, w0 = gj * W / G,
                            w1 = ((gj + 1) * W + G - 1) / G;
                    double acc = 0;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) acc += p[h * W + w];
                    row[(c * G + gi) * G + gj] = (float)(acc / (double)((h1 - h0) * (w1 - w0)));
                }
        }
        return;
    }
    if (s->rank == 3) {
        int64_t T = s->d[1], C = s->d[2];
        for (int64_t c = 0; c < C; c++) {
            double acc = 0;
            for (int64_t t = 0; t < T; t++) acc += x[(r * T + t) * C + c];
            row[c] = (float)(acc / (double)T);
        }
        return;
    }
    int64_t d = gr_numel(s) / (s->d[0] ? s->d[0] : 1);
    memcpy(row, x + r * d, (size_t)d * sizeof(float));
}

/* ---- the run ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reports the samples done (rows made plus samples skipped as bad, so a run ends at total)
 * when they changed since *shown. */
static void progress(const gr_extract_opts *o, const gr_loader *l, int64_t rows, int64_t total,
                     int64_t *shown)
{
    if (!o->progress.fn) return;
    int64_t done = rows + (l ? gr_loader_skipped(l) : 0);
    if (done == *shown) return;
    *shown = done;
    gr_progress_step(&o->progress, o->stage ? o->stage : "extract", done, total);
}

/* The model cut at several values (their outputs in that order), rewritten for inference. */
static int load_multi(const gr_model *m, const char *const *layers, int n, gr_graph **out)
{
    gr_graph *g = NULL;
    int st = gr_graph_clone(m->g, 1, &g);
    if (st) return st;
    if (!(st = gr_graph_cut(g, layers, n))) st = gr_graph_optimize(g);
    if (st) {
        gr_graph_free(g);
        return gr_err_prefix(st, "%s", m->path);
    }
    *out = g;
    return GRAFT_OK;
}

/* The cut, rewritten graph of the model, and the name of its output. */
static int load_trunk(const gr_model *m, const char *layer, gr_graph **out, char *name,
                      size_t nname)
{
    gr_graph *g;
    int st = gr_graph_clone(m->g, 1, &g);
    if (st) return st;
    if (layer) snprintf(name, nname, "%s", layer);
    else {
        int feat, first;
        if ((st = gr_graph_find_classifier(g, &feat, &first))) goto fail;
        snprintf(name, nname, "%s", g->values[feat].name);
    }
    const char *names[1] = { name };
    if ((st = gr_graph_cut(g, names, 1)) || (st = gr_graph_optimize(g))) goto fail;
    snprintf(name, nname, "%s", g->values[g->outputs[0]].name);
    *out = g;
    return GRAFT_OK;
fail:
    gr_graph_free(g);
    return gr_err_prefix(st, "%s", m->path);
}

/* Runs the cut graph over the samples; output k pooled into f[k] (pool[k]). */
static int run_multi(gr_graph *g, const gr_dataset *ds, const int64_t *idx, int64_t n,
                     const gr_extract_opts *o, const int *pool, int nout, gr_features *f);

static int run_batches(gr_graph *g, const gr_dataset *ds, const int64_t *idx, int64_t n,
                       const gr_extract_opts *o, gr_features *f)
{
    return run_multi(g, ds, idx, n, o, &o->pool, 1, f);
}

static int run_multi(gr_graph *g, const gr_dataset *ds, const int64_t *idx, int64_t n,
                     const gr_extract_opts *o, const int *pool, int nout, gr_features *fs)
{
    gr_dnnl *dnnl = NULL;
    gr_loader *l = NULL;
    gr_plan *plan = NULL;
    int64_t decl = g->values[g->inputs[0]].t.shape.rank ? g->values[g->inputs[0]].t.shape.d[0] : -1;
    gr_loader_opts lo = { .batch = decl > 0 ? (int)decl : (o->batch > 0 ? o->batch : 32),
                          .workers = o->workers > 0 ? o->workers : 2,
                          .bad = o->bad,
                          .progress = o->progress };
    int st = gr_dnnl_new(&dnnl);
    if (!st) st = gr_loader_new(ds, idx, n, &o->t, &lo, &l);
    if (!st) st = gr_loader_start(l, 0);
    for (int k = 0; k < nout; k++) {
        fs[k].X = NULL;
        fs[k].y = malloc((size_t)(n + 1) * sizeof *fs[k].y);
        fs[k].index = malloc((size_t)(n + 1) * sizeof *fs[k].index);
        if (!st && (!fs[k].y || !fs[k].index)) st = GRAFT_E_NOMEM;
    }
    int64_t shown = -1;
    if (!st) progress(o, NULL, 0, n, &shown);
    gr_batch b;
    int r = 0;
    while (!st && (r = gr_loader_next(l, &b)) > 0) {
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(4, (int64_t[]){ b.n, 3, b.h, b.w }),
                        .data = b.x };
        if (!plan || !gr_plan_matches(plan, &x)) {
            gr_plan_free(plan);
            plan = NULL;
            gr_plan_opts po = { .use_ref = o->use_ref, .dnnl = dnnl };
            if ((st = gr_plan_build(g, &x, &po, &plan))) break;
        }
        gr_plan_run(plan, &x);
        for (int k = 0; k < nout && !st; k++) {
            gr_features *f = &fs[k];
            const gr_tensor *y = gr_plan_output(plan, k);
            /* every batch: without a fixed input size the maps' sides can change */
            if (y->shape.rank == 4 &&
                (st = gr_pool_check(y->shape.d[2], y->shape.d[3], pool[k], f->layer)))
                break;
            if (!f->X) {
                f->dim = pooled_dim(&y->shape, pool[k]);
                f->X = malloc((size_t)(n + 1) * f->dim * sizeof(float));
                if (!f->X) {
                    st = GRAFT_E_NOMEM;
                    break;
                }
            }
            for (int i = 0; i < b.n; i++, f->n++) {
                pool_row(y, i, pool[k], f->X + f->n * f->dim);
                f->y[f->n] = b.y[i];
                f->index[f->n] = b.index[i];
            }
        }
        progress(o, l, fs[0].n, n, &shown);
    }
    if (!st && r < 0) st = -r;
    if (!st) progress(o, l, fs[0].n, n, &shown); /* trailing batches that were all skipped */
    gr_plan_free(plan);
    gr_loader_free(l);
    gr_dnnl_free(dnnl);
    return st;
}

int gr_extract(const gr_model *m, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
               const gr_extract_opts *o, gr_features *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = idx ? nidx : ds->n;
    if (n <= 0) return gr_err(GRAFT_E_ARG, "extract: no samples");
    double t0 = now();
    gr_graph *g = NULL;
    char layer[256], path[1024];
    int st = load_trunk(m, o->layer, &g, layer, sizeof layer);
    if (st) return st;
    gr_features f = { 0 };
    snprintf(f.layer, sizeof f.layer, "%s", layer);
    if (o->cache_dir) {
        cache_key(m, layer, o, ds, idx, n, f.key);
        cache_path(o->cache_dir, f.key, path, sizeof path);
        int hit = cache_read(path, &f, &o->progress);
        if (hit < 0) {
            st = -hit;
            goto done;
        }
        if (hit) {
            f.cached = 1;
            goto done;
        }
    }
    st = run_batches(g, ds, idx, n, o, &f);
    /* the features are still good, so no error, but a warning (like a damaged cache file): a
     * full disk is a problem report, not progress */
    if (!st && o->cache_dir && cache_write(o->cache_dir, path, &f, m->path, o))
        gr_progress_note(&o->progress, GRAFT_EVENT_WARNING, "extract",
                         "extract: the features are not cached: %s", graft_last_error());
done:
    gr_graph_free(g);
    if (st) {
        gr_features_free(&f);
        return st;
    }
    f.seconds = now() - t0;
    *out = f;
    return GRAFT_OK;
}

/* ---- several layers at once, and the automatic choice ---- */

int gr_extract_layers(const gr_model *m, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
                      const char *const *layers, const int *pool, int n, const gr_extract_opts *o,
                      gr_features *out)
{
    memset(out, 0, (size_t)n * sizeof *out);
    gr_graph *g = NULL;
    int st = load_multi(m, layers, n, &g);
    if (st) return st;
    for (int k = 0; k < n; k++) snprintf(out[k].layer, sizeof out[k].layer, "%s", layers[k]);
    st = run_multi(g, ds, idx, idx ? nidx : ds->n, o, pool, n, out);
    gr_graph_free(g);
    if (st)
        for (int k = 0; k < n; k++) gr_features_free(&out[k]);
    return st;
}

static int is_merge(const char *op)
{
    return !strcmp(op, "Add") || !strcmp(op, "Concat") || !strcmp(op, "Sum");
}

int gr_layer_candidates(const gr_model *m, const gr_transform *t, int max, char ***names,
                        int64_t **sides, int *count)
{
    const gr_graph *g = m->g;
    int st = GRAFT_OK, oh, ow;
    if (!t->crop && !t->rrc && !t->size_w)
        return gr_err(GRAFT_E_ARG,
                      "choosing a layer needs a transform with a fixed size (crop, rrc or size)");
    gr_transform_out_size(t, 224, 224, &oh, &ow);
    gr_tensor in = { .dtype = GR_F32, .shape = gr_shape_make(4, (int64_t[]){ 1, 3, oh, ow }) };
    gr_plan *p = NULL;
    gr_plan_opts po = { .use_ref = 1 };
    if (g->ninputs != 1)
        st = gr_err(GRAFT_E_UNSUPPORTED, "%s: automatic layer choice needs a model with one input",
                    m->path);
    if (!st) st = gr_plan_build(g, &in, &po, &p);
    int *cand = st ? NULL : malloc((size_t)(g->nvalues + 1) * sizeof *cand), nc = 0;
    unsigned char *take = st ? NULL : calloc((size_t)g->nvalues + 1, 1);
    if (!st && (!cand || !take)) st = GRAFT_E_NOMEM;
    if (!st) {
        /* cut points, and the outputs of merges (FPN sums, concatenations) inside multi-branch
         * models, which "one activation alive" misses; all rank-4 float maps of at least 2x2 */
        int nk = gr_plan_cut_points(p, cand, g->nvalues);
        if (nk < 0) st = -nk;
        for (int i = 0; i < nk; i++) take[cand[i]] = 1;
        for (int k = 0; k < g->nnodes; k++)
            if (is_merge(g->nodes[k].op_type) && g->nodes[k].nout == 1 && g->nodes[k].out[0] >= 0)
                take[g->nodes[k].out[0]] = 1;
        for (int k = 0; k < g->nnodes; k++)
            for (int j = 0; j < g->nodes[k].nout; j++) {
                int v = g->nodes[k].out[j];
                if (v < 0 || !take[v]) continue;
                const gr_tensor *x = gr_plan_value(p, v);
                if (x->dtype == GR_F32 && x->shape.rank == 4 && x->shape.d[2] >= 2 &&
                    x->shape.d[3] >= 2)
                    cand[nc++] = v;
                take[v] = 0;
            }
        if (nc == 0) st = gr_err(GRAFT_E_UNSUPPORTED, "%s: no feature map to choose from", m->path);
    }
    int keep = nc < max ? nc : max;
    char **out = st ? NULL : calloc((size_t)keep + 1, sizeof *out);
    int64_t *hw = st ? NULL : malloc((size_t)(2 * keep + 1) * sizeof *hw);
    if (!st && (!out || !hw)) st = GRAFT_E_NOMEM;
    for (int i = 0; !st && i < keep; i++) { /* evenly spaced in execution order, the last kept */
        int at = keep == 1 ? nc - 1 : (int)((int64_t)i * (nc - 1) / (keep - 1));
        const gr_tensor *x = gr_plan_value(p, cand[at]);
        hw[2 * i] = x->shape.d[2], hw[2 * i + 1] = x->shape.d[3];
        if (!(out[i] = gr_strdup(g->values[cand[at]].name))) st = GRAFT_E_NOMEM;
    }
    if (st && out) {
        for (int i = 0; i < keep; i++) free(out[i]);
        free(out);
    } else if (!st) {
        *names = out;
        *count = keep;
    }
    if (!st && sides) *sides = hw;
    else free(hw);
    free(cand);
    free(take);
    gr_plan_free(p);
    return st;
}
