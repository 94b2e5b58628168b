/* test_op_image.c — images: decoding (JPEG, PNG, PGM/PPM), Exif orientation, PIL-exact resize,
 * center crop, normalisation, and the broken files that must give a clear error.
 *
 * Every image is written at test time into a temporary folder (TurboJPEG and libspng encode them;
 * graft links both). The parity part runs scripts/ref_image.py (PIL + torchvision) over all good
 * images and requires graft's tensor before normalisation within 1/255 of torchvision's; it is
 * skipped, loudly, when /usr/bin/python3 cannot import torchvision. */
#define _GNU_SOURCE
#include "harness.h"

#include "data/data.h"

#include <dirent.h>
#include <spng.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%.250s", tmpdir, name); /* names here are short */
    return buf[i];
}

static void write_bytes(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(tpath(name), "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", tpath(name));
        exit(2);
    }
    fclose(f);
}

/* A deterministic test pattern: gradients, a checkerboard with sharp edges, and noise, so that
 * any difference in resampling geometry or rounding shows up. */
static uint8_t *pattern(int w, int h, int ch, unsigned seed)
{
    uint8_t *p = malloc((size_t)w * h * ch);
    uint32_t s = seed * 2654435761u + 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                s = s * 1664525u + 1013904223u;
                int v = (x * (3 + c) + y * (5 - c)) / 2 + (((x / 7) + (y / 5)) % 2) * 90 +
                        (int)(s >> 27);
                p[((size_t)y * w + x) * ch + c] = (uint8_t)(v % 256);
            }
    return p;
}

/* ---- writers --------------------------------------------------------------------------- */

static uint8_t *png_encode(int w, int h, int ct, int depth, const void *data, size_t len,
                           int interlace, const struct spng_plte *plte, const uint8_t *exif,
                           size_t exif_len, size_t *out_len)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ih = { (uint32_t)w, (uint32_t)h, (uint8_t)depth,    (uint8_t)ct,
                            0,           0,           (uint8_t)interlace };
    int e = spng_set_ihdr(ctx, &ih);
    if (!e && plte) e = spng_set_plte(ctx, (struct spng_plte *)plte);
    if (!e && exif) {
        struct spng_exif x = { exif_len, (char *)exif };
        e = spng_set_exif(ctx, &x);
    }
    if (!e) e = spng_encode_image(ctx, data, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    uint8_t *buf = e ? NULL : spng_get_png_buffer(ctx, out_len, &e);
    spng_ctx_free(ctx);
    if (e) {
        fprintf(stderr, "spng encode (ct %d depth %d interlace %d): %s\n", ct, depth, interlace,
                spng_strerror(e));
        return NULL;
    }
    return buf;
}

static int write_png(const char *name, int w, int h, int ct, int depth, const void *data,
                     size_t len, int interlace, const struct spng_plte *plte, const uint8_t *exif,
                     size_t exif_len)
{
    size_t n;
    uint8_t *buf = png_encode(w, h, ct, depth, data, len, interlace, plte, exif, exif_len, &n);
    if (!buf) return 0;
    write_bytes(name, buf, n);
    free(buf);
    return 1;
}

static uint8_t *jpeg_encode(const uint8_t *px, int w, int h, int pf, int subsamp, int q, int flags,
                            size_t *len)
{
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long n = 0;
    if (tjCompress2(tj, px, w, 0, h, pf, &buf, &n, subsamp, q, flags) != 0) {
        fprintf(stderr, "tjCompress2: %s\n", tjGetErrorStr2(tj));
        exit(2);
    }
    tjDestroy(tj);
    uint8_t *copy = malloc(n);
    memcpy(copy, buf, n);
    tjFree(buf);
    *len = n;
    return copy;
}

/* A TIFF block with one IFD0 entry, Orientation = o (SHORT), in either byte order. */
static size_t tiff_orientation_block(uint8_t *t, int o, int big_endian)
{
    static const uint8_t le[26] = { 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3,
                                    0,   1,   0,  0, 0, 0, 0, 0, 0, 0, 0,    0,    0 };
    static const uint8_t be[26] = { 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0,
                                    3,   0,   0, 0,  1, 0, 0, 0, 0, 0, 0,    0,    0 };
    memcpy(t, big_endian ? be : le, 26);
    t[big_endian ? 19 : 18] = (uint8_t)o;
    return 26;
}

/* Inserts an APP1 Exif segment right after SOI. */
static uint8_t *jpeg_with_exif(const uint8_t *jpg, size_t n, int o, int big_endian, size_t *out_len)
{
    uint8_t seg[4 + 6 + 26];
    size_t tl = tiff_orientation_block(seg + 10, o, big_endian), sl = 2 + 6 + tl;
    seg[0] = 0xFF;
    seg[1] = 0xE1;
    seg[2] = (uint8_t)(sl >> 8);
    seg[3] = (uint8_t)sl;
    memcpy(seg + 4, "Exif\0\0", 6);
    uint8_t *r = malloc(n + 2 + sl);
    memcpy(r, jpg, 2);
    memcpy(r + 2, seg, 2 + sl);
    memcpy(r + 4 + sl, jpg + 2, n - 2);
    *out_len = n + 2 + sl;
    return r;
}

static void write_jpeg(const char *name, const uint8_t *px, int w, int h, int pf, int subsamp,
                       int q, int flags)
{
    size_t n;
    uint8_t *buf = jpeg_encode(px, w, h, pf, subsamp, q, flags, &n);
    write_bytes(name, buf, n);
    free(buf);
}

static void write_pnm(const char *name, const char *magic, int w, int h, int maxval,
                      const uint8_t *px, size_t n)
{
    char head[64];
    int k = snprintf(head, sizeof head, "%s\n# made by test_op_image\n%d %d\n%d\n", magic, w, h,
                     maxval);
    uint8_t *buf = malloc((size_t)k + n);
    memcpy(buf, head, (size_t)k);
    memcpy(buf + k, px, n);
    write_bytes(name, buf, (size_t)k + n);
    free(buf);
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- decoding checks ------------------------------------------------------------------- */

static int decode(const char *name, gr_image *img)
{
    int st = gr_image_decode(tpath(name), img);
    CHECK(st == GRAFT_OK, "%s: %s", name, graft_last_error());
    return st == GRAFT_OK;
}

/* Decoded image must equal `expect` (h, w, 3) within tol per sample. */
static void check_pixels(const char *name, const gr_image *img, int w, int h, const uint8_t *expect,
                         int tol)
{
    CHECK(img->w == w && img->h == h, "%s: decoded %dx%d, expected %dx%d", name, img->w, img->h, w,
          h);
    if (img->w != w || img->h != h) return;
    int worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        int d = abs((int)img->rgb[i] - (int)expect[i]);
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    CHECK(worst <= tol, "%s: sample %zu is %d, expected %d (max diff %d > %d)", name, at,
          img->rgb[at], expect[at], worst, tol);
}

static uint8_t *gray_to_rgb(const uint8_t *g, int w, int h)
{
    uint8_t *r = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h; i++) r[3 * i] = r[3 * i + 1] = r[3 * i + 2] = g[i];
    return r;
}

