/* build.c — what graph builders share: pooling of a feature map, named values and nodes,
 * torch's Linear (weights and init) as an ONNX Gemm, and metadata entries. Surgery's heads
 * (surgery.c), the export of a head on its trunk (transfer/export.c) and the speech graphs
 * build with these, so a pooling or a layer is written once.
 *
 * Pooling a (N, C, H, W) map to one row (N, C * G * G): G = 1 is GlobalAveragePool; G = 2 and 4
 * are PyTorch's adaptive_avg_pool2d(x, G), which ONNX's AveragePool computes exactly with
 * kernel ceil(H/G) and stride floor(H/G) when the cells fit (grid2: H, W >= 2, the cells of an
 * odd side share its middle row; grid4: H and W multiples of 4, equal cells). */
#include "graph.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int oom(void) { return gr_err(GRAFT_E_NOMEM, "out of memory building a graph"); }

/* ---- pooling ---- */

int gr_pool_side(int pool)
{
    return pool == GR_POOL_GRID2 ? 2 : pool == GR_POOL_GRID4 ? 4 : pool == GR_POOL_NONE ? 0 : 1;
}

const char *gr_pool_name(int pool)
{
    return pool == GR_POOL_GRID2   ? "grid2"
           : pool == GR_POOL_GRID4 ? "grid4"
           : pool == GR_POOL_NONE  ? "none"
                                   : "mean";
}

int gr_pool_fits(int64_t H, int64_t W, int pool)
{
    if (pool == GR_POOL_GRID2) return H >= 2 && W >= 2;
    if (pool == GR_POOL_GRID4) return H >= 4 && W >= 4 && H % 4 == 0 && W % 4 == 0;
    return 1;
}

int gr_pool_check(int64_t H, int64_t W, int pool, const char *what)
{
    if (gr_pool_fits(H, W, pool)) return GRAFT_OK;
    if (pool == GR_POOL_GRID2)
        return gr_err(GRAFT_E_SHAPE,
                      "%s: 2x2-grid pooling needs a map of at least 2x2, it is %lldx%lld", what,
                      (long long)H, (long long)W);
    return gr_err(GRAFT_E_SHAPE,
                  "%s: 4x4-grid pooling needs a map whose sides are multiples of 4, it is "
                  "%lldx%lld (use grid2 or mean)",
                  what, (long long)H, (long long)W);
}

/* ---- named values and nodes ---- */

const char *gr_gb_name(gr_gb *b, const char *part)
{
    if (b->numbered) snprintf(b->name, sizeof b->name, "%s%s_%d", b->prefix, part, b->count++);
    else snprintf(b->name, sizeof b->name, "%s%s", b->prefix, part);
    return b->name;
}

int gr_gb_value(gr_gb *b, const char *part, int dtype, const gr_shape *shape, const void *data,
                int *v)
{
    return gr_graph_add_value(b->g, gr_gb_name(b, part), dtype, shape, data, v);
}

int gr_gb_node(gr_gb *b, const char *part, const char *op, const int *in, int nin, int out,
               const gr_attr *attrs, int nattr)
{
    return gr_graph_add_node(b->g, gr_gb_name(b, part), op, in, nin, &out, 1, attrs, nattr, NULL);
}

int gr_gb_op(gr_gb *b, const char *value, const char *part, const char *op, const int *in, int nin,
             const gr_attr *attrs, int nattr, int *y)
{
    int st = gr_gb_value(b, value, b->act_dtype, NULL, NULL, y);
    return st ? st : gr_gb_node(b, part, op, in, nin, *y, attrs, nattr);
}

/* ---- layers ---- */

void gr_linear_init(gr_rng *rng, int64_t fan_in, int64_t n, float *w)
{
    double bound = 1.0 / sqrt((double)fan_in);
    for (int64_t i = 0; i < n; i++) w[i] = (float)(-bound + 2 * bound * gr_rng_uniform(rng));
}

/* Gemm(x, "<part>.weight" (nout, fan_in), "<part>.bias", transB=1) named <part>, as PyTorch
 * exports Linear; w NULL: torch's init. *y < 0: a new value "<part>.out" is made first. */
