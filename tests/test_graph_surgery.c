/* test_graph_surgery.c — graph surgery (src/graph/surgery.c) against independent references:
 *  - editing primitives and prune on a small hand-built graph: errors name what is wrong and
 *    leave the graph as it was; prune drops what nothing needs and keeps the graph sortable;
 *  - heads: shapes, values against closed forms (2x2 grid means = adaptive_avg_pool2d(x, 2),
 *    Gemm and MLP computed here from the head's own weights), torch.nn.Linear's init range and
 *    moments (statistical bounds);
 *  - torchvision resnet18 / mobilenet_v2 (scripts/surgery_reference.py, PyTorch's names):
 *    a cut gives the full model's intermediate value and PyTorch's model.layer3 output;
 *    replace_classifier; an added head exported with gr_onnx_save and run by onnxruntime-node;
 *    freeze specs against the parameter lists PyTorch prints; and a head-only trainer that
 *    differentiates only the head and leaves every trunk tensor bit-identical.
 *
 *   test_graph_surgery REF_DIR SRC_DIR OUT_DIR */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "io/io.h"
#include "ops/dnnl_util.h"
#include "train/train.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ref_dir, *src_dir, *out_dir;

/* ---- helpers ---- */

static int run(char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static gr_graph *load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.onnx", ref_dir, name);
    gr_graph *g = NULL;
    if (gr_onnx_load(path, &g) || gr_graph_check_ops(g)) {
        fprintf(stderr, "%s\n", graft_last_error());
        exit(2);
    }
    return g;
}

static gr_tensor load_npy(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gr_tensor t;
    if (gr_npy_load(path, &t)) {
        fprintf(stderr, "%s\n", graft_last_error());
        exit(2);
    }
    return t;
}

/* A malloc'd copy of value v (or output i when v < 0) after one run of an inference plan. */
static float *run_value(const gr_graph *g, const gr_tensor *x, int use_ref, int v, int out_i,
                        gr_shape *shape)
{
    gr_plan *p;
    gr_plan_opts o = { .use_ref = use_ref };
    gr_dnnl *d = NULL;
    if (!use_ref && gr_dnnl_new(&d)) return NULL;
    o.dnnl = d;
    int st = gr_plan_build(g, x, &o, &p);
    CHECK(st == GRAFT_OK, "plan: %s", graft_last_error());
    if (st) return NULL;
    gr_plan_run(p, x);
    const gr_tensor *t = v >= 0 ? gr_plan_value(p, v) : gr_plan_output(p, out_i);
    size_t n = (size_t)gr_numel(&t->shape);
    float *c = malloc(n * sizeof *c + 4);
    memcpy(c, t->data, n * sizeof *c);
    if (shape) *shape = t->shape;
    gr_plan_free(p);
    gr_dnnl_free(d);
    return c;
}

/* Makes value v an extra graph output: an intermediate's memory is reused by later steps, an
 * output's is not. Returns its output index. */
static int add_output(gr_graph *g, int v)
{
    int *o = gr_arena_alloc(g->arena, (size_t)(g->noutputs + 1) * sizeof *o);
    memcpy(o, g->outputs, (size_t)g->noutputs * sizeof *o);
    o[g->noutputs] = v;
    g->outputs = o;
    return g->noutputs++;
}

static int shape_is(const gr_shape *s, int rank, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t w[4] = { a, b, c, d };
    if (s->rank != rank) return 0;
    for (int i = 0; i < rank; i++)
        if (s->d[i] != w[i]) return 0;
    return 1;
}

static const float *init_data(const gr_graph *g, const char *name, int64_t *n)
{
    int v = gr_graph_find_value(g, name);
    if (v < 0 || !g->values[v].is_init) return NULL;
    if (n) *n = gr_numel(&g->values[v].t.shape);
    return g->values[v].t.data;
}

/* Every node's outputs name it as producer; every value is read, produced, an input or an
 * output (nothing dangling after a prune). */
static void check_consistent(const gr_graph *g, const char *what)
{
    int bad = 0;
    unsigned char *used = calloc((size_t)g->nvalues + 1, 1);
    for (int k = 0; k < g->nnodes; k++) {
        for (int j = 0; j < g->nodes[k].nout; j++)
            if (g->nodes[k].out[j] >= 0) {
                bad += g->values[g->nodes[k].out[j]].producer != k;
                used[g->nodes[k].out[j]] = 1;
            }
        for (int i = 0; i < g->nodes[k].nin; i++)
            if (g->nodes[k].in[i] >= 0) used[g->nodes[k].in[i]] = 1;
    }
    for (int i = 0; i < g->ninputs; i++) used[g->inputs[i]] = 1;
    for (int i = 0; i < g->noutputs; i++) used[g->outputs[i]] = 1;
    int unused = 0;
    for (int v = 0; v < g->nvalues; v++) unused += !used[v];
    free(used);
    CHECK(bad == 0, "%s: %d outputs with a wrong producer", what, bad);
    CHECK(unused == 0, "%s: %d values nothing references", what, unused);
}

/* ---- a small hand-built graph: x (N, 3, H, W) → Conv 1x1 (C) → Relu → r ---- */

static gr_graph *synth(int C, int H, int W, gr_rng *rng)
{
    gr_graph *g = calloc(1, sizeof *g);
    g->arena = gr_arena_new(1 << 16);
    g->opset = 13;
    g->ir_version = 8;
    gr_shape xs = { 4, { -1, 3, H, W } }, ws = { 4, { C, 3, 1, 1 } }, bs = { 1, { C } },
             js = { 1, { 3 } };
    float *w = malloc((size_t)C * 3 * sizeof *w), *b = malloc((size_t)C * sizeof *b),
          junk[3] = { 1, 2, 3 };
    for (int i = 0; i < C * 3; i++) w[i] = (float)(gr_rng_uniform(rng) * 2 - 1);
    for (int i = 0; i < C; i++) b[i] = (float)(gr_rng_uniform(rng) - 0.3);
    int x = -1, vw = -1, vb = -1, y = -1, r = -1, vj = -1; /* -1: not added (st says why) */
    int st = gr_graph_add_value(g, "x", GR_F32, &xs, NULL, &x) ||
             gr_graph_add_value(g, "conv.weight", GR_F32, &ws, w, &vw) ||
             gr_graph_add_value(g, "conv.bias", GR_F32, &bs, b, &vb) ||
             gr_graph_add_value(g, "junk", GR_F32, &js, junk, &vj) ||
             gr_graph_add_value(g, "y", 0, NULL, NULL, &y) ||
             gr_graph_add_value(g, "r", 0, NULL, NULL, &r);
    free(w);
    free(b);
    g->inputs = gr_arena_alloc(g->arena, sizeof(int));
    g->inputs[0] = x;
    g->ninputs = 1;
    int in[3] = { x, vw, vb };
    st = st || gr_graph_add_node(g, "conv", "Conv", in, 3, &y, 1, NULL, 0, NULL) ||
         gr_graph_add_node(g, "relu", "Relu", &y, 1, &r, 1, NULL, 0, NULL);
    g->outputs = gr_arena_alloc(g->arena, sizeof(int));
    g->outputs[0] = r;
    g->noutputs = 1;
    if (st) {
        fprintf(stderr, "synth: %s\n", graft_last_error());
        exit(2);
    }
    return g;
}

