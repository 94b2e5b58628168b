/* test_data_badfiles.c — broken inputs to the dataset layer, each with its expected outcome: a
 * non-zero status, a message naming the file (and the CSV line) and the reason, no crash (the
 * suite also runs under ASan/UBSan). Valid JPEG/PNG files come from PIL and are corrupted by
 * scripts/data_reference.py; the rest is written here. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "data/data.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];

static void py(const char *args)
{
    const char *src = getenv("GRAFT_SOURCE_DIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/data_reference.py %s", src ? src : "..",
             args);
    if (system(cmd) != 0) {
        fprintf(stderr, "reference failed: %s\n", cmd);
        exit(2);
    }
}

static char *pathf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

/* The status must be an error whose message holds every given piece (NULL-terminated). */
static void expect_error(int st, const char *what, ...)
{
    const char *msg = graft_last_error();
    CHECK(st != GRAFT_OK, "%s: expected an error, got success", what);
    va_list ap;
    va_start(ap, what);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        CHECK(strstr(msg, s) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, s);
    va_end(ap);
}

static void expect_open_error(const char *path, const char *what, ...)
{
    gr_dataset *ds = NULL;
    int st = gr_dataset_open(path, NULL, 0, &ds);
    CHECK(ds == NULL, "%s: *out must stay untouched", what);
    const char *msg = graft_last_error();
    CHECK(st != GRAFT_OK, "%s: expected an error, got success", what);
    va_list ap;
    va_start(ap, what);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        CHECK(strstr(msg, s) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, s);
    va_end(ap);
    if (st == GRAFT_OK) gr_dataset_free(ds);
}

/* ---- images, through gr_dataset_image on a FOLDER dataset ---- */

static void test_images(void)
{
    char root[300], a[400], b[400];
    pathf(root, sizeof root, "%s/imgs", tmp);
    pathf(a, sizeof a, "%s/a", root);
    pathf(b, sizeof b, "%s/b", root);
    char cmd[900];
    snprintf(cmd, sizeof cmd, "badfiles '%s'", a);
    py(cmd);
    snprintf(cmd, sizeof cmd, "badfiles '%s'", b);
    py(cmd);
    static const struct {
        const char *name;
        int status;
        const char *reason;
    } cases[] = {
        { "good.jpg", GRAFT_OK, NULL },
        { "good.png", GRAFT_OK, NULL },
        { "idatcrc.png", GRAFT_OK, NULL }, /* as PIL: the last IDAT's CRC is not checked */
        { "empty.jpg", GRAFT_E_FORMAT, "empty" },
        { "truncated.jpg", GRAFT_E_FORMAT, "truncated JPEG" },
        { "text.jpg", GRAFT_E_FORMAT, "not a JPEG" },
        { "badcrc.png", GRAFT_E_FORMAT, "checksum" },
        { "huge.png", GRAFT_E_UNSUPPORTED, "100000x100000" },
        { "badidat.png", GRAFT_E_FORMAT, "bad PNG" },
        { "huge.jpg", GRAFT_E_LIMIT, "60000x60000" },
        { "huger.jpg", GRAFT_E_FORMAT, "65500" }, /* libjpeg's own limit, also from the header */
    };
    gr_dataset *ds = NULL;
    int st = gr_dataset_open(root, NULL, 0, &ds);
    CHECK(st == GRAFT_OK, "open %s: %s", root, graft_last_error());
    if (st) return;
    CHECK(ds->n == 22 && ds->nclass == 2, "22 files in 2 classes (got %lld, %d)", (long long)ds->n,
          ds->nclass);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char want[500];
        pathf(want, sizeof want, "%s/%s", a, cases[c].name);
        int64_t i = -1;
        for (int64_t j = 0; j < ds->n; j++)
            if (!strcmp(ds->paths[j], want)) i = j;
        CHECK(i >= 0, "%s is a sample", want);
        if (i < 0) continue;
        gr_image im = { 0 };
        size_t rss0 = gr_peak_rss();
        st = gr_dataset_image(ds, i, &im);
        if (cases[c].status == GRAFT_OK) {
            CHECK(st == GRAFT_OK && im.w == 40 && im.h == 32, "%s: %s", want, graft_last_error());
            gr_image_free(&im);
            continue;
        }
        CHECK(st == cases[c].status, "%s: status %d, expected %d (%s)", want, st, cases[c].status,
              graft_last_error());
        expect_error(st, cases[c].name, want, cases[c].reason, NULL);
        CHECK(im.rgb == NULL, "%s: output untouched", want);
        /* refused from the header: the peak memory did not grow by anything like the image */
        CHECK(gr_peak_rss() - rss0 < ((size_t)64 << 20), "%s: peak RSS grew by %zu bytes", want,
              gr_peak_rss() - rss0);
    }
    /* an index outside the dataset */
    gr_image im;
    expect_error(gr_dataset_image(ds, ds->n, &im), "index n", "outside", NULL);
    gr_dataset_free(ds);
}

