/* adapt.c — a trained classifier adapted to unlabelled target data, without its source data:
 *   adabn  every BatchNorm's running statistics re-estimated on the target (Li et al. 2016): a
 *          pass in training mode, each batch normalised with its own statistics, the running
 *          values the plain mean of the batches' means and unbiased variances (PyTorch's
 *          momentum=None); nothing else changes;
 *   tent   the BatchNorms' scale and shift trained to minimise the entropy of the predictions,
 *          normalising with batch statistics (Wang et al. 2021), then an AdaBN pass so the
 *          exported model normalises as it was adapted;
 *   shot   the classifier (the last Gemm/MatMul before the logits) frozen, everything before it
 *          trained with the information-maximisation loss plus beta * cross-entropy on
 *          pseudo-labels that a weighted-centroid clustering of the features recomputes each
 *          epoch (Liang et al. 2020).
 * The model keeps its inputs, outputs and metadata; the weights change. The working graph gets
 * two more outputs (logits and features) that the export drops again. */
#include "transfer.h"

#include "graph/graph.h"
#include "ops/dnnl_util.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct adapt {
    const gr_adapt_opts *o;
    gr_adapt_opts r; /* resolved */
    const gr_dataset *ds;
    const char *model_path;
    gr_graph *g;
    int nout0;         /* the model's own outputs */
    int ylog, yfeat;   /* output indices of the logits and the classifier's input */
    int head_node;     /* the classifier node (shot) */
    int nclass, nfeat; /* from the first evaluation */
    gr_loader *lin;    /* the target in order (evaluation, statistics) */
    gr_loader *lsh;    /* shuffled (training) */
    int32_t *pseudo;   /* shot: [ds->n] pseudo-label of each sample */
    gr_adapt_result *res;
} adapt;

const char *gr_adapt_method_name(int m)
{
    static const char *const names[] = { "adabn", "tent", "shot", "coral", "mmd", "dann" };
    return m >= 0 && m < GR_ADAPT_NMETHOD ? names[m] : "?";
}

/* ---- the working graph: the logits, the classifier and its input ---- */

static int producer(const gr_graph *g, int v)
{
    for (int k = g->nnodes - 1; k >= 0; k--)
        for (int j = 0; j < g->nodes[k].nout; j++)
            if (g->nodes[k].out[j] == v) return k;
    return -1;
}

/* Output index of value v, appended as an output when it is none yet. */
static int output_of(gr_graph *g, int v, int *idx)
{
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == v) return *idx = i, GRAFT_OK;
    *idx = g->noutputs;
    return gr_graph_add_output(g, v);
}

/* The classifier (gr_graph_find_classifier: its input is the features) and the logits: output
 * 0, or the input of the Softmax that makes it. Both become outputs of the working graph. */
static int find_head(adapt *a)
{
    gr_graph *g = a->g;
    int feat, first, logits = g->outputs[0], k = producer(g, logits);
    int st = gr_graph_find_classifier(g, &feat, &first);
    if (st) return gr_err_prefix(st, "%s: adaptation needs the model's classifier", a->model_path);
    if (k >= 0 &&
        (!strcmp(g->nodes[k].op_type, "Softmax") || !strcmp(g->nodes[k].op_type, "LogSoftmax")))
        logits = g->nodes[k].in[0];
    else if (k >= 0 && !strcmp(g->nodes[k].op_type, "Sigmoid"))
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s ends with a Sigmoid (multi-label); adaptation takes a classifier whose "
                      "classes exclude each other (logits or Softmax)",
                      a->model_path);
    a->head_node = first;
    if (!(st = output_of(g, logits, &a->ylog))) st = output_of(g, feat, &a->yfeat);
    return st;
}

