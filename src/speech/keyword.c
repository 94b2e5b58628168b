/* keyword.c — the speech front end of openWakeWord, run by graft: 16 kHz audio ->
 * melspectrogram.onnx -> openWakeWord's scaling -> windows of 76 frames -> embedding_model.onnx
 * (Google's speech_embedding) -> one 96-d embedding per 80 ms.
 *
 * Framing and scaling follow openWakeWord's own code (dscripka/openWakeWord,
 * openwakeword/utils.py, AudioFeatures): the audio goes in at int16 scale (samples as float,
 * not divided by 32768); mel frames use a 512-sample window with a 160-sample hop; the
 * streaming path computes each 80 ms step (1280 samples) from that step plus 480 samples of
 * context (1760 samples -> 8 frames) and scales them with `x / 10 + 2` (_get_melspectrogram's
 * melspec_transform); an embedding is computed from the last 76 frames every 8 frames
 * (_get_embeddings: window_size 76, step 8); a head sees the last 16 embeddings (Model.predict,
 * model_inputs).
 *
 * Here chunk c covers samples [1280c, 1280c + 1760) and gives frames 8c .. 8c + 7; embedding t
 * uses the 76 frames that end with chunk t + 9, [8t + 4, 8t + 80), as openWakeWord's stream does
 * after each chunk (its batch helper starts windows at frame 0 instead), so embedding t's
 * evidence ends at sample 1280t + 13152 and a stream has it as soon as that chunk is in. (The
 * grid is openWakeWord's shifted by 480 samples.)
 *
 * One detail makes a batch differ from openWakeWord's one-chunk calls: melspectrogram.onnx ends
 * with a ReduceMax over its whole input (the "80 dB below the maximum" floor of a dB
 * spectrogram), so a batch of chunks would share one floor. graft cuts the model at that
 * ReduceMax's input and applies the floor per chunk, which is what openWakeWord computes,
 * chunk by chunk, in a batch. */
#include "speech.h"

#include "graph/graph.h"
#include "io/io.h"
#include "ops/dnnl_util.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct gr_kw_frontend {
    gr_graph *mel, *emb;
    gr_plan *mel_plan, *emb_plan;
    gr_dnnl *dnnl;
    int floor_db;             /* the mel model was cut before its ReduceMax: apply the floor here */
    int mel_batch, emb_batch; /* the plans' batch sizes (1 and 1 for a stream) */
    float *chunks;            /* (mel_batch, GR_KW_CHUNK) */
    float *windows;           /* (emb_batch, GR_KW_WINDOW, GR_KW_MELS, 1) */
};

void gr_kw_frontend_free(gr_kw_frontend *fe)
{
    if (!fe) return;
    gr_plan_free(fe->mel_plan);
    gr_plan_free(fe->emb_plan);
    gr_graph_free(fe->mel);
    gr_graph_free(fe->emb);
    gr_dnnl_free(fe->dnnl);
    free(fe->chunks);
    free(fe->windows);
    free(fe);
}

/* Cuts the mel model at the input of its ReduceMax when it has one (see the top); *floor_db
 * says whether it did. */
static int cut_before_floor(gr_graph *g, int *floor_db)
{
    *floor_db = 0;
    for (int k = 0; k < g->nnodes; k++)
        if (!strcmp(g->nodes[k].op_type, "ReduceMax") && g->nodes[k].nin >= 1) {
            const char *name = g->values[g->nodes[k].in[0]].name;
            *floor_db = 1;
            return gr_graph_cut(g, &name, 1);
        }
    return GRAFT_OK;
}

/* A keyword head's input: (batch, window, 96) embeddings, window 1..1024; *window gets it. */
static int check_head_input(const gr_graph *g, int *window)
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

/* The mel model, cut before its dB floor. */
static int load_mel(const char *path, gr_graph **out, int *floor_db)
{
    gr_graph *g;
    int st = gr_onnx_load(path, &g);
    if (st) return st;
    if ((st = gr_graph_check_ops(g)) || (st = cut_before_floor(g, floor_db))) goto fail;
    if ((st = gr_graph_optimize(g))) goto fail;
    *out = g;
    return GRAFT_OK;
fail:
    gr_graph_free(g);
    return gr_err_prefix(st, "%s", path);
}

