/* graft/transfer.h — transfer-learning recipes: feature extraction, heads, few-shot, fine-tuning,
 * evaluation. Part of graft's public C API; include "graft.h" for all of it. */
#ifndef GRAFT_TRANSFER_H
#define GRAFT_TRANSFER_H

#include "graft/core.h"
#include "graft/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- feature extraction ------------------------------------------------------------------
 * Runs a model cut at a layer over a dataset and pools each sample's map into one row.
 *
 * The functions of this header that read a model come in two forms: one taking the model's
 * path (it is read and parsed for that call) and graft_model_* taking a model loaded once with
 * graft_model_load, for a program that makes several calls on one model (graft fit extracts
 * the training and the test data; the model is parsed once). They give the same results. */

/* How a sample's map (C, H, W) becomes one row. */
typedef enum graft_pool {
    GRAFT_POOL_MEAN = 0,  /* "mean": global average, C values */
    GRAFT_POOL_GRID2 = 1, /* "grid2": the mean over a 2x2 grid (PyTorch's adaptive_avg_pool2d(x,
                             2)), 4 values per channel */
    GRAFT_POOL_NONE = 2,  /* "none": the map flattened */
    GRAFT_POOL_GRID4 = 3  /* "grid4": 4x4 cells, 16 values per channel; the map's sides multiples
                             of 4 */
} graft_pool;
/* "mean", "grid2", "grid4", "none"; NULL for a value outside the enum. */
const char *graft_pool_name(graft_pool p);
/* The pooling of that name; GRAFT_E_ARG (the message lists the names) for any other. */
graft_status graft_pool_from_name(const char *name, graft_pool *out);

typedef struct graft_extract_opts {
    const char *layer;     /* a value or node name (`graft info` lists cut points); NULL (default):
                              the input of the model's classifier */
    graft_pool pool;       /* GRAFT_POOL_MEAN */
    const char *transform; /* text form (see graft_dataset_load); NULL (default): ImageNet's */
    int batch;             /* images per run of the model (32; a model whose input has a fixed
                              batch size runs that) */
    int workers;           /* threads decoding images (2); > 0 */
    const char *cache_dir; /* NULL (default): no cache. Keyed by the model's content, the layer,
                              the pooling, the preprocessing and the samples' files */
    int skip_bad;          /* 1: leave unreadable images out (a WARNING each) instead of failing
                              (0, default) */
    graft_progress_fn progress; /* stage "extract": images done; warnings (a skipped image, a
                                   cache that could not be read or written). NULL (default) */
    void *progress_ctx;
} graft_extract_opts;

void graft_extract_opts_init(graft_extract_opts *o);

/* Which layer and pooling to extract from, measured: every candidate map (the cut points and
 * the maps inside feature pyramids, at most max_candidates, 0: 32) pooled by its mean and over
 * a 2x2 grid, scored by a 3-fold cross-validated linear probe (C = 1) on the samples `subset`
 * (int64 indices; NULL: all) and ranked by its held-out log-loss. *ranking (JSON array, best
 * first; caller frees) lists layer, pool, dim, log_loss and accuracy; *layer (caller frees) and
 * *pool are the best. o's layer, pool and cache are not used. */
graft_status graft_layer_auto(const char *model_path, const graft_dataset *d,
                              const graft_tensor *subset, const graft_extract_opts *o,
                              int max_candidates, char **ranking, char **layer, graft_pool *pool);
graft_status graft_model_layer_auto(const graft_model *m, const graft_dataset *d,
                                    const graft_tensor *subset, const graft_extract_opts *o,
                                    int max_candidates, char **ranking, char **layer,
                                    graft_pool *pool);

/* features (n, dim) float32, labels (n) int32, index (n) int64 (the dataset sample of each row);
 * any output pointer may be NULL. *cached (may be NULL) says whether the cache answered. */
graft_status graft_extract(const char *model_path, const graft_dataset *d,
                           const graft_extract_opts *o, graft_tensor **features,
                           graft_tensor **labels, graft_tensor **index, int *cached);