/* ---- folders ---- */

static void test_folders(void)
{
    char p[400], q[400];
    static const uint8_t pgm[] = "P5 1 1 255\n\x7f";
    /* an empty class folder, named */
    mkdir(pathf(p, sizeof p, "%s/empty", tmp), 0700);
    mkdir(pathf(p, sizeof p, "%s/empty/full", tmp), 0700);
    write_file(pathf(p, sizeof p, "%s/empty/full/x.pgm", tmp), pgm, sizeof pgm - 1);
    mkdir(pathf(p, sizeof p, "%s/empty/hollow", tmp), 0700);
    pathf(q, sizeof q, "%s/empty/hollow", tmp);
    expect_open_error(pathf(p, sizeof p, "%s/empty", tmp), "empty class folder", q, "empty class",
                      NULL);
    /* a class folder with only non-images counts as empty too */
    write_text(pathf(p, sizeof p, "%s/empty/hollow/notes.txt", tmp), "no images here\n");
    expect_open_error(pathf(p, sizeof p, "%s/empty", tmp), "class folder without images", q,
                      "empty class", NULL);
    /* one class */
    mkdir(pathf(p, sizeof p, "%s/single", tmp), 0700);
    mkdir(pathf(p, sizeof p, "%s/single/only", tmp), 0700);
    write_file(pathf(p, sizeof p, "%s/single/only/x.pgm", tmp), pgm, sizeof pgm - 1);
    expect_open_error(pathf(p, sizeof p, "%s/single", tmp), "one class", "only one class", NULL);
    /* no class folders at all; a path that does not exist; an unknown kind */
    mkdir(pathf(p, sizeof p, "%s/none", tmp), 0700);
    write_file(pathf(q, sizeof q, "%s/none/loose.pgm", tmp), pgm, sizeof pgm - 1);
    expect_open_error(p, "no class folders", p, "no class folders", NULL);
    expect_open_error(pathf(p, sizeof p, "%s/missing", tmp), "missing path", p, "No such file",
                      NULL);
    write_text(pathf(p, sizeof p, "%s/what.bin", tmp), "x");
    expect_open_error(p, "unknown kind", p, "cannot tell", NULL);
}

/* ---- CSV ---- */

