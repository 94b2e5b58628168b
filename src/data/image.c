/* image.c — images to tensors: decode (JPEG through TurboJPEG, PNG through libspng, binary
 * PGM/PPM by hand), Exif orientation, files and format detection, the public API; the
 * PIL-exact bilinear resize, center crop and normalise are in image_resize.c.
 * See data.h for the semantics (torchvision + PIL) and the few deliberate divergences.
 * Depends on core, TurboJPEG and libspng; nothing above core. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <spng.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#define MAX_FILE_BYTES ((size_t)1 << 30)

void gr_image_free(gr_image *img)
{
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

int gr_image_size_check(const char *what, int64_t w, int64_t h)
{
    if (w <= 0 || h <= 0)
        return gr_err(GRAFT_E_ARG, "%s: %lldx%lld pixels is not a size", what, (long long)w,
                      (long long)h);
    return gr_limit_check(GRAFT_LIMIT_IMAGE_PIXELS, w * h, "%s: %lldx%lld is %lld pixels", what,
                          (long long)w, (long long)h, (long long)(w * h));
}

/* Refuses a size from a header before anything is allocated for it: a side beyond graft's
 * int-sized buffers is unsupported, a pixel count beyond the image-pixels limit is GRAFT_E_LIMIT. */
static int check_size(const char *name, int64_t w, int64_t h)
{
    if (w <= 0 || h <= 0)
        return gr_err(GRAFT_E_FORMAT, "%s: image is %lldx%lld pixels", name, (long long)w,
                      (long long)h);
    if (w > GR_IMAGE_MAX_SIDE || h > GR_IMAGE_MAX_SIDE)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: image is %lldx%lld pixels, larger than graft's limit of %d per side",
                      name, (long long)w, (long long)h, GR_IMAGE_MAX_SIDE);
    return gr_limit_check(GRAFT_LIMIT_IMAGE_PIXELS, w * h, "%s: image is %lldx%lld pixels (%lld)",
                          name, (long long)w, (long long)h, (long long)(w * h));
}

/* A w x h RGB buffer; sizes are already within the limits (or come from resize/crop). */
int gr_image_alloc(gr_image *img, int w, int h)
{
    img->rgb = gr_malloc((size_t)w * (size_t)h * 3);
    if (!img->rgb) return GRAFT_E_NOMEM;
    img->w = w;
    img->h = h;
    return GRAFT_OK;
}

/* ---- Exif orientation -------------------------------------------------------------------- */

static unsigned rd16(const uint8_t *p, int be)
{
    return be ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}