graft_status graft_model_extract(const graft_model *m, const graft_dataset *d,
                                 const graft_extract_opts *o, graft_tensor **features,
                                 graft_tensor **labels, graft_tensor **index, int *cached);

/* ---- heads on features --------------------------------------------------------------------
 * A classifier fitted on feature rows (from graft_extract): multinomial logistic regression
 * (scikit-learn's LogisticRegression objective, L-BFGS; C chosen by 5-fold stratified
 * cross-validation over logspace(-4, 4) when C is GRAFT_AUTO; C = 1 when a class has fewer than
 * 5 rows), an MLP, kNN (cosine) or the nearest class mean. The feature normalisation is part of
 * the head. */
typedef struct graft_head graft_head;

typedef enum graft_head_kind {
    GRAFT_HEAD_LOGREG = 0, /* "logreg" */
    GRAFT_HEAD_MLP = 1,    /* "mlp" */
    GRAFT_HEAD_KNN = 2,    /* "knn" */
    GRAFT_HEAD_NCM = 3     /* "ncm": nearest class mean */
} graft_head_kind;
const char *graft_head_kind_name(graft_head_kind k);
graft_status graft_head_kind_from_name(const char *name, graft_head_kind *out);

/* What the head does to a feature row first (saved with the head). */
typedef enum graft_norm {
    GRAFT_NORM_AUTO = 0,        /* "auto": standardize for logreg and mlp, l2 for knn and ncm */
    GRAFT_NORM_STANDARDIZE = 1, /* "standardize": zero mean, unit variance per feature */
    GRAFT_NORM_L2 = 2,          /* "l2": unit rows */
    GRAFT_NORM_NONE = 3         /* "none" */
} graft_norm;
const char *graft_norm_name(graft_norm n);
graft_status graft_norm_from_name(const char *name, graft_norm *out);

typedef struct graft_fit_opts {
    graft_head_kind kind; /* GRAFT_HEAD_LOGREG */
    graft_norm norm;      /* GRAFT_NORM_AUTO */
    double C;             /* logreg: inverse L2 strength, > 0; GRAFT_AUTO (default):
                             cross-validated */
    int hidden;           /* mlp: hidden units (256) */
    int epochs;           /* mlp: epochs (50), > 0 */
    int k;                /* knn: neighbours (10) */
    uint64_t seed;        /* 0 */
} graft_fit_opts;

void graft_fit_opts_init(graft_fit_opts *o);

/* X (n, dim) float32, y (n) int32 ids in [0, nclass). */
graft_status graft_head_fit(const graft_tensor *X, const graft_tensor *y, int nclass,
                            const graft_fit_opts *o, graft_head **out);
/* Self-training (scikit-learn's SelfTrainingClassifier, criterion "threshold"): a head fitted on
 * the labelled rows labels the unlabelled rows XU (nu, dim); those predicted with more than
 * `threshold` confidence join the labelled rows for good, and the head is refitted; `rounds`
 * times or until no new row qualifies. balance caps each class's additions a round at
 * ceil(nu / (nclass * rounds)), most confident first. logreg's C is the one given, else 1 (not
 * cross-validated: see src/transfer/semi.c for the measurements behind these defaults). */
typedef struct graft_semi_opts {
    int rounds;       /* 5, > 0 */
    double threshold; /* 0.9, in (0, 1) */
    int balance;      /* 0 */
} graft_semi_opts;
void graft_semi_opts_init(graft_semi_opts *o);
/* yu (nu) int32 labels of XU, for reporting only (-1: unknown), or NULL. *summary (may be NULL;
 * caller frees) is JSON {rounds: [{pseudo_labels, confidence, accuracy (null without yu)}]}. */
graft_status graft_head_fit_self(const graft_tensor *X, const graft_tensor *y, int nclass,
                                 const graft_tensor *XU, const graft_tensor *yu,
                                 const graft_fit_opts *o, const graft_semi_opts *so,
                                 graft_head **out, char **summary);
