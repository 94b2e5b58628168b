#define _POSIX_C_SOURCE 200809L
/* test_transfer_metrics.c — graft's evaluation metrics against scikit-learn 1.2 and a numpy
 * ECE (scripts/metrics_reference.py writes random and edge cases with the expected results),
 * and the HTML report checked by the same script with Python's html.parser and xml.etree
 * (parses, no script or URL, escaped names, the numbers shown). */
#include "harness.h"

#include "io/io.h"
#include "transfer/transfer.h"

#include <dirent.h>
#include <string.h>

static char dir[256];

static void *load(const char *cs, const char *name, int dtype, int64_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s.npy", dir, cs, name);
    gr_tensor t;
    if (gr_npy_load(path, &t)) {
        fprintf(stderr, "cannot load %s: %s\n", path, graft_last_error());
        exit(2);
    }
    if ((int)t.dtype != dtype) {
        fprintf(stderr, "%s: unexpected type %s\n", path, gr_dtype_name(t.dtype));
        exit(2);
    }
    if (n) *n = gr_numel(&t.shape);
    return t.data;
}

/* Lines of DIR/name into at most max strings (the caller frees them). */
static int read_lines(const char *name, char **out, int max)
{
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f) return 0;
    while (n < max && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        out[n++] = strdup(line);
    }
    fclose(f);
    return n;
}

static int close_to(double a, double b) { return fabs(a - b) <= 1e-12 + 1e-12 * fabs(b); }

/* One case: graft's metrics against the reference files. */
static void check_case(const char *cs, int nclass, int nbins, int ngroup, gr_metrics *m)
{
    int64_t n;
    float *p = load(cs, "prob", GR_F32, &n);
    int32_t *y = load(cs, "y", GR_I32, &n);
    int32_t *g = ngroup ? load(cs, "group", GR_I32, NULL) : NULL;
    double *sc = load(cs, "scal", GR_F64, NULL), *prf = load(cs, "prf", GR_F64, NULL);
    double *bins = load(cs, "bins", GR_F64, NULL);
    int64_t *sup = load(cs, "support", GR_I64, NULL), *cm = load(cs, "cm", GR_I64, NULL);
    int st = gr_metrics_compute(p, y, n, nclass, g, ngroup, nbins, m);
    CHECK(st == GRAFT_OK, "%s: %s", cs, graft_last_error());
    if (st) goto out;
    int B = nbins ? nbins : 15;
    CHECK(close_to(m->accuracy, sc[0]), "%s: accuracy %.17g, sklearn %.17g", cs, m->accuracy,
          sc[0]);
    CHECK(close_to(m->top5, sc[1]) && m->topk == (int)sc[6],
          "%s: top-%d %.17g, sklearn top-%d %.17g", cs, m->topk, m->top5, (int)sc[6], sc[1]);
    CHECK(close_to(m->macro_f1, sc[2]) && m->nclass_present == (int)sc[5],
          "%s: macro F1 %.17g over %d, sklearn %.17g over %d", cs, m->macro_f1, m->nclass_present,
          sc[2], (int)sc[5]);
    CHECK(close_to(m->ece, sc[3]), "%s: ECE %.17g, numpy %.17g", cs, m->ece, sc[3]);
    CHECK(m->worst_group == (int)sc[4], "%s: worst group %d, expected %d", cs, m->worst_group,
          (int)sc[4]);
    int bad = 0;
    for (int k = 0; k < nclass; k++)
        bad += !close_to(m->precision[k], prf[k]) || !close_to(m->recall[k], prf[nclass + k]) ||
               !close_to(m->f1[k], prf[2 * nclass + k]) || m->support[k] != sup[k];
    CHECK(!bad, "%s: %d classes differ in precision/recall/F1/support from sklearn", cs, bad);
    bad = 0;
    for (int k = 0; k < nclass * nclass; k++) bad += m->confusion[k] != cm[k];
    CHECK(!bad, "%s: %d confusion cells differ from sklearn's confusion_matrix", cs, bad);
    bad = 0;
    CHECK(m->nbins == B, "%s: %d bins, expected %d", cs, m->nbins, B);
    for (int b = 0; b < B && m->nbins == B; b++)
        bad += !close_to(m->bin_acc[b], bins[b]) || !close_to(m->bin_conf[b], bins[B + b]) ||
               m->bin_count[b] != (int64_t)bins[2 * B + b];
    CHECK(!bad, "%s: %d reliability bins differ from numpy's", cs, bad);
    if (ngroup) {
        double *ga = load(cs, "groups", GR_F64, NULL);
        bad = 0;
        for (int k = 0; k < ngroup; k++)
            bad += !close_to(m->group_acc[k], ga[k]) || m->group_n[k] != (int64_t)ga[ngroup + k];
        CHECK(!bad, "%s: %d group accuracies differ from sklearn's", cs, bad);
        free(ga);
    }
out:
    free(p), free(y), free(g), free(sc), free(prf), free(bins), free(sup), free(cm);
}

