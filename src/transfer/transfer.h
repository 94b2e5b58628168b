/* transfer — the transfer-learning recipes on top of the engine: heads fitted on cached
 * features (fit.c, head_*.c), few-shot learning, fine-tuning recipes, layer choice, and the
 * evaluation (metrics.c) and report (report.c) of a model. Depends on core, data, graph, io, train.
 *
 * Features are float32 rows (n, dim), labels int32 class ids in [0, nclass). */
#ifndef GR_TRANSFER_H
#define GR_TRANSFER_H

#include "core/core.h"
#include "data/data.h"
#include "graph/graph.h"
#include "io/io.h"

/* numpy.argmax of a row of k scores: the first of equal maxima (the lowest class id). */
static inline int gr_argmax(const float *p, int k)
{
    int best = 0;
    for (int c = 1; c < k; c++)
        if (p[c] > p[best]) best = c;
    return best;
}

/* ==== feature extraction with a cache (extract.c) ========================================= */

/* Pooling (GR_POOL_*, gr_pool_side, gr_pool_check): graph/graph.h. */

typedef struct gr_extract_opts {
    const char *layer;     /* a value or node name (graft info lists cut points); NULL: the
                                classifier's input (the node before the head) */
    int pool;              /* rank-4 maps: global mean, mean over a 2x2 or 4x4 grid (PyTorch's
                                adaptive_avg_pool2d(x, 2 or 4), 4 or 16 values per channel), or
                                flatten */
    gr_transform t;        /* the preprocessing */
    int batch, workers;    /* 0: 32 and 2 */
    int bad;               /* GR_BAD_FATAL or GR_BAD_SKIP */
    const char *cache_dir; /* NULL: no cache */
    int use_ref;           /* reference kernels (tests) */
    gr_progress progress;  /* images done (stage below), a skipped sample, an unusable cache */
    const char *stage;     /* the progress stage; NULL: "extract" */
} gr_extract_opts;

/* Features of some samples of a dataset: rows in the order of idx (skipped bad samples are
 * left out; index[] tells which sample each row is). */
typedef struct gr_features {
    int64_t n;
    int dim;
    float *X;        /* (n, dim) */
    int32_t *y;      /* [n] */
    int64_t *index;  /* [n] dataset indices */
    int cached;      /* read from the cache (nothing computed) */
    char key[17];    /* the cache key (hex), "" without a cache */
    char layer[256]; /* the value the features come from */
    double seconds;
} gr_features;

/* Runs the model, cut at the layer, on the samples idx[0..nidx) (NULL: all) and pools. With a
 * cache folder, the result is stored under a key made of the model's content, the layer, the
 * pooling, the preprocessing and the samples (files with their sizes and modification times,
 * or the in-memory source and its indices), and an unchanged request is read back instead of
 * recomputed. */
int gr_extract(const gr_model *m, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
               const gr_extract_opts *o, gr_features *out);
void gr_features_free(gr_features *f);

/* Features of several layers in one pass over the samples (no cache): out[k] from layers[k]
 * pooled by pool[k]. */
int gr_extract_layers(const gr_model *m, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
                      const char *const *layers, const int *pool, int n, const gr_extract_opts *o,
                      gr_features *out);
/* The layers worth trying as features: the cut points and the outputs of merges (Add, Concat,
 * Sum: the maps inside feature pyramids), rank-4 float maps of at least 2x2 for the transform's
 * input size, thinned to at most max evenly spaced in execution order. *names malloc'd; with
 * sides, *sides (malloc'd) holds each map's H and W: (*sides)[2i], (*sides)[2i + 1]. */
int gr_layer_candidates(const gr_model *m, const gr_transform *t, int max, char ***names,
                        int64_t **sides, int *count);

/* ==== heads on features (fit.c; one file a kind: head_*.c, listed in heads.h) ============== */

enum { GR_HEAD_LOGREG = 0, GR_HEAD_MLP = 1, GR_HEAD_KNN = 2, GR_HEAD_NCM = 3 };
enum { GR_FEAT_NONE = 0, GR_FEAT_STANDARDIZE = 1, GR_FEAT_L2 = 2 };