static gr_tensor random_input(int n, int H, int W, gr_rng *rng, float **buf)
{
    *buf = malloc((size_t)n * 3 * H * W * sizeof(float));
    for (int i = 0; i < n * 3 * H * W; i++) (*buf)[i] = (float)gr_rng_normal(rng);
    return (gr_tensor){ .dtype = GR_F32, .shape = { 4, { n, 3, H, W } }, .data = *buf };
}

static int msg_has(const char *s) { return strstr(graft_last_error(), s) != NULL; }

static void test_primitives(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 1);
    gr_graph *g = synth(4, 3, 3, &rng);
    int nv = g->nvalues, nn = g->nnodes, v;
    CHECK(gr_graph_add_value(g, "y", GR_F32, NULL, NULL, &v) == GRAFT_E_ARG && msg_has("'y'"),
          "dup value: %s", graft_last_error());
    int later;
    gr_graph_add_value(g, "later", GR_F32, NULL, NULL, &later);
    int r = gr_graph_find_value(g, "r"), o1, o2;
    gr_graph_add_value(g, "o1", 0, NULL, NULL, &o1);
    gr_graph_add_value(g, "o2", 0, NULL, NULL, &o2);
    int in2[2] = { r, later };
    CHECK(gr_graph_add_node(g, "bad", "Add", in2, 2, &o1, 1, NULL, 0, NULL) == GRAFT_E_ARG &&
              msg_has("'later'"),
          "unavailable input: %s", graft_last_error());
    int w = gr_graph_find_value(g, "conv.weight");
    CHECK(gr_graph_add_node(g, "bad", "Relu", &r, 1, &w, 1, NULL, 0, NULL) == GRAFT_E_ARG &&
              msg_has("conv.weight"),
          "output is an initializer: %s", graft_last_error());
    CHECK(gr_graph_add_node(g, "bad", "NoSuchOp", &r, 1, &o1, 1, NULL, 0, NULL) ==
                  GRAFT_E_UNSUPPORTED &&
              msg_has("NoSuchOp"),
          "unknown op: %s", graft_last_error());
    CHECK(gr_graph_add_node(g, "relu", "Relu", &r, 1, &o1, 1, NULL, 0, NULL) == GRAFT_E_ARG &&
              msg_has("'relu'"),
          "dup node: %s", graft_last_error());
    CHECK(g->nnodes == nn, "failed adds changed the node count: %d, was %d", g->nnodes, nn);
    /* an attribute is copied: the caller's array may go away */
    int64_t perm[4] = { 0, 2, 3, 1 };
    gr_attr a = { .name = "perm", .type = GR_AT_INTS, .n = 4, .ints = perm };
    CHECK(gr_graph_add_node(g, "tr", "Transpose", &r, 1, &o1, 1, &a, 1, NULL) == GRAFT_OK, "%s",
          graft_last_error());
    perm[1] = 99;
    CHECK(g->nodes[g->nnodes - 1].attrs[0].ints[1] == 2 &&
              g->nodes[g->nnodes - 1].attrs[0].ints != perm,
          "attribute not copied");
    CHECK(gr_graph_add_node(g, "shape", "Shape", &r, 1, &o2, 1, NULL, 0, NULL) == GRAFT_OK, "%s",
          graft_last_error());
    CHECK(gr_graph_sort(g) == GRAFT_OK, "sort after adds: %s", graft_last_error());

    /* prune: 'junk', 'later' and the two dead nodes (outputs nobody needs) go */
    CHECK(gr_graph_prune(g) == GRAFT_OK, "%s", graft_last_error());
    CHECK(g->nvalues == nv - 1 && g->nnodes == nn,
          "after prune %d values (want %d), %d nodes (want %d)", g->nvalues, nv - 1, g->nnodes, nn);
    CHECK(gr_graph_find_value(g, "junk") < 0 && gr_graph_find_value(g, "later") < 0 &&
              gr_graph_find_node(g, "tr") < 0,
          "prune kept unused things");
    CHECK(!strcmp(g->values[g->inputs[0]].name, "x") && !strcmp(g->values[g->outputs[0]].name, "r"),
          "inputs/outputs renumbered wrong");
    CHECK(gr_graph_sort(g) == GRAFT_OK, "sort after prune: %s", graft_last_error());
    check_consistent(g, "synthetic after prune");

    /* cut errors leave the graph as it was */
    r = gr_graph_find_value(g, "r");
    gr_graph_add_value(g, "shp", 0, NULL, NULL, &o2);
    gr_graph_add_node(g, "shape", "Shape", &r, 1, &o2, 1, NULL, 0, NULL);
    nv = g->nvalues;
    const char *c1[] = { "shape" }, *c2[] = { "nope" }, *c3[] = { "conv.weight" };
    CHECK(gr_graph_cut(g, c1, 1) == GRAFT_E_ARG && msg_has("'shp'") && msg_has("int64"),
          "non-float cut: %s", graft_last_error());
    CHECK(gr_graph_cut(g, c2, 1) == GRAFT_E_ARG && msg_has("'nope'"), "unknown cut: %s",
          graft_last_error());
    CHECK(gr_graph_cut(g, c3, 1) == GRAFT_E_ARG && msg_has("initializer"), "initializer cut: %s",
          graft_last_error());
    CHECK(g->nvalues == nv && g->noutputs == 1, "a failed cut changed the graph");
    const char *c4[] = { "conv" }; /* a node name: its first output */
    CHECK(gr_graph_cut(g, c4, 1) == GRAFT_OK && g->noutputs == 1 &&
              !strcmp(g->values[g->outputs[0]].name, "y") && gr_graph_find_node(g, "relu") < 0 &&
              gr_graph_find_value(g, "shp") < 0,
          "cut at node 'conv': %s", graft_last_error());
    int f, first;
    CHECK(gr_graph_find_classifier(g, &f, &first) == GRAFT_E_ARG && msg_has("no classifier") &&
              msg_has("'conv' (Conv)"),
          "no classifier: %s", graft_last_error());
    unsigned char tr[64];
    CHECK(gr_freeze_select(g, "head", tr) == GRAFT_E_ARG && msg_has("'head'") &&
              msg_has("no classifier"),
          "head without classifier: %s", graft_last_error());
    gr_graph_free(g);
}

