/* export.c — the whole detector as one ONNX model: the two front-end models and a keyword head
 * joined with Gather-based framing, written aside, checked against the front end + head path and
 * only then renamed into place. */
#include "speech.h"

#include "graph/graph.h"
#include "io/io.h"
#include "ops/dnnl_util.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The three input models, each parsed once (ops checked): the joined model is built from
 * copies, and so is the front end + head path that checks it. */
typedef struct kw_models {
    const char *path[3]; /* mel, emb, head */
    gr_graph *g[3];
} kw_models;
enum { MEL = 0, EMB = 1, HEAD = 2 };

static int models_load(kw_models *m)
{
    for (int i = 0; i < 3; i++) {
        int st = gr_onnx_load(m->path[i], &m->g[i]);
        if (!st && (st = gr_graph_check_ops(m->g[i]))) st = gr_err_prefix(st, "%s", m->path[i]);
        if (st) return st;
    }
    return GRAFT_OK;
}

static void models_free(kw_models *m)
{
    for (int i = 0; i < 3; i++) gr_graph_free(m->g[i]);
}

/* A copy of model i for appending: Constant nodes as initializers. */
static int copy_for_export(const kw_models *m, int i, gr_graph **out)
{
    int st = gr_graph_clone(m->g[i], 1, out);
    if (!st && (st = gr_graph_inline_constants(*out, NULL))) {
        gr_graph_free(*out);
        *out = NULL;
        return gr_err_prefix(st, "%s", m->path[i]);
    }
    return st;
}

/* The joined graph's own parts are built through graph/build.c: values and nodes named
 * "frontend/<part>", float activations. */
static int op1(gr_gb *b, const char *op, const int *in, int nin, const char *part, const gr_attr *a,
               int na, int *out)
{
    return gr_gb_op(b, part, part, op, in, nin, a, na, out);
}

static int const_f32(gr_gb *b, const char *part, float x, int *out)
{
    gr_shape s = gr_shape_make(0, NULL);
    return gr_gb_value(b, part, GR_F32, &s, &x, out);
}

static int const_i64(gr_gb *b, const char *part, int rank, const int64_t *dims, const int64_t *data,
                     int *out)
{
    gr_shape s = gr_shape_make(rank, dims);
    return gr_gb_value(b, part, GR_I64, &s, data, out);
}

/* Reshape x to `shape` (rank dims, -1 for the batch). */
static int reshape(gr_gb *b, int x, const char *part, int rank, const int64_t *shape, int *out)
{
    char sname[96];
    snprintf(sname, sizeof sname, "%s.shape", part);
    int s, st = const_i64(b, sname, 1, (int64_t[]){ rank }, shape, &s);
    return st ? st : op1(b, "Reshape", (int[]){ x, s }, 2, part, NULL, 0, out);
}

/* Gather along axis 1 with a (rows, len) int64 index table: row r holds the `len` consecutive
 * positions from start + stride * r. */
static int gather_rows(gr_gb *b, int x, const char *part, int64_t rows, int64_t len, int64_t start,
                       int64_t stride, int *out)
{
    int64_t *idx = malloc((size_t)(rows * len) * sizeof *idx);
    if (!idx) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < len; j++) idx[r * len + j] = start + stride * r + j;
    char iname[96];
    snprintf(iname, sizeof iname, "%s.index", part);
    int ix, st = const_i64(b, iname, 2, (int64_t[]){ rows, len }, idx, &ix);
    free(idx);
    gr_attr axis = { .name = "axis", .type = GR_AT_INT, .i = 1 };
    return st ? st : op1(b, "Gather", (int[]){ x, ix }, 2, part, &axis, 1, out);
}

int64_t gr_kw_full_samples(int window)
{
    return (int64_t)GR_KW_HOP * (window + GR_KW_CHUNKS_PER_EMB - 2) + GR_KW_CHUNK;
}