typedef struct gr_fit_opts {
    int kind; /* GR_HEAD_* */
    int norm; /* GR_FEAT_*: applied to features before the head, saved with it */
    /* logistic regression (multinomial, L-BFGS on the full batch, as scikit-learn's
     * LogisticRegression(solver="lbfgs")): minimise 0.5 |W|^2 + C * sum of cross-entropies,
     * intercept not penalised. C <= 0: chosen by stratified k-fold cross-validation over
     * ncs values logspace(-4, 4), best mean accuracy, then refit on all data
     * (LogisticRegressionCV's defaults: ncs 10, folds 5); when a class has fewer rows than
     * folds, C = 1 instead (LogisticRegression's default; cv_acc stays -1). */
    double C;
    int ncs, folds;
    int max_iter; /* L-BFGS iterations (0: 1000) */
    double tol;   /* gradient tolerance (0: 1e-4, scikit-learn's) */
    /* MLP: dim -> hidden (ReLU, dropout) -> nclass, AdamW, cross-entropy */
    int hidden;
    float dropout;
    int epochs;
    double lr, weight_decay;
    int batch; /* MLP minibatch rows, shuffled each epoch (0: the full batch) */
    /* kNN: k neighbours by cosine similarity, vote weighted by similarity */
    int k;
    uint64_t seed;
    int threads;
} gr_fit_opts;

/* Defaults: norm L2 for KNN and NCM, else STANDARDIZE; C 1, ncs 10, folds 5, max_iter 1000,
 * tol 1e-4; hidden 256, dropout 0.1, epochs 50, lr 1e-3, weight_decay 1e-2, batch 128; k 10;
 * seed 0; threads 0 (graft's setting). */
void gr_fit_defaults(gr_fit_opts *o, int kind);

typedef struct gr_head {
    int kind, nclass, dim, norm;
    float *mu, *sd; /* GR_FEAT_STANDARDIZE: [dim] */
    float *W, *b;   /* LOGREG, NCM: (nclass, dim), [nclass]; MLP: first layer (hidden, dim) */
    float *W2, *b2; /* MLP second layer (nclass, hidden), [nclass] */
    int hidden;
    float *X; /* KNN: the normalised training rows (n, dim) */
    int32_t *y;
    int64_t n;
    int k;
    double C;      /* LOGREG: the C used (chosen by CV when asked) */
    double cv_acc; /* LOGREG with CV: the best mean fold accuracy */
    char *origin;  /* malloc'd JSON saying where the features come from (model, layer,
                              pooling, transform, class names), saved as "graft_origin"; or NULL */
    /* what the fit did (not saved): LOGREG: L-BFGS iterations of the final fit, and with CV
     * the fold accuracies (folds, ncs) row-major and the Cs tried; MLP: mean training loss per
     * epoch [epochs] */
    int iters;
    int cv_folds, cv_ncs;
    double *cv_scores, *cv_Cs;
    double *train_loss;
    int epochs;
} gr_head;

/* Fits a head on rows X (n, dim) with labels y in [0, nclass). h is zeroed first; free it with
 * gr_head_free (also after an error).
 * Details (fit.c and the kind's head_*.c):
 * - normalisation: STANDARDIZE as scikit-learn's StandardScaler (mean, population std; a
 *   zero std counts as 1), L2 scales each row to unit length (zero rows stay zero). Computed on
 *   all of X, also when C is chosen by cross-validation.
 * - LOGREG runs scikit-learn 1.2's objective scaling, sum of cross-entropies + |W|^2 / (2C)
 *   (same minimiser as above), so tol means what it means there: L-BFGS stops when
 *   max |gradient| <= tol, or the relative decrease of the objective <= 2.2e-16 * 1e7 (scipy's
 *   ftol), or after max_iter iterations. Memory 10, More-Thuente line search (ftol 1e-3,
 *   gtol 0.9, at most 20 evaluations, restart from steepest descent on failure) as L-BFGS-B.
 *   Cross-validation: gr_stratified_folds, each fold fitted over Cs in increasing order, warm
 *   started from the previous C; the refit starts from the folds' mean coefficients at the best
 *   C (as LogisticRegressionCV). Folds run in parallel.
 * - MLP: PyTorch's Linear initialisation (uniform +-1/sqrt(fan_in)) from seed, inverted
 *   dropout, train/'s AdamW (gr_optim; betas 0.9, 0.999, eps 1e-8; decay on the weight
 *   matrices, not the biases), mean cross-entropy per batch.
 * - KNN keeps the training rows (normalised, then scaled to unit length); a query's k most
 *   similar rows (ties: lower row index) vote with weight max(similarity, 0) (all-zero weights:
 *   one vote each); probabilities are the normalised votes.
 * - NCM: class means of the normalised rows. Logits are -|x - mean|^2, or with L2 the cosine
 *   similarity to the mean; W holds the means (unit length with L2), b[c] is 0, or -inf for a
 *   class without training rows (probability 0). */
