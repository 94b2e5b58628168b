/* head_mlp.c — a head with one hidden layer: dim -> hidden (ReLU, inverted dropout) -> nclass,
 * PyTorch's Linear initialisation (uniform +-1/sqrt(fan_in)) from the seed, mean cross-entropy
 * per shuffled minibatch, trained by train/'s AdamW (gr_optim, torch.optim.AdamW: decay on the
 * two weight matrices, not on the biases). Forward and backward are four sgemm calls. */
#include "train/train.h"
#include "transfer/heads.h"

#include <math.h>
#include <string.h>

/* The training state. The parameters are one block w, in the order W1 (H, dim), b1 [H],
 * W2 (K, H), b2 [K], with their gradients at the same offsets in g, as gr_optim wants them. */
typedef struct mlp {
    int dim, H, K;
    int64_t bs; /* rows of a minibatch */
    float pdrop;
    float *w, *g;
    int64_t off[5];        /* where each parameter starts in w and g; off[4]: the total */
    float *Xb, *A, *D, *Z; /* a minibatch's rows (bs, dim), hidden units (bs, H), their derivative
                              d(relu * mask) (bs, H), logits then d loss / d logits (bs, K) */
    int32_t *yb;
    int64_t *perm; /* [n] the row order of the epoch */
    double *rl;    /* [bs] per-row losses, summed in order */
    double *acc;   /* [max(H, K)] column sums in double */
    gr_optim opt;
} mlp;

static void mlp_free(mlp *m)
{
    free(m->w), free(m->g), free(m->Xb), free(m->A), free(m->D), free(m->Z), free(m->yb);
    free(m->perm), free(m->rl), free(m->acc);
    gr_optim_free(&m->opt);
}

static int mlp_alloc(mlp *m, int64_t n, const gr_fit_opts *o)
{
    int64_t sz[4] = { (int64_t)m->H * m->dim, m->H, (int64_t)m->K * m->H, m->K };
    m->off[0] = 0;
    for (int k = 0; k < 4; k++) m->off[k + 1] = m->off[k] + sz[k];
    int64_t total = m->off[4], bs = m->bs;
    m->w = gr_calloc((size_t)total, sizeof(float));
    m->g = gr_calloc((size_t)total, sizeof(float));
    m->Xb = gr_malloc((size_t)bs * m->dim * sizeof(float));
    m->A = gr_malloc((size_t)bs * m->H * sizeof(float));
    m->D = gr_malloc((size_t)bs * m->H * sizeof(float));
    m->Z = gr_malloc((size_t)bs * m->K * sizeof(float));
    m->yb = gr_malloc((size_t)bs * sizeof(int32_t));
    m->perm = gr_malloc((size_t)n * sizeof(int64_t));
    m->rl = gr_malloc((size_t)bs * sizeof(double));
    m->acc = gr_malloc((size_t)(m->H > m->K ? m->H : m->K) * sizeof(double));
    if (!m->w || !m->g || !m->Xb || !m->A || !m->D || !m->Z || !m->yb || !m->perm || !m->rl ||
        !m->acc)
        return GRAFT_E_NOMEM;
    gr_param p[4];
    for (int k = 0; k < 4; k++)
        p[k] = (gr_param){ .off = m->off[k], .n = sz[k], .lr_scale = 1, .decay = k == 0 || k == 2 };
    gr_optim_cfg cfg = { .kind = GR_ADAMW,
                         .lr = o->lr > 0 ? o->lr : 1e-3,
                         .weight_decay = o->weight_decay >= 0 ? o->weight_decay : 0 };
    return gr_optim_init(&m->opt, &cfg, p, 4, total, m->w);
}

/* column sums of a (rows, cols) matrix into out (float), in double, rows in order */
static void colsum(const float *A, int64_t rows, int cols, float *out, double *acc)
{
    for (int c = 0; c < cols; c++) acc[c] = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) acc[c] += A[i * cols + c];
    for (int c = 0; c < cols; c++) out[c] = (float)acc[c];
}

/* Forward over the r rows in Xb: A = relu(Xb W1^T + b1) * dropout mask, D its derivative with
 * respect to the pre-activation, Z = A W2^T; then Z becomes d loss / d logits and the rows'
 * losses are added to *loss. */
static int mlp_forward(mlp *m, int64_t r, gr_rng *rng, double *loss)
{
    int H = m->H, K = m->K;
    const float *W1 = m->w + m->off[0], *b1 = m->w + m->off[1], *W2 = m->w + m->off[2],
                *b2 = m->w + m->off[3];
    if (gr_head_sgemm('N', 'T', r, H, m->dim, m->Xb, m->dim, W1, m->dim, 0.0f, m->A, H))
        return gr_head_sgemm_err();
    float keep = 1.0f / (1.0f - m->pdrop);
    for (int64_t i = 0; i < r * H; i++) {
        float a = m->A[i] + b1[i % H];
        float mask = m->pdrop > 0 ? (gr_rng_uniform(rng) >= m->pdrop ? keep : 0.0f) : 1.0f;
        m->D[i] = a > 0 ? mask : 0.0f;
        m->A[i] = a * m->D[i];
    }
    if (gr_head_sgemm('N', 'T', r, K, H, m->A, H, W2, H, 0.0f, m->Z, K)) return gr_head_sgemm_err();
#pragma omp parallel for schedule(static) if (r * K >= (1 << 17))
    for (int64_t i = 0; i < r; i++)
        m->rl[i] = gr_head_softmax_ce_row(m->Z + i * K, b2, K, m->yb[i], 1.0f / (float)r);
    for (int64_t i = 0; i < r; i++) *loss += m->rl[i];
    return GRAFT_OK;
}

