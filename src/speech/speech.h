/* speech — graft's speech module: WAV decoding and resampling (audio.c), speech clips made
 * offline with espeak-ng and sox (synth.c), openWakeWord's front end (frontend.c), keyword heads
 * (head.c), the live stream (stream.c), the one-model export (export.c), and keyword detectors
 * trained from synthetic speech (corpus.c, clips.c, cache.c, kw_train.c, kw_eval.c; their shared
 * internals are in kw_recipe.h). Depends on core, ops, graph, io, data and train; transfer does
 * not use it and it does not use transfer (the two are siblings, docs/ARCHITECTURE.md). The
 * module never prints: long calls report through a gr_progress. */
#ifndef GR_SPEECH_H
#define GR_SPEECH_H

#include "core/core.h"
#include "data/data.h"
#include "graph/graph.h"

/* ---- audio (audio.c): WAV files and resampling for the speech front end ---- */

/* Mono audio as float samples in [-1, 1); owned by its holder (gr_audio_free). */
typedef struct gr_audio {
    float *samples;
    int64_t n;
    int rate;           /* Hz */
    int channels, bits; /* as the file had them (before the mix-down) */
} gr_audio;

void gr_audio_free(gr_audio *a);
/* Decodes a WAV file: PCM 8/16/24/32-bit, float 32/64-bit, plain or WAVE_FORMAT_EXTENSIBLE, up to
 * 64 channels (mixed down to mono), a rate from 1000 Hz to the audio-rate limit and a length up to
 * the audio-seconds limit (both GRAFT_E_LIMIT beyond, checked from the header). Errors name the
 * file and what is wrong. */
int gr_wav_read(const char *path, gr_audio *out);
int gr_wav_decode_mem(const char *name, const uint8_t *data, size_t n, gr_audio *out);
/* Writes 16-bit mono PCM (samples clipped to [-1, 1)), atomically (gr_wfile: the old file or the
 * new one, never a part). */
int gr_wav_write(const char *path, const float *samples, int64_t n, int rate);
/* Band-limited resampling to `rate` (Kaiser-windowed sinc, polyphase, exact rational ratio);
 * a copy when the rates are equal. out gets new samples. Rates from 1000 Hz (GRAFT_E_ARG
 * otherwise); the cost is bounded by the output's length whatever the rate pair. */
int gr_audio_resample(const gr_audio *in, int rate, gr_audio *out);

/* ---- speech clips made offline (synth.c): espeak-ng piped into sox ---- */

typedef struct gr_speak_job {
    const char *voice; /* espeak-ng voice, e.g. "en-us+m3" (accent + variant) */
    int speed, pitch;  /* words per minute (80..450), pitch 0..99 */
    const char *text;
    const char *out;   /* the WAV to write: 16-bit, 16 kHz, mono */
    char effects[512]; /* sox effects applied on the way, space-separated ("tempo 1.1 gain -3") */
} gr_speak_job;

/* Makes every clip, `parallel` at a time; stops at the first failure, naming the voice and text
 * or the sox effects and the tool's own message (their stderr is captured, never the user's).
 * A clip is renamed into place only when both programs exited 0, sox reported no failure and the
 * clip reads back as a valid WAV: sox exits 0 after failing to write it (a full disk), which is a
 * failure naming the clip.
 * progress (may be NULL) gets stage "synthesize", done/total clips, after each wave. */
int gr_speak(const gr_speak_job *jobs, int n, int parallel, const gr_progress *progress);
/* Runs a program (found on PATH) with argv, stdout discarded; fails naming it and the end of its
 * stderr on a non-zero exit. */
int gr_run_tool(char *const argv[]);

/* ==== speech front end (frontend.c): openWakeWord's melspectrogram + speech embedding ====== */

enum {
    GR_KW_RATE = 16000, /* the models' sample rate */
    GR_KW_HOP = 1280,   /* 80 ms: one step of the stream, 8 mel frames, one embedding */
    GR_KW_CHUNK = 1760, /* samples the mel model sees per step (the step + 480 context) */
    GR_KW_FRAMES_PER_HOP = 8,
    GR_KW_MELS = 32,
    GR_KW_WINDOW = 76,         /* mel frames per embedding */
    GR_KW_DIM = 96,            /* embedding size */
    GR_KW_HEAD_WINDOW = 16,    /* embeddings per head input (1.28 s) */
    GR_KW_CHUNKS_PER_EMB = 10, /* an embedding's 76 frames end with the 10th chunk */
    /* the first frame of embedding 0: its window ends with the 10th chunk (frontend.c) */
    GR_KW_FIRST_FRAME = GR_KW_CHUNKS_PER_EMB * GR_KW_FRAMES_PER_HOP - GR_KW_WINDOW
};