static void test_png_decode(void)
{
    int w = 301, h = 199;
    uint8_t *rgb = pattern(w, h, 3, 1), *g = pattern(w, h, 1, 2), *rgba = pattern(h, w, 4, 3);
    gr_image img;
    write_png("rgb_301x199.png", w, h, SPNG_COLOR_TYPE_TRUECOLOR, 8, rgb, (size_t)w * h * 3, 0,
              NULL, NULL, 0);
    if (decode("rgb_301x199.png", &img)) {
        check_pixels("rgb png", &img, w, h, rgb, 0);
        gr_image_free(&img);
    }

    uint8_t *g3 = gray_to_rgb(g, w, h);
    write_png("gray_301x199.png", w, h, SPNG_COLOR_TYPE_GRAYSCALE, 8, g, (size_t)w * h, 0, NULL,
              NULL, 0);
    if (decode("gray_301x199.png", &img)) {
        check_pixels("gray png", &img, w, h, g3, 0);
        gr_image_free(&img);
    }

    /* RGBA 199x301: alpha dropped, not blended (PIL's convert("RGB")) */
    write_png("rgba_199x301.png", h, w, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, rgba, (size_t)w * h * 4,
              0, NULL, NULL, 0);
    uint8_t *rgb_of_rgba = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h; i++) memcpy(rgb_of_rgba + 3 * i, rgba + 4 * i, 3);
    if (decode("rgba_199x301.png", &img)) {
        check_pixels("rgba png", &img, h, w, rgb_of_rgba, 0);
        gr_image_free(&img);
    }

    /* gray + alpha */
    uint8_t *ga = pattern(64, 80, 2, 4), *ga3 = malloc(64 * 80 * 3);
    for (int i = 0; i < 64 * 80; i++) ga3[3 * i] = ga3[3 * i + 1] = ga3[3 * i + 2] = ga[2 * i];
    write_png("ga_64x80.png", 64, 80, SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 8, ga, 64 * 80 * 2, 0, NULL,
              NULL, 0);
    if (decode("ga_64x80.png", &img)) {
        check_pixels("gray+alpha png", &img, 64, 80, ga3, 0);
        gr_image_free(&img);
    }

    /* palette */
    struct spng_plte plte = { .n_entries = 256 };
    for (int i = 0; i < 256; i++)
        plte.entries[i] =
            (struct spng_plte_entry){ (uint8_t)i, (uint8_t)(255 - i), (uint8_t)(i * 7), 255 };
    uint8_t *idx = pattern(150, 100, 1, 5), *pal3 = malloc(150 * 100 * 3);
    for (int i = 0; i < 150 * 100; i++) {
        pal3[3 * i] = plte.entries[idx[i]].red;
        pal3[3 * i + 1] = plte.entries[idx[i]].green;
        pal3[3 * i + 2] = plte.entries[idx[i]].blue;
    }
    write_png("pal_150x100.png", 150, 100, SPNG_COLOR_TYPE_INDEXED, 8, idx, 150 * 100, 0, &plte,
              NULL, 0);
    if (decode("pal_150x100.png", &img)) {
        check_pixels("palette png", &img, 150, 100, pal3, 0);
        gr_image_free(&img);
    }

    /* 4-bit gray, 123x77: rows packed MSB first, samples scaled by 17 (bit replication) */
    int rb = (123 + 1) / 2;
    uint8_t *packed = calloc((size_t)rb * 77, 1), *g4 = malloc(123 * 77 * 3);
    for (int y = 0; y < 77; y++)
        for (int x = 0; x < 123; x++) {
            int v = (x + 3 * y) % 16;
            packed[y * rb + x / 2] |= (uint8_t)(v << (x % 2 ? 0 : 4));
            memset(g4 + 3 * (y * 123 + x), v * 17, 3);
        }
    write_png("gray4_123x77.png", 123, 77, SPNG_COLOR_TYPE_GRAYSCALE, 4, packed, (size_t)rb * 77, 0,
              NULL, NULL, 0);
    if (decode("gray4_123x77.png", &img)) {
        check_pixels("4-bit gray png", &img, 123, 77, g4, 0);
        gr_image_free(&img);
    }

    /* 16-bit RGB (host-endian for SPNG_FMT_PNG): the high byte, as PIL's "RGB;16B" */
    uint16_t *rgb16 = malloc(90 * 70 * 3 * 2);
    uint8_t *hi = malloc(90 * 70 * 3), *noise = pattern(90, 70, 3, 6);
    for (int i = 0; i < 90 * 70 * 3; i++) {
        rgb16[i] = (uint16_t)(noise[i] * 257 + (i % 200));
        hi[i] = (uint8_t)(rgb16[i] >> 8);
    }
    write_png("rgb16_90x70.png", 90, 70, SPNG_COLOR_TYPE_TRUECOLOR, 16, rgb16, 90 * 70 * 6, 0, NULL,
              NULL, 0);
    if (decode("rgb16_90x70.png", &img)) {
        check_pixels("16-bit rgb png", &img, 90, 70, hi, 0);
        gr_image_free(&img);
    }

    /* 16-bit gray: graft keeps the high byte (PIL would clip mode "I" to 255; not in parity) */
    uint16_t *g16 = malloc(40 * 30 * 2);
    uint8_t *g16_3 = malloc(40 * 30 * 3);
    for (int i = 0; i < 40 * 30; i++) {
        g16[i] = (uint16_t)(i * 53);
        memset(g16_3 + 3 * i, g16[i] >> 8, 3);
    }
    write_png("gray16_40x30.png", 40, 30, SPNG_COLOR_TYPE_GRAYSCALE, 16, g16, 40 * 30 * 2, 0, NULL,
              NULL, 0);
    if (decode("gray16_40x30.png", &img)) {
        check_pixels("16-bit gray png", &img, 40, 30, g16_3, 0);
        gr_image_free(&img);
    }

    /* Adam7 interlaced, if this spng can encode it (0.7.3 can) */
    uint8_t *il = pattern(255, 257, 3, 7);
    if (write_png("rgb_interlaced_255x257.png", 255, 257, SPNG_COLOR_TYPE_TRUECOLOR, 8, il,
                  255 * 257 * 3, 1, NULL, NULL, 0) &&
        decode("rgb_interlaced_255x257.png", &img)) {
        check_pixels("interlaced png", &img, 255, 257, il, 0);
        gr_image_free(&img);
    }
    free(il);
    free(rgb);
    free(g);
    free(rgba);
    free(g3);
    free(rgb_of_rgba);
    free(ga);
    free(ga3);
    free(idx);
    free(pal3);
    free(packed);
    free(g4);
    free(rgb16);
    free(hi);
    free(noise);
    free(g16);
    free(g16_3);
}

/* The Exif spec's meaning of each orientation, written independently of image.c: the pixel
 * shown at (x, y) of the upright image is stored at (sx, sy). */
static uint8_t *upright(const gr_image *s, int o, int *ow, int *oh)
{
    int W = s->w, H = s->h;
    *ow = o >= 5 ? H : W;
    *oh = o >= 5 ? W : H;
    uint8_t *r = malloc((size_t)W * H * 3);
    for (int y = 0; y < *oh; y++)
        for (int x = 0; x < *ow; x++) {
            int sx = x, sy = y;
            switch (o) {
            case 2: sx = W - 1 - x; break; /* mirrored */
            case 3:
                sx = W - 1 - x;
                sy = H - 1 - y;
                break;                     /* upside down */
            case 4: sy = H - 1 - y; break; /* mirrored vertically */
            case 5:
                sx = y;
                sy = x;
                break; /* transposed */
            case 6:
                sx = y;
                sy = H - 1 - x;
                break; /* stored rotated 90° counter-clockwise */
            case 7:
                sx = W - 1 - y;
                sy = H - 1 - x;
                break; /* transversed */
            case 8:
                sx = W - 1 - y;
                sy = x;
                break; /* stored rotated 90° clockwise */
            }
            memcpy(r + 3 * ((size_t)y * *ow + x), s->rgb + 3 * ((size_t)sy * W + sx), 3);
        }
    return r;
}