int gr_head_fit(const float *X, const int32_t *y, int64_t n, int dim, int nclass,
                const gr_fit_opts *o, gr_head *h);
/* Class probabilities (n, nclass) for rows X (softmax of the logits; kNN: normalised votes). */
int gr_head_predict(const gr_head *h, const float *X, int64_t n, float *prob);
void gr_head_free(gr_head *h);

/* A head as a safetensors file (atomic): its arrays (W, b, W2, b2, mu, sd, X, y as present)
 * and metadata graft_head (kind: logreg, mlp, knn, ncm), norm (none, standardize, l2), nclass,
 * dim, hidden, k, C, cv_acc. Load validates every shape against the metadata. */
int gr_head_save(const gr_head *h, const char *path);
int gr_head_load(const char *path, gr_head *h);

/* scikit-learn's StratifiedKFold(n_splits=folds) without shuffling: classes in order of first
 * appearance; class k's rows, in data order, go to fold 0, 1, ... in blocks whose sizes come
 * from dealing the class-sorted labels round-robin. fold[i] in [0, folds). */
int gr_stratified_folds(const int32_t *y, int64_t n, int folds, int32_t *fold);

/* ==== automatic layer choice (layer_auto.c) =============================================== */

typedef struct gr_layer_score {
    char layer[256];
    int pool; /* GR_POOL_MEAN, GR_POOL_GRID2 or GR_POOL_GRID4 */
    int dim;
    double cv_acc;     /* cross-validated linear-probe accuracy */
    double cv_logloss; /* its mean held-out log-loss: the ranking */
    int order;         /* the candidate's place in execution order */
} gr_layer_score;

/* Scores candidate layers (gr_layer_candidates: max_candidates evenly spaced ones (0: 32), then
 * up to as many more next to the best three) pooled by their mean and a 2x2 grid, and the
 * best eight also on a 4x4 grid (where their sides are multiples of 4), on the samples idx
 * (NULL: all)
 * by a 3-fold CV probe (C = 1), best first: lowest held-out log-loss (ties: the earlier layer).
 * See layer_auto.c for why the log-loss. */
int gr_layer_auto(const gr_model *m, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
                  const gr_extract_opts *o, int max_candidates, gr_layer_score **scores,
                  int *count);

/* ==== few-shot learning (fewshot.c) ======================================================= */

enum { GR_FS_SIMPLESHOT = 0, GR_FS_KNN = 1, GR_FS_IMPRINT = 2, GR_FS_TRANSDUCTIVE = 3 };
/* Transductive refinement: GR_FS_TD_ITERS rounds of soft k-means with assignments
 * softmax(-GR_FS_TD_BETA |q - p_c|^2) on the prepared (unit-length) rows. */
enum { GR_FS_TD_ITERS = 10 };
#define GR_FS_TD_BETA 5.0

/* Episodic evaluation: each episode draws `way` classes (among those with at least
 * shot + query rows), `shot` support and `query` query rows per class, classifies the queries
 * from the support alone and scores their accuracy. Methods:
 *   simpleshot  subtract the support mean, L2-normalise, nearest class prototype (Wang et al.
 *               2019, with the episode's support standing in for the base-class mean);
 *   knn         cosine nearest neighbour (k = 1) among the support rows;
 *   imprint     weights = L2-normalised class means of the L2-normalised rows (Qi et al. 2018),
 *               prediction = the largest cosine (no centring);
 *   transductive  SimpleShot's rows and prototypes, then refined with the episode's unlabelled
 *               queries by soft k-means (Ren et al. 2018): GR_FS_TD_ITERS times, each query
 *               weighs softmax_c(-beta |q - p_c|^2) in class c, p_c = (sum of c's support + sum
 *               of weighted queries) / (shot + sum of weights). Measured on PP-OCR's p2o.Add.75
 *               (4x4 grid) -> Fashion-MNIST, 300 5-way episodes: 1-shot 66.7 -> 72.7 %, 5-shot
 *               80.6 -> 80.2 % (beta 5, 10 rounds; 1 and 20 did worse at 1 shot).
 * Ties go to the lower class. */
