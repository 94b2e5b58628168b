/* transform.c — the training transform pipeline with torchvision's semantics on PIL images:
 * RandomResizedCrop or Resize + CenterCrop, RandomHorizontalFlip, ColorJitter, ToTensor +
 * Normalize; its text form; and the random draws (graft's gr_rng, torchvision's algorithm).
 *
 * Per sample: one resize into a uint8 buffer (only the pixels the crop keeps), the jitter
 * adjustments in place on it, then one pass to float that folds the flip, ToTensor and
 * Normalize into a 256-entry table per channel. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>

/* PIL's blend and HSV code are float expressions compiled without contraction; a fused
 * multiply-add (-march=native) would round differently. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* RandomResizedCrop's aspect ratios are kept within [RATIO_MIN, 1 / RATIO_MIN]: beyond, a crop
 * side overflows an int before the image bounds refuse it. */
#define RATIO_MIN 1e-4

static const float imagenet_mean[3] = { 0.485f, 0.456f, 0.406f },
                   imagenet_std[3] = { 0.229f, 0.224f, 0.225f };

/* ---- defaults, text form ------------------------------------------------------------------ */

static void transform_clear(gr_transform *t)
{
    memset(t, 0, sizeof *t);
    t->rrc_scale[0] = 0.08f;
    t->rrc_scale[1] = 1.0f;
    t->rrc_ratio[0] = 3.0f / 4.0f;
    t->rrc_ratio[1] = 4.0f / 3.0f;
    for (int c = 0; c < 3; c++) t->std[c] = 1.0f;
}

void gr_transform_default(gr_transform *t)
{
    transform_clear(t);
    t->resize = 256;
    t->crop = 224;
    memcpy(t->mean, imagenet_mean, sizeof t->mean);
    memcpy(t->std, imagenet_std, sizeof t->std);
}

/* One number of a value: a decimal (strtod syntax) or a fraction a/b; finite. */
static int parse_number(const char *key, const char *s, double *v)
{
    char *end;
    errno = 0;
    double a = strtod(s, &end);
    if (end != s && *end == '/') {
        const char *d = end + 1;
        double b = strtod(d, &end);
        if (end == d || b == 0)
            return gr_err(GRAFT_E_ARG, "transform: %s: bad number \"%s\"", key, s);
        a /= b;
    }
    if (end == s || *end || errno == ERANGE || !isfinite(a) || isspace((unsigned char)*s))
        return gr_err(GRAFT_E_ARG, "transform: %s: bad number \"%s\"", key, s);
    *v = a;
    return GRAFT_OK;
}

/* The value as the float the transform keeps, which must be finite ("jitter=1e39" is finite as a
 * double, inf as a float). */
static int to_float(const char *key, double v, float *out)
{
    float f = (float)v;
    if (!isfinite(f)) return gr_err(GRAFT_E_ARG, "transform: %s: %g is out of range", key, v);
    *out = f;
    return GRAFT_OK;
}

/* Splits `val` at ':' into 1..max numbers; `count` says how many there were. */
static int parse_list(const char *key, char *val, double *v, int max, int *count)
{
    int n = 0;
    for (char *p = val;; n++) {
        char *colon = strchr(p, ':');
        if (colon) *colon = 0;
        if (n >= max) return gr_err(GRAFT_E_ARG, "transform: %s: more than %d values", key, max);
        int st = parse_number(key, p, &v[n]);
        if (st) return st;
        if (!colon) break;
        p = colon + 1;
    }
    *count = n + 1;
    return GRAFT_OK;
}

static int parse_side(const char *key, const char *s, int *out)
{
    double v = 0;
    int st = parse_number(key, s, &v);
    if (st) return st;
    if (v != floor(v) || v < 1 || v > GR_IMAGE_MAX_SIDE)
        return gr_err(GRAFT_E_ARG, "transform: %s: \"%s\" is not a whole number of pixels in 1..%d",
                      key, s, GR_IMAGE_MAX_SIDE);
    *out = (int)v;
    return GRAFT_OK;
}

static int want_count(const char *key, const char *val, int got, int a, int b, int c)
{
    if (got == a || got == b || got == c) return GRAFT_OK;
    return gr_err(GRAFT_E_ARG, "transform: %s: %d value%s in \"%s\"", key, got, got == 1 ? "" : "s",
                  val);
}

