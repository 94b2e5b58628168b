/* train — losses, optimizers, learning-rate schedules, parameter groups, regularisers, and the
 * training session (trainer.c: forward, loss, backward and update over a training plan).
 * Depends on core, ops, graph and io (checkpoints).
 *
 * Semantics follow PyTorch so that a recipe written for torch gives the same numbers here:
 *   losses     reduction "mean" as torch.nn.functional's defaults;
 *   SGD        torch.optim.SGD: weight decay added to the gradient (L2), momentum buffer
 *              initialised with the first gradient, dampening 0, optional Nesterov;
 *   AdamW      torch.optim.AdamW: decoupled weight decay p *= 1 - lr * wd, bias-corrected moments;
 *   clipping   torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when above. */
#ifndef GR_TRAIN_H
#define GR_TRAIN_H

#include "core/core.h"
#include "graph/graph.h"

/* ---- losses: the mean loss over the batch, and its gradient w.r.t. the logits ---- */

/* Softmax cross-entropy over logits (n, k) with integer targets in [0, k) (a negative target is
 * ignored, as torch's ignore_index). class_weight (k) may be NULL; label smoothing eps spreads
 * eps over all k classes. Mean over samples, weighted by the target's class weight (torch's
 * rule). Returns the loss; writes dlogits (n, k) when non-NULL. */
double gr_loss_softmax_ce(const float *logits, const int32_t *target, int n, int k,
                          const float *class_weight, float eps, float *dlogits);
/* Binary cross-entropy with logits (multi-label), mean over all n elements; pos_weight (per
 * column, ncol) may be NULL. Targets in [0, 1]. */
double gr_loss_bce_logits(const float *logits, const float *target, int64_t n, int ncol,
                          const float *pos_weight, float *dlogits);
/* Mean squared error over n elements. */
double gr_loss_mse(const float *pred, const float *target, int64_t n, float *dpred);

/* ---- losses without labels (loss_adapt.c): domain adaptation and test-time adaptation ----
 * Each returns the loss (NaN when out of memory or for too few rows) and writes its gradient
 * w.r.t. its inputs when the pointers are non-NULL. */
/* TENT's loss: the mean over n rows of the softmax entropy -sum_c p_c log p_c of logits (n, k). */
double gr_loss_entropy(const float *logits, int64_t n, int k, float *dlogits);
/* SHOT's information maximisation: mean_i H_eps(p_i) - H_eps(mean_i p_i), H_eps(p) = -sum_c p_c
 * log(p_c + eps) (SHOT uses eps = 1e-5): confident rows, diverse classes over the batch. */
double gr_loss_im(const float *logits, int64_t n, int k, double eps, float *dlogits);
/* Deep CORAL: |C_s - C_t|_F^2 / (4 d^2), C the unbiased covariance (n - 1) of the source rows xs
 * (ns, d), resp. the target rows xt (nt, d); ns, nt >= 2. */
double gr_loss_coral(const float *xs, int64_t ns, const float *xt, int64_t nt, int d, float *dxs,
                     float *dxt);
/* DAN's multi-kernel MMD^2 between source rows xs (ns, d) and target rows xt (nt, d), the
 * unbiased estimator: mean k(s, s') + mean k(t, t') - 2 mean k(s, t) over distinct pairs, k the
 * sum of Gaussian kernels exp(-|x - y|^2 / (2 alpha_q mu)), mu the mean squared distance over all
 * pairs of [xs; xt] (treated as a constant, as Transfer-Learning-Library does; its defaults are
 * alpha = 2^-3 .. 2^1). ns, nt >= 2. Transfer-Learning-Library adds 2 / (batch - 1) to its value,
 * a constant without gradient; graft does not. */
double gr_loss_mmd(const float *xs, int64_t ns, const float *xt, int64_t nt, int d,
                   const double *alphas, int nkernel, float *dxs, float *dxt);

/* ---- optimizers ---- */

enum { GR_SGD = 0, GR_ADAMW = 1 };
enum { GR_SCHED_CONSTANT = 0, GR_SCHED_STEP = 1, GR_SCHED_COSINE = 2 };

typedef struct gr_optim_cfg {
    int kind; /* GR_SGD or GR_ADAMW */
    double lr;
    double momentum;          /* SGD */
    int nesterov;             /* SGD */
    double beta1, beta2, eps; /* AdamW (0: 0.9, 0.999, 1e-8) */
    double weight_decay;      /* applied to parameters with decay on (see gr_param) */
    double clip_norm;         /* > 0: clip the global gradient norm to this */
    int sched;                /* GR_SCHED_* */
    int64_t warmup;           /* steps of linear warm-up (cosine) */
    int64_t total;            /* steps in all (cosine) */
    int64_t step_size;        /* GR_SCHED_STEP: multiply by gamma every step_size steps */
    double gamma;
    double min_lr;     /* cosine floor */
    double l2sp_alpha; /* L2-SP: pull of pretrained parameters towards their start */
    double l2sp_beta;  /* L2-SP: plain L2 on new parameters (no pretrained value) */
} gr_optim_cfg;