static void test_jpeg_decode(void)
{
    gr_image img;
    uint8_t *rgb = pattern(301, 199, 3, 11);
    int subs[] = { TJSAMP_420, TJSAMP_444 };
    for (int k = 0; k < 2; k++) {
        char name[64];
        snprintf(name, sizeof name, "rgb%s_301x199.jpg", k ? "444" : "420");
        write_jpeg(name, rgb, 301, 199, TJPF_RGB, subs[k], k ? 100 : 90, 0);
        if (!decode(name, &img)) continue;
        CHECK(img.w == 301 && img.h == 199, "%s: %dx%d", name, img.w, img.h);
        if (k) check_pixels("jpeg q100 4:4:4 vs original", &img, 301, 199, rgb, 12);
        gr_image_free(&img);
    }
    uint8_t *tall = pattern(17, 500, 3, 12);
    write_jpeg("rgb422_17x500.jpg", tall, 17, 500, TJPF_RGB, TJSAMP_422, 92, 0);
    uint8_t *big = pattern(1500, 1000, 3, 13);
    write_jpeg("rgb_1500x1000.jpg", big, 1500, 1000, TJPF_RGB, TJSAMP_420, 85, 0);
    write_jpeg("progressive_333x250.jpg", big, 333, 250, TJPF_RGB, TJSAMP_420, 80,
               TJFLAG_PROGRESSIVE);
    if (decode("progressive_333x250.jpg", &img)) {
        CHECK(img.w == 333 && img.h == 250, "progressive: %dx%d", img.w, img.h);
        gr_image_free(&img);
    }

    /* gray JPEG: three equal channels close to the original */
    uint8_t *g = pattern(301, 199, 1, 14), *g3 = gray_to_rgb(g, 301, 199);
    write_jpeg("gray_301x199.jpg", g, 301, 199, TJPF_GRAY, TJSAMP_GRAY, 100, 0);
    if (decode("gray_301x199.jpg", &img)) {
        check_pixels("gray jpeg q100 vs original", &img, 301, 199, g3, 6);
        gr_image_free(&img);
    }

    /* CMYK (stored as YCCK with an Adobe marker): RGB ≈ stored C * stored K / 255, as PIL */
    uint8_t *cmyk = pattern(120, 90, 4, 15);
    write_jpeg("cmyk_120x90.jpg", cmyk, 120, 90, TJPF_CMYK, TJSAMP_444, 100, 0);
    if (decode("cmyk_120x90.jpg", &img)) {
        size_t n;
        FILE *f = fopen(tpath("cmyk_120x90.jpg"), "rb");
        uint8_t *buf = malloc(1 << 20);
        n = fread(buf, 1, 1 << 20, f);
        fclose(f);
        uint8_t *raw = malloc(120 * 90 * 4), *want = malloc(120 * 90 * 3);
        tjhandle tj = tjInitDecompress();
        CHECK(tjDecompress2(tj, buf, n, raw, 120, 0, 90, TJPF_CMYK, 0) == 0, "tj cmyk decode");
        tjDestroy(tj);
        for (int i = 0; i < 120 * 90; i++)
            for (int c = 0; c < 3; c++)
                want[3 * i + c] = (uint8_t)((raw[4 * i + c] * raw[4 * i + 3] + 127) / 255);
        check_pixels("cmyk jpeg vs C*K/255", &img, 120, 90, want, 1);
        gr_image_free(&img);
        free(buf);
        free(raw);
        free(want);
    }

    /* Exif orientation 1..8, little- and big-endian TIFF, against the spec's meaning */
    size_t n, m;
    uint8_t *small = pattern(61, 40, 3, 16),
            *base = jpeg_encode(small, 61, 40, TJPF_RGB, TJSAMP_444, 95, 0, &n);
    free(small);
    write_bytes("orient_none_61x40.jpg", base, n);
    gr_image plain;
    if (decode("orient_none_61x40.jpg", &plain)) {
        for (int o = 1; o <= 8; o++) {
            char name[64];
            snprintf(name, sizeof name, "orient%d_61x40.jpg", o);
            uint8_t *x = jpeg_with_exif(base, n, o, o % 2, &m);
            write_bytes(name, x, m);
            free(x);
            if (!decode(name, &img)) continue;
            int ow, oh;
            uint8_t *want = upright(&plain, o, &ow, &oh);
            check_pixels(name, &img, ow, oh, want, 0);
            free(want);
            gr_image_free(&img);
        }
        /* PNG eXIf: the same rule */
        uint8_t tiff[26];
        size_t tl = tiff_orientation_block(tiff, 6, 1);
        write_png("orient6_61x40.png", 61, 40, SPNG_COLOR_TYPE_TRUECOLOR, 8, plain.rgb, 61 * 40 * 3,
                  0, NULL, tiff, tl);
        if (decode("orient6_61x40.png", &img)) {
            int ow, oh;
            uint8_t *want = upright(&plain, 6, &ow, &oh);
            check_pixels("png eXIf orientation 6", &img, ow, oh, want, 0);
            free(want);
            gr_image_free(&img);
        }
        /* Two stray bytes before a marker: libjpeg warns, PIL and graft decode it anyway */
        uint8_t *stray = malloc(n + 2);
        size_t app0_end = 4 + ((size_t)base[4] << 8 | base[5]); /* SOI, then APP0 (JFIF) */
        memcpy(stray, base, app0_end);
        stray[app0_end] = 0x12;
        stray[app0_end + 1] = 0x34;
        memcpy(stray + app0_end + 2, base + app0_end, n - app0_end);
        write_bytes("stray_bytes_61x40.jpg", stray, n + 2);
        free(stray);
        if (decode("stray_bytes_61x40.jpg", &img)) {
            check_pixels("stray bytes jpeg", &img, 61, 40, plain.rgb, 0);
            gr_image_free(&img);
        }
        gr_image_free(&plain);
    }
    free(base);
    free(rgb);
    free(tall);
    free(big);
    free(g);
    free(g3);
    free(cmyk);
}

static void test_pnm_decode(void)
{
    gr_image img;
    uint8_t *rgb = pattern(301, 199, 3, 21), *g = pattern(199, 301, 1, 22),
            *g3 = gray_to_rgb(g, 199, 301);
    write_pnm("rgb_301x199.ppm", "P6", 301, 199, 255, rgb, 301 * 199 * 3);
    if (decode("rgb_301x199.ppm", &img)) {
        check_pixels("P6", &img, 301, 199, rgb, 0);
        gr_image_free(&img);
    }
    write_pnm("gray_199x301.pgm", "P5", 199, 301, 255, g, 199 * 301);
    if (decode("gray_199x301.pgm", &img)) {
        check_pixels("P5", &img, 199, 301, g3, 0);
        gr_image_free(&img);
    }

    /* maxval 65535 (two bytes, big-endian) and 1000; maxval 100 (one byte): round(v / maxval * 255) */
    static const int maxvals[] = { 65535, 1000, 100 };
    for (int k = 0; k < 3; k++) {
        int w = 70, h = 50, mv = maxvals[k], bps = mv > 255 ? 2 : 1, ch = k == 2 ? 1 : 3;
        uint8_t *raw = malloc((size_t)w * h * ch * bps), *want = malloc((size_t)w * h * 3);
        for (int i = 0; i < w * h * ch; i++) {
            unsigned v = (unsigned)(i * 7919u) % (unsigned)(mv + 1);
            if (bps == 2) {
                raw[2 * i] = (uint8_t)(v >> 8);
                raw[2 * i + 1] = (uint8_t)v;
            } else raw[i] = (uint8_t)v;
            uint8_t e = (uint8_t)rint((double)v / mv * 255.0);
            if (ch == 3) want[i] = e;
            else memset(want + 3 * i, e, 3);
        }
        char name[64];
        snprintf(name, sizeof name, "maxval%d_70x50.%s", mv, ch == 3 ? "ppm" : "pgm");
        write_pnm(name, ch == 3 ? "P6" : "P5", w, h, mv, raw, (size_t)w * h * ch * bps);
        if (decode(name, &img)) {
            check_pixels(name, &img, w, h, want, 0);
            gr_image_free(&img);
        }
        free(raw);
        free(want);
    }
    free(rgb);
    free(g);
    free(g3);
}

