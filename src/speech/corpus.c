#define _GNU_SOURCE
/* corpus.c — what the keyword recipe says and who says it: espeak-ng's voices (training and
 * held-out), everyday phrases, made-up sentences, near misses of the keyword, each clip's recipe
 * (voice, speed, pitch, effects, noise) and the sets planned from them (training, validation
 * stream, test). Nothing is synthesised here (clips.c). */
#include "kw_recipe.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>

/* ---- voices ---- */

static const char *const ACCENTS[] = { "en-us",          "en-gb",      "en-gb-scotland",
                                       "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
                                       "en-029",         "en-us-nyc" };
enum { NACCENT = 8, TRAIN_ACCENTS = 6 };

int gr_kw_list_voices(gr_kw_voices *v)
{
    v->n = 0;
    FILE *p = popen("espeak-ng --voices=variant 2>/dev/null", "r");
    if (!p)
        return gr_err(GRAFT_E_IO, "cannot run espeak-ng: %s (install it: bash scripts/setup.sh)",
                      strerror(errno));
    char line[512];
    while (fgets(line, sizeof line, p) && v->n < GR_KW_MAX_VARIANTS) {
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
static void pick_voice(const gr_kw_voices *v, int test, gr_rng *r, char *out, size_t n)
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

/* A synthetic clip's file: named by the hash of what makes it (voice, speed, pitch, text, effects). */
static void clip_path(gr_kw_clip *c, const char *dir)
{
    char sp[32];
    snprintf(sp, sizeof sp, "%d %d", c->speed, c->pitch);
    uint64_t h = gr_kw_fnv_str(
        gr_kw_fnv_str(gr_kw_fnv_str(gr_kw_fnv_str(GR_KW_FNV_START, c->voice), sp), c->text),
        c->effects);
    snprintf(c->path, sizeof c->path, "%s/clips/%016llx.wav", dir, (unsigned long long)h);
}

static void synth_clip(gr_kw_clip *c, const gr_kw_voices *v, int test, const char *text,
                       int positive, gr_rng *r, const char *dir)
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
static void continuation(const gr_kw_clip *kw, const char *text, const char *dir, gr_kw_clip *c)
{
    *c = *kw;
    snprintf(c->text, sizeof c->text, "%s", text);
    char *pad = strstr(c->effects, " pad 2.0 0.8");
    if (pad) snprintf(pad, sizeof c->effects - (size_t)(pad - c->effects), " pad 0 0.8");
    c->positive = 0;
    clip_path(c, dir);
}

/* A negative without speech: silence (1 in 3) or noise at -45..-15 dBFS. */
static void silent_clip(gr_kw_clip *c, gr_rng *r)
{
    memset(c, 0, sizeof *c);
    c->silent = 1;
    c->noise = gr_rng_below(r, 3) ? (int)gr_rng_below(r, 3) : -1;
    c->level_db = (float)(-45 + 30 * gr_rng_uniform(r));
    c->noise_at = gr_rng_u64(r) >> 1;
    snprintf(c->voice, sizeof c->voice, "none");
    snprintf(c->text, sizeof c->text, "(silence)");
}

/* ---- clip sets ---- */

void gr_kw_clipset_free(gr_kw_clipset *s)
{
    if (s->owns) { free(s->emb), free(s->mel), free(s->emb_off), free(s->mel_off), free(s->end); }
    gr_arena_free(s->arena);
    free(s->c), free(s->first), free(s->count);
    memset(s, 0, sizeof *s);
}

static int clipset_alloc(gr_kw_clipset *s, int nclip)
{
    memset(s, 0, sizeof *s);
    s->c = calloc((size_t)nclip + 1, sizeof *s->c);
    s->first = calloc((size_t)nclip + 1, sizeof *s->first);
    s->count = calloc((size_t)nclip + 1, sizeof *s->count);
    return s->c && s->first && s->count ? GRAFT_OK : gr_err(GRAFT_E_NOMEM, "out of memory");
}

/* Each clip its own item. */
static void one_item_per_clip(gr_kw_clipset *s)
{
    for (int i = 0; i < s->nclip; i++) s->first[i] = i, s->count[i] = 1;
    s->nitem = s->nclip;
}

/* ---- the data sets ---- */

static int has_letters(const char *s)
{
    for (; *s; s++)
        if ((*s | 32) >= 'a' && (*s | 32) <= 'z') return 1;
    return 0;
}

int gr_kw_check_keyword(const char *kw)
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
static void add_keyword_clips(gr_kw_clipset *pos, const gr_kw_voices *v, int test,
                              const gr_kw_train_opts *o, int n, gr_rng *r)
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
int gr_kw_plan_train_sets(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_clipset *pos,
                          gr_kw_clipset *neg, gr_kw_clipset *near_set, int *nuser)
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
        gr_kw_clip *c = &pos->c[pos->nclip++];
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
            gr_kw_clipset *to = i % 3 == 2 ? near_set : neg;
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

/* The test sets, from held-out voices only: clips of the keyword, and made-up everyday sentences
 * of their own stream (no near misses: the rate of false accepts a user meets) joined into
 * recordings of up to 75 clips until test_hours of audio (a clip is ~5 s). */
int gr_kw_plan_test_sets(const gr_kw_train_opts *o, const gr_kw_voices *v, gr_kw_clipset *pos,
                         gr_kw_clipset *neg)
{
    int npos = o->test_positives > 0 ? o->test_positives : 100;
    int st = clipset_alloc(pos, 2 * npos);
    gr_rng r;
    gr_rng_seed(&r, o->seed * 7919 + 3);
    if (!st) add_keyword_clips(pos, v, 1, o, npos, &r);
    return st ? st
              : gr_kw_plan_phrase_stream(o, v, 1, o->test_hours > 0 ? o->test_hours : 0.25, 4, neg);
}

/* Made-up everyday sentences (sentence stream `stream`) joined into recordings of 75 clips,
 * `hours` of them: with training voices the stream the threshold is set on, with held-out voices
 * the test's. */
int gr_kw_plan_phrase_stream(const gr_kw_train_opts *o, const gr_kw_voices *v, int test,
                             double hours, uint64_t stream, gr_kw_clipset *neg)
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
int gr_kw_is_clip_name(void *ctx, const char *name, size_t len)
{
    (void)ctx;
    if (len != 20 || memcmp(name + 16, ".wav", 4)) return 0;
    for (int i = 0; i < 16; i++)
        if (!isxdigit((unsigned char)name[i])) return 0;
    return 1;
}