static int load_plain(const char *path, gr_graph **out)
{
    gr_graph *g;
    int st = gr_onnx_load(path, &g);
    if (st) return st;
    if ((st = gr_graph_check_ops(g)) || (st = gr_graph_optimize(g))) {
        gr_graph_free(g);
        return gr_err_prefix(st, "%s", path);
    }
    *out = g;
    return GRAFT_OK;
}

static int check_shape(const gr_tensor *t, const int64_t *want, int rank, const char *path,
                       const char *what)
{
    int ok = t->shape.rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = t->shape.d[i] == want[i];
    if (ok) return GRAFT_OK;
    char got[128];
    return gr_err(GRAFT_E_SHAPE,
                  "%s: %s has shape %s; openWakeWord's model gives (%lld, %lld, %lld, %lld)", path,
                  what, gr_shape_str(&t->shape, got, sizeof got), (long long)want[0],
                  (long long)want[1], (long long)want[2], (long long)want[3]);
}

int gr_kw_frontend_new(const char *mel_path, const char *emb_path, int stream, int use_ref,
                       gr_kw_frontend **out)
{
    gr_kw_frontend *fe = calloc(1, sizeof *fe);
    if (!fe) return gr_err(GRAFT_E_NOMEM, "out of memory");
    fe->mel_batch = stream ? 1 : 32;
    fe->emb_batch = stream ? 1 : 64;
    fe->chunks = calloc((size_t)fe->mel_batch * GR_KW_CHUNK, sizeof(float));
    fe->windows = calloc((size_t)fe->emb_batch * GR_KW_WINDOW * GR_KW_MELS, sizeof(float));
    int st = fe->chunks && fe->windows ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
    if (!st) st = gr_dnnl_new(&fe->dnnl);
    if (!st) st = load_mel(mel_path, &fe->mel, &fe->floor_db);
    if (!st) st = load_plain(emb_path, &fe->emb);
    gr_plan_opts po = { .use_ref = use_ref, .dnnl = fe->dnnl };
    if (!st) {
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(2, (int64_t[]){ fe->mel_batch, GR_KW_CHUNK }) };
        st = gr_plan_build(fe->mel, &x, &po, &fe->mel_plan);
        if (st) st = gr_err_prefix(st, "%s", mel_path);
        else
            st = check_shape(gr_plan_output(fe->mel_plan, 0),
                             (int64_t[]){ fe->mel_batch, 1, GR_KW_FRAMES_PER_HOP, GR_KW_MELS }, 4,
                             mel_path, "the mel output for 1760 samples");
    }
    if (!st) {
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(
                            4, (int64_t[]){ fe->emb_batch, GR_KW_WINDOW, GR_KW_MELS, 1 }) };
        st = gr_plan_build(fe->emb, &x, &po, &fe->emb_plan);
        if (st) st = gr_err_prefix(st, "%s", emb_path);
        else
            st = check_shape(gr_plan_output(fe->emb_plan, 0),
                             (int64_t[]){ fe->emb_batch, 1, 1, GR_KW_DIM }, 4, emb_path,
                             "the embedding of 76 frames");
    }
    if (st) {
        gr_kw_frontend_free(fe);
        return st;
    }
    *out = fe;
    return GRAFT_OK;
}

int64_t gr_kw_num_frames(int64_t nsamples)
{
    return nsamples <= 0 ? 0 : GR_KW_FRAMES_PER_HOP * ((nsamples + GR_KW_HOP - 1) / GR_KW_HOP);
}

/* The first frame of embedding 0: its window ends with the 10th chunk (see the top). */
#define FIRST_FRAME (GR_KW_CHUNKS_PER_EMB * GR_KW_FRAMES_PER_HOP - GR_KW_WINDOW)