/* ---- broken files ---------------------------------------------------------------------- */

static void expect_error(const char *name, int want_status, const char *want_msg)
{
    gr_image img = { 7, 7, NULL };
    const char *path = tpath(name);
    int st = gr_image_decode(path, &img);
    const char *msg = graft_last_error();
    CHECK(st == want_status, "%s: status %d, expected %d (%s)", name, st, want_status, msg);
    CHECK(strstr(msg, path) != NULL, "%s: the message does not name the path: %s", name, msg);
    CHECK(strstr(msg, want_msg) != NULL, "%s: message '%s' lacks '%s'", name, msg, want_msg);
    CHECK(img.w == 7 && img.h == 7 && !img.rgb, "%s: the output was touched on failure", name);
}

static uint8_t *read_all(const char *name, size_t *n)
{
    FILE *f = fopen(tpath(name), "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) exit(2);
    fclose(f);
    return b;
}

static void test_bad_files(void)
{
    write_bytes("empty.jpg", "", 0);
    expect_error("empty.jpg", GRAFT_E_FORMAT, "the file is empty");
    const char *text = "this is not a picture, just some text\n";
    write_bytes("text.jpg", text, strlen(text));
    expect_error("text.jpg", GRAFT_E_FORMAT, "not a JPEG, PNG or binary PGM/PPM image");
    write_bytes("anim.png", "GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
    expect_error("anim.png", GRAFT_E_UNSUPPORTED, "GIF images are not supported");
    write_bytes("plain.ppm", "P3\n1 1\n255\n0 0 0\n", 17);
    expect_error("plain.ppm", GRAFT_E_UNSUPPORTED, "are not supported");
    expect_error("no_such_file.png", GRAFT_E_IO, "cannot open");
    char dir[64];
    snprintf(dir, sizeof dir, "%s", tpath("folder.jpg"));
    CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    expect_error("folder.jpg", GRAFT_E_IO, "not a regular file");

    /* truncated JPEGs: inside the header, inside the entropy-coded data, just before EOI */
    size_t n;
    uint8_t *jpg = read_all("rgb420_301x199.jpg", &n);
    size_t cuts[] = { 1, 3, 40, 200, n / 3, n / 2, n - 2 };
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        char name[64];
        snprintf(name, sizeof name, "truncated_%zu.jpg", cuts[k]);
        write_bytes(name, jpg, cuts[k]);
        expect_error(name, GRAFT_E_FORMAT, "JPEG");
    }
    write_bytes("truncated_half.jpg", jpg, n / 2);
    expect_error("truncated_half.jpg", GRAFT_E_FORMAT, "truncated JPEG");
    /* SOF declaring 60000x60000 (the JPEG maximum is 65535): refused from the header */
    for (size_t i = 2; i + 9 < n; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
            jpg[i + 5] = 0xEA;
            jpg[i + 6] = 0x60;
            jpg[i + 7] = 0xEA;
            jpg[i + 8] = 0x60;
            break;
        }
    write_bytes("huge_sof.jpg", jpg, n);
    expect_error("huge_sof.jpg", GRAFT_E_LIMIT,
                 "image is 60000x60000 pixels (3600000000), above the limit image-pixels = ");
    free(jpg);

    /* PNG: truncated, flipped CRC byte in IHDR and in IDAT */
    uint8_t *png = read_all("rgb_301x199.png", &n);
    size_t pcuts[] = {
        4, 12, 30, 60, n / 2, n - 40, n - 20
    }; /* n - 20: the zlib checksum is cut */
    for (size_t k = 0; k < sizeof pcuts / sizeof *pcuts; k++) {
        char name[64];
        snprintf(name, sizeof name, "truncated_%zu.png", pcuts[k]);
        write_bytes(name, png, pcuts[k]);
        expect_error(name, GRAFT_E_FORMAT, "PNG");
    }
    /* without IEND the image is whole; PIL reads it too */
    write_bytes("no_iend.png", png, n - 12);
    gr_image img;
    uint8_t *want = pattern(301, 199, 3, 1);
    if (decode("no_iend.png", &img)) {
        check_pixels("png without IEND", &img, 301, 199, want, 0);
        gr_image_free(&img);
    }
    free(want);
    png[32] ^= 0x01; /* last byte of IHDR's CRC */
    write_bytes("bad_ihdr_crc.png", png, n);
    expect_error("bad_ihdr_crc.png", GRAFT_E_FORMAT, "bad PNG");
    png[32] ^= 0x01;
    for (size_t i = 8; i + 8 <= n;) {
        uint32_t len = (uint32_t)png[i] << 24 | (uint32_t)png[i + 1] << 16 |
                       (uint32_t)png[i + 2] << 8 | png[i + 3];
        if (!memcmp(png + i + 4, "IDAT", 4)) {
            png[i + 8 + len + 3] ^= 0x80;
            break;
        }
        i += 12 + len;
    }
    write_bytes("bad_idat_crc.png", png, n);
    expect_error("bad_idat_crc.png", GRAFT_E_FORMAT, "bad PNG");
    free(png);

    /* A hand-written PNG whose IHDR declares 100000x100000 RGB, with correct CRCs */
    uint8_t huge[8 + 25 + 12] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n',
                                  0,    0,   0,   13,  'I',  'H',  'D',  'R' };
    put32(huge + 16, 100000);
    put32(huge + 20, 100000);
    huge[24] = 8;
    huge[25] = 2;
    huge[26] = huge[27] = huge[28] = 0;
    put32(huge + 29, crc32_png(huge + 12, 17));
    memcpy(huge + 33, "\0\0\0\0IEND", 8);
    put32(huge + 41, crc32_png(huge + 37, 4));
    write_bytes("huge_ihdr.png", huge, sizeof huge);
    expect_error("huge_ihdr.png", GRAFT_E_UNSUPPORTED,
                 "image is 100000x100000 pixels, larger than graft's limit");

    /* PNM: huge, truncated pixels, bad maxval, garbage header */
    write_bytes("huge.ppm", "P6\n100000 100000\n255\n\0\0\0", 24);
    expect_error("huge.ppm", GRAFT_E_UNSUPPORTED,
                 "image is 100000x100000 pixels, larger than graft's limit");
    write_bytes("short.ppm", "P6\n4 4\n255\n\1\2\3\4\5", 16);
    expect_error("short.ppm", GRAFT_E_FORMAT, "truncated P6");
    write_bytes("maxval0.pgm", "P5\n1 1\n0\n\0", 10);
    expect_error("maxval0.pgm", GRAFT_E_FORMAT, "maxval 0");
    write_bytes("garbage.pgm", "P5\nwide tall\n", 13);
    expect_error("garbage.pgm", GRAFT_E_FORMAT, "bad P5 header");
    write_bytes("P6", "P6", 2);
    expect_error("P6", GRAFT_E_FORMAT, "bad P6 header");
}