typedef struct gr_kw_frontend gr_kw_frontend;

/* Loads melspectrogram.onnx and embedding_model.onnx and builds their plans once: for batches
 * of 32 chunks and 64 windows, or (stream) one of each, for the live path. */
int gr_kw_frontend_new(const char *mel_path, const char *emb_path, int stream, int use_ref,
                       gr_kw_frontend **out);
/* The same from graphs already parsed (taken over, freed with the front end, also on failure);
 * the paths name them in messages. */
int gr_kw_frontend_from(gr_graph *mel, const char *mel_path, gr_graph *emb, const char *emb_path,
                        int stream, int use_ref, gr_kw_frontend **out);
void gr_kw_frontend_free(gr_kw_frontend *fe);
/* Mel frames for n samples (8 per started 80 ms step) and embeddings for that many frames. */
int64_t gr_kw_num_frames(int64_t nsamples);
int64_t gr_kw_num_embeddings(int64_t nframes);
/* Seconds from the start of the audio to the end of embedding t's evidence. */
double gr_kw_embedding_end(int64_t t);
/* 16 kHz audio in [-1, 1) -> scaled mel frames (gr_kw_num_frames(n), 32). */
void gr_kw_mel(gr_kw_frontend *fe, const float *audio, int64_t n, float *mel);
/* Mel frames -> embeddings (gr_kw_num_embeddings(nframes), 96). */
void gr_kw_embed_frames(gr_kw_frontend *fe, const float *mel, int64_t nframes, float *emb);
/* Both, into malloc'd arrays (mel_out may be NULL). */
int gr_kw_embed(gr_kw_frontend *fe, const float *audio, int64_t n, float **mel_out,
                int64_t *nframes, float **emb_out, int64_t *nemb);
/* For the stream (a front end made with stream = 1): the 8 scaled frames of one chunk, `have`
 * samples of audio zero-padded to 1760; one embedding from 76 consecutive frames. */
int gr_kw_frontend_is_stream(const gr_kw_frontend *fe);
void gr_kw_mel_step(gr_kw_frontend *fe, const float *audio, int have, float *mel);
void gr_kw_embed_step(gr_kw_frontend *fe, const float *frames, float *emb);
/* melspectrogram.onnx ends with a ReduceMax over its whole input (the dB floor); this cuts the
 * graph at that ReduceMax's input, and *floor_db says whether it did (the floor is then applied
 * per chunk: frontend.c, export.c). */
int gr_kw_cut_before_floor(gr_graph *g, int *floor_db);

/* ---- keyword heads (head.c) ---- */

/* A keyword head (openWakeWord's shape: (batch, window, 96) embeddings -> (batch, 1) score),
 * planned for `batch` windows at a time (0: 64). */
typedef struct gr_kw_head gr_kw_head;
int gr_kw_head_load(const char *path, int batch, int use_ref, gr_kw_head **out);
/* The same from a graph already parsed (taken over, also on failure); path names it. */
int gr_kw_head_from(gr_graph *g, const char *path, int batch, int use_ref, gr_kw_head **out);
/* A head's metadata graft.threshold (keyword train writes it) when in (0, 1), else 0.5. */
double gr_kw_meta_threshold(const gr_graph *g);
double gr_kw_head_threshold(const gr_kw_head *h); /* of the graph it was made from */
void gr_kw_head_free(gr_kw_head *h);
int gr_kw_head_window(const gr_kw_head *h);
int gr_kw_head_batch(const gr_kw_head *h);
/* A keyword head's input: (batch, window, 96) embeddings, window 1..1024; *window gets it. */
int gr_kw_check_head_input(const gr_graph *g, int *window);
/* Scores of every window of `window` consecutive embeddings: nemb - window + 1 of them, the
 * score of window s belonging to embedding s + window - 1 (the step it ends at). */
void gr_kw_head_score(gr_kw_head *h, const float *emb, int64_t nemb, float *scores);

/* ---- the live stream (stream.c) ----
 * The live path: samples in pieces of any size; a score per 80 ms step once a head window is
 * full, equal to the batch path on the same audio. push/flush write the new scores (at most
 * n / 1280 + 1, resp. 2) and return their count; flush zero-pads the last chunk as the batch
 * path does and ends the stream (a push after it returns -1). fe and head (batch 1, stream
 * plans) stay the caller's. */
