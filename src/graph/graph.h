/* graph — the IR (values and nodes), topological order, plans (shape specialisation, constant
 * folding, liveness memory plan) and the executor. Depends on core and ops. */
#ifndef GR_GRAPH_H
#define GR_GRAPH_H

#include "core/core.h"
#include "ops/ops.h"

typedef struct gr_value {
    char *name;
    gr_tensor t;   /* dtype; shape (declared, for inputs: -1 = symbolic); data for initializers */
    int has_shape; /* the model declares a shape for it */
    int is_init;   /* an initializer: t.data holds its value */
    int producer;  /* node index, or -1 */
} gr_value;

typedef struct gr_node {
    char *name; /* never NULL: "#<index>" when the model gives none */
    char *op_type;
    char *domain;
    const gr_opdef *op;
    int nin, nout;
    int *in, *out; /* value indices; -1 for an absent optional input/output */
    int nattr;
    gr_attr *attrs;
} gr_node;

/* A node whose training updates running statistics in place (BatchNormalization: inputs 3, 4),
 * from its op's row (GR_OPF_RUNNING_STATS). */
static inline int gr_node_running_stats(const gr_node *n)
{
    return n->op && (n->op->flags & GR_OPF_RUNNING_STATS) && !n->domain[0];
}

typedef struct gr_meta {
    char *key, *value;
} gr_meta;

