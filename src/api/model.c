/* model.c — graft_model: load, describe, run. */
#include "api.h"

#include "ops/dnnl_util.h"

#include <string.h>

gr_tensor gr_tensor_view(const graft_tensor *t)
{
    gr_tensor v = { .dtype = (gr_dtype)t->dtype, .shape = { t->rank, { 0 } }, .data = t->data };
    for (int i = 0; i < t->rank && i < GR_MAXDIM; i++) v.shape.d[i] = t->dims[i];
    return v;
}

graft_status graft_tensor_new(graft_dtype dtype, int rank, const int64_t *dims, graft_tensor **out)
{
    if (!gr_dtype_size(dtype))
        return gr_err(GRAFT_E_ARG, "graft_tensor_new: unknown dtype %d", (int)dtype);
    if (rank < 0 || rank > GRAFT_MAX_RANK)
        return gr_err(GRAFT_E_ARG, "graft_tensor_new: rank %d is outside 0..%d", rank,
                      GRAFT_MAX_RANK);
    gr_shape s = gr_shape_make(rank, dims);
    int64_t n = gr_numel_checked(&s, gr_dtype_size(dtype));
    if (n < 0) return gr_err(GRAFT_E_NOMEM, "graft_tensor_new: the size overflows");
    graft_tensor *t = gr_calloc(1, sizeof *t);
    if (!t) return GRAFT_E_NOMEM;
    t->data = gr_calloc((size_t)n ? (size_t)n : 1, gr_dtype_size(dtype));
    if (!t->data) {
        free(t);
        return GRAFT_E_NOMEM;
    }
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    *out = t;
    return GRAFT_OK;
}

void graft_tensor_free(graft_tensor *t)
{
    if (!t) return;
    free(t->data);
    free(t);
}