/* One trainable parameter: a span of the parameter block. */
typedef struct gr_param {
    const char *name;
    int64_t off, n; /* in floats */
    float lr_scale; /* parameter group's learning rate = lr * lr_scale */
    int decay;      /* weight decay on (off by default for biases and normalisation) */
    int pretrained; /* L2-SP pulls it towards its starting value */
} gr_param;

/* Learning rate of step t (0-based) before any group scale. */
double gr_sched_lr(const gr_optim_cfg *c, int64_t t);

/* The optimizer's state lives in blocks of the parameter block's size (m: SGD momentum or
 * Adam's first moment; v: Adam's second moment; w0: L2-SP starting values). */
typedef struct gr_optim {
    gr_optim_cfg cfg;
    int nparam;
    gr_param *params;
    int64_t total; /* floats in the parameter block */
    float *m, *v, *w0;
    int64_t step; /* updates done */
} gr_optim;

int gr_optim_init(gr_optim *o, const gr_optim_cfg *cfg, const gr_param *params, int nparam,
                  int64_t total, const float *w);
void gr_optim_free(gr_optim *o);
/* Global L2 norm of the gradient block. */
double gr_grad_norm(const float *g, int64_t n);
/* One update of w from g (g may be scaled in place by clipping and gets the L2-SP terms).
 * Returns the gradient norm before clipping. */
double gr_optim_step(gr_optim *o, float *w, float *g);

/* ---- the training session ---- */

enum { GR_LOSS_CE = 0, GR_LOSS_BCE = 1, GR_LOSS_MSE = 2 };
enum { GR_TRAIN_MAXOUT = 8 }; /* graph outputs a loss can read (later ones get no gradient) */

/* A loss the caller computes (gr_trainer_step_fn): after the forward in training mode, y[i] is
 * graph output i (plain); the loss writes the gradient of each float output it uses into dy[i]
 * (plain, y[i]'s size) and sets used[i]; outputs it leaves unused get no gradient. */
typedef struct gr_loss_io {
    int ny;
    const gr_tensor *y[GR_TRAIN_MAXOUT];
    float *dy[GR_TRAIN_MAXOUT]; /* NULL for an output that is not float32 */
    unsigned char used[GR_TRAIN_MAXOUT];
} gr_loss_io;
/* Returns a status (its message in gr_err) and the loss. */
typedef int (*gr_loss_fn)(void *ctx, gr_loss_io *io, double *loss);

typedef struct gr_trainer_cfg {
    gr_optim_cfg opt;
    int loss;                     /* GR_LOSS_*, applied to graph output 0 */
    float label_smoothing;        /* CE */
    const float *class_weight;    /* CE: [number of classes] or NULL; the caller keeps it alive */
    double layer_decay;           /* in (0, 1): learning rate * decay^(depth from the top layer) */
    uint64_t seed;                /* Dropout */
    int use_ref;                  /* reference kernels (tests) */
    const signed char *node_mode; /* [g->nnodes] or NULL, see gr_plan_opts */
    int no_fold;                  /* keep frozen BatchNorms as nodes (default: folded into Conv) */
    const unsigned char *fresh;   /* [g->nvalues] or NULL: new parameters (a new head), which
                                   L2-SP decays towards 0 (l2sp_beta) instead of their start */
} gr_trainer_cfg;

/* A training session over a graph it does not own. Trainable initializers move into one
 * parameter block (their graph values point into it, so an export sees the trained weights),
 * their gradients into one gradient block, and the running statistics of training BatchNorms
 * into one buffer block. */
typedef struct gr_trainer {
    gr_graph *g;
    int nvalues_given; /* g->nvalues when the session began */
    gr_dnnl *dnnl;
    gr_trainer_cfg cfg;
    unsigned char *trainable; /* [g->nvalues] */
    float **grad_of;          /* [g->nvalues] */
    float *w, *grad;          /* [total] */
    int64_t total;
    gr_param *params;
    int nparam;
    float *buf, *buf_saved; /* running statistics, and their copy before a step */
    int64_t nbuf;
    int *buf_values; /* graph values in the buffer block */
    int nbuf_values;
    gr_optim opt;
    gr_plan *plan;
    gr_rng rng;
    float *dout[GR_TRAIN_MAXOUT]; /* gradients of the float outputs (plain) */
    size_t dout_cap[GR_TRAIN_MAXOUT];
    const gr_tensor **dptr; /* [g->noutputs]: what a step hands to gr_plan_backward */
    int64_t step;           /* completed updates */
    double last_loss, last_norm;
} gr_trainer;

