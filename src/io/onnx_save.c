/* onnx_save.c — ONNX export: a gr_graph back to a ModelProto through protobuf-c, the inverse of
 * onnx.c. The proto messages are built in a scratch arena and point at the graph's own strings
 * and tensor data (nothing is copied); packing streams straight into the file.
 *
 * Limits: one protobuf message cannot exceed 2 GB, so larger models (which would need ONNX
 * external data) are refused with an error. The loader does not keep dim_param names, so a
 * symbolic dim is written as "batch" in position 0 and "<value>_dim<i>" elsewhere. */
#include "io.h"

#include "onnx.pb-c.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnx_save.c writes tensors' memory as raw_data, which ONNX defines as little-endian"
#endif

#define IR_VERSION      8 /* ONNX 1.12 (Debian) and onnxruntime 1.30 read it */
#define MAX_PROTO_BYTES 2147483647u

typedef struct ctx {
    gr_arena *a;
    const gr_graph *g;
    const char *path;
    int st; /* set by a builder that fails for a reason other than memory */
} ctx;

/* Arena allocation of one message, initialised with its protobuf-c INIT value. */
#define NEW(c, T, INIT) new_msg((c), sizeof(T), &(T)INIT)
static void *new_msg(ctx *c, size_t size, const void *init)
{
    void *p = gr_arena_alloc(c->a, size);
    if (p) memcpy(p, init, size);
    return p;
}

static void *arr(ctx *c, size_t n, size_t size) { return gr_arena_alloc(c->a, (n ? n : 1) * size); }

static char *str(const char *s) { return (char *)(s ? s : ""); }

static Onnx__TensorProto *tensor_proto(ctx *c, const gr_tensor *t, const char *name,
                                       const char *what)
{
    if (!gr_dtype_size(t->dtype) || t->layout)
        return c->st = gr_err(GRAFT_E_INTERNAL, "%s: %s is not a plain tensor of a known type",
                              c->path, what),
               NULL;
    Onnx__TensorProto *tp = NEW(c, Onnx__TensorProto, ONNX__TENSOR_PROTO__INIT);
    if (!tp || !(tp->dims = arr(c, (size_t)t->shape.rank, sizeof(int64_t)))) return NULL;
    tp->n_dims = (size_t)t->shape.rank;
    for (int i = 0; i < t->shape.rank; i++) tp->dims[i] = t->shape.d[i];
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->name = name ? str(name) : NULL;
    tp->has_raw_data = 1;
    tp->raw_data.len = (size_t)gr_numel(&t->shape) * gr_dtype_size(t->dtype);
    tp->raw_data.data = t->data;
    return tp;
}

static ProtobufCBinaryData bin(const char *s)
{
    return (ProtobufCBinaryData){ s ? strlen(s) : 0, (uint8_t *)str(s) };
}

static Onnx__AttributeProto *attr_proto(ctx *c, const gr_attr *at, const gr_node *n)
{
    /* "_fused_act" and the like are graft's inference rewrites (graph/optimize.c): no ONNX
     * reader knows them, and dropping them would drop the fused activation. */
    if (at->name && at->name[0] == '_')
        return c->st = gr_err(GRAFT_E_ARG,
                              "%s: node '%s' has graft's internal attribute '%s' (an inference "
                              "rewrite): export the graph as loaded, without gr_graph_optimize",
                              c->path, n->name, at->name),
               NULL;
    Onnx__AttributeProto *ap = NEW(c, Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT);
    if (!ap) return NULL;
    ap->name = str(at->name);
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)at->type;
    switch (at->type) {
    case GR_AT_FLOAT:
        ap->has_f = 1;
        ap->f = at->f;
        break;
    case GR_AT_INT:
        ap->has_i = 1;
        ap->i = at->i;
        break;
    case GR_AT_STRING:
        ap->has_s = 1;
        ap->s = bin(at->s);
        break;
    case GR_AT_FLOATS:
        ap->n_floats = (size_t)at->n;
        ap->floats = at->floats;
        break;
    case GR_AT_INTS:
        ap->n_ints = (size_t)at->n;
        ap->ints = at->ints;
        break;
    case GR_AT_STRINGS:
        ap->n_strings = (size_t)at->n;
        if (!(ap->strings = arr(c, (size_t)at->n, sizeof *ap->strings))) return NULL;
        for (int i = 0; i < at->n; i++) ap->strings[i] = bin(at->strings[i]);
        break;
    case GR_AT_TENSOR: {
        char what[512];
        snprintf(what, sizeof what, "node '%s' attribute '%s'", n->name, at->name);
        if (!(ap->t = tensor_proto(c, &at->t, NULL, what))) return NULL;
        break;
    }
    default:
        return c->st = gr_err(GRAFT_E_UNSUPPORTED,
                              "%s: node '%s' attribute '%s' is of ONNX attribute type %d "
                              "(graph, sparse tensor or type), which graft cannot write",
                              c->path, n->name, at->name, at->type),
               NULL;
    }
    return ap;
}

