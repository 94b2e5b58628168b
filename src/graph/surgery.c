/* surgery.c — a graph edited for transfer learning: value shapes, cutting at a feature value,
 * new classification heads, finding a model's classifier, and choosing which parameters train
 * (freezing). The editing primitives (adding values and nodes, pruning, appending) are in
 * graph.c.
 *
 * Decisions (what PyTorch / timm / Keras users expect):
 *  - Shapes come from a reference-kernel inference plan (nothing runs): for shapes the caller
 *    does not give, a symbolic batch dim is 1 and other symbolic dims 224 (16000 for a signal's
 *    samples: gr_symbolic_dim), as `graft info`.
 *  - Heads are named "<prefix>.<part>" and recorded in the metadata entry "graft.head" =
 *    prefix, so "head" in a freeze spec and gr_graph_find_classifier know a whole added head
 *    (an MLP head is more than its last Gemm), also after an ONNX export and reload. */
#define _POSIX_C_SOURCE 200809L
#include "graph.h"

#include <fnmatch.h>
#include <math.h>
#include <string.h>

static int oom(void) { return gr_err(GRAFT_E_NOMEM, "out of memory editing the graph"); }

/* ---- shapes ---- */

/* A reference-kernel inference plan at the given input shapes (see gr_graph_value_shape). */
static int probe_plan(const gr_graph *g, const gr_shape *shapes, gr_plan **p)
{
    gr_tensor *in = gr_calloc((size_t)g->ninputs + 1, sizeof *in);
    if (!in) return oom();
    for (int i = 0; i < g->ninputs; i++) {
        const gr_value *v = &g->values[g->inputs[i]];
        in[i].dtype = v->t.dtype ? v->t.dtype : GR_F32;
        if (shapes) {
            in[i].shape = shapes[i];
            continue;
        }
        if (!v->has_shape) {
            free(in);
            return gr_err(GRAFT_E_ARG, "input '%s' declares no shape: give the input shapes",
                          v->name);
        }
        in[i].shape = v->t.shape;
        for (int d = 0; d < in[i].shape.rank; d++)
            if (in[i].shape.d[d] < 0)
                in[i].shape.d[d] = d == 0 ? 1 : gr_symbolic_dim(in[i].shape.rank);
    }
    gr_plan_opts o = { .use_ref = 1 };
    int st = gr_plan_build(g, in, &o, p);
    free(in);
    return st;
}

int gr_graph_value_shape(const gr_graph *g, int v, const gr_shape *input_shapes, gr_shape *shape,
                         int *dtype)
{
    if (v < 0 || v >= g->nvalues) return gr_err(GRAFT_E_ARG, "value %d is not in the graph", v);
    gr_plan *p;
    int st = probe_plan(g, input_shapes, &p);
    if (st) return gr_err_prefix(st, "shape of '%s'", g->values[v].name);
    const gr_tensor *t = gr_plan_value(p, v);
    if (shape) *shape = t->shape;
    if (dtype) *dtype = t->dtype;
    gr_plan_free(p);
    return GRAFT_OK;
}

/* ---- cutting ---- */

/* A value name, or a node name standing for the node's first output; -1 if neither. */
static int resolve(const gr_graph *g, const char *name)
{
    int v = gr_graph_find_value(g, name);
    if (v >= 0) return v;
    int k = gr_graph_find_node(g, name);
    return k >= 0 && g->nodes[k].nout > 0 ? g->nodes[k].out[0] : -1;
}

/* Types from a probe plan; when it cannot be built (input shapes the probe does not fit), the
 * declared types are used and an undeclared one is an error. */
static int cut_values(gr_graph *g, const int *vals, int n)
{
    gr_plan *p = NULL;
    int pst = probe_plan(g, NULL, &p);
    char why[512];
    snprintf(why, sizeof why, "%s", pst ? graft_last_error() : "");
    for (int i = 0; i < n; i++) {
        const gr_value *x = &g->values[vals[i]];
        int dt = p ? (int)gr_plan_value(p, vals[i])->dtype : (int)x->t.dtype;
        if (!dt) {
            gr_plan_free(p);
            return gr_err(pst ? pst : GRAFT_E_INTERNAL, "cut: cannot tell the type of '%s': %s",
                          x->name, why);
        }
        if (dt != GR_F32) {
            gr_plan_free(p);
            return gr_err(GRAFT_E_ARG, "cut: '%s' is %s, not float32 features", x->name,
                          gr_dtype_name(dt));
        }
    }
    gr_plan_free(p);
    int *outs = gr_arena_alloc(g->arena, (size_t)(n + 1) * sizeof *outs);
    if (!outs) return oom();
    for (int i = 0; i < n; i++) {
        outs[i] = vals[i];
        if (!g->values[vals[i]].t.dtype) g->values[vals[i]].t.dtype = GR_F32; /* for an export */
    }
    g->outputs = outs;
    g->noutputs = n;
    return gr_graph_prune(g);
}