/* rrc=N[:smin:smax[:rmin:rmax]]: `shown` is the value as given, for messages. */
static int parse_rrc(gr_transform *t, const char *key, char *val, const char *shown)
{
    double v[4];
    int n = 0, st;
    char *colon = strchr(val, ':');
    if (colon) *colon = 0;
    if ((st = parse_side(key, val, &t->rrc))) return st;
    if (!colon) return GRAFT_OK;
    if ((st = parse_list(key, colon + 1, v, 4, &n)) ||
        (st = want_count(key, shown, n + 1, 3, 5, 3)))
        return st;
    /* checked as the floats kept: 1e-50 is 0 as a float, and log(0) would poison the draws */
    if (!((float)v[0] > 0 && v[0] <= v[1] && v[1] <= 1))
        return gr_err(GRAFT_E_ARG, "transform: rrc: scale %g:%g must satisfy 0 < min <= max <= 1",
                      v[0], v[1]);
    t->rrc_scale[0] = (float)v[0];
    t->rrc_scale[1] = (float)v[1];
    if (n == 4) {
        if (!(v[2] >= RATIO_MIN && v[2] <= v[3] && v[3] <= 1 / RATIO_MIN))
            return gr_err(GRAFT_E_ARG,
                          "transform: rrc: ratio %g:%g must satisfy %g <= min <= max <= %g", v[2],
                          v[3], RATIO_MIN, 1 / RATIO_MIN);
        t->rrc_ratio[0] = (float)v[2];
        t->rrc_ratio[1] = (float)v[3];
    }
    return GRAFT_OK;
}

static int parse_item(gr_transform *t, const char *key, char *val)
{
    double v[6];
    int n = 0, st;
    char shown[128];
    snprintf(shown, sizeof shown, "%s", val);
    if (!strcmp(key, "resize")) return parse_side(key, val, &t->resize);
    if (!strcmp(key, "crop")) return parse_side(key, val, &t->crop);
    if (!strcmp(key, "size")) {
        char *x = strchr(val, 'x');
        if (!x) {
            if ((st = parse_side(key, val, &t->size_w))) return st;
            t->size_h = t->size_w;
            return GRAFT_OK;
        }
        *x = 0;
        if ((st = parse_side(key, val, &t->size_w))) return st;
        return parse_side(key, x + 1, &t->size_h);
    }
    if (!strcmp(key, "flip")) {
        if ((st = parse_number(key, val, v))) return st;
        if (!(v[0] >= 0 && v[0] <= 1))
            return gr_err(GRAFT_E_ARG, "transform: flip: probability %s is outside 0..1", shown);
        t->hflip = (float)v[0];
        return GRAFT_OK;
    }
    if (!strcmp(key, "rrc")) return parse_rrc(t, key, val, shown);
    if (!strcmp(key, "jitter")) {
        if ((st = parse_list(key, val, v, 4, &n)) || (st = want_count(key, shown, n, 4, 4, 4)))
            return st;
        for (int k = 0; k < 4; k++)
            if (!(v[k] >= 0) || (k == 3 && v[k] > 0.5))
                return gr_err(GRAFT_E_ARG, "transform: jitter: %s %g must be in %s",
                              (const char *[]){ "brightness", "contrast", "saturation", "hue" }[k],
                              v[k], k == 3 ? "0..0.5" : "0.. (non-negative)");
        for (int k = 0; k < 4; k++)
            if ((st = to_float(key, v[k], &t->jitter[k]))) return st;
        return GRAFT_OK;
    }
    if (!strcmp(key, "normalize")) {
        if (!strcmp(val, "imagenet")) {
            memcpy(t->mean, imagenet_mean, sizeof t->mean);
            memcpy(t->std, imagenet_std, sizeof t->std);
            return GRAFT_OK;
        }
        if (!strcmp(val, "none")) {
            for (int c = 0; c < 3; c++) t->mean[c] = 0, t->std[c] = 1;
            return GRAFT_OK;
        }
        if ((st = parse_list(key, val, v, 6, &n)) || (st = want_count(key, shown, n, 6, 6, 6)))
            return st;
        for (int c = 0; c < 3; c++) {
            if (!((float)v[3 + c] != 0))
                return gr_err(GRAFT_E_ARG, "transform: normalize: std of channel %d is 0", c);
            if ((st = to_float(key, v[c], &t->mean[c])) ||
                (st = to_float(key, v[3 + c], &t->std[c])))
                return st;
        }
        return GRAFT_OK;
    }
    return gr_err(
        GRAFT_E_ARG,
        "transform: unknown key \"%s\" (known: resize, crop, size, rrc, flip, jitter, normalize)",
        key);
}