/* PyTorch's deduplicated initializers: Identity nodes over one initializer become initializers
 * of their own, each a copy (so that each can train on its own); an Identity that makes a graph
 * output stays a node. */
static void test_inline_identity(void)
{
    gr_graph *g;
    CHECK(gr_graph_new(13, &g) == GRAFT_OK, "%s", graft_last_error());
    float w[3] = { 1, 2, 3 };
    gr_shape s3 = gr_shape_make(1, (int64_t[]){ 3 });
    int x, W, i1, i2, i3, a, m;
    gr_graph_add_input(g, "x", GR_F32, &s3, &x);
    gr_graph_add_value(g, "W", GR_F32, &s3, w, &W);
    gr_graph_add_value(g, "i1", 0, NULL, NULL, &i1);
    gr_graph_add_value(g, "i2", 0, NULL, NULL, &i2);
    gr_graph_add_value(g, "i3", 0, NULL, NULL, &i3);
    gr_graph_add_value(g, "a", 0, NULL, NULL, &a);
    gr_graph_add_value(g, "m", 0, NULL, NULL, &m);
    gr_graph_add_node(g, "id1", "Identity", &W, 1, &i1, 1, NULL, 0, NULL);
    gr_graph_add_node(g, "id2", "Identity", &W, 1, &i2, 1, NULL, 0, NULL);
    gr_graph_add_node(g, "id3", "Identity", &W, 1, &i3, 1, NULL, 0, NULL);
    gr_graph_add_node(g, "add", "Add", (int[]){ x, i1 }, 2, &a, 1, NULL, 0, NULL);
    gr_graph_add_node(g, "mul", "Mul", (int[]){ a, i2 }, 2, &m, 1, NULL, 0, NULL);
    gr_graph_add_output(g, m);
    gr_graph_add_output(g, i3);
    int n = -1;
    CHECK(gr_graph_inline_constants(g, &n) == GRAFT_OK && n == 2, "inlined %d: %s", n,
          graft_last_error());
    int v1 = gr_graph_find_value(g, "i1"), v2 = gr_graph_find_value(g, "i2"),
        vw = gr_graph_find_value(g, "W");
    CHECK(v1 >= 0 && v2 >= 0 && g->values[v1].is_init && g->values[v2].is_init,
          "i1, i2 are initializers");
    const float *d1 = g->values[v1].t.data, *d2 = g->values[v2].t.data;
    CHECK(d1 != d2 && vw >= 0 && d1 != g->values[vw].t.data && d1[2] == 3 && d2[0] == 1,
          "each a copy with W's values");
    CHECK(gr_graph_find_node(g, "id1") < 0 && gr_graph_find_node(g, "id2") < 0 &&
              gr_graph_find_node(g, "id3") >= 0,
          "id1, id2 gone, id3 (a graph output) kept");
    check_consistent(g, "after inlining Identity");
    gr_graph_free(g);
}

/* Appending one graph to another: a -> b equals running b on a's output; errors name the reason. */
static void test_graph_append(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 11);
    gr_graph *a = synth(3, 2, 2, &rng), *b = synth(3, 2, 2, &rng);
    float *buf;
    gr_tensor x = random_input(2, 2, 2, &rng, &buf);
    gr_shape sa, sb;
    float *ya = run_value(a, &x, 1, -1, 0, &sa);
    gr_tensor xa = { .dtype = GR_F32, .shape = sa, .data = ya };
    float *yb = run_value(b, &xa, 1, -1, 0, &sb);
    int r = a->outputs[0], out = -1, bad = -7;
    b->opset = 17;
    CHECK(gr_graph_append(a, b, "b/", &r, &out) == GRAFT_E_UNSUPPORTED && msg_has("opset 17"),
          "opset: %s", graft_last_error());
    b->opset = 13;
    CHECK(gr_graph_append(a, b, "b/", &bad, &out) == GRAFT_E_ARG && msg_has("'x'"),
          "bad input map: %s", graft_last_error());
    CHECK(gr_graph_append(a, b, "b/", &r, &out) == GRAFT_OK, "append: %s", graft_last_error());
    CHECK(out >= 0 && !strcmp(a->values[out].name, "b/r") &&
              gr_graph_find_value(a, "b/conv.weight") >= 0 && gr_graph_find_node(a, "b/conv") >= 0,
          "appended names carry the prefix");
    CHECK(gr_graph_append(a, b, "b/", &r, &out) == GRAFT_E_ARG && msg_has("b/conv.weight"),
          "same prefix twice: %s", graft_last_error());
    a->outputs[0] = out;
    CHECK(gr_graph_prune(a) == GRAFT_OK && gr_graph_sort(a) == GRAFT_OK, "%s", graft_last_error());
    check_consistent(a, "after append");
    gr_shape sab;
    float *yab = run_value(a, &x, 1, -1, 0, &sab);
    CHECK(yab && gr_shape_eq(&sab, &sb), "appended graph's output shape");
    if (yab && yb && gr_shape_eq(&sab, &sb))
        th_close(yab, yb, (long)gr_numel(&sb), 0, 0, "a then b in one graph = b(a(x))");
    free(ya), free(yb), free(yab), free(buf);
    gr_graph_free(a), gr_graph_free(b);
}

/* mean of x[c, r0:r1, c0:c1] for a (C, H, W) plane stack */
static double cell_mean(const float *x, int W, int r0, int r1, int c0, int c1)
{
    double s = 0;
    for (int i = r0; i < r1; i++)
        for (int j = c0; j < c1; j++) s += x[i * W + j];
    return s / ((r1 - r0) * (c1 - c0));
}

/* grid4 = adaptive_avg_pool2d(x, 4) on a map whose sides are multiples of 4: equal cells. */
static void test_grid4_head(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 5);
    const int C = 3, H = 8, W = 12, N = 2;
    gr_graph *g = synth(C, H, W, &rng);
    int r = gr_graph_find_value(g, "r"), lg;
    gr_head_spec s = { .nclass = 2, .pool = GR_POOL_GRID4, .prefix = "g4" };
    CHECK(gr_graph_add_head(g, r, &s, &rng, &lg) == GRAFT_OK, "grid4 head: %s", graft_last_error());
    CHECK(gr_graph_prune(g) == GRAFT_OK && gr_graph_sort(g) == GRAFT_OK, "%s", graft_last_error());
    int po = add_output(g, gr_graph_find_value(g, "g4.pooled"));
    float *xb;
    gr_tensor x = random_input(N, H, W, &rng, &xb);
    gr_shape s0, sp;
    float *feat = run_value(g, &x, 1, -1, 0, &s0), *pooled = run_value(g, &x, 1, -1, po, &sp);
    CHECK(shape_is(&sp, 4, N, C, 4, 4), "grid4 pooled shape");
    float want[2 * 3 * 16];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    want[((n * C + c) * 4 + i) * 4 + j] =
                        (float)cell_mean(feat + (n * C + c) * H * W, W, i * H / 4, (i + 1) * H / 4,
                                         j * W / 4, (j + 1) * W / 4);
    th_close(pooled, want, N * C * 16, 1e-5, 1e-6, "grid4 pooling vs the 4x4 cell means");
    int64_t nw;
    CHECK(init_data(g, "g4.fc.weight", &nw) && nw == 2 * 16 * C, "g4.fc.weight: %lld elements",
          (long long)nw);
    free(feat), free(pooled), free(xb);
    gr_graph_free(g);
}

