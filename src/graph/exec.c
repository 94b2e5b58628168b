/* exec.c — plans and the executor.
 *
 * A plan specialises the graph to concrete input shapes: each node's prepare() infers output
 * shapes and builds its kernels once; nodes whose inputs are all known at plan time (initializers,
 * Shape of a known shape, ...) are run right away and become constants, which folds the
 * Shape → Gather → Unsqueeze → Concat → Reshape chains exporters emit. The remaining nodes are the
 * steps of a run.
 *
 * Layouts: an op flagged GR_OPF_LAYOUT may leave its output in a oneDNN layout (nChw16c...);
 * before an op that reads only plain tensors, and at the graph's outputs, the plan inserts a
 * ToPlain step. Such conversions are made once per value and shared by all its readers.
 *
 * Memory: step outputs live in one activation block laid out by a liveness plan (plan_memory.c):
 * a value holds its bytes from the step that produces it to its last reader, and first-fit
 * reuses freed ranges, so the block is far smaller than the sum of all activations. */
#include "exec_impl.h"

#include <inttypes.h>
#include <string.h>

int gr_plan_value_index(const gr_plan *p, const gr_tensor *t)
{
    return t >= p->vals && t < p->vals + p->nvals ? (int)(t - p->vals) : -1;
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
                return gr_err(GRAFT_E_SHAPE, "input '%s': expected shape %s (-1: any), got %s",
                              v->name, gr_shape_str(&v->t.shape, a, sizeof a),
                              gr_shape_str(&x->shape, b, sizeof b));
        }
        if (gr_numel_checked(&x->shape, gr_dtype_size(x->dtype)) < 0)
            return gr_err(GRAFT_E_SHAPE, "input '%s': shape %s is too large", v->name,
                          gr_shape_str(&x->shape, a, sizeof a));
        p->in_shapes[i] = x->shape;
        gr_tensor *t = &p->vals[g->inputs[i]];
        *t = (gr_tensor){ .dtype = x->dtype, .shape = x->shape };
        if (p->opts.inputs_const) {
            size_t n = gr_tensor_bytes(x);
            t->data = gr_arena_alloc(p->arena, n);
            if (!t->data) return GRAFT_E_NOMEM;
            if (n) memcpy(t->data, x->data, n);
            p->known[g->inputs[i]] = 1;
        }
    }
    return GRAFT_OK;
}

static int add_step(gr_plan *p, gr_opctx *c, const gr_opdef *op, int node)
{
    if (p->nsteps == p->capsteps) {
        int cap = p->capsteps * 2 + 16;
        step *s = gr_arena_alloc(p->arena, (size_t)cap * sizeof *s);
        if (!s) return GRAFT_E_NOMEM;
        if (p->nsteps) memcpy(s, p->steps, (size_t)p->nsteps * sizeof *s);
        p->steps = s;
        p->capsteps = cap;
    }
    p->steps[p->nsteps++] = (step){ .ctx = c, .op = op, .node = node, .kind = ST_FWD };
    if (c->scratch_bytes > p->scratch_bytes) p->scratch_bytes = c->scratch_bytes;
    return GRAFT_OK;
}

/* Runs a prepared op now (its inputs are known); its outputs become plan constants. */
static int fold(gr_plan *p, gr_opctx *c, const gr_opdef *op)
{
    for (int i = 0; i < c->nout; i++) {
        c->out[i]->data = gr_arena_alloc(p->arena, gr_tensor_bytes(c->out[i]));
        if (!c->out[i]->data) return GRAFT_E_NOMEM;
        int v = gr_plan_value_index(p, c->out[i]);
        if (v >= 0) p->known[v] = 1;
    }
    int st =
        c->scratch_bytes > (size_t)INT64_MAX / 2
            ? gr_err(GRAFT_E_SHAPE, "node '%s': its scratch size overflows", c->name)
            : gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, (int64_t)c->scratch_bytes,
                             "node '%s' needs %zu bytes of scratch", c->name, c->scratch_bytes);
    if (st) return st;
    void *scratch =
        c->scratch_bytes ? aligned_alloc(64, (c->scratch_bytes + 63) & ~(size_t)63) : NULL;
    if (c->scratch_bytes && !scratch) return gr_err(GRAFT_E_NOMEM, "out of memory for scratch");
    c->scratch = scratch;
    op->forward(c);
    free(scratch);
    c->scratch = NULL;
    return GRAFT_OK;
}

