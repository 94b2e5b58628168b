/* data — images and the training data pipeline. Depends on core, and on io for .npy arrays
 * (ds_npy.c; privately in image.c, on TurboJPEG and libspng).
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
 * an orientation from a PNG's XMP text; graft reads only Exif. A JPEG is accepted when PIL
 * accepts it as far as its markers and its end go (see gr_image_decode), with two exceptions:
 * graft refuses a progressive JPEG of more than 500 scans (a guard on decoding time), and a
 * single-scan JPEG whose data ends before its end-of-image marker even where libjpeg could
 * finish the last row without it (PIL then decodes it). */
#ifndef GR_DATA_H
#define GR_DATA_H

#include "core/core.h"

/* Images are refused from their header, before any pixel memory is allocated, when a side is
 * above GR_IMAGE_MAX_SIDE (GRAFT_E_UNSUPPORTED: graft's sizes are ints) or width x height is above
 * the limit GRAFT_LIMIT_IMAGE_PIXELS (GRAFT_E_LIMIT). Sizes that transforms make (resize, crop)
 * are held to the same limit. */
#define GR_IMAGE_MAX_SIDE 65535

/* An 8-bit RGB image, rows top to bottom, owned by whoever holds it (gr_image_free). */
typedef struct gr_image {
    int w, h;
    uint8_t *rgb; /* (h, w, 3) */
} gr_image;

void gr_image_free(gr_image *img);
/* A w x h RGB buffer; sizes are already within the limits (or come from resize/crop). */
int gr_image_alloc(gr_image *img, int w, int h);

/* GRAFT_OK when a w x h image is a size graft makes: GRAFT_E_ARG (w or h <= 0) or GRAFT_E_LIMIT
 * (w * h above the image-pixels limit) otherwise, the message starting with `what`. */
int gr_image_size_check(const char *what, int64_t w, int64_t h);

/* Decodes a JPEG, PNG or binary PGM/PPM file to RGB8, upright per its Exif orientation.
 * Errors name the path and the reason; *out is untouched on failure. A JPEG is refused as PIL
 * refuses it: when the marker walk of PIL's JpegImagePlugin fails (no marker right after SOI,
 * 0xFF01..0xFFBF before the first scan, a segment past the end, a frame header PIL cannot read),
 * when its data ends before libjpeg reaches the end-of-image marker ("truncated JPEG"), and when
 * libjpeg fails. libjpeg's warnings (garbage before a marker, a short or corrupt data segment)
 * are not errors, as in PIL: the image is what libjpeg decoded, gray where data is missing. */
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

/* The general resize: takes the box (bx, by, bw, bh), which must lie inside `in`, resizes it to
 * (fw, fh) as PIL's Image.resize(BILINEAR) does, and keeps the (cw, ch) window at (cx, cy) of the
 * result (0 outside it). Equal to crop → resize → crop, as torchvision's resized_crop and
 * Resize + CenterCrop do, without computing the pixels the last crop drops. */
int gr_image_resize_window(const gr_image *in, int bx, int by, int bw, int bh, int fw, int fh,
                           int cx, int cy, int cw, int ch, gr_image *out);

/* gr_image_decode, but a JPEG is decoded at the smallest of TurboJPEG's IDCT scales (7/8 .. 1/8)
 * that keeps both sides of the upright image >= 2 * min_w and 2 * min_h (min 0: no constraint
 * on that side), so the antialiased resize after it still does the real shrinking. Other
 * formats decode in full. An approximation: libjpeg's scaled IDCT is not PIL's full decode plus
 * resize (measured in tests/test_data_transform.c: mean |diff| well under 1/255 after
 * resize 256 + crop 224, max a few /255 at sharp edges); use it only when speed matters more
 * than bit-parity with torchvision. */
int gr_image_decode_scaled(const char *path, int min_w, int min_h, gr_image *out);

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

/* ==== the training data pipeline ===========================================================
 * Files: dataset.c (datasets, class maps, splits, k-shot, class weights) with one file per kind
 * (ds_folder.c, ds_csv.c, ds_idx.c, ds_npy.c; dataset_impl.h is what they share), transform.c
 * (the transform pipeline and its text form), loader.c (threaded deterministic batches).
 *
 * Threads: the loader's workers are pthreads (not OpenMP, which the kernels own). */

