/* image.c — temporary stub; the image module replaces this file. */
#include "core/core.h"

void graft_image_prep_imagenet(graft_image_prep *p)
{
    *p = (graft_image_prep){256, 224, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
}

graft_status graft_image_load(const char *path, const graft_image_prep *p, graft_tensor **out)
{
    (void)p;
    (void)out;
    return gr_err(GRAFT_E_UNSUPPORTED, "%s: image loading is not built yet", path);
}
