/* dataset_impl.h — what dataset.c and the dataset kinds (ds_folder.c, ds_csv.c, ds_idx.c,
 * ds_npy.c) share: the small helpers and each kind's opener. Private to src/data: included only
 * by dataset.c and data/ds_*.c. */
#ifndef GRAFT_DATA_DATASET_IMPL_H
#define GRAFT_DATA_DATASET_IMPL_H

#include "data.h"

#include <stdint.h>
#include <stdio.h>

#define GR_DS_MAX_FILE_BYTES ((size_t)1 << 34)

/* A growable array of pointers. */
typedef struct gr_ds_vec {
    void **v;
    size_t n, cap;
} gr_ds_vec;

/* ---- small helpers (dataset.c) ---- */

/* dir + "/" + name, malloc'd (NULL when out of memory). */
char *gr_ds_join_path(const char *dir, const char *name);
int gr_ds_ends_with_ci(const char *s, const char *suffix);
const char *gr_ds_base_name(const char *path);
int gr_ds_vec_push(gr_ds_vec *a, void *p);
/* Frees every element and the array; *a is empty afterwards. */
void gr_ds_vec_free_all(gr_ds_vec *a);
/* qsort comparator of char * elements. */
int gr_ds_cmp_str(const void *a, const void *b);
/* Opens a regular file of at most GR_DS_MAX_FILE_BYTES; *size is its length. */
int gr_ds_open_regular(const char *path, FILE **fp, size_t *size);
int gr_ds_read_bytes(const char *path, FILE *f, uint8_t *dst, size_t n);
/* An empty dataset of the given kind whose source is path (NULL when out of memory). */
gr_dataset *gr_ds_new(int kind, const char *path);
/* Class counts are held to the limit GRAFT_LIMIT_CLASSES (integer labels keep their values, so
 * a label v makes v + 1 classes: it is refused before anything is allocated for them); ids are
 * int32 whatever the limit. */
/* GRAFT_OK when k classes are within the classes limit; the message (fmt...) says where they
 * come from. */
int gr_ds_class_count_check(int64_t k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Names "0".."k-1" for integer labels. */
int gr_ds_numeric_names(gr_dataset *ds, int k);
/* The checks every kind shares once labels are known (no samples, one class, a label outside). */
int gr_ds_check_labels(const gr_dataset *ds, int flags);

/* ---- the dataset kinds (see gr_dataset_open) ---- */

int gr_ds_open_folder(const char *path, int flags, gr_dataset **out); /* ds_folder.c */
int gr_ds_open_csv(const char *path, int flags, gr_dataset **out);    /* ds_csv.c */
int gr_ds_open_idx(const char *path, int flags, gr_dataset **out);    /* ds_idx.c */
int gr_ds_open_npy(const char *path, const char *labels_npy, int flags,
                   gr_dataset **out); /* ds_npy.c */

#endif
