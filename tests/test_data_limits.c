/* test_data_limits.c — what a data file may make graft do (graft_set_limit): files that declare
 * more than their bytes hold or more than a limit allows, each refused from its header with a
 * status that is neither GRAFT_E_NOMEM nor GRAFT_E_INTERNAL, a message naming the file and the
 * reason (or the limit), and no large allocation (peak RSS); the same files loading once the
 * limit is raised, and files at the boundary loading at the default. The inputs are written here
 * (JPEG through TurboJPEG, PNG and gzip through zlib, WAV, IDX, CSV and NPY by hand). */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "data/data.h"
#include "speech/speech.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <zlib.h>

static char tmp[256];

#define MB ((size_t)1 << 20)

static char *pathf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

/* A refusal: not OK, not NOMEM/INTERNAL, the given status (0: any), every piece (NULL-ended)
 * in the message. */
static void expect_refused(int st, int want, const char *what, ...)
{
    const char *msg = graft_last_error();
    CHECK(st != GRAFT_OK, "%s: expected an error, got success", what);
    CHECK(st != GRAFT_E_NOMEM && st != GRAFT_E_INTERNAL, "%s: status %d (%s)", what, st, msg);
    if (want) CHECK(st == want, "%s: status %d, expected %d (%s)", what, st, want, msg);
    va_list ap;
    va_start(ap, what);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        CHECK(strstr(msg, s) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, s);
    va_end(ap);
}

/* Peak RSS must not have grown by `mb` MB or more since rss0: refused before allocating. */
static void expect_small(size_t rss0, size_t mb, const char *what)
{
    size_t grew = gr_peak_rss() - rss0;
    CHECK(grew < mb * MB, "%s: peak RSS grew by %zu bytes", what, grew);
}

static int decode_file(const char *path, gr_image *im)
{
    memset(im, 0, sizeof *im);
    return gr_image_decode(path, im);
}

static void be16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void be32(uint8_t *p, uint32_t v)
{
    be16(p, v >> 16);
    be16(p + 2, v & 0xFFFF);
}
static void le16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void le32(uint8_t *p, uint32_t v)
{
    le16(p, v & 0xFFFF);
    le16(p + 2, v >> 16);
}

/* ---- JPEG ---------------------------------------------------------------------------------- */

/* A w x h RGB JPEG of a busy pattern (4:2:0, quality 90, TurboJPEG's flags), with libjpeg's JFIF
 * APP0 as its second marker; caller frees with tjFree. */
static uint8_t *make_jpeg_flags(int w, int h, int flags, unsigned long *n)
{
    uint8_t *px = malloc((size_t)w * h * 3), *jpg = NULL;
    for (int i = 0; i < w * h * 3; i++) px[i] = (uint8_t)(i * 37 + (i / (3 * w)) * 11);
    tjhandle tj = tjInitCompress();
    if (!tj || tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, n, TJSAMP_420, 90, flags) != 0) {
        fprintf(stderr, "tjCompress2 failed\n");
        exit(2);
    }
    tjDestroy(tj);
    free(px);
    return jpg;
}

static uint8_t *make_jpeg(int w, int h, unsigned long *n) { return make_jpeg_flags(w, h, 0, n); }

static size_t marker_at(const uint8_t *b, size_t n, unsigned m)
{
    for (size_t i = 2; i + 9 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == m) return i;
    fprintf(stderr, "no marker 0x%02x\n", m);
    exit(2);
}

static size_t sof_at(const uint8_t *b, size_t n) { return marker_at(b, n, 0xC0); }

/* graft's verdict on each JPEG file of test_jpeg, for pil_agrees: decoded (1) or refused (0),
 * and whether PIL's verdict differs on purpose. */
static struct {
    char path[400];
    int ok, differs;
} verdicts[16];
static int nverdicts;

static void verdict(const char *path, int st, int differs)
{
    if (nverdicts == 16) {
        fprintf(stderr, "too many verdicts\n");
        exit(2);
    }
    snprintf(verdicts[nverdicts].path, sizeof verdicts[nverdicts].path, "%s", path);
    verdicts[nverdicts].ok = st == GRAFT_OK;
    verdicts[nverdicts++].differs = differs;
}

/* PIL's verdict (scripts/data_reference.py verdict: Image.open, exif_transpose, convert("RGB"))
 * on each file must be graft's, but where it differs on purpose. */
static void pil_agrees(void)
{
    char script[600], list[400], out[400], cmd[1600], line[1024];
    const char *src = getenv("GRAFT_SOURCE_DIR");
    if (src) snprintf(script, sizeof script, "%s/scripts/data_reference.py", src);
    else {
        snprintf(script, sizeof script, "%s", __FILE__); /* .../tests/test_data_limits.c */
        char *cut = strstr(script, "tests/test_data_limits.c");
        if (cut) strcpy(cut, "scripts/data_reference.py");
    }
    FILE *f = fopen(pathf(list, sizeof list, "%s/verdicts.txt", tmp), "w");
    for (int k = 0; k < nverdicts; k++) fprintf(f, "%s\n", verdicts[k].path);
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' verdict '%s' '%s'", script, list,
             pathf(out, sizeof out, "%s/verdicts.out", tmp));
    int rc = system(cmd);
    CHECK(rc == 0 && (f = fopen(out, "r")) != NULL,
          "%s failed (PIL's verdicts need /usr/bin/python3 with PIL)", cmd);
    if (rc || !f) return;
    int k = 0;
    for (; k < nverdicts && fgets(line, sizeof line, f); k++) {
        int pil_ok = !strncmp(line, "ok ", 3);
        line[strcspn(line, "\n")] = 0;
        CHECK(verdicts[k].ok == (pil_ok != verdicts[k].differs),
              "%s: PIL says \"%s\", graft %s it%s", verdicts[k].path, line,
              verdicts[k].ok ? "decodes" : "refuses",
              verdicts[k].differs ? " (a divergence on purpose)" : "");
    }
    fclose(f);
    CHECK(k == nverdicts, "PIL gave %d verdicts for %d files", k, nverdicts);
}

