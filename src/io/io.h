/* io — reading and writing files: ONNX models (protobuf-c), ONNX TensorProto files, NumPy .npy.
 * Depends on core and graph. */
#ifndef GR_IO_H
#define GR_IO_H

#include "core/core.h"
#include "graph/graph.h"

/* Loads an ONNX model into a graph (nodes topologically sorted). Ops are looked up but an
 * unsupported op is not an error here (node->op == NULL); gr_graph_check_ops reports them. */
int gr_onnx_load(const char *path, gr_graph **out);
/* A model file read and parsed once per command: its graph with every op checked, and a
 * fingerprint of its bytes (two CRC-32s and the size: the feature cache's key). Whoever edits
 * the graph (cuts it, adds a head, rewrites it for inference) edits a gr_graph_clone. */
typedef struct gr_model {
    gr_graph *g;
    const char *path; /* g->path */
    uint32_t crc[2];
    int64_t size;
} gr_model;
int gr_model_open(const char *path, gr_model *m);
void gr_model_close(gr_model *m); /* also on a zeroed gr_model */
/* Fails naming the first node whose op graft does not support. */
int gr_graph_check_ops(const gr_graph *g);
/* Reads a serialized TensorProto file (the conformance suite's input_0.pb). Data from arena. */
int gr_onnx_read_tensor(const char *path, gr_arena *arena, gr_tensor *out, char **name);

/* .npy files; gr_npy_load allocates the data with malloc (caller frees t->data). The header
 * is parsed strictly (the keys descr, fortran_order and shape once each, at most 64 KiB) and
 * the array's size is checked for overflow, against the bytes in the file and against
 * GRAFT_LIMIT_TENSOR_BYTES (GRAFT_E_LIMIT) before anything is allocated; errors name the file. */
int gr_npy_load(const char *path, gr_tensor *out);
int gr_npy_save(const char *path, const gr_tensor *t);

/* ---- writing files atomically (atomic.c) ----
 * Data goes to "<path>.tmp.<pid>"; commit flushes and fsyncs it, renames it over path and fsyncs
 * the folder, so a reader sees the old file or the new one, never a part. Any failure (including
 * a full disk, found at fwrite, fflush, fsync or close) removes the temp file and returns an
 * error naming path and strerror; the file at path is then untouched. The temp file is
 * flock()ed while it is written. A writer killed mid-write (SIGKILL, OOM killer) leaves its
 * temp file behind: gr_wfile_open removes those of path first (see gr_wfile_clean). An existing
 * device or FIFO (/dev/null, /dev/stdout) is written in place: no temp file, no rename. */
typedef struct gr_wfile {
    FILE *f;
    const char *path;
    char *tmp;
    int err;    /* errno of the first failed write, 0 if none */
    int lockfd; /* holds the flock on the temp file until the rename is done; -1 if none */
    int stream; /* path is a device or FIFO (/dev/stdout): written in place, no temp file */
} gr_wfile;
int gr_wfile_open(gr_wfile *w, const char *path);
/* Writes n bytes; after a failure further writes do nothing and commit reports it. */
void gr_wfile_write(gr_wfile *w, const void *data, size_t n);
int gr_wfile_commit(gr_wfile *w);
void gr_wfile_abort(gr_wfile *w);
/* Removes the stale temp files of path: its siblings named exactly "<basename>.tmp.<pid>" (pid
 * in decimal, as gr_wfile writes them) whose pid is not a live process (kill(pid, 0) fails
 * with ESRCH) and whose flock nobody holds (a live writer in another pid namespace keeps its
 * lock). A reused pid only delays the cleanup. Never fails: what cannot be checked stays. */
void gr_wfile_clean(const char *path);
/* The same for every target of a folder at once (a cache of many files): removes dir's stale
 * "<target>.tmp.<pid>" files whose target name (the part before ".tmp.", len bytes, not
 * terminated) is_target(ctx, name, len) accepts. */
typedef int (*gr_tmp_target_fn)(void *ctx, const char *name, size_t len);
void gr_wfile_clean_dir(const char *dir, gr_tmp_target_fn is_target, void *ctx);
/* mkdir -p: creates dir and its missing parents; fails (naming dir) unless it ends up writable. */
int gr_make_dirs(const char *dir);

/* ---- ONNX export (onnx_save.c) ----
 * Writes g as an ONNX ModelProto (IR version 8, producer "graft"): nodes with every attribute
 * type the loader reads, initializers as little-endian raw_data, declared input/output types
 * (a symbolic dim becomes a dim_param), the default-domain opset, g->meta as metadata_props.
 * Atomic (see gr_wfile). Models of 2 GB or more (the protobuf limit) are refused. */
int gr_onnx_save(const gr_graph *g, const char *path);

/* ---- safetensors (safetensors.c) ----
 * The Hugging Face format: 8-byte little-endian header length, a JSON header
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {string: string}}, then the data. graft pads the header with spaces to a
 * multiple of 8 and stores the CRC-32 of the data section as __metadata__["graft_crc32"]
 * (decimal); the loader verifies it when present. */
typedef struct gr_st_entry {
    const char *name;
    int dtype; /* gr_dtype */
    gr_shape shape;
    void *data;
    size_t bytes; /* numel(shape) * dtype size */
} gr_st_entry;
/* Writes the entries in order (data contiguous), and meta ("graft_crc32" is reserved). */
int gr_st_save(const char *path, const gr_st_entry *entries, int n, const gr_meta *meta, int nmeta);
/* Reads and validates a file: entries (in data order) and metadata (without graft_crc32) are
 * allocated from arena, data 64-byte aligned. Errors name the file and the tensor at fault; a
 * truncated or corrupt file is always an error, never a partial result. */
int gr_st_load(const char *path, gr_arena *arena, gr_st_entry **entries, int *n, gr_meta **meta,
               int *nmeta);
/* gr_st_load with a check of the header before any tensor's data is allocated or read (so a
 * file that cannot fit the caller costs no more than its header): check(ctx, entries, n, meta,
 * nmeta) sees the entries in data order with data NULL, and returns GRAFT_OK or an error (its
 * message set), which is returned unchanged. Every tensor is also checked against
 * GRAFT_LIMIT_TENSOR_BYTES (GRAFT_E_LIMIT) before its data is read, with or without check. */
typedef int (*gr_st_check_fn)(void *ctx, const gr_st_entry *entries, int n, const gr_meta *meta,
                              int nmeta);
int gr_st_load_checked(const char *path, gr_arena *arena, gr_st_check_fn check, void *ctx,
                       gr_st_entry **entries, int *n, gr_meta **meta, int *nmeta);
/* CRC-32 as zlib's crc32() (polynomial 0xEDB88320): crc = gr_crc32(crc, data, n), start at 0. */
uint32_t gr_crc32(uint32_t crc, const void *data, size_t n);

#endif
