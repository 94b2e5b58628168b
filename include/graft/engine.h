/* graft/engine.h — the ONNX engine: load a model, run it, describe it.
 * Part of graft's public C API; include "graft.h" for all of it. */
#ifndef GRAFT_ENGINE_H
#define GRAFT_ENGINE_H

#include "graft/core.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif
