#define _GNU_SOURCE
/* clips.c — the keyword recipe's audio: clips synthesised (synth.c) where missing, noise beds made
 * with sox, and an item's audio at 16 kHz (its clips, cut and joined, mixed with noise); the work
 * folder a run needs. */
#include "kw_recipe.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

int gr_kw_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 44;
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

/* Synthesises the clips whose WAV is not there yet. */
int gr_kw_synthesise(gr_kw_clip *c, int n, int parallel, const char *what, const gr_progress *p)
{
    gr_speak_job *jobs = calloc((size_t)n + 1, sizeof *jobs);
    if (!jobs) return gr_err(GRAFT_E_NOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].user || c[i].silent || gr_kw_file_exists(c[i].path)) continue;
        jobs[m] = (gr_speak_job){ .voice = c[i].voice,
                                  .speed = c[i].speed,
                                  .pitch = c[i].pitch,
                                  .text = c[i].text,
                                  .out = c[i].path };
        snprintf(jobs[m].effects, sizeof jobs[m].effects, "%s", c[i].effects);
        m++;
    }
    /* gr_speak reads every clip back before renaming it into place: sox exits 0 when it cannot
     * write its output (a full disk), and a damaged clip would otherwise count as made for good */
    int st = m ? gr_speak(jobs, m, parallel, p) : GRAFT_OK;
    if (!st && m)
        gr_progress_note(p, GRAFT_EVENT_NOTE, "synthesize", "%s: %d/%d clips", what, m, m);
    /* the tools' messages may not say it ("espeak-ng failed" when sox stopped reading): a full
     * disk is the cause seen, so say so when it is full */
    char dir[1100];
    if (st && m && folder_full(jobs[0].out, dir, sizeof dir))
        st = gr_err_prefix(st, "%s: %s", dir, strerror(ENOSPC));
    free(jobs);
    return st;
}

/* ---- noise beds (sox) and mixing ---- */

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

static int load_noise(const char *dir, gr_kw_noise *nb)
{
    static const char *kind[3] = { "whitenoise", "pinknoise", "brownnoise" };
    char nd[1100];
    snprintf(nd, sizeof nd, "%s/noise", dir);
    int st = gr_make_dirs(nd);
    for (int k = 0; k < 3 && !st; k++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.wav", nd, kind[k]);
        if (!gr_kw_file_exists(path) && (st = make_noise(path, kind[k]))) return st;
        st = gr_wav_read(path, &nb->bed[k]);
        double pn = 0;
        for (int64_t i = 0; !st && i < nb->bed[k].n; i++)
            pn += (double)nb->bed[k].samples[i] * nb->bed[k].samples[i];
        if (!st) nb->power[k] = nb->bed[k].n ? pn / (double)nb->bed[k].n : 0;
    }
    return st;
}

void gr_kw_free_noise(gr_kw_noise *nb)
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
static void mix_noise(const gr_kw_clip *c, const gr_kw_noise *nb, float *x, int64_t n, double power)
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

/* A clip's samples at 16 kHz: a synthetic clip as sox wrote it; a user's recording resampled
 * and given the same 2 s lead-in and 0.8 s tail. */
static int load_clip(const gr_kw_clip *c, gr_audio *out)
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
static int join_continuation(const gr_kw_clip *kw, const gr_kw_clip *cont, const gr_kw_noise *nb,
                             float **x, int64_t *n, float *end)
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

/* Appends clip c's audio (mixed with its noise) to x; *end gets a lone keyword clip's end. */
static int append_clip(const gr_kw_clip *c, int alone, const gr_kw_noise *nb, float **x, int64_t *n,
                       float *end)
{
    gr_audio a;
    int st = load_clip(c, &a);
    if (st) return st;
    double e, power;
    speech_stats(a.samples, a.n, &e, &power);
    if (c->positive && alone) *end = (float)e;
    if (!c->user) mix_noise(c, nb, a.samples, a.n, power);
    float *nx = realloc(*x, (size_t)(*n + a.n) * sizeof(float));
    if (!nx) {
        gr_audio_free(&a);
        return gr_err(GRAFT_E_NOMEM, "out of memory");
    }
    *x = nx;
    memcpy(*x + *n, a.samples, (size_t)a.n * sizeof(float));
    *n += a.n;
    gr_audio_free(&a);
    return GRAFT_OK;
}

int gr_kw_item_audio(const gr_kw_clipset *s, int i, const gr_kw_noise *nb, float **x, int64_t *n,
                     float *end)
{
    *x = NULL;
    *n = 0;
    const gr_kw_clip *c0 = &s->c[s->first[i]];
    int st = GRAFT_OK;
    if (c0->positive && s->count[i] == 2) st = join_continuation(c0, c0 + 1, nb, x, n, end);
    else
        for (int k = 0; k < s->count[i] && !st; k++)
            st = append_clip(&s->c[s->first[i] + k], s->count[i] == 1, nb, x, n, end);
    if (st) {
        free(*x);
        *x = NULL;
    }
    return st;
}

int gr_kw_prepare(const gr_kw_train_opts *o, gr_kw_voices *v, gr_kw_frontend **fe, gr_kw_noise *nb)
{
    if (strlen(o->work_dir) > 900 || strlen(o->models_dir) > 3000)
        return gr_err(GRAFT_E_ARG, "the work folder's path is too long (at most 900 characters)");
    int st = gr_kw_check_keyword(o->keyword);
    if (!st) st = gr_kw_list_voices(v);
    char clips[1100];
    snprintf(clips, sizeof clips, "%s/clips", o->work_dir);
    if (!st) st = gr_make_dirs(clips);
    /* gr_speak writes each clip as "<clip>.tmp.<pid>" and renames it; a killed run leaves some
     * behind, which no later write of that clip would see (clips are only made when missing) */
    if (!st) gr_wfile_clean_dir(clips, gr_kw_is_clip_name, NULL);
    if (!st) st = load_noise(o->work_dir, nb);
    char mel[4200], emb[4200];
    snprintf(mel, sizeof mel, "%s/melspectrogram.onnx", o->models_dir);
    snprintf(emb, sizeof emb, "%s/embedding_model.onnx", o->models_dir);
    if (!st) st = gr_kw_frontend_new(mel, emb, 0, 0, fe);
    return st;
}

int gr_kw_check_spoken(const gr_kw_clipset *pos, const char *kw)
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