/* What happens to a sample that cannot be read (corrupt, truncated, missing): */
enum {
    GR_BAD_FATAL = 0, /* the loader stops with the error (path and reason) */
    GR_BAD_SKIP = 1   /* reported once (a warning with path and reason), counted, left out */
};

enum { GR_DS_FOLDER = 1, GR_DS_CSV, GR_DS_IDX, GR_DS_NPY };

/* A labelled dataset. Samples are either image files (FOLDER, CSV) or in memory (IDX images,
 * NPY arrays of images or of feature vectors). Opened with gr_dataset_open; freed with
 * gr_dataset_free. Read-only after opening, so loader threads share it without locks.
 *
 * Class ids: FOLDER sorts the subfolder names by strcmp (bytewise, as torchvision's ImageFolder
 * sorts them); CSV sorts the distinct label strings by strcmp, except that when every label is a
 * non-negative integer the ids are those integers and the names their decimal text; IDX and NPY
 * labels are the integers in the file (names "0".."K-1", or the Fashion-MNIST names when the
 * file is one of Fashion-MNIST's). The names are saved with a model (gr_dataset_class_json). */
typedef struct gr_dataset {
    int kind;
    char *source; /* the path it was opened from, for messages */
    int64_t n;    /* samples */
    int nclass;
    char **class_names; /* [nclass] */
    int32_t *labels;    /* [n] class id of each sample; -1 = unlabelled (CSV without labels) */
    int unlabeled;      /* opened as unlabelled (GR_DS_UNLABELED): whatever labels it has are for
                           reporting only; methods that learn from labels refuse it */
    char **paths;       /* [n] image file of each sample (FOLDER, CSV); NULL otherwise */
    /* CSV extra columns (after path,label), kept as text: e.g. "group" for per-group metrics or
     * further label columns for multi-task use. */
    int ncol;
    char **col_names; /* [ncol] */
    char ***cols;     /* [ncol][n] */
    /* In-memory samples (IDX, NPY). Images: uint8 (n, h, w, c) with c = 1 or 3 (IDX: c = 1).
     * Features: float32 (n, dim), h = w = c = 0. */
    uint8_t *pixels;
    int h, w, c;
    float *features;
    int64_t dim;
} gr_dataset;

/* Opens `path`, choosing the kind from what it is:
 *   a directory               FOLDER: DIR/<class>/<image>, recursively inside each class
 *                             folder; files are taken when their extension is an image one
 *                             (.jpg .jpeg .png .pgm .ppm .pnm, any case), in torchvision's
 *                             order (sorted(os.walk): folders sorted by their path, the files of
 *                             each folder by name); hidden files and folders (".x") are ignored.
 *   *.csv / *.tsv / *.txt     CSV: a header line naming the columns; the columns "path" and
 *                             "label" (or the first two) are the image and its class; a lone
 *                             column, or a "path" column without a "label" one, gives unlabelled
 *                             samples (-1). Relative paths are relative to the CSV's folder;
 *                             quotes as RFC 4180; blank lines skipped; comma for .csv, tab for
 *                             .tsv, either (sniffed from the header line) for .txt. A label that
 *                             is empty or holds control characters is refused with its line, an
 *                             integer id at or above the classes limit too (GRAFT_E_LIMIT: ids
 *                             keep their values, so id v makes v + 1 classes). At most 1024
 *                             columns; a row with another field count than the header is
 *                             refused as it is read.
 *   *-images-idx3-ubyte[.gz]  IDX: the labels come from the matching *-labels-idx1-ubyte[.gz]
 *                             next to it (required; with or without .gz); gzip is detected from
 *                             the bytes. The header's counts are checked before the payload is
 *                             allocated: against the file's size (raw) and the tensor-bytes
 *                             limit, or (gzip) against the decompressed-bytes limit and what the
 *                             compressed bytes can hold, the stream inflated no further than one
 *                             byte past the header's size. Fashion-MNIST names when the file is train-/t10k-images
 *                             in a folder whose name contains "fashion".
 *   *.npy                     NPY: features (n, dim) float32/float64 or images (n, h, w[, c])
 *                             uint8; labels from `labels_npy` (an int array of n), required.
 * labels_npy is used only for NPY (NULL otherwise). Errors name the path, and for CSV the line.
 * flags: GR_DS_* below. Refused with a clear error: no samples, an empty class folder, fewer than
 * two classes (unless GR_DS_ONE_CLASS or GR_DS_UNLABELED), a CSV row whose file is missing (line and path named), a label outside the
 * classes, IDX counts that disagree with the file size or with each other. More classes than
 * the classes limit (class folders, distinct labels, integer ids) is GRAFT_E_LIMIT. */
