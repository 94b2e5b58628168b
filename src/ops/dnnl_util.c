/* dnnl_util.c — oneDNN engine/stream lifetime and helpers. */
#include "dnnl_util.h"

#include <string.h>

int gr_dnnl_new(gr_dnnl **out)
{
    gr_dnnl *d = gr_calloc(1, sizeof *d);
    if (!d) return GRAFT_E_NOMEM;
    if (dnnl_engine_create(&d->engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags) != dnnl_success) {
        gr_dnnl_free(d);
        return gr_err(GRAFT_E_INTERNAL, "oneDNN: could not create the CPU engine");
    }
    *out = d;
    return GRAFT_OK;
}

void gr_dnnl_free(gr_dnnl *d)
{
    if (!d) return;
    if (d->stream) dnnl_stream_destroy(d->stream);
    if (d->engine) dnnl_engine_destroy(d->engine);
    free(d);
}

int gr_dnnl_plain_md(dnnl_memory_desc_t *md, const gr_shape *s)
{
    dnnl_dims_t dims, strides;
    int64_t stride = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        dims[i] = s->d[i];
        strides[i] = stride;
        stride *= s->d[i];
    }
    return dnnl_memory_desc_init_by_strides(md, s->rank, dims, dnnl_f32, strides) == dnnl_success
               ? GRAFT_OK
               : gr_err(GRAFT_E_INTERNAL, "oneDNN: bad memory descriptor");
}

int gr_dnnl_check(const gr_opctx *c, dnnl_status_t st, const char *what)
{
    if (st == dnnl_success) return GRAFT_OK;
    return gr_op_err(c, st == dnnl_out_of_memory ? GRAFT_E_NOMEM : GRAFT_E_UNSUPPORTED,
                     "oneDNN %s failed (status %d)", what, (int)st);
}

/* ---- to_plain: a reorder from a oneDNN layout to plain row-major ---- */

typedef struct to_plain_state {
    dnnl_primitive_t reorder, back; /* back: plain gradient → the layout (training) */
    dnnl_memory_t src, dst;
} to_plain_state;

static void to_plain_release(void *params)
{
    to_plain_state *s = params;
    if (s->reorder) dnnl_primitive_destroy(s->reorder);
    if (s->back) dnnl_primitive_destroy(s->back);
    if (s->src) dnnl_memory_destroy(s->src);
    if (s->dst) dnnl_memory_destroy(s->dst);
}

static int to_plain_prepare(gr_opctx *c)
{
    const gr_tensor *x = c->in[0];
    int st = gr_op_set_out(c, 0, x->dtype, &x->shape);
    if (st || !x->layout) return st;
    to_plain_state *s = gr_op_params(c, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    dnnl_memory_desc_t plain;
    dnnl_primitive_desc_t pd;
    if ((st = gr_dnnl_plain_md(&plain, &x->shape))) return st;
    const dnnl_memory_desc_t *src = x->layout;
    if ((st = gr_dnnl_check(c,
                            dnnl_reorder_primitive_desc_create(&pd, src, c->dnnl->engine, &plain,
                                                               c->dnnl->engine, NULL),
                            "reorder")))
        return st;
    st = gr_dnnl_check(c, dnnl_primitive_create(&s->reorder, pd), "reorder");
    dnnl_primitive_desc_destroy(pd);
    if (!st && c->need_grad) {
        st = gr_dnnl_check(c,
                           dnnl_reorder_primitive_desc_create(&pd, &plain, c->dnnl->engine, src,
                                                              c->dnnl->engine, NULL),
                           "reorder");
        if (st) return st;
        st = gr_dnnl_check(c, dnnl_primitive_create(&s->back, pd), "reorder");
        dnnl_primitive_desc_destroy(pd);
    }
    if (!st)
        st = gr_dnnl_check(c, dnnl_memory_create(&s->src, src, c->dnnl->engine, DNNL_MEMORY_NONE),
                           "memory");
    if (!st)
        st = gr_dnnl_check(
            c, dnnl_memory_create(&s->dst, &plain, c->dnnl->engine, DNNL_MEMORY_NONE), "memory");
    return st;
}

static void to_plain_forward(gr_opctx *c)
{
    to_plain_state *s = c->params;
    if (!s) { /* already plain: a copy */
        memcpy(c->out[0]->data, c->in[0]->data, gr_tensor_bytes(c->in[0]));
        return;
    }
    dnnl_memory_set_data_handle(s->src, c->in[0]->data);
    dnnl_memory_set_data_handle(s->dst, c->out[0]->data);
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, s->src }, { DNNL_ARG_TO, s->dst } };
    dnnl_primitive_execute(s->reorder, c->dnnl->stream, 2, args);
    dnnl_stream_wait(c->dnnl->stream);
}