int gr_gb_linear(gr_gb *b, const char *part, int x, int64_t nout, int64_t fan_in, const float *w,
                 const float *bias, int *y)
{
    float *init = NULL;
    if (!w) { /* torch.nn.Linear's init: the weight, then the bias, from one stream */
        init = malloc((size_t)(nout * fan_in + nout) * sizeof *init);
        if (!init) return oom();
        gr_linear_init(b->rng, fan_in, nout * fan_in + nout, init);
        w = init, bias = init + nout * fan_in;
    }
    gr_shape ws = gr_shape_make(2, (int64_t[]){ nout, fan_in });
    gr_shape bs = gr_shape_make(1, (int64_t[]){ nout });
    char wn[200], bn[200], on[200];
    snprintf(wn, sizeof wn, "%s.weight", part);
    snprintf(bn, sizeof bn, "%s.bias", part);
    snprintf(on, sizeof on, "%s.out", part);
    int in[3] = { x, -1, -1 }, st = GRAFT_OK;
    /* the values in the order torch's export has them: output, weight, bias */
    if (*y < 0) st = gr_gb_value(b, on, b->act_dtype, NULL, NULL, y);
    if (!st) st = gr_gb_value(b, wn, GR_F32, &ws, w, &in[1]);
    if (!st) st = gr_gb_value(b, bn, GR_F32, &bs, bias, &in[2]);
    free(init);
    gr_attr tb = { .name = "transB", .type = GR_AT_INT, .i = 1 };
    return st ? st : gr_gb_node(b, part, "Gemm", in, 3, *y, &tb, 1);
}

/* Nodes "pool" (into value "pooled") and "flatten" (into "features"). */
int gr_gb_pool(gr_gb *b, int x, const gr_shape *fs, int pool, int *y, int64_t *fan_in)
{
    int G = gr_pool_side(pool), pooled, st = GRAFT_OK;
    if (fs->rank != 4 || G < 1)
        return gr_err(GRAFT_E_ARG, "pooling '%s' of a rank-%d value", gr_pool_name(pool), fs->rank);
    if ((st = gr_pool_check(fs->d[2], fs->d[3], pool, "pooling"))) return st;
    if (G > 1) {
        int64_t H = fs->d[2], W = fs->d[3];
        int64_t k[2] = { (H + G - 1) / G, (W + G - 1) / G }, s[2] = { H / G, W / G };
        gr_attr a[2] = { { .name = "kernel_shape", .type = GR_AT_INTS, .n = 2, .ints = k },
                         { .name = "strides", .type = GR_AT_INTS, .n = 2, .ints = s } };
        st = gr_gb_op(b, "pooled", "pool", "AveragePool", &x, 1, a, 2, &pooled);
    } else {
        st = gr_gb_op(b, "pooled", "pool", "GlobalAveragePool", &x, 1, NULL, 0, &pooled);
    }
    gr_attr axis = { .name = "axis", .type = GR_AT_INT, .i = 1 };
    if (!st) st = gr_gb_op(b, "features", "flatten", "Flatten", &pooled, 1, &axis, 1, y);
    *fan_in = fs->d[1] * G * G;
    return st;
}

/* ---- metadata ---- */

int gr_graph_set_meta(gr_graph *g, const char *key, const char *value)
{
    for (int i = 0; i < g->nmeta; i++)
        if (!strcmp(g->meta[i].key, key)) {
            char *v = gr_arena_strdup(g->arena, value);
            if (!v) return oom();
            g->meta[i].value = v;
            return GRAFT_OK;
        }
    return gr_graph_add_meta(g, key, value);
}

int gr_graph_add_meta(gr_graph *g, const char *key, const char *value)
{
    gr_meta *m = gr_arena_alloc(g->arena, (size_t)(g->nmeta + 2) * sizeof *m);
    if (!m) return oom();
    if (g->nmeta) memcpy(m, g->meta, (size_t)g->nmeta * sizeof *m);
    m[g->nmeta] = (gr_meta){ gr_arena_strdup(g->arena, key), gr_arena_strdup(g->arena, value) };
    if (!m[g->nmeta].key || !m[g->nmeta].value) return oom();
    g->meta = m;
    g->nmeta++;
    return GRAFT_OK;
}

int gr_node_set_attr_float(gr_graph *g, int k, const char *name, float value)
{
    gr_node *n = &g->nodes[k];
    for (int i = 0; i < n->nattr; i++)
        if (!strcmp(n->attrs[i].name, name)) {
            if (n->attrs[i].type != GR_AT_FLOAT)
                return gr_err(GRAFT_E_FORMAT, "node '%s': attribute '%s' is not a float", n->name,
                              name);
            n->attrs[i].f = value;
            return GRAFT_OK;
        }
    gr_attr *a = gr_arena_alloc(g->arena, (size_t)(n->nattr + 1) * sizeof *a);
    if (!a) return oom();
    if (n->nattr) memcpy(a, n->attrs, (size_t)n->nattr * sizeof *a);
    a[n->nattr] = (gr_attr){ .name = gr_arena_strdup(g->arena, name), .type = GR_AT_FLOAT };
    if (!a[n->nattr].name) return oom();
    a[n->nattr].f = value;
    n->attrs = a;
    n->nattr++;
    return GRAFT_OK;
}
