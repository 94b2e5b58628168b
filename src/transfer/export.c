/* export.c — a model cut at a layer plus a head fitted on its features, as one ONNX file:
 *
 *   input → trunk (cut at the layer) → pooling → Flatten → normalisation → head → Softmax
 *
 * pooling: GlobalAveragePool (mean), AveragePool with kernel ceil(H/G) and stride floor(H/G)
 * (grid2 / grid4, PyTorch's adaptive_avg_pool2d(x, 2 or 4) as extract.c pools), or nothing;
 * tokens (N, T, C) are averaged over T with ReduceMean. normalisation: Sub/Div by the saved
 * mean and std (standardize) or LpNormalization (l2). head: Gemm (logistic regression; nearest
 * class mean as the equivalent affine map), or Gemm → Relu → Gemm (MLP). kNN stores its
 * training rows and has no such form: refused. The output is "probabilities" (N, nclass); the
 * class names, layer, pooling and preprocessing go into the metadata ("graft.classes" as JSON,
 * "graft.layer", "graft.pool", "graft.transform"). */
#include "transfer.h"

#include "graph/graph.h"
#include "io/io.h"

#include <math.h>
#include <string.h>

/* The export's builder: names "graft_export/<part>_<n>" (explicit, numbered: "#<index>" names of
 * unnamed nodes can already be taken); x is the value the chain has reached. */
typedef struct builder {
    gr_gb gb;
    int x;
} builder;

static int value(builder *b, const char *stem, int dtype, const gr_shape *s, const void *data,
                 int *out)
{
    return gr_gb_value(&b->gb, stem, dtype, s, data, out);
}

/* Appends node op(x, extra inputs...) with attributes; b->x becomes its output. */
static int node(builder *b, const char *op, const int *more, int nmore, const gr_attr *attrs,
                int nattr)
{
    int in[4] = { b->x, -1, -1, -1 };
    for (int i = 0; i < nmore; i++) in[1 + i] = more[i];
    char part[64];
    snprintf(part, sizeof part, "%s_node", op);
    return gr_gb_op(&b->gb, op, part, op, in, 1 + nmore, attrs, nattr, &b->x);
}

static int add_pool(builder *b, int pool, const gr_shape *fs)
{
    if (fs->rank == 3) {
        int64_t axes[1] = { 1 };
        gr_attr a[2] = { { .name = "axes", .type = GR_AT_INTS, .n = 1, .ints = axes },
                         { .name = "keepdims", .type = GR_AT_INT, .i = 0 } };
        return node(b, "ReduceMean", NULL, 0, a, 2);
    }
    if (fs->rank == 4 && pool != GR_POOL_NONE) {
        int64_t fan_in;
        int st = gr_pool_check(fs->d[2], fs->d[3], pool, "export");
        return st ? st : gr_gb_pool(&b->gb, b->x, fs, pool, &b->x, &fan_in);
    }
    gr_attr f = { .name = "axis", .type = GR_AT_INT, .i = 1 };
    return node(b, "Flatten", NULL, 0, &f, 1);
}

static int add_norm(builder *b, const gr_head *h)
{
    if (h->norm == GR_FEAT_L2) {
        gr_attr a[2] = { { .name = "axis", .type = GR_AT_INT, .i = 1 },
                         { .name = "p", .type = GR_AT_INT, .i = 2 } };
        return node(b, "LpNormalization", NULL, 0, a, 2);
    }
    if (h->norm != GR_FEAT_STANDARDIZE) return GRAFT_OK;
    int64_t d[1] = { h->dim };
    gr_shape s = gr_shape_make(1, d);
    int mu, sd, st = value(b, "mean", GR_F32, &s, h->mu, &mu);
    if (!st) st = value(b, "std", GR_F32, &s, h->sd, &sd);
    if (!st) st = node(b, "Sub", &mu, 1, NULL, 0);
    return st ? st : node(b, "Div", &sd, 1, NULL, 0);
}

/* Gemm with weight (rows, cols) row-major, transB = 1, as PyTorch exports Linear. */
static int add_gemm(builder *b, const float *w, const float *bias, int64_t rows, int64_t cols)
{
    int y = -1, st = gr_gb_linear(&b->gb, "Gemm", b->x, rows, cols, w, bias, &y);
    if (!st) b->x = y;
    return st;
}

static int add_head(builder *b, const gr_head *h)
{
    int K = h->nclass, st;
    if (h->kind == GR_HEAD_MLP) {
        if ((st = add_gemm(b, h->W, h->b, h->hidden, h->dim)) ||
            (st = node(b, "Relu", NULL, 0, NULL, 0)))
            return st;
        return add_gemm(b, h->W2, h->b2, K, h->hidden);
    }
    if (h->kind == GR_HEAD_LOGREG || (h->kind == GR_HEAD_NCM && h->norm == GR_FEAT_L2))
        return add_gemm(b, h->W, h->b, K, h->dim);
    if (h->kind ==
        GR_HEAD_NCM) { /* -|x - m|^2 + b = 2 x.m - |m|^2 + b - |x|^2, the last term common */
        float *w = malloc((size_t)K * h->dim * sizeof *w + 4),
              *bias = malloc((size_t)K * sizeof *bias + 4);
        if (!w || !bias) {
            free(w);
            free(bias);
            return GRAFT_E_NOMEM;
        }
        for (int c = 0; c < K; c++) {
            double mm = 0;
            for (int j = 0; j < h->dim; j++) {
                float m = h->W[(int64_t)c * h->dim + j];
                w[(int64_t)c * h->dim + j] = 2 * m;
                mm += (double)m * m;
            }
            bias[c] = (float)((h->b ? h->b[c] : 0) - mm);
        }
        st = add_gemm(b, w, bias, K, h->dim);
        free(w);
        free(bias);
        return st;
    }
    return gr_err(GRAFT_E_UNSUPPORTED,
                  "a kNN head keeps its training rows and cannot be exported as ONNX; fit a "
                  "logreg, mlp or ncm head to export");
}