static uint32_t rd32(const uint8_t *p, int be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Tag 0x0112 of IFD0 of a TIFF-structured Exif block; 1 (upright) when absent or unreadable.
 * Like PIL, a SHORT or LONG with one value counts. */
static int tiff_orientation(const uint8_t *t, size_t n)
{
    if (n < 8) return 1;
    int be;
    if (!memcmp(t, "II*\0", 4)) be = 0;
    else if (!memcmp(t, "MM\0*", 4)) be = 1;
    else return 1;
    uint32_t ifd = rd32(t + 4, be);
    if (ifd > n - 2) return 1;
    unsigned count = rd16(t + ifd, be);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
        if (e + 12 > n) break;
        if (rd16(t + e, be) != 0x0112 || rd32(t + e + 4, be) != 1) continue;
        unsigned type = rd16(t + e + 2, be);
        uint32_t v = type == 3 ? rd16(t + e + 8, be) : type == 4 ? rd32(t + e + 8, be) : 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* PIL's Image.transpose for each Exif orientation, as a linear map from an output pixel
 * (x', y') to the source pixel index base + x' * sx + y' * sy (in pixels of the input). */
int gr_image_orient(gr_image *img, int orientation)
{
    if (orientation < 2 || orientation > 8) return GRAFT_OK;
    int64_t W = img->w, H = img->h, base, sx, sy;
    switch (orientation) {
    case 2:
        base = W - 1;
        sx = -1;
        sy = W;
        break; /* FLIP_LEFT_RIGHT */
    case 3:
        base = (H - 1) * W + W - 1;
        sx = -1;
        sy = -W;
        break; /* ROTATE_180 */
    case 4:
        base = (H - 1) * W;
        sx = 1;
        sy = -W;
        break; /* FLIP_TOP_BOTTOM */
    case 5:
        base = 0;
        sx = W;
        sy = 1;
        break; /* TRANSPOSE */
    case 6:
        base = (H - 1) * W;
        sx = -W;
        sy = 1;
        break; /* ROTATE_270 (clockwise) */
    case 7:
        base = (H - 1) * W + W - 1;
        sx = -W;
        sy = -1;
        break; /* TRANSVERSE */
    default:
        base = W - 1;
        sx = W;
        sy = -1;
        break; /* 8: ROTATE_90 */
    }
    int ow = orientation >= 5 ? img->h : img->w, oh = orientation >= 5 ? img->w : img->h;
    gr_image out;
    if (gr_image_alloc(&out, ow, oh)) return GRAFT_E_NOMEM;
    for (int64_t y = 0; y < oh; y++) {
        uint8_t *d = out.rgb + y * ow * 3;
        for (int64_t x = 0; x < ow; x++)
            memcpy(d + 3 * x, img->rgb + 3 * (base + x * sx + y * sy), 3);
    }
    gr_image_free(img);
    *img = out;
    return GRAFT_OK;
}

/* ---- JPEG (TurboJPEG) -------------------------------------------------------------------- */

/* graft accepts a JPEG exactly when PIL's Image.open(...).convert("RGB") does, as far as the
 * file's markers and its end go (PIL decodes with libjpeg too, so the pixels then agree):
 *  (a) jpeg_pil_markers: PIL's JpegImagePlugin._open walks the markers from SOI to the first
 *      SOS before libjpeg sees the data, and refuses what that walk refuses (a byte other than
 *      0xFF right after SOI, 0xFF01..0xFFBF, a segment running past the end, the few fields
 *      its handlers read). libjpeg alone would accept some of these with a warning.
 *  (b) jpeg_reaches_eoi: data that ends before libjpeg reaches the end-of-image marker is
 *      truncated (PIL: "image file is truncated"; libjpeg: the warning JWRN_JPEG_EOF, then
 *      gray). Decided from the bytes before decoding, because TurboJPEG reports only libjpeg's
 *      first warning, and so that a cut file costs nothing to refuse.
 *  (c) libjpeg's other warnings (garbage before a marker, a corrupt or short data segment, a
 *      bad Huffman code) are not errors: PIL ignores them and keeps what libjpeg decoded (gray
 *      where data is missing), and so does graft. libjpeg's errors are errors.
 * As with PIL, a few hundred bytes may declare an image of up to the image-pixels limit whose
 * data segment ends at once: libjpeg fills it with gray, and that limit is what bounds the work.
 * TJFLAG_LIMITSCANS refuses progressive files with more than 500 scans, which PIL decodes: a
 * guard against cheap input making expensive work (each scan is a pass over the whole image).
 * Known divergences: PIL decodes a single-scan file that lacks its end-of-image marker when
 * libjpeg could finish the last row without reading past the end (padding after the data);
 * graft refuses every file whose data ends before EOI. PIL's parsing of Exif, ICC, Photoshop
 * and MPF contents can refuse a file that graft reads. */
#define JPEG_FLAGS TJFLAG_LIMITSCANS

/* What the marker walk found: where the first scan's data starts, and PIL's Exif segment (the
 * first APP1 that starts "Exif\0"). */
typedef struct jpeg_walk {
    size_t scan, exif, exif_len;
    int has_exif;
} jpeg_walk;

static const char *jpeg_marker_name(unsigned m, char buf[8])
{
    static const char *const named[0x3F] = {
        [0x04] = "DHT", [0x08] = "JPG", [0x0C] = "DAC", [0x18] = "SOI",
        [0x19] = "EOI", [0x1A] = "SOS", [0x1B] = "DQT", [0x1C] = "DNL",
        [0x1D] = "DRI", [0x1E] = "DHP", [0x1F] = "EXP", [0x3E] = "COM"
    };
    if (m >= 0xC0 && m <= 0xFE && named[m - 0xC0]) return named[m - 0xC0];
    if (m >= 0xC0 && m <= 0xCF) snprintf(buf, 8, "SOF%u", m - 0xC0);
    else if (m >= 0xD0 && m <= 0xD7) snprintf(buf, 8, "RST%u", m - 0xD0);
    else if (m >= 0xE0 && m <= 0xEF) snprintf(buf, 8, "APP%u", m - 0xE0);
    else if (m >= 0xF0 && m <= 0xFD) snprintf(buf, 8, "JPG%u", m - 0xF0);
    else snprintf(buf, 8, "0xFF%02X", m & 0xFF);
    return buf;
}

/* PIL's MARKER table is every 0xFFC0..0xFFFE. These have no handler there, so PIL reads no
 * length after them: JPG, RST0-7, SOI, EOI, JPG0-13. */
static int pil_marker_bare(unsigned m)
{
    return m == 0xC8 || (m >= 0xD0 && m <= 0xD9) || (m >= 0xF0 && m <= 0xFD);
}

/* The markers PIL's SOF handler reads: SOF0-15 (not DHT, JPG, DAC) and DHP. */
static int pil_marker_sof(unsigned m)
{
    return (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) || m == 0xDE;
}

/* The fields PIL's handlers read from a segment's `len` bytes at s (marker m at offset at),
 * refused as PIL refuses them; records the Exif segment. */
static int pil_segment(const char *name, unsigned m, size_t at, const uint8_t *s, size_t len,
                       jpeg_walk *w)
{
    char nb[8];
    const char *mn = jpeg_marker_name(m, nb);
    if (pil_marker_sof(m)) { /* size at 1..4, precision at 0, components at 5 */
        if (len < 6)
            return gr_err(GRAFT_E_FORMAT,
                          "%s: bad JPEG: the %s segment at offset %zu holds %zu bytes, too few for "
                          "a frame header",
                          name, mn, at, len);
        if (s[0] != 8)
            return gr_err(GRAFT_E_FORMAT,
                          "%s: bad JPEG: %s at offset %zu declares %u-bit samples (PIL reads 8-bit "
                          "JPEGs only)",
                          name, mn, at, s[0]);
        if (s[5] != 1 && s[5] != 3 && s[5] != 4)
            return gr_err(
                GRAFT_E_FORMAT,
                "%s: bad JPEG: %s at offset %zu declares %u components (PIL reads 1, 3 or 4)", name,
                mn, at, s[5]);
    } else if (m == 0xDB) { /* tables of 64 one-byte (high nibble 0) or two-byte values */
        for (size_t k = 0; k < len;) {
            size_t need = 1 + 64 * (s[k] >> 4 ? 2 : 1);
            if (len - k < need)
                return gr_err(GRAFT_E_FORMAT,
                              "%s: bad JPEG: the DQT segment at offset %zu ends inside a table "
                              "(%zu of %zu bytes)",
                              name, at, len - k, need);
            k += need;
        }
    } else if ((m == 0xE0 && len >= 4 && !memcmp(s, "JFIF", 4)) ||
               (m == 0xEE && len >= 5 && !memcmp(s, "Adobe", 5))) {
        if (len < 7) /* PIL reads a 16-bit version at 5 */
            return gr_err(GRAFT_E_FORMAT,
                          "%s: bad JPEG: the %s segment at offset %zu holds %zu bytes, too few for "
                          "its %s header",
                          name, mn, at, len, m == 0xE0 ? "JFIF" : "Adobe");
    } else if (m == 0xE1 && len >= 5 && !memcmp(s, "Exif\0", 5) && !w->has_exif) {
        w->has_exif = 1;
        w->exif = at + 4;
        w->exif_len = len;
    }
    return GRAFT_OK;
}

/* (a) PIL's walk from SOI to the first SOS: a non-0xFF byte is skipped, as are 0xFF00 and fill
 * bytes (0xFFFF); a marker of its table consumes its segment (length-prefixed unless bare); any
 * other 0xFFxx is refused ("no marker found"), and so is data that ends first. No allocation;
 * every step moves forward. */
static int jpeg_pil_markers(const char *name, const uint8_t *b, size_t n, jpeg_walk *w)
{
    memset(w, 0, sizeof *w);
    if (n < 3)
        return gr_err(GRAFT_E_FORMAT,
                      "%s: truncated JPEG (the data ends after the start-of-image marker)", name);
    if (b[2] != 0xFF) /* PIL's _accept: SOI and the 0xFF of a marker */
        return gr_err(GRAFT_E_FORMAT,
                      "%s: bad JPEG: byte 2 is 0x%02X, not the start of a marker after SOI (PIL: "
                      "not a JPEG file)",
                      name, b[2]);
    char nb[8];
    size_t i = 2;
    for (;;) {
        if (i >= n || (b[i] == 0xFF && i + 1 >= n))
            return gr_err(
                GRAFT_E_FORMAT,
                "%s: truncated JPEG (the data ends at offset %zu, before the start of scan)", name,
                n);
        if (b[i] != 0xFF) {
            i++;
            continue;
        }
        unsigned m = b[i + 1];
        if (m == 0xFF) {
            i++;
            continue;
        }
        if (m == 0x00) {
            i += 2;
            continue;
        }
        if (m < 0xC0)
            return gr_err(
                GRAFT_E_FORMAT,
                "%s: bad JPEG: 0xFF%02X at offset %zu is not a JPEG marker (PIL: no marker found)",
                name, m, i);
        if (pil_marker_bare(m)) {
            i += 2;
            continue;
        }
        if (n - i < 4)
            return gr_err(
                GRAFT_E_FORMAT,
                "%s: truncated JPEG (the data ends in the length of the %s segment at offset %zu)",
                name, jpeg_marker_name(m, nb), i);
        size_t len = (size_t)b[i + 2] << 8 | b[i + 3], body = len > 2 ? len - 2 : 0;
        if (body > n - i - 4)
            return gr_err(
                GRAFT_E_FORMAT,
                "%s: truncated JPEG (the %s segment at offset %zu needs %zu bytes, %zu are left)",
                name, jpeg_marker_name(m, nb), i, body, n - i - 4);
        int st = pil_segment(name, m, i, b + i + 4, body, w);
        if (st) return st;
        i += 4 + body;
        if (m == 0xDA) {
            w->scan = i;
            return GRAFT_OK;
        }
    }
}

/* The markers libjpeg reads a length after (to parse or skip the segment): SOF0-15 but JPG,
 * DHT, DAC, SOS, DQT, DNL, DRI, APP0-15, COM. */
static int libjpeg_has_length(unsigned m)
{
    return (m >= 0xC0 && m <= 0xCF && m != 0xC8) || (m >= 0xDA && m <= 0xDD) ||
           (m >= 0xE0 && m <= 0xEF) || m == 0xFE;
}

/* (b) Whether libjpeg, reading on from the first scan's data at i, meets EOI before the data
 * ends. As libjpeg: in and between scans, bytes up to a 0xFF, fill bytes and stuffed zeros are
 * data or garbage, RSTn and markers it cannot use do not end anything (it refuses the latter
 * itself), and a segment is skipped by its length (SOS's header, tables between scans). */
static int jpeg_reaches_eoi(const uint8_t *b, size_t n, size_t i)
{
    while (i < n) {
        if (b[i++] != 0xFF) continue;
        while (i < n && b[i] == 0xFF) i++;
        if (i >= n) break;
        unsigned m = b[i++];
        if (m == 0xD9) return 1;
        if (!libjpeg_has_length(m)) continue;
        if (n - i < 2) break;
        size_t len = (size_t)b[i] << 8 | b[i + 1];
        if (len > n - i) break;
        i += len < 2 ? 2 : len;
    }
    return 0;
}

/* libjpeg's warnings (the JWRN_ texts of jerror.h). */
static int libjpeg_warning(const char *why)
{
    static const char *const warn[] = { "Corrupt JPEG data: ",
                                        "Premature end of JPEG file",
                                        "Inconsistent progression sequence for component",
                                        "Invalid SOS parameters for sequential JPEG",
                                        "Unknown Adobe color transform code",
                                        "Warning: unknown JFIF revision number",
                                        "Application transferred too many scanlines" };
    for (size_t k = 0; k < sizeof warn / sizeof *warn; k++)
        if (!strncmp(why, warn[k], strlen(warn[k]))) return 1;
    return 0;
}

/* (c) A TurboJPEG call returned -1: GRAFT_OK when libjpeg only warned (the output is complete),
 * else the error. TurboJPEG keeps the first warning's text and answers TJERR_WARNING once any
 * warning happened, even when an error came after it; an error's text always replaces the
 * warning's, so a warning is TJERR_WARNING with one of libjpeg's warning texts. The end of the
 * data (JWRN_JPEG_EOF) is refused as truncated, though jpeg_reaches_eoi refuses it first. */
static int jpeg_status(const char *name, tjhandle tj)
{
    const char *why = tjGetErrorStr2(tj);
    if (tjGetErrorCode(tj) != TJERR_WARNING || !libjpeg_warning(why))
        return gr_err(GRAFT_E_FORMAT, "%s: bad JPEG: %s", name, why);
    if (!strncmp(why, "Premature end of JPEG file", 26))
        return gr_err(GRAFT_E_FORMAT, "%s: truncated JPEG (%s)", name, why);
    return GRAFT_OK;
}

/* PIL reads CMYK JPEGs with Adobe's inverted polarity ("CMYK;I") and converts them with
 * cmyk2rgb: nk = 255 - k, r = nk - nk * c / 255 (MULDIV255 rounding). In place, 4 → 3 bytes. */
static void cmyk_to_rgb(uint8_t *px, size_t npix)
{
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = px + 4 * i;
        int nk = s[3]; /* PIL's k is 255 - stored k, so nk = 255 - k is the stored k */
        uint8_t rgb[3];
        for (int c = 0; c < 3; c++) {
            int t = (255 - s[c]) * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            rgb[c] = (uint8_t)(v < 0 ? 0 : v);
        }
        memcpy(px + 3 * i, rgb, 3);
    }
}

/* The smallest of TurboJPEG's IDCT scaling factors (1/8 .. 2) that keeps the scaled image at
 * least min_w x min_h; 1/1 when none is smaller (min 0 means full size). */
static void jpeg_scaled_size(int w, int h, int min_w, int min_h, int *sw, int *sh)
{
    int nsf = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&nsf);
    *sw = w;
    *sh = h;
    for (int i = 0; sf && i < nsf; i++) {
        if (sf[i].num >= sf[i].denom) continue; /* only shrinking */
        int tw = TJSCALED(w, sf[i]), th = TJSCALED(h, sf[i]);
        if (tw >= min_w && th >= min_h && (int64_t)tw * th < (int64_t)*sw * *sh) {
            *sw = tw;
            *sh = th;
        }
    }
}

