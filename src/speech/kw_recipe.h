/* kw_recipe.h — a keyword detector from synthetic speech: the recipe behind `graft keyword train`
 * and `graft keyword eval`, and the internals its files share (corpus.c: what is said and by whom;
 * clips.c: the audio; cache.c: the features; kw_train.c: the head; kw_eval.c: thresholds and the
 * test). Private to those files; the rest of graft uses gr_kw_train / gr_kw_eval (speech.h).
 *
 * Data, made offline (synth.c): the keyword spoken by espeak-ng voices (8 English accents x
 * its ~100 voice variants, speeds 110-190 wpm, pitches 20-80), each clip through sox (no dither, repeatable; level
 * normalised to -12..-1 dBFS, tempo 0.85-1.15, a room-like EQ of bass/treble +-6 dB, reverb on
 * half of them, 2 s of lead-in and 0.8 s of tail), every other one followed, 50-300 ms after the
 * keyword, by the same voice saying a made-up sentence (as in "hey jarvis, what time is it":
 * without these a head learns that the keyword ends in silence and misses it in running speech),
 * then mixed in C with sox-made noise (white, pink, brown) at 5-25 dB SNR (4 clips in 5).
 * Negatives: everyday phrases, made-up sentences (a small grammar, see make_sentence) and near
 * misses of the keyword (its words alone, a first consonant changed, a word swapped for a name),
 * through the same voices and effects, and 1 in 20 without speech (silence, or noise at
 * -45..-15 dBFS). Voices are split: the accents en-029 and en-us-nyc and every 4th variant are
 * held out for testing and never trained on; the grammar's names are split three ways (training,
 * validation stream, test), and every stream of sentences has its own seed.
 *
 * Features: every clip through the speech front end (frontend.c) once; the embeddings (and mel
 * frames, for the from-scratch baseline) are cached in WORK/features in blocks of 25 items, each
 * keyed by its clips' specs and files and the front-end models (the negatives of a second
 * keyword differ from the first's in its near misses and a few filtered texts only).
 *
 * Examples: a window of 16 embeddings is positive when it ends 0-0.4 s after the keyword does
 * (the end found on the clean clip: its last sample above 5 % of the peak); every window of a
 * negative clip is negative; the rest of a positive clip is not used.
 *
 * Head: openWakeWord's shape, Flatten -> Gemm(H) -> Relu -> Gemm(H) -> Relu -> Gemm(1) (-> Sigmoid
 * in the exported model), trained with binary cross-entropy on class-balanced batches (half
 * positives), AdamW, cosine schedule, with hard-negative mining: after each epoch every training
 * negative is scored and a quarter of the next epoch's negatives come from the top 10 %. 10 % of
 * the clips (training voices) are held out for early stopping (balanced validation loss, best
 * weights kept); the threshold is the lowest at which a quarter of an hour of made-up sentences by
 * training voices (never trained on, validation names) gives at most target_fa false accepts per
 * hour, and never below 0.5.
 *
 * Test: held-out voices. Recall = the share of positive clips with a detection; false accepts
 * per hour = detections (1 s apart at least) on made-up sentences (their own stream, test names)
 * joined into recordings; and
 * recall at 1 false accept per hour, with the threshold set on that stream. */
#ifndef GR_KW_RECIPE_H
#define GR_KW_RECIPE_H

#include "speech.h"

#include "io/io.h"
#include "ops/dnnl_util.h"

#include <string.h>

/* ---- corpus.c: voices, texts, clip recipes and the planned sets ---- */

enum { GR_KW_MAX_VARIANTS = 256 };

/* espeak-ng's voice variants (its "!v" folder), in its order. */
typedef struct gr_kw_voices {
    char name[GR_KW_MAX_VARIANTS][32];
    int n;
} gr_kw_voices;

/* A clip's recipe; a synthetic clip's WAV is WORK/clips/<hash of voice, speed, pitch, text and
 * effects>.wav. */