/* Returns the plan value holding v in plain layout, inserting a ToPlain step if needed. */
static int plain_value(gr_plan *p, int v, int *out)
{
    if (!p->vals[v].layout) {
        *out = v;
        return GRAFT_OK;
    }
    if (p->plain_of[v] >= 0) {
        *out = p->plain_of[v];
        return GRAFT_OK;
    }
    GR_ASSERT(p->nvals < p->capvals);
    int w = p->nvals++;
    gr_opctx *c = gr_arena_alloc(p->arena, sizeof *c);
    gr_tensor **io = gr_arena_alloc(p->arena, 2 * sizeof *io);
    if (!c || !io) return GRAFT_E_NOMEM;
    c->name = v < p->g->nvalues ? p->g->values[v].name : "(conversion)";
    c->op_type = gr_op_to_plain.name;
    c->def = &gr_op_to_plain;
    c->nin = c->nout = 1;
    c->in = io;
    c->out = io + 1;
    c->in[0] = &p->vals[v];
    c->out[0] = &p->vals[w];
    c->arena = p->arena;
    c->dnnl = p->opts.dnnl;
    c->need_grad = p->training && p->rg[v];
    if (p->training) p->rg[w] = p->rg[v];
    int st = gr_op_to_plain.prepare(c);
    if (st) return st;
    st = p->known[v] ? fold(p, c, &gr_op_to_plain) : add_step(p, c, &gr_op_to_plain, -1);
    if (st) return st;
    p->plain_of[v] = w;
    *out = w;
    return GRAFT_OK;
}

static int trainable(const gr_plan *p, int v)
{
    return p->training && v >= 0 && p->opts.trainable[v];
}

/* Which inputs of node k get gradients (before prepare): those carrying one, when an output of
 * the node influences the graph's outputs. */
static uint32_t node_need_grad(const gr_plan *p, int k)
{
    const gr_node *n = &p->g->nodes[k];
    if (!p->training || (n->op->flags & GR_OPF_SHAPE_ONLY)) return 0;
    int reaches = 0;
    for (int j = 0; j < n->nout; j++) reaches |= n->out[j] >= 0 && p->reach[n->out[j]];
    uint32_t need = 0;
    for (int i = 0; reaches && i < n->nin && i < 32; i++)
        if (n->in[i] >= 0 && p->rg[n->in[i]]) need |= 1u << i;
    return need;
}

/* need_grad is a 32-bit mask: a gradient for input 32 or later cannot be asked for. */
static int check_wide(const gr_plan *p, int k)
{
    const gr_node *n = &p->g->nodes[k];
    if (!p->training || n->nin <= 32) return GRAFT_OK;
    int reaches = 0;
    for (int j = 0; j < n->nout; j++) reaches |= n->out[j] >= 0 && p->reach[n->out[j]];
    for (int i = 32; reaches && i < n->nin; i++)
        if (n->in[i] >= 0 && p->rg[n->in[i]])
            return gr_err(GRAFT_E_UNSUPPORTED,
                          "node '%s' (%s): graft cannot train through input %d (at most 32 inputs "
                          "carry gradients); freeze the layers before it",
                          n->name, n->op_type, i);
    return GRAFT_OK;
}

/* See graph.h: BatchNorm trains with its own parameters, other nodes with the gradient path. */
static int node_training(const gr_plan *p, int k, uint32_t need)
{
    const gr_node *n = &p->g->nodes[k];
    if (!p->training) return 0;
    if (p->opts.node_mode && p->opts.node_mode[k] >= 0) return p->opts.node_mode[k];
    if (gr_node_running_stats(n))
        return n->nin > 2 && (trainable(p, n->in[1]) || trainable(p, n->in[2]));
    return need != 0;
}

