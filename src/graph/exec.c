/* exec.c — plans and the executor.
 *
 * A plan specialises the graph to concrete input shapes: each node's prepare() infers output
 * shapes and builds its kernels once; nodes whose inputs are all known at plan time (initializers,
 * Shape of a known shape, ...) are run right away and become constants, which folds the
 * Shape → Gather → Unsqueeze → Concat → Reshape chains exporters emit. The remaining nodes are the
 * steps of a run. Their outputs live in one activation block laid out by a liveness plan: a
 * value occupies its bytes from the step that produces it to its last reader, and first-fit
 * reuses freed ranges, so peak memory is far below the sum of all activations. */
#include "graph.h"

#include <inttypes.h>
#include <string.h>

struct gr_plan {
    const gr_graph *g;
    gr_plan_opts opts;
    gr_arena *arena;        /* op state, folded constants, bookkeeping */
    gr_tensor *vals;        /* one per value */
    unsigned char *known;   /* value known at plan time */
    gr_opctx *ctx;          /* one per node */
    int *steps, nsteps;     /* nodes run at every run */
    gr_shape *in_shapes;
    unsigned char *act;     /* activation block */
    size_t act_bytes;
    void *scratch;
    size_t scratch_bytes;
    int64_t flops;
};

static size_t tensor_bytes(const gr_tensor *t)
{
    return (size_t)gr_numel(&t->shape) * gr_dtype_size(t->dtype);
}

static int bind_inputs(gr_plan *p, const gr_tensor *inputs)
{
    const gr_graph *g = p->g;
    for (int i = 0; i < g->ninputs; i++) {
        const gr_value *v = &g->values[g->inputs[i]];
        const gr_tensor *x = &inputs[i];
        char a[160], b[160];
        if (v->t.dtype && x->dtype != v->t.dtype)
            return gr_err(GRAFT_E_SHAPE, "input '%s': expected %s, got %s", v->name,
                          gr_dtype_name(v->t.dtype), gr_dtype_name(x->dtype));
        if (v->has_shape) {
            int ok = x->shape.rank == v->t.shape.rank;
            for (int d = 0; ok && d < x->shape.rank; d++)
                ok = v->t.shape.d[d] < 0 || v->t.shape.d[d] == x->shape.d[d];
            if (!ok)
                return gr_err(GRAFT_E_SHAPE, "input '%s': expected shape %s (-1: any), got %s", v->name,
                              gr_shape_str(&v->t.shape, a, sizeof a), gr_shape_str(&x->shape, b, sizeof b));
        }
        if (gr_numel_checked(&x->shape, gr_dtype_size(x->dtype)) < 0)
            return gr_err(GRAFT_E_SHAPE, "input '%s': shape %s is too large", v->name,
                          gr_shape_str(&x->shape, a, sizeof a));
        p->in_shapes[i] = x->shape;
        gr_tensor *t = &p->vals[g->inputs[i]];
        t->dtype = x->dtype;
        t->shape = x->shape;
        if (p->opts.inputs_const) {
            size_t n = tensor_bytes(x);
            t->data = gr_arena_alloc(p->arena, n);
            if (!t->data) return GRAFT_E_NOMEM;
            if (n) memcpy(t->data, x->data, n);
            p->known[g->inputs[i]] = 1;
        }
    }
    return GRAFT_OK;
}

/* Runs prepare for node k; folds it if its inputs are known. */
static int plan_node(gr_plan *p, int k)
{
    const gr_graph *g = p->g;
    const gr_node *n = &g->nodes[k];
    gr_opctx *c = &p->ctx[k];
    if (!n->op)
        return gr_err(GRAFT_E_UNSUPPORTED, "node '%s' uses op '%s%s%s' (opset %d), which graft does not support",
                      n->name, n->domain, n->domain[0] ? "." : "", n->op_type, g->opset);
    c->name = n->name;
    c->op_type = n->op_type;
    c->opset = g->opset;
    c->attrs = n->attrs;
    c->nattr = n->nattr;
    c->nin = n->nin;
    c->nout = n->nout;
    c->arena = p->arena;
    c->use_ref = p->opts.use_ref;
    c->dnnl = p->opts.dnnl;
    c->in = gr_arena_alloc(p->arena, (size_t)(n->nin + 1) * sizeof(gr_tensor *));
    c->out = gr_arena_alloc(p->arena, (size_t)(n->nout + 1) * sizeof(gr_tensor *));
    if (!c->in || !c->out) return GRAFT_E_NOMEM;
    int all_known = 1;
    for (int i = 0; i < n->nin; i++) {
        int v = n->in[i];
        c->in[i] = v >= 0 ? &p->vals[v] : NULL;
        if (v >= 0 && !p->known[v]) {
            all_known = 0;
            p->vals[v].data = NULL;  /* prepare must not rely on activation data */
        }
    }
    /* An absent optional output still gets a tensor to write into; it is never read. */
    for (int i = 0; i < n->nout; i++)
        c->out[i] = n->out[i] >= 0 ? &p->vals[n->out[i]] : gr_arena_alloc(p->arena, sizeof(gr_tensor));
    int st = n->op->prepare(c);
    if (st) return st;
    for (int i = 0; i < n->nout; i++)
        if (!gr_dtype_size(c->out[i]->dtype))
            return gr_err(GRAFT_E_INTERNAL, "node '%s' (%s): output %d has no type after prepare", n->name, n->op_type, i);
    p->flops += c->flops;
    if (c->scratch_bytes > p->scratch_bytes) p->scratch_bytes = c->scratch_bytes;

    if (!(all_known || (n->op->flags & GR_OPF_SHAPE_ONLY))) {
        p->steps[p->nsteps++] = k;
        return GRAFT_OK;
    }
    /* Fold: compute now, the outputs become constants of the plan. */
    for (int i = 0; i < n->nout; i++) {
        c->out[i]->data = gr_arena_alloc(p->arena, tensor_bytes(c->out[i]));
        if (!c->out[i]->data) return GRAFT_E_NOMEM;
    }
    void *scratch = c->scratch_bytes ? aligned_alloc(64, (c->scratch_bytes + 63) & ~(size_t)63) : NULL;
    if (c->scratch_bytes && !scratch) return gr_err(GRAFT_E_NOMEM, "out of memory for scratch");
    c->scratch = scratch;
    n->op->forward(c);
    free(scratch);
    c->scratch = NULL;
    for (int i = 0; i < n->nout; i++)
        if (n->out[i] >= 0) p->known[n->out[i]] = 1;
    return GRAFT_OK;
}

