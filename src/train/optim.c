/* optim.c — SGD and AdamW over one parameter block, schedules, clipping, L2-SP.
 * The update is one pass over the block per parameter span (each span has its own learning-rate
 * scale and decay flag), so the optimizer is a flat loop the compiler vectorises. */
#include "train.h"

#include <math.h>
#include <string.h>

double gr_sched_lr(const gr_optim_cfg *c, int64_t t)
{
    switch (c->sched) {
    case GR_SCHED_STEP:
        return c->step_size > 0 ? c->lr * pow(c->gamma, (double)(t / c->step_size)) : c->lr;
    case GR_SCHED_COSINE: {
        if (t < c->warmup) return c->lr * (double)(t + 1) / (double)c->warmup;
        int64_t span = c->total - c->warmup;
        double f = span > 0 ? (double)(t - c->warmup) / (double)span : 1.0;
        if (f > 1) f = 1;
        return c->min_lr + (c->lr - c->min_lr) * 0.5 * (1 + cos(3.14159265358979323846 * f));
    }
    default: return c->lr;
    }
}

int gr_optim_init(gr_optim *o, const gr_optim_cfg *cfg, const gr_param *params, int nparam,
                  int64_t total, const float *w)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    if (o->cfg.beta1 == 0) o->cfg.beta1 = 0.9;
    if (o->cfg.beta2 == 0) o->cfg.beta2 = 0.999;
    if (o->cfg.eps == 0) o->cfg.eps = 1e-8;
    if (!(cfg->lr >= 0) || !(cfg->weight_decay >= 0) || !(cfg->momentum >= 0 && cfg->momentum < 1))
        return gr_err(
            GRAFT_E_ARG,
            "optimizer: learning rate, weight decay and momentum must be >= 0 (momentum < 1)");
    o->params = gr_calloc((size_t)nparam + 1, sizeof *o->params);
    o->m = gr_calloc((size_t)total + 1, sizeof(float));
    if (cfg->kind == GR_ADAMW) o->v = gr_calloc((size_t)total + 1, sizeof(float));
    if (cfg->l2sp_alpha > 0) o->w0 = gr_calloc((size_t)total + 1, sizeof(float));
    if (!o->params || !o->m || (cfg->kind == GR_ADAMW && !o->v) ||
        (cfg->l2sp_alpha > 0 && !o->w0)) {
        gr_optim_free(o);
        return gr_err(GRAFT_E_NOMEM, "optimizer: out of memory for the state of %lld parameters",
                      (long long)total);
    }
    memcpy(o->params, params, (size_t)nparam * sizeof *params);
    o->nparam = nparam;
    o->total = total;
    if (o->w0) memcpy(o->w0, w, (size_t)total * sizeof(float));
    return GRAFT_OK;
}

void gr_optim_free(gr_optim *o)
{
    free(o->params);
    free(o->m);
    free(o->v);
    free(o->w0);
    memset(o, 0, sizeof *o);
}

double gr_grad_norm(const float *g, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

static void sgd_span(const gr_optim *o, float *w, const float *g, float *m, int64_t n, double lr,
                     double wd)
{
    const double mu = o->cfg.momentum;
    const int first = o->step == 0;
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + (float)wd * w[i];
        if (mu > 0) {
            m[i] = first ? d : (float)mu * m[i] + d;
            d = o->cfg.nesterov ? d + (float)mu * m[i] : m[i];
        }
        w[i] -= (float)lr * d;
    }
}

static void adamw_span(const gr_optim *o, float *w, const float *g, float *m, float *v, int64_t n,
                       double lr, double wd)
{
    const double t = (double)(o->step + 1), b1 = o->cfg.beta1, b2 = o->cfg.beta2;
    const float step = (float)(lr / (1 - pow(b1, t))), bc2 = (float)sqrt(1 - pow(b2, t));
    const float decay = (float)(1 - lr * wd), eps = (float)o->cfg.eps, fb1 = (float)b1,
                fb2 = (float)b2;
    for (int64_t i = 0; i < n; i++) {
        w[i] *= decay;
        m[i] = fb1 * m[i] + (1 - fb1) * g[i];
        v[i] = fb2 * v[i] + (1 - fb2) * g[i] * g[i];
        w[i] -= step * m[i] / (sqrtf(v[i]) / bc2 + eps);
    }
}

double gr_optim_step(gr_optim *o, float *w, float *g)
{
    const gr_optim_cfg *c = &o->cfg;
    if (c->l2sp_alpha > 0 || c->l2sp_beta > 0)
        for (int p = 0; p < o->nparam; p++) {
            const gr_param *q = &o->params[p];
            for (int64_t i = q->off; i < q->off + q->n; i++)
                g[i] += q->pretrained && o->w0 ? (float)c->l2sp_alpha * (w[i] - o->w0[i])
                                               : (float)c->l2sp_beta * w[i];
        }
    double norm = gr_grad_norm(g, o->total);
    if (c->clip_norm > 0 && norm > c->clip_norm) {
        float s = (float)(c->clip_norm / (norm + 1e-6));
        for (int64_t i = 0; i < o->total; i++) g[i] *= s;
    }
    double lr = gr_sched_lr(c, o->step);
    for (int p = 0; p < o->nparam; p++) {
        const gr_param *q = &o->params[p];
        double plr = lr * q->lr_scale, wd = q->decay ? c->weight_decay : 0;
        if (c->kind == GR_ADAMW)
            adamw_span(o, w + q->off, g + q->off, o->m + q->off, o->v + q->off, q->n, plr, wd);
        else sgd_span(o, w + q->off, g + q->off, o->m + q->off, q->n, plr, wd);
    }
    o->step++;
    return norm;
}