static int reaching_float_output(const gr_plan *p, const gr_opctx *c, const gr_node *n)
{
    for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0 && p->reach[n->out[j]] && c->out[j]->dtype == GR_F32) return 1;
    return 0;
}

/* Forgets what a prepare made, for another prepare of the same node. */
static void unprepare(gr_opctx *c, const gr_opdef *op)
{
    if (op->release && c->params) op->release(c->params);
    c->params = NULL;
    c->scratch_bytes = 0;
    c->flops = 0;
}

/* Every value an op reads has a type graft knows (the loader refuses other graph inputs; this
 * keeps the ops' own type switches free of unknown types whatever a graph holds). */
static int check_input_types(const gr_plan *p, int k)
{
    const gr_node *n = &p->g->nodes[k];
    for (int i = 0; i < n->nin; i++) {
        int v = n->in[i];
        if (v >= 0 && !gr_dtype_size(p->vals[v].dtype))
            return gr_err(GRAFT_E_UNSUPPORTED,
                          "node '%s' (%s): input %d '%s' has element type %d, which graft "
                          "does not support",
                          n->name, n->op_type, i, p->g->values[v].name, (int)p->vals[v].dtype);
    }
    return GRAFT_OK;
}

/* The op context of node k, before prepare: attributes, arena, mode, input/output arrays. */
static int init_ctx(gr_plan *p, int k, uint32_t need)
{
    const gr_node *n = &p->g->nodes[k];
    gr_opctx *c = &p->ctx[k];
    *c = (gr_opctx){ .name = n->name,
                     .op_type = n->op_type,
                     .def = n->op,
                     .opset = p->g->opset,
                     .attrs = n->attrs,
                     .nattr = n->nattr,
                     .nin = n->nin,
                     .nout = n->nout,
                     .arena = p->arena,
                     .use_ref = p->opts.use_ref,
                     .layouts = !p->opts.use_ref,
                     .dnnl = p->opts.dnnl,
                     .training = node_training(p, k, need),
                     .need_grad = need,
                     .rng = p->opts.rng };
    c->in = gr_arena_alloc(p->arena, (size_t)(n->nin + 1) * sizeof(gr_tensor *));
    c->out = gr_arena_alloc(p->arena, (size_t)(n->nout + 1) * sizeof(gr_tensor *));
    if (!c->in || !c->out) return GRAFT_E_NOMEM;
    /* An absent optional output still gets a tensor to write into; it is never read. */
    for (int i = 0; i < n->nout; i++)
        c->out[i] =
            n->out[i] >= 0 ? &p->vals[n->out[i]] : gr_arena_alloc(p->arena, sizeof(gr_tensor));
    return GRAFT_OK;
}

/* prepare(), first with the inputs in the layouts their producers chose (if the op takes
 * layouts), again with plain inputs if it asks (GR_RETRY_PLAIN). *all_known: every input's data
 * is known at plan time (the node can be folded). */
static int prepare_node(gr_plan *p, int k, const gr_opdef *op, int *all_known)
{
    const gr_node *n = &p->g->nodes[k];
    gr_opctx *c = &p->ctx[k];
    int st = GRAFT_OK;
    for (int plain = !(op->flags & GR_OPF_LAYOUT);; plain = 1) {
        *all_known = 1;
        for (int i = 0; i < n->nin; i++) {
            int v = n->in[i];
            if (v < 0) continue;
            if (plain && (st = plain_value(p, v, &v))) return st;
            c->in[i] = &p->vals[v];
            if (!p->known[v]) {
                *all_known = 0;
                p->vals[v].data = NULL; /* prepare must not rely on activation data */
            }
        }
        st = op->prepare(c);
        if (!st && c->need_grad && !reaching_float_output(p, c, n)) {
            /* Only integer or boolean results (ArgMax, Equal...): nothing to differentiate. */
            unprepare(c, op);
            c->need_grad = 0;
            c->training = 0;
            st = op->prepare(c);
        }
        if (st != GR_RETRY_PLAIN || plain) break;
        c->params = NULL;
        c->scratch_bytes = 0;
        c->flops = 0;
    }
    if (st == GR_RETRY_PLAIN)
        return gr_err(GRAFT_E_INTERNAL, "node '%s' (%s) refused plain inputs", n->name, n->op_type);
    return st;
}