/* "; valid cut points: a, b, ..., z" for an error about an unknown layer: the first four and the
 * last four cut points at the declared input shapes (empty when they cannot be computed). */
static void cut_point_hint(const gr_graph *g, char *buf, size_t cap)
{
    buf[0] = 0;
    gr_plan *p;
    if (probe_plan(g, NULL, &p)) return;
    int max = gr_plan_steps(p) + 1, *cuts = gr_malloc((size_t)max * sizeof *cuts);
    int nc = cuts ? gr_plan_cut_points(p, cuts, max) : -1;
    gr_plan_free(p);
    size_t k = 0;
    for (int i = 0; i < nc && k < cap; i++) {
        if (nc > 8 && i == 4) {
            k += (size_t)snprintf(buf + k, cap - k, ", ...");
            i = nc - 5;
            continue;
        }
        k += (size_t)snprintf(buf + k, cap - k, "%s%s",
                              i ? ", " : "; valid cut points: ", g->values[cuts[i]].name);
    }
    if (nc > 0 && k < cap) snprintf(buf + k, cap - k, " (`graft info` lists all %d)", nc);
    free(cuts);
}

int gr_graph_cut(gr_graph *g, const char *const *names, int n)
{
    if (n < 1) return gr_err(GRAFT_E_ARG, "cut: no value named");
    int *vals = gr_calloc((size_t)n, sizeof *vals);
    if (!vals) return oom();
    int st = GRAFT_OK;
    for (int i = 0; i < n && !st; i++) {
        vals[i] = resolve(g, names[i]);
        if (vals[i] < 0) {
            char hint[1024];
            cut_point_hint(g, hint, sizeof hint);
            st = gr_err(GRAFT_E_ARG, "cut: '%s' is neither a value nor a node of the graph%s",
                        names[i], hint);
        } else if (g->values[vals[i]].is_init)
            st = gr_err(GRAFT_E_ARG, "cut: '%s' is an initializer (a constant), not an activation",
                        names[i]);
        for (int q = 0; q < i && !st; q++)
            if (vals[q] == vals[i])
                st = gr_err(GRAFT_E_ARG, "cut: '%s' is named twice", g->values[vals[i]].name);
    }
    if (!st) st = cut_values(g, vals, n);
    free(vals);
    return st;
}

/* ---- heads ----
 * From a feature value F of shape (N, C, H, W):
 *   pool "avg"   <p>.pool = GlobalAveragePool(F)                           (N, C, 1, 1)
 *   pool "grid2" <p>.pool = AveragePool(F, kernel (ceil(H/2), ceil(W/2)),
 *                           strides (floor(H/2), floor(W/2)), no padding)   (N, C, 2, 2)
 *                the mean of each cell of a 2x2 grid, cells [0, ceil(H/2)) and [floor(H/2), H)
 *                per axis (overlapping by the middle row/column when H or W is odd): exactly
 *                PyTorch's adaptive_avg_pool2d(F, 2). Needs H, W >= 2; the kernel is fixed by
 *                the shapes the head is built for.
 *   pool "grid4" the same with 4x4 cells (H and W multiples of 4: equal cells)  (N, C, 4, 4)
 *   <p>.flatten = Flatten(axis 1)                                          (N, C), (N, 4C), (N, 16C)
 * From a feature of shape (N, C) the head starts here. Then, linear:
 *   [<p>.dropout = Dropout(p)]  <p>.fc = Gemm(x, <p>.fc.weight (nclass, fan_in), <p>.fc.bias, transB=1)
 * or MLP:
 *   <p>.fc1 = Gemm (hidden) → <p>.relu = Relu → [<p>.dropout = Dropout(p)] → <p>.fc2 = Gemm (nclass)
 * Dropout's ratio is an initializer "<p>.dropout.ratio" from opset 12 (the attribute before). */

static const char *prefix_of(const gr_head_spec *s)
{
    return s->prefix && s->prefix[0] ? s->prefix : "head";
}

/* vgone/ngone (may be NULL): values and nodes a cut made before the head will remove, whose
 * names are therefore free. */
