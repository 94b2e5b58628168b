/* fuzz_idx.c — IDX datasets (the MNIST format, raw or gzip): graft_dataset_open on an images
 * file, which finds its labels file by name, then a few samples through a transform.
 *
 * Input: one flags byte, a 4-byte little-endian length L, L bytes of the images file and the
 * rest as the labels file. Flags: bit 0: the images file is named "...-images-idx3-ubyte.gz"
 * (else without .gz), bit 1: the same for the labels file, bit 2: Fashion-MNIST's names in a
 * folder called "fashion" (the class names then come from the dataset). gzip itself is told
 * from the bytes, whatever the name says. */
#include "fuzz_common.h"

#include <graft.h>

#include <stdio.h>

static void explore(graft_dataset *d)
{
    int64_t n = graft_dataset_size(d);
    for (int c = 0; c < graft_dataset_num_classes(d) && c < 16; c++)
        fz_touch(graft_dataset_class_name(d, c), 1);
    const int64_t pick[3] = { 0, n / 2, n - 1 };
    for (int k = 0; k < 3 && n > 0; k++) {
        graft_tensor *t = NULL;
        (void)graft_dataset_label(d, pick[k]);
        if (!fz_note("graft_dataset_load",
                     graft_dataset_load(d, pick[k], k == 1 ? "rrc=6,flip=1" : "resize=10,crop=8",
                                        (uint64_t)k, &t)))
            graft_tensor_free(t);
    }
    graft_tensor *s = NULL;
    if (graft_dataset_kshot(d, 1, 1, &s) == GRAFT_OK) graft_tensor_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5) return 0;
    unsigned flags = data[0];
    size_t len = fz_le32(data + 1), rest = size - 5;
    if (len > rest) len = rest;
    const char *dir = flags & 4 ? "fashion" : "idx", *stem = flags & 4 ? "train" : "t";
    fz_remove("idx");
    fz_remove("fashion");
    if (fz_mkdir(dir)) return 0;
    char iname[64], lname[64], ipath[1024], lpath[1024];
    snprintf(iname, sizeof iname, "%s/%s-images-idx3-ubyte%s", dir, stem, flags & 1 ? ".gz" : "");
    snprintf(lname, sizeof lname, "%s/%s-labels-idx1-ubyte%s", dir, stem, flags & 2 ? ".gz" : "");
    if (fz_write(iname, data + 5, len, ipath, sizeof ipath) ||
        fz_write(lname, data + 5 + len, rest - len, lpath, sizeof lpath))
        return 0;
    graft_dataset *d = NULL;
    if (!fz_note("graft_dataset_open", graft_dataset_open(ipath, NULL, &d))) {
        explore(d);
        graft_dataset_free(d);
    }
    return 0;
}