/* After prepare: every output typed and within the tensor-bytes limit. */
static int check_outputs(const gr_node *n, const gr_opctx *c)
{
    for (int i = 0; i < n->nout; i++) {
        if (!gr_dtype_size(c->out[i]->dtype))
            return gr_err(GRAFT_E_INTERNAL, "node '%s' (%s): output %d has no type after prepare",
                          n->name, n->op_type, i);
        int64_t bytes = c->out[i]->layout
                            ? (int64_t)c->out[i]->bytes
                            : gr_numel_checked(&c->out[i]->shape, gr_dtype_size(c->out[i]->dtype));
        if (bytes < 0)
            return gr_err(GRAFT_E_SHAPE,
                          "node '%s' (%s): output %d has a shape whose size overflows", n->name,
                          n->op_type, i);
        int st = gr_limit_check(GRAFT_LIMIT_TENSOR_BYTES, bytes,
                                "node '%s' (%s): output %d needs %" PRId64 " bytes", n->name,
                                n->op_type, i, bytes);
        if (st) return st;
    }
    return GRAFT_OK;
}

/* Training: bound inputs (trainable values, running statistics) keep their data; which outputs
 * carry a gradient. */
static int bind_training(gr_plan *p, int k)
{
    const gr_node *n = &p->g->nodes[k];
    gr_opctx *c = &p->ctx[k];
    for (int i = 0; i < n->nin; i++)
        if (c->in[i] && gr_plan_value_index(p, c->in[i]) >= 0 &&
            p->ext[gr_plan_value_index(p, c->in[i])])
            c->in[i]->data = p->g->values[gr_plan_value_index(p, c->in[i])].t.data;
    if (c->need_grad && !n->op->backward)
        return gr_err(
            GRAFT_E_UNSUPPORTED,
            "node '%s' (%s): graft cannot train through this op (it has no backward); freeze the "
            "layers before it or cut the model after it",
            n->name, n->op_type);
    for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0)
            p->rg[n->out[j]] = c->need_grad && p->reach[n->out[j]] && c->out[j]->dtype == GR_F32;
    return GRAFT_OK;
}

/* Wires node k's context, prepares it, and either folds it or makes it a step. */
static int plan_node(gr_plan *p, int k)
{
    const gr_node *n = &p->g->nodes[k];
    if (!n->op)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "node '%s' uses op '%s%s%s' (opset %d), which graft does not support",
                      n->name, n->domain, n->domain[0] ? "." : "", n->op_type, p->g->opset);
    const gr_opdef *op = gr_op_runner(n->op); /* the row, or flat.c's wrapper around it */
    uint32_t need = node_need_grad(p, k);
    int all_known, st = check_wide(p, k);
    if (!st) st = init_ctx(p, k, need);
    if (!st) st = check_input_types(p, k);
    if (!st) st = prepare_node(p, k, op, &all_known);
    if (!st && p->training) st = bind_training(p, k);
    if (!st) st = check_outputs(n, &p->ctx[k]);
    if (st) return st;
    p->flops += p->ctx[k].flops;
    if (all_known || (n->op->flags & GR_OPF_SHAPE_ONLY)) return fold(p, &p->ctx[k], op);
    return add_step(p, &p->ctx[k], op, k);
}

/* ---- backward steps ---- */