static void test_heads(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 2);
    const int C = 6, H = 7, W = 5, N = 2;
    gr_graph *g = synth(C, H, W, &rng);
    int r = gr_graph_find_value(g, "r"), lg, lm;
    gr_head_spec s1 = { .nclass = 3, .pool = GR_POOL_GRID2, .prefix = "g2" };
    CHECK(gr_graph_add_head(g, r, &s1, &rng, &lg) == GRAFT_OK, "grid2 head: %s",
          graft_last_error());
    r = gr_graph_find_value(g, "r");
    gr_head_spec s2 = { .nclass = 3, .hidden = 4, .dropout = 0.3f, .prefix = "mlp" };
    CHECK(gr_graph_add_head(g, r, &s2, &rng, &lm) == GRAFT_OK, "mlp head: %s", graft_last_error());
    CHECK(gr_graph_add_head(g, r, &s2, &rng, &lm) == GRAFT_E_ARG && msg_has("'mlp'"),
          "prefix taken: %s", graft_last_error());
    gr_head_spec bad = { .nclass = 3, .pool = 99 };
    CHECK(gr_graph_add_head(g, r, &bad, &rng, NULL) == GRAFT_E_ARG && msg_has("pool 99"),
          "bad pool: %s", graft_last_error());
    CHECK(g->noutputs == 3, "appended heads: %d outputs, want 3", g->noutputs);
    CHECK(gr_graph_prune(g) == GRAFT_OK && gr_graph_sort(g) == GRAFT_OK && g->noutputs == 3, "%s",
          graft_last_error());
    check_consistent(g, "synthetic with heads");
    int po = add_output(g, gr_graph_find_value(g, "g2.pooled"));
    float *xb;
    gr_tensor x = random_input(N, H, W, &rng, &xb);
    gr_shape s0, sg, sm, sp;
    float *feat = run_value(g, &x, 1, -1, 0, &s0), *yg = run_value(g, &x, 1, -1, 1, &sg),
          *ym = run_value(g, &x, 1, -1, 2, &sm);
    float *pooled = run_value(g, &x, 1, -1, po, &sp);
    CHECK(shape_is(&sg, 2, N, 3, 0, 0) && shape_is(&sm, 2, N, 3, 0, 0) &&
              shape_is(&sp, 4, N, C, 2, 2),
          "head shapes");
    /* grid2 = adaptive_avg_pool2d(x, 2): cells [0, ceil(H/2)) and [floor(H/2), H) per axis */
    float want[2 * 6 * 4];
    int rs[2][2] = { { 0, (H + 1) / 2 }, { H / 2, H } },
        cs[2][2] = { { 0, (W + 1) / 2 }, { W / 2, W } };
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    want[((n * C + c) * 2 + i) * 2 + j] = (float)cell_mean(
                        feat + (n * C + c) * H * W, W, rs[i][0], rs[i][1], cs[j][0], cs[j][1]);
    th_close(pooled, want, N * C * 4, 1e-5, 1e-6, "grid2 pooling vs the 2x2 cell means");
    /* logits = flatten(pooled) W^T + b with the head's own weights */
    int64_t nw;
    const float *w = init_data(g, "g2.fc.weight", &nw), *b = init_data(g, "g2.fc.bias", NULL);
    CHECK(w && b && nw == 3 * 4 * C, "g2.fc.weight: %lld elements", (long long)nw);
    float lw[2 * 3], lmw[2 * 3];
    for (int n = 0; w && b && n < N; n++)
        for (int k = 0; k < 3; k++) {
            double acc = b[k];
            for (int i = 0; i < 4 * C; i++) acc += (double)w[k * 4 * C + i] * want[n * 4 * C + i];
            lw[n * 3 + k] = (float)acc;
        }
    th_close(yg, lw, N * 3, 1e-5, 1e-5, "grid2 head logits vs Gemm by hand");
    /* MLP: relu(GAP(r) W1^T + b1) W2^T + b2 (Dropout is the identity in inference) */
    const float *w1 = init_data(g, "mlp.fc1.weight", &nw), *b1 = init_data(g, "mlp.fc1.bias", NULL);
    const float *w2 = init_data(g, "mlp.fc2.weight", NULL),
                *b2 = init_data(g, "mlp.fc2.bias", NULL);
    CHECK(w1 && b1 && w2 && b2 && nw == 4 * C && init_data(g, "mlp.dropout.ratio", NULL),
          "mlp parameters");
    for (int n = 0; w1 && b1 && w2 && b2 && n < N; n++) {
        double h[4];
        for (int j = 0; j < 4; j++) {
            double acc = b1[j];
            for (int c = 0; c < C; c++)
                acc += w1[j * C + c] * cell_mean(feat + (n * C + c) * H * W, W, 0, H, 0, W);
            h[j] = acc > 0 ? acc : 0;
        }
        for (int k = 0; k < 3; k++) {
            double acc = b2[k];
            for (int j = 0; j < 4; j++) acc += w2[k * 4 + j] * h[j];
            lmw[n * 3 + k] = (float)acc;
        }
    }
    th_close(ym, lmw, N * 3, 1e-5, 1e-5, "MLP head logits vs by hand");
    unsigned char tr[256];
    int nsel = 0;
    CHECK(gr_freeze_select(g, "head", tr) == GRAFT_OK, "%s", graft_last_error());
    for (int v = 0; v < g->nvalues; v++) nsel += tr[v] && !strncmp(g->values[v].name, "mlp.fc", 6);
    CHECK(nsel == 4, "head selects %d of the MLP's 4 parameters", nsel);
    free(feat), free(yg), free(ym), free(pooled), free(xb);
    /* an int64 value is no feature */
    int shp, ok;
    gr_graph_add_value(g, "shp", 0, NULL, NULL, &shp);
    r = gr_graph_find_value(g, "r");
    gr_graph_add_node(g, "shape", "Shape", &r, 1, &shp, 1, NULL, 0, NULL);
    gr_head_spec s3 = { .nclass = 2, .prefix = "bad" };
    ok = gr_graph_add_head(g, shp, &s3, &rng, NULL) == GRAFT_E_SHAPE && msg_has("'shp'");
    CHECK(ok, "head on int64: %s", graft_last_error());
    /* a 4x4 grid needs equal cells: this 7x5 map has none */
    gr_head_spec s_g4 = { .nclass = 2, .pool = GR_POOL_GRID4, .prefix = "g4" };
    ok = gr_graph_add_head(g, r, &s_g4, &rng, NULL) == GRAFT_E_SHAPE && msg_has("multiples of 4") &&
         msg_has("'r'");
    CHECK(ok, "grid4 head on a 7x5 map: %s", graft_last_error());
    gr_graph_free(g);
    test_grid4_head();

    /* classifier search: GAP → Flatten → Dropout → MatMul → Add → Softmax */
    g = synth(C, H, W, &rng);
    r = gr_graph_find_value(g, "r");
    int p = -1, fl = -1, d = -1, m = -1, a = -1, sm2 = -1, vw = -1, vb = -1, dr = -1;
    gr_shape ws = { 2, { C, 3 } }, bs = { 1, { 3 } }, rs0 = { 0, { 0 } };
    float wv[18], bv[3] = { 0.1f, -0.2f, 0.3f }, ratio = 0.5f;
    for (int i = 0; i < 18; i++) wv[i] = (float)i / 18;
    gr_attr soft = { .name = "axis", .type = GR_AT_INT, .i = 1 };
    int st = gr_graph_add_value(g, "p", 0, NULL, NULL, &p) ||
             gr_graph_add_value(g, "fl", 0, NULL, NULL, &fl) ||
             gr_graph_add_value(g, "d", 0, NULL, NULL, &d) ||
             gr_graph_add_value(g, "m", 0, NULL, NULL, &m) ||
             gr_graph_add_value(g, "a", 0, NULL, NULL, &a) ||
             gr_graph_add_value(g, "prob", 0, NULL, NULL, &sm2) ||
             gr_graph_add_value(g, "cls.w", GR_F32, &ws, wv, &vw) ||
             gr_graph_add_value(g, "cls.b", GR_F32, &bs, bv, &vb) ||
             gr_graph_add_value(g, "ratio", GR_F32, &rs0, &ratio, &dr);
    int din[2] = { fl, dr }, min[2] = { d, vw }, ain[2] = { vb, m };
    st = st || gr_graph_add_node(g, "gap", "GlobalAveragePool", &r, 1, &p, 1, NULL, 0, NULL) ||
         gr_graph_add_node(g, "flatten", "Flatten", &p, 1, &fl, 1, NULL, 0, NULL) ||
         gr_graph_add_node(g, "drop", "Dropout", din, 2, &d, 1, NULL, 0, NULL) ||
         gr_graph_add_node(g, "mm", "MatMul", min, 2, &m, 1, NULL, 0, NULL) ||
         gr_graph_add_node(g, "add", "Add", ain, 2, &a, 1, NULL, 0, NULL) ||
         gr_graph_add_node(g, "softmax", "Softmax", &a, 1, &sm2, 1, &soft, 1, NULL);
    CHECK(!st, "building the classifier graph: %s", graft_last_error());
    g->outputs[0] = sm2;
    int f = -1, first = -1;
    CHECK(gr_graph_find_classifier(g, &f, &first) == GRAFT_OK && f == fl &&
              first == gr_graph_find_node(g, "drop"),
          "find_classifier: feature %s, first node %s (%s)", f >= 0 ? g->values[f].name : "-",
          first >= 0 ? g->nodes[first].name : "-", graft_last_error());
    CHECK(gr_freeze_select(g, "head", tr) == GRAFT_OK && tr[vw] && tr[vb] &&
              !tr[gr_graph_find_value(g, "conv.weight")],
          "head = MatMul weight + Add bias: %s", graft_last_error());
    gr_head_spec s4 = { .nclass = 4 };
    CHECK(gr_graph_replace_classifier(g, &s4, &rng) == GRAFT_OK, "replace: %s", graft_last_error());
    CHECK(gr_graph_find_node(g, "drop") < 0 && gr_graph_find_node(g, "mm") < 0 &&
              gr_graph_find_node(g, "softmax") < 0 && gr_graph_find_value(g, "cls.w") < 0 &&
              gr_graph_find_node(g, "flatten") >= 0,
          "replace kept the old classifier");
    int64_t n4;
    CHECK(init_data(g, "head.fc.weight", &n4) && n4 == 4 * C, "head.fc.weight has %lld elements",
          (long long)n4);
    /* replacing it again with the same prefix: the old head's names are free once it goes */
    gr_head_spec s5 = { .nclass = 2, .hidden = 5 };
    CHECK(gr_graph_replace_classifier(g, &s5, &rng) == GRAFT_OK, "second replace: %s",
          graft_last_error());
    CHECK(init_data(g, "head.fc1.weight", &n4) && n4 == 5 * C &&
              !init_data(g, "head.fc.weight", NULL) && gr_graph_find_node(g, "flatten") >= 0 &&
              g->nmeta == 1,
          "second replace: fc1 %lld, %d metadata entries", (long long)n4, g->nmeta);
    /* a prefix taken by a value the cut keeps is refused before anything changes */
    int nv5 = g->nvalues;
    gr_head_spec s6 = { .nclass = 2, .prefix = "conv" };
    CHECK(gr_graph_replace_classifier(g, &s6, &rng) == GRAFT_E_ARG && msg_has("conv.") &&
              g->nvalues == nv5,
          "prefix taken by the trunk: %s", graft_last_error());
    gr_graph_free(g);
}

