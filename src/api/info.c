/* info.c — graft_model_info_json: what `graft info` prints. */
#include "api.h"

#include <cjson/cJSON.h>
#include <string.h>

static cJSON *shape_json(const gr_shape *s, int known)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; known && i < s->rank; i++)
        cJSON_AddItemToArray(a, s->d[i] < 0 ? cJSON_CreateString("?")
                                            : cJSON_CreateNumber((double)s->d[i]));
    return a;
}

static cJSON *values_json(const gr_graph *g, const int *idx, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const gr_value *v = &g->values[idx[i]];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", v->name);
        cJSON_AddStringToObject(o, "dtype", gr_dtype_name(v->t.dtype));
        cJSON_AddItemToObject(o, "shape", shape_json(&v->t.shape, v->has_shape));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *op_counts_json(const graft_model *m)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < m->nops; i++) cJSON_AddNumberToObject(o, m->ops[i].op, m->ops[i].count);
    return o;
}

static int64_t parameter_count(const gr_graph *g)
{
    int64_t n = 0;
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].is_init &&
            (g->values[v].t.dtype == GR_F32 || g->values[v].t.dtype == GR_F64))
            n += gr_numel(&g->values[v].t.shape);
    return n;
}

/* Builds a plan for one input of the given batch (symbolic dims: batch first, else gr_symbolic_dim) with
 * no input data, to count FLOPs and find the cut points. */
static int plan_for_info(graft_model *m, int batch, gr_plan **out)
{
    const gr_graph *g = m->g;
    gr_tensor in[64];
    if (g->ninputs > 64) return gr_err(GRAFT_E_UNSUPPORTED, "more than 64 inputs");
    for (int i = 0; i < g->ninputs; i++) {
        const gr_value *v = &g->values[g->inputs[i]];
        in[i].dtype = v->t.dtype ? v->t.dtype : GR_F32;
        in[i].shape = v->t.shape;
        for (int d = 0; d < in[i].shape.rank; d++)
            if (in[i].shape.d[d] < 0)
                in[i].shape.d[d] = d == 0 ? batch : gr_symbolic_dim(in[i].shape.rank);
        in[i].data = NULL;
    }
    gr_plan_opts opts = { .use_ref = m->use_ref, .dnnl = m->dnnl };
    return gr_plan_build(g, in, &opts, out);
}

/* NULL when out of memory. */
static cJSON *cut_points_json(const gr_graph *g, gr_plan *p)
{
    int max = gr_plan_steps(p) + 1;
    int *vals = malloc((size_t)max * sizeof *vals);
    int n = vals ? gr_plan_cut_points(p, vals, max) : -GRAFT_E_NOMEM;
    cJSON *arr = n < 0 ? NULL : cJSON_CreateArray();
    if (!arr) {
        free(vals);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const gr_value *v = &g->values[vals[i]];
        const gr_tensor *t = gr_plan_value(p, vals[i]);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", v->name);
        cJSON_AddStringToObject(o, "node", g->nodes[v->producer].name);
        cJSON_AddStringToObject(o, "op", g->nodes[v->producer].op_type);
        cJSON_AddItemToObject(o, "shape", shape_json(&t->shape, 1));
        cJSON_AddItemToArray(arr, o);
    }
    free(vals);
    return arr;
}

graft_status graft_model_info_json(graft_model *m, int batch, char **json)
{
    int st = gr_api_run_graph(m);
    if (st) return st;
    const gr_graph *g = m->g;
    if (batch <= 0) batch = 1;
    cJSON *o = cJSON_CreateObject();
    if (!o) return gr_err(GRAFT_E_NOMEM, "out of memory");
    cJSON_AddStringToObject(o, "path", g->path);
    cJSON_AddStringToObject(o, "producer", g->producer);
    cJSON_AddStringToObject(o, "producer_version", g->producer_version);
    cJSON_AddNumberToObject(o, "ir_version", (double)g->ir_version);
    cJSON_AddNumberToObject(o, "opset", g->opset);
    cJSON_AddItemToObject(o, "inputs", values_json(g, g->inputs, g->ninputs));
    cJSON_AddItemToObject(o, "outputs", values_json(g, g->outputs, g->noutputs));
    cJSON_AddNumberToObject(o, "nodes", m->nnodes);
    cJSON_AddItemToObject(o, "op_counts", op_counts_json(m));
    cJSON_AddNumberToObject(o, "parameters", (double)parameter_count(g));
    cJSON *meta = cJSON_CreateObject();
    for (int i = 0; i < g->nmeta; i++)
        cJSON_AddStringToObject(meta, g->meta[i].key, g->meta[i].value);
    cJSON_AddItemToObject(o, "metadata", meta);

    gr_plan *p = NULL;
    st = plan_for_info(m, batch, &p);
    if (st) {
        cJSON_Delete(o);
        return gr_err_prefix(st, "%s", g->path);
    }
    cJSON_AddNumberToObject(o, "batch", batch);
    cJSON_AddNumberToObject(o, "flops", (double)gr_plan_flops(p));
    cJSON_AddNumberToObject(o, "activation_bytes", (double)gr_plan_arena_bytes(p));
    cJSON *cuts = cut_points_json(g, p);
    gr_plan_free(p);
    if (!cuts) {
        cJSON_Delete(o);
        return gr_err(GRAFT_E_NOMEM, "%s: out of memory", g->path);
    }
    cJSON_AddItemToObject(o, "cut_points", cuts);
    *json = cJSON_Print(o);
    cJSON_Delete(o);
    return *json ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
}