/* audio (B, S) in [-1, 1) -> int16 scale -> chunks (B*C, 1760) -> mel (cut before its ReduceMax)
 * -> per-chunk floor, x / 10 + 2 -> frames (B, 8C, 32) -> windows (B*W, 76, 32, 1) -> embeddings
 * (B, W, 96) -> head. The same arithmetic, in the same order, as the batch path above. */
static int build_full(gr_graph *g, gr_graph *mel, int floor_db, gr_graph *emb, gr_graph *head,
                      int window, int *score)
{
    const int64_t nchunk = window + GR_KW_CHUNKS_PER_EMB - 1,
                  nframes = nchunk * GR_KW_FRAMES_PER_HOP;
    gr_shape in_shape = gr_shape_make(2, (int64_t[]){ -1, gr_kw_full_samples(window) });
    int x, k32768, pcm, chunks, rows, m, lo = -1, y, ten, two, frames, win, win4, e, e3, c80, t;
    gr_gb b = { .g = g, .prefix = "frontend/", .act_dtype = GR_F32 };
    int st = gr_graph_add_input(g, "audio", GR_F32, &in_shape, &x);
    if (!st) st = const_f32(&b, "int16_scale", 32768.0f, &k32768);
    if (!st) st = op1(&b, "Mul", (int[]){ x, k32768 }, 2, "pcm", NULL, 0, &pcm);
    if (!st) st = gather_rows(&b, pcm, "chunks", nchunk, GR_KW_CHUNK, 0, GR_KW_HOP, &chunks);
    if (!st) st = reshape(&b, chunks, "chunk_rows", 2, (int64_t[]){ -1, GR_KW_CHUNK }, &rows);
    if (!st) st = gr_graph_append(g, mel, "mel/", &rows, &m);
    if (!st && floor_db) { /* max(x, max over the chunk - 80), as scale_chunk */
        int64_t axes[3] = { 1, 2, 3 };
        gr_attr ax[2] = { { .name = "keepdims", .type = GR_AT_INT, .i = 1 },
                          { .name = "axes", .type = GR_AT_INTS, .n = 3, .ints = axes } };
        if (g->opset < 18) {
            st = op1(&b, "ReduceMax", &m, 1, "chunk_max", ax, 2, &t);
        } else { /* opset 18 made the axes an input */
            int va;
            st = const_i64(&b, "chunk_axes", 1, (int64_t[]){ 3 }, axes, &va);
            if (!st) st = op1(&b, "ReduceMax", (int[]){ m, va }, 2, "chunk_max", ax, 1, &t);
        }
        if (!st) st = const_f32(&b, "80db", 80.0f, &c80);
        if (!st) st = op1(&b, "Sub", (int[]){ t, c80 }, 2, "floor", NULL, 0, &lo);
        if (!st) st = op1(&b, "Max", (int[]){ m, lo }, 2, "floored", NULL, 0, &m);
    }
    if (!st) st = const_f32(&b, "ten", 10.0f, &ten);
    if (!st) st = const_f32(&b, "two", 2.0f, &two);
    if (!st) st = op1(&b, "Div", (int[]){ m, ten }, 2, "mel_div", NULL, 0, &y);
    if (!st) st = op1(&b, "Add", (int[]){ y, two }, 2, "mel_scaled", NULL, 0, &y);
    if (!st) st = reshape(&b, y, "frames", 3, (int64_t[]){ -1, nframes, GR_KW_MELS }, &frames);
    if (!st)
        st = gather_rows(&b, frames, "windows", window, GR_KW_WINDOW, GR_KW_FIRST_FRAME,
                         GR_KW_FRAMES_PER_HOP, &win);
    if (!st)
        st = reshape(&b, win, "window_rows", 4, (int64_t[]){ -1, GR_KW_WINDOW, GR_KW_MELS, 1 },
                     &win4);
    if (!st) st = gr_graph_append(g, emb, "embedding/", &win4, &e);
    if (!st) st = reshape(&b, e, "embeddings", 3, (int64_t[]){ -1, window, GR_KW_DIM }, &e3);
    if (!st) st = gr_graph_append(g, head, "head/", &e3, score);
    return st;
}

