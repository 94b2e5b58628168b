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

/* Kahn's algorithm, stable: among ready nodes the one first in the file goes first, so a
 * model that is already sorted keeps its order. */
int gr_graph_sort(gr_graph *g)
{
    int n = g->nnodes, status = GRAFT_OK;
    int *pending = gr_calloc((size_t)n + 1, sizeof *pending);   /* unmet inputs per node */
    int *order = gr_calloc((size_t)n + 1, sizeof *order);
    unsigned char *ready = gr_calloc((size_t)g->nvalues + 1, 1);
    gr_node *sorted = gr_calloc((size_t)n + 1, sizeof *sorted);
    if (!pending || !order || !ready || !sorted) { status = GRAFT_E_NOMEM; goto done; }

    for (int v = 0; v < g->nvalues; v++) {
        g->values[v].producer = -1;
        ready[v] = g->values[v].is_init;
    }
    for (int i = 0; i < g->ninputs; i++) ready[g->inputs[i]] = 1;
    /* single assignment: a value has one producer, and a graph input or an initializer none
     * (a node writing one would write into the caller's buffer or the weights) */
    for (int k = 0; k < n; k++)
        for (int j = 0; j < g->nodes[k].nout; j++) {
            int v = g->nodes[k].out[j];
            if (v < 0) continue;
            if (ready[v] && !g->values[v].is_init) {
                status = gr_err(GRAFT_E_FORMAT, "node '%s' (%s) writes '%s', which is a graph input",
                                g->nodes[k].name, g->nodes[k].op_type, g->values[v].name);
                goto done;
            }
            if (g->values[v].producer >= 0 || g->values[v].is_init) {
                status = gr_err(GRAFT_E_FORMAT, "value '%s' is produced twice (node '%s')",
                                g->values[v].name, g->nodes[k].name);
                goto done;
            }
            g->values[v].producer = k;
        }
    for (int k = 0; k < n; k++)
        for (int j = 0; j < g->nodes[k].nin; j++) {
            int v = g->nodes[k].in[j];
            if (v < 0 || ready[v]) continue;
            if (g->values[v].producer < 0) {
                status = gr_err(GRAFT_E_FORMAT,
                                "node '%s' (%s) reads '%s', which is neither a graph input, an "
                                "initializer nor produced by any node",
                                g->nodes[k].name, g->nodes[k].op_type, g->values[v].name);
                goto done;
            }
            pending[k]++;
        }

    int done_count = 0;
    for (int pass_progress = 1; pass_progress && done_count < n;) {
        pass_progress = 0;
        for (int k = 0; k < n; k++) {
            if (pending[k] != 0) continue;
            pending[k] = -1;
            order[done_count++] = k;
            pass_progress = 1;
            for (int j = 0; j < g->nodes[k].nout; j++) {
                int v = g->nodes[k].out[j];
                if (v < 0 || ready[v]) continue;
                ready[v] = 1;
                for (int m = 0; m < n; m++)
                    for (int q = 0; q < g->nodes[m].nin; q++)
                        if (g->nodes[m].in[q] == v && pending[m] > 0) pending[m]--;
            }
            break;  /* restart from the first node to keep file order among ready ones */
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
    return status;
}