static void test_jpeg(void)
{
    unsigned long n;
    uint8_t *jpg = make_jpeg(16, 16, &n), *b = malloc(n + 2);
    char p[400];
    gr_image im, good;
    /* the file as written decodes (the boundary: nothing about it is refused) */
    write_file(pathf(p, sizeof p, "%s/good.jpg", tmp), jpg, n);
    int st = decode_file(p, &good);
    CHECK(st == GRAFT_OK && good.w == 16 && good.h == 16, "good JPEG: %s", graft_last_error());
    verdict(p, st, 0);
    /* the reproducer: 727 bytes whose SOF declares 16 x 62,987 and whose marker after SOI is
     * garbage. libjpeg alone warns of "extraneous bytes" and decodes a mostly gray image; PIL
     * refuses it ("cannot identify": no marker after SOI), and graft with it, before decoding */
    memcpy(b, jpg, n);
    size_t sof = sof_at(b, n);
    be16(b + sof + 5, 62987);
    b[2] = b[3] = 0;
    write_file(pathf(p, sizeof p, "%s/tall.jpg", tmp), b, n);
    size_t rss0 = gr_peak_rss();
    st = decode_file(p, &im);
    expect_refused(st, GRAFT_E_FORMAT, "16 x 62987 JPEG", p, "byte 2 is 0x00",
                   "PIL: not a JPEG file", NULL);
    expect_small(rss0, 16, "16 x 62987 JPEG");
    CHECK(im.rgb == NULL, "tall JPEG: output untouched");
    verdict(p, st, 0);
    /* the second marker's 0xFF kept, its code corrupt: PIL's "no marker found" */
    b[2] = 0xFF;
    b[3] = 0x12;
    write_file(pathf(p, sizeof p, "%s/tall_ff12.jpg", tmp), b, n);
    st = decode_file(p, &im);
    expect_refused(st, GRAFT_E_FORMAT, "16 x 62987 JPEG, marker 0xFF12", p,
                   "0xFF12 at offset 2 is not a JPEG marker", NULL);
    verdict(p, st, 0);
    /* the same size with intact markers: the data segment ends early, a warning to libjpeg, which
     * decodes the rest as gray; PIL keeps that image, and so does graft (3 MB) */
    memcpy(b, jpg, n);
    be16(b + sof + 5, 62987);
    write_file(pathf(p, sizeof p, "%s/short.jpg", tmp), b, n);
    st = decode_file(p, &im);
    CHECK(st == GRAFT_OK && im.w == 16 && im.h == 62987,
          "16 x 62987 JPEG with its markers intact: %s", graft_last_error());
    if (st == GRAFT_OK) {
        CHECK(!memcmp(im.rgb, good.rgb, 16 * 8 * 3),
              "16 x 62987 JPEG: its first 8 rows are the 16 x 16 image's");
        CHECK(im.rgb[(size_t)16 * 62987 * 3 - 1] == 128, "16 x 62987 JPEG: gray at the end (%d)",
              im.rgb[(size_t)16 * 62987 * 3 - 1]);
        gr_image_free(&im);
    }
    verdict(p, st, 0);
    /* 17000 x 10000 (170 M pixels, within the default limit) from the same bytes: PIL and graft
     * decode it too, to a 510 MB gray image (checked by hand, not here). What bounds that work is
     * the image-pixels limit: below it the header is refused before anything is allocated */
    memcpy(b, jpg, n);
    be16(b + sof + 5, 10000);
    be16(b + sof + 7, 17000);
    write_file(pathf(p, sizeof p, "%s/wide.jpg", tmp), b, n);
    int64_t saved = graft_get_limit(GRAFT_LIMIT_IMAGE_PIXELS);
    graft_set_limit(GRAFT_LIMIT_IMAGE_PIXELS, 169999999);
    rss0 = gr_peak_rss();
    expect_refused(decode_file(p, &im), GRAFT_E_LIMIT, "17000 x 10000 JPEG", p, "17000x10000",
                   "image-pixels = 169999999", NULL);
    expect_small(rss0, 16, "17000 x 10000 JPEG");
    graft_set_limit(GRAFT_LIMIT_IMAGE_PIXELS, saved);
    be16(b + sof + 5, 1000);
    be16(b + sof + 7, 1700);
    write_file(pathf(p, sizeof p, "%s/wide1700.jpg", tmp), b, n);
    st = decode_file(p, &im);
    CHECK(st == GRAFT_OK && im.w == 1700 && im.h == 1000, "1700 x 1000 JPEG of %lu bytes: %s", n,
          graft_last_error());
    gr_image_free(&im);
    verdict(p, st, 0);
    /* only the second marker corrupt: PIL refuses it, graft too */
    memcpy(b, jpg, n);
    b[2] = b[3] = 0;
    write_file(pathf(p, sizeof p, "%s/marker.jpg", tmp), b, n);
    st = decode_file(p, &im);
    expect_refused(st, GRAFT_E_FORMAT, "corrupt second marker", p, "byte 2 is 0x00", NULL);
    verdict(p, st, 0);
    /* cut inside the SOS header, an end-of-image marker put after it: truncated for both */
    size_t sos = marker_at(jpg, n, 0xDA),
           data = sos + 2 + ((size_t)jpg[sos + 2] << 8 | jpg[sos + 3]);
    memcpy(b, jpg, sos + 6);
    b[sos + 6] = 0xFF;
    b[sos + 7] = 0xD9;
    write_file(pathf(p, sizeof p, "%s/cut_sos.jpg", tmp), b, sos + 8);
    st = decode_file(p, &im);
    expect_refused(st, GRAFT_E_FORMAT, "JPEG cut in its SOS header", p,
                   "truncated JPEG (the SOS segment at offset", NULL);
    verdict(p, st, 0);
    /* cut in the middle of the data segment (of its one MCU), the end-of-image marker put back:
     * libjpeg warns and decodes zeros for the rest; PIL decodes it, graft too */
    size_t cut = data + (n - 2 - data) / 2;
    if (jpg[cut - 1] == 0xFF) cut++;
    memcpy(b, jpg, cut);
    b[cut] = 0xFF;
    b[cut + 1] = 0xD9;
    write_file(pathf(p, sizeof p, "%s/cut_data.jpg", tmp), b, cut + 2);
    st = decode_file(p, &im);
    CHECK(st == GRAFT_OK && im.w == 16 && im.h == 16, "JPEG cut in its data: %s",
          graft_last_error());
    gr_image_free(&im);
    verdict(p, st, 0);
    free(b);
    tjFree(jpg);
    gr_image_free(&good);
    /* a progressive JPEG whose last scan is repeated 600 times (29 kB): libjpeg warns of an
     * inconsistent progression and would decode every scan, each a pass over the whole image;
     * TJFLAG_LIMITSCANS stops it at 500 scans. PIL decodes it: a divergence on purpose */
    jpg = make_jpeg_flags(64, 48, TJFLAG_PROGRESSIVE, &n);
    size_t last = 0;
    for (size_t i = 2; i + 1 < n; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xDA) last = i;
    size_t scan = n - 2 - last, big = n + 600 * scan;
    b = malloc(big);
    memcpy(b, jpg, n - 2);
    for (int k = 0; k < 600; k++) memcpy(b + n - 2 + (size_t)k * scan, jpg + last, scan);
    memcpy(b + big - 2, "\xFF\xD9", 2);
    write_file(pathf(p, sizeof p, "%s/scans.jpg", tmp), b, big);
    st = decode_file(p, &im);
    expect_refused(st, GRAFT_E_FORMAT, "600 repeated scans", p, "more than 500 scans", NULL);
    verdict(p, st, 1);
    free(b);
    tjFree(jpg);
    pil_agrees();
}

