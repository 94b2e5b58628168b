/* ops — the operator table. Each op family lives in one file (conv.c, pool.c, ...) and exports
 * a table of gr_opdef, one row per op: its name, its functions, its flags (what the executor,
 * flat.c and the graph rewrites may do with it) and the family's own data for it (impl); prepare
 * finds its row in c->def, never by comparing names. registry.c joins the tables. Depends on core
 * and oneDNN only: ops never see the graph, just a gr_opctx with the node's attributes and its
 * input/output tensors. docs/ARCHITECTURE.md, "How to add an op", walks through one row.
 *
 * An op's life, per shape (the engine specialises a plan to concrete input shapes):
 *   prepare(c)  parse attributes, validate inputs, set each output's dtype and shape, create
 *               oneDNN primitives, allocate op state from c->arena into c->params, and ask for
 *               scratch memory with c->scratch_bytes. Inputs whose value is known at plan time
 *               (initializers, folded constants) have data != NULL here; others have data == NULL.
 *               All validation happens here; an error names the node (use gr_op_err).
 *   forward(c)  compute outputs from inputs; cannot fail. Called once per run.
 *   release(p)  optional: free what prepare created outside the arena (oneDNN primitives).
 *
 * Training (see "backward" below): the engine sets c->training and c->need_grad before prepare.
 *   training    forward runs in training mode: BatchNormalization normalises with the batch's
 *               statistics and updates its running mean/var inputs IN PLACE (PyTorch's rule:
 *               running = m * running + (1 - m) * batch, with ONNX's momentum m, default 0.9,
 *               i.e. PyTorch's 0.1, and the UNBIASED batch variance for running_var, as PyTorch
 *               does); Dropout draws its mask from c->rng (ratio from its input or attribute).
 *               The model's own training_mode attribute is ignored: the engine decides.
 *   need_grad   bit i set: backward must write dL/d in[i]. Inputs with bit i set are never
 *               constants at prepare (data == NULL), so no op caches a trainable weight.
 *   backward(c, dout, din)
 *               the vector-Jacobian product, called after forward on the same tensors (inputs and
 *               outputs still hold forward's values). dout[k] is dL/d out[k], or NULL when no
 *               gradient reaches that output (treat as zero). din[i] is non-NULL exactly where
 *               need_grad has bit i; backward OVERWRITES it (the engine sums fan-out). dout[k] has
 *               out[k]'s dtype, shape and layout; din[i] has in[i]'s. c->scratch is valid during
 *               backward too (scratch_bytes is the larger of the two needs), but its content does
 *               not survive from forward to backward: what backward needs from forward (batch
 *               statistics, a pooling workspace, a dropout mask) lives in the op state, allocated
 *               in prepare when need_grad != 0. Cannot fail; all checks happen in prepare.
 *               Integer inputs (shapes, indices, axes) never get gradients.
 */
#ifndef GR_OPS_H
#define GR_OPS_H

#include "core/core.h"

/* ONNX AttributeProto.AttributeType numbers. */
enum {
    GR_AT_FLOAT = 1,
    GR_AT_INT = 2,
    GR_AT_STRING = 3,
    GR_AT_TENSOR = 4,
    GR_AT_GRAPH = 5,
    GR_AT_FLOATS = 6,
    GR_AT_INTS = 7,
    GR_AT_STRINGS = 8
};

typedef struct gr_attr {
    const char *name;
    int type;
    int64_t i;
    float f;
    const char *s;
    int n; /* length of ints / floats / strings */
    int64_t *ints;
    float *floats;
    const char **strings;
    gr_tensor t; /* GR_AT_TENSOR */
} gr_attr;

typedef struct gr_dnnl gr_dnnl; /* oneDNN engine + stream, see dnnl_util.h */

typedef struct gr_opctx {
    const char *name; /* node name (or "#<index>" when the model has none) */
    const char *op_type;
    const struct gr_opdef *def; /* the op's row (never flat.c's wrapper): prepare reads def->impl */
    int opset;                  /* opset of the node's domain */
    const gr_attr *attrs;
    int nattr;
    int nin, nout;
    gr_tensor **in; /* in[i] is NULL for an absent optional input */
    gr_tensor **out;
    void *params;         /* op state, set by prepare */
    gr_arena *arena;      /* plan lifetime */
    size_t scratch_bytes; /* prepare: bytes of scratch forward needs */
    void *scratch;        /* forward: 64-byte aligned scratch of scratch_bytes */
    int64_t flops;        /* prepare: multiply-adds x 2 for one run (0 for cheap ops) */
    int use_ref;          /* use the plain C reference kernel, not oneDNN */
    int layouts;          /* an op flagged GR_OPF_LAYOUT may leave outputs in a oneDNN layout */
    gr_dnnl *dnnl;
    int training;       /* forward in training mode (BatchNorm batch statistics, Dropout) */
    uint32_t need_grad; /* bit i: backward must produce dL/d in[i]; 0: no backward */
    gr_rng *rng;        /* training randomness (Dropout); owned by the engine */
} gr_opctx;

