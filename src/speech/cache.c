#define _GNU_SOURCE
/* cache.c — the features of a clip set: every item through the speech front end once, cached in
 * WORK/features in blocks of 25 items, each keyed by its clips' recipes and files, the noise beds
 * and the front-end models. */
#include "kw_recipe.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bump when the recipe's code changes what features a clip set gives (cuts, mixing, padding). */
#define KEYWORD_RECIPE "graft keyword features v2"

/* A file's size and modification time (ns) into the hash; nothing for a missing file. */
static uint64_t file_id(uint64_t h, const char *path)
{
    struct stat st;
    if (!path[0] || stat(path, &st) != 0) return h;
    h = gr_fnv1a(h, &st.st_size, sizeof st.st_size);
    h = gr_fnv1a(h, &st.st_mtim.tv_sec, sizeof st.st_mtim.tv_sec);
    return gr_fnv1a(h, &st.st_mtim.tv_nsec, sizeof st.st_mtim.tv_nsec);
}

/* The cache key: every clip's recipe and file, the items, the noise beds, the front end's models. */
static uint64_t clipset_key(const gr_kw_clipset *s, const char *models_dir, const char *work_dir)
{
    uint64_t h = gr_kw_fnv_str(GR_KW_FNV_START, KEYWORD_RECIPE);
    for (int i = 0; i < s->nclip; i++) {
        const gr_kw_clip *c = &s->c[i];
        char num[96];
        snprintf(num, sizeof num, "%d %d %d %d %.4f %llu %d %.3f", c->speed, c->pitch, c->positive,
                 c->noise, c->snr_db, (unsigned long long)c->noise_at, c->silent, c->level_db);
        h = gr_kw_fnv_str(
            gr_kw_fnv_str(
                gr_kw_fnv_str(gr_kw_fnv_str(gr_kw_fnv_str(h, c->voice), c->text), c->effects), num),
            c->path);
        h = file_id(h, c->path); /* the WAV as it is now, synthetic or the user's */
    }
    static const char *beds[] = { "whitenoise", "pinknoise", "brownnoise" };
    for (int k = 0; k < 3; k++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/noise/%s.wav", work_dir, beds[k]);
        h = file_id(h, p);
    }
    for (int i = 0; i < s->nitem; i++)
        h = gr_fnv1a(gr_fnv1a(h, &s->first[i], sizeof(int)), &s->count[i], sizeof(int));
    const char *files[] = { "melspectrogram.onnx", "embedding_model.onnx" };
    for (int k = 0; k < 2; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", models_dir, files[k]);
        h = file_id(h, p);
    }
    return h;
}

static int cache_load(gr_kw_clipset *s, const char *path)
{
    gr_arena *a = gr_arena_new(1 << 20);
    gr_st_entry *e;
    gr_meta *meta;
    int n, nmeta;
    if (!a || gr_st_load(path, a, &e, &n, &meta, &nmeta) || n != 5) {
        gr_arena_free(a);
        return -1;
    }
    const char *names[5] = { "emb", "mel", "emb_off", "mel_off", "end" };
    void *p[5];
    for (int k = 0; k < 5; k++) {
        if (strcmp(e[k].name, names[k])) {
            gr_arena_free(a);
            return -1;
        }
        p[k] = e[k].data;
    }
    const int dt[5] = { GR_F32, GR_F32, GR_I64, GR_I64, GR_F32 };
    int ok = e[2].shape.rank == 1 && e[2].shape.d[0] == s->nitem + 1 && e[3].shape.rank == 1 &&
             e[3].shape.d[0] == s->nitem + 1 && e[4].shape.rank == 1 &&
             e[4].shape.d[0] == s->nitem && e[0].shape.rank == 2 && e[0].shape.d[1] == GR_KW_DIM &&
             e[1].shape.rank == 2 && e[1].shape.d[1] == GR_KW_MELS;
    for (int k = 0; k < 5 && ok; k++) ok = e[k].dtype == dt[k];
    const int64_t *eo = p[2], *mo = p[3];
    for (int i = 0; i < s->nitem && ok; i++) ok = eo[i] <= eo[i + 1] && mo[i] <= mo[i + 1];
    ok = ok && eo[0] == 0 && mo[0] == 0 && eo[s->nitem] == e[0].shape.d[0] &&
         mo[s->nitem] == e[1].shape.d[0];
    if (!ok) {
        gr_arena_free(a);
        return -1;
    }
    s->emb = p[0], s->mel = p[1], s->emb_off = p[2], s->mel_off = p[3], s->end = p[4];
    s->seconds = 0;
    for (int k = 0; k < nmeta; k++)
        if (!strcmp(meta[k].key, "seconds")) s->seconds = atof(meta[k].value);
    s->arena = a;
    return 0;
}