typedef struct gr_fewshot_opts {
    int method, way, shot, query, episodes;
    uint64_t seed;
} gr_fewshot_opts;

typedef struct gr_fewshot_result {
    double mean, ci95; /* mean accuracy over episodes and 1.96 * std / sqrt(episodes) */
    int episodes;
    double *acc; /* [episodes], malloc'd (gr_fewshot_free) */
} gr_fewshot_result;

int gr_fewshot_eval(const float *X, const int32_t *y, int64_t n, int dim, int nclass,
                    const gr_fewshot_opts *o, gr_fewshot_result *r);
/* One episode with given rows: support[way * shot] (grouped by episode class), query[way *
 * query]; writes the predicted episode class of each query. For tests and custom protocols. */
int gr_fewshot_episode(const float *X, int dim, const int64_t *support, const int64_t *query,
                       int way, int shot, int nquery, int method, int32_t *pred);
void gr_fewshot_free(gr_fewshot_result *r);

/* ==== fine-tuning (finetune.c) ============================================================= */

/* The recipe (see finetune.c): new head, phase 1 on the head alone, phase 2 with more unfrozen.
 * Negative numbers (and NULL freeze) mean "chosen from the dataset's size" (gr_ft_defaults
 * sets them; the result's recipe says what was chosen): with s samples per class,
 *   validation fraction  0 (s < 20), 0.2 (s < 200), 0.1;
 *   phase 2 unfreezes    nothing (s < 20: the probe alone), last:2 (s < 200), all;
 *   epochs               about 300 updates in phase 2, 5 to 30 epochs; phase 1: none after the
 *                        probe, else about 200 updates, 5 to 30 epochs;
 *   lr 1e-3 (AdamW) or 0.01 (SGD, momentum 0.9), phase 2 at 0.1 x; weight decay 0.01 (AdamW)
 *   or 1e-4; label smoothing 0.1; patience 5 epochs; augmentation: the preprocessing with a
 *   random resized crop (scale 0.25..1) in place of resize + crop, and a horizontal flip
 *   (none when the head reads a grid, whose cells a flip would swap). */
enum { GR_HEAD_INIT_PROBE = 0, GR_HEAD_INIT_RANDOM = 1, GR_HEAD_INIT_IMPRINT = 2 };
enum { GR_BN_AUTO = 0, GR_BN_TRAIN = 1, GR_BN_FROZEN = 2 };

typedef struct gr_ft_opts {
    int head_init;         /* GR_HEAD_INIT_PROBE: phase 1 starts with a linear probe fitted on
                                   the frozen features (LP-FT); RANDOM: torch's Linear init;
                                   IMPRINT: normalised class means of the normalised features */
    const char *cache_dir; /* feature cache for the probe (NULL: none) */
    double probe_C;        /* the probe's C; <= 0: cross-validated (as graft fit) */
    int bn;                /* GR_BN_TRAIN: BatchNorms whose parameters train use batch
                                   statistics (timm); GR_BN_FROZEN: every BatchNorm stays in
                                   inference mode, its scale and shift still train (the Keras
                                   guide); AUTO: train when phase 2 trains "all" from a random
                                   head or with 200+ samples per class, else frozen */
    const char *layer;     /* NULL: replace the model's classifier; else cut here, new head;
                                   "auto": where gr_layer_auto says (its pooling too) */
    int pool;              /* for a cut rank-4 map: GR_POOL_MEAN, GR_POOL_GRID2 or GR_POOL_GRID4 */
    const char *freeze;    /* what phase 2 trains besides the head (gr_freeze_select spec);
                                   "head": no phase 2 */
    int head_epochs, epochs; /* phase 1, phase 2 (0 skips the phase) */
    int steps;               /* > 0: phase 2 takes this many updates, rounded up to whole
                                   epochs (epochs then follows from the batches per epoch) */
    int opt;                 /* GR_ADAMW or GR_SGD */
    double lr, lr_ratio, layer_decay, weight_decay;
    float label_smoothing, dropout;
    double val_frac;
    int patience; /* 0: no early stop (the best weights are still kept) */
    int batch, workers;
    gr_transform eval_t, train_t;
    int has_train_t;      /* train_t given (else derived from eval_t) */
    const char *ckpt_dir; /* NULL: no checkpoints */
    int resume;
    uint64_t seed;
    gr_progress progress; /* epochs, phases, the probe, a resume (graft_progress stages) */
    int use_ref;
    int stop_after_epochs;    /* > 0: fail after that many epochs in all (tests of --resume) */
    const gr_dataset *target; /* NULL; else unlabelled target images the features align with */
    int adapt;                /* with a target: GR_ADAPT_CORAL, MMD or DANN */
    double adapt_weight;      /* the alignment loss's weight (> 0; <= 0: 1) */
} gr_ft_opts;

