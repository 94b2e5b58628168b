/* fuzz_safetensors.c — heads saved by `graft fit` (safetensors: a JSON header, then the
 * tensors): graft_head_load, the head's accessors, graft_head_predict on a small feature batch,
 * and a save / load / predict round trip that must give the same probabilities.
 *
 * The public API does not say how many features a head takes, so the target reads the "dim"
 * entry of the file's __metadata__ itself (what graft_head_load checks the tensors against);
 * without one it tries 4, and a wrong width must fail cleanly too. */
#include "fuzz_common.h"

#include <graft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMENTS (1 << 16)

/* The value of "dim" in the input's JSON header, or 4. */
static long head_dim(const uint8_t *data, size_t size)
{
    static const char key[] = "\"dim\"";
    for (size_t i = 0; i + sizeof key - 1 < size; i++) {
        if (memcmp(data + i, key, sizeof key - 1)) continue;
        size_t j = i + sizeof key - 1;
        while (j < size && (data[j] == ' ' || data[j] == ':' || data[j] == '"')) j++;
        long v = 0;
        int digits = 0;
        for (; j < size && data[j] >= '0' && data[j] <= '9' && digits < 9; j++, digits++)
            v = v * 10 + (data[j] - '0');
        if (digits) return v;
    }
    return 4;
}

/* Probabilities of an (n, dim) batch, or NULL when the head refuses it. */
static graft_tensor *predict(const graft_head *h, int64_t n, int64_t dim)
{
    graft_tensor *x = NULL, *p = NULL;
    int64_t dims[2] = { n, dim };
    if (graft_tensor_new(GRAFT_FLOAT, 2, dims, &x) != GRAFT_OK) return NULL;
    float *v = x->data;
    for (int64_t k = 0; k < n * dim; k++) v[k] = (float)((k * 13) % 17 - 8) * 0.125f;
    if (!fz_note("graft_head_predict", graft_head_predict(h, x, &p)))
        fz_touch(p->data, (size_t)graft_tensor_numel(p) * sizeof(float));
    else p = NULL;
    graft_tensor_free(x);
    return p;
}

/* Saving the head and loading it back must not change what it predicts. */
static void round_trip(const graft_head *h, int64_t dim, const graft_tensor *p)
{
    char path[1024];
    graft_head *h2 = NULL;
    if (fz_path("copy.safetensors", path, sizeof path) || graft_head_save(h, path) != GRAFT_OK)
        return;
    if (graft_head_load(path, &h2) != GRAFT_OK) {
        fprintf(stderr, "fuzz_safetensors: a saved head does not load back: %s\n",
                graft_last_error());
        abort();
    }
    graft_tensor *p2 = predict(h2, p->dims[0], dim);
    if (!p2 || p2->rank != 2 || p2->dims[0] != p->dims[0] || p2->dims[1] != p->dims[1] ||
        memcmp(p->data, p2->data, (size_t)graft_tensor_numel(p) * sizeof(float))) {
        fprintf(stderr, "fuzz_safetensors: the saved head predicts differently\n");
        abort();
    }
    graft_tensor_free(p2);
    graft_head_free(h2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[1024];
    if (fz_write("head.safetensors", data, size, path, sizeof path)) return 0;
    graft_head *h = NULL;
    if (fz_note("graft_head_load", graft_head_load(path, &h))) return 0;
    const char *origin = graft_head_origin(h);
    if (origin) fz_touch(origin, strlen(origin));
    (void)graft_head_C(h);
    (void)graft_head_cv_accuracy(h);
    long dim = head_dim(data, size);
    if (dim >= 1 && dim <= MAX_ELEMENTS / 3) {
        graft_tensor *p = predict(h, 3, dim);
        if (p) round_trip(h, dim, p);
        graft_tensor_free(p);
        graft_tensor_free(predict(h, 1, dim + 1)); /* the wrong width: an error, nothing else */
    }
    graft_head_free(h);
    return 0;
}
