/* checkpoint.c — a training session in one safetensors file, and a rotation of two such files
 * in a folder so that a crash at any instant leaves a checkpoint to resume from.
 *
 * A checkpoint holds everything a step reads besides the data: the parameter block (each
 * trainable initializer under its own name), the optimizer's state ("opt.m.<name>", and for
 * AdamW "opt.v.<name>"; "opt.w0.<name>" with L2-SP), the running statistics ("buf.<name>"), the
 * Dropout rng ("rng", 4 x int64, the xoshiro state's bits) and, in __metadata__, the step count
 * (which is also the schedule's position) and the caller's data position. Restoring all of it
 * makes the next step compute exactly what it would have computed without the interruption. */
#define _GNU_SOURCE
#include "train.h"

#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_FORMAT "graft-trainer-checkpoint-1"
#define CKPT_NAME   "ckpt.safetensors"
#define CKPT_PREV   "ckpt.prev.safetensors"
#define CKPT_NEXT   "ckpt.next.safetensors"
#define CKPT_LINK   "ckpt.prev.safetensors.link"

/* One tensor of a checkpoint and where it lives in the trainer. */
typedef struct slot {
    char *name;
    int dtype;
    gr_shape shape;
    void *data;
    size_t bytes;
    int seen;
} slot;

static const char *kind_name(int kind) { return kind == GR_ADAMW ? "adamw" : "sgd"; }

static char *fmt(gr_arena *a, const char *f, const char *s)
{
    size_t n = strlen(f) + strlen(s) + 1;
    char *p = gr_arena_alloc(a, n);
    if (p) snprintf(p, n, f, s);
    return p;
}

static int has_m(const gr_optim *o)
{
    return o->m && (o->cfg.kind == GR_ADAMW || o->cfg.momentum > 0);
}

/* The tensors of t's checkpoint, in file order, names and the array from arena a. */
static int make_slots(gr_trainer *t, gr_arena *a, slot **out, int *n)
{
    const gr_optim *o = &t->opt;
    int per = 1 + has_m(o) + (o->v != NULL) + (o->w0 != NULL);
    slot *s = gr_arena_alloc(a, (size_t)(per * t->nparam + t->nbuf_values + 1) * sizeof *s);
    if (!s) return gr_err(GRAFT_E_NOMEM, "checkpoint: out of memory");
    int k = 0;
    struct {
        const char *prefix;
        float *block;
    } parts[4] = { { "%s", t->w },
                   { "opt.m.%s", has_m(o) ? o->m : NULL },
                   { "opt.v.%s", o->v },
                   { "opt.w0.%s", o->w0 } };
    for (int part = 0; part < 4; part++) {
        if (!parts[part].block) continue;
        for (int p = 0; p < t->nparam; p++) {
            const gr_param *q = &t->params[p];
            int v = gr_graph_find_value(t->g, q->name);
            GR_ASSERT(v >= 0 && gr_numel(&t->g->values[v].t.shape) == q->n);
            s[k] = (slot){ .name = fmt(a, parts[part].prefix, q->name),
                           .dtype = GR_F32,
                           .shape = t->g->values[v].t.shape,
                           .data = parts[part].block + q->off,
                           .bytes = (size_t)q->n * sizeof(float) };
            if (!s[k++].name) return gr_err(GRAFT_E_NOMEM, "checkpoint: out of memory");
        }
    }
    for (int b = 0; b < t->nbuf_values; b++) {
        gr_value *x = &t->g->values[t->buf_values[b]];
        s[k] = (slot){ .name = fmt(a, "buf.%s", x->name),
                       .dtype = GR_F32,
                       .shape = x->t.shape,
                       .data = x->t.data,
                       .bytes = (size_t)gr_numel(&x->t.shape) * sizeof(float) };
        if (!s[k++].name) return gr_err(GRAFT_E_NOMEM, "checkpoint: out of memory");
    }
    s[k] = (slot){ .name = "rng",
                   .dtype = GR_I64,
                   .shape = { 1, { 4 } },
                   .data = t->rng.s,
                   .bytes = sizeof t->rng.s };
    k++;
    *out = s;
    *n = k;
    return GRAFT_OK;
}

/* ---- metadata ---- */

static int add_meta(gr_arena *a, gr_meta *m, int *n, const char *key, const char *value)
{
    m[*n].key = gr_arena_strdup(a, key);
    m[*n].value = gr_arena_strdup(a, value);
    if (!m[*n].key || !m[*n].value) return gr_err(GRAFT_E_NOMEM, "checkpoint: out of memory");
    (*n)++;
    return GRAFT_OK;
}

