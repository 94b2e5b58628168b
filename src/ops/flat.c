/* flat.c — elementwise ops on tensors kept in a oneDNN layout.
 *
 * An elementwise op does not care how elements are ordered, only that all its tensor inputs
 * order them the same way. So when its inputs come in one oneDNN layout (say nChw16c after a
 * convolution), it can run on them as flat arrays and leave its output in that layout too,
 * saving two reorders per op. This wrapper does that for the family's own kernels: it shows the
 * wrapped op 1-D views of the storage (scalars stay scalars) and marks the output with the
 * input's layout. Blocked layouts pad channels with zeros, and the op runs on the padding too,
 * so only ops that keep zeros finite are wrapped (no Div, Log, Sqrt, Pow, Reciprocal): the rows
 * flagged GR_OPF_FLAT, which gr_op_runner hands out wrapped.
 *
 * Backward delegates the same way: dout and din have the layouts of the output and the inputs,
 * so the wrapped op's backward runs on 1-D views of them (padding included; a term of the form
 * dout * f'(x) stays 0 there when dout's padding is 0). An input that is broadcast (a scalar)
 * and needs a gradient would sum over the padding too: such a node asks for plain inputs. */
#include "ops.h"

#include <string.h>

typedef struct flat_state {
    const gr_opdef *inner;
    void *inner_params;
    gr_tensor *views; /* one per input, then one per output */
    gr_tensor **in, **out;
    gr_tensor *gviews; /* backward: din views (one per input), then dout views */
    gr_tensor **din, **dout;
    int blocked; /* 0: the inputs are plain and the inner op runs as it is */
} flat_state;

static gr_opctx shadow(const gr_opctx *c, flat_state *s)
{
    gr_opctx k = *c;
    k.in = s->in;
    k.out = s->out;
    k.params = s->inner_params;
    return k;
}

static int flat_prepare(gr_opctx *c)
{
    flat_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    s->inner = c->def; /* the row; the executor runs this wrapper for it */
    GR_ASSERT(s->inner && (s->inner->flags & GR_OPF_FLAT));
    if (c->need_grad && !s->inner->backward)
        return gr_op_err(c, GRAFT_E_UNSUPPORTED, "%s has no backward", c->op_type);
    const gr_tensor *lead = NULL;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i] && c->in[i]->layout) lead = c->in[i];
    if (!lead) { /* plain inputs: the op as it is */
        c->params = NULL;
        int st = s->inner->prepare(c);
        s->inner_params = c->params;
        c->params = s;
        return st;
    }
    for (int i = 0; i < c->nin; i++) {
        const gr_tensor *t = c->in[i];
        if (t && t != lead &&
            !(t->layout ? gr_shape_eq(&t->shape, &lead->shape) && t->bytes == lead->bytes &&
                              t->layout == lead->layout
                        : gr_numel(&t->shape) == 1))
            return GR_RETRY_PLAIN; /* mixed layouts or real broadcasting: plain it is */
    }
    if (lead->dtype != GR_F32) return GR_RETRY_PLAIN;
    for (int i = 0; i < c->nin; i++)
        if ((c->need_grad >> i & 1) && c->in[i] && !c->in[i]->layout) return GR_RETRY_PLAIN;
    s->blocked = 1;
    s->views = gr_arena_alloc(c->arena, (size_t)(c->nin + c->nout) * sizeof *s->views);
    s->in = gr_arena_alloc(c->arena, (size_t)(c->nin + 1) * sizeof *s->in);
    s->out = gr_arena_alloc(c->arena, (size_t)(c->nout + 1) * sizeof *s->out);
    if (!s->views || !s->in || !s->out) return GRAFT_E_NOMEM;
    gr_shape flat = { 1, { (int64_t)(lead->bytes / sizeof(float)) } };
    for (int i = 0; i < c->nin; i++) {
        if (!c->in[i]) continue;
        s->views[i] = *c->in[i];
        if (c->in[i]->layout)
            s->views[i] = (gr_tensor){ .dtype = GR_F32, .shape = flat, .data = c->in[i]->data };
        s->in[i] = &s->views[i];
    }
    for (int i = 0; i < c->nout; i++) s->out[i] = &s->views[c->nin + i];
    if (c->need_grad) {
        s->gviews = gr_arena_alloc(c->arena, (size_t)(c->nin + c->nout) * sizeof *s->gviews);
        s->din = gr_arena_alloc(c->arena, (size_t)(c->nin + 1) * sizeof *s->din);
        s->dout = gr_arena_alloc(c->arena, (size_t)(c->nout + 1) * sizeof *s->dout);
        if (!s->gviews || !s->din || !s->dout) return GRAFT_E_NOMEM;
    }
    gr_opctx k = shadow(c, s);
    int st = s->inner->prepare(&k);
    s->inner_params = k.params;
    if (k.scratch_bytes > c->scratch_bytes) c->scratch_bytes = k.scratch_bytes;
    if (st) return st;
    for (int i = 0; i < c->nout; i++) {
        if (!gr_shape_eq(&s->out[i]->shape, &flat)) return GR_RETRY_PLAIN;
        c->out[i]->dtype = s->out[i]->dtype;
        c->out[i]->shape = lead->shape;
        c->out[i]->layout = lead->layout;
        c->out[i]->bytes = lead->bytes;
    }
    c->flops = k.flops;
    return GRAFT_OK;
}

static void flat_forward(gr_opctx *c)
{
    flat_state *s = c->params;
    gr_opctx k = *c;
    k.params = s->inner_params;
    if (s->blocked) {
        for (int i = 0; i < c->nin; i++)
            if (c->in[i]) s->views[i].data = c->in[i]->data;
        for (int i = 0; i < c->nout; i++) s->views[c->nin + i].data = c->out[i]->data;
        k.in = s->in;
        k.out = s->out;
    }
    s->inner->forward(&k);
}

/* The wrapped op's backward, on views of dout and din shaped like the forward's views. */
static void flat_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    flat_state *s = c->params;
    gr_opctx k = *c;
    k.params = s->inner_params;
    if (!s->blocked) {
        s->inner->backward(&k, dout, din);
        return;
    }
    for (int i = 0; i < c->nin; i++)
        if (c->in[i]) s->views[i].data = c->in[i]->data;
    for (int i = 0; i < c->nout; i++) s->views[c->nin + i].data = c->out[i]->data;
    for (int i = 0; i < c->nin; i++) {
        s->din[i] = NULL;
        if (!din[i]) continue;
        s->gviews[i] = s->views[i];
        s->gviews[i].data = din[i]->data;
        s->din[i] = &s->gviews[i];
    }
    for (int i = 0; i < c->nout; i++) {
        s->dout[i] = NULL;
        if (!dout[i]) continue;
        s->gviews[c->nin + i] = s->views[c->nin + i];
        s->gviews[c->nin + i].data = dout[i]->data;
        s->dout[i] = &s->gviews[c->nin + i];
    }
    k.in = s->in;
    k.out = s->out;
    s->inner->backward(&k, s->dout, s->din);
}

static void flat_release(void *params)
{
    flat_state *s = params;
    if (s->inner && s->inner->release && s->inner_params) s->inner->release(s->inner_params);
}

const gr_opdef gr_op_flat = { "(flat)",      flat_prepare,  flat_forward, flat_release,
                              GR_OPF_LAYOUT, flat_backward, NULL };