/* The graph's input takes (N, 3, H, W) images of the preprocessing's size. */
static int check_input(adapt *a)
{
    gr_graph *g = a->g;
    if (g->ninputs != 1)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s has %d inputs; adaptation takes one image input",
                      a->model_path, g->ninputs);
    int oh, ow;
    if (!a->r.t.crop && !a->r.t.size_w)
        return gr_err(GRAFT_E_ARG,
                      "adaptation needs a preprocessing with a fixed size (crop=N or size=N)");
    gr_transform_out_size(&a->r.t, 224, 224, &oh, &ow);
    const gr_value *x = &g->values[g->inputs[0]];
    int64_t want[4] = { -1, 3, oh, ow };
    if (x->t.shape.rank != 4)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: input '%s' is not an image batch (N, C, H, W)",
                      a->model_path, x->name);
    for (int i = 1; i < 4; i++)
        if (x->t.shape.d[i] > 0 && x->t.shape.d[i] != want[i])
            return gr_err(GRAFT_E_SHAPE,
                          "%s: input '%s' takes %lldx%lldx%lld images (channels x height x width); "
                          "the target after its preprocessing is 3x%dx%d",
                          a->model_path, x->name, (long long)x->t.shape.d[1],
                          (long long)x->t.shape.d[2], (long long)x->t.shape.d[3], oh, ow);
    return GRAFT_OK;
}

static int count_bn(const gr_graph *g)
{
    int n = 0;
    for (int k = 0; k < g->nnodes; k++) n += gr_node_running_stats(&g->nodes[k]) != 0;
    return n;
}

/* ---- evaluation: entropy, class diversity, accuracy; shot's features and probabilities ---- */

static double row_softmax(const float *z, int k, float *p)
{
    double m = z[0], s = 0, h = 0;
    for (int c = 1; c < k; c++) m = z[c] > m ? z[c] : m;
    for (int c = 0; c < k; c++) s += exp(z[c] - m);
    for (int c = 0; c < k; c++) {
        double q = exp(z[c] - m) / s;
        p[c] = (float)q;
        h -= q > 0 ? q * log(q) : 0;
    }
    return h;
}

/* An inference plan for x's shape: two cached (full batches and the last one). */
static int plan_for(adapt *a, gr_dnnl *dnnl, gr_plan *plans[2], const gr_tensor *x, gr_plan **p)
{
    for (int i = 0; i < 2; i++)
        if (plans[i] && gr_plan_matches(plans[i], x)) return *p = plans[i], GRAFT_OK;
    int which = plans[0] != NULL;
    gr_plan_free(plans[which]);
    plans[which] = NULL;
    gr_plan_opts po = { .use_ref = a->r.use_ref, .dnnl = dnnl };
    int st = gr_plan_build(a->g, x, &po, &plans[which]);
    *p = plans[which];
    return st;
}

typedef struct pass_stats {
    double ent, div, acc;
    int64_t n, nlab;
} pass_stats;

static int check_outputs(adapt *a, const gr_tensor *z, const gr_tensor *f)
{
    if (z->shape.rank != 2 || z->shape.d[1] < 2 || f->shape.rank != 2)
        return gr_err(GRAFT_E_SHAPE,
                      "%s: the logits must be (batch, classes >= 2) and the classifier's input "
                      "(batch, features); got rank %d and %d",
                      a->model_path, z->shape.rank, f->shape.rank);
    if (a->nclass && (a->nclass != z->shape.d[1] || a->nfeat != f->shape.d[1]))
        return gr_err(GRAFT_E_SHAPE, "%s: the number of classes changed between batches",
                      a->model_path);
    a->nclass = (int)z->shape.d[1], a->nfeat = (int)f->shape.d[1];
    return GRAFT_OK;
}

/* One pass over the target in inference mode; feat (n, nfeat) and prob (n, nclass), indexed by
 * the position in the target, when non-NULL (sized after a first pass). */