static int cache_save(const gr_kw_clipset *s, const char *path)
{
    int64_t ne = s->emb_off[s->nitem], nm = s->mel_off[s->nitem];
    gr_st_entry e[5] = {
        { "emb", GR_F32, gr_shape_make(2, (int64_t[]){ ne, GR_KW_DIM }), s->emb,
          (size_t)ne * GR_KW_DIM * 4 },
        { "mel", GR_F32, gr_shape_make(2, (int64_t[]){ nm, GR_KW_MELS }), s->mel,
          (size_t)nm * GR_KW_MELS * 4 },
        { "emb_off", GR_I64, gr_shape_make(1, (int64_t[]){ s->nitem + 1 }), s->emb_off,
          (size_t)(s->nitem + 1) * 8 },
        { "mel_off", GR_I64, gr_shape_make(1, (int64_t[]){ s->nitem + 1 }), s->mel_off,
          (size_t)(s->nitem + 1) * 8 },
        { "end", GR_F32, gr_shape_make(1, (int64_t[]){ s->nitem }), s->end, (size_t)s->nitem * 4 },
    };
    char secs[64];
    snprintf(secs, sizeof secs, "%.6f", s->seconds);
    gr_meta meta[1] = { { "seconds", secs } };
    return gr_st_save(path, e, 5, meta, 1);
}

/* Progress of a set's features over its blocks. */
typedef struct progress {
    const char *what;
    const gr_progress *p;
    int done, total, cached; /* items */
    int final;               /* the last item was computed, not read from the cache */
    double seconds, t0;      /* audio computed so far, and when computing started */
    double rate;             /* times real time, as of the last item computed */
} progress;

static void item_done(progress *pr, double seconds)
{
    pr->seconds += seconds, pr->done++;
    double el = gr_now() - pr->t0;
    pr->final |= pr->done == pr->total;
    pr->rate = el > 0 ? pr->seconds / el : 0.0;
    gr_progress_step(pr->p, "embed", pr->done, pr->total);
}

/* Item i's embeddings (ne) and mel frames (nf) appended to the block's arrays, which grow to
 * twice what they need when full. */
static int append_features(gr_kw_clipset *s, int i, const float *emb, int64_t ne, const float *mel,
                           int64_t nf, int64_t *cap_e, int64_t *cap_m)
{
    if (s->emb_off[i] + ne > *cap_e) {
        *cap_e = (s->emb_off[i] + ne) * 2;
        float *p = realloc(s->emb, (size_t)*cap_e * GR_KW_DIM * sizeof(float));
        if (!p) return gr_err(GRAFT_E_NOMEM, "out of memory");
        s->emb = p;
    }
    if (s->mel_off[i] + nf > *cap_m) {
        *cap_m = (s->mel_off[i] + nf) * 2;
        float *p = realloc(s->mel, (size_t)*cap_m * GR_KW_MELS * sizeof(float));
        if (!p) return gr_err(GRAFT_E_NOMEM, "out of memory");
        s->mel = p;
    }
    memcpy(s->emb + s->emb_off[i] * GR_KW_DIM, emb, (size_t)ne * GR_KW_DIM * sizeof(float));
    memcpy(s->mel + s->mel_off[i] * GR_KW_MELS, mel, (size_t)nf * GR_KW_MELS * sizeof(float));
    s->emb_off[i + 1] = s->emb_off[i] + ne;
    s->mel_off[i + 1] = s->mel_off[i] + nf;
    return GRAFT_OK;
}

/* Item i's audio (its clips, mixed with their noise) through the front end; *seconds gets its
 * length. */
