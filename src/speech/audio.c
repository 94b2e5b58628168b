/* audio.c — WAV decoding and resampling for the speech front end.
 *
 * WAV: RIFF/WAVE with a fmt chunk of PCM (8-bit unsigned, 16, 24 or 32-bit signed), IEEE float
 * (32 or 64-bit) or WAVE_FORMAT_EXTENSIBLE carrying either; up to 64 channels (mixed down to
 * mono by their mean). Samples come out as float in [-1, 1) (16-bit v -> v/32768,
 * so 16-bit audio round-trips exactly through the int16 scale the speech models expect).
 * A data chunk whose declared size runs past the end of the file is an error naming both sizes,
 * except for the sizes streaming writers put there when they cannot seek back (0 and
 * 0xFFFFFFFF), which mean "to the end of the file".
 *
 * Limits, checked from the header before anything is allocated: a rate below 1000 Hz is not
 * audio graft can use (GRAFT_E_FORMAT; telephone speech is 8 kHz, and a rate near 0 would make
 * the resampler's filter arbitrarily long), a rate above the audio-rate limit (384 kHz, the
 * highest rate common hardware records) or a length above the audio-seconds limit (a day) is
 * GRAFT_E_LIMIT. The samples are then bounded by the bytes present (declared sizes are checked
 * against them).
 *
 * Resampling: band-limited interpolation (Kaiser-windowed sinc, 16 zero crossings each side,
 * beta 8.6, cutoff at 0.95 of the lower Nyquist frequency) as a polyphase filter for the exact
 * rational ratio out/in. The filter has L phases (L = out / gcd(in, out)) of `taps` taps; the
 * phases are tabulated when the table is small (every common rate pair: 44.1 -> 16 kHz is 160
 * phases of 94 taps), and otherwise (a rate pair like 383,999 -> 16,000 Hz, whose gcd is 1, would
 * need 16,000 phases of 810 taps) each output sample's taps are computed as it is made, with the
 * same expression, so the cost is bounded by the output's length, never by the rate pair. */
#include "speech.h"

#include "io/io.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define MIN_RATE 1000

void gr_audio_free(gr_audio *a)
{
    free(a->samples);
    a->samples = NULL;
    a->n = 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

typedef struct wav_fmt {
    int format; /* 1 PCM, 3 float */
    int channels, rate, bits, block;
} wav_fmt;

static int parse_fmt(const char *name, const uint8_t *p, uint32_t size, wav_fmt *f)
{
    if (size < 16)
        return gr_err(GRAFT_E_FORMAT, "%s: the WAV fmt chunk is %u bytes, at least 16 expected",
                      name, size);
    f->format = le16(p);
    f->channels = le16(p + 2);
    f->block = le16(p + 12);
    f->bits = le16(p + 14);
    if (f->format ==
        0xFFFE) { /* WAVE_FORMAT_EXTENSIBLE: the real format is the GUID's first two bytes */
        if (size < 40)
            return gr_err(GRAFT_E_FORMAT,
                          "%s: WAVE_FORMAT_EXTENSIBLE fmt chunk is %u bytes, 40 expected", name,
                          size);
        f->format = le16(p + 24);
    }
    if (f->format != 1 && f->format != 3)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: WAV sample format %d is not supported (PCM and IEEE float are; "
                      "convert it, e.g. sox IN -e signed -b 16 OUT.wav)",
                      name, f->format);
    if (f->channels < 1 || f->channels > 64)
        return gr_err(GRAFT_E_FORMAT, "%s: %d channels in the WAV header", name, f->channels);
    uint32_t rate = le32(p + 4);
    if (rate < MIN_RATE)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: sample rate %u Hz in the WAV header (at least %d expected)", name, rate,
                      MIN_RATE);
    int st = gr_limit_check(GRAFT_LIMIT_AUDIO_RATE, rate, "%s: sample rate %u Hz in the WAV header",
                            name, rate);
    if (st) return st;
    if (rate > INT32_MAX / 2) /* even with the limit raised, rates stay far from int overflow */
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: sample rate %u Hz is above what graft handles",
                      name, rate);
    f->rate = (int)rate;
    int ok = f->format == 1 ? (f->bits == 8 || f->bits == 16 || f->bits == 24 || f->bits == 32)
                            : (f->bits == 32 || f->bits == 64);
    if (!ok)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: %d-bit %s samples are not supported", name, f->bits,
                      f->format == 1 ? "PCM" : "float");
    if (f->block != f->channels * f->bits / 8)
        return gr_err(GRAFT_E_FORMAT, "%s: block align %d, but %d channels of %d bits need %d",
                      name, f->block, f->channels, f->bits, f->channels * f->bits / 8);
    return GRAFT_OK;
}

