/* fuzz_transform.c — the transform language ("resize=256,crop=224,normalize=imagenet",
 * "rrc=224:0.08:1:0.75:1.333,flip=0.5,jitter=0.4:0.4:0.4:0.1", ...; src/data/transform.c): the
 * input, NUL-terminated, as the transform of graft_dataset_load on six tiny images (gray 5x7,
 * color 9x4, gray 1x1; two of each, in .npy datasets), each with its own seed.
 *
 * The language accepts sides up to 65535, so a few bytes can ask for a 65535 x 65535 image:
 * that is an allocation, not a parsing problem, and it would stop every run on the memory
 * limit. Inputs asking for a side (resize, crop, size, rrc) above 256 are therefore skipped (the
 * other numbers are not limited); sides up to 256 still cover every path (upscaling, crops
 * larger than the image, ...). */
#include "fuzz_common.h"

#include <graft.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NUMBER 256.0

static graft_dataset *ds[3];

/* A .npy file whose header is padded so that the data starts at byte 128, as numpy writes it. */
static int write_npy(const char *name, const char *shape, const unsigned char *px, size_t n,
                     char *path)
{
    unsigned char buf[128 + 256];
    char dict[118];
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     strcmp(name, "labels.npy") ? "|u1" : "<i8", shape);
    if (k < 0 || k >= (int)sizeof dict || n > 256) return -1;
    memset(buf, ' ', 128);
    memcpy(buf, "\x93NUMPY\x01\x00\x76\x00", 10);
    memcpy(buf + 10, dict, (size_t)k);
    buf[127] = '\n';
    memcpy(buf + 128, px, n);
    return fz_write(name, buf, 128 + n, path, 1024);
}

/* Three datasets of two images each: gray 5x7, color 9x4, gray 1x1; labels 0 and 1. */
static int setup(void)
{
    static int done, ok;
    if (done) return ok;
    done = 1;
    unsigned char px[2 * 4 * 9 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)(i * 7 + i / 13);
    static const unsigned char y[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    static const char *const shapes[3] = { "(2, 5, 7)", "(2, 4, 9, 3)", "(2, 1, 1)" };
    static const size_t bytes[3] = { 2 * 5 * 7, 2 * 4 * 9 * 3, 2 };
    char labels[1024], images[1024];
    ok = !write_npy("labels.npy", "(2,)", y, sizeof y, labels);
    for (int k = 0; ok && k < 3; k++)
        ok = !write_npy("images.npy", shapes[k], px, bytes[k], images) &&
             graft_dataset_open(images, labels, &ds[k]) == GRAFT_OK;
    if (!ok)
        fprintf(stderr, "fuzz_transform: cannot set up the datasets: %s\n", graft_last_error());
    return ok;
}

/* Whether every number in s[0..n) (a fraction a/b counts as its value) is at most MAX_NUMBER. */
static int small_numbers(const char *s, size_t n)
{
    char buf[64];
    if (n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    for (const char *p = buf; *p;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p) {
            p++;
            continue;
        }
        if (*end == '/') {
            char *e2;
            double d = strtod(end + 1, &e2);
            if (e2 != end + 1) {
                v = d != 0 ? v / d : 0;
                end = e2;
            }
        }
        if (isfinite(v) && fabs(v) > MAX_NUMBER) return 0;
        p = end;
    }
    return 1;
}

/* Whether the sizes the transform asks for (resize, crop, size and rrc's side: the part of an
 * item's value before any ':') are all small. Other numbers (jitter, scales, ratios, means)
 * are left to graft, however large. */
static int small_sizes(const char *s)
{
    static const char *const keys[] = { "resize", "crop", "size", "rrc" };
    for (const char *item = s; item;) {
        const char *comma = strchr(item, ','), *end = comma ? comma : item + strlen(item);
        const char *eq = memchr(item, '=', (size_t)(end - item));
        if (eq) {
            const char *k = item, *ke = eq;
            while (k < ke && isspace((unsigned char)*k)) k++;
            while (ke > k && isspace((unsigned char)ke[-1])) ke--;
            for (int i = 0; i < 4; i++) {
                if ((size_t)(ke - k) != strlen(keys[i]) || strncmp(k, keys[i], (size_t)(ke - k)))
                    continue;
                const char *colon = memchr(eq, ':', (size_t)(end - eq)), *ve = colon ? colon : end;
                if (!small_numbers(eq + 1, (size_t)(ve - eq - 1))) return 0;
            }
        }
        item = comma ? comma + 1 : NULL;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!setup()) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    if (small_sizes(s)) {
        for (int k = 0; k < 6; k++) {
            graft_tensor *t = NULL;
            if (!fz_note("graft_dataset_load",
                         graft_dataset_load(ds[k >> 1], k & 1, s, (uint64_t)k, &t))) {
                fz_touch(t->data, (size_t)graft_tensor_numel(t) * sizeof(float));
                graft_tensor_free(t);
            }
        }
    }
    free(s);
    return 0;
}