static int decode_jpeg(const char *name, const uint8_t *buf, size_t n, int min_w, int min_h,
                       gr_image *out)
{
    jpeg_walk walk;
    int st = jpeg_pil_markers(name, buf, n, &walk);
    if (st) return st;
    if (!jpeg_reaches_eoi(buf, n, walk.scan))
        return gr_err(
            GRAFT_E_FORMAT,
            "%s: truncated JPEG (the data ends at offset %zu, before the end-of-image marker)",
            name, n);
    tjhandle tj = tjInitDecompress();
    if (!tj) return gr_err(GRAFT_E_NOMEM, "%s: cannot start the JPEG decoder", name);
    int w = 0, h = 0, subsamp, cs = TJCS_RGB;
    uint8_t *px = NULL;
    /* -1 after a warning too, the header read in full */
    if (tjDecompressHeader3(tj, buf, (unsigned long)n, &w, &h, &subsamp, &cs) != 0 &&
        (st = jpeg_status(name, tj)))
        goto done;
    /* TurboJPEG reads a tables-only datastream (EOI before any frame) as success without a size */
    if (w <= 0 || h <= 0) {
        st = gr_err(GRAFT_E_FORMAT, "%s: bad JPEG: no frame header before the end-of-image marker",
                    name);
        goto done;
    }
    if ((st = check_size(name, w, h))) goto done;
    /* PIL's Exif: its first APP1 "Exif\0" segment, a TIFF block after "Exif\0\0" */
    const uint8_t *exif = buf + walk.exif;
    int orient = walk.has_exif && walk.exif_len >= 6 && exif[5] == 0
                     ? tiff_orientation(exif + 6, walk.exif_len - 6)
                     : 1;
    if (min_w > 0 || min_h > 0) { /* the minimum is for the upright image */
        int mw = orient >= 5 ? min_h : min_w, mh = orient >= 5 ? min_w : min_h;
        jpeg_scaled_size(w, h, mw, mh, &w, &h);
    }
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    int pf = cmyk ? TJPF_CMYK : TJPF_RGB;
    size_t npix = (size_t)w * (size_t)h;
    if (!(px = gr_malloc(npix * (size_t)tjPixelSize[pf]))) {
        st = GRAFT_E_NOMEM;
        goto done;
    }
    /* Accurate integer DCT and fancy upsampling, libjpeg's defaults, which PIL uses; -1 after
     * libjpeg's warnings too, the image decoded in full (jpeg_status tells them apart) */
    if (tjDecompress2(tj, buf, (unsigned long)n, px, w, 0, h, pf, JPEG_FLAGS) != 0 &&
        (st = jpeg_status(name, tj)))
        goto done;
    if (cmyk) {
        cmyk_to_rgb(px, npix);
        uint8_t *p = realloc(px, npix * 3);
        if (p) px = p;
    }
    gr_image img = { w, h, px };
    px = NULL;
    st = gr_image_orient(&img, orient);
    if (st) gr_image_free(&img);
    else *out = img;
done:
    free(px);
    tjDestroy(tj);
    return st;
}

