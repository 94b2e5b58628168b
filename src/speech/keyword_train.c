#define _GNU_SOURCE
/* keyword_train.c — a keyword detector from synthetic speech: the recipe behind
 * `graft keyword train` and `graft keyword eval`.
 *
 * Data, made offline (speech_synth.c): the keyword spoken by espeak-ng voices (8 English accents x
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
 * Features: every clip through the speech front end (keyword.c) once; the embeddings (and mel
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
#include "speech.h"

#include "graph/graph.h"
#include "io/io.h"
#include "ops/dnnl_util.h"
#include "train/train.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- voices ---- */

static const char *const ACCENTS[] = { "en-us",          "en-gb",      "en-gb-scotland",
                                       "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
                                       "en-029",         "en-us-nyc" };
enum { NACCENT = 8, TRAIN_ACCENTS = 6, MAX_VARIANTS = 256 };

typedef struct voices {
    char name[MAX_VARIANTS][32];
    int n;
} voices;

/* espeak-ng's voice variants (its "!v" folder), in its order. */
static int list_variants(voices *v)
{
    v->n = 0;
    FILE *p = popen("espeak-ng --voices=variant 2>/dev/null", "r");
    if (!p)
        return gr_err(GRAFT_E_IO, "cannot run espeak-ng: %s (install it: bash scripts/setup.sh)",
                      strerror(errno));
    char line[512];
    while (fgets(line, sizeof line, p) && v->n < MAX_VARIANTS) {
        char *f = strstr(line, "!v/");
        if (!f) continue;
        f += 3;
        size_t k = strcspn(f, " \t\n");
        if (k == 0 || k >= sizeof v->name[0]) continue;
        memcpy(v->name[v->n], f, k);
        v->name[v->n++][k] = 0;
    }
    int rc = pclose(p);
    if (v->n == 0 || rc != 0)
        return gr_err(GRAFT_E_IO, "espeak-ng lists no voice variants (is Debian's espeak-ng "
                                  "installed? run: bash scripts/setup.sh)");
    return GRAFT_OK;
}

static int variant_held_out(int i) { return i % 4 == 3; }

/* A voice "accent+variant" from the training or the held-out side. */
static void pick_voice(const voices *v, int test, gr_rng *r, char *out, size_t n)
{
    int a, i;
    if (test) {
        /* held out: a test accent with any variant, or any accent with a held-out variant */
        if (gr_rng_below(r, 2))
            a = TRAIN_ACCENTS + (int)gr_rng_below(r, NACCENT - TRAIN_ACCENTS),
            i = (int)gr_rng_below(r, (uint64_t)v->n);
        else {
            a = (int)gr_rng_below(r, NACCENT);
            do i = (int)gr_rng_below(r, (uint64_t)v->n);
            while (!variant_held_out(i) && v->n > 3);
        }
    } else {
        a = (int)gr_rng_below(r, TRAIN_ACCENTS);
        do i = (int)gr_rng_below(r, (uint64_t)v->n);
        while (variant_held_out(i) && v->n > 3);
    }
    snprintf(out, n, "%s+%s", ACCENTS[a], v->name[i]);
}

/* ---- phrases ---- */

static const char *const PHRASES[] = {
    "good morning",
    "hello there",
    "how are you",
    "what time is it",
    "turn on the lights",
    "turn off the radio",
    "play some music",
    "what is the weather like",
    "set a timer for ten minutes",
    "call my mother",
    "I will be there soon",
    "see you tomorrow",
    "thank you very much",
    "where are my keys",
    "open the door",
    "close the window",
    "it is raining again",
    "let us go outside",
    "the meeting starts at noon",
    "please send the report",
    "can you hear me",
    "I am hungry",
    "dinner is ready",
    "the train is late",
    "my phone is dead",
    "read me the news",
    "what is on the calendar",
    "remind me to buy milk",
    "how far is the station",
    "the cat is sleeping",
    "pass me the salt",
    "that sounds great",
    "I do not know",
    "maybe next week",
    "are you serious",
    "this is amazing",
    "stop the music",
    "volume up",
    "volume down",
    "next song please",
    "order a pizza",
    "who won the game",
    "tell me a joke",
    "how tall is the tower",
    "switch to channel five",
    "lock the front door",
    "start the dishwasher",
    "is it cold outside",
    "I need a coffee",
    "the kids are at school",
    "water the plants",
    "happy birthday",
    "good night everyone",
    "wake me up at seven",
    "let me think about it",
    "the printer is broken",
    "save the document",
    "the bus leaves at eight",
    "check my email",
    "how do you spell that",
    "a glass of water please",
    "the garden looks lovely",
    "what a nice day",
    "bring the umbrella",
    "I lost my wallet",
    "the movie was boring",
    "we should leave now",
    "do you have a pen",
    "the store is closed",
    "my favourite colour is blue",
    "just a moment",
    "nothing to see here",
    "keep it simple",
    "it was a long day",
    "how much does it cost",
    "the soup is too hot",
    "send a message to john",
    "the computer is slow",
    "let me know",
    "the sun is shining",
    "a piece of cake",
    "once upon a time",
    "practice makes perfect",
    "the quick brown fox",
    "jumps over the lazy dog",
    "seven eight nine ten",
    "one two three four",
    "hey there",
    "hey you",
    "okay google",
    "alexa play music",
    "hi everyone",
    "say that again",
    "harvest moon",
    "jars of honey",
    "service please",
    "nervous system",
    "travel plans",
    "hey darling",
};
enum { NPHRASES = sizeof PHRASES / sizeof *PHRASES };

/* ---- everyday sentences, made up: negatives for training, validation and test ----
 * A small grammar (statements, people addressing each other by name, questions, requests,
 * counts, reported speech) over a few hundred words: ~10^7 sentences, so the test's sentences are
 * (nearly all) ones the head never heard, as in use. Names include near rhymes of common keyword
 * words ("harvey", "travis", "marcus"): people say them. */
#define PICK(list) list[gr_rng_below(r, sizeof list / sizeof *list)]
static const char *const S_SUBJ[] = { "I",
                                      "we",
                                      "you",
                                      "they",
                                      "my brother",
                                      "my sister",
                                      "the teacher",
                                      "our neighbour",
                                      "the doctor",
                                      "my friend",
                                      "the children",
                                      "the manager",
                                      "nobody",
                                      "everyone",
                                      "the driver",
                                      "his mother",
                                      "her father",
                                      "the old man",
                                      "the girl next door",
                                      "my boss",
                                      "the new student",
                                      "our team" };
static const char *const S_VERB[] = {
    "bought",     "found",   "lost",       "painted",  "forgot",     "opened",      "borrowed",
    "cleaned",    "carried", "ordered",    "fixed",    "sold",       "wanted",      "needs",
    "likes",      "hates",   "will bring", "has seen", "is reading", "was cooking", "dropped",
    "remembered", "packed",  "returned",   "moved",    "checked"
};
static const char *const S_OBJ[] = {
    "a new car",         "the red umbrella",   "some fresh bread", "the kitchen table",
    "an old guitar",     "three tickets",      "the front gate",   "a cup of tea",
    "the blue notebook", "a birthday present", "the garden hose",  "my glasses",
    "the last train",    "a large box",        "the winter coat",  "two bottles of milk",
    "the broken chair",  "a small dog",        "the wooden boat",  "the paper map",
    "the grocery list",  "a bag of apples",    "the spare key",    "the morning paper",
    "a pair of shoes",   "the laptop charger"
};
static const char *const S_WHEN[] = {
    "yesterday",     "this morning",   "after lunch",      "on friday",        "last summer",
    "at the market", "in the evening", "before the storm", "near the station", "at the office",
    "every weekend", "in the kitchen", "after school",     "on the way home",  "last night",
    "for the party", "again",          "by mistake"
};
/* names: every third one in training, the next in the validation stream, the next only in the
 * test (a user's household has names the head never heard; the threshold is set on names it never
 * trained on, as the test's and a user's are) */
static const char *const S_NAME[] = { "john",   "mary",    "peter",  "sarah", "david",   "emma",
                                      "marcus", "julia",   "thomas", "anna",  "harvey",  "travis",
                                      "carlos", "jasmine", "arthur", "nora",  "lucas",   "olivia",
                                      "george", "sophie",  "mike",   "linda", "kevin",   "grace",
                                      "frank",  "helen",   "oscar",  "lily",  "victor",  "chloe",
                                      "daniel", "rachel",  "martin", "alice", "patrick", "zoe" };
enum { NNAMES = sizeof S_NAME / sizeof *S_NAME };

enum { NAMES_TRAIN, NAMES_VALIDATION, NAMES_TEST };
static const char *pick_name(gr_rng *r, int set)
{
    return S_NAME[3 * gr_rng_below(r, NNAMES / 3) + (uint64_t)set];
}
static const char *const S_CALL[] = { "hey",  "hi",    "excuse me", "listen",
                                      "look", "hello", "okay",      "sorry" };
static const char *const S_ASK[] = { "did you see",      "where did you put", "who took",
                                     "have you found",   "can you bring",     "do we still need",
                                     "what happened to", "why did they move", "is anyone using",
                                     "could you check" };
static const char *const S_DO[] = { "bring", "check", "clean",  "open", "find",
                                    "move",  "wrap",  "return", "pack", "fix" };
static const char *const S_NUM[] = { "two",   "three", "four", "five",   "six",    "seven",
                                     "eight", "nine",  "ten",  "twelve", "twenty", "a hundred" };
static const char *const S_MANY[] = { "apples",  "chairs",  "boxes",        "people",
                                      "cars",    "books",   "birds",        "cups",
                                      "letters", "windows", "minutes left", "messages" };
static const char *const S_WHERE[] = { "in the kitchen", "on the table", "outside",
                                       "in the car",     "upstairs",     "at the door",
                                       "in my bag",      "on the shelf", "in the garden",
                                       "at the station" };

static void make_sentence(gr_rng *r, int names, char *out, size_t n)
{
    switch (gr_rng_below(r, 6)) {
    case 0:
        snprintf(out, n, "%s %s %s %s", PICK(S_SUBJ), PICK(S_VERB), PICK(S_OBJ), PICK(S_WHEN));
        break;
    case 1:
        snprintf(out, n, "%s %s, %s %s %s", PICK(S_CALL), pick_name(r, names), PICK(S_SUBJ),
                 PICK(S_VERB), PICK(S_OBJ));
        break;
    case 2: snprintf(out, n, "%s %s %s", PICK(S_ASK), PICK(S_OBJ), PICK(S_WHEN)); break;
    case 3:
        snprintf(out, n, "please %s %s, %s", PICK(S_DO), PICK(S_OBJ), pick_name(r, names));
        break;
    case 4: snprintf(out, n, "there are %s %s %s", PICK(S_NUM), PICK(S_MANY), PICK(S_WHERE)); break;
    default:
        snprintf(out, n, "%s said %s %s %s", PICK(S_SUBJ), PICK(S_SUBJ), PICK(S_VERB), PICK(S_OBJ));
        break;
    }
}

