/* api — the public API's implementation (include/graft.h) on top of io, graph, ops and data.
 * Nothing below includes this. */
#ifndef GR_API_H
#define GR_API_H

#include "data/data.h"
#include "graft.h"
#include "graph/graph.h"
#include "io/io.h"

struct graft_model {
    gr_graph *g;
    gr_dnnl *dnnl;
    gr_plan *plan; /* specialised to the last input shapes */
    int use_ref;
    int nops; /* op histogram of the model as loaded, before inference rewrites */
    struct {
        const char *op;
        int count;
    } ops[128];
    int nnodes;
};

struct graft_dataset {
    gr_dataset *ds;
};

/* Views a public tensor as an internal one (no copy). */
gr_tensor gr_tensor_view(const graft_tensor *t);

#endif