/* ---- PNG (libspng) ----------------------------------------------------------------------- */

static int png_error(const char *name, int e)
{
    if (e == SPNG_IO_EOF || e == SPNG_IO_ERROR)
        return gr_err(GRAFT_E_FORMAT, "%s: truncated PNG (%s)", name, spng_strerror(e));
    return gr_err(GRAFT_E_FORMAT, "%s: bad PNG: %s", name, spng_strerror(e));
}

/* PNG's eXIf chunk holds the TIFF structure directly (no "Exif\0\0" prefix). */
static int png_orientation(spng_ctx *ctx)
{
    struct spng_exif exif;
    if (spng_get_exif(ctx, &exif) != 0 || !exif.data) return 1;
    return tiff_orientation((const uint8_t *)exif.data, exif.length);
}

/* spng refused IHDR's size against its limits: the width and height (big-endian at bytes 16 and
 * 20, after the signature and IHDR's length and type) for check_size's message. */
static int png_ihdr_size(const char *name, const uint8_t *b, size_t n)
{
    if (n < 24) return gr_err(GRAFT_E_FORMAT, "%s: truncated PNG header", name);
    int64_t w = (int64_t)rd32(b + 16, 1), h = (int64_t)rd32(b + 20, 1);
    int st = check_size(name, w, h);
    return st ? st : gr_err(GRAFT_E_FORMAT, "%s: bad PNG: image size refused", name);
}