enum {
    GR_DS_ONE_CLASS = 1, /* a single class is fine */
    GR_DS_UNLABELED = 2  /* unlabelled data: a FOLDER may hold its images directly (or anywhere
                            below, all taken in os.walk order, labels -1) unless it has the class
                            layout (subfolders only), whose labels are then kept for reporting;
                            IDX needs no labels file, NPY no labels_npy; no class count is
                            required. Sets ds->unlabeled. */
};
int gr_dataset_open(const char *path, const char *labels_npy, int flags, gr_dataset **out);
void gr_dataset_free(gr_dataset *ds);
/* An unlabelled dataset (labels -1, no classes) of the given image files, in that order. */
int gr_dataset_from_files(const char *const *paths, int64_t n, gr_dataset **out);

/* Sample i as an RGB8 image (gray copied to 3 channels), decoded from its file or copied from
 * memory. Errors name the file (or "<source>[i]"). */
int gr_dataset_image(const gr_dataset *ds, int64_t i, gr_image *out);

/* The class names as a JSON array string (malloc'd), in id order. */
char *gr_dataset_class_json(const gr_dataset *ds);
/* The column index of an extra CSV column by name, or -1. */
int gr_dataset_col(const gr_dataset *ds, const char *name);

/* Stratified split by seed: the samples of each class are shuffled (gr_rng seeded with `seed`)
 * and divided by the fractions (train, val, test; they must sum to 1 within 1e-6; val or test
 * may be 0), rounding so every class with at least 3 samples gets at least one sample in each
 * non-zero part. idx[p] (malloc'd, caller frees) lists the sample indices of part p in
 * ascending order; cnt[p] their count. Unlabelled samples go to train. */
int gr_split_stratified(const gr_dataset *ds, const double frac[3], uint64_t seed, int64_t *idx[3],
                        int64_t cnt[3]);

/* k labelled examples per class, chosen by seed from `pool` (npool indices; NULL = all): the
 * few-shot support set. Fails naming the class when a class has fewer than k. *out (malloc'd)
 * has nclass * k indices, grouped by class id, ascending inside a class. */
int gr_sample_kshot(const gr_dataset *ds, const int64_t *pool, int64_t npool, int k, uint64_t seed,
                    int64_t **out);

/* Class weights for imbalanced data, scikit-learn's "balanced": w_c = n / (nclass * n_c) over
 * the labelled samples of `idx` (NULL = all). A class absent from idx gets weight 0. */
void gr_class_weights(const gr_dataset *ds, const int64_t *idx, int64_t nidx,
                      float *w /* [nclass] */);