void gr_ft_defaults(gr_ft_opts *o);

typedef struct gr_ft_epoch {
    int phase, epoch; /* epoch counts from 1 in each phase */
    double train_loss, train_acc, val_loss, val_acc, lr, seconds; /* val: NaN without a split */
} gr_ft_epoch;

typedef struct gr_ft_result {
    gr_ft_epoch *hist;
    int nhist, caphist;
    int best; /* the epoch (index into hist) whose weights were kept, -1: none */
    double best_val;
    int64_t ntrain, nval;
    double seconds;
    char recipe[2048];       /* the settings used, as text */
    gr_layer_score *ranking; /* layer "auto": gr_layer_auto's scores, best first (malloc'd) */
    int nranking;
    char layer[256];     /* layer "auto": the layer chosen */
    int adapt;           /* with a target: the method (GR_ADAPT_CORAL, MMD, DANN) and */
    double adapt_weight; /* its weight */
    double adapt_loss;   /* the alignment loss's mean over the last epoch (NaN: none) */
    double domain_acc;   /* dann: the domain classifier's accuracy over the last epoch (0.5: the
                          domains look alike to it; near 1: not aligned) */
} gr_ft_result;

/* Fine-tunes the model on the samples idx[0..nidx) (NULL: all) of ds and writes the adapted
 * model to out_path (ONNX, output "probabilities", metadata graft.classes, graft.transform,
 * graft.recipe, graft.history). res is filled also on failure (free with gr_ft_result_free). */
int gr_finetune(const gr_model *m, const gr_dataset *ds, const int64_t *idx, int64_t nidx,
                const gr_ft_opts *o, const char *out_path, gr_ft_result *res);
void gr_ft_result_free(gr_ft_result *r);
/* The learning curves as JSON: per-epoch arrays phase, epoch, train_loss, train_acc, val_loss,
 * val_acc (null without a split), lr, seconds, and "best" (malloc'd; NULL when out of memory). */
char *gr_ft_history_json(const gr_ft_result *r);

/* ==== self-training (semi.c) ============================================================== */

typedef struct gr_semi_opts {
    int rounds;       /* refits after the first, at most */
    double threshold; /* a pseudo-label needs more confidence than this */
    int balance;      /* cap each class's additions a round (see semi.c) */
} gr_semi_opts;
typedef struct gr_semi_round {
    int64_t npseudo;              /* rows the round pseudo-labelled (0: it stopped there) */
    double mean_conf, pseudo_acc; /* their mean confidence; accuracy against yu (NaN without) */
} gr_semi_round;
/* Self-training (see semi.c): h the last round's head (free with gr_head_free, also on error);
 * rounds[so->rounds] the rounds' figures; yu (nu) labels of XU for reporting only, or NULL. */
int gr_self_train(const float *X, const int32_t *y, int64_t n, const float *XU, int64_t nu, int dim,
                  int nclass, const gr_fit_opts *fo, const gr_semi_opts *so, const int32_t *yu,
                  gr_head *h, gr_semi_round *rounds);