static int decode_png(const char *name, const uint8_t *buf, size_t n, gr_image *out)
{
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return gr_err(GRAFT_E_NOMEM, "%s: cannot start the PNG decoder", name);
    /* Metadata chunks (text, ICC profiles) cannot make spng hold more than these; sides beyond
     * graft's are refused by spng itself when it reads IHDR (and named by check_size here). */
    spng_set_chunk_limits(ctx, 1u << 26, (size_t)1 << 28);
    spng_set_image_limits(ctx, GR_IMAGE_MAX_SIDE, GR_IMAGE_MAX_SIDE);
    struct spng_ihdr ih;
    size_t size;
    gr_image img = { 0 };
    int e, st;
    if ((e = spng_set_png_buffer(ctx, buf, n)) || (e = spng_get_ihdr(ctx, &ih))) {
        st = e == SPNG_EUSER_WIDTH || e == SPNG_EUSER_HEIGHT ? png_ihdr_size(name, buf, n)
                                                             : png_error(name, e);
        goto done;
    }
    if ((st = check_size(name, ih.width, ih.height))) goto done;
    /* RGB8 for every color type and depth: palettes expanded, gray replicated, alpha and tRNS
     * dropped, 16-bit samples shifted to their high byte, low depths bit-replicated (as PIL). */
    if ((e = spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &size))) {
        st = png_error(name, e);
        goto done;
    }
    if ((st = gr_image_alloc(&img, (int)ih.width, (int)ih.height))) goto done;
    GR_ASSERT(size == (size_t)img.w * (size_t)img.h * 3);
    if ((e = spng_decode_image(ctx, img.rgb, size, SPNG_FMT_RGB8, 0))) {
        st = png_error(name, e);
        goto done;
    }
    if ((st = gr_image_orient(&img, png_orientation(ctx)))) goto done;
    *out = img;
    img.rgb = NULL;