static int item_features(gr_kw_clipset *s, int i, gr_kw_frontend *fe, const gr_kw_noise *nb,
                         int64_t *cap_e, int64_t *cap_m, double *seconds)
{
    float *x = NULL, *mel = NULL, *emb = NULL;
    int64_t n = 0, nf = 0, ne = 0;
    s->end[i] = -1;
    int st = gr_kw_item_audio(s, i, nb, &x, &n, &s->end[i]);
    if (!st) st = gr_kw_embed(fe, x, n, &mel, &nf, &emb, &ne);
    free(x);
    *seconds = (double)n / GR_KW_RATE;
    s->seconds += *seconds;
    if (!st) st = append_features(s, i, emb, ne, mel, nf, cap_e, cap_m);
    free(mel);
    free(emb);
    return st;
}

/* Embeddings (and mel frames) of a block of items, from the cache or computed and cached. */
static int block_features(gr_kw_clipset *s, gr_kw_frontend *fe, const gr_kw_noise *nb,
                          const char *dir, const char *models_dir, progress *pr)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/features/%016llx.safetensors", dir,
             (unsigned long long)clipset_key(s, models_dir, dir));
    if (gr_kw_file_exists(path) && cache_load(s, path) == 0) {
        pr->done += s->nitem, pr->cached += s->nitem;
        gr_progress_step(pr->p, "embed", pr->done, pr->total);
        return GRAFT_OK;
    }
    s->owns = 1;
    s->emb_off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
    s->mel_off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
    s->end = calloc((size_t)s->nitem + 1, sizeof(float));
    if (!s->emb_off || !s->mel_off || !s->end) return gr_err(GRAFT_E_NOMEM, "out of memory");
    int64_t cap_e = 0, cap_m = 0;
    if (pr->t0 == 0) pr->t0 = gr_now();
    int st = GRAFT_OK;
    for (int i = 0; i < s->nitem && !st; i++) {
        double seconds = 0;
        st = item_features(s, i, fe, nb, &cap_e, &cap_m, &seconds);
        if (!st) item_done(pr, seconds);
    }
    if (!st) {
        char fd[1100];
        snprintf(fd, sizeof fd, "%s/features", dir);
        if (gr_make_dirs(fd) || cache_save(s, path))
            gr_progress_note(pr->p, GRAFT_EVENT_WARNING, "embed",
                             "%s: warning: cannot write the feature cache %s: %s", pr->what, path,
                             graft_last_error());
    }
    return st;
}

enum {
    CACHE_BLOCK = 25
}; /* items per cache file: a change to one clip recomputes its block only */

/* Items [a, b) of s as a set of their own over s's clips (first[] rebased; c and count point
 * into s: free the view with view_free). */
static int block_view(const gr_kw_clipset *s, int a, int b, gr_kw_clipset *v)
{
    memset(v, 0, sizeof *v);
    int c0 = s->first[a], c1 = s->first[b - 1] + s->count[b - 1];
    v->first = malloc((size_t)(b - a) * sizeof *v->first);
    if (!v->first) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = a; i < b; i++) v->first[i - a] = s->first[i] - c0;
    v->c = s->c + c0, v->nclip = c1 - c0, v->count = s->count + a, v->nitem = b - a;
    return GRAFT_OK;
}

static void view_free(gr_kw_clipset *v)
{
    v->c = NULL, v->count = NULL; /* s's */
    gr_kw_clipset_free(v);
}