static void test_csv(void)
{
    char dir[300], p[400], img[400], miss[400];
    pathf(dir, sizeof dir, "%s/csv", tmp);
    mkdir(dir, 0700);
    static const uint8_t pgm[] = "P5 1 1 255\n\x7f";
    write_file(pathf(img, sizeof img, "%s/ok.pgm", dir), pgm, sizeof pgm - 1);
    /* line 2's quoted note spans two lines, so the missing file's row starts on line 4 */
    write_text(pathf(p, sizeof p, "%s/missing.csv", dir),
               "path,label,note\nok.pgm,cat,\"two\nlines\"\nnot-there.pgm,dog,x\nok.pgm,dog,y\n");
    pathf(miss, sizeof miss, "%s/not-there.pgm", dir);
    expect_open_error(p, "missing file", "missing.csv:4:", miss, "No such file", NULL);

    static const struct {
        const char *name, *text, *want1, *want2;
    } cases[] = {
        { "emptylabel.csv", "path,label\nok.pgm,cat\nok.pgm,\nok.pgm,dog\n",
          "emptylabel.csv:3:", "bad label" },
        { "ctrl.csv", "path,label\nok.pgm,cat\nok.pgm,\"d\tog\"\n", "ctrl.csv:3:", "bad label" },
        { "bigint.csv", "path,label\nok.pgm,1\nok.pgm,99999999999\n",
          "bigint.csv:3:", "bad label" },
        { "fields.csv", "path,label\nok.pgm,cat\nok.pgm,dog,extra\n", "fields.csv:3:", "3 fields" },
        { "quote.csv", "path,label\nok.pgm,cat\nok.pgm,\"dog\n", "quote.csv:3:", "not closed" },
        { "after.csv", "path,label\nok.pgm,\"cat\"x\n", "after.csv:2:", "after a closing quote" },
        { "header.csv", "path,label\n", "header.csv", "no samples" },
        { "blank.csv", "", "blank.csv", "empty file" },
        { "onecls.csv", "path,label\nok.pgm,cat\nok.pgm,cat\n", "onecls.csv", "only one class" },
        { "emptypath.csv", "path,label\nok.pgm,cat\n,dog\n", "emptypath.csv:3:", "empty path" },
        { "binary.csv", "path,label\nok.pgm,c\0at\n", "binary.csv", "NUL" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        pathf(p, sizeof p, "%s/%s", dir, cases[c].name);
        size_t len = strlen(cases[c].text);
        if (!strcmp(cases[c].name, "binary.csv")) len = 23;
        write_file(p, cases[c].text, len);
        expect_open_error(p, cases[c].name, p, cases[c].want1, cases[c].want2, NULL);
    }
}

/* ---- IDX ---- */

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* images file: magic, count n_hdr, 28x28, then n_data images; labels: magic, count, data */
static void write_idx(const char *dir, const char *stem, uint32_t magic, uint32_t n_hdr, int n_data,
                      uint32_t nlab_hdr, int nlab_data)
{
    char p[400];
    size_t isz = 16 + (size_t)n_data * 784, lsz = 8 + (size_t)nlab_data;
    uint8_t *im = calloc(isz, 1), *lb = calloc(lsz, 1);
    be32(im, magic);
    be32(im + 4, n_hdr);
    be32(im + 8, 28);
    be32(im + 12, 28);
    be32(lb, 0x801);
    be32(lb + 4, nlab_hdr);
    for (int i = 0; i < nlab_data; i++) lb[8 + i] = (uint8_t)(i % 2);
    write_file(pathf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, stem), im, isz);
    write_file(pathf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, stem), lb, lsz);
    free(im);
    free(lb);
}