/* Copies the head's metadata and describes the pipeline's calling convention. */
static int full_metadata(gr_graph *g, const gr_graph *head, int64_t samples)
{
    char desc[400];
    snprintf(desc, sizeof desc,
             "input 'audio' (batch, %lld): 16 kHz mono float samples in [-1, 1), the last %.2f s; "
             "output: the keyword "
             "score of the 80 ms step ending with them (run it every 1280 samples). openWakeWord's "
             "melspectrogram.onnx and embedding_model.onnx (CC BY-NC-SA 4.0) and the head, joined "
             "by graft",
             (long long)samples, (double)samples / GR_KW_RATE);
    int st = GRAFT_OK;
    for (int i = 0; !st && i < head->nmeta; i++)
        st = gr_graph_add_meta(g, head->meta[i].key, head->meta[i].value);
    return st ? st : gr_graph_add_meta(g, "graft.pipeline", desc);
}

/* Test audio for the export's self-check: tones and noise at speech-like levels, with a quiet
 * stretch so the per-chunk floor matters. */
static void check_audio(float *x, int64_t n)
{
    gr_rng r;
    gr_rng_seed(&r, 7);
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / GR_KW_RATE, env = (i / 4000) % 3 == 0 ? 0.001 : 0.3;
        x[i] = (float)(env * (0.5 * sin(2 * 3.14159265358979 * 220 * t) +
                              0.3 * sin(2 * 3.14159265358979 * 1375 * t) +
                              0.2 * (2 * gr_rng_uniform(&r) - 1)));
    }
}

enum { STEPS = 4 }; /* windows the self-check runs at once */

/* The front end + head path on the check audio: its embeddings (*emb, malloc'd) and the head's
 * scores of the first STEPS windows (ref, room for STEPS + 64). */
static int reference(const kw_models *m, const float *audio, int64_t n, int window, float **emb,
                     float *ref)
{
    gr_kw_frontend *fe = NULL;
    gr_kw_head *head = NULL;
    gr_graph *c[3] = { NULL, NULL, NULL }; /* copies: the front end and head take them over */
    int64_t nf, ne;
    int st = gr_graph_clone(m->g[MEL], 1, &c[MEL]);
    if (!st && (st = gr_graph_clone(m->g[EMB], 1, &c[EMB]))) gr_graph_free(c[MEL]);
    if (st) return st;
    st = gr_kw_frontend_from(c[MEL], m->path[MEL], c[EMB], m->path[EMB], 0, 0, &fe);
    if (!st) st = gr_kw_embed(fe, audio, n, NULL, &nf, emb, &ne);
    if (!st) st = gr_graph_clone(m->g[HEAD], 1, &c[HEAD]);
    if (!st) st = gr_kw_head_from(c[HEAD], m->path[HEAD], 64, 0, &head);
    if (!st &&
        ne - window + 1 < STEPS) /* (a zero-padded partial chunk at the end makes one more) */
        st =
            gr_err(GRAFT_E_SHAPE, "self-check: %lld embeddings for %d steps", (long long)ne, STEPS);
    if (!st) gr_kw_head_score(head, *emb, ne, ref);
    gr_kw_head_free(head);
    gr_kw_frontend_free(fe);
    return st;
}

/* The joined model's embeddings e (STEPS, window, 96) and scores y (STEPS) against the
 * reference's: embeddings within 1e-4 of the largest, scores within 1e-4, no NaN. */
static int compare(const float *e, const float *y, const float *emb, const float *ref, int window,
                   double *max_diff)
{
    double d = 0, de = 0, big = 1; /* NaN fails every comparison below: no fmax, it drops NaN */
    int ok = 1;
    for (int s = 0; s < STEPS; s++) {
        for (int64_t i = 0; i < (int64_t)window * GR_KW_DIM; i++) {
            double a = e[(s * window) * GR_KW_DIM + i], b = emb[s * GR_KW_DIM + i],
                   diff = fabs(a - b);
            ok &= diff == diff;
            de = diff > de || diff != diff ? diff : de;
            big = fabs(b) > big ? fabs(b) : big;
        }
        double ds = fabs((double)y[s] - ref[s]);
        ok &= ds <= 1e-4 * fmax(1, fabs(ref[s])); /* probabilities, or logits for some heads */
        d = ds > d || ds != ds ? ds : d;          /* a NaN is kept and reported */
    }
    ok &= de <= 1e-4 * big;
    *max_diff = de > d ? de : d;
    if (ok) return GRAFT_OK;
    return gr_err(GRAFT_E_INTERNAL,
                  "the joined model differs from graft's front end + head: embeddings by %.3g "
                  "(largest %.3g), scores by %.3g",
                  de, big, d);
}