typedef struct gr_kw_stream gr_kw_stream;
int gr_kw_stream_new(gr_kw_frontend *fe, gr_kw_head *head, gr_kw_stream **out);
void gr_kw_stream_free(gr_kw_stream *s);
int64_t gr_kw_stream_push(gr_kw_stream *s, const float *x, int64_t n, float *scores);
int64_t gr_kw_stream_flush(gr_kw_stream *s, float *scores);
int64_t gr_kw_stream_steps(const gr_kw_stream *s); /* embeddings made so far */

/* ---- the one-model export (export.c) ---- */

/* The whole detector as one ONNX model: 'audio' (batch, gr_kw_full_samples(window)) float 16 kHz
 * samples in [-1, 1) -> the head's score for the last 80 ms step (32480 samples for a head of 16
 * embeddings). The two front-end models and the head are joined with Gather-based framing (see
 * export.c); the head's metadata is kept and graft.pipeline describes the input. The file is
 * written aside, run by graft on 4 windows at once against the front end + head path (the
 * export's self-check: embeddings within 1e-4 of the largest, scores within 1e-4, no NaN), and
 * only then renamed to out_path. *samples, *max_diff and *threshold (each may be NULL) get the
 * input length, the largest difference the check saw and the head's threshold. Each input is
 * parsed once; the written file is read back once, by the check. */
int gr_kw_export_full(const char *mel_path, const char *emb_path, const char *head_path,
                      const char *out_path, int64_t *samples, double *max_diff, double *threshold);
int64_t gr_kw_full_samples(int window);

/* ==== keyword detectors from synthetic speech (kw_train.c, kw_eval.c; the recipe is described
 * in kw_recipe.h) ==== */

typedef struct gr_kw_train_opts {
    const char *keyword;
    const char *models_dir; /* melspectrogram.onnx and embedding_model.onnx */
    const char *work_dir;   /* synthesised clips, noise beds and the feature cache */
    int positives;          /* synthetic clips of the keyword to train on (500) */
    int negatives;          /* synthetic clips of other phrases and near misses (3000) */
    const char *recordings; /* a folder of the user's WAV recordings of the keyword, or NULL */
    int test_positives;     /* held-out voices saying the keyword (100) */
    double test_hours;      /* negative audio of held-out voices for false accepts (0.25) */
    double target_fa;       /* false accepts per hour the threshold aims at on validation (0.5) */
    int hidden;             /* the head's width (128, openWakeWord's) */
    int epochs, patience;   /* 30, 8 */
    double lr;              /* 1e-4 */
    double
        hard_frac; /* share of the negatives per batch drawn from the hardest 10 % (0.25; < 0: default) */
    int scratch;  /* the baseline: the same head on mel frames, no embedding network */
    int parallel; /* clips synthesised at once (4) */
    uint64_t seed;
    /* stages "synthesize" (clips), "embed" (recordings), "train" (epochs), "threshold", "test";
     * notes: each set's clips and features, each epoch's losses; warnings: a feature cache not
     * written, a threshold that misses its target. NULL fn: silent. */
    gr_progress progress;
} gr_kw_train_opts;

typedef struct gr_kw_train_result {
    int train_pos_clips, train_neg_clips, user_clips;
    int64_t pos_windows, neg_windows;
    int epochs, best_epoch;
    double val_loss;
    double threshold; /* chosen on validation (never below 0.5) */
    int test_pos_clips;
    double test_recall, test_hours, test_fa_per_hour; /* at the threshold */
    int64_t test_fa;
    double recall_at_1fa, threshold_at_1fa; /* threshold set on the test negatives */
    double seconds_synthesis, seconds_features, seconds_training;
} gr_kw_train_result;

/* Makes the data, trains a head and writes it to out_path (ONNX: (1, 16, 96) embeddings ->
 * (1, 1) probability, metadata graft.keyword / graft.threshold / graft.recipe), then evaluates it
 * on the held-out voices. */
int gr_kw_train(const gr_kw_train_opts *o, const char *out_path, gr_kw_train_result *res);
/* Evaluates a head file (openWakeWord's or graft's) on the same held-out test data. */
int gr_kw_eval(const char *head_path, const gr_kw_train_opts *o, gr_kw_train_result *res);

#endif
