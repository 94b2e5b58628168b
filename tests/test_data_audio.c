#define _DEFAULT_SOURCE
/* test_data_audio.c — WAV decoding (every sample format against the values written, channel
 * mix-down, chunk walking, bad headers) and resampling (sums of sines against their closed form
 * at the new rate). */
#include "data/data.h"
#include "harness.h"
#include "speech/speech.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static size_t put16(uint8_t *p, unsigned v)
{
    p[0] = v & 255;
    p[1] = v >> 8 & 255;
    return 2;
}
static size_t put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = v >> (8 * i) & 255;
    return 4;
}

/* A WAV image with one fmt chunk (plain or extensible), an optional odd-sized LIST chunk first,
 * and data of `bytes` bytes (declared as `declared`). Returns its length. */
static size_t make_wav(uint8_t *b, int format, int channels, int rate, int bits, const void *data,
                       uint32_t bytes, uint32_t declared, int extensible, int list_first)
{
    size_t p = 0;
    memcpy(b, "RIFF", 4), p = 8;
    memcpy(b + p, "WAVE", 4), p += 4;
    if (list_first) {
        memcpy(b + p, "LIST", 4), p += 4;
        p += put32(b + p, 3);
        memcpy(b + p, "abc\0", 4), p += 4; /* 3 bytes + 1 pad */
    }
    memcpy(b + p, "fmt ", 4), p += 4;
    p += put32(b + p, extensible ? 40 : 16);
    p += put16(b + p, extensible ? 0xFFFE : (unsigned)format);
    p += put16(b + p, (unsigned)channels);
    p += put32(b + p, (uint32_t)rate);
    p += put32(b + p, (uint32_t)(rate * channels * bits / 8));
    p += put16(b + p, (unsigned)(channels * bits / 8));
    p += put16(b + p, (unsigned)bits);
    if (extensible) {
        p += put16(b + p, 22);
        p += put16(b + p, (unsigned)bits);
        p += put32(b + p, 0);
        p += put16(b + p, (unsigned)format); /* the sub-format GUID starts with the format code */
        memcpy(b + p, "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xAA\x00\x38\x9B\x71", 14), p += 14;
    }
    memcpy(b + p, "data", 4), p += 4;
    p += put32(b + p, declared);
    memcpy(b + p, data, bytes), p += bytes;
    put32(b + 4, (uint32_t)(p - 8));
    return p;
}