typedef struct gr_kw_clip {
    char voice[64];
    int speed, pitch;
    char text[128];
    char effects[200];
    int positive;
    int noise; /* -1: none; 0 white, 1 pink, 2 brown */
    float snr_db;
    uint64_t noise_at; /* where in the noise bed the mix starts */
    char path[1024];   /* the clean WAV (a user's recording: that file) */
    int user;          /* a user's recording: no synthesis, no noise */
    int silent;        /* no speech: 4 s of silence, or of noise at level_db dBFS */
    float level_db;
} gr_kw_clip;

/* Clip file names (corpus.c) and feature-cache keys (cache.c) are core's FNV-1a (gr_fnv1a)
 * started from this value, not FNV's basis (GR_FNV1A_BASIS): the names already on users' disks
 * were made with it. gr_kw_fnv_str hashes a string with its terminating 0. */
#define GR_KW_FNV_START 1469598103934665603ULL
static inline uint64_t gr_kw_fnv_str(uint64_t h, const char *s)
{
    return gr_fnv1a(h, s, strlen(s) + 1);
}

/* The noise beds (clips.c): 30 s each of white, pink and brown noise at 16 kHz. */
typedef struct gr_kw_noise {
    gr_audio bed[3];
    double power[3]; /* mean square of each bed, computed once */
} gr_kw_noise;

/* Items are what the front end sees as one recording: one clip, or (the test stream) several
 * clips joined. */
typedef struct gr_kw_clipset {
    gr_kw_clip *c;
    int nclip;
    int *first, *count; /* item i = clips first[i] .. first[i] + count[i] - 1 */
    int nitem;
    float *emb, *mel;           /* all items' embeddings (rows of 96) and mel frames (rows of 32) */
    int64_t *emb_off, *mel_off; /* [nitem + 1] row offsets */
    float *end;                 /* [nitem]: the keyword's end (s) in a positive item, else -1 */
    double seconds;
    gr_arena *arena; /* a cached set's arrays */
    int owns;        /* emb/mel/... are malloc'd */
} gr_kw_clipset;

/* The training sets planned: the keyword's clips (synthetic, then the user's recordings) and the
 * negatives (near misses in a set of their own: the others depend on the keyword only where a
 * text would have contained it, so their features usually come from the cache for a second
 * keyword). *nuser gets the recordings' count. */
int gr_kw_plan_train_sets(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_clipset *pos,
                          gr_kw_clipset *neg, gr_kw_clipset *near_set, int *nuser);
/* The test sets, from held-out voices only: clips of the keyword, and made-up everyday sentences
 * of their own stream joined into recordings until test_hours of audio. */
int gr_kw_plan_test_sets(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_clipset *pos,
                         gr_kw_clipset *neg);
/* Made-up everyday sentences (sentence stream `stream`) joined into recordings of 75 clips,
 * `hours` of them: with training voices (test 0) the stream the threshold is set on, with
 * held-out voices the test's. */
int gr_kw_plan_phrase_stream(const gr_kw_train_opts *o, const gr_kw_voices *v, int test,
                             double hours, uint64_t stream, gr_kw_clipset *neg);
int gr_kw_list_voices(gr_kw_voices *v);
/* A keyword espeak-ng can say: letters, at most 100 characters, no control character. */
int gr_kw_check_keyword(const char *kw);
/* A synthetic clip's file name: 16 hex digits and ".wav" (a gr_tmp_target_fn). */
int gr_kw_is_clip_name(void *ctx, const char *name, size_t len);
void gr_kw_clipset_free(gr_kw_clipset *s);

/* ---- clips.c: the clips' audio, noise beds, the work folder ---- */

/* A file there with more than a WAV header. */
int gr_kw_file_exists(const char *path);
/* Synthesises the clips whose WAV is not there yet (`what` names the set in the notes). */
int gr_kw_synthesise(gr_kw_clip *c, int n, int parallel, const char *what, const gr_progress *p);
/* Item i's audio at 16 kHz: its clips one after the other, each mixed with its noise (a keyword
 * going on into a sentence: cut 50-300 ms after the keyword). *x is malloc'd; *end gets the
 * keyword's end (s) in a positive item, else stays as it was. */