/* trainable[v] selects float initializers of g (a copy is kept). Unless cfg->no_fold or
 * cfg->node_mode, frozen BatchNorms after frozen Convs are folded into them first
 * (gr_graph_fold_frozen): g changes (its values keep their indices, new ones are appended). */
int gr_trainer_new(gr_graph *g, const unsigned char *trainable, const gr_trainer_cfg *cfg,
                   gr_trainer **out);
void gr_trainer_free(gr_trainer *t);
/* One step on a batch: forward in training mode, loss on output 0 against target (int32
 * class ids for CE, float for BCE/MSE, shaped like the output), backward, update. A NaN or Inf
 * in the loss or the gradients stops the step before any weight or running statistic changes
 * and fails naming the step. */
int gr_trainer_step(gr_trainer *t, const gr_tensor *x, const void *target, double *loss);
/* Forward and loss only (no update, training-mode statistics unchanged): for gradient checks
 * and parity tests, with the gradients left in t->grad when want_grad. */
int gr_trainer_grad(gr_trainer *t, const gr_tensor *x, const void *target, int want_grad,
                    double *loss);
/* The same two with the caller's loss over all the outputs (domain adaptation: a classification
 * loss on some rows, an alignment loss on features; see gr_loss_io). */
int gr_trainer_step_fn(gr_trainer *t, const gr_tensor *x, gr_loss_fn fn, void *ctx, double *loss);
int gr_trainer_grad_fn(gr_trainer *t, const gr_tensor *x, gr_loss_fn fn, void *ctx, int want_grad,
                       double *loss);

/* ---- checkpoints (checkpoint.c) ----
 * One safetensors file holds a training session: every trainable parameter under its
 * initializer name, the optimizer state ("opt.m.<name>": SGD momentum (momentum > 0) or Adam's
 * first moment; "opt.v.<name>": Adam's second moment; "opt.w0.<name>": L2-SP starting values),
 * the running statistics of training BatchNorms ("buf.<name>"), the Dropout rng ("rng", int64
 * (4)), and as __metadata__ strings: "format", "graft_version", "optimizer" (sgd|adamw),
 * "optimizer_cfg" (the settings as JSON), "step" (updates done, the schedule's position), and the
 * caller's data position "epoch", "batch", "loader_seed". Loading restores all of it, so the
 * steps after a load compute bit for bit what an uninterrupted run computes. */

/* Where the data stands: the next batch is batch `batch` (0-based) of epoch `epoch` of a loader
 * seeded with `seed`. */
typedef struct gr_train_pos {
    int64_t epoch, batch;
    uint64_t seed;
    char *note; /* the caller's own state as text (e.g. JSON), metadata "note":
                              saved when non-NULL; on load a malloc'd copy (caller frees) or
                              NULL when the file has none */
} gr_train_pos;

/* Writes t (and pos, which may be NULL) to path atomically (see gr_wfile). */
int gr_trainer_save(gr_trainer *t, const char *path, const gr_train_pos *pos);
/* Restores t from path, and *pos when pos != NULL. Every tensor of the file must be one of the
 * session's with the same dtype and shape, and every one of the session's must be there, and
 * the optimizer kind must match; errors name the file and the tensor, and leave t unchanged.
 * Hyper-parameters come from t's configuration, not from the file (they may change on resume). */
int gr_trainer_load(gr_trainer *t, const char *path, gr_train_pos *pos);
/* Rotation in folder dir (which must exist): the new checkpoint becomes dir/ckpt.safetensors
 * and the one it replaces dir/ckpt.prev.safetensors, through fsync'd renames ordered so that a
 * crash at any instant leaves at least one complete checkpoint (see checkpoint.c). */
int gr_ckpt_write(const char *dir, gr_trainer *t, const gr_train_pos *pos);
/* Loads dir/ckpt.safetensors; if it is missing, truncated, corrupt or does not fit, says so (a
 * WARNING to pr, stage "checkpoint", naming the file and the reason; pr may be NULL) and loads
 * dir/ckpt.prev.safetensors instead. Fails, naming both files and why, when neither is usable. */
int gr_ckpt_resume(const char *dir, gr_trainer *t, gr_train_pos *pos, const gr_progress *pr);

#endif