/* ---- transforms (torchvision semantics, on PIL-exact uint8 images) ----
 * The pipeline is fixed in this order, each step optional:
 *   RandomResizedCrop(rrc, scale, ratio)   or   Resize(resize) + CenterCrop(crop)
 *   RandomHorizontalFlip(hflip)
 *   ColorJitter(brightness, contrast, saturation, hue)   (torchvision's random order of the four)
 *   ToTensor + Normalize(mean, std)
 * Text form: comma-separated key=value, e.g. "resize=256,crop=224,normalize=imagenet" (the
 * ImageNet default) or "rrc=224,flip=0.5,jitter=0.4:0.4:0.4:0.1,normalize=imagenet":
 *   resize=N  crop=N  rrc=N[:smin:smax[:rmin:rmax]] (defaults 0.08:1 and 3/4:4/3)  flip=P
 *   jitter=B:C:S:H   normalize=imagenet|none|m0:m1:m2:s0:s1:s2   size=N (resize to NxN exactly)
 *   or size=WxH (width x height, torchvision's Resize((H, W)))
 * Numbers may be fractions (rrc=224:0.08:1:3/4:4/3); spaces around items are ignored; an empty
 * text is no step at all (ToTensor only). Unknown keys, a key given twice, bad numbers, values
 * out of range (sides outside 1..65535, flip outside 0..1, hue above 0.5, scale not 0 < min <=
 * max <= 1, ratio outside 1e-4..1e4, std 0, a value that is not a finite float) and rrc together
 * with resize/size/crop are errors naming the key (GRAFT_E_ARG); a size whose pixels are above
 * the image-pixels limit (resize=N counts N x N) is GRAFT_E_LIMIT; *t is untouched on error.
 * gr_transform_format writes the shortest text that parses back to the same struct. */
typedef struct gr_transform {
    int resize;         /* shorter side (0: none) */
    int size_w, size_h; /* resize to exactly this (0: none); excludes resize */
    int crop;           /* center crop (0: none) */
    int rrc;            /* RandomResizedCrop output size (0: off; replaces resize/crop) */
    float rrc_scale[2], rrc_ratio[2];
    float hflip;           /* probability */
    float jitter[4];       /* brightness, contrast, saturation, hue (0: off) */
    float mean[3], std[3]; /* Normalize; mean 0 std 1 = none */
} gr_transform;

void gr_transform_default(gr_transform *t); /* resize=256,crop=224,normalize=imagenet */
int gr_transform_parse(const char *spec, gr_transform *t);
/* The canonical text form (for cache keys and model metadata), into buf. */
void gr_transform_format(const gr_transform *t, char *buf, size_t n);
/* Output size (h, w) for an input image of (ih, iw); a fixed size when crop/rrc/size is set. */
void gr_transform_out_size(const gr_transform *t, int iw, int ih, int *oh, int *ow);
/* The random choices of one application, drawn by gr_transform_draw (the loader) or given
 * explicitly (tests). Jitter adjustments run in `order`, each only when its jitter[] is non-zero
 * (torchvision's None); factor[] = brightness, contrast, saturation factors (1 = unchanged) and
 * the hue shift in [-0.5, 0.5]. */
enum { GR_JIT_BRIGHTNESS, GR_JIT_CONTRAST, GR_JIT_SATURATION, GR_JIT_HUE };
typedef struct gr_transform_draws {
    int crop_x, crop_y, crop_w, crop_h; /* RandomResizedCrop box (torchvision's j, i, w, h) */
    int flip;
    int order[4];
    float factor[4];
} gr_transform_draws;

/* torchvision's RandomResizedCrop.get_params on an iw x ih image, from `rng`: up to 10 tries of
 * an area fraction uniform in scale and a log-aspect uniform in log(ratio) (float32, as torch),
 * sides rounded half to even, accepted when inside the image (then a uniform position); else
 * the central crop of the image clamped to the ratio range. */
void gr_rrc_params(int iw, int ih, const float scale[2], const float ratio[2], gr_rng *rng, int *x,
                   int *y, int *w, int *h);
/* Draws in torchvision's order: crop box (rrc), flip (uniform < hflip), jitter permutation,
 * then the factors of the active adjustments (uniform in [max(0, 1 - v), 1 + v], hue [-v, v]). */
void gr_transform_draw(const gr_transform *t, int iw, int ih, gr_rng *rng, gr_transform_draws *d);
/* gr_transform_apply with the random choices given. */
int gr_transform_apply_draws(const gr_transform *t, const gr_image *in, const gr_transform_draws *d,
                             float *out);

/* The four ColorJitter adjustments on an RGB8 image, in place, as torchvision's functional ones
 * on PIL images: brightness, contrast and saturation are PIL's ImageEnhance (Image.blend with
 * black, with the rounded mean of the "L" image, with the "L" image; float alpha, truncation);
 * hue goes through PIL's HSV with H shifted by uint8(factor * 255) modulo 256. */
void gr_image_adjust(gr_image *img, int which, float factor);
void gr_image_hflip(gr_image *img);