static double sample_at(const uint8_t *p, const wav_fmt *f)
{
    if (f->format == 3) {
        if (f->bits == 32) {
            float v;
            memcpy(&v, p, 4);
            return v;
        }
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    switch (f->bits) {
    case 8: return (p[0] - 128) / 128.0;
    case 16: return (int16_t)le16(p) / 32768.0;
    case 24:
        return (double)((int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 |
                                  (uint32_t)p[2] << 24) >>
                        8) /
               8388608.0;
    default: return (int32_t)le32(p) / 2147483648.0;
    }
}

/* The data chunk's `bytes` (already checked against the bytes present) to mono floats, after the
 * length is checked against the audio-seconds limit. */
static int decode_data(const char *name, const wav_fmt *f, const uint8_t *body, size_t bytes,
                       gr_audio *out)
{
    size_t frames = bytes / (size_t)f->block;
    int64_t seconds = (int64_t)((frames + (size_t)f->rate - 1) / (size_t)f->rate);
    int st = gr_limit_check(GRAFT_LIMIT_AUDIO_SECONDS, seconds,
                            "%s: %zu samples at %d Hz are %lld seconds", name, frames, f->rate,
                            (long long)seconds);
    if (st) return st;
    float *s = malloc((frames ? frames : 1) * sizeof(float));
    if (!s) return gr_err(GRAFT_E_NOMEM, "%s: out of memory for %zu samples", name, frames);
    int bps = f->bits / 8;
    for (size_t i = 0; i < frames; i++) {
        double acc = 0;
        for (int c = 0; c < f->channels; c++)
            acc += sample_at(body + i * (size_t)f->block + (size_t)c * bps, f);
        s[i] = (float)(acc / f->channels);
    }
    out->samples = s;
    out->n = (int64_t)frames;
    out->rate = f->rate;
    out->channels = f->channels;
    out->bits = f->bits;
    return GRAFT_OK;
}

int gr_wav_decode_mem(const char *name, const uint8_t *d, size_t n, gr_audio *out)
{
    if (n == 0) return gr_err(GRAFT_E_FORMAT, "%s: the file is empty, not a WAV file", name);
    if (n < 12 || memcmp(d, "RIFF", 4) || memcmp(d + 8, "WAVE", 4))
        return gr_err(GRAFT_E_FORMAT, "%s: not a WAV file (no RIFF/WAVE header)", name);
    wav_fmt f = { 0 };
    int have_fmt = 0;
    size_t pos = 12;
    while (pos + 8 <= n) {
        uint32_t size = le32(d + pos + 4);
        const uint8_t *body = d + pos + 8;
        size_t left = n - pos - 8;
        if (!memcmp(d + pos, "fmt ", 4)) {
            if (size > left) return gr_err(GRAFT_E_FORMAT, "%s: the fmt chunk is cut short", name);
            int st = parse_fmt(name, body, size, &f);
            if (st) return st;
            have_fmt = 1;
        } else if (!memcmp(d + pos, "data", 4)) {
            if (!have_fmt)
                return gr_err(GRAFT_E_FORMAT, "%s: the data chunk comes before any fmt chunk",
                              name);
            size_t bytes = size;
            uint32_t riff = le32(d + 4);
            /* a streaming writer's placeholders: 0xFFFFFFFF, or 0 when the RIFF size is one too */
            if (size == 0xFFFFFFFFu || (size == 0 && (riff == 0 || riff == 0xFFFFFFFFu)))
                bytes = left;
            else if (bytes > left)
                return gr_err(GRAFT_E_FORMAT,
                              "%s: truncated: the data chunk declares %u bytes, the file holds %zu",
                              name, size, left);
            return decode_data(name, &f, body, bytes, out);
        }
        pos += 8 + (size_t)size + (size & 1); /* chunks are padded to even sizes */
    }
    return gr_err(GRAFT_E_FORMAT, "%s: no %s chunk in the WAV file", name,
                  have_fmt ? "data" : "fmt");
}

int gr_wav_read(const char *path, gr_audio *out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return gr_err(GRAFT_E_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap) break;
        uint8_t *more = realloc(buf, cap * 2);
        if (!more) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = more;
        cap *= 2;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf) return gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    int st =
        bad ? gr_err(GRAFT_E_IO, "%s: read error", path) : gr_wav_decode_mem(path, buf, n, out);
    free(buf);
    return st;
}