enum {
    GR_OPF_SHAPE_ONLY = 1, /* forward reads only input shapes: foldable once shapes are known */
    GR_OPF_LAYOUT = 2,     /* prepare accepts inputs in a oneDNN layout (in[i]->layout != NULL) */
    /* What backward reads of the forward (memory: the planner frees what is not read). Without
     * these flags backward may read the data of every input and output. */
    GR_OPF_BWD_NO_X = 4, /* backward reads no input data (shapes only) */
    GR_OPF_BWD_NO_Y = 8, /* backward reads no output data */
    /* Elementwise and keeps zero padding finite (f(0) finite, no Div, Log, Sqrt...): may run on
     * tensors in a oneDNN blocked layout as flat arrays, padding included (flat.c). */
    GR_OPF_FLAT = 16,
    /* A Conv right before it may absorb it as its fused activation (graph/optimize.c): as
     * "_fused_act" "relu", or "clip" with constant bounds. */
    GR_OPF_FUSE_RELU = 32,
    GR_OPF_FUSE_CLIP = 64,
    /* Training forward updates inputs 3 and 4 (running mean, running variance) in place, and the
     * node trains (batch statistics) only when its scale or bias does (BatchNormalization). */
    GR_OPF_RUNNING_STATS = 128,
    /* An op of graft's own domain GR_DOMAIN_GRAFT (graft_domain.c), not the default one. */
    GR_OPF_GRAFT_DOMAIN = 256
};

/* An op flagged GR_OPF_LAYOUT returns this from prepare when it cannot read one of its inputs
 * in the oneDNN layout it came in (after releasing what it created): the executor then hands
 * it plain inputs and calls prepare again. */
#define GR_RETRY_PLAIN 100

typedef struct gr_opdef {
    const char *name; /* ONNX op type, default domain */
    int (*prepare)(gr_opctx *c);
    void (*forward)(gr_opctx *c);
    void (*release)(void *params);
    int flags;
    /* NULL: not differentiable (the engine refuses to train through it, naming the node). */
    void (*backward)(gr_opctx *c, gr_tensor *const *dout, gr_tensor *const *din);
    const void *impl; /* the family's data for this op (kernels, attributes), or NULL */
} gr_opdef;

/* graft's own ops (graft_domain.c, flag GR_OPF_GRAFT_DOMAIN), for graphs graft builds to train,
 * never in a written model. */
#define GR_DOMAIN_GRAFT "ai.graft"
static inline const char *gr_op_domain(const gr_opdef *d)
{
    return d->flags & GR_OPF_GRAFT_DOMAIN ? GR_DOMAIN_GRAFT : "";
}

/* The registry. Domain "" and "ai.onnx" are the default domain, GR_DOMAIN_GRAFT graft's own.
 * Returns the op's row, or NULL if unsupported. */
const gr_opdef *gr_op_find(const char *op_type, const char *domain);
/* Every row, for messages, `graft info` and the tests that walk the table. */
int gr_op_count(void);
const gr_opdef *gr_op_at(int i);
/* What the executor runs for a row: flat.c's wrapper for rows flagged GR_OPF_FLAT (it runs
 * the row's own functions, on flat views when the inputs come in a oneDNN layout), else the row.
 * The context's def is the row either way. */
const gr_opdef *gr_op_runner(const gr_opdef *row);

/* Family tables, each terminated by an entry with name == NULL. */
extern const gr_opdef gr_ops_elementwise[], gr_ops_conv[], gr_ops_pool[], gr_ops_norm[],
    gr_ops_matmul[], gr_ops_shape[], gr_ops_reduce[], gr_ops_resize[], gr_ops_graft[];

/* flat.c's wrapper (see gr_op_runner). */
extern const gr_opdef gr_op_flat;

/* Internal op the executor inserts to turn a tensor in a oneDNN layout into a plain one. */
extern const gr_opdef gr_op_to_plain;

/* ---- helpers for op implementations (opctx.c) ---- */