done:
    gr_image_free(&img);
    spng_ctx_free(ctx);
    return st;
}

/* ---- binary PGM / PPM (P5 / P6) ---------------------------------------------------------- */

/* Next unsigned decimal of the header, skipping whitespace and # comments (as PIL does). */
static int pnm_token(const uint8_t *b, size_t n, size_t *i, long *v)
{
    while (*i < n) {
        if (b[*i] == '#') {
            while (*i < n && b[*i] != '\n' && b[*i] != '\r') (*i)++;
        } else if (strchr(" \t\n\v\f\r", b[*i]) && b[*i]) (*i)++;
        else break;
    }
    int digits = 0;
    *v = 0;
    while (*i < n && b[*i] >= '0' && b[*i] <= '9' && digits < 10) {
        *v = *v * 10 + (b[*i] - '0');
        (*i)++;
        digits++;
    }
    /* exactly one whitespace byte ends the maxval and starts the pixels */
    if (!digits || *i >= n || !strchr(" \t\n\v\f\r", b[*i]) || !b[*i]) return -1;
    (*i)++;
    return 0;
}

static int decode_pnm(const char *name, const uint8_t *b, size_t n, gr_image *out)
{
    int ch = b[1] == '6' ? 3 : 1;
    size_t i = 2;
    long w, h, maxval;
    if (n < 3 || pnm_token(b, n, &i, &w) || pnm_token(b, n, &i, &h) || pnm_token(b, n, &i, &maxval))
        return gr_err(GRAFT_E_FORMAT, "%s: bad P%c header (width, height, maxval)", name, b[1]);
    int st = check_size(name, w, h);
    if (st) return st;
    if (maxval < 1 || maxval > 65535)
        return gr_err(GRAFT_E_FORMAT, "%s: maxval %ld is outside 1..65535", name, maxval);
    int bps = maxval > 255 ? 2 : 1;
    size_t nsamp = (size_t)w * (size_t)h * (size_t)ch;
    if (n - i < nsamp * (size_t)bps)
        return gr_err(GRAFT_E_FORMAT, "%s: truncated P%c: %zu bytes of pixels, %zu needed", name,
                      b[1], n - i, nsamp * (size_t)bps);
    gr_image img;
    if (gr_image_alloc(&img, (int)w, (int)h)) return GRAFT_E_NOMEM;
    const uint8_t *p = b + i;
    for (size_t k = 0; k < nsamp; k++) {
        unsigned v = bps == 2 ? (unsigned)p[2 * k] << 8 | p[2 * k + 1] : p[k];
        /* PIL: min(255, round(v / maxval * 255)), round half to even (rint) */
        if (maxval != 255)
            v = v >= (unsigned)maxval ? 255 : (unsigned)rint((double)v / (double)maxval * 255.0);
        if (ch == 3) img.rgb[k] = (uint8_t)v;
        else memset(img.rgb + 3 * k, (int)v, 3);
    }
    *out = img;
    return GRAFT_OK;
}