/* Closed-form CORAL (Sun et al. 2016): *out (ns, d) = the source rows Xs re-coloured to the
 * covariance of the target rows Xt (nt, d), each domain standardised first, the result in the
 * target's units, so that a head fitted on *out applies to raw target features. Both need 2 or
 * more rows and the same number of features (at most 8192). */
graft_status graft_coral_align(const graft_tensor *Xs, const graft_tensor *Xt, graft_tensor **out);
/* Class probabilities (n, nclass). */
graft_status graft_head_predict(const graft_head *h, const graft_tensor *X, graft_tensor **prob);
graft_status graft_head_save(const graft_head *h, const char *path);
graft_status graft_head_load(const char *path, graft_head **out);
void graft_head_free(graft_head *h);
/* logreg: the C used and, when it was cross-validated, the best mean fold accuracy (else -1). */
/* The model (model_path NULL: the one recorded in the head's origin) cut at the head's layer,
 * with its pooling, normalisation, the head and a Softmax, as one ONNX file whose output is
 * "probabilities"; class names, layer, pooling and preprocessing are in its metadata. The head
 * needs an origin (graft fit records it). kNN heads cannot be exported. */
graft_status graft_head_export(const graft_head *h, const char *model_path, const char *out_path);
double graft_head_C(const graft_head *h);
/* Where the head's features come from, as a JSON object string the caller defines (graft's CLI
 * stores model, layer, pool, transform and classes); saved with the head. NULL: none. */
graft_status graft_head_set_origin(graft_head *h, const char *json);
const char *graft_head_origin(const graft_head *h);
double graft_head_cv_accuracy(const graft_head *h);

/* ---- few-shot learning ---------------------------------------------------------------------
 * Episodic evaluation on feature rows: each of `episodes` episodes draws `way` classes, `shot`
 * labelled and `query` test rows per class, classifies the queries from the labelled rows alone
 * and scores them. *mean and *ci95 are the mean accuracy and its 95 % interval half-width. */
typedef enum graft_fewshot_method {
    GRAFT_FEWSHOT_SIMPLESHOT = 0, /* "simpleshot": centre on the support mean, L2-normalise,
                                     nearest class mean */
    GRAFT_FEWSHOT_KNN = 1,        /* "knn": cosine nearest neighbour */
    GRAFT_FEWSHOT_IMPRINT = 2     /* "imprint": normalised class means as the weights of a cosine
                                     classifier */
} graft_fewshot_method;
const char *graft_fewshot_method_name(graft_fewshot_method m);
graft_status graft_fewshot_method_from_name(const char *name, graft_fewshot_method *out);

typedef struct graft_fewshot_opts {
    graft_fewshot_method method; /* GRAFT_FEWSHOT_SIMPLESHOT */
    int way, shot, query;        /* classes per episode (5), labelled rows (1) and test rows (15)
                                    per class; all > 0 */
    int episodes;                /* 600, > 0 */
    uint64_t seed;               /* 0 */
    int transductive;            /* 1: simpleshot's prototypes refined with the episode's
                                    unlabelled queries (soft k-means, Ren et al. 2018); 0 */
} graft_fewshot_opts;

void graft_fewshot_opts_init(graft_fewshot_opts *o);

graft_status graft_fewshot_eval(const graft_tensor *X, const graft_tensor *y, int nclass,
                                const graft_fewshot_opts *o, double *mean, double *ci95);

/* ---- fine-tuning -----------------------------------------------------------------------------
 * The recipe of timm and the Keras transfer guide in one call: the classifier is replaced by a
 * new linear head for the dataset's classes (or the model is cut at `layer` and the head reads
 * that map, pooled); phase 1 trains the head on the frozen trunk, phase 2 unfreezes `freeze` at
 * lr * lr_ratio; AdamW or SGD with warm-up + cosine, label smoothing, augmentation, early
 * stopping on a stratified validation split with the best weights kept, BatchNorms of frozen
 * layers in inference mode. GRAFT_AUTO means "chosen from the dataset's size or from another
 * option" (the summary's recipe says what was chosen). The result is one ONNX file with output
 * "probabilities" and the class names, preprocessing, recipe and learning curves in its
 * metadata, which graft predict/eval and onnxruntime read. */