int64_t graft_tensor_numel(const graft_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

graft_status graft_npy_load(const char *path, graft_tensor **out)
{
    gr_tensor t;
    int st = gr_npy_load(path, &t);
    if (st) return st;
    graft_tensor *r = gr_calloc(1, sizeof *r);
    if (!r) {
        free(t.data);
        return GRAFT_E_NOMEM;
    }
    r->dtype = (graft_dtype)t.dtype;
    r->rank = t.shape.rank;
    memcpy(r->dims, t.shape.d, sizeof r->dims);
    r->data = t.data;
    *out = r;
    return GRAFT_OK;
}

graft_status graft_npy_save(const char *path, const graft_tensor *t)
{
    gr_tensor v = gr_tensor_view(t);
    return gr_npy_save(path, &v);
}

static void count_ops(graft_model *m)
{
    const gr_graph *g = m->src.g;
    m->nnodes = g->nnodes;
    for (int k = 0; k < g->nnodes; k++) {
        const char *op = g->nodes[k].op_type;
        int i = 0;
        while (i < m->nops && strcmp(m->ops[i].op, op)) i++;
        if (i == m->nops) {
            if (m->nops == 128) continue;
            m->ops[m->nops].op = op;
            m->ops[m->nops++].count = 0;
        }
        m->ops[i].count++;
    }
}

graft_status graft_model_load(const char *path, graft_model **out)
{
    if (!path) return gr_err(GRAFT_E_ARG, "graft_model_load: NULL path");
    graft_model *m = gr_calloc(1, sizeof *m);
    if (!m) return GRAFT_E_NOMEM;
    int st = gr_model_open(path, &m->src);
    if (!st) st = gr_dnnl_new(&m->dnnl);
    if (st) {
        graft_model_free(m);
        return st;
    }
    count_ops(m);
    *out = m;
    return GRAFT_OK;
}

int gr_api_run_graph(graft_model *m)
{
    if (m->g) return GRAFT_OK;
    gr_graph *g;
    int st = gr_graph_clone(m->src.g, 1, &g);
    if (!st && (st = gr_graph_optimize(g))) gr_graph_free(g);
    if (st) return gr_err_prefix(st, "%s", m->src.path);
    m->g = g;
    return GRAFT_OK;
}

void graft_model_free(graft_model *m)
{
    if (!m) return;
    gr_plan_free(m->plan);
    gr_graph_free(m->g);
    gr_model_close(&m->src);
    gr_dnnl_free(m->dnnl);
    free(m);
}

int graft_model_num_inputs(const graft_model *m) { return m->src.g->ninputs; }
int graft_model_num_outputs(const graft_model *m) { return m->src.g->noutputs; }
const char *graft_model_input_name(const graft_model *m, int i)
{
    return m->src.g->values[m->src.g->inputs[i]].name;
}
const char *graft_model_output_name(const graft_model *m, int i)
{
    return m->src.g->values[m->src.g->outputs[i]].name;
}

int graft_model_input_shape(const graft_model *m, int i, int64_t dims[GRAFT_MAX_RANK])
{
    const gr_value *v = &m->src.g->values[m->src.g->inputs[i]];
    if (!v->has_shape) return -1;
    for (int d = 0; d < v->t.shape.rank; d++) dims[d] = v->t.shape.d[d];
    return v->t.shape.rank;
}

void graft_model_use_reference(graft_model *m, int on)
{
    if (m->use_ref != !!on) {
        gr_plan_free(m->plan);
        m->plan = NULL;
    }
    m->use_ref = !!on;
}

/* Makes sure m->plan fits these inputs, rebuilding it if their shapes changed. */
static int ensure_plan(graft_model *m, const gr_tensor *in)
{
    if (m->plan && gr_plan_matches(m->plan, in)) return GRAFT_OK;
    gr_plan_free(m->plan);
    m->plan = NULL;
    int st = gr_api_run_graph(m);
    if (st) return st;
    gr_plan_opts opts = { .use_ref = m->use_ref, .dnnl = m->dnnl };
    st = gr_plan_build(m->g, in, &opts, &m->plan);
    return st ? gr_err_prefix(st, "%s", m->g->path) : GRAFT_OK;
}

static int copy_out(const gr_tensor *t, graft_tensor **out)
{
    int st = graft_tensor_new((graft_dtype)t->dtype, t->shape.rank, t->shape.d, out);
    if (!st) memcpy((*out)->data, t->data, (size_t)gr_numel(&t->shape) * gr_dtype_size(t->dtype));
    return st;
}

graft_status graft_model_run(graft_model *m, const graft_tensor *const *inputs, int ninputs,
                             graft_tensor **outputs, int noutputs)
{
    const gr_graph *g = m->src.g;
    if (ninputs != g->ninputs)
        return gr_err(GRAFT_E_ARG, "%s: the model has %d inputs, %d given", g->path, g->ninputs,
                      ninputs);
    if (noutputs != g->noutputs)
        return gr_err(GRAFT_E_ARG, "%s: the model has %d outputs, %d requested", g->path,
                      g->noutputs, noutputs);
    gr_tensor in[64];
    if (ninputs > 64) return gr_err(GRAFT_E_UNSUPPORTED, "more than 64 inputs");
    for (int i = 0; i < ninputs; i++) {
        if (!inputs[i] || !inputs[i]->data) return gr_err(GRAFT_E_ARG, "input %d is NULL", i);
        if (inputs[i]->rank < 0 || inputs[i]->rank > GRAFT_MAX_RANK)
            return gr_err(GRAFT_E_ARG, "input %d: bad rank", i);
        in[i] = gr_tensor_view(inputs[i]);
    }
    int st = ensure_plan(m, in);
    if (st) return st;
    gr_plan_run(m->plan, in);
    int i = 0;
    for (; i < noutputs && !st; i++) { st = copy_out(gr_plan_output(m->plan, i), &outputs[i]); }
    if (st)
        while (--i > 0) {
            graft_tensor_free(outputs[i - 1]);
            outputs[i - 1] = NULL;
        }
    return st;
}

size_t graft_model_peak_bytes(const graft_model *m)
{
    return m->plan ? gr_plan_arena_bytes(m->plan) : 0;
}

const char *graft_model_metadata(const graft_model *m, const char *key)
{
    for (int i = 0; m && key && i < m->src.g->nmeta; i++)
        if (!strcmp(m->src.g->meta[i].key, key)) return m->src.g->meta[i].value;
    return NULL;
}
