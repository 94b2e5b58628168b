/* finetune_impl.h — what the fine-tuning recipe (finetune.c) and its phases (finetune_phase.c)
 * share: the session and the helpers both call. Private to src/transfer/finetune*.c. */
#ifndef GR_FINETUNE_IMPL_H
#define GR_FINETUNE_IMPL_H

#include "transfer.h"

#include "graph/graph.h"
#include "ops/dnnl_util.h"
#include "train/train.h"

/* ---- the session ---- */

typedef struct ft {
    const gr_ft_opts *o;
    gr_ft_opts r; /* the resolved settings */
    const gr_dataset *ds;
    gr_graph *g;
    gr_graph *gx;     /* what is exported: g's structure before training (a trainer folds frozen
                     BatchNorms into g; the file keeps them, for graft adapt), g's weights */
    int64_t *tr, *va; /* training and validation samples */
    int64_t ntr, nva;
    int nclass;
    gr_loader *ltr, *lva;
    gr_ft_result *res;
    /* the best state of the current phase */
    double best_acc, best_loss;
    int best_hist; /* index into res->hist, -1: the phase's start */
    float *best_w, *best_buf;
    int bad;        /* epochs since the last improvement */
    char dir[4200]; /* the phase's checkpoint folder, "" without one */
    /* alignment with a target (finetune_adapt.c) */
    gr_loader *ltg;              /* the target, shuffled, cycled through its epochs */
    int tg_epoch, tg_started;    /* its epochs begun; one is under way */
    int yfeat, ydom;             /* training-graph outputs: features, domain logit (dann) */
    int grl_coeff;               /* dann: the GradientReversal's coefficient (initializer) */
    float *xcat;                 /* a step's source then target images */
    size_t xcat_cap;             /* floats */
    double transfer_loss;        /* this epoch's sum of the alignment loss, */
    int64_t transfer_steps;      /* over this many steps */
    int64_t dom_right, dom_seen; /* dann: this epoch's domain predictions right, made */
} ft;

/* Alignment with f->r.target (finetune_adapt.c): the training graph's extra outputs and the
 * domain classifier, the target loader; the values that train with every phase; one step on a
 * source batch and a target batch; freeing. */
int gr_ft_adapt_build(ft *f);
void gr_ft_adapt_trainable(const ft *f, unsigned char *trainable);
int gr_ft_adapt_step(ft *f, gr_trainer *t, const gr_batch *b, double *loss);
void gr_ft_adapt_free(ft *f);
static inline int gr_ft_aligns(const ft *f) { return f->r.target && f->r.adapt >= GR_ADAPT_CORAL; }

int gr_ft_make_dir(const char *path);
int gr_ft_evaluate(ft *f, gr_dnnl *dnnl, double *loss, double *acc);
int gr_ft_push_epoch(gr_ft_result *r, const gr_ft_epoch *e);
int gr_ft_read_note(ft *f, const char *note, const char *path);
int gr_ft_exists(const char *path);
/* Runs phase `phase` (1: head, 2: unfrozen) on trainable[] for `epochs` epochs at rate lr. */
int gr_ft_run_phase(ft *f, int phase, const unsigned char *trainable, int epochs, double lr,
                    int resume);

/* Optimizer steps per epoch (at least 1). */
static inline int64_t gr_ft_spe(const ft *f)
{
    return f->ntr / f->r.batch > 0 ? f->ntr / f->r.batch : 1;
}
/* The early-stopping state and curves as the checkpoint's note (JSON; caller frees). */
char *gr_ft_note_json(const ft *f, int phase);

#endif