/* Does text contain the keyword as whole words (case-blind)? A negative must not. */
static int says_keyword(const char *text, const char *kw)
{
    size_t k = strlen(kw);
    for (const char *p = text; *p; p++)
        if ((p == text || !isalpha((unsigned char)p[-1])) && strncasecmp(p, kw, k) == 0 &&
            !isalpha((unsigned char)p[k]))
            return 1;
    return 0;
}

/* Something to say that is not the keyword, when every draw was. */
static void clean_fallback(const char *kw, char *out, size_t n)
{
    snprintf(out, n, "%s", says_keyword("mm hmm", kw) ? "okay then" : "mm hmm");
}

/* Sentence i of stream `stream` (a fixed function of both; names from set `names`) without the
 * keyword (a keyword of common words may need a few draws; 1000 never happen). */
static void sentence(uint64_t stream, int64_t i, int names, const char *kw, char *out, size_t n)
{
    gr_rng r;
    gr_rng_seed(&r, stream * 1000003ULL + (uint64_t)i);
    for (int tries = 0; tries < 1000; tries++) {
        make_sentence(&r, names, out, n);
        if (!says_keyword(out, kw)) return;
    }
    clean_fallback(kw, out, n);
}

/* The keyword with one word swapped for a (training) name, "hey jarvis" -> "hey george", half
 * the time going on into a sentence: people call each other as they would call the device, and
 * a head that learned "hey + anything + speech" fires on them. */
static void swapped_word(const char *kw, uint64_t stream, int64_t i, char *out, size_t n)
{
    char buf[256], *words[8];
    int nw = 0;
    snprintf(buf, sizeof buf, "%s", kw);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && nw < 8;
         t = strtok_r(NULL, " ", &save))
        words[nw++] = t;
    gr_rng r;
    gr_rng_seed(&r, stream * 1000003ULL + (uint64_t)i);
    for (int tries = 0; tries < 100; tries++) {
        int j = nw ? (int)gr_rng_below(&r, (uint64_t)nw) : 0;
        const char *name = pick_name(&r, NAMES_TRAIN);
        out[0] = 0;
        for (int k = 0; k < nw || (nw == 0 && k == 0); k++) {
            size_t l = strlen(out);
            snprintf(out + l, n - l, "%s%s", k ? " " : "", k == j ? name : words[k]);
        }
        if (gr_rng_uniform(&r) < 0.5) {
            char tail[128];
            make_sentence(&r, NAMES_TRAIN, tail, sizeof tail);
            size_t l = strlen(out);
            if (l + 3 < n) { /* ", " + as much of the sentence as fits */
                memcpy(out + l, ", ", 3);
                strncat(out, tail, n - l - 3);
            }
        }
        if (!says_keyword(out, kw)) return;
    }
    clean_fallback(kw, out, n);
}
#undef PICK

/* The keyword's near misses: each word alone (for two or more words) and the keyword with one
 * word's first consonant changed ("hey jarvis" -> "hey barvis", "hey darvis", ...). */
static int near_misses(const char *kw, char out[][96], int max)
{
    char words[8][48];
    int nw = 0;
    char buf[256], lower[256];
    snprintf(buf, sizeof buf, "%s", kw);
    for (char *p = buf; *p; p++) *p = (char)tolower((unsigned char)*p);
    snprintf(lower, sizeof lower, "%s", buf);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && nw < 8;
         t = strtok_r(NULL, " ", &save))
        snprintf(words[nw++], sizeof words[0], "%s", t);
    int n = 0;
    for (int i = 0; nw > 1 && i < nw && n < max; i++) snprintf(out[n++], 96, "%.47s", words[i]);
    static const char swaps[] = "bdgkmnpstwl";
    for (int i = 0; i < nw; i++)
        for (const char *c = swaps; *c && n < max; c++) {
            if (words[i][0] == *c) continue;
            const char *vow = "aeiouy";
            int starts_vowel = strchr(vow, words[i][0] | 32) != NULL;
            char w[64];
            if (starts_vowel) snprintf(w, sizeof w, "%c%.47s", *c, words[i]);
            else snprintf(w, sizeof w, "%c%.46s", *c, words[i] + 1);
            out[n][0] = 0;
            for (int j = 0; j < nw; j++) {
                size_t l = strlen(out[n]);
                snprintf(out[n] + l, 96 - l, "%s%s", j ? " " : "", j == i ? w : words[j]);
            }
            if (strcmp(w, words[i]) && strcmp(out[n], lower)) n++; /* never the keyword itself */
        }
    return n;
}

/* ---- clips ---- */

typedef struct clip {
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
} clip;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}
static uint64_t fnv_str(uint64_t h, const char *s) { return fnv(h, s, strlen(s) + 1); }

/* A synthetic clip's file: named by the hash of what makes it (voice, speed, pitch, text, effects). */
static void clip_path(clip *c, const char *dir)
{
    char sp[32];
    snprintf(sp, sizeof sp, "%d %d", c->speed, c->pitch);
    uint64_t h = fnv_str(fnv_str(fnv_str(fnv_str(1469598103934665603ULL, c->voice), sp), c->text),
                         c->effects);
    snprintf(c->path, sizeof c->path, "%s/clips/%016llx.wav", dir, (unsigned long long)h);
}

static void synth_clip(clip *c, const voices *v, int test, const char *text, int positive,
                       gr_rng *r, const char *dir)
{
    memset(c, 0, sizeof *c);
    pick_voice(v, test, r, c->voice, sizeof c->voice);
    c->speed = 110 + (int)gr_rng_below(r, 81);
    c->pitch = 20 + (int)gr_rng_below(r, 61);
    snprintf(c->text, sizeof c->text, "%s", text);
    double level = -12 + 11 * gr_rng_uniform(r), tempo = 0.85 + 0.3 * gr_rng_uniform(r);
    double bass = -6 + 12 * gr_rng_uniform(r), treble = -6 + 12 * gr_rng_uniform(r);
    int reverb = gr_rng_uniform(r) < 0.5 ? 10 + (int)gr_rng_below(r, 61) : 0;
    char rv[32] = "";
    if (reverb) snprintf(rv, sizeof rv, " reverb %d", reverb);
    snprintf(c->effects, sizeof c->effects,
             "norm %.1f tempo %.3f bass %.1f treble %.1f%s pad 2.0 0.8", level, tempo, bass, treble,
             rv);
    c->positive = positive;
    c->noise = gr_rng_uniform(r) < 0.8 ? (int)gr_rng_below(r, 3) : -1;
    c->snr_db = (float)(5 + 20 * gr_rng_uniform(r));
    c->noise_at = gr_rng_u64(r) >> 1;
    clip_path(c, dir);
}

/* The same voice going on after the keyword ("hey jarvis, what time is it"): a clip of another
 * phrase with the keyword clip's voice and effects but no lead-in, joined after the keyword when
 * the features are computed, so that positives also show the keyword followed by speech. */
static void continuation(const clip *kw, const char *text, const char *dir, clip *c)
{
    *c = *kw;
    snprintf(c->text, sizeof c->text, "%s", text);
    char *pad = strstr(c->effects, " pad 2.0 0.8");
    if (pad) snprintf(pad, sizeof c->effects - (size_t)(pad - c->effects), " pad 0 0.8");
    c->positive = 0;
    clip_path(c, dir);
}

/* A negative without speech: silence (1 in 3) or noise at -45..-15 dBFS. */
static void silent_clip(clip *c, gr_rng *r)
{
    memset(c, 0, sizeof *c);
    c->silent = 1;
    c->noise = gr_rng_below(r, 3) ? (int)gr_rng_below(r, 3) : -1;
    c->level_db = (float)(-45 + 30 * gr_rng_uniform(r));
    c->noise_at = gr_rng_u64(r) >> 1;
    snprintf(c->voice, sizeof c->voice, "none");
    snprintf(c->text, sizeof c->text, "(silence)");
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 44;
}

typedef struct progress_ctx {
    const char *what;
    int quiet;
} progress_ctx;

static void synth_progress(int done, int total, void *ctx)
{
    progress_ctx *p = ctx;
    if (p->quiet) return;
    int tty = isatty(2);
    if (!tty && done != total && done * 4 / total == (done - 1) * 4 / total) return;
    fprintf(stderr, "%s%s: %d/%d clips%s", tty ? "\r" : "", p->what, done, total,
            tty && done < total ? "   " : "\n");
}

/* The folder of a clip, and whether its disk is full (no block left for this user). */
static int folder_full(const char *file, char *dir, size_t n)
{
    snprintf(dir, n, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, n, ".");
    struct statvfs v;
    return statvfs(dir, &v) == 0 && v.f_bavail == 0;
}

/* sox exits 0 when it cannot write its output (a full disk, measured with sox 14.4), and
 * espeak-ng does when it had said everything into the pipe before: the clip is then renamed
 * into place truncated, and would count as made for good. Each new clip is read back and a
 * damaged one removed. This catches a data chunk shorter than its header says; a clip cut
 * short whose header sox could still fix reads as a good one (the fix belongs in gr_speak:
 * sox writing to a pipe and graft the file, as make_noise does). */
static int check_made(const gr_speak_job *jobs, int m)
{
    int first = GRAFT_OK;
    char why[1400] = ""; /* the first damage (later reads overwrite the thread's message) */
    for (int i = 0; i < m; i++) {
        gr_audio a = { 0 };
        if (access(jobs[i].out, F_OK)) continue; /* not made (the batch failed first) */
        int st = gr_wav_read(jobs[i].out, &a);
        gr_audio_free(&a);
        if (!st) continue;
        unlink(jobs[i].out);
        if (!first) first = st, snprintf(why, sizeof why, "%s", graft_last_error());
    }
    return first ? gr_err(first, "sox wrote a damaged clip, removed: %s", why) : GRAFT_OK;
}

/* Synthesises the clips whose WAV is not there yet. */
static int synthesise(clip *c, int n, int parallel, const char *what, int quiet)
{
    gr_speak_job *jobs = calloc((size_t)n + 1, sizeof *jobs);
    if (!jobs) return gr_err(GRAFT_E_NOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].user || c[i].silent || exists(c[i].path)) continue;
        jobs[m] = (gr_speak_job){ .voice = c[i].voice,
                                  .speed = c[i].speed,
                                  .pitch = c[i].pitch,
                                  .text = c[i].text,
                                  .out = c[i].path };
        snprintf(jobs[m].effects, sizeof jobs[m].effects, "%s", c[i].effects);
        m++;
    }
    progress_ctx p = { what, quiet };
    int st = m ? gr_speak(jobs, m, parallel, synth_progress, &p) : GRAFT_OK;
    int ck = check_made(jobs, m); /* also after a failure: the batch's other clips are in place */
    if (ck) st = ck;              /* (its message, more to the point than "espeak-ng failed") */
    /* the tools' own messages are lost with their exit status ("espeak-ng failed" when sox
     * stopped reading): a full disk is the cause seen, so say so when it is full */
    char dir[1100];
    if (st && m && folder_full(jobs[0].out, dir, sizeof dir))
        st = gr_err_prefix(st, "%s: %s", dir, strerror(ENOSPC));
    free(jobs);
    return st;
}

