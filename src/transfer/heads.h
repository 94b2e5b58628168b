/* heads.h — what the files of the heads on features share; included only by them (the public
 * side is gr_head_* in transfer.h). One file a concern:
 *   fit.c              options, argument checks, the feature normalisation, the dispatch of
 *                      fit and predict by kind, gr_head_free; the matrix product and softmax
 *                      rows below
 *   head_logreg.c      multinomial logistic regression: objective, L-BFGS with the More-Thuente
 *                      line search, stratified folds and the cross-validation of C
 *   head_mlp.c         one hidden layer trained by train/'s AdamW (gr_optim)
 *   head_neighbours.c  cosine kNN and nearest class mean
 *   head_store.c       heads as safetensors files (save, load and their checks)
 * A kind's fit gets the normalised rows X (n, dim) and labels checked to be in [0, h->nclass);
 * h->kind, nclass, dim and norm are set. What it allocates into h is freed by gr_head_free, also
 * when it fails. */
#ifndef GR_TRANSFER_HEADS_H
#define GR_TRANSFER_HEADS_H

#include "transfer/transfer.h"

/* C (M, N) = op(A) op(B) (+ beta C), row-major, op = transpose for 'T' (dnnl_sgemm). Returns 0,
 * or -1 for a oneDNN failure (only bad arguments), which gr_head_sgemm_err reports: it may be
 * called on a worker thread, whose error message the caller would not see. */
int gr_head_sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
int gr_head_sgemm_err(void);

/* Softmax cross-entropy of one row: z (K logits without the bias b, which may be NULL) becomes
 * scale * (softmax - onehot(y)), the gradient; returns the loss log(sum exp) - z_y, in double. */
double gr_head_softmax_ce_row(float *z, const float *b, int K, int y, float scale);

/* The kinds. fit: see above; logits: Z (m, K) for the normalised rows X (m, dim), the bias not
 * yet added (gr_head_predict adds it and takes the softmax). */
int gr_logreg_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o, int threads,
                  gr_head *h);
int gr_mlp_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o, gr_head *h);
/* A (m, hidden) is scratch for the hidden layer. */
int gr_mlp_logits(const gr_head *h, const float *X, int64_t m, float *A, float *Z);
int gr_knn_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o, gr_head *h);
/* kNN probabilities (m, nclass) of the rows X (scaled to unit length in place), through scratch
 * S (m, h->n), idx and sim (m, min(k, n)) and votes (m, nclass). */
int gr_knn_predict(const gr_head *h, float *X, int64_t m, float *prob, float *S, int64_t *idx,
                   float *sim, double *votes);
int gr_ncm_fit(const float *X, const int32_t *y, int64_t n, gr_head *h);
/* mm (nclass): the squared lengths of the class means, computed once per predict. */
void gr_ncm_sqnorms(const gr_head *h, double *mm);
int gr_ncm_logits(const gr_head *h, const float *X, int64_t m, const double *mm, float *Z);

/* Rows of X (n, dim) scaled to unit length in place (zero rows stay zero). */
void gr_head_unit_rows(float *X, int64_t n, int dim);

#endif