static int evaluate(adapt *a, gr_dnnl *dnnl, pass_stats *ps, float *feat, float *prob)
{
    gr_plan *plans[2] = { NULL, NULL }, *p;
    double *mean = NULL;
    float *q = NULL;
    memset(ps, 0, sizeof *ps);
    int st = gr_loader_start(a->lin, 0), r = 0;
    int64_t pos = 0, right = 0;
    gr_batch b;
    while (!st && (r = gr_loader_next(a->lin, &b)) > 0) {
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(4, (int64_t[]){ b.n, 3, b.h, b.w }),
                        .data = b.x };
        if ((st = plan_for(a, dnnl, plans, &x, &p))) break;
        gr_plan_run(p, &x);
        const gr_tensor *z = gr_plan_output(p, a->ylog), *f = gr_plan_output(p, a->yfeat);
        if ((st = check_outputs(a, z, f))) break;
        int k = a->nclass;
        if (!mean &&
            (!(mean = calloc((size_t)k, sizeof *mean)) || !(q = malloc((size_t)k * sizeof *q)))) {
            st = gr_err(GRAFT_E_NOMEM, "adapt: out of memory");
            break;
        }
        for (int i = 0; i < b.n; i++, pos++) {
            ps->ent += row_softmax((const float *)z->data + (int64_t)i * k, k, q);
            for (int c = 0; c < k; c++) mean[c] += q[c];
            int y = a->ds->labels[b.index[i]];
            if (y >= 0) ps->nlab++, right += gr_argmax(q, k) == y;
            if (prob) memcpy(prob + pos * k, q, (size_t)k * sizeof *q);
            if (feat)
                memcpy(feat + pos * a->nfeat, (const float *)f->data + (int64_t)i * a->nfeat,
                       (size_t)a->nfeat * sizeof(float));
        }
    }
    if (!st && r < 0) st = -r;
    ps->n = pos;
    for (int c = 0; !st && pos && c < a->nclass; c++) {
        double m = mean[c] / (double)pos;
        ps->div -= m > 0 ? m * log(m) : 0;
    }
    ps->ent = pos ? ps->ent / (double)pos : NAN;
    ps->acc = ps->nlab ? (double)right / (double)ps->nlab : NAN;
    gr_plan_free(plans[0]);
    gr_plan_free(plans[1]);
    free(mean), free(q);
    return st;
}

/* ---- AdaBN: running statistics from the target ---- */

/* Every BatchNorm in training mode (batch statistics, running values updated in place with
 * momentum 0, so that after a batch they hold its statistics), the rest in inference mode. */
static int bn_pass_modes(adapt *a, signed char **mode, float **momentum)
{
    gr_graph *g = a->g;
    *mode = calloc((size_t)g->nnodes + 1, 1); /* 0: restored only where set to 1 */
    *momentum = calloc((size_t)g->nnodes + 1, sizeof **momentum);
    if (!*mode || !*momentum) return gr_err(GRAFT_E_NOMEM, "adapt: out of memory");
    int st = GRAFT_OK;
    for (int k = 0; k < g->nnodes && !st; k++) {
        (*mode)[k] = gr_node_running_stats(&g->nodes[k]) ? 1 : -1;
        (*momentum)[k] = 0.9f;
        for (int i = 0; i < g->nodes[k].nattr; i++)
            if (!strcmp(g->nodes[k].attrs[i].name, "momentum"))
                (*momentum)[k] = g->nodes[k].attrs[i].f;
        if ((*mode)[k] == 1) st = gr_node_set_attr_float(g, k, "momentum", 0.0f);
    }
    return st;
}

/* The running statistics' values, in node order: offsets into one block of sums. */
static int64_t bn_stats_size(const gr_graph *g)
{
    int64_t n = 0;
    for (int k = 0; k < g->nnodes; k++)
        if (gr_node_running_stats(&g->nodes[k]) && g->nodes[k].nin >= 5)
            for (int i = 3; i < 5; i++) n += gr_numel(&g->values[g->nodes[k].in[i]].t.shape);
    return n;
}