/* ---- noise beds (sox) and mixing ---- */

typedef struct noise_beds {
    gr_audio bed[3];
    double power[3]; /* mean square of each bed, computed once */
} noise_beds;

static void put_le(unsigned char *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> 8 * i);
}

/* The 44-byte header of a 16-bit mono PCM WAV of n samples, as sox writes it. */
static void wav_header(unsigned char h[44], uint32_t n, uint32_t rate)
{
    memcpy(h, "RIFF", 4);
    put_le(h + 4, 36 + 2 * n, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le(h + 16, 16, 4); /* fmt chunk size */
    put_le(h + 20, 1, 2);  /* PCM */
    put_le(h + 22, 1, 2);  /* mono */
    put_le(h + 24, rate, 4);
    put_le(h + 28, 2 * rate, 4); /* bytes per second */
    put_le(h + 32, 2, 2);        /* bytes per frame */
    put_le(h + 34, 16, 2);       /* bits per sample */
    memcpy(h + 36, "data", 4);
    put_le(h + 40, 2 * n, 4);
}

/* Makes a noise bed: 30 s of sox's noise of that kind at 16 kHz. sox writes the samples to a
 * pipe and graft writes the file (gr_wfile): sox exits 0 when it cannot write its output (a
 * full disk, measured with sox 14.4), which would put a truncated bed in place for good; through
 * gr_wfile the file is whole or absent, and a failure names it and why. The file is byte for
 * byte the one sox wrote itself before. */
static int make_noise(const char *path, const char *kind)
{
    enum { N = 30 * GR_KW_RATE };
    char cmd[200];
    snprintf(
        cmd, sizeof cmd,
        "sox -R -n -r %d -b 16 -c 1 -e signed-integer -L -t raw - synth 30 %s vol 0.3 2>/dev/null",
        (int)GR_KW_RATE, kind);
    unsigned char *pcm = malloc(2 * (size_t)N + 1);
    if (!pcm) return gr_err(GRAFT_E_NOMEM, "out of memory");
    FILE *p = popen(cmd, "r");
    if (!p) {
        free(pcm);
        return gr_err(GRAFT_E_IO, "making the noise bed %s: cannot run sox: %s", path,
                      strerror(errno));
    }
    size_t got = fread(pcm, 1, 2 * (size_t)N + 1,
                       p); /* one byte more than expected: too long is wrong too */
    int rc = pclose(p), st = GRAFT_OK;
    if (rc != 0 || got != 2 * (size_t)N)
        st =
            gr_err(GRAFT_E_IO,
                   "making the noise bed %s: sox failed (exit %d, %zu of %d bytes; is Debian's sox "
                   "installed? bash scripts/setup.sh)",
                   path, rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, got, 2 * (int)N);
    gr_wfile w;
    if (!st && !(st = gr_wfile_open(&w, path))) {
        unsigned char h[44];
        wav_header(h, N, GR_KW_RATE);
        gr_wfile_write(&w, h, sizeof h);
        gr_wfile_write(&w, pcm, 2 * (size_t)N);
        st = gr_wfile_commit(&w);
    }
    free(pcm);
    return st;
}

static int load_noise(const char *dir, noise_beds *nb)
{
    static const char *kind[3] = { "whitenoise", "pinknoise", "brownnoise" };
    char nd[1100];
    snprintf(nd, sizeof nd, "%s/noise", dir);
    int st = gr_make_dirs(nd);
    for (int k = 0; k < 3 && !st; k++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.wav", nd, kind[k]);
        if (!exists(path) && (st = make_noise(path, kind[k]))) return st;
        st = gr_wav_read(path, &nb->bed[k]);
        double pn = 0;
        for (int64_t i = 0; !st && i < nb->bed[k].n; i++)
            pn += (double)nb->bed[k].samples[i] * nb->bed[k].samples[i];
        if (!st) nb->power[k] = nb->bed[k].n ? pn / (double)nb->bed[k].n : 0;
    }
    return st;
}

static void free_noise(noise_beds *nb)
{
    for (int k = 0; k < 3; k++) gr_audio_free(&nb->bed[k]);
}

/* The end of the speech (seconds) and its power (mean square over the loud part) of a clean clip. */
static void speech_stats(const float *x, int64_t n, double *end, double *power)
{
    float peak = 0;
    for (int64_t i = 0; i < n; i++) peak = fabsf(x[i]) > peak ? fabsf(x[i]) : peak;
    int64_t last = 0, loud = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) > 0.05f * peak) last = i, loud++, sum += (double)x[i] * x[i];
    *end = (double)(last + 1) / GR_KW_RATE;
    *power = loud ? sum / loud : 0;
}

/* The first sample of speech (above 5 % of the peak), less 20 ms. */
static int64_t speech_start(const float *x, int64_t n)
{
    float peak = 0;
    for (int64_t i = 0; i < n; i++) peak = fabsf(x[i]) > peak ? fabsf(x[i]) : peak;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) > 0.05f * peak) return i > GR_KW_RATE / 50 ? i - GR_KW_RATE / 50 : 0;
    return 0;
}

/* Adds noise at the clip's SNR, in place. */
static void mix_noise(const clip *c, const noise_beds *nb, float *x, int64_t n, double power)
{
    if (c->noise < 0 || (power <= 0 && !c->silent)) return;
    const gr_audio *b = &nb->bed[c->noise];
    double pn = nb->power[c->noise];
    if (b->n < 2 || pn <= 0) return;
    double g = c->silent ? sqrt(pow(10.0, c->level_db / 10.0) / pn)
                         : sqrt(power / (pn * pow(10.0, c->snr_db / 10.0)));
    for (int64_t i = 0; i < n; i++)
        x[i] += (float)(g * b->samples[(int64_t)((c->noise_at + (uint64_t)i) % (uint64_t)b->n)]);
}

/* ---- clip sets and their features ---- */

/* Items are what the front end sees as one recording: one clip, or (the test stream) several
 * clips joined. */
typedef struct clipset {
    clip *c;
    int nclip;
    int *first, *count; /* item i = clips first[i] .. first[i] + count[i] - 1 */
    int nitem;
    float *emb, *mel;           /* all items' embeddings (rows of 96) and mel frames (rows of 32) */
    int64_t *emb_off, *mel_off; /* [nitem + 1] row offsets */
    float *end;                 /* [nitem]: the keyword's end (s) in a positive item, else -1 */
    double seconds;
    gr_arena *arena; /* a cached set's arrays */
    int owns;        /* emb/mel/... are malloc'd */
} clipset;

static void clipset_free(clipset *s)
{
    if (s->owns) { free(s->emb), free(s->mel), free(s->emb_off), free(s->mel_off), free(s->end); }
    gr_arena_free(s->arena);
    free(s->c), free(s->first), free(s->count);
    memset(s, 0, sizeof *s);
}

static int clipset_alloc(clipset *s, int nclip)
{
    memset(s, 0, sizeof *s);
    s->c = calloc((size_t)nclip + 1, sizeof *s->c);
    s->first = calloc((size_t)nclip + 1, sizeof *s->first);
    s->count = calloc((size_t)nclip + 1, sizeof *s->count);
    return s->c && s->first && s->count ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
}

/* Each clip its own item. */
static void one_item_per_clip(clipset *s)
{
    for (int i = 0; i < s->nclip; i++) s->first[i] = i, s->count[i] = 1;
    s->nitem = s->nclip;
}

/* Bump when the recipe's code changes what features a clip set gives (cuts, mixing, padding). */
#define KEYWORD_RECIPE "graft keyword features v2"

/* A file's size and modification time (ns) into the hash; nothing for a missing file. */
static uint64_t file_id(uint64_t h, const char *path)
{
    struct stat st;
    if (!path[0] || stat(path, &st) != 0) return h;
    h = fnv(h, &st.st_size, sizeof st.st_size);
    h = fnv(h, &st.st_mtim.tv_sec, sizeof st.st_mtim.tv_sec);
    return fnv(h, &st.st_mtim.tv_nsec, sizeof st.st_mtim.tv_nsec);
}

/* The cache key: every clip's recipe and file, the items, the noise beds, the front end's models. */
static uint64_t clipset_key(const clipset *s, const char *models_dir, const char *work_dir)
{
    uint64_t h = fnv_str(1469598103934665603ULL, KEYWORD_RECIPE);
    for (int i = 0; i < s->nclip; i++) {
        const clip *c = &s->c[i];
        char num[96];
        snprintf(num, sizeof num, "%d %d %d %d %.4f %llu %d %.3f", c->speed, c->pitch, c->positive,
                 c->noise, c->snr_db, (unsigned long long)c->noise_at, c->silent, c->level_db);
        h = fnv_str(fnv_str(fnv_str(fnv_str(fnv_str(h, c->voice), c->text), c->effects), num),
                    c->path);
        h = file_id(h, c->path); /* the WAV as it is now, synthetic or the user's */
    }
    static const char *beds[] = { "whitenoise", "pinknoise", "brownnoise" };
    for (int k = 0; k < 3; k++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/noise/%s.wav", work_dir, beds[k]);
        h = file_id(h, p);
    }
    for (int i = 0; i < s->nitem; i++)
        h = fnv(fnv(h, &s->first[i], sizeof(int)), &s->count[i], sizeof(int));
    const char *files[] = { "melspectrogram.onnx", "embedding_model.onnx" };
    for (int k = 0; k < 2; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", models_dir, files[k]);
        h = file_id(h, p);
    }
    return h;
}

static int cache_load(clipset *s, const char *path)
{
    gr_arena *a = gr_arena_new(1 << 20);
    gr_st_entry *e;
    gr_meta *meta;
    int n, nmeta;
    if (!a || gr_st_load(path, a, &e, &n, &meta, &nmeta) || n != 5) {
        gr_arena_free(a);
        return -1;
    }
    const char *names[5] = { "emb", "mel", "emb_off", "mel_off", "end" };
    void *p[5];
    for (int k = 0; k < 5; k++) {
        if (strcmp(e[k].name, names[k])) {
            gr_arena_free(a);
            return -1;
        }
        p[k] = e[k].data;
    }
    const int dt[5] = { GR_F32, GR_F32, GR_I64, GR_I64, GR_F32 };
    int ok = e[2].shape.rank == 1 && e[2].shape.d[0] == s->nitem + 1 && e[3].shape.rank == 1 &&
             e[3].shape.d[0] == s->nitem + 1 && e[4].shape.rank == 1 &&
             e[4].shape.d[0] == s->nitem && e[0].shape.rank == 2 && e[0].shape.d[1] == GR_KW_DIM &&
             e[1].shape.rank == 2 && e[1].shape.d[1] == GR_KW_MELS;
    for (int k = 0; k < 5 && ok; k++) ok = e[k].dtype == dt[k];
    const int64_t *eo = p[2], *mo = p[3];
    for (int i = 0; i < s->nitem && ok; i++) ok = eo[i] <= eo[i + 1] && mo[i] <= mo[i + 1];
    ok = ok && eo[0] == 0 && mo[0] == 0 && eo[s->nitem] == e[0].shape.d[0] &&
         mo[s->nitem] == e[1].shape.d[0];
    if (!ok) {
        gr_arena_free(a);
        return -1;
    }
    s->emb = p[0], s->mel = p[1], s->emb_off = p[2], s->mel_off = p[3], s->end = p[4];
    s->seconds = 0;
    for (int k = 0; k < nmeta; k++)
        if (!strcmp(meta[k].key, "seconds")) s->seconds = atof(meta[k].value);
    s->arena = a;
    return 0;
}