int64_t gr_kw_num_embeddings(int64_t nframes)
{
    int64_t nchunk = nframes / GR_KW_FRAMES_PER_HOP;
    return nchunk < GR_KW_CHUNKS_PER_EMB ? 0 : nchunk - GR_KW_CHUNKS_PER_EMB + 1;
}

double gr_kw_embedding_end(int64_t t)
{
    return (double)(GR_KW_HOP * t + 160 * ((GR_KW_CHUNKS_PER_EMB * GR_KW_FRAMES_PER_HOP) - 1) +
                    512) /
           GR_KW_RATE;
}

/* openWakeWord's scaling of one chunk's 8 frames, with the per-chunk floor when the model was
 * cut before it: max(x, max(x) - 80) / 10 + 2. */
static void scale_chunk(const float *db, float *mel, int floor_db)
{
    const int n = GR_KW_FRAMES_PER_HOP * GR_KW_MELS;
    float lo = -INFINITY;
    if (floor_db) {
        float mx = -INFINITY;
        for (int i = 0; i < n; i++) mx = db[i] > mx ? db[i] : mx;
        lo = mx - 80.0f;
    }
    for (int i = 0; i < n; i++) mel[i] = (db[i] > lo ? db[i] : lo) / 10.0f + 2.0f;
}

/* Runs the mel plan on fe->chunks (rows filled by the caller) and scales rows 0..b-1 into mel. */
static void run_mel(gr_kw_frontend *fe, int b, float *mel)
{
    gr_tensor x = { .dtype = GR_F32,
                    .shape = gr_shape_make(2, (int64_t[]){ fe->mel_batch, GR_KW_CHUNK }),
                    .data = fe->chunks };
    gr_plan_run(fe->mel_plan, &x);
    const float *y = gr_plan_output(fe->mel_plan, 0)->data;
    const int per = GR_KW_FRAMES_PER_HOP * GR_KW_MELS;
    for (int i = 0; i < b; i++)
        scale_chunk(y + (size_t)i * per, mel + (size_t)i * per, fe->floor_db);
}

/* Runs the embedding plan on fe->windows and copies rows 0..b-1 into emb. */
static void run_emb(gr_kw_frontend *fe, int b, float *emb)
{
    gr_tensor x = { .dtype = GR_F32,
                    .shape =
                        gr_shape_make(4, (int64_t[]){ fe->emb_batch, GR_KW_WINDOW, GR_KW_MELS, 1 }),
                    .data = fe->windows };
    gr_plan_run(fe->emb_plan, &x);
    memcpy(emb, gr_plan_output(fe->emb_plan, 0)->data, (size_t)b * GR_KW_DIM * sizeof(float));
}

void gr_kw_mel(gr_kw_frontend *fe, const float *audio, int64_t n, float *mel)
{
    int64_t nchunk = gr_kw_num_frames(n) / GR_KW_FRAMES_PER_HOP;
    for (int64_t c0 = 0; c0 < nchunk; c0 += fe->mel_batch) {
        int b = (int)(nchunk - c0 < fe->mel_batch ? nchunk - c0 : fe->mel_batch);
        for (int i = 0; i < fe->mel_batch; i++) {
            float *row = fe->chunks + (size_t)i * GR_KW_CHUNK;
            int64_t start = (c0 + i) * GR_KW_HOP;
            for (int j = 0; j < GR_KW_CHUNK; j++) {
                int64_t k = start + j;
                row[j] = i < b && k < n ? audio[k] * 32768.0f
                                        : 0.0f; /* int16 scale, zeros past the end */
            }
        }
        run_mel(fe, b, mel + (size_t)c0 * GR_KW_FRAMES_PER_HOP * GR_KW_MELS);
    }
}