/* sum += the running statistics (write = 0), or running statistics = sum / nb (write = 1). */
static void bn_stats_visit(gr_graph *g, double *sum, int64_t nb, int write)
{
    int64_t off = 0;
    for (int k = 0; k < g->nnodes; k++) {
        if (!gr_node_running_stats(&g->nodes[k]) || g->nodes[k].nin < 5) continue;
        for (int i = 3; i < 5; i++) {
            gr_tensor *t = &g->values[g->nodes[k].in[i]].t;
            for (int64_t j = 0, n = gr_numel(&t->shape); j < n; j++, off++)
                if (write) gr_set_f64(t, j, sum[off] / (double)nb);
                else sum[off] += gr_get_f64(t, j);
        }
    }
}

static int bn_batches(adapt *a, gr_dnnl *dnnl, const signed char *mode, double *sum, int64_t *nb)
{
    gr_plan *p = NULL;
    unsigned char *none = calloc((size_t)a->g->nvalues + 1, 1);
    int st = none ? gr_loader_start(a->lsh, 1000) : gr_err(GRAFT_E_NOMEM, "adapt: out of memory"),
        r = 0;
    gr_batch b;
    while (!st && (r = gr_loader_next(a->lsh, &b)) > 0) {
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(4, (int64_t[]){ b.n, 3, b.h, b.w }),
                        .data = b.x };
        if (b.n < 2) continue; /* one image has no batch statistics over N */
        if (!p || !gr_plan_matches(p, &x)) {
            gr_plan_free(p);
            p = NULL;
            gr_plan_opts po = {
                .use_ref = a->r.use_ref, .dnnl = dnnl, .trainable = none, .node_mode = mode
            };
            if ((st = gr_plan_build(a->g, &x, &po, &p))) break;
        }
        gr_plan_run(p, &x);
        bn_stats_visit(a->g, sum, 0, 0);
        ++*nb;
    }
    if (!st && r < 0) st = -r;
    gr_plan_free(p);
    free(none);
    return st;
}

/* Re-estimates every BatchNorm's running statistics on the target (see the top). */
static int adabn_pass(adapt *a, gr_dnnl *dnnl)
{
    gr_graph *g = a->g;
    signed char *mode = NULL;
    float *momentum = NULL;
    int64_t nsum = bn_stats_size(g), nb = 0;
    double *sum = calloc((size_t)nsum + 1, sizeof *sum);
    int st =
        sum ? bn_pass_modes(a, &mode, &momentum) : gr_err(GRAFT_E_NOMEM, "adapt: out of memory");
    if (!st) st = bn_batches(a, dnnl, mode, sum, &nb);
    if (!st && !nb)
        st = gr_err(GRAFT_E_ARG, "%s: adabn needs batches of 2 images or more from the target",
                    a->ds->source);
    if (!st) bn_stats_visit(g, sum, nb, 1);
    for (int k = 0; mode && momentum && k < g->nnodes; k++) /* the model's own momentum back */
        if (mode[k] == 1 && gr_node_set_attr_float(g, k, "momentum", momentum[k]) && !st)
            st = gr_err(GRAFT_E_NOMEM, "adapt: out of memory");
    free(mode), free(momentum), free(sum);
    return st;
}

/* ---- training on the target: TENT and SHOT ---- */

typedef struct loss_ctx {
    adapt *a;
    const gr_batch *b;
    float *tmp;   /* (batch, nclass): one loss's gradient while the other is written */
    int32_t *lab; /* [batch]: the batch's pseudo-labels */
} loss_ctx;

static int logits_of(const loss_ctx *l, const gr_loss_io *io, int *rows)
{
    const gr_tensor *z = io->y[l->a->ylog];
    if (z->shape.rank != 2 || z->shape.d[1] != l->a->nclass || !io->dy[l->a->ylog])
        return gr_err(GRAFT_E_SHAPE, "adapt: the logits changed shape in training");
    *rows = (int)z->shape.d[0];
    return GRAFT_OK;
}

/* TENT: the mean entropy of the predictions. */
static int tent_loss(void *ctx, gr_loss_io *io, double *loss)
{
    loss_ctx *l = ctx;
    int rows = 0, y = l->a->ylog, st = logits_of(l, io, &rows);
    if (st) return st;
    io->used[y] = 1;
    /* NaN (non-finite logits, or out of memory): the trainer refuses the step, naming it */
    *loss = gr_loss_entropy(io->y[y]->data, rows, l->a->nclass, io->dy[y]);
    return GRAFT_OK;
}