/* A new plan value shaped (and laid out) like v: its gradient or a temporary of one. */
static int value_like(gr_plan *p, int v)
{
    GR_ASSERT(p->nvals < p->capvals);
    int w = p->nvals++;
    p->vals[w] = p->vals[v];
    p->vals[w].data = NULL;
    return w;
}

static int push_step(gr_plan *p, step st)
{
    int s = add_step(p, st.ctx, st.op, st.node);
    if (s) return s;
    p->steps[p->nsteps - 1] = st;
    return GRAFT_OK;
}

/* Where node input u's gradient goes: its gradient value on the first contribution, else a
 * temporary that an add step folds in. Trainable values' gradients are bound to opts.grads. */
static int grad_target(gr_plan *p, int u, int *param_grad, int *tmp)
{
    *tmp = -1;
    if (u < p->g->nvalues && trainable(p, u)) {
        if (param_grad[u] < 0) {
            int w = value_like(p, u);
            p->ext[w] = 1;
            p->vals[w].data = p->opts.grads[u];
            param_grad[u] = w;
            return w;
        }
        return *tmp = value_like(p, u);
    }
    if (p->grad_of[u] < 0) return p->grad_of[u] = value_like(p, u);
    return *tmp = value_like(p, u);
}

/* Reverse-mode: one backward step per differentiated forward step, last to first, so every
 * gradient is complete before the step that reads it. */
static int plan_backward(gr_plan *p)
{
    const gr_graph *g = p->g;
    int st = GRAFT_OK;
    int *param_grad = malloc((size_t)(g->nvalues + 1) * sizeof *param_grad);
    if (!param_grad) return GRAFT_E_NOMEM;
    for (int v = 0; v < g->nvalues; v++) param_grad[v] = -1;
    for (int i = 0; i < g->noutputs; i++) {
        int o = p->outputs[i];
        if (!p->rg[o] || p->grad_of[o] >= 0) continue;
        /* a buffer of the plan's own: add steps may accumulate into it when the output is also
         * read inside the graph, so the caller's gradient is copied in, never written */
        int w = value_like(p, o);
        p->ext[w] = 1;
        p->grad_of[o] = p->out_grad[i] = w;
        p->vals[w].data = gr_arena_alloc(p->arena, gr_tensor_bytes(&p->vals[w]) + 64);
        if (!p->vals[w].data) {
            st = GRAFT_E_NOMEM;
            goto done;
        }
    }
    for (int s = p->nfwd - 1; s >= 0 && !st; s--) {
        step f = p->steps[s];
        gr_opctx *c = f.ctx;
        if (!c->need_grad) continue;
        gr_tensor **dout = gr_arena_alloc(p->arena, (size_t)(c->nout + 1) * sizeof *dout);
        gr_tensor **din = gr_arena_alloc(p->arena, (size_t)(c->nin + 1) * sizeof *din);
        if (!dout || !din) {
            st = GRAFT_E_NOMEM;
            break;
        }
        int any = 0;
        for (int j = 0; j < c->nout; j++) {
            int v = gr_plan_value_index(p, c->out[j]);
            if (v >= 0 && p->grad_of[v] >= 0) {
                dout[j] = &p->vals[p->grad_of[v]];
                any = 1;
            }
        }
        if (!any) continue; /* no gradient reaches this step */
        int nadd = 0, acc_v[32], tmp_v[32];
        for (int i = 0; i < c->nin && i < 32; i++) {
            if (!(c->need_grad >> i & 1)) continue;
            int u = gr_plan_value_index(p, c->in[i]), tmp;
            GR_ASSERT(u >= 0);
            int w = grad_target(p, u, param_grad, &tmp);
            din[i] = &p->vals[tmp >= 0 ? tmp : w];
            if (tmp >= 0) {
                acc_v[nadd] = u < g->nvalues && trainable(p, u) ? param_grad[u] : p->grad_of[u];
                tmp_v[nadd++] = tmp;
            }
        }
        /* what backward reads of the forward: the flags of the op's row (not of the flat.c
         * wrapper); a layout conversion reads nothing */
        const gr_opdef *own = f.node >= 0 ? g->nodes[f.node].op : NULL;
        int flags = own ? own->flags : GR_OPF_BWD_NO_X | GR_OPF_BWD_NO_Y;
        st = push_step(p, (step){ .ctx = c,
                                  .op = f.op,
                                  .node = f.node,
                                  .kind = ST_BWD,
                                  .dout = dout,
                                  .din = din,
                                  .bwd_flags = flags });
        for (int a = 0; !st && a < nadd; a++)
            st = push_step(p, (step){ .ctx = c,
                                      .op = f.op,
                                      .node = f.node,
                                      .kind = ST_ADD,
                                      .acc = &p->vals[acc_v[a]],
                                      .add = &p->vals[tmp_v[a]] });
        p->nbwd++;
    }
    for (int v = 0; v < g->nvalues; v++)
        if (trainable(p, v) && param_grad[v] < 0) p->unwritten[p->nunwritten++] = v;
done:
    free(param_grad);
    return st;
}