/* Backward from Z = d loss / d logits into the gradient block g (A is overwritten). */
static int mlp_backward(mlp *m, int64_t r)
{
    int H = m->H, K = m->K, dim = m->dim;
    const float *W2 = m->w + m->off[2];
    float *g = m->g;
    if (gr_head_sgemm('T', 'N', K, H, r, m->Z, K, m->A, H, 0.0f, g + m->off[2], H))
        return gr_head_sgemm_err();
    colsum(m->Z, r, K, g + m->off[3], m->acc);
    if (gr_head_sgemm('N', 'N', r, H, K, m->Z, K, W2, H, 0.0f, m->A, H)) return gr_head_sgemm_err();
    for (int64_t i = 0; i < r * H; i++) m->A[i] *= m->D[i];
    if (gr_head_sgemm('T', 'N', H, dim, r, m->A, H, m->Xb, dim, 0.0f, g + m->off[0], dim))
        return gr_head_sgemm_err();
    colsum(m->A, r, H, g + m->off[1], m->acc);
    return GRAFT_OK;
}

/* One epoch: the rows shuffled (unless one batch holds them all), then a forward, backward and
 * AdamW step per minibatch. *loss gets the sum of the rows' losses. */
static int mlp_epoch(mlp *m, const float *X, const int32_t *y, int64_t n, gr_rng *rng, double *loss)
{
    int64_t *perm = m->perm;
    if (m->bs < n)
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)gr_rng_below(rng, (uint64_t)i + 1), tmp = perm[i];
            perm[i] = perm[j], perm[j] = tmp;
        }
    *loss = 0;
    for (int64_t s0 = 0; s0 < n; s0 += m->bs) {
        int64_t r = n - s0 < m->bs ? n - s0 : m->bs;
        for (int64_t i = 0; i < r; i++) {
            memcpy(m->Xb + i * m->dim, X + perm[s0 + i] * m->dim, (size_t)m->dim * sizeof(float));
            m->yb[i] = y[perm[s0 + i]];
        }
        int st = mlp_forward(m, r, rng, loss);
        if (!st) st = mlp_backward(m, r);
        if (st) return st;
        gr_optim_step(&m->opt, m->w, m->g);
    }
    return GRAFT_OK;
}

/* The trained parameters into the head's own arrays (W, b, W2, b2). */
static int mlp_to_head(const mlp *m, gr_head *h)
{
    float **dst[4] = { &h->W, &h->b, &h->W2, &h->b2 };
    for (int k = 0; k < 4; k++) {
        size_t bytes = (size_t)(m->off[k + 1] - m->off[k]) * sizeof(float);
        if (!(*dst[k] = gr_malloc(bytes))) return GRAFT_E_NOMEM;
        memcpy(*dst[k], m->w + m->off[k], bytes);
    }
    return GRAFT_OK;
}

int gr_mlp_fit(const float *X, const int32_t *y, int64_t n, const gr_fit_opts *o, gr_head *h)
{
    int epochs = o->epochs > 0 ? o->epochs : 50;
    mlp m = { .dim = h->dim,
              .K = h->nclass,
              .H = o->hidden > 0 ? o->hidden : 256,
              .bs = (o->batch > 0 && o->batch < n) ? o->batch : n,
              .pdrop = o->dropout > 0 && o->dropout < 1 ? o->dropout : 0.0f };
    h->hidden = m.H;
    h->train_loss = gr_calloc((size_t)epochs, sizeof(double));
    int st = h->train_loss ? mlp_alloc(&m, n, o) : GRAFT_E_NOMEM;
    gr_rng rng;
    gr_rng_seed(&rng, o->seed);
    for (int k = 0; k < 4 && !st; k++) { /* PyTorch's nn.Linear: uniform(-1/sqrt(fan_in), +) */
        double a = 1.0 / sqrt(k < 2 ? m.dim : m.H);
        for (int64_t i = m.off[k]; i < m.off[k + 1]; i++)
            m.w[i] = (float)((2 * gr_rng_uniform(&rng) - 1) * a);
    }
    for (int64_t i = 0; i < n && !st; i++) m.perm[i] = i;
    for (int e = 0; e < epochs && !st; e++) {
        double loss;
        st = mlp_epoch(&m, X, y, n, &rng, &loss);
        if (st) break;
        h->train_loss[e] = loss / (double)n;
        h->epochs = e + 1;
        if (!isfinite(loss))
            st =
                gr_err(GRAFT_E_NUMERIC, "fit: MLP loss is not finite at epoch %d (lr %g too high?)",
                       e + 1, m.opt.cfg.lr);
    }
    if (!st) st = mlp_to_head(&m, h);
    mlp_free(&m);
    return st;
}

int gr_mlp_logits(const gr_head *h, const float *X, int64_t m, float *A, float *Z)
{
    int dim = h->dim, H = h->hidden, K = h->nclass;
    if (gr_head_sgemm('N', 'T', m, H, dim, X, dim, h->W, dim, 0.0f, A, H))
        return gr_head_sgemm_err();
    for (int64_t i = 0; i < m * H; i++) A[i] = fmaxf(A[i] + h->b[i % H], 0.0f);
    if (gr_head_sgemm('N', 'T', m, K, H, A, H, h->W2, H, 0.0f, Z, K)) return gr_head_sgemm_err();
    return GRAFT_OK;
}
