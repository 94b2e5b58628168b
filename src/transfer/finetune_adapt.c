/* finetune_adapt.c — fine-tuning that aligns the labelled source with unlabelled target images
 * (feature-level domain adaptation, the recipes of Transfer-Learning-Library). Each step's batch
 * is the source batch followed by a target batch of the training transform; one forward (the
 * BatchNorms that train see both domains, as TLlib concatenates them); the loss is the
 * cross-entropy on the source rows plus adapt_weight times
 *   coral  Deep CORAL (Sun & Saenko 2016) between the two halves' features (the classifier's
 *          input), gr_loss_coral;
 *   mmd    DAN's multi-kernel MMD (Long et al. 2015; TLlib's Gaussian kernels 2^-3 .. 2^1 of
 *          the mean squared distance), gr_loss_mmd;
 *   dann   the loss of a domain classifier (Ganin et al. 2016) reading the features through a
 *          GradientReversal: Linear(d, 1024), ReLU, Linear(1024, 1024), ReLU, Linear(1024, 1)
 *          (Ganin's digits discriminator, without TLlib's BatchNorm1d), binary cross-entropy with
 *          source 1 and target 0 as the mean of the two halves' means (TLlib's
 *          DomainAdversarialLoss); the reversal's coefficient follows Ganin's schedule
 *          2 / (1 + exp(-10 p)) - 1 over the phase's progress p.
 * The domain classifier lives only in the training graph: the export (ft.gx) never has it. */
#include "finetune_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DANN_PREFIX "graft_dann/"
enum { DANN_HIDDEN = 1024 };

/* The classifier's input becomes output f->yfeat of the training graph. */
static int feature_output(ft *f, int *feat, int64_t *d)
{
    int first, st = gr_graph_find_classifier(f->g, feat, &first);
    if (st) return gr_err_prefix(st, "adaptation needs the new head's input");
    int wv = gr_graph_find_value(f->g, "head.fc.weight");
    if (wv < 0 || f->g->values[wv].t.shape.rank != 2)
        return gr_err(GRAFT_E_INTERNAL, "adaptation: the new head has no weight 'head.fc.weight'");
    *d = f->g->values[wv].t.shape.d[1];
    f->yfeat = f->g->noutputs;
    return gr_graph_add_output(f->g, *feat);
}

/* DANN's domain classifier behind a GradientReversal, as output f->ydom. */
static int add_discriminator(ft *f, int feat, int64_t d)
{
    gr_rng rng;
    gr_rng_seed(&rng, f->r.seed + 77);
    gr_gb b = { .g = f->g, .prefix = DANN_PREFIX, .act_dtype = GR_F32, .rng = &rng };
    float zero = 0;
    gr_shape one = gr_shape_make(1, (int64_t[]){ 1 });
    int in[2] = { feat, -1 }, rev, h1 = -1, r1, h2 = -1, r2, y = -1;
    int st = gr_gb_value(&b, "grl.coeff", GR_F32, &one, &zero, &in[1]);
    if (!st) st = gr_gb_op(&b, "reversed", "grl", "GradientReversal", in, 2, NULL, 0, &rev);
    if (!st) st = gr_gb_linear(&b, "fc1", rev, DANN_HIDDEN, d, NULL, NULL, &h1);
    if (!st) st = gr_gb_op(&b, "relu1.out", "relu1", "Relu", &h1, 1, NULL, 0, &r1);
    if (!st) st = gr_gb_linear(&b, "fc2", r1, DANN_HIDDEN, DANN_HIDDEN, NULL, NULL, &h2);
    if (!st) st = gr_gb_op(&b, "relu2.out", "relu2", "Relu", &h2, 1, NULL, 0, &r2);
    if (!st) st = gr_gb_linear(&b, "fc3", r2, 1, DANN_HIDDEN, NULL, NULL, &y);
    if (st) return st;
    f->grl_coeff = in[1];
    f->ydom = f->g->noutputs;
    return gr_graph_add_output(f->g, y);
}

int gr_ft_adapt_build(ft *f)
{
    const gr_dataset *t = f->r.target;
    if (t->features)
        return gr_err(GRAFT_E_ARG,
                      "%s holds feature vectors, not images: the target must be images", t->source);
    if (t->n < 2)
        return gr_err(GRAFT_E_ARG, "%s: adaptation needs at least 2 target images", t->source);
    int feat = -1;
    int64_t d = 0;
    int st = feature_output(f, &feat, &d);
    if (!st && f->r.adapt == GR_ADAPT_DANN) st = add_discriminator(f, feat, d);
    if (st) return st;
    gr_loader_opts lo = { .batch = f->r.batch,
                          .workers = f->r.workers,
                          .shuffle = 1,
                          .drop_last = t->n > f->r.batch,
                          .seed = f->r.seed + 1 };
    return gr_loader_new(t, NULL, t->n, &f->r.train_t, &lo, &f->ltg);
}

/* The domain classifier trains in every phase, with whatever else trains. */
void gr_ft_adapt_trainable(const ft *f, unsigned char *trainable)
{
    if (f->r.adapt != GR_ADAPT_DANN) return;
    for (int v = 0; v < f->g->nvalues; v++) {
        const gr_value *x = &f->g->values[v];
        if (x->is_init && x->t.dtype == GR_F32 && v != f->grl_coeff &&
            !strncmp(x->name, DANN_PREFIX, strlen(DANN_PREFIX)))
            trainable[v] = 1;
    }
}

void gr_ft_adapt_free(ft *f)
{
    gr_loader_free(f->ltg);
    free(f->xcat);
    f->ltg = NULL, f->xcat = NULL;
}

/* ---- one step ---- */

