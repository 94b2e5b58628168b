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
 * Runs a model cut at a layer over a dataset and pools each sample's map into one row. */
typedef struct graft_extract_opts {
    const char *layer;     /* a value or node name (`graft info` lists cut points); NULL: the
                               input of the model's classifier */
    const char *pool;      /* "mean" (global average; default), "grid2" (mean over a 2x2 grid,
                               PyTorch's adaptive_avg_pool2d(x, 2): 4 values per channel),
                               "grid4" (4x4, 16 values; the map's sides multiples of 4), "none" */
    const char *transform; /* text form (see graft_dataset_load); NULL: ImageNet's default */
    int batch, workers;    /* 0: 32 and 2 */
    const char *cache_dir; /* NULL: no cache. Keyed by the model's content, the layer, the
                               pooling, the preprocessing and the samples' files */
    int skip_bad;          /* leave unreadable images out (reported on stderr) instead of failing */
    int quiet;             /* no progress line on stderr */
} graft_extract_opts;

/* Which layer and pooling to extract from, measured: every candidate map (the cut points and
 * the maps inside feature pyramids, at most max_candidates, 0: 32) pooled by its mean and over
 * a 2x2 grid, scored by a 3-fold cross-validated linear probe (C = 1) on the samples `subset`
 * (int64 indices; NULL: all) and ranked by its held-out log-loss. *ranking (JSON array, best
 * first; caller frees) lists layer, pool, dim, log_loss and accuracy; *layer and *pool (caller
 * frees) are the best. */
graft_status graft_layer_auto(const char *model_path, const graft_dataset *d,
                              const graft_tensor *subset, const graft_extract_opts *o,
                              int max_candidates, char **ranking, char **layer, char **pool);

/* features (n, dim) float32, labels (n) int32, index (n) int64 (the dataset sample of each row);
 * any output pointer may be NULL. *cached (may be NULL) says whether the cache answered. */
graft_status graft_extract(const char *model_path, const graft_dataset *d,
                           const graft_extract_opts *o, graft_tensor **features,
                           graft_tensor **labels, graft_tensor **index, int *cached);

/* ---- heads on features --------------------------------------------------------------------
 * A classifier fitted on feature rows (from graft_extract): multinomial logistic regression
 * (scikit-learn's LogisticRegression objective, L-BFGS; C chosen by 5-fold stratified
 * cross-validation over logspace(-4, 4) when C <= 0; C = 1 when a class has fewer than 5 rows), an MLP, kNN (cosine) or the nearest class
 * mean. The feature normalisation is part of the head. */
typedef struct graft_head graft_head;

typedef struct graft_fit_opts {
    const char *kind; /* "logreg" (default), "mlp", "knn", "ncm" */
    const char *norm; /* "standardize" (default for logreg and mlp), "l2" (default for knn and
                           ncm), "none" */
    double C;         /* logreg: inverse L2 strength; <= 0: cross-validated */
    int hidden;       /* mlp: hidden units (0: 256) */
    int epochs;       /* mlp (0: its default) */
    int k;            /* knn (0: its default) */
    uint64_t seed;
} graft_fit_opts;

/* X (n, dim) float32, y (n) int32 ids in [0, nclass). */
graft_status graft_head_fit(const graft_tensor *X, const graft_tensor *y, int nclass,
                            const graft_fit_opts *o, graft_head **out);
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
 * and scores them. Methods: "simpleshot" (centre on the support mean, L2-normalise, nearest
 * class mean; default), "knn" (cosine nearest neighbour), "imprint" (normalised class means as
 * the weights of a cosine classifier). *mean and *ci95 are the mean accuracy and its 95 %
 * interval half-width. */
typedef struct graft_fewshot_opts {
    const char *method;
    int way, shot, query, episodes; /* 0: 5, 1, 15, 600 */
    uint64_t seed;
} graft_fewshot_opts;

graft_status graft_fewshot_eval(const graft_tensor *X, const graft_tensor *y, int nclass,
                                const graft_fewshot_opts *o, double *mean, double *ci95);