static int cache_save(const clipset *s, const char *path)
{
    int64_t ne = s->emb_off[s->nitem], nm = s->mel_off[s->nitem];
    gr_st_entry e[5] = {
        { "emb", GR_F32, gr_shape_make(2, (int64_t[]){ ne, GR_KW_DIM }), s->emb,
          (size_t)ne * GR_KW_DIM * 4 },
        { "mel", GR_F32, gr_shape_make(2, (int64_t[]){ nm, GR_KW_MELS }), s->mel,
          (size_t)nm * GR_KW_MELS * 4 },
        { "emb_off", GR_I64, gr_shape_make(1, (int64_t[]){ s->nitem + 1 }), s->emb_off,
          (size_t)(s->nitem + 1) * 8 },
        { "mel_off", GR_I64, gr_shape_make(1, (int64_t[]){ s->nitem + 1 }), s->mel_off,
          (size_t)(s->nitem + 1) * 8 },
        { "end", GR_F32, gr_shape_make(1, (int64_t[]){ s->nitem }), s->end, (size_t)s->nitem * 4 },
    };
    char secs[64];
    snprintf(secs, sizeof secs, "%.6f", s->seconds);
    gr_meta meta[1] = { { "seconds", secs } };
    return gr_st_save(path, e, 5, meta, 1);
}

/* A clip's samples at 16 kHz: a synthetic clip as sox wrote it; a user's recording resampled
 * and given the same 2 s lead-in and 0.8 s tail. */
static int load_clip(const clip *c, gr_audio *out)
{
    gr_audio a = { 0 }, r = { 0 };
    if (c->silent) {
        a.n = 4 * GR_KW_RATE, a.rate = GR_KW_RATE, a.channels = 1, a.bits = 16;
        if (!(a.samples = calloc((size_t)a.n, sizeof(float))))
            return gr_err(GRAFT_E_NOMEM, "out of memory");
        *out = a;
        return GRAFT_OK;
    }
    int st = gr_wav_read(c->path, &a);
    if (st) return st;
    if (!c->user) {
        if (a.rate != GR_KW_RATE) {
            gr_audio_free(&a);
            return gr_err(GRAFT_E_FORMAT, "%s: %d Hz, not 16000", c->path, a.rate);
        }
        *out = a;
        return GRAFT_OK;
    }
    st = gr_audio_resample(&a, GR_KW_RATE, &r);
    gr_audio_free(&a);
    if (st) return gr_err_prefix(st, "%s", c->path);
    int64_t lead = 2 * GR_KW_RATE, tail = GR_KW_RATE * 8 / 10;
    float *x = calloc((size_t)(r.n + lead + tail), sizeof(float));
    if (!x) {
        gr_audio_free(&r);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    memcpy(x + lead, r.samples, (size_t)r.n * sizeof(float));
    free(r.samples);
    r.samples = x;
    r.n += lead + tail;
    *out = r;
    return GRAFT_OK;
}

/* A keyword clip cut 50-300 ms after the keyword ends, then its continuation from where its
 * speech starts, with the keyword clip's noise over both. */
static int join_continuation(const clip *kw, const clip *cont, const noise_beds *nb, float **x,
                             int64_t *n, float *end)
{
    gr_audio a, b;
    int st = load_clip(kw, &a);
    if (st) return st;
    if ((st = load_clip(cont, &b))) {
        gr_audio_free(&a);
        return st;
    }
    double e, power;
    speech_stats(a.samples, a.n, &e, &power);
    int64_t cut = (int64_t)((e + 0.05 + 0.25 * (double)(kw->noise_at % 1000) / 1000) * GR_KW_RATE);
    if (cut > a.n) cut = a.n;
    int64_t from = speech_start(b.samples, b.n);
    float *y = malloc((size_t)(cut + b.n - from + 1) * sizeof(float));
    if (!y) st = gr_err(GRAFT_E_NOMEM, "out of memory");
    else {
        memcpy(y, a.samples, (size_t)cut * sizeof(float));
        memcpy(y + cut, b.samples + from, (size_t)(b.n - from) * sizeof(float));
        *n = cut + b.n - from;
        mix_noise(kw, nb, y, *n, power);
        *x = y;
        *end = (float)e;
    }
    gr_audio_free(&a);
    gr_audio_free(&b);
    return st;
}

/* Progress of a set's features over its blocks. */
typedef struct progress {
    const char *what;
    int quiet;
    int done, total, cached; /* items */
    int final;               /* the line for the last item is out */
    double seconds, t0;      /* audio computed so far, and when computing started */
} progress;

/* Embeddings (and mel frames) of a block of items, from the cache or computed and cached. */
static int block_features(clipset *s, gr_kw_frontend *fe, const noise_beds *nb, const char *dir,
                          const char *models_dir, progress *pr)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/features/%016llx.safetensors", dir,
             (unsigned long long)clipset_key(s, models_dir, dir));
    if (exists(path) && cache_load(s, path) == 0) {
        pr->done += s->nitem, pr->cached += s->nitem;
        return GRAFT_OK;
    }
    const char *what = pr->what;
    s->owns = 1;
    s->emb_off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
    s->mel_off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
    s->end = calloc((size_t)s->nitem + 1, sizeof(float));
    if (!s->emb_off || !s->mel_off || !s->end) return gr_err(GRAFT_E_NOMEM, "out of memory");
    int64_t cap_e = 0, cap_m = 0;
    if (pr->t0 == 0) pr->t0 = gr_now();
    int st = GRAFT_OK;
    for (int i = 0; i < s->nitem && !st; i++) {
        /* the item's audio: its clips one after the other, each mixed with its noise */
        float *x = NULL;
        int64_t n = 0;
        s->end[i] = -1;
        const clip *c0 = &s->c[s->first[i]];
        if (c0->positive && s->count[i] == 2) {
            st = join_continuation(c0, c0 + 1, nb, &x, &n, &s->end[i]);
            s->seconds += (double)n / GR_KW_RATE;
        }
        for (int k = 0; k < s->count[i] && !st && !(c0->positive && s->count[i] == 2); k++) {
            const clip *c = &s->c[s->first[i] + k];
            gr_audio a;
            if ((st = load_clip(c, &a))) break;
            double end, power;
            speech_stats(a.samples, a.n, &end, &power);
            if (c->positive && s->count[i] == 1) s->end[i] = (float)end;
            if (!c->user) mix_noise(c, nb, a.samples, a.n, power);
            float *nx = realloc(x, (size_t)(n + a.n) * sizeof(float));
            if (!nx) {
                gr_audio_free(&a);
                st = gr_err(GRAFT_E_NOMEM, "out of memory");
                break;
            }
            x = nx;
            memcpy(x + n, a.samples, (size_t)a.n * sizeof(float));
            n += a.n;
            gr_audio_free(&a);
        }
        float *mel = NULL, *emb = NULL;
        int64_t nf = 0, ne = 0;
        if (!st) st = gr_kw_embed(fe, x, n, &mel, &nf, &emb, &ne);
        free(x);
        if (!(c0->positive && s->count[i] == 2)) s->seconds += (double)n / GR_KW_RATE;
        if (!st && s->emb_off[i] + ne > cap_e) {
            cap_e = (s->emb_off[i] + ne) * 2;
            float *p = realloc(s->emb, (size_t)cap_e * GR_KW_DIM * sizeof(float));
            if (p) s->emb = p;
            else st = gr_err(GRAFT_E_NOMEM, "out of memory");
        }
        if (!st && s->mel_off[i] + nf > cap_m) {
            cap_m = (s->mel_off[i] + nf) * 2;
            float *p = realloc(s->mel, (size_t)cap_m * GR_KW_MELS * sizeof(float));
            if (p) s->mel = p;
            else st = gr_err(GRAFT_E_NOMEM, "out of memory");
        }
        if (!st) {
            memcpy(s->emb + s->emb_off[i] * GR_KW_DIM, emb, (size_t)ne * GR_KW_DIM * sizeof(float));
            memcpy(s->mel + s->mel_off[i] * GR_KW_MELS, mel,
                   (size_t)nf * GR_KW_MELS * sizeof(float));
            s->emb_off[i + 1] = s->emb_off[i] + ne;
            s->mel_off[i + 1] = s->mel_off[i] + nf;
        }
        free(mel);
        free(emb);
        if (!st) pr->seconds += (double)n / GR_KW_RATE, pr->done++;
        if (!pr->quiet && !st) {
            int tty = isatty(2), done = pr->done, total = pr->total;
            double el = gr_now() - pr->t0;
            pr->final |= done == total;
            if (tty || done == total || done * 4 / total != (done - 1) * 4 / total)
                fprintf(stderr,
                        "%s%s: features %d/%d recordings (%d from the cache), %.0f s of audio "
                        "computed at %.0fx "
                        "real time%s",
                        tty ? "\r" : "", what, done, total, pr->cached, pr->seconds,
                        el > 0 ? pr->seconds / el : 0.0, tty && done < total ? "   " : "\n");
        }
    }
    if (!st) {
        char fd[1100];
        snprintf(fd, sizeof fd, "%s/features", dir);
        if (gr_make_dirs(fd) || cache_save(s, path))
            fprintf(stderr, "%s: warning: cannot write the feature cache %s: %s\n", what, path,
                    graft_last_error());
    }
    return st;
}

enum {
    CACHE_BLOCK = 25
}; /* items per cache file: a change to one clip recomputes its block only */

/* Items [a, b) of s as a set of their own over s's clips (first[] rebased; c and count point
 * into s: free the view with view_free). */
static int block_view(const clipset *s, int a, int b, clipset *v)
{
    memset(v, 0, sizeof *v);
    int c0 = s->first[a], c1 = s->first[b - 1] + s->count[b - 1];
    v->first = malloc((size_t)(b - a) * sizeof *v->first);
    if (!v->first) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = a; i < b; i++) v->first[i - a] = s->first[i] - c0;
    v->c = s->c + c0, v->nclip = c1 - c0, v->count = s->count + a, v->nitem = b - a;
    return GRAFT_OK;
}