void gr_kw_embed_frames(gr_kw_frontend *fe, const float *mel, int64_t nframes, float *emb)
{
    int64_t ne = gr_kw_num_embeddings(nframes);
    const size_t win = (size_t)GR_KW_WINDOW * GR_KW_MELS;
    for (int64_t t0 = 0; t0 < ne; t0 += fe->emb_batch) {
        int b = (int)(ne - t0 < fe->emb_batch ? ne - t0 : fe->emb_batch);
        for (int i = 0; i < b; i++)
            memcpy(fe->windows + i * win,
                   mel + ((size_t)(t0 + i) * GR_KW_FRAMES_PER_HOP + FIRST_FRAME) * GR_KW_MELS,
                   win * sizeof(float));
        run_emb(fe, b, emb + (size_t)t0 * GR_KW_DIM);
    }
}

int gr_kw_embed(gr_kw_frontend *fe, const float *audio, int64_t n, float **mel_out,
                int64_t *nframes, float **emb_out, int64_t *nemb)
{
    int64_t nf = gr_kw_num_frames(n), ne = gr_kw_num_embeddings(nf);
    float *mel = malloc((size_t)(nf ? nf : 1) * GR_KW_MELS * sizeof(float));
    float *emb = malloc((size_t)(ne ? ne : 1) * GR_KW_DIM * sizeof(float));
    if (!mel || !emb) {
        free(mel);
        free(emb);
        return gr_err(GRAFT_E_NOMEM, "out of memory for %lld mel frames", (long long)nf);
    }
    gr_kw_mel(fe, audio, n, mel);
    gr_kw_embed_frames(fe, mel, nf, emb);
    if (mel_out) *mel_out = mel;
    else free(mel);
    *emb_out = emb;
    *nframes = nf;
    *nemb = ne;
    return GRAFT_OK;
}

/* ---- keyword heads: (B, W, 96) embeddings -> (B, 1) score ---- */

struct gr_kw_head {
    gr_graph *g;
    gr_plan *plan;
    gr_dnnl *dnnl;
    int batch, window;
    float *in; /* (batch, window, 96) */
};

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
    gr_kw_head *h = calloc(1, sizeof *h);
    if (!h) return gr_err(GRAFT_E_NOMEM, "out of memory");
    h->batch = batch > 0 ? batch : 64;
    int st = gr_onnx_load(path, &h->g);
    if (st) { /* the loader's message names the file already */
        free(h);
        return st;
    }
    st = gr_graph_check_ops(h->g);
    if (!st) st = check_head_input(h->g, &h->window);
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

/* ---- the live path: audio in any pieces -> a score per 80 ms step ---- */

struct gr_kw_stream {
    gr_kw_frontend *fe; /* stream plans (batch 1), not owned */
    gr_kw_head *head;   /* batch 1, not owned */
    float audio[GR_KW_CHUNK];
    int have;               /* samples of the current chunk so far */
    int64_t pushed, chunks; /* samples received, chunks done */
    float mel[GR_KW_CHUNKS_PER_EMB * GR_KW_FRAMES_PER_HOP *
              GR_KW_MELS]; /* the last 10 chunks' frames */
    float *emb;            /* the last `window` embeddings */
    int64_t nemb;
    int ended; /* flushed: the grid and its context are gone */
};