/* ---- files and format detection ---------------------------------------------------------- */

/* Formats graft recognises but does not read, so the message can say what the file is. */
static const char *other_format(const uint8_t *b, size_t n)
{
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "GIF";
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "WebP";
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))) return "TIFF";
    if (n >= 14 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (n >= 12 && !memcmp(b + 4, "ftyp", 4)) return "HEIF/AVIF";
    if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '4') return "plain or bitmap PNM (P1-P4)";
    return NULL;
}

int gr_image_decode_mem(const char *name, const uint8_t *b, size_t n, gr_image *out)
{
    static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n' };
    if (n == 0) return gr_err(GRAFT_E_FORMAT, "%s: the file is empty", name);
    if (n >= 2 && b[0] == 0xFF && b[1] == 0xD8) return decode_jpeg(name, b, n, 0, 0, out);
    if (n >= 4 && !memcmp(b, png_sig, n < 8 ? n : 8)) return decode_png(name, b, n, out);
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return decode_pnm(name, b, n, out);
    const char *other = other_format(b, n);
    if (other)
        return gr_err(GRAFT_E_UNSUPPORTED,
                      "%s: %s images are not supported (graft reads JPEG, PNG, binary PGM/PPM)",
                      name, other);
    char hex[3 * 8 + 1] = "", text[8 + 1] = "";
    int printable = 1;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(hex + strlen(hex), 4, "%s%02x", i ? " " : "", b[i]);
        text[i] = (char)b[i];
        printable &= b[i] >= 0x20 && b[i] < 0x7F;
    }
    return gr_err(GRAFT_E_FORMAT,
                  "%s: not a JPEG, PNG or binary PGM/PPM image (it starts with bytes %s%s%s%s)",
                  name, hex, printable ? ", text \"" : "", printable ? text : "",
                  printable ? "\"" : "");
}