/* How phase 1's head starts. */
typedef enum graft_head_init {
    GRAFT_HEAD_INIT_PROBE = 0,   /* "probe": a logistic regression fitted on the frozen features
                                    (cross-validated C, as graft fit) (LP-FT) */
    GRAFT_HEAD_INIT_IMPRINT = 1, /* "imprint": the normalised class means of the normalised
                                    features (weight imprinting; with head_epochs 0, the few-shot
                                    classifier as it is) */
    GRAFT_HEAD_INIT_RANDOM = 2   /* "random": torch's Linear init, then head epochs */
} graft_head_init;
const char *graft_head_init_name(graft_head_init h);
graft_status graft_head_init_from_name(const char *name, graft_head_init *out);

/* What BatchNorms do while they train. */
typedef enum graft_bn {
    GRAFT_BN_AUTO = 0,  /* "auto": train when freeze is "all" and the head starts at random or
                           there are 200+ images per class, else frozen (a probe head was fitted
                           on the running statistics) */
    GRAFT_BN_TRAIN = 1, /* "train": BatchNorms that train use batch statistics (timm) */
    GRAFT_BN_FROZEN = 2 /* "frozen": all stay in inference mode, scale and shift still train (the
                           Keras guide) */
} graft_bn;
const char *graft_bn_name(graft_bn b);
graft_status graft_bn_from_name(const char *name, graft_bn *out);

typedef enum graft_optimizer {
    GRAFT_OPTIMIZER_ADAMW = 0, /* "adamw" */
    GRAFT_OPTIMIZER_SGD = 1    /* "sgd": momentum 0.9 */
} graft_optimizer;
const char *graft_optimizer_name(graft_optimizer o);
graft_status graft_optimizer_from_name(const char *name, graft_optimizer *out);

/* ---- adaptation to unlabelled target data, without the source data ------------------------
 * The model is a trained classifier (output 0: logits or their Softmax, made by a Gemm or MatMul
 * classifier), e.g. one graft finetune wrote. */
typedef enum graft_adapt_method {
    GRAFT_ADAPT_ADABN = 0, /* "adabn": every BatchNorm's statistics re-estimated on the target */
    GRAFT_ADAPT_TENT = 1,  /* "tent": BatchNorm scale and shift trained to minimise the entropy
                              of the predictions (batch statistics), then AdaBN's statistics */
    GRAFT_ADAPT_SHOT = 2,  /* "shot": the classifier frozen, the layers before it trained with
                              information maximisation and clustered pseudo-labels */
    /* With the labelled source, while fine-tuning (graft_finetune with a target): */
    GRAFT_ADAPT_CORAL = 3, /* "coral": Deep CORAL between source and target features */
    GRAFT_ADAPT_MMD = 4,   /* "mmd": DAN's multi-kernel MMD between them */
    GRAFT_ADAPT_DANN = 5   /* "dann": a domain classifier behind a gradient-reversal layer */
} graft_adapt_method;
const char *graft_adapt_method_name(graft_adapt_method m);
graft_status graft_adapt_method_from_name(const char *name, graft_adapt_method *out);