/* Each size the transform makes is held to the image-pixels limit when it is parsed, before a
 * loader allocates batches of it: resize=N makes at least N x N (the shorter side is N). */
static int area_check(const char *key, int w, int h)
{
    if (w <= 0 || h <= 0) return GRAFT_OK;
    return gr_limit_check(GRAFT_LIMIT_IMAGE_PIXELS, (int64_t)w * h,
                          "transform: %s makes images of %dx%d pixels%s", key, w, h,
                          strcmp(key, "resize") ? "" : " or more");
}

static int check_pixels(const gr_transform *t)
{
    int st = area_check("resize", t->resize, t->resize);
    if (!st) st = area_check("size", t->size_w, t->size_h);
    if (!st) st = area_check("crop", t->crop, t->crop);
    if (!st) st = area_check("rrc", t->rrc, t->rrc);
    return st;
}

int gr_transform_parse(const char *spec, gr_transform *out)
{
    if (!spec) return gr_err(GRAFT_E_ARG, "transform: no text");
    gr_transform t;
    transform_clear(&t);
    char *copy = gr_malloc(strlen(spec) + 1);
    if (!copy) return GRAFT_E_NOMEM;
    strcpy(copy, spec);
    int st = GRAFT_OK;
    unsigned seen = 0;
    static const char *const keys[] = { "resize", "crop",   "size",     "rrc",
                                        "flip",   "jitter", "normalize" };
    for (char *item = copy; item && !st;) {
        char *comma = strchr(item, ',');
        if (comma) *comma = 0;
        while (isspace((unsigned char)*item)) item++;
        for (char *e = item + strlen(item); e > item && isspace((unsigned char)e[-1]);) *--e = 0;
        if (*item) {
            char *eq = strchr(item, '=');
            if (!eq) {
                st = gr_err(GRAFT_E_ARG, "transform: \"%s\" is not key=value", item);
                break;
            }
            char *val = eq + 1;
            for (*eq = 0; eq > item && isspace((unsigned char)eq[-1]);) *--eq = 0;
            while (isspace((unsigned char)*val)) val++;
            for (int k = 0; k < 7; k++)
                if (!strcmp(item, keys[k])) {
                    if (seen & 1u << k) st = gr_err(GRAFT_E_ARG, "transform: %s given twice", item);
                    seen |= 1u << k;
                }
            if (!st) st = parse_item(&t, item, val);
        }
        item = comma ? comma + 1 : NULL;
    }
    free(copy);
    if (st) return st;
    if (t.resize && t.size_w)
        return gr_err(GRAFT_E_ARG, "transform: resize and size exclude each other");
    if (t.rrc && (t.resize || t.size_w || t.crop))
        return gr_err(GRAFT_E_ARG,
                      "transform: rrc replaces resize, size and crop; give one or the other");
    if ((st = check_pixels(&t))) return st;
    *out = t;
    return GRAFT_OK;
}

/* The shortest decimal that reads back as the same float. */
static void fmt_float(char *buf, size_t n, float v)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

typedef struct sbuf {
    char *p;
    size_t n, len;
} sbuf;

static void put(sbuf *b, const char *s)
{
    size_t k = strlen(s);
    if (b->len < b->n) snprintf(b->p + b->len, b->n - b->len, "%s", s);
    b->len += k;
}

static void put_floats(sbuf *b, const char *prefix, const float *v, int n)
{
    put(b, prefix);
    for (int i = 0; i < n; i++) {
        char f[32];
        fmt_float(f, sizeof f, v[i]);
        if (i) put(b, ":");
        put(b, f);
    }
}