/* "ai.onnx" is another name of the default domain; write it the usual way. */
static const char *domain_of(const gr_node *n)
{
    return !n->domain || strcmp(n->domain, "ai.onnx") == 0 ? "" : n->domain;
}

static Onnx__NodeProto *node_proto(ctx *c, const gr_node *n)
{
    const gr_graph *g = c->g;
    Onnx__NodeProto *np = NEW(c, Onnx__NodeProto, ONNX__NODE_PROTO__INIT);
    if (!np) return NULL;
    np->name = str(n->name);
    np->op_type = str(n->op_type);
    np->domain = str(domain_of(n));
    np->n_input = (size_t)n->nin;
    np->n_output = (size_t)n->nout;
    np->n_attribute = (size_t)n->nattr;
    np->input = arr(c, (size_t)n->nin, sizeof(char *));
    np->output = arr(c, (size_t)n->nout, sizeof(char *));
    np->attribute = arr(c, (size_t)n->nattr, sizeof(void *));
    if (!np->input || !np->output || !np->attribute) return NULL;
    for (int i = 0; i < n->nin; i++) np->input[i] = n->in[i] >= 0 ? g->values[n->in[i]].name : "";
    for (int i = 0; i < n->nout; i++)
        np->output[i] = n->out[i] >= 0 ? g->values[n->out[i]].name : "";
    for (int i = 0; i < n->nattr; i++)
        if (!(np->attribute[i] = attr_proto(c, &n->attrs[i], n))) return NULL;
    return np;
}

static Onnx__TensorShapeProto__Dimension *dim_proto(ctx *c, const gr_value *v, int i)
{
    Onnx__TensorShapeProto__Dimension *d =
        NEW(c, Onnx__TensorShapeProto__Dimension, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT);
    if (!d) return NULL;
    if (v->t.shape.d[i] >= 0) {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = v->t.shape.d[i];
        return d;
    }
    d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    if (i == 0) {
        d->dim_param = "batch";
    } else {
        size_t len = strlen(v->name) + 32;
        if (!(d->dim_param = gr_arena_alloc(c->a, len))) return NULL;
        snprintf(d->dim_param, len, "%s_dim%d", v->name, i);
    }
    return d;
}

static Onnx__ValueInfoProto *value_info(ctx *c, const gr_value *v)
{
    Onnx__ValueInfoProto *vi = NEW(c, Onnx__ValueInfoProto, ONNX__VALUE_INFO_PROTO__INIT);
    Onnx__TypeProto *tp = NEW(c, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT);
    Onnx__TypeProto__Tensor *tt = NEW(c, Onnx__TypeProto__Tensor, ONNX__TYPE_PROTO__TENSOR__INIT);
    if (!vi || !tp || !tt) return NULL;
    vi->name = v->name;
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = v->t.dtype != 0;
    tt->elem_type = (int32_t)v->t.dtype;
    if (!v->has_shape) return vi;
    Onnx__TensorShapeProto *sp = NEW(c, Onnx__TensorShapeProto, ONNX__TENSOR_SHAPE_PROTO__INIT);
    if (!sp || !(sp->dim = arr(c, (size_t)v->t.shape.rank, sizeof(void *)))) return NULL;
    sp->n_dim = (size_t)v->t.shape.rank;
    for (int i = 0; i < v->t.shape.rank; i++)
        if (!(sp->dim[i] = dim_proto(c, v, i))) return NULL;
    tt->shape = sp;
    return vi;
}

