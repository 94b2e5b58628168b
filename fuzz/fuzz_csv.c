/* fuzz_csv.c — CSV/TSV dataset lists: graft_dataset_open on the input saved as list.csv
 * (comma), list.tsv (tab) and list.txt (delimiter sniffed from the header), then every accessor
 * (classes, labels, paths, extra columns), a stratified split, a k-shot draw, and the first
 * sample read through a transform when its image is one of the target's own.
 *
 * Image paths in a list are relative to the list's folder, which holds a.pgm, b.ppm and
 * sub/c.pgm (tiny valid images written once); the seeds name them. Samples elsewhere (an
 * absolute path the input names) are only stat()ed by graft_dataset_open, never read here. */
#include "fuzz_common.h"

#include <graft.h>

#include <string.h>

static int setup(void)
{
    static int done, ok;
    if (done) return ok;
    done = 1;
    static const char pgm[] = "P5\n3 2\n255\n\x00\x40\x80\xc0\xff\x10";
    static const char ppm[] = "P6\n2 2\n255\n\xff\x00\x00\x00\xff\x00\x00\x00\xff\x80\x80\x80";
    char path[1024];
    ok = !fz_write("a.pgm", pgm, sizeof pgm - 1, path, sizeof path) &&
         !fz_write("b.ppm", ppm, sizeof ppm - 1, path, sizeof path) && !fz_mkdir("sub") &&
         !fz_write("sub/c.pgm", pgm, sizeof pgm - 1, path, sizeof path);
    return ok;
}

/* Whether sample 0's file is in the scratch folder (and so one of the images written above). */
static int own_file(const char *p)
{
    const char *dir = fz_dir();
    size_t n = dir ? strlen(dir) : 0;
    return p && dir && !strncmp(p, dir, n) && p[n] == '/' && !strstr(p, "..");
}

static void explore(graft_dataset *d)
{
    int64_t n = graft_dataset_size(d);
    int nc = graft_dataset_num_classes(d);
    fz_touch(graft_dataset_kind(d), 1);
    for (int c = 0; c < nc && c < 64; c++) {
        const char *s = graft_dataset_class_name(d, c);
        if (s) fz_touch(s, strlen(s));
    }
    int group = graft_dataset_column(d, "group");
    for (int64_t i = 0; i < n && i < 64; i++) {
        (void)graft_dataset_label(d, i);
        const char *p = graft_dataset_path(d, i), *v = graft_dataset_value(d, group, i);
        if (p) fz_touch(p, strlen(p));
        if (v) fz_touch(v, strlen(v));
    }
    graft_tensor *tr = NULL, *va = NULL, *te = NULL, *k = NULL, *img = NULL;
    const double frac[3] = { 0.5, 0.25, 0.25 };
    if (graft_dataset_split(d, frac, 3, &tr, &va, &te) == GRAFT_OK) {
        graft_tensor_free(tr);
        graft_tensor_free(va);
        graft_tensor_free(te);
    }
    if (graft_dataset_kshot(d, 1, 5, &k) == GRAFT_OK) graft_tensor_free(k);
    if (n > 0 && own_file(graft_dataset_path(d, 0)) &&
        !fz_note("graft_dataset_load", graft_dataset_load(d, 0, "size=4", 0, &img)))
        graft_tensor_free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!setup()) return 0;
    static const char *const names[3] = { "list.csv", "list.tsv", "list.txt" };
    for (int i = 0; i < 3; i++) {
        char path[1024];
        graft_dataset *d = NULL;
        if (fz_write(names[i], data, size, path, sizeof path)) return 0;
        if (!fz_note("graft_dataset_open", graft_dataset_open(path, NULL, &d))) {
            explore(d);
            graft_dataset_free(d);
        }
    }
    return 0;
}
