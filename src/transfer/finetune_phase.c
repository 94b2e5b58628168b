/* finetune_phase.c — one phase of fine-tuning (finetune.c runs the recipe): the trainer's
 * configuration, the best weights by validation loss, checkpoints and resume, an epoch's training
 * and its end (early stopping, the notes). */
#include "finetune_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- one phase ---- */

static void keep_best(ft *f, const gr_trainer *t)
{
    memcpy(f->best_w, t->w, (size_t)t->total * sizeof(float));
    if (t->nbuf) memcpy(f->best_buf, t->buf, (size_t)t->nbuf * sizeof(float));
}

static int save_best(ft *f, gr_trainer *t)
{
    keep_best(f, t);
    if (!f->dir[0]) return GRAFT_OK;
    char path[4300];
    snprintf(path, sizeof path, "%s/best.safetensors", f->dir);
    return gr_trainer_save(t, path, NULL);
}

/* Loads the phase's checkpoint and the best weights it refers to; *epoch is the next epoch. */
static int resume_phase(ft *f, gr_trainer *t, int64_t *epoch)
{
    gr_train_pos pos = { 0 };
    int st = gr_ckpt_resume(f->dir, t, &pos, &f->r.progress);
    if (!st && !pos.note)
        st = gr_err(GRAFT_E_FORMAT, "%s: the checkpoint has no fine-tuning state", f->dir);
    if (!st) st = gr_ft_read_note(f, pos.note, f->dir);
    free(pos.note);
    if (st) return st;
    *epoch = pos.epoch;
    /* the best weights: from best.safetensors, then the checkpoint again on top */
    char path[4300];
    snprintf(path, sizeof path, "%s/best.safetensors", f->dir);
    if (gr_ft_exists(path)) {
        if ((st = gr_trainer_load(t, path, NULL))) return st;
        keep_best(f, t);
        pos = (gr_train_pos){ 0 };
        st = gr_ckpt_resume(f->dir, t, &pos, &f->r.progress);
        free(pos.note);
    } else keep_best(f, t);
    if (!st)
        gr_progress_note(&f->r.progress, GRAFT_EVENT_NOTE, "finetune",
                         "finetune: resumed %s after epoch %lld (step %lld)", f->dir,
                         (long long)*epoch, (long long)t->step);
    return st;
}

static int train_epoch(ft *f, gr_trainer *t, int phase, int64_t e, int epochs, gr_ft_epoch *out)
{
    double sum = 0, t0 = gr_now();
    int64_t right = 0, seen = 0, per_epoch = f->ntr / f->r.batch * f->r.batch;
    const gr_progress *pr = &f->r.progress;
    int st = gr_loader_start(f->ltr, (int)(phase * 1000 + e)), r = 0;
    if (!st)
        gr_progress_detail(pr, "train", 0, per_epoch, "phase %d epoch %d/%d", phase, (int)e + 1,
                           epochs);
    gr_batch b;
    out->lr = gr_sched_lr(&t->opt.cfg, t->step);
    f->transfer_loss = 0, f->transfer_steps = f->dom_right = f->dom_seen = 0;
    while (!st && (r = gr_loader_next(f->ltr, &b)) > 0) {
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(4, (int64_t[]){ b.n, 3, b.h, b.w }),
                        .data = b.x };
        double loss;
        st = gr_ft_aligns(f) ? gr_ft_adapt_step(f, t, &b, &loss)
                             : gr_trainer_step(t, &x, b.y, &loss);
        if (st) break;
        const float *logits = gr_plan_output(t->plan, 0)->data; /* this step's forward */
        for (int i = 0; i < b.n; i++)
            right += gr_argmax(logits + (int64_t)i * f->nclass, f->nclass) == b.y[i];
        sum += loss * b.n;
        seen += b.n;
        gr_progress_detail(pr, "train", seen, per_epoch, "phase %d epoch %d/%d, loss %.4f", phase,
                           (int)e + 1, epochs, sum / seen);
    }
    if (!st && r < 0) st = -r;
    out->train_loss = seen ? sum / seen : NAN;
    if (f->transfer_steps) f->res->adapt_loss = f->transfer_loss / (double)f->transfer_steps;
    if (f->dom_seen) f->res->domain_acc = (double)f->dom_right / (double)f->dom_seen;
    out->train_acc = seen ? (double)right / seen : NAN;
    out->val_loss = out->val_acc = NAN;
    if (!st && f->nva) st = gr_ft_evaluate(f, t->dnnl, &out->val_loss, &out->val_acc);
    out->seconds = gr_now() - t0;
    return st;
}