int gr_kw_stream_new(gr_kw_frontend *fe, gr_kw_head *head, gr_kw_stream **out)
{
    if (fe->mel_batch != 1 || fe->emb_batch != 1 || head->batch != 1)
        return gr_err(GRAFT_E_ARG,
                      "gr_kw_stream_new: needs a stream front end and a head of batch 1");
    gr_kw_stream *s = calloc(1, sizeof *s);
    if (s) s->emb = calloc((size_t)head->window * GR_KW_DIM, sizeof(float));
    if (!s || !s->emb) {
        free(s);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    s->fe = fe;
    s->head = head;
    *out = s;
    return GRAFT_OK;
}

void gr_kw_stream_free(gr_kw_stream *s)
{
    if (!s) return;
    free(s->emb);
    free(s);
}

/* Chunk complete (zero-padded at the end of a stream): frames, maybe an embedding, maybe a score. */
static int stream_chunk(gr_kw_stream *s, float *score)
{
    gr_kw_frontend *fe = s->fe;
    for (int j = 0; j < GR_KW_CHUNK; j++)
        fe->chunks[j] = j < s->have ? s->audio[j] * 32768.0f : 0.0f;
    const int per = GR_KW_FRAMES_PER_HOP * GR_KW_MELS, nmel = (int)(sizeof s->mel / sizeof *s->mel);
    memmove(s->mel, s->mel + per, (size_t)(nmel - per) * sizeof(float));
    run_mel(fe, 1, s->mel + nmel - per);
    s->chunks++;
    int keep = s->have > GR_KW_HOP ? s->have - GR_KW_HOP : 0;
    memmove(s->audio, s->audio + GR_KW_HOP, (size_t)keep * sizeof(float));
    s->have = keep;
    if (s->chunks < GR_KW_CHUNKS_PER_EMB) return 0;
    memcpy(fe->windows, s->mel + FIRST_FRAME * GR_KW_MELS,
           (size_t)GR_KW_WINDOW * GR_KW_MELS * sizeof(float));
    int w = s->head->window;
    memmove(s->emb, s->emb + GR_KW_DIM, (size_t)(w - 1) * GR_KW_DIM * sizeof(float));
    run_emb(fe, 1, s->emb + (size_t)(w - 1) * GR_KW_DIM);
    if (++s->nemb < w) return 0;
    gr_kw_head_score(s->head, s->emb, w, score);
    return 1;
}

int64_t gr_kw_stream_push(gr_kw_stream *s, const float *x, int64_t n, float *scores)
{
    if (s->ended) return -1;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        s->audio[s->have++] = x[i];
        s->pushed++;
        if (s->have == GR_KW_CHUNK) k += stream_chunk(s, scores + k);
    }
    return k;
}

int64_t gr_kw_stream_flush(gr_kw_stream *s, float *scores)
{
    int64_t k = 0;
    while (s->chunks * GR_KW_HOP < s->pushed) k += stream_chunk(s, scores + k);
    s->ended = 1;
    return k;
}

int64_t gr_kw_stream_steps(const gr_kw_stream *s) { return s->nemb; }

/* ---- the whole detector as one ONNX model ---- */

/* A model file for appending: loaded, ops checked, Constant nodes as initializers. */
static int load_for_export(const char *path, gr_graph **out)
{
    gr_graph *g;
    int st = gr_onnx_load(path, &g);
    if (st) return st;
    if ((st = gr_graph_check_ops(g)) || (st = gr_graph_inline_constants(g, NULL))) {
        gr_graph_free(g);
        return gr_err_prefix(st, "%s", path);
    }
    *out = g;
    return GRAFT_OK;
}

/* A node with one new float output named `name`. */
static int node1(gr_graph *g, const char *op, const int *in, int nin, const char *name,
                 const gr_attr *a, int na, int *out)
{
    int st = gr_graph_add_value(g, name, GR_F32, NULL, NULL, out);
    return st ? st : gr_graph_add_node(g, name, op, in, nin, out, 1, a, na, NULL);
}

static int const_f32(gr_graph *g, const char *name, float x, int *out)
{
    gr_shape s = gr_shape_make(0, NULL);
    return gr_graph_add_value(g, name, GR_F32, &s, &x, out);
}

static int const_i64(gr_graph *g, const char *name, int rank, const int64_t *dims,
                     const int64_t *data, int *out)
{
    gr_shape s = gr_shape_make(rank, dims);
    return gr_graph_add_value(g, name, GR_I64, &s, data, out);
}

/* Reshape x to `shape` (rank dims, -1 for the batch). */
static int reshape(gr_graph *g, int x, const char *name, int rank, const int64_t *shape, int *out)
{
    char sname[96];
    snprintf(sname, sizeof sname, "%s.shape", name);
    int s, st = const_i64(g, sname, 1, (int64_t[]){ rank }, shape, &s);
    return st ? st : node1(g, "Reshape", (int[]){ x, s }, 2, name, NULL, 0, out);
}