/* torch.nn.Linear's init: U(-b, b), b = 1/sqrt(fan_in), for weight and bias. */
static void test_init_stats(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 3);
    const int C = 256, K = 100;
    gr_graph *g = synth(C, 2, 2, &rng);
    gr_head_spec s = { .nclass = K, .replace = 1 };
    CHECK(gr_graph_add_head(g, gr_graph_find_value(g, "r"), &s, &rng, NULL) == GRAFT_OK, "%s",
          graft_last_error());
    const char *names[2] = { "head.fc.weight", "head.fc.bias" };
    double bound = 1.0 / sqrt(C);
    for (int t = 0; t < 2; t++) {
        int64_t n = 0;
        const float *w = init_data(g, names[t], &n);
        CHECK(w && n == (t ? K : (int64_t)K * C), "%s: %lld elements", names[t], (long long)n);
        if (!w) continue;
        double sum = 0, sq = 0, lo = 1, hi = -1;
        for (int64_t i = 0; i < n; i++) {
            sum += w[i], sq += (double)w[i] * w[i];
            lo = fmin(lo, w[i]), hi = fmax(hi, w[i]);
        }
        double mean = sum / n, var = sq / n - mean * mean, b2 = bound * bound;
        CHECK(lo >= -bound * (1 + 1e-7) && hi <= bound * (1 + 1e-7), "%s: range [%g, %g], bound %g",
              names[t], lo, hi, bound);
        CHECK(fabs(mean) <= 4 * bound / sqrt(3.0 * n), "%s: mean %g, 4 sigma %g", names[t], mean,
              4 * bound / sqrt(3.0 * n));
        /* Var of U(-b, b) is b^2/3; the sample variance's sd is b^2 sqrt(4/45/n) */
        CHECK(fabs(var - b2 / 3) <= 5 * b2 * sqrt(4.0 / 45 / n), "%s: variance %g, want %g",
              names[t], var, b2 / 3);
        if (!t)
            CHECK(lo < -0.999 * bound && hi > 0.999 * bound,
                  "weight range [%g, %g] does not reach +-%g", lo, hi, bound);
        printf("init %s: %lld values in [%.5f, %.5f], bound %.5f, mean %.2e, var %.3e (b^2/3 = "
               "%.3e)\n",
               names[t], (long long)n, lo, hi, bound, mean, var, b2 / 3);
    }
    gr_graph_free(g);
}