/* An epoch's figures, as a NOTE. */
static void note_epoch(const ft *f, const gr_ft_epoch *e, int epochs, int improved)
{
    if (!f->r.progress.fn) return;
    char val[96] = "", al[96] = "";
    if (isfinite(e->val_acc))
        snprintf(val, sizeof val, ", val loss %.4f acc %.2f%%%s", e->val_loss, 100 * e->val_acc,
                 improved ? " *" : "");
    if (f->transfer_steps)
        snprintf(al, sizeof al, ", %s loss %.4f%s", gr_adapt_method_name(f->r.adapt),
                 f->transfer_loss / (double)f->transfer_steps, "");
    if (f->dom_seen)
        snprintf(al + strlen(al), sizeof al - strlen(al), " (domain acc %.1f%%)",
                 100.0 * (double)f->dom_right / (double)f->dom_seen);
    gr_progress_note(
        &f->r.progress, GRAFT_EVENT_NOTE, "finetune",
        "phase %d epoch %2d/%d: train loss %.4f acc %.2f%%%s%s, lr %.2e, %.1f s (%.0f "
        "img/s)",
        e->phase, e->epoch, epochs, e->train_loss, 100 * e->train_acc, al, val, e->lr, e->seconds,
        e->seconds > 0 ? (double)(f->ntr / f->r.batch * f->r.batch) / e->seconds : 0.0);
}

/* The trainer's configuration of a phase: loss, optimizer, warm-up + cosine over its steps. */
static gr_trainer_cfg phase_cfg(const ft *f, int phase, int epochs, double lr)
{
    const gr_ft_opts *r = &f->r;
    int64_t spe = gr_ft_spe(f), total = spe * epochs;
    return (
        gr_trainer_cfg){ .loss = GR_LOSS_CE,
                         .label_smoothing = r->label_smoothing,
                         .seed = r->seed + (uint64_t)phase,
                         .use_ref = r->use_ref,
                         .layer_decay = phase == 2 ? r->layer_decay : 0,
                         /* phase 1 keeps BatchNorms unfolded when phase 2 may train them */
                         .no_fold = phase == 1 && r->epochs > 0,
                         .opt = { .kind = r->opt,
                                  .lr = lr,
                                  .momentum = r->opt == GR_SGD ? 0.9 : 0,
                                  .weight_decay = r->weight_decay,
                                  .sched = GR_SCHED_COSINE,
                                  .warmup = total >= 20 ? (spe < total / 10 ? spe : total / 10) : 0,
                                  .total = total,
                                  .min_lr = lr * 0.01 } };
}

/* GR_BN_FROZEN: every BatchNorm in inference mode (0), the other nodes as the plan decides (-1);
 * *mode NULL otherwise. */
static int frozen_bn_modes(const ft *f, signed char **mode)
{
    *mode = NULL;
    if (f->r.bn != GR_BN_FROZEN) return GRAFT_OK;
    if (!(*mode = malloc((size_t)f->g->nnodes + 1)))
        return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
    for (int k = 0; k < f->g->nnodes; k++)
        (*mode)[k] = gr_node_running_stats(&f->g->nodes[k]) ? 0 : -1;
    return GRAFT_OK;
}

/* The best-weights buffers and where the phase starts: a checkpoint's epoch when resuming, else
 * epoch 0 from the best so far (phase 1 with a random head: nothing yet). */
static int start_phase(ft *f, gr_trainer *t, int phase, int resume, int64_t *e0)
{
    *e0 = 0;
    if (!(f->best_w = malloc((size_t)(t->total + 1) * sizeof(float))) ||
        !(f->best_buf = malloc((size_t)(t->nbuf + 1) * sizeof(float))))
        return gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
    int st = f->dir[0] ? gr_ft_make_dir(f->dir) : GRAFT_OK;
    if (st) return st;
    if (resume) return resume_phase(f, t, e0);
    f->bad = 0;
    if (phase == 1 && f->r.head_init == GR_HEAD_INIT_RANDOM)
        f->best_acc = -1, f->best_loss = INFINITY, f->best_hist = -1;
    return save_best(f, t);
}