static void view_free(clipset *v)
{
    v->c = NULL, v->count = NULL; /* s's */
    clipset_free(v);
}

/* Embeddings (and mel frames) of every item: blocks of CACHE_BLOCK items, each from the cache or
 * computed and cached (the negatives of two keywords differ in a few clips: the rest is reused). */
static int clipset_features(clipset *s, gr_kw_frontend *fe, const noise_beds *nb, const char *dir,
                            const char *models_dir, const char *what, int quiet)
{
    progress pr = { .what = what, .quiet = quiet, .total = s->nitem };
    int nb_blocks = (s->nitem + CACHE_BLOCK - 1) / CACHE_BLOCK, st = GRAFT_OK;
    clipset *views = calloc((size_t)nb_blocks + 1, sizeof *views);
    if (!views) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int k = 0; k < nb_blocks && !st; k++) {
        int a = k * CACHE_BLOCK, b = a + CACHE_BLOCK < s->nitem ? a + CACHE_BLOCK : s->nitem;
        st = block_view(s, a, b, &views[k]);
        if (!st) st = block_features(&views[k], fe, nb, dir, models_dir, &pr);
    }
    int64_t ne = 0, nm = 0;
    for (int k = 0; k < nb_blocks && !st; k++)
        ne += views[k].emb_off[views[k].nitem], nm += views[k].mel_off[views[k].nitem];
    if (!st) {
        s->owns = 1;
        s->emb = malloc((size_t)(ne + 1) * GR_KW_DIM * sizeof(float));
        s->mel = malloc((size_t)(nm + 1) * GR_KW_MELS * sizeof(float));
        s->emb_off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
        s->mel_off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
        s->end = calloc((size_t)s->nitem + 1, sizeof(float));
        if (!s->emb || !s->mel || !s->emb_off || !s->mel_off || !s->end)
            st = gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    s->seconds = 0;
    for (int k = 0, i = 0; k < nb_blocks && !st; k++) {
        const clipset *v = &views[k];
        int64_t e0 = s->emb_off[i], m0 = s->mel_off[i];
        memcpy(s->emb + e0 * GR_KW_DIM, v->emb,
               (size_t)v->emb_off[v->nitem] * GR_KW_DIM * sizeof(float));
        memcpy(s->mel + m0 * GR_KW_MELS, v->mel,
               (size_t)v->mel_off[v->nitem] * GR_KW_MELS * sizeof(float));
        for (int j = 0; j < v->nitem; j++, i++) {
            s->emb_off[i + 1] = e0 + v->emb_off[j + 1];
            s->mel_off[i + 1] = m0 + v->mel_off[j + 1];
            s->end[i] = v->end[j];
        }
        s->seconds += v->seconds;
    }
    for (int k = 0; k < nb_blocks; k++) view_free(&views[k]);
    free(views);
    if (!st && !quiet && s->nitem > 0 && pr.cached == s->nitem)
        fprintf(stderr, "%s: %d recordings, %.0f s of audio: features from the cache\n", what,
                s->nitem, s->seconds);
    else if (!st && !quiet && !pr.final) /* the last blocks came from the cache */
        fprintf(stderr,
                "%s%s: features %d/%d recordings (%d from the cache), %.0f s of audio computed\n",
                isatty(2) ? "\r" : "", what, s->nitem, s->nitem, pr.cached, pr.seconds);
    return st;
}

/* ---- examples: (set, item, window) with the window's first embedding ---- */

typedef struct example {
    const clipset *s;
    int item, win;
} example;

enum {
    MEL_WINDOW = (GR_KW_HEAD_WINDOW - 1) * GR_KW_FRAMES_PER_HOP + GR_KW_WINDOW
}; /* 196 frames */

static int64_t item_windows(const clipset *s, int i)
{
    int64_t ne = s->emb_off[i + 1] - s->emb_off[i];
    return ne >= GR_KW_HEAD_WINDOW ? ne - GR_KW_HEAD_WINDOW + 1 : 0;
}

/* Seconds from the item's start to the end of window w's evidence. */
static double window_end(int w) { return gr_kw_embedding_end(w + GR_KW_HEAD_WINDOW - 1); }

static int input_size(int mel)
{
    return mel ? MEL_WINDOW * GR_KW_MELS : GR_KW_HEAD_WINDOW * GR_KW_DIM;
}

static void fill_input(const example *e, int mel, float *dst)
{
    const clipset *s = e->s;
    if (mel)
        memcpy(dst,
               s->mel +
                   (s->mel_off[e->item] + (int64_t)GR_KW_FRAMES_PER_HOP * e->win + 4) * GR_KW_MELS,
               (size_t)MEL_WINDOW * GR_KW_MELS * sizeof(float));
    else
        memcpy(dst, s->emb + (s->emb_off[e->item] + e->win) * GR_KW_DIM,
               (size_t)GR_KW_HEAD_WINDOW * GR_KW_DIM * sizeof(float));
}

typedef struct exlist {
    example *e;
    int64_t n, cap;
} exlist;

static int push(exlist *l, const clipset *s, int item, int win)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        example *p = realloc(l->e, (size_t)cap * sizeof *p);
        if (!p) return gr_err(GRAFT_E_NOMEM, "out of memory");
        l->e = p, l->cap = cap;
    }
    l->e[l->n++] = (example){ s, item, win };
    return GRAFT_OK;
}

/* Positive windows end 0-0.4 s after the keyword; every window of a negative item is negative.
 * Every 10th pair of items goes to validation (both kinds of keyword item), or the last pair of
 * a set of fewer than 20. */
static int collect(const clipset *s, exlist *pos, exlist *neg, exlist *vpos, exlist *vneg)
{
    int st = GRAFT_OK;
    for (int i = 0; i < s->nitem && !st; i++) {
        /* pairs, since keyword items alternate alone / going on into a sentence; the last pair
         * when there are fewer than ten */
        int npairs = (s->nitem + 1) / 2, pair = i / 2;
        int val = npairs < 10 ? pair == npairs - 1 : pair % 10 == 9;
        for (int w = 0; w < item_windows(s, i) && !st; w++) {
            if (s->end[i] >= 0) {
                double d = window_end(w) - s->end[i];
                if (d >= 0 && d <= 0.4) st = push(val ? vpos : pos, s, i, w);
            } else st = push(val ? vneg : neg, s, i, w);
        }
    }
    return st;
}

/* ---- the head ---- */

static int add_init(gr_graph *g, const char *name, int rows, int cols, int fan_in, gr_rng *r,
                    int *v)
{
    int64_t n = (int64_t)rows * (cols ? cols : 1);
    float *w = malloc((size_t)n * sizeof(float));
    if (!w) return gr_err(GRAFT_E_NOMEM, "out of memory");
    double b = 1.0 / sqrt((double)fan_in); /* torch.nn.Linear's default init */
    for (int64_t i = 0; i < n; i++) w[i] = (float)((2 * gr_rng_uniform(r) - 1) * b);
    gr_shape sh =
        cols ? gr_shape_make(2, (int64_t[]){ rows, cols }) : gr_shape_make(1, (int64_t[]){ rows });
    int st = gr_graph_add_value(g, name, GR_F32, &sh, w, v);
    free(w);
    return st;
}

static int add_op(gr_graph *g, const char *op, const int *in, int nin, const char *out_name,
                  const gr_attr *a, int na, int *out)
{
    int st = gr_graph_add_value(g, out_name, GR_F32, NULL, NULL, out);
    return st ? st : gr_graph_add_node(g, out_name, op, in, nin, out, 1, a, na, NULL);
}

/* Flatten -> Gemm(H) -> Relu -> Gemm(H) -> Relu -> Gemm(1): logits of (batch, window, width). */
static int build_head(int mel, int hidden, gr_rng *r, gr_graph **out)
{
    gr_graph *g;
    int st = gr_graph_new(13, &g);
    if (st) return st;
    int rows = mel ? MEL_WINDOW : GR_KW_HEAD_WINDOW, width = mel ? GR_KW_MELS : GR_KW_DIM,
        d = rows * width;
    gr_shape in_shape = gr_shape_make(3, (int64_t[]){ -1, rows, width });
    int x, f, h1, r1, h2, r2, y, w1, b1, w2, b2, w3, b3;
    gr_attr axis = { .name = "axis", .type = GR_AT_INT, .i = 1 },
            tb = { .name = "transB", .type = GR_AT_INT, .i = 1 };
    if (!st) st = gr_graph_add_input(g, mel ? "mel" : "embeddings", GR_F32, &in_shape, &x);
    if (!st) st = add_op(g, "Flatten", (int[]){ x }, 1, "flat", &axis, 1, &f);
    if (!st) st = add_init(g, "fc1.weight", hidden, d, d, r, &w1);
    if (!st) st = add_init(g, "fc1.bias", hidden, 0, d, r, &b1);
    if (!st) st = add_op(g, "Gemm", (int[]){ f, w1, b1 }, 3, "fc1", &tb, 1, &h1);
    if (!st) st = add_op(g, "Relu", (int[]){ h1 }, 1, "relu1", NULL, 0, &r1);
    if (!st) st = add_init(g, "fc2.weight", hidden, hidden, hidden, r, &w2);
    if (!st) st = add_init(g, "fc2.bias", hidden, 0, hidden, r, &b2);
    if (!st) st = add_op(g, "Gemm", (int[]){ r1, w2, b2 }, 3, "fc2", &tb, 1, &h2);
    if (!st) st = add_op(g, "Relu", (int[]){ h2 }, 1, "relu2", NULL, 0, &r2);
    if (!st) st = add_init(g, "fc3.weight", 1, hidden, hidden, r, &w3);
    if (!st) st = add_init(g, "fc3.bias", 1, 0, hidden, r, &b3);
    if (!st) st = add_op(g, "Gemm", (int[]){ r2, w3, b3 }, 3, "logit", &tb, 1, &y);
    if (!st) st = gr_graph_add_output(g, y);
    if (st) {
        gr_graph_free(g);
        return st;
    }
    *out = g;
    return GRAFT_OK;
}

/* Logits of examples through an inference plan of g, `batch` at a time. */
static int score_examples(gr_graph *g, gr_dnnl *dnnl, int mel, const example *ex, int64_t n,
                          float *out)
{
    enum { B = 256 };
    int d = input_size(mel);
    float *in = calloc((size_t)B * d, sizeof(float));
    if (!in) return gr_err(GRAFT_E_NOMEM, "out of memory");
    gr_tensor x = { .dtype = GR_F32,
                    .shape = gr_shape_make(3, (int64_t[]){ B, mel ? MEL_WINDOW : GR_KW_HEAD_WINDOW,
                                                           mel ? GR_KW_MELS : GR_KW_DIM }),
                    .data = in };
    gr_plan *p = NULL;
    gr_plan_opts po = { .dnnl = dnnl };
    int st = gr_plan_build(g, &x, &po, &p);
    for (int64_t i = 0; i < n && !st; i += B) {
        int b = (int)(n - i < B ? n - i : B);
        for (int k = 0; k < b; k++) fill_input(&ex[i + k], mel, in + (size_t)k * d);
        gr_plan_run(p, &x);
        memcpy(out + i, gr_plan_output(p, 0)->data, (size_t)b * sizeof(float));
    }
    gr_plan_free(p);
    free(in);
    return st;
}

