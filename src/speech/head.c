/* head.c — keyword heads: (batch, window, 96) speech embeddings -> (batch, 1) score, planned for
 * many windows at once. */
#include "speech.h"

#include "graph/graph.h"
#include "io/io.h"
#include "ops/dnnl_util.h"

#include <stdlib.h>
#include <string.h>

struct gr_kw_head {
    gr_graph *g;
    gr_plan *plan;
    gr_dnnl *dnnl;
    int batch, window;
    float *in; /* (batch, window, 96) */
    double threshold;
};

int gr_kw_check_head_input(const gr_graph *g, int *window)
{
    const gr_value *in = g->ninputs == 1 ? &g->values[g->inputs[0]] : NULL;
    if (!in || g->noutputs < 1)
        return gr_err(
            GRAFT_E_SHAPE,
            "a keyword head has one input (embeddings) and a score output; this has %d inputs "
            "and %d outputs",
            g->ninputs, g->noutputs);
    if (!in->has_shape || in->t.shape.rank != 3 || in->t.shape.d[1] < 1 ||
        in->t.shape.d[1] > 1024 || in->t.shape.d[2] != GR_KW_DIM)
        return gr_err(GRAFT_E_SHAPE,
                      "input '%s' must be (batch, window, 96) speech embeddings, window 1..1024",
                      in->name);
    *window = (int)in->t.shape.d[1];
    return GRAFT_OK;
}

void gr_kw_head_free(gr_kw_head *h)
{
    if (!h) return;
    gr_plan_free(h->plan);
    gr_graph_free(h->g);
    gr_dnnl_free(h->dnnl);
    free(h->in);
    free(h);
}

/* openWakeWord's heads declare a batch of 1 (they run once per 80 ms step); graft scores many
 * windows at once, so the batch dim becomes symbolic. Their ops are per row (Flatten, Gemm,
 * LayerNorm over the last axis, an If lowered to a per-row Where), which a batch leaves exact:
 * the keyword tests compare every score with onnxruntime running the file one window at a time. */
int gr_kw_head_load(const char *path, int batch, int use_ref, gr_kw_head **out)
{
    gr_graph *g;
    int st = gr_onnx_load(path, &g);
    return st ? st : gr_kw_head_from(g, path, batch, use_ref, out); /* the loader names path */
}

double gr_kw_meta_threshold(const gr_graph *g)
{
    for (int i = 0; i < g->nmeta; i++)
        if (!strcmp(g->meta[i].key, "graft.threshold")) {
            char *end;
            double x = strtod(g->meta[i].value, &end);
            if (end != g->meta[i].value && x > 0 && x < 1) return x;
        }
    return 0.5;
}

double gr_kw_head_threshold(const gr_kw_head *h) { return h->threshold; }

int gr_kw_head_from(gr_graph *g, const char *path, int batch, int use_ref, gr_kw_head **out)
{
    gr_kw_head *h = calloc(1, sizeof *h);
    if (!h) {
        gr_graph_free(g);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    h->g = g; /* owned from here */
    h->batch = batch > 0 ? batch : 64;
    h->threshold = gr_kw_meta_threshold(g);
    int st = gr_graph_check_ops(h->g);
    if (!st) st = gr_kw_check_head_input(h->g, &h->window);
    if (!st) {
        h->g->values[h->g->inputs[0]].t.shape.d[0] = -1;
        st = gr_graph_optimize(h->g);
    }
    if (!st) st = gr_dnnl_new(&h->dnnl);
    if (!st) {
        h->in = calloc((size_t)h->batch * h->window * GR_KW_DIM, sizeof(float));
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(3, (int64_t[]){ h->batch, h->window, GR_KW_DIM }) };
        gr_plan_opts po = { .use_ref = use_ref, .dnnl = h->dnnl };
        st =
            h->in ? gr_plan_build(h->g, &x, &po, &h->plan) : gr_err(GRAFT_E_NOMEM, "out of memory");
        if (st && h->batch > 1)
            st = gr_err_prefix(
                st,
                "the head does not run on %d windows at once (a batch of 1 is hard-coded in it?)",
                h->batch);
    }
    if (!st) {
        const gr_tensor *y = gr_plan_output(h->plan, 0);
        if (gr_numel(&y->shape) != h->batch)
            st = gr_err(
                GRAFT_E_SHAPE,
                "output '%s' gives %lld values for %d windows: a keyword head gives one score "
                "per window",
                h->g->values[h->g->outputs[0]].name, (long long)gr_numel(&y->shape), h->batch);
    }
    if (st) {
        gr_kw_head_free(h);
        return gr_err_prefix(st, "%s", path);
    }
    *out = h;
    return GRAFT_OK;
}

int gr_kw_head_window(const gr_kw_head *h) { return h->window; }

void gr_kw_head_score(gr_kw_head *h, const float *emb, int64_t nemb, float *scores)
{
    int64_t ns = nemb - h->window + 1;
    const size_t row = (size_t)h->window * GR_KW_DIM;
    for (int64_t s0 = 0; s0 < ns; s0 += h->batch) {
        int b = (int)(ns - s0 < h->batch ? ns - s0 : h->batch);
        for (int i = 0; i < b; i++)
            memcpy(h->in + i * row, emb + (size_t)(s0 + i) * GR_KW_DIM, row * sizeof(float));
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(3, (int64_t[]){ h->batch, h->window, GR_KW_DIM }),
                        .data = h->in };
        gr_plan_run(h->plan, &x);
        memcpy(scores + s0, gr_plan_output(h->plan, 0)->data, (size_t)b * sizeof(float));
    }
}

int gr_kw_head_batch(const gr_kw_head *h) { return h->batch; }
