/* optimize.c — inference rewrites of the graph, done once at load:
 *  - BatchNormalization after a Conv is folded into the Conv's weights and bias
 *    (W' = W * g / sqrt(v + eps) per output channel, b' = (b - m) * g / sqrt(v + eps) + beta);
 *  - an op flagged GR_OPF_FUSE_RELU (Relu), or GR_OPF_FUSE_CLIP with constant bounds (Clip),
 *    after a Conv becomes the Conv's fused activation (the "_fused_act" attribute the conv
 *    kernels read; oneDNN applies it as a post-op).
 * Both need the Conv's output to have no other reader.
 * For training, gr_graph_fold_frozen folds only BatchNorms whose Conv and own parameters are all
 * frozen (a frozen BatchNorm runs in inference mode, an affine map, so folding changes neither
 * the outputs nor any gradient) and fuses no activation, so the graph still exports as plain
 * ONNX. Value indices of existing values never change; new values are appended. */
#include "graph.h"

#include <math.h>
#include <string.h>

static int *reader_counts(const gr_graph *g)
{
    int *n = calloc((size_t)g->nvalues + 1, sizeof *n);
    if (!n) return NULL;
    for (int k = 0; k < g->nnodes; k++)
        for (int i = 0; i < g->nodes[k].nin; i++)
            if (g->nodes[k].in[i] >= 0) n[g->nodes[k].in[i]]++;
    for (int i = 0; i < g->noutputs; i++) n[g->outputs[i]]++;
    return n;
}

static const gr_value *init_f32(const gr_graph *g, const gr_node *n, int i)
{
    if (i >= n->nin || n->in[i] < 0) return NULL;
    const gr_value *v = &g->values[n->in[i]];
    return v->is_init && v->t.dtype == GR_F32 ? v : NULL;
}

static float node_float(const gr_node *n, const char *name, float def)
{
    for (int i = 0; i < n->nattr; i++)
        if (!strcmp(n->attrs[i].name, name) && n->attrs[i].type == GR_AT_FLOAT)
            return n->attrs[i].f;
    return def;
}

static int node_int(const gr_node *n, const char *name, int64_t def)
{
    for (int i = 0; i < n->nattr; i++)
        if (!strcmp(n->attrs[i].name, name) && n->attrs[i].type == GR_AT_INT)
            return (int)n->attrs[i].i;
    return (int)def;
}

/* The single node reading value v (its reader count must be 1), or -1. */
static int sole_reader(const gr_graph *g, int from, int v)
{
    for (int k = from; k < g->nnodes; k++)
        for (int i = 0; i < g->nodes[k].nin; i++)
            if (g->nodes[k].in[i] == v) return k;
    return -1;
}

static int add_attr(gr_graph *g, gr_node *n, gr_attr a)
{
    gr_attr *attrs = gr_arena_alloc(g->arena, (size_t)(n->nattr + 1) * sizeof *attrs);
    if (!attrs) return GRAFT_E_NOMEM;
    memcpy(attrs, n->attrs, (size_t)n->nattr * sizeof *attrs);
    attrs[n->nattr++] = a;
    n->attrs = attrs;
    return GRAFT_OK;
}

/* Folds BN node b into conv node c. */
static int fold_bn(gr_graph *g, gr_node *c, const gr_node *b)
{
    const gr_value *w = init_f32(g, c, 1), *cb = init_f32(g, c, 2);
    const gr_value *sc = init_f32(g, b, 1), *bi = init_f32(g, b, 2), *mu = init_f32(g, b, 3),
                   *va = init_f32(g, b, 4);
    if (!w || (c->nin > 2 && c->in[2] >= 0 && !cb) || !sc || !bi || !mu || !va) return 1;
    int64_t oc = w->t.shape.d[0];
    if (w->t.shape.rank < 3 || gr_numel(&sc->t.shape) != oc || gr_numel(&bi->t.shape) != oc ||
        gr_numel(&mu->t.shape) != oc || gr_numel(&va->t.shape) != oc)
        return 1;
    if (node_int(b, "training_mode", 0)) return 1;
    float eps = node_float(b, "epsilon", 1e-5f);
    int64_t per = gr_numel(&w->t.shape) / oc;
    /* new values for the folded weight and bias */
    int vw = g->nvalues, vb = g->nvalues + 1;
    float *nw = gr_arena_alloc(g->arena, (size_t)gr_numel(&w->t.shape) * sizeof(float));
    float *nb = gr_arena_alloc(g->arena, (size_t)oc * sizeof(float));
    if (!nw || !nb) return GRAFT_E_NOMEM;
    const float *W = w->t.data, *S = sc->t.data, *B = bi->t.data, *M = mu->t.data, *V = va->t.data;
    const float *CB = cb ? cb->t.data : NULL;
    for (int64_t o = 0; o < oc; o++) {
        double s = S[o] / sqrt((double)V[o] + eps);
        for (int64_t j = 0; j < per; j++) nw[o * per + j] = (float)(W[o * per + j] * s);
        nb[o] = (float)(((CB ? CB[o] : 0.0) - M[o]) * s + B[o]);
    }
    char name[600];
    snprintf(name, sizeof name, "%s/folded_weight", c->name);
    g->values[vw] = (gr_value){ gr_arena_strdup(g->arena, name),
                                { .dtype = GR_F32, .shape = w->t.shape, .data = nw },
                                1,
                                1,
                                -1 };
    snprintf(name, sizeof name, "%s/folded_bias", c->name);
    g->values[vb] = (gr_value){ gr_arena_strdup(g->arena, name),
                                { .dtype = GR_F32, .shape = { 1, { oc } }, .data = nb },
                                1,
                                1,
                                -1 };
    g->nvalues += 2;
    int *in = gr_arena_alloc(g->arena, 3 * sizeof(int));
    if (!in) return GRAFT_E_NOMEM;
    in[0] = c->in[0];
    in[1] = vw;
    in[2] = vb;
    c->in = in;
    c->nin = 3;
    c->out[0] = b->out[0];
    return 0;
}