/* Gather along axis 1 with a (rows, len) int64 index table: row r holds the `len` consecutive
 * positions from start + stride * r. */
static int gather_rows(gr_graph *g, int x, const char *name, int64_t rows, int64_t len,
                       int64_t start, int64_t stride, int *out)
{
    int64_t *idx = malloc((size_t)(rows * len) * sizeof *idx);
    if (!idx) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < len; j++) idx[r * len + j] = start + stride * r + j;
    char iname[96];
    snprintf(iname, sizeof iname, "%s.index", name);
    int ix, st = const_i64(g, iname, 2, (int64_t[]){ rows, len }, idx, &ix);
    free(idx);
    gr_attr axis = { .name = "axis", .type = GR_AT_INT, .i = 1 };
    return st ? st : node1(g, "Gather", (int[]){ x, ix }, 2, name, &axis, 1, out);
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
    int st = gr_graph_add_input(g, "audio", GR_F32, &in_shape, &x);
    if (!st) st = const_f32(g, "frontend/int16_scale", 32768.0f, &k32768);
    if (!st) st = node1(g, "Mul", (int[]){ x, k32768 }, 2, "frontend/pcm", NULL, 0, &pcm);
    if (!st)
        st = gather_rows(g, pcm, "frontend/chunks", nchunk, GR_KW_CHUNK, 0, GR_KW_HOP, &chunks);
    if (!st)
        st = reshape(g, chunks, "frontend/chunk_rows", 2, (int64_t[]){ -1, GR_KW_CHUNK }, &rows);
    if (!st) st = gr_graph_append(g, mel, "mel/", &rows, &m);
    if (!st && floor_db) { /* max(x, max over the chunk - 80), as scale_chunk */
        int64_t axes[3] = { 1, 2, 3 };
        gr_attr ax[2] = { { .name = "keepdims", .type = GR_AT_INT, .i = 1 },
                          { .name = "axes", .type = GR_AT_INTS, .n = 3, .ints = axes } };
        if (g->opset < 18) {
            st = node1(g, "ReduceMax", &m, 1, "frontend/chunk_max", ax, 2, &t);
        } else { /* opset 18 made the axes an input */
            int va;
            st = const_i64(g, "frontend/chunk_axes", 1, (int64_t[]){ 3 }, axes, &va);
            if (!st)
                st = node1(g, "ReduceMax", (int[]){ m, va }, 2, "frontend/chunk_max", ax, 1, &t);
        }
        if (!st) st = const_f32(g, "frontend/80db", 80.0f, &c80);
        if (!st) st = node1(g, "Sub", (int[]){ t, c80 }, 2, "frontend/floor", NULL, 0, &lo);
        if (!st) st = node1(g, "Max", (int[]){ m, lo }, 2, "frontend/floored", NULL, 0, &m);
    }
    if (!st) st = const_f32(g, "frontend/ten", 10.0f, &ten);
    if (!st) st = const_f32(g, "frontend/two", 2.0f, &two);
    if (!st) st = node1(g, "Div", (int[]){ m, ten }, 2, "frontend/mel_div", NULL, 0, &y);
    if (!st) st = node1(g, "Add", (int[]){ y, two }, 2, "frontend/mel_scaled", NULL, 0, &y);
    if (!st)
        st = reshape(g, y, "frontend/frames", 3, (int64_t[]){ -1, nframes, GR_KW_MELS }, &frames);
    if (!st)
        st = gather_rows(g, frames, "frontend/windows", window, GR_KW_WINDOW, FIRST_FRAME,
                         GR_KW_FRAMES_PER_HOP, &win);
    if (!st)
        st = reshape(g, win, "frontend/window_rows", 4,
                     (int64_t[]){ -1, GR_KW_WINDOW, GR_KW_MELS, 1 }, &win4);
    if (!st) st = gr_graph_append(g, emb, "embedding/", &win4, &e);
    if (!st)
        st = reshape(g, e, "frontend/embeddings", 3, (int64_t[]){ -1, window, GR_KW_DIM }, &e3);
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
    gr_meta *m = gr_arena_alloc(g->arena, (size_t)(head->nmeta + 1) * sizeof *m);
    if (!m) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = 0; i < head->nmeta; i++) {
        m[i].key = gr_arena_strdup(g->arena, head->meta[i].key);
        m[i].value = gr_arena_strdup(g->arena, head->meta[i].value);
        if (!m[i].key || !m[i].value) return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    m[head->nmeta].key = gr_arena_strdup(g->arena, "graft.pipeline");
    m[head->nmeta].value = gr_arena_strdup(g->arena, desc);
    if (!m[head->nmeta].key || !m[head->nmeta].value) return gr_err(GRAFT_E_NOMEM, "out of memory");
    g->meta = m;
    g->nmeta = head->nmeta + 1;
    return GRAFT_OK;
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

/* The written file, run by graft on 4 windows at once, against the front end + head: its
 * embeddings (the scores of a head far from firing are too flat to show a framing error) and
 * its scores. */
static int self_check(const char *mel_path, const char *emb_path, const char *head_path,
                      const char *out_path, int window, double *max_diff)
{
    enum { STEPS = 4 };
    const int64_t S = gr_kw_full_samples(window), n = S + (STEPS - 1) * (int64_t)GR_KW_HOP;
    float *audio = malloc((size_t)n * sizeof *audio),
          *rows = malloc((size_t)(STEPS * S) * sizeof *rows);
    float *emb = NULL, ref[STEPS + 64];
    int64_t nf, ne;
    gr_kw_frontend *fe = NULL;
    gr_kw_head *head = NULL;
    gr_graph *g = NULL;
    gr_plan *plan = NULL;
    gr_dnnl *dnnl = NULL;
    int st = audio && rows ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
    if (!st) {
        check_audio(audio, n);
        for (int s = 0; s < STEPS; s++)
            memcpy(rows + s * S, audio + s * GR_KW_HOP, (size_t)S * sizeof *rows);
        st = gr_kw_frontend_new(mel_path, emb_path, 0, 0, &fe);
    }
    if (!st) st = gr_kw_embed(fe, audio, n, NULL, &nf, &emb, &ne);
    if (!st) st = gr_kw_head_load(head_path, 64, 0, &head);
    if (!st &&
        ne - window + 1 < STEPS) /* (a zero-padded partial chunk at the end makes one more) */
        st =
            gr_err(GRAFT_E_SHAPE, "self-check: %lld embeddings for %d steps", (long long)ne, STEPS);
    if (!st) gr_kw_head_score(head, emb, ne, ref);
    if (!st) st = gr_onnx_load(out_path, &g);
    if (!st) {
        const char *names[2] = { "frontend/embeddings", g->values[g->outputs[0]].name };
        st = gr_graph_cut(g, names, 2);
    }
    if (!st) st = gr_graph_optimize(g);
    if (!st) st = gr_dnnl_new(&dnnl);
    if (!st) {
        gr_tensor x = { .dtype = GR_F32,
                        .shape = gr_shape_make(2, (int64_t[]){ STEPS, S }),
                        .data = rows };
        gr_plan_opts po = { .dnnl = dnnl };
        st = gr_plan_build(g, &x, &po, &plan);
        if (!st &&
            (gr_numel(&gr_plan_output(plan, 0)->shape) != (int64_t)STEPS * window * GR_KW_DIM ||
             gr_numel(&gr_plan_output(plan, 1)->shape) != STEPS))
            st = gr_err(GRAFT_E_SHAPE, "%d windows give %lld embedding values and %lld scores",
                        STEPS, (long long)gr_numel(&gr_plan_output(plan, 0)->shape),
                        (long long)gr_numel(&gr_plan_output(plan, 1)->shape));
        if (!st) {
            gr_plan_run(plan, &x);
            const float *e = gr_plan_output(plan, 0)->data, *y = gr_plan_output(plan, 1)->data;
            double d = 0, de = 0,
                   big = 1; /* NaN fails every comparison below: no fmax, it drops NaN */
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
                ok &= ds <=
                      1e-4 * fmax(1, fabs(ref[s])); /* probabilities, or logits for some heads */
                d = ds > d || ds != ds ? ds : d;    /* a NaN is kept and reported */
            }
            ok &= de <= 1e-4 * big;
            *max_diff = de > d ? de : d;
            if (!ok)
                st = gr_err(GRAFT_E_INTERNAL,
                            "the joined model differs from graft's front end + head: embeddings by "
                            "%.3g (largest %.3g), scores by %.3g",
                            de, big, d);
        }
    }
    if (st) st = gr_err_prefix(st, "checking %s", out_path);
    gr_plan_free(plan);
    gr_graph_free(g);
    gr_dnnl_free(dnnl);
    gr_kw_head_free(head);
    gr_kw_frontend_free(fe);
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

int gr_kw_export_full(const char *mel_path, const char *emb_path, const char *head_path,
                      const char *out_path, int64_t *samples, double *max_diff)
{
    gr_graph *mel = NULL, *emb = NULL, *head = NULL, *g = NULL;
    int floor_db = 0, window = 0, *outs = NULL;
    const char *inputs[3] = { head_path, mel_path, emb_path };
    for (int i = 0; i < 3; i++)
        if (same_file(inputs[i], out_path))
            return gr_err(GRAFT_E_ARG,
                          "%s: the output would replace an input (%s); give another file name",
                          out_path, inputs[i]);
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.%d.tmp", out_path, (int)getpid()) >= (int)sizeof tmp)
        return gr_err(GRAFT_E_ARG, "%s: the path is too long", out_path);
    int st = load_for_export(mel_path, &mel);
    if (!st && (st = cut_before_floor(mel, &floor_db))) st = gr_err_prefix(st, "%s", mel_path);
    if (!st) st = one_in_one_out(mel, mel_path);
    if (!st) st = load_for_export(emb_path, &emb);
    if (!st) st = one_in_one_out(emb, emb_path);
    if (!st) st = load_for_export(head_path, &head);
    if (!st && (st = check_head_input(head, &window)))
        st = gr_err_prefix(st, "%s: not a keyword head", head_path);
    if (!st) st = gr_graph_new(mel->opset, &g);
    if (!st)
        st = (outs = malloc((size_t)head->noutputs * sizeof *outs))
                 ? GRAFT_OK
                 : gr_err(GRAFT_E_NOMEM, "out of memory");
    if (!st) st = build_full(g, mel, floor_db, emb, head, window, outs);
    for (int i = 0; !st && i < head->noutputs; i++) {
        gr_value *o = &g->values[outs[i]], *ho = &head->values[head->outputs[i]];
        o->t.dtype = ho->t.dtype;
        if (ho->has_shape &&
            ho->t.shape.rank >= 1) { /* declared for one window: the batch is symbolic here */
            o->t.shape = ho->t.shape;
            o->t.shape.d[0] = -1;
            o->has_shape = 1;
        }
        st = gr_graph_add_output(g, outs[i]);
    }
    if (!st) st = full_metadata(g, head, gr_kw_full_samples(window));
    if (!st) st = gr_graph_sort(g);
    /* written aside, checked, then renamed: a file that fails the check never replaces anything */
    if (!st && (st = gr_onnx_save(g, tmp)))
        remove(tmp); /* (its commit can fail after its rename) */
    free(outs);
    gr_graph_free(mel);
    gr_graph_free(emb);
    gr_graph_free(head);
    gr_graph_free(g);
    if (st) return st;
    double d = 0;
    st = self_check(mel_path, emb_path, head_path, tmp, window, &d);
    if (!st && rename(tmp, out_path) != 0)
        st = gr_err(GRAFT_E_IO, "%s: cannot write the file: %s", out_path, strerror(errno));
    if (st) {
        remove(tmp);
        return st;
    }
    if (samples) *samples = gr_kw_full_samples(window);
    if (max_diff) *max_diff = d;
    return GRAFT_OK;
}
