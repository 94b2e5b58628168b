/* frontend.c — the speech front end of openWakeWord, run by graft: 16 kHz audio ->
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

#include <math.h>
#include <string.h>

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

/* Cuts the mel model at the input of its ReduceMax when it has one (see the top). */
int gr_kw_cut_before_floor(gr_graph *g, int *floor_db)
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

/* The mel model (g, from path), cut before its dB floor, rewritten for inference. */
static int prep_mel(gr_graph *g, const char *path, int *floor_db)
{
    int st = gr_graph_check_ops(g);
    if (!st) st = gr_kw_cut_before_floor(g, floor_db);
    if (!st) st = gr_graph_optimize(g);
    return st ? gr_err_prefix(st, "%s", path) : GRAFT_OK;
}

static int prep_plain(gr_graph *g, const char *path)
{
    int st = gr_graph_check_ops(g);
    if (!st) st = gr_graph_optimize(g);
    return st ? gr_err_prefix(st, "%s", path) : GRAFT_OK;
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
    gr_graph *mel = NULL, *emb = NULL;
    int st = gr_onnx_load(mel_path, &mel);
    if (!st) st = gr_onnx_load(emb_path, &emb);
    if (st) {
        gr_graph_free(mel);
        return st;
    }
    return gr_kw_frontend_from(mel, mel_path, emb, emb_path, stream, use_ref, out);
}

int gr_kw_frontend_from(gr_graph *mel, const char *mel_path, gr_graph *emb, const char *emb_path,
                        int stream, int use_ref, gr_kw_frontend **out)
{
    gr_kw_frontend *fe = calloc(1, sizeof *fe);
    if (!fe) {
        gr_graph_free(mel);
        gr_graph_free(emb);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    fe->mel = mel, fe->emb = emb; /* owned from here: gr_kw_frontend_free frees them */
    fe->mel_batch = stream ? 1 : 32;
    fe->emb_batch = stream ? 1 : 64;
    fe->chunks = calloc((size_t)fe->mel_batch * GR_KW_CHUNK, sizeof(float));
    fe->windows = calloc((size_t)fe->emb_batch * GR_KW_WINDOW * GR_KW_MELS, sizeof(float));
    int st = fe->chunks && fe->windows ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
    if (!st) st = gr_dnnl_new(&fe->dnnl);
    if (!st) st = prep_mel(fe->mel, mel_path, &fe->floor_db);
    if (!st) st = prep_plain(fe->emb, emb_path);
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
                   mel + ((size_t)(t0 + i) * GR_KW_FRAMES_PER_HOP + GR_KW_FIRST_FRAME) * GR_KW_MELS,
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

void gr_kw_mel_step(gr_kw_frontend *fe, const float *audio, int have, float *mel)
{
    for (int j = 0; j < GR_KW_CHUNK; j++) fe->chunks[j] = j < have ? audio[j] * 32768.0f : 0.0f;
    run_mel(fe, 1, mel);
}

void gr_kw_embed_step(gr_kw_frontend *fe, const float *frames, float *emb)
{
    memcpy(fe->windows, frames, (size_t)GR_KW_WINDOW * GR_KW_MELS * sizeof(float));
    run_emb(fe, 1, emb);
}

int gr_kw_frontend_is_stream(const gr_kw_frontend *fe)
{
    return fe->mel_batch == 1 && fe->emb_batch == 1;
}