/* The image-pixels limit on a JPEG, a PNG and a PGM of w x h = 200 pixels: refused at 199, loads
 * at 200 (the boundary). */
static void limit_round(const char *path, const char *what)
{
    gr_image im;
    int64_t saved = graft_get_limit(GRAFT_LIMIT_IMAGE_PIXELS);
    CHECK(decode_file(path, &im) == GRAFT_OK, "%s at the default limit: %s", what,
          graft_last_error());
    gr_image_free(&im);
    graft_set_limit(GRAFT_LIMIT_IMAGE_PIXELS, 199);
    expect_refused(decode_file(path, &im), GRAFT_E_LIMIT, what, path, "20x10", "image-pixels = 199",
                   NULL);
    graft_set_limit(GRAFT_LIMIT_IMAGE_PIXELS, 200);
    CHECK(decode_file(path, &im) == GRAFT_OK && im.w == 20 && im.h == 10,
          "%s at a limit of 200: %s", what, graft_last_error());
    gr_image_free(&im);
    graft_set_limit(GRAFT_LIMIT_IMAGE_PIXELS, saved);
}

/* A PNG (8-bit gray, filter 0 rows) whose IHDR says w x h, with the pixels of `rows` rows. */
static size_t make_png(uint8_t *out, uint32_t w, uint32_t h, uint32_t rows)
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n' };
    size_t raw_n = (size_t)rows * (w + 1), n = 8;
    uint8_t *raw = calloc(raw_n + 1, 1), ihdr[13] = { 0 };
    for (size_t i = 0; i < raw_n; i++) raw[i] = i % (w + 1) ? (uint8_t)(i * 7) : 0;
    be32(ihdr, w);
    be32(ihdr + 4, h);
    ihdr[8] = 8; /* depth 8, color type 0 (gray), deflate, filter 0, no interlace */
    memcpy(out, sig, 8);
    uLongf zn = compressBound(raw_n);
    uint8_t *z = malloc(zn);
    compress(z, &zn, raw, raw_n);
    const struct {
        const char *type;
        const uint8_t *data;
        size_t len;
    } chunks[3] = { { "IHDR", ihdr, 13 }, { "IDAT", z, zn }, { "IEND", NULL, 0 } };
    for (int c = 0; c < 3; c++) {
        be32(out + n, (uint32_t)chunks[c].len);
        memcpy(out + n + 4, chunks[c].type, 4);
        if (chunks[c].len) memcpy(out + n + 8, chunks[c].data, chunks[c].len);
        be32(out + n + 8 + chunks[c].len, (uint32_t)crc32(0, out + n + 4, (uInt)chunks[c].len + 4));
        n += 12 + chunks[c].len;
    }
    free(z);
    free(raw);
    return n;
}