/* ---- torchvision models ---- */

static gr_tensor x_ref;

static void test_cut_resnet18(void)
{
    const char *node = "/layer3/layer3.1/relu_1/Relu";
    gr_graph *full = load("resnet18"), *g = load("resnet18");
    int k = gr_graph_find_node(full, node);
    CHECK(k >= 0, "resnet18 has no node %s", node);
    if (k < 0) return;
    gr_shape sf, sc;
    float *want = run_value(full, &x_ref, 1, -1, add_output(full, full->nodes[k].out[0]), &sf);
    int nv = g->nvalues, nn = g->nnodes;
    const char *names[] = { node };
    CHECK(gr_graph_cut(g, names, 1) == GRAFT_OK, "cut: %s", graft_last_error());
    printf("resnet18 cut at %s: %d -> %d values, %d -> %d nodes\n", node, nv, g->nvalues, nn,
           g->nnodes);
    CHECK(gr_graph_sort(g) == GRAFT_OK, "sort after cut: %s", graft_last_error());
    check_consistent(g, "resnet18 cut");
    CHECK(gr_graph_find_value(g, "fc.weight") < 0 &&
              gr_graph_find_value(g, "layer4.0.conv1.weight") < 0 &&
              gr_graph_find_value(g, "layer4.1.bn2.running_var") < 0,
          "the cut kept layer4/fc initializers");
    CHECK(gr_graph_find_value(g, "layer3.1.conv2.weight") >= 0 &&
              gr_graph_find_value(g, "conv1.weight") >= 0,
          "the cut dropped needed initializers");
    float *got = run_value(g, &x_ref, 1, -1, 0, &sc);
    CHECK(shape_is(&sc, 4, 2, 256, 4, 4) && gr_shape_eq(&sc, &sf), "cut output shape");
    if (got && want && gr_shape_eq(&sc, &sf)) {
        long n = (long)gr_numel(&sc);
        th_close(got, want, n, 0, 0,
                 "cut output vs the full model's intermediate value (bit-identical)");
        gr_tensor t = load_npy(ref_dir, "resnet18_layer3.npy");
        double maxd = 0, maxr = 0;
        for (long i = 0; i < n; i++) {
            maxd = fmax(maxd, fabs((double)got[i] - ((float *)t.data)[i]));
            maxr = fmax(maxr, fabs(((float *)t.data)[i]));
        }
        CHECK(gr_numel(&t.shape) == n && maxd <= 1e-4 * maxr,
              "cut vs PyTorch model.layer3: max diff %g (max %g)", maxd, maxr);
        printf("resnet18 cut vs PyTorch layer3: rel diff %.2e\n", maxd / maxr);
        free(t.data);
    }
    free(want), free(got);
    gr_graph_free(full), gr_graph_free(g);
}

static void test_replace(const char *model, int64_t feat)
{
    gr_rng rng;
    gr_rng_seed(&rng, 4);
    gr_graph *g = load(model);
    gr_head_spec s = { .nclass = 7 };
    CHECK(gr_graph_replace_classifier(g, &s, &rng) == GRAFT_OK, "%s: %s", model,
          graft_last_error());
    CHECK(g->noutputs == 1 && !strcmp(g->values[g->outputs[0]].name, "head.logits"), "%s: output",
          model);
    CHECK(gr_graph_sort(g) == GRAFT_OK, "%s", graft_last_error());
    check_consistent(g, model);
    int64_t n;
    CHECK(init_data(g, "head.fc.weight", &n) && n == 7 * feat,
          "%s: head.fc.weight %lld elements, want %lld", model, (long long)n,
          (long long)(7 * feat));
    CHECK(gr_graph_find_value(g, "fc.weight") < 0 &&
              gr_graph_find_value(g, "classifier.1.weight") < 0,
          "%s: old fc kept", model);
    gr_shape so;
    float *y = run_value(g, &x_ref, 0, -1, 0, &so);
    CHECK(shape_is(&so, 2, 2, 7, 0, 0), "%s: new output shape rank %d (%lld, %lld)", model, so.rank,
          (long long)so.d[0], (long long)so.d[1]);
    printf("%s: replace_classifier -> (%lld, %lld), %lld features\n", model, (long long)so.d[0],
           (long long)so.d[1], (long long)feat);
    free(y);
    gr_graph_free(g);
}