void gr_transform_format(const gr_transform *t, char *buf, size_t n)
{
    sbuf b = { buf, n, 0 };
    char tmp[64];
    if (n) buf[0] = 0;
    if (t->size_w) {
        if (t->size_w == t->size_h) snprintf(tmp, sizeof tmp, "size=%d,", t->size_w);
        else snprintf(tmp, sizeof tmp, "size=%dx%d,", t->size_w, t->size_h);
        put(&b, tmp);
    }
    if (t->resize) {
        snprintf(tmp, sizeof tmp, "resize=%d,", t->resize);
        put(&b, tmp);
    }
    if (t->crop) {
        snprintf(tmp, sizeof tmp, "crop=%d,", t->crop);
        put(&b, tmp);
    }
    if (t->rrc) {
        snprintf(tmp, sizeof tmp, "rrc=%d", t->rrc);
        put(&b, tmp);
        int def_ratio = t->rrc_ratio[0] == 3.0f / 4.0f && t->rrc_ratio[1] == 4.0f / 3.0f;
        if (!def_ratio || t->rrc_scale[0] != 0.08f || t->rrc_scale[1] != 1.0f)
            put_floats(&b, ":", t->rrc_scale, 2);
        if (!def_ratio) put_floats(&b, ":", t->rrc_ratio, 2);
        put(&b, ",");
    }
    if (t->hflip > 0) put_floats(&b, "flip=", &t->hflip, 1), put(&b, ",");
    if (t->jitter[0] > 0 || t->jitter[1] > 0 || t->jitter[2] > 0 || t->jitter[3] > 0)
        put_floats(&b, "jitter=", t->jitter, 4), put(&b, ",");
    if (!memcmp(t->mean, imagenet_mean, sizeof t->mean) &&
        !memcmp(t->std, imagenet_std, sizeof t->std))
        put(&b, "normalize=imagenet");
    else if (t->mean[0] == 0 && t->mean[1] == 0 && t->mean[2] == 0 && t->std[0] == 1 &&
             t->std[1] == 1 && t->std[2] == 1)
        put(&b, "normalize=none");
    else {
        float v[6] = { t->mean[0], t->mean[1], t->mean[2], t->std[0], t->std[1], t->std[2] };
        put_floats(&b, "normalize=", v, 6);
    }
}

/* ---- geometry ------------------------------------------------------------------------------ */

void gr_transform_out_size(const gr_transform *t, int iw, int ih, int *oh, int *ow)
{
    int w = iw, h = ih;
    if (t->rrc) w = h = t->rrc;
    else {
        if (t->size_w) w = t->size_w, h = t->size_h;
        else if (t->resize) gr_image_resized_size(iw, ih, t->resize, &w, &h);
        if (t->crop) w = h = t->crop;
    }
    *oh = h;
    *ow = w;
}

void gr_transform_decode_min(const gr_transform *t, int *min_w, int *min_h)
{
    *min_w = *min_h = 0;
    if (t->rrc) {
        /* the smallest crop is sqrt(smin * rmin) of the width and sqrt(smin / rmax) of the height
         * of a square-ish image; decode_scaled doubles the minimum, hence the 2 */
        double cw = sqrt((double)t->rrc_scale[0] * t->rrc_ratio[0]),
               ch = sqrt((double)t->rrc_scale[0] / t->rrc_ratio[1]);
        /* a tiny scale asks for more than any image has: no side is above GR_IMAGE_MAX_SIDE */
        *min_w = (int)fmin(ceil(t->rrc / cw / 2), GR_IMAGE_MAX_SIDE);
        *min_h = (int)fmin(ceil(t->rrc / ch / 2), GR_IMAGE_MAX_SIDE);
    } else if (t->size_w) {
        *min_w = t->size_w;
        *min_h = t->size_h;
    } else if (t->resize) *min_w = *min_h = t->resize;
}

/* Python's round(): half to even, which rint does in the default rounding mode; clamped to an
 * int (a side that large is refused by the image bounds anyway). */
static int round_even(double v)
{
    double r = rint(v);
    return !(r > 0) ? 0 : r >= INT32_MAX ? INT32_MAX : (int)r;
}