static int check_spec(const gr_graph *g, const gr_head_spec *s, const unsigned char *vgone,
                      const unsigned char *ngone)
{
    const char *p = prefix_of(s);
    if (s->nclass < 1) return gr_err(GRAFT_E_ARG, "head '%s': %d classes", p, s->nclass);
    if (s->hidden < 0) return gr_err(GRAFT_E_ARG, "head '%s': hidden size %d", p, s->hidden);
    if (!(s->dropout >= 0 && s->dropout < 1))
        return gr_err(GRAFT_E_ARG, "head '%s': dropout %g is outside [0, 1)", p, s->dropout);
    if (s->dropout > 0 && g->opset < 7)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "head '%s': Dropout needs opset 7 or later (the model has %d)", p, g->opset);
    if (s->pool != GR_POOL_MEAN && s->pool != GR_POOL_GRID2 && s->pool != GR_POOL_GRID4)
        return gr_err(GRAFT_E_ARG, "head '%s': unknown pool %d (mean, grid2 or grid4)", p, s->pool);
    if (strlen(p) > 200) return gr_err(GRAFT_E_ARG, "head prefix '%.40s...' is too long", p);
    for (int v = 0; v < g->nvalues; v++)
        if ((!vgone || !vgone[v]) && gr_name_in_head(g->values[v].name, p))
            return gr_err(GRAFT_E_ARG, "head prefix '%s' is taken: value '%s' exists", p,
                          g->values[v].name);
    for (int k = 0; k < g->nnodes; k++)
        if ((!ngone || !ngone[k]) && gr_name_in_head(g->nodes[k].name, p))
            return gr_err(GRAFT_E_ARG, "head prefix '%s' is taken: node '%s' exists", p,
                          g->nodes[k].name);
    return GRAFT_OK;
}

static int dropout(gr_gb *b, int x, float ratio, int *y)
{
    int st = gr_gb_value(b, "dropout.out", GR_F32, NULL, NULL, y);
    if (st) return st;
    if (b->g->opset < 12) {
        gr_attr a = { .name = "ratio", .type = GR_AT_FLOAT, .f = ratio };
        return gr_gb_node(b, "dropout", "Dropout", &x, 1, *y, &a, 1);
    }
    gr_shape scalar = { 0, { 0 } };
    int in[2] = { x, -1 };
    st = gr_gb_value(b, "dropout.ratio", GR_F32, &scalar, &ratio, &in[1]);
    return st ? st : gr_gb_node(b, "dropout", "Dropout", in, 2, *y, NULL, 0);
}

/* The feature's shape, checked against what the head needs. */
static int feature_shape(const gr_graph *g, int from, const gr_head_spec *spec, gr_shape *fs)
{
    const char *p = prefix_of(spec), *fname = g->values[from].name;
    int dt, G = gr_pool_side(spec->pool),
            st = gr_graph_value_shape(g, from, spec->input_shapes, fs, &dt);
    if (st) return gr_err_prefix(st, "head '%s'", p);
    char sb[128];
    gr_shape_str(fs, sb, sizeof sb);
    if (dt != GR_F32 || (fs->rank != 2 && fs->rank != 4))
        return gr_err(
            GRAFT_E_SHAPE,
            "head '%s': feature '%s' is %s %s; a head needs float32 (N, C) or (N, C, H, W)", p,
            fname, gr_dtype_name(dt), sb);
    if (fs->rank == 4 && G == 2 && (fs->d[2] < 2 || fs->d[3] < 2))
        return gr_err(GRAFT_E_SHAPE, "head '%s': grid2 pooling needs H, W >= 2, feature '%s' is %s",
                      p, fname, sb);
    if (fs->rank == 4 && G == 4 && (fs->d[2] < 4 || fs->d[3] < 4 || fs->d[2] % 4 || fs->d[3] % 4))
        return gr_err(GRAFT_E_SHAPE,
                      "head '%s': grid4 pooling needs H and W multiples of 4, feature '%s' is %s",
                      p, fname, sb);
    return GRAFT_OK;
}

/* [Dropout] → fc, or fc1 → Relu → [Dropout] → fc2, from the (N, fan_in) value x into logits. */
static int head_layers(gr_gb *b, const gr_head_spec *spec, int x, int64_t fan_in, int logits)
{
    int st;
    if (spec->hidden > 0) {
        int h = -1, r;
        if ((st = gr_gb_linear(b, "fc1", x, spec->hidden, fan_in, NULL, NULL, &h)) ||
            (st = gr_gb_op(b, "relu.out", "relu", "Relu", &h, 1, NULL, 0, &r)))
            return st;
        x = r, fan_in = spec->hidden;
    }
    if (spec->dropout > 0 && (st = dropout(b, x, spec->dropout, &x))) return st;
    return gr_gb_linear(b, spec->hidden > 0 ? "fc2" : "fc", x, spec->nclass, fan_in, NULL, NULL,
                        &logits);
}