static void check_formats(void)
{
    static uint8_t buf[4096];
    const double want[4] = { 0.0, 0.5, -0.25, -1.0 };
    gr_audio a;
    /* 16-bit: v / 32768 exactly */
    int16_t s16[4] = { 0, 16384, -8192, -32768 };
    size_t n = make_wav(buf, 1, 1, 16000, 16, s16, 8, 8, 0, 0);
    CHECK(gr_wav_decode_mem("s16", buf, n, &a) == 0 && a.n == 4 && a.rate == 16000, "16-bit: %s",
          graft_last_error());
    for (int i = 0; i < 4 && a.samples; i++)
        CHECK(a.samples[i] == (float)want[i], "16-bit sample %d: %g", i, a.samples[i]);
    gr_audio_free(&a);
    /* 8-bit unsigned: (v - 128) / 128 */
    uint8_t u8[4] = { 128, 192, 96, 0 };
    n = make_wav(buf, 1, 1, 8000, 8, u8, 4, 4, 0, 1);
    CHECK(gr_wav_decode_mem("u8", buf, n, &a) == 0 && a.n == 4 && a.rate == 8000 && a.bits == 8,
          "8-bit: %s", graft_last_error());
    for (int i = 0; i < 4 && a.samples; i++)
        CHECK(a.samples[i] == (float)want[i], "8-bit sample %d: %g", i, a.samples[i]);
    gr_audio_free(&a);
    /* 24-bit little-endian signed */
    uint8_t s24[12] = { 0, 0, 0, 0, 0, 0x40, 0, 0, 0xE0, 0, 0, 0x80 };
    n = make_wav(buf, 1, 1, 44100, 24, s24, 12, 12, 0, 0);
    CHECK(gr_wav_decode_mem("s24", buf, n, &a) == 0 && a.n == 4, "24-bit: %s", graft_last_error());
    for (int i = 0; i < 4 && a.samples; i++)
        CHECK(a.samples[i] == (float)want[i], "24-bit sample %d: %g", i, a.samples[i]);
    gr_audio_free(&a);
    /* 32-bit int */
    int32_t s32[4] = { 0, 1 << 30, -(1 << 29), INT32_MIN };
    n = make_wav(buf, 1, 1, 48000, 32, s32, 16, 16, 0, 0);
    CHECK(gr_wav_decode_mem("s32", buf, n, &a) == 0 && a.n == 4, "32-bit: %s", graft_last_error());
    for (int i = 0; i < 4 && a.samples; i++)
        CHECK(a.samples[i] == (float)want[i], "32-bit sample %d: %g", i, a.samples[i]);
    gr_audio_free(&a);
    /* float32 in WAVE_FORMAT_EXTENSIBLE, stereo: the mean of the channels */
    float f32[8] = { 0.2f, -0.2f, 0.5f, 0.5f, -1.0f, 0.5f, 0.75f, -0.25f };
    n = make_wav(buf, 3, 2, 22050, 32, f32, 32, 32, 1, 0);
    CHECK(gr_wav_decode_mem("f32x2", buf, n, &a) == 0 && a.n == 4 && a.channels == 2,
          "float stereo: %s", graft_last_error());
    const float mean[4] = { 0.0f, 0.5f, -0.25f, 0.25f };
    for (int i = 0; i < 4 && a.samples; i++)
        CHECK(fabsf(a.samples[i] - mean[i]) < 1e-7f, "stereo mean %d: %g", i, a.samples[i]);
    gr_audio_free(&a);
    /* float64; a streaming writer's 0xFFFFFFFF data size means "to the end" */
    double f64[4] = { 0.0, 0.5, -0.25, -1.0 };
    n = make_wav(buf, 3, 1, 16000, 64, f64, 32, 0xFFFFFFFFu, 0, 0);
    CHECK(gr_wav_decode_mem("f64", buf, n, &a) == 0 && a.n == 4, "float64 streamed: %s",
          graft_last_error());
    for (int i = 0; i < 4 && a.samples; i++)
        CHECK(a.samples[i] == (float)want[i], "float64 sample %d", i);
    gr_audio_free(&a);
    /* a data chunk that declares 0 bytes in a file with a real RIFF size is empty, whatever follows
     */
    n = make_wav(buf, 1, 1, 16000, 16, s16, 8, 0, 0, 0);
    CHECK(gr_wav_decode_mem("zero", buf, n, &a) == 0 && a.n == 0,
          "declared-empty data: %lld samples", (long long)a.n);
    gr_audio_free(&a);
}

static void check_bad(void)
{
    static uint8_t buf[4096];
    gr_audio a = { 0 };
    int16_t s16[4] = { 0 };
    CHECK(gr_wav_decode_mem("empty.wav", buf, 0, &a) != 0 &&
              strstr(graft_last_error(), "empty.wav: the file is empty"),
          "empty: %s", graft_last_error());
    memcpy(buf, "OggS0000WAVEfmt ", 16);
    CHECK(gr_wav_decode_mem("x.wav", buf, 16, &a) != 0 &&
              strstr(graft_last_error(), "not a WAV file"),
          "magic: %s", graft_last_error());
    size_t n = make_wav(buf, 1, 1, 16000, 16, s16, 8, 4000, 0, 0);
    CHECK(gr_wav_decode_mem("cut.wav", buf, n, &a) != 0 &&
              strstr(graft_last_error(),
                     "truncated: the data chunk declares 4000 bytes, the file holds 8"),
          "truncated: %s", graft_last_error());
    n = make_wav(buf, 2, 1, 16000, 16, s16, 8, 8, 0, 0);
    CHECK(gr_wav_decode_mem("adpcm.wav", buf, n, &a) == GRAFT_E_UNSUPPORTED &&
              strstr(graft_last_error(), "sample format 2"),
          "ADPCM: %s", graft_last_error());
    n = make_wav(buf, 1, 1, 16000, 12, s16, 8, 8, 0, 0);
    CHECK(gr_wav_decode_mem("12bit.wav", buf, n, &a) == GRAFT_E_UNSUPPORTED &&
              strstr(graft_last_error(), "12bit.wav: 12-bit PCM samples are not supported"),
          "12-bit: %s", graft_last_error());
    n = make_wav(buf, 1, 1, 16000, 16, s16, 8, 8, 0, 0);
    buf[32] = 7; /* block align */
    CHECK(gr_wav_decode_mem("align.wav", buf, n, &a) != 0 &&
              strstr(graft_last_error(), "block align 7"),
          "align: %s", graft_last_error());
    n = make_wav(buf, 1, 1, 16000, 16, s16, 8, 8, 0, 0);
    CHECK(gr_wav_decode_mem("nodata.wav", buf, n - 16, &a) != 0 &&
              strstr(graft_last_error(), "no data chunk"),
          "no data: %s", graft_last_error());
    CHECK(a.samples == NULL, "a failed decode leaves the output alone");
    CHECK(gr_wav_read("/nonexistent/x.wav", &a) == GRAFT_E_IO &&
              strstr(graft_last_error(), "/nonexistent/x.wav"),
          "missing file: %s", graft_last_error());
}