/* SHOT: information maximisation + beta * cross-entropy on the pseudo-labels. */
static int shot_loss(void *ctx, gr_loss_io *io, double *loss)
{
    loss_ctx *l = ctx;
    int rows = 0, y = l->a->ylog, k = l->a->nclass, st = logits_of(l, io, &rows);
    if (st) return st;
    int32_t *lab = l->lab;
    for (int i = 0; i < rows; i++) lab[i] = l->a->pseudo[l->b->index[i]];
    io->used[y] = 1;
    float *d = io->dy[y];
    double im = gr_loss_im(io->y[y]->data, rows, k, 1e-5, d);
    double ce = gr_loss_softmax_ce(io->y[y]->data, lab, rows, k, NULL, 0, l->tmp);
    for (int64_t i = 0; i < (int64_t)rows * k; i++) d[i] += (float)l->a->r.shot_beta * l->tmp[i];
    *loss = im + l->a->r.shot_beta * ce; /* NaN: refused by the trainer, as in tent_loss */
    return GRAFT_OK;
}

/* SHOT's pseudo-labels (its obtain_label, cosine distance): the features with a 1 appended,
 * L2-normalised; class centroids weighted by the predicted probabilities; each sample labelled
 * by its nearest centroid among the classes some sample predicts; once more with those labels
 * as hard weights. feat (n, d) is overwritten. */
static void shot_cluster(const float *prob, float *feat, int64_t n, int d, int k, int32_t *lab,
                         double *cent /* (k, d + 1) then k weights */, unsigned char *present)
{
    int D = d + 1;
    double *w = cent + (size_t)k * D;
    memset(present, 0, (size_t)k);
    for (int64_t i = 0; i < n; i++) present[lab[i] = gr_argmax(prob + i * k, k)] = 1;
    for (int round = 0; round < 2; round++) {
        memset(cent, 0, (size_t)k * D * sizeof *cent);
        memset(w, 0, (size_t)k * sizeof *w);
        for (int64_t i = 0; i < n; i++) {
            const float *f = feat + i * d;
            double s = 1;
            for (int j = 0; j < d; j++) s += (double)f[j] * f[j];
            s = 1 / sqrt(s);
            for (int c = 0; c < k; c++) {
                double a = round ? (lab[i] == c) : prob[i * k + c];
                if (!a) continue;
                w[c] += a;
                for (int j = 0; j < d; j++) cent[c * D + j] += a * f[j] * s;
                cent[c * D + d] += a * s;
            }
        }
        for (int c = 0; c < k; c++) {
            double nrm = 0;
            for (int j = 0; j < D; j++) {
                cent[c * D + j] /= 1e-8 + w[c];
                nrm += cent[c * D + j] * cent[c * D + j];
            }
            for (int j = 0; j < D; j++) cent[c * D + j] /= nrm > 0 ? sqrt(nrm) : 1;
        }
        for (int64_t i = 0; i < n; i++) { /* nearest by cosine = largest dot with unit rows */
            const float *f = feat + i * d;
            double best = -INFINITY;
            for (int c = 0; c < k; c++) {
                if (!present[c]) continue;
                double dot = cent[c * D + d];
                for (int j = 0; j < d; j++) dot += cent[c * D + j] * f[j];
                if (dot > best) best = dot, lab[i] = c; /* a NaN row keeps its label */
            }
        }
    }
}