int gr_graph_add_head(gr_graph *g, int from, const gr_head_spec *spec, gr_rng *rng, int *out_value)
{
    int st = check_spec(g, spec, NULL, NULL);
    if (st) return st;
    if (from < 0 || from >= g->nvalues)
        return gr_err(GRAFT_E_ARG, "head: value %d is not in the graph", from);
    if (g->values[from].is_init || !gr_graph_can_read(g, from))
        return gr_err(GRAFT_E_ARG, "head: '%s' is not an activation of the graph",
                      g->values[from].name);
    gr_shape fs;
    if ((st = feature_shape(g, from, spec, &fs))) return st;
    char prefix[210];
    snprintf(prefix, sizeof prefix, "%s.", prefix_of(spec));
    gr_gb b = { .g = g, .prefix = prefix, .act_dtype = GR_F32, .rng = rng };
    int x = from, logits;
    int64_t fan_in = fs.d[1];
    if (fs.rank == 4 && (st = gr_gb_pool(&b, x, &fs, spec->pool, &x, &fan_in))) return st;
    if (fan_in < 1)
        return gr_err(GRAFT_E_SHAPE, "head '%s': %lld input features", prefix_of(spec),
                      (long long)fan_in);
    if ((st = gr_gb_value(&b, "logits", GR_F32, NULL, NULL, &logits))) return st;
    g->values[logits].has_shape = 1;
    g->values[logits].t.shape = (gr_shape){ 2, { -1, spec->nclass } };
    if ((st = head_layers(&b, spec, x, fan_in, logits)) ||
        (st = gr_graph_add_meta(g, GR_HEAD_META, prefix_of(spec))))
        return st;
    char *lname = g->values[logits].name;
    int n = spec->replace ? 1 : g->noutputs + 1;
    int *outs = gr_arena_alloc(g->arena, (size_t)(n + 1) * sizeof *outs);
    if (!outs) return oom();
    if (!spec->replace && g->noutputs) memcpy(outs, g->outputs, (size_t)g->noutputs * sizeof *outs);
    outs[n - 1] = logits;
    g->outputs = outs;
    g->noutputs = n;
    if (spec->replace && (st = gr_graph_prune(g))) return st;
    if (out_value) *out_value = gr_graph_find_value(g, lname);
    return GRAFT_OK;
}

/* ---- the classifier ---- */

static int is_op(const gr_node *n, const char *op)
{
    return strcmp(n->op_type, op) == 0 && !n->domain[0];
}

static int const_matrix(const gr_graph *g, int v)
{
    return v >= 0 && g->values[v].is_init && g->values[v].t.dtype == GR_F32 &&
           g->values[v].t.shape.rank == 2;
}

static int producer(const gr_graph *g, int v) { return v >= 0 ? g->values[v].producer : -1; }

/* The recorded head whose prefix names node k, or NULL. */
static const char *head_of(const gr_graph *g, int k)
{
    for (int i = 0; i < g->nmeta; i++)
        if (!strcmp(g->meta[i].key, GR_HEAD_META) &&
            gr_name_in_head(g->nodes[k].name, g->meta[i].value))
            return g->meta[i].value;
    return NULL;
}