/* The written file, cut at its embeddings and score, run by graft on STEPS windows at once (rows:
 * (STEPS, S) samples) and compared with the reference. */
static int run_joined(const char *out_path, float *rows, int64_t S, int window, const float *emb,
                      const float *ref, double *max_diff)
{
    gr_graph *g = NULL;
    gr_plan *plan = NULL;
    gr_dnnl *dnnl = NULL;
    int st = gr_onnx_load(out_path, &g);
    if (!st) {
        const char *names[2] = { "frontend/embeddings", g->values[g->outputs[0]].name };
        st = gr_graph_cut(g, names, 2);
    }
    if (!st) st = gr_graph_optimize(g);
    if (!st) st = gr_dnnl_new(&dnnl);
    gr_tensor x = { .dtype = GR_F32,
                    .shape = gr_shape_make(2, (int64_t[]){ STEPS, S }),
                    .data = rows };
    gr_plan_opts po = { .dnnl = dnnl };
    if (!st) st = gr_plan_build(g, &x, &po, &plan);
    if (!st && (gr_numel(&gr_plan_output(plan, 0)->shape) != (int64_t)STEPS * window * GR_KW_DIM ||
                gr_numel(&gr_plan_output(plan, 1)->shape) != STEPS))
        st = gr_err(GRAFT_E_SHAPE, "%d windows give %lld embedding values and %lld scores", STEPS,
                    (long long)gr_numel(&gr_plan_output(plan, 0)->shape),
                    (long long)gr_numel(&gr_plan_output(plan, 1)->shape));
    if (!st) {
        gr_plan_run(plan, &x);
        st = compare(gr_plan_output(plan, 0)->data, gr_plan_output(plan, 1)->data, emb, ref, window,
                     max_diff);
    }
    gr_plan_free(plan);
    gr_graph_free(g);
    gr_dnnl_free(dnnl);
    return st;
}

/* The export's self-check: the written file against the front end + head, on its embeddings (the
 * scores of a head far from firing are too flat to show a framing error) and its scores. */
static int self_check(const kw_models *m, const char *out_path, int window, double *max_diff)
{
    const int64_t S = gr_kw_full_samples(window), n = S + (STEPS - 1) * (int64_t)GR_KW_HOP;
    float *audio = malloc((size_t)n * sizeof *audio),
          *rows = malloc((size_t)(STEPS * S) * sizeof *rows);
    float *emb = NULL, ref[STEPS + 64];
    int st = audio && rows ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
    if (!st) {
        check_audio(audio, n);
        for (int s = 0; s < STEPS; s++)
            memcpy(rows + s * S, audio + s * GR_KW_HOP, (size_t)S * sizeof *rows);
        st = reference(m, audio, n, window, &emb, ref);
    }
    if (!st) st = run_joined(out_path, rows, S, window, emb, ref, max_diff);
    if (st) st = gr_err_prefix(st, "checking %s", out_path);
    free(emb);
    free(rows);
    free(audio);
    return st;
}

/* The front-end models feed one value into the next: one input and one output each. */
static int one_in_one_out(const gr_graph *g, const char *path)
{
    if (g->ninputs == 1 && g->noutputs == 1) return GRAFT_OK;
    return gr_err(GRAFT_E_SHAPE,
                  "%s: %d inputs and %d outputs; openWakeWord's front-end models have one of each",
                  path, g->ninputs, g->noutputs);
}

