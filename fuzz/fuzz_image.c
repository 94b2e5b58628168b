/* fuzz_image.c — image files (JPEG, PNG, binary PGM/PPM, told apart by their bytes):
 * graft_image_load with a small resize and crop and without either (the decoded size itself),
 * and the same file as a one-image dataset (graft_dataset_from_files, graft_dataset_check,
 * graft_dataset_load through the transform pipeline). */
#include "fuzz_common.h"

#include <graft.h>

#include <stddef.h>

static void load(const char *path, int resize, int crop)
{
    graft_image_prep p;
    graft_image_prep_imagenet(&p);
    p.resize = resize, p.crop = crop;
    graft_tensor *t = NULL;
    if (fz_note("graft_image_load", graft_image_load(path, &p, &t))) return;
    fz_touch(t->data, (size_t)graft_tensor_numel(t) * sizeof(float));
    graft_tensor_free(t);
}

static void bad_image(void *ctx, int64_t i, const char *path, const char *msg)
{
    (void)ctx, (void)i, (void)path;
    fz_touch(msg, 1);
}

static void as_dataset(const char *path)
{
    graft_dataset *d = NULL;
    const char *paths[1] = { path };
    if (graft_dataset_from_files(paths, 1, &d) != GRAFT_OK) return;
    int64_t nbad = 0;
    graft_tensor *t = NULL;
    if (graft_dataset_check(d, 1, bad_image, NULL, &nbad) == GRAFT_OK && nbad == 0 &&
        !fz_note("graft_dataset_load",
                 graft_dataset_load(d, 0, "rrc=12,flip=0.5,jitter=0.4:0.4:0.4:0.1", 7, &t)))
        graft_tensor_free(t);
    graft_dataset_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[1024];
    if (fz_write("in.img", data, size, path, sizeof path)) return 0;
    load(path, 16, 12);
    load(path, 0, 0);
    as_dataset(path);
    return 0;
}