int gr_graph_find_classifier(const gr_graph *g, int *feature, int *first_node)
{
    if (g->noutputs < 1) return gr_err(GRAFT_E_ARG, "the graph has no output, hence no classifier");
    int v = g->outputs[0], k = producer(g, v), cls = -1;
    while (k >= 0 && g->nodes[k].nin >= 1 &&
           (is_op(&g->nodes[k], "Softmax") || is_op(&g->nodes[k], "LogSoftmax") ||
            is_op(&g->nodes[k], "Sigmoid") || is_op(&g->nodes[k], "Identity") ||
            is_op(&g->nodes[k], "Flatten")))
        k = producer(g, v = g->nodes[k].in[0]);
    if (k >= 0) {
        const gr_node *n = &g->nodes[k];
        if ((is_op(n, "Gemm") || is_op(n, "MatMul")) && n->nin >= 2 && const_matrix(g, n->in[1]))
            cls = k;
        for (int i = 0; cls < 0 && is_op(n, "Add") && n->nin == 2 && i < 2; i++) {
            int m = producer(g, n->in[1 - i]);
            if (g->values[n->in[i]].is_init && m >= 0 && is_op(&g->nodes[m], "MatMul") &&
                const_matrix(g, g->nodes[m].in[1]))
                cls = m;
        }
    }
    if (cls < 0) {
        const char *out = g->values[g->outputs[0]].name;
        if (k < 0)
            return gr_err(GRAFT_E_ARG, "no classifier: output 0 '%s' is not computed by a node",
                          out);
        return gr_err(
            GRAFT_E_ARG,
            "no classifier: output 0 '%s' ends with node '%s' (%s), not a Gemm or MatMul [+ Add] "
            "with constant weights (optionally followed by Softmax, LogSoftmax, Sigmoid, Identity "
            "or Flatten); "
            "cut the model at its features (gr_graph_cut) and add a head",
            out, g->nodes[k].name, g->nodes[k].op_type);
    }
    int first = cls, x = g->nodes[cls].in[0];
    while ((k = producer(g, x)) >= 0 &&
           (is_op(&g->nodes[k], "Dropout") || is_op(&g->nodes[k], "Identity")))
        first = k, x = g->nodes[k].in[0];
    const char *hp = head_of(g, cls); /* an added head (MLP, pooling) is one classifier */
    while (hp && (k = producer(g, x)) >= 0 && gr_name_in_head(g->nodes[k].name, hp))
        first = k, x = g->nodes[k].in[0];
    if (feature) *feature = x;
    if (first_node) *first_node = first;
    return GRAFT_OK;
}

/* What a cut keeping only value f would remove (the rule of gr_graph_prune). */
static void cut_leftovers(const gr_graph *g, int f, unsigned char *vgone, unsigned char *ngone)
{
    unsigned char *needed = vgone; /* first: values f needs; then: values nothing references */
    memset(needed, 0, (size_t)g->nvalues);
    needed[f] = 1;
    for (int k = g->nnodes - 1; k >= 0; k--) {
        const gr_node *n = &g->nodes[k];
        int keep = 0;
        for (int j = 0; j < n->nout; j++) keep |= n->out[j] >= 0 && needed[n->out[j]];
        ngone[k] = !keep;
        for (int i = 0; keep && i < n->nin; i++)
            if (n->in[i] >= 0) needed[n->in[i]] = 1;
    }
    memset(vgone, 1, (size_t)g->nvalues);
    vgone[f] = 0;
    for (int i = 0; i < g->ninputs; i++) vgone[g->inputs[i]] = 0;
    for (int k = 0; k < g->nnodes; k++) {
        const gr_node *n = &g->nodes[k];
        for (int i = 0; !ngone[k] && i < n->nin; i++)
            if (n->in[i] >= 0) vgone[n->in[i]] = 0;
        for (int j = 0; !ngone[k] && j < n->nout; j++)
            if (n->out[j] >= 0) vgone[n->out[j]] = 0;
    }
}

int gr_graph_replace_classifier(gr_graph *g, const gr_head_spec *spec, gr_rng *rng)
{
    int f, first, st = gr_graph_find_classifier(g, &f, &first);
    if (st) return st;
    unsigned char *vgone = gr_calloc((size_t)g->nvalues + 1, 1),
                  *ngone = gr_calloc((size_t)g->nnodes + 1, 1);
    if (!vgone || !ngone) st = oom();
    if (!st) {
        cut_leftovers(g, f, vgone, ngone);
        st = check_spec(g, spec, vgone, ngone); /* the old head's names are free again */
    }
    free(vgone), free(ngone);
    if (st) return st;
    const char *fname = g->values[f].name; /* arena string: survives the renumbering */
    if ((st = cut_values(g, &f, 1))) return st;
    gr_head_spec s = *spec;
    s.replace = 1;
    return gr_graph_add_head(g, gr_graph_find_value(g, fname), &s, rng, NULL);
}

