/* graft_domain.c — ops of graft's own domain GR_DOMAIN_GRAFT ("ai.graft"), for graphs graft
 * builds to train and never writes as models.
 *
 * GradientReversal(X, coeff) -> Y (Ganin & Lempitsky 2015, DANN's layer): forward Y = X;
 * backward dX = -coeff * dY. coeff is a one-element float32 tensor read when backward runs (not
 * at prepare), so the trainer can follow DANN's schedule by writing its initializer between
 * steps; it gets no gradient. */
#include "ops.h"

#include <string.h>

static int grl_prepare(gr_opctx *c)
{
    int st = gr_op_check_arity(c, 2, 2, 1, 1);
    static const int f32[] = { GR_F32, 0 };
    if (!st) st = gr_op_check_dtype(c, 0, f32);
    if (!st) st = gr_op_check_dtype(c, 1, f32);
    if (st) return st;
    if (gr_numel(&c->in[1]->shape) != 1)
        return gr_op_err(c, GRAFT_E_SHAPE, "coeff must hold one value, it has %lld",
                         (long long)gr_numel(&c->in[1]->shape));
    if (c->need_grad & 2)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "coeff is a schedule, not a parameter");
    if (c->nattr)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "unknown attribute '%s'", c->attrs[0].name);
    return gr_op_set_out(c, 0, GR_F32, &c->in[0]->shape);
}

static void grl_forward(gr_opctx *c)
{
    if (c->out[0]->data != c->in[0]->data)
        memcpy(c->out[0]->data, c->in[0]->data, gr_tensor_bytes(c->in[0]));
}

static void grl_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    if (!din[0]) return;
    if (!dout[0]) {
        gr_op_zero_grads(c, din);
        return;
    }
    const float k = -((const float *)c->in[1]->data)[0], *dy = dout[0]->data;
    float *dx = din[0]->data;
    int64_t n = gr_numel(&dout[0]->shape);
    for (int64_t i = 0; i < n; i++) dx[i] = k * dy[i];
}

const gr_opdef gr_ops_graft[] = {
    { "GradientReversal", grl_prepare, grl_forward, NULL,
      GR_OPF_GRAFT_DOMAIN | GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y, grl_backward, NULL },
    { 0 },
};