static double sigmoid(double z) { return 1 / (1 + exp(-z)); }

/* Mean binary cross-entropy of logits against one label. */
static double bce(const float *z, int64_t n, int label)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += label ? log1p(exp(-fabs(z[i]))) + fmax(-z[i], 0)
                   : log1p(exp(-fabs(z[i]))) + fmax(z[i], 0);
    return n ? s / n : 0;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* ---- training ---- */

typedef struct train_state {
    const gr_kw_train_opts *o;
    gr_graph *g;
    gr_dnnl *dnnl;
    int mel;
    exlist pos, neg, vpos, vneg;
} train_state;

static int train_head(train_state *ts, gr_kw_train_result *res)
{
    const gr_kw_train_opts *o = ts->o;
    enum { B = 256, HALF = B / 2 };
    int d = input_size(ts->mel);
    /* an epoch: as many batches as a pass over the negatives would take (drawn with replacement),
     * at most 400 (validation, hard negatives and early stopping come that often; 3000 negative
     * clips would make it ~800) */
    int64_t steps_per_epoch = ts->neg.n / HALF > 400  ? 400
                              : ts->neg.n / HALF > 20 ? ts->neg.n / HALF
                                                      : 20;
    int epochs = o->epochs > 0 ? o->epochs : 30;
    unsigned char *trainable = calloc((size_t)ts->g->nvalues, 1);
    float *in = calloc((size_t)B * d, sizeof(float)), target[B];
    float *zneg = malloc((size_t)(ts->neg.n + 1) * sizeof(float));
    float *zv = malloc((size_t)(ts->vpos.n + ts->vneg.n + 1) * sizeof(float));
    int64_t *hard = malloc((size_t)(ts->neg.n + 1) * sizeof(int64_t)), nhard = 0;
    float *best = NULL;
    gr_trainer *t = NULL;
    int st =
        trainable && in && zneg && zv && hard ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
    if (!st) {
        gr_graph_params(ts->g, trainable);
        gr_trainer_cfg cfg = { .loss = GR_LOSS_BCE,
                               .seed = o->seed,
                               .opt = { .kind = GR_ADAMW,
                                        .lr = o->lr > 0 ? o->lr : 1e-4,
                                        .weight_decay = 1e-2,
                                        .sched = GR_SCHED_COSINE,
                                        .warmup = steps_per_epoch,
                                        .total = steps_per_epoch * epochs } };
        st = gr_trainer_new(ts->g, trainable, &cfg, &t);
    }
    if (!st && !(best = malloc((size_t)t->total * sizeof(float))))
        st = gr_err(GRAFT_E_NOMEM, "out of memory");
    gr_rng r;
    gr_rng_seed(&r, o->seed ^ 0x6b6579776f7264ULL);
    double best_loss = INFINITY, t0 = gr_now();
    int since = 0, patience = o->patience > 0 ? o->patience : 8;
    int hard_n = (int)(HALF * (o->hard_frac >= 0 ? o->hard_frac : 0.25) + 0.5);
    for (int ep = 0; ep < epochs && !st; ep++) {
        double sum = 0;
        for (int64_t s = 0; s < steps_per_epoch && !st; s++) {
            for (int k = 0; k < B; k++) {
                const example *e;
                if (k < HALF) e = &ts->pos.e[gr_rng_below(&r, (uint64_t)ts->pos.n)];
                else if (nhard && k >= B - hard_n)
                    e = &ts->neg.e[hard[gr_rng_below(&r, (uint64_t)nhard)]];
                else e = &ts->neg.e[gr_rng_below(&r, (uint64_t)ts->neg.n)];
                fill_input(e, ts->mel, in + (size_t)k * d);
                target[k] = k < HALF ? 1.0f : 0.0f;
            }
            gr_tensor x = { .dtype = GR_F32,
                            .shape = gr_shape_make(
                                3, (int64_t[]){ B, ts->mel ? MEL_WINDOW : GR_KW_HEAD_WINDOW,
                                                ts->mel ? GR_KW_MELS : GR_KW_DIM }),
                            .data = in };
            double loss;
            st = gr_trainer_step(t, &x, target, &loss);
            sum += loss;
        }
        /* validation: the balanced loss; mining: the hardest 10 % of the training negatives */
        if (!st) st = score_examples(ts->g, ts->dnnl, ts->mel, ts->vpos.e, ts->vpos.n, zv);
        if (!st)
            st = score_examples(ts->g, ts->dnnl, ts->mel, ts->vneg.e, ts->vneg.n, zv + ts->vpos.n);
        if (!st) st = score_examples(ts->g, ts->dnnl, ts->mel, ts->neg.e, ts->neg.n, zneg);
        if (st) break;
        double vl = 0.5 * bce(zv, ts->vpos.n, 1) + 0.5 * bce(zv + ts->vpos.n, ts->vneg.n, 0);
        float *sorted = malloc((size_t)(ts->neg.n + 1) * sizeof(float));
        if (!sorted) {
            st = gr_err(GRAFT_E_NOMEM, "out of memory");
            break;
        }
        memcpy(sorted, zneg, (size_t)ts->neg.n * sizeof(float));
        qsort(sorted, (size_t)ts->neg.n, sizeof(float), cmp_desc);
        float cut = sorted[ts->neg.n / 10];
        free(sorted);
        nhard = 0;
        for (int64_t i = 0; i < ts->neg.n; i++)
            if (zneg[i] >= cut) hard[nhard++] = i;
        if (!o->quiet)
            fprintf(stderr, "%sepoch %2d: train loss %.4f  validation loss %.4f%s\n",
                    isatty(2) ? "\r" : "", ep + 1, sum / steps_per_epoch, vl,
                    vl < best_loss ? "  (best)" : "");
        res->epochs = ep + 1;
        if (vl < best_loss) {
            best_loss = vl, since = 0, res->best_epoch = ep + 1;
            memcpy(best, t->w, (size_t)t->total * sizeof(float));
        } else if (++since >= patience) break;
    }
    if (!st && res->best_epoch == 0)
        st = gr_err(GRAFT_E_NUMERIC, "the validation loss was never finite: no epoch to keep");
    if (!st && best) memcpy(t->w, best, (size_t)t->total * sizeof(float));
    res->val_loss = best_loss;
    res->seconds_training = gr_now() - t0;
    gr_trainer_free(t); /* the graph gets its (best) weights back */
    free(best), free(trainable), free(in), free(zneg), free(zv), free(hard);
    return st;
}

/* ---- detections, thresholds, metrics ---- */

/* Detections in a stream of scores (one per 80 ms): a score >= thr at least 1 s after the last. */
static int64_t detections(const float *p, int64_t n, double thr)
{
    int64_t k = 0, last = -1000;
    for (int64_t i = 0; i < n; i++)
        if (p[i] >= thr && (i - last) * GR_KW_HOP >= GR_KW_RATE) k++, last = i;
    return k;
}

typedef struct scores {
    float *p;
    int64_t *off;
    int n;
    double seconds;
} scores; /* per item */

static void scores_free(scores *s)
{
    free(s->p), free(s->off);
    memset(s, 0, sizeof *s);
}

static int64_t total_detections(const scores *s, double thr)
{
    int64_t k = 0;
    for (int i = 0; i < s->n; i++)
        k += detections(s->p + s->off[i], s->off[i + 1] - s->off[i], thr);
    return k;
}

/* The lowest threshold (just above one of the scores) at which the negatives give at most
 * `allowed` detections; detections only grow as the threshold falls. *met = 0 when even the cap
 * of 0.9999 gives more. */
static double threshold_for(const scores *neg, int64_t allowed, int *met)
{
    int64_t n = neg->off[neg->n];
    *met = 1;
    float *v = malloc((size_t)(n + 1) * sizeof(float));
    if (!v || n == 0) {
        free(v);
        return 0.5;
    }
    memcpy(v, neg->p, (size_t)n * sizeof(float));
    qsort(v, (size_t)n, sizeof(float), cmp_desc);
    /* candidate i: just above v[i] (descending), so a larger i is a lower threshold; i = 0
     * gives no detection at all. Find the largest i that stays within `allowed`. */
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (total_detections(neg, nextafterf(v[mid], 2.0f)) <= allowed) lo = mid;
        else hi = mid - 1;
    }
    double thr = nextafterf(v[lo], 2.0f);
    free(v);
    if (thr > 0.9999) {
        *met = total_detections(neg, 0.9999) <= allowed;
        thr = 0.9999;
    }
    return thr;
}

/* The share of positive items with a detection from 0.3 s before the keyword's end (the end is
 * measured on the clean clip, reverb tail included) to 1 s after it; a detection elsewhere in
 * the recording (the lead-in, the sentence after) is not a hit. */
static double recall_at(const scores *pos, const float *end, double thr)
{
    int hit = 0;
    for (int i = 0; i < pos->n; i++)
        for (int64_t k = pos->off[i]; k < pos->off[i + 1]; k++) {
            double t = window_end((int)(k - pos->off[i]));
            if (pos->p[k] >= thr && t >= end[i] - 0.3 && t <= end[i] + 1.0) {
                hit++;
                break;
            }
        }
    return pos->n ? (double)hit / pos->n : 0;
}

/* Probabilities of every window of every item: through a head file (embedding heads, as
 * `graft keyword listen` runs them) or through the training graph (logits, mel heads). */
static int score_set(const clipset *s, gr_kw_head *head, gr_graph *g, gr_dnnl *dnnl, int mel,
                     scores *out)
{
    memset(out, 0, sizeof *out);
    out->n = s->nitem;
    out->seconds = s->seconds;
    out->off = calloc((size_t)s->nitem + 1, sizeof(int64_t));
    if (!out->off) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = 0; i < s->nitem; i++) out->off[i + 1] = out->off[i] + item_windows(s, i);
    out->p = malloc((size_t)(out->off[s->nitem] + 1) * sizeof(float));
    if (!out->p) return gr_err(GRAFT_E_NOMEM, "out of memory");
    if (head) {
        for (int i = 0; i < s->nitem; i++)
            if (item_windows(s, i) > 0)
                gr_kw_head_score(head, s->emb + s->emb_off[i] * GR_KW_DIM,
                                 s->emb_off[i + 1] - s->emb_off[i], out->p + out->off[i]);
        return GRAFT_OK;
    }
    int64_t n = out->off[s->nitem];
    example *ex = malloc((size_t)(n + 1) * sizeof *ex);
    if (!ex) return gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = 0; i < s->nitem; i++)
        for (int64_t w = 0; w < item_windows(s, i); w++)
            ex[out->off[i] + w] = (example){ s, i, (int)w };
    int st = score_examples(g, dnnl, mel, ex, n, out->p);
    for (int64_t k = 0; !st && k < n; k++) out->p[k] = (float)sigmoid(out->p[k]);
    free(ex);
    return st;
}