static int fuse_act(gr_graph *g, gr_node *c, const gr_node *a)
{
    if (a->op->flags & GR_OPF_FUSE_RELU) {
        if (add_attr(g, c, (gr_attr){ .name = "_fused_act", .type = GR_AT_STRING, .s = "relu" }))
            return GRAFT_E_NOMEM;
    } else {
        float lo = node_float(a, "min", -INFINITY), hi = node_float(a, "max", INFINITY);
        for (int i = 1; i < a->nin && i < 3; i++) {
            if (a->in[i] < 0) continue;
            const gr_value *v = &g->values[a->in[i]];
            if (!v->is_init || v->t.dtype != GR_F32 || gr_numel(&v->t.shape) != 1) return 1;
            if (i == 1) lo = *(const float *)v->t.data;
            else hi = *(const float *)v->t.data;
        }
        if (add_attr(g, c, (gr_attr){ .name = "_fused_act", .type = GR_AT_STRING, .s = "clip" }) ||
            add_attr(g, c, (gr_attr){ .name = "_fused_min", .type = GR_AT_FLOAT, .f = lo }) ||
            add_attr(g, c, (gr_attr){ .name = "_fused_max", .type = GR_AT_FLOAT, .f = hi }))
            return GRAFT_E_NOMEM;
    }
    c->out[0] = a->out[0];
    return 0;
}

static int has_fused(const gr_node *n)
{
    for (int i = 0; i < n->nattr; i++)
        if (!strcmp(n->attrs[i].name, "_fused_act")) return 1;
    return 0;
}

/* Constant nodes become initializers, so that the rewrites below (and the planner) see their
 * values: exporters write Clip's bounds and many shapes as Constant nodes. */
static void constants_to_initializers(gr_graph *g, unsigned char *dead)
{
    for (int k = 0; k < g->nnodes; k++) {
        gr_node *n = &g->nodes[k];
        if (strcmp(n->op_type, "Constant") || n->nout != 1 || n->out[0] < 0 || n->nattr != 1)
            continue;
        const gr_attr *a = &n->attrs[0];
        gr_value *v = &g->values[n->out[0]];
        if (!strcmp(a->name, "value") && a->type == GR_AT_TENSOR) v->t = a->t;
        else continue; /* value_float(s), value_int(s)...: the Constant op handles them */
        v->is_init = 1;
        v->producer = -1;
        dead[k] = 1;
    }
}

/* Whether a rewrite may touch node n: none of its inputs is in `keep` (trainable values). */
static int frozen(const gr_node *n, const unsigned char *keep)
{
    if (!keep) return 1;
    for (int i = 1; i < n->nin; i++)
        if (n->in[i] >= 0 && keep[n->in[i]]) return 0;
    return 1;
}

static int optimize(gr_graph *g, const unsigned char *keep, int fuse)
{
    /* room for two new values (folded weight and bias) per Conv */
    int nconv = 0;
    for (int k = 0; k < g->nnodes; k++) nconv += !strcmp(g->nodes[k].op_type, "Conv");
    gr_value *values =
        gr_arena_alloc(g->arena, (size_t)(g->nvalues + 2 * nconv + 1) * sizeof *values);
    if (!values) return GRAFT_E_NOMEM;
    memcpy(values, g->values, (size_t)g->nvalues * sizeof *values);
    g->values = values;
    unsigned char *dead = calloc((size_t)g->nnodes + 1, 1);
    int *readers = reader_counts(g);
    if (!dead || !readers) {
        free(dead);
        free(readers);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    constants_to_initializers(g, dead);
    for (int k = 0; k < g->nnodes; k++) {
        gr_node *c = &g->nodes[k];
        if (dead[k] || strcmp(c->op_type, "Conv") || c->nout != 1 || !frozen(c, keep)) continue;
        for (int pass = 0; pass < 2; pass++) {
            int v = c->out[0];
            if (readers[v] != 1) break;
            int r = sole_reader(g, k + 1, v);
            if (r < 0) break;
            gr_node *n = &g->nodes[r];
            int st = 1;
            if (!strcmp(n->op_type, "BatchNormalization") && n->nout == 1 && n->in[0] == v &&
                !has_fused(c) && frozen(n, keep))
                st = fold_bn(g, c, n);
            else if (fuse && n->op && (n->op->flags & (GR_OPF_FUSE_RELU | GR_OPF_FUSE_CLIP)) &&
                     !has_fused(c))
                st = fuse_act(g, c, n);
            if (st == GRAFT_E_NOMEM) {
                free(dead);
                free(readers);
                return gr_err(st, "out of memory");
            }
            if (st) break;
            dead[r] = 1;
        }
    }
    int m = 0;
    for (int k = 0; k < g->nnodes; k++)
        if (!dead[k]) g->nodes[m++] = g->nodes[k];
    g->nnodes = m;
    free(dead);
    free(readers);
    return gr_graph_sort(g);
}

int gr_graph_optimize(gr_graph *g) { return optimize(g, NULL, 1); }

int gr_graph_fold_frozen(gr_graph *g, const unsigned char *keep) { return optimize(g, keep, 0); }
