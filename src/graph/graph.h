/* graph — the IR (values and nodes), topological order, plans (shape specialisation, constant
 * folding, liveness memory plan) and the executor. Depends on core and ops. */
#ifndef GR_GRAPH_H
#define GR_GRAPH_H

#include "core/core.h"
#include "ops/ops.h"

typedef struct gr_value {
    char *name;
    gr_tensor t;       /* dtype; shape (declared, for inputs: -1 = symbolic); data for initializers */
    int has_shape;     /* the model declares a shape for it */
    int is_init;       /* an initializer: t.data holds its value */
    int producer;      /* node index, or -1 */
} gr_value;

typedef struct gr_node {
    char *name;        /* never NULL: "#<index>" when the model gives none */
    char *op_type;
    char *domain;
    const gr_opdef *op;
    int nin, nout;
    int *in, *out;     /* value indices; -1 for an absent optional input/output */
    int nattr;
    gr_attr *attrs;
} gr_node;

typedef struct gr_meta { char *key, *value; } gr_meta;

typedef struct gr_graph {
    gr_arena *arena;         /* names, attributes, index arrays, initializer data */
    int nvalues, nnodes;
    gr_value *values;
    gr_node *nodes;          /* in topological order after gr_graph_sort */
    int ninputs, noutputs;
    int *inputs, *outputs;   /* value indices; inputs exclude initializers */
    int opset;               /* default-domain opset */
    int64_t ir_version;
    char *producer, *producer_version, *graph_name, *path;
    int nmeta;
    gr_meta *meta;
} gr_graph;

void gr_graph_free(gr_graph *g);
int gr_graph_find_value(const gr_graph *g, const char *name);
/* Orders nodes so that every input is produced before use; fails on cycles or undefined
 * inputs, naming the node. Also fills value->producer. */
int gr_graph_sort(gr_graph *g);

/* Inference rewrites (BatchNorm folded into Conv, Relu/Clip fused into Conv); see optimize.c. */
int gr_graph_optimize(gr_graph *g);
/* For training: folds BatchNorm into Conv only where no input of either is in keep[nvalues]
 * (the trainable values); no activation fusion. Node indices change; value indices do not. */
int gr_graph_fold_frozen(gr_graph *g, const unsigned char *keep);

/* ---- plans: the graph specialised to concrete input shapes ---- */

typedef struct gr_plan gr_plan;

typedef struct gr_plan_opts {
    int use_ref;          /* reference kernels instead of oneDNN */
    int inputs_const;     /* treat input data as constants (fold everything): for tests */
    gr_dnnl *dnnl;
    /* Training. trainable == NULL makes an inference plan. Otherwise the plan also has
     * backward steps (gr_plan_backward) for the part of the graph between the trainable
     * values and the outputs, and nothing else: a frozen prefix runs forward only, in
     * inference mode, and its activations die as soon as they are read. */
    const unsigned char *trainable; /* [g->nvalues]: float initializers that get gradients */
    float *const *grads;            /* [g->nvalues]: where dL/dv goes for trainable v (plain) */
    const signed char *node_mode;   /* [g->nnodes] or NULL: -1 default, 0 inference, 1 training */
    gr_rng *rng;                    /* Dropout's randomness (training) */
} gr_plan_opts;

/* Training mode of a node by default: BatchNormalization trains (batch statistics, running
 * statistics updated) when its scale or bias is trainable, so a frozen BatchNorm stays in
 * inference mode; any other node trains when a gradient flows through it (Dropout is active
 * on the trainable path only). */

/* Builds a plan for inputs of the given shapes (inputs[i].data may be NULL unless
 * inputs_const). Fails with a message naming the node on any unsupported op or bad shape. */
int gr_plan_build(const gr_graph *g, const gr_tensor *inputs, const gr_plan_opts *opts, gr_plan **out);
void gr_plan_free(gr_plan *p);
/* Runs the plan. Input shapes must equal those it was built for. Cannot fail. */
void gr_plan_run(gr_plan *p, const gr_tensor *inputs);
/* The tensor of graph value v after a run (data valid until the next run; may be in a oneDNN
 * layout unless it is an output). gr_plan_output gives graph output i, always plain. */
const gr_tensor *gr_plan_value(const gr_plan *p, int v);
const gr_tensor *gr_plan_output(const gr_plan *p, int i);
int gr_plan_matches(const gr_plan *p, const gr_tensor *inputs);
size_t gr_plan_arena_bytes(const gr_plan *p);
int64_t gr_plan_flops(const gr_plan *p);
/* Step count actually executed per run (nodes not folded away). */
int gr_plan_steps(const gr_plan *p);
/* Training plans: backward from the gradients of the graph outputs (plain, one per output,
 * NULL for an output the loss does not use), after gr_plan_run. Writes the gradient of every
 * trainable value into opts.grads (overwriting). Cannot fail. */
void gr_plan_backward(gr_plan *p, const gr_tensor *const *doutputs);
/* Backward steps (op backward calls) per training step, and the nodes run in training mode. */
int gr_plan_backward_steps(const gr_plan *p);
/* Values after which only one activation is alive (where the model can be cut for features),
 * in execution order; returns their count (at most max) or a negative status. */
int gr_plan_cut_points(const gr_plan *p, int *values, int max);

#endif