/* reach[v]: v influences a graph output (so a gradient can come back to it). */
static void find_reach(gr_plan *p)
{
    const gr_graph *g = p->g;
    for (int i = 0; i < g->noutputs; i++) p->reach[g->outputs[i]] = 1;
    for (int k = g->nnodes - 1; k >= 0; k--) {
        const gr_node *n = &g->nodes[k];
        int r = 0;
        for (int j = 0; j < n->nout; j++) r |= n->out[j] >= 0 && p->reach[n->out[j]];
        for (int i = 0; r && i < n->nin; i++)
            if (n->in[i] >= 0) p->reach[n->in[i]] = 1;
    }
}

/* Trainable values and the running statistics of training BatchNorms change between runs:
 * they are bound (their data stays where the graph keeps it), never plan-time constants. */
static int alloc_training(gr_plan *p)
{
    const gr_graph *g = p->g;
    p->ext = gr_arena_alloc(p->arena, (size_t)p->capvals + 1);
    p->rg = gr_arena_alloc(p->arena, (size_t)p->capvals + 1);
    p->reach = gr_arena_alloc(p->arena, (size_t)g->nvalues + 1);
    p->grad_of = gr_arena_alloc(p->arena, (size_t)(p->capvals + 1) * sizeof *p->grad_of);
    p->out_grad = gr_arena_alloc(p->arena, (size_t)(g->noutputs + 1) * sizeof *p->out_grad);
    p->unwritten = gr_arena_alloc(p->arena, (size_t)(g->nvalues + 1) * sizeof *p->unwritten);
    if (!p->ext || !p->rg || !p->reach || !p->grad_of || !p->out_grad || !p->unwritten)
        return GRAFT_E_NOMEM;
    for (int v = 0; v < p->capvals; v++) p->grad_of[v] = -1;
    for (int i = 0; i < g->noutputs; i++) p->out_grad[i] = -1;
    find_reach(p);
    for (int v = 0; v < g->nvalues; v++) {
        if (!p->opts.trainable[v]) continue;
        const gr_value *x = &g->values[v];
        if (!x->is_init || x->t.dtype != GR_F32 || !p->opts.grads || !p->opts.grads[v])
            return gr_err(
                GRAFT_E_ARG,
                "'%s' cannot be trained: only float32 initializers with a gradient buffer can",
                x->name);
        p->known[v] = 0;
        p->ext[v] = 1;
        p->rg[v] = 1;
    }
    for (int k = 0; k < g->nnodes; k++) {
        const gr_node *n = &g->nodes[k];
        if (!gr_node_running_stats(n) || n->nin < 5 || !node_training(p, k, 1)) continue;
        for (int i = 3; i < 5; i++) {
            int v = n->in[i];
            if (v < 0 || !g->values[v].is_init)
                return gr_err(GRAFT_E_UNSUPPORTED,
                              "node '%s' (BatchNormalization): its running statistics "
                              "must be initializers to train it",
                              n->name);
            p->known[v] = 0;
            p->ext[v] = 1;
        }
    }
    return GRAFT_OK;
}