static void test_image_limits(void)
{
    char p[400];
    unsigned long n;
    uint8_t *jpg = make_jpeg(20, 10, &n), png[4096];
    write_file(pathf(p, sizeof p, "%s/20x10.jpg", tmp), jpg, n);
    tjFree(jpg);
    limit_round(p, "JPEG 20x10");
    write_file(pathf(p, sizeof p, "%s/20x10.png", tmp), png, make_png(png, 20, 10, 10));
    limit_round(p, "PNG 20x10");
    uint8_t pgm[256] = "P5 20 10 255\n";
    write_file(pathf(p, sizeof p, "%s/20x10.pgm", tmp), pgm, 13 + 200);
    limit_round(p, "PGM 20x10");
    /* headers declaring 200 million pixels (under the per-side limit, over the pixel limit):
     * refused with GRAFT_E_LIMIT before the 600 MB RGB buffer */
    gr_image im;
    size_t rss0 = gr_peak_rss();
    write_file(pathf(p, sizeof p, "%s/big.png", tmp), png, make_png(png, 20000, 10000, 1));
    expect_refused(decode_file(p, &im), GRAFT_E_LIMIT, "PNG 20000x10000", p, "20000x10000",
                   "image-pixels", NULL);
    write_text(pathf(p, sizeof p, "%s/big.pgm", tmp), "P5 20000 10000 255\n\x01\x02");
    expect_refused(decode_file(p, &im), GRAFT_E_LIMIT, "PGM 20000x10000", p, "20000x10000",
                   "image-pixels", NULL);
    jpg = make_jpeg(16, 16, &n);
    be16(jpg + sof_at(jpg, n) + 5, 10000);
    be16(jpg + sof_at(jpg, n) + 7, 20000);
    write_file(pathf(p, sizeof p, "%s/big.jpg", tmp), jpg, n);
    tjFree(jpg);
    expect_refused(decode_file(p, &im), GRAFT_E_LIMIT, "JPEG 20000x10000", p, "20000x10000",
                   "image-pixels", NULL);
    expect_small(rss0, 64, "200-megapixel headers");
    /* a side beyond graft's ints stays unsupported (spng's own limit, named as graft names it) */
    write_file(pathf(p, sizeof p, "%s/wide.png", tmp), png, make_png(png, 70000, 1, 1));
    expect_refused(decode_file(p, &im), GRAFT_E_UNSUPPORTED, "PNG 70000 wide", p, "70000x1", NULL);
    /* sizes made by resizing and cropping are held to the same limit */
    gr_image one = { 2, 1, (uint8_t[6]){ 0 } }, out;
    expect_refused(gr_image_resize(&one, 20000, 20000, &out), GRAFT_E_LIMIT,
                   "resize to 20000x20000", "image resize", "image-pixels", NULL);
    expect_refused(gr_image_crop(&one, 0, 0, 20000, 20000, &out), GRAFT_E_LIMIT,
                   "crop to 20000x20000", "image crop", "image-pixels", NULL);
}

/* ---- WAV ----------------------------------------------------------------------------------- */

/* A 16-bit mono WAV header at `rate` whose data chunk declares `declared` bytes, followed by
 * `bytes` bytes of a ramp; returns the file's size (44 + bytes). */
static size_t make_wav(uint8_t *b, uint32_t rate, uint32_t bytes, uint32_t declared)
{
    memcpy(b, "RIFF", 4);
    le32(b + 4, 36 + bytes);
    memcpy(b + 8, "WAVEfmt ", 8);
    le32(b + 16, 16);
    le16(b + 20, 1);
    le16(b + 22, 1);
    le32(b + 24, rate);
    le32(b + 28, rate * 2);
    le16(b + 32, 2);
    le16(b + 34, 16);
    memcpy(b + 36, "data", 4);
    le32(b + 40, declared);
    for (uint32_t i = 0; i < bytes; i++) b[44 + i] = (uint8_t)(i * 13);
    return 44 + bytes;
}

static void test_wav(void)
{
    static uint8_t b[44 + 2 * 16001];
    char p[400];
    gr_audio a = { 0 }, r = { 0 };
    /* the reproducer: 46 bytes declaring 767,999 Hz; its resampling table was 100 MB */
    write_file(pathf(p, sizeof p, "%s/fast.wav", tmp), b, make_wav(b, 767999, 2, 2));
    expect_refused(gr_wav_read(p, &a), GRAFT_E_LIMIT, "767999 Hz", p, "767999 Hz",
                   "audio-rate = 384000", NULL);
    CHECK(a.samples == NULL, "767999 Hz: output untouched");
    int64_t saved = graft_get_limit(GRAFT_LIMIT_AUDIO_RATE);
    graft_set_limit(GRAFT_LIMIT_AUDIO_RATE, 768000);
    size_t rss0 = gr_peak_rss();
    double t0 = gr_now();
    CHECK(gr_wav_read(p, &a) == GRAFT_OK && a.n == 1 && a.rate == 767999,
          "767999 Hz with the limit raised: %s", graft_last_error());
    CHECK(a.samples && gr_audio_resample(&a, 16000, &r) == GRAFT_OK && r.n == 1,
          "767999 -> 16000 Hz: %s", graft_last_error());
    printf("46-byte WAV at 767999 Hz read and resampled in %.3f s\n", gr_now() - t0);
    expect_small(rss0, 32, "resampling one sample from 767999 Hz");
    gr_audio_free(&a);
    gr_audio_free(&r);
    graft_set_limit(GRAFT_LIMIT_AUDIO_RATE, saved);
    /* the boundaries: 384000 Hz loads at the default limit, 1000 Hz is the lowest rate, 999 not */
    write_file(p, b, make_wav(b, 384000, 2, 2));
    CHECK(gr_wav_read(p, &a) == GRAFT_OK && a.rate == 384000, "384000 Hz: %s", graft_last_error());
    gr_audio_free(&a);
    write_file(p, b, make_wav(b, 1000, 2, 2));
    CHECK(gr_wav_read(p, &a) == GRAFT_OK && a.rate == 1000, "1000 Hz: %s", graft_last_error());
    gr_audio_free(&a);
    write_file(p, b, make_wav(b, 999, 2, 2));
    expect_refused(gr_wav_read(p, &a), GRAFT_E_FORMAT, "999 Hz", p, "999 Hz", "at least 1000",
                   NULL);
    /* a data chunk declaring more than the file holds */
    write_file(p, b, make_wav(b, 16000, 2, 0x7FFFFFF0u));
    expect_refused(gr_wav_read(p, &a), GRAFT_E_FORMAT, "declared 2 GB", p,
                   "declares 2147483632 bytes", NULL);
    /* the length: 1 s at 16 kHz passes a 1-second limit, one sample more does not */
    saved = graft_get_limit(GRAFT_LIMIT_AUDIO_SECONDS);
    graft_set_limit(GRAFT_LIMIT_AUDIO_SECONDS, 1);
    write_file(p, b, make_wav(b, 16000, 32000, 32000));
    CHECK(gr_wav_read(p, &a) == GRAFT_OK && a.n == 16000, "1 s with a 1 s limit: %s",
          graft_last_error());
    gr_audio_free(&a);
    write_file(p, b, make_wav(b, 16000, 32002, 32002));
    expect_refused(gr_wav_read(p, &a), GRAFT_E_LIMIT, "16001 samples", p, "16001 samples",
                   "audio-seconds = 1", NULL);
    graft_set_limit(GRAFT_LIMIT_AUDIO_SECONDS, 2);
    CHECK(gr_wav_read(p, &a) == GRAFT_OK && a.n == 16001, "16001 samples with a 2 s limit: %s",
          graft_last_error());
    gr_audio_free(&a);
    graft_set_limit(GRAFT_LIMIT_AUDIO_SECONDS, saved);
}

