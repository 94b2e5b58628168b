/* graft/data.h — data: images with their preprocessing, datasets (folders, CSV, MNIST, .npy).
 * Part of graft's public C API; include "graft.h" for all of it. */
#ifndef GRAFT_DATA_H
#define GRAFT_DATA_H

#include "graft/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- images ----------------------------------------------------------------------------- */

/* The usual ImageNet preprocessing, exactly as torchvision + PIL do it: resize the shorter side
 * to `resize` (bilinear, antialias; <= 0: no resize), center-crop `crop` (<= 0: no crop), scale
 * to [0,1], normalise with mean/std. Output (1, 3, crop, crop), or (1, 3, H, W) without a crop.
 * JPEG, PNG and binary PGM/PPM, detected from their bytes; EXIF orientation is applied (as
 * PIL's ImageOps.exif_transpose does). A NULL prep means graft_image_prep_imagenet's. */
typedef struct graft_image_prep {
    int resize, crop;
    float mean[3], std[3];
} graft_image_prep;

void graft_image_prep_imagenet(graft_image_prep *p);
graft_status graft_image_load(const char *path, const graft_image_prep *p, graft_tensor **out);

/* ---- datasets ---------------------------------------------------------------------------
 * A labelled set of images (or feature vectors): a folder with one subfolder per class (as
 * torchvision's ImageFolder), a CSV/TSV list with path and label columns, an IDX image file
 * (Fashion-MNIST: "<...>-images-idx3-ubyte[.gz]", labels from the matching labels file), or a
 * .npy array with labels from a second .npy. Class ids follow a stable, documented order
 * (sorted folder names or labels; integer labels keep their values); see src/data/data.h. */
typedef struct graft_dataset graft_dataset;

/* labels_npy: for a .npy dataset only (else NULL). */
graft_status graft_dataset_open(const char *path, const char *labels_npy, graft_dataset **out);
/* The same data without labels (domain adaptation's target, semi-supervised data): a folder may
 * hold its images directly or in any folders (all taken, torchvision's order), an IDX images
 * file needs no labels file, a .npy no labels_npy (may be NULL), a CSV no label column. A folder
 * in the class layout (subfolders only) and files that have labels keep them, for reporting
 * only: graft_dataset_is_unlabeled says so, and what learns from labels (fine-tuning, layer
 * choice, k-shot draws) refuses such a dataset. */
graft_status graft_dataset_open_unlabeled(const char *path, const char *labels_npy,
                                          graft_dataset **out);
int graft_dataset_is_unlabeled(const graft_dataset *d);
void graft_dataset_free(graft_dataset *d);
/* An unlabelled dataset of image files (for prediction), in the order given. */
graft_status graft_dataset_from_files(const char *const *paths, int64_t n, graft_dataset **out);
int64_t graft_dataset_size(const graft_dataset *d);
int graft_dataset_num_classes(const graft_dataset *d);
const char *graft_dataset_class_name(const graft_dataset *d, int c);
/* Class id of sample i (-1: unlabelled). */
int graft_dataset_label(const graft_dataset *d, int64_t i);
/* "folder", "csv", "idx" or "npy". */
const char *graft_dataset_kind(const graft_dataset *d);
/* Sample i's image file, or NULL for in-memory samples. */
const char *graft_dataset_path(const graft_dataset *d, int64_t i);
/* A CSV dataset's extra columns (after path and label), e.g. "group" for per-group metrics:
 * the index of the named column or -1, and sample i's text in column c (NULL when out of range). */
int graft_dataset_column(const graft_dataset *d, const char *name);
const char *graft_dataset_value(const graft_dataset *d, int c, int64_t i);
/* Sample i through a transform given in its text form (e.g. "resize=256,crop=224,
 * normalize=imagenet"; NULL: that ImageNet default; "rrc=224,flip=0.5,jitter=0.4:0.4:0.4:0.1"
 * for augmentation, drawn from `seed`): a new (1, 3, H, W) float tensor. */
graft_status graft_dataset_load(const graft_dataset *d, int64_t i, const char *transform,
                                uint64_t seed, graft_tensor **out);
/* A stratified split by seed: each class's samples are shuffled and divided by the fractions
 * (train, val, test; summing to 1; val or test may be 0). Each output is an int64 tensor of
 * sample indices in ascending order (NULL to skip one). */
graft_status graft_dataset_split(const graft_dataset *d, const double frac[3], uint64_t seed,
                                 graft_tensor **train, graft_tensor **val, graft_tensor **test);
/* k samples of every class, chosen by seed (the few-shot setting): an int64 tensor of indices,
 * grouped by class. Fails naming a class with fewer than k samples. */
graft_status graft_dataset_kshot(const graft_dataset *d, int k, uint64_t seed, graft_tensor **out);
/* Decodes every image of the dataset with `threads` threads and reports each unreadable one
 * through bad(ctx, index, path, message); *nbad is their count. Fails only on bad arguments. */
graft_status graft_dataset_check(const graft_dataset *d, int threads,
                                 void (*bad)(void *ctx, int64_t i, const char *path,
                                             const char *msg),
                                 void *ctx, int64_t *nbad);

#ifdef __cplusplus
}
#endif
#endif