typedef struct graft_finetune_opts {
    const char *layer;         /* NULL (default): replace the classifier; a name: cut there, new
                                  head; "auto": where graft_layer_auto ranks best on the
                                  samples to fine-tune on (pool is then its choice too) */
    graft_pool pool;           /* for a cut map: GRAFT_POOL_MEAN (default), GRID2 or GRID4 */
    graft_head_init head_init; /* GRAFT_HEAD_INIT_PROBE */
    const char *cache_dir;     /* the probe's feature cache (NULL, default: none) */
    double probe_C;            /* the probe's inverse L2 strength, > 0; GRAFT_AUTO (default):
                                  cross-validated */
    graft_bn bn;               /* GRAFT_BN_AUTO */
    const char *freeze;        /* what phase 2 trains besides the head: "all", "last:N" (blocks),
                                  "after:NODE", "pattern:GLOB", ... (see graft finetune --help);
                                  "head": no phase 2; NULL (default): "head" below 20 images per
                                  class ("last:1" when epochs or steps are given), "last:2" below
                                  200, else "all" */
    int head_epochs;           /* phase 1 epochs; 0 skips it; GRAFT_AUTO (default): 0 for a
                                  probe or imprinted head, else about 200 updates (5 to 30) */
    int epochs;                /* phase 2 epochs; 0 skips it; GRAFT_AUTO (default): about 300
                                  updates (5 to 30 epochs) */
    int steps;                 /* > 0: phase 2 gets a budget of this many optimizer updates
                                  (rounded up to whole epochs) whatever the dataset's size,
                                  instead of epochs (which must then be GRAFT_AUTO): what a model
                                  trained from scratch on a few images needs. Early stopping
                                  still applies when there is a validation split. 0 (default):
                                  epochs decide */
    graft_optimizer optimizer; /* GRAFT_OPTIMIZER_ADAMW */
    double lr;                 /* phase 1 learning rate, > 0; GRAFT_AUTO (default): 1e-3 with
                                  AdamW, 0.01 with SGD */
    double lr_ratio;           /* phase 2 rate = lr * lr_ratio (0.1), > 0 */
    double layer_decay;        /* phase 2: rate * decay^(depth from the top), in [0, 1); 0
                                  (default): none */
    double weight_decay;       /* >= 0, 0: none; GRAFT_AUTO (default): 0.01 with AdamW, 1e-4 with
                                  SGD */
    double label_smoothing;    /* in [0, 1): 0.1; 0: none */
    double dropout;            /* before the new head, in [0, 1): 0 (default): none */
    double val_frac;           /* validation fraction, in [0, 1); 0: no split (no early stopping);
                                  GRAFT_AUTO (default): 0 below 20 images per class, 0.2 below
                                  200, else 0.1 */
    int patience;              /* epochs without a lower validation loss before a phase stops
                                  (5), > 0; GRAFT_NEVER: never stops early (the best weights are
                                  still kept) */
    int batch, workers;        /* 32, 2; both > 0 */
    const char *transform;     /* evaluation preprocessing, text form; NULL (default): ImageNet's */
    const char *augment;       /* training transform; NULL (default): the preprocessing with a
                                  random resized crop instead of resize + crop, and a horizontal
                                  flip (none for a head on a 2x2 grid) */
    const char *checkpoint_dir; /* NULL (default): none; else a checkpoint after every epoch */
    int resume;                 /* 1: continue from checkpoint_dir (0) */
    uint64_t seed;              /* 0 */
    graft_progress_fn progress; /* stages "train" (images of each epoch), "probe" (its frozen
                                   features) and "finetune" (notes: the recipe, each epoch's
                                   figures, a resume, an early stop), "checkpoint" and "load"
                                   (warnings). NULL (default) */
    void *progress_ctx;
    int stop_after_epochs;       /* > 0: stop with an error after that many epochs (tests); 0 */
    const graft_dataset *target; /* NULL (default); else unlabelled target images: with adapt
                                    coral, mmd or dann every step also takes a batch of them and
                                    adds adapt_weight x the alignment of their features with the
                                    source's (freeze then defaults to at least last:2); with
                                    adabn, tent or shot the written model is adapted to them by
                                    graft_adapt (this batch, workers, seed and preprocessing;
                                    its other settings at their defaults) */
    graft_adapt_method adapt;    /* GRAFT_ADAPT_ADABN */
    double adapt_weight;         /* > 0: 1 */
} graft_finetune_opts;

void graft_finetune_opts_init(graft_finetune_opts *o);

