/* test_graph.c — the planner and executor on hand-built graphs with test-only ops:
 * topological order from a shuffled node list, constant folding, the liveness memory plan
 * (peak far below the sum, and no live buffers overlapping: results stay exact), cut points,
 * and errors for cycles and undefined inputs. */
#include "graph/graph.h"
#include "harness.h"

#include <string.h>

#define N 1000 /* floats per activation */

static int unary_prepare(gr_opctx *c) { return gr_op_set_out(c, 0, GR_F32, &c->in[0]->shape); }
static void addone_forward(gr_opctx *c)
{
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    for (int64_t i = 0; i < gr_numel(&c->in[0]->shape); i++) y[i] = x[i] + 1;
}
static void twice_forward(gr_opctx *c)
{
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    for (int64_t i = 0; i < gr_numel(&c->in[0]->shape); i++) y[i] = 2 * x[i];
}
static int sum_prepare(gr_opctx *c)
{
    if (!gr_shape_eq(&c->in[0]->shape, &c->in[1]->shape))
        return gr_op_err(c, GRAFT_E_SHAPE, "shapes differ");
    return gr_op_set_out(c, 0, GR_F32, &c->in[0]->shape);
}
static void sum_forward(gr_opctx *c)
{
    const float *a = c->in[0]->data, *b = c->in[1]->data;
    float *y = c->out[0]->data;
    for (int64_t i = 0; i < gr_numel(&c->in[0]->shape); i++) y[i] = a[i] + b[i];
}
static const gr_opdef op_addone = { "AddOne", unary_prepare, addone_forward, NULL, 0, NULL, NULL };
static const gr_opdef op_twice = { "Twice", unary_prepare, twice_forward, NULL, 0, NULL, NULL };
static const gr_opdef op_sum = { "Sum2", sum_prepare, sum_forward, NULL, 0, NULL, NULL };

typedef struct {
    const char *op, *in0, *in1, *out;
} spec;

/* Builds a graph with input "x" (N floats), initializer "c" (N floats of 3), and nodes. */
static gr_graph *build(const spec *nodes, int n, const char *output)
{
    gr_graph *g = calloc(1, sizeof *g);
    g->arena = gr_arena_new(1 << 16);
    g->values = gr_arena_alloc(g->arena, 64 * sizeof(gr_value));
    g->nodes = gr_arena_alloc(g->arena, (size_t)n * sizeof(gr_node));
    g->opset = 13;
    g->path = "test";
    const char *names[64];
    int nv = 0;
#define VALUE(name_)                                                                               \
    ({                                                                                             \
        int found_ = -1;                                                                           \
        for (int q_ = 0; q_ < nv; q_++)                                                            \
            if (!strcmp(names[q_], name_)) found_ = q_;                                            \
        if (found_ < 0) {                                                                          \
            found_ = nv;                                                                           \
            names[nv] = name_;                                                                     \
            g->values[nv].name = (char *)name_;                                                    \
            g->values[nv].producer = -1;                                                           \
            nv++;                                                                                  \
        }                                                                                          \
        found_;                                                                                    \
    })
    int x = VALUE("x"), c = VALUE("c");
    g->values[x].t = (gr_tensor){ .dtype = GR_F32, .shape = { 1, { N } } };
    g->values[x].has_shape = 1;
    float *cd = gr_arena_alloc(g->arena, N * sizeof(float));
    for (int i = 0; i < N; i++) cd[i] = 3;
    g->values[c].t = (gr_tensor){ .dtype = GR_F32, .shape = { 1, { N } }, .data = cd };
    g->values[c].is_init = 1;
    for (int k = 0; k < n; k++) {
        gr_node *nd = &g->nodes[k];
        nd->name = (char *)nodes[k].out;
        nd->op_type = (char *)nodes[k].op;
        nd->domain = "";
        nd->op = !strcmp(nodes[k].op, "AddOne")  ? &op_addone
                 : !strcmp(nodes[k].op, "Twice") ? &op_twice
                                                 : &op_sum;
        nd->nin = nodes[k].in1 ? 2 : 1;
        nd->in = gr_arena_alloc(g->arena, 2 * sizeof(int));
        nd->in[0] = VALUE(nodes[k].in0);
        if (nodes[k].in1) nd->in[1] = VALUE(nodes[k].in1);
        nd->nout = 1;
        nd->out = gr_arena_alloc(g->arena, sizeof(int));
        nd->out[0] = VALUE(nodes[k].out);
    }
    g->nnodes = n;
    g->inputs = gr_arena_alloc(g->arena, sizeof(int));
    g->outputs = gr_arena_alloc(g->arena, sizeof(int));
    g->ninputs = 1;
    g->inputs[0] = x;
    g->noutputs = 1;
    g->outputs[0] = VALUE(output);
    g->nvalues = nv;
#undef VALUE
    return g;
}

static float xdata[N];
static gr_tensor xin = { .dtype = GR_F32, .shape = { 1, { N } }, .data = xdata };