/* The smallest decode size worth asking gr_image_decode_scaled for (0 x 0: decode in full): for
 * Resize(N) the shorter side N on both sides, for size=WxH that size; for RandomResizedCrop
 * the image side at which the smallest crop (scale min, ratio extremes) is still rrc pixels. */
void gr_transform_decode_min(const gr_transform *t, int *min_w, int *min_h);

/* Applies the pipeline; random steps draw from `rng` (the loader seeds it per sample from the
 * run seed, epoch and sample index, so results do not depend on thread count). out is float32
 * (3, oh, ow). */
int gr_transform_apply(const gr_transform *t, const gr_image *in, gr_rng *rng, float *out);

/* ---- loader ----
 * Batches of (B, 3, H, W) float32 in a fixed order for a given seed and epoch, whatever the
 * number of workers: the order is a permutation drawn from (seed, epoch) when shuffling, and
 * sample j's augmentation uses an rng seeded from (seed, epoch, sample index), exactly
 *   gr_rng_seed(&rng, splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ j))
 * (splitmix64(x): x += 0x9E3779B97F4A7C15, then the usual two xor-shift-multiply rounds), then
 * gr_transform_apply(t, image, &rng, out), so one sample can be reproduced on its own. The image
 * is gr_image_decode_scaled(path, min_w, min_h) with gr_transform_decode_min(t) for image files
 * (a JPEG at least twice that size is decoded at a reduced IDCT scale, the rest in full) and
 * gr_dataset_image for in-memory samples. Workers decode and transform ahead (prefetch
 * batches), writing straight into the batch buffers, which are allocated once in gr_loader_new
 * (prefetch + 1 of them: the caller holds one).
 * Bad samples under GR_BAD_SKIP are reported and counted once (the first time they fail) and not
 * read again in later epochs; batch b still holds order[b*B ..] minus its bad samples, compacted
 * (a batch left empty is not returned). drop_last counts samples before skipping. Under
 * GR_BAD_FATAL the batches before the one holding the bad sample are returned, then the error
 * (the first bad sample of that batch), and again on every call until the next gr_loader_start. */
typedef struct gr_loader gr_loader;

typedef struct gr_loader_opts {
    int batch;     /* samples per batch (> 0) */
    int workers;   /* threads (0: decode on the caller's thread) */
    int prefetch;  /* batches made ahead (0: 2 * workers; none with workers 0) */
    int shuffle;   /* permute each epoch */
    int drop_last; /* drop a final short batch */
    int bad;       /* GR_BAD_FATAL or GR_BAD_SKIP */
    uint64_t seed;
    gr_progress progress; /* a skipped sample: a WARNING "graft: skipping a bad sample: WHY"
                             (stage "load"), from gr_loader_next on the caller's thread, in the
                             order of the batches */
} gr_loader_opts;

typedef struct gr_batch {
    int n; /* samples in this batch (fewer than batch at the end or after skips) */
    int h, w;
    float *x;       /* (n, 3, h, w), owned by the loader, valid until the next call */
    int32_t *y;     /* [n] labels */
    int64_t *index; /* [n] dataset indices */
} gr_batch;

/* idx/nidx: the samples to iterate (NULL = all of ds); copied. The transform must produce a
 * fixed size (crop, rrc or size), since a batch is one tensor. */
int gr_loader_new(const gr_dataset *ds, const int64_t *idx, int64_t nidx, const gr_transform *t,
                  const gr_loader_opts *o, gr_loader **out);
/* Starts epoch e (any order of epochs; restarting one gives the same batches). */
int gr_loader_start(gr_loader *l, int epoch);
/* Next batch of the epoch: 1 with *b filled, 0 at the end, or -status on a fatal bad sample
 * (message names the file, in the caller's thread) or when no epoch was started. */
int gr_loader_next(gr_loader *l, gr_batch *b);
/* Samples skipped as bad so far (GR_BAD_SKIP). */
int64_t gr_loader_skipped(const gr_loader *l);
/* Joins the workers (after the samples in flight, never waiting for the epoch) and frees. */
void gr_loader_free(gr_loader *l);

#endif
