/* train_driver.c — a small complete training run for tests/test_resume.sh: the tiny CNN of
 * scripts/make_tiny_cnn.py on the first 1024 Fashion-MNIST training images (gray copied to 3
 * channels by the loader), batch 32, shuffled, AdamW with warm-up + cosine, 2 loader workers.
 *
 *   train_driver MODEL.onnx [--data IDX] [--epochs N] [--dir D] [--every K] [--resume]
 *                [--out weights.bin] [--print-steps]
 *
 * --dir D --every K   gr_ckpt_write(D) after every K-th step (D is created if needed)
 * --resume            gr_ckpt_resume(D) first, then continue from the saved data position
 * --out F             at the end, the parameter block then the buffer block, raw float32
 * --print-steps       "step N loss L" after each step (and after its checkpoint), flushed
 * --step-delay MS     sleep MS milliseconds after each step (so a test can kill it mid-epoch)
 * --stop-after N      exit (status 3) after step N, as an interruption without a kill
 * --opt sgd           SGD instead: Nesterov momentum, L2-SP, gradient clipping, step schedule */
#define _POSIX_C_SOURCE 200809L
#include "data/data.h"
#include "io/io.h"
#include "train/train.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define NSAMPLES  1024
#define BATCH     32
#define SEED      20240601ull
#define FASHION   "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
/* Fashion-MNIST's pixel mean and std, on each of the three (equal) channels. */
#define TRANSFORM "size=28,normalize=0.2860:0.2860:0.2860:0.3530:0.3530:0.3530"

typedef struct opts {
    const char *model, *data, *dir, *out;
    int epochs, every, resume, print, delay_ms, stop_after, sgd;
} opts;

static int die(const char *what)
{
    fprintf(stderr, "train_driver: %s%s%s\n", what, what[0] ? ": " : "", graft_last_error());
    return 1;
}

/* The library's warnings (a checkpoint resumed from the previous one), printed as graft's CLI
 * prints them: one line on stderr. */
static void show_note(void *ctx, const graft_progress *p)
{
    (void)ctx;
    if (p->event != GRAFT_EVENT_PROGRESS && p->message) fprintf(stderr, "%s\n", p->message);
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){ .data = FASHION, .epochs = 3 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--resume") == 0) o->resume = 1;
        else if (strcmp(a, "--print-steps") == 0) o->print = 1;
        else if (strcmp(a, "--dir") == 0 && v) o->dir = argv[++i];
        else if (strcmp(a, "--out") == 0 && v) o->out = argv[++i];
        else if (strcmp(a, "--data") == 0 && v) o->data = argv[++i];
        else if (strcmp(a, "--every") == 0 && v) o->every = atoi(argv[++i]);
        else if (strcmp(a, "--epochs") == 0 && v) o->epochs = atoi(argv[++i]);
        else if (strcmp(a, "--step-delay") == 0 && v) o->delay_ms = atoi(argv[++i]);
        else if (strcmp(a, "--stop-after") == 0 && v) o->stop_after = atoi(argv[++i]);
        else if (strcmp(a, "--opt") == 0 && v && (strcmp(v, "sgd") == 0 || strcmp(v, "adamw") == 0))
            o->sgd = strcmp(argv[++i], "sgd") == 0;
        else if (a[0] != '-' && !o->model) o->model = a;
        else return fprintf(stderr, "train_driver: bad argument '%s'\n", a), 2;
    }
    if (!o->model || o->epochs < 1 || o->every < 0 || ((o->every || o->resume) && !o->dir)) {
        fprintf(stderr, "usage: train_driver MODEL.onnx [--data IDX] [--epochs N] [--dir D] "
                        "[--every K] [--resume] "
                        "[--out weights.bin] [--print-steps] [--step-delay MS] [--stop-after N] "
                        "[--opt sgd|adamw]\n");
        return 2;
    }
    return 0;
}

/* Every float initializer is trained except the BatchNorm running statistics. */
static unsigned char *pick_trainable(const gr_graph *g)
{
    unsigned char *tr = calloc((size_t)g->nvalues + 1, 1);
    if (!tr) return NULL;
    for (int v = 0; v < g->nvalues; v++)
        tr[v] = g->values[v].is_init && g->values[v].t.dtype == GR_F32;
    for (int k = 0; k < g->nnodes; k++)
        if (strcmp(g->nodes[k].op_type, "BatchNormalization") == 0)
            for (int i = 3; i < g->nodes[k].nin; i++)
                if (g->nodes[k].in[i] >= 0) tr[g->nodes[k].in[i]] = 0;
    return tr;
}

static int write_out(const char *path, const gr_trainer *t)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(t->w, sizeof(float), (size_t)t->total, f) == (size_t)t->total &&
             fwrite(t->buf, sizeof(float), (size_t)t->nbuf, f) == (size_t)t->nbuf;
    if (f && fclose(f)) ok = 0;
    if (!ok) fprintf(stderr, "train_driver: cannot write %s: %s\n", path, strerror(errno));
    return ok ? 0 : 1;
}