/* ---- liveness memory plan ---- */

typedef struct block { size_t off, size; int value; } block;

static int plan_memory(gr_plan *p)
{
    const gr_graph *g = p->g;
    int nv = g->nvalues, st = GRAFT_OK;
    int *last = malloc((size_t)(nv + 1) * sizeof *last);
    size_t *off = calloc((size_t)nv + 1, sizeof *off);
    block *live = malloc((size_t)(nv + 1) * sizeof *live);
    if (!last || !off || !live) { st = gr_err(GRAFT_E_NOMEM, "out of memory planning"); goto done; }
    for (int v = 0; v < nv; v++) last[v] = -1;
    for (int s = 0; s < p->nsteps; s++) {
        const gr_node *n = &g->nodes[p->steps[s]];
        for (int i = 0; i < n->nin; i++)
            if (n->in[i] >= 0) last[n->in[i]] = s;
    }
    for (int i = 0; i < g->noutputs; i++) last[g->outputs[i]] = p->nsteps;

    int nlive = 0;
    size_t peak = 0;
    for (int s = 0; s < p->nsteps; s++) {
        const gr_node *n = &g->nodes[p->steps[s]];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            if (v < 0) continue;
            size_t need = (tensor_bytes(&p->vals[v]) + 63) & ~(size_t)63;
            if (last[v] < s) last[v] = s;  /* unread outputs still need bytes during their step */
            /* first fit in the gaps between live blocks (kept sorted by offset) */
            size_t at = 0;
            int pos = 0;
            for (; pos < nlive; pos++) {
                if (live[pos].off - at >= need) break;
                at = live[pos].off + live[pos].size;
            }
            memmove(&live[pos + 1], &live[pos], (size_t)(nlive - pos) * sizeof *live);
            live[pos] = (block){at, need, v};
            nlive++;
            off[v] = at;
            if (at + need > peak) peak = at + need;
        }
        for (int b = 0; b < nlive;) {
            if (last[live[b].value] <= s) {
                memmove(&live[b], &live[b + 1], (size_t)(nlive - b - 1) * sizeof *live);
                nlive--;
            } else b++;
        }
    }
    p->act_bytes = peak;
    p->act = peak ? aligned_alloc(64, peak) : NULL;
    if (peak && !p->act) { st = gr_err(GRAFT_E_NOMEM, "out of memory: activations need %zu bytes", peak); goto done; }
    for (int s = 0; s < p->nsteps; s++) {
        const gr_node *n = &g->nodes[p->steps[s]];
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0) p->vals[n->out[j]].data = p->act + off[n->out[j]];
            else p->ctx[p->steps[s]].out[j]->data = NULL;
    }
    /* Unread optional outputs (absent in the model) need somewhere to go: give them scratch. */
    for (int s = 0; s < p->nsteps; s++) {
        const gr_node *n = &g->nodes[p->steps[s]];
        gr_opctx *c = &p->ctx[p->steps[s]];
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] < 0) {
                c->out[j]->data = gr_arena_alloc(p->arena, tensor_bytes(c->out[j]));
                if (!c->out[j]->data) { st = GRAFT_E_NOMEM; goto done; }
            }
    }
    if (p->scratch_bytes) {
        p->scratch = aligned_alloc(64, (p->scratch_bytes + 63) & ~(size_t)63);
        if (!p->scratch) st = gr_err(GRAFT_E_NOMEM, "out of memory for %zu bytes of scratch", p->scratch_bytes);
    }