static int set_meta(gr_graph *g, const char *const *kv, int n)
{
    int st = GRAFT_OK;
    for (int i = 0; i < n && !st; i++)
        st = gr_graph_set_meta(g, kv[2 * i], kv[2 * i + 1] ? kv[2 * i + 1] : "");
    return st;
}

int gr_export_finish(gr_graph *g, int logits, int nclass, const char *const *kv, int nkv,
                     const char *out_path)
{
    char name[64];
    int n = 0;
    do snprintf(name, sizeof name, "graft_export/Softmax_node_%d", n++);
    while (gr_graph_find_node(g, name) >= 0 || gr_graph_find_value(g, name) >= 0);
    int out, st = gr_graph_add_value(g, name, 0, NULL, NULL, &out);
    gr_attr ax = { .name = "axis", .type = GR_AT_INT, .i = 1 };
    if (!st) st = gr_graph_add_node(g, name, "Softmax", &logits, 1, &out, 1, &ax, 1, NULL);
    if (!st && gr_graph_find_value(g, "probabilities") >= 0)
        st = gr_err(GRAFT_E_ARG, "the model already has a value named 'probabilities'");
    if (!st) {
        gr_value *pv = &g->values[out];
        pv->name = gr_arena_strdup(g->arena, "probabilities");
        pv->t.dtype = GR_F32; /* declared for the file: (batch, nclass) */
        pv->t.shape = gr_shape_make(2, (int64_t[]){ -1, nclass });
        pv->has_shape = 1;
        g->outputs[0] = out;
        g->noutputs = 1;
        st = set_meta(g, kv, nkv);
    }
    if (!st) st = gr_graph_prune(g);
    if (!st) st = gr_onnx_save(g, out_path);
    return st;
}

int gr_export_head(const char *model_path, const gr_head *h, const char *layer, int pool,
                   const gr_transform *t, const char *classes_json, const char *out_path)
{
    gr_graph *g;
    int st = gr_onnx_load(model_path, &g);
    if (st) return st;
    char name[512];
    if (!(st = gr_graph_check_ops(g))) {
        if (layer) snprintf(name, sizeof name, "%s", layer);
        else {
            int feat, first;
            if (!(st = gr_graph_find_classifier(g, &feat, &first)))
                snprintf(name, sizeof name, "%s", g->values[feat].name);
        }
    }
    const char *names[1] = { name };
    if (!st) st = gr_graph_cut(g, names, 1);
    gr_shape fs;
    int dtype, oh, ow;
    if (!t->crop && !t->rrc && !t->size_w)
        st = st ? st
                : gr_err(GRAFT_E_ARG,
                         "export needs a transform with a fixed input size (crop, rrc or size)");
    gr_transform_out_size(t, 224, 224, &oh, &ow);
    gr_shape in = gr_shape_make(4, (int64_t[]){ 1, 3, oh, ow });
    if (!st) st = gr_graph_value_shape(g, g->outputs[0], g->ninputs == 1 ? &in : NULL, &fs, &dtype);
    if (!st) { /* the pooled size must be what the head was fitted on */
        int64_t dim = fs.rank == 4 && pool != GR_POOL_NONE
                          ? fs.d[1] * gr_pool_side(pool) * gr_pool_side(pool)
                      : fs.rank == 3 ? fs.d[2]
                                     : gr_numel(&fs) / (fs.rank && fs.d[0] ? fs.d[0] : 1);
        if (dim != h->dim)
            st = gr_err(
                GRAFT_E_SHAPE,
                "%s cut at '%s' gives %lld features, the head takes %d: not the model or layer it "
                "was fitted on",
                model_path, name, (long long)dim, h->dim);
    }
    builder b = { .gb = { .g = g, .prefix = "graft_export/", .numbered = 1 }, .x = g->outputs[0] };
    if (!st) st = add_pool(&b, pool, &fs);
    if (!st) st = add_norm(&b, h);
    if (!st) st = add_head(&b, h);
    char tf[512], pl[8];
    gr_transform_format(t, tf, sizeof tf);
    snprintf(pl, sizeof pl, "%s", gr_pool_name(pool));
    const char *kv[8] = { "graft.classes", classes_json, "graft.layer",     name,
                          "graft.pool",    pl,           "graft.transform", tf };
    if (!st) st = gr_export_finish(g, b.x, h->nclass, kv, 4, out_path);
    gr_graph_free(g);
    return st;
}