/* ---- freezing ----
 * Parameters ("candidates") are the float32 initializers read as weights: Conv/ConvTranspose
 * inputs 1-2, Gemm 1-2, MatMul 0-1, BatchNormalization/LayerNormalization/InstanceNormalization
 * scale and bias (1-2; never BatchNorm's running statistics 3-4), PRelu's slope (1), and any
 * initializer of more than one element read by Add, Mul or Concat (layer scales, position
 * embeddings, class tokens; a constant normalisation tensor inside a model counts too). Shapes,
 * axes, pads, Resize scales and Clip bounds are never parameters.
 *
 * Spec terms, applied left to right from an empty selection; each sets the parameters it names
 * (or clears them with a leading '-'):
 *   all / none      every parameter / no parameter (no '-' form)
 *   head            the classifier's parameters (gr_graph_find_classifier: every node between
 *                   its feature value and output 0) and those of every head gr_graph_add_head made
 *   pattern:GLOB    parameters whose initializer name matches GLOB (fnmatch, '*' crosses '.');
 *                   a pattern matching no parameter is an error (a typo would freeze silently)
 *   after:NODE      parameters read only by nodes after NODE in topological order: with nothing
 *                   else, everything up to and including NODE is frozen
 *   last:N          the last N blocks plus the head. Blocks: the segments between consecutive
 *                   cut points (gr_plan_cut_points) of an inference plan at the declared input
 *                   shapes; a segment whose parameters are all normalisation ones (the BatchNorm
 *                   after a Conv) or that has none belongs to the block before it. resnet18:
 *                   stem (conv1 + bn1), then one block per BasicBlock, then fc; mobilenet_v2:
 *                   each inverted residual with a skip connection is a block, a chain without
 *                   one is a block per Conv (+ BN), features.18 is one block. A parameter read in
 *                   several blocks belongs to the first. N above the block count selects all. */

void gr_graph_params(const gr_graph *g, unsigned char *is_param)
{
    memset(is_param, 0, (size_t)g->nvalues);
    for (int k = 0; k < g->nnodes; k++) {
        const gr_node *n = &g->nodes[k];
        int lo = 1, hi = 2; /* the weight inputs, inclusive */
        int any_big = is_op(n, "Add") || is_op(n, "Mul") || is_op(n, "Concat");
        if (is_op(n, "MatMul")) lo = 0, hi = 1;
        else if (is_op(n, "PRelu")) hi = 1;
        else if (!any_big && !is_op(n, "Conv") && !is_op(n, "ConvTranspose") && !is_op(n, "Gemm") &&
                 !is_op(n, "BatchNormalization") && !is_op(n, "LayerNormalization") &&
                 !is_op(n, "InstanceNormalization"))
            continue;
        for (int i = 0; i < n->nin; i++) {
            int v = n->in[i];
            if (v < 0 || !g->values[v].is_init || g->values[v].t.dtype != GR_F32) continue;
            if (any_big ? gr_numel(&g->values[v].t.shape) > 1 : i >= lo && i <= hi) is_param[v] = 1;
        }
    }
}

/* Marks the nodes of the classifier and of recorded heads; returns how many. */
static int head_nodes(const gr_graph *g, unsigned char *in_head)
{
    int count = 0, f, first;
    memset(in_head, 0, (size_t)g->nnodes);
    for (int k = 0; k < g->nnodes; k++)
        if (head_of(g, k)) in_head[k] = 1, count++;
    if (gr_graph_find_classifier(g, &f, &first)) return count;
    /* nodes downstream of the feature and upstream of output 0 */
    unsigned char *down = gr_calloc((size_t)g->nvalues + 1, 1),
                  *up = gr_calloc((size_t)g->nvalues + 1, 1);
    if (!down || !up) {
        free(down), free(up);
        return -1;
    }
    down[f] = 1;
    up[g->outputs[0]] = 1;
    unsigned char *is_down = gr_calloc((size_t)g->nnodes + 1, 1);
    if (!is_down) {
        free(down), free(up);
        return -1;
    }
    for (int k = 0; k < g->nnodes; k++) {
        const gr_node *n = &g->nodes[k];
        for (int i = 0; i < n->nin && !is_down[k]; i++)
            is_down[k] = n->in[i] >= 0 && down[n->in[i]];
        for (int j = 0; is_down[k] && j < n->nout; j++)
            if (n->out[j] >= 0) down[n->out[j]] = 1;
    }
    for (int k = g->nnodes - 1; k >= 0; k--) {
        const gr_node *n = &g->nodes[k];
        int u = 0;
        for (int j = 0; j < n->nout; j++) u |= n->out[j] >= 0 && up[n->out[j]];
        if (!u) continue;
        for (int i = 0; i < n->nin; i++)
            if (n->in[i] >= 0) up[n->in[i]] = 1;
        if (is_down[k] && !in_head[k]) in_head[k] = 1, count++;
    }
    free(down), free(up), free(is_down);
    return count;
}