/* resnet18 cut at layer3 + an MLP head with grid2 pooling, saved and run by onnxruntime. */
static void test_export(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 5);
    gr_graph *g = load("resnet18");
    const char *names[] = { "/layer3/layer3.1/relu_1/Relu" };
    gr_head_spec s = { .nclass = 10,
                       .hidden = 16,
                       .dropout = 0.25f,
                       .pool = GR_POOL_GRID2,
                       .prefix = "head0",
                       .replace = 1 };
    int st = gr_graph_cut(g, names, 1);
    if (!st) st = gr_graph_add_head(g, g->outputs[0], &s, &rng, NULL);
    CHECK(st == GRAFT_OK, "cut + head: %s", graft_last_error());
    gr_shape so;
    float *y = run_value(g, &x_ref, 0, -1, 0, &so);
    char path[1024], xpath[1024], opath[1024], script[1024];
    snprintf(path, sizeof path, "%s/resnet18_head0.onnx", out_dir);
    snprintf(xpath, sizeof xpath, "%s/x.npy", ref_dir);
    snprintf(opath, sizeof opath, "%s/resnet18_head0_ort.npy", out_dir);
    snprintf(script, sizeof script, "%s/scripts/ort_run.js", src_dir);
    CHECK(gr_onnx_save(g, path) == GRAFT_OK, "save: %s", graft_last_error());
    gr_graph_free(g);
    char *argv[] = { "node", script, path, xpath, opath, NULL };
    CHECK(run(argv) == 0, "onnxruntime failed on %s", path);
    gr_tensor r = load_npy(out_dir, "resnet18_head0_ort.npy");
    CHECK(y && shape_is(&so, 2, 2, 10, 0, 0) && gr_shape_eq(&r.shape, &so),
          "exported head: output shapes differ");
    if (y && gr_shape_eq(&r.shape, &so)) {
        double maxd = 0, maxr = 0;
        for (int64_t i = 0; i < gr_numel(&so); i++) {
            maxd = fmax(maxd, fabs((double)y[i] - ((float *)r.data)[i]));
            maxr = fmax(maxr, fabs(((float *)r.data)[i]));
        }
        CHECK(maxd <= 1e-4 * maxr, "graft vs onnxruntime on the head: rel diff %g", maxd / maxr);
        printf("resnet18 + MLP grid2 head: graft vs onnxruntime rel diff %.2e\n", maxd / maxr);
    }
    free(r.data);
    free(y);
    /* the head is known again after a reload: "head" selects fc1 and fc2 */
    gr_graph *h = NULL;
    CHECK(gr_onnx_load(path, &h) == GRAFT_OK, "%s", graft_last_error());
    if (!h) return;
    unsigned char *tr = calloc((size_t)h->nvalues, 1);
    int nsel = 0, nhead = 0;
    CHECK(gr_freeze_select(h, "head", tr) == GRAFT_OK, "%s", graft_last_error());
    for (int v = 0; v < h->nvalues; v++) {
        nsel += tr[v];
        nhead += tr[v] && (!strncmp(h->values[v].name, "head0.fc1.", 10) ||
                           !strncmp(h->values[v].name, "head0.fc2.", 10));
    }
    CHECK(nsel == 4 && nhead == 4, "reloaded head: %d selected, %d of them head0.fc1/fc2", nsel,
          nhead);
    int f, first;
    CHECK(gr_graph_find_classifier(h, &f, &first) == GRAFT_OK &&
              !strcmp(h->values[f].name, "/layer3/layer3.1/relu_1/Relu_output_0") &&
              !strcmp(h->nodes[first].name, "head0.pool"),
          "reloaded head's feature: %s", graft_last_error());
    free(tr);
    gr_graph_free(h);
}

/* An appended head keeps the original output as it was. */
static void test_append(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 6);
    gr_graph *full = load("resnet18"), *g = load("resnet18");
    gr_head_spec s = { .nclass = 3, .prefix = "aux" };
    int lv = -1;
    CHECK(gr_graph_add_head(g, gr_graph_find_value(g, "/Flatten_output_0"), &s, &rng, &lv) ==
              GRAFT_OK,
          "%s", graft_last_error());
    CHECK(g->noutputs == 2 && lv == g->outputs[1] && !strcmp(g->values[lv].name, "aux.logits"),
          "appended head output");
    gr_shape s0, s1, sf;
    float *a = run_value(full, &x_ref, 1, -1, 0, &sf), *b = run_value(g, &x_ref, 1, -1, 0, &s0),
          *c = run_value(g, &x_ref, 1, -1, 1, &s1);
    CHECK(gr_shape_eq(&s0, &sf) && shape_is(&s1, 2, 2, 3, 0, 0), "multi-task output shapes");
    if (a && b && gr_shape_eq(&s0, &sf))
        th_close(b, a, (long)gr_numel(&sf), 0, 0, "output 0 unchanged by an appended head");
    free(a), free(b), free(c);
    gr_graph_free(full), gr_graph_free(g);
}

/* ---- freezing ---- */

static int read_names(const char *file, char names[][96], int max)
{
    char path[1024], line[256];
    snprintf(path, sizeof path, "%s/%s.txt", ref_dir, file);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && n < max && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strlen(line) < 96) strcpy(names[n++], line);
    }
    if (f) fclose(f);
    if (!n) {
        fprintf(stderr, "no names in %s\n", path);
        exit(2);
    }
    return n;
}

static char want_names[512][96], minus_names[512][96];

/* spec selects exactly the names of file `plus` minus those of `minus` (may be NULL). */
static void check_select(const gr_graph *g, const char *model, const char *spec, const char *plus,
                         const char *minus)
{
    int np = read_names(plus, want_names, 512),
        nm = minus ? read_names(minus, minus_names, 512) : 0;
    unsigned char *tr = calloc((size_t)g->nvalues + 1, 1),
                  *want = calloc((size_t)g->nvalues + 1, 1);
    int st = gr_freeze_select(g, spec, tr);
    CHECK(st == GRAFT_OK, "%s '%s': %s", model, spec, graft_last_error());
    int missing = 0, extra = 0, count = 0;
    for (int i = 0; i < np; i++) {
        int v = gr_graph_find_value(g, want_names[i]), keep = 1;
        for (int j = 0; j < nm; j++) keep &= strcmp(minus_names[j], want_names[i]) != 0;
        if (v < 0) {
            fprintf(stderr, "  '%s' is not in the graph\n", want_names[i]);
            missing++;
            continue;
        }
        if (keep) want[v] = 1;
    }
    for (int v = 0; v < g->nvalues; v++) {
        count += tr[v];
        if (want[v] && !tr[v]) {
            if (missing < 3) fprintf(stderr, "  '%s' not selected\n", g->values[v].name);
            missing++;
        }
        if (!want[v] && tr[v]) {
            if (extra < 3) fprintf(stderr, "  '%s' selected\n", g->values[v].name);
            extra++;
        }
    }
    CHECK(!st && missing == 0 && extra == 0, "%s '%s' vs PyTorch's %s%s%s: %d missing, %d extra",
          model, spec, plus, minus ? " minus " : "", minus ? minus : "", missing, extra);
    printf("%s freeze '%s': %d trainable tensors (PyTorch: %s%s%s)\n", model, spec, count, plus,
           minus ? " - " : "", minus ? minus : "");
    free(tr), free(want);
}

static void check_error(const gr_graph *g, const char *spec, const char *needle)
{
    unsigned char *tr = calloc((size_t)g->nvalues + 1, 1);
    int st = gr_freeze_select(g, spec, tr);
    CHECK(st == GRAFT_E_ARG && msg_has(needle),
          "spec '%s': status %d, message '%s' (want it to name %s)", spec, st, graft_last_error(),
          needle);
    free(tr);
}

