/* loss.c — the losses, in double where sums meet, with their gradients w.r.t. the logits. */
#include "train.h"

#include <math.h>

double gr_loss_softmax_ce(const float *logits, const int32_t *target, int n, int k,
                          const float *class_weight, float eps, float *dlogits)
{
    /* torch: loss = (1 - eps) * sum_i w[y_i] * nll_i / W + eps / k * sum_i sum_c w[c] * nll_ic / W,
     * W = sum_i w[y_i] over the counted samples. */
    double W = 0, loss = 0, B = 0;
    for (int i = 0; i < n; i++)
        if (target[i] >= 0) W += class_weight ? class_weight[target[i]] : 1.0;
    for (int c = 0; c < k; c++) B += class_weight ? class_weight[c] : 1.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (int64_t)i * k;
        float *dz = dlogits ? dlogits + (int64_t)i * k : NULL;
        if (target[i] < 0 || W <= 0) {
            if (dz)
                for (int c = 0; c < k; c++) dz[c] = 0;
            continue;
        }
        double mx = z[0], sum = 0;
        for (int c = 1; c < k; c++) mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < k; c++) sum += exp(z[c] - mx);
        double lse = mx + log(sum);
        double a = (1.0 - eps) * (class_weight ? class_weight[target[i]] : 1.0) / W;
        double b = eps / k / W;
        loss += a * (lse - z[target[i]]);
        for (int c = 0; c < k; c++)
            loss += b * (class_weight ? class_weight[c] : 1.0) * (lse - z[c]);
        if (!dz) continue;
        /* d/dz_j of a*nll_y + sum_c b_c*nll_c = p_j * (a + sum_c b_c) - a*[j == y] - b_j */
        for (int c = 0; c < k; c++) {
            double p = exp(z[c] - lse), bc = b * (class_weight ? class_weight[c] : 1.0);
            dz[c] = (float)(p * (a + b * B) - (c == target[i] ? a : 0.0) - bc);
        }
    }
    return loss;
}

double gr_loss_bce_logits(const float *logits, const float *target, int64_t n, int ncol,
                          const float *pos_weight, float *dlogits)
{
    /* torch: l = -[pw * y * log s(z) + (1 - y) * log(1 - s(z))], stable through softplus. */
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        double z = logits[i], y = target[i], pw = pos_weight ? pos_weight[i % ncol] : 1.0;
        double sp_neg = z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z)); /* -log s(z) */
        double sp_pos = sp_neg + z;                                  /* -log(1 - s(z)) */
        loss += pw * y * sp_neg + (1 - y) * sp_pos;
        if (dlogits) {
            double s = 1.0 / (1.0 + exp(-z));
            dlogits[i] = (float)((pw * y * (s - 1) + (1 - y) * s) / (double)n);
        }
    }
    return loss / (double)n;
}

double gr_loss_mse(const float *pred, const float *target, int64_t n, float *dpred)
{
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)pred[i] - target[i];
        loss += d * d;
        if (dpred) dpred[i] = (float)(2 * d / (double)n);
    }
    return loss / (double)n;
}
