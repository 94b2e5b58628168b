/* graph.c — the IR's bookkeeping and editing primitives: value lookup by name, topological
 * order, and the edits every graph builder uses (adding values, inputs, outputs and nodes,
 * pruning, appending one graph to another, constants inlined).
 *
 * Edits never leave the graph half-changed on a bad argument: everything is checked before the
 * first change (only running out of memory can stop an edit midway). The graph stays
 * topologically sorted: a new node may only read values that exist already. Prune keeps every
 * graph input even when nothing reads it (the caller's inputs do not move). */
#include "graph.h"

#include <string.h>

void gr_graph_free(gr_graph *g)
{
    if (!g) return;
    gr_arena_free(g->arena);
    free(g);
}

int gr_graph_find_value(const gr_graph *g, const char *name)
{
    for (int i = 0; i < g->nvalues; i++)
        if (strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

/* A binary min-heap of node indices: the ready node first in the file goes first. */
typedef struct heap {
    int *a, n;
} heap;

static void heap_push(heap *h, int k)
{
    int i = h->n++;
    for (; i > 0 && h->a[(i - 1) / 2] > k; i = (i - 1) / 2) h->a[i] = h->a[(i - 1) / 2];
    h->a[i] = k;
}

static int heap_pop(heap *h)
{
    int top = h->a[0], last = h->a[--h->n], i = 0;
    for (int c; (c = 2 * i + 1) < h->n; i = c) {
        if (c + 1 < h->n && h->a[c + 1] < h->a[c]) c++;
        if (last <= h->a[c]) break;
        h->a[i] = h->a[c];
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* Producers, with the single-assignment checks: a value has one producer, and a graph input
 * or an initializer none (a node writing one would write into the caller's buffer or the
 * weights). ready[v]: v is available before any node runs. */
static int find_producers(gr_graph *g, const unsigned char *ready)
{
    for (int k = 0; k < g->nnodes; k++)
        for (int j = 0; j < g->nodes[k].nout; j++) {
            int v = g->nodes[k].out[j];
            if (v < 0) continue;
            if (ready[v] && !g->values[v].is_init)
                return gr_err(GRAFT_E_FORMAT, "node '%s' (%s) writes '%s', which is a graph input",
                              g->nodes[k].name, g->nodes[k].op_type, g->values[v].name);
            if (g->values[v].producer >= 0 || g->values[v].is_init)
                return gr_err(GRAFT_E_FORMAT, "value '%s' is produced twice (node '%s')",
                              g->values[v].name, g->nodes[k].name);
            g->values[v].producer = k;
        }
    return GRAFT_OK;
}

/* pending[k]: inputs of node k not yet available (each use counted); the readers of every
 * value as lists (first[v] .. first[v + 1] in users). Fails naming an input nothing makes. */
static int count_pending(const gr_graph *g, const unsigned char *ready, int *pending, int *first,
                         int *users)
{
    for (int k = 0; k < g->nnodes; k++)
        for (int j = 0; j < g->nodes[k].nin; j++) {
            int v = g->nodes[k].in[j];
            if (v < 0 || ready[v]) continue;
            if (g->values[v].producer < 0)
                return gr_err(GRAFT_E_FORMAT,
                              "node '%s' (%s) reads '%s', which is neither a graph input, an "
                              "initializer nor produced by any node",
                              g->nodes[k].name, g->nodes[k].op_type, g->values[v].name);
            pending[k]++;
            first[v + 1]++;
        }
    for (int v = 0; v < g->nvalues; v++) first[v + 1] += first[v];
    int *fill = users + first[g->nvalues]; /* scratch after the lists: next free slot per value */
    for (int v = 0; v < g->nvalues; v++) fill[v] = first[v];
    for (int k = 0; k < g->nnodes; k++)
        for (int j = 0; j < g->nodes[k].nin; j++) {
            int v = g->nodes[k].in[j];
            if (v >= 0 && !ready[v]) users[fill[v]++] = k;
        }
    return GRAFT_OK;
}

/* Kahn's algorithm, stable: among ready nodes the one first in the file goes first, so a
 * model that is already sorted keeps its order. O((nodes + uses) log nodes). */
int gr_graph_sort(gr_graph *g)
{
    int n = g->nnodes, status = GRAFT_OK, uses = 0;
    for (int k = 0; k < n; k++) uses += g->nodes[k].nin;
    int *pending = gr_calloc((size_t)n + 1, sizeof *pending); /* unmet inputs per node */
    int *order = gr_calloc((size_t)n + 1, sizeof *order);
    unsigned char *ready = gr_calloc((size_t)g->nvalues + 1, 1);
    gr_node *sorted = gr_calloc((size_t)n + 1, sizeof *sorted);
    int *first = gr_calloc((size_t)g->nvalues + 2, sizeof *first);
    int *users = gr_calloc((size_t)uses + (size_t)g->nvalues + 1, sizeof *users);
    heap h = { gr_calloc((size_t)n + 1, sizeof(int)), 0 };
    if (!pending || !order || !ready || !sorted || !first || !users || !h.a) {
        status = GRAFT_E_NOMEM;
        goto done;
    }

    for (int v = 0; v < g->nvalues; v++) {
        g->values[v].producer = -1;
        ready[v] = g->values[v].is_init;
    }
    for (int i = 0; i < g->ninputs; i++) ready[g->inputs[i]] = 1;
    if ((status = find_producers(g, ready)) ||
        (status = count_pending(g, ready, pending, first, users)))
        goto done;

    int done_count = 0;
    for (int k = 0; k < n; k++)
        if (pending[k] == 0) heap_push(&h, k);
    while (h.n) {
        int k = heap_pop(&h);
        order[done_count++] = k;
        for (int j = 0; j < g->nodes[k].nout; j++) {
            int v = g->nodes[k].out[j];
            if (v < 0 || ready[v]) continue;
            ready[v] = 1;
            for (int u = first[v]; u < first[v + 1]; u++)
                if (--pending[users[u]] == 0) heap_push(&h, users[u]);
        }
    }
    if (done_count < n) {
        for (int k = 0; k < n; k++)
            if (pending[k] > 0) {
                status = gr_err(GRAFT_E_FORMAT, "the graph has a cycle through node '%s' (%s)",
                                g->nodes[k].name, g->nodes[k].op_type);
                goto done;
            }
    }
    for (int i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, (size_t)n * sizeof *sorted);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < g->nodes[k].nout; j++)
            if (g->nodes[k].out[j] >= 0) g->values[g->nodes[k].out[j]].producer = k;
done:
    free(pending);
    free(order);
    free(ready);
    free(sorted);
    free(first);
    free(users);
    free(h.a);
    return status;
}

/* ---- editing primitives ---- */

static int oom(void) { return gr_err(GRAFT_E_NOMEM, "out of memory editing the graph"); }

static int is_graph_input(const gr_graph *g, int v)
{
    for (int i = 0; i < g->ninputs; i++)
        if (g->inputs[i] == v) return 1;
    return 0;
}

static int is_graph_output(const gr_graph *g, int v)
{
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == v) return 1;
    return 0;
}

int gr_graph_can_read(const gr_graph *g, int v)
{
    return g->values[v].is_init || g->values[v].producer >= 0 || is_graph_input(g, v);
}

int gr_graph_find_node(const gr_graph *g, const char *name)
{
    for (int k = 0; k < g->nnodes; k++)
        if (strcmp(g->nodes[k].name, name) == 0) return k;
    return -1;
}

/* The arrays live in the arena at their exact size: an append copies them (edits are few). */
static int grow_values(gr_graph *g)
{
    gr_value *v = gr_arena_alloc(g->arena, (size_t)(g->nvalues + 2) * sizeof *v);
    if (!v) return oom();
    if (g->nvalues) memcpy(v, g->values, (size_t)g->nvalues * sizeof *v);
    g->values = v;
    return GRAFT_OK;
}

int gr_graph_add_value(gr_graph *g, const char *name, int dtype, const gr_shape *shape,
                       const void *data, int *out)
{
    if (!name || !name[0]) return gr_err(GRAFT_E_ARG, "a new value needs a name");
    if (gr_graph_find_value(g, name) >= 0)
        return gr_err(GRAFT_E_ARG, "a value named '%s' already exists", name);
    if (shape && (shape->rank < 0 || shape->rank > GR_MAXDIM))
        return gr_err(GRAFT_E_ARG, "value '%s': rank %d is outside [0, %d]", name, shape->rank,
                      GR_MAXDIM);
    gr_value nv = { .producer = -1 };
    nv.t.dtype = (gr_dtype)dtype;
    if (shape) {
        nv.t.shape = *shape;
        nv.has_shape = 1;
    }
    if (data) {
        int64_t n =
            shape && gr_dtype_size(dtype) ? gr_numel_checked(shape, gr_dtype_size(dtype)) : -1;
        for (int d = 0; shape && d < shape->rank; d++)
            if (shape->d[d] < 0) n = -1;
        if (n < 0)
            return gr_err(GRAFT_E_ARG, "initializer '%s' needs a known dtype and a concrete shape",
                          name);
        size_t bytes = (size_t)n * gr_dtype_size(dtype);
        if (!(nv.t.data = gr_arena_alloc(g->arena, bytes + 1))) return oom();
        if (bytes) memcpy(nv.t.data, data, bytes);
        nv.is_init = 1;
    }
    if (!(nv.name = gr_arena_strdup(g->arena, name)) || grow_values(g)) return oom();
    g->values[g->nvalues] = nv;
    if (out) *out = g->nvalues;
    g->nvalues++;
    return GRAFT_OK;
}

int gr_graph_new(int opset, gr_graph **out)
{
    gr_graph *g = gr_calloc(1, sizeof *g);
    if (g) g->arena = gr_arena_new(1 << 16);
    if (!g || !g->arena) {
        free(g);
        return oom();
    }
    g->opset = opset;
    g->ir_version = 8;
    g->producer = gr_arena_strdup(g->arena, "graft");
    g->producer_version = gr_arena_strdup(g->arena, "");
    g->graph_name = gr_arena_strdup(g->arena, "graft");
    g->path = gr_arena_strdup(g->arena, "");
    if (!g->producer || !g->producer_version || !g->graph_name || !g->path) {
        gr_graph_free(g);
        return oom();
    }
    *out = g;
    return GRAFT_OK;
}

/* Appends v to an arena array of n ints (copied: the arrays live at their exact size). */
static int append_index(gr_graph *g, int **arr, int *n, int v)
{
    int *a = gr_arena_alloc(g->arena, (size_t)(*n + 1) * sizeof *a);
    if (!a) return oom();
    if (*n) memcpy(a, *arr, (size_t)*n * sizeof *a);
    a[(*n)++] = v;
    *arr = a;
    return GRAFT_OK;
}

int gr_graph_add_input(gr_graph *g, const char *name, int dtype, const gr_shape *shape, int *out)
{
    int v;
    int st = gr_graph_add_value(g, name, dtype, shape, NULL, &v);
    if (!st) st = append_index(g, &g->inputs, &g->ninputs, v);
    if (!st && out) *out = v;
    return st;
}

int gr_graph_add_output(gr_graph *g, int v)
{
    if (v < 0 || v >= g->nvalues) return gr_err(GRAFT_E_ARG, "value %d is not in the graph", v);
    return append_index(g, &g->outputs, &g->noutputs, v);
}

static int copy_attr(gr_arena *a, const gr_attr *src, gr_attr *dst)
{
    *dst = *src;
    if (src->type == GR_AT_GRAPH || (src->type == GR_AT_TENSOR && src->t.layout))
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "attribute '%s': graph-valued or laid-out tensors cannot be copied",
                      src->name);
    if (!(dst->name = gr_arena_strdup(a, src->name))) return oom();
    if (src->s && !(dst->s = gr_arena_strdup(a, src->s))) return oom();
    int n = src->n > 0 ? src->n : 0;
    if (src->ints) {
        if (!(dst->ints = gr_arena_alloc(a, (size_t)n * sizeof *dst->ints + 1))) return oom();
        if (n) memcpy(dst->ints, src->ints, (size_t)n * sizeof *dst->ints);
    }
    if (src->floats) {
        if (!(dst->floats = gr_arena_alloc(a, (size_t)n * sizeof *dst->floats + 1))) return oom();
        if (n) memcpy(dst->floats, src->floats, (size_t)n * sizeof *dst->floats);
    }
    if (src->strings) {
        const char **s = gr_arena_alloc(a, (size_t)(n + 1) * sizeof *s);
        if (!s) return oom();
        for (int i = 0; i < n; i++)
            if (src->strings[i] && !(s[i] = gr_arena_strdup(a, src->strings[i]))) return oom();
        dst->strings = s;
    }
    if (src->type == GR_AT_TENSOR && src->t.data) {
        size_t bytes = gr_tensor_bytes(&src->t);
        if (!(dst->t.data = gr_arena_alloc(a, bytes + 1))) return oom();
        memcpy(dst->t.data, src->t.data, bytes);
    }
    return GRAFT_OK;
}

int gr_graph_add_node(gr_graph *g, const char *name, const char *op_type, const int *in, int nin,
                      const int *out, int nout, const gr_attr *attrs, int nattr, int *index)
{
    char fallback[32];
    snprintf(fallback, sizeof fallback, "#%d", g->nnodes);
    const char *nm = name && name[0] ? name : fallback;
    const gr_opdef *op = op_type ? gr_op_find(op_type, "") : NULL;
    if (!op && op_type) op = gr_op_find(op_type, GR_DOMAIN_GRAFT); /* graft's training ops */
    if (!op)
        return gr_err(GRAFT_E_UNSUPPORTED, "cannot add node '%s': graft does not support op '%s'",
                      nm, op_type ? op_type : "(null)");
    if (nin < 0 || nout < 1 || nattr < 0)
        return gr_err(GRAFT_E_ARG, "node '%s': %d inputs, %d outputs", nm, nin, nout);
    if (gr_graph_find_node(g, nm) >= 0)
        return gr_err(GRAFT_E_ARG, "a node named '%s' already exists", nm);
    for (int i = 0; i < nin; i++) {
        if (in[i] < -1 || in[i] >= g->nvalues)
            return gr_err(GRAFT_E_ARG, "node '%s': input %d is value %d, not in the graph", nm, i,
                          in[i]);
        if (in[i] >= 0 && !gr_graph_can_read(g, in[i]))
            return gr_err(
                GRAFT_E_ARG,
                "node '%s': input %d '%s' is not available yet (neither a graph input, an "
                "initializer nor an output of an existing node)",
                nm, i, g->values[in[i]].name);
    }
    for (int j = 0; j < nout; j++) {
        int v = out[j];
        if (v < -1 || v >= g->nvalues)
            return gr_err(GRAFT_E_ARG, "node '%s': output %d is value %d, not in the graph", nm, j,
                          v);
        if (v < 0) continue;
        if (g->values[v].is_init || g->values[v].producer >= 0 || is_graph_input(g, v))
            return gr_err(GRAFT_E_ARG, "node '%s': output '%s' is already defined", nm,
                          g->values[v].name);
        for (int q = 0; q < j; q++)
            if (out[q] == v)
                return gr_err(GRAFT_E_ARG, "node '%s': output '%s' is listed twice", nm,
                              g->values[v].name);
    }
    gr_node n = { .op = op, .nin = nin, .nout = nout, .nattr = nattr };
    n.name = gr_arena_strdup(g->arena, nm);
    n.op_type = gr_arena_strdup(g->arena, op_type);
    n.domain = gr_arena_strdup(g->arena, gr_op_domain(op));
    n.in = gr_arena_alloc(g->arena, (size_t)(nin + 1) * sizeof *n.in);
    n.out = gr_arena_alloc(g->arena, (size_t)(nout + 1) * sizeof *n.out);
    n.attrs = gr_arena_alloc(g->arena, (size_t)(nattr + 1) * sizeof *n.attrs);
    gr_node *nodes = gr_arena_alloc(g->arena, (size_t)(g->nnodes + 2) * sizeof *nodes);
    if (!n.name || !n.op_type || !n.domain || !n.in || !n.out || !n.attrs || !nodes) return oom();
    if (nin) memcpy(n.in, in, (size_t)nin * sizeof *in);
    memcpy(n.out, out, (size_t)nout * sizeof *out);
    for (int a = 0; a < nattr; a++) {
        int st = copy_attr(g->arena, &attrs[a], &n.attrs[a]);
        if (st) return gr_err_prefix(st, "node '%s'", nm);
    }
    if (g->nnodes) memcpy(nodes, g->nodes, (size_t)g->nnodes * sizeof *nodes);
    nodes[g->nnodes] = n;
    g->nodes = nodes;
    for (int j = 0; j < nout; j++)
        if (out[j] >= 0) g->values[out[j]].producer = g->nnodes;
    if (index) *index = g->nnodes;
    g->nnodes++;
    return GRAFT_OK;
}

/* ---- a deep copy ---- */

static char *dup_or_null(gr_arena *a, const char *s, int *bad)
{
    char *d = s ? gr_arena_strdup(a, s) : NULL;
    if (s && !d) *bad = 1;
    return d;
}

static int *dup_ints(gr_arena *a, const int *v, int n, int *bad)
{
    int *d = gr_arena_alloc(a, (size_t)(n + 1) * sizeof *d);
    if (!d) *bad = 1;
    else if (n) memcpy(d, v, (size_t)n * sizeof *d);
    return d;
}

static int clone_values(const gr_graph *src, int share_init, gr_graph *g)
{
    int bad = 0;
    g->values = gr_arena_alloc(g->arena, (size_t)(src->nvalues + 1) * sizeof *g->values);
    if (!g->values) return oom();
    for (int v = 0; v < src->nvalues && !bad; v++) {
        const gr_value *s = &src->values[v];
        gr_value *d = &g->values[v];
        *d = *s;
        d->name = dup_or_null(g->arena, s->name, &bad);
        if (!s->is_init || !s->t.data || share_init) continue;
        size_t bytes = gr_tensor_bytes(&s->t);
        if (!(d->t.data = gr_arena_alloc(g->arena, bytes + 1))) return oom();
        memcpy(d->t.data, s->t.data, bytes);
    }
    g->nvalues = src->nvalues;
    return bad ? oom() : GRAFT_OK;
}

static int clone_nodes(const gr_graph *src, gr_graph *g)
{
    int bad = 0;
    g->nodes = gr_arena_alloc(g->arena, (size_t)(src->nnodes + 1) * sizeof *g->nodes);
    if (!g->nodes) return oom();
    for (int k = 0; k < src->nnodes && !bad; k++) {
        const gr_node *s = &src->nodes[k];
        gr_node *d = &g->nodes[k];
        *d = *s;
        d->name = dup_or_null(g->arena, s->name, &bad);
        d->op_type = dup_or_null(g->arena, s->op_type, &bad);
        d->domain = dup_or_null(g->arena, s->domain, &bad);
        d->in = dup_ints(g->arena, s->in, s->nin, &bad);
        d->out = dup_ints(g->arena, s->out, s->nout, &bad);
        d->attrs = gr_arena_alloc(g->arena, (size_t)(s->nattr + 1) * sizeof *d->attrs);
        if (!d->attrs) return oom();
        for (int a = 0; a < s->nattr; a++) {
            int st = copy_attr(g->arena, &s->attrs[a], &d->attrs[a]);
            if (st) return gr_err_prefix(st, "node '%s'", s->name);
        }
    }
    g->nnodes = src->nnodes;
    return bad ? oom() : GRAFT_OK;
}

static int clone_rest(const gr_graph *src, gr_graph *g)
{
    int bad = 0;
    g->ninputs = src->ninputs, g->noutputs = src->noutputs;
    g->inputs = dup_ints(g->arena, src->inputs, src->ninputs, &bad);
    g->outputs = dup_ints(g->arena, src->outputs, src->noutputs, &bad);
    g->opset = src->opset, g->ir_version = src->ir_version;
    g->producer = dup_or_null(g->arena, src->producer, &bad);
    g->producer_version = dup_or_null(g->arena, src->producer_version, &bad);
    g->graph_name = dup_or_null(g->arena, src->graph_name, &bad);
    g->path = dup_or_null(g->arena, src->path, &bad);
    g->meta = gr_arena_alloc(g->arena, (size_t)(src->nmeta + 1) * sizeof *g->meta);
    if (bad || !g->meta) return oom();
    for (int i = 0; i < src->nmeta && !bad; i++) {
        g->meta[i].key = dup_or_null(g->arena, src->meta[i].key, &bad);
        g->meta[i].value = dup_or_null(g->arena, src->meta[i].value, &bad);
    }
    g->nmeta = src->nmeta;
    return bad ? oom() : GRAFT_OK;
}

int gr_graph_sync_inits(gr_graph *dst, const gr_graph *src)
{
    int n = 0;
    for (int v = 0; v < dst->nvalues; v++) {
        gr_value *d = &dst->values[v];
        if (!d->is_init) continue;
        int w = gr_graph_find_value(src, d->name);
        if (w < 0) continue;
        const gr_value *s = &src->values[w];
        if (!s->is_init || s->t.dtype != d->t.dtype || !gr_shape_eq(&s->t.shape, &d->t.shape))
            continue;
        n += d->t.data != s->t.data;
        d->t.data = s->t.data;
    }
    return n;
}

int gr_graph_clone(const gr_graph *src, int share_init, gr_graph **out)
{
    gr_graph *g = gr_calloc(1, sizeof *g);
    if (g) g->arena = gr_arena_new(1 << 20);
    if (!g || !g->arena) {
        free(g);
        return oom();
    }
    int st = clone_values(src, share_init, g);
    if (!st) st = clone_nodes(src, g);
    if (!st) st = clone_rest(src, g);
    if (st) {
        gr_graph_free(g);
        return st;
    }
    *out = g;
    return GRAFT_OK;
}

int gr_name_in_head(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) == 0 && name[n] == '.';
}

