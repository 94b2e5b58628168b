/* graph.c — the IR's bookkeeping: value lookup by name and topological order. */
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