/* Error naming the node: "node 'conv1' (Conv): <message>". Returns status. */
int gr_op_err(const gr_opctx *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const gr_attr *gr_attr_get(const gr_opctx *c, const char *name);
int64_t gr_attr_int(const gr_opctx *c, const char *name, int64_t def);
float gr_attr_float(const gr_opctx *c, const char *name, float def);
const char *gr_attr_str(const gr_opctx *c, const char *name, const char *def);
/* Copies an INTS attribute into out (at most max); returns its length, or -1 if absent. */
int gr_attr_ints(const gr_opctx *c, const char *name, int64_t *out, int max);

/* Every attribute of the node must be in `known` (NULL-terminated): an unknown one is an error. */
int gr_op_check_attrs(const gr_opctx *c, const char *const *known);
/* Checks nin/nout against the op's arity (max may be larger than what ONNX allows). */
int gr_op_check_arity(const gr_opctx *c, int min_in, int max_in, int min_out, int max_out);
/* Checks that input i is present and has one of the dtypes (0-terminated list). */
int gr_op_check_dtype(const gr_opctx *c, int i, const int *dtypes);
/* Reads a constant integer input (int64 or int32) of at most `max` elements into out. An empty
 * one gives 0 even when its data is not known (its shape says it all). Fails with a clear
 * message if the input is not known at plan time. Returns the count, or minus the status on
 * error. */
int gr_input_ints(const gr_opctx *c, int i, int64_t *out, int max);
/* Reads a constant scalar float input (any float/int dtype). */
int gr_input_scalar(const gr_opctx *c, int i, double *out);
/* Normalises an axis in [-rank, rank) to [0, rank); fails naming the attribute. */
int gr_op_axis(const gr_opctx *c, int64_t axis, int rank, int *out);
/* Numpy-style multidirectional broadcasting of a and b into out. */
int gr_broadcast_shape(const gr_opctx *c, const gr_shape *a, const gr_shape *b, gr_shape *out);
/* Sets output i's dtype and shape, checking the size does not overflow. */
int gr_op_set_out(gr_opctx *c, int i, int dtype, const gr_shape *s);
/* backward when no gradient reaches the outputs (dout[k] all NULL): every din[i] asked for is
 * zero. */
void gr_op_zero_grads(const gr_opctx *c, gr_tensor *const *din);
/* Allocates zeroed op state of n bytes from the plan arena into c->params. */
void *gr_op_params(gr_opctx *c, size_t n);

/* Input i is present (optional inputs may be absent, or past nin). */
static inline int gr_op_has_input(const gr_opctx *c, int i)
{
    return i < c->nin && c->in[i] != NULL;
}
/* An attribute that this opset of the op does not have (it moved to an input, or came later):
 * an error when cond holds and the node has it. */
int gr_op_reject_attr(const gr_opctx *c, const char *name, int cond);
/* Reads an INTS attribute of exactly n values (each >= lo and at most 2^24: no real kernel,
 * stride, dilation or pad comes near, and the shape arithmetic cannot overflow below it), or
 * fills def when absent. out has room for 6 values. */
int gr_op_ints_attr(const gr_opctx *c, const char *name, int n, int64_t def, int64_t lo,
                    int64_t *out);
/* Threads for a loop over `work` elements: 1 below 32768, else OpenMP's maximum. */
int gr_op_threads(int64_t work);

/* Row-major element strides of a shape: st[i] = prod(d[i+1:]). */
static inline void gr_strides(const gr_shape *s, int64_t *st)
{
    int64_t k = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        st[i] = k;
        k *= s->d[i];
    }
}
/* ceil(a / b) for b > 0, a of any sign (output extents with negative pads). */
static inline int64_t gr_ceil_div(int64_t a, int64_t b)
{
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}
/* n rounded up to a multiple of 64 (scratch carved into 64-byte aligned blocks). */
static inline size_t gr_align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Float value of element i of a tensor of any numeric dtype, and the reverse (inline: the
 * reference kernels call them per element). */
static inline double gr_get_f64(const gr_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case GR_F32: return ((const float *)t->data)[i];
    case GR_F64: return ((const double *)t->data)[i];
    case GR_I64: return (double)((const int64_t *)t->data)[i];
    case GR_I32: return ((const int32_t *)t->data)[i];
    case GR_I8: return ((const int8_t *)t->data)[i];
    case GR_U8:
    case GR_BOOL: return ((const uint8_t *)t->data)[i];
    }
    return 0;
}

static inline void gr_set_f64(gr_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case GR_F32: ((float *)t->data)[i] = (float)v; break;
    case GR_F64: ((double *)t->data)[i] = v; break;
    case GR_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case GR_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case GR_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case GR_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    case GR_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    }
}

#endif
