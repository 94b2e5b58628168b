/* oprun.h — runs one op standalone, the way the executor does (src/graph/exec.c): the op's row
 * from the registry, gr_op_runner's wrapper around it (flat.c for GR_OPF_FLAT rows), a context
 * with the node's attributes and tensors, prepare, outputs and scratch allocated from what
 * prepare asked, forward. Every op test (tests/test_op_*.c) and gradient test (gradcheck.h,
 * tests/test_grad_*.c) runs its nodes through it.
 *
 *   gr_tensor x = {...};
 *   or_node n;
 *   int st = or_run(&n, &(or_spec){ .op = "Relu", .opset = 13, .nin = 1, .ins = &x });
 *   ... n.out[0] ...
 *   or_free(&n);
 *
 * Inputs are copied by value (their data pointers kept). An input whose `hidden` bit is set has
 * its data hidden from prepare, as a value computed at run time; inputs with a need_grad bit are
 * hidden too (trainable weights are never constants at prepare). Outputs are calloc'ed with a
 * few spare bytes. On a failed prepare the node is already freed; or_free is safe to call again.
 *
 * The gradient tests say which ops they check with or_cover; test_op_table walks the op table
 * and fails for an op with a backward that no gradient test covers. */
#ifndef GR_ORUN_H
#define GR_ORUN_H

#include "ops/dnnl_util.h"
#include "ops/ops.h"

#include <stdint.h>

#define OR_MAX_IN  8
#define OR_MAX_OUT 8

typedef struct or_spec {
    const char *op; /* ONNX op type, default domain */
    int opset;
    const gr_attr *attrs;
    int nattr;
    int nin;
    const gr_tensor *ins; /* nin of them; dtype 0: an absent optional input */
    int nout;             /* outputs the node declares (0: 1) */
    uint32_t hidden;      /* bit i: input i's data is not known at prepare */
    int use_ref;          /* 1: the plain C reference kernels */
    int layouts;          /* outputs may stay in a oneDNN layout */
    int training;         /* forward in training mode */
    uint32_t need_grad;   /* bit i: backward must produce dL/d in[i] */
} or_spec;

typedef struct or_node {
    gr_opctx c;
    gr_tensor in[OR_MAX_IN], out[OR_MAX_OUT];
    gr_tensor *pin[OR_MAX_IN], *pout[OR_MAX_OUT];
    gr_arena *arena;
    void *scratch;
    const gr_opdef *def; /* the op's row */
    const gr_opdef *op;  /* what runs: gr_op_runner(def) */
    gr_rng rng;          /* the node's training randomness (seeded 1234) */
} or_node;

/* The op's row; exits (status 2) when the registry lacks it: a test setup error. */
const gr_opdef *or_find(const char *op);
/* The oneDNN engine every runner node uses (made on first use; exits if it cannot be). */
gr_dnnl *or_dnnl(void);
/* Prepares the node and allocates its outputs and scratch; the inputs' data is visible again
 * afterwards. Returns prepare's status (the node freed on failure). */
int or_prepare(or_node *n, const or_spec *s);
void or_forward(or_node *n);
/* or_prepare, then or_forward when it succeeded. */
int or_run(or_node *n, const or_spec *s);
/* backward on the node (or_forward ran before); dout, din as gr_opdef.backward takes them. */
void or_backward(or_node *n, gr_tensor *const *dout, gr_tensor *const *din);
void or_free(or_node *n);

/* The 16-channel blocked layout (nCw16c, nChw16c, nCdhw16c) of an f32 tensor of rank 3 to 5, as
 * the conv and pool kernels hand their outputs on. */
dnnl_memory_desc_t or_blocked_md(const gr_shape *s);
/* Copies an f32 tensor of shape s from layout `from` to layout `to` (NULL: plain; else a
 * dnnl_memory_desc_t *) with a oneDNN reorder. */
void or_convert(const gr_shape *s, const void *from, const void *src, const void *to, void *dst);

/* Gradient coverage: a gradient test calls or_cover(op) for each op whose backward it checks
 * (gradcheck.h does it in gc_check and gc_compare_kernels); or_covered says whether any did in
 * this process. */
void or_cover(const char *op);
int or_covered(const char *op);

/* ---- small helpers the op tests share ---- */

static inline gr_attr ival(const char *name, int64_t v)
{
    return (gr_attr){ .name = name, .type = GR_AT_INT, .i = v };
}
static inline gr_attr fval(const char *name, float v)
{
    return (gr_attr){ .name = name, .type = GR_AT_FLOAT, .f = v };
}
static inline gr_attr sval(const char *name, const char *v)
{
    return (gr_attr){ .name = name, .type = GR_AT_STRING, .s = v };
}
static inline gr_attr ints(const char *name, int n, const int64_t *v)
{
    return (gr_attr){ .name = name, .type = GR_AT_INTS, .n = n, .ints = (int64_t *)v };
}
/* t has exactly this shape */
static inline int shape_is(const gr_tensor *t, int rank, const int64_t *d)
{
    if (t->shape.rank != rank) return 0;
    for (int i = 0; i < rank; i++)
        if (t->shape.d[i] != d[i]) return 0;
    return 1;
}
/* Whether the node runs a oneDNN primitive: the state of the conv, pool, norm and matmul ops
 * starts with it (NULL: the reference kernel). */
static inline int used_dnnl(const or_node *n)
{
    return n->c.params && *(dnnl_primitive_t *)n->c.params != NULL;
}

#endif