/* The optimizer's settings as a JSON object (for people and tools; loading checks the kind). */
static void optim_json(const gr_optim_cfg *c, char *buf, size_t n)
{
    snprintf(buf, n,
             "{\"kind\": \"%s\", \"lr\": %.17g, \"momentum\": %.17g, \"nesterov\": %d, \"beta1\": "
             "%.17g, "
             "\"beta2\": %.17g, \"eps\": %.17g, \"weight_decay\": %.17g, \"clip_norm\": %.17g, "
             "\"sched\": %d, "
             "\"warmup\": %" PRId64 ", \"total\": %" PRId64 ", \"step_size\": %" PRId64
             ", \"gamma\": %.17g, "
             "\"min_lr\": %.17g, \"l2sp_alpha\": %.17g, \"l2sp_beta\": %.17g}",
             kind_name(c->kind), c->lr, c->momentum, c->nesterov, c->beta1, c->beta2, c->eps,
             c->weight_decay, c->clip_norm, c->sched, c->warmup, c->total, c->step_size, c->gamma,
             c->min_lr, c->l2sp_alpha, c->l2sp_beta);
}

static int make_meta(const gr_trainer *t, const gr_train_pos *pos, gr_arena *a, gr_meta *m, int *n)
{
    char num[4][32], opt[1024];
    snprintf(num[0], sizeof num[0], "%" PRId64, t->step);
    snprintf(num[1], sizeof num[1], "%" PRId64, pos ? pos->epoch : 0);
    snprintf(num[2], sizeof num[2], "%" PRId64, pos ? pos->batch : 0);
    snprintf(num[3], sizeof num[3], "%" PRIu64, pos ? pos->seed : 0);
    optim_json(&t->opt.cfg, opt, sizeof opt);
    *n = 0;
    int st = add_meta(a, m, n, "format", CKPT_FORMAT);
    if (!st) st = add_meta(a, m, n, "graft_version", graft_version());
    if (!st) st = add_meta(a, m, n, "optimizer", kind_name(t->opt.cfg.kind));
    if (!st) st = add_meta(a, m, n, "optimizer_cfg", opt);
    if (!st) st = add_meta(a, m, n, "step", num[0]);
    if (!st) st = add_meta(a, m, n, "epoch", num[1]);
    if (!st) st = add_meta(a, m, n, "batch", num[2]);
    if (!st) st = add_meta(a, m, n, "loader_seed", num[3]);
    if (!st && pos && pos->note) st = add_meta(a, m, n, "note", pos->note);
    return st;
}

static const char *find_meta(const gr_meta *m, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(m[i].key, key) == 0) return m[i].value;
    return NULL;
}

/* A decimal metadata entry: signed (int64) or unsigned (uint64). */
static int meta_int(const char *path, const gr_meta *m, int n, const char *key, int is_unsigned,
                    void *out)
{
    const char *s = find_meta(m, n, key);
    if (!s)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: the metadata has no \"%s\": not a graft trainer checkpoint", path, key);
    char *end;
    errno = 0;
    if (is_unsigned && s[0] != '-') {
        unsigned long long u = strtoull(s, &end, 10);
        if (!errno && end != s && !*end) {
            *(uint64_t *)out = u;
            return GRAFT_OK;
        }
    } else if (!is_unsigned) {
        long long v = strtoll(s, &end, 10);
        if (!errno && end != s && !*end && v >= 0) {
            *(int64_t *)out = v;
            return GRAFT_OK;
        }
    }
    return gr_err(GRAFT_E_FORMAT, "%s: metadata \"%s\" = \"%s\" is not a non-negative integer",
                  path, key, s);
}

/* ---- save and load ---- */

int gr_trainer_save(gr_trainer *t, const char *path, const gr_train_pos *pos)
{
    gr_arena *a = gr_arena_new(1 << 16);
    if (!a) return gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    slot *s;
    int n, nmeta;
    gr_meta meta[12];
    int st = make_slots(t, a, &s, &n);
    gr_st_entry *e = st ? NULL : gr_arena_alloc(a, (size_t)n * sizeof *e);
    if (!st && !e) st = gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    for (int i = 0; !st && i < n; i++)
        e[i] = (gr_st_entry){ .name = s[i].name,
                              .dtype = s[i].dtype,
                              .shape = s[i].shape,
                              .data = s[i].data,
                              .bytes = s[i].bytes };
    if (!st) st = make_meta(t, pos, a, meta, &nmeta);
    if (!st) st = gr_st_save(path, e, n, meta, nmeta);
    gr_arena_free(a);
    return st;
}

/* Matches the file's tensors to the trainer's: each expected one present once with its dtype and
 * shape, nothing else. Only then is anything copied, so a failed load leaves t as it was. */