/* ==== closed-form CORAL on features (coral.c) ============================================== */

/* out (ns, d): the source rows Xs aligned to the target rows Xt (nt, d) by CORAL (see coral.c:
 * per-domain standardisation, whitening by Cs + I, re-colouring by Ct + I, the target's units). */
int gr_coral_align(const float *Xs, int64_t ns, const float *Xt, int64_t nt, int64_t d, float *out);

/* ==== adaptation without labels (adapt.c) ================================================== */

/* adabn, tent and shot adapt a trained model without its source (gr_adapt); coral, mmd and dann
 * align the source and target features while fine-tuning (gr_finetune with a target). */
enum {
    GR_ADAPT_ADABN = 0,
    GR_ADAPT_TENT = 1,
    GR_ADAPT_SHOT = 2,
    GR_ADAPT_CORAL = 3,
    GR_ADAPT_MMD = 4,
    GR_ADAPT_DANN = 5,
    GR_ADAPT_NMETHOD = 6
};
const char *gr_adapt_method_name(int m); /* "adabn", "tent", "shot", "coral", "mmd", "dann" */

typedef struct gr_adapt_opts {
    int method;       /* GR_ADAPT_* */
    gr_transform t;   /* the target's preprocessing (fixed size) */
    int epochs;       /* tent, shot: passes over the target; <= 0: 1 (tent), 10 (shot) */
    double lr;        /* <= 0: 1e-3 (tent: Adam; shot: SGD, Nesterov momentum 0.9, weight decay
                         1e-3, cosine to a tenth) */
    double shot_beta; /* weight of SHOT's pseudo-label cross-entropy; < 0: 0.3 */
    int batch;        /* <= 0: 64 */
    int workers;
    uint64_t seed;
    gr_progress progress; /* stage "train" per batch, "adapt" notes per epoch */
    int use_ref;
} gr_adapt_opts;

typedef struct gr_adapt_result {
    int64_t ntarget, nlabeled;      /* target images; those with a label (for the accuracies) */
    int nbn;                        /* BatchNorm nodes in the model */
    int64_t nparams;                /* parameters trained (tent, shot) */
    double ent_before, ent_after;   /* mean entropy of the predictions on the target (nats) */
    double div_before, div_after;   /* entropy of the mean prediction: the classes' diversity */
    double acc_before, acc_after;   /* on the target's labels (reporting only); NaN without */
    int64_t npseudo;                /* shot's last round: pseudo-labels, their mean predicted */
    double pseudo_conf, pseudo_acc; /* probability, their accuracy (NaN without labels) */
    double loss_first, loss_last;   /* mean training loss of the first and last epochs */
    int harm;                       /* the predictions collapsed: diversity fell by half */
    double seconds;
} gr_adapt_result;

/* Adapts the classifier m (output 0: logits, or a Softmax of them, made by a Gemm/MatMul
 * classifier) to the images of target (labels, if any, only reported) and writes it to out_path
 * with its inputs, outputs and metadata, plus "graft.adapt". See adapt.c for the methods. */
int gr_adapt(const gr_model *m, const gr_dataset *target, const gr_adapt_opts *o,
             const char *out_path, gr_adapt_result *res);

/* ==== export (export.c) =================================================================== */

/* The model cut at `layer` (NULL: the classifier's input), the pooling, the head's feature
 * normalisation, the head and a Softmax, as one ONNX file with output "probabilities"; the
 * class names (a JSON array, may be NULL), layer, pooling and transform go into its metadata.
 * kNN heads are refused. Atomic. */
/* The last step of both exports: Softmax(axis 1) of value `logits` becomes the only output,
 * "probabilities" (N, nclass); the pairs kv[2i] = kv[2i + 1] join the metadata; then prune
 * and save atomically. */
int gr_export_finish(struct gr_graph *g, int logits, int nclass, const char *const *kv, int nkv,
                     const char *out_path);
int gr_export_head(const char *model_path, const gr_head *h, const char *layer, int pool,
                   const gr_transform *t, const char *classes_json, const char *out_path);

/* ==== evaluation (metrics.c) =============================================================== */