void gr_rrc_params(int iw, int ih, const float scale[2], const float ratio[2], gr_rng *rng, int *x,
                   int *y, int *w, int *h)
{
    double area = (double)iw * ih;
    float lr0 = logf(ratio[0]), lr1 = logf(ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        /* torch: uniform_(a, b) on float32 is a + u * (b - a) */
        float s = scale[0] + (float)gr_rng_uniform(rng) * (scale[1] - scale[0]);
        float ar = expf(lr0 + (float)gr_rng_uniform(rng) * (lr1 - lr0));
        double target = area * s;
        int cw = round_even(sqrt(target * ar)), ch = round_even(sqrt(target / ar));
        if (cw > 0 && cw <= iw && ch > 0 && ch <= ih) {
            *y = (int)gr_rng_below(rng, (uint64_t)(ih - ch + 1));
            *x = (int)gr_rng_below(rng, (uint64_t)(iw - cw + 1));
            *w = cw;
            *h = ch;
            return;
        }
    }
    double in_ratio = (double)iw / ih, rmin = fminf(ratio[0], ratio[1]),
           rmax = fmaxf(ratio[0], ratio[1]);
    int cw = iw, ch = ih;
    if (in_ratio < rmin) ch = round_even(cw / rmin);
    else if (in_ratio > rmax) cw = round_even(ch * rmax);
    *w = cw;
    *h = ch;
    *y = (ih - ch) / 2;
    *x = (iw - cw) / 2;
}

void gr_transform_draw(const gr_transform *t, int iw, int ih, gr_rng *rng, gr_transform_draws *d)
{
    memset(d, 0, sizeof *d);
    d->crop_w = iw;
    d->crop_h = ih;
    if (t->rrc)
        gr_rrc_params(iw, ih, t->rrc_scale, t->rrc_ratio, rng, &d->crop_x, &d->crop_y, &d->crop_w,
                      &d->crop_h);
    if (t->hflip > 0) d->flip = gr_rng_uniform(rng) < t->hflip;
    for (int k = 0; k < 4; k++) d->order[k] = k;
    d->factor[0] = d->factor[1] = d->factor[2] = 1;
    if (!(t->jitter[0] > 0 || t->jitter[1] > 0 || t->jitter[2] > 0 || t->jitter[3] > 0)) return;
    for (int k = 3; k > 0; k--) { /* torch.randperm(4): any uniform permutation */
        int j = (int)gr_rng_below(rng, (uint64_t)k + 1), tmp = d->order[k];
        d->order[k] = d->order[j];
        d->order[j] = tmp;
    }
    for (int k = 0; k < 4; k++) {
        float v = t->jitter[k];
        if (!(v > 0)) continue;
        float lo = k == 3 ? -v : fmaxf(0.0f, 1.0f - v), hi = k == 3 ? v : 1.0f + v;
        d->factor[k] = lo + (float)gr_rng_uniform(rng) * (hi - lo);
    }
}

/* ---- colour adjustments (PIL) ------------------------------------------------------------- */

/* libImaging/Blend.c: out = in1 + alpha * (in2 - in1) in float, truncated; clipped only when
 * alpha is outside [0, 1]. */
static uint8_t blend(int a, int b, float alpha)
{
    float t = (float)a + alpha * (float)(b - a);
    if (alpha >= 0 && alpha <= 1) return (uint8_t)t;
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

/* libImaging/Convert.c rgb2l: ITU-R 601-2 luma in 16-bit fixed point. */
static inline int luma(const uint8_t *p)
{
    return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
}

static void apply_lut(gr_image *img, const uint8_t lut[256])
{
    size_t n = (size_t)img->w * img->h * 3;
    for (size_t i = 0; i < n; i++) img->rgb[i] = lut[img->rgb[i]];
}

/* ImageStat.Stat(image.convert("L")).mean, rounded as ImageEnhance.Contrast does. */
static int mean_luma(const gr_image *img)
{
    size_t n = (size_t)img->w * img->h;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += (uint64_t)luma(img->rgb + 3 * i);
    return (int)((double)sum / (double)n + 0.5);
}

/* libImaging/Convert.c rgb2hsv_row, float and double exactly where PIL has them. Only the
 * differences the branch needs are divided, and fmod(x, 1) of x in (0, 2) is x or x - 1 (exact). */
static void rgb2hsv(const uint8_t *in, uint8_t *out)
{
    int r = in[0], g = in[1], b = in[2];
    int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b),
        minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
    out[2] = (uint8_t)maxc;
    if (minc == maxc) {
        out[0] = out[1] = 0;
        return;
    }
    float cr = (float)(maxc - minc), s = cr / (float)maxc, h;
    if (r == maxc) h = (float)(maxc - b) / cr - (float)(maxc - g) / cr;
    else if (g == maxc) h = (float)(2.0 + (float)(maxc - r) / cr - (float)(maxc - b) / cr);
    else h = (float)(4.0 + (float)(maxc - g) / cr - (float)(maxc - r) / cr);
    double x = h / 6.0 + 1.0;
    h = (float)(x >= 1.0 ? x - 1.0 : x);
    int uh = (int)(h * 255.0), us = (int)(s * 255.0);
    out[0] = (uint8_t)(uh < 0 ? 0 : uh > 255 ? 255 : uh);
    out[1] = (uint8_t)(us < 0 ? 0 : us > 255 ? 255 : us);
}