/* Forgets recorded heads none of whose nodes is left. */
static void drop_stale_heads(gr_graph *g)
{
    int m = 0;
    for (int i = 0; i < g->nmeta; i++) {
        int live = strcmp(g->meta[i].key, GR_HEAD_META) != 0;
        for (int k = 0; !live && k < g->nnodes; k++)
            live = gr_name_in_head(g->nodes[k].name, g->meta[i].value);
        if (live) g->meta[m++] = g->meta[i];
    }
    g->nmeta = m;
}

/* An Identity of an initializer, whose output is no graph output, becomes an initializer of its
 * own (a copy). Returns 1 when it did, 0 when the node is not one, -1 out of memory. */
static int inline_identity(gr_graph *g, gr_node *nd)
{
    if (strcmp(nd->op_type, "Identity") || nd->domain[0] || nd->nin != 1 || nd->nout != 1 ||
        nd->in[0] < 0 || nd->out[0] < 0 || !g->values[nd->in[0]].is_init ||
        !g->values[nd->in[0]].t.data || is_graph_output(g, nd->out[0]))
        return 0;
    const gr_tensor *src = &g->values[nd->in[0]].t;
    size_t bytes = gr_tensor_bytes(src);
    void *copy = gr_arena_alloc(g->arena, bytes + 1);
    if (!copy) return -1;
    memcpy(copy, src->data, bytes);
    gr_value *v = &g->values[nd->out[0]];
    v->t = *src;
    v->t.data = copy;
    v->is_init = 1;
    v->has_shape = 1;
    v->producer = -1;
    nd->out[0] = -1;
    return 1;
}