static void test_freeze(void)
{
    gr_graph *g = load("resnet18");
    check_select(g, "resnet18", "all", "resnet18_all", NULL);
    check_select(g, "resnet18", "last:1", "resnet18_last1", NULL);
    check_select(g, "resnet18", " last:2 ", "resnet18_layer4", NULL);
    check_select(g, "resnet18", "after:/layer3/layer3.1/relu_1/Relu", "resnet18_layer4", NULL);
    check_select(g, "resnet18", "head", "resnet18_fc", NULL);
    check_select(g, "resnet18", "pattern:layer1.*", "resnet18_layer1", NULL);
    check_select(g, "resnet18", "all,-pattern:*bn*,-pattern:*downsample.1.*", "resnet18_all",
                 "resnet18_bn");
    check_select(g, "resnet18", "last:1,-head,head", "resnet18_last1", NULL);
    check_select(g, "resnet18", "all,-after:/layer4/layer4.0/relu_1/Relu,-head", "resnet18_all",
                 "resnet18_last1");
    unsigned char *tr = calloc((size_t)g->nvalues + 1, 1);
    int any = 0;
    CHECK(gr_freeze_select(g, "all,none", tr) == GRAFT_OK, "%s", graft_last_error());
    for (int v = 0; v < g->nvalues; v++) any |= tr[v];
    CHECK(!any, "'all,none' selects something");
    CHECK(gr_freeze_select(g, "last:100", tr) == GRAFT_OK, "%s", graft_last_error());
    int n = 0;
    for (int v = 0; v < g->nvalues; v++) n += tr[v];
    CHECK(n == 62, "last:100 selects %d tensors, want all 62", n);
    free(tr);
    check_error(g, "bogus", "'bogus'");
    check_error(g, "all,after:/nope", "'/nope'");
    check_error(g, "last:0", "'last:0'");
    check_error(g, "last:-1", "'last:-1'");
    check_error(g, "last:x", "'last:x'");
    check_error(g, "pattern:zzz*", "'zzz*'");
    check_error(g, "all,,head", "empty term");
    check_error(g, "-all", "'-all'");
    gr_graph_free(g);
    g = load("mobilenet_v2");
    check_select(g, "mobilenet_v2", "last:1", "mobilenet_v2_last1", NULL);
    gr_graph_free(g);
}

/* "frozen means free": a head-only trainer differentiates the head alone. */
static void test_frozen_is_free(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 7);
    gr_graph *g = load("resnet18"), *full = load("resnet18");
    gr_head_spec s = { .nclass = 5, .prefix = "new" };
    CHECK(gr_graph_replace_classifier(g, &s, &rng) == GRAFT_OK, "%s", graft_last_error());
    unsigned char *tr = calloc((size_t)g->nvalues + 1, 1),
                  *trf = calloc((size_t)full->nvalues + 1, 1);
    CHECK(gr_freeze_select(g, "head", tr) == GRAFT_OK &&
              gr_freeze_select(full, "all", trf) == GRAFT_OK,
          "%s", graft_last_error());
    /* copies of every frozen initializer (trunk weights and running statistics) */
    int nv = g->nvalues; /* the trainer folds frozen BatchNorms: the graph grows */
    void **copy = calloc((size_t)nv, sizeof *copy);
    for (int v = 0; v < nv; v++)
        if (g->values[v].is_init && !tr[v]) {
            size_t n = gr_tensor_bytes(&g->values[v].t);
            copy[v] = malloc(n + 1);
            memcpy(copy[v], g->values[v].t.data, n);
        }
    gr_trainer_cfg cfg = { .opt = { .kind = GR_SGD, .lr = 0.002 }, .loss = GR_LOSS_CE };
    gr_trainer *t = NULL, *tf = NULL;
    CHECK(gr_trainer_new(g, tr, &cfg, &t) == GRAFT_OK &&
              gr_trainer_new(full, trf, &cfg, &tf) == GRAFT_OK,
          "%s", graft_last_error());
    if (!t || !tf) return;
    int32_t y[2] = { 1, 3 };
    int32_t yf[2] = { 1, 3 };
    double loss[5], lf;
    int ok = 1;
    for (int i = 0; i < 5 && ok; i++) {
        ok = gr_trainer_step(t, &x_ref, y, &loss[i]) == GRAFT_OK;
        CHECK(ok, "head-only step %d: %s", i + 1, graft_last_error());
    }
    CHECK(gr_trainer_step(tf, &x_ref, yf, &lf) == GRAFT_OK, "full step: %s", graft_last_error());
    int bh = gr_plan_backward_steps(t->plan), bf = gr_plan_backward_steps(tf->plan);
    printf(
        "backward steps: head only %d, whole model %d; head-only losses %.5f %.5f %.5f %.5f %.5f\n",
        bh, bf, loss[0], loss[1], loss[2], loss[3], loss[4]);
    CHECK(bh >= 1 && bh <= 3, "head-only training has %d backward steps", bh);
    CHECK(bf > 40, "full training has only %d backward steps", bf);
    CHECK(t->nparam == 2 && t->total == 5 * 512 + 5,
          "head-only trainer: %d tensors, %lld parameters", t->nparam, (long long)t->total);
    for (int i = 1; ok && i < 5; i++)
        CHECK(loss[i] < loss[i - 1], "loss went up at step %d: %.6f -> %.6f", i + 1, loss[i - 1],
              loss[i]);
    int changed = 0, frozen = 0;
    for (int v = 0; v < nv; v++)
        if (copy[v]) {
            frozen++;
            if (memcmp(copy[v], g->values[v].t.data, gr_tensor_bytes(&g->values[v].t))) {
                if (changed < 3) fprintf(stderr, "  frozen '%s' changed\n", g->values[v].name);
                changed++;
            }
            free(copy[v]);
        }
    CHECK(frozen == 100 && changed == 0, "%d of %d frozen tensors changed", changed, frozen);
    free(copy), free(tr), free(trf);
    gr_trainer_free(t), gr_trainer_free(tf);
    gr_graph_free(g), gr_graph_free(full);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test_graph_surgery REF_DIR SRC_DIR OUT_DIR\n");
        return 2;
    }
    ref_dir = argv[1], src_dir = argv[2], out_dir = argv[3];
    mkdir(out_dir, 0777);
    test_primitives();
    test_inline_identity();
    test_graph_append();
    test_heads();
    test_init_stats();
    x_ref = load_npy(ref_dir, "x.npy");
    test_cut_resnet18();
    test_replace("resnet18", 512);
    test_replace("mobilenet_v2", 1280);
    test_export();
    test_append();
    test_freeze();
    test_frozen_is_free();
    free(x_ref.data);
    return th_finish();
}