/* ---- JPEG markers and ends, as PIL reads them ----------------------------------------------- */

/* Writes `name`: the n bytes at b with the k bytes x inserted at `at`, then the `tail` bytes
 * (NULL: none). */
static void write_with(const char *name, const uint8_t *b, size_t n, size_t at, const void *x,
                       size_t k, const void *tail, size_t tail_n)
{
    uint8_t *r = malloc(n + k + tail_n + 1);
    memcpy(r, b, at);
    memcpy(r + at, x, k);
    memcpy(r + at + k, b + at, n - at);
    if (tail_n) memcpy(r + n + k, tail, tail_n);
    write_bytes(name, r, n + k + tail_n);
    free(r);
}

/* Offset of the nth (1-based) 0xFF m in b from offset 2 (TurboJPEG's files stuff every 0xFF of
 * their data, so this finds markers). */
static size_t marker_at(const uint8_t *b, size_t n, unsigned m, int nth)
{
    for (size_t i = 2; i + 1 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == m && --nth == 0) return i;
    fprintf(stderr, "no marker 0x%02x\n", m);
    exit(2);
}

/* A data byte of the first scan near its middle that neither is nor follows 0xFF. */
static size_t scan_byte(const uint8_t *b, size_t n)
{
    size_t sos = marker_at(b, n, 0xDA, 1), start = sos + 2 + ((size_t)b[sos + 2] << 8 | b[sos + 3]);
    for (size_t i = start + (n - 2 - start) / 2; i + 3 < n; i++)
        if (b[i] != 0xFF && b[i - 1] != 0xFF && b[i + 1] != 0xFF && b[i + 2] != 0xFF) return i;
    exit(2);
}

/* image.c's rules: (a) PIL's marker walk from SOI to the first SOS, (b) data that ends before
 * libjpeg reaches EOI is truncated, (c) libjpeg's other warnings are not errors. Each file's PIL
 * verdict is checked by test_pil_verdicts (the status here is graft's). */