static Onnx__GraphProto *graph_proto(ctx *c)
{
    const gr_graph *g = c->g;
    Onnx__GraphProto *gp = NEW(c, Onnx__GraphProto, ONNX__GRAPH_PROTO__INIT);
    if (!gp) return NULL;
    /* The checker wants a graph name. */
    gp->name = g->graph_name && g->graph_name[0] ? g->graph_name : "graft";
    int ninit = 0;
    for (int v = 0; v < g->nvalues; v++) ninit += g->values[v].is_init;
    gp->node = arr(c, (size_t)g->nnodes, sizeof(void *));
    gp->initializer = arr(c, (size_t)ninit, sizeof(void *));
    gp->input = arr(c, (size_t)g->ninputs, sizeof(void *));
    gp->output = arr(c, (size_t)g->noutputs, sizeof(void *));
    if (!gp->node || !gp->initializer || !gp->input || !gp->output) return NULL;
    for (int k = 0; k < g->nnodes; k++)
        if (!(gp->node[gp->n_node++] = node_proto(c, &g->nodes[k]))) return NULL;
    for (int v = 0; v < g->nvalues; v++) {
        if (!g->values[v].is_init) continue;
        char what[512];
        snprintf(what, sizeof what, "initializer '%s'", g->values[v].name);
        if (!(gp->initializer[gp->n_initializer++] =
                  tensor_proto(c, &g->values[v].t, g->values[v].name, what)))
            return NULL;
    }
    for (int i = 0; i < g->ninputs; i++)
        if (!(gp->input[gp->n_input++] = value_info(c, &g->values[g->inputs[i]]))) return NULL;
    for (int i = 0; i < g->noutputs; i++)
        if (!(gp->output[gp->n_output++] = value_info(c, &g->values[g->outputs[i]]))) return NULL;
    return gp;
}

/* The default domain at the graph's opset, and version 1 of every other domain a node uses
 * (the loader does not keep their versions; the checker needs each one declared). */
static int opsets(ctx *c, Onnx__ModelProto *mp)
{
    const gr_graph *g = c->g;
    mp->opset_import = arr(c, (size_t)g->nnodes + 1, sizeof(void *));
    if (!mp->opset_import) return GRAFT_E_NOMEM;
    for (int k = -1; k < g->nnodes; k++) {
        const char *dom = k < 0 ? "" : domain_of(&g->nodes[k]);
        size_t j = 0;
        while (j < mp->n_opset_import && strcmp(mp->opset_import[j]->domain, dom)) j++;
        if (j < mp->n_opset_import) continue;
        Onnx__OperatorSetIdProto *o =
            NEW(c, Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT);
        if (!o) return GRAFT_E_NOMEM;
        o->domain = (char *)dom;
        o->has_version = 1;
        o->version = k < 0 ? g->opset : 1;
        mp->opset_import[mp->n_opset_import++] = o;
    }
    return GRAFT_OK;
}

static Onnx__ModelProto *model_proto(ctx *c)
{
    const gr_graph *g = c->g;
    Onnx__ModelProto *mp = NEW(c, Onnx__ModelProto, ONNX__MODEL_PROTO__INIT);
    if (!mp) return NULL;
    mp->has_ir_version = 1;
    mp->ir_version = IR_VERSION;
    mp->producer_name = "graft";
    mp->producer_version = (char *)graft_version();
    if (opsets(c, mp)) return NULL;
    mp->metadata_props = arr(c, (size_t)g->nmeta, sizeof(void *));
    if (!mp->metadata_props) return NULL;
    for (int i = 0; i < g->nmeta; i++) {
        Onnx__StringStringEntryProto *e =
            NEW(c, Onnx__StringStringEntryProto, ONNX__STRING_STRING_ENTRY_PROTO__INIT);
        if (!e) return NULL;
        e->key = str(g->meta[i].key);
        e->value = str(g->meta[i].value);
        mp->metadata_props[mp->n_metadata_props++] = e;
    }
    mp->graph = graph_proto(c);
    return mp->graph ? mp : NULL;
}

/* protobuf-c output sink that writes to the temp file. */
typedef struct file_sink {
    ProtobufCBuffer base;
    gr_wfile *w;
} file_sink;

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    gr_wfile_write(((file_sink *)b)->w, data, len);
}

int gr_onnx_save(const gr_graph *g, const char *path)
{
    ctx c = { gr_arena_new(1 << 16), g, path, GRAFT_OK };
    if (!c.a) return gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    Onnx__ModelProto *mp = model_proto(&c);
    if (!mp) {
        gr_arena_free(c.a);
        return c.st ? c.st : gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    }
    size_t size = onnx__model_proto__get_packed_size(mp);
    if (size > MAX_PROTO_BYTES) {
        gr_arena_free(c.a);
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: the model needs %zu bytes; ONNX files of 2 GB or more "
                      "(external data) are not supported",
                      path, size);
    }
    gr_wfile w;
    int st = gr_wfile_open(&w, path);
    if (!st) {
        file_sink sink = { { sink_append }, &w };
        size_t wrote = onnx__model_proto__pack_to_buffer(mp, &sink.base);
        if (wrote != size && !w.err) w.err = EIO;
        st = gr_wfile_commit(&w);
    }
    gr_arena_free(c.a);
    return st;
}
