/* exec_impl.h — the plan's internals, shared by exec.c (building and running plans) and
 * plan_memory.c (the liveness memory plan). Private to src/graph: included only by the .c files
 * of graph. */
#ifndef GRAFT_GRAPH_EXEC_IMPL_H
#define GRAFT_GRAPH_EXEC_IMPL_H

#include "graph.h"

enum { ST_FWD, ST_BWD, ST_ADD };

typedef struct step {
    gr_opctx *ctx;
    const gr_opdef *op;
    int node; /* graph node, or -1 for an inserted conversion */
    int kind;
    gr_tensor **dout, **din; /* ST_BWD: gradients of the outputs (read) and inputs (written) */
    gr_tensor *acc, *add;    /* ST_ADD: acc += add (a second gradient contribution) */
    int bwd_flags;           /* ST_BWD: GR_OPF_BWD_NO_X / _NO_Y of the op */
} step;

struct gr_plan {
    const gr_graph *g;
    gr_plan_opts opts;
    gr_arena *arena; /* op state, folded constants, bookkeeping */
    gr_tensor *vals; /* graph values, then values the plan adds (conversions) */
    int nvals, capvals;
    unsigned char *known; /* value known at plan time */
    int *plain_of;        /* value → its plain conversion, or -1 */
    gr_opctx *ctx;        /* one per graph node */
    step *steps;
    int nsteps, capsteps;
    int *outputs; /* plan value of each graph output (plain) */
    gr_shape *in_shapes;
    unsigned char *act; /* activation block */
    size_t act_bytes;
    void *scratch;
    size_t scratch_bytes;
    int64_t flops;
    /* training */
    int training;         /* opts.trainable != NULL */
    int nfwd, nbwd;       /* forward steps come first; then backward and add steps */
    unsigned char *ext;   /* value whose data is bound outside the activation block */
    unsigned char *rg;    /* value carries a gradient back to trainable values */
    unsigned char *reach; /* [g->nvalues] value influences a graph output */
    int *grad_of;         /* value → the value holding its gradient, or -1 */
    int *out_grad;        /* graph output i → its gradient value (bound at backward), or -1 */
    int *unwritten;       /* trainable values no backward step writes (zeroed each step) */
    int nunwritten;
};

/* The index of plan value t (a pointer into p->vals), or -1 when t is not one (exec.c). */
int gr_plan_value_index(const gr_plan *p, const gr_tensor *t);
/* Lays out the activation block over p->steps (liveness, first fit) and allocates it and the
 * shared scratch (plan_memory.c). */
int gr_plan_memory(gr_plan *p);

#endif