/* The epochs from pos on; batches before pos.batch of the first are drawn and dropped (the
 * loader's order depends only on the seed and the epoch). */
static int train(const opts *o, gr_trainer *t, gr_loader *l, gr_train_pos pos)
{
    for (int64_t e = pos.epoch; e < o->epochs; e++) {
        if (gr_loader_start(l, (int)e)) return die("loader");
        gr_batch b;
        int r;
        int64_t skip = e == pos.epoch ? pos.batch : 0;
        for (int64_t i = 0; (r = gr_loader_next(l, &b)) > 0; i++) {
            if (i < skip) continue;
            gr_tensor x = { .dtype = GR_F32, .shape = { 4, { b.n, 3, b.h, b.w } }, .data = b.x };
            double loss;
            if (gr_trainer_step(t, &x, b.y, &loss)) return die("step");
            if (o->every && t->step % o->every == 0 &&
                gr_ckpt_write(o->dir, t,
                              &(gr_train_pos){ .epoch = e, .batch = i + 1, .seed = SEED }))
                return die("checkpoint");
            if (o->print) {
                printf("step %lld loss %.9g\n", (long long)t->step, loss);
                fflush(stdout);
            }
            if (o->stop_after && t->step == o->stop_after) return 3;
            if (o->delay_ms > 0)
                nanosleep(
                    &(struct timespec){ o->delay_ms / 1000, (long)(o->delay_ms % 1000) * 1000000 },
                    NULL);
        }
        if (r < 0) return die("loader");
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    if (o.dir && mkdir(o.dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "train_driver: cannot create %s: %s\n", o.dir, strerror(errno));
        return 1;
    }
    gr_graph *g = NULL;
    gr_dataset *ds = NULL;
    gr_loader *l = NULL;
    gr_trainer *t = NULL;
    unsigned char *tr = NULL;
    int64_t idx[NSAMPLES];
    for (int i = 0; i < NSAMPLES; i++) idx[i] = i;
    gr_transform tf;
    if (gr_onnx_load(o.model, &g) || gr_graph_check_ops(g)) return die("model");
    if (!(tr = pick_trainable(g))) return die("trainable");
    int64_t steps = (int64_t)o.epochs * (NSAMPLES / BATCH);
    gr_trainer_cfg cfg = { .loss = GR_LOSS_CE,
                           .seed = 7,
                           .opt = { .kind = GR_ADAMW,
                                    .lr = 3e-3,
                                    .weight_decay = 0.01,
                                    .sched = GR_SCHED_COSINE,
                                    .warmup = 10,
                                    .total = steps,
                                    .min_lr = 1e-5 } };
    if (o.sgd)
        cfg.opt = (gr_optim_cfg){ .kind = GR_SGD,
                                  .lr = 0.05,
                                  .momentum = 0.9,
                                  .nesterov = 1,
                                  .weight_decay = 1e-4,
                                  .clip_norm = 1.0,
                                  .sched = GR_SCHED_STEP,
                                  .step_size = 20,
                                  .gamma = 0.5,
                                  .l2sp_alpha = 0.01 };
    gr_loader_opts lo = { .batch = BATCH, .workers = 2, .shuffle = 1, .seed = SEED };
    gr_train_pos pos = { .seed = SEED };
    rc = 1;
    if (gr_trainer_new(g, tr, &cfg, &t)) die("trainer");
    else if (gr_dataset_open(o.data, NULL, 0, &ds)) die("dataset");
    else if (gr_transform_parse(TRANSFORM, &tf) || gr_loader_new(ds, idx, NSAMPLES, &tf, &lo, &l))
        die("loader");
    else if (o.resume && gr_ckpt_resume(o.dir, t, &pos, &(gr_progress){ show_note, NULL }))
        die("resume");
    else if (pos.seed != SEED)
        fprintf(stderr, "train_driver: the checkpoint's loader seed %llu is not this run's %llu\n",
                (unsigned long long)pos.seed, SEED);
    else {
        if (o.resume)
            fprintf(stderr, "train_driver: resumed after step %lld (epoch %lld, batch %lld)\n",
                    (long long)t->step, (long long)pos.epoch, (long long)pos.batch);
        rc = train(&o, t, l, pos);
        if (!rc && o.out) rc = write_out(o.out, t);
        if (!rc)
            fprintf(stderr, "train_driver: %lld steps, last loss %.6f\n", (long long)t->step,
                    t->last_loss);
    }
    gr_loader_free(l);
    gr_dataset_free(ds);
    gr_trainer_free(t);
    gr_graph_free(g);
    free(tr);
    return rc;
}