static void test_idx(void)
{
    char dir[300], p[400], cmd[900];
    pathf(dir, sizeof dir, "%s/idx", tmp);
    mkdir(dir, 0700);
    write_idx(dir, "good", 0x803, 10, 10, 10, 10);
    gr_dataset *ds = NULL;
    int st = gr_dataset_open(pathf(p, sizeof p, "%s/good-images-idx3-ubyte", dir), NULL, 0, &ds);
    CHECK(st == GRAFT_OK && ds->n == 10 && ds->nclass == 2, "a valid small IDX pair: %s",
          graft_last_error());
    gr_dataset_free(ds);

    write_idx(dir, "short", 0x803, 1000, 10, 10, 10);
    expect_open_error(pathf(p, sizeof p, "%s/short-images-idx3-ubyte", dir),
                      "IDX count above the data", p, "counts need 784000", NULL);
    write_idx(dir, "long", 0x803, 5, 10, 10, 10);
    expect_open_error(pathf(p, sizeof p, "%s/long-images-idx3-ubyte", dir),
                      "IDX count below the data", p, "counts", NULL);
    write_idx(dir, "absurd", 0x803, 0x7FFFFFFF, 1, 1, 1);
    expect_open_error(pathf(p, sizeof p, "%s/absurd-images-idx3-ubyte", dir), "IDX count absurd", p,
                      "counts need", NULL);
    write_idx(dir, "disagree", 0x803, 10, 10, 12, 12);
    expect_open_error(pathf(p, sizeof p, "%s/disagree-images-idx3-ubyte", dir), "images vs labels",
                      p, "10 images but 12 labels", NULL);
    write_idx(dir, "labshort", 0x803, 10, 10, 10, 9);
    pathf(cmd, sizeof cmd, "%s/labshort-labels-idx1-ubyte", dir);
    expect_open_error(pathf(p, sizeof p, "%s/labshort-images-idx3-ubyte", dir), "labels file short",
                      cmd, "counts", NULL);
    write_idx(dir, "magic", 0x802, 10, 10, 10, 10);
    expect_open_error(pathf(p, sizeof p, "%s/magic-images-idx3-ubyte", dir), "bad magic", p,
                      "magic 0x00000802", NULL);
    write_idx(dir, "nolab", 0x803, 10, 10, 10, 10);
    pathf(cmd, sizeof cmd, "%s/nolab-labels-idx1-ubyte", dir);
    remove(cmd);
    expect_open_error(pathf(p, sizeof p, "%s/nolab-images-idx3-ubyte", dir), "labels file missing",
                      cmd, "cannot open", NULL);

    /* gzip: a header asking 2^31 images (refused from the header, before any allocation), a
     * truncated stream, and counts that disagree with the inflated size */
    const char *gzcases[3] = { "absurd", "short", "trunc" };
    write_idx(dir, "trunc", 0x803, 10, 10, 10, 10);
    for (int k = 0; k < 3; k++) {
        char src[400], dst[400];
        pathf(src, sizeof src, "%s/%s-images-idx3-ubyte", dir, gzcases[k]);
        pathf(dst, sizeof dst, "%s/gz%s-images-idx3-ubyte.gz", dir, gzcases[k]);
        snprintf(cmd, sizeof cmd, "gzip '%s' '%s'", src, dst);
        py(cmd);
        pathf(src, sizeof src, "%s/%s-labels-idx1-ubyte", dir, gzcases[k]);
        pathf(cmd, sizeof cmd, "%s/gz%s-labels-idx1-ubyte", dir, gzcases[k]);
        rename(src, cmd);
    }
    pathf(p, sizeof p, "%s/gztrunc-images-idx3-ubyte.gz", dir);
    struct stat sb;
    if (stat(p, &sb) != 0 || truncate(p, sb.st_size / 2) != 0) perror(p);
    size_t rss0 = gr_peak_rss();
    expect_open_error(pathf(p, sizeof p, "%s/gzabsurd-images-idx3-ubyte.gz", dir),
                      "gz absurd count", p, "counts need", NULL);
    CHECK(gr_peak_rss() - rss0 < ((size_t)64 << 20), "absurd gz header: peak RSS grew by %zu bytes",
          gr_peak_rss() - rss0);
    expect_open_error(pathf(p, sizeof p, "%s/gzshort-images-idx3-ubyte.gz", dir),
                      "gz count above the data", p, "counts need 784000", NULL);
    expect_open_error(pathf(p, sizeof p, "%s/gztrunc-images-idx3-ubyte.gz", dir), "gz truncated", p,
                      "truncated", NULL);
}

/* ---- NPY ---- */

/* A version 1.0 .npy header (magic, version, little-endian length, the dict) into buf (zeroed
 * after it); returns its size. */
static size_t npy_header(uint8_t *buf, const char *dict)
{
    size_t k = strlen(dict);
    memset(buf, 0, 200);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)k;
    buf[9] = 0;
    memcpy(buf + 10, dict, k);
    return 10 + k;
}

static void test_npy(void)
{
    char p[400], l[400];
    uint8_t buf[200] = { 0 };
    size_t n = npy_header(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }");
    write_file(pathf(p, sizeof p, "%s/short.npy", tmp), buf, n + 4 * 7); /* 7 of 8 floats */
    n = npy_header(buf, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }");
    for (int i = 0; i < 4; i++) buf[n + 8 * i] = (uint8_t)(i % 2);
    write_file(pathf(l, sizeof l, "%s/lab.npy", tmp), buf, n + 32);
    gr_dataset *ds = NULL;
    int st = gr_dataset_open(p, l, 0, &ds);
    CHECK(ds == NULL, "short npy: untouched");
    expect_error(st, "npy data short", p, "needs 32", NULL);
    write_text(pathf(p, sizeof p, "%s/text.npy", tmp), "not numpy");
    st = gr_dataset_open(p, l, 0, &ds);
    expect_error(st, "npy bad magic", p, "bad magic", NULL);
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/graft_bad_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    test_images();
    test_folders();
    test_csv();
    test_idx();
    test_npy();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return th_finish();
}