/* 383,999 Hz (within the limit, gcd with 16 kHz 1: 16,000 phases of 810 taps): a short clip is
 * resampled with taps computed per sample, a longer one through the table; both give the same
 * samples, and the short one makes no table. */
static void test_resample_cost(void)
{
    const int from = 383999;
    gr_audio s = { .n = from / 10, .rate = from, .channels = 1, .bits = 16 }, l = s, rs = { 0 },
             rl = { 0 };
    l.n = from * 11 / 10;
    l.samples = malloc((size_t)l.n * sizeof(float));
    for (int64_t i = 0; i < l.n; i++)
        l.samples[i] = (float)(0.3 * sin(2 * 3.14159265358979 * 440.0 * i / from));
    s.samples = l.samples;
    size_t rss0 = gr_peak_rss();
    double t0 = gr_now();
    CHECK(gr_audio_resample(&s, 16000, &rs) == GRAFT_OK && rs.n == 1600,
          "0.1 s at 383999 Hz: %s (n %lld)", graft_last_error(), (long long)rs.n);
    printf("0.1 s at 383999 Hz resampled in %.3f s\n", gr_now() - t0);
    expect_small(rss0, 32, "resampling 0.1 s from 383999 Hz");
    CHECK(gr_audio_resample(&l, 16000, &rl) == GRAFT_OK && rl.n == 17600, "1.1 s at 383999 Hz: %s",
          graft_last_error());
    int same = rs.samples && rl.samples;
    for (int64_t j = 0; same && j < rs.n - 64; j++) same = rs.samples[j] == rl.samples[j];
    CHECK(same, "per-sample taps and the table give the same samples");
    double worst = 0;
    for (int64_t j = 64; rs.samples && j < rs.n - 64; j++)
        worst =
            fmax(worst, fabs(rs.samples[j] - 0.3 * sin(2 * 3.14159265358979 * 440.0 * j / 16000)));
    CHECK(worst < 1e-4, "383999 -> 16000 Hz: max error %.3g against the sine", worst);
    free(l.samples);
    gr_audio_free(&rs);
    gr_audio_free(&rl);
}

/* ---- IDX ----------------------------------------------------------------------------------- */

/* gzip (one member) of data[0..n) followed by `zeros` zero bytes, into path; returns its size. */
static size_t write_gz(const char *path, const uint8_t *data, size_t n, size_t zeros, size_t pad)
{
    z_stream z = { 0 };
    deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, n + zeros) + pad, out_n;
    uint8_t *out = calloc(cap, 1), *zero = calloc(MB, 1);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    deflate(&z, Z_NO_FLUSH);
    for (size_t left = zeros; left > 0;) {
        size_t k = left < MB ? left : MB;
        z.next_in = zero;
        z.avail_in = (uInt)k;
        deflate(&z, Z_NO_FLUSH);
        left -= k;
    }
    deflate(&z, Z_FINISH);
    out_n = cap - z.avail_out;
    deflateEnd(&z);
    write_file(path, out, out_n + pad); /* pad: zero bytes after the member, which gzip ignores */
    free(out);
    free(zero);
    return out_n + pad;
}

/* An IDX images file of `count` declared images of 28x28 carrying `have` of them (noise, so the
 * stream does not shrink to nothing), plus `extra` zeros, gzipped; and its labels (count, 0/1). */