/* x(t) = sum of sines, sampled at `from`, resampled to `to`, against x at the new instants
 * (the first and last 64 output samples excluded: the filter sees zeros beyond the ends). */
static void check_resample(int from, int to, const double *hz, int nhz)
{
    gr_audio in = { .n = from / 2, .rate = from, .channels = 1, .bits = 32 }, out = { 0 };
    in.samples = malloc((size_t)in.n * sizeof(float));
    for (int64_t i = 0; i < in.n; i++) {
        double v = 0;
        for (int k = 0; k < nhz; k++) v += 0.3 * sin(2 * 3.14159265358979 * hz[k] * i / from + k);
        in.samples[i] = (float)v;
    }
    int st = gr_audio_resample(&in, to, &out);
    CHECK(st == 0 && out.rate == to && out.n == (in.n * to + from - 1) / from,
          "resample %d -> %d: n %lld", from, to, (long long)out.n);
    double worst = 0;
    for (int64_t j = 64; !st && j < out.n - 64; j++) {
        double v = 0;
        for (int k = 0; k < nhz; k++) v += 0.3 * sin(2 * 3.14159265358979 * hz[k] * j / to + k);
        worst = fmax(worst, fabs(out.samples[j] - v));
    }
    printf("resample %5d -> %5d Hz: max error %.2e against the sines\n", from, to, worst);
    CHECK(worst < 1e-4, "resample %d -> %d: max error %.3g", from, to, worst);
    gr_audio_free(&in);
    gr_audio_free(&out);
}

static void check_write_read(void)
{
    char path[] = "/tmp/graft_audio_XXXXXX.wav";
    int fd = mkstemps(path, 4);
    CHECK(fd >= 0, "temp file");
    if (fd < 0) return;
    close(fd);
    float x[5] = { 0.0f, 0.5f, -0.25f, -1.0f, 0.999f };
    CHECK(gr_wav_write(path, x, 5, 16000) == 0, "write: %s", graft_last_error());
    gr_audio a;
    CHECK(gr_wav_read(path, &a) == 0 && a.n == 5 && a.rate == 16000 && a.bits == 16,
          "read back: %s", graft_last_error());
    for (int i = 0; i < 4 && a.samples; i++) CHECK(a.samples[i] == x[i], "round trip %d", i);
    gr_audio_free(&a);
    remove(path);
}

int main(void)
{
    check_formats();
    check_bad();
    const double speech[] = { 440, 1000, 3000, 5000 };
    check_resample(44100, 16000, speech, 4);
    check_resample(48000, 16000, speech, 4);
    check_resample(22050, 16000, speech, 4);
    check_resample(16000, 16000, speech, 4);
    const double low[] = { 440, 3000 };
    check_resample(8000, 16000, low, 2);
    check_resample(11025, 16000, low, 2);
    check_write_read();
    return th_finish();
}