static void test_jpeg_markers(void)
{
    size_t n, pn;
    uint8_t *b = read_all("orient_none_61x40.jpg", &n),
            *pb = read_all("progressive_333x250.jpg", &pn);
    uint8_t *c = malloc(n + 64);
    size_t dqt = marker_at(b, n, 0xDB, 1), sof = marker_at(b, n, 0xC0, 1), mid = scan_byte(b, n);
    gr_image img;
    static const struct {
        const char *name;
        const char *x;
        size_t k;
        int st;
        const char *msg;
    } ins[] = {
        /* accepted: PIL skips these; libjpeg warns of the first two only */
        { "ff00_before_dqt.jpg", "\xFF\x00", 2, GRAFT_OK, NULL },
        { "junk_ff00_before_dqt.jpg", "\xFF\x00\x12", 3, GRAFT_OK, NULL },
        { "fill_before_dqt.jpg", "\xFF\xFF\xFF", 3, GRAFT_OK, NULL },
        { "rst_before_dqt.jpg", "\xFF\xD3", 2, GRAFT_OK, NULL },
        { "com_before_dqt.jpg", "\xFF\xFE\x00\x06hi\xFF\xD9", 8, GRAFT_OK, NULL },
        { "app5_length0.jpg", "\xFF\xE5\x00\x00", 4, GRAFT_OK, NULL },
        /* refused by PIL's walk; libjpeg alone decodes the first (TEM) without a word */
        { "tem_before_dqt.jpg", "\xFF\x01", 2, GRAFT_E_FORMAT,
          "bad JPEG: 0xFF01 at offset 20 is not a JPEG marker" },
        { "ffbf_before_dqt.jpg", "\xFF\xBF", 2, GRAFT_E_FORMAT,
          "bad JPEG: 0xFFBF at offset 20 is not a JPEG marker" },
        { "fill_tem_before_dqt.jpg", "\xFF\xFF\x01", 3, GRAFT_E_FORMAT,
          "bad JPEG: 0xFF01 at offset 21 is not a JPEG marker" },
        { "short_jfif.jpg", "\xFF\xE0\x00\x07JFIF\x00", 9, GRAFT_E_FORMAT,
          "the APP0 segment at offset 20 holds 5 bytes" },
        { "short_adobe.jpg",
          "\xFF\xEE\x00\x08"
          "Adobe\x01",
          10, GRAFT_E_FORMAT, "too few for its Adobe header" },
        { "eoi_before_sof.jpg", "\xFF\xD9", 2, GRAFT_E_FORMAT,
          "bad JPEG: no frame header before the end-of-image" },
        { "length_past_end.jpg", "\xFF\xE3\xFF\xF0", 4, GRAFT_E_FORMAT,
          "truncated JPEG (the APP3 segment at offset 20 needs 65518 bytes" },
    };
    for (size_t k = 0; k < sizeof ins / sizeof *ins; k++) {
        write_with(ins[k].name, b, n, dqt, ins[k].x, ins[k].k, NULL, 0);
        if (ins[k].st) expect_error(ins[k].name, ins[k].st, ins[k].msg);
        else if (decode(ins[k].name, &img)) {
            CHECK(img.w == 61 && img.h == 40, "%s: %dx%d", ins[k].name, img.w, img.h);
            gr_image_free(&img);
        }
    }
    /* right after SOI: PIL wants a marker (libjpeg alone skips the junk with a warning) */
    write_with("junk_after_soi.jpg", b, n, 2, "\x12\x34", 2, NULL, 0);
    expect_error("junk_after_soi.jpg", GRAFT_E_FORMAT,
                 "bad JPEG: byte 2 is 0x12, not the start of a marker after SOI");
    write_with("fill_after_soi.jpg", b, n, 2, "\xFF\xFF", 2, NULL, 0);
    if (decode("fill_after_soi.jpg", &img)) gr_image_free(&img);
    /* the fields PIL's handlers read: SOF's precision and component count, DQT's table sizes */
    memcpy(c, b, n);
    c[sof + 4] = 12;
    write_bytes("sof_12bit.jpg", c, n);
    expect_error("sof_12bit.jpg", GRAFT_E_FORMAT, "SOF0 at offset");
    CHECK(strstr(graft_last_error(), "declares 12-bit samples") != NULL, "sof_12bit.jpg: %s",
          graft_last_error());
    memcpy(c, b, n);
    c[dqt + 3] -= 1; /* the segment ends one byte inside its last table */
    write_bytes("dqt_short.jpg", c, n);
    expect_error("dqt_short.jpg", GRAFT_E_FORMAT,
                 "the DQT segment at offset 20 ends inside a table");
    /* (c) corrupt or short data segments: libjpeg warns and decodes, PIL keeps the result */
    memcpy(c, b, n);
    c[mid] ^= 0x5A;
    write_bytes("flipped_data.jpg", c, n);
    if (decode("flipped_data.jpg", &img)) gr_image_free(&img);
    memcpy(c, b, mid);
    memcpy(c + mid, "\xFF\xD9", 2);
    write_bytes("short_data.jpg", c, mid + 2);
    if (decode("short_data.jpg", &img)) {
        CHECK(img.w == 61 && img.h == 40 && img.rgb[3 * (61 * 40 - 1)] == 128,
              "short_data.jpg: %dx%d, last pixel %d (gray)", img.w, img.h,
              img.rgb[3 * (61 * 40 - 1)]);
        gr_image_free(&img);
    }
    write_with("after_eoi.jpg", b, n, n, "trailing bytes", 14, NULL, 0);
    if (decode("after_eoi.jpg", &img)) gr_image_free(&img);
    /* ... but an error after a warning is an error: 0xFF12 in the data is first a short data
     * segment (a warning), then a marker libjpeg refuses; TurboJPEG says TJERR_WARNING */
    memcpy(c, b, n);
    c[mid] = 0xFF;
    c[mid + 1] = 0x12;
    write_bytes("marker_in_data.jpg", c, n);
    expect_error("marker_in_data.jpg", GRAFT_E_FORMAT, "bad JPEG: Unsupported marker type 0x12");
    /* (b) the end: what follows the first SOS is read as libjpeg reads it */
    write_with("no_eoi_padded.jpg", b, n - 2, n - 2, "", 0, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    expect_error("no_eoi_padded.jpg", GRAFT_E_FORMAT, "truncated JPEG (the data ends at offset");
    CHECK(strstr(graft_last_error(), "before the end-of-image marker") != NULL, "no EOI: %s",
          graft_last_error());
    size_t s2 = marker_at(pb, pn, 0xDA, 2);
    write_bytes("prog_no_eoi.jpg", pb, pn - 2);
    expect_error("prog_no_eoi.jpg", GRAFT_E_FORMAT, "truncated JPEG");
    write_bytes("prog_cut_between_scans.jpg", pb, s2);
    expect_error("prog_cut_between_scans.jpg", GRAFT_E_FORMAT, "truncated JPEG");
    /* an EOI inside a comment between the scans ends nothing */
    write_with("prog_eoi_in_comment.jpg", pb, s2, s2, "\xFF\xFE\x00\x06x\xFF\xD9y", 8, NULL, 0);
    expect_error("prog_eoi_in_comment.jpg", GRAFT_E_FORMAT, "truncated JPEG");
    /* the same after junk between the scans: libjpeg's first warning is then not the end of the
     * data, which only the walk sees */
    write_with("prog_junk_eoi_in_comment.jpg", pb, s2, s2, "\x12\x34\xFF\xFE\x00\x06x\xFF\xD9y", 10,
               NULL, 0);
    expect_error("prog_junk_eoi_in_comment.jpg", GRAFT_E_FORMAT,
                 "truncated JPEG (the data ends at offset");
    write_with("prog_eoi_after_scan1.jpg", pb, s2, s2, "\xFF\xD9", 2, NULL, 0);
    if (decode("prog_eoi_after_scan1.jpg", &img)) gr_image_free(&img);
    /* between scans PIL does not look (it stops at the first SOS); libjpeg skips junk and TEM */
    write_with("prog_junk_between_scans.jpg", pb, pn, s2, "\x12\x34", 2, NULL, 0);
    if (decode("prog_junk_between_scans.jpg", &img)) gr_image_free(&img);
    write_with("prog_tem_between_scans.jpg", pb, pn, s2, "\xFF\x01", 2, NULL, 0);
    if (decode("prog_tem_between_scans.jpg", &img)) gr_image_free(&img);
    write_with("prog_ffbf_between_scans.jpg", pb, pn, s2, "\xFF\xBF", 2, NULL, 0);
    expect_error("prog_ffbf_between_scans.jpg", GRAFT_E_FORMAT,
                 "bad JPEG: Unsupported marker type 0xbf");
    free(b);
    free(pb);
    free(c);
}

/* PIL's verdict (scripts/data_reference.py verdict: Image.open, exif_transpose, convert("RGB"))
 * on every .jpg this test wrote must be graft's: both decode it, to the same size, or both
 * refuse it. The one known divergence: PIL decodes a single-scan file that lacks its EOI when
 * libjpeg can finish the last row from the padding that replaces it; graft calls it truncated. */
static void test_pil_verdicts(void)
{
    static const char *const differs[] = { "no_eoi_padded.jpg" };
    char script[1024], list[600], out[600], cmd[2400];
    const char *src = getenv("GRAFT_SOURCE_DIR");
    if (src) snprintf(script, sizeof script, "%s/scripts/data_reference.py", src);
    else {
        snprintf(script, sizeof script, "%s", __FILE__);
        char *cut = strstr(script, "tests/test_op_image.c");
        if (cut) strcpy(cut, "scripts/data_reference.py");
    }
    int have = access(script, R_OK) == 0 &&
               system("/usr/bin/python3 -c 'import PIL' >/dev/null 2>&1") == 0;
    CHECK(have, "PIL's verdicts need %s and /usr/bin/python3 with PIL", script);
    if (!have) return;
    char names[128][64];
    int count = 0;
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL && count < 128;) {
        size_t l = strlen(e->d_name);
        struct stat sb;
        if (l > 4 && l < 64 && !strcmp(e->d_name + l - 4, ".jpg") &&
            stat(tpath(e->d_name), &sb) == 0 && S_ISREG(sb.st_mode))
            memcpy(names[count++], e->d_name, l + 1);
    }
    if (d) closedir(d);
    snprintf(list, sizeof list, "%s", tpath("verdicts.txt"));
    snprintf(out, sizeof out, "%s", tpath("verdicts.out"));
    FILE *f = fopen(list, "w");
    for (int k = 0; k < count; k++) fprintf(f, "%s\n", tpath(names[k]));
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' verdict '%s' '%s'", script, list, out);
    int rc = system(cmd);
    CHECK(rc == 0, "%s failed", cmd);
    if (rc || !(f = fopen(out, "r"))) return;
    int agree = 0;
    char line[1024];
    for (int k = 0; k < count && fgets(line, sizeof line, f); k++) {
        int pw = 0, ph = 0, pil_ok = sscanf(line, "ok %d %d", &pw, &ph) == 2, diff = 0;
        for (size_t j = 0; j < sizeof differs / sizeof *differs; j++)
            diff |= !strcmp(names[k], differs[j]);
        gr_image img = { 0 };
        int st = gr_image_decode(tpath(names[k]), &img);
        line[strcspn(line, "\n")] = 0;
        CHECK((st == GRAFT_OK) == (pil_ok != diff), "%s: PIL says \"%s\", graft %s%s (%s)",
              names[k], line, st ? "refuses it" : "decodes it", diff ? " (a known divergence)" : "",
              st ? graft_last_error() : "");
        if (!st && pil_ok)
            CHECK(img.w == pw && img.h == ph, "%s: graft %dx%d, PIL %dx%d", names[k], img.w, img.h,
                  pw, ph);
        agree += (st == GRAFT_OK) == (pil_ok != diff);
        gr_image_free(&img);
    }
    fclose(f);
    CHECK(count >= 40, "only %d JPEG files compared", count);
    printf("PIL's verdict matches graft's on %d of %d JPEG files (%zu known divergence)\n", agree,
           count, sizeof differs / sizeof *differs);
}

/* ---- resize, crop, tensor -------------------------------------------------------------- */

/* The triangle filter in double precision, no fixed point and no rounding between the passes:
 * output i of an axis averages inputs j with weight max(0, 1 - |j + 0.5 - c| / s), c = (i + 0.5)
 * * in / out, s = max(1, in / out), normalised. PIL's 8-bit version must stay within 1 of it. */