/* ---- the data sets ---- */

static int has_letters(const char *s)
{
    for (; *s; s++)
        if ((*s | 32) >= 'a' && (*s | 32) <= 'z') return 1;
    return 0;
}

static int check_keyword(const char *kw)
{
    if (!kw || !kw[0] || strlen(kw) > 100 || !has_letters(kw))
        return gr_err(
            GRAFT_E_ARG,
            "the keyword \"%s\" has no letters espeak-ng's English voices can speak (give it in "
            "Latin letters, at most 100 characters; or record it and pass --recordings DIR)",
            kw ? kw : "");
    for (const char *p = kw; *p; p++)
        if ((unsigned char)*p < 32)
            return gr_err(GRAFT_E_ARG, "the keyword contains a control character");
    return GRAFT_OK;
}

/* The user's recordings: every .wav in the folder, sorted; *paths malloc'd. */
static int list_wavs(const char *dir, char ***paths, int *count)
{
    *paths = NULL;
    *count = 0;
    if (!dir) return GRAFT_OK;
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return gr_err(GRAFT_E_IO, "%s: cannot read the recordings folder: %s", dir,
                      strerror(errno));
    char **out = calloc((size_t)n + 1, sizeof *out);
    int k = 0, st = out ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        size_t l = strlen(nm);
        if (!st && l > 4 && !strcasecmp(nm + l - 4, ".wav")) {
            size_t need = strlen(dir) + l + 2;
            if ((out[k] = malloc(need))) snprintf(out[k++], need, "%s/%s", dir, nm);
            else st = gr_err(GRAFT_E_NOMEM, "out of memory");
        }
        free(names[i]);
    }
    free(names);
    if (!st && k == 0) st = gr_err(GRAFT_E_ARG, "%s: no .wav recordings in the folder", dir);
    if (st) {
        for (int i = 0; i < k; i++) free(out[i]);
        free(out);
        return st;
    }
    *paths = out;
    *count = k;
    return GRAFT_OK;
}

/* Negative text i: a third near misses of the keyword (every other one the keyword's words alone
 * or with a consonant changed, the others a word swapped for a name), a third the everyday
 * phrases above (short commands, greetings, hard cases such as "hey there"), a third made-up
 * sentences. */
static void negative_text(int i, char (*near)[96], int nnear, const gr_kw_train_opts *o, char *out,
                          size_t n)
{
    if (i % 3 == 2 && nnear && (i / 3) % 2 == 0) snprintf(out, n, "%s", near[(i / 6) % nnear]);
    else if (i % 3 == 2) swapped_word(o->keyword, o->seed * 131 + 12, i, out, n);
    else if (i % 3 == 1) sentence(o->seed * 131 + 11, i, NAMES_TRAIN, o->keyword, out, n);
    else if (!says_keyword(PHRASES[(i / 3) % NPHRASES], o->keyword))
        snprintf(out, n, "%s", PHRASES[(i / 3) % NPHRASES]);
    else
        sentence(o->seed * 131 + 10, i, NAMES_TRAIN, o->keyword, out,
                 n); /* the keyword is one of them */
}

/* n clips of the keyword as items, every other one followed by the same voice saying a made-up
 * sentence (a continuation; its own sentence stream, so that the keyword clips stay the same). */
static void add_keyword_clips(clipset *pos, const voices *v, int test, const gr_kw_train_opts *o,
                              int n, gr_rng *r)
{
    for (int i = 0; i < n; i++) {
        pos->first[pos->nitem] = pos->nclip;
        synth_clip(&pos->c[pos->nclip++], v, test, o->keyword, 1, r, o->work_dir);
        pos->count[pos->nitem] = 1;
        if (i % 2 == 1) {
            char text[128];
            sentence(o->seed * 131 + 13 + (uint64_t)test, i, test ? NAMES_TEST : NAMES_TRAIN,
                     o->keyword, text, sizeof text);
            continuation(&pos->c[pos->nclip - 1], text, o->work_dir, &pos->c[pos->nclip]);
            pos->nclip++;
            pos->count[pos->nitem] = 2;
        }
        pos->nitem++;
    }
}

/* The training sets: the keyword's clips (synthetic, then the user's) and the negatives. */
static int make_train_sets(const gr_kw_train_opts *o, const voices *v, clipset *pos, clipset *neg,
                           clipset *near_set, int *nuser)
{
    char **rec = NULL;
    int nrec = 0;
    int st = list_wavs(o->recordings, &rec, &nrec);
    int npos = o->positives > 0 ? o->positives : 500, nneg = o->negatives > 0 ? o->negatives : 3000;
    if (!st) st = clipset_alloc(pos, 2 * npos + nrec);
    if (!st) st = clipset_alloc(neg, nneg);
    if (!st) st = clipset_alloc(near_set, nneg / 3 + 1);
    char near[64][96];
    int nnear = near_misses(o->keyword, near, 64);
    gr_rng r;
    gr_rng_seed(&r, o->seed * 7919 + 1);
    if (!st) add_keyword_clips(pos, v, 0, o, npos, &r);
    int rec0 = pos->nclip;
    for (int i = 0; !st && i < nrec; i++) {
        clip *c = &pos->c[pos->nclip++];
        memset(c, 0, sizeof *c);
        snprintf(c->path, sizeof c->path, "%s", rec[i]);
        snprintf(c->voice, sizeof c->voice, "recording");
        c->user = 1, c->positive = 1, c->noise = -1;
    }
    gr_rng_seed(&r, o->seed * 7919 + 2);
    /* the near misses go in a set of their own: the others depend on the keyword only where a text
     * would have contained it, so their features (the bulk) usually come from the cache when a
     * second keyword is trained */
    for (int i = 0; !st && i < nneg; i++)
        if (i % 20 == 19)
            silent_clip(&neg->c[neg->nclip++], &r); /* 1 in 20: silence or noise alone */
        else {
            char text[128];
            negative_text(i, near, nnear, o, text, sizeof text);
            clipset *to = i % 3 == 2 ? near_set : neg;
            synth_clip(&to->c[to->nclip++], v, 0, text, 0, &r, o->work_dir);
        }
    for (int i = 0; i < nrec; i++) free(rec[i]);
    free(rec);
    if (!st) {
        for (int i = rec0; i < pos->nclip; i++)
            pos->first[pos->nitem] = i, pos->count[pos->nitem++] = 1;
        one_item_per_clip(neg);
        one_item_per_clip(near_set);
    }
    *nuser = nrec;
    return st;
}

static int make_phrase_stream(const gr_kw_train_opts *o, const voices *v, int test, double hours,
                              uint64_t stream, clipset *neg);

/* The test sets, from held-out voices only: clips of the keyword, and made-up everyday sentences
 * of their own stream (no near misses: the rate of false accepts a user meets) joined into
 * recordings of up to 75 clips until test_hours of audio (a clip is ~5 s). */
static int make_test_sets(const gr_kw_train_opts *o, const voices *v, clipset *pos, clipset *neg)
{
    int npos = o->test_positives > 0 ? o->test_positives : 100;
    int st = clipset_alloc(pos, 2 * npos);
    gr_rng r;
    gr_rng_seed(&r, o->seed * 7919 + 3);
    if (!st) add_keyword_clips(pos, v, 1, o, npos, &r);
    return st ? st : make_phrase_stream(o, v, 1, o->test_hours > 0 ? o->test_hours : 0.25, 4, neg);
}

/* Made-up everyday sentences (sentence stream `stream`) joined into recordings of 75 clips,
 * `hours` of them: with training voices the stream the threshold is set on, with held-out voices
 * the test's. */
static int make_phrase_stream(const gr_kw_train_opts *o, const voices *v, int test, double hours,
                              uint64_t stream, clipset *neg)
{
    int nneg = (int)ceil(hours * 3600 / 5.0);
    int st = clipset_alloc(neg, nneg);
    gr_rng r;
    gr_rng_seed(&r, o->seed * 7919 + stream);
    for (int i = 0; !st && i < nneg; i++) { /* everyday speech: the false accepts a user meets */
        char text[128];
        sentence(o->seed * 131 + stream, i, test ? NAMES_TEST : NAMES_VALIDATION, o->keyword, text,
                 sizeof text);
        synth_clip(&neg->c[neg->nclip++], v, test, text, 0, &r, o->work_dir);
    }
    if (st) return st;
    neg->nitem = 0;
    for (int i = 0; i < nneg; i += 75) {
        neg->first[neg->nitem] = i;
        neg->count[neg->nitem++] = nneg - i < 75 ? nneg - i : 75;
    }
    return GRAFT_OK;
}

/* A synthetic clip's name: 16 hex digits and ".wav" (clip_path). */
static int is_clip_name(void *ctx, const char *name, size_t len)
{
    (void)ctx;
    if (len != 20 || memcmp(name + 16, ".wav", 4)) return 0;
    for (int i = 0; i < 16; i++)
        if (!isxdigit((unsigned char)name[i])) return 0;
    return 1;
}

static int prepare(const gr_kw_train_opts *o, voices *v, gr_kw_frontend **fe, noise_beds *nb)
{
    if (strlen(o->work_dir) > 900 || strlen(o->models_dir) > 3000)
        return gr_err(GRAFT_E_ARG, "the work folder's path is too long (at most 900 characters)");
    int st = check_keyword(o->keyword);
    if (!st) st = list_variants(v);
    char clips[1100];
    snprintf(clips, sizeof clips, "%s/clips", o->work_dir);
    if (!st) st = gr_make_dirs(clips);
    /* gr_speak writes each clip as "<clip>.tmp.<pid>" and renames it; a killed run leaves some
     * behind, which no later write of that clip would see (clips are only made when missing) */
    if (!st) gr_wfile_clean_dir(clips, is_clip_name, NULL);
    if (!st) st = load_noise(o->work_dir, nb);
    char mel[4200], emb[4200];
    snprintf(mel, sizeof mel, "%s/melspectrogram.onnx", o->models_dir);
    snprintf(emb, sizeof emb, "%s/embedding_model.onnx", o->models_dir);
    if (!st) st = gr_kw_frontend_new(mel, emb, 0, 0, fe);
    return st;
}

/* Synthesis then features of a set; the synthesis also proves espeak-ng spoke the keyword. */
static int materialise(const gr_kw_train_opts *o, clipset *s, gr_kw_frontend *fe,
                       const noise_beds *nb, const char *what, gr_kw_train_result *res)
{
    double t0 = gr_now();
    int st = synthesise(s->c, s->nclip, o->parallel > 0 ? o->parallel : 4, what, o->quiet);
    double t1 = gr_now();
    if (!st) st = clipset_features(s, fe, nb, o->work_dir, o->models_dir, what, o->quiet);
    res->seconds_synthesis += t1 - t0;
    res->seconds_features += gr_now() - t1;
    return st;
}