static int match(const char *path, slot *s, int n, const gr_st_entry *e, int ne, int *which)
{
    for (int i = 0; i < ne; i++) {
        int k = 0;
        while (k < n && strcmp(s[k].name, e[i].name) != 0) k++;
        if (k == n)
            return gr_err(GRAFT_E_SHAPE,
                          "%s: tensor '%s' is not part of this training session (another model, "
                          "other trainable parameters or another optimizer?)",
                          path, e[i].name);
        char a[96], b[96];
        if (e[i].dtype != s[k].dtype || !gr_shape_eq(&e[i].shape, &s[k].shape))
            return gr_err(
                GRAFT_E_SHAPE, "%s: tensor '%s' is %s %s in the checkpoint but %s %s in the model",
                path, e[i].name, gr_dtype_name(e[i].dtype), gr_shape_str(&e[i].shape, a, sizeof a),
                gr_dtype_name(s[k].dtype), gr_shape_str(&s[k].shape, b, sizeof b));
        s[k].seen = 1;
        which[i] = k;
    }
    for (int k = 0; k < n; k++)
        if (!s[k].seen)
            return gr_err(GRAFT_E_SHAPE, "%s: tensor '%s' is missing from the checkpoint", path,
                          s[k].name);
    return GRAFT_OK;
}

/* What the header check hands to the copy: the trainer's slots and which slot each entry fills. */
typedef struct load_ctx {
    const char *path;
    gr_trainer *t;
    gr_arena *a;
    slot *s;
    int n;
    int *which;
    int64_t step;
    gr_train_pos p;
} load_ctx;

/* Everything the file says, checked against this session from the header alone, before a byte
 * of tensor data is allocated: a checkpoint of another (maybe far larger) model is refused
 * without being read. */
static int check_header(void *ctx, const gr_st_entry *e, int ne, const gr_meta *meta, int nmeta)
{
    load_ctx *c = ctx;
    const char *path = c->path, *f = find_meta(meta, nmeta, "format"),
               *kind = find_meta(meta, nmeta, "optimizer");
    if (!f || strcmp(f, CKPT_FORMAT) != 0)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: not a graft trainer checkpoint (metadata \"format\" is %s%s%s, expected "
                      "\"%s\")",
                      path, f ? "\"" : "", f ? f : "missing", f ? "\"" : "", CKPT_FORMAT);
    if (!kind || strcmp(kind, kind_name(c->t->opt.cfg.kind)) != 0)
        return gr_err(GRAFT_E_ARG,
                      "%s: the checkpoint was written by a %s optimizer, this session uses %s",
                      path, kind ? kind : "(missing)", kind_name(c->t->opt.cfg.kind));
    int st = meta_int(path, meta, nmeta, "step", 0, &c->step);
    if (!st) st = meta_int(path, meta, nmeta, "epoch", 0, &c->p.epoch);
    if (!st) st = meta_int(path, meta, nmeta, "batch", 0, &c->p.batch);
    if (!st) st = meta_int(path, meta, nmeta, "loader_seed", 1, &c->p.seed);
    if (!st) st = make_slots(c->t, c->a, &c->s, &c->n);
    c->which = st ? NULL : gr_arena_alloc(c->a, (size_t)(ne + 1) * sizeof *c->which);
    if (!st && !c->which) st = gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    if (!st) st = match(path, c->s, c->n, e, ne, c->which);
    const char *note = st ? NULL : find_meta(meta, nmeta, "note");
    if (note && !(c->p.note = gr_arena_strdup(c->a, note)))
        st = gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    return st;
}

int gr_trainer_load(gr_trainer *t, const char *path, gr_train_pos *pos)
{
    gr_arena *a = gr_arena_new(1 << 20);
    if (!a) return gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    gr_st_entry *e;
    gr_meta *meta;
    int ne, nmeta;
    load_ctx c = { .path = path, .t = t, .a = a };
    int st = gr_st_load_checked(path, a, check_header, &c, &e, &ne, &meta, &nmeta);
    if (!st && pos && c.p.note && !(c.p.note = strdup(c.p.note)))
        st = gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    if (!st) {
        for (int i = 0; i < ne; i++) memcpy(c.s[c.which[i]].data, e[i].data, e[i].bytes);
        t->step = t->opt.step = c.step;
        if (pos) *pos = c.p;
    }
    gr_arena_free(a);
    return st;
}