/* After epoch e: the best weights when the validation loss improved, the note, the checkpoint,
 * the test hook that stops after a number of epochs, the early-stopping note. */
static int end_epoch(ft *f, gr_trainer *t, const gr_ft_epoch *ep, int phase, int64_t e, int epochs)
{
    const gr_ft_opts *r = &f->r;
    /* the validation loss decides (Keras' default monitor): on a small split the accuracy
     * moves in coarse steps and stops a run that is still improving */
    int improved = f->nva && ep->val_loss < f->best_loss, st = gr_ft_push_epoch(f->res, ep);
    if (st) return st;
    if (improved) {
        f->best_acc = ep->val_acc, f->best_loss = ep->val_loss, f->best_hist = f->res->nhist - 1,
        f->bad = 0;
        st = save_best(f, t);
    } else f->bad++;
    note_epoch(f, ep, epochs, improved);
    if (!st && f->dir[0]) {
        char *note = gr_ft_note_json(f, phase);
        gr_train_pos pos = { .epoch = e + 1, .batch = 0, .seed = r->seed, .note = note };
        st = note ? gr_ckpt_write(f->dir, t, &pos)
                  : gr_err(GRAFT_E_NOMEM, "fine-tuning: out of memory");
        free(note);
    }
    int trained = 0; /* training epochs so far, over both phases (the probe is not one) */
    for (int i = 0; i < f->res->nhist; i++) trained += f->res->hist[i].epoch > 0;
    if (!st && r->stop_after_epochs && trained >= r->stop_after_epochs)
        st = gr_err(GRAFT_E_ARG,
                    "stopped after %d training epochs as asked (stop_after_epochs; resume from "
                    "the checkpoint)",
                    trained);
    if (!st && r->patience && f->nva && f->bad >= r->patience && e + 1 < epochs)
        gr_progress_note(&r->progress, GRAFT_EVENT_NOTE, "finetune",
                         "finetune: phase %d stops early: no lower validation loss for %d "
                         "epochs",
                         phase, f->bad);
    return st;
}

/* Runs phase `phase` (1: head, 2: unfrozen) on trainable[] for `epochs` epochs at rate lr. */
int gr_ft_run_phase(ft *f, int phase, const unsigned char *trainable, int epochs, double lr,
                    int resume)
{
    const gr_ft_opts *r = &f->r;
    gr_trainer_cfg cfg = phase_cfg(f, phase, epochs, lr);
    signed char *mode;
    gr_trainer *t = NULL;
    int64_t e0 = 0;
    int st = frozen_bn_modes(f, &mode);
    cfg.node_mode = mode;
    if (!st) st = gr_trainer_new(f->g, trainable, &cfg, &t);
    if (!st) st = start_phase(f, t, phase, resume, &e0);
    if (!st)
        gr_progress_note(&r->progress, GRAFT_EVENT_NOTE, "finetune",
                         "finetune: phase %d: %s, %lld parameters train, %d epochs of %lld steps",
                         phase, phase == 1 ? "the new head" : r->freeze, (long long)t->total,
                         epochs, (long long)gr_ft_spe(f));
    for (int64_t e = e0; !st && e < epochs; e++) {
        if (r->patience && f->nva && f->bad >= r->patience) break;
        gr_ft_epoch ep = { .phase = phase, .epoch = (int)e + 1 };
        if (!(st = train_epoch(f, t, phase, e, epochs, &ep)))
            st = end_epoch(f, t, &ep, phase, e, epochs);
    }
    if (!st && f->nva) { /* the phase ends with its best weights */
        memcpy(t->w, f->best_w, (size_t)t->total * sizeof(float));
        if (t->nbuf) memcpy(t->buf, f->best_buf, (size_t)t->nbuf * sizeof(float));
    }
    gr_trainer_free(t); /* the graph gets the weights */
    free(mode);
    free(f->best_w), free(f->best_buf);
    f->best_w = f->best_buf = NULL;
    return st;
}