typedef struct step_ctx {
    ft *f;
    int ns, nt;
    const int32_t *y; /* the source rows' labels */
} step_ctx;

/* DANN's domain loss on the logits z (ns + nt rows): source 1, target 0; its gradient, scaled by
 * w, into dz; the rows it classifies right counted in f. */
static double domain_loss(ft *f, const float *z, int ns, int nt, double w, float *dz)
{
    double ls = 0, lt = 0;
    for (int i = 0; i < ns + nt; i++) {
        int src = i < ns;
        double x = z[i], p = 1 / (1 + exp(-x));
        /* -log(sigmoid(x)) for the source, -log(1 - sigmoid(x)) for the target: softplus(u)
         * with u = -x, resp. x, as max(u, 0) + log1p(exp(-|u|)) */
        double u = src ? -x : x, l = (u > 0 ? u : 0) + log1p(exp(-fabs(u)));
        if (src) ls += l;
        else lt += l;
        dz[i] = (float)(w * 0.5 * (p - src) / (src ? ns : nt));
        f->dom_right += (x > 0) == src;
    }
    f->dom_seen += ns + nt;
    return 0.5 * (ls / ns + lt / nt);
}

static double feature_loss(ft *f, gr_loss_io *io, int ns, int nt)
{
    static const double alphas[5] = { 0.125, 0.25, 0.5, 1, 2 };
    const gr_tensor *x = io->y[f->yfeat];
    int d = (int)x->shape.d[1];
    const float *fs = x->data, *ftg = fs + (int64_t)ns * d;
    float *dfs = io->dy[f->yfeat], *dft = dfs + (int64_t)ns * d;
    io->used[f->yfeat] = 1;
    double l = f->r.adapt == GR_ADAPT_CORAL ? gr_loss_coral(fs, ns, ftg, nt, d, dfs, dft)
                                            : gr_loss_mmd(fs, ns, ftg, nt, d, alphas, 5, dfs, dft);
    for (int64_t i = 0; i < (int64_t)(ns + nt) * d; i++) dfs[i] *= (float)f->r.adapt_weight;
    return l;
}

static int adapt_loss(void *ctx, gr_loss_io *io, double *loss)
{
    step_ctx *c = ctx;
    ft *f = c->f;
    const gr_tensor *z = io->y[0];
    int k = f->nclass;
    if (z->shape.rank != 2 || z->shape.d[0] != c->ns + c->nt || z->shape.d[1] != k ||
        io->y[f->yfeat]->shape.rank != 2)
        return gr_err(GRAFT_E_SHAPE, "adaptation: the logits or features changed shape");
    io->used[0] = 1;
    double ce = gr_loss_softmax_ce(z->data, c->y, c->ns, k, NULL, f->r.label_smoothing, io->dy[0]);
    memset(io->dy[0] + (int64_t)c->ns * k, 0, (size_t)c->nt * k * sizeof(float));
    double tl;
    if (f->r.adapt == GR_ADAPT_DANN) {
        io->used[f->ydom] = 1;
        tl = domain_loss(f, io->y[f->ydom]->data, c->ns, c->nt, f->r.adapt_weight, io->dy[f->ydom]);
    } else tl = feature_loss(f, io, c->ns, c->nt);
    /* NaN (non-finite features, or out of memory): the trainer refuses the step, naming it */
    f->transfer_loss += tl, f->transfer_steps++;
    *loss = ce + f->r.adapt_weight * tl;
    return GRAFT_OK;
}

/* The next target batch, cycling through the target's epochs. */
static int next_target(ft *f, gr_batch *tb)
{
    int r = f->tg_started ? gr_loader_next(f->ltg, tb) : 0;
    if (r == 0) {
        int st = gr_loader_start(f->ltg, f->tg_epoch++);
        if (st) return st;
        f->tg_started = 1;
        r = gr_loader_next(f->ltg, tb);
    }
    if (r < 0) return -r;
    return r ? GRAFT_OK : gr_err(GRAFT_E_ARG, "%s: no target images", f->r.target->source);
}

int gr_ft_adapt_step(ft *f, gr_trainer *t, const gr_batch *b, double *loss)
{
    gr_batch tb;
    int st = next_target(f, &tb);
    if (st) return st;
    if (tb.h != b->h || tb.w != b->w)
        return gr_err(GRAFT_E_SHAPE, "the target's images are %dx%d, the source's %dx%d", tb.w,
                      tb.h, b->w, b->h);
    size_t img = (size_t)3 * b->h * b->w, need = (size_t)(b->n + tb.n) * img;
    if (need > f->xcat_cap) {
        free(f->xcat);
        f->xcat = malloc(need * sizeof(float));
        f->xcat_cap = f->xcat ? need : 0;
        if (!f->xcat) return gr_err(GRAFT_E_NOMEM, "adaptation: out of memory");
    }
    memcpy(f->xcat, b->x, (size_t)b->n * img * sizeof(float));
    memcpy(f->xcat + (size_t)b->n * img, tb.x, (size_t)tb.n * img * sizeof(float));
    if (f->r.adapt == GR_ADAPT_DANN) { /* Ganin's schedule over the phase */
        double p = t->opt.cfg.total > 0 ? (double)t->step / (double)t->opt.cfg.total : 1;
        *(float *)f->g->values[f->grl_coeff].t.data = (float)(2 / (1 + exp(-10 * p)) - 1);
    }
    gr_tensor x = { .dtype = GR_F32,
                    .shape = gr_shape_make(4, (int64_t[]){ b->n + tb.n, 3, b->h, b->w }),
                    .data = f->xcat };
    step_ctx c = { .f = f, .ns = b->n, .nt = tb.n, .y = b->y };
    return gr_trainer_step_fn(t, &x, adapt_loss, &c, loss);
}