static void write_idx_gz(const char *stem, uint32_t count, uint32_t have, size_t extra, size_t pad)
{
    char p[400];
    size_t n = 16 + (size_t)have * 784;
    uint8_t *im = malloc(n), lb[8 + 16];
    be32(im, 0x803);
    be32(im + 4, count);
    be32(im + 8, 28);
    be32(im + 12, 28);
    for (size_t i = 16; i < n; i++) im[i] = (uint8_t)((i * 2654435761u) >> 13);
    write_gz(pathf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", tmp, stem), im, n, extra, pad);
    be32(lb, 0x801);
    be32(lb + 4, count);
    for (int i = 0; i < 16; i++) lb[8 + i] = (uint8_t)(i % 2);
    write_file(pathf(p, sizeof p, "%s/%s-labels-idx1-ubyte", tmp, stem), lb,
               8 + (count < 16 ? count : 16));
    free(im);
}

static int open_ds(const char *path, gr_dataset **ds)
{
    *ds = NULL;
    int st = gr_dataset_open(path, NULL, 0, ds);
    CHECK(st != GRAFT_OK || *ds != NULL, "%s: success without a dataset", path);
    return st;
}

static void test_idx(void)
{
    char p[400];
    gr_dataset *ds;
    /* the boundary: 3 images, 16 + 2352 bytes decompressed, loads at the default limit and at a
     * limit of exactly its size */
    write_idx_gz("ok", 3, 3, 0, 0);
    pathf(p, sizeof p, "%s/ok-images-idx3-ubyte.gz", tmp);
    CHECK(open_ds(p, &ds) == GRAFT_OK && ds->n == 3, "3 gz images: %s", graft_last_error());
    gr_dataset_free(ds);
    int64_t saved = graft_get_limit(GRAFT_LIMIT_DECOMPRESSED_BYTES);
    graft_set_limit(GRAFT_LIMIT_DECOMPRESSED_BYTES, 2367);
    expect_refused(open_ds(p, &ds), GRAFT_E_LIMIT, "gz one byte over", p, "2368 bytes decompressed",
                   "decompressed-bytes = 2367", NULL);
    graft_set_limit(GRAFT_LIMIT_DECOMPRESSED_BYTES, 2368);
    CHECK(open_ds(p, &ds) == GRAFT_OK && ds->n == 3, "3 gz images at a limit of 2368: %s",
          graft_last_error());
    gr_dataset_free(ds);
    graft_set_limit(GRAFT_LIMIT_DECOMPRESSED_BYTES, saved);
    /* the gzip bomb: a header asking 2,740,000 images (2.1 GB, over the 1 GiB default)
     * in a 5 MB file (so deflate's 1032:1 could hold it): refused from the header, nothing
     * allocated */
    write_idx_gz("bomb", 2740000, 1, 0, 5 * MB);
    pathf(p, sizeof p, "%s/bomb-images-idx3-ubyte.gz", tmp);
    size_t rss0 = gr_peak_rss();
    expect_refused(open_ds(p, &ds), GRAFT_E_LIMIT, "2.1 GB declared", p,
                   "2148160016 bytes decompressed", "decompressed-bytes", NULL);
    expect_small(rss0, 32, "2.1 GB declared");
    /* a stream that expands beyond its header (3 images declared, 64 MB of zeros after them):
     * inflating stops one byte past the header's size */
    write_idx_gz("long", 3, 3, 64 * MB, 0);
    pathf(p, sizeof p, "%s/long-images-idx3-ubyte.gz", tmp);
    rss0 = gr_peak_rss();
    expect_refused(open_ds(p, &ds), GRAFT_E_FORMAT, "gz longer than its header", p,
                   "need 2352 data bytes", "holds more than 2352", NULL);
    expect_small(rss0, 32, "gz longer than its header");
    /* a stream shorter than its header (1000 declared, 3 there; noise, so the ratio allows it) */
    write_idx_gz("shortgz", 1000, 3, 0, 0);
    pathf(p, sizeof p, "%s/shortgz-images-idx3-ubyte.gz", tmp);
    expect_refused(open_ds(p, &ds), GRAFT_E_FORMAT, "gz shorter than its header", p,
                   "need 784000 data bytes", "holds 2352", NULL);
    /* raw: the payload is held to the tensor-bytes limit (2352 bytes here) */
    char q[400];
    uint8_t raw[16 + 2352] = { 0 }, lb[8 + 3] = { 0 };
    be32(raw, 0x803), be32(raw + 4, 3), be32(raw + 8, 28), be32(raw + 12, 28);
    be32(lb, 0x801), be32(lb + 4, 3), lb[9] = 1;
    write_file(pathf(p, sizeof p, "%s/raw-images-idx3-ubyte", tmp), raw, sizeof raw);
    write_file(pathf(q, sizeof q, "%s/raw-labels-idx1-ubyte", tmp), lb, sizeof lb);
    saved = graft_get_limit(GRAFT_LIMIT_TENSOR_BYTES);
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, 2351);
    expect_refused(open_ds(p, &ds), GRAFT_E_LIMIT, "raw IDX over tensor-bytes", p, "2352 bytes",
                   "tensor-bytes = 2351", NULL);
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, 2352);
    CHECK(open_ds(p, &ds) == GRAFT_OK && ds->n == 3, "raw IDX at a limit of 2352: %s",
          graft_last_error());
    gr_dataset_free(ds);
    graft_set_limit(GRAFT_LIMIT_TENSOR_BYTES, saved);
}

/* ---- classes ------------------------------------------------------------------------------- */

/* path,label CSV of two rows (labels a and b) next to a 1x1 PGM; returns the CSV's path in p. */
static char *write_csv(char *p, size_t n, const char *name, const char *a, const char *b)
{
    char img[400], text[600];
    write_file(pathf(img, sizeof img, "%s/one.pgm", tmp), "P5 1 1 255\n\x7f", 12);
    snprintf(text, sizeof text, "path,label\none.pgm,%s\none.pgm,%s\n", a, b);
    write_text(pathf(p, n, "%s/%s", tmp, name), text);
    return p;
}

