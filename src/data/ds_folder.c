/* ds_folder.c — the FOLDER dataset kind: torchvision's ImageFolder (a class per subfolder,
 * images found recursively, classes and files in sorted order). See data.h, gr_dataset_open. */
#define _POSIX_C_SOURCE 200809L
#include "dataset_impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEPTH 64 /* folder nesting inside a class (guards symlink loops) */

/* ---- FOLDER: torchvision's ImageFolder ---------------------------------------------------- */

static int is_image_name(const char *name)
{
    static const char *ext[] = { ".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".pnm" };
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (gr_ds_ends_with_ci(name, ext[i])) return 1;
    return 0;
}

/* Sorted names of the visible entries of dir (NULL-free gr_ds_vec of malloc'd strings). */
static int list_dir(const char *dir, gr_ds_vec *out)
{
    DIR *d = opendir(dir);
    if (!d) return gr_err(GRAFT_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    int st = GRAFT_OK;
    while (!st && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", ".." and hidden entries */
        char *s = gr_strdup(e->d_name);
        st = s ? gr_ds_vec_push(out, s) : GRAFT_E_NOMEM;
        if (st) free(s);
    }
    closedir(d);
    if (!st && out->n) qsort(out->v, out->n, sizeof *out->v, gr_ds_cmp_str);
    return st;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 &&
           S_ISDIR(sb.st_mode); /* follows symlinks, as os.walk(followlinks) */
}

/* Appends the image files under dir in torchvision's order: sorted(os.walk(dir)) visits folders
 * sorted by their whole path string, and the files inside one folder sorted by name. So each
 * folder contributes a block; blocks are ordered by folder path. `files` gets (path) strings
 * and `dirs` the folder order; we collect per folder, then sort folders. */
typedef struct folder_block {
    char *dir;
    gr_ds_vec files;
} folder_block;

static int walk(const char *dir, int depth, gr_ds_vec *blocks)
{
    if (depth > MAX_DEPTH)
        return gr_err(GRAFT_E_FORMAT, "%s: folders nested deeper than %d (a symlink loop?)", dir,
                      MAX_DEPTH);
    gr_ds_vec names = { 0 };
    int st = list_dir(dir, &names);
    folder_block *b = st ? NULL : gr_calloc(1, sizeof *b);
    if (!st && !b) st = GRAFT_E_NOMEM;
    if (!st && !(b->dir = gr_strdup(dir))) {
        free(b);
        b = NULL;
        st = GRAFT_E_NOMEM;
    }
    if (!st && (st = gr_ds_vec_push(blocks, b)) != GRAFT_OK) {
        free(b->dir);
        free(b);
    }
    for (size_t i = 0; !st && i < names.n; i++) {
        char *p = gr_ds_join_path(dir, names.v[i]);
        if (!p) {
            st = GRAFT_E_NOMEM;
            break;
        }
        if (is_dir(p)) {
            st = walk(p, depth + 1, blocks);
            free(p);
        } else if (is_image_name(names.v[i])) {
            st = gr_ds_vec_push(&b->files, p);
            if (st) free(p);
        } else {
            free(p);
        }
    }
    gr_ds_vec_free_all(&names);
    return st;
}

static int cmp_block(const void *a, const void *b)
{
    return strcmp((*(folder_block *const *)a)->dir, (*(folder_block *const *)b)->dir);
}

static void free_blocks(gr_ds_vec *blocks)
{
    for (size_t i = 0; i < blocks->n; i++) {
        folder_block *b = blocks->v[i];
        gr_ds_vec_free_all(&b->files);
        free(b->dir);
        free(b);
    }
    free(blocks->v);
    blocks->v = NULL;
    blocks->n = blocks->cap = 0;
}

/* Moves the files under dir, in torchvision's order, onto paths/labels (label cls); *added
 * gets their count. */
static int add_files(const char *cdir, int cls, gr_ds_vec *paths, gr_ds_vec *labels_v,
                     size_t *added_out)
{
    gr_ds_vec blocks = { 0 };
    int st = walk(cdir, 0, &blocks);
    if (!st) qsort(blocks.v, blocks.n, sizeof *blocks.v, cmp_block);
    size_t added = 0;
    for (size_t i = 0; !st && i < blocks.n; i++) {
        folder_block *b = blocks.v[i];
        for (size_t j = 0; !st && j < b->files.n; j++) {
            st = gr_ds_vec_push(paths, b->files.v[j]);
            if (!st) {
                b->files.v[j] = NULL;
                added++;
            }
            if (!st) st = gr_ds_vec_push(labels_v, (void *)(intptr_t)cls);
        }
    }
    free_blocks(&blocks);
    *added_out = added;
    return st;
}

/* The files of one class folder, which must have some. */
static int add_class(const char *cdir, int cls, gr_ds_vec *paths, gr_ds_vec *labels_v)
{
    size_t added = 0;
    int st = add_files(cdir, cls, paths, labels_v, &added);
    if (!st && added == 0)
        st =
            gr_err(GRAFT_E_FORMAT,
                   "%s: empty class folder: no image files (.jpg .jpeg .png .pgm .ppm .pnm)", cdir);
    return st;
}

/* Unlabelled images are either loose in the folder (or in any layout without the class one)
 * or in class folders: the class layout is subfolders only, no image at the top. */
static int class_layout(const char *path, int *yes)
{
    gr_ds_vec names = { 0 };
    int st = list_dir(path, &names), dirs = 0, images = 0;
    for (size_t i = 0; !st && i < names.n; i++) {
        char *p = gr_ds_join_path(path, names.v[i]);
        if (!p) st = GRAFT_E_NOMEM;
        else if (is_dir(p)) dirs++;
        else images += is_image_name(names.v[i]);
        free(p);
    }
    gr_ds_vec_free_all(&names);
    *yes = dirs > 0 && images == 0;
    return st;
}

/* Every image under path, in torchvision's order, unlabelled (-1), no classes. */
static int open_unlabeled_tree(const char *path, gr_dataset **out)
{
    gr_ds_vec paths = { 0 }, labels = { 0 };
    size_t added = 0;
    int st = add_files(path, -1, &paths, &labels, &added);
    if (!st && added == 0)
        st = gr_err(GRAFT_E_FORMAT, "%s: no image files (.jpg .jpeg .png .pgm .ppm .pnm)", path);
    gr_dataset *ds = st ? NULL : gr_ds_new(GR_DS_FOLDER, path);
    if (!st && !ds) st = GRAFT_E_NOMEM;
    if (!st) {
        ds->n = (int64_t)paths.n;
        ds->paths = (char **)paths.v;
        paths.v = NULL;
        paths.n = 0;
        ds->labels = gr_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ds->labels);
        if (!ds->labels) st = GRAFT_E_NOMEM;
        for (int64_t i = 0; !st && i < ds->n; i++) ds->labels[i] = -1;
    }
    gr_ds_vec_free_all(&paths);
    free(labels.v);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}

int gr_ds_open_folder(const char *path, int flags, gr_dataset **out)
{
    if (flags & GR_DS_UNLABELED) {
        int layout, st = class_layout(path, &layout);
        if (st) return st;
        if (!layout) return open_unlabeled_tree(path, out);
    }
    gr_ds_vec classes = { 0 }, paths = { 0 }, labels = { 0 };
    int st = list_dir(path, &classes);
    /* keep only folders: classes are the subfolders, loose files at the top are ignored */
    size_t k = 0;
    for (size_t i = 0; !st && i < classes.n; i++) {
        char *p = gr_ds_join_path(path, classes.v[i]);
        if (!p) {
            st = GRAFT_E_NOMEM;
            break;
        }
        if (is_dir(p)) classes.v[k++] = classes.v[i];
        else free(classes.v[i]);
        free(p);
    }
    if (!st) classes.n = k;
    if (!st && classes.n == 0)
        st = gr_err(GRAFT_E_FORMAT, "%s: no class folders (expected %s/<class>/<image>)", path,
                    path);
    if (!st)
        st = gr_ds_class_count_check((int64_t)classes.n, "%s: %zu class folders", path, classes.n);
    for (size_t c = 0; !st && c < classes.n; c++) {
        char *cdir = gr_ds_join_path(path, classes.v[c]);
        st = cdir ? add_class(cdir, (int)c, &paths, &labels) : GRAFT_E_NOMEM;
        free(cdir);
    }
    gr_dataset *ds = st ? NULL : gr_ds_new(GR_DS_FOLDER, path);
    if (!st && !ds) st = GRAFT_E_NOMEM;
    if (!st) {
        ds->n = (int64_t)paths.n;
        ds->nclass = (int)classes.n;
        ds->class_names = (char **)classes.v;
        classes.v = NULL;
        classes.n = 0;
        ds->paths = (char **)paths.v;
        paths.v = NULL;
        paths.n = 0;
        ds->labels = gr_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ds->labels);
        if (!ds->labels) st = GRAFT_E_NOMEM;
        for (int64_t i = 0; !st && i < ds->n; i++) ds->labels[i] = (int32_t)(intptr_t)labels.v[i];
    }
    if (!st) st = gr_ds_check_labels(ds, flags);
    gr_ds_vec_free_all(&classes);
    gr_ds_vec_free_all(&paths);
    free(labels.v);
    if (st) gr_dataset_free(ds);
    else *out = ds;
    return st;
}