int gr_image_decode(const char *path, gr_image *out)
{
    uint8_t *buf;
    size_t n;
    int st = gr_read_file(path, MAX_FILE_BYTES, &buf, &n);
    if (st) return st;
    st = gr_image_decode_mem(path, buf, n, out);
    free(buf);
    return st;
}

int gr_image_decode_scaled(const char *path, int min_w, int min_h, gr_image *out)
{
    uint8_t *buf;
    size_t n;
    int st = gr_read_file(path, MAX_FILE_BYTES, &buf, &n);
    if (st) return st;
    /* twice the minimum, so the antialiased resize that follows still does the real shrinking */
    if (n >= 2 && buf[0] == 0xFF && buf[1] == 0xD8)
        st = decode_jpeg(path, buf, n, min_w > 0 ? 2 * min_w : 0, min_h > 0 ? 2 * min_h : 0, out);
    else st = gr_image_decode_mem(path, buf, n, out);
    free(buf);
    return st;
}

/* ---- public API -------------------------------------------------------------------------- */

void graft_image_prep_imagenet(graft_image_prep *p)
{
    *p = (graft_image_prep){ 256, 224, { 0.485f, 0.456f, 0.406f }, { 0.229f, 0.224f, 0.225f } };
}

int gr_image_prepare(const char *path, const graft_image_prep *p, gr_image *out)
{
    graft_image_prep def;
    if (!p) {
        graft_image_prep_imagenet(&def);
        p = &def;
    }
    gr_image img, tmp;
    int st = gr_image_decode(path, &img);
    if (st) return st;
    int w, h;
    if (p->resize > 0) gr_image_resized_size(img.w, img.h, p->resize, &w, &h);
    if (p->resize > 0 && (w != img.w || h != img.h)) {
        st = gr_image_resize(&img, w, h, &tmp);
        gr_image_free(&img);
        if (st) return gr_err_prefix(st, "%s", path);
        img = tmp;
    }
    if (p->crop > 0 && (p->crop != img.w || p->crop != img.h)) {
        int x, y;
        gr_image_center_offset(img.w, img.h, p->crop, p->crop, &x, &y);
        st = gr_image_crop(&img, x, y, p->crop, p->crop, &tmp);
        gr_image_free(&img);
        if (st) return gr_err_prefix(st, "%s", path);
        img = tmp;
    }
    *out = img;
    return GRAFT_OK;
}

graft_status graft_image_load(const char *path, const graft_image_prep *p, graft_tensor **out)
{
    graft_image_prep def;
    if (!path || !out)
        return gr_err(GRAFT_E_ARG, "graft_image_load: path and out must not be NULL");
    if (!p) {
        graft_image_prep_imagenet(&def);
        p = &def;
    }
    for (int c = 0; c < 3; c++)
        if (!(p->std[c] != 0.0f) || !isfinite(p->std[c]) || !isfinite(p->mean[c]))
            return gr_err(GRAFT_E_ARG, "graft_image_load: mean/std channel %d is %g/%g", c,
                          p->mean[c], p->std[c]);
    gr_image img;
    int st = gr_image_prepare(path, p, &img);
    if (st) return (graft_status)st;
    graft_tensor *t;
    int64_t dims[4] = { 1, 3, img.h, img.w };
    st = graft_tensor_new(GRAFT_FLOAT, 4, dims, &t);
    if (!st) {
        gr_image_to_chw(t->data, &img, p->mean, p->std);
        *out = t;
    }
    gr_image_free(&img);
    return (graft_status)st;
}
