/* audio.c — WAV decoding and resampling for the speech front end.
 *
 * WAV: RIFF/WAVE with a fmt chunk of PCM (8-bit unsigned, 16, 24 or 32-bit signed), IEEE float
 * (32 or 64-bit) or WAVE_FORMAT_EXTENSIBLE carrying either; any number of channels (mixed down
 * to mono by their mean) and any rate. Samples come out as float in [-1, 1) (16-bit v -> v/32768,
 * so 16-bit audio round-trips exactly through the int16 scale the speech models expect).
 * A data chunk whose declared size runs past the end of the file is an error naming both sizes,
 * except for the sizes streaming writers put there when they cannot seek back (0 and
 * 0xFFFFFFFF), which mean "to the end of the file".
 *
 * Resampling: band-limited interpolation (Kaiser-windowed sinc, 16 zero crossings each side,
 * beta 8.6, cutoff at 0.95 of the lower Nyquist frequency) as a polyphase filter for the exact
 * rational ratio out/in. */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void gr_audio_free(gr_audio *a)
{
    free(a->samples);
    a->samples = NULL;
    a->n = 0;
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

typedef struct wav_fmt {
    int format;      /* 1 PCM, 3 float */
    int channels, rate, bits, block;
} wav_fmt;

static int parse_fmt(const char *name, const uint8_t *p, uint32_t size, wav_fmt *f)
{
    if (size < 16) return gr_err(GRAFT_E_FORMAT, "%s: the WAV fmt chunk is %u bytes, at least 16 expected", name, size);
    f->format = le16(p);
    f->channels = le16(p + 2);
    f->rate = (int)le32(p + 4);
    f->block = le16(p + 12);
    f->bits = le16(p + 14);
    if (f->format == 0xFFFE) {  /* WAVE_FORMAT_EXTENSIBLE: the real format is the GUID's first two bytes */
        if (size < 40) return gr_err(GRAFT_E_FORMAT, "%s: WAVE_FORMAT_EXTENSIBLE fmt chunk is %u bytes, 40 expected", name, size);
        f->format = le16(p + 24);
    }
    if (f->format != 1 && f->format != 3)
        return gr_err(GRAFT_E_UNSUPPORTED, "%s: WAV sample format %d is not supported (PCM and IEEE float are; "
                      "convert it, e.g. sox IN -e signed -b 16 OUT.wav)", name, f->format);
    if (f->channels < 1 || f->channels > 64) return gr_err(GRAFT_E_FORMAT, "%s: %d channels in the WAV header", name, f->channels);
    if (f->rate < 1000 || f->rate > 768000)
        return gr_err(GRAFT_E_FORMAT, "%s: sample rate %d Hz in the WAV header (1000 to 768000 expected)", name, f->rate);
    int ok = f->format == 1 ? (f->bits == 8 || f->bits == 16 || f->bits == 24 || f->bits == 32)
                            : (f->bits == 32 || f->bits == 64);
    if (!ok) return gr_err(GRAFT_E_UNSUPPORTED, "%s: %d-bit %s samples are not supported", name, f->bits,
                           f->format == 1 ? "PCM" : "float");
    if (f->block != f->channels * f->bits / 8)
        return gr_err(GRAFT_E_FORMAT, "%s: block align %d, but %d channels of %d bits need %d", name, f->block,
                      f->channels, f->bits, f->channels * f->bits / 8);
    return GRAFT_OK;
}

static double sample_at(const uint8_t *p, const wav_fmt *f)
{
    if (f->format == 3) {
        if (f->bits == 32) { float v; memcpy(&v, p, 4); return v; }
        double v; memcpy(&v, p, 8); return v;
    }
    switch (f->bits) {
    case 8: return (p[0] - 128) / 128.0;
    case 16: return (int16_t)le16(p) / 32768.0;
    case 24: return (double)((int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24) >> 8) / 8388608.0;
    default: return (int32_t)le32(p) / 2147483648.0;
    }
}

int gr_wav_decode_mem(const char *name, const uint8_t *d, size_t n, gr_audio *out)
{
    if (n == 0) return gr_err(GRAFT_E_FORMAT, "%s: the file is empty, not a WAV file", name);
    if (n < 12 || memcmp(d, "RIFF", 4) || memcmp(d + 8, "WAVE", 4))
        return gr_err(GRAFT_E_FORMAT, "%s: not a WAV file (no RIFF/WAVE header)", name);
    wav_fmt f = {0};
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
            if (!have_fmt) return gr_err(GRAFT_E_FORMAT, "%s: the data chunk comes before any fmt chunk", name);
            size_t bytes = size;
            uint32_t riff = le32(d + 4);
            /* a streaming writer's placeholders: 0xFFFFFFFF, or 0 when the RIFF size is one too */
            if (size == 0xFFFFFFFFu || (size == 0 && (riff == 0 || riff == 0xFFFFFFFFu))) bytes = left;
            else if (bytes > left)
                return gr_err(GRAFT_E_FORMAT, "%s: truncated: the data chunk declares %u bytes, the file holds %zu",
                              name, size, left);
            size_t frames = bytes / (size_t)f.block;
            float *s = malloc((frames ? frames : 1) * sizeof(float));
            if (!s) return gr_err(GRAFT_E_NOMEM, "%s: out of memory for %zu samples", name, frames);
            int bps = f.bits / 8;
            for (size_t i = 0; i < frames; i++) {
                double acc = 0;
                for (int c = 0; c < f.channels; c++) acc += sample_at(body + i * (size_t)f.block + (size_t)c * bps, &f);
                s[i] = (float)(acc / f.channels);
            }
            out->samples = s;
            out->n = (int64_t)frames;
            out->rate = f.rate;
            out->channels = f.channels;
            out->bits = f.bits;
            return GRAFT_OK;
        }
        pos += 8 + (size_t)size + (size & 1);  /* chunks are padded to even sizes */
    }
    return gr_err(GRAFT_E_FORMAT, "%s: no %s chunk in the WAV file", name, have_fmt ? "data" : "fmt");
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
        if (!more) { free(buf); buf = NULL; break; }
        buf = more;
        cap *= 2;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf) return gr_err(GRAFT_E_NOMEM, "%s: out of memory", path);
    int st = bad ? gr_err(GRAFT_E_IO, "%s: read error", path) : gr_wav_decode_mem(path, buf, n, out);
    free(buf);
    return st;
}

