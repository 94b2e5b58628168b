/* oprun.c — the node runner of the op and gradient tests (oprun.h). */
#include "oprun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const gr_opdef *or_find(const char *op)
{
    const gr_opdef *d = gr_op_find(op, "");
    if (!d) d = gr_op_find(op, GR_DOMAIN_GRAFT);
    if (!d) {
        fprintf(stderr, "op %s is not registered\n", op);
        exit(2);
    }
    return d;
}

gr_dnnl *or_dnnl(void)
{
    static gr_dnnl *d;
    if (!d && gr_dnnl_new(&d) != GRAFT_OK) {
        fprintf(stderr, "oprun: no oneDNN engine: %s\n", graft_last_error());
        exit(2);
    }
    return d;
}

int or_prepare(or_node *n, const or_spec *s)
{
    memset(n, 0, sizeof *n);
    int nout = s->nout ? s->nout : 1;
    if (s->nin > OR_MAX_IN || nout > OR_MAX_OUT) {
        fprintf(stderr, "oprun: %s has %d inputs and %d outputs, at most %d and %d\n", s->op,
                s->nin, nout, OR_MAX_IN, OR_MAX_OUT);
        exit(2);
    }
    n->def = or_find(s->op);
    n->op = gr_op_runner(n->def);
    n->arena = gr_arena_new(1 << 16);
    gr_rng_seed(&n->rng, 1234);
    uint32_t hide = s->hidden | s->need_grad;
    for (int i = 0; i < s->nin; i++) {
        n->in[i] = s->ins[i];
        n->pin[i] = s->ins[i].dtype ? &n->in[i] : NULL;
        if (hide >> i & 1) n->in[i].data = NULL;
    }
    for (int o = 0; o < nout; o++) n->pout[o] = &n->out[o];
    n->c = (gr_opctx){ .name = "t",
                       .op_type = s->op,
                       .def = n->def,
                       .opset = s->opset,
                       .attrs = s->attrs,
                       .nattr = s->nattr,
                       .nin = s->nin,
                       .nout = nout,
                       .in = n->pin,
                       .out = n->pout,
                       .arena = n->arena,
                       .use_ref = s->use_ref,
                       .layouts = s->layouts,
                       .dnnl = or_dnnl(),
                       .training = s->training,
                       .need_grad = s->need_grad,
                       .rng = &n->rng };
    int st = n->op->prepare(&n->c);
    if (st) {
        or_free(n);
        return st;
    }
    for (int i = 0; i < s->nin; i++) n->in[i].data = s->ins[i].data;
    for (int o = 0; o < nout; o++) { n->out[o].data = calloc(1, gr_tensor_bytes(&n->out[o]) + 8); }
    n->scratch = n->c.scratch_bytes ? aligned_alloc(64, gr_align64(n->c.scratch_bytes)) : NULL;
    n->c.scratch = n->scratch;
    return GRAFT_OK;
}

void or_forward(or_node *n) { n->op->forward(&n->c); }

int or_run(or_node *n, const or_spec *s)
{
    int st = or_prepare(n, s);
    if (!st) or_forward(n);
    return st;
}

void or_backward(or_node *n, gr_tensor *const *dout, gr_tensor *const *din)
{
    n->op->backward(&n->c, dout, din);
}

void or_free(or_node *n)
{
    if (!n->op) return;
    if (n->op->release && n->c.params) n->op->release(n->c.params);
    for (int o = 0; o < OR_MAX_OUT; o++) free(n->out[o].data);
    free(n->scratch);
    gr_arena_free(n->arena);
    memset(n, 0, sizeof *n);
}

/* ---- oneDNN layouts ---- */

dnnl_memory_desc_t or_blocked_md(const gr_shape *s)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims;
    for (int i = 0; i < s->rank; i++) dims[i] = s->d[i];
    dnnl_format_tag_t tag = s->rank == 3   ? dnnl_nCw16c
                            : s->rank == 4 ? dnnl_nChw16c
                                           : dnnl_nCdhw16c;
    dnnl_memory_desc_init_by_tag(&md, s->rank, dims, dnnl_f32, tag);
    return md;
}

void or_convert(const gr_shape *s, const void *from, const void *src, const void *to, void *dst)
{
    gr_dnnl *d = or_dnnl();
    dnnl_memory_desc_t a, b;
    gr_tensor ta = { .dtype = GR_F32, .shape = *s, .layout = from },
              tb = { .dtype = GR_F32, .shape = *s, .layout = to };
    gr_dnnl_md_of(&ta, &a);
    gr_dnnl_md_of(&tb, &b);
    dnnl_memory_t ma, mb;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t r;
    dnnl_memory_create(&ma, &a, d->engine, (void *)src);
    dnnl_memory_create(&mb, &b, d->engine, dst);
    dnnl_reorder_primitive_desc_create(&pd, &a, d->engine, &b, d->engine, NULL);
    dnnl_primitive_create(&r, pd);
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, ma }, { DNNL_ARG_TO, mb } };
    dnnl_primitive_execute(r, d->stream, 2, args);
    dnnl_stream_wait(d->stream);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(ma);
    dnnl_memory_destroy(mb);
}

/* ---- gradient coverage ---- */

static const char *covered[256];
static int ncovered;

void or_cover(const char *op)
{
    if (or_covered(op)) return;
    if (ncovered == (int)(sizeof covered / sizeof *covered)) {
        fprintf(stderr, "oprun: more than %d covered ops\n", ncovered);
        exit(2);
    }
    size_t len = strlen(op) + 1;
    char *copy = malloc(len);
    if (!copy) exit(2);
    covered[ncovered++] = memcpy(copy, op, len);
}

int or_covered(const char *op)
{
    for (int i = 0; i < ncovered; i++)
        if (!strcmp(covered[i], op)) return 1;
    return 0;
}