/* sel[v] = the parameters the head's nodes read. */
static int select_head(const gr_graph *g, const unsigned char *is_param, unsigned char *sel,
                       const char *term, int required)
{
    char why[512];
    int f, first;
    snprintf(why, sizeof why, "%s",
             gr_graph_find_classifier(g, &f, &first) ? graft_last_error() : "");
    unsigned char *in_head = gr_calloc((size_t)g->nnodes + 1, 1);
    if (!in_head || head_nodes(g, in_head) < 0) {
        free(in_head);
        return oom();
    }
    int any = 0;
    for (int k = 0; k < g->nnodes; k++)
        for (int i = 0; in_head[k] && i < g->nodes[k].nin; i++) {
            int v = g->nodes[k].in[i];
            if (v >= 0 && is_param[v]) sel[v] = 1, any = 1;
        }
    free(in_head);
    if (!any && required)
        return gr_err(GRAFT_E_ARG, "freeze term '%s': the model has no head with parameters (%s)",
                      term, why[0] ? why : "its classifier has none");
    return GRAFT_OK;
}

/* first_reader[v]: the first node reading v (g->nnodes if none). */
static int *first_readers(const gr_graph *g)
{
    int *r = gr_malloc((size_t)(g->nvalues + 1) * sizeof *r);
    if (!r) return NULL;
    for (int v = 0; v < g->nvalues; v++) r[v] = g->nnodes;
    for (int k = g->nnodes - 1; k >= 0; k--)
        for (int i = 0; i < g->nodes[k].nin; i++)
            if (g->nodes[k].in[i] >= 0) r[g->nodes[k].in[i]] = k;
    return r;
}

static int select_after(const gr_graph *g, const unsigned char *is_param, unsigned char *sel,
                        const char *term, const char *node_name)
{
    int idx = gr_graph_find_node(g, node_name);
    if (idx < 0)
        return gr_err(GRAFT_E_ARG, "freeze term '%s': the graph has no node named '%s'", term,
                      node_name);
    int *first = first_readers(g);
    if (!first) return oom();
    for (int v = 0; v < g->nvalues; v++)
        if (is_param[v] && first[v] > idx) sel[v] = 1;
    free(first);
    return GRAFT_OK;
}

static int is_norm(const gr_node *n)
{
    return is_op(n, "BatchNormalization") || is_op(n, "LayerNormalization") ||
           is_op(n, "InstanceNormalization");
}

/* block[k] of every node, see the comment above; returns GRAFT_OK or an error. */
static int node_blocks(const gr_graph *g, const unsigned char *is_param, int *block)
{
    gr_plan *p;
    int st = probe_plan(g, NULL, &p);
    if (st) return st;
    int max = gr_plan_steps(p) + 1;
    int *cuts = gr_malloc((size_t)max * sizeof *cuts);
    unsigned char *ends = gr_calloc((size_t)g->nnodes + 1, 1),
                  *strong = gr_calloc((size_t)g->nnodes + 2, 1);
    int *seg = gr_malloc((size_t)(g->nnodes + 1) * sizeof *seg);
    int nc = cuts ? gr_plan_cut_points(p, cuts, max) : -1;
    gr_plan_free(p);
    if (!cuts || !ends || !strong || !seg || nc < 0) {
        free(cuts), free(ends), free(strong), free(seg);
        return nc < 0 && cuts ? -nc : oom();
    }
    for (int c = 0; c < nc; c++)
        if (g->values[cuts[c]].producer >= 0) ends[g->values[cuts[c]].producer] = 1;
    int s = 0;
    for (int k = 0; k < g->nnodes; k++) { /* a node producing a cut point ends its segment */
        seg[k] = s;
        s += ends[k];
    }
    for (int k = 0; k < g->nnodes; k++) /* segments with a parameter outside normalisation */
        for (int i = 0; i < g->nodes[k].nin && !is_norm(&g->nodes[k]); i++)
            if (g->nodes[k].in[i] >= 0 && is_param[g->nodes[k].in[i]]) strong[seg[k]] = 1;
    int b = 0, last_seg = 0;
    for (int k = 0; k < g->nnodes; k++) {
        for (; last_seg < seg[k];) b += strong[++last_seg];
        block[k] = b;
    }
    free(cuts), free(ends), free(strong), free(seg);
    return GRAFT_OK;
}