static void resize_ref(double *out /* (oh, ow, 3) */, const gr_image *in, int ow, int oh)
{
    double *tmp = calloc((size_t)in->h * ow * 3, sizeof *tmp);
    for (int pass = 0; pass < 2; pass++) {
        int n_in = pass ? in->h : in->w, n_out = pass ? oh : ow, lines = pass ? ow : in->h;
        double scale = (double)n_in / n_out, s = scale > 1 ? scale : 1;
        for (int i = 0; i < n_out; i++) {
            double c = (i + 0.5) * scale, wsum = 0;
            for (int j = 0; j < n_in; j++) {
                double t = 1 - fabs(j + 0.5 - c) / s;
                wsum += t > 0 ? t : 0;
            }
            for (int l = 0; l < lines; l++)
                for (int ch = 0; ch < 3; ch++) {
                    double acc = 0;
                    for (int j = 0; j < n_in; j++) {
                        double t = 1 - fabs(j + 0.5 - c) / s;
                        if (t <= 0) continue;
                        acc += t * (pass ? tmp[((size_t)j * ow + l) * 3 + ch]
                                         : in->rgb[((size_t)l * in->w + j) * 3 + ch]);
                    }
                    if (pass) out[((size_t)i * ow + l) * 3 + ch] = acc / wsum;
                    else tmp[((size_t)l * ow + i) * 3 + ch] = acc / wsum;
                }
        }
    }
    free(tmp);
}

static void test_resize(void)
{
    static const int sizes[][4] = { { 301, 199, 387, 256 }, { 301, 199, 81, 53 },
                                    { 17, 50, 256, 753 },   { 100, 80, 100, 31 },
                                    { 100, 80, 33, 80 },    { 64, 64, 64, 64 },
                                    { 1, 1, 5, 3 },         { 7, 300, 2, 1 } };
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int iw = sizes[k][0], ih = sizes[k][1], ow = sizes[k][2], oh = sizes[k][3];
        gr_image in = { iw, ih, pattern(iw, ih, 3, 30 + (unsigned)k) }, out;
        int st = gr_image_resize(&in, ow, oh, &out);
        CHECK(st == GRAFT_OK, "resize %dx%d -> %dx%d: %s", iw, ih, ow, oh, graft_last_error());
        if (st) {
            free(in.rgb);
            continue;
        }
        CHECK(out.w == ow && out.h == oh, "resize gave %dx%d", out.w, out.h);
        double *ref = malloc((size_t)ow * oh * 3 * sizeof *ref), worst = 0;
        resize_ref(ref, &in, ow, oh);
        for (size_t i = 0; i < (size_t)ow * oh * 3; i++)
            worst = fmax(worst, fabs(out.rgb[i] - ref[i]));
        CHECK(worst <= 1.0, "resize %dx%d -> %dx%d: %.3f from the double-precision triangle filter",
              iw, ih, ow, oh, worst);
        free(ref);
        gr_image_free(&out);
        /* a constant image stays exactly constant */
        memset(in.rgb, 173, (size_t)iw * ih * 3);
        if (!gr_image_resize(&in, ow, oh, &out)) {
            int ok = 1;
            for (size_t i = 0; i < (size_t)ow * oh * 3; i++) ok &= out.rgb[i] == 173;
            CHECK(ok, "resize of a constant image %dx%d -> %dx%d is not constant", iw, ih, ow, oh);
            gr_image_free(&out);
        }
        free(in.rgb);
    }
    gr_image in = { 4, 4, pattern(4, 4, 3, 1) }, out = { 0 };
    CHECK(gr_image_resize(&in, 0, 5, &out) == GRAFT_E_ARG && !out.rgb,
          "resize to width 0 must fail");
    CHECK(
        gr_image_resize(&in, 70000, 70000, &out) == GRAFT_E_LIMIT && !out.rgb &&
            strstr(graft_last_error(),
                   "image resize: 70000x70000 is 4900000000 pixels, above the limit image-pixels"),
        "resize to 70000x70000 must fail with GRAFT_E_LIMIT: %s", graft_last_error());
    free(in.rgb);
}

static void test_geometry(void)
{
    int w, h, x, y;
    gr_image_resized_size(301, 199, 256, &w, &h);
    CHECK(w == 387 && h == 256, "resized 301x199 to %dx%d, expected 387x256", w, h);
    gr_image_resized_size(17, 500, 256, &w, &h);
    CHECK(w == 256 && h == 7529, "resized 17x500 to %dx%d, expected 256x7529", w, h);
    gr_image_resized_size(640, 640, 256, &w, &h);
    CHECK(w == 256 && h == 256, "resized 640x640 to %dx%d", w, h);
    /* round half to even: (301-224)/2 = 38.5 -> 38, (199-100)/2 = 49.5 -> 50, (256-224)/2 = 16 */
    gr_image_center_offset(301, 199, 224, 100, &x, &y);
    CHECK(x == 38 && y == 50, "center offset (%d, %d), expected (38, 50)", x, y);
    gr_image_center_offset(256, 387, 224, 224, &x, &y);
    CHECK(x == 16 && y == 82, "center offset (%d, %d), expected (16, 82)", x, y);
    /* crop larger than the image: zero padding, (224-17)//2 = 103 on the left */
    gr_image_center_offset(17, 199, 224, 224, &x, &y);
    CHECK(x == -103 && y == -12, "center offset (%d, %d), expected (-103, -12)", x, y);
    gr_image in = { 17, 199, pattern(17, 199, 3, 3) }, out;
    if (!gr_image_crop(&in, x, y, 224, 224, &out)) {
        CHECK(out.rgb[0] == 0 && out.rgb[(12 * 224 + 102) * 3] == 0 &&
                  out.rgb[(211 * 224 + 103) * 3] == 0 && out.rgb[(12 * 224 + 120) * 3] == 0,
              "padding is not zero");
        CHECK(!memcmp(out.rgb + (12 * 224 + 103) * 3, in.rgb, 17 * 3), "first image row misplaced");
        CHECK(!memcmp(out.rgb + (210 * 224 + 103) * 3, in.rgb + 198 * 17 * 3, 17 * 3),
              "last image row misplaced");
        gr_image_free(&out);
    }
    free(in.rgb);
}

static void test_load_api(void)
{
    const char *png = tpath("rgb_301x199.png");
    graft_tensor *t = NULL, *u = NULL;
    int st = graft_image_load(png, NULL, &t);
    CHECK(st == GRAFT_OK, "graft_image_load: %s", graft_last_error());
    if (st) return;
    CHECK(t->dtype == GRAFT_FLOAT && t->rank == 4 && t->dims[0] == 1 && t->dims[1] == 3 &&
              t->dims[2] == 224 && t->dims[3] == 224,
          "shape (%lld, %lld, %lld, %lld)", (long long)t->dims[0], (long long)t->dims[1],
          (long long)t->dims[2], (long long)t->dims[3]);
    /* Normalize: (x/255 - mean) / std on the prepared uint8 image */
    graft_image_prep p;
    graft_image_prep_imagenet(&p);
    gr_image img;
    if (!gr_image_prepare(png, &p, &img)) {
        float *want = malloc(3 * 224 * 224 * sizeof *want);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 224 * 224; i++)
                want[c * 224 * 224 + i] =
                    (float)(((double)img.rgb[3 * i + c] / 255.0 - p.mean[c]) / p.std[c]);
        th_close(t->data, want, 3 * 224 * 224, 0, 1e-5, "imagenet normalisation");
        free(want);
        gr_image_free(&img);
    }
    /* no resize, no crop: the decoded image / 255 */
    graft_image_prep raw = { 0, 0, { 0, 0, 0 }, { 1, 1, 1 } };
    if (!graft_image_load(png, &raw, &u)) {
        CHECK(u->dims[2] == 199 && u->dims[3] == 301, "unprocessed shape %lldx%lld",
              (long long)u->dims[2], (long long)u->dims[3]);
        uint8_t *rgb = pattern(301, 199, 3, 1);
        const float *f = u->data;
        int ok = 1;
        for (int i = 0; i < 301 * 199; i++)
            for (int c = 0; c < 3; c++)
                ok &= f[c * 301 * 199 + i] == (float)rgb[3 * i + c] / 255.0f;
        CHECK(ok, "unprocessed tensor differs from pixels / 255");
        free(rgb);
        graft_tensor_free(u);
    }
    graft_image_prep bad = p;
    bad.std[1] = 0;
    graft_tensor *keep = t;
    CHECK(graft_image_load(png, &bad, &t) == GRAFT_E_ARG && t == keep, "std 0 must be refused");
    CHECK(graft_image_load(tpath("text.jpg"), &p, &t) == GRAFT_E_FORMAT && t == keep,
          "text.jpg must fail, out untouched");
    graft_tensor_free(t);
}

