/* graft/core.h — statuses, errors, threads, limits, tensors and .npy files: what every level uses.
 * Part of graft's public C API; include "graft.h" for all of it. */
#ifndef GRAFT_CORE_H
#define GRAFT_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum graft_status {
    GRAFT_OK = 0,
    GRAFT_E_ARG = 1,         /* a bad argument from the caller */
    GRAFT_E_IO = 2,          /* a file could not be read or written */
    GRAFT_E_FORMAT = 3,      /* a file is malformed (model, tensor, image) */
    GRAFT_E_UNSUPPORTED = 4, /* a valid input graft cannot handle (op, dtype, attribute) */
    GRAFT_E_SHAPE = 5,       /* shapes or types that do not fit together */
    GRAFT_E_NOMEM = 6,       /* out of memory, or a size that overflows */
    GRAFT_E_INTERNAL = 7,    /* a bug in graft */
    GRAFT_E_NUMERIC = 8,     /* training diverged: a NaN or Inf in the loss or the gradients */
    GRAFT_E_LIMIT = 9        /* an input is larger than a configured limit (see graft_set_limit) */
} graft_status;

const char *graft_last_error(void);
const char *graft_status_name(graft_status s);
const char *graft_version(void);

/* Threads used by the compute kernels (OpenMP); 0 means all cores. */
void graft_set_threads(int n);
int graft_threads(void);

/* Limits on what a file may make graft do. Every size read from a file (a tensor's dims, an
 * image's pixels, an audio file's rate, a gzip stream, a head's classes) is checked against the
 * bytes present and against these limits before anything is allocated; a file beyond a limit is
 * refused with GRAFT_E_LIMIT and a message naming the limit. The defaults are above every real
 * model and dataset graft has met; raise one for a file that needs it. Process-wide. */
typedef enum graft_limit {
    GRAFT_LIMIT_TENSOR_BYTES,  /* one tensor read from a file (initializer, .npy, safetensors,
                                       checkpoint): 16 GiB */
    GRAFT_LIMIT_IMAGE_PIXELS,  /* width x height of one image: 178,956,970 (PIL's error level) */
    GRAFT_LIMIT_AUDIO_RATE,    /* sample rate of an audio file, Hz: 384,000 */
    GRAFT_LIMIT_AUDIO_SECONDS, /* length of one audio file: 86,400 (a day) */
    GRAFT_LIMIT_DECOMPRESSED_BYTES, /* what one compressed file (gzip IDX) may expand to: 1 GiB
                                       (EMNIST, the largest IDX set, is 0.55 GB) */
    GRAFT_LIMIT_CLASSES,            /* classes of a dataset or a head: 1,000,000 */
    GRAFT_LIMIT_K,                  /* neighbours of a kNN head: 10,000 */
    GRAFT_LIMIT_COUNT
} graft_limit;

/* value > 0; fails with GRAFT_E_ARG for an unknown limit or a value <= 0. */
graft_status graft_set_limit(graft_limit which, int64_t value);
int64_t graft_get_limit(graft_limit which);
/* "tensor-bytes", "image-pixels", "audio-rate", "audio-seconds", "decompressed-bytes",
 * "classes", "k"; NULL for an unknown limit. graft_limit_find: the limit of that name, or -1. */
const char *graft_limit_name(graft_limit which);
int graft_limit_find(const char *name);

/* ---- progress and notes --------------------------------------------------------------------
 * The library never prints. A long call reports through the callback its options carry
 * (`progress`, `progress_ctx`; NULL: nothing is reported): how far a stage is, and notes a user
 * may want to read (a cache that could not be used, a resumed checkpoint, an epoch's figures).
 * graft's CLI draws a bar with rate and ETA on a terminal and plain lines otherwise. */
typedef enum graft_event {
    GRAFT_EVENT_PROGRESS = 0, /* `done` of `total` items of `stage` (total 0: unknown) */
    GRAFT_EVENT_NOTE = 1,     /* `message`: what happened (an epoch's figures, a stage's result) */
    GRAFT_EVENT_WARNING = 2   /* `message`: something went wrong and was worked around */
} graft_event;

/* Stages: "extract" (feature extraction: images), "layer" (fine-tuning's layer "auto": the
 * images of each pass over the candidate layers), "probe" (fine-tuning's frozen features for its
 * probe: images), "train" (a fine-tuning epoch: images; message "phase P epoch E/N, loss L"),
 * "finetune" (notes of graft_finetune), "load" (a bad sample skipped), "checkpoint" (a resume
 * from the previous checkpoint); keyword training adds its own. Each run of a stage starts with
 * done = 0 and ends with done = total (items skipped as bad count as done); a run that fails
 * stops before. */
typedef struct graft_progress {
    graft_event event;
    const char *stage;   /* see above */
    int64_t done, total; /* PROGRESS: items done and in all (0: unknown) */
    const char *message; /* NOTE, WARNING: the text complete as a user reads it, no trailing
                            newline ("extract: ignoring the damaged cache file ..."; a
                            fine-tuning recipe spans lines); PROGRESS: NULL or a detail for the
                            bar ("phase 2 epoch 3/10, loss 0.4123") */
} graft_progress;

/* Called on the caller's thread or a worker's (never two at once for one call); the struct and its
 * strings live until the callback returns. */
typedef void (*graft_progress_fn)(void *ctx, const graft_progress *p);

/* ---- options ------------------------------------------------------------------------------
 * Every options struct has a graft_*_opts_init() that fills graft's defaults; set the fields you
 * want after it. GRAFT_AUTO in a numeric field (int or double) leaves the value for graft to
 * choose from the data or from another option (the summary says what it chose); "off" is a
 * literal value (a weight decay of 0 is none, 0 epochs skip a phase); GRAFT_NEVER is a count
 * never reached (a patience that never stops early). Closed sets are enums with graft_*_name()
 * and graft_*_from_name(). */
#define GRAFT_AUTO  (-2147483647 - 1)
#define GRAFT_NEVER 2147483647

/* ---- tensors ---------------------------------------------------------------------------- */

/* Element types use ONNX's TensorProto.DataType numbers. */
typedef enum graft_dtype {
    GRAFT_FLOAT = 1,
    GRAFT_UINT8 = 2,
    GRAFT_INT8 = 3,
    GRAFT_INT32 = 6,
    GRAFT_INT64 = 7,
    GRAFT_BOOL = 9,
    GRAFT_DOUBLE = 11
} graft_dtype;

#define GRAFT_MAX_RANK 8

/* A dense row-major tensor. graft_tensor_new allocates `data`; graft_tensor_free frees both. */
typedef struct graft_tensor {
    graft_dtype dtype;
    int rank;
    int64_t dims[GRAFT_MAX_RANK];
    void *data;
} graft_tensor;

graft_status graft_tensor_new(graft_dtype dtype, int rank, const int64_t *dims, graft_tensor **out);
void graft_tensor_free(graft_tensor *t);
int64_t graft_tensor_numel(const graft_tensor *t);

/* NumPy .npy files (little-endian, C order; float32/float64/int64/int32/uint8/int8/bool). */
graft_status graft_npy_load(const char *path, graft_tensor **out);
graft_status graft_npy_save(const char *path, const graft_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