static int select_last(const gr_graph *g, const unsigned char *is_param, unsigned char *sel,
                       const char *term, const char *arg)
{
    char *end;
    long n = strtol(arg, &end, 10);
    if (!arg[0] || *end || n <= 0 || n > 1000000)
        return gr_err(GRAFT_E_ARG, "freeze term '%s': N must be a positive whole number", term);
    unsigned char *head = gr_calloc((size_t)g->nvalues + 1, 1);
    int *block = gr_malloc((size_t)(g->nnodes + 1) * sizeof *block);
    int *pblock = gr_malloc((size_t)(g->nvalues + 1) * sizeof *pblock);
    int st = head && block && pblock ? GRAFT_OK : oom();
    if (!st) st = select_head(g, is_param, head, term, 0);
    if (!st && (st = node_blocks(g, is_param, block)))
        st = gr_err_prefix(st, "freeze term '%s'", term);
    if (!st) {
        for (int v = 0; v < g->nvalues; v++) pblock[v] = -1;
        for (int k = 0; k < g->nnodes; k++) /* a parameter's block: that of its first reader */
            for (int i = 0; i < g->nodes[k].nin; i++) {
                int v = g->nodes[k].in[i];
                if (v >= 0 && is_param[v] && !head[v] && pblock[v] < 0) pblock[v] = block[k];
            }
        /* the lowest block kept: walk down through the distinct blocks holding parameters */
        int lowest = 0x7fffffff, found = 0;
        for (int at = 0x7fffffff; found < n;) {
            int next = -1;
            for (int v = 0; v < g->nvalues; v++)
                if (pblock[v] >= 0 && pblock[v] < at && pblock[v] > next) next = pblock[v];
            if (next < 0) break;
            lowest = at = next;
            found++;
        }
        for (int v = 0; v < g->nvalues; v++)
            if (head[v] || (pblock[v] >= 0 && pblock[v] >= lowest)) sel[v] = 1;
    }
    free(head), free(block), free(pblock);
    return st;
}

static int select_pattern(const gr_graph *g, const unsigned char *is_param, unsigned char *sel,
                          const char *term, const char *glob)
{
    int any = 0;
    for (int v = 0; v < g->nvalues; v++)
        if (is_param[v] && fnmatch(glob, g->values[v].name, 0) == 0) sel[v] = 1, any = 1;
    if (!any)
        return gr_err(GRAFT_E_ARG, "freeze term '%s': '%s' matches no parameter of the model", term,
                      glob);
    return GRAFT_OK;
}

static int apply_term(const gr_graph *g, const unsigned char *is_param, const char *term,
                      unsigned char *trainable, unsigned char *sel)
{
    int clear = term[0] == '-';
    const char *t = term + clear;
    if (!clear && !strcmp(t, "all")) {
        memcpy(trainable, is_param, (size_t)g->nvalues);
        return GRAFT_OK;
    }
    if (!clear && !strcmp(t, "none")) {
        memset(trainable, 0, (size_t)g->nvalues);
        return GRAFT_OK;
    }
    memset(sel, 0, (size_t)g->nvalues);
    int st;
    if (!strcmp(t, "head")) st = select_head(g, is_param, sel, term, 1);
    else if (!strncmp(t, "pattern:", 8)) st = select_pattern(g, is_param, sel, term, t + 8);
    else if (!strncmp(t, "after:", 6)) st = select_after(g, is_param, sel, term, t + 6);
    else if (!strncmp(t, "last:", 5)) st = select_last(g, is_param, sel, term, t + 5);
    else
        return gr_err(
            GRAFT_E_ARG,
            "freeze spec: unknown term '%s' (all, none, head, pattern:GLOB, after:NODE, last:N; "
            "'-' before head/pattern/after/last clears)",
            term);
    for (int v = 0; !st && v < g->nvalues; v++)
        if (sel[v]) trainable[v] = !clear;
    return st;
}

int gr_freeze_select(const gr_graph *g, const char *spec, unsigned char *trainable)
{
    if (!spec) return gr_err(GRAFT_E_ARG, "freeze spec: none given (use \"all\" or \"none\")");
    unsigned char *is_param = gr_calloc((size_t)g->nvalues + 1, 1),
                  *sel = gr_calloc((size_t)g->nvalues + 1, 1);
    char *copy = gr_strdup(spec);
    if (!is_param || !sel || !copy) {
        free(is_param), free(sel), free(copy);
        return oom();
    }
    gr_graph_params(g, is_param);
    memset(trainable, 0, (size_t)g->nvalues);
    int st = GRAFT_OK;
    for (char *term = copy; !st;) {
        char *comma = strchr(term, ',');
        if (comma) *comma = 0;
        while (*term == ' ' || *term == '\t') term++;
        for (size_t n = strlen(term); n && (term[n - 1] == ' ' || term[n - 1] == '\t');)
            term[--n] = 0;
        if (!term[0]) st = gr_err(GRAFT_E_ARG, "freeze spec '%s': empty term", spec);
        else st = apply_term(g, is_param, term, trainable, sel);
        if (!comma) break;
        term = comma + 1;
    }
    free(is_param), free(sel), free(copy);
    return st;
}
