/* image_resize.c — PIL-exact bilinear resize (PIL's libImaging/Resample.c), crop, center crop
 * and ToTensor + Normalize, on the RGB8 images image.c decodes. See data.h for the semantics.
 * Depends on core. */
#include "data.h"

#include <math.h>
#include <string.h>

/* ---- resize: PIL's Image.resize(BILINEAR), libImaging/Resample.c ------------------------ */

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* For each output index: the first input index and count (bounds), and ksize fixed-point
 * weights. The filter's support widens by the downscale factor; weights are normalised to sum
 * 1 and then rounded to PRECISION_BITS. Returns ksize, 0 when out of memory. */
static int precompute_coeffs(int in_size, int out_size, int **boundsp, int32_t **kkp)
{
    const double support1 = 1.0; /* bilinear */
    double scale = (double)((float)in_size - 0.0f) / out_size,
           filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support1 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = gr_malloc((size_t)ksize * sizeof *k);
    int32_t *kk = gr_malloc((size_t)out_size * (size_t)ksize * sizeof *kk);
    int *bounds = gr_malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!k || !kk || !bounds) {
        free(k);
        free(kk);
        free(bounds);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = 0.0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            k[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        for (x = 0; x < ksize; x++) /* normalize_coeffs_8bpc */
            kk[xx * ksize + x] = (int32_t)(k[x] < 0 ? -0.5 + k[x] * (1 << PRECISION_BITS)
                                                    : 0.5 + k[x] * (1 << PRECISION_BITS));
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(k);
    *boundsp = bounds;
    *kkp = kk;
    return ksize;
}

static uint8_t clip8(int32_t ss)
{
    int32_t v = ss >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* The horizontal pass (ImagingResampleHorizontal_8bpc) for output columns [x0, x1): output
 * pixel xx is the sum over t < bounds[2xx+1] of input pixel bounds[2xx] + t times kk[xx][t],
 * plus half for rounding, shifted back and clipped to 8 bits. INT32 sums, as PIL (bilinear
 * weights are non-negative and sum to 2^22, so 255 times them fits). */
static void resample_h(uint8_t *dst, int64_t dst_stride, const uint8_t *src, int64_t src_stride,
                       int rows, int x0, int x1, int ksize, const int *bounds, const int32_t *kk)
{
    for (int64_t y = 0; y < rows; y++) {
        const uint8_t *s0 = src + y * src_stride;
        uint8_t *d = dst + y * dst_stride;
        for (int xx = x0; xx < x1; xx++, d += 3) {
            const int32_t *k = kk + (int64_t)xx * ksize;
            const uint8_t *s = s0 + (int64_t)bounds[2 * xx] * 3;
            int32_t a0 = 1 << (PRECISION_BITS - 1), a1 = a0, a2 = a0;
            for (int x = 0, n = bounds[2 * xx + 1]; x < n; x++) {
                a0 += s[3 * x] * k[x];
                a1 += s[3 * x + 1] * k[x];
                a2 += s[3 * x + 2] * k[x];
            }
            d[0] = clip8(a0);
            d[1] = clip8(a1);
            d[2] = clip8(a2);
        }
    }
}

/* The vertical pass (ImagingResampleVertical_8bpc) for output rows [y0, y1), `len` bytes per
 * row; src row 0 is input row `first`. Row by row into `acc` so the inner loop is contiguous. */
static void resample_v(uint8_t *dst, int64_t dst_stride, const uint8_t *src, int64_t src_stride,
                       int first, int y0, int y1, int64_t len, int ksize, const int *bounds,
                       const int32_t *kk, int32_t *acc)
{
    for (int yy = y0; yy < y1; yy++, dst += dst_stride) {
        const int32_t *k = kk + (int64_t)yy * ksize;
        const uint8_t *s = src + (int64_t)(bounds[2 * yy] - first) * src_stride;
        for (int64_t i = 0; i < len; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0, n = bounds[2 * yy + 1]; y < n; y++, s += src_stride) {
            int32_t w = k[y];
            for (int64_t i = 0; i < len; i++) acc[i] += s[i] * w;
        }
        for (int64_t i = 0; i < len; i++) dst[i] = clip8(acc[i]);
    }
}

/* ImagingResampleInner on the box: horizontal pass first (only over the rows the vertical pass
 * reads and the columns the window keeps), then vertical; each pass rounds to 8 bits, as PIL.
 * A pass whose size does not change is skipped, as PIL does. */
int gr_image_resize_window(const gr_image *in, int bx, int by, int bw, int bh, int fw, int fh,
                           int cx, int cy, int cw, int ch, gr_image *out)
{
    if (bw <= 0 || bh <= 0 || bx < 0 || by < 0 || bx > in->w - bw || by > in->h - bh)
        return gr_err(GRAFT_E_ARG,
                      "image resize: box %dx%d at (%d, %d) is not inside the %dx%d image", bw, bh,
                      bx, by, in->w, in->h);
    int st = gr_image_size_check("image resize", fw, fh);
    if (st || (st = gr_image_size_check("image crop", cw, ch))) return st;
    int need_h = fw != bw, need_v = fh != bh;
    /* the part of the window inside the resized image; the rest stays 0 */
    int x0 = cx > 0 ? cx : 0, x1 = (int64_t)cx + cw < fw ? cx + cw : fw;
    int y0 = cy > 0 ? cy : 0, y1 = (int64_t)cy + ch < fh ? cy + ch : fh;
    int *bh_ = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    uint8_t *tmp = NULL;
    gr_image res = { 0 };
    if ((st = gr_image_alloc(&res, cw, ch))) return st;
    if (x1 <= x0 || y1 <= y0 || x0 != cx || y0 != cy || x1 != cx + cw || y1 != cy + ch)
        memset(res.rgb, 0, (size_t)cw * ch * 3);
    if (x1 <= x0 || y1 <= y0) {
        *out = res;
        return GRAFT_OK;
    }
    int ksh = need_h ? precompute_coeffs(bw, fw, &bh_, &kh) : 1;
    int ksv = need_v ? precompute_coeffs(bh, fh, &bv, &kv) : 1;
    if (!ksh || !ksv) {
        st = GRAFT_E_NOMEM;
        goto done;
    }
    int64_t in_stride = (int64_t)in->w * 3, out_stride = (int64_t)cw * 3,
            len = (int64_t)(x1 - x0) * 3;
    const uint8_t *box = in->rgb + by * in_stride + (int64_t)bx * 3;
    uint8_t *dst = res.rgb + (int64_t)(y0 - cy) * out_stride + (int64_t)(x0 - cx) * 3;
    /* the input rows the kept output rows read */
    int first = y0, last = y1;
    if (need_v) {
        first = bv[2 * y0];
        last = 0;
        for (int yy = y0; yy < y1; yy++)
            if (bv[2 * yy] + bv[2 * yy + 1] > last) last = bv[2 * yy] + bv[2 * yy + 1];
    }
    if (!need_v) {
        if (need_h)
            resample_h(dst, out_stride, box + (int64_t)y0 * in_stride, in_stride, y1 - y0, x0, x1,
                       ksh, bh_, kh);
        else
            for (int y = y0; y < y1; y++)
                memcpy(dst + (int64_t)(y - y0) * out_stride, box + y * in_stride + (int64_t)x0 * 3,
                       (size_t)len);
        goto done;
    }
    const uint8_t *vsrc = box + (int64_t)first * in_stride + (int64_t)x0 * 3;
    int64_t vstride = in_stride;
    /* one block: the horizontally resampled rows, then the vertical pass's accumulators */
    size_t tmp_bytes = need_h ? (size_t)(last - first) * (size_t)len : 0;
    tmp_bytes = (tmp_bytes + 15) & ~(size_t)15;
    if (!(tmp = gr_malloc(tmp_bytes + (size_t)len * sizeof(int32_t)))) {
        st = GRAFT_E_NOMEM;
        goto done;
    }
    if (need_h) {
        resample_h(tmp, len, box + (int64_t)first * in_stride, in_stride, last - first, x0, x1, ksh,
                   bh_, kh);
        vsrc = tmp;
        vstride = len;
    }
    resample_v(dst, out_stride, vsrc, vstride, first, y0, y1, len, ksv, bv, kv,
               (int32_t *)(void *)(tmp + tmp_bytes));
done:
    free(tmp);
    free(bh_);
    free(bv);
    free(kh);
    free(kv);
    if (st) gr_image_free(&res);
    else *out = res;
    return st;
}

int gr_image_resize(const gr_image *in, int w, int h, gr_image *out)
{
    int st = gr_image_size_check("image resize", w, h);
    if (st) return st;
    return gr_image_resize_window(in, 0, 0, in->w, in->h, w, h, 0, 0, w, h, out);
}

void gr_image_resized_size(int w, int h, int size, int *ow, int *oh)
{
    int short_side = w <= h ? w : h, long_side = w <= h ? h : w;
    /* Python: int(size * long / short), a true division then truncation */
    int64_t nl = (int64_t)((double)((int64_t)size * long_side) / (double)short_side);
    if (nl > INT32_MAX) nl = INT32_MAX;
    *ow = w <= h ? size : (int)nl;
    *oh = w <= h ? (int)nl : size;
}

/* ---- crop and tensor --------------------------------------------------------------------- */

int gr_image_crop(const gr_image *in, int x, int y, int w, int h, gr_image *out)
{
    int st = gr_image_size_check("image crop", w, h);
    if (st) return st;
    gr_image res;
    if (gr_image_alloc(&res, w, h)) return GRAFT_E_NOMEM;
    memset(res.rgb, 0, (size_t)w * h * 3);
    int64_t x0 = x < 0 ? -(int64_t)x : 0, x1 = (int64_t)in->w - x < w ? (int64_t)in->w - x : w;
    for (int64_t r = 0; r < h; r++) {
        int64_t sy = y + r;
        if (sy < 0 || sy >= in->h || x1 <= x0) continue;
        memcpy(res.rgb + (r * w + x0) * 3, in->rgb + (sy * in->w + x + x0) * 3,
               (size_t)(x1 - x0) * 3);
    }
    *out = res;
    return GRAFT_OK;
}

/* torchvision's center_crop: pad with zeros ((c - size) // 2 before) where the crop is larger,
 * else start at int(round((size - c) / 2.0)), Python rounding half to even. */
static int center_start(int size, int c)
{
    if (c > size) return -((c - size) / 2);
    int d = size - c, k = d / 2;
    return d % 2 == 0 || k % 2 == 0 ? k : k + 1;
}

void gr_image_center_offset(int w, int h, int cw, int ch, int *x, int *y)
{
    *x = center_start(w, cw);
    *y = center_start(h, ch);
}

void gr_image_to_chw(float *out, const gr_image *in, const float mean[3], const float std[3])
{
    int64_t hw = (int64_t)in->w * in->h;
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < hw;
             i++) /* torchvision: x.float().div(255), then sub_(mean).div_(std) */
            out[c * hw + i] = ((float)in->rgb[3 * i + c] / 255.0f - mean[c]) / std[c];
}