static void test_classes(void)
{
    char p[400];
    gr_dataset *ds;
    /* integer ids keep their values: 2^31 - 1 would be 2^31 classes, whatever the limit */
    write_csv(p, sizeof p, "int31.csv", "0", "2147483647");
    size_t rss0 = gr_peak_rss();
    expect_refused(open_ds(p, &ds), GRAFT_E_LIMIT, "label 2^31 - 1",
                   "int31.csv:3:", "bad label \"2147483647\"", "classes = 1000000", NULL);
    int64_t saved = graft_get_limit(GRAFT_LIMIT_CLASSES);
    graft_set_limit(GRAFT_LIMIT_CLASSES, (int64_t)1 << 40);
    expect_refused(open_ds(p, &ds), GRAFT_E_LIMIT, "label 2^31 - 1, limit 2^40",
                   "int31.csv:3:", "classes", NULL);
    expect_small(rss0, 32, "label 2^31 - 1");
    write_csv(p, sizeof p, "int64.csv", "0", "99999999999999999999999");
    expect_refused(open_ds(p, &ds), GRAFT_E_LIMIT, "label past int64", "int64.csv:3:", "more than",
                   NULL);
    /* the limit itself, at 10: label 9 makes 10 classes, label 10 eleven */
    graft_set_limit(GRAFT_LIMIT_CLASSES, 10);
    write_csv(p, sizeof p, "nine.csv", "0", "9");
    CHECK(open_ds(p, &ds) == GRAFT_OK && ds->nclass == 10, "label 9 with 10 classes allowed: %s",
          graft_last_error());
    gr_dataset_free(ds);
    write_csv(p, sizeof p, "ten.csv", "0", "10");
    expect_refused(open_ds(p, &ds), GRAFT_E_LIMIT, "label 10, limit 10",
                   "ten.csv:3:", "makes 11 classes", "classes = 10", NULL);
    graft_set_limit(GRAFT_LIMIT_CLASSES, 11);
    CHECK(open_ds(p, &ds) == GRAFT_OK && ds->nclass == 11, "label 10 with the limit raised: %s",
          graft_last_error());
    gr_dataset_free(ds);
    /* text labels, class folders and NPY labels count against it too */
    graft_set_limit(GRAFT_LIMIT_CLASSES, 1);
    write_csv(p, sizeof p, "text.csv", "cat", "dog");
    expect_refused(open_ds(p, &ds), GRAFT_E_LIMIT, "2 text labels, limit 1", p, "2 distinct labels",
                   "classes = 1", NULL);
    char d[400];
    for (int c = 0; c < 2; c++) {
        mkdir(pathf(d, sizeof d, "%s/folder", tmp), 0700);
        mkdir(pathf(d, sizeof d, "%s/folder/c%d", tmp, c), 0700);
        write_file(pathf(d, sizeof d, "%s/folder/c%d/x.pgm", tmp, c), "P5 1 1 255\n\x7f", 12);
    }
    pathf(d, sizeof d, "%s/folder", tmp);
    expect_refused(open_ds(d, &ds), GRAFT_E_LIMIT, "2 class folders, limit 1", d, "2 class folders",
                   NULL);
    graft_set_limit(GRAFT_LIMIT_CLASSES, 2);
    CHECK(open_ds(d, &ds) == GRAFT_OK && ds->nclass == 2, "2 class folders, limit 2: %s",
          graft_last_error());
    gr_dataset_free(ds);
    graft_set_limit(GRAFT_LIMIT_CLASSES, saved);
}

/* NPY labels: features (2, 1) float32 and int64 labels {0, 5} make 6 classes. */
static void test_npy_classes(void)
{
    char f[400], l[400];
    uint8_t buf[256] = { 0 };
    const char *fd = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }";
    const char *ld = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }";
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)strlen(fd);
    memcpy(buf + 10, fd, strlen(fd));
    write_file(pathf(f, sizeof f, "%s/feats.npy", tmp), buf, 10 + strlen(fd) + 8);
    memset(buf, 0, sizeof buf);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)strlen(ld);
    memcpy(buf + 10, ld, strlen(ld));
    buf[10 + strlen(ld) + 8] = 5;
    write_file(pathf(l, sizeof l, "%s/labels.npy", tmp), buf, 10 + strlen(ld) + 16);
    gr_dataset *ds = NULL;
    int64_t saved = graft_get_limit(GRAFT_LIMIT_CLASSES);
    graft_set_limit(GRAFT_LIMIT_CLASSES, 5);
    expect_refused(gr_dataset_open(f, l, 0, &ds), GRAFT_E_LIMIT, "NPY label 5, limit 5", l,
                   "makes 6 classes", "classes = 5", NULL);
    graft_set_limit(GRAFT_LIMIT_CLASSES, 6);
    CHECK(gr_dataset_open(f, l, 0, &ds) == GRAFT_OK && ds->nclass == 6, "NPY label 5, limit 6: %s",
          graft_last_error());
    gr_dataset_free(ds);
    graft_set_limit(GRAFT_LIMIT_CLASSES, saved);
}

/* ---- CSV shape ----------------------------------------------------------------------------- */

static void test_csv_shape(void)
{
    char p[400];
    gr_dataset *ds;
    write_file(pathf(p, sizeof p, "%s/one.pgm", tmp), "P5 1 1 255\n\x7f", 12);
    /* a row of 4 million fields under a 2-column header (4 MB of commas): refused at that row,
     * without keeping its fields (about 200 MB of small strings under ASan before) */
    size_t n = 4 * MB;
    char *text = malloc(n + 64);
    int k = snprintf(text, 64, "path,label\none.pgm,a\none.pgm,b");
    memset(text + k, ',', n);
    text[k + n] = '\n';
    write_file(pathf(p, sizeof p, "%s/wide.csv", tmp), text, (size_t)k + n + 1);
    size_t rss0 = gr_peak_rss();
    expect_refused(open_ds(p, &ds), GRAFT_E_FORMAT, "4M fields",
                   "wide.csv:3:", "4194306 fields, the header has 2", NULL);
    expect_small(rss0, 64, "a row of 4M fields");
    /* the header: 1024 columns are read, 1025 are not */
    for (int cols = 1024; cols <= 1025; cols++) {
        size_t len = 0;
        for (int c = 0; c < cols; c++)
            len += (size_t)snprintf(text + len, 16, c ? ",c%d" : "path", c);
        len += (size_t)snprintf(text + len, 16, "\n");
        for (int r = 0; r < 2; r++) {
            len += (size_t)snprintf(text + len, 16, "one.pgm");
            memset(text + len, ',', (size_t)cols - 1);
            len += (size_t)cols - 1;
            text[len++] = '\n';
        }
        write_file(pathf(p, sizeof p, "%s/cols%d.csv", tmp, cols), text, len);
        if (cols == 1024) {
            CHECK(open_ds(p, &ds) == GRAFT_OK && ds->ncol == 1023, "1024 columns: %s",
                  graft_last_error());
            gr_dataset_free(ds);
        } else {
            expect_refused(open_ds(p, &ds), GRAFT_E_UNSUPPORTED, "1025 columns", p, "1025 columns",
                           "at most 1024", NULL);
        }
    }
    free(text);
}