/* Fine-tunes on the samples `subset` (int64 indices; NULL: all) and writes the model to
 * out_path. *summary (may be NULL; caller frees) is JSON: recipe, train, val, best_epoch,
 * best_val_accuracy, seconds and history (per-epoch arrays phase, epoch, train_loss, train_acc,
 * val_loss, val_acc, lr, seconds); with layer "auto" also layer, pool and layer_auto (the
 * ranking, as graft_layer_auto's); with a target, "adapt": graft_adapt's summary (adabn, tent,
 * shot), or {method, weight, loss (the alignment loss over the last epoch), domain_accuracy
 * (dann: its domain classifier's, over the last epoch; null otherwise)}. */
graft_status graft_finetune(const char *model_path, const graft_dataset *d,
                            const graft_tensor *subset, const graft_finetune_opts *o,
                            const char *out_path, char **summary);
graft_status graft_model_finetune(const graft_model *m, const graft_dataset *d,
                                  const graft_tensor *subset, const graft_finetune_opts *o,
                                  const char *out_path, char **summary);

typedef struct graft_adapt_opts {
    graft_adapt_method method;  /* GRAFT_ADAPT_ADABN */
    const char *transform;      /* the target's preprocessing, text form; NULL (default): the
                                  model's graft.transform metadata, else ImageNet's */
    int epochs;                 /* tent, shot: passes over the target, > 0; GRAFT_AUTO (default):
                                  1 (tent), 10 (shot) */
    double lr;                  /* > 0; GRAFT_AUTO (default): 1e-3 (tent: Adam; shot: SGD with
                                  Nesterov momentum 0.9, weight decay 1e-3, cosine to a tenth) */
    double shot_beta;           /* weight of SHOT's pseudo-label loss, >= 0 (0.3) */
    int batch, workers;         /* 64, 2; both > 0 */
    uint64_t seed;              /* 0 */
    graft_progress_fn progress; /* stages "train" (images of each epoch) and "adapt" (notes) */
    void *progress_ctx;
} graft_adapt_opts;

void graft_adapt_opts_init(graft_adapt_opts *o);

/* Adapts the model to the images of `target` (open it with graft_dataset_open_unlabeled; labels
 * it has are only reported) and writes it to out_path: the same inputs, outputs and metadata
 * with the adapted weights, and "graft.adapt". *summary (may be NULL; caller frees) is JSON:
 * method, target, labelled, batchnorms, params_trained, entropy_before/after (mean entropy of
 * the predictions), diversity_before/after (entropy of the mean prediction), accuracy_before/
 * after (null without labels), pseudo_labels {count, confidence, accuracy} (shot), loss_first/
 * loss_last, harm (the predictions collapsed onto few classes: diversity halved) and seconds. */
graft_status graft_adapt(const char *model_path, const graft_dataset *target,
                         const graft_adapt_opts *o, const char *out_path, char **summary);
graft_status graft_model_adapt(const graft_model *m, const graft_dataset *target,
                               const graft_adapt_opts *o, const char *out_path, char **summary);

/* ---- evaluation ----------------------------------------------------------------------------
 * Accuracy, top-5, per-class precision/recall/F1, confusion matrix and expected calibration
 * error (15 bins) of probabilities against labels, as JSON (the caller frees it); with group
 * ids, per-group accuracy and the worst group. class_names / group_names may be NULL. */
graft_status graft_evaluate_json(const graft_tensor *prob, const graft_tensor *y,
                                 const graft_tensor *group, const char *const *class_names,
                                 const char *const *group_names, char **json);
/* The same evaluation as one self-contained HTML page (inline SVG: learning curves, confusion
 * matrix, reliability diagram, per-class and per-group tables), written atomically to path.
 * history (may be NULL): the learning curves as graft_finetune's summary "history" object. */
graft_status graft_evaluate_report(const graft_tensor *prob, const graft_tensor *y,
                                   const graft_tensor *group, const char *const *class_names,
                                   const char *const *group_names, const char *title,
                                   const char *recipe, const char *history, double seconds,
                                   const char *path);

#ifdef __cplusplus
}
#endif
#endif