/* SHOT's pseudo-labels from the current weights, with their figures in the result. */
static int shot_labels(adapt *a, gr_dnnl *dnnl)
{
    int64_t n = a->ds->n;
    int k = a->nclass, d = a->nfeat;
    float *feat = malloc(((size_t)n * d + 1) * sizeof *feat),
          *prob = malloc(((size_t)n * k + 1) * sizeof *prob);
    double *cent = malloc(((size_t)k * (d + 2) + 1) * sizeof *cent);
    unsigned char *present = malloc((size_t)k);
    pass_stats ps;
    int st = feat && prob && cent && present ? evaluate(a, dnnl, &ps, feat, prob)
                                             : gr_err(GRAFT_E_NOMEM, "adapt: out of memory");
    if (!st) {
        shot_cluster(prob, feat, n, d, k, a->pseudo, cent, present);
        double conf = 0;
        int64_t right = 0, nlab = 0;
        for (int64_t i = 0; i < n; i++) {
            conf += prob[i * k + a->pseudo[i]];
            if (a->ds->labels[i] >= 0) nlab++, right += a->ds->labels[i] == a->pseudo[i];
        }
        a->res->npseudo = n;
        a->res->pseudo_conf = conf / (double)n;
        a->res->pseudo_acc = nlab ? (double)right / (double)nlab : NAN;
    }
    free(feat), free(prob), free(cent), free(present);
    return st;
}

/* What trains: tent the BatchNorms' scale and shift; shot every weight before the classifier. */
static int select_trainable(adapt *a, unsigned char *tr, signed char *mode)
{
    gr_graph *g = a->g;
    if (a->r.method == GR_ADAPT_SHOT) {
        gr_graph_params(g, tr);
        for (int k = a->head_node; k < g->nnodes; k++)
            for (int i = 0; i < g->nodes[k].nin; i++)
                if (g->nodes[k].in[i] >= 0) tr[g->nodes[k].in[i]] = 0;
    }
    for (int k = 0; k < g->nnodes; k++) {
        const gr_node *n = &g->nodes[k];
        int bn = gr_node_running_stats(n) && n->nin >= 3;
        mode[k] = a->r.method == GR_ADAPT_TENT && bn ? 1 : -1;
        for (int i = 1; a->r.method == GR_ADAPT_TENT && bn && i < 3; i++) {
            const gr_value *v = &g->values[n->in[i]];
            tr[n->in[i]] = v->is_init && v->t.dtype == GR_F32;
        }
    }
    int64_t np = 0;
    for (int v = 0; v < g->nvalues; v++) np += tr[v] ? gr_numel(&g->values[v].t.shape) : 0;
    a->res->nparams = np;
    return np ? GRAFT_OK
              : gr_err(GRAFT_E_ARG, "%s: %s finds nothing to train", a->model_path,
                       gr_adapt_method_name(a->r.method));
}

static gr_trainer_cfg train_cfg(const adapt *a, const signed char *mode)
{
    int shot = a->r.method == GR_ADAPT_SHOT;
    int64_t spe = a->ds->n / a->r.batch > 0 ? a->ds->n / a->r.batch : 1;
    return (gr_trainer_cfg){ .seed = a->r.seed,
                             .use_ref = a->r.use_ref,
                             .node_mode = shot ? NULL : mode,
                             .no_fold = 1, /* the exported graph keeps its structure */
                             .opt = { .kind = shot ? GR_SGD : GR_ADAMW,
                                      .lr = a->r.lr,
                                      .momentum = shot ? 0.9 : 0,
                                      .nesterov = shot,
                                      .weight_decay = shot ? 1e-3 : 0,
                                      .sched = shot ? GR_SCHED_COSINE : GR_SCHED_CONSTANT,
                                      .total = spe * a->r.epochs,
                                      .min_lr = a->r.lr * 0.1 } };
}

static int train_epoch(adapt *a, gr_trainer *t, loss_ctx *l, int e, double *mean_loss)
{
    gr_loss_fn fn = a->r.method == GR_ADAPT_SHOT ? shot_loss : tent_loss;
    double sum = 0;
    int64_t seen = 0;
    int st = gr_loader_start(a->lsh, e), r = 0;
    gr_batch b;
    while (!st && (r = gr_loader_next(a->lsh, &b)) > 0) {
        if (b.n < 2) continue; /* batch statistics need two images */
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(4, (int64_t[]){ b.n, 3, b.h, b.w }),
                        .data = b.x };
        double loss;
        l->b = &b;
        if ((st = gr_trainer_step_fn(t, &x, fn, l, &loss))) break;
        sum += loss * b.n, seen += b.n;
        gr_progress_detail(&a->r.progress, "train", seen, a->ds->n, "%s epoch %d/%d, loss %.4f",
                           gr_adapt_method_name(a->r.method), e + 1, a->r.epochs, sum / seen);
    }
    if (!st && r < 0) st = -r;
    *mean_loss = seen ? sum / (double)seen : NAN;
    return st;
}