/* Is b the file a names (both exist)? */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The joined graph's outputs: the head's, with their declared types; a shape declared for one
 * window gets a symbolic batch. */
static int add_outputs(gr_graph *g, const gr_graph *head, const int *outs)
{
    int st = GRAFT_OK;
    for (int i = 0; !st && i < head->noutputs; i++) {
        gr_value *o = &g->values[outs[i]];
        const gr_value *ho = &head->values[head->outputs[i]];
        o->t.dtype = ho->t.dtype;
        if (ho->has_shape && ho->t.shape.rank >= 1) {
            o->t.shape = ho->t.shape;
            o->t.shape.d[0] = -1;
            o->has_shape = 1;
        }
        st = gr_graph_add_output(g, outs[i]);
    }
    return st;
}

/* The three models joined into one and written to tmp; *window gets the head's. */
static int write_joined(const kw_models *m, const char *tmp, int *window)
{
    gr_graph *mel = NULL, *emb = NULL, *head = NULL, *g = NULL;
    int floor_db = 0, *outs = NULL;
    int st = copy_for_export(m, MEL, &mel);
    if (!st && (st = gr_kw_cut_before_floor(mel, &floor_db)))
        st = gr_err_prefix(st, "%s", m->path[MEL]);
    if (!st) st = one_in_one_out(mel, m->path[MEL]);
    if (!st) st = copy_for_export(m, EMB, &emb);
    if (!st) st = one_in_one_out(emb, m->path[EMB]);
    if (!st) st = copy_for_export(m, HEAD, &head);
    if (!st && (st = gr_kw_check_head_input(head, window)))
        st = gr_err_prefix(st, "%s: not a keyword head", m->path[HEAD]);
    if (!st) st = gr_graph_new(mel->opset, &g);
    if (!st)
        st = (outs = malloc((size_t)head->noutputs * sizeof *outs))
                 ? GRAFT_OK
                 : gr_err(GRAFT_E_NOMEM, "out of memory");
    if (!st) st = build_full(g, mel, floor_db, emb, head, *window, outs);
    if (!st) st = add_outputs(g, head, outs);
    if (!st) st = full_metadata(g, head, gr_kw_full_samples(*window));
    if (!st) st = gr_graph_sort(g);
    if (!st && (st = gr_onnx_save(g, tmp)))
        remove(tmp); /* (its commit can fail after its rename) */
    free(outs);
    gr_graph_free(mel);
    gr_graph_free(emb);
    gr_graph_free(head);
    gr_graph_free(g);
    return st;
}

int gr_kw_export_full(const char *mel_path, const char *emb_path, const char *head_path,
                      const char *out_path, int64_t *samples, double *max_diff, double *threshold)
{
    const char *inputs[3] = { head_path, mel_path, emb_path };
    for (int i = 0; i < 3; i++)
        if (same_file(inputs[i], out_path))
            return gr_err(GRAFT_E_ARG,
                          "%s: the output would replace an input (%s); give another file name",
                          out_path, inputs[i]);
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.%d.tmp", out_path, (int)getpid()) >= (int)sizeof tmp)
        return gr_err(GRAFT_E_ARG, "%s: the path is too long", out_path);
    /* written aside, checked, then renamed: a file that fails the check never replaces anything,
     * and tmp is gone on every failure (write_joined removes it when the write fails) */
    kw_models m = { .path = { mel_path, emb_path, head_path } };
    int window = 0, st = models_load(&m);
    if (!st) st = write_joined(&m, tmp, &window);
    if (st) {
        models_free(&m);
        return st;
    }
    double d = 0;
    st = self_check(&m, tmp, window, &d);
    if (!st && rename(tmp, out_path) != 0)
        st = gr_err(GRAFT_E_IO, "%s: cannot write the file: %s", out_path, strerror(errno));
    if (!st && threshold) *threshold = gr_kw_meta_threshold(m.g[HEAD]);
    models_free(&m);
    if (st) {
        remove(tmp);
        return st;
    }
    if (samples) *samples = gr_kw_full_samples(window);
    if (max_diff) *max_diff = d;
    return GRAFT_OK;
}