int gr_kw_item_audio(const gr_kw_clipset *s, int i, const gr_kw_noise *nb, float **x, int64_t *n,
                     float *end);
/* The work folder ready (clips folder with stale temp files removed, noise beds), the voices
 * listed and the front end loaded. */
int gr_kw_prepare(const gr_kw_train_opts *o, gr_kw_voices *v, gr_kw_frontend **fe, gr_kw_noise *nb);
void gr_kw_free_noise(gr_kw_noise *nb);
/* espeak-ng speaks anything with letters, but a clip with no speech in it means it could not. */
int gr_kw_check_spoken(const gr_kw_clipset *pos, const char *kw);

/* ---- cache.c: the features of a set ---- */

/* Synthesis then features (from the cache or computed and cached) of a set; the seconds spent go
 * to res. */
int gr_kw_materialise(const gr_kw_train_opts *o, gr_kw_clipset *s, gr_kw_frontend *fe,
                      const gr_kw_noise *nb, const char *what, gr_kw_train_result *res);

/* ---- kw_train.c: examples (set, item, window) with the window's first embedding ---- */

typedef struct gr_kw_example {
    const gr_kw_clipset *s;
    int item, win;
} gr_kw_example;

enum {
    GR_KW_MEL_WINDOW = (GR_KW_HEAD_WINDOW - 1) * GR_KW_FRAMES_PER_HOP + GR_KW_WINDOW
}; /* 196 frames */

typedef struct gr_kw_exlist {
    gr_kw_example *e;
    int64_t n, cap;
} gr_kw_exlist;

int64_t gr_kw_item_windows(const gr_kw_clipset *s, int i);
/* Seconds from the item's start to the end of window w's evidence. */
double gr_kw_window_end(int w);
/* Logits of examples through an inference plan of g, 256 at a time. */
int gr_kw_score_examples(gr_graph *g, gr_dnnl *dnnl, int mel, const gr_kw_example *ex, int64_t n,
                         float *out);
int gr_kw_cmp_desc(const void *a, const void *b); /* floats, descending (qsort) */

/* ---- kw_eval.c: scores, thresholds, the test ---- */

typedef struct gr_kw_scores {
    float *p;
    int64_t *off;
    int n;
    double seconds;
} gr_kw_scores; /* per item */

void gr_kw_scores_free(gr_kw_scores *s);
/* Probabilities of every window of every item: through a head file (embedding heads, as
 * `graft keyword listen` runs them) or through the training graph (logits, mel heads). */
int gr_kw_score_set(const gr_kw_clipset *s, gr_kw_head *head, gr_graph *g, gr_dnnl *dnnl, int mel,
                    gr_kw_scores *out);
/* res->threshold: the lowest (never below 0.5) at which a quarter of an hour of made-up sentences
 * by training voices gives at most target_fa false accepts per hour, scored by the graph g. */
int gr_kw_choose_threshold(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_frontend *fe,
                           const gr_kw_noise *nb, gr_graph *g, gr_dnnl *dnnl, int mel,
                           gr_kw_train_result *res);
/* The test sets planned and materialised. */
int gr_kw_test_sets(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_frontend *fe,
                    const gr_kw_noise *nb, gr_kw_clipset *tp, gr_kw_clipset *tn,
                    gr_kw_train_result *res);
/* The test sets scored (by the head file, or by the graph g when head is NULL) and evaluated at
 * thr (stage "test": 0, 1, 2 of 2 sets scored). */
int gr_kw_test_scores(const gr_kw_train_opts *o, const gr_kw_clipset *tp, const gr_kw_clipset *tn,
                      gr_kw_head *head, gr_graph *g, gr_dnnl *dnnl, int mel, double thr,
                      gr_kw_train_result *res);
/* Recall, false accepts and recall at 1 false accept per hour of the test scores at thr. */
void gr_kw_evaluate(const gr_kw_scores *tp, const float *end, const gr_kw_scores *tn, double thr,
                    gr_kw_train_result *res);

#endif