int gr_graph_inline_constants(gr_graph *g, int *count)
{
    int n = 0;
    for (int k = 0; k < g->nnodes; k++) {
        gr_node *nd = &g->nodes[k];
        int id = inline_identity(g, nd);
        if (id < 0) return oom();
        if (id) {
            n++;
            continue;
        }
        if (strcmp(nd->op_type, "Constant") || nd->domain[0] || nd->nin || nd->nout != 1 ||
            nd->out[0] < 0 || nd->nattr != 1 || strcmp(nd->attrs[0].name, "value") ||
            nd->attrs[0].type != GR_AT_TENSOR || !nd->attrs[0].t.data)
            continue;
        gr_value *v = &g->values[nd->out[0]];
        v->t = nd->attrs[0].t;
        v->is_init = 1;
        v->has_shape = 1;
        v->producer = -1;
        nd->out[0] = -1; /* produces nothing now: prune drops it */
        n++;
    }
    if (count) *count = n;
    return n ? gr_graph_prune(g) : GRAFT_OK;
}

/* "<prefix><name>" in g's arena (names of appended values and nodes). */
static const char *prefixed(gr_graph *g, const char *prefix, const char *name)
{
    size_t n = strlen(prefix) + strlen(name) + 1;
    char *s = gr_arena_alloc(g->arena, n);
    if (s) snprintf(s, n, "%s%s", prefix, name);
    return s;
}

