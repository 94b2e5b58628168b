/* api — the public API's implementation (include/graft.h) on top of io, graph, ops and data.
 * Nothing below includes this. */
#ifndef GR_API_H
#define GR_API_H

#include "data/data.h"
#include "graft.h"
#include "graph/graph.h"
#include "io/io.h"

struct graft_model {
    gr_model src; /* the file as parsed (ops checked): what extraction, layer choice and
                     fine-tuning cut and clone */
    gr_graph *g;  /* src rewritten for inference (a clone), made by the first run or info */
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

/* m->g, made when first needed (graft_model_run, graft_model_info_json). */
int gr_api_run_graph(graft_model *m);
/* graft_finetune with a target: the model just written to path adapted in place by o's method
 * (adapt_api.c); *summary gets graft_adapt's summary (caller frees). */
int gr_api_adapt_file(const char *path, const graft_dataset *target, const graft_adapt_opts *o,
                      char **summary);

/* The preprocessing for m: the one given, else the model's own (graft.transform, as graft
 * finetune writes it), else ImageNet's (adapt_api.c). */
int gr_api_model_transform(const gr_model *m, const char *given, gr_transform *t);

/* Views a public tensor as an internal one (no copy). */
gr_tensor gr_tensor_view(const graft_tensor *t);

#endif