done:
    free(last);
    free(off);
    free(live);
    return st;
}

int gr_plan_build(const gr_graph *g, const gr_tensor *inputs, const gr_plan_opts *opts, gr_plan **out)
{
    gr_plan *p = gr_calloc(1, sizeof *p);
    if (!p) return GRAFT_E_NOMEM;
    p->g = g;
    p->opts = *opts;
    p->arena = gr_arena_new(1 << 20);
    int st = p->arena ? GRAFT_OK : GRAFT_E_NOMEM;
    if (!st) {
        p->vals = gr_arena_alloc(p->arena, (size_t)(g->nvalues + 1) * sizeof *p->vals);
        p->known = gr_arena_alloc(p->arena, (size_t)g->nvalues + 1);
        p->ctx = gr_arena_alloc(p->arena, (size_t)(g->nnodes + 1) * sizeof *p->ctx);
        p->steps = gr_arena_alloc(p->arena, (size_t)(g->nnodes + 1) * sizeof *p->steps);
        p->in_shapes = gr_arena_alloc(p->arena, (size_t)(g->ninputs + 1) * sizeof *p->in_shapes);
        if (!p->vals || !p->known || !p->ctx || !p->steps || !p->in_shapes) st = GRAFT_E_NOMEM;
    }
    for (int v = 0; !st && v < g->nvalues; v++)
        if (g->values[v].is_init) {
            p->vals[v] = g->values[v].t;
            p->known[v] = 1;
        }
    if (!st) st = bind_inputs(p, inputs);
    for (int k = 0; !st && k < g->nnodes; k++) st = plan_node(p, k);
    if (!st) st = plan_memory(p);
    if (st) {
        gr_plan_free(p);
        return st;
    }
    *out = p;
    return GRAFT_OK;
}

void gr_plan_free(gr_plan *p)
{
    if (!p) return;
    if (p->ctx)
        for (int k = 0; k < p->g->nnodes; k++) {
            const gr_opdef *op = p->g->nodes[k].op;
            if (op && op->release && p->ctx[k].params) op->release(p->ctx[k].params);
        }
    free(p->act);
    free(p->scratch);
    gr_arena_free(p->arena);
    free(p);
}

void gr_plan_run(gr_plan *p, const gr_tensor *inputs)
{
    const gr_graph *g = p->g;
    if (!p->opts.inputs_const)
        for (int i = 0; i < g->ninputs; i++) p->vals[g->inputs[i]].data = inputs[i].data;
    for (int s = 0; s < p->nsteps; s++) {
        int k = p->steps[s];
        gr_opctx *c = &p->ctx[k];
        c->scratch = p->scratch;
        g->nodes[k].op->forward(c);
    }
}

const gr_tensor *gr_plan_value(const gr_plan *p, int v) { return &p->vals[v]; }

int gr_plan_matches(const gr_plan *p, const gr_tensor *inputs)
{
    for (int i = 0; i < p->g->ninputs; i++)
        if (!gr_shape_eq(&p->in_shapes[i], &inputs[i].shape) ||
            p->vals[p->g->inputs[i]].dtype != inputs[i].dtype)
            return 0;
    return 1;
}

size_t gr_plan_arena_bytes(const gr_plan *p) { return p->act_bytes + p->scratch_bytes; }
int64_t gr_plan_flops(const gr_plan *p) { return p->flops; }
int gr_plan_steps(const gr_plan *p) { return p->nsteps; }

/* A cut point is a step after which exactly one activation is alive: everything downstream
 * depends on the input only through that value, so the model can be cut there and the value
 * used as features. The last step (the model's output) is not a cut point. */
int gr_plan_cut_points(const gr_plan *p, int *values, int max)
{
    const gr_graph *g = p->g;
    int *last = malloc((size_t)(g->nvalues + 1) * sizeof *last), count = 0;
    if (!last) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int v = 0; v < g->nvalues; v++) last[v] = -1;
    for (int s = 0; s < p->nsteps; s++) {
        const gr_node *n = &g->nodes[p->steps[s]];
        for (int i = 0; i < n->nin; i++)
            if (n->in[i] >= 0 && !p->known[n->in[i]]) last[n->in[i]] = s;
    }
    for (int i = 0; i < g->noutputs; i++) last[g->outputs[i]] = p->nsteps;
    for (int s = 0; s + 1 < p->nsteps; s++) {
        int alive = 0, only = -1;
        for (int t = 0; t <= s; t++) {
            const gr_node *n = &g->nodes[p->steps[t]];
            for (int j = 0; j < n->nout; j++)
                if (n->out[j] >= 0 && last[n->out[j]] > s) { alive++; only = n->out[j]; }
        }
        for (int i = 0; i < g->ninputs; i++)
            if (last[g->inputs[i]] > s) alive++;
        if (alive == 1 && p->vals[only].dtype == GR_F32 && count < max) values[count++] = only;
    }
    free(last);
    return count;
}

int gr_plan_step_node(const gr_plan *p, int s) { return p->steps[s]; }
