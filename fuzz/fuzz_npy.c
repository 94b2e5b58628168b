/* fuzz_npy.c — NumPy .npy files, through both of graft's uses of src/io/npy.c:
 *  - graft_npy_load, then a save / load round trip that must give the same tensor;
 *  - graft_dataset_open on .npy arrays (src/data/ds_npy.c on top of the same reader): the input as
 *    the samples and as its own labels file, and as the labels of four fixed 8x8 images; a
 *    dataset that opens has its first sample read through a small transform. */
#include "fuzz_common.h"

#include <graft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tensor_round_trip(const graft_tensor *t)
{
    char path[1024];
    graft_tensor *u = NULL;
    size_t bytes = (size_t)graft_tensor_numel(t) * fz_dtype_size(t->dtype);
    if (fz_path("copy.npy", path, sizeof path) || graft_npy_save(path, t) != GRAFT_OK) return;
    if (graft_npy_load(path, &u) != GRAFT_OK || u->dtype != t->dtype || u->rank != t->rank ||
        memcmp(u->dims, t->dims, (size_t)t->rank * sizeof t->dims[0]) ||
        memcmp(u->data, t->data, bytes)) {
        fprintf(stderr, "fuzz_npy: a saved tensor does not load back the same: %s\n",
                graft_last_error());
        abort();
    }
    graft_tensor_free(u);
}

static void open_dataset(const char *samples, const char *labels)
{
    graft_dataset *d = NULL;
    if (fz_note("graft_dataset_open", graft_dataset_open(samples, labels, &d))) return;
    int64_t n = graft_dataset_size(d);
    for (int c = 0; c < graft_dataset_num_classes(d); c++)
        fz_touch(graft_dataset_class_name(d, c), 1);
    if (n > 0) {
        (void)graft_dataset_label(d, n - 1);
        graft_tensor *t = NULL;
        if (!fz_note("graft_dataset_load", graft_dataset_load(d, 0, "resize=10,crop=8", 0, &t)))
            graft_tensor_free(t);
    }
    graft_dataset_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char images[1024];
    if (!images[0]) { /* four 8x8 gray images, written once */
        static const char head[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '|u1', 'fortran_order': "
                                   "False, 'shape': (4, 8, 8), }";
        unsigned char buf[128 + 256];
        memset(buf, ' ', 128);
        memcpy(buf, head, sizeof head - 1);
        buf[127] = '\n';
        for (int i = 0; i < 256; i++) buf[128 + i] = (unsigned char)(i * 29);
        if (fz_write("images.npy", buf, sizeof buf, images, sizeof images)) return images[0] = 0, 0;
    }
    char path[1024];
    if (fz_write("in.npy", data, size, path, sizeof path)) return 0;
    graft_tensor *t = NULL;
    if (!fz_note("graft_npy_load", graft_npy_load(path, &t))) {
        fz_touch(t->data, (size_t)graft_tensor_numel(t) * fz_dtype_size(t->dtype));
        tensor_round_trip(t);
        graft_tensor_free(t);
    }
    open_dataset(path, path);
    open_dataset(images, path);
    return 0;
}
