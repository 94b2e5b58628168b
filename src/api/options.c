/* options.c — the public options' defaults (graft_*_opts_init) and the names of their closed
 * sets (graft_*_name / graft_*_from_name). The api/ layer turns these explicit values into the
 * internal structs' conventions (transfer_api.c, speech_api.c). */
#include "api.h"
#include "transfer/transfer.h"

#include <string.h>

/* The name at index v of a NULL-free table of n names, or NULL outside it. */
static const char *name_at(const char *const *names, int n, int v)
{
    return v >= 0 && v < n ? names[v] : NULL;
}

/* The index of name in the table, or -1. */
static int index_of(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

/* A name for an error message (NULL is no name). */
static const char *shown(const char *name) { return name ? name : "(none)"; }

/* ---- closed sets: the table's index is the enum's value ---- */

static const char *const pools[] = { "mean", "grid2", "none", "grid4" };
static const char *const kinds[] = { "logreg", "mlp", "knn", "ncm" };
static const char *const norms[] = { "auto", "standardize", "l2", "none" };
static const char *const methods[] = { "simpleshot", "knn", "imprint" };
static const char *const inits[] = { "probe", "imprint", "random" };
static const char *const bns[] = { "auto", "train", "frozen" };
static const char *const optimizers[] = { "adamw", "sgd" };
static const char *const adapts[] = { "adabn", "tent", "shot", "coral", "mmd", "dann" };
#define N(a) ((int)(sizeof a / sizeof *a))

const char *graft_pool_name(graft_pool p) { return name_at(pools, N(pools), (int)p); }
const char *graft_head_kind_name(graft_head_kind k) { return name_at(kinds, N(kinds), (int)k); }
const char *graft_norm_name(graft_norm n) { return name_at(norms, N(norms), (int)n); }
const char *graft_head_init_name(graft_head_init h) { return name_at(inits, N(inits), (int)h); }
const char *graft_bn_name(graft_bn b) { return name_at(bns, N(bns), (int)b); }
const char *graft_fewshot_method_name(graft_fewshot_method m)
{
    return name_at(methods, N(methods), (int)m);
}
const char *graft_adapt_method_name(graft_adapt_method m)
{
    return name_at(adapts, N(adapts), (int)m);
}
const char *graft_optimizer_name(graft_optimizer o)
{
    return name_at(optimizers, N(optimizers), (int)o);
}

/* The index of `name` in a table, or GRAFT_E_ARG with graft's message from before the enums:
 * "unknown <what> '<name>' (<choices>)". */
static graft_status lookup(const char *const *names, int n, const char *name, const char *what,
                           const char *choices, int *out)
{
    int i = index_of(names, n, name);
    if (i < 0) return gr_err(GRAFT_E_ARG, "unknown %s '%s' (%s)", what, shown(name), choices);
    *out = i;
    return GRAFT_OK;
}

graft_status graft_pool_from_name(const char *name, graft_pool *out)
{
    int i = 0, st = lookup(pools, N(pools), name, "pooling", "mean, grid2, grid4 or none", &i);
    if (!st) *out = (graft_pool)i;
    return st;
}

graft_status graft_head_kind_from_name(const char *name, graft_head_kind *out)
{
    int i = 0, st = lookup(kinds, N(kinds), name, "head", "logreg, mlp, knn or ncm", &i);
    if (!st) *out = (graft_head_kind)i;
    return st;
}

graft_status graft_norm_from_name(const char *name, graft_norm *out)
{
    int i = 0, st = lookup(norms, N(norms), name, "feature normalisation",
                           "auto, standardize, l2 or none", &i);
    if (!st) *out = (graft_norm)i;
    return st;
}

graft_status graft_fewshot_method_from_name(const char *name, graft_fewshot_method *out)
{
    int i = 0,
        st = lookup(methods, N(methods), name, "few-shot method", "simpleshot, knn or imprint", &i);
    if (!st) *out = (graft_fewshot_method)i;
    return st;
}

graft_status graft_adapt_method_from_name(const char *name, graft_adapt_method *out)
{
    int i = 0, st = lookup(adapts, N(adapts), name, "adaptation method",
                           "adabn, tent, shot, coral, mmd or dann", &i);
    if (!st) *out = (graft_adapt_method)i;
    return st;
}

graft_status graft_head_init_from_name(const char *name, graft_head_init *out)
{
    int i = 0, st = lookup(inits, N(inits), name, "head init", "probe, imprint or random", &i);
    if (!st) *out = (graft_head_init)i;
    return st;
}

graft_status graft_bn_from_name(const char *name, graft_bn *out)
{
    int i = 0, st = lookup(bns, N(bns), name, "BatchNorm mode", "auto, train or frozen", &i);
    if (!st) *out = (graft_bn)i;
    return st;
}

graft_status graft_optimizer_from_name(const char *name, graft_optimizer *out)
{
    int i = 0, st = lookup(optimizers, N(optimizers), name, "optimizer", "adamw or sgd", &i);
    if (!st) *out = (graft_optimizer)i;
    return st;
}

/* ---- defaults ---- */

void graft_extract_opts_init(graft_extract_opts *o)
{
    *o = (graft_extract_opts){ .pool = GRAFT_POOL_MEAN, .batch = 32, .workers = 2 };
}

/* The MLP's and kNN's figures are fit.c's (gr_fit_defaults), so there is one place for them. */
void graft_fit_opts_init(graft_fit_opts *o)
{
    gr_fit_opts f;
    gr_fit_defaults(&f, GR_HEAD_LOGREG);
    *o = (graft_fit_opts){ .kind = GRAFT_HEAD_LOGREG,
                           .norm = GRAFT_NORM_AUTO,
                           .C = GRAFT_AUTO,
                           .hidden = f.hidden,
                           .epochs = f.epochs,
                           .k = f.k };
}

void graft_fewshot_opts_init(graft_fewshot_opts *o)
{
    *o = (graft_fewshot_opts){
        .method = GRAFT_FEWSHOT_SIMPLESHOT, .way = 5, .shot = 1, .query = 15, .episodes = 600
    };
}

void graft_semi_opts_init(graft_semi_opts *o)
{
    *o = (graft_semi_opts){ .rounds = 5, .threshold = 0.9 };
}

void graft_adapt_opts_init(graft_adapt_opts *o)
{
    *o = (graft_adapt_opts){ .method = GRAFT_ADAPT_ADABN,
                             .epochs = GRAFT_AUTO,
                             .lr = GRAFT_AUTO,
                             .shot_beta = 0.3,
                             .batch = 64,
                             .workers = 2 };
}

void graft_finetune_opts_init(graft_finetune_opts *o)
{
    *o = (graft_finetune_opts){ .pool = GRAFT_POOL_MEAN,
                                .head_init = GRAFT_HEAD_INIT_PROBE,
                                .probe_C = GRAFT_AUTO,
                                .bn = GRAFT_BN_AUTO,
                                .head_epochs = GRAFT_AUTO,
                                .epochs = GRAFT_AUTO,
                                .optimizer = GRAFT_OPTIMIZER_ADAMW,
                                .lr = GRAFT_AUTO,
                                .lr_ratio = 0.1,
                                .weight_decay = GRAFT_AUTO,
                                .label_smoothing = 0.1,
                                .val_frac = GRAFT_AUTO,
                                .patience = 5,
                                .batch = 32,
                                .workers = 2,
                                .adapt_weight = 1 };
}

void graft_keyword_train_opts_init(graft_keyword_train_opts *o)
{
    *o = (graft_keyword_train_opts){ .positives = 500,
                                     .negatives = 3000,
                                     .test_positives = 100,
                                     .test_hours = 0.25,
                                     .target_fa = 0.5,
                                     .hidden = 128,
                                     .epochs = 30,
                                     .lr = 1e-4,
                                     .hard_frac = 0.25,
                                     .parallel = 4 };
}