typedef struct gr_graph {
    gr_arena *arena; /* names, attributes, index arrays, initializer data */
    int nvalues, nnodes;
    gr_value *values;
    gr_node *nodes; /* in topological order after gr_graph_sort */
    int ninputs, noutputs;
    int *inputs, *outputs; /* value indices; inputs exclude initializers */
    int opset;             /* default-domain opset */
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
    int use_ref;      /* reference kernels instead of oneDNN */
    int inputs_const; /* treat input data as constants (fold everything): for tests */
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
int gr_plan_build(const gr_graph *g, const gr_tensor *inputs, const gr_plan_opts *opts,
                  gr_plan **out);
void gr_plan_free(gr_plan *p);
/* Runs the plan. Input shapes must equal those it was built for. Cannot fail. */
void gr_plan_run(gr_plan *p, const gr_tensor *inputs);
/* The tensor of graph value v (shape, dtype, layout). Its data after a run is meaningful only
 * for graph outputs and values alive at the end: the memory plan reuses an intermediate's bytes
 * after its last reader (to read one, make it an output). gr_plan_output gives graph output i,
 * always plain. */
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
 * in execution order; returns their count (at most max) or minus a status (-GRAFT_E_NOMEM). */
int gr_plan_cut_points(const gr_plan *p, int *values, int max);

/* ---- editing (graph.c) ----
 * Every edit leaves g valid and topologically sorted (gr_graph_sort succeeds). g->values and
 * g->nodes may move and prune renumbers values and nodes: re-read indices after an edit. A plan
 * or trainer built on g must be rebuilt after an edit (their per-value arrays are stale). */

/* Heads a graph builder added are named "<prefix>.<part>" and recorded in the metadata entry
 * GR_HEAD_META = prefix (see surgery.c). */
#define GR_HEAD_META "graft.head"
/* Does name start with "<prefix>."? */
int gr_name_in_head(const char *name, const char *prefix);
/* A node appended now may read v (an initializer, a node's output or a graph input): the order
 * stays topological. */
int gr_graph_can_read(const gr_graph *g, int v);
/* A copy of src in its own arena (what a caller edits when the original must stay, e.g. a model
 * parsed once and cut several ways). Attribute data is copied; initializer data too, unless
 * share_init: then the copy's initializers point at src's bytes, for a copy that only reads them
 * (extraction, inference, appending to another graph; edits that make new values, such as cuts
 * and the inference rewrites, are fine): src must outlive it and neither may write them. A
 * trainer writes its weights: fine-tuning copies them. */
int gr_graph_clone(const gr_graph *src, int share_init, gr_graph **out);
/* Points every initializer of dst at the data of src's initializer of the same name, dtype and
 * shape (src must outlive dst's use of them): e.g. a clone made before training takes the
 * trained weights while keeping its own structure (a trainer may have folded src's frozen
 * BatchNorms). Returns how many pointers changed. */
int gr_graph_sync_inits(gr_graph *dst, const gr_graph *src);
/* An empty graph (default-domain opset `opset`) to build with the calls below. */
int gr_graph_new(int opset, gr_graph **out);
/* Appends a graph input (a plain value; -1 dims are symbolic), resp. makes v an output. */
int gr_graph_add_input(gr_graph *g, const char *name, int dtype, const gr_shape *shape, int *out);
int gr_graph_add_output(gr_graph *g, int v);
/* Appends a value. data != NULL makes it an initializer whose dtype/shape bytes are copied into
 * g->arena; otherwise a plain value (shape may be NULL: undeclared; dtype 0: unknown). Names
 * must be new. *out (may be NULL) gets its index. */
int gr_graph_add_value(gr_graph *g, const char *name, int dtype, const gr_shape *shape,
                       const void *data, int *out);
/* Appends a default-domain node, or one of graft's own ops (GR_DOMAIN_GRAFT) by its name (attributes deep-copied). Every input (-1: absent) must already
 * be available (graph input, initializer or produced by a node), so the order stays
 * topological; outputs must be new plain values nothing produces yet. name NULL: "#<index>";
 * node names must be unique. Fails for an op graft does not support. */
int gr_graph_add_node(gr_graph *g, const char *name, const char *op_type, const int *in, int nin,
                      const int *out, int nout, const gr_attr *attrs, int nattr, int *index);
/* Drops the nodes no graph output needs, then every value nothing references (graph inputs are
 * always kept: they are the calling convention). Renumbers values consistently everywhere. */
int gr_graph_prune(gr_graph *g);
/* Copies src's nodes and initializers into g (names prefixed with `prefix`), src's graph input i
 * reading g's value in_map[i] (which must be available in g). out_map[src->noutputs] gets the
 * values of src's outputs in g. src must use g's default-domain opset (an op's meaning can change
 * between opsets) and default-domain nodes only. Plain values keep their dtype, not their declared
 * shape (a shape declared for one batch size would be wrong in the new graph). A failure after
 * the checks of opset and inputs may leave part of src in g: discard g then. */
int gr_graph_append(gr_graph *g, const gr_graph *src, const char *prefix, const int *in_map,
                    int *out_map);
/* Constant nodes holding a tensor become initializers of that value (some exporters, e.g.
 * Paddle2ONNX, store every weight as a Constant node; as initializers they are parameters that
 * can train), and so does an Identity of an initializer, with a copy of it: PyTorch's exporter
 * deduplicates equal initializers through Identity nodes (a fresh model's BatchNorms all start at
 * weight 1, bias 0, mean 0, variance 1, so they would share one), and each must train on its own.
 * Then prune. *count (may be NULL) gets how many. */
int gr_graph_inline_constants(gr_graph *g, int *count);
int gr_graph_find_node(const gr_graph *g, const char *name);
/* ---- building (build.c): pooling, named values and nodes, torch's Linear, metadata ---- */

/* How a (N, C, H, W) map becomes one row: the global mean, the means over a 2x2 or 4x4 grid
 * (PyTorch's adaptive_avg_pool2d(x, G), C * G * G values), or none (the map flattened). */
enum { GR_POOL_MEAN = 0, GR_POOL_GRID2 = 1, GR_POOL_NONE = 2, GR_POOL_GRID4 = 3 };
/* Cells per side of a pooling of a rank-4 map: 1 (mean), 2, 4 (grids); 0 for none. */
int gr_pool_side(int pool);
const char *gr_pool_name(int pool); /* "mean", "grid2", "grid4", "none" */
/* Whether an H x W map can be pooled so: grid2 needs H, W >= 2; grid4 needs H and W multiples
 * of 4 (equal cells, so that ONNX's AveragePool in exported heads computes exactly what the
 * extraction does: PyTorch's adaptive_avg_pool2d(x, 4)). Errors name `what`. */
int gr_pool_check(int64_t H, int64_t W, int pool, const char *what);
int gr_pool_fits(int64_t H, int64_t W, int pool); /* the same rule, without the error */

/* A builder names what it adds "<prefix><part>" (prefix with its separator: "head.",
 * "graft_export/"); numbered != 0 appends "_<count>" to every name, for builders whose parts
 * repeat. rng: torch's init for gr_gb_linear without weights. act_dtype: the dtype of the
 * activations gr_gb_op and gr_gb_linear make (0: left to inference). */
typedef struct gr_gb {
    gr_graph *g;
    const char *prefix;
    int numbered, count;
    int act_dtype;
    gr_rng *rng;
    char name[256];
} gr_gb;
const char *gr_gb_name(gr_gb *b, const char *part); /* in b->name, until the next call */
/* A value "<part>": an initializer when data != NULL (dtype, shape copied), else an activation
 * (dtype 0 and shape NULL: inferred). */
int gr_gb_value(gr_gb *b, const char *part, int dtype, const gr_shape *shape, const void *data,
                int *v);
/* A node "<part>" computing out = op(in...). */
int gr_gb_node(gr_gb *b, const char *part, const char *op, const int *in, int nin, int out,
               const gr_attr *attrs, int nattr);
/* A new activation "<value>" and the node "<part>" computing it: *y. */
int gr_gb_op(gr_gb *b, const char *value, const char *part, const char *op, const int *in, int nin,
             const gr_attr *attrs, int nattr, int *y);
/* torch.nn.Linear's reset_parameters: kaiming_uniform_(a=sqrt(5)) gives the weight
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias the same bound; n values from rng. */
void gr_linear_init(gr_rng *rng, int64_t fan_in, int64_t n, float *w);
/* Gemm(x, "<part>.weight" (nout, fan_in), "<part>.bias", transB=1) as the node "<part>", as
 * PyTorch exports Linear; w NULL: torch's init from b->rng. Into *y, or a new "<part>.out"
 * when *y < 0. */
int gr_gb_linear(gr_gb *b, const char *part, int x, int64_t nout, int64_t fan_in, const float *w,
                 const float *bias, int *y);
/* Pooling of the rank-4 value x of shape fs ("pool" into "pooled") and Flatten ("flatten"
 * into "features" = *y, (N, fan_in)). */
int gr_gb_pool(gr_gb *b, int x, const gr_shape *fs, int pool, int *y, int64_t *fan_in);
/* Appends the metadata entry key = value (copied); keys may repeat (graft.head: one a head). */
int gr_graph_add_meta(gr_graph *g, const char *key, const char *value);
/* Sets key = value: replaces the first entry of key when there is one (a model fine-tuned or
 * adapted twice says what it is now), else appends. */
int gr_graph_set_meta(gr_graph *g, const char *key, const char *value);
/* Sets float attribute `name` of node k (appended when the node has none). */
int gr_node_set_attr_float(gr_graph *g, int k, const char *name, float value);

/* ---- surgery (surgery.c): shapes, cutting, new heads, the classifier, freezing ---- */

/* The named values (a node name stands for its first output) become the graph's only outputs,
 * in that order, then prune. Fails naming a name that is neither, or a value that is not
 * float32 activation data. */
int gr_graph_cut(gr_graph *g, const char *const *names, int n);
/* Shape and type of value v when the inputs have the given shapes (input_shapes[g->ninputs];
 * NULL: the declared shapes with a symbolic batch dim = 1 and other symbolic dims = 224, as
 * `graft info`). Built from a reference-kernel inference plan; nothing is run. */
int gr_graph_value_shape(const gr_graph *g, int v, const gr_shape *input_shapes, gr_shape *shape,
                         int *dtype);
/* What a symbolic dim d (> 0) of a rank-`rank` input stands for when nothing says: 224 (an image
 * side, a sequence length), or 16000 for the samples of a (batch, samples) signal: one second of
 * 16 kHz audio (an STFT's 512-sample kernel does not fit in 224). */
static inline int64_t gr_symbolic_dim(int rank) { return rank == 2 ? 16000 : 224; }

/* A new classification head (see surgery.c for the exact graph). */
typedef struct gr_head_spec {
    int nclass;
    int hidden;         /* 0: linear head (Gemm); > 0: MLP Gemm → Relu → [Dropout] → Gemm */
    float dropout;      /* MLP: Dropout(p) between Relu and fc2; linear: Dropout(p) before fc
                              (timm's drop_rate). 0: no Dropout node */
    int pool;           /* rank-4 features: GR_POOL_MEAN (0) = GlobalAveragePool, GR_POOL_GRID2
                           or GR_POOL_GRID4 (gr_gb_pool); then Flatten */
    const char *prefix; /* name prefix; NULL: "head" */
    int replace;        /* 1: the logits replace every graph output; 0: appended (multi-task) */
    const gr_shape *input_shapes; /* for the feature's shape, see gr_graph_value_shape; NULL ok */
} gr_head_spec;
/* Adds a head reading value `from` (rank 2 (N, C) or rank 4 (N, C, H, W) float32). Weights and
 * biases follow torch.nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from
 * rng (weight row-major, then bias). Values "<prefix>.logits", "<prefix>.fc.weight/bias" (MLP:
 * fc1, fc2); records the prefix as metadata "graft.head". *out_value gets the logits. */
int gr_graph_add_head(gr_graph *g, int from, const gr_head_spec *spec, gr_rng *rng, int *out_value);
/* The classifier of output 0: the last Gemm, or MatMul [+ Add], with constant weights on its
 * path, optionally followed by Softmax/LogSoftmax/Sigmoid/Identity/Flatten and preceded by
 * Dropout/Identity (whole heads added by gr_graph_add_head count as one classifier). *feature
 * gets its input value, *first_node its first node. Fails explaining what output 0 ends with. */
int gr_graph_find_classifier(const gr_graph *g, int *feature, int *first_node);
/* find + cut at the feature value + add_head(spec) with replace. */
int gr_graph_replace_classifier(gr_graph *g, const gr_head_spec *spec, gr_rng *rng);
/* Fills is_param[g->nvalues]: the float32 initializers that are weights (see surgery.c). */
void gr_graph_params(const gr_graph *g, unsigned char *is_param);
/* Which parameters train, from a spec of comma-separated terms applied left to right, starting
 * from none: all | none | head | pattern:GLOB | after:NODE | last:N, each but all/none optionally
 * prefixed by '-' to clear instead of set (details in surgery.c). Fills trainable[g->nvalues]. */
int gr_freeze_select(const gr_graph *g, const char *spec, unsigned char *trainable);

#endif
