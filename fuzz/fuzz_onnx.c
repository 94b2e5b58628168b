/* fuzz_onnx.c — ONNX models: graft_model_load, the names, shapes and metadata,
 * graft_model_info_json (which plans the model for batch 1) and one graft_model_run on inputs of
 * the declared shapes.
 *
 * Symbolic dims become 1 (the first) or 4 (the others: enough for a 3x3 kernel). The input
 * types come from the info JSON (the public API has no other way to ask); an input of a type
 * graft_tensor_new refuses (float16, uint16, ...) means no run, and so do inputs of more than
 * 2^16 elements in all (a fuzzer finds nothing faster on large tensors, it only slows down).
 * Half of the inputs (by one byte of the input) run on the plain C reference kernels, the other
 * half on oneDNN, so both are exercised. */
#include "fuzz_common.h"

#include <graft.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMENTS (1 << 16)

static int dtype_of(const char *name)
{
    static const struct {
        const char *name;
        int dtype;
    } map[] = { { "float32", GRAFT_FLOAT }, { "uint8", GRAFT_UINT8 }, { "int8", GRAFT_INT8 },
                { "int32", GRAFT_INT32 },   { "int64", GRAFT_INT64 }, { "bool", GRAFT_BOOL },
                { "float64", GRAFT_DOUBLE } };
    for (size_t i = 0; name && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(name, map[i].name)) return map[i].dtype;
    return 0;
}

/* Small, varied values: floats around 0, integers 0..2 (valid as indices into most dims). */
static void fill(graft_tensor *t)
{
    int64_t n = graft_tensor_numel(t);
    for (int64_t k = 0; k < n; k++) {
        switch (t->dtype) {
        case GRAFT_FLOAT: ((float *)t->data)[k] = (float)((k * 7) % 11 - 5) * 0.25f; break;
        case GRAFT_DOUBLE: ((double *)t->data)[k] = (double)((k * 7) % 11 - 5) * 0.25; break;
        case GRAFT_INT64: ((int64_t *)t->data)[k] = k % 3; break;
        case GRAFT_INT32: ((int32_t *)t->data)[k] = (int32_t)(k % 3); break;
        case GRAFT_UINT8:
        case GRAFT_INT8: ((uint8_t *)t->data)[k] = (uint8_t)(k % 3); break;
        case GRAFT_BOOL: ((uint8_t *)t->data)[k] = (uint8_t)(k & 1); break;
        }
    }
}

/* Input i's tensor, or NULL (no run) for an unsupported type or too many elements. */
static graft_tensor *make_input(const graft_model *m, int i, const cJSON *inputs, int64_t *budget)
{
    int64_t dims[GRAFT_MAX_RANK];
    int rank = graft_model_input_shape(m, i, dims);
    if (rank < 0) rank = 1, dims[0] = 1; /* no declared shape: a guess */
    if (rank > GRAFT_MAX_RANK) return NULL;
    int64_t n = 1;
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0) dims[d] = d == 0 ? 1 : 4;
        if (dims[d] > MAX_ELEMENTS) return NULL;
        n *= dims[d];
        if (n > *budget) return NULL;
    }
    *budget -= n;
    /* info failed: no types known, try float (graft refuses a wrong type with an error) */
    const cJSON *in = cJSON_GetArrayItem(inputs, i);
    int dtype =
        inputs ? dtype_of(cJSON_GetStringValue(cJSON_GetObjectItem(in, "dtype"))) : GRAFT_FLOAT;
    graft_tensor *t = NULL;
    if (!fz_dtype_size(dtype) || graft_tensor_new((graft_dtype)dtype, rank, dims, &t) != GRAFT_OK)
        return NULL;
    fill(t);
    return t;
}

static void run_once(graft_model *m, const cJSON *inputs)
{
    int nin = graft_model_num_inputs(m), nout = graft_model_num_outputs(m);
    if (nin < 0 || nout < 0 || nin > 64) return;
    graft_tensor **in = calloc((size_t)nin + 1, sizeof *in),
                 **out = calloc((size_t)nout + 1, sizeof *out);
    int64_t budget = MAX_ELEMENTS;
    int ok = in && out;
    for (int i = 0; ok && i < nin; i++) ok = (in[i] = make_input(m, i, inputs, &budget)) != NULL;
    if (!ok) fz_note("inputs skipped", 0);
    if (ok && !fz_note("graft_model_run",
                       graft_model_run(m, (const graft_tensor *const *)in, nin, out, nout))) {
        for (int i = 0; i < nout; i++) {
            size_t es = fz_dtype_size(out[i]->dtype);
            fz_touch(out[i]->data, (size_t)graft_tensor_numel(out[i]) * es);
            graft_tensor_free(out[i]);
        }
        (void)graft_model_peak_bytes(m);
    }
    for (int i = 0; in && i < nin; i++) graft_tensor_free(in[i]);
    free(in);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[1024];
    if (fz_write("model.onnx", data, size, path, sizeof path)) return 0;
    graft_model *m = NULL;
    if (fz_note("graft_model_load", graft_model_load(path, &m))) return 0;
    int nin = graft_model_num_inputs(m), nout = graft_model_num_outputs(m);
    for (int i = 0; i < nin; i++)
        fz_touch(graft_model_input_name(m, i), strlen(graft_model_input_name(m, i)));
    for (int i = 0; i < nout; i++)
        fz_touch(graft_model_output_name(m, i), strlen(graft_model_output_name(m, i)));
    const char *classes = graft_model_metadata(m, "graft.classes");
    if (classes) fz_touch(classes, strlen(classes));
    if (size > 0 && data[size / 2] & 1) graft_model_use_reference(m, 1);
    char *json = NULL;
    cJSON *info = NULL;
    if (!fz_note("graft_model_info_json", graft_model_info_json(m, 1, &json))) {
        info = cJSON_Parse(json);
        free(json);
    }
    const cJSON *inputs = cJSON_GetObjectItem(info, "inputs");
    run_once(m, cJSON_IsArray(inputs) ? inputs : NULL);
    cJSON_Delete(info);
    graft_model_free(m);
    return 0;
}