int gr_graph_append(gr_graph *g, const gr_graph *src, const char *prefix, const int *in_map,
                    int *out_map)
{
    if (src->opset != g->opset)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "cannot append graph '%s' (opset %d) to one of opset %d: ops may mean "
                      "different things",
                      src->path ? src->path : "", src->opset, g->opset);
    int maxio = 1;
    for (int k = 0; k < src->nnodes; k++) {
        if (src->nodes[k].nin > maxio) maxio = src->nodes[k].nin;
        if (src->nodes[k].nout > maxio) maxio = src->nodes[k].nout;
    }
    int *map = malloc((size_t)(src->nvalues + 2 * maxio + 1) * sizeof *map);
    if (!map) return oom();
    int *in = map + src->nvalues, *out = in + maxio;
    for (int v = 0; v < src->nvalues; v++) map[v] = -1;
    int st = GRAFT_OK;
    for (int i = 0; !st && i < src->ninputs; i++) {
        int v = in_map[i];
        if (v < 0 || v >= g->nvalues || !gr_graph_can_read(g, v))
            st = gr_err(
                GRAFT_E_ARG,
                "input '%s' of the appended graph is mapped to value %d, which is not available",
                src->values[src->inputs[i]].name, v);
        map[src->inputs[i]] = v;
    }
    for (int v = 0; !st && v < src->nvalues; v++) {
        const gr_value *sv = &src->values[v];
        if (!sv->is_init || map[v] >= 0) continue;
        const char *nm = prefixed(g, prefix, sv->name);
        st = nm ? gr_graph_add_value(g, nm, sv->t.dtype, &sv->t.shape, sv->t.data, &map[v]) : oom();
    }
    for (int k = 0; !st && k < src->nnodes; k++) {
        const gr_node *nd = &src->nodes[k];
        if (nd->domain && nd->domain[0]) {
            st = gr_err(GRAFT_E_UNSUPPORTED,
                        "node '%s' is in domain '%s'; only default-domain nodes can be appended",
                        nd->name, nd->domain);
            break;
        }
        for (int i = 0; i < nd->nin; i++) {
            in[i] = nd->in[i] < 0 ? -1 : map[nd->in[i]];
            if (nd->in[i] >= 0 && in[i] < 0)
                st = gr_err(GRAFT_E_ARG, "node '%s' reads '%s' before anything produces it",
                            nd->name, src->values[nd->in[i]].name);
        }
        for (int j = 0; !st && j < nd->nout; j++) {
            out[j] = -1;
            if (nd->out[j] < 0) continue;
            const char *nm = prefixed(g, prefix, src->values[nd->out[j]].name);
            st =
                nm ? gr_graph_add_value(g, nm, src->values[nd->out[j]].t.dtype, NULL, NULL, &out[j])
                   : oom();
            map[nd->out[j]] = out[j];
        }
        const char *nm = st ? NULL : prefixed(g, prefix, nd->name);
        if (!st)
            st = nm ? gr_graph_add_node(g, nm, nd->op_type, in, nd->nin, out, nd->nout, nd->attrs,
                                        nd->nattr, NULL)
                    : oom();
    }
    for (int i = 0; !st && i < src->noutputs; i++) out_map[i] = map[src->outputs[i]];
    free(map);
    return st;
}