/* espeak-ng speaks anything with letters, but a clip with no speech in it means it could not. */
static int check_spoken(const clipset *pos, const char *kw)
{
    for (int i = 0; i < pos->nclip && i < 3; i++) {
        if (pos->c[i].user || !pos->c[i].positive) continue;
        gr_audio a;
        if (gr_wav_read(pos->c[i].path, &a)) return GRAFT_E_IO;
        double end, power;
        speech_stats(a.samples, a.n, &end, &power);
        gr_audio_free(&a);
        if (power < 1e-6 || end < 2.1)
            return gr_err(
                GRAFT_E_ARG,
                "espeak-ng produced no speech for \"%s\" (voice %s): give the keyword in words "
                "it can read, or record it and pass --recordings DIR",
                kw, pos->c[i].voice);
    }
    return GRAFT_OK;
}

static void evaluate(const scores *tp, const float *end, const scores *tn, double thr,
                     gr_kw_train_result *res)
{
    res->threshold = thr;
    res->test_pos_clips = tp->n;
    res->test_hours = tn->seconds / 3600;
    res->test_recall = recall_at(tp, end, thr);
    res->test_fa = total_detections(tn, thr);
    res->test_fa_per_hour = res->test_hours > 0 ? res->test_fa / res->test_hours : 0;
    /* 1 per hour of the stream, rounded to the nearest whole false accept */
    int met;
    res->threshold_at_1fa = threshold_for(tn, (int64_t)floor(res->test_hours + 0.5), &met);
    res->recall_at_1fa = recall_at(tp, end, res->threshold_at_1fa);
}

static int test_sets(const gr_kw_train_opts *o, const voices *v, gr_kw_frontend *fe,
                     const noise_beds *nb, clipset *tp, clipset *tn, gr_kw_train_result *res)
{
    int st = make_test_sets(o, v, tp, tn);
    if (!st) st = materialise(o, tp, fe, nb, "test keyword clips (held-out voices)", res);
    if (!st) st = materialise(o, tn, fe, nb, "test negative audio (held-out voices)", res);
    return st;
}

int gr_kw_eval(const char *head_path, const gr_kw_train_opts *o, gr_kw_train_result *res)
{
    memset(res, 0, sizeof *res);
    voices v;
    gr_kw_frontend *fe = NULL;
    noise_beds nb = { 0 };
    clipset tp = { 0 }, tn = { 0 };
    scores sp = { 0 }, sn = { 0 };
    gr_kw_head *head = NULL;
    int st = prepare(o, &v, &fe, &nb);
    if (!st) st = gr_kw_head_load(head_path, 64, 0, &head);
    if (!st && gr_kw_head_window(head) != GR_KW_HEAD_WINDOW)
        st = gr_err(GRAFT_E_SHAPE, "%s reads %d embeddings; the test data is cut for heads of 16",
                    head_path, gr_kw_head_window(head));
    if (!st) st = test_sets(o, &v, fe, &nb, &tp, &tn, res);
    if (!st) st = score_set(&tp, head, NULL, NULL, 0, &sp);
    if (!st) st = score_set(&tn, head, NULL, NULL, 0, &sn);
    if (!st) evaluate(&sp, tp.end, &sn, 0.5, res); /* openWakeWord's default threshold */
    scores_free(&sp), scores_free(&sn);
    clipset_free(&tp), clipset_free(&tn);
    gr_kw_head_free(head);
    gr_kw_frontend_free(fe);
    free_noise(&nb);
    return st;
}

/* The trained graph as the deliverable: Sigmoid on the logit, batch 1 as openWakeWord's heads,
 * the keyword, threshold and recipe in the metadata. */
static int export_head(gr_graph *g, const gr_kw_train_opts *o, double thr, const char *path)
{
    int y = g->outputs[0], p;
    int st = add_op(g, "Sigmoid", &y, 1, "score", NULL, 0, &p);
    if (st) return st;
    g->outputs[0] = p;
    g->values[g->inputs[0]].t.shape.d[0] = 1;
    g->values[p].t.dtype =
        GR_F32; /* a graph output declares its type: (1, 1) as openWakeWord's heads */
    g->values[p].t.shape = gr_shape_make(2, (int64_t[]){ 1, 1 });
    g->values[p].has_shape = 1;
    char thr_s[32], recipe[512];
    snprintf(thr_s, sizeof thr_s, "%.6f", thr);
    snprintf(recipe, sizeof recipe,
             "%s head (Flatten, Gemm %d, Relu, Gemm %d, Relu, Gemm 1, Sigmoid) on %s; %d synthetic "
             "clips of the keyword, "
             "%d of other phrases (espeak-ng + sox); AdamW lr %g, cosine, balanced batches of 256, "
             "hard negatives; seed %llu",
             o->scratch ? "from scratch:" : "transfer:", o->hidden > 0 ? o->hidden : 128,
             o->hidden > 0 ? o->hidden : 128,
             o->scratch ? "mel frames" : "openWakeWord's speech embeddings",
             o->positives > 0 ? o->positives : 500, o->negatives > 0 ? o->negatives : 3000,
             o->lr > 0 ? o->lr : 1e-4, (unsigned long long)o->seed);
    gr_meta *m = gr_arena_alloc(g->arena, 4 * sizeof *m);
    if (!m) return gr_err(GRAFT_E_NOMEM, "out of memory");
    const char *kv[4][2] = { { "graft.keyword", o->keyword },
                             { "graft.threshold", thr_s },
                             { "graft.recipe", recipe },
                             { "graft.head", "keyword" } };
    for (int k = 0; k < 4; k++) {
        m[k].key = gr_arena_strdup(g->arena, kv[k][0]);
        m[k].value = gr_arena_strdup(g->arena, kv[k][1]);
        if (!m[k].key || !m[k].value) return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    g->meta = m;
    g->nmeta = 4;
    return gr_onnx_save(g, path);
}

int gr_kw_train(const gr_kw_train_opts *o, const char *out_path, gr_kw_train_result *res)
{
    memset(res, 0, sizeof *res);
    voices v;
    gr_kw_frontend *fe = NULL;
    noise_beds nb = { 0 };
    clipset pos = { 0 }, neg = { 0 }, nearm = { 0 }, tp = { 0 }, tn = { 0 }, vneg = { 0 };
    scores vn = { 0 }, sp = { 0 }, sn = { 0 };
    train_state ts = { .o = o, .mel = o->scratch };
    gr_kw_head *head = NULL;
    int nuser = 0;
    int st = prepare(o, &v, &fe, &nb);
    if (!st) st = make_train_sets(o, &v, &pos, &neg, &nearm, &nuser);
    if (!st) st = synthesise(pos.c, pos.nclip < 3 ? pos.nclip : 3, 3, "keyword", 1);
    if (!st) st = check_spoken(&pos, o->keyword);
    if (!st) st = materialise(o, &pos, fe, &nb, "keyword clips", res);
    if (!st) st = materialise(o, &neg, fe, &nb, "negative clips", res);
    if (!st) st = materialise(o, &nearm, fe, &nb, "near misses", res);
    if (!st) st = collect(&pos, &ts.pos, &ts.neg, &ts.vpos, &ts.vneg);
    if (!st) st = collect(&neg, &ts.pos, &ts.neg, &ts.vpos, &ts.vneg);
    if (!st) st = collect(&nearm, &ts.pos, &ts.neg, &ts.vpos, &ts.vneg);
    if (!st && (ts.pos.n == 0 || ts.neg.n == 0 || ts.vpos.n == 0 || ts.vneg.n == 0))
        st = gr_err(
            GRAFT_E_ARG,
            "too few examples to train and validate (training %lld positive and %lld negative "
            "windows, validation %lld and %lld): give at least 20 keyword clips and 20 negatives",
            (long long)ts.pos.n, (long long)ts.neg.n, (long long)ts.vpos.n, (long long)ts.vneg.n);
    res->train_pos_clips = pos.nitem - nuser, res->user_clips = nuser,
    res->train_neg_clips = neg.nclip + nearm.nclip;
    res->pos_windows = ts.pos.n, res->neg_windows = ts.neg.n;
    gr_rng r;
    gr_rng_seed(&r, o->seed + 17);
    if (!st) st = build_head(o->scratch, o->hidden > 0 ? o->hidden : 128, &r, &ts.g);
    if (!st) st = gr_dnnl_new(&ts.dnnl);
    if (!st) st = train_head(&ts, res);
    /* the threshold: a quarter of an hour of made-up sentences by training voices (not trained
     * on; names neither trained on nor in the test), at the target rate of false accepts (near misses train the head to reject them, but a
     * threshold set on them would price in adversarial speech a user rarely says) */
    if (!st) st = make_phrase_stream(o, &v, 0, 0.25, 6, &vneg);
    if (!st) st = materialise(o, &vneg, fe, &nb, "validation negative audio", res);
    if (!st) st = score_set(&vneg, NULL, ts.g, ts.dnnl, ts.mel, &vn);
    if (!st) {
        double target = o->target_fa > 0 ? o->target_fa : 0.5;
        int met;
        double t = threshold_for(&vn, (int64_t)floor(target * vn.seconds / 3600 + 1e-9), &met);
        if (!met && !o->quiet)
            fprintf(stderr,
                    "warning: even a threshold of 0.9999 gives more than %g false accepts per hour "
                    "on the "
                    "validation speech\n",
                    target);
        res->threshold = t < 0.5 ? 0.5 : t;
    }
    double thr = res->threshold;
    if (!st && !o->scratch) st = export_head(ts.g, o, thr, out_path);
    if (!st) st = test_sets(o, &v, fe, &nb, &tp, &tn, res);
    if (!st && !o->scratch)
        st = gr_kw_head_load(out_path, 64, 0, &head); /* the test reads the file written */
    if (!st) st = score_set(&tp, head, ts.g, ts.dnnl, ts.mel, &sp);
    if (!st) st = score_set(&tn, head, ts.g, ts.dnnl, ts.mel, &sn);
    if (!st) evaluate(&sp, tp.end, &sn, thr, res);
    if (!st && o->scratch) st = export_head(ts.g, o, thr, out_path);
    scores_free(&vn), scores_free(&sp), scores_free(&sn);
    free(ts.pos.e), free(ts.neg.e), free(ts.vpos.e), free(ts.vneg.e);
    clipset_free(&pos), clipset_free(&neg), clipset_free(&nearm), clipset_free(&tp),
        clipset_free(&tn), clipset_free(&vneg);
    gr_kw_head_free(head);
    gr_graph_free(ts.g);
    gr_dnnl_free(ts.dnnl);
    gr_kw_frontend_free(fe);
    free_noise(&nb);
    return st;
}
