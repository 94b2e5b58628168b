/* transfer — the transfer-learning recipes on top of the engine: heads fitted on cached
 * features (fit.c), few-shot learning, fine-tuning recipes, layer choice, and the evaluation
 * (metrics.c) and report (report.c) of a model. Depends on core, data, graph, io, train.
 *
 * Features are float32 rows (n, dim), labels int32 class ids in [0, nclass). */
#ifndef GR_TRANSFER_H
#define GR_TRANSFER_H

#include "core/core.h"

/* ==== heads on features (fit.c) ============================================================ */

enum { GR_HEAD_LOGREG = 0, GR_HEAD_MLP = 1, GR_HEAD_KNN = 2, GR_HEAD_NCM = 3 };
enum { GR_FEAT_NONE = 0, GR_FEAT_STANDARDIZE = 1, GR_FEAT_L2 = 2 };

typedef struct gr_fit_opts {
    int kind;              /* GR_HEAD_* */
    int norm;              /* GR_FEAT_*: applied to features before the head, saved with it */
    /* logistic regression (multinomial, L-BFGS on the full batch, as scikit-learn's
     * LogisticRegression(solver="lbfgs")): minimise 0.5 |W|^2 + C * sum of cross-entropies,
     * intercept not penalised. C <= 0: chosen by stratified k-fold cross-validation over
     * ncs values logspace(-4, 4), best mean accuracy, then refit on all data
     * (LogisticRegressionCV's defaults: ncs 10, folds 5). */
    double C;
    int ncs, folds;
    int max_iter;          /* L-BFGS iterations (0: 1000) */
    double tol;            /* gradient tolerance (0: 1e-4, scikit-learn's) */
    /* MLP: dim -> hidden (ReLU, dropout) -> nclass, AdamW, cross-entropy */
    int hidden;
    float dropout;
    int epochs;
    double lr, weight_decay;
    int batch;             /* MLP minibatch rows, shuffled each epoch (0: the full batch) */
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
    float *mu, *sd;        /* GR_FEAT_STANDARDIZE: [dim] */
    float *W, *b;          /* LOGREG, NCM: (nclass, dim), [nclass]; MLP: first layer (hidden, dim) */
    float *W2, *b2;        /* MLP second layer (nclass, hidden), [nclass] */
    int hidden;
    float *X;              /* KNN: the normalised training rows (n, dim) */
    int32_t *y;
    int64_t n;
    int k;
    double C;              /* LOGREG: the C used (chosen by CV when asked) */
    double cv_acc;         /* LOGREG with CV: the best mean fold accuracy */
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
 * Details (fit.c):
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
 *   dropout, AdamW (betas 0.9, 0.999, eps 1e-8; decay on the weight matrices, not the biases),
 *   mean cross-entropy per batch.
 * - KNN keeps the training rows (normalised, then scaled to unit length); a query's k most
 *   similar rows (ties: lower row index) vote with weight max(similarity, 0) (all-zero weights:
 *   one vote each); probabilities are the normalised votes.
 * - NCM: class means of the normalised rows. Logits are -|x - mean|^2, or with L2 the cosine
 *   similarity to the mean; W holds the means (unit length with L2), b[c] is 0, or -inf for a
 *   class without training rows (probability 0). */
int gr_head_fit(const float *X, const int32_t *y, int64_t n, int dim, int nclass, const gr_fit_opts *o,
                gr_head *h);
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

/* ==== evaluation (metrics.c) =============================================================== */

typedef struct gr_metrics {
    int64_t n;
    int nclass;
    double accuracy, top5;                 /* top5: top-min(5, nclass) */
    double *precision, *recall, *f1;       /* [nclass] (0 where undefined, as scikit-learn's
                                              zero_division=0) */
    int64_t *support;                      /* [nclass] */
    double macro_f1;
    int64_t *confusion;                    /* (nclass, nclass): row = true class, col = predicted */
    /* calibration: equal-width confidence bins over [0, 1] of the top probability */
    int nbins;
    double ece;                            /* sum over bins of |acc - conf| * count / n */
    double *bin_acc, *bin_conf;
    int64_t *bin_count;
    /* per group (when groups are given) */
    int ngroup;
    double *group_acc;
    int64_t *group_n;
    int worst_group;                       /* index of the lowest accuracy, -1 without groups */
} gr_metrics;

/* prob (n, nclass); y true ids; group ids in [0, ngroup) or NULL; nbins (0: 15). */
int gr_metrics_compute(const float *prob, const int32_t *y, int64_t n, int nclass, const int32_t *group, int ngroup,
                       int nbins, gr_metrics *m);
void gr_metrics_free(gr_metrics *m);

/* ==== report (report.c) ==================================================================== */

/* A self-contained HTML page (inline SVG, no script, no external resource). */
typedef struct gr_curve {
    const char *name;                      /* e.g. "train loss", "val accuracy" */
    const double *x, *y;
    int n;
} gr_curve;

typedef struct gr_report {
    const char *title;
    const char *recipe;                    /* free text (the settings used), shown verbatim */
    const char *const *class_names;        /* [nclass] */
    const char *const *group_names;        /* [ngroup] or NULL */
    const gr_metrics *m;
    const gr_curve *curves;                /* learning curves (may be 0) */
    int ncurves;
    double seconds, peak_mb;               /* time and memory the run took */
    const char *extra_html;                /* an optional section (e.g. a results table), trusted */
} gr_report;

/* Writes the page atomically; errors name the path. */
int gr_report_write(const char *path, const gr_report *r);

#endif
