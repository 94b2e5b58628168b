/* data — images now, the training data pipeline later. Depends on core only (and, privately in
 * image.c, on TurboJPEG and libspng).
 *
 * Images follow what torchvision does with PIL images, so a model trained in PyTorch sees the
 * same numbers in graft:
 *   decode      JPEG (TurboJPEG), PNG (libspng), binary PGM/PPM (P5/P6); the format comes from
 *               the magic bytes, never the extension. Gray → 3 equal channels, alpha dropped,
 *               16-bit samples → their high byte (PNG) or v * 255 / maxval rounded (PGM/PPM),
 *               CMYK JPEG → RGB as PIL's convert("RGB") does (Adobe-inverted CMYK).
 *   orientation the Exif Orientation tag (JPEG APP1, PNG eXIf) is applied, as PIL's
 *               ImageOps.exif_transpose does. torchvision's loaders do NOT do this; graft does,
 *               so a phone photo taken sideways comes out upright.
 *   resize      PIL's Image.resize(BILINEAR): a separable triangle filter whose support grows
 *               with the downscale factor (antialiasing), fixed-point 8-bit like PIL, so the
 *               result is bit-exact with torchvision's Resize on PIL images.
 *   crop        torchvision's CenterCrop (zero padding when the crop is larger).
 *   to float    ToTensor (/255) then Normalize ((x - mean) / std), NCHW.
 *
 * Known divergences from PIL (on purpose): PIL opens 16-bit grayscale PNG/PGM as mode "I" and
 * its convert("RGB") clips values above 255 to white; graft scales them to 8 bits. PIL also reads
 * an orientation from a PNG's XMP text; graft reads only Exif. */
#ifndef GR_DATA_H
#define GR_DATA_H

#include "core/core.h"

/* Images larger than this are refused from their header, before any pixel memory is allocated. */
#define GR_IMAGE_MAX_SIDE 65535
#define GR_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* An 8-bit RGB image, rows top to bottom, owned by whoever holds it (gr_image_free). */
typedef struct gr_image {
    int w, h;
    uint8_t *rgb; /* (h, w, 3) */
} gr_image;

void gr_image_free(gr_image *img);

/* Decodes a JPEG, PNG or binary PGM/PPM file to RGB8, upright per its Exif orientation.
 * Errors name the path and the reason; *out is untouched on failure. */
int gr_image_decode(const char *path, gr_image *out);
/* The same from memory; `name` is used in error messages (a path, or "archive.tar:img1.jpg"). */
int gr_image_decode_mem(const char *name, const uint8_t *data, size_t n, gr_image *out);

/* Applies an Exif orientation (1..8; anything else leaves the image as it is), in place. */
int gr_image_orient(gr_image *img, int orientation);

/* Resizes to (w, h) exactly as PIL's Image.resize(BILINEAR) (antialiased when shrinking). */
int gr_image_resize(const gr_image *in, int w, int h, gr_image *out);
/* torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer
 * int(size * long / short). Writes the new (w, h). */
void gr_image_resized_size(int w, int h, int size, int *ow, int *oh);

/* Copies the (w, h) window whose top-left corner is (x, y) in `in`; pixels outside `in` are 0. */
int gr_image_crop(const gr_image *in, int x, int y, int w, int h, gr_image *out);
/* torchvision's CenterCrop((h, w)): the window's top-left corner, padding included (negative
 * where the crop is larger than the image, as torchvision pads with zeros first). */
void gr_image_center_offset(int w, int h, int cw, int ch, int *x, int *y);

/* ToTensor + Normalize: out[c][y][x] = (rgb[y][x][c] / 255 - mean[c]) / std[c]. */
void gr_image_to_chw(float *out /* (3, h, w) */, const gr_image *in, const float mean[3],
                     const float std[3]);

/* Decode + orientation + resize + center crop, the uint8 image before ToTensor (prep NULL means
 * graft_image_prep_imagenet). The data pipeline calls this per sample. */
int gr_image_prepare(const char *path, const graft_image_prep *p, gr_image *out);

#endif
