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
} ft;

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