static int alloc_plan(gr_plan *p)
{
    const gr_graph *g = p->g;
    int extra = g->noutputs;
    for (int k = 0; k < g->nnodes; k++) extra += g->nodes[k].nin;
    p->capvals = g->nvalues + extra;
    /* Training adds a gradient per value, a temporary per extra contribution (at most one per
     * node input and output) and the bound ones of the parameters. */
    if (p->training) p->capvals = 3 * p->capvals + g->noutputs;
    p->nvals = g->nvalues;
    p->vals = gr_arena_alloc(p->arena, (size_t)(p->capvals + 1) * sizeof *p->vals);
    p->known = gr_arena_alloc(p->arena, (size_t)p->capvals + 1);
    p->plain_of = gr_arena_alloc(p->arena, (size_t)(p->capvals + 1) * sizeof *p->plain_of);
    p->ctx = gr_arena_alloc(p->arena, (size_t)(g->nnodes + 1) * sizeof *p->ctx);
    p->outputs = gr_arena_alloc(p->arena, (size_t)(g->noutputs + 1) * sizeof *p->outputs);
    p->in_shapes = gr_arena_alloc(p->arena, (size_t)(g->ninputs + 1) * sizeof *p->in_shapes);
    if (!p->vals || !p->known || !p->plain_of || !p->ctx || !p->outputs || !p->in_shapes)
        return GRAFT_E_NOMEM;
    for (int v = 0; v < p->capvals; v++) p->plain_of[v] = -1;
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].is_init) {
            p->vals[v] = g->values[v].t;
            p->known[v] = 1;
        }
    return p->training ? alloc_training(p) : GRAFT_OK;
}

int gr_plan_build(const gr_graph *g, const gr_tensor *inputs, const gr_plan_opts *opts,
                  gr_plan **out)
{
    gr_plan *p = gr_calloc(1, sizeof *p);
    if (!p) return GRAFT_E_NOMEM;
    p->g = g;
    p->opts = *opts;
    p->training = opts->trainable != NULL;
    p->arena = gr_arena_new(1 << 20);
    int st = p->arena ? alloc_plan(p) : GRAFT_E_NOMEM;
    if (!st) st = bind_inputs(p, inputs);
    for (int k = 0; !st && k < g->nnodes; k++) st = plan_node(p, k);
    for (int i = 0; !st && i < g->noutputs; i++) st = plain_value(p, g->outputs[i], &p->outputs[i]);
    p->nfwd = p->nsteps;
    if (!st && p->training) st = plan_backward(p);
    if (!st) st = gr_plan_memory(p);
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
    if (p->ctx) /* folded nodes keep state too: release every prepared node */
        for (int k = 0; k < p->g->nnodes; k++) {
            const gr_opdef *op = p->g->nodes[k].op;
            if (op && op->release && p->ctx[k].params) op->release(p->ctx[k].params);
        }
    for (int s = 0; s < p->nsteps; s++)
        if (p->steps[s].kind == ST_FWD && p->steps[s].node < 0 && p->steps[s].op->release &&
            p->steps[s].ctx->params)
            p->steps[s].op->release(p->steps[s].ctx->params);
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
    for (int s = 0; s < p->nfwd; s++) {
        gr_opctx *c = p->steps[s].ctx;
        c->scratch = p->scratch;
        p->steps[s].op->forward(c);
    }
}