/* ---- transforms ---------------------------------------------------------------------------- */

static void test_transform(void)
{
    static const struct {
        const char *spec, *key;
        int status;
    } bad[] = {
        { "resize=99999999", "resize", GRAFT_E_ARG },
        { "crop=0", "crop", GRAFT_E_ARG },
        { "crop=-5", "crop", GRAFT_E_ARG },
        { "resize=nan", "resize", GRAFT_E_ARG },
        { "size=1e309", "size", GRAFT_E_ARG },
        { "size=100x2.5", "size", GRAFT_E_ARG },
        { "jitter=1e39:0:0:0", "jitter", GRAFT_E_ARG },
        { "normalize=1e39:0:0:1:1:1", "normalize", GRAFT_E_ARG },
        { "normalize=0:0:0:1e-50:1:1", "normalize", GRAFT_E_ARG },
        { "rrc=224:1e-50:1", "rrc", GRAFT_E_ARG },
        { "rrc=224:0.08:1:1e-9:1", "rrc", GRAFT_E_ARG },
        { "rrc=224:0.08:1:1:1e9", "rrc", GRAFT_E_ARG },
        { "size=20000x10000", "size", GRAFT_E_LIMIT },
        { "resize=14000", "resize", GRAFT_E_LIMIT },
        { "crop=14000", "crop", GRAFT_E_LIMIT },
        { "rrc=14000", "rrc", GRAFT_E_LIMIT },
    };
    gr_transform t, untouched;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gr_transform_default(&t);
        untouched = t;
        expect_refused(gr_transform_parse(bad[i].spec, &t), bad[i].status, bad[i].spec, bad[i].key,
                       NULL);
        CHECK(!memcmp(&t, &untouched, sizeof t), "%s: the transform is untouched", bad[i].spec);
        if (bad[i].status == GRAFT_E_LIMIT)
            CHECK(strstr(graft_last_error(), "image-pixels") != NULL, "%s names the limit",
                  bad[i].spec);
    }
    /* the boundary: 13000 x 13000 = 169 M pixels is within the default; a limit raised to
     * 200 M lets 20000 x 10000 through */
    CHECK(gr_transform_parse("size=13000", &t) == GRAFT_OK, "size=13000: %s", graft_last_error());
    int64_t saved = graft_get_limit(GRAFT_LIMIT_IMAGE_PIXELS);
    graft_set_limit(GRAFT_LIMIT_IMAGE_PIXELS, 200000000);
    CHECK(gr_transform_parse("size=20000x10000", &t) == GRAFT_OK, "size=20000x10000 raised: %s",
          graft_last_error());
    graft_set_limit(GRAFT_LIMIT_IMAGE_PIXELS, saved);
    /* extreme but valid RandomResizedCrop parameters stay within ints */
    CHECK(gr_transform_parse("rrc=224:1e-30:1:1e-4:1e4", &t) == GRAFT_OK, "extreme rrc: %s",
          graft_last_error());
    int mw, mh;
    gr_transform_decode_min(&t, &mw, &mh);
    CHECK(mw > 0 && mw <= GR_IMAGE_MAX_SIDE && mh > 0 && mh <= GR_IMAGE_MAX_SIDE,
          "decode minimum %dx%d", mw, mh);
    gr_rng rng;
    gr_rng_seed(&rng, 7);
    uint8_t px[64 * 48 * 3] = { 0 };
    gr_image img = { 64, 48, px };
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    for (int k = 0; k < 20; k++)
        CHECK(gr_transform_apply(&t, &img, &rng, out) == GRAFT_OK, "extreme rrc draw %d: %s", k,
              graft_last_error());
    free(out);
}

/* The loader refuses a transform (built by hand, past the parser) whose output is over the limit. */
static void test_loader(void)
{
    char p[400];
    gr_dataset *ds;
    write_csv(p, sizeof p, "loader.csv", "cat", "dog");
    if (open_ds(p, &ds)) return;
    gr_transform t;
    gr_transform_default(&t);
    t.crop = 15000;
    gr_loader_opts o = { .batch = 2 };
    gr_loader *l = NULL;
    expect_refused(gr_loader_new(ds, NULL, 0, &t, &o, &l), GRAFT_E_LIMIT, "loader crop 15000",
                   "loader", "image-pixels", NULL);
    CHECK(l == NULL, "loader: nothing made");
    gr_loader_free(l);
    gr_dataset_free(ds);
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/graft_limits_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    test_jpeg();
    test_image_limits();
    test_wav();
    test_idx();
    test_classes();
    test_npy_classes();
    test_csv_shape();
    test_transform();
    test_loader();
    test_resample_cost(); /* last: its table raises the peak RSS the other checks measure */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return th_finish();
}