/* The blocks' features joined into s's own arrays. */
static int join_blocks(gr_kw_clipset *s, const gr_kw_clipset *views, int nb_blocks)
{
    int64_t ne = 0, nm = 0;
    for (int k = 0; k < nb_blocks; k++)
        ne += views[k].emb_off[views[k].nitem], nm += views[k].mel_off[views[k].nitem];
    s->owns = 1;
    s->emb = malloc((size_t)(ne + 1) * GR_KW_DIM * sizeof(float));
    s->mel = malloc((size_t)(nm + 1) * GR_KW_MELS * sizeof(float));
    s->emb_off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
    s->mel_off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
    s->end = calloc((size_t)s->nitem + 1, sizeof(float));
    if (!s->emb || !s->mel || !s->emb_off || !s->mel_off || !s->end)
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int k = 0, i = 0; k < nb_blocks; k++) {
        const gr_kw_clipset *v = &views[k];
        int64_t e0 = s->emb_off[i], m0 = s->mel_off[i];
        memcpy(s->emb + e0 * GR_KW_DIM, v->emb,
               (size_t)v->emb_off[v->nitem] * GR_KW_DIM * sizeof(float));
        memcpy(s->mel + m0 * GR_KW_MELS, v->mel,
               (size_t)v->mel_off[v->nitem] * GR_KW_MELS * sizeof(float));
        for (int j = 0; j < v->nitem; j++, i++) {
            s->emb_off[i + 1] = e0 + v->emb_off[j + 1];
            s->mel_off[i + 1] = m0 + v->mel_off[j + 1];
            s->end[i] = v->end[j];
        }
        s->seconds += v->seconds;
    }
    return GRAFT_OK;
}

/* The set's line: all from the cache, or how many were computed and how fast. */
static void features_note(const gr_kw_clipset *s, const progress *pr)
{
    if (s->nitem > 0 && pr->cached == s->nitem)
        gr_progress_note(pr->p, GRAFT_EVENT_NOTE, "embed",
                         "%s: %d recordings, %.0f s of audio: features from the cache", pr->what,
                         s->nitem, s->seconds);
    else if (pr->final) /* the last item was computed: its rate stands */
        gr_progress_note(pr->p, GRAFT_EVENT_NOTE, "embed",
                         "%s: features %d/%d recordings (%d from the cache), %.0f s of audio "
                         "computed at %.0fx real time",
                         pr->what, pr->done, pr->total, pr->cached, pr->seconds, pr->rate);
    else /* the last blocks came from the cache */
        gr_progress_note(pr->p, GRAFT_EVENT_NOTE, "embed",
                         "%s: features %d/%d recordings (%d from the cache), %.0f s of audio "
                         "computed",
                         pr->what, s->nitem, s->nitem, pr->cached, pr->seconds);
}

/* Embeddings (and mel frames) of every item: blocks of CACHE_BLOCK items, each from the cache or
 * computed and cached (the negatives of two keywords differ in a few clips: the rest is reused). */
static int clipset_features(gr_kw_clipset *s, gr_kw_frontend *fe, const gr_kw_noise *nb,
                            const char *dir, const char *models_dir, const char *what,
                            const gr_progress *p)
{
    progress pr = { .what = what, .p = p, .total = s->nitem };
    int nb_blocks = (s->nitem + CACHE_BLOCK - 1) / CACHE_BLOCK, st = GRAFT_OK;
    gr_kw_clipset *views = calloc((size_t)nb_blocks + 1, sizeof *views);
    if (!views) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int k = 0; k < nb_blocks && !st; k++) {
        int a = k * CACHE_BLOCK, b = a + CACHE_BLOCK < s->nitem ? a + CACHE_BLOCK : s->nitem;
        st = block_view(s, a, b, &views[k]);
        if (!st) st = block_features(&views[k], fe, nb, dir, models_dir, &pr);
    }
    s->seconds = 0;
    if (!st) st = join_blocks(s, views, nb_blocks);
    for (int k = 0; k < nb_blocks; k++) view_free(&views[k]);
    free(views);
    if (!st) features_note(s, &pr);
    return st;
}

/* Synthesis then features of a set; the synthesis also proves espeak-ng spoke the keyword. */
int gr_kw_materialise(const gr_kw_train_opts *o, gr_kw_clipset *s, gr_kw_frontend *fe,
                      const gr_kw_noise *nb, const char *what, gr_kw_train_result *res)
{
    double t0 = gr_now();
    int st =
        gr_kw_synthesise(s->c, s->nclip, o->parallel > 0 ? o->parallel : 4, what, &o->progress);
    double t1 = gr_now();
    if (!st) st = clipset_features(s, fe, nb, o->work_dir, o->models_dir, what, &o->progress);
    res->seconds_synthesis += t1 - t0;
    res->seconds_features += gr_now() - t1;
    return st;
}