static int train_target(adapt *a, gr_dnnl *dnnl)
{
    gr_graph *g = a->g;
    unsigned char *tr = calloc((size_t)g->nvalues + 1, 1);
    signed char *mode = malloc((size_t)g->nnodes + 1);
    loss_ctx l = { .a = a,
                   .tmp = malloc(((size_t)a->r.batch * a->nclass + 1) * sizeof(float)),
                   .lab = malloc(((size_t)a->r.batch + 1) * sizeof(int32_t)) };
    gr_trainer *t = NULL;
    int shot = a->r.method == GR_ADAPT_SHOT;
    int st = tr && mode && l.tmp && l.lab ? select_trainable(a, tr, mode)
                                          : gr_err(GRAFT_E_NOMEM, "adapt: out of memory");
    if (!st && shot && !(a->pseudo = malloc(((size_t)a->ds->n + 1) * sizeof *a->pseudo)))
        st = gr_err(GRAFT_E_NOMEM, "adapt: out of memory");
    gr_trainer_cfg cfg = train_cfg(a, mode);
    if (!st) st = gr_trainer_new(g, tr, &cfg, &t);
    for (int e = 0; !st && e < a->r.epochs; e++) {
        double loss;
        if (shot) st = shot_labels(a, dnnl);
        if (!st) st = train_epoch(a, t, &l, e, &loss);
        if (!st) {
            if (e == 0) a->res->loss_first = loss;
            a->res->loss_last = loss;
            gr_progress_note(&a->r.progress, GRAFT_EVENT_NOTE, "adapt",
                             "adapt: %s epoch %d/%d: loss %.4f", gr_adapt_method_name(a->r.method),
                             e + 1, a->r.epochs, loss);
        }
    }
    gr_trainer_free(t); /* the graph keeps the adapted weights */
    free(tr), free(mode), free(l.tmp), free(l.lab);
    return st;
}

/* ---- the whole run ---- */

static void resolve(adapt *a)
{
    gr_adapt_opts *r = &a->r;
    int tent = r->method == GR_ADAPT_TENT;
    if (r->epochs <= 0) r->epochs = tent ? 1 : 10;
    if (r->lr <= 0) r->lr = 1e-3;
    if (r->batch <= 0) r->batch = 64;
    if (r->shot_beta < 0) r->shot_beta = 0.3;
}

static int check_target(adapt *a)
{
    const gr_dataset *ds = a->ds;
    if (a->r.method < 0 || a->r.method >= GR_ADAPT_NMETHOD)
        return gr_err(GRAFT_E_ARG, "unknown adaptation method %d", a->r.method);
    if (a->r.method >= GR_ADAPT_CORAL)
        return gr_err(GRAFT_E_ARG,
                      "%s aligns the target with the labelled source while fine-tuning: give the "
                      "source (graft adapt --source, or graft finetune --target --adapt)",
                      gr_adapt_method_name(a->r.method));
    if (ds->features)
        return gr_err(GRAFT_E_ARG, "%s holds feature vectors, not images: adapt takes images",
                      ds->source);
    if (ds->n < 2)
        return gr_err(GRAFT_E_ARG, "%s: adaptation needs at least 2 target images, got %lld",
                      ds->source, (long long)ds->n);
    return GRAFT_OK;
}