static void test_chain(void)
{
    /* 12 AddOnes in a chain, listed in reverse: the sort must fix the order */
    spec s[12];
    static char names[13][8];
    for (int k = 0; k < 12; k++) {
        snprintf(names[k + 1], 8, "v%d", k + 1);
        snprintf(names[0], 8, "x");
    }
    for (int k = 0; k < 12; k++) s[11 - k] = (spec){ "AddOne", names[k], NULL, names[k + 1] };
    gr_graph *g = build(s, 12, "v12");
    CHECK(gr_graph_sort(g) == GRAFT_OK, "%s", graft_last_error());
    gr_plan *p;
    gr_plan_opts o = { 0 };
    CHECK(gr_plan_build(g, &xin, &o, &p) == GRAFT_OK, "%s", graft_last_error());
    for (int i = 0; i < N; i++) xdata[i] = (float)i;
    gr_plan_run(p, &xin);
    const float *y = gr_plan_output(p, 0)->data;
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= y[i] == (float)i + 12;
    CHECK(ok, "chain result wrong: y[5] = %g", y[5]);
    /* a chain needs two buffers at a time, not twelve */
    size_t one = ((N * 4) + 63) & ~(size_t)63;
    CHECK(gr_plan_arena_bytes(p) == 2 * one, "arena %zu bytes, expected %zu",
          gr_plan_arena_bytes(p), 2 * one);
    int cuts[16];
    int nc = gr_plan_cut_points(p, cuts, 16);
    CHECK(nc == 11, "chain has %d cut points, expected 11", nc);
    gr_plan_free(p);
    gr_graph_free(g);
}

static void test_diamond_and_folding(void)
{
    /* y = x+1; a = 2y; b = y+1; z = a+b; k = 2c (folded); out = z + k
     * out = 2(x+1) + (x+2) + 6 = 3x + 10 */
    spec s[] = {
        { "AddOne", "x", NULL, "y" }, { "Twice", "y", NULL, "a" }, { "AddOne", "y", NULL, "b" },
        { "Sum2", "a", "b", "z" },    { "Twice", "c", NULL, "k" }, { "Sum2", "z", "k", "out" },
    };
    gr_graph *g = build(s, 6, "out");
    CHECK(gr_graph_sort(g) == GRAFT_OK, "%s", graft_last_error());
    gr_plan *p;
    gr_plan_opts o = { 0 };
    CHECK(gr_plan_build(g, &xin, &o, &p) == GRAFT_OK, "%s", graft_last_error());
    CHECK(gr_plan_steps(p) == 5, "%d steps, expected 5 (the constant branch folded)",
          gr_plan_steps(p));
    for (int i = 0; i < N; i++) xdata[i] = (float)(i % 17);
    gr_plan_run(p, &xin);
    const float *out = gr_plan_output(p, 0)->data;
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= out[i] == 3 * (float)(i % 17) + 10;
    CHECK(ok, "diamond result wrong: out[3] = %g, expected %g", out[3], 3.0 * 3 + 10);
    int cuts[16], nc = gr_plan_cut_points(p, cuts, 16);
    /* y and z are cut points (only one activation alive after them); a and b are not */
    CHECK(nc == 2 && !strcmp(g->values[cuts[0]].name, "y") && !strcmp(g->values[cuts[1]].name, "z"),
          "cut points: %d (%s ...)", nc, nc ? g->values[cuts[0]].name : "-");
    gr_plan_free(p);
    gr_graph_free(g);
}

static void test_errors(void)
{
    spec cyc[] = { { "Sum2", "x", "q", "p" }, { "AddOne", "p", NULL, "q" } };
    gr_graph *g = build(cyc, 2, "q");
    CHECK(gr_graph_sort(g) == GRAFT_E_FORMAT && strstr(graft_last_error(), "cycle"), "%s",
          graft_last_error());
    gr_graph_free(g);
    spec undef[] = { { "Sum2", "x", "nowhere", "p" } };
    g = build(undef, 1, "p");
    CHECK(gr_graph_sort(g) == GRAFT_E_FORMAT && strstr(graft_last_error(), "'nowhere'"), "%s",
          graft_last_error());
    gr_graph_free(g);
    /* a wrong input shape is refused by the planner, naming the input */
    spec one[] = { { "AddOne", "x", NULL, "y" } };
    g = build(one, 1, "y");
    gr_graph_sort(g);
    gr_tensor bad = { .dtype = GR_F32, .shape = { 1, { N + 1 } }, .data = xdata };
    gr_plan *p;
    gr_plan_opts o = { 0 };
    CHECK(gr_plan_build(g, &bad, &o, &p) == GRAFT_E_SHAPE &&
              strstr(graft_last_error(), "input 'x'"),
          "%s", graft_last_error());
    gr_graph_free(g);
}

int main(void)
{
    test_chain();
    test_diamond_and_folding();
    test_errors();
    return th_finish();
}