void gr_plan_backward(gr_plan *p, const gr_tensor *const *doutputs)
{
    if (!p->training) return;
    for (int i = 0; i < p->g->noutputs; i++) {
        if (p->out_grad[i] < 0) continue;
        gr_tensor *gt = &p->vals[p->out_grad[i]];
        if (doutputs && doutputs[i]) memcpy(gt->data, doutputs[i]->data, gr_tensor_bytes(gt));
        else memset(gt->data, 0, gr_tensor_bytes(gt));
    }
    for (int u = 0; u < p->nunwritten; u++) {
        int v = p->unwritten[u];
        memset(p->opts.grads[v], 0, gr_numel(&p->g->values[v].t.shape) * sizeof(float));
    }
    for (int s = p->nfwd; s < p->nsteps; s++) {
        step *st = &p->steps[s];
        if (st->kind == ST_ADD) {
            float *a = st->acc->data;
            const float *b = st->add->data;
            size_t n = gr_tensor_bytes(st->acc) / sizeof(float);
            for (size_t i = 0; i < n; i++) a[i] += b[i];
            continue;
        }
        st->ctx->scratch = p->scratch;
        st->op->backward(st->ctx, st->dout, st->din);
    }
}

int gr_plan_backward_steps(const gr_plan *p) { return p->nbwd; }

const gr_tensor *gr_plan_value(const gr_plan *p, int v) { return &p->vals[v]; }
const gr_tensor *gr_plan_output(const gr_plan *p, int i) { return &p->vals[p->outputs[i]]; }

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
int gr_plan_steps(const gr_plan *p) { return p->nfwd; }

/* last[v]: index of the last forward step reading plan value v (nfwd for graph outputs). */
static int *last_uses(const gr_plan *p)
{
    int *last = malloc((size_t)(p->nvals + 1) * sizeof *last);
    if (!last) return NULL;
    for (int v = 0; v < p->nvals; v++) last[v] = -1;
    for (int s = 0; s < p->nfwd; s++) {
        const gr_opctx *c = p->steps[s].ctx;
        for (int i = 0; i < c->nin; i++) {
            int v = c->in[i] ? gr_plan_value_index(p, c->in[i]) : -1;
            if (v >= 0) last[v] = s;
        }
    }
    for (int i = 0; i < p->g->noutputs; i++) last[p->outputs[i]] = p->nfwd;
    return last;
}

/* A cut point is a graph value after which exactly one activation is alive: everything
 * downstream depends on the input only through it, so the model can be cut there and the value
 * used as features. The model's outputs are not cut points. */
int gr_plan_cut_points(const gr_plan *p, int *values, int max)
{
    /* Activations alive after step s are those made by a step t <= s and read after s: each
     * adds 1 to the count (and its index to a sum) from t to last[v] - 1, a difference array
     * over the steps, so the scan is linear. With one activation alive the sum is its index. */
    int *last = last_uses(p), count = 0, n = p->nfwd;
    int64_t *dcount = calloc((size_t)n + 2, sizeof *dcount),
            *dsum = calloc((size_t)n + 2, sizeof *dsum);
    if (!last || !dcount || !dsum) {
        free(last), free(dcount), free(dsum);
        return -gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    const gr_graph *g = p->g;
    for (int i = 0; i < g->ninputs; i++) { /* a graph input alive: no single activation */
        int v = g->inputs[i];
        if (last[v] > 0) dcount[0] += (int64_t)n + 1, dcount[last[v]] -= (int64_t)n + 1;
    }
    for (int t = 0; t < n; t++) {
        if (p->steps[t].node < 0) continue;
        const gr_opctx *c = p->steps[t].ctx;
        for (int j = 0; j < c->nout; j++) {
            int v = gr_plan_value_index(p, c->out[j]);
            if (v < 0 || last[v] <= t) continue;
            dcount[t]++, dcount[last[v]]--;
            dsum[t] += v, dsum[last[v]] -= v;
        }
    }
    int64_t alive = 0, sum = 0;
    for (int s = 0; s + 1 < n; s++) {
        alive += dcount[s];
        sum += dsum[s];
        if (p->steps[s].node < 0 || alive != 1) continue;
        int only = (int)sum;
        if (only < g->nvalues && p->vals[only].dtype == GR_F32 && count < max)
            values[count++] = only;
    }
    free(last);
    free(dcount);
    free(dsum);
    return count;
}