static int open_model(adapt *a, const gr_model *m)
{
    int st = gr_graph_clone(m->g, 0, &a->g); /* its own weights: they change in place */
    if (!st) st = gr_graph_inline_constants(a->g, NULL);
    if (!st) st = check_input(a);
    if (st) return st;
    a->nout0 = a->g->noutputs;
    a->res->nbn = count_bn(a->g);
    if (!a->res->nbn && a->r.method != GR_ADAPT_SHOT)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s has no BatchNormalization node: %s adapts BatchNorm statistics%s; "
                      "use shot, or fine-tune with --target",
                      a->model_path, gr_adapt_method_name(a->r.method),
                      a->r.method == GR_ADAPT_TENT ? " and parameters" : "");
    return find_head(a);
}

static int open_loaders(adapt *a)
{
    gr_loader_opts lin = { .batch = a->r.batch, .workers = a->r.workers, .seed = a->r.seed };
    gr_loader_opts lsh = lin;
    lsh.shuffle = 1;
    lsh.drop_last = a->ds->n > a->r.batch; /* equal batches for the batch statistics */
    int st = gr_loader_new(a->ds, NULL, a->ds->n, &a->r.t, &lin, &a->lin);
    if (!st) st = gr_loader_new(a->ds, NULL, a->ds->n, &a->r.t, &lsh, &a->lsh);
    return st;
}

static void set_stats(gr_adapt_result *res, const pass_stats *ps, int after)
{
    (after ? &res->ent_after : &res->ent_before)[0] = ps->ent;
    (after ? &res->div_after : &res->div_before)[0] = ps->div;
    (after ? &res->acc_after : &res->acc_before)[0] = ps->acc;
    res->ntarget = ps->n, res->nlabeled = ps->nlab;
}

/* The model with its own outputs again, what was done in graft.adapt, saved atomically. */
static int save(adapt *a, const char *out_path)
{
    const gr_adapt_result *r = a->res;
    char meta[512];
    snprintf(meta, sizeof meta,
             "{\"method\": \"%s\", \"target\": %lld, \"epochs\": %d, \"batchnorms\": %d, "
             "\"entropy_before\": %.6g, \"entropy_after\": %.6g}",
             gr_adapt_method_name(a->r.method), (long long)r->ntarget,
             a->r.method == GR_ADAPT_ADABN ? 0 : a->r.epochs, r->nbn, r->ent_before, r->ent_after);
    a->g->noutputs = a->nout0;
    int st = gr_graph_set_meta(a->g, "graft.adapt", meta);
    if (!st) st = gr_graph_prune(a->g);
    if (!st) st = gr_onnx_save(a->g, out_path);
    return st;
}

int gr_adapt(const gr_model *m, const gr_dataset *target, const gr_adapt_opts *o,
             const char *out_path, gr_adapt_result *res)
{
    memset(res, 0, sizeof *res);
    res->pseudo_acc = res->pseudo_conf = NAN;
    double t0 = gr_now();
    adapt a = { .o = o, .r = *o, .ds = target, .model_path = m->path, .res = res };
    resolve(&a);
    gr_dnnl *dnnl = NULL;
    pass_stats ps;
    int st = check_target(&a);
    if (!st) st = open_model(&a, m);
    if (!st) st = open_loaders(&a);
    if (!st) st = gr_dnnl_new(&dnnl);
    if (!st) st = evaluate(&a, dnnl, &ps, NULL, NULL);
    if (!st) set_stats(res, &ps, 0);
    if (!st && a.r.method != GR_ADAPT_ADABN) st = train_target(&a, dnnl);
    if (!st && a.r.method != GR_ADAPT_SHOT) st = adabn_pass(&a, dnnl);
    if (!st) st = evaluate(&a, dnnl, &ps, NULL, NULL);
    if (!st) {
        set_stats(res, &ps, 1);
        /* predictions collapsing onto a few classes is how these methods fail */
        res->harm = res->div_after < 0.5 * res->div_before;
        st = save(&a, out_path);
    }
    res->seconds = gr_now() - t0;
    gr_dnnl_free(dnnl);
    gr_loader_free(a.lin);
    gr_loader_free(a.lsh);
    gr_graph_free(a.g);
    free(a.pseudo);
    return st;
}