/* ---- fine-tuning -----------------------------------------------------------------------------
 * The recipe of timm and the Keras transfer guide in one call: the classifier is replaced by a
 * new linear head for the dataset's classes (or the model is cut at `layer` and the head reads
 * that map, pooled); phase 1 trains the head on the frozen trunk, phase 2 unfreezes `freeze` at
 * lr * lr_ratio; AdamW or SGD with warm-up + cosine, label smoothing, augmentation, early
 * stopping on a stratified validation split with the best weights kept, BatchNorms of frozen
 * layers in inference mode. Zero means "chosen from the dataset's size" (the summary's recipe
 * says what was chosen). The result is one ONNX file with output "probabilities" and the class
 * names, preprocessing, recipe and learning curves in its metadata, which graft predict/eval
 * and onnxruntime read. */
typedef struct graft_finetune_opts {
    const char *layer;       /* NULL: replace the classifier; a name: cut there, new head */
    const char *pool;        /* for a cut map: "mean" (default), "grid2" or "grid4" */
    const char *head_init;   /* "probe" (default): phase 1 fits a logistic regression on the frozen
                               features (cross-validated C, as graft fit) and starts the head
                               from it (LP-FT); "imprint": the weights are the normalised class
                               means of the normalised features (weight imprinting; with
                               epochs < 0 the few-shot classifier as it is); "random": torch's
                               Linear init, then head epochs */
    const char *cache_dir;   /* the probe's feature cache (NULL: none) */
    double probe_C;          /* the probe's inverse L2 strength; 0: cross-validated */
    const char *bn;          /* "train": BatchNorms that train use batch statistics (timm);
                               "frozen": all stay in inference mode, scale and shift still
                               train (the Keras guide); NULL: train when freeze is "all" and the
                               head starts at random or there are 200+ images per class, else
                               frozen (a probe head was fitted on the running statistics) */
    const char *freeze;      /* what phase 2 trains besides the head: "all", "last:N" (blocks),
                               "after:NODE", "pattern:GLOB", ... (see graft finetune --help);
                               "head": no phase 2 */
    int head_epochs, epochs; /* phase 1 and phase 2 epochs; < 0 skips the phase */
    const char *optimizer;   /* "adamw" (default) or "sgd" */
    double lr;               /* phase 1 learning rate (1e-3 AdamW, 0.01 SGD) */
    double lr_ratio;         /* phase 2 rate = lr * lr_ratio (0.1) */
    double layer_decay;      /* phase 2: rate * decay^(depth from the top); 0: none */
    double weight_decay;     /* 0.01 AdamW, 1e-4 SGD; < 0: none */
    double label_smoothing;  /* 0.1; < 0: none */
    double dropout;          /* before the new head (0: none) */
    double val_frac;         /* validation fraction; < 0: no split (no early stopping) */
    int patience;            /* epochs without improvement before a phase stops (5); < 0: never */
    int batch, workers;      /* 32, 2 */
    const char *transform;   /* evaluation preprocessing, text form (default ImageNet's) */
    const char *augment;     /* training transform; NULL: the preprocessing with a random resized
                               crop instead of resize + crop, and a horizontal flip (none for a
                               head on a 2x2 grid) */
    const char *checkpoint_dir; /* NULL: none; else a checkpoint after every epoch */
    int resume;                 /* continue from checkpoint_dir */
    uint64_t seed;
    int quiet;             /* no progress lines on stderr */
    int stop_after_epochs; /* > 0: stop with an error after that many epochs (tests) */
    int steps;             /* > 0: phase 2 gets a budget of this many optimizer updates (rounded
                               up to whole epochs) whatever the dataset's size, instead of
                               epochs: what a model trained from scratch on a few images needs.
                               Early stopping still applies when there is a validation split. */
} graft_finetune_opts;

/* Fine-tunes on the samples `subset` (int64 indices; NULL: all) and writes the model to
 * out_path. *summary (may be NULL; caller frees) is JSON: recipe, train, val, best_epoch,
 * best_val_accuracy, seconds and history (per-epoch arrays phase, epoch, train_loss, train_acc,
 * val_loss, val_acc, lr, seconds). */
graft_status graft_finetune(const char *model_path, const graft_dataset *d,
                            const graft_tensor *subset, const graft_finetune_opts *o,
                            const char *out_path, char **summary);

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