/* ---- the rotation in a folder ----
 * gr_ckpt_write(dir) does, in order:
 *   1. write ckpt.next.safetensors (temp file, fsync, rename, fsync of the folder: gr_wfile);
 *   2. hard-link ckpt.safetensors as ckpt.prev.safetensors.link and rename that over
 *      ckpt.prev.safetensors; fsync the folder;
 *   3. rename ckpt.next.safetensors over ckpt.safetensors; fsync the folder.
 * Every step is a rename (atomic) of a file that is already complete and on disk, so whatever
 * instant a crash or power cut hits, ckpt.safetensors is a complete checkpoint: the older one
 * until 3 is durable, the new one after; and ckpt.prev.safetensors is complete too (the
 * one before, or from step 2 on the same file as ckpt.safetensors). A crash in 1 leaves only a
 * temp file behind. Where the filesystem cannot hard-link, step 2 renames ckpt.safetensors to
 * ckpt.prev.safetensors instead: between 2 and 3 only ckpt.prev.safetensors (complete) exists
 * and gr_ckpt_resume takes it, so the guarantee "at least one complete checkpoint" holds. */

static int join(char *buf, size_t n, const char *dir, const char *name)
{
    if (snprintf(buf, n, "%s/%s", dir, name) >= (int)n)
        return gr_err(GRAFT_E_ARG, "%s: checkpoint folder name too long", dir);
    return GRAFT_OK;
}

static int sync_folder(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return gr_err(GRAFT_E_IO, "%s: cannot open the checkpoint folder: %s", dir,
                      strerror(errno));
    int e = fsync(fd) ? errno : 0;
    close(fd);
    if (e && e != EINVAL && e != EROFS)
        return gr_err(GRAFT_E_IO, "%s: cannot fsync the checkpoint folder: %s", dir, strerror(e));
    return GRAFT_OK;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ckpt.safetensors becomes the previous checkpoint without ever disappearing (hard link). */
static int keep_previous(const char *dir, const char *cur, const char *prev)
{
    char lnk[4096];
    int st = join(lnk, sizeof lnk, dir, CKPT_LINK);
    if (st || !exists(cur)) return st;
    unlink(lnk);
    if (link(cur, lnk) == 0) {
        if (rename(lnk, prev) == 0) return sync_folder(dir);
        int e = errno;
        unlink(lnk);
        return gr_err(GRAFT_E_IO, "%s: cannot rename %s over it: %s", prev, lnk, strerror(e));
    }
    if (rename(cur, prev) == 0) return sync_folder(dir);
    return gr_err(GRAFT_E_IO, "%s: cannot rename it to %s: %s", cur, prev, strerror(errno));
}

int gr_ckpt_write(const char *dir, gr_trainer *t, const gr_train_pos *pos)
{
    char cur[4096], prev[4096], next[4096];
    int st = join(cur, sizeof cur, dir, CKPT_NAME);
    if (!st) st = join(prev, sizeof prev, dir, CKPT_PREV);
    if (!st) st = join(next, sizeof next, dir, CKPT_NEXT);
    if (!st) st = gr_trainer_save(t, next, pos);
    if (!st) st = keep_previous(dir, cur, prev);
    if (!st && rename(next, cur))
        st = gr_err(GRAFT_E_IO, "%s: cannot rename %s over it: %s", cur, next, strerror(errno));
    if (!st) st = sync_folder(dir);
    return st;
}

int gr_ckpt_resume(const char *dir, gr_trainer *t, gr_train_pos *pos, const gr_progress *pr)
{
    char cur[4096], prev[4096], why[4200];
    int st = join(cur, sizeof cur, dir, CKPT_NAME);
    if (!st) st = join(prev, sizeof prev, dir, CKPT_PREV);
    if (st) return st;
    int have_cur = exists(cur), have_prev = exists(prev);
    if (!have_cur && !have_prev)
        return gr_err(GRAFT_E_IO, "%s: no checkpoint to resume from (neither %s nor %s exists)",
                      dir, CKPT_NAME, CKPT_PREV);
    if (have_cur) {
        st = gr_trainer_load(t, cur, pos);
        if (!st) return GRAFT_OK;
        snprintf(why, sizeof why, "%s", graft_last_error());
    } else {
        snprintf(why, sizeof why, "%s: missing", cur);
    }
    if (!have_prev)
        return gr_err(st ? st : GRAFT_E_IO,
                      "%s: no usable checkpoint: %s; and no previous checkpoint %s", dir, why,
                      prev);
    gr_progress_note(
        pr, GRAFT_EVENT_WARNING, "checkpoint",
        "graft: the newest checkpoint is unusable (%s); resuming from the previous checkpoint %s",
        why, prev);
    int st2 = gr_trainer_load(t, prev, pos);
    if (!st2) return GRAFT_OK;
    char why2[4200];
    snprintf(why2, sizeof why2, "%s", graft_last_error());
    return gr_err(st2, "%s: no usable checkpoint: %s; and %s", dir, why, why2);
}