int gr_wav_write(const char *path, const float *s, int64_t n, int rate)
{
    if (n < 0 || n > (int64_t)(0xFFFFFFFFu - 36) / 2)
        return gr_err(GRAFT_E_ARG, "%s: %lld samples do not fit in a WAV file", path, (long long)n);
    uint32_t bytes = (uint32_t)(n * 2);
    uint8_t h[44];
    memcpy(h, "RIFF", 4);
    uint32_t v[] = { 36 + bytes };
    memcpy(h + 4, v, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    uint32_t fmt[4] = { 16, 1 | 1u << 16, (uint32_t)rate, (uint32_t)rate * 2 };
    memcpy(h + 16, fmt, 16);
    uint16_t ba[2] = { 2, 16 };
    memcpy(h + 32, ba, 4);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &bytes, 4);
    gr_wfile w; /* atomic: a killed or failed write leaves the old file, never a part */
    int st = gr_wfile_open(&w, path);
    if (st) return st;
    gr_wfile_write(&w, h, sizeof h);
    int16_t q[4096];
    for (int64_t i = 0; i < n; i += 4096) {
        int k = (int)(n - i < 4096 ? n - i : 4096);
        for (int j = 0; j < k; j++) {
            float x = s[i + j] * 32768.0f;
            q[j] = (int16_t)(x >= 32767 ? 32767 : x <= -32768 ? -32768 : lrintf(x));
        }
        gr_wfile_write(&w, q, (size_t)k * sizeof *q);
    }
    return gr_wfile_commit(&w);
}

/* ---- resampling ---- */