/* C's round() of v in [0, 255] (half away from zero) without the libm call: truncating v + 0.5
 * is wrong only when that sum rounds up to the next integer, which the check undoes. */
static uint8_t clip_round(double v)
{
    int r = (int)(v + 0.5);
    if (v < (double)r - 0.5) r--;
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

/* libImaging/Convert.c hsv2rgb's per-hue and per-saturation terms, computed once per image. */
typedef struct hsv_tabs {
    int i[256];
    float f[256], fs[256];
} hsv_tabs;

static void hsv_tabs_init(hsv_tabs *t)
{
    for (int v = 0; v < 256; v++) {
        t->i[v] = (int)floor((float)v * 6.0 / 255.0);
        t->f[v] = (float)((float)v * 6.0 / 255.0 - (float)t->i[v]);
        t->fs[v] = (float)((float)v / 255.0);
    }
}

static void hsv2rgb(const hsv_tabs *tab, const uint8_t *in, uint8_t *out)
{
    int h = in[0], s = in[1], v = in[2];
    if (s == 0) {
        out[0] = out[1] = out[2] = (uint8_t)v;
        return;
    }
    int i = tab->i[h];
    float f = tab->f[h], fs = tab->fs[s];
    uint8_t p = clip_round((float)v * (1.0 - fs)), q = clip_round((float)v * (1.0 - fs * f)),
            t = clip_round((float)v * (1.0 - fs * (1.0 - f))), V = (uint8_t)v;
    uint8_t r, g, b;
    switch (i % 6) {
    case 0:
        r = V;
        g = t;
        b = p;
        break;
    case 1:
        r = q;
        g = V;
        b = p;
        break;
    case 2:
        r = p;
        g = V;
        b = t;
        break;
    case 3:
        r = p;
        g = q;
        b = V;
        break;
    case 4:
        r = t;
        g = p;
        b = V;
        break;
    default:
        r = V;
        g = p;
        b = q;
        break;
    }
    out[0] = r;
    out[1] = g;
    out[2] = b;
}

/* torchvision F_pil.adjust_hue: RGB → HSV, H += np.uint8(factor * 255) (wrapping), → RGB. */
static void adjust_hue(gr_image *img, float factor)
{
    uint8_t shift = (uint8_t)(int)(factor * 255.0);
    hsv_tabs tab;
    hsv_tabs_init(&tab);
    size_t n = (size_t)img->w * img->h;
    for (size_t i = 0; i < n; i++) {
        uint8_t hsv[3], *p = img->rgb + 3 * i;
        rgb2hsv(p, hsv);
        hsv[0] = (uint8_t)(hsv[0] + shift);
        hsv2rgb(&tab, hsv, p);
    }
}

void gr_image_adjust(gr_image *img, int which, float factor)
{
    uint8_t lut[256];
    if (which == GR_JIT_HUE) {
        adjust_hue(img, factor);
        return;
    }
    if (which == GR_JIT_SATURATION) { /* blend with the image's own "L" */
        size_t n = (size_t)img->w * img->h;
        uint8_t *p = img->rgb;
        if (factor >= 0 && factor <= 1) /* blend's two cases as two loops, so each vectorises */
            for (size_t i = 0; i < n; i++, p += 3) {
                float l = (float)luma(p);
                for (int c = 0; c < 3; c++) p[c] = (uint8_t)(l + factor * (float)(p[c] - (int)l));
            }
        else
            for (size_t i = 0; i < n; i++, p += 3) {
                int l = luma(p);
                for (int c = 0; c < 3; c++) p[c] = blend(l, p[c], factor);
            }
        return;
    }
    int base = which == GR_JIT_CONTRAST ? mean_luma(img) : 0; /* brightness: black */
    for (int v = 0; v < 256; v++) lut[v] = blend(base, v, factor);
    apply_lut(img, lut);
}

void gr_image_hflip(gr_image *img)
{
    for (int64_t y = 0; y < img->h; y++) {
        uint8_t *a = img->rgb + y * img->w * 3, *b = a + (int64_t)(img->w - 1) * 3;
        for (; a < b; a += 3, b -= 3)
            for (int c = 0; c < 3; c++) {
                uint8_t t = a[c];
                a[c] = b[c];
                b[c] = t;
            }
    }
}

/* ---- the pipeline ------------------------------------------------------------------------- */

/* ToTensor + Normalize with the flip folded in: each channel's 256 possible outputs computed
 * as torchvision computes them ((v / 255 - mean) / std in float32), then one gather pass. */
static void to_tensor(float *out, const gr_image *img, int flip, const float mean[3],
                      const float std[3])
{
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
    int64_t w = img->w, hw = w * img->h;
    for (int64_t y = 0; y < img->h; y++) {
        const uint8_t *row = img->rgb + y * w * 3;
        float *o0 = out + y * w, *o1 = o0 + hw, *o2 = o1 + hw;
        if (flip)
            for (int64_t x = 0; x < w; x++) {
                const uint8_t *p = row + (w - 1 - x) * 3;
                o0[x] = lut[0][p[0]], o1[x] = lut[1][p[1]], o2[x] = lut[2][p[2]];
            }
        else
            for (int64_t x = 0; x < w; x++) {
                const uint8_t *p = row + x * 3;
                o0[x] = lut[0][p[0]], o1[x] = lut[1][p[1]], o2[x] = lut[2][p[2]];
            }
    }
}

int gr_transform_apply_draws(const gr_transform *t, const gr_image *in, const gr_transform_draws *d,
                             float *out)
{
    /* the source box, the size it is resized to, and the window of that kept */
    int bx = 0, by = 0, bw = in->w, bh = in->h, fw, fh, cx = 0, cy = 0, cw, ch;
    if (t->rrc) {
        bx = d->crop_x, by = d->crop_y, bw = d->crop_w, bh = d->crop_h;
        fw = fh = t->rrc;
    } else if (t->size_w) fw = t->size_w, fh = t->size_h;
    else if (t->resize) gr_image_resized_size(in->w, in->h, t->resize, &fw, &fh);
    else fw = in->w, fh = in->h;
    cw = fw, ch = fh;
    if (!t->rrc && t->crop) {
        cw = ch = t->crop;
        gr_image_center_offset(fw, fh, cw, ch, &cx, &cy);
    }
    int jitter = t->jitter[0] > 0 || t->jitter[1] > 0 || t->jitter[2] > 0 || t->jitter[3] > 0;
    int identity = bx == 0 && by == 0 && bw == in->w && bh == in->h && fw == bw && fh == bh &&
                   cx == 0 && cy == 0 && cw == fw && ch == fh;
    if (identity && !jitter) { /* nothing to change in uint8: straight to float */
        to_tensor(out, in, d->flip, t->mean, t->std);
        return GRAFT_OK;
    }
    gr_image img;
    int st = gr_image_resize_window(in, bx, by, bw, bh, fw, fh, cx, cy, cw, ch, &img);
    if (st) return st;
    /* the flip commutes with every adjustment (all per pixel, or contrast's global mean), so
     * it waits for the final pass */
    for (int k = 0; k < 4; k++) {
        int a = d->order[k];
        if (a >= 0 && a < 4 && t->jitter[a] > 0) gr_image_adjust(&img, a, d->factor[a]);
    }
    to_tensor(out, &img, d->flip, t->mean, t->std);
    gr_image_free(&img);
    return GRAFT_OK;
}

int gr_transform_apply(const gr_transform *t, const gr_image *in, gr_rng *rng, float *out)
{
    gr_transform_draws d;
    gr_transform_draw(t, in->w, in->h, rng, &d);
    return gr_transform_apply_draws(t, in, &d, out);
}