/* The gradient of a layout change is the reverse layout change. */
static void to_plain_backward(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din)
{
    to_plain_state *s = c->params;
    if (!dout[0]) {
        memset(din[0]->data, 0, gr_tensor_bytes(din[0]));
        return;
    }
    if (!s) {
        memcpy(din[0]->data, dout[0]->data, gr_tensor_bytes(din[0]));
        return;
    }
    dnnl_memory_set_data_handle(s->dst, dout[0]->data);
    dnnl_memory_set_data_handle(s->src, din[0]->data);
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, s->dst }, { DNNL_ARG_TO, s->src } };
    dnnl_primitive_execute(s->back, c->dnnl->stream, 2, args);
    dnnl_stream_wait(c->dnnl->stream);
}

const gr_opdef gr_op_to_plain = { "ToPlain",
                                  to_plain_prepare,
                                  to_plain_forward,
                                  to_plain_release,
                                  GR_OPF_LAYOUT,
                                  to_plain_backward,
                                  NULL };

int gr_dnnl_md_of(const gr_tensor *t, dnnl_memory_desc_t *md)
{
    if (t->layout) {
        *md = *(const dnnl_memory_desc_t *)t->layout;
        return GRAFT_OK;
    }
    return gr_dnnl_plain_md(md, &t->shape);
}

int gr_dnnl_same_layout(const gr_tensor *a, const gr_tensor *b)
{
    if (!a->layout || !b->layout) return !a->layout && !b->layout;
    return dnnl_memory_desc_equal(a->layout, b->layout) != 0;
}

void gr_dnnl_set_layout(gr_tensor *t, const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t plain;
    if (gr_dnnl_plain_md(&plain, &t->shape) == GRAFT_OK && dnnl_memory_desc_equal(&plain, md)) {
        t->layout = NULL; /* oneDNN chose the plain layout itself */
        t->bytes = 0;
        return;
    }
    t->layout = md;
    t->bytes = dnnl_memory_desc_get_size(md);
}

/* The primitive of descriptor pd (consumed) and its user scratchpad: the op's scratch grows to
 * the largest any of its primitives asks for. */
static int make_primitive(gr_opctx *c, dnnl_primitive_desc_t pd, dnnl_primitive_t *prim,
                          dnnl_memory_t *spad)
{
    dnnl_status_t st = dnnl_success;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (bytes) {
        st = dnnl_memory_create(spad, smd, c->dnnl->engine, DNNL_MEMORY_NONE);
        if (bytes > c->scratch_bytes) c->scratch_bytes = bytes;
    }
    if (st == dnnl_success) st = dnnl_primitive_create(prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) *prim = NULL;
    return gr_dnnl_check(c, st, "primitive");
}

/* Creates a primitive for op_desc with a user scratchpad (sized into c->scratch_bytes; *spad
 * NULL when none is needed). *prim is NULL, with GRAFT_OK, when oneDNN has no implementation:
 * the caller runs its reference kernel. */
int gr_dnnl_make(gr_opctx *c, const void *op_desc, dnnl_primitive_t *prim, dnnl_memory_t *spad)
{
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd = NULL;
    *prim = NULL;
    *spad = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return gr_op_err(c, GRAFT_E_NOMEM, "oneDNN attr");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, op_desc, attr, c->dnnl->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_out_of_memory) return gr_dnnl_check(c, st, "primitive descriptor");
    if (st != dnnl_success) return GRAFT_OK;
    return make_primitive(c, pd, prim, spad);
}

int gr_dnnl_plain_mem(gr_opctx *c, dnnl_memory_t *m, const gr_shape *s)
{
    dnnl_memory_desc_t md;
    int st = gr_dnnl_plain_md(&md, s);
    return st ? st
              : gr_dnnl_check(c, dnnl_memory_create(m, &md, c->dnnl->engine, DNNL_MEMORY_NONE),
                              "memory");
}

int gr_dnnl_make_bwd(gr_opctx *c, const void *fwd_desc, const void *bwd_desc,
                     dnnl_primitive_t *prim, dnnl_memory_t *spad)
{
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    *prim = NULL;
    *spad = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return gr_op_err(c, GRAFT_E_NOMEM, "oneDNN attr");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&hint, fwd_desc, attr, c->dnnl->engine, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, bwd_desc, attr, c->dnnl->engine, hint);
    dnnl_primitive_attr_destroy(attr);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (st != dnnl_success)
        return st == dnnl_out_of_memory ? gr_dnnl_check(c, st, "primitive descriptor") : GRAFT_OK;
    return make_primitive(c, pd, prim, spad);
}