/* ---- parity with torchvision ----------------------------------------------------------- */

typedef struct job {
    const char *image;
    int resize, crop;
} job;

static const job jobs[] = {
    { "rgb_301x199.png", 256, 224 },       { "gray_301x199.png", 256, 224 },
    { "rgba_199x301.png", 256, 224 },      { "ga_64x80.png", 256, 224 },
    { "pal_150x100.png", 256, 224 },       { "gray4_123x77.png", 256, 224 },
    { "rgb16_90x70.png", 256, 224 },       { "rgb_interlaced_255x257.png", 256, 224 },
    { "orient6_61x40.png", 256, 224 },     { "rgb420_301x199.jpg", 256, 224 },
    { "rgb444_301x199.jpg", 256, 224 },    { "rgb422_17x500.jpg", 256, 224 },
    { "rgb_1500x1000.jpg", 256, 224 },     { "progressive_333x250.jpg", 256, 224 },
    { "gray_301x199.jpg", 256, 224 },      { "cmyk_120x90.jpg", 256, 224 },
    { "stray_bytes_61x40.jpg", 256, 224 }, { "orient1_61x40.jpg", 0, 0 },
    { "orient2_61x40.jpg", 0, 0 },         { "orient3_61x40.jpg", 0, 0 },
    { "orient4_61x40.jpg", 0, 0 },         { "orient5_61x40.jpg", 0, 0 },
    { "orient6_61x40.jpg", 0, 0 },         { "orient7_61x40.jpg", 0, 0 },
    { "orient8_61x40.jpg", 0, 0 },         { "orient6_61x40.jpg", 256, 224 },
    { "orient8_61x40.jpg", 256, 224 },     { "orient5_61x40.jpg", 30, 25 },
    { "rgb_301x199.ppm", 256, 224 },       { "gray_199x301.pgm", 256, 224 },
    { "maxval65535_70x50.ppm", 256, 224 }, { "maxval1000_70x50.ppm", 256, 224 },
    { "maxval100_70x50.pgm", 256, 224 },   { "rgb_301x199.png", 0, 0 },
    { "rgb_301x199.png", 0, 224 },         { "rgb_301x199.png", 0, 100 },
    { "rgb_301x199.png", 100, 0 },         { "rgb422_17x500.jpg", 0, 224 },
    { "rgb_1500x1000.jpg", 97, 61 },       { "rgb_1500x1000.jpg", 999, 0 },
    { "gray_301x199.jpg", 224, 224 },      { "rgba_199x301.png", 480, 320 },
};
#define NJOBS ((int)(sizeof jobs / sizeof *jobs))

static void test_parity(void)
{
    char script[1024];
    const char *src = getenv("GRAFT_SOURCE_DIR");
    if (src) snprintf(script, sizeof script, "%s/scripts/ref_image.py", src);
    else {
        snprintf(script, sizeof script, "%s", __FILE__); /* .../tests/test_op_image.c */
        char *cut = strstr(script, "tests/test_op_image.c");
        if (cut) strcpy(cut, "scripts/ref_image.py");
    }
    /* The reference is part of the suite (the setup installs it): missing means failure. */
    int have = access(script, R_OK) == 0 &&
               system("/usr/bin/python3 -c 'import torchvision, PIL' >/dev/null 2>&1") == 0;
    CHECK(have,
          "parity with torchvision needs %s and /usr/bin/python3 with torchvision and PIL "
          "(run scripts/setup.sh)",
          script);
    if (!have) return;
    FILE *list = fopen(tpath("jobs.txt"), "w");
    int run[NJOBS];
    for (int k = 0; k < NJOBS; k++) {
        run[k] = access(tpath(jobs[k].image), R_OK) == 0;
        char out[32];
        snprintf(out, sizeof out, "ref_%d.raw", k);
        if (run[k])
            fprintf(list, "%s %s %d %d\n", tpath(jobs[k].image), tpath(out), jobs[k].resize,
                    jobs[k].crop);
    }
    fclose(list);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --batch '%s' > '%s' 2>&1", script,
             tpath("jobs.txt"), tpath("ref.log"));
    int rc = system(cmd);
    CHECK(rc == 0, "%s failed (see %s)", cmd, tpath("ref.log"));
    if (rc) {
        snprintf(cmd, sizeof cmd, "cat '%s' >&2", tpath("ref.log"));
        if (system(cmd) != 0) fprintf(stderr, "(no log)\n");
        return;
    }
    double overall = 0;
    for (int k = 0; k < NJOBS; k++) {
        if (!run[k]) {
            printf("  (no %s: skipped)\n", jobs[k].image);
            continue;
        }
        graft_image_prep p = { jobs[k].resize, jobs[k].crop, { 0, 0, 0 }, { 1, 1, 1 } };
        graft_tensor *t;
        if (graft_image_load(tpath(jobs[k].image), &p, &t)) {
            CHECK(0, "%s: %s", jobs[k].image, graft_last_error());
            continue;
        }
        char out[32];
        snprintf(out, sizeof out, "ref_%d.raw", k);
        size_t n;
        float *ref = (float *)read_all(out, &n);
        int64_t numel = graft_tensor_numel(t);
        CHECK(n == (size_t)numel * sizeof(float),
              "%s: torchvision gave %zu floats, graft (1, 3, %lld, %lld)", jobs[k].image,
              n / sizeof(float), (long long)t->dims[2], (long long)t->dims[3]);
        if (n == (size_t)numel * sizeof(float)) {
            const float *g = t->data;
            double worst = 0;
            for (int64_t i = 0; i < numel; i++) worst = fmax(worst, fabs((double)g[i] - ref[i]));
            printf("  %-28s resize %4d crop %4d -> %4lldx%-4lld max |graft - torchvision| = %.3g "
                   "(%.3g/255)\n",
                   jobs[k].image, jobs[k].resize, jobs[k].crop, (long long)t->dims[3],
                   (long long)t->dims[2], worst, worst * 255);
            overall = fmax(overall, worst);
            th_close(g, ref, numel, 0, 1.0 / 255 + 1e-6, jobs[k].image);
        }
        free(ref);
        graft_tensor_free(t);
    }
    printf("parity with torchvision: max abs difference before normalisation %.3g over %d jobs\n",
           overall, NJOBS);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/graft_image_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_png_decode();
    test_jpeg_decode();
    test_pnm_decode();
    test_bad_files();
    test_jpeg_markers();
    test_pil_verdicts();
    test_resize();
    test_geometry();
    test_load_api();
    test_parity();
    if (!getenv("GRAFT_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    } else printf("images kept in %s\n", tmpdir);
    return th_finish();
}