/* No "<path>.tmp.<pid>" left behind by the atomic writer. */
static int temp_files_left(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void check_report(const char *cs, const gr_metrics *m)
{
    char *names[64] = { 0 }, *gnames[8] = { 0 }, *cnames[4] = { 0 }, *title[1] = { 0 }, buf[64][16];
    if (m->nclass > 64 || m->ngroup > 8) {
        CHECK(0, "%s: %d classes, %d groups: more than this test holds", cs, m->nclass, m->ngroup);
        return;
    }
    read_lines("title.txt", title, 1);
    int nn = read_lines("class_names.txt", names, 64);
    int ng = read_lines("group_names.txt", gnames, 8);
    int nc = read_lines("curve_names.txt", cnames, 4);
    const char *cls[64], *grp[8];
    for (int k = 0; k < m->nclass; k++) {
        snprintf(buf[k], sizeof buf[k], "c%d", k);
        cls[k] = k < nn ? names[k] : buf[k];
    }
    for (int k = 0; k < m->ngroup; k++) grp[k] = k < ng ? gnames[k] : "?";
    char path[512], rpath[512], recipe_text[1024] = "";
    snprintf(rpath, sizeof rpath, "%s/recipe.txt", dir);
    FILE *f = fopen(rpath, "r");
    if (f) {
        recipe_text[fread(recipe_text, 1, sizeof recipe_text - 1, f)] = 0;
        fclose(f);
    }
    /* a falling loss with one NaN (a gap in the line) and a rising accuracy */
    double x[20], loss[20], acc[20];
    for (int i = 0; i < 20; i++)
        x[i] = i + 1, loss[i] = 2.3 * exp(-0.15 * i), acc[i] = 0.9 - 0.6 * exp(-0.2 * i);
    loss[7] = NAN;
    gr_curve curves[2] = { { cnames[0], x, loss, 20 }, { cnames[1], x, acc, 20 } };
    gr_report r = { .title = title[0],
                    .recipe = recipe_text,
                    .class_names = cls,
                    .group_names = m->ngroup ? grp : NULL,
                    .m = m,
                    .curves = curves,
                    .ncurves = nc < 2 ? nc : 2,
                    .seconds = 12.345,
                    .peak_mb = 678.94,
                    .extra_html = "<p id=\"extra-p\">extra &amp; trusted</p>" };
    snprintf(path, sizeof path, "%s/%s.html", dir, cs);
    int st = gr_report_write(path, &r);
    CHECK(st == GRAFT_OK, "%s: %s", path, graft_last_error());
    CHECK(temp_files_left() == 0, "%s: a temp file is left", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/scripts/metrics_reference.py check %s %s %s %.3f %.2f",
             GRAFT_SOURCE_DIR, dir, cs, path, r.seconds, r.peak_mb);
    CHECK(st == GRAFT_OK && system(cmd) == 0, "report %s: the Python checks failed (%s)", cs, cmd);
    for (int k = 0; k < 64; k++) free(names[k]);
    for (int k = 0; k < 8; k++) free(gnames[k]);
    for (int k = 0; k < 4; k++) free(cnames[k]);
    free(title[0]);
}

static void test_cases(void)
{
    char *lines[32] = { 0 };
    int n = read_lines("cases.txt", lines, 32);
    CHECK(n == 7, "%d cases in cases.txt, expected 7", n);
    for (int i = 0; i < n; i++) {
        char cs[64];
        int nclass, nbins, ngroup;
        if (sscanf(lines[i], "%63s %d %d %d", cs, &nclass, &nbins, &ngroup) != 4) {
            CHECK(0, "bad line in cases.txt: %s", lines[i]);
            continue;
        }
        gr_metrics m;
        check_case(cs, nclass, nbins, ngroup, &m);
        if (!strcmp(cs, "random10") || !strcmp(cs, "many")) check_report(cs, &m);
        gr_metrics_free(&m);
        free(lines[i]);
    }
}

/* Bad input: an error naming the row or the path, nothing allocated. */
static void test_errors(void)
{
    float p[6] = { 0.2f, 0.8f, 0.6f, 0.4f, 0.5f, 0.5f };
    int32_t y[3] = { 1, 0, 2 }, g[3] = { 0, 1, 3 };
    gr_metrics m;
    int st = gr_metrics_compute(p, y, 3, 2, NULL, 0, 0, &m);
    CHECK(st == GRAFT_E_ARG && strstr(graft_last_error(), "row 2"), "label out of range: %d %s", st,
          graft_last_error());
    CHECK(m.precision == NULL && m.confusion == NULL, "allocations after a failure");
    y[2] = 1;
    st = gr_metrics_compute(p, y, 3, 2, g, 2, 0, &m);
    CHECK(st == GRAFT_E_ARG && strstr(graft_last_error(), "group 3"), "group out of range: %d %s",
          st, graft_last_error());
    p[3] = NAN;
    st = gr_metrics_compute(p, y, 3, 2, NULL, 0, 0, &m);
    CHECK(st == GRAFT_E_ARG && strstr(graft_last_error(), "row 1"), "NaN: %d %s", st,
          graft_last_error());
    p[3] = 0.4f;
    CHECK(gr_metrics_compute(p, y, 0, 2, NULL, 0, 0, &m) == GRAFT_E_ARG, "no rows accepted");
    CHECK(gr_metrics_compute(p, y, 3, 1, NULL, 0, 0, &m) == GRAFT_E_ARG, "one class accepted");

    CHECK(gr_metrics_compute(p, y, 3, 2, NULL, 0, 4, &m) == GRAFT_OK, "%s", graft_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/no/such/folder/report.html", dir);
    gr_report r = { .title = "t", .m = &m };
    st = gr_report_write(path, &r);
    CHECK(st == GRAFT_E_IO && strstr(graft_last_error(), path), "unwritable path: %d %s", st,
          graft_last_error());
    gr_metrics_free(&m);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/graft_metrics_XXXXXX", tmp);
    if (!mkdtemp(dir)) return 2;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/metrics_reference.py gen %s",
             GRAFT_SOURCE_DIR, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "the scikit-learn reference failed: %s\n", cmd);
        return 2;
    }
    test_cases();
    test_errors();
    if (!th_fail) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "inputs and reports kept in %s\n", dir);
    }
    return th_finish();
}