int gr_graph_prune(gr_graph *g)
{
    unsigned char *live = gr_calloc((size_t)g->nvalues + 1, 1),
                  *ref = gr_calloc((size_t)g->nvalues + 1, 1);
    unsigned char *keep = gr_calloc((size_t)g->nnodes + 1, 1);
    int *map = gr_calloc((size_t)g->nvalues + 1, sizeof *map);
    if (!live || !ref || !keep || !map) {
        free(live), free(ref), free(keep), free(map);
        return oom();
    }
    for (int i = 0; i < g->noutputs; i++) live[g->outputs[i]] = 1;
    for (int k = g->nnodes - 1; k >= 0; k--) { /* topological order: readers come later */
        const gr_node *n = &g->nodes[k];
        for (int j = 0; j < n->nout && !keep[k]; j++) keep[k] = n->out[j] >= 0 && live[n->out[j]];
        for (int i = 0; keep[k] && i < n->nin; i++)
            if (n->in[i] >= 0) live[n->in[i]] = 1;
    }
    for (int i = 0; i < g->ninputs; i++) ref[g->inputs[i]] = 1;
    for (int i = 0; i < g->noutputs; i++) ref[g->outputs[i]] = 1;
    for (int k = 0; k < g->nnodes; k++) {
        if (!keep[k]) continue;
        const gr_node *n = &g->nodes[k];
        for (int i = 0; i < n->nin; i++)
            if (n->in[i] >= 0) ref[n->in[i]] = 1;
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0) ref[n->out[j]] = 1;
    }
    int m = 0;
    for (int v = 0; v < g->nvalues; v++) {
        map[v] = ref[v] ? m : -1;
        if (ref[v]) g->values[m++] = g->values[v];
    }
    g->nvalues = m;
    int nk = 0;
    for (int k = 0; k < g->nnodes; k++) {
        if (!keep[k]) continue;
        g->nodes[nk] = g->nodes[k];
        gr_node *n = &g->nodes[nk];
        for (int i = 0; i < n->nin; i++)
            if (n->in[i] >= 0) n->in[i] = map[n->in[i]];
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0) n->out[j] = map[n->out[j]];
        nk++;
    }
    g->nnodes = nk;
    for (int i = 0; i < g->ninputs; i++) g->inputs[i] = map[g->inputs[i]];
    for (int i = 0; i < g->noutputs; i++) g->outputs[i] = map[g->outputs[i]];
    for (int v = 0; v < g->nvalues; v++) g->values[v].producer = -1;
    for (int k = 0; k < g->nnodes; k++)
        for (int j = 0; j < g->nodes[k].nout; j++)
            if (g->nodes[k].out[j] >= 0) g->values[g->nodes[k].out[j]].producer = k;
    drop_stale_heads(g);
    free(live), free(ref), free(keep), free(map);
    return GRAFT_OK;
}