static double bessel_i0(double x)
{
    double sum = 1, term = 1;
    for (int k = 1; k < 64; k++) {
        term *= (x / (2 * k)) * (x / (2 * k));
        sum += term;
        if (term < 1e-12 * sum) break;
    }
    return sum;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The polyphase filter of one rate pair: output sample j sits at input position j * M / L, its
 * phase is (j * M) mod L, and phase p's taps weight the inputs floor(j * M / L) - half + 1 ..
 * + half. `table` holds every phase's taps when it is small, else NULL. */
typedef struct polyphase {
    int64_t L, M;
    int half, taps;
    double fc, i0b;
    float *table;
} polyphase;

#define BETA        8.6
/* Tabulate the phases when the table is at most SMALL_TABLE taps (4 MB; the common rate pairs
 * need under 16k), or at most BIG_TABLE (64 MB) when every phase is used at least once on average
 * (L <= the output's length), so building it costs no more than computing taps per sample. */
#define SMALL_TABLE ((int64_t)1 << 20)
#define BIG_TABLE   ((int64_t)1 << 24)

/* Phase p's taps into h[taps]: a Kaiser-windowed sinc at the output position's offsets. */
static void phase_taps(const polyphase *f, int64_t p, float *h)
{
    double frac = (double)p / f->L; /* output position minus its floor input sample */
    for (int t = 0; t < f->taps; t++) {
        double x = (t - f->half + 1) - frac; /* input sample offset from the output position */
        double r = x / f->half;
        double w = fabs(r) >= 1 ? 0 : bessel_i0(BETA * sqrt(1 - r * r)) / f->i0b;
        double arg = 3.14159265358979323846 * f->fc * x;
        double sinc = fabs(arg) < 1e-12 ? 1 : sin(arg) / arg;
        h[t] = (float)(f->fc * sinc * w);
    }
}

/* The filter for `from` -> `to` Hz and `n_in` input samples; *n_out gets the output's length,
 * ceil(n_in * L / M), computed without overflow. */
static int polyphase_init(polyphase *f, int from, int to, int64_t n_in, int64_t *n_out)
{
    int64_t g = gcd64(from, to);
    f->L = to / g;
    f->M = from / g;
    *n_out = n_in / f->M * f->L + (n_in % f->M * f->L + f->M - 1) / f->M;
    f->fc = 0.95 * (to < from ? (double)to / from : 1.0); /* cutoff, cycles per 2 input samples */
    f->half = (int)ceil(16 / f->fc);                      /* 16 zero crossings each side */
    f->taps = 2 * f->half;
    f->i0b = bessel_i0(BETA);
    f->table = NULL;
    int64_t n = f->L * f->taps;
    if (n > SMALL_TABLE && (n > BIG_TABLE || f->L > *n_out))
        return GRAFT_OK; /* taps computed per sample */
    if (!(f->table = malloc((size_t)n * sizeof(float))))
        return gr_err(GRAFT_E_NOMEM, "out of memory resampling");
    for (int64_t p = 0; p < f->L; p++) phase_taps(f, p, f->table + p * f->taps);
    return GRAFT_OK;
}

/* Output samples [0, n_out) of `in` through the filter; `scratch` holds `taps` floats. */
static void polyphase_run(const polyphase *f, const gr_audio *in, float *s, int64_t n_out,
                          float *scratch)
{
    /* output j's input position j * M / L as base + p / L, stepped without forming j * M */
    int64_t base = 0, p = 0;
    for (int64_t j = 0; j < n_out; j++, p += f->M, base += p / f->L, p %= f->L) {
        const float *hp = f->table ? f->table + p * f->taps : scratch;
        if (!f->table) phase_taps(f, p, scratch);
        double acc = 0;
        for (int t = 0; t < f->taps; t++) {
            int64_t k = base + t - f->half + 1;
            if (k >= 0 && k < in->n) acc += (double)hp[t] * in->samples[k];
        }
        s[j] = (float)acc;
    }
}

int gr_audio_resample(const gr_audio *in, int rate, gr_audio *out)
{
    if (in->rate < MIN_RATE || rate < MIN_RATE || in->rate > INT32_MAX / 2 || rate > INT32_MAX / 2)
        return gr_err(GRAFT_E_ARG, "resampling %d Hz to %d Hz: rates must be in %d..%d Hz",
                      in->rate, rate, MIN_RATE, INT32_MAX / 2);
    if (in->rate == rate) {
        float *s = malloc((in->n ? (size_t)in->n : 1) * sizeof(float));
        if (!s) return gr_err(GRAFT_E_NOMEM, "out of memory resampling");
        if (in->n) memcpy(s, in->samples, (size_t)in->n * sizeof(float));
        *out = *in;
        out->samples = s;
        return GRAFT_OK;
    }
    polyphase f;
    int64_t n_out;
    int st = polyphase_init(&f, in->rate, rate, in->n, &n_out);
    if (st) return st;
    float *s = malloc((n_out ? (size_t)n_out : 1) * sizeof(float));
    float *scratch = malloc((size_t)f.taps * sizeof(float));
    if (!s || !scratch) {
        free(s), free(scratch), free(f.table);
        return gr_err(GRAFT_E_NOMEM, "out of memory resampling");
    }
    polyphase_run(&f, in, s, n_out, scratch);
    free(scratch);
    free(f.table);
    *out = *in;
    out->samples = s;
    out->n = n_out;
    out->rate = rate;
    return GRAFT_OK;
}
