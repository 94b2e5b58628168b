/* ref_npy.h — reading a PyTorch reference's .npy files as float (the training tests: the
 * references save losses in float64, tensors in float32). */
#ifndef GR_TEST_REF_NPY_H
#define GR_TEST_REF_NPY_H

#include "io/io.h"

#include <stdio.h>
#include <stdlib.h>

/* dir/name.npy as float (float64 converted), malloc'd; *n (may be NULL) gets its element count.
 * A missing reference file ends the test (exit 2). */
static float *ref_load(const char *dir, const char *name, int64_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    gr_tensor t;
    if (gr_npy_load(path, &t)) {
        fprintf(stderr, "cannot load %s: %s\n", path, graft_last_error());
        exit(2);
    }
    int64_t m = gr_numel(&t.shape);
    if (n) *n = m;
    if (t.dtype == GR_F64) {
        float *f = malloc((size_t)m * sizeof *f + 4);
        for (int64_t i = 0; i < m; i++) f[i] = (float)((double *)t.data)[i];
        free(t.data);
        return f;
    }
    return t.data;
}

#endif