/* The prediction of a row is its argmax (ties: the lowest class id, as numpy.argmax). */
typedef struct gr_metrics {
    int64_t n;
    int nclass;
    double accuracy, top5;           /* top5: top-k with k = min(5, nclass) */
    int topk;                        /* that k */
    double *precision, *recall, *f1; /* [nclass] (0 where undefined, as scikit-learn's
                                              zero_division=0) */
    int64_t *support;                /* [nclass]: rows whose true class it is */
    double macro_f1;                 /* mean F1 over the classes present in y or in the
                                              predictions (scikit-learn's f1_score default) */
    int nclass_present;              /* how many classes that mean is over */
    int64_t *confusion;              /* (nclass, nclass): row = true class, col = predicted */
    /* calibration (Guo et al. 2017): nbins equal-width bins over the top-class confidence c,
     * bin b = (b/nbins, (b+1)/nbins], c = 0 in bin 0 (c outside [0, 1] is clamped into the
     * first or last bin). Empty bins have acc = conf = 0 and add nothing to the ECE. */
    int nbins;
    double ece;                 /* sum over bins of |acc - conf| * count / n */
    double *bin_acc, *bin_conf; /* [nbins]: mean correctness and mean confidence */
    int64_t *bin_count;         /* [nbins] */
    /* per group (when groups are given) */
    int ngroup;
    double *group_acc; /* [ngroup] (0 for an empty group) */
    int64_t *group_n;  /* [ngroup] */
    int worst_group;   /* lowest accuracy among non-empty groups (ties: lowest
                                              index), -1 without groups */
} gr_metrics;

/* prob (n, nclass), finite; y true ids in [0, nclass); group ids in [0, ngroup) or NULL;
 * nbins (0: 15). n >= 1, nclass >= 2. Top-k counts row i as a hit when fewer than k classes
 * rank above its true class, ranking by probability and, among equals, by lower id (so top-1
 * equals the accuracy; scikit-learn's top_k_accuracy_score breaks ties the other way). On
 * failure *m is left zeroed and nothing is allocated. */
int gr_metrics_compute(const float *prob, const int32_t *y, int64_t n, int nclass,
                       const int32_t *group, int ngroup, int nbins, gr_metrics *m);
void gr_metrics_free(gr_metrics *m);

/* The k largest off-diagonal cells of the confusion matrix (count > 0), by count, then true
 * class, then predicted class. Returns how many were written to out (<= k). */
typedef struct gr_confusion_cell {
    int truth, pred;
    int64_t count;
} gr_confusion_cell;
int gr_metrics_top_confusions(const gr_metrics *m, int k, gr_confusion_cell *out);

/* ==== report (report.c) ==================================================================== */

/* A self-contained HTML page: inline CSS and SVG, no script, no external resource or URL.
 * Every text from data (title, recipe, class, group and curve names) is escaped; extra_html is
 * inserted as is. Numbers are written as: accuracy, top-k, group accuracies as percentages
 * "%.2f%%"; macro F1, precision, recall, F1 "%.3f"; ECE "%.4f"; time "%.1f s"; peak memory
 * "%.1f MB". The confusion matrix is a heat map up to GR_REPORT_MAX_HEATMAP classes, else a
 * table of the GR_REPORT_TOP_CONFUSIONS largest confusions. */
enum { GR_REPORT_MAX_HEATMAP = 50, GR_REPORT_TOP_CONFUSIONS = 20 };

typedef struct gr_curve {
    const char *name;    /* e.g. "train loss", "val accuracy" */
    const double *x, *y; /* [n]; non-finite points are skipped */
    int n;
} gr_curve;

typedef struct gr_report {
    const char *title;
    const char *recipe;             /* free text (the settings used), shown verbatim */
    const char *const *class_names; /* [nclass] or NULL ("class 0", ...) */
    const char *const *group_names; /* [ngroup] or NULL ("group 0", ...) */
    const gr_metrics *m;
    const gr_curve *curves; /* learning curves (may be 0) */
    int ncurves;
    double seconds, peak_mb; /* time and memory the run took */
    const char *extra_html;  /* an optional section (e.g. a results table), trusted */
} gr_report;

/* Writes the page atomically (gr_wfile); errors name the path. */
int gr_report_write(const char *path, const gr_report *r);

#endif