int gr_wav_write(const char *path, const float *s, int64_t n, int rate)
{
    if (n < 0 || n > (int64_t)(0xFFFFFFFFu - 36) / 2)
        return gr_err(GRAFT_E_ARG, "%s: %lld samples do not fit in a WAV file", path, (long long)n);
    FILE *fp = fopen(path, "wb");
    if (!fp) return gr_err(GRAFT_E_IO, "%s: cannot create: %s", path, strerror(errno));
    uint32_t bytes = (uint32_t)(n * 2);
    uint8_t h[44];
    memcpy(h, "RIFF", 4);
    uint32_t v[] = {36 + bytes};
    memcpy(h + 4, v, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    uint32_t fmt[4] = {16, 1 | 1u << 16, (uint32_t)rate, (uint32_t)rate * 2};
    memcpy(h + 16, fmt, 16);
    uint16_t ba[2] = {2, 16};
    memcpy(h + 32, ba, 4);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &bytes, 4);
    int ok = fwrite(h, 1, 44, fp) == 44;
    for (int64_t i = 0; i < n && ok; i++) {
        float x = s[i] * 32768.0f;
        int16_t q = (int16_t)(x >= 32767 ? 32767 : x <= -32768 ? -32768 : lrintf(x));
        ok = fwrite(&q, 2, 1, fp) == 1;
    }
    int err = ok ? 0 : errno;
    if (fclose(fp) != 0 && ok) ok = 0, err = errno;
    return ok ? GRAFT_OK : gr_err(GRAFT_E_IO, "%s: write error: %s", path, strerror(err));
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

static int64_t gcd64(int64_t a, int64_t b) { while (b) { int64_t t = a % b; a = b; b = t; } return a; }

int gr_audio_resample(const gr_audio *in, int rate, gr_audio *out)
{
    if (in->rate == rate) {
        float *s = malloc((in->n ? (size_t)in->n : 1) * sizeof(float));
        if (!s) return gr_err(GRAFT_E_NOMEM, "out of memory resampling");
        if (in->n) memcpy(s, in->samples, (size_t)in->n * sizeof(float));
        *out = *in;
        out->samples = s;
        return GRAFT_OK;
    }
    /* output sample j sits at input position j * M / L; its phase is (j * M) mod L */
    int64_t g = gcd64(in->rate, rate), L = rate / g, M = in->rate / g;
    const int zeros = 16;
    const double beta = 8.6;
    double fc = 0.95 * (rate < in->rate ? (double)rate / in->rate : 1.0);  /* cutoff, cycles per 2 input samples */
    int half = (int)ceil(zeros / fc);                                     /* taps each side, in input samples */
    int taps = 2 * half;
    float *h = malloc((size_t)L * (size_t)taps * sizeof(float));
    int64_t n_out = (in->n * L + M - 1) / M;
    float *s = malloc((n_out ? (size_t)n_out : 1) * sizeof(float));
    if (!h || !s) { free(h); free(s); return gr_err(GRAFT_E_NOMEM, "out of memory resampling"); }
    double i0b = bessel_i0(beta);
    for (int64_t p = 0; p < L; p++) {
        double frac = (double)p / L;  /* output position minus its floor input sample */
        for (int t = 0; t < taps; t++) {
            double x = (t - half + 1) - frac;  /* input sample offset from the output position */
            double r = x / half;
            double w = fabs(r) >= 1 ? 0 : bessel_i0(beta * sqrt(1 - r * r)) / i0b;
            double arg = 3.14159265358979323846 * fc * x;
            double sinc = fabs(arg) < 1e-12 ? 1 : sin(arg) / arg;
            h[p * taps + t] = (float)(fc * sinc * w);
        }
    }
    for (int64_t j = 0; j < n_out; j++) {
        int64_t num = j * M, base = num / L, p = num % L;
        const float *hp = h + p * taps;
        double acc = 0;
        for (int t = 0; t < taps; t++) {
            int64_t k = base + t - half + 1;
            if (k >= 0 && k < in->n) acc += (double)hp[t] * in->samples[k];
        }
        s[j] = (float)acc;
    }
    free(h);
    *out = *in;
    out->samples = s;
    out->n = n_out;
    out->rate = rate;
    return GRAFT_OK;
}
